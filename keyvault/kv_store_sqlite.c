/*
 * kv_store_sqlite - the SQLite backend of kv_store.h.
 *
 * WAL journal, synchronous=FULL, foreign keys on, a busy timeout so that dimectl and the
 * daemon can share the file. The schema is versioned in the schema_version table
 * (dl_sqlite_migrate, as kv_store_pg.c with dl_pg_migrate); migrations[] holds the SQL that
 * takes version i-1 to version i, each applied in its own transaction together with the
 * version bump. A database newer than this code is refused.
 */
#include "kv_store.h"

#include "dl_sqlite.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The read statements of the daemon's request path are prepared once and kept (reset and
 * unbound after each use, so no read transaction stays open and dimectl's writes are seen by
 * the next request); preparing them per request cost about a tenth of a request
 * (bench/keyvault, BENCHMARKS.md). */
enum sq_cached {
    SQ_DOMAIN_GET,
    SQ_USER_GET,
    SQ_GEN_CURRENT,
    SQ_GEN_NUMBER,
    SQ_GEN_BY_FP,
    SQ_NCACHED
};

struct sq_store {
    struct kv_store base; /* first: the interface */
    sqlite3 *db;
    int version;
    sqlite3_stmt *cache[SQ_NCACHED];
};

static const char *const migrations[] = {
    NULL, /* version 0: empty file */
    /* 1: domain, users, generations (signet + sealed keys or blob per generation), meta */
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);"
    "CREATE TABLE domain (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL,"
    "  signet BLOB NOT NULL, pok BLOB, enc BLOB NOT NULL, sok BLOB,"
    "  sok_perm INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE users (address TEXT PRIMARY KEY, mode INTEGER NOT NULL"
    "  CHECK (mode BETWEEN 1 AND 3), generation INTEGER NOT NULL CHECK (generation >= 1),"
    "  created INTEGER NOT NULL);"
    "CREATE TABLE generations (address TEXT NOT NULL REFERENCES users(address),"
    "  generation INTEGER NOT NULL, mode INTEGER NOT NULL CHECK (mode BETWEEN 1 AND 3),"
    "  fp TEXT NOT NULL, fp_crypto TEXT NOT NULL, signet BLOB NOT NULL, sealed BLOB,"
    "  blob BLOB, created INTEGER NOT NULL, PRIMARY KEY (address, generation));"
    "CREATE INDEX generations_fp ON generations (fp);"
    "CREATE INDEX generations_fp_crypto ON generations (fp_crypto);",
    /* 2: sealed values move to the dl_seal format (kv_store_reseal, run by the vault, which
     * holds the key); a store that has any records its values as still in the old one */
    "INSERT INTO meta (key, value) SELECT 'seal-version', x'00'"
    "  WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'master-check');",
    /* 3: the org signets a SOK rollover replaced, still answered by fingerprint (mail signed
     * before the rollover names them) */
    "CREATE TABLE org_signets (fp TEXT NOT NULL, fp_crypto TEXT NOT NULL,"
    "  signet BLOB NOT NULL, replaced INTEGER NOT NULL);"
    "CREATE INDEX org_signets_fp ON org_signets (fp);"
    "CREATE INDEX org_signets_fp_crypto ON org_signets (fp_crypto);",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])) - 1)

static enum dc_status db_fail(struct sq_store *s, struct dc_err *err, const char *what)
{
    return dc_fail(err, DC_ERR_IO, "database: %s: %s", what, sqlite3_errmsg(s->db));
}

static enum dc_status exec(struct sq_store *s, const char *sql, struct dc_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        enum dc_status st = dc_fail(err, DC_ERR_IO, "database: %s", msg ? msg : "error");
        sqlite3_free(msg);
        return st;
    }
    return DC_OK;
}

static enum dc_status prep(struct sq_store *s, const char *sql, sqlite3_stmt **st,
                           struct dc_err *err)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
        return db_fail(s, err, "prepare");
    return DC_OK;
}

