/* DMTP wire codec: line framing, every command form libdime's client sends, the refusals the
 * DX server relies on (500 vs 501), reply assembly and formatting. */
#include <criterion/criterion.h>
#include <string.h>

#include "dc_dmtp.h"

#define FP86 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static enum dc_status parse(const char *line, struct dc_dmtp_cmd *c)
{
    struct dc_err err = {0};
    enum dc_status s = dc_dmtp_cmd_parse(line, strlen(line), c, &err);
    if (s != DC_OK)
        cr_assert(err.msg[0] != '\0', "a refusal carries a reason");
    return s;
}

Test(dmtp, line_framing)
{
    size_t ll;
    cr_assert_eq(dc_dmtp_line((const uint8_t *)"NOOP\r\nQUIT", 10, 100, &ll), DC_OK);
    cr_assert_eq(ll, 4);
    cr_assert_eq(dc_dmtp_line((const uint8_t *)"NOOP\r", 5, 100, &ll), DC_ERR_TRUNCATED);
    cr_assert_eq(dc_dmtp_line((const uint8_t *)"NOOP\n", 5, 100, &ll), DC_ERR_TRUNCATED,
                 "a bare LF does not end a line");
    cr_assert_eq(dc_dmtp_line((const uint8_t *)"0123456789", 10, 10, &ll), DC_ERR_LIMIT);
    cr_assert_eq(dc_dmtp_line((const uint8_t *)"01234567\r\n", 10, 10, &ll), DC_OK,
                 "a line of exactly max bytes with its CRLF fits");
}

Test(dmtp, libdime_client_forms)
{
    struct dc_dmtp_cmd c;
    cr_assert_eq(parse("SGNT <alice@example.org>", &c), DC_OK);
    cr_assert_eq(c.verb, DC_DMTP_SGNT);
    cr_assert_str_eq(c.name, "alice@example.org");
    cr_assert_eq(c.nfp, 0);
    cr_assert_eq(parse("sgnt example.org [" FP86 "]", &c), DC_OK, "verbs are case-insensitive");
    cr_assert_eq(c.nfp, 1);
    cr_assert_str_eq(c.fp[0], FP86);
    cr_assert_eq(parse("SGNT <example.org> [fingerprint]", &c), DC_OK);
    cr_assert_eq(c.nfp, 0, "libdime's placeholder is no fingerprint");
    cr_assert_eq(parse("HIST <a@example.org> [" FP86 "] [" FP86 "]", &c), DC_OK);
    cr_assert_eq(c.nfp, 2);
    cr_assert_eq(parse("VRFY <a@example.org> [" FP86 "]", &c), DC_OK);
    cr_assert_eq(parse("EHLO <example.org>", &c), DC_OK);
    cr_assert_eq(parse("MAIL FROM: <example.org> [fingerprint] SIZE=12", &c), DC_OK);
    cr_assert_eq(c.verb, DC_DMTP_MAIL);
    cr_assert_eq(parse("DATA [fingerprint]", &c), DC_OK);
    cr_assert_eq(parse("QUIT", &c), DC_OK);
    cr_assert_eq(c.verb, DC_DMTP_QUIT);
}

Test(dmtp, refusals)
{
    struct dc_dmtp_cmd c;
    cr_assert_eq(parse("FROB", &c), DC_ERR_NOTFOUND);
    cr_assert_eq(parse("", &c), DC_ERR_NOTFOUND);
    cr_assert_eq(parse("SGNTX <a.org>", &c), DC_ERR_NOTFOUND);
    cr_assert_eq(parse("SGNT", &c), DC_ERR_FORMAT);
    cr_assert_eq(parse("SGNT <a.org> [short]", &c), DC_ERR_FORMAT);
    cr_assert_eq(parse("SGNT <a.org", &c), DC_ERR_FORMAT);
    cr_assert_eq(parse("SGNT <-bad-.org>", &c), DC_ERR_FORMAT);
    cr_assert_eq(parse("SGNT <a b@x.org>", &c), DC_ERR_FORMAT);
    cr_assert_eq(parse("SGNT <@x.org>", &c), DC_ERR_FORMAT);
    cr_assert_eq(parse("VRFY <a.org>", &c), DC_ERR_FORMAT, "VRFY needs a fingerprint");
    cr_assert_eq(parse("NOOP now", &c), DC_ERR_FORMAT);
    cr_assert_eq(parse("EHLO <a@b.org>", &c), DC_ERR_FORMAT);
    cr_assert_eq(parse("NOOP\tx", &c), DC_ERR_FORMAT, "control characters");
    char bin[] = "SGNT <a.org>\x80";
    cr_assert_eq(parse(bin, &c), DC_ERR_FORMAT, "8-bit bytes");
    char longl[DC_DMTP_CMD_MAX + 10];
    memset(longl, 'x', sizeof(longl) - 1);
    longl[sizeof(longl) - 1] = '\0';
    memcpy(longl, "NOOP ", 5);
    cr_assert_eq(parse(longl, &c), DC_ERR_FORMAT);
}

Test(dmtp, replies)
{
    struct dc_buf b;
    dc_buf_init(&b);
    dc_dmtp_reply_put(&b, 250, true, "[%s]", "abc");
    dc_dmtp_reply_put(&b, 250, false, "OK");
    cr_assert_eq(b.len, strlen("250-[abc]\r\n250 OK\r\n"));
    cr_assert_eq(memcmp(b.data, "250-[abc]\r\n250 OK\r\n", b.len), 0);
    dc_buf_free(&b);

    struct dc_dmtp_reply r;
    struct dc_err err = {0};
    dc_dmtp_reply_init(&r);
    cr_assert_eq(dc_dmtp_reply_add(&r, "250-[abc]", 9, &err), DC_OK);
    cr_assert(!r.done);
    cr_assert_eq(dc_dmtp_reply_add(&r, "250 OK", 6, &err), DC_OK);
    cr_assert(r.done);
    cr_assert_eq(r.nlines, 2);
    const char *p;
    size_t pl;
    cr_assert_eq(dc_dmtp_bracket(r.lines[0], &p, &pl, &err), DC_OK);
    cr_assert_eq(pl, 3);
    cr_assert_eq(dc_dmtp_reply_add(&r, "250 again", 9, &err), DC_ERR_FORMAT);
    dc_dmtp_reply_free(&r);

    dc_dmtp_reply_init(&r);
    cr_assert_eq(dc_dmtp_reply_add(&r, "250-a", 5, &err), DC_OK);
    cr_assert_eq(dc_dmtp_reply_add(&r, "251 b", 5, &err), DC_ERR_FORMAT, "code changed");
    dc_dmtp_reply_free(&r);
    dc_dmtp_reply_init(&r);
    cr_assert_eq(dc_dmtp_reply_add(&r, "25x OK", 6, &err), DC_ERR_FORMAT);
    cr_assert_eq(dc_dmtp_reply_add(&r, "250_OK", 6, &err), DC_ERR_FORMAT);
    cr_assert_eq(dc_dmtp_bracket("OK no value", &p, &pl, &err), DC_ERR_FORMAT);
    dc_dmtp_reply_free(&r);
}
