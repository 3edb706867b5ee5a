/*
 * dc_dmime_build - D/MIME codec, part three: encoding a draft into a message (padding,
 * chunks written into a heap buffer or a writable map, keyslots for every entitled actor,
 * the author's tree and full signatures). Parsing and keyslots are in dc_dmime.c.
 */
#include "dc_dmime_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- building ---- */

size_t dc_dmime_padlen(size_t dsize, uint8_t r)
{
    if (dsize < DC_DMIME_MIN_PAYLOAD)
        return (DC_DMIME_MIN_PAYLOAD - dsize) + 16 * (r % (dsize / 16 + 1));
    return (16 - dsize % 16) + 16 * (size_t)(r % 16);
}

struct std_chunk;

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
    struct std_chunk *pend;    /* SIGN_BATCH entries: standard chunks waiting for signatures */
    size_t npend, pend_bytes;
    char *env[2];              /* the origin and destination chunks' text (pend points there) */
    struct dc_dmime_part envp[2], hdrp[2]; /* the parts behind the waiting chunks */
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
        st = dmime_slot_wrap(&b->keks[a], kiv, kiv + 32, slot, err);
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

/* A standard chunk on its way out: its plaintext source and its author signature. */
struct std_chunk {
    uint8_t type;
    struct std_src s; /* s.sig points to sig */
    size_t plen;      /* payload bytes */
    uint8_t sig[64];
};

/*
 * The author signs every standard chunk. With a keyvault signer each signature is a request
 * and an answer over its socket; the small chunks of a message (origin, destination, headers,
 * display parts: seven requests for a plain 4 KiB message) are therefore held back, up to
 * SIGN_BATCH of them and SIGN_BATCH_BYTES of payload, and signed with one call of the
 * signer's sign_many (which a keyvault signer sends as one write of pipelined requests), then
 * written in their order. A chunk larger than SIGN_BATCH_ONE is signed and written on its own
 * (after the waiting ones), as before.
 */
#define SIGN_BATCH       16
#define SIGN_BATCH_ONE   (60u * 1024)
#define SIGN_BATCH_BYTES (256u * 1024)

/* Checks the part, picks the padding and fills c (not yet signed). */
static enum dc_status std_prepare(uint8_t type, const struct dc_dmime_part *pt, size_t off,
                                  size_t len, uint8_t flags, const struct dc_release *rel,
                                  struct std_chunk *c, struct dc_err *err)
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
    c->type = type;
    c->plen = dsize + pad;
    c->s = (struct std_src){.sig = c->sig,
                            .hdr = {(uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len,
                                    flags, (uint8_t)(pad & 0xff)},
                            .part = pt,
                            .off = off,
                            .n = len,
                            .pad = pad,
                            .pb = (uint8_t)(pad & 0xff),
                            .rel = rel};
    return DC_OK;
}

/* What the chunk signature signs (payload from byte 64) in one buffer; wipe and free it. */
static uint8_t *std_signed_bytes(const struct std_chunk *c)
{
    uint8_t *p = dc_xmalloc(c->plen - 64);
    std_read(&c->s, 64, c->plen - 64, p);
    return p;
}

/* Signs one chunk: in one buffer up to the stream window (the keyvault signer too), else
 * streamed. */
static enum dc_status std_sign(struct builder *b, struct std_chunk *c, struct dc_err *err)
{
    if (c->plen - 64 > DC_STREAM_WINDOW)
        return dc_signer_sign_stream(b->author, std_feed, &c->s, c->sig, err);
    uint8_t *p = std_signed_bytes(c);
    enum dc_status st = dc_signer_sign(b->author, p, c->plen - 64, c->sig, err);
    dc_memzero(p, c->plen - 64);
    free(p);
    return st;
}

/* Signs the waiting chunks with one sign_many and writes them, in order. */
static enum dc_status std_flush(struct builder *b, struct dc_err *err)
{
    size_t n = b->npend;
    if (n == 0)
        return DC_OK;
    const uint8_t *msgs[SIGN_BATCH];
    size_t lens[SIGN_BATCH];
    uint8_t(*sigs[SIGN_BATCH])[64];
    for (size_t i = 0; i < n; i++) {
        msgs[i] = std_signed_bytes(&b->pend[i]);
        lens[i] = b->pend[i].plen - 64;
        sigs[i] = &b->pend[i].sig;
    }
    enum dc_status st = dc_signer_sign_many(b->author, n, msgs, lens, sigs, err);
    for (size_t i = 0; i < n; i++) {
        dc_memzero((uint8_t *)msgs[i], lens[i]);
        free((uint8_t *)msgs[i]);
    }
    for (size_t i = 0; i < n && st == DC_OK; i++)
        st = put_chunk(b, b->pend[i].type, &b->pend[i].s, b->pend[i].plen, err);
    b->npend = 0;
    b->pend_bytes = 0;
    return st;
}

