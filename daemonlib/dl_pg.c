/*
 * dl_pg - see dl_pg.h.
 *
 * Every statement goes out with libpq's asynchronous calls on a non-blocking connection and
 * is waited for with poll(), so that a server that stops answering costs a bounded time
 * (timeout_ms) instead of the caller's whole thread.
 */
#include "dl_pg.h"

#include "dl_log.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DL_PG_STMTS 64
/* the advisory lock dl_pg_migrate holds while it looks at and changes schema_version */
#define MIGRATE_LOCK 0x44494d45 /* "DIME" */

struct dl_pg {
    char *what;
    char *conninfo;
    int timeout_ms;
    int retries;
    PGconn *conn;
    bool down;          /* the outage was logged; the next connect logs its end */
    int64_t next_try;   /* no connect before this (ms, monotonic) after one failed */
    bool in_txn;
    bool retry;         /* the last failure was a serialization failure or a deadlock */
    char state[6];      /* SQLSTATE of the last failure */
    unsigned nprep;     /* statements prepared on this connection: prep[i] is "s<i>" */
    const char *prep[DL_PG_STMTS];
    char *listen;       /* dl_pg_listen: the LISTEN statement made on each connection */
    char *channel;
    dl_pg_notify_fn notify;
    void *notify_ctx;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The first line of one of libpq's messages (they end in a newline and may go on with a
 * hint on a second line). */
static const char *first_line(const char *m, char *out, size_t n)
{
    snprintf(out, n, "%s", m != NULL && m[0] != '\0' ? m : "unknown error");
    out[strcspn(out, "\r\n")] = '\0';
    return out;
}

/* The connection is of no more use: dropped, and the outage logged once. */
static void lost(struct dl_pg *pg, const char *why)
{
    if (pg->conn != NULL)
        PQfinish(pg->conn);
    pg->conn = NULL;
    pg->nprep = 0;
    if (pg->notify != NULL)
        pg->notify(pg->notify_ctx, NULL); /* what is sent from now on is not heard */
    if (!pg->down)
        dl_log(LOG_ERR, "%s: PostgreSQL unavailable: %s; requests fail temporarily until it "
               "is back", pg->what, why);
    pg->down = true;
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static enum dc_status finish(struct dl_pg *pg, int send_ok, PGresult **res,
                             struct dc_err *err);

static enum dc_status connect_pg(struct dl_pg *pg, bool first, struct dc_err *err)
{
    if (pg->conn != NULL)
        return DC_OK;
    /* a new connection would run the rest of a transaction outside it */
    if (pg->in_txn)
        return dc_fail(err, DC_ERR_IO, "%s: PostgreSQL connection lost in a transaction",
                       pg->what);
    int64_t t = now_ms();
    if (t < pg->next_try)
        return dc_fail(err, DC_ERR_IO, "%s: PostgreSQL unavailable (connecting again within a "
                       "second)", pg->what);
    char tmo[16];
    snprintf(tmo, sizeof(tmo), "%d", (pg->timeout_ms + 999) / 1000);
    /* the defaults first: whatever the connection string says comes later and wins */
    const char *const kw[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *const val[] = {tmo, "dime-gateway", pg->conninfo, NULL};
    PGconn *c = PQconnectdbParams(kw, val, 1);
    char why[200];
    if (c == NULL || PQstatus(c) != CONNECTION_OK || PQsetnonblocking(c, 1) != 0) {
        first_line(c != NULL ? PQerrorMessage(c) : "out of memory", why, sizeof(why));
        PQfinish(c);
        /* a second, or twice what this attempt took (a host that does not answer at all costs
         * connect_timeout each time; the caller's thread should mostly fail fast meanwhile) */
        int64_t took = now_ms() - t;
        pg->next_try = now_ms() + (took > 500 ? 2 * took : 1000);
        snprintf(pg->state, sizeof(pg->state), "08001");
        if (!first)
            lost(pg, why);
        return dc_fail(err, DC_ERR_IO, "%s: PostgreSQL unavailable: %s", pg->what, why);
    }
    PQsetNoticeProcessor(c, quiet, NULL); /* notices ("already exists, skipping") are noise */
    pg->conn = c;
    pg->nprep = 0;
    pg->next_try = 0;
    if (pg->listen != NULL) {
        /* before any statement on this connection: whatever it reads, a later change of it
         * is heard; what was sent while there was no connection is not, hence the NULL */
        enum dc_status s = finish(pg, PQsendQuery(c, pg->listen), NULL, err);
        if (s != DC_OK) {
            if (pg->conn != NULL) /* never a connection that is not listening */
                lost(pg, "LISTEN failed");
            return s;
        }
        pg->notify(pg->notify_ctx, NULL);
    }
    if (pg->down) {
        const char *h = PQhost(c);
        dl_log(LOG_NOTICE, "%s: PostgreSQL connected database=%s user=%s host=%s", pg->what,
               PQdb(c), PQuser(c), h != NULL && h[0] != '\0' ? h : "(default)");
    }
    pg->down = false;
    return DC_OK;
}

/* A kept connection the server has closed meanwhile (a restart, an idle timeout) says so
 * with readable data; it is found here, before a statement is sent on it. */
static void check_alive(struct dl_pg *pg)
{
    if (pg->conn == NULL)
        return;
    struct pollfd p = {.fd = PQsocket(pg->conn), .events = POLLIN};
    /* a server that shut down sends its last message and closes: the end of the stream may
     * only be seen on a second read */
    for (int i = 0; i < 4 && p.fd >= 0 && poll(&p, 1, 0) > 0; i++)
        if (!PQconsumeInput(pg->conn))
            break;
    PGnotify *n;
    while ((n = PQnotifies(pg->conn)) != NULL) {
        if (pg->notify != NULL && strcmp(n->relname, pg->channel) == 0)
            pg->notify(pg->notify_ctx, n->extra);
        PQfreemem(n);
    }
    if (p.fd < 0 || PQstatus(pg->conn) != CONNECTION_OK) {
        char why[200];
        lost(pg, first_line(PQerrorMessage(pg->conn), why, sizeof(why)));
    }
}

enum dc_status dl_pg_conninfo_check(const char *conninfo, struct dc_err *err)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo != NULL ? conninfo : "", &msg);
    PQconninfoFree(opts);
    if (opts != NULL)
        return DC_OK;
    if (msg != NULL) {
        dc_memzero(msg, strlen(msg));
        PQfreemem(msg);
    }
    return dc_fail(err, DC_ERR_FIELD, "not a connection string libpq can read (keyword=value "
                   "pairs, values with spaces in single quotes, or a postgresql:// URI)");
}

