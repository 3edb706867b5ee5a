/*
 * rl_config - reads and checks the relay's settings. See rl_config.h.
 */
#include "rl_config.h"

#include "dc_config.h"
#include "dl_priv.h"
#include "rl_dual.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static char *dup_opt(cfg_t *sec, const char *opt)
{
    const char *v = dc_config_str(sec, opt);
    return v != NULL ? dc_xstrdup(v) : NULL;
}

static char **dup_list(cfg_t *sec, const char *opt, size_t *n)
{
    *n = cfg_size(sec, opt);
    char **l = dc_xcalloc(*n + 1, sizeof(char *));
    for (size_t i = 0; i < *n; i++)
        l[i] = dc_xstrdup(cfg_getnstr(sec, opt, (unsigned)i));
    return l;
}

static enum dc_status get_ulong(cfg_t *sec, const char *opt, long lo, long hi,
                                unsigned long *out, const char *path, struct dc_err *err)
{
    long v = cfg_getint(sec, opt);
    if (v < lo || v > hi)
        return dc_fail(err, DC_ERR_FIELD, "%s: relay: %s %ld is outside %ld..%ld", path, opt, v,
                       lo, hi);
    *out = (unsigned long)v;
    return DC_OK;
}

static enum dc_status get_uint(cfg_t *sec, const char *opt, long lo, long hi, unsigned *out,
                               const char *path, struct dc_err *err)
{
    unsigned long v = 0;
    enum dc_status s = get_ulong(sec, opt, lo, hi, &v, path, err);
    *out = (unsigned)v;
    return s;
}

