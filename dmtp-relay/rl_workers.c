/*
 * rl_workers - threads kept between jobs (see rl_workers.h).
 */
#include "rl_workers.h"

#include "dc_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct item {
    struct item *next;
    void *job;
};

struct rl_workers {
    void (*fn)(void *ctx, void *job);
    void *ctx;
    unsigned idle_ms;
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job queued, or stopping */
    pthread_cond_t gone; /* a thread ended */
    struct item *head, **tail;
    unsigned queued;  /* jobs not yet taken by a thread */
    unsigned waiting; /* threads waiting for a job */
    unsigned threads; /* threads alive */
    bool stopping;
};

static void *loop(void *arg)
{
    struct rl_workers *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        if (w->head == NULL) {
            if (w->stopping)
                break;
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += w->idle_ms / 1000;
            until.tv_nsec += (long)(w->idle_ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            w->waiting++;
            int rc = pthread_cond_timedwait(&w->work, &w->mu, &until);
            w->waiting--;
            if (rc == ETIMEDOUT && w->head == NULL)
                break;
            continue;
        }
        struct item *it = w->head;
        w->head = it->next;
        if (w->head == NULL)
            w->tail = &w->head;
        w->queued--;
        pthread_mutex_unlock(&w->mu);
        void *job = it->job;
        free(it);
        w->fn(w->ctx, job);
        pthread_mutex_lock(&w->mu);
    }
    w->threads--;
    pthread_cond_broadcast(&w->gone);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

struct rl_workers *rl_workers_new(void (*fn)(void *ctx, void *job), void *ctx,
                                  unsigned idle_ms)
{
    struct rl_workers *w = dc_xcalloc(1, sizeof(*w));
    w->fn = fn;
    w->ctx = ctx;
    w->idle_ms = idle_ms;
    w->tail = &w->head;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->work, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&w->gone, NULL);
    return w;
}

bool rl_workers_run(struct rl_workers *w, void *job)
{
    struct item *it = dc_xmalloc(sizeof(*it));
    it->next = NULL;
    it->job = job;
    pthread_mutex_lock(&w->mu);
    bool ok = true;
    /* each waiting thread takes one queued job; a job beyond those gets a new thread */
    if (w->queued + 1 > w->waiting) {
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        ok = pthread_create(&t, &a, loop, w) == 0;
        pthread_attr_destroy(&a);
        if (ok)
            w->threads++;
    }
    if (ok) {
        *w->tail = it;
        w->tail = &it->next;
        w->queued++;
        pthread_cond_signal(&w->work);
    }
    pthread_mutex_unlock(&w->mu);
    if (!ok)
        free(it);
    return ok;
}

void rl_workers_free(struct rl_workers *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->work);
    while (w->threads > 0)
        pthread_cond_wait(&w->gone, &w->mu);
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->gone);
    free(w);
}
