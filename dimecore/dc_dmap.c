/*
 * dc_dmap - MIME message <-> D/MIME chunk contents, byte exact. See dc_dmap.h for the rules
 * and the framing format.
 */
#include "dc_dmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FRAME_MAGIC "DIMEFRAME/1\n"
#define FRAME_MAGIC_LEN 12
#define NHDR 6

static const char *const labels[NHDR] = {"Date", "To", "CC", "From", "Organization",
                                         "Subject"};

/* ---- forward --------------------------------------------------------------------------- */

static void put_record(struct dc_buf *b, char tag, const void *p, size_t n)
{
    dc_buf_printf(b, "%c%zu:", tag, n);
    dc_buf_append(b, p, n);
    dc_buf_putc(b, ',');
}

static void put_number_record(struct dc_buf *b, char tag, size_t v)
{
    char num[24];
    int k = snprintf(num, sizeof(num), "%zu", v);
    put_record(b, tag, num, (size_t)k);
}

/* Appends "Label: value\r\n" with CR, LF and NUL in the value turned into spaces. */
static void put_common(struct dc_buf *b, int idx, const void *v, size_t n)
{
    dc_buf_printf(b, "%s: ", labels[idx]);
    size_t start = b->len;
    dc_buf_append(b, v, n);
    for (size_t i = start; i < b->len; i++)
        if (b->data[i] == '\r' || b->data[i] == '\n' || b->data[i] == 0)
            b->data[i] = ' ';
    dc_buf_append(b, "\r\n", 2);
}

