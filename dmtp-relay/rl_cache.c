/*
 * rl_cache - the signet and record cache, in SQLite or (state = postgresql) in the domain's
 * shared PostgreSQL. See rl_cache.h.
 */
#include "rl_cache.h"

#include "dl_pg.h"
#include "dl_sqlite.h"
#include "rl_seal.h"
#include "rl_shared.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* the statements, prepared on first use and kept with the connection */
enum { ST_RECORD_GET, ST_RECORD_PUT, ST_SIGNET_GET, ST_SIGNET_PUT, ST_COUNT };
static const char *const stmt_sql[ST_COUNT] = {
    [ST_RECORD_GET] = "SELECT sealed, dnssec, expires, dime_until FROM records WHERE name = ?",
    [ST_RECORD_PUT] = "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?)",
    [ST_SIGNET_GET] = "SELECT sealed, expires FROM signets WHERE name = ?",
    [ST_SIGNET_PUT] = "INSERT OR REPLACE INTO signets VALUES (?, ?, ?)",
};
/* the same on PostgreSQL (rl_shared.c's migration 3): an upsert, as two nodes may store the
 * same name at once (the last one's entry stays, as with two lookup threads here) */
static const char *const pg_sql[ST_COUNT] = {
    [ST_RECORD_GET] = "SELECT sealed, dnssec, expires, dime_until FROM relay_cache_records"
                      " WHERE name = $1",
    [ST_RECORD_PUT] = "INSERT INTO relay_cache_records AS r VALUES ($1, $2, $3, $4, $5)"
                      " ON CONFLICT (name) DO UPDATE SET sealed = $2, dnssec = $3,"
                      " expires = $4, dime_until = $5",
    [ST_SIGNET_GET] = "SELECT sealed, expires FROM relay_cache_signets WHERE name = $1",
    [ST_SIGNET_PUT] = "INSERT INTO relay_cache_signets AS r VALUES ($1, $2, $3)"
                      " ON CONFLICT (name) DO UPDATE SET sealed = $2, expires = $3",
};
/* The key check value: the first node to open the shared cache stores its key's, every
 * other open compares (one statement: the insert's row, or the stored one). */
#define PG_KEY_CHECK "WITH n AS (INSERT INTO relay_cache_key VALUES (1, $1, $2)"               \
                     " ON CONFLICT (id) DO NOTHING RETURNING check_value)"                     \
                     " SELECT check_value FROM n UNION ALL"                                     \
                     " SELECT check_value FROM relay_cache_key WHERE id = 1"
#define PG_KEY_STORED "SELECT check_value FROM relay_cache_key WHERE id = 1"

struct rl_cache {
    sqlite3 *db;          /* state = sqlite */
    struct dl_pg *pg;     /* state = postgresql: a connection of rl_shared's pool */
    bool failed;          /* a read failed (not: found nothing) since the open */
    uint8_t name_key[32]; /* keyed hashes of the names (row keys) */
    uint8_t seal_key[32]; /* sealed values */
    bool converted;       /* this open ran to_v1 */
    char *path;           /* as opened, to find its reuse slot on close */
    sqlite3_stmt *st[ST_COUNT];
};

/* Connections kept for reuse (rl_cache_reuse): per database path (DL_POOL_KEYS of them), up
 * to 16 idle ones. An open of a cache then costs no key file read, no SQLite open, schema
 * check or statement preparation; bob's relay opened one per lookup and per inbound check (4
 * per relayed message in bench/pipeline). */
static struct dl_pool reuse = DL_POOL_INIT(DL_POOL_KEYS * 16, 16, true);

/* Schema version (PRAGMA user_version); see to_v1. */
#define CACHE_VERSION 2
#define RECORDS "records(name TEXT PRIMARY KEY, sealed BLOB NOT NULL, dnssec INTEGER NOT NULL," \
                " expires INTEGER NOT NULL, dime_until INTEGER NOT NULL)"
#define SIGNETS "signets(name TEXT PRIMARY KEY, sealed BLOB NOT NULL, expires INTEGER NOT NULL)"
/* the labels sealed values are bound to (with the row's name hash) */
#define L_RECORD "records"
#define L_SIGNET "signets"

