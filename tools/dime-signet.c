/*
 * dime-signet - offline signet and key work for DIME organizations and users.
 *
 * An organization keeps its primary organizational key (POK) on an offline machine; this
 * tool does everything that needs that key, or the user keys, without a network:
 * generating org and user keys, signing requests (SSRs) into user signets, adding secondary
 * keys (SOKs), inspecting and verifying signets and printing the DNS management record.
 *
 * Exit status: 0 success; 1 verification failed, a signature is invalid or a key is not
 * authorized for the operation; 2 usage error; 3 an input file is unreadable, malformed or
 * of the wrong kind; 4 internal, crypto or output error. See dime-signet(1).
 */
#include "dc_armor.h"
#include "dc_b64.h"
#include "dc_crypto.h"
#include "dc_keys.h"
#include "dc_mrec.h"
#include "dc_signet.h"
#include "dc_util.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef DIME_VERSION
#define DIME_VERSION "unknown"
#endif

enum {
    EX_OK = 0,
    EX_VERIFY = 1,
    EX_USAGE = 2,
    EX_INPUT = 3,
    EX_INTERNAL = 4,
};

/* Largest input file we read: a maximal binary object in armor (4/3 + line breaks). */
#define MAX_INPUT_FILE (2u * DC_ARMOR_BIN_MAX + 4096u)

static const char *g_cmd = NULL; /* current subcommand, for messages */

/* ---------------------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------------------- */

__attribute__((format(printf, 2, 0))) static void vmsg(const char *file, const char *fmt,
                                                     va_list ap)
{
    fputs("dime-signet: ", stderr);
    if (g_cmd != NULL)
        fprintf(stderr, "%s: ", g_cmd);
    if (file != NULL)
        fprintf(stderr, "%s: ", file);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

/* One error line: "dime-signet: <cmd>: <file>: <reason>". */
static void __attribute__((format(printf, 2, 3))) fail_msg(const char *file, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(file, fmt, ap);
    va_end(ap);
}

/* Reports a library error about file; strips a leading "file: " the library may add. */
static void fail_err(const char *file, const struct dc_err *err)
{
    const char *m = err->msg;
    size_t fl = file != NULL ? strlen(file) : 0;
    if (fl > 0 && strncmp(m, file, fl) == 0 && m[fl] == ':' && m[fl + 1] == ' ')
        m += fl + 2;
    if (*m == '\0')
        m = dc_status_name(err->code);
    fail_msg(file, "%s", m);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(NULL, fmt, ap);
    va_end(ap);
    if (g_cmd != NULL)
        fprintf(stderr, "Try 'dime-signet %s --help'.\n", g_cmd);
    else
        fputs("Try 'dime-signet --help'.\n", stderr);
    return EX_USAGE;
}

/* Exit status for a failure to load an input. */
static int input_exit(enum dc_status st)
{
    switch (st) {
    case DC_ERR_NOMEM:
    case DC_ERR_CRYPTO:
    case DC_ERR_ARG:
        return EX_INTERNAL;
    case DC_ERR_SIGNATURE:
    case DC_ERR_CUSTODY:
        return EX_VERIFY;
    default:
        return EX_INPUT;
    }
}

/* ---------------------------------------------------------------------------------------
 * Loading and writing objects
 * ------------------------------------------------------------------------------------- */

struct object {
    struct dc_signet *signet; /* exactly one of these is set */
    struct dc_keyfile *key;
    bool armored;
};

static void object_free(struct object *o)
{
    dc_signet_free(o->signet);
    dc_keyfile_free(o->key);
    o->signet = NULL;
    o->key = NULL;
}

static bool is_key_magic(uint32_t m)
{
    return m == DC_KEY_ORG || m == DC_KEY_USER;
}

static bool is_signet_magic(uint32_t m)
{
    return m == DC_SIGNET_ORG || m == DC_SIGNET_USER || m == DC_SIGNET_SSR;
}

/* Loads any signet, SSR or key file (armored or binary). Prints the error and returns the
 * exit status on failure. */
static int load_object(const char *path, struct object *o)
{
    struct dc_err err = {0};
    uint8_t *data = NULL, *bin = NULL;
    size_t len = 0, binlen = 0;
    int rc = EX_OK;

    memset(o, 0, sizeof(*o));
    if (dc_read_file(path, MAX_INPUT_FILE, &data, &len, &err) != DC_OK) {
        fail_err(path, &err);
        return EX_INPUT;
    }
    if (dc_armor_detect(data, len)) {
        char tag[DC_ARMOR_TAG_MAX];
        o->armored = true;
        if (dc_armor_decode((const char *)data, len, tag, &bin, &binlen, &err) != DC_OK) {
            fail_err(path, &err);
            rc = input_exit(err.code);
            goto out;
        }
    } else {
        bin = dc_xmalloc(len);
        memcpy(bin, data, len);
        binlen = len;
    }
    if (binlen < 5) {
        fail_msg(path, "too short for a DIME object (%zu bytes)", binlen);
        rc = EX_INPUT;
        goto out;
    }
    uint32_t magic = dc_get_be(bin, 2);
    enum dc_status st;
    if (is_key_magic(magic))
        st = dc_keyfile_parse(bin, binlen, &o->key, &err);
    else if (is_signet_magic(magic))
        st = dc_signet_parse(bin, binlen, &o->signet, &err);
    else {
        fail_msg(path, "not a DIME signet, SSR or key file (object type %u)", (unsigned)magic);
        rc = EX_INPUT;
        goto out;
    }
    if (st != DC_OK) {
        fail_err(path, &err);
        rc = input_exit(st);
    }
out:
    /* The input may have been a private key file: wipe every copy. */
    if (bin != NULL) {
        dc_memzero(bin, binlen);
        free(bin);
    }
    dc_memzero(data, len);
    free(data);
    return rc;
}

/* Stable upper-case token for a state (what scripts match); the library gives the prose. */
static const char *state_token(enum dc_signet_state st)
{
    switch (st) {
    case DC_SS_MALFORMED: return "MALFORMED";
    case DC_SS_INCOMPLETE: return "INCOMPLETE";
    case DC_SS_INVALID: return "INVALID";
    case DC_SS_BROKEN_COC: return "BROKEN_COC";
    case DC_SS_SSR: return "SSR";
    case DC_SS_CRYPTO: return "CRYPTO";
    case DC_SS_FULL: return "FULL";
    case DC_SS_ID: return "ID";
    }
    return "UNKNOWN";
}

static const char *state_meaning(enum dc_signet_state st)
{
    switch (st) {
    case DC_SS_MALFORMED: return "the structure is wrong";
    case DC_SS_INCOMPLETE: return "required fields or signatures are missing";
    case DC_SS_INVALID: return "a signature does not verify";
    case DC_SS_BROKEN_COC: return "the chain of custody is broken or unchecked";
    case DC_SS_SSR: return "a valid signing request";
    case DC_SS_CRYPTO: return "crypto signature valid; no full or ID part";
    case DC_SS_FULL: return "crypto and full signatures valid; no ID part";
    case DC_SS_ID: return "crypto, full and ID signatures valid";
    }
    return "unknown state";
}

static const char *signet_object_name(enum dc_signet_type t)
{
    switch (t) {
    case DC_SIGNET_ORG: return "organizational signet";
    case DC_SIGNET_USER: return "user signet";
    case DC_SIGNET_SSR: return "signet signing request (SSR)";
    }
    return "unknown signet";
}

static const char *signet_kind_name(enum dc_signet_type t)
{
    switch (t) {
    case DC_SIGNET_ORG: return "an organizational signet";
    case DC_SIGNET_USER: return "a user signet";
    case DC_SIGNET_SSR: return "a signet signing request (SSR)";
    }
    return "an unknown signet";
}

static const char *key_kind_name(const struct dc_keyfile *k)
{
    if (k->type == DC_KEY_USER)
        return "a user key file";
    return k->sok != NULL ? "a secondary organizational key (SOK) file"
                          : "an organizational key file";
}

/* Loads a signet of the wanted type (0 = any signet or SSR). */
static int load_signet(const char *path, enum dc_signet_type want, struct dc_signet **out)
{
    struct object o;
    int rc = load_object(path, &o);
    if (rc != EX_OK)
        return rc;
    if (o.key != NULL) {
        fail_msg(path, "is %s, expected %s", key_kind_name(o.key),
                 want ? signet_kind_name(want) : "a signet");
        object_free(&o);
        return EX_INPUT;
    }
    if (want != 0 && o.signet->type != want) {
        fail_msg(path, "is %s, expected %s", signet_kind_name(o.signet->type),
                 signet_kind_name(want));
        object_free(&o);
        return EX_INPUT;
    }
    *out = o.signet;
    return EX_OK;
}

static int load_key(const char *path, enum dc_key_type want, struct dc_keyfile **out)
{
    struct object o;
    int rc = load_object(path, &o);
    if (rc != EX_OK)
        return rc;
    if (o.signet != NULL) {
        fail_msg(path, "is %s, expected a %s key file", signet_kind_name(o.signet->type),
                 want == DC_KEY_ORG ? "organizational" : "user");
        object_free(&o);
        return EX_INPUT;
    }
    if (o.key->type != want) {
        fail_msg(path, "is %s, expected a %s key file", key_kind_name(o.key),
                 want == DC_KEY_ORG ? "organizational" : "user");
        object_free(&o);
        return EX_INPUT;
    }
    *out = o.key;
    return EX_OK;
}

/* Refuses to replace an existing file unless forced. */
static int check_new_file(const char *path, bool force)
{
    struct stat sb;
    if (force)
        return EX_OK;
    if (lstat(path, &sb) == 0) {
        fail_msg(path, "already exists (use --force to overwrite)");
        return EX_INTERNAL;
    }
    if (errno != ENOENT) {
        fail_msg(path, "%s", strerror(errno));
        return EX_INTERNAL;
    }
    return EX_OK;
}

static int write_signet(const char *path, const struct dc_signet *s)
{
    struct dc_err err = {0};
    char *text = dc_signet_armor(s);
    if (text == NULL) {
        fail_msg(path, "cannot armor the signet");
        return EX_INTERNAL;
    }
    enum dc_status st = dc_write_file(path, text, strlen(text), 0644, &err);
    free(text);
    if (st != DC_OK) {
        fail_err(path, &err);
        return EX_INTERNAL;
    }
    return EX_OK;
}

static int save_key(const char *path, const struct dc_keyfile *k)
{
    struct dc_err err = {0};
    if (dc_keyfile_save(k, path, &err) != DC_OK) {
        fail_err(path, &err);
        return EX_INTERNAL;
    }
    return EX_OK;
}

/* ---------------------------------------------------------------------------------------
 * Names, addresses, printing
 * ------------------------------------------------------------------------------------- */

/* A DNS name: labels of letters, digits and hyphens (1-63 chars, no leading or trailing
 * hyphen), at least two labels, at most 253 chars. Lower-cased in place. */
static bool valid_domain(char *d)
{
    size_t n = strlen(d), label = 0, labels = 1;
    if (n == 0 || n > 253 || d[0] == '.' || d[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        if (c >= 'A' && c <= 'Z')
            d[i] = (char)(c - 'A' + 'a');
        c = d[i];
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-')
                return false;
            label = 0;
            labels++;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
            if (c == '-' && label == 0)
                return false;
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return labels >= 2 && d[n - 1] != '-';
}

/* local@domain with a printable-ASCII local part without spaces; the domain is
 * lower-cased. Returns a pointer to the domain part or NULL. */
static const char *valid_address(char *a)
{
    char *at = strrchr(a, '@');
    if (at == NULL || at == a || (size_t)(at - a) > 64)
        return NULL;
    for (const char *p = a; p < at; p++)
        if (*p <= ' ' || *p >= 0x7f || *p == '@' || *p == '"' || *p == '\\')
            return NULL;
    return valid_domain(at + 1) ? at + 1 : NULL;
}

/* Prints untrusted text in double quotes: valid UTF-8 as is, except quotes, backslashes,
 * control characters (C0, DEL, C1) and bidirectional overrides, which are escaped. */
static void print_quoted(FILE *f, const uint8_t *s, size_t n)
{
    fputc('"', f);
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == '"' || c == '\\')
                fprintf(f, "\\%c", c);
            else if (c == '\n')
                fputs("\\n", f);
            else if (c == '\t')
                fputs("\\t", f);
            else if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\x%02x", c);
            else
                fputc(c, f);
            i++;
            continue;
        }
        size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
        uint32_t cp = len == 4 ? (c & 0x07u) : len == 3 ? (c & 0x0fu) : (c & 0x1fu);
        bool ok = len > 0 && c < 0xf5 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                ok = false;
            else
                cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        /* Reject overlong forms, surrogates and values beyond U+10FFFF. */
        if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
                   (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
                   (cp >= 0xd800 && cp <= 0xdfff)))
            ok = false;
        if (!ok) {
            fprintf(f, "\\x%02x", c);
            i++;
            continue;
        }
        if ((cp >= 0x80 && cp < 0xa0) || cp == 0x200e || cp == 0x200f ||
            (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
            fprintf(f, "\\u{%04x}", (unsigned)cp);
        else
            fwrite(s + i, 1, len, f);
        i += len;
    }
    fputc('"', f);
}

static void print_b64(FILE *f, const uint8_t *p, size_t n)
{
    char *b = dc_b64_encode_alloc(p, n, 0);
    fputs(b, f);
    free(b);
}

/* Binary fields (keys, signatures, photo) are printed in base64, the others as text. */
static bool field_is_binary(enum dc_signet_type t, uint8_t fid)
{
    if (fid == DC_FID_FULL || fid == DC_FID_IDSIG || fid == DC_FID_PHOTO)
        return true;
    if (t == DC_SIGNET_ORG)
        return fid >= 1 && fid <= 4;
    return fid >= 1 && fid <= 6;
}

static const char *perm_string(uint8_t perm, char buf[64])
{
    static const struct {
        uint8_t bit;
        const char *name;
    } names[] = {{DC_SOK_SIGNET, "signet"}, {DC_SOK_MSG, "msg"}, {DC_SOK_TLS, "tls"},
                 {DC_SOK_SOFTWARE, "software"}};
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (perm & names[i].bit) {
            if (buf[0] != '\0')
                strcat(buf, ",");
            strcat(buf, names[i].name);
        }
    }
    if ((perm & 0xf0) != 0) {
        size_t l = strlen(buf);
        snprintf(buf + l, 64 - l, "%s0x%02x", l ? "," : "", (unsigned)(perm & 0xf0));
    }
    if (buf[0] == '\0')
        strcpy(buf, "none");
    return buf;
}

