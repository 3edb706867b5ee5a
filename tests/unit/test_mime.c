/* MIME parser and MIME <-> D/MIME mapping: corpus round trips, exact chunk 33/34 contents,
 * limits, the 20 MB split, and hostile framing. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc_dmap.h"
#include "dc_mime.h"
#include "vectors.h"

#define NOW_2026_11_26_1200 1795694400

/* tests/corpus/mime, found next to the vectors directory (tests/vectors/libdime). */
static const char *corpus_dir(void)
{
    static char dir[4096];
    const char *v = getenv("DC_VECTORS");
    cr_assert_not_null(v, "DC_VECTORS is not set");
    snprintf(dir, sizeof(dir), "%s/../../corpus/mime", v);
    return dir;
}

static uint8_t *corpus_read(const char *name, size_t *len)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", corpus_dir(), name);
    uint8_t *data = NULL;
    struct dc_err err = {0};
    cr_assert_eq(dc_read_file(path, 64u << 20, &data, len, &err), DC_OK, "%s: %s", path,
                 err.msg);
    return data;
}

static const struct dc_dmap_opts opts = {
    .env_from = "envelope@alice.test",
    .env_to = "rcpt@bob.test",
    .now = NOW_2026_11_26_1200,
    .limits = NULL,
};

/* True when v lies inside msg or inside one of the decoded bodies m owns. */
static int in_msg_or_owned(const struct dc_dmap_out *m, struct dc_mime_view v, const uint8_t *msg,
                           size_t len)
{
    if (v.p >= msg && v.p + v.len <= msg + len)
        return 1;
    for (size_t i = 0; i < m->nowned; i++)
        if (v.p == m->owned[i])
            return 1;
    return 0;
}

/* Forward, cut into chunks of max_data, reverse; the result must equal msg. */
static void round_trip(const uint8_t *msg, size_t len, const struct dc_dmap_out *m,
                       size_t max_data, const char *what)
{
    struct dc_dmap_chunk *ch = NULL;
    size_t n = 0;
    struct dc_err err = {0};
    cr_assert_eq(dc_dmap_chunks(m, max_data, &ch, &n, &err), DC_OK, "%s: %s", what, err.msg);
    for (size_t i = 0; i < n; i++) {
        cr_assert(ch[i].len <= (max_data ? max_data : DC_DMAP_CHUNK_DATA_MAX));
        cr_assert(ch[i].len > 0, "%s: empty chunk %zu", what, i);
    }
    struct dc_buf out;
    dc_buf_init(&out);
    cr_assert_eq(dc_dmap_reverse(m->other.data, m->other.len, ch, n, &out, &err), DC_OK,
                 "%s (max %zu): %s", what, max_data, err.msg);
    cr_assert_eq(out.len, len, "%s: %zu bytes back for %zu", what, out.len, len);
    cr_assert(len == 0 || memcmp(out.data, msg, len) == 0, "%s: bytes differ", what);
    dc_buf_free(&out);
    free(ch);
}

/* Rebuilds an entity from the parser's views only. */
static void rebuild(const struct dc_mime_entity *e, struct dc_buf *b)
{
    for (size_t i = 0; i < e->nfields; i++)
        dc_buf_append(b, e->fields[i].raw.p, e->fields[i].raw.len);
    dc_buf_append(b, e->sep.p, e->sep.len);
    if (e->kind != DC_MIME_MULTIPART) {
        dc_buf_append(b, e->body.p, e->body.len);
        return;
    }
    dc_buf_append(b, e->preamble.p, e->preamble.len);
    for (size_t i = 0; i < e->nparts; i++) {
        dc_buf_append(b, e->parts[i].delim.p, e->parts[i].delim.len);
        struct dc_buf sub;
        dc_buf_init(&sub);
        rebuild(&e->parts[i].ent, &sub);
        cr_assert_eq(sub.len, e->parts[i].ent.raw.len);
        cr_assert(sub.len == 0 || memcmp(sub.data, e->parts[i].ent.raw.p, sub.len) == 0);
        dc_buf_append(b, sub.data, sub.len);
        dc_buf_free(&sub);
    }
    dc_buf_append(b, e->close.p, e->close.len);
    dc_buf_append(b, e->epilogue.p, e->epilogue.len);
}

Test(mime, corpus_round_trips_and_modes)
{
    DIR *d = opendir(corpus_dir());
    cr_assert_not_null(d, "cannot open %s", corpus_dir());
    size_t files = 0, whole = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        size_t len;
        uint8_t *msg = corpus_read(de->d_name, &len);
        struct dc_dmap_out m;
        struct dc_err err = {0};
        cr_assert_eq(dc_dmap_forward(msg, len, &opts, &m, &err), DC_OK, "%s: %s", de->d_name,
                     err.msg);
        int want_whole = strncmp(de->d_name, "whole-", 6) == 0;
        cr_assert_eq(m.mode, want_whole ? DC_DMAP_WHOLE : DC_DMAP_STRUCTURED,
                     "%s: mode %d (%s)", de->d_name, m.mode, m.reason);
        cr_assert_eq(m.reason_code == DC_OK, !want_whole, "%s", de->d_name);
        whole += want_whole;
        /* Attachments are views into the message, or decoded bodies the output owns. */
        for (size_t i = 0; i < m.nattach; i++)
            cr_assert(in_msg_or_owned(&m, m.attach[i], msg, len), "%s: attachment %zu",
                      de->d_name, i);
        round_trip(msg, len, &m, 0, de->d_name);
        round_trip(msg, len, &m, 7, de->d_name);
        round_trip(msg, len, &m, 1000, de->d_name);
        /* The parser's own views give the message back when it parses. */
        struct dc_mime_entity e;
        if (dc_mime_parse(msg, len, NULL, &e, NULL) == DC_OK) {
            struct dc_buf b;
            dc_buf_init(&b);
            rebuild(&e, &b);
            cr_assert_eq(b.len, len, "%s", de->d_name);
            cr_assert(len == 0 || memcmp(b.data, msg, len) == 0, "%s", de->d_name);
            dc_buf_free(&b);
            dc_mime_free(&e);
        } else {
            cr_assert(want_whole, "%s does not parse", de->d_name);
        }
        dc_dmap_out_free(&m);
        free(msg);
        files++;
    }
    closedir(d);
    cr_assert_geq(files, 40, "only %zu corpus files", files);
    cr_assert_geq(whole, 5);
}

struct fwd {
    uint8_t *msg;
    size_t len;
    struct dc_dmap_out m;
};

static void fwd_file(const char *name, struct fwd *f)
{
    struct dc_err err = {0};
    f->msg = corpus_read(name, &f->len);
    cr_assert_eq(dc_dmap_forward(f->msg, f->len, &opts, &f->m, &err), DC_OK, "%s", err.msg);
}

static void fwd_free(struct fwd *f)
{
    dc_dmap_out_free(&f->m);
    free(f->msg);
}

static void assert_buf(const struct dc_buf *b, const char *want)
{
    cr_assert_eq(b->len, strlen(want), "got %zu bytes: [%.*s]", b->len, (int)b->len,
                 (const char *)b->data);
    cr_assert(memcmp(b->data, want, b->len) == 0, "got [%.*s]", (int)b->len,
              (const char *)b->data);
}

/* Display content = the display chunk data, nothing of ours in front of it. */
static const uint8_t *display_content(const struct dc_dmap_out *m, size_t *n)
{
    *n = m->display.len;
    return m->display.data;
}

