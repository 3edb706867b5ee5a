/* dc_dmime - D/MIME codec (see dc_dmime.h for the rules this file implements). */
#include "dc_dmime.h"

#include "dc_signet.h"

#include <stdlib.h>
#include <string.h>

/* ---- chunk table (spec section 3) ---- */

#define A_ DC_ACTOR_BIT(DC_ACTOR_AUTHOR)
#define O_ DC_ACTOR_BIT(DC_ACTOR_ORIGIN)
#define D_ DC_ACTOR_BIT(DC_ACTOR_DESTINATION)
#define R_ DC_ACTOR_BIT(DC_ACTOR_RECIPIENT)

enum payload_kind { PK_NONE = 0, PK_EPHEMERAL, PK_STANDARD, PK_SIGNATURE };

struct chunk_info {
    uint8_t type;
    const char *name;
    enum payload_kind kind;
    unsigned actors;
    int rank;     /* position in libdime's serializer order */
    int multiple; /* may repeat (display, attachments) */
    int required; /* must be present when parsing */
};

static const struct chunk_info chunk_table[] = {
    {DC_CHUNK_EPHEMERAL, "ephemeral", PK_EPHEMERAL, 0, 0, 0, 1},
    {DC_CHUNK_ORIGIN, "origin", PK_STANDARD, A_ | O_ | R_, 1, 0, 1},
    {DC_CHUNK_DESTINATION, "destination", PK_STANDARD, A_ | D_ | R_, 2, 0, 1},
    {DC_CHUNK_COMMON, "common", PK_STANDARD, A_ | R_, 3, 0, 1},
    {DC_CHUNK_HEADERS, "headers", PK_STANDARD, A_ | R_, 4, 0, 0},
    {DC_CHUNK_DISPLAY, "display-content", PK_STANDARD, A_ | R_, 5, 1, 0},
    {DC_CHUNK_ATTACH, "attachments-content", PK_STANDARD, A_ | R_, 6, 1, 0},
    {DC_CHUNK_SIG_TREE, "author-tree-signature", PK_SIGNATURE, A_ | O_ | R_, 7, 0, 1},
    {DC_CHUNK_SIG_AUTHOR, "author-signature", PK_SIGNATURE, A_ | O_ | R_, 8, 0, 1},
    {DC_CHUNK_SIG_META_BOUNCE, "organizational-metadata-bounce-signature", PK_SIGNATURE,
     A_ | O_ | D_ | R_, 9, 0, 0},
    {DC_CHUNK_SIG_DISPLAY_BOUNCE, "organizational-display-bounce-signature", PK_SIGNATURE,
     A_ | O_ | D_ | R_, 10, 0, 0},
    {DC_CHUNK_SIG_ORIGIN, "Organizational-Signature", PK_SIGNATURE, A_ | O_ | D_ | R_, 11, 0,
     1},
};
#define NTYPES (sizeof(chunk_table) / sizeof(chunk_table[0]))

static const struct chunk_info *info_of(unsigned type)
{
    for (size_t i = 0; i < NTYPES; i++)
        if (chunk_table[i].type == type)
            return &chunk_table[i];
    return NULL;
}

const char *dc_dmime_chunk_name(unsigned type)
{
    const struct chunk_info *ci = info_of(type);
    return ci ? ci->name : NULL;
}

unsigned dc_dmime_chunk_actors(unsigned type)
{
    const struct chunk_info *ci = info_of(type);
    return ci ? ci->actors : 0;
}

static unsigned popcount4(unsigned v)
{
    return (v & 1) + ((v >> 1) & 1) + ((v >> 2) & 1) + ((v >> 3) & 1);
}

int dc_dmime_slot_index(unsigned type, enum dc_actor actor)
{
    unsigned set = dc_dmime_chunk_actors(type);
    if ((unsigned)actor > 3 || !(set & DC_ACTOR_BIT(actor)))
        return -1;
    /* Keyslots are in actor order, so the position is the number of holders before it. */
    return (int)popcount4(set & (DC_ACTOR_BIT(actor) - 1));
}

const char *dc_actor_name(enum dc_actor a)
{
    switch (a) {
    case DC_ACTOR_AUTHOR: return "author";
    case DC_ACTOR_ORIGIN: return "origin";
    case DC_ACTOR_DESTINATION: return "destination";
    case DC_ACTOR_RECIPIENT: return "recipient";
    }
    return "?";
}

const char *dc_dmime_sig_name(enum dc_dmime_sig s)
{
    switch (s) {
    case DC_DSIG_NOT_VISIBLE: return "not visible";
    case DC_DSIG_OK: return "ok";
    case DC_DSIG_FAILED: return "failed";
    case DC_DSIG_NO_KEY: return "no key";
    }
    return "?";
}

/* ---- parsing ---- */

static size_t chunk_end(const struct dc_dmime_chunk *c)
{
    return c->offset + 4 + c->payload_len + c->nslots * DC_DMIME_SLOT_LEN;
}

void dc_dmime_free(struct dc_dmime *m)
{
    if (!m)
        return;
    if (!m->map && !m->view)
        free(m->bin);
    free(m->chunks);
    free(m);
}

const uint8_t *dc_dmime_bytes(const struct dc_dmime *m, size_t *len)
{
    *len = m->len;
    return m->bin;
}

long dc_dmime_find(const struct dc_dmime *m, unsigned type)
{
    for (size_t i = 0; i < m->nchunks; i++)
        if (m->chunks[i].type == type)
            return (long)i;
    return -1;
}

/* Parses m->bin (already set) into the chunk table. */
static enum dc_status parse_into(struct dc_dmime *m, struct dc_err *err)
{
    const uint8_t *b = m->bin;
    size_t len = m->len, at = 0;

    if (len < 2)
        return dc_fail(err, DC_ERR_TRUNCATED, "D/MIME: %zu bytes, too short for a header", len);
    unsigned magic = dc_get_be(b, 2);
    if (magic == DC_DMIME_TRACING_MAGIC) {
        if (len < 4)
            return dc_fail(err, DC_ERR_TRUNCATED, "D/MIME: tracing header truncated");
        size_t tl = dc_get_be(b + 2, 2);
        if (tl == 0)
            return dc_fail(err, DC_ERR_FORMAT, "D/MIME: tracing length is zero");
        if (len - 4 < tl)
            return dc_fail(err, DC_ERR_TRUNCATED,
                           "D/MIME: tracing data of %zu bytes runs past the end (%zu left)", tl,
                           len - 4);
        m->tracing_off = 4;
        m->tracing_len = tl;
        at = 4 + tl;
        if (len - at < 2)
            return dc_fail(err, DC_ERR_TRUNCATED, "D/MIME: message header missing after tracing");
        magic = dc_get_be(b + at, 2);
        if (magic != DC_DMIME_MAGIC)
            return dc_fail(err, DC_ERR_MAGIC,
                           "D/MIME: number after tracing data is %u, expected %u", magic,
                           DC_DMIME_MAGIC);
    } else if (magic != DC_DMIME_MAGIC) {
        return dc_fail(err, DC_ERR_MAGIC, "D/MIME: wrong magic %u (expected %u or tracing %u)",
                       magic, DC_DMIME_MAGIC, DC_DMIME_TRACING_MAGIC);
    }
    if (len - at < 6)
        return dc_fail(err, DC_ERR_TRUNCATED, "D/MIME: message size field truncated");
    uint32_t msz = dc_get_be(b + at + 2, 4);
    at += 6;
    m->chunks_off = at;
    if ((size_t)msz > len - at)
        return dc_fail(err, DC_ERR_TRUNCATED,
                       "D/MIME: msg_size says %u bytes, only %zu follow", (unsigned)msz,
                       len - at);
    if ((size_t)msz < len - at)
        return dc_fail(err, DC_ERR_FORMAT, "D/MIME: %zu trailing bytes after msg_size %u",
                       len - at - msz, (unsigned)msz);

    size_t cap = 16;
    m->chunks = dc_xcalloc(cap, sizeof(*m->chunks));
    int last_rank = -1;
    unsigned seen = 0; /* bit per rank */
    while (at < len) {
        size_t off = at;
        if (len - at < 4)
            return dc_fail(err, DC_ERR_TRUNCATED,
                           "D/MIME: chunk header at offset %zu truncated (%zu bytes left)", off,
                           len - at);
        unsigned type = b[at];
        size_t plen = dc_get_be(b + at + 1, 3);
        const struct chunk_info *ci = info_of(type);
        if (!ci)
            return dc_fail(err, DC_ERR_FORMAT, "D/MIME: unknown chunk type %u at offset %zu",
                           type, off);
        if (ci->rank < last_rank || (ci->rank == last_rank && !ci->multiple))
            return dc_fail(err, DC_ERR_ORDER,
                           "D/MIME: chunk %u (%s) at offset %zu is %s", type, ci->name, off,
                           ci->rank == last_rank ? "repeated" : "out of order");
        switch (ci->kind) {
        case PK_EPHEMERAL:
            if (plen != DC_SECP_PUB_LEN)
                return dc_fail(err, DC_ERR_FORMAT,
                               "D/MIME: chunk %u (%s) at offset %zu: payload %zu bytes, must "
                               "be 33",
                               type, ci->name, off, plen);
            break;
        case PK_SIGNATURE:
            if (plen != DC_ED25519_SIG_LEN)
                return dc_fail(err, DC_ERR_FORMAT,
                               "D/MIME: chunk %u (%s) at offset %zu: payload %zu bytes, must "
                               "be 64",
                               type, ci->name, off, plen);
            break;
        default:
            if (plen % 16 != 0 || plen < DC_DMIME_MIN_PAYLOAD)
                return dc_fail(err, DC_ERR_FORMAT,
                               "D/MIME: chunk %u (%s) at offset %zu: payload %zu bytes, must "
                               "be a multiple of 16 and at least 256",
                               type, ci->name, off, plen);
            break;
        }
        size_t nslots = popcount4(ci->actors);
        at += 4;
        if (len - at < plen)
            return dc_fail(err, DC_ERR_TRUNCATED,
                           "D/MIME: chunk %u (%s) at offset %zu: payload of %zu bytes "
                           "truncated (%zu left)",
                           type, ci->name, off, plen, len - at);
        at += plen;
        if (len - at < nslots * DC_DMIME_SLOT_LEN)
            return dc_fail(err, DC_ERR_TRUNCATED,
                           "D/MIME: chunk %u (%s) at offset %zu: %zu keyslots truncated (%zu "
                           "bytes left)",
                           type, ci->name, off, nslots, len - at);
        at += nslots * DC_DMIME_SLOT_LEN;
        if (m->nchunks == cap) {
            cap *= 2;
            m->chunks = dc_xrealloc(m->chunks, cap * sizeof(*m->chunks));
        }
        m->chunks[m->nchunks++] = (struct dc_dmime_chunk){
            .type = (uint8_t)type, .offset = off, .payload_len = plen, .nslots = nslots,
            .actors = ci->actors};
        last_rank = ci->rank;
        seen |= 1u << ci->rank;
    }
    for (size_t i = 0; i < NTYPES; i++)
        if (chunk_table[i].required && !(seen & (1u << chunk_table[i].rank)))
            return dc_fail(err, DC_ERR_FIELD, "D/MIME: required chunk %u (%s) is missing",
                           chunk_table[i].type, chunk_table[i].name);
    return DC_OK;
}