/* A kept statement (see enum sq_cached): give it back with release(). */
static enum dc_status prep_cached(struct sq_store *s, enum sq_cached which, const char *sql,
                                  sqlite3_stmt **st, struct dc_err *err)
{
    if (s->cache[which] == NULL &&
        sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->cache[which],
                           NULL) != SQLITE_OK) {
        sqlite3_finalize(s->cache[which]);
        s->cache[which] = NULL;
    }
    *st = s->cache[which];
    return *st != NULL ? DC_OK : db_fail(s, err, "prepare");
}

static void release(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static enum dc_status begin(struct sq_store *s, struct dc_err *err)
{
    return exec(s, "BEGIN IMMEDIATE", err);
}

static enum dc_status commit(struct sq_store *s, struct dc_err *err)
{
    return exec(s, "COMMIT", err);
}

static void rollback(struct sq_store *s)
{
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static const struct kv_store_ops sq_ops;
static void sq_close(struct kv_store *bs);

enum dc_status kv_store_open_sqlite(const char *path, struct kv_store **out, struct dc_err *err)
{
    struct sq_store *s = dc_xcalloc(1, sizeof(*s));
    s->base.ops = &sq_ops;
    static const struct dl_sqlite_opts opts = {
        .what = "database", .flags = SQLITE_OPEN_NOMUTEX, .mode = 0600, .busy_ms = 5000,
        .synchronous = "FULL", .foreign_keys = true};
    enum dc_status st = dl_sqlite_open(path, &opts, &s->db, err);
    if (st == DC_OK)
        st = dl_sqlite_migrate(s->db, migrations, SCHEMA_VERSION, &s->version, err);
    if (st != DC_OK) {
        sq_close(&s->base);
        return st;
    }
    *out = &s->base;
    return DC_OK;
}

static void sq_close(struct kv_store *bs)
{
    struct sq_store *s = (struct sq_store *)bs;
    if (s == NULL)
        return;
    for (int i = 0; i < SQ_NCACHED; i++)
        sqlite3_finalize(s->cache[i]);
    sqlite3_close(s->db);
    free(s);
}

static int sq_schema_version(struct kv_store *bs)
{
    struct sq_store *s = (struct sq_store *)bs;
    return s->version;
}

/* ---- helpers ---- */

static uint8_t *col_blob(sqlite3_stmt *st, int i, size_t *len)
{
    const void *p = sqlite3_column_blob(st, i);
    int n = sqlite3_column_bytes(st, i);
    *len = 0;
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return NULL;
    uint8_t *b = dc_xmalloc((size_t)n + 1);
    if (n > 0)
        memcpy(b, p, (size_t)n);
    *len = (size_t)n;
    return b;
}

static void col_text(sqlite3_stmt *st, int i, char *out, size_t max)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, max + 1, "%s", t ? (const char *)t : "");
}

static int bind_blob(sqlite3_stmt *st, int i, const uint8_t *p, size_t n)
{
    if (p == NULL)
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_blob(st, i, p, (int)n, SQLITE_TRANSIENT);
}

/* ---- meta ---- */

static enum dc_status sq_meta_get(struct kv_store *bs, const char *key, uint8_t **val, size_t *len,
                                 struct dc_err *err)
{
    struct sq_store *s = (struct sq_store *)bs;
    sqlite3_stmt *st;
    enum dc_status r = prep(s, "SELECT value FROM meta WHERE key = ?", &st, err);
    if (r != DC_OK)
        return r;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *val = col_blob(st, 0, len);
    else if (rc == SQLITE_DONE)
        r = dc_fail(err, DC_ERR_NOTFOUND, "no %s setting in the database", key);
    else
        r = db_fail(s, err, "reading a setting");
    sqlite3_finalize(st);
    return r;
}

