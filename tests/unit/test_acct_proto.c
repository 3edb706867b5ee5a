/* The account protocol's lines (daemonlib/acct_proto.c, ACCOUNT.md): every command in its
 * forms, the refusals with their reasons, and the reply parser. tests/fuzz/fuzz_acct.c checks
 * the invariants on arbitrary input. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "acct_proto.h"

static bool word_is(const struct acct_word *w, const char *s)
{
    return w->p != NULL && w->len == strlen(s) && memcmp(w->p, s, w->len) == 0;
}

static enum dc_status req(const char *line, struct acct_request *r, struct dc_err *err)
{
    return acct_request_parse(line, strlen(line), r, err);
}

Test(acct_proto, requests)
{
    struct acct_request r;
    struct dc_err err = {0};
    cr_assert_eq(req("LOGIN dave c2VjcmV0\r\n", &r, &err), DC_OK, "%s", err.msg);
    cr_assert(r.verb == ACCT_LOGIN && word_is(&r.login, "dave") && word_is(&r.pass, "c2VjcmV0"));
    cr_assert_eq(req("ENROLL dave@ex.org cautious QUJD RERE\n", &r, &err), DC_OK, "%s", err.msg);
    cr_assert(r.verb == ACCT_ENROLL && r.cautious && word_is(&r.address, "dave@ex.org") &&
              word_is(&r.ssr, "QUJD") && word_is(&r.blob, "RERE"));
    cr_assert_eq(req("ENROLL dave@ex.org paranoid QUJD", &r, &err), DC_OK, "%s", err.msg);
    cr_assert(!r.cautious && r.blob.p == NULL);
    cr_assert_eq(req("ROTATE dave@ex.org QUJD\r\n", &r, &err), DC_OK, "%s", err.msg);
    cr_assert(r.verb == ACCT_ROTATE && r.blob.p == NULL);
    cr_assert_eq(req("ROTATE dave@ex.org QUJD RERE\r\n", &r, &err), DC_OK, "%s", err.msg);
    cr_assert(word_is(&r.blob, "RERE"));
    cr_assert_eq(req("BLOB dave@ex.org\r\n", &r, &err), DC_OK);
    cr_assert(r.verb == ACCT_BLOB && word_is(&r.address, "dave@ex.org"));
    cr_assert_eq(req("HISTORY dave@ex.org", &r, &err), DC_OK);
    cr_assert_eq(r.verb, ACCT_HISTORY);
    cr_assert_eq(req("QUIT\r\n", &r, &err), DC_OK);
    cr_assert_eq(r.verb, ACCT_QUIT);
    /* migration (ACCOUNT.md) */
    cr_assert_eq(req("KEYS dave@ex.org\r\n", &r, &err), DC_OK, "%s", err.msg);
    cr_assert(r.verb == ACCT_KEYS && word_is(&r.address, "dave@ex.org") && r.ssr.p == NULL);
    cr_assert_eq(req("PARANOID dave@ex.org QUJD\r\n", &r, &err), DC_OK, "%s", err.msg);
    cr_assert(r.verb == ACCT_PARANOID && word_is(&r.address, "dave@ex.org") &&
              word_is(&r.ssr, "QUJD") && r.keys.p == NULL && r.blob.p == NULL);
    cr_assert_eq(req("TRUSTFUL dave@ex.org QUJD S0VZUw==\n", &r, &err), DC_OK, "%s", err.msg);
    cr_assert(r.verb == ACCT_TRUSTFUL && word_is(&r.address, "dave@ex.org") &&
              word_is(&r.ssr, "QUJD") && word_is(&r.keys, "S0VZUw==") && r.blob.p == NULL);
}

