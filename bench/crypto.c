/*
 * bench/crypto - the floor every later benchmark compares against.
 *
 * Prints, for each primitive the DIME core uses, operations (or MB) per second through our
 * dc_crypto wrappers next to a baseline measured in the same run:
 *   - Ed25519 sign/verify: dc_ed25519_* versus raw OpenSSL EVP with a pre-built key object;
 *   - secp256k1 ECDH: dc_ecdh_x (libsecp256k1) versus OpenSSL EVP_PKEY_derive (generic EC);
 *   - AES-256-CBC and SHA-512 throughput: dc_* versus raw EVP.
 * Usage: crypto [seconds-per-measurement]   (default 1.0)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "dc_crypto.h"

static double budget = 1.0;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define MEASURE(result, body)                                                                      \
    do {                                                                                           \
        unsigned long n_ = 0;                                                                      \
        double t0_ = now(), t_;                                                                    \
        do {                                                                                       \
            for (int k_ = 0; k_ < 16; k_++) {                                                      \
                body;                                                                              \
            }                                                                                      \
            n_ += 16;                                                                              \
        } while ((t_ = now() - t0_) < budget);                                                     \
        (result) = (double)n_ / t_;                                                                \
    } while (0)

static void die(const char *what)
{
    fprintf(stderr, "bench/crypto: %s failed\n", what);
    exit(1);
}

static void row(const char *name, double ours, double base, const char *unit, const char *bname)
{
    printf("%-30s %10.1f %-5s | %-34s %10.1f %-5s | ratio %6.2f\n", name, ours, unit, bname, base,
           unit, ours / base);
}

static EVP_PKEY *ossl_secp256k1_key(void)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
    if (pk == NULL)
        die("OpenSSL secp256k1 keygen");
    return pk;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        budget = atof(argv[1]);
    if (budget <= 0)
        budget = 1.0;
    printf("dime-gateway bench/crypto (%.1f s per measurement; ratio = ours / baseline)\n",
           budget);
    printf("%-47s | %-51s |\n", "ours", "baseline (same run)");

    /* ---- Ed25519 ---- */
    struct dc_sign_key *sk = NULL;
    if (dc_sign_key_generate(&sk, NULL) != DC_OK)
        die("Ed25519 keygen");
    uint8_t msg[64], sig[64];
    dc_random(msg, sizeof(msg));
    EVP_PKEY *edpriv =
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk->seed, sizeof(sk->seed));
    EVP_PKEY *edpub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, sk->pub, 32);
    if (edpriv == NULL || edpub == NULL)
        die("EVP Ed25519 key");
    double ours, base;
    MEASURE(ours, if (dc_ed25519_sign(sk, msg, sizeof(msg), sig, NULL) != DC_OK) die("sign"));
    MEASURE(base, {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        size_t sl = 64;
        if (EVP_DigestSignInit(md, NULL, NULL, NULL, edpriv) != 1 ||
            EVP_DigestSign(md, sig, &sl, msg, sizeof(msg)) != 1)
            die("EVP sign");
        EVP_MD_CTX_free(md);
    });
    row("Ed25519 sign (dc)", ours, base, "op/s", "Ed25519 sign (EVP, key reused)");
    MEASURE(ours, if (dc_ed25519_verify(sk->pub, msg, sizeof(msg), sig) != DC_OK) die("verify"));
    MEASURE(base, {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (EVP_DigestVerifyInit(md, NULL, NULL, NULL, edpub) != 1 ||
            EVP_DigestVerify(md, sig, 64, msg, sizeof(msg)) != 1)
            die("EVP verify");
        EVP_MD_CTX_free(md);
    });
    row("Ed25519 verify (dc)", ours, base, "op/s", "Ed25519 verify (EVP, key reused)");
    EVP_PKEY_free(edpriv);
    EVP_PKEY_free(edpub);
    dc_sign_key_free(sk);

    /* ---- secp256k1 ECDH ---- */
    struct dc_enc_key *a = NULL, *b = NULL;
    if (dc_enc_key_generate(&a, NULL) != DC_OK || dc_enc_key_generate(&b, NULL) != DC_OK)
        die("secp256k1 keygen");
    uint8_t x[32];
    MEASURE(ours, if (dc_ecdh_x(a, b->pub, x, NULL) != DC_OK) die("ecdh"));
    EVP_PKEY *oa = ossl_secp256k1_key(), *ob = ossl_secp256k1_key();
    MEASURE(base, {
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(oa, NULL);
        size_t xl = sizeof(x);
        if (c == NULL || EVP_PKEY_derive_init(c) != 1 || EVP_PKEY_derive_set_peer(c, ob) != 1 ||
            EVP_PKEY_derive(c, x, &xl) != 1)
            die("EVP derive");
        EVP_PKEY_CTX_free(c);
    });
    row("ECDH secp256k1 (libsecp256k1)", ours, base, "op/s", "ECDH secp256k1 (OpenSSL EVP)");
    struct dc_kek kek;
    double kek_rate;
    MEASURE(kek_rate, if (dc_kek_derive(a, b->pub, &kek, NULL) != DC_OK) die("kek"));
    row("KEK derive (ECDH+SHA-512)", kek_rate, base, "op/s", "ECDH secp256k1 (OpenSSL EVP)");
    EVP_PKEY_free(oa);
    EVP_PKEY_free(ob);
    dc_enc_key_free(a);
    dc_enc_key_free(b);

    /* ---- AES-256-CBC and SHA-512 throughput, 64 KiB blocks ---- */
    enum { BLK = 65536 };
    uint8_t *in = malloc(BLK), *out = malloc(BLK), key[32], iv[16], h[64];
    if (in == NULL || out == NULL)
        die("malloc");
    dc_random(in, BLK);
    dc_random(key, sizeof(key));
    dc_random(iv, sizeof(iv));
    MEASURE(ours, if (dc_aes256_cbc_encrypt(key, iv, in, BLK, out, NULL) != DC_OK) die("cbc"));
    EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
    MEASURE(base, {
        int ol = 0;
        if (EVP_EncryptInit_ex(cc, EVP_aes_256_cbc(), NULL, key, iv) != 1 ||
            EVP_CIPHER_CTX_set_padding(cc, 0) != 1 ||
            EVP_EncryptUpdate(cc, out, &ol, in, BLK) != 1)
            die("EVP cbc");
    });
    EVP_CIPHER_CTX_free(cc);
    row("AES-256-CBC encrypt (dc)", ours * BLK / 1e6, base * BLK / 1e6, "MB/s",
        "AES-256-CBC encrypt (EVP)");
    MEASURE(ours, if (dc_aes256_cbc_decrypt(key, iv, out, BLK, in, NULL) != DC_OK) die("cbc"));
    cc = EVP_CIPHER_CTX_new();
    MEASURE(base, {
        int ol = 0;
        if (EVP_DecryptInit_ex(cc, EVP_aes_256_cbc(), NULL, key, iv) != 1 ||
            EVP_CIPHER_CTX_set_padding(cc, 0) != 1 ||
            EVP_DecryptUpdate(cc, in, &ol, out, BLK) != 1)
            die("EVP cbc");
    });
    EVP_CIPHER_CTX_free(cc);
    row("AES-256-CBC decrypt (dc)", ours * BLK / 1e6, base * BLK / 1e6, "MB/s",
        "AES-256-CBC decrypt (EVP)");
    MEASURE(ours, dc_sha512(in, BLK, h));
    MEASURE(base, {
        unsigned int hl;
        if (EVP_Digest(in, BLK, h, &hl, EVP_sha512(), NULL) != 1)
            die("EVP sha512");
    });
    row("SHA-512 (dc)", ours * BLK / 1e6, base * BLK / 1e6, "MB/s", "SHA-512 (EVP_Digest)");
    free(in);
    free(out);
    return 0;
}
