/*
 * dc_mrec - parser and generator of the DIME management record. See dc_mrec.h.
 *
 * Differences from libdime's _parse_dime_record, on purpose (PROFILE.md section 3):
 * exp and syn are kept instead of dropped, the paper's ttl is understood, values are
 * validated strictly (hosts, integers, enum values), single-valued fields may not repeat,
 * and a token is split at its first '=' (no field value we accept contains '=', so libdime's
 * "an '=' followed by '=' is padding" rule has nothing left to protect).
 */
#include "dc_mrec.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dc_b64.h"

/* How much of an untrusted value goes into an error message. */
#define QUOTE_MAX 40

enum field_id {
    F_VER,
    F_POK,
    F_TLS,
    F_POL,
    F_SYN,
    F_DX,
    F_EXP,
    F_TTL,
    F_SUB,
    F_COUNT
};

static const struct {
    const char *name;
    const char *alias; /* NULL when the field has none */
    int repeatable;
} fields[F_COUNT] = {
    [F_VER] = {"ver", "version", 0},
    [F_POK] = {"pok", "primary", 1},
    [F_TLS] = {"tls", NULL, 1},
    [F_POL] = {"pol", "policy", 0},
    [F_SYN] = {"syn", "syndicates", 0},
    [F_DX] = {"dx", "deliver", 1},
    [F_EXP] = {"exp", "expiry", 0},
    [F_TTL] = {"ttl", NULL, 0},
    [F_SUB] = {"sub", "subdomain", 0},
};

static const char *const policy_names[] = {"experimental", "mixed", "strict"};
static const char *const subdomain_names[] = {"strict", "relaxed", "explicit"};

const char *dc_mrec_policy_name(enum dc_mrec_policy p)
{
    if ((unsigned)p < sizeof(policy_names) / sizeof(policy_names[0]))
        return policy_names[p];
    return "invalid";
}

const char *dc_mrec_subdomain_name(enum dc_mrec_subdomain s)
{
    if ((unsigned)s < sizeof(subdomain_names) / sizeof(subdomain_names[0]))
        return subdomain_names[s];
    return "invalid";
}

static int is_sep(unsigned char c)
{
    return c == ' ' || c == '\t' || c == ';';
}

/* Case-insensitive comparison of a counted string with a NUL-terminated ASCII word. */
static int word_eq(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

struct dc_mrec *dc_mrec_new(void)
{
    struct dc_mrec *r = dc_xcalloc(1, sizeof(*r));
    r->version = DC_MREC_VERSION;
    r->policy = DC_MREC_POL_EXPERIMENTAL;
    r->subdomain = DC_MREC_SUB_STRICT;
    return r;
}

void dc_mrec_free(struct dc_mrec *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->dx_count; i++)
        free(r->dx[i]);
    for (size_t i = 0; i < r->unknown_count && i < DC_MREC_MAX_UNKNOWN; i++)
        free(r->unknown[i]);
    free(r->syn);
    free(r);
}

enum dc_status dc_mrec_check_host(const char *host, size_t len, const char *what,
                                  struct dc_err *err)
{
    char q[QUOTE_MAX + 4];
    size_t n = len;
    if (n > 0 && host[n - 1] == '.')
        n--;
    if (n == 0)
        return dc_fail(err, DC_ERR_FIELD, "%s: host name is empty", what);
    if (n > DC_MREC_HOST_MAX)
        return dc_fail(err, DC_ERR_FIELD, "%s: host name '%s' is %zu characters long, more "
                       "than %d", what, dc_safe_str(host, len, q, QUOTE_MAX), n,
                       DC_MREC_HOST_MAX);
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && host[i] != '.') {
            unsigned char c = (unsigned char)host[i];
            int ldh = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '-';
            if (!ldh)
                return dc_fail(err, DC_ERR_FIELD, "%s: host name '%s' has a character other "
                               "than letters, digits, '-' and '.' at offset %zu", what,
                               dc_safe_str(host, len, q, QUOTE_MAX), i);
            continue;
        }
        size_t ll = i - start;
        if (ll == 0)
            return dc_fail(err, DC_ERR_FIELD, "%s: host name '%s' has an empty label", what,
                           dc_safe_str(host, len, q, QUOTE_MAX));
        if (ll > 63)
            return dc_fail(err, DC_ERR_FIELD, "%s: host name '%s' has a label of %zu "
                           "characters, more than 63", what,
                           dc_safe_str(host, len, q, QUOTE_MAX), ll);
        if (host[start] == '-' || host[i - 1] == '-')
            return dc_fail(err, DC_ERR_FIELD, "%s: host name '%s' has a label that starts or "
                           "ends with '-'", what, dc_safe_str(host, len, q, QUOTE_MAX));
        start = i + 1;
    }
    return DC_OK;
}

