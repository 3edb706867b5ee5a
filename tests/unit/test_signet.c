/* Signets: the libdime vectors (parse, round trip, fingerprints, verification), generated
 * signets checked against the vectors' layout, rotation and SOKs, the three wire variants, and
 * one table row per malformed input or failed verification. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dc_armor.h"
#include "dc_b64.h"
#include "dc_keys.h"
#include "dc_signet.h"
#include "vectors.h"

/* ---- the vectors (values from signets.json / the README's fingerprint table) ---- */

struct vsignet {
    const char *file;
    enum dc_signet_type type;
    const char *id;
    const char *fp_ssr, *fp_crypto, *fp_full, *fp_id;
    const char *sign_pub, *enc_pub;
    const uint8_t *fids; /* field ids in wire order, 0-terminated */
};

static const uint8_t org_fids[] = {1, 3, 4, 16, 17, 19, 20, 21, 253, 254, 255, 0};
static const uint8_t user_fids[] = {1, 2, 5, 6, 16, 17, 19, 20, 21, 253, 254, 255, 0};
static const uint8_t ssr_fids[] = {1, 2, 5, 0};

static const struct vsignet vsignets[] = {
    {"alice.test.signet", DC_SIGNET_ORG, "alice.test", NULL,
     "7u40WL4YG718ietKdtTiJuzTMx/aeQbatxob5bg1bMQWSRju63MroX78XI9Sp7u/Qp4SqGe5yO8fpKIpztp5HA",
     "f64XPQzzFxQpHFMcb8LqN4BKD5/ZR9F48jlblsP/+SrcUiXeHfYOoXZvtsXtRwVicr06i5QvV+2Pnp5zZ/Hp0A",
     "KcRwRXRYyF7KqP6i/9bmlReIXHejCtrmn4I9cvY3FQseZiahh/hxX8wMS4/OzscCq2WD2GTpFsfQOQrHHRZcdg",
     "fc08914eaa42262c9d5413d8e3ed1275d26e02b84070e7d7fda0e283aa7ee7f2",
     "03a6eb520933f17bb63a1eaee80e137d93124c0e91058ac6e20e2ab24bbb7225f7", org_fids},
    {"bob.test.signet", DC_SIGNET_ORG, "bob.test", NULL,
     "E2NEfJ83r7WPizmY/huCz7+LutOWoQE8Ec+zJpAT6PTnNH0VZdqdRNTivtEXDLtuWye3jZE5ic7ysMUMkw5ABQ",
     "0E16gB577qcsb59zoIJkOafIAK7uBaw43A6479YCiwltLfZA2SZFg2lWLED7r54iHkk84FUE1xm9dF5ZcrUypw",
     "G2ms/6BvQlBKya5p0x4JmABZ7ijgnaoWFnmCn5O4+cVnJApo184apIuuGu9AgUaWCfpqHKgKH8B76qD7qIff1g",
     "9b1f4876476761f49f819d6fc26ee2fa94351f99b97f63129624ddf2f7e65a64",
     "02f4e6c7b2fb85bea178813c4d7a7bd22ef0e551188c2eef23d830e84ef69228c8", org_fids},
    {"alice-alice.test.signet", DC_SIGNET_USER, "alice@alice.test",
     "xGv23/P7lUjhakVFeQUlpUsFKzJqDiWnndGUca7IOQO9YaZt8a3cSkSL0kpRRcUxWTkXvsyw0kSBaShL1EssrA",
     "gfJecOjBZ1fJzVWOERJXTMO+A1f+Gprgt1+OPn29+Inz/CXaANv3dmNw+BwImaIEUUc3qQouw+scUdbspOIBgA",
     "gj9wvNcKIGrIlBr0bB2vPo81ekpIiHw9EHk61drpvjfrBi8/Zprh1Qqul4NzYAhkPjlqamD01K6/ZpSbTgtRcw",
     "4QTn2qPWWdkLOL9uxWqvIz9kTwcRtJCfB2f42I46PsHnYCOHi4axvoZ69ghZkxVX7T86Hw9bLZq0m3KnDsdrGw",
     "9712b7b8a7e4d8db0d4bb1cdbabc68c611b002b6a82c0302afdee9347f4a9bed",
     "032f05864a0e082ba572ad523e5e251b1e81aa8231e2383bd950a2b0a8de555a17", user_fids},
    {"bob-bob.test.signet", DC_SIGNET_USER, "bob@bob.test",
     "TalLxO4uVcyQDH96pyPkBDsAOmfUxDVCFS+n5yboOXkjC1nV7KMvqxoM47aHqKEE+kms0gAkOguRI1l4mvvAQw",
     "s6DnYR8ZD5/8dr0nbpaUEe2ElXsAX15SlEeLU2lcYdjU7qhJlqjKtsdREMdcyeX5HeWW0ia9RPfCBiDRk9rnLg",
     "d/Qmd34xyiPOQCKmYZLSIBZwMxoiPwNDjKR+eSwvOZaWCrH/8q0OzJuzktNzGkMPEe6HZNwfnlkosuA85cEDRA",
     "Np1Jwiz+0gJ3cbQs/bprRJOz3SUbk9KOG21Ww/XFChMhrMA1nr/iGy+9EQB62JcQcqoAwTAKpX9lmwQjbHCKhg",
     "4077e99e51eacb0943eefe6347567139156bfe9fdb10b52fe049eab12c95efb4",
     "02dd76efd7a45a0951405d548e2f417edaed3a03fad6f766fc387a3e86aa2ca4e1", user_fids},
    {"alice-alice.test.ssr", DC_SIGNET_SSR, NULL,
     "xGv23/P7lUjhakVFeQUlpUsFKzJqDiWnndGUca7IOQO9YaZt8a3cSkSL0kpRRcUxWTkXvsyw0kSBaShL1EssrA",
     NULL, NULL, NULL, "9712b7b8a7e4d8db0d4bb1cdbabc68c611b002b6a82c0302afdee9347f4a9bed",
     "032f05864a0e082ba572ad523e5e251b1e81aa8231e2383bd950a2b0a8de555a17", ssr_fids},
    {"bob-bob.test.ssr", DC_SIGNET_SSR, NULL,
     "TalLxO4uVcyQDH96pyPkBDsAOmfUxDVCFS+n5yboOXkjC1nV7KMvqxoM47aHqKEE+kms0gAkOguRI1l4mvvAQw",
     NULL, NULL, NULL, "4077e99e51eacb0943eefe6347567139156bfe9fdb10b52fe049eab12c95efb4",
     "02dd76efd7a45a0951405d548e2f417edaed3a03fad6f766fc387a3e86aa2ca4e1", ssr_fids},
};
#define NVSIGNETS (sizeof(vsignets) / sizeof(vsignets[0]))

/* Org key seeds from keys.json, to build signed variants of the vectors. */
#define ALICE_ORG_SEED "9eb86ee5539c6344ba676434cb39db6f06de09b2f46c91cc47d13862f5c0cca5"

static struct dc_signet *vload(const char *file)
{
    size_t n;
    uint8_t *text = vec_read(file, &n);
    struct dc_signet *s = NULL;
    struct dc_err err = {0};
    enum dc_status st = dc_signet_load(text, n, &s, &err);
    free(text);
    cr_assert_eq(st, DC_OK, "%s: %s", file, err.msg);
    return s;
}

/* A malloc'd copy of a vector's binary form. */
static uint8_t *vbin(const char *file, size_t *len)
{
    struct dc_signet *s = vload(file);
    uint8_t *b = dc_xmalloc(s->bin_len);
    memcpy(b, s->bin, s->bin_len);
    *len = s->bin_len;
    dc_signet_free(s);
    return b;
}