/* Writes a setting; replace or only when absent (DC_ERR_ARG when present). */
static enum dc_status meta_write(struct sq_store *s, const char *key, const uint8_t *val,
                                 size_t len, bool replace, struct dc_err *err)
{
    sqlite3_stmt *st;
    enum dc_status r = prep(s, replace ? "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
                                       : "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                            &st, err);
    if (r != DC_OK)
        return r;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    bind_blob(st, 2, val, len);
    if (sqlite3_step(st) != SQLITE_DONE)
        r = db_fail(s, err, "writing a setting");
    else if (!replace && sqlite3_changes(s->db) != 1)
        r = dc_fail(err, DC_ERR_ARG, "the %.40s setting exists", key);
    sqlite3_finalize(st);
    return r;
}

static enum dc_status sq_meta_put(struct kv_store *bs, const char *key, const uint8_t *val,
                                 size_t len, struct dc_err *err)
{
    return meta_write((struct sq_store *)bs, key, val, len, true, err);
}

static enum dc_status sq_meta_add(struct kv_store *bs, const char *key, const uint8_t *val,
                                  size_t len, struct dc_err *err)
{
    return meta_write((struct sq_store *)bs, key, val, len, false, err);
}

/* ---- domain ---- */

static enum dc_status sq_domain_get(struct kv_store *bs, struct kv_domain *out, struct dc_err *err)
{
    struct sq_store *s = (struct sq_store *)bs;
    sqlite3_stmt *st;
    memset(out, 0, sizeof(*out));
    enum dc_status r = prep_cached(s, SQ_DOMAIN_GET, "SELECT name, signet, pok, enc, sok, "
                                   "sok_perm FROM domain WHERE id = 1", &st, err);
    if (r != DC_OK)
        return r;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        col_text(st, 0, out->name, KV_NAME_MAX);
        out->signet = col_blob(st, 1, &out->signet_len);
        out->pok = col_blob(st, 2, &out->pok_len);
        out->enc = col_blob(st, 3, &out->enc_len);
        out->sok = col_blob(st, 4, &out->sok_len);
        out->sok_perm = (unsigned)sqlite3_column_int(st, 5);
    } else if (rc == SQLITE_DONE) {
        r = dc_fail(err, DC_ERR_NOTFOUND, "no domain: run 'dimectl domain init' or "
                    "'dimectl domain import' first");
    } else {
        r = db_fail(s, err, "reading the domain");
    }
    release(st);
    return r;
}

/* The domain row as d has it (inside the caller's transaction). */
static enum dc_status write_domain(struct sq_store *s, const struct kv_domain *d,
                                   struct dc_err *err)
{
    sqlite3_stmt *st;
    enum dc_status r = prep(s, "INSERT OR REPLACE INTO domain (id, name, signet, pok, enc, sok,"
                               " sok_perm) VALUES (1, ?, ?, ?, ?, ?, ?)", &st, err);
    if (r != DC_OK)
        return r;
    sqlite3_bind_text(st, 1, d->name, -1, SQLITE_STATIC);
    bind_blob(st, 2, d->signet, d->signet_len);
    bind_blob(st, 3, d->pok, d->pok_len);
    bind_blob(st, 4, d->enc, d->enc_len);
    bind_blob(st, 5, d->sok, d->sok_len);
    sqlite3_bind_int(st, 6, (int)d->sok_perm);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? DC_OK : db_fail(s, err, "writing the domain");
}

static enum dc_status sq_domain_put(struct kv_store *bs, const struct kv_domain *d, bool replace,
                                   struct dc_err *err)
{
    struct sq_store *s = (struct sq_store *)bs;
    sqlite3_stmt *st;
    enum dc_status r = begin(s, err);
    if (r != DC_OK)
        return r;
    if ((r = prep(s, "SELECT name FROM domain WHERE id = 1", &st, err)) != DC_OK) {
        rollback(s);
        return r;
    }
    int rc = sqlite3_step(st);
    char existing[KV_NAME_MAX + 1] = "";
    if (rc == SQLITE_ROW)
        col_text(st, 0, existing, KV_NAME_MAX);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW && !replace) {
        rollback(s);
        return dc_fail(err, DC_ERR_ARG, "the vault already holds domain %s", existing);
    }
    if (rc == SQLITE_ROW && strcmp(existing, d->name) != 0) {
        rollback(s);
        return dc_fail(err, DC_ERR_ARG, "the vault holds domain %s, not %s", existing, d->name);
    }
    if ((r = write_domain(s, d, err)) == DC_OK)
        r = commit(s, err);
    if (r != DC_OK)
        rollback(s);
    return r;
}

