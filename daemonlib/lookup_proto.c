/*
 * lookup_proto - the lookup service's wire format. See lookup_proto.h and LOOKUP.md.
 */
#include "lookup_proto.h"

#include <stdbool.h>
#include <stdio.h>
#include <ctype.h>
#include <string.h>

/* The length of the word at p (up to the first byte that is not 0x21-0x7E). */
static size_t word_len(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && (unsigned char)p[i] >= 0x21 && (unsigned char)p[i] <= 0x7e)
        i++;
    return i;
}

/* The third word: the org signet's fingerprint (86 unpadded base64 characters), the rest of
 * the line. */
static enum dc_status org_fp_word(const char *p, size_t left, struct lookup_req *out,
                                  struct dc_err *err)
{
    bool good = left == DC_FP_B64_LEN;
    for (size_t i = 0; good && i < left; i++)
        good = isalnum((unsigned char)p[i]) || p[i] == '+' || p[i] == '/';
    if (!good) {
        memset(out, 0, sizeof(*out));
        return dc_fail(err, DC_ERR_FORMAT, "unexpected bytes after the local-domain (an org "
                       "fingerprint has %d base64 characters)", DC_FP_B64_LEN);
    }
    memcpy(out->org_fp, p, left);
    out->org_fp[left] = '\0';
    return DC_OK;
}

enum dc_status lookup_req_parse(const char *line, size_t len, struct lookup_req *out,
                                struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len < 8 || memcmp(line, "LOOKUP ", 7) != 0)
        return dc_fail(err, DC_ERR_FORMAT, "request must be: LOOKUP <name> [<local-domain> "
                       "[<org-fp>]]");
    const char *p = line + 7;
    size_t left = len - 7;
    char *dst[2] = {out->name, out->local};
    for (int w = 0; w < 2; w++) {
        size_t k = word_len(p, left);
        if (k == 0 || k > LOOKUP_WORD_MAX) {
            memset(out, 0, sizeof(*out));
            return dc_fail(err, DC_ERR_FORMAT, "%s: 1-%d printable bytes without spaces",
                           w == 0 ? "name" : "local-domain", LOOKUP_WORD_MAX);
        }
        memcpy(dst[w], p, k);
        dst[w][k] = '\0';
        p += k;
        left -= k;
        if (left == 0)
            return DC_OK;
        if (*p != ' ')
            break;
        p++;
        left--;
        if (w == 1)
            return org_fp_word(p, left, out, err);
    }
    bool after_local = out->local[0] != '\0';
    memset(out, 0, sizeof(*out));
    return dc_fail(err, DC_ERR_FORMAT, "unexpected bytes after the %s",
                   after_local ? "local-domain" : "name");
}

size_t lookup_req_format(const char *name, const char *local, const char *org_fp, char *out,
                         size_t cap)
{
    bool has_local = local != NULL && local[0] != '\0';
    bool has_fp = org_fp != NULL && org_fp[0] != '\0';
    size_t nl = strlen(name), ll = has_local ? strlen(local) : 0;
    if (nl == 0 || nl > LOOKUP_WORD_MAX || word_len(name, nl) != nl ||
        ll > LOOKUP_WORD_MAX || word_len(local ? local : "", ll) != ll ||
        (has_fp && (!has_local || strlen(org_fp) != DC_FP_B64_LEN ||
                    word_len(org_fp, DC_FP_B64_LEN) != DC_FP_B64_LEN)))
        return 0;
    int n = snprintf(out, cap, "LOOKUP %s%s%s%s%s\n", name, has_local ? " " : "",
                     has_local ? local : "", has_fp ? " " : "", has_fp ? org_fp : "");
    if (n < 0 || (size_t)n >= cap || (size_t)n > LOOKUP_REQ_MAX)
        return 0;
    return (size_t)n;
}

void lookup_put(struct dc_buf *b, const char *k, const char *v)
{
    dc_buf_printf(b, "%s=", k);
    for (const char *p = v; *p; p++)
        dc_buf_putc(b, (*p == '\n' || *p == '\r') ? ' ' : (uint8_t)*p);
    dc_buf_putc(b, '\n');
}

static const char *const outcome_names[] = {"secure", "insecure", "not-dime",
                                            "bogus",  "refused",  "tempfail"};

const char *lookup_outcome_name(enum lookup_outcome o)
{
    return (unsigned)o < 6 ? outcome_names[o] : "?";
}

int lookup_outcome_parse(const char *s)
{
    for (int i = 0; i < 6; i++)
        if (strcmp(s, outcome_names[i]) == 0)
            return i;
    return -1;
}
