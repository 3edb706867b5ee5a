/* DNS management record: every malformed-field case, the accepted syntax, generation,
 * 255-byte character-strings, zone lines and the tls= certificate signatures. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc_b64.h"
#include "dc_mrec.h"
#include "vectors.h"

/* Ed25519 public keys of alice.test and bob.test (vectors keys.json), unpadded base64. */
#define POK_A "/AiRTqpCJiydVBPY4+0SddJuArhAcOfX/aDig6p+5/I"
#define POK_B "mx9IdkdnYfSfgZ1vwm7i+pQ1H5m5f2MSliTd8vfmWmQ"
#define SEED_A "9eb86ee5539c6344ba676434cb39db6f06de09b2f46c91cc47d13862f5c0cca5"
#define SEED_B "618bcb905af2f4ba5559e5660d13e85db37cf4f054fb53205245860b1f459323"
/* 64 bytes 00..3f, unpadded base64: well-formed, not a real signature. */
#define TLS_X "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw"

static struct dc_mrec *parse_ok(const char *text)
{
    struct dc_mrec *r = NULL;
    struct dc_err err = {0};
    enum dc_status s = dc_mrec_parse_text(text, &r, &err);
    cr_assert_eq(s, DC_OK, "parsing '%s' failed: %s", text, err.msg);
    cr_assert_not_null(r);
    return r;
}

static void decode_pok(const char *b64, uint8_t out[32])
{
    cr_assert_eq(dc_b64_decode_exact(b64, strlen(b64), out, 32, NULL), DC_OK);
}

/* ---- malformed records, one row each ---- */

static const struct bad_case {
    const char *record;
    enum dc_status status;
    const char *msg; /* a distinctive part of the error message */
} bad_cases[] = {
    /* ver */
    {"ver=2 pok=" POK_A, DC_ERR_FIELD, "ver: unsupported version 2"},
    {"ver=0 pok=" POK_A, DC_ERR_FIELD, "ver: unsupported version 0"},
    {"ver=one pok=" POK_A, DC_ERR_FIELD, "ver: value 'one' is not a non-negative decimal"},
    {"ver=1.0 pok=" POK_A, DC_ERR_FIELD, "ver: value '1.0' is not a non-negative decimal"},
    {"ver= pok=" POK_A, DC_ERR_FIELD, "ver: empty value"},
    {"ver=1 version=1 pok=" POK_A, DC_ERR_ORDER, "ver: field appears more than once"},
    /* pok */
    {"ver=1 pok=abc", DC_ERR_FIELD, "pok: value 'abc' is 3 characters long, expected 43"},
    {"ver=1 pok=" POK_A "=", DC_ERR_FIELD, "is 44 characters long, expected 43"},
    {"ver=1 pok=" POK_A "A", DC_ERR_FIELD, "is 44 characters long, expected 43"},
    {"ver=1 pok=/AiRTqpCJiydVBPY4+0SddJuArhAcOfX/aDig6p+5/!", DC_ERR_BASE64,
     "pok: value '/AiRTqpCJiydVBPY4+0SddJuArhAcOfX/aDig6p+...' is not valid base64 of 32 bytes"},
    /* 43 characters whose last one carries non-zero bits beyond the 32nd byte */
    {"ver=1 pok=/AiRTqpCJiydVBPY4+0SddJuArhAcOfX/aDig6p+5/J", DC_ERR_BASE64,
     "non-zero trailing bits"},
    {"ver=1 primary=", DC_ERR_FIELD, "pok: empty value"},
    {"ver=1", DC_ERR_FIELD, "record has no pok field"},
    {"", DC_ERR_FIELD, "record has no pok field"},
    {"ver=1 pol=strict dx=mx.example.org", DC_ERR_FIELD, "record has no pok field"},
    /* tls */
    {"pok=" POK_A " tls=" POK_B, DC_ERR_FIELD, "tls: value 'mx9I"},
    {"pok=" POK_A " tls=" TLS_X "A", DC_ERR_FIELD, "87 characters long, expected 86"},
    {"pok=" POK_A " tls=" TLS_X "==", DC_ERR_FIELD, "88 characters long, expected 86"},
    {"pok=" POK_A " tls=*AECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEy"
     "MzQ1Njc4OTo7PD0+Pw", DC_ERR_BASE64, "tls: value '*AEC"},
    {"pok=" POK_A " tls=", DC_ERR_FIELD, "tls: empty value"},
    /* pol */
    {"pok=" POK_A " pol=paranoid", DC_ERR_FIELD,
     "pol: unknown value 'paranoid' (expected experimental, mixed or strict)"},
    {"pok=" POK_A " policy=", DC_ERR_FIELD, "pol: empty value"},
    {"pok=" POK_A " pol=strict policy=mixed", DC_ERR_ORDER,
     "pol: field appears more than once (second value 'mixed')"},
    /* sub */
    {"pok=" POK_A " sub=loose", DC_ERR_FIELD,
     "sub: unknown value 'loose' (expected strict, relaxed or explicit)"},
    {"pok=" POK_A " sub=strict subdomain=relaxed", DC_ERR_ORDER,
     "sub: field appears more than once"},
    /* dx */
    {"pok=" POK_A " dx=", DC_ERR_FIELD, "dx: empty value"},
    {"pok=" POK_A " dx=.", DC_ERR_FIELD, "dx: host name is empty"},
    {"pok=" POK_A " dx=bad_host.example", DC_ERR_FIELD,
     "dx: host name 'bad_host.example' has a character other than letters"},
    {"pok=" POK_A " deliver=mx..example", DC_ERR_FIELD,
     "dx: host name 'mx..example' has an empty label"},
    {"pok=" POK_A " dx=-mx.example", DC_ERR_FIELD, "label that starts or ends with '-'"},
    {"pok=" POK_A " dx=mx-.example", DC_ERR_FIELD, "label that starts or ends with '-'"},
    {"pok=" POK_A " dx=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
     DC_ERR_FIELD, "has a label of 64 characters, more than 63"},
    {"pok=" POK_A " dx="
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     DC_ERR_FIELD, "is 254 characters long, more than 253"},
    {"pok=" POK_A " dx=mx.example.org:25", DC_ERR_FIELD, "'mx.example.org:25' has a character"},
    /* exp */
    {"pok=" POK_A " exp=-1", DC_ERR_FIELD, "exp: value '-1' is not a non-negative decimal"},
    {"pok=" POK_A " expiry=30d", DC_ERR_FIELD, "exp: value '30d' is not a non-negative"},
    {"pok=" POK_A " exp=4294967296", DC_ERR_LIMIT, "exp: value '4294967296' is too large"},
    {"pok=" POK_A " exp=", DC_ERR_FIELD, "exp: empty value"},
    {"pok=" POK_A " exp=1 expiry=2", DC_ERR_ORDER, "exp: field appears more than once"},
    /* ttl */
    {"pok=" POK_A " ttl=1h", DC_ERR_FIELD, "ttl: value '1h' is not a non-negative decimal"},
    {"pok=" POK_A " ttl=99999999999999999999999", DC_ERR_LIMIT, "ttl: value '9999"},
    {"pok=" POK_A " ttl=", DC_ERR_FIELD, "ttl: empty value"},
    {"pok=" POK_A " ttl=1 ttl=1", DC_ERR_ORDER, "ttl: field appears more than once"},
    /* syn */
    {"pok=" POK_A " syn=", DC_ERR_FIELD, "syn: empty value"},
    {"pok=" POK_A " syn=a syndicates=b", DC_ERR_ORDER, "syn: field appears more than once"},
    /* token syntax */
    {"ver=1 pok=" POK_A " strict", DC_ERR_FORMAT, "token 'strict' at offset 54 is not name=value"},
    {"ver=1 =strict pok=" POK_A, DC_ERR_FORMAT, "token '=strict' at offset 6 has an empty field"},
    {"ver=1 pok " POK_A, DC_ERR_FORMAT, "token 'pok' at offset 6 is not name=value"},
};