/* One standard chunk from bytes [off, off + len) of part (which must stay until the next
 * std_flush): held back for a batch when small, else signed, encrypted and appended after
 * the waiting ones. */
static enum dc_status put_standard(struct builder *b, uint8_t type,
                                   const struct dc_dmime_part *pt, size_t off, size_t len,
                                   uint8_t flags, struct dc_err *err)
{
    struct std_chunk one;
    enum dc_status st;
    if (b->npend == SIGN_BATCH && (st = std_flush(b, err)) != DC_OK)
        return st;
    struct std_chunk *c = &b->pend[b->npend];
    if ((st = std_prepare(type, pt, off, len, flags, b->release, c, err)) != DC_OK)
        return st;
    if (c->plen - 64 <= SIGN_BATCH_ONE) {
        if (b->pend_bytes + c->plen > SIGN_BATCH_BYTES && (st = std_flush(b, err)) != DC_OK)
            return st;
        if (c != &b->pend[b->npend]) { /* flushed: the entry moves to the front */
            b->pend[0] = *c;
            b->pend[0].s.sig = b->pend[0].sig;
        }
        b->pend_bytes += b->pend[b->npend].plen;
        b->npend++;
        return DC_OK;
    }
    one = *c;
    one.s.sig = one.sig;
    if ((st = std_flush(b, err)) != DC_OK)
        return st;
    st = std_sign(b, &one, err);
    if (st == DC_OK)
        st = put_chunk(b, type, &one.s, one.plen, err);
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

/* What a draft must hold before anything is written. */
static enum dc_status draft_check(const struct dc_dmime_draft *d, const struct dc_fmap *map,
                                  struct dc_err *err)
{
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
    return DC_OK;
}

/* The ephemeral key (*eph) and the four KEKs, then chunks 1 (ephemeral), 2 (origin) and 3
 * (destination). */
static enum dc_status put_envelope(struct builder *b, const struct dc_dmime_draft *d,
                                   struct dc_enc_key **eph, struct dc_err *err)
{
    enum dc_status st = dc_enc_key_generate(eph, err);
    if (st != DC_OK)
        return st;
    const uint8_t *pubs[4] = {d->author_enc, d->origin_enc, d->destination_enc, d->recipient_enc};
    for (unsigned a = 0; a < 4; a++) {
        st = dc_kek_derive(*eph, pubs[a], &b->keks[a], err);
        if (st != DC_OK)
            return dc_fail(err, st, "D/MIME: %s encryption key unusable", dc_actor_name(a));
    }
    if ((st = out_header(b, DC_CHUNK_EPHEMERAL, DC_SECP_PUB_LEN, err)) ||
        (st = out_put(b, (*eph)->pub, DC_SECP_PUB_LEN, err)))
        return st;
    chunk_done(b, DC_CHUNK_EPHEMERAL);

    /* The texts stay in the builder until the end: their chunks may wait for a batch. */
    b->env[0] = dc_xasprintf("Author: <%s>\r\nAuthor-Signet: [%s]\r\nDestination: <%s>\r\n"
                             "Destination-Signet: [%s]\r\n",
                             d->author, d->author_fp, d->destination, d->destination_fp);
    b->env[1] = dc_xasprintf("Recipient: <%s>\r\nRecipient-Signet: [%s]\r\nOrigin: <%s>\r\n"
                             "Origin-Signet: [%s]\r\n",
                             d->recipient, d->recipient_fp, d->origin, d->origin_fp);
    for (unsigned i = 0; i < 2; i++) {
        b->envp[i] = (struct dc_dmime_part){(const uint8_t *)b->env[i], strlen(b->env[i]), 0,
                                            NULL, 0};
        st = put_standard(b, i == 0 ? DC_CHUNK_ORIGIN : DC_CHUNK_DESTINATION, &b->envp[i], 0,
                          b->envp[i].len, 0, err);
        if (st != DC_OK)
            return st;
    }
    return DC_OK;
}

/* The common and other headers, the display parts, and the attachments (each cut into
 * chunks of at most DC_DMIME_MAX_CHUNK_DATA, the later ones flagged as continuations). */
static enum dc_status put_content(struct builder *b, const struct dc_dmime_draft *d,
                                  struct dc_err *err)
{
    enum dc_status st;
    b->hdrp[0] = (struct dc_dmime_part){d->common, d->common_len, 0, NULL, 0};
    b->hdrp[1] = (struct dc_dmime_part){d->other, d->other_len, 0, NULL, 0};
    if ((st = put_standard(b, DC_CHUNK_COMMON, &b->hdrp[0], 0, b->hdrp[0].len, 0, err)) ||
        (st = put_standard(b, DC_CHUNK_HEADERS, &b->hdrp[1], 0, b->hdrp[1].len, 0, err)))
        return st;
    for (size_t i = 0; i < d->ndisplay; i++)
        if ((st = put_standard(b, DC_CHUNK_DISPLAY, &d->display[i], 0, d->display[i].len,
                               d->display[i].flags, err)))
            return st;
    for (size_t i = 0; i < d->nattach; i++) {
        const struct dc_dmime_part *pt = &d->attach[i];
        size_t at = 0;
        if (pt->len == 0)
            return dc_fail(err, DC_ERR_ARG, "D/MIME: attachment %zu is empty", i);
        while (at < pt->len) {
            size_t n = pt->len - at;
            uint8_t fl = pt->flags;
            if (n > DC_DMIME_MAX_CHUNK_DATA) {
                n = DC_DMIME_MAX_CHUNK_DATA;
                fl |= DC_DMIME_FLAG_CONTINUATION;
            }
            if ((st = put_standard(b, DC_CHUNK_ATTACH, pt, at, n, fl, err)))
                return st;
            at += n;
        }
    }
    return std_flush(b, err);
}

/* The author's tree signature (225) and full signature (226), then zeroed placeholders for
 * the origin's three signatures. */
static enum dc_status put_signatures(struct builder *b, const struct dc_signer *author,
                                     struct dc_err *err)
{
    uint8_t sig[64], *tree = NULL;
    size_t tl;
    dmime_tree_data_quirk(b->types, b->hashes, b->nh, &tree, &tl);
    enum dc_status st = dc_signer_sign(author, tree, tl, sig, err);
    free(tree);
    if (st == DC_OK)
        st = put_sig_chunk(b, DC_CHUNK_SIG_TREE, sig, err);
    /* 226 signs every chunk so far, 225 included. */
    if (st == DC_OK) {
        struct dc_dmime view = {.bin = b->map ? b->map->p : b->heap.data, .len = b->len,
                                .map = b->map};
        st = dmime_sign_range(author, &view, 6, b->len, sig, err);
    }
    if (st == DC_OK)
        st = put_sig_chunk(b, DC_CHUNK_SIG_AUTHOR, sig, err);
    memset(sig, 0, sizeof(sig)); /* placeholders the origin fills in */
    if (st == DC_OK)
        st = put_sig_chunk(b, DC_CHUNK_SIG_META_BOUNCE, sig, err);
    if (st == DC_OK)
        st = put_sig_chunk(b, DC_CHUNK_SIG_DISPLAY_BOUNCE, sig, err);
    if (st == DC_OK)
        st = put_sig_chunk(b, DC_CHUNK_SIG_ORIGIN, sig, err);
    return st;
}

/* Fills in the message header and hands the bytes over to a parsed message. */
static enum dc_status finish_message(struct builder *b, struct dc_dmime **out,
                                     struct dc_err *err)
{
    struct dc_fmap *map = b->map;
    if (b->len - 6 > 0xffffffffu)
        return dc_fail(err, DC_ERR_LIMIT, "D/MIME: message of %zu bytes exceeds 4 GiB", b->len);
    uint8_t *base = map ? map->p : b->heap.data;
    size_t body = b->len - 6;
    base[0] = (uint8_t)(DC_DMIME_MAGIC >> 8);
    base[1] = (uint8_t)DC_DMIME_MAGIC;
    base[2] = (uint8_t)(body >> 24);
    base[3] = (uint8_t)(body >> 16);
    base[4] = (uint8_t)(body >> 8);
    base[5] = (uint8_t)body;
    struct dc_dmime *m = dc_xcalloc(1, sizeof(*m));
    if (map) {
        map->len = b->len;
        m->bin = map->p;
        m->len = b->len;
        m->map = map;
    } else {
        m->bin = dc_buf_steal(&b->heap, &m->len);
    }
    enum dc_status st = dmime_parse_into(m, err);
    if (st != DC_OK) {
        dc_dmime_free(m);
        return st;
    }
    *out = m;
    return DC_OK;
}

static enum dc_status build(const struct dc_dmime_draft *d, const struct dc_signer *author,
                            struct dc_fmap *map, struct dc_dmime **out, struct dc_err *err)
{
    *out = NULL;
    enum dc_status st = draft_check(d, map, err);
    if (st != DC_OK)
        return st;

    struct builder b = {.author = author, .map = map, .release = &d->release};
    b.pend = dc_xcalloc(SIGN_BATCH, sizeof(*b.pend));
    dc_buf_init(&b.heap);
    b.keks = dc_secure_alloc(4 * sizeof(struct dc_kek));
    struct dc_enc_key *eph = NULL;
    uint8_t hdr[6] = {0};
    st = out_put(&b, hdr, 6, err); /* the message header, filled in last */
    if (st == DC_OK)
        st = put_envelope(&b, d, &eph, err);
    if (st == DC_OK)
        st = put_content(&b, d, err);
    if (st == DC_OK)
        st = put_signatures(&b, author, err);
    if (st == DC_OK)
        st = finish_message(&b, out, err);
    if (b.ch) {
        uint8_t junk[DC_SHA512_LEN];
        dc_sha512_final(b.ch, junk);
    }
    free(b.types);
    free(b.hashes);
    free(b.pend);
    free(b.env[0]);
    free(b.env[1]);
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
