/* Crypto module: known answers from the libdime vectors and RFC 8032, and failure cases. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dc_crypto.h"
#include "vectors.h"

static void hexeq(const uint8_t *got, size_t n, const char *want)
{
    char buf[256];
    dc_hex_encode(got, n, buf);
    cr_assert_str_eq(buf, want);
}

/* Key material from the vectors' keys.json (seed, public, secp private, secp public). */
static const struct {
    const char *seed, *pub, *epriv, *epub;
} keys[] = {
    {"9eb86ee5539c6344ba676434cb39db6f06de09b2f46c91cc47d13862f5c0cca5",
     "fc08914eaa42262c9d5413d8e3ed1275d26e02b84070e7d7fda0e283aa7ee7f2",
     "b2c60faa8c57c4823627cfa8d84d78a04923123b8d1331ceaecb424efb41401c",
     "03a6eb520933f17bb63a1eaee80e137d93124c0e91058ac6e20e2ab24bbb7225f7"},
    {"618bcb905af2f4ba5559e5660d13e85db37cf4f054fb53205245860b1f459323",
     "9b1f4876476761f49f819d6fc26ee2fa94351f99b97f63129624ddf2f7e65a64",
     "48497f759c0944b4a54f6b3b5fb2f725ea533496c1e513a24c39da858520b62d",
     "02f4e6c7b2fb85bea178813c4d7a7bd22ef0e551188c2eef23d830e84ef69228c8"},
    {"5f37467d56d32e93588992ec142242a908e8bb57e0ef0419ec8e1d3de3b74b3c",
     "9712b7b8a7e4d8db0d4bb1cdbabc68c611b002b6a82c0302afdee9347f4a9bed",
     "25bae72bbcdbacb4515818f784fa81349c902cfc628f61ba4063f8fdf6da1097",
     "032f05864a0e082ba572ad523e5e251b1e81aa8231e2383bd950a2b0a8de555a17"},
    {"549f9324f8561ee571ecf3c9198722c9539d5027d9e5a4cb39b916364e3a914e",
     "4077e99e51eacb0943eefe6347567139156bfe9fdb10b52fe049eab12c95efb4",
     "1d7f60a9c59a8360941c615cfb61c37016aca66f0662d4526af01741adee2e06",
     "02dd76efd7a45a0951405d548e2f417edaed3a03fad6f766fc387a3e86aa2ca4e1"},
};

Test(crypto, ed25519_seed_gives_the_vector_public_keys)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        size_t n;
        uint8_t *seed = vec_hex(keys[i].seed, &n);
        struct dc_sign_key *k = NULL;
        cr_assert_eq(dc_sign_key_from_seed(seed, &k, NULL), DC_OK);
        hexeq(k->pub, 32, keys[i].pub);
        dc_sign_key_free(k);
        free(seed);
    }
}

Test(crypto, secp256k1_private_gives_the_vector_public_keys)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        size_t n;
        uint8_t *priv = vec_hex(keys[i].epriv, &n);
        struct dc_enc_key *k = NULL;
        cr_assert_eq(dc_enc_key_from_private(priv, &k, NULL), DC_OK);
        hexeq(k->pub, 33, keys[i].epub);
        dc_enc_key_free(k);
        free(priv);
    }
}

