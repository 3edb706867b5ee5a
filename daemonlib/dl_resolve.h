/*
 * dl_resolve - what we believe about a remote name (domain or user@domain): its DIME
 * management record and DNSSEC status, the DX it talks to, the DX certificate check, and the
 * org and user signets verified against the record. One implementation for the relay (which
 * adds its POK pins, syndicates and metrics through dl_resolve_hooks, dmtp-relay/rl_resolve.c)
 * and for dime-client send (the user's own lookup, so that the provider cannot substitute
 * keys).
 *
 * Steps (PROFILE.md sections 3 and 5):
 *  1. TXT _dime.<domain>, then _dx.<domain>. Several TXT RRs that parse as DIME records are
 *     an error. Bogus: refused. Insecure: refused when require-dnssec is on. No record in
 *     either name: the nearest ancestor with a record (at most DL_SUB_MAX_UP labels up)
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
 *  A refresh of signets the cache still holds (dl_resolver.held_org, held_user) asks
 *  `VRFY <name> [fp]` before steps 4 and 5: CURRENT keeps the held signet (the org signet is
 *  verified against the record's POKs all the same; the user signet only when the org
 *  signet it was verified under is still current), UPDATE, an error or any other answer
 *  fetches with SGNT and verifies as above. The fingerprint of an UPDATE decides nothing.
 *
 * The steps run sequentially, driving the DNS event loop and blocking sockets with timeouts,
 * so this runs in the command-line tool or a worker, never on the DX server's loop. Bounds:
 * each DNS query, connect and read waits at most connect-timeout, and the whole resolution at
 * most lookup-deadline (then DL_OUT_TEMPFAIL, "lookup-deadline ... passed"); at most
 * dx-max-hosts DX hosts are tried, and dx-max-addresses addresses of each.
 */
#ifndef DL_RESOLVE_H
#define DL_RESOLVE_H

#include "dc_mrec.h"
#include "dc_signet.h"
#include "dl_dns.h"

#include <openssl/ssl.h>
#include <sys/socket.h>

enum dl_outcome {
    DL_OUT_SECURE = 0,  /* verified; the record is DNSSEC-secure */
    DL_OUT_INSECURE,    /* verified; the record is unsigned (allowed by policy) */
    DL_OUT_NOT_DIME,    /* no record */
    DL_OUT_BOGUS,       /* DNSSEC validation failed: never used, defer */
    DL_OUT_REFUSED,     /* invalid record, policy, certificate or signet check failed */
    DL_OUT_TEMPFAIL,    /* DNS or DX unreachable */
};

