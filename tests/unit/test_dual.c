/* The dual-mode front's wire formats (rl_dual_wire.c): the PROXY v2 header Postfix reads,
 * the judgement of a client's first command, Postfix's greeting with DMTPv1, and the
 * dual-mode-postfix address forms. The sessions themselves run against real Postfix in
 * tests/integration/test_dual.sh. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "dc_dmtp.h"
#include "rl_dual.h"

static struct sockaddr_in v4(const char *a, unsigned port)
{
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    cr_assert_eq(inet_pton(AF_INET, a, &s.sin_addr), 1);
    return s;
}

static struct sockaddr_in6 v6(const char *a, unsigned port)
{
    struct sockaddr_in6 s = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    cr_assert_eq(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
    return s;
}

/* haproxy's proxy-protocol.txt, 2.2: the signature every v2 header starts with */
static const uint8_t SIG[12] = "\r\n\r\n\0\r\nQUIT\n";

Test(proxy, tcp4_header_carries_both_addresses_and_ports_in_network_order)
{
    struct sockaddr_in src = v4("192.0.2.7", 40001), dst = v4("198.51.100.25", 25);
    uint8_t h[RL_DUAL_PROXY_MAX];
    size_t n = rl_dual_proxy_v2((struct sockaddr *)&src, (struct sockaddr *)&dst, h);
    static const uint8_t want[28] = {
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
        0x21,                   /* version 2, PROXY */
        0x11,                   /* TCP over IPv4 */
        0x00, 0x0c,             /* 12 bytes follow */
        192, 0, 2, 7,           /* source */
        198, 51, 100, 25,       /* destination */
        0x9c, 0x41,             /* 40001 */
        0x00, 0x19,             /* 25 */
    };
    cr_assert_eq(n, sizeof(want));
    cr_assert_arr_eq(h, want, sizeof(want));
    cr_assert_arr_eq(h, SIG, sizeof(SIG));
}

Test(proxy, tcp6_header_is_16_plus_36_bytes)
{
    struct sockaddr_in6 src = v6("2001:db8::7", 1234), dst = v6("2001:db8::25", 25);
    uint8_t h[RL_DUAL_PROXY_MAX];
    size_t n = rl_dual_proxy_v2((struct sockaddr *)&src, (struct sockaddr *)&dst, h);
    cr_assert_eq(n, 52);
    cr_assert_arr_eq(h, SIG, sizeof(SIG));
    cr_assert_eq(h[12], 0x21);
    cr_assert_eq(h[13], 0x21);
    cr_assert_eq(h[14] * 256 + h[15], 36);
    cr_assert_arr_eq(h + 16, &src.sin6_addr, 16);
    cr_assert_arr_eq(h + 32, &dst.sin6_addr, 16);
    cr_assert_eq(h[48] * 256 + h[49], 1234);
    cr_assert_eq(h[50] * 256 + h[51], 25);
}

Test(proxy, ipv4_mapped_ends_of_a_dual_stack_socket_become_tcp4)
{
    struct sockaddr_in6 src = v6("::ffff:192.0.2.7", 5000), dst = v6("::ffff:192.0.2.1", 25);
    uint8_t h[RL_DUAL_PROXY_MAX];
    cr_assert_eq(rl_dual_proxy_v2((struct sockaddr *)&src, (struct sockaddr *)&dst, h), 28);
    cr_assert_eq(h[13], 0x11);
    static const uint8_t addrs[8] = {192, 0, 2, 7, 192, 0, 2, 1};
    cr_assert_arr_eq(h + 16, addrs, 8);
}

Test(proxy, mixed_or_other_families_give_no_header)
{
    struct sockaddr_in a4 = v4("192.0.2.7", 1);
    struct sockaddr_in6 a6 = v6("2001:db8::1", 2);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    uint8_t h[RL_DUAL_PROXY_MAX];
    cr_assert_eq(rl_dual_proxy_v2((struct sockaddr *)&a4, (struct sockaddr *)&a6, h), 0);
    cr_assert_eq(rl_dual_proxy_v2((struct sockaddr *)&a6, (struct sockaddr *)&a4, h), 0);
    cr_assert_eq(rl_dual_proxy_v2((struct sockaddr *)&un, (struct sockaddr *)&un, h), 0);
}