/* Parses bin[0, len) into a new message; owned says whether bin is freed with it. */
static enum dc_status parse_new(uint8_t *bin, size_t len, const struct dc_fmap *map, int owned,
                                struct dc_dmime **out, struct dc_err *err)
{
    struct dc_dmime *m = dc_xcalloc(1, sizeof(*m));
    m->bin = bin;
    m->len = len;
    m->map = map;
    m->view = !owned && !map;
    enum dc_status st = parse_into(m, err);
    if (st != DC_OK) {
        dc_dmime_free(m);
        return st;
    }
    *out = m;
    return DC_OK;
}

enum dc_status dc_dmime_parse(const uint8_t *bin, size_t len, struct dc_dmime **out,
                              struct dc_err *err)
{
    *out = NULL;
    if (!bin && len)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: no input");
    uint8_t *copy = dc_xmalloc(len ? len : 1);
    if (len)
        memcpy(copy, bin, len);
    return parse_new(copy, len, NULL, 1, out, err);
}

enum dc_status dc_dmime_parse_view(const uint8_t *bin, size_t len, struct dc_dmime **out,
                                   struct dc_err *err)
{
    *out = NULL;
    if (!bin)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: no input");
    return parse_new((uint8_t *)bin, len, NULL, 0, out, err);
}

enum dc_status dc_dmime_parse_mapped(const struct dc_fmap *map, struct dc_dmime **out,
                                     struct dc_err *err)
{
    *out = NULL;
    if (!map)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: no input");
    return parse_new(map->p, map->len, map, 0, out, err);
}

/* ---- passes over byte ranges of a message ---- */

/* Feeds bin[off, off + len) to update in windows; mapped bytes are released behind. */
static void range_pass(const struct dc_dmime *m, size_t off, size_t len,
                       void (*update)(void *h, const void *p, size_t n), void *h)
{
    while (len > 0) {
        size_t n = len < DC_STREAM_WINDOW ? len : DC_STREAM_WINDOW;
        update(h, m->bin + off, n);
        dc_fmap_release(m->map, m->bin + off, n);
        off += n;
        len -= n;
    }
}

struct range_feed {
    const struct dc_dmime *m;
    size_t off, len;
};

static enum dc_status range_feed(void *ctx, void (*update)(void *h, const void *p, size_t n),
                                 void *h, struct dc_err *err)
{
    const struct range_feed *f = ctx;
    range_pass(f->m, f->off, f->len, update, h);
    return DC_OK;
}

static void sha_update(void *h, const void *p, size_t n)
{
    dc_sha512_update(h, p, n);
}

/* Error prefix naming a chunk. */
#define CHUNK_FMT "chunk %u (%s) at offset %zu"
#define CHUNK_ARGS(c) (unsigned)(c)->type, dc_dmime_chunk_name((c)->type), (c)->offset

enum dc_status dc_dmime_signed_range(const struct dc_dmime *m, unsigned type, size_t *start,
                                     size_t *end, struct dc_err *err)
{
    /* The chunks are in serializer order (checked by the parser), so every signed set of
     * chunks is a contiguous run from the first chunk up to the first chunk not covered. */
    size_t stop = m->len;
    int found = 0;
    for (size_t i = 0; i < m->nchunks && !found; i++) {
        unsigned t = m->chunks[i].type;
        int past;
        switch (type) {
        case DC_CHUNK_SIG_AUTHOR: past = t > DC_CHUNK_SIG_TREE; break; /* 2..225 */
        case DC_CHUNK_SIG_META_BOUNCE: past = t >= DC_CHUNK_DISPLAY; break; /* envelope+meta */
        case DC_CHUNK_SIG_DISPLAY_BOUNCE: past = t >= DC_CHUNK_ATTACH; break; /* + display */
        case DC_CHUNK_SIG_ORIGIN: past = t >= DC_CHUNK_SIG_ORIGIN; break; /* 2..249 */
        default:
            return dc_fail(err, DC_ERR_ARG, "D/MIME: chunk %u does not sign a byte range", type);
        }
        if (past) {
            stop = m->chunks[i].offset;
            found = 1;
        }
    }
    *start = m->chunks_off;
    *end = stop;
    return DC_OK;
}

/* SHA-512 of one serialized chunk. */
static void chunk_hash(const struct dc_dmime *m, const struct dc_dmime_chunk *c,
                       uint8_t out[DC_SHA512_LEN])
{
    if (!m->map) {
        dc_sha512(m->bin + c->offset, chunk_end(c) - c->offset, out);
        return;
    }
    struct dc_sha512_ctx *h = dc_sha512_new();
    range_pass(m, c->offset, chunk_end(c) - c->offset, sha_update, h);
    dc_sha512_final(h, out);
}

/*
 * The libdime tree-signature quirk, from the hashes of the serialized chunks 2..131 in
 * message order (types[i] is chunk i's type): libdime (dmsg_treesig_data_get) hashes them
 * into a zeroed N*64 buffer but forgets to advance after the destination chunk, so the next
 * hash (common headers) lands on top of it and the last slot stays zero. Reproduced here and
 * nowhere else; both the reader and the builder go through it.
 */
static void tree_data_libdime_quirk(const uint8_t *types, const uint8_t *hashes, size_t n,
                                    uint8_t **data, size_t *len)
{
    uint8_t *buf = dc_xcalloc(n ? n : 1, DC_SHA512_LEN);
    size_t slot = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(buf + slot * DC_SHA512_LEN, hashes + i * DC_SHA512_LEN, DC_SHA512_LEN);
        if (types[i] != DC_CHUNK_DESTINATION) /* the quirk: no advance after chunk 5 */
            slot++;
    }
    *data = buf;
    *len = n * DC_SHA512_LEN;
}

void dc_dmime_tree_data_libdime_quirk(const struct dc_dmime *m, uint8_t **data, size_t *len)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nchunks; i++)
        if (m->chunks[i].type <= DC_CHUNK_ATTACH)
            n++;
    uint8_t *types = dc_xmalloc(n ? n : 1), *hashes = dc_xmalloc((n ? n : 1) * DC_SHA512_LEN);
    size_t k = 0;
    for (size_t i = 0; i < m->nchunks; i++) {
        const struct dc_dmime_chunk *c = &m->chunks[i];
        if (c->type > DC_CHUNK_ATTACH)
            continue;
        types[k] = c->type;
        chunk_hash(m, c, hashes + k * DC_SHA512_LEN);
        k++;
    }
    tree_data_libdime_quirk(types, hashes, n, data, len);
    free(types);
    free(hashes);
}

/* ---- keys ---- */

static enum dc_status local_derive(void *ctx, const uint8_t eph[DC_SECP_PUB_LEN],
                                   struct dc_kek *out, struct dc_err *err)
{
    return dc_kek_derive(ctx, eph, out, err);
}

void dc_kek_source_local(struct dc_kek_source *s, const struct dc_enc_key *k)
{
    s->derive = local_derive;
    s->ctx = (void *)(uintptr_t)k;
}

enum dc_status dc_dmime_slot_unwrap(const struct dc_kek *kek, const uint8_t enc[64],
                                    struct dc_dmime_slot *out, struct dc_err *err)
{
    uint8_t plain[64];
    enum dc_status st = dc_aes256_cbc_decrypt(kek->key, kek->iv, enc, 64, plain, err);
    if (st != DC_OK) {
        dc_memzero(plain, sizeof(plain));
        return st;
    }
    memcpy(out->random, plain, 16);
    memcpy(out->ivmask, plain + 16, 16);
    memcpy(out->key, plain + 32, 32);
    for (int i = 0; i < 16; i++)
        out->iv[i] = out->random[i] ^ out->ivmask[i];
    dc_memzero(plain, sizeof(plain));
    return DC_OK;
}

/* Builds an encrypted keyslot for chunk key/iv under kek. */
static enum dc_status slot_wrap(const struct dc_kek *kek, const uint8_t key[32],
                                const uint8_t iv[16], uint8_t out[64], struct dc_err *err)
{
    uint8_t plain[64];
    enum dc_status st = dc_random(plain, 16);
    if (st != DC_OK)
        return dc_fail(err, st, "D/MIME: no random bytes for a keyslot");
    for (int i = 0; i < 16; i++)
        plain[16 + i] = plain[i] ^ iv[i];
    memcpy(plain + 32, key, 32);
    st = dc_aes256_cbc_encrypt(kek->key, kek->iv, plain, 64, out, err);
    dc_memzero(plain, sizeof(plain));
    return st;
}

