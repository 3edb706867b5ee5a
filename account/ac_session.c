/*
 * ac_session - a device's connection: TLS, request lines, the login, the keyvault's
 * account operations. See ac_session.h.
 */
#include "ac_session.h"

#include "ac_dovecot.h"
#include "dc_b64.h"
#include "dc_signet.h"
#include "dl_log.h"
#include "dl_tls.h"
#include "kv_client.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

bool ac_owns(const char *user, const char *address)
{
    if (strcasecmp(user, address) == 0)
        return true;
    const char *at = strchr(address, '@');
    size_t ul = strlen(user);
    return strchr(user, '@') == NULL && at != NULL && (size_t)(at - address) == ul &&
           strncasecmp(user, address, ul) == 0;
}

__attribute__((format(printf, 3, 4))) static void no(struct dc_buf *out, const char *code,
                                                     const char *fmt, ...)
{
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    for (char *p = text; *p; p++) /* a vault or Dovecot text stays one printable line */
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    dc_buf_append(out, "NO ", 3);
    dc_buf_append(out, code, strlen(code));
    dc_buf_putc(out, ' ');
    dc_buf_append(out, text, strlen(text));
    dc_buf_append(out, "\r\n", 2);
}

static void word(struct dc_buf *out, const char *w)
{
    dc_buf_putc(out, ' ');
    dc_buf_append(out, w, strlen(w));
}

static void b64_word(struct dc_buf *out, const uint8_t *p, size_t n)
{
    char *b = dc_b64_encode_alloc(p, n, 1);
    word(out, b);
    free(b);
}

/* A base64 word of the request, decoded (malloc'd; at most max bytes). */
static enum dc_status decode(const struct acct_word *w, const char *what, size_t max,
                             uint8_t **out, size_t *len, struct dc_err *err)
{
    uint8_t *b = dc_xmalloc(dc_b64_dec_max(w->len) + 1);
    enum dc_status s = dc_b64_decode(w->p, w->len, b, len, err);
    if (s == DC_OK && (*len == 0 || *len > max))
        s = dc_fail(err, DC_ERR_LIMIT, "%s of %zu bytes (1 to %zu)", what, *len, max);
    if (s != DC_OK) {
        free(b);
        return dc_fail(err, s, "%s: %s", what, err->msg);
    }
    *out = b;
    return DC_OK;
}

/* The reply code of a keyvault failure: tempfail for the transport and the vault's own
 * failures; a refusal (KV_E_DENIED included: another domain's address, or this service not in
 * account-users, which the vault's log says) names its reason. */
static const char *code_of(const struct kv_client *c, enum dc_status s)
{
    if (s == DC_ERR_IO || kv_client_status(c) == KV_E_INTERNAL)
        return "tempfail";
    switch (kv_client_status(c)) {
    case KV_E_EXISTS: return "exists";
    case KV_E_CUSTODY: return "custody";
    case KV_E_MODE: return "mode";
    case KV_E_NOTFOUND: return "notfound";
    case KV_E_BADREQ: return "bad";
    default: return "refused";
    }
}

static void logline(const struct ac_session *s, const char *verb, const char *addr,
                    const char *result, const char *reason)
{
    char op[16];
    size_t i = 0;
    for (; verb[i] != '\0' && i + 1 < sizeof(op); i++) /* the log's words are lower case */
        op[i] = (char)(verb[i] >= 'A' && verb[i] <= 'Z' ? verb[i] + 32 : verb[i]);
    op[i] = '\0';
    dl_log(reason ? LOG_NOTICE : LOG_INFO, "op=%s login=%s address=%s ip=%s result=%s%s%s%s",
           op, s->user[0] ? s->user : "-", addr ? addr : "-", s->rip, result,
           reason ? " reason=\"" : "", reason ? reason : "", reason ? "\"" : "");
}

