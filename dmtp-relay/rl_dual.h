/*
 * rl_dual - the dual-mode front on port 25 (dmime-dmtp.md 11.1 and 11.6), off by default
 * (dual-mode-listen). Postfix keeps doing SMTP; the front only decides who a connection is for.
 *
 * For every connection it opens one to Postfix's smtpd at dual-mode-postfix (a listener with
 * smtpd_upstream_proxy_protocol = haproxy) and sends first a PROXY protocol version 2 header
 * with the client's address and port and the front's own (the binary form: Postfix has read
 * it since 3.5, haproxy's send-proxy-v2 writes it, and it needs no text parsing on Postfix's
 * side). Postfix's greeting goes to the client with the token DMTPv1 after its host name
 * (legacy clients see Postfix's banner, a DIME client sees the offer). Then the client's
 * first command decides:
 *   STARTTLS <host> MODE=DMTPv1   Postfix gets QUIT and is closed; the client gets 220, the
 *                                 relay's own TLS handshake (the DX port's certificate and
 *                                 policy), then "250 OK DMTPv1" over TLS, and the session
 *                                 goes on in the DX server (rl_server.h: same limits, same
 *                                 log lines, the same conn= number).
 *   anything else                 that line goes to Postfix, and from then on bytes are
 *                                 copied both ways until either side closes (Postfix does
 *                                 the SMTP, its own STARTTLS included).
 * Postfix unreachable, or no greeting: 421 4.3.0 and close.
 *
 * Bounds: front sessions count against max-clients with the DX connections (more: 421
 * 4.3.2); RL_DUAL_BUF bytes buffered each way, and a side is not read while the other has
 * not taken what it sent (backpressure); connect-timeout for Postfix's connect and greeting,
 * dual-mode-timeout without a byte either way, dual-mode-time-limit for a whole session.
 * Every socket is non-blocking: the front runs inside the DX server's poll loop.
 *
 * Log: one line per session, "conn=N ip=A port=P dual mode=smtp|dmtp|refused|closed in=B
 * out=B ms=T end=WHY" (bytes from and to the client; no content, no command).
 */
#ifndef RL_DUAL_H
#define RL_DUAL_H

#include "dc_util.h"
#include "rl_config.h"

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#define RL_DUAL_BUF 16384     /* bytes buffered in each direction of a session */
#define RL_DUAL_LINE_MAX 512  /* the first command is judged within this many bytes */
#define RL_DUAL_PROXY_MAX 52  /* a PROXY v2 header for TCP over IPv6 */

/* ---- the wire formats (rl_dual_wire.c: no I/O; unit tests and fuzz_dual) ---- */

/* The PROXY protocol v2 header for a TCP connection from src to dst (AF_INET or AF_INET6,
 * IPv4-mapped IPv6 addresses of both ends as TCP4): its length, 0 when the families cannot be
 * told (another family, or one end IPv4 and the other not). */
size_t rl_dual_proxy_v2(const struct sockaddr *src, const struct sockaddr *dst,
                        uint8_t out[RL_DUAL_PROXY_MAX]);

enum rl_dual_first {
    RL_DUAL_MORE, /* no decision yet: a CRLF is still to come */
    RL_DUAL_SMTP, /* for Postfix */
    RL_DUAL_DMTP, /* STARTTLS <host> MODE=DMTPv1; *linelen is the line with its CRLF */
};
/* Judges the first bytes a client sent after the greeting. A line that does not begin
 * "STARTTLS " (any case) is SMTP as soon as that shows; one that does is DMTP only when it is
 * exactly STARTTLS, a host name and MODE=DMTPv1, and SMTP when RL_DUAL_LINE_MAX bytes pass
 * without its CRLF. */
enum rl_dual_first rl_dual_classify(const uint8_t *p, size_t len, size_t *linelen);

/* Postfix's greeting: one SMTP reply, maybe multi-line, at the start of in. When it is
 * complete, appends it to out with " DMTPv1" after the host name of its first line when the
 * code is 220 (any other code unchanged), sets *used to its length and *code, DC_OK.
 * DC_ERR_TRUNCATED: not complete yet. DC_ERR_FORMAT: not an SMTP reply (or lines longer than
 * DC_DMTP_LINE_MAX, mixed codes). */
enum dc_status rl_dual_banner(const uint8_t *in, size_t len, struct dc_buf *out, size_t *used,
                              int *code);

/* dual-mode-postfix, ADDRESS:PORT, [ADDRESS6]:PORT or unix:/PATH, as a socket address;
 * false when it is none of those. */
bool rl_dual_target(const char *spec, struct sockaddr_storage *ss, socklen_t *sl);

/* ---- the front (rl_dual.c) ---- */

/* The listening socket of dual-mode-listen (bound as root: port 25), or -1 (err set). */
int rl_dual_listen(const char *spec, struct dc_err *err);

struct rl_dual;
/* A DMTP client after the 220 to its STARTTLS: the server takes the socket (its TLS
 * handshake, then 250 OK DMTPv1). */
typedef void rl_dual_handoff(void *ctx, int fd, unsigned id, const char *ip);
/* The front on lfd (it takes it), to Postfix at target (dual-mode-postfix; NULL when that
 * is not one); ids of its sessions come from *next_id, shared with the
 * DX server's connections. */
struct rl_dual *rl_dual_new(int lfd, const char *target, unsigned *next_id,
                            rl_dual_handoff *handoff, void *ctx);
void rl_dual_free(struct rl_dual *d);
/* Sessions open (for max-clients). */
size_t rl_dual_count(const struct rl_dual *d);
/* Poll slots the front needs now (at most 1 + 2 * sessions), and filling them. */
size_t rl_dual_nfds(const struct rl_dual *d);
void rl_dual_fds(const struct rl_dual *d, struct pollfd *p);
/* After poll: works on the slots rl_dual_fds filled (polled: poll returned > 0), expires
 * sessions, accepts new ones while sessions + others < max-clients. */
void rl_dual_io(struct rl_dual *d, const struct rl_config *cfg, size_t others,
                const struct pollfd *p, bool polled);

#endif