/* ---- reader ---- */

struct dc_dmime_reader {
    const struct dc_dmime *m;
    enum dc_actor actor;
    struct dc_kek *kek; /* secure memory */
    struct dc_dmime_envelope env;
    int decrypted_ok;
    int deferred;   /* DC_DMIME_DEFER_CONTENT left chunks to verify */
    int partial_ok; /* and everything else checked out */
    uint8_t author[32]; /* the author key given to dc_dmime_decrypt_ex (nauthor 0 or 1) */
    size_t nauthor;
};

static void envelope_clear(struct dc_dmime_envelope *e)
{
    free(e->author);
    free(e->author_fp);
    free(e->destination);
    free(e->destination_fp);
    free(e->recipient);
    free(e->recipient_fp);
    free(e->origin);
    free(e->origin_fp);
    memset(e, 0, sizeof(*e));
}

void dc_dmime_reader_free(struct dc_dmime_reader *r)
{
    if (!r)
        return;
    if (r->kek)
        dc_secure_free(r->kek, sizeof(*r->kek));
    envelope_clear(&r->env);
    free(r);
}

const struct dc_dmime_envelope *dc_dmime_envelope(const struct dc_dmime_reader *r)
{
    return &r->env;
}

enum dc_status dc_dmime_reader_slot(const struct dc_dmime_reader *r, size_t i,
                                    struct dc_dmime_slot *out, struct dc_err *err)
{
    if (i >= r->m->nchunks)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: no chunk %zu", i);
    const struct dc_dmime_chunk *c = &r->m->chunks[i];
    int si = dc_dmime_slot_index(c->type, r->actor);
    if (si < 0)
        return dc_fail(err, DC_ERR_NOTFOUND, "D/MIME: " CHUNK_FMT ": no keyslot for the %s",
                       CHUNK_ARGS(c), dc_actor_name(r->actor));
    const uint8_t *enc = r->m->bin + c->offset + 4 + c->payload_len + (size_t)si * 64;
    return dc_dmime_slot_unwrap(r->kek, enc, out, err);
}

/* Decrypts chunk i's payload as the reader's actor into a new buffer (payload_len bytes). */
static enum dc_status chunk_decrypt(const struct dc_dmime_reader *r, size_t i, uint8_t **plain,
                                    struct dc_err *err)
{
    const struct dc_dmime_chunk *c = &r->m->chunks[i];
    struct dc_dmime_slot slot;
    *plain = NULL;
    enum dc_status st = dc_dmime_reader_slot(r, i, &slot, err);
    if (st != DC_OK)
        return st;
    uint8_t *p = dc_xmalloc(c->payload_len);
    st = dc_aes256_cbc_decrypt(slot.key, slot.iv, r->m->bin + c->offset + 4, c->payload_len, p,
                               err);
    dc_memzero(&slot, sizeof(slot));
    if (st != DC_OK) {
        free(p);
        return st;
    }
    *plain = p;
    return DC_OK;
}

/* Checks a decrypted standard payload and locates its data (spec section 4.3). */
/* Checks the 69-byte header at the start of a decrypted standard payload p: the data size
 * and the pad length byte (the padding bytes themselves are the caller's to check). */
static enum dc_status std_head(const struct dc_dmime_chunk *c, const uint8_t *p, size_t *dlen,
                               size_t *padlen, struct dc_err *err)
{
    size_t plen = c->payload_len;
    size_t ds = dc_get_be(p + 64, 3);
    if (ds == 0)
        return dc_fail(err, DC_ERR_FORMAT, "D/MIME: " CHUNK_FMT ": data size is zero",
                       CHUNK_ARGS(c));
    if (ds > plen - DC_DMIME_STD_HDR)
        return dc_fail(err, DC_ERR_FORMAT,
                       "D/MIME: " CHUNK_FMT ": data size %zu exceeds the payload (%zu)",
                       CHUNK_ARGS(c), ds, plen - DC_DMIME_STD_HDR);
    size_t pad = plen - DC_DMIME_STD_HDR - ds;
    uint8_t pb = (uint8_t)(pad & 0xff);
    if (p[68] != pb)
        return dc_fail(err, DC_ERR_FORMAT,
                       "D/MIME: " CHUNK_FMT ": pad length byte %u, expected %u (%zu padding "
                       "bytes)",
                       CHUNK_ARGS(c), p[68], pb, pad);
    *dlen = ds;
    *padlen = pad;
    return DC_OK;
}

static enum dc_status std_check(const struct dc_dmime_chunk *c, const uint8_t *p, size_t *dlen,
                                uint8_t *flags, size_t *padlen, struct dc_err *err)
{
    size_t ds, pad;
    enum dc_status st = std_head(c, p, &ds, &pad, err);
    if (st != DC_OK)
        return st;
    uint8_t pb = (uint8_t)(pad & 0xff);
    for (size_t k = 0; k < pad; k++)
        if (p[DC_DMIME_STD_HDR + ds + k] != pb)
            return dc_fail(err, DC_ERR_FORMAT,
                           "D/MIME: " CHUNK_FMT ": padding byte %zu is %u, expected %u",
                           CHUNK_ARGS(c), k, p[DC_DMIME_STD_HDR + ds + k], pb);
    *dlen = ds;
    *flags = p[67];
    *padlen = pad;
    return DC_OK;
}

/* Parses one envelope line `<label><open>value<close>\r\n` at *pos. */
static enum dc_status env_line(const struct dc_dmime_chunk *c, const uint8_t *d, size_t n,
                               size_t *pos, const char *label, char open, char close,
                               char **out, struct dc_err *err)
{
    size_t ll = strlen(label), at = *pos;
    if (n - at < ll + 1 || memcmp(d + at, label, ll) != 0 || d[at + ll] != (uint8_t)open)
        return dc_fail(err, DC_ERR_FIELD,
                       "D/MIME: " CHUNK_FMT ": expected line \"%s%c...\" at data offset %zu",
                       CHUNK_ARGS(c), label, open, at);
    at += ll + 1;
    size_t vs = at;
    while (at < n && d[at] != (uint8_t)close) {
        if (d[at] < 0x20 || d[at] > 0x7e)
            return dc_fail(err, DC_ERR_FIELD,
                           "D/MIME: " CHUNK_FMT ": non-printable byte in the %s value",
                           CHUNK_ARGS(c), label);
        at++;
    }
    if (at == vs)
        return dc_fail(err, DC_ERR_FIELD, "D/MIME: " CHUNK_FMT ": empty %s value",
                       CHUNK_ARGS(c), label);
    if (n - at < 3 || d[at + 1] != '\r' || d[at + 2] != '\n')
        return dc_fail(err, DC_ERR_FIELD,
                       "D/MIME: " CHUNK_FMT ": %s line not closed by '%c' CRLF", CHUNK_ARGS(c),
                       label, close);
    *out = dc_xstrndup((const char *)d + vs, at - vs);
    *pos = at + 3;
    return DC_OK;
}

/* Decrypts and parses envelope chunk idx (4 or 5). */
static enum dc_status open_envelope(struct dc_dmime_reader *r, size_t idx, struct dc_err *err)
{
    const struct dc_dmime_chunk *c = &r->m->chunks[idx];
    uint8_t *p;
    enum dc_status st = chunk_decrypt(r, idx, &p, err);
    if (st != DC_OK)
        return st;
    size_t dlen = 0, pad = 0;
    uint8_t flags = 0;
    st = std_check(c, p, &dlen, &flags, &pad, err);
    if (st == DC_OK) {
        const uint8_t *d = p + DC_DMIME_STD_HDR;
        size_t pos = 0;
        struct dc_dmime_envelope *e = &r->env;
        if (c->type == DC_CHUNK_ORIGIN) {
            if ((st = env_line(c, d, dlen, &pos, "Author: ", '<', '>', &e->author, err)) ||
                (st = env_line(c, d, dlen, &pos, "Author-Signet: ", '[', ']', &e->author_fp,
                               err)) ||
                (st = env_line(c, d, dlen, &pos, "Destination: ", '<', '>', &e->destination,
                               err)) ||
                (st = env_line(c, d, dlen, &pos, "Destination-Signet: ", '[', ']',
                               &e->destination_fp, err)))
                goto done;
        } else {
            if ((st = env_line(c, d, dlen, &pos, "Recipient: ", '<', '>', &e->recipient, err)) ||
                (st = env_line(c, d, dlen, &pos, "Recipient-Signet: ", '[', ']',
                               &e->recipient_fp, err)) ||
                (st = env_line(c, d, dlen, &pos, "Origin: ", '<', '>', &e->origin, err)) ||
                (st = env_line(c, d, dlen, &pos, "Origin-Signet: ", '[', ']', &e->origin_fp,
                               err)))
                goto done;
        }
        if (pos != dlen)
            st = dc_fail(err, DC_ERR_FIELD,
                         "D/MIME: " CHUNK_FMT ": %zu unexpected bytes after the envelope lines",
                         CHUNK_ARGS(c), dlen - pos);
    }
done:
    dc_memzero(p, c->payload_len);
    free(p);
    return st;
}

