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
 *    connection before the dot (a retry then takes generation + 1); but not for a repeat
 *    (an attempt that reused a pending generation) that fails before its dot, a connection
 *    refused while Postfix restarts, say: nothing of that attempt reached the milter, the
 *    earlier one's outcome is still unknown, and a new generation would make a second copy
 *    if the earlier one was queued.
 *  - dime-milter (milter { injection-database }) records a hash of tid.generation, with the
 *    Postfix queue id of the attempt, when it accepts such a message from an
 *    injection-clients address, and discards (Postfix still answers 250) a repeat whose
 *    earlier attempt Postfix may have queued.
 * A retry after a definite failure therefore always carries a new generation and is never
 * dropped, even when the milter had accepted the failed attempt (Postfix's cleanup failing
 * after the milter); only a retry after an unknown outcome can be dropped, and only when the
 * milter accepted that attempt.
 * The window: the milter records at its end of message (durably: synchronous=FULL), and
 * Postfix's cleanup commits the queue file only after that: it writes the file in incoming/
 * with mode 0600, fsyncs it and then sets the owner-execute bit, Postfix's own commit mark
 * (the queue manager, showq and postsuper ignore a file without it; postsuper -p removes it
 * after seven days). If the commit does not happen in an attempt whose reply the relay never
 * read (Postfix killed, its cleanup with it, between the two; the chaos test does this), the
 * repeat must not be dropped:
 *  - With milter { postfix-queue-directory }, the milter looks, on a repeat, at
 *    incoming/<queue id of the recorded attempt> (through one process forked as root that
 *    runs as the queue's owner, milter/mf_queue.h). Without the owner-execute bit, the file
 *    is unlinked, so that Postfix can never commit it (a cleanup still alive writes to a file
 *    without a name; the queue manager takes files only by name, and renames them out of
 *    incoming/ first), and the repeat goes on in its place and is recorded under its own queue
 *    id: delivered once, and the decrypted text of the first attempt is gone. With the bit,
 *    or no longer in incoming/, the repeat is discarded.
 *  - What stays open: an attempt Postfix never committed whose file is no longer there when
 *    the repeat comes. Postfix's cleanup removes its own file when it fails while alive (a
 *    write or fsync error, disk full) and then answers 4xx, which is definite; the relay sees
 *    no reply only if smtpd or the connection dies at that same moment (two faults). An
 *    administrator's postsuper -d, or postsuper -p after seven days (the relay gives up long
 *    before), would do the same. The milter cannot tell such a missing file from a message
 *    that was committed and delivered (the common case: the queue manager is fast), and it
 *    discards: letting it through would deliver every such delivered message twice.
 *  - A host restart (power cut, panic, reset) between the two: closed. The host restart
 *    is seen on start (the boot id, rl_boot.h) and every attempt still pending then takes a
 *    new generation: if Postfix had committed it, bob gets a second copy; a duplicate, never
 *    a loss.
 *  - Without postfix-queue-directory the window is open as it was: a repeat after a Postfix
 *    crash in it is discarded and the message lost. The relay keeps the same generation
 *    because a relay killed (or timing out) after its final dot is far more common than a
 *    Postfix that fails its commit at that same moment, and a Postfix that fails its commit
 *    with the relay alive answers 4xx, which is definite.
 * The injection journal (queue-database + ".injected": the id of every message Postfix
 * accepted, appended the moment the 250 arrives, replayed on start) spares most repeats.
 * DSNs carry no generation and remain at-least-once. tests/integration/test_crash.sh counts
 * deliveries with dime-milter in place, tests/integration/test_chaos.sh with every daemon of
 * both domains killed, tests/integration/test_inject_window.sh makes the window happen
 * (RELIABILITY.md).
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
