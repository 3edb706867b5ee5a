/*
 * dc_crypto - the cryptographic primitives DIME uses, over OpenSSL 3 (EVP) and libsecp256k1.
 *
 *  - Ed25519 (RFC 8032, pure): signets, D/MIME signatures, POKs and SOKs.
 *  - secp256k1 ECDH (libsecp256k1, constant time) with libdime's KDF: SHA-512 over the raw
 *    32-byte X coordinate of the shared point; KEK iv = h[0:16] XOR h[16:32], key = h[32:64].
 *  - AES-256-CBC without padding (D/MIME chunks and key slots), AES-256-GCM (keys at rest),
 *    SHA-512, and the OpenSSL CSPRNG.
 *
 * Private keys are held in dc_secure_alloc() memory and zeroized when freed. Signing goes
 * through struct dc_signer so that a caller without the key (the keyvault client) can plug
 * in a remote signer.
 */
#ifndef DC_CRYPTO_H
#define DC_CRYPTO_H

#include "dc_util.h"

#define DC_ED25519_PUB_LEN  32
#define DC_ED25519_SEED_LEN 32
#define DC_ED25519_SIG_LEN  64
#define DC_SECP_PUB_LEN     33 /* SEC1 compressed */
#define DC_SECP_PRIV_LEN    32
#define DC_SHA512_LEN       64
#define DC_AES_KEY_LEN      32
#define DC_AES_BLOCK        16
#define DC_GCM_IV_LEN       12
#define DC_GCM_TAG_LEN      16

/* ---- random ---- */
enum dc_status dc_random(void *buf, size_t n);

/* ---- hashing ---- */
void dc_sha512(const void *in, size_t len, uint8_t out[DC_SHA512_LEN]);
struct dc_sha512_ctx;
struct dc_sha512_ctx *dc_sha512_new(void);
void dc_sha512_update(struct dc_sha512_ctx *c, const void *in, size_t len);
void dc_sha512_final(struct dc_sha512_ctx *c, uint8_t out[DC_SHA512_LEN]); /* frees c */

/* ---- Ed25519 ---- */
struct dc_sign_key {
    uint8_t seed[DC_ED25519_SEED_LEN];
    uint8_t pub[DC_ED25519_PUB_LEN];
    void *impl; /* the OpenSSL key object, built once: importing a seed costs a scalar
                 * multiplication, which would halve the signing rate if done per call */
};

enum dc_status dc_sign_key_generate(struct dc_sign_key **out, struct dc_err *err);
enum dc_status dc_sign_key_from_seed(const uint8_t seed[DC_ED25519_SEED_LEN],
                                     struct dc_sign_key **out, struct dc_err *err);
/* The same without the scalar multiplication: pub must be the public key that
 * dc_sign_key_from_seed() derived from this very seed earlier (kv_vault remembers it per
 * sealed blob). It is not checked: a wrong pub gives invalid signatures, and signing under
 * two public keys with one seed can reveal the private key, so never take pub from anywhere
 * else. */
enum dc_status dc_sign_key_from_seed_pub(const uint8_t seed[DC_ED25519_SEED_LEN],
                                         const uint8_t pub[DC_ED25519_PUB_LEN],
                                         struct dc_sign_key **out, struct dc_err *err);
void dc_sign_key_free(struct dc_sign_key *k);

enum dc_status dc_ed25519_sign(const struct dc_sign_key *k, const void *msg, size_t len,
                               uint8_t sig[DC_ED25519_SIG_LEN], struct dc_err *err);
/* DC_OK when the signature verifies; DC_ERR_SIGNATURE when it does not; DC_ERR_KEY when the
 * public key is not a valid encoding. */
enum dc_status dc_ed25519_verify(const uint8_t pub[DC_ED25519_PUB_LEN], const void *msg,
                                 size_t len, const uint8_t sig[DC_ED25519_SIG_LEN]);

/*
 * Streaming pure Ed25519 (RFC 8032, not Ed25519ph) for messages too large to hold in memory.
 * The group arithmetic is libsodium's; the hashing is dc_sha512. Signatures are byte-identical
 * to dc_ed25519_sign (deterministic Ed25519) and verification accepts exactly what
 * dc_ed25519_verify (OpenSSL) accepts: S < L, A decoded like OpenSSL (y taken mod p, any
 * point on the curve, small order included), the cofactorless equation checked as
 * encode([S]B - [k]A) == R byte for byte.
 *
 * A feed pushes the whole message, in order, through update(h, ...) and returns DC_OK (or
 * an error, which aborts the operation). Signing calls it twice: the message is hashed once
 * for the nonce and once for the challenge, so the feed must give the same bytes both times.
 */
