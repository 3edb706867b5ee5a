/*
 * dl_sqlite - opening a daemon's SQLite database, and keeping idle connections for reuse.
 *
 * dl_sqlite_open opens (creating) a database the way every daemon here wants one: the file's
 * mode set, a busy timeout or handler, WAL, a synchronous level and, when asked, foreign keys
 * and a pointer map for a new file. The pragmas are tried again every millisecond for as long
 * as the busy timeout while the database is locked: switching a new file to WAL takes an
 * exclusive lock without calling the busy handler, so two processes or threads creating the
 * same database at once would otherwise see "database is locked".
 *
 * A dl_pool keeps the idle connections of one kind of store (the relay's queue, its signet
 * cache), each with what was set up for it (keys, prepared statements), so that the next open
 * of the same database takes one instead of opening anew. The pool knows connections only as
 * pointers and a key string naming their database; closing is left to the owner.
 */
#ifndef DL_SQLITE_H
#define DL_SQLITE_H

#include "dc_util.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>

struct dl_sqlite_opts {
    const char *what;        /* names the database in errors ("queue database") */
    int flags;               /* added to SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE */
    unsigned mode;           /* the file's mode (chmod), 0 to leave it */
    int busy_ms;             /* busy timeout, and how long the pragmas are tried */
    int (*busy)(void *, int); /* a busy handler instead of the timeout, or NULL */
    const char *synchronous; /* "FULL", "NORMAL", ... */
    bool foreign_keys;
    bool pointer_map;        /* a new (empty) file gets auto_vacuum=INCREMENTAL */
};

/* Opens path as o says into *out; on an error nothing stays open. */
enum dc_status dl_sqlite_open(const char *path, const struct dl_sqlite_opts *o, sqlite3 **out,
                              struct dc_err *err);

/* sqlite3_exec, tried again every millisecond for up to ms while the database is busy or
 * locked. *msg as sqlite3_exec's (free with sqlite3_free). */
int dl_sqlite_exec_retry(sqlite3 *db, const char *sql, int ms, char **msg);

/* The schema of a database in its table schema_version (one row: version), the SQLite
 * counterpart of dl_pg_migrate: migrations[i] (i = 1..n, [0] unused) takes version i-1 to i,
 * each in its own write transaction (BEGIN IMMEDIATE) with the version bump, so that of two
 * processes opening a new file at once one migrates and the other finds it done. A version
 * above n is refused (DC_ERR_FORMAT). *version gets the version reached. */
enum dc_status dl_sqlite_migrate(sqlite3 *db, const char *const *migrations, int n,
                                 int *version, struct dc_err *err);

#define DL_POOL_IDLE 64
#define DL_POOL_KEYS 4

struct dl_pool {
    pthread_mutex_t mu;
    unsigned max;     /* idle connections kept in all (at most DL_POOL_IDLE) */
    unsigned per_key; /* ... and of one key */
    bool invited;     /* kept only for the keys given to dl_pool_keep */
    unsigned n;
    struct {
        const char *key; /* the connection's own copy */
        void *conn;
    } idle[DL_POOL_IDLE];
    char *keys[DL_POOL_KEYS]; /* with invited */
};
#define DL_POOL_INIT(max_, per_key_, invited_)                                                \
    {.mu = PTHREAD_MUTEX_INITIALIZER, .max = (max_), .per_key = (per_key_),                  \
     .invited = (invited_)}

/* An idle connection of key, taken out of the pool; NULL when there is none. */
void *dl_pool_take(struct dl_pool *p, const char *key);
/* Keeps conn (key must live as long as conn) when the pool has room for it; false when not:
 * the caller closes it then. */
bool dl_pool_give(struct dl_pool *p, const char *key, void *conn);
/* For an invited pool: starts or stops keeping the connections of key (a copy is kept);
 * stopping hands its idle ones to close. Starting when DL_POOL_KEYS keys are kept does
 * nothing: those connections are closed as they come back. */
void dl_pool_keep(struct dl_pool *p, const char *key, bool keep, void (*close)(void *conn));
/* Hands every idle connection to close. */
void dl_pool_drain(struct dl_pool *p, void (*close)(void *conn));

#endif
