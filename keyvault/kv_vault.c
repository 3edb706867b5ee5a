/*
 * kv_vault - domain and user administration and the private-key operations over the sealed
 * store. See kv_vault.h.
 */
#include "kv_vault.h"

#include "dc_rollover.h"

#include "dc_crypto.h"
#include "dl_log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_KIND "master-key-check"
#define USER_KEY_LEN (DC_ED25519_SEED_LEN + DC_SECP_PRIV_LEN)

/* Public keys of sealed signing seeds: see sign_key_of(). */
#define PUBCACHE_SLOTS 256
#define PUBCACHE_TAG 32

struct kv_pubcache {
    struct {
        uint8_t tag[PUBCACHE_TAG];
        uint8_t pub[DC_ED25519_PUB_LEN];
        bool used;
    } slot[PUBCACHE_SLOTS];
};

enum dc_status kv_secret_load(const char *keyfile, const char *passfile, struct kv_secret *out,
                              struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    if ((keyfile == NULL) == (passfile == NULL))
        return dc_fail(err, DC_ERR_ARG, "exactly one of master-key-file and passphrase-file "
                       "must be set");
    if (keyfile != NULL)
        return kv_master_load_file(keyfile, &out->key, err);
    return kv_passphrase_load(passfile, &out->pass, &out->passlen, err);
}

void kv_secret_clear(struct kv_secret *s)
{
    kv_master_free(s->key);
    if (s->pass != NULL)
        dc_secure_free(s->pass, s->passlen);
    memset(s, 0, sizeof(*s));
}

/* The row a key of some kind is sealed in (the seal's row, dl_seal.h): "name|generation". */
static char *row_id(const char *name, uint32_t gen)
{
    return dc_xasprintf("%s|%u", name, gen);
}

static enum dc_status check_master(struct kv_vault *v, struct dc_err *err)
{
    uint8_t *blob = NULL, *plain = NULL;
    size_t bl = 0, pl = 0;
    enum dc_status s = kv_store_meta_get(v->store, "master-check", &blob, &bl, err);
    if (s == DC_ERR_NOTFOUND) {
        uint8_t zero[32] = {0};
        if ((s = kv_seal(v->master, CHECK_KIND, "", zero, sizeof(zero), &blob, &bl, err)) != DC_OK)
            return s;
        s = kv_store_meta_add(v->store, "master-check", blob, bl, err);
        free(blob);
        if (s != DC_ERR_ARG)
            return s;
        /* another process (a keyvault of another node) stored one first: check against it */
        s = kv_store_meta_get(v->store, "master-check", &blob, &bl, err);
    }
    if (s != DC_OK)
        return s;
    s = kv_open(v->master, CHECK_KIND, "", blob, bl, &plain, &pl, err);
    free(blob);
    if (s == DC_ERR_SIGNATURE)
        return dc_fail(err, s, "the master key does not match this database (wrong key file "
                       "or passphrase)");
    if (s == DC_OK)
        dc_secure_free(plain, pl);
    return s;
}

/* For kv_store_reseal: a value of a store written before dl_seal, sealed again in the current
 * format under the same kind and row. The check value comes first: with a wrong master key
 * nothing is converted. */
static enum dc_status reseal_v0(void *ctx, const char *what, const char *name, uint32_t gen,
                                const uint8_t *in, size_t len, uint8_t **out, size_t *outlen,
                                struct dc_err *err)
{
    struct kv_vault *v = ctx;
    bool check = strcmp(what, "master-check") == 0;
    const char *kind = check ? CHECK_KIND : what;
    char *row = check ? dc_xstrdup("") : row_id(name, gen);
    uint8_t *p;
    size_t pl;
    enum dc_status s = kv_open_v0(v->master, kind, row, in, len, &p, &pl, err);
    if (s == DC_OK) {
        s = kv_seal(v->master, kind, row, p, pl, out, outlen, err);
        dc_secure_free(p, pl);
    } else if (check && s == DC_ERR_SIGNATURE) {
        dc_fail(err, s, "the master key does not match this database (wrong key file or "
                "passphrase)");
    }
    free(row);
    return s;
}

enum dc_status kv_vault_open(const char *dbpath, struct kv_secret *sec, struct kv_vault **out,
                             struct dc_err *err)
{
    struct kv_store *store = NULL;
    enum dc_status s = kv_store_open_sqlite(dbpath, &store, err);
    if (s != DC_OK) {
        kv_secret_clear(sec);
        return s;
    }
    return kv_vault_open_store(store, sec, out, err);
}

enum dc_status kv_vault_open_store(struct kv_store *store, struct kv_secret *sec,
                                   struct kv_vault **out, struct dc_err *err)
{
    struct kv_vault *v = dc_xcalloc(1, sizeof(*v));
    v->pubs = dc_xcalloc(1, sizeof(*v->pubs));
    v->store = store;
    enum dc_status s = DC_OK;
    if (sec->key != NULL) {
        v->master = sec->key;
        sec->key = NULL;
    } else {
        uint8_t *salt = NULL;
        size_t sl = 0;
        s = kv_store_meta_get(v->store, "scrypt-salt", &salt, &sl, err);
        if (s == DC_ERR_NOTFOUND) {
            salt = dc_xmalloc(KV_SALT_LEN);
            sl = KV_SALT_LEN;
            s = dc_random(salt, KV_SALT_LEN);
            if (s == DC_OK)
                s = kv_store_meta_add(v->store, "scrypt-salt", salt, sl, err);
            if (s == DC_ERR_ARG) { /* another node made it first: every node uses that one */
                free(salt);
                salt = NULL;
                s = kv_store_meta_get(v->store, "scrypt-salt", &salt, &sl, err);
            }
        }
        if (s == DC_OK && sl != KV_SALT_LEN)
            s = dc_fail(err, DC_ERR_FORMAT, "the stored scrypt salt has %zu bytes", sl);
        if (s == DC_OK)
            s = kv_master_from_passphrase(sec->pass, sec->passlen, salt, &v->master, err);
        free(salt);
    }
    kv_secret_clear(sec);
    if (s == DC_OK)
        s = kv_store_reseal(v->store, DL_SEAL_VERSION, reseal_v0, v, err);
    if (s == DC_OK)
        s = check_master(v, err);
    if (s != DC_OK) {
        kv_vault_close(v);
        return s;
    }
    *out = v;
    return DC_OK;
}

void kv_vault_close(struct kv_vault *v)
{
    if (v == NULL)
        return;
    kv_store_close(v->store);
    kv_master_free(v->master);
    free(v->pubs);
    free(v);
}

enum dc_status kv_normalize(const char *in, size_t len, char *out, struct dc_err *err)
{
    if (len == 0 || len > KV_NAME_MAX)
        return dc_fail(err, DC_ERR_ARG, "a name must have 1..%d characters", KV_NAME_MAX);
    size_t at = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= 0x20 || c >= 0x7f)
            return dc_fail(err, DC_ERR_ARG, "a name may hold only printable ASCII without "
                           "spaces");
        if (c == '@')
            at++;
        out[i] = (char)tolower(c);
    }
    out[len] = '\0';
    if (at > 1 || out[0] == '@' || out[len - 1] == '@')
        return dc_fail(err, DC_ERR_ARG, "'%s' is neither a domain nor user@domain", out);
    return DC_OK;
}

/* ---- public keys of sealed signing seeds ----
 *
 * Importing an Ed25519 seed derives its public key, a scalar multiplication that cost as much
 * as the signature itself (half of a SIGN request; bench/keyvault, BENCHMARKS.md). The public
 * key of a seed unsealed from a given sealed blob is therefore remembered, keyed by a hash of
 * the blob's row identity and its bytes, and handed to dc_sign_key_from_seed_pub()
 * the next time that same blob is opened. This is sound because the blob is authenticated
 * (AES-GCM under the master key, bound to its kind and row): the same bytes open to the same seed, or not
 * at all; a blob that changes (rotation, import, another nonce) gets a new tag and a freshly
 * derived public key. The table holds no secret: public keys and hashes of ciphertexts. It
 * is direct-mapped and bounded (PUBCACHE_SLOTS); a collision only costs a derivation. */

