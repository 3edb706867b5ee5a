/*
 * rl_lookup - cached resolution and the lookup service. See rl_lookup.h and LOOKUP.md.
 */
#include "rl_lookup.h"
#include "rl_metrics.h"
#include "dl_log.h"

#include "dc_dmtp.h"

#include "lookup_proto.h"
#include "rl_workers.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REQ_TIMEOUT_MS 5000
/* a lookup thread with nothing to do for this long ends (a burst keeps them busy) */
#define WORKER_IDLE_MS 10000

static bool fresh_signet(struct rl_cache *c, const char *name, int64_t now,
                         struct dc_signet **sig, char *fp)
{
    int64_t exp = 0;
    if (rl_cache_signet_get(c, name, sig, fp, &exp, NULL) != DC_OK)
        return false;
    if (exp > now)
        return true;
    dc_signet_free(*sig);
    *sig = NULL;
    return false;
}

static enum dl_outcome from_cache(struct rl_cache *c, const char *name, const char *domain,
                                  bool user, bool require, int64_t now, struct dl_lookup *l)
{
    struct rl_cache_record rec;
    if (rl_cache_record_get(c, domain, &rec, NULL) != DC_OK)
        return DL_OUT_TEMPFAIL;
    enum dl_outcome o = DL_OUT_TEMPFAIL; /* "not answerable from cache" */
    if (rec.expires > now && rec.text[0] == '\0') {
        /* a fresh "no record" (resolve_and_store): not a DIME domain, as when it was seen */
        l->record_sec = (enum dl_dns_sec)rec.dnssec;
        snprintf(l->record_name, sizeof(l->record_name), "_dime.%s (cached)", domain);
        o = l->outcome = DL_OUT_NOT_DIME;
        snprintf(l->reason, sizeof(l->reason), "not a DIME domain: no record at _dime.%s or "
                 "_dx.%s (cached for %lld more seconds, %s)", domain, domain,
                 (long long)(rec.expires - now),
                 rec.dnssec == DL_DNS_SECURE ? "proven by DNSSEC" : "answer not signed");
    } else if (rec.expires > now && (rec.dnssec == DL_DNS_SECURE || !require) &&
        dc_mrec_parse_text(rec.text, &l->rec, NULL) == DC_OK &&
        fresh_signet(c, domain, now, &l->org, l->org_fp) &&
        (!user || fresh_signet(c, name, now, &l->user, l->user_fp))) {
        l->record_text = rec.text;
        rec.text = NULL;
        l->record_sec = (enum dl_dns_sec)rec.dnssec;
        l->record_ttl = (uint32_t)(rec.expires - now);
        snprintf(l->record_name, sizeof(l->record_name), "_dime.%s (cached)", domain);
        l->org_state = DC_SS_CRYPTO; /* verified when it was stored */
        l->user_state = l->user ? DC_SS_CRYPTO : DC_SS_MALFORMED;
        o = rec.dnssec == DL_DNS_SECURE ? DL_OUT_SECURE : DL_OUT_INSECURE;
        l->outcome = o;
    }
    rl_cache_record_free(&rec);
    return o;
}

/* A token of a reason that may name someone: an address, a host or domain name, an IP
 * address. Local paths (from the configuration) are kept. */
static bool names_someone(const char *t, size_t n)
{
    if (n == 0 || t[0] == '/')
        return false;
    size_t colons = 0;
    bool hex = true;
    for (size_t i = 0; i < n; i++) {
        char ch = t[i];
        if (ch == '@')
            return true;
        if (ch == '.' && i > 0 && i + 1 < n && isalnum((unsigned char)t[i - 1]) &&
            isalnum((unsigned char)t[i + 1]))
            return true;
        colons += ch == ':';
        hex = hex && (isxdigit((unsigned char)ch) || ch == ':' || ch == '.');
    }
    return hex && colons >= 2;
}