static enum dc_status sq_domain_rollover(struct kv_store *bs, const struct kv_domain *d,
                                         const uint8_t *prev, size_t prev_len,
                                         const char *prev_fp, const char *prev_fpc,
                                         struct dc_err *err)
{
    struct sq_store *s = (struct sq_store *)bs;
    sqlite3_stmt *st;
    /* the replaced SOK's sealed bytes are overwritten with zeros where SQLite frees them */
    enum dc_status r = exec(s, "PRAGMA secure_delete = ON", err);
    if (r == DC_OK)
        r = begin(s, err);
    if (r != DC_OK)
        return r;
    if ((r = prep(s, "SELECT signet, name FROM domain WHERE id = 1", &st, err)) != DC_OK) {
        rollback(s);
        return r;
    }
    int rc = sqlite3_step(st);
    bool same = rc == SQLITE_ROW && (size_t)sqlite3_column_bytes(st, 0) == prev_len &&
                memcmp(sqlite3_column_blob(st, 0), prev, prev_len) == 0 &&
                strcmp((const char *)sqlite3_column_text(st, 1), d->name) == 0;
    sqlite3_finalize(st);
    if (!same) {
        rollback(s);
        return rc == SQLITE_ROW ? dc_fail(err, DC_ERR_ORDER, "the org signet changed meanwhile "
                                          "(a concurrent rollover?)")
                                : db_fail(s, err, "reading the domain");
    }
    if ((r = prep(s, "INSERT INTO org_signets (fp, fp_crypto, signet, replaced)"
                     " VALUES (?, ?, ?, ?)", &st, err)) != DC_OK) {
        rollback(s);
        return r;
    }
    sqlite3_bind_text(st, 1, prev_fp, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, prev_fpc, -1, SQLITE_STATIC);
    bind_blob(st, 3, prev, prev_len);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    r = rc == SQLITE_DONE ? write_domain(s, d, err) : db_fail(s, err, "keeping the org signet");
    if (r == DC_OK)
        r = commit(s, err);
    if (r != DC_OK) {
        rollback(s);
        return r;
    }
    /* and the copy in the write-ahead log goes with the checkpoint */
    sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    return DC_OK;
}

