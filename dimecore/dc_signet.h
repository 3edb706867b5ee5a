/*
 * dc_signet - DIME signets: organizational signets, user signets and signing requests (SSR).
 *
 * Wire format (../shared/spec/signet-mrec.md, PROFILE.md section 1-2): a 5-byte header
 * (u16 magic, u24 payload length) and a payload of fields in non-decreasing fid order.
 * Three variants exist and are all accepted when parsing (the variant seen is reported):
 *   A (libdime): signing keys 0x40 + 32 bytes; encryption key fields with a 2-byte length.
 *   B (magma's copy): like A but every key field has a 1-byte length.
 *   C (PRIME): raw 32-byte signing keys, 1-byte lengths, only fids 1-6.
 * We always write variant A. Fingerprints are computed over the bytes as received.
 *
 * A parsed signet keeps its exact bytes; re-serializing gives them back unchanged.
 */
#ifndef DC_SIGNET_H
#define DC_SIGNET_H

#include "dc_crypto.h"

#include <stdbool.h>

enum dc_signet_type {
    DC_SIGNET_SSR = 1215,
    DC_SIGNET_ORG = 1776,
    DC_SIGNET_USER = 1789,
};

enum dc_variant {
    DC_VARIANT_LIBDIME = 'A',
    DC_VARIANT_MAGMA = 'B',
    DC_VARIANT_PRIME = 'C',
};

/* Verification states, ordered: everything below DC_SS_SSR is a failure. */
enum dc_signet_state {
    DC_SS_MALFORMED = 0, /* structure wrong (should not happen for a parsed signet) */
    DC_SS_INCOMPLETE,    /* required fields or signatures missing */
    DC_SS_INVALID,       /* a signature does not verify */
    DC_SS_BROKEN_COC,    /* chain-of-custody signature missing, unexpected or wrong */
    DC_SS_SSR,           /* a valid signing request (self-signed) */
    DC_SS_CRYPTO,        /* crypto signature verified */
    DC_SS_FULL,          /* crypto and full signatures verified */
    DC_SS_ID,            /* crypto, full and ID signatures verified */
};

/* SOK permission bits (fid 2 of an org signet). */
#define DC_SOK_SIGNET   0x01
#define DC_SOK_MSG      0x02
#define DC_SOK_TLS      0x04
#define DC_SOK_SOFTWARE 0x08

/* Field ids used by name in the code. */
#define DC_FID_ORG_POK      1
#define DC_FID_ORG_SOK      2
#define DC_FID_ORG_ENC      3
#define DC_FID_ORG_CRYPTO   4
#define DC_FID_USER_SIGN    1
#define DC_FID_USER_ENC     2
#define DC_FID_USER_ALT_ENC 3
#define DC_FID_USER_CUSTODY 4
#define DC_FID_USER_SSR     5
#define DC_FID_USER_CRYPTO  6
#define DC_FID_UNDEFINED    251
#define DC_FID_PHOTO        252
#define DC_FID_FULL         253
#define DC_FID_ID           254
#define DC_FID_IDSIG        255

struct dc_signet_field {
    uint8_t fid;
    const uint8_t *name; /* fid 251 only: the field's own name */
    size_t name_len;
    const uint8_t *data; /* points into dc_signet.bin */
    size_t len;
    size_t start; /* offset of the fid byte within the payload (header excluded) */
    size_t end;   /* offset just after the field within the payload */
};

struct dc_signet {
    enum dc_signet_type type;
    enum dc_variant variant;
    uint8_t *bin; /* whole object, 5-byte header included */
    size_t bin_len;
    struct dc_signet_field *fields;
    size_t nfields;
};

struct dc_sok {
    uint8_t perm;
    uint8_t pub[DC_ED25519_PUB_LEN];
};

/* ---- parsing and serialization ---- */

/* Parses a binary signet (header included). Strict: every error is specific (truncated,
 * wrong magic, length mismatch, order/repetition, unknown fid, bad key encoding...). */
enum dc_status dc_signet_parse(const uint8_t *bin, size_t len, struct dc_signet **out,
                               struct dc_err *err);
/* Accepts either armor or binary. */
enum dc_status dc_signet_load(const uint8_t *data, size_t len, struct dc_signet **out,
                              struct dc_err *err);
enum dc_status dc_signet_load_file(const char *path, struct dc_signet **out, struct dc_err *err);
/* Base64 of the binary object (as DMTP's SGNT reply carries it) and back. */
char *dc_signet_b64(const struct dc_signet *s);
enum dc_status dc_signet_from_b64(const char *b64, size_t len, struct dc_signet **out,
                                  struct dc_err *err);
/* Armored text with libdime's tag (ORGANIZATIONAL SIGNET for org signets and SSRs, USER
 * SIGNET for user signets). Caller frees. */
char *dc_signet_armor(const struct dc_signet *s);
struct dc_signet *dc_signet_dup(const struct dc_signet *s);
void dc_signet_free(struct dc_signet *s);

/* ---- access ---- */

/* The idx-th field with this fid (0 = first), or NULL. */
const struct dc_signet_field *dc_signet_field(const struct dc_signet *s, uint8_t fid,
                                              size_t idx);
/* Human name of a field id for a signet type ("Primary-Organizational-Key"...), or NULL. */
const char *dc_signet_field_name(enum dc_signet_type type, uint8_t fid);
const char *dc_signet_type_name(enum dc_signet_type type);
const char *dc_signet_state_name(enum dc_signet_state st);
const char *dc_variant_name(enum dc_variant v);

/* POK (org) or user signing key, decoded from any variant. */
enum dc_status dc_signet_signing_key(const struct dc_signet *s, uint8_t pub[DC_ED25519_PUB_LEN],
                                     struct dc_err *err);
