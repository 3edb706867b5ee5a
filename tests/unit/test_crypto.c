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

/* The GCM specification's test case 16 (AES-256, 96-bit IV, AAD): the same bytes whichever
 * implementation dc_crypto picks (libsodium where the CPU has AES-NI, else OpenSSL), so blobs
 * sealed by either open with the other. */
Test(crypto, aes256_gcm_known_answer)
{
    size_t kl, il, al, pl, cl, tl;
    uint8_t *key = vec_hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
                           &kl);
    uint8_t *iv = vec_hex("cafebabefacedbaddecaf888", &il);
    uint8_t *aad = vec_hex("feedfacedeadbeeffeedfacedeadbeefabaddad2", &al);
    uint8_t *pt = vec_hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                          "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39", &pl);
    uint8_t *want = vec_hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662", &cl);
    uint8_t *wtag = vec_hex("76fc6ece0f4e1768cddf8853bb2d551b", &tl);
    uint8_t ct[64], tag[16], back[64];
    cr_assert_eq(kl, 32);
    cr_assert_eq(il, 12);
    cr_assert_eq(pl, 60);
    cr_assert_eq(dc_aes256_gcm_seal(key, iv, aad, al, pt, pl, ct, tag, NULL), DC_OK);
    cr_assert_eq(memcmp(ct, want, cl), 0);
    cr_assert_eq(memcmp(tag, wtag, tl), 0);
    cr_assert_eq(dc_aes256_gcm_open(key, iv, aad, al, want, cl, wtag, back, NULL), DC_OK);
    cr_assert_eq(memcmp(back, pt, pl), 0);
    /* no AAD, no plaintext: the tag alone (test case 13) */
    uint8_t *z = vec_hex("0000000000000000000000000000000000000000000000000000000000000000", &kl);
    uint8_t *ziv = vec_hex("000000000000000000000000", &il);
    uint8_t *ztag = vec_hex("530f8afbc74536b9a963b4f1c4cb738b", &tl);
    cr_assert_eq(dc_aes256_gcm_seal(z, ziv, NULL, 0, NULL, 0, ct, tag, NULL), DC_OK);
    cr_assert_eq(memcmp(tag, ztag, 16), 0);
    cr_assert_eq(dc_aes256_gcm_open(z, ziv, NULL, 0, NULL, 0, ztag, back, NULL), DC_OK);
    free(key);
    free(iv);
    free(aad);
    free(pt);
    free(want);
    free(wtag);
    free(z);
    free(ziv);
    free(ztag);
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

/* ---- streaming Ed25519 (libsodium group operations) against OpenSSL ---- */

#include <sodium.h>

/* Feeds msg in pieces whose sizes come from a small deterministic generator, so that every
 * signature sees the message cut differently. */
struct piece_feed {
    const uint8_t *msg;
    size_t len;
    uint32_t seed;
};

static enum dc_status piece_feed(void *ctx, void (*update)(void *h, const void *p, size_t n),
                                 void *h, struct dc_err *err)
{
    struct piece_feed *f = ctx;
    size_t at = 0;
    while (at < f->len) {
        f->seed = f->seed * 1103515245u + 12345u;
        size_t n = 1 + (f->seed >> 16) % 300;
        if (n > f->len - at)
            n = f->len - at;
        update(h, f->msg + at, n);
        at += n;
    }
    if (f->len == 0)
        update(h, "", 0);
    return DC_OK;
}

static enum dc_status stream_verify(const uint8_t *pub, const uint8_t *msg, size_t len,
                                    const uint8_t *sig, uint32_t seed)
{
    struct dc_ed25519_verify_ctx *c = dc_ed25519_verify_init(pub, sig);
    size_t at = 0;
    while (at < len) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 500;
        if (n > len - at)
            n = len - at;
        dc_ed25519_verify_update(c, msg + at, n);
        at += n;
    }
    return dc_ed25519_verify_final(c);
}