Test(acct_proto, refusals)
{
    static const struct {
        const char *line;
        enum dc_status want;
        const char *msg;
    } t[] = {
        {"", DC_ERR_FORMAT, "empty word"},
        {"HELLO x", DC_ERR_FORMAT, "unknown command"},
        {"login dave c2Vj", DC_ERR_FORMAT, "unknown command"}, /* verbs are upper case */
        {"LOGIN dave", DC_ERR_FORMAT, "LOGIN takes 2 to 2 arguments, not 1"},
        {"LOGIN  dave c2Vj", DC_ERR_FORMAT, "empty word"},
        {"LOGIN dave c2Vj ", DC_ERR_FORMAT, "empty word"},
        {"LOGIN dave pass:word", DC_ERR_FIELD, "password: character 4 is not base64"},
        {"LOGIN dave\tx c2Vj", DC_ERR_FORMAT, "not printable"},
        {"LOGIN dave c2Vj\r\r\n", DC_ERR_FORMAT, "not printable"},
        {"ENROLL dave@ex.org trustful QUJD", DC_ERR_FIELD, "cautious or paranoid"},
        {"ENROLL dave@ex.org cautious QUJD", DC_ERR_FIELD, "needs its sealed key blob"},
        {"ENROLL dave@ex.org paranoid QUJD RERE", DC_ERR_FIELD, "has no key blob"},
        {"ENROLL dave paranoid QUJD", DC_ERR_FIELD, "not user@domain"},
        {"ENROLL @ex.org paranoid QUJD", DC_ERR_FIELD, "not user@domain"},
        {"ENROLL a@b@ex.org paranoid QUJD", DC_ERR_FIELD, "not user@domain"},
        {"ROTATE dave@ex.org QU*D", DC_ERR_FIELD, "ssr: character 2 is not base64"},
        {"ROTATE dave@ex.org QUJD RE-E", DC_ERR_FIELD, "blob: character 2 is not base64"},
        {"ROTATE dave@ex.org", DC_ERR_FORMAT, "ROTATE takes 2 to 3 arguments, not 1"},
        {"BLOB dave@ex.org x", DC_ERR_FORMAT, "BLOB takes 1 to 1 arguments, not 2"},
        {"QUIT now", DC_ERR_FORMAT, "QUIT takes 0 to 0 arguments"},
        {"HISTORY a b c d e f g", DC_ERR_LIMIT, "more than 6 words"},
        {"KEYS", DC_ERR_FORMAT, "KEYS takes 1 to 1 arguments, not 0"},
        {"KEYS dave", DC_ERR_FIELD, "not user@domain"},
        {"PARANOID dave@ex.org", DC_ERR_FORMAT, "PARANOID takes 2 to 2 arguments, not 1"},
        {"PARANOID dave@ex.org QUJD RERE", DC_ERR_FORMAT, "PARANOID takes 2 to 2 arguments"},
        {"PARANOID dave@ QUJD", DC_ERR_FIELD, "not user@domain"},
        {"PARANOID dave@ex.org QU.D", DC_ERR_FIELD, "ssr: character 2 is not base64"},
        {"TRUSTFUL dave@ex.org QUJD", DC_ERR_FORMAT, "TRUSTFUL takes 3 to 3 arguments, not 2"},
        {"TRUSTFUL dave@ex.org QUJD S0V!", DC_ERR_FIELD, "keys: character 3 is not base64"},
        {"TRUSTFUL ex.org QUJD S0VZ", DC_ERR_FIELD, "not user@domain"},
        {"TRUSTFUL dave@ex.org QU_D S0VZ", DC_ERR_FIELD, "ssr: character 2 is not base64"},
        {"TRUSTFUL dave@ex.org QUJD "
         "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB",
         DC_ERR_LIMIT, "keys: 92 characters, at most 88"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct acct_request r;
        struct dc_err err = {0};
        cr_assert_eq(req(t[i].line, &r, &err), t[i].want, "case %zu (%s): %s", i, t[i].line,
                     err.msg);
        cr_assert(strstr(err.msg, t[i].msg) != NULL, "case %zu: \"%s\" lacks \"%s\"", i,
                  err.msg, t[i].msg);
        cr_assert(r.address.p == NULL && r.ssr.p == NULL && r.pass.p == NULL && r.keys.p == NULL,
                  "case %zu: fields left set", i);
    }
}

Test(acct_proto, limits)
{
    struct acct_request r;
    struct dc_err err = {0};
    char *line = malloc(ACCT_LINE_MAX + 2);
    /* an SSR word one character over its bound, then a line over the line bound */
    int n = snprintf(line, ACCT_LINE_MAX, "ROTATE d@ex.org ");
    memset(line + n, 'A', ACCT_SSR_B64_MAX + 1);
    line[n + ACCT_SSR_B64_MAX + 1] = '\0';
    cr_assert_eq(req(line, &r, &err), DC_ERR_LIMIT);
    cr_assert(strstr(err.msg, "ssr: 5465 characters, at most 5464") != NULL, "%s", err.msg);
    line[n + ACCT_SSR_B64_MAX] = '\0';
    cr_assert_eq(req(line, &r, &err), DC_OK, "%s", err.msg);
    memset(line, 'A', ACCT_LINE_MAX + 1);
    cr_assert_eq(acct_request_parse(line, ACCT_LINE_MAX + 1, &r, &err), DC_ERR_LIMIT);
    free(line);
}

Test(acct_proto, replies)
{
    struct acct_reply r;
    struct dc_err err = {0};
    const char *ok = "OK 2 QUJD RERE\r\n";
    cr_assert_eq(acct_reply_parse(ok, strlen(ok), &r, &err), DC_OK, "%s", err.msg);
    cr_assert(r.ok && r.nwords == 3 && word_is(&r.words[0], "2") && word_is(&r.words[2], "RERE"));
    cr_assert_eq(acct_reply_parse("OK\r\n", 4, &r, &err), DC_OK);
    cr_assert(r.ok && r.nwords == 0);
    const char *no = "NO custody the SSR has no custody signature\r\n";
    cr_assert_eq(acct_reply_parse(no, strlen(no), &r, &err), DC_OK);
    cr_assert(!r.ok && word_is(&r.code, "custody") &&
              word_is(&r.text, "the SSR has no custody signature"));
    cr_assert_eq(acct_reply_parse("NO auth", 7, &r, &err), DC_OK);
    cr_assert(word_is(&r.code, "auth") && r.text.len == 0);
    cr_assert_eq(acct_reply_parse("OKAY", 4, &r, &err), DC_ERR_FORMAT);
    cr_assert_eq(acct_reply_parse("NO ", 3, &r, &err), DC_ERR_FORMAT);
    cr_assert_eq(acct_reply_parse("+OK", 3, &r, &err), DC_ERR_FORMAT);
    cr_assert_eq(acct_reply_parse("OK a  b", 7, &r, &err), DC_ERR_FORMAT);
}