enum dc_status dc_dmime_open(const struct dc_dmime *m, enum dc_actor actor,
                             const struct dc_kek_source *ks, struct dc_dmime_reader **out,
                             struct dc_err *err)
{
    *out = NULL;
    if ((unsigned)actor > 3 || !ks || !ks->derive)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: bad actor or KEK source");
    long ei = dc_dmime_find(m, DC_CHUNK_EPHEMERAL);
    if (ei < 0)
        return dc_fail(err, DC_ERR_FIELD, "D/MIME: no ephemeral chunk");
    struct dc_dmime_reader *r = dc_xcalloc(1, sizeof(*r));
    r->m = m;
    r->actor = actor;
    r->kek = dc_secure_alloc(sizeof(*r->kek));
    const uint8_t *eph = m->bin + m->chunks[ei].offset + 4;
    enum dc_status st = dc_secp_pub_check(eph, DC_SECP_PUB_LEN, err);
    if (st != DC_OK) {
        dc_fail(err, st, "D/MIME: chunk 2 (ephemeral): not a valid secp256k1 point");
        goto fail;
    }
    st = ks->derive(ks->ctx, eph, r->kek, err);
    if (st != DC_OK)
        goto fail;
    static const unsigned env_types[] = {DC_CHUNK_ORIGIN, DC_CHUNK_DESTINATION};
    for (size_t k = 0; k < 2; k++) {
        if (dc_dmime_slot_index(env_types[k], actor) < 0)
            continue;
        long ci = dc_dmime_find(m, env_types[k]);
        if (ci < 0) {
            st = dc_fail(err, DC_ERR_FIELD, "D/MIME: chunk %u missing", env_types[k]);
            goto fail;
        }
        st = open_envelope(r, (size_t)ci, err);
        if (st != DC_OK)
            goto fail;
    }
    *out = r;
    return DC_OK;
fail:
    dc_dmime_reader_free(r);
    return st;
}

/* ---- keys from signets ---- */

static enum dc_status fp_match(const struct dc_signet *s, enum dc_signet_type type,
                               const char *want, const char *label, struct dc_err *err)
{
    char fp[DC_FP_B64_LEN + 1];
    if (s->type != type)
        return dc_fail(err, DC_ERR_KEY, "D/MIME: the %s signet is a %s signet", label,
                       dc_signet_type_name(s->type));
    enum dc_status st = dc_signet_fingerprint(s, DC_FP_CRYPTO, fp, err);
    if (st != DC_OK)
        return st;
    if (want && strcmp(fp, want) != 0)
        return dc_fail(err, DC_ERR_KEY,
                       "D/MIME: the %s signet's crypto fingerprint %.16s... is not the one in "
                       "the envelope",
                       label, fp);
    return DC_OK;
}

enum dc_status dc_dmime_keys_from_signets(const struct dc_dmime_reader *r,
                                          const struct dc_signet *author,
                                          const struct dc_signet *origin,
                                          struct dc_dmime_signet_keys *out, struct dc_err *err)
{
    enum dc_status st;
    memset(out, 0, sizeof(*out));
    if (author) {
        if ((st = fp_match(author, DC_SIGNET_USER, r->env.author_fp, "author", err)) ||
            (st = dc_signet_signing_key(author, out->author, err)))
            return st;
        out->keys.author_pub = out->author;
    }
    if (origin) {
        struct dc_sok soks[DC_DMIME_MAX_ORIGIN_KEYS - 1];
        if ((st = fp_match(origin, DC_SIGNET_ORG, r->env.origin_fp, "origin", err)) ||
            (st = dc_signet_signing_key(origin, out->origin[0], err)))
            return st;
        size_t n = 1, ns = dc_signet_soks(origin, soks, DC_DMIME_MAX_ORIGIN_KEYS - 1);
        if (ns > DC_DMIME_MAX_ORIGIN_KEYS - 1)
            ns = DC_DMIME_MAX_ORIGIN_KEYS - 1;
        for (size_t i = 0; i < ns; i++)
            if (soks[i].perm & DC_SOK_MSG)
                memcpy(out->origin[n++], soks[i].pub, DC_ED25519_PUB_LEN);
        out->keys.origin_pubs = (const uint8_t(*)[DC_ED25519_PUB_LEN])out->origin;
        out->keys.norigin_pubs = n;
    }
    return DC_OK;
}

/* ---- decryption and verification ---- */

void dc_dmime_result_free(struct dc_dmime_result *res)
{
    if (!res)
        return;
    for (size_t i = 0; i < res->nitems; i++) {
        struct dc_dmime_item *it = &res->items[i];
        if (it->payload) {
            dc_memzero(it->payload, it->payload_len);
            free(it->payload);
        } else if (it->data) {
            dc_memzero(it->data, it->data_len);
            free(it->data);
        }
    }
    free(res->items);
    free(res);
}

static enum dc_dmime_sig verify_any(const uint8_t (*pubs)[32], size_t n, const uint8_t *msg,
                                    size_t len, const uint8_t *sig)
{
    if (n == 0)
        return DC_DSIG_NO_KEY;
    for (size_t i = 0; i < n; i++)
        if (dc_ed25519_verify(pubs[i], msg, len, sig) == DC_OK)
            return DC_DSIG_OK;
    return DC_DSIG_FAILED;
}

struct multi_verify {
    struct dc_ed25519_verify_ctx *c[DC_DMIME_MAX_ORIGIN_KEYS];
    size_t n;
};

static void multi_update(void *h, const void *p, size_t n)
{
    struct multi_verify *mv = h;
    for (size_t i = 0; i < mv->n; i++)
        dc_ed25519_verify_update(mv->c[i], p, n);
}

/* verify_any over the message bytes [s0, s1); a mapped message is streamed once per group of
 * up to DC_DMIME_MAX_ORIGIN_KEYS keys. */
static enum dc_dmime_sig verify_range(const uint8_t (*pubs)[32], size_t n,
                                      const struct dc_dmime *m, size_t s0, size_t s1,
                                      const uint8_t *sig)
{
    if (n == 0)
        return DC_DSIG_NO_KEY;
    if (!m->map)
        return verify_any(pubs, n, m->bin + s0, s1 - s0, sig);
    enum dc_dmime_sig res = DC_DSIG_FAILED;
    for (size_t g = 0; g < n && res != DC_DSIG_OK; g += DC_DMIME_MAX_ORIGIN_KEYS) {
        struct multi_verify mv = {.n = n - g < DC_DMIME_MAX_ORIGIN_KEYS
                                           ? n - g
                                           : DC_DMIME_MAX_ORIGIN_KEYS};
        for (size_t i = 0; i < mv.n; i++)
            mv.c[i] = dc_ed25519_verify_init(pubs[g + i], sig);
        range_pass(m, s0, s1 - s0, multi_update, &mv);
        for (size_t i = 0; i < mv.n; i++)
            if (dc_ed25519_verify_final(mv.c[i]) == DC_OK)
                res = DC_DSIG_OK;
    }
    return res;
}

/*
 * Decrypts standard chunk i in windows: checks the header and the padding as std_check does,
 * hands the data bytes to sink (may be NULL) and, with author (may be NULL), verifies the
 * chunk signature over the plaintext after it (one-shot when the payload fits one window).
 * With `whole` (payload_len bytes) every window is decrypted in place into it instead of a
 * window buffer, and hashed there while it is still in cache: the data is then at whole + 69
 * and nothing is copied (sink is not called).
 */
static enum dc_status std_stream(const struct dc_dmime_reader *r, size_t i,
                                 const uint8_t (*author)[32], size_t nauthor, dc_dmime_sink sink,
                                 void *sctx, uint8_t *whole, size_t *dlen, uint8_t *flags,
                                 size_t *padlen, enum dc_dmime_sig *sig, struct dc_err *err)
{
    const struct dc_dmime *m = r->m;
    const struct dc_dmime_chunk *c = &m->chunks[i];
    struct dc_dmime_slot slot;
    enum dc_status st = dc_dmime_reader_slot(r, i, &slot, err);
    if (st != DC_OK)
        return st;
    struct dc_aes_cbc *aes = dc_aes_cbc_new(slot.key, slot.iv, 0);
    dc_memzero(&slot, sizeof(slot));
    size_t plen = c->payload_len, w = plen < DC_STREAM_WINDOW ? plen : DC_STREAM_WINDOW;
    int oneshot = plen <= DC_STREAM_WINDOW;
    const uint8_t *src = m->bin + c->offset + 4;
    uint8_t *wbuf = whole ? NULL : dc_xmalloc(w), sigbuf[64];
    struct multi_verify *vc = NULL;
    size_t ds = 0, pad = 0, dend = 0;
    uint8_t pb = 0;
    for (size_t at = 0; at < plen && st == DC_OK;) {
        size_t n = plen - at < w ? plen - at : w;
        uint8_t *buf = whole ? whole + at : wbuf;
        st = dc_aes_cbc_update(aes, src + at, n, buf, err);
        dc_fmap_release(m->map, src + at, n);
        if (st != DC_OK)
            break;
        size_t vfrom = 0;
        if (at == 0) {
            if ((st = std_head(c, buf, &ds, &pad, err)) != DC_OK)
                break;
            pb = (uint8_t)(pad & 0xff);
            *flags = buf[67];
            dend = DC_DMIME_STD_HDR + ds;
            memcpy(sigbuf, buf, 64);
            if (!oneshot && nauthor) {
                vc = dc_xcalloc(1, sizeof(*vc));
                vc->n = 1; /* there is one author key */
                vc->c[0] = dc_ed25519_verify_init(author[0], sigbuf);
            }
            vfrom = 64;
        }
        if (vc)
            multi_update(vc, buf + vfrom, n - vfrom);
        size_t lo = at > DC_DMIME_STD_HDR ? at : DC_DMIME_STD_HDR;
        size_t hi = at + n < dend ? at + n : dend;
        if (lo < hi && sink && !whole &&
            (st = sink(sctx, buf + (lo - at), hi - lo, err)) != DC_OK)
            break;
        lo = at > dend ? at : dend;
        for (size_t k = lo; k < at + n; k++)
            if (buf[k - at] != pb) {
                st = dc_fail(err, DC_ERR_FORMAT,
                             "D/MIME: " CHUNK_FMT ": padding byte %zu is %u, expected %u",
                             CHUNK_ARGS(c), k - dend, buf[k - at], pb);
                break;
            }
        if (st == DC_OK && oneshot && sig)
            *sig = verify_any(author, nauthor, buf + 64, plen - 64, sigbuf);
        at += n;
    }
    if (vc) {
        enum dc_status vs = dc_ed25519_verify_final(vc->c[0]);
        if (st == DC_OK && sig)
            *sig = vs == DC_OK ? DC_DSIG_OK : DC_DSIG_FAILED;
        free(vc);
    } else if (st == DC_OK && sig && !oneshot) {
        *sig = DC_DSIG_NO_KEY;
    }
    dc_aes_cbc_free(aes);
    if (wbuf) {
        dc_memzero(wbuf, w);
        free(wbuf);
    }
    if (st == DC_OK) {
        *dlen = ds;
        *padlen = pad;
    }
    return st;
}

