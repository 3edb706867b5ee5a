/*
 * dc_signet - parsing, building, fingerprinting and verifying DIME signets.
 *
 * Design: a signet is kept as its exact wire bytes (s->bin) plus an index of its fields
 * (s->fields) whose data pointers point into those bytes. Every change made by the builder
 * edits the bytes and then re-runs the same indexer the parser uses, so a signet we build is
 * validated by exactly the rules a received one is, and serialization is always a copy of
 * s->bin (byte-identical for parsed input, whatever its variant).
 *
 * Facts of the format: ../shared/spec/signet-mrec.md sections 1-7; decisions: PROFILE.md 1-2.
 */
#include "dc_signet.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc_armor.h"
#include "dc_b64.h"

#define HDR_LEN      5u
#define PAYLOAD_MAX  0xFFFFFFu /* u24 length in the header */
#define SIG_LEN      DC_ED25519_SIG_LEN
#define SIGNKEY_FMT  0x40 /* libdime's only signing-key format byte (variants A and B) */
#define LOAD_MAX     (64u << 20)

/* What the bytes of a field mean; decides how they are validated. */
enum fkind {
    K_SIGNKEY, /* fid 1: signing key / POK */
    K_SOK,     /* org fid 2: perm + 0x40 + key */
    K_ENC,     /* org fid 3, user/SSR fid 2: compressed secp256k1 point */
    K_ALTENC,  /* user fid 3: opaque key bytes */
    K_SIG,     /* fixed 64-byte Ed25519 signature, no length prefix */
    K_TEXT,    /* text without NUL */
    K_PHOTO,   /* binary */
    K_UNDEF,   /* fid 251: name + text */
};

struct fspec {
    const char *name;
    int width; /* length prefix bytes: 0 = fixed 64-byte signature, -1 = fid 251 layout */
    bool unique;
    enum fkind kind;
};

static const char *const info_names[] = {
    "Name", "Address", "Province", "Country", "Postal-Code", "Phone-Number", "Language",
    "Currency", "Cryptocurrency", "Motto", "Extensions", "Message-Size-Limit",
}; /* fids 16-27 */
static const char *const org_host_names[] = {
    "Contact-Abuse", "Contact-Admin", "Contact-Support", "Web-Access-Host",
    "Web-Access-Location", "Web-Access-Certificate", "Mail-Access-Host",
    "Mail-Access-Certificate", "Onion-Access-Host", "Onion-Access-Certificate",
    "Onion-Delivery-Host", "Onion-Delivery-Certificate",
}; /* fids 200-211 */
static const char *const user_profile_names[] = {
    "Supported-Codecs", "Title", "Employer", "Gender", "Alma-Mater", "Supervisor",
    "Political-Party",
}; /* fids 93-99 */

static struct fspec mk(const char *name, int width, bool unique, enum fkind kind)
{
    struct fspec f = {name, width, unique, kind};
    return f;
}

/* Fields shared by org and user signets from fid 16 up (the info part and the tail). */
static bool common_spec(unsigned fid, struct fspec *o)
{
    if (fid >= 16 && fid <= 27) {
        /* Phone-Number (21) may be listed several times. */
        *o = mk(info_names[fid - 16], 1, fid != 21, K_TEXT);
        return true;
    }
    switch (fid) {
    case 160: *o = mk("Website", 2, true, K_TEXT); return true;
    case 251: *o = mk("Undefined-Field", -1, false, K_UNDEF); return true;
    case 252: *o = mk("Photo", 3, true, K_PHOTO); return true;
    case 254: *o = mk("Signet-Identifier", 1, true, K_TEXT); return true;
    default: return false;
    }
}

/* The field table for (type, variant). Widths differ between variants only for the key
 * fields: libdime (A) gives the encryption key a 2-byte length (and the user alternate
 * key too, but not in an SSR); magma's fix (B) and PRIME (C) use one byte. */
static bool field_spec(enum dc_signet_type type, enum dc_variant v, unsigned fid,
                       struct fspec *o)
{
    int keyw = v == DC_VARIANT_LIBDIME ? 2 : 1;
    if (v == DC_VARIANT_PRIME && fid > 6)
        return false;
    if (type == DC_SIGNET_ORG) {
        switch (fid) {
        case 1: *o = mk("Primary-Organizational-Key", 1, true, K_SIGNKEY); return true;
        case 2:
            /* PRIME has no SOKs, so their raw-key encoding is undefined there. */
            if (v == DC_VARIANT_PRIME)
                return false;
            *o = mk("Secondary-Organizational-Key", 1, false, K_SOK);
            return true;
        case 3: *o = mk("Encryption-Key", keyw, true, K_ENC); return true;
        case 4: *o = mk("Organizational-Signature", 0, true, K_SIG); return true;
        case 253: *o = mk("Organizational-Signature", 0, true, K_SIG); return true;
        case 255: *o = mk("Organizational-Signature", 0, true, K_SIG); return true;
        default: break;
        }
        if (fid >= 200 && fid <= 211) {
            *o = mk(org_host_names[fid - 200], 2, true, K_TEXT);
            return true;
        }
        return common_spec(fid, o);
    }
    if (type == DC_SIGNET_SSR) {
        /* A signing request carries keys and the two user-side signatures only. */
        switch (fid) {
        case 1: *o = mk("User-Signing-Key", 1, true, K_SIGNKEY); return true;
        case 2: *o = mk("User-Encryption-Key", keyw, true, K_ENC); return true;
        case 3: *o = mk("User-Alternate-Encryption-Key", 1, false, K_ALTENC); return true;
        case 4: *o = mk("User-Custody-Signature", 0, true, K_SIG); return true;
        case 5: *o = mk("User-Ssr-Signature", 0, true, K_SIG); return true;
        default: return false;
        }
    }
    if (type != DC_SIGNET_USER)
        return false;
    switch (fid) {
    case 1: *o = mk("Signing-Key", 1, true, K_SIGNKEY); return true;
    case 2: *o = mk("Encryption-Key", keyw, true, K_ENC); return true;
    case 3: *o = mk("Alternate-Encryption-Key", keyw, false, K_ALTENC); return true;
    case 4: *o = mk("Custody-Signature", 0, true, K_SIG); return true;
    case 5: *o = mk("User-Signature", 0, true, K_SIG); return true;
    case 6: *o = mk("Organizational-Signature", 0, true, K_SIG); return true;
    case 160: break;
    case 200: *o = mk("Alternate-Address", 2, true, K_TEXT); return true;
    case 201: *o = mk("Resume", 2, true, K_TEXT); return true;
    case 202: *o = mk("Endorsements", 2, false, K_TEXT); return true; /* repeatable */
    case 253: *o = mk("Organizational-Signature", 0, true, K_SIG); return true;
    case 255: *o = mk("Organizational-Signature", 0, true, K_SIG); return true;
    default: break;
    }
    if (fid >= 93 && fid <= 99) {
        *o = mk(user_profile_names[fid - 93], 1, true, K_TEXT);
        return true;
    }
    return common_spec(fid, o);
}

static bool is_signet_type(unsigned magic)
{
    return magic == DC_SIGNET_SSR || magic == DC_SIGNET_ORG || magic == DC_SIGNET_USER;
}

