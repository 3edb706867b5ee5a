/*
 * dc_cte - base64 and quoted-printable bodies, decoded only when they encode back exactly.
 * See dc_cte.h.
 */
#include "dc_cte.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char hexup[] = "0123456789ABCDEF";

void dc_cte_style_text(const struct dc_cte_style *s, char *out, size_t cap)
{
    snprintf(out, cap, "%c%u%c%s", (char)s->kind, s->width, s->crlf ? 'c' : 'l',
             s->kind == DC_CTE_B64 ? (s->final ? "f" : "n") : "");
}

int dc_cte_style_parse(const uint8_t *p, size_t n, struct dc_cte_style *s)
{
    if (n < 3 || (p[0] != DC_CTE_B64 && p[0] != DC_CTE_QP))
        return 0;
    memset(s, 0, sizeof(*s));
    s->kind = (enum dc_cte_kind)p[0];
    size_t i = 1;
    uint64_t w = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9' && i < 11) {
        if (i == 2 && p[1] == '0')
            return 0;
        w = w * 10 + (uint64_t)(p[i++] - '0');
    }
    if (i == 1 || w == 0 || w > UINT32_MAX || (s->kind == DC_CTE_QP && w < 4) || i >= n)
        return 0;
    s->width = (unsigned)w;
    if (p[i] != 'c' && p[i] != 'l')
        return 0;
    s->crlf = p[i++] == 'c';
    if (s->kind == DC_CTE_B64) {
        if (i >= n || (p[i] != 'f' && p[i] != 'n'))
            return 0;
        s->final = p[i++] == 'f';
    }
    return i == n;
}

/* ---- encoder ---- */

void dc_cte_enc_init(struct dc_cte_enc *e, const struct dc_cte_style *s, dc_cte_write write,
                     void *ctx, struct dc_err *err)
{
    memset(e, 0, sizeof(*e));
    e->st = *s;
    e->write = write;
    e->ctx = ctx;
    e->err = err;
    e->pend = -1;
}

static void flush(struct dc_cte_enc *e)
{
    if (e->nout > 0 && e->status == DC_OK)
        e->status = e->write(e->ctx, e->out, e->nout, e->err);
    e->nout = 0;
}

static void put(struct dc_cte_enc *e, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        if (e->nout == sizeof(e->out))
            flush(e);
        size_t k = sizeof(e->out) - e->nout < n ? sizeof(e->out) - e->nout : n;
        memcpy(e->out + e->nout, b, k);
        e->nout += k;
        b += k;
        n -= k;
    }
}

static void put_eol(struct dc_cte_enc *e)
{
    put(e, e->st.crlf ? "\r\n" : "\n", e->st.crlf ? 2 : 1);
    e->col = 0;
}

static void b64_char(struct dc_cte_enc *e, char c)
{
    if (e->col == e->st.width)
        put_eol(e);
    if (e->nout == sizeof(e->out))
        flush(e);
    e->out[e->nout++] = (uint8_t)c;
    e->col++;
}

static void b64_group(struct dc_cte_enc *e, const uint8_t *g, unsigned n)
{
    uint32_t v = (uint32_t)g[0] << 16 | (n > 1 ? (uint32_t)g[1] << 8 : 0) | (n > 2 ? g[2] : 0);
    b64_char(e, b64chars[v >> 18 & 63]);
    b64_char(e, b64chars[v >> 12 & 63]);
    b64_char(e, n > 1 ? b64chars[v >> 6 & 63] : '=');
    b64_char(e, n > 2 ? b64chars[v & 63] : '=');
}

/* A quoted-printable token of 1 or 3 characters, after a soft break when it does not fit. */
static void qp_token(struct dc_cte_enc *e, const char *t, unsigned n)
{
    if (e->col + n > e->st.width - 1) {
        put(e, "=", 1);
        put_eol(e);
    }
    put(e, t, n);
    e->col += n;
}

static void qp_encoded(struct dc_cte_enc *e, uint8_t c)
{
    char t[3] = {'=', hexup[c >> 4], hexup[c & 15]};
    qp_token(e, t, 3);
}

static void qp_hard(struct dc_cte_enc *e, int crlf)
{
    put(e, crlf ? "\r\n" : "\n", crlf ? 2 : 1);
    e->col = 0;
}