static enum dc_status sq_org_signet_by_fp(struct kv_store *bs, const char *fp, uint8_t **bin,
                                          size_t *len, struct dc_err *err)
{
    struct sq_store *s = (struct sq_store *)bs;
    sqlite3_stmt *st;
    enum dc_status r = prep(s, "SELECT signet FROM org_signets WHERE fp = ?1 OR fp_crypto = ?1"
                               " ORDER BY replaced DESC LIMIT 1", &st, err);
    if (r != DC_OK)
        return r;
    sqlite3_bind_text(st, 1, fp, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *bin = col_blob(st, 0, len);
    else if (rc == SQLITE_DONE)
        r = dc_fail(err, DC_ERR_NOTFOUND, "no org signet with that fingerprint");
    else
        r = db_fail(s, err, "reading a replaced org signet");
    sqlite3_finalize(st);
    return r;
}

/* ---- users ---- */

static void read_user(sqlite3_stmt *st, struct kv_user *u)
{
    col_text(st, 0, u->address, KV_NAME_MAX);
    u->mode = (enum kv_mode)sqlite3_column_int(st, 1);
    u->generation = (uint32_t)sqlite3_column_int64(st, 2);
    u->created = sqlite3_column_int64(st, 3);
}

static enum dc_status sq_user_get(struct kv_store *bs, const char *address, struct kv_user *out,
                                 struct dc_err *err)
{
    struct sq_store *s = (struct sq_store *)bs;
    sqlite3_stmt *st;
    memset(out, 0, sizeof(*out));
    enum dc_status r = prep_cached(s, SQ_USER_GET, "SELECT address, mode, generation, created "
                                   "FROM users WHERE address = ?", &st, err);
    if (r != DC_OK)
        return r;
    sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_user(st, out);
    else if (rc == SQLITE_DONE)
        r = dc_fail(err, DC_ERR_NOTFOUND, "no user %.254s", address);
    else
        r = db_fail(s, err, "reading a user");
    release(st);
    return r;
}

static enum dc_status sq_user_list(struct kv_store *bs, struct kv_user **out, size_t *n,
                                  struct dc_err *err)
{
    struct sq_store *s = (struct sq_store *)bs;
    sqlite3_stmt *st;
    enum dc_status r = prep(s, "SELECT address, mode, generation, created FROM users "
                               "ORDER BY address", &st, err);
    if (r != DC_OK)
        return r;
    struct kv_user *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            cap = cap ? 2 * cap : 16;
            v = dc_xrealloc(v, cap * sizeof(*v));
        }
        memset(&v[cnt], 0, sizeof(v[cnt]));
        read_user(st, &v[cnt++]);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(v);
        return db_fail(s, err, "listing users");
    }
    *out = v;
    *n = cnt;
    return DC_OK;
}

static enum dc_status insert_gen(struct sq_store *s, const char *address,
                                 const struct kv_generation *g, struct dc_err *err)
{
    sqlite3_stmt *st;
    enum dc_status r = prep(s, "INSERT INTO generations (address, generation, mode, fp, "
                               "fp_crypto, signet, sealed, blob, created) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", &st, err);
    if (r != DC_OK)
        return r;
    sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, g->generation);
    sqlite3_bind_int(st, 3, (int)g->mode);
    sqlite3_bind_text(st, 4, g->fp, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, g->fp_crypto, -1, SQLITE_STATIC);
    bind_blob(st, 6, g->signet, g->signet_len);
    bind_blob(st, 7, g->sealed, g->sealed_len);
    bind_blob(st, 8, g->blob, g->blob_len);
    sqlite3_bind_int64(st, 9, g->created ? g->created : (int64_t)time(NULL));
    if (sqlite3_step(st) != SQLITE_DONE)
        r = db_fail(s, err, "writing a key generation");
    sqlite3_finalize(st);
    return r;
}

static enum dc_status sq_user_add(struct kv_store *bs, const struct kv_user *u,
                                 const struct kv_generation *g, struct dc_err *err)
{
    struct sq_store *s = (struct sq_store *)bs;
    if (g->generation != 1 || u->generation != 1)
        return dc_fail(err, DC_ERR_ARG, "a new user starts at generation 1");
    enum dc_status r = begin(s, err);
    if (r != DC_OK)
        return r;
    sqlite3_stmt *st;
    if ((r = prep(s, "INSERT INTO users (address, mode, generation, created) "
                     "VALUES (?, ?, 1, ?)", &st, err)) != DC_OK) {
        rollback(s);
        return r;
    }
    sqlite3_bind_text(st, 1, u->address, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, (int)u->mode);
    sqlite3_bind_int64(st, 3, u->created ? u->created : (int64_t)time(NULL));
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT) {
        rollback(s);
        return dc_fail(err, DC_ERR_ARG, "user %s already exists", u->address);
    }
    if (rc != SQLITE_DONE) {
        r = db_fail(s, err, "adding a user");
        rollback(s);
        return r;
    }
    if ((r = insert_gen(s, u->address, g, err)) == DC_OK)
        r = commit(s, err);
    if (r != DC_OK)
        rollback(s);
    return r;
}