static unsigned enc_fid(enum dc_signet_type t)
{
    return t == DC_SIGNET_ORG ? DC_FID_ORG_ENC : DC_FID_USER_ENC;
}

const char *dc_signet_type_name(enum dc_signet_type type)
{
    switch (type) {
    case DC_SIGNET_SSR: return "SSR";
    case DC_SIGNET_ORG: return "organizational";
    case DC_SIGNET_USER: return "user";
    }
    return "unknown";
}

const char *dc_signet_state_name(enum dc_signet_state st)
{
    switch (st) {
    case DC_SS_MALFORMED: return "malformed";
    case DC_SS_INCOMPLETE: return "incomplete";
    case DC_SS_INVALID: return "invalid";
    case DC_SS_BROKEN_COC: return "broken chain of custody";
    case DC_SS_SSR: return "SSR";
    case DC_SS_CRYPTO: return "crypto";
    case DC_SS_FULL: return "full";
    case DC_SS_ID: return "ID";
    }
    return "unknown";
}

const char *dc_variant_name(enum dc_variant v)
{
    switch (v) {
    case DC_VARIANT_LIBDIME: return "A (libdime)";
    case DC_VARIANT_MAGMA: return "B (magma)";
    case DC_VARIANT_PRIME: return "C (PRIME)";
    }
    return "unknown";
}

const char *dc_signet_field_name(enum dc_signet_type type, uint8_t fid)
{
    struct fspec fs;
    return field_spec(type, DC_VARIANT_LIBDIME, fid, &fs) ? fs.name : NULL;
}

/* ---- indexing (the parser proper) ---- */

static bool has_nul(const uint8_t *p, size_t n)
{
    return n > 0 && memchr(p, 0, n) != NULL;
}

/* Validates the bytes of one field according to its kind. */
static enum dc_status check_field_data(enum dc_variant v, unsigned fid, const struct fspec *fs,
                                       const uint8_t *d, size_t n, struct dc_err *err)
{
    struct dc_err e2;
    switch (fs->kind) {
    case K_SIGNKEY:
        if (v == DC_VARIANT_PRIME) {
            if (n != DC_ED25519_PUB_LEN)
                return dc_fail(err, DC_ERR_FIELD, "signing key (fid 1) is %zu bytes; the "
                               "PRIME variant stores a raw 32-byte key", n);
            return DC_OK;
        }
        if (n != 1 + DC_ED25519_PUB_LEN)
            return dc_fail(err, DC_ERR_FIELD, "signing key (fid 1) is %zu bytes; expected 33 "
                           "(format byte 0x40 + 32-byte Ed25519 key)", n);
        if (d[0] != SIGNKEY_FMT)
            return dc_fail(err, DC_ERR_KEY, "signing key (fid 1) has format byte 0x%02x; "
                           "only 0x40 is defined", d[0]);
        return DC_OK;
    case K_SOK:
        if (n != 2 + DC_ED25519_PUB_LEN)
            return dc_fail(err, DC_ERR_FIELD, "SOK (fid 2) is %zu bytes; expected 34 "
                           "(permissions + 0x40 + 32-byte key)", n);
        if (d[1] != SIGNKEY_FMT)
            return dc_fail(err, DC_ERR_KEY, "SOK (fid 2) has format byte 0x%02x; only 0x40 "
                           "is defined", d[1]);
        return DC_OK;
    case K_ENC:
        if (dc_secp_pub_check(d, n, &e2) != DC_OK)
            return dc_fail(err, DC_ERR_KEY, "encryption key (fid %u) is invalid: %s", fid,
                           e2.msg);
        return DC_OK;
    case K_SIG:
        return DC_OK; /* fixed size, checked by the caller */
    case K_ALTENC:
    case K_PHOTO:
        if (n == 0)
            return dc_fail(err, DC_ERR_FIELD, "field %u (%s) is empty", fid, fs->name);
        return DC_OK;
    case K_TEXT:
        if (n == 0)
            return dc_fail(err, DC_ERR_FIELD, "field %u (%s) is empty", fid, fs->name);
        if (has_nul(d, n))
            return dc_fail(err, DC_ERR_FIELD, "text field %u (%s) contains a NUL byte", fid,
                           fs->name);
        return DC_OK;
    case K_UNDEF:
        break; /* handled by the caller (two parts) */
    }
    return DC_OK;
}

/* Guesses the variant from the first bytes; the full walk then checks it. The signing key's
 * length tells raw (C, 0x20) from prefixed (A/B, 0x21); A and B differ in the encryption key
 * length width, whose first byte is 0x00 only in A (a 33-byte key needs a 1-byte value). */
static enum dc_status detect_variant(enum dc_signet_type type, const uint8_t *p, size_t n,
                                     enum dc_variant *v, struct dc_err *err)
{
    if (p[0] != 1)
        return dc_fail(err, DC_ERR_FIELD, "first field is fid %u; a signet starts with its "
                       "signing key (fid 1)", p[0]);
    if (n < 2)
        return dc_fail(err, DC_ERR_TRUNCATED, "field 1 (signing key): length prefix "
                       "truncated at payload offset 1");
    if (p[1] == DC_ED25519_PUB_LEN) {
        *v = DC_VARIANT_PRIME;
        return DC_OK;
    }
    if (p[1] != DC_ED25519_PUB_LEN + 1)
        return dc_fail(err, DC_ERR_FIELD, "signing key (fid 1) has length %u; expected 33 "
                       "(0x40-prefixed) or 32 (raw, PRIME)", p[1]);
    *v = DC_VARIANT_LIBDIME;
    size_t off = 2 + (size_t)p[1];
    /* Org SOKs (1-byte length in every variant) may sit between the POK and the key. */
    while (type == DC_SIGNET_ORG && off + 1 < n && p[off] == DC_FID_ORG_SOK)
        off += 2 + (size_t)p[off + 1];
    if (off + 1 < n && p[off] == enc_fid(type) && p[off + 1] != 0)
        *v = DC_VARIANT_MAGMA;
    return DC_OK;
}

static void add_index(struct dc_signet *s, size_t *cap, const struct dc_signet_field *f)
{
    if (s->nfields == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        s->fields = dc_xrealloc(s->fields, *cap * sizeof(*s->fields));
    }
    s->fields[s->nfields++] = *f;
}

/* Builds s->fields from s->bin (whose header was already checked). allow_empty marks a
 * signet under construction: its payload may be empty or lack fid 1. On failure s->fields
 * is left empty. */
