/*
 * rl_queue - the relay's durable mail queue.
 *
 * Storage choice: one SQLite database (queue-database) in WAL mode with synchronous=FULL,
 * rather than a spool directory with fsync+rename. A submission is several messages plus an
 * idempotency key that must become visible together or not at all; in SQLite that is one
 * transaction (the WAL is fsynced before COMMIT returns), while a spool directory would need
 * a multi-file commit protocol of its own (write all, fsync all, rename a marker, recover
 * half-written sets on start). The UNIQUE key constraint also makes "same key twice" atomic
 * against concurrent submissions, and the queue CLI gets consistent snapshots for free while
 * the daemon writes. Messages are at most max-message-size (default 100 MiB), well inside
 * SQLite's blob limit. A connection is used by one thread at a time (the short jobs pass
 * theirs on through rl_queue_take/give) and keeps its prepared statements; a busy handler
 * absorbs writer contention.
 * Three commits do not wait for the disk (a second connection with synchronous=NORMAL: the
 * commit is in the WAL, ordered, and reaches the disk with the next synchronous commit or
 * checkpoint), where a power cut losing them costs at most a repeat, never a message:
 * rl_queue_claim (nothing: recovery does the same), rl_queue_out_sent (the message goes to
 * the destination again, which acknowledges it without storing it twice) and rl_queue_in_done
 * (Postfix gets a second copy). Each says so where it is declared. Every other commit waits
 * for the fsync before it returns (synchronous=FULL): what a 250 was given for.
 *
 * Tables:
 *   submission  key (SUBMIT.md), sid, count: answers repeated submissions
 *   outq        outbound D/MIME messages: Postfix queue id, the sender and the recipient
 *               address SEALED (only a DSN ever needs them), destination domain, state
 *               queued|sending|bounce, held, attempts, next try, last error
 *   outq_data   the bytes of each outq message, by id (schema 2: in a table of their own, so
 *               that a change of state does not rewrite them; SQLite rewrites a whole record,
 *               overflow pages included, on any UPDATE); they go with the outq row
 *   inq         inbound D/MIME messages for local recipients and what is left of them after
 *               injection: the local recipient SEALED (gone once injected), the origin
 *               domain, the SHA-256 of the bytes (so a message the sending relay repeats
 *               after a lost reply is acknowledged again, not stored twice), state
 *               queued|done; done rows keep no data and go after twice queue-lifetime;
 *               the injection generation and whether its attempt's outcome is pending
 *               (rl_inject.h; columns added to older databases on open).
 *   inq_data    the bytes of each queued inq message, by tid; they go when it is done or
 *               deleted.
 * Nothing stored holds a subject or content in clear (D/MIME bytes are end-to-end encrypted)
 * nor an address: they are sealed (rl_seal.h, in the format of dl_seal.h: AES-256-GCM under
 * the 32-byte queue-key-file, bound to the row id and the column, so a sealed value moved to
 * another row does not open).
 * Domains stay in clear: delivery is scheduled by destination domain. A row whose address
 * does not unseal is held with the reason in last_error. The schema version is PRAGMA
 * user_version; databases of schema 0 (sender and inbound recipient in clear, recipients
 * sealed without row binding) are converted on open, pages that held them overwritten, and
 * so are those of schema 1 (the bytes in the outq / inq rows) and 2 (the relay's first sealed
 * format, resealed in dl_seal's).
 * A database created new gets a pointer map (auto_vacuum=INCREMENTAL), so that the bytes of a
 * sent or injected message are freed without SQLite reading their pages; existing databases
 * keep their layout (only a VACUUM would change it). Claims and injections read a message's
 * bytes with sqlite3_blob_read straight into their buffer.
 */
#ifndef RL_QUEUE_H
#define RL_QUEUE_H

#include "dc_util.h"

#include <stdbool.h>
#include <stdint.h>

struct rl_queue;

/* Opens (creating when needed) the database and the sealing key file (32 random bytes,
 * mode 0600, created on first use). */