/* pend: -1 nothing; ' ' or '\t' a white space; '\r' a CR; 0x100 | ws a white space then a CR */
static void qp_byte(struct dc_cte_enc *e, uint8_t c)
{
    int p = e->pend;
    e->pend = -1;
    if (p == '\r') {
        if (c == '\n') {
            qp_hard(e, 1);
            return;
        }
        qp_encoded(e, '\r');
    } else if (p == ' ' || p == '\t') {
        if (c == '\n') {
            qp_encoded(e, (uint8_t)p);
            qp_hard(e, 0);
            return;
        }
        if (c == '\r') {
            e->pend = 0x100 | p;
            return;
        }
        char t = (char)p;
        qp_token(e, &t, 1);
    } else if (p >= 0x100) {
        if (c == '\n') {
            qp_encoded(e, (uint8_t)(p & 0xff));
            qp_hard(e, 1);
            return;
        }
        char t = (char)(p & 0xff);
        qp_token(e, &t, 1);
        qp_encoded(e, '\r');
    }
    if (c == ' ' || c == '\t' || c == '\r') {
        e->pend = c;
    } else if (c == '\n') {
        qp_hard(e, 0);
    } else if (c >= 33 && c <= 126 && c != '=') {
        char t = (char)c;
        qp_token(e, &t, 1);
    } else {
        qp_encoded(e, c);
    }
}

/* Base64 of whole groups straight into the output buffer, a line's worth at a time, for a
 * width that is a multiple of 4 (every encoder's: 76, 64, 72): the same bytes as b64_group
 * per group with b64_char's line breaks, without a call and two checks per character.
 * Returns how many input bytes it used (a multiple of 3). */
static size_t b64_lines(struct dc_cte_enc *e, const uint8_t *p, size_t n)
{
    size_t used = 0;
    while (n - used >= 3 && e->status == DC_OK) {
        if (e->col == e->st.width)
            put_eol(e);
        size_t room = (sizeof(e->out) - e->nout) / 4;
        if (room == 0) {
            flush(e);
            continue;
        }
        size_t k = (n - used) / 3, line = (e->st.width - e->col) / 4;
        k = k < line ? k : line;
        k = k < room ? k : room;
        uint8_t *o = e->out + e->nout;
        const uint8_t *g = p + used;
        for (size_t j = 0; j < k; j++, g += 3, o += 4) {
            uint32_t v = (uint32_t)g[0] << 16 | (uint32_t)g[1] << 8 | g[2];
            o[0] = (uint8_t)b64chars[v >> 18];
            o[1] = (uint8_t)b64chars[v >> 12 & 63];
            o[2] = (uint8_t)b64chars[v >> 6 & 63];
            o[3] = (uint8_t)b64chars[v & 63];
        }
        e->nout += 4 * k;
        e->col += 4 * (unsigned)k;
        used += 3 * k;
    }
    return used;
}

enum dc_status dc_cte_enc_feed(struct dc_cte_enc *e, const uint8_t *p, size_t n)
{
    if (e->st.kind == DC_CTE_B64 && e->st.width % 4 == 0) {
        while (e->ncarry > 0 && n > 0) { /* complete a group begun by the last piece */
            e->carry[e->ncarry++] = *p++;
            n--;
            if (e->ncarry == 3) {
                b64_group(e, e->carry, 3);
                e->ncarry = 0;
            }
        }
        size_t used = b64_lines(e, p, n);
        p += used;
        n -= used;
    }
    for (size_t i = 0; i < n && e->status == DC_OK; i++) {
        if (e->st.kind == DC_CTE_QP) {
            qp_byte(e, p[i]);
            continue;
        }
        e->carry[e->ncarry++] = p[i];
        if (e->ncarry == 3) {
            b64_group(e, e->carry, 3);
            e->ncarry = 0;
        }
    }
    return e->status;
}

enum dc_status dc_cte_enc_finish(struct dc_cte_enc *e)
{
    if (e->st.kind == DC_CTE_QP) {
        int p = e->pend;
        e->pend = -1;
        if (p == '\r') {
            qp_encoded(e, '\r');
        } else if (p == ' ' || p == '\t') {
            qp_encoded(e, (uint8_t)p);
        } else if (p >= 0x100) {
            char t = (char)(p & 0xff);
            qp_token(e, &t, 1);
            qp_encoded(e, '\r');
        }
    } else {
        if (e->ncarry > 0)
            b64_group(e, e->carry, e->ncarry);
        e->ncarry = 0;
        if (e->st.final && e->col > 0)
            put_eol(e);
    }
    flush(e);
    return e->status;
}