static void blob_tag(const char *a, const uint8_t *blob, size_t len, uint8_t tag[PUBCACHE_TAG])
{
    size_t al = strlen(a) + 1; /* with its NUL: separates the row from the blob */
    uint8_t *buf = dc_xmalloc(al + len), h[DC_SHA512_LEN];
    memcpy(buf, a, al);
    memcpy(buf + al, blob, len);
    dc_sha512(buf, al + len, h);
    free(buf);
    memcpy(tag, h, PUBCACHE_TAG);
}

/* The signing key of seed, just unsealed from blob with row identity a. */
static enum dc_status sign_key_of(struct kv_vault *v, const char *a, const uint8_t *blob,
                                  size_t len, const uint8_t *seed, struct dc_sign_key **out,
                                  struct dc_err *err)
{
    if (v->pubs == NULL)
        return dc_sign_key_from_seed(seed, out, err);
    uint8_t tag[PUBCACHE_TAG];
    blob_tag(a, blob, len, tag);
    size_t i = ((size_t)tag[0] << 8 | tag[1]) % PUBCACHE_SLOTS;
    struct kv_pubcache *c = v->pubs;
    if (c->slot[i].used && memcmp(c->slot[i].tag, tag, PUBCACHE_TAG) == 0)
        return dc_sign_key_from_seed_pub(seed, c->slot[i].pub, out, err);
    enum dc_status s = dc_sign_key_from_seed(seed, out, err);
    if (s == DC_OK) {
        memcpy(c->slot[i].tag, tag, PUBCACHE_TAG);
        memcpy(c->slot[i].pub, (*out)->pub, DC_ED25519_PUB_LEN);
        c->slot[i].used = true;
    }
    return s;
}

/* ---- org keys ---- */

#define POK_ONLY 0xff /* for stored_org_signer: no SOK permission, the POK itself */

static enum dc_status unseal_seed(struct kv_vault *v, const char *kind, const char *domain,
                                  const uint8_t *blob, size_t len, struct dc_sign_key **out,
                                  struct dc_err *err)
{
    char *a = row_id(domain, 0);
    uint8_t *p;
    size_t pl;
    enum dc_status s = kv_open(v->master, kind, a, blob, len, &p, &pl, err);
    if (s != DC_OK) {
        free(a);
        return s;
    }
    if (pl != DC_ED25519_SEED_LEN)
        s = dc_fail(err, DC_ERR_FORMAT, "sealed %s has %zu bytes", kind, pl);
    else
        s = sign_key_of(v, a, blob, len, p, out, err);
    free(a);
    dc_secure_free(p, pl);
    return s;
}

/* kv_vault_org_signer with the domain row d already read (and left to the caller): the online
 * SOK when its permissions cover perm; the POK only when it is online and no SOK may (noted
 * once per purpose in the log: libdime-only peers need it for origin signatures, see
 * dimectl(8)). */
static enum kv_status org_signer_of(struct kv_vault *v, const struct kv_domain *dp,
                                    uint8_t perm, struct kv_org_signer *out, struct dc_err *err)
{
    const struct kv_domain d = *dp;
    enum dc_status s = DC_OK;
    enum kv_status r = KV_OK;
    if (d.sok != NULL && (d.sok_perm & perm) == perm) {
        s = unseal_seed(v, "org-sok", d.name, d.sok, d.sok_len, &out->key, err);
        out->is_sok = true;
    } else if (d.pok != NULL) {
        if ((__atomic_fetch_or(&v->pok_noted, perm, __ATOMIC_RELAXED) & perm) == 0)
            dl_log(LOG_NOTICE, "org-signer domain=%s permission=0x%02x key=pok reason=\"%s\"",
                   d.name, perm, d.sok != NULL ? "the online SOK lacks this permission"
                                               : "no online SOK");
        s = unseal_seed(v, "org-pok", d.name, d.pok, d.pok_len, &out->key, err);
    } else {
        dc_fail(err, DC_ERR_ARG, "the POK of %s is offline and no online SOK has permission "
                "0x%02x", d.name, perm);
        r = KV_E_PURPOSE;
    }
    if (r == KV_OK && s != DC_OK)
        r = KV_E_INTERNAL;
    if (r == KV_OK)
        dc_signer_local(&out->signer, out->key);
    return r;
}

/* The org signer for perm, or (perm 0xff) the POK itself, from the stored domain row. */
static enum kv_status stored_org_signer(struct kv_vault *v, uint8_t perm,
                                        struct kv_org_signer *out, struct dc_err *err)
{
    struct kv_domain d;
    memset(out, 0, sizeof(*out));
    enum dc_status s = kv_store_domain_get(v->store, &d, err);
    if (s != DC_OK)
        return s == DC_ERR_NOTFOUND ? KV_E_NOTFOUND : KV_E_INTERNAL;
    enum kv_status r = KV_OK;
    if (perm != POK_ONLY) {
        r = org_signer_of(v, &d, perm, out, err);
    } else if (d.pok == NULL) {
        dc_fail(err, DC_ERR_ARG, "the POK of %s is offline", d.name);
        r = KV_E_PURPOSE;
    } else if (unseal_seed(v, "org-pok", d.name, d.pok, d.pok_len, &out->key, err) != DC_OK) {
        r = KV_E_INTERNAL;
    } else {
        dc_signer_local(&out->signer, out->key);
    }
    kv_domain_clear(&d);
    return r;
}

enum kv_status kv_vault_org_signer(struct kv_vault *v, uint8_t perm, struct kv_org_signer *out,
                                   struct dc_err *err)
{
    return stored_org_signer(v, perm, out, err);
}

enum kv_status kv_vault_pok_signer(struct kv_vault *v, struct kv_org_signer *out,
                                   struct dc_err *err)
{
    return stored_org_signer(v, POK_ONLY, out, err);
}

void kv_org_signer_free(struct kv_org_signer *s)
{
    dc_sign_key_free(s->key);
    memset(s, 0, sizeof(*s));
}

static enum dc_status seal_put(struct kv_vault *v, const char *kind, const char *name,
                               uint32_t gen, const uint8_t *p, size_t n, uint8_t **out,
                               size_t *outlen, struct dc_err *err)
{
    char *a = row_id(name, gen);
    enum dc_status s = kv_seal(v->master, kind, a, p, n, out, outlen, err);
    free(a);
    return s;
}

/* Adds full and ID signatures (and the identifier) with the org signer. */
static enum dc_status sign_full_id(struct dc_signet *s, const char *id,
                                   const struct dc_signer *org, struct dc_err *err)
{
    enum dc_status st = dc_signet_sign(s, DC_FID_FULL, org, err);
    if (st == DC_OK)
        st = dc_signet_set_id(s, id, err);
    if (st == DC_OK)
        st = dc_signet_sign(s, DC_FID_IDSIG, org, err);
    return st;
}

/* The org signet of a new domain: POK, the online SOK, the encryption key, signed by the POK,
 * with the domain as identifier. */
static enum dc_status new_org_signet(const char *name, const struct dc_keyfile *key,
                                     const struct dc_sign_key *sok, uint8_t perm,
                                     struct dc_signet **out, struct dc_err *err)
{
    struct dc_signet *bare = NULL;
    struct dc_signer pok;
    struct dc_sok one = {.perm = perm};
    memcpy(one.pub, sok->pub, DC_ED25519_PUB_LEN);
    dc_signer_local(&pok, key->sign);
    enum dc_status s = dc_signet_org_create(key->sign, key->enc->pub, &bare, err);
    if (s == DC_OK)
        s = sign_full_id(bare, name, &pok, err);
    if (s == DC_OK)
        s = dc_signet_org_set_soks(bare, &one, 1, &pok, out, err);
    dc_signet_free(bare);
    return s;
}