static void do_login(struct ac_session *s, const struct acct_request *r, struct dc_buf *out,
                     bool *quit)
{
    struct dc_err err = {0};
    char login[ACCT_LOGIN_MAX + 1];
    memcpy(login, r->login.p, r->login.len);
    login[r->login.len] = '\0';
    if (s->user[0] != '\0') {
        no(out, "bad", "already logged in as %s", s->user);
        return;
    }
    size_t pl = 0;
    uint8_t *pass = dc_secure_alloc(dc_b64_dec_max(r->pass.len) + 1);
    enum dc_status st = dc_b64_decode(r->pass.p, r->pass.len, pass, &pl, &err);
    char user[AC_USER_MAX + 1];
    if (st == DC_OK)
        st = ac_dovecot_auth(s->cfg->dovecot_socket, login, pass, pl, s->rip,
                             (int)s->cfg->timeout * 1000, user, &err);
    dc_secure_free(pass, dc_b64_dec_max(r->pass.len) + 1);
    if (st == DC_OK) {
        snprintf(s->user, sizeof(s->user), "%s", user);
        logline(s, "login", NULL, "ok", NULL);
        dc_buf_append(out, "OK", 2);
        word(out, s->user);
        dc_buf_append(out, "\r\n", 2);
        return;
    }
    bool temp = st == DC_ERR_IO || st == DC_ERR_FORMAT || st == DC_ERR_LIMIT;
    dl_log(temp ? LOG_ERR : LOG_NOTICE, "op=login login=%s ip=%s result=%s reason=\"%s\"",
           login, s->rip, temp ? "tempfail" : "refused", err.msg);
    if (temp) {
        no(out, "tempfail", "the login cannot be checked now, try again later");
    } else {
        no(out, "auth", "login failed");
        if (++s->failures >= AC_LOGIN_TRIES)
            *quit = true;
    }
}

static bool vault(struct ac_session *s, struct dc_err *err)
{
    return s->kv != NULL ||
           kv_client_connect(s->cfg->keyvault_socket, &s->kv, err) == DC_OK;
}

/* The org signet of addr's domain as a base64 word (the device verifies its signets with
 * it); false with a tempfail reply when the vault cannot give it. */
static bool org_word(struct ac_session *s, const char *addr, struct dc_buf *word_out,
                     struct dc_buf *out)
{
    struct dc_err err = {0};
    struct dc_signet *org = NULL;
    if (kv_client_signet(s->kv, strchr(addr, '@') + 1, NULL, &org, &err) != DC_OK) {
        no(out, "tempfail", "the organization's signet: %s", err.msg);
        return false;
    }
    b64_word(word_out, org->bin, org->bin_len);
    dc_signet_free(org);
    return true;
}

/* OK generation b64(user signet) b64(org signet) */
static void signed_ok(struct ac_session *s, const char *addr, const uint8_t *signet,
                      size_t len, uint32_t gen, struct dc_buf *out)
{
    struct dc_buf org;
    dc_buf_init(&org);
    if (org_word(s, addr, &org, out)) {
        char g[16];
        snprintf(g, sizeof(g), "%u", gen);
        dc_buf_append(out, "OK", 2);
        word(out, g);
        b64_word(out, signet, len);
        dc_buf_append(out, org.data, org.len);
        dc_buf_append(out, "\r\n", 2);
    }
    dc_buf_free(&org);
}