/* ---- decoders (proposals; dc_cte_decode_exact checks them) ---- */

/* The value of each byte as a base64 character, 64 for anything else. */
static const uint8_t b64_table[256] = {
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 62, 64, 64, 64, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 64, 64, 64, 64, 64, 64,
    64,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 64, 64, 64, 64, 64,
    64, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
};

static int b64_value(uint8_t c)
{
    return b64_table[c] < 64 ? b64_table[c] : -1;
}

struct b64_state {
    uint32_t acc;
    unsigned k, pad;
};

/* Decodes in[0..n) after what st holds, appending to out + *o. */
static int b64_step(struct b64_state *st, const uint8_t *in, size_t n, uint8_t *out, size_t *o)
{
    for (size_t i = 0; i < n; i++) {
        /* whole groups of four plain characters at a time, between the line breaks */
        while (st->k == 0 && st->pad == 0 && n - i >= 4) {
            uint8_t a = b64_table[in[i]], b = b64_table[in[i + 1]], c = b64_table[in[i + 2]],
                    d = b64_table[in[i + 3]];
            if ((a | b | c | d) & 64)
                break;
            uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
            out[(*o)++] = (uint8_t)(v >> 16);
            out[(*o)++] = (uint8_t)(v >> 8);
            out[(*o)++] = (uint8_t)v;
            i += 4;
        }
        if (i == n)
            break;
        uint8_t c = in[i];
        if (c == '\r' || c == '\n')
            continue;
        if (c == '=') {
            st->pad++;
            st->acc <<= 6;
        } else {
            int v = b64_value(c);
            if (v < 0 || st->pad > 0)
                return 0;
            st->acc = st->acc << 6 | (uint32_t)v;
        }
        if (++st->k == 4) {
            if (st->pad > 2)
                return 0;
            out[(*o)++] = (uint8_t)(st->acc >> 16);
            if (st->pad < 2)
                out[(*o)++] = (uint8_t)(st->acc >> 8);
            if (st->pad < 1)
                out[(*o)++] = (uint8_t)st->acc;
            st->k = 0;
            st->acc = 0;
        } else if (st->pad > 0 && st->k < 3) {
            return 0; /* '=' only in the last two places of a group */
        }
    }
    return 1;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes in[0..n), which must not end inside an escape, appending to out + *o. */
static int qp_step(const uint8_t *in, size_t n, uint8_t *out, size_t *o)
{
    for (size_t i = 0; i < n; i++) {
        if (in[i] != '=') {
            out[(*o)++] = in[i];
            continue;
        }
        if (i + 1 < n && in[i + 1] == '\n') {
            i += 1;
        } else if (i + 2 < n && in[i + 1] == '\r' && in[i + 2] == '\n') {
            i += 2;
        } else if (i + 2 < n && hexval(in[i + 1]) >= 0 && hexval(in[i + 2]) >= 0) {
            out[(*o)++] = (uint8_t)(hexval(in[i + 1]) << 4 | hexval(in[i + 2]));
            i += 2;
        } else {
            return 0;
        }
    }
    return 1;
}

/* How the body was laid out: from its first line (base64), or from its longest lines and its
 * first soft break (quoted-printable). *tries is how many widths from s->width up to test:
 * a line that ends in a soft break is one or two columns short of the width when the next
 * escape did not fit. */
static int guess_style(enum dc_cte_kind kind, const uint8_t *b, size_t n, struct dc_cte_style *s,
                       unsigned *tries)
{
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    s->crlf = 1;
    *tries = 1;
    const uint8_t *nl = memchr(b, '\n', n);
    if (kind == DC_CTE_B64) {
        size_t first = nl ? (size_t)(nl - b) : n;
        s->crlf = nl && first > 0 && b[first - 1] == '\r';
        s->width = (unsigned)(first - (s->crlf ? 1 : 0));
        s->final = n > 0 && b[n - 1] == '\n';
        return s->width > 0 && first <= UINT32_MAX;
    }
    size_t soft_w = 0, hard_w = 0, start = 0;
    int seen_soft = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && b[i] != '\n')
            continue;
        size_t end = i > start && i < n && b[i - 1] == '\r' ? i - 1 : i;
        size_t len = end - start;
        int soft = len > 0 && b[end - 1] == '=';
        if (soft && !seen_soft) {
            seen_soft = 1;
            s->crlf = end < i;
        } else if (!seen_soft && i < n && start == 0) {
            s->crlf = end < i;
        }
        if (soft && len > soft_w)
            soft_w = len;
        if (!soft && len + 1 > hard_w) /* a line without a soft break stays below the width */
            hard_w = len + 1;
        start = i + 1;
    }
    size_t w = seen_soft ? (soft_w > hard_w ? soft_w : hard_w) : (hard_w > 76 ? hard_w : 76);
    if (w < 4)
        w = 4;
    if (w > UINT32_MAX - 2)
        return 0;
    s->width = (unsigned)w;
    *tries = seen_soft ? 3 : 1;
    return 1;
}

