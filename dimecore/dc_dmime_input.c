/*
 * dc_dmime_input - the shape check of signature inputs (dc_dmime.h, "signature inputs"),
 * on the parser's own chunk rules (dmime_chunk_head, dmime_required_seen, dmime_std_sizes)
 * so that what the checker accepts and what the parser accepts cannot drift apart. A
 * streaming walk: chunk headers are collected byte by byte, payloads and keyslots skipped by
 * count, so memory is constant whatever the input size.
 */
#include "dc_dmime_int.h"

#include <stdbool.h>
#include <string.h>

const char *dc_dmime_input_name(enum dc_dmime_input kind)
{
    switch (kind) {
    case DC_DMIME_IN_CHUNK: return "chunk signature input";
    case DC_DMIME_IN_TREE: return "author tree signature input";
    case DC_DMIME_IN_AUTHOR_FULL: return "author full signature input";
    case DC_DMIME_IN_ORIGIN: return "origin signature input";
    }
    return "signature input";
}

void dc_dmime_input_init(struct dc_dmime_input_check *c, enum dc_dmime_input kind)
{
    memset(c, 0, sizeof(*c));
    c->kind = kind;
    c->last_rank = -1;
    c->last_type = -1;
}

/* Records the first failure: every later call fails too. */
static enum dc_status fail(struct dc_dmime_input_check *c, enum dc_status st)
{
    c->failed = st;
    return st;
}

/* A whole chunk header of a chunk-sequence input: the parser's checks, then the input's
 * own (starts with the ephemeral chunk, stops where its signature's range stops). */
static enum dc_status seq_header(struct dc_dmime_input_check *c, struct dc_err *err)
{
    const char *what = dc_dmime_input_name(c->kind);
    struct dmime_order ord = {c->last_rank, c->seen};
    const struct chunk_info *ci;
    size_t plen, nslots, at = (size_t)(c->off - 4);
    struct dc_err why = {0};
    enum dc_status st = dmime_chunk_head(c->hdr, at, &ord, &ci, &plen, &nslots, &why);
    if (st != DC_OK)
        return dc_fail(err, st, "%s: %s", what, why.msg);
    if (c->last_type < 0 && ci->type != DC_CHUNK_EPHEMERAL)
        return dc_fail(err, DC_ERR_FORMAT, "%s: starts with chunk %u (%s), not the ephemeral "
                       "chunk", what, ci->type, ci->name);
    if ((c->kind == DC_DMIME_IN_AUTHOR_FULL && ci->type > DC_CHUNK_SIG_TREE) ||
        (c->kind == DC_DMIME_IN_ORIGIN && ci->type == DC_CHUNK_SIG_ORIGIN))
        return dc_fail(err, DC_ERR_FORMAT, "%s: chunk %u (%s) at offset %zu is past the "
                       "signed range", what, ci->type, ci->name, at);
    c->last_rank = ord.last_rank;
    c->seen = ord.seen;
    c->last_type = ci->type;
    c->left = (uint64_t)plen + (uint64_t)nslots * DC_DMIME_SLOT_LEN;
    c->hlen = 0;
    return DC_OK;
}

static enum dc_status seq_update(struct dc_dmime_input_check *c, const uint8_t *p, size_t n,
                                 struct dc_err *err)
{
    while (n > 0) {
        if (c->left > 0) {
            size_t k = c->left < n ? (size_t)c->left : n;
            c->left -= k;
            c->off += k;
            p += k;
            n -= k;
            continue;
        }
        c->hdr[c->hlen++] = *p++;
        c->off++;
        n--;
        if (c->hlen == 4) {
            enum dc_status st = seq_header(c, err);
            if (st != DC_OK)
                return st;
        }
    }
    return DC_OK;
}

/* A chunk input: the header's sizes once its 5 bytes are in, then every padding byte must
 * repeat the pad length byte (the whole length is checked at the end). */
static enum dc_status chunk_update(struct dc_dmime_input_check *c, const uint8_t *p, size_t n,
                                   struct dc_err *err)
{
    for (size_t i = 0; i < n; i++, c->off++) {
        if (c->hlen < 5) {
            c->hdr[c->hlen++] = p[i];
            if (c->hlen == 5) {
                c->ds = dc_get_be(c->hdr, 3);
                if (c->ds == 0)
                    return dc_fail(err, DC_ERR_FORMAT, "%s: data size is zero",
                                   dc_dmime_input_name(c->kind));
            }
            continue;
        }
        if (c->off >= 5 + (uint64_t)c->ds && p[i] != c->hdr[4])
            return dc_fail(err, DC_ERR_FORMAT, "%s: padding byte at offset %llu is %u, not the "
                           "pad length byte %u", dc_dmime_input_name(c->kind),
                           (unsigned long long)c->off, p[i], c->hdr[4]);
    }
    return DC_OK;
}

