/*
 * mf_route - the outbound routing of dime-milter, recipient by recipient, without libmilter:
 * which recipients of a message go D/MIME through the relay, which stay with Postfix (a
 * local domain, or legacy SMTP allowed by on-no-signet), and whether one of them refuses the
 * whole message (reject or tempfail, per the on-* policy of mf_policy). The filter
 * (mf_filter.c) gathers the facts (local domain? the relay's lookup answer), asks here, logs
 * and turns the plan into libmilter replies.
 */
#ifndef MF_ROUTE_H
#define MF_ROUTE_H

#include "mf_policy.h"

#include <stdbool.h>
#include <stddef.h>

/* What the filter learnt about one outbound recipient. */
struct mf_rcpt_facts {
    const char *domain;      /* the address's domain; NULL when it has none */
    bool local;              /* one of our domains: Postfix delivers it */
    bool answered;           /* the relay's lookup service answered (the two below) */
    enum lookup_outcome outcome; /* its outcome */
    bool signets;            /* and it carried the user's and the organization's signets */
};

/* The recipients of one message after routing. */
struct mf_route_plan {
    size_t ndime;              /* go D/MIME through the relay */
    size_t nleft;              /* stay with Postfix: local ones and legacy ones */
    size_t ndowngrade;         /* of those, legacy SMTP by policy */
    bool quarantine;           /* a legacy recipient's policy asks for the hold queue */
    bool refused;              /* a recipient refuses the message; refusal says how */
    struct mf_decision refusal;
};

/* One recipient's route. A local domain stays with Postfix (LEGACY, no downgrade). An
 * address without a domain is refused as unverifiable (MF_EV_VERIFY), one the lookup service
 * did not answer for as a relay failure (MF_EV_RELAY). Otherwise the policy table decides on
 * the outcome, and a DIME domain that sent no signet for the user refuses as no-signet (the
 * user does not exist there). */
void mf_route_rcpt(const struct mf_domain *d, const struct mf_rcpt_facts *f,
                   struct mf_decision *out);

/* Counts one recipient's decision into the plan (zeroed before the first). The first
 * refusal decides the message, except that a reject replaces an earlier tempfail: a policy
 * refusal does not heal by retrying. */
void mf_route_note(struct mf_route_plan *plan, const struct mf_decision *dec);

#endif