/* A non-negative decimal integer that fits in 32 bits. */
static enum dc_status parse_u32(const char *name, const char *v, size_t len, uint32_t *out,
                                struct dc_err *err)
{
    char q[QUOTE_MAX + 4];
    uint64_t acc = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return dc_fail(err, DC_ERR_FIELD, "%s: value '%s' is not a non-negative decimal "
                           "integer", name, dc_safe_str(v, len, q, QUOTE_MAX));
        acc = acc * 10 + (uint64_t)(v[i] - '0');
        if (acc > UINT32_MAX)
            return dc_fail(err, DC_ERR_LIMIT, "%s: value '%s' is too large (at most %u)", name,
                           dc_safe_str(v, len, q, QUOTE_MAX), (unsigned)UINT32_MAX);
    }
    *out = (uint32_t)acc;
    return DC_OK;
}

static enum dc_status parse_b64_field(const char *name, const char *v, size_t len,
                                      size_t want_chars, uint8_t *out, size_t want_bytes,
                                      struct dc_err *err)
{
    char q[QUOTE_MAX + 4];
    if (len != want_chars)
        return dc_fail(err, DC_ERR_FIELD, "%s: value '%s' is %zu characters long, expected "
                       "%zu characters of unpadded base64", name,
                       dc_safe_str(v, len, q, QUOTE_MAX), len, want_chars);
    struct dc_err sub;
    if (dc_b64_decode_exact(v, len, out, want_bytes, &sub) != DC_OK)
        return dc_fail(err, DC_ERR_BASE64, "%s: value '%s' is not valid base64 of %zu bytes "
                       "(%s)", name, dc_safe_str(v, len, q, QUOTE_MAX), want_bytes, sub.msg);
    return DC_OK;
}

static enum dc_status parse_enum(const char *name, const char *v, size_t len,
                                 const char *const *names, size_t count, int *out,
                                 struct dc_err *err)
{
    char q[QUOTE_MAX + 4];
    for (size_t i = 0; i < count; i++) {
        if (word_eq(v, len, names[i])) {
            *out = (int)i;
            return DC_OK;
        }
    }
    return dc_fail(err, DC_ERR_FIELD, "%s: unknown value '%s' (expected %s, %s or %s)", name,
                   dc_safe_str(v, len, q, QUOTE_MAX), names[0], names[1], names[2]);
}

