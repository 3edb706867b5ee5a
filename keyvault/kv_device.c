/*
 * kv_device - a user's device's requests: enroll, rotate, key blob. See kv_device.h.
 */
#include "kv_device.h"

#include "dl_log.h"

#include <stdlib.h>
#include <string.h>
#include <syslog.h>

/* The protocol status of a failed user add or rotation. */
static enum kv_status status_of(enum dc_status s)
{
    switch (s) {
    case DC_OK: return KV_OK;
    case DC_ERR_CUSTODY: return KV_E_CUSTODY;
    case DC_ERR_ORDER: return KV_E_EXISTS;
    case DC_ERR_NOTFOUND: return KV_E_NOTFOUND;
    case DC_ERR_KEY:
    case DC_ERR_SIGNATURE:
    case DC_ERR_CRYPTO: return KV_E_CRYPTO;
    case DC_ERR_IO:
    case DC_ERR_NOMEM: return KV_E_INTERNAL;
    default: return KV_E_BADREQ; /* the request's SSR or blob */
    }
}

static enum kv_status parse_ssr(const uint8_t *p, size_t n, struct dc_signet **out,
                                struct dc_err *err)
{
    if (dc_signet_parse(p, n, out, err) != DC_OK)
        return KV_E_BADREQ;
    if ((*out)->type != DC_SIGNET_SSR) {
        dc_fail(err, DC_ERR_MAGIC, "a %s signet is not a signing request",
                dc_signet_type_name((*out)->type));
        dc_signet_free(*out);
        *out = NULL;
        return KV_E_BADREQ;
    }
    return KV_OK;
}

/* The current signet and generation of address after a change. */
static enum kv_status current(struct kv_vault *v, const char *address, uint8_t **signet,
                              size_t *siglen, uint32_t *gen, struct dc_err *err)
{
    struct kv_generation g;
    enum dc_status s = kv_store_gen_get(v->store, address, 0, &g, err);
    if (s != DC_OK)
        return status_of(s);
    *signet = g.signet;
    *siglen = g.signet_len;
    *gen = g.generation;
    g.signet = NULL;
    kv_generation_clear(&g);
    return KV_OK;
}

enum kv_status kv_device_enroll(struct kv_vault *v, const char *address, enum kv_mode mode,
                                const uint8_t *ssr, size_t ssrlen, const uint8_t *blob,
                                size_t bloblen, uint8_t **signet, size_t *siglen,
                                uint32_t *gen, struct dc_err *err)
{
    bool exists;
    struct kv_user u;
    enum kv_status st = kv_vault_account(v, address, &exists, &u, err);
    if (st != KV_OK)
        return st;
    if (exists) {
        dc_fail(err, DC_ERR_ARG, "%s already has an account (%s, generation %u): a device "
                "enrolls only a new one, then rotates", address, kv_mode_name(u.mode),
                u.generation);
        return KV_E_EXISTS;
    }
    if (mode != KV_MODE_CAUTIOUS && mode != KV_MODE_PARANOID) {
        dc_fail(err, DC_ERR_ARG, "a device enrolls only a Cautious or Paranoid account");
        return KV_E_BADREQ;
    }
    struct dc_signet *req = NULL;
    if ((st = parse_ssr(ssr, ssrlen, &req, err)) != KV_OK)
        return st;
    enum dc_status s = kv_vault_user_add(v, address, mode, req, blob, blob ? bloblen : 0, NULL,
                                         err);
    dc_signet_free(req);
    /* a concurrent enroll of the same address is the store's unique key */
    if (s == DC_ERR_ARG && kv_vault_account(v, address, &exists, &u, NULL) == KV_OK && exists)
        return KV_E_EXISTS;
    if (s != DC_OK)
        return status_of(s);
    return current(v, address, signet, siglen, gen, err);
}

enum kv_status kv_device_rotate(struct kv_vault *v, const char *address, const uint8_t *ssr,
                                size_t ssrlen, const uint8_t *blob, size_t bloblen,
                                uint8_t **signet, size_t *siglen, uint32_t *gen,
                                struct dc_err *err)
{
    bool exists;
    struct kv_user u;
    enum kv_status st = kv_vault_account(v, address, &exists, &u, err);
    if (st != KV_OK)
        return st;
    if (!exists) {
        dc_fail(err, DC_ERR_NOTFOUND, "%s has no account to rotate: enroll first", address);
        return KV_E_NOTFOUND;
    }
    if (u.mode == KV_MODE_TRUSTFUL) {
        dc_fail(err, DC_ERR_ARG, "%s is Trustful: its keys are the vault's, rotated by the "
                "operator (a device cannot take an account over)", address);
        return KV_E_MODE;
    }
    struct dc_signet *req = NULL;
    if ((st = parse_ssr(ssr, ssrlen, &req, err)) != KV_OK)
        return st;
    uint32_t newgen = 0;
    enum dc_status s = kv_vault_user_rotate(v, address, 0, req, blob, blob ? bloblen : 0, NULL,
                                            &newgen, err);
    dc_signet_free(req);
    if (s != DC_OK)
        return status_of(s);
    return current(v, address, signet, siglen, gen, err);
}

