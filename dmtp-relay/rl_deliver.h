/*
 * rl_deliver - outbound delivery of dime-relayd and the delivery status notifications.
 *
 * A scheduler thread looks at the queue every queue-scan-interval seconds (and at once after
 * a submission): queued messages older than queue-lifetime become bounces; for every
 * destination domain with due messages it starts DMTP sessions, at most
 * destination-concurrency per domain and delivery-workers in all. A session resolves the
 * destination (dl_resolve_open: DNSSEC record, DX, certificate, org signet), sends
 * EHLO <origin>, then takes due messages of that domain one after another over the same
 * connection: MAIL FROM: <origin> [fp] SIZE=n, RCPT TO: <domain> [fp], DATA [fp], 354, the
 * D/MIME bytes and CRLF, 250 OK [tid] -> removed from the queue.
 *  - 4xx, a connection failure or a failed resolution: deferred, next try after
 *    retry-min * 2^attempts seconds (at most retry-max); a destination that cannot be
 *    reached defers all its due messages at once.
 *  - the keyvault cannot give the origin's org signet, whose fingerprint MAIL FROM names:
 *    deferred the same way, before MAIL (never a placeholder instead of the fingerprint).
 *  - 5xx to MAIL, RCPT, DATA or the message: a bounce.
 * The injector (rl_inject.h) turns bounces into DSNs for the sender.
 * Log lines name the relay queue id, the Postfix queue id, the destination domain and the
 * remote reply; never an address.
 */
#ifndef RL_DELIVER_H
#define RL_DELIVER_H

#include "rl_config.h"

#include <openssl/ssl.h>

struct rl_delivery;
enum dc_status rl_delivery_start(const struct rl_config *cfg, SSL_CTX *client_tls,
                                 struct rl_delivery **out, struct dc_err *err);
/* Wakes the scheduler (ctx is the struct rl_delivery). */
void rl_delivery_wake(void *ctx);
/* Waits for running sessions (they end after their current message). */
void rl_delivery_stop(struct rl_delivery *d);

#endif
