/*
 * rl_shared - the state the relays of one domain share on PostgreSQL (state = postgresql,
 * state-conninfo; dime-relayd(8) SEVERAL NODES): the POK pins (rl_pins.h) and, later, other
 * records every node must agree on. With state = sqlite (the default) none of this runs.
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

/* Connects to conninfo, migrates, and keeps the connection in the pool. Not thread safe:
 * called once before any thread uses the state. */
enum dc_status rl_shared_start(const char *conninfo, struct dc_err *err);
/* Whether rl_shared_start succeeded (and rl_shared_stop has not run). */
bool rl_shared_on(void);
/* An idle connection of the pool or a new one; DC_ERR_IO when PostgreSQL is away. */
enum dc_status rl_shared_take(struct dl_pg **out, struct dc_err *err);
/* Gives pg back to the pool (NULL: nothing). */
void rl_shared_give(struct dl_pg *pg);
/* Closes every idle connection and forgets the conninfo. */
void rl_shared_stop(void);

#endif