Test(mrec, every_malformed_record_is_rejected_with_a_precise_error)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct dc_mrec *r = (struct dc_mrec *)1;
        struct dc_err err = {0};
        enum dc_status s = dc_mrec_parse_text(c->record, &r, &err);
        cr_expect_eq(s, c->status, "row %zu '%s': status %s, expected %s (%s)", i, c->record,
                     dc_status_name(s), dc_status_name(c->status), err.msg);
        cr_expect_null(r, "row %zu: no record on failure", i);
        cr_expect_eq(err.code, c->status, "row %zu: err.code", i);
        cr_expect(strstr(err.msg, c->msg) != NULL, "row %zu '%s': message '%s' lacks '%s'", i,
                  c->record, err.msg, c->msg);
        if (s == DC_OK)
            dc_mrec_free(r);
    }
}

/* Builds "pok=A" plus count copies of "<name>=<value>" separated by spaces. */
static char *repeat_field(const char *name, const char *value, size_t count)
{
    struct dc_buf b;
    dc_buf_init(&b);
    dc_buf_printf(&b, "pok=%s", POK_A);
    for (size_t i = 0; i < count; i++)
        dc_buf_printf(&b, " %s=%s", name, value);
    size_t len;
    return (char *)dc_buf_steal(&b, &len);
}

Test(mrec, count_limits_are_enforced)
{
    static const struct {
        const char *name, *value, *msg;
        size_t ok;
    } lim[] = {
        {"pok", POK_B, "pok: more than 16 keys", DC_MREC_MAX_POK - 1},
        {"tls", TLS_X, "tls: more than 16 signatures", DC_MREC_MAX_TLS},
        {"dx", "mx.example.org", "dx: more than 16 hosts", DC_MREC_MAX_DX},
    };
    for (size_t i = 0; i < sizeof(lim) / sizeof(lim[0]); i++) {
        char *t = repeat_field(lim[i].name, lim[i].value, lim[i].ok);
        struct dc_mrec *r = NULL;
        cr_assert_eq(dc_mrec_parse_text(t, &r, NULL), DC_OK, "%s at the limit", lim[i].name);
        dc_mrec_free(r);
        free(t);
        t = repeat_field(lim[i].name, lim[i].value, lim[i].ok + 1);
        struct dc_err err = {0};
        r = NULL;
        cr_assert_eq(dc_mrec_parse_text(t, &r, &err), DC_ERR_LIMIT, "%s over the limit",
                     lim[i].name);
        cr_assert_null(r);
        cr_assert(strstr(err.msg, lim[i].msg) != NULL, "%s", err.msg);
        free(t);
    }
}

