/*
 * dc_keys - DIME private key files: parsing all variants, writing variant A, SOK files.
 *
 * Layout facts: ../shared/spec/signet-mrec.md section 9. Variants B and C write identical
 * key files (1-byte encryption-key length); we report such files as C (PRIME), the code path
 * magma actually uses for its own keys. Every buffer that ever held key bytes is zeroized
 * before it is released; serialized and armored forms live in secure memory.
 */
#include "dc_keys.h"

#include <stdlib.h>
#include <string.h>

#include "dc_armor.h"
#include "dc_b64.h"

#define HDR_LEN 5u
#define SEED    DC_ED25519_SEED_LEN
#define SCALAR  DC_SECP_PRIV_LEN
#define KEY_FILE_MAX (1u << 20)

static unsigned key_enc_fid(enum dc_key_type t)
{
    return t == DC_KEY_ORG ? 3u : 2u;
}

static const char *key_tag(enum dc_key_type t)
{
    return t == DC_KEY_ORG ? DC_TAG_ORG_KEY : DC_TAG_USER_KEY;
}

static struct dc_keyfile *keyfile_new(enum dc_key_type type, enum dc_variant v)
{
    struct dc_keyfile *k = dc_secure_alloc(sizeof(*k));
    k->type = type;
    k->variant = v;
    return k;
}

void dc_keyfile_free(struct dc_keyfile *k)
{
    if (k == NULL)
        return;
    dc_sign_key_free(k->sign);
    dc_enc_key_free(k->enc);
    dc_sign_key_free(k->sok);
    dc_secure_free(k, sizeof(*k));
}

/* Our SOK extension: fid 2, length 33, permission byte, 32-byte seed, nothing else. */
static enum dc_status parse_sok(const uint8_t *p, size_t n, struct dc_keyfile **out,
                                struct dc_err *err)
{
    if (n < 2)
        return dc_fail(err, DC_ERR_TRUNCATED, "SOK key file: field 2 length truncated");
    if (p[1] != 1 + SEED)
        return dc_fail(err, DC_ERR_FIELD, "SOK key file: field 2 has length %u, expected 33 "
                       "(permissions + 32-byte seed)", p[1]);
    if (n < 2 + 1 + SEED)
        return dc_fail(err, DC_ERR_TRUNCATED, "SOK key file: field 2 truncated (%zu of 33 "
                       "bytes)", n - 2);
    if (n > 2 + 1 + SEED)
        return dc_fail(err, DC_ERR_FORMAT, "SOK key file: %zu trailing bytes after field 2 "
                       "(a SOK file holds nothing else)", n - (2 + 1 + SEED));
    struct dc_keyfile *k = keyfile_new(DC_KEY_ORG, DC_VARIANT_LIBDIME);
    k->sok_perm = p[2];
    enum dc_status st = dc_sign_key_from_seed(p + 3, &k->sok, err);
    if (st != DC_OK) {
        dc_keyfile_free(k);
        return st;
    }
    *out = k;
    return DC_OK;
}

