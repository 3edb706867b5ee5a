/* Nothing in clear in the relay's storage (rl_seal.h): the queue seals senders and recipients
 * bound to their row, the signet cache keys rows by a keyed hash and seals what it holds, and
 * databases of the older schema are converted on open. Each test reads the database files
 * (with the WAL) byte for byte after closing them. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dl_sqlite.h"
#include "rl_boot.h"
#include "rl_cache.h"
#include "rl_lookup.h"
#include "rl_queue.h"
#include "rl_seal.h"
#include "rl_shared.h"
#include "rl_spool.h"
#include "dc_fmap.h"
#include "vectors.h"

static char dir[64];

static void mkdir_tmp(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_relay_store.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

static const char *in_dir(const char *name)
{
    static char p[4][128];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
    return p[i];
}

/* Does db (or its -wal) contain s? */
static bool stored(const char *db, const char *s)
{
    char path[160];
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof(path), "%s%s", db, k ? "-wal" : "");
        FILE *f = fopen(path, "rb");
        if (f == NULL)
            continue;
        static uint8_t buf[1 << 22];
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        if (memmem(buf, n, s, strlen(s)) != NULL)
            return true;
    }
    return false;
}

static void raw(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql, msg);
    sqlite3_close(h);
}

static int raw_int(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(h));
    int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static void submit(struct rl_queue *q, const char *key, const char *sender, const char *rcpt)
{
    struct rl_q_new m = {sender, rcpt, strchr(rcpt, '@') + 1, "a.test",
                         (const uint8_t *)"DMIME", 5};
    char sid[17];
    size_t count;
    bool dup;
    struct dc_err e = {0};
    cr_assert_eq(rl_queue_submit(q, key, "PFQID1", &m, 1, sid, &count, &dup, &e), DC_OK, "%s",
                 e.msg);
    cr_assert(!dup);
}

static struct rl_queue *queue(const char *db, const char *key)
{
    struct rl_queue *q = NULL;
    struct dc_err e = {0};
    cr_assert_eq(rl_queue_open(db, key, &q, &e), DC_OK, "%s", e.msg);
    return q;
}

static void add_in(struct rl_queue *q, const char *data, const char *rcpt, char tid[24])
{
    bool dup = true;
    struct dc_err e = {0};
    cr_assert_eq(rl_queue_in_add(q, (const uint8_t *)data, strlen(data), rcpt, "b.test", tid,
                                 &dup, &e), DC_OK, "%s", e.msg);
    cr_assert(!dup);
}

/* Turns every outbound message into a bounce and reads the next one. */
static bool next_bounce(struct rl_queue *q, struct rl_q_out *b)
{
    struct dc_err e = {0};
    rl_queue_expire(q, rl_now() + 10, 0);
    bool found = false;
    cr_assert_eq(rl_queue_bounce_next(q, rl_now(), b, &found, &e), DC_OK, "%s", e.msg);
    return found;
}

Test(relay_store, queue_seals_senders_and_recipients)
{
    mkdir_tmp();
    const char *db = in_dir("q.db"), *key = in_dir("q.key");
    struct rl_queue *q = queue(db, key);
    struct dc_err e = {0};
    submit(q, "k1", "sender.one@a.test", "rcpt.one@b.test");
    char tid[24];
    add_in(q, "IN", "local.rcpt@a.test", tid);
    rl_queue_close(q);
    for (const char *const *s = (const char *const[]){"sender.one", "rcpt.one", "local.rcpt",
                                                        NULL};
         *s; s++)
        cr_expect(!stored(db, *s), "%s is stored in clear", *s);

    /* what is sealed comes back where it is needed: the DSN and the injection */
    q = queue(db, key);
    struct rl_q_out b;
    cr_assert(next_bounce(q, &b));
    cr_expect_str_eq(b.sender, "sender.one@a.test");
    cr_expect_str_eq(b.recipient, "rcpt.one@b.test");
    rl_q_out_free(&b);
    struct rl_q_in in;
    bool found = false;
    cr_assert_eq(rl_queue_in_next(q, rl_now(), &in, &found, &e), DC_OK, "%s", e.msg);
    cr_assert(found);
    cr_expect_str_eq(in.recipient, "local.rcpt@a.test");
    rl_q_in_free(&in);
    /* done: the sealed recipient goes too, and the message's bytes */
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM inq_data"), 1);
    cr_assert_eq(rl_queue_in_done(q, tid, &e), DC_OK);
    rl_queue_close(q);
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM inq WHERE rcpt_sealed IS NOT NULL"), 0);
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM inq_data"), 0);
    cr_expect_eq(raw_int(db, "PRAGMA user_version"), 3);
    rm_tmp();
}

static void claim(struct rl_queue *q, struct rl_q_out *m)
{
    struct dc_err e = {0};
    bool found = false;
    cr_assert_eq(rl_queue_claim(q, "b.test", rl_now(), m, &found, &e), DC_OK, "%s", e.msg);
    cr_assert(found);
}

/* Schema 2: a message's bytes live beside its row (outq_data, inq_data); a claim reads them,
 * the state changes leave them alone, and they go with the row. */
Test(relay_store, queue_bytes_beside_the_row)
{
    mkdir_tmp();
    const char *db = in_dir("q.db"), *key = in_dir("q.key");
    struct rl_queue *q = queue(db, key);
    struct dc_err e = {0};
    submit(q, "k1", "s@a.test", "r@b.test");
    submit(q, "k2", "s@a.test", "r2@b.test");
    struct rl_q_out m;
    claim(q, &m);
    cr_expect(m.len == 5 && memcmp(m.data, "DMIME", 5) == 0, "the claimed message's bytes");
    cr_assert_eq(rl_queue_out_sent(q, m.id, &e), DC_OK, "%s", e.msg);
    rl_q_out_free(&m);
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM outq_data"), 1, "the sent message's went");
    claim(q, &m);
    cr_assert_eq(rl_queue_out_defer(q, m.id, 0, "try later", &e), DC_OK, "%s", e.msg);
    rl_q_out_free(&m);
    claim(q, &m);
    cr_expect(m.len == 5 && memcmp(m.data, "DMIME", 5) == 0, "kept through the defer");
    cr_assert_eq(rl_queue_delete(q, m.id, &e), DC_OK, "%s", e.msg);
    rl_q_out_free(&m);
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM outq_data"), 0, "the deleted message's went");

    char t1[24], t2[24];
    add_in(q, "IN1", "l@a.test", t1);
    add_in(q, "IN2", "l@a.test", t2);
    cr_assert_eq(rl_queue_in_attempt(q, t1, 1, &e), DC_OK, "%s", e.msg);
    struct rl_q_in in;
    bool found = false;
    cr_assert_eq(rl_queue_in_next(q, rl_now(), &in, &found, &e), DC_OK, "%s", e.msg);
    cr_assert(found);
    cr_expect(in.len == 3 && memcmp(in.data, "IN1", 3) == 0, "kept through the attempt mark");
    rl_q_in_free(&in);
    cr_assert_eq(rl_queue_delete(q, t2, &e), DC_OK, "%s", e.msg);
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM inq_data"), 1);
    rl_queue_close(q);
    rm_tmp();
}

/* A message of many overflow pages read back whole (sqlite3_blob_read into its buffer), and
 * freed by the done mark: a new database has a pointer map (auto_vacuum incremental), so the
 * free needs no read of the pages, and later messages reuse them. */
