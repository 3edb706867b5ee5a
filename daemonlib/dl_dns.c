/*
 * dl_dns - resolver-independent helpers: waiting for answers, answer lifetime, names.
 */
#include "dl_dns.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void dl_dns_answer_free(struct dl_dns_answer *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->rr[i].data);
    a->n = 0;
}

const char *dl_dns_sec_name(enum dl_dns_sec s)
{
    switch (s) {
    case DL_DNS_SECURE: return "secure";
    case DL_DNS_INSECURE: return "insecure";
    case DL_DNS_BOGUS: return "bogus";
    case DL_DNS_TEMPFAIL: return "temporary failure";
    }
    return "?";
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

enum dc_status dl_dns_wait(struct dl_dns *d, int timeout_ms, struct dc_err *err)
{
    long end = now_ms() + timeout_ms;
    while (d->ops->pending(d) > 0) {
        long left = end - now_ms();
        if (left <= 0) {
            d->ops->cancel_all(d);
            return DC_OK;
        }
        struct pollfd p = {.fd = dl_dns_fd(d), .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno != EINTR)
            return dc_fail(err, DC_ERR_IO, "poll: %s", strerror(errno));
        if (r > 0) {
            enum dc_status s = dl_dns_process(d, err);
            if (s != DC_OK)
                return s;
        }
    }
    return DC_OK;
}

static void copy_answer(void *arg, struct dl_dns_answer *a)
{
    struct dl_dns_answer *out = arg;
    *out = *a;      /* takes over the RR storage */
    a->n = 0;
}

void dl_dns_lookup(struct dl_dns *d, const char *name, int type, int timeout_ms,
                   struct dl_dns_answer *out)
{
    memset(out, 0, sizeof(*out));
    out->sec = DL_DNS_TEMPFAIL;
    struct dc_err err = {0};
    if (dl_dns_query(d, name, type, copy_answer, out, &err) != DC_OK ||
        dl_dns_wait(d, timeout_ms, &err) != DC_OK) {
        /* a wait that failed left the query registered with out, in the caller's frame, as
         * its answer's destination: a later wait on this resolver would write the answer
         * there after this returned */
        d->ops->cancel_all(d);
        dl_dns_answer_free(out);
        out->sec = DL_DNS_TEMPFAIL;
        snprintf(out->why, sizeof(out->why), "%s", err.msg);
    }
}
