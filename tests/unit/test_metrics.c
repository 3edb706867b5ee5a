/* dl_metrics: the exact Prometheus text (0.0.4) of counters, gauges and histograms with and
 * without labels, the escapes, concurrent adds from several threads, and the sample parser
 * that dime-relayctl stats reads the text with. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "dl_metrics.h"

static char *text(const struct dl_metric *m, size_t n)
{
    struct dc_buf b;
    dc_buf_init(&b);
    dl_metrics_write(m, n, &b);
    dc_buf_putc(&b, '\0');
    return (char *)b.data;
}

Test(metrics, counter_without_labels_and_gauge)
{
    _Atomic uint64_t c = 0, g = 0;
    struct dl_metric m[] = {
        {"x_events_total",
         "Events.",
         DL_METRIC_COUNTER,
         {NULL, NULL},
         {NULL, NULL},
         &c,
         NULL,
         NULL,
         0},
        {"x_open", "Open now.", DL_METRIC_GAUGE, {NULL, NULL}, {NULL, NULL}, &g, NULL, NULL, 0},
    };
    dl_metric_add(&c, 3);
    dl_metric_add(&c, 4);
    dl_metric_set(&g, 9);
    dl_metric_set(&g, 5);
    char *t = text(m, 2);
    cr_assert_str_eq(t, "# HELP x_events_total Events.\n"
                        "# TYPE x_events_total counter\n"
                        "x_events_total 7\n"
                        "# HELP x_open Open now.\n"
                        "# TYPE x_open gauge\n"
                        "x_open 5\n");
    free(t);
}

Test(metrics, two_labels_in_order_label_zero_major)
{
    static const char *const a[] = {"in", "out", NULL};
    static const char *const b[] = {"ok", "failed", "timeout", NULL};
    _Atomic uint64_t cells[6] = {0};
    struct dl_metric m = {"x_req_total",
                          "Requests.",
                          DL_METRIC_COUNTER,
                          {"dir", "result"},
                          {a, b},
                          cells,
                          NULL,
                          NULL,
                          0};
    cr_assert_eq(dl_metric_series(&m), 6);
    dl_metric_add(&cells[1 * 3 + 2], 2); /* out, timeout */
    dl_metric_add(&cells[0 * 3 + 1], 1); /* in, failed */
    char *t = text(&m, 1);
    cr_assert_str_eq(t, "# HELP x_req_total Requests.\n"
                        "# TYPE x_req_total counter\n"
                        "x_req_total{dir=\"in\",result=\"ok\"} 0\n"
                        "x_req_total{dir=\"in\",result=\"failed\"} 1\n"
                        "x_req_total{dir=\"in\",result=\"timeout\"} 0\n"
                        "x_req_total{dir=\"out\",result=\"ok\"} 0\n"
                        "x_req_total{dir=\"out\",result=\"failed\"} 0\n"
                        "x_req_total{dir=\"out\",result=\"timeout\"} 2\n");
    free(t);
}

Test(metrics, histogram_buckets_are_cumulative_with_sum_and_count)
{
    static const double bounds[] = {0.01, 0.5, 2};
    struct dl_hist h;
    memset(&h, 0, sizeof(h));
    struct dl_metric m = {"x_seconds",  "Latency.",   DL_METRIC_HISTOGRAM,
                          {NULL, NULL}, {NULL, NULL}, NULL,
                          &h,           bounds,       3};
    dl_hist_observe(&h, bounds, 3, 10000);   /* 0.01 s: on the bound, in le="0.01" */
    dl_hist_observe(&h, bounds, 3, 10001);   /* just above: le="0.5" */
    dl_hist_observe(&h, bounds, 3, 1500000); /* 1.5 s */
    dl_hist_observe(&h, bounds, 3, 7000000); /* 7 s: above every bound */
    char *t = text(&m, 1);
    cr_assert_str_eq(t, "# HELP x_seconds Latency.\n"
                        "# TYPE x_seconds histogram\n"
                        "x_seconds_bucket{le=\"0.01\"} 1\n"
                        "x_seconds_bucket{le=\"0.5\"} 2\n"
                        "x_seconds_bucket{le=\"2\"} 3\n"
                        "x_seconds_bucket{le=\"+Inf\"} 4\n"
                        "x_seconds_sum 8.520001\n"
                        "x_seconds_count 4\n");
    free(t);
}

