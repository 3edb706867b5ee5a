/*
 * rl_resolve - what the relay believes about a remote name (domain or user@domain):
 * its DIME management record and DNSSEC status, the DX it talks to, the DX certificate
 * check, and the org and user signets verified against the record.
 *
 * Steps (PROFILE.md sections 3 and 5):
 *  1. TXT _dime.<domain>, then _dx.<domain>. Several TXT RRs that parse as DIME records are
 *     an error. Bogus: refused. Insecure: refused when require-dnssec is on. No record in
 *     either name: the nearest ancestor with a record (at most RL_SUB_MAX_UP labels up)
 *     decides by its sub=: strict (the default) refuses the name (every subdomain must
 *     publish its own record, so this one is broken, never plain SMTP), relaxed makes the
 *     ancestor's record, DX and org signet stand for the name, explicit leaves it "not a
 *     DIME domain". No ancestor record either: "not a DIME domain" (proven only when every
 *     answer is secure).
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
 *  A refresh of signets the cache still holds (rl_resolver.held_org, held_user) asks
 *  `VRFY <name> [fp]` before steps 4 and 5: CURRENT keeps the held signet (the org signet is
 *  verified against the record's POKs all the same; the user signet only when the org
 *  signet it was verified under is still current), UPDATE, an error or any other answer
 *  fetches with SGNT and verifies as above. The fingerprint of an UPDATE decides nothing.
 *
 * The steps run sequentially, driving the DNS event loop and blocking sockets with timeouts,
 * so this runs in the command-line tool or a worker, never on the DX server's loop. Bounds:
 * each DNS query, connect and read waits at most connect-timeout, and the whole resolution at
 * most lookup-deadline (then RL_OUT_TEMPFAIL, "lookup-deadline ... passed"); at most
 * dx-max-hosts DX hosts are tried, and dx-max-addresses addresses of each.
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
    /* SGNT <user> was refused for good (5xx) by a DX whose org signet verified: the domain
     * has no signet for that user (outcome refused; its record's pol= decides whether the
     * user may get plain SMTP, LOOKUP.md) */
    bool no_user_signet;
    /* and that refusal is definitive enough for a permanent "no such user" (rl_no_such_user):
     * LOOKUP.md no-such-user=yes */
    bool no_such_user;
    /* a name without a record of its own that follows an ancestor's record (sub=relaxed):
     * that ancestor, whose record, DX and org signet stand for it; "" otherwise */
    char inherited_from[256];
};

/* Whether the DX's refusal of SGNT <user> (its reply code) means the address does not exist
 * at the domain, for good: the DX answered 576 (no such signet) or 510 (invalid recipient),
 * its TLS certificate and org signet verified (the caller asks only then), the record was
 * DNSSEC-secure and says pol=strict (the domain takes DIME only, so an address without a
 * signet receives no mail there). Anything else (another 5xx, an insecure record, pol=mixed or
 * experimental, whose users without DIME still get plain SMTP) is not. */
bool rl_no_such_user(int code, enum rl_dns_sec record_sec, int policy);

/* How far up a name without a DIME record of its own looks for an ancestor's record and its
 * sub= (never up to a single-label name, a top-level domain). */
#define RL_SUB_MAX_UP 3

/* A signet the relay's cache still holds after its entry expired (rl_lookup.c), and the
 * fingerprint it was stored under; sig NULL: none. */
struct rl_held {
    const struct dc_signet *sig;
    char fp[DC_FP_B64_LEN + 1];
};

/* The answer to VRFY <name> [fp] (dmime-dmtp.md 11.4): CURRENT, UPDATE <newfp>, or anything
 * else (an error, a DX that does not know VRFY, a reply of another form). Counted in the
 * relay's metrics (rl_count_vrfy). */
enum rl_vrfy { RL_VRFY_CURRENT, RL_VRFY_UPDATE, RL_VRFY_OTHER, RL_VRFYS };
const char *rl_vrfy_name(enum rl_vrfy v);

struct rl_resolver {
    const struct rl_config *cfg;
    struct rl_dns *dns;
    SSL_CTX *tls;
    /* NULL: the org signet the DX serves now; else the one with this (full or crypto)
     * fingerprint (SGNT <domain> [fp]): mail names the org signet it was signed under, which
     * a SOK rollover may have replaced since. Verified against the record's POKs all the
     * same. */
    const char *org_fp;
    long deadline_ms; /* set by each resolution: CLOCK_MONOTONIC ms + lookup-deadline */
    /* the POK pins (rl_pins.h, cfg->pin_database) are checked after the org signet verified
     * and on a "no record"; true: decided, never stored (dime-relayctl lookup) */
    bool pins_read_only;
    /* what the cache holds of the domain's org signet and of the user's (its entries
     * expired): checked with VRFY before anything is fetched (step 4/5); owned by the caller,
     * which clears them after the resolution */
    struct rl_held held_org, held_user;
};

/* require_dnssec: the local domain's policy. known_fp: the user signet fingerprint seen
 * last (may be NULL). */
enum rl_outcome rl_resolve(struct rl_resolver *r, const char *name, bool require_dnssec,
                           const char *known_fp, struct rl_lookup *out);
void rl_lookup_free(struct rl_lookup *l);

/*
 * Mail transfer: the same steps for a domain (record, DX, certificate, org signet verified
 * against the record), and then the DMTP session stays open for the caller (banner read, no
 * EHLO sent yet). *out is set only for RL_OUT_SECURE / RL_OUT_INSECURE. reply_timeout bounds
 * each write, and each whole reply from the end of its command (a DATA reply waits for the
 * receiver's checks), however slowly the peer drips it.
 */
struct rl_session;
struct dc_dmtp_reply;
enum rl_outcome rl_resolve_open(struct rl_resolver *r, const char *domain, bool require_dnssec,
                                unsigned reply_timeout, struct rl_lookup *out,
                                struct rl_session **s);
/* One command line (without CRLF) and its reply; rep is freed by the caller in every case. */
enum dc_status rl_session_cmd(struct rl_session *s, struct dc_dmtp_reply *rep,
                              struct dc_err *err, const char *line);
/* The D/MIME bytes, CRLF, and the final reply. */
enum dc_status rl_session_data(struct rl_session *s, const uint8_t *p, size_t n,
                               struct dc_dmtp_reply *rep, struct dc_err *err);
/* A session kept open between messages is still fit for the next command when nothing came
 * from the peer meanwhile: a DMTP server speaks only when asked, so readable bytes or an end
 * of stream (its idle timeout, a 421 on shutdown) mean the session is gone. */
bool rl_session_quiet(struct rl_session *s);
/* quit: send QUIT first (a session still in a good state). */
void rl_session_close(struct rl_session *s, bool quit);
const char *rl_outcome_name(enum rl_outcome o);

#endif
