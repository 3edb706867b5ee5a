/*
 * dc_mrec - the DIME management record published in DNS (TXT at _dime.<domain> and
 * _dx.<domain>), see PROFILE.md section 3 and signet-mrec.md section 11.
 *
 * Text form: tokens separated by spaces, tabs or ';', each `name=value`. Names and enum
 * values are case-insensitive. Known fields (aliases in parentheses):
 *
 *   ver (version)     must be 1                          default 1
 *   pok (primary)     43-char unpadded base64, 32 bytes  repeatable, at least one required
 *   tls               86-char unpadded base64, 64 bytes  repeatable
 *   pol (policy)      experimental | mixed | strict      default experimental
 *   syn (syndicates)  free text, kept as is              optional
 *   dx  (deliver)     LDH host name                      repeatable, order kept
 *   exp (expiry)      days, decimal                      optional
 *   ttl               seconds, decimal (the paper's)     optional
 *   sub (subdomain)   strict | relaxed | explicit        default strict
 *
 * Unknown names are ignored but remembered (see unknown[]). Everything else that is wrong
 * makes the whole record invalid, with an error naming the field and quoting the value.
 */
#ifndef DC_MREC_H
#define DC_MREC_H

#include "dc_crypto.h"
#include "dc_util.h"

#define DC_MREC_VERSION     1
#define DC_MREC_MAX_LEN     4096 /* bytes of record text, after concatenation */
#define DC_MREC_MAX_POK     16
#define DC_MREC_MAX_TLS     16
#define DC_MREC_MAX_DX      16
#define DC_MREC_MAX_UNKNOWN 16   /* unknown tokens kept; more are only counted */
#define DC_MREC_HOST_MAX    253
#define DC_MREC_POK_B64_LEN 43
#define DC_MREC_TLS_B64_LEN 86
#define DC_MREC_CHARSTR_MAX 255  /* one DNS character-string */

enum dc_mrec_policy {
    DC_MREC_POL_EXPERIMENTAL = 0,
    DC_MREC_POL_MIXED = 1,
    DC_MREC_POL_STRICT = 2,
};

enum dc_mrec_subdomain {
    DC_MREC_SUB_STRICT = 0,
    DC_MREC_SUB_RELAXED = 1,
    DC_MREC_SUB_EXPLICIT = 2,
};

struct dc_mrec {
    unsigned version;
    size_t pok_count;
    uint8_t pok[DC_MREC_MAX_POK][DC_ED25519_PUB_LEN];
    size_t tls_count;
    uint8_t tls[DC_MREC_MAX_TLS][DC_ED25519_SIG_LEN];
    enum dc_mrec_policy policy;
    size_t dx_count;
    char *dx[DC_MREC_MAX_DX];       /* malloc'd host names, in record order */
    char *syn;                      /* malloc'd, NULL when absent */
    enum dc_mrec_subdomain subdomain;
    int has_exp;
    uint32_t exp_days;
    int has_ttl;
    uint32_t ttl;
    size_t unknown_count;           /* every unknown token seen */
    char *unknown[DC_MREC_MAX_UNKNOWN]; /* the first ones, as "name=value", malloc'd */
};

/* One DNS character-string as the resolver returns it (not NUL-terminated). */
struct dc_mrec_str {
    const void *ptr;
    size_t len;
};

/* A record with the defaults (ver 1, pol experimental, sub strict) and nothing else. */
struct dc_mrec *dc_mrec_new(void);
void dc_mrec_free(struct dc_mrec *r);

/* Parses the character-strings of one TXT RR, concatenated with no separator. */
enum dc_status dc_mrec_parse(const struct dc_mrec_str *strs, size_t n, struct dc_mrec **out,
                             struct dc_err *err);
/* Splits the RDATA of one TXT RR (length-prefixed character-strings, as a resolver returns
 * it) into at most max strings pointing into rdata. DC_ERR_FORMAT when a length runs past
 * the end, DC_ERR_LIMIT when there are more than max strings. */
enum dc_status dc_mrec_rdata_strings(const uint8_t *rdata, size_t len, struct dc_mrec_str *strs,
                                     size_t max, size_t *n, struct dc_err *err);
/* Parses a single NUL-terminated record text. */
enum dc_status dc_mrec_parse_text(const char *text, struct dc_mrec **out, struct dc_err *err);

/* Builders for the generator side; each checks its argument and the count limits. */
enum dc_status dc_mrec_add_pok(struct dc_mrec *r, const uint8_t pok[DC_ED25519_PUB_LEN],
                               struct dc_err *err);
enum dc_status dc_mrec_add_tls(struct dc_mrec *r, const uint8_t sig[DC_ED25519_SIG_LEN],
                               struct dc_err *err);
enum dc_status dc_mrec_add_dx(struct dc_mrec *r, const char *host, struct dc_err *err);
enum dc_status dc_mrec_set_syn(struct dc_mrec *r, const char *syn, struct dc_err *err);

