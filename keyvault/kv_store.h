/*
 * kv_store - the keyvault's storage interface. Backends: kv_store_sqlite.c (one node, the
 * default) and kv_store_pg.c (PostgreSQL, shared by the keyvaults of several nodes of one
 * domain). The store holds only sealed private keys (see kv_seal.h), opaque blobs of Cautious
 * users and public signets; it never sees a plaintext key.
 *
 * Every function that changes state is one transaction: it is applied entirely or not at all
 * (also across a crash or kill -9), and changes made at once through several connections (or
 * nodes) are applied one after the other. DC_ERR_IO means the store is unavailable or failed
 * (the server is gone, the disk failed): a temporary failure, the keyvault's `internal`. Addresses and domain names are stored as given; callers
 * normalize them to lower case first.
 */
#ifndef KV_STORE_H
#define KV_STORE_H

#include "dc_util.h"
#include "kv_proto.h"

#include <stdbool.h>
#include <stdint.h>

#define KV_NAME_MAX 254
#define KV_FPSTR_LEN 86

struct kv_domain {
    char name[KV_NAME_MAX + 1];
    uint8_t *signet; /* org signet bytes */
    size_t signet_len;
    uint8_t *pok; /* sealed Ed25519 seed; NULL when the POK is kept offline */
    size_t pok_len;
    uint8_t *enc; /* sealed secp256k1 scalar */
    size_t enc_len;
    uint8_t *sok; /* sealed SOK seed or NULL */
    size_t sok_len;
    unsigned sok_perm;
};

struct kv_user {
    char address[KV_NAME_MAX + 1];
    enum kv_mode mode;
    uint32_t generation; /* current generation, 1 = first */
    int64_t created;
};

/* One generation of a user: its signet and whatever the vault keeps of its keys. */
struct kv_generation {
    uint32_t generation;
    enum kv_mode mode;
    char fp[KV_FPSTR_LEN + 1];        /* fingerprint over the whole signet */
    char fp_crypto[KV_FPSTR_LEN + 1]; /* crypto fingerprint (through fid 6) */
    uint8_t *signet;
    size_t signet_len;
    uint8_t *sealed; /* Trustful: sealed signing seed || enc scalar; NULL otherwise or retired */
    size_t sealed_len;
    uint8_t *blob; /* Cautious: the user's encrypted key blob; NULL otherwise */
    size_t blob_len;
    int64_t created;
};

/* For kv_store_reseal: turns one sealed value, as stored, into *out (malloc'd). what is the
 * meta key "master-check" for the check value (name "", generation 0), "org-pok", "org-enc"
 * or "org-sok" for the domain's keys (the domain's name, 0), "user-key" for a generation's
 * keys (the address and the generation). */
typedef enum dc_status (*kv_reseal_fn)(void *ctx, const char *what, const char *name,
                                       uint32_t generation, const uint8_t *in, size_t len,
                                       uint8_t **out, size_t *outlen, struct dc_err *err);

/* A backend fills this table (see kv_store_sqlite.c); struct kv_store is the first member of
 * its own store structure. The kv_store_* functions below dispatch through it. */
struct kv_store;
struct kv_store_ops {
    void (*close)(struct kv_store *s);
    int (*schema_version)(struct kv_store *s);
    enum dc_status (*meta_get)(struct kv_store *s, const char *key, uint8_t **val, size_t *len,
                               struct dc_err *err);
    enum dc_status (*meta_put)(struct kv_store *s, const char *key, const uint8_t *val,
                               size_t len, struct dc_err *err);
    enum dc_status (*meta_add)(struct kv_store *s, const char *key, const uint8_t *val,
                               size_t len, struct dc_err *err);
    enum dc_status (*domain_get)(struct kv_store *s, struct kv_domain *out, struct dc_err *err);
    enum dc_status (*domain_put)(struct kv_store *s, const struct kv_domain *d, bool replace,
                                 struct dc_err *err);
    enum dc_status (*domain_rollover)(struct kv_store *s, const struct kv_domain *d,
                                      const uint8_t *prev, size_t prev_len, const char *prev_fp,
                                      const char *prev_fpc, struct dc_err *err);
    enum dc_status (*org_signet_by_fp)(struct kv_store *s, const char *fp, uint8_t **bin,
                                       size_t *len, struct dc_err *err);
    enum dc_status (*user_get)(struct kv_store *s, const char *address, struct kv_user *out,
                               struct dc_err *err);
    enum dc_status (*user_list)(struct kv_store *s, struct kv_user **out, size_t *n,
                                struct dc_err *err);
    enum dc_status (*user_add)(struct kv_store *s, const struct kv_user *u,
                               const struct kv_generation *g, struct dc_err *err);
    enum dc_status (*user_rotate)(struct kv_store *s, const char *address, uint32_t prev,
                                  const struct kv_generation *g, struct dc_err *err);
    enum dc_status (*user_retire)(struct kv_store *s, const char *address, uint32_t below,
                                  size_t *removed, struct dc_err *err);
    enum dc_status (*gen_get)(struct kv_store *s, const char *address, uint32_t generation,
                              struct kv_generation *out, struct dc_err *err);
    enum dc_status (*gen_by_fp)(struct kv_store *s, const char *address, const char *fp,
                                struct kv_generation *out, struct dc_err *err);
    enum dc_status (*gen_list)(struct kv_store *s, const char *address,
                               struct kv_generation **out, size_t *n, struct dc_err *err);
    enum dc_status (*reseal)(struct kv_store *s, unsigned version, kv_reseal_fn fn, void *ctx,
                             struct dc_err *err);
};
struct kv_store {
    const struct kv_store_ops *ops;
};