void rl_lookup_log_reason(const char *reason, char *out, size_t cap)
{
    struct dc_buf b;
    dc_buf_init(&b);
    for (const char *p = reason; *p != '\0';) {
        size_t n = strcspn(p, " \t()[]<>\"',;=");
        size_t core = n;
        while (core > 0 && (p[core - 1] == '.' || p[core - 1] == ':'))
            core--;
        if (names_someone(p, core)) {
            dc_buf_append(&b, "<name>", 6);
            dc_buf_append(&b, p + core, n - core);
        } else {
            dc_buf_append(&b, p, n);
        }
        p += n;
        if (*p != '\0') {
            dc_buf_putc(&b, *p == '"' ? '\'' : (unsigned char)*p < 0x20 ? ' ' : (uint8_t)*p);
            p++;
        }
    }
    snprintf(out, cap, "%.*s", (int)b.len, b.len ? (const char *)b.data : "");
    dc_buf_free(&b);
}

/* Single flight: a name being resolved by one thread is not resolved by another at the same
 * time; the second waits for the first and then reads the cache. Only once: when the first
 * could not store an answer, the waiters resolve each for itself (no queue of timeouts). */
struct flight {
    struct flight *next;
    const char *name;
};
static pthread_mutex_t flights_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t flights_done = PTHREAD_COND_INITIALIZER;
static struct flight *flights;

static bool in_flight(const char *name)
{
    for (struct flight *f = flights; f != NULL; f = f->next)
        if (strcasecmp(f->name, name) == 0)
            return true;
    return false;
}

/* true: f was registered (leave with flight_leave); false: waited for another thread. */
static bool flight_enter(struct flight *f, const char *name)
{
    pthread_mutex_lock(&flights_mu);
    bool waited = false;
    while (in_flight(name)) {
        waited = true;
        pthread_cond_wait(&flights_done, &flights_mu);
    }
    if (!waited) {
        f->name = name;
        f->next = flights;
        flights = f;
    }
    pthread_mutex_unlock(&flights_mu);
    return !waited;
}