/* ---- the first command ---- */

struct first_case {
    const char *name, *bytes;
    enum rl_dual_first want;
    size_t linelen; /* for DMTP */
};

static const struct first_case first_cases[] = {
    {"the line the relay's client sends", "STARTTLS dx.bob.test MODE=DMTPv1\r\n", RL_DUAL_DMTP, 34},
    {"verb and mode in any case", "starttls mx.example.org mode=dmtpv1\r\n", RL_DUAL_DMTP, 37},
    {"EHLO of a legacy client", "EHLO client.example\r\n", RL_DUAL_SMTP, 0},
    {"decided at the first byte that differs", "E", RL_DUAL_SMTP, 0},
    {"QUIT", "QUIT\r\n", RL_DUAL_SMTP, 0},
    {"a plain STARTTLS is Postfix's", "STARTTLS\r\n", RL_DUAL_SMTP, 0},
    {"STARTTLS with a space only", "STARTTLS \r\n", RL_DUAL_SMTP, 0},
    {"another mode", "STARTTLS dx.bob.test MODE=SMTP\r\n", RL_DUAL_SMTP, 0},
    {"no mode", "STARTTLS dx.bob.test\r\n", RL_DUAL_SMTP, 0},
    {"a word after the mode", "STARTTLS dx.bob.test MODE=DMTPv1 x\r\n", RL_DUAL_SMTP, 0},
    {"two spaces", "STARTTLS  dx.bob.test MODE=DMTPv1\r\n", RL_DUAL_SMTP, 0},
    {"a host with a character no name has", "STARTTLS dx_bob.test MODE=DMTPv1\r\n", RL_DUAL_SMTP, 0},
    {"LF alone does not end the line", "STARTTLS dx.bob.test MODE=DMTPv1\n", RL_DUAL_MORE, 0},
    {"part of the verb waits", "STARTT", RL_DUAL_MORE, 0},
    {"the line without its CRLF waits", "STARTTLS dx.bob.test MODE=DMTPv1", RL_DUAL_MORE, 0},
    {"nothing yet", "", RL_DUAL_MORE, 0},
};

Test(first, each_first_command_is_judged_as_its_table_row_says)
{
    for (size_t i = 0; i < sizeof(first_cases) / sizeof(first_cases[0]); i++) {
        const struct first_case *c = &first_cases[i];
        size_t ll = 0;
        enum rl_dual_first got = rl_dual_classify((const uint8_t *)c->bytes, strlen(c->bytes), &ll);
        cr_expect_eq(got, c->want, "%s: got %d, want %d", c->name, got, c->want);
        if (c->want == RL_DUAL_DMTP)
            cr_expect_eq(ll, c->linelen, "%s: line length %zu", c->name, ll);
    }
}

Test(first, bytes_after_the_dmtp_line_are_not_part_of_it)
{
    const char *b = "STARTTLS dx.bob.test MODE=DMTPv1\r\nEHLO x\r\n";
    size_t ll = 0;
    cr_assert_eq(rl_dual_classify((const uint8_t *)b, strlen(b), &ll), RL_DUAL_DMTP);
    cr_assert_eq(ll, 34); /* the front sees strlen(b) != ll and refuses to go on */
}

Test(first, a_starttls_line_without_crlf_is_smtp_at_the_line_limit)
{
    uint8_t b[RL_DUAL_LINE_MAX];
    memset(b, 'a', sizeof(b));
    memcpy(b, "STARTTLS ", 9);
    size_t ll = 0;
    cr_assert_eq(rl_dual_classify(b, sizeof(b) - 1, &ll), RL_DUAL_MORE);
    cr_assert_eq(rl_dual_classify(b, sizeof(b), &ll), RL_DUAL_SMTP);
}

/* ---- Postfix's greeting ---- */

struct banner_case {
    const char *name, *in;
    enum dc_status want;
    const char *out;
    int code;
};

