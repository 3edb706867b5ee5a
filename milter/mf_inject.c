/*
 * mf_inject - the record of accepted injections (see mf_inject.h). One connection shared
 * by libmilter's threads, serialized by a mutex: each operation is one short statement.
 */
#include "mf_inject.h"

#include "dc_crypto.h"
#include "dl_sqlite.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct mf_injdb {
    sqlite3 *db;
    sqlite3_stmt *seen_st, *rec_st, *take_st; /* prepared once, on first use (under mu) */
    /* the submissions' table, on a connection of its own that does not wait for the disk
     * (mf_injdb_first_qid); opened on first use */
    sqlite3 *lazy;
    sqlite3_stmt *sub_ins, *sub_get;
    char *path;
    pthread_mutex_t mu;
    int64_t pruned; /* when expired entries were last deleted */
    int64_t sub_pruned; /* the same for submitted */
};

static enum dc_status dberr(sqlite3 *db, struct dc_err *err, const char *what)
{
    return dc_fail(err, DC_ERR_IO, "injection database: %s: %s", what,
                   db ? sqlite3_errmsg(db) : "cannot open");
}

/* At most hourly (*last: when it was last done): deletes the rows of table older than keep. */
static void prune(sqlite3 *c, const char *table, int64_t *last, int64_t now, int64_t keep)
{
    if (now - *last < 3600)
        return;
    *last = now;
    char sql[100];
    snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE created<%lld", table,
             (long long)(now - keep));
    sqlite3_exec(c, sql, NULL, NULL, NULL);
}

enum dc_status mf_injdb_open(const char *path, struct mf_injdb **out, struct dc_err *err)
{
    *out = NULL;
    sqlite3 *db = NULL;
    static const struct dl_sqlite_opts opts = {
        .what = "injection database", .flags = SQLITE_OPEN_FULLMUTEX, .mode = 0600,
        .busy_ms = 10000, .synchronous = "FULL"};
    enum dc_status s = dl_sqlite_open(path, &opts, &db, err);
    if (s != DC_OK)
        return s;
    if (sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS injected(key BLOB PRIMARY KEY,"
                         " created INTEGER NOT NULL, qid TEXT) WITHOUT ROWID;"
                         "CREATE INDEX IF NOT EXISTS injected_age ON injected(created);"
                         "CREATE TABLE IF NOT EXISTS submitted(key BLOB PRIMARY KEY,"
                         " qid TEXT NOT NULL, created INTEGER NOT NULL) WITHOUT ROWID;"
                         "CREATE INDEX IF NOT EXISTS submitted_age ON submitted(created);",
                     NULL, NULL, NULL) != SQLITE_OK) {
        s = dc_fail(err, DC_ERR_IO, "%s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return s;
    }
    /* a database from before the queue ids: its entries have none (a repeat of one is
     * discarded, as it was then) */
    sqlite3_stmt *col = NULL;
    bool has_qid = false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('injected') WHERE name='qid'",
                           -1, &col, NULL) == SQLITE_OK)
        has_qid = sqlite3_step(col) == SQLITE_ROW;
    sqlite3_finalize(col);
    if (!has_qid && sqlite3_exec(db, "ALTER TABLE injected ADD COLUMN qid TEXT", NULL, NULL,
                                 NULL) != SQLITE_OK) {
        s = dc_fail(err, DC_ERR_IO, "%s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return s;
    }
    struct mf_injdb *d = dc_xcalloc(1, sizeof(*d));
    d->db = db;
    d->path = dc_xstrdup(path);
    pthread_mutex_init(&d->mu, NULL);
    *out = d;
    return DC_OK;
}

void mf_injdb_shut(struct mf_injdb *db)
{
    if (db == NULL)
        return;
    pthread_mutex_lock(&db->mu);
    sqlite3_finalize(db->seen_st);
    sqlite3_finalize(db->rec_st);
    sqlite3_finalize(db->take_st);
    sqlite3_finalize(db->sub_ins);
    sqlite3_finalize(db->sub_get);
    db->seen_st = db->rec_st = db->take_st = db->sub_ins = db->sub_get = NULL;
    sqlite3_close(db->db);
    sqlite3_close(db->lazy);
    db->db = db->lazy = NULL;
    pthread_mutex_unlock(&db->mu);
}

