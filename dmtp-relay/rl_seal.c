/*
 * rl_seal - local key, sealed values and keyed name hashes. See rl_seal.h.
 */
#include "rl_seal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool rl_sync_parent(const char *path)
{
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s", path);
    int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    int e = errno;
    close(fd);
    errno = e;
    return ok;
}

enum dc_status rl_seal_load_key_created(const char *path, uint8_t key[32], bool *created,
                                        struct dc_err *err)
{
    if (created != NULL)
        *created = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        uint8_t k[32];
        if (dc_random(k, 32) != DC_OK)
            return dc_fail(err, DC_ERR_CRYPTO, "no randomness for the key %s", path);
        /* a name of its own for each caller: threads of one process share the pid (the
         * lookup workers open the cache at once on a relay's first lookups) */
        char tmp[4200];
        snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
        int w = mkostemp(tmp, O_CLOEXEC);
        if (w < 0)
            return dc_fail(err, DC_ERR_IO, "%s: %s", tmp, strerror(errno));
        bool ok = write(w, k, 32) == 32 && fsync(w) == 0;
        close(w);
        dc_memzero(k, 32);
        /* link, not rename: a key another process created meanwhile wins */
        int lerr = !ok ? EIO : link(tmp, path) != 0 ? errno : 0;
        unlink(tmp);
        /* the name too must reach the disk before anything is sealed under the key: a power
         * cut that kept the queue's rows but lost the key's directory entry would leave
         * every sealed address unreadable (held, never delivered) */
        if (lerr == 0 && !rl_sync_parent(path))
            lerr = errno;
        if (lerr != 0 && lerr != EEXIST)
            return dc_fail(err, DC_ERR_IO, "%s: cannot create: %s", path, strerror(lerr));
        if (lerr == 0 && created != NULL)
            *created = true;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0)
        return dc_fail(err, DC_ERR_IO, "%s: %s", path, strerror(errno));
    ssize_t r = read(fd, key, 32);
    close(fd);
    if (r != 32)
        return dc_fail(err, DC_ERR_FORMAT, "%s: not a 32-byte key", path);
    return DC_OK;
}

enum dc_status rl_seal_load_key(const char *path, uint8_t key[32], struct dc_err *err)
{
    return rl_seal_load_key_created(path, key, NULL, err);
}

size_t rl_seal(const uint8_t key[32], const char *label, const char *row, const void *in,
               size_t len, uint8_t *out)
{
    if (dl_seal(key, label, row, in, len, out, NULL) != DC_OK)
        abort();
    return RL_SEAL_OVERHEAD + len;
}

bool rl_unseal(const uint8_t key[32], const char *label, const char *row, const uint8_t *in,
               size_t len, void *out, size_t cap, size_t *outlen)
{
    size_t n = dl_unseal_len(len);
    if (in == NULL || len < RL_SEAL_OVERHEAD || n >= cap ||
        dl_unseal(key, label, row, in, len, out, NULL) != DC_OK)
        return false;
    ((char *)out)[n] = '\0';
    if (outlen != NULL)
        *outlen = n;
    return true;
}

static void hmac512(const uint8_t key[32], const void *in, size_t len, uint8_t md[64])
{
    unsigned ml = 0;
    if (HMAC(EVP_sha512(), key, 32, in, len, md, &ml) == NULL || ml != 64)
        abort();
}

