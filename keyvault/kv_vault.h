/*
 * kv_vault - what the keyvault does with its keys, shared by dime-keyvaultd and dimectl:
 * domain setup, user accounts in the three modes, rotation with custody, and the private-key
 * operations (sign, KEK, unwrap). Private keys are unsealed into secure memory for one
 * operation and freed (zeroized) right after; no private key is cached, so changes that
 * dimectl writes to the database are seen by the daemon's next request. Only public keys
 * derived from a sealed blob are remembered (struct kv_pubcache).
 *
 * Operations return an enum kv_status (the protocol's) and fill err with a reason that names
 * no key material.
 */
#ifndef KV_VAULT_H
#define KV_VAULT_H

#include "dc_keys.h"
#include "dc_signet.h"
#include "kv_proto.h"
#include "kv_seal.h"
#include "kv_store.h"

/* The master secret as read from disk before the database is opened: exactly one of key
 * (from master-key-file) or pass (from passphrase-file) is set. */
struct kv_secret {
    struct kv_master *key;
    uint8_t *pass;
    size_t passlen;
};

enum dc_status kv_secret_load(const char *keyfile, const char *passfile, struct kv_secret *out,
                              struct dc_err *err);
void kv_secret_clear(struct kv_secret *s);

struct kv_pubcache;
struct kv_vault {
    struct kv_store *store;
    struct kv_master *master;
    /* Ed25519 public keys derived from unsealed seeds, remembered per sealed blob so that the
     * next unsealing of the same blob skips the scalar multiplication (see kv_vault.c). Holds
     * no secret. */
    struct kv_pubcache *pubs;
    /* permissions for which the POK signed because no online SOK could (logged once) */
    uint8_t pok_noted;
};

/* Opens the database and derives/checks the master key (consumes sec). The first open of a
 * database stores a check value; later opens with another key fail with DC_ERR_SIGNATURE. */
enum dc_status kv_vault_open(const char *dbpath, struct kv_secret *sec, struct kv_vault **out,
                             struct dc_err *err);
/* The same over a store already open (kv_store_open: SQLite or PostgreSQL), which the vault
 * then owns (closed on an error too). */
enum dc_status kv_vault_open_store(struct kv_store *store, struct kv_secret *sec,
                                   struct kv_vault **out, struct dc_err *err);
void kv_vault_close(struct kv_vault *v);

/* Lower-cases a principal into out (KV_NAME_MAX + 1); DC_ERR_ARG when too long or empty. */
enum dc_status kv_normalize(const char *in, size_t len, char *out, struct dc_err *err);

/* ---- administration (dimectl) ---- */

/* The permissions of the online SOK that domain init and a rollover make: user signets and
 * origin signatures. Not TLS: tls= in the DNS record must verify under a POK the record
 * lists (libdime and our relay check it so), so the TLS binding is signed offline with the
 * POK (dimectl dns-record --pok). A SOK that a rollover took offline stays listed with the
 * SIGNET bit only (KV_SOK_RETIRED_PERM) while user signets it signed are stored. */
#define KV_SOK_ONLINE_PERM (DC_SOK_SIGNET | DC_SOK_MSG)
#define KV_SOK_RETIRED_PERM DC_SOK_SIGNET
/* With the POK kept online (dimectl domain init --pok-online), the SOK signs user signets
 * only and the POK origin signatures, which libdime-only peers can verify (they check
 * origin signatures against the POK alone). */
#define KV_SOK_BESIDE_POK_PERM DC_SOK_SIGNET

/* Receives the new org key file (POK and encryption key) before anything is stored: an error
 * stops domain init with nothing stored. */
typedef enum dc_status (*kv_pok_export_fn)(void *ctx, const struct dc_keyfile *key,
                                           struct dc_err *err);
/* A new domain: POK, encryption key, an online SOK (KV_SOK_ONLINE_PERM, or with pok_online
 * KV_SOK_BESIDE_POK_PERM) and the org signet listing it, signed by the POK. The key file goes to export (may be NULL only with
 * pok_online); the POK is stored (sealed) only with pok_online. DC_ERR_ARG when the vault
 * already holds a domain (before export is called). */