/* Opens (creating if needed) and migrates to the current schema; a schema newer than this
 * program's is refused (DC_ERR_FORMAT). */
enum dc_status kv_store_open_sqlite(const char *path, struct kv_store **out, struct dc_err *err);
/* The same on PostgreSQL: conninfo is libpq's connection string (never logged). */
enum dc_status kv_store_open_pg(const char *conninfo, struct kv_store **out, struct dc_err *err);

/* The backends by the name of the keyvault's `store` setting. */
enum kv_store_kind { KV_STORE_SQLITE, KV_STORE_POSTGRESQL };
extern const char *const kv_store_kinds[]; /* "sqlite", "postgresql", NULL */
/* The store the configuration names: the SQLite file database, or PostgreSQL at conninfo. */
enum dc_status kv_store_open(enum kv_store_kind kind, const char *database, const char *conninfo,
                             struct kv_store **out, struct dc_err *err);
void kv_store_close(struct kv_store *s);

/* Schema version after open (for tests and `dimectl domain show`). */
int kv_store_schema_version(struct kv_store *s);

/* Small settings (master key salt, check value). DC_ERR_NOTFOUND when absent. */
enum dc_status kv_store_meta_get(struct kv_store *s, const char *key, uint8_t **val, size_t *len,
                                 struct dc_err *err);
enum dc_status kv_store_meta_put(struct kv_store *s, const char *key, const uint8_t *val,
                                 size_t len, struct dc_err *err);
/* Stores a setting only when it is absent (DC_ERR_ARG when present): of two processes that
 * make the first value at once (the scrypt salt, the check value), one writes it and the other
 * reads it back. */
enum dc_status kv_store_meta_add(struct kv_store *s, const char *key, const uint8_t *val,
                                 size_t len, struct dc_err *err);

/* The single local domain. get: DC_ERR_NOTFOUND when not initialized. put replaces it only
 * when replace is true (otherwise DC_ERR_ARG when one exists). */
enum dc_status kv_store_domain_get(struct kv_store *s, struct kv_domain *out, struct dc_err *err);
enum dc_status kv_store_domain_put(struct kv_store *s, const struct kv_domain *d, bool replace,
                                   struct dc_err *err);
void kv_domain_clear(struct kv_domain *d);
/* A SOK rollover: d (same name) replaces the domain row, and the org signet it replaces (prev,
 * with its two fingerprints) is kept, answered by kv_store_org_signet_by_fp. DC_ERR_ORDER when
 * the current org signet is no longer prev (a concurrent change). The replaced row's bytes are
 * zeroed where the backend frees them. */
enum dc_status kv_store_domain_rollover(struct kv_store *s, const struct kv_domain *d,
                                        const uint8_t *prev, size_t prev_len,
                                        const char *prev_fp, const char *prev_fpc,
                                        struct dc_err *err);
/* A replaced org signet by its full or crypto fingerprint (*bin malloc'd); DC_ERR_NOTFOUND. */
enum dc_status kv_store_org_signet_by_fp(struct kv_store *s, const char *fp, uint8_t **bin,
                                         size_t *len, struct dc_err *err);

enum dc_status kv_store_user_get(struct kv_store *s, const char *address, struct kv_user *out,
                                 struct dc_err *err);
/* All users ordered by address; free *out with free(). */
enum dc_status kv_store_user_list(struct kv_store *s, struct kv_user **out, size_t *n,
                                  struct dc_err *err);
/* Adds a user with its first generation (g->generation must be 1). DC_ERR_ARG when the user
 * exists. */
enum dc_status kv_store_user_add(struct kv_store *s, const struct kv_user *u,
                                 const struct kv_generation *g, struct dc_err *err);
/* Appends generation prev+1 and makes it current with its mode; DC_ERR_ORDER when the user's
 * current generation is no longer prev (a concurrent rotation). */
enum dc_status kv_store_user_rotate(struct kv_store *s, const char *address, uint32_t prev,
                                    const struct kv_generation *g, struct dc_err *err);
/* Deletes the sealed keys and blobs of generations below `below`; signets stay. *removed
 * gets the number of generations that lost their keys. */
enum dc_status kv_store_user_retire(struct kv_store *s, const char *address, uint32_t below,
                                    size_t *removed, struct dc_err *err);

/* One generation (0 = the current one). DC_ERR_NOTFOUND when absent. */
enum dc_status kv_store_gen_get(struct kv_store *s, const char *address, uint32_t generation,
                                struct kv_generation *out, struct dc_err *err);
/* The generation whose fp or fp_crypto equals fp. */
enum dc_status kv_store_gen_by_fp(struct kv_store *s, const char *address, const char *fp,
                                  struct kv_generation *out, struct dc_err *err);
/* Every generation, oldest first; free with kv_generations_free. */
enum dc_status kv_store_gen_list(struct kv_store *s, const char *address,
                                 struct kv_generation **out, size_t *n, struct dc_err *err);
/* Brings the sealed values to seal format version (meta "seal-version", one byte; absent
 * counts as 0): when the store's is lower, every sealed value goes through fn, the check
 * value first, and is written back, and the version is set, in one transaction. The version
 * is read again inside it, so of two processes opening the store at once one converts and the
 * other finds it done. Nothing changes when fn fails (its status is returned). */
enum dc_status kv_store_reseal(struct kv_store *s, unsigned version, kv_reseal_fn fn, void *ctx,
                               struct dc_err *err);
/* For the backends' reseal: the store's seal format version (meta "seal-version", 0 when
 * absent). */
enum dc_status kv_store_seal_version(struct kv_store *s, unsigned *have, struct dc_err *err);
void kv_generation_clear(struct kv_generation *g);
void kv_generations_free(struct kv_generation *g, size_t n);

#endif