static void hexeq(const uint8_t *got, size_t n, const char *want)
{
    char buf[256];
    dc_hex_encode(got, n, buf);
    cr_assert_str_eq(buf, want);
}

static void fp_check(const struct dc_signet *s, enum dc_fp_kind k, const char *want)
{
    char fp[DC_FP_B64_LEN + 1];
    struct dc_err err = {0};
    enum dc_status st = dc_signet_fingerprint(s, k, fp, &err);
    if (want == NULL) {
        cr_assert_eq(st, DC_ERR_NOTFOUND, "fingerprint kind %d should be absent", (int)k);
    } else {
        cr_assert_eq(st, DC_OK, "fingerprint kind %d: %s", (int)k, err.msg);
        cr_assert_str_eq(fp, want);
    }
}

Test(signet, vectors_parse_as_variant_a_and_round_trip)
{
    for (size_t i = 0; i < NVSIGNETS; i++) {
        const struct vsignet *v = &vsignets[i];
        size_t tlen;
        uint8_t *text = vec_read(v->file, &tlen);
        struct dc_signet *s = vload(v->file);
        cr_assert_eq(s->type, v->type, "%s", v->file);
        cr_assert_eq(s->variant, DC_VARIANT_LIBDIME, "%s", v->file);

        /* Armor round trip gives the file's exact text. */
        char *arm = dc_signet_armor(s);
        cr_assert_str_eq(arm, (const char *)text, "%s: re-armoring differs", v->file);
        free(arm);

        /* Binary round trip. */
        struct dc_signet *b = NULL;
        cr_assert_eq(dc_signet_parse(s->bin, s->bin_len, &b, NULL), DC_OK);
        cr_assert_eq(b->bin_len, s->bin_len);
        cr_assert_eq(memcmp(b->bin, s->bin, s->bin_len), 0);
        dc_signet_free(b);

        /* Base64 (DMTP) round trip. */
        char *b64 = dc_signet_b64(s);
        cr_assert_eq(dc_signet_from_b64(b64, strlen(b64), &b, NULL), DC_OK);
        cr_assert_eq(memcmp(b->bin, s->bin, s->bin_len), 0);
        dc_signet_free(b);
        free(b64);

        /* Field sequence as in the vectors. */
        size_t nf = strlen((const char *)v->fids);
        cr_assert_eq(s->nfields, nf, "%s: %zu fields", v->file, s->nfields);
        for (size_t j = 0; j < nf; j++)
            cr_assert_eq(s->fields[j].fid, v->fids[j], "%s field %zu", v->file, j);

        fp_check(s, DC_FP_SSR, v->fp_ssr);
        fp_check(s, DC_FP_CRYPTO, v->fp_crypto);
        fp_check(s, DC_FP_FULL, v->fp_full);
        fp_check(s, DC_FP_ID, v->fp_id);

        uint8_t pub[32], epub[33];
        cr_assert_eq(dc_signet_signing_key(s, pub, NULL), DC_OK);
        hexeq(pub, 32, v->sign_pub);
        cr_assert_eq(dc_signet_enc_key(s, epub, NULL), DC_OK);
        hexeq(epub, 33, v->enc_pub);

        char *id = dc_signet_id(s);
        if (v->id == NULL)
            cr_assert_null(id);
        else
            cr_assert_str_eq(id, v->id);
        free(id);

        struct dc_signet *d = dc_signet_dup(s);
        cr_assert_eq(d->nfields, s->nfields);
        cr_assert_eq(memcmp(d->fields[1].data, s->fields[1].data, s->fields[1].len), 0);
        cr_assert_neq(d->fields[1].data, s->fields[1].data);
        dc_signet_free(d);
        dc_signet_free(s);
        free(text);
    }
}

Test(signet, vector_field_contents_and_names)
{
    struct dc_signet *s = vload("alice.test.signet");
    const struct dc_signet_field *f = dc_signet_field(s, 16, 0);
    cr_assert_not_null(f);
    cr_assert_eq(f->len, 23);
    cr_assert_eq(memcmp(f->data, "Alice Test Organization", 23), 0);
    cr_assert_null(dc_signet_field(s, 16, 1));
    cr_assert_str_eq(dc_signet_field_name(DC_SIGNET_ORG, 1), "Primary-Organizational-Key");
    cr_assert_str_eq(dc_signet_field_name(DC_SIGNET_USER, 5), "User-Signature");
    cr_assert_null(dc_signet_field_name(DC_SIGNET_ORG, 5));
    cr_assert_null(dc_signet_field_name(DC_SIGNET_SSR, 6));
    cr_assert_eq(dc_signet_soks(s, NULL, 0), 0);
    /* Header: magic 1776, payload 352. */
    cr_assert_eq(s->bin_len, 357);
    cr_assert_eq(dc_get_be(s->bin, 2), 1776);
    cr_assert_eq(dc_get_be(s->bin + 2, 3), 352);
    dc_signet_free(s);
}

Test(signet, vector_validation_results)
{
    struct dc_signet *ao = vload("alice.test.signet"), *bo = vload("bob.test.signet");
    struct dc_signet *au = vload("alice-alice.test.signet"), *bu = vload("bob-bob.test.signet");
    struct dc_signet *as = vload("alice-alice.test.ssr"), *bs = vload("bob-bob.test.ssr");
    uint8_t apok[1][32], bpok[1][32];
    struct dc_err why = {0};
    cr_assert_eq(dc_signet_signing_key(ao, apok[0], NULL), DC_OK);
    cr_assert_eq(dc_signet_signing_key(bo, bpok[0], NULL), DC_OK);
    cr_assert_eq(dc_signet_verify_org(ao, (const uint8_t(*)[32])apok, 1, &why), DC_SS_ID,
                 "%s", why.msg);
    cr_assert_eq(dc_signet_verify_org(bo, (const uint8_t(*)[32])bpok, 1, &why), DC_SS_ID);
    cr_assert_eq(dc_signet_verify_user(au, ao, NULL, &why), DC_SS_ID, "%s", why.msg);
    cr_assert_eq(dc_signet_verify_user(bu, bo, NULL, &why), DC_SS_ID, "%s", why.msg);
    cr_assert_eq(dc_signet_verify_ssr(as, NULL, &why), DC_SS_SSR, "%s", why.msg);
    cr_assert_eq(dc_signet_verify_ssr(bs, NULL, &why), DC_SS_SSR, "%s", why.msg);
    /* Negative: alice's user signet against bob's org; org against a foreign POK. */
    cr_assert_eq(dc_signet_verify_user(au, bo, NULL, &why), DC_SS_INVALID);
    cr_assert_eq(why.code, DC_ERR_SIGNATURE);
    cr_assert_not_null(strstr(why.msg, "fid 6"), "%s", why.msg);
    cr_assert_eq(dc_signet_verify_org(ao, (const uint8_t(*)[32])bpok, 1, &why), DC_SS_INVALID);
    cr_assert_not_null(strstr(why.msg, "not among"), "%s", why.msg);
    /* An SSR is not a user signet, nor a user signet an SSR. */
    cr_assert_eq(dc_signet_verify_user(as, ao, NULL, &why), DC_SS_MALFORMED);
    cr_assert_eq(dc_signet_verify_ssr(au, NULL, &why), DC_SS_MALFORMED);
    /* The SSR's fingerprint equals the SSR fingerprint of the user signet made from it. */
    char f1[DC_FP_B64_LEN + 1], f2[DC_FP_B64_LEN + 1];
    cr_assert_eq(dc_signet_fingerprint(as, DC_FP_SSR, f1, NULL), DC_OK);
    cr_assert_eq(dc_signet_fingerprint(au, DC_FP_SSR, f2, NULL), DC_OK);
    cr_assert_str_eq(f1, f2);
    dc_signet_free(ao);
    dc_signet_free(bo);
    dc_signet_free(au);
    dc_signet_free(bu);
    dc_signet_free(as);
    dc_signet_free(bs);
}

