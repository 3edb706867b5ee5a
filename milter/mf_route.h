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
    int policy;              /* and the record's pol= (enum dc_mrec_policy), -1: none read */
    bool no_user_signet;     /* and the domain's DX has no signet for the user */
    bool no_such_user;       /* and that answer is definitive: no such user (LOOKUP.md) */
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
 * the outcome. A DIME domain whose DX has no signet for the user (no_user_signet): with
 * pol=mixed or experimental the user is one of its users without DIME, and on-no-signet
 * decides as for a domain without DIME; with pol=strict the domain takes DIME only, so it is
 * refused (no-signet: reject when on-no-signet says reject, else tempfail; strict set),
 * whatever on-no-signet says. A DIME domain that sent no signet otherwise refuses as
 * no-signet. Nothing goes LEGACY to a domain whose record says pol=strict. A definitive "no
 * such user" (no_such_user with outcome refused: a DNSSEC-secure pol=strict record and a
 * verified DX that answered 576 or 510, LOOKUP.md) is refused for good whatever on-no-signet
 * says: reject, event no-signet, no_user set (550 5.1.1, MF_NO_USER_TEXT); retrying cannot
 * make the address exist. */
void mf_route_rcpt(const struct mf_domain *d, const struct mf_rcpt_facts *f,
                   struct mf_decision *out);

/* Counts one recipient's decision into the plan (zeroed before the first). The first
 * refusal decides the message, except that a reject replaces an earlier tempfail: a policy
 * refusal does not heal by retrying. */
void mf_route_note(struct mf_route_plan *plan, const struct mf_decision *dec);

#endif
