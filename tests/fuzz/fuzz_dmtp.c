/*
 * Fuzz target: the DMTP wire codec and the relay's record path. The first byte chooses:
 *   0: command lines (framed by dc_dmtp_line, parsed by dc_dmtp_cmd_parse);
 *   1: a reply (lines added to a dc_dmtp_reply, the first [...] decoded as a signet);
 *   2: TXT RDATA as a resolver returns it (split into character-strings, parsed as a DIME
 *      record).
 * Invariants: accepted commands carry valid names and fingerprints; a reply line that was
 * accepted formats back to the same bytes; failures carry a message.
 */
#include <stdlib.h>
#include <string.h>

#include "dc_dmtp.h"
#include "dc_mrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void commands(const uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t ll;
        enum dc_status s = dc_dmtp_line(p, n, DC_DMTP_CMD_MAX, &ll);
        if (s == DC_ERR_TRUNCATED)
            return;
        if (s == DC_ERR_LIMIT) {
            if (n < DC_DMTP_CMD_MAX)
                abort();
            p += DC_DMTP_CMD_MAX - 1;
            n -= DC_DMTP_CMD_MAX - 1;
            continue;
        }
        struct dc_dmtp_cmd c;
        struct dc_err err = {0};
        s = dc_dmtp_cmd_parse((const char *)p, ll, &c, &err);
        if (s != DC_OK) {
            if (err.code != s || err.msg[0] == '\0')
                abort();
        } else {
            if (c.nfp > 2)
                abort();
            for (size_t i = 0; i < c.nfp; i++)
                if (strlen(c.fp[i]) != DC_FP_B64_LEN)
                    abort();
            if ((c.verb == DC_DMTP_SGNT || c.verb == DC_DMTP_VRFY || c.verb == DC_DMTP_HIST ||
                 c.verb == DC_DMTP_EHLO) && dc_dmtp_check_name(c.name, NULL) != DC_OK)
                abort();
        }
        p += ll + 2;
        n -= ll + 2;
    }
}

static void reply(const uint8_t *p, size_t n)
{
    struct dc_dmtp_reply r;
    dc_dmtp_reply_init(&r);
    while (n > 0 && !r.done) {
        size_t ll;
        if (dc_dmtp_line(p, n, DC_DMTP_LINE_MAX, &ll) != DC_OK)
            break;
        struct dc_err err = {0};
        size_t before = r.nlines;
        if (dc_dmtp_reply_add(&r, (const char *)p, ll, &err) != DC_OK) {
            if (err.msg[0] == '\0')
                abort();
            break;
        }
        /* the accepted line formats back to itself */
        struct dc_buf b;
        dc_buf_init(&b);
        bool more = ll > 3 && p[3] == '-';
        dc_dmtp_reply_put(&b, r.code, more, "%s", r.lines[before]);
        if (ll > 3 && (b.len != ll + 2 || memcmp(b.data, p, ll) != 0))
            abort();
        dc_buf_free(&b);
        p += ll + 2;
        n -= ll + 2;
    }
    const char *v;
    size_t vl;
    if (r.nlines > 0 && dc_dmtp_bracket(r.lines[0], &v, &vl, NULL) == DC_OK) {
        struct dc_signet *s = NULL;
        if (dc_signet_from_b64(v, vl, &s, NULL) == DC_OK)
            dc_signet_free(s);
    }
    dc_dmtp_reply_free(&r);
}

static void record(const uint8_t *p, size_t n)
{
    struct dc_mrec_str strs[64];
    size_t ns;
    struct dc_err err = {0};
    if (dc_mrec_rdata_strings(p, n, strs, 64, &ns, &err) != DC_OK) {
        if (err.msg[0] == '\0')
            abort();
        return;
    }
    size_t total = 0;
    for (size_t i = 0; i < ns; i++) {
        if (strs[i].len > 255 || (const uint8_t *)strs[i].ptr < p ||
            (const uint8_t *)strs[i].ptr + strs[i].len > p + n)
            abort();
        total += strs[i].len + 1;
    }
    if (total != n)
        abort();
    struct dc_mrec *r = NULL;
    if (dc_mrec_parse(strs, ns, &r, NULL) == DC_OK)
        dc_mrec_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0: commands(data + 1, size - 1); break;
    case 1: reply(data + 1, size - 1); break;
    default: record(data + 1, size - 1); break;
    }
    return 0;
}