Test(relay_store, queue_large_message_read_and_freed)
{
    mkdir_tmp();
    const char *db = in_dir("q.db"), *key = in_dir("q.key");
    struct rl_queue *q = queue(db, key);
    struct dc_err e = {0};
    cr_expect_eq(raw_int(db, "PRAGMA auto_vacuum"), 2, "a new database has a pointer map");
    size_t n = 300 * 1024 + 17;
    uint8_t *big = dc_xmalloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 31 + i / 4096);
    struct rl_q_new m = {"s@a.test", "r@b.test", "b.test", "a.test", big, n};
    char sid[17], tid[24];
    size_t count;
    bool dup = true, found = false;
    cr_assert_eq(rl_queue_submit(q, "kbig", "PF", &m, 1, sid, &count, &dup, &e), DC_OK, "%s",
                 e.msg);
    struct rl_q_out o;
    claim(q, &o);
    cr_expect(o.len == n && memcmp(o.data, big, n) == 0, "the claimed message's bytes");
    cr_assert_eq(rl_queue_out_sent(q, o.id, &e), DC_OK, "%s", e.msg);
    rl_q_out_free(&o);
    cr_assert_eq(rl_queue_in_add(q, big, n, "l@a.test", "b.test", tid, &dup, &e), DC_OK, "%s",
                 e.msg);
    struct rl_q_in in;
    cr_assert_eq(rl_queue_in_next(q, rl_now(), &in, &found, &e), DC_OK, "%s", e.msg);
    cr_assert(found);
    cr_expect(in.len == n && memcmp(in.data, big, n) == 0, "the inbound message's bytes");
    rl_q_in_free(&in);
    cr_assert_eq(rl_queue_in_done(q, tid, &e), DC_OK, "%s", e.msg);
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM inq_data"), 0);
    cr_expect_geq(raw_int(db, "PRAGMA freelist_count"), (int)(n / 4096) - 1,
                  "the pages are free");
    int pages = raw_int(db, "PRAGMA page_count");
    big[0] ^= 1; /* other bytes: not a duplicate */
    cr_assert_eq(rl_queue_in_add(q, big, n, "l@a.test", "b.test", tid, &dup, &e), DC_OK, "%s",
                 e.msg);
    cr_expect(!dup);
    cr_expect_lt(raw_int(db, "PRAGMA page_count"), pages + 8, "the free pages were reused");
    cr_assert_eq(rl_queue_in_next(q, rl_now(), &in, &found, &e), DC_OK, "%s", e.msg);
    cr_expect(found && in.len == n && memcmp(in.data, big, n) == 0, "read from reused pages");
    rl_q_in_free(&in);
    free(big);
    rl_queue_close(q);
    rm_tmp();
}

/* Injection sessions: each takes the oldest due message no other session holds. */
Test(relay_store, queue_in_next_skips_busy)
{
    mkdir_tmp();
    const char *db = in_dir("q.db"), *key = in_dir("q.key");
    struct rl_queue *q = queue(db, key);
    struct dc_err e = {0};
    char tid[3][24], busy[3][24];
    add_in(q, "ONE", "one@a.test", tid[0]);
    add_in(q, "TWO", "two@a.test", tid[1]);
    add_in(q, "THREE", "three@a.test", tid[2]);
    raw(db, "UPDATE inq SET next_try=5"); /* same due time: insertion order decides */
    struct rl_q_in in;
    bool found = false;
    for (size_t k = 0; k <= 3; k++) {
        cr_assert_eq(rl_queue_in_next_except(q, rl_now(), (const char(*)[24])busy, k, &in,
                                             &found, &e), DC_OK, "%s", e.msg);
        if (k == 3) {
            cr_expect(!found, "every message is held by a session");
            break;
        }
        cr_assert(found, "k=%zu", k);
        cr_expect_str_eq(in.tid, tid[k]);
        cr_expect_eq(in.len, strlen(k == 0 ? "ONE" : k == 1 ? "TWO" : "THREE"));
        memcpy(busy[k], in.tid, sizeof(busy[k]));
        rl_q_in_free(&in);
    }
    /* one message injected, one held by a session: the third is next */
    cr_assert_eq(rl_queue_in_done(q, tid[0], &e), DC_OK);
    cr_assert_eq(rl_queue_in_next_except(q, rl_now(), (const char(*)[24])busy + 1, 1, &in,
                                         &found, &e), DC_OK);
    cr_assert(found);
    cr_expect_str_eq(in.tid, tid[2]);
    rl_q_in_free(&in);
    rl_queue_close(q);
    rm_tmp();
}

/* After a host restart (rl_boot.h, rl_inject.h) every queued inbound message whose injection
 * attempt is pending gets a definite failure instead, so its next attempt takes a new
 * generation; the boot id file tells a host restart from a process restart. */
Test(relay_store, queue_host_restart_unpends_attempts)
{
    mkdir_tmp();
    const char *db = in_dir("q.db"), *key = in_dir("q.key");
    char boot[4200];
    snprintf(boot, sizeof(boot), "%s", in_dir("q.db.boot"));
    const char *b1 = "0123abcd-0000-4000-8000-00000000000a";
    const char *b2 = "0123abcd-0000-4000-8000-00000000000b";
    cr_expect(rl_boot_changed(boot, b1), "no file: a restart is assumed");
    cr_assert(rl_boot_save(boot, b1));
    cr_expect(!rl_boot_changed(boot, b1), "the same boot");
    cr_expect(rl_boot_changed(boot, b2), "another boot");
    int fd = open(boot, O_WRONLY | O_TRUNC);
    cr_assert(fd >= 0 && write(fd, "0123", 4) == 4);
    close(fd);
    cr_expect(rl_boot_changed(boot, b1), "a damaged file: a restart is assumed");
    char id[RL_BOOT_ID_LEN + 1];
    cr_expect(rl_boot_id(id) && strlen(id) == RL_BOOT_ID_LEN, "the kernel's boot id");

    struct rl_queue *q = queue(db, key);
    struct dc_err e = {0};
    char t[4][24];
    add_in(q, "NEW", "a@a.test", t[0]);     /* generation 1, pending (rl_queue_in_add) */
    add_in(q, "UNKNOWN", "b@a.test", t[1]); /* a later attempt with no reply */
    add_in(q, "FAILED", "c@a.test", t[2]);  /* a definite failure */
    add_in(q, "DONE", "d@a.test", t[3]);
    cr_assert_eq(rl_queue_in_attempt(q, t[1], 2, &e), DC_OK, "%s", e.msg);
    cr_assert_eq(rl_queue_in_defer(q, t[1], 0, "lost", true, &e), DC_OK, "%s", e.msg);
    cr_assert_eq(rl_queue_in_defer(q, t[2], 0, "451", false, &e), DC_OK, "%s", e.msg);
    cr_assert_eq(rl_queue_in_done(q, t[3], &e), DC_OK, "%s", e.msg);
    unsigned n = 99;
    cr_assert_eq(rl_queue_in_unpend(q, &n, &e), DC_OK, "%s", e.msg);
    cr_expect_eq(n, 2, "the two pending attempts");
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM inq WHERE state='queued'"
                             " AND inject_pending=1"), 0);
    cr_expect_eq(raw_int(db, "SELECT inject_gen FROM inq WHERE state='queued' ORDER BY rowid"
                             " LIMIT 1 OFFSET 1"), 2, "the generation itself stays");
    struct rl_q_in in;
    bool found = false;
    cr_assert_eq(rl_queue_in_next(q, rl_now(), &in, &found, &e), DC_OK, "%s", e.msg);
    cr_assert(found);
    cr_expect(!in.pending, "so the next attempt takes generation + 1 (rl_inject.c)");
    rl_q_in_free(&in);
    cr_assert_eq(rl_queue_in_unpend(q, &n, &e), DC_OK, "%s", e.msg);
    cr_expect_eq(n, 0, "nothing left pending");
    rl_queue_close(q);
    rm_tmp();
}

/* The connection pool of the short jobs gives back an idle connection to the same files. */
Test(relay_store, queue_pool_reuses_connections)
{
    mkdir_tmp();
    const char *db = in_dir("q.db"), *key = in_dir("q.key"), *db2 = in_dir("q2.db");
    struct dc_err e = {0};
    struct rl_queue *a = NULL, *b = NULL, *c = NULL;
    cr_assert_eq(rl_queue_take(db, key, &a, &e), DC_OK, "%s", e.msg);
    cr_assert_eq(rl_queue_take(db, key, &b, &e), DC_OK, "%s", e.msg);
    cr_expect_neq(a, b, "two jobs at once get two connections");
    rl_queue_give(a);
    cr_assert_eq(rl_queue_take(db2, key, &c, &e), DC_OK, "%s", e.msg);
    cr_expect_neq(c, a, "another database gets a connection of its own");
    struct rl_queue *again = NULL;
    cr_assert_eq(rl_queue_take(db, key, &again, &e), DC_OK, "%s", e.msg);
    cr_expect_eq(again, a, "the idle one is taken again");
    char tid[24];
    add_in(again, "X", "x@a.test", tid); /* it works after the reuse */
    rl_queue_give(again);
    rl_queue_give(b);
    rl_queue_give(c);
    rl_queue_pool_drain();
    rm_tmp();
}

