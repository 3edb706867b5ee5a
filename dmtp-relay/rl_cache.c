/*
 * rl_cache - SQLite signet and record cache. See rl_cache.h.
 */
#include "rl_cache.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct rl_cache {
    sqlite3 *db;
};

static enum dc_status db_fail(struct rl_cache *c, struct dc_err *err, const char *what)
{
    return dc_fail(err, DC_ERR_IO, "signet cache: %s: %s", what, sqlite3_errmsg(c->db));
}

/* Names are case-insensitive; the cache keys them in lower case. */
static char *key(const char *name)
{
    char *k = dc_xstrdup(name);
    for (char *p = k; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return k;
}

enum dc_status rl_cache_open(const char *path, struct rl_cache **out, struct dc_err *err)
{
    struct rl_cache *c = dc_xcalloc(1, sizeof(*c));
    *out = NULL;
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                          SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        enum dc_status s = dc_fail(err, DC_ERR_IO, "signet cache %s: %s", path,
                                   c->db ? sqlite3_errmsg(c->db) : "cannot open");
        sqlite3_close(c->db);
        free(c);
        return s;
    }
    sqlite3_busy_timeout(c->db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(c->db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                     "CREATE TABLE IF NOT EXISTS records(domain TEXT PRIMARY KEY, text TEXT NOT "
                     "NULL, dnssec INTEGER NOT NULL, expires INTEGER NOT NULL, dime_until "
                     "INTEGER NOT NULL);"
                     "CREATE TABLE IF NOT EXISTS signets(name TEXT PRIMARY KEY, b64 TEXT NOT "
                     "NULL, fp TEXT NOT NULL, expires INTEGER NOT NULL);",
                     NULL, NULL, &msg) != SQLITE_OK) {
        enum dc_status s = dc_fail(err, DC_ERR_IO, "signet cache %s: %s", path,
                                   msg ? msg : "schema");
        sqlite3_free(msg);
        sqlite3_close(c->db);
        free(c);
        return s;
    }
    *out = c;
    return DC_OK;
}

void rl_cache_close(struct rl_cache *c)
{
    if (c == NULL)
        return;
    sqlite3_close(c->db);
    free(c);
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
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT text, dnssec, expires, dime_until FROM records "
                           "WHERE domain = ?", -1, &st, NULL) != SQLITE_OK)
        return db_fail(c, err, "prepare");
    char *k = key(domain);
    sqlite3_bind_text(st, 1, k, -1, SQLITE_TRANSIENT);
    free(k);
    int rc = sqlite3_step(st);
    enum dc_status s = DC_OK;
    if (rc == SQLITE_ROW) {
        out->text = dc_xstrdup((const char *)sqlite3_column_text(st, 0));
        out->dnssec = sqlite3_column_int(st, 1);
        out->expires = sqlite3_column_int64(st, 2);
        out->dime_until = sqlite3_column_int64(st, 3);
    } else if (rc == SQLITE_DONE) {
        s = dc_fail(err, DC_ERR_NOTFOUND, "no cached record for %.100s", domain);
    } else {
        s = db_fail(c, err, "read record");
    }
    sqlite3_finalize(st);
    return s;
}

enum dc_status rl_cache_record_put(struct rl_cache *c, const char *domain, const char *text,
                                   int dnssec, int64_t expires, int64_t dime_until,
                                   struct dc_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?)", -1,
                           &st, NULL) != SQLITE_OK)
        return db_fail(c, err, "prepare");
    char *k = key(domain);
    sqlite3_bind_text(st, 1, k, -1, SQLITE_TRANSIENT);
    free(k);
    sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, dnssec);
    sqlite3_bind_int64(st, 4, expires);
    sqlite3_bind_int64(st, 5, dime_until);
    enum dc_status s = sqlite3_step(st) == SQLITE_DONE ? DC_OK : db_fail(c, err, "write record");
    sqlite3_finalize(st);
    return s;
}

enum dc_status rl_cache_signet_get(struct rl_cache *c, const char *name, struct dc_signet **sig,
                                   char fp[DC_FP_B64_LEN + 1], int64_t *expires,
                                   struct dc_err *err)
{
    if (sig != NULL)
        *sig = NULL;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT b64, fp, expires FROM signets WHERE name = ?", -1,
                           &st, NULL) != SQLITE_OK)
        return db_fail(c, err, "prepare");
    char *k = key(name);
    sqlite3_bind_text(st, 1, k, -1, SQLITE_TRANSIENT);
    free(k);
    int rc = sqlite3_step(st);
    enum dc_status s = DC_OK;
    if (rc == SQLITE_ROW) {
        const char *b64 = (const char *)sqlite3_column_text(st, 0);
        const char *f = (const char *)sqlite3_column_text(st, 1);
        if (strlen(f) > DC_FP_B64_LEN)
            s = dc_fail(err, DC_ERR_FORMAT, "signet cache: bad fingerprint for %.100s", name);
        else {
            strcpy(fp, f);
            *expires = sqlite3_column_int64(st, 2);
            if (sig != NULL)
                s = dc_signet_from_b64(b64, strlen(b64), sig, err);
        }
    } else if (rc == SQLITE_DONE) {
        s = dc_fail(err, DC_ERR_NOTFOUND, "no cached signet for %.100s", name);
    } else {
        s = db_fail(c, err, "read signet");
    }
    sqlite3_finalize(st);
    return s;
}

enum dc_status rl_cache_signet_put(struct rl_cache *c, const char *name,
                                   const struct dc_signet *sig, const char *fp, int64_t expires,
                                   struct dc_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO signets VALUES (?, ?, ?, ?)", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(c, err, "prepare");
    char *k = key(name);
    char *b64 = dc_signet_b64(sig);
    sqlite3_bind_text(st, 1, k, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, b64, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, fp, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, expires);
    free(k);
    free(b64);
    enum dc_status s = sqlite3_step(st) == SQLITE_DONE ? DC_OK : db_fail(c, err, "write signet");
    sqlite3_finalize(st);
    return s;
}