void mf_injdb_close(struct mf_injdb *db)
{
    if (db == NULL)
        return;
    sqlite3_finalize(db->seen_st);
    sqlite3_finalize(db->rec_st);
    sqlite3_finalize(db->take_st);
    sqlite3_finalize(db->sub_ins);
    sqlite3_finalize(db->sub_get);
    sqlite3_close(db->db);
    sqlite3_close(db->lazy);
    pthread_mutex_destroy(&db->mu);
    free(db->path);
    free(db);
}

bool mf_inj_key(const char *value, uint8_t key[MF_INJ_KEY_LEN], char id[80])
{
    const char *v = value;
    while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
        v++;
    size_t nt = 0, ng = 0;
    while ((v[nt] >= '0' && v[nt] <= '9') || (v[nt] >= 'a' && v[nt] <= 'f'))
        nt++;
    if (nt == 0 || nt > 64 || v[nt] != '.')
        return false;
    const char *g = v + nt + 1;
    while (g[ng] >= '0' && g[ng] <= '9')
        ng++;
    if (ng == 0 || ng > 10)
        return false;
    for (const char *r = g + ng; *r; r++)
        if (*r != ' ' && *r != '\t' && *r != '\r' && *r != '\n')
            return false;
    size_t n = nt + 1 + ng;
    uint8_t h[DC_SHA512_LEN];
    dc_sha512(v, n, h);
    memcpy(key, h, MF_INJ_KEY_LEN);
    if (id) {
        memcpy(id, v, n);
        id[n] = '\0';
    }
    return true;
}