typedef enum dc_status (*dc_ed25519_feed)(void *ctx,
                                          void (*update)(void *h, const void *p, size_t n),
                                          void *h, struct dc_err *err);
enum dc_status dc_ed25519_stream_sign(const struct dc_sign_key *k, dc_ed25519_feed feed,
                                      void *ctx, uint8_t sig[DC_ED25519_SIG_LEN],
                                      struct dc_err *err);

/*
 * The same signature with the message pushed in rather than pulled through a feed (the
 * keyvault receives it in frames): _init, the message through _update, _pass2, the same
 * message again through _update, then _final, which writes the signature and frees the
 * context. Besides the challenge hash, the second pass is hashed once more exactly like the
 * first (SHA-512 of the nonce prefix and the message) and _final refuses (DC_ERR_SIGNATURE,
 * no signature) unless both passes had the same length and that digest matches the nonce's:
 * a challenge over other bytes than the nonce would give two signatures with one nonce, from
 * which anyone can compute the private key. Secret state (the expanded key, the nonce and
 * its hash) is in dc_secure_alloc() memory; _free drops a context without a signature.
 */
struct dc_ed25519_sign_ctx;
struct dc_ed25519_sign_ctx *dc_ed25519_sign_init(const struct dc_sign_key *k);
void dc_ed25519_sign_update(struct dc_ed25519_sign_ctx *c, const void *p, size_t n);
/* Ends the first pass; DC_ERR_ARG when called twice. */
enum dc_status dc_ed25519_sign_pass2(struct dc_ed25519_sign_ctx *c, struct dc_err *err);
/* Bytes received so far in the current pass. */
uint64_t dc_ed25519_sign_count(const struct dc_ed25519_sign_ctx *c);
enum dc_status dc_ed25519_sign_final(struct dc_ed25519_sign_ctx *c,
                                     uint8_t sig[DC_ED25519_SIG_LEN], struct dc_err *err);
void dc_ed25519_sign_free(struct dc_ed25519_sign_ctx *c);

struct dc_ed25519_verify_ctx;
/* Starts a verification; the message then goes through _update, and _final (which frees the
 * context) returns DC_OK, DC_ERR_SIGNATURE, or DC_ERR_KEY for a public key OpenSSL would not
 * decode. _free drops a context without a result. */
struct dc_ed25519_verify_ctx *dc_ed25519_verify_init(const uint8_t pub[DC_ED25519_PUB_LEN],
                                                     const uint8_t sig[DC_ED25519_SIG_LEN]);
void dc_ed25519_verify_update(struct dc_ed25519_verify_ctx *c, const void *p, size_t n);
enum dc_status dc_ed25519_verify_final(struct dc_ed25519_verify_ctx *c);
void dc_ed25519_verify_free(struct dc_ed25519_verify_ctx *c);

/* A signing capability: a local key or a remote signer (keyvault). sign_stream is optional:
 * when set, dc_signer_sign_stream() hands it the feed (which it must call exactly twice, see
 * dc_ed25519_feed) instead of gathering the message for sign. Initialize signers with
 * designated initializers or dc_signer_local(); a zeroed sign_stream keeps the gathering. */
struct dc_signer {
    enum dc_status (*sign)(void *ctx, const uint8_t *msg, size_t len,
                           uint8_t sig[DC_ED25519_SIG_LEN], struct dc_err *err);
    void *ctx;
    uint8_t pub[DC_ED25519_PUB_LEN];
    enum dc_status (*sign_stream)(void *ctx, dc_ed25519_feed feed, void *feed_ctx,
                                  uint8_t sig[DC_ED25519_SIG_LEN], struct dc_err *err);
    /* Optional: n signatures at once, sigs[i] over msgs[i] (a remote signer sends the n
     * requests together instead of waiting for each answer). On error no sigs[i] may be
     * used. */
    enum dc_status (*sign_many)(void *ctx, size_t n, const uint8_t *const *msgs,
                                const size_t *lens, uint8_t (*const *sigs)[DC_ED25519_SIG_LEN],
                                struct dc_err *err);
};
/* A signer over a local key; the key must outlive the signer. */
void dc_signer_local(struct dc_signer *s, const struct dc_sign_key *k);
enum dc_status dc_signer_sign(const struct dc_signer *s, const uint8_t *msg, size_t len,
                              uint8_t sig[DC_ED25519_SIG_LEN], struct dc_err *err);