/* The original header fields at the start of chunk 34: what comes before the fields the
 * mapping adds (X-Dime-Attachment, X-Dime-Frame, and a line ending for a last field that
 * had none). */
static size_t other_fields_len(const struct dc_dmap_out *m)
{
    const uint8_t *o = m->other.data;
    for (size_t i = 0; i < m->other.len; i++) {
        if (i > 0 && o[i - 1] != '\n')
            continue;
        if (strncmp((const char *)o + i, DC_DMAP_ATTACH_FIELD ": ",
                    strlen(DC_DMAP_ATTACH_FIELD) + 2) == 0 ||
            strncmp((const char *)o + i, DC_DMAP_FRAME_FIELD ": ",
                    strlen(DC_DMAP_FRAME_FIELD) + 2) == 0)
            return i;
    }
    cr_assert_fail("chunk 34 has no %s field", DC_DMAP_FRAME_FIELD);
    return 0;
}

static void assert_other(const struct dc_dmap_out *m, const char *want, const char *what)
{
    size_t n = other_fields_len(m);
    cr_assert_eq(n, strlen(want), "%s: got [%.*s]", what, (int)n, (const char *)m->other.data);
    cr_assert(n == 0 || memcmp(m->other.data, want, n) == 0, "%s: got [%.*s]", what, (int)n,
              (const char *)m->other.data);
}

Test(mime, libdime_vector_headers_give_chunks_33_and_34_exactly)
{
    struct fwd f;
    fwd_file("libdime-vector-headers.eml", &f);
    cr_assert_eq(f.m.mode, DC_DMAP_STRUCTURED);
    cr_assert_eq(f.m.synthesized, 0u);
    assert_buf(&f.m.common, "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
                            "To: Bob Example <bob@bob.test>\r\n"
                            "From: Alice Example <alice@alice.test>\r\n"
                            "Organization: Alice Test Organization\r\n"
                            "Subject: DIME interop test message\r\n");
    assert_other(&f.m, "X-Interop-Test: libdime-vector-1\r\n", "libdime vector");
    size_t n;
    const uint8_t *c = display_content(&f.m, &n);
    const char *body = "Hello Bob,\r\nthis is a DIME interop test message from Alice.\r\n"
                       "Regards, Alice\r\n";
    cr_assert_eq(n, strlen(body));
    cr_assert(memcmp(c, body, n) == 0);
    cr_assert_eq(f.m.nattach, 0u);
    fwd_free(&f);
}

Test(mime, common_headers_exact_texts)
{
    static const struct {
        const char *file, *common, *other;
        unsigned synth;
    } t[] = {
        {"cc-and-organization-case.eml",
         "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nTo: b@bob.test\r\nCC: c@carol.test\r\n"
         "From: a@alice.test\r\nOrganization: Alice Org\r\nSubject: cases\r\n",
         "", 0},
        {"long-folded-headers.eml",
         "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
         "To: one@bob.test, two@bob.test,    three@bob.test\r\n"
         "From: Alice\t<alice@alice.test>\r\n"
         "Subject: a subject that is long enough to be folded over several lines by a\tmail "
         "client\r\n",
         NULL, 0},
        {"duplicate-date-subject-to.eml",
         "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nTo: first@bob.test\r\nFrom: a@alice.test\r\n"
         "Subject: first subject\r\n",
         "Date: Fri, 27 Nov 2026 12:00:00 +0000\r\nSubject: second subject\r\n"
         "To: second@bob.test\r\n",
         0},
        {"missing-date.eml",
         "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nTo: b@bob.test\r\nFrom: a@alice.test\r\n"
         "Subject: no date\r\n",
         "", 1u << DC_DMAP_DATE},
        {"missing-subject.eml",
         "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nTo: b@bob.test\r\nFrom: a@alice.test\r\n"
         "Subject: \r\n",
         "", 1u << DC_DMAP_SUBJECT},
        {"missing-to.eml",
         "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nTo: rcpt@bob.test\r\nFrom: a@alice.test\r\n"
         "Subject: undisclosed\r\n",
         "", 1u << DC_DMAP_TO},
        {"missing-all-required.eml",
         "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nTo: rcpt@bob.test\r\n"
         "From: envelope@alice.test\r\nSubject: \r\n",
         "X-Only: this header\r\n", 1u | 2u | 8u | 32u},
        {"rfc2047-subject-from.eml",
         "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nTo: bob@bob.test\r\n"
         "From: =?UTF-8?Q?Andr=C3=A9_M=C3=BCller?= <andre@alice.test>\r\n"
         "Subject: =?UTF-8?B?RElNRSB0ZXN0IOKCrA==?= =?ISO-8859-1?Q?caf=E9?=\r\n",
         "", 0},
        {"obsolete-space-before-colon.eml",
         "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nTo: b@bob.test\r\nFrom: a@alice.test\r\n"
         "Subject: spaced\r\n",
         "X-Empty:\r\nX-Spaces:   \r\n", 0},
        {"mixed-line-endings.eml",
         "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nTo: b@bob.test\r\nFrom: a@alice.test\r\n"
         "Subject: mixed\r\n",
         "", 0},
        /* whole-message mode still fills chunk 33 from the header that parses */
        {"whole-missing-close-delimiter.eml",
         "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nTo: Bob Example <bob@bob.test>\r\n"
         "From: Alice Example <alice@alice.test>\r\nSubject: corpus message\r\n",
         "", 0},
        {"whole-mbox-from-line.eml",
         "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nTo: rcpt@bob.test\r\n"
         "From: envelope@alice.test\r\nSubject: \r\n",
         "", 1u | 2u | 8u | 32u},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct fwd f;
        fwd_file(t[i].file, &f);
        cr_assert_eq(f.m.common.len, strlen(t[i].common), "%s: [%.*s]", t[i].file,
                     (int)f.m.common.len, (const char *)f.m.common.data);
        cr_assert(memcmp(f.m.common.data, t[i].common, f.m.common.len) == 0, "%s: [%s]",
                  t[i].file, (const char *)f.m.common.data);
        if (t[i].other != NULL)
            assert_other(&f.m, t[i].other, t[i].file);
        cr_assert_eq(f.m.synthesized, t[i].synth, "%s: %u", t[i].file, f.m.synthesized);
        fwd_free(&f);
    }
}

Test(mime, non_ascii_and_bare_cr_in_common_values)
{
    const char *msg = "Subject: a\rb\x01\xff\r\r\nFrom: x\r\n\r\n";
    struct dc_dmap_out m;
    cr_assert_eq(dc_dmap_forward((const uint8_t *)msg, strlen(msg), &opts, &m, NULL), DC_OK);
    cr_assert_eq(m.mode, DC_DMAP_STRUCTURED);
    assert_buf(&m.common, "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nTo: rcpt@bob.test\r\n"
                          "From: x\r\nSubject: a b\x01\xff \r\n");
    dc_dmap_out_free(&m);
}