static enum dc_status db_fail(struct rl_cache *c, struct dc_err *err, const char *what)
{
    return dc_fail(err, DC_ERR_IO, "signet cache: %s: %s", what, sqlite3_errmsg(c->db));
}

/* The hex check value of a cache key (a subkey of its own: it tells nothing of the others). */
static void key_check_value(const uint8_t key[32], char out[33])
{
    uint8_t kcv[32];
    rl_seal_subkey(key, "dime-relayd signet cache: key check", kcv);
    dc_hex_encode(kcv, 16, out);
    dc_memzero(kcv, sizeof(kcv));
}

/* Schema 0 keyed both tables by the name in clear (lower case) and stored the record text,
 * the signet (base64) and its fingerprint in clear. Schema 1 keys them by rl_seal_name and
 * seals the rest. The rows are converted, not dropped: a cached user fingerprint is what a
 * changed signet is checked against, and dime_until outlives the record. */
static bool to_v1(sqlite3 *db, int from, void *ctx)
{
    (void)from;
    struct rl_cache *c = ctx;
    c->converted = true;
    rl_seal_sql_functions(db, c->seal_key, c->name_key);
    return rl_sql_convert(db, "records", "domain",
                          "ALTER TABLE records RENAME TO records_v0;"
                          "CREATE TABLE " RECORDS ";"
                          "INSERT INTO records SELECT rl_name(domain), rl_seal('" L_RECORD "',"
                          " rl_name(domain), text), dnssec, expires, dime_until FROM records_v0;"
                          "DROP TABLE records_v0;") &&
           rl_sql_convert(db, "signets", "b64",
                          "ALTER TABLE signets RENAME TO signets_v0;"
                          "CREATE TABLE " SIGNETS ";"
                          "INSERT INTO signets SELECT rl_name(name), rl_seal('" L_SIGNET "',"
                          " rl_name(name), fp || char(10) || b64), expires FROM signets_v0;"
                          "DROP TABLE signets_v0;");
}

/* Schema 1 sealed in the relay's first format, schema 2 in daemonlib's (dl_seal.h). An entry
 * that does not open stays as it was: it reads as absent and is looked up again. */
static bool to_v2(sqlite3 *db, struct rl_cache *c)
{
    rl_seal_sql_functions(db, c->seal_key, c->name_key);
    return sqlite3_exec(db, "UPDATE records SET sealed=rl_reseal_bound('" L_RECORD "', name,"
                            " sealed);"
                            "UPDATE signets SET sealed=rl_reseal_bound('" L_SIGNET "', name,"
                            " sealed);",
                        NULL, NULL, NULL) == SQLITE_OK;
}

/* A new cache is created in the current schema and only gets the number; schema 0 goes to
 * the current format in to_v1 directly. */
static bool upgrade(sqlite3 *db, int from, void *ctx)
{
    return from == 0 ? to_v1(db, from, ctx) : to_v2(db, ctx);
}

static void really_close(struct rl_cache *c);

static enum dc_status open_fail(struct rl_cache *c, enum dc_status s)
{
    really_close(c);
    return s;
}