enum dc_status dc_dmime_input_update(struct dc_dmime_input_check *c, const uint8_t *p, size_t n,
                                     struct dc_err *err)
{
    if (c->failed != DC_OK)
        return dc_fail(err, c->failed, "%s: already refused", dc_dmime_input_name(c->kind));
    enum dc_status st = DC_OK;
    switch (c->kind) {
    case DC_DMIME_IN_CHUNK: st = chunk_update(c, p, n, err); break;
    case DC_DMIME_IN_TREE:
        for (size_t i = 0; i < n; i++)
            c->zeros = p[i] != 0 ? 0 : c->zeros < 64 ? c->zeros + 1 : 64;
        c->off += n;
        break;
    case DC_DMIME_IN_AUTHOR_FULL:
    case DC_DMIME_IN_ORIGIN: st = seq_update(c, p, n, err); break;
    }
    return st == DC_OK ? DC_OK : fail(c, st);
}

static enum dc_status chunk_final(struct dc_dmime_input_check *c, const char *what,
                                  struct dc_err *err)
{
    uint64_t plen = c->off + 64; /* the payload: signature, then this input */
    if (plen % 16 != 0 || plen < DC_DMIME_MIN_PAYLOAD || plen > DC_DMIME_MAX_PAYLOAD)
        return dc_fail(err, DC_ERR_FORMAT, "%s: %llu bytes is not the size of a chunk's "
                       "plaintext (a multiple of 16, at least 192)", what,
                       (unsigned long long)c->off);
    size_t ds, pad;
    switch (dmime_std_sizes((size_t)plen, c->hdr, &ds, &pad)) {
    case DMIME_STD_OK: return DC_OK;
    case DMIME_STD_ZERO: return dc_fail(err, DC_ERR_FORMAT, "%s: data size is zero", what);
    case DMIME_STD_OVER:
        return dc_fail(err, DC_ERR_FORMAT, "%s: data size %zu exceeds the %llu bytes", what,
                       ds, (unsigned long long)c->off - 5);
    case DMIME_STD_PADLEN: break;
    }
    return dc_fail(err, DC_ERR_FORMAT, "%s: pad length byte %u, expected %u (%zu padding "
                   "bytes)", what, c->hdr[4], (unsigned)(pad & 0xff), pad);
}

static enum dc_status seq_final(struct dc_dmime_input_check *c, const char *what,
                                struct dc_err *err)
{
    if (c->last_type < 0)
        return dc_fail(err, DC_ERR_TRUNCATED, "%s: no chunk", what);
    if (c->hlen != 0 || c->left != 0)
        return dc_fail(err, DC_ERR_TRUNCATED, "%s: ends inside chunk %d (%s)", what,
                       c->last_type, dc_dmime_chunk_name((unsigned)c->last_type));
    bool last_ok;
    const char *want;
    if (c->kind == DC_DMIME_IN_AUTHOR_FULL) {
        last_ok = c->last_type == DC_CHUNK_SIG_TREE;
        want = "the author tree signature chunk";
    } else {
        unsigned t = (unsigned)c->last_type;
        last_ok = t == DC_CHUNK_COMMON || t == DC_CHUNK_HEADERS || t == DC_CHUNK_DISPLAY ||
                  t == DC_CHUNK_SIG_AUTHOR || t == DC_CHUNK_SIG_META_BOUNCE ||
                  t == DC_CHUNK_SIG_DISPLAY_BOUNCE;
        want = "the headers, display, author signature or bounce signature chunks";
    }
    if (!last_ok)
        return dc_fail(err, DC_ERR_FORMAT, "%s: ends with chunk %d (%s), not at %s", what,
                       c->last_type, dc_dmime_chunk_name((unsigned)c->last_type), want);
    struct dmime_order ord = {c->last_rank, c->seen};
    struct dc_err why = {0};
    enum dc_status st = dmime_required_seen(&ord, c->last_rank, &why);
    return st == DC_OK ? DC_OK : dc_fail(err, st, "%s: %s", what, why.msg);
}

enum dc_status dc_dmime_input_final(struct dc_dmime_input_check *c, struct dc_err *err)
{
    const char *what = dc_dmime_input_name(c->kind);
    if (c->failed != DC_OK)
        return dc_fail(err, c->failed, "%s: already refused", what);
    enum dc_status st = DC_OK;
    switch (c->kind) {
    case DC_DMIME_IN_CHUNK: st = chunk_final(c, what, err); break;
    case DC_DMIME_IN_TREE:
        if (c->off % 64 != 0 || c->off < 4 * 64)
            st = dc_fail(err, DC_ERR_FORMAT, "%s: %llu bytes is not four or more 64-byte "
                         "hashes", what, (unsigned long long)c->off);
        else if (c->zeros < 64)
            st = dc_fail(err, DC_ERR_FORMAT, "%s: the last 64 bytes are not zero", what);
        break;
    case DC_DMIME_IN_AUTHOR_FULL:
    case DC_DMIME_IN_ORIGIN: st = seq_final(c, what, err); break;
    }
    return st == DC_OK ? DC_OK : fail(c, st);
}

enum dc_status dc_dmime_input_check(enum dc_dmime_input kind, const uint8_t *p, size_t n,
                                    struct dc_err *err)
{
    struct dc_dmime_input_check c;
    dc_dmime_input_init(&c, kind);
    enum dc_status st = dc_dmime_input_update(&c, p, n, err);
    return st == DC_OK ? dc_dmime_input_final(&c, err) : st;
}
