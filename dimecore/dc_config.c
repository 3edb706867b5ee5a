/*
 * dc_config - the option tables of every section of dime.conf, and the parse that applies
 * them to the whole file. Typed accessors per daemon live beside each daemon.
 */
#include "dc_config.h"

#include "dc_mrec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* libconfuse reports through a callback without a user pointer; the parse is not reentrant,
 * which is fine for a configuration loaded at start-up and on SIGHUP. */
static struct dc_err *cur_err;
static const char *cur_path;

__attribute__((format(printf, 2, 0)))
static void conf_error(cfg_t *cfg, const char *fmt, va_list ap)
{
    char msg[200];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (cur_err != NULL && cur_err->code == DC_OK)
        dc_fail(cur_err, DC_ERR_FORMAT, "%s:%d: %s", cfg && cfg->filename ? cfg->filename : cur_path ? cur_path : "?",
                cfg ? cfg->line : 0, msg);
}

/* An option of an earlier version that the section's loader refuses with a message naming
 * what replaced it, instead of libconfuse's "no such option". */
#define CFG_RETIRED(name) CFG_STR_LIST(name, "{}", CFGF_NONE)

/* keyvault { }: see dime-keyvaultd(8). */
static cfg_opt_t keyvault_opts[] = {
    CFG_STR("socket", "/run/dime-keyvault/keyvault.sock", CFGF_NONE),
    CFG_STR("socket-group", "", CFGF_NONE),
    CFG_STR("database", "/var/lib/dime-keyvault/keyvault.db", CFGF_NONE),
    CFG_STR("master-key-file", "", CFGF_NONE),
    CFG_STR("passphrase-file", "", CFGF_NONE),
    CFG_STR("user", "dime-vault", CFGF_NONE),
    CFG_STR("pid-file", "/run/dime-keyvault/keyvaultd.pid", CFGF_NONE),
    CFG_INT("max-clients", 256, CFGF_NONE),
    CFG_INT("sign-stream-max", 268435456, CFGF_NONE),
    CFG_INT("sign-stream-timeout", 60, CFGF_NONE),
    CFG_INT("idle-timeout", 300, CFGF_NONE),
    CFG_STR_LIST("relay-users", "{}", CFGF_NONE),
    CFG_STR_LIST("milter-users", "{}", CFGF_NONE),
    /* replaced by relay-users and milter-users: known only so that kv_config can refuse them
     * naming the replacement (not in contrib/dime.conf) */
    CFG_RETIRED("allow-sign"),
    CFG_RETIRED("allow-sign-org"),
    CFG_RETIRED("allow-kek"),
    CFG_RETIRED("allow-unwrap"),
    CFG_RETIRED("allow-signet"),
    CFG_RETIRED("allow-history"),
    CFG_RETIRED("allow-account"),
    CFG_END(),
};

