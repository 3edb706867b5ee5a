/*
 * kv_config - the typed view of the `keyvault { }` section: the option table is part of the
 * shared schema in dc_config.c; this file checks the values and resolves names. See
 * dime-keyvaultd(8) for every option.
 */
#include "kv_config.h"

#include "dc_config.h"
#include "dl_pg.h"
#include "dl_priv.h"
#include "kv_policy.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The per-operation allow lists of earlier versions: a configuration that still has one is
 * refused at start-up (it would otherwise lose its meaning silently). */
static const char *const old_allow[] = {"allow-sign", "allow-sign-org", "allow-kek",
                                        "allow-unwrap", "allow-signet", "allow-history",
                                        "allow-account"};

static enum dc_status resolve_uids(cfg_t *sec, const char *opt, struct kv_uids *out,
                                   struct dc_err *err)
{
    unsigned n = cfg_size(sec, opt);
    out->n = 0;
    if (n > KV_MAX_UIDS)
        return dc_fail(err, DC_ERR_LIMIT, "%s: more than %d entries", opt, KV_MAX_UIDS);
    for (unsigned i = 0; i < n; i++) {
        const char *name = cfg_getnstr(sec, opt, i);
        char *end;
        errno = 0;
        unsigned long v = strtoul(name, &end, 10);
        if (name[0] >= '0' && name[0] <= '9' && *end == '\0' && errno == 0 && v < 0xffffffffUL) {
            out->uid[out->n++] = (uid_t)v;
            continue;
        }
        struct passwd *pw = getpwnam(name);
        if (pw == NULL)
            return dc_fail(err, DC_ERR_FIELD, "%s: no such user '%.64s'", opt, name);
        out->uid[out->n++] = pw->pw_uid;
    }
    return DC_OK;
}

static char *dup_opt(cfg_t *sec, const char *opt)
{
    const char *v = cfg_getstr(sec, opt);
    return v != NULL && v[0] != '\0' ? dc_xstrdup(v) : NULL;
}