struct cmp_sink {
    const uint8_t *p;
    size_t n, at;
};

static enum dc_status cmp_write(void *ctx, const uint8_t *p, size_t n, struct dc_err *err)
{
    (void)err;
    struct cmp_sink *c = ctx;
    if (n > c->n - c->at || memcmp(c->p + c->at, p, n) != 0)
        return DC_ERR_FORMAT;
    c->at += n;
    return DC_OK;
}

/* Encodes dst[0..o) in style s and compares with body, a window at a time. */
static int encodes_back(const struct dc_cte_style *s, const uint8_t *dst, size_t o,
                        const uint8_t *body, size_t len, const struct dc_release *rel_in,
                        const struct dc_release *rel_out)
{
    struct cmp_sink c = {body, len, 0};
    struct dc_cte_enc e;
    dc_cte_enc_init(&e, s, cmp_write, &c, NULL);
    for (size_t i = 0; i < o; i += DC_STREAM_WINDOW) {
        size_t n = o - i < DC_STREAM_WINDOW ? o - i : DC_STREAM_WINDOW, c0 = c.at;
        if (dc_cte_enc_feed(&e, dst + i, n) != DC_OK)
            return 0;
        dc_release_call(rel_out, dst + i, n);
        dc_release_call(rel_in, body + c0, c.at - c0);
    }
    return dc_cte_enc_finish(&e) == DC_OK && c.at == len;
}

int dc_cte_decode_into(enum dc_cte_kind kind, const uint8_t *body, size_t len,
                       struct dc_cte_style *s, uint8_t *dst, size_t *dlen,
                       const struct dc_release *rel_in, const struct dc_release *rel_out)
{
    *dlen = 0;
    unsigned tries;
    if (len == 0 || !guess_style(kind, body, len, s, &tries))
        return 0;
    /* decode, a window at a time (quoted-printable windows end at a line end) */
    struct b64_state bs = {0, 0, 0};
    size_t at = 0, o = 0;
    while (at < len) {
        size_t end = len - at > DC_STREAM_WINDOW ? at + DC_STREAM_WINDOW : len, o0 = o;
        if (kind == DC_CTE_QP && end < len) {
            const uint8_t *nl = memchr(body + end, '\n', len - end);
            end = nl ? (size_t)(nl - body) + 1 : len;
        }
        int ok = kind == DC_CTE_B64 ? b64_step(&bs, body + at, end - at, dst, &o)
                                    : qp_step(body + at, end - at, dst, &o);
        if (!ok)
            return 0;
        dc_release_call(rel_in, body + at, end - at);
        dc_release_call(rel_out, dst + o0, o - o0);
        at = end;
    }
    if (bs.k != 0 || o == 0)
        return 0;
    for (unsigned t = 0; t < tries; t++, s->width++)
        if (encodes_back(s, dst, o, body, len, rel_in, rel_out)) {
            *dlen = o;
            return 1;
        }
    return 0;
}

int dc_cte_decode_exact(enum dc_cte_kind kind, const uint8_t *body, size_t len,
                        struct dc_cte_style *s, uint8_t **dec, size_t *dlen)
{
    *dec = NULL;
    *dlen = 0;
    uint8_t *d = dc_xmalloc(len + 1);
    if (!dc_cte_decode_into(kind, body, len, s, d, dlen, NULL, NULL)) {
        free(d);
        return 0;
    }
    *dec = d;
    return 1;
}