enum dc_status kv_vault_domain_init(struct kv_vault *v, const char *domain, bool pok_online,
                                    kv_pok_export_fn export, void *ctx, struct dc_err *err)
{
    char name[KV_NAME_MAX + 1];
    enum dc_status s = kv_normalize(domain, strlen(domain), name, err);
    if (s != DC_OK)
        return s;
    if (strchr(name, '@') != NULL)
        return dc_fail(err, DC_ERR_ARG, "'%s' is an address, not a domain", name);
    if (export == NULL && !pok_online)
        return dc_fail(err, DC_ERR_ARG, "the POK must go to a file or stay online");
    struct kv_domain d;
    memset(&d, 0, sizeof(d));
    /* refused before any key is made or exported */
    if ((s = kv_store_domain_get(v->store, &d, err)) != DC_ERR_NOTFOUND) {
        if (s == DC_OK)
            s = dc_fail(err, DC_ERR_ARG, "the vault already holds domain %s", d.name);
        kv_domain_clear(&d);
        return s;
    }
    snprintf(d.name, sizeof(d.name), "%s", name);
    struct dc_keyfile *key = NULL;
    struct dc_sign_key *sok = NULL;
    struct dc_signet *org = NULL;
    d.sok_perm = pok_online ? KV_SOK_BESIDE_POK_PERM : KV_SOK_ONLINE_PERM;
    if ((s = dc_keyfile_generate(DC_KEY_ORG, &key, err)) == DC_OK &&
        (s = dc_sign_key_generate(&sok, err)) == DC_OK)
        s = new_org_signet(name, key, sok, (uint8_t)d.sok_perm, &org, err);
    if (s == DC_OK && pok_online)
        s = seal_put(v, "org-pok", name, 0, key->sign->seed, DC_ED25519_SEED_LEN, &d.pok,
                     &d.pok_len, err);
    if (s == DC_OK)
        s = seal_put(v, "org-enc", name, 0, key->enc->priv, DC_SECP_PRIV_LEN, &d.enc,
                     &d.enc_len, err);
    if (s == DC_OK)
        s = seal_put(v, "org-sok", name, 0, sok->seed, DC_ED25519_SEED_LEN, &d.sok, &d.sok_len,
                     err);
    if (s == DC_OK && export != NULL)
        s = export(ctx, key, err);
    if (s == DC_OK) {
        d.signet = org->bin;
        d.signet_len = org->bin_len;
        s = kv_store_domain_put(v->store, &d, false, err);
        d.signet = NULL;
    }
    kv_domain_clear(&d);
    dc_signet_free(org);
    dc_sign_key_free(sok);
    dc_keyfile_free(key);
    return s;
}

enum dc_status kv_vault_domain_import(struct kv_vault *v, const struct dc_keyfile *key,
                                      const struct dc_signet *org, const struct dc_keyfile *sok,
                                      bool offline_pok, struct dc_err *err)
{
    uint8_t pok[DC_ED25519_PUB_LEN], encpub[DC_SECP_PUB_LEN];
    enum dc_status s;
    if (org->type != DC_SIGNET_ORG)
        return dc_fail(err, DC_ERR_MAGIC, "the signet is a %s signet, not an organizational "
                       "one", dc_signet_type_name(org->type));
    if (key->type != DC_KEY_ORG || key->sign == NULL || key->enc == NULL)
        return dc_fail(err, DC_ERR_MAGIC, "the key file is not an organizational key with a "
                       "POK and an encryption key");
    if ((s = dc_signet_signing_key(org, pok, err)) != DC_OK ||
        (s = dc_signet_enc_key(org, encpub, err)) != DC_OK)
        return s;
    if (dc_memeq_ct(pok, key->sign->pub, sizeof(pok)) != 0)
        return dc_fail(err, DC_ERR_KEY, "the key file's POK is not the signet's POK");
    if (dc_memeq_ct(encpub, key->enc->pub, sizeof(encpub)) != 0)
        return dc_fail(err, DC_ERR_KEY, "the key file's encryption key is not the signet's");
    if (dc_signet_verify_org(org, (const uint8_t(*)[DC_ED25519_PUB_LEN])&pok, 1, err) <
        DC_SS_CRYPTO)
        return dc_fail(err, DC_ERR_SIGNATURE, "the org signet does not verify: %s", err->msg);
    char *id = dc_signet_id(org);
    if (id == NULL)
        return dc_fail(err, DC_ERR_FIELD, "the org signet has no identifier (fid 254): the "
                       "domain name is needed");
    char name[KV_NAME_MAX + 1];
    s = kv_normalize(id, strlen(id), name, err);
    free(id);
    if (s != DC_OK)
        return s;
    struct kv_domain d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "%s", name);
    if (sok != NULL) {
        struct dc_sok soks[16];
        size_t n = dc_signet_soks(org, soks, 16);
        bool found = false;
        if (sok->sok == NULL)
            return dc_fail(err, DC_ERR_MAGIC, "the --sok file is not a SOK key file");
        for (size_t i = 0; i < n && i < 16; i++)
            if (memcmp(soks[i].pub, sok->sok->pub, DC_ED25519_PUB_LEN) == 0) {
                found = true;
                d.sok_perm = soks[i].perm;
            }
        if (!found)
            return dc_fail(err, DC_ERR_KEY, "the SOK is not listed in the org signet");
    }
    if (offline_pok && (sok == NULL || !(d.sok_perm & DC_SOK_SIGNET)))
        return dc_fail(err, DC_ERR_ARG, "with the POK offline, a SOK with the SIGNET "
                       "permission is needed to sign user signets");
    if (!offline_pok)
        s = seal_put(v, "org-pok", name, 0, key->sign->seed, DC_ED25519_SEED_LEN, &d.pok,
                     &d.pok_len, err);
    if (s == DC_OK)
        s = seal_put(v, "org-enc", name, 0, key->enc->priv, DC_SECP_PRIV_LEN, &d.enc,
                     &d.enc_len, err);
    if (s == DC_OK && sok != NULL)
        s = seal_put(v, "org-sok", name, 0, sok->sok->seed, DC_ED25519_SEED_LEN, &d.sok,
                     &d.sok_len, err);
    if (s == DC_OK) {
        d.signet = org->bin;
        d.signet_len = org->bin_len;
        s = kv_store_domain_put(v->store, &d, false, err);
        d.signet = NULL;
    }
    kv_domain_clear(&d);
    return s;
}

/* ---- SOK rollover ---- */

/* used[i]: whether some stored user signet (any user, any generation) carries an org
 * signature by soks[i]. */
static enum dc_status soks_in_use(struct kv_vault *v, const struct dc_sok *soks, size_t n,
                                  bool *used, struct dc_err *err)
{
    struct kv_user *users = NULL;
    size_t nu = 0;
    memset(used, 0, n * sizeof(*used));
    enum dc_status s = kv_store_user_list(v->store, &users, &nu, err);
    for (size_t u = 0; s == DC_OK && u < nu; u++) {
        struct kv_generation *g = NULL;
        size_t ng = 0;
        if ((s = kv_store_gen_list(v->store, users[u].address, &g, &ng, err)) != DC_OK)
            break;
        for (size_t k = 0; s == DC_OK && k < ng; k++) {
            struct dc_signet *us = NULL;
            if ((s = dc_signet_parse(g[k].signet, g[k].signet_len, &us, err)) != DC_OK)
                break;
            for (size_t i = 0; i < n; i++)
                if (!used[i] && dc_signet_user_signed_by(us, soks[i].pub))
                    used[i] = true;
            dc_signet_free(us);
        }
        kv_generations_free(g, ng);
    }
    free(users);
    return s;
}