static const struct {
    const char *name;
    enum dc_fp_kind kind;
} fp_kinds[] = {
    {"ssr", DC_FP_SSR},
    {"crypto", DC_FP_CRYPTO},
    {"full", DC_FP_FULL},
    {"id", DC_FP_ID},
};
#define N_FP_KINDS (sizeof(fp_kinds) / sizeof(fp_kinds[0]))

/* Prints "<prefix><kind>: <fp>" for every fingerprint the signet reaches. */
static int print_fingerprints(const char *path, const struct dc_signet *s, const char *prefix)
{
    for (size_t i = 0; i < N_FP_KINDS; i++) {
        char fp[DC_FP_B64_LEN + 1];
        struct dc_err err = {0};
        enum dc_status st = dc_signet_fingerprint(s, fp_kinds[i].kind, fp, &err);
        if (st == DC_ERR_NOTFOUND)
            continue;
        if (st != DC_OK) {
            fail_err(path, &err);
            return EX_INTERNAL;
        }
        printf("%s%s: %s\n", prefix, fp_kinds[i].name, fp);
    }
    return EX_OK;
}

/* ---------------------------------------------------------------------------------------
 * Option handling shared by the subcommands
 * ------------------------------------------------------------------------------------- */

/* Long-option values: info fields are OPT_FIELD_BASE + fid. */
enum {
    OPT_HELP = 'h',
    OPT_FORCE = 1000,
    OPT_FIELD,
    OPT_PREVIOUS_KEY,
    OPT_NEW_KEY,
    OPT_PERM,
    OPT_ORG_SIGNET,
    OPT_PREVIOUS,
    OPT_PRIVATE,
    OPT_KIND,
    OPT_ORG,
    OPT_POK,
    OPT_POLICY,
    OPT_DX,
    OPT_TLS_CERT,
    OPT_EXPIRY,
    OPT_TTL,
    OPT_RECORD_TTL,
    OPT_FIELD_BASE = 2000,
};

#define INFO_COMMON_LONGOPTS                                                                  \
    {"name", required_argument, NULL, OPT_FIELD_BASE + 16},                                   \
        {"address", required_argument, NULL, OPT_FIELD_BASE + 17},                            \
        {"province", required_argument, NULL, OPT_FIELD_BASE + 18},                           \
        {"country", required_argument, NULL, OPT_FIELD_BASE + 19},                            \
        {"postal", required_argument, NULL, OPT_FIELD_BASE + 20},                             \
        {"phone", required_argument, NULL, OPT_FIELD_BASE + 21},                              \
        {"website", required_argument, NULL, OPT_FIELD_BASE + 160},                           \
        {"field", required_argument, NULL, OPT_FIELD}

#define INFO_ORG_LONGOPTS                                                                     \
    {"abuse", required_argument, NULL, OPT_FIELD_BASE + 200},                                 \
        {"admin", required_argument, NULL, OPT_FIELD_BASE + 201},                             \
        {"support", required_argument, NULL, OPT_FIELD_BASE + 202}

#define INFO_COMMON_HELP                                                                      \
    "  --name TEXT          Name (fid 16)\n"                                                  \
    "  --address TEXT       Address (fid 17)\n"                                               \
    "  --province TEXT      Province (fid 18)\n"                                              \
    "  --country TEXT       Country (fid 19)\n"                                               \
    "  --postal TEXT        Postal-Code (fid 20)\n"                                           \
    "  --phone TEXT         Phone-Number (fid 21, may be repeated)\n"                         \
    "  --website TEXT       Website (fid 160)\n"                                              \
    "  --field FID=VALUE    any other text field by number (16-250); a non-numeric FID\n"     \
    "                       makes an Undefined-Field (fid 251) with that name\n"

