/*
 * ac_session - one device's connection to the account service: the TLS handshake, then
 * request lines (daemonlib/ACCOUNT.md) until QUIT, end of stream, a timeout or a limit. A
 * login is checked with Dovecot (ac_dovecot.h); every other request needs one and names an
 * address the login owns: the login itself, or, for a login without a domain, its local
 * part. The keyvault (class account) does the rest and has the last word on the domain.
 *
 * Bounds: ACCT_LINE_MAX per request line, AC_REQUESTS_MAX requests and AC_LOGIN_TRIES
 * failed logins per connection, cfg->timeout seconds for the handshake and for each whole
 * request line (a client that trickles bytes is cut off too) and each reply.
 */
#ifndef AC_SESSION_H
#define AC_SESSION_H

#include "ac_config.h"
#include "acct_proto.h"

#include <openssl/ssl.h>
#include <stdbool.h>

#define AC_REQUESTS_MAX 64
#define AC_LOGIN_TRIES 3

struct ac_session {
    const struct ac_config *cfg;
    char rip[64];          /* the peer's address, for logs and Dovecot */
    char user[255];        /* Dovecot's user name after a login, else "" */
    unsigned failures;     /* failed logins */
    struct kv_client *kv;  /* opened on first use */
};

/* Serves the accepted socket fd (closes it). */
void ac_session_run(const struct ac_config *cfg, SSL_CTX *tls, int fd, const char *rip);

/* One request line: the reply line (CRLF-terminated) is appended to out; *quit is set when
 * the connection should end after it (QUIT, too many failed logins). Used by the connection
 * loop and by the tests. */
void ac_session_handle(struct ac_session *s, const char *line, size_t len, struct dc_buf *out,
                       bool *quit);
void ac_session_clear(struct ac_session *s);

/* Whether Dovecot's user name user owns address: equal ignoring case, or user has no '@'
 * and is the address's local part. */
bool ac_owns(const char *user, const char *address);

#endif
