/*
 * dc_dmime_read - D/MIME codec, part two: opening a message as one actor (keyslot, envelope
 * chunks), finding the signing keys from signets, decrypting and verifying the chunks and
 * signatures (whole or streamed in windows), and the origin's signatures on a message it
 * opened. The chunk table, parsing and keyslots are in dc_dmime.c.
 */
#include "dc_dmime_int.h"

#include "dc_signet.h"

#include <stdlib.h>
#include <string.h>

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

/* Checks the 69-byte header at the start of a decrypted standard payload p: the data size
 * and the pad length byte (the padding bytes themselves are the caller's to check). */
static enum dc_status std_head(const struct dc_dmime_chunk *c, const uint8_t *p, size_t *dlen,
                               size_t *padlen, struct dc_err *err)
{
    size_t plen = c->payload_len;
    switch (dmime_std_sizes(plen, p + 64, dlen, padlen)) {
    case DMIME_STD_OK: return DC_OK;
    case DMIME_STD_ZERO:
        return dc_fail(err, DC_ERR_FORMAT, "D/MIME: " CHUNK_FMT ": data size is zero",
                       CHUNK_ARGS(c));
    case DMIME_STD_OVER:
        return dc_fail(err, DC_ERR_FORMAT,
                       "D/MIME: " CHUNK_FMT ": data size %zu exceeds the payload (%zu)",
                       CHUNK_ARGS(c), *dlen, plen - DC_DMIME_STD_HDR);
    case DMIME_STD_PADLEN: break;
    }
    return dc_fail(err, DC_ERR_FORMAT,
                   "D/MIME: " CHUNK_FMT ": pad length byte %u, expected %u (%zu padding bytes)",
                   CHUNK_ARGS(c), p[68], (unsigned)(*padlen & 0xff), *padlen);
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
        /* The SOKs with the MSG bit first, the POK last: a domain set up by dimectl signs its
         * origin signatures with its SOK (the POK stays offline), and each key tried before
         * the right one costs a whole Ed25519 verification, three times per message. A
         * domain that signs with its POK (libdime, --pok-online) lists no MSG SOK. */
        struct dc_sok soks[DC_DMIME_MAX_ORIGIN_KEYS - 1];
        uint8_t pok[DC_ED25519_PUB_LEN];
        if ((st = fp_match(origin, DC_SIGNET_ORG, r->env.origin_fp, "origin", err)) ||
            (st = dc_signet_signing_key(origin, pok, err)))
            return st;
        size_t n = 0, ns = dc_signet_soks(origin, soks, DC_DMIME_MAX_ORIGIN_KEYS - 1);
        if (ns > DC_DMIME_MAX_ORIGIN_KEYS - 1)
            ns = DC_DMIME_MAX_ORIGIN_KEYS - 1;
        for (size_t i = 0; i < ns; i++)
            if (soks[i].perm & DC_SOK_MSG)
                memcpy(out->origin[n++], soks[i].pub, DC_ED25519_PUB_LEN);
        memcpy(out->origin[n++], pok, DC_ED25519_PUB_LEN);
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
    if (i >= r->m->nchunks || dmime_info_of(r->m->chunks[i].type)->kind != PK_STANDARD)
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
        const struct chunk_info *ci = dmime_info_of(c->type);
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
        dc_signer_input(signer, DC_DMIME_IN_ORIGIN);
        st = dmime_sign_range(signer, m, s0, s1, sig, err);
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