enum dc_status rl_queue_open(const char *db, const char *keyfile, struct rl_queue **out,
                             struct dc_err *err);
void rl_queue_close(struct rl_queue *q);
/* For short jobs (a submission, an inbound message): an idle connection to the same database
 * opened earlier, or a new one; rl_queue_give keeps it for the next job (up to 8, closed by
 * rl_queue_pool_drain). Opening cost a file open, the schema and key file each time. */
enum dc_status rl_queue_take(const char *db, const char *keyfile, struct rl_queue **out,
                             struct dc_err *err);
void rl_queue_give(struct rl_queue *q);
void rl_queue_pool_drain(void);
/* On start: messages left in "sending" by a crash become "queued" (due now). */
enum dc_status rl_queue_recover(struct rl_queue *q, struct dc_err *err);

/* ---- submission ---- */
struct rl_q_new {
    const char *sender;    /* "" for the null sender */
    const char *recipient;
    const char *domain;    /* the recipient's domain */
    const char *origin;    /* our domain (MAIL FROM) */
    const uint8_t *data;
    size_t len;
};
/* Is the key known? (A cheap check before the origin signing; rl_queue_submit checks again
 * inside its transaction.) */
bool rl_queue_known(struct rl_queue *q, const char *key, char sid[17], size_t *count);
/* Whether n more messages of bytes in all fit: the queue holds fewer than max_messages
 * (outbound ones plus inbound ones not yet injected) and its file system keeps min_free bytes
 * free after them. false (why: which limit, the numbers) when not, or when it cannot be told
 * (then why says so too: a queue that cannot count is not written to). */
bool rl_queue_room(struct rl_queue *q, size_t n, size_t bytes, unsigned long max_messages,
                   unsigned long min_free, char *why, size_t wl);
/* One transaction: when key exists, *dup = true and sid/count are the first submission's. */
enum dc_status rl_queue_submit(struct rl_queue *q, const char *key, const char *pf_qid,
                               const struct rl_q_new *m, size_t n, char sid[17], size_t *count,
                               bool *dup, struct dc_err *err);

/* ---- outbound ---- */
struct rl_q_out {
    char id[24];
    char pf_qid[65];
    char sender[256];    /* unsealed; both only filled by rl_queue_bounce_next */
    char recipient[256];
    char domain[256];
    char origin[256];
    int64_t created;
    unsigned attempts;
    char last_error[256];
    uint8_t *data;       /* malloc'd */
    size_t len;
};
void rl_q_out_free(struct rl_q_out *m);

/* Domains with due, unheld, queued messages (and how many), at most max. */
size_t rl_queue_due_domains(struct rl_queue *q, int64_t now, char (*dom)[256], unsigned *count,
                            size_t max);
/* Takes the oldest due message of domain (state sending). *found false when none. Its commit
 * does not wait for the disk: a lost claim is what recovery does anyway (back to queued). */
enum dc_status rl_queue_claim(struct rl_queue *q, const char *domain, int64_t now,
                              struct rl_q_out *out, bool *found, struct dc_err *err);
enum dc_status rl_queue_out_done(struct rl_queue *q, const char *id, struct dc_err *err);
/* rl_queue_out_done for a message the destination relay acknowledged (250 over DMTP), without
 * waiting for the disk: if a crash of this host loses the delete, the message goes again and
 * the receiver answers 250 for it without storing it twice (inq deduplicates by SHA-256), as
 * Postfix redelivers when its qmgr's unlink of a delivered queue file is lost. */
enum dc_status rl_queue_out_sent(struct rl_queue *q, const char *id, struct dc_err *err);
/* Back to queued, due at now + backoff(attempts), attempts + 1. */
enum dc_status rl_queue_out_defer(struct rl_queue *q, const char *id, int64_t next,
                                  const char *error, struct dc_err *err);
/* Permanent failure: state bounce (a DSN is owed to the sender). */
enum dc_status rl_queue_out_bounce(struct rl_queue *q, const char *id, const char *error,
                                   struct dc_err *err);