static enum dc_status sq_user_rotate(struct kv_store *bs, const char *address, uint32_t prev,
                                    const struct kv_generation *g, struct dc_err *err)
{
    struct sq_store *s = (struct sq_store *)bs;
    if (g->generation != prev + 1)
        return dc_fail(err, DC_ERR_ARG, "generation %u does not follow %u", g->generation, prev);
    enum dc_status r = begin(s, err);
    if (r != DC_OK)
        return r;
    sqlite3_stmt *st;
    if ((r = prep(s, "UPDATE users SET generation = ?, mode = ? WHERE address = ? AND "
                     "generation = ?", &st, err)) != DC_OK) {
        rollback(s);
        return r;
    }
    sqlite3_bind_int64(st, 1, g->generation);
    sqlite3_bind_int(st, 2, (int)g->mode);
    sqlite3_bind_text(st, 3, address, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, prev);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        r = db_fail(s, err, "updating a user");
        rollback(s);
        return r;
    }
    if (sqlite3_changes(s->db) != 1) {
        rollback(s);
        return dc_fail(err, DC_ERR_ORDER, "user %s is not at generation %u (changed "
                       "concurrently, or absent)", address, prev);
    }
    if ((r = insert_gen(s, address, g, err)) == DC_OK)
        r = commit(s, err);
    if (r != DC_OK)
        rollback(s);
    return r;
}

static enum dc_status sq_user_retire(struct kv_store *bs, const char *address, uint32_t below,
                                    size_t *removed, struct dc_err *err)
{
    struct sq_store *s = (struct sq_store *)bs;
    enum dc_status r = begin(s, err);
    if (r != DC_OK)
        return r;
    sqlite3_stmt *st;
    if ((r = prep(s, "UPDATE generations SET sealed = NULL, blob = NULL WHERE address = ? "
                     "AND generation < ? AND (sealed IS NOT NULL OR blob IS NOT NULL)", &st,
                  err)) != DC_OK) {
        rollback(s);
        return r;
    }
    sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, below);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        r = db_fail(s, err, "retiring keys");
        rollback(s);
        return r;
    }
    *removed = (size_t)sqlite3_changes(s->db);
    if ((r = commit(s, err)) != DC_OK) {
        rollback(s);
        return r;
    }
    /* secure_delete zeroed the freed bytes in the pages the update wrote; the database file
     * still holds the pages before it, and the write-ahead log both versions, until a
     * checkpoint copies the new pages back and empties the log */
    if (*removed > 0)
        sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    return DC_OK;
}

/* ---- generations ---- */

#define GEN_COLS "generation, mode, fp, fp_crypto, signet, sealed, blob, created"

static void read_gen(sqlite3_stmt *st, struct kv_generation *g)
{
    memset(g, 0, sizeof(*g));
    g->generation = (uint32_t)sqlite3_column_int64(st, 0);
    g->mode = (enum kv_mode)sqlite3_column_int(st, 1);
    col_text(st, 2, g->fp, KV_FPSTR_LEN);
    col_text(st, 3, g->fp_crypto, KV_FPSTR_LEN);
    g->signet = col_blob(st, 4, &g->signet_len);
    g->sealed = col_blob(st, 5, &g->sealed_len);
    g->blob = col_blob(st, 6, &g->blob_len);
    g->created = sqlite3_column_int64(st, 7);
}

static enum dc_status one_gen(struct sq_store *s, sqlite3_stmt *st, const char *address,
                              struct kv_generation *out, struct dc_err *err)
{
    int rc = sqlite3_step(st);
    enum dc_status r = DC_OK;
    if (rc == SQLITE_ROW)
        read_gen(st, out);
    else if (rc == SQLITE_DONE)
        r = dc_fail(err, DC_ERR_NOTFOUND, "no such key generation of %.254s", address);
    else
        r = db_fail(s, err, "reading a key generation");
    release(st);
    return r;
}

