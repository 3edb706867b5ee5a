/*
 * lookup_client - the client of dime-relayd's lookup service (LOOKUP.md), used by the milter
 * and the tools: one connection per question, the request formatted by lookup_proto, the
 * answer parsed into an outcome and verified signets.
 */
#ifndef LOOKUP_CLIENT_H
#define LOOKUP_CLIENT_H

#include "dc_signet.h"
#include "lookup_proto.h"

struct lookup_ans {
    enum lookup_outcome outcome;
    char reason[128];          /* "" when the relay gave none */
    struct dc_signet *org;     /* org-signet, or NULL */
    struct dc_signet *user;    /* user-signet, or NULL */
    char org_fp[DC_FP_B64_LEN + 1], user_fp[DC_FP_B64_LEN + 1]; /* "" when absent */
    int policy;                /* the record's pol= (enum dc_mrec_policy); -1: no record read */
    bool no_user_signet;       /* the domain's DX has no signet for the user (no-user-signet) */
    bool no_such_user;         /* and that is a definitive "no such user" (no-such-user) */
};

/*
 * Asks the relay at socket_path about name (domain or user@domain) for local_domain (NULL:
 * none). DC_OK with ans filled whatever the outcome; DC_ERR_IO when the relay cannot be
 * reached or stops answering within timeout_s seconds, DC_ERR_FORMAT for an answer that does
 * not follow LOOKUP.md (both mean "relay unavailable" to the caller).
 */
enum dc_status lookup_query(const char *socket_path, unsigned timeout_s, const char *name,
                            const char *local_domain, struct lookup_ans *ans, struct dc_err *err);
/* The same naming the org signet wanted by its fingerprint (org_fp, needs local_domain): a
 * message signed before a SOK rollover of its origin names the org signet of then. */
enum dc_status lookup_query_org(const char *socket_path, unsigned timeout_s, const char *name,
                                const char *local_domain, const char *org_fp,
                                struct lookup_ans *ans, struct dc_err *err);
/* The answer text (key=value lines up to the empty line) into ans. */
enum dc_status lookup_ans_parse(const char *text, size_t len, struct lookup_ans *ans,
                                struct dc_err *err);
void lookup_ans_free(struct lookup_ans *ans);

#endif
