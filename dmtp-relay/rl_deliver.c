/*
 * rl_deliver - outbound DMTP delivery. See rl_deliver.h.
 */
#include "rl_deliver.h"
#include "rl_metrics.h"
#include "dl_log.h"

#include "dc_dmtp.h"
#include "kv_client.h"

#include "rl_lookup.h"
#include "rl_queue.h"
#include "rl_shared.h"
#include "rl_resolve.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DOMAINS 256

struct active {
    char domain[256];
    unsigned n;
};

struct rl_delivery {
    const struct rl_config *cfg;
    SSL_CTX *tls;
    pthread_t sched;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool wake;
    unsigned long wakes; /* rl_delivery_wake calls so far (idle workers wait for a change) */
    atomic_int stop; /* set under mu, read by the workers without it */
    struct kv_keep *keep; /* the workers' keyvault connections */
    unsigned total;
    struct active act[MAX_DOMAINS];
};

void rl_delivery_wake(void *ctx)
{
    struct rl_delivery *d = ctx;
    pthread_mutex_lock(&d->mu);
    d->wake = true;
    d->wakes++;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static struct active *slot(struct rl_delivery *d, const char *domain, bool create)
{
    struct active *free_slot = NULL;
    for (size_t i = 0; i < MAX_DOMAINS; i++) {
        if (d->act[i].n > 0 && strcmp(d->act[i].domain, domain) == 0)
            return &d->act[i];
        if (d->act[i].n == 0 && free_slot == NULL)
            free_slot = &d->act[i];
    }
    if (create && free_slot != NULL)
        snprintf(free_slot->domain, sizeof(free_slot->domain), "%s", domain);
    return create ? free_slot : NULL;
}

struct worker {
    struct rl_delivery *d;
    char domain[256];
};

/* Reply text for logs and the queue: code and first line, without control characters. */
static void reply_text(const struct dc_dmtp_reply *rep, char *out, size_t cap)
{
    snprintf(out, cap, "%d %.200s", rep->code, rep->nlines ? rep->lines[0] : "");
}

/* The remote DX of a worker's session as log fields: "dx=HOST ip=ADDR port=N" once
 * connected, "dx=-" before. Delivery lines carry it (the address the relay talked to) and
 * the destination domain, never an address of a sender or recipient. */
static void dx_fields(char *out, size_t cap, const struct dl_lookup *l)
{
    if (l->dx_addr[0] == '\0')
        snprintf(out, cap, "dx=-");
    else
        snprintf(out, cap, "dx=%s ip=%s port=%u", l->dx_host[0] ? l->dx_host : "-", l->dx_addr,
                 l->dx_port);
}

static void defer(struct rl_delivery *d, struct rl_queue *q, const struct rl_q_out *m,
                  const char *dx, const char *why)
{
    struct dc_err e = {0};
    int64_t next = rl_now() + rl_backoff(m->attempts, d->cfg->retry_min, d->cfg->retry_max);
    if (rl_queue_out_defer(q, m->id, next, why, &e) != DC_OK)
        dl_log(LOG_ERR, "deliver id=%s queue error=\"%s\"", m->id, e.msg);
    rl_count_defer(RL_DEFER_DELIVERY);
    dl_log(LOG_WARNING, "deliver id=%s qid=%s domain=%s %s status=deferred attempts=%u "
           "reason=\"%s\"", m->id, m->pf_qid, m->domain, dx, m->attempts + 1, why);
}

static void bounce(struct rl_queue *q, const struct rl_q_out *m, const char *dx,
                   const char *why)
{
    struct dc_err e = {0};
    if (rl_queue_out_bounce(q, m->id, why, &e) != DC_OK)
        dl_log(LOG_ERR, "deliver id=%s queue error=\"%s\"", m->id, e.msg);
    rl_count_message(RL_ROUTE_BOUNCED, 1);
    dl_log(LOG_WARNING, "deliver id=%s qid=%s domain=%s %s status=bounced reason=\"%s\"", m->id,
           m->pf_qid, m->domain, dx, why);
}

/* One message over an open session. Returns false when the session is no longer usable. */
static bool send_one(struct rl_delivery *d, struct rl_queue *q, struct dl_session *s,
                     const struct rl_q_out *m, const char *dx, const char *origin_fp,
                     const char *dest_fp)
{
    struct dc_dmtp_reply rep;
    struct dc_err e = {0};
    char line[DC_DMTP_CMD_MAX], why[300];
    const char *step = "MAIL";
    uint64_t start_us = dl_metrics_now_us();
    snprintf(line, sizeof(line), "MAIL FROM: <%s> [%s] SIZE=%zu", m->origin, origin_fp, m->len);
    enum dc_status st = dl_session_cmd(s, &rep, &e, line);
    if (st == DC_OK && rep.code / 100 == 2) {
        dc_dmtp_reply_free(&rep);
        step = "RCPT";
        snprintf(line, sizeof(line), "RCPT TO: <%s> [%s]", m->domain, dest_fp);
        st = dl_session_cmd(s, &rep, &e, line);
    }
    if (st == DC_OK && rep.code / 100 == 2) {
        dc_dmtp_reply_free(&rep);
        step = "DATA";
        snprintf(line, sizeof(line), "DATA [%s]", dest_fp);
        st = dl_session_cmd(s, &rep, &e, line);
    }
    if (st == DC_OK && rep.code / 100 == 3) {
        dc_dmtp_reply_free(&rep);
        step = "message";
        st = dl_session_data(s, m->data, m->len, &rep, &e);
        if (st == DC_OK && rep.code / 100 == 2) {
            char tid[64] = "";
            const char *p;
            size_t pl;
            struct dc_err be = {0};
            if (rep.nlines && dc_dmtp_bracket(rep.lines[0], &p, &pl, &be) == DC_OK && pl < 64)
                memcpy(tid, p, pl), tid[pl] = '\0';
            if (rl_queue_out_sent(q, m->id, &e) != DC_OK)
                dl_log(LOG_ERR, "deliver id=%s queue error=\"%s\"", m->id, e.msg);
            rl_count_message(RL_ROUTE_DMTP_OUT, 1);
            rl_count_delivery_time(start_us);
            dl_log(LOG_INFO, "deliver id=%s qid=%s domain=%s %s status=sent remote-tid=%s "
                   "attempts=%u", m->id, m->pf_qid, m->domain, dx, tid, m->attempts + 1);
            dc_dmtp_reply_free(&rep);
            return true;
        }
    }
    if (st != DC_OK) {
        snprintf(why, sizeof(why), "%s: %s", step, e.msg);
        defer(d, q, m, dx, why);
        dc_dmtp_reply_free(&rep);
        return false;
    }
    char rt[260];
    reply_text(&rep, rt, sizeof(rt));
    snprintf(why, sizeof(why), "%s: %s", step, rt);
    int code = rep.code;
    dc_dmtp_reply_free(&rep);
    if (code / 100 == 5)
        bounce(q, m, dx, why);
    else
        defer(d, q, m, dx, why);
    if (code == 421)
        return false;
    st = dl_session_cmd(s, &rep, &e, "RSET");
    bool ok = st == DC_OK && rep.code / 100 == 2;
    dc_dmtp_reply_free(&rep);
    return ok;
}

/* The fingerprint MAIL FROM names for one origin, kept for the session's next messages from
 * the same origin (a session lasts seconds; a rotated org signet is seen by the next one). */
struct origin_fp {
    char origin[256]; /* "" until known */
    char fp[DC_FP_B64_LEN + 1];
};

/* Makes o hold the crypto fingerprint of origin's current org signet, from the keyvault.
 * false, with the reason in why, when the vault cannot give it: the message then waits in
 * the queue, it never goes out with a made-up fingerprint. */
static bool origin_fp_of(struct rl_delivery *d, struct origin_fp *o, const char *origin,
                         char *why, size_t wl)
{
    if (o->origin[0] != '\0' && strcmp(o->origin, origin) == 0)
        return true;
    o->origin[0] = '\0';
    struct kv_client *kv = NULL;
    struct dc_signet *sg = NULL;
    struct dc_err e = {0};
    char full[DC_FP_B64_LEN + 1];
    bool ok = kv_keep_take(d->keep, &kv, &e) == DC_OK &&
              kv_client_signet(kv, origin, NULL, &sg, &e) == DC_OK &&
              dc_signet_fp(sg, full, o->fp, &e) == DC_OK && strlen(origin) < sizeof(o->origin);
    if (ok)
        snprintf(o->origin, sizeof(o->origin), "%s", origin);
    else
        snprintf(why, wl, "keyvault: origin signet of %.100s: %.150s", origin,
                 e.msg[0] ? e.msg : "origin name too long");
    dc_signet_free(sg);
    kv_keep_give(d->keep, kv);
    return ok;
}

/*
 * The next due message of the domain for a worker whose session is open. With none due, the
 * session is kept for SESSION_KEEP seconds: a submission wakes the workers (rl_delivery_wake),
 * and the next messages of a burst go over this session instead of a new worker paying again
 * for the DNSSEC lookup, the TCP and TLS handshakes, the origin fingerprint and EHLO. A session
 * the peer spoke on or closed meanwhile is not used (dl_session_quiet). Returns false when the
 * worker should close the session and end.
 */
#define SESSION_KEEP 2
static bool next_message(struct rl_delivery *d, struct rl_queue *q, const char *domain,
                         struct dl_session *s, struct rl_q_out *m)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += SESSION_KEEP;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        unsigned long seen = d->wakes;
        pthread_mutex_unlock(&d->mu);
        struct dc_err e = {0};
        bool found = false;
        if (d->stop || !dl_session_quiet(s) ||
            rl_queue_claim(q, domain, rl_now(), m, &found, &e) != DC_OK)
            return false;
        if (found)
            return true;
        pthread_mutex_lock(&d->mu);
        int rc = 0;
        while (d->wakes == seen && !d->stop && rc == 0)
            rc = pthread_cond_timedwait(&d->cv, &d->mu, &until);
        bool again = d->wakes != seen && !d->stop;
        pthread_mutex_unlock(&d->mu);
        if (!again)
            return false;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct rl_delivery *d = w->d;
    const struct rl_config *cfg = d->cfg;
    struct rl_queue *q = NULL;
    struct dc_err e = {0};
    struct dl_session *s = NULL;
    struct dl_resolver r;
    rl_resolver_init(&r, cfg, d->tls);
    struct dl_lookup l;
    memset(&l, 0, sizeof(l));
    struct rl_q_out m;
    memset(&m, 0, sizeof(m));
    struct dc_signet *held = NULL;
    bool found = false;
    if (rl_queue_open(cfg->queue_database, cfg->queue_key_file, &q, &e) != DC_OK) {
        dl_log(LOG_ERR, "deliver domain=%s queue error=\"%s\"", w->domain, e.msg);
        goto out;
    }
    if (rl_queue_claim(q, w->domain, rl_now(), &m, &found, &e) != DC_OK || !found)
        goto out;
    const struct rl_domain *ld = rl_config_domain(cfg, m.origin);
    bool require = ld ? ld->require_dnssec : true;
    if (dl_dns_take(&cfg->dns, &r.dns, &e) != DC_OK) {
        defer(d, q, &m, "dx=-", e.msg);
        goto out;
    }
    unsigned rt = cfg->delivery_reply_timeout ? cfg->delivery_reply_timeout : 120;
    /* the org signet the lookups cached: VRFY rather than SGNT when it is still current */
    struct rl_cache *cache = NULL;
    struct dc_err ce = {0};
    if (rl_cache_open(cfg->cache_database, &cache, &ce) == DC_OK) {
        rl_lookup_hold(cache, w->domain, &r.held_org, &held);
        rl_cache_close(cache);
    }
    enum dl_outcome o = dl_resolve_open(&r, w->domain, require, rt, &l, &s);
    if (s == NULL) {
        char why[600];
        snprintf(why, sizeof(why), "%s: %s", dl_outcome_name(o), l.reason);
        defer(d, q, &m, "dx=-", why);
        /* the destination is unreachable: its other due messages wait as well. Only those
         * due when this starts: each is deferred past `due`, so the loop ends even when it
         * takes longer than retry-min (with rl_now() a deferred message could be due again
         * before the loop ended, and workers went on claiming and deferring the same
         * messages without end, a stop waiting for them) */
        int64_t due = rl_now();
        int64_t next = due + rl_backoff(m.attempts, cfg->retry_min, cfg->retry_max);
        struct rl_q_out o2;
        bool f2 = false;
        while (!d->stop && rl_queue_claim(q, w->domain, due, &o2, &f2, &e) == DC_OK && f2) {
            struct dc_err e2 = {0};
            rl_queue_out_defer(q, o2.id, next > rl_now() ? next : rl_now() + 1, why, &e2);
            rl_count_defer(RL_DEFER_DELIVERY);
            rl_q_out_free(&o2);
        }
        goto out;
    }
    char dx[400];
    dx_fields(dx, sizeof(dx), &l);
    dl_log(LOG_INFO, "deliver domain=%s %s connected", w->domain, dx);
    struct origin_fp ofp = {.origin = ""};
    char why[300];
    struct dc_dmtp_reply rep;
    char line[300];
    snprintf(line, sizeof(line), "EHLO %s", m.origin);
    enum dc_status st = dl_session_cmd(s, &rep, &e, line);
    bool ok = st == DC_OK && rep.code / 100 == 2;
    dc_dmtp_reply_free(&rep);
    if (!ok) {
        defer(d, q, &m, dx, st == DC_OK ? "EHLO refused" : e.msg);
        goto out;
    }
    for (;;) {
        bool known = origin_fp_of(d, &ofp, m.origin, why, sizeof(why));
        if (known)
            ok = send_one(d, q, s, &m, dx, ofp.fp, l.org_fp);
        else
            defer(d, q, &m, dx, why);
        rl_q_out_free(&m);
        if (!known || !ok || d->stop || !next_message(d, q, w->domain, s, &m))
            break;
    }
    dl_session_close(s, ok);
    s = NULL;
out:
    if (s)
        dl_session_close(s, false);
    rl_q_out_free(&m);
    dl_lookup_free(&l);
    dc_signet_free(held);
    dl_dns_give(r.dns);
    rl_queue_close(q);
    pthread_mutex_lock(&d->mu);
    struct active *a = slot(d, w->domain, false);
    if (a)
        a->n--;
    d->total--;
    d->wake = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    free(w);
    return NULL;
}