/* The SOK list after a rollover: the new online SOK first; the SOK going offline kept with
 * the SIGNET bit only while user signets it signed are stored (and not revoke); earlier
 * retired ones (SIGNET only) while still vouching for one; any other SOK as it was. */
static enum dc_status rollover_list(struct kv_vault *v, const struct dc_signet *org,
                                    const uint8_t *old_pub, const uint8_t new_pub[32],
                                    uint8_t perm, bool revoke, struct dc_sok *out,
                                    size_t *nout, struct kv_rollover *res, struct dc_err *err)
{
    struct dc_sok soks[DC_SIGNET_MAX_SOKS];
    bool used[DC_SIGNET_MAX_SOKS];
    size_t n = dc_signet_soks(org, soks, DC_SIGNET_MAX_SOKS), k = 0;
    if (n > DC_SIGNET_MAX_SOKS)
        n = DC_SIGNET_MAX_SOKS;
    enum dc_status s = soks_in_use(v, soks, n, used, err);
    if (s != DC_OK)
        return s;
    out[k].perm = perm;
    memcpy(out[k++].pub, new_pub, DC_ED25519_PUB_LEN);
    for (size_t i = 0; i < n; i++) {
        bool online = old_pub != NULL && memcmp(soks[i].pub, old_pub, DC_ED25519_PUB_LEN) == 0;
        uint8_t bits = soks[i].perm;
        if (online || bits == KV_SOK_RETIRED_PERM) {
            if (!used[i] || (online && revoke))
                continue;
            bits = KV_SOK_RETIRED_PERM;
            res->retired_listed++;
            if (online)
                res->old_listed = true;
        }
        if (k == DC_SIGNET_MAX_SOKS)
            return dc_fail(err, DC_ERR_LIMIT, "the org signet would list more than %d SOKs: "
                           "rotate the users whose signets old SOKs signed, or --revoke",
                           DC_SIGNET_MAX_SOKS);
        out[k] = soks[i];
        out[k++].perm = bits;
    }
    *nout = k;
    return DC_OK;
}

enum dc_status kv_vault_sok_rollover(struct kv_vault *v, const struct dc_keyfile *pok,
                                     bool revoke, struct kv_rollover *res, struct dc_err *err)
{
    struct kv_domain d;
    struct dc_signet *org = NULL, *next = NULL;
    struct dc_sign_key *old = NULL, *sok = NULL;
    uint8_t pub[DC_ED25519_PUB_LEN];
    char fp[DC_FP_B64_LEN + 1], fpc[DC_FP_B64_LEN + 1];
    memset(res, 0, sizeof(*res));
    if (pok->type != DC_KEY_ORG || pok->sign == NULL)
        return dc_fail(err, DC_ERR_MAGIC, "the --pok file is not an org key file with a POK");
    enum dc_status s = kv_store_domain_get(v->store, &d, err);
    if (s != DC_OK)
        return s;
    if ((s = dc_signet_parse(d.signet, d.signet_len, &org, err)) == DC_OK &&
        (s = dc_signet_signing_key(org, pub, err)) == DC_OK &&
        dc_memeq_ct(pub, pok->sign->pub, sizeof(pub)) != 0)
        s = dc_fail(err, DC_ERR_KEY, "the --pok file holds another POK than %s's", d.name);
    if (s == DC_OK && d.sok != NULL)
        s = unseal_seed(v, "org-sok", d.name, d.sok, d.sok_len, &old, err);
    if (s == DC_OK)
        s = dc_sign_key_generate(&sok, err);
    struct dc_sok list[DC_SIGNET_MAX_SOKS];
    size_t n = 0;
    /* the new SOK may do what the one it replaces did */
    uint8_t perm = d.sok != NULL ? (uint8_t)d.sok_perm : KV_SOK_ONLINE_PERM;
    if (s == DC_OK)
        s = rollover_list(v, org, old ? old->pub : NULL, sok->pub, perm, revoke, list, &n, res,
                          err);
    struct dc_signer signer;
    dc_signer_local(&signer, pok->sign);
    if (s == DC_OK)
        s = dc_signet_org_set_soks(org, list, n, &signer, &next, err);
    if (s == DC_OK && dc_signet_verify_org(next, (const uint8_t(*)[DC_ED25519_PUB_LEN])&pub, 1,
                                           err) < DC_SS_FULL)
        s = dc_fail(err, DC_ERR_SIGNATURE, "the new org signet does not verify: %s", err->msg);
    if (s == DC_OK)
        s = dc_signet_fp(org, fp, fpc, err);
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    if (s == DC_OK)
        s = seal_put(v, "org-sok", d.name, 0, sok->seed, DC_ED25519_SEED_LEN, &sealed,
                     &sealed_len, err);
    if (s == DC_OK) {
        struct kv_domain nd = d;
        nd.signet = next->bin;
        nd.signet_len = next->bin_len;
        nd.sok = sealed;
        nd.sok_len = sealed_len;
        nd.sok_perm = perm;
        s = kv_store_domain_rollover(v->store, &nd, d.signet, d.signet_len, fp, fpc, err);
    }
    if (s == DC_OK) {
        res->perm = perm;
        memcpy(res->sok, sok->pub, DC_ED25519_PUB_LEN);
        res->had_sok = old != NULL;
        if (old != NULL)
            memcpy(res->old_sok, old->pub, DC_ED25519_PUB_LEN);
        snprintf(res->old_fp, sizeof(res->old_fp), "%s", fp);
        s = dc_signet_fp(next, res->fp, fpc, err);
    }
    free(sealed);
    dc_sign_key_free(old);
    dc_sign_key_free(sok);
    dc_signet_free(next);
    dc_signet_free(org);
    kv_domain_clear(&d);
    return s;
}