enum dc_status dc_keyfile_parse(const uint8_t *bin, size_t len, struct dc_keyfile **out,
                                struct dc_err *err)
{
    if (bin == NULL || out == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_keyfile_parse: NULL argument");
    if (len < HDR_LEN)
        return dc_fail(err, DC_ERR_TRUNCATED, "truncated key file header: %zu of 5 bytes", len);
    unsigned magic = dc_get_be(bin, 2);
    if (magic == 1947 || magic == 1976)
        return dc_fail(err, DC_ERR_MAGIC, "magic %u is an encrypted key file, which is not "
                       "supported", magic);
    if (magic != DC_KEY_ORG && magic != DC_KEY_USER)
        return dc_fail(err, DC_ERR_MAGIC, "wrong magic %u (0x%04x): not a key file (1952 org "
                       "key, 2013 user key)", magic, magic);
    enum dc_key_type type = (enum dc_key_type)magic;
    size_t hlen = dc_get_be(bin + 2, 3), n = len - HDR_LEN;
    if (hlen > n)
        return dc_fail(err, DC_ERR_TRUNCATED, "key file header length says %zu payload bytes "
                       "but only %zu are present", hlen, n);
    if (hlen < n)
        return dc_fail(err, DC_ERR_FORMAT, "key file header length says %zu payload bytes but "
                       "%zu are present (trailing data)", hlen, n);
    const uint8_t *p = bin + HDR_LEN;
    if (n == 0)
        return dc_fail(err, DC_ERR_TRUNCATED, "key file has an empty payload");
    if (type == DC_KEY_ORG && p[0] == 2)
        return parse_sok(p, n, out, err);
    if (p[0] != 1)
        return dc_fail(err, DC_ERR_FIELD, "key file starts with fid %u; expected the signing "
                       "key (fid 1)", p[0]);
    if (n < 2)
        return dc_fail(err, DC_ERR_TRUNCATED, "key file: signing key length truncated");
    if (p[1] != SEED)
        return dc_fail(err, DC_ERR_FIELD, "key file: signing key (fid 1) has length %u, "
                       "expected 32", p[1]);
    if (n < 2 + SEED)
        return dc_fail(err, DC_ERR_TRUNCATED, "key file: signing key truncated (%zu of 32 "
                       "bytes)", n - 2);
    size_t off = 2 + SEED;
    unsigned efid = key_enc_fid(type);
    if (n == off)
        return dc_fail(err, DC_ERR_TRUNCATED, "key file ends after the signing key; the "
                       "encryption key (fid %u) is missing", efid);
    if (p[off] != efid)
        return dc_fail(err, DC_ERR_FIELD, "key file: fid %u follows the signing key; a %s key "
                       "file has its encryption key in fid %u", p[off],
                       type == DC_KEY_ORG ? "org" : "user", efid);
    off++;
    /* Variant A writes the length in two bytes (00 20), B/C in one (20). */
    enum dc_variant v;
    size_t elen;
    if (n - off >= 1 && p[off] == 0) {
        if (n - off < 2)
            return dc_fail(err, DC_ERR_TRUNCATED, "key file: encryption key length truncated");
        v = DC_VARIANT_LIBDIME;
        elen = dc_get_be(p + off, 2);
        off += 2;
    } else if (n - off >= 1) {
        v = DC_VARIANT_PRIME;
        elen = p[off];
        off += 1;
    } else {
        return dc_fail(err, DC_ERR_TRUNCATED, "key file: encryption key length truncated");
    }
    if (elen != SCALAR)
        return dc_fail(err, DC_ERR_FIELD, "key file: encryption key (fid %u) has length %zu, "
                       "expected 32", efid, elen);
    if (n - off < SCALAR)
        return dc_fail(err, DC_ERR_TRUNCATED, "key file: encryption key truncated (%zu of 32 "
                       "bytes)", n - off);
    if (n - off > SCALAR)
        return dc_fail(err, DC_ERR_FORMAT, "key file: %zu trailing bytes after the encryption "
                       "key", n - off - SCALAR);
    struct dc_keyfile *k = keyfile_new(type, v);
    enum dc_status st = dc_sign_key_from_seed(p + 2, &k->sign, err);
    if (st == DC_OK) {
        struct dc_err e2;
        if (dc_enc_key_from_private(p + off, &k->enc, &e2) != DC_OK)
            st = dc_fail(err, DC_ERR_KEY, "key file: encryption key (fid %u): %s", efid,
                         e2.msg);
    }
    if (st != DC_OK) {
        dc_keyfile_free(k);
        return st;
    }
    *out = k;
    return DC_OK;
}

enum dc_status dc_keyfile_load(const uint8_t *data, size_t len, struct dc_keyfile **out,
                               struct dc_err *err)
{
    if (data == NULL || out == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_keyfile_load: NULL argument");
    if (!dc_armor_detect(data, len))
        return dc_keyfile_parse(data, len, out, err);
    char tag[DC_ARMOR_TAG_MAX];
    uint8_t *bin = NULL;
    size_t blen = 0;
    enum dc_status st = dc_armor_decode((const char *)data, len, tag, &bin, &blen, err);
    if (st != DC_OK)
        return st;
    if (strcmp(tag, DC_TAG_ORG_KEY) != 0 && strcmp(tag, DC_TAG_USER_KEY) != 0) {
        st = dc_fail(err, DC_ERR_MAGIC, "armor tag \"%s\" is not a key file tag", tag);
    } else if (blen >= 2 && strcmp(tag, key_tag((enum dc_key_type)dc_get_be(bin, 2))) != 0 &&
               (dc_get_be(bin, 2) == DC_KEY_ORG || dc_get_be(bin, 2) == DC_KEY_USER)) {
        st = dc_fail(err, DC_ERR_MAGIC, "armor tag \"%s\" does not match the key file's magic "
                     "%u", tag, dc_get_be(bin, 2));
    } else {
        st = dc_keyfile_parse(bin, blen, out, err);
    }
    dc_memzero(bin, blen);
    free(bin);
    return st;
}

enum dc_status dc_keyfile_load_file(const char *path, struct dc_keyfile **out,
                                    struct dc_err *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    enum dc_status st = dc_read_file(path, KEY_FILE_MAX, &buf, &len, err);
    if (st != DC_OK)
        return st;
    struct dc_err e2;
    st = dc_keyfile_load(buf, len, out, &e2);
    if (st != DC_OK)
        dc_fail(err, st, "%s: %s", path, e2.msg);
    dc_memzero(buf, len);
    free(buf);
    return st;
}

enum dc_status dc_keyfile_generate(enum dc_key_type type, struct dc_keyfile **out,
                                   struct dc_err *err)
{
    if (out == NULL || (type != DC_KEY_ORG && type != DC_KEY_USER))
        return dc_fail(err, DC_ERR_ARG, "dc_keyfile_generate: bad argument");
    struct dc_keyfile *k = keyfile_new(type, DC_VARIANT_LIBDIME);
    enum dc_status st = dc_sign_key_generate(&k->sign, err);
    if (st == DC_OK)
        st = dc_enc_key_generate(&k->enc, err);
    if (st != DC_OK) {
        dc_keyfile_free(k);
        return st;
    }
    *out = k;
    return DC_OK;
}

enum dc_status dc_keyfile_sok_generate(uint8_t perm, struct dc_keyfile **out, struct dc_err *err)
{
    if (out == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_keyfile_sok_generate: NULL argument");
    struct dc_keyfile *k = keyfile_new(DC_KEY_ORG, DC_VARIANT_LIBDIME);
    k->sok_perm = perm;
    enum dc_status st = dc_sign_key_generate(&k->sok, err);
    if (st != DC_OK) {
        dc_keyfile_free(k);
        return st;
    }
    *out = k;
    return DC_OK;
}

enum dc_status dc_keyfile_serialize(const struct dc_keyfile *k, uint8_t **bin, size_t *len,
                                    struct dc_err *err)
{
    if (k == NULL || bin == NULL || len == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_keyfile_serialize: NULL argument");
    uint8_t *b;
    size_t n;
    if (k->sok != NULL) {
        n = HDR_LEN + 2 + 1 + SEED;
        b = dc_secure_alloc(n);
        b[5] = 2;
        b[6] = 1 + SEED;
        b[7] = k->sok_perm;
        memcpy(b + 8, k->sok->seed, SEED);
    } else {
        if (k->sign == NULL || k->enc == NULL)
            return dc_fail(err, DC_ERR_ARG, "key file lacks its signing or encryption key");
        n = HDR_LEN + 2 + SEED + 3 + SCALAR;
        b = dc_secure_alloc(n);
        b[5] = 1;
        b[6] = SEED;
        memcpy(b + 7, k->sign->seed, SEED);
        b[7 + SEED] = (uint8_t)key_enc_fid(k->type);
        b[8 + SEED] = 0; /* variant A: 2-byte length */
        b[9 + SEED] = SCALAR;
        memcpy(b + 10 + SEED, k->enc->priv, SCALAR);
    }
    b[0] = (uint8_t)((unsigned)k->type >> 8);
    b[1] = (uint8_t)k->type;
    b[2] = 0;
    b[3] = 0;
    b[4] = (uint8_t)(n - HDR_LEN);
    *bin = b;
    *len = n;
    return DC_OK;
}

/* The same text dc_armor_encode writes, but built directly in secure memory so no copy of
 * the key ends up in ordinary heap buffers. */
enum dc_status dc_keyfile_armor(const struct dc_keyfile *k, char **out, struct dc_err *err)
{
    uint8_t *bin = NULL;
    size_t blen = 0;
    if (out == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_keyfile_armor: NULL argument");
    enum dc_status st = dc_keyfile_serialize(k, &bin, &blen, err);
    if (st != DC_OK)
        return st;
    const char *tag = key_tag(k->type);
    size_t b64len = dc_b64_enc_len(blen, 1);
    char *b64 = dc_secure_alloc(b64len + 1);
    dc_b64_encode(bin, blen, b64, 1);
    uint32_t crc = dc_crc24(bin, blen);
    uint8_t crcb[3] = {(uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
    size_t taglen = strlen(tag);
    size_t cap = 2 * (taglen + 16) + b64len + b64len / 64 + 2 + 7 + 1;
    char *t = dc_secure_alloc(cap);
    size_t o = 0;
    memcpy(t + o, "-----BEGIN ", 11), o += 11;
    memcpy(t + o, tag, taglen), o += taglen;
    memcpy(t + o, "-----\n", 6), o += 6;
    for (size_t i = 0; i < b64len; i += 64) {
        size_t l = b64len - i < 64 ? b64len - i : 64;
        memcpy(t + o, b64 + i, l), o += l;
        t[o++] = '\n';
    }
    t[o++] = '=';
    dc_b64_encode(crcb, 3, t + o, 1);
    o += 4;
    t[o++] = '\n';
    memcpy(t + o, "-----END ", 9), o += 9;
    memcpy(t + o, tag, taglen), o += taglen;
    memcpy(t + o, "-----\n", 6), o += 6;
    t[o] = '\0';
    dc_secure_free(b64, b64len + 1);
    dc_secure_free(bin, blen);
    /* Hand back an allocation of exactly strlen + 1 bytes, as the header promises. */
    char *r = dc_secure_alloc(o + 1);
    memcpy(r, t, o + 1);
    dc_secure_free(t, cap);
    *out = r;
    return DC_OK;
}

static enum dc_status save(const struct dc_keyfile *k, const char *path, unsigned mode,
                           bool excl, struct dc_err *err)
{
    char *text = NULL;
    if (path == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_keyfile_save: NULL path");
    enum dc_status st = dc_keyfile_armor(k, &text, err);
    if (st != DC_OK)
        return st;
    size_t n = strlen(text);
    st = excl ? dc_write_file_new(path, text, n, mode, err)
              : dc_write_file(path, text, n, mode, err);
    dc_secure_free(text, n + 1);
    return st;
}

enum dc_status dc_keyfile_save(const struct dc_keyfile *k, const char *path, struct dc_err *err)
{
    return save(k, path, 0600, false, err);
}

enum dc_status dc_keyfile_save_new(const struct dc_keyfile *k, const char *path, unsigned mode,
                                   struct dc_err *err)
{
    return save(k, path, mode, true, err);
}