static void *sched_main(void *arg)
{
    struct rl_delivery *d = arg;
    const struct rl_config *cfg = d->cfg;
    struct rl_queue *q = NULL;
    struct dc_err e = {0};
    char(*doms)[256] = dc_xcalloc(MAX_DOMAINS, 256);
    unsigned counts[MAX_DOMAINS];
    int64_t last_prune = 0;
    while (!d->stop) {
        if (q == NULL && rl_queue_open(cfg->queue_database, cfg->queue_key_file, &q, &e) != DC_OK) {
            dl_log(LOG_ERR, "scheduler queue error=\"%s\"", e.msg);
            q = NULL;
        }
        if (q != NULL) {
            int64_t now = rl_now();
            unsigned ex = rl_queue_expire(q, now, cfg->queue_lifetime);
            if (ex)
                dl_log(LOG_WARNING, "scheduler expired=%u", ex);
            rl_count_message(RL_ROUTE_BOUNCED, ex);
            if (now - last_prune > 3600) {
                rl_queue_prune(q, now, 2 * cfg->queue_lifetime);
                rl_shared_prune(now - 2 * (int64_t)cfg->queue_lifetime);
                last_prune = now;
            }
            size_t nd = rl_queue_due_domains(q, now, doms, counts, MAX_DOMAINS);
            pthread_mutex_lock(&d->mu);
            for (size_t i = 0; i < nd && !d->stop; i++) {
                struct active *a = slot(d, doms[i], true);
                if (a == NULL)
                    break;
                unsigned want = counts[i] < cfg->destination_concurrency
                                    ? counts[i] : cfg->destination_concurrency;
                while (a->n < want && d->total < cfg->delivery_workers) {
                    struct worker *w = dc_xcalloc(1, sizeof(*w));
                    w->d = d;
                    snprintf(w->domain, sizeof(w->domain), "%s", doms[i]);
                    pthread_t t;
                    pthread_attr_t at;
                    pthread_attr_init(&at);
                    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
                    int rc = pthread_create(&t, &at, worker_main, w);
                    pthread_attr_destroy(&at);
                    if (rc != 0) {
                        free(w);
                        break;
                    }
                    a->n++;
                    d->total++;
                }
            }
            pthread_mutex_unlock(&d->mu);
        }
        pthread_mutex_lock(&d->mu);
        if (!d->wake && !d->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += cfg->queue_scan_interval;
            pthread_cond_timedwait(&d->cv, &d->mu, &ts);
        }
        d->wake = false;
        pthread_mutex_unlock(&d->mu);
    }
    free(doms);
    rl_queue_close(q);
    return NULL;
}