enum dc_status dc_dmime_read_data(const struct dc_dmime_reader *r, size_t i, dc_dmime_sink sink,
                                  void *ctx, struct dc_err *err)
{
    if (!r->decrypted_ok && !r->partial_ok)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: reading data needs a successful decrypt");
    if (i >= r->m->nchunks || info_of(r->m->chunks[i].type)->kind != PK_STANDARD)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: chunk %zu is not a standard chunk", i);
    size_t dlen, pad;
    uint8_t flags;
    return std_stream(r, i, NULL, 0, sink, ctx, NULL, &dlen, &flags, &pad, NULL, err);
}

/* Decrypts the first blocks of standard chunk i and checks its header as std_stream does
 * (the padding and the signature are left to the full pass). */
static enum dc_status std_header(const struct dc_dmime_reader *r, size_t i, size_t *dlen,
                                 uint8_t *flags, size_t *padlen, struct dc_err *err)
{
    const struct dc_dmime_chunk *c = &r->m->chunks[i];
    struct dc_dmime_slot slot;
    uint8_t head[80]; /* whole blocks holding the 69-byte header; payloads are >= 256 */
    enum dc_status st = dc_dmime_reader_slot(r, i, &slot, err);
    if (st != DC_OK)
        return st;
    st = dc_aes256_cbc_decrypt(slot.key, slot.iv, r->m->bin + c->offset + 4, sizeof(head),
                               head, err);
    dc_memzero(&slot, sizeof(slot));
    if (st == DC_OK && (st = std_head(c, head, dlen, padlen, err)) == DC_OK)
        *flags = head[67];
    dc_memzero(head, sizeof(head));
    return st;
}

/* DC_ERR_SIGNATURE naming the first chunk whose signature failed, or DC_OK. */
static enum dc_status result_status(const struct dc_dmime *m, const struct dc_dmime_result *res,
                                    struct dc_err *err)
{
    for (size_t i = 0; i < res->nitems; i++) {
        if (res->items[i].sig != DC_DSIG_FAILED)
            continue;
        const struct dc_dmime_chunk *c = &m->chunks[i];
        return dc_fail(err, DC_ERR_SIGNATURE, "D/MIME: " CHUNK_FMT ": %s does not verify",
                       CHUNK_ARGS(c),
                       c->type <= DC_CHUNK_ATTACH ? "the author's chunk signature"
                                                  : "the signature it holds");
    }
    return DC_OK;
}

enum dc_status dc_dmime_decrypt(struct dc_dmime_reader *r, const struct dc_dmime_keys *keys,
                                struct dc_dmime_result **out, struct dc_err *err)
{
    return dc_dmime_decrypt_ex(r, keys, 0, out, err);
}

enum dc_status dc_dmime_decrypt_ex(struct dc_dmime_reader *r, const struct dc_dmime_keys *keys,
                                   unsigned dflags, struct dc_dmime_result **out,
                                   struct dc_err *err)
{
    *out = NULL;
    const struct dc_dmime *m = r->m;
    enum dc_actor a = r->actor;
    r->decrypted_ok = r->deferred = r->partial_ok = 0;
    if (!keys)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: no verification keys");
    if (!keys->author_pub && a != DC_ACTOR_DESTINATION)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: the %s needs the author's signing key",
                       dc_actor_name(a));
    if (keys->norigin_pubs == 0 && (a == DC_ACTOR_DESTINATION || a == DC_ACTOR_RECIPIENT))
        return dc_fail(err, DC_ERR_ARG, "D/MIME: the %s needs the origin's signing key(s)",
                       dc_actor_name(a));
    const uint8_t(*author)[32] = (const uint8_t(*)[32])keys->author_pub;
    size_t nauthor = keys->author_pub ? 1 : 0;
    if (nauthor)
        memcpy(r->author, author[0], 32);
    r->nauthor = nauthor;

    struct dc_dmime_result *res = dc_xcalloc(1, sizeof(*res));
    res->actor = a;
    res->nitems = m->nchunks;
    res->items = dc_xcalloc(m->nchunks ? m->nchunks : 1, sizeof(*res->items));
    enum dc_status st = DC_OK;

    for (size_t i = 0; i < m->nchunks; i++) {
        const struct dc_dmime_chunk *c = &m->chunks[i];
        struct dc_dmime_item *it = &res->items[i];
        it->type = c->type;
        it->index = i;
        if (c->type == DC_CHUNK_EPHEMERAL || dc_dmime_slot_index(c->type, a) < 0)
            continue;
        const struct chunk_info *ci = info_of(c->type);
        it->visible = 1;
        if (ci->kind == PK_STANDARD) {
            size_t dlen = 0, pad = 0;
            uint8_t flags = 0;
            int content = c->type == DC_CHUNK_DISPLAY || c->type == DC_CHUNK_ATTACH;
            if (content && (dflags & DC_DMIME_DEFER_CONTENT)) {
                /* Only the header now; dc_dmime_read_verified or _decrypt_finish do the rest.
                 * A malformed header is left to them too (data_len 0), so that errors come
                 * in message order, as without deferral. */
                if (std_header(r, i, &dlen, &flags, &pad, NULL) != DC_OK)
                    dlen = pad = flags = 0;
                it->flags = flags;
                it->pad_len = pad;
                it->data_len = dlen;
                it->sig = DC_DSIG_NO_KEY;
                it->pending = 1;
                continue;
            }
            int keep = !((dflags & DC_DMIME_NO_CONTENT) && content);
            /* A kept chunk is decrypted in place into one buffer of the payload's size, and
             * its data left where it lands (after the 69-byte header): no copy. */
            uint8_t *whole = keep ? dc_xmalloc(c->payload_len) : NULL;
            it->sig = DC_DSIG_NO_KEY;
            st = std_stream(r, i, author, nauthor, NULL, NULL, whole, &dlen, &flags, &pad,
                            &it->sig, err);
            if (st != DC_OK) {
                if (whole) {
                    dc_memzero(whole, c->payload_len);
                    free(whole);
                }
                goto fail;
            }
            it->flags = flags;
            it->pad_len = pad;
            it->payload = whole;
            it->payload_len = whole ? c->payload_len : 0;
            it->data = whole ? whole + DC_DMIME_STD_HDR : NULL;
            it->data_len = dlen;
            if (c->type == DC_CHUNK_COMMON)
                res->common = it;
            if (c->type == DC_CHUNK_HEADERS)
                res->other = it;
            continue;
        } else {
            uint8_t *p;
            st = chunk_decrypt(r, i, &p, err);
            if (st != DC_OK)
                goto fail;
            it->data = dc_xmalloc(64);
            it->data_len = 64;
            memcpy(it->data, p, 64);
            if (c->type == DC_CHUNK_SIG_TREE) {
                uint8_t *td;
                size_t tl;
                dc_dmime_tree_data_libdime_quirk(m, &td, &tl);
                it->sig = verify_any(author, nauthor, td, tl, p);
                free(td);
            } else {
                size_t s0, s1;
                dc_dmime_signed_range(m, c->type, &s0, &s1, NULL);
                if (c->type == DC_CHUNK_SIG_AUTHOR)
                    it->sig = verify_range(author, nauthor, m, s0, s1, p);
                else
                    it->sig = verify_range(keys->origin_pubs, keys->norigin_pubs, m, s0, s1,
                                           p);
            }
            switch (c->type) {
            case DC_CHUNK_SIG_TREE: res->tree = it->sig; break;
            case DC_CHUNK_SIG_AUTHOR: res->author_full = it->sig; break;
            case DC_CHUNK_SIG_META_BOUNCE: res->meta_bounce = it->sig; break;
            case DC_CHUNK_SIG_DISPLAY_BOUNCE: res->display_bounce = it->sig; break;
            default: res->origin_full = it->sig; break;
            }
            dc_memzero(p, c->payload_len);
            free(p);
        }
        if (c->type == DC_CHUNK_COMMON)
            res->common = it;
        if (c->type == DC_CHUNK_HEADERS)
            res->other = it;
    }
    *out = res;
    for (size_t i = 0; i < res->nitems; i++)
        r->deferred |= res->items[i].pending;
    st = result_status(m, res, err);
    if (st == DC_OK && r->deferred)
        r->partial_ok = 1;
    else if (st == DC_OK)
        r->decrypted_ok = 1;
    return st;
fail:
    dc_dmime_result_free(res);
    return st;
}

