/*
 * rl_workers - threads kept for the lookup and submission services: a job handed over runs
 * on a thread that has finished its previous job and waits for the next one, or on a new
 * thread when none waits. A thread that has waited idle_ms for a job ends. The caller keeps
 * its own limit of jobs at once (lookup-workers, submit-workers); the pool only saves the
 * thread creation per connection.
 */
#ifndef RL_WORKERS_H
#define RL_WORKERS_H

#include <stdbool.h>

struct rl_workers;

/* fn(ctx, job) runs each job handed to rl_workers_run; it owns job. */
struct rl_workers *rl_workers_new(void (*fn)(void *ctx, void *job), void *ctx,
                                  unsigned idle_ms);
/* false when no thread waits and none could be started: job was not taken. */
bool rl_workers_run(struct rl_workers *w, void *job);
/* Runs the jobs handed over so far to their end, then ends the threads and frees w. */
void rl_workers_free(struct rl_workers *w);

#endif