/* Queued messages older than lifetime become bounces ("delivery time expired"); returns how
 * many. */
unsigned rl_queue_expire(struct rl_queue *q, int64_t now, unsigned lifetime);
/* The next bounce whose DSN is due (not held, next_try <= now), sender and recipient
 * unsealed; a recipient that does not unseal is given as unknown@<domain>, a bounce whose
 * sender does not unseal is held instead (*found false). */
enum dc_status rl_queue_bounce_next(struct rl_queue *q, int64_t now, struct rl_q_out *out,
                                    bool *found, struct dc_err *err);

/* A DSN that Postfix did not take: try again at next. */
enum dc_status rl_queue_bounce_retry(struct rl_queue *q, const char *id, int64_t next,
                                     struct dc_err *err);

/* ---- inbound ---- */
/* Stores a verified inbound message. When the same bytes were stored before (any state),
 * nothing is stored and *dup is set; tid is the first one's. The row comes with injection
 * generation 1, pending: the first attempt's generation is durable with the message, so that
 * attempt needs no rl_queue_in_attempt commit (one fsync less per message). After a restart
 * such a row cannot be told from one whose first attempt was under way: both go again as
 * generation 1, which is what rl_inject.h asks of an unknown outcome. */
enum dc_status rl_queue_in_add(struct rl_queue *q, const uint8_t *data, size_t len,
                               const char *recipient, const char *origin, char tid[24],
                               bool *dup, struct dc_err *err);
/* The same for a message in a mapped spool file (data = map->p): the digest and the copy
 * into the database go a window at a time, releasing the pages behind them (rl_spool.h). */
struct dc_fmap;
/* The digest the inbound queue deduplicates by (SHA-256 of the bytes; map: read in windows). */
void rl_queue_in_hash(const uint8_t *data, size_t len, const struct dc_fmap *map, uint8_t h[32]);
enum dc_status rl_queue_in_add_map(struct rl_queue *q, const uint8_t *data, size_t len,
                                   const struct dc_fmap *map, const char *recipient,
                                   const char *origin, char tid[24], bool *dup,
                                   struct dc_err *err);
/* rl_queue_in_add_map with the digest already made by rl_queue_in_hash (the shared inbound
 * record claims it first, rl_shared.h): the bytes are read once less. */
enum dc_status rl_queue_in_add_hashed(struct rl_queue *q, const uint8_t *data, size_t len,
                                      const struct dc_fmap *map, const uint8_t h[32],
                                      const char *recipient, const char *origin, char tid[24],
                                      bool *dup, struct dc_err *err);
struct rl_q_in {
    char tid[24];
    char recipient[256];
    char origin[256];
    unsigned attempts;
    unsigned gen;  /* injection generation of the last attempt (0: none yet, in rows of
                    * older relays; newer rows start at 1, pending) */
    bool pending;  /* that attempt's outcome is unknown (see rl_queue_in_attempt) */
    int64_t created;
    uint8_t *data;
    size_t len;
};
void rl_q_in_free(struct rl_q_in *m);
/* The next due message, recipient unsealed (one that does not unseal is held: *found false). */
enum dc_status rl_queue_in_next(struct rl_queue *q, int64_t now, struct rl_q_in *out,
                                bool *found, struct dc_err *err);
/* The same, skipping the nbusy ids in busy (messages other injection sessions hold). */
enum dc_status rl_queue_in_next_except(struct rl_queue *q, int64_t now, const char (*busy)[24],
                                       size_t nbusy, struct rl_q_in *out, bool *found,
                                       struct dc_err *err);
/* Postfix took the message: state done, its bytes and sealed recipient go. The commit does
 * not wait for the disk. A relay process that dies keeps it (the kernel has it). A power cut
 * may lose it: the attempt's pending mark (rl_queue_in_attempt or rl_queue_in_add, both
 * synchronous) is still there, and after the host restart that attempt takes a new
 * generation (rl_inject.h, rl_boot.h), so Postfix gets the message a second time: a
 * duplicate, never a loss. Waiting would cost an fsync per inbound message. */
