/*
 * rl_resolve - what the relay believes about a remote name (domain or user@domain):
 * its DIME management record and DNSSEC status, the DX it talks to, the DX certificate
 * check, and the org and user signets verified against the record.
 *
 * Steps (PROFILE.md sections 3 and 5):
 *  1. TXT _dime.<domain>, then _dx.<domain>. Several TXT RRs that parse as DIME records are
 *     an error. Bogus: refused. Insecure: refused when require-dnssec is on. No record in
 *     either name: "not a DIME domain" (proven only when both answers are secure).
 *  2. DX hosts: the record's dx= hosts in order, else the MX hosts (at most 3, by
 *     preference), else the domain itself; the relay's remote-port (26). An MX host that
 *     does not answer there is tried in dual mode: plain TCP to remote-dual-port (25), a
 *     banner announcing DMTPv1, `STARTTLS <host> MODE=DMTPv1`, TLS, `2xx OK DMTPv1`. A and
 *     AAAA of each host; bogus or failing address lookups skip the host.
 *  3. TLS; certificate accepted when a tls= signature verifies under a POK of a secure
 *     record, otherwise only with a CA chain from ca-file and a matching host name
 *     (X509_check_host). A tls= that matches nothing refuses the DX.
 *  4. SGNT <domain>: org signet verified against the record's POKs.
 *  5. For a user: SGNT <user>, verified against the org signet; when the signet carries a
 *     custody signature or differs from known_fp, HIST and the custody chain are verified
 *     from the first (or the known) signet to the current one.
 *
 * The steps run sequentially, driving the DNS event loop and blocking sockets with timeouts,
 * so this runs in the command-line tool or a worker, never on the DX server's loop.
 */
#ifndef RL_RESOLVE_H
#define RL_RESOLVE_H

#include "dc_mrec.h"
#include "dc_signet.h"
#include "rl_config.h"
#include "rl_dns.h"

#include <openssl/ssl.h>

enum rl_outcome {
    RL_OUT_SECURE = 0,  /* verified; the record is DNSSEC-secure */
    RL_OUT_INSECURE,    /* verified; the record is unsigned (allowed by policy) */
    RL_OUT_NOT_DIME,    /* no record */
    RL_OUT_BOGUS,       /* DNSSEC validation failed: never used, defer */
    RL_OUT_REFUSED,     /* invalid record, policy, certificate or signet check failed */
    RL_OUT_TEMPFAIL,    /* DNS or DX unreachable */
};

struct rl_lookup {
    enum rl_outcome outcome;
    char reason[512];
    char record_name[300];
    enum rl_dns_sec record_sec;
    uint32_t record_ttl;
    char *record_text;
    struct dc_mrec *rec;
    char dx_host[256];
    char dx_addr[64];
    unsigned dx_port;
    bool dual_mode;     /* reached through STARTTLS on remote-dual-port */
    char cert_check[256];
    struct dc_signet *org;
    char org_fp[DC_FP_B64_LEN + 1];
    enum dc_signet_state org_state;
    struct dc_signet *user;
    char user_fp[DC_FP_B64_LEN + 1];
    enum dc_signet_state user_state;
    size_t custody_len; /* signets in the verified custody chain, 0 when not needed */
};

struct rl_resolver {
    const struct rl_config *cfg;
    struct rl_dns *dns;
    SSL_CTX *tls;
};

/* require_dnssec: the local domain's policy. known_fp: the user signet fingerprint seen
 * last (may be NULL). */
enum rl_outcome rl_resolve(struct rl_resolver *r, const char *name, bool require_dnssec,
                           const char *known_fp, struct rl_lookup *out);
void rl_lookup_free(struct rl_lookup *l);
const char *rl_outcome_name(enum rl_outcome o);

#endif
