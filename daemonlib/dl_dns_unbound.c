/*
 * dl_dns_unbound - the dl_dns interface over libunbound's asynchronous API (a resolver
 * thread; ub_fd() becomes readable when answers are ready, ub_process() delivers them).
 *
 * Each worker thread has its own context, but libunbound (1.17) keeps process-wide state that
 * a context's creation, its first query (which finalizes it and starts its thread) and its
 * deletion change without a lock of their own: log_init() initializes the log mutex,
 * listen_setup_locks() / listen_desetup_locks() initialize and destroy global mutexes (the
 * delete of one context destroyed them while another's first query initialized them: TSan,
 * bench/dmtp). Those three steps run under setup_mu here, one thread at a time; queries and
 * answers do not take it.
 */
#include "dl_dns.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>

struct ub_query {
    struct ub_query *next;
    struct dl_ub *owner;
    int id;
    dl_dns_cb cb;
    void *arg;
};

struct dl_ub {
    struct dl_dns base;
    struct ub_ctx *ctx;
    struct ub_query *pending;
    size_t npending;
    bool started; /* the first query finalized the context (under setup_mu) */
};

static pthread_mutex_t setup_mu = PTHREAD_MUTEX_INITIALIZER;

static void unlink_query(struct dl_ub *u, struct ub_query *q)
{
    for (struct ub_query **pp = &u->pending; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == q) {
            *pp = q->next;
            u->npending--;
            return;
        }
    }
}

static void classify(int err, struct ub_result *r, struct dl_dns_answer *a)
{
    memset(a, 0, sizeof(*a));
    if (err != 0) {
        a->sec = DL_DNS_TEMPFAIL;
        snprintf(a->why, sizeof(a->why), "resolver error: %s", ub_strerror(err));
        return;
    }
    if (r->bogus) {
        a->sec = DL_DNS_BOGUS;
        snprintf(a->why, sizeof(a->why), "%s", r->why_bogus ? r->why_bogus : "bogus");
        return;
    }
    /* NOERROR and NXDOMAIN are answers; anything else (SERVFAIL, REFUSED...) is not */
    if (r->rcode != 0 && r->rcode != 3) {
        a->sec = DL_DNS_TEMPFAIL;
        snprintf(a->why, sizeof(a->why), "DNS rcode %d%s", r->rcode,
                 r->rcode == 2 ? " (SERVFAIL)" : "");
        return;
    }
    a->sec = r->secure ? DL_DNS_SECURE : DL_DNS_INSECURE;
    a->nxdomain = r->nxdomain != 0;
    a->nodata = r->nxdomain || !r->havedata;
    a->ttl = r->ttl > 0 ? (uint32_t)r->ttl : 0;
    if (a->nodata)
        return;
    for (size_t i = 0; r->data[i] != NULL && a->n < DL_DNS_MAX_RR; i++) {
        size_t len = (size_t)r->len[i];
        a->rr[a->n].data = dc_xmalloc(len ? len : 1);
        memcpy(a->rr[a->n].data, r->data[i], len);
        a->rr[a->n].len = len;
        a->n++;
    }
}

static void ub_done(void *arg, int err, struct ub_result *r)
{
    struct ub_query *q = arg;
    struct dl_dns_answer a;
    classify(err, r, &a);
    if (r != NULL)
        ub_resolve_free(r);
    unlink_query(q->owner, q);
    q->cb(q->arg, &a);
    dl_dns_answer_free(&a);
    free(q);
}

static enum dc_status ub_query_fn(struct dl_dns *d, const char *name, int type, dl_dns_cb cb,
                                  void *arg, struct dc_err *err)
{
    struct dl_ub *u = (struct dl_ub *)d;
    struct ub_query *q = dc_xcalloc(1, sizeof(*q));
    q->owner = u;
    q->cb = cb;
    q->arg = arg;
    if (!u->started)
        pthread_mutex_lock(&setup_mu);
    int r = ub_resolve_async(u->ctx, name, type, 1 /* IN */, q, ub_done, &q->id);
    if (!u->started) {
        u->started = r == 0;
        pthread_mutex_unlock(&setup_mu);
    }
    if (r != 0) {
        free(q);
        return dc_fail(err, DC_ERR_IO, "ub_resolve_async %.100s: %s", name, ub_strerror(r));
    }
    q->next = u->pending;
    u->pending = q;
    u->npending++;
    return DC_OK;
}

static int ub_fd_fn(struct dl_dns *d)
{
    return ub_fd(((struct dl_ub *)d)->ctx);
}

static enum dc_status ub_process_fn(struct dl_dns *d, struct dc_err *err)
{
    int r = ub_process(((struct dl_ub *)d)->ctx);
    if (r != 0)
        return dc_fail(err, DC_ERR_IO, "ub_process: %s", ub_strerror(r));
    return DC_OK;
}

static size_t ub_pending_fn(struct dl_dns *d)
{
    return ((struct dl_ub *)d)->npending;
}

