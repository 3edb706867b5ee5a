/*
 * rl_metrics - the relay's metrics and their HTTP endpoint. See rl_metrics.h.
 */
#include "rl_metrics.h"

#include "dl_log.h"
#include "dl_metrics.h"
#include "kv_client.h"
#include "rl_queue.h"
#include "rl_server.h"

#include <stdlib.h>
#include <string.h>

static const char *const routes[] = {"submitted", "dmtp_out", "dmtp_in", "injected",
                                     "bounced", "dsn", NULL};
static const char *const defers[] = {"delivery", "injection", NULL};
static const char *const limits[] = {"max-clients", "max-clients-per-address",
                                     "data-memory-limit", "data-timeout", "data-time-limit",
                                     "idle", "max-errors", "inbound-workers", "signet-rate", "keyvault-timeout", "queue-full",
                                     "lookup-workers", "lookup-domain-concurrency", NULL};
static const char *const outcomes[] = {"dime", "not_dime", "bogus", "refused", "tempfail", NULL};
static const char *const sources[] = {"dns", "cache", NULL};
static const char *const queues[] = {"outbound", "inbound", "held", NULL};

static _Atomic uint64_t messages[RL_ROUTES], deferrals[RL_DEFERS], limit_hits[RL_LIMITS];
static _Atomic uint64_t lookups[5 * 2], connections, open_conns, depth[3];
static struct dl_hist lookup_hist, delivery_hist;
/* seconds: a cached answer takes a millisecond, a resolution up to lookup-deadline (60) */
static const double lookup_bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                       10, 30, 60};
/* seconds from MAIL to the remote 250 after the message: the transaction of one message
 * over an open session */
static const double delivery_bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                                         120, 300};
#define NB(a) (sizeof(a) / sizeof((a)[0]))

static const struct dl_metric families[] = {
    {"dime_relay_messages_total", "Messages by route: submitted by the milter, delivered "
     "over DMTP, received over DMTP, injected into Postfix, bounced, DSNs injected.",
     DL_METRIC_COUNTER, {"route", NULL}, {routes, NULL}, messages, NULL, NULL, 0},
    {"dime_relay_deferrals_total", "Delivery and injection attempts deferred (retried later).",
     DL_METRIC_COUNTER, {"kind", NULL}, {defers, NULL}, deferrals, NULL, NULL, 0},
    {"dime_relay_lookups_total", "Lookups of remote domains and users by outcome, answered "
     "from the signet cache or resolved.",
     DL_METRIC_COUNTER, {"outcome", "source"}, {outcomes, sources}, lookups, NULL, NULL, 0},
    {"dime_relay_lookup_seconds", "Time to answer a lookup.", DL_METRIC_HISTOGRAM,
     {NULL, NULL}, {NULL, NULL}, NULL, &lookup_hist, lookup_bounds, NB(lookup_bounds)},
    {"dime_relay_delivery_seconds", "Time of the DMTP transaction of a message delivered, "
     "from MAIL to the remote relay's 250 after the message.", DL_METRIC_HISTOGRAM, {NULL, NULL}, {NULL, NULL}, NULL, &delivery_hist,
     delivery_bounds, NB(delivery_bounds)},
    {"dime_relay_queue_messages", "Messages in the queue: outbound to deliver or bounce, "
     "inbound to inject, held by the operator or after inject-hold-after.",
     DL_METRIC_GAUGE, {"queue", NULL}, {queues, NULL}, depth, NULL, NULL, 0},
    {"dime_relay_keyvault_requests_total", "Requests to the keyvault by operation and result.",
     DL_METRIC_COUNTER, {"op", "result"}, {NULL, kv_result_words}, kv_client_counts, NULL,
     NULL, 0},
    {"dime_relay_dmtp_connections_total", "DMTP connections accepted.", DL_METRIC_COUNTER,
     {NULL, NULL}, {NULL, NULL}, &connections, NULL, NULL, 0},
    {"dime_relay_dmtp_connections", "DMTP connections open.", DL_METRIC_GAUGE, {NULL, NULL},
     {NULL, NULL}, &open_conns, NULL, NULL, 0},
    {"dime_relay_limit_hits_total", "Limits of dime-relayd(8) reached, by the word of "
     "their log line.", DL_METRIC_COUNTER, {"limit", NULL}, {limits, NULL}, limit_hits, NULL,
     NULL, 0},
};

