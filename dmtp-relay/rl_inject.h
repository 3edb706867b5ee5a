/*
 * rl_inject - hands mail to the local Postfix over SMTP (inject-address:inject-port, a
 * loopback smtpd listener):
 *  - inbound D/MIME messages, as a MIME wrapper: Content-Type: application/x-dime, the
 *    D/MIME bytes base64-encoded, To: the local recipient, a Received: trace line and
 *    X-DIME-Transaction: with the transaction id, X-DIME-Injection: with the transaction id
 *    and the attempt's generation (below); no subject and no content in clear. The
 *    envelope sender is empty (<>): the relay cannot know the author, so a later bounce by
 *    Postfix goes nowhere rather than to a made-up address.
 *  - delivery status notifications (RFC 3464 multipart/report) for outbound bounces, to the
 *    message's sender, from MAILER-DAEMON with the null envelope sender. A DSN names the
 *    recipient, the Postfix queue id, the relay queue id, the destination and the remote
 *    reply; it holds nothing of the message (which the relay cannot read anyway).
 * A message leaves the relay's queue only after Postfix answered 250 to the end of DATA;
 * otherwise it is retried with the usual backoff while Postfix is down.
 * inject-concurrency sessions inject at once, each over its own SMTP connection; a message
 * is in one session at a time (rl_inject.c).
 *
 * Exactly once (with dime-milter on the injection listener). Postfix queues a message once
 * it has the final dot, whether or not the client is still there to read the 250, and SMTP
 * gives no way to ask afterwards whether an earlier attempt was queued. So the relay numbers
 * its attempts and the milter, which sees every message on that listener before Postfix
 * commits it, drops a repeat:
 *  - each wrapper carries X-DIME-Injection: <tid>.<generation>. The generation lives in the
 *    inbound queue with a "pending" mark, both committed before the connection is opened:
 *    generation 1 with the message itself (rl_queue_in_add), a later one on its own.
 *    An attempt whose outcome is unknown (the relay was killed while it was under way, or
 *    the dot went out and no reply came) leaves the mark, and the next attempt reuses the
 *    generation. A definite answer clears it: 250 (done), or a 4xx/5xx reply or a lost
 *    connection before the dot (a retry then takes generation + 1).
 *  - dime-milter (milter { injection-database }) records a hash of tid.generation when it
 *    accepts such a message from an injection-clients address, and discards (Postfix still
 *    answers 250) one whose hash it already has.
 * A retry after a definite failure therefore always carries a new generation and is never
 * dropped, even when the milter had accepted the failed attempt (Postfix's cleanup failing
 * after the milter); only a retry after an unknown outcome can be dropped, and only when the
 * milter accepted that attempt.
 * The window: the milter records at its end of message (durably: synchronous=FULL), and
 * Postfix's cleanup commits the queue file (fsync) only after that. If the commit does not
 * happen in an attempt whose reply the relay never read, the repeat is dropped and the
 * message is lost.
 *  - A host restart (power cut, panic, reset) between the two: closed. The host restart
 *    is seen on start (the boot id, rl_boot.h) and every attempt still pending then takes a
 *    new generation: if Postfix had committed it, bob gets a second copy; a duplicate, never
 *    a loss.
 *  - Postfix's cleanup failing or dying in that window (a write or fsync error, disk full,
 *    cleanup killed, a Postfix stop that ends cleanup and smtpd together) while the relay
 *    itself dies or its connection drops before the reply: open, and it cannot be closed
 *    from outside Postfix. The milter's last call is its end of message (libmilter has no
 *    call after the MTA's commit, and Postfix makes none); the queue file is readable only
 *    by Postfix, and the queue id the milter saw names a file that may already be delivered
 *    and gone; SMTP has no way to ask whether an earlier transaction was queued. What would
 *    close it is a choice the other way: treating every attempt whose reply was not read as
 *    failed (a new generation) makes a repeat of a committed message a second copy. The
 *    relay keeps the same generation because a relay killed (or timing out) after its final
 *    dot is far more common than a Postfix that fails its commit at that same moment, and a
 *    Postfix that fails its commit with the relay alive answers 4xx, which is definite.
 * The injection journal (queue-database + ".injected": the id of every message Postfix
 * accepted, appended the moment the 250 arrives, replayed on start) spares most repeats.
 * DSNs carry no generation and remain at-least-once. tests/integration/test_crash.sh counts
 * deliveries with dime-milter in place, tests/integration/test_chaos.sh with every daemon of
 * both domains killed (RELIABILITY.md).
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
void rl_inject_wrapper(struct dc_buf *b, const char *hostname, const char *tid, unsigned gen,
                       const char *origin, const char *recipient, const uint8_t *dmime,
                       size_t len);

#endif
