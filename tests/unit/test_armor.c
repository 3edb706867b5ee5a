/* Armor, CRC-24 and base64: known answers, round trips, and one row per error. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "dc_armor.h"
#include "dc_b64.h"
#include "vectors.h"

Test(armor, crc24_matches_openpgp_reference)
{
    /* RFC 4880 CRC-24 of "123456789" is 0x21cf02. */
    cr_assert_eq(dc_crc24((const uint8_t *)"123456789", 9), 0x21cf02u);
    cr_assert_eq(dc_crc24(NULL, 0), 0xb704ceu);
}

Test(armor, every_vector_file_decodes_and_reencodes_identically)
{
    static const char *files[] = {"alice.test.signet", "bob.test.signet",
                                  "alice-alice.test.signet", "bob-bob.test.signet",
                                  "alice-alice.test.ssr", "bob-bob.test.ssr",
                                  "alice.test.key", "bob.test.key",
                                  "alice-alice.test.key", "bob-bob.test.key"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        size_t len, binlen;
        uint8_t *text = vec_read(files[i], &len), *bin = NULL;
        char tag[DC_ARMOR_TAG_MAX];
        struct dc_err err;
        cr_assert_eq(dc_armor_decode((char *)text, len, tag, &bin, &binlen, &err), DC_OK,
                     "%s: %s", files[i], err.msg);
        cr_assert_eq(dc_get_be(bin + 2, 3) + 5, binlen, "%s: header length", files[i]);
        char *again = dc_armor_encode(tag, bin, binlen);
        cr_assert_str_eq(again, (char *)text, "%s re-armored differently", files[i]);
        free(again);
        free(bin);
        free(text);
    }
}

Test(armor, accepts_crlf_blank_lines_and_missing_final_newline)
{
    const uint8_t bin[] = {1, 2, 3, 4, 5, 6, 7};
    char *a = dc_armor_encode("USER KEY", bin, sizeof(bin));
    struct dc_buf b;
    dc_buf_init(&b);
    dc_buf_append(&b, "\r\n\r\n", 4);
    for (char *p = a; *p; p++) {
        if (*p == '\n')
            dc_buf_putc(&b, '\r');
        dc_buf_putc(&b, (uint8_t)*p);
    }
    b.len -= 2; /* drop the final CRLF */
    char tag[DC_ARMOR_TAG_MAX];
    uint8_t *out = NULL;
    size_t outlen = 0;
    cr_assert_eq(dc_armor_decode((char *)b.data, b.len, tag, &out, &outlen, NULL), DC_OK);
    cr_assert_str_eq(tag, "USER KEY");
    cr_assert_eq(outlen, sizeof(bin));
    cr_assert_eq(memcmp(out, bin, sizeof(bin)), 0);
    free(out);
    free(a);
    dc_buf_free(&b);
}

/* Fixed arrays, not pointers: Criterion runs each parameter in a fresh process where
 * pointers into this binary's data need not be valid. */
struct bad_armor {
    char name[40];
    char text[128];
    enum dc_status code;
    char msg[40];
};

static const struct bad_armor bad[] = {
    {"empty input", "", DC_ERR_TRUNCATED, "no armor"},
    {"no BEGIN line", "AQIDBAUGBw==\n=ABCD\n", DC_ERR_FORMAT, "BEGIN"},
    {"lower-case tag", "-----BEGIN user key-----\n", DC_ERR_FORMAT, "BEGIN"},
    {"no END line", "-----BEGIN USER KEY-----\nAQIDBAUGBw==\n=TruW\n", DC_ERR_TRUNCATED, "END"},
    {"END tag differs",
     "-----BEGIN USER KEY-----\nAQIDBAUGBw==\n=TruW\n-----END USER SIGNET-----\n",
     DC_ERR_FORMAT, "does not match"},
    {"malformed END line", "-----BEGIN USER KEY-----\nAQIDBAUGBw==\n=TruW\n-----END\n",
     DC_ERR_FORMAT, "malformed END"},
    {"missing checksum line", "-----BEGIN USER KEY-----\nAQIDBAUGBw==\n-----END USER KEY-----\n",
     DC_ERR_FORMAT, "no checksum"},
    {"checksum too short", "-----BEGIN USER KEY-----\nAQIDBAUGBw==\n=P2N\n-----END USER KEY-----\n",
     DC_ERR_BASE64, "checksum line"},
    {"data after checksum",
     "-----BEGIN USER KEY-----\nAQIDBAUGBw==\n=TruW\nAAAA\n-----END USER KEY-----\n",
     DC_ERR_FORMAT, "after the checksum"},
    {"bad base64 character",
     "-----BEGIN USER KEY-----\nAQID*AUGBw==\n=TruW\n-----END USER KEY-----\n", DC_ERR_BASE64,
     "invalid base64 character"},
    {"bad base64 length", "-----BEGIN USER KEY-----\nAQIDB\n=TruW\n-----END USER KEY-----\n",
     DC_ERR_BASE64, "impossible"},
    {"empty body", "-----BEGIN USER KEY-----\n=TruW\n-----END USER KEY-----\n",
     DC_ERR_TRUNCATED, "empty body"},
    {"CRC mismatch", "-----BEGIN USER KEY-----\nAQIDBAUGBw==\n=AAAA\n-----END USER KEY-----\n",
     DC_ERR_CRC, "CRC-24 mismatch"},
};