bool rl_config_hostport(const char *spec, char host[64], unsigned *port)
{
    const char *colon = strrchr(spec, ':'), *h = spec;
    char *end = NULL;
    long p = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
    size_t hl = colon != NULL ? (size_t)(colon - spec) : 0;
    if (hl > 1 && spec[0] == '[' && spec[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (colon == NULL || end == colon + 1 || *end != '\0' || p < 1 || p > 65535 || hl == 0 ||
        hl >= 64)
        return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (unsigned)p;
    return true;
}

enum dc_status rl_config_load(const char *path, bool need_server, struct rl_config *out,
                              struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    cfg_t *cfg;
    enum dc_status s = dc_config_parse(path, &cfg, err);
    if (s != DC_OK)
        return s;
    if (cfg_size(cfg, "relay") != 1) {
        cfg_free(cfg);
        return dc_fail(err, DC_ERR_FIELD, "%s: no relay { } section", path);
    }
    cfg_t *sec = cfg_getsec(cfg, "relay");
    out->hostname = dup_opt(sec, "hostname");
    if (out->hostname == NULL) {
        char h[256] = {0};
        gethostname(h, sizeof(h) - 1);
        out->hostname = dc_xstrdup(h);
    }
    out->listen_address = dup_opt(sec, "listen-address");
    out->tls_cert = dup_opt(sec, "tls-certificate");
    out->tls_key = dup_opt(sec, "tls-key");
    out->ca_file = dup_opt(sec, "ca-file");
    out->keyvault_socket = dup_opt(sec, "keyvault-socket");
    out->pid_file = dup_opt(sec, "pid-file");
    out->user = dup_opt(sec, "user");
    out->cache_database = dup_opt(sec, "cache-database");
    out->pin_database = dup_opt(sec, "pin-database");
    out->lookup_socket = dup_opt(sec, "lookup-socket");
    out->submit_socket = dup_opt(sec, "submit-socket");
    out->queue_database = dup_opt(sec, "queue-database");
    out->queue_key_file = dup_opt(sec, "queue-key-file");
    out->data_spool_directory = dup_opt(sec, "data-spool-directory");
    out->inject_address = dup_opt(sec, "inject-address");
    out->metrics_socket = dup_opt(sec, "metrics-socket");
    out->metrics_listen = dup_opt(sec, "metrics-listen");
    out->dual_mode_listen = dup_opt(sec, "dual-mode-listen");
    out->dual_mode_postfix = dup_opt(sec, "dual-mode-postfix");
    out->dns.trust_anchor_file = dup_opt(sec, "trust-anchor-file");
    out->lists[0] = dup_list(sec, "trust-anchor", &out->dns.n_trust_anchors);
    out->lists[1] = dup_list(sec, "dns-stub", &out->dns.n_stubs);
    out->lists[2] = dup_list(sec, "dns-forwarder", &out->dns.n_forwarders);
    out->lists[3] = dup_list(sec, "dns-local-zone", &out->dns.n_local_zones);
    out->dns.trust_anchors = (const char *const *)out->lists[0];
    out->dns.stubs = (const char *const *)out->lists[1];
    out->dns.forwarders = (const char *const *)out->lists[2];
    out->dns.local_zones = (const char *const *)out->lists[3];
    out->lists[4] = dup_list(sec, "syndicates", &out->n_syndicates);
    out->lists[5] = dup_list(sec, "syndicate-for", &out->n_syndicate_for);
    out->syndicates = (const char *const *)out->lists[4];
    out->syndicate_for = (const char *const *)out->lists[5];
    long q = cfg_getint(sec, "syndicate-quorum");
    if (q < -1 || q > 64)
        s = dc_fail(err, DC_ERR_FIELD, "%s: relay: syndicate-quorum %ld is outside -1..64", path,
                    q);
    out->syndicate_quorum = (int)q;

    if (s == DC_OK)
        s = get_uint(sec, "listen-port", 1, 65535, &out->listen_port, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "remote-port", 1, 65535, &out->remote_port, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "remote-dual-port", 1, 65535, &out->remote_dual_port, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "dual-mode-timeout", 1, 86400, &out->dual_mode_timeout, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "dual-mode-time-limit", 1, 7 * 86400, &out->dual_mode_time_limit,
                     path, err);
    if (s == DC_OK)
        s = get_uint(sec, "max-clients", 1, 65536, &out->max_clients, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "idle-timeout", 1, 3600, &out->idle_timeout, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "max-clients-per-address", 1, 65536, &out->max_clients_per_address,
                     path, err);
    if (s == DC_OK)
        s = get_uint(sec, "data-timeout", 1, 3600, &out->data_timeout, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "data-time-limit", 1, 86400, &out->data_time_limit, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "signet-workers", 1, 1024, &out->signet_workers, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "keyvault-timeout", 1, 600, &out->keyvault_timeout, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "signet-rate", 1, 1000000, &out->signet_rate, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "signet-burst", 1, 1000000, &out->signet_burst, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "max-errors", 1, 1000, &out->max_errors, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "connect-timeout", 1, 600, &out->connect_timeout, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "lookup-deadline", 1, 3600, &out->lookup_deadline, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "dx-max-hosts", 1, 64, &out->dx_max_hosts, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "dx-max-addresses", 1, 64, &out->dx_max_addresses, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "not-dime-cache-ttl", 0, 86400, &out->not_dime_cache_ttl, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "syndicate-cache-ttl", 0, 86400, &out->syndicate_cache_ttl, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "signet-cache-ttl", 0, 30 * 86400, &out->signet_cache_ttl, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "lookup-workers", 1, 1024, &out->lookup_workers, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "lookup-domain-concurrency", 1, 1024, &out->lookup_domain_concurrency,
                     path, err);
    if (s == DC_OK)
        s = get_uint(sec, "submit-workers", 1, 1024, &out->submit_workers, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "submit-timeout", 1, 86400, &out->submit_timeout, path, err);
    unsigned tmp = 0;
    if (s == DC_OK)
        s = get_uint(sec, "max-message-size", 1024, 1000000000, &tmp, path, err);
    out->max_message_size = tmp;
    if (s == DC_OK)
        s = get_uint(sec, "submit-max-total", 1024, 2000000000, &tmp, path, err);
    out->submit_max_total = tmp;
    if (s == DC_OK)
        s = get_uint(sec, "data-memory-limit", 1024, 2000000000, &tmp, path, err);
    out->data_memory_limit = tmp;
    if (s == DC_OK)
        s = get_uint(sec, "data-spool-threshold", 0, 2000000000, &tmp, path, err);
    out->data_spool_threshold = tmp;
    /* the largest message held in memory must fit, with its CRLF: one of max-message-size,
     * or one just at data-spool-threshold when larger ones are spooled */
    unsigned long in_memory = out->max_message_size + 2;
    if (out->data_spool_threshold > 0 && out->data_spool_threshold + 2 < in_memory)
        in_memory = out->data_spool_threshold + 2;
    if (s == DC_OK && out->data_memory_limit < in_memory)
        s = dc_fail(err, DC_ERR_FIELD, "%s: relay: data-memory-limit is below max-message-size "
                    "(or data-spool-threshold, when smaller)", path);
    if (s == DC_OK)
        s = get_uint(sec, "queue-lifetime", 1, 365 * 86400, &out->queue_lifetime, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "queue-max-messages", 1, 1000000000, &out->queue_max_messages, path,
                     err);
    if (s == DC_OK)
        s = get_ulong(sec, "queue-min-free", 0, 1L << 50, &out->queue_min_free, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "retry-min", 1, 86400, &out->retry_min, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "retry-max", 1, 7 * 86400, &out->retry_max, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "queue-scan-interval", 1, 3600, &out->queue_scan_interval, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "delivery-workers", 1, 1024, &out->delivery_workers, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "destination-concurrency", 1, 1024, &out->destination_concurrency,
                     path, err);
    if (s == DC_OK)
        s = get_uint(sec, "delivery-reply-timeout", 1, 3600, &out->delivery_reply_timeout, path,
                     err);
    if (s == DC_OK)
        s = get_uint(sec, "inbound-workers", 1, 1024, &out->inbound_workers, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "inject-port", 1, 65535, &out->inject_port, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "inject-concurrency", 1, 64, &out->inject_concurrency, path, err);
    if (s == DC_OK)
        s = get_uint(sec, "inject-hold-after", 1, 365 * 86400, &out->inject_hold_after, path,
                     err);
    if (s == DC_OK && out->retry_max < out->retry_min)
        s = dc_fail(err, DC_ERR_FIELD, "%s: relay: retry-max is below retry-min", path);
    if (s == DC_OK && (out->submit_socket == NULL || out->submit_socket[0] != '/' ||
                       out->queue_database == NULL || out->queue_database[0] != '/' ||
                       out->queue_key_file == NULL || out->queue_key_file[0] != '/'))
        s = dc_fail(err, DC_ERR_FIELD, "%s: relay: submit-socket, queue-database and "
                    "queue-key-file must be absolute paths", path);
    char mh[64];
    unsigned mp;
    if (s == DC_OK && out->metrics_listen != NULL &&
        !rl_config_hostport(out->metrics_listen, mh, &mp))
        s = dc_fail(err, DC_ERR_FIELD, "%s: relay: metrics-listen \"%.64s\" is not ADDRESS:PORT",
                    path, out->metrics_listen);
    struct sockaddr_storage tss;
    socklen_t tsl;
    if (s == DC_OK && out->dual_mode_listen != NULL &&
        !rl_config_hostport(out->dual_mode_listen, mh, &mp))
        s = dc_fail(err, DC_ERR_FIELD, "%s: relay: dual-mode-listen \"%.64s\" is not "
                    "ADDRESS:PORT", path, out->dual_mode_listen);
    if (s == DC_OK && out->dual_mode_listen != NULL &&
        (out->dual_mode_postfix == NULL ||
         !rl_dual_target(out->dual_mode_postfix, &tss, &tsl)))
        s = dc_fail(err, DC_ERR_FIELD, "%s: relay: dual-mode-postfix \"%.64s\" is not "
                    "ADDRESS:PORT or unix:/PATH", path,
                    out->dual_mode_postfix ? out->dual_mode_postfix : "");
    if (s == DC_OK && out->inject_address == NULL)
        s = dc_fail(err, DC_ERR_FIELD, "%s: relay: inject-address must not be empty", path);
    if (s == DC_OK && (out->cache_database == NULL || out->cache_database[0] != '/' ||
                       out->lookup_socket == NULL || out->lookup_socket[0] != '/'))
        s = dc_fail(err, DC_ERR_FIELD, "%s: relay: cache-database and lookup-socket must be "
                    "absolute paths", path);
    if (s == DC_OK && (out->keyvault_socket == NULL || out->keyvault_socket[0] != '/'))
        s = dc_fail(err, DC_ERR_FIELD, "%s: relay: keyvault-socket must be an absolute path",
                    path);
    struct dl_priv priv = {0};
    struct dc_err pe = {0};
    if (s == DC_OK && dl_priv_config("relay", out->user, &priv, &pe) != DC_OK)
        s = dc_fail(err, DC_ERR_FIELD, "%s: %s", path, pe.msg);
    out->uid = priv.uid;
    out->gid = priv.gid;
    if (s == DC_OK && out->listen_address == NULL)
        s = dc_fail(err, DC_ERR_FIELD, "%s: relay: listen-address must not be empty", path);
    if (s == DC_OK && need_server) {
        if (out->tls_cert == NULL || out->tls_key == NULL)
            s = dc_fail(err, DC_ERR_FIELD, "%s: relay: tls-certificate and tls-key are required",
                        path);
        else if (access(out->tls_cert, R_OK) != 0 || access(out->tls_key, R_OK) != 0)
            s = dc_fail(err, DC_ERR_IO, "%s: relay: cannot read tls-certificate or tls-key",
                        path);
        else if (out->pid_file == NULL)
            s = dc_fail(err, DC_ERR_FIELD, "%s: relay: pid-file must not be empty", path);
    }
    out->ndomains = cfg_size(cfg, "domain");
    out->domains = dc_xcalloc(out->ndomains + 1, sizeof(*out->domains));
    for (size_t i = 0; i < out->ndomains; i++) {
        cfg_t *d = cfg_getnsec(cfg, "domain", (unsigned)i);
        out->domains[i].name = dc_xstrdup(cfg_title(d));
        out->domains[i].require_dnssec = cfg_getbool(d, "require-dnssec");
    }
    out->tree = cfg; /* freed with the rest */
    if (s != DC_OK)
        rl_config_free(out);
    return s;
}

void rl_config_free(struct rl_config *c)
{
    free(c->hostname);
    free(c->listen_address);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->ca_file);
    free(c->keyvault_socket);
    free(c->pid_file);
    free(c->user);
    free(c->cache_database);
    free(c->pin_database);
    free(c->lookup_socket);
    free(c->submit_socket);
    free(c->queue_database);
    free(c->queue_key_file);
    free(c->data_spool_directory);
    free(c->inject_address);
    free(c->metrics_socket);
    free(c->metrics_listen);
    free(c->dual_mode_listen);
    free(c->dual_mode_postfix);
    free((char *)c->dns.trust_anchor_file);
    for (int k = 0; k < 6; k++) {
        for (size_t i = 0; c->lists[k] != NULL && c->lists[k][i] != NULL; i++)
            free(c->lists[k][i]);
        free(c->lists[k]);
    }
    for (size_t i = 0; i < c->ndomains; i++)
        free(c->domains[i].name);
    free(c->domains);
    if (c->tree != NULL)
        cfg_free(c->tree);
    memset(c, 0, sizeof(*c));
}

const struct rl_domain *rl_config_domain(const struct rl_config *c, const char *domain)
{
    for (size_t i = 0; i < c->ndomains; i++)
        if (strcasecmp(c->domains[i].name, domain) == 0)
            return &c->domains[i];
    return NULL;
}