static enum dc_status parse_field(struct dc_mrec *r, enum field_id id, const char *v,
                                  size_t len, struct dc_err *err)
{
    const char *name = fields[id].name;
    char q[QUOTE_MAX + 4];
    enum dc_status s;
    int e;
    uint32_t u;
    switch (id) {
    case F_VER:
        if ((s = parse_u32(name, v, len, &u, err)) != DC_OK)
            return s;
        if (u != DC_MREC_VERSION)
            return dc_fail(err, DC_ERR_FIELD, "ver: unsupported version %u (only %d is "
                           "defined)", (unsigned)u, DC_MREC_VERSION);
        r->version = u;
        return DC_OK;
    case F_POK:
        if (r->pok_count >= DC_MREC_MAX_POK)
            return dc_fail(err, DC_ERR_LIMIT, "pok: more than %d keys", DC_MREC_MAX_POK);
        s = parse_b64_field(name, v, len, DC_MREC_POK_B64_LEN, r->pok[r->pok_count],
                            DC_ED25519_PUB_LEN, err);
        if (s == DC_OK)
            r->pok_count++;
        return s;
    case F_TLS:
        if (r->tls_count >= DC_MREC_MAX_TLS)
            return dc_fail(err, DC_ERR_LIMIT, "tls: more than %d signatures", DC_MREC_MAX_TLS);
        s = parse_b64_field(name, v, len, DC_MREC_TLS_B64_LEN, r->tls[r->tls_count],
                            DC_ED25519_SIG_LEN, err);
        if (s == DC_OK)
            r->tls_count++;
        return s;
    case F_POL:
        if ((s = parse_enum(name, v, len, policy_names, 3, &e, err)) != DC_OK)
            return s;
        r->policy = (enum dc_mrec_policy)e;
        return DC_OK;
    case F_SUB:
        if ((s = parse_enum(name, v, len, subdomain_names, 3, &e, err)) != DC_OK)
            return s;
        r->subdomain = (enum dc_mrec_subdomain)e;
        return DC_OK;
    case F_SYN:
        r->syn = dc_xstrndup(v, len);
        return DC_OK;
    case F_DX:
        if (r->dx_count >= DC_MREC_MAX_DX)
            return dc_fail(err, DC_ERR_LIMIT, "dx: more than %d hosts", DC_MREC_MAX_DX);
        if ((s = dc_mrec_check_host(v, len, name, err)) != DC_OK)
            return s;
        r->dx[r->dx_count++] = dc_xstrndup(v, len);
        return DC_OK;
    case F_EXP:
        if ((s = parse_u32(name, v, len, &u, err)) != DC_OK)
            return s;
        r->has_exp = 1;
        r->exp_days = u;
        return DC_OK;
    case F_TTL:
        if ((s = parse_u32(name, v, len, &u, err)) != DC_OK)
            return s;
        r->has_ttl = 1;
        r->ttl = u;
        return DC_OK;
    case F_COUNT:
        break;
    }
    return dc_fail(err, DC_ERR_ARG, "internal: no parser for field '%s'",
                   dc_safe_str(name, strlen(name), q, QUOTE_MAX));
}

/* Parses the concatenated text (len bytes, no NUL inside). */
static enum dc_status parse_text(const char *t, size_t len, struct dc_mrec *r,
                                 struct dc_err *err)
{
    char q[QUOTE_MAX + 4];
    unsigned seen[F_COUNT] = {0};
    size_t i = 0;
    while (i < len) {
        if (is_sep((unsigned char)t[i])) {
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && !is_sep((unsigned char)t[i]))
            i++;
        const char *tok = t + start;
        size_t tlen = i - start;
        const char *eq = memchr(tok, '=', tlen);
        if (eq == NULL)
            return dc_fail(err, DC_ERR_FORMAT, "token '%s' at offset %zu is not name=value",
                           dc_safe_str(tok, tlen, q, QUOTE_MAX), start);
        size_t nlen = (size_t)(eq - tok);
        const char *v = eq + 1;
        size_t vlen = tlen - nlen - 1;
        if (nlen == 0)
            return dc_fail(err, DC_ERR_FORMAT, "token '%s' at offset %zu has an empty field "
                           "name", dc_safe_str(tok, tlen, q, QUOTE_MAX), start);
        int id = -1;
        for (int f = 0; f < F_COUNT; f++) {
            if (word_eq(tok, nlen, fields[f].name) ||
                (fields[f].alias != NULL && word_eq(tok, nlen, fields[f].alias))) {
                id = f;
                break;
            }
        }
        if (id < 0) {
            if (r->unknown_count < DC_MREC_MAX_UNKNOWN)
                r->unknown[r->unknown_count] = dc_xstrndup(tok, tlen);
            r->unknown_count++;
            continue;
        }
        if (vlen == 0)
            return dc_fail(err, DC_ERR_FIELD, "%s: empty value", fields[id].name);
        if (seen[id] && !fields[id].repeatable)
            return dc_fail(err, DC_ERR_ORDER, "%s: field appears more than once (second value "
                           "'%s')", fields[id].name, dc_safe_str(v, vlen, q, QUOTE_MAX));
        seen[id]++;
        enum dc_status s = parse_field(r, (enum field_id)id, v, vlen, err);
        if (s != DC_OK)
            return s;
    }
    if (r->pok_count == 0)
        return dc_fail(err, DC_ERR_FIELD, "pok: record has no pok field (at least one primary "
                                          "organizational key is required)");
    return DC_OK;
}