enum dc_status kv_vault_domain_init(struct kv_vault *v, const char *domain, bool pok_online,
                                    kv_pok_export_fn export, void *ctx, struct dc_err *err);
/* SOK rollover with the POK from its key file: a new online SOK with the permissions of the
 * one it replaces (KV_SOK_ONLINE_PERM when there was none), an org signet listing it
 * (see KV_SOK_RETIRED_PERM for the one it replaces; revoke drops that one in any case),
 * signed by the POK; the vault switches in one transaction and keeps the replaced org
 * signet, answered by fingerprint. The replaced SOK's sealed seed is overwritten. */
struct kv_rollover {
    uint8_t sok[DC_ED25519_PUB_LEN], old_sok[DC_ED25519_PUB_LEN];
    uint8_t perm;       /* the new SOK's permissions */
    bool had_sok;       /* there was an online SOK (old_sok) */
    bool old_listed;    /* it stays listed, SIGNET only */
    size_t retired_listed; /* SOKs listed with KV_SOK_RETIRED_PERM after the rollover */
    char fp[DC_FP_B64_LEN + 1], old_fp[DC_FP_B64_LEN + 1]; /* org signet, full fingerprints */
};
enum dc_status kv_vault_sok_rollover(struct kv_vault *v, const struct dc_keyfile *pok,
                                     bool revoke, struct kv_rollover *res, struct dc_err *err);
/* POK rollover (issue 15): a new POK, and an org signet under it that keeps the encryption
 * key, the SOKs (user signets they signed keep verifying), info fields and identifier, and
 * carries a rollover link signed by the old POK (dc_rollover.h), so that relays which pinned
 * the old POK accept the new one. old: the current POK's key file (POK and encryption key);
 * the new key file (new POK, same encryption key) goes to export before anything is stored;
 * a vault that keeps its POK online keeps the new one. The replaced org signet stays served
 * by fingerprint, as after a SOK rollover. */
struct kv_pok_rollover {
    uint8_t pok[DC_ED25519_PUB_LEN], old_pok[DC_ED25519_PUB_LEN];
    char fp[DC_FP_B64_LEN + 1], old_fp[DC_FP_B64_LEN + 1]; /* org signet, full fingerprints */
};
enum dc_status kv_vault_pok_rollover(struct kv_vault *v, const struct dc_keyfile *old,
                                     kv_pok_export_fn export, void *ctx,
                                     struct kv_pok_rollover *res, struct dc_err *err);
/* key: an org key file with POK and encryption key; sok: optional SOK key file. With
 * offline_pok the POK is not stored (a SOK with the SIGNET bit is then required). */
enum dc_status kv_vault_domain_import(struct kv_vault *v, const struct dc_keyfile *key,
                                      const struct dc_signet *org, const struct dc_keyfile *sok,
                                      bool offline_pok, struct dc_err *err);
/* ssr: required for Cautious and Paranoid, refused for Trustful; blob: Cautious only.
 * key: Trustful only, an existing user key file to import instead of generating keys. */
enum dc_status kv_vault_user_add(struct kv_vault *v, const char *address, enum kv_mode mode,
                                 const struct dc_signet *ssr, const uint8_t *blob,
                                 size_t bloblen, const struct dc_keyfile *key,
                                 struct dc_err *err);
/* The unsealed keys (signing seed || encryption scalar) of generation g of a Trustful
 * user (g->sealed set), for the account service's migration to Paranoid (kv_device.h). */
enum dc_status kv_vault_user_keys(struct kv_vault *v, const char *address,
                                  const struct kv_generation *g,
                                  uint8_t out[KV_USER_KEYS_LEN], struct dc_err *err);
/* A new generation in the given mode (0 = keep the current one). With mode Trustful, an ssr
 * and a key (a device handing its own new generation over), the SSR is signed as it is
 * (custody checked) and the key, which must be the SSR's, is sealed. */
