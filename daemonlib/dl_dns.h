/*
 * dl_dns - DNS lookups for the relay and dime-client, behind a small interface so that the DNSSEC resolver
 * (dl_dns_unbound.c, libunbound) can be replaced by a fake in tests.
 *
 * Every answer is classified by DNSSEC state (PROFILE.md section 3):
 *   DL_DNS_SECURE    the answer (data, NXDOMAIN or NODATA) validated to a trust anchor
 *   DL_DNS_INSECURE  provably unsigned, or no trust anchor covers the name
 *   DL_DNS_BOGUS     validation failed; why holds the resolver's explanation. Data that may
 *                    come with a bogus answer is never handed out.
 *   DL_DNS_TEMPFAIL  SERVFAIL, timeout, network error: try again later
 *
 * Queries are asynchronous: dl_dns_query() registers a callback, and the owner's event loop
 * watches dl_dns_fd() and calls dl_dns_process() when it is readable. dl_dns_wait() runs that
 * loop for callers that have nothing else to do (the command-line tool, a worker thread).
 * Answers are cached by the resolver for their TTL.
 */
#ifndef DL_DNS_H
#define DL_DNS_H

#include "dc_util.h"

#include <stdbool.h>
#include <stdint.h>

enum dl_dns_sec {
    DL_DNS_SECURE = 1,
    DL_DNS_INSECURE,
    DL_DNS_BOGUS,
    DL_DNS_TEMPFAIL,
};

#define DL_DNS_TYPE_A    1
#define DL_DNS_TYPE_MX   15
#define DL_DNS_TYPE_TXT  16
#define DL_DNS_TYPE_AAAA 28

#define DL_DNS_MAX_RR 32

struct dl_dns_answer {
    enum dl_dns_sec sec;
    bool nodata;    /* NXDOMAIN or NODATA (meaningful for SECURE and INSECURE) */
    bool nxdomain;
    uint32_t ttl;
    size_t n;       /* RRs in rr[] (0 for bogus, tempfail, nodata) */
    struct {
        uint8_t *data; /* raw RDATA, malloc'd */
        size_t len;
    } rr[DL_DNS_MAX_RR];
    char why[256];  /* bogus or tempfail reason */
};

void dl_dns_answer_free(struct dl_dns_answer *a);

typedef void (*dl_dns_cb)(void *arg, struct dl_dns_answer *a);

struct dl_dns_conf {
    const char *trust_anchor_file; /* NULL or "": none */
    const char *const *trust_anchors; /* DS or DNSKEY lines */
    size_t n_trust_anchors;
    const char *const *stubs;     /* "zone addr[@port]" */
    size_t n_stubs;
    const char *const *forwarders; /* "addr[@port]" */
    size_t n_forwarders;
    const char *const *local_zones; /* "zone type", e.g. "test. transparent" */
    size_t n_local_zones;
};

struct dl_dns;

struct dl_dns_ops {
    enum dc_status (*query)(struct dl_dns *d, const char *name, int type, dl_dns_cb cb,
                            void *arg, struct dc_err *err);
    int (*fd)(struct dl_dns *d);
    enum dc_status (*process)(struct dl_dns *d, struct dc_err *err);
    size_t (*pending)(struct dl_dns *d);
    void (*cancel_all)(struct dl_dns *d);
    void (*free)(struct dl_dns *d);
};

struct dl_dns {
    const struct dl_dns_ops *ops;
};

/* The libunbound implementation. */
enum dc_status dl_dns_unbound_new(const struct dl_dns_conf *conf, struct dl_dns **out,
                                  struct dc_err *err);

static inline enum dc_status dl_dns_query(struct dl_dns *d, const char *name, int type,
                                          dl_dns_cb cb, void *arg, struct dc_err *err)
{
    return d->ops->query(d, name, type, cb, arg, err);
}
static inline int dl_dns_fd(struct dl_dns *d) { return d->ops->fd(d); }
static inline enum dc_status dl_dns_process(struct dl_dns *d, struct dc_err *err)
{
    return d->ops->process(d, err);
}
static inline void dl_dns_free(struct dl_dns *d)
{
    if (d != NULL)
        d->ops->free(d);
}

/* Runs the event loop until no query is pending, or timeout_ms passes (then the remaining
 * queries are cancelled and answered DL_DNS_TEMPFAIL). */
enum dc_status dl_dns_wait(struct dl_dns *d, int timeout_ms, struct dc_err *err);

/* One query, waited for: a convenience over dl_dns_query + dl_dns_wait. */
void dl_dns_lookup(struct dl_dns *d, const char *name, int type, int timeout_ms,
                   struct dl_dns_answer *out);

const char *dl_dns_sec_name(enum dl_dns_sec s);

/* Resolver contexts kept between jobs (lookups, deliveries, inbound checks): a context holds
 * libunbound's cache, so answers within their TTL (the record, the DX addresses, the DNSSEC
 * chain) survive a short DNS outage and are not fetched again for each job, as they were with
 * a context per job. dl_dns_take() hands out a kept libunbound context for conf (a new one when
 * none is idle); dl_dns_give() keeps it again (up to DL_DNS_KEEP_MAX idle ones; one with
 * queries still pending is freed). conf must be the same for every call of a process until
 * dl_dns_drain(), which frees the idle contexts (at stop, and before a new configuration is
 * used). */
#define DL_DNS_KEEP_MAX 64
enum dc_status dl_dns_take(const struct dl_dns_conf *conf, struct dl_dns **out,
                           struct dc_err *err);
void dl_dns_give(struct dl_dns *d);
void dl_dns_drain(void);

#endif
