/*
 * pgcheck - checks of daemonlib's dl_pg against a real PostgreSQL server (the one
 * test_keyvault_pg.sh starts): binary-safe parameters and results, the error codes of
 * integrity violations, versioned migrations and the refusal of a newer schema, transactions
 * run again after a serialization failure (and given up after `retries`), a connection the
 * server dropped replaced before and inside a transaction, the statement timeout, and
 * notifications (dl_pg_listen): delivered by dl_pg_heard, "missed" (NULL) when the connection
 * is lost or made again, and heard again on the new connection.
 *
 * usage: pgcheck CONNINFO. Prints "ok DESCRIPTION" or "not ok DESCRIPTION" per check and
 * "ok done" at the end; exit status 0 when every check passed.
 */
#include "dl_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures;

static void check(bool cond, const char *desc, const struct dc_err *err)
{
    if (cond) {
        printf("ok %s\n", desc);
    } else {
        printf("not ok %s\n", desc);
        if (err != NULL && err->msg[0] != '\0')
            printf("#   %s\n", err->msg);
        failures++;
    }
}

static struct dl_pg *open_pg(const char *conninfo, int timeout_ms)
{
    struct dl_pg_opts o = {.what = "pgcheck", .conninfo = conninfo, .timeout_ms = timeout_ms};
    struct dl_pg *pg = NULL;
    struct dc_err err = {0};
    if (dl_pg_open(&o, &pg, &err) != DC_OK) {
        printf("not ok connect: %s\n", err.msg);
        exit(1);
    }
    return pg;
}

static void bytes_and_ints(struct dl_pg *pg)
{
    struct dc_err err = {0};
    uint8_t in[256];
    for (int i = 0; i < 256; i++)
        in[i] = (uint8_t)(255 - i); /* NUL bytes, 0xff, everything between */
    struct dl_pg_args a = {0};
    dl_pg_arg_bytes(&a, in, sizeof(in));
    dl_pg_arg_bytes(&a, NULL, 0);
    dl_pg_arg_int(&a, -5);
    dl_pg_arg_int(&a, -7000000000LL);
    dl_pg_arg_text(&a, "it's \"quoted\"; DROP TABLE x");
    PGresult *r = NULL;
    enum dc_status s = dl_pg_exec(pg, "SELECT $1::bytea, $2::bytea, $3::int2, $3::int4, "
                                  "$4::int8, $5::text", &a, &r, &err);
    size_t len = 0;
    uint8_t *b = s == DC_OK ? dl_pg_bytes(r, 0, 0, &len) : NULL;
    char t[64] = "";
    if (s == DC_OK)
        dl_pg_text(r, 0, 5, t, sizeof(t) - 1);
    check(s == DC_OK && len == sizeof(in) && memcmp(b, in, len) == 0 && dl_pg_null(r, 0, 1) &&
              dl_pg_int(r, 0, 2) == -5 && dl_pg_int(r, 0, 3) == -5 &&
              dl_pg_int(r, 0, 4) == -7000000000LL && strcmp(t, a.val[4]) == 0,
          "bytes with NULs, SQL NULL, int2/int4/int8 and text round-trip as parameters", &err);
    free(b);
    PQclear(r);
}

static void violations(struct dl_pg *pg)
{
    struct dc_err err = {0};
    dl_pg_run(pg, "DROP TABLE IF EXISTS pgc_u; CREATE TABLE pgc_u (k TEXT PRIMARY KEY, "
                  "n INTEGER CHECK (n > 0))", &err);
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, "one");
    dl_pg_arg_int(&a, 1);
    const char *ins = "INSERT INTO pgc_u (k, n) VALUES ($1, $2)";
    enum dc_status s1 = dl_pg_exec(pg, ins, &a, NULL, &err);
    enum dc_status s2 = dl_pg_exec(pg, ins, &a, NULL, &err);
    check(s1 == DC_OK && s2 == DC_ERR_ARG && strcmp(dl_pg_sqlstate(pg), "23505") == 0,
          "a unique violation is DC_ERR_ARG (23505)", &err);
    struct dl_pg_args b = {0};
    dl_pg_arg_text(&b, "two");
    dl_pg_arg_int(&b, -1);
    check(dl_pg_exec(pg, ins, &b, NULL, &err) == DC_ERR_FIELD,
          "a check violation is DC_ERR_FIELD", &err);
    memset(&err, 0, sizeof(err));
    check(dl_pg_exec(pg, "SELECT no_such_column FROM pgc_u", NULL, NULL, &err) == DC_ERR_IO &&
              strstr(err.msg, "42703") != NULL,
          "another error is DC_ERR_IO with its SQLSTATE", &err);
}

