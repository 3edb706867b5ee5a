/* Private key files: the libdime vectors, variants, SOK files, saving, and one table row per
 * malformed key file. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dc_armor.h"
#include "dc_keys.h"
#include "dc_signet.h"
#include "vectors.h"

/* keys.json */
static const struct {
    const char *file, *signet;
    enum dc_key_type type;
    const char *seed, *pub, *scalar, *epub;
} vkeys[] = {
    {"alice.test.key", "alice.test.signet", DC_KEY_ORG,
     "9eb86ee5539c6344ba676434cb39db6f06de09b2f46c91cc47d13862f5c0cca5",
     "fc08914eaa42262c9d5413d8e3ed1275d26e02b84070e7d7fda0e283aa7ee7f2",
     "b2c60faa8c57c4823627cfa8d84d78a04923123b8d1331ceaecb424efb41401c",
     "03a6eb520933f17bb63a1eaee80e137d93124c0e91058ac6e20e2ab24bbb7225f7"},
    {"bob.test.key", "bob.test.signet", DC_KEY_ORG,
     "618bcb905af2f4ba5559e5660d13e85db37cf4f054fb53205245860b1f459323",
     "9b1f4876476761f49f819d6fc26ee2fa94351f99b97f63129624ddf2f7e65a64",
     "48497f759c0944b4a54f6b3b5fb2f725ea533496c1e513a24c39da858520b62d",
     "02f4e6c7b2fb85bea178813c4d7a7bd22ef0e551188c2eef23d830e84ef69228c8"},
    {"alice-alice.test.key", "alice-alice.test.signet", DC_KEY_USER,
     "5f37467d56d32e93588992ec142242a908e8bb57e0ef0419ec8e1d3de3b74b3c",
     "9712b7b8a7e4d8db0d4bb1cdbabc68c611b002b6a82c0302afdee9347f4a9bed",
     "25bae72bbcdbacb4515818f784fa81349c902cfc628f61ba4063f8fdf6da1097",
     "032f05864a0e082ba572ad523e5e251b1e81aa8231e2383bd950a2b0a8de555a17"},
    {"bob-bob.test.key", "bob-bob.test.signet", DC_KEY_USER,
     "549f9324f8561ee571ecf3c9198722c9539d5027d9e5a4cb39b916364e3a914e",
     "4077e99e51eacb0943eefe6347567139156bfe9fdb10b52fe049eab12c95efb4",
     "1d7f60a9c59a8360941c615cfb61c37016aca66f0662d4526af01741adee2e06",
     "02dd76efd7a45a0951405d548e2f417edaed3a03fad6f766fc387a3e86aa2ca4e1"},
};
#define NVKEYS (sizeof(vkeys) / sizeof(vkeys[0]))

/* The armored text of alice.test.key as keys.json records it. */
static const char alice_armored[] =
    "-----BEGIN ORGANIZATIONAL KEY-----\n"
    "B6AAAEUBIJ64buVTnGNEumdkNMs5228G3gmy9GyRzEfROGL1wMylAwAgssYPqoxX\n"
    "xII2J8+o2E14oEkjEjuNEzHOrstCTvtBQBw=\n"
    "=5bgI\n"
    "-----END ORGANIZATIONAL KEY-----\n";

static void hexeq(const uint8_t *got, size_t n, const char *want)
{
    char buf[256];
    dc_hex_encode(got, n, buf);
    cr_assert_str_eq(buf, want);
}

static struct dc_keyfile *kload(const char *file)
{
    size_t n;
    uint8_t *t = vec_read(file, &n);
    struct dc_keyfile *k = NULL;
    struct dc_err err = {0};
    enum dc_status st = dc_keyfile_load(t, n, &k, &err);
    free(t);
    cr_assert_eq(st, DC_OK, "%s: %s", file, err.msg);
    return k;
}