static void do_account(struct ac_session *s, const struct acct_request *r, struct dc_buf *out)
{
    const char *op = acct_verb_name(r->verb);
    char addr[ACCT_ADDR_MAX + 1];
    memcpy(addr, r->address.p, r->address.len);
    addr[r->address.len] = '\0';
    if (s->user[0] == '\0') {
        no(out, "login", "log in first");
        return;
    }
    if (!ac_owns(s->user, addr)) {
        logline(s, op, addr, "refused", "not the login's address");
        no(out, "owner", "login %s does not own %s", s->user, addr);
        return;
    }
    struct dc_err err = {0};
    uint8_t *ssr = NULL, *blob = NULL, *res = NULL, *keys = NULL;
    size_t sl = 0, bl = 0, rl = 0, kl = 0;
    uint32_t gen = 0;
    enum dc_status st = DC_OK;
    if (r->ssr.p != NULL)
        st = decode(&r->ssr, "ssr", KV_SSR_MAX, &ssr, &sl, &err);
    if (st == DC_OK && r->blob.p != NULL)
        st = decode(&r->blob, "blob", KV_BLOB_MAX, &blob, &bl, &err);
    if (st == DC_OK && r->keys.p != NULL &&
        (st = decode(&r->keys, "keys", ACCT_KEYS_LEN, &keys, &kl, &err)) == DC_OK &&
        kl != ACCT_KEYS_LEN)
        st = dc_fail(&err, DC_ERR_FIELD, "keys: %zu bytes, not %u", kl, ACCT_KEYS_LEN);
    if (st != DC_OK) {
        logline(s, op, addr, "bad", err.msg);
        no(out, "bad", "%s", err.msg);
        goto out;
    }
    if (!vault(s, &err)) {
        logline(s, op, addr, "tempfail", err.msg);
        no(out, "tempfail", "the keyvault is not available, try again later");
        goto out;
    }
    switch (r->verb) {
    case ACCT_ENROLL:
        st = kv_client_enroll(s->kv, addr, r->cautious ? KV_MODE_CAUTIOUS : KV_MODE_PARANOID,
                              ssr, sl, blob, bl, &res, &rl, &gen, &err);
        break;
    case ACCT_ROTATE:
        st = kv_client_rotate(s->kv, addr, ssr, sl, blob, bl, &res, &rl, &gen, &err);
        break;
    case ACCT_BLOB:
        st = kv_client_blob(s->kv, addr, &res, &rl, &gen, &err);
        break;
    case ACCT_PARANOID:
        st = kv_client_to_paranoid(s->kv, addr, ssr, sl, &res, &rl, &gen, &err);
        break;
    case ACCT_TRUSTFUL:
        st = kv_client_to_trustful(s->kv, addr, ssr, sl, keys, &res, &rl, &gen, &err);
        break;
    case ACCT_KEYS: { /* OK b64(generation || keys)..., oldest first */
        uint8_t *k = NULL;
        size_t n = 0;
        const size_t one = 4 + KV_USER_KEYS_LEN;
        st = kv_client_keys(s->kv, addr, &k, &n, &err);
        if (st == DC_OK) {
            char w[((4 + KV_USER_KEYS_LEN + 2) / 3) * 4 + 1];
            dc_buf_append(out, "OK", 2);
            for (size_t i = 0; i < n; i++) {
                w[dc_b64_encode(k + i * one, one, w, 1)] = '\0';
                word(out, w);
            }
            dc_buf_append(out, "\r\n", 2);
            dc_memzero(w, sizeof(w));
            dc_secure_free(k, n * one);
            gen = (uint32_t)n;
        }
        break;
    }
    default: { /* HISTORY */
        struct dc_signet **h = NULL;
        size_t n = 0;
        st = kv_client_history(s->kv, addr, NULL, NULL, &h, &n, &err);
        struct dc_buf org;
        dc_buf_init(&org);
        if (st == DC_OK && org_word(s, addr, &org, out)) {
            /* OK b64(org signet) b64(signet)..., oldest first */
            dc_buf_append(out, "OK", 2);
            dc_buf_append(out, org.data, org.len);
            for (size_t i = 0; i < n; i++)
                b64_word(out, h[i]->bin, h[i]->bin_len);
            dc_buf_append(out, "\r\n", 2);
        }
        dc_buf_free(&org);
        for (size_t i = 0; i < n; i++)
            dc_signet_free(h[i]);
        free(h);
        break;
    }
    }
    if (st != DC_OK) {
        const char *code = code_of(s->kv, st);
        logline(s, op, addr, code, err.msg);
        if (strcmp(code, "tempfail") == 0)
            no(out, code, "the keyvault is not available, try again later");
        else
            no(out, code, "%s", err.msg);
        if (kv_client_outage(s->kv, st)) {
            kv_client_close(s->kv);
            s->kv = NULL;
        }
        goto out;
    }
    char g[16], result[32];
    snprintf(g, sizeof(g), "%u", gen);
    snprintf(result, sizeof(result), "ok generation=%u", gen);
    if (r->verb == ACCT_KEYS)
        snprintf(result, sizeof(result), "ok generations=%u", gen);
    if (r->verb == ACCT_ENROLL || r->verb == ACCT_ROTATE || r->verb == ACCT_PARANOID ||
        r->verb == ACCT_TRUSTFUL) {
        signed_ok(s, addr, res, rl, gen, out);
    } else if (r->verb == ACCT_BLOB) {
        dc_buf_append(out, "OK", 2);
        word(out, g);
        b64_word(out, res, rl);
        dc_buf_append(out, "\r\n", 2);
    }
    logline(s, op, addr, r->verb == ACCT_HISTORY ? "ok" : result, NULL);
out:
    free(ssr);
    free(blob);
    free(res);
    if (keys != NULL) {
        dc_memzero(keys, kl);
        free(keys);
    }
}