Test(mrec, record_length_limit_and_nul_bytes)
{
    char big[DC_MREC_MAX_LEN + 2];
    int n = snprintf(big, sizeof(big), "pok=%s ", POK_A);
    memset(big + n, ';', sizeof(big) - 1 - (size_t)n);
    big[DC_MREC_MAX_LEN] = '\0';
    struct dc_mrec *r = NULL;
    cr_assert_eq(dc_mrec_parse_text(big, &r, NULL), DC_OK, "exactly the limit is accepted");
    dc_mrec_free(r);
    big[DC_MREC_MAX_LEN] = ';';
    big[DC_MREC_MAX_LEN + 1] = '\0';
    struct dc_err err = {0};
    r = NULL;
    cr_assert_eq(dc_mrec_parse_text(big, &r, &err), DC_ERR_LIMIT);
    cr_assert(strstr(err.msg, "longer than 4096 bytes") != NULL, "%s", err.msg);
    cr_assert_null(r);

    /* the limit applies to the concatenation of the strings, too */
    struct dc_mrec_str two[2] = {{big, 2048}, {big + 2048, 2049}};
    cr_assert_eq(dc_mrec_parse(two, 2, &r, &err), DC_ERR_LIMIT);

    static const char withnul[] = "pok=" POK_A "\0 pol=strict";
    struct dc_mrec_str one = {withnul, sizeof(withnul) - 1};
    cr_assert_eq(dc_mrec_parse(&one, 1, &r, &err), DC_ERR_FORMAT);
    cr_assert(strstr(err.msg, "NUL byte at offset 47") != NULL, "%s", err.msg);
}

Test(mrec, bad_values_are_quoted_safely_and_truncated)
{
    struct dc_err err = {0};
    struct dc_mrec *r = NULL;
    cr_assert_eq(dc_mrec_parse_text("pok=" POK_A " pol=\x01\x1b[31mred\x7f", &r, &err),
                 DC_ERR_FIELD);
    cr_assert(strstr(err.msg, "pol: unknown value '??[31mred?'") != NULL, "%s", err.msg);

    char longv[300] = "pok=" POK_A " sub=";
    size_t l = strlen(longv);
    memset(longv + l, 'x', 200);
    longv[l + 200] = '\0';
    cr_assert_eq(dc_mrec_parse_text(longv, &r, &err), DC_ERR_FIELD);
    cr_assert(strstr(err.msg, "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'") != NULL, "%s",
              err.msg);
    cr_assert_lt(strlen(err.msg), 120);
}

/* ---- accepted syntax ---- */

Test(mrec, defaults_with_only_a_pok)
{
    struct dc_mrec *r = parse_ok("pok=" POK_A);
    uint8_t a[32];
    decode_pok(POK_A, a);
    cr_assert_eq(r->version, 1);
    cr_assert_eq(r->pok_count, 1);
    cr_assert_eq(memcmp(r->pok[0], a, 32), 0);
    cr_assert_eq(r->tls_count, 0);
    cr_assert_eq(r->policy, DC_MREC_POL_EXPERIMENTAL);
    cr_assert_eq(r->subdomain, DC_MREC_SUB_STRICT);
    cr_assert_eq(r->dx_count, 0);
    cr_assert_null(r->syn);
    cr_assert_eq(r->has_exp, 0);
    cr_assert_eq(r->has_ttl, 0);
    cr_assert_eq(r->unknown_count, 0);
    dc_mrec_free(r);
}

Test(mrec, aliases_and_case_insensitivity)
{
    struct dc_mrec *r = parse_ok("VERSION=1 Primary=" POK_A " POLICY=Strict syndicates=Org.X "
                                 "Deliver=MX1.Example.ORG EXPIRY=30 SubDomain=RELAXED TTL=3600 "
                                 "TLS=" TLS_X);
    cr_assert_eq(r->version, 1);
    cr_assert_eq(r->pok_count, 1);
    cr_assert_eq(r->policy, DC_MREC_POL_STRICT);
    cr_assert_str_eq(r->syn, "Org.X");
    cr_assert_eq(r->dx_count, 1);
    cr_assert_str_eq(r->dx[0], "MX1.Example.ORG");
    cr_assert_eq(r->has_exp, 1);
    cr_assert_eq(r->exp_days, 30);
    cr_assert_eq(r->subdomain, DC_MREC_SUB_RELAXED);
    cr_assert_eq(r->has_ttl, 1);
    cr_assert_eq(r->ttl, 3600);
    cr_assert_eq(r->tls_count, 1);
    for (int i = 0; i < 64; i++)
        cr_assert_eq(r->tls[0][i], i);
    dc_mrec_free(r);

    r = parse_ok("pok=" POK_A " pol=MIXED sub=Explicit");
    cr_assert_eq(r->policy, DC_MREC_POL_MIXED);
    cr_assert_eq(r->subdomain, DC_MREC_SUB_EXPLICIT);
    dc_mrec_free(r);
}

