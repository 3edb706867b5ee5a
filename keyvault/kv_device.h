/*
 * kv_device - what a user's own device may ask of the vault through the account service
 * (dime-accountd, daemonlib/ACCOUNT.md): the first key generation of a new Cautious or
 * Paranoid account (ENROLL), the next one with a custody signature (ROTATE), and a Cautious
 * user's sealed key blob (BLOB). The keys are made on the device: the vault receives the
 * signing request and, for Cautious, the blob sealed with the user's passphrase, which it
 * stores as it is and cannot open. The user signet is made by the same code as `dimectl user
 * add --ssr` and `user rotate --ssr` (kv_vault_user_add, kv_vault_user_rotate): the online
 * SOK (or an online POK) signs, custody is checked against the current generation.
 *
 * Who the user is was decided by the account service (the login it checked with Dovecot);
 * the vault's policy (kv_policy.h, class account) limits the principal to its domain's users.
 */
#ifndef KV_DEVICE_H
#define KV_DEVICE_H

#include "kv_vault.h"

/* A new account of address in mode (Cautious: blob required; Paranoid: no blob) from the
 * binary SSR. KV_E_EXISTS when the address has an account; KV_E_BADREQ for a malformed SSR
 * or a missing or extra blob. On KV_OK *signet (malloc'd) is the new user signet and *gen 1. */
enum kv_status kv_device_enroll(struct kv_vault *v, const char *address, enum kv_mode mode,
                                const uint8_t *ssr, size_t ssrlen, const uint8_t *blob,
                                size_t bloblen, uint8_t **signet, size_t *siglen,
                                uint32_t *gen, struct dc_err *err);
/* The next generation of a Cautious or Paranoid account (its mode is kept): the SSR must
 * carry a custody signature by the current generation's signing key (KV_E_CUSTODY
 * otherwise). KV_E_MODE for a Trustful account (its keys are the vault's), KV_E_EXISTS when
 * another rotation came first. */
enum kv_status kv_device_rotate(struct kv_vault *v, const char *address, const uint8_t *ssr,
                                size_t ssrlen, const uint8_t *blob, size_t bloblen,
                                uint8_t **signet, size_t *siglen, uint32_t *gen,
                                struct dc_err *err);
/* The current generation's sealed blob of a Cautious account (*blob malloc'd); KV_E_MODE
 * for another mode, KV_E_NOTFOUND without an account. */
enum kv_status kv_device_blob(struct kv_vault *v, const char *address, uint8_t **blob,
                              size_t *len, uint32_t *gen, struct dc_err *err);

/* Whether u is Trustful and its previous generation was Cautious or Paranoid: it became
 * Trustful at its current generation, and mail sealed to the earlier ones opens only on the
 * user's device (the milter passes such mail on as the wrapper; ACCOUNT op, KV_T_MIGRATED). */
bool kv_device_migrated(struct kv_vault *v, const struct kv_user *u);
/* Migration (ACCOUNT.md, "Migration"). The private keys of a Trustful account, every
 * generation the vault still holds, oldest first: *n entries of a 4-byte generation and
 * KV_USER_KEYS_LEN bytes of keys in *keys (dc_secure_alloc'd, *n * (4 + KV_USER_KEYS_LEN) + 1
 * bytes). KV_E_MODE for another mode. */
enum kv_status kv_device_keys(struct kv_vault *v, const char *address, uint8_t **keys,
                              size_t *n, struct dc_err *err);
/* Trustful -> Paranoid: the device's SSR (custody by the current generation's key) signed as
 * a Paranoid generation, then the vault's sealed keys of every generation deleted from the
 * store. KV_E_MODE for a Cautious account, and for a Paranoid one (whose keys left in the
 * vault by a failed destruction are destroyed then). */
enum kv_status kv_device_to_paranoid(struct kv_vault *v, const char *address,
                                     const uint8_t *ssr, size_t ssrlen, uint8_t **signet,
                                     size_t *siglen, uint32_t *gen, struct dc_err *err);
/* Paranoid or Cautious -> Trustful: the device's SSR (custody by its current key) and the
 * new generation's keys, which must be the SSR's (KV_E_CRYPTO otherwise); the vault seals
 * them and the account becomes Trustful. Earlier generations' keys stay the device's. */
enum kv_status kv_device_to_trustful(struct kv_vault *v, const char *address,
                                     const uint8_t *ssr, size_t ssrlen,
                                     const uint8_t keys[KV_USER_KEYS_LEN], uint8_t **signet,
                                     size_t *siglen, uint32_t *gen, struct dc_err *err);

#endif
