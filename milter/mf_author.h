/*
 * mf_author - the milter's checks on author-made D/MIME (daemonlib/AUTHOR-SUBMIT.md): a
 * Cautious or Paranoid user's client signed the D/MIME as the author with a key only the user
 * holds, and submits it over authenticated SMTP in an application/x-dime message. No
 * libmilter: the filter (mf_filter.c) gathers the facts and turns a refusal into 550 5.7.1.
 *
 * What is checked where. The milter cannot open a D/MIME message (its keyvault class gets no
 * KEK of the domain), so it checks what it can see: a SASL login that owns the envelope
 * sender (mf_sender, at end of header), a body that is one D/MIME message, exactly one
 * envelope recipient and that recipient at a DIME domain. The relay opens the message as the
 * origin before it adds the origin signatures and checks the rest: the destination domain
 * is the envelope recipient's, the author is the envelope sender, the author signet named
 * in the envelope is a generation of that user in our vault, the author signatures verify
 * (rl_origin_sign). Its refusal (554) comes back as 550 5.7.1 with its text
 * (mf_outbound_submit_own).
 */
#ifndef MF_AUTHOR_H
#define MF_AUTHOR_H

#include "mf_policy.h"

#include <stdbool.h>
#include <stddef.h>

/* What the filter learnt about a wrapper from a sender whose keys the vault does not hold. */
struct mf_author_facts {
    bool login;        /* a SASL login (that owns the sender: checked before) */
    bool too_big;      /* above max-message-size: the body was not kept */
    bool dmime;        /* the body decodes to one D/MIME message */
    size_t nrcpt;      /* envelope recipients */
    bool dime_rcpt;    /* the (first) recipient routes D/MIME through the relay */
};

/*
 * NULL when the submission may go to the relay; otherwise the reply text (for 550 5.7.1)
 * and in *why a short reason for the log line (no address).
 */
const char *mf_author_refusal(const struct mf_author_facts *f, const char **why);

#endif