/* ---- generated signets compared with the vectors' layout ---- */

static const char *const org_info[] = {"Alice Test Organization", "1 Alice Way, Aliceville",
                                       "US", "10001", "+1-555-0101"};
static const char *const user_info[] = {"Alice Example", "11 Alice Way, Aliceville", "US",
                                        "10011", "+1-555-1111"};
static const uint8_t info_fids[] = {16, 17, 19, 20, 21};

static void add_info(struct dc_signet *s, const char *const *info)
{
    for (size_t i = 0; i < 5; i++) {
        struct dc_err err = {0};
        cr_assert_eq(dc_signet_add_field(s, info_fids[i], (const uint8_t *)info[i],
                                         strlen(info[i]), &err),
                     DC_OK, "%s", err.msg);
    }
}

static void finish(struct dc_signet *s, const char *id, const struct dc_signer *signer)
{
    struct dc_err err = {0};
    cr_assert_eq(dc_signet_sign(s, DC_FID_FULL, signer, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(dc_signet_set_id(s, id, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(dc_signet_sign(s, DC_FID_IDSIG, signer, &err), DC_OK, "%s", err.msg);
}

/* Same length, same fids and length prefixes, and every byte equal except inside key and
 * signature data (which differ because the keys are fresh). */
static void same_layout(const struct dc_signet *got, const char *vector)
{
    struct dc_signet *v = vload(vector);
    cr_assert_eq(got->variant, DC_VARIANT_LIBDIME);
    cr_assert_eq(got->bin_len, v->bin_len, "%s: %zu vs %zu bytes", vector, got->bin_len,
                 v->bin_len);
    cr_assert_eq(got->nfields, v->nfields);
    cr_assert_eq(memcmp(got->bin, v->bin, 5), 0, "%s: header differs", vector);
    for (size_t i = 0; i < v->nfields; i++) {
        const struct dc_signet_field *a = &got->fields[i], *b = &v->fields[i];
        cr_assert_eq(a->fid, b->fid);
        cr_assert_eq(a->start, b->start, "%s fid %u: offset", vector, b->fid);
        cr_assert_eq(a->len, b->len, "%s fid %u: length", vector, b->fid);
        size_t hdr = (size_t)(b->data - (v->bin + 5)) - b->start;
        /* fid byte and length prefix identical, e.g. 01 21 / 03 00 21 / 04 (none). */
        cr_assert_eq(memcmp(got->bin + 5 + a->start, v->bin + 5 + b->start, hdr), 0,
                     "%s fid %u: prefix", vector, b->fid);
        int secret = b->fid <= 6 || b->fid == 253 || b->fid == 255;
        if (b->fid == 1)
            cr_assert_eq(a->data[0], 0x40, "signing key format byte");
        if (!secret)
            cr_assert_eq(memcmp(a->data, b->data, b->len), 0, "%s fid %u: data", vector,
                         b->fid);
    }
    dc_signet_free(v);
}

struct world {
    struct dc_keyfile *orgk, *userk;
    struct dc_signet *org, *ssr, *user;
    struct dc_signer orgsigner;
};

static void world_make(struct world *w)
{
    struct dc_err err = {0};
    memset(w, 0, sizeof(*w));
    cr_assert_eq(dc_keyfile_generate(DC_KEY_ORG, &w->orgk, &err), DC_OK);
    cr_assert_eq(dc_keyfile_generate(DC_KEY_USER, &w->userk, &err), DC_OK);
    dc_signer_local(&w->orgsigner, w->orgk->sign);
    cr_assert_eq(dc_signet_org_create(w->orgk->sign, w->orgk->enc->pub, &w->org, &err), DC_OK,
                 "%s", err.msg);
    add_info(w->org, org_info);
    finish(w->org, "alice.test", &w->orgsigner);
    cr_assert_eq(dc_signet_ssr_create(w->userk->sign, w->userk->enc->pub, NULL, &w->ssr, &err),
                 DC_OK, "%s", err.msg);
    cr_assert_eq(dc_signet_ssr_sign(w->ssr, NULL, &w->orgsigner, &w->user, &err), DC_OK, "%s",
                 err.msg);
    add_info(w->user, user_info);
    finish(w->user, "alice@alice.test", &w->orgsigner);
}

static void world_free(struct world *w)
{
    dc_signet_free(w->org);
    dc_signet_free(w->ssr);
    dc_signet_free(w->user);
    dc_keyfile_free(w->orgk);
    dc_keyfile_free(w->userk);
}

Test(signet, generated_signets_match_the_vector_layout_and_verify)
{
    struct world w;
    struct dc_err why = {0};
    world_make(&w);
    same_layout(w.org, "alice.test.signet");
    same_layout(w.ssr, "alice-alice.test.ssr");
    same_layout(w.user, "alice-alice.test.signet");
    uint8_t pok[1][32];
    memcpy(pok[0], w.orgk->sign->pub, 32);
    cr_assert_eq(dc_signet_verify_org(w.org, (const uint8_t(*)[32])pok, 1, &why), DC_SS_ID,
                 "%s", why.msg);
    cr_assert_eq(dc_signet_verify_ssr(w.ssr, NULL, &why), DC_SS_SSR, "%s", why.msg);
    cr_assert_eq(dc_signet_verify_user(w.user, w.org, NULL, &why), DC_SS_ID, "%s", why.msg);
    /* Armored output re-loads to the same bytes; the SSR keeps libdime's org tag. */
    char *arm = dc_signet_armor(w.ssr);
    cr_assert_not_null(strstr(arm, "BEGIN ORGANIZATIONAL SIGNET"));
    struct dc_signet *back = NULL;
    cr_assert_eq(dc_signet_load((const uint8_t *)arm, strlen(arm), &back, NULL), DC_OK);
    cr_assert_eq(back->bin_len, w.ssr->bin_len);
    cr_assert_eq(memcmp(back->bin, w.ssr->bin, back->bin_len), 0);
    dc_signet_free(back);
    free(arm);
    /* Truncating back to the crypto part leaves a valid crypto-only signet. */
    dc_signet_truncate(w.org, 16);
    cr_assert_eq(w.org->nfields, 3);
    cr_assert_eq(dc_signet_verify_org(w.org, (const uint8_t(*)[32])pok, 1, &why), DC_SS_CRYPTO);
    char fp[DC_FP_B64_LEN + 1];
    cr_assert_eq(dc_signet_fingerprint(w.org, DC_FP_FULL, fp, NULL), DC_ERR_NOTFOUND);
    world_free(&w);
}

Test(signet, builder_refusals)
{
    struct world w;
    struct dc_err err = {0};
    world_make(&w);
    /* Unique field twice. */
    cr_assert_eq(dc_signet_set_id(w.user, "x@y", &err), DC_ERR_ORDER);
    cr_assert_not_null(strstr(err.msg, "already present"), "%s", err.msg);
    /* Below an existing signature. */
    cr_assert_eq(dc_signet_add_field(w.user, 18, (const uint8_t *)"Bavaria", 7, &err),
                 DC_ERR_ORDER);
    cr_assert_not_null(strstr(err.msg, "invalidate the signature in fid 253"), "%s", err.msg);
    /* Unknown fid, SSR fields, NUL in text, oversized 1-byte-length field. */
    cr_assert_eq(dc_signet_add_field(w.user, 7, (const uint8_t *)"a", 1, &err), DC_ERR_FIELD);
    cr_assert_eq(dc_signet_set_id(w.ssr, "a@b", &err), DC_ERR_FIELD);
    struct dc_signet *s = dc_signet_new(DC_SIGNET_USER);
    cr_assert_eq(dc_signet_add_field(s, 16, (const uint8_t *)"a\0b", 3, &err), DC_ERR_FIELD);
    cr_assert_not_null(strstr(err.msg, "NUL"), "%s", err.msg);
    uint8_t big[300];
    memset(big, 'a', sizeof(big));
    cr_assert_eq(dc_signet_add_field(s, 16, big, sizeof(big), &err), DC_ERR_LIMIT);
    /* 2-byte field takes it; undefined field round trip. */
    cr_assert_eq(dc_signet_add_field(s, 160, big, sizeof(big), &err), DC_OK, "%s", err.msg);
    cr_assert_eq(dc_signet_add_undefined(s, "Pet", (const uint8_t *)"Cat", 3, &err), DC_OK);
    const struct dc_signet_field *u = dc_signet_field(s, 251, 0);
    cr_assert_not_null(u);
    cr_assert_eq(u->name_len, 3);
    cr_assert_eq(memcmp(u->name, "Pet", 3), 0);
    cr_assert_eq(memcmp(u->data, "Cat", 3), 0);
    /* Repeatable fields: phone (21) and endorsements (202). */
    cr_assert_eq(dc_signet_add_field(s, 21, (const uint8_t *)"1", 1, &err), DC_OK);
    cr_assert_eq(dc_signet_add_field(s, 21, (const uint8_t *)"2", 1, &err), DC_OK);
    cr_assert_eq(dc_signet_add_field(s, 202, (const uint8_t *)"e1", 2, &err), DC_OK);
    cr_assert_eq(dc_signet_add_field(s, 202, (const uint8_t *)"e2", 2, &err), DC_OK);
    cr_assert_eq(memcmp(dc_signet_field(s, 21, 1)->data, "2", 1), 0);
    /* Bad key data. */
    uint8_t badkey[33] = {0x41};
    cr_assert_eq(dc_signet_add_field(s, 1, badkey, 33, &err), DC_ERR_KEY);
    uint8_t badpt[33];
    memset(badpt, 0xff, sizeof(badpt));
    badpt[0] = 0x02;
    cr_assert_eq(dc_signet_add_field(s, 2, badpt, 33, &err), DC_ERR_KEY);
    /* A photo uses a 3-byte length. */
    cr_assert_eq(dc_signet_add_field(s, 252, big, 3, &err), DC_OK);
    const struct dc_signet_field *ph = dc_signet_field(s, 252, 0);
    cr_assert_eq((size_t)(ph->data - s->bin) - 5 - ph->start, 4);
    dc_signet_free(s);
    world_free(&w);
}

/* ---- rotation and SOKs ---- */

Test(signet, rotation_custody)
{
    struct world w;
    struct dc_err why = {0};
    world_make(&w);
    struct dc_keyfile *k2 = NULL, *k3 = NULL;
    cr_assert_eq(dc_keyfile_generate(DC_KEY_USER, &k2, NULL), DC_OK);
    cr_assert_eq(dc_keyfile_generate(DC_KEY_USER, &k3, NULL), DC_OK);
    /* Gen-2 SSR with custody by the gen-1 key. */
    struct dc_signet *ssr2 = NULL, *user2 = NULL, *other = NULL, *ossr = NULL;
    cr_assert_eq(dc_signet_ssr_create(k2->sign, k2->enc->pub, w.userk->sign, &ssr2, &why), DC_OK);
    cr_assert_not_null(dc_signet_field(ssr2, 4, 0));
    cr_assert_eq(dc_signet_verify_ssr(ssr2, w.user, &why), DC_SS_SSR, "%s", why.msg);
    cr_assert_eq(dc_signet_verify_ssr(ssr2, NULL, &why), DC_SS_BROKEN_COC);
    cr_assert_eq(dc_signet_ssr_sign(ssr2, w.user, &w.orgsigner, &user2, &why), DC_OK, "%s",
                 why.msg);
    cr_assert_eq(dc_signet_verify_user(user2, w.org, w.user, &why), DC_SS_CRYPTO, "%s", why.msg);
    cr_assert_eq(dc_signet_verify_user(user2, w.org, NULL, &why), DC_SS_BROKEN_COC);
    cr_assert_eq(why.code, DC_ERR_CUSTODY);
    cr_assert_not_null(strstr(why.msg, "no previous signet"), "%s", why.msg);
    /* Wrong previous signet: another user's. */
    cr_assert_eq(dc_signet_ssr_create(k3->sign, k3->enc->pub, NULL, &ossr, NULL), DC_OK);
    cr_assert_eq(dc_signet_ssr_sign(ossr, NULL, &w.orgsigner, &other, NULL), DC_OK);
    cr_assert_eq(dc_signet_verify_user(user2, w.org, other, &why), DC_SS_BROKEN_COC);
    cr_assert_not_null(strstr(why.msg, "does not verify under the previous"), "%s", why.msg);
    cr_assert_eq(dc_signet_verify_ssr(ssr2, other, &why), DC_SS_BROKEN_COC);
    struct dc_signet *refused = NULL;
    cr_assert_eq(dc_signet_ssr_sign(ssr2, other, &w.orgsigner, &refused, &why), DC_ERR_CUSTODY);
    cr_assert_null(refused);
    cr_assert_eq(dc_signet_ssr_sign(ssr2, NULL, &w.orgsigner, &refused, &why), DC_ERR_CUSTODY);
    /* A previous signet given for a first-generation signet. */
    cr_assert_eq(dc_signet_verify_user(w.user, w.org, other, &why), DC_SS_BROKEN_COC);
    cr_assert_not_null(strstr(why.msg, "has no custody signature"), "%s", why.msg);
    dc_signet_free(ssr2);
    dc_signet_free(user2);
    dc_signet_free(other);
    dc_signet_free(ossr);
    dc_keyfile_free(k2);
    dc_keyfile_free(k3);
    world_free(&w);
}

Test(signet, sok_with_signet_bit_signs_user_signets)
{
    struct dc_keyfile *orgk = NULL, *sok_sig = NULL, *sok_msg = NULL, *uk = NULL;
    struct dc_err err = {0};
    cr_assert_eq(dc_keyfile_generate(DC_KEY_ORG, &orgk, NULL), DC_OK);
    cr_assert_eq(dc_keyfile_sok_generate(DC_SOK_SIGNET | DC_SOK_TLS, &sok_sig, NULL), DC_OK);
    cr_assert_eq(dc_keyfile_sok_generate(DC_SOK_MSG, &sok_msg, NULL), DC_OK);
    cr_assert_eq(dc_keyfile_generate(DC_KEY_USER, &uk, NULL), DC_OK);
    struct dc_signet *org = dc_signet_new(DC_SIGNET_ORG);
    uint8_t f[34];
    f[0] = 0x40;
    memcpy(f + 1, orgk->sign->pub, 32);
    cr_assert_eq(dc_signet_add_field(org, 1, f, 33, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(dc_signet_add_field(org, 3, orgk->enc->pub, 33, &err), DC_OK, "%s", err.msg);
    f[0] = sok_sig->sok_perm;
    f[1] = 0x40;
    memcpy(f + 2, sok_sig->sok->pub, 32);
    cr_assert_eq(dc_signet_add_field(org, 2, f, 34, &err), DC_OK, "%s", err.msg);
    f[0] = sok_msg->sok_perm;
    memcpy(f + 2, sok_msg->sok->pub, 32);
    cr_assert_eq(dc_signet_add_field(org, 2, f, 34, &err), DC_OK, "%s", err.msg);
    struct dc_signer pok;
    dc_signer_local(&pok, orgk->sign);
    cr_assert_eq(dc_signet_sign(org, 4, &pok, &err), DC_OK, "%s", err.msg);
    /* Fields in order 1, 2, 2, 3, 4 although added 1, 3, 2, 2. */
    cr_assert_eq(org->nfields, 5);
    cr_assert_eq(org->fields[1].fid, 2);
    cr_assert_eq(org->fields[3].fid, 3);
    struct dc_sok soks[4];
    cr_assert_eq(dc_signet_soks(org, soks, 4), 2);
    cr_assert_eq(soks[0].perm, DC_SOK_SIGNET | DC_SOK_TLS);
    cr_assert_eq(memcmp(soks[1].pub, sok_msg->sok->pub, 32), 0);
    uint8_t dnspok[1][32];
    memcpy(dnspok[0], orgk->sign->pub, 32);
    cr_assert_eq(dc_signet_verify_org(org, (const uint8_t(*)[32])dnspok, 1, &err), DC_SS_CRYPTO,
                 "%s", err.msg);
    /* The org signet with SOKs re-parses and keeps variant A. */
    struct dc_signet *re = NULL;
    cr_assert_eq(dc_signet_parse(org->bin, org->bin_len, &re, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(re->variant, DC_VARIANT_LIBDIME);
    dc_signet_free(re);

    struct dc_signet *ssr = NULL, *u1 = NULL, *u2 = NULL;
    cr_assert_eq(dc_signet_ssr_create(uk->sign, uk->enc->pub, NULL, &ssr, NULL), DC_OK);
    struct dc_signer s1, s2;
    dc_signer_local(&s1, sok_sig->sok);
    dc_signer_local(&s2, sok_msg->sok);
    cr_assert_eq(dc_signet_ssr_sign(ssr, NULL, &s1, &u1, NULL), DC_OK);
    cr_assert_eq(dc_signet_ssr_sign(ssr, NULL, &s2, &u2, NULL), DC_OK);
    cr_assert_eq(dc_signet_verify_user(u1, org, NULL, &err), DC_SS_CRYPTO, "%s", err.msg);
    cr_assert_eq(dc_signet_verify_user(u2, org, NULL, &err), DC_SS_INVALID);
    cr_assert_not_null(strstr(err.msg, "SIGNET permission"), "%s", err.msg);
    dc_signet_free(ssr);
    dc_signet_free(u1);
    dc_signet_free(u2);
    dc_signet_free(org);
    dc_keyfile_free(orgk);
    dc_keyfile_free(sok_sig);
    dc_keyfile_free(sok_msg);
    dc_keyfile_free(uk);
}

/* ---- other variants ---- */

/* magma's sandbox org signet (signet-mrec.md section 13): PRIME layout, crypto only. */
static const char prime_org_hex[] =
    "06f0000086"
    "0120878e24038017cb68059e517ea2cb9c1b6b7848e05ebbc080dd65b1a3a44b7c80"
    "032102ff5d28d73031b7f56b6558d42586080e0eabe4cf8a6b485c211bb30ea254e211"
    "045b1fc4da7098a2f5563cf94eeed624cc6e0cf859c65eea98f8e2393c328acb38"
    "c220b57eb29fc8dd30aeb078f4a74fb24ec6b5a1d94add67c9b34f76a0fed00c";

Test(signet, prime_crypto_only_org_signet)
{
    size_t n;
    uint8_t *bin = vec_hex(prime_org_hex, &n);
    struct dc_signet *s = NULL;
    struct dc_err err = {0};
    cr_assert_eq(dc_signet_parse(bin, n, &s, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(s->variant, DC_VARIANT_PRIME);
    uint8_t pok[1][32];
    cr_assert_eq(dc_signet_signing_key(s, pok[0], NULL), DC_OK);
    hexeq(pok[0], 32, "878e24038017cb68059e517ea2cb9c1b6b7848e05ebbc080dd65b1a3a44b7c80");
    cr_assert_eq(dc_signet_verify_org(s, (const uint8_t(*)[32])pok, 1, &err), DC_SS_CRYPTO,
                 "%s", err.msg);
    fp_check(s, DC_FP_CRYPTO, "C0iqvyYjGP9ViL6jfH02eD2JYGmxdy3Gd55bRIaAhCsWug+4VHXrgOSqwuQeAN1AZZmM"
                              "EZmhz0fG7CLrjtBiow");
    fp_check(s, DC_FP_FULL, NULL);
    /* Byte-identical serialization although we never write variant C. */
    char *b64 = dc_signet_b64(s);
    struct dc_signet *b = NULL;
    cr_assert_eq(dc_signet_from_b64(b64, strlen(b64), &b, NULL), DC_OK);
    cr_assert_eq(b->bin_len, n);
    cr_assert_eq(memcmp(b->bin, bin, n), 0);
    /* PRIME carries only fids 1-6: no info fields can be added. */
    cr_assert_eq(dc_signet_add_field(b, 16, (const uint8_t *)"x", 1, &err), DC_ERR_FIELD);
    dc_signet_free(b);
    free(b64);
    dc_signet_free(s);
    free(bin);
}

/* alice.test's crypto part re-encoded in variant B (1-byte key length) or C (raw keys) and
 * re-signed with alice's org key. */
static struct dc_signet *alice_variant(int prime)
{
    size_t n;
    uint8_t *seed = vec_hex(ALICE_ORG_SEED, &n);
    struct dc_sign_key *k = NULL;
    cr_assert_eq(dc_sign_key_from_seed(seed, &k, NULL), DC_OK);
    free(seed);
    struct dc_signet *a = vload("alice.test.signet");
    uint8_t enc[33];
    cr_assert_eq(dc_signet_enc_key(a, enc, NULL), DC_OK);
    dc_signet_free(a);
    uint8_t bin[5 + 2 + 33 + 2 + 33 + 65];
    size_t o = 5;
    bin[o++] = 1;
    if (prime) {
        bin[o++] = 32;
    } else {
        bin[o++] = 33;
        bin[o++] = 0x40;
    }
    memcpy(bin + o, k->pub, 32), o += 32;
    bin[o++] = 3;
    bin[o++] = 33;
    memcpy(bin + o, enc, 33), o += 33;
    bin[o++] = 4;
    cr_assert_eq(dc_ed25519_sign(k, bin + 5, o - 1 - 5, bin + o, NULL), DC_OK);
    o += 64;
    bin[0] = 0x06;
    bin[1] = 0xf0;
    bin[2] = 0;
    bin[3] = 0;
    bin[4] = (uint8_t)(o - 5);
    struct dc_signet *s = NULL;
    struct dc_err err = {0};
    cr_assert_eq(dc_signet_parse(bin, o, &s, &err), DC_OK, "%s", err.msg);
    dc_sign_key_free(k);
    return s;
}

Test(signet, magma_and_prime_variants_are_detected_and_verify)
{
    struct dc_err why = {0};
    for (int prime = 0; prime <= 1; prime++) {
        struct dc_signet *s = alice_variant(prime);
        cr_assert_eq(s->variant, prime ? DC_VARIANT_PRIME : DC_VARIANT_MAGMA);
        uint8_t pok[1][32], enc[33];
        cr_assert_eq(dc_signet_signing_key(s, pok[0], NULL), DC_OK);
        hexeq(pok[0], 32, vsignets[0].sign_pub);
        cr_assert_eq(dc_signet_enc_key(s, enc, NULL), DC_OK);
        hexeq(enc, 33, vsignets[0].enc_pub);
        cr_assert_eq(dc_signet_verify_org(s, (const uint8_t(*)[32])pok, 1, &why), DC_SS_CRYPTO,
                     "%s", why.msg);
        dc_signet_free(s);
    }
}

/* ---- the error table ---- */

/* Input builders: each returns a malloc'd byte string. */
typedef uint8_t *(*mkinput)(size_t *len);

static size_t fid_off(const uint8_t *bin, size_t len, uint8_t fid)
{
    struct dc_signet *s = NULL;
    cr_assert_eq(dc_signet_parse(bin, len, &s, NULL), DC_OK);
    const struct dc_signet_field *f = dc_signet_field(s, fid, 0);
    cr_assert_not_null(f);
    size_t off = 5 + f->start;
    dc_signet_free(s);
    return off;
}

static void set_hdr_len(uint8_t *bin, size_t payload)
{
    bin[2] = (uint8_t)(payload >> 16);
    bin[3] = (uint8_t)(payload >> 8);
    bin[4] = (uint8_t)payload;
}

static uint8_t *org_bin(size_t *n) { return vbin("alice.test.signet", n); }
static uint8_t *user_bin(size_t *n) { return vbin("alice-alice.test.signet", n); }

static uint8_t *in_short_header(size_t *n)
{
    uint8_t *b = org_bin(n);
    *n = 3;
    return b;
}
static uint8_t *in_wrong_magic(size_t *n)
{
    uint8_t *b = org_bin(n);
    b[0] = 0x07;
    b[1] = 0xa0; /* 1952: an org key file */
    return b;
}
static uint8_t *in_hdr_too_long(size_t *n)
{
    uint8_t *b = org_bin(n);
    set_hdr_len(b, *n - 5 + 1);
    return b;
}
static uint8_t *in_trailing(size_t *n)
{
    uint8_t *b = org_bin(n);
    b = dc_xrealloc(b, *n + 1);
    b[(*n)++] = 0;
    return b;
}
static uint8_t *in_empty_payload(size_t *n)
{
    uint8_t *b = org_bin(n);
    *n = 5;
    set_hdr_len(b, 0);
    return b;
}
/* Cut inside fid 3's two-byte length (after "03 00"). */
static uint8_t *in_cut_prefix(size_t *n)
{
    uint8_t *b = org_bin(n);
    *n = fid_off(b, *n, 3) + 2;
    set_hdr_len(b, *n - 5);
    return b;
}
/* Cut 10 bytes into the crypto signature. */
static uint8_t *in_cut_sig(size_t *n)
{
    uint8_t *b = org_bin(n);
    *n = fid_off(b, *n, 4) + 11;
    set_hdr_len(b, *n - 5);
    return b;
}
static uint8_t *in_overflow(size_t *n)
{
    uint8_t *b = org_bin(n);
    b[fid_off(b, *n, 17) + 1] = 0xff;
    return b;
}
static uint8_t *in_out_of_order(size_t *n)
{
    uint8_t *b = org_bin(n);
    b[fid_off(b, *n, 19)] = 16; /* ... 16 17 16 ... */
    return b;
}
static uint8_t *in_repeat(size_t *n)
{
    uint8_t *b = org_bin(n);
    b[fid_off(b, *n, 17)] = 16; /* 16 16 */
    return b;
}
static uint8_t *in_repeat_sig(size_t *n)
{
    /* A second fid 4 (unique) in place of fid 16's header would not keep the length;
     * instead give the POK's slot... use the user signet: change fid 6 into a second 5. */
    uint8_t *b = user_bin(n);
    b[fid_off(b, *n, 6)] = 5;
    return b;
}
static uint8_t *in_unknown(size_t *n)
{
    uint8_t *b = org_bin(n);
    b[fid_off(b, *n, 17)] = 28;
    return b;
}
static uint8_t *in_org_fid5(size_t *n)
{
    uint8_t *b = org_bin(n);
    b[fid_off(b, *n, 4)] = 5; /* fid 5 is a user-signet field */
    return b;
}
static uint8_t *in_ssr_fid6(size_t *n)
{
    uint8_t *b = user_bin(n);
    b[0] = 0x04;
    b[1] = 0xbf; /* the user signet relabelled as an SSR */
    return b;
}
static uint8_t *in_bad_format_byte(size_t *n)
{
    uint8_t *b = org_bin(n);
    b[7] = 0x41;
    return b;
}
static uint8_t *in_bad_pok_len(size_t *n)
{
    uint8_t *b = org_bin(n);
    b[6] = 0x22;
    return b;
}
static uint8_t *in_point_prefix(size_t *n)
{
    uint8_t *b = org_bin(n);
    b[fid_off(b, *n, 3) + 3] = 0x04;
    return b;
}
static uint8_t *in_point_off_curve(size_t *n)
{
    uint8_t *b = org_bin(n);
    memset(b + fid_off(b, *n, 3) + 4, 0xff, 32); /* x >= p */
    return b;
}
static uint8_t *in_text_nul(size_t *n)
{
    uint8_t *b = org_bin(n);
    b[fid_off(b, *n, 16) + 4] = 0;
    return b;
}
static uint8_t *in_no_pok_first(size_t *n)
{
    uint8_t *b = org_bin(n);
    b[5] = 3;
    return b;
}
static uint8_t *in_prime_sok(size_t *n)
{
    uint8_t *b = vec_hex(prime_org_hex, n);
    b[39] = 2; /* fid 3 -> fid 2, undefined in PRIME */
    return b;
}
static uint8_t *in_prime_fid16(size_t *n)
{
    uint8_t *b = vec_hex(prime_org_hex, n);
    b = dc_xrealloc(b, *n + 3);
    memcpy(b + *n, "\x10\x01x", 3);
    *n += 3;
    set_hdr_len(b, *n - 5);
    return b;
}

/* Armor builders (texts). */
static uint8_t *text_of(const char *file, size_t *n) { return vec_read(file, n); }
static uint8_t *ar_bad_crc(size_t *n)
{
    uint8_t *t = text_of("alice.test.signet", n);
    char *c = strstr((char *)t, "\n=") + 2;
    c[0] = c[0] == 'A' ? 'B' : 'A';
    return t;
}
static uint8_t *ar_bad_b64(size_t *n)
{
    uint8_t *t = text_of("alice.test.signet", n);
    char *c = strchr((char *)t, '\n') + 5;
    *c = '*';
    return t;
}
static uint8_t *ar_no_crc(size_t *n)
{
    uint8_t *t = text_of("alice.test.signet", n);
    char *c = strstr((char *)t, "\n=") + 1;
    char *e = strchr(c, '\n') + 1;
    memmove(c, e, strlen(e) + 1);
    *n = strlen((char *)t);
    return t;
}
static uint8_t *ar_key_tag(size_t *n) { return text_of("alice.test.key", n); }
static uint8_t *ar_no_end(size_t *n)
{
    uint8_t *t = text_of("alice.test.signet", n);
    *strstr((char *)t, "-----END") = '\0';
    *n = strlen((char *)t);
    return t;
}

struct perr {
    const char *name;
    mkinput mk;
    enum dc_status want;
    const char *substr;
};

static const struct perr parse_errors[] = {
    {"truncated header", in_short_header, DC_ERR_TRUNCATED, "truncated header"},
    {"wrong magic", in_wrong_magic, DC_ERR_MAGIC, "wrong magic 1952"},
    {"header length exceeds data", in_hdr_too_long, DC_ERR_TRUNCATED, "header length says 353"},
    {"trailing byte", in_trailing, DC_ERR_FORMAT, "trailing data"},
    {"empty payload", in_empty_payload, DC_ERR_TRUNCATED, "empty payload"},
    {"truncated length prefix", in_cut_prefix, DC_ERR_TRUNCATED, "field 3 (Encryption-Key): "
                                                                 "length prefix truncated"},
    {"truncated signature", in_cut_sig, DC_ERR_TRUNCATED, "signature truncated, 10 of 64"},
    {"length overflows payload", in_overflow, DC_ERR_FORMAT, "field 17 (Address) declares 255"},
    {"fids out of order", in_out_of_order, DC_ERR_ORDER, "fid 16 at payload offset"},
    {"unique fid repeated", in_repeat, DC_ERR_ORDER, "unique field 16 (Name) repeated"},
    {"unique signature repeated", in_repeat_sig, DC_ERR_ORDER, "unique field 5"},
    {"unknown fid", in_unknown, DC_ERR_FIELD, "unknown fid 28"},
    {"user fid in org signet", in_org_fid5, DC_ERR_FIELD, "unknown fid 5"},
    {"SSR with fid 6", in_ssr_fid6, DC_ERR_FIELD, "SSR may contain only fids 1-5; found fid 6"},
    {"bad signing key format byte", in_bad_format_byte, DC_ERR_KEY, "format byte 0x41"},
    {"bad signing key length", in_bad_pok_len, DC_ERR_FIELD, "has length 34"},
    {"enc key with 0x04 prefix", in_point_prefix, DC_ERR_KEY, "encryption key (fid 3) is "
                                                              "invalid"},
    {"enc key off the curve", in_point_off_curve, DC_ERR_KEY, "not a point on the curve"},
    {"NUL in text field", in_text_nul, DC_ERR_FIELD, "text field 16 (Name) contains a NUL"},
    {"first field not fid 1", in_no_pok_first, DC_ERR_FIELD, "first field is fid 3"},
    {"PRIME signet with SOK fid", in_prime_sok, DC_ERR_FIELD, "not allowed in a PRIME"},
    {"PRIME signet with info fid", in_prime_fid16, DC_ERR_FIELD, "fid 16 at payload offset 134 "
                                                                 "is not allowed in a PRIME"},
};

static const struct perr armor_errors[] = {
    {"bad armor CRC", ar_bad_crc, DC_ERR_CRC, "CRC-24 mismatch"},
    {"bad base64", ar_bad_b64, DC_ERR_BASE64, "armor body"},
    {"missing checksum line", ar_no_crc, DC_ERR_FORMAT, "no checksum line"},
    {"key file given as signet", ar_key_tag, DC_ERR_MAGIC, "not a signet tag"},
    {"missing END line", ar_no_end, DC_ERR_TRUNCATED, "no -----END"},
};

static void run_perr(const struct perr *r, int armor)
{
    size_t n;
    uint8_t *in = r->mk(&n);
    struct dc_signet *s = NULL;
    struct dc_err err = {0};
    enum dc_status st = armor ? dc_signet_load(in, n, &s, &err) : dc_signet_parse(in, n, &s, &err);
    if (s != NULL)
        dc_signet_free(s);
    free(in);
    cr_expect_eq(st, r->want, "%s: status %s, expected %s (%s)", r->name, dc_status_name(st),
                 dc_status_name(r->want), err.msg);
    cr_expect_null(st == DC_OK ? (void *)1 : s, "%s: output set on failure", r->name);
    cr_expect_not_null(strstr(err.msg, r->substr), "%s: message \"%s\" lacks \"%s\"", r->name,
                       err.msg, r->substr);
}

Test(signet, malformed_inputs_table)
{
    for (size_t i = 0; i < sizeof(parse_errors) / sizeof(parse_errors[0]); i++)
        run_perr(&parse_errors[i], 0);
    for (size_t i = 0; i < sizeof(armor_errors) / sizeof(armor_errors[0]); i++)
        run_perr(&armor_errors[i], 1);
}

/* Verification failures: each row tampers or mismatches and expects a state and reason. */
enum vkind { V_ORG, V_USER, V_SSR };
struct verr {
    const char *name;
    enum vkind kind;
    const char *file; /* the signet checked */
    int tamper_fid;   /* flip a bit in this signature field, or 0 */
    const char *org;  /* org signet file for V_USER (POK source for V_ORG) */
    enum dc_signet_state want;
    enum dc_status code;
    const char *substr;
};

static const struct verr verify_errors[] = {
    {"user vs wrong org", V_USER, "alice-alice.test.signet", 0, "bob.test.signet", DC_SS_INVALID,
     DC_ERR_SIGNATURE, "(fid 6) verifies under neither the org POK 9b1f4876"},
    {"org fid 4 tampered", V_ORG, "alice.test.signet", 4, "alice.test.signet", DC_SS_INVALID,
     DC_ERR_SIGNATURE, "crypto signature (fid 4) does not verify under the POK fc08914e"},
    {"org fid 253 tampered", V_ORG, "alice.test.signet", 253, "alice.test.signet",
     DC_SS_INVALID, DC_ERR_SIGNATURE, "full signature (fid 253) does not verify"},
    {"org fid 255 tampered", V_ORG, "alice.test.signet", 255, "alice.test.signet",
     DC_SS_INVALID, DC_ERR_SIGNATURE, "ID signature (fid 255) does not verify"},
    {"user fid 5 tampered", V_USER, "alice-alice.test.signet", 5, "alice.test.signet",
     DC_SS_INVALID, DC_ERR_SIGNATURE, "user signature (fid 5) does not verify under the "
                                      "signet's own signing key 9712b7b8"},
    {"user fid 6 tampered", V_USER, "alice-alice.test.signet", 6, "alice.test.signet",
     DC_SS_INVALID, DC_ERR_SIGNATURE, "crypto signature (fid 6) verifies under neither"},
    {"user fid 253 tampered", V_USER, "alice-alice.test.signet", 253, "alice.test.signet",
     DC_SS_INVALID, DC_ERR_SIGNATURE, "full signature (fid 253) verifies under neither"},
    {"user fid 255 tampered", V_USER, "alice-alice.test.signet", 255, "alice.test.signet",
     DC_SS_INVALID, DC_ERR_SIGNATURE, "ID signature (fid 255) verifies under neither"},
    {"SSR fid 5 tampered", V_SSR, "bob-bob.test.ssr", 5, NULL, DC_SS_INVALID, DC_ERR_SIGNATURE,
     "user signature (fid 5) does not verify"},
    {"SSR given a previous signet but no custody", V_SSR, "bob-bob.test.ssr", 0,
     "bob-bob.test.signet", DC_SS_BROKEN_COC, DC_ERR_CUSTODY, "has no custody signature"},
    {"user given a previous signet but no custody", V_USER, "bob-bob.test.signet", 0,
     "bob.test.signet", DC_SS_BROKEN_COC, DC_ERR_CUSTODY, "has no custody signature"},
};

Test(signet, verification_failures_table)
{
    for (size_t i = 0; i < sizeof(verify_errors) / sizeof(verify_errors[0]); i++) {
        const struct verr *r = &verify_errors[i];
        struct dc_signet *s = vload(r->file);
        if (r->tamper_fid) {
            const struct dc_signet_field *f = dc_signet_field(s, (uint8_t)r->tamper_fid, 0);
            cr_assert_not_null(f, "%s", r->name);
            s->bin[(size_t)(f->data - s->bin) + 7] ^= 0x10;
        }
        struct dc_signet *o = r->org ? vload(r->org) : NULL;
        struct dc_err why = {0};
        enum dc_signet_state st;
        if (r->kind == V_ORG) {
            uint8_t pok[1][32];
            cr_assert_eq(dc_signet_signing_key(o, pok[0], NULL), DC_OK);
            st = dc_signet_verify_org(s, (const uint8_t(*)[32])pok, 1, &why);
        } else if (r->kind == V_USER) {
            /* The custody row passes the signet itself as its "previous" signet. */
            int prev = r->code == DC_ERR_CUSTODY;
            st = dc_signet_verify_user(s, o, prev ? s : NULL, &why);
        } else {
            st = dc_signet_verify_ssr(s, o, &why);
        }
        cr_expect_eq(st, r->want, "%s: state %s, expected %s (%s)", r->name,
                     dc_signet_state_name(st), dc_signet_state_name(r->want), why.msg);
        cr_expect_eq(why.code, r->code, "%s: code %s", r->name, dc_status_name(why.code));
        cr_expect_not_null(strstr(why.msg, r->substr), "%s: \"%s\" lacks \"%s\"", r->name,
                           why.msg, r->substr);
        dc_signet_free(s);
        dc_signet_free(o);
    }
}

/* Custody rows need a rotation, so they are built here rather than from files. */
Test(signet, custody_failures)
{
    struct world w;
    struct dc_err why = {0};
    world_make(&w);
    struct dc_keyfile *k2 = NULL;
    cr_assert_eq(dc_keyfile_generate(DC_KEY_USER, &k2, NULL), DC_OK);
    struct dc_signet *ssr2 = NULL, *user2 = NULL;
    cr_assert_eq(dc_signet_ssr_create(k2->sign, k2->enc->pub, w.userk->sign, &ssr2, NULL), DC_OK);
    cr_assert_eq(dc_signet_ssr_sign(ssr2, w.user, &w.orgsigner, &user2, NULL), DC_OK);
    /* Tampered custody signature. */
    const struct dc_signet_field *c = dc_signet_field(user2, 4, 0);
    user2->bin[(size_t)(c->data - user2->bin)] ^= 1;
    cr_assert_eq(dc_signet_verify_user(user2, w.org, w.user, &why), DC_SS_INVALID);
    /* fid 5 and 6 cover fid 4, so they fail first: the tampering is caught either way. */
    cr_assert_not_null(strstr(why.msg, "fid 5"), "%s", why.msg);
    /* A custody signature made by the wrong key but otherwise consistent. */
    struct dc_signet *ssr3 = NULL, *user3 = NULL;
    cr_assert_eq(dc_signet_ssr_create(k2->sign, k2->enc->pub, w.orgk->sign, &ssr3, NULL), DC_OK);
    cr_assert_eq(dc_signet_verify_ssr(ssr3, w.user, &why), DC_SS_BROKEN_COC);
    cr_assert_eq(why.code, DC_ERR_CUSTODY);
    cr_assert_eq(dc_signet_ssr_sign(ssr3, w.user, &w.orgsigner, &user3, &why), DC_ERR_CUSTODY);
    cr_assert_not_null(strstr(why.msg, "custody signature (fid 4) does not verify"), "%s",
                       why.msg);
    dc_signet_free(ssr2);
    dc_signet_free(user2);
    dc_signet_free(ssr3);
    dc_keyfile_free(k2);
    world_free(&w);
}

Test(signet, org_verification_with_several_poks_and_incomplete_signets)
{
    struct world w;
    struct dc_err why = {0};
    world_make(&w);
    uint8_t poks[3][32];
    memset(poks, 0xaa, sizeof(poks));
    memcpy(poks[2], w.orgk->sign->pub, 32);
    /* The record lists an old POK first; the signet's own POK is the third. */
    cr_assert_eq(dc_signet_verify_org(w.org, (const uint8_t(*)[32])poks, 3, &why), DC_SS_ID,
                 "%s", why.msg);
    cr_assert_eq(dc_signet_verify_org(w.org, (const uint8_t(*)[32])poks, 2, &why),
                 DC_SS_INVALID);
    cr_assert_not_null(strstr(why.msg, "not among the 2 POK(s)"), "%s", why.msg);
    /* Keys without the crypto signature. */
    dc_signet_truncate(w.org, 4);
    cr_assert_eq(w.org->nfields, 2);
    cr_assert_eq(dc_signet_verify_org(w.org, (const uint8_t(*)[32])poks, 3, &why),
                 DC_SS_INCOMPLETE);
    cr_assert_not_null(strstr(why.msg, "no crypto signature (fid 4)"), "%s", why.msg);
    /* An SSR without its self signature. */
    dc_signet_truncate(w.ssr, 5);
    cr_assert_eq(dc_signet_verify_ssr(w.ssr, NULL, &why), DC_SS_INCOMPLETE);
    cr_assert_not_null(strstr(why.msg, "no user signature (fid 5)"), "%s", why.msg);
    world_free(&w);
}

/* libdime gives SSR fid 3 a 1-byte length but user fid 3 a 2-byte one, so an SSR with an
 * alternate key cannot become a variant A user signet without breaking its fid 5. */
Test(signet, ssr_with_alternate_key_cannot_be_signed_unchanged)
{
    struct world w;
    struct dc_err err = {0};
    world_make(&w);
    struct dc_signet *ssr = dc_signet_new(DC_SIGNET_SSR);
    uint8_t f[33];
    f[0] = 0x40;
    memcpy(f + 1, w.userk->sign->pub, 32);
    cr_assert_eq(dc_signet_add_field(ssr, 1, f, 33, &err), DC_OK);
    cr_assert_eq(dc_signet_add_field(ssr, 2, w.userk->enc->pub, 33, &err), DC_OK);
    cr_assert_eq(dc_signet_add_field(ssr, 3, (const uint8_t *)"altkey", 6, &err), DC_OK);
    struct dc_signer us;
    dc_signer_local(&us, w.userk->sign);
    cr_assert_eq(dc_signet_sign(ssr, 5, &us, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(dc_signet_verify_ssr(ssr, NULL, &err), DC_SS_SSR, "%s", err.msg);
    struct dc_signet *u = NULL;
    cr_assert_neq(dc_signet_ssr_sign(ssr, NULL, &w.orgsigner, &u, &err), DC_OK);
    cr_assert_null(u);
    cr_assert_not_null(strstr(err.msg, "cannot be turned into a user signet"), "%s", err.msg);
    dc_signet_free(ssr);
    world_free(&w);
}

Test(signet, load_file_reports_the_path)
{
    struct dc_signet *s = NULL;
    struct dc_err err = {0};
    cr_assert_eq(dc_signet_load_file(vec_path("alice.test.key"), &s, &err), DC_ERR_MAGIC);
    cr_assert_not_null(strstr(err.msg, "alice.test.key: armor tag"), "%s", err.msg);
    cr_assert_eq(dc_signet_load_file("/nonexistent/x.signet", &s, &err), DC_ERR_IO);
    cr_assert_null(s);
}