static enum dc_status index_fields(struct dc_signet *s, bool allow_empty, struct dc_err *err)
{
    const uint8_t *p = s->bin + HDR_LEN;
    size_t n = s->bin_len - HDR_LEN, off = 0, cap = 0;
    enum dc_status st;
    free(s->fields);
    s->fields = NULL;
    s->nfields = 0;
    if (n == 0) {
        if (!allow_empty)
            return dc_fail(err, DC_ERR_TRUNCATED, "%s signet has an empty payload",
                           dc_signet_type_name(s->type));
        return DC_OK;
    }
    /* A signet under construction keeps the variant it was built in (and may not have its
     * signing key yet); received bytes are classified by their first fields. */
    if (!allow_empty && (st = detect_variant(s->type, p, n, &s->variant, err)) != DC_OK)
        return st;
    int prev = -1;
    while (off < n) {
        struct dc_signet_field f = {0};
        struct fspec fs;
        f.start = off;
        f.fid = p[off++];
        if (!field_spec(s->type, s->variant, f.fid, &fs)) {
            if (s->type == DC_SIGNET_SSR)
                st = dc_fail(err, DC_ERR_FIELD, "an SSR may contain only fids 1-5; found fid "
                             "%u at payload offset %zu", f.fid, f.start);
            else if (s->variant == DC_VARIANT_PRIME)
                st = dc_fail(err, DC_ERR_FIELD, "fid %u at payload offset %zu is not allowed "
                             "in a PRIME (variant C) %s signet", f.fid, f.start,
                             dc_signet_type_name(s->type));
            else
                st = dc_fail(err, DC_ERR_FIELD, "unknown fid %u at payload offset %zu: not "
                             "defined for %s signets", f.fid, f.start,
                             dc_signet_type_name(s->type));
            goto fail;
        }
        if ((int)f.fid < prev) {
            st = dc_fail(err, DC_ERR_ORDER, "fid %u at payload offset %zu follows fid %d: "
                         "fields out of order", f.fid, f.start, prev);
            goto fail;
        }
        if ((int)f.fid == prev && fs.unique) {
            st = dc_fail(err, DC_ERR_ORDER, "unique field %u (%s) repeated at payload offset "
                         "%zu", f.fid, fs.name, f.start);
            goto fail;
        }
        if (fs.width == 0) {
            if (n - off < SIG_LEN) {
                st = dc_fail(err, DC_ERR_TRUNCATED, "field %u (%s): signature truncated, %zu "
                             "of 64 bytes present", f.fid, fs.name, n - off);
                goto fail;
            }
            f.len = SIG_LEN;
        } else if (fs.width > 0) {
            if (n - off < (size_t)fs.width) {
                st = dc_fail(err, DC_ERR_TRUNCATED, "field %u (%s): length prefix truncated",
                             f.fid, fs.name);
                goto fail;
            }
            f.len = dc_get_be(p + off, (unsigned)fs.width);
            off += (size_t)fs.width;
            if (f.len > n - off) {
                st = dc_fail(err, DC_ERR_FORMAT, "field %u (%s) declares %zu bytes but only "
                             "%zu remain in the payload", f.fid, fs.name, f.len, n - off);
                goto fail;
            }
        } else {
            /* fid 251: name length (1), name, data length (2), data. */
            if (n - off < 1) {
                st = dc_fail(err, DC_ERR_TRUNCATED, "field 251 (undefined): name length "
                             "truncated");
                goto fail;
            }
            f.name_len = p[off++];
            if (f.name_len > n - off) {
                st = dc_fail(err, DC_ERR_FORMAT, "field 251 (undefined) declares a %zu-byte "
                             "name but only %zu bytes remain in the payload", f.name_len,
                             n - off);
                goto fail;
            }
            f.name = p + off;
            off += f.name_len;
            if (f.name_len == 0 || has_nul(f.name, f.name_len)) {
                st = dc_fail(err, DC_ERR_FIELD, "field 251 (undefined) has an empty name or "
                             "a name containing NUL");
                goto fail;
            }
            if (n - off < 2) {
                st = dc_fail(err, DC_ERR_TRUNCATED, "field 251 (undefined): data length "
                             "truncated");
                goto fail;
            }
            f.len = dc_get_be(p + off, 2);
            off += 2;
            if (f.len > n - off) {
                st = dc_fail(err, DC_ERR_FORMAT, "field 251 (undefined) declares %zu data "
                             "bytes but only %zu remain in the payload", f.len, n - off);
                goto fail;
            }
            if (f.len == 0 || has_nul(p + off, f.len)) {
                st = dc_fail(err, DC_ERR_FIELD, "field 251 (undefined) has empty data or "
                             "data containing NUL");
                goto fail;
            }
        }
        f.data = p + off;
        off += f.len;
        f.end = off;
        if ((st = check_field_data(s->variant, f.fid, &fs, f.data, f.len, err)) != DC_OK)
            goto fail;
        add_index(s, &cap, &f);
        prev = f.fid;
    }
    return DC_OK;
fail:
    free(s->fields);
    s->fields = NULL;
    s->nfields = 0;
    return st;
}

static enum dc_status check_header(const uint8_t *bin, size_t len, struct dc_err *err)
{
    if (len < HDR_LEN)
        return dc_fail(err, DC_ERR_TRUNCATED, "truncated header: %zu of 5 bytes", len);
    unsigned magic = dc_get_be(bin, 2);
    if (!is_signet_type(magic))
        return dc_fail(err, DC_ERR_MAGIC, "wrong magic %u (0x%04x): not a signet (1215 SSR, "
                       "1776 org, 1789 user)", magic, magic);
    size_t hlen = dc_get_be(bin + 2, 3);
    if (hlen > len - HDR_LEN)
        return dc_fail(err, DC_ERR_TRUNCATED, "header length says %zu payload bytes but only "
                       "%zu are present", hlen, len - HDR_LEN);
    if (hlen < len - HDR_LEN)
        return dc_fail(err, DC_ERR_FORMAT, "header length says %zu payload bytes but %zu are "
                       "present (trailing data)", hlen, len - HDR_LEN);
    return DC_OK;
}

