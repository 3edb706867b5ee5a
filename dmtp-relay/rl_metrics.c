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
                                     "bounced",   "dsn",      NULL};
static const char *const defers[] = {"delivery", "injection", NULL};
static const char *const limits[] = {"max-clients",
                                     "max-clients-per-address",
                                     "data-memory-limit",
                                     "data-timeout",
                                     "data-time-limit",
                                     "idle",
                                     "max-errors",
                                     "inbound-workers",
                                     "signet-rate",
                                     "keyvault-timeout",
                                     "queue-full",
                                     "lookup-workers",
                                     "lookup-domain-concurrency",
                                     NULL};
static const char *const outcomes[] = {"dime", "not_dime", "bogus", "refused", "tempfail", NULL};
static const char *const sources[] = {"dns", "cache", NULL};
static const char *const queues[] = {"outbound", "inbound", "held", NULL};
static const char *const refusal_kinds[] = {"pok_mismatch", "syndicate_first_contact", NULL};
static const char *const vrfy_answers[] = {"current", "update", "other", NULL};
_Static_assert(DL_VRFY_CURRENT == 0 && DL_VRFY_UPDATE == 1 && DL_VRFY_OTHER == 2 &&
                   DL_VRFYS == 3, "vrfy_answers follows enum dl_vrfy");

static _Atomic uint64_t messages[RL_ROUTES], deferrals[RL_DEFERS], limit_hits[RL_LIMITS];
static _Atomic uint64_t lookups[5 * 2], connections, open_conns, depth[3], vrfys[DL_VRFYS];
static _Atomic uint64_t refusals[RL_REFUSALS];
static struct dl_hist lookup_hist, delivery_hist;
/* seconds: a cached answer takes a millisecond, a resolution up to lookup-deadline (60) */
static const double lookup_bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5,
                                       1,     2.5,   5,    10,   30,  60};
/* seconds from MAIL to the remote 250 after the message: the transaction of one message
 * over an open session */
static const double delivery_bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1,  2.5,
                                         5,    10,   30,  60,   120, 300};
#define NB(a) (sizeof(a) / sizeof((a)[0]))

/* clang-format off */
void rl_count_message(enum rl_route r, unsigned n) { dl_metric_add(&messages[r], n); }
void rl_count_defer(enum rl_defer d) { dl_metric_add(&deferrals[d], 1); }
void rl_count_limit(enum rl_limit l) { dl_metric_add(&limit_hits[l], 1); }
void rl_count_refusal(enum rl_refusal r) { dl_metric_add(&refusals[r], 1); }
uint64_t rl_refusals(enum rl_refusal r) { return atomic_load(&refusals[r]); }
void rl_count_connection(void) { dl_metric_add(&connections, 1); }
void rl_count_open_connections(unsigned n) { dl_metric_set(&open_conns, n); }
void rl_count_vrfy(enum dl_vrfy v) { dl_metric_add(&vrfys[v < DL_VRFYS ? v : DL_VRFY_OTHER], 1); }
/* clang-format on */

void rl_count_closed(const char *why)
{
    rl_count_limit(strcmp(why, "data-timeout") == 0      ? RL_LIMIT_DATA_TIMEOUT
                   : strcmp(why, "data-time-limit") == 0 ? RL_LIMIT_DATA_TIME
                                                         : RL_LIMIT_IDLE);
}