enum dc_status kv_vault_pok_rollover(struct kv_vault *v, const struct dc_keyfile *old,
                                     kv_pok_export_fn export, void *ctx,
                                     struct kv_pok_rollover *res, struct dc_err *err)
{
    struct kv_domain d;
    struct dc_signet *org = NULL, *next = NULL;
    struct dc_keyfile *key = NULL;
    uint8_t pub[DC_ED25519_PUB_LEN], encpub[DC_SECP_PUB_LEN];
    char fp[DC_FP_B64_LEN + 1], fpc[DC_FP_B64_LEN + 1];
    memset(res, 0, sizeof(*res));
    if (old->type != DC_KEY_ORG || old->sign == NULL || old->enc == NULL)
        return dc_fail(err, DC_ERR_MAGIC, "the --pok-old file is not an org key file with a "
                       "POK and an encryption key");
    enum dc_status s = kv_store_domain_get(v->store, &d, err);
    if (s != DC_OK)
        return s;
    if ((s = dc_signet_parse(d.signet, d.signet_len, &org, err)) == DC_OK &&
        (s = dc_signet_signing_key(org, pub, err)) == DC_OK &&
        (s = dc_signet_enc_key(org, encpub, err)) == DC_OK &&
        (dc_memeq_ct(pub, old->sign->pub, sizeof(pub)) != 0 ||
         dc_memeq_ct(encpub, old->enc->pub, sizeof(encpub)) != 0))
        s = dc_fail(err, DC_ERR_KEY, "the --pok-old file holds another POK or encryption key "
                    "than %s's", d.name);
    /* the new key file: a new POK beside the domain's encryption key, which stays */
    if (s == DC_OK && (s = dc_keyfile_generate(DC_KEY_ORG, &key, err)) == DC_OK) {
        dc_enc_key_free(key->enc);
        key->enc = NULL;
        s = dc_enc_key_from_private(old->enc->priv, &key->enc, err);
    }
    struct dc_signer os, ns;
    if (s == DC_OK) {
        dc_signer_local(&os, old->sign);
        dc_signer_local(&ns, key->sign);
        s = dc_rollover_org(org, d.name, &os, &ns, &next, err);
    }
    size_t steps = 0;
    if (s == DC_OK &&
        (dc_signet_verify_org(next, (const uint8_t(*)[DC_ED25519_PUB_LEN])key->sign->pub, 1,
                              err) < DC_SS_FULL ||
         !dc_rollover_chain(next, d.name, pub, &steps, err)))
        s = dc_fail(err, DC_ERR_SIGNATURE, "the new org signet does not verify: %s", err->msg);
    if (s == DC_OK)
        s = dc_signet_fp(org, fp, fpc, err);
    struct kv_domain nd = d;
    nd.pok = NULL;
    nd.pok_len = 0;
    if (s == DC_OK && d.pok != NULL)
        s = seal_put(v, "org-pok", d.name, 0, key->sign->seed, DC_ED25519_SEED_LEN, &nd.pok,
                     &nd.pok_len, err);
    if (s == DC_OK && export != NULL)
        s = export(ctx, key, err);
    if (s == DC_OK) {
        nd.signet = next->bin;
        nd.signet_len = next->bin_len;
        s = kv_store_domain_rollover(v->store, &nd, d.signet, d.signet_len, fp, fpc, err);
    }
    if (s == DC_OK) {
        memcpy(res->pok, key->sign->pub, DC_ED25519_PUB_LEN);
        memcpy(res->old_pok, pub, DC_ED25519_PUB_LEN);
        snprintf(res->old_fp, sizeof(res->old_fp), "%s", fp);
        s = dc_signet_fp(next, res->fp, fpc, err);
    }
    free(nd.pok);
    dc_keyfile_free(key);
    dc_signet_free(next);
    dc_signet_free(org);
    kv_domain_clear(&d);
    return s;
}

/* ---- users ---- */

static enum dc_status user_domain_check(struct kv_vault *v, const char *address,
                                        struct dc_signet **org, struct dc_err *err)
{
    struct kv_domain d;
    enum dc_status s = kv_store_domain_get(v->store, &d, err);
    if (s != DC_OK)
        return s;
    const char *at = strchr(address, '@');
    if (at == NULL || strcmp(at + 1, d.name) != 0) {
        s = dc_fail(err, DC_ERR_ARG, "%s is not an address of %s", address, d.name);
    } else {
        s = dc_signet_parse(d.signet, d.signet_len, org, err);
    }
    kv_domain_clear(&d);
    return s;
}

/* A secp256k1 key for ECDH only (KEK derivation): the unsealed scalar in secure memory, with
 * pub left zeroed. dc_enc_key_from_private() also computes the public point (two base-point
 * multiplications: context blinding and the point), which a KEK never uses; that was a third
 * of an UNWRAP request (bench/keyvault, BENCHMARKS.md). The scalar's range is checked by
 * dc_ecdh_x() (libsecp256k1 refuses zero and out-of-range scalars). Such a key must not leave
 * this file. */
static struct dc_enc_key *ecdh_only_key(const uint8_t priv[DC_SECP_PRIV_LEN])
{
    struct dc_enc_key *k = dc_secure_alloc(sizeof(*k));
    memcpy(k->priv, priv, DC_SECP_PRIV_LEN);
    return k;
}

/* ek, when asked for, is an ECDH-only key (see ecdh_only_key). */
static enum dc_status unseal_user(struct kv_vault *v, const char *address,
                                  const struct kv_generation *g, struct dc_sign_key **sk,
                                  struct dc_enc_key **ek, struct dc_err *err)
{
    char *a = row_id(address, g->generation);
    uint8_t *p;
    size_t pl;
    enum dc_status s = kv_open(v->master, "user-key", a, g->sealed, g->sealed_len, &p, &pl, err);
    if (s != DC_OK) {
        free(a);
        return s;
    }
    if (pl != USER_KEY_LEN)
        s = dc_fail(err, DC_ERR_FORMAT, "sealed user key has %zu bytes", pl);
    if (s == DC_OK && sk != NULL)
        s = sign_key_of(v, a, g->sealed, g->sealed_len, p, sk, err);
    free(a);
    if (s == DC_OK && ek != NULL)
        *ek = ecdh_only_key(p + DC_ED25519_SEED_LEN);
    dc_secure_free(p, pl);
    if (s != DC_OK && sk != NULL) {
        dc_sign_key_free(*sk);
        *sk = NULL;
    }
    return s;
}

enum dc_status kv_vault_user_keys(struct kv_vault *v, const char *address,
                                  const struct kv_generation *g,
                                  uint8_t out[KV_USER_KEYS_LEN], struct dc_err *err)
{
    char *a = row_id(address, g->generation);
    uint8_t *p = NULL;
    size_t pl = 0;
    enum dc_status s = kv_open(v->master, "user-key", a, g->sealed, g->sealed_len, &p, &pl, err);
    free(a);
    if (s == DC_OK && pl != KV_USER_KEYS_LEN)
        s = dc_fail(err, DC_ERR_FORMAT, "sealed user key has %zu bytes", pl);
    if (s == DC_OK)
        memcpy(out, p, KV_USER_KEYS_LEN);
    if (p != NULL)
        dc_secure_free(p, pl);
    return s;
}

/* Builds generation g (signet, sealed key or blob) for address. prev: the current generation
 * when rotating, else NULL. */
static enum dc_status make_generation(struct kv_vault *v, const char *address,
                                      enum kv_mode mode, const struct dc_signet *ssr_in,
                                      const uint8_t *blob, size_t bloblen,
                                      const struct dc_keyfile *import,
                                      const struct kv_generation *prev, struct kv_generation *g,
                                      struct dc_err *err)
{
    memset(g, 0, sizeof(*g));
    g->generation = prev ? prev->generation + 1 : 1;
    g->mode = mode;
    /* a device handing its new generation over (Paranoid or Cautious -> Trustful): its SSR,
     * with the custody signature its current key made, and the keys it names */
    bool handover = mode == KV_MODE_TRUSTFUL && ssr_in != NULL && import != NULL;
    if (mode == KV_MODE_TRUSTFUL && !handover && (ssr_in != NULL || blob != NULL))
        return dc_fail(err, DC_ERR_ARG, "a Trustful user's keys are generated by the vault: "
                       "no SSR or key blob is taken");
    if (import != NULL && (mode != KV_MODE_TRUSTFUL || import->type != DC_KEY_USER ||
                           import->sign == NULL || import->enc == NULL))
        return dc_fail(err, DC_ERR_ARG, "only a Trustful user's key file (USER KEY) can be "
                       "imported");
    if (mode != KV_MODE_TRUSTFUL && ssr_in == NULL)
        return dc_fail(err, DC_ERR_ARG, "a %s user needs a signing request (--ssr)",
                       kv_mode_name(mode));
    if (mode == KV_MODE_CAUTIOUS && blob == NULL)
        return dc_fail(err, DC_ERR_ARG, "a Cautious user needs an encrypted key blob "
                       "(--key-blob)");
    if (mode == KV_MODE_PARANOID && blob != NULL)
        return dc_fail(err, DC_ERR_ARG, "the vault keeps no key blob of a Paranoid user");
    if (ssr_in != NULL && ssr_in->type != DC_SIGNET_SSR)
        return dc_fail(err, DC_ERR_MAGIC, "--ssr holds a %s signet, not a signing request",
                       dc_signet_type_name(ssr_in->type));

