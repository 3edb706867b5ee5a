/*
 * rl_config - the typed view of the `relay { }` section and of the `domain "x" { }` sections
 * of dime.conf (the schema is dc_config.c). See dime-relayd(8) for every option.
 */
#ifndef RL_CONFIG_H
#define RL_CONFIG_H

#include "dc_util.h"
#include "dl_dns.h"

#include <stdbool.h>

struct cfg_t;
#include <sys/types.h>

struct rl_domain {
    char *name;
    bool require_dnssec;
};

struct rl_config {
    char *hostname;       /* banner name; default: the system host name */
    char *listen_address;
    unsigned listen_port;
    char *tls_cert;       /* PEM chain; required by the server */
    char *tls_key;
    char *ca_file;        /* CAs for DX certificates without tls=; NULL: system store */
    char *keyvault_socket;
    char *pid_file;
    char *user;           /* started as root: become this user (dl_priv_config) */
    uid_t uid;            /* user's ids, looked up at load; uid 0: user names root, stay */
    gid_t gid;
    unsigned max_clients;
    unsigned idle_timeout;   /* seconds */
    unsigned max_clients_per_address; /* connections from one IP address at once */
    unsigned data_timeout;   /* seconds without a DATA byte before 421 */
    unsigned data_time_limit; /* seconds for a whole message from 354 */
    unsigned long data_memory_limit; /* bytes of inbound messages held at once, all clients */
    unsigned long data_spool_threshold; /* larger inbound messages go to a file (0: never) */
    char *data_spool_directory; /* "" or NULL: spool/ beside queue_database (rl_spool_dir) */
    unsigned signet_rate;    /* SGNT, VRFY and HIST per minute from one client address */
    unsigned keyvault_timeout; /* seconds a SGNT/VRFY/HIST waits for the keyvault: then 476 */
    unsigned signet_workers;   /* SGNT/VRFY/HIST answered at once (worker threads) */
    unsigned signet_burst;   /* ... of which this many at once */
    unsigned max_errors;     /* bad commands before disconnection */
    unsigned remote_port;    /* DX port of other domains */
    unsigned remote_dual_port; /* dual-mode (STARTTLS) port of MX hosts */
    char *dual_mode_listen;   /* ADDRESS:PORT of the dual-mode front; NULL: off (rl_dual.h) */
    char *dual_mode_postfix;  /* Postfix's smtpd behind it: ADDRESS:PORT or unix:/PATH */
    unsigned dual_mode_timeout;    /* seconds without a byte either way */
    unsigned dual_mode_time_limit; /* seconds for a whole SMTP session */
    unsigned connect_timeout; /* seconds, DNS and DMTP client */
    /* 0 in the next three (a configuration not loaded from a file): no bound */
    unsigned lookup_deadline; /* seconds for a whole resolution (record, DX, signets) */
    unsigned dx_max_hosts;    /* DX hosts tried per resolution */
    unsigned dx_max_addresses; /* addresses tried per DX host */
    unsigned not_dime_cache_ttl; /* cap on how long "not a DIME domain" is cached; 0: never */
    char *cache_database;
    char *pin_database; /* NULL or empty: no pinning (rl_pins.h) */
    /* where the state shared by the nodes of a domain lives (pins, inbound digests):
     * state = sqlite (pin_database, the queue) or postgresql (state_conninfo) */
    bool state_pg;
    char *state_conninfo;
    unsigned signet_cache_ttl; /* seconds */
    char *lookup_socket;
    unsigned lookup_workers;   /* lookups resolved at the same time */
    unsigned lookup_domain_concurrency; /* ... of names in one domain (0: no limit) */
    /* mail transfer (SUBMIT.md, dime-relayd(8)) */
    char *submit_socket;
    unsigned submit_workers;
    unsigned submit_timeout;     /* seconds for a whole request */
    unsigned long submit_max_total;
    unsigned long max_message_size;
    char *queue_database;
    char *queue_key_file;
    unsigned queue_lifetime;     /* seconds */
    unsigned queue_max_messages; /* outbound plus not yet injected inbound (452 / 431) */
    unsigned long queue_min_free; /* bytes kept free on the queue's file system */
    unsigned retry_min, retry_max; /* backoff bounds, seconds */
    unsigned queue_scan_interval; /* seconds */
    unsigned delivery_workers;   /* DMTP sessions at once, all destinations */
    unsigned destination_concurrency; /* DMTP sessions at once to one destination */
    unsigned delivery_reply_timeout; /* seconds for a whole reply of a remote DX */
    unsigned inbound_workers;    /* inbound messages verified at once */
    char *inject_address;
    unsigned inject_port;
    unsigned inject_concurrency; /* SMTP sessions injecting into Postfix at once */
    unsigned inject_hold_after;  /* seconds an inbound message may fail injection, then held */
    char *metrics_socket;        /* the metrics endpoint (rl_metrics.h); NULL: none */
    char *metrics_listen;        /* ADDRESS:PORT of the TCP one; NULL: none */
    struct dl_dns_conf dns;
    char **lists[6];         /* storage behind dns's arrays, syndicates, syndicate_for */
    /* syndicates (daemonlib/SYNDICATE.md): asked besides a record's syn= hosts; how many
     * must confirm (-1: a majority of those asked, 0: no check); the domains served */
    const char *const *syndicates;
    size_t n_syndicates;
    int syndicate_quorum;
    unsigned syndicate_cache_ttl; /* seconds their word on (domain, POK) is kept */
    const char *const *syndicate_for;
    size_t n_syndicate_for;
    struct rl_domain *domains;
    size_t ndomains;
    struct cfg_t *tree; /* the whole file as parsed: syslog-*, reload reports */
};

/* Parses the whole file (every section is checked against the schema) and reads relay { }.
 * need_server: the listener's settings must be usable (certificate and key readable). */
enum dc_status rl_config_load(const char *path, bool need_server, struct rl_config *out,
                              struct dc_err *err);
void rl_config_free(struct rl_config *c);
/* Splits "ADDR:PORT" or "[ADDR6]:PORT" (metrics-listen); false when it is not that. */
bool rl_config_hostport(const char *spec, char host[64], unsigned *port);
/* The local domain section for domain, or NULL. */
const struct rl_domain *rl_config_domain(const struct rl_config *c, const char *domain);

extern const char *const rl_state_kinds[]; /* state: "sqlite", "postgresql", NULL */

#endif
