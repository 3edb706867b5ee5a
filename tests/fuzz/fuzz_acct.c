/*
 * Fuzz target: the account protocol's lines (daemonlib/acct_proto.c, ACCOUNT.md). The first
 * byte picks the parser: even, the request parser dime-accountd runs on every line a client
 * sends before and after its login; odd, the reply parser of dime-client. Invariants: a
 * rejection carries a reason; every word of a parsed line lies inside the input; a parsed
 * request's words re-joined with single spaces are the line without its end, its verb's name
 * first; a parsed OK reply's words do too.
 */
#include <stdlib.h>
#include <string.h>

#include "acct_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *base, *top;

static void inside(const struct acct_word *w)
{
    if (w->p != NULL && (w->p < base || w->p + w->len > top))
        abort();
}

/* The line without CRLF or LF. */
static size_t body(const char *p, size_t n)
{
    if (n > 0 && p[n - 1] == '\n')
        n--;
    if (n > 0 && p[n - 1] == '\r')
        n--;
    return n;
}

/* w[0..n) joined by spaces must be exactly line[0..len). */
static void joined(const struct acct_word *const *w, size_t n, const char *line, size_t len)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && (off >= len || line[off++] != ' '))
            abort();
        if (w[i]->p != line + off || off + w[i]->len > len)
            abort();
        off += w[i]->len;
    }
    if (off != len)
        abort();
}

static void request(const char *p, size_t n)
{
    struct acct_request r;
    struct dc_err err = {0};
    if (acct_request_parse(p, n, &r, &err) != DC_OK) {
        if (err.code == DC_OK || err.msg[0] == '\0')
            abort();
        return;
    }
    const char *name = acct_verb_name(r.verb);
    size_t len = body(p, n), vl = strlen(name);
    if (len < vl || memcmp(p, name, vl) != 0)
        abort();
    struct acct_word verb = {p, vl}, mode = {NULL, 0};
    const struct acct_word *w[6] = {&verb};
    size_t k = 1;
    switch (r.verb) {
    case ACCT_LOGIN:
        w[k++] = &r.login;
        w[k++] = &r.pass;
        break;
    case ACCT_ENROLL:
        w[k++] = &r.address;
        mode.p = r.address.p + r.address.len + 1;
        mode.len = r.cautious ? 8 : 8; /* "cautious" and "paranoid" */
        if (memcmp(mode.p, r.cautious ? "cautious" : "paranoid", 8) != 0)
            abort();
        w[k++] = &mode;
        w[k++] = &r.ssr;
        if (r.blob.p != NULL)
            w[k++] = &r.blob;
        if (r.cautious != (r.blob.p != NULL))
            abort();
        break;
    case ACCT_ROTATE:
        w[k++] = &r.address;
        w[k++] = &r.ssr;
        if (r.blob.p != NULL)
            w[k++] = &r.blob;
        break;
    case ACCT_BLOB:
    case ACCT_HISTORY:
    case ACCT_KEYS: w[k++] = &r.address; break;
    case ACCT_PARANOID:
    case ACCT_TRUSTFUL:
        w[k++] = &r.address;
        w[k++] = &r.ssr;
        if (r.blob.p != NULL || (r.verb == ACCT_TRUSTFUL) != (r.keys.p != NULL))
            abort();
        if (r.keys.p != NULL)
            w[k++] = &r.keys;
        break;
    case ACCT_QUIT: break;
    }
    for (size_t i = 0; i < k; i++)
        inside(w[i]);
    joined(w, k, p, len);
}

static void reply(const char *p, size_t n)
{
    struct acct_reply r;
    struct dc_err err = {0};
    if (acct_reply_parse(p, n, &r, &err) != DC_OK) {
        if (err.code == DC_OK || err.msg[0] == '\0')
            abort();
        return;
    }
    inside(&r.code);
    inside(&r.text);
    size_t len = body(p, n);
    if (!r.ok) {
        if (r.code.len == 0 || r.code.p != p + 3)
            abort();
        return;
    }
    struct acct_word ok = {p, 2};
    const struct acct_word *w[ACCT_WORDS_MAX + 1] = {&ok};
    for (size_t i = 0; i < r.nwords; i++) {
        inside(&r.words[i]);
        w[i + 1] = &r.words[i];
    }
    joined(w, r.nwords + 1, p, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* a copy of exactly the line, so that any read past it is caught */
    size_t n = size - 1;
    char *line = malloc(n ? n : 1);
    memcpy(line, data + 1, n);
    base = line;
    top = line + n;
    if (data[0] & 1)
        reply(line, n);
    else
        request(line, n);
    free(line);
    return 0;
}
