/*
 * rl_server - the DX server of dime-relayd: DMTP over TLS from the first byte, one poll(2)
 * loop, non-blocking sockets. It answers SGNT, VRFY and HIST for the local domains from the
 * keyvault (public data only), and EHLO, MODE, NOOP, RSET, QUIT, HELP itself. MAIL, RCPT and
 * DATA are not implemented yet: MAIL gets 502 (503 before EHLO), RCPT and DATA 503, since no
 * MAIL transaction can exist.
 *
 * Defences: command lines of at most DC_DMTP_CMD_MAX bytes (an overlong line is answered 500
 * and skipped up to its CRLF), printable ASCII only, max-errors bad commands then 421 and
 * disconnect, idle-timeout for every state including the TLS handshake, max-clients
 * connections (more are accepted and closed at once).
 *
 * Reply codes: 214 HELP, 220 banner, 221 QUIT, 250 OK, 421 closing, 476 keyvault unavailable,
 * 500 unknown command or line too long, 501 bad arguments, 502 not implemented, 503 bad
 * sequence, 576 no such signet or not a local domain.
 */
#ifndef RL_SERVER_H
#define RL_SERVER_H

#include "rl_config.h"

#include <openssl/ssl.h>
#include <signal.h>

int rl_server_listen(const struct rl_config *c, struct dc_err *err);
struct rl_lookupd;
/* Serves until SIGTERM or SIGINT; lk (may be NULL) is the lookup service, whose socket is
 * watched by the same loop. Returns the exit status. */
int rl_server_run(int lfd, SSL_CTX *tls, const struct rl_config *c, struct rl_lookupd *lk);

void rl_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