enum kv_status kv_device_blob(struct kv_vault *v, const char *address, uint8_t **blob,
                              size_t *len, uint32_t *gen, struct dc_err *err)
{
    struct kv_generation g;
    enum dc_status s = kv_store_gen_get(v->store, address, 0, &g, err);
    if (s == DC_ERR_NOTFOUND) {
        dc_fail(err, DC_ERR_NOTFOUND, "%s has no account", address);
        return KV_E_NOTFOUND;
    }
    if (s != DC_OK)
        return status_of(s);
    enum kv_status st = KV_OK;
    if (g.mode != KV_MODE_CAUTIOUS || g.blob == NULL) {
        dc_fail(err, DC_ERR_ARG, "%s is %s: the vault keeps a key blob only of a Cautious "
                "account", address, kv_mode_name(g.mode));
        st = KV_E_MODE;
    } else {
        *blob = g.blob;
        *len = g.blob_len;
        *gen = g.generation;
        g.blob = NULL;
    }
    kv_generation_clear(&g);
    return st;
}

/* ---- migration (ACCOUNT.md, "Migration") ---- */

bool kv_device_migrated(struct kv_vault *v, const struct kv_user *u)
{
    struct kv_generation g;
    if (u->mode != KV_MODE_TRUSTFUL || u->generation < 2 ||
        kv_store_gen_get(v->store, u->address, u->generation - 1, &g, NULL) != DC_OK)
        return false;
    bool yes = g.mode != KV_MODE_TRUSTFUL;
    kv_generation_clear(&g);
    return yes;
}

/* The account of address in *u; KV_E_NOTFOUND without one. */
static enum kv_status existing(struct kv_vault *v, const char *address, struct kv_user *u,
                               struct dc_err *err)
{
    bool exists;
    enum kv_status st = kv_vault_account(v, address, &exists, u, err);
    if (st == KV_OK && !exists) {
        dc_fail(err, DC_ERR_NOTFOUND, "%s has no account", address);
        st = KV_E_NOTFOUND;
    }
    return st;
}

enum kv_status kv_device_keys(struct kv_vault *v, const char *address, uint8_t **keys,
                              size_t *n, struct dc_err *err)
{
    struct kv_user u;
    enum kv_status st = existing(v, address, &u, err);
    if (st != KV_OK)
        return st;
    if (u.mode != KV_MODE_TRUSTFUL) {
        dc_fail(err, DC_ERR_ARG, "%s is %s: the vault holds no private key of it", address,
                kv_mode_name(u.mode));
        return KV_E_MODE;
    }
    struct kv_generation *g = NULL;
    size_t ng = 0;
    enum dc_status s = kv_store_gen_list(v->store, address, &g, &ng, err);
    if (s != DC_OK)
        return status_of(s);
    const size_t one = 4 + KV_USER_KEYS_LEN;
    *keys = dc_secure_alloc(ng * one + 1);
    *n = 0;
    for (size_t i = 0; i < ng && s == DC_OK && *n < KV_HISTORY_MAX; i++) {
        if (g[i].sealed == NULL)
            continue; /* retired: its keys are gone */
        uint8_t *p = *keys + *n * one;
        for (unsigned b = 0; b < 4; b++)
            p[b] = (uint8_t)(g[i].generation >> (24 - 8 * b));
        if ((s = kv_vault_user_keys(v, address, &g[i], p + 4, err)) == DC_OK)
            (*n)++;
    }
    kv_generations_free(g, ng);
    if (s == DC_OK && *n == 0)
        s = dc_fail(err, DC_ERR_NOTFOUND, "the vault holds no key of %s", address);
    if (s != DC_OK) {
        dc_secure_free(*keys, ng * one + 1);
        *keys = NULL;
        return s == DC_ERR_NOTFOUND ? KV_E_NOTFOUND : KV_E_INTERNAL;
    }
    dl_log(LOG_NOTICE, "migrate user=%s step=keys generations=%zu result=handed-out", address,
           *n);
    return KV_OK;
}