enum dc_status dc_dmime_read_verified(const struct dc_dmime_reader *r,
                                      struct dc_dmime_result *res, size_t i, dc_dmime_sink sink,
                                      void *ctx, struct dc_err *err)
{
    if (!r->deferred || i >= res->nitems || !res->items[i].pending)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: chunk %zu is not waiting for verification", i);
    struct dc_dmime_item *it = &res->items[i];
    size_t dlen, pad;
    uint8_t flags;
    enum dc_dmime_sig sig = DC_DSIG_NO_KEY;
    const uint8_t(*author)[32] = (const uint8_t(*)[32])r->author;
    enum dc_status st = std_stream(r, i, author, r->nauthor, sink, ctx, NULL, &dlen, &flags,
                                   &pad, &sig, err);
    if (st != DC_OK)
        return st;
    it->sig = sig;
    it->pending = 0;
    return DC_OK;
}

enum dc_status dc_dmime_decrypt_finish(struct dc_dmime_reader *r, struct dc_dmime_result *res,
                                       struct dc_err *err)
{
    for (size_t i = 0; i < res->nitems; i++) {
        if (!res->items[i].pending)
            continue;
        enum dc_status st = dc_dmime_read_verified(r, res, i, NULL, NULL, err);
        if (st != DC_OK)
            return st;
    }
    r->deferred = r->partial_ok = 0;
    enum dc_status st = result_status(r->m, res, err);
    if (st == DC_OK)
        r->decrypted_ok = 1;
    return st;
}

/* ---- origin signing ---- */

/* Signs bin[s0, s1) of m: streaming over a mapped message, one buffer otherwise. */
static enum dc_status sign_range(const struct dc_signer *signer, const struct dc_dmime *m,
                                 size_t s0, size_t s1, uint8_t sig[64], struct dc_err *err)
{
    if (!m->map)
        return dc_signer_sign(signer, m->bin + s0, s1 - s0, sig, err);
    struct range_feed f = {m, s0, s1 - s0};
    return dc_signer_sign_stream(signer, range_feed, &f, sig, err);
}

enum dc_status dc_dmime_origin_sign_inplace(const struct dc_dmime_reader *r, struct dc_dmime *m,
                                            const struct dc_signer *signer, struct dc_err *err)
{
    if (r->actor != DC_ACTOR_ORIGIN)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: origin signing needs a reader opened as origin");
    if (!r->decrypted_ok)
        return dc_fail(err, DC_ERR_ARG,
                       "D/MIME: origin signing needs a successful decrypt (author signatures)");
    if (m != r->m && (m->len != r->m->len || m->nchunks != r->m->nchunks))
        return dc_fail(err, DC_ERR_ARG, "D/MIME: origin signing on another message");
    if (m->map && !m->map->writable)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: origin signing in place needs a writable map");
    static const unsigned order[] = {DC_CHUNK_SIG_META_BOUNCE, DC_CHUNK_SIG_DISPLAY_BOUNCE,
                                     DC_CHUNK_SIG_ORIGIN};
    enum dc_status st = DC_OK;
    for (size_t k = 0; k < 3; k++) {
        long ci = dc_dmime_find(m, order[k]);
        if (ci < 0)
            return dc_fail(err, DC_ERR_FIELD, "D/MIME: chunk %u (%s) missing: cannot sign it",
                           order[k], dc_dmime_chunk_name(order[k]));
        const struct dc_dmime_chunk *c = &m->chunks[ci];
        size_t s0, s1;
        uint8_t sig[64];
        struct dc_dmime_slot slot;
        dc_dmime_signed_range(m, c->type, &s0, &s1, NULL);
        st = sign_range(signer, m, s0, s1, sig, err);
        if (st != DC_OK)
            return st;
        st = dc_dmime_reader_slot(r, (size_t)ci, &slot, err);
        if (st != DC_OK)
            return st;
        st = dc_aes256_cbc_encrypt(slot.key, slot.iv, sig, 64, m->bin + c->offset + 4, err);
        dc_memzero(&slot, sizeof(slot));
        if (st != DC_OK)
            return st;
    }
    return DC_OK;
}

enum dc_status dc_dmime_origin_sign(const struct dc_dmime_reader *r,
                                    const struct dc_signer *signer, struct dc_dmime **out,
                                    struct dc_err *err)
{
    *out = NULL;
    if (r->actor != DC_ACTOR_ORIGIN)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: origin signing needs a reader opened as origin");
    if (!r->decrypted_ok)
        return dc_fail(err, DC_ERR_ARG,
                       "D/MIME: origin signing needs a successful decrypt (author signatures)");
    struct dc_dmime *m = dc_xcalloc(1, sizeof(*m));
    m->len = r->m->len;
    m->bin = dc_xmalloc(m->len);
    memcpy(m->bin, r->m->bin, m->len);
    m->tracing_off = r->m->tracing_off;
    m->tracing_len = r->m->tracing_len;
    m->chunks_off = r->m->chunks_off;
    m->nchunks = r->m->nchunks;
    m->chunks = dc_xmalloc(m->nchunks * sizeof(*m->chunks));
    memcpy(m->chunks, r->m->chunks, m->nchunks * sizeof(*m->chunks));
    enum dc_status st = dc_dmime_origin_sign_inplace(r, m, signer, err);
    if (st != DC_OK) {
        dc_dmime_free(m);
        return st;
    }
    *out = m;
    return DC_OK;
}

/* ---- common headers ---- */

static const char *const hdr_labels[DC_HDR_COUNT] = {"Date",         "To",     "CC", "From",
                                                     "Organization", "Subject"};

const char *dc_dmime_common_label(enum dc_dmime_hdr h)
{
    return (unsigned)h < DC_HDR_COUNT ? hdr_labels[h] : NULL;
}

static int hdr_required(unsigned h)
{
    return h != DC_HDR_CC && h != DC_HDR_ORGANIZATION;
}

enum dc_status dc_dmime_common_parse(const uint8_t *text, size_t len, struct dc_dmime_common *out,
                                     struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    size_t at = 0;
    unsigned next = 0; /* first table index still allowed */
    while (at < len) {
        const uint8_t *line = text + at;
        size_t rest = len - at, h, ll = 0;
        for (h = 0; h < DC_HDR_COUNT; h++) {
            ll = strlen(hdr_labels[h]);
            if (rest >= ll + 2 && memcmp(line, hdr_labels[h], ll) == 0 && line[ll] == ':' &&
                line[ll + 1] == ' ')
                break;
        }
        if (h == DC_HDR_COUNT) {
            char safe[40];
            size_t n = 0;
            while (n < rest && line[n] != '\r' && line[n] != '\n')
                n++;
            return dc_fail(err, DC_ERR_FIELD,
                           "D/MIME common headers: unknown line \"%s\" at offset %zu",
                           dc_safe_str(line, n, safe, 32), at);
        }
        if (h < next)
            return dc_fail(err, DC_ERR_FIELD,
                           "D/MIME common headers: %s at offset %zu is %s", hdr_labels[h], at,
                           out->val[h] ? "repeated" : "out of order");
        size_t vs = ll + 2, ve = vs;
        while (ve < rest && line[ve] != '\r' && line[ve] != '\n')
            ve++;
        if (rest - ve < 2 || line[ve] != '\r' || line[ve + 1] != '\n')
            return dc_fail(err, DC_ERR_FIELD,
                           "D/MIME common headers: %s line not terminated by CRLF",
                           hdr_labels[h]);
        out->val[h] = line + vs;
        out->len[h] = ve - vs;
        next = (unsigned)h + 1;
        at += ve + 2;
    }
    for (unsigned h = 0; h < DC_HDR_COUNT; h++)
        if (hdr_required(h) && !out->val[h])
            return dc_fail(err, DC_ERR_FIELD, "D/MIME common headers: %s is missing",
                           hdr_labels[h]);
    return DC_OK;
}

enum dc_status dc_dmime_common_format(const struct dc_dmime_common *in, struct dc_buf *out,
                                      struct dc_err *err)
{
    for (unsigned h = 0; h < DC_HDR_COUNT; h++) {
        if (!in->val[h]) {
            if (hdr_required(h))
                return dc_fail(err, DC_ERR_ARG, "D/MIME common headers: %s is required",
                               hdr_labels[h]);
            continue;
        }
        if (memchr(in->val[h], '\r', in->len[h]) || memchr(in->val[h], '\n', in->len[h]))
            return dc_fail(err, DC_ERR_ARG,
                           "D/MIME common headers: %s value holds CR or LF (unfold it first)",
                           hdr_labels[h]);
    }
    for (unsigned h = 0; h < DC_HDR_COUNT; h++) {
        if (!in->val[h])
            continue;
        dc_buf_printf(out, "%s: ", hdr_labels[h]);
        dc_buf_append(out, in->val[h], in->len[h]);
        dc_buf_append(out, "\r\n", 2);
    }
    return DC_OK;
}

/* ---- building ---- */

size_t dc_dmime_padlen(size_t dsize, uint8_t r)
{
    if (dsize < DC_DMIME_MIN_PAYLOAD)
        return (DC_DMIME_MIN_PAYLOAD - dsize) + 16 * (r % (dsize / 16 + 1));
    return (16 - dsize % 16) + 16 * (size_t)(r % 16);
}

/* Where the message is built: a heap buffer, or a writable map whose written pages are
 * released as the build goes. */
struct builder {
    struct dc_buf heap;        /* the heap output (map == NULL); heap.len == len */
    struct dc_fmap *map;
    size_t len;                /* bytes written, the 6-byte message header included */
    struct dc_kek *keks;       /* secure memory, 4 entries, by actor */
    const struct dc_signer *author;
    const struct dc_release *release; /* for the input's pages */
    struct dc_sha512_ctx *ch;  /* hash of the chunk being written (chunks 2..131) */
    uint8_t *types, *hashes;   /* per chunk 2..131: type and hash, for the tree signature */
    size_t nh, caph;
};

