/*
 * dimectl check DOMAIN - the domain as another DIME relay sees it, one line per thing that
 * must be right (like opendkim-testkey), each "OK" or what is wrong:
 *
 *   record   _dime.DOMAIN (or _dx.DOMAIN) found, DNSSEC-secure
 *   parse    the record parses
 *   pok      the record names the POK of the vault's org signet
 *   dx-host  each DX host resolves (A/AAAA)
 *   dx-port  the DX port accepts a connection and answers with a DMTPv1 banner
 *   tls      the DX's certificate matches a tls= signature of the record
 *   signet   the DX answers SGNT DOMAIN with the vault's org signet
 *
 * It resolves exactly as dime-relayd does for mail to DOMAIN: dl_resolve with the relay's hooks (rl_resolve.h) from the relay's
 * library (libunbound with relay { trust-anchor*, dns-* } of the same configuration file,
 * require-dnssec on, the DX port remote-port), so a line that fails here fails for remote
 * relays too. The relay's steps stop at the first failure; lines after it say "not checked".
 * The lookup socket of a running relay (LOOKUP.md) was not used: its answer is one outcome
 * and a reason, not the steps, and it answers from its cache.
 *
 * Exit status 0 when every line is OK, 1 otherwise (4: configuration or resolver failure).
 */
#include "dimectl.h"

#include "dc_b64.h"
#include "dc_mrec.h"
#include "dc_signet.h"
#include "rl_config.h"
#include "dl_resolve_int.h"
#include "rl_resolve.h"
#include "rl_shared.h"
#include "dl_tls.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct report {
    unsigned failed;
};