Test(relay_store, queue_sealed_values_do_not_move_between_rows)
{
    mkdir_tmp();
    const char *db = in_dir("q.db"), *key = in_dir("q.key");
    struct rl_queue *q = queue(db, key);
    struct dc_err e = {0};
    submit(q, "k1", "s1@a.test", "r1@b.test");
    submit(q, "k2", "s2@a.test", "r2@b.test");
    char t1[24], t2[24];
    add_in(q, "I1", "l1@a.test", t1);
    add_in(q, "I2", "l2@a.test", t2);
    rl_queue_close(q);
    /* someone with write access to the file swaps the sealed addresses of the two rows */
    raw(db, "CREATE TEMP TABLE o AS SELECT id, sender_sealed FROM outq;"
            "UPDATE outq SET sender_sealed=(SELECT sender_sealed FROM o WHERE o.id!=outq.id);"
            "CREATE TEMP TABLE i AS SELECT tid, rcpt_sealed FROM inq;"
            "UPDATE inq SET rcpt_sealed=(SELECT rcpt_sealed FROM i WHERE i.tid!=inq.tid);");
    q = queue(db, key);
    struct rl_q_out b;
    cr_expect(!next_bounce(q, &b), "a DSN went to %s", b.sender);
    cr_expect(!next_bounce(q, &b), "a DSN went to %s", b.sender);
    struct rl_q_in in;
    bool found = true;
    cr_assert_eq(rl_queue_in_next(q, rl_now(), &in, &found, &e), DC_OK);
    cr_expect(!found, "injected to %s", in.recipient);
    cr_assert_eq(rl_queue_in_next(q, rl_now(), &in, &found, &e), DC_OK);
    cr_expect(!found, "injected to %s", in.recipient);
    rl_queue_close(q);
    /* each row is held, with the reason, for the operator */
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM outq WHERE held=1 AND last_error LIKE"
                             " '%does not unseal%'"), 2);
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM inq WHERE held=1 AND last_error LIKE"
                             " '%does not unseal%'"), 2);
    rm_tmp();
}

static int pragma_int(sqlite3 *h, const char *sql)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

/* The one open helper sets what it is asked for, on the connection it hands out. */
Test(relay_store, sqlite_open_sets_the_pragmas)
{
    mkdir_tmp();
    const char *db = in_dir("o.db");
    struct dl_sqlite_opts o = {.what = "test database", .flags = SQLITE_OPEN_NOMUTEX,
                               .mode = 0600, .busy_ms = 100, .synchronous = "FULL",
                               .foreign_keys = true, .pointer_map = true};
    sqlite3 *h = NULL;
    struct dc_err e = {0};
    cr_assert_eq(dl_sqlite_open(db, &o, &h, &e), DC_OK, "%s", e.msg);
    cr_expect_eq(pragma_int(h, "PRAGMA synchronous"), 2);
    cr_expect_eq(pragma_int(h, "PRAGMA foreign_keys"), 1);
    cr_expect_eq(pragma_int(h, "PRAGMA auto_vacuum"), 2);
    cr_expect_eq(pragma_int(h, "PRAGMA busy_timeout"), 100);
    sqlite3_close(h);
    struct stat sb;
    cr_assert_eq(stat(db, &sb), 0);
    cr_expect_eq(sb.st_mode & 0777, 0600);
    cr_expect_eq(raw_int(db, "SELECT journal_mode='wal' FROM pragma_journal_mode"), 1);
    o.synchronous = "NORMAL";
    o.foreign_keys = false;
    cr_assert_eq(dl_sqlite_open(db, &o, &h, &e), DC_OK, "%s", e.msg);
    cr_expect_eq(pragma_int(h, "PRAGMA synchronous"), 1);
    cr_expect_eq(pragma_int(h, "PRAGMA foreign_keys"), 0);
    sqlite3_close(h);
    cr_expect_eq(dl_sqlite_open(in_dir("no/such/dir.db"), &o, &h, &e), DC_ERR_IO);
    cr_expect_null(h);
    cr_expect(strstr(e.msg, "test database") != NULL, "%s", e.msg);
    rm_tmp();
}

static unsigned pool_closed;

static void pool_close(void *conn)
{
    (void)conn;
    pool_closed++;
}

/* A pool keeps what fits (in all, per key, for invited keys only) and gives back only
 * connections of the key asked for. */
Test(relay_store, pool_keeps_what_fits)
{
    static struct dl_pool p = DL_POOL_INIT(3, 2, false);
    int c[4];
    cr_expect(dl_pool_give(&p, "a", &c[0]));
    cr_expect(dl_pool_give(&p, "a", &c[1]));
    cr_expect(!dl_pool_give(&p, "a", &c[2]), "two per key");
    cr_expect(dl_pool_give(&p, "b", &c[2]));
    cr_expect(!dl_pool_give(&p, "b", &c[3]), "three in all");
    cr_expect_null(dl_pool_take(&p, "c"));
    cr_expect_eq(dl_pool_take(&p, "b"), &c[2]);
    void *x = dl_pool_take(&p, "a"), *y = dl_pool_take(&p, "a");
    cr_expect((x == &c[0] && y == &c[1]) || (x == &c[1] && y == &c[0]));
    cr_expect_null(dl_pool_take(&p, "a"));
    cr_expect(dl_pool_give(&p, "a", &c[0]));
    pool_closed = 0;
    dl_pool_drain(&p, pool_close);
    cr_expect_eq(pool_closed, 1);
    cr_expect_null(dl_pool_take(&p, "a"));

    static struct dl_pool q = DL_POOL_INIT(8, 8, true);
    cr_expect(!dl_pool_give(&q, "a", &c[0]), "not invited");
    dl_pool_keep(&q, "a", true, pool_close);
    cr_expect(dl_pool_give(&q, "a", &c[0]));
    cr_expect(dl_pool_give(&q, "a", &c[1]));
    pool_closed = 0;
    dl_pool_keep(&q, "a", false, pool_close);
    cr_expect_eq(pool_closed, 2, "stopping closes the idle ones");
    cr_expect_null(dl_pool_take(&q, "a"));
    cr_expect(!dl_pool_give(&q, "a", &c[0]));
}

/* ---- the relay's first sealed format (before dl_seal), for databases written by it ---- */

#define OLD_OVERHEAD (DC_GCM_IV_LEN + DC_GCM_TAG_LEN)

/* iv | tag | ciphertext, "label:row" (nothing when both are NULL) as additional data */
static size_t old_seal(const uint8_t key[32], const char *label, const char *row, const void *in,
                       size_t len, uint8_t *out)
{
    char a[512] = "";
    if (label != NULL)
        snprintf(a, sizeof(a), "%s:%s", label, row);
    cr_assert_eq(dc_random(out, DC_GCM_IV_LEN), DC_OK);
    cr_assert_eq(dc_aes256_gcm_seal(key, out, (const uint8_t *)a, strlen(a), in, len,
                                    out + OLD_OVERHEAD, out + DC_GCM_IV_LEN, NULL), DC_OK);
    return OLD_OVERHEAD + len;
}

/* to_old(label, row, sealed): a value sealed in the current format under the key given as
 * user data, sealed again in the first format bound to "label:row"; an error when it does not
 * open. */
static void sqlf_to_old(sqlite3_context *c, int argc, sqlite3_value **v)
{
    (void)argc;
    const uint8_t *key = sqlite3_user_data(c);
    const char *label = (const char *)sqlite3_value_text(v[0]);
    const char *row = (const char *)sqlite3_value_text(v[1]);
    char plain[1024];
    size_t n;
    if (!rl_unseal(key, label, row, sqlite3_value_blob(v[2]), (size_t)sqlite3_value_bytes(v[2]),
                   plain, sizeof(plain), &n)) {
        sqlite3_result_error(c, "to_old: does not open", -1);
        return;
    }
    uint8_t out[OLD_OVERHEAD + sizeof(plain)];
    sqlite3_result_blob(c, out, (int)old_seal(key, label, row, plain, n, out), SQLITE_TRANSIENT);
}

