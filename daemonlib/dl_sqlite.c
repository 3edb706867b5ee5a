/*
 * dl_sqlite - see dl_sqlite.h.
 */
#include "dl_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int dl_sqlite_exec_retry(sqlite3 *db, const char *sql, int ms, char **msg)
{
    for (int tries = 1;; tries++) {
        sqlite3_free(*msg);
        *msg = NULL;
        int rc = sqlite3_exec(db, sql, NULL, NULL, msg);
        if (((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) || tries >= ms)
            return rc;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* A new file has no pages yet: only then may auto_vacuum still be chosen (and setting it on
 * an existing one would rewrite the header, a commit, on every open). */
static bool pointer_map(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA page_count", -1, &st, NULL) != SQLITE_OK)
        return false;
    bool empty = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) == 0;
    sqlite3_finalize(st);
    return !empty ||
           sqlite3_exec(db, "PRAGMA auto_vacuum=INCREMENTAL", NULL, NULL, NULL) == SQLITE_OK;
}

enum dc_status dl_sqlite_open(const char *path, const struct dl_sqlite_opts *o, sqlite3 **out,
                              struct dc_err *err)
{
    sqlite3 *db = NULL;
    *out = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | o->flags,
                        NULL) != SQLITE_OK) {
        enum dc_status s = dc_fail(err, DC_ERR_IO, "%s %s: %s", o->what, path,
                                   db ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        return s;
    }
    if (o->mode != 0)
        chmod(path, o->mode);
    if (o->busy != NULL)
        sqlite3_busy_handler(db, o->busy, NULL);
    else
        sqlite3_busy_timeout(db, o->busy_ms);
    if (o->pointer_map && !pointer_map(db)) {
        enum dc_status s = dc_fail(err, DC_ERR_IO, "%s %s: pointer map: %s", o->what, path,
                                   sqlite3_errmsg(db));
        sqlite3_close(db);
        return s;
    }
    char sync[64];
    snprintf(sync, sizeof(sync), "PRAGMA synchronous=%s", o->synchronous);
    const char *const setup[] = {"PRAGMA journal_mode=WAL", sync,
                                 o->foreign_keys ? "PRAGMA foreign_keys=ON" : NULL};
    static const char *const name[] = {"WAL mode", "synchronous", "foreign keys"};
    for (size_t i = 0; i < sizeof(setup) / sizeof(setup[0]); i++) {
        char *msg = NULL;
        int rc = setup[i] == NULL ? SQLITE_OK : dl_sqlite_exec_retry(db, setup[i], o->busy_ms,
                                                                      &msg);
        if (rc != SQLITE_OK) {
            enum dc_status s = dc_fail(err, DC_ERR_IO, "%s %s: %s: %s", o->what, path, name[i],
                                       msg ? msg : sqlite3_errstr(rc));
            sqlite3_free(msg);
            sqlite3_close(db);
            return s;
        }
    }
    *out = db;
    return DC_OK;
}

/* ---- schema versions ---- */

static enum dc_status exec_or_fail(sqlite3 *db, const char *sql, struct dc_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        enum dc_status st = dc_fail(err, DC_ERR_IO, "database: %s", msg ? msg : "error");
        sqlite3_free(msg);
        return st;
    }
    return DC_OK;
}

static enum dc_status read_version(sqlite3 *db, int *v, struct dc_err *err)
{
    sqlite3_stmt *st;
    *v = 0;
    if (sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &st, NULL) !=
        SQLITE_OK)
        return DC_OK; /* no table: a new, empty database */
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return dc_fail(err, DC_ERR_IO, "database: reading the schema version: %s",
                       sqlite3_errmsg(db));
    return DC_OK;
}