/* Canonical text: ver=1 pok=.. [pok=..] [tls=..] pol=.. [syn=..] [dx=..] [exp=N] [ttl=N]
 * sub=..  (unknown fields are not written). *out is malloc'd. Fails when the record could
 * not be parsed back (no POK, bad host, unsupported version, ...). */
enum dc_status dc_mrec_generate(const struct dc_mrec *r, char **out, struct dc_err *err);

/* 1 when a and b carry the same fields (unknown fields are not compared), else 0. */
int dc_mrec_equal(const struct dc_mrec *a, const struct dc_mrec *b);

/* Splits len bytes of text into DNS character-strings of at most 255 bytes. *strs is a
 * malloc'd array pointing into text; free it with free(). An empty text gives one empty
 * string. */
void dc_mrec_split(const char *text, size_t len, struct dc_mrec_str **strs, size_t *n);

/* Zone-file TXT RDATA of text: quoted strings of at most 255 bytes each, separated by
 * spaces, with '"' and '\\' escaped and non-printable bytes as \DDD. malloc'd. */
char *dc_mrec_txt_rdata(const char *text, size_t len);

/* The two zone-file lines publishing text for domain, e.g.
 *   _dime.example.org. 3600 IN TXT "ver=1 pok=..."
 *   _dx.example.org. 3600 IN TXT "ver=1 pok=..."
 * each ending in '\n'. domain may carry a final dot. *out is malloc'd. */
enum dc_status dc_mrec_zone_lines(const char *domain, uint32_t ttl, const char *text,
                                  char **out, struct dc_err *err);

/* Checks a DX host name (LDH labels of 1..63 characters, at most 253 characters, an optional
 * final dot). */
enum dc_status dc_mrec_check_host(const char *host, size_t len, const char *what,
                                  struct dc_err *err);

/* tls= helpers. The signed message is SHA-512 of the certificate's DER encoding.
 * verify: DC_OK when some tls signature of r verifies under some POK of r; DC_ERR_NOTFOUND
 * when r has no tls entry; DC_ERR_SIGNATURE when none verifies. *which (may be NULL) gets
 * the index of the matching tls entry. */
enum dc_status dc_mrec_tls_verify(const struct dc_mrec *r, const uint8_t *der, size_t len,
                                  size_t *which, struct dc_err *err);
/* Signs SHA-512(der) with s; sig receives the 64 bytes and, when b64 is not NULL, b64 the
 * 86-character value for a tls= field (87 bytes with the NUL). */
enum dc_status dc_mrec_tls_sign(const struct dc_signer *s, const uint8_t *der, size_t len,
                                uint8_t sig[DC_ED25519_SIG_LEN],
                                char b64[DC_MREC_TLS_B64_LEN + 1], struct dc_err *err);

/* Publishing, the one implementation behind dimectl's and dime-signet's dns-record:
 * policy_parse: a policy by name (experimental, mixed, strict; letter case ignored).
 * cert_der: the DER encoding of the PEM X.509 certificate in the file at path (*der
 *   malloc'd); errors name the file (DC_ERR_IO, DC_ERR_FORMAT, DC_ERR_CRYPTO).
 * add_tls_cert: signs the certificate for tls= with s and adds the signature to r.
 * publish: the record text of r and its two zone-file lines for domain (both malloc'd). */
enum dc_status dc_mrec_policy_parse(const char *name, enum dc_mrec_policy *out,
                                    struct dc_err *err);
enum dc_status dc_mrec_cert_der(const char *path, uint8_t **der, size_t *len,
                                struct dc_err *err);
enum dc_status dc_mrec_add_tls_cert(struct dc_mrec *r, const struct dc_signer *s,
                                    const uint8_t *der, size_t len, struct dc_err *err);
enum dc_status dc_mrec_publish(const struct dc_mrec *r, const char *domain, uint32_t ttl,
                               char **text, char **lines, struct dc_err *err);

/* The record a publisher starts from: ver 1, pol=mixed (a domain that publishes DIME but
 * still has users without signets; strict is a promise the operator makes on purpose),
 * sub=strict, nothing else. dc_mrec_new's defaults are the parser's (an absent pol means
 * experimental). */
struct dc_mrec *dc_mrec_new_publish(void);
/* Sets the field called name (or its alias) from its text value, with the parser's checks:
 * pok, tls and dx add one more; pol, sub, exp, ttl, syn and ver replace. Both dns-record
 * commands pass their options through here, so an option means what the field means. */
enum dc_status dc_mrec_set(struct dc_mrec *r, const char *name, const char *value,
                           struct dc_err *err);

const char *dc_mrec_policy_name(enum dc_mrec_policy p);
const char *dc_mrec_subdomain_name(enum dc_mrec_subdomain s);

#endif
