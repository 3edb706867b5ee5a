/*
 * dc_mime - MIME parser over untrusted bytes. See dc_mime.h for the model and the limits.
 *
 * All scanning is index based with explicit bounds; nothing is copied out of the input except
 * the short lower-cased type strings and the decoded boundary.
 */
#include "dc_mime.h"

#include "dc_fmap.h"

#include <stdlib.h>
#include <string.h>

struct ctx {
    const uint8_t *p; /* whole input, for offsets in error messages */
    const struct dc_mime_limits *lim;
    size_t parts;
    struct dc_err *err;
    const struct dc_release *rel; /* NULL, or releases scanned body ranges */
};

void dc_mime_limits_default(struct dc_mime_limits *l)
{
    l->max_depth = DC_MIME_MAX_DEPTH;
    l->max_headers = DC_MIME_MAX_HEADERS;
    l->max_line = DC_MIME_MAX_LINE;
    l->max_parts = DC_MIME_MAX_PARTS;
    l->max_size = DC_MIME_MAX_SIZE;
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static int is_wsp(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/* End of the line starting at i (index just past its LF, or n). */
static size_t line_end(const uint8_t *p, size_t i, size_t n)
{
    const uint8_t *nl = memchr(p + i, '\n', n - i);
    return nl ? (size_t)(nl - p) + 1 : n;
}

/* Length of the line ending at the end of line [s, le): 0, 1 or 2. */
static size_t eol_len(const uint8_t *p, size_t s, size_t le)
{
    if (le == s || p[le - 1] != '\n')
        return 0;
    return (le - s >= 2 && p[le - 2] == '\r') ? 2 : 1;
}

static struct dc_mime_view view(const uint8_t *p, size_t a, size_t b)
{
    struct dc_mime_view v = {p + a, b - a};
    return v;
}

int dc_mime_name_is(const struct dc_mime_field *f, const char *name)
{
    size_t n = strlen(name);
    if (f->name.len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower(f->name.p[i]) != lower((unsigned char)name[i]))
            return 0;
    return 1;
}

const struct dc_mime_field *dc_mime_find(const struct dc_mime_entity *e, const char *name)
{
    for (size_t i = 0; i < e->nfields; i++)
        if (dc_mime_name_is(&e->fields[i], name))
            return &e->fields[i];
    return NULL;
}

void dc_mime_unfold(const struct dc_mime_field *f, struct dc_buf *out)
{
    const uint8_t *v = f->value.p;
    size_t n = f->value.len, a = 0, b = n;
    while (a < b && is_wsp(v[a]))
        a++;
    size_t start = out->len;
    dc_buf_reserve(out, b - a);
    for (size_t i = a; i < b; i++) {
        if (v[i] == '\r' && i + 2 < b && v[i + 1] == '\n' && is_wsp(v[i + 2])) {
            i++;
            continue;
        }
        if (v[i] == '\n' && i + 1 < b && is_wsp(v[i + 1]))
            continue;
        dc_buf_putc(out, v[i]);
    }
    /* Leading folding (value starting with a line ending) leaves spaces in front. */
    size_t lead = start;
    while (lead < out->len && is_wsp(out->data[lead]))
        lead++;
    if (lead > start) {
        memmove(out->data + start, out->data + lead, out->len - lead);
        out->len -= lead - start;
    }
    while (out->len > start && is_wsp(out->data[out->len - 1]))
        out->len--;
    out->data[out->len] = 0;
}

/* ---- Content-Type ---------------------------------------------------------------------- */

static int is_tspecial(uint8_t c)
{
    return c != 0 && strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static int is_token(uint8_t c)
{
    return c > 32 && c < 127 && !is_tspecial(c);
}

/* Skips spaces, tabs, line endings and (nested) comments. */
static void skip_cfws(const uint8_t *v, size_t n, size_t *i)
{
    while (*i < n) {
        uint8_t c = v[*i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            (*i)++;
        } else if (c == '(') {
            size_t depth = 0;
            while (*i < n) {
                c = v[*i];
                if (c == '\\' && *i + 1 < n) {
                    *i += 2;
                    continue;
                }
                (*i)++;
                if (c == '(')
                    depth++;
                else if (c == ')' && --depth == 0)
                    break;
            }
        } else {
            break;
        }
    }
}

static size_t take_token(const uint8_t *v, size_t n, size_t *i)
{
    size_t s = *i;
    while (*i < n && is_token(v[*i]))
        (*i)++;
    return *i - s;
}

/* Appends byte c to a bounded buffer; returns 0 when full. */
static int bput(uint8_t *b, size_t cap, size_t *len, uint8_t c)
{
    if (*len >= cap)
        return 0;
    b[(*len)++] = c;
    return 1;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (uint8_t)lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

#define CT_PIECES 16

struct bpiece {
    uint8_t val[DC_MIME_MAX_BOUNDARY];
    size_t len;
    int set;
};

/* Reads a parameter value (quoted string or token) into out. Returns 0 on syntax error,
 * -1 when too long, 1 when fine. ext: decode %XX (and, with skip_charset, drop the
 * charset'lang' prefix first). */
static int param_value(const uint8_t *v, size_t n, size_t *i, int ext, int skip_charset,
                       uint8_t *out, size_t *olen)
{
    uint8_t raw[DC_MIME_MAX_BOUNDARY * 3 + 64];
    size_t rl = 0;
    int over = 0; /* too long: still read to the end of the value, then report it */
    if (*i < n && v[*i] == '"') {
        (*i)++;
        for (;;) {
            if (*i >= n)
                return 0;
            uint8_t c = v[(*i)++];
            if (c == '"')
                break;
            if (c == '\r' || c == '\n')
                continue; /* folding inside a quoted string */
            if (c == '\\') {
                if (*i >= n)
                    return 0;
                c = v[(*i)++];
            }
            if (!bput(raw, sizeof(raw), &rl, c))
                over = 1;
        }
        if (over)
            return -1;
    } else {
        size_t s = *i, tl = take_token(v, n, i);
        if (tl == 0)
            return 0;
        if (tl > sizeof(raw))
            return -1;
        memcpy(raw, v + s, tl);
        rl = tl;
    }
    size_t k = 0;
    if (ext && skip_charset) {
        int quotes = 0;
        while (k < rl && quotes < 2)
            if (raw[k++] == '\'')
                quotes++;
        if (quotes < 2)
            return 0;
    }
    *olen = 0;
    for (; k < rl; k++) {
        uint8_t c = raw[k];
        if (ext && c == '%') {
            if (k + 2 >= rl)
                return 0;
            int h = hexval(raw[k + 1]), l = hexval(raw[k + 2]);
            if (h < 0 || l < 0)
                return 0;
            c = (uint8_t)(h * 16 + l);
            k += 2;
        }
        if (!bput(out, DC_MIME_MAX_BOUNDARY, olen, c))
            return -1;
    }
    return 1;
}

/* Case-insensitive compare of v[0..n) with the NUL-terminated lower-case s. */
static int ieq(const uint8_t *v, size_t n, const char *s)
{
    size_t m = strlen(s);
    if (n != m)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower(v[i]) != s[i])
            return 0;
    return 1;
}

enum dc_status dc_mime_content_type(const uint8_t *v, size_t n, char *ctype, size_t cap,
                                    uint8_t *boundary, size_t *blen, struct dc_err *err)
{
    size_t i = 0;
    *blen = 0;
    if (cap < 2)
        return dc_fail(err, DC_ERR_ARG, "content type buffer too small");
    ctype[0] = 0;
    skip_cfws(v, n, &i);
    size_t ts = i, tl = take_token(v, n, &i);
    skip_cfws(v, n, &i);
    if (tl == 0 || i >= n || v[i] != '/')
        return dc_fail(err, DC_ERR_FORMAT, "Content-Type: no type/subtype");
    i++;
    skip_cfws(v, n, &i);
    size_t ss = i, sl = take_token(v, n, &i);
    if (sl == 0)
        return dc_fail(err, DC_ERR_FORMAT, "Content-Type: empty subtype");
    if (tl + 1 + sl + 1 > cap)
        return dc_fail(err, DC_ERR_FORMAT, "Content-Type: type/subtype longer than %zu bytes",
                       cap - 1);
    size_t o = 0;
    for (size_t k = 0; k < tl; k++)
        ctype[o++] = (char)lower(v[ts + k]);
    ctype[o++] = '/';
    for (size_t k = 0; k < sl; k++)
        ctype[o++] = (char)lower(v[ss + k]);
    ctype[o] = 0;

    /* Parameters; a malformed one ends the list (the rest is ignored). */
    struct bpiece *pieces = dc_xcalloc(CT_PIECES, sizeof(*pieces));
    uint8_t plain[DC_MIME_MAX_BOUNDARY], star[DC_MIME_MAX_BOUNDARY];
    size_t plain_len = 0, star_len = 0;
    int have_plain = 0, have_star = 0, too_long = 0;
    for (;;) {
        skip_cfws(v, n, &i);
        if (i >= n || v[i] != ';')
            break;
        i++;
        skip_cfws(v, n, &i);
        size_t as = i, al = take_token(v, n, &i);
        if (al == 0)
            break;
        skip_cfws(v, n, &i);
        if (i >= n || v[i] != '=')
            break;
        i++;
        skip_cfws(v, n, &i);
        const uint8_t *a = v + as;
        int r = 1;
        if (ieq(a, al, "boundary")) {
            uint8_t tmp[DC_MIME_MAX_BOUNDARY];
            size_t tlen = 0;
            r = param_value(v, n, &i, 0, 0, tmp, &tlen);
            if (r == 1 && !have_plain) {
                memcpy(plain, tmp, tlen);
                plain_len = tlen;
                have_plain = 1;
            }
        } else if (ieq(a, al, "boundary*")) {
            uint8_t tmp[DC_MIME_MAX_BOUNDARY];
            size_t tlen = 0;
            r = param_value(v, n, &i, 1, 1, tmp, &tlen);
            if (r == 1 && !have_star) {
                memcpy(star, tmp, tlen);
                star_len = tlen;
                have_star = 1;
            }
        } else if (al >= 10 && ieq(a, 9, "boundary*") && a[9] >= '0' && a[9] <= '9') {
            /* boundary*N or boundary*N* with N in 0..15, no leading zeros */
            size_t k = 9, num = 0, digits = 0;
            while (k < al && a[k] >= '0' && a[k] <= '9' && digits < 3) {
                num = num * 10 + (size_t)(a[k] - '0');
                k++;
                digits++;
            }
            int ext = 0;
            if (k < al && a[k] == '*') {
                ext = 1;
                k++;
            }
            uint8_t tmp[DC_MIME_MAX_BOUNDARY];
            size_t tlen = 0;
            r = param_value(v, n, &i, ext, ext && num == 0, tmp, &tlen);
            if (r == 1 && k == al && num < CT_PIECES && (digits == 1 || a[9] != '0') &&
                !pieces[num].set) {
                memcpy(pieces[num].val, tmp, tlen);
                pieces[num].len = tlen;
                pieces[num].set = 1;
            }
        } else {
            uint8_t tmp[DC_MIME_MAX_BOUNDARY];
            size_t tlen = 0;
            r = param_value(v, n, &i, 0, 0, tmp, &tlen);
            if (r == -1)
                r = 1; /* long values of other parameters do not matter */
            if (r == 0) {
                /* skip an unparsable value up to the next ';' */
                while (i < n && v[i] != ';')
                    i++;
                r = 1;
            }
        }
        if (r == -1) {
            too_long = 1;
            break;
        }
        if (r == 0)
            break;
    }
    enum dc_status st = DC_OK;
    if (have_plain) {
        memcpy(boundary, plain, plain_len);
        *blen = plain_len;
    } else if (have_star) {
        memcpy(boundary, star, star_len);
        *blen = star_len;
    } else if (pieces[0].set) {
        size_t total = 0;
        for (size_t k = 0; k < CT_PIECES && pieces[k].set; k++) {
            if (total + pieces[k].len > DC_MIME_MAX_BOUNDARY) {
                too_long = 1;
                break;
            }
            memcpy(boundary + total, pieces[k].val, pieces[k].len);
            total += pieces[k].len;
        }
        *blen = too_long ? 0 : total;
    }
    if (too_long) {
        *blen = 0;
        st = dc_fail(err, DC_ERR_LIMIT, "Content-Type: boundary longer than %d bytes",
                     DC_MIME_MAX_BOUNDARY);
    }
    free(pieces);
    return st;
}

/* ---- Header section -------------------------------------------------------------------- */

static void entity_clear(struct dc_mime_entity *e)
{
    memset(e, 0, sizeof(*e));
}

/* Parses the header section of p[b..e) into ent (fields, sep, body, ctype, disposition). */
static enum dc_status parse_header(struct ctx *c, const uint8_t *p, size_t b, size_t e,
                                   struct dc_mime_entity *ent)
{
    size_t pos = b, cap = 0;
    ent->raw = view(p, b, e);
    strcpy(ent->ctype, "text/plain");
    for (;;) {
        if (pos >= e) {
            ent->sep = view(p, e, e);
            ent->body = view(p, e, e);
            break;
        }
        size_t le = line_end(p, pos, e);
        size_t el = eol_len(p, pos, le);
        if (el > 0 && le - el == pos) {
            ent->sep = view(p, pos, le);
            ent->body = view(p, le, e);
            break;
        }
        if (le - el - pos > c->lim->max_line)
            return dc_fail(c->err, DC_ERR_LIMIT,
                           "header line at offset %zu longer than %zu bytes",
                           (size_t)(p + pos - c->p), c->lim->max_line);
        if (is_wsp(p[pos]))
            return dc_fail(c->err, DC_ERR_FORMAT,
                           "continuation line without a field at offset %zu",
                           (size_t)(p + pos - c->p));
        size_t i = pos;
        while (i < le - el && p[i] > 32 && p[i] < 127 && p[i] != ':')
            i++;
        size_t name_end = i;
        while (i < le - el && is_wsp(p[i]))
            i++;
        if (name_end == pos || i >= le - el || p[i] != ':') {
            char s[40];
            return dc_fail(c->err, DC_ERR_FORMAT, "not a header field at offset %zu: \"%s\"",
                           (size_t)(p + pos - c->p), dc_safe_str(p + pos, le - el - pos, s, 32));
        }
        size_t colon = i;
        /* continuation lines */
        size_t fe = le;
        while (fe < e && is_wsp(p[fe])) {
            size_t nle = line_end(p, fe, e);
            if (nle - eol_len(p, fe, nle) - fe > c->lim->max_line)
                return dc_fail(c->err, DC_ERR_LIMIT,
                               "header line at offset %zu longer than %zu bytes",
                               (size_t)(p + fe - c->p), c->lim->max_line);
            fe = nle;
        }
        if (ent->nfields >= c->lim->max_headers)
            return dc_fail(c->err, DC_ERR_LIMIT, "more than %zu header fields in an entity",
                           c->lim->max_headers);
        if (ent->nfields == cap) {
            cap = cap ? cap * 2 : 16;
            ent->fields = dc_xrealloc(ent->fields, cap * sizeof(*ent->fields));
        }
        struct dc_mime_field *f = &ent->fields[ent->nfields++];
        f->raw = view(p, pos, fe);
        f->name = view(p, pos, name_end);
        f->value = view(p, colon + 1, fe - eol_len(p, pos, fe));
        pos = fe;
    }

    const struct dc_mime_field *ct = dc_mime_find(ent, "Content-Type");
    if (ct != NULL) {
        char t[sizeof(ent->ctype)];
        if (dc_mime_content_type(ct->value.p, ct->value.len, t, sizeof(t), ent->boundary,
                                 &ent->boundary_len, NULL) == DC_OK)
            memcpy(ent->ctype, t, sizeof(t));
        else
            ent->boundary_len = 0;
    }
    const struct dc_mime_field *cd = dc_mime_find(ent, "Content-Disposition");
    if (cd != NULL) {
        size_t i = 0, o = 0;
        skip_cfws(cd->value.p, cd->value.len, &i);
        while (i < cd->value.len && is_token(cd->value.p[i]) &&
               o + 1 < sizeof(ent->disposition))
            ent->disposition[o++] = (char)lower(cd->value.p[i++]);
        ent->disposition[o] = 0;
    }
    if (strncmp(ent->ctype, "message/", 8) == 0)
        ent->kind = DC_MIME_MESSAGE;
    return DC_OK;
}

/* ---- Multipart ------------------------------------------------------------------------- */

/* Is the line at s (inside [.., e)) a delimiter line for boundary? Sets *close and *le. */
static int is_delim(const struct dc_mime_entity *ent, const uint8_t *p, size_t s, size_t e,
                    int *close, size_t *le)
{
    size_t bl = ent->boundary_len;
    if (e - s < 2 + bl || p[s] != '-' || p[s + 1] != '-' ||
        memcmp(p + s + 2, ent->boundary, bl) != 0)
        return 0;
    size_t i = s + 2 + bl;
    *close = 0;
    if (e - i >= 2 && p[i] == '-' && p[i + 1] == '-') {
        *close = 1;
        i += 2;
    }
    while (i < e && is_wsp(p[i]))
        i++;
    if (i == e) {
        *le = e;
        return 1;
    }
    if (p[i] == '\n' || (p[i] == '\r' && i + 1 < e && p[i + 1] == '\n')) {
        *le = i + (p[i] == '\r' ? 2 : 1);
        return 1;
    }
    return 0;
}

/* Finds the next delimiter line whose first byte is a line start at or after `from` (itself a
 * line start). *ds = start of the delimiter view (including the preceding line ending, but not
 * before floor), *dle = end of the line. Returns 0 when none. */
static int next_delim(const struct ctx *c, const struct dc_mime_entity *ent, const uint8_t *p,
                      size_t from, size_t e, size_t floor, size_t *ds, size_t *dle, int *close)
{
    size_t s = from, rel_from = from;
    while (s < e) {
        if (c->rel && s - rel_from >= DC_STREAM_WINDOW) {
            dc_release_call(c->rel, p + rel_from, s - rel_from);
            rel_from = s;
        }
        if (is_delim(ent, p, s, e, close, dle)) {
            size_t d = s;
            if (d > floor && p[d - 1] == '\n') {
                d--;
                if (d > floor && p[d - 1] == '\r')
                    d--;
            }
            *ds = d;
            return 1;
        }
        s = line_end(p, s, e);
    }
    return 0;
}

static enum dc_status parse_entity(struct ctx *c, const uint8_t *p, size_t b, size_t e,
                                   unsigned depth, struct dc_mime_entity *ent);

static enum dc_status parse_multipart(struct ctx *c, const uint8_t *p, unsigned depth,
                                      struct dc_mime_entity *ent)
{
    size_t b = (size_t)(ent->body.p - p), e = b + ent->body.len;
    size_t ds, dle, cap = 0;
    int close;
    if (!next_delim(c, ent, p, b, e, b, &ds, &dle, &close))
        return dc_fail(c->err, DC_ERR_FORMAT,
                       "multipart at offset %zu: no delimiter line for its boundary",
                       (size_t)(p + b - c->p));
    if (close)
        return dc_fail(c->err, DC_ERR_FORMAT, "multipart at offset %zu: no body parts",
                       (size_t)(p + b - c->p));
    ent->preamble = view(p, b, ds);
    for (;;) {
        size_t ps = dle, nds, ndle;
        int nclose;
        if (!next_delim(c, ent, p, ps, e, ps, &nds, &ndle, &nclose))
            return dc_fail(c->err, DC_ERR_FORMAT,
                           "multipart at offset %zu: no close delimiter",
                           (size_t)(p + b - c->p));
        if (++c->parts > c->lim->max_parts)
            return dc_fail(c->err, DC_ERR_LIMIT, "more than %zu body parts",
                           c->lim->max_parts);
        if (ent->nparts == cap) {
            cap = cap ? cap * 2 : 8;
            ent->parts = dc_xrealloc(ent->parts, cap * sizeof(*ent->parts));
        }
        struct dc_mime_part *part = &ent->parts[ent->nparts];
        entity_clear(&part->ent);
        part->delim = view(p, ds, dle);
        ent->nparts++;
        enum dc_status st = parse_entity(c, p, ps, nds, depth + 1, &part->ent);
        if (st != DC_OK)
            return st;
        ds = nds;
        dle = ndle;
        if (nclose)
            break;
    }
    ent->close = view(p, ds, dle);
    ent->epilogue = view(p, dle, e);
    return DC_OK;
}

static enum dc_status parse_entity(struct ctx *c, const uint8_t *p, size_t b, size_t e,
                                   unsigned depth, struct dc_mime_entity *ent)
{
    enum dc_status st = parse_header(c, p, b, e, ent);
    if (st != DC_OK)
        return st;
    if (strncmp(ent->ctype, "multipart/", 10) != 0)
        return DC_OK;
    if (ent->boundary_len == 0)
        return dc_fail(c->err, DC_ERR_FORMAT,
                       "%s at offset %zu without a usable boundary parameter", ent->ctype,
                       (size_t)(p + b - c->p));
    if (depth >= c->lim->max_depth)
        return dc_fail(c->err, DC_ERR_LIMIT, "multipart nesting deeper than %u levels",
                       c->lim->max_depth);
    ent->kind = DC_MIME_MULTIPART;
    return parse_multipart(c, p, depth, ent);
}

void dc_mime_free(struct dc_mime_entity *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->nparts; i++)
        dc_mime_free(&e->parts[i].ent);
    free(e->parts);
    free(e->fields);
    entity_clear(e);
}

static enum dc_status start(const uint8_t *p, size_t len, const struct dc_mime_limits *lim,
                            struct dc_mime_limits *dl, struct ctx *c, struct dc_err *err)
{
    if (lim == NULL) {
        dc_mime_limits_default(dl);
        lim = dl;
    }
    c->p = p;
    c->lim = lim;
    c->parts = 0;
    c->err = err;
    c->rel = NULL;
    if (p == NULL && len > 0)
        return dc_fail(err, DC_ERR_ARG, "no message bytes");
    if (len > lim->max_size)
        return dc_fail(err, DC_ERR_LIMIT, "message of %zu bytes exceeds the %zu-byte limit",
                       len, lim->max_size);
    return DC_OK;
}

enum dc_status dc_mime_parse(const uint8_t *p, size_t len, const struct dc_mime_limits *lim,
                             struct dc_mime_entity *out, struct dc_err *err)
{
    struct dc_mime_limits dl;
    struct ctx c;
    entity_clear(out);
    enum dc_status st = start(p, len, lim, &dl, &c, err);
    if (st == DC_OK)
        st = parse_entity(&c, p, 0, len, 0, out);
    if (st != DC_OK)
        dc_mime_free(out);
    return st;
}

enum dc_status dc_mime_parse_released(const uint8_t *p, size_t len,
                                      const struct dc_mime_limits *lim,
                                      const struct dc_release *rel, struct dc_mime_entity *out,
                                      struct dc_err *err)
{
    struct dc_mime_limits dl;
    struct ctx c;
    entity_clear(out);
    enum dc_status st = start(p, len, lim, &dl, &c, err);
    c.rel = rel;
    if (st == DC_OK)
        st = parse_entity(&c, p, 0, len, 0, out);
    if (st != DC_OK)
        dc_mime_free(out);
    return st;
}

enum dc_status dc_mime_parse_header(const uint8_t *p, size_t len,
                                    const struct dc_mime_limits *lim,
                                    struct dc_mime_entity *out, struct dc_err *err)
{
    struct dc_mime_limits dl;
    struct ctx c;
    entity_clear(out);
    enum dc_status st = start(p, len, lim, &dl, &c, err);
    if (st == DC_OK)
        st = parse_header(&c, p, 0, len, out);
    if (st != DC_OK)
        dc_mime_free(out);
    return st;
}