enum dc_status rl_queue_in_done(struct rl_queue *q, const char *tid, struct dc_err *err);
/* Records, durably, that injection attempt gen of tid starts: generation gen, outcome
 * unknown until rl_queue_in_done or rl_queue_in_defer (rl_inject.h tells why). */
enum dc_status rl_queue_in_attempt(struct rl_queue *q, const char *tid, unsigned gen,
                                   struct dc_err *err);
/* Retry at next. unknown: the attempt may have been accepted (the final dot went out and no
 * reply came), so its generation stays pending; otherwise the attempt definitely failed. */
enum dc_status rl_queue_in_defer(struct rl_queue *q, const char *tid, int64_t next,
                                 const char *error, bool unknown, struct dc_err *err);
/* After a host restart (rl_boot.h): every queued inbound message whose last injection
 * attempt is pending is marked definitely failed instead, so that its next attempt takes a new
 * generation (rl_inject.h); *n (may be NULL) gets how many. Synchronous. */
enum dc_status rl_queue_in_unpend(struct rl_queue *q, unsigned *n, struct dc_err *err);
/* Deletes done inbound rows older than keep seconds. */
void rl_queue_prune(struct rl_queue *q, int64_t now, unsigned keep);

/* ---- operator commands (dime-relayctl queue) ---- */
struct rl_q_entry {
    char id[24];
    char dir[4];       /* "out" / "in" */
    char state[12];    /* queued, sending, bounce, held */
    char domain[256];  /* destination (out) or origin (in) domain */
    char pf_qid[65];
    int64_t created;
    int64_t next_try;
    unsigned attempts;
    size_t size;
    char last_error[256];
};
/* Calls fn for every message still owed (outbound, bounces, inbound not yet injected). */
enum dc_status rl_queue_list(struct rl_queue *q, void (*fn)(void *ctx, const struct rl_q_entry *e),
                             void *ctx, struct dc_err *err);
/* id NULL: every message. Returns DC_ERR_NOTFOUND for an unknown id. */
enum dc_status rl_queue_flush(struct rl_queue *q, const char *id, unsigned *n, struct dc_err *err);
enum dc_status rl_queue_delete(struct rl_queue *q, const char *id, struct dc_err *err);
enum dc_status rl_queue_hold(struct rl_queue *q, const char *id, bool hold, struct dc_err *err);

/* Moves every message src still owes into dst (dime-relayctl queue export / import): outbound
 * ones with their state (queued, bounce, held), age, attempts and last error, under new ids,
 * addresses unsealed with src's key and sealed again with dst's; inbound ones not yet injected
 * as new inbound messages of dst. Each message is first committed durably in dst, then
 * deleted from src, so a crash in between leaves it in both and a second move finds it
 * already there (an outbound row by the submission key "moved <id>" stored with it, an
 * inbound one by its digest): never lost, not stored twice. Rows being sent (state sending:
 * a running relay holds them) stay; n->sending says how many. An address that does not
 * unseal stops the move (DC_ERR_CRYPTO, naming the row) with what was moved so far moved. */
struct rl_q_moved {
    unsigned out, in; /* moved */
    unsigned dup;     /* found already in dst: only deleted from src */
    unsigned sending; /* left in src */
};
enum dc_status rl_queue_move(struct rl_queue *src, struct rl_queue *dst, struct rl_q_moved *n,
                             struct dc_err *err);

/* Messages in the queue for metrics: n[0] outbound (to deliver or to bounce), n[1] inbound
 * not yet injected, n[2] held (both directions). */
enum dc_status rl_queue_depth(struct rl_queue *q, unsigned long n[3], struct dc_err *err);

int64_t rl_now(void);
/* retry_min * 2^attempts, at most retry_max. */
int64_t rl_backoff(unsigned attempts, unsigned retry_min, unsigned retry_max);
/* Random lower-case hex id of 2*n digits. */
void rl_random_id(char *out, size_t n);

#endif
