/*
 * kv_device - a user's device's requests: enroll, rotate, key blob. See kv_device.h.
 */
#include "kv_device.h"

#include <stdlib.h>
#include <string.h>

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