/* n signatures (sigs[i] over msgs[i]): with the signer's sign_many when it has one, else one
 * sign call each. */
enum dc_status dc_signer_sign_many(const struct dc_signer *s, size_t n,
                                   const uint8_t *const *msgs, const size_t *lens,
                                   uint8_t (*const *sigs)[DC_ED25519_SIG_LEN],
                                   struct dc_err *err);

/* The local key behind a signer made by dc_signer_local(), or NULL for any other signer. */
const struct dc_sign_key *dc_signer_local_key(const struct dc_signer *s);
/* Signs what feed gives (twice, see dc_ed25519_feed): through the signer's sign_stream when
 * it has one (a local key, the keyvault client), else by gathering the message into memory
 * and calling sign. */
enum dc_status dc_signer_sign_stream(const struct dc_signer *s, dc_ed25519_feed feed, void *ctx,
                                     uint8_t sig[DC_ED25519_SIG_LEN], struct dc_err *err);

/* ---- secp256k1 ---- */
struct dc_enc_key {
    uint8_t priv[DC_SECP_PRIV_LEN];
    uint8_t pub[DC_SECP_PUB_LEN];
};

enum dc_status dc_enc_key_generate(struct dc_enc_key **out, struct dc_err *err);
/* Fails (DC_ERR_KEY) for zero or out-of-range scalars. */
enum dc_status dc_enc_key_from_private(const uint8_t priv[DC_SECP_PRIV_LEN],
                                       struct dc_enc_key **out, struct dc_err *err);
void dc_enc_key_free(struct dc_enc_key *k);

/* Checks that pub is a 33-byte compressed point on the curve. */
enum dc_status dc_secp_pub_check(const uint8_t *pub, size_t len, struct dc_err *err);

/* Raw ECDH: the X coordinate of priv * pub. */
enum dc_status dc_ecdh_x(const struct dc_enc_key *k, const uint8_t pub[DC_SECP_PUB_LEN],
                         uint8_t x[32], struct dc_err *err);

struct dc_kek {
    uint8_t iv[DC_AES_BLOCK];
    uint8_t key[DC_AES_KEY_LEN];
};
/* libdime's KEK: ECDH, SHA-512 of X, iv = h[0:16]^h[16:32], key = h[32:64]. */
enum dc_status dc_kek_derive(const struct dc_enc_key *k, const uint8_t pub[DC_SECP_PUB_LEN],
                             struct dc_kek *kek, struct dc_err *err);
/* The KDF step alone (from an X coordinate). */
void dc_kek_from_x(const uint8_t x[32], struct dc_kek *kek);

/* ---- AES ---- */
/* AES-256-CBC without padding; len must be a multiple of 16; in and out may be equal. */
enum dc_status dc_aes256_cbc_encrypt(const uint8_t key[32], const uint8_t iv[16],
                                     const uint8_t *in, size_t len, uint8_t *out,
                                     struct dc_err *err);
enum dc_status dc_aes256_cbc_decrypt(const uint8_t key[32], const uint8_t iv[16],
                                     const uint8_t *in, size_t len, uint8_t *out,
                                     struct dc_err *err);
/* AES-256-CBC without padding, incrementally: each update takes a multiple of 16 bytes
 * (in and out may be equal); the chaining carries over between calls. */
struct dc_aes_cbc;
struct dc_aes_cbc *dc_aes_cbc_new(const uint8_t key[32], const uint8_t iv[16], int encrypt);
enum dc_status dc_aes_cbc_update(struct dc_aes_cbc *c, const uint8_t *in, size_t len,
                                 uint8_t *out, struct dc_err *err);
void dc_aes_cbc_free(struct dc_aes_cbc *c);
/* AES-256-GCM with a 12-byte IV and 16-byte tag. open() returns DC_ERR_SIGNATURE when the
 * tag does not authenticate (and leaves out zeroed). */
enum dc_status dc_aes256_gcm_seal(const uint8_t key[32], const uint8_t iv[DC_GCM_IV_LEN],
                                  const uint8_t *aad, size_t aadlen, const uint8_t *in,
                                  size_t len, uint8_t *out, uint8_t tag[DC_GCM_TAG_LEN],
                                  struct dc_err *err);
enum dc_status dc_aes256_gcm_open(const uint8_t key[32], const uint8_t iv[DC_GCM_IV_LEN],
                                  const uint8_t *aad, size_t aadlen, const uint8_t *in,
                                  size_t len, const uint8_t tag[DC_GCM_TAG_LEN], uint8_t *out,
                                  struct dc_err *err);

#endif
