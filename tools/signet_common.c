/*
 * signet_common - the parts of dime-signet every command uses: loading signets, SSRs and
 * key files (armored or binary) with the error line and exit status for what went wrong,
 * writing them, checking names and addresses, printing untrusted text and fingerprints,
 * the info-field options shared by org-generate and sign, and the checks of an
 * organization's POK that sign, sok-add and dns-record make.
 */
#include "signet.h"

#include "dc_armor.h"
#include "dc_b64.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Largest input file we read: a maximal binary object in armor (4/3 + line breaks). */
#define MAX_INPUT_FILE (2u * DC_ARMOR_BIN_MAX + 4096u)

/* ---------------------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------------------- */

/* Reports a library error about file; strips a leading "file: " the library may add. */
void fail_err(const char *file, const struct dc_err *err)
{
    const char *m = err->msg;
    size_t fl = file != NULL ? strlen(file) : 0;
    if (fl > 0 && strncmp(m, file, fl) == 0 && m[fl] == ':' && m[fl + 1] == ' ')
        m += fl + 2;
    if (*m == '\0')
        m = dc_status_name(err->code);
    tl_fail(file, "%s", m);
}

/* Exit status for a failure to load an input. */
int input_exit(enum dc_status st)
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

void object_free(struct object *o)
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
int load_object(const char *path, struct object *o)
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
        tl_fail(path, "too short for a DIME object (%zu bytes)", binlen);
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
        tl_fail(path, "not a DIME signet, SSR or key file (object type %u)", (unsigned)magic);
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
const char *state_token(enum dc_signet_state st)
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

const char *state_meaning(enum dc_signet_state st)
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

const char *signet_object_name(enum dc_signet_type t)
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
int load_signet(const char *path, enum dc_signet_type want, struct dc_signet **out)
{
    struct object o;
    int rc = load_object(path, &o);
    if (rc != EX_OK)
        return rc;
    if (o.key != NULL) {
        tl_fail(path, "is %s, expected %s", key_kind_name(o.key),
                want ? signet_kind_name(want) : "a signet");
        object_free(&o);
        return EX_INPUT;
    }
    if (want != 0 && o.signet->type != want) {
        tl_fail(path, "is %s, expected %s", signet_kind_name(o.signet->type),
                signet_kind_name(want));
        object_free(&o);
        return EX_INPUT;
    }
    *out = o.signet;
    return EX_OK;
}

int load_key(const char *path, enum dc_key_type want, struct dc_keyfile **out)
{
    struct object o;
    int rc = load_object(path, &o);
    if (rc != EX_OK)
        return rc;
    if (o.signet != NULL) {
        tl_fail(path, "is %s, expected a %s key file", signet_kind_name(o.signet->type),
                want == DC_KEY_ORG ? "organizational" : "user");
        object_free(&o);
        return EX_INPUT;
    }
    if (o.key->type != want) {
        tl_fail(path, "is %s, expected a %s key file", key_kind_name(o.key),
                want == DC_KEY_ORG ? "organizational" : "user");
        object_free(&o);
        return EX_INPUT;
    }
    *out = o.key;
    return EX_OK;
}

/* Refuses to replace an existing file unless forced. */
int check_new_file(const char *path, bool force)
{
    struct stat sb;
    if (force)
        return EX_OK;
    if (lstat(path, &sb) == 0) {
        tl_fail(path, "already exists (use --force to overwrite)");
        return EX_INTERNAL;
    }
    if (errno != ENOENT) {
        tl_fail(path, "%s", strerror(errno));
        return EX_INTERNAL;
    }
    return EX_OK;
}