static void migrations(struct dl_pg *pg)
{
    static const char *const steps[] = {
        NULL,
        "CREATE TABLE pgc_m (a INTEGER)",
        "ALTER TABLE pgc_m ADD COLUMN b INTEGER; INSERT INTO pgc_m VALUES (1, 2)",
    };
    struct dc_err err = {0};
    int v = -1;
    dl_pg_run(pg, "DROP TABLE IF EXISTS pgc_m", &err);
    enum dc_status s = dl_pg_migrate(pg, "pgcheck", steps, 1, &v, &err);
    check(s == DC_OK && v == 1, "migrate an empty database to version 1", &err);
    s = dl_pg_migrate(pg, "pgcheck", steps, 2, &v, &err);
    check(s == DC_OK && v == 2, "then to version 2 (a later release)", &err);
    s = dl_pg_migrate(pg, "pgcheck", steps, 2, &v, &err);
    PGresult *r = NULL;
    dl_pg_exec(pg, "SELECT count(*) FROM pgc_m", NULL, &r, &err);
    check(s == DC_OK && v == 2 && r != NULL && dl_pg_int(r, 0, 0) == 1,
          "opening again applies nothing twice", &err);
    PQclear(r);
    memset(&err, 0, sizeof(err));
    s = dl_pg_migrate(pg, "pgcheck", steps, 1, &v, &err);
    check(s == DC_ERR_FORMAT && strstr(err.msg, "newer than this program's (1)") != NULL,
          "an older program refuses the newer schema, saying so", &err);
    if (s != DC_OK)
        printf("#   %s\n", err.msg);
    /* a failing step leaves the version where it was */
    static const char *const bad[] = {NULL, steps[1], steps[2], "CREATE TABLE pgc_m (a int)"};
    s = dl_pg_migrate(pg, "pgcheck", bad, 3, &v, &err);
    r = NULL;
    dl_pg_exec(pg, "SELECT version FROM schema_version WHERE component = 'pgcheck'", NULL, &r,
               &err);
    check(s != DC_OK && r != NULL && dl_pg_int(r, 0, 0) == 2,
          "a failing migration changes nothing", &err);
    PQclear(r);
}

/* A transaction that reads a counter and writes it plus one; before its write, on its first
 * `interfere` attempts, the other connection changes the counter (another node). */
struct counter {
    struct dl_pg *other;
    int attempts;
    int interfere;
};

static enum dc_status bump(struct dl_pg *pg, void *ctx, struct dc_err *err)
{
    struct counter *c = ctx;
    PGresult *r = NULL;
    enum dc_status s = dl_pg_exec(pg, "SELECT n FROM pgc_c WHERE id = 1", NULL, &r, err);
    if (s != DC_OK)
        return s;
    int64_t n = dl_pg_int(r, 0, 0);
    PQclear(r);
    if (c->attempts++ < c->interfere &&
        (s = dl_pg_run(c->other, "UPDATE pgc_c SET n = n + 100 WHERE id = 1", err)) != DC_OK)
        return s;
    struct dl_pg_args a = {0};
    dl_pg_arg_int(&a, n + 1);
    return dl_pg_exec(pg, "UPDATE pgc_c SET n = $1 WHERE id = 1", &a, NULL, err);
}

static int64_t counter_value(struct dl_pg *pg)
{
    struct dc_err err = {0};
    PGresult *r = NULL;
    if (dl_pg_exec(pg, "SELECT n FROM pgc_c WHERE id = 1", NULL, &r, &err) != DC_OK)
        return -1;
    int64_t n = dl_pg_int(r, 0, 0);
    PQclear(r);
    return n;
}

static void serialization(struct dl_pg *pg, struct dl_pg *other)
{
    struct dc_err err = {0};
    dl_pg_run(pg, "DROP TABLE IF EXISTS pgc_c; CREATE TABLE pgc_c (id INTEGER PRIMARY KEY, "
                  "n BIGINT); INSERT INTO pgc_c VALUES (1, 0)", &err);
    struct counter c = {.other = other, .interfere = 1};
    enum dc_status s = dl_pg_txn(pg, bump, &c, &err);
    check(s == DC_OK && c.attempts == 2 && counter_value(pg) == 101,
          "a serialization failure runs the transaction again, no update lost", &err);
    c.attempts = 0;
    c.interfere = 100;
    memset(&err, 0, sizeof(err));
    s = dl_pg_txn(pg, bump, &c, &err);
    check(s == DC_ERR_IO && c.attempts == DL_PG_RETRIES + 1 &&
              strstr(err.msg, "serialization failures") != NULL,
          "a conflict that persists is given up after the retries: a temporary error", &err);
    check(counter_value(pg) == 101 + 100 * (DL_PG_RETRIES + 1),
          "and none of its attempts was applied", NULL);
}

