/*
 * cl_keyfile - the user's private keys on the user's machine, sealed at rest with a
 * passphrase (dime-client(1), "FILES"). The provider never sees this file or the passphrase.
 *
 * Format (binary, version 1), all integers big-endian:
 *
 *     "DIMECLK1"           8 bytes, magic
 *     u8  kdf              1: Argon2id (libsodium crypto_pwhash, ALG_ARGON2ID13)
 *     u32 opslimit         Argon2id passes
 *     u32 memlimit_kib     Argon2id memory in KiB
 *     salt[16]
 *     nonce[24]            XChaCha20-Poly1305 (IETF) nonce, random per sealing
 *     u16 address length, address (user@domain, printable ASCII)
 *     ciphertext           64 bytes (Ed25519 seed | secp256k1 private scalar) + 16-byte tag
 *
 * The key is Argon2id(passphrase, salt, opslimit, memlimit); the AEAD's additional data is
 * everything before the ciphertext, so the KDF parameters, the salt and the address cannot be
 * changed without the open failing. A wrong passphrase and an altered file are the same
 * failure to the AEAD: DC_ERR_SIGNATURE with "wrong passphrase, or the key file was
 * altered". The keys are unsealed into secure memory (dc_secure_alloc) only.
 */
#ifndef CL_KEYFILE_H
#define CL_KEYFILE_H

#include "dc_crypto.h"

#include <stddef.h>
#include <stdint.h>

#define CL_KEYFILE_MAGIC "DIMECLK1"
#define CL_KEYFILE_MAX 4096

/* Argon2id costs: libsodium's interactive, moderate and sensitive limits. */
enum cl_kdf_cost { CL_KDF_INTERACTIVE = 0, CL_KDF_MODERATE, CL_KDF_SENSITIVE };
/* "interactive", "moderate" or "sensitive"; -1 for anything else. */
int cl_kdf_cost_from_name(const char *name);

/* The sealed bytes for address's keys (malloc'd, *len set). */
enum dc_status cl_keyfile_seal(const char *address, const struct dc_sign_key *sk,
                               const struct dc_enc_key *ek, const char *pass, size_t passlen,
                               enum cl_kdf_cost cost, uint8_t **out, size_t *len,
                               struct dc_err *err);

/* Opens sealed bytes: the address (malloc'd) and the two keys (freed by the caller). */
enum dc_status cl_keyfile_open(const uint8_t *bin, size_t len, const char *pass,
                               size_t passlen, char **address, struct dc_sign_key **sk,
                               struct dc_enc_key **ek, struct dc_err *err);

#endif