static void flight_leave(struct flight *f)
{
    pthread_mutex_lock(&flights_mu);
    for (struct flight **pp = &flights; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    pthread_cond_broadcast(&flights_done);
    pthread_mutex_unlock(&flights_mu);
}

/* Threads resolving (or waiting for a resolution of) names of one domain, all names
 * together: a domain whose DX hosts are slow, named in many messages or lookups at once, would
 * otherwise hold every worker until lookup-deadline (lookup-domain-concurrency). */
struct domain_use {
    struct domain_use *next;
    char domain[DC_DMTP_NAME_MAX + 1];
    unsigned n;
};
static struct domain_use *domains_used; /* under flights_mu */

static bool domain_take(const char *domain, unsigned limit)
{
    pthread_mutex_lock(&flights_mu);
    struct domain_use *d = domains_used;
    while (d != NULL && strcasecmp(d->domain, domain) != 0)
        d = d->next;
    bool ok = limit == 0 || d == NULL || d->n < limit;
    if (ok && d == NULL) {
        d = dc_xcalloc(1, sizeof(*d));
        snprintf(d->domain, sizeof(d->domain), "%s", domain);
        d->next = domains_used;
        domains_used = d;
    }
    if (ok)
        d->n++;
    pthread_mutex_unlock(&flights_mu);
    return ok;
}

static void domain_give(const char *domain)
{
    pthread_mutex_lock(&flights_mu);
    for (struct domain_use **pp = &domains_used; *pp != NULL; pp = &(*pp)->next) {
        struct domain_use *d = *pp;
        if (strcasecmp(d->domain, domain) == 0) {
            if (--d->n == 0) {
                *pp = d->next;
                free(d);
            }
            break;
        }
    }
    pthread_mutex_unlock(&flights_mu);
}

static enum dl_outcome resolve_and_store(struct dl_resolver *r, struct rl_cache *c,
                                         const char *name, const char *domain, bool user,
                                         bool require, int64_t now, struct dl_lookup *l);

/* A cache that did not answer (PostgreSQL away): a tempfail, as when it does not open. */
static enum dl_outcome cache_failed(struct dl_lookup *l)
{
    snprintf(l->reason, sizeof(l->reason), "signet cache unavailable (the database did not "
             "answer)");
    return l->outcome = DL_OUT_TEMPFAIL;
}

enum dl_outcome rl_lookup_cached(struct dl_resolver *r, struct rl_cache *c, const char *name,
                                 bool require, struct dl_lookup *l, bool *cached)
{
    memset(l, 0, sizeof(*l));
    *cached = false;
    struct dc_err e = {0};
    if (dc_dmtp_check_name(name, &e) != DC_OK) {
        snprintf(l->reason, sizeof(l->reason), "bad name: %s", e.msg);
        return l->outcome = DL_OUT_REFUSED;
    }
    const char *at = strrchr(name, '@');
    const char *domain = at ? at + 1 : name;
    int64_t now = time(NULL);
    enum dl_outcome o = from_cache(c, name, domain, at != NULL, require, now, l);
    if (o != DL_OUT_TEMPFAIL) {
        *cached = true;
        return o;
    }
    dl_lookup_free(l);
    if (rl_cache_failed(c))
        return cache_failed(l);

    if (!domain_take(domain, rl_resolver_cfg(r)->lookup_domain_concurrency)) {
        rl_count_limit(RL_LIMIT_LOOKUP_DOMAIN);
        snprintf(l->reason, sizeof(l->reason), "busy: %u lookups in %.100s at once "
                 "(lookup-domain-concurrency)", rl_resolver_cfg(r)->lookup_domain_concurrency, domain);
        return l->outcome = DL_OUT_TEMPFAIL;
    }
    /* again once in flight (or after waiting): a resolution that ended between the first
     * look and now has filled the cache */
    struct flight f;
    bool leader = flight_enter(&f, name);
    now = time(NULL);
    o = from_cache(c, name, domain, at != NULL, require, now, l);
    if (o != DL_OUT_TEMPFAIL) {
        *cached = true;
    } else {
        dl_lookup_free(l);
        o = resolve_and_store(r, c, name, domain, at != NULL, require, now, l);
    }
    if (leader)
        flight_leave(&f);
    domain_give(domain);
    return o;
}

uint32_t rl_lookup_cache_ttl(uint32_t dns_ttl, const struct dc_mrec *rec)
{
    uint32_t ttl = dns_ttl < RL_RECORD_TTL_FLOOR ? RL_RECORD_TTL_FLOOR : dns_ttl;
    if (rec != NULL && rec->has_ttl && rec->ttl < ttl)
        ttl = rec->ttl < RL_RECORD_OWN_TTL_FLOOR ? RL_RECORD_OWN_TTL_FLOOR : rec->ttl;
    return ttl;
}

void rl_lookup_hold(struct rl_cache *c, const char *name, struct dl_held *h,
                    struct dc_signet **owned)
{
    int64_t exp;
    memset(h, 0, sizeof(*h));
    *owned = NULL;
    if (rl_cache_signet_get(c, name, owned, h->fp, &exp, NULL) != DC_OK) {
        dc_signet_free(*owned);
        *owned = NULL;
    }
    h->sig = *owned;
}

static enum dl_outcome resolve_and_store(struct dl_resolver *r, struct rl_cache *c,
                                         const char *name, const char *domain, bool user,
                                         bool require, int64_t now, struct dl_lookup *l)
{
    struct dc_err e = {0};
    enum dl_outcome o;
    char known[DC_FP_B64_LEN + 1] = "";
    if (r->dns == NULL && dl_dns_take(&rl_resolver_cfg(r)->dns, &r->dns, &e) != DC_OK) {
        snprintf(l->reason, sizeof(l->reason), "resolver: %s", e.msg);
        return l->outcome = DL_OUT_TEMPFAIL;
    }
    /* what the cache still holds (expired, or not all fresh): the resolution asks the DX
     * with VRFY whether it is current before fetching it; the user's fingerprint is also
     * where a changed signet's custody chain must start */
    struct dc_signet *horg = NULL, *huser = NULL;
    rl_lookup_hold(c, domain, &r->held_org, &horg);
    if (user) {
        rl_lookup_hold(c, name, &r->held_user, &huser);
        snprintf(known, sizeof(known), "%s", r->held_user.fp);
    }
    /* a cache that did not answer may hold the fingerprint seen last: no resolution without */
    bool failed = rl_cache_failed(c);
    if (!failed)
        o = dl_resolve(r, name, require, known[0] ? known : NULL, l);
    memset(&r->held_org, 0, sizeof(r->held_org));
    memset(&r->held_user, 0, sizeof(r->held_user));
    dc_signet_free(horg);
    dc_signet_free(huser);
    if (failed)
        return cache_failed(l);
    if (o == DL_OUT_SECURE || o == DL_OUT_INSECURE) {
        uint32_t ttl = rl_lookup_cache_ttl(l->record_ttl, l->rec);
        int64_t sexp = now + (ttl < rl_resolver_cfg(r)->signet_cache_ttl ? ttl : rl_resolver_cfg(r)->signet_cache_ttl);
        int64_t dime_until = l->rec->has_exp ? now + (int64_t)l->rec->exp_days * 86400 : 0;
        /* a cache that cannot be written costs speed, not correctness */
        if (rl_cache_record_put(c, domain, l->record_text, (int)l->record_sec, now + ttl,
                                dime_until, &e) != DC_OK ||
            rl_cache_signet_put(c, domain, l->org, l->org_fp, sexp, &e) != DC_OK ||
            (l->user != NULL &&
             rl_cache_signet_put(c, name, l->user, l->user_fp, sexp, &e) != DC_OK))
            dl_log(LOG_ERR, "cache write failed: %s", e.msg);
    } else if (o == DL_OUT_NOT_DIME) {
        struct rl_cache_record rec;
        if (rl_cache_record_get(c, domain, &rec, NULL) == DC_OK && rec.dime_until > now) {
            snprintf(l->reason, sizeof(l->reason), "the DIME record of %.100s disappeared, but "
                     "its exp= keeps the domain DIME-required for %lld more seconds", domain,
                     (long long)(rec.dime_until - now));
            o = l->outcome = DL_OUT_TEMPFAIL;
        } else if (rl_resolver_cfg(r)->not_dime_cache_ttl > 0 && l->record_ttl > 0) {
            /* the absence is believed for the answers' TTL (bounded): another lookup of the
             * same non-DIME domain, common for mail to the legacy world, asks no DNS; an
             * empty text marks the entry (from_cache) */
            uint32_t ttl = l->record_ttl < rl_resolver_cfg(r)->not_dime_cache_ttl
                               ? l->record_ttl : rl_resolver_cfg(r)->not_dime_cache_ttl;
            if (rl_cache_record_put(c, domain, "", (int)l->record_sec, now + ttl, 0, &e) !=
                DC_OK)
                dl_log(LOG_ERR, "cache write failed: %s", e.msg);
        }
        rl_cache_record_free(&rec);
    }
    return o;
}

/* ---- the service ---- */

struct rl_lookupd {
    const struct rl_config *cfg;
    SSL_CTX *tls;
    int fd;
    /* a cache connection open from start to stop: the cache and its key are created here,
     * before any worker runs, and the workers' closes are never the last one (which makes
     * SQLite checkpoint and delete the WAL, for the next open to create it again) */
    struct rl_cache *anchor;
    atomic_uint running;
    struct rl_workers *pool;
    pthread_mutex_t mu;
    pthread_cond_t idle;
};

struct job {
    struct rl_lookupd *l;
    int fd;
};

/* The request line into buf (capacity cap), *len bytes without its LF (parsed by
 * lookup_req_parse); false on timeout, end of input or no LF within cap - 1 bytes. */
static bool read_line(int fd, char *buf, size_t cap, size_t *len)
{
    size_t n = 0;
    while (n + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, REQ_TIMEOUT_MS) != 1)
            return false;
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            return false;
        n += (size_t)r;
        char *nl = memchr(buf, '\n', n);
        if (nl != NULL) {
            *nl = '\0';
            *len = (size_t)(nl - buf);
            return true;
        }
    }
    return false;
}