/* Runs sql on db with to_old() under key, and sets user_version to version. */
static void make_old(const char *db, const uint8_t key[32], const char *sql, int version)
{
    sqlite3 *h = NULL;
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_create_function(h, "to_old", 3, SQLITE_UTF8, (void *)key, sqlf_to_old, NULL, NULL);
    char *msg = NULL, pragma[40];
    snprintf(pragma, sizeof(pragma), "PRAGMA user_version=%d", version);
    cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, &msg), SQLITE_OK, "%s", msg ? msg : "");
    cr_assert_eq(sqlite3_exec(h, pragma, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

static void read_key(const char *path, uint8_t key[32])
{
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0);
    cr_assert_eq(read(fd, key, 32), 32);
    close(fd);
}

/* The sealed format itself: every byte is covered, and so are the purpose, the row and the
 * boundary between them; a short value and another version are refused. */
Test(relay_store, seal_refuses_tampering)
{
    uint8_t k[32], out[RL_SEAL_OVERHEAD + 32];
    for (int i = 0; i < 32; i++)
        k[i] = (uint8_t)(i * 3 + 5);
    const char *v = "someone@b.test";
    size_t n = strlen(v), sl = rl_seal(k, "outq.rcpt", "s1.1", v, n, out);
    cr_assert_eq(sl, n + RL_SEAL_OVERHEAD);
    cr_assert_eq(out[0], DL_SEAL_VERSION);
    char plain[64];
    size_t pl = 0;
    cr_assert(rl_unseal(k, "outq.rcpt", "s1.1", out, sl, plain, sizeof(plain), &pl));
    cr_assert(pl == n && strcmp(plain, v) == 0);
    cr_expect(!rl_unseal(k, "outq.rcpt", "s1.2", out, sl, plain, sizeof(plain), NULL), "row");
    cr_expect(!rl_unseal(k, "outq.sender", "s1.1", out, sl, plain, sizeof(plain), NULL),
              "purpose");
    cr_expect(!rl_unseal(k, "outq.rcpt:", "s1.1", out, sl, plain, sizeof(plain), NULL));
    cr_expect(!rl_unseal(k, "outq.rcp", "ts1.1", out, sl, plain, sizeof(plain), NULL),
              "a byte moved from the purpose to the row");
    cr_expect(!rl_unseal(k, "outq.rcpt", "s1.1", out, sl - 1, plain, sizeof(plain), NULL),
              "truncated");
    cr_expect(!rl_unseal(k, "outq.rcpt", "s1.1", out, RL_SEAL_OVERHEAD - 1, plain,
                         sizeof(plain), NULL));
    cr_expect(!rl_unseal(k, "outq.rcpt", "s1.1", out, sl, plain, n, NULL), "too small a buffer");
    struct dc_err e = {0};
    for (size_t i = 0; i < sl; i++) {
        out[i] ^= 0x01;
        cr_expect(!rl_unseal(k, "outq.rcpt", "s1.1", out, sl, plain, sizeof(plain), NULL),
                  "byte %zu flipped", i);
        cr_expect_eq(dl_unseal(k, "outq.rcpt", "s1.1", out, sl, plain, &e),
                     i == 0 ? DC_ERR_FORMAT : DC_ERR_SIGNATURE, "byte %zu", i);
        out[i] ^= 0x01;
    }
    k[7] ^= 0x80;
    cr_expect(!rl_unseal(k, "outq.rcpt", "s1.1", out, sl, plain, sizeof(plain), NULL), "key");
    k[7] ^= 0x80;
    /* the first format does not pass for the current one */
    sl = old_seal(k, "outq.rcpt", "s1.1", v, n, out);
    cr_expect(!rl_unseal(k, "outq.rcpt", "s1.1", out, sl, plain, sizeof(plain), NULL));
    /* a purpose must be given; a row may be empty */
    cr_expect_eq(dl_seal(k, "", "s1.1", v, n, out, &e), DC_ERR_ARG);
    cr_expect_eq(dl_seal(k, "outq.rcpt", "", v, n, out, &e), DC_OK);
    cr_expect_eq(dl_unseal(k, "outq.rcpt", "", out, n + DL_SEAL_OVERHEAD, plain, &e), DC_OK);
}

/* A queue of schema 2 sealed in the first format: converted on open, every value now in the
 * current one, and what was queued reads back; a value that did not open before does not
 * after, and its row is held as it was. */
Test(relay_store, queue_schema2_is_resealed)
{
    mkdir_tmp();
    const char *db = in_dir("q.db"), *key = in_dir("q.key");
    struct rl_queue *q = queue(db, key);
    submit(q, "k1", "sender.one@a.test", "rcpt.one@b.test");
    submit(q, "k2", "sender.two@a.test", "rcpt.two@b.test");
    char tid[2][24];
    add_in(q, "IN1", "local.one@a.test", tid[0]);
    add_in(q, "IN2", "local.two@a.test", tid[1]);
    rl_queue_close(q);
    uint8_t k[32];
    read_key(key, k);
    make_old(db, k,
             "UPDATE outq SET sender_sealed=to_old('outq.sender', id, sender_sealed),"
             " rcpt_sealed=to_old('outq.rcpt', id, rcpt_sealed);"
             "UPDATE inq SET rcpt_sealed=to_old('inq.rcpt', tid, rcpt_sealed);"
             "CREATE TABLE old_values AS SELECT sender_sealed AS v FROM outq UNION ALL"
             " SELECT rcpt_sealed FROM outq UNION ALL SELECT rcpt_sealed FROM inq;", 2);
    /* the second inbound message's recipient was already damaged */
    char sql[256];
    snprintf(sql, sizeof(sql), "UPDATE inq SET rcpt_sealed=zeroblob(40) WHERE tid='%s'",
             tid[1]);
    raw(db, sql);
    cr_assert_eq(raw_int(db, "SELECT COUNT(*) FROM old_values WHERE v IN (SELECT sender_sealed"
                             " FROM outq UNION SELECT rcpt_sealed FROM outq UNION SELECT"
                             " rcpt_sealed FROM inq)"), 5, "setup");

    q = queue(db, key);
    cr_expect_eq(raw_int(db, "PRAGMA user_version"), 3);
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM old_values WHERE v IN (SELECT sender_sealed"
                             " FROM outq UNION SELECT rcpt_sealed FROM outq UNION SELECT"
                             " rcpt_sealed FROM inq)"), 0, "old values left");
    cr_expect_eq(raw_int(db, "SELECT (SELECT COUNT(*) FROM outq WHERE substr(sender_sealed, 1,"
                             " 1)=x'01' AND substr(rcpt_sealed, 1, 1)=x'01') + (SELECT COUNT(*)"
                             " FROM inq WHERE substr(rcpt_sealed, 1, 1)=x'01')"), 3);
    struct rl_q_out b;
    const char *want[2][2] = {{"sender.one@a.test", "rcpt.one@b.test"},
                              {"sender.two@a.test", "rcpt.two@b.test"}};
    bool seen[2] = {false, false};
    for (int i = 0; i < 2; i++) {
        cr_assert(next_bounce(q, &b));
        int w = strcmp(b.sender, want[0][0]) == 0 ? 0 : 1;
        cr_expect_str_eq(b.sender, want[w][0]);
        cr_expect_str_eq(b.recipient, want[w][1]);
        seen[w] = true;
        struct dc_err e = {0};
        cr_assert_eq(rl_queue_delete(q, b.id, &e), DC_OK, "%s", e.msg);
        rl_q_out_free(&b);
    }
    cr_expect(seen[0] && seen[1]);
    struct rl_q_in in;
    bool found = false;
    struct dc_err e = {0};
    cr_assert_eq(rl_queue_in_next(q, rl_now(), &in, &found, &e), DC_OK, "%s", e.msg);
    cr_assert(found);
    cr_expect_str_eq(in.tid, tid[0]);
    cr_expect_str_eq(in.recipient, "local.one@a.test");
    rl_q_in_free(&in);
    cr_assert_eq(rl_queue_in_done(q, tid[0], &e), DC_OK);
    cr_assert_eq(rl_queue_in_next(q, rl_now(), &in, &found, &e), DC_OK, "%s", e.msg);
    cr_expect(!found, "the damaged row is not handed out");
    rl_queue_close(q);
    snprintf(sql, sizeof(sql), "SELECT held FROM inq WHERE tid='%s'", tid[1]);
    cr_expect_eq(raw_int(db, sql), 1, "the damaged row is held");
    for (const char *const *s = (const char *const[]){"sender.one", "rcpt.two", "local.one",
                                                        NULL};
         *s; s++)
        cr_expect(!stored(db, *s), "%s is stored in clear", *s);
    rm_tmp();
}