Test(mrec, semicolons_tabs_and_runs_of_separators)
{
    struct dc_mrec *r =
        parse_ok(";; ver=1;pok=" POK_A ";\tpol=strict ;; dx=a.example.;sub=relaxed;exp=0;");
    cr_assert_eq(r->policy, DC_MREC_POL_STRICT);
    cr_assert_eq(r->subdomain, DC_MREC_SUB_RELAXED);
    cr_assert_eq(r->dx_count, 1);
    cr_assert_str_eq(r->dx[0], "a.example.");
    cr_assert_eq(r->has_exp, 1);
    cr_assert_eq(r->exp_days, 0);
    dc_mrec_free(r);
}

Test(mrec, character_strings_are_concatenated_without_separator)
{
    /* the pok value and the word "strict" are cut across strings; one string is empty */
    static const char s1[] = "ver=1 pok=/AiRTqpCJiydVBPY4+0S";
    static const char s2[] = "ddJuArhAcOfX/aDig6p+5/I pol=st";
    static const char s4[] = "rict";
    struct dc_mrec_str strs[4] = {{s1, strlen(s1)}, {s2, strlen(s2)}, {"", 0}, {s4, 4}};
    struct dc_mrec *r = NULL;
    struct dc_err err = {0};
    cr_assert_eq(dc_mrec_parse(strs, 4, &r, &err), DC_OK, "%s", err.msg);
    uint8_t a[32];
    decode_pok(POK_A, a);
    cr_assert_eq(r->pok_count, 1);
    cr_assert_eq(memcmp(r->pok[0], a, 32), 0);
    cr_assert_eq(r->policy, DC_MREC_POL_STRICT);
    dc_mrec_free(r);

    /* no separator is inserted: "pol=strict" + "sub=relaxed" is one bad pol value */
    struct dc_mrec_str glued[2] = {{"pok=" POK_A " pol=strict", 4 + 43 + 11},
                                   {"sub=relaxed", 11}};
    cr_assert_eq(dc_mrec_parse(glued, 2, &r, &err), DC_ERR_FIELD);
    cr_assert(strstr(err.msg, "pol: unknown value 'strictsub=relaxed'") != NULL, "%s", err.msg);
}

Test(mrec, repeated_pok_tls_and_dx_keep_their_order)
{
    struct dc_mrec *r = parse_ok("pok=" POK_B " dx=one.example tls=" TLS_X " pok=" POK_A
                                 " dx=two.example dx=three.example");
    uint8_t a[32], b[32];
    decode_pok(POK_A, a);
    decode_pok(POK_B, b);
    cr_assert_eq(r->pok_count, 2);
    cr_assert_eq(memcmp(r->pok[0], b, 32), 0);
    cr_assert_eq(memcmp(r->pok[1], a, 32), 0);
    cr_assert_eq(r->dx_count, 3);
    cr_assert_str_eq(r->dx[0], "one.example");
    cr_assert_str_eq(r->dx[1], "two.example");
    cr_assert_str_eq(r->dx[2], "three.example");
    cr_assert_eq(r->tls_count, 1);
    dc_mrec_free(r);
}

Test(mrec, unknown_fields_are_ignored_but_listed)
{
    struct dc_mrec *r = parse_ok("foo=bar pok=" POK_A " sok=whatever x-new=1=2 future=");
    cr_assert_eq(r->pok_count, 1);
    cr_assert_eq(r->unknown_count, 4);
    cr_assert_str_eq(r->unknown[0], "foo=bar");
    cr_assert_str_eq(r->unknown[1], "sok=whatever");
    cr_assert_str_eq(r->unknown[2], "x-new=1=2");
    cr_assert_str_eq(r->unknown[3], "future=");
    dc_mrec_free(r);

    /* more unknown tokens than are kept: all counted, the first ones kept, nothing leaks */
    char *t = repeat_field("u", "v", DC_MREC_MAX_UNKNOWN + 5);
    r = parse_ok(t);
    cr_assert_eq(r->unknown_count, DC_MREC_MAX_UNKNOWN + 5);
    cr_assert_str_eq(r->unknown[DC_MREC_MAX_UNKNOWN - 1], "u=v");
    dc_mrec_free(r);
    free(t);
}

/* ---- generation ---- */