/* Room for n more bytes; NULL when a map is full (DC_ERR_LIMIT in err). */
static uint8_t *out_room(struct builder *b, size_t n, struct dc_err *err)
{
    if (b->map) {
        if (n > b->map->cap - b->len) {
            dc_fail(err, DC_ERR_LIMIT, "D/MIME: the output map of %zu bytes is too small",
                    b->map->cap);
            return NULL;
        }
        return b->map->p + b->len;
    }
    dc_buf_reserve(&b->heap, n);
    return b->heap.data + b->heap.len;
}

/* The n bytes just written at out_room() become part of the message. */
static void out_commit(struct builder *b, size_t n)
{
    uint8_t *p = (b->map ? b->map->p : b->heap.data) + b->len;
    if (b->ch)
        dc_sha512_update(b->ch, p, n);
    b->len += n;
    if (b->map)
        dc_fmap_release(b->map, p, n);
    else
        b->heap.len += n;
}

static enum dc_status out_put(struct builder *b, const void *p, size_t n, struct dc_err *err)
{
    uint8_t *dst = out_room(b, n, err);
    if (!dst)
        return DC_ERR_LIMIT;
    memcpy(dst, p, n);
    out_commit(b, n);
    return DC_OK;
}

static enum dc_status out_header(struct builder *b, uint8_t type, size_t len, struct dc_err *err)
{
    uint8_t h[4] = {type, (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    if (type <= DC_CHUNK_ATTACH)
        b->ch = dc_sha512_new();
    return out_put(b, h, 4, err);
}

/* Ends the chunk being written: its hash joins the tree data. */
static void chunk_done(struct builder *b, uint8_t type)
{
    if (!b->ch)
        return;
    if (b->nh == b->caph) {
        b->caph = b->caph ? b->caph * 2 : 16;
        b->types = dc_xrealloc(b->types, b->caph);
        b->hashes = dc_xrealloc(b->hashes, b->caph * DC_SHA512_LEN);
    }
    b->types[b->nh] = type;
    dc_sha512_final(b->ch, b->hashes + b->nh * DC_SHA512_LEN);
    b->ch = NULL;
    b->nh++;
}

/* Calls fn on the bytes [off, off + n) of a part, piece by piece, then releases them. */
static void part_walk(const struct dc_dmime_part *pt, size_t off, size_t n,
                      void (*fn)(void *h, const void *p, size_t n), void *h,
                      const struct dc_release *rel)
{
    if (!pt->segs) {
        fn(h, pt->data + off, n);
        dc_release_call(rel, pt->data + off, n);
        return;
    }
    for (size_t i = 0; i < pt->nsegs && n > 0; i++) {
        const struct dc_dmime_seg *sg = &pt->segs[i];
        if (off >= sg->len) {
            off -= sg->len;
            continue;
        }
        size_t k = sg->len - off < n ? sg->len - off : n;
        fn(h, sg->p + off, k);
        dc_release_call(rel, sg->p + off, k);
        n -= k;
        off = 0;
    }
}

struct copy_to {
    uint8_t *dst;
};

static void copy_fn(void *h, const void *p, size_t n)
{
    struct copy_to *c = h;
    memcpy(c->dst, p, n);
    c->dst += n;
}

/* The plaintext payload of a standard chunk: signature(64) | header(5) | data | padding. */
struct std_src {
    const uint8_t *sig;
    uint8_t hdr[5];
    const struct dc_dmime_part *part;
    size_t off, n; /* the data: bytes [off, off + n) of part */
    size_t pad;
    uint8_t pb;
    const struct dc_release *rel;
};

/* Payload bytes [from, from + cnt) into dst; data ranges are released once copied. */
static void std_read(const struct std_src *s, size_t from, size_t cnt, uint8_t *dst)
{
    size_t at = from, end = from + cnt, k;
    while (at < end) {
        if (at < 64) {
            k = (end < 64 ? end : 64) - at;
            memcpy(dst, s->sig + at, k);
        } else if (at < DC_DMIME_STD_HDR) {
            k = (end < DC_DMIME_STD_HDR ? end : DC_DMIME_STD_HDR) - at;
            memcpy(dst, s->hdr + (at - 64), k);
        } else if (at < DC_DMIME_STD_HDR + s->n) {
            k = (end < DC_DMIME_STD_HDR + s->n ? end : DC_DMIME_STD_HDR + s->n) - at;
            struct copy_to c = {dst};
            part_walk(s->part, s->off + (at - DC_DMIME_STD_HDR), k, copy_fn, &c, s->rel);
        } else {
            k = end - at;
            memset(dst, s->pb, k);
        }
        dst += k;
        at += k;
    }
}

/* What the author's chunk signature signs (payload from byte 64), for the streaming signer. */
static enum dc_status std_feed(void *ctx, void (*update)(void *h, const void *p, size_t n),
                               void *h, struct dc_err *err)
{
    const struct std_src *s = ctx;
    uint8_t padb[64];
    update(h, s->hdr, 5);
    for (size_t off = 0; off < s->n; off += DC_STREAM_WINDOW) {
        size_t k = s->n - off < DC_STREAM_WINDOW ? s->n - off : DC_STREAM_WINDOW;
        part_walk(s->part, s->off + off, k, update, h, s->rel);
    }
    memset(padb, s->pb, sizeof(padb));
    for (size_t left = s->pad; left > 0;) {
        size_t k = left < sizeof(padb) ? left : sizeof(padb);
        update(h, padb, k);
        left -= k;
    }
    return DC_OK;
}

/* Encrypts the plaintext payload given by s (plen bytes) as a chunk of `type` with fresh key
 * and IV, a window at a time, then appends its keyslots. */
static enum dc_status put_chunk(struct builder *b, uint8_t type, const struct std_src *s,
                                size_t plen, struct dc_err *err)
{
    uint8_t *kiv = dc_secure_alloc(48); /* chunk key(32) | iv(16) */
    enum dc_status st = dc_random(kiv, 48);
    if (st != DC_OK) {
        dc_secure_free(kiv, 48);
        return dc_fail(err, st, "D/MIME: no random bytes for a chunk key");
    }
    st = out_header(b, type, plen, err);
    struct dc_aes_cbc *aes = st == DC_OK ? dc_aes_cbc_new(kiv, kiv + 32, 1) : NULL;
    size_t w = plen < DC_STREAM_WINDOW ? plen : DC_STREAM_WINDOW;
    uint8_t *buf = dc_xmalloc(w);
    for (size_t at = 0; at < plen && st == DC_OK;) {
        size_t n = plen - at < w ? plen - at : w;
        uint8_t *dst = out_room(b, n, err);
        if (!dst) {
            st = DC_ERR_LIMIT;
            break;
        }
        std_read(s, at, n, buf);
        st = dc_aes_cbc_update(aes, buf, n, dst, err);
        if (st == DC_OK)
            out_commit(b, n);
        at += n;
    }
    dc_memzero(buf, w);
    free(buf);
    dc_aes_cbc_free(aes);
    unsigned set = dc_dmime_chunk_actors(type);
    for (unsigned a = 0; a < 4 && st == DC_OK; a++) {
        if (!(set & DC_ACTOR_BIT(a)))
            continue;
        uint8_t slot[64];
        st = slot_wrap(&b->keks[a], kiv, kiv + 32, slot, err);
        if (st == DC_OK)
            st = out_put(b, slot, 64, err);
    }
    if (st == DC_OK)
        chunk_done(b, type);
    dc_secure_free(kiv, 48);
    return st;
}

/* A signature chunk (64-byte payload). */
static enum dc_status put_sig_chunk(struct builder *b, uint8_t type, const uint8_t sig[64],
                                    struct dc_err *err)
{
    /* The payload is just the signature: a "standard source" of 64 bytes. */
    struct std_src s = {.sig = sig};
    return put_chunk(b, type, &s, 64, err);
}

/* Builds, author-signs, encrypts and appends one standard chunk from bytes [off, off + len)
 * of part. */
static enum dc_status put_standard(struct builder *b, uint8_t type,
                                   const struct dc_dmime_part *pt, size_t off, size_t len,
                                   uint8_t flags, struct dc_err *err)
{
    const char *name = dc_dmime_chunk_name(type);
    if (len == 0)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: chunk %u (%s): no data", type, name);
    if (len > DC_DMIME_MAX_CHUNK_DATA)
        return dc_fail(err, DC_ERR_LIMIT, "D/MIME: chunk %u (%s): %zu bytes of data, at most %u",
                       type, name, len, DC_DMIME_MAX_CHUNK_DATA);
    uint8_t r;
    enum dc_status st = dc_random(&r, 1);
    if (st != DC_OK)
        return dc_fail(err, st, "D/MIME: no random bytes for padding");
    size_t dsize = DC_DMIME_STD_HDR + len;
    size_t pad = dc_dmime_padlen(dsize, r);
    /* Keep within the size limit by dropping random extra blocks (libdime would fail). */
    while (dsize + pad > 16777200u)
        pad -= 16;
    size_t plen = dsize + pad;
    uint8_t sig[64];
    struct std_src s = {.sig = sig,
                        .hdr = {(uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len, flags,
                                (uint8_t)(pad & 0xff)},
                        .part = pt,
                        .off = off,
                        .n = len,
                        .pad = pad,
                        .pb = (uint8_t)(pad & 0xff),
                        .rel = b->release};
    if (plen - 64 <= DC_STREAM_WINDOW) {
        /* Small enough for one buffer: one-shot signing (the keyvault signer too). */
        uint8_t *p = dc_xmalloc(plen);
        memset(p, 0, 64);
        s.sig = p;
        std_read(&s, 0, plen, p);
        st = dc_signer_sign(b->author, p + 64, plen - 64, sig, err);
        dc_memzero(p, plen);
        free(p);
        s.sig = sig;
    } else {
        st = dc_signer_sign_stream(b->author, std_feed, &s, sig, err);
    }
    if (st == DC_OK)
        st = put_chunk(b, type, &s, plen, err);
    return st;
}

static int printable(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e || *s == '>' || *s == ']')
            return 0;
    return 1;
}

/* Bytes of a part. */
static size_t part_len(const struct dc_dmime_part *pt)
{
    return pt->len;
}

size_t dc_dmime_size_bound(const struct dc_dmime_draft *d)
{
    /* per standard chunk: header 4, payload header 69, padding < 512, 4 keyslots */
    const size_t per = 4 + DC_DMIME_STD_HDR + 512 + 4 * 64;
    size_t n = 6 + 4 + DC_SECP_PUB_LEN + 5 * (4 + 64 + 4 * 64);
    size_t names = 0;
    const char *strs[] = {d->author, d->author_fp, d->origin, d->origin_fp,
                          d->destination, d->destination_fp, d->recipient, d->recipient_fp};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        names += strs[i] ? strlen(strs[i]) : 0;
    n += 2 * per + names + 128;
    n += per + d->common_len + per + d->other_len;
    for (size_t i = 0; i < d->ndisplay; i++)
        n += per + part_len(&d->display[i]);
    for (size_t i = 0; i < d->nattach; i++) {
        size_t l = part_len(&d->attach[i]);
        n += (l / DC_DMIME_MAX_CHUNK_DATA + 1) * per + l;
    }
    return n;
}

static enum dc_status build(const struct dc_dmime_draft *d, const struct dc_signer *author,
                            struct dc_fmap *map, struct dc_dmime **out, struct dc_err *err)
{
    *out = NULL;
    if (!printable(d->author) || !printable(d->author_fp) || !printable(d->origin) ||
        !printable(d->origin_fp) || !printable(d->destination) ||
        !printable(d->destination_fp) || !printable(d->recipient) || !printable(d->recipient_fp))
        return dc_fail(err, DC_ERR_ARG,
                       "D/MIME: envelope names and fingerprints must be non-empty printable "
                       "ASCII without '>' or ']'");
    if (!d->author_enc || !d->origin_enc || !d->destination_enc || !d->recipient_enc)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: an encryption key is missing");
    if (!d->common || !d->common_len || !d->other || !d->other_len)
        return dc_fail(err, DC_ERR_ARG,
                       "D/MIME: common and other headers are required (libdime needs both)");
    struct dc_dmime_common ch;
    if (d->common && dc_dmime_common_parse(d->common, d->common_len, &ch, err) != DC_OK)
        return DC_ERR_FIELD;
    if (d->ndisplay == 0)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: at least one display part is required");
    if (map && (!map->writable || map->cap < 6))
        return dc_fail(err, DC_ERR_ARG, "D/MIME: the output map is not writable");

    struct builder b = {.author = author, .map = map, .release = &d->release};
    dc_buf_init(&b.heap);
    b.keks = dc_secure_alloc(4 * sizeof(struct dc_kek));
    struct dc_enc_key *eph = NULL;
    uint8_t *tree = NULL;
    char *env = NULL;
    uint8_t hdr[6] = {0};
    enum dc_status st = out_put(&b, hdr, 6, err); /* the message header, filled in last */
    if (st != DC_OK)
        goto done;
    st = dc_enc_key_generate(&eph, err);
    if (st != DC_OK)
        goto done;
    const uint8_t *pubs[4] = {d->author_enc, d->origin_enc, d->destination_enc, d->recipient_enc};
    for (unsigned a = 0; a < 4; a++) {
        st = dc_kek_derive(eph, pubs[a], &b.keks[a], err);
        if (st != DC_OK) {
            dc_fail(err, st, "D/MIME: %s encryption key unusable", dc_actor_name(a));
            goto done;
        }
    }
    if ((st = out_header(&b, DC_CHUNK_EPHEMERAL, DC_SECP_PUB_LEN, err)) ||
        (st = out_put(&b, eph->pub, DC_SECP_PUB_LEN, err)))
        goto done;
    chunk_done(&b, DC_CHUNK_EPHEMERAL);

    env = dc_xasprintf("Author: <%s>\r\nAuthor-Signet: [%s]\r\nDestination: <%s>\r\n"
                       "Destination-Signet: [%s]\r\n",
                       d->author, d->author_fp, d->destination, d->destination_fp);
    struct dc_dmime_part ep = {(const uint8_t *)env, strlen(env), 0, NULL, 0};
    st = put_standard(&b, DC_CHUNK_ORIGIN, &ep, 0, ep.len, 0, err);
    free(env);
    env = NULL;
    if (st != DC_OK)
        goto done;
    env = dc_xasprintf("Recipient: <%s>\r\nRecipient-Signet: [%s]\r\nOrigin: <%s>\r\n"
                       "Origin-Signet: [%s]\r\n",
                       d->recipient, d->recipient_fp, d->origin, d->origin_fp);
    ep.data = (const uint8_t *)env;
    ep.len = strlen(env);
    if ((st = put_standard(&b, DC_CHUNK_DESTINATION, &ep, 0, ep.len, 0, err)))
        goto done;
    struct dc_dmime_part cp = {d->common, d->common_len, 0, NULL, 0};
    struct dc_dmime_part op = {d->other, d->other_len, 0, NULL, 0};
    if ((st = put_standard(&b, DC_CHUNK_COMMON, &cp, 0, cp.len, 0, err)) ||
        (st = put_standard(&b, DC_CHUNK_HEADERS, &op, 0, op.len, 0, err)))
        goto done;
    for (size_t i = 0; i < d->ndisplay; i++)
        if ((st = put_standard(&b, DC_CHUNK_DISPLAY, &d->display[i], 0, d->display[i].len,
                               d->display[i].flags, err)))
            goto done;
    for (size_t i = 0; i < d->nattach; i++) {
        const struct dc_dmime_part *pt = &d->attach[i];
        size_t at = 0;
        if (pt->len == 0) {
            st = dc_fail(err, DC_ERR_ARG, "D/MIME: attachment %zu is empty", i);
            goto done;
        }
        while (at < pt->len) {
            size_t n = pt->len - at;
            uint8_t fl = pt->flags;
            if (n > DC_DMIME_MAX_CHUNK_DATA) {
                n = DC_DMIME_MAX_CHUNK_DATA;
                fl |= DC_DMIME_FLAG_CONTINUATION;
            }
            if ((st = put_standard(&b, DC_CHUNK_ATTACH, pt, at, n, fl, err)))
                goto done;
            at += n;
        }
    }

    {
        uint8_t sig[64];
        size_t tl;
        tree_data_libdime_quirk(b.types, b.hashes, b.nh, &tree, &tl);
        st = dc_signer_sign(author, tree, tl, sig, err);
        if (st == DC_OK)
            st = put_sig_chunk(&b, DC_CHUNK_SIG_TREE, sig, err);
        /* 226 signs every chunk so far, 225 included. */
        if (st == DC_OK) {
            struct dc_dmime view = {.bin = map ? map->p : b.heap.data, .len = b.len, .map = map};
            st = sign_range(author, &view, 6, b.len, sig, err);
        }
        if (st == DC_OK)
            st = put_sig_chunk(&b, DC_CHUNK_SIG_AUTHOR, sig, err);
        memset(sig, 0, sizeof(sig)); /* placeholders the origin fills in */
        if (st == DC_OK)
            st = put_sig_chunk(&b, DC_CHUNK_SIG_META_BOUNCE, sig, err);
        if (st == DC_OK)
            st = put_sig_chunk(&b, DC_CHUNK_SIG_DISPLAY_BOUNCE, sig, err);
        if (st == DC_OK)
            st = put_sig_chunk(&b, DC_CHUNK_SIG_ORIGIN, sig, err);
        if (st != DC_OK)
            goto done;
    }
    if (b.len - 6 > 0xffffffffu) {
        st = dc_fail(err, DC_ERR_LIMIT, "D/MIME: message of %zu bytes exceeds 4 GiB", b.len);
        goto done;
    }
    {
        uint8_t *base = map ? map->p : b.heap.data;
        size_t body = b.len - 6;
        base[0] = (uint8_t)(DC_DMIME_MAGIC >> 8);
        base[1] = (uint8_t)DC_DMIME_MAGIC;
        base[2] = (uint8_t)(body >> 24);
        base[3] = (uint8_t)(body >> 16);
        base[4] = (uint8_t)(body >> 8);
        base[5] = (uint8_t)body;
        struct dc_dmime *m = dc_xcalloc(1, sizeof(*m));
        if (map) {
            map->len = b.len;
            m->bin = map->p;
            m->len = b.len;
            m->map = map;
        } else {
            m->bin = dc_buf_steal(&b.heap, &m->len);
        }
        st = parse_into(m, err);
        if (st != DC_OK) {
            dc_dmime_free(m);
            goto done;
        }
        *out = m;
    }
done:
    if (b.ch) {
        uint8_t junk[DC_SHA512_LEN];
        dc_sha512_final(b.ch, junk);
    }
    free(b.types);
    free(b.hashes);
    free(env);
    free(tree);
    dc_enc_key_free(eph);
    dc_secure_free(b.keks, 4 * sizeof(struct dc_kek));
    dc_buf_free(&b.heap);
    return st;
}

enum dc_status dc_dmime_encrypt(const struct dc_dmime_draft *d, const struct dc_signer *author,
                                struct dc_dmime **out, struct dc_err *err)
{
    return build(d, author, NULL, out, err);
}

enum dc_status dc_dmime_encrypt_to_map(const struct dc_dmime_draft *d,
                                       const struct dc_signer *author, struct dc_fmap *map,
                                       struct dc_dmime **out, struct dc_err *err)
{
    *out = NULL;
    if (!map)
        return dc_fail(err, DC_ERR_ARG, "D/MIME: no output map");
    return build(d, author, map, out, err);
}
