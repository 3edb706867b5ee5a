/*
 * dc_keys - DIME private key files (ORGANIZATIONAL KEY 1952, USER KEY 2013).
 *
 * Layout (signet-mrec.md section 9): header, fid 1 + length + 32-byte Ed25519 seed, then the
 * encryption fid (org 3, user 2) + length + 32-byte secp256k1 scalar. Variant A (libdime,
 * written by us) uses a 2-byte length for the encryption key; B and C use 1 byte.
 *
 * Our extension, for SOKs (libdime reserves org-key fid 2 but never writes it): an org key
 * file that holds fid 2 = 1-byte length 33, permission byte + 32-byte Ed25519 seed, and
 * neither fid 1 nor fid 3. Such a file signs within its permissions only.
 *
 * Every buffer that holds key bytes is zeroized; key structures live in secure memory.
 */
#ifndef DC_KEYS_H
#define DC_KEYS_H

#include "dc_crypto.h"
#include "dc_signet.h"

enum dc_key_type {
    DC_KEY_ORG = 1952,
    DC_KEY_USER = 2013,
};

struct dc_keyfile {
    enum dc_key_type type;
    enum dc_variant variant;
    struct dc_sign_key *sign; /* POK or user signing key; NULL in a SOK file */
    struct dc_enc_key *enc;   /* NULL in a SOK file */
    struct dc_sign_key *sok;  /* SOK files only */
    uint8_t sok_perm;
};

enum dc_status dc_keyfile_parse(const uint8_t *bin, size_t len, struct dc_keyfile **out,
                                struct dc_err *err);
/* Armor or binary. */
enum dc_status dc_keyfile_load(const uint8_t *data, size_t len, struct dc_keyfile **out,
                               struct dc_err *err);
enum dc_status dc_keyfile_load_file(const char *path, struct dc_keyfile **out,
                                    struct dc_err *err);
/* A new key file with fresh keys. */
enum dc_status dc_keyfile_generate(enum dc_key_type type, struct dc_keyfile **out,
                                   struct dc_err *err);
enum dc_status dc_keyfile_sok_generate(uint8_t perm, struct dc_keyfile **out, struct dc_err *err);
/* Variant A binary in secure memory; free with dc_secure_free(*bin, *len). */
enum dc_status dc_keyfile_serialize(const struct dc_keyfile *k, uint8_t **bin, size_t *len,
                                    struct dc_err *err);
/* Armored text in secure memory; free with dc_secure_free(p, strlen(p) + 1). */
enum dc_status dc_keyfile_armor(const struct dc_keyfile *k, char **out, struct dc_err *err);
/* Writes the armored key to path with mode 0600 (atomically). */
enum dc_status dc_keyfile_save(const struct dc_keyfile *k, const char *path, struct dc_err *err);
/* The same with the given mode, to a file that must not exist (DC_ERR_ARG when it does).
 * Key files are not encrypted: keep them on protected storage. */
enum dc_status dc_keyfile_save_new(const struct dc_keyfile *k, const char *path, unsigned mode,
                                   struct dc_err *err);
void dc_keyfile_free(struct dc_keyfile *k);

#endif