/* Destroys the vault's keys of every generation of address below `below`; logged. */
static enum dc_status destroy_below(struct kv_vault *v, const char *address, uint32_t below,
                                    size_t *removed, struct dc_err *err)
{
    enum dc_status s = kv_store_user_retire(v->store, address, below, removed, err);
    if (s == DC_OK)
        dl_log(LOG_NOTICE, "migrate user=%s step=destroy below=%u generations=%zu "
               "result=destroyed", address, below, *removed);
    else
        dl_log(LOG_ERR, "migrate user=%s step=destroy below=%u result=failed reason=\"%s\"",
               address, below, err->msg);
    return s;
}

enum kv_status kv_device_to_paranoid(struct kv_vault *v, const char *address,
                                     const uint8_t *ssr, size_t ssrlen, uint8_t **signet,
                                     size_t *siglen, uint32_t *gen, struct dc_err *err)
{
    struct kv_user u;
    enum kv_status st = existing(v, address, &u, err);
    if (st != KV_OK)
        return st;
    size_t removed = 0;
    if (u.mode == KV_MODE_PARANOID) {
        /* a migration whose destruction step failed is finished by asking again */
        if (destroy_below(v, address, u.generation + 1, &removed, err) != DC_OK)
            return KV_E_INTERNAL;
        dc_fail(err, DC_ERR_ARG, "%s is already Paranoid (generation %u)%s", address,
                u.generation, removed ? "; the keys the vault still held are destroyed now" : "");
        return KV_E_MODE;
    }
    if (u.mode != KV_MODE_TRUSTFUL) {
        dc_fail(err, DC_ERR_ARG, "%s is %s: only a Trustful account moves to Paranoid this "
                "way (the vault holds no private key of it: rotate instead)", address,
                kv_mode_name(u.mode));
        return KV_E_MODE;
    }
    struct dc_signet *req = NULL;
    if ((st = parse_ssr(ssr, ssrlen, &req, err)) != KV_OK)
        return st;
    uint32_t newgen = 0;
    enum dc_status s = kv_vault_user_rotate(v, address, KV_MODE_PARANOID, req, NULL, 0, NULL,
                                            &newgen, err);
    dc_signet_free(req);
    if (s != DC_OK)
        return status_of(s);
    dl_log(LOG_NOTICE, "migrate user=%s step=signed generation=%u mode=paranoid", address,
           newgen);
    if (destroy_below(v, address, newgen, &removed, err) != DC_OK) {
        dc_fail(err, DC_ERR_IO, "generation %u is signed and Paranoid, but the vault's keys "
                "are not yet destroyed: ask again", newgen);
        return KV_E_INTERNAL;
    }
    return current(v, address, signet, siglen, gen, err);
}

enum kv_status kv_device_to_trustful(struct kv_vault *v, const char *address,
                                     const uint8_t *ssr, size_t ssrlen,
                                     const uint8_t keys[KV_USER_KEYS_LEN], uint8_t **signet,
                                     size_t *siglen, uint32_t *gen, struct dc_err *err)
{
    struct kv_user u;
    enum kv_status st = existing(v, address, &u, err);
    if (st != KV_OK)
        return st;
    if (u.mode == KV_MODE_TRUSTFUL) {
        dc_fail(err, DC_ERR_ARG, "%s is already Trustful (generation %u)", address,
                u.generation);
        return KV_E_MODE;
    }
    struct dc_signet *req = NULL;
    if ((st = parse_ssr(ssr, ssrlen, &req, err)) != KV_OK)
        return st;
    struct dc_keyfile kf = {.type = DC_KEY_USER};
    enum dc_status s = dc_sign_key_from_seed(keys, &kf.sign, err);
    if (s == DC_OK)
        s = dc_enc_key_from_private(keys + DC_ED25519_SEED_LEN, &kf.enc, err);
    uint32_t newgen = 0;
    if (s == DC_OK)
        s = kv_vault_user_rotate(v, address, KV_MODE_TRUSTFUL, req, NULL, 0, &kf, &newgen, err);
    dc_sign_key_free(kf.sign);
    dc_enc_key_free(kf.enc);
    dc_signet_free(req);
    if (s != DC_OK)
        return status_of(s);
    dl_log(LOG_NOTICE, "migrate user=%s step=signed generation=%u mode=trustful "
           "result=keys-sealed", address, newgen);
    return current(v, address, signet, siglen, gen, err);
}