int mf_injdb_seen(struct mf_injdb *db, const uint8_t key[MF_INJ_KEY_LEN],
                  char first[MF_QID_MAX + 1], struct dc_err *err)
{
    if (first)
        first[0] = '\0';
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *st = NULL;
    int r = -1;
    if (db->db == NULL) {
        dc_fail(err, DC_ERR_IO, "injection database: closed (dime-milter is stopping)");
        pthread_mutex_unlock(&db->mu);
        return -1;
    }
    if (db->seen_st == NULL)
        sqlite3_prepare_v3(db->db, "SELECT qid FROM injected WHERE key=?", -1,
                           SQLITE_PREPARE_PERSISTENT, &db->seen_st, NULL);
    if ((st = db->seen_st) != NULL) {
        sqlite3_bind_blob(st, 1, key, MF_INJ_KEY_LEN, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
        const char *q = r == 1 ? (const char *)sqlite3_column_text(st, 0) : NULL;
        if (first && q != NULL && strlen(q) <= MF_QID_MAX)
            snprintf(first, MF_QID_MAX + 1, "%s", q);
    }
    if (r < 0)
        dberr(db->db, err, "look-up");
    if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    pthread_mutex_unlock(&db->mu);
    return r;
}

enum dc_status mf_injdb_record(struct mf_injdb *db, const uint8_t key[MF_INJ_KEY_LEN],
                               const char *qid, const char *replaces, bool *dup,
                               struct dc_err *err)
{
    *dup = false;
    int64_t now = (int64_t)time(NULL);
    enum dc_status s = DC_OK;
    pthread_mutex_lock(&db->mu);
    if (db->db == NULL) {
        pthread_mutex_unlock(&db->mu);
        return dc_fail(err, DC_ERR_IO, "injection database: closed (dime-milter is stopping)");
    }
    sqlite3_stmt **sp = replaces ? &db->take_st : &db->rec_st;
    if (*sp == NULL)
        sqlite3_prepare_v3(db->db, replaces
                           ? "UPDATE injected SET qid=?1, created=?2 WHERE key=?3 AND qid=?4"
                           : "INSERT OR IGNORE INTO injected(qid, created, key) VALUES(?1,?2,?3)",
                           -1, SQLITE_PREPARE_PERSISTENT, sp, NULL);
    sqlite3_stmt *st = *sp;
    if (st == NULL) {
        s = dberr(db->db, err, "prepare");
    } else {
        sqlite3_bind_text(st, 1, qid, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_blob(st, 3, key, MF_INJ_KEY_LEN, SQLITE_STATIC);
        if (replaces)
            sqlite3_bind_text(st, 4, replaces, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            s = dberr(db->db, err, replaces ? "update" : "insert");
        else
            *dup = sqlite3_changes(db->db) == 0;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    if (s == DC_OK)
        prune(db->db, "injected", &db->pruned, now, MF_INJ_KEEP);
    pthread_mutex_unlock(&db->mu);
    return s;
}

enum mf_inj_verdict mf_inj_repeat(const char *first, bool checked, enum mf_qstate st)
{
    if (strcmp(first, MF_INJ_WITHDRAWN) == 0)
        return MF_INJ_TAKE_OVER;
    if (first[0] == '\0' || !checked)
        return MF_INJ_DISCARD;
    return st == MF_Q_WITHDRAWN ? MF_INJ_TAKE_OVER : MF_INJ_DISCARD;
}

enum dc_status mf_injdb_first_qid(struct mf_injdb *db, const uint8_t key[MF_INJ_KEY_LEN],
                                  const char *qid, char first[MF_QID_MAX + 1], struct dc_err *err)
{
    snprintf(first, MF_QID_MAX + 1, "%s", qid);
    int64_t now = (int64_t)time(NULL);
    enum dc_status s = DC_OK;
    pthread_mutex_lock(&db->mu);
    if (db->db == NULL) {
        pthread_mutex_unlock(&db->mu);
        return dc_fail(err, DC_ERR_IO, "injection database: closed (dime-milter is stopping)");
    }
    /* Not waiting for the disk (synchronous=NORMAL): the entry has to outlive the milter
     * process, whose writes the kernel keeps, not the host. A power cut may lose the last
     * entries; a client's new attempt of such a message then goes as a new submission, and
     * if the relay had committed the first one, bob gets it twice: a duplicate, never a loss.
     * Waiting would cost an fsync per outbound message. */
    if (db->lazy == NULL) {
        static const struct dl_sqlite_opts opts = {
            .what = "injection database", .flags = SQLITE_OPEN_FULLMUTEX, .mode = 0600,
            .busy_ms = 10000, .synchronous = "NORMAL"};
        if (dl_sqlite_open(db->path, &opts, &db->lazy, err) != DC_OK) {
            db->lazy = NULL;
            pthread_mutex_unlock(&db->mu);
            return DC_ERR_IO;
        }
    }
    if (db->sub_ins == NULL)
        sqlite3_prepare_v3(db->lazy, "INSERT OR IGNORE INTO submitted(key, qid, created)"
                           " VALUES(?,?,?)", -1, SQLITE_PREPARE_PERSISTENT, &db->sub_ins, NULL);
    if (db->sub_get == NULL)
        sqlite3_prepare_v3(db->lazy, "SELECT qid FROM submitted WHERE key=?", -1,
                           SQLITE_PREPARE_PERSISTENT, &db->sub_get, NULL);
    if (db->sub_ins == NULL || db->sub_get == NULL) {
        s = dberr(db->lazy, err, "prepare");
    } else {
        sqlite3_bind_blob(db->sub_ins, 1, key, MF_INJ_KEY_LEN, SQLITE_STATIC);
        sqlite3_bind_text(db->sub_ins, 2, qid, -1, SQLITE_STATIC);
        sqlite3_bind_int64(db->sub_ins, 3, now);
        if (sqlite3_step(db->sub_ins) != SQLITE_DONE)
            s = dberr(db->lazy, err, "insert");
        sqlite3_reset(db->sub_ins);
        sqlite3_clear_bindings(db->sub_ins);
        sqlite3_bind_blob(db->sub_get, 1, key, MF_INJ_KEY_LEN, SQLITE_STATIC);
        if (s == DC_OK && sqlite3_step(db->sub_get) == SQLITE_ROW) {
            const char *q = (const char *)sqlite3_column_text(db->sub_get, 0);
            if (q != NULL && strlen(q) <= MF_QID_MAX)
                snprintf(first, MF_QID_MAX + 1, "%s", q);
        } else if (s == DC_OK) {
            s = dberr(db->lazy, err, "look-up");
        }
        sqlite3_reset(db->sub_get);
        sqlite3_clear_bindings(db->sub_get);
    }
    if (s == DC_OK)
        prune(db->lazy, "submitted", &db->sub_pruned, now, MF_SUB_KEEP);
    pthread_mutex_unlock(&db->mu);
    return s;
}
