/*
 * mf_config - dime-milter's reading of dime.conf (see mf_config.h).
 */
#include "mf_config.h"

#include "dc_config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static char *dup_opt(cfg_t *sec, const char *opt)
{
    const char *v = dc_config_str(sec, opt);
    return v ? dc_xstrdup(v) : NULL;
}

/* libmilter's syntax: unix:PATH, local:PATH, inet:PORT[@HOST], inet6:PORT[@HOST]. Postfix's
 * inet:HOST:PORT is the usual mistake, so the port is checked. */
static bool socket_spec_ok(const char *s)
{
    const char *p;
    if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "local:", 6) == 0)
        return s[s[0] == 'u' ? 5 : 6] == '/';
    if (strncmp(s, "inet:", 5) == 0)
        p = s + 5;
    else if (strncmp(s, "inet6:", 6) == 0)
        p = s + 6;
    else
        return false;
    unsigned long port = 0;
    size_t n = 0;
    for (; p[n] >= '0' && p[n] <= '9' && n < 6; n++)
        port = port * 10 + (unsigned long)(p[n] - '0');
    return n > 0 && port >= 1 && port <= 65535 && (p[n] == '\0' || (p[n] == '@' && p[n + 1]));
}

/* A list of addresses or networks (mf_net_parse). */
static enum dc_status read_nets(cfg_t *m, const char *opt, const char *path,
                                struct mf_net **nets, size_t *count, struct dc_err *err)
{
    unsigned n = cfg_size(m, opt);
    *nets = dc_xcalloc(n ? n : 1, sizeof(**nets));
    *count = 0;
    for (unsigned i = 0; i < n; i++) {
        const char *s = cfg_getnstr(m, opt, i);
        if (mf_net_parse(s, &(*nets)[i]) != 0)
            return dc_fail(err, DC_ERR_FIELD,
                           "%s: milter: %s: \"%.64s\" is not an address or network", path,
                           opt, s);
        (*count)++;
    }
    return DC_OK;
}

static enum dc_status read_milter(cfg_t *m, const char *path, struct mf_config *c,
                                  struct dc_err *err)
{
    c->socket = dup_opt(m, "socket");
    c->keyvault_socket = dup_opt(m, "keyvault-socket");
    c->lookup_socket = dup_opt(m, "relay-lookup-socket");
    c->submit_socket = dup_opt(m, "relay-submit-socket");
    c->authserv_id = dup_opt(m, "authserv-id");
    c->socket_group = dup_opt(m, "socket-group");
    c->user = dup_opt(m, "user");
    c->pid_file = dup_opt(m, "pid-file");
    c->metrics_socket = dup_opt(m, "metrics-socket");
    c->log_why = cfg_getbool(m, "log-why");
    c->sign_local = cfg_getbool(m, "sign-local-submissions");
    if (!c->socket || !c->keyvault_socket || !c->lookup_socket || !c->submit_socket)
        return dc_fail(err, DC_ERR_FIELD,
                       "%s: milter: socket, keyvault-socket, relay-lookup-socket and "
                       "relay-submit-socket must not be empty", path);
    if (!socket_spec_ok(c->socket))
        return dc_fail(err, DC_ERR_FIELD,
                       "%s: milter: socket \"%.100s\": use unix:PATH or inet:PORT@HOST "
                       "(libmilter syntax, not Postfix's inet:HOST:PORT)", path, c->socket);
    long size = cfg_getint(m, "max-message-size");
    long timeout = cfg_getint(m, "timeout");
    if (size < 1024 || size > 1073741824L)
        return dc_fail(err, DC_ERR_FIELD, "%s: milter: max-message-size must be 1024..2^30",
                       path);
    if (timeout < 1 || timeout > 3600)
        return dc_fail(err, DC_ERR_FIELD, "%s: milter: timeout must be 1..3600", path);
    c->max_message_size = (size_t)size;
    c->timeout = (unsigned)timeout;
    enum dc_status s = read_nets(m, "trusted-networks", path, &c->nets, &c->nnets, err);
    if (s == DC_OK)
        s = read_nets(m, "injection-clients", path, &c->inj_nets, &c->ninj_nets, err);
    if (s != DC_OK)
        return s;
    c->injection_db = dup_opt(m, "injection-database");
    if (c->injection_db && c->injection_db[0] != '/')
        return dc_fail(err, DC_ERR_FIELD, "%s: milter: injection-database must be an absolute "
                       "path (or empty)", path);
    c->pf_queue_dir = dup_opt(m, "postfix-queue-directory");
    if (c->pf_queue_dir && c->pf_queue_dir[0] != '/')
        return dc_fail(err, DC_ERR_FIELD, "%s: milter: postfix-queue-directory must be an "
                       "absolute path (or empty)", path);
    if (!c->authserv_id) {
        char host[256] = "";
        if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
            return dc_fail(err, DC_ERR_FIELD,
                           "%s: milter: authserv-id is empty and the host has no name", path);
        c->authserv_id = dc_xstrdup(host);
    }
    c->login_map_path = dup_opt(m, "sender-login-map");
    if (c->login_map_path) {
        if (c->login_map_path[0] != '/')
            return dc_fail(err, DC_ERR_FIELD, "%s: milter: sender-login-map must be an absolute "
                           "path (or empty)", path);
        s = mf_login_map_load(c->login_map_path, &c->login_map, err);
        if (s != DC_OK)
            return s;
    }
    for (const char *p = c->authserv_id; *p; p++)
        if (*p <= ' ' || *p > '~' || *p == ';' || *p == '(' || *p == ')')
            return dc_fail(err, DC_ERR_FIELD,
                           "%s: milter: authserv-id must be a host name without spaces", path);
    return DC_OK;
}

