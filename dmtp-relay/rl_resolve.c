/*
 * rl_resolve - the relay's hooks on dl_resolve: POK pins, syndicates, metrics. See
 * rl_resolve.h.
 */
#include "rl_resolve.h"

#include "rl_metrics.h"
#include "rl_pins.h"
#include "rl_syndicate.h"

#include "dc_dmtp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the POK pins (rl_pins.h) ---- */

static bool pins_on(const struct rl_config *cfg)
{
    return cfg->pin_database != NULL && cfg->pin_database[0] != '\0';
}

/* A "no record" for a pinned domain within its exp=: DIME-required still (why). */
static bool pin_held(struct dl_resolver *r, const char *domain, bool secure, char *why,
                     size_t wl)
{
    const struct rl_config *cfg = rl_resolver_cfg(r);
    return pins_on(cfg) &&
           rl_pins_absent(cfg->pin_database, r->pins_read_only, secure, domain, why, wl);
}

/* ---- syndicates (rl_syndicate.h, daemonlib/SYNDICATE.md) ---- */

/* XSYN <domain> to one syndicate "host[:port]" over DMTP/TLS (certificate: CA chain and host
 * name); DC_OK and *v filled, or why. */
static enum dc_status syn_ask(struct dl_resolver *r, const char *spec, const char *domain,
                              struct rl_syn_view *v, char *why, size_t wl)
{
    char host[262];
    unsigned port = rl_resolver_cfg(r)->remote_port;
    snprintf(host, sizeof(host), "%.261s", spec);
    char *colon = strrchr(host, ':');
    if (colon != NULL) {
        *colon = '\0';
        port = (unsigned)strtoul(colon + 1, NULL, 10);
    }
    if (port == 0 || port > 65535 || host[0] == '\0') {
        snprintf(why, wl, "bad syndicate %.100s", spec);
        return DC_ERR_ARG;
    }
    struct dl_session *s = dl_session_open_ca(r, host, port, why, wl);
    if (s == NULL)
        return DC_ERR_IO;
    enum dc_status st = DC_ERR_IO;
    bool answered = false;
    struct dc_dmtp_reply rep;
    struct dc_err e = {0};
    char line[300];
    snprintf(line, sizeof(line), RL_SYN_VERB " <%s>", domain);
    if (dl_session_cmd(s, &rep, &e, line) != DC_OK) {
        snprintf(why, wl, "%.100s: " RL_SYN_VERB ": %.80s", host, e.msg);
    } else if (rep.code != 250 || rep.nlines != 1) {
        snprintf(why, wl, "%.100s: %d %.80s", host, rep.code, rep.nlines ? rep.lines[0] : "");
        st = DC_ERR_NOTFOUND;
    } else {
        answered = true;
        st = rl_syn_parse(rep.lines[0], domain, v, &e);
        if (st != DC_OK)
            snprintf(why, wl, "%.100s: %.80s", host, e.msg);
    }
    dc_dmtp_reply_free(&rep);
    dl_session_close(s, answered);
    return st;
}

/* Asks every syndicate of domain; evidence: "syndicates=N quorum=Q agreed=A" and what each
 * one said (its POK and org signet fingerprint, or why it did not answer). */
static enum rl_syn_result syn_confirm(void *ctx, const char *domain, const char *pok,
                                      const char *syn, char *evidence, size_t el)
{
    struct dl_resolver *r = ctx;
    const struct rl_config *cfg = rl_resolver_cfg(r);
    char hosts[RL_SYN_MAX][262];
    size_t n = rl_syn_hosts(cfg, syn, hosts), q = rl_syn_quorum(cfg, n);
    if (q == 0)
        return RL_SYN_NONE;
    int kept;
    if (cfg->syndicate_cache_ttl > 0 &&
        rl_syn_cache_get(domain, pok, cfg->syndicate_cache_ttl, &kept, evidence, el))
        return (enum rl_syn_result)kept;
    size_t agreed = 0, at = 0;
    char said[RL_SYN_MAX][400];
    for (size_t i = 0; i < n; i++) {
        struct rl_syn_view v;
        char why[300] = "";
        if (syn_ask(r, hosts[i], domain, &v, why, sizeof(why)) != DC_OK)
            snprintf(said[i], sizeof(said[i]), "%.60s:unanswered(%.160s)", hosts[i], why);
        else if (strcmp(v.pok, pok) == 0)
            snprintf(said[i], sizeof(said[i]), "%.60s:agrees(pok=%s fp=%s)", hosts[i], v.pok,
                     v.fp);
        else
            snprintf(said[i], sizeof(said[i]), "%.60s:disagrees(pok=%s fp=%s)", hosts[i], v.pok,
                     v.fp);
        agreed += strstr(said[i], ":agrees(") != NULL;
    }
    at = (size_t)snprintf(evidence, el, "syndicates=%zu quorum=%zu agreed=%zu", n, q, agreed);
    for (size_t i = 0; i < n && at < el; i++)
        at += (size_t)snprintf(evidence + at, el - at, " %s", said[i]);
    enum rl_syn_result res = agreed >= q ? RL_SYN_AGREED : RL_SYN_REFUSED;
    if (cfg->syndicate_cache_ttl > 0)
        rl_syn_cache_put(domain, pok, (int)res, evidence);
    return res;
}

/* The verified org signet against the domain's pin, and the syndicates when the pin is new or
 * would move without a rollover link. An org signet named by fingerprint (an older one a
 * message was signed under) is checked but moves no pin. */
static bool pin_check(struct dl_resolver *r, const char *domain, struct dl_lookup *l,
                      char *why, size_t wl)
{
    const struct rl_config *cfg = rl_resolver_cfg(r);
    struct rl_syn_ask ask = {.confirm = syn_confirm, .ctx = r, .record_syn = l->rec->syn};
    return !pins_on(cfg) ||
           rl_pins_check(cfg->pin_database, r->pins_read_only || r->org_fp != NULL, domain,
                         l->org, l->record_sec == DL_DNS_SECURE,
                         l->rec->has_exp ? l->rec->exp_days : 0, &ask, why, wl);
}

static const struct dl_resolve_hooks relay_hooks = {
    .absent = pin_held,
    .org_verified = pin_check,
    .vrfy_seen = rl_count_vrfy,
};

void rl_resolver_init(struct dl_resolver *r, const struct rl_config *cfg, SSL_CTX *tls)
{
    memset(r, 0, sizeof(*r));
    r->cfg = (struct dl_resolve_conf){
        .connect_timeout = cfg->connect_timeout,
        .lookup_deadline = cfg->lookup_deadline,
        .dx_max_hosts = cfg->dx_max_hosts,
        .dx_max_addresses = cfg->dx_max_addresses,
        .remote_port = cfg->remote_port,
        .remote_dual_port = cfg->remote_dual_port,
    };
    r->hooks = &relay_hooks;
    r->hook_ctx = (void *)cfg;
    r->tls = tls;
}