enum dc_status kv_config_load(const char *path, struct kv_config *out, struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    cfg_t *cfg;
    enum dc_status ps = dc_config_parse(path, &cfg, err);
    if (ps != DC_OK)
        return ps;
    if (cfg_size(cfg, "keyvault") != 1) {
        cfg_free(cfg);
        return dc_fail(err, DC_ERR_FIELD, "%s: no keyvault { } section", path);
    }
    cfg_t *sec = cfg_getsec(cfg, "keyvault");
    enum dc_status s = DC_OK;
    out->socket = dup_opt(sec, "socket");
    out->socket_group = dup_opt(sec, "socket-group");
    out->database = dup_opt(sec, "database");
    out->store_conninfo = dup_opt(sec, "store-conninfo");
    int kind = dc_config_word(kv_store_kinds, cfg_getstr(sec, "store"));
    struct dc_err ce = {0};
    out->store = kind == KV_STORE_POSTGRESQL ? KV_STORE_POSTGRESQL : KV_STORE_SQLITE;
    out->master_key_file = dup_opt(sec, "master-key-file");
    out->passphrase_file = dup_opt(sec, "passphrase-file");
    out->user = dup_opt(sec, "user");
    out->pid_file = dup_opt(sec, "pid-file");
    long mc = cfg_getint(sec, "max-clients");
    long smax = cfg_getint(sec, "sign-stream-max");
    long stmo = cfg_getint(sec, "sign-stream-timeout");
    long itmo = cfg_getint(sec, "idle-timeout");
    if (out->socket == NULL || out->database == NULL || out->pid_file == NULL)
        s = dc_fail(err, DC_ERR_FIELD, "%s: socket, database and pid-file must not be empty",
                    path);
    else if (out->socket[0] != '/' || out->database[0] != '/')
        s = dc_fail(err, DC_ERR_FIELD, "%s: socket and database must be absolute paths", path);
    else if (kind < 0)
        s = dc_fail(err, DC_ERR_FIELD, "%s: store must be sqlite or postgresql", path);
    else if (kind == KV_STORE_POSTGRESQL && out->store_conninfo == NULL)
        s = dc_fail(err, DC_ERR_FIELD, "%s: store = postgresql needs store-conninfo", path);
    else if (kind == KV_STORE_POSTGRESQL &&
             dl_pg_conninfo_check(out->store_conninfo, &ce) != DC_OK)
        s = dc_fail(err, DC_ERR_FIELD, "%s: store-conninfo: %s", path, ce.msg);
    else if ((out->master_key_file == NULL) == (out->passphrase_file == NULL))
        s = dc_fail(err, DC_ERR_FIELD, "%s: set exactly one of master-key-file and "
                    "passphrase-file", path);
    else if (mc < 1 || mc > 4096)
        s = dc_fail(err, DC_ERR_FIELD, "%s: max-clients %ld is outside 1..4096", path, mc);
    else if (smax < 65536 || smax > (1L << 40))
        s = dc_fail(err, DC_ERR_FIELD, "%s: sign-stream-max %ld is outside 65536..2^40", path,
                    smax);
    else if (stmo < 1 || stmo > 3600)
        s = dc_fail(err, DC_ERR_FIELD, "%s: sign-stream-timeout %ld is outside 1..3600", path,
                    stmo);
    else if (itmo < 1 || itmo > 86400)
        s = dc_fail(err, DC_ERR_FIELD, "%s: idle-timeout %ld is outside 1..86400", path, itmo);
    for (size_t i = 0; s == DC_OK && i < sizeof(old_allow) / sizeof(old_allow[0]); i++)
        if (cfg_size(sec, old_allow[i]) > 0)
            s = dc_fail(err, DC_ERR_FIELD, "%s: %s is no longer supported: list the relay's "
                        "user in relay-users and the milter's in milter-users, and the vault "
                        "decides what each may do (dime-keyvaultd(8))", path, old_allow[i]);
    out->idle_timeout = (unsigned)itmo;
    out->max_clients = (unsigned)mc;
    out->sign_stream_max = (uint64_t)smax;
    out->sign_stream_timeout = (unsigned)stmo;
    struct dl_priv priv = {0};
    struct dc_err pe = {0};
    if (s == DC_OK && dl_priv_config("keyvault", out->user, &priv, &pe) != DC_OK)
        s = dc_fail(err, DC_ERR_FIELD, "%s: %s", path, pe.msg);
    out->uid = priv.uid;
    out->gid = priv.gid;
    if (s == DC_OK && out->socket_group != NULL) {
        struct group *gr = getgrnam(out->socket_group);
        if (gr == NULL)
            s = dc_fail(err, DC_ERR_FIELD, "%s: socket-group: no such group '%.64s'", path,
                        out->socket_group);
        else
            out->socket_gid = gr->gr_gid;
    }
    if (s == DC_OK)
        s = resolve_uids(sec, "relay-users", &out->relay_users, err);
    if (s == DC_OK)
        s = resolve_uids(sec, "milter-users", &out->milter_users, err);
    if (s == DC_OK)
        s = resolve_uids(sec, "account-users", &out->account_users, err);
    out->tree = cfg; /* freed with the rest */
    if (s != DC_OK)
        kv_config_free(out);
    return s;
}

void kv_config_free(struct kv_config *c)
{
    free(c->socket);
    free(c->socket_group);
    free(c->database);
    if (c->store_conninfo != NULL)
        dc_memzero(c->store_conninfo, strlen(c->store_conninfo));
    free(c->store_conninfo);
    free(c->master_key_file);
    free(c->passphrase_file);
    free(c->user);
    free(c->pid_file);
    if (c->tree != NULL)
        cfg_free(c->tree);
    memset(c, 0, sizeof(*c));
}

static bool listed(const struct kv_uids *l, uid_t uid)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->uid[i] == uid)
            return true;
    return false;
}

unsigned kv_config_classes(const struct kv_config *c, uid_t uid)
{
    return (listed(&c->relay_users, uid) ? KV_CLASS_RELAY : 0) |
           (listed(&c->milter_users, uid) ? KV_CLASS_MILTER : 0) |
           (listed(&c->account_users, uid) ? KV_CLASS_ACCOUNT : 0);
}