static struct dc_mrec *full_record(void)
{
    struct dc_mrec *r = dc_mrec_new();
    uint8_t a[32], b[32], sig[64];
    decode_pok(POK_A, a);
    decode_pok(POK_B, b);
    for (int i = 0; i < 64; i++)
        sig[i] = (uint8_t)i;
    cr_assert_eq(dc_mrec_add_pok(r, a, NULL), DC_OK);
    cr_assert_eq(dc_mrec_add_pok(r, b, NULL), DC_OK);
    cr_assert_eq(dc_mrec_add_tls(r, sig, NULL), DC_OK);
    cr_assert_eq(dc_mrec_add_dx(r, "dx1.example.org", NULL), DC_OK);
    cr_assert_eq(dc_mrec_add_dx(r, "dx2.example.org", NULL), DC_OK);
    cr_assert_eq(dc_mrec_set_syn(r, "partner.example", NULL), DC_OK);
    r->policy = DC_MREC_POL_STRICT;
    r->subdomain = DC_MREC_SUB_EXPLICIT;
    r->has_exp = 1;
    r->exp_days = 90;
    r->has_ttl = 1;
    r->ttl = 86400;
    return r;
}

Test(mrec, generate_writes_the_canonical_order)
{
    struct dc_mrec *r = dc_mrec_new();
    uint8_t a[32];
    decode_pok(POK_A, a);
    cr_assert_eq(dc_mrec_add_pok(r, a, NULL), DC_OK);
    char *t = NULL;
    cr_assert_eq(dc_mrec_generate(r, &t, NULL), DC_OK);
    cr_assert_str_eq(t, "ver=1 pok=" POK_A " pol=experimental sub=strict");
    free(t);
    dc_mrec_free(r);

    r = full_record();
    cr_assert_eq(dc_mrec_generate(r, &t, NULL), DC_OK);
    cr_assert_str_eq(t, "ver=1 pok=" POK_A " pok=" POK_B " tls=" TLS_X
                        " pol=strict syn=partner.example dx=dx1.example.org dx=dx2.example.org"
                        " exp=90 ttl=86400 sub=explicit");
    free(t);
    dc_mrec_free(r);
}

Test(mrec, parse_of_generate_is_the_same_record)
{
    struct dc_mrec *r = full_record();
    char *t = NULL;
    cr_assert_eq(dc_mrec_generate(r, &t, NULL), DC_OK);
    struct dc_mrec *back = parse_ok(t);
    cr_assert(dc_mrec_equal(r, back));
    free(t);

    /* dc_mrec_equal notices each kind of difference */
    back->exp_days = 91;
    cr_assert_not(dc_mrec_equal(r, back));
    back->exp_days = 90;
    back->pok[1][31] ^= 1;
    cr_assert_not(dc_mrec_equal(r, back));
    back->pok[1][31] ^= 1;
    back->dx[1][0] = 'X';
    cr_assert_not(dc_mrec_equal(r, back));
    back->dx[1][0] = 'd';
    cr_assert_eq(dc_mrec_set_syn(back, NULL, NULL), DC_OK);
    cr_assert_not(dc_mrec_equal(r, back));
    cr_assert_eq(dc_mrec_set_syn(back, "partner.example", NULL), DC_OK);
    cr_assert(dc_mrec_equal(r, back));
    dc_mrec_free(back);
    dc_mrec_free(r);

    /* a record written with aliases and odd spacing comes back in canonical form */
    r = parse_ok("deliver=b.example;primary=" POK_B "\tpolicy=mixed expiry=7 ttl=0 foo=bar");
    cr_assert_eq(dc_mrec_generate(r, &t, NULL), DC_OK);
    cr_assert_str_eq(t, "ver=1 pok=" POK_B " pol=mixed dx=b.example exp=7 ttl=0 sub=strict");
    back = parse_ok(t);
    cr_assert(dc_mrec_equal(r, back));
    cr_assert_eq(back->unknown_count, 0);
    free(t);
    dc_mrec_free(back);
    dc_mrec_free(r);
}