ParameterizedTestParameters(armor, errors)
{
    return cr_make_param_array(struct bad_armor, bad, sizeof(bad) / sizeof(bad[0]));
}

ParameterizedTest(const struct bad_armor *c, armor, errors)
{
    char tag[DC_ARMOR_TAG_MAX];
    uint8_t *out = NULL;
    size_t outlen = 0;
    struct dc_err err = {0};
    enum dc_status s = dc_armor_decode(c->text, strlen(c->text), tag, &out, &outlen, &err);
    cr_assert_eq(s, c->code, "%s: got %s (%s)", c->name, dc_status_name(s), err.msg);
    cr_assert(strstr(err.msg, c->msg) != NULL, "%s: message \"%s\" lacks \"%s\"", c->name,
              err.msg, c->msg);
    cr_assert_null(out);
}

Test(armor, the_valid_form_of_the_error_table_parses)
{
    /* Guards the table above: with the right checksum the same body is accepted, so each
     * row fails for its stated reason only. */
    const char *ok = "-----BEGIN USER KEY-----\nAQIDBAUGBw==\n=TruW\n-----END USER KEY-----\n";
    char tag[DC_ARMOR_TAG_MAX];
    uint8_t *out = NULL;
    size_t outlen;
    struct dc_err err;
    cr_assert_eq(dc_armor_decode(ok, strlen(ok), tag, &out, &outlen, &err), DC_OK, "%s",
                 err.msg);
    free(out);
}

Test(b64, padded_and_unpadded_round_trip)
{
    uint8_t in[5] = {0xfb, 0xff, 0x00, 0x10, 0x80};
    for (size_t n = 0; n <= 5; n++) {
        for (int pad = 0; pad <= 1; pad++) {
            char enc[16];
            size_t el = dc_b64_encode(in, n, enc, pad);
            cr_assert_eq(el, dc_b64_enc_len(n, pad));
            uint8_t out[16];
            size_t ol = 0;
            cr_assert_eq(dc_b64_decode(enc, el, out, &ol, NULL), DC_OK, "n=%zu pad=%d", n, pad);
            cr_assert_eq(ol, n);
            cr_assert_eq(memcmp(out, in, n), 0);
        }
    }
}

Test(b64, strict_decoder_refuses_sloppy_input)
{
    uint8_t out[16];
    size_t ol;
    struct dc_err err;
    cr_assert_eq(dc_b64_decode("QUJD RA==", 9, out, &ol, &err), DC_ERR_BASE64);
    cr_assert_eq(dc_b64_decode("QUJDRA=", 7, out, &ol, &err), DC_ERR_BASE64);
    cr_assert_eq(dc_b64_decode("QR==", 4, out, &ol, &err), DC_ERR_BASE64); /* trailing bits */
    cr_assert(strstr(err.msg, "trailing bits") != NULL, "%s", err.msg);
    cr_assert_eq(dc_b64_decode("Q", 1, out, &ol, &err), DC_ERR_BASE64);
    cr_assert_eq(dc_b64_decode_exact("QUJD", 4, out, 2, &err), DC_ERR_BASE64);
    cr_assert_eq(dc_b64_decode_exact("QUI", 3, out, 2, &err), DC_OK);
    cr_assert_eq(dc_b64_decode_exact("QUI=", 4, out, 2, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(memcmp(out, "AB", 2), 0);
    cr_assert_eq(dc_b64_decode_exact("Zg==", 4, out, 1, &err), DC_OK, "%s", err.msg);
    cr_assert_eq(out[0], 'f');
    cr_assert_eq(dc_b64_decode_exact("Zg==", 4, out, 2, &err), DC_ERR_BASE64);
}
