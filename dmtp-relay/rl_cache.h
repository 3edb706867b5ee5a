/*
 * rl_cache - the relay's signet cache (SQLite, WAL, synchronous=FULL), shared by the lookup
 * workers (one connection each).
 *
 *   records(name, sealed: record text, dnssec, expires, dime_until)
 *       the verified record text and its DNSSEC status, fresh until `expires` (now + the
 *       TXT TTL); dime_until = the last sighting + exp= days: until then a vanished record
 *       does not turn the domain into a non-DIME domain.
 *   signets(name, sealed: fingerprint and signet, expires)
 *       the last verified org or user signet, fresh until `expires` (now + the record TTL,
 *       capped by signet-cache-ttl). A stale entry is kept: its signet is what a refresh
 *       asks the DX about with VRFY (rl_lookup_hold), and a stale user entry supplies the
 *       fingerprint "seen last", so a changed signet is accepted only through a verified
 *       custody chain.
 *
 * Who was looked up is correspondence metadata, so nothing names them in clear (rl_seal.h):
 * `name` is the keyed hash of the domain or address (case-insensitive), and the record text
 * and the signet (which names its owner) are sealed, bound to their table and row. The key
 * file is <cache-database>.key (32 random bytes, 0600, created on first open); the hash and
 * the cipher use two subkeys of it. Without that key every entry reads as absent and is
 * fetched again: the open that creates a new key file drops the entries it cannot read. The schema version is PRAGMA user_version; a cache of
 * schema 0 (names and values in clear) is converted on open, rows kept.
 *
 * With state = postgresql (rl_shared.h) the same two tables are relay_cache_records and
 * relay_cache_signets in the domain's PostgreSQL, shared by every node (a lookup answered by
 * one node is cached for all), with the same keyed names and sealed values; a connection is
 * one of the shared state's, kept with the rl_cache when reused. Every node must hold the same
 * key file: the first open stores the key's check value (a subkey's digest, relay_cache_key)
 * and an open with another key fails with DC_ERR_KEY, which the relay answers by refusing to
 * start, rather than each node dropping or overwriting the others' entries. PostgreSQL
 * unreachable: the open or a read fails with DC_ERR_IO, and rl_cache_failed says so.
 */
#ifndef RL_CACHE_H
#define RL_CACHE_H

#include "dc_signet.h"
#include "dc_util.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct rl_cache;

/* Opens (creating when needed) the cache at path and its key file path.key. */
enum dc_status rl_cache_open(const char *path, struct rl_cache **out, struct dc_err *err);
void rl_cache_close(struct rl_cache *c);
/* keep=true: from now on a close of a connection to path keeps it (up to 16 idle ones) and an
 * open takes a kept one, so a process that opens the cache per job opens the database once
 * per thread that runs at a time. Only for a database that stays where it is while kept: a
 * kept connection reads the files it opened (and the key it read then). keep=false closes the
 * idle ones and ends the reuse; connections in use close for real when they are closed. */
void rl_cache_reuse(const char *path, bool keep);

/* Whether a read since the open failed for another reason than an absent or unreadable
 * entry (the database did not answer): what the cache seemed not to hold may be there (a
 * user's fingerprint seen last), so the lookup must not go on as if it were not. */
bool rl_cache_failed(const struct rl_cache *c);

struct rl_cache_record {
    char *text;
    int dnssec;        /* enum dl_dns_sec */
    int64_t expires;
    int64_t dime_until;
};
/* DC_ERR_NOTFOUND when absent. */
enum dc_status rl_cache_record_get(struct rl_cache *c, const char *domain,
                                   struct rl_cache_record *out, struct dc_err *err);
enum dc_status rl_cache_record_put(struct rl_cache *c, const char *domain, const char *text,
                                   int dnssec, int64_t expires, int64_t dime_until,
                                   struct dc_err *err);
void rl_cache_record_free(struct rl_cache_record *r);

/* *sig may be NULL to fetch only fp/expires. */
enum dc_status rl_cache_signet_get(struct rl_cache *c, const char *name, struct dc_signet **sig,
                                   char fp[DC_FP_B64_LEN + 1], int64_t *expires,
                                   struct dc_err *err);
enum dc_status rl_cache_signet_put(struct rl_cache *c, const char *name,
                                   const struct dc_signet *sig, const char *fp, int64_t expires,
                                   struct dc_err *err);

#endif