Test(mime, multipart_mixed_display_and_attachments)
{
    struct fwd f;
    fwd_file("attachment-before-text.eml", &f);
    cr_assert_eq(f.m.mode, DC_DMAP_STRUCTURED);
    cr_assert_eq(f.m.nattach, 2u);
    /* the attachment chunk holds the body only; its headers are in the frame */
    const char *a0 = "first";
    cr_assert_eq(f.m.attach[0].len, strlen(a0));
    cr_assert(memcmp(f.m.attach[0].p, a0, strlen(a0)) == 0);
    static const char names[] = "\r\nX-Dime-Attachment: 1; type=application/x-first\r\n"
                                "X-Dime-Attachment: 2; type=text/plain; filename=\"notes.txt\""
                                "\r\nX-Dime-Frame: ";
    cr_assert(memmem(f.m.other.data, f.m.other.len, names, strlen(names)) != NULL, "[%.*s]",
              (int)f.m.other.len, (const char *)f.m.other.data);
    size_t n;
    const uint8_t *c = display_content(&f.m, &n);
    const char *disp = "the display text";
    cr_assert_eq(n, strlen(disp));
    cr_assert(memcmp(c, disp, n) == 0);
    fwd_free(&f);

    /* multipart/alternative at the top: the text/plain alternative is the display (the
     * html one stays in the frame), no attachments */
    fwd_file("multipart-alternative.eml", &f);
    cr_assert_eq(f.m.nattach, 0u);
    c = display_content(&f.m, &n);
    cr_assert(n == 13 && memcmp(c, "plain version", 13) == 0, "[%.*s]", (int)n, c);
    fwd_free(&f);
    /* and inside a multipart/mixed */
    fwd_file("nested-mixed-alternative-attachment.eml", &f);
    cr_assert_eq(f.m.nattach, 1u);
    c = display_content(&f.m, &n);
    cr_assert(n == 5 && memcmp(c, "plain", 5) == 0, "[%.*s]", (int)n, c);
    cr_assert_eq(f.m.attach[0].len, 256u, "the png's bytes");
    fwd_free(&f);
    /* multipart/alternative without a text/plain alternative: its body as it is */
    fwd_file("multipart-related-html.eml", &f);
    c = display_content(&f.m, &n);
    cr_assert_not_null(memmem(c, n, "--rel", 5));
    fwd_free(&f);

    /* 50 attachments, in order */
    fwd_file("many-small-attachments.eml", &f);
    cr_assert_eq(f.m.nattach, 50u);
    cr_assert(memmem(f.m.attach[49].p, f.m.attach[49].len, "part 49", 7) != NULL);
    fwd_free(&f);

    /* message/rfc822 is one attachment, its inner multipart is not split */
    fwd_file("message-rfc822-attachment.eml", &f);
    cr_assert_eq(f.m.nattach, 1u);
    cr_assert(memmem(f.m.attach[0].p, f.m.attach[0].len, "--fwd-inner--", 13) != NULL);
    fwd_free(&f);
}