enum dc_status kv_vault_user_rotate(struct kv_vault *v, const char *address, enum kv_mode mode,
                                    const struct dc_signet *ssr, const uint8_t *blob,
                                    size_t bloblen, const struct dc_keyfile *key,
                                    uint32_t *newgen, struct dc_err *err);

/* ---- operations (the daemon's requests) ---- */

enum kv_status kv_vault_sign(struct kv_vault *v, const char *principal, enum kv_purpose purpose,
                             const uint8_t *msg, size_t len, uint8_t sig[KV_SIG_LEN],
                             struct dc_err *err);
/*
 * A signing stream: the same key choice and checks as kv_vault_sign, but the message arrives
 * in pieces, twice (see daemonlib/KEYVAULT.md). _begin unseals the key and keeps only the expanded key
 * (secure memory) in the stream; _data adds bytes to the current pass; _pass2 ends the first
 * pass; _end checks that the second pass repeated the first exactly (length and SHA-512) and
 * signs. limit caps each pass, expected (when not UINT64_MAX) is the announced length. Any
 * error status leaves the stream unusable: free it. _end consumes nothing; free after it.
 */
struct kv_sign_stream;
enum kv_status kv_vault_stream_begin(struct kv_vault *v, const char *principal,
                                     enum kv_purpose purpose, uint64_t expected, uint64_t limit,
                                     struct kv_sign_stream **out, struct dc_err *err);
enum kv_status kv_vault_stream_data(struct kv_sign_stream *s, const uint8_t *p, size_t n,
                                    struct dc_err *err);
enum kv_status kv_vault_stream_pass2(struct kv_sign_stream *s, struct dc_err *err);
enum kv_status kv_vault_stream_end(struct kv_sign_stream *s, uint8_t sig[KV_SIG_LEN],
                                   struct dc_err *err);
void kv_sign_stream_free(struct kv_sign_stream *s); /* zeroizes; NULL is fine */

/* fp may be NULL (current key). */
enum kv_status kv_vault_kek(struct kv_vault *v, const char *principal,
                            const uint8_t eph[KV_EPH_LEN], const char *fp, struct dc_kek *kek,
                            struct dc_err *err);
enum kv_status kv_vault_unwrap(struct kv_vault *v, const char *principal,
                               const uint8_t eph[KV_EPH_LEN], const uint8_t slot[KV_SLOT_LEN],
                               const char *fp, uint8_t plain[KV_SLOT_LEN], struct dc_err *err);
/* Org signet (principal = the domain) or a user signet (current, or by fingerprint).
 * *bin is malloc'd. */
enum kv_status kv_vault_signet(struct kv_vault *v, const char *principal, const char *fp,
                               uint8_t **bin, size_t *len, struct dc_err *err);
/* Signets from `from` to `to` inclusive (NULL = first / current), oldest first; at most
 * KV_HISTORY_MAX. */
enum kv_status kv_vault_history(struct kv_vault *v, const char *user, const char *from,
                                const char *to, struct kv_generation **out, size_t *n,
                                struct dc_err *err);
enum kv_status kv_vault_account(struct kv_vault *v, const char *user, bool *exists,
                                struct kv_user *u, struct dc_err *err);

/* The org's signer for a purpose: the online SOK when its permissions cover perm, else the
 * POK when it is online; free with kv_org_signer_free. For user signets. */
struct kv_org_signer {
    struct dc_sign_key *key;
    struct dc_signer signer;
    bool is_sok;
};
enum kv_status kv_vault_org_signer(struct kv_vault *v, uint8_t perm, struct kv_org_signer *out,
                                   struct dc_err *err);
/* The POK itself when the vault holds it (tls= values); KV_E_PURPOSE when it is offline. */
enum kv_status kv_vault_pok_signer(struct kv_vault *v, struct kv_org_signer *out,
                                   struct dc_err *err);
void kv_org_signer_free(struct kv_org_signer *s);


#endif