int write_signet(const char *path, const struct dc_signet *s)
{
    struct dc_err err = {0};
    char *text = dc_signet_armor(s);
    if (text == NULL) {
        tl_fail(path, "cannot armor the signet");
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

int save_key(const char *path, const struct dc_keyfile *k)
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
bool valid_domain(char *d)
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
const char *valid_address(char *a)
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
void print_quoted(FILE *f, const uint8_t *s, size_t n)
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

void print_b64(FILE *f, const uint8_t *p, size_t n)
{
    char *b = dc_b64_encode_alloc(p, n, 0);
    fputs(b, f);
    free(b);
}

/* Binary fields (keys, signatures, photo) are printed in base64, the others as text. */
bool field_is_binary(enum dc_signet_type t, uint8_t fid)
{
    if (fid == DC_FID_FULL || fid == DC_FID_IDSIG || fid == DC_FID_PHOTO)
        return true;
    if (t == DC_SIGNET_ORG)
        return fid >= 1 && fid <= 4;
    return fid >= 1 && fid <= 6;
}

const char *perm_string(uint8_t perm, char buf[64])
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

const struct fp_kind_name fp_kinds[N_FP_KINDS] = {
    {"ssr", DC_FP_SSR},
    {"crypto", DC_FP_CRYPTO},
    {"full", DC_FP_FULL},
    {"id", DC_FP_ID},
};

/* Prints "<prefix><kind>: <fp>" for every fingerprint the signet reaches. */
int print_fingerprints(const char *path, const struct dc_signet *s, const char *prefix)
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

void info_free(struct info_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Adds one info option (by fid), or parses --field FID=VALUE (fid 0). */
int info_add(struct info_list *l, size_t cap, uint8_t fid, const char *arg)
{
    if (l->v == NULL)
        l->v = dc_xcalloc(cap, sizeof(*l->v));
    if (l->n >= cap)
        return tl_usage("too many info fields");
    struct info_field *f = &l->v[l->n];
    f->fid = fid;
    f->value = arg;
    if (fid == 0) {
        const char *eq = strchr(arg, '=');
        if (eq == NULL || eq == arg)
            return tl_usage("--field needs FID=VALUE, got '%s'", arg);
        f->value = eq + 1;
        char *end;
        errno = 0;
        unsigned long v = strtoul(arg, &end, 10);
        if (arg[0] >= '0' && arg[0] <= '9') {
            if (end != eq || errno != 0 || v < 16 || v > 250)
                return tl_usage("--field: field id must be a number from 16 to 250");
            f->fid = (uint8_t)v;
        } else {
            f->fid = DC_FID_UNDEFINED;
            f->name = arg;
            f->name_len = (size_t)(eq - arg);
            if (f->name_len > 255)
                return tl_usage("--field: undefined field name longer than 255 bytes");
        }
    }
    if (f->value[0] == '\0')
        return tl_usage("empty value for field %u", (unsigned)f->fid);
    l->n++;
    return EX_OK;
}

/* Adds the info fields to a signet (below 253). Errors are usage errors. */
int info_apply(const struct info_list *l, struct dc_signet *s)
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
            tl_fail(NULL, "field %u (%s): %s", (unsigned)f->fid, fname ? fname : "unknown",
                    err.msg);
            return st == DC_ERR_NOMEM || st == DC_ERR_CRYPTO ? EX_INTERNAL : EX_USAGE;
        }
    }
    return EX_OK;
}

/* Handles an info-field option (--field, or a named field); any other option is reported as
 * bad_option does. */
int info_option(struct info_list *l, int argc, char **argv, int c)
{
    if (c == OPT_FIELD)
        return info_add(l, (size_t)argc, 0, optarg);
    if (c >= OPT_FIELD_BASE && c < OPT_FIELD_BASE + 256)
        return info_add(l, (size_t)argc, (uint8_t)(c - OPT_FIELD_BASE), optarg);
    return bad_option(argc, argv, c);
}

/* Reports an unknown option or a missing argument after getopt_long returned '?' or ':'. */
int bad_option(int argc, char **argv, int c)
{
    const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    if (c == ':')
        return tl_usage("option '%s' requires an argument", arg);
    if (optopt != 0 && strncmp(arg, "--", 2) != 0)
        return tl_usage("unknown option '-%c'", optopt);
    return tl_usage("unknown option '%s'", arg);
}

/* Signs 253, sets the ID and signs 255. */
int finish_signet(struct dc_signet *s, const char *id, const struct dc_signer *signer,
                  const char *what)
{
    struct dc_err err = {0};
    if (dc_signet_sign(s, DC_FID_FULL, signer, &err) != DC_OK ||
        dc_signet_set_id(s, id, &err) != DC_OK ||
        dc_signet_sign(s, DC_FID_IDSIG, signer, &err) != DC_OK) {
        tl_fail(what, "cannot complete the signet: %s", err.msg);
        return err.code == DC_ERR_FIELD || err.code == DC_ERR_FORMAT ? EX_USAGE : EX_INTERNAL;
    }
    return EX_OK;
}

/* ---------------------------------------------------------------------------------------
 * The organization's POK
 * ------------------------------------------------------------------------------------- */

int org_pok(const char *path, const struct dc_signet *org, uint8_t pok[DC_ED25519_PUB_LEN])
{
    struct dc_err err = {0};
    if (dc_signet_signing_key(org, pok, &err) != DC_OK) {
        fail_err(path, &err);
        return EX_INPUT;
    }
    return EX_OK;
}

int pok_matches(const char *keypath, const struct dc_keyfile *kf,
                const uint8_t pok[DC_ED25519_PUB_LEN], const char *orgpath)
{
    if (memcmp(pok, kf->sign->pub, DC_ED25519_PUB_LEN) != 0) {
        tl_fail(keypath, "its POK is not the POK of %s", orgpath);
        return EX_VERIFY;
    }
    return EX_OK;
}

int org_self_check(const char *path, const struct dc_signet *org,
                   const uint8_t pok[DC_ED25519_PUB_LEN])
{
    struct dc_err err = {0};
    enum dc_signet_state st =
        dc_signet_verify_org(org, (const uint8_t(*)[DC_ED25519_PUB_LEN])pok, 1, &err);
    if (st < DC_SS_CRYPTO) {
        tl_fail(path, "does not verify with its own POK (%s): %s", state_token(st), err.msg);
        return EX_VERIFY;
    }
    return EX_OK;
}
