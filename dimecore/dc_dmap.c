/*
 * dc_dmap - MIME message <-> D/MIME chunk contents, byte exact. See dc_dmap.h for the rules
 * and the framing format.
 */
#include "dc_dmap.h"

#include <strings.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dc_b64.h"
#include "dc_cte.h"

#define FRAME_MAGIC "DIMEFRAME/1\n"  /* first layout: in the display chunk */
#define FRAME2_MAGIC "DIMEFRAME/2\n" /* current layout: in chunk 34's last field */
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

/* Lower-case token of the entity's first Content-Transfer-Encoding field into t (cap). */
static void cte_of(const struct dc_mime_entity *e, char *t, size_t cap)
{
    t[0] = 0;
    const struct dc_mime_field *f = dc_mime_find(e, "Content-Transfer-Encoding");
    if (f == NULL)
        return;
    struct dc_buf u;
    dc_buf_init(&u);
    dc_mime_unfold(f, &u);
    size_t k = 0;
    for (size_t i = 0; i < u.len && k + 1 < cap; i++) {
        uint8_t c = u.data[i];
        if (c == ' ' || c == '\t' || c == '(' || c == ';')
            break;
        t[k++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    t[k] = 0;
    dc_buf_free(&u);
}

/* Keeps p (malloc'd) until dc_dmap_out_free. */
static void own(struct dc_dmap_out *out, uint8_t *p)
{
    out->owned = dc_xrealloc(out->owned, (out->nowned + 1) * sizeof(*out->owned));
    out->owned[out->nowned++] = p;
}

static void out_release(void *ctx, const void *p, size_t n)
{
    const struct dc_dmap_out *m = ctx;
    dc_release_call(&m->input_release, p, n);
    for (size_t i = 0; i < m->nmaps; i++)
        dc_fmap_release(m->maps[i], p, n);
}

struct dc_release dc_dmap_releaser(const struct dc_dmap_out *m)
{
    return (struct dc_release){out_release, (void *)m};
}

static void close_maps(struct dc_dmap_out *out)
{
    for (size_t i = 0; i < out->nmaps; i++) {
        dc_fmap_close(out->maps[i]);
        close(out->mapfds[i]);
    }
    free(out->maps);
    free(out->mapfds);
    out->maps = NULL;
    out->mapfds = NULL;
    out->nmaps = 0;
}

/* Decodes a large body into a spill file; 1 with *v set when it decoded exactly. */
static int spill(enum dc_cte_kind kind, struct dc_mime_view body, const struct dc_dmap_opts *opts,
                 struct dc_cte_style *st, struct dc_dmap_out *out, struct dc_mime_view *v)
{
    int fd = opts->spill_fd(opts->spill_ctx);
    struct dc_fmap *map = NULL;
    size_t dlen;
    if (fd >= 0 && dc_fmap_create(fd, body.len, &map, NULL) == DC_OK) {
        struct dc_release ro = dc_fmap_releaser(map);
        if (dc_cte_decode_into(kind, body.p, body.len, st, map->p, &dlen, &opts->release,
                               &ro)) {
            map->len = dlen;
            out->maps = dc_xrealloc(out->maps, (out->nmaps + 1) * sizeof(*out->maps));
            out->mapfds = dc_xrealloc(out->mapfds, (out->nmaps + 1) * sizeof(*out->mapfds));
            out->maps[out->nmaps] = map;
            out->mapfds[out->nmaps++] = fd;
            *v = (struct dc_mime_view){map->p, dlen};
            return 1;
        }
        dc_fmap_close(map);
    }
    if (fd >= 0)
        close(fd);
    return 0;
}

/* What goes into a content chunk for the body of e: the decoded bytes when e is
 * base64/quoted-printable that encodes back exactly (and, for the display, text), else the
 * body itself. Writes the T record. */
static struct dc_mime_view treat(const struct dc_mime_entity *e, struct dc_mime_view body,
                                 int text_only, const struct dc_dmap_opts *opts,
                                 struct dc_dmap_out *out, struct dc_buf *f)
{
    if (body.len == 0) {
        put_record(f, 'T', "-", 1);
        return (struct dc_mime_view){(const uint8_t *)DC_DMAP_PLACEHOLDER,
                                     strlen(DC_DMAP_PLACEHOLDER)};
    }
    char cte[32];
    if (e != NULL)
        cte_of(e, cte, sizeof(cte));
    int kind = e == NULL || (text_only && strncmp(e->ctype, "text/", 5) != 0) ? 0
               : strcmp(cte, "base64") == 0                                  ? DC_CTE_B64
               : strcmp(cte, "quoted-printable") == 0                        ? DC_CTE_QP
                                                                             : 0;
    struct dc_cte_style st;
    uint8_t *dec;
    size_t dlen;
    struct dc_mime_view v;
    int done = 0;
    if (kind && opts->spill_fd != NULL && body.len >= DC_STREAM_WINDOW) {
        done = spill((enum dc_cte_kind)kind, body, opts, &st, out, &v);
    } else if (kind &&
               dc_cte_decode_exact((enum dc_cte_kind)kind, body.p, body.len, &st, &dec, &dlen)) {
        own(out, dec);
        v = (struct dc_mime_view){dec, dlen};
        done = 1;
    }
    if (done) {
        char tok[40];
        dc_cte_style_text(&st, tok, sizeof(tok));
        put_record(f, 'T', tok, strlen(tok));
        return v;
    }
    put_record(f, 'T', "r", 1);
    return body;
}

/* The header section of e (fields and the empty line): the bytes before its body. */
static struct dc_mime_view head_of(const struct dc_mime_entity *e)
{
    return (struct dc_mime_view){e->raw.p, (size_t)(e->body.p - e->raw.p)};
}

/* Copies the value of parameter `name` (token, quoted string, or the RFC 2231 single-piece
 * form name*=charset'lang'%XX) of field f into b; 1 when found. */
static int param_of(const struct dc_mime_field *f, const char *name, struct dc_buf *b)
{
    if (f == NULL)
        return 0;
    struct dc_buf u;
    dc_buf_init(&u);
    dc_mime_unfold(f, &u);
    size_t nl = strlen(name), i = 0;
    int found = 0;
    while (!found && i < u.len) {
        while (i < u.len && u.data[i] != ';' && u.data[i] != '"')
            i++;
        if (i < u.len && u.data[i] == '"') { /* skip a quoted string */
            for (i++; i < u.len && u.data[i] != '"'; i++)
                if (u.data[i] == '\\')
                    i++;
            i++;
            continue;
        }
        for (i++; i < u.len && (u.data[i] == ' ' || u.data[i] == '\t'); i++)
            ;
        if (i + nl >= u.len || strncasecmp((const char *)u.data + i, name, nl) != 0)
            continue;
        size_t j = i + nl;
        int ext = j < u.len && u.data[j] == '*';
        j += ext;
        while (j < u.len && (u.data[j] == ' ' || u.data[j] == '\t'))
            j++;
        if (j >= u.len || u.data[j] != '=')
            continue;
        for (j++; j < u.len && (u.data[j] == ' ' || u.data[j] == '\t'); j++)
            ;
        found = 1;
        if (ext) { /* charset'lang'value, %XX escapes */
            int q = 0;
            for (; j < u.len && u.data[j] != ';' && u.data[j] != ' '; j++) {
                if (q < 2) {
                    q += u.data[j] == '\'';
                    continue;
                }
                uint8_t c = u.data[j];
                unsigned x;
                if (c == '%' && j + 2 < u.len &&
                    sscanf((const char *)u.data + j + 1, "%2x", &x) == 1) {
                    c = (uint8_t)x;
                    j += 2;
                }
                dc_buf_putc(b, c);
            }
        } else if (u.data[j] == '"') {
            for (j++; j < u.len && u.data[j] != '"'; j++) {
                if (u.data[j] == '\\' && j + 1 < u.len)
                    j++;
                dc_buf_putc(b, u.data[j]);
            }
        } else {
            for (; j < u.len && u.data[j] != ';' && u.data[j] != ' ' && u.data[j] != '\t'; j++)
                dc_buf_putc(b, u.data[j]);
        }
    }
    dc_buf_free(&u);
    return found;
}

/* "X-Dime-Attachment: N; type=T; filename="F"" for attachment chunk item n: what a DIME
 * client needs to save it as a file. Control bytes, '"' and '\' in the name become '_'. */
static void put_attachment_field(struct dc_buf *o, size_t n, const struct dc_mime_entity *e)
{
    dc_buf_printf(o, "%s: %zu; type=%s", DC_DMAP_ATTACH_FIELD, n, e->ctype);
    struct dc_buf name;
    dc_buf_init(&name);
    if (param_of(dc_mime_find(e, "Content-Disposition"), "filename", &name) ||
        param_of(dc_mime_find(e, "Content-Type"), "name", &name)) {
        for (size_t i = 0; i < name.len; i++)
            if (name.data[i] < 0x20 || name.data[i] == 0x7f || name.data[i] == '"' ||
                name.data[i] == '\\')
                name.data[i] = '_';
        dc_buf_printf(o, "; filename=\"");
        dc_buf_append(o, name.data, name.len);
        dc_buf_putc(o, '"');
    }
    dc_buf_append(o, "\r\n", 2);
    dc_buf_free(&name);
}

/* Appends the frame to chunk 34 as the last field, base64 folded to 76 columns. */
static void put_frame_field(struct dc_buf *o, const struct dc_buf *f)
{
    char *b = dc_b64_encode_alloc(f->data, f->len, 1);
    size_t n = strlen(b), at = 0;
    dc_buf_printf(o, "%s: ", DC_DMAP_FRAME_FIELD);
    size_t first = 76 - strlen(DC_DMAP_FRAME_FIELD) - 2;
    do {
        size_t k = n - at < first ? n - at : first;
        if (at > 0)
            dc_buf_append(o, "\r\n ", 3);
        dc_buf_append(o, b + at, k);
        at += k;
        first = 75;
    } while (at < n);
    dc_buf_append(o, "\r\n", 2);
    free(b);
}

/* An N record: a part (delimiter line and entity) kept whole in the frame. */
static void put_whole_part(struct dc_buf *f, const struct dc_mime_part *pt)
{
    dc_buf_printf(f, "N%zu:", pt->delim.len + pt->ent.raw.len);
    dc_buf_append(f, pt->delim.p, pt->delim.len);
    dc_buf_append(f, pt->ent.raw.p, pt->ent.raw.len);
    dc_buf_putc(f, ',');
}

/* The display content of entity e and its records: for a multipart/alternative with a
 * text/plain alternative, that alternative's body (U, P, N ... D H T ... N, Z, Q: the other
 * alternatives stay whole in the frame); otherwise e's body (T). */
static struct dc_mime_view display_of(const struct dc_mime_entity *e,
                                      const struct dc_dmap_opts *opts, struct dc_dmap_out *out,
                                      struct dc_buf *f)
{
    long pick = -1;
    if (e->kind == DC_MIME_MULTIPART && strcmp(e->ctype, "multipart/alternative") == 0)
        for (size_t i = 0; i < e->nparts && pick < 0; i++) {
            const struct dc_mime_entity *c = &e->parts[i].ent;
            if (c->kind == DC_MIME_LEAF && strcmp(c->ctype, "text/plain") == 0 &&
                strcmp(c->disposition, "attachment") != 0 && c->body.len > 0)
                pick = (long)i;
        }
    if (pick < 0)
        return treat(e, e->body, 1, opts, out, f);
    struct dc_mime_view content = {NULL, 0};
    put_record(f, 'U', "", 0);
    put_record(f, 'P', e->preamble.p, e->preamble.len);
    for (size_t i = 0; i < e->nparts; i++) {
        const struct dc_mime_part *pt = &e->parts[i];
        if ((long)i != pick) {
            put_whole_part(f, pt);
            continue;
        }
        struct dc_mime_view h = head_of(&pt->ent);
        put_record(f, 'D', pt->delim.p, pt->delim.len);
        put_record(f, 'H', h.p, h.len);
        content = treat(&pt->ent, pt->ent.body, 1, opts, out, f);
    }
    put_record(f, 'Z', e->close.p, e->close.len);
    put_record(f, 'Q', e->epilogue.p, e->epilogue.len);
    return content;
}

/* Everything after the choice of kind: chunk 34, the frame, the content chunks. */
static void layout(const uint8_t *msg, size_t len, const struct dc_mime_entity *root,
                   char kind, long disp, const struct dc_dmap_opts *opts,
                   struct dc_dmap_out *out)
{
    struct dc_buf f;
    dc_buf_init(&f);
    dc_buf_append(&f, FRAME2_MAGIC, FRAME_MAGIC_LEN);
    put_record(&f, 'K', &kind, 1);
    put_number_record(&f, 'Y', out->synthesized);
    struct dc_mime_view content = {msg, len};
    if (kind == 'W') {
        content = treat(NULL, content, 1, opts, out, &f);
    } else {
        long pick[NHDR];
        pick_common(root, pick);
        for (size_t i = 0; i < root->nfields; i++) {
            const struct dc_mime_field *fl = &root->fields[i];
            if (picked(pick, i)) {
                put_record(&f, 'C', fl->raw.p, fl->raw.len);
            } else {
                put_number_record(&f, 'O', fl->raw.len);
                dc_buf_append(&out->other, fl->raw.p, fl->raw.len);
            }
        }
        put_record(&f, 'S', root->sep.p, root->sep.len);
    }
    if (kind == 'B')
        content = display_of(root, opts, out, &f);
    struct dc_buf desc;
    dc_buf_init(&desc);
    if (kind == 'M') {
        put_record(&f, 'P', root->preamble.p, root->preamble.len);
        out->attach = dc_xcalloc(root->nparts, sizeof(*out->attach));
        for (size_t i = 0; i < root->nparts; i++) {
            const struct dc_mime_part *pt = &root->parts[i];
            if ((long)i != disp && pt->ent.body.len == 0) { /* stays in the frame */
                put_whole_part(&f, pt);
                continue;
            }
            struct dc_mime_view h = head_of(&pt->ent);
            put_record(&f, (long)i == disp ? 'D' : 'A', pt->delim.p, pt->delim.len);
            put_record(&f, 'H', h.p, h.len);
            if ((long)i == disp) {
                content = display_of(&pt->ent, opts, out, &f);
            } else {
                out->attach[out->nattach++] = treat(&pt->ent, pt->ent.body, 0, opts, out, &f);
                put_attachment_field(&desc, out->nattach, &pt->ent);
            }
        }
        put_record(&f, 'Z', root->close.p, root->close.len);
        put_record(&f, 'Q', root->epilogue.p, root->epilogue.len);
    }
    put_record(&f, 'E', "", 0);
    if (out->other.len > 0 && out->other.data[out->other.len - 1] != '\n')
        dc_buf_append(&out->other, "\r\n", 2); /* the last field had no line ending */
    dc_buf_append(&out->other, desc.data, desc.len);
    put_frame_field(&out->other, &f);
    dc_buf_free(&desc);
    dc_buf_free(&f);
    if (opts->display_view) {
        out->content = content;
    } else {
        dc_buf_reserve(&out->display, content.len);
        dc_buf_append(&out->display, content.p, content.len);
    }
}

static void reset_layout(struct dc_dmap_out *out)
{
    out->other.len = 0;
    out->display.len = 0;
    free(out->attach);
    out->attach = NULL;
    out->nattach = 0;
    for (size_t i = 0; i < out->nowned; i++)
        free(out->owned[i]);
    out->nowned = 0;
    close_maps(out);
    out->content = (struct dc_mime_view){NULL, 0};
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
    out->input_release = opts->release;

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
        }
    }
    if (out->mode == DC_DMAP_WHOLE) {
        kind = 'W';
        if (!have_root && dc_mime_parse_header(msg, len, lim, &root, NULL) == DC_OK)
            have_root = 1;
    }

    build_common(have_root ? &root : NULL, opts, out);
    layout(msg, len, have_root ? &root : NULL, kind, disp, opts, out);
    if (out->other.len > DC_DMAP_CHUNK_DATA_MAX) {
        /* Preamble, epilogue and part headers do not fit the other-headers chunk. */
        reset_layout(out);
        go_whole(out, DC_ERR_LIMIT, "the frame does not fit the other-headers chunk");
        layout(msg, len, NULL, 'W', -1, opts, out);
    }
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
    for (size_t i = 0; i < out->nowned; i++)
        free(out->owned[i]);
    free(out->owned);
    close_maps(out);
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
    /* current layout: */
    const struct item *ditem; /* the display item */
    struct dc_cte_enc *enc;   /* while an encoded body is written: its encoder */
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

static enum dc_status enc_sink_write(void *ctx, const uint8_t *p, size_t n, struct dc_err *err)
{
    (void)err;
    return dc_cte_enc_feed(ctx, p, n);
}

/* Chunk i's data from byte skip, from memory or from the source. */
static void emit_chunk(struct rev *v, size_t i, size_t skip)
{
    const struct dc_dmap_chunk *c = &v->chunks[i];
    if (v->enc != NULL) { /* through the transfer encoder (writing pass only) */
        if (v->wst != DC_OK || c->len <= skip)
            return;
        if (c->data != NULL || v->src == NULL) {
            v->wst = dc_cte_enc_feed(v->enc, c->data + skip, c->len - skip);
        } else {
            struct dc_dmap_sink es = {enc_sink_write, v->enc};
            v->wst = v->src->copy(v->src->ctx, i, skip, &es, v->err);
        }
        return;
    }
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

/* The K and Y records every frame starts with; *kind is W, B or M. */
static enum dc_status kind_records(const struct rev *v, struct rd *r, uint8_t *kind)
{
    const uint8_t *val;
    size_t vl;
    uint64_t num;
    enum dc_status st;
    if ((st = expect(r, 'K', &val, &vl)) != DC_OK)
        return st;
    if (vl != 1 || (val[0] != 'W' && val[0] != 'B' && val[0] != 'M'))
        return dc_fail(v->err, DC_ERR_FORMAT, "framing: unknown kind in the K record");
    *kind = val[0];
    if ((st = expect(r, 'Y', &val, &vl)) != DC_OK)
        return st;
    if (!parse_decimal(val, vl, &num) || num > 63)
        return dc_fail(v->err, DC_ERR_FORMAT, "framing: bad synthesized mask in the Y record");
    if (*kind != 'M' && v->natt != 0)
        return dc_fail(v->err, DC_ERR_FORMAT, "framing kind %c but %zu attachments present",
                       *kind, v->natt);
    return DC_OK;
}

/* The header section's records (C, O ..., S): the fields in order, the O ones taken from
 * other[0..limit); *offp is how many bytes of other they used. */
static enum dc_status header_records(struct rev *v, struct rd *r, size_t limit, size_t *offp)
{
    const uint8_t *val;
    size_t vl, off = 0;
    uint64_t num;
    for (;;) {
        uint8_t tag;
        size_t at = r->i;
        enum dc_status st = next_record(r, &tag, &val, &vl);
        if (st != DC_OK)
            return st;
        if (tag == 'C') {
            emit(v, val, vl);
        } else if (tag == 'O') {
            if (!parse_decimal(val, vl, &num) || num > limit - off)
                return dc_fail(v->err, DC_ERR_FORMAT,
                               "framing byte %zu: O record beyond the %zu bytes of other "
                               "headers",
                               at, limit);
            if (num > 0) /* other may be NULL when chunk 34 is empty */
                emit(v, v->other + off, (size_t)num);
            off += (size_t)num;
        } else if (tag == 'S') {
            if (!(vl == 0 || (vl == 1 && val[0] == '\n') ||
                  (vl == 2 && val[0] == '\r' && val[1] == '\n')))
                return dc_fail(v->err, DC_ERR_FORMAT,
                               "framing byte %zu: S record is not an empty line", at);
            emit(v, val, vl);
            *offp = off;
            return DC_OK;
        } else {
            return dc_fail(v->err, DC_ERR_ORDER,
                           "framing byte %zu: record %c inside the header section", at, tag);
        }
    }
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
    uint8_t kind;
    if ((st = kind_records(v, &r, &kind)) != DC_OK)
        return st;
    if (kind == 'W' && v->other_len != 0)
        return dc_fail(v->err, DC_ERR_FORMAT,
                       "whole-message framing but %zu bytes of other headers", v->other_len);
    int seen_d = 0;
    if (kind != 'W') {
        size_t off = 0;
        if ((st = header_records(v, &r, v->other_len, &off)) != DC_OK)
            return st;
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

/* ---- reverse, current layout: the frame in chunk 34 ---- */

/* Finds the frame: the last field of chunk 34, named DC_DMAP_FRAME_FIELD and running to the
 * end of the chunk. Returns 1 with *start (where that field begins) and the decoded frame in
 * *f (malloc'd), 0 when chunk 34 ends with no such field, -1 (err set) when the field is
 * there but is not a frame. */
static int find_frame(const uint8_t *o, size_t n, size_t *start, uint8_t **f, size_t *fn,
                      struct dc_err *err)
{
    static const char name[] = DC_DMAP_FRAME_FIELD ":";
    size_t nl = sizeof(name) - 1, at = SIZE_MAX;
    if (o == NULL || n < nl + 1)
        return 0;
    for (size_t i = n - nl - 1;; i--) {
        if ((i == 0 || o[i - 1] == '\n') && memcmp(o + i, name, nl) == 0) {
            at = i;
            break;
        }
        if (i == 0)
            break;
    }
    if (at == SIZE_MAX)
        return 0;
    /* base64 text, folded: every line break inside is followed by a space or a tab */
    char *b = dc_xmalloc(n - at);
    size_t bn = 0;
    for (size_t i = at + nl; i < n; i++) {
        uint8_t c = o[i];
        if (c == '\n' && i + 1 < n && o[i + 1] != ' ' && o[i + 1] != '\t')
            return free(b), 0; /* another field follows: not the last field */
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            b[bn++] = (char)c;
    }
    uint8_t *d = dc_xmalloc(dc_b64_dec_max(bn) + 1);
    size_t dn = 0;
    struct dc_err be = {0};
    if (bn % 4 != 0 || dc_b64_decode(b, bn, d, &dn, &be) != DC_OK || dn < FRAME_MAGIC_LEN ||
        memcmp(d, FRAME2_MAGIC, FRAME_MAGIC_LEN) != 0) {
        free(b);
        free(d);
        dc_fail(err, DC_ERR_FORMAT, "the %s field of chunk 34 is not a DIMEFRAME/2 frame%s%s",
                DC_DMAP_FRAME_FIELD, be.msg[0] ? ": " : "", be.msg);
        return -1;
    }
    free(b);
    *start = at;
    *f = d;
    *fn = dn;
    return 1;
}

static enum dc_status enc_emit(void *ctx, const uint8_t *p, size_t n, struct dc_err *err)
{
    (void)err;
    struct rev *v = ctx;
    emit(v, p, n);
    return v->wst;
}

/* A content item written back as its T record says: "r" as it is, "-" not at all (the chunk
 * holds the placeholder), otherwise encoded in the style given. */
static enum dc_status emit_item(struct rev *v, const struct item *it, const uint8_t *t,
                                size_t tl, size_t at)
{
    struct dc_cte_style st;
    int raw = tl == 1 && t[0] == 'r', none = tl == 1 && t[0] == '-';
    if (!raw && !none && !dc_cte_style_parse(t, tl, &st))
        return dc_fail(v->err, DC_ERR_FORMAT,
                       "framing byte %zu: T record is not a transfer treatment", at);
    if (!v->writing) { /* an estimate of the size: the buffer grows if it is short */
        v->total += none ? 0 : raw ? it->len : it->len / 3 * 4 + it->len / 16 + 8;
        return DC_OK;
    }
    if (none)
        return DC_OK;
    if (raw) {
        for (size_t k = 0; k < it->count; k++)
            emit_chunk(v, it->first + k, 0);
        return DC_OK;
    }
    struct dc_cte_enc e;
    dc_cte_enc_init(&e, &st, enc_emit, v, v->err);
    for (size_t k = 0; k < it->count; k++) {
        v->enc = &e;
        emit_chunk(v, it->first + k, 0);
    }
    v->enc = NULL;
    enum dc_status s = dc_cte_enc_finish(&e);
    if (v->wst == DC_OK)
        v->wst = s;
    return DC_OK;
}

static enum dc_status display_records(struct rev *v, struct rd *r);

/* A part's H record after its D or A record, then its content: the T record and the item,
 * or for the display part its display records. */
static enum dc_status part_records(struct rev *v, struct rd *r, const struct item *it)
{
    const uint8_t *val;
    size_t vl;
    enum dc_status st = expect(r, 'H', &val, &vl);
    if (st != DC_OK)
        return st;
    emit(v, val, vl);
    if (it == v->ditem)
        return display_records(v, r);
    size_t at = r->i;
    if ((st = expect(r, 'T', &val, &vl)) != DC_OK)
        return st;
    return emit_item(v, it, val, vl, at);
}

/* The display content: a T record, or U and a multipart/alternative whose one D part is
 * the display item (P, N ... D H T ... N, Z, Q). */
static enum dc_status display_records(struct rev *v, struct rd *r)
{
    const uint8_t *val;
    size_t vl, at = r->i;
    uint8_t tag;
    enum dc_status st = next_record(r, &tag, &val, &vl);
    if (st != DC_OK)
        return st;
    if (tag == 'T')
        return emit_item(v, v->ditem, val, vl, at);
    if (tag != 'U' || vl != 0)
        return dc_fail(v->err, DC_ERR_ORDER, "framing byte %zu: record %c where T belongs", at,
                       tag);
    if ((st = expect(r, 'P', &val, &vl)) != DC_OK)
        return st;
    emit(v, val, vl);
    size_t nparts = 0, seen_d = 0;
    for (;; nparts++) {
        at = r->i;
        if ((st = next_record(r, &tag, &val, &vl)) != DC_OK)
            return st;
        if (tag == 'N') {
            emit(v, val, vl);
        } else if (tag == 'D' && seen_d++ == 0) {
            emit(v, val, vl);
            if ((st = expect(r, 'H', &val, &vl)) != DC_OK)
                return st;
            emit(v, val, vl);
            size_t tat = r->i;
            if ((st = expect(r, 'T', &val, &vl)) != DC_OK ||
                (st = emit_item(v, v->ditem, val, vl, tat)) != DC_OK)
                return st;
        } else if (tag == 'Z' && nparts > 0) {
            emit(v, val, vl);
            break;
        } else {
            return dc_fail(v->err, DC_ERR_ORDER,
                           "framing byte %zu: record %c out of place among the alternatives",
                           at, tag);
        }
    }
    if (seen_d != 1)
        return dc_fail(v->err, DC_ERR_FORMAT, "framing: alternatives without a D record");
    if ((st = expect(r, 'Q', &val, &vl)) != DC_OK)
        return st;
    emit(v, val, vl);
    return DC_OK;
}

/* Chunk 34 between the original fields (which end at off) and the frame field (at limit):
 * a line ending if the last original field had none, then "X-Dime-Attachment: k; ..." for
 * k = 1..natt, nothing else. */
static enum dc_status check_added_fields(const struct rev *v, size_t off, size_t limit)
{
    const uint8_t *o = v->other;
    size_t i = off;
    if (off > 0 && o[off - 1] != '\n' && (limit - i < 2 || memcmp(o + i, "\r\n", 2) != 0))
        return dc_fail(v->err, DC_ERR_FORMAT, "chunk 34: the last header field is not ended");
    if (off > 0 && o[off - 1] != '\n')
        i += 2;
    for (size_t k = 1; k <= v->natt; k++) {
        char want[64];
        int wl = snprintf(want, sizeof(want), "%s: %zu; ", DC_DMAP_ATTACH_FIELD, k);
        const uint8_t *nl = i < limit ? memchr(o + i, '\n', limit - i) : NULL;
        if (nl == NULL || limit - i < (size_t)wl || memcmp(o + i, want, (size_t)wl) != 0)
            return dc_fail(v->err, DC_ERR_FORMAT, "chunk 34: no %s field for attachment %zu",
                           DC_DMAP_ATTACH_FIELD, k);
        i = (size_t)(nl - o) + 1;
    }
    if (i != limit)
        return dc_fail(v->err, DC_ERR_FORMAT,
                       "chunk 34: %zu bytes between the header fields and the frame for %zu "
                       "attachments",
                       limit - i, v->natt);
    return DC_OK;
}

/* One pass over a DIMEFRAME/2 frame f; chunk 34's fields end at other[limit]. */
static enum dc_status walk2(struct rev *v, const uint8_t *f, size_t fn, size_t limit)
{
    struct rd r = {f, fn, FRAME_MAGIC_LEN, v->err};
    const uint8_t *val;
    size_t vl, at;
    enum dc_status st;
    uint8_t kind;
    if ((st = kind_records(v, &r, &kind)) != DC_OK)
        return st;
    size_t off = 0;
    if (kind != 'W' && (st = header_records(v, &r, limit, &off)) != DC_OK)
        return st;
    if (!v->writing && (st = check_added_fields(v, off, limit)) != DC_OK)
        return st;
    if (kind != 'M') {
        if ((st = display_records(v, &r)) != DC_OK)
            return st;
    } else {
        if ((st = expect(&r, 'P', &val, &vl)) != DC_OK)
            return st;
        emit(v, val, vl);
        size_t natt = 0, nparts = 0, seen_d = 0;
        for (;; nparts++) {
            uint8_t tag;
            at = r.i;
            if ((st = next_record(&r, &tag, &val, &vl)) != DC_OK)
                return st;
            if (tag == 'D' && seen_d++ == 0) {
                emit(v, val, vl);
                st = part_records(v, &r, v->ditem);
            } else if (tag == 'A') {
                if (natt >= v->natt)
                    return dc_fail(v->err, DC_ERR_FORMAT,
                                   "framing byte %zu: more A records than the %zu attachments",
                                   at, v->natt);
                emit(v, val, vl);
                st = part_records(v, &r, &v->att[natt++]);
            } else if (tag == 'N') {
                emit(v, val, vl);
            } else if (tag == 'Z' && nparts > 0) {
                emit(v, val, vl);
                break;
            } else {
                return dc_fail(v->err, DC_ERR_ORDER,
                               "framing byte %zu: record %c out of place among the body parts",
                               at, tag);
            }
            if (st != DC_OK)
                return st;
        }
        if (natt != v->natt || seen_d != 1)
            return dc_fail(v->err, DC_ERR_FORMAT,
                           "framing has %zu A and %zu D records for %zu attachments and one "
                           "display item",
                           natt, seen_d, v->natt);
        if ((st = expect(&r, 'Q', &val, &vl)) != DC_OK)
            return st;
        emit(v, val, vl);
    }
    if ((st = expect(&r, 'E', &val, &vl)) != DC_OK)
        return st;
    if (vl != 0 || r.i != fn)
        return dc_fail(v->err, DC_ERR_FORMAT, "framing: bytes after the E record");
    return DC_OK;
}

/* Both passes of the current layout: check everything, then write. */
static enum dc_status reverse2(struct rev *v, const uint8_t *f, size_t fn, size_t limit,
                               struct dc_buf *msg)
{
    enum dc_status st = walk2(v, f, fn, limit);
    if (st != DC_OK)
        return st;
    size_t before = msg ? msg->len : 0;
    if (msg) {
        dc_buf_reserve(msg, v->total);
        v->out = msg;
    }
    v->writing = 1;
    v->total = 0;
    st = walk2(v, f, fn, limit);
    if (st == DC_OK)
        st = v->wst;
    if (st != DC_OK && msg) {
        msg->len = before;
        if (msg->data)
            msg->data[before] = 0;
    }
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
    size_t start, f2n;
    uint8_t *f2 = NULL;
    int v2 = st == DC_OK ? find_frame(other, other_len, &start, &f2, &f2n, err) : 0;
    if (v2 != 0) {
        if (v2 > 0) {
            struct rev v = {.other = other, .other_len = other_len, .chunks = chunks,
                            .att = items + 1, .natt = nitems - 1, .err = err,
                            .ditem = items};
            st = reverse2(&v, f2, f2n, start, msg);
        } else {
            st = DC_ERR_FORMAT;
        }
        free(f2);
        free(items);
        return st;
    }
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
    size_t start, f2n;
    uint8_t *f2 = NULL;
    int v2 = st == DC_OK ? find_frame(other, other_len, &start, &f2, &f2n, err) : 0;
    if (v2 != 0) {
        if (v2 > 0) {
            struct rev v2r = {.other = other, .other_len = other_len, .chunks = chunks,
                              .att = items + 1, .natt = nitems - 1, .err = err, .src = src,
                              .sink = out, .ndisp = items[0].count, .ditem = items};
            st = reverse2(&v2r, f2, f2n, start, NULL);
        } else {
            st = DC_ERR_FORMAT;
        }
        free(f2);
        free(items);
        return st;
    }
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