    struct dc_signet *org = NULL, *prevsig = NULL, *ssr = NULL, *user = NULL;
    struct dc_sign_key *sk = NULL, *prevkey = NULL;
    struct dc_enc_key *ek = NULL;
    struct kv_org_signer os = {0};
    uint8_t keys[USER_KEY_LEN];
    enum dc_status s = user_domain_check(v, address, &org, err);
    if (s == DC_OK && prev != NULL)
        s = dc_signet_parse(prev->signet, prev->signet_len, &prevsig, err);
    if (s == DC_OK && handover) {
        uint8_t sp[DC_ED25519_PUB_LEN], ep[DC_SECP_PUB_LEN];
        if (dc_signet_signing_key(ssr_in, sp, err) != DC_OK ||
            dc_signet_enc_key(ssr_in, ep, err) != DC_OK ||
            memcmp(sp, import->sign->pub, sizeof(sp)) != 0 ||
            memcmp(ep, import->enc->pub, sizeof(ep)) != 0)
            s = dc_fail(err, DC_ERR_KEY, "the keys handed over are not the signing request's");
        if (s == DC_OK) {
            memcpy(keys, import->sign->seed, DC_ED25519_SEED_LEN);
            memcpy(keys + DC_ED25519_SEED_LEN, import->enc->priv, DC_SECP_PRIV_LEN);
            s = seal_put(v, "user-key", address, g->generation, keys, sizeof(keys), &g->sealed,
                         &g->sealed_len, err);
            dc_memzero(keys, sizeof(keys));
        }
    } else if (s == DC_OK && mode == KV_MODE_TRUSTFUL) {
        if (prev != NULL && prev->sealed == NULL)
            s = dc_fail(err, DC_ERR_CUSTODY, "the vault does not hold the signing key of "
                        "generation %u, so it cannot sign the chain of custody to new "
                        "Trustful keys", prev->generation);
        if (s == DC_OK && prev != NULL)
            s = unseal_user(v, address, prev, &prevkey, NULL, err);
        if (s == DC_OK && import != NULL) {
            s = dc_sign_key_from_seed(import->sign->seed, &sk, err);
            if (s == DC_OK)
                s = dc_enc_key_from_private(import->enc->priv, &ek, err);
        } else if (s == DC_OK) {
            s = dc_sign_key_generate(&sk, err);
            if (s == DC_OK)
                s = dc_enc_key_generate(&ek, err);
        }
        if (s == DC_OK)
            s = dc_signet_ssr_create(sk, ek->pub, prevkey, &ssr, err);
        if (s == DC_OK) {
            memcpy(keys, sk->seed, DC_ED25519_SEED_LEN);
            memcpy(keys + DC_ED25519_SEED_LEN, ek->priv, DC_SECP_PRIV_LEN);
            s = seal_put(v, "user-key", address, g->generation, keys, sizeof(keys), &g->sealed,
                         &g->sealed_len, err);
            dc_memzero(keys, sizeof(keys));
        }
    }
    if (s == DC_OK && kv_vault_org_signer(v, DC_SOK_SIGNET, &os, err) != KV_OK)
        s = err->code ? err->code : DC_ERR_ARG;
    if (s == DC_OK)
        s = dc_signet_ssr_sign(ssr ? ssr : ssr_in, prevsig, &os.signer, &user, err);
    if (s == DC_OK)
        s = sign_full_id(user, address, &os.signer, err);
    if (s == DC_OK && dc_signet_verify_user(user, org, prevsig, err) < DC_SS_CRYPTO)
        s = dc_fail(err, DC_ERR_SIGNATURE, "the new user signet does not verify: %s", err->msg);
    if (s == DC_OK)
        s = dc_signet_fp(user, g->fp, g->fp_crypto, err);
    if (s == DC_OK) {
        g->signet = dc_xmalloc(user->bin_len);
        memcpy(g->signet, user->bin, user->bin_len);
        g->signet_len = user->bin_len;
        if (blob != NULL) {
            g->blob = dc_xmalloc(bloblen ? bloblen : 1);
            memcpy(g->blob, blob, bloblen);
            g->blob_len = bloblen;
        }
    }
    kv_org_signer_free(&os);
    dc_signet_free(org);
    dc_signet_free(prevsig);
    dc_signet_free(ssr);
    dc_signet_free(user);
    dc_sign_key_free(sk);
    dc_sign_key_free(prevkey);
    dc_enc_key_free(ek);
    if (s != DC_OK)
        kv_generation_clear(g);
    return s;
}

enum dc_status kv_vault_user_add(struct kv_vault *v, const char *address, enum kv_mode mode,
                                 const struct dc_signet *ssr, const uint8_t *blob,
                                 size_t bloblen, const struct dc_keyfile *key,
                                 struct dc_err *err)
{
    struct kv_user u;
    memset(&u, 0, sizeof(u));
    enum dc_status s = kv_normalize(address, strlen(address), u.address, err);
    if (s != DC_OK)
        return s;
    struct kv_user old;
    if (kv_store_user_get(v->store, u.address, &old, NULL) == DC_OK)
        return dc_fail(err, DC_ERR_ARG, "user %s already exists", u.address);
    u.mode = mode;
    u.generation = 1;
    struct kv_generation g;
    if ((s = make_generation(v, u.address, mode, ssr, blob, bloblen, key, NULL, &g, err)) != DC_OK)
        return s;
    s = kv_store_user_add(v->store, &u, &g, err);
    kv_generation_clear(&g);
    return s;
}

enum dc_status kv_vault_user_rotate(struct kv_vault *v, const char *address, enum kv_mode mode,
                                    const struct dc_signet *ssr, const uint8_t *blob,
                                    size_t bloblen, const struct dc_keyfile *key,
                                    uint32_t *newgen, struct dc_err *err)
{
    char addr[KV_NAME_MAX + 1];
    struct kv_user u;
    enum dc_status s = kv_normalize(address, strlen(address), addr, err);
    if (s != DC_OK || (s = kv_store_user_get(v->store, addr, &u, err)) != DC_OK)
        return s;
    struct kv_generation cur, g;
    if ((s = kv_store_gen_get(v->store, addr, u.generation, &cur, err)) != DC_OK)
        return s;
    s = make_generation(v, addr, mode ? mode : u.mode, ssr, blob, bloblen, key, &cur, &g,
                        err);
    if (s == DC_OK) {
        s = kv_store_user_rotate(v->store, addr, cur.generation, &g, err);
        if (s == DC_OK && newgen != NULL)
            *newgen = g.generation;
        kv_generation_clear(&g);
    }
    kv_generation_clear(&cur);
    return s;
}

/* ---- operations ---- */

static enum kv_status st_of(enum dc_status s)
{
    switch (s) {
    case DC_OK: return KV_OK;
    case DC_ERR_NOTFOUND: return KV_E_NOTFOUND;
    case DC_ERR_KEY: return KV_E_CRYPTO;
    case DC_ERR_ARG: return KV_E_NOTFOUND;
    default: return KV_E_INTERNAL;
    }
}

static bool is_user(const char *principal)
{
    return strchr(principal, '@') != NULL;
}

/* Finds the generation a user request refers to and checks that the vault holds its keys. */
static enum kv_status user_gen(struct kv_vault *v, const char *user, const char *fp,
                               struct kv_generation *g, struct dc_err *err)
{
    struct kv_user u;
    /* the generation in one statement (by fp, or 0: the current one); only when there is
     * none, the user's row is read first as before, which gives the error (no user, or no
     * such generation) */
    enum dc_status s = fp ? kv_store_gen_by_fp(v->store, user, fp, g, err)
                          : kv_store_gen_get(v->store, user, 0, g, err);
    if (s == DC_ERR_NOTFOUND) {
        s = kv_store_user_get(v->store, user, &u, err);
        if (s != DC_OK)
            return st_of(s);
        s = fp ? kv_store_gen_by_fp(v->store, user, fp, g, err)
               : kv_store_gen_get(v->store, user, u.generation, g, err);
    }
    if (s != DC_OK)
        return st_of(s);
    if (g->sealed == NULL) {
        enum kv_status r = g->mode == KV_MODE_TRUSTFUL ? KV_E_NOTFOUND : KV_E_MODE;
        dc_fail(err, DC_ERR_NOTFOUND, r == KV_E_MODE ? "generation %u of the user is %s: the "
                "vault holds no private key" : "the keys of generation %u were retired%s",
                g->generation, r == KV_E_MODE ? kv_mode_name(g->mode) : "");
        kv_generation_clear(g);
        return r;
    }
    return KV_OK;
}