enum dc_status dl_pg_open(const struct dl_pg_opts *o, struct dl_pg **out, struct dc_err *err)
{
    enum dc_status cs = dl_pg_conninfo_check(o->conninfo, err);
    if (cs != DC_OK)
        return cs;
    struct dl_pg *pg = dc_xcalloc(1, sizeof(*pg));
    pg->what = dc_xstrdup(o->what != NULL ? o->what : "database");
    pg->conninfo = dc_xstrdup(o->conninfo != NULL ? o->conninfo : "");
    pg->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DL_PG_TIMEOUT_MS;
    pg->retries = o->retries > 0 ? o->retries : DL_PG_RETRIES;
    enum dc_status s = connect_pg(pg, true, err);
    if (s != DC_OK) {
        dl_pg_close(pg);
        return s;
    }
    *out = pg;
    return DC_OK;
}

enum dc_status dl_pg_listen(struct dl_pg *pg, const char *channel, dl_pg_notify_fn fn,
                            void *ctx, struct dc_err *err)
{
    if (pg->in_txn || pg->listen != NULL)
        abort(); /* once, outside a transaction: a bug otherwise */
    char *id = pg->conn != NULL ? PQescapeIdentifier(pg->conn, channel, strlen(channel)) : NULL;
    if (id == NULL)
        return dc_fail(err, DC_ERR_IO, "%s: PostgreSQL unavailable (LISTEN %s)", pg->what,
                       channel);
    size_t n = strlen(id) + sizeof("LISTEN ");
    pg->listen = dc_xmalloc(n);
    snprintf(pg->listen, n, "LISTEN %s", id);
    PQfreemem(id);
    pg->channel = dc_xstrdup(channel);
    pg->notify = fn;
    pg->notify_ctx = ctx;
    enum dc_status s = finish(pg, PQsendQuery(pg->conn, pg->listen), NULL, err);
    fn(ctx, NULL);
    return s;
}

bool dl_pg_heard(struct dl_pg *pg)
{
    check_alive(pg);
    return pg->conn != NULL;
}

void dl_pg_close(struct dl_pg *pg)
{
    if (pg == NULL)
        return;
    PQfinish(pg->conn);
    free(pg->listen);
    free(pg->channel);
    free(pg->what);
    /* the string may hold a password */
    dc_memzero(pg->conninfo, strlen(pg->conninfo));
    free(pg->conninfo);
    free(pg);
}

const char *dl_pg_sqlstate(const struct dl_pg *pg)
{
    return pg->state;
}