Test(mrec, generate_refuses_records_it_could_not_parse_back)
{
    struct dc_mrec *r = dc_mrec_new();
    char *t = (char *)1;
    struct dc_err err = {0};
    cr_assert_eq(dc_mrec_generate(r, &t, &err), DC_ERR_FIELD);
    cr_assert_null(t);
    cr_assert(strstr(err.msg, "no pok field") != NULL, "%s", err.msg);
    uint8_t a[32];
    decode_pok(POK_A, a);
    cr_assert_eq(dc_mrec_add_pok(r, a, NULL), DC_OK);
    r->version = 2;
    cr_assert_eq(dc_mrec_generate(r, &t, &err), DC_ERR_FIELD);
    cr_assert(strstr(err.msg, "cannot write version 2") != NULL, "%s", err.msg);
    r->version = 1;
    cr_assert_eq(dc_mrec_add_dx(r, "bad host", &err), DC_ERR_FIELD);
    cr_assert_eq(dc_mrec_set_syn(r, "a;b", &err), DC_ERR_FIELD);
    cr_assert(strstr(err.msg, "syn: value 'a;b' contains") != NULL, "%s", err.msg);
    cr_assert_eq(dc_mrec_set_syn(r, "", &err), DC_ERR_FIELD);
    for (int i = 1; i < DC_MREC_MAX_POK; i++)
        cr_assert_eq(dc_mrec_add_pok(r, a, NULL), DC_OK);
    cr_assert_eq(dc_mrec_add_pok(r, a, &err), DC_ERR_LIMIT);
    /* 16 POKs, 16 tls and 16 long hosts exceed 4096 bytes of text */
    uint8_t sig[64] = {0};
    char host[160];
    for (int i = 0; i < DC_MREC_MAX_TLS; i++) {
        cr_assert_eq(dc_mrec_add_tls(r, sig, NULL), DC_OK);
        snprintf(host, sizeof(host), "%02d%s.%s.example", i,
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
        cr_assert_eq(dc_mrec_add_dx(r, host, NULL), DC_OK);
    }
    cr_assert_eq(dc_mrec_generate(r, &t, &err), DC_ERR_LIMIT);
    cr_assert(strstr(err.msg, "more than 4096") != NULL, "%s", err.msg);
    dc_mrec_free(r);
}

/* ---- DNS character-strings and zone lines ---- */

Test(mrec, long_record_is_split_into_255_byte_strings)
{
    struct dc_mrec *r = full_record();
    uint8_t sig[64];
    for (int i = 0; i < 3; i++) {
        memset(sig, 0x40 + i, sizeof(sig));
        cr_assert_eq(dc_mrec_add_tls(r, sig, NULL), DC_OK);
    }
    char *t = NULL;
    cr_assert_eq(dc_mrec_generate(r, &t, NULL), DC_OK);
    size_t len = strlen(t);
    cr_assert_gt(len, 2 * DC_MREC_CHARSTR_MAX, "the record must need three strings");

    struct dc_mrec_str *strs = NULL;
    size_t n = 0;
    dc_mrec_split(t, len, &strs, &n);
    cr_assert_eq(n, (len + 254) / 255);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_leq(strs[i].len, 255);
        if (i + 1 < n)
            cr_assert_eq(strs[i].len, 255);
        cr_assert_eq(memcmp(strs[i].ptr, t + total, strs[i].len), 0);
        total += strs[i].len;
    }
    cr_assert_eq(total, len);
    struct dc_mrec *back = NULL;
    struct dc_err err = {0};
    cr_assert_eq(dc_mrec_parse(strs, n, &back, &err), DC_OK, "%s", err.msg);
    cr_assert(dc_mrec_equal(r, back));
    free(strs);
    dc_mrec_free(back);

    /* the zone RDATA has the same number of quoted strings, none over 255 bytes */
    char *rd = dc_mrec_txt_rdata(t, len);
    size_t quoted = 0, cur = 0;
    int inside = 0;
    for (const char *p = rd; *p; p++) {
        if (*p == '"') {
            if (inside)
                cr_assert_leq(cur, 255);
            inside = !inside;
            quoted += inside;
            cur = 0;
        } else if (inside) {
            cur++;
        }
    }
    cr_assert_eq(quoted, n);
    cr_assert_eq(strncmp(rd, "\"ver=1 pok=", 11), 0);
    free(rd);
    free(t);
    dc_mrec_free(r);
}