Test(metrics, labelled_histogram_puts_le_last)
{
    static const double bounds[] = {1};
    static const char *const k[] = {"a", "b", NULL};
    struct dl_hist h[2];
    memset(h, 0, sizeof(h));
    struct dl_metric m = {"x_s",  "L.", DL_METRIC_HISTOGRAM, {"kind", NULL}, {k, NULL}, NULL, h,
                          bounds, 1};
    dl_hist_observe(&h[1], bounds, 1, 250000);
    char *t = text(&m, 1);
    cr_assert_str_eq(t, "# HELP x_s L.\n"
                        "# TYPE x_s histogram\n"
                        "x_s_bucket{kind=\"a\",le=\"1\"} 0\n"
                        "x_s_bucket{kind=\"a\",le=\"+Inf\"} 0\n"
                        "x_s_sum{kind=\"a\"} 0.000000\n"
                        "x_s_count{kind=\"a\"} 0\n"
                        "x_s_bucket{kind=\"b\",le=\"1\"} 1\n"
                        "x_s_bucket{kind=\"b\",le=\"+Inf\"} 1\n"
                        "x_s_sum{kind=\"b\"} 0.250000\n"
                        "x_s_count{kind=\"b\"} 1\n");
    free(t);
}

Test(metrics, help_and_label_values_are_escaped)
{
    static const char *const v[] = {"a\"b\\c\nd", NULL};
    _Atomic uint64_t c = 1;
    struct dl_metric m = {"x_total",
                          "back\\slash\nnewline \"quotes\" stay",
                          DL_METRIC_COUNTER,
                          {"v", NULL},
                          {v, NULL},
                          &c,
                          NULL,
                          NULL,
                          0};
    char *t = text(&m, 1);
    cr_assert_str_eq(t, "# HELP x_total back\\\\slash\\nnewline \"quotes\" stay\n"
                        "# TYPE x_total counter\n"
                        "x_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
    struct dl_metric_sample s;
    const char *line = strrchr(t, '\n') - strlen("x_total{v=\"a\\\"b\\\\c\\nd\"} 1");
    cr_assert(dl_metrics_parse_sample(line, strlen(line), &s));
    cr_assert_str_eq(s.labels, "v=\"a\\\"b\\\\c\\nd\"");
    free(t);
}

static _Atomic uint64_t shared;
static struct dl_hist shared_h;
static const double shared_b[] = {0.001};

static void *adder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++) {
        dl_metric_add(&shared, 1);
        dl_hist_observe(&shared_h, shared_b, 1, (uint64_t)(i % 2) * 5000);
    }
    return NULL;
}

Test(metrics, adds_from_threads_are_not_lost)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, adder, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(shared, 400000);
    cr_assert_eq(shared_h.bucket[0], 200000);
    cr_assert_eq(shared_h.bucket[1], 200000);
    cr_assert_eq(shared_h.sum_us, 200000u * 5000u);
}

Test(metrics, sample_parser_accepts_the_format)
{
    struct dl_metric_sample s;
    cr_assert(dl_metrics_parse_sample("a_total 12\n", 11, &s));
    cr_assert_str_eq(s.name, "a_total");
    cr_assert_str_eq(s.labels, "");
    cr_assert_float_eq(s.value, 12, 1e-9);
    const char *l = "a_bucket{k=\"x y\",le=\"+Inf\"} 3.5 1700000000000";
    cr_assert(dl_metrics_parse_sample(l, strlen(l), &s));
    cr_assert_str_eq(s.name, "a_bucket");
    cr_assert_str_eq(s.labels, "k=\"x y\",le=\"+Inf\"");
    cr_assert_float_eq(s.value, 3.5, 1e-9);
    cr_assert(dl_metrics_parse_sample("b +Inf", 6, &s));
    cr_assert(dl_metrics_parse_sample("c{} NaN", 7, &s));
    cr_assert(dl_metrics_parse_sample("d{k=\"v\",} 1", 11, &s)); /* a trailing comma is allowed */
}

Test(metrics, sample_parser_refuses_malformed_lines)
{
    static const char *const bad[] = {
        "# HELP a b", "",           "1a 2",        "a",      "a  2",        "a 2 x",
        "a{k=x} 1",   "a{k=\"x} 1", "a{k=\"x\"",   "a{,} 1", "a{=\"x\"} 1", "a{k=\"\\q\"} 1",
        "a 1e",       "a inf",      "a{k=\"x\"}1", "a 1 ",
    };
    struct dl_metric_sample s;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect(!dl_metrics_parse_sample(bad[i], strlen(bad[i]), &s), "accepted: %s", bad[i]);
}
