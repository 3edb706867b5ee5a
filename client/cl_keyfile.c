/*
 * cl_keyfile - the sealed key file (see cl_keyfile.h).
 */
#include "cl_keyfile.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SALT_LEN  crypto_pwhash_SALTBYTES                       /* 16 */
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES  /* 24 */
#define TAG_LEN   crypto_aead_xchacha20poly1305_ietf_ABYTES     /* 16 */
#define KEY_LEN   crypto_aead_xchacha20poly1305_ietf_KEYBYTES   /* 32 */
#define PLAIN_LEN (DC_ED25519_SEED_LEN + DC_SECP_PRIV_LEN)
#define FIXED_LEN (8 + 1 + 4 + 4 + SALT_LEN + NONCE_LEN + 2)
#define KDF_ARGON2ID 1

int cl_kdf_cost_from_name(const char *name)
{
    static const char *const names[] = {"interactive", "moderate", "sensitive"};
    for (int i = 0; i < 3; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    return -1;
}

static void costs(enum cl_kdf_cost c, uint32_t *ops, uint32_t *mem_kib)
{
    size_t m = c == CL_KDF_SENSITIVE ? crypto_pwhash_MEMLIMIT_SENSITIVE
               : c == CL_KDF_MODERATE ? crypto_pwhash_MEMLIMIT_MODERATE
                                      : crypto_pwhash_MEMLIMIT_INTERACTIVE;
    *ops = c == CL_KDF_SENSITIVE ? crypto_pwhash_OPSLIMIT_SENSITIVE
           : c == CL_KDF_MODERATE ? crypto_pwhash_OPSLIMIT_MODERATE
                                  : crypto_pwhash_OPSLIMIT_INTERACTIVE;
    *mem_kib = (uint32_t)(m / 1024);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool address_ok(const char *a, size_t n)
{
    if (n < 3 || n > 254 || memchr(a, '@', n) == NULL)
        return false;
    for (size_t i = 0; i < n; i++)
        if (a[i] < 0x21 || a[i] > 0x7e)
            return false;
    return true;
}

/* The AEAD key from the passphrase, in secure memory. */
static enum dc_status derive(const char *pass, size_t passlen, const uint8_t *salt,
                             uint32_t ops, uint32_t mem_kib, uint8_t **key, struct dc_err *err)
{
    if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > 64 ||
        mem_kib < crypto_pwhash_MEMLIMIT_MIN / 1024 || mem_kib > 4u * 1024 * 1024)
        return dc_fail(err, DC_ERR_FIELD, "key file: Argon2id costs out of range (%u passes, "
                       "%u KiB)", ops, mem_kib);
    *key = dc_secure_alloc(KEY_LEN);
    if (crypto_pwhash(*key, KEY_LEN, pass, passlen, salt, ops, (size_t)mem_kib * 1024,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
        dc_secure_free(*key, KEY_LEN);
        *key = NULL;
        return dc_fail(err, DC_ERR_NOMEM, "Argon2id: not enough memory for %u KiB", mem_kib);
    }
    return DC_OK;
}

enum dc_status cl_keyfile_seal(const char *address, const struct dc_sign_key *sk,
                               const struct dc_enc_key *ek, const char *pass, size_t passlen,
                               enum cl_kdf_cost cost, uint8_t **out, size_t *len,
                               struct dc_err *err)
{
    size_t al = strlen(address);
    if (!address_ok(address, al))
        return dc_fail(err, DC_ERR_ARG, "'%s' is not an address (user@domain)", address);
    if (passlen == 0)
        return dc_fail(err, DC_ERR_ARG, "an empty passphrase seals nothing");
    if (sodium_init() < 0)
        return dc_fail(err, DC_ERR_CRYPTO, "libsodium did not initialize");
    uint32_t ops, mem;
    costs(cost, &ops, &mem);
    size_t hl = FIXED_LEN + al;
    uint8_t *b = dc_xmalloc(hl + PLAIN_LEN + TAG_LEN);
    memcpy(b, CL_KEYFILE_MAGIC, 8);
    b[8] = KDF_ARGON2ID;
    put32(b + 9, ops);
    put32(b + 13, mem);
    randombytes_buf(b + 17, SALT_LEN);
    randombytes_buf(b + 17 + SALT_LEN, NONCE_LEN);
    b[17 + SALT_LEN + NONCE_LEN] = (uint8_t)(al >> 8);
    b[18 + SALT_LEN + NONCE_LEN] = (uint8_t)al;
    memcpy(b + FIXED_LEN, address, al);
    uint8_t *key;
    enum dc_status s = derive(pass, passlen, b + 17, ops, mem, &key, err);
    if (s != DC_OK) {
        free(b);
        return s;
    }
    uint8_t *plain = dc_secure_alloc(PLAIN_LEN);
    memcpy(plain, sk->seed, DC_ED25519_SEED_LEN);
    memcpy(plain + DC_ED25519_SEED_LEN, ek->priv, DC_SECP_PRIV_LEN);
    unsigned long long cl = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(b + hl, &cl, plain, PLAIN_LEN, b, hl, NULL,
                                               b + 17 + SALT_LEN, key);
    dc_secure_free(plain, PLAIN_LEN);
    dc_secure_free(key, KEY_LEN);
    *out = b;
    *len = hl + (size_t)cl;
    return DC_OK;
}

enum dc_status cl_keyfile_open(const uint8_t *bin, size_t len, const char *pass,
                               size_t passlen, char **address, struct dc_sign_key **sk,
                               struct dc_enc_key **ek, struct dc_err *err)
{
    *address = NULL;
    *sk = NULL;
    *ek = NULL;
    if (len < 8 || memcmp(bin, CL_KEYFILE_MAGIC, 8) != 0)
        return dc_fail(err, DC_ERR_MAGIC, "not a dime-client key file (no %s magic)",
                       CL_KEYFILE_MAGIC);
    if (len < FIXED_LEN)
        return dc_fail(err, DC_ERR_TRUNCATED, "key file: %zu bytes, too short", len);
    if (bin[8] != KDF_ARGON2ID)
        return dc_fail(err, DC_ERR_FIELD, "key file: unknown key derivation %u", bin[8]);
    size_t al = (size_t)bin[17 + SALT_LEN + NONCE_LEN] << 8 | bin[18 + SALT_LEN + NONCE_LEN];
    size_t hl = FIXED_LEN + al;
    if (len != hl + PLAIN_LEN + TAG_LEN)
        return dc_fail(err, DC_ERR_FORMAT, "key file: %zu bytes, expected %zu", len,
                       hl + PLAIN_LEN + TAG_LEN);
    if (!address_ok((const char *)bin + FIXED_LEN, al))
        return dc_fail(err, DC_ERR_FIELD, "key file: the address is not user@domain");
    if (sodium_init() < 0)
        return dc_fail(err, DC_ERR_CRYPTO, "libsodium did not initialize");
    uint8_t *key;
    enum dc_status s = derive(pass, passlen, bin + 17, get32(bin + 9), get32(bin + 13), &key,
                              err);
    if (s != DC_OK)
        return s;
    uint8_t *plain = dc_secure_alloc(PLAIN_LEN);
    unsigned long long pl = 0;
    int bad = crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &pl, NULL, bin + hl,
                                                         PLAIN_LEN + TAG_LEN, bin, hl,
                                                         bin + 17 + SALT_LEN, key);
    dc_secure_free(key, KEY_LEN);
    if (bad != 0 || pl != PLAIN_LEN) {
        dc_secure_free(plain, PLAIN_LEN);
        return dc_fail(err, DC_ERR_SIGNATURE, "wrong passphrase, or the key file was altered");
    }
    s = dc_sign_key_from_seed(plain, sk, err);
    if (s == DC_OK)
        s = dc_enc_key_from_private(plain + DC_ED25519_SEED_LEN, ek, err);
    dc_secure_free(plain, PLAIN_LEN);
    if (s != DC_OK) {
        dc_sign_key_free(*sk);
        dc_enc_key_free(*ek);
        *sk = NULL;
        *ek = NULL;
        return s;
    }
    *address = dc_xmalloc(al + 1);
    memcpy(*address, bin + FIXED_LEN, al);
    (*address)[al] = '\0';
    return DC_OK;
}
