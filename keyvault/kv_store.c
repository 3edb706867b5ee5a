/*
 * kv_store - dispatch of the storage interface to the backend's operations table, and the
 * helpers that free records. See kv_store.h.
 */
#include "kv_store.h"

#include <stdlib.h>
#include <string.h>

void kv_store_close(struct kv_store *s)
{
    if (s != NULL)
        s->ops->close(s);
}

int kv_store_schema_version(struct kv_store *s)
{
    return s->ops->schema_version(s);
}

enum dc_status kv_store_meta_get(struct kv_store *s, const char *key, uint8_t **val, size_t *len,
                                 struct dc_err *err)
{
    return s->ops->meta_get(s, key, val, len, err);
}

enum dc_status kv_store_meta_put(struct kv_store *s, const char *key, const uint8_t *val,
                                 size_t len, struct dc_err *err)
{
    return s->ops->meta_put(s, key, val, len, err);
}

enum dc_status kv_store_meta_add(struct kv_store *s, const char *key, const uint8_t *val,
                                 size_t len, struct dc_err *err)
{
    return s->ops->meta_add(s, key, val, len, err);
}

enum dc_status kv_store_seal_version(struct kv_store *s, unsigned *have, struct dc_err *err)
{
    uint8_t *v = NULL;
    size_t vl = 0;
    enum dc_status r = s->ops->meta_get(s, "seal-version", &v, &vl, err);
    *have = r == DC_OK && vl == 1 ? v[0] : 0;
    free(v);
    if (r == DC_OK && vl != 1)
        return dc_fail(err, DC_ERR_FORMAT, "database: seal-version of %zu bytes", vl);
    return r == DC_ERR_NOTFOUND ? DC_OK : r;
}

const char *const kv_store_kinds[] = {"sqlite", "postgresql", NULL};

enum dc_status kv_store_open(enum kv_store_kind kind, const char *database, const char *conninfo,
                             struct kv_store **out, struct dc_err *err)
{
    if (kind == KV_STORE_POSTGRESQL)
        return kv_store_open_pg(conninfo, out, err);
    return kv_store_open_sqlite(database, out, err);
}

enum dc_status kv_store_reseal(struct kv_store *s, unsigned version, kv_reseal_fn fn, void *ctx,
                               struct dc_err *err)
{
    return s->ops->reseal(s, version, fn, ctx, err);
}

enum dc_status kv_store_domain_get(struct kv_store *s, struct kv_domain *out, struct dc_err *err)
{
    return s->ops->domain_get(s, out, err);
}

enum dc_status kv_store_domain_put(struct kv_store *s, const struct kv_domain *d, bool replace,
                                   struct dc_err *err)
{
    return s->ops->domain_put(s, d, replace, err);
}

enum dc_status kv_store_domain_rollover(struct kv_store *s, const struct kv_domain *d,
                                        const uint8_t *prev, size_t prev_len,
                                        const char *prev_fp, const char *prev_fpc,
                                        struct dc_err *err)
{
    return s->ops->domain_rollover(s, d, prev, prev_len, prev_fp, prev_fpc, err);
}

enum dc_status kv_store_org_signet_by_fp(struct kv_store *s, const char *fp, uint8_t **bin,
                                         size_t *len, struct dc_err *err)
{
    return s->ops->org_signet_by_fp(s, fp, bin, len, err);
}

enum dc_status kv_store_user_get(struct kv_store *s, const char *address, struct kv_user *out,
                                 struct dc_err *err)
{
    return s->ops->user_get(s, address, out, err);
}

enum dc_status kv_store_user_list(struct kv_store *s, struct kv_user **out, size_t *n,
                                  struct dc_err *err)
{
    return s->ops->user_list(s, out, n, err);
}

enum dc_status kv_store_user_add(struct kv_store *s, const struct kv_user *u,
                                 const struct kv_generation *g, struct dc_err *err)
{
    return s->ops->user_add(s, u, g, err);
}

enum dc_status kv_store_user_rotate(struct kv_store *s, const char *address, uint32_t prev,
                                    const struct kv_generation *g, struct dc_err *err)
{
    return s->ops->user_rotate(s, address, prev, g, err);
}

enum dc_status kv_store_user_retire(struct kv_store *s, const char *address, uint32_t below,
                                    size_t *removed, struct dc_err *err)
{
    return s->ops->user_retire(s, address, below, removed, err);
}

enum dc_status kv_store_gen_get(struct kv_store *s, const char *address, uint32_t generation,
                                struct kv_generation *out, struct dc_err *err)
{
    return s->ops->gen_get(s, address, generation, out, err);
}

enum dc_status kv_store_gen_by_fp(struct kv_store *s, const char *address, const char *fp,
                                  struct kv_generation *out, struct dc_err *err)
{
    return s->ops->gen_by_fp(s, address, fp, out, err);
}

enum dc_status kv_store_gen_list(struct kv_store *s, const char *address,
                                 struct kv_generation **out, size_t *n, struct dc_err *err)
{
    return s->ops->gen_list(s, address, out, n, err);
}

void kv_domain_clear(struct kv_domain *d)
{
    free(d->signet);
    free(d->pok);
    free(d->enc);
    free(d->sok);
    memset(d, 0, sizeof(*d));
}

void kv_generation_clear(struct kv_generation *g)
{
    free(g->signet);
    free(g->sealed);
    free(g->blob);
    memset(g, 0, sizeof(*g));
}

void kv_generations_free(struct kv_generation *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kv_generation_clear(&g[i]);
    free(g);
}