void rl_count_message(enum rl_route r, unsigned n) { dl_metric_add(&messages[r], n); }
void rl_count_defer(enum rl_defer d) { dl_metric_add(&deferrals[d], 1); }
void rl_count_limit(enum rl_limit l) { dl_metric_add(&limit_hits[l], 1); }
void rl_count_connection(void) { dl_metric_add(&connections, 1); }
void rl_count_open_connections(unsigned n) { dl_metric_set(&open_conns, n); }

void rl_count_lookup(enum rl_outcome o, bool cached, uint64_t start_us)
{
    int k = o == RL_OUT_SECURE || o == RL_OUT_INSECURE ? 0
            : o == RL_OUT_NOT_DIME                       ? 1
            : o == RL_OUT_BOGUS                          ? 2
            : o == RL_OUT_TEMPFAIL                       ? 4
                                                         : 3;
    dl_metric_add(&lookups[k * 2 + (cached ? 1 : 0)], 1);
    dl_hist_observe(&lookup_hist, lookup_bounds, NB(lookup_bounds),
                    dl_metrics_now_us() - start_us);
}

void rl_count_delivery_time(uint64_t start_us)
{
    dl_hist_observe(&delivery_hist, delivery_bounds, NB(delivery_bounds),
                    dl_metrics_now_us() - start_us);
}

void rl_metrics_text(const struct rl_config *cfg, struct dc_buf *out)
{
    struct rl_queue *q = NULL;
    struct dc_err e = {0};
    unsigned long n[3] = {0, 0, 0};
    if (rl_queue_take(cfg->queue_database, cfg->queue_key_file, &q, &e) != DC_OK ||
        rl_queue_depth(q, n, &e) != DC_OK)
        dl_log(LOG_ERR, "metrics queue error=\"%s\"", e.msg);
    if (q != NULL)
        rl_queue_give(q);
    for (int i = 0; i < 3; i++)
        dl_metric_set(&depth[i], n[i]);
    struct dl_metric f[NB(families)];
    memcpy(f, families, sizeof(f));
    f[6].values[0] = kv_op_words; /* not a constant expression in the table */
    dl_metrics_write(f, NB(f), out);
}

int rl_metrics_listen_tcp(const char *spec, struct dc_err *err)
{
    char host[64];
    const char *colon = strrchr(spec, ':');
    char *end = NULL;
    long port = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
    size_t hl = colon != NULL ? (size_t)(colon - spec) : 0;
    if (hl > 1 && spec[0] == '[' && spec[hl - 1] == ']') {
        spec++;
        hl -= 2;
    }
    if (colon == NULL || end == colon + 1 || *end != '\0' || port < 1 || port > 65535 ||
        hl == 0 || hl >= sizeof(host)) {
        dc_fail(err, DC_ERR_FIELD, "metrics-listen \"%.64s\" is not ADDRESS:PORT", spec);
        return -1;
    }
    memcpy(host, spec, hl);
    host[hl] = '\0';
    struct rl_config at = {.listen_address = host, .listen_port = (unsigned)port};
    return rl_server_listen(&at, err);
}

struct rl_metricsd {
    const struct rl_config *cfg;
    struct dl_metrics_server *srv;
};

static void relay_text(void *ctx, struct dc_buf *out)
{
    rl_metrics_text(((struct rl_metricsd *)ctx)->cfg, out);
}

enum dc_status rl_metricsd_start(const struct rl_config *cfg, int ufd, int tfd,
                                 struct rl_metricsd **out, struct dc_err *err)
{
    struct rl_metricsd *m = dc_xcalloc(1, sizeof(*m));
    m->cfg = cfg;
    int fds[2] = {ufd, tfd};
    enum dc_status s = dl_metrics_serve(fds, relay_text, m, &m->srv, err);
    if (s != DC_OK || m->srv == NULL) {
        free(m);
        m = NULL;
    }
    *out = m;
    return s;
}

void rl_metricsd_stop(struct rl_metricsd *m)
{
    if (m == NULL)
        return;
    dl_metrics_serve_stop(m->srv);
    free(m);
}
