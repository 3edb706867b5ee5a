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

/* keyvault { }: see dime-keyvaultd(8). */
static cfg_opt_t keyvault_opts[] = {
    CFG_STR("socket", "/run/dime/keyvault.sock", CFGF_NONE),
    CFG_STR("socket-group", "", CFGF_NONE),
    CFG_STR("database", "/var/lib/dime/keyvault.db", CFGF_NONE),
    CFG_STR("master-key-file", "", CFGF_NONE),
    CFG_STR("passphrase-file", "", CFGF_NONE),
    CFG_STR("user", "", CFGF_NONE),
    CFG_STR("pid-file", "/run/dime/keyvaultd.pid", CFGF_NONE),
    CFG_INT("max-clients", 256, CFGF_NONE),
    CFG_STR_LIST("allow-sign", "{}", CFGF_NONE),
    CFG_STR_LIST("allow-sign-org", "{}", CFGF_NONE),
    CFG_STR_LIST("allow-kek", "{}", CFGF_NONE),
    CFG_STR_LIST("allow-unwrap", "{}", CFGF_NONE),
    CFG_STR_LIST("allow-signet", "{}", CFGF_NONE),
    CFG_STR_LIST("allow-history", "{}", CFGF_NONE),
    CFG_STR_LIST("allow-account", "{}", CFGF_NONE),
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
    CFG_STR("keyvault-socket", "/run/dime/keyvault.sock", CFGF_NONE),
    CFG_STR("pid-file", "/run/dime/relayd.pid", CFGF_NONE),
    CFG_INT("max-clients", 256, CFGF_NONE),
    CFG_INT("idle-timeout", 60, CFGF_NONE),
    CFG_INT("max-errors", 5, CFGF_NONE),
    CFG_INT("remote-port", 26, CFGF_NONE),
    CFG_INT("remote-dual-port", 25, CFGF_NONE),
    CFG_INT("connect-timeout", 20, CFGF_NONE),
    CFG_STR("trust-anchor-file", "/usr/share/dns/root.key", CFGF_NONE),
    CFG_STR_LIST("trust-anchor", "{}", CFGF_NONE),
    CFG_STR_LIST("dns-stub", "{}", CFGF_NONE),
    CFG_STR_LIST("dns-forwarder", "{}", CFGF_NONE),
    CFG_STR_LIST("dns-local-zone", "{}", CFGF_NONE),
    CFG_STR("cache-database", "/var/lib/dime/relay-cache.db", CFGF_NONE),
    CFG_INT("signet-cache-ttl", 86400, CFGF_NONE),
    CFG_STR("lookup-socket", "/run/dime/relay-lookup.sock", CFGF_NONE),
    CFG_INT("lookup-workers", 16, CFGF_NONE),
    CFG_END(),
};

/* domain "x" { }: local domains. */
static cfg_opt_t domain_opts[] = {
    CFG_BOOL("require-dnssec", cfg_true, CFGF_NONE),
    CFG_END(),
};

static cfg_opt_t top_opts[] = {
    /* MULTI only so that an absent section can be told from an empty one (libconfuse always
     * has a single section); dc_config_parse refuses a repeated one */
    CFG_SEC("keyvault", keyvault_opts, CFGF_MULTI),
    CFG_SEC("relay", relay_opts, CFGF_MULTI),
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
    static const char *const once[] = {"keyvault", "relay"};
    for (size_t i = 0; i < 2; i++) {
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
