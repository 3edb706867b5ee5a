/*
 * rl_shared - the relay's connections to the shared PostgreSQL state. See rl_shared.h.
 */
#include "rl_shared.h"

#include "rl_queue.h"

#include "dl_log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

/* Schema of component "relay". Each entry takes the version before it to its own. */
static const char *const migrations[] = {
    NULL,
    /* 1: the POK pins, one row per domain (lower case), as the SQLite pins and pin_syn */
    "CREATE TABLE relay_pins (domain TEXT PRIMARY KEY, pok TEXT NOT NULL, soks TEXT NOT NULL,"
    " org_fp TEXT NOT NULL, first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL,"
    " exp_days BIGINT NOT NULL, how TEXT NOT NULL, previous_pok TEXT NOT NULL,"
    " refused BIGINT NOT NULL, refused_pok TEXT NOT NULL, refused_at BIGINT NOT NULL,"
    " syn TEXT NOT NULL)",
    /* 2: the digests of the inbound messages accepted in the domain (rl_shared_in_add) */
    "CREATE TABLE relay_inbound (hash BYTEA PRIMARY KEY, node TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('pending', 'stored')), claimed BIGINT NOT NULL,"
    " tid TEXT NOT NULL);"
    " CREATE INDEX relay_inbound_claimed ON relay_inbound (claimed)",
    /* 3: the signet cache (rl_cache.h): keyed names, sealed values, as the SQLite tables;
     * relay_cache_key holds the check value of the key every node must have */
    "CREATE TABLE relay_cache_records (name TEXT PRIMARY KEY, sealed BYTEA NOT NULL,"
    " dnssec INTEGER NOT NULL, expires BIGINT NOT NULL, dime_until BIGINT NOT NULL);"
    " CREATE TABLE relay_cache_signets (name TEXT PRIMARY KEY, sealed BYTEA NOT NULL,"
    " expires BIGINT NOT NULL);"
    " CREATE TABLE relay_cache_key (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " check_value TEXT NOT NULL, since BIGINT NOT NULL)",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])) - 1)

#define POOL_MAX 32 /* idle connections kept; more are closed when given back */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *conninfo; /* NULL: not started */
static char node[512];  /* this node in relay_inbound: host name and queue database */
static struct dl_pg *idle[POOL_MAX];
static int n_idle;

static enum dc_status connect_one(const char *ci, struct dl_pg **out, struct dc_err *err)
{
    const struct dl_pg_opts o = {.what = "relay state", .conninfo = ci};
    return dl_pg_open(&o, out, err);
}

enum dc_status rl_shared_start(const char *ci, const char *queue_database,
                               struct dc_err *err)
{
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    snprintf(node, sizeof(node), "%s:%s", host, queue_database ? queue_database : "");
    struct dl_pg *pg = NULL;
    int version = 0;
    enum dc_status s = connect_one(ci, &pg, err);
    if (s == DC_OK)
        s = dl_pg_migrate(pg, "relay", migrations, SCHEMA_VERSION, &version, err);
    if (s != DC_OK) {
        dl_pg_close(pg);
        return s;
    }
    conninfo = dc_xstrdup(ci);
    idle[n_idle++] = pg;
    return DC_OK;
}

bool rl_shared_on(void)
{
    return conninfo != NULL;
}

enum dc_status rl_shared_take(struct dl_pg **out, struct dc_err *err)
{
    *out = NULL;
    if (conninfo == NULL)
        return dc_fail(err, DC_ERR_ARG, "relay state: state = postgresql is not started");
    pthread_mutex_lock(&lock);
    if (n_idle > 0)
        *out = idle[--n_idle];
    pthread_mutex_unlock(&lock);
    /* an idle connection that lost its server reconnects on its next statement (dl_pg) */
    return *out != NULL ? DC_OK : connect_one(conninfo, out, err);
}

void rl_shared_give(struct dl_pg *pg)
{
    if (pg == NULL)
        return;
    pthread_mutex_lock(&lock);
    if (n_idle < POOL_MAX) {
        idle[n_idle++] = pg;
        pg = NULL;
    }
    pthread_mutex_unlock(&lock);
    dl_pg_close(pg);
}

void rl_shared_stop(void)
{
    pthread_mutex_lock(&lock);
    while (n_idle > 0)
        dl_pg_close(idle[--n_idle]);
    free(conninfo);
    conninfo = NULL;
    pthread_mutex_unlock(&lock);
}

/* ---- the inbound digests ---- */

/* Claims the digest for this node: a new row, this node's own pending claim again (a commit
 * cut short here), or another node's pending claim older than the bound (that node died
 * between its claim and its commit, or lost PostgreSQL meanwhile). */
#define IN_CLAIM "INSERT INTO relay_inbound AS r (hash, node, state, claimed, tid)"             \
                 " VALUES ($1, $2, 'pending', $3, '') ON CONFLICT (hash) DO UPDATE SET"        \
                 " node = $2, claimed = $3 WHERE r.state = 'pending' AND (r.node = $2 OR"      \
                 " r.claimed < $4) RETURNING node"