static enum dc_status sq_gen_get(struct kv_store *bs, const char *address, uint32_t generation,
                                struct kv_generation *out, struct dc_err *err)
{
    struct sq_store *s = (struct sq_store *)bs;
    sqlite3_stmt *st;
    memset(out, 0, sizeof(*out));
    enum dc_status r;
    if (generation == 0)
        r = prep_cached(s, SQ_GEN_CURRENT, "SELECT " GEN_COLS " FROM generations WHERE "
                        "address = ?1 AND generation = (SELECT generation FROM users WHERE "
                        "address = ?1)", &st, err);
    else
        r = prep_cached(s, SQ_GEN_NUMBER, "SELECT " GEN_COLS " FROM generations WHERE "
                        "address = ?1 AND generation = ?2", &st, err);
    if (r != DC_OK)
        return r;
    sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
    if (generation != 0)
        sqlite3_bind_int64(st, 2, generation);
    return one_gen(s, st, address, out, err);
}

static enum dc_status sq_gen_by_fp(struct kv_store *bs, const char *address, const char *fp,
                                  struct kv_generation *out, struct dc_err *err)
{
    struct sq_store *s = (struct sq_store *)bs;
    sqlite3_stmt *st;
    memset(out, 0, sizeof(*out));
    enum dc_status r = prep_cached(s, SQ_GEN_BY_FP, "SELECT " GEN_COLS " FROM generations "
                                   "WHERE address = ?1 AND (fp = ?2 OR fp_crypto = ?2)", &st,
                                   err);
    if (r != DC_OK)
        return r;
    sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, fp, -1, SQLITE_STATIC);
    return one_gen(s, st, address, out, err);
}

static enum dc_status sq_gen_list(struct kv_store *bs, const char *address,
                                 struct kv_generation **out, size_t *n, struct dc_err *err)
{
    struct sq_store *s = (struct sq_store *)bs;
    sqlite3_stmt *st;
    enum dc_status r = prep(s, "SELECT " GEN_COLS " FROM generations WHERE address = ? "
                               "ORDER BY generation", &st, err);
    if (r != DC_OK)
        return r;
    sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
    struct kv_generation *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            cap = cap ? 2 * cap : 8;
            v = dc_xrealloc(v, cap * sizeof(*v));
        }
        read_gen(st, &v[cnt++]);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        kv_generations_free(v, cnt);
        return db_fail(s, err, "listing key generations");
    }
    *out = v;
    *n = cnt;
    return DC_OK;
}

/* ---- conversion of the sealed values ---- */

/* Where the sealed values are: a query for name, generation, bytes and rowid of each, and the
 * update writing new bytes by rowid. */
static const struct {
    const char *what, *select, *update;
} sealed_cols[] = {
    {"master-check", "SELECT '', 0, value, rowid FROM meta WHERE key = 'master-check'",
     "UPDATE meta SET value = ? WHERE rowid = ?"},
    {"org-pok", "SELECT name, 0, pok, id FROM domain WHERE pok IS NOT NULL",
     "UPDATE domain SET pok = ? WHERE id = ?"},
    {"org-enc", "SELECT name, 0, enc, id FROM domain WHERE enc IS NOT NULL",
     "UPDATE domain SET enc = ? WHERE id = ?"},
    {"org-sok", "SELECT name, 0, sok, id FROM domain WHERE sok IS NOT NULL",
     "UPDATE domain SET sok = ? WHERE id = ?"},
    {"user-key", "SELECT address, generation, sealed, rowid FROM generations"
     " WHERE sealed IS NOT NULL", "UPDATE generations SET sealed = ? WHERE rowid = ?"},
};