enum dc_status dc_mrec_parse(const struct dc_mrec_str *strs, size_t n, struct dc_mrec **out,
                             struct dc_err *err)
{
    if (out == NULL || (strs == NULL && n > 0))
        return dc_fail(err, DC_ERR_ARG, "dc_mrec_parse: NULL argument");
    *out = NULL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (strs[i].ptr == NULL && strs[i].len > 0)
            return dc_fail(err, DC_ERR_ARG, "dc_mrec_parse: string %zu is NULL", i);
        if (strs[i].len > DC_MREC_MAX_LEN || total + strs[i].len > DC_MREC_MAX_LEN)
            return dc_fail(err, DC_ERR_LIMIT, "record is longer than %d bytes",
                           DC_MREC_MAX_LEN);
        total += strs[i].len;
    }
    char *t = dc_xmalloc(total + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (strs[i].len > 0)
            memcpy(t + o, strs[i].ptr, strs[i].len);
        o += strs[i].len;
    }
    t[o] = '\0';
    enum dc_status s;
    const char *nul = memchr(t, '\0', total);
    struct dc_mrec *r = dc_mrec_new();
    if (nul != NULL)
        s = dc_fail(err, DC_ERR_FORMAT, "record contains a NUL byte at offset %zu",
                    (size_t)(nul - t));
    else
        s = parse_text(t, total, r, err);
    free(t);
    if (s != DC_OK) {
        dc_mrec_free(r);
        return s;
    }
    *out = r;
    return DC_OK;
}

