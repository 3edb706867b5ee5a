/*
 * mf_metrics - what dime-milter counts (dime-milter(8), METRICS): every outbound recipient by
 * the route it took (DIME, a downgrade to ordinary mail under on-no-signet, local, or held
 * back by the on-* policy) and the milter's keyvault requests, served in the Prometheus text
 * format on metrics-socket (off by default). Fixed labels only: no address, no domain.
 */
#ifndef MF_METRICS_H
#define MF_METRICS_H

#include "dc_util.h"

/* The route of an outbound recipient, as its log line says it. */
enum mf_count_route {
    MF_COUNT_DIME,      /* route=dime */
    MF_COUNT_DOWNGRADE, /* route=legacy downgrade=yes */
    MF_COUNT_LOCAL,     /* route=local */
    MF_COUNT_POLICY,    /* an on-* event decided it (no lookup answer, bogus, a sender the
                         * gateway cannot sign for...): event= in its log line */
    MF_COUNT_ROUTES
};
void mf_count_recipient(enum mf_count_route r);

/* Serves the figures on the listening Unix socket fd (-1: nothing); stop ends it. */
enum dc_status mf_metrics_start(int fd, struct dc_err *err);
void mf_metrics_stop(void);

#endif