/* A queue database as the relay wrote it before schema 1. */
static const char queue_v0[] =
    "CREATE TABLE submission(key TEXT PRIMARY KEY, sid TEXT NOT NULL, count INTEGER NOT NULL,"
    " created INTEGER NOT NULL);"
    "CREATE TABLE outq(id TEXT PRIMARY KEY, pf_qid TEXT NOT NULL, sender TEXT NOT NULL,"
    " rcpt_sealed BLOB NOT NULL, domain TEXT NOT NULL, origin TEXT NOT NULL, created INTEGER"
    " NOT NULL, next_try INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, state TEXT NOT"
    " NULL DEFAULT 'queued', held INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT"
    " '', size INTEGER NOT NULL, data BLOB NOT NULL);"
    "CREATE INDEX outq_due ON outq(state, domain, next_try);"
    "CREATE TABLE inq(tid TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, recipient TEXT NOT NULL,"
    " origin TEXT NOT NULL, created INTEGER NOT NULL, next_try INTEGER NOT NULL, attempts"
    " INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'queued', held INTEGER NOT NULL"
    " DEFAULT 0, last_error TEXT NOT NULL DEFAULT '', size INTEGER NOT NULL, data BLOB);"
    "CREATE INDEX inq_due ON inq(state, next_try);";

Test(relay_store, queue_schema0_is_converted)
{
    mkdir_tmp();
    const char *db = in_dir("q.db"), *key = in_dir("q.key");
    uint8_t k[32];
    for (int i = 0; i < 32; i++)
        k[i] = (uint8_t)(i * 7 + 1);
    int fd = open(key, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, k, 32), 32);
    close(fd);
    /* the recipient sealed the old way: no additional data */
    uint8_t sealed[OLD_OVERHEAD + 64];
    size_t sl = old_seal(k, NULL, NULL, "old.rcpt@b.test", 15, sealed);
    char hex[2 * sizeof(sealed) + 1];
    dc_hex_encode(sealed, sl, hex);
    hex[2 * sl] = '\0';
    char sql[4096];
    snprintf(sql, sizeof(sql),
             "PRAGMA journal_mode=WAL;%s"
             "INSERT INTO outq(id, pf_qid, sender, rcpt_sealed, domain, origin, created,"
             " next_try, state, size, data) VALUES('s1.1', 'PF', 'old.sender@a.test', x'%s',"
             " 'b.test', 'a.test', 1, 0, 'bounce', 1, x'41');"
             "INSERT INTO inq(tid, hash, recipient, origin, created, next_try, size, data)"
             " VALUES('t1', x'01', 'old.local@a.test', 'b.test', 1, 0, 1, x'42');"
             "INSERT INTO inq(tid, hash, recipient, origin, created, next_try, state, size)"
             " VALUES('t2', x'02', '', 'b.test', 1, 0, 'done', 0);",
             queue_v0, hex);
    raw(db, sql);
    cr_assert(stored(db, "old.sender") && stored(db, "old.local"), "setup");

    struct rl_queue *q = queue(db, key);
    struct dc_err e = {0};
    struct rl_q_out b;
    bool found = false;
    cr_assert_eq(rl_queue_bounce_next(q, rl_now(), &b, &found, &e), DC_OK);
    cr_assert(found);
    cr_expect_str_eq(b.sender, "old.sender@a.test");
    cr_expect_str_eq(b.recipient, "old.rcpt@b.test");
    rl_q_out_free(&b);
    struct rl_q_in in;
    cr_assert_eq(rl_queue_in_next(q, rl_now(), &in, &found, &e), DC_OK);
    cr_assert(found);
    cr_expect_str_eq(in.tid, "t1");
    cr_expect_str_eq(in.recipient, "old.local@a.test");
    /* schema 2: the bytes moved out of the row, and come back with it */
    cr_expect(in.len == 1 && in.data[0] == 'B', "the inbound message's bytes");
    rl_q_in_free(&in);
    rl_queue_close(q);
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM outq_data WHERE id='s1.1' AND data=x'41'"), 1);
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM inq_data"), 1, "only the queued message's");
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM pragma_table_info('outq') WHERE"
                             " name='data'"), 0);
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM pragma_table_info('inq') WHERE"
                             " name='data'"), 0);
    cr_expect(!stored(db, "old.sender"), "the old sender is left in the file");
    cr_expect(!stored(db, "old.local"), "the old recipient is left in the file");
    cr_expect_eq(raw_int(db, "PRAGMA user_version"), 3);
    cr_expect_eq(raw_int(db, "PRAGMA auto_vacuum"), 0, "an existing database keeps its layout");
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM pragma_table_info('outq') WHERE"
                             " name='sender'"), 0);
    rm_tmp();
}

/* ---- the signet cache ---- */

#define REC_TEXT "ver=1 pok=RECORDMARKER tls=x"

static struct dc_signet *bob_signet(void)
{
    struct dc_signet *s = NULL;
    struct dc_err e = {0};
    cr_assert_eq(dc_signet_load_file(vec_path("bob-bob.test.signet"), &s, &e), DC_OK, "%s",
                 e.msg);
    return s;
}

/* the entries check_cache looks for, under the names given (their case may differ) */
static void put_bob(struct rl_cache *c, const struct dc_signet *bob, const char *domain,
                    const char *addr)
{
    struct dc_err e = {0};
    cr_assert_eq(rl_cache_record_put(c, domain, REC_TEXT, 1, 2000000000, 2000000100, &e), DC_OK,
                 "%s", e.msg);
    cr_assert_eq(rl_cache_signet_put(c, addr, bob, "FINGERPRINT", 2000000000, &e), DC_OK, "%s",
                 e.msg);
}

static void check_cache(struct rl_cache *c, const struct dc_signet *bob)
{
    struct dc_err e = {0};
    struct rl_cache_record r;
    cr_assert_eq(rl_cache_record_get(c, "bob.test", &r, &e), DC_OK, "%s", e.msg);
    cr_expect_str_eq(r.text, REC_TEXT);
    cr_expect_eq(r.expires, 2000000000);
    cr_expect_eq(r.dime_until, 2000000100);
    rl_cache_record_free(&r);
    struct dc_signet *s = NULL;
    char fp[DC_FP_B64_LEN + 1];
    int64_t exp = 0;
    cr_assert_eq(rl_cache_signet_get(c, "bob@bob.test", &s, fp, &exp, &e), DC_OK, "%s", e.msg);
    cr_expect_str_eq(fp, "FINGERPRINT");
    cr_expect_eq(exp, 2000000000);
    char *b1 = dc_signet_b64(s), *b2 = dc_signet_b64(bob);
    cr_expect_str_eq(b1, b2);
    free(b1);
    free(b2);
    dc_signet_free(s);
    cr_expect_eq(rl_cache_signet_get(c, "dan@bob.test", NULL, fp, &exp, &e), DC_ERR_NOTFOUND);
}

static void check_files(const char *db)
{
    for (const char *const *s = (const char *const[]){"bob@bob.test", "bob.test", "Bob Example",
                                                        "RECORDMARKER", "FINGERPRINT", NULL};
         *s; s++)
        cr_expect(!stored(db, *s), "%s is stored in clear", *s);
}