static int backend_pid(struct dl_pg *pg)
{
    struct dc_err err = {0};
    PGresult *r = NULL;
    if (dl_pg_exec(pg, "SELECT pg_backend_pid()", NULL, &r, &err) != DC_OK)
        return -1;
    int pid = (int)dl_pg_int(r, 0, 0);
    PQclear(r);
    return pid;
}

static void terminate(struct dl_pg *other, int pid)
{
    struct dc_err err = {0};
    struct dl_pg_args a = {0};
    dl_pg_arg_int(&a, pid);
    dl_pg_exec(other, "SELECT pg_terminate_backend($1::int)", &a, NULL, &err);
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, NULL); /* the server closes it */
}

struct dropper {
    struct dl_pg *other;
    int attempts;
};

static enum dc_status dropped_once(struct dl_pg *pg, void *ctx, struct dc_err *err)
{
    struct dropper *d = ctx;
    if (d->attempts++ == 0)
        terminate(d->other, backend_pid(pg));
    return dl_pg_exec(pg, "UPDATE pgc_c SET n = n + 1 WHERE id = 1", NULL, NULL, err);
}

static void reconnects(struct dl_pg *pg, struct dl_pg *other)
{
    struct dc_err err = {0};
    int before = backend_pid(pg);
    terminate(other, before);
    int after = backend_pid(pg);
    check(before > 0 && after > 0 && after != before,
          "a connection the server dropped is replaced before the next statement", &err);
    int64_t n = counter_value(pg);
    struct dropper d = {.other = other};
    enum dc_status s = dl_pg_txn(pg, dropped_once, &d, &err);
    check(s == DC_OK && d.attempts == 2 && counter_value(pg) == n + 1,
          "a transaction whose connection is lost before COMMIT runs once more, applied once",
          &err);
}

static void timeout(const char *conninfo)
{
    struct dl_pg *pg = open_pg(conninfo, 1000);
    struct dc_err err = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    enum dc_status s = dl_pg_exec(pg, "SELECT pg_sleep(4)", NULL, NULL, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    check(s == DC_ERR_IO && took < 3.0 && strstr(err.msg, "no answer within 1000 ms") != NULL,
          "a statement without an answer within the timeout is a temporary error", &err);
    check(backend_pid(pg) > 0, "and the next statement runs on a new connection", NULL);
    dl_pg_close(pg);
}

struct heard {
    int missed;    /* calls with NULL */
    char last[64]; /* the last payload */
    int n;
};

static void on_notify(void *ctx, const char *payload)
{
    struct heard *h = ctx;
    if (payload == NULL) {
        h->missed++;
    } else {
        snprintf(h->last, sizeof(h->last), "%s", payload);
        h->n++;
    }
}

/* NOTIFY pgc_chan with payload through other; true when l heard it within 2 s. */
static bool notified(struct dl_pg *l, struct dl_pg *other, struct heard *h, const char *payload)
{
    struct dc_err err = {0};
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, payload);
    if (dl_pg_exec(other, "SELECT pg_notify('pgc_chan', $1)", &a, NULL, &err) != DC_OK)
        return false;
    for (int i = 0; i < 200; i++) {
        dl_pg_heard(l);
        if (strcmp(h->last, payload) == 0)
            return true;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void notifications(const char *conninfo, struct dl_pg *other)
{
    struct dl_pg *l = open_pg(conninfo, 0);
    struct heard h = {0};
    struct dc_err err = {0};
    enum dc_status s = dl_pg_listen(l, "pgc_chan", on_notify, &h, &err);
    check(s == DC_OK && h.missed == 1, "dl_pg_listen: LISTEN made, nothing heard before it",
          &err);
    check(notified(l, other, &h, "alice@example.test") && h.n == 1,
          "another connection's NOTIFY is delivered by dl_pg_heard", NULL);
    int missed = h.missed;
    terminate(other, backend_pid(l));
    check(!dl_pg_heard(l) && h.missed == missed + 1,
          "a connection the server dropped: dl_pg_heard says so, the callback gets NULL", NULL);
    check(backend_pid(l) > 0 && h.missed == missed + 2,
          "the next statement connects again and says again that notifications were missed",
          NULL);
    check(notified(l, other, &h, "bob@example.test"),
          "and LISTEN is made again on the new connection", NULL);
    dl_pg_close(l);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: pgcheck CONNINFO\n");
        return 2;
    }
    struct dl_pg *pg = open_pg(argv[1], 0), *other = open_pg(argv[1], 0);
    bytes_and_ints(pg);
    violations(pg);
    migrations(pg);
    serialization(pg, other);
    reconnects(pg, other);
    timeout(argv[1]);
    notifications(argv[1], other);
    dl_pg_close(pg);
    dl_pg_close(other);
    printf("ok done\n");
    return failures == 0 ? 0 : 1;
}
