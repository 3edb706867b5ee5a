/*
 * dl_seal - the one format of everything a daemon keeps sealed at rest: the keyvault's private
 * keys and check value, the relay's queued addresses and cached records and signets.
 *
 * A sealed value is
 *
 *   version (1 byte, DL_SEAL_VERSION) | nonce (12 random bytes) | ciphertext | tag (16 bytes)
 *
 * AES-256-GCM under a 32-byte key the owner holds in secure memory (the vault's master key,
 * a subkey of the relay's key file). The additional data, authenticated but not stored, says
 * what the value is and where it lives:
 *
 *   version (1 byte) | length of purpose (2 bytes, big endian) | purpose | row
 *
 * purpose names the kind of value ("user-key", "outq.rcpt"), row the record that holds it
 * ("alice@example.org|3", a queue id). A value copied into another row, another column or
 * another kind of record no longer opens, and neither does one whose version byte was
 * changed. The nonce is random for each seal: a key seals far fewer than 2^32 values.
 *
 * The owner keeps its key handling (key file, passphrase) and what it does with the opened
 * bytes; the bytes on disk are made and read only here.
 */
#ifndef DL_SEAL_H
#define DL_SEAL_H

#include "dc_crypto.h"
#include "dc_util.h"

#include <stddef.h>
#include <stdint.h>

#define DL_SEAL_VERSION 1
#define DL_SEAL_KEY_LEN 32
#define DL_SEAL_OVERHEAD (1 + DC_GCM_IV_LEN + DC_GCM_TAG_LEN)
#define DL_SEAL_PURPOSE_MAX 255
#define DL_SEAL_ROW_MAX 1024

/* Seals len bytes of in into out, which holds len + DL_SEAL_OVERHEAD bytes. purpose is
 * 1..DL_SEAL_PURPOSE_MAX bytes, row (may be "") at most DL_SEAL_ROW_MAX. */
enum dc_status dl_seal(const uint8_t key[DL_SEAL_KEY_LEN], const char *purpose, const char *row,
                       const void *in, size_t len, uint8_t *out, struct dc_err *err);

/* Opens what dl_seal made with the same key, purpose and row into out, which holds
 * len - DL_SEAL_OVERHEAD bytes (dl_unseal_len). DC_ERR_TRUNCATED when in is shorter than a
 * sealed value, DC_ERR_FORMAT for another version byte, DC_ERR_SIGNATURE when the key, the
 * purpose or the row is wrong or a byte was altered (out is then zeroed). */
enum dc_status dl_unseal(const uint8_t key[DL_SEAL_KEY_LEN], const char *purpose, const char *row,
                         const uint8_t *in, size_t len, void *out, struct dc_err *err);

/* The plain length of a sealed value of len bytes (0 when it is too short to be one). */
size_t dl_unseal_len(size_t len);

#endif