#define IN_SEEN "SELECT state, tid FROM relay_inbound WHERE hash = $1"
/* stored here: also when the claim went meanwhile (released by a concurrent session of this
 * node whose commit failed, or pruned), unless another node holds the digest now */
#define IN_STORED "INSERT INTO relay_inbound AS r (hash, node, state, claimed, tid)"            \
                  " VALUES ($1, $2, 'stored', $4, $3) ON CONFLICT (hash) DO UPDATE SET"         \
                  " state = 'stored', tid = $3 WHERE r.node = $2"
#define IN_RELEASE "DELETE FROM relay_inbound WHERE hash = $1 AND node = $2 AND"              \
                   " state = 'pending'"
#define IN_PRUNE "DELETE FROM relay_inbound WHERE claimed < $1"

/* Claims h: DC_OK (ours: commit it here; or with *stored, a node has it already: tid is its
 * transaction id), DC_ERR_ORDER (another node commits it now), DC_ERR_IO (PostgreSQL). */
static enum dc_status claim(struct dl_pg *pg, const uint8_t h[32], int64_t now, char tid[24],
                            bool *stored, struct dc_err *err)
{
    struct dl_pg_args a = {0};
    dl_pg_arg_bytes(&a, h, 32);
    dl_pg_arg_text(&a, node);
    dl_pg_arg_int(&a, now);
    dl_pg_arg_int(&a, now - RL_SHARED_CLAIM_MAX);
    PGresult *r = NULL;
    *stored = false;
    enum dc_status s = dl_pg_exec(pg, IN_CLAIM, &a, &r, err);
    if (s != DC_OK)
        return s;
    int n = dl_pg_rows(r);
    PQclear(r);
    if (n == 1)
        return DC_OK;
    struct dl_pg_args b = {0};
    dl_pg_arg_bytes(&b, h, 32);
    if ((s = dl_pg_exec(pg, IN_SEEN, &b, &r, err)) != DC_OK)
        return s;
    char state[16] = "";
    if (dl_pg_rows(r) == 1) {
        dl_pg_text(r, 0, 0, state, sizeof(state));
        dl_pg_text(r, 0, 1, tid, 24);
    }
    PQclear(r);
    if (strcmp(state, "stored") == 0) {
        *stored = true;
        return DC_OK;
    }
    return dc_fail(err, DC_ERR_ORDER, "another node of the domain is committing this message");
}

static enum dc_status by_hash(struct dl_pg *pg, const char *sql, const uint8_t h[32],
                              const char *tid, struct dc_err *err)
{
    struct dl_pg_args a = {0};
    dl_pg_arg_bytes(&a, h, 32);
    dl_pg_arg_text(&a, node);
    if (tid != NULL) {
        dl_pg_arg_text(&a, tid);
        dl_pg_arg_int(&a, rl_now());
    }
    PGresult *r = NULL;
    enum dc_status s = dl_pg_exec(pg, sql, &a, &r, err);
    PQclear(r);
    return s;
}

enum dc_status rl_shared_in_add(struct rl_queue *q, const uint8_t *data, size_t len,
                                const struct dc_fmap *map, const char *recipient,
                                const char *origin, char tid[24], bool *dup, struct dc_err *err)
{
    if (!rl_shared_on())
        return rl_queue_in_add_map(q, data, len, map, recipient, origin, tid, dup, err);
    uint8_t h[32];
    rl_queue_in_hash(data, len, map, h);
    struct dl_pg *pg = NULL;
    bool stored = false;
    *dup = false;
    enum dc_status s = rl_shared_take(&pg, err);
    if (s == DC_OK)
        s = claim(pg, h, rl_now(), tid, &stored, err);
    if (s != DC_OK || stored) { /* a tempfail, or a 250 for what the domain holds already */
        *dup = stored;
        rl_shared_give(pg);
        return s;
    }
    /* ours: the local queue decides (it has it already when this node's earlier commit got
     * that far), then the claim says stored; a claim that cannot be marked stays pending,
     * ours: the message is in our queue, the 250 is right; a retry to another node waits for
     * the claim's bound, a retry to us finds it in our queue */
    s = rl_queue_in_add_hashed(q, data, len, map, h, recipient, origin, tid, dup, err);
    struct dc_err e2 = {0};
    if (s == DC_OK && by_hash(pg, IN_STORED, h, tid, &e2) != DC_OK)
        dl_log(LOG_WARNING, "inbound tid=%s claim not marked stored: %s", tid, e2.msg);
    else if (s != DC_OK) /* nothing stored: another node may take it at once */
        by_hash(pg, IN_RELEASE, h, NULL, &e2);
    rl_shared_give(pg);
    return s;
}

unsigned rl_shared_prune(int64_t before)
{
    struct dl_pg *pg = NULL;
    struct dc_err e = {0};
    if (!rl_shared_on() || rl_shared_take(&pg, &e) != DC_OK)
        return 0;
    struct dl_pg_args a = {0};
    dl_pg_arg_int(&a, before);
    PGresult *r = NULL;
    long n = 0;
    if (dl_pg_exec(pg, IN_PRUNE, &a, &r, &e) == DC_OK)
        n = dl_pg_changed(r);
    PQclear(r);
    rl_shared_give(pg);
    return (unsigned)n;
}