Test(relay_store, cache_keys_by_keyed_hash_and_seals)
{
    mkdir_tmp();
    const char *db = in_dir("c.db");
    struct dc_signet *bob = bob_signet();
    struct rl_cache *c = NULL;
    struct dc_err e = {0};
    cr_assert_eq(rl_cache_open(db, &c, &e), DC_OK, "%s", e.msg);
    /* names are case-insensitive */
    put_bob(c, bob, "Bob.Test", "BOB@bob.test");
    check_cache(c, bob);
    rl_cache_close(c);
    check_files(db);
    cr_expect_eq(access(in_dir("c.db.key"), R_OK), 0, "the key beside the database");

    /* a sealed value copied to another name's row does not open there */
    cr_assert_eq(rl_cache_open(db, &c, &e), DC_OK, "%s", e.msg);
    cr_assert_eq(rl_cache_signet_put(c, "dan@bob.test", bob, "FP2", 2000000000, &e), DC_OK);
    rl_cache_close(c);
    raw(db, "CREATE TEMP TABLE s AS SELECT name, sealed FROM signets;"
            "UPDATE signets SET sealed=(SELECT sealed FROM s WHERE s.name!=signets.name)");
    cr_assert_eq(rl_cache_open(db, &c, &e), DC_OK, "%s", e.msg);
    char fp[DC_FP_B64_LEN + 1];
    int64_t exp;
    cr_expect_eq(rl_cache_signet_get(c, "dan@bob.test", NULL, fp, &exp, &e), DC_ERR_NOTFOUND);
    cr_expect_eq(rl_cache_signet_get(c, "bob@bob.test", NULL, fp, &exp, &e), DC_ERR_NOTFOUND);
    rl_cache_close(c);
    /* another key (a new key file) finds nothing; what it cannot read is dropped */
    unlink(in_dir("c.db.key"));
    cr_assert_eq(rl_cache_open(db, &c, &e), DC_OK, "%s", e.msg);
    struct rl_cache_record r;
    cr_expect_eq(rl_cache_record_get(c, "bob.test", &r, &e), DC_ERR_NOTFOUND);
    rl_cache_close(c);
    cr_expect_eq(raw_int(db, "SELECT (SELECT COUNT(*) FROM records) + (SELECT COUNT(*) FROM"
                             " signets)"), 0);
    dc_signet_free(bob);
    rm_tmp();
}

/* state = postgresql (test_relay_pg.sh runs this with DIME_TEST_PG_CONNINFO, on a database
 * of its own): two nodes, each with its own cache path and the first one's key file, share
 * the entries; both write the same name (an upsert: the last one stays); a third node with a
 * key of its own is refused. */
Test(cache_pg, two_nodes_one_cache)
{
    const char *ci = getenv("DIME_TEST_PG_CONNINFO");
    if (ci == NULL)
        cr_skip_test("DIME_TEST_PG_CONNINFO is not set (test_relay_pg.sh sets it)");
    mkdir_tmp();
    struct dc_err e = {0};
    cr_assert_eq(rl_shared_start(ci, "/test/queue.db", &e), DC_OK, "%s", e.msg);
    char db1[128], db2[128], db3[128];
    snprintf(db1, sizeof(db1), "%s", in_dir("n1.db"));
    snprintf(db2, sizeof(db2), "%s", in_dir("n2.db"));
    snprintf(db3, sizeof(db3), "%s", in_dir("n3.db"));
    struct rl_cache *c1 = NULL, *c2 = NULL, *c3 = NULL;
    cr_assert_eq(rl_cache_open(db1, &c1, &e), DC_OK, "%s", e.msg);
    /* node 2 gets node 1's key file, as the operator copies it */
    uint8_t key[32];
    cr_assert_eq(rl_seal_load_key(in_dir("n1.db.key"), key, &e), DC_OK, "%s", e.msg);
    int fd = open(in_dir("n2.db.key"), O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert(fd >= 0 && write(fd, key, sizeof(key)) == (ssize_t)sizeof(key));
    close(fd);
    cr_assert_eq(rl_cache_open(db2, &c2, &e), DC_OK, "%s", e.msg);
    struct dc_signet *bob = bob_signet();
    put_bob(c1, bob, "Bob.Test", "BOB@bob.test");
    check_cache(c2, bob);
    cr_expect_neq(access(db1, F_OK), 0, "no SQLite cache on PostgreSQL");
    cr_assert_eq(rl_cache_record_put(c2, "bob.test", "v=1 by node 2", 1, 2000000500, 0, &e),
                 DC_OK, "%s", e.msg);
    cr_assert_eq(rl_cache_record_put(c1, "BOB.test", "v=1 by node 1", 1, 2000000600, 0, &e),
                 DC_OK, "%s", e.msg);
    struct rl_cache_record r;
    cr_assert_eq(rl_cache_record_get(c2, "bob.test", &r, &e), DC_OK, "%s", e.msg);
    cr_expect_str_eq(r.text, "v=1 by node 1");
    cr_expect_eq(r.expires, 2000000600);
    rl_cache_record_free(&r);
    cr_expect(!rl_cache_failed(c1) && !rl_cache_failed(c2));
    /* a node whose key file was not copied (a new one is made) */
    cr_expect_eq(rl_cache_open(db3, &c3, &e), DC_ERR_KEY);
    cr_expect_neq(strstr(e.msg, "is not the key the domain's shared cache is sealed with"),
                  NULL, "%s", e.msg);
    rl_cache_close(c1);
    rl_cache_close(c2);
    rl_shared_stop();
    dc_signet_free(bob);
    dc_memzero(key, sizeof(key));
    rm_tmp();
}

/* An old cache at db, opened: bob's entries read back, nothing in clear, the schema current. */
static void check_converted_cache(const char *db, const struct dc_signet *bob)
{
    struct rl_cache *c = NULL;
    struct dc_err e = {0};
    cr_assert_eq(rl_cache_open(db, &c, &e), DC_OK, "%s", e.msg);
    check_cache(c, bob);
    rl_cache_close(c);
    check_files(db);
    cr_expect_eq(raw_int(db, "PRAGMA user_version"), 2);
}

Test(relay_store, cache_schema0_is_converted)
{
    mkdir_tmp();
    const char *db = in_dir("c.db");
    struct dc_signet *bob = bob_signet();
    char *b64 = dc_signet_b64(bob);
    char *sql = NULL;
    cr_assert(asprintf(&sql,
                       "PRAGMA journal_mode=WAL;"
                       "CREATE TABLE records(domain TEXT PRIMARY KEY, text TEXT NOT NULL,"
                       " dnssec INTEGER NOT NULL, expires INTEGER NOT NULL, dime_until INTEGER"
                       " NOT NULL);"
                       "CREATE TABLE signets(name TEXT PRIMARY KEY, b64 TEXT NOT NULL, fp TEXT"
                       " NOT NULL, expires INTEGER NOT NULL);"
                       "INSERT INTO records VALUES('bob.test', '" REC_TEXT "', 1, 2000000000,"
                       " 2000000100);"
                       "INSERT INTO signets VALUES('bob@bob.test', '%s', 'FINGERPRINT',"
                       " 2000000000);",
                       b64) > 0);
    raw(db, sql);
    free(sql);
    free(b64);
    cr_assert(stored(db, "bob@bob.test") && stored(db, "RECORDMARKER"), "setup");
    check_converted_cache(db, bob);
    dc_signet_free(bob);
    rm_tmp();
}

/* A cache of schema 1 sealed in the first format: converted on open, read back, and every
 * value is in the current format. */
Test(relay_store, cache_schema1_is_resealed)
{
    mkdir_tmp();
    const char *db = in_dir("c.db");
    struct dc_signet *bob = bob_signet();
    struct rl_cache *c = NULL;
    struct dc_err e = {0};
    cr_assert_eq(rl_cache_open(db, &c, &e), DC_OK, "%s", e.msg);
    put_bob(c, bob, "bob.test", "bob@bob.test");
    rl_cache_close(c);
    uint8_t k[32], vk[32];
    read_key(in_dir("c.db.key"), k);
    rl_seal_subkey(k, "dime-relayd signet cache: values", vk);
    make_old(db, vk,
             "UPDATE records SET sealed=to_old('records', name, sealed);"
             "UPDATE signets SET sealed=to_old('signets', name, sealed);"
             "CREATE TABLE old_values AS SELECT sealed AS v FROM records UNION ALL"
             " SELECT sealed FROM signets;", 1);
    check_converted_cache(db, bob);
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM old_values WHERE v IN (SELECT sealed FROM"
                             " records UNION SELECT sealed FROM signets)"), 0, "old values left");
    cr_expect_eq(raw_int(db, "SELECT (SELECT COUNT(*) FROM records WHERE substr(sealed, 1, 1)"
                             "=x'01') + (SELECT COUNT(*) FROM signets WHERE substr(sealed, 1, 1)"
                             "=x'01')"), 2);
    dc_signet_free(bob);
    rm_tmp();
}

/* With reuse on, a closed connection is kept and the next open takes it: it still holds the
 * key it read (the key file is gone here, so a new open would create another key and find
 * nothing), its kept statements leave no read transaction behind (another connection's
 * write and checkpoint go through), and what others wrote is seen. Reuse off closes it. */
