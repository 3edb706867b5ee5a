/*
 * rl_inbound_frame - the part of the inbound DATA path that runs before any key is used:
 * the message length from the D/MIME header, and the structure parse. Kept apart from
 * rl_inbound.c (which needs the keyvault, the cache and the resolver). The fuzz target
 * tests/fuzz/fuzz_dmtp_session.c drives the framing through the server's DATA path; the
 * parse is dc_dmime_parse (fuzz_dmime). See rl_inbound.h.
 */
#include "rl_inbound.h"

enum dc_status rl_inbound_frame(const uint8_t *p, size_t n, unsigned long max,
                                unsigned long size_hint, size_t *total, int *code,
                                struct dc_err *err)
{
    size_t off = 0;
    *code = 451;
    if (n < 2)
        return DC_ERR_TRUNCATED;
    uint32_t magic = dc_get_be(p, 2);
    if (magic == DC_DMIME_TRACING_MAGIC) {
        if (n < 4)
            return DC_ERR_TRUNCATED;
        size_t tl = dc_get_be(p + 2, 2);
        if (tl == 0)
            return dc_fail(err, DC_ERR_FORMAT, "empty tracing header");
        off = 4 + tl;
        if (n < off + 2)
            return DC_ERR_TRUNCATED;
        magic = dc_get_be(p + off, 2);
    }
    if (magic != DC_DMIME_MAGIC)
        return dc_fail(err, DC_ERR_MAGIC, "not a D/MIME message (magic %u)", (unsigned)magic);
    if (n < off + 6)
        return DC_ERR_TRUNCATED;
    uint64_t size = dc_get_be(p + off + 2, 4);
    uint64_t t = off + 6 + size;
    if (t > max) {
        *code = 552;
        return dc_fail(err, DC_ERR_LIMIT, "message of %llu bytes above the limit of %lu",
                       (unsigned long long)t, max);
    }
    if (size_hint != 0 && size_hint != t)
        return dc_fail(err, DC_ERR_FORMAT, "SIZE=%lu but the message header says %llu bytes",
                       size_hint, (unsigned long long)t);
    *total = (size_t)t;
    return DC_OK;
}

enum dc_status rl_inbound_parse(const uint8_t *p, size_t n, struct dc_dmime **out,
                                struct dc_err *err)
{
    return dc_dmime_parse(p, n, out, err);
}
