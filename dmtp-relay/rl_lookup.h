/*
 * rl_lookup - cached resolution and the local lookup service of dime-relayd.
 *
 * rl_lookup_cached() answers from the signet cache (rl_cache.h) when the record and every
 * signet needed are fresh, and otherwise resolves (dl_resolve.h) with the fingerprint seen
 * last, then stores what was verified. A record that vanished (no record) while an earlier
 * exp= still holds gives a temporary failure, never "not a DIME domain". Lookups of one name
 * that need resolving at the same time (threads of the relay) are resolved once: the others
 * wait for the first and answer from the cache it filled.
 *
 * The service (protocol: LOOKUP.md) listens on a Unix socket (mode 0660). Each connection is
 * handled by a worker thread (at most lookup-workers at once; more are answered "busy"), so
 * the DX server's loop never waits for DNS or a remote DX.
 */
#ifndef RL_LOOKUP_H
#define RL_LOOKUP_H

#include "rl_cache.h"
#include "rl_resolve.h"

/* r->dns may be NULL: a resolver is created only when the cache cannot answer (and freed by
 * the caller through r->dns afterwards). *cached tells whether the answer came from cache. */
enum dl_outcome rl_lookup_cached(struct dl_resolver *r, struct rl_cache *c, const char *name,
                                 bool require_dnssec, struct dl_lookup *out, bool *cached);

/* l: a verified lookup of name (outcome o, from the cache or resolved). A message names the
 * org signet it was signed under, by fingerprint fp; when that is not l's (the origin rolled
 * its SOK over since, or the cache still holds the one before), the named one is fetched from
 * the DX (SGNT <domain> [fp]) and verified against the record's POKs like any org signet, a
 * user's signet against it; that lookup replaces l and its outcome is returned. It is not
 * cached: it is no longer the current signet, or the cache catches up on its own. */
enum dl_outcome rl_lookup_named_org(struct dl_resolver *r, const char *name, const char *fp,
                                    bool require_dnssec, enum dl_outcome o, struct dl_lookup *l);

/* The cache's signet for name, fresh or expired, as h (h->sig is *owned, which the caller
 * frees after the resolution it is used in; NULL when there is none): a resolver given it
 * asks the DX with VRFY before fetching that signet again (dl_resolve.h). A fingerprint
 * whose signet does not read is kept alone. */
void rl_lookup_hold(struct rl_cache *c, const char *name, struct dl_held *h,
                    struct dc_signet **owned);

/* How long a verified record and the signets fetched under it are believed, in seconds
 * (before signet-cache-ttl caps the signets): the record's DNS TTL, at least
 * RL_RECORD_TTL_FLOOR; a record's own ttl= shortens that, down to RL_RECORD_OWN_TTL_FLOOR
 * (a domain asks to be looked at again sooner than its DNS answer would be, e.g. while it
 * rolls keys over; the floor keeps it from having every lookup go to its DX). */
#define RL_RECORD_TTL_FLOOR     60
#define RL_RECORD_OWN_TTL_FLOOR 10
uint32_t rl_lookup_cache_ttl(uint32_t dns_ttl, const struct dc_mrec *rec);

/* The reason of a lookup (rl_lookup.reason) as the log may show it: every token that may
 * name someone (an address, a host or domain name, an IP address) becomes <name>, double
 * quotes become single ones. The log names no correspondent (dime-relayd(8), LOGGING). */
void rl_lookup_log_reason(const char *reason, char *out, size_t cap);

struct rl_lookupd;

/* fd: the listening socket on lookup-socket (dl_sock_listen, made by the caller before it
 * gives up root); the service owns it from here. */
enum dc_status rl_lookupd_start(const struct rl_config *cfg, SSL_CTX *client_tls, int fd,
                                struct rl_lookupd **out, struct dc_err *err);
int rl_lookupd_fd(const struct rl_lookupd *l);
/* Accepts pending connections and hands each to a worker thread. */
void rl_lookupd_accept(struct rl_lookupd *l);
/* Stops accepting, waits for running workers, removes the socket. */
void rl_lookupd_stop(struct rl_lookupd *l);

#endif
