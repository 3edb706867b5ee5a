/*
 * dc_dmtp - DMTP command and reply codec. See dc_dmtp.h for the grammar and the limits.
 */
#include "dc_dmtp.h"

#include "dc_mrec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    enum dc_dmtp_verb verb;
} verbs[] = {
    {"EHLO", DC_DMTP_EHLO}, {"MAIL", DC_DMTP_MAIL}, {"RCPT", DC_DMTP_RCPT},
    {"DATA", DC_DMTP_DATA}, {"SGNT", DC_DMTP_SGNT}, {"VRFY", DC_DMTP_VRFY},
    {"HIST", DC_DMTP_HIST}, {"MODE", DC_DMTP_MODE}, {"NOOP", DC_DMTP_NOOP},
    {"RSET", DC_DMTP_RSET}, {"QUIT", DC_DMTP_QUIT}, {"HELP", DC_DMTP_HELP},
};

const char *dc_dmtp_verb_name(enum dc_dmtp_verb v)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (verbs[i].verb == v)
            return verbs[i].name;
    return "?";
}

enum dc_status dc_dmtp_line(const uint8_t *buf, size_t len, size_t max, size_t *linelen)
{
    size_t lim = len < max ? len : max;
    for (size_t i = 0; i + 1 < lim; i++) {
        if (buf[i] == '\r' && buf[i + 1] == '\n') {
            *linelen = i;
            return DC_OK;
        }
    }
    return len >= max ? DC_ERR_LIMIT : DC_ERR_TRUNCATED;
}

static bool printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

enum dc_status dc_dmtp_check_name(const char *name, struct dc_err *err)
{
    const char *at = strchr(name, '@');
    const char *dom = name;
    if (at != NULL) {
        size_t ll = (size_t)(at - name);
        if (ll == 0 || ll > 64)
            return dc_fail(err, DC_ERR_FORMAT, "local part must have 1..64 characters");
        for (size_t i = 0; i < ll; i++)
            if (strchr("<>[]()\\,;:\" ", name[i]) != NULL || name[i] < 0x21 || name[i] > 0x7e)
                return dc_fail(err, DC_ERR_FORMAT, "bad character in local part");
        dom = at + 1;
    }
    struct dc_err e = {0};
    if (dc_mrec_check_host(dom, strlen(dom), "domain", &e) != DC_OK)
        return dc_fail(err, DC_ERR_FORMAT, "%s", e.msg);
    return DC_OK;
}

/* Copies token [p, p+n) into out (size cap) without the enclosing pair open/close, which is
 * optional when optional is true. */
static enum dc_status unwrap(const char *p, size_t n, char open, char close, bool optional,
                             char *out, size_t cap, struct dc_err *err)
{
    if (n >= 2 && p[0] == open && p[n - 1] == close) {
        p++;
        n -= 2;
    } else if (!optional || (n > 0 && (p[0] == open || p[n - 1] == close))) {
        return dc_fail(err, DC_ERR_FORMAT, "argument must be enclosed in %c%c", open, close);
    }
    if (n == 0 || n >= cap)
        return dc_fail(err, DC_ERR_FORMAT, "argument must have 1..%zu characters", cap - 1);
    memcpy(out, p, n);
    out[n] = '\0';
    return DC_OK;
}

static enum dc_status parse_fp(const char *p, size_t n, struct dc_dmtp_cmd *c,
                               struct dc_err *err)
{
    char tmp[DC_FP_B64_LEN + 1];
    enum dc_status s = unwrap(p, n, '[', ']', false, tmp, sizeof(tmp), err);
    if (s != DC_OK)
        return s;
    if (strcasecmp(tmp, "fingerprint") == 0)
        return DC_OK; /* libdime's placeholder */
    size_t l = strlen(tmp);
    if (l != DC_FP_B64_LEN || strspn(tmp, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                          "0123456789+/") != l)
        return dc_fail(err, DC_ERR_FORMAT, "a fingerprint is %d base64 characters",
                       DC_FP_B64_LEN);
    memcpy(c->fp[c->nfp++], tmp, l + 1);
    return DC_OK;
}

