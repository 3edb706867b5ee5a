/*
 * ac_config - the account { } section of dime.conf for dime-accountd (dime.conf(5)).
 */
#ifndef AC_CONFIG_H
#define AC_CONFIG_H

#include "dc_util.h"

#include <sys/types.h>

struct ac_config {
    char *listen_address;
    unsigned listen_port;
    char *tls_certificate, *tls_key;
    char *keyvault_socket;
    char *dovecot_socket;
    char *user; /* never NULL after a load (dl_priv_config) */
    uid_t uid;  /* 0: user names root, stay (explicit, warned) */
    gid_t gid;
    char *pid_file;
    unsigned max_clients;
    unsigned timeout; /* seconds */
    struct cfg_t *tree;
};

/* DC_ERR_FIELD with the file's name and the option for anything missing or out of range. */
enum dc_status ac_config_load(const char *path, struct ac_config *out, struct dc_err *err);
void ac_config_free(struct ac_config *c);

#endif
