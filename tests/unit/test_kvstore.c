/* Keyvault storage and sealing: seal round trips, wrong master key, blobs swapped between
 * rows, master key file checks, scrypt, schema migrations, one transaction per change, and
 * the vault operations on top (sign, KEK, rotation keeping old keys, retire). */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv_device.h"
#include "kv_proto.h"
#include "kv_seal.h"
#include "kv_store.h"
#include "kv_vault.h"

static char dir[64];

static void mkdir_tmp(void)
{
    snprintf(dir, sizeof(dir), "/tmp/kvstore.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void)
{
    char *cmd = dc_xasprintf("rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
}

TestSuite(kvstore, .init = mkdir_tmp, .fini = rm_tmp);

static char *path(const char *name)
{
    return dc_xasprintf("%s/%s", dir, name);
}

static char *write_secret(const char *name, const void *data, size_t len, unsigned mode)
{
    char *p = path(name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
    cr_assert_eq(chmod(p, mode), 0);
    return p;
}

static struct kv_master *master_of(uint8_t fill)
{
    struct kv_master *m = dc_secure_alloc(sizeof(*m));
    memset(m->key, fill, sizeof(m->key));
    return m;
}

/* A blob as the vault sealed before dl_seal: nonce || ciphertext || tag, the row identity
 * "kind|name|generation" as additional data. */
static uint8_t *old_seal(const struct kv_master *m, const char *id, const uint8_t *in,
                         size_t len, size_t *outlen)
{
    uint8_t *b = dc_xmalloc(len + DC_GCM_IV_LEN + DC_GCM_TAG_LEN);
    cr_assert_eq(dc_random(b, DC_GCM_IV_LEN), DC_OK);
    cr_assert_eq(dc_aes256_gcm_seal(m->key, b, (const uint8_t *)id, strlen(id), in, len,
                                    b + DC_GCM_IV_LEN, b + DC_GCM_IV_LEN + len, NULL), DC_OK);
    *outlen = len + DC_GCM_IV_LEN + DC_GCM_TAG_LEN;
    return b;
}

Test(kvstore, seal_round_trip_and_wrong_key_and_wrong_row)
{
    struct kv_master *a = master_of(1), *b = master_of(2);
    const uint8_t secret[40] = "forty bytes of a private key, not really";
    uint8_t *sealed, *plain;
    size_t sl, pl;
    struct dc_err err = {0};
    cr_assert_eq(kv_seal(a, "user-key", "a@x|1", secret, sizeof(secret), &sealed, &sl, &err),
                 DC_OK);
    cr_assert_eq(sl, sizeof(secret) + KV_SEAL_OVERHEAD);
    cr_assert_eq(sealed[0], DL_SEAL_VERSION, "the version byte leads");
    cr_assert_null(memmem(sealed, sl, secret, 8), "plaintext visible in the sealed blob");
    cr_assert_eq(kv_open(a, "user-key", "a@x|1", sealed, sl, &plain, &pl, &err), DC_OK);
    cr_assert_eq(pl, sizeof(secret));
    cr_assert_arr_eq(plain, secret, pl);
    dc_secure_free(plain, pl);
    cr_assert_eq(kv_open(b, "user-key", "a@x|1", sealed, sl, &plain, &pl, &err),
                 DC_ERR_SIGNATURE);
    cr_assert(strstr(err.msg, "wrong master key") != NULL, "%s", err.msg);
    cr_assert_eq(kv_open(a, "user-key", "b@x|1", sealed, sl, &plain, &pl, &err),
                 DC_ERR_SIGNATURE);
    cr_assert_eq(kv_open(a, "user-key", "a@x|2", sealed, sl, &plain, &pl, &err),
                 DC_ERR_SIGNATURE);
    cr_assert_eq(kv_open(a, "org-pok", "a@x|1", sealed, sl, &plain, &pl, &err),
                 DC_ERR_SIGNATURE, "another kind of key");
    /* purpose and row are told apart: moving a byte from one to the other does not open */
    cr_assert_eq(kv_open(a, "user-keya", "@x|1", sealed, sl, &plain, &pl, &err),
                 DC_ERR_SIGNATURE);
    cr_assert_eq(kv_open(a, "user-key", "a@x|1", sealed, sl - 1, &plain, &pl, &err),
                 DC_ERR_SIGNATURE, "a byte cut off the end");
    cr_assert_eq(kv_open(a, "x", "", sealed, KV_SEAL_OVERHEAD - 1, &plain, &pl, &err),
                 DC_ERR_TRUNCATED);
    /* every byte is covered: the version, the nonce, the ciphertext, the tag */
    for (size_t i = 0; i < sl; i++) {
        sealed[i] ^= 0x20;
        enum dc_status s = kv_open(a, "user-key", "a@x|1", sealed, sl, &plain, &pl, &err);
        cr_assert_eq(s, i == 0 ? DC_ERR_FORMAT : DC_ERR_SIGNATURE, "byte %zu flipped", i);
        sealed[i] ^= 0x20;
    }
    /* an old blob (before dl_seal) is not taken for a new one */
    uint8_t *old;
    size_t ol;
    cr_assert_eq(kv_open(a, "user-key", "a@x|1", sealed, sl, &plain, &pl, &err), DC_OK);
    dc_secure_free(plain, pl);
    cr_assert_eq(kv_open_v0(a, "user-key", "a@x|1", sealed, sl, &plain, &pl, &err),
                 DC_ERR_SIGNATURE);
    old = old_seal(a, "user-key|a@x|1", secret, sizeof(secret), &ol);
    cr_assert_neq(kv_open(a, "user-key", "a@x|1", old, ol, &plain, &pl, &err), DC_OK);
    cr_assert_eq(kv_open_v0(a, "user-key", "a@x|1", old, ol, &plain, &pl, &err), DC_OK);
    cr_assert_arr_eq(plain, secret, sizeof(secret));
    dc_secure_free(plain, pl);
    free(old);
    free(sealed);
    kv_master_free(a);
    kv_master_free(b);
}

Test(kvstore, master_key_file_modes_owner_and_formats)
{
    uint8_t raw[32];
    memset(raw, 7, sizeof(raw));
    struct kv_master *m = NULL;
    struct dc_err err = {0};
    char *p = write_secret("k600", raw, 32, 0600);
    cr_assert_eq(kv_master_load_file(p, &m, &err), DC_OK, "%s", err.msg);
    cr_assert_arr_eq(m->key, raw, 32);
    kv_master_free(m);
    free(p);
    p = write_secret("k400", "0707070707070707070707070707070707070707070707070707070707070707\n",
                     65, 0400);
    cr_assert_eq(kv_master_load_file(p, &m, &err), DC_OK, "%s", err.msg);
    cr_assert_arr_eq(m->key, raw, 32);
    kv_master_free(m);
    free(p);
    static const unsigned loose[] = {0644, 0640, 0604, 0700, 0660, 0444};
    for (size_t i = 0; i < sizeof(loose) / sizeof(loose[0]); i++) {
        p = write_secret("kloose", raw, 32, loose[i]);
        cr_assert_eq(kv_master_load_file(p, &m, &err), DC_ERR_IO, "mode %o accepted", loose[i]);
        cr_assert(strstr(err.msg, "too open") != NULL, "%s", err.msg);
        unlink(p);
        free(p);
    }
    p = write_secret("kshort", raw, 31, 0600);
    cr_assert_eq(kv_master_load_file(p, &m, &err), DC_ERR_FORMAT);
    free(p);
    if (geteuid() == 0) {
        p = write_secret("kowner", raw, 32, 0600);
        cr_assert_eq(chown(p, 65534, 65534), 0);
        cr_assert_eq(kv_master_load_file(p, &m, &err), DC_ERR_IO);
        cr_assert(strstr(err.msg, "owned by uid 65534") != NULL, "%s", err.msg);
        free(p);
    }
    p = path("missing");
    cr_assert_eq(kv_master_load_file(p, &m, &err), DC_ERR_IO);
    free(p);
}

Test(kvstore, scrypt_passphrase_depends_on_salt_and_passphrase)
{
    struct dc_err err = {0};
    char *p = write_secret("pass", "correct horse battery\nignored", 29, 0600);
    uint8_t *pass;
    size_t plen;
    cr_assert_eq(kv_passphrase_load(p, &pass, &plen, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(plen, 21);
    uint8_t s1[KV_SALT_LEN] = {1}, s2[KV_SALT_LEN] = {2};
    struct kv_master *a, *b, *c;
    cr_assert_eq(kv_master_from_passphrase(pass, plen, s1, &a, &err), DC_OK);
    cr_assert_eq(kv_master_from_passphrase(pass, plen, s1, &b, &err), DC_OK);
    cr_assert_eq(kv_master_from_passphrase(pass, plen, s2, &c, &err), DC_OK);
    cr_assert_arr_eq(a->key, b->key, 32);
    cr_assert_arr_neq(a->key, c->key, 32);
    kv_master_free(a);
    kv_master_free(b);
    kv_master_free(c);
    dc_secure_free(pass, plen);
    free(p);
    p = write_secret("short", "seven c\n", 8, 0600);
    cr_assert_eq(kv_passphrase_load(p, &pass, &plen, &err), DC_ERR_FORMAT);
    free(p);
}

static void sql(const char *db, const char *stmt)
{
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(h, stmt, NULL, NULL, &msg), SQLITE_OK, "%s: %s", stmt,
                 msg ? msg : "");
    sqlite3_close(h);
}

static int count(const char *db, const char *query)
{
    sqlite3 *h;
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(h, query, -1, &st, NULL), SQLITE_OK, "%s", query);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

Test(kvstore, migrates_an_empty_database_and_refuses_a_newer_one)
{
    char *db = path("m.db");
    struct kv_store *s;
    struct dc_err err = {0};
    cr_assert_eq(kv_store_open_sqlite(db, &s, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(kv_store_schema_version(s), 3);
    kv_store_close(s);
    cr_assert_eq(count(db, "SELECT version FROM schema_version"), 3);
    cr_assert_eq(count(db, "SELECT count(*) FROM sqlite_master WHERE name = 'generations'"), 1);
    /* reopening does not migrate twice */
    cr_assert_eq(kv_store_open_sqlite(db, &s, &err), DC_OK, "%s", err.msg);
    kv_store_close(s);
    cr_assert_eq(count(db, "SELECT count(*) FROM schema_version"), 1);
    sql(db, "UPDATE schema_version SET version = 99");
    cr_assert_eq(kv_store_open_sqlite(db, &s, &err), DC_ERR_FORMAT);
    cr_assert(strstr(err.msg, "newer") != NULL, "%s", err.msg);
    free(db);
}

Test(kvstore, failed_user_add_leaves_nothing_behind)
{
    char *db = path("t.db");
    struct kv_store *s;
    struct dc_err err = {0};
    cr_assert_eq(kv_store_open_sqlite(db, &s, &err), DC_OK);
    struct kv_user u = {.address = "a@x.test", .mode = KV_MODE_PARANOID, .generation = 1};
    uint8_t sig[10] = {0};
    struct kv_generation g = {.generation = 1, .mode = 9 /* violates the CHECK */,
                              .fp = "f", .fp_crypto = "c", .signet = sig, .signet_len = 10};
    cr_assert_neq(kv_store_user_add(s, &u, &g, &err), DC_OK);
    struct kv_user got;
    cr_assert_eq(kv_store_user_get(s, "a@x.test", &got, &err), DC_ERR_NOTFOUND);
    g.mode = KV_MODE_PARANOID;
    cr_assert_eq(kv_store_user_add(s, &u, &g, &err), DC_OK, "%s", err.msg);
    /* a rotation from a stale generation changes nothing */
    struct kv_generation g3 = g;
    g3.generation = 3;
    cr_assert_eq(kv_store_user_rotate(s, "a@x.test", 2, &g3, &err), DC_ERR_ORDER);
    /* a rotation whose generation row fails rolls back the user's generation bump */
    struct kv_generation g2 = g;
    g2.generation = 2;
    g2.mode = 9;
    cr_assert_neq(kv_store_user_rotate(s, "a@x.test", 1, &g2, &err), DC_OK);
    cr_assert_eq(kv_store_user_get(s, "a@x.test", &got, &err), DC_OK);
    cr_assert_eq(got.generation, 1);
    kv_store_close(s);
    cr_assert_eq(count(db, "SELECT count(*) FROM generations"), 1);
    cr_assert_eq(count(db, "SELECT count(*) FROM users"), 1);
    free(db);
}

static struct kv_vault *open_vault(const char *db, uint8_t fill, enum dc_status want)
{
    struct kv_secret sec = {.key = master_of(fill)};
    struct kv_vault *v = NULL;
    struct dc_err err = {0};
    enum dc_status s = kv_vault_open(db, &sec, &v, &err);
    cr_assert_eq(s, want, "vault open: %s", err.msg);
    cr_assert_null(sec.key, "the secret was not consumed");
    return v;
}

Test(kvstore, vault_refuses_another_master_key)
{
    char *db = path("v.db");
    struct kv_vault *v = open_vault(db, 1, DC_OK);
    struct dc_err err = {0};
    cr_assert_eq(kv_vault_domain_init(v, "Example.TEST", true, NULL, NULL, &err), DC_OK, "%s", err.msg);
    kv_vault_close(v);
    cr_assert_null(open_vault(db, 2, DC_ERR_SIGNATURE));
    v = open_vault(db, 1, DC_OK);
    kv_vault_close(v);
    free(db);
}

/* ---- a store written before dl_seal ---- */

/* to_old(kind, row, sealed): a value in the current format, sealed again the old way (for
 * building an old store from a new one). */
static void sqlf_to_old(sqlite3_context *c, int argc, sqlite3_value **v)
{
    (void)argc;
    const struct kv_master *m = sqlite3_user_data(c);
    const char *kind = (const char *)sqlite3_value_text(v[0]);
    const char *row = (const char *)sqlite3_value_text(v[1]);
    uint8_t *plain;
    size_t pl, ol;
    struct dc_err err = {0};
    if (kv_open(m, kind, row, sqlite3_value_blob(v[2]), (size_t)sqlite3_value_bytes(v[2]),
                &plain, &pl, &err) != DC_OK) {
        sqlite3_result_error(c, err.msg, -1);
        return;
    }
    char *id = *row != '\0' ? dc_xasprintf("%s|%s", kind, row) : dc_xstrdup(kind);
    uint8_t *old = old_seal(m, id, plain, pl, &ol);
    sqlite3_result_blob(c, old, (int)ol, free);
    free(id);
    dc_secure_free(plain, pl);
}

/* Turns the store at db (schema 3, sealed with master fill) into what the code before dl_seal
 * wrote: schema 1, every value in the old format, no seal-version. A copy of the old values
 * is kept in table old_values(what, bytes). */
static void make_old_store(const char *db, uint8_t fill)
{
    struct kv_master *m = master_of(fill);
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_create_function(h, "to_old", 3, SQLITE_UTF8, m, sqlf_to_old, NULL, NULL);
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(h,
        "BEGIN;"
        "UPDATE meta SET value = to_old('master-key-check', '', value) WHERE key = 'master-check';"
        "UPDATE domain SET pok = to_old('org-pok', name || '|0', pok) WHERE pok IS NOT NULL;"
        "UPDATE domain SET enc = to_old('org-enc', name || '|0', enc);"
        "UPDATE domain SET sok = to_old('org-sok', name || '|0', sok) WHERE sok IS NOT NULL;"
        "UPDATE generations SET sealed = to_old('user-key', address || '|' || generation, sealed)"
        " WHERE sealed IS NOT NULL;"
        "DELETE FROM meta WHERE key = 'seal-version';"
        "UPDATE schema_version SET version = 1;"
        "DROP TABLE org_signets;"
        "CREATE TABLE old_values AS SELECT 'check' AS what, value AS bytes FROM meta"
        " WHERE key = 'master-check' UNION ALL SELECT 'pok', pok FROM domain UNION ALL"
        " SELECT 'enc', enc FROM domain UNION ALL SELECT address, sealed FROM generations"
        " WHERE sealed IS NOT NULL;"
        "COMMIT;", NULL, NULL, &msg), SQLITE_OK, "%s", msg ? msg : "");
    sqlite3_close(h);
    kv_master_free(m);
}

/* How many of the stored sealed values are byte for byte the old ones. */
static int old_values_left(const char *db)
{
    return count(db, "SELECT count(*) FROM old_values WHERE bytes IN (SELECT value FROM meta"
                     " UNION SELECT pok FROM domain UNION SELECT enc FROM domain UNION"
                     " SELECT sealed FROM generations)");
}

static void sign_and_verify(struct kv_vault *v, const char *who)
{
    uint8_t sig[64], pub[32], *bin;
    size_t len;
    const uint8_t msg[] = "chunk bytes";
    struct dc_err err = {0};
    cr_assert_eq(kv_vault_sign(v, who, KV_PURPOSE_CHUNK, msg, sizeof(msg), sig, &err), KV_OK,
                 "%s: %s", who, err.msg);
    cr_assert_eq(kv_vault_signet(v, who, NULL, &bin, &len, &err), KV_OK);
    struct dc_signet *sg = NULL;
    cr_assert_eq(dc_signet_parse(bin, len, &sg, &err), DC_OK);
    free(bin);
    cr_assert_eq(dc_signet_signing_key(sg, pub, &err), DC_OK);
    cr_assert_eq(dc_ed25519_verify(pub, msg, sizeof(msg), sig), DC_OK, "%s", who);
    dc_signet_free(sg);
}

Test(kvstore, old_store_is_resealed_on_open)
{
    char *db = path("old.db");
    struct kv_vault *v = open_vault(db, 5, DC_OK);
    struct dc_err err = {0};
    cr_assert_eq(kv_vault_domain_init(v, "example.test", true, NULL, NULL, &err), DC_OK, "%s", err.msg);
    const char *users[] = {"alice@example.test", "bob@example.test", "carol@example.test"};
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(kv_vault_user_add(v, users[i], KV_MODE_TRUSTFUL, NULL, NULL, 0, NULL, &err),
                     DC_OK, "%s", err.msg);
    uint32_t gen = 0;
    cr_assert_eq(kv_vault_user_rotate(v, "bob@example.test", 0, NULL, NULL, 0, NULL, &gen, &err),
                 DC_OK, "%s", err.msg);
    struct kv_org_signer os;
    cr_assert_eq(kv_vault_org_signer(v, 0, &os, &err), KV_OK, "%s", err.msg);
    uint8_t org_pub[DC_ED25519_PUB_LEN];
    memcpy(org_pub, os.key->pub, sizeof(org_pub));
    kv_org_signer_free(&os);
    kv_vault_close(v);
    make_old_store(db, 5);
    /* check, pok, enc, and four generations */
    cr_assert_eq(count(db, "SELECT count(*) FROM old_values"), 7);
    cr_assert_eq(old_values_left(db), 7);

    /* the wrong master key converts nothing (the store's schema bump alone is done) */
    cr_assert_null(open_vault(db, 6, DC_ERR_SIGNATURE));
    cr_assert_eq(old_values_left(db), 7);
    cr_assert_eq(count(db, "SELECT count(*) FROM meta WHERE key = 'seal-version' AND"
                           " value = x'00'"), 1);
    cr_assert_eq(count(db, "SELECT version FROM schema_version"), 3);

    /* one damaged old value stops the conversion, whole */
    sql(db, "CREATE TABLE keep AS SELECT sealed FROM generations WHERE address ="
            " 'carol@example.test'");
    sql(db, "UPDATE generations SET sealed = zeroblob(60) WHERE address = 'carol@example.test'");
    cr_assert_null(open_vault(db, 5, DC_ERR_SIGNATURE));
    cr_assert_eq(old_values_left(db), 6);
    sql(db, "UPDATE generations SET sealed = (SELECT sealed FROM keep) WHERE address ="
            " 'carol@example.test'");
    cr_assert_eq(old_values_left(db), 7);

    v = open_vault(db, 5, DC_OK);
    cr_assert_eq(old_values_left(db), 0, "old values left after the conversion");
    cr_assert_eq(count(db, "SELECT count(*) FROM meta WHERE key = 'seal-version' AND"
                           " value = x'01'"), 1);
    cr_assert_eq(count(db, "SELECT (SELECT count(*) FROM generations WHERE sealed IS NOT NULL"
                           " AND substr(sealed, 1, 1) = x'01') + (SELECT count(*) FROM domain"
                           " WHERE substr(pok, 1, 1) = x'01' AND substr(enc, 1, 1) = x'01')"
                           " + (SELECT count(*) FROM meta WHERE key = 'master-check' AND"
                           " substr(value, 1, 1) = x'01')"), 4 + 1 + 1);
    for (size_t i = 0; i < 3; i++)
        sign_and_verify(v, users[i]);
    cr_assert_eq(kv_vault_org_signer(v, 0, &os, &err), KV_OK, "%s", err.msg);
    cr_assert_arr_eq(os.key->pub, org_pub, sizeof(org_pub));
    kv_org_signer_free(&os);
    struct dc_enc_key *eph = NULL;
    struct dc_kek kek;
    cr_assert_eq(dc_enc_key_generate(&eph, &err), DC_OK);
    cr_assert_eq(kv_vault_kek(v, "bob@example.test", eph->pub, NULL, &kek, &err), KV_OK, "%s",
                 err.msg);
    cr_assert_eq(kv_vault_kek(v, "example.test", eph->pub, NULL, &kek, &err), KV_OK, "%s",
                 err.msg);
    dc_enc_key_free(eph);
    kv_vault_close(v);

    /* a second open converts nothing again */
    sql(db, "DROP TABLE old_values; CREATE TABLE old_values AS SELECT 'gen' AS what, sealed AS"
            " bytes FROM generations WHERE sealed IS NOT NULL");
    v = open_vault(db, 5, DC_OK);
    kv_vault_close(v);
    cr_assert_eq(old_values_left(db), 4);
    free(db);
}

Test(kvstore, sign_kek_rotate_retire_and_swapped_blobs)
{
    char *db = path("w.db");
    struct kv_vault *v = open_vault(db, 3, DC_OK);
    struct dc_err err = {0};
    cr_assert_eq(kv_vault_domain_init(v, "example.test", true, NULL, NULL, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(kv_vault_user_add(v, "Alice@Example.test", KV_MODE_TRUSTFUL, NULL, NULL, 0, NULL,
                                   &err), DC_OK, "%s", err.msg);
    cr_assert_eq(kv_vault_user_add(v, "bob@example.test", KV_MODE_TRUSTFUL, NULL, NULL, 0, NULL,
                                   &err), DC_OK, "%s", err.msg);
    cr_assert_eq(kv_vault_user_add(v, "alice@example.test", KV_MODE_TRUSTFUL, NULL, NULL, 0, NULL,
                                   &err), DC_ERR_ARG);
    cr_assert_eq(kv_vault_user_add(v, "carol@other.test", KV_MODE_TRUSTFUL, NULL, NULL, 0, NULL,
                                   &err), DC_ERR_ARG);

    /* sign with alice's key; verify with her signet's key */
    uint8_t sig[64], pub[32];
    const uint8_t msg[] = "chunk bytes";
    cr_assert_eq(kv_vault_sign(v, "alice@example.test", KV_PURPOSE_CHUNK, msg, sizeof(msg), sig,
                               &err), KV_OK, "%s", err.msg);
    uint8_t *bin;
    size_t len;
    cr_assert_eq(kv_vault_signet(v, "alice@example.test", NULL, &bin, &len, &err), KV_OK);
    struct dc_signet *s1 = NULL, *org = NULL;
    cr_assert_eq(dc_signet_parse(bin, len, &s1, &err), DC_OK);
    free(bin);
    cr_assert_eq(dc_signet_signing_key(s1, pub, &err), DC_OK);
    cr_assert_eq(dc_ed25519_verify(pub, msg, sizeof(msg), sig), DC_OK);
    cr_assert_eq(kv_vault_sign(v, "alice@example.test", KV_PURPOSE_ORIGIN, msg, 3, sig, &err),
                 KV_E_PURPOSE);
    cr_assert_eq(kv_vault_sign(v, "example.test", KV_PURPOSE_ORIGIN, msg, 3, sig, &err), KV_OK);
    cr_assert_eq(kv_vault_signet(v, "example.test", NULL, &bin, &len, &err), KV_OK);
    cr_assert_eq(dc_signet_parse(bin, len, &org, &err), DC_OK);
    free(bin);
    cr_assert_geq(dc_signet_verify_user(s1, org, NULL, &err), DC_SS_ID, "%s", err.msg);

    /* KEK: ECDH is symmetric, so the eph private key and the signet's enc key give it too */
    struct dc_enc_key *eph = NULL;
    cr_assert_eq(dc_enc_key_generate(&eph, &err), DC_OK);
    uint8_t encpub[33];
    cr_assert_eq(dc_signet_enc_key(s1, encpub, &err), DC_OK);
    struct dc_kek k1, want;
    cr_assert_eq(kv_vault_kek(v, "alice@example.test", eph->pub, NULL, &k1, &err), KV_OK);
    cr_assert_eq(dc_kek_derive(eph, encpub, &want, &err), DC_OK);
    cr_assert_arr_eq(&k1, &want, sizeof(want));

    /* rotation: new keys, custody chain, old KEK still available by fingerprint */
    char fp1[87], fpc1[87];
    cr_assert_eq(dc_signet_fp(s1, fp1, fpc1, &err), DC_OK);
    uint32_t gen = 0;
    cr_assert_eq(kv_vault_user_rotate(v, "alice@example.test", 0, NULL, NULL, 0, NULL, &gen, &err),
                 DC_OK, "%s", err.msg);
    cr_assert_eq(gen, 2);
    struct dc_kek k2;
    cr_assert_eq(kv_vault_kek(v, "alice@example.test", eph->pub, NULL, &k2, &err), KV_OK);
    cr_assert_arr_neq(&k2, &k1, sizeof(k1));
    cr_assert_eq(kv_vault_kek(v, "alice@example.test", eph->pub, fp1, &k2, &err), KV_OK);
    cr_assert_arr_eq(&k2, &k1, sizeof(k1));
    cr_assert_eq(kv_vault_kek(v, "alice@example.test", eph->pub, fpc1, &k2, &err), KV_OK);
    cr_assert_arr_eq(&k2, &k1, sizeof(k1));
    struct kv_generation *hist;
    size_t n;
    cr_assert_eq(kv_vault_history(v, "alice@example.test", NULL, NULL, &hist, &n, &err), KV_OK);
    cr_assert_eq(n, 2);
    struct dc_signet *s2 = NULL;
    cr_assert_eq(dc_signet_parse(hist[1].signet, hist[1].signet_len, &s2, &err), DC_OK);
    cr_assert_geq(dc_signet_verify_user(s2, org, s1, &err), DC_SS_ID, "%s", err.msg);
    kv_generations_free(hist, n);

    /* retire: generation 1 loses its keys, keeps its signet */
    size_t removed = 0;
    cr_assert_eq(kv_store_user_retire(v->store, "alice@example.test", 2, &removed, &err), DC_OK);
    cr_assert_eq(removed, 1);
    cr_assert_eq(kv_vault_kek(v, "alice@example.test", eph->pub, fp1, &k2, &err), KV_E_NOTFOUND);
    cr_assert_eq(kv_vault_signet(v, "alice@example.test", fp1, &bin, &len, &err), KV_OK);
    free(bin);
    kv_vault_close(v);

    /* swap bob's current sealed key into alice's current row: must not open */
    sql(db, "UPDATE generations SET sealed = (SELECT sealed FROM generations WHERE address = "
            "'bob@example.test') WHERE address = 'alice@example.test' AND generation = 2");
    v = open_vault(db, 3, DC_OK);
    cr_assert_eq(kv_vault_sign(v, "alice@example.test", KV_PURPOSE_CHUNK, msg, 3, sig, &err),
                 KV_E_INTERNAL);
    cr_assert(strstr(err.msg, "does not open") != NULL, "%s", err.msg);
    cr_assert_eq(kv_vault_sign(v, "bob@example.test", KV_PURPOSE_CHUNK, msg, 3, sig, &err),
                 KV_OK);
    kv_vault_close(v);
    dc_enc_key_free(eph);
    dc_signet_free(s1);
    dc_signet_free(s2);
    dc_signet_free(org);
    free(db);
}

Test(kvstore, cautious_and_paranoid_users_hold_no_private_key)
{
    char *db = path("c.db");
    struct kv_vault *v = open_vault(db, 4, DC_OK);
    struct dc_err err = {0};
    cr_assert_eq(kv_vault_domain_init(v, "example.test", true, NULL, NULL, &err), DC_OK, "%s", err.msg);
    struct dc_sign_key *sk;
    struct dc_enc_key *ek;
    struct dc_signet *ssr;
    cr_assert_eq(dc_sign_key_generate(&sk, &err), DC_OK);
    cr_assert_eq(dc_enc_key_generate(&ek, &err), DC_OK);
    cr_assert_eq(dc_signet_ssr_create(sk, ek->pub, NULL, &ssr, &err), DC_OK);
    const uint8_t blob[] = "opaque encrypted blob";
    cr_assert_eq(kv_vault_user_add(v, "c@example.test", KV_MODE_CAUTIOUS, ssr, NULL, 0, NULL, &err),
                 DC_ERR_ARG);
    cr_assert_eq(kv_vault_user_add(v, "c@example.test", KV_MODE_CAUTIOUS, ssr, blob,
                                   sizeof(blob), NULL, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(kv_vault_user_add(v, "p@example.test", KV_MODE_PARANOID, ssr, blob,
                                   sizeof(blob), NULL, &err), DC_ERR_ARG);
    cr_assert_eq(kv_vault_user_add(v, "p@example.test", KV_MODE_PARANOID, ssr, NULL, 0, NULL, &err),
                 DC_OK, "%s", err.msg);
    cr_assert_eq(kv_vault_user_add(v, "t@example.test", KV_MODE_TRUSTFUL, ssr, NULL, 0, NULL, &err),
                 DC_ERR_ARG);
    uint8_t sig[64];
    struct dc_kek kek;
    cr_assert_eq(kv_vault_sign(v, "c@example.test", KV_PURPOSE_CHUNK, blob, 3, sig, &err),
                 KV_E_MODE);
    cr_assert_eq(kv_vault_kek(v, "p@example.test", ek->pub, NULL, &kek, &err), KV_E_MODE);
    struct kv_generation g;
    cr_assert_eq(kv_store_gen_get(v->store, "c@example.test", 0, &g, &err), DC_OK);
    cr_assert_eq(g.blob_len, sizeof(blob));
    cr_assert_arr_eq(g.blob, blob, sizeof(blob));
    cr_assert_null(g.sealed);
    kv_generation_clear(&g);
    bool exists;
    struct kv_user u;
    cr_assert_eq(kv_vault_account(v, "p@example.test", &exists, &u, &err), KV_OK);
    cr_assert(exists);
    cr_assert_eq(u.mode, KV_MODE_PARANOID);
    cr_assert_eq(kv_vault_account(v, "nobody@example.test", &exists, &u, &err), KV_OK);
    cr_assert_not(exists);
    dc_signet_free(ssr);
    dc_sign_key_free(sk);
    dc_enc_key_free(ek);
    kv_vault_close(v);
    free(db);
}

/* Migration (kv_device.c, ACCOUNT.md): a Trustful account's keys handed out, then Paranoid
 * with a device's custody-signed generation and the vault's keys gone; then Trustful again
 * from the device's new generation and its keys. */
Test(kvstore, migration_to_paranoid_and_back)
{
    char *db = path("m.db");
    struct kv_vault *v = open_vault(db, 4, DC_OK);
    struct dc_err err = {0};
    const char *a = "t@example.test";
    cr_assert_eq(kv_vault_domain_init(v, "example.test", true, NULL, NULL, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(kv_vault_user_add(v, a, KV_MODE_TRUSTFUL, NULL, NULL, 0, NULL, &err), DC_OK);
    uint8_t *keys = NULL, *sig = NULL;
    size_t n = 0, sl = 0;
    uint32_t gen = 0;
    cr_assert_eq(kv_device_keys(v, a, &keys, &n, &err), KV_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_eq(dc_get_be(keys, 4), 1);
    struct dc_sign_key *cur = NULL, *nsk = NULL;
    struct dc_enc_key *nek = NULL;
    struct dc_signet *ssr = NULL, *bare = NULL;
    cr_assert_eq(dc_sign_key_from_seed(keys + 4, &cur, &err), DC_OK);
    dc_secure_free(keys, n * (4 + KV_USER_KEYS_LEN) + 1);
    cr_assert_eq(dc_sign_key_generate(&nsk, &err), DC_OK);
    cr_assert_eq(dc_enc_key_generate(&nek, &err), DC_OK);
    cr_assert_eq(dc_signet_ssr_create(nsk, nek->pub, NULL, &bare, &err), DC_OK);
    cr_assert_eq(dc_signet_ssr_create(nsk, nek->pub, cur, &ssr, &err), DC_OK);
    uint8_t k64[KV_USER_KEYS_LEN];
    memcpy(k64, nsk->seed, DC_ED25519_SEED_LEN);
    memcpy(k64 + DC_ED25519_SEED_LEN, nek->priv, DC_SECP_PRIV_LEN);
    cr_assert_eq(kv_device_to_trustful(v, a, ssr->bin, ssr->bin_len, k64, &sig, &sl, &gen, &err),
                 KV_E_MODE);
    cr_assert_eq(kv_device_to_paranoid(v, a, bare->bin, bare->bin_len, &sig, &sl, &gen, &err),
                 KV_E_CUSTODY, "%s", err.msg);
    cr_assert_eq(kv_device_to_paranoid(v, a, ssr->bin, ssr->bin_len, &sig, &sl, &gen, &err),
                 KV_OK, "%s", err.msg);
    free(sig);
    cr_assert_eq(gen, 2);
    struct kv_generation g;
    cr_assert_eq(kv_store_gen_get(v->store, a, 1, &g, &err), DC_OK);
    cr_assert_null(g.sealed, "the vault's copy of generation 1 is gone");
    kv_generation_clear(&g);
    cr_assert_eq(kv_device_keys(v, a, &keys, &n, &err), KV_E_MODE);
    bool exists;
    struct kv_user u;
    cr_assert_eq(kv_vault_account(v, a, &exists, &u, &err), KV_OK);
    cr_assert(u.mode == KV_MODE_PARANOID && !kv_device_migrated(v, &u));
    /* back: generation 3 made by the device, custody by generation 2 (nsk) */
    struct dc_sign_key *k3 = NULL;
    struct dc_enc_key *e3 = NULL;
    struct dc_signet *ssr3 = NULL;
    cr_assert_eq(dc_sign_key_generate(&k3, &err), DC_OK);
    cr_assert_eq(dc_enc_key_generate(&e3, &err), DC_OK);
    cr_assert_eq(dc_signet_ssr_create(k3, e3->pub, nsk, &ssr3, &err), DC_OK);
    cr_assert_eq(kv_device_to_trustful(v, a, ssr3->bin, ssr3->bin_len, k64, &sig, &sl, &gen,
                                       &err), KV_E_CRYPTO, "keys not the SSR's: %s", err.msg);
    memcpy(k64, k3->seed, DC_ED25519_SEED_LEN);
    memcpy(k64 + DC_ED25519_SEED_LEN, e3->priv, DC_SECP_PRIV_LEN);
    cr_assert_eq(kv_device_to_trustful(v, a, ssr3->bin, ssr3->bin_len, k64, &sig, &sl, &gen,
                                       &err), KV_OK, "%s", err.msg);
    free(sig);
    cr_assert_eq(gen, 3);
    cr_assert_eq(kv_vault_account(v, a, &exists, &u, &err), KV_OK);
    cr_assert(u.mode == KV_MODE_TRUSTFUL && kv_device_migrated(v, &u));
    struct dc_kek kek;
    cr_assert_eq(kv_vault_kek(v, a, nek->pub, NULL, &kek, &err), KV_OK, "%s", err.msg);
    cr_assert_eq(kv_device_keys(v, a, &keys, &n, &err), KV_OK, "%s", err.msg);
    cr_assert(n == 1 && dc_get_be(keys, 4) == 3 && memcmp(keys + 4, k64, sizeof(k64)) == 0,
              "only generation 3's keys, the device's");
    dc_secure_free(keys, n * (4 + KV_USER_KEYS_LEN) + 1);
    dc_memzero(k64, sizeof(k64));
    dc_sign_key_free(cur);
    dc_sign_key_free(nsk);
    dc_sign_key_free(k3);
    dc_enc_key_free(nek);
    dc_enc_key_free(e3);
    dc_signet_free(ssr);
    dc_signet_free(bare);
    dc_signet_free(ssr3);
    kv_vault_close(v);
    free(db);
}

/* The request path keeps its prepared statements (kv_store_sqlite.c); a change written through
 * another connection (dimectl beside the daemon) must be seen by the next read. */
Test(kvstore, kept_statements_see_changes_from_another_connection)
{
    char *db = path("k.db");
    struct kv_store *a, *b;
    struct dc_err err = {0};
    cr_assert_eq(kv_store_open_sqlite(db, &a, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(kv_store_open_sqlite(db, &b, &err), DC_OK, "%s", err.msg);
    struct kv_user u = {.address = "k@x.test", .mode = KV_MODE_PARANOID, .generation = 1};
    uint8_t sig[10] = {0};
    struct kv_generation g1 = {.generation = 1, .mode = KV_MODE_PARANOID, .fp = "fp1",
                               .fp_crypto = "c1", .signet = sig, .signet_len = 10};
    struct kv_user got;
    struct kv_generation gen;
    cr_assert_eq(kv_store_user_get(a, "k@x.test", &got, &err), DC_ERR_NOTFOUND);
    cr_assert_eq(kv_store_user_add(b, &u, &g1, &err), DC_OK, "%s", err.msg);
    for (uint32_t want = 1; want <= 3; want++) {
        if (want > 1) { /* rotate through the other connection */
            struct kv_generation g = g1;
            g.generation = want;
            snprintf(g.fp, sizeof(g.fp), "fp%u", want);
            snprintf(g.fp_crypto, sizeof(g.fp_crypto), "c%u", want);
            cr_assert_eq(kv_store_user_rotate(b, "k@x.test", want - 1, &g, &err), DC_OK, "%s",
                         err.msg);
        }
        for (int twice = 0; twice < 2; twice++) { /* the second read reuses the statements */
            cr_assert_eq(kv_store_user_get(a, "k@x.test", &got, &err), DC_OK, "%s", err.msg);
            cr_assert_eq(got.generation, want);
            cr_assert_eq(kv_store_gen_get(a, "k@x.test", 0, &gen, &err), DC_OK, "%s", err.msg);
            cr_assert_eq(gen.generation, want);
            kv_generation_clear(&gen);
            cr_assert_eq(kv_store_gen_get(a, "k@x.test", want, &gen, &err), DC_OK);
            kv_generation_clear(&gen);
            char fp[8];
            snprintf(fp, sizeof(fp), "c%u", want);
            cr_assert_eq(kv_store_gen_by_fp(a, "k@x.test", fp, &gen, &err), DC_OK, "%s",
                         err.msg);
            cr_assert_eq(gen.generation, want);
            kv_generation_clear(&gen);
        }
    }
    /* a NOTFOUND answer leaves the statement reusable too */
    cr_assert_eq(kv_store_gen_get(a, "k@x.test", 9, &gen, &err), DC_ERR_NOTFOUND);
    cr_assert_eq(kv_store_gen_get(a, "k@x.test", 3, &gen, &err), DC_OK, "%s", err.msg);
    kv_generation_clear(&gen);
    kv_store_close(a);
    kv_store_close(b);
    free(db);
}

/* Signing keys are rebuilt from remembered public keys after the first unsealing of a blob
 * (kv_vault.c, sign_key_of): every signature still verifies under the signet, also after a
 * rotation replaced the blob, for users and for the organization. */
Test(kvstore, repeated_signatures_verify_with_remembered_public_keys)
{
    char *db = path("r.db");
    struct kv_vault *v = open_vault(db, 5, DC_OK);
    struct dc_err err = {0};
    cr_assert_eq(kv_vault_domain_init(v, "example.test", true, NULL, NULL, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(kv_vault_user_add(v, "dave@example.test", KV_MODE_TRUSTFUL, NULL, NULL, 0, NULL,
                                   &err), DC_OK, "%s", err.msg);
    const char *who[] = {"dave@example.test", "example.test"};
    for (int round = 0; round < 2; round++) {
        for (size_t w = 0; w < 2; w++) {
            uint8_t *bin, pub[32], sig[64];
            size_t len;
            struct dc_signet *s = NULL;
            cr_assert_eq(kv_vault_signet(v, who[w], NULL, &bin, &len, &err), KV_OK);
            cr_assert_eq(dc_signet_parse(bin, len, &s, &err), DC_OK, "%s", err.msg);
            free(bin);
            cr_assert_eq(dc_signet_signing_key(s, pub, &err), DC_OK);
            dc_signet_free(s);
            for (uint8_t i = 0; i < 3; i++) {
                uint8_t msg[2] = {(uint8_t)round, i};
                cr_assert_eq(kv_vault_sign(v, who[w], w == 0 ? KV_PURPOSE_CHUNK
                                                              : KV_PURPOSE_ORIGIN,
                                           msg, sizeof(msg), sig, &err), KV_OK, "%s", err.msg);
                cr_assert_eq(dc_ed25519_verify(pub, msg, sizeof(msg), sig), DC_OK,
                             "%s round %d signature %u", who[w], round, i);
            }
        }
        uint32_t gen = 0;
        if (round == 0)
            cr_assert_eq(kv_vault_user_rotate(v, "dave@example.test", 0, NULL, NULL, 0, NULL,
                                              &gen, &err), DC_OK, "%s", err.msg);
    }
    kv_vault_close(v);
    free(db);
}

/* ---- signing streams ---- */

/* A built request, parsed back: the fields of the stream frames survive the round trip and
 * fields of other operations are refused. */
static enum dc_status build_parse(struct dc_buf *b, struct kv_request *r, struct dc_err *err)
{
    cr_assert_eq(kv_msg_end(b, err), DC_OK);
    uint32_t n = 0;
    cr_assert_eq(kv_frame_len(b->data, &n, err), DC_OK);
    cr_assert_eq(n, b->len - 4);
    return kv_request_parse(b->data + 4, n, r, err);
}

Test(kvstore, stream_frames_round_trip_and_are_strict)
{
    struct dc_buf b;
    struct kv_request r;
    struct dc_err err = {0};
    uint8_t purpose = KV_PURPOSE_AUTHOR_TREE;
    const uint8_t len8[8] = {0, 0, 0, 1, 0x02, 0x03, 0x04, 0x05};
    dc_buf_init(&b);

    kv_msg_begin(&b, KV_OP_SIGN_BEGIN);
    kv_msg_add(&b, KV_T_PRINCIPAL, "a@b.test", 8);
    kv_msg_add(&b, KV_T_PURPOSE, &purpose, 1);
    kv_msg_add(&b, KV_T_LENGTH, len8, 8);
    cr_assert_eq(build_parse(&b, &r, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(r.op, KV_OP_SIGN_BEGIN);
    cr_assert_eq(r.principal.len, 8);
    cr_assert_eq(r.purpose, KV_PURPOSE_AUTHOR_TREE);
    cr_assert(r.has_length);
    cr_assert_eq(r.length, 0x0102030405ull);
    cr_assert_str_eq(kv_op_name(r.op), "sign-begin");

    /* the length is optional; the purpose is not */
    kv_msg_begin(&b, KV_OP_SIGN_BEGIN);
    kv_msg_add(&b, KV_T_PRINCIPAL, "b.test", 6);
    kv_msg_add(&b, KV_T_PURPOSE, &purpose, 1);
    cr_assert_eq(build_parse(&b, &r, &err), DC_OK, "%s", err.msg);
    cr_assert(!r.has_length);
    kv_msg_begin(&b, KV_OP_SIGN_BEGIN);
    kv_msg_add(&b, KV_T_PRINCIPAL, "b.test", 6);
    cr_assert_eq(build_parse(&b, &r, &err), DC_ERR_FIELD);
    cr_assert(strstr(err.msg, "lacks the purpose") != NULL, "%s", err.msg);
    /* a length of another size, and a length in a one-frame SIGN */
    kv_msg_begin(&b, KV_OP_SIGN_BEGIN);
    kv_msg_add(&b, KV_T_PRINCIPAL, "b.test", 6);
    kv_msg_add(&b, KV_T_PURPOSE, &purpose, 1);
    kv_msg_add(&b, KV_T_LENGTH, len8, 4);
    cr_assert_eq(build_parse(&b, &r, &err), DC_ERR_FIELD);
    cr_assert(strstr(err.msg, "length: length 4") != NULL, "%s", err.msg);
    kv_msg_begin(&b, KV_OP_SIGN);
    kv_msg_add(&b, KV_T_PRINCIPAL, "b.test", 6);
    kv_msg_add(&b, KV_T_PURPOSE, &purpose, 1);
    kv_msg_add(&b, KV_T_DATA, "x", 1);
    kv_msg_add(&b, KV_T_LENGTH, len8, 8);
    cr_assert_eq(build_parse(&b, &r, &err), DC_ERR_FIELD);
    cr_assert(strstr(err.msg, "not a field of a sign request") != NULL, "%s", err.msg);

    /* SIGN-DATA: data only, up to KV_DATA_MAX */
    uint8_t *data = calloc(1, KV_DATA_MAX + 1);
    kv_msg_begin(&b, KV_OP_SIGN_DATA);
    kv_msg_add(&b, KV_T_DATA, data, KV_DATA_MAX);
    cr_assert_eq(build_parse(&b, &r, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(r.data.len, KV_DATA_MAX);
    cr_assert_null(r.principal.p);
    kv_msg_begin(&b, KV_OP_SIGN_DATA);
    kv_msg_add(&b, KV_T_DATA, data, KV_DATA_MAX + 1);
    cr_assert_eq(build_parse(&b, &r, &err), DC_ERR_FIELD);
    kv_msg_begin(&b, KV_OP_SIGN_DATA);
    kv_msg_add(&b, KV_T_PRINCIPAL, "b.test", 6);
    kv_msg_add(&b, KV_T_DATA, data, 1);
    cr_assert_eq(build_parse(&b, &r, &err), DC_ERR_FIELD);
    cr_assert(strstr(err.msg, "not a field of a sign-data request") != NULL, "%s", err.msg);
    kv_msg_begin(&b, KV_OP_SIGN_DATA);
    cr_assert_eq(build_parse(&b, &r, &err), DC_ERR_FIELD);
    free(data);

    /* SIGN-PASS2 and SIGN-END: no fields at all */
    const enum kv_op bare[] = {KV_OP_SIGN_PASS2, KV_OP_SIGN_END};
    for (size_t i = 0; i < 2; i++) {
        kv_msg_begin(&b, (uint8_t)bare[i]);
        cr_assert_eq(build_parse(&b, &r, &err), DC_OK, "%s", err.msg);
        cr_assert_eq(r.op, bare[i]);
        kv_msg_begin(&b, (uint8_t)bare[i]);
        kv_msg_add(&b, KV_T_DATA, "x", 1);
        cr_assert_eq(build_parse(&b, &r, &err), DC_ERR_FIELD);
    }
    /* the op after the last one is still unknown */
    const uint8_t unknown[2] = {KV_VERSION, KV_OP_MAX + 1};
    cr_assert_eq(kv_request_parse(unknown, 2, &r, &err), DC_ERR_FORMAT);
    dc_buf_free(&b);
}

/* The vault side of a stream: the signature equals kv_vault_sign's over the whole message,
 * for a user and for the org; other second passes, announced lengths and limits are held. */
Test(kvstore, vault_streams_sign_like_sign_and_hold_their_lengths)
{
    char *db = path("s.db");
    struct kv_vault *v = open_vault(db, 7, DC_OK);
    struct dc_err err = {0};
    cr_assert_eq(kv_vault_domain_init(v, "example.test", true, NULL, NULL, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(kv_vault_user_add(v, "erin@example.test", KV_MODE_TRUSTFUL, NULL, NULL, 0, NULL,
                                   &err), DC_OK, "%s", err.msg);
    uint8_t msg[50000], want[64], sig[64];
    cr_assert_eq(dc_random(msg, sizeof(msg)), DC_OK);
    const char *who[] = {"erin@example.test", "example.test"};
    const enum kv_purpose pur[] = {KV_PURPOSE_AUTHOR_FULL, KV_PURPOSE_ORIGIN};
    for (int w = 0; w < 2; w++) {
        for (int announce = 0; announce < 2; announce++) {
            struct kv_sign_stream *s = NULL;
            cr_assert_eq(kv_vault_sign(v, who[w], pur[w], msg, sizeof(msg), want, &err), KV_OK);
            cr_assert_eq(kv_vault_stream_begin(v, who[w], pur[w],
                                               announce ? sizeof(msg) : UINT64_MAX, 1 << 20, &s,
                                               &err), KV_OK, "%s", err.msg);
            for (int pass = 0; pass < 2; pass++) {
                for (size_t at = 0; at < sizeof(msg); at += 7000) {
                    size_t n = sizeof(msg) - at < 7000 ? sizeof(msg) - at : 7000;
                    cr_assert_eq(kv_vault_stream_data(s, msg + at, n, &err), KV_OK, "%s",
                                 err.msg);
                }
                if (pass == 0)
                    cr_assert_eq(kv_vault_stream_pass2(s, &err), KV_OK, "%s", err.msg);
            }
            cr_assert_eq(kv_vault_stream_end(s, sig, &err), KV_OK, "%s", err.msg);
            kv_sign_stream_free(s);
            cr_assert_arr_eq(sig, want, 64, "%s announce=%d", who[w], announce);
        }
    }
    /* purposes and principals as for SIGN */
    struct kv_sign_stream *s = NULL;
    cr_assert_eq(kv_vault_stream_begin(v, "erin@example.test", KV_PURPOSE_ORIGIN, UINT64_MAX,
                                       1 << 20, &s, &err), KV_E_PURPOSE);
    cr_assert_eq(kv_vault_stream_begin(v, "example.test", KV_PURPOSE_CHUNK, UINT64_MAX, 1 << 20,
                                       &s, &err), KV_E_PURPOSE);
    cr_assert_eq(kv_vault_stream_begin(v, "nobody@example.test", KV_PURPOSE_CHUNK, UINT64_MAX,
                                       1 << 20, &s, &err), KV_E_NOTFOUND);
    cr_assert_null(s);
    /* an announced length above the limit; a pass above the limit or the announced length */
    cr_assert_eq(kv_vault_stream_begin(v, who[0], pur[0], (1 << 20) + 1, 1 << 20, &s, &err),
                 KV_E_BADREQ);
    cr_assert_null(s);
    cr_assert_eq(kv_vault_stream_begin(v, who[0], pur[0], UINT64_MAX, 65536, &s, &err), KV_OK);
    cr_assert_eq(kv_vault_stream_data(s, msg, 40000, &err), KV_OK);
    cr_assert_eq(kv_vault_stream_data(s, msg, 40000, &err), KV_E_BADREQ);
    cr_assert(strstr(err.msg, "sign-stream-max") != NULL, "%s", err.msg);
    kv_sign_stream_free(s);
    cr_assert_eq(kv_vault_stream_begin(v, who[0], pur[0], 100, 65536, &s, &err), KV_OK);
    cr_assert_eq(kv_vault_stream_data(s, msg, 99, &err), KV_OK);
    cr_assert_eq(kv_vault_stream_pass2(s, &err), KV_E_BADREQ);
    cr_assert(strstr(err.msg, "99 of the announced 100") != NULL, "%s", err.msg);
    kv_sign_stream_free(s);
    /* a second pass with one byte changed, or cut short, or SIGN-END too early */
    for (int how = 0; how < 3; how++) {
        uint8_t none[64] = {0}, out[64] = {0};
        cr_assert_eq(kv_vault_stream_begin(v, who[0], pur[0], UINT64_MAX, 65536, &s, &err),
                     KV_OK);
        cr_assert_eq(kv_vault_stream_data(s, msg, 1000, &err), KV_OK);
        if (how < 2) {
            cr_assert_eq(kv_vault_stream_pass2(s, &err), KV_OK);
            cr_assert_eq(kv_vault_stream_pass2(s, &err), KV_E_BADREQ);
            msg[500] ^= how == 0 ? 1 : 0;
            cr_assert_eq(kv_vault_stream_data(s, msg, how == 0 ? 1000 : 999, &err), KV_OK);
            msg[500] ^= how == 0 ? 1 : 0;
        }
        cr_assert_eq(kv_vault_stream_end(s, out, &err), KV_E_BADREQ);
        cr_assert(strstr(err.msg, how == 0   ? "differs from the first"
                                  : how == 1 ? "999 bytes, the first 1000"
                                             : "before the second pass") != NULL,
                  "%s", err.msg);
        cr_assert_arr_eq(out, none, 64);
        kv_sign_stream_free(s);
    }
    kv_vault_close(v);
    free(db);
}

/* ---- POK offline by default, the online SOK, rollover ---- */

struct exported {
    struct dc_keyfile *key;
    enum dc_status answer;
};

static enum dc_status keep_export(void *ctx, const struct dc_keyfile *key, struct dc_err *err)
{
    struct exported *x = ctx;
    uint8_t *bin;
    size_t len;
    cr_assert_eq(dc_keyfile_serialize(key, &bin, &len, err), DC_OK);
    cr_assert_eq(dc_keyfile_parse(bin, len, &x->key, err), DC_OK);
    dc_secure_free(bin, len);
    if (x->answer != DC_OK)
        return dc_fail(err, x->answer, "export refused (test)");
    return DC_OK;
}

static struct dc_signet *org_signet_of(struct kv_vault *v, const char *fp)
{
    uint8_t *bin;
    size_t len;
    struct dc_signet *s = NULL;
    struct dc_err err = {0};
    cr_assert_eq(kv_vault_signet(v, "example.test", fp, &bin, &len, &err), KV_OK, "%s",
                 err.msg);
    cr_assert_eq(dc_signet_parse(bin, len, &s, &err), DC_OK, "%s", err.msg);
    free(bin);
    return s;
}

static struct dc_signet *user_signet_of(struct kv_vault *v, const char *who)
{
    uint8_t *bin;
    size_t len;
    struct dc_signet *s = NULL;
    struct dc_err err = {0};
    cr_assert_eq(kv_vault_signet(v, who, NULL, &bin, &len, &err), KV_OK, "%s", err.msg);
    cr_assert_eq(dc_signet_parse(bin, len, &s, &err), DC_OK, "%s", err.msg);
    free(bin);
    return s;
}

/* The public key that signed an origin signature made by the vault now. */
static bool origin_signed_by(struct kv_vault *v, const uint8_t pub[32])
{
    uint8_t sig[64], msg[3] = {1, 2, 3};
    struct dc_err err = {0};
    cr_assert_eq(kv_vault_sign(v, "example.test", KV_PURPOSE_ORIGIN, msg, sizeof(msg), sig,
                               &err), KV_OK, "%s", err.msg);
    return dc_ed25519_verify(pub, msg, sizeof(msg), sig) == DC_OK;
}

Test(kvstore, domain_init_exports_the_pok_and_signs_with_the_online_sok)
{
    char *db = path("p.db");
    struct kv_vault *v = open_vault(db, 5, DC_OK);
    struct dc_err err = {0};
    /* an export that fails leaves no domain behind */
    struct exported x = {.answer = DC_ERR_IO};
    cr_assert_eq(kv_vault_domain_init(v, "example.test", false, keep_export, &x, &err),
                 DC_ERR_IO);
    dc_keyfile_free(x.key);
    struct kv_domain d;
    cr_assert_eq(kv_store_domain_get(v->store, &d, &err), DC_ERR_NOTFOUND);
    /* without a file and without --pok-online the POK would be lost: refused */
    cr_assert_eq(kv_vault_domain_init(v, "example.test", false, NULL, NULL, &err), DC_ERR_ARG);

    x = (struct exported){.answer = DC_OK};
    cr_assert_eq(kv_vault_domain_init(v, "example.test", false, keep_export, &x, &err), DC_OK,
                 "%s", err.msg);
    cr_assert_not_null(x.key);
    cr_assert_eq(kv_store_domain_get(v->store, &d, &err), DC_OK);
    cr_assert_null(d.pok, "the POK is in the vault");
    cr_assert_not_null(d.sok);
    cr_assert_eq(d.sok_perm, DC_SOK_SIGNET | DC_SOK_MSG);
    kv_domain_clear(&d);

    struct dc_signet *org = org_signet_of(v, NULL);
    uint8_t pok[32];
    struct dc_sok sok[4];
    cr_assert_eq(dc_signet_signing_key(org, pok, &err), DC_OK);
    cr_assert_eq(memcmp(pok, x.key->sign->pub, 32), 0, "the exported POK is not the signet's");
    cr_assert_eq(dc_signet_soks(org, sok, 4), 1);
    cr_assert_eq(sok[0].perm, DC_SOK_SIGNET | DC_SOK_MSG);
    cr_assert_geq(dc_signet_verify_org(org, (const uint8_t(*)[32])pok, 1, &err), DC_SS_ID,
                  "%s", err.msg);
    /* origin signatures and user signets by the SOK, and they verify as such */
    cr_assert(origin_signed_by(v, sok[0].pub));
    cr_assert_eq(kv_vault_user_add(v, "dave@example.test", KV_MODE_TRUSTFUL, NULL, NULL, 0,
                                   NULL, &err), DC_OK, "%s", err.msg);
    struct dc_signet *u = user_signet_of(v, "dave@example.test");
    cr_assert(dc_signet_user_signed_by(u, sok[0].pub));
    cr_assert_geq(dc_signet_verify_user(u, org, NULL, &err), DC_SS_CRYPTO, "%s", err.msg);
    /* the TLS binding needs the POK, which the vault does not hold */
    struct kv_org_signer os;
    cr_assert_eq(kv_vault_pok_signer(v, &os, &err), KV_E_PURPOSE);
    uint8_t sig[64];
    cr_assert_eq(kv_vault_sign(v, "example.test", KV_PURPOSE_TLS, sig, 3, sig, &err),
                 KV_E_PURPOSE);
    /* a second init is refused before anything is exported */
    struct exported y = {.answer = DC_OK};
    cr_assert_eq(kv_vault_domain_init(v, "other.test", false, keep_export, &y, &err),
                 DC_ERR_ARG);
    cr_assert_null(y.key);
    dc_signet_free(u);
    dc_signet_free(org);
    dc_keyfile_free(x.key);
    kv_vault_close(v);
    free(db);
}

Test(kvstore, pok_online_signs_origin_and_tls_with_the_pok_and_signets_with_the_sok)
{
    char *db = path("o.db");
    struct kv_vault *v = open_vault(db, 5, DC_OK);
    struct dc_err err = {0};
    cr_assert_eq(kv_vault_domain_init(v, "example.test", true, NULL, NULL, &err), DC_OK, "%s",
                 err.msg);
    struct dc_signet *org = org_signet_of(v, NULL);
    uint8_t pok[32], msg[3] = {4, 5, 6}, sig[64];
    struct dc_sok sok;
    cr_assert_eq(dc_signet_signing_key(org, pok, &err), DC_OK);
    cr_assert_eq(dc_signet_soks(org, &sok, 1), 1);
    cr_assert_eq(sok.perm, DC_SOK_SIGNET, "beside an online POK the SOK signs signets only");
    /* origin signatures by the POK: what libdime-only peers can verify */
    cr_assert(origin_signed_by(v, pok));
    cr_assert_eq(kv_vault_sign(v, "example.test", KV_PURPOSE_TLS, msg, 3, sig, &err), KV_OK,
                 "%s", err.msg);
    cr_assert_eq(dc_ed25519_verify(pok, msg, 3, sig), DC_OK, "TLS is signed by the POK");
    cr_assert_eq(kv_vault_user_add(v, "dave@example.test", KV_MODE_TRUSTFUL, NULL, NULL, 0,
                                   NULL, &err), DC_OK, "%s", err.msg);
    struct dc_signet *u = user_signet_of(v, "dave@example.test");
    cr_assert(dc_signet_user_signed_by(u, sok.pub));
    struct kv_org_signer os;
    cr_assert_eq(kv_vault_pok_signer(v, &os, &err), KV_OK, "%s", err.msg);
    cr_assert_eq(memcmp(os.key->pub, pok, 32), 0);
    /* a rollover keeps the SOK's permissions: origin signatures stay with the POK */
    struct dc_keyfile kf = {.type = DC_KEY_ORG, .sign = os.key};
    struct kv_rollover r;
    cr_assert_eq(kv_vault_sok_rollover(v, &kf, false, &r, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(r.perm, DC_SOK_SIGNET);
    cr_assert(origin_signed_by(v, pok));
    kv_org_signer_free(&os);
    dc_signet_free(u);
    dc_signet_free(org);
    kv_vault_close(v);
    free(db);
}

Test(kvstore, sok_rollover_switches_keeps_old_signets_verifying_and_forgets_the_old_sok)
{
    char *db = path("r.db");
    struct kv_vault *v = open_vault(db, 5, DC_OK);
    struct dc_err err = {0};
    struct exported x = {.answer = DC_OK};
    cr_assert_eq(kv_vault_domain_init(v, "example.test", false, keep_export, &x, &err), DC_OK,
                 "%s", err.msg);
    cr_assert_eq(kv_vault_user_add(v, "dave@example.test", KV_MODE_TRUSTFUL, NULL, NULL, 0,
                                   NULL, &err), DC_OK, "%s", err.msg);
    struct dc_signet *org1 = org_signet_of(v, NULL), *u1 = user_signet_of(v, "dave@example.test");
    struct dc_sok s1;
    char fp1[DC_FP_B64_LEN + 1], fpc1[DC_FP_B64_LEN + 1];
    cr_assert_eq(dc_signet_soks(org1, &s1, 1), 1);
    cr_assert_eq(dc_signet_fp(org1, fp1, fpc1, &err), DC_OK);
    struct kv_domain d1;
    cr_assert_eq(kv_store_domain_get(v->store, &d1, &err), DC_OK);

    /* another POK is refused, nothing changes */
    struct dc_keyfile *other = NULL;
    struct kv_rollover r;
    cr_assert_eq(dc_keyfile_generate(DC_KEY_ORG, &other, &err), DC_OK);
    cr_assert_eq(kv_vault_sok_rollover(v, other, false, &r, &err), DC_ERR_KEY);
    dc_keyfile_free(other);
    cr_assert(origin_signed_by(v, s1.pub));

    cr_assert_eq(kv_vault_sok_rollover(v, x.key, false, &r, &err), DC_OK, "%s", err.msg);
    cr_assert(r.had_sok && r.old_listed);
    cr_assert_eq(memcmp(r.old_sok, s1.pub, 32), 0);
    cr_assert_str_eq(r.old_fp, fp1);
    struct dc_signet *org2 = org_signet_of(v, NULL);
    struct dc_sok s2[4];
    cr_assert_eq(dc_signet_soks(org2, s2, 4), 2);
    cr_assert_eq(memcmp(s2[0].pub, r.sok, 32), 0);
    cr_assert_eq(s2[0].perm, DC_SOK_SIGNET | DC_SOK_MSG);
    cr_assert_eq(memcmp(s2[1].pub, s1.pub, 32), 0);
    cr_assert_eq(s2[1].perm, DC_SOK_SIGNET, "the old SOK keeps only the SIGNET bit");
    /* the vault signs with the new SOK; the old sealed seed is gone */
    cr_assert(origin_signed_by(v, s2[0].pub));
    cr_assert_not(origin_signed_by(v, s1.pub));
    struct kv_domain d2;
    cr_assert_eq(kv_store_domain_get(v->store, &d2, &err), DC_OK);
    cr_assert_null(d2.pok);
    cr_assert(d2.sok_len != d1.sok_len || memcmp(d2.sok, d1.sok, d1.sok_len) != 0);
    kv_domain_clear(&d1);
    kv_domain_clear(&d2);
    /* a user signet of before verifies against the new org signet, a new one too */
    cr_assert_geq(dc_signet_verify_user(u1, org2, NULL, &err), DC_SS_CRYPTO, "%s", err.msg);
    cr_assert_eq(kv_vault_user_add(v, "erin@example.test", KV_MODE_TRUSTFUL, NULL, NULL, 0,
                                   NULL, &err), DC_OK, "%s", err.msg);
    struct dc_signet *u2 = user_signet_of(v, "erin@example.test");
    cr_assert(dc_signet_user_signed_by(u2, s2[0].pub));
    cr_assert_geq(dc_signet_verify_user(u2, org2, NULL, &err), DC_SS_CRYPTO, "%s", err.msg);
    /* mail signed before names the old org signet: still served by either fingerprint, and
     * the org's KEK answers for it (the encryption key did not change) */
    struct dc_signet *old = org_signet_of(v, fpc1);
    cr_assert_eq(old->bin_len, org1->bin_len);
    cr_assert_eq(memcmp(old->bin, org1->bin, org1->bin_len), 0);
    dc_signet_free(old);
    old = org_signet_of(v, fp1);
    dc_signet_free(old);
    struct dc_kek kek;
    struct dc_enc_key *eph = NULL;
    cr_assert_eq(dc_enc_key_generate(&eph, &err), DC_OK);
    cr_assert_eq(kv_vault_kek(v, "example.test", eph->pub, fpc1, &kek, &err), KV_OK, "%s",
                 err.msg);
    cr_assert_eq(kv_vault_kek(v, "example.test", eph->pub, "nope", &kek, &err), KV_E_NOTFOUND);
    dc_enc_key_free(eph);

    /* every user re-issued by the new SOK: the next rollover lists the first SOK no more */
    cr_assert_eq(kv_vault_user_rotate(v, "dave@example.test", 0, NULL, NULL, 0, NULL, NULL,
                                      &err), DC_OK, "%s", err.msg);
    struct dc_signet *u3 = user_signet_of(v, "dave@example.test");
    cr_assert_eq(kv_vault_sok_rollover(v, x.key, false, &r, &err), DC_OK, "%s", err.msg);
    struct dc_signet *org3 = org_signet_of(v, NULL);
    struct dc_sok s3[4];
    /* the first SOK still signed dave's generation 1, which stays stored: it stays listed */
    cr_assert_eq(dc_signet_soks(org3, s3, 4), 3);
    cr_assert_geq(dc_signet_verify_user(u1, org3, NULL, &err), DC_SS_CRYPTO, "%s", err.msg);
    cr_assert_geq(dc_signet_verify_user(u3, org3, u1, &err), DC_SS_CRYPTO, "%s", err.msg);

    /* --revoke: the SOK going offline is dropped, the signets it made stop verifying; the
     * other retired SOKs stay */
    cr_assert_eq(kv_vault_user_add(v, "fay@example.test", KV_MODE_TRUSTFUL, NULL, NULL, 0,
                                   NULL, &err), DC_OK, "%s", err.msg);
    struct dc_signet *u4 = user_signet_of(v, "fay@example.test");
    cr_assert(dc_signet_user_signed_by(u4, s3[0].pub));
    cr_assert_eq(kv_vault_sok_rollover(v, x.key, true, &r, &err), DC_OK, "%s", err.msg);
    cr_assert_not(r.old_listed);
    struct dc_signet *org4 = org_signet_of(v, NULL);
    struct dc_sok s4[4];
    cr_assert_eq(dc_signet_soks(org4, s4, 4), 3);
    cr_assert_lt(dc_signet_verify_user(u4, org4, NULL, &err), DC_SS_CRYPTO);
    cr_assert_geq(dc_signet_verify_user(u3, org4, u1, &err), DC_SS_CRYPTO, "%s", err.msg);
    cr_assert_geq(dc_signet_verify_user(u1, org4, NULL, &err), DC_SS_CRYPTO, "%s", err.msg);
    dc_signet_free(u4);

    dc_signet_free(org1);
    dc_signet_free(org2);
    dc_signet_free(org3);
    dc_signet_free(org4);
    dc_signet_free(u1);
    dc_signet_free(u2);
    dc_signet_free(u3);
    dc_keyfile_free(x.key);
    kv_vault_close(v);
    free(db);
}

static size_t count_str(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void redirect_stderr(void)
{
    cr_redirect_stderr();
}

Test(kvstore, the_pok_standing_in_for_a_sok_is_logged_once_per_permission,
     .init = redirect_stderr)
{
    char *db = path("l.db");
    struct kv_vault *v = open_vault(db, 5, DC_OK);
    struct dc_err err = {0};
    cr_assert_eq(kv_vault_domain_init(v, "example.test", true, NULL, NULL, &err), DC_OK, "%s",
                 err.msg);
    uint8_t msg[3] = {7, 8, 9}, sig[64];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(kv_vault_sign(v, "example.test", KV_PURPOSE_ORIGIN, msg, 3, sig, &err),
                     KV_OK);
        cr_assert_eq(kv_vault_sign(v, "example.test", KV_PURPOSE_TLS, msg, 3, sig, &err),
                     KV_OK);
    }
    kv_vault_close(v);
    free(db);
    fflush(stderr);
    char buf[4096] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, cr_get_redirected_stderr());
    buf[n] = '\0';
    /* the POK signs origin signatures (the SOK beside it has SIGNET only) and TLS: one line
     * for each */
    for (unsigned perm = 2; perm <= 4; perm += 2) {
        char *want = dc_xasprintf("org-signer domain=example.test permission=0x%02x key=pok",
                                  perm);
        const char *first = strstr(buf, want);
        cr_assert_not_null(first, "no log line for %u: %s", perm, buf);
        cr_assert_null(strstr(first + 1, want), "logged more than once: %s", buf);
        free(want);
    }
    cr_assert_eq(count_str(buf, "key=pok"), 2, "%s", buf);
}
