/*
 * mf_metrics - the milter's metrics. See mf_metrics.h.
 */
#include "mf_metrics.h"

#include "dl_metrics.h"
#include "kv_client.h"

#include <string.h>

static const char *const routes[] = {"dime", "downgrade", "local", "policy", NULL};
static _Atomic uint64_t recipients[MF_COUNT_ROUTES];
static struct dl_metrics_server *server;

void mf_count_recipient(enum mf_count_route r)
{
    dl_metric_add(&recipients[r], 1);
}

static void text(void *ctx, struct dc_buf *out)
{
    (void)ctx;
    struct dl_metric f[] = {
        {.name = "dime_milter_recipients_total",
         .help = "Outbound recipients by route: D/MIME through the relay, downgraded to "
                 "ordinary mail (on-no-signet accept), local, or decided by an on-* event (no "
                 "lookup answer, bogus, a sender that cannot be signed for).",
         .type = DL_METRIC_COUNTER,
         .label = {"route"},
         .values = {routes},
         .cells = recipients},
        kv_client_metric("dime_milter_keyvault_requests_total"),
    };
    dl_metrics_write(f, sizeof(f) / sizeof(f[0]), out);
}

enum dc_status mf_metrics_start(int fd, struct dc_err *err)
{
    int fds[2] = {fd, -1};
    return dl_metrics_serve(fds, text, NULL, &server, err);
}

void mf_metrics_stop(void)
{
    dl_metrics_serve_stop(server);
    server = NULL;
}