enum dc_status dc_mrec_parse_text(const char *text, struct dc_mrec **out, struct dc_err *err)
{
    if (text == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_mrec_parse_text: NULL text");
    struct dc_mrec_str one = {text, strlen(text)};
    return dc_mrec_parse(&one, 1, out, err);
}

enum dc_status dc_mrec_add_pok(struct dc_mrec *r, const uint8_t pok[DC_ED25519_PUB_LEN],
                               struct dc_err *err)
{
    if (r->pok_count >= DC_MREC_MAX_POK)
        return dc_fail(err, DC_ERR_LIMIT, "pok: more than %d keys", DC_MREC_MAX_POK);
    memcpy(r->pok[r->pok_count++], pok, DC_ED25519_PUB_LEN);
    return DC_OK;
}

enum dc_status dc_mrec_add_tls(struct dc_mrec *r, const uint8_t sig[DC_ED25519_SIG_LEN],
                               struct dc_err *err)
{
    if (r->tls_count >= DC_MREC_MAX_TLS)
        return dc_fail(err, DC_ERR_LIMIT, "tls: more than %d signatures", DC_MREC_MAX_TLS);
    memcpy(r->tls[r->tls_count++], sig, DC_ED25519_SIG_LEN);
    return DC_OK;
}

enum dc_status dc_mrec_add_dx(struct dc_mrec *r, const char *host, struct dc_err *err)
{
    if (r->dx_count >= DC_MREC_MAX_DX)
        return dc_fail(err, DC_ERR_LIMIT, "dx: more than %d hosts", DC_MREC_MAX_DX);
    enum dc_status s = dc_mrec_check_host(host, strlen(host), "dx", err);
    if (s != DC_OK)
        return s;
    r->dx[r->dx_count++] = dc_xstrdup(host);
    return DC_OK;
}

static enum dc_status check_syn(const char *syn, struct dc_err *err)
{
    char q[QUOTE_MAX + 4];
    size_t len = strlen(syn);
    if (len == 0)
        return dc_fail(err, DC_ERR_FIELD, "syn: empty value");
    for (size_t i = 0; i < len; i++)
        if (is_sep((unsigned char)syn[i]))
            return dc_fail(err, DC_ERR_FIELD, "syn: value '%s' contains a space, tab or ';'",
                           dc_safe_str(syn, len, q, QUOTE_MAX));
    return DC_OK;
}

enum dc_status dc_mrec_set_syn(struct dc_mrec *r, const char *syn, struct dc_err *err)
{
    if (syn != NULL) {
        enum dc_status s = check_syn(syn, err);
        if (s != DC_OK)
            return s;
    }
    free(r->syn);
    r->syn = syn != NULL ? dc_xstrdup(syn) : NULL;
    return DC_OK;
}

enum dc_status dc_mrec_generate(const struct dc_mrec *r, char **out, struct dc_err *err)
{
    if (r == NULL || out == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_mrec_generate: NULL argument");
    *out = NULL;
    if (r->version != DC_MREC_VERSION)
        return dc_fail(err, DC_ERR_FIELD, "ver: cannot write version %u (only %d is defined)",
                       r->version, DC_MREC_VERSION);
    if (r->pok_count == 0)
        return dc_fail(err, DC_ERR_FIELD, "pok: record has no pok field (at least one primary "
                                          "organizational key is required)");
    if (r->pok_count > DC_MREC_MAX_POK || r->tls_count > DC_MREC_MAX_TLS ||
        r->dx_count > DC_MREC_MAX_DX)
        return dc_fail(err, DC_ERR_LIMIT, "record has more than %d pok, tls or dx entries",
                       DC_MREC_MAX_POK);
    if ((unsigned)r->policy > DC_MREC_POL_STRICT)
        return dc_fail(err, DC_ERR_FIELD, "pol: invalid policy value %d", (int)r->policy);
    if ((unsigned)r->subdomain > DC_MREC_SUB_EXPLICIT)
        return dc_fail(err, DC_ERR_FIELD, "sub: invalid subdomain value %d",
                       (int)r->subdomain);
    enum dc_status s;
    for (size_t i = 0; i < r->dx_count; i++)
        if ((s = dc_mrec_check_host(r->dx[i], strlen(r->dx[i]), "dx", err)) != DC_OK)
            return s;
    if (r->syn != NULL && (s = check_syn(r->syn, err)) != DC_OK)
        return s;

    struct dc_buf b;
    dc_buf_init(&b);
    char tmp[DC_MREC_TLS_B64_LEN + 1];
    dc_buf_printf(&b, "ver=%u", r->version);
    for (size_t i = 0; i < r->pok_count; i++) {
        dc_b64_encode(r->pok[i], DC_ED25519_PUB_LEN, tmp, 0);
        dc_buf_printf(&b, " pok=%s", tmp);
    }
    for (size_t i = 0; i < r->tls_count; i++) {
        dc_b64_encode(r->tls[i], DC_ED25519_SIG_LEN, tmp, 0);
        dc_buf_printf(&b, " tls=%s", tmp);
    }
    dc_buf_printf(&b, " pol=%s", policy_names[r->policy]);
    if (r->syn != NULL)
        dc_buf_printf(&b, " syn=%s", r->syn);
    for (size_t i = 0; i < r->dx_count; i++)
        dc_buf_printf(&b, " dx=%s", r->dx[i]);
    if (r->has_exp)
        dc_buf_printf(&b, " exp=%u", (unsigned)r->exp_days);
    if (r->has_ttl)
        dc_buf_printf(&b, " ttl=%u", (unsigned)r->ttl);
    dc_buf_printf(&b, " sub=%s", subdomain_names[r->subdomain]);
    if (b.len > DC_MREC_MAX_LEN) {
        size_t len = b.len;
        dc_buf_free(&b);
        return dc_fail(err, DC_ERR_LIMIT, "generated record is %zu bytes, more than %d", len,
                       DC_MREC_MAX_LEN);
    }
    size_t len;
    *out = (char *)dc_buf_steal(&b, &len);
    return DC_OK;
}

int dc_mrec_equal(const struct dc_mrec *a, const struct dc_mrec *b)
{
    if (a->version != b->version || a->pok_count != b->pok_count ||
        a->tls_count != b->tls_count || a->policy != b->policy ||
        a->dx_count != b->dx_count || a->subdomain != b->subdomain ||
        a->has_exp != b->has_exp || a->has_ttl != b->has_ttl)
        return 0;
    if (a->pok_count > DC_MREC_MAX_POK || a->tls_count > DC_MREC_MAX_TLS ||
        a->dx_count > DC_MREC_MAX_DX)
        return 0;
    if (a->has_exp && a->exp_days != b->exp_days)
        return 0;
    if (a->has_ttl && a->ttl != b->ttl)
        return 0;
    if (a->pok_count > 0 && memcmp(a->pok, b->pok, a->pok_count * DC_ED25519_PUB_LEN) != 0)
        return 0;
    if (a->tls_count > 0 && memcmp(a->tls, b->tls, a->tls_count * DC_ED25519_SIG_LEN) != 0)
        return 0;
    for (size_t i = 0; i < a->dx_count; i++)
        if (strcmp(a->dx[i], b->dx[i]) != 0)
            return 0;
    if ((a->syn == NULL) != (b->syn == NULL))
        return 0;
    if (a->syn != NULL && strcmp(a->syn, b->syn) != 0)
        return 0;
    return 1;
}

void dc_mrec_split(const char *text, size_t len, struct dc_mrec_str **strs, size_t *n)
{
    size_t count = len == 0 ? 1 : (len + DC_MREC_CHARSTR_MAX - 1) / DC_MREC_CHARSTR_MAX;
    struct dc_mrec_str *a = dc_xcalloc(count, sizeof(*a));
    for (size_t i = 0; i < count; i++) {
        size_t off = i * DC_MREC_CHARSTR_MAX;
        size_t rest = len - off;
        a[i].ptr = text + off;
        a[i].len = rest < DC_MREC_CHARSTR_MAX ? rest : DC_MREC_CHARSTR_MAX;
    }
    *strs = a;
    *n = count;
}

char *dc_mrec_txt_rdata(const char *text, size_t len)
{
    struct dc_mrec_str *strs;
    size_t n;
    dc_mrec_split(text, len, &strs, &n);
    struct dc_buf b;
    dc_buf_init(&b);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = strs[i].ptr;
        if (i > 0)
            dc_buf_putc(&b, ' ');
        dc_buf_putc(&b, '"');
        for (size_t j = 0; j < strs[i].len; j++) {
            unsigned char c = p[j];
            if (c == '"' || c == '\\') {
                dc_buf_putc(&b, '\\');
                dc_buf_putc(&b, c);
            } else if (c < 0x20 || c >= 0x7f) {
                dc_buf_printf(&b, "\\%03u", (unsigned)c);
            } else {
                dc_buf_putc(&b, c);
            }
        }
        dc_buf_putc(&b, '"');
    }
    free(strs);
    size_t outlen;
    return (char *)dc_buf_steal(&b, &outlen);
}

enum dc_status dc_mrec_zone_lines(const char *domain, uint32_t ttl, const char *text,
                                  char **out, struct dc_err *err)
{
    if (domain == NULL || text == NULL || out == NULL)
        return dc_fail(err, DC_ERR_ARG, "dc_mrec_zone_lines: NULL argument");
    *out = NULL;
    size_t dlen = strlen(domain);
    enum dc_status s = dc_mrec_check_host(domain, dlen, "domain", err);
    if (s != DC_OK)
        return s;
    if (domain[dlen - 1] == '.')
        dlen--;
    char *rdata = dc_mrec_txt_rdata(text, strlen(text));
    *out = dc_xasprintf("_dime.%.*s. %u IN TXT %s\n_dx.%.*s. %u IN TXT %s\n", (int)dlen,
                        domain, (unsigned)ttl, rdata, (int)dlen, domain, (unsigned)ttl, rdata);
    free(rdata);
    return DC_OK;
}

enum dc_status dc_mrec_tls_verify(const struct dc_mrec *r, const uint8_t *der, size_t len,
                                  size_t *which, struct dc_err *err)
{
    if (r == NULL || (der == NULL && len > 0))
        return dc_fail(err, DC_ERR_ARG, "dc_mrec_tls_verify: NULL argument");
    if (r->tls_count == 0)
        return dc_fail(err, DC_ERR_NOTFOUND, "tls: the record has no tls signature");
    if (r->pok_count == 0)
        return dc_fail(err, DC_ERR_NOTFOUND, "tls: the record has no pok to verify with");
    uint8_t h[DC_SHA512_LEN];
    dc_sha512(der, len, h);
    for (size_t i = 0; i < r->tls_count && i < DC_MREC_MAX_TLS; i++) {
        for (size_t j = 0; j < r->pok_count && j < DC_MREC_MAX_POK; j++) {
            if (dc_ed25519_verify(r->pok[j], h, sizeof(h), r->tls[i]) == DC_OK) {
                if (which != NULL)
                    *which = i;
                return DC_OK;
            }
        }
    }
    return dc_fail(err, DC_ERR_SIGNATURE, "tls: none of the %zu tls signature(s) matches the "
                   "certificate (%zu DER bytes) under any of the %zu pok(s)", r->tls_count,
                   len, r->pok_count);
}

enum dc_status dc_mrec_tls_sign(const struct dc_signer *s, const uint8_t *der, size_t len,
                                uint8_t sig[DC_ED25519_SIG_LEN],
                                char b64[DC_MREC_TLS_B64_LEN + 1], struct dc_err *err)
{
    if (s == NULL || sig == NULL || (der == NULL && len > 0))
        return dc_fail(err, DC_ERR_ARG, "dc_mrec_tls_sign: NULL argument");
    if (len == 0)
        return dc_fail(err, DC_ERR_ARG, "tls: the certificate is empty");
    uint8_t h[DC_SHA512_LEN];
    dc_sha512(der, len, h);
    enum dc_status st = dc_signer_sign(s, h, sizeof(h), sig, err);
    if (st != DC_OK)
        return st;
    if (b64 != NULL)
        dc_b64_encode(sig, DC_ED25519_SIG_LEN, b64, 0);
    return DC_OK;
}

enum dc_status dc_mrec_rdata_strings(const uint8_t *rdata, size_t len, struct dc_mrec_str *strs,
                                     size_t max, size_t *n, struct dc_err *err)
{
    size_t i = 0;
    *n = 0;
    while (i < len) {
        size_t l = rdata[i];
        if (i + 1 + l > len)
            return dc_fail(err, DC_ERR_FORMAT, "TXT character-string %zu runs past the RDATA",
                           *n + 1);
        if (*n == max)
            return dc_fail(err, DC_ERR_LIMIT, "more than %zu TXT character-strings", max);
        strs[*n].ptr = rdata + i + 1;
        strs[*n].len = l;
        (*n)++;
        i += 1 + l;
    }
    return DC_OK;
}

/* ---- publishing (dns-record in dimectl and dime-signet) ---- */

enum dc_status dc_mrec_policy_parse(const char *name, enum dc_mrec_policy *out,
                                    struct dc_err *err)
{
    for (size_t i = 0; i < sizeof(policy_names) / sizeof(policy_names[0]); i++) {
        if (strcasecmp(name, policy_names[i]) == 0) {
            *out = (enum dc_mrec_policy)i;
            return DC_OK;
        }
    }
    return dc_fail(err, DC_ERR_ARG, "'%.*s' is not experimental, mixed or strict", QUOTE_MAX,
                   name);
}

enum dc_status dc_mrec_cert_der(const char *path, uint8_t **der, size_t *len,
                                struct dc_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return dc_fail(err, DC_ERR_IO, "%s: %s", path, strerror(errno));
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL) {
        unsigned long e = ERR_get_error();
        char buf[160];
        ERR_error_string_n(e, buf, sizeof(buf));
        ERR_clear_error();
        return dc_fail(err, DC_ERR_FORMAT, "%s: not a PEM X.509 certificate (%s)", path,
                       e ? buf : "no certificate found");
    }
    unsigned char *p = NULL;
    int n = i2d_X509(x, &p);
    X509_free(x);
    if (n <= 0)
        return dc_fail(err, DC_ERR_CRYPTO, "%s: cannot DER-encode the certificate", path);
    *der = dc_xmalloc((size_t)n);
    memcpy(*der, p, (size_t)n);
    OPENSSL_free(p);
    *len = (size_t)n;
    return DC_OK;
}