static void really_close(struct rl_cache *c)
{
    for (unsigned i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close(c->db);
    rl_shared_give(c->pg);
    free(c->path);
    dc_memzero(c, sizeof(*c));
    free(c);
}

static void close_idle(void *c)
{
    really_close(c);
}

void rl_cache_reuse(const char *path, bool keep)
{
    dl_pool_keep(&reuse, path, keep, close_idle);
}

static enum dc_status open_sqlite(struct rl_cache *c, const char *path, bool fresh,
                                  struct dc_err *err)
{
    static const struct dl_sqlite_opts opts = {
        .what = "signet cache", .flags = SQLITE_OPEN_NOMUTEX, .busy_ms = 5000,
        .synchronous = "FULL"};
    enum dc_status s;
    if ((s = dl_sqlite_open(path, &opts, &c->db, err)) != DC_OK)
        return s;
    char *msg = NULL;
    int rc = dl_sqlite_exec_retry(c->db, "CREATE TABLE IF NOT EXISTS " RECORDS ";"
                                         "CREATE TABLE IF NOT EXISTS " SIGNETS ";",
                                  opts.busy_ms, &msg);
    if (rc != SQLITE_OK) {
        s = dc_fail(err, DC_ERR_IO, "signet cache %s: schema: %s", path,
                    msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return s;
    }
    s = rl_seal_upgrade(c->db, "signet cache", CACHE_VERSION, upgrade, c, err);
    if (s != DC_OK)
        return s;
    if (fresh && !c->converted &&
        sqlite3_exec(c->db, "DELETE FROM records; DELETE FROM signets;", NULL, NULL, NULL) !=
            SQLITE_OK)
        return db_fail(c, err, "dropping entries of a lost key");
    return DC_OK;
}

/* state = postgresql: a connection of the shared state's pool, and the key compared with the
 * one the domain's cache is sealed with (the first node's). A node with another key would
 * read every entry as absent and overwrite the others' entries with ones they cannot read. */
static enum dc_status open_pg(struct rl_cache *c, const char *path, const char *kcv,
                              struct dc_err *err)
{
    enum dc_status s = rl_shared_take(&c->pg, err);
    if (s != DC_OK)
        return s;
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, kcv);
    dl_pg_arg_int(&a, time(NULL));
    PGresult *r = NULL;
    if ((s = dl_pg_exec(c->pg, PG_KEY_CHECK, &a, &r, err)) != DC_OK)
        return s;
    /* no row: another node's first insert committed while this statement waited for it,
     * after this statement's snapshot was taken; a new statement sees it */
    if (dl_pg_rows(r) == 0) {
        PQclear(r);
        r = NULL;
        if ((s = dl_pg_exec(c->pg, PG_KEY_STORED, NULL, &r, err)) != DC_OK)
            return s;
    }
    char stored[33] = "";
    if (dl_pg_rows(r) >= 1)
        dl_pg_text(r, 0, 0, stored, sizeof(stored));
    PQclear(r);
    if (strcmp(stored, kcv) != 0)
        return dc_fail(err, DC_ERR_KEY, "signet cache: the key file %.150s.key is not the key "
                       "the domain's shared cache is sealed with (its check value in "
                       "PostgreSQL, relay_cache_key, differs): copy the key file of a running "
                       "node here (dime-relayd(8) SEVERAL NODES)", path);
    return DC_OK;
}

enum dc_status rl_cache_open(const char *path, struct rl_cache **out, struct dc_err *err)
{
    *out = dl_pool_take(&reuse, path);
    if (*out != NULL)
        return DC_OK;
    struct rl_cache *c = dc_xcalloc(1, sizeof(*c));
    c->path = dc_xstrdup(path);
    size_t pl = strlen(path);
    char *kpath = dc_xmalloc(pl + 5);
    snprintf(kpath, pl + 5, "%s.key", path);
    uint8_t key[32];
    /* a new key opens none of the sealed rows there may be: in SQLite they are dropped, by
     * the one open that created it (others opening at the same time use that key already);
     * in PostgreSQL the key check refuses it (the rows are the other nodes' too) */
    bool fresh = false;
    enum dc_status s = rl_seal_load_key_created(kpath, key, &fresh, err);
    free(kpath);
    if (s != DC_OK)
        return open_fail(c, s);
    rl_seal_subkey(key, "dime-relayd signet cache: names", c->name_key);
    rl_seal_subkey(key, "dime-relayd signet cache: values", c->seal_key);
    char kcv[33];
    key_check_value(key, kcv);
    dc_memzero(key, sizeof(key));
    s = rl_shared_on() ? open_pg(c, path, kcv, err) : open_sqlite(c, path, fresh, err);
    if (s != DC_OK)
        return open_fail(c, s);
    *out = c;
    return DC_OK;
}

void rl_cache_close(struct rl_cache *c)
{
    if (c == NULL)
        return;
    /* only a connection that opened completely and holds no transaction is kept */
    c->failed = false;
    if ((c->db == NULL && c->pg == NULL) || c->path == NULL ||
        (c->db != NULL && !sqlite3_get_autocommit(c->db)) || !dl_pool_give(&reuse, c->path, c))
        really_close(c);
}

/* The kept statement k, reset and unbound; NULL (and the error in err) when it does not
 * prepare. */
static sqlite3_stmt *stmt(struct rl_cache *c, unsigned k)
{
    if (c->st[k] == NULL &&
        sqlite3_prepare_v3(c->db, stmt_sql[k], -1, SQLITE_PREPARE_PERSISTENT, &c->st[k],
                           NULL) != SQLITE_OK) {
        c->st[k] = NULL;
        return NULL;
    }
    return c->st[k];
}

/* the end of one use of a kept statement: no read transaction stays open, no bound value
 * (a sealed value) stays with it */
static void done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* One row of either table as stored: the sealed value and the integer columns after it. */
struct row {
    uint8_t *sealed; /* malloc'd */
    size_t len;
    int64_t v[3];
};

/* Reads the row named k with statement st (ST_RECORD_GET or ST_SIGNET_GET, nv integer
 * columns): DC_OK, DC_ERR_NOTFOUND, or DC_ERR_IO (then the cache is marked failed). */
static enum dc_status row_get(struct rl_cache *c, unsigned st, const char *k, int nv,
                              struct row *out, struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    enum dc_status s = DC_OK;
    if (c->pg != NULL) {
        struct dl_pg_args a = {0};
        dl_pg_arg_text(&a, k);
        PGresult *r = NULL;
        if ((s = dl_pg_exec(c->pg, pg_sql[st], &a, &r, err)) == DC_OK) {
            if (dl_pg_rows(r) == 1) {
                out->sealed = dl_pg_bytes(r, 0, 0, &out->len);
                for (int i = 0; i < nv; i++)
                    out->v[i] = dl_pg_int(r, 0, i + 1);
            } else {
                s = DC_ERR_NOTFOUND;
            }
        }
        PQclear(r);
    } else {
        sqlite3_stmt *q = stmt(c, st);
        if (q == NULL)
            return c->failed = true, db_fail(c, err, "prepare");
        sqlite3_bind_text(q, 1, k, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            out->len = (size_t)sqlite3_column_bytes(q, 0);
            out->sealed = dc_xmalloc(out->len + 1);
            if (out->len > 0)
                memcpy(out->sealed, sqlite3_column_blob(q, 0), out->len);
            for (int i = 0; i < nv; i++)
                out->v[i] = sqlite3_column_int64(q, i + 1);
        } else {
            s = rc == SQLITE_DONE ? DC_ERR_NOTFOUND : db_fail(c, err, "read");
        }
        done(q);
    }
    if (s == DC_OK && out->sealed == NULL)
        s = DC_ERR_NOTFOUND;
    if (s != DC_OK && s != DC_ERR_NOTFOUND)
        c->failed = true;
    return s;
}

/* Writes the row named k (sealed, then nv integers) with ST_RECORD_PUT or ST_SIGNET_PUT. */
static enum dc_status row_put(struct rl_cache *c, unsigned st, const char *k,
                              const uint8_t *sealed, size_t len, const int64_t *v, int nv,
                              struct dc_err *err)
{
    if (c->pg != NULL) {
        struct dl_pg_args a = {0};
        dl_pg_arg_text(&a, k);
        dl_pg_arg_bytes(&a, sealed, len);
        for (int i = 0; i < nv; i++)
            dl_pg_arg_int(&a, v[i]);
        return dl_pg_exec(c->pg, pg_sql[st], &a, NULL, err);
    }
    sqlite3_stmt *q = stmt(c, st);
    if (q == NULL)
        return db_fail(c, err, "prepare");
    sqlite3_bind_text(q, 1, k, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(q, 2, sealed, (int)len, SQLITE_TRANSIENT);
    for (int i = 0; i < nv; i++)
        sqlite3_bind_int64(q, 3 + i, v[i]);
    enum dc_status s = sqlite3_step(q) == SQLITE_DONE ? DC_OK : db_fail(c, err, "write");
    done(q);
    return s;
}

/* The row's sealed value, opened (NUL-terminated, malloc'd); NULL when it does not open:
 * then the entry is as good as absent. */
static char *unseal_row(struct rl_cache *c, const char *label, const char *name,
                        const struct row *r)
{
    char *out = dc_xmalloc(r->len + 1);
    if (rl_unseal(c->seal_key, label, name, r->sealed, r->len, out, r->len + 1, NULL))
        return out;
    free(out);
    return NULL;
}

bool rl_cache_failed(const struct rl_cache *c)
{
    return c != NULL && c->failed;
}

void rl_cache_record_free(struct rl_cache_record *r)
{
    free(r->text);
    memset(r, 0, sizeof(*r));
}

enum dc_status rl_cache_record_get(struct rl_cache *c, const char *domain,
                                   struct rl_cache_record *out, struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    char k[RL_SEAL_NAME_LEN + 1];
    rl_seal_name(c->name_key, domain, k);
    struct row r;
    enum dc_status s = row_get(c, ST_RECORD_GET, k, 3, &r, err);
    if (s == DC_ERR_NOTFOUND)
        s = dc_fail(err, DC_ERR_NOTFOUND, "no cached record for %.100s", domain);
    else if (s == DC_OK && (out->text = unseal_row(c, L_RECORD, k, &r)) == NULL)
        s = dc_fail(err, DC_ERR_NOTFOUND, "cached record for %.100s does not unseal", domain);
    else if (s == DC_OK) {
        out->dnssec = (int)r.v[0];
        out->expires = r.v[1];
        out->dime_until = r.v[2];
    }
    free(r.sealed);
    return s;
}

enum dc_status rl_cache_record_put(struct rl_cache *c, const char *domain, const char *text,
                                   int dnssec, int64_t expires, int64_t dime_until,
                                   struct dc_err *err)
{
    char k[RL_SEAL_NAME_LEN + 1];
    rl_seal_name(c->name_key, domain, k);
    size_t tl = strlen(text);
    uint8_t *sealed = dc_xmalloc(RL_SEAL_OVERHEAD + tl);
    size_t sl = rl_seal(c->seal_key, L_RECORD, k, text, tl, sealed);
    const int64_t v[3] = {dnssec, expires, dime_until};
    enum dc_status s = row_put(c, ST_RECORD_PUT, k, sealed, sl, v, 3, err);
    free(sealed);
    return s;
}

enum dc_status rl_cache_signet_get(struct rl_cache *c, const char *name, struct dc_signet **sig,
                                   char fp[DC_FP_B64_LEN + 1], int64_t *expires,
                                   struct dc_err *err)
{
    if (sig != NULL)
        *sig = NULL;
    char k[RL_SEAL_NAME_LEN + 1];
    rl_seal_name(c->name_key, name, k);
    struct row r;
    enum dc_status s = row_get(c, ST_SIGNET_GET, k, 1, &r, err);
    if (s == DC_ERR_NOTFOUND)
        s = dc_fail(err, DC_ERR_NOTFOUND, "no cached signet for %.100s", name);
    if (s != DC_OK) {
        free(r.sealed);
        return s;
    }
    /* sealed: the fingerprint, LF, the signet in base64 */
    char *v = unseal_row(c, L_SIGNET, k, &r);
    free(r.sealed);
    char *b64 = v != NULL ? strchr(v, '\n') : NULL;
    if (b64 == NULL)
        s = dc_fail(err, DC_ERR_NOTFOUND, "cached signet for %.100s does not unseal", name);
    else if (b64 - v > DC_FP_B64_LEN)
        s = dc_fail(err, DC_ERR_FORMAT, "signet cache: bad fingerprint for %.100s", name);
    else {
        *b64++ = '\0';
        strcpy(fp, v);
        *expires = r.v[0];
        if (sig != NULL)
            s = dc_signet_from_b64(b64, strlen(b64), sig, err);
    }
    free(v);
    return s;
}

enum dc_status rl_cache_signet_put(struct rl_cache *c, const char *name,
                                   const struct dc_signet *sig, const char *fp, int64_t expires,
                                   struct dc_err *err)
{
    char k[RL_SEAL_NAME_LEN + 1];
    rl_seal_name(c->name_key, name, k);
    char *b64 = dc_signet_b64(sig);
    struct dc_buf v;
    dc_buf_init(&v);
    dc_buf_printf(&v, "%s\n%s", fp, b64);
    free(b64);
    uint8_t *sealed = dc_xmalloc(RL_SEAL_OVERHEAD + v.len);
    size_t sl = rl_seal(c->seal_key, L_SIGNET, k, v.data, v.len, sealed);
    dc_buf_free(&v);
    enum dc_status s = row_put(c, ST_SIGNET_PUT, k, sealed, sl, &expires, 1, err);
    free(sealed);
    return s;
}