/* relay { }: see dime-relayd(8). */
static cfg_opt_t relay_opts[] = {
    CFG_STR("hostname", "", CFGF_NONE),
    CFG_STR("listen-address", "0.0.0.0", CFGF_NONE),
    CFG_INT("listen-port", 26, CFGF_NONE),
    CFG_STR("tls-certificate", "", CFGF_NONE),
    CFG_STR("tls-key", "", CFGF_NONE),
    CFG_STR("ca-file", "", CFGF_NONE),
    CFG_STR("keyvault-socket", "/run/dime-keyvault/keyvault.sock", CFGF_NONE),
    CFG_STR("pid-file", "/run/dime-relay/relayd.pid", CFGF_NONE),
    CFG_STR("user", "dime-relay", CFGF_NONE),
    CFG_INT("max-clients", 256, CFGF_NONE),
    CFG_INT("idle-timeout", 60, CFGF_NONE),
    CFG_INT("max-clients-per-address", 16, CFGF_NONE),
    CFG_INT("data-timeout", 60, CFGF_NONE),
    CFG_INT("data-time-limit", 3600, CFGF_NONE),
    CFG_INT("data-memory-limit", 268435456, CFGF_NONE),
    CFG_INT("signet-rate", 3000, CFGF_NONE),
    CFG_INT("keyvault-timeout", 10, CFGF_NONE),
    CFG_INT("signet-workers", 64, CFGF_NONE),
    CFG_INT("signet-burst", 300, CFGF_NONE),
    CFG_INT("max-errors", 5, CFGF_NONE),
    CFG_INT("remote-port", 26, CFGF_NONE),
    CFG_INT("remote-dual-port", 25, CFGF_NONE),
    CFG_INT("connect-timeout", 20, CFGF_NONE),
    CFG_INT("lookup-deadline", 60, CFGF_NONE),
    CFG_INT("dx-max-hosts", 4, CFGF_NONE),
    CFG_INT("dx-max-addresses", 4, CFGF_NONE),
    CFG_INT("not-dime-cache-ttl", 3600, CFGF_NONE),
    CFG_STR("trust-anchor-file", "/usr/share/dns/root.key", CFGF_NONE),
    CFG_STR_LIST("trust-anchor", "{}", CFGF_NONE),
    CFG_STR_LIST("dns-stub", "{}", CFGF_NONE),
    CFG_STR_LIST("dns-forwarder", "{}", CFGF_NONE),
    CFG_STR_LIST("dns-local-zone", "{}", CFGF_NONE),
    CFG_STR("cache-database", "/var/lib/dime-relay/cache.db", CFGF_NONE),
    CFG_INT("signet-cache-ttl", 86400, CFGF_NONE),
    CFG_STR("lookup-socket", "/run/dime-relay/lookup.sock", CFGF_NONE),
    CFG_INT("lookup-workers", 16, CFGF_NONE),
    CFG_INT("lookup-domain-concurrency", 8, CFGF_NONE),
    CFG_STR("submit-socket", "/run/dime-relay/submit.sock", CFGF_NONE),
    CFG_INT("submit-workers", 8, CFGF_NONE),
    CFG_INT("submit-timeout", 300, CFGF_NONE),
    CFG_INT("submit-max-total", 1073741824, CFGF_NONE),
    CFG_INT("max-message-size", 104857600, CFGF_NONE),
    CFG_STR("queue-database", "/var/lib/dime-relay/queue.db", CFGF_NONE),
    CFG_STR("queue-key-file", "/var/lib/dime-relay/queue.key", CFGF_NONE),
    CFG_INT("queue-lifetime", 432000, CFGF_NONE),
    CFG_INT("queue-max-messages", 100000, CFGF_NONE),
    CFG_INT("queue-min-free", 268435456, CFGF_NONE),
    CFG_INT("retry-min", 60, CFGF_NONE),
    CFG_INT("retry-max", 3600, CFGF_NONE),
    CFG_INT("queue-scan-interval", 1, CFGF_NONE),
    CFG_INT("delivery-workers", 32, CFGF_NONE),
    CFG_INT("destination-concurrency", 4, CFGF_NONE),
    CFG_INT("delivery-reply-timeout", 120, CFGF_NONE),
    CFG_INT("inbound-workers", 8, CFGF_NONE),
    CFG_STR("inject-address", "127.0.0.1", CFGF_NONE),
    CFG_INT("inject-port", 10026, CFGF_NONE),
    CFG_INT("inject-concurrency", 4, CFGF_NONE),
    CFG_INT("inject-hold-after", 86400, CFGF_NONE),
    CFG_END(),
};

/* milter { }: see dime-milter(8). */
static cfg_opt_t milter_opts[] = {
    CFG_STR("socket", "unix:/run/dime-milter/milter.sock", CFGF_NONE),
    CFG_STR("socket-group", "", CFGF_NONE),
    CFG_STR("keyvault-socket", "/run/dime-keyvault/keyvault.sock", CFGF_NONE),
    CFG_STR("relay-lookup-socket", "/run/dime-relay/lookup.sock", CFGF_NONE),
    CFG_STR("relay-submit-socket", "/run/dime-relay/submit.sock", CFGF_NONE),
    CFG_STR_LIST("trusted-networks", "{127.0.0.0/8, ::1/128}", CFGF_NONE),
    CFG_STR("injection-database", "/var/lib/dime-milter/injections.db", CFGF_NONE),
    CFG_STR_LIST("injection-clients", "{127.0.0.1, ::1}", CFGF_NONE),
    CFG_STR("authserv-id", "", CFGF_NONE),
    CFG_STR("user", "dime-milter", CFGF_NONE),
    CFG_STR("pid-file", "/run/dime-milter/milter.pid", CFGF_NONE),
    CFG_INT("max-message-size", 52428800, CFGF_NONE),
    CFG_INT("timeout", 300, CFGF_NONE),
    CFG_BOOL("log-why", cfg_false, CFGF_NONE),
    CFG_END(),
};

/* The values of the on-* actions of domain "x" { } (OpenDKIM's vocabulary). */
const char *const dc_config_actions[] = {"accept", "reject", "tempfail", "quarantine", NULL};
/* The directions a local domain's mail is converted in. */
const char *const dc_config_modes[] = {"both", "inbound", "outbound", "off", NULL};
/* The on-* options of domain "x" { }, in the order of enum mf_event (milter/mf_policy.h). */
const char *const dc_config_on_opts[] = {"on-no-signet", "on-dns-error", "on-bogus",
                                         "on-keyvault-unavailable", "on-relay-unavailable",
                                         "on-verify-failure", NULL};

/* domain "x" { }: local domains. */
static cfg_opt_t domain_opts[] = {
    CFG_BOOL("require-dnssec", cfg_true, CFGF_NONE),
    CFG_STR("mode", "both", CFGF_NONE),
    CFG_STR_LIST("outbound-require-dime", "{}", CFGF_NONE),
    CFG_STR("on-no-signet", "tempfail", CFGF_NONE),
    CFG_STR("on-dns-error", "tempfail", CFGF_NONE),
    CFG_STR("on-bogus", "tempfail", CFGF_NONE),
    CFG_STR("on-keyvault-unavailable", "tempfail", CFGF_NONE),
    CFG_STR("on-relay-unavailable", "tempfail", CFGF_NONE),
    CFG_STR("on-verify-failure", "tempfail", CFGF_NONE),
    CFG_END(),
};