#define INFO_ORG_HELP                                                                         \
    "  --abuse TEXT         Contact-Abuse (fid 200)\n"                                        \
    "  --admin TEXT         Contact-Admin (fid 201)\n"                                        \
    "  --support TEXT       Contact-Support (fid 202)\n"

#define EXIT_HELP                                                                             \
    "Exit status: 0 success, 1 verification failed or key not authorized, 2 usage error,\n"   \
    "3 input file unreadable, malformed or of the wrong kind, 4 internal, crypto or\n"        \
    "output error.\n"

struct info_field {
    uint8_t fid;       /* 251 for an undefined field */
    const char *name;  /* undefined fields only */
    size_t name_len;
    const char *value;
};

struct info_list {
    struct info_field *v;
    size_t n;
};

static void info_free(struct info_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Adds one info option (by fid), or parses --field FID=VALUE (fid 0). */
static int info_add(struct info_list *l, size_t cap, uint8_t fid, const char *arg)
{
    if (l->v == NULL)
        l->v = dc_xcalloc(cap, sizeof(*l->v));
    if (l->n >= cap)
        return usage_error("too many info fields");
    struct info_field *f = &l->v[l->n];
    f->fid = fid;
    f->value = arg;
    if (fid == 0) {
        const char *eq = strchr(arg, '=');
        if (eq == NULL || eq == arg)
            return usage_error("--field needs FID=VALUE, got '%s'", arg);
        f->value = eq + 1;
        char *end;
        errno = 0;
        unsigned long v = strtoul(arg, &end, 10);
        if (arg[0] >= '0' && arg[0] <= '9') {
            if (end != eq || errno != 0 || v < 16 || v > 250)
                return usage_error("--field: field id must be a number from 16 to 250");
            f->fid = (uint8_t)v;
        } else {
            f->fid = DC_FID_UNDEFINED;
            f->name = arg;
            f->name_len = (size_t)(eq - arg);
            if (f->name_len > 255)
                return usage_error("--field: undefined field name longer than 255 bytes");
        }
    }
    if (f->value[0] == '\0')
        return usage_error("empty value for field %u", (unsigned)f->fid);
    l->n++;
    return EX_OK;
}

/* Adds the info fields to a signet (below 253). Errors are usage errors. */
static int info_apply(const struct info_list *l, struct dc_signet *s)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct info_field *f = &l->v[i];
        struct dc_err err = {0};
        enum dc_status st;
        if (f->fid == DC_FID_UNDEFINED) {
            char *name = dc_xstrndup(f->name, f->name_len);
            st = dc_signet_add_undefined(s, name, (const uint8_t *)f->value, strlen(f->value),
                                         &err);
            free(name);
        } else {
            st = dc_signet_add_field(s, f->fid, (const uint8_t *)f->value, strlen(f->value),
                                     &err);
        }
        if (st != DC_OK) {
            const char *fname = dc_signet_field_name(s->type, f->fid);
            fail_msg(NULL, "field %u (%s): %s", (unsigned)f->fid, fname ? fname : "unknown",
                     err.msg);
            return st == DC_ERR_NOMEM || st == DC_ERR_CRYPTO ? EX_INTERNAL : EX_USAGE;
        }
    }
    return EX_OK;
}

/* Reports an unknown option or a missing argument after getopt_long returned '?' or ':'. */
static int bad_option(int argc, char **argv, int c)
{
    const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    if (c == ':')
        return usage_error("option '%s' requires an argument", arg);
    if (optopt != 0 && strncmp(arg, "--", 2) != 0)
        return usage_error("unknown option '-%c'", optopt);
    return usage_error("unknown option '%s'", arg);
}

/* Signs 253, sets the ID and signs 255. */
static int finish_signet(struct dc_signet *s, const char *id, const struct dc_signer *signer,
                         const char *what)
{
    struct dc_err err = {0};
    if (dc_signet_sign(s, DC_FID_FULL, signer, &err) != DC_OK ||
        dc_signet_set_id(s, id, &err) != DC_OK ||
        dc_signet_sign(s, DC_FID_IDSIG, signer, &err) != DC_OK) {
        fail_msg(what, "cannot complete the signet: %s", err.msg);
        return err.code == DC_ERR_FIELD || err.code == DC_ERR_FORMAT ? EX_USAGE : EX_INTERNAL;
    }
    return EX_OK;
}

/* ---------------------------------------------------------------------------------------
 * org-generate
 * ------------------------------------------------------------------------------------- */

static const char help_org_generate[] =
    "Usage: dime-signet org-generate DOMAIN -k KEYFILE -s SIGNETFILE [options]\n"
    "Generate a new organizational key file (POK and encryption key, mode 0600) and a\n"
    "complete organizational signet (crypto, full and ID signatures, ID = DOMAIN).\n"
    "\n"
    "  -k, --key FILE       key file to create (private; keep it offline)\n"
    "  -s, --signet FILE    signet file to create (armored)\n"
    "  -f, --force          overwrite existing files\n" INFO_COMMON_HELP INFO_ORG_HELP
    "  -h, --help           show this help\n" EXIT_HELP;