Test(keys, vectors_parse_and_rearmor_identically)
{
    for (size_t i = 0; i < NVKEYS; i++) {
        size_t tlen;
        uint8_t *text = vec_read(vkeys[i].file, &tlen);
        struct dc_keyfile *k = kload(vkeys[i].file);
        cr_assert_eq(k->type, vkeys[i].type);
        cr_assert_eq(k->variant, DC_VARIANT_LIBDIME);
        cr_assert_null(k->sok);
        hexeq(k->sign->seed, 32, vkeys[i].seed);
        hexeq(k->sign->pub, 32, vkeys[i].pub);
        hexeq(k->enc->priv, 32, vkeys[i].scalar);
        hexeq(k->enc->pub, 33, vkeys[i].epub);
        char *arm = NULL;
        cr_assert_eq(dc_keyfile_armor(k, &arm, NULL), DC_OK);
        cr_assert_str_eq(arm, (const char *)text, "%s", vkeys[i].file);
        if (i == 0)
            cr_assert_str_eq(arm, alice_armored);
        dc_secure_free(arm, strlen(arm) + 1);
        /* Binary round trip: 74 bytes, variant A. */
        uint8_t *bin = NULL;
        size_t blen = 0;
        cr_assert_eq(dc_keyfile_serialize(k, &bin, &blen, NULL), DC_OK);
        cr_assert_eq(blen, 74);
        cr_assert_eq(bin[5 + 34], vkeys[i].type == DC_KEY_ORG ? 3 : 2);
        cr_assert_eq(bin[5 + 35], 0);
        cr_assert_eq(bin[5 + 36], 32);
        struct dc_keyfile *k2 = NULL;
        cr_assert_eq(dc_keyfile_parse(bin, blen, &k2, NULL), DC_OK);
        cr_assert_eq(memcmp(k2->sign->seed, k->sign->seed, 32), 0);
        cr_assert_eq(memcmp(k2->enc->priv, k->enc->priv, 32), 0);
        dc_keyfile_free(k2);
        dc_secure_free(bin, blen);
        /* The key matches its signet's keys. */
        struct dc_signet *s = NULL;
        cr_assert_eq(dc_signet_load_file(vec_path(vkeys[i].signet), &s, NULL), DC_OK);
        uint8_t pub[32], epub[33];
        cr_assert_eq(dc_signet_signing_key(s, pub, NULL), DC_OK);
        cr_assert_eq(dc_signet_enc_key(s, epub, NULL), DC_OK);
        cr_assert_eq(memcmp(pub, k->sign->pub, 32), 0);
        cr_assert_eq(memcmp(epub, k->enc->pub, 33), 0);
        dc_signet_free(s);
        dc_keyfile_free(k);
        free(text);
    }
}

/* magma's sandbox org key (signet-mrec.md section 13): 1-byte encryption-key length. */
static const char prime_key_hex[] =
    "07a0000044"
    "0120b6b730a4b6474f6daf2d9702d3822f4d24c9ee0db634c9857779cb80131db030"
    "0320828afadc48deead84ed90d5855223d845592bda42631658f81daeb06b325f595";

