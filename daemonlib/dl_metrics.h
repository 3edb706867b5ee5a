/*
 * dl_metrics - counters, gauges and latency histograms of a daemon, and their text in the
 * Prometheus exposition format, version 0.0.4 (# HELP and # TYPE lines, then one sample per
 * line; a histogram as cumulative _bucket{le="..."} samples, _sum and _count).
 *
 * A daemon describes its metrics once, as a static table of families. Every family has at
 * most two labels, each with a fixed list of values, so the number of series (and the memory)
 * is fixed at build time: no label ever carries a name, an address or a domain. Each series
 * is one cell of relaxed atomics: the message path adds with one atomic instruction and takes
 * no lock; the writer reads the cells while they change, so a scrape is a moment's view (a
 * histogram's _count is the sum of the buckets it printed, never a different figure).
 *
 * Gauges are set by whoever knows the value (a count of the queue just before writing).
 * dl_metrics_serve answers HTTP GET /metrics with that text on a daemon's sockets.
 */
#ifndef DL_METRICS_H
#define DL_METRICS_H

#include "dc_util.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dl_metric_type { DL_METRIC_COUNTER, DL_METRIC_GAUGE, DL_METRIC_HISTOGRAM };

/* Upper bounds of a histogram's buckets (seconds, ascending) at most this many. */
#define DL_HIST_MAX_BOUNDS 16

/* One histogram series: per-bucket counts (not cumulative; the last counts what is above
 * every bound) and the sum of the observations in microseconds. */
struct dl_hist {
    _Atomic uint64_t bucket[DL_HIST_MAX_BOUNDS + 1];
    _Atomic uint64_t sum_us;
};

/* A family. label[i] NULL: fewer labels; values[i] lists label i's values, NULL-terminated.
 * The series of a family are ordered as label 0 major, label 1 minor: the cell of values
 * (i, j) is cells[i * n1 + j], with n1 the number of values of label 1 (1 without it). */
struct dl_metric {
    const char *name;
    const char *help;
    enum dl_metric_type type;
    const char *label[2];
    const char *const *values[2];
    _Atomic uint64_t *cells; /* counter, gauge: one per series */
    struct dl_hist *hists;   /* histogram: one per series */
    const double *bounds;    /* histogram: bucket upper bounds, seconds */
    size_t nbounds;
};

/* The number of series of m (the product of its label value counts). */
size_t dl_metric_series(const struct dl_metric *m);

static inline void dl_metric_add(_Atomic uint64_t *cell, uint64_t n)
{
    atomic_fetch_add_explicit(cell, n, memory_order_relaxed);
}

static inline void dl_metric_set(_Atomic uint64_t *cell, uint64_t v)
{
    atomic_store_explicit(cell, v, memory_order_relaxed);
}

/* Counts one observation of usec microseconds in h, whose bucket bounds are bounds. */
void dl_hist_observe(struct dl_hist *h, const double *bounds, size_t nbounds, uint64_t usec);

/* Microseconds of a monotonic clock, for durations given to dl_hist_observe. */
uint64_t dl_metrics_now_us(void);

/* Appends the exposition text of n families to out. */
void dl_metrics_write(const struct dl_metric *m, size_t n, struct dc_buf *out);

/* The Content-Type of that text. */
#define DL_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Serves HTTP/1.0 GET /metrics (and GET /) on the listening sockets fds[0] and fds[1] (a Unix
 * and a TCP one; -1 when not used) from a thread of its own, one short request at a time
 * (2 s for the request, 2 s for each write of the answer; other paths 404, other methods
 * 405): the body is what text(ctx, out) appends. The thread blocks every signal. *out stays NULL
 * when both are -1. Stop ends the thread and closes both sockets. */
struct dl_metrics_server;
enum dc_status dl_metrics_serve(const int fds[2], void (*text)(void *ctx, struct dc_buf *out),
                                void *ctx, struct dl_metrics_server **out, struct dc_err *err);
void dl_metrics_serve_stop(struct dl_metrics_server *m);

/* One sample line of the exposition, split: name, the text between the braces (empty
 * without labels) and the value. Returns false for a line that is not a well-formed sample
 * (comments and blank lines included). */
struct dl_metric_sample {
    char name[128];
    char labels[256];
    double value;
};
bool dl_metrics_parse_sample(const char *line, size_t len, struct dl_metric_sample *out);

#endif