static enum kv_status org_check(struct kv_vault *v, const char *principal, struct kv_domain *d,
                                struct dc_err *err)
{
    enum dc_status s = kv_store_domain_get(v->store, d, err);
    if (s != DC_OK)
        return st_of(s);
    if (strcmp(d->name, principal) != 0) {
        kv_domain_clear(d);
        dc_fail(err, DC_ERR_NOTFOUND, "not the vault's domain");
        return KV_E_NOTFOUND;
    }
    return KV_OK;
}

/* The key that signs for principal with purpose: a user's current key (*user_sk), or the
 * org's signer (os). *k points at whichever it is; free both holders afterwards. */
static enum kv_status sign_key_for(struct kv_vault *v, const char *principal,
                                   enum kv_purpose purpose, struct dc_sign_key **user_sk,
                                   struct kv_org_signer *os, const struct dc_sign_key **k,
                                   struct dc_err *err)
{
    bool user_purpose = purpose == KV_PURPOSE_CHUNK || purpose == KV_PURPOSE_AUTHOR_TREE ||
                        purpose == KV_PURPOSE_AUTHOR_FULL;
    enum kv_status r;
    *user_sk = NULL;
    memset(os, 0, sizeof(*os));
    if (is_user(principal)) {
        if (!user_purpose) {
            dc_fail(err, DC_ERR_ARG, "purpose %s is for the organization only",
                    kv_purpose_name(purpose));
            return KV_E_PURPOSE;
        }
        struct kv_generation g;
        if ((r = user_gen(v, principal, NULL, &g, err)) != KV_OK)
            return r;
        enum dc_status s = unseal_user(v, principal, &g, user_sk, NULL, err);
        kv_generation_clear(&g);
        *k = *user_sk;
        return s == DC_OK ? KV_OK : KV_E_INTERNAL;
    }
    if (user_purpose) {
        dc_fail(err, DC_ERR_ARG, "purpose %s is for users only", kv_purpose_name(purpose));
        return KV_E_PURPOSE;
    }
    struct kv_domain d;
    if ((r = org_check(v, principal, &d, err)) != KV_OK)
        return r;
    uint8_t perm = purpose == KV_PURPOSE_SIGNET ? DC_SOK_SIGNET
                   : purpose == KV_PURPOSE_TLS  ? DC_SOK_TLS
                                                : DC_SOK_MSG;
    /* the row org_check read (was read a second time by kv_vault_org_signer) */
    r = org_signer_of(v, &d, perm, os, err);
    kv_domain_clear(&d);
    if (r != KV_OK)
        return r;
    *k = os->key;
    return KV_OK;
}

struct kv_sign_stream {
    struct dc_ed25519_sign_ctx *ctx;
    uint64_t expected, limit; /* expected: UINT64_MAX when not announced */
    int pass;
};

enum kv_status kv_vault_stream_begin(struct kv_vault *v, const char *principal,
                                     enum kv_purpose purpose, uint64_t expected, uint64_t limit,
                                     struct kv_sign_stream **out, struct dc_err *err)
{
    struct dc_sign_key *usk;
    struct kv_org_signer os;
    const struct dc_sign_key *k = NULL;
    if (expected != UINT64_MAX && expected > limit) {
        dc_fail(err, DC_ERR_LIMIT, "a message of %llu bytes exceeds sign-stream-max %llu",
                (unsigned long long)expected, (unsigned long long)limit);
        return KV_E_BADREQ;
    }
    enum kv_status r = sign_key_for(v, principal, purpose, &usk, &os, &k, err);
    if (r == KV_OK) {
        struct kv_sign_stream *s = dc_xcalloc(1, sizeof(*s));
        s->ctx = dc_ed25519_sign_init(k);
        s->expected = expected;
        s->limit = limit;
        s->pass = 1;
        *out = s;
    }
    dc_sign_key_free(usk);
    kv_org_signer_free(&os);
    return r;
}

enum kv_status kv_vault_stream_data(struct kv_sign_stream *s, const uint8_t *p, size_t n,
                                    struct dc_err *err)
{
    uint64_t have = dc_ed25519_sign_count(s->ctx);
    uint64_t cap = s->expected != UINT64_MAX ? s->expected : s->limit;
    if (n > cap - have) {
        dc_fail(err, DC_ERR_LIMIT, "the pass exceeds %s %llu bytes",
                s->expected != UINT64_MAX ? "the announced" : "sign-stream-max",
                (unsigned long long)cap);
        return KV_E_BADREQ;
    }
    dc_ed25519_sign_update(s->ctx, p, n);
    return KV_OK;
}

static enum kv_status pass_complete(const struct kv_sign_stream *s, const char *which,
                                    struct dc_err *err)
{
    uint64_t have = dc_ed25519_sign_count(s->ctx);
    if (s->expected != UINT64_MAX && have != s->expected) {
        dc_fail(err, DC_ERR_TRUNCATED, "the %s pass has %llu of the announced %llu bytes",
                which, (unsigned long long)have, (unsigned long long)s->expected);
        return KV_E_BADREQ;
    }
    return KV_OK;
}

enum kv_status kv_vault_stream_pass2(struct kv_sign_stream *s, struct dc_err *err)
{
    if (s->pass != 1) {
        dc_fail(err, DC_ERR_ORDER, "the second pass has already begun");
        return KV_E_BADREQ;
    }
    enum kv_status r = pass_complete(s, "first", err);
    if (r == KV_OK && dc_ed25519_sign_pass2(s->ctx, err) != DC_OK)
        r = KV_E_BADREQ;
    s->pass = 2;
    return r;
}

enum kv_status kv_vault_stream_end(struct kv_sign_stream *s, uint8_t sig[KV_SIG_LEN],
                                   struct dc_err *err)
{
    if (s->pass != 2) {
        dc_fail(err, DC_ERR_ORDER, "sign-end before the second pass");
        return KV_E_BADREQ;
    }
    enum kv_status r = pass_complete(s, "second", err);
    if (r != KV_OK)
        return r;
    struct dc_ed25519_sign_ctx *c = s->ctx;
    s->ctx = NULL; /* _final frees it, signature or not */
    return dc_ed25519_sign_final(c, sig, err) == DC_OK ? KV_OK : KV_E_BADREQ;
}

void kv_sign_stream_free(struct kv_sign_stream *s)
{
    if (s == NULL)
        return;
    dc_ed25519_sign_free(s->ctx);
    free(s);
}

enum kv_status kv_vault_sign(struct kv_vault *v, const char *principal, enum kv_purpose purpose,
                             const uint8_t *msg, size_t len, uint8_t sig[KV_SIG_LEN],
                             struct dc_err *err)
{
    struct dc_sign_key *usk;
    struct kv_org_signer os;
    const struct dc_sign_key *k = NULL;
    enum kv_status r = sign_key_for(v, principal, purpose, &usk, &os, &k, err);
    if (r == KV_OK && dc_ed25519_sign(k, msg, len, sig, err) != DC_OK)
        r = KV_E_INTERNAL;
    dc_sign_key_free(usk);
    kv_org_signer_free(&os);
    return r;
}

/* Whether fp (full or crypto fingerprint) names the org signet d holds, or one a SOK
 * rollover replaced (same POK and encryption key); for a replaced one, its bytes go to *old
 * when old is given. */
