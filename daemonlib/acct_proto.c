/*
 * acct_proto - the account service's request and reply lines. See acct_proto.h and
 * daemonlib/ACCOUNT.md.
 */
#include "acct_proto.h"

#include <string.h>

static const char *const verbs[] = {
    [ACCT_LOGIN] = "LOGIN", [ACCT_ENROLL] = "ENROLL",   [ACCT_ROTATE] = "ROTATE",
    [ACCT_BLOB] = "BLOB",   [ACCT_HISTORY] = "HISTORY", [ACCT_QUIT] = "QUIT",
    [ACCT_KEYS] = "KEYS",   [ACCT_PARANOID] = "PARANOID", [ACCT_TRUSTFUL] = "TRUSTFUL",
};

const char *acct_verb_name(enum acct_verb v)
{
    return v >= ACCT_LOGIN && v <= ACCT_VERB_LAST ? verbs[v] : "unknown";
}

/* The line without its end: CRLF or LF; DC_ERR_FORMAT for another CR or a NUL inside. */
static enum dc_status trim(const char *line, size_t *len, size_t max, struct dc_err *err)
{
    if (*len > max)
        return dc_fail(err, DC_ERR_LIMIT, "line longer than %zu bytes", max);
    if (*len > 0 && line[*len - 1] == '\n')
        (*len)--;
    if (*len > 0 && line[*len - 1] == '\r')
        (*len)--;
    for (size_t i = 0; i < *len; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
            return dc_fail(err, DC_ERR_FORMAT, "byte %zu is not printable ASCII", i);
    return DC_OK;
}

/* Splits at single spaces into at most max words; DC_ERR_FORMAT for an empty word (two
 * spaces, a leading or trailing one), DC_ERR_LIMIT for more than max. */
static enum dc_status split(const char *s, size_t len, struct acct_word *w, size_t max,
                            size_t *n, struct dc_err *err)
{
    *n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != ' ')
            continue;
        if (i == start)
            return dc_fail(err, DC_ERR_FORMAT, "empty word at byte %zu (one space between "
                           "words)", i);
        if (*n == max)
            return dc_fail(err, DC_ERR_LIMIT, "more than %zu words", max);
        w[*n].p = s + start;
        w[(*n)++].len = i - start;
        start = i + 1;
    }
    return DC_OK;
}

static bool b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/' || c == '=';
}

static enum dc_status b64_word(const struct acct_word *w, const char *what, size_t max,
                               struct dc_err *err)
{
    if (w->len > max)
        return dc_fail(err, DC_ERR_LIMIT, "%s: %zu characters, at most %zu", what, w->len, max);
    for (size_t i = 0; i < w->len; i++)
        if (!b64_char(w->p[i]))
            return dc_fail(err, DC_ERR_FIELD, "%s: character %zu is not base64", what, i);
    return DC_OK;
}

/* user@domain: one '@', neither first nor last, at most ACCT_ADDR_MAX characters. */
static enum dc_status address_word(const struct acct_word *w, struct dc_err *err)
{
    if (w->len > ACCT_ADDR_MAX)
        return dc_fail(err, DC_ERR_LIMIT, "address longer than %u characters", ACCT_ADDR_MAX);
    const char *at = memchr(w->p, '@', w->len);
    if (at == NULL || at == w->p || at == w->p + w->len - 1 ||
        memchr(at + 1, '@', (size_t)(w->p + w->len - at - 1)) != NULL)
        return dc_fail(err, DC_ERR_FIELD, "address: not user@domain");
    return DC_OK;
}

static bool is(const struct acct_word *w, const char *s)
{
    return w->len == strlen(s) && memcmp(w->p, s, w->len) == 0;
}

