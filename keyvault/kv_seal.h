/*
 * kv_seal - the vault's master key and the sealing of private keys at rest.
 *
 * A sealed blob is in the one format of daemonlib (dl_seal.h): AES-256-GCM bound to the kind
 * of key ("user-key", "org-pok", ...) as purpose and to the row that holds it
 * ("alice@example.org|3") as row, so a blob copied into another row no longer opens. Stores
 * written before that format (meta "seal-version" absent or 0) are converted when the vault
 * opens them (kv_vault_open); kv_open_v0 reads the old blobs for that conversion only.
 *
 * The master key is 32 bytes, read from a key file (32 raw bytes, or 64 hex digits and an
 * optional newline) or derived with scrypt from a passphrase file and a per-database salt.
 * Both files must be regular files owned by the effective uid with mode 0400 or 0600; any
 * other mode or owner is refused with an error that names the file and what is wrong.
 */
#ifndef KV_SEAL_H
#define KV_SEAL_H

#include "dc_util.h"
#include "dl_seal.h"

#include <stddef.h>
#include <stdint.h>

#define KV_MASTER_LEN 32
#define KV_SEAL_OVERHEAD DL_SEAL_OVERHEAD
#define KV_SALT_LEN 16

/* scrypt cost: N = 2^15, r = 8, p = 1 (32 MiB, about 0.1 s). */
#define KV_SCRYPT_N 32768u
#define KV_SCRYPT_R 8u
#define KV_SCRYPT_P 1u

struct kv_master {
    uint8_t key[KV_MASTER_LEN];
};

/* Refuses anything but a regular file owned by geteuid() with mode 0400 or 0600. */
enum dc_status kv_check_secret_file(const char *path, struct dc_err *err);

/* Reads a master key file; *out is in secure memory (free with kv_master_free). */
enum dc_status kv_master_load_file(const char *path, struct kv_master **out, struct dc_err *err);
/* Reads a passphrase file (first line, without its newline; at least 8 characters) into
 * secure memory (free with dc_secure_free(*pass, *len)). */
enum dc_status kv_passphrase_load(const char *path, uint8_t **pass, size_t *len,
                                  struct dc_err *err);
/* Derives the master key with scrypt from a passphrase and the database's salt. */
enum dc_status kv_master_from_passphrase(const uint8_t *pass, size_t len,
                                         const uint8_t salt[KV_SALT_LEN], struct kv_master **out,
                                         struct dc_err *err);
void kv_master_free(struct kv_master *m);

/* Seals len bytes for kind in row; *out (malloc'd, len + KV_SEAL_OVERHEAD bytes) holds no
 * secret. */
enum dc_status kv_seal(const struct kv_master *m, const char *kind, const char *row,
                       const uint8_t *in, size_t len, uint8_t **out, size_t *outlen,
                       struct dc_err *err);
/* Opens a sealed blob into secure memory (*out, *outlen; free with dc_secure_free).
 * DC_ERR_SIGNATURE when the key, the kind or the row is wrong or the blob was altered. */
enum dc_status kv_open(const struct kv_master *m, const char *kind, const char *row,
                       const uint8_t *in, size_t len, uint8_t **out, size_t *outlen,
                       struct dc_err *err);

/* For the conversion of an old store only: opens a blob of the format before dl_seal, nonce
 * (12) || ciphertext || tag (16) with the row identity "kind|row" (the kind alone for
 * the check value) as additional data. Same results as kv_open. */
enum dc_status kv_open_v0(const struct kv_master *m, const char *kind, const char *row,
                          const uint8_t *in, size_t len, uint8_t **out, size_t *outlen,
                          struct dc_err *err);

#endif