enum dc_status dc_signet_parse(const uint8_t *bin, size_t len, struct dc_signet **out,
                               struct dc_err *err)
{
    if (bin == NULL || out == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_signet_parse: NULL argument");
    enum dc_status st = check_header(bin, len, err);
    if (st != DC_OK)
        return st;
    struct dc_signet *s = dc_xcalloc(1, sizeof(*s));
    s->type = (enum dc_signet_type)dc_get_be(bin, 2);
    s->variant = DC_VARIANT_LIBDIME;
    s->bin = dc_xmalloc(len);
    memcpy(s->bin, bin, len);
    s->bin_len = len;
    if ((st = index_fields(s, false, err)) != DC_OK) {
        dc_signet_free(s);
        return st;
    }
    *out = s;
    return DC_OK;
}

static enum dc_status parse_armor(const uint8_t *data, size_t len, struct dc_signet **out,
                                  struct dc_err *err)
{
    char tag[DC_ARMOR_TAG_MAX];
    uint8_t *bin = NULL;
    size_t blen = 0;
    enum dc_status st = dc_armor_decode((const char *)data, len, tag, &bin, &blen, err);
    if (st != DC_OK)
        return st;
    /* The type comes from the magic, as in libdime; the tag only has to be a signet tag
     * (libdime armors SSRs as ORGANIZATIONAL SIGNET, PRIME as SIGNET SIGNING REQUEST). */
    if (strcmp(tag, DC_TAG_ORG_SIGNET) != 0 && strcmp(tag, DC_TAG_USER_SIGNET) != 0 &&
        strcmp(tag, DC_TAG_SSR) != 0)
        st = dc_fail(err, DC_ERR_MAGIC, "armor tag \"%s\" is not a signet tag", tag);
    else
        st = dc_signet_parse(bin, blen, out, err);
    free(bin);
    return st;
}

enum dc_status dc_signet_load(const uint8_t *data, size_t len, struct dc_signet **out,
                              struct dc_err *err)
{
    if (data == NULL || out == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_signet_load: NULL argument");
    if (dc_armor_detect(data, len))
        return parse_armor(data, len, out, err);
    return dc_signet_parse(data, len, out, err);
}

enum dc_status dc_signet_load_file(const char *path, struct dc_signet **out, struct dc_err *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    enum dc_status st = dc_read_file(path, LOAD_MAX, &buf, &len, err);
    if (st != DC_OK)
        return st;
    struct dc_err e2;
    st = dc_signet_load(buf, len, out, &e2);
    if (st != DC_OK)
        dc_fail(err, st, "%s: %s", path, e2.msg);
    free(buf);
    return st;
}

char *dc_signet_b64(const struct dc_signet *s)
{
    return dc_b64_encode_alloc(s->bin, s->bin_len, 1);
}

enum dc_status dc_signet_from_b64(const char *b64, size_t len, struct dc_signet **out,
                                  struct dc_err *err)
{
    if (b64 == NULL || out == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_signet_from_b64: NULL argument");
    if (len / 4 * 3 > DC_ARMOR_BIN_MAX + 3)
        return dc_fail(err, DC_ERR_LIMIT, "base64 signet exceeds the largest signet");
    uint8_t *bin = dc_xmalloc(dc_b64_dec_max(len) + 1);
    size_t blen = 0;
    struct dc_err e2;
    enum dc_status st = dc_b64_decode(b64, len, bin, &blen, &e2);
    if (st != DC_OK)
        st = dc_fail(err, DC_ERR_BASE64, "signet base64: %s", e2.msg);
    else
        st = dc_signet_parse(bin, blen, out, err);
    free(bin);
    return st;
}

char *dc_signet_armor(const struct dc_signet *s)
{
    /* libdime's quirk: SSRs are armored with the ORGANIZATIONAL SIGNET tag. */
    const char *tag = s->type == DC_SIGNET_USER ? DC_TAG_USER_SIGNET : DC_TAG_ORG_SIGNET;
    return dc_armor_encode(tag, s->bin, s->bin_len);
}

struct dc_signet *dc_signet_dup(const struct dc_signet *s)
{
    struct dc_signet *d = dc_xcalloc(1, sizeof(*d));
    d->type = s->type;
    d->variant = s->variant;
    d->bin = dc_xmalloc(s->bin_len);
    memcpy(d->bin, s->bin, s->bin_len);
    d->bin_len = s->bin_len;
    if (s->nfields > 0) {
        /* Same layout, pointers moved to the new copy of the bytes. */
        d->fields = dc_xmalloc(s->nfields * sizeof(*d->fields));
        d->nfields = s->nfields;
        for (size_t i = 0; i < s->nfields; i++) {
            d->fields[i] = s->fields[i];
            d->fields[i].data = d->bin + (s->fields[i].data - s->bin);
            if (s->fields[i].name != NULL)
                d->fields[i].name = d->bin + (s->fields[i].name - s->bin);
        }
    }
    return d;
}

void dc_signet_free(struct dc_signet *s)
{
    if (s == NULL)
        return;
    free(s->bin);
    free(s->fields);
    free(s);
}

/* ---- access ---- */

const struct dc_signet_field *dc_signet_field(const struct dc_signet *s, uint8_t fid,
                                              size_t idx)
{
    for (size_t i = 0; i < s->nfields; i++)
        if (s->fields[i].fid == fid && idx-- == 0)
            return &s->fields[i];
    return NULL;
}

enum dc_status dc_signet_signing_key(const struct dc_signet *s, uint8_t pub[DC_ED25519_PUB_LEN],
                                     struct dc_err *err)
{
    const struct dc_signet_field *f = dc_signet_field(s, 1, 0);
    if (f == NULL)
        return dc_fail(err, DC_ERR_NOTFOUND, "%s signet has no signing key (fid 1)",
                       dc_signet_type_name(s->type));
    /* The parser guaranteed 32 raw bytes (C) or 0x40 + 32 bytes (A/B). */
    memcpy(pub, f->data + (f->len - DC_ED25519_PUB_LEN), DC_ED25519_PUB_LEN);
    return DC_OK;
}

enum dc_status dc_signet_enc_key(const struct dc_signet *s, uint8_t pub[DC_SECP_PUB_LEN],
                                 struct dc_err *err)
{
    unsigned fid = enc_fid(s->type);
    const struct dc_signet_field *f = dc_signet_field(s, (uint8_t)fid, 0);
    if (f == NULL)
        return dc_fail(err, DC_ERR_NOTFOUND, "%s signet has no encryption key (fid %u)",
                       dc_signet_type_name(s->type), fid);
    enum dc_status st = dc_secp_pub_check(f->data, f->len, err);
    if (st != DC_OK)
        return st;
    memcpy(pub, f->data, DC_SECP_PUB_LEN);
    return DC_OK;
}

size_t dc_signet_soks(const struct dc_signet *s, struct dc_sok *out, size_t max)
{
    size_t n = 0;
    if (s->type != DC_SIGNET_ORG)
        return 0;
    for (size_t i = 0; i < s->nfields; i++) {
        const struct dc_signet_field *f = &s->fields[i];
        if (f->fid != DC_FID_ORG_SOK)
            continue;
        if (n < max && out != NULL) {
            out[n].perm = f->data[0];
            memcpy(out[n].pub, f->data + 2, DC_ED25519_PUB_LEN);
        }
        n++;
    }
    return n;
}

char *dc_signet_id(const struct dc_signet *s)
{
    const struct dc_signet_field *f = dc_signet_field(s, DC_FID_ID, 0);
    return f == NULL ? NULL : dc_xstrndup((const char *)f->data, f->len);
}

/* ---- fingerprints ---- */

/* Offset of the first field with fid >= fid (the payload length when there is none): the
 * end of the prefix that a signature in field fid covers. */
static size_t prefix_before(const struct dc_signet *s, unsigned fid)
{
    for (size_t i = 0; i < s->nfields; i++)
        if (s->fields[i].fid >= fid)
            return s->fields[i].start;
    return s->bin_len - HDR_LEN;
}

enum dc_status dc_signet_fingerprint(const struct dc_signet *s, enum dc_fp_kind kind,
                                     char out[DC_FP_B64_LEN + 1], struct dc_err *err)
{
    unsigned through;
    switch (kind) {
    case DC_FP_SSR:
        if (s->type == DC_SIGNET_ORG)
            return dc_fail(err, DC_ERR_NOTFOUND, "an org signet has no SSR fingerprint");
        through = DC_FID_USER_SSR;
        break;
    case DC_FP_CRYPTO:
        if (s->type == DC_SIGNET_SSR)
            return dc_fail(err, DC_ERR_NOTFOUND, "an SSR has no crypto fingerprint");
        through = s->type == DC_SIGNET_ORG ? DC_FID_ORG_CRYPTO : DC_FID_USER_CRYPTO;
        break;
    case DC_FP_FULL: through = DC_FID_FULL; break;
    case DC_FP_ID: through = DC_FID_IDSIG; break;
    default: return dc_fail(err, DC_ERR_ARG, "unknown fingerprint kind %d", (int)kind);
    }
    /* A part is reached when the signature that closes it is present. */
    if (dc_signet_field(s, (uint8_t)through, 0) == NULL)
        return dc_fail(err, DC_ERR_NOTFOUND, "signet has no fid %u, so it does not reach that "
                       "fingerprint's part", through);
    size_t n = through == 255 ? s->bin_len - HDR_LEN : prefix_before(s, through + 1);
    uint8_t h[DC_SHA512_LEN];
    dc_sha512(s->bin + HDR_LEN, n, h);
    dc_b64_encode(h, sizeof(h), out, 0);
    return DC_OK;
}

/* ---- building ---- */

struct dc_signet *dc_signet_new(enum dc_signet_type type)
{
    struct dc_signet *s = dc_xcalloc(1, sizeof(*s));
    s->type = type;
    s->variant = DC_VARIANT_LIBDIME;
    s->bin = dc_xcalloc(1, HDR_LEN);
    s->bin_len = HDR_LEN;
    s->bin[0] = (uint8_t)((unsigned)type >> 8);
    s->bin[1] = (uint8_t)type;
    return s;
}

static void put_header(uint8_t *bin, enum dc_signet_type type, size_t payload)
{
    bin[0] = (uint8_t)((unsigned)type >> 8);
    bin[1] = (uint8_t)type;
    bin[2] = (uint8_t)(payload >> 16);
    bin[3] = (uint8_t)(payload >> 8);
    bin[4] = (uint8_t)payload;
}

/* Replaces payload bytes [at, at) with enc (an insertion) and re-indexes. On failure the
 * signet is restored. */
static enum dc_status splice(struct dc_signet *s, size_t at, const uint8_t *enc, size_t elen,
                             struct dc_err *err)
{
    size_t plen = s->bin_len - HDR_LEN;
    if (elen > PAYLOAD_MAX - plen)
        return dc_fail(err, DC_ERR_LIMIT, "signet payload would exceed 16777215 bytes");
    uint8_t *nb = dc_xmalloc(s->bin_len + elen);
    memcpy(nb, s->bin, HDR_LEN + at);
    memcpy(nb + HDR_LEN + at, enc, elen);
    memcpy(nb + HDR_LEN + at + elen, s->bin + HDR_LEN + at, plen - at);
    put_header(nb, s->type, plen + elen);
    uint8_t *old = s->bin;
    size_t oldlen = s->bin_len;
    s->bin = nb;
    s->bin_len = oldlen + elen;
    enum dc_status st = index_fields(s, true, err);
    if (st != DC_OK) {
        s->bin = old;
        s->bin_len = oldlen;
        free(nb);
        struct dc_err ignore;
        index_fields(s, true, &ignore);
        return st;
    }
    free(old);
    return DC_OK;
}

/* Refusals shared by every insertion at fid: repeats of unique fields and insertions that
 * would land below an existing signature (whose coverage they would change). */
static enum dc_status check_insert(const struct dc_signet *s, unsigned fid,
                                   const struct fspec *fs, struct dc_err *err)
{
    for (size_t i = 0; i < s->nfields; i++) {
        const struct dc_signet_field *f = &s->fields[i];
        struct fspec other;
        if (f->fid == fid && fs->unique)
            return dc_fail(err, DC_ERR_ORDER, "unique field %u (%s) is already present",
                           fid, fs->name);
        if (f->fid > fid && field_spec(s->type, s->variant, f->fid, &other) &&
            other.kind == K_SIG)
            return dc_fail(err, DC_ERR_ORDER, "adding fid %u would invalidate the signature "
                           "in fid %u; truncate the signet first", fid, f->fid);
    }
    return DC_OK;
}

enum dc_status dc_signet_add_field(struct dc_signet *s, uint8_t fid, const uint8_t *data,
                                   size_t len, struct dc_err *err)
{
    struct fspec fs;
    enum dc_status st;
    if (s == NULL || (data == NULL && len > 0))
        return dc_fail(err, DC_ERR_ARG, "dc_signet_add_field: NULL argument");
    if (!field_spec(s->type, s->variant, fid, &fs))
        return dc_fail(err, DC_ERR_FIELD, "fid %u is not defined for %s signets (%s)", fid,
                       dc_signet_type_name(s->type), dc_variant_name(s->variant));
    if (fs.kind == K_UNDEF)
        return dc_fail(err, DC_ERR_ARG, "fid 251 is added with dc_signet_add_undefined");
    if ((st = check_insert(s, fid, &fs, err)) != DC_OK)
        return st;
    if (fs.width == 0 && len != SIG_LEN)
        return dc_fail(err, DC_ERR_FIELD, "field %u (%s) is a 64-byte signature, got %zu "
                       "bytes", fid, fs.name, len);
    if (fs.width > 0 && len > (((size_t)1 << (8 * fs.width)) - 1))
        return dc_fail(err, DC_ERR_LIMIT, "field %u (%s): %zu bytes do not fit its %d-byte "
                       "length", fid, fs.name, len, fs.width);
    if ((st = check_field_data(s->variant, fid, &fs, data, len, err)) != DC_OK)
        return st;
    size_t w = fs.width > 0 ? (size_t)fs.width : 0;
    if (len > PAYLOAD_MAX)
        return dc_fail(err, DC_ERR_LIMIT, "field %u is larger than a signet payload", fid);
    uint8_t *enc = dc_xmalloc(1 + w + len);
    enc[0] = fid;
    for (size_t i = 0; i < w; i++)
        enc[1 + i] = (uint8_t)(len >> (8 * (w - 1 - i)));
    if (len > 0)
        memcpy(enc + 1 + w, data, len);
    st = splice(s, prefix_before(s, fid + 1u), enc, 1 + w + len, err);
    free(enc);
    return st;
}

enum dc_status dc_signet_add_undefined(struct dc_signet *s, const char *name, const uint8_t *data,
                                       size_t len, struct dc_err *err)
{
    struct fspec fs;
    enum dc_status st;
    if (s == NULL || name == NULL || data == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_signet_add_undefined: NULL argument");
    if (!field_spec(s->type, s->variant, DC_FID_UNDEFINED, &fs))
        return dc_fail(err, DC_ERR_FIELD, "%s signets (%s) cannot hold undefined fields",
                       dc_signet_type_name(s->type), dc_variant_name(s->variant));
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > 255)
        return dc_fail(err, DC_ERR_LIMIT, "undefined field name must be 1-255 bytes, is %zu",
                       nlen);
    if (len == 0 || len > 0xFFFF)
        return dc_fail(err, DC_ERR_LIMIT, "undefined field data must be 1-65535 bytes, is %zu",
                       len);
    if (has_nul(data, len))
        return dc_fail(err, DC_ERR_FIELD, "undefined field data contains a NUL byte");
    if ((st = check_insert(s, DC_FID_UNDEFINED, &fs, err)) != DC_OK)
        return st;
    size_t elen = 1 + 1 + nlen + 2 + len;
    uint8_t *enc = dc_xmalloc(elen);
    enc[0] = DC_FID_UNDEFINED;
    enc[1] = (uint8_t)nlen;
    memcpy(enc + 2, name, nlen);
    enc[2 + nlen] = (uint8_t)(len >> 8);
    enc[3 + nlen] = (uint8_t)len;
    memcpy(enc + 4 + nlen, data, len);
    st = splice(s, prefix_before(s, DC_FID_UNDEFINED + 1u), enc, elen, err);
    free(enc);
    return st;
}

enum dc_status dc_signet_set_id(struct dc_signet *s, const char *id, struct dc_err *err)
{
    if (s == NULL || id == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_signet_set_id: NULL argument");
    return dc_signet_add_field(s, DC_FID_ID, (const uint8_t *)id, strlen(id), err);
}

enum dc_status dc_signet_sign(struct dc_signet *s, uint8_t sigfid, const struct dc_signer *signer,
                              struct dc_err *err)
{
    struct fspec fs;
    enum dc_status st;
    if (s == NULL || signer == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_signet_sign: NULL argument");
    if (!field_spec(s->type, s->variant, sigfid, &fs) || fs.kind != K_SIG)
        return dc_fail(err, DC_ERR_FIELD, "fid %u is not a signature field of %s signets",
                       sigfid, dc_signet_type_name(s->type));
    if ((st = check_insert(s, sigfid, &fs, err)) != DC_OK)
        return st;
    if (s->nfields == 0)
        return dc_fail(err, DC_ERR_FIELD, "nothing to sign: the signet is empty");
    uint8_t sig[SIG_LEN];
    st = dc_signer_sign(signer, s->bin + HDR_LEN, prefix_before(s, sigfid), sig, err);
    if (st != DC_OK)
        return st;
    return dc_signet_add_field(s, sigfid, sig, SIG_LEN, err);
}

void dc_signet_truncate(struct dc_signet *s, uint8_t from)
{
    size_t cut = prefix_before(s, from);
    s->bin_len = HDR_LEN + cut;
    put_header(s->bin, s->type, cut);
    struct dc_err ignore;
    /* Cutting at a field boundary of a valid signet keeps it valid. */
    index_fields(s, true, &ignore);
}

static enum dc_status add_signkey(struct dc_signet *s, const uint8_t pub[DC_ED25519_PUB_LEN],
                                  struct dc_err *err)
{
    uint8_t f[1 + DC_ED25519_PUB_LEN];
    f[0] = SIGNKEY_FMT;
    memcpy(f + 1, pub, DC_ED25519_PUB_LEN);
    return dc_signet_add_field(s, 1, f, sizeof(f), err);
}

enum dc_status dc_signet_org_create(const struct dc_sign_key *pok,
                                    const uint8_t encpub[DC_SECP_PUB_LEN],
                                    struct dc_signet **out, struct dc_err *err)
{
    if (pok == NULL || encpub == NULL || out == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_signet_org_create: NULL argument");
    struct dc_signet *s = dc_signet_new(DC_SIGNET_ORG);
    struct dc_signer signer;
    dc_signer_local(&signer, pok);
    enum dc_status st = add_signkey(s, pok->pub, err);
    if (st == DC_OK)
        st = dc_signet_add_field(s, DC_FID_ORG_ENC, encpub, DC_SECP_PUB_LEN, err);
    if (st == DC_OK)
        st = dc_signet_sign(s, DC_FID_ORG_CRYPTO, &signer, err);
    if (st != DC_OK) {
        dc_signet_free(s);
        return st;
    }
    *out = s;
    return DC_OK;
}

enum dc_status dc_signet_org_set_soks(const struct dc_signet *org, const struct dc_sok *soks,
                                     size_t n, const struct dc_signer *pok,
                                     struct dc_signet **out, struct dc_err *err)
{
    if (org == NULL || org->type != DC_SIGNET_ORG || (soks == NULL && n > 0) || pok == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_signet_org_set_soks: not an org signet");
    if (n > DC_SIGNET_MAX_SOKS)
        return dc_fail(err, DC_ERR_LIMIT, "%zu SOKs: at most %d", n, DC_SIGNET_MAX_SOKS);
    const struct dc_signet_field *enc = dc_signet_field(org, DC_FID_ORG_ENC, 0);
    if (enc == NULL)
        return dc_fail(err, DC_ERR_FIELD, "the org signet has no encryption key");
    struct dc_signet *s = dc_signet_dup(org);
    if (s == NULL)
        return dc_fail(err, DC_ERR_NOMEM, "cannot copy the signet");
    dc_signet_truncate(s, DC_FID_ORG_SOK); /* keeps the POK only */
    enum dc_status st = DC_OK;
    for (size_t i = 0; st == DC_OK && i < n; i++) {
        uint8_t field[2 + DC_ED25519_PUB_LEN];
        field[0] = soks[i].perm;
        field[1] = SIGNKEY_FMT;
        memcpy(field + 2, soks[i].pub, DC_ED25519_PUB_LEN);
        st = dc_signet_add_field(s, DC_FID_ORG_SOK, field, sizeof(field), err);
    }
    if (st == DC_OK)
        st = dc_signet_add_field(s, DC_FID_ORG_ENC, enc->data, enc->len, err);
    if (st == DC_OK)
        st = dc_signet_sign(s, DC_FID_ORG_CRYPTO, pok, err);
    bool has_full = false;
    for (size_t i = 0; st == DC_OK && i < org->nfields; i++) {
        const struct dc_signet_field *f = &org->fields[i];
        if (f->fid <= DC_FID_ORG_CRYPTO || f->fid == DC_FID_IDSIG)
            continue;
        if (f->fid == DC_FID_FULL) {
            has_full = true;
            st = dc_signet_sign(s, DC_FID_FULL, pok, err);
        } else if (f->fid == DC_FID_ID) {
            if (!has_full) /* keep the published shape: ID only after a full signature */
                st = dc_signet_sign(s, DC_FID_FULL, pok, err);
            has_full = true;
            if (st == DC_OK)
                st = dc_signet_add_field(s, DC_FID_ID, f->data, f->len, err);
            if (st == DC_OK)
                st = dc_signet_sign(s, DC_FID_IDSIG, pok, err);
        } else if (f->fid == DC_FID_UNDEFINED) {
            char *name = dc_xstrndup((const char *)f->name, f->name_len);
            st = dc_signet_add_undefined(s, name, f->data, f->len, err);
            free(name);
        } else {
            st = dc_signet_add_field(s, f->fid, f->data, f->len, err);
        }
    }
    if (st == DC_OK && !has_full)
        st = dc_signet_sign(s, DC_FID_FULL, pok, err);
    if (st != DC_OK) {
        dc_signet_free(s);
        return st;
    }
    *out = s;
    return DC_OK;
}

enum dc_status dc_signet_ssr_create(const struct dc_sign_key *user,
                                    const uint8_t encpub[DC_SECP_PUB_LEN],
                                    const struct dc_sign_key *prev, struct dc_signet **out,
                                    struct dc_err *err)
{
    if (user == NULL || encpub == NULL || out == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_signet_ssr_create: NULL argument");
    struct dc_signet *s = dc_signet_new(DC_SIGNET_SSR);
    struct dc_signer us, ps;
    dc_signer_local(&us, user);
    enum dc_status st = add_signkey(s, user->pub, err);
    if (st == DC_OK)
        st = dc_signet_add_field(s, DC_FID_USER_ENC, encpub, DC_SECP_PUB_LEN, err);
    if (st == DC_OK && prev != NULL) {
        dc_signer_local(&ps, prev);
        st = dc_signet_sign(s, DC_FID_USER_CUSTODY, &ps, err);
    }
    if (st == DC_OK)
        st = dc_signet_sign(s, DC_FID_USER_SSR, &us, err);
    if (st != DC_OK) {
        dc_signet_free(s);
        return st;
    }
    *out = s;
    return DC_OK;
}

/* ---- verification ---- */

/* Short key label for messages: first 8 hex digits. */
static void key_label(const uint8_t pub[DC_ED25519_PUB_LEN], char out[9])
{
    dc_hex_encode(pub, 4, out);
}

static bool sig_valid(const struct dc_signet *s, const struct dc_signet_field *f,
                      const uint8_t pub[DC_ED25519_PUB_LEN])
{
    return dc_ed25519_verify(pub, s->bin + HDR_LEN, f->start, f->data) == DC_OK;
}

bool dc_signet_user_signed_by(const struct dc_signet *user, const uint8_t pub[DC_ED25519_PUB_LEN])
{
    const struct dc_signet_field *f = user != NULL && user->type == DC_SIGNET_USER
                                          ? dc_signet_field(user, DC_FID_USER_CRYPTO, 0)
                                          : NULL;
    return f != NULL && f->len == DC_ED25519_SIG_LEN && sig_valid(user, f, pub);
}

static enum dc_signet_state fail_state(struct dc_err *why, enum dc_signet_state st,
                                       enum dc_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum dc_signet_state fail_state(struct dc_err *why, enum dc_signet_state st,
                                       enum dc_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dc_vfail(why, code, fmt, ap);
    va_end(ap);
    return st;
}

enum dc_signet_state dc_signet_verify_org(const struct dc_signet *org,
                                          const uint8_t (*poks)[DC_ED25519_PUB_LEN],
                                          size_t npoks, struct dc_err *why)
{
    uint8_t pok[DC_ED25519_PUB_LEN];
    char lbl[9];
    if (org == NULL || org->type != DC_SIGNET_ORG)
        return fail_state(why, DC_SS_MALFORMED, DC_ERR_MAGIC, "not an organizational signet");
    if (poks == NULL || npoks == 0)
        return fail_state(why, DC_SS_INVALID, DC_ERR_ARG, "no POK from the DIME record given");
    if (dc_signet_signing_key(org, pok, NULL) != DC_OK)
        return fail_state(why, DC_SS_INCOMPLETE, DC_ERR_FIELD, "org signet has no POK (fid 1)");
    if (dc_signet_field(org, DC_FID_ORG_ENC, 0) == NULL)
        return fail_state(why, DC_SS_INCOMPLETE, DC_ERR_FIELD,
                          "org signet has no encryption key (fid 3)");
    key_label(pok, lbl);
    size_t i;
    /* Only the DNS POK equal to the signet's own POK may vouch for it. */
    for (i = 0; i < npoks; i++)
        if (memcmp(poks[i], pok, DC_ED25519_PUB_LEN) == 0)
            break;
    if (i == npoks)
        return fail_state(why, DC_SS_INVALID, DC_ERR_KEY, "the signet's POK %s... is not among "
                          "the %zu POK(s) of the DIME record", lbl, npoks);
    const struct dc_signet_field *c = dc_signet_field(org, DC_FID_ORG_CRYPTO, 0);
    const struct dc_signet_field *full = dc_signet_field(org, DC_FID_FULL, 0);
    const struct dc_signet_field *idf = dc_signet_field(org, DC_FID_ID, 0);
    const struct dc_signet_field *ids = dc_signet_field(org, DC_FID_IDSIG, 0);
    if (c == NULL)
        return fail_state(why, DC_SS_INCOMPLETE, DC_ERR_FIELD,
                          "org signet has no crypto signature (fid 4)");
    if (ids != NULL && (full == NULL || idf == NULL))
        return fail_state(why, DC_SS_INCOMPLETE, DC_ERR_FIELD, "org signet has an ID "
                          "signature (fid 255) without %s", full == NULL ?
                          "a full signature (fid 253)" : "an identifier (fid 254)");
    if (!sig_valid(org, c, pok))
        return fail_state(why, DC_SS_INVALID, DC_ERR_SIGNATURE, "org crypto signature (fid 4) "
                          "does not verify under the POK %s...", lbl);
    if (full == NULL)
        return DC_SS_CRYPTO;
    if (!sig_valid(org, full, pok))
        return fail_state(why, DC_SS_INVALID, DC_ERR_SIGNATURE, "org full signature (fid 253) "
                          "does not verify under the POK %s...", lbl);
    if (ids == NULL)
        return DC_SS_FULL;
    if (!sig_valid(org, ids, pok))
        return fail_state(why, DC_SS_INVALID, DC_ERR_SIGNATURE, "org ID signature (fid 255) "
                          "does not verify under the POK %s...", lbl);
    return DC_SS_ID;
}

/* Checks the custody signature (fid 4) of a user signet or SSR against prev. Returns
 * DC_SS_SSR when custody is consistent (or not involved), DC_SS_BROKEN_COC otherwise. */
static enum dc_signet_state check_custody(const struct dc_signet *s,
                                          const struct dc_signet *prev, struct dc_err *why)
{
    const struct dc_signet_field *coc = dc_signet_field(s, DC_FID_USER_CUSTODY, 0);
    uint8_t ppub[DC_ED25519_PUB_LEN];
    char lbl[9];
    if (coc == NULL && prev == NULL)
        return DC_SS_SSR;
    if (coc == NULL)
        return fail_state(why, DC_SS_BROKEN_COC, DC_ERR_CUSTODY, "a previous signet was given "
                          "but the %s has no custody signature (fid 4)",
                          dc_signet_type_name(s->type));
    if (prev == NULL)
        return fail_state(why, DC_SS_BROKEN_COC, DC_ERR_CUSTODY, "custody signature (fid 4) "
                          "present but no previous signet given to check it");
    if (dc_signet_signing_key(prev, ppub, NULL) != DC_OK)
        return fail_state(why, DC_SS_BROKEN_COC, DC_ERR_CUSTODY, "the previous signet has no "
                          "signing key (fid 1)");
    key_label(ppub, lbl);
    if (!sig_valid(s, coc, ppub))
        return fail_state(why, DC_SS_BROKEN_COC, DC_ERR_CUSTODY, "custody signature (fid 4) "
                          "does not verify under the previous signet's signing key %s...", lbl);
    return DC_SS_SSR;
}

/* Fid 5 under the signet's own signing key (fids 1-4). */
static enum dc_signet_state check_self(const struct dc_signet *s, struct dc_err *why)
{
    uint8_t upub[DC_ED25519_PUB_LEN];
    char lbl[9];
    if (dc_signet_signing_key(s, upub, NULL) != DC_OK)
        return fail_state(why, DC_SS_INCOMPLETE, DC_ERR_FIELD, "%s has no signing key (fid 1)",
                          dc_signet_type_name(s->type));
    if (dc_signet_field(s, DC_FID_USER_ENC, 0) == NULL)
        return fail_state(why, DC_SS_INCOMPLETE, DC_ERR_FIELD, "%s has no encryption key "
                          "(fid 2)", dc_signet_type_name(s->type));
    const struct dc_signet_field *ssr = dc_signet_field(s, DC_FID_USER_SSR, 0);
    if (ssr == NULL)
        return fail_state(why, DC_SS_INCOMPLETE, DC_ERR_FIELD, "%s has no user signature "
                          "(fid 5)", dc_signet_type_name(s->type));
    key_label(upub, lbl);
    if (!sig_valid(s, ssr, upub))
        return fail_state(why, DC_SS_INVALID, DC_ERR_SIGNATURE, "user signature (fid 5) does "
                          "not verify under the signet's own signing key %s...", lbl);
    return DC_SS_SSR;
}

enum dc_signet_state dc_signet_verify_ssr(const struct dc_signet *ssr,
                                          const struct dc_signet *prev, struct dc_err *why)
{
    if (ssr == NULL || ssr->type != DC_SIGNET_SSR)
        return fail_state(why, DC_SS_MALFORMED, DC_ERR_MAGIC, "not a signet signing request");
    enum dc_signet_state st = check_self(ssr, why);
    if (st != DC_SS_SSR)
        return st;
    /* libdime checks SSR custody against field 5 by mistake; fid 4 is the custody field. */
    return check_custody(ssr, prev, why);
}

/* Does field f verify under a SOK with the SIGNET permission or the org POK? The SOKs come
 * first: dimectl signs user signets with the online SOK (the POK stays offline), and every
 * key tried before the right one is a whole Ed25519 verification. */
static bool org_signed(const struct dc_signet *user, const struct dc_signet_field *f,
                       const struct dc_signet *org)
{
    for (size_t i = 0; i < org->nfields; i++) {
        const struct dc_signet_field *k = &org->fields[i];
        if (k->fid != DC_FID_ORG_SOK || (k->data[0] & DC_SOK_SIGNET) == 0)
            continue;
        if (sig_valid(user, f, k->data + 2))
            return true;
    }
    uint8_t pok[DC_ED25519_PUB_LEN];
    return dc_signet_signing_key(org, pok, NULL) == DC_OK && sig_valid(user, f, pok);
}

enum dc_signet_state dc_signet_verify_user(const struct dc_signet *user,
                                           const struct dc_signet *org,
                                           const struct dc_signet *prev, struct dc_err *why)
{
    if (user == NULL || user->type != DC_SIGNET_USER)
        return fail_state(why, DC_SS_MALFORMED, DC_ERR_MAGIC, "not a user signet");
    if (org == NULL || org->type != DC_SIGNET_ORG)
        return fail_state(why, DC_SS_MALFORMED, DC_ERR_ARG, "no organizational signet given "
                          "to verify the user signet against");
    uint8_t pok[DC_ED25519_PUB_LEN];
    char lbl[9];
    if (dc_signet_signing_key(org, pok, NULL) != DC_OK)
        return fail_state(why, DC_SS_MALFORMED, DC_ERR_FIELD, "the org signet has no POK");
    key_label(pok, lbl);
    enum dc_signet_state st = check_self(user, why);
    if (st != DC_SS_SSR)
        return st;
    const struct dc_signet_field *c = dc_signet_field(user, DC_FID_USER_CRYPTO, 0);
    const struct dc_signet_field *full = dc_signet_field(user, DC_FID_FULL, 0);
    const struct dc_signet_field *idf = dc_signet_field(user, DC_FID_ID, 0);
    const struct dc_signet_field *ids = dc_signet_field(user, DC_FID_IDSIG, 0);
    if (c == NULL)
        return fail_state(why, DC_SS_INCOMPLETE, DC_ERR_FIELD,
                          "user signet has no org crypto signature (fid 6)");
    if (ids != NULL && (full == NULL || idf == NULL))
        return fail_state(why, DC_SS_INCOMPLETE, DC_ERR_FIELD, "user signet has an ID "
                          "signature (fid 255) without %s", full == NULL ?
                          "a full signature (fid 253)" : "an identifier (fid 254)");
    if (!org_signed(user, c, org))
        return fail_state(why, DC_SS_INVALID, DC_ERR_SIGNATURE, "org crypto signature (fid 6) "
                          "verifies under neither the org POK %s... nor any SOK with the "
                          "SIGNET permission", lbl);
    if (full != NULL && !org_signed(user, full, org))
        return fail_state(why, DC_SS_INVALID, DC_ERR_SIGNATURE, "org full signature (fid 253) "
                          "verifies under neither the org POK %s... nor any SOK with the "
                          "SIGNET permission", lbl);
    if (ids != NULL && !org_signed(user, ids, org))
        return fail_state(why, DC_SS_INVALID, DC_ERR_SIGNATURE, "org ID signature (fid 255) "
                          "verifies under neither the org POK %s... nor any SOK with the "
                          "SIGNET permission", lbl);
    if ((st = check_custody(user, prev, why)) != DC_SS_SSR)
        return st;
    return ids != NULL ? DC_SS_ID : full != NULL ? DC_SS_FULL : DC_SS_CRYPTO;
}

enum dc_status dc_signet_ssr_sign(const struct dc_signet *ssr, const struct dc_signet *prev,
                                  const struct dc_signer *org, struct dc_signet **out,
                                  struct dc_err *err)
{
    struct dc_err why;
    if (ssr == NULL || org == NULL || out == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_signet_ssr_sign: NULL argument");
    if (ssr->type != DC_SIGNET_SSR)
        return dc_fail(err, DC_ERR_MAGIC, "dc_signet_ssr_sign needs an SSR, got a %s signet",
                       dc_signet_type_name(ssr->type));
    enum dc_signet_state st = dc_signet_verify_ssr(ssr, prev, &why);
    if (st != DC_SS_SSR)
        return dc_fail(err, st == DC_SS_BROKEN_COC ? DC_ERR_CUSTODY : why.code,
                       "SSR refused (%s): %s", dc_signet_state_name(st), why.msg);
    /* The SSR's bytes are kept as they are (whatever their variant): fid 5 signs them, and
     * the org signature appended after them covers exactly the same prefix. Only the magic
     * changes, as libdime's sgnt_sig_crypto_sign does. */
    struct dc_signet *u = dc_signet_dup(ssr);
    u->type = DC_SIGNET_USER;
    put_header(u->bin, u->type, u->bin_len - HDR_LEN);
    struct dc_err e2;
    enum dc_status s = index_fields(u, false, &e2);
    if (s != DC_OK) {
        /* A variant A SSR's alternate keys (fid 3) use a 1-byte length, a user signet's a
         * 2-byte one: such an SSR cannot become a libdime user signet unchanged. */
        dc_signet_free(u);
        return dc_fail(err, s, "SSR cannot be turned into a user signet: %s", e2.msg);
    }
    if ((s = dc_signet_sign(u, DC_FID_USER_CRYPTO, org, err)) != DC_OK) {
        dc_signet_free(u);
        return s;
    }
    *out = u;
    return DC_OK;
}

enum dc_status dc_signet_fp(const struct dc_signet *s, char fp[DC_FP_B64_LEN + 1],
                            char fp_crypto[DC_FP_B64_LEN + 1], struct dc_err *err)
{
    enum dc_status st = dc_signet_fingerprint(s, DC_FP_CRYPTO, fp_crypto, err);
    if (st != DC_OK)
        return st;
    if (dc_signet_fingerprint(s, DC_FP_ID, fp, NULL) == DC_OK ||
        dc_signet_fingerprint(s, DC_FP_FULL, fp, NULL) == DC_OK)
        return DC_OK;
    memcpy(fp, fp_crypto, DC_FP_B64_LEN + 1);
    return DC_OK;
}
