/*
 * ac_config - reads and checks the account { } section. See ac_config.h.
 */
#include "ac_config.h"

#include "dc_config.h"
#include "dl_priv.h"

#include <stdlib.h>
#include <string.h>

static char *opt(cfg_t *sec, const char *name)
{
    const char *v = cfg_getstr(sec, name);
    return v != NULL && v[0] != '\0' ? dc_xstrdup(v) : NULL;
}

enum dc_status ac_config_load(const char *path, struct ac_config *out, struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    cfg_t *cfg;
    enum dc_status s = dc_config_parse(path, &cfg, err);
    if (s != DC_OK)
        return s;
    out->tree = cfg;
    if (cfg_size(cfg, "account") != 1) {
        ac_config_free(out);
        return dc_fail(err, DC_ERR_FIELD, "%s: no account { } section", path);
    }
    cfg_t *sec = cfg_getsec(cfg, "account");
    out->listen_address = opt(sec, "listen-address");
    out->tls_certificate = opt(sec, "tls-certificate");
    out->tls_key = opt(sec, "tls-key");
    out->keyvault_socket = opt(sec, "keyvault-socket");
    out->dovecot_socket = opt(sec, "dovecot-auth-socket");
    out->user = opt(sec, "user");
    out->pid_file = opt(sec, "pid-file");
    long port = cfg_getint(sec, "listen-port"), mc = cfg_getint(sec, "max-clients"),
         tmo = cfg_getint(sec, "timeout");
    if (out->listen_address == NULL || out->tls_certificate == NULL || out->tls_key == NULL ||
        out->keyvault_socket == NULL || out->dovecot_socket == NULL || out->pid_file == NULL)
        s = dc_fail(err, DC_ERR_FIELD, "%s: account: listen-address, tls-certificate, tls-key, "
                    "keyvault-socket, dovecot-auth-socket and pid-file must not be empty",
                    path);
    else if (port < 1 || port > 65535)
        s = dc_fail(err, DC_ERR_FIELD, "%s: account: listen-port %ld is outside 1..65535",
                    path, port);
    else if (mc < 1 || mc > 1024)
        s = dc_fail(err, DC_ERR_FIELD, "%s: account: max-clients %ld is outside 1..1024", path,
                    mc);
    else if (tmo < 1 || tmo > 600)
        s = dc_fail(err, DC_ERR_FIELD, "%s: account: timeout %ld is outside 1..600", path, tmo);
    out->listen_port = (unsigned)port;
    out->max_clients = (unsigned)mc;
    out->timeout = (unsigned)tmo;
    struct dl_priv priv = {0};
    struct dc_err pe = {0};
    if (s == DC_OK && dl_priv_config("account", out->user, &priv, &pe) != DC_OK)
        s = dc_fail(err, DC_ERR_FIELD, "%s: %s", path, pe.msg);
    out->uid = priv.uid;
    out->gid = priv.gid;
    if (s != DC_OK)
        ac_config_free(out);
    return s;
}

void ac_config_free(struct ac_config *c)
{
    free(c->listen_address);
    free(c->tls_certificate);
    free(c->tls_key);
    free(c->keyvault_socket);
    free(c->dovecot_socket);
    free(c->user);
    free(c->pid_file);
    if (c->tree != NULL)
        cfg_free(c->tree);
    memset(c, 0, sizeof(*c));
}