/* Whether fp is org's full or crypto fingerprint. */
static bool org_is(const struct dc_signet *org, const char *fp)
{
    char full[DC_FP_B64_LEN + 1], crypto[DC_FP_B64_LEN + 1];
    return dc_signet_fp(org, full, crypto, NULL) == DC_OK &&
           (strcmp(crypto, fp) == 0 || strcmp(full, fp) == 0);
}

enum dl_outcome rl_lookup_named_org(struct dl_resolver *rv, const char *name, const char *fp,
                                    bool require_dnssec, enum dl_outcome o, struct dl_lookup *l)
{
    if (org_is(l->org, fp))
        return o;
    struct dl_lookup named;
    struct dc_err e = {0};
    if (rv->dns == NULL && dl_dns_take(&rl_resolver_cfg(rv)->dns, &rv->dns, &e) != DC_OK) {
        snprintf(l->reason, sizeof(l->reason), "resolver: %s", e.msg);
        return DL_OUT_TEMPFAIL;
    }
    rv->org_fp = fp;
    o = dl_resolve(rv, name, require_dnssec, NULL, &named);
    rv->org_fp = NULL;
    if (o == DL_OUT_SECURE || o == DL_OUT_INSECURE) {
        dl_lookup_free(l);
        *l = named;
    } else {
        snprintf(l->reason, sizeof(l->reason), "%s", named.reason);
        dl_lookup_free(&named);
    }
    return o;
}