struct dl_lookup {
    enum dl_outcome outcome;
    char reason[512];
    char record_name[300];
    enum dl_dns_sec record_sec;
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
    /* and that refusal is definitive enough for a permanent "no such user" (dl_no_such_user):
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
bool dl_no_such_user(int code, enum dl_dns_sec record_sec, int policy);

/* How far up a name without a DIME record of its own looks for an ancestor's record and its
 * sub= (never up to a single-label name, a top-level domain). */
#define DL_SUB_MAX_UP 3

/* A signet the relay's cache still holds after its entry expired (rl_lookup.c), and the
 * fingerprint it was stored under; sig NULL: none. */
struct dl_held {
    const struct dc_signet *sig;
    char fp[DC_FP_B64_LEN + 1];
};

/* The answer to VRFY <name> [fp] (dmime-dmtp.md 11.4): CURRENT, UPDATE <newfp>, or anything
 * else (an error, a DX that does not know VRFY, a reply of another form). The relay counts
 * them (dl_resolve_hooks.vrfy_seen). */
enum dl_vrfy { DL_VRFY_CURRENT, DL_VRFY_UPDATE, DL_VRFY_OTHER, DL_VRFYS };
const char *dl_vrfy_name(enum dl_vrfy v);

/* The bounds and ports of a resolution (the relay's options of the same names). */
struct dl_resolve_conf {
    unsigned connect_timeout;  /* seconds per DNS query, connect and read */
    unsigned lookup_deadline;  /* seconds for the whole resolution; 0: none */
    unsigned dx_max_hosts;     /* 0: all */
    unsigned dx_max_addresses; /* of each host; 0: all */
    unsigned remote_port;      /* DMTP (26) */
    unsigned remote_dual_port; /* dual mode on an MX host (25) */
};

struct dl_resolver;
/* What a caller adds to a resolution; any of them may be NULL. */
struct dl_resolve_hooks {
    /* No record for domain (secure: proven by DNSSEC): true (why filled) when the caller
     * still holds it DIME, which makes the outcome a temporary failure. */
    bool (*absent)(struct dl_resolver *r, const char *domain, bool secure, char *why,
                   size_t wl);
    /* The org signet of domain verified against its record (l): false (why filled) refuses
     * it for now (temporary failure). */
    bool (*org_verified)(struct dl_resolver *r, const char *domain, struct dl_lookup *l,
                         char *why, size_t wl);
    /* Each VRFY answer. */
    void (*vrfy_seen)(enum dl_vrfy v);
};

struct dl_resolver {
    struct dl_resolve_conf cfg;
    const struct dl_resolve_hooks *hooks;
    void *hook_ctx;
    /* NULL: connect to the DX hosts' addresses from DNS; else "addr:port" (or "[v6]:port"),
     * where every DX connection goes instead, the DX host name still deciding the certificate
     * check (testing and diagnosis, like curl's --connect-to) */
    const char *connect_to;
    struct dl_dns *dns;
    SSL_CTX *tls;
    /* NULL: the org signet the DX serves now; else the one with this (full or crypto)
     * fingerprint (SGNT <domain> [fp]): mail names the org signet it was signed under, which
     * a SOK rollover may have replaced since. Verified against the record's POKs all the
     * same. */
    const char *org_fp;
    long deadline_ms; /* set by each resolution: CLOCK_MONOTONIC ms + lookup-deadline */
    /* for the hooks: decide, store nothing (the relay's POK pins for dime-relayctl lookup) */
    bool pins_read_only;
    /* what the cache holds of the domain's org signet and of the user's (its entries
     * expired): checked with VRFY before anything is fetched (step 4/5); owned by the caller,
     * which clears them after the resolution */
    struct dl_held held_org, held_user;
};

/* require_dnssec: the local domain's policy. known_fp: the user signet fingerprint seen
 * last (may be NULL). */
enum dl_outcome dl_resolve(struct dl_resolver *r, const char *name, bool require_dnssec,
                           const char *known_fp, struct dl_lookup *out);
void dl_lookup_free(struct dl_lookup *l);

/*
 * Mail transfer: the same steps for a domain (record, DX, certificate, org signet verified
 * against the record), and then the DMTP session stays open for the caller (banner read, no
 * EHLO sent yet). *out is set only for DL_OUT_SECURE / DL_OUT_INSECURE. reply_timeout bounds
 * each write, and each whole reply from the end of its command (a DATA reply waits for the
 * receiver's checks), however slowly the peer drips it.
 */
struct dl_session;
struct dc_dmtp_reply;
enum dl_outcome dl_resolve_open(struct dl_resolver *r, const char *domain, bool require_dnssec,
                                unsigned reply_timeout, struct dl_lookup *out,
                                struct dl_session **s);
/* One command line (without CRLF) and its reply; rep is freed by the caller in every case. */
enum dc_status dl_session_cmd(struct dl_session *s, struct dc_dmtp_reply *rep,
                              struct dc_err *err, const char *line);
/* The D/MIME bytes, CRLF, and the final reply. */
enum dc_status dl_session_data(struct dl_session *s, const uint8_t *p, size_t n,
                               struct dc_dmtp_reply *rep, struct dc_err *err);
/* A session kept open between messages is still fit for the next command when nothing came
 * from the peer meanwhile: a DMTP server speaks only when asked, so readable bytes or an end
 * of stream (its idle timeout, a 421 on shutdown) mean the session is gone. */
bool dl_session_quiet(struct dl_session *s);
/* quit: send QUIT first (a session still in a good state). */
void dl_session_close(struct dl_session *s, bool quit);
const char *dl_outcome_name(enum dl_outcome o);

/* A DMTP/TLS session to host:port whose certificate has a CA chain (the resolver's TLS
 * context) and matches host, banner read; each reply within the resolution's deadline
 * (r->deadline_ms, connect-timeout a read). NULL and why otherwise. */
struct dl_session *dl_session_open_ca(struct dl_resolver *r, const char *host, unsigned port,
                                      char *why, size_t wl);

/* "addr:port" or "[v6addr]:port" (numeric) as a socket address (dl_resolver.connect_to). */
struct sockaddr_storage;
enum dc_status dl_connect_to_parse(const char *spec, struct sockaddr_storage *ss,
                                   socklen_t *sl);

#endif