static enum kv_status org_fp_check(struct kv_vault *v, const struct kv_domain *d,
                                   const char *fp, uint8_t **old, size_t *oldlen,
                                   struct dc_err *err)
{
    struct dc_signet *org = NULL;
    char f[DC_FP_B64_LEN + 1], fc[DC_FP_B64_LEN + 1];
    enum dc_status s = dc_signet_parse(d->signet, d->signet_len, &org, err);
    if (s == DC_OK)
        s = dc_signet_fp(org, f, fc, err);
    dc_signet_free(org);
    if (s != DC_OK)
        return KV_E_INTERNAL;
    if (strcmp(f, fp) == 0 || strcmp(fc, fp) == 0)
        return KV_OK;
    uint8_t *bin = NULL;
    size_t len = 0;
    if ((s = kv_store_org_signet_by_fp(v->store, fp, &bin, &len, err)) != DC_OK)
        return st_of(s);
    if (old != NULL) {
        *old = bin;
        *oldlen = len;
    } else {
        free(bin);
    }
    return KV_OK;
}

/* The encryption key of a principal (user generation by fp, or the org), for ECDH only. */
static enum kv_status enc_key(struct kv_vault *v, const char *principal, const char *fp,
                              struct dc_enc_key **ek, struct dc_err *err)
{
    enum kv_status r;
    enum dc_status s;
    if (is_user(principal)) {
        struct kv_generation g;
        if ((r = user_gen(v, principal, fp, &g, err)) != KV_OK)
            return r;
        s = unseal_user(v, principal, &g, NULL, ek, err);
        kv_generation_clear(&g);
        return s == DC_OK ? KV_OK : KV_E_INTERNAL;
    }
    struct kv_domain d;
    if ((r = org_check(v, principal, &d, err)) != KV_OK)
        return r;
    if (fp != NULL && (r = org_fp_check(v, &d, fp, NULL, NULL, err)) != KV_OK) {
        kv_domain_clear(&d);
        return r;
    }
    char *a = row_id(d.name, 0);
    uint8_t *p;
    size_t pl;
    s = kv_open(v->master, "org-enc", a, d.enc, d.enc_len, &p, &pl, err);
    free(a);
    kv_domain_clear(&d);
    if (s == DC_OK) {
        if (pl == DC_SECP_PRIV_LEN)
            *ek = ecdh_only_key(p);
        else
            s = dc_fail(err, DC_ERR_FORMAT, "sealed org-enc has %zu bytes", pl);
        dc_secure_free(p, pl);
    }
    return s == DC_OK ? KV_OK : KV_E_INTERNAL;
}

enum kv_status kv_vault_kek(struct kv_vault *v, const char *principal,
                            const uint8_t eph[KV_EPH_LEN], const char *fp, struct dc_kek *kek,
                            struct dc_err *err)
{
    if (dc_secp_pub_check(eph, KV_EPH_LEN, err) != DC_OK)
        return KV_E_CRYPTO;
    struct dc_enc_key *ek = NULL;
    enum kv_status r = enc_key(v, principal, fp, &ek, err);
    if (r != KV_OK)
        return r;
    enum dc_status s = dc_kek_derive(ek, eph, kek, err);
    dc_enc_key_free(ek);
    return s == DC_OK ? KV_OK : KV_E_CRYPTO;
}

enum kv_status kv_vault_unwrap(struct kv_vault *v, const char *principal,
                               const uint8_t eph[KV_EPH_LEN], const uint8_t slot[KV_SLOT_LEN],
                               const char *fp, uint8_t plain[KV_SLOT_LEN], struct dc_err *err)
{
    struct dc_kek *kek = dc_secure_alloc(sizeof(*kek));
    enum kv_status r = kv_vault_kek(v, principal, eph, fp, kek, err);
    if (r == KV_OK &&
        dc_aes256_cbc_decrypt(kek->key, kek->iv, slot, KV_SLOT_LEN, plain, err) != DC_OK)
        r = KV_E_CRYPTO;
    dc_secure_free(kek, sizeof(*kek));
    return r;
}

enum kv_status kv_vault_signet(struct kv_vault *v, const char *principal, const char *fp,
                               uint8_t **bin, size_t *len, struct dc_err *err)
{
    if (is_user(principal)) {
        struct kv_generation g;
        enum dc_status s;
        if (fp != NULL) {
            s = kv_store_gen_by_fp(v->store, principal, fp, &g, err);
        } else if ((s = kv_store_gen_get(v->store, principal, 0, &g, err)) ==
                   DC_ERR_NOTFOUND) {
            /* the current generation in one statement; the user's row only for the error */
            struct kv_user u;
            s = kv_store_user_get(v->store, principal, &u, err);
            if (s == DC_OK)
                s = kv_store_gen_get(v->store, principal, u.generation, &g, err);
        }
        if (s != DC_OK)
            return st_of(s);
        *bin = g.signet;
        *len = g.signet_len;
        g.signet = NULL;
        kv_generation_clear(&g);
        return KV_OK;
    }
    struct kv_domain d;
    enum kv_status r = org_check(v, principal, &d, err);
    if (r != KV_OK)
        return r;
    uint8_t *old = NULL;
    size_t oldlen = 0;
    if (fp != NULL && (r = org_fp_check(v, &d, fp, &old, &oldlen, err)) != KV_OK) {
        kv_domain_clear(&d);
        return r;
    }
    *bin = old != NULL ? old : d.signet;
    *len = old != NULL ? oldlen : d.signet_len;
    if (old == NULL)
        d.signet = NULL;
    kv_domain_clear(&d);
    return KV_OK;
}

enum kv_status kv_vault_history(struct kv_vault *v, const char *user, const char *from,
                                const char *to, struct kv_generation **out, size_t *n,
                                struct dc_err *err)
{
    struct kv_generation *all;
    size_t cnt;
    enum dc_status s = kv_store_gen_list(v->store, user, &all, &cnt, err);
    if (s != DC_OK)
        return st_of(s);
    if (cnt == 0) {
        free(all);
        dc_fail(err, DC_ERR_NOTFOUND, "no such user");
        return KV_E_NOTFOUND;
    }
    size_t a = 0, b = cnt - 1;
    bool fa = from == NULL, fb = to == NULL;
    for (size_t i = 0; i < cnt; i++) {
        if (from && (!strcmp(all[i].fp, from) || !strcmp(all[i].fp_crypto, from))) {
            a = i;
            fa = true;
        }
        if (to && (!strcmp(all[i].fp, to) || !strcmp(all[i].fp_crypto, to))) {
            b = i;
            fb = true;
        }
    }
    if (!fa || !fb || a > b || b - a + 1 > KV_HISTORY_MAX) {
        kv_generations_free(all, cnt);
        dc_fail(err, DC_ERR_NOTFOUND, !fa || !fb ? "fingerprint not in the user's history"
                : a > b ? "from-fingerprint is newer than to-fingerprint"
                        : "history range longer than %u signets", KV_HISTORY_MAX);
        return KV_E_NOTFOUND;
    }
    struct kv_generation *res = dc_xcalloc(b - a + 1, sizeof(*res));
    for (size_t i = a; i <= b; i++) {
        res[i - a] = all[i];
        memset(&all[i], 0, sizeof(all[i]));
    }
    kv_generations_free(all, cnt);
    *out = res;
    *n = b - a + 1;
    return KV_OK;
}

enum kv_status kv_vault_account(struct kv_vault *v, const char *user, bool *exists,
                                struct kv_user *u, struct dc_err *err)
{
    enum dc_status s = kv_store_user_get(v->store, user, u, err);
    *exists = s == DC_OK;
    if (s == DC_OK || s == DC_ERR_NOTFOUND)
        return KV_OK;
    return KV_E_INTERNAL;
}