/* Converts the values of sealed_cols[k]: all rows are read first, then written. */
static enum dc_status reseal_col(struct sq_store *s, size_t k, kv_reseal_fn fn, void *ctx,
                                 struct dc_err *err)
{
    sqlite3_stmt *st, *up = NULL;
    enum dc_status r = prep(s, sealed_cols[k].select, &st, err);
    if (r != DC_OK)
        return r;
    struct dc_buf conv; /* per row: rowid, length, bytes */
    dc_buf_init(&conv);
    int rc = SQLITE_DONE;
    while (r == DC_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        char name[KV_NAME_MAX + 1];
        col_text(st, 0, name, KV_NAME_MAX);
        uint8_t *out = NULL;
        size_t ol = 0;
        r = fn(ctx, sealed_cols[k].what, name, (uint32_t)sqlite3_column_int64(st, 1),
               sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2), &out, &ol, err);
        if (r != DC_OK)
            break;
        int64_t id = sqlite3_column_int64(st, 3);
        dc_buf_append(&conv, &id, sizeof(id));
        dc_buf_append(&conv, &ol, sizeof(ol));
        dc_buf_append(&conv, out, ol);
        free(out);
    }
    if (r == DC_OK && rc != SQLITE_DONE)
        r = db_fail(s, err, "reading sealed values");
    sqlite3_finalize(st);
    if (r == DC_OK)
        r = prep(s, sealed_cols[k].update, &up, err);
    for (size_t at = 0; r == DC_OK && at < conv.len;) {
        int64_t id;
        size_t ol;
        memcpy(&id, conv.data + at, sizeof(id));
        memcpy(&ol, conv.data + at + sizeof(id), sizeof(ol));
        at += sizeof(id) + sizeof(ol);
        sqlite3_reset(up);
        bind_blob(up, 1, (const uint8_t *)conv.data + at, ol);
        sqlite3_bind_int64(up, 2, id);
        at += ol;
        if (sqlite3_step(up) != SQLITE_DONE)
            r = db_fail(s, err, "writing a converted sealed value");
    }
    sqlite3_finalize(up);
    dc_buf_free(&conv);
    return r;
}

static enum dc_status sq_reseal(struct kv_store *bs, unsigned version, kv_reseal_fn fn,
                                void *ctx, struct dc_err *err)
{
    struct sq_store *s = (struct sq_store *)bs;
    unsigned have;
    /* the usual case, without taking the write lock: nothing to do */
    enum dc_status r = kv_store_seal_version(bs, &have, err);
    if (r != DC_OK || have == version)
        return r;
    if ((r = begin(s, err)) != DC_OK)
        return r;
    r = kv_store_seal_version(bs, &have, err);
    if (r == DC_OK && have > version)
        r = dc_fail(err, DC_ERR_FORMAT, "database: sealed values in format %u, this program "
                    "knows %u", have, version);
    if (r != DC_OK || have == version) {
        rollback(s);
        return r;
    }
    for (size_t k = 0; r == DC_OK && k < sizeof(sealed_cols) / sizeof(sealed_cols[0]); k++)
        r = reseal_col(s, k, fn, ctx, err);
    uint8_t nv = (uint8_t)version;
    if (r == DC_OK)
        r = sq_meta_put(bs, "seal-version", &nv, 1, err);
    if (r == DC_OK)
        r = commit(s, err);
    if (r != DC_OK)
        rollback(s);
    return r;
}

static const struct kv_store_ops sq_ops = {
    .close = sq_close,
    .schema_version = sq_schema_version,
    .meta_get = sq_meta_get,
    .meta_put = sq_meta_put,
    .meta_add = sq_meta_add,
    .domain_get = sq_domain_get,
    .domain_put = sq_domain_put,
    .domain_rollover = sq_domain_rollover,
    .org_signet_by_fp = sq_org_signet_by_fp,
    .user_get = sq_user_get,
    .user_list = sq_user_list,
    .user_add = sq_user_add,
    .user_rotate = sq_user_rotate,
    .user_retire = sq_user_retire,
    .gen_get = sq_gen_get,
    .gen_by_fp = sq_gen_by_fp,
    .gen_list = sq_gen_list,
    .reseal = sq_reseal,
};