static void ub_cancel_all(struct dl_dns *d)
{
    struct dl_ub *u = (struct dl_ub *)d;
    while (u->pending != NULL) {
        struct ub_query *q = u->pending;
        ub_cancel(u->ctx, q->id);
        unlink_query(u, q);
        struct dl_dns_answer a;
        memset(&a, 0, sizeof(a));
        a.sec = DL_DNS_TEMPFAIL;
        snprintf(a.why, sizeof(a.why), "DNS timeout");
        q->cb(q->arg, &a);
        free(q);
    }
}

static void ub_free_fn(struct dl_dns *d)
{
    struct dl_ub *u = (struct dl_ub *)d;
    while (u->pending != NULL) {
        struct ub_query *q = u->pending;
        ub_cancel(u->ctx, q->id);
        unlink_query(u, q);
        free(q);
    }
    pthread_mutex_lock(&setup_mu);
    ub_ctx_delete(u->ctx);
    pthread_mutex_unlock(&setup_mu);
    free(u);
}

static const struct dl_dns_ops ub_ops = {
    .query = ub_query_fn,
    .fd = ub_fd_fn,
    .process = ub_process_fn,
    .pending = ub_pending_fn,
    .cancel_all = ub_cancel_all,
    .free = ub_free_fn,
};

/* "zone addr[@port]" -> ub_ctx_set_stub */
static int add_stub(struct ub_ctx *ctx, const char *spec)
{
    const char *sp = strchr(spec, ' ');
    if (sp == NULL)
        return UB_SYNTAX;
    char *zone = dc_xstrndup(spec, (size_t)(sp - spec));
    while (*sp == ' ')
        sp++;
    int r = ub_ctx_set_stub(ctx, zone, sp, 0);
    free(zone);
    return r;
}

enum dc_status dl_dns_unbound_new(const struct dl_dns_conf *c, struct dl_dns **out,
                                  struct dc_err *err)
{
    *out = NULL;
    pthread_mutex_lock(&setup_mu);
    struct ub_ctx *ctx = ub_ctx_create();
    pthread_mutex_unlock(&setup_mu);
    if (ctx == NULL)
        return dc_fail(err, DC_ERR_NOMEM, "ub_ctx_create failed");
    const char *what = NULL, *arg = NULL;
    int r = ub_ctx_async(ctx, 1); /* a thread, not a forked helper */
    if (r != 0)
        what = "async";
    for (size_t i = 0; r == 0 && i < c->n_local_zones; i++) {
        arg = c->local_zones[i];
        r = ub_ctx_set_option(ctx, "local-zone:", arg);
        what = "dns-local-zone";
    }
    if (r == 0 && c->trust_anchor_file != NULL && c->trust_anchor_file[0] != '\0') {
        arg = c->trust_anchor_file;
        what = "trust-anchor-file";
        r = ub_ctx_add_ta_file(ctx, arg);
    }
    for (size_t i = 0; r == 0 && i < c->n_trust_anchors; i++) {
        arg = c->trust_anchors[i];
        what = "trust-anchor";
        r = ub_ctx_add_ta(ctx, arg);
    }
    for (size_t i = 0; r == 0 && i < c->n_stubs; i++) {
        arg = c->stubs[i];
        what = "dns-stub";
        r = add_stub(ctx, arg);
    }
    for (size_t i = 0; r == 0 && i < c->n_forwarders; i++) {
        arg = c->forwarders[i];
        what = "dns-forwarder";
        r = ub_ctx_set_fwd(ctx, arg);
    }
    if (r != 0) {
        pthread_mutex_lock(&setup_mu);
        ub_ctx_delete(ctx);
        pthread_mutex_unlock(&setup_mu);
        return dc_fail(err, DC_ERR_FIELD, "%s %.100s: %s", what, arg ? arg : "",
                       ub_strerror(r));
    }
    struct dl_ub *u = dc_xcalloc(1, sizeof(*u));
    u->base.ops = &ub_ops;
    u->ctx = ctx;
    *out = &u->base;
    return DC_OK;
}

/* ---- kept contexts (dl_dns.h) ---- */

static pthread_mutex_t keep_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dl_dns *kept[DL_DNS_KEEP_MAX];
static size_t nkept;

enum dc_status dl_dns_take(const struct dl_dns_conf *conf, struct dl_dns **out,
                           struct dc_err *err)
{
    pthread_mutex_lock(&keep_mu);
    *out = nkept > 0 ? kept[--nkept] : NULL;
    pthread_mutex_unlock(&keep_mu);
    return *out != NULL ? DC_OK : dl_dns_unbound_new(conf, out, err);
}

void dl_dns_give(struct dl_dns *d)
{
    if (d == NULL)
        return;
    if (d->ops->pending(d) == 0) {
        pthread_mutex_lock(&keep_mu);
        bool room = nkept < DL_DNS_KEEP_MAX;
        if (room)
            kept[nkept++] = d;
        pthread_mutex_unlock(&keep_mu);
        if (room)
            return;
    }
    dl_dns_free(d);
}

void dl_dns_drain(void)
{
    pthread_mutex_lock(&keep_mu);
    while (nkept > 0)
        dl_dns_free(kept[--nkept]);
    pthread_mutex_unlock(&keep_mu);
}