Test(mrec, split_boundaries_and_rdata_escaping)
{
    char buf[600];
    memset(buf, 'a', sizeof(buf));
    struct dc_mrec_str *strs;
    size_t n;
    dc_mrec_split(buf, 255, &strs, &n);
    cr_assert_eq(n, 1);
    free(strs);
    dc_mrec_split(buf, 256, &strs, &n);
    cr_assert_eq(n, 2);
    cr_assert_eq(strs[1].len, 1);
    free(strs);
    dc_mrec_split(buf, 0, &strs, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(strs[0].len, 0);
    free(strs);

    char *rd = dc_mrec_txt_rdata("", 0);
    cr_assert_str_eq(rd, "\"\"");
    free(rd);
    rd = dc_mrec_txt_rdata("a\"b\\c\x01\xff", 7);
    cr_assert_str_eq(rd, "\"a\\\"b\\\\c\\001\\255\"");
    free(rd);
}

Test(mrec, zone_lines_publish_both_names)
{
    const char *text = "ver=1 pok=" POK_A " pol=strict sub=strict";
    char *z = NULL;
    cr_assert_eq(dc_mrec_zone_lines("example.org", 3600, text, &z, NULL), DC_OK);
    cr_assert_str_eq(z, "_dime.example.org. 3600 IN TXT \"ver=1 pok=" POK_A
                        " pol=strict sub=strict\"\n"
                        "_dx.example.org. 3600 IN TXT \"ver=1 pok=" POK_A
                        " pol=strict sub=strict\"\n");
    char *z2 = NULL;
    cr_assert_eq(dc_mrec_zone_lines("example.org.", 3600, text, &z2, NULL), DC_OK);
    cr_assert_str_eq(z, z2);
    free(z);
    free(z2);
    struct dc_err err = {0};
    cr_assert_eq(dc_mrec_zone_lines("exa mple.org", 3600, text, &z, &err), DC_ERR_FIELD);
    cr_assert_null(z);
    cr_assert(strstr(err.msg, "domain: host name 'exa mple.org'") != NULL, "%s", err.msg);
}

/* dns-record's policy names (dimectl and dime-signet): any letter case, nothing else. */
Test(mrec, policy_names_parsed_case_insensitively)
{
    enum dc_mrec_policy p = DC_MREC_POL_EXPERIMENTAL;
    cr_assert_eq(dc_mrec_policy_parse("strict", &p, NULL), DC_OK);
    cr_assert_eq(p, DC_MREC_POL_STRICT);
    cr_assert_eq(dc_mrec_policy_parse("Mixed", &p, NULL), DC_OK);
    cr_assert_eq(p, DC_MREC_POL_MIXED);
    cr_assert_eq(dc_mrec_policy_parse("EXPERIMENTAL", &p, NULL), DC_OK);
    cr_assert_eq(p, DC_MREC_POL_EXPERIMENTAL);
    struct dc_err err = {0};
    cr_assert_eq(dc_mrec_policy_parse("lax", &p, &err), DC_ERR_ARG);
    cr_assert_eq(dc_mrec_policy_parse("", &p, NULL), DC_ERR_ARG);
    cr_assert_eq(dc_mrec_policy_parse("stricter", &p, NULL), DC_ERR_ARG);
    cr_assert_eq(p, DC_MREC_POL_EXPERIMENTAL, "a refused name leaves the policy alone");
    cr_assert(strstr(err.msg, "'lax'") != NULL, "%s", err.msg);
}

/* The record text and its zone lines in one step, as both dns-record commands publish. */
Test(mrec, publish_gives_text_and_zone_lines)
{
    struct dc_mrec *r = dc_mrec_new();
    uint8_t pa[32];
    decode_pok(POK_A, pa);
    cr_assert_eq(dc_mrec_add_pok(r, pa, NULL), DC_OK);
    r->policy = DC_MREC_POL_STRICT;
    char *text = NULL, *lines = NULL, *z = NULL;
    cr_assert_eq(dc_mrec_publish(r, "example.org", 7200, &text, &lines, NULL), DC_OK);
    cr_assert_eq(dc_mrec_zone_lines("example.org", 7200, text, &z, NULL), DC_OK);
    cr_assert_str_eq(lines, z);
    cr_assert(strstr(text, "pol=strict") != NULL, "%s", text);
    free(text);
    free(lines);
    free(z);
    text = lines = NULL;
    cr_assert_eq(dc_mrec_publish(r, "exa mple.org", 7200, &text, &lines, NULL), DC_ERR_FIELD);
    cr_assert_null(lines);
    free(text);
    dc_mrec_free(r);
}

/* ---- tls= signatures ---- */

static struct dc_sign_key *key_from_seed(const char *hex)
{
    size_t n;
    uint8_t *seed = vec_hex(hex, &n);
    struct dc_sign_key *k = NULL;
    cr_assert_eq(dc_sign_key_from_seed(seed, &k, NULL), DC_OK);
    free(seed);
    return k;
}

Test(mrec, tls_signature_made_and_checked)
{
    /* stands in for a certificate's DER bytes; the helpers only hash them */
    static const uint8_t der[] = {0x30, 0x82, 0x01, 0x0a, 0x02, 0x01, 0x01, 0x30, 0x0d, 0x06,
                                  0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b};
    struct dc_sign_key *ka = key_from_seed(SEED_A);
    struct dc_signer s;
    dc_signer_local(&s, ka);
    uint8_t sig[64];
    char b64[DC_MREC_TLS_B64_LEN + 1];
    struct dc_err err = {0};
    cr_assert_eq(dc_mrec_tls_sign(&s, der, sizeof(der), sig, b64, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(strlen(b64), 86);

    /* the signature is over SHA-512 of the DER, not over the DER itself */
    uint8_t h[64];
    dc_sha512(der, sizeof(der), h);
    cr_assert_eq(dc_ed25519_verify(ka->pub, h, 64, sig), DC_OK);
    cr_assert_eq(dc_ed25519_verify(ka->pub, der, sizeof(der), sig), DC_ERR_SIGNATURE);

    /* the POK that signed is the second one, the matching tls the second entry */
    char *text = dc_xasprintf("pok=%s pok=%s tls=%s tls=%s", POK_B, POK_A, TLS_X, b64);
    struct dc_mrec *r = parse_ok(text);
    size_t which = 99;
    cr_assert_eq(dc_mrec_tls_verify(r, der, sizeof(der), &which, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(which, 1);

    /* other certificate bytes */
    uint8_t other[sizeof(der)];
    memcpy(other, der, sizeof(der));
    other[sizeof(other) - 1] ^= 0x01;
    cr_assert_eq(dc_mrec_tls_verify(r, other, sizeof(other), NULL, &err), DC_ERR_SIGNATURE);
    cr_assert(strstr(err.msg, "none of the 2 tls signature(s)") != NULL, "%s", err.msg);
    cr_assert_eq(dc_mrec_tls_verify(r, der, sizeof(der) - 1, NULL, &err), DC_ERR_SIGNATURE);
    dc_mrec_free(r);
    free(text);

    /* only the wrong POK listed */
    text = dc_xasprintf("pok=%s tls=%s", POK_B, b64);
    r = parse_ok(text);
    cr_assert_eq(dc_mrec_tls_verify(r, der, sizeof(der), NULL, &err), DC_ERR_SIGNATURE);
    dc_mrec_free(r);
    free(text);

    /* signed by bob, bob listed: verifies; no tls entry at all: NOTFOUND */
    struct dc_sign_key *kb = key_from_seed(SEED_B);
    struct dc_signer sb;
    dc_signer_local(&sb, kb);
    struct dc_mrec *rb = dc_mrec_new();
    uint8_t pb[32];
    decode_pok(POK_B, pb);
    cr_assert_eq(memcmp(pb, kb->pub, 32), 0, "POK_B is bob's key");
    cr_assert_eq(dc_mrec_add_pok(rb, pb, NULL), DC_OK);
    cr_assert_eq(dc_mrec_tls_verify(rb, der, sizeof(der), NULL, &err), DC_ERR_NOTFOUND);
    cr_assert_eq(dc_mrec_tls_sign(&sb, der, sizeof(der), sig, NULL, NULL), DC_OK);
    cr_assert_eq(dc_mrec_add_tls(rb, sig, NULL), DC_OK);
    cr_assert_eq(dc_mrec_tls_verify(rb, der, sizeof(der), NULL, NULL), DC_OK);
    /* and it survives generate + parse */
    char *gen = NULL;
    cr_assert_eq(dc_mrec_generate(rb, &gen, NULL), DC_OK);
    struct dc_mrec *rb2 = parse_ok(gen);
    cr_assert_eq(dc_mrec_tls_verify(rb2, der, sizeof(der), NULL, NULL), DC_OK);
    free(gen);
    dc_mrec_free(rb2);
    dc_mrec_free(rb);
    dc_sign_key_free(kb);
    dc_sign_key_free(ka);
}

/* The one path both dns-record commands take: a publisher's record (pol=mixed unless told),
 * every field set from option text through dc_mrec_set, written and read back. */
Test(mrec, publish_record_every_field_through_set_round_trips)
{
    struct dc_mrec *r = dc_mrec_new_publish();
    uint8_t a[32];
    decode_pok(POK_A, a);
    cr_assert_eq(dc_mrec_add_pok(r, a, NULL), DC_OK);
    char *t = NULL;
    cr_assert_eq(dc_mrec_generate(r, &t, NULL), DC_OK);
    cr_assert_str_eq(t, "ver=1 pok=" POK_A " pol=mixed sub=strict", "a publisher's default "
                     "policy is mixed, got '%s'", t);
    free(t);

    static const char *const set[][2] = {
        {"pok", POK_B},           {"tls", TLS_X},        {"policy", "STRICT"},
        {"syn", "syn1.example"},  {"dx", "dx1.example"}, {"deliver", "dx2.example."},
        {"expiry", "30"},         {"ttl", "120"},        {"subdomain", "relaxed"},
        {"ver", "1"},             {"syn", "syn2.example"}, {"pol", "strict"},
    };
    struct dc_err err = {0};
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        cr_assert_eq(dc_mrec_set(r, set[i][0], set[i][1], &err), DC_OK, "%s=%s: %s", set[i][0],
                     set[i][1], err.msg);
    cr_assert_eq(dc_mrec_generate(r, &t, &err), DC_OK, "%s", err.msg);
    cr_assert_str_eq(t, "ver=1 pok=" POK_A " pok=" POK_B " tls=" TLS_X " pol=strict "
                        "syn=syn2.example dx=dx1.example dx=dx2.example. exp=30 ttl=120 "
                        "sub=relaxed");
    struct dc_mrec *back = parse_ok(t);
    cr_assert(dc_mrec_equal(r, back));
    cr_assert_eq(back->policy, DC_MREC_POL_STRICT);
    cr_assert_eq(back->subdomain, DC_MREC_SUB_RELAXED);
    cr_assert(back->has_exp && back->exp_days == 30 && back->has_ttl && back->ttl == 120);
    cr_assert_str_eq(back->syn, "syn2.example");
    free(t);
    dc_mrec_free(back);

    /* the parser's checks apply to an option as to a published field */
    static const char *const bad[][3] = {
        {"pol", "paranoid", "pol: unknown value 'paranoid'"},
        {"sub", "loose", "sub: unknown value 'loose'"},
        {"exp", "-1", "exp: value '-1' is not a non-negative decimal integer"},
        {"ttl", "99999999999", "ttl: value '99999999999' is too large"},
        {"dx", "bad_host", "dx: host name 'bad_host' has a character other"},
        {"syn", "a b", "syn: value 'a b' contains a space"},
        {"pok", "short", "pok: value 'short' is 5 characters long"},
        {"ver", "2", "ver: unsupported version 2"},
        {"exp", "", "exp: empty value"},
        {"color", "blue", "'color' is not a record field"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        cr_assert_neq(dc_mrec_set(r, bad[i][0], bad[i][1], &err), DC_OK, "%s=%s accepted",
                      bad[i][0], bad[i][1]);
        cr_assert(strstr(err.msg, bad[i][2]) != NULL, "%s=%s: got '%s'", bad[i][0], bad[i][1],
                  err.msg);
    }
    dc_mrec_free(r);
}