void ac_session_handle(struct ac_session *s, const char *line, size_t len, struct dc_buf *out,
                       bool *quit)
{
    struct acct_request r;
    struct dc_err err = {0};
    if (acct_request_parse(line, len, &r, &err) != DC_OK) {
        no(out, "bad", "%s", err.msg);
        return;
    }
    switch (r.verb) {
    case ACCT_LOGIN: do_login(s, &r, out, quit); break;
    case ACCT_QUIT:
        dc_buf_append(out, "OK bye\r\n", 8);
        *quit = true;
        break;
    default: do_account(s, &r, out); break;
    }
}

void ac_session_clear(struct ac_session *s)
{
    kv_client_close(s->kv);
    s->kv = NULL;
}

/* ---- the connection ---- */

struct conn {
    SSL *ssl;
    char buf[ACCT_LINE_MAX];
    size_t len;
};

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The next request line into line (its length in *n): NULL, or why there is none: "end"
 * (the client closed), "timeout" (the whole line within deadline), "line too long", "read
 * error". */
static const char *read_line(struct conn *c, char *line, size_t *n, int64_t deadline)
{
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl != NULL) {
            *n = (size_t)(nl - c->buf) + 1;
            memcpy(line, c->buf, *n);
            memmove(c->buf, nl + 1, c->len - *n);
            c->len -= *n;
            return NULL;
        }
        if (c->len == sizeof(c->buf))
            return "line too long";
        if (now_ms() > deadline)
            return "timeout";
        errno = 0;
        int r = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - c->len));
        if (r > 0) {
            c->len += (size_t)r;
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        ERR_clear_error();
        if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
            return "timeout";
        /* a clean close_notify, or a peer that just closed the connection */
        return e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL
                   ? "end" : "read error";
    }
}

static bool send_all(SSL *ssl, const struct dc_buf *b)
{
    size_t off = 0;
    while (off < b->len) {
        size_t w = 0;
        if (SSL_write_ex(ssl, b->data + off, b->len - off, &w) != 1)
            return false;
        off += w;
    }
    return true;
}

void ac_session_run(const struct ac_config *cfg, SSL_CTX *tls, int fd, const char *rip)
{
    struct timeval tv = {(time_t)cfg->timeout, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct ac_session s = {.cfg = cfg};
    snprintf(s.rip, sizeof(s.rip), "%s", rip);
    struct conn *c = dc_xcalloc(1, sizeof(*c));
    char *line = dc_xmalloc(ACCT_LINE_MAX);
    struct dc_buf out;
    dc_buf_init(&out);
    c->ssl = SSL_new(tls);
    char e[200];
    if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1 || SSL_accept(c->ssl) != 1) {
        dl_log(LOG_NOTICE, "op=tls ip=%s result=failed reason=\"%s\"", rip,
               dl_tls_error(e, sizeof(e)));
        goto out;
    }
    dc_buf_append(&out, "OK dime-account 1\r\n", 19);
    bool quit = !send_all(c->ssl, &out);
    for (unsigned i = 0; !quit && i < AC_REQUESTS_MAX; i++) {
        size_t n = 0;
        const char *why = read_line(c, line, &n, now_ms() + (int64_t)cfg->timeout * 1000);
        if (why != NULL) {
            if (strcmp(why, "end") != 0)
                dl_log(LOG_NOTICE, "op=read login=%s ip=%s result=closed reason=\"%s\"",
                       s.user[0] ? s.user : "-", rip, why);
            break;
        }
        if (out.data != NULL) /* a KEYS reply held private keys */
            dc_memzero(out.data, out.len);
        out.len = 0;
        ac_session_handle(&s, line, n, &out, &quit);
        if (!send_all(c->ssl, &out))
            break;
        if (i + 1 == AC_REQUESTS_MAX)
            dl_log(LOG_NOTICE, "op=read login=%s ip=%s result=closed reason=\"%u requests\"",
                   s.user[0] ? s.user : "-", rip, AC_REQUESTS_MAX);
    }
    SSL_shutdown(c->ssl);
out:
    if (out.data != NULL)
        dc_memzero(out.data, out.len);
    dc_buf_free(&out);
    dc_memzero(line, ACCT_LINE_MAX);
    dc_memzero(c->buf, sizeof(c->buf)); /* a LOGIN line held a password */
    SSL_free(c->ssl);
    free(c);
    free(line);
    ac_session_clear(&s);
    close(fd);
}