static const struct banner_case banner_cases[] = {
    {"one line", "220 mx.bob.test ESMTP Postfix\r\n", DC_OK,
     "220 mx.bob.test DMTPv1 ESMTP Postfix\r\n", 220},
    {"host name alone", "220 mx.bob.test\r\n", DC_OK, "220 mx.bob.test DMTPv1\r\n", 220},
    {"multi-line: the first line carries it", "220-mx.bob.test ESMTP\r\n220-more\r\n220 end\r\n",
     DC_OK, "220-mx.bob.test DMTPv1 ESMTP\r\n220-more\r\n220 end\r\n", 220},
    {"a refusal passes unchanged", "554 5.7.1 go away\r\n", DC_OK, "554 5.7.1 go away\r\n", 554},
    {"421 unchanged", "421 4.3.2 busy\r\n", DC_OK, "421 4.3.2 busy\r\n", 421},
    {"half a line", "220 mx.bob.t", DC_ERR_TRUNCATED, NULL, 0},
    {"a multi-line greeting not finished", "220-mx.bob.test\r\n", DC_ERR_TRUNCATED, NULL, 0},
    {"not a reply", "hello\r\n", DC_ERR_FORMAT, NULL, 0},
    {"codes that differ", "220-a\r\n250 b\r\n", DC_ERR_FORMAT, NULL, 0},
    {"a bad separator", "220xmx\r\n", DC_ERR_FORMAT, NULL, 0},
};

Test(banner, each_greeting_becomes_what_its_table_row_says)
{
    for (size_t i = 0; i < sizeof(banner_cases) / sizeof(banner_cases[0]); i++) {
        const struct banner_case *c = &banner_cases[i];
        struct dc_buf out;
        dc_buf_init(&out);
        size_t used = 0;
        int code = 0;
        enum dc_status st = rl_dual_banner((const uint8_t *)c->in, strlen(c->in), &out, &used,
                                           &code);
        cr_expect_eq(st, c->want, "%s: status %d", c->name, st);
        if (c->want == DC_OK) {
            cr_expect_eq(used, strlen(c->in), "%s: used %zu", c->name, used);
            cr_expect_eq(code, c->code, "%s: code %d", c->name, code);
            cr_expect(out.len == strlen(c->out) && memcmp(out.data, c->out, out.len) == 0,
                      "%s: got \"%.*s\"", c->name, (int)out.len, (const char *)out.data);
        }
        dc_buf_free(&out);
    }
}

Test(banner, what_follows_the_greeting_is_not_consumed)
{
    const char *in = "220 mx ESMTP\r\n250 early\r\n";
    struct dc_buf out;
    dc_buf_init(&out);
    size_t used = 0;
    int code = 0;
    cr_assert_eq(rl_dual_banner((const uint8_t *)in, strlen(in), &out, &used, &code), DC_OK);
    cr_assert_eq(used, strlen("220 mx ESMTP\r\n"));
    dc_buf_free(&out);
}

Test(banner, an_overlong_greeting_line_is_refused)
{
    static uint8_t b[DC_DMTP_LINE_MAX + 10];
    memset(b, 'x', sizeof(b));
    memcpy(b, "220 ", 4);
    struct dc_buf out;
    dc_buf_init(&out);
    size_t used = 0;
    int code = 0;
    cr_assert_eq(rl_dual_banner(b, sizeof(b), &out, &used, &code), DC_ERR_FORMAT);
    dc_buf_free(&out);
}

/* ---- dual-mode-postfix ---- */

Test(target, the_three_address_forms_and_what_is_refused)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    cr_assert(rl_dual_target("127.0.0.1:10025", &ss, &sl));
    cr_assert_eq(ss.ss_family, AF_INET);
    cr_assert_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 10025);
    cr_assert(rl_dual_target("[::1]:10025", &ss, &sl));
    cr_assert_eq(ss.ss_family, AF_INET6);
    cr_assert(rl_dual_target("unix:/var/spool/postfix/private/smtpd-proxy", &ss, &sl));
    cr_assert_eq(ss.ss_family, AF_UNIX);
    cr_assert_str_eq(((struct sockaddr_un *)&ss)->sun_path,
                     "/var/spool/postfix/private/smtpd-proxy");
    cr_assert_not(rl_dual_target("localhost:25", &ss, &sl), "a name, not an address");
    cr_assert_not(rl_dual_target("127.0.0.1", &ss, &sl), "no port");
    cr_assert_not(rl_dual_target("unix:relative", &ss, &sl));
    cr_assert_not(rl_dual_target("127.0.0.1:0", &ss, &sl));
}