/* ---- parameters and results ---- */

static int arg_slot(struct dl_pg_args *a)
{
    if (a->n >= DL_PG_MAXARGS)
        abort(); /* a statement of ours with too many parameters: a bug */
    return a->n++;
}

void dl_pg_arg_text(struct dl_pg_args *a, const char *s)
{
    int i = arg_slot(a);
    a->val[i] = s;
    a->len[i] = 0;
    a->fmt[i] = 0;
}

void dl_pg_arg_bytes(struct dl_pg_args *a, const void *p, size_t n)
{
    int i = arg_slot(a);
    a->val[i] = p; /* binary: may hold NUL bytes; NULL is SQL NULL */
    a->len[i] = (int)n;
    a->fmt[i] = 1;
}

void dl_pg_arg_int(struct dl_pg_args *a, int64_t v)
{
    int i = arg_slot(a);
    snprintf(a->num[i], sizeof(a->num[i]), "%lld", (long long)v);
    a->val[i] = a->num[i]; /* as text: the server reads it as the column's integer type */
    a->len[i] = 0;
    a->fmt[i] = 0;
}

int dl_pg_rows(const PGresult *r)
{
    return PQntuples(r);
}

bool dl_pg_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) != 0;
}

int64_t dl_pg_int(const PGresult *r, int row, int col)
{
    const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);
    int n = PQgetlength(r, row, col);
    if (PQgetisnull(r, row, col) || (n != 2 && n != 4 && n != 8))
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    if (n < 8 && (p[0] & 0x80)) /* sign-extend int2 and int4 */
        v |= ~(uint64_t)0 << (8 * n);
    return (int64_t)v;
}

uint8_t *dl_pg_bytes(const PGresult *r, int row, int col, size_t *len)
{
    *len = 0;
    if (PQgetisnull(r, row, col))
        return NULL;
    size_t n = (size_t)PQgetlength(r, row, col);
    uint8_t *b = dc_xmalloc(n + 1);
    memcpy(b, PQgetvalue(r, row, col), n);
    b[n] = 0;
    *len = n;
    return b;
}

void dl_pg_text(const PGresult *r, int row, int col, char *out, size_t max)
{
    size_t n = PQgetisnull(r, row, col) ? 0 : (size_t)PQgetlength(r, row, col);
    if (n > max)
        n = max;
    memcpy(out, PQgetvalue(r, row, col), n);
    out[n] = '\0';
}

long dl_pg_changed(const PGresult *r)
{
    return atol(PQcmdTuples((PGresult *)r));
}

/* ---- one round trip ---- */

static int left_ms(int64_t deadline)
{
    int64_t l = deadline - now_ms();
    return l < 0 ? 0 : (int)l;
}

/* Waits for what was sent: flushes, then reads every result; *out gets the first failed one
 * or the last one. DC_ERR_IO when the connection fails or the time runs out (the connection
 * is dropped then: its state is unknown). */
static enum dc_status await(struct dl_pg *pg, PGresult **out, struct dc_err *err)
{
    int64_t deadline = now_ms() + pg->timeout_ms;
    PGconn *c = pg->conn;
    struct pollfd p = {.fd = PQsocket(c)};
    char why[200];
    *out = NULL;
    int f;
    while ((f = PQflush(c)) == 1) {
        p.events = POLLOUT | POLLIN;
        if (poll(&p, 1, left_ms(deadline)) <= 0)
            goto timeout;
        if ((p.revents & POLLIN) && !PQconsumeInput(c))
            goto gone;
    }
    if (f < 0)
        goto gone;
    for (;;) {
        while (PQisBusy(c)) {
            p.events = POLLIN;
            if (poll(&p, 1, left_ms(deadline)) <= 0)
                goto timeout;
            if (!PQconsumeInput(c))
                goto gone;
        }
        PGresult *r = PQgetResult(c);
        if (r == NULL)
            break;
        ExecStatusType st = PQresultStatus(r);
        bool failed = st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK;
        if (*out == NULL || (failed && (PQresultStatus(*out) == PGRES_COMMAND_OK ||
                                        PQresultStatus(*out) == PGRES_TUPLES_OK))) {
            PQclear(*out);
            *out = r;
        } else {
            PQclear(r);
        }
    }
    return DC_OK;
timeout:
    PQclear(*out);
    *out = NULL;
    snprintf(pg->state, sizeof(pg->state), "57014");
    snprintf(why, sizeof(why), "no answer within %d ms", pg->timeout_ms);
    lost(pg, why);
    return dc_fail(err, DC_ERR_IO, "%s: PostgreSQL unavailable: %s", pg->what, why);
gone:
    PQclear(*out);
    *out = NULL;
    snprintf(pg->state, sizeof(pg->state), "08006");
    first_line(PQerrorMessage(c), why, sizeof(why));
    lost(pg, why);
    return dc_fail(err, DC_ERR_IO, "%s: PostgreSQL unavailable: %s", pg->what, why);
}