/* RFC 8032 section 7.1, TEST 2 (one-byte message). */
Test(crypto, ed25519_rfc8032_test2)
{
    size_t n;
    uint8_t *seed = vec_hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", &n);
    struct dc_sign_key *k = NULL;
    cr_assert_eq(dc_sign_key_from_seed(seed, &k, NULL), DC_OK);
    hexeq(k->pub, 32, "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
    uint8_t msg = 0x72, sig[64];
    cr_assert_eq(dc_ed25519_sign(k, &msg, 1, sig, NULL), DC_OK);
    hexeq(sig, 64,
          "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
          "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00");
    cr_assert_eq(dc_ed25519_verify(k->pub, &msg, 1, sig), DC_OK);
    sig[10] ^= 1;
    cr_assert_eq(dc_ed25519_verify(k->pub, &msg, 1, sig), DC_ERR_SIGNATURE);
    sig[10] ^= 1;
    msg ^= 1;
    cr_assert_eq(dc_ed25519_verify(k->pub, &msg, 1, sig), DC_ERR_SIGNATURE);
    dc_sign_key_free(k);
    free(seed);
}

Test(crypto, signer_interface_signs_like_the_key)
{
    struct dc_sign_key *k = NULL;
    cr_assert_eq(dc_sign_key_generate(&k, NULL), DC_OK);
    struct dc_signer s;
    dc_signer_local(&s, k);
    uint8_t sig1[64], sig2[64];
    cr_assert_eq(dc_signer_sign(&s, (const uint8_t *)"abc", 3, sig1, NULL), DC_OK);
    cr_assert_eq(dc_ed25519_sign(k, "abc", 3, sig2, NULL), DC_OK);
    cr_assert_eq(memcmp(sig1, sig2, 64), 0);
    cr_assert_eq(dc_ed25519_verify(s.pub, "abc", 3, sig1), DC_OK);
    dc_sign_key_free(k);
}

Test(crypto, seed_with_known_public_key_signs_like_the_seed)
{
    struct dc_sign_key *k = NULL, *k2 = NULL;
    cr_assert_eq(dc_sign_key_generate(&k, NULL), DC_OK);
    cr_assert_eq(dc_sign_key_from_seed_pub(k->seed, k->pub, &k2, NULL), DC_OK);
    cr_assert_arr_eq(k2->pub, k->pub, 32);
    uint8_t sig1[64], sig2[64];
    cr_assert_eq(dc_ed25519_sign(k, "abc", 3, sig1, NULL), DC_OK);
    cr_assert_eq(dc_ed25519_sign(k2, "abc", 3, sig2, NULL), DC_OK);
    cr_assert_arr_eq(sig1, sig2, 64); /* Ed25519 is deterministic */
    cr_assert_eq(dc_ed25519_verify(k->pub, "abc", 3, sig2), DC_OK);
    dc_sign_key_free(k);
    dc_sign_key_free(k2);
}

/* The four KEKs of message.dmsg (vectors README 4.3): ECDH of the ephemeral key in chunk 2
 * with each actor's encryption private key, then libdime's SHA-512 KDF. */
Test(crypto, kek_derivation_matches_the_message_vector)
{
    static const struct {
        int key;
        const char *iv, *k;
    } want[] = {
        {2, "2966686ea45d9054d31c2ae796cc5331",
         "02bc67161b85a4ec2aff8c2bc0ff97503d45532043669ce03863310780673bb9"},
        {0, "aacded0352c6c78cc969a478da37542d",
         "3b60f6e41dcefbbe7415170b76a9ac2411bf4e31e35a006bd2f7eabf2fdf4fd7"},
        {1, "85de69d641a7d2d4ec28855019540516",
         "192d5005bbfea9a2964b804d32fd71bbd8a240d8cfa3f8230ed9d38af5999801"},
        {3, "0d4116843171bce8b1a0a99c5353acfb",
         "d38b5404e9dfaa5f5f32dca6dbddc969f9a85a79f24082981457e1b4f6c4ca2e"},
    };
    size_t mlen;
    uint8_t *msg = vec_read("message.dmsg", &mlen);
    cr_assert_gt(mlen, 43);
    cr_assert_eq(msg[6], 2); /* ephemeral chunk */
    const uint8_t *eph = msg + 10;
    cr_assert_eq(dc_secp_pub_check(eph, 33, NULL), DC_OK);
    for (size_t i = 0; i < 4; i++) {
        size_t n;
        uint8_t *priv = vec_hex(keys[want[i].key].epriv, &n);
        struct dc_enc_key *k = NULL;
        cr_assert_eq(dc_enc_key_from_private(priv, &k, NULL), DC_OK);
        struct dc_kek kek;
        cr_assert_eq(dc_kek_derive(k, eph, &kek, NULL), DC_OK);
        hexeq(kek.iv, 16, want[i].iv);
        hexeq(kek.key, 32, want[i].k);
        dc_enc_key_free(k);
        free(priv);
    }
    free(msg);
}

Test(crypto, ecdh_is_symmetric)
{
    struct dc_enc_key *a = NULL, *b = NULL;
    cr_assert_eq(dc_enc_key_generate(&a, NULL), DC_OK);
    cr_assert_eq(dc_enc_key_generate(&b, NULL), DC_OK);
    uint8_t x1[32], x2[32];
    cr_assert_eq(dc_ecdh_x(a, b->pub, x1, NULL), DC_OK);
    cr_assert_eq(dc_ecdh_x(b, a->pub, x2, NULL), DC_OK);
    cr_assert_eq(memcmp(x1, x2, 32), 0);
    dc_enc_key_free(a);
    dc_enc_key_free(b);
}

Test(crypto, invalid_curve_points_and_scalars_are_refused)
{
    struct dc_err err;
    uint8_t p[33];
    memset(p, 0, sizeof(p));
    p[0] = 0x02; /* x = 0 is not on secp256k1 (0^3 + 7 = 7 is not a square mod p) */
    cr_assert_eq(dc_secp_pub_check(p, 33, &err), DC_ERR_KEY);
    cr_assert(strstr(err.msg, "not a point") != NULL, "%s", err.msg);
    p[0] = 0x04;
    cr_assert_eq(dc_secp_pub_check(p, 33, &err), DC_ERR_KEY);
    cr_assert(strstr(err.msg, "prefix") != NULL, "%s", err.msg);
    cr_assert_eq(dc_secp_pub_check(p, 32, &err), DC_ERR_KEY);
    memset(p, 0xff, 33);
    p[0] = 0x03; /* x >= field prime */
    cr_assert_eq(dc_secp_pub_check(p, 33, &err), DC_ERR_KEY);

    uint8_t zero[32] = {0}, big[32];
    memset(big, 0xff, sizeof(big));
    struct dc_enc_key *k = NULL;
    cr_assert_eq(dc_enc_key_from_private(zero, &k, &err), DC_ERR_KEY);
    cr_assert_eq(dc_enc_key_from_private(big, &k, &err), DC_ERR_KEY);
    cr_assert_null(k);
}

/* NIST SP 800-38A F.2.5 CBC-AES256.Encrypt, first two blocks. */
Test(crypto, aes256_cbc_nist_vector_and_round_trip)
{
    size_t n;
    uint8_t *key = vec_hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", &n);
    uint8_t *iv = vec_hex("000102030405060708090a0b0c0d0e0f", &n);
    uint8_t *pt = vec_hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51", &n);
    uint8_t ct[32], back[32];
    cr_assert_eq(dc_aes256_cbc_encrypt(key, iv, pt, 32, ct, NULL), DC_OK);
    hexeq(ct, 32, "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d");
    cr_assert_eq(dc_aes256_cbc_decrypt(key, iv, ct, 32, back, NULL), DC_OK);
    cr_assert_eq(memcmp(back, pt, 32), 0);
    struct dc_err err;
    cr_assert_eq(dc_aes256_cbc_encrypt(key, iv, pt, 31, ct, &err), DC_ERR_ARG);
    free(key);
    free(iv);
    free(pt);
}

Test(crypto, aes256_gcm_detects_tampering)
{
    uint8_t key[32], iv[12], tag[16], pt[100], ct[100], back[100];
    dc_random(key, sizeof(key));
    dc_random(iv, sizeof(iv));
    dc_random(pt, sizeof(pt));
    cr_assert_eq(dc_aes256_gcm_seal(key, iv, (const uint8_t *)"aad", 3, pt, 100, ct, tag, NULL),
                 DC_OK);
    cr_assert_eq(dc_aes256_gcm_open(key, iv, (const uint8_t *)"aad", 3, ct, 100, tag, back, NULL),
                 DC_OK);
    cr_assert_eq(memcmp(back, pt, 100), 0);
    ct[5] ^= 1;
    struct dc_err err;
    cr_assert_eq(dc_aes256_gcm_open(key, iv, (const uint8_t *)"aad", 3, ct, 100, tag, back, &err),
                 DC_ERR_SIGNATURE);
    ct[5] ^= 1;
    cr_assert_eq(dc_aes256_gcm_open(key, iv, (const uint8_t *)"aae", 3, ct, 100, tag, back, &err),
                 DC_ERR_SIGNATURE);
}

Test(crypto, sha512_known_answer)
{
    uint8_t h[64];
    dc_sha512("abc", 3, h);
    hexeq(h, 64,
          "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
          "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
    struct dc_sha512_ctx *c = dc_sha512_new();
    dc_sha512_update(c, "a", 1);
    dc_sha512_update(c, "bc", 2);
    uint8_t h2[64];
    dc_sha512_final(c, h2);
    cr_assert_eq(memcmp(h, h2, 64), 0);
}
