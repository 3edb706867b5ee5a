/*
 * mf_queue - takes back a queue file that Postfix never committed, so that dime-milter can
 * let a repeated injection through instead of discarding it (rl_inject.h, "The window").
 *
 * Postfix's cleanup writes a new message into incoming/<queue id> with mode 0600, fsyncs it
 * and only then sets the owner-execute bit (0700): that bit is Postfix's own commit mark.
 * The queue manager, showq (mailq, postqueue -j) and postsuper all ignore a file without it;
 * postsuper -p removes such a file only after seven days. A cleanup killed between the
 * milter's end of message and that fchmod leaves a file without the bit, holding the
 * converted (decrypted) message, and nothing in Postfix will ever deliver it.
 *
 * The milter cannot look: incoming/ is mode 0700, owned by Postfix's mail_owner. So before
 * dropping its privileges dime-milter forks one small process that opens
 * <postfix-queue-directory>/incoming, becomes the directory's owner (never root), closes
 * every other descriptor and answers one question over a socket pair: "withdraw queue id Q".
 *  - incoming/Q exists without the owner-execute bit: it is unlinked (MF_Q_WITHDRAWN). From
 *    then on Postfix cannot commit it: a cleanup still alive and writing writes to a file
 *    with no name, and the queue manager only ever takes files by name. Should the bit be
 *    set between the stat and the unlink, the unlink still comes before the queue manager
 *    could move the file (it renames it out of incoming/ first), so that message is not
 *    delivered either: either way the repeat is the only copy.
 *  - incoming/Q exists with the bit: committed, waiting for the queue manager (MF_Q_READY).
 *  - no incoming/Q: moved on (active, deferred, hold, delivered) or removed (MF_Q_ABSENT).
 * The process does nothing else and holds nothing but that directory; it exits when the
 * milter's end of the socket pair closes.
 */
#ifndef MF_QUEUE_H
#define MF_QUEUE_H

#include "dc_util.h"

enum mf_qstate { MF_Q_WITHDRAWN, MF_Q_READY, MF_Q_ABSENT, MF_Q_ERROR };

struct mf_queue;

/* Forks the process (call it as root, before dropping privileges; unprivileged it works
 * only on a directory the caller owns). queue_dir: Postfix's queue_directory. */
enum dc_status mf_queue_start(const char *queue_dir, struct mf_queue **out, struct dc_err *err);
/* Thread-safe. A queue id that is not 1-64 letters and digits is MF_Q_ERROR. */
enum mf_qstate mf_queue_withdraw(struct mf_queue *q, const char *qid);
/* Closes the socket (the process exits) and waits for it. */
void mf_queue_stop(struct mf_queue *q);
const char *mf_qstate_name(enum mf_qstate s);

#endif