enum dc_status dc_dmtp_cmd_parse(const char *line, size_t len, struct dc_dmtp_cmd *out,
                                 struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    if (len + 2 > DC_DMTP_CMD_MAX)
        return dc_fail(err, DC_ERR_FORMAT, "command line too long");
    if (!printable(line, len))
        return dc_fail(err, DC_ERR_FORMAT, "command contains non-printable bytes");
    /* split on spaces */
    const char *tok[8];
    size_t tl[8], nt = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && line[i] == ' ')
            i++;
        if (i == len)
            break;
        size_t st = i;
        while (i < len && line[i] != ' ')
            i++;
        if (nt == 8)
            return dc_fail(err, DC_ERR_FORMAT, "too many arguments");
        tok[nt] = line + st;
        tl[nt++] = i - st;
    }
    if (nt == 0)
        return dc_fail(err, DC_ERR_NOTFOUND, "empty command");
    for (size_t v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++)
        if (tl[0] == 4 && strncasecmp(tok[0], verbs[v].name, 4) == 0)
            out->verb = verbs[v].verb;
    if (out->verb == 0)
        return dc_fail(err, DC_ERR_NOTFOUND, "unknown command");
    size_t nargs = nt - 1;
    enum dc_status s = DC_OK;
    switch (out->verb) {
    case DC_DMTP_MAIL:
    case DC_DMTP_RCPT:
        return DC_OK; /* arguments belong to the mail-transfer part */
    case DC_DMTP_MODE:
    case DC_DMTP_NOOP:
    case DC_DMTP_RSET:
    case DC_DMTP_QUIT:
    case DC_DMTP_HELP:
        if (nargs != 0)
            return dc_fail(err, DC_ERR_FORMAT, "%s takes no argument", dc_dmtp_verb_name(out->verb));
        return DC_OK;
    case DC_DMTP_DATA:
        if (nargs > 1)
            return dc_fail(err, DC_ERR_FORMAT, "DATA takes at most a fingerprint");
        return nargs == 1 ? parse_fp(tok[1], tl[1], out, err) : DC_OK;
    case DC_DMTP_EHLO:
        if (nargs != 1)
            return dc_fail(err, DC_ERR_FORMAT, "EHLO takes one domain");
        s = unwrap(tok[1], tl[1], '<', '>', true, out->name, sizeof(out->name), err);
        if (s == DC_OK && strchr(out->name, '@') != NULL)
            return dc_fail(err, DC_ERR_FORMAT, "EHLO takes a domain");
        return s == DC_OK ? dc_dmtp_check_name(out->name, err) : s;
    case DC_DMTP_SGNT:
    case DC_DMTP_VRFY:
    case DC_DMTP_HIST: {
        size_t maxfp = out->verb == DC_DMTP_HIST ? 2 : 1;
        if (nargs < 1 || nargs > 1 + maxfp)
            return dc_fail(err, DC_ERR_FORMAT, "%s takes a name and at most %zu fingerprint%s",
                           dc_dmtp_verb_name(out->verb), maxfp, maxfp > 1 ? "s" : "");
        s = unwrap(tok[1], tl[1], '<', '>', true, out->name, sizeof(out->name), err);
        if (s == DC_OK)
            s = dc_dmtp_check_name(out->name, err);
        for (size_t k = 2; s == DC_OK && k < nt; k++)
            s = parse_fp(tok[k], tl[k], out, err);
        if (s == DC_OK && out->verb == DC_DMTP_VRFY && out->nfp != 1)
            return dc_fail(err, DC_ERR_FORMAT, "VRFY needs the fingerprint to compare");
        return s;
    }
    }
    return dc_fail(err, DC_ERR_NOTFOUND, "unknown command");
}

void dc_dmtp_reply_put(struct dc_buf *b, int code, bool more, const char *fmt, ...)
{
    char text[DC_DMTP_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    size_t tl = n < 0 ? 0 : (size_t)n;
    if (tl > DC_DMTP_LINE_MAX - 6)
        tl = DC_DMTP_LINE_MAX - 6; /* "NNN-" + CRLF */
    for (size_t i = 0; i < tl; i++)
        if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] > 0x7e)
            text[i] = '?';
    dc_buf_printf(b, "%03d%c", code, more ? '-' : ' ');
    dc_buf_append(b, text, tl);
    dc_buf_append(b, "\r\n", 2);
}

void dc_dmtp_reply_init(struct dc_dmtp_reply *r)
{
    memset(r, 0, sizeof(*r));
}

void dc_dmtp_reply_free(struct dc_dmtp_reply *r)
{
    for (size_t i = 0; i < r->nlines; i++)
        free(r->lines[i]);
    memset(r, 0, sizeof(*r));
}

enum dc_status dc_dmtp_reply_add(struct dc_dmtp_reply *r, const char *line, size_t len,
                                 struct dc_err *err)
{
    if (r->done)
        return dc_fail(err, DC_ERR_FORMAT, "reply line after the final one");
    if (len + 2 > DC_DMTP_LINE_MAX)
        return dc_fail(err, DC_ERR_LIMIT, "reply line too long");
    if (len < 3 || line[0] < '1' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
        line[2] < '0' || line[2] > '9')
        return dc_fail(err, DC_ERR_FORMAT, "reply does not start with a 3-digit code");
    if (len > 3 && line[3] != ' ' && line[3] != '-')
        return dc_fail(err, DC_ERR_FORMAT, "bad separator after the reply code");
    if (!printable(line, len))
        return dc_fail(err, DC_ERR_FORMAT, "reply contains non-printable bytes");
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (r->nlines > 0 && code != r->code)
        return dc_fail(err, DC_ERR_FORMAT, "reply code changed from %d to %d", r->code, code);
    if (r->nlines == DC_DMTP_REPLY_LINES)
        return dc_fail(err, DC_ERR_LIMIT, "more than %d reply lines", DC_DMTP_REPLY_LINES);
    r->code = code;
    r->lines[r->nlines++] = len > 4 ? dc_xstrndup(line + 4, len - 4) : dc_xstrdup("");
    r->done = len == 3 || line[3] == ' ';
    return DC_OK;
}

enum dc_status dc_dmtp_bracket(const char *t, const char **p, size_t *len, struct dc_err *err)
{
    const char *o = strchr(t, '[');
    const char *c = o != NULL ? strchr(o + 1, ']') : NULL;
    if (c == NULL)
        return dc_fail(err, DC_ERR_FORMAT, "reply carries no [...] value");
    *p = o + 1;
    *len = (size_t)(c - o - 1);
    return DC_OK;
}