enum dc_status dc_mrec_add_tls_cert(struct dc_mrec *r, const struct dc_signer *s,
                                    const uint8_t *der, size_t len, struct dc_err *err)
{
    uint8_t sig[DC_ED25519_SIG_LEN];
    enum dc_status st = dc_mrec_tls_sign(s, der, len, sig, NULL, err);
    if (st == DC_OK)
        st = dc_mrec_add_tls(r, sig, err);
    return st;
}

struct dc_mrec *dc_mrec_new_publish(void)
{
    struct dc_mrec *r = dc_mrec_new();
    r->policy = DC_MREC_POL_MIXED;
    return r;
}

enum dc_status dc_mrec_set(struct dc_mrec *r, const char *name, const char *value,
                           struct dc_err *err)
{
    char q[QUOTE_MAX + 4];
    size_t nlen = strlen(name), vlen = strlen(value);
    for (int f = 0; f < F_COUNT; f++) {
        if (!word_eq(name, nlen, fields[f].name) &&
            (fields[f].alias == NULL || !word_eq(name, nlen, fields[f].alias)))
            continue;
        if (vlen == 0)
            return dc_fail(err, DC_ERR_FIELD, "%s: empty value", fields[f].name);
        if (f == F_SYN) /* single-valued: the last one given counts */
            return dc_mrec_set_syn(r, value, err);
        /* the parser's own checks, so an option and a published field mean the same */
        return parse_field(r, (enum field_id)f, value, vlen, err);
    }
    return dc_fail(err, DC_ERR_ARG, "'%s' is not a record field (ver, pok, tls, pol, syn, dx, "
                   "exp, ttl, sub)", dc_safe_str(name, nlen, q, QUOTE_MAX));
}

enum dc_status dc_mrec_publish(const struct dc_mrec *r, const char *domain, uint32_t ttl,
                               char **text, char **lines, struct dc_err *err)
{
    *lines = NULL;
    enum dc_status st = dc_mrec_generate(r, text, err);
    if (st == DC_OK)
        st = dc_mrec_zone_lines(domain, ttl, *text, lines, err);
    return st;
}