enum dc_status rl_delivery_start(const struct rl_config *cfg, SSL_CTX *client_tls,
                                 struct rl_delivery **out, struct dc_err *err)
{
    struct rl_queue *q = NULL;
    enum dc_status s = rl_queue_open(cfg->queue_database, cfg->queue_key_file, &q, err);
    if (s == DC_OK)
        s = rl_queue_recover(q, err);
    rl_queue_close(q);
    if (s != DC_OK)
        return s;
    struct rl_delivery *d = dc_xcalloc(1, sizeof(*d));
    d->cfg = cfg;
    d->tls = client_tls;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->keep = kv_keep_new(cfg->keyvault_socket, cfg->delivery_workers);
    if (pthread_create(&d->sched, NULL, sched_main, d) != 0) {
        kv_keep_free(d->keep);
        free(d);
        return dc_fail(err, DC_ERR_IO, "cannot start the delivery scheduler");
    }
    *out = d;
    return DC_OK;
}

void rl_delivery_stop(struct rl_delivery *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->sched, NULL);
    pthread_mutex_lock(&d->mu);
    while (d->total > 0)
        pthread_cond_wait(&d->cv, &d->mu);
    pthread_mutex_unlock(&d->mu);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    kv_keep_free(d->keep);
    free(d);
}