static void answer(struct rl_lookupd *ld, int fd)
{
    char req[LOOKUP_REQ_MAX + 1];
    size_t reqlen = 0;
    struct dc_buf out;
    dc_buf_init(&out);
    struct lookup_req lr;
    const char *name = lr.name, *local = lr.local;
    struct dc_err rerr = {0};
    if (!read_line(fd, req, sizeof(req), &reqlen) ||
        lookup_req_parse(req, reqlen, &lr, &rerr) != DC_OK) {
        lookup_put(&out, "outcome", "error");
        lookup_put(&out, "reason", rerr.msg[0] ? rerr.msg
                                                  : "request must be: LOOKUP <name> "
                                                    "[<local-domain>] within 600 bytes");
    } else {
        uint64_t start_us = dl_metrics_now_us();
        const struct rl_domain *d = local[0] ? rl_config_domain(ld->cfg, local) : NULL;
        bool require = d != NULL ? d->require_dnssec : true;
        struct dl_resolver r;
        rl_resolver_init(&r, ld->cfg, ld->tls);
        struct rl_cache *c = NULL;
        struct dc_err e = {0};
        struct dl_lookup l;
        memset(&l, 0, sizeof(l));
        bool cached = false;
        enum dl_outcome o;
        if (local[0] && d == NULL) {
            o = DL_OUT_REFUSED;
            snprintf(l.reason, sizeof(l.reason), "%.100s is not a local domain", local);
        } else if (rl_cache_open(ld->cfg->cache_database, &c, &e) != DC_OK) {
            o = DL_OUT_TEMPFAIL;
            snprintf(l.reason, sizeof(l.reason), "%s", e.msg);
        } else {
            o = rl_lookup_cached(&r, c, name, require, &l, &cached);
            if (lr.org_fp[0] != '\0' && (o == DL_OUT_SECURE || o == DL_OUT_INSECURE) &&
                !org_is(l.org, lr.org_fp)) {
                o = rl_lookup_named_org(&r, name, lr.org_fp, require, o, &l);
                cached = false;
            }
        }
        lookup_put(&out, "outcome", dl_outcome_name(o));
        lookup_put(&out, "cached", cached ? "yes" : "no");
        if (l.record_text != NULL) {
            lookup_put(&out, "dnssec", dl_dns_sec_name(l.record_sec));
            lookup_put(&out, "record", l.record_text);
        }
        if (l.rec != NULL)
            lookup_put(&out, "policy", dc_mrec_policy_name(l.rec->policy));
        if (l.inherited_from[0] != '\0')
            lookup_put(&out, "inherited-from", l.inherited_from);
        if (l.no_user_signet)
            lookup_put(&out, "no-user-signet", "yes");
        if (l.no_such_user)
            lookup_put(&out, "no-such-user", "yes");
        if (o == DL_OUT_SECURE || o == DL_OUT_INSECURE) {
            char *b = dc_signet_b64(l.org);
            lookup_put(&out, "org-fp", l.org_fp);
            lookup_put(&out, "org-signet", b);
            free(b);
            if (l.user != NULL) {
                b = dc_signet_b64(l.user);
                lookup_put(&out, "user-fp", l.user_fp);
                lookup_put(&out, "user-signet", b);
                free(b);
            }
            if (l.custody_len > 0) {
                char num[32];
                snprintf(num, sizeof(num), "%zu", l.custody_len);
                lookup_put(&out, "custody", num);
            }
        } else {
            lookup_put(&out, "reason", l.reason);
        }
        rl_count_lookup(o, cached, start_us);
        if (o == DL_OUT_SECURE || o == DL_OUT_INSECURE) {
            dl_log(LOG_INFO, "lookup outcome=%s cached=%s", dl_outcome_name(o),
                   cached ? "yes" : "no");
        } else {
            char why[sizeof(l.reason)];
            rl_lookup_log_reason(l.reason, why, sizeof(why));
            dl_log(LOG_INFO, "lookup outcome=%s cached=%s reason=\"%s\"", dl_outcome_name(o),
                   cached ? "yes" : "no", why);
        }
        dl_lookup_free(&l);
        rl_cache_close(c);
        dl_dns_give(r.dns);
    }
    dc_buf_putc(&out, '\n');
    size_t off = 0;
    while (off < out.len) {
        ssize_t w = write(fd, out.data + off, out.len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    dc_buf_free(&out);
}

static void run_job(void *ctx, void *arg)
{
    struct rl_lookupd *l = ctx;
    struct job *j = arg;
    answer(l, j->fd);
    close(j->fd);
    free(j);
    pthread_mutex_lock(&l->mu);
    if (atomic_fetch_sub(&l->running, 1) == 1)
        pthread_cond_broadcast(&l->idle);
    pthread_mutex_unlock(&l->mu);
}

enum dc_status rl_lookupd_start(const struct rl_config *cfg, SSL_CTX *client_tls, int fd,
                                struct rl_lookupd **out, struct dc_err *err)
{
    struct rl_lookupd *l = dc_xcalloc(1, sizeof(*l));
    l->cfg = cfg;
    l->tls = client_tls;
    l->fd = fd;
    struct dc_err e = {0};
    /* the lookups' and the inbound checks' connections are kept between jobs */
    rl_cache_reuse(cfg->cache_database, true);
    enum dc_status s = rl_cache_open(cfg->cache_database, &l->anchor, &e);
    if (s == DC_ERR_KEY) { /* another key than the domain's shared cache: never serve */
        rl_cache_reuse(cfg->cache_database, false);
        free(l);
        return dc_fail(err, s, "%s", e.msg);
    }
    if (s != DC_OK)
        dl_log(LOG_ERR, "lookup cache not opened at start (each lookup tries again): %s", e.msg);
    atomic_init(&l->running, 0);
    l->pool = rl_workers_new(run_job, l, WORKER_IDLE_MS);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->idle, NULL);
    *out = l;
    return DC_OK;
}

int rl_lookupd_fd(const struct rl_lookupd *l)
{
    return l->fd;
}

void rl_lookupd_accept(struct rl_lookupd *l)
{
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (atomic_load(&l->running) >= l->cfg->lookup_workers) {
            static const char busy[] = "outcome=tempfail\nreason=busy\n\n";
            rl_count_limit(RL_LIMIT_LOOKUP_WORKERS);
            rl_count_lookup(DL_OUT_TEMPFAIL, false, dl_metrics_now_us());
            dl_log(LOG_WARNING,
                   "lookup outcome=tempfail cached=no reason=\"busy: %u lookups running "
                   "(lookup-workers)\"",
                   l->cfg->lookup_workers);
            if (write(fd, busy, sizeof(busy) - 1) < 0)
                dl_log(LOG_ERR, "lookup busy reply failed");
            close(fd);
            continue;
        }
        struct job *j = dc_xcalloc(1, sizeof(*j));
        j->l = l;
        j->fd = fd;
        atomic_fetch_add(&l->running, 1);
        if (!rl_workers_run(l->pool, j)) {
            atomic_fetch_sub(&l->running, 1);
            close(fd);
            free(j);
        }
    }
}

void rl_lookupd_stop(struct rl_lookupd *l)
{
    if (l == NULL)
        return;
    close(l->fd);
    unlink(l->cfg->lookup_socket);
    pthread_mutex_lock(&l->mu);
    while (atomic_load(&l->running) > 0)
        pthread_cond_wait(&l->idle, &l->mu);
    pthread_mutex_unlock(&l->mu);
    rl_workers_free(l->pool);
    rl_cache_close(l->anchor);
    rl_cache_reuse(l->cfg->cache_database, false);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->idle);
    free(l);
}
