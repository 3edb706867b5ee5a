/*
 * kv_config - the `keyvault { }` section of the configuration file (libconfuse), typed and
 * validated: unknown options, wrong types, unknown user or group names and a missing or
 * doubled master secret are errors that name the file, line and option.
 */
#ifndef KV_CONFIG_H
#define KV_CONFIG_H

#include "dc_util.h"
#include "kv_proto.h"
#include "kv_store.h"

#include <stdbool.h>

struct cfg_t;
#include <sys/types.h>

#define KV_MAX_UIDS 64

struct kv_uids {
    uid_t uid[KV_MAX_UIDS];
    size_t n;
};

struct kv_config {
    char *socket;
    char *socket_group; /* NULL: keep the daemon's group */
    gid_t socket_gid;
    enum kv_store_kind store; /* store = sqlite (database) or postgresql (store_conninfo) */
    char *database;
    char *store_conninfo; /* may hold a password: never logged, zeroed when freed */
    char *master_key_file;
    char *passphrase_file;
    char *user; /* never NULL after a load: the user to become (dl_priv_config) */
    uid_t uid;  /* 0: user names root, stay (explicit, warned) */
    gid_t gid;
    char *pid_file;
    unsigned max_clients;
    uint64_t sign_stream_max;     /* bytes one signing stream may carry (per pass) */
    unsigned sign_stream_timeout; /* seconds an unfinished stream may stay idle */
    unsigned idle_timeout;        /* seconds a connection may wait between requests */
    /* the classes of peers (kv_policy.h): what each may do is the vault's policy */
    struct kv_uids relay_users;
    struct kv_uids milter_users;
    struct kv_uids account_users;
    struct cfg_t *tree; /* the whole file as parsed: syslog-*, reload reports */
};

enum dc_status kv_config_load(const char *path, struct kv_config *out, struct dc_err *err);
void kv_config_free(struct kv_config *c);
/* The class bits (KV_CLASS_RELAY, KV_CLASS_MILTER, KV_CLASS_ACCOUNT) of a peer uid; 0 for
 * none. */
unsigned kv_config_classes(const struct kv_config *c, uid_t uid);

#endif