static int cmd_org_generate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"signet", required_argument, NULL, 's'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        INFO_COMMON_LONGOPTS,
        INFO_ORG_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    const char *keypath = NULL, *signetpath = NULL;
    bool force = false;
    struct info_list info = {0};
    int c, rc = EX_OK;

    while ((c = getopt_long(argc, argv, ":k:s:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'k': keypath = optarg; break;
        case 's': signetpath = optarg; break;
        case 'f': force = true; break;
        case 'h': fputs(help_org_generate, stdout); info_free(&info); return EX_OK;
        case OPT_FIELD: rc = info_add(&info, (size_t)argc, 0, optarg); break;
        default:
            if (c >= OPT_FIELD_BASE && c < OPT_FIELD_BASE + 256) {
                rc = info_add(&info, (size_t)argc, (uint8_t)(c - OPT_FIELD_BASE), optarg);
                break;
            }
            info_free(&info);
            return bad_option(argc, argv, c);
        }
        if (rc != EX_OK) {
            info_free(&info);
            return rc;
        }
    }
    if (optind + 1 != argc || keypath == NULL || signetpath == NULL) {
        info_free(&info);
        return usage_error("needs DOMAIN, -k KEYFILE and -s SIGNETFILE");
    }
    char *domain = argv[optind];
    if (!valid_domain(domain)) {
        info_free(&info);
        return usage_error("'%s' is not a valid domain name", domain);
    }
    if (strcmp(keypath, signetpath) == 0) {
        info_free(&info);
        return usage_error("the key file and the signet file must differ");
    }
    if ((rc = check_new_file(keypath, force)) != EX_OK ||
        (rc = check_new_file(signetpath, force)) != EX_OK) {
        info_free(&info);
        return rc;
    }

    struct dc_err err = {0};
    struct dc_keyfile *kf = NULL;
    struct dc_signet *s = NULL;
    struct dc_signer signer;
    if (dc_keyfile_generate(DC_KEY_ORG, &kf, &err) != DC_OK) {
        fail_msg(NULL, "cannot generate keys: %s", err.msg);
        rc = EX_INTERNAL;
        goto out;
    }
    if (dc_signet_org_create(kf->sign, kf->enc->pub, &s, &err) != DC_OK) {
        fail_msg(NULL, "cannot create the signet: %s", err.msg);
        rc = EX_INTERNAL;
        goto out;
    }
    if ((rc = info_apply(&info, s)) != EX_OK)
        goto out;
    dc_signer_local(&signer, kf->sign);
    if ((rc = finish_signet(s, domain, &signer, signetpath)) != EX_OK)
        goto out;
    if ((rc = save_key(keypath, kf)) != EX_OK)
        goto out;
    if ((rc = write_signet(signetpath, s)) != EX_OK) {
        unlink(keypath); /* do not leave a key without its signet */
        goto out;
    }
    char pok[DC_ED25519_PUB_LEN * 2];
    dc_b64_encode(kf->sign->pub, DC_ED25519_PUB_LEN, pok, 0);
    printf("organizational key: %s\n", keypath);
    printf("organizational signet: %s\n", signetpath);
    printf("id: %s\n", domain);
    printf("pok: %s\n", pok);
    rc = print_fingerprints(signetpath, s, "fingerprint-");
out:
    dc_signet_free(s);
    dc_keyfile_free(kf);
    info_free(&info);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * user-request and rotate
 * ------------------------------------------------------------------------------------- */

static const char help_user_request[] =
    "Usage: dime-signet user-request USER@DOMAIN -k KEYFILE -r SSRFILE [options]\n"
    "Generate a new user key file (signing and encryption key, mode 0600) and a signet\n"
    "signing request (SSR) to send to the organization. With --previous-key the SSR is a\n"
    "key rotation: it carries a chain-of-custody signature (fid 4) by the old key.\n"
    "\n"
    "  -k, --key FILE           user key file to create\n"
    "  -r, --request FILE       SSR file to create (armored)\n"
    "  -p, --previous-key FILE  the user's current key file (rotation)\n"
    "  -f, --force              overwrite existing files\n"
    "  -h, --help               show this help\n" EXIT_HELP;

static const char help_rotate[] =
    "Usage: dime-signet rotate USER@DOMAIN -k CURRENT_KEYFILE --new-key NEWKEYFILE -r SSRFILE\n"
    "Generate a new user key file and an SSR whose chain-of-custody signature (fid 4) is\n"
    "made with the current key. Same as user-request -k NEWKEYFILE --previous-key\n"
    "CURRENT_KEYFILE. The organization signs the SSR with 'sign --previous CURRENT_SIGNET'.\n"
    "\n"
    "  -k, --key FILE       the current user key file\n"
    "  -n, --new-key FILE   new user key file to create\n"
    "  -r, --request FILE   SSR file to create (armored)\n"
    "  -f, --force          overwrite existing files\n"
    "  -h, --help           show this help\n" EXIT_HELP;

static int make_request(char *address, const char *newkeypath, const char *ssrpath,
                        const char *prevkeypath, bool force)
{
    int rc;
    if (valid_address(address) == NULL)
        return usage_error("'%s' is not a valid USER@DOMAIN address", address);
    if (strcmp(newkeypath, ssrpath) == 0 ||
        (prevkeypath != NULL && (strcmp(prevkeypath, newkeypath) == 0 ||
                                 strcmp(prevkeypath, ssrpath) == 0)))
        return usage_error("the key, previous key and request files must all differ");
    if ((rc = check_new_file(newkeypath, force)) != EX_OK ||
        (rc = check_new_file(ssrpath, force)) != EX_OK)
        return rc;

    struct dc_keyfile *prev = NULL, *kf = NULL;
    struct dc_signet *ssr = NULL;
    struct dc_err err = {0};
    if (prevkeypath != NULL && (rc = load_key(prevkeypath, DC_KEY_USER, &prev)) != EX_OK)
        return rc;
    if (dc_keyfile_generate(DC_KEY_USER, &kf, &err) != DC_OK) {
        fail_msg(NULL, "cannot generate keys: %s", err.msg);
        rc = EX_INTERNAL;
        goto out;
    }
    if (dc_signet_ssr_create(kf->sign, kf->enc->pub, prev ? prev->sign : NULL, &ssr, &err) !=
        DC_OK) {
        fail_msg(NULL, "cannot create the request: %s", err.msg);
        rc = EX_INTERNAL;
        goto out;
    }
    if ((rc = save_key(newkeypath, kf)) != EX_OK)
        goto out;
    if ((rc = write_signet(ssrpath, ssr)) != EX_OK) {
        unlink(newkeypath);
        goto out;
    }
    printf("user key: %s\n", newkeypath);
    printf("signing request: %s (for %s%s)\n", ssrpath, address,
           prev ? ", rotation with chain of custody" : "");
    rc = print_fingerprints(ssrpath, ssr, "fingerprint-");
out:
    dc_signet_free(ssr);
    dc_keyfile_free(kf);
    dc_keyfile_free(prev);
    return rc;
}

static int cmd_user_request(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"request", required_argument, NULL, 'r'},
        {"previous-key", required_argument, NULL, 'p'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *keypath = NULL, *ssrpath = NULL, *prevpath = NULL;
    bool force = false;
    int c;
    while ((c = getopt_long(argc, argv, ":k:r:p:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'k': keypath = optarg; break;
        case 'r': ssrpath = optarg; break;
        case 'p': prevpath = optarg; break;
        case 'f': force = true; break;
        case 'h': fputs(help_user_request, stdout); return EX_OK;
        default: return bad_option(argc, argv, c);
        }
    }
    if (optind + 1 != argc || keypath == NULL || ssrpath == NULL)
        return usage_error("needs USER@DOMAIN, -k KEYFILE and -r SSRFILE");
    return make_request(argv[optind], keypath, ssrpath, prevpath, force);
}

static int cmd_rotate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"new-key", required_argument, NULL, 'n'},
        {"request", required_argument, NULL, 'r'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *keypath = NULL, *newpath = NULL, *ssrpath = NULL;
    bool force = false;
    int c;
    while ((c = getopt_long(argc, argv, ":k:n:r:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'k': keypath = optarg; break;
        case 'n': newpath = optarg; break;
        case 'r': ssrpath = optarg; break;
        case 'f': force = true; break;
        case 'h': fputs(help_rotate, stdout); return EX_OK;
        default: return bad_option(argc, argv, c);
        }
    }
    if (optind + 1 != argc || keypath == NULL || newpath == NULL || ssrpath == NULL)
        return usage_error("needs USER@DOMAIN, -k CURRENT_KEYFILE, --new-key NEWKEYFILE and "
                           "-r SSRFILE");
    return make_request(argv[optind], newpath, ssrpath, keypath, force);
}

/* ---------------------------------------------------------------------------------------
 * sign
 * ------------------------------------------------------------------------------------- */

static const char help_sign[] =
    "Usage: dime-signet sign SSRFILE -k ORGKEY_OR_SOKFILE -i USER@DOMAIN -o SIGNETFILE "
    "[options]\n"
    "Verify a signet signing request and sign it into a complete user signet (org\n"
    "signature fid 6, info fields, full signature 253, ID 254 = USER@DOMAIN, 255).\n"
    "With a SOK key file, the SOK must have the signet permission and --org-signet must\n"
    "list it. A rotation SSR (with custody signature) needs --previous.\n"
    "\n"
    "  -k, --key FILE         organizational key file (POK) or SOK key file\n"
    "  -i, --id USER@DOMAIN   the user's address (the signet identifier)\n"
    "  -o, --output FILE      user signet file to create (armored)\n"
    "  -O, --org-signet FILE  the organization's signet (required with a SOK; with a POK\n"
    "                         it is checked to match the key and the domain)\n"
    "  -P, --previous FILE    the user's current signet (required for a rotation SSR)\n"
    "  -f, --force            overwrite an existing output file\n" INFO_COMMON_HELP
    "  -h, --help             show this help\n" EXIT_HELP;

static int cmd_sign(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"id", required_argument, NULL, 'i'},
        {"output", required_argument, NULL, 'o'},
        {"org-signet", required_argument, NULL, 'O'},
        {"previous", required_argument, NULL, 'P'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        INFO_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    const char *keypath = NULL, *outpath = NULL, *orgpath = NULL, *prevpath = NULL;
    char *id = NULL;
    bool force = false;
    struct info_list info = {0};
    int c, rc = EX_OK;

    while ((c = getopt_long(argc, argv, ":k:i:o:O:P:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'k': keypath = optarg; break;
        case 'i': id = optarg; break;
        case 'o': outpath = optarg; break;
        case 'O': orgpath = optarg; break;
        case 'P': prevpath = optarg; break;
        case 'f': force = true; break;
        case 'h': fputs(help_sign, stdout); info_free(&info); return EX_OK;
        case OPT_FIELD: rc = info_add(&info, (size_t)argc, 0, optarg); break;
        default:
            if (c >= OPT_FIELD_BASE && c < OPT_FIELD_BASE + 256) {
                rc = info_add(&info, (size_t)argc, (uint8_t)(c - OPT_FIELD_BASE), optarg);
                break;
            }
            info_free(&info);
            return bad_option(argc, argv, c);
        }
        if (rc != EX_OK) {
            info_free(&info);
            return rc;
        }
    }
    if (optind + 1 != argc || keypath == NULL || id == NULL || outpath == NULL) {
        info_free(&info);
        return usage_error("needs SSRFILE, -k KEYFILE, -i USER@DOMAIN and -o SIGNETFILE");
    }
    const char *ssrpath = argv[optind];
    const char *domain = valid_address(id);
    if (domain == NULL) {
        info_free(&info);
        return usage_error("'%s' is not a valid USER@DOMAIN address", id);
    }
    if ((rc = check_new_file(outpath, force)) != EX_OK) {
        info_free(&info);
        return rc;
    }

    struct dc_signet *ssr = NULL, *org = NULL, *prev = NULL, *user = NULL;
    struct dc_keyfile *kf = NULL;
    struct dc_err err = {0};
    struct dc_signer signer;
    char *orgid = NULL, *previd = NULL;

    if ((rc = load_signet(ssrpath, DC_SIGNET_SSR, &ssr)) != EX_OK ||
        (rc = load_key(keypath, DC_KEY_ORG, &kf)) != EX_OK)
        goto out;
    if (orgpath != NULL && (rc = load_signet(orgpath, DC_SIGNET_ORG, &org)) != EX_OK)
        goto out;
    if (prevpath != NULL && (rc = load_signet(prevpath, DC_SIGNET_USER, &prev)) != EX_OK)
        goto out;

    /* The signing key: the POK, or a SOK that the org signet lists with the SIGNET bit. */
    if (kf->sok != NULL) {
        char pb[64];
        if (!(kf->sok_perm & DC_SOK_SIGNET)) {
            fail_msg(keypath, "this SOK is not allowed to sign signets (permissions: %s)",
                     perm_string(kf->sok_perm, pb));
            rc = EX_VERIFY;
            goto out;
        }
        if (org == NULL) {
            rc = usage_error("signing with a SOK needs --org-signet listing that SOK");
            goto out;
        }
        struct dc_sok soks[64];
        size_t n = dc_signet_soks(org, soks, sizeof(soks) / sizeof(soks[0]));
        bool listed = false;
        for (size_t i = 0; i < n && i < sizeof(soks) / sizeof(soks[0]); i++) {
            if (memcmp(soks[i].pub, kf->sok->pub, DC_ED25519_PUB_LEN) == 0) {
                listed = true;
                if (!(soks[i].perm & DC_SOK_SIGNET)) {
                    fail_msg(orgpath, "lists this SOK without the signet permission "
                                      "(permissions: %s)", perm_string(soks[i].perm, pb));
                    rc = EX_VERIFY;
                    goto out;
                }
            }
        }
        if (!listed) {
            fail_msg(orgpath, "does not list the SOK in %s", keypath);
            rc = EX_VERIFY;
            goto out;
        }
        dc_signer_local(&signer, kf->sok);
    } else {
        if (org != NULL) {
            uint8_t pok[DC_ED25519_PUB_LEN];
            if (dc_signet_signing_key(org, pok, &err) != DC_OK) {
                fail_err(orgpath, &err);
                rc = EX_INPUT;
                goto out;
            }
            if (memcmp(pok, kf->sign->pub, DC_ED25519_PUB_LEN) != 0) {
                fail_msg(keypath, "its POK is not the POK of %s", orgpath);
                rc = EX_VERIFY;
                goto out;
            }
        }
        dc_signer_local(&signer, kf->sign);
    }
    if (org != NULL) {
        orgid = dc_signet_id(org);
        if (orgid == NULL) {
            fail_msg(orgpath, "has no signet identifier (fid 254)");
            rc = EX_INPUT;
            goto out;
        }
        if (strcasecmp(orgid, domain) != 0) {
            char safe[68];
            fail_msg(orgpath, "is the signet of '%s', not of %s",
                     dc_safe_str(orgid, strlen(orgid), safe, 64), domain);
            rc = EX_VERIFY;
            goto out;
        }
    }
    if (prev != NULL) {
        previd = dc_signet_id(prev);
        if (previd == NULL || strcasecmp(previd, id) != 0) {
            fail_msg(prevpath, "is not a signet of %s", id);
            rc = EX_VERIFY;
            goto out;
        }
    }

    /* The SSR: self signature, and custody when it is a rotation. */
    bool rotation = dc_signet_field(ssr, DC_FID_USER_CUSTODY, 0) != NULL;
    if (rotation && prev == NULL) {
        rc = usage_error("%s is a key rotation (it has a custody signature): give the user's "
                         "current signet with --previous", ssrpath);
        goto out;
    }
    if (!rotation && prev != NULL) {
        fail_msg(ssrpath, "has no chain-of-custody signature, but --previous was given");
        rc = EX_VERIFY;
        goto out;
    }
    enum dc_signet_state st = dc_signet_verify_ssr(ssr, prev, &err);
    if (st != DC_SS_SSR) {
        fail_msg(ssrpath, "request does not verify (%s): %s", state_token(st),
                 err.msg);
        rc = EX_VERIFY;
        goto out;
    }
    if (dc_signet_ssr_sign(ssr, prev, &signer, &user, &err) != DC_OK) {
        fail_err(ssrpath, &err);
        rc = err.code == DC_ERR_SIGNATURE || err.code == DC_ERR_CUSTODY ? EX_VERIFY
             : input_exit(err.code);
        goto out;
    }
    if ((rc = info_apply(&info, user)) != EX_OK)
        goto out;
    if ((rc = finish_signet(user, id, &signer, outpath)) != EX_OK)
        goto out;
    if (org != NULL) {
        /* Self check before handing the signet out. */
        st = dc_signet_verify_user(user, org, prev, &err);
        if (st != DC_SS_ID) {
            fail_msg(outpath, "the new signet does not verify against %s (%s): %s", orgpath,
                     state_token(st), err.msg);
            rc = EX_INTERNAL;
            goto out;
        }
    }
    if ((rc = write_signet(outpath, user)) != EX_OK)
        goto out;
    printf("user signet: %s\n", outpath);
    printf("id: %s\n", id);
    printf("signed with: %s\n", kf->sok != NULL ? "SOK" : "POK");
    rc = print_fingerprints(outpath, user, "fingerprint-");
out:
    free(orgid);
    free(previd);
    dc_signet_free(user);
    dc_signet_free(ssr);
    dc_signet_free(org);
    dc_signet_free(prev);
    dc_keyfile_free(kf);
    info_free(&info);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * sok-add
 * ------------------------------------------------------------------------------------- */

static const char help_sok_add[] =
    "Usage: dime-signet sok-add -k ORGKEY -s ORGSIGNET --perm LIST -o SOKKEYFILE\n"
    "Generate a secondary organizational key (SOK) with the given permissions, write it to\n"
    "its own key file (mode 0600), add it to the organizational signet (fid 2) and re-sign\n"
    "the signet with the POK, keeping its info fields and identifier. The signet file is\n"
    "replaced atomically. Publish the new signet.\n"
    "\n"
    "  -k, --key FILE       organizational key file (POK)\n"
    "  -s, --signet FILE    organizational signet to update in place\n"
    "  -p, --perm LIST      comma-separated: signet, msg, tls, software\n"
    "  -o, --output FILE    SOK key file to create\n"
    "  -f, --force          overwrite an existing SOK key file\n"
    "  -h, --help           show this help\n" EXIT_HELP;

static int parse_perm(const char *s, uint8_t *out)
{
    uint8_t perm = 0;
    char *copy = dc_xstrdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        if (strcasecmp(t, "signet") == 0)
            perm |= DC_SOK_SIGNET;
        else if (strcasecmp(t, "msg") == 0)
            perm |= DC_SOK_MSG;
        else if (strcasecmp(t, "tls") == 0)
            perm |= DC_SOK_TLS;
        else if (strcasecmp(t, "software") == 0)
            perm |= DC_SOK_SOFTWARE;
        else {
            int rc = usage_error("--perm: unknown permission '%s' (use signet, msg, tls, "
                                 "software)", t);
            free(copy);
            return rc;
        }
    }
    free(copy);
    if (perm == 0)
        return usage_error("--perm: give at least one permission");
    *out = perm;
    return EX_OK;
}

/* Rebuilds org with one more SOK: keeps the key fields, adds fid 2, re-signs fid 4, re-adds
 * the info fields, re-signs 253, keeps the ID and re-signs 255. */
static int org_add_sok(const struct dc_signet *org, uint8_t perm, const uint8_t pub[32],
                       const struct dc_signer *pok, struct dc_signet **out, struct dc_err *err)
{
    struct dc_signet *s = dc_signet_dup(org);
    if (s == NULL)
        return dc_fail(err, DC_ERR_NOMEM, "cannot copy the signet");
    dc_signet_truncate(s, DC_FID_ORG_CRYPTO);
    uint8_t field[2 + DC_ED25519_PUB_LEN];
    field[0] = perm;
    field[1] = 0x40;
    memcpy(field + 2, pub, DC_ED25519_PUB_LEN);
    enum dc_status st = dc_signet_add_field(s, DC_FID_ORG_SOK, field, sizeof(field), err);
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

static int cmd_sok_add(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"signet", required_argument, NULL, 's'},
        {"perm", required_argument, NULL, 'p'},
        {"output", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *keypath = NULL, *signetpath = NULL, *outpath = NULL, *permarg = NULL;
    bool force = false;
    int c, rc;
    while ((c = getopt_long(argc, argv, ":k:s:p:o:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'k': keypath = optarg; break;
        case 's': signetpath = optarg; break;
        case 'p': permarg = optarg; break;
        case 'o': outpath = optarg; break;
        case 'f': force = true; break;
        case 'h': fputs(help_sok_add, stdout); return EX_OK;
        default: return bad_option(argc, argv, c);
        }
    }
    if (optind != argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (keypath == NULL || signetpath == NULL || permarg == NULL || outpath == NULL)
        return usage_error("needs -k ORGKEY, -s ORGSIGNET, --perm LIST and -o SOKKEYFILE");
    uint8_t perm = 0;
    if ((rc = parse_perm(permarg, &perm)) != EX_OK)
        return rc;
    if (strcmp(outpath, keypath) == 0 || strcmp(outpath, signetpath) == 0)
        return usage_error("the SOK key file must be a new file");
    if ((rc = check_new_file(outpath, force)) != EX_OK)
        return rc;

    struct dc_keyfile *kf = NULL, *sok = NULL;
    struct dc_signet *org = NULL, *updated = NULL;
    struct dc_err err = {0};
    struct dc_signer signer;
    if ((rc = load_key(keypath, DC_KEY_ORG, &kf)) != EX_OK ||
        (rc = load_signet(signetpath, DC_SIGNET_ORG, &org)) != EX_OK)
        goto out;
    if (kf->sign == NULL) {
        fail_msg(keypath, "is a SOK key file; adding a SOK needs the POK");
        rc = EX_VERIFY;
        goto out;
    }
    uint8_t pok[DC_ED25519_PUB_LEN];
    if (dc_signet_signing_key(org, pok, &err) != DC_OK) {
        fail_err(signetpath, &err);
        rc = EX_INPUT;
        goto out;
    }
    if (memcmp(pok, kf->sign->pub, DC_ED25519_PUB_LEN) != 0) {
        fail_msg(keypath, "its POK is not the POK of %s", signetpath);
        rc = EX_VERIFY;
        goto out;
    }
    enum dc_signet_state st =
        dc_signet_verify_org(org, (const uint8_t(*)[DC_ED25519_PUB_LEN])pok, 1, &err);
    if (st < DC_SS_CRYPTO) {
        fail_msg(signetpath, "does not verify with its own POK (%s): %s",
                 state_token(st), err.msg);
        rc = EX_VERIFY;
        goto out;
    }
    if (dc_keyfile_sok_generate(perm, &sok, &err) != DC_OK) {
        fail_msg(NULL, "cannot generate the SOK: %s", err.msg);
        rc = EX_INTERNAL;
        goto out;
    }
    dc_signer_local(&signer, kf->sign);
    if (org_add_sok(org, perm, sok->sok->pub, &signer, &updated, &err) != DC_OK) {
        fail_msg(signetpath, "cannot add the SOK: %s", err.msg);
        rc = input_exit(err.code) == EX_INTERNAL ? EX_INTERNAL : EX_INPUT;
        goto out;
    }
    st = dc_signet_verify_org(updated, (const uint8_t(*)[DC_ED25519_PUB_LEN])pok, 1, &err);
    if (st < DC_SS_FULL) {
        fail_msg(signetpath, "the updated signet does not verify (%s): %s",
                 state_token(st), err.msg);
        rc = EX_INTERNAL;
        goto out;
    }
    if ((rc = save_key(outpath, sok)) != EX_OK)
        goto out;
    if ((rc = write_signet(signetpath, updated)) != EX_OK) {
        unlink(outpath);
        goto out;
    }
    char pb[64], b64[DC_ED25519_PUB_LEN * 2];
    dc_b64_encode(sok->sok->pub, DC_ED25519_PUB_LEN, b64, 0);
    printf("sok key: %s\n", outpath);
    printf("sok: %s permissions=%s\n", b64, perm_string(perm, pb));
    printf("organizational signet updated: %s\n", signetpath);
    rc = print_fingerprints(signetpath, updated, "fingerprint-");
out:
    dc_signet_free(updated);
    dc_signet_free(org);
    dc_keyfile_free(sok);
    dc_keyfile_free(kf);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * show
 * ------------------------------------------------------------------------------------- */

static const char help_show[] =
    "Usage: dime-signet show [--private] FILE...\n"
    "Print what a signet, SSR or key file (armored or binary) holds: object type, wire\n"
    "variant (A libdime, B magma, C PRIME), every field with its id, name and value (keys\n"
    "and signatures in base64, text quoted), the fingerprints, and for key files the\n"
    "public keys. Private key material is printed only with --private.\n"
    "\n"
    "  --private            also print private keys of key files (a warning goes to stderr)\n"
    "  -h, --help           show this help\n" EXIT_HELP;

static void show_signet(const char *path, const struct dc_signet *s, bool armored)
{
    printf("file: %s\n", path);
    printf("object: %s (%d)\n", signet_object_name(s->type), (int)s->type);
    printf("variant: %s\n", dc_variant_name(s->variant));
    printf("encoding: %s\n", armored ? "armored" : "binary");
    printf("size: %zu bytes\n", s->bin_len);
    for (size_t i = 0; i < s->nfields; i++) {
        const struct dc_signet_field *f = &s->fields[i];
        const char *name = dc_signet_field_name(s->type, f->fid);
        printf("field %u %s: ", (unsigned)f->fid, name ? name : "Unknown");
        if (f->fid == DC_FID_UNDEFINED) {
            print_quoted(stdout, f->name, f->name_len);
            fputs(" = ", stdout);
            print_quoted(stdout, f->data, f->len);
        } else if (field_is_binary(s->type, f->fid)) {
            print_b64(stdout, f->data, f->len);
        } else {
            print_quoted(stdout, f->data, f->len);
        }
        fputc('\n', stdout);
    }
    struct dc_err err = {0};
    uint8_t pub[DC_ED25519_PUB_LEN], enc[DC_SECP_PUB_LEN];
    if (dc_signet_signing_key(s, pub, &err) == DC_OK) {
        printf("%s: ", s->type == DC_SIGNET_ORG ? "pok" : "signing-key");
        print_b64(stdout, pub, sizeof(pub));
        fputc('\n', stdout);
    }
    if (dc_signet_enc_key(s, enc, &err) == DC_OK) {
        fputs("encryption-key: ", stdout);
        print_b64(stdout, enc, sizeof(enc));
        fputc('\n', stdout);
    }
    if (s->type == DC_SIGNET_ORG) {
        struct dc_sok soks[64];
        size_t n = dc_signet_soks(s, soks, sizeof(soks) / sizeof(soks[0]));
        for (size_t i = 0; i < n && i < sizeof(soks) / sizeof(soks[0]); i++) {
            char pb[64];
            fputs("sok: ", stdout);
            print_b64(stdout, soks[i].pub, DC_ED25519_PUB_LEN);
            printf(" permissions=%s\n", perm_string(soks[i].perm, pb));
        }
    }
    char *id = dc_signet_id(s);
    if (id != NULL) {
        fputs("id: ", stdout);
        print_quoted(stdout, (const uint8_t *)id, strlen(id));
        fputc('\n', stdout);
        free(id);
    }
}

static void show_key(const char *path, const struct dc_keyfile *k, bool armored, bool priv)
{
    printf("file: %s\n", path);
    printf("object: %s (%d)\n",
           k->type == DC_KEY_ORG ? (k->sok ? "organizational key (SOK)" : "organizational key")
                                 : "user key",
           (int)k->type);
    printf("variant: %s\n", dc_variant_name(k->variant));
    printf("encoding: %s\n", armored ? "armored" : "binary");
    if (k->sign != NULL) {
        printf("%s: ", k->type == DC_KEY_ORG ? "pok" : "signing-key");
        print_b64(stdout, k->sign->pub, DC_ED25519_PUB_LEN);
        fputc('\n', stdout);
    }
    if (k->enc != NULL) {
        fputs("encryption-key: ", stdout);
        print_b64(stdout, k->enc->pub, DC_SECP_PUB_LEN);
        fputc('\n', stdout);
    }
    if (k->sok != NULL) {
        char pb[64];
        fputs("sok: ", stdout);
        print_b64(stdout, k->sok->pub, DC_ED25519_PUB_LEN);
        printf(" permissions=%s\n", perm_string(k->sok_perm, pb));
    }
    if (priv) {
        char hex[2 * 32 + 1];
        if (k->sign != NULL) {
            dc_hex_encode(k->sign->seed, DC_ED25519_SEED_LEN, hex);
            printf("private-signing-seed: %s\n", hex);
        }
        if (k->enc != NULL) {
            dc_hex_encode(k->enc->priv, DC_SECP_PRIV_LEN, hex);
            printf("private-encryption-key: %s\n", hex);
        }
        if (k->sok != NULL) {
            dc_hex_encode(k->sok->seed, DC_ED25519_SEED_LEN, hex);
            printf("private-sok-seed: %s\n", hex);
        }
        dc_memzero(hex, sizeof(hex));
    }
}

static int cmd_show(int argc, char **argv)
{
    static const struct option opts[] = {
        {"private", no_argument, NULL, OPT_PRIVATE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool priv = false;
    int c, rc = EX_OK;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_PRIVATE: priv = true; break;
        case 'h': fputs(help_show, stdout); return EX_OK;
        default: return bad_option(argc, argv, c);
        }
    }
    if (optind >= argc)
        return usage_error("needs at least one FILE");
    if (priv)
        fail_msg(NULL, "warning: printing PRIVATE key material to standard output");
    for (int i = optind; i < argc; i++) {
        struct object o;
        int r = load_object(argv[i], &o);
        if (r != EX_OK) {
            if (rc == EX_OK)
                rc = r;
            continue;
        }
        if (i > optind)
            fputc('\n', stdout);
        if (o.signet != NULL) {
            show_signet(argv[i], o.signet, o.armored);
            r = print_fingerprints(argv[i], o.signet, "fingerprint-");
            if (r != EX_OK && rc == EX_OK)
                rc = r;
        } else {
            show_key(argv[i], o.key, o.armored, priv);
        }
        object_free(&o);
    }
    if (fflush(stdout) != 0 && rc == EX_OK) {
        fail_msg("stdout", "%s", strerror(errno));
        rc = EX_INTERNAL;
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * verify
 * ------------------------------------------------------------------------------------- */

static const char help_verify[] =
    "Usage: dime-signet verify FILE [--org ORGSIGNET] [--pok BASE64 ...] [--previous PREV]\n"
    "Verify a signet or SSR and print the state reached (ID, FULL, CRYPTO, SSR, or a\n"
    "failure: INVALID, BROKEN_COC, INCOMPLETE, MALFORMED) with the reason.\n"
    "  - An organizational signet is checked against the POKs given with --pok (as\n"
    "    published in DNS); without --pok, against its own POK, which only proves that\n"
    "    the signet is self-consistent.\n"
    "  - A user signet needs --org (its organization's signet; with --pok, that signet is\n"
    "    verified first) and, for a rotated signet, --previous (the signet it replaces).\n"
    "  - An SSR is checked for its self signature, and its custody signature against\n"
    "    --previous when given.\n"
    "\n"
    "  -O, --org FILE       organizational signet (user signets)\n"
    "  -p, --pok BASE64     a POK from the DNS record (43 characters; may be repeated)\n"
    "  -P, --previous FILE  the previous user signet (chain of custody)\n"
    "  -h, --help           show this help\n" EXIT_HELP;

#define MAX_POKS 16

static int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"org", required_argument, NULL, 'O'},
        {"pok", required_argument, NULL, 'p'},
        {"previous", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *orgpath = NULL, *prevpath = NULL;
    uint8_t poks[MAX_POKS][DC_ED25519_PUB_LEN];
    size_t npoks = 0;
    int c, rc = EX_OK;
    while ((c = getopt_long(argc, argv, ":O:p:P:h", opts, NULL)) != -1) {
        switch (c) {
        case 'O': orgpath = optarg; break;
        case 'P': prevpath = optarg; break;
        case 'p': {
            struct dc_err err = {0};
            if (npoks >= MAX_POKS)
                return usage_error("at most %d --pok values", MAX_POKS);
            if (strlen(optarg) != 43 ||
                dc_b64_decode_exact(optarg, 43, poks[npoks], DC_ED25519_PUB_LEN, &err) != DC_OK)
                return usage_error("--pok needs 43 characters of unpadded base64 (an Ed25519 "
                                   "key)%s%s", err.msg[0] ? ": " : "", err.msg);
            npoks++;
            break;
        }
        case 'h': fputs(help_verify, stdout); return EX_OK;
        default: return bad_option(argc, argv, c);
        }
    }
    if (optind + 1 != argc)
        return usage_error("needs exactly one FILE");
    const char *path = argv[optind];
    struct dc_signet *s = NULL, *org = NULL, *prev = NULL;
    struct dc_err why = {0};
    enum dc_signet_state st = DC_SS_MALFORMED;
    const char *note = NULL;
    char *uid = NULL, *oid = NULL;
    char reason[DC_ERR_MSG_MAX + 128] = "";

    if ((rc = load_signet(path, 0, &s)) != EX_OK)
        return rc;
    switch (s->type) {
    case DC_SIGNET_ORG:
        if (orgpath != NULL || prevpath != NULL) {
            rc = usage_error("--org and --previous apply to user signets and SSRs only");
            goto out;
        }
        if (npoks == 0) {
            struct dc_err err = {0};
            if (dc_signet_signing_key(s, poks[0], &err) != DC_OK) {
                fail_err(path, &err);
                rc = EX_INPUT;
                goto out;
            }
            npoks = 1;
            note = "checked against the signet's own POK (no --pok given): this proves only "
                   "that the signet is self-consistent, not that it belongs to the domain";
        }
        st = dc_signet_verify_org(s, (const uint8_t(*)[DC_ED25519_PUB_LEN])poks, npoks, &why);
        break;
    case DC_SIGNET_USER:
        if (orgpath == NULL) {
            rc = usage_error("a user signet needs --org ORGSIGNET");
            goto out;
        }
        if ((rc = load_signet(orgpath, DC_SIGNET_ORG, &org)) != EX_OK)
            goto out;
        if (prevpath != NULL && (rc = load_signet(prevpath, DC_SIGNET_USER, &prev)) != EX_OK)
            goto out;
        if (npoks > 0) {
            struct dc_err err = {0};
            enum dc_signet_state ost = dc_signet_verify_org(
                org, (const uint8_t(*)[DC_ED25519_PUB_LEN])poks, npoks, &err);
            if (ost < DC_SS_CRYPTO) {
                st = ost;
                snprintf(reason, sizeof(reason), "organizational signet %s: %s", orgpath,
                         err.msg);
                break;
            }
        } else {
            note = "the organizational signet was taken as given (use --pok to check it "
                   "against the DNS record)";
        }
        st = dc_signet_verify_user(s, org, prev, &why);
        uid = dc_signet_id(s);
        oid = dc_signet_id(org);
        if (st >= DC_SS_SSR && uid != NULL && oid != NULL) {
            const char *at = strrchr(uid, '@');
            if (at == NULL || strcasecmp(at + 1, oid) != 0) {
                char a[68], b[68];
                st = DC_SS_INVALID;
                snprintf(reason, sizeof(reason), "signet id '%s' is not an address of '%s'",
                         dc_safe_str(uid, strlen(uid), a, 64),
                         dc_safe_str(oid, strlen(oid), b, 64));
            }
        }
        break;
    case DC_SIGNET_SSR:
        if (orgpath != NULL || npoks > 0) {
            rc = usage_error("--org and --pok do not apply to a signing request");
            goto out;
        }
        if (prevpath != NULL && (rc = load_signet(prevpath, DC_SIGNET_USER, &prev)) != EX_OK)
            goto out;
        st = dc_signet_verify_ssr(s, prev, &why);
        break;
    }
    if (reason[0] == '\0' && st < DC_SS_SSR)
        snprintf(reason, sizeof(reason), "%s", why.msg[0] ? why.msg : "(no reason given)");
    printf("file: %s\n", path);
    printf("object: %s\n", signet_object_name(s->type));
    printf("state: %s (%s)\n", state_token(st), state_meaning(st));
    printf("valid: %s\n", st >= DC_SS_SSR ? "yes" : "no");
    if (reason[0] != '\0')
        printf("reason: %s\n", reason);
    if (note != NULL && st >= DC_SS_SSR)
        printf("note: %s\n", note);
    rc = st >= DC_SS_SSR ? EX_OK : EX_VERIFY;
out:
    free(uid);
    free(oid);
    dc_signet_free(s);
    dc_signet_free(org);
    dc_signet_free(prev);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * fingerprint
 * ------------------------------------------------------------------------------------- */

static const char help_fingerprint[] =
    "Usage: dime-signet fingerprint FILE [--kind crypto|full|id|ssr]\n"
    "Print the fingerprints of a signet or SSR (unpadded base64 of SHA-512 over the\n"
    "payload up to the end of the given part). Without --kind, every fingerprint the\n"
    "signet reaches is printed as 'kind: value'; with --kind, only that value.\n"
    "\n"
    "  -K, --kind KIND      ssr, crypto, full or id\n"
    "  -h, --help           show this help\n" EXIT_HELP;

static int cmd_fingerprint(int argc, char **argv)
{
    static const struct option opts[] = {
        {"kind", required_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *kind = NULL;
    int c, rc;
    while ((c = getopt_long(argc, argv, ":K:h", opts, NULL)) != -1) {
        switch (c) {
        case 'K': kind = optarg; break;
        case 'h': fputs(help_fingerprint, stdout); return EX_OK;
        default: return bad_option(argc, argv, c);
        }
    }
    if (optind + 1 != argc)
        return usage_error("needs exactly one FILE");
    size_t k = N_FP_KINDS;
    if (kind != NULL) {
        for (k = 0; k < N_FP_KINDS; k++)
            if (strcasecmp(kind, fp_kinds[k].name) == 0)
                break;
        if (k == N_FP_KINDS)
            return usage_error("--kind must be crypto, full, id or ssr");
    }
    const char *path = argv[optind];
    struct dc_signet *s = NULL;
    if ((rc = load_signet(path, 0, &s)) != EX_OK)
        return rc;
    if (k == N_FP_KINDS) {
        rc = print_fingerprints(path, s, "");
    } else {
        char fp[DC_FP_B64_LEN + 1];
        struct dc_err err = {0};
        enum dc_status st = dc_signet_fingerprint(s, fp_kinds[k].kind, fp, &err);
        if (st == DC_ERR_NOTFOUND) {
            fail_msg(path, "has no %s fingerprint (%s)", fp_kinds[k].name, err.msg);
            rc = EX_INPUT;
        } else if (st != DC_OK) {
            fail_err(path, &err);
            rc = EX_INTERNAL;
        } else {
            printf("%s\n", fp);
            rc = EX_OK;
        }
    }
    dc_signet_free(s);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * dns-record
 * ------------------------------------------------------------------------------------- */

static const char help_dns_record[] =
    "Usage: dime-signet dns-record ORGSIGNET [options]\n"
    "Print the zone-file lines of the DIME management record for the signet's domain: a\n"
    "TXT record at _dime.<domain> and the same at _dx.<domain>, carrying the POK of the\n"
    "signet. With --tls-cert and -k, a tls= signature (Ed25519 by the POK over SHA-512 of\n"
    "the certificate's DER encoding) is added.\n"
    "\n"
    "  --policy POL         experimental (default), mixed or strict\n"
    "  --dx HOST            a DIME delivery host (may be repeated, order kept)\n"
    "  --tls-cert FILE      the DX host's certificate (PEM) to sign for tls=\n"
    "  -k, --key FILE       organizational key file holding the signet's POK\n"
    "  --expiry DAYS        exp= field: days the domain stays DIME-required\n"
    "  --record-ttl SECS    the paper's ttl= field inside the record\n"
    "  --ttl SECS           TTL of the zone-file lines (default 3600)\n"
    "  -h, --help           show this help\n" EXIT_HELP;

static int parse_u32(const char *opt, const char *arg, uint32_t *out)
{
    char *end;
    errno = 0;
    if (arg[0] < '0' || arg[0] > '9')
        return usage_error("%s needs a non-negative decimal number, got '%s'", opt, arg);
    unsigned long long v = strtoull(arg, &end, 10);
    if (*end != '\0' || errno != 0 || v > 0xffffffffull)
        return usage_error("%s needs a decimal number up to 4294967295, got '%s'", opt, arg);
    *out = (uint32_t)v;
    return EX_OK;
}

/* Reads a PEM certificate and returns its DER encoding (malloc'd). */
static int load_cert_der(const char *path, uint8_t **der, size_t *derlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fail_msg(path, "%s", strerror(errno));
        return EX_INPUT;
    }
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL) {
        unsigned long e = ERR_get_error();
        char buf[160];
        ERR_error_string_n(e, buf, sizeof(buf));
        ERR_clear_error();
        fail_msg(path, "not a PEM X.509 certificate (%s)", e ? buf : "no certificate found");
        return EX_INPUT;
    }
    unsigned char *p = NULL;
    int n = i2d_X509(x, &p);
    X509_free(x);
    if (n <= 0) {
        fail_msg(path, "cannot DER-encode the certificate");
        return EX_INTERNAL;
    }
    *der = dc_xmalloc((size_t)n);
    memcpy(*der, p, (size_t)n);
    OPENSSL_free(p);
    *derlen = (size_t)n;
    return EX_OK;
}

static int cmd_dns_record(int argc, char **argv)
{
    static const struct option opts[] = {
        {"policy", required_argument, NULL, OPT_POLICY},
        {"dx", required_argument, NULL, OPT_DX},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"key", required_argument, NULL, 'k'},
        {"expiry", required_argument, NULL, OPT_EXPIRY},
        {"record-ttl", required_argument, NULL, OPT_RECORD_TTL},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *certpath = NULL, *keypath = NULL;
    struct dc_mrec *rec = dc_mrec_new();
    struct dc_err err = {0};
    uint32_t ttl = 3600;
    int c, rc = EX_OK;
    struct dc_signet *org = NULL;
    struct dc_keyfile *kf = NULL;
    uint8_t *der = NULL;
    size_t derlen = 0;
    char *id = NULL, *text = NULL, *lines = NULL;

    while (rc == EX_OK && (c = getopt_long(argc, argv, ":k:h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_POLICY:
            if (strcasecmp(optarg, "experimental") == 0)
                rec->policy = DC_MREC_POL_EXPERIMENTAL;
            else if (strcasecmp(optarg, "mixed") == 0)
                rec->policy = DC_MREC_POL_MIXED;
            else if (strcasecmp(optarg, "strict") == 0)
                rec->policy = DC_MREC_POL_STRICT;
            else
                rc = usage_error("--policy must be experimental, mixed or strict");
            break;
        case OPT_DX:
            if (dc_mrec_add_dx(rec, optarg, &err) != DC_OK)
                rc = usage_error("--dx: %s", err.msg);
            break;
        case OPT_TLS_CERT: certpath = optarg; break;
        case 'k': keypath = optarg; break;
        case OPT_EXPIRY:
            rc = parse_u32("--expiry", optarg, &rec->exp_days);
            rec->has_exp = 1;
            break;
        case OPT_RECORD_TTL:
            rc = parse_u32("--record-ttl", optarg, &rec->ttl);
            rec->has_ttl = 1;
            break;
        case OPT_TTL:
            rc = parse_u32("--ttl", optarg, &ttl);
            if (rc == EX_OK && ttl > 0x7fffffffu)
                rc = usage_error("--ttl is at most 2147483647");
            break;
        case 'h': fputs(help_dns_record, stdout); goto out;
        default: rc = bad_option(argc, argv, c); break;
        }
    }
    if (rc != EX_OK)
        goto out;
    if (optind + 1 != argc) {
        rc = usage_error("needs exactly one ORGSIGNET");
        goto out;
    }
    if ((certpath == NULL) != (keypath == NULL)) {
        rc = usage_error("--tls-cert and -k go together");
        goto out;
    }
    const char *path = argv[optind];
    if ((rc = load_signet(path, DC_SIGNET_ORG, &org)) != EX_OK)
        goto out;
    uint8_t pok[DC_ED25519_PUB_LEN];
    if (dc_signet_signing_key(org, pok, &err) != DC_OK) {
        fail_err(path, &err);
        rc = EX_INPUT;
        goto out;
    }
    enum dc_signet_state st =
        dc_signet_verify_org(org, (const uint8_t(*)[DC_ED25519_PUB_LEN])pok, 1, &err);
    if (st < DC_SS_CRYPTO) {
        fail_msg(path, "does not verify with its own POK (%s): %s", state_token(st),
                 err.msg);
        rc = EX_VERIFY;
        goto out;
    }
    id = dc_signet_id(org);
    if (id == NULL) {
        fail_msg(path, "has no signet identifier (fid 254), so its domain is unknown");
        rc = EX_INPUT;
        goto out;
    }
    if (dc_mrec_add_pok(rec, pok, &err) != DC_OK) {
        fail_err(path, &err);
        rc = EX_INTERNAL;
        goto out;
    }
    if (certpath != NULL) {
        struct dc_signer signer;
        uint8_t sig[DC_ED25519_SIG_LEN];
        if ((rc = load_key(keypath, DC_KEY_ORG, &kf)) != EX_OK)
            goto out;
        if (kf->sign == NULL || memcmp(kf->sign->pub, pok, DC_ED25519_PUB_LEN) != 0) {
            fail_msg(keypath, "does not hold the POK of %s (tls= must be signed by the POK)",
                     path);
            rc = EX_VERIFY;
            goto out;
        }
        if ((rc = load_cert_der(certpath, &der, &derlen)) != EX_OK)
            goto out;
        dc_signer_local(&signer, kf->sign);
        if (dc_mrec_tls_sign(&signer, der, derlen, sig, NULL, &err) != DC_OK ||
            dc_mrec_add_tls(rec, sig, &err) != DC_OK) {
            fail_err(certpath, &err);
            rc = EX_INTERNAL;
            goto out;
        }
    }
    if (dc_mrec_generate(rec, &text, &err) != DC_OK ||
        dc_mrec_zone_lines(id, ttl, text, &lines, &err) != DC_OK) {
        char safe[68];
        fail_msg(path, "cannot make the record for '%s': %s",
                 dc_safe_str(id, strlen(id), safe, 64), err.msg);
        rc = EX_INPUT;
        goto out;
    }
    fputs(lines, stdout);
out:
    free(lines);
    free(text);
    free(id);
    free(der);
    dc_keyfile_free(kf);
    dc_signet_free(org);
    dc_mrec_free(rec);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------------------- */

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"org-generate", cmd_org_generate, "new organizational key file and signet"},
    {"user-request", cmd_user_request, "new user key file and signing request (SSR)"},
    {"sign", cmd_sign, "sign an SSR into a user signet"},
    {"rotate", cmd_rotate, "new user key and SSR with chain of custody from the current key"},
    {"sok-add", cmd_sok_add, "add a secondary organizational key to the org signet"},
    {"show", cmd_show, "print the content of signets, SSRs and key files"},
    {"verify", cmd_verify, "verify a signet or SSR"},
    {"dns-record", cmd_dns_record, "print the _dime and _dx TXT records for the org signet"},
    {"fingerprint", cmd_fingerprint, "print fingerprints"},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void main_help(FILE *f)
{
    fputs("Usage: dime-signet COMMAND [options] [arguments]\n"
          "       dime-signet --help | --version\n"
          "Offline key and signet work for DIME organizations and users.\n\nCommands:\n",
          f);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fputs("\n'dime-signet COMMAND --help' describes a command.\n" EXIT_HELP, f);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("no command given");
    const char *first = argv[1];
    if (strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0 ||
        strcmp(first, "help") == 0) {
        main_help(stdout);
        return EX_OK;
    }
    if (strcmp(first, "--version") == 0 || strcmp(first, "-V") == 0) {
        printf("dime-signet (dime-gateway) %s\n", DIME_VERSION);
        return EX_OK;
    }
    if (first[0] == '-')
        return usage_error("unknown option '%s'", first);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(first, commands[i].name) == 0) {
            g_cmd = commands[i].name;
            opterr = 0;
            optind = 1;
            int rc = commands[i].fn(argc - 1, argv + 1);
            if (fflush(stdout) != 0 && rc == EX_OK) {
                fail_msg("stdout", "%s", strerror(errno));
                rc = EX_INTERNAL;
            }
            return rc;
        }
    }
    return usage_error("unknown command '%s'", first);
}
