/*
 * rl_cache - SQLite signet and record cache. See rl_cache.h.
 */
#include "rl_cache.h"

#include "dl_sqlite.h"
#include "rl_seal.h"

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

struct rl_cache {
    sqlite3 *db;
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
    /* a new key opens none of the sealed rows there may be: they are dropped below, by the
     * one open that created it (others opening at the same time use that key already) */
    bool fresh = false;
    enum dc_status s = rl_seal_load_key_created(kpath, key, &fresh, err);
    free(kpath);
    if (s != DC_OK)
        return open_fail(c, s);
    rl_seal_subkey(key, "dime-relayd signet cache: names", c->name_key);
    rl_seal_subkey(key, "dime-relayd signet cache: values", c->seal_key);
    dc_memzero(key, sizeof(key));
    static const struct dl_sqlite_opts opts = {
        .what = "signet cache", .flags = SQLITE_OPEN_NOMUTEX, .busy_ms = 5000,
        .synchronous = "FULL"};
    if ((s = dl_sqlite_open(path, &opts, &c->db, err)) != DC_OK)
        return open_fail(c, s);
    char *msg = NULL;
    int rc = dl_sqlite_exec_retry(c->db, "CREATE TABLE IF NOT EXISTS " RECORDS ";"
                                         "CREATE TABLE IF NOT EXISTS " SIGNETS ";",
                                  opts.busy_ms, &msg);
    if (rc != SQLITE_OK) {
        s = dc_fail(err, DC_ERR_IO, "signet cache %s: schema: %s", path,
                    msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return open_fail(c, s);
    }
    s = rl_seal_upgrade(c->db, "signet cache", CACHE_VERSION, upgrade, c, err);
    if (s != DC_OK)
        return open_fail(c, s);
    if (fresh && !c->converted &&
        sqlite3_exec(c->db, "DELETE FROM records; DELETE FROM signets;", NULL, NULL, NULL) !=
            SQLITE_OK)
        return open_fail(c, db_fail(c, err, "dropping entries of a lost key"));
    *out = c;
    return DC_OK;
}

void rl_cache_close(struct rl_cache *c)
{
    if (c == NULL)
        return;
    /* only a connection that opened completely and holds no transaction is kept */
    if (c->db == NULL || c->path == NULL || !sqlite3_get_autocommit(c->db) ||
        !dl_pool_give(&reuse, c->path, c))
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

/* The sealed value of column col, opened (NUL-terminated, malloc'd); NULL when it does not
 * open: then the entry is as good as absent. */
static char *unseal_col(struct rl_cache *c, const char *label, const char *name,
                        sqlite3_stmt *st, int col)
{
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    char *out = dc_xmalloc(len + 1);
    if (rl_unseal(c->seal_key, label, name, sqlite3_column_blob(st, col), len, out, len + 1,
                  NULL))
        return out;
    free(out);
    return NULL;
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
    sqlite3_stmt *st = stmt(c, ST_RECORD_GET);
    if (st == NULL)
        return db_fail(c, err, "prepare");
    char k[RL_SEAL_NAME_LEN + 1];
    rl_seal_name(c->name_key, domain, k);
    sqlite3_bind_text(st, 1, k, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    enum dc_status s = DC_OK;
    if (rc == SQLITE_ROW && (out->text = unseal_col(c, L_RECORD, k, st, 0)) == NULL) {
        s = dc_fail(err, DC_ERR_NOTFOUND, "cached record for %.100s does not unseal", domain);
    } else if (rc == SQLITE_ROW) {
        out->dnssec = sqlite3_column_int(st, 1);
        out->expires = sqlite3_column_int64(st, 2);
        out->dime_until = sqlite3_column_int64(st, 3);
    } else if (rc == SQLITE_DONE) {
        s = dc_fail(err, DC_ERR_NOTFOUND, "no cached record for %.100s", domain);
    } else {
        s = db_fail(c, err, "read record");
    }
    done(st);
    return s;
}

enum dc_status rl_cache_record_put(struct rl_cache *c, const char *domain, const char *text,
                                   int dnssec, int64_t expires, int64_t dime_until,
                                   struct dc_err *err)
{
    sqlite3_stmt *st = stmt(c, ST_RECORD_PUT);
    if (st == NULL)
        return db_fail(c, err, "prepare");
    char k[RL_SEAL_NAME_LEN + 1];
    rl_seal_name(c->name_key, domain, k);
    size_t tl = strlen(text);
    uint8_t *sealed = dc_xmalloc(RL_SEAL_OVERHEAD + tl);
    size_t sl = rl_seal(c->seal_key, L_RECORD, k, text, tl, sealed);
    sqlite3_bind_text(st, 1, k, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 2, sealed, (int)sl, free);
    sqlite3_bind_int(st, 3, dnssec);
    sqlite3_bind_int64(st, 4, expires);
    sqlite3_bind_int64(st, 5, dime_until);
    enum dc_status s = sqlite3_step(st) == SQLITE_DONE ? DC_OK : db_fail(c, err, "write record");
    done(st);
    return s;
}

enum dc_status rl_cache_signet_get(struct rl_cache *c, const char *name, struct dc_signet **sig,
                                   char fp[DC_FP_B64_LEN + 1], int64_t *expires,
                                   struct dc_err *err)
{
    if (sig != NULL)
        *sig = NULL;
    sqlite3_stmt *st = stmt(c, ST_SIGNET_GET);
    if (st == NULL)
        return db_fail(c, err, "prepare");
    char k[RL_SEAL_NAME_LEN + 1];
    rl_seal_name(c->name_key, name, k);
    sqlite3_bind_text(st, 1, k, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    enum dc_status s = DC_OK;
    if (rc == SQLITE_ROW) {
        /* sealed: the fingerprint, LF, the signet in base64 */
        char *v = unseal_col(c, L_SIGNET, k, st, 0);
        char *b64 = v != NULL ? strchr(v, '\n') : NULL;
        if (b64 == NULL)
            s = dc_fail(err, DC_ERR_NOTFOUND, "cached signet for %.100s does not unseal", name);
        else if (b64 - v > DC_FP_B64_LEN)
            s = dc_fail(err, DC_ERR_FORMAT, "signet cache: bad fingerprint for %.100s", name);
        else {
            *b64++ = '\0';
            strcpy(fp, v);
            *expires = sqlite3_column_int64(st, 1);
            if (sig != NULL)
                s = dc_signet_from_b64(b64, strlen(b64), sig, err);
        }
        free(v);
    } else if (rc == SQLITE_DONE) {
        s = dc_fail(err, DC_ERR_NOTFOUND, "no cached signet for %.100s", name);
    } else {
        s = db_fail(c, err, "read signet");
    }
    done(st);
    return s;
}

enum dc_status rl_cache_signet_put(struct rl_cache *c, const char *name,
                                   const struct dc_signet *sig, const char *fp, int64_t expires,
                                   struct dc_err *err)
{
    sqlite3_stmt *st = stmt(c, ST_SIGNET_PUT);
    if (st == NULL)
        return db_fail(c, err, "prepare");
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
    sqlite3_bind_text(st, 1, k, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 2, sealed, (int)sl, free);
    sqlite3_bind_int64(st, 3, expires);
    enum dc_status s = sqlite3_step(st) == SQLITE_DONE ? DC_OK : db_fail(c, err, "write signet");
    done(st);
    return s;
}