static bool state_is(const char *st, const char *prefix)
{
    return strncmp(st, prefix, strlen(prefix)) == 0;
}

/* What a finished result means (r may be NULL: the sending failed). */
static enum dc_status judge(struct dl_pg *pg, const PGresult *r, struct dc_err *err)
{
    ExecStatusType st = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return DC_OK;
    const char *code = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char why[200];
    first_line(msg != NULL ? msg : PQerrorMessage(pg->conn), why, sizeof(why));
    snprintf(pg->state, sizeof(pg->state), "%s", code != NULL ? code : "08006");
    const char *s = pg->state;
    /* the server is gone or going (class 08, admin or crash shutdown, cannot connect now),
     * or is a standby now (25006: the next connection may find the new primary) */
    if (PQstatus(pg->conn) != CONNECTION_OK || state_is(s, "08") || state_is(s, "57P") ||
        strcmp(s, "25006") == 0) {
        lost(pg, why);
        return dc_fail(err, DC_ERR_IO, "%s: PostgreSQL unavailable: %s", pg->what, why);
    }
    if (strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0) {
        pg->retry = true;
        return dc_fail(err, DC_ERR_IO, "%s: %s (SQLSTATE %s)", pg->what, why, s);
    }
    if (strcmp(s, "23505") == 0)
        return dc_fail(err, DC_ERR_ARG, "%s: %s", pg->what, why);
    if (state_is(s, "23"))
        return dc_fail(err, DC_ERR_FIELD, "%s: %s", pg->what, why);
    return dc_fail(err, DC_ERR_IO, "%s: %s (SQLSTATE %s)", pg->what, why, s);
}

/* Sends with send_ok (the libpq call's result) and waits; *res gets the result on DC_OK. */
static enum dc_status finish(struct dl_pg *pg, int send_ok, PGresult **res, struct dc_err *err)
{
    PGresult *r = NULL;
    enum dc_status s;
    if (!send_ok) {
        char why[200];
        snprintf(pg->state, sizeof(pg->state), "08006");
        lost(pg, first_line(PQerrorMessage(pg->conn), why, sizeof(why)));
        return dc_fail(err, DC_ERR_IO, "%s: PostgreSQL unavailable: %s", pg->what, why);
    }
    if ((s = await(pg, &r, err)) != DC_OK)
        return s;
    if ((s = judge(pg, r, err)) != DC_OK || res == NULL)
        PQclear(r);
    else
        *res = r;
    return s;
}

static enum dc_status exec_once(struct dl_pg *pg, const char *sql, const struct dl_pg_args *a,
                                PGresult **res, struct dc_err *err)
{
    static const struct dl_pg_args none;
    if (a == NULL)
        a = &none;
    unsigned i = 0;
    while (i < pg->nprep && pg->prep[i] != sql)
        i++;
    char name[16];
    snprintf(name, sizeof(name), "s%u", i);
    if (i == pg->nprep && i < DL_PG_STMTS) {
        enum dc_status s = finish(pg, PQsendPrepare(pg->conn, name, sql, 0, NULL), NULL, err);
        if (s != DC_OK)
            return s;
        pg->prep[pg->nprep++] = sql;
    }
    int ok = i < DL_PG_STMTS
                 ? PQsendQueryPrepared(pg->conn, name, a->n, a->val, a->len, a->fmt, 1)
                 : PQsendQueryParams(pg->conn, sql, a->n, NULL, a->val, a->len, a->fmt, 1);
    return finish(pg, ok, res, err);
}

enum dc_status dl_pg_exec(struct dl_pg *pg, const char *sql, const struct dl_pg_args *a,
                          PGresult **res, struct dc_err *err)
{
    if (res != NULL)
        *res = NULL;
    for (int attempt = 0;; attempt++) {
        if (!pg->in_txn)
            check_alive(pg);
        bool kept = pg->conn != NULL;
        enum dc_status s = connect_pg(pg, false, err);
        if (s == DC_OK)
            s = exec_once(pg, sql, a, res, err);
        /* a kept connection that turned out dead: once more on a new one */
        if (s == DC_ERR_IO && pg->conn == NULL && kept && !pg->in_txn && attempt == 0 &&
            strcmp(pg->state, "57014") != 0) /* not after a timeout: the server is slow */
            continue;
        return s;
    }
}