Test(keys, prime_key_file_matches_its_signet_and_is_rewritten_as_variant_a)
{
    size_t n;
    uint8_t *bin = vec_hex(prime_key_hex, &n);
    struct dc_keyfile *k = NULL;
    struct dc_err err = {0};
    cr_assert_eq(dc_keyfile_parse(bin, n, &k, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(k->variant, DC_VARIANT_PRIME);
    cr_assert_eq(k->type, DC_KEY_ORG);
    /* Section 13: the seed derives the signet's POK, the scalar its field-3 point. */
    hexeq(k->sign->pub, 32, "878e24038017cb68059e517ea2cb9c1b6b7848e05ebbc080dd65b1a3a44b7c80");
    hexeq(k->enc->pub, 33, "02ff5d28d73031b7f56b6558d42586080e0eabe4cf8a6b485c211bb30ea254e211");
    uint8_t *out = NULL;
    size_t olen = 0;
    cr_assert_eq(dc_keyfile_serialize(k, &out, &olen, NULL), DC_OK);
    cr_assert_eq(olen, n + 1);
    cr_assert_eq(memcmp(out + 7, bin + 7, 33), 0);                      /* seed, enc fid */
    cr_assert_eq(memcmp(out + 40, "\x00\x20", 2), 0);                   /* 2-byte length */
    cr_assert_eq(memcmp(out + 42, bin + 41, 32), 0);                    /* scalar */
    dc_secure_free(out, olen);
    dc_keyfile_free(k);
    free(bin);
}

Test(keys, generate_save_and_load)
{
    char path[] = "/tmp/dc_keys_testXXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    for (int t = 0; t < 2; t++) {
        enum dc_key_type type = t ? DC_KEY_USER : DC_KEY_ORG;
        struct dc_keyfile *k = NULL, *back = NULL;
        struct dc_err err = {0};
        cr_assert_eq(dc_keyfile_generate(type, &k, &err), DC_OK, "%s", err.msg);
        cr_assert_eq(dc_keyfile_save(k, path, &err), DC_OK, "%s", err.msg);
        struct stat st;
        cr_assert_eq(stat(path, &st), 0);
        cr_assert_eq(st.st_mode & 0777, 0600);
        cr_assert_eq(dc_keyfile_load_file(path, &back, &err), DC_OK, "%s", err.msg);
        cr_assert_eq(back->type, type);
        cr_assert_eq(memcmp(back->sign->seed, k->sign->seed, 32), 0);
        cr_assert_eq(memcmp(back->enc->priv, k->enc->priv, 32), 0);
        cr_assert_eq(memcmp(back->enc->pub, k->enc->pub, 33), 0);
        dc_keyfile_free(back);
        dc_keyfile_free(k);
    }
    unlink(path);
}

Test(keys, sok_file_round_trip)
{
    struct dc_keyfile *k = NULL, *back = NULL;
    struct dc_err err = {0};
    cr_assert_eq(dc_keyfile_sok_generate(DC_SOK_SIGNET | DC_SOK_MSG, &k, &err), DC_OK);
    cr_assert_null(k->sign);
    cr_assert_null(k->enc);
    cr_assert_not_null(k->sok);
    uint8_t *bin = NULL;
    size_t n = 0;
    cr_assert_eq(dc_keyfile_serialize(k, &bin, &n, NULL), DC_OK);
    cr_assert_eq(n, 40);
    cr_assert_eq(memcmp(bin, "\x07\xa0\x00\x00\x23\x02\x21\x03", 8), 0);
    cr_assert_eq(dc_keyfile_parse(bin, n, &back, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(back->sok_perm, DC_SOK_SIGNET | DC_SOK_MSG);
    cr_assert_eq(memcmp(back->sok->pub, k->sok->pub, 32), 0);
    cr_assert_null(back->sign);
    dc_keyfile_free(back);
    back = NULL;
    char *arm = NULL;
    cr_assert_eq(dc_keyfile_armor(k, &arm, NULL), DC_OK);
    cr_assert_not_null(strstr(arm, "BEGIN ORGANIZATIONAL KEY"));
    cr_assert_eq(dc_keyfile_load((const uint8_t *)arm, strlen(arm), &back, &err), DC_OK);
    cr_assert_eq(memcmp(back->sok->seed, k->sok->seed, 32), 0);
    dc_keyfile_free(back);
    dc_secure_free(arm, strlen(arm) + 1);
    dc_secure_free(bin, n);
    dc_keyfile_free(k);
}

/* ---- malformed key files ---- */

static uint8_t *alice_bin(size_t *n)
{
    struct dc_keyfile *k = kload("alice.test.key");
    uint8_t *sb = NULL;
    cr_assert_eq(dc_keyfile_serialize(k, &sb, n, NULL), DC_OK);
    uint8_t *b = dc_xmalloc(*n + 8);
    memcpy(b, sb, *n);
    dc_secure_free(sb, *n);
    dc_keyfile_free(k);
    return b;
}
static void hdr(uint8_t *b, size_t payload)
{
    b[2] = 0;
    b[3] = (uint8_t)(payload >> 8);
    b[4] = (uint8_t)payload;
}
static uint8_t *k_short_header(size_t *n)
{
    uint8_t *b = alice_bin(n);
    *n = 4;
    return b;
}
static uint8_t *k_wrong_magic(size_t *n)
{
    uint8_t *b = alice_bin(n);
    b[0] = 0x06;
    b[1] = 0xf0;
    return b;
}
static uint8_t *k_encrypted(size_t *n)
{
    uint8_t *b = alice_bin(n);
    b[0] = 0x07;
    b[1] = 0x9b; /* 1947 */
    return b;
}
static uint8_t *k_truncated(size_t *n)
{
    uint8_t *b = alice_bin(n);
    *n -= 10;
    hdr(b, *n - 5);
    return b;
}
static uint8_t *k_hdr_mismatch(size_t *n)
{
    uint8_t *b = alice_bin(n);
    hdr(b, *n - 5 + 3);
    return b;
}
static uint8_t *k_trailing(size_t *n)
{
    uint8_t *b = alice_bin(n);
    b[(*n)++] = 0x10;
    hdr(b, *n - 5);
    return b;
}
static uint8_t *k_seed_len(size_t *n)
{
    uint8_t *b = alice_bin(n);
    b[6] = 33;
    return b;
}
static uint8_t *k_enc_len(size_t *n)
{
    uint8_t *b = alice_bin(n);
    b[41] = 31;
    return b;
}
static uint8_t *k_enc_fid(size_t *n)
{
    uint8_t *b = alice_bin(n);
    b[39] = 2; /* user-key fid in an org key */
    return b;
}
static uint8_t *k_first_fid(size_t *n)
{
    uint8_t *b = alice_bin(n);
    b[5] = 4;
    return b;
}
static uint8_t *k_zero_scalar(size_t *n)
{
    uint8_t *b = alice_bin(n);
    memset(b + 42, 0, 32);
    return b;
}
static uint8_t *k_order_scalar(size_t *n)
{
    /* The secp256k1 group order n: not below the order. */
    uint8_t *b = alice_bin(n);
    size_t m;
    uint8_t *o = vec_hex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", &m);
    memcpy(b + 42, o, 32);
    free(o);
    return b;
}
static uint8_t *k_only_seed(size_t *n)
{
    uint8_t *b = alice_bin(n);
    *n = 5 + 34;
    hdr(b, 34);
    return b;
}
static uint8_t *k_sok_len(size_t *n)
{
    uint8_t *b = alice_bin(n);
    memcpy(b + 5, "\x02\x20", 2);
    *n = 5 + 2 + 32;
    hdr(b, 34);
    return b;
}
static uint8_t *k_sok_trailing(size_t *n)
{
    uint8_t *b = alice_bin(n);
    memcpy(b + 5, "\x02\x21\x01", 3);
    *n = 5 + 2 + 33 + 1;
    hdr(b, 36);
    return b;
}
static uint8_t *k_sok_user(size_t *n)
{
    /* The SOK extension exists only for org key files. */
    uint8_t *b = k_sok_trailing(n);
    b[0] = 0x07;
    b[1] = 0xdd;
    *n -= 1;
    hdr(b, 35);
    return b;
}
static uint8_t *ka_signet_tag(size_t *n) { return vec_read("alice.test.signet", n); }
static uint8_t *ka_bad_crc(size_t *n)
{
    uint8_t *t = vec_read("alice.test.key", n);
    char *c = strstr((char *)t, "\n=") + 2;
    c[1] = c[1] == 'b' ? 'c' : 'b';
    return t;
}
static uint8_t *ka_tag_mismatch(size_t *n)
{
    char *t = dc_xstrdup(alice_armored);
    /* "ORGANIZATIONAL KEY" -> "USER KEY" in both lines keeps the armor valid. */
    char *out = dc_xasprintf("-----BEGIN USER KEY-----\n%s-----END USER KEY-----\n",
                             strchr(t, '\n') + 1);
    *strstr(out, "-----END ORGANIZATIONAL") = '\0';
    char *fixed = dc_xasprintf("%s-----END USER KEY-----\n", out);
    free(out);
    free(t);
    *n = strlen(fixed);
    return (uint8_t *)fixed;
}

struct kerr {
    const char *name;
    uint8_t *(*mk)(size_t *len);
    int armor;
    enum dc_status want;
    const char *substr;
};

static const struct kerr key_errors[] = {
    {"truncated header", k_short_header, 0, DC_ERR_TRUNCATED, "truncated key file header"},
    {"signet magic", k_wrong_magic, 0, DC_ERR_MAGIC, "wrong magic 1776"},
    {"encrypted key magic", k_encrypted, 0, DC_ERR_MAGIC, "encrypted key file"},
    {"truncated scalar", k_truncated, 0, DC_ERR_TRUNCATED, "encryption key truncated (22 of 32"},
    {"header length mismatch", k_hdr_mismatch, 0, DC_ERR_TRUNCATED, "says 72 payload bytes"},
    {"trailing bytes", k_trailing, 0, DC_ERR_FORMAT, "1 trailing bytes after the encryption"},
    {"seed length 33", k_seed_len, 0, DC_ERR_FIELD, "signing key (fid 1) has length 33"},
    {"scalar length 31", k_enc_len, 0, DC_ERR_FIELD, "encryption key (fid 3) has length 31"},
    {"wrong enc fid", k_enc_fid, 0, DC_ERR_FIELD, "fid 2 follows the signing key"},
    {"wrong first fid", k_first_fid, 0, DC_ERR_FIELD, "starts with fid 4"},
    {"zero scalar", k_zero_scalar, 0, DC_ERR_KEY, "zero or not below the order"},
    {"scalar equal to the order", k_order_scalar, 0, DC_ERR_KEY, "zero or not below the order"},
    {"encryption key missing", k_only_seed, 0, DC_ERR_TRUNCATED, "encryption key (fid 3) is "
                                                                "missing"},
    {"SOK wrong length", k_sok_len, 0, DC_ERR_FIELD, "field 2 has length 32"},
    {"SOK trailing byte", k_sok_trailing, 0, DC_ERR_FORMAT, "trailing bytes after field 2"},
    {"SOK in a user key", k_sok_user, 0, DC_ERR_FIELD, "starts with fid 2"},
    {"signet armor", ka_signet_tag, 1, DC_ERR_MAGIC, "not a key file tag"},
    {"bad CRC", ka_bad_crc, 1, DC_ERR_CRC, "CRC-24 mismatch"},
    {"tag does not match magic", ka_tag_mismatch, 1, DC_ERR_MAGIC, "does not match the key "
                                                                   "file's magic 1952"},
};

Test(keys, malformed_key_files_table)
{
    for (size_t i = 0; i < sizeof(key_errors) / sizeof(key_errors[0]); i++) {
        const struct kerr *r = &key_errors[i];
        size_t n;
        uint8_t *in = r->mk(&n);
        struct dc_keyfile *k = NULL;
        struct dc_err err = {0};
        enum dc_status st = r->armor ? dc_keyfile_load(in, n, &k, &err)
                                     : dc_keyfile_parse(in, n, &k, &err);
        cr_expect_eq(st, r->want, "%s: status %s, expected %s (%s)", r->name,
                     dc_status_name(st), dc_status_name(r->want), err.msg);
        cr_expect_null(k, "%s: output set on failure", r->name);
        cr_expect_not_null(strstr(err.msg, r->substr), "%s: \"%s\" lacks \"%s\"", r->name,
                           err.msg, r->substr);
        dc_keyfile_free(k);
        free(in);
    }
}

/* Secure memory (dc_util.c): every allocation is zeroed, including one that reuses a slot a
 * secret was freed from, live allocations never overlap (each holds its own pattern through
 * the others' frees), and sizes past the pool's largest slot work too. */
Test(keys, secure_memory_zeroed_and_disjoint)
{
    enum { N = 600 };
    static const size_t sizes[] = {1, 32, 64, 65, 200, 1000, 4096, 4097, 20000};
    const size_t ns = sizeof(sizes) / sizeof(sizes[0]);
    uint8_t *p[N];
    size_t len[N];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            len[i] = sizes[(size_t)(i + round) % ns];
            p[i] = dc_secure_alloc(len[i]);
            for (size_t k = 0; k < len[i]; k++)
                cr_assert_eq(p[i][k], 0, "round %d, allocation %d of %zu bytes: byte %zu is "
                             "not zero", round, i, len[i], k);
            memset(p[i], 0xA0 + (i % 64), len[i]);
        }
        /* free every other one, then check the rest kept their bytes */
        for (int i = 0; i < N; i += 2)
            dc_secure_free(p[i], len[i]);
        for (int i = 1; i < N; i += 2)
            for (size_t k = 0; k < len[i]; k++)
                cr_assert_eq(p[i][k], 0xA0 + (i % 64), "allocation %d changed", i);
        for (int i = 1; i < N; i += 2)
            dc_secure_free(p[i], len[i]);
    }
}
