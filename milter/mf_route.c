/* mf_route - outbound routing per recipient and per message (see mf_route.h). */
#include "mf_route.h"

#include "dc_mrec.h"

void mf_route_rcpt(const struct mf_domain *d, const struct mf_rcpt_facts *f,
                   struct mf_decision *out)
{
    if (f->domain != NULL && f->local) {
        out->route = MF_ROUTE_LEGACY;
        out->event = MF_EV_COUNT;
        out->action = MF_ACCEPT;
        out->downgrade = false;
        out->strict = false;
        out->no_user = false;
        return;
    }
    if (f->domain == NULL) {
        mf_policy_outbound_failure(d, MF_EV_VERIFY, out);
        return;
    }
    if (!f->answered) {
        mf_policy_outbound_failure(d, MF_EV_RELAY, out);
        return;
    }
    if (f->no_such_user && f->outcome == LOOKUP_REFUSED) {
        mf_policy_outbound_failure(d, MF_EV_NO_SIGNET, out);
        out->action = MF_REJECT;
        out->strict = f->policy == DC_MREC_POL_STRICT;
        out->no_user = true;
        return;
    }
    bool strict = f->policy == DC_MREC_POL_STRICT;
    if (f->no_user_signet && f->outcome == LOOKUP_REFUSED && !strict) {
        /* mixed or experimental: a user of the domain without DIME */
        mf_policy_outbound(d, LOOKUP_NOT_DIME, f->domain, out);
        return;
    }
    mf_policy_outbound(d, f->outcome, f->domain, out);
    if ((out->route == MF_ROUTE_DIME && !f->signets) || (strict && f->no_user_signet) ||
        (strict && out->route == MF_ROUTE_LEGACY)) {
        mf_policy_outbound_failure(d, MF_EV_NO_SIGNET, out);
        out->strict = strict;
    }
}

void mf_route_note(struct mf_route_plan *plan, const struct mf_decision *dec)
{
    switch (dec->route) {
    case MF_ROUTE_DIME:
        plan->ndime++;
        break;
    case MF_ROUTE_LEGACY:
        plan->nleft++;
        if (dec->downgrade) {
            plan->ndowngrade++;
            if (dec->action == MF_QUARANTINE)
                plan->quarantine = true;
        }
        break;
    case MF_ROUTE_REFUSE:
        if (!plan->refused || (dec->action == MF_REJECT && plan->refusal.action != MF_REJECT))
            plan->refusal = *dec;
        plan->refused = true;
        break;
    }
}