enum dc_status dl_pg_run(struct dl_pg *pg, const char *sql, struct dc_err *err)
{
    enum dc_status s = connect_pg(pg, false, err);
    if (s != DC_OK)
        return s;
    return finish(pg, PQsendQuery(pg->conn, sql), NULL, err);
}

/* ---- transactions ---- */

static void backoff(int attempt)
{
    struct timespec ts = {0, (long)(1 + rand() % 5) * attempt * 1000000L};
    nanosleep(&ts, NULL);
}

static enum dc_status txn(struct dl_pg *pg, const char *begin, dl_pg_txn_fn fn, void *ctx,
                          struct dc_err *err)
{
    bool relinked = false;
    for (int serial = 0;;) {
        pg->retry = false;
        check_alive(pg);
        bool committing = false;
        enum dc_status s = dl_pg_run(pg, begin, err);
        if (s == DC_OK) {
            pg->in_txn = true;
            s = fn(pg, ctx, err);
            if (s == DC_OK) {
                committing = true;
                s = dl_pg_run(pg, "COMMIT", err);
            }
            pg->in_txn = false;
        }
        if (s == DC_OK)
            return DC_OK;
        if (pg->conn != NULL) {
            struct dc_err ignored = {0};
            dl_pg_run(pg, "ROLLBACK", &ignored);
        }
        if (pg->conn == NULL && committing)
            return dc_fail(err, DC_ERR_IO, "%s: PostgreSQL connection lost during COMMIT: "
                           "the outcome is unknown", pg->what);
        if (pg->conn == NULL && !relinked && pg->next_try == 0) {
            relinked = true; /* gone before anything was committed: once more */
            continue;
        }
        if (!pg->retry)
            return s;
        if (++serial > pg->retries)
            return dc_fail(err, DC_ERR_IO, "%s: serialization failures in %d attempts; try "
                           "again later", pg->what, serial);
        backoff(serial);
    }
}

enum dc_status dl_pg_txn(struct dl_pg *pg, dl_pg_txn_fn fn, void *ctx, struct dc_err *err)
{
    return txn(pg, "BEGIN ISOLATION LEVEL SERIALIZABLE", fn, ctx, err);
}

/* ---- schema versions ---- */

struct migration {
    const char *component;
    const char *const *steps;
    int n;
    int version; /* reached */
    bool done;
};

static enum dc_status migrate_step(struct dl_pg *pg, void *ctx, struct dc_err *err)
{
    struct migration *m = ctx;
    char lock[64];
    snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d)", MIGRATE_LOCK);
    enum dc_status s = dl_pg_run(pg, lock, err);
    if (s == DC_OK)
        s = dl_pg_run(pg, "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY "
                          "KEY, version INTEGER NOT NULL)", err);
    PGresult *r = NULL;
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, m->component);
    if (s == DC_OK)
        s = dl_pg_exec(pg, "SELECT version FROM schema_version WHERE component = $1", &a, &r,
                       err);
    if (s != DC_OK)
        return s;
    int v = dl_pg_rows(r) > 0 ? (int)dl_pg_int(r, 0, 0) : 0;
    PQclear(r);
    m->version = v;
    if (v > m->n)
        return dc_fail(err, DC_ERR_FORMAT, "%s: the %s schema in the database is version %d, "
                       "newer than this program's (%d): another node runs a newer release; "
                       "upgrade this one", pg->what, m->component, v, m->n);
    if (v == m->n) {
        m->done = true;
        return DC_OK;
    }
    if ((s = dl_pg_run(pg, m->steps[v + 1], err)) != DC_OK)
        return s;
    dl_pg_arg_int(&a, v + 1);
    s = dl_pg_exec(pg, "INSERT INTO schema_version (component, version) VALUES ($1, $2) "
                       "ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version", &a,
                   NULL, err);
    m->version = v + 1;
    return s;
}

enum dc_status dl_pg_migrate(struct dl_pg *pg, const char *component,
                             const char *const *migrations, int n, int *version,
                             struct dc_err *err)
{
    struct migration m = {.component = component, .steps = migrations, .n = n};
    for (;;) {
        m.done = false;
        /* READ COMMITTED: each statement sees what was committed before the lock was ours */
        enum dc_status s = txn(pg, "BEGIN", migrate_step, &m, err);
        if (s != DC_OK)
            return s;
        if (m.done) {
            *version = m.version;
            return DC_OK;
        }
    }
}
