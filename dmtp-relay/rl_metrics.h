/*
 * rl_metrics - what dime-relayd counts, and the endpoint that shows it (dime-relayd(8),
 * METRICS): the relay's families of dl_metrics (messages by route, lookups by outcome,
 * keyvault requests, DMTP connections, limits hit, VRFY answers of signet refreshes, queue depth, delivery and lookup
 * latency), served as the Prometheus text format over HTTP on the metrics-socket (a Unix
 * socket, mode 0660, the relay's user and group) and, when set, on metrics-listen (a TCP
 * address, meant for loopback). `dime-relayctl stats` reads the same text.
 *
 * Every count is a relaxed atomic add (one call at the place that also logs the event); no
 * label holds a name, an address or a domain.
 */
#ifndef RL_METRICS_H
#define RL_METRICS_H

#include "dl_metrics.h"
#include "rl_config.h"
#include "dl_resolve.h"

#include <stdbool.h>
#include <stdint.h>

/* The paths a message takes through the relay, each counted once per message. */
enum rl_route {
    RL_ROUTE_SUBMITTED, /* taken from the milter, queued for DMTP delivery */
    RL_ROUTE_DMTP_OUT,  /* delivered over DMTP (the remote DX's 250) */
    RL_ROUTE_DMTP_IN,   /* received over DMTP and committed */
    RL_ROUTE_INJECTED,  /* inbound message injected into Postfix */
    RL_ROUTE_BOUNCED,   /* outbound message given up (5xx or expiry): a DSN is owed */
    RL_ROUTE_DSN,       /* delivery status notification injected into Postfix */
    RL_ROUTES
};
/* Deferrals (a later attempt follows). */
enum rl_defer { RL_DEFER_DELIVERY, RL_DEFER_INJECTION, RL_DEFERS };
/* The limits of dime-relayd(8), by the word of their log line. */
enum rl_limit {
    RL_LIMIT_MAX_CLIENTS,
    RL_LIMIT_PER_ADDRESS,
    RL_LIMIT_DATA_MEMORY,
    RL_LIMIT_DATA_TIMEOUT,
    RL_LIMIT_DATA_TIME,
    RL_LIMIT_IDLE,
    RL_LIMIT_MAX_ERRORS,
    RL_LIMIT_INBOUND_WORKERS,
    RL_LIMIT_SIGNET_RATE,
    RL_LIMIT_KEYVAULT_TIMEOUT,
    RL_LIMIT_QUEUE_FULL,
    RL_LIMIT_LOOKUP_WORKERS,
    RL_LIMIT_LOOKUP_DOMAIN,
    RL_LIMITS
};

void rl_count_message(enum rl_route r, unsigned n);
void rl_count_defer(enum rl_defer d);
void rl_count_limit(enum rl_limit l);
/* A domain's keys refused by its pin (rl_pins.h): a POK that differs from the pinned one with
 * no rollover link or syndicate confirmation, or a first contact its syndicates contradict. */
enum rl_refusal { RL_REFUSE_POK_MISMATCH, RL_REFUSE_FIRST_CONTACT, RL_REFUSALS };
void rl_count_refusal(enum rl_refusal r);
uint64_t rl_refusals(enum rl_refusal r); /* counted since the process started */
/* A DX session closed for the reason of its closed= log line (data-timeout...). */
void rl_count_closed(const char *why);
void rl_count_connection(void);
void rl_count_open_connections(unsigned n);
/* A lookup answered with o, from the signet cache or not, started at start_us
 * (dl_metrics_now_us). */
void rl_count_lookup(enum dl_outcome o, bool cached, uint64_t start_us);
/* The answer to one VRFY of a held signet (dl_resolve.h): current is a hit (nothing
 * fetched), update and other a miss (fetched with SGNT). */
void rl_count_vrfy(enum dl_vrfy v);
/* A message delivered over DMTP whose transaction (MAIL) started at start_us. */
void rl_count_delivery_time(uint64_t start_us);

/* The whole exposition text, with the queue depth read from the queue database. */
void rl_metrics_text(const struct rl_config *cfg, struct dc_buf *out);

/* The listening TCP socket of metrics-listen ("ADDR:PORT" or "[ADDR6]:PORT"), or -1 with err. */
int rl_metrics_listen_tcp(const char *spec, struct dc_err *err);

/* Serves GET /metrics on the listening sockets ufd (Unix) and tfd (TCP), either -1, on a
 * thread of its own, one short request at a time; stop closes both. */
struct rl_metricsd;
enum dc_status rl_metricsd_start(const struct rl_config *cfg, int ufd, int tfd,
                                 struct rl_metricsd **out, struct dc_err *err);
void rl_metricsd_stop(struct rl_metricsd *m);

#endif
