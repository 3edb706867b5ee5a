/*
 * mf_lookup - the milter's client of dime-relayd's lookup service (daemonlib/LOOKUP.md):
 * one connection per question, answers parsed into an outcome and verified signets.
 */
#ifndef MF_LOOKUP_H
#define MF_LOOKUP_H

#include "dc_signet.h"
#include "mf_policy.h"

struct mf_lookup_ans {
    enum mf_outcome outcome;
    char reason[128];          /* "" when the relay gave none */
    struct dc_signet *org;     /* org-signet, or NULL */
    struct dc_signet *user;    /* user-signet, or NULL */
    char org_fp[DC_FP_B64_LEN + 1], user_fp[DC_FP_B64_LEN + 1]; /* "" when absent */
};

/*
 * Asks the relay at socket_path about name (domain or user@domain) for local_domain (NULL:
 * none). DC_OK with ans filled whatever the outcome; DC_ERR_IO when the relay cannot be
 * reached or stops answering within timeout_s seconds, DC_ERR_FORMAT for an answer that does
 * not follow LOOKUP.md (both mean "relay unavailable" to the caller).
 */
enum dc_status mf_lookup(const char *socket_path, unsigned timeout_s, const char *name,
                         const char *local_domain, struct mf_lookup_ans *ans, struct dc_err *err);
/* The answer text (key=value lines up to the empty line) into ans. */
enum dc_status mf_lookup_parse(const char *text, size_t len, struct mf_lookup_ans *ans,
                               struct dc_err *err);
void mf_lookup_ans_free(struct mf_lookup_ans *ans);

#endif
