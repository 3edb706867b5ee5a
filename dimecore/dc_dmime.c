/*
 * dc_dmime - D/MIME codec (see dc_dmime.h for the rules it implements), part one: the chunk
 * table, parsing a message into chunks, the signed byte ranges and the tree-signature data,
 * keyslots, and the common-headers text. Opening, decryption and verification are in
 * dc_dmime_read.c, encoding in dc_dmime_build.c; dc_dmime_int.h is what the parts share.
 */
#include "dc_dmime_int.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- chunk table (spec section 3) ---- */

#define A_ DC_ACTOR_BIT(DC_ACTOR_AUTHOR)
#define O_ DC_ACTOR_BIT(DC_ACTOR_ORIGIN)
#define D_ DC_ACTOR_BIT(DC_ACTOR_DESTINATION)
#define R_ DC_ACTOR_BIT(DC_ACTOR_RECIPIENT)

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

const struct chunk_info *dmime_info_of(unsigned type)
{
    for (size_t i = 0; i < NTYPES; i++)
        if (chunk_table[i].type == type)
            return &chunk_table[i];
    return NULL;
}

const char *dc_dmime_chunk_name(unsigned type)
{
    const struct chunk_info *ci = dmime_info_of(type);
    return ci ? ci->name : NULL;
}

unsigned dc_dmime_chunk_actors(unsigned type)
{
    const struct chunk_info *ci = dmime_info_of(type);
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
enum dc_status dmime_parse_into(struct dc_dmime *m, struct dc_err *err)
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
    struct dmime_order ord = DMIME_ORDER_INIT;
    while (at < len) {
        size_t off = at;
        if (len - at < 4)
            return dc_fail(err, DC_ERR_TRUNCATED,
                           "D/MIME: chunk header at offset %zu truncated (%zu bytes left)", off,
                           len - at);
        const struct chunk_info *ci;
        size_t plen, nslots;
        enum dc_status st = dmime_chunk_head(b + at, off, &ord, &ci, &plen, &nslots, err);
        if (st != DC_OK)
            return st;
        at += 4;
        if (len - at < plen)
            return dc_fail(err, DC_ERR_TRUNCATED,
                           "D/MIME: chunk %u (%s) at offset %zu: payload of %zu bytes "
                           "truncated (%zu left)",
                           ci->type, ci->name, off, plen, len - at);
        at += plen;
        if (len - at < nslots * DC_DMIME_SLOT_LEN)
            return dc_fail(err, DC_ERR_TRUNCATED,
                           "D/MIME: chunk %u (%s) at offset %zu: %zu keyslots truncated (%zu "
                           "bytes left)",
                           ci->type, ci->name, off, nslots, len - at);
        at += nslots * DC_DMIME_SLOT_LEN;
        if (m->nchunks == cap) {
            cap *= 2;
            m->chunks = dc_xrealloc(m->chunks, cap * sizeof(*m->chunks));
        }
        m->chunks[m->nchunks++] = (struct dc_dmime_chunk){
            .type = ci->type, .offset = off, .payload_len = plen, .nslots = nslots,
            .actors = ci->actors};
    }
    return dmime_required_seen(&ord, INT_MAX, err);
}

enum dc_status dmime_chunk_head(const uint8_t hdr[4], size_t off, struct dmime_order *ord,
                                const struct chunk_info **info, size_t *plen_out,
                                size_t *nslots, struct dc_err *err)
{
    unsigned type = hdr[0];
    size_t plen = dc_get_be(hdr + 1, 3);
    const struct chunk_info *ci = dmime_info_of(type);
    if (!ci)
        return dc_fail(err, DC_ERR_FORMAT, "D/MIME: unknown chunk type %u at offset %zu", type,
                       off);
    if (ci->rank < ord->last_rank || (ci->rank == ord->last_rank && !ci->multiple))
        return dc_fail(err, DC_ERR_ORDER, "D/MIME: chunk %u (%s) at offset %zu is %s", type,
                       ci->name, off, ci->rank == ord->last_rank ? "repeated" : "out of order");
    switch (ci->kind) {
    case PK_EPHEMERAL:
        if (plen != DC_SECP_PUB_LEN)
            return dc_fail(err, DC_ERR_FORMAT,
                           "D/MIME: chunk %u (%s) at offset %zu: payload %zu bytes, must be 33",
                           type, ci->name, off, plen);
        break;
    case PK_SIGNATURE:
        if (plen != DC_ED25519_SIG_LEN)
            return dc_fail(err, DC_ERR_FORMAT,
                           "D/MIME: chunk %u (%s) at offset %zu: payload %zu bytes, must be 64",
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
    ord->last_rank = ci->rank;
    ord->seen |= 1u << ci->rank;
    *info = ci;
    *plen_out = plen;
    *nslots = popcount4(ci->actors);
    return DC_OK;
}

enum dc_status dmime_required_seen(const struct dmime_order *ord, int upto,
                                   struct dc_err *err)
{
    for (size_t i = 0; i < NTYPES; i++)
        if (chunk_table[i].required && chunk_table[i].rank <= upto &&
            !(ord->seen & (1u << chunk_table[i].rank)))
            return dc_fail(err, DC_ERR_FIELD, "D/MIME: required chunk %u (%s) is missing",
                           chunk_table[i].type, chunk_table[i].name);
    return DC_OK;
}

enum dmime_std_fault dmime_std_sizes(size_t plen, const uint8_t hdr[5], size_t *ds,
                                     size_t *pad)
{
    *ds = dc_get_be(hdr, 3);
    *pad = 0;
    if (*ds == 0)
        return DMIME_STD_ZERO;
    if (*ds > plen - DC_DMIME_STD_HDR)
        return DMIME_STD_OVER;
    *pad = plen - DC_DMIME_STD_HDR - *ds;
    return hdr[4] == (uint8_t)(*pad & 0xff) ? DMIME_STD_OK : DMIME_STD_PADLEN;
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
    enum dc_status st = dmime_parse_into(m, err);
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

/* Signs bin[s0, s1) of m: streaming over a mapped message, one buffer otherwise. */
enum dc_status dmime_sign_range(const struct dc_signer *signer, const struct dc_dmime *m,
                                size_t s0, size_t s1, uint8_t sig[64], struct dc_err *err)
{
    if (!m->map)
        return dc_signer_sign(signer, m->bin + s0, s1 - s0, sig, err);
    struct range_feed f = {m, s0, s1 - s0};
    return dc_signer_sign_stream(signer, range_feed, &f, sig, err);
}

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
void dmime_tree_data_quirk(const uint8_t *types, const uint8_t *hashes, size_t n,
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
    dmime_tree_data_quirk(types, hashes, n, data, len);
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
enum dc_status dmime_slot_wrap(const struct dc_kek *kek, const uint8_t key[32],
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