Test(mime, parser_views)
{
    size_t len;
    uint8_t *msg = corpus_read("whitespace-after-boundary.eml", &len);
    struct dc_mime_entity e;
    struct dc_err err = {0};
    cr_assert_eq(dc_mime_parse(msg, len, NULL, &e, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(e.kind, DC_MIME_MULTIPART);
    cr_assert_str_eq(e.ctype, "multipart/mixed");
    cr_assert_eq(e.nparts, 2u);
    cr_assert_eq(e.preamble.len, 0u);
    cr_assert_eq(e.parts[0].delim.len, strlen("--ws  \t\r\n"));
    cr_assert(memcmp(e.parts[0].delim.p, "--ws  \t\r\n", e.parts[0].delim.len) == 0);
    cr_assert(memcmp(e.parts[1].delim.p, "\r\n--ws \r\n", e.parts[1].delim.len) == 0);
    cr_assert_eq(e.close.len, strlen("\r\n--ws--\t \r\n"));
    cr_assert_eq(e.epilogue.len, 0u);
    cr_assert_str_eq(e.parts[1].ent.ctype, "application/x-b");
    const struct dc_mime_field *f = dc_mime_find(&e, "subject");
    cr_assert_not_null(f);
    cr_assert_eq(f->value.len, strlen(" corpus message"));
    dc_mime_free(&e);
    free(msg);

    msg = corpus_read("long-folded-headers.eml", &len);
    cr_assert_eq(dc_mime_parse(msg, len, NULL, &e, &err), DC_OK);
    f = dc_mime_find(&e, "References");
    cr_assert_not_null(f);
    struct dc_buf u;
    dc_buf_init(&u);
    dc_mime_unfold(f, &u);
    cr_assert(u.len > 0 && memchr(u.data, '\n', u.len) == NULL);
    cr_assert(memcmp(u.data, "<ref-0@alice.test> <ref-1@alice.test>", 37) == 0);
    dc_buf_free(&u);
    dc_mime_free(&e);
    free(msg);

    msg = corpus_read("message-rfc822-attachment.eml", &len);
    cr_assert_eq(dc_mime_parse(msg, len, NULL, &e, &err), DC_OK);
    cr_assert_eq(e.parts[1].ent.kind, DC_MIME_MESSAGE);
    cr_assert_eq(e.parts[1].ent.nparts, 0u);
    cr_assert_str_eq(e.parts[1].ent.disposition, "attachment");
    dc_mime_free(&e);
    free(msg);
}

Test(mime, content_type_parameters)
{
    static const struct {
        const char *value, *ctype, *boundary;
        enum dc_status st;
    } t[] = {
        {"text/plain", "text/plain", "", DC_OK},
        {" Multipart/Mixed; boundary=abc", "multipart/mixed", "abc", DC_OK},
        {"multipart/mixed; charset=x; boundary=\"a \\\"b\\\" c\"", "multipart/mixed",
         "a \"b\" c", DC_OK},
        {"multipart/mixed;\r\n boundary=\"fold\r\n ed\"", "multipart/mixed", "fold ed", DC_OK},
        {"multipart/mixed (c (nested)); (x) boundary (y) = z", "multipart/mixed", "z", DC_OK},
        {"multipart/mixed; boundary*=utf-8''%41%42", "multipart/mixed", "AB", DC_OK},
        {"multipart/mixed; boundary*1=\"two\"; boundary*0=one", "multipart/mixed", "onetwo",
         DC_OK},
        {"multipart/mixed; boundary*0*=''a%2D; boundary*1*=b%2d", "multipart/mixed", "a-b-",
         DC_OK},
        {"multipart/mixed; boundary=plain; boundary*=''ext", "multipart/mixed", "plain", DC_OK},
        {"multipart/mixed; boundary=first; boundary=second", "multipart/mixed", "first", DC_OK},
        {"multipart/mixed; boundary*=bad%zz; boundary*0=ok", "multipart/mixed", "", DC_OK},
        {"multipart/mixed; junk; boundary=late", "multipart/mixed", "", DC_OK},
        {"multipart/mixed; boundary=\"unterminated", "multipart/mixed", "", DC_OK},
        {"text", "", "", DC_ERR_FORMAT},
        {"text/", "", "", DC_ERR_FORMAT},
        {"/plain", "", "", DC_ERR_FORMAT},
        {"", "", "", DC_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char ct[64];
        uint8_t b[DC_MIME_MAX_BOUNDARY];
        size_t bl = 99;
        enum dc_status st = dc_mime_content_type((const uint8_t *)t[i].value,
                                                 strlen(t[i].value), ct, sizeof(ct), b, &bl,
                                                 NULL);
        cr_assert_eq(st, t[i].st, "[%s]: %d", t[i].value, st);
        if (st != DC_OK)
            continue;
        cr_assert_str_eq(ct, t[i].ctype, "[%s]", t[i].value);
        cr_assert_eq(bl, strlen(t[i].boundary), "[%s]: %zu", t[i].value, bl);
        cr_assert(memcmp(b, t[i].boundary, bl) == 0, "[%s]", t[i].value);
    }
    /* a long quoted value of another parameter is skipped as a whole */
    struct dc_buf v;
    dc_buf_init(&v);
    dc_buf_printf(&v, "multipart/mixed; name=\"");
    for (int i = 0; i < 1000; i++)
        dc_buf_putc(&v, 'n');
    dc_buf_printf(&v, "; boundary=evil\"; boundary=good");
    {
        char ct[64];
        uint8_t b[DC_MIME_MAX_BOUNDARY];
        size_t bl;
        cr_assert_eq(dc_mime_content_type(v.data, v.len, ct, sizeof(ct), b, &bl, NULL), DC_OK);
        cr_assert_eq(bl, 4u);
        cr_assert(memcmp(b, "good", 4) == 0);
    }
    dc_buf_free(&v);
    /* an overlong boundary is a limit error */
    dc_buf_init(&v);
    dc_buf_printf(&v, "multipart/mixed; boundary=");
    for (int i = 0; i < DC_MIME_MAX_BOUNDARY + 1; i++)
        dc_buf_putc(&v, 'b');
    char ct[64];
    uint8_t b[DC_MIME_MAX_BOUNDARY];
    size_t bl;
    cr_assert_eq(dc_mime_content_type(v.data, v.len, ct, sizeof(ct), b, &bl, NULL),
                 DC_ERR_LIMIT);
    cr_assert_eq(bl, 0u);
    dc_buf_free(&v);
}

/* A message with `count` header fields / parts. */
static void limit_case(struct dc_buf *b, size_t headers, size_t parts)
{
    dc_buf_init(b);
    dc_buf_printf(b, "From: a@alice.test\r\n");
    for (size_t i = 0; i < headers; i++)
        dc_buf_printf(b, "X-H%zu: v\r\n", i);
    if (parts == 0) {
        dc_buf_printf(b, "\r\nbody\r\n");
        return;
    }
    dc_buf_printf(b, "Content-Type: multipart/mixed; boundary=L\r\n\r\n");
    dc_buf_printf(b, "--L\r\nContent-Type: text/plain\r\n\r\ntext\r\n");
    for (size_t i = 1; i < parts; i++)
        dc_buf_printf(b, "--L\r\n\r\n%zu\r\n", i);
    dc_buf_printf(b, "--L--\r\n");
}

static void expect_mode(const struct dc_buf *b, const struct dc_mime_limits *lim,
                        enum dc_dmap_mode mode, enum dc_status code, const char *reason)
{
    struct dc_dmap_opts o = opts;
    o.limits = lim;
    struct dc_dmap_out m;
    cr_assert_eq(dc_dmap_forward(b->data, b->len, &o, &m, NULL), DC_OK);
    cr_assert_eq(m.mode, mode, "mode %d: %s", m.mode, m.reason);
    cr_assert_eq(m.reason_code, code, "%d: %s", m.reason_code, m.reason);
    if (reason != NULL)
        cr_assert(strstr(m.reason, reason) != NULL, "reason: %s", m.reason);
    round_trip(b->data, b->len, &m, 0, reason ? reason : "limit");
    dc_dmap_out_free(&m);
}

Test(mime, limits_fall_back_to_whole_message)
{
    struct dc_buf b;
    limit_case(&b, DC_MIME_MAX_HEADERS - 1, 0); /* From + 999 = 1000: fits */
    expect_mode(&b, NULL, DC_DMAP_STRUCTURED, DC_OK, NULL);
    dc_buf_free(&b);
    limit_case(&b, DC_MIME_MAX_HEADERS, 0);
    expect_mode(&b, NULL, DC_DMAP_WHOLE, DC_ERR_LIMIT, "more than 1000 header fields");
    dc_buf_free(&b);

    limit_case(&b, 0, DC_MIME_MAX_PARTS);
    expect_mode(&b, NULL, DC_DMAP_STRUCTURED, DC_OK, NULL);
    dc_buf_free(&b);
    limit_case(&b, 0, DC_MIME_MAX_PARTS + 1);
    expect_mode(&b, NULL, DC_DMAP_WHOLE, DC_ERR_LIMIT, "more than 10000 body parts");
    dc_buf_free(&b);

    /* caller-chosen limits */
    struct dc_mime_limits lim;
    dc_mime_limits_default(&lim);
    lim.max_parts = 3;
    limit_case(&b, 0, 3);
    expect_mode(&b, &lim, DC_DMAP_STRUCTURED, DC_OK, NULL);
    dc_buf_free(&b);
    limit_case(&b, 0, 4);
    expect_mode(&b, &lim, DC_DMAP_WHOLE, DC_ERR_LIMIT, "more than 3 body parts");
    dc_buf_free(&b);

    dc_mime_limits_default(&lim);
    lim.max_line = 10;
    dc_buf_init(&b);
    dc_buf_printf(&b, "S: 0\r\nX-Long: 01\r\n 23456789\r\n\r\nbody");
    expect_mode(&b, &lim, DC_DMAP_STRUCTURED, DC_OK, NULL);
    dc_buf_free(&b);
    dc_buf_init(&b);
    dc_buf_printf(&b, "S: 0\r\nX-Long: 01\r\n 2345678901\r\n\r\nbody");
    expect_mode(&b, &lim, DC_DMAP_WHOLE, DC_ERR_LIMIT, "offset 18 longer than 10 bytes");
    dc_buf_free(&b);

    /* nesting */
    dc_mime_limits_default(&lim);
    lim.max_depth = 2;
    dc_buf_init(&b);
    dc_buf_printf(&b, "Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n"
                      "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                      "Content-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n\r\nx\r\n"
                      "--c--\r\n--b--\r\n--a--\r\n");
    expect_mode(&b, &lim, DC_DMAP_WHOLE, DC_ERR_LIMIT, "nesting deeper than 2 levels");
    lim.max_depth = 3;
    expect_mode(&b, &lim, DC_DMAP_STRUCTURED, DC_OK, NULL);
    dc_buf_free(&b);

    struct fwd f;
    fwd_file("whole-nesting-too-deep.eml", &f);
    cr_assert_eq(f.m.reason_code, DC_ERR_LIMIT);
    cr_assert(strstr(f.m.reason, "nesting deeper than 32") != NULL, "%s", f.m.reason);
    fwd_free(&f);

    /* the total size limit is not a shape: the message is refused */
    dc_mime_limits_default(&lim);
    lim.max_size = 5;
    struct dc_dmap_opts o = opts;
    o.limits = &lim;
    struct dc_dmap_out m;
    struct dc_err err = {0};
    cr_assert_eq(dc_dmap_forward((const uint8_t *)"123456", 6, &o, &m, &err), DC_ERR_LIMIT);
    cr_assert(strstr(err.msg, "exceeds the 5-byte limit") != NULL, "%s", err.msg);
}

Test(mime, twenty_megabyte_attachment_is_split_and_rejoined, .timeout = 120)
{
    const size_t att = 20u << 20;
    struct dc_buf b;
    dc_buf_init(&b);
    dc_buf_printf(&b, "From: a@alice.test\r\nTo: b@bob.test\r\nSubject: big\r\n"
                      "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
                      "Content-Type: multipart/mixed; boundary=big\r\n\r\n"
                      "--big\r\nContent-Type: text/plain\r\n\r\nbig file attached\r\n"
                      "--big\r\nContent-Type: application/octet-stream\r\n"
                      "Content-Transfer-Encoding: base64\r\n\r\n");
    dc_buf_reserve(&b, att + 64);
    size_t start = b.len;
    uint32_t x = 2463534242u;
    static const char al[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    while (b.len - start < att) {
        for (int i = 0; i < 76; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b.data[b.len++] = (uint8_t)al[x & 63];
        }
        b.data[b.len++] = '\r';
        b.data[b.len++] = '\n';
    }
    dc_buf_printf(&b, "--big--\r\n");

    struct dc_dmap_out m;
    cr_assert_eq(dc_dmap_forward(b.data, b.len, &opts, &m, NULL), DC_OK);
    cr_assert_eq(m.mode, DC_DMAP_STRUCTURED);
    cr_assert_eq(m.nattach, 1u);
    /* the attachment chunk holds the decoded file: 57 bytes per 76-character line */
    size_t lines = (b.len - start) / 78;
    cr_assert_eq(m.attach[0].len, lines * 57);
    cr_assert(m.nowned == 1 && m.attach[0].p == m.owned[0], "decoded body owned by the output");
    cr_assert_lt(m.display.len, 512u, "display data %zu bytes", m.display.len);

    struct dc_dmap_chunk *ch;
    size_t n, piece = 8u << 20;
    cr_assert_eq(dc_dmap_chunks(&m, piece, &ch, &n, NULL), DC_OK);
    cr_assert_eq(n, 3u);
    cr_assert_eq(ch[0].type, DC_DMAP_TYPE_DISPLAY);
    cr_assert_eq(ch[0].flags, 0);
    cr_assert_eq(ch[1].type, DC_DMAP_TYPE_ATTACH);
    cr_assert_eq(ch[1].flags, DC_DMAP_FLAG_CONTINUED);
    cr_assert_eq(ch[1].len, piece);
    cr_assert_eq(ch[1].data, m.attach[0].p);
    cr_assert_eq(ch[2].type, DC_DMAP_TYPE_ATTACH);
    cr_assert_eq(ch[2].flags, 0);
    cr_assert_eq(ch[2].len, m.attach[0].len - piece);

    struct dc_buf out;
    dc_buf_init(&out);
    cr_assert_eq(dc_dmap_reverse(m.other.data, m.other.len, ch, n, &out, NULL), DC_OK);
    cr_assert_eq(out.len, b.len);
    cr_assert(memcmp(out.data, b.data, b.len) == 0);
    dc_buf_free(&out);

    /* dropping the last piece leaves a dangling continuation */
    struct dc_err err = {0};
    dc_buf_init(&out);
    cr_assert_eq(dc_dmap_reverse(m.other.data, m.other.len, ch, n - 1, &out, &err),
                 DC_ERR_TRUNCATED);
    cr_assert(strstr(err.msg, "continuation flag") != NULL, "%s", err.msg);
    cr_assert_eq(out.len, 0u);
    dc_buf_free(&out);
    free(ch);

    /* a limit above the D/MIME maximum is refused */
    cr_assert_eq(dc_dmap_chunks(&m, DC_DMAP_CHUNK_DATA_MAX + 1, &ch, &n, NULL), DC_ERR_ARG);
    dc_dmap_out_free(&m);
    dc_buf_free(&b);
}

static enum dc_status rev1(const char *frame, const char *other, struct dc_err *err)
{
    struct dc_dmap_chunk c = {DC_DMAP_TYPE_DISPLAY, 0, (const uint8_t *)frame, strlen(frame)};
    struct dc_buf out;
    dc_buf_init(&out);
    enum dc_status st =
        dc_dmap_reverse((const uint8_t *)other, strlen(other), &c, 1, &out, err);
    dc_buf_free(&out);
    return st;
}

Test(mime, reverse_rejects_bad_framing)
{
    static const struct {
        const char *frame, *other;
        enum dc_status st;
        const char *msg;
    } t[] = {
        {"DIMEFRAME/1\nK1:B,Y1:0,S2:\r\n,E0:,body", "", DC_OK, NULL},
        {"DIMEFRAME/2\nK1:B,Y1:0,S2:\r\n,E0:,body", "", DC_ERR_MAGIC, "DIMEFRAME/1"},
        {"DIMEFRAME/1", "", DC_ERR_MAGIC, "DIMEFRAME/1"},
        {"DIMEFRAME/1\n", "", DC_ERR_TRUNCATED, "without an E record"},
        {"DIMEFRAME/1\nK1:X,Y1:0,E0:,", "", DC_ERR_FORMAT, "unknown kind"},
        {"DIMEFRAME/1\nY1:0,K1:B,E0:,", "", DC_ERR_ORDER, "record Y where K belongs"},
        {"DIMEFRAME/1\nK1:B,Y2:64,S0:,E0:,", "", DC_ERR_FORMAT, "synthesized mask"},
        {"DIMEFRAME/1\nK1:B,Y1:0,S1:x,E0:,", "", DC_ERR_FORMAT, "not an empty line"},
        {"DIMEFRAME/1\nK1:B,Y1:0,O1:5,S0:,E0:,", "abcd", DC_ERR_FORMAT, "O record beyond"},
        {"DIMEFRAME/1\nK1:B,Y1:0,O1:3,S0:,E0:,", "abcd", DC_ERR_FORMAT, "1 bytes of other"},
        {"DIMEFRAME/1\nK1:B,Y1:0,O2:03,S0:,E0:,", "abc", DC_ERR_FORMAT, "O record beyond"},
        {"DIMEFRAME/1\nK1:B,Y1:0,C99:x,S0:,E0:,", "", DC_ERR_TRUNCATED, "99 bytes announced"},
        {"DIMEFRAME/1\nK1:B,Y1:0,C01:x,S0:,E0:,", "", DC_ERR_FORMAT, "leading zero"},
        {"DIMEFRAME/1\nK1:B,Y1:0,C12345678901:x", "", DC_ERR_FORMAT, "more than 10 digits"},
        {"DIMEFRAME/1\nK1:B,Y1:0,C1:xx", "", DC_ERR_FORMAT, "missing ','"},
        {"DIMEFRAME/1\nK1:B,Y1:0,C:x,", "", DC_ERR_FORMAT, "expected a length"},
        {"DIMEFRAME/1\nK1:B,Y1:0,c1:x,", "", DC_ERR_FORMAT, "not a record tag"},
        {"DIMEFRAME/1\nK1:B,Y1:0,P0:,S0:,E0:,", "", DC_ERR_ORDER, "inside the header"},
        {"DIMEFRAME/1\nK1:B,Y1:0,S0:,E1:x,", "", DC_ERR_FORMAT, "E record is not empty"},
        {"DIMEFRAME/1\nK1:W,Y1:0,E0:,", "x", DC_ERR_FORMAT, "whole-message framing"},
        {"DIMEFRAME/1\nK1:M,Y1:0,S0:,P0:,Z0:,Q0:,E0:,", "", DC_ERR_ORDER, "among the body"},
        {"DIMEFRAME/1\nK1:M,Y1:0,S0:,P0:,D0:,D0:,Z0:,Q0:,E0:,", "", DC_ERR_ORDER,
         "second D"},
        {"DIMEFRAME/1\nK1:M,Y1:0,S0:,P0:,A0:,Z0:,Q0:,E0:,", "", DC_ERR_FORMAT,
         "more A records"},
        {"DIMEFRAME/1\nK1:M,Y1:0,S0:,P0:,D0:,Z0:,E0:,", "", DC_ERR_ORDER, "E where Q"},
        {"DIMEFRAME/1\nK1:M,Y1:0,S0:,P0:,D0:,Z0:,Q0:,E0:,x", "", DC_OK, NULL},
        {"", "", DC_ERR_MAGIC, "DIMEFRAME/1"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct dc_err err = {0};
        enum dc_status st = rev1(t[i].frame, t[i].other, &err);
        cr_assert_eq(st, t[i].st, "case %zu: %d (%s)", i, st, err.msg);
        if (t[i].msg != NULL)
            cr_assert(strstr(err.msg, t[i].msg) != NULL, "case %zu: %s", i, err.msg);
    }
}

Test(mime, reverse_checks_chunk_list)
{
    struct fwd f;
    fwd_file("multipart-mixed-base64-attachment.eml", &f);
    struct dc_dmap_chunk *ch;
    size_t n;
    cr_assert_eq(dc_dmap_chunks(&f.m, 0, &ch, &n, NULL), DC_OK);
    cr_assert_eq(n, 2u);
    struct dc_buf out;
    dc_buf_init(&out);
    struct dc_err err = {0};
    /* attachment missing */
    cr_assert_eq(dc_dmap_reverse(f.m.other.data, f.m.other.len, ch, 1, &out, &err),
                 DC_ERR_FORMAT);
    cr_assert(strstr(err.msg, "0 attachments") != NULL || strstr(err.msg, "A records") != NULL,
              "%s", err.msg);
    /* wrong order */
    struct dc_dmap_chunk sw[2] = {ch[1], ch[0]};
    cr_assert_eq(dc_dmap_reverse(f.m.other.data, f.m.other.len, sw, 2, &out, &err),
                 DC_ERR_ORDER);
    /* two display items */
    struct dc_dmap_chunk dd[3] = {ch[0], ch[0], ch[1]};
    cr_assert_eq(dc_dmap_reverse(f.m.other.data, f.m.other.len, dd, 3, &out, &err),
                 DC_ERR_ORDER);
    cr_assert(strstr(err.msg, "second display") != NULL, "%s", err.msg);
    /* continuation into a different type */
    struct dc_dmap_chunk ct[2] = {ch[0], ch[1]};
    ct[0].flags = DC_DMAP_FLAG_CONTINUED;
    cr_assert_eq(dc_dmap_reverse(f.m.other.data, f.m.other.len, ct, 2, &out, &err),
                 DC_ERR_ORDER);
    /* compressed chunks, unknown types */
    struct dc_dmap_chunk gz[2] = {ch[0], ch[1]};
    gz[1].flags = DC_DMAP_FLAG_GZIP;
    cr_assert_eq(dc_dmap_reverse(f.m.other.data, f.m.other.len, gz, 2, &out, &err),
                 DC_ERR_FORMAT);
    gz[1].flags = 0;
    gz[1].type = 34;
    cr_assert_eq(dc_dmap_reverse(f.m.other.data, f.m.other.len, gz, 2, &out, &err), DC_ERR_ARG);
    /* other headers missing a byte: the first, or one of the frame field */
    cr_assert_eq(dc_dmap_reverse(f.m.other.data + 1, f.m.other.len - 1, ch, 2, &out, &err),
                 DC_ERR_FORMAT);
    cr_assert_eq(dc_dmap_reverse(f.m.other.data, f.m.other.len - 4, ch, 2, &out, &err),
                 DC_ERR_FORMAT);
    cr_assert_eq(out.len, 0u);
    /* every truncation of the display data fails cleanly or rebuilds something shorter */
    for (size_t cut = 0; cut < ch[0].len; cut++) {
        struct dc_dmap_chunk tr[2] = {ch[0], ch[1]};
        tr[0].len = cut;
        out.len = 0;
        enum dc_status st = dc_dmap_reverse(f.m.other.data, f.m.other.len, tr, 2, &out, NULL);
        cr_assert(st != DC_OK || out.len < f.len, "cut %zu", cut);
    }
    dc_buf_free(&out);
    free(ch);
    fwd_free(&f);
}

/* ---- the current layout: what the content chunks hold ---- */

#include "dc_b64.h"
#include "dc_cte.h"

/* The base64 body of the part after `marker` in msg, decoded. */
static uint8_t *b64_body_after(const uint8_t *msg, size_t len, const char *marker, size_t *n)
{
    const uint8_t *p = memmem(msg, len, marker, strlen(marker));
    cr_assert_not_null(p, "%s", marker);
    p = memmem(p, len - (size_t)(p - msg), "\r\n\r\n", 4);
    cr_assert_not_null(p);
    p += 4;
    const uint8_t *end = memmem(p, len - (size_t)(p - msg), "\r\n--", 4);
    cr_assert_not_null(end);
    char *t = malloc((size_t)(end - p) + 1);
    size_t k = 0;
    for (const uint8_t *q = p; q < end; q++)
        if (*q != '\r' && *q != '\n')
            t[k++] = (char)*q;
    uint8_t *out = malloc(dc_b64_dec_max(k) + 1);
    cr_assert_eq(dc_b64_decode(t, k, out, n, NULL), DC_OK);
    free(t);
    return out;
}

Test(mime, attachment_chunks_hold_the_decoded_files_with_name_and_type)
{
    struct fwd f;
    fwd_file("multipart-mixed-base64-attachment.eml", &f);
    cr_assert_eq(f.m.nattach, 1u);
    size_t n;
    uint8_t *want = b64_body_after(f.msg, f.len, "name=a.pdf", &n);
    cr_assert_eq(f.m.attach[0].len, n);
    cr_assert(memcmp(f.m.attach[0].p, want, n) == 0, "the file's bytes");
    free(want);
    static const char field[] =
        "\r\nX-Dime-Attachment: 1; type=application/pdf; filename=\"a.pdf\"\r\nX-Dime-Frame: ";
    cr_assert_not_null(memmem(f.m.other.data, f.m.other.len, field, strlen(field)));
    const uint8_t *c = display_content(&f.m, &n);
    cr_assert(n == 12 && memcmp(c, "see attached", 12) == 0, "[%.*s]", (int)n, c);
    round_trip(f.msg, f.len, &f.m, 0, "a.pdf");
    round_trip(f.msg, f.len, &f.m, 5, "a.pdf in 5-byte pieces");
    fwd_free(&f);

    fwd_file("base64-binary-part.eml", &f);
    want = b64_body_after(f.msg, f.len, "application/octet-stream", &n);
    cr_assert(f.m.nattach == 1 && f.m.attach[0].len == n &&
              memcmp(f.m.attach[0].p, want, n) == 0);
    free(want);
    fwd_free(&f);
}

static void forward_str(const char *msg, struct dc_dmap_out *m)
{
    cr_assert_eq(dc_dmap_forward((const uint8_t *)msg, strlen(msg), &opts, m, NULL), DC_OK);
    round_trip((const uint8_t *)msg, strlen(msg), m, 0, msg);
    round_trip((const uint8_t *)msg, strlen(msg), m, 3, msg);
}

static void assert_display(const struct dc_dmap_out *m, const char *want)
{
    cr_assert_eq(m->display.len, strlen(want), "[%.*s]", (int)m->display.len,
                 (const char *)m->display.data);
    cr_assert(memcmp(m->display.data, want, m->display.len) == 0, "[%.*s]",
              (int)m->display.len, (const char *)m->display.data);
}

Test(mime, display_text_is_decoded_only_when_it_encodes_back_exactly)
{
    struct dc_dmap_out m;
    /* canonical quoted-printable, with a soft break at 76 columns */
    forward_str("From: a@alice.test\r\nContent-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                "Gr=C3=BC=C3=9Fe, a line long enough to need a soft break before the end of =\r\n"
                "it, and =3D signs, trailing space=20\r\nend\r\n",
                &m);
    assert_display(&m, "Gr\xc3\xbc\xc3\x9f"
                       "e, a line long enough to need a soft break before the end of it, "
                       "and = signs, trailing space \r\nend\r\n");
    dc_dmap_out_free(&m);
    /* base64 text */
    forward_str("Content-Type: text/plain\r\nContent-Transfer-Encoding: BASE64\r\n\r\n"
                "aGVsbG8gd29ybGQ=\r\n",
                &m);
    assert_display(&m, "hello world");
    dc_dmap_out_free(&m);
    /* a narrower line length (45 here) is found from where the soft breaks are */
    size_t len;
    uint8_t *raw = corpus_read("quoted-printable-part.eml", &len);
    cr_assert_eq(dc_dmap_forward(raw, len, &opts, &m, NULL), DC_OK);
    assert_display(&m, "Caf\xe9 cr\xe8me br\xfbl\xe9" "e, a soft line break here, and = signs.\r\n");
    round_trip(raw, len, &m, 0, "quoted-printable-part.eml");
    dc_dmap_out_free(&m);
    free(raw);
    /* a soft break where no line length puts one, lower-case hex, uneven base64 lines, a
     * non-text display: kept as they are */
    static const char *const kept[] = {
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "ab=\r\ncd\r\na line of text that is much longer than the first one was\r\n",
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "caf=e9\r\n",
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "aGVs\r\nbG8gd29ybGQ=\r\n",
        "Content-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "R0lGODlhAQABAAAAACw=\r\n",
    };
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
        forward_str(kept[i], &m);
        const char *b = strstr(kept[i], "\r\n\r\n") + 4;
        assert_display(&m, b);
        dc_dmap_out_free(&m);
    }
    /* an empty body: the display chunk holds a placeholder the frame says to drop */
    forward_str("Subject: empty\r\n\r\n", &m);
    assert_display(&m, DC_DMAP_PLACEHOLDER);
    dc_dmap_out_free(&m);
}

/* Encoder pieces: fed one byte at a time it writes what it writes for the whole. */
static enum dc_status buf_write(void *ctx, const uint8_t *p, size_t n, struct dc_err *err)
{
    (void)err;
    dc_buf_append(ctx, p, n);
    return DC_OK;
}

Test(mime, transfer_encoder_styles_and_pieces)
{
    static const char *const tok[] = {"b76cf", "b64ln", "q76c", "q4l"};
    for (size_t i = 0; i < 4; i++) {
        struct dc_cte_style s;
        char out[40];
        cr_assert(dc_cte_style_parse((const uint8_t *)tok[i], strlen(tok[i]), &s), "%s", tok[i]);
        dc_cte_style_text(&s, out, sizeof(out));
        cr_assert_str_eq(out, tok[i]);
    }
    static const char *const bad[] = {"b0cf", "b76c", "q3c", "q76cf", "x76c", "b076cf", "b76xf",
                                      "b99999999999cf", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct dc_cte_style s;
        cr_assert(!dc_cte_style_parse((const uint8_t *)bad[i], strlen(bad[i]), &s), "%s",
                  bad[i]);
    }
    uint8_t data[700];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 37 + (i % 11 == 0 ? '\n' : 0) + (i % 13 == 0 ? ' ' : 0));
    for (size_t i = 0; i < 4; i++) {
        struct dc_cte_style s;
        dc_cte_style_parse((const uint8_t *)tok[i], strlen(tok[i]), &s);
        struct dc_buf whole, bytes;
        dc_buf_init(&whole);
        dc_buf_init(&bytes);
        struct dc_cte_enc e;
        dc_cte_enc_init(&e, &s, buf_write, &whole, NULL);
        dc_cte_enc_feed(&e, data, sizeof(data));
        cr_assert_eq(dc_cte_enc_finish(&e), DC_OK);
        dc_cte_enc_init(&e, &s, buf_write, &bytes, NULL);
        for (size_t k = 0; k < sizeof(data); k++)
            dc_cte_enc_feed(&e, data + k, 1);
        cr_assert_eq(dc_cte_enc_finish(&e), DC_OK);
        cr_assert(whole.len == bytes.len && memcmp(whole.data, bytes.data, whole.len) == 0,
                  "%s", tok[i]);
        /* what the encoder wrote decodes back to the data, in the same style */
        struct dc_cte_style g;
        uint8_t *dec;
        size_t dn;
        cr_assert(dc_cte_decode_exact(s.kind, whole.data, whole.len, &g, &dec, &dn), "%s",
                  tok[i]);
        cr_assert(dn == sizeof(data) && memcmp(dec, data, dn) == 0, "%s", tok[i]);
        free(dec);
        dc_buf_free(&whole);
        dc_buf_free(&bytes);
    }
}

/* The base64 encoder's line-at-a-time path (widths that are multiples of 4) against its
 * group-at-a-time path (one byte per feed), over more than one output buffer, in pieces that
 * leave groups open; and the decoder's four-at-a-time path through what they wrote. */
Test(mime, base64_fast_paths_match_the_plain_ones)
{
    static uint8_t data[20011];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 131 + (i >> 7));
    static const char *const tok[] = {"b76cf", "b64ln", "b72cn", "b4cf", "b75cf"};
    static const size_t piece[] = {sizeof(data), 4096, 7, 2};
    for (size_t t = 0; t < sizeof(tok) / sizeof(tok[0]); t++) {
        struct dc_cte_style s;
        cr_assert(dc_cte_style_parse((const uint8_t *)tok[t], strlen(tok[t]), &s), "%s", tok[t]);
        struct dc_buf ref;
        dc_buf_init(&ref);
        struct dc_cte_enc e;
        dc_cte_enc_init(&e, &s, buf_write, &ref, NULL);
        for (size_t k = 0; k < sizeof(data); k++)
            dc_cte_enc_feed(&e, data + k, 1);
        cr_assert_eq(dc_cte_enc_finish(&e), DC_OK);
        for (size_t q = 0; q < sizeof(piece) / sizeof(piece[0]); q++) {
            struct dc_buf got;
            dc_buf_init(&got);
            dc_cte_enc_init(&e, &s, buf_write, &got, NULL);
            for (size_t k = 0; k < sizeof(data); k += piece[q])
                dc_cte_enc_feed(&e, data + k,
                                sizeof(data) - k < piece[q] ? sizeof(data) - k : piece[q]);
            cr_assert_eq(dc_cte_enc_finish(&e), DC_OK);
            cr_assert(got.len == ref.len && memcmp(got.data, ref.data, ref.len) == 0,
                      "%s in pieces of %zu", tok[t], piece[q]);
            dc_buf_free(&got);
        }
        struct dc_cte_style g;
        uint8_t *dec;
        size_t dn;
        cr_assert(dc_cte_decode_exact(DC_CTE_B64, ref.data, ref.len, &g, &dec, &dn), "%s",
                  tok[t]);
        cr_assert(dn == sizeof(data) && memcmp(dec, data, dn) == 0, "%s", tok[t]);
        cr_expect_eq(g.width, s.width, "%s", tok[t]);
        free(dec);
        dc_buf_free(&ref);
    }
}

/* Reverse with frame f (DIMEFRAME/2) as the last field of chunk 34 after `fields`, and the
 * display data "body" plus `natt` one-byte attachments. */
static enum dc_status rev2(const char *fields, const char *f, size_t natt, struct dc_buf *out,
                           struct dc_err *err)
{
    char *b = dc_b64_encode_alloc((const uint8_t *)f, strlen(f), 1);
    struct dc_buf o;
    dc_buf_init(&o);
    dc_buf_printf(&o, "%s%s: %s\r\n", fields, DC_DMAP_FRAME_FIELD, b);
    free(b);
    struct dc_dmap_chunk c[3] = {{DC_DMAP_TYPE_DISPLAY, 0, (const uint8_t *)"body", 4},
                                 {DC_DMAP_TYPE_ATTACH, 0, (const uint8_t *)"a", 1},
                                 {DC_DMAP_TYPE_ATTACH, 0, (const uint8_t *)"b", 1}};
    dc_buf_init(out);
    enum dc_status st = dc_dmap_reverse(o.data, o.len, c, 1 + natt, out, err);
    dc_buf_free(&o);
    return st;
}

Test(mime, reverse_checks_the_frame_in_chunk_34)
{
    static const char att1[] = "X-Dime-Attachment: 1; type=a/b\r\n";
    static const struct {
        const char *fields, *frame;
        size_t natt;
        enum dc_status st;
        const char *want; /* the message, or the error */
    } t[] = {
        {"", "DIMEFRAME/2\nK1:B,Y1:0,S2:\r\n,T1:r,E0:,", 0, DC_OK, "\r\nbody"},
        {"X-A: 1\r\n", "DIMEFRAME/2\nK1:B,Y1:0,O1:9,S1:\n,T1:r,E0:,", 0, DC_ERR_FORMAT,
         "O record beyond"},
        {"X-A: 1\r\n", "DIMEFRAME/2\nK1:B,Y1:0,O1:8,S1:\n,T1:-,E0:,", 0, DC_OK, "X-A: 1\r\n\n"},
        {"", "DIMEFRAME/2\nK1:B,Y1:0,S0:,T5:b76cf,E0:,", 0, DC_OK, "Ym9keQ==\r\n"},
        {"", "DIMEFRAME/2\nK1:B,Y1:0,S0:,T4:q76c,E0:,", 0, DC_OK, "body"},
        {"", "DIMEFRAME/2\nK1:B,Y1:0,S0:,T3:zzz,E0:,", 0, DC_ERR_FORMAT, "transfer treatment"},
        {"", "DIMEFRAME/2\nK1:B,Y1:0,S0:,E0:,", 0, DC_ERR_ORDER, "E where T"},
        {"", "DIMEFRAME/2\nK1:B,Y1:0,S0:,T1:r,E0:,x", 0, DC_ERR_FORMAT, "after the E"},
        {"X-A: 1\r\n", "DIMEFRAME/2\nK1:W,Y1:0,T1:r,E0:,", 0, DC_ERR_FORMAT, "between"},
        {"", "DIMEFRAME/2\nK1:W,Y1:0,T1:r,E0:,", 0, DC_OK, "body"},
        {"", "DIMEFRAME/2\nK1:W,Y1:0,T1:r,E0:,", 1, DC_ERR_FORMAT, "attachments present"},
        {att1, "DIMEFRAME/2\nK1:M,Y1:0,S0:,P1:p,D1:d,H1:h,T1:r,A1:a,H1:i,T1:r,N2:nn,Z1:z,Q1:q,E0:,",
         1, DC_OK, "pdhbodyaiannzq"},
        {"", "DIMEFRAME/2\nK1:M,Y1:0,S0:,P1:p,D1:d,H1:h,T1:r,A1:a,H1:i,T1:r,Z1:z,Q1:q,E0:,", 1,
         DC_ERR_FORMAT, "no X-Dime-Attachment field for attachment 1"},
        {att1, "DIMEFRAME/2\nK1:M,Y1:0,S0:,P1:p,A1:a,H1:i,T1:r,Z1:z,Q1:q,E0:,", 1,
         DC_ERR_FORMAT, "0 D records"},
        {att1, "DIMEFRAME/2\nK1:M,Y1:0,S0:,P1:p,D1:d,H1:h,T1:r,D1:d,Z1:z,Q1:q,E0:,", 1,
         DC_ERR_ORDER, "out of place"},
        {att1, "DIMEFRAME/2\nK1:M,Y1:0,S0:,P1:p,D1:d,T1:r,Z1:z,Q1:q,E0:,", 1, DC_ERR_ORDER,
         "T where H"},
        {"", "DIMEFRAME/1\nK1:B,Y1:0,S0:,T1:r,E0:,", 0, DC_ERR_FORMAT, "not a DIMEFRAME/2"},
        {"", "DIMEFRAME/2\nK1:B,Y1:0,S0:,U0:,P1:p,N1:n,D1:d,H1:h,T1:r,N1:m,Z1:z,Q1:q,E0:,", 0,
         DC_OK, "pndhbodymzq"},
        {"", "DIMEFRAME/2\nK1:B,Y1:0,S0:,U0:,P1:p,N1:n,Z1:z,Q1:q,E0:,", 0, DC_ERR_FORMAT,
         "without a D record"},
        {"", "DIMEFRAME/2\nK1:B,Y1:0,S0:,U0:,P1:p,D1:d,H1:h,T1:r,D1:d,Z1:z,Q1:q,E0:,", 0,
         DC_ERR_ORDER, "among the alternatives"},
        {"", "DIMEFRAME/2\nK1:B,Y1:0,S0:,U1:x,P1:p,Z1:z,Q1:q,E0:,", 0, DC_ERR_ORDER,
         "where T belongs"},
        {att1,
         "DIMEFRAME/2\nK1:M,Y1:0,S0:,P0:,D1:d,H1:h,U0:,P0:,D1:e,H1:i,T1:r,Z1:z,Q0:,A1:a,H1:j,"
         "T1:r,Z1:y,Q0:,E0:,",
         1, DC_OK, "dheibodyzajay"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct dc_buf out;
        struct dc_err err = {0};
        enum dc_status st = rev2(t[i].fields, t[i].frame, t[i].natt, &out, &err);
        cr_assert_eq(st, t[i].st, "case %zu: %d (%s)", i, st, err.msg);
        if (st == DC_OK)
            cr_assert(out.len == strlen(t[i].want) && memcmp(out.data, t[i].want, out.len) == 0,
                      "case %zu: [%.*s]", i, (int)out.len, (const char *)out.data);
        else
            cr_assert(strstr(err.msg, t[i].want) != NULL, "case %zu: %s", i, err.msg);
        dc_buf_free(&out);
    }
    /* a frame field that is not the last field is no frame: then the display data is read
     * as the first layout's, or as another implementation's message */
    struct dc_dmap_chunk c = {DC_DMAP_TYPE_DISPLAY, 0, (const uint8_t *)"body", 4};
    struct dc_buf out;
    dc_buf_init(&out);
    static const char o[] = "X-Dime-Frame: RElNRUZSQU1FLzIK\r\nX-After: 1\r\n";
    cr_assert_eq(dc_dmap_reverse((const uint8_t *)o, strlen(o), &c, 1, &out, NULL),
                 DC_ERR_MAGIC);
    dc_buf_free(&out);
}
