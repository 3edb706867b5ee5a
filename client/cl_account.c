/*
 * cl_account - TLS client of the account service. See cl_account.h.
 */
#include "cl_account.h"

#include "dc_b64.h"
#include "dl_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

struct cl_acct {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char *buf; /* ACCT_REPLY_MAX: what was read and not yet used */
    size_t len;
    char *line; /* the last reply line */
};

static int dial(const char *host, const char *port, int timeout_s, struct dc_err *err)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        dc_fail(err, DC_ERR_IO, "%s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    struct timeval tv = {timeout_s, 0};
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            dc_fail(err, DC_ERR_IO, "connect to %s port %s: %s", host, port, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

static enum dc_status read_line(struct cl_acct *a, struct dc_err *err)
{
    for (;;) {
        char *nl = memchr(a->buf, '\n', a->len);
        if (nl != NULL) {
            size_t n = (size_t)(nl - a->buf) + 1;
            if (a->line != NULL) /* a KEYS reply holds private keys */
                dc_memzero(a->line, strlen(a->line));
            free(a->line);
            a->line = dc_xmalloc(n + 1);
            memcpy(a->line, a->buf, n);
            a->line[n] = '\0';
            memmove(a->buf, nl + 1, a->len - n);
            a->len -= n;
            dc_memzero(a->buf + a->len, n);
            return DC_OK;
        }
        if (a->len == ACCT_REPLY_MAX)
            return dc_fail(err, DC_ERR_LIMIT, "account service: reply longer than %u bytes",
                           ACCT_REPLY_MAX);
        size_t got = 0;
        if (SSL_read_ex(a->ssl, a->buf + a->len, ACCT_REPLY_MAX - a->len, &got) != 1)
            return dc_fail(err, DC_ERR_IO, "account service: connection closed or timed out");
        a->len += got;
    }
}

enum dc_status cl_acct_open(const char *server, const char *ca_file, int timeout_s,
                            struct cl_acct **out, struct dc_err *err)
{
    char host[256];
    const char *colon = strrchr(server, ':');
    const char *h = server;
    size_t hl = colon ? (size_t)(colon - server) : 0;
    if (hl > 1 && server[0] == '[' && server[hl - 1] == ']') {
        h = server + 1;
        hl -= 2;
    }
    if (colon == NULL || hl == 0 || hl >= sizeof(host) || colon[1] == '\0')
        return dc_fail(err, DC_ERR_ARG, "--account %s: HOST:PORT expected", server);
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct cl_acct *a = dc_xcalloc(1, sizeof(*a));
    a->fd = -1;
    a->buf = dc_xmalloc(ACCT_REPLY_MAX);
    enum dc_status s = dl_tls_client_ctx(ca_file, &a->ctx, err);
    if (s == DC_OK && (a->fd = dial(host, colon + 1, timeout_s, err)) < 0)
        s = DC_ERR_IO;
    if (s == DC_OK) {
        a->ssl = SSL_new(a->ctx);
        X509_VERIFY_PARAM *vp = SSL_get0_param(a->ssl);
        unsigned char ip[16];
        bool literal = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
        if (literal)
            X509_VERIFY_PARAM_set1_ip_asc(vp, host);
        else {
            SSL_set_tlsext_host_name(a->ssl, host);
            SSL_set1_host(a->ssl, host);
        }
        char e[200];
        if (SSL_set_fd(a->ssl, a->fd) != 1 || SSL_connect(a->ssl) != 1)
            s = dc_fail(err, DC_ERR_IO, "TLS with %s: %s", server, dl_tls_error(e, sizeof(e)));
        else if (SSL_get_verify_result(a->ssl) != X509_V_OK)
            s = dc_fail(err, DC_ERR_SIGNATURE, "TLS with %s: the certificate does not verify "
                        "(%s)", server,
                        X509_verify_cert_error_string(SSL_get_verify_result(a->ssl)));
    }
    struct acct_reply rep;
    if (s == DC_OK && (s = read_line(a, err)) == DC_OK &&
        (acct_reply_parse(a->line, strlen(a->line), &rep, err) != DC_OK || !rep.ok ||
         rep.nwords < 2 || strncmp(rep.words[0].p, "dime-account", 12) != 0))
        s = dc_fail(err, DC_ERR_FORMAT, "%s is not a DIME account service", server);
    if (s != DC_OK) {
        cl_acct_close(a);
        return s;
    }
    *out = a;
    return DC_OK;
}

static enum dc_status send_line(struct cl_acct *a, const char *line, struct dc_err *err)
{
    size_t n = strlen(line), w = 0;
    if (SSL_write_ex(a->ssl, line, n, &w) != 1 || w != n ||
        SSL_write_ex(a->ssl, "\r\n", 2, &w) != 1)
        return dc_fail(err, DC_ERR_IO, "account service: write failed");
    return DC_OK;
}

enum dc_status cl_acct_call(struct cl_acct *a, const char *line, struct acct_reply *rep,
                            struct dc_err *err)
{
    enum dc_status s = send_line(a, line, err);
    if (s == DC_OK)
        s = read_line(a, err);
    if (s == DC_OK)
        s = acct_reply_parse(a->line, strlen(a->line), rep, err);
    if (s != DC_OK || rep->ok)
        return s;
    static const struct {
        const char *code;
        enum dc_status st;
    } map[] = {{"custody", DC_ERR_CUSTODY}, {"auth", DC_ERR_SIGNATURE}, {"tempfail", DC_ERR_IO}};
    s = DC_ERR_ARG;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (rep->code.len == strlen(map[i].code) &&
            memcmp(rep->code.p, map[i].code, rep->code.len) == 0)
            s = map[i].st;
    return dc_fail(err, s, "the provider refused (%.*s): %.*s", (int)rep->code.len,
                   rep->code.p, (int)(rep->text.len > 300 ? 300 : rep->text.len), rep->text.p);
}

enum dc_status cl_acct_login(struct cl_acct *a, const char *login, const char *pw, size_t pwlen,
                             struct dc_err *err)
{
    size_t bl = dc_b64_enc_len(pwlen, 1);
    size_t ll = strlen(login) + bl + 8;
    char *line = dc_secure_alloc(ll);
    int n = snprintf(line, ll, "LOGIN %s ", login);
    dc_b64_encode((const uint8_t *)pw, pwlen, line + n, 1);
    struct acct_reply rep;
    enum dc_status s = cl_acct_call(a, line, &rep, err);
    dc_secure_free(line, ll);
    if (s == DC_ERR_SIGNATURE)
        return dc_fail(err, s, "login %s failed: the provider refused the password", login);
    return s;
}

enum dc_status cl_acct_word(const struct acct_word *w, uint8_t **out, size_t *len,
                            struct dc_err *err)
{
    uint8_t *b = dc_xmalloc(dc_b64_dec_max(w->len) + 1);
    enum dc_status s = dc_b64_decode(w->p, w->len, b, len, err);
    if (s != DC_OK) {
        free(b);
        return s;
    }
    *out = b;
    return DC_OK;
}

void cl_acct_close(struct cl_acct *a)
{
    if (a == NULL)
        return;
    if (a->ssl != NULL) {
        size_t w;
        if (SSL_write_ex(a->ssl, "QUIT\r\n", 6, &w) == 1)
            SSL_shutdown(a->ssl);
        SSL_free(a->ssl);
    }
    if (a->fd >= 0)
        close(a->fd);
    SSL_CTX_free(a->ctx);
    if (a->line != NULL)
        dc_memzero(a->line, strlen(a->line));
    if (a->buf != NULL)
        dc_memzero(a->buf, ACCT_REPLY_MAX);
    free(a->buf);
    free(a->line);
    free(a);
}
