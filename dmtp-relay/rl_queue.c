/*
 * rl_queue - the durable queue. See rl_queue.h (and there, why SQLite).
 */
#include "rl_queue.h"

#include "dc_crypto.h"
#include "dc_fmap.h"
#include "dl_sqlite.h"
#include "rl_seal.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

/* Statements are prepared once per connection and kept, keyed by the address of their SQL
 * text (every statement here is a string literal); a claim, an injection or a submission
 * used to parse and plan each of its statements every time. */
#define STMT_CACHE 48

/* One SQLite connection and its prepared statements. */
struct rl_conn {
    sqlite3 *db;
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } cache[STMT_CACHE];
    unsigned ncache;
};

struct rl_queue {
    sqlite3 *db;          /* c->db: the connection in use */
    struct rl_conn *c;    /* &durable, or &lazy for the steps that need not wait for the disk */
    struct rl_conn durable, lazy; /* synchronous=FULL and NORMAL; lazy opened on first use */
    uint8_t key[32];
    char *pool_key;           /* what it was opened with, "db LF keyfile" (the pool below) */
    char *path;               /* the database file (for the lazy connection) */
    bool writing;             /* holds write_mu (below) */
};

/*
 * The writers of this process take turns on a mutex before SQLite's write lock: a commit holds
 * that lock through its fsync, and the busy handler's waiters (4 inbound jobs, 4 injection
 * sessions, the delivery workers) polled it every 0.5 ms meanwhile, about 5% of bob's CPU in
 * bench/dmtp at 256 KiB went to those sleeps and wake-ups. Waiting on the mutex costs one
 * wake-up. Taken by BEGIN IMMEDIATE and by a write outside a transaction, released once the
 * connection is back in autocommit (COMMIT, ROLLBACK, the write done); no rl_queue function
 * returns with a transaction open. Other processes (dime-relayctl) still meet the busy handler.
 */
static pthread_mutex_t write_mu = PTHREAD_MUTEX_INITIALIZER;

static void write_begin(struct rl_queue *q)
{
    if (!q->writing) {
        pthread_mutex_lock(&write_mu);
        q->writing = true;
    }
}

static void write_end(struct rl_queue *q)
{
    if (q->writing && sqlite3_get_autocommit(q->db) != 0) {
        q->writing = false;
        pthread_mutex_unlock(&write_mu);
    }
}

int64_t rl_now(void)
{
    return (int64_t)time(NULL);
}

int64_t rl_backoff(unsigned attempts, unsigned retry_min, unsigned retry_max)
{
    int64_t d = retry_min;
    for (unsigned i = 0; i < attempts && d < retry_max; i++)
        d *= 2;
    return d > retry_max ? retry_max : d;
}

void rl_random_id(char *out, size_t n)
{
    uint8_t r[32];
    if (n > sizeof(r))
        n = sizeof(r);
    if (dc_random(r, n) != DC_OK)
        abort();
    dc_hex_encode(r, n, out);
    out[2 * n] = '\0';
}

static enum dc_status dberr(struct rl_queue *q, struct dc_err *err, const char *what)
{
    int c = sqlite3_extended_errcode(q->db);
    (void)c;
    return dc_fail(err, DC_ERR_IO, "queue database: %s: %s", what, sqlite3_errmsg(q->db));
}

/* Schema version (PRAGMA user_version); see upgrade(). */
#define QUEUE_VERSION 3

static const char schema[] =
    /* Rows hold only D/MIME ciphertext, sealed addresses and domains: zeroing the freed pages
     * (Debian's SQLite is built with secure_delete on) would triple the writes of a 256 KiB
     * message's trip through the queue, for nothing readable. */
    "PRAGMA secure_delete=OFF;"
    "CREATE TABLE IF NOT EXISTS submission(key TEXT PRIMARY KEY, sid TEXT NOT NULL,"
    " count INTEGER NOT NULL, created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS outq(id TEXT PRIMARY KEY, pf_qid TEXT NOT NULL,"
    " sender_sealed BLOB NOT NULL, rcpt_sealed BLOB NOT NULL, domain TEXT NOT NULL,"
    " origin TEXT NOT NULL, created INTEGER NOT NULL, next_try INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'queued',"
    " held INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '',"
    " size INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS outq_due ON outq(state, domain, next_try);"
    /* The messages' bytes, in tables of their own (schema 2): SQLite rewrites a whole record,
     * overflow pages included, on any UPDATE of it, so with the bytes in the row every claim,
     * defer and injection mark copied the message again (to the WAL, then the checkpoint).
     * The triggers take the bytes away with the row, or when an inbound message is done. */
    "CREATE TABLE IF NOT EXISTS outq_data(id TEXT PRIMARY KEY, data BLOB NOT NULL);"
    "CREATE TRIGGER IF NOT EXISTS outq_data_gone AFTER DELETE ON outq"
    " BEGIN DELETE FROM outq_data WHERE id=old.id; END;"
    "CREATE TABLE IF NOT EXISTS inq(tid TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE,"
    " rcpt_sealed BLOB, origin TEXT NOT NULL, created INTEGER NOT NULL,"
    " next_try INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " state TEXT NOT NULL DEFAULT 'queued', held INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT NOT NULL DEFAULT '', size INTEGER NOT NULL,"
    " inject_gen INTEGER NOT NULL DEFAULT 0, inject_pending INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS inq_due ON inq(state, next_try);"
    "CREATE TABLE IF NOT EXISTS inq_data(tid TEXT PRIMARY KEY, data BLOB NOT NULL);"
    "CREATE TRIGGER IF NOT EXISTS inq_data_gone AFTER DELETE ON inq"
    " BEGIN DELETE FROM inq_data WHERE tid=old.tid; END;"
    "CREATE TRIGGER IF NOT EXISTS inq_data_done AFTER UPDATE OF state ON inq"
    " WHEN new.state='done' BEGIN DELETE FROM inq_data WHERE tid=new.tid; END;";

/* Databases made before the injection generation: add its two columns (the defaults say "no
 * attempt yet"). Every thread opens the queue, so another one may have added them first. */
static bool has_inject_gen(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    bool ok = sqlite3_prepare_v2(db, "SELECT inject_gen, inject_pending FROM inq LIMIT 0", -1,
                                 &st, NULL) == SQLITE_OK;
    sqlite3_finalize(st);
    return ok;
}

static bool migrate(sqlite3 *db)
{
    if (has_inject_gen(db))
        return true;
    sqlite3_exec(db, "BEGIN IMMEDIATE;"
                     "ALTER TABLE inq ADD COLUMN inject_gen INTEGER NOT NULL DEFAULT 0;"
                     "ALTER TABLE inq ADD COLUMN inject_pending INTEGER NOT NULL DEFAULT 0;"
                     "COMMIT;", NULL, NULL, NULL);
    if (sqlite3_get_autocommit(db) == 0)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return has_inject_gen(db);
}

static enum dc_status seal_migrate(struct rl_queue *q, struct dc_err *err);
static int busy_wait(void *ctx, int tries);

static void conn_close(struct rl_conn *c)
{
    for (unsigned i = 0; i < c->ncache; i++)
        sqlite3_finalize(c->cache[i].st);
    c->ncache = 0;
    sqlite3_close(c->db);
    c->db = NULL;
}

