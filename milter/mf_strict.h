/*
 * mf_strict - inbound plain SMTP that claims a domain whose DIME record says pol=strict.
 *
 * A strict domain sends its mail only as DIME (dime-relayd(8), RECORD FIELDS), so a plain
 * message arriving on port 25 with its name as envelope sender or in From is not from it:
 * on-strict-sender of the recipient's local domain decides (reject, quarantine, tempfail,
 * accept). The filter (mf_filter.c) asks this for mail that is neither authenticated, nor
 * local submission, nor from the relay's injection address; the relay's lookup service says
 * what each claimed domain publishes. Pure functions, no libmilter, no I/O.
 */
#ifndef MF_STRICT_H
#define MF_STRICT_H

#include "lookup_client.h"
#include "mf_policy.h"

#include <stdbool.h>
#include <stddef.h>

#define MF_STRICT_MAX_DOMAINS 8
#define MF_STRICT_DOMAIN_MAX  253

/* The distinct domains (lower case) a message claims: the envelope sender's (may be NULL or
 * empty: the null sender claims none) and the domain after every '@' in each From value (a
 * display name that carries an address counts too: more is checked, never less). At most
 * max; returns how many. */
size_t mf_strict_domains(const char *sender, const char *const *from, size_t nfrom,
                         char (*out)[MF_STRICT_DOMAIN_MAX + 1], size_t max);

/* The verdict for one claimed domain. answered: the lookup service answered (ans). */
struct mf_strict_verdict {
    bool strict;           /* the domain's record says pol=strict */
    bool known;            /* its policy is known (a record was read, or there is none) */
    enum mf_action action; /* on-strict-sender when strict, else accept */
};
/* pol=strict (whatever the rest of the answer, e.g. a DX that cannot be reached):
 * on-strict-sender. Anything else passes: another policy, no record, and also a policy that
 * could not be learnt (the relay unavailable, a DNS failure, a bogus answer; known false,
 * which the filter logs), since mail from the legacy world must not wait on every sender
 * domain's DNS answering for a name it never published; a strict domain's own DNS answers. */
void mf_strict_decide(const struct mf_domain *d, bool answered, const struct lookup_ans *ans,
                      struct mf_strict_verdict *v);

#endif