static void format_date(int64_t now, char *out, size_t cap)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = now != 0 ? (time_t)now : time(NULL);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
        tm.tm_mon > 11) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    snprintf(out, cap, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int displayable(const struct dc_mime_entity *e)
{
    if (strcmp(e->disposition, "attachment") == 0)
        return 0;
    return strncmp(e->ctype, "text/", 5) == 0 || strcmp(e->ctype, "multipart/alternative") == 0 ||
           strcmp(e->ctype, "multipart/related") == 0;
}

/* Which header field (index) feeds each chunk-33 slot, or -1. */
static void pick_common(const struct dc_mime_entity *e, long pick[NHDR])
{
    for (int k = 0; k < NHDR; k++)
        pick[k] = -1;
    for (size_t i = 0; i < e->nfields; i++)
        for (int k = 0; k < NHDR; k++)
            if (pick[k] < 0 && dc_mime_name_is(&e->fields[i], labels[k])) {
                pick[k] = (long)i;
                break;
            }
}

static int picked(const long pick[NHDR], size_t i)
{
    for (int k = 0; k < NHDR; k++)
        if (pick[k] == (long)i)
            return 1;
    return 0;
}

static void build_common(const struct dc_mime_entity *e, const struct dc_dmap_opts *opts,
                         struct dc_dmap_out *out)
{
    long pick[NHDR];
    if (e != NULL)
        pick_common(e, pick);
    else
        for (int k = 0; k < NHDR; k++)
            pick[k] = -1;
    struct dc_buf tmp;
    dc_buf_init(&tmp);
    for (int k = 0; k < NHDR; k++) {
        if (pick[k] >= 0) {
            tmp.len = 0;
            dc_mime_unfold(&e->fields[pick[k]], &tmp);
            put_common(&out->common, k, tmp.data, tmp.len);
            continue;
        }
        const char *v = NULL;
        char date[64];
        switch (k) {
        case DC_DMAP_DATE:
            format_date(opts->now, date, sizeof(date));
            v = date;
            break;
        case DC_DMAP_TO:
            v = opts->env_to ? opts->env_to : "";
            break;
        case DC_DMAP_FROM:
            v = opts->env_from ? opts->env_from : "";
            break;
        case DC_DMAP_SUBJECT:
            v = "";
            break;
        default:
            break;
        }
        if (v != NULL) {
            put_common(&out->common, k, v, strlen(v));
            out->synthesized |= 1u << k;
        }
    }
    dc_buf_free(&tmp);
}

static void go_whole(struct dc_dmap_out *out, enum dc_status code, const char *why)
{
    out->mode = DC_DMAP_WHOLE;
    out->reason_code = code;
    snprintf(out->reason, sizeof(out->reason), "%s", why);
}

enum dc_status dc_dmap_forward(const uint8_t *msg, size_t len, const struct dc_dmap_opts *opts,
                               struct dc_dmap_out *out, struct dc_err *err)
{
    if (out == NULL || (msg == NULL && len > 0))
        return dc_fail(err, DC_ERR_ARG, "dc_dmap_forward: missing message or output");
    memset(out, 0, sizeof(*out));
    dc_buf_init(&out->common);
    dc_buf_init(&out->other);
    dc_buf_init(&out->display);
    struct dc_dmap_opts noopts = {0};
    if (opts == NULL)
        opts = &noopts;
    struct dc_mime_limits dl;
    const struct dc_mime_limits *lim = opts->limits;
    if (lim == NULL) {
        dc_mime_limits_default(&dl);
        lim = &dl;
    }
    if (len > lim->max_size)
        return dc_fail(err, DC_ERR_LIMIT, "message of %zu bytes exceeds the %zu-byte limit",
                       len, lim->max_size);
    if (msg == NULL)
        msg = (const uint8_t *)"";

    struct dc_mime_entity root;
    struct dc_err perr = {0};
    int have_root = 0;
    char kind = 'B';
    long disp = -1;
    out->mode = DC_DMAP_STRUCTURED;
    out->reason_code = DC_OK;
    if (dc_mime_parse_released(msg, len, lim, &opts->release, &root, &perr) != DC_OK) {
        go_whole(out, perr.code, perr.msg);
    } else {
        have_root = 1;
        if (strcmp(root.ctype, "multipart/mixed") == 0 && root.nparts >= 2) {
            kind = 'M';
            for (size_t i = 0; i < root.nparts && disp < 0; i++)
                if (displayable(&root.parts[i].ent))
                    disp = (long)i;
            if (disp < 0)
                go_whole(out, DC_ERR_FORMAT,
                         "multipart/mixed without a displayable part at its top level");
            for (size_t i = 0; i < root.nparts && out->mode == DC_DMAP_STRUCTURED; i++)
                if ((long)i != disp && root.parts[i].ent.raw.len == 0)
                    go_whole(out, DC_ERR_FORMAT, "empty attachment part (chunks cannot be empty)");
        }
    }
    if (out->mode == DC_DMAP_WHOLE) {
        kind = 'W';
        if (!have_root && dc_mime_parse_header(msg, len, lim, &root, NULL) == DC_OK)
            have_root = 1;
    }

    build_common(have_root ? &root : NULL, opts, out);

    struct dc_buf *d = &out->display;
    size_t content_len = kind == 'W' ? len : kind == 'M' ? root.parts[disp].ent.raw.len
                                                          : root.body.len;
    dc_buf_reserve(d, (opts->display_view ? 0 : content_len) + 256);
    dc_buf_append(d, FRAME_MAGIC, FRAME_MAGIC_LEN);
    put_record(d, 'K', &kind, 1);
    put_number_record(d, 'Y', out->synthesized);
    if (kind != 'W') {
        long pick[NHDR];
        pick_common(&root, pick);
        for (size_t i = 0; i < root.nfields; i++) {
            const struct dc_mime_field *f = &root.fields[i];
            if (picked(pick, i)) {
                put_record(d, 'C', f->raw.p, f->raw.len);
            } else {
                put_number_record(d, 'O', f->raw.len);
                dc_buf_append(&out->other, f->raw.p, f->raw.len);
            }
        }
        put_record(d, 'S', root.sep.p, root.sep.len);
    }
    if (kind == 'M') {
        put_record(d, 'P', root.preamble.p, root.preamble.len);
        out->attach = dc_xcalloc(root.nparts, sizeof(*out->attach));
        for (size_t i = 0; i < root.nparts; i++) {
            const struct dc_mime_part *pt = &root.parts[i];
            put_record(d, (long)i == disp ? 'D' : 'A', pt->delim.p, pt->delim.len);
            if ((long)i != disp)
                out->attach[out->nattach++] = pt->ent.raw;
        }
        put_record(d, 'Z', root.close.p, root.close.len);
        put_record(d, 'Q', root.epilogue.p, root.epilogue.len);
    }
    put_record(d, 'E', "", 0);
    struct dc_mime_view content = {msg, len};
    if (kind == 'M')
        content = root.parts[disp].ent.raw;
    else if (kind != 'W')
        content = root.body;
    if (opts->display_view)
        out->content = content;
    else
        dc_buf_append(d, content.p, content.len);
    if (have_root)
        dc_mime_free(&root);
    return DC_OK;
}

void dc_dmap_out_free(struct dc_dmap_out *out)
{
    if (out == NULL)
        return;
    dc_buf_free(&out->common);
    dc_buf_free(&out->other);
    dc_buf_free(&out->display);
    free(out->attach);
    memset(out, 0, sizeof(*out));
}

/* ---- chunks ---------------------------------------------------------------------------- */

static size_t pieces_of(size_t len, size_t max)
{
    return len == 0 ? 1 : len / max + (len % max != 0);
}

static void cut(struct dc_dmap_chunk *c, size_t *k, uint8_t type, const uint8_t *p, size_t len,
                size_t max)
{
    size_t np = pieces_of(len, max);
    for (size_t i = 0; i < np; i++) {
        size_t off = i * max, n = len - off < max ? len - off : max;
        c[*k].type = type;
        c[*k].flags = i + 1 < np ? DC_DMAP_FLAG_CONTINUED : 0;
        c[*k].data = p + off;
        c[*k].len = n;
        (*k)++;
    }
}

enum dc_status dc_dmap_chunks(const struct dc_dmap_out *m, size_t max_data,
                              struct dc_dmap_chunk **chunks, size_t *n, struct dc_err *err)
{
    if (m == NULL || chunks == NULL || n == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_dmap_chunks: missing argument");
    if (max_data == 0)
        max_data = DC_DMAP_CHUNK_DATA_MAX;
    if (max_data > DC_DMAP_CHUNK_DATA_MAX)
        return dc_fail(err, DC_ERR_ARG, "chunk data limit %zu above the D/MIME maximum %u",
                       max_data, DC_DMAP_CHUNK_DATA_MAX);
    size_t total = pieces_of(m->display.len, max_data);
    for (size_t i = 0; i < m->nattach; i++)
        total += pieces_of(m->attach[i].len, max_data);
    struct dc_dmap_chunk *c = dc_xcalloc(total, sizeof(*c));
    size_t k = 0;
    cut(c, &k, DC_DMAP_TYPE_DISPLAY, m->display.data, m->display.len, max_data);
    for (size_t i = 0; i < m->nattach; i++)
        cut(c, &k, DC_DMAP_TYPE_ATTACH, m->attach[i].p, m->attach[i].len, max_data);
    *chunks = c;
    *n = k;
    return DC_OK;
}

/* ---- reverse --------------------------------------------------------------------------- */

struct item {
    size_t first, count, len; /* chunk range and joined length */
};

struct rd {
    const uint8_t *p;
    size_t n, i;
    struct dc_err *err;
};

/* Reads the next record; returns DC_OK with *tag, *v, *vl. */
static enum dc_status next_record(struct rd *r, uint8_t *tag, const uint8_t **v, size_t *vl)
{
    size_t at = r->i;
    if (r->i >= r->n)
        return dc_fail(r->err, DC_ERR_TRUNCATED, "framing ends at byte %zu without an E record",
                       at);
    *tag = r->p[r->i++];
    if (*tag < 'A' || *tag > 'Z')
        return dc_fail(r->err, DC_ERR_FORMAT, "framing byte %zu: 0x%02x is not a record tag",
                       at, *tag);
    uint64_t len = 0;
    size_t digits = 0;
    while (r->i < r->n && r->p[r->i] >= '0' && r->p[r->i] <= '9') {
        if (digits == 10)
            return dc_fail(r->err, DC_ERR_FORMAT,
                           "framing record %c at byte %zu: length has more than 10 digits",
                           *tag, at);
        if (digits == 1 && len == 0)
            return dc_fail(r->err, DC_ERR_FORMAT,
                           "framing record %c at byte %zu: length with a leading zero", *tag,
                           at);
        len = len * 10 + (uint64_t)(r->p[r->i++] - '0');
        digits++;
    }
    if (digits == 0 || r->i >= r->n || r->p[r->i] != ':')
        return dc_fail(r->err, DC_ERR_FORMAT,
                       "framing record %c at byte %zu: expected a length and ':'", *tag, at);
    r->i++;
    if (len >= r->n - r->i)
        return dc_fail(r->err, DC_ERR_TRUNCATED,
                       "framing record %c at byte %zu: %llu bytes announced, %zu present", *tag,
                       at, (unsigned long long)len, r->n - r->i);
    *v = r->p + r->i;
    *vl = (size_t)len;
    r->i += (size_t)len;
    if (r->p[r->i] != ',')
        return dc_fail(r->err, DC_ERR_FORMAT, "framing record %c at byte %zu: missing ','",
                       *tag, at);
    r->i++;
    return DC_OK;
}

/* Decimal value of v[0..n) (1-10 digits, no leading zeros) into *out. */
static int parse_decimal(const uint8_t *v, size_t n, uint64_t *out)
{
    if (n == 0 || n > 10 || (n > 1 && v[0] == '0'))
        return 0;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 0;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return 1;
}

struct rev {
    const uint8_t *other;
    size_t other_len;
    const struct dc_dmap_chunk *chunks;
    const struct item *att;
    size_t natt;
    const uint8_t *content;
    size_t content_len;
    struct dc_buf *out; /* NULL in the checking pass */
    size_t total;
    struct dc_err *err;
    /* streaming (dc_dmap_reverse_stream): data comes from src, output goes to sink */
    const struct dc_dmap_source *src;
    const struct dc_dmap_sink *sink;
    size_t dfull;       /* length of the whole display item (fn when in memory) */
    size_t framing_len; /* found by the checking pass */
    size_t ndisp;       /* display chunks (the first item) */
    int writing;        /* the output pass */
    enum dc_status wst; /* first output error */
};

static void emit(struct rev *v, const void *p, size_t n)
{
    v->total += n;
    if (!v->writing || n == 0)
        return;
    if (v->out != NULL)
        dc_buf_append(v->out, p, n);
    else if (v->sink != NULL && v->wst == DC_OK)
        v->wst = v->sink->write(v->sink->ctx, p, n, v->err);
}

/* Chunk i's data from byte skip, from memory or from the source. */
static void emit_chunk(struct rev *v, size_t i, size_t skip)
{
    const struct dc_dmap_chunk *c = &v->chunks[i];
    if (c->data != NULL || v->src == NULL) {
        emit(v, c->data + skip, c->len - skip);
        return;
    }
    v->total += c->len - skip;
    if (v->writing && v->wst == DC_OK && c->len > skip)
        v->wst = v->src->copy(v->src->ctx, i, skip, v->sink, v->err);
}

static void emit_attachment(struct rev *v, const struct item *it)
{
    for (size_t k = 0; k < it->count; k++)
        emit_chunk(v, it->first + k, 0);
}

/* The display content: after the framing block in the display item. */
static void emit_content(struct rev *v)
{
    if (v->src == NULL) {
        emit(v, v->content, v->content_len);
        return;
    }
    size_t start = 0;
    for (size_t k = 0; k < v->ndisp; k++) {
        size_t len = v->chunks[k].len;
        if (start + len > v->framing_len)
            emit_chunk(v, k, v->framing_len > start ? v->framing_len - start : 0);
        start += len;
    }
}

static enum dc_status expect(struct rd *r, uint8_t want, const uint8_t **val, size_t *vl)
{
    uint8_t tag;
    size_t at = r->i;
    enum dc_status st = next_record(r, &tag, val, vl);
    if (st != DC_OK)
        return st;
    if (tag != want)
        return dc_fail(r->err, DC_ERR_ORDER, "framing byte %zu: record %c where %c belongs", at,
                       tag, want);
    return DC_OK;
}

/* One pass over the framing. The checking pass (v->out == NULL) also finds the content. */
static enum dc_status walk(struct rev *v, const uint8_t *f, size_t fn)
{
    struct rd r = {f, fn, 0, v->err};
    const uint8_t *val;
    size_t vl;
    enum dc_status st;
    if (fn < FRAME_MAGIC_LEN || memcmp(f, FRAME_MAGIC, FRAME_MAGIC_LEN) != 0)
        return dc_fail(v->err, DC_ERR_MAGIC, "display data does not start with " "DIMEFRAME/1");
    r.i = FRAME_MAGIC_LEN;
    if ((st = expect(&r, 'K', &val, &vl)) != DC_OK)
        return st;
    if (vl != 1 || (val[0] != 'W' && val[0] != 'B' && val[0] != 'M'))
        return dc_fail(v->err, DC_ERR_FORMAT, "framing: unknown kind in the K record");
    uint8_t kind = val[0];
    uint64_t num;
    if ((st = expect(&r, 'Y', &val, &vl)) != DC_OK)
        return st;
    if (!parse_decimal(val, vl, &num) || num > 63)
        return dc_fail(v->err, DC_ERR_FORMAT, "framing: bad synthesized mask in the Y record");
    if (kind != 'M' && v->natt != 0)
        return dc_fail(v->err, DC_ERR_FORMAT, "framing kind %c but %zu attachments present",
                       kind, v->natt);
    if (kind == 'W' && v->other_len != 0)
        return dc_fail(v->err, DC_ERR_FORMAT,
                       "whole-message framing but %zu bytes of other headers", v->other_len);
    int seen_d = 0;
    if (kind != 'W') {
        size_t off = 0;
        for (;;) {
            uint8_t tag;
            size_t at = r.i;
            if ((st = next_record(&r, &tag, &val, &vl)) != DC_OK)
                return st;
            if (tag == 'C') {
                emit(v, val, vl);
            } else if (tag == 'O') {
                if (!parse_decimal(val, vl, &num) || num > v->other_len - off)
                    return dc_fail(v->err, DC_ERR_FORMAT,
                                   "framing byte %zu: O record beyond the %zu bytes of other "
                                   "headers",
                                   at, v->other_len);
                if (num > 0) /* other may be NULL when chunk 34 is empty */
                    emit(v, v->other + off, (size_t)num);
                off += (size_t)num;
            } else if (tag == 'S') {
                if (!(vl == 0 || (vl == 1 && val[0] == '\n') ||
                      (vl == 2 && val[0] == '\r' && val[1] == '\n')))
                    return dc_fail(v->err, DC_ERR_FORMAT,
                                   "framing byte %zu: S record is not an empty line", at);
                emit(v, val, vl);
                break;
            } else {
                return dc_fail(v->err, DC_ERR_ORDER,
                               "framing byte %zu: record %c inside the header section", at,
                               tag);
            }
        }
        if (off != v->other_len)
            return dc_fail(v->err, DC_ERR_FORMAT,
                           "%zu bytes of other headers not referenced by the framing",
                           v->other_len - off);
    }
    if (kind == 'M') {
        if ((st = expect(&r, 'P', &val, &vl)) != DC_OK)
            return st;
        emit(v, val, vl);
        size_t natt = 0, nparts = 0;
        for (;;) {
            uint8_t tag;
            size_t at = r.i;
            if ((st = next_record(&r, &tag, &val, &vl)) != DC_OK)
                return st;
            if (tag == 'D') {
                if (seen_d++)
                    return dc_fail(v->err, DC_ERR_ORDER, "framing byte %zu: second D record",
                                   at);
                emit(v, val, vl);
                /* the content is only known after the checking pass */
                if (v->writing)
                    emit_content(v);
            } else if (tag == 'A') {
                if (natt >= v->natt)
                    return dc_fail(v->err, DC_ERR_FORMAT,
                                   "framing byte %zu: more A records than the %zu attachments",
                                   at, v->natt);
                emit(v, val, vl);
                emit_attachment(v, &v->att[natt++]);
            } else if (tag == 'Z' && nparts > 0) {
                emit(v, val, vl);
                break;
            } else {
                return dc_fail(v->err, DC_ERR_ORDER,
                               "framing byte %zu: record %c among the body parts", at, tag);
            }
            nparts++;
        }
        if (natt != v->natt)
            return dc_fail(v->err, DC_ERR_FORMAT,
                           "framing has %zu A records for %zu attachments", natt, v->natt);
        if ((st = expect(&r, 'Q', &val, &vl)) != DC_OK)
            return st;
        emit(v, val, vl);
    }
    if ((st = expect(&r, 'E', &val, &vl)) != DC_OK)
        return st;
    if (vl != 0)
        return dc_fail(v->err, DC_ERR_FORMAT, "framing: E record is not empty");
    if (!v->writing) {
        v->content = f + r.i;
        v->framing_len = r.i;
        v->content_len = v->dfull - r.i;
        if (kind == 'M' && !seen_d && v->content_len != 0)
            return dc_fail(v->err, DC_ERR_FORMAT,
                           "%zu bytes of display content but no D record", v->content_len);
        v->total += kind == 'M' && !seen_d ? 0 : v->content_len;
    }
    if (kind != 'M' && v->writing)
        emit_content(v);
    return DC_OK;
}

/* Checks the chunk list and groups it into items (*items malloc'd, also on failure). */
static enum dc_status group_items(const struct dc_dmap_chunk *chunks, size_t n, int need_data,
                                  struct item **itemsp, size_t *nitemsp, struct dc_err *err)
{
    *itemsp = NULL;
    *nitemsp = 0;
    if (n == 0 || chunks[0].type != DC_DMAP_TYPE_DISPLAY)
        return dc_fail(err, DC_ERR_ORDER, "no display chunk first");
    for (size_t i = 0; i < n; i++) {
        if (chunks[i].type != DC_DMAP_TYPE_DISPLAY && chunks[i].type != DC_DMAP_TYPE_ATTACH)
            return dc_fail(err, DC_ERR_ARG, "chunk %zu: type %u is not display or attachment",
                           i, chunks[i].type);
        if (chunks[i].flags & DC_DMAP_FLAG_GZIP)
            return dc_fail(err, DC_ERR_FORMAT, "chunk %zu: compressed chunks not supported", i);
        if (need_data && chunks[i].data == NULL && chunks[i].len > 0)
            return dc_fail(err, DC_ERR_ARG, "chunk %zu: no data", i);
    }
    /* Group pieces into items. */
    struct item *items = dc_xcalloc(n, sizeof(*items));
    size_t nitems = 0;
    enum dc_status st = DC_OK;
    for (size_t i = 0; i < n && st == DC_OK;) {
        struct item *it = &items[nitems++];
        it->first = i;
        for (;;) {
            const struct dc_dmap_chunk *c = &chunks[i];
            if (c->type != chunks[it->first].type) {
                st = dc_fail(err, DC_ERR_ORDER,
                             "chunk %zu: continuation of a type %u chunk has type %u", i,
                             chunks[it->first].type, c->type);
                break;
            }
            if (c->len > SIZE_MAX / 2 - it->len) {
                st = dc_fail(err, DC_ERR_LIMIT, "chunk %zu: item too large", i);
                break;
            }
            it->len += c->len;
            it->count++;
            i++;
            if (!(c->flags & DC_DMAP_FLAG_CONTINUED))
                break;
            if (i == n) {
                st = dc_fail(err, DC_ERR_TRUNCATED,
                             "chunk %zu has the continuation flag but is the last", i - 1);
                break;
            }
        }
        if (st == DC_OK && nitems > 1 && chunks[it->first].type == DC_DMAP_TYPE_DISPLAY)
            st = dc_fail(err, DC_ERR_ORDER, "chunk %zu: a second display item", it->first);
    }
    *itemsp = items;
    *nitemsp = nitems;
    return st;
}

enum dc_status dc_dmap_reverse(const uint8_t *other, size_t other_len,
                               const struct dc_dmap_chunk *chunks, size_t n,
                               struct dc_buf *msg, struct dc_err *err)
{
    if (msg == NULL || (chunks == NULL && n > 0) || (other == NULL && other_len > 0))
        return dc_fail(err, DC_ERR_ARG, "dc_dmap_reverse: missing argument");
    struct item *items;
    size_t nitems;
    enum dc_status st = group_items(chunks, n, 1, &items, &nitems, err);
    struct dc_buf joined;
    dc_buf_init(&joined);
    const uint8_t *f = NULL;
    size_t fn = 0;
    if (st == DC_OK) {
        if (items[0].count == 1) {
            f = chunks[0].data;
            fn = chunks[0].len;
        } else {
            dc_buf_reserve(&joined, items[0].len);
            for (size_t k = 0; k < items[0].count; k++)
                dc_buf_append(&joined, chunks[k].data, chunks[k].len);
            f = joined.data;
            fn = joined.len;
        }
    }
    struct rev v = {.other = other, .other_len = other_len, .chunks = chunks,
                    .att = items ? items + 1 : NULL, .natt = nitems ? nitems - 1 : 0,
                    .err = err, .dfull = fn};
    if (st == DC_OK)
        st = walk(&v, f, fn);
    if (st == DC_OK) {
        size_t before = msg->len;
        dc_buf_reserve(msg, v.total);
        v.out = msg;
        v.writing = 1;
        v.total = 0;
        st = walk(&v, f, fn);
        if (st != DC_OK) { /* cannot happen after the checking pass; keep msg intact anyway */
            msg->len = before;
            if (msg->data)
                msg->data[before] = 0;
        }
    }
    dc_buf_free(&joined);
    free(items);
    return st;
}

enum dc_status dc_dmap_reverse_stream(const uint8_t *other, size_t other_len,
                                      const struct dc_dmap_chunk *chunks, size_t n,
                                      const struct dc_dmap_source *src,
                                      const struct dc_dmap_sink *out, struct dc_err *err)
{
    if (src == NULL || out == NULL || (chunks == NULL && n > 0) ||
        (other == NULL && other_len > 0))
        return dc_fail(err, DC_ERR_ARG, "dc_dmap_reverse_stream: missing argument");
    struct item *items;
    size_t nitems;
    enum dc_status st = group_items(chunks, n, 0, &items, &nitems, err);
    uint8_t *f = NULL;
    size_t fn = 0;
    struct rev v;
    /* The framing block's length is only known once it parses: read a growing prefix of the
     * display item until the checking pass no longer runs out of bytes. */
    size_t dlen = st == DC_OK ? items[0].len : 0;
    for (size_t want = dlen < 65536 ? dlen : 65536; st == DC_OK;) {
        f = dc_xrealloc(f, want ? want : 1);
        fn = want;
        st = src->display_prefix(src->ctx, f, fn, err);
        if (st != DC_OK)
            break;
        v = (struct rev){.other = other, .other_len = other_len, .chunks = chunks,
                         .att = items + 1, .natt = nitems - 1, .err = err, .src = src,
                         .sink = out, .dfull = dlen, .ndisp = items[0].count};
        st = walk(&v, f, fn);
        if (st != DC_ERR_TRUNCATED || fn == dlen)
            break;
        st = DC_OK;
        want = dlen / 4 < fn ? dlen : fn * 4;
    }
    if (st == DC_OK) {
        v.writing = 1;
        v.total = 0;
        st = walk(&v, f, fn);
        if (st == DC_OK)
            st = v.wst;
    }
    free(f);
    free(items);
    return st;
}
