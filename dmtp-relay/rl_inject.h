/*
 * rl_inject - hands mail to the local Postfix over SMTP (inject-address:inject-port, a
 * loopback smtpd listener):
 *  - inbound D/MIME messages, as a MIME wrapper: Content-Type: application/x-dime, the
 *    D/MIME bytes base64-encoded, To: the local recipient, a Received: trace line and
 *    X-DIME-Transaction: with the transaction id; no subject and no content in clear. The
 *    envelope sender is empty (<>): the relay cannot know the author, so a later bounce by
 *    Postfix goes nowhere rather than to a made-up address.
 *  - delivery status notifications (RFC 3464 multipart/report) for outbound bounces, to the
 *    message's sender, from MAILER-DAEMON with the null envelope sender. A DSN names the
 *    recipient, the Postfix queue id, the relay queue id, the destination and the remote
 *    reply; it holds nothing of the message (which the relay cannot read anyway).
 * A message leaves the relay's queue only after Postfix answered 250 to the end of DATA;
 * otherwise it is retried with the usual backoff while Postfix is down.
 *
 * Known limitation: this hop is at-least-once. Postfix queues a message once it has the
 * final dot, whether or not the client is still there to read the 250. When the relay dies
 * after sending the dot and before it recorded the 250 (an append to the injection journal,
 * queue-database + ".injected", replayed on start), the message is injected again after the
 * restart, with the same X-DIME-Transaction and Message-ID (<tid@hostname>), so a later stage
 * can drop the copy. SMTP gives no way to ask Postfix whether an earlier attempt was queued.
 * tests/integration/test_crash.sh counts these.
 */
#ifndef RL_INJECT_H
#define RL_INJECT_H

#include "dc_util.h"
#include "rl_config.h"

struct rl_injector;
enum dc_status rl_injector_start(const struct rl_config *cfg, struct rl_injector **out,
                                 struct dc_err *err);
void rl_injector_wake(void *ctx);
void rl_injector_stop(struct rl_injector *i);

/* The wrapper text (CRLF lines), for tests and the fuzz target. */
void rl_inject_wrapper(struct dc_buf *b, const char *hostname, const char *tid,
                       const char *origin, const char *recipient, const uint8_t *dmime,
                       size_t len);

#endif