int dc_config_word(const char *const *words, const char *v)
{
    for (int i = 0; v != NULL && words[i] != NULL; i++)
        if (strcmp(words[i], v) == 0)
            return i;
    return -1;
}

static cfg_opt_t top_opts[] = {
    /* MULTI only so that an absent section can be told from an empty one (libconfuse always
     * has a single section); dc_config_parse refuses a repeated one */
    CFG_SEC("keyvault", keyvault_opts, CFGF_MULTI),
    CFG_SEC("relay", relay_opts, CFGF_MULTI),
    CFG_SEC("milter", milter_opts, CFGF_MULTI),
    CFG_SEC("domain", domain_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_END(),
};

static enum dc_status check_domains(cfg_t *cfg, const char *path, struct dc_err *err)
{
    unsigned n = cfg_size(cfg, "domain");
    for (unsigned i = 0; i < n; i++) {
        const char *t = cfg_title(cfg_getnsec(cfg, "domain", i));
        struct dc_err e = {0};
        if (t == NULL || dc_mrec_check_host(t, strlen(t), "domain", &e) != DC_OK)
            return dc_fail(err, DC_ERR_FIELD, "%s: domain \"%.64s\": not a domain name", path,
                           t ? t : "");
        cfg_t *d = cfg_getnsec(cfg, "domain", i);
        if (dc_config_word(dc_config_modes, cfg_getstr(d, "mode")) < 0)
            return dc_fail(err, DC_ERR_FIELD,
                           "%s: domain \"%.64s\": mode must be both, inbound, outbound or off",
                           path, t);
        for (unsigned k = 0; dc_config_on_opts[k] != NULL; k++)
            if (dc_config_word(dc_config_actions, cfg_getstr(d, dc_config_on_opts[k])) < 0)
                return dc_fail(err, DC_ERR_FIELD,
                               "%s: domain \"%.64s\": %s must be accept, reject, tempfail or "
                               "quarantine", path, t, dc_config_on_opts[k]);
        for (unsigned k = 0; k < cfg_size(d, "outbound-require-dime"); k++) {
            const char *r = cfg_getnstr(d, "outbound-require-dime", k);
            const char *h = r[0] == '.' ? r + 1 : r;
            if (dc_mrec_check_host(h, strlen(h), "domain", &e) != DC_OK)
                return dc_fail(err, DC_ERR_FIELD,
                               "%s: domain \"%.64s\": outbound-require-dime: \"%.64s\" is not "
                               "a domain name or .suffix", path, t, r);
        }
        for (unsigned j = 0; j < i; j++)
            if (strcasecmp(t, cfg_title(cfg_getnsec(cfg, "domain", j))) == 0)
                return dc_fail(err, DC_ERR_FIELD, "%s: domain \"%.64s\" appears twice", path, t);
    }
    return DC_OK;
}

enum dc_status dc_config_parse(const char *path, cfg_t **out, struct dc_err *err)
{
    *out = NULL;
    struct dc_err local = {0};
    cur_err = &local;
    cur_path = path;
    cfg_t *cfg = cfg_init(top_opts, CFGF_NONE);
    cfg_set_error_function(cfg, conf_error);
    int rc = cfg_parse(cfg, path);
    cur_err = NULL;
    cur_path = NULL;
    if (rc == CFG_FILE_ERROR) {
        int e = errno;
        cfg_free(cfg);
        return dc_fail(err, DC_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (rc != CFG_SUCCESS) {
        cfg_free(cfg);
        if (local.code == DC_OK)
            return dc_fail(err, DC_ERR_FORMAT, "%s: syntax error", path);
        return dc_fail(err, local.code, "%s", local.msg);
    }
    static const char *const once[] = {"keyvault", "relay", "milter"};
    for (size_t i = 0; i < 3; i++) {
        if (cfg_size(cfg, once[i]) > 1) {
            cfg_free(cfg);
            return dc_fail(err, DC_ERR_FIELD, "%s: the %s { } section appears more than once",
                           path, once[i]);
        }
    }
    enum dc_status s = check_domains(cfg, path, err);
    if (s != DC_OK) {
        cfg_free(cfg);
        return s;
    }
    *out = cfg;
    return DC_OK;
}

cfg_t *dc_config_domain(cfg_t *cfg, const char *domain)
{
    unsigned n = cfg_size(cfg, "domain");
    for (unsigned i = 0; i < n; i++) {
        cfg_t *d = cfg_getnsec(cfg, "domain", i);
        if (strcasecmp(cfg_title(d), domain) == 0)
            return d;
    }
    return NULL;
}

const char *dc_config_str(cfg_t *sec, const char *opt)
{
    const char *v = cfg_getstr(sec, opt);
    return v != NULL && v[0] != '\0' ? v : NULL;
}