/* Another connection holds the write lock: try again in 0.5 ms, for up to 30 s. SQLite's
 * busy_timeout sleeps 1, 2, 5, ... up to 100 ms between tries and is not woken when the lock is
 * freed; with several threads committing (each holds the lock through its fsync) those
 * sleeps, not the disk, bounded the throughput. */
static int busy_wait(void *ctx, int tries)
{
    (void)ctx;
    if (tries >= 60000)
        return 0;
    struct timespec ts = {0, 500000};
    nanosleep(&ts, NULL);
    return 1;
}

/* A new database (no pages yet) gets a pointer map (auto_vacuum=INCREMENTAL; it can only be
 * chosen before the first table): with it SQLite finds the next overflow page of a blob it
 * frees without reading the page, where a done message's 256 KiB were read back, 64 preads,
 * only to be freed. Freed pages are reused from the free list as before; nothing runs
 * incremental_vacuum. Older databases need a VACUUM to get the map (rl_queue.h). */
static const struct dl_sqlite_opts queue_opts = {
    .what = "queue database", .flags = SQLITE_OPEN_NOMUTEX, .mode = 0600, .busy_ms = 30000,
    .busy = busy_wait, .synchronous = "FULL", .pointer_map = true};

enum dc_status rl_queue_open(const char *db, const char *keyfile, struct rl_queue **out,
                             struct dc_err *err)
{
    *out = NULL;
    struct rl_queue *q = dc_xcalloc(1, sizeof(*q));
    enum dc_status s = rl_seal_load_key(keyfile, q->key, err);
    if (s != DC_OK) {
        free(q);
        return s;
    }
    q->c = &q->durable;
    if ((s = dl_sqlite_open(db, &queue_opts, &q->durable.db, err)) != DC_OK) {
        rl_queue_close(q);
        return s;
    }
    q->db = q->durable.db;
    if (sqlite3_exec(q->db, schema, NULL, NULL, NULL) != SQLITE_OK || !migrate(q->db)) {
        s = dberr(q, err, "schema");
        rl_queue_close(q);
        return s;
    }
    s = seal_migrate(q, err);
    if (s != DC_OK) {
        rl_queue_close(q);
        return s;
    }
    q->pool_key = dc_xasprintf("%s\n%s", db, keyfile);
    q->path = dc_xstrdup(db);
    *out = q;
    return DC_OK;
}

/* Idle connections of rl_queue_take / rl_queue_give: 8 in all. */
static struct dl_pool pool = DL_POOL_INIT(8, 8, false);

static void close_idle(void *q)
{
    rl_queue_close(q);
}

enum dc_status rl_queue_take(const char *db, const char *keyfile, struct rl_queue **out,
                             struct dc_err *err)
{
    char *key = dc_xasprintf("%s\n%s", db, keyfile);
    struct rl_queue *q = dl_pool_take(&pool, key);
    free(key);
    if (q != NULL) {
        *out = q;
        return DC_OK;
    }
    return rl_queue_open(db, keyfile, out, err);
}

void rl_queue_give(struct rl_queue *q)
{
    if (q == NULL)
        return;
    if (sqlite3_get_autocommit(q->durable.db) == 0 ||
        (q->lazy.db != NULL && sqlite3_get_autocommit(q->lazy.db) == 0)) {
        /* a transaction left open: not reused */
        rl_queue_close(q);
        return;
    }
    if (!dl_pool_give(&pool, q->pool_key, q))
        rl_queue_close(q);
}

void rl_queue_pool_drain(void)
{
    dl_pool_drain(&pool, close_idle);
}

void rl_queue_close(struct rl_queue *q)
{
    if (q == NULL)
        return;
    conn_close(&q->durable);
    conn_close(&q->lazy);
    if (q->writing)
        pthread_mutex_unlock(&write_mu);
    free(q->pool_key);
    free(q->path);
    dc_memzero(q->key, sizeof(q->key));
    free(q);
}

/* A statement for sql (a string literal), ready to bind; give it back with done(). */
static sqlite3_stmt *prep(struct rl_queue *q, const char *sql)
{
    struct rl_conn *c = q->c;
    for (unsigned i = 0; i < c->ncache; i++)
        if (c->cache[i].sql == sql)
            return c->cache[i].st;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
        return NULL;
    if (c->ncache < STMT_CACHE) {
        c->cache[c->ncache].sql = sql;
        c->cache[c->ncache++].st = st;
    }
    return st;
}

/* Ends the use of a statement from prep(): reset (no read transaction stays open, no blob
 * stays bound) or, past the cache, finalized. */