/* Encryption key (org fid 3 / user fid 2): a 33-byte point checked to be on the curve. */
enum dc_status dc_signet_enc_key(const struct dc_signet *s, uint8_t pub[DC_SECP_PUB_LEN],
                                 struct dc_err *err);
/* SOKs of an org signet; returns how many exist (fills at most max). */
size_t dc_signet_soks(const struct dc_signet *s, struct dc_sok *out, size_t max);
/* Signet identifier (fid 254) as a new string, or NULL when absent. */
char *dc_signet_id(const struct dc_signet *s);

/* ---- fingerprints: unpadded base64 of SHA-512 over the payload prefix ---- */

enum dc_fp_kind {
    DC_FP_SSR,    /* through fid 5 */
    DC_FP_CRYPTO, /* through fid 4 (org) or 6 (user) */
    DC_FP_FULL,   /* through fid 253 */
    DC_FP_ID,     /* the whole payload */
};
#define DC_FP_B64_LEN 86
/* DC_ERR_NOTFOUND when the signet does not reach that part (e.g. full fp of a crypto-only
 * signet, SSR fp of an org signet). */
enum dc_status dc_signet_fingerprint(const struct dc_signet *s, enum dc_fp_kind kind,
                                     char out[DC_FP_B64_LEN + 1], struct dc_err *err);
/* The fingerprints a signet is known by: fp is its identity, over the whole signet (the ID
 * fingerprint, else the full one, else the crypto one); fp_crypto covers its keys only. */
enum dc_status dc_signet_fp(const struct dc_signet *s, char fp[DC_FP_B64_LEN + 1],
                            char fp_crypto[DC_FP_B64_LEN + 1], struct dc_err *err);

/* ---- building (always variant A) ---- */

struct dc_signet *dc_signet_new(enum dc_signet_type type);
/* Inserts a defined field at its place in fid order, with the length width libdime uses for
 * this type and fid; refuses unknown fids, repeats of unique fids, oversized data, and
 * additions below an existing signature (which would invalidate it). */
enum dc_status dc_signet_add_field(struct dc_signet *s, uint8_t fid, const uint8_t *data,
                                   size_t len, struct dc_err *err);
enum dc_status dc_signet_add_undefined(struct dc_signet *s, const char *name, const uint8_t *data,
                                       size_t len, struct dc_err *err);
enum dc_status dc_signet_set_id(struct dc_signet *s, const char *id, struct dc_err *err);
/* Adds signature field sigfid (4, 5, 6, 253 or 255): an Ed25519 signature by signer over every
 * payload byte before the first field with fid >= sigfid. */
enum dc_status dc_signet_sign(struct dc_signet *s, uint8_t sigfid, const struct dc_signer *signer,
                              struct dc_err *err);
/* Removes every field with fid >= from (to re-sign after a change). */
void dc_signet_truncate(struct dc_signet *s, uint8_t from);

/* An org signet with POK, encryption key and crypto signature (fids 1, 3, 4). */
enum dc_status dc_signet_org_create(const struct dc_sign_key *pok,
                                    const uint8_t encpub[DC_SECP_PUB_LEN],
                                    struct dc_signet **out, struct dc_err *err);
/* org with exactly the SOKs soks[0..n) (fid 2, in that order, at most DC_SIGNET_MAX_SOKS),
 * re-signed by pok (the signer of the org's POK): keeps the POK, the encryption key, the info
 * fields and the identifier, and makes fids 4, 253 and 255 again. */
#define DC_SIGNET_MAX_SOKS 16
enum dc_status dc_signet_org_set_soks(const struct dc_signet *org, const struct dc_sok *soks,
                                     size_t n, const struct dc_signer *pok,
                                     struct dc_signet **out, struct dc_err *err);
/* A signing request: signing key, encryption key, custody signature by prev (if given,
 * fid 4) and the self signature (fid 5). */
enum dc_status dc_signet_ssr_create(const struct dc_sign_key *user,
                                    const uint8_t encpub[DC_SECP_PUB_LEN],
                                    const struct dc_sign_key *prev, struct dc_signet **out,
                                    struct dc_err *err);
/* Verifies an SSR and turns it into a user signet signed by the org (fid 6). prev is the
 * user's current signet when the SSR is a rotation (its custody signature is checked). */
enum dc_status dc_signet_ssr_sign(const struct dc_signet *ssr, const struct dc_signet *prev,
                                  const struct dc_signer *org, struct dc_signet **out,
                                  struct dc_err *err);

/* ---- verification ---- */

/* Org signet against the POKs of its DNS record (npoks >= 1). Returns the highest state
 * reached; why gets the reason when the result is a failure state. */
enum dc_signet_state dc_signet_verify_org(const struct dc_signet *org,
                                          const uint8_t (*poks)[DC_ED25519_PUB_LEN],
                                          size_t npoks, struct dc_err *why);
/* Whether the org's crypto signature on a user signet (fid 6) was made by the key pub (the
 * POK or a SOK): which of an org's keys vouches for a signet already issued. */
bool dc_signet_user_signed_by(const struct dc_signet *user, const uint8_t pub[DC_ED25519_PUB_LEN]);
/* User signet against its org signet (POK or a SOK with the SIGNET bit) and, when it carries
 * a custody signature, the previous signet (prev may be NULL for a first-generation signet). */
enum dc_signet_state dc_signet_verify_user(const struct dc_signet *user,
                                           const struct dc_signet *org,
                                           const struct dc_signet *prev, struct dc_err *why);
/* SSR self signature, and custody against prev when given or required. */
enum dc_signet_state dc_signet_verify_ssr(const struct dc_signet *ssr,
                                          const struct dc_signet *prev, struct dc_err *why);

#endif
