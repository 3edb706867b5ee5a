/*
 * rl_shared - the state the relays of one domain share on PostgreSQL (state = postgresql,
 * state-conninfo; dime-relayd(8) SEVERAL NODES): the POK pins (rl_pins.h), the inbound
 * digests (rl_shared_in_add) and the signet cache (rl_cache.h). With state = sqlite (the default) none of this runs.
 *
 * The relay starts it once, before its threads (rl_shared_start connects, so that a relay
 * whose database cannot be reached says so at start, and migrates the schema, component
 * "relay" in schema_version). Threads then borrow a connection (rl_shared_take) for a few
 * statements and give it back; the pool keeps the connections idle between uses. A
 * PostgreSQL outage makes rl_shared_take or the statements fail with DC_ERR_IO (dl_pg.h),
 * which the callers answer as a tempfail, never as "no record".
 */
#ifndef RL_SHARED_H
#define RL_SHARED_H

#include "dc_util.h"
#include "dl_pg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Connects to conninfo, migrates, and keeps the connection in the pool. This node's name in
 * the shared records is the host name and queue_database (the queue its claims refer to).
 * Not thread safe: called once before any thread uses the state. */
enum dc_status rl_shared_start(const char *conninfo, const char *queue_database,
                               struct dc_err *err);
/* Whether rl_shared_start succeeded (and rl_shared_stop has not run). */
bool rl_shared_on(void);
/* An idle connection of the pool or a new one; DC_ERR_IO when PostgreSQL is away. */
enum dc_status rl_shared_take(struct dl_pg **out, struct dc_err *err);
/* Gives pg back to the pool (NULL: nothing). */
void rl_shared_give(struct dl_pg *pg);
/* Closes every idle connection and forgets the conninfo. */
void rl_shared_stop(void);

/* Seconds after which a pending claim of another node may be taken over: far longer than the
 * local commit it covers (the claim is made once the message is received and verified, and
 * the local SQLite commit waits at most a few seconds), short enough for a sender's retry. */
#define RL_SHARED_CLAIM_MAX 300

struct rl_queue;
struct dc_fmap;
/* rl_queue_in_add_map, once in the whole domain (state = postgresql): the message's digest is
 * claimed in relay_inbound by this node (pending) before the local commit and marked stored
 * after it. A digest a node has stored already: DC_OK, *dup, tid that node's transaction id,
 * nothing stored here. Another node's pending claim younger than RL_SHARED_CLAIM_MAX:
 * DC_ERR_ORDER (answer a tempfail; the sender comes back). PostgreSQL unreachable: DC_ERR_IO
 * (a tempfail: never a 250 without the message stored). Without the shared state: the local
 * queue's own deduplication only. */
enum dc_status rl_shared_in_add(struct rl_queue *q, const uint8_t *data, size_t len,
                                const struct dc_fmap *map, const char *recipient,
                                const char *origin, char tid[24], bool *dup, struct dc_err *err);
/* Deletes the digests claimed before `before` (the scheduler: twice queue-lifetime, as the
 * local queue's done rows); the number deleted. */
unsigned rl_shared_prune(int64_t before);

#endif
