/*
 * rl_server - the DX server of dime-relayd: DMTP over TLS from the first byte, one poll(2)
 * loop, non-blocking sockets. It answers SGNT, VRFY and HIST for the local domains from the
 * keyvault (public data only; rl_signets.h, on a worker thread, 476 after keyvault-timeout),
 * and EHLO, MODE, NOOP, RSET, QUIT, HELP itself. XSYN <domain> (our extension,
 * daemonlib/SYNDICATE.md) answers the pin of a domain in syndicate-for from the pin database,
 * on the loop (one indexed read), rate limited with SGNT (250, 451, 501, 550).
 *
 * Mail transfer: MAIL FROM: <origin-domain> [fp] SIZE=n (SIZE above max-message-size: 552),
 * RCPT TO: <local-domain> [fp] (one per transaction; another domain: 510), DATA [fp] ->
 * 354 CONTINUE [nonce], then the raw D/MIME bytes, whose length comes from their own header
 * (rl_inbound.h), and CRLF. A wrong length, SIZE mismatch or missing CRLF gives 451 and the
 * connection is closed (the byte stream cannot be resynchronized). The complete message is
 * checked and committed by a worker thread (at most inbound-workers; more: 431), while the
 * loop serves other connections; then 250 OK [transaction-id], or the code of rl_inbound.h.
 *
 * Defences: command lines of at most DC_DMTP_CMD_MAX bytes (an overlong line is answered 500
 * and skipped up to its CRLF), printable ASCII only, max-errors bad commands then 421 and
 * disconnect, idle-timeout for every state including the TLS handshake (inside a message:
 * data-timeout without a byte, data-time-limit for the whole message, then 421), max-clients
 * connections (more are accepted and closed at once), max-clients-per-address from one IP
 * (more get 421 after the handshake), data-memory-limit bytes of messages held at once by all
 * connections (reserved at MAIL from SIZE or from the D/MIME header; more: 431),
 * signet-rate SGNT/VRFY/HIST/XSYN per minute from one address, signet-burst at once (more: 431).
 *
 * The dual-mode front (rl_dual.h) runs in the same loop; a DMTP client it upgraded becomes a
 * connection here after its TLS handshake, greeted "250 OK DMTPv1" instead of the banner.
 *
 * Reply codes: 214 HELP, 220 banner, 221 QUIT, 250 OK, 354 send the message, 421 closing,
 * 431 busy, out of message memory, queue full or signet-rate, 451 data corrupted or local error, 476 keyvault
 * unavailable, 500 unknown command or line too long, 501 bad arguments, 503 bad sequence,
 * 510 unknown recipient or domain, 552 too large, 576 no such signet or not a local domain; 470/570/575/578 (rl_inbound.h).
 */
#ifndef RL_SERVER_H
#define RL_SERVER_H

#include "rl_config.h"

#include <openssl/ssl.h>
#include <signal.h>

int rl_server_listen(const struct rl_config *c, struct dc_err *err);
struct rl_lookupd;
/* Serves until SIGTERM or SIGINT (SIGHUP: reload); lk (may be NULL) is the lookup service, whose socket is
 * watched by the same loop. Returns the exit status. */
/* Mail transfer hooks: the client TLS context for origin signet lookups, and a function
 * called after an inbound message was committed (wakes the injector). */
struct rl_server_mail {
    SSL_CTX *client_tls;
    void (*on_inbound)(void *ctx);
    void *ctx;
    int dual_fd; /* the dual-mode front's listener (rl_dual.h), served by the same loop; -1: off */
};
/* SIGHUP reloads config_path (see reload in rl_server.c and dime-relayd(8), RELOAD). */
int rl_server_run(int lfd, SSL_CTX *tls, const struct rl_config *c, const char *config_path,
                  struct rl_lookupd *lk, const struct rl_server_mail *mail);


#endif