Test(relay_store, cache_reuse_keeps_connections)
{
    mkdir_tmp();
    const char *db = in_dir("c.db");
    struct dc_signet *bob = bob_signet();
    struct rl_cache *c = NULL, *c2 = NULL;
    struct dc_err e = {0};
    rl_cache_reuse(db, true);
    cr_assert_eq(rl_cache_open(db, &c, &e), DC_OK, "%s", e.msg);
    put_bob(c, bob, "bob.test", "bob@bob.test");
    check_cache(c, bob);
    /* a second connection at the same time is another one */
    cr_assert_eq(rl_cache_open(db, &c2, &e), DC_OK, "%s", e.msg);
    cr_expect_neq(c, c2);
    check_cache(c2, bob);
    rl_cache_close(c2);
    rl_cache_close(c);
    unlink(in_dir("c.db.key"));
    cr_assert_eq(rl_cache_open(db, &c, &e), DC_OK, "%s", e.msg);
    check_cache(c, bob);
    /* no read transaction left by the reads above: a write and a full checkpoint from
     * another connection succeed */
    raw(db, "INSERT INTO signets VALUES('other', x'00', 1)");
    cr_expect_eq(raw_int(db, "SELECT COUNT(*) FROM signets"), 2);
    sqlite3 *h = NULL;
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    int logged = -1, done = -1;
    cr_expect_eq(sqlite3_wal_checkpoint_v2(h, NULL, SQLITE_CHECKPOINT_TRUNCATE, &logged, &done),
                 SQLITE_OK, "%s", sqlite3_errmsg(h));
    sqlite3_close(h);
    check_cache(c, bob);
    rl_cache_close(c);
    /* reuse off: the kept connection is closed, a new open creates a new key and drops what
     * it cannot read */
    rl_cache_reuse(db, false);
    cr_assert_eq(rl_cache_open(db, &c, &e), DC_OK, "%s", e.msg);
    struct rl_cache_record r;
    cr_expect_eq(rl_cache_record_get(c, "bob.test", &r, &e), DC_ERR_NOTFOUND);
    rl_cache_close(c);
    dc_signet_free(bob);
    rm_tmp();
}

/* ---- spooling of large inbound messages (rl_spool.h) ---- */

/* Which messages go to a file, and what each reserves of data-memory-limit while it arrives. */
Test(relay_store, spool_threshold_and_memory_charge)
{
    const struct {
        size_t total;
        unsigned long threshold;
        bool spooled;
        size_t charge;
    } t[] = {
        {100, 0, false, 102},                            /* 0: never spooled */
        {50000000, 0, false, 50000002},
        {1048576, 1048576, false, 1048578},              /* at the threshold: in memory */
        {1048577, 1048576, true, RL_SPOOL_CHUNK},        /* above it: the staging buffer */
        {50000000, 1048576, true, RL_SPOOL_CHUNK},
        {1001, 1000, true, 1003},                        /* never more than the message */
        {RL_SPOOL_CHUNK - 2, 10, true, RL_SPOOL_CHUNK},
        {RL_SPOOL_CHUNK, 10, true, RL_SPOOL_CHUNK},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        cr_expect_eq(rl_spool_wanted(t[i].total, t[i].threshold), t[i].spooled,
                     "%zu bytes, threshold %lu: spooled %d", t[i].total, t[i].threshold,
                     t[i].spooled);
        cr_expect_eq(rl_spool_charge(t[i].total, t[i].threshold), t[i].charge,
                     "%zu bytes, threshold %lu: charge %zu", t[i].total, t[i].threshold,
                     t[i].charge);
    }
    char d[64];
    cr_expect(rl_spool_dir("", "/var/lib/dime-relay/queue.db", d, sizeof(d)) &&
              strcmp(d, "/var/lib/dime-relay/spool") == 0, "default: spool/ beside the queue");
    cr_expect(rl_spool_dir("/srv/spool", "/var/lib/dime-relay/queue.db", d, sizeof(d)) &&
              strcmp(d, "/srv/spool") == 0, "a directory set: that one");
    cr_expect(!rl_spool_dir(NULL, "/a-very-long-directory-name/of-more-than-sixty-four-bytes-in-all/q.db",
                            d, sizeof(d)), "too long: refused");
}

/* The spool directory is made 0700 and leftovers of the fallback are removed at start; a
 * spool file is 0600 and has no name while it is open. */
