/*
 * mf_config - the typed view of the `milter { }` section and of the `domain "x" { }` sections
 * of dime.conf (the schema is dc_config.c). See dime-milter(8) for every option.
 */
#ifndef MF_CONFIG_H
#define MF_CONFIG_H

#include "dc_util.h"
#include "mf_policy.h"
#include "mf_sender.h"

#include <stdbool.h>

struct cfg_t;

struct mf_config {
    char *socket;          /* libmilter syntax: unix:PATH, local:PATH, inet:PORT@HOST */
    char *keyvault_socket;
    char *lookup_socket;
    char *submit_socket;
    char *authserv_id;     /* default: the host name */
    char *socket_group;    /* group of a unix socket; NULL: the user's own */
    char *user;            /* the user to become (dl_priv_config in dime-milter.c) */
    char *pid_file;        /* NULL: none */
    char *metrics_socket;  /* NULL: no metrics endpoint (mf_metrics.h) */
    struct mf_net *nets;   /* trusted-networks */
    size_t nnets;
    char *injection_db;    /* injection-database; NULL: repeated injections are not detected */
    char *pf_queue_dir;    /* postfix-queue-directory; NULL: a repeat is never let through */
    struct mf_net *inj_nets; /* injection-clients */
    size_t ninj_nets;
    size_t max_message_size;
    unsigned timeout;      /* seconds: libmilter's and the relay's */
    bool log_why;
    bool sign_local;       /* sign-local-submissions */
    char *login_map_path;          /* sender-login-map; NULL: none */
    struct mf_login_map login_map; /* its entries (empty without a map) */
    struct mf_domain *domains;
    size_t ndomains;
    struct cfg_t *tree; /* the whole file as parsed: syslog-*, reload reports */
};

/* Parses the whole file (every section against the schema) and reads milter { } and the
 * domain sections. The milter { } section must be present (it may be empty). */
enum dc_status mf_config_load(const char *path, struct mf_config *out, struct dc_err *err);
void mf_config_free(struct mf_config *c);
/* The local domain for domain (case-insensitive), or NULL. */
const struct mf_domain *mf_config_domain(const struct mf_config *c, const char *domain);

#endif