enum dc_status dl_sqlite_migrate(sqlite3 *db, const char *const *migrations, int n,
                                 int *version, struct dc_err *err)
{
    for (;;) {
        int v;
        enum dc_status st = exec_or_fail(db, "BEGIN IMMEDIATE", err);
        if (st == DC_OK)
            st = read_version(db, &v, err);
        if (st == DC_OK && v > n)
            st = dc_fail(err, DC_ERR_FORMAT, "database schema version %d is newer than this "
                         "program's (%d)", v, n);
        if (st == DC_OK && v == n) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            *version = v;
            return DC_OK;
        }
        if (st == DC_OK && v == 0)
            st = exec_or_fail(db, "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                                  "INSERT INTO schema_version VALUES (0);", err);
        if (st == DC_OK)
            st = exec_or_fail(db, migrations[v + 1], err);
        if (st == DC_OK) {
            char *sql = sqlite3_mprintf("UPDATE schema_version SET version = %d", v + 1);
            st = exec_or_fail(db, sql, err);
            sqlite3_free(sql);
        }
        if (st == DC_OK)
            st = exec_or_fail(db, "COMMIT", err);
        if (st != DC_OK) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return st;
        }
    }
}

/* ---- the pool; p->mu held ---- */

static bool invited(const struct dl_pool *p, const char *key)
{
    if (!p->invited)
        return true;
    for (unsigned i = 0; i < DL_POOL_KEYS; i++)
        if (p->keys[i] != NULL && strcmp(p->keys[i], key) == 0)
            return true;
    return false;
}

static unsigned idle_of(const struct dl_pool *p, const char *key)
{
    unsigned n = 0;
    for (unsigned i = 0; i < p->n; i++)
        n += strcmp(p->idle[i].key, key) == 0;
    return n;
}

/* Moves the idle connections of key (all when NULL) to out; returns how many. */
static unsigned take_all(struct dl_pool *p, const char *key, void *out[DL_POOL_IDLE])
{
    unsigned n = 0;
    for (unsigned i = p->n; i-- > 0;)
        if (key == NULL || strcmp(p->idle[i].key, key) == 0) {
            out[n++] = p->idle[i].conn;
            p->idle[i] = p->idle[--p->n];
        }
    return n;
}

void *dl_pool_take(struct dl_pool *p, const char *key)
{
    void *conn = NULL;
    pthread_mutex_lock(&p->mu);
    for (unsigned i = p->n; i-- > 0;)
        if (strcmp(p->idle[i].key, key) == 0) {
            conn = p->idle[i].conn;
            p->idle[i] = p->idle[--p->n];
            break;
        }
    pthread_mutex_unlock(&p->mu);
    return conn;
}

bool dl_pool_give(struct dl_pool *p, const char *key, void *conn)
{
    bool kept = false;
    pthread_mutex_lock(&p->mu);
    if (p->n < p->max && p->n < DL_POOL_IDLE && invited(p, key) &&
        idle_of(p, key) < p->per_key) {
        p->idle[p->n].key = key;
        p->idle[p->n++].conn = conn;
        kept = true;
    }
    pthread_mutex_unlock(&p->mu);
    return kept;
}

void dl_pool_keep(struct dl_pool *p, const char *key, bool keep, void (*close)(void *conn))
{
    void *drop[DL_POOL_IDLE];
    unsigned nd = 0;
    pthread_mutex_lock(&p->mu);
    unsigned i = 0;
    while (i < DL_POOL_KEYS && (p->keys[i] == NULL || strcmp(p->keys[i], key) != 0))
        i++;
    if (keep && i == DL_POOL_KEYS) {
        for (i = 0; i < DL_POOL_KEYS && p->keys[i] != NULL; i++)
            ;
        if (i < DL_POOL_KEYS)
            p->keys[i] = dc_xstrdup(key);
    } else if (!keep && i < DL_POOL_KEYS) {
        nd = take_all(p, key, drop);
        free(p->keys[i]);
        p->keys[i] = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    for (unsigned k = 0; k < nd; k++)
        close(drop[k]);
}

void dl_pool_drain(struct dl_pool *p, void (*close)(void *conn))
{
    void *drop[DL_POOL_IDLE];
    pthread_mutex_lock(&p->mu);
    unsigned nd = take_all(p, NULL, drop);
    pthread_mutex_unlock(&p->mu);
    for (unsigned k = 0; k < nd; k++)
        close(drop[k]);
}