static void done(struct rl_queue *q, sqlite3_stmt *st)
{
    for (unsigned i = 0; i < q->c->ncache; i++)
        if (q->c->cache[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return;
        }
    sqlite3_finalize(st);
}

/* A statement without arguments nor rows (BEGIN, COMMIT, a pragma): SQLITE_OK or the error. */
static int run(struct rl_queue *q, const char *sql)
{
    sqlite3_stmt *st = prep(q, sql);
    if (st == NULL)
        return SQLITE_ERROR;
    int rc = sqlite3_step(st);
    done(q, st);
    write_end(q);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* A write transaction: this process's writers take turns on write_mu first (see above). */
static int begin(struct rl_queue *q)
{
    write_begin(q);
    return run(q, "BEGIN IMMEDIATE");
}

/* Ends the write transaction begun with begin(): COMMIT when s is DC_OK (a failed commit is
 * rolled back and reported), ROLLBACK otherwise. Returns the outcome. */
static enum dc_status commit_or_rollback(struct rl_queue *q, enum dc_status s, struct dc_err *err)
{
    if (s == DC_OK && run(q, "COMMIT") != SQLITE_OK)
        s = dberr(q, err, "commit");
    if (s != DC_OK)
        run(q, "ROLLBACK");
    return s;
}

/* Runs a statement with text arguments (NULL-terminated) to completion. */
static enum dc_status exec_args(struct rl_queue *q, struct dc_err *err, int *changes,
                                const char *sql, const char *const *args, const int64_t *ints,
                                size_t nints)
{
    sqlite3_stmt *st = prep(q, sql);
    if (st == NULL)
        return dberr(q, err, "prepare");
    int i = 1;
    for (size_t k = 0; k < nints; k++)
        sqlite3_bind_int64(st, i++, ints[k]);
    for (; args && *args; args++)
        sqlite3_bind_text(st, i++, *args, -1, SQLITE_TRANSIENT);
    write_begin(q); /* every statement here writes */
    int rc = sqlite3_step(st);
    done(q, st);
    write_end(q);
    if (rc != SQLITE_DONE)
        return dberr(q, err, "update");
    if (changes)
        *changes = sqlite3_changes(q->db);
    return DC_OK;
}

enum dc_status rl_queue_recover(struct rl_queue *q, struct dc_err *err)
{
    return exec_args(q, err, NULL, "UPDATE outq SET state='queued' WHERE state='sending'", NULL,
                     NULL, 0);
}

/* ---- sealed addresses (rl_seal.h): each bound to its row and column ---- */

#define L_SENDER "outq.sender"
#define L_ORCPT "outq.rcpt"
#define L_IRCPT "inq.rcpt"

/* out: RL_SEAL_OVERHEAD + 256 bytes; false when s is longer than an address may be. */
static bool seal_addr(const struct rl_queue *q, const char *label, const char *row, const char *s,
                      uint8_t *out, size_t *olen)
{
    size_t n = strlen(s);
    if (n > 255)
        return false;
    *olen = rl_seal(q->key, label, row, s, n, out);
    return true;
}

static bool unseal_addr(const struct rl_queue *q, const char *label, const char *row,
                        sqlite3_stmt *st, int col, char out[256])
{
    return rl_unseal(q->key, label, row, sqlite3_column_blob(st, col),
                     (size_t)sqlite3_column_bytes(st, col), out, 256, NULL);
}

/* A row whose address does not unseal (the key file was replaced or the row damaged) can
 * never be injected or answered: it is held, with the reason, for the operator. */
static void hold_unsealable(struct rl_queue *q, const char *sql, const char *id)
{
    const char *a[] = {id, NULL};
    exec_args(q, NULL, NULL, sql, a, NULL, 0);
}

/* Schema 0 (user_version 0) kept outq.sender and inq.recipient in clear and sealed
 * outq.rcpt_sealed without binding it to its row; schema 1 seals all three, bound to their
 * row and column. Each table is looked at on its own (a table can be new in an old
 * database). */
static bool to_v1(sqlite3 *db, void *ctx)
{
    rl_seal_sql_functions(db, ((struct rl_queue *)ctx)->key, NULL);
    return rl_sql_convert(db, "outq", "sender",
                          "ALTER TABLE outq ADD COLUMN sender_sealed BLOB NOT NULL DEFAULT x'';"
                          "UPDATE outq SET sender_sealed=rl_seal('" L_SENDER "', id, sender),"
                          " rcpt_sealed=rl_reseal('" L_ORCPT "', id, rcpt_sealed);"
                          "ALTER TABLE outq DROP COLUMN sender;") &&
           rl_sql_convert(db, "inq", "recipient",
                          "ALTER TABLE inq ADD COLUMN rcpt_sealed BLOB;"
                          "UPDATE inq SET rcpt_sealed=rl_seal('" L_IRCPT "', tid, recipient)"
                          " WHERE state='queued';"
                          "ALTER TABLE inq DROP COLUMN recipient;");
}

/* Schema 1 kept each message's bytes in its outq / inq row (data); schema 2 keeps them in
 * outq_data / inq_data (see the schema). Done inbound rows had none left. */
static bool to_v2(sqlite3 *db)
{
    return rl_sql_convert(db, "outq", "data",
                          "INSERT INTO outq_data(id, data) SELECT id, data FROM outq;"
                          "ALTER TABLE outq DROP COLUMN data;") &&
           rl_sql_convert(db, "inq", "data",
                          "INSERT INTO inq_data(tid, data) SELECT tid, data FROM inq"
                          " WHERE state!='done' AND data IS NOT NULL;"
                          "ALTER TABLE inq DROP COLUMN data;");
}

/* Schemas 1 and 2 sealed in the relay's first format; schema 3 in daemonlib's (dl_seal.h),
 * as to_v1 does already. A value that does not open stays as it was: its row is held when
 * read, as before. */
static bool to_v3(sqlite3 *db, void *ctx)
{
    rl_seal_sql_functions(db, ((struct rl_queue *)ctx)->key, NULL);
    return sqlite3_exec(db, "UPDATE outq SET"
                            " sender_sealed=rl_reseal_bound('" L_SENDER "', id, sender_sealed),"
                            " rcpt_sealed=rl_reseal_bound('" L_ORCPT "', id, rcpt_sealed);"
                            "UPDATE inq SET rcpt_sealed=rl_reseal_bound('" L_IRCPT "', tid,"
                            " rcpt_sealed) WHERE rcpt_sealed IS NOT NULL;",
                        NULL, NULL, NULL) == SQLITE_OK;
}

/* New databases are created in the current schema and only get the number. */
static bool upgrade(sqlite3 *db, int from, void *ctx)
{
    if (from == 0)
        return to_v1(db, ctx) && to_v2(db);
    return to_v2(db) && to_v3(db, ctx);
}

static enum dc_status seal_migrate(struct rl_queue *q, struct dc_err *err)
{
    return rl_seal_upgrade(q->db, "queue database", QUEUE_VERSION, upgrade, q, err);
}

/* ---- submission ---- */

bool rl_queue_known(struct rl_queue *q, const char *key, char sid[17], size_t *count)
{
    sqlite3_stmt *st = prep(q, "SELECT sid, count FROM submission WHERE key=?");
    bool found = false;
    if (st == NULL)
        return false;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(sid, 17, "%s", (const char *)sqlite3_column_text(st, 0));
        *count = (size_t)sqlite3_column_int64(st, 1);
        found = true;
    }
    done(q, st);
    return found;
}

bool rl_queue_room(struct rl_queue *q, size_t n, size_t bytes, unsigned long max_messages,
                   unsigned long min_free, char *why, size_t wl)
{
    sqlite3_stmt *st = prep(q, "SELECT (SELECT count(*) FROM outq) +"
                               " (SELECT count(*) FROM inq WHERE state='queued')");
    if (st == NULL || sqlite3_step(st) != SQLITE_ROW) {
        snprintf(why, wl, "queue cannot be counted: %s", sqlite3_errmsg(q->db));
        if (st != NULL)
            done(q, st);
        return false;
    }
    unsigned long held = (unsigned long)sqlite3_column_int64(st, 0);
    done(q, st);
    if (held + n > max_messages) {
        snprintf(why, wl, "queue-max-messages: %lu messages queued, limit %lu", held,
                 max_messages);
        return false;
    }
    char *dir = dc_xstrdup(q->path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL)
        slash[slash == dir ? 1 : 0] = '\0';
    struct statvfs sv;
    int r = statvfs(slash != NULL ? dir : ".", &sv);
    free(dir);
    if (r != 0) {
        snprintf(why, wl, "queue file system: statvfs: %s", strerror(errno));
        return false;
    }
    unsigned long long avail = (unsigned long long)sv.f_bavail * sv.f_frsize;
    if (avail < (unsigned long long)bytes + min_free) {
        snprintf(why, wl, "queue-min-free: %llu bytes free, %lu to keep, %zu to write", avail,
                 min_free, bytes);
        return false;
    }
    return true;
}

enum dc_status rl_queue_submit(struct rl_queue *q, const char *key, const char *pf_qid,
                               const struct rl_q_new *m, size_t n, char sid[17], size_t *count,
                               bool *dup, struct dc_err *err)
{
    *dup = false;
    *count = 0;
    if (begin(q) != SQLITE_OK)
        return dberr(q, err, "begin");
    enum dc_status s = DC_OK;
    sqlite3_stmt *st = prep(q, "SELECT sid, count FROM submission WHERE key=?");
    if (st == NULL) {
        s = dberr(q, err, "prepare");
        goto rollback;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(sid, 17, "%s", (const char *)sqlite3_column_text(st, 0));
        *count = (size_t)sqlite3_column_int64(st, 1);
        *dup = true;
        done(q, st);
        run(q, "ROLLBACK");
        return DC_OK;
    }
    done(q, st);
    rl_random_id(sid, 8);
    int64_t now = rl_now();
    st = prep(q, "INSERT INTO submission(key, sid, count, created) VALUES(?,?,?,?)");
    if (st == NULL) {
        s = dberr(q, err, "prepare");
        goto rollback;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, sid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, (int64_t)n);
    sqlite3_bind_int64(st, 4, now);
    int rc = sqlite3_step(st);
    done(q, st);
    if (rc != SQLITE_DONE) {
        s = dberr(q, err, "insert submission");
        goto rollback;
    }
    st = prep(q, "INSERT INTO outq(id, pf_qid, sender_sealed, rcpt_sealed, domain, origin,"
                 " created, next_try, size) VALUES(?,?,?,?,?,?,?,?,?)");
    sqlite3_stmt *sd = prep(q, "INSERT INTO outq_data(id, data) VALUES(?,?)");
    if (st == NULL || sd == NULL) {
        s = dberr(q, err, "prepare");
        if (st != NULL)
            done(q, st);
        goto rollback;
    }
    for (size_t i = 0; i < n; i++) {
        char id[24];
        snprintf(id, sizeof(id), "%s.%zu", sid, i + 1);
        uint8_t sealed[RL_SEAL_OVERHEAD + 256], ssender[RL_SEAL_OVERHEAD + 256];
        size_t sl, ssl;
        if (!seal_addr(q, L_ORCPT, id, m[i].recipient, sealed, &sl) ||
            !seal_addr(q, L_SENDER, id, m[i].sender, ssender, &ssl)) {
            s = dc_fail(err, DC_ERR_ARG, "address too long");
            break;
        }
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, pf_qid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 3, ssender, (int)ssl, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 4, sealed, (int)sl, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, m[i].domain, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 6, m[i].origin, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 7, now);
        sqlite3_bind_int64(st, 8, now);
        sqlite3_bind_int64(st, 9, (int64_t)m[i].len);
        sqlite3_reset(sd);
        sqlite3_bind_text(sd, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob64(sd, 2, m[i].data, m[i].len, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE || sqlite3_step(sd) != SQLITE_DONE) {
            s = dberr(q, err, "insert message");
            break;
        }
    }
    done(q, st);
    done(q, sd);
    s = commit_or_rollback(q, s, err);
    if (s == DC_OK)
        *count = n;
    return s;
rollback:
    run(q, "ROLLBACK");
    return s;
}

/* ---- outbound ---- */

void rl_q_out_free(struct rl_q_out *m)
{
    free(m->data);
    dc_memzero(m->recipient, sizeof(m->recipient));
    dc_memzero(m->sender, sizeof(m->sender));
    m->data = NULL;
}

size_t rl_queue_due_domains(struct rl_queue *q, int64_t now, char (*dom)[256], unsigned *count,
                            size_t max)
{
    sqlite3_stmt *st = prep(q, "SELECT domain, COUNT(*) FROM outq WHERE state='queued' AND "
                               "held=0 AND next_try<=? GROUP BY domain ORDER BY MIN(next_try)");
    if (st == NULL)
        return 0;
    sqlite3_bind_int64(st, 1, now);
    size_t n = 0;
    while (n < max && sqlite3_step(st) == SQLITE_ROW) {
        snprintf(dom[n], 256, "%s", (const char *)sqlite3_column_text(st, 0));
        count[n++] = (unsigned)sqlite3_column_int64(st, 1);
    }
    done(q, st);
    return n;
}

static void row_out(sqlite3_stmt *st, struct rl_q_out *o)
{
    /* id, pf_qid, domain, origin, created, attempts, last_error (the sender stays sealed) */
    snprintf(o->id, sizeof(o->id), "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(o->pf_qid, sizeof(o->pf_qid), "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(o->domain, sizeof(o->domain), "%s", (const char *)sqlite3_column_text(st, 2));
    snprintf(o->origin, sizeof(o->origin), "%s", (const char *)sqlite3_column_text(st, 3));
    o->created = sqlite3_column_int64(st, 4);
    o->attempts = (unsigned)sqlite3_column_int64(st, 5);
    snprintf(o->last_error, sizeof(o->last_error), "%s",
             (const char *)sqlite3_column_text(st, 6));
}

/* Commits that wait for the WAL fsync (full, the default here) or not (the commit is ordered
 * in the WAL and reaches the disk with the next durable commit or checkpoint). Each kind has a
 * connection of its own: flipping PRAGMA synchronous around every claim, sent mark and done
 * mark cost about 4% of the relay's CPU in bench/pipeline (a pragma is compiled anew at each
 * step). Called only outside a transaction. Without the second connection (it cannot be
 * opened), the commit simply waits for the disk. */
static void sync_full(struct rl_queue *q, bool full)
{
    if (!full && q->lazy.db == NULL) {
        struct dl_sqlite_opts o = queue_opts;
        o.synchronous = "NORMAL";
        if (dl_sqlite_open(q->path, &o, &q->lazy.db, NULL) != DC_OK)
            q->lazy.db = NULL;
    }
    q->c = !full && q->lazy.db != NULL ? &q->lazy : &q->durable;
    q->db = q->c->db;
}

/* The bytes of row rowid of table (outq_data / inq_data), read straight into a buffer of
 * their size: sqlite3_column_blob assembled them in a buffer of its own first, which was then
 * copied. rowid is NULL (no bytes stored): an empty message, as before. Called with the
 * statement that found rowid still on its row, so the same read transaction holds. */
static bool read_data(struct rl_queue *q, const char *table, sqlite3_stmt *st, int col,
                      uint8_t **data, size_t *len)
{
    *len = 0;
    *data = NULL;
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        *data = dc_xmalloc(1);
        return true;
    }
    sqlite3_blob *b = NULL;
    if (sqlite3_blob_open(q->db, "main", table, "data", sqlite3_column_int64(st, col), 0, &b) !=
        SQLITE_OK) {
        sqlite3_blob_close(b);
        return false;
    }
    int n = sqlite3_blob_bytes(b);
    *data = dc_xmalloc(n > 0 ? (size_t)n : 1);
    if (n > 0 && sqlite3_blob_read(b, *data, n, 0) != SQLITE_OK) {
        sqlite3_blob_close(b);
        free(*data);
        *data = NULL;
        return false;
    }
    sqlite3_blob_close(b);
    *len = (size_t)n;
    return true;
}

static enum dc_status claim_one(struct rl_queue *q, const char *domain, int64_t now,
                                struct rl_q_out *out, bool *found, struct dc_err *err)
{
    if (begin(q) != SQLITE_OK)
        return dberr(q, err, "begin");
    /* The oldest due message is picked by id first: sorting whole rows would copy every due
     * message's data into the sorter on each claim (quadratic in the queue length). */
    sqlite3_stmt *st = prep(q, "SELECT o.id, pf_qid, domain, origin, created, attempts,"
                               " last_error, d.rowid FROM outq o LEFT JOIN outq_data d"
                               " ON d.id=o.id WHERE o.id=(SELECT id FROM outq"
                               " WHERE state='queued' AND held=0 AND domain=? AND next_try<=?"
                               " ORDER BY next_try, rowid LIMIT 1)");
    if (st == NULL) {
        run(q, "ROLLBACK");
        return dberr(q, err, "prepare");
    }
    sqlite3_bind_text(st, 1, domain, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now);
    enum dc_status s = DC_OK;
    if (sqlite3_step(st) == SQLITE_ROW) {
        row_out(st, out);
        if (read_data(q, "outq_data", st, 7, &out->data, &out->len))
            *found = true;
        else
            s = dberr(q, err, "read message");
    }
    done(q, st);
    if (s == DC_OK && *found) {
        const char *a[] = {out->id, NULL};
        s = exec_args(q, err, NULL, "UPDATE outq SET state='sending' WHERE id=?", a, NULL, 0);
    }
    if (s == DC_OK && run(q, "COMMIT") != SQLITE_OK)
        s = dberr(q, err, "commit");
    if (s != DC_OK) {
        run(q, "ROLLBACK");
        rl_q_out_free(out);
        *found = false;
    }
    return s;
}

enum dc_status rl_queue_claim(struct rl_queue *q, const char *domain, int64_t now,
                              struct rl_q_out *out, bool *found, struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    *found = false;
    /* The claim ('sending') need not reach the disk: after a crash rl_queue_recover makes
     * every 'sending' row 'queued' again, which is what losing the claim does; a power cut
     * here costs nothing. The WAL keeps commits in order, so any later synchronous commit or
     * checkpoint syncs it too (and a lost claim means every later commit is lost with it). */
    sync_full(q, false);
    enum dc_status s = claim_one(q, domain, now, out, found, err);
    sync_full(q, true);
    return s;
}

enum dc_status rl_queue_out_done(struct rl_queue *q, const char *id, struct dc_err *err)
{
    const char *a[] = {id, NULL};
    return exec_args(q, err, NULL, "DELETE FROM outq WHERE id=?", a, NULL, 0);
}

enum dc_status rl_queue_out_sent(struct rl_queue *q, const char *id, struct dc_err *err)
{
    /* Not waiting for the disk (rl_queue.h): the destination has committed the message (its
     * 250). A power cut here may bring the row back (queued, or sending, which recovery
     * makes queued): it goes again, the destination finds the same bytes in its inbound
     * queue (rl_queue_in_add, by SHA-256, kept twice queue-lifetime) and answers 250 without
     * storing it twice. Costs one transfer, never a message. */
    sync_full(q, false);
    enum dc_status s = rl_queue_out_done(q, id, err);
    sync_full(q, true);
    return s;
}

enum dc_status rl_queue_out_defer(struct rl_queue *q, const char *id, int64_t next,
                                  const char *error, struct dc_err *err)
{
    const char *a[] = {error, id, NULL};
    int64_t i[] = {next};
    return exec_args(q, err, NULL, "UPDATE outq SET state='queued', next_try=?, attempts=attempts"
                     "+1, last_error=? WHERE id=?", a, i, 1);
}

enum dc_status rl_queue_out_bounce(struct rl_queue *q, const char *id, const char *error,
                                   struct dc_err *err)
{
    const char *a[] = {error, id, NULL};
    return exec_args(q, err, NULL, "UPDATE outq SET state='bounce', next_try=0, attempts="
                     "attempts+1, last_error=? WHERE id=?", a, NULL, 0);
}

unsigned rl_queue_expire(struct rl_queue *q, int64_t now, unsigned lifetime)
{
    int ch = 0;
    int64_t i[] = {now - (int64_t)lifetime};
    const char *a[] = {NULL};
    struct dc_err e = {0};
    if (exec_args(q, &e, &ch, "UPDATE outq SET state='bounce', next_try=0, last_error="
                  "'delivery time expired; last error: ' || last_error WHERE state='queued'"
                  " AND created<?", a, i, 1) != DC_OK)
        return 0;
    return (unsigned)ch;
}

enum dc_status rl_queue_bounce_next(struct rl_queue *q, int64_t now, struct rl_q_out *out,
                                    bool *found, struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    *found = false;
    sqlite3_stmt *st = prep(q, "SELECT id, pf_qid, domain, origin, created, attempts,"
                               " last_error, rcpt_sealed, sender_sealed FROM outq WHERE"
                               " state='bounce' AND held=0 AND next_try<=? ORDER BY next_try"
                               " LIMIT 1");
    if (st == NULL)
        return dberr(q, err, "prepare");
    sqlite3_bind_int64(st, 1, now);
    bool lost = false;
    if (sqlite3_step(st) == SQLITE_ROW) {
        row_out(st, out);
        if (!unseal_addr(q, L_ORCPT, out->id, st, 7, out->recipient))
            snprintf(out->recipient, sizeof(out->recipient), "unknown@%.200s", out->domain);
        if (unseal_addr(q, L_SENDER, out->id, st, 8, out->sender))
            *found = true;
        else
            lost = true;
    }
    done(q, st);
    if (lost) {
        /* without its sender the DSN has nowhere to go */
        hold_unsealable(q, "UPDATE outq SET held=1, last_error='sender does not unseal"
                           " (queue-key-file replaced?)' WHERE id=?", out->id);
        rl_q_out_free(out);
    }
    return DC_OK;
}

enum dc_status rl_queue_bounce_retry(struct rl_queue *q, const char *id, int64_t next,
                                     struct dc_err *err)
{
    const char *a[] = {id, NULL};
    int64_t i[] = {next};
    return exec_args(q, err, NULL, "UPDATE outq SET next_try=? WHERE id=? AND state='bounce'",
                     a, i, 1);
}

/* ---- inbound ---- */

void rl_q_in_free(struct rl_q_in *m)
{
    free(m->data);
    dc_memzero(m->recipient, sizeof(m->recipient));
    m->data = NULL;
}

/* The message's bytes in windows, each released after use when they are mapped (the pages
 * of a spooled message go back to the file behind the pass). */
#define IN_WINDOW (1u << 20)

void rl_queue_in_hash(const uint8_t *data, size_t len, const struct dc_fmap *map, uint8_t h[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (size_t off = 0; off < len; off += IN_WINDOW) {
        size_t n = len - off < IN_WINDOW ? len - off : IN_WINDOW;
        EVP_DigestUpdate(md, data + off, n);
        dc_fmap_release(map, data + off, n);
    }
    unsigned hl = 0;
    EVP_DigestFinal_ex(md, h, &hl);
    EVP_MD_CTX_free(md);
}

/* Writes the message into the zero blob of inq_data row rowid, a window at a time: SQLite
 * never builds a record of the whole message in memory. */
static int in_blob_write(struct rl_queue *q, sqlite3_int64 rowid, const uint8_t *data,
                         size_t len, const struct dc_fmap *map)
{
    sqlite3_blob *b = NULL;
    int rc = sqlite3_blob_open(q->db, "main", "inq_data", "data", rowid, 1, &b);
    for (size_t off = 0; rc == SQLITE_OK && off < len; off += IN_WINDOW) {
        size_t n = len - off < IN_WINDOW ? len - off : IN_WINDOW;
        rc = sqlite3_blob_write(b, data + off, (int)n, (int)off);
        dc_fmap_release(map, data + off, n);
    }
    sqlite3_blob_close(b);
    return rc == SQLITE_OK ? SQLITE_DONE : rc;
}

enum dc_status rl_queue_in_add(struct rl_queue *q, const uint8_t *data, size_t len,
                               const char *recipient, const char *origin, char tid[24],
                               bool *dup, struct dc_err *err)
{
    return rl_queue_in_add_map(q, data, len, NULL, recipient, origin, tid, dup, err);
}

enum dc_status rl_queue_in_add_map(struct rl_queue *q, const uint8_t *data, size_t len,
                                   const struct dc_fmap *map, const char *recipient,
                                   const char *origin, char tid[24], bool *dup,
                                   struct dc_err *err)
{
    uint8_t h[32];
    rl_queue_in_hash(data, len, map, h);
    return rl_queue_in_add_hashed(q, data, len, map, h, recipient, origin, tid, dup, err);
}

enum dc_status rl_queue_in_add_hashed(struct rl_queue *q, const uint8_t *data, size_t len,
                                      const struct dc_fmap *map, const uint8_t h[32],
                                      const char *recipient, const char *origin, char tid[24],
                                      bool *dup, struct dc_err *err)
{
    *dup = false;
    if (begin(q) != SQLITE_OK)
        return dberr(q, err, "begin");
    sqlite3_stmt *st = prep(q, "SELECT tid FROM inq WHERE hash=?");
    enum dc_status s = DC_OK;
    if (st == NULL) {
        s = dberr(q, err, "prepare");
        goto rollback;
    }
    sqlite3_bind_blob(st, 1, h, 32, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(tid, 24, "%s", (const char *)sqlite3_column_text(st, 0));
        *dup = true;
        done(q, st);
        run(q, "ROLLBACK");
        return DC_OK;
    }
    done(q, st);
    rl_random_id(tid, 10);
    uint8_t sealed[RL_SEAL_OVERHEAD + 256];
    size_t sl;
    if (!seal_addr(q, L_IRCPT, tid, recipient, sealed, &sl)) {
        s = dc_fail(err, DC_ERR_ARG, "recipient too long");
        goto rollback;
    }
    /* generation 1 is reserved for the first injection attempt, pending, in this commit
     * (rl_queue.h) */
    st = prep(q, "INSERT INTO inq(tid, hash, rcpt_sealed, origin, created, next_try, size,"
                 " inject_gen, inject_pending) VALUES(?,?,?,?,?,?,?,1,1)");
    sqlite3_stmt *sd = prep(q, "INSERT INTO inq_data(tid, data) VALUES(?,?)");
    if (st == NULL || sd == NULL) {
        s = dberr(q, err, "prepare");
        goto rollback;
    }
    int64_t now = rl_now();
    sqlite3_bind_text(st, 1, tid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 2, h, 32, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 3, sealed, (int)sl, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, origin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, now);
    sqlite3_bind_int64(st, 6, now);
    sqlite3_bind_int64(st, 7, (int64_t)len);
    sqlite3_bind_text(sd, 1, tid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_zeroblob64(sd, 2, len);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        rc = sqlite3_step(sd);
    if (rc == SQLITE_DONE && len > 0)
        rc = in_blob_write(q, sqlite3_last_insert_rowid(q->db), data, len, map);
    done(q, st);
    done(q, sd);
    if (rc != SQLITE_DONE) {
        s = dberr(q, err, "insert");
        goto rollback;
    }
    if (run(q, "COMMIT") != SQLITE_OK) {
        s = dberr(q, err, "commit");
        goto rollback;
    }
    return DC_OK;
rollback:
    run(q, "ROLLBACK");
    return s;
}

enum dc_status rl_queue_in_next(struct rl_queue *q, int64_t now, struct rl_q_in *out,
                                bool *found, struct dc_err *err)
{
    return rl_queue_in_next_except(q, now, NULL, 0, out, found, err);
}

enum dc_status rl_queue_in_next_except(struct rl_queue *q, int64_t now, const char (*busy)[24],
                                       size_t nbusy, struct rl_q_in *out, bool *found,
                                       struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    *found = false;
    /* Ids first, in the order of the inq_due index (no sort): at most nbusy of them are being
     * injected by other sessions, so nbusy + 1 candidates hold the oldest free one. */
    sqlite3_stmt *st = prep(q, "SELECT tid FROM inq WHERE state='queued' AND held=0 AND"
                               " next_try<=? ORDER BY next_try, rowid LIMIT ?");
    if (st == NULL)
        return dberr(q, err, "prepare");
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, (int64_t)nbusy + 1);
    bool have = false;
    while (!have && sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        have = true;
        for (size_t k = 0; k < nbusy && have; k++)
            have = strcmp(busy[k], t) != 0;
        if (have)
            snprintf(out->tid, sizeof(out->tid), "%s", t);
    }
    done(q, st);
    if (!have)
        return DC_OK;
    st = prep(q, "SELECT rcpt_sealed, origin, attempts, d.rowid, inject_gen, inject_pending,"
                 " created FROM inq i LEFT JOIN inq_data d ON d.tid=i.tid WHERE i.tid=? AND"
                 " state='queued'");
    if (st == NULL)
        return dberr(q, err, "prepare");
    bool lost = false;
    sqlite3_bind_text(st, 1, out->tid, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
        if (!unseal_addr(q, L_IRCPT, out->tid, st, 0, out->recipient))
            lost = true;
        snprintf(out->origin, sizeof(out->origin), "%s",
                 (const char *)sqlite3_column_text(st, 1));
        out->attempts = (unsigned)sqlite3_column_int64(st, 2);
        if (!read_data(q, "inq_data", st, 3, &out->data, &out->len)) {
            enum dc_status s = dberr(q, err, "read message");
            done(q, st);
            rl_q_in_free(out);
            return s;
        }
        out->gen = (unsigned)sqlite3_column_int64(st, 4);
        out->pending = sqlite3_column_int64(st, 5) != 0;
        out->created = sqlite3_column_int64(st, 6);
        *found = !lost;
    }
    done(q, st);
    if (lost) {
        hold_unsealable(q, "UPDATE inq SET held=1, last_error='recipient does not unseal"
                           " (queue-key-file replaced?)' WHERE tid=?", out->tid);
        rl_q_in_free(out);
    }
    return DC_OK;
}

enum dc_status rl_queue_in_done(struct rl_queue *q, const char *tid, struct dc_err *err)
{
    const char *a[] = {tid, NULL};
    /* Not waiting for the disk (rl_queue.h): a done mark lost with the host (a power cut)
     * leaves the attempt pending, and after the host restart its repeat takes a new
     * generation (rl_inject.c, boot_check): Postfix gets a second copy, never none. */
    sync_full(q, false);
    enum dc_status s = exec_args(q, err, NULL,
                                 "UPDATE inq SET state='done', rcpt_sealed=NULL WHERE tid=?", a,
                                 NULL, 0);
    sync_full(q, true);
    return s;
}

enum dc_status rl_queue_in_attempt(struct rl_queue *q, const char *tid, unsigned gen,
                                   struct dc_err *err)
{
    const char *a[] = {tid, NULL};
    int64_t i[] = {(int64_t)gen};
    return exec_args(q, err, NULL, "UPDATE inq SET inject_gen=?, inject_pending=1 WHERE tid=?",
                     a, i, 1);
}

enum dc_status rl_queue_in_defer(struct rl_queue *q, const char *tid, int64_t next,
                                 const char *error, bool unknown, struct dc_err *err)
{
    const char *a[] = {error, tid, NULL};
    int64_t i[] = {next, unknown ? 1 : 0};
    return exec_args(q, err, NULL, "UPDATE inq SET next_try=?, inject_pending=?,"
                     " attempts=attempts+1, last_error=? WHERE tid=?", a, i, 2);
}

enum dc_status rl_queue_in_unpend(struct rl_queue *q, unsigned *n, struct dc_err *err)
{
    int ch = 0;
    const char *a[] = {NULL};
    enum dc_status s = exec_args(q, err, &ch, "UPDATE inq SET inject_pending=0 WHERE"
                                 " state='queued' AND inject_pending=1", a, NULL, 0);
    if (n != NULL)
        *n = s == DC_OK ? (unsigned)ch : 0;
    return s;
}

void rl_queue_prune(struct rl_queue *q, int64_t now, unsigned keep)
{
    int64_t i[] = {now - (int64_t)keep};
    const char *a[] = {NULL};
    exec_args(q, NULL, NULL, "DELETE FROM inq WHERE state='done' AND created<?", a, i, 1);
    exec_args(q, NULL, NULL, "DELETE FROM submission WHERE created<?", a, i, 1);
}

/* ---- operator commands ---- */

enum dc_status rl_queue_list(struct rl_queue *q, void (*fn)(void *ctx, const struct rl_q_entry *e),
                             void *ctx, struct dc_err *err)
{
    sqlite3_stmt *st = prep(q, "SELECT id, 'out', state, held, domain, pf_qid, created,"
                               " next_try, attempts, size, last_error FROM outq UNION ALL"
                               " SELECT tid, 'in', state, held, origin, '', created, next_try,"
                               " attempts, size, last_error FROM inq WHERE state!='done'"
                               " ORDER BY 7");
    if (st == NULL)
        return dberr(q, err, "prepare");
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct rl_q_entry e;
        memset(&e, 0, sizeof(e));
        snprintf(e.id, sizeof(e.id), "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(e.dir, sizeof(e.dir), "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(e.state, sizeof(e.state), "%s",
                 sqlite3_column_int(st, 3) ? "held" : (const char *)sqlite3_column_text(st, 2));
        snprintf(e.domain, sizeof(e.domain), "%s", (const char *)sqlite3_column_text(st, 4));
        snprintf(e.pf_qid, sizeof(e.pf_qid), "%s", (const char *)sqlite3_column_text(st, 5));
        e.created = sqlite3_column_int64(st, 6);
        e.next_try = sqlite3_column_int64(st, 7);
        e.attempts = (unsigned)sqlite3_column_int64(st, 8);
        e.size = (size_t)sqlite3_column_int64(st, 9);
        snprintf(e.last_error, sizeof(e.last_error), "%s",
                 (const char *)sqlite3_column_text(st, 10));
        fn(ctx, &e);
    }
    done(q, st);
    return DC_OK;
}

static enum dc_status both(struct rl_queue *q, const char *id, const char *out_sql,
                           const char *in_sql, int *n, struct dc_err *err)
{
    int a = 0, b = 0;
    const char *args[] = {id, NULL};
    enum dc_status s = exec_args(q, err, &a, out_sql, id ? args : NULL, NULL, 0);
    if (s == DC_OK)
        s = exec_args(q, err, &b, in_sql, id ? args : NULL, NULL, 0);
    if (s != DC_OK)
        return s;
    if (n)
        *n = a + b;
    if (id && a + b == 0)
        return dc_fail(err, DC_ERR_NOTFOUND, "%s: no such queued message", id);
    return DC_OK;
}

enum dc_status rl_queue_flush(struct rl_queue *q, const char *id, unsigned *n, struct dc_err *err)
{
    int c = 0;
    enum dc_status s =
        id ? both(q, id, "UPDATE outq SET next_try=0 WHERE id=? AND state!='sending'",
                  "UPDATE inq SET next_try=0 WHERE tid=? AND state='queued'", &c, err)
           : both(q, NULL, "UPDATE outq SET next_try=0 WHERE state!='sending' AND held=0",
                  "UPDATE inq SET next_try=0 WHERE state='queued' AND held=0", &c, err);
    if (n)
        *n = (unsigned)c;
    return s;
}

enum dc_status rl_queue_delete(struct rl_queue *q, const char *id, struct dc_err *err)
{
    return both(q, id, "DELETE FROM outq WHERE id=?",
                "DELETE FROM inq WHERE tid=? AND state='queued'", NULL, err);
}

enum dc_status rl_queue_hold(struct rl_queue *q, const char *id, bool hold, struct dc_err *err)
{
    return hold ? both(q, id, "UPDATE outq SET held=1 WHERE id=?",
                       "UPDATE inq SET held=1 WHERE tid=? AND state='queued'", NULL, err)
                : both(q, id, "UPDATE outq SET held=0, next_try=0 WHERE id=?",
                       "UPDATE inq SET held=0, next_try=0 WHERE tid=? AND state='queued'", NULL,
                       err);
}

enum dc_status rl_queue_depth(struct rl_queue *q, unsigned long n[3], struct dc_err *err)
{
    sqlite3_stmt *st = prep(q, "SELECT (SELECT count(*) FROM outq WHERE held=0),"
                               " (SELECT count(*) FROM inq WHERE state!='done' AND held=0),"
                               " (SELECT count(*) FROM outq WHERE held!=0) +"
                               " (SELECT count(*) FROM inq WHERE state!='done' AND held!=0)");
    if (st == NULL)
        return dberr(q, err, "prepare");
    bool row = sqlite3_step(st) == SQLITE_ROW;
    for (int i = 0; i < 3; i++)
        n[i] = row ? (unsigned long)sqlite3_column_int64(st, i) : 0;
    done(q, st);
    return row ? DC_OK : dberr(q, err, "step");
}

/* ---- moving messages between queues (dime-relayctl queue export / import) ---- */

/* One outbound row of src, addresses unsealed, bytes read (in src's read transaction). */
struct move_out {
    struct rl_q_out m;
    char state[12];
    int64_t next_try;
    bool held;
};

/* Writes one outbound message into dst under a new id, with its state, age, attempts and
 * error kept, in one durable transaction together with the submission key "moved <src-id>",
 * which makes the move of that row idempotent: a second move of the same row (the source's
 * delete was lost) finds the key and stores nothing. */
static enum dc_status move_out_put(struct rl_queue *dst, const struct move_out *o, bool *dup,
                                   struct dc_err *err)
{
    char key[64], sid[17];
    snprintf(key, sizeof(key), "moved %s", o->m.id);
    *dup = false;
    if (begin(dst) != SQLITE_OK)
        return dberr(dst, err, "begin");
    enum dc_status s = DC_OK;
    sqlite3_stmt *st = prep(dst, "SELECT 1 FROM submission WHERE key=?");
    if (st == NULL) {
        s = dberr(dst, err, "prepare");
        goto rollback;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    *dup = sqlite3_step(st) == SQLITE_ROW;
    done(dst, st);
    if (*dup) {
        run(dst, "ROLLBACK");
        return DC_OK;
    }
    rl_random_id(sid, 8);
    char id[24];
    snprintf(id, sizeof(id), "%s.1", sid);
    uint8_t srcpt[RL_SEAL_OVERHEAD + 256], ssender[RL_SEAL_OVERHEAD + 256];
    size_t rl, sl;
    if (!seal_addr(dst, L_ORCPT, id, o->m.recipient, srcpt, &rl) ||
        !seal_addr(dst, L_SENDER, id, o->m.sender, ssender, &sl)) {
        s = dc_fail(err, DC_ERR_ARG, "address too long");
        goto rollback;
    }
    int64_t ints[] = {rl_now()};
    const char *kargs[] = {key, sid, NULL};
    s = exec_args(dst, err, NULL, "INSERT INTO submission(created, key, sid, count) VALUES(?,?,?,1)",
                  kargs, ints, 1);
    if (s != DC_OK)
        goto rollback;
    st = prep(dst, "INSERT INTO outq(id, pf_qid, sender_sealed, rcpt_sealed, domain, origin,"
                   " created, next_try, attempts, state, held, last_error, size)"
                   " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)");
    sqlite3_stmt *sd = prep(dst, "INSERT INTO outq_data(id, data) VALUES(?,?)");
    if (st == NULL || sd == NULL) {
        s = dberr(dst, err, "prepare");
        if (st != NULL)
            done(dst, st);
        goto rollback;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, o->m.pf_qid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 3, ssender, (int)sl, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 4, srcpt, (int)rl, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, o->m.domain, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, o->m.origin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 7, o->m.created);
    sqlite3_bind_int64(st, 8, o->next_try);
    sqlite3_bind_int64(st, 9, o->m.attempts);
    sqlite3_bind_text(st, 10, o->state, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 11, o->held ? 1 : 0);
    sqlite3_bind_text(st, 12, o->m.last_error, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 13, (int64_t)o->m.len);
    sqlite3_bind_text(sd, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob64(sd, 2, o->m.data, o->m.len, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE || sqlite3_step(sd) != SQLITE_DONE)
        s = dberr(dst, err, "insert message");
    done(dst, st);
    done(dst, sd);
    return commit_or_rollback(dst, s, err);
rollback:
    run(dst, "ROLLBACK");
    return s;
}

/* The next outbound row of src after id *after (rowid order), not being sent. */
static enum dc_status move_out_next(struct rl_queue *src, int64_t *after, struct move_out *o,
                                    bool *found, struct dc_err *err)
{
    memset(o, 0, sizeof(*o));
    *found = false;
    sqlite3_stmt *st = prep(src, "SELECT o.id, pf_qid, domain, origin, created, attempts,"
                                 " last_error, rcpt_sealed, sender_sealed, state, next_try,"
                                 " held, d.rowid, o.rowid FROM outq o LEFT JOIN outq_data d"
                                 " ON d.id=o.id WHERE o.rowid>? AND state!='sending'"
                                 " ORDER BY o.rowid LIMIT 1");
    if (st == NULL)
        return dberr(src, err, "prepare");
    sqlite3_bind_int64(st, 1, *after);
    enum dc_status s = DC_OK;
    if (sqlite3_step(st) == SQLITE_ROW) {
        row_out(st, &o->m);
        *after = sqlite3_column_int64(st, 13);
        snprintf(o->state, sizeof(o->state), "%s", (const char *)sqlite3_column_text(st, 9));
        o->next_try = sqlite3_column_int64(st, 10);
        o->held = sqlite3_column_int(st, 11) != 0;
        if (!unseal_addr(src, L_ORCPT, o->m.id, st, 7, o->m.recipient) ||
            !unseal_addr(src, L_SENDER, o->m.id, st, 8, o->m.sender))
            s = dc_fail(err, DC_ERR_CRYPTO, "%s: an address does not unseal (wrong key file?)",
                        o->m.id);
        else if (!read_data(src, "outq_data", st, 12, &o->m.data, &o->m.len))
            s = dberr(src, err, "read message");
        else
            *found = true;
    }
    done(src, st);
    if (s != DC_OK)
        rl_q_out_free(&o->m);
    return s;
}

enum dc_status rl_queue_move(struct rl_queue *src, struct rl_queue *dst, struct rl_q_moved *n,
                             struct dc_err *err)
{
    memset(n, 0, sizeof(*n));
    enum dc_status s = DC_OK;
    int64_t after = 0;
    for (;;) {
        struct move_out o;
        bool found, dup;
        s = move_out_next(src, &after, &o, &found, err);
        if (s != DC_OK || !found)
            break;
        s = move_out_put(dst, &o, &dup, err);
        if (s == DC_OK) {
            const char *a[] = {o.m.id, NULL};
            s = exec_args(src, err, NULL, "DELETE FROM outq WHERE id=?", a, NULL, 0);
        }
        rl_q_out_free(&o.m);
        if (s != DC_OK)
            break;
        n->out += !dup;
        n->dup += dup;
    }
    /* inbound: the bytes' digest makes rl_queue_in_add idempotent already */
    char last[24] = "";
    while (s == DC_OK) {
        sqlite3_stmt *st = prep(src, "SELECT tid FROM inq WHERE state='queued' AND tid>?"
                                     " ORDER BY tid LIMIT 1");
        if (st == NULL) {
            s = dberr(src, err, "prepare");
            break;
        }
        sqlite3_bind_text(st, 1, last, -1, SQLITE_TRANSIENT);
        bool more = sqlite3_step(st) == SQLITE_ROW;
        if (more)
            snprintf(last, sizeof(last), "%s", (const char *)sqlite3_column_text(st, 0));
        done(src, st);
        if (!more)
            break;
        struct rl_q_in m;
        memset(&m, 0, sizeof(m));
        st = prep(src, "SELECT rcpt_sealed, origin, d.rowid FROM inq i LEFT JOIN inq_data d"
                       " ON d.tid=i.tid WHERE i.tid=?");
        if (st == NULL) {
            s = dberr(src, err, "prepare");
            break;
        }
        sqlite3_bind_text(st, 1, last, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_ROW)
            s = dberr(src, err, "read inbound message");
        else if (!unseal_addr(src, L_IRCPT, last, st, 0, m.recipient))
            s = dc_fail(err, DC_ERR_CRYPTO, "%s: the recipient does not unseal (wrong key file?)",
                        last);
        else {
            snprintf(m.origin, sizeof(m.origin), "%s", (const char *)sqlite3_column_text(st, 1));
            if (!read_data(src, "inq_data", st, 2, &m.data, &m.len))
                s = dberr(src, err, "read message");
        }
        done(src, st);
        bool dup = false;
        char tid[24];
        if (s == DC_OK)
            s = rl_queue_in_add(dst, m.data, m.len, m.recipient, m.origin, tid, &dup, err);
        if (s == DC_OK) {
            const char *a[] = {last, NULL};
            s = exec_args(src, err, NULL, "DELETE FROM inq WHERE tid=? AND state='queued'", a,
                          NULL, 0);
        }
        rl_q_in_free(&m);
        n->in += s == DC_OK && !dup;
        n->dup += s == DC_OK && dup;
    }
    if (s == DC_OK) {
        sqlite3_stmt *st = prep(src, "SELECT count(*) FROM outq WHERE state='sending'");
        if (st != NULL && sqlite3_step(st) == SQLITE_ROW)
            n->sending = (unsigned)sqlite3_column_int64(st, 0);
        if (st != NULL)
            done(src, st);
    }
    return s;
}