Test(relay_store, spool_file_is_private_and_unnamed)
{
    mkdir_tmp();
    const char *sd = in_dir("spool"), *left = in_dir("spool/in.Ab12Cd"),
               *other = in_dir("spool/keep.txt");
    struct dc_err e = {0};
    cr_assert_eq(rl_spool_prepare(sd, &e), DC_OK, "%s", e.msg);
    struct stat st;
    cr_assert_eq(stat(sd, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0700);
    FILE *f = fopen(left, "w");
    cr_assert_not_null(f);
    fclose(f);
    f = fopen(other, "w");
    cr_assert_not_null(f);
    fclose(f);
    cr_assert_eq(rl_spool_prepare(sd, &e), DC_OK, "%s", e.msg);
    cr_expect_neq(access(left, F_OK), 0, "a leftover spool file is removed at start");
    cr_expect_eq(access(other, F_OK), 0, "other files stay");
    unlink(other);
    int fd = rl_spool_open(sd, &e);
    cr_assert_geq(fd, 0, "%s", e.msg);
    cr_assert_eq(rl_spool_write(fd, "abc", 3, &e), DC_OK, "%s", e.msg);
    cr_assert_eq(fstat(fd, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0600);
    cr_expect_eq(st.st_nlink, 0, "no name in the directory");
    cr_expect_eq(st.st_size, 3);
    cr_expect_eq(rmdir(sd), 0, "the directory is empty while the file is open");
    close(fd);
    rm_tmp();
}

/* A spooled message goes into the queue from its mapped file, in windows: the same bytes and
 * the same duplicate check as a message held in memory. */
Test(relay_store, queue_in_add_from_a_mapped_spool_file)
{
    mkdir_tmp();
    const char *db = in_dir("q.db"), *key = in_dir("q.key");
    struct rl_queue *q = queue(db, key);
    struct dc_err e = {0};
    size_t n = 3 * 1024 * 1024 + 123; /* more than two windows */
    uint8_t *big = dc_xmalloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 7 + i / 65536);
    const char *sd = in_dir("spool");
    cr_assert_eq(rl_spool_prepare(sd, &e), DC_OK, "%s", e.msg);
    int fd = rl_spool_open(sd, &e);
    cr_assert_geq(fd, 0, "%s", e.msg);
    cr_assert_eq(rl_spool_write(fd, big, n, &e), DC_OK, "%s", e.msg);
    struct dc_fmap *map = NULL;
    cr_assert_eq(dc_fmap_read(fd, n, &map, &e), DC_OK, "%s", e.msg);
    char tid[24], tid2[24];
    bool dup = true, found = false;
    cr_assert_eq(rl_queue_in_add_map(q, map->p, map->len, map, "l@a.test", "b.test", tid, &dup,
                                     &e), DC_OK, "%s", e.msg);
    cr_expect(!dup);
    dc_fmap_close(map);
    close(fd);
    cr_assert_eq(rl_queue_in_add(q, big, n, "l@a.test", "b.test", tid2, &dup, &e), DC_OK, "%s",
                 e.msg);
    cr_expect(dup && strcmp(tid, tid2) == 0, "the same bytes from memory: a duplicate");
    struct rl_q_in in;
    cr_assert_eq(rl_queue_in_next(q, rl_now(), &in, &found, &e), DC_OK, "%s", e.msg);
    cr_assert(found);
    cr_expect(in.len == n && memcmp(in.data, big, n) == 0, "the spooled message's bytes");
    rl_q_in_free(&in);
    free(big);
    rl_queue_close(q);
    rm_tmp();
}

struct count_ctx {
    unsigned out, in, bounce, held, queued;
};

static void count_one(void *ctx, const struct rl_q_entry *e)
{
    struct count_ctx *c = ctx;
    if (strcmp(e->dir, "out") == 0)
        c->out++;
    else
        c->in++;
    c->bounce += strcmp(e->state, "bounce") == 0;
    c->held += strcmp(e->state, "held") == 0;
    c->queued += strcmp(e->state, "queued") == 0;
}

static struct count_ctx count_queue(struct rl_queue *q)
{
    struct count_ctx c = {0};
    struct dc_err e = {0};
    cr_assert_eq(rl_queue_list(q, count_one, &c, &e), DC_OK, "%s", e.msg);
    return c;
}

/* dime-relayctl queue export / import: every owed message moves with its state, addresses
 * sealed under the new queue's key; a message in both queues (the source's delete lost) is
 * stored once; a row being sent stays; the wrong key stops the move. */
Test(relay_store, queue_move_between_queues)
{
    mkdir_tmp();
    char adb[128], akey[128], xdb[128], xkey[128], ydb[128], ykey[128], bdb[128], bkey[128];
    snprintf(adb, sizeof(adb), "%s", in_dir("a.db"));
    snprintf(akey, sizeof(akey), "%s", in_dir("a.key"));
    snprintf(xdb, sizeof(xdb), "%s", in_dir("x.db"));
    snprintf(xkey, sizeof(xkey), "%s", in_dir("x.key"));
    snprintf(ydb, sizeof(ydb), "%s", in_dir("y.db"));
    snprintf(ykey, sizeof(ykey), "%s", in_dir("y.key"));
    snprintf(bdb, sizeof(bdb), "%s", in_dir("b.db"));
    snprintf(bkey, sizeof(bkey), "%s", in_dir("b.key"));
    struct rl_queue *a = queue(adb, akey);
    struct dc_err e = {0};
    submit(a, "k1", "s1@a.test", "r1@b.test");
    submit(a, "k2", "s2@a.test", "r2@b.test");
    submit(a, "k3", "s3@a.test", "r3@b.test");
    submit(a, "k4", "s4@a.test", "r4@b.test");
    struct rl_q_out m1, m2;
    claim(a, &m1); /* stays: being sent */
    claim(a, &m2);
    cr_assert_eq(rl_queue_out_bounce(a, m2.id, "550 5.1.1 no", &e), DC_OK, "%s", e.msg);
    struct rl_q_out m3;
    claim(a, &m3);
    cr_assert_eq(rl_queue_out_defer(a, m3.id, rl_now() + 600, "451 later", &e), DC_OK);
    cr_assert_eq(rl_queue_hold(a, m3.id, true, &e), DC_OK, "%s", e.msg);
    char tid[24];
    add_in(a, "INBOUND ONE", "local1@a.test", tid);
    add_in(a, "INBOUND TWO", "local2@a.test", tid);

    struct rl_queue *x = queue(xdb, xkey);
    struct rl_q_moved n;
    cr_assert_eq(rl_queue_move(a, x, &n, &e), DC_OK, "%s", e.msg);
    cr_expect_eq(n.out, 3);
    cr_expect_eq(n.in, 2);
    cr_expect_eq(n.dup, 0);
    cr_expect_eq(n.sending, 1);
    struct count_ctx c = count_queue(x);
    cr_expect_eq(c.out, 3);
    cr_expect_eq(c.in, 2);
    cr_expect_eq(c.bounce, 1);
    cr_expect_eq(c.held, 1);
    c = count_queue(a);
    cr_expect_eq(c.out + c.in, 1, "only the row being sent stays");
    rl_queue_close(x);
    rl_queue_close(a);
    rl_q_out_free(&m1);
    rl_q_out_free(&m2);
    rl_q_out_free(&m3);
    for (const char *const *s = (const char *const[]){"s2@a", "r2@b", "s3@a", "local1", NULL}; *s;
         s++)
        cr_expect(!stored(xdb, *s), "%s is stored in clear in the export", *s);

    /* a copy of x made before its rows went: moving both gives every message once */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cp %s %s && cp %s %s", xdb, ydb, xkey, ykey);
    cr_assert_eq(system(cmd), 0);
    struct rl_queue *b = queue(bdb, bkey);
    x = queue(xdb, xkey);
    cr_assert_eq(rl_queue_move(x, b, &n, &e), DC_OK, "%s", e.msg);
    cr_expect_eq(n.out + n.in, 5);
    rl_queue_close(x);
    struct rl_queue *y = queue(ydb, ykey);
    cr_assert_eq(rl_queue_move(y, b, &n, &e), DC_OK, "%s", e.msg);
    cr_expect_eq(n.out + n.in, 0);
    cr_expect_eq(n.dup, 5);
    c = count_queue(y);
    cr_expect_eq(c.out + c.in, 0, "the copy is emptied too");
    rl_queue_close(y);
    c = count_queue(b);
    cr_expect_eq(c.out + c.in, 5);

    /* the addresses open under b's key: the DSN of the bounce, the injection */
    struct rl_q_out bo;
    bool found = false;
    cr_assert_eq(rl_queue_bounce_next(b, rl_now(), &bo, &found, &e), DC_OK, "%s", e.msg);
    cr_assert(found);
    cr_expect_str_eq(bo.sender, "s2@a.test");
    cr_expect_str_eq(bo.recipient, "r2@b.test");
    cr_expect_str_eq(bo.last_error, "550 5.1.1 no");
    rl_q_out_free(&bo);
    struct rl_q_in in;
    cr_assert_eq(rl_queue_in_next(b, rl_now(), &in, &found, &e), DC_OK, "%s", e.msg);
    cr_assert(found);
    cr_expect(strcmp(in.recipient, "local1@a.test") == 0 ||
              strcmp(in.recipient, "local2@a.test") == 0);
    rl_q_in_free(&in);
    rl_queue_close(b);

    /* another key: nothing opens, the move stops and says why */
    submit(a = queue(adb, akey), "k5", "s5@a.test", "r5@b.test");
    rl_queue_close(a);
    a = queue(adb, bkey);
    x = queue(in_dir("z.db"), in_dir("z.key"));
    cr_expect_eq(rl_queue_move(a, x, &n, &e), DC_ERR_CRYPTO);
    cr_expect(strstr(e.msg, "does not unseal") != NULL, "%s", e.msg);
    rl_queue_close(x);
    rl_queue_close(a);
    rm_tmp();
}

/* A signet whose cache entry expired is still held, sealed as it was, for VRFY: the signet
 * and the fingerprint it was stored under; nothing for a name without an entry, and a sealed
 * value moved to another name's row holds nothing either. */
Test(relay_store, expired_signet_is_held_for_vrfy)
{
    mkdir_tmp();
    const char *db = in_dir("h.db");
    struct dc_signet *bob = bob_signet();
    struct rl_cache *c = NULL;
    struct dc_err e = {0};
    cr_assert_eq(rl_cache_open(db, &c, &e), DC_OK, "%s", e.msg);
    cr_assert_eq(rl_cache_signet_put(c, "bob@bob.test", bob, "FPBOB", 1000, &e), DC_OK, "%s",
                 e.msg);
    struct dl_held h;
    struct dc_signet *owned = NULL;
    rl_lookup_hold(c, "Bob@Bob.Test", &h, &owned);
    cr_assert_not_null(h.sig, "an expired entry is held");
    cr_expect_eq(h.sig, owned);
    cr_expect_str_eq(h.fp, "FPBOB");
    char *b1 = dc_signet_b64(h.sig), *b2 = dc_signet_b64(bob);
    cr_expect_str_eq(b1, b2);
    free(b1);
    free(b2);
    dc_signet_free(owned);
    rl_lookup_hold(c, "dan@bob.test", &h, &owned);
    cr_expect_null(h.sig);
    cr_expect_null(owned);
    cr_expect_str_eq(h.fp, "");
    cr_assert_eq(rl_cache_signet_put(c, "dan@bob.test", bob, "FPDAN", 1000, &e), DC_OK);
    rl_cache_close(c);
    raw(db, "CREATE TEMP TABLE s AS SELECT name, sealed FROM signets;"
            "UPDATE signets SET sealed=(SELECT sealed FROM s WHERE s.name!=signets.name)");
    cr_assert_eq(rl_cache_open(db, &c, &e), DC_OK, "%s", e.msg);
    rl_lookup_hold(c, "bob@bob.test", &h, &owned);
    cr_expect_null(h.sig, "a sealed value of another row");
    cr_expect_str_eq(h.fp, "");
    rl_cache_close(c);
    dc_signet_free(bob);
    rm_tmp();
}