void rl_seal_name(const uint8_t key[32], const char *name, char out[RL_SEAL_NAME_LEN + 1])
{
    char *k = dc_xstrdup(name);
    for (char *p = k; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    uint8_t md[64];
    hmac512(key, k, strlen(k), md);
    dc_memzero(k, strlen(k));
    free(k);
    dc_hex_encode(md, RL_SEAL_NAME_LEN / 2, out);
    out[RL_SEAL_NAME_LEN] = '\0';
}

void rl_seal_subkey(const uint8_t key[32], const char *label, uint8_t out[32])
{
    uint8_t md[64];
    hmac512(key, label, strlen(label), md);
    memcpy(out, md, 32);
    dc_memzero(md, sizeof(md));
}

/* ---- SQLite ---- */

static void sqlf_seal(sqlite3_context *c, int argc, sqlite3_value **v)
{
    (void)argc;
    const uint8_t *key = sqlite3_user_data(c);
    const char *text = (const char *)sqlite3_value_text(v[2]);
    size_t n = text ? (size_t)sqlite3_value_bytes(v[2]) : 0;
    uint8_t *out = sqlite3_malloc64(RL_SEAL_OVERHEAD + n);
    if (out == NULL) {
        sqlite3_result_error_nomem(c);
        return;
    }
    size_t ol = rl_seal(key, (const char *)sqlite3_value_text(v[0]),
                        (const char *)sqlite3_value_text(v[1]), text ? text : "", n, out);
    sqlite3_result_blob64(c, out, ol, sqlite3_free);
}

/* ---- the first format, for the migrations only (see rl_seal.h) ---- */

#define V0_OVERHEAD (DC_GCM_IV_LEN + DC_GCM_TAG_LEN)

/* Opens a value of the first format into out (len - V0_OVERHEAD bytes), bound to
 * "label:row" when bound, else to nothing. */
static bool unseal_v0(const uint8_t key[32], bool bound, const char *label, const char *row,
                      const uint8_t *in, size_t len, uint8_t *out)
{
    if (in == NULL || len < V0_OVERHEAD)
        return false;
    char a[512];
    int al = bound ? snprintf(a, sizeof(a), "%s:%s", label, row) : 0;
    if (al < 0 || (size_t)al >= sizeof(a))
        return false;
    return dc_aes256_gcm_open(key, in, (const uint8_t *)a, (size_t)al, in + V0_OVERHEAD,
                              len - V0_OVERHEAD, in + DC_GCM_IV_LEN, out, NULL) == DC_OK;
}

/* rl_reseal and rl_reseal_bound: the user data says which. */
static void reseal_v0(sqlite3_context *c, sqlite3_value **v, bool bound)
{
    const uint8_t *key = sqlite3_user_data(c);
    const char *label = (const char *)sqlite3_value_text(v[0]);
    const char *row = (const char *)sqlite3_value_text(v[1]);
    const uint8_t *in = sqlite3_value_blob(v[2]);
    size_t len = (size_t)sqlite3_value_bytes(v[2]);
    uint8_t *plain = sqlite3_malloc64(len + 1), *out = sqlite3_malloc64(len + RL_SEAL_OVERHEAD);
    if (plain == NULL || out == NULL) {
        sqlite3_free(plain);
        sqlite3_free(out);
        sqlite3_result_error_nomem(c);
        return;
    }
    if (label == NULL || row == NULL || !unseal_v0(key, bound, label, row, in, len, plain)) {
        sqlite3_result_value(c, v[2]);
    } else {
        size_t ol = rl_seal(key, label, row, plain, len - V0_OVERHEAD, out);
        sqlite3_result_blob64(c, out, ol, SQLITE_TRANSIENT);
    }
    dc_memzero(plain, len + 1);
    sqlite3_free(plain);
    sqlite3_free(out);
}

static void sqlf_reseal(sqlite3_context *c, int argc, sqlite3_value **v)
{
    (void)argc;
    reseal_v0(c, v, false);
}

static void sqlf_reseal_bound(sqlite3_context *c, int argc, sqlite3_value **v)
{
    (void)argc;
    reseal_v0(c, v, true);
}

static void sqlf_name(sqlite3_context *c, int argc, sqlite3_value **v)
{
    (void)argc;
    const char *name = (const char *)sqlite3_value_text(v[0]);
    char h[RL_SEAL_NAME_LEN + 1];
    rl_seal_name(sqlite3_user_data(c), name ? name : "", h);
    sqlite3_result_text(c, h, RL_SEAL_NAME_LEN, SQLITE_TRANSIENT);
}

void rl_seal_sql_functions(sqlite3 *db, const uint8_t key[32], const uint8_t *name_key)
{
    sqlite3_create_function(db, "rl_seal", 3, SQLITE_UTF8, (void *)key, sqlf_seal, NULL, NULL);
    sqlite3_create_function(db, "rl_reseal", 3, SQLITE_UTF8, (void *)key, sqlf_reseal, NULL,
                            NULL);
    sqlite3_create_function(db, "rl_reseal_bound", 3, SQLITE_UTF8, (void *)key,
                            sqlf_reseal_bound, NULL, NULL);
    if (name_key != NULL)
        sqlite3_create_function(db, "rl_name", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                (void *)name_key, sqlf_name, NULL, NULL);
}

static bool has_column(sqlite3 *db, const char *table, const char *column)
{
    sqlite3_stmt *st = NULL;
    bool found = false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?) WHERE name=?", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, column, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return found;
}

bool rl_sql_convert(sqlite3 *db, const char *table, const char *old_column, const char *sql)
{
    return !has_column(db, table, old_column) ||
           sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

static int user_version(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

enum dc_status rl_seal_upgrade(sqlite3 *db, const char *what, int version,
                               bool (*step)(sqlite3 *db, int from, void *ctx), void *ctx,
                               struct dc_err *err)
{
    int v = user_version(db);
    if (v == version)
        return DC_OK;
    if (v < 0 || v > version)
        return dc_fail(err, DC_ERR_FORMAT, "%s: schema version %d, this relay knows %d", what,
                       v, version);
    sqlite3_exec(db, "PRAGMA secure_delete=ON", NULL, NULL, NULL);
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(db, "PRAGMA secure_delete=OFF", NULL, NULL, NULL);
        return dc_fail(err, DC_ERR_IO, "%s: begin: %s", what, sqlite3_errmsg(db));
    }
    enum dc_status s = DC_OK;
    char set[64];
    snprintf(set, sizeof(set), "PRAGMA user_version=%d", version);
    v = user_version(db);
    if (v > version)
        s = dc_fail(err, DC_ERR_FORMAT, "%s: schema version %d, this relay knows %d", what, v,
                    version);
    else if (v < version &&
             (!step(db, v, ctx) || sqlite3_exec(db, set, NULL, NULL, NULL) != SQLITE_OK ||
              sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK))
        s = dc_fail(err, DC_ERR_IO, "%s: migration to schema %d: %s", what, version,
                    sqlite3_errmsg(db));
    if (s != DC_OK || v >= version)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    else
        sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    sqlite3_exec(db, "PRAGMA secure_delete=OFF", NULL, NULL, NULL);
    return s;
}