void rl_count_lookup(enum dl_outcome o, bool cached, uint64_t start_us)
{
    int k = o == DL_OUT_SECURE || o == DL_OUT_INSECURE ? 0
            : o == DL_OUT_NOT_DIME                     ? 1
            : o == DL_OUT_BOGUS                        ? 2
            : o == DL_OUT_TEMPFAIL                     ? 4
                                                       : 3;
    dl_metric_add(&lookups[k * 2 + (cached ? 1 : 0)], 1);
    dl_hist_observe(&lookup_hist, lookup_bounds, NB(lookup_bounds), dl_metrics_now_us() - start_us);
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
    /* the label values of the keyvault family are not constant expressions: a local table */
    const struct dl_metric f[] = {
        {.name = "dime_relay_messages_total",
         .help = "Messages by route: submitted by the milter, delivered over DMTP, received "
                 "over DMTP, injected into Postfix, bounced, DSNs injected.",
         .type = DL_METRIC_COUNTER,
         .label = {"route"},
         .values = {routes},
         .cells = messages},
        {.name = "dime_relay_deferrals_total",
         .help = "Delivery and injection attempts deferred (retried later).",
         .type = DL_METRIC_COUNTER,
         .label = {"kind"},
         .values = {defers},
         .cells = deferrals},
        {.name = "dime_relay_lookups_total",
         .help = "Lookups of remote domains and users by outcome, answered from the signet "
                 "cache or resolved.",
         .type = DL_METRIC_COUNTER,
         .label = {"outcome", "source"},
         .values = {outcomes, sources},
         .cells = lookups},
        {.name = "dime_relay_signet_vrfy_total",
         .help = "Signets the cache still held after their entry expired, checked with VRFY "
                 "at the DX: current (kept, nothing fetched), update or other (an error or "
                 "an unexpected reply: fetched with SGNT).",
         .type = DL_METRIC_COUNTER,
         .label = {"answer"},
         .values = {vrfy_answers},
         .cells = vrfys},
        {.name = "dime_relay_lookup_seconds",
         .help = "Time to answer a lookup.",
         .type = DL_METRIC_HISTOGRAM,
         .hists = &lookup_hist,
         .bounds = lookup_bounds,
         .nbounds = NB(lookup_bounds)},
        {.name = "dime_relay_delivery_seconds",
         .help = "Time of the DMTP transaction of a message delivered, from MAIL to the "
                 "remote relay's 250 after the message.",
         .type = DL_METRIC_HISTOGRAM,
         .hists = &delivery_hist,
         .bounds = delivery_bounds,
         .nbounds = NB(delivery_bounds)},
        {.name = "dime_relay_queue_messages",
         .help = "Messages in the queue: outbound to deliver or bounce, inbound to inject, "
                 "held by the operator or after inject-hold-after.",
         .type = DL_METRIC_GAUGE,
         .label = {"queue"},
         .values = {queues},
         .cells = depth},
        kv_client_metric("dime_relay_keyvault_requests_total"),
        {.name = "dime_relay_dmtp_connections_total",
         .help = "DMTP connections accepted.",
         .type = DL_METRIC_COUNTER,
         .cells = &connections},
        {.name = "dime_relay_dmtp_open_connections",
         .help = "DMTP connections open.",
         .type = DL_METRIC_GAUGE,
         .cells = &open_conns},
        {.name = "dime_relay_limit_hits_total",
         .help = "Limits of dime-relayd(8) reached, by the name of the option.",
         .type = DL_METRIC_COUNTER,
         .label = {"limit"},
         .values = {limits},
         .cells = limit_hits},
        {.name = "dime_relay_pin_refusals_total",
         .help = "Domains' keys refused by their POK pin: a POK other than the pinned one "
                 "without a rollover link or syndicate confirmation, or a first contact the "
                 "syndicates contradict (dime-relayd(8), POK PINS).",
         .type = DL_METRIC_COUNTER,
         .label = {"reason"},
         .values = {refusal_kinds},
         .cells = refusals},
    };
    dl_metrics_write(f, NB(f), out);
}

int rl_metrics_listen_tcp(const char *spec, struct dc_err *err)
{
    char host[64];
    unsigned port;
    if (!rl_config_hostport(spec, host, &port)) {
        dc_fail(err, DC_ERR_FIELD, "metrics-listen \"%.64s\" is not ADDRESS:PORT", spec);
        return -1;
    }
    struct rl_config at = {.listen_address = host, .listen_port = port};
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