static void line(struct report *r, bool ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void line(struct report *r, bool ok, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%-8s %-4s ", what, ok ? "OK" : "FAIL");
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    if (!ok)
        r->failed++;
}

static void not_checked(struct report *r, const char *what, const char *because)
{
    line(r, false, what, "not checked: %s", because);
}

/* dx-host: the hosts a relay would try (dx=, else MX, else the domain), each with its
 * addresses. OK when at least one host has an address. */
static bool check_hosts(struct report *rep, struct dl_resolver *r, const char *domain,
                        struct dl_lookup *l)
{
    static const int types[] = {DL_DNS_TYPE_A, DL_DNS_TYPE_AAAA};
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    r->deadline_ms = ts.tv_sec * 1000L + ts.tv_nsec / 1000000L +
                     (long)(r->cfg.lookup_deadline ? r->cfg.lookup_deadline : 30) * 1000;
    struct hosts *h = dc_xcalloc(1, sizeof(*h));
    dl_dx_hosts(r, domain, l, h);
    bool any = false;
    for (size_t i = 0; i < h->n && i < 3; i++) {
        char addrs[200] = "", why[300] = "";
        size_t na = 0;
        for (size_t t = 0; t < 2; t++) {
            struct dl_dns_answer a;
            dl_dns_lookup(r->dns, h->name[i], types[t], (int)r->cfg.connect_timeout * 1000, &a);
            if (a.sec == DL_DNS_BOGUS || a.sec == DL_DNS_TEMPFAIL)
                snprintf(why, sizeof(why), "%s lookup %s: %s", t ? "AAAA" : "A",
                         dl_dns_sec_name(a.sec), a.why);
            for (size_t k = 0; k < a.n; k++) {
                char ab[64];
                if ((a.rr[k].len == 4 && inet_ntop(AF_INET, a.rr[k].data, ab, sizeof(ab))) ||
                    (a.rr[k].len == 16 && inet_ntop(AF_INET6, a.rr[k].data, ab, sizeof(ab)))) {
                    size_t used = strlen(addrs);
                    snprintf(addrs + used, sizeof(addrs) - used, "%s%s", na++ ? " " : "", ab);
                }
            }
            if (a.n > 0 && a.sec != DL_DNS_SECURE) {
                size_t used = strlen(addrs);
                snprintf(addrs + used, sizeof(addrs) - used, " (%s)", dl_dns_sec_name(a.sec));
            }
            dl_dns_answer_free(&a);
        }
        if (na > 0)
            line(rep, true, "dx-host", "%s%s -> %s", h->name[i], h->mx[i] ? " (MX)" : "", addrs);
        else
            line(rep, false, "dx-host", "%s has no address (no A or AAAA record%s%s): publish "
                 "the A line that 'dimectl setup' printed", h->name[i], why[0] ? "; " : "",
                 why);
        any = any || na > 0;
    }
    free(h);
    return any;
}

int dimectl_check(struct kv_vault *v, const char *config_path, int argc, char **argv)
{
    if (argc != 2)
        return say_err(EX_USAGE, "usage: dimectl check DOMAIN");
    const char *domain = argv[1];
    struct dc_err err = {0};
    struct kv_domain d = {0};
    struct dc_signet *org = NULL;
    uint8_t pok[32];
    char pokb[64], fp[DC_FP_B64_LEN + 1], fpc[DC_FP_B64_LEN + 1];
    if (kv_store_domain_get(v->store, &d, &err) != DC_OK)
        return say_err(EX_REFUSED, "check: %s", err.msg);
    if (strcmp(d.name, domain) != 0) {
        say_err(EX_REFUSED, "check: the vault holds %s, not %s", d.name, domain);
        kv_domain_clear(&d);
        return EX_REFUSED;
    }
    if (dc_signet_parse(d.signet, d.signet_len, &org, &err) != DC_OK ||
        dc_signet_signing_key(org, pok, &err) != DC_OK ||
        dc_signet_fp(org, fp, fpc, &err) != DC_OK) {
        kv_domain_clear(&d);
        dc_signet_free(org);
        return say_err(EX_INTERNAL, "stored org signet: %s", err.msg);
    }
    kv_domain_clear(&d);
    dc_b64_encode(pok, 32, pokb, 0);

    struct rl_config cfg;
    if (rl_config_load(config_path, false, &cfg, &err) != DC_OK) {
        dc_signet_free(org);
        return say_err(EX_INTERNAL, "%s", err.msg);
    }
    struct dl_resolver r;
    rl_resolver_init(&r, &cfg, NULL);
    r.pins_read_only = true; /* a check moves no pin */
    struct report rep = {0};
    int rc = EX_INTERNAL;
    /* with state = postgresql the pins the nodes check against are the shared ones, not
     * pin-database (which the relays then leave unused) */
    if (cfg.state_pg && rl_shared_start(cfg.state_conninfo, cfg.queue_database, &err) != DC_OK) {
        say_err(EX_INTERNAL, "shared relay state: %s", err.msg);
        goto out;
    }
    if (dl_dns_unbound_new(&cfg.dns, &r.dns, &err) != DC_OK ||
        dl_tls_client_ctx(cfg.ca_file, &r.tls, &err) != DC_OK) {
        say_err(EX_INTERNAL, "resolver: %s", err.msg);
        goto out;
    }
    struct dl_lookup l;
    enum dl_outcome o = dl_resolve(&r, domain, true, NULL, &l);

    /* record and parse */
    if (l.rec != NULL || o == DL_OUT_REFUSED) {
        bool secure = l.record_sec == DL_DNS_SECURE;
        line(&rep, secure, "record", "%s %s", l.record_name,
             secure ? "found, DNSSEC secure"
                    : "found but not DNSSEC-signed (insecure): remote relays require DNSSEC; "
                      "sign the zone and publish its DS in the parent");
        if (l.rec != NULL)
            line(&rep, true, "parse", "ver=1, %zu pok, %zu tls, %zu dx, pol=%s", l.rec->pok_count,
                 l.rec->tls_count, l.rec->dx_count, dc_mrec_policy_name(l.rec->policy));
        else
            line(&rep, false, "parse", "%s", l.reason);
    } else {
        line(&rep, false, "record", "%s", l.reason);
        not_checked(&rep, "parse", "no record");
    }
    /* pok */
    if (l.rec != NULL) {
        bool found = false;
        for (size_t i = 0; i < l.rec->pok_count; i++)
            found = found || memcmp(l.rec->pok[i], pok, 32) == 0;
        char first[64] = "";
        if (l.rec->pok_count > 0)
            dc_b64_encode(l.rec->pok[0], 32, first, 0);
        if (found)
            line(&rep, true, "pok", "%s is the vault's POK", pokb);
        else
            line(&rep, false, "pok", "the record names %s%s, the vault's POK is %s: publish "
                 "the record of 'dimectl dns-record'", first,
                 l.rec->pok_count > 1 ? " (and others)" : "", pokb);
    } else {
        not_checked(&rep, "pok", "no record");
    }
    if (l.rec == NULL) {
        not_checked(&rep, "dx-host", "no record");
        not_checked(&rep, "dx-port", "no record");
        not_checked(&rep, "tls", "no record");
        not_checked(&rep, "signet", "no record");
        goto done;
    }
    bool hosts_ok = check_hosts(&rep, &r, domain, &l);
    if (l.record_sec != DL_DNS_SECURE) {
        const char *why = "remote relays (require-dnssec) stop at the insecure record";
        not_checked(&rep, "dx-port", why);
        not_checked(&rep, "tls", why);
        not_checked(&rep, "signet", why);
        goto done;
    }
    /* dx-port: the relay connected (dx_host set) and went on */
    bool banner_fail = strstr(l.reason, "no DMTPv1 banner") != NULL;
    bool tls_fail = strstr(l.reason, "TLS handshake failed") != NULL;
    bool connected = l.dx_host[0] != '\0' && !banner_fail && !tls_fail;
    if (connected)
        line(&rep, true, "dx-port", "%s (%s) port %u: %s", l.dx_host, l.dx_addr, l.dx_port,
             l.org != NULL ? "DMTPv1 banner" : "connected, TLS handshake done (the banner "
                                               "follows the certificate check)");
    else if (!hosts_ok)
        not_checked(&rep, "dx-port", "no DX host resolves");
    else
        line(&rep, false, "dx-port", "%s", l.reason);
    /* tls */
    if (l.cert_check[0] != '\0')
        line(&rep, true, "tls", "%s", l.cert_check);
    else if (connected && strstr(l.reason, "certificate") != NULL) {
        /* compare with the certificate this host is configured with: which side is stale */
        uint8_t *der = NULL;
        size_t dl = 0;
        const char *hint = "";
        if (cfg.tls_cert != NULL && dc_mrec_cert_der(cfg.tls_cert, &der, &dl, &err) == DC_OK)
            hint = dc_mrec_tls_verify(l.rec, der, dl, NULL, &err) == DC_OK
                       ? " (the record's tls= matches relay { tls-certificate } here: the DX "
                         "serves another certificate)"
                       : " (nor does it match relay { tls-certificate } here: publish the "
                         "record of 'dimectl dns-record --tls-cert' again)";
        line(&rep, false, "tls", "%s%s", l.reason, hint);
        free(der);
    } else {
        not_checked(&rep, "tls", connected ? l.reason : "no DX connection");
    }
    /* signet */
    if (l.org != NULL) {
        char sfp[DC_FP_B64_LEN + 1], sfpc[DC_FP_B64_LEN + 1];
        dc_signet_fp(l.org, sfp, sfpc, NULL);
        if (strcmp(sfp, fp) == 0)
            line(&rep, true, "signet", "SGNT %s: the vault's org signet %s (%s)", domain, fp,
                 dc_signet_state_name(l.org_state));
        else
            line(&rep, false, "signet", "SGNT %s answers org signet %s, the vault's is %s: "
                 "is the DX another domain's relay?", domain, sfp, fp);
    } else if (l.cert_check[0] != '\0') {
        line(&rep, false, "signet", "%s", l.reason);
    } else {
        not_checked(&rep, "signet", "no verified DX connection");
    }
    /* pin: the verified org signet against this domain's POK pin, as a relay holding one
     * checks it */
    if (l.org != NULL && o != DL_OUT_SECURE && o != DL_OUT_INSECURE)
        line(&rep, false, "pin", "%s", l.reason);
done:
    printf("%s: %s\n", domain, rep.failed == 0 ? "all OK" : "NOT OK");
    rc = rep.failed == 0 && o == DL_OUT_SECURE ? EX_OK : EX_REFUSED;
    dl_lookup_free(&l);
out:
    rl_shared_stop();
    dl_dns_free(r.dns);
    SSL_CTX_free(r.tls);
    rl_config_free(&cfg);
    dc_signet_free(org);
    return rc;
}