enum dc_status acct_request_parse(const char *line, size_t len, struct acct_request *req,
                                  struct dc_err *err)
{
    memset(req, 0, sizeof(*req));
    struct acct_word w[6];
    size_t n = 0;
    enum dc_status s = trim(line, &len, ACCT_LINE_MAX, err);
    if (s == DC_OK)
        s = split(line, len, w, 6, &n, err);
    if (s != DC_OK)
        return s;
    for (int v = ACCT_LOGIN; v <= ACCT_VERB_LAST; v++)
        if (is(&w[0], verbs[v]))
            req->verb = (enum acct_verb)v;
    static const size_t lo[] = {[ACCT_LOGIN] = 3, [ACCT_ENROLL] = 4,   [ACCT_ROTATE] = 3,
                                [ACCT_BLOB] = 2,  [ACCT_HISTORY] = 2,  [ACCT_QUIT] = 1,
                                [ACCT_KEYS] = 2,  [ACCT_PARANOID] = 3, [ACCT_TRUSTFUL] = 4};
    static const size_t hi[] = {[ACCT_LOGIN] = 3, [ACCT_ENROLL] = 5,   [ACCT_ROTATE] = 4,
                                [ACCT_BLOB] = 2,  [ACCT_HISTORY] = 2,  [ACCT_QUIT] = 1,
                                [ACCT_KEYS] = 2,  [ACCT_PARANOID] = 3, [ACCT_TRUSTFUL] = 4};
    if (req->verb == 0)
        return dc_fail(err, DC_ERR_FORMAT, "unknown command (LOGIN, ENROLL, ROTATE, BLOB, "
                       "HISTORY, KEYS, PARANOID, TRUSTFUL, QUIT)");
    if (n < lo[req->verb] || n > hi[req->verb]) {
        enum acct_verb v = req->verb;
        memset(req, 0, sizeof(*req));
        return dc_fail(err, DC_ERR_FORMAT, "%s takes %zu to %zu arguments, not %zu",
                       verbs[v], lo[v] - 1, hi[v] - 1, n - 1);
    }
    switch (req->verb) {
    case ACCT_LOGIN:
        req->login = w[1];
        req->pass = w[2];
        if (w[1].len > ACCT_LOGIN_MAX)
            s = dc_fail(err, DC_ERR_LIMIT, "login longer than %u characters", ACCT_LOGIN_MAX);
        else
            s = b64_word(&w[2], "password", ACCT_PASS_B64_MAX, err);
        break;
    case ACCT_ENROLL:
        req->address = w[1];
        req->cautious = is(&w[2], "cautious");
        req->ssr = w[3];
        if (n == 5)
            req->blob = w[4];
        s = address_word(&w[1], err);
        if (s == DC_OK && !req->cautious && !is(&w[2], "paranoid"))
            s = dc_fail(err, DC_ERR_FIELD, "mode: cautious or paranoid");
        if (s == DC_OK && req->cautious != (n == 5))
            s = dc_fail(err, DC_ERR_FIELD, req->cautious ? "a Cautious account needs its "
                        "sealed key blob" : "a Paranoid account has no key blob");
        break;
    case ACCT_ROTATE:
        req->address = w[1];
        req->ssr = w[2];
        if (n == 4)
            req->blob = w[3];
        s = address_word(&w[1], err);
        break;
    case ACCT_PARANOID:
    case ACCT_TRUSTFUL:
        req->address = w[1];
        req->ssr = w[2];
        s = address_word(&w[1], err);
        if (req->verb == ACCT_TRUSTFUL) {
            req->keys = w[3];
            if (s == DC_OK)
                s = b64_word(&w[3], "keys", ACCT_KEYS_B64_MAX, err);
        }
        break;
    case ACCT_BLOB:
    case ACCT_HISTORY:
    case ACCT_KEYS:
        req->address = w[1];
        s = address_word(&w[1], err);
        break;
    case ACCT_QUIT:
        break;
    }
    if (s == DC_OK && req->ssr.p != NULL)
        s = b64_word(&req->ssr, "ssr", ACCT_SSR_B64_MAX, err);
    if (s == DC_OK && req->blob.p != NULL)
        s = b64_word(&req->blob, "blob", ACCT_BLOB_B64_MAX, err);
    if (s != DC_OK) {
        enum acct_verb v = req->verb;
        memset(req, 0, sizeof(*req));
        req->verb = v;
    }
    return s;
}

enum dc_status acct_reply_parse(const char *line, size_t len, struct acct_reply *rep,
                                struct dc_err *err)
{
    memset(rep, 0, sizeof(*rep));
    enum dc_status s = trim(line, &len, ACCT_REPLY_MAX, err);
    if (s != DC_OK)
        return s;
    if (len >= 2 && memcmp(line, "OK", 2) == 0 && (len == 2 || line[2] == ' ')) {
        rep->ok = true;
        if (len == 2)
            return DC_OK;
        s = split(line + 3, len - 3, rep->words, ACCT_WORDS_MAX, &rep->nwords, err);
        if (s != DC_OK)
            memset(rep, 0, sizeof(*rep));
        return s;
    }
    if (len > 3 && memcmp(line, "NO ", 3) == 0) {
        const char *code = line + 3, *end = line + len;
        const char *sp = memchr(code, ' ', (size_t)(end - code));
        rep->code.p = code;
        rep->code.len = (size_t)((sp ? sp : end) - code);
        rep->text.p = sp ? sp + 1 : end;
        rep->text.len = (size_t)(end - rep->text.p);
        if (rep->code.len == 0) {
            memset(rep, 0, sizeof(*rep));
            return dc_fail(err, DC_ERR_FORMAT, "NO reply without a code");
        }
        return DC_OK;
    }
    return dc_fail(err, DC_ERR_FORMAT, "reply is neither OK nor NO");
}
