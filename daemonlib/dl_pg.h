/*
 * dl_pg - a daemon's connection to PostgreSQL (libpq), for state that several gateway nodes
 * of one domain share: the keyvault store today (keyvault/kv_store_pg.c), later the relay's
 * signet cache, pins and inbound dedup records.
 *
 * One struct dl_pg is one connection, used by one thread at a time. The connection string
 * comes from the configuration and is never logged (it may hold a password; a passfile= is
 * the better place for one); log lines name the database by what, dbname, user and host.
 *
 * Outages are temporary failures, never fatal: a statement that fails because the server is
 * gone, shutting down or restarting, a serialization failure that persisted, a standby that
 * refuses writes or a statement that took longer than the timeout returns DC_ERR_IO, which
 * callers answer as a tempfail (4xx, the keyvault's `internal`). The connection is then
 * dropped; the next call connects again (while the server stays away at most once a second,
 * or after twice the time the last attempt took when it waited for a host that did not answer;
 * calls in between fail at once). The change from up to down and back is logged once each:
 *
 *   keyvault store: PostgreSQL unavailable: <libpq's reason>; requests fail temporarily
 *   keyvault store: PostgreSQL connected database=dime user=dime host=/run/postgresql
 *
 * Other error codes: DC_ERR_ARG for a unique violation (SQLSTATE 23505), DC_ERR_FIELD for
 * another integrity violation (23xxx). dl_pg_sqlstate has the last SQLSTATE.
 *
 * Statements are sent with parameters apart from the text (dl_pg_args: text, integers, and
 * binary-safe bytes for BYTEA), prepared once per connection, and their rows come back in
 * binary form (read them with dl_pg_int, dl_pg_bytes, dl_pg_text). Every statement waits at
 * most timeout_ms.
 */
#ifndef DL_PG_H
#define DL_PG_H

#include "dc_util.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dl_pg_opts {
    const char *what;     /* names the store in errors and log lines ("keyvault store") */
    const char *conninfo; /* libpq keyword=value string or postgresql:// URI; never logged */
    int timeout_ms;       /* each connect and each statement; 0: DL_PG_TIMEOUT_MS */
    int retries;          /* times a transaction is run again after a serialization
                           * failure; 0: DL_PG_RETRIES */
};
#define DL_PG_TIMEOUT_MS 5000
#define DL_PG_RETRIES 5

struct dl_pg;

/* Whether conninfo is a connection string libpq can read; the error does not repeat any of
 * it (libpq's own message may quote a piece, which may be part of a password). */
enum dc_status dl_pg_conninfo_check(const char *conninfo, struct dc_err *err);
/* Connects (an error when the server cannot be reached: a daemon checks its store at start).
 * The conninfo is copied. */
enum dc_status dl_pg_open(const struct dl_pg_opts *o, struct dl_pg **out, struct dc_err *err);
void dl_pg_close(struct dl_pg *pg);
/* The SQLSTATE of the last failed statement ("" when none; "08006" for a lost connection). */
const char *dl_pg_sqlstate(const struct dl_pg *pg);

#define DL_PG_MAXARGS 16

/* The parameters $1..$n of a statement. NULL bytes or text is SQL NULL. */
struct dl_pg_args {
    int n;
    const char *val[DL_PG_MAXARGS];
    int len[DL_PG_MAXARGS];
    int fmt[DL_PG_MAXARGS];
    char num[DL_PG_MAXARGS][24];
};
void dl_pg_arg_text(struct dl_pg_args *a, const char *s);
void dl_pg_arg_bytes(struct dl_pg_args *a, const void *p, size_t n);
void dl_pg_arg_int(struct dl_pg_args *a, int64_t v);

/* Runs one statement. sql must stay valid while pg is open (a literal): it is prepared the
 * first time and kept per connection. *res, when res is not NULL, gets the result (PQclear
 * it); only on DC_OK. Outside a transaction, a statement is sent once more on a new connection
 * when the server turns out to be gone at the time it is sent: only a statement that may run
 * twice (a read, an upsert of the same value) should be run outside dl_pg_txn. */
enum dc_status dl_pg_exec(struct dl_pg *pg, const char *sql, const struct dl_pg_args *a,
                          PGresult **res, struct dc_err *err);
/* The same for a statement without parameters and result, not prepared (DDL, SET). */
enum dc_status dl_pg_run(struct dl_pg *pg, const char *sql, struct dc_err *err);

/* Rows of a result, and its cells: NULL, integers (int2, int4, int8), bytes (malloc'd, with a
 * NUL after them; NULL for SQL NULL), text cut to max bytes. */
int dl_pg_rows(const PGresult *r);
bool dl_pg_null(const PGresult *r, int row, int col);
int64_t dl_pg_int(const PGresult *r, int row, int col);
uint8_t *dl_pg_bytes(const PGresult *r, int row, int col, size_t *len);
void dl_pg_text(const PGresult *r, int row, int col, char *out, size_t max);
/* Rows an INSERT, UPDATE or DELETE changed. */
long dl_pg_changed(const PGresult *r);

/* One transaction at SERIALIZABLE: BEGIN, fn, COMMIT. When fn or the COMMIT fails on a
 * serialization failure or a deadlock, everything is rolled back and fn runs again, at most
 * `retries` times (then DC_ERR_IO); when the connection is found gone before the COMMIT was
 * sent, once more on a new connection. So fn must have no effect outside the database until
 * the transaction returns DC_OK. Any other failure of fn rolls back and returns fn's status.
 * A connection lost during the COMMIT returns DC_ERR_IO saying the outcome is unknown. */
typedef enum dc_status (*dl_pg_txn_fn)(struct dl_pg *pg, void *ctx, struct dc_err *err);
enum dc_status dl_pg_txn(struct dl_pg *pg, dl_pg_txn_fn fn, void *ctx, struct dc_err *err);

/* Notifications (LISTEN/NOTIFY) on channel, for a cache that must forget what another
 * connection changed: LISTEN is made now and again first thing on every new connection.
 * fn(ctx, payload) runs for each notification, from dl_pg_heard and at the start of
 * dl_pg_exec and dl_pg_txn (never while a statement's result is pending, so a row read just
 * before its change was committed is forgotten by the next call), and fn(ctx, NULL) whenever
 * notifications may have been missed: the connection was lost, or is new. Once per dl_pg. */
typedef void (*dl_pg_notify_fn)(void *ctx, const char *payload);
enum dc_status dl_pg_listen(struct dl_pg *pg, const char *channel, dl_pg_notify_fn fn,
                            void *ctx, struct dc_err *err);
/* Delivers the notifications that have arrived, without waiting (a poll of the socket), and
 * finds a connection the server closed. false: no connection now (fn got NULL). */
bool dl_pg_heard(struct dl_pg *pg);

/* The schema of one component (e.g. "keyvault") in the table schema_version (component,
 * version), shared by every component in the database: migrations[i] (i = 1..n, [0] unused)
 * takes version i-1 to i, each in its own transaction together with the version bump, under
 * a lock so that nodes starting at once apply each one once. A version above n is refused
 * (DC_ERR_FORMAT: another node runs a newer program). *version gets the version reached. */
enum dc_status dl_pg_migrate(struct dl_pg *pg, const char *component,
                             const char *const *migrations, int n, int *version,
                             struct dc_err *err);

#endif
