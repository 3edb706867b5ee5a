/*
 * mf_inject - dime-milter's record of the injections it accepted, so that a repeated
 * injection by dime-relayd is discarded instead of delivered twice (dmtp-relay/rl_inject.h
 * has the whole protocol).
 *
 * The relay marks each attempt with X-DIME-Injection: <tid>.<generation>. A repeat with the
 * same value happens only when the relay could not learn whether an earlier attempt was
 * queued; a retry after a definite failure carries a new generation. The record is one
 * SQLite database (milter { injection-database }, WAL, synchronous=FULL, so a recorded
 * acceptance survives a crash of the milter or the host: losing it would let the relay's
 * repeat of a message Postfix had queued through, a second copy; it is written before
 * Postfix's own commit, and rl_inject.h says what that leaves open) holding for each
 * accepted value only the first 256 bits of its SHA-512, the Postfix queue id of the attempt and
 * the time: no address, no transaction id in clear.
 * Each entry also keeps the Postfix queue id of the attempt it was recorded for: on a repeat
 * the milter asks whether Postfix ever committed that queue file (mf_queue.h) and lets the
 * repeat through when it did not.
 * Entries older than MF_INJ_KEEP are deleted (the relay gives up on a message long before).
 *
 * Only messages from injection-clients addresses (the relay's loopback source) are looked
 * up or recorded; the header in mail from anywhere else means nothing.
 */
#ifndef MF_INJECT_H
#define MF_INJECT_H

#include "dc_util.h"
#include "mf_queue.h"

#include <stdbool.h>
#include <stdint.h>

#define MF_INJ_KEEP (30 * 86400)
#define MF_INJ_KEY_LEN 32
#define MF_QID_MAX 64

struct mf_injdb;

/* Opens (creating when needed, mode 0600) the database. */
enum dc_status mf_injdb_open(const char *path, struct mf_injdb **out, struct dc_err *err);
void mf_injdb_close(struct mf_injdb *db);
/* Closes the database but keeps db itself: for the daemon's exit, when libmilter's session
 * threads (detached; smfi_main does not wait for them) may still call the functions below,
 * which then fail (the session tempfails) instead of using freed memory. */
void mf_injdb_shut(struct mf_injdb *db);

/* The key of a header value " <tid>.<generation>" (surrounding white space allowed; tid of
 * 1-64 lower-case hex digits, generation decimal, at most 10 digits). false when the value
 * is not of that form. id (may be NULL) gets "tid.generation" for the log. */
bool mf_inj_key(const char *value, uint8_t key[MF_INJ_KEY_LEN], char id[80]);

/* 1: already recorded, 0: not, -1: database error (err filled). first (may be NULL) gets the
 * Postfix queue id recorded with it ("" for an entry made before queue ids were kept). */
int mf_injdb_seen(struct mf_injdb *db, const uint8_t key[MF_INJ_KEY_LEN],
                  char first[MF_QID_MAX + 1], struct dc_err *err);
/* Records key with the Postfix queue id of the accepting attempt (durable when this returns
 * DC_OK). replaces NULL: a new entry; *dup: key was recorded already (a repeat that raced
 * with the first). replaces a queue id: the repeat of an attempt whose queue file was
 * withdrawn (mf_queue.h) takes the entry over, only while it still names replaces; *dup:
 * another repeat took it first. Expired entries go now and then. */
enum dc_status mf_injdb_record(struct mf_injdb *db, const uint8_t key[MF_INJ_KEY_LEN],
                               const char *qid, const char *replaces, bool *dup,
                               struct dc_err *err);

/* The queue id of an entry whose attempt's queue file was withdrawn (mf_queue.h): nothing of
 * it is queued, and a repeat goes through. */
#define MF_INJ_WITHDRAWN "-"
enum mf_inj_verdict { MF_INJ_DISCARD, MF_INJ_TAKE_OVER };
/* What becomes of a repeat whose entry holds the queue id first: taken over when nothing of
 * the earlier attempt is queued (first is MF_INJ_WITHDRAWN, or checked and st is
 * MF_Q_WITHDRAWN); else discarded: committed (st MF_Q_READY), or not known (no queue id
 * kept, not checked, MF_Q_ERROR) or no longer in incoming/ (MF_Q_ABSENT: delivered or moved
 * on, or removed by someone; RELIABILITY.md says why that stays a discard). */
enum mf_inj_verdict mf_inj_repeat(const char *first, bool checked, enum mf_qstate st);

/*
 * Outbound: the first Postfix queue id of each message handed to the relay, so that a
 * client's new attempt of a message goes to the relay as the same submission (SUBMIT.md,
 * Idempotency: the key holds the queue id). The client makes a new attempt after a 4xx, and
 * it may get one after the relay has committed: the milter was killed between the relay's 250
 * and its own answer to Postfix (Postfix then tempfails), or the relay stayed unreachable
 * after it committed. A new queue id would make a new key and the relay would deliver the
 * message twice; the first queue id makes the relay answer "250 duplicate".
 * key: the message's outbound key (mf_filter.c: a hash of the envelope sender, the
 * Message-ID, the DIME recipients and the message as received, so only a byte-identical
 * message from the same sender to the same recipients shares it). Records qid for key unless
 * key has one already, and gives the one it has in first. Entries go after MF_SUB_KEEP (the
 * relay forgets a key after twice its queue-lifetime).
 */
#define MF_SUB_KEEP (10 * 86400)
enum dc_status mf_injdb_first_qid(struct mf_injdb *db, const uint8_t key[MF_INJ_KEY_LEN],
                                  const char *qid, char first[MF_QID_MAX + 1],
                                  struct dc_err *err);

#endif