/* Both verifiers must give the same verdict (accept or not). */
static void same_verdict(const uint8_t *pub, const uint8_t *msg, size_t len, const uint8_t *sig,
                         const char *what)
{
    int o = dc_ed25519_verify(pub, msg, len, sig) == DC_OK;
    int s = stream_verify(pub, msg, len, sig, (uint32_t)len) == DC_OK;
    cr_assert_eq(o, s, "%s: OpenSSL says %d, streaming says %d", what, o, s);
}

/* RFC 8032 section 7.1, TEST 1 to 3 and TEST SHA(abc), through the streaming signer. */
Test(crypto, ed25519_stream_rfc8032_vectors)
{
    static const struct {
        const char *seed, *pub, *msg, *sig;
    } t[] = {
        {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
         "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
        {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
         "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
        {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
         "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
        {"833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
         "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
         "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
         "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
         "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
         "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint8_t seed[32], pub[32], msg[64], want[64], sig[64];
        size_t ml = strlen(t[i].msg) / 2;
        cr_assert_eq(dc_hex_decode(t[i].seed, 64, seed, 32), DC_OK);
        cr_assert_eq(dc_hex_decode(t[i].pub, 64, pub, 32), DC_OK);
        cr_assert_eq(dc_hex_decode(t[i].sig, 128, want, 64), DC_OK);
        if (ml)
            cr_assert_eq(dc_hex_decode(t[i].msg, ml * 2, msg, ml), DC_OK);
        struct dc_sign_key *k = NULL;
        cr_assert_eq(dc_sign_key_from_seed(seed, &k, NULL), DC_OK);
        cr_assert_arr_eq(k->pub, pub, 32);
        struct piece_feed f = {msg, ml, (uint32_t)i};
        cr_assert_eq(dc_ed25519_stream_sign(k, piece_feed, &f, sig, NULL), DC_OK);
        cr_assert_arr_eq(sig, want, 64, "vector %zu", i);
        cr_assert_eq(stream_verify(pub, msg, ml, sig, 7), DC_OK);
        sig[63] ^= 0x01;
        cr_assert_eq(stream_verify(pub, msg, ml, sig, 7), DC_ERR_SIGNATURE);
        dc_sign_key_free(k);
    }
}

/* Thousands of random keys and messages: the streaming signature is byte-identical to
 * OpenSSL's, and both verifiers agree on it and on mutated copies (bit flips in R, S, A and
 * the message, S + L). */
Test(crypto, ed25519_stream_matches_openssl_on_random_inputs, .timeout = 120)
{
    static const uint8_t L[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
                                  0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                                  0,    0,    0,    0,    0,    0,    0,    0,
                                  0,    0,    0,    0,    0,    0,    0,    0x10};
    uint8_t *msg = malloc(4096);
    size_t accepted = 0;
    for (int i = 0; i < 2000; i++) {
        struct dc_sign_key *k = NULL;
        cr_assert_eq(dc_sign_key_generate(&k, NULL), DC_OK);
        uint8_t r[4];
        cr_assert_eq(dc_random(r, sizeof(r)), DC_OK);
        size_t len = i < 10 ? (size_t)i : ((size_t)r[0] << 8 | r[1]) % 4096;
        cr_assert_eq(dc_random(msg, len ? len : 1), DC_OK);
        uint8_t want[64], sig[64], mut[64], pub[32];
        cr_assert_eq(dc_ed25519_sign(k, msg, len, want, NULL), DC_OK);
        struct piece_feed f = {msg, len, (uint32_t)i};
        cr_assert_eq(dc_ed25519_stream_sign(k, piece_feed, &f, sig, NULL), DC_OK);
        cr_assert_arr_eq(sig, want, 64, "signature %d differs (message of %zu bytes)", i, len);
        cr_assert_eq(stream_verify(k->pub, msg, len, sig, (uint32_t)i), DC_OK);
        accepted++;
        /* one flipped bit in R, in S, in A, in the message */
        unsigned bit = r[2] % 256u;
        memcpy(mut, sig, 64);
        mut[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        same_verdict(k->pub, msg, len, mut, "R bit flip");
        memcpy(mut, sig, 64);
        mut[32 + bit / 8] ^= (uint8_t)(1u << (bit % 8));
        same_verdict(k->pub, msg, len, mut, "S bit flip");
        memcpy(pub, k->pub, 32);
        pub[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        same_verdict(pub, msg, len, sig, "A bit flip");
        if (len) {
            size_t at = ((size_t)r[3] << 4) % len;
            msg[at] ^= (uint8_t)(1u << (r[3] % 8));
            same_verdict(k->pub, msg, len, sig, "message bit flip");
            msg[at] ^= (uint8_t)(1u << (r[3] % 8));
        }
        /* S + L: the same point equation, but not canonical: both must refuse */
        memcpy(mut, sig, 64);
        unsigned carry = 0;
        for (int j = 0; j < 32; j++) {
            unsigned v = mut[32 + j] + L[j] + carry;
            mut[32 + j] = (uint8_t)v;
            carry = v >> 8;
        }
        cr_assert_eq(dc_ed25519_verify(k->pub, msg, len, mut), DC_ERR_SIGNATURE);
        cr_assert_neq(stream_verify(k->pub, msg, len, mut, 3), DC_OK);
        dc_sign_key_free(k);
    }
    cr_assert_eq(accepted, 2000);
    free(msg);
}

/* The eight points of small order (canonical encodings), and non-canonical encodings of two
 * of them (y + p): as public keys and as R, with S = 0 and with random S; OpenSSL accepts
 * some of these (the cofactorless equation can hold), and the streaming verifier must accept
 * exactly the same ones. */
Test(crypto, ed25519_stream_small_order_and_noncanonical_points_like_openssl)
{
    static const char *const pts[] = {
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        /* y = p + 1 (the identity, non-canonical), with and without the sign bit */
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        /* y = 2: not on the curve */
        "0200000000000000000000000000000000000000000000000000000000000000",
    };
    size_t np = sizeof(pts) / sizeof(pts[0]), nacc = 0;
    uint8_t P[16][32];
    for (size_t i = 0; i < np; i++)
        cr_assert_eq(dc_hex_decode(pts[i], 64, P[i], 32), DC_OK);
    struct dc_sign_key *k = NULL;
    cr_assert_eq(dc_sign_key_generate(&k, NULL), DC_OK);
    for (size_t a = 0; a < np; a++) {
        for (size_t r = 0; r < np; r++) {
            for (int m = 0; m < 16; m++) {
                uint8_t msg[8] = {(uint8_t)m, (uint8_t)a, (uint8_t)r}, sig[64];
                memcpy(sig, P[r], 32);
                memset(sig + 32, 0, 32);
                if (m >= 12)
                    cr_assert_eq(dc_random(sig + 32, 31), DC_OK);
                int o = dc_ed25519_verify(P[a], msg, sizeof(msg), sig) == DC_OK;
                int s = stream_verify(P[a], msg, sizeof(msg), sig, 1) == DC_OK;
                cr_assert_eq(o, s, "A=%s R=%s m=%d: OpenSSL %d, streaming %d", pts[a], pts[r], m,
                             o, s);
                nacc += (size_t)o;
            }
            /* a real key with a small-order R */
            uint8_t msg[4] = {(uint8_t)a, (uint8_t)r}, sig[64];
            memcpy(sig, P[r], 32);
            memset(sig + 32, 0, 32);
            same_verdict(k->pub, msg, sizeof(msg), sig, "small-order R");
        }
    }
    cr_assert_gt(nacc, 0, "no accepted case: the test would not tell the verifiers apart");
    dc_sign_key_free(k);
}

/* Public keys with a small-order component (A + T, T of order 8), signatures made with the
 * key's scalar over A + T: valid exactly when [k]T vanishes, which OpenSSL's cofactorless
 * check decides; the streaming verifier must decide the same (and accept some). */
Test(crypto, ed25519_stream_mixed_order_keys_like_openssl)
{
    uint8_t T[32];
    cr_assert_eq(dc_hex_decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
                               64, T, 32),
                 DC_OK);
    cr_assert_geq(sodium_init(), 0);
    size_t acc = 0;
    for (int i = 0; i < 200; i++) {
        uint8_t a[32], A[32], A2[32], rr[32], R[32], h[64], kk[32], ka[32], sig[64];
        uint8_t msg[32];
        crypto_core_ed25519_scalar_random(a);
        cr_assert_eq(crypto_scalarmult_ed25519_base_noclamp(A, a), 0);
        cr_assert_eq(crypto_core_ed25519_add(A2, A, T), 0);
        cr_assert_eq(dc_random(msg, sizeof(msg)), DC_OK);
        crypto_core_ed25519_scalar_random(rr);
        cr_assert_eq(crypto_scalarmult_ed25519_base_noclamp(R, rr), 0);
        uint8_t buf[96];
        memcpy(buf, R, 32);
        memcpy(buf + 32, A2, 32);
        memcpy(buf + 64, msg, 32);
        dc_sha512(buf, sizeof(buf), h);
        crypto_core_ed25519_scalar_reduce(kk, h);
        crypto_core_ed25519_scalar_mul(ka, kk, a);
        memcpy(sig, R, 32);
        crypto_core_ed25519_scalar_add(sig + 32, rr, ka);
        int o = dc_ed25519_verify(A2, msg, sizeof(msg), sig) == DC_OK;
        int s = stream_verify(A2, msg, sizeof(msg), sig, 5) == DC_OK;
        cr_assert_eq(o, s, "round %d: OpenSSL %d, streaming %d", i, o, s);
        cr_assert_eq(o, kk[0] % 8 == 0, "round %d: k mod 8 = %d but OpenSSL says %d", i,
                     kk[0] % 8, o);
        acc += (size_t)o;
        /* and the honest key A verifies the same signature only when hashed with A */
        same_verdict(A, msg, sizeof(msg), sig, "prime-order key, signature over A + T");
    }
    cr_assert_gt(acc, 0);
    cr_assert_lt(acc, 200);
}

Test(crypto, aes_cbc_incremental_equals_one_shot)
{
    uint8_t key[32], iv[16], in[4096], one[4096], inc[4096], back[4096];
    cr_assert_eq(dc_random(key, 32), DC_OK);
    cr_assert_eq(dc_random(iv, 16), DC_OK);
    cr_assert_eq(dc_random(in, sizeof(in)), DC_OK);
    cr_assert_eq(dc_aes256_cbc_encrypt(key, iv, in, sizeof(in), one, NULL), DC_OK);
    struct dc_aes_cbc *c = dc_aes_cbc_new(key, iv, 1);
    size_t at = 0, step = 16;
    while (at < sizeof(in)) {
        size_t n = step < sizeof(in) - at ? step : sizeof(in) - at;
        cr_assert_eq(dc_aes_cbc_update(c, in + at, n, inc + at, NULL), DC_OK);
        at += n;
        step += 48;
    }
    dc_aes_cbc_free(c);
    cr_assert_arr_eq(inc, one, sizeof(in));
    c = dc_aes_cbc_new(key, iv, 0);
    memcpy(back, one, sizeof(back));
    cr_assert_eq(dc_aes_cbc_update(c, back, 1008, back, NULL), DC_OK); /* in place */
    cr_assert_eq(dc_aes_cbc_update(c, back + 1008, sizeof(back) - 1008, back + 1008, NULL),
                 DC_OK);
    cr_assert_neq(dc_aes_cbc_update(c, back, 15, back, NULL), DC_OK);
    dc_aes_cbc_free(c);
    cr_assert_arr_eq(back, in, sizeof(in));
}

/* Push-style signing (the keyvault's streams): the same bytes twice, in any cut, give
 * dc_ed25519_sign's signature; a second pass with other bytes, another length or none is
 * refused without a signature. */
Test(crypto, ed25519_push_signing_equals_one_shot_and_refuses_other_second_passes)
{
    uint8_t *msg = malloc(70000);
    for (int i = 0; i < 200; i++) {
        struct dc_sign_key *k = NULL;
        cr_assert_eq(dc_sign_key_generate(&k, NULL), DC_OK);
        size_t len = i < 3 ? (size_t)i : (size_t)(i * 347) % 70000;
        cr_assert_eq(dc_random(msg, 70000), DC_OK);
        uint8_t want[64], sig[64];
        cr_assert_eq(dc_ed25519_sign(k, msg, len, want, NULL), DC_OK);
        struct dc_ed25519_sign_ctx *c = dc_ed25519_sign_init(k);
        uint32_t seed = (uint32_t)i;
        for (int pass = 1; pass <= 2; pass++) {
            size_t at = 0;
            while (at < len) {
                seed = seed * 1103515245u + 12345u;
                size_t n = 1 + (seed >> 16) % 9000;
                if (n > len - at)
                    n = len - at;
                dc_ed25519_sign_update(c, msg + at, n);
                at += n;
            }
            cr_assert_eq(dc_ed25519_sign_count(c), len);
            if (pass == 1)
                cr_assert_eq(dc_ed25519_sign_pass2(c, NULL), DC_OK);
        }
        cr_assert_eq(dc_ed25519_sign_final(c, sig, NULL), DC_OK);
        cr_assert_arr_eq(sig, want, 64, "push signature %d differs (%zu bytes)", i, len);

        if (len > 0) {
            /* one flipped bit in the second pass */
            struct dc_err err = {0};
            uint8_t none[64] = {0}, out[64] = {0};
            c = dc_ed25519_sign_init(k);
            dc_ed25519_sign_update(c, msg, len);
            cr_assert_eq(dc_ed25519_sign_pass2(c, NULL), DC_OK);
            msg[len / 2] ^= 0x10;
            dc_ed25519_sign_update(c, msg, len);
            msg[len / 2] ^= 0x10;
            cr_assert_eq(dc_ed25519_sign_final(c, out, &err), DC_ERR_SIGNATURE);
            cr_assert(strstr(err.msg, "differs") != NULL, "%s", err.msg);
            cr_assert_arr_eq(out, none, 64);
            /* a shorter second pass */
            c = dc_ed25519_sign_init(k);
            dc_ed25519_sign_update(c, msg, len);
            cr_assert_eq(dc_ed25519_sign_pass2(c, NULL), DC_OK);
            dc_ed25519_sign_update(c, msg, len - 1);
            cr_assert_eq(dc_ed25519_sign_final(c, out, NULL), DC_ERR_SIGNATURE);
            cr_assert_arr_eq(out, none, 64);
        }
        /* no second pass, a repeated pass2, and a dropped context */
        c = dc_ed25519_sign_init(k);
        dc_ed25519_sign_update(c, msg, len);
        cr_assert_eq(dc_ed25519_sign_final(c, sig, NULL), DC_ERR_ARG);
        c = dc_ed25519_sign_init(k);
        cr_assert_eq(dc_ed25519_sign_pass2(c, NULL), DC_OK);
        cr_assert_eq(dc_ed25519_sign_pass2(c, NULL), DC_ERR_ARG);
        dc_ed25519_sign_free(c);
        dc_sign_key_free(k);
    }
    free(msg);
}

/* dc_signer_sign_stream uses the signer's stream method when it has one (never gathering),
 * and gathers for a signer without one. */
struct counting {
    int streams, gathers;
    struct dc_sign_key *k;
};

static enum dc_status counting_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64],
                                    struct dc_err *err)
{
    struct counting *c = ctx;
    c->gathers++;
    return dc_ed25519_sign(c->k, msg, len, sig, err);
}

static enum dc_status counting_stream(void *ctx, dc_ed25519_feed feed, void *feed_ctx,
                                      uint8_t sig[64], struct dc_err *err)
{
    struct counting *c = ctx;
    c->streams++;
    return dc_ed25519_stream_sign(c->k, feed, feed_ctx, sig, err);
}

Test(crypto, signer_stream_method_is_used_when_present)
{
    struct counting cnt = {0};
    cr_assert_eq(dc_sign_key_generate(&cnt.k, NULL), DC_OK);
    uint8_t msg[5000], want[64], sig[64];
    cr_assert_eq(dc_random(msg, sizeof(msg)), DC_OK);
    cr_assert_eq(dc_ed25519_sign(cnt.k, msg, sizeof(msg), want, NULL), DC_OK);
    struct piece_feed f = {msg, sizeof(msg), 9};
    struct dc_signer s = {.sign = counting_sign, .ctx = &cnt};
    cr_assert_eq(dc_signer_sign_stream(&s, piece_feed, &f, sig, NULL), DC_OK);
    cr_assert_arr_eq(sig, want, 64);
    cr_assert_eq(cnt.gathers, 1);
    cr_assert_eq(cnt.streams, 0);
    s.sign_stream = counting_stream;
    f.seed = 10;
    cr_assert_eq(dc_signer_sign_stream(&s, piece_feed, &f, sig, NULL), DC_OK);
    cr_assert_arr_eq(sig, want, 64);
    cr_assert_eq(cnt.gathers, 1);
    cr_assert_eq(cnt.streams, 1);
    struct dc_signer local;
    dc_signer_local(&local, cnt.k);
    cr_assert_not_null(local.sign_stream);
    cr_assert_eq(dc_signer_local_key(&local), cnt.k);
    f.seed = 11;
    cr_assert_eq(dc_signer_sign_stream(&local, piece_feed, &f, sig, NULL), DC_OK);
    cr_assert_arr_eq(sig, want, 64);
    dc_sign_key_free(cnt.k);
}

/* dc_ed25519_sign and _verify take libsodium or OpenSSL by message size (SODIUM_SIGN_MAX 16 KiB,
 * SODIUM_VERIFY_MAX 64 KiB): on both sides of each limit, with a key made by
 * dc_sign_key_from_seed (OpenSSL key object) and by dc_sign_key_from_seed_pub (none), the
 * signature is the streaming signer's byte for byte and verifies only unaltered. */
Test(crypto, ed25519_one_shot_both_implementations)
{
    static const size_t sizes[] = {0, 100, 16384, 16385, 65536, 65537, 200000};
    uint8_t seed[32];
    dc_random(seed, sizeof(seed));
    struct dc_sign_key *k1 = NULL, *k2 = NULL;
    cr_assert_eq(dc_sign_key_from_seed(seed, &k1, NULL), DC_OK);
    cr_assert_eq(dc_sign_key_from_seed_pub(seed, k1->pub, &k2, NULL), DC_OK);
    uint8_t *msg = malloc(200000);
    dc_random(msg, 200000);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        uint8_t s1[64], s2[64], s3[64];
        cr_assert_eq(dc_ed25519_sign(k1, msg, n, s1, NULL), DC_OK);
        cr_assert_eq(dc_ed25519_sign(k2, msg, n, s2, NULL), DC_OK);
        struct piece_feed f = {msg, n, (uint32_t)i};
        cr_assert_eq(dc_ed25519_stream_sign(k1, piece_feed, &f, s3, NULL), DC_OK);
        cr_assert_arr_eq(s1, s3, 64, "size %zu", n);
        cr_assert_arr_eq(s2, s3, 64, "size %zu", n);
        cr_assert_eq(dc_ed25519_verify(k1->pub, msg, n, s1), DC_OK, "size %zu", n);
        s1[10] ^= 0x20;
        cr_assert_eq(dc_ed25519_verify(k1->pub, msg, n, s1), DC_ERR_SIGNATURE, "size %zu", n);
        if (n > 0) {
            msg[n - 1] ^= 1;
            cr_assert_eq(dc_ed25519_verify(k1->pub, msg, n, s2), DC_ERR_SIGNATURE, "size %zu", n);
            msg[n - 1] ^= 1;
        }
    }
    free(msg);
    dc_sign_key_free(k1);
    dc_sign_key_free(k2);
}