static enum dc_status read_domain(cfg_t *d, struct mf_domain *out, const char *path,
                                  struct dc_err *err)
{
    out->name = dc_xstrdup(cfg_title(d));
    /* values were checked by dc_config_parse */
    out->mode = (enum mf_mode)dc_config_word(dc_config_modes, cfg_getstr(d, "mode"));
    for (unsigned k = 0; k < MF_EV_COUNT; k++)
        out->on[k] = (enum mf_action)dc_config_word(dc_config_actions,
                                                    cfg_getstr(d, dc_config_on_opts[k]));
    out->nrequire = cfg_size(d, "outbound-require-dime");
    out->require_dime = dc_xcalloc(out->nrequire ? out->nrequire : 1, sizeof(char *));
    for (size_t k = 0; k < out->nrequire; k++)
        out->require_dime[k] = dc_xstrdup(cfg_getnstr(d, "outbound-require-dime", (unsigned)k));
    const char *na = cfg_getstr(d, "notice-author");
    if (na == NULL || *na == '\0')
        return DC_OK;
    /* the relay takes only an author of the origin domain, and the signed From names it */
    const char *at = strrchr(na, '@');
    if (at == NULL || at == na || strcasecmp(at + 1, out->name) != 0 || strlen(na) > 254 ||
        strpbrk(na, " \t\"<>()[]\\,;:") != NULL)
        return dc_fail(err, DC_ERR_FIELD, "%s: domain %s: notice-author must be a plain "
                       "address of that domain", path, out->name);
    out->notice_author = dc_xstrdup(na);
    return DC_OK;
}

enum dc_status mf_config_load(const char *path, struct mf_config *out, struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    cfg_t *cfg;
    enum dc_status s = dc_config_parse(path, &cfg, err);
    if (s != DC_OK)
        return s;
    if (cfg_size(cfg, "milter") == 0) {
        cfg_free(cfg);
        return dc_fail(err, DC_ERR_FIELD, "%s: no milter { } section", path);
    }
    s = read_milter(cfg_getsec(cfg, "milter"), path, out, err);
    if (s == DC_OK) {
        out->ndomains = cfg_size(cfg, "domain");
        out->domains = dc_xcalloc(out->ndomains ? out->ndomains : 1, sizeof(*out->domains));
        for (size_t i = 0; i < out->ndomains && s == DC_OK; i++)
            s = read_domain(cfg_getnsec(cfg, "domain", (unsigned)i), &out->domains[i], path,
                            err);
    }
    out->tree = cfg; /* freed with the rest */
    if (s != DC_OK)
        mf_config_free(out);
    return s;
}

void mf_config_free(struct mf_config *c)
{
    free(c->socket);
    free(c->keyvault_socket);
    free(c->lookup_socket);
    free(c->submit_socket);
    free(c->authserv_id);
    free(c->socket_group);
    free(c->user);
    free(c->pid_file);
    free(c->metrics_socket);
    free(c->nets);
    free(c->inj_nets);
    free(c->injection_db);
    free(c->pf_queue_dir);
    free(c->login_map_path);
    mf_login_map_free(&c->login_map);
    for (size_t i = 0; i < c->ndomains; i++) {
        free(c->domains[i].name);
        for (size_t k = 0; k < c->domains[i].nrequire; k++)
            free(c->domains[i].require_dime[k]);
        free(c->domains[i].require_dime);
        free(c->domains[i].notice_author);
    }
    free(c->domains);
    if (c->tree != NULL)
        cfg_free(c->tree);
    memset(c, 0, sizeof(*c));
}

const struct mf_domain *mf_config_domain(const struct mf_config *c, const char *domain)
{
    if (domain == NULL)
        return NULL;
    for (size_t i = 0; i < c->ndomains; i++)
        if (strcasecmp(c->domains[i].name, domain) == 0)
            return &c->domains[i];
    return NULL;
}
