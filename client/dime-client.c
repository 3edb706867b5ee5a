/*
 * dime-client - the DIME user's own client: keys made and kept on the user's machine, sealed
 * with a passphrase; D/MIME made and signed here, so the provider never holds the private
 * keys (Paranoid) and cannot read the mail it carries. See dime-client(1).
 *
 * Commands: init --cautious|--paranoid (signed by hand, or through the provider's account
 * service with --account), import-signet, rotate, fetch-key, migrate, send, sync and decrypt
 * (cl_sync.c). Errors are one line, "dime-client: <command>: <reason>"; exit codes are
 * sendmail's (sysexits.h). Nothing of a key or a passphrase is ever printed or logged.
 */
#include "cl_account.h"
#include "cl_cli.h"
#include "cl_keyfile.h"
#include "cl_pass.h"
#include "cl_lookup.h"
#include "cl_send.h"
#include "cl_sync.h"

#include "dc_b64.h"
#include "dc_signet.h"
#include "dc_util.h"
#include "dl_resolve.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#define MAX_MESSAGE (50u * 1024u * 1024u)
#define PASS_ENV "DIME_CLIENT_PASSPHRASE"
#define SMTP_PASS_ENV "DIME_SMTP_PASSWORD"

static const char *cmd = "dime-client";

__attribute__((format(printf, 2, 3))) static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cl_vsay(cmd, code, fmt, ap);
    va_end(ap);
    return code;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: dime-client [-d DIR] init --paranoid|--cautious ADDRESS [--kdf-cost COST]\n"
            "                   [--passphrase-fd N] [--account HOST:PORT [--login LOGIN]\n"
            "                   [--password-fd N] [--ca-file FILE]]\n"
            "       dime-client [-d DIR] import-signet SIGNET --org ORG-SIGNET\n"
            "       dime-client [-d DIR] rotate --account HOST:PORT [--login LOGIN]\n"
            "                   [--password-fd N] [--ca-file FILE] [--passphrase-fd N]\n"
            "                   [--kdf-cost COST]\n"
            "       dime-client [-d DIR] fetch-key ADDRESS --account HOST:PORT [--login LOGIN]\n"
            "                   [--password-fd N] [--ca-file FILE] [--passphrase-fd N]\n"
            "       dime-client [-d DIR] migrate --paranoid ADDRESS|--trustful --account HOST:PORT\n"
            "                   [--login LOGIN] [--password-fd N] [--ca-file FILE]\n"
            "                   [--passphrase-fd N] [--kdf-cost COST]\n"
            "       dime-client [-d DIR] send [-t] [-f ADDRESS] --smtp URL [--login LOGIN]\n"
            "                   [--password-fd N] [--passphrase-fd N] [--ca-file FILE]\n"
            "                   [--signets DIR] [--write DIR] [--trust-anchor-file FILE]\n"
            "                   [--trust-anchor RR] [--dns-stub 'ZONE ADDR[@PORT]']\n"
            "                   [--dns-local-zone 'ZONE TYPE'] [--dx-port PORT]\n"
            "                   [--dx-connect-to ADDR:PORT] [RECIPIENT...] <message\n"
            "       dime-client [-d DIR] sync --imap URL [--login LOGIN] [--password-fd N]\n"
            "                   [--passphrase-fd N] [--ca-file FILE] [--signets DIR]\n"
            "                   [--maildir DIR] [--mailbox NAME] [--authserv-id ID]\n"
            "       dime-client [-d DIR] decrypt [--passphrase-fd N] [--signets DIR]\n"
            "                   [--authserv-id ID] <message >message\n");
    exit(EX_USAGE);
}

/* The client's directory: -d, else $DIME_CLIENT_DIR, else ~/.dime-client. */
static const char *dir_of(const char *opt)
{
    static char buf[4096];
    if (opt != NULL)
        return opt;
    const char *e = getenv("DIME_CLIENT_DIR");
    if (e != NULL && *e)
        return e;
    const char *h = getenv("HOME");
    snprintf(buf, sizeof(buf), "%s/.dime-client", h && *h ? h : ".");
    return buf;
}

static char *path_in(const char *dir, const char *name)
{
    return dc_xasprintf("%s/%s", dir, name);
}

static int parse_fd(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > 65535) {
        fail(EX_USAGE, "'%s' is not a file descriptor number", s);
        exit(EX_USAGE);
    }
    return (int)v;
}

static int save_armored(const char *path, const struct dc_signet *s)
{
    struct dc_err e = {0};
    char *a = dc_signet_armor(s);
    enum dc_status st = dc_write_file(path, a, strlen(a), 0644, &e);
    free(a);
    return st == DC_OK ? EX_OK : fail(EX_CANTCREAT, "%s: %s", path, e.msg);
}

/* ---- the provider's account service ---- */

static bool same_key(const struct dc_signet *a, const struct dc_signet *b)
{
    uint8_t sa[DC_ED25519_PUB_LEN], sb[DC_ED25519_PUB_LEN];
    uint8_t ea[DC_SECP_PUB_LEN], eb[DC_SECP_PUB_LEN];
    return dc_signet_signing_key(a, sa, NULL) == DC_OK &&
           dc_signet_signing_key(b, sb, NULL) == DC_OK && memcmp(sa, sb, sizeof(sa)) == 0 &&
           dc_signet_enc_key(a, ea, NULL) == DC_OK && dc_signet_enc_key(b, eb, NULL) == DC_OK &&
           memcmp(ea, eb, sizeof(ea)) == 0;
}

/* The options every command that talks to the account service takes. */
struct acct_opts {
    const char *server, *login, *ca;
    int wfd;
};
#define ACCT_OPTIONS                                                                           \
    {"account", required_argument, NULL, 'A'}, {"login", required_argument, NULL, 'l'},         \
        {"password-fd", required_argument, NULL, 'W'}, {"ca-file", required_argument, NULL, 'C'}

/* Takes one of ACCT_OPTIONS; false for any other option character. */
static bool acct_opt(struct acct_opts *o, int ch)
{
    switch (ch) {
    case 'A': o->server = optarg; return true;
    case 'l': o->login = optarg; return true;
    case 'W': o->wfd = parse_fd(optarg); return true;
    case 'C': o->ca = optarg; return true;
    }
    return false;
}

/* The exit code of a failed account-service call. */
static int acct_code(enum dc_status s)
{
    return s == DC_ERR_IO ? EX_TEMPFAIL : s == DC_ERR_ARG || s == DC_ERR_CUSTODY ||
                                                  s == DC_ERR_SIGNATURE
                                              ? EX_NOPERM
                                              : EX_PROTOCOL;
}

/* Connected and logged in as o->login (default: the address) with the mail password. */
static int acct_login(const struct acct_opts *o, const char *address, struct cl_acct **a)
{
    struct dc_err e = {0};
    char *pw = NULL;
    size_t wl = 0;
    if (cl_pass_get(o->wfd, SMTP_PASS_ENV, "mail password", &pw, &wl, &e) != DC_OK)
        return fail(EX_NOINPUT, "%s", e.msg);
    enum dc_status s = cl_acct_open(o->server, o->ca, 60, a, &e);
    if (s == DC_OK && (s = cl_acct_login(*a, o->login ? o->login : address, pw, wl, &e)) != DC_OK) {
        cl_acct_close(*a);
        *a = NULL;
    }
    cl_pass_free(pw, wl);
    return s == DC_OK ? EX_OK : fail(acct_code(s), "%s", e.msg);
}

/* A request carrying an SSR and maybe a key blob: "VERB ADDRESS [MODE] b64(ssr) [b64(blob)]";
 * the reply "OK generation b64(user signet) b64(org signet)" as parsed signets. */
static int acct_signed(struct cl_acct *a, const char *verb, const char *address,
                       const char *mode, const struct dc_signet *ssr, const uint8_t *blob,
                       size_t bl, struct dc_signet **user, struct dc_signet **org,
                       unsigned long *gen)
{
    struct dc_err e = {0};
    char *sb = dc_b64_encode_alloc(ssr->bin, ssr->bin_len, 1);
    char *bb = blob ? dc_b64_encode_alloc(blob, bl, 1) : NULL;
    char *line = dc_xasprintf("%s %s%s%s %s%s%s", verb, address, mode ? " " : "",
                              mode ? mode : "", sb, bb ? " " : "", bb ? bb : "");
    struct acct_reply rep;
    uint8_t *ub = NULL, *ob = NULL;
    size_t ul = 0, ol = 0;
    enum dc_status s = cl_acct_call(a, line, &rep, &e);
    char *end = NULL;
    if (s == DC_OK && rep.nwords != 3)
        s = dc_fail(&e, DC_ERR_FORMAT, "the provider's answer has %zu words, not 3",
                    rep.nwords);
    if (s == DC_OK && ((*gen = strtoul(rep.words[0].p, &end, 10)) < 1 || *end != ' '))
        s = dc_fail(&e, DC_ERR_FORMAT, "the provider's answer has no generation");
    if (s == DC_OK && (s = cl_acct_word(&rep.words[1], &ub, &ul, &e)) == DC_OK &&
        (s = cl_acct_word(&rep.words[2], &ob, &ol, &e)) == DC_OK &&
        (s = dc_signet_parse(ub, ul, user, &e)) == DC_OK &&
        (s = dc_signet_parse(ob, ol, org, &e)) != DC_OK) {
        dc_signet_free(*user);
        *user = NULL;
    }
    free(sb);
    if (bb != NULL) /* TRUSTFUL: the new generation's keys */
        dc_memzero(bb, strlen(bb));
    free(bb);
    dc_memzero(line, strlen(line));
    free(line);
    free(ub);
    free(ob);
    return s == DC_OK ? EX_OK : fail(acct_code(s), "%s", e.msg);
}

/* A signet the provider signed for request ssr: the same keys, verifying under org (and
 * chained to prev when rotating). */
static int check_signed(const struct dc_signet *user, const struct dc_signet *org,
                        const struct dc_signet *ssr, const struct dc_signet *prev)
{
    struct dc_err e = {0};
    if (user->type != DC_SIGNET_USER || org->type != DC_SIGNET_ORG)
        return fail(EX_PROTOCOL, "the provider answered with the wrong kind of signets");
    if (!same_key(user, ssr))
        return fail(EX_PROTOCOL, "the provider's signet is not for our new keys");
    if (dc_signet_verify_user(user, org, prev, &e) < DC_SS_CRYPTO)
        return fail(EX_PROTOCOL, "the provider's signet does not verify%s: %s",
                    prev ? " (chain of custody from the current one)" : "", e.msg);
    return EX_OK;
}

static int save_signets(const char *dir, const struct dc_signet *user,
                        const struct dc_signet *org)
{
    char *up = path_in(dir, "user.signet"), *op = path_in(dir, "org.signet");
    int rc = save_armored(up, user);
    if (rc == EX_OK)
        rc = save_armored(op, org);
    free(up);
    free(op);
    return rc;
}

/* The signed generation gen becomes the current one: the replaced key and signet stay as
 * key-(gen-1).sealed and user-(gen-1).signet, for the mail sealed to them; key.sealed.new
 * becomes key.sealed. */
static int adopt(const char *dir, unsigned long gen, const struct dc_signet *cur,
                 const struct dc_signet *user, const struct dc_signet *org)
{
    char *kpath = path_in(dir, "key.sealed"), *npath = path_in(dir, "key.sealed.new");
    char *old = dc_xasprintf("%s/key-%lu.sealed", dir, gen - 1);
    int rc = EX_OK;
    if (rename(kpath, old) != 0 || rename(npath, kpath) != 0)
        rc = fail(EX_CANTCREAT, "%s: %s (the new key is signed: keep %s)", kpath,
                  strerror(errno), npath);
    free(old);
    old = dc_xasprintf("%s/user-%lu.signet", dir, gen - 1);
    if (rc == EX_OK)
        save_armored(old, cur);
    if (rc == EX_OK)
        rc = save_signets(dir, user, org);
    free(old);
    free(kpath);
    free(npath);
    return rc;
}

/* ---- init ---- */

/* The options of init and migrate: --paranoid or --OTHER (exactly one), --kdf-cost,
 * --passphrase-fd and the account service's options. */
struct mode_opts {
    bool paranoid, other;
    int pfd, cost;
    struct acct_opts ao;
};

static int mode_options(int argc, char **argv, const char *other, struct mode_opts *o)
{
    const struct option opts[] = {{"paranoid", no_argument, NULL, 'p'},
                                  {other, no_argument, NULL, 'o'},
                                  {"kdf-cost", required_argument, NULL, 'k'},
                                  {"passphrase-fd", required_argument, NULL, 'P'},
                                  ACCT_OPTIONS,
                                  {NULL, 0, NULL, 0}};
    *o = (struct mode_opts){false, false, -1, CL_KDF_MODERATE, {NULL, NULL, NULL, -1}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'p': o->paranoid = true; break;
        case 'o': o->other = true; break;
        case 'k':
            if ((o->cost = cl_kdf_cost_from_name(optarg)) < 0)
                return fail(EX_USAGE, "--kdf-cost: interactive, moderate or sensitive");
            break;
        case 'P': o->pfd = parse_fd(optarg); break;
        default:
            if (!acct_opt(&o->ao, ch))
                usage();
        }
    }
    if (o->paranoid == o->other)
        usage();
    return EX_OK;
}

static int cmd_init(const char *dir, int argc, char **argv)
{
    struct mode_opts mo;
    int rc0 = mode_options(argc, argv, "cautious", &mo);
    if (rc0 != EX_OK)
        return rc0;
    if (optind + 1 != argc)
        usage();
    bool cautious = mo.other;
    int pfd = mo.pfd, cost = mo.cost;
    struct acct_opts ao = mo.ao;
    if (cautious && ao.server == NULL)
        return fail(EX_USAGE, "--cautious needs --account: the provider keeps the sealed "
                    "keys, so it must sign and store them");
    const char *addr = argv[optind];
    struct dc_err e = {0};
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return fail(EX_CANTCREAT, "%s: %s", dir, strerror(errno));
    char *kpath = path_in(dir, "key.sealed"), *rpath = path_in(dir, "request.ssr"),
         *upath = path_in(dir, "user.signet"), *mpath = path_in(dir, "account.mode");
    struct stat st;
    int rc = EX_OK;
    char *pass = NULL;
    size_t pl = 0;
    struct dc_sign_key *sk = NULL;
    struct dc_enc_key *ek = NULL;
    struct dc_signet *ssr = NULL, *user = NULL, *org = NULL;
    struct cl_acct *a = NULL;
    uint8_t *sealed = NULL;
    size_t sl = 0;
    const char *mode = cautious ? "cautious" : "paranoid";
    unsigned long gen = 0;
    if (stat(kpath, &st) == 0) {
        /* keys made by an init whose enrollment did not finish: submit them again */
        if (ao.server == NULL || stat(upath, &st) == 0) {
            rc = fail(EX_CANTCREAT, "%s exists: this directory already has keys", kpath);
            goto out;
        }
        if (dc_read_file(kpath, CL_KEYFILE_MAX, &sealed, &sl, &e) != DC_OK ||
            dc_signet_load_file(rpath, &ssr, &e) != DC_OK) {
            rc = fail(EX_NOINPUT, "the keys of an earlier init: %s", e.msg);
            goto out;
        }
    } else {
        if (cl_pass_get(pfd, PASS_ENV, "passphrase for the new keys", &pass, &pl, &e) != DC_OK ||
            dc_sign_key_generate(&sk, &e) != DC_OK || dc_enc_key_generate(&ek, &e) != DC_OK ||
            dc_signet_ssr_create(sk, ek->pub, NULL, &ssr, &e) != DC_OK ||
            cl_keyfile_seal(addr, sk, ek, pass, pl, (enum cl_kdf_cost)cost, &sealed, &sl, &e) !=
                DC_OK) {
            rc = fail(e.code == DC_ERR_ARG ? EX_USAGE : EX_SOFTWARE, "%s", e.msg);
            goto out;
        }
        if (dc_write_file_new(kpath, sealed, sl, 0600, &e) != DC_OK) {
            rc = fail(EX_CANTCREAT, "%s: %s", kpath, e.msg);
            goto out;
        }
        if ((rc = save_armored(rpath, ssr)) != EX_OK)
            goto out;
    }
    if (ao.server == NULL) {
        printf("keys for %s made and sealed in %s\n"
               "signing request: %s (have the provider sign it, then: dime-client "
               "import-signet)\n", addr, kpath, rpath);
        goto out;
    }
    /* the provider signs; a Cautious account's sealed keys go with the request */
    if (dc_write_file(mpath, mode, strlen(mode), 0600, &e) != DC_OK) {
        rc = fail(EX_CANTCREAT, "%s: %s", mpath, e.msg);
        goto out;
    }
    if ((rc = acct_login(&ao, addr, &a)) != EX_OK ||
        (rc = acct_signed(a, "ENROLL", addr, mode, ssr, cautious ? sealed : NULL, sl, &user,
                          &org, &gen)) != EX_OK ||
        (rc = check_signed(user, org, ssr, NULL)) != EX_OK ||
        (rc = save_signets(dir, user, org)) != EX_OK)
        goto out;
    printf("keys for %s made and sealed in %s; %s account enrolled, signet %s\n", addr, kpath,
           mode, upath);
out:
    cl_acct_close(a);
    cl_pass_free(pass, pl);
    dc_sign_key_free(sk);
    dc_enc_key_free(ek);
    dc_signet_free(ssr);
    dc_signet_free(user);
    dc_signet_free(org);
    free(sealed);
    free(kpath);
    free(rpath);
    free(upath);
    free(mpath);
    return rc;
}

/* ---- rotate ---- */

/* The next generation: new keys made here, their request signed by the current key (chain
 * of custody), sealed with the same passphrase beside the current one until the provider has
 * signed it. trustful: migrate --trustful (the keys go to the provider, the passphrase being
 * the user's consent), else rotate. */
static int next_generation(const char *dir, const struct acct_opts *ao, int pfd, int cost,
                           bool trustful)
{
    struct dc_err e = {0};
    char *kpath = path_in(dir, "key.sealed"), *npath = path_in(dir, "key.sealed.new"),
         *upath = path_in(dir, "user.signet"), *opath = path_in(dir, "org.signet"),
         *mpath = path_in(dir, "account.mode"), *address = NULL, *pass = NULL;
    uint8_t *kbin = NULL, *sealed = NULL, *mode = NULL;
    size_t kl = 0, sl = 0, pl = 0, ml = 0;
    struct dc_sign_key *sk = NULL, *nsk = NULL;
    struct dc_enc_key *ek = NULL, *nek = NULL;
    struct dc_signet *cur = NULL, *org = NULL, *ssr = NULL, *user = NULL, *norg = NULL;
    struct cl_acct *a = NULL;
    unsigned long gen = 0;
    int rc = EX_OK;
    if (dc_read_file(kpath, CL_KEYFILE_MAX, &kbin, &kl, &e) != DC_OK ||
        dc_signet_load_file(upath, &cur, &e) != DC_OK ||
        dc_signet_load_file(opath, &org, &e) != DC_OK ||
        dc_read_file(mpath, 16, &mode, &ml, &e) != DC_OK) {
        rc = fail(EX_NOINPUT, "no enrolled keys in %s: %s", dir, e.msg);
        goto out;
    }
    bool cautious = ml >= 8 && memcmp(mode, "cautious", 8) == 0;
    if (trustful && ml >= 8 && memcmp(mode, "trustful", 8) == 0) {
        rc = fail(EX_USAGE, "the account is already Trustful");
        goto out;
    }
    if (cl_pass_get(pfd, PASS_ENV, trustful ? "passphrase of your DIME keys (to hand the "
                    "provider new keys)" : "passphrase of your DIME keys", &pass, &pl, &e) !=
        DC_OK) {
        rc = fail(EX_NOINPUT, "%s", e.msg);
        goto out;
    }
    if (cl_keyfile_open(kbin, kl, pass, pl, &address, &sk, &ek, &e) != DC_OK) {
        rc = fail(e.code == DC_ERR_SIGNATURE ? EX_NOPERM : EX_DATAERR, "%s: %s", kpath, e.msg);
        goto out;
    }
    /* the next generation, its request signed by the current key (chain of custody), sealed
     * with the same passphrase beside the current one until the provider has signed it */
    if (dc_sign_key_generate(&nsk, &e) != DC_OK || dc_enc_key_generate(&nek, &e) != DC_OK ||
        dc_signet_ssr_create(nsk, nek->pub, sk, &ssr, &e) != DC_OK ||
        cl_keyfile_seal(address, nsk, nek, pass, pl, (enum cl_kdf_cost)cost, &sealed, &sl,
                        &e) != DC_OK) {
        rc = fail(EX_SOFTWARE, "%s", e.msg);
        goto out;
    }
    if (dc_write_file(npath, sealed, sl, 0600, &e) != DC_OK) {
        rc = fail(EX_CANTCREAT, "%s: %s", npath, e.msg);
        goto out;
    }
    /* to Trustful: the new generation's keys go with it (the vault seals them); a Cautious
     * rotation uploads them sealed with the passphrase */
    uint8_t keys[ACCT_KEYS_LEN];
    memcpy(keys, nsk->seed, DC_ED25519_SEED_LEN);
    memcpy(keys + DC_ED25519_SEED_LEN, nek->priv, DC_SECP_PRIV_LEN);
    rc = acct_login(ao, address, &a);
    if (rc == EX_OK)
        rc = acct_signed(a, trustful ? "TRUSTFUL" : "ROTATE", address, NULL, ssr,
                         trustful ? keys : cautious ? sealed : NULL,
                         trustful ? sizeof(keys) : sl, &user, &norg, &gen);
    dc_memzero(keys, sizeof(keys));
    if (rc != EX_OK || (rc = check_signed(user, norg, ssr, cur)) != EX_OK ||
        (rc = adopt(dir, gen, cur, user, norg)) != EX_OK)
        goto out;
    if (trustful && dc_write_file(mpath, "trustful", 8, 0600, &e) != DC_OK)
        rc = fail(EX_CANTCREAT, "%s: %s", mpath, e.msg);
    else if (trustful)
        printf("%s is Trustful: generation %lu made here, signed, and its keys handed to the "
               "provider; the earlier generations' keys stay here only (key-N.sealed)\n",
               address, gen);
    else
        printf("keys of %s rotated to generation %lu: signet %s, the previous key kept as "
               "key-%lu.sealed\n", address, gen, upath, gen - 1);
out:
    cl_acct_close(a);
    cl_pass_free(pass, pl);
    dc_sign_key_free(sk);
    dc_sign_key_free(nsk);
    dc_enc_key_free(ek);
    dc_enc_key_free(nek);
    dc_signet_free(cur);
    dc_signet_free(org);
    dc_signet_free(ssr);
    dc_signet_free(user);
    dc_signet_free(norg);
    free(kbin);
    free(sealed);
    free(mode);
    free(address);
    free(kpath);
    free(npath);
    free(upath);
    free(opath);
    free(mpath);
    return rc;
}

static int cmd_rotate(const char *dir, int argc, char **argv)
{
    static const struct option opts[] = {{"kdf-cost", required_argument, NULL, 'k'},
                                         {"passphrase-fd", required_argument, NULL, 'P'},
                                         ACCT_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    int ch, pfd = -1, cost = CL_KDF_MODERATE;
    struct acct_opts ao = {NULL, NULL, NULL, -1};
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'k') {
            if ((cost = cl_kdf_cost_from_name(optarg)) < 0)
                return fail(EX_USAGE, "--kdf-cost: interactive, moderate or sensitive");
        } else if (ch == 'P') {
            pfd = parse_fd(optarg);
        } else if (!acct_opt(&ao, ch)) {
            usage();
        }
    }
    if (ao.server == NULL || optind != argc)
        usage();
    return next_generation(dir, &ao, pfd, cost, false);
}

/* ---- migrate ---- */

/* One word of a KEYS answer: b64(u32 generation || signing seed || encryption scalar). */
static enum dc_status take_keys(const struct acct_word *w, uint32_t *gen, struct dc_sign_key **sk,
                                struct dc_enc_key **ek, struct dc_err *e)
{
    uint8_t *b = NULL;
    size_t bl = 0;
    enum dc_status s = cl_acct_word(w, &b, &bl, e);
    if (s == DC_OK && bl != 4 + ACCT_KEYS_LEN)
        s = dc_fail(e, DC_ERR_FORMAT, "the provider sent a key of %zu bytes", bl);
    if (s == DC_OK) {
        *gen = dc_get_be(b, 4);
        s = dc_sign_key_from_seed(b + 4, sk, e);
    }
    if (s == DC_OK)
        s = dc_enc_key_from_private(b + 4 + DC_ED25519_SEED_LEN, ek, e);
    if (b != NULL) {
        dc_memzero(b, bl);
        free(b);
    }
    return s;
}

/* Whether signet s names the keys sk and ek. */
static bool names_keys(const struct dc_signet *s, const struct dc_sign_key *sk,
                       const struct dc_enc_key *ek)
{
    uint8_t sp[DC_ED25519_PUB_LEN], ep[DC_SECP_PUB_LEN];
    return dc_signet_signing_key(s, sp, NULL) == DC_OK && dc_signet_enc_key(s, ep, NULL) == DC_OK &&
           memcmp(sp, sk->pub, sizeof(sp)) == 0 && memcmp(ep, ek->pub, sizeof(ep)) == 0;
}

#define HIST_MAX 64

/* Trustful -> Paranoid: the vault's keys of every generation come to this directory (mail
 * sealed to them stays readable), a new generation is made here with a custody signature by
 * the current one and signed by the provider, which then destroys its copies. */
static int to_paranoid(const char *dir, const char *addr, const struct acct_opts *ao, int pfd,
                       int cost)
{
    struct dc_err e = {0};
    char *kpath = path_in(dir, "key.sealed"), *npath = path_in(dir, "key.sealed.new"),
         *mpath = path_in(dir, "account.mode"), *line = NULL, *pass = NULL;
    struct dc_signet *hist[HIST_MAX] = {0}, *horg = NULL, *ssr = NULL, *user = NULL,
                     *org = NULL;
    const struct dc_signet *cur = NULL;
    struct dc_sign_key *sk = NULL, *cur_sk = NULL, *nsk = NULL;
    struct dc_enc_key *ek = NULL, *nek = NULL;
    struct cl_acct *a = NULL;
    struct acct_reply rep;
    uint8_t *sealed = NULL, *b = NULL;
    size_t pl = 0, sl = 0, bl = 0, nh = 0;
    uint32_t cur_gen = 0;
    unsigned long gen = 0;
    int rc = EX_OK;
    struct stat st;
    if (stat(kpath, &st) == 0) {
        rc = fail(EX_CANTCREAT, "%s exists: this directory already has keys", kpath);
        goto out;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rc = fail(EX_CANTCREAT, "%s: %s", dir, strerror(errno));
        goto out;
    }
    if (cl_pass_get(pfd, PASS_ENV, "passphrase for your DIME keys", &pass, &pl, &e) != DC_OK) {
        rc = fail(EX_NOINPUT, "%s", e.msg);
        goto out;
    }
    if ((rc = acct_login(ao, addr, &a)) != EX_OK)
        goto out;
    /* the signets, to check each key the provider hands over against */
    line = dc_xasprintf("HISTORY %s", addr);
    enum dc_status s = cl_acct_call(a, line, &rep, &e);
    if (s == DC_OK && (rep.nwords < 2 || rep.nwords > HIST_MAX + 1))
        s = dc_fail(&e, DC_ERR_FORMAT, "the provider's history has %zu words", rep.nwords);
    for (size_t i = 0; s == DC_OK && i < rep.nwords; i++) {
        struct dc_signet *one = NULL;
        if ((s = cl_acct_word(&rep.words[i], &b, &bl, &e)) == DC_OK &&
            (s = dc_signet_parse(b, bl, &one, &e)) == DC_OK) {
            if (i == 0)
                horg = one;
            else
                hist[nh++] = one;
        }
        free(b);
        b = NULL;
    }
    free(line);
    line = dc_xasprintf("KEYS %s", addr);
    if (s != DC_OK || (s = cl_acct_call(a, line, &rep, &e)) != DC_OK) {
        rc = fail(acct_code(s), "%s", e.msg);
        goto out;
    }
    /* each generation's keys sealed at rest here, beside the signet that names them */
    for (size_t i = 0; i < rep.nwords; i++) {
        uint32_t g = 0;
        size_t h = 0;
        if (take_keys(&rep.words[i], &g, &sk, &ek, &e) != DC_OK) {
            rc = fail(EX_PROTOCOL, "%s", e.msg);
            goto out;
        }
        while (h < nh && !names_keys(hist[h], sk, ek))
            h++;
        if (h == nh) {
            rc = fail(EX_PROTOCOL, "the provider's key of generation %u is in none of its "
                      "signets", g);
            goto out;
        }
        char *kp = dc_xasprintf("%s/key-%u.sealed", dir, g),
             *sp = dc_xasprintf("%s/user-%u.signet", dir, g);
        if (cl_keyfile_seal(addr, sk, ek, pass, pl, (enum cl_kdf_cost)cost, &sealed, &sl, &e) !=
                DC_OK ||
            dc_write_file(kp, sealed, sl, 0600, &e) != DC_OK)
            rc = fail(EX_CANTCREAT, "%s: %s", kp, e.msg);
        if (rc == EX_OK)
            rc = save_armored(sp, hist[h]);
        free(kp);
        free(sp);
        free(sealed);
        sealed = NULL;
        if (rc != EX_OK)
            goto out;
        if (g > cur_gen) { /* the current generation signs the next one's custody */
            cur_gen = g;
            cur = hist[h];
            dc_sign_key_free(cur_sk);
            cur_sk = sk;
            sk = NULL;
        }
        dc_sign_key_free(sk);
        dc_enc_key_free(ek);
        sk = NULL;
        ek = NULL;
    }
    if (cur == NULL || cur != hist[nh - 1]) {
        rc = fail(EX_PROTOCOL, "the provider did not hand over the current generation's keys");
        goto out;
    }
    if (dc_sign_key_generate(&nsk, &e) != DC_OK || dc_enc_key_generate(&nek, &e) != DC_OK ||
        dc_signet_ssr_create(nsk, nek->pub, cur_sk, &ssr, &e) != DC_OK ||
        cl_keyfile_seal(addr, nsk, nek, pass, pl, (enum cl_kdf_cost)cost, &sealed, &sl, &e) !=
            DC_OK) {
        rc = fail(EX_SOFTWARE, "%s", e.msg);
        goto out;
    }
    if (dc_write_file(npath, sealed, sl, 0600, &e) != DC_OK) {
        rc = fail(EX_CANTCREAT, "%s: %s", npath, e.msg);
        goto out;
    }
    if ((rc = acct_signed(a, "PARANOID", addr, NULL, ssr, NULL, 0, &user, &org, &gen)) !=
            EX_OK ||
        (rc = check_signed(user, org, ssr, cur)) != EX_OK)
        goto out;
    if (rename(npath, kpath) != 0) {
        rc = fail(EX_CANTCREAT, "%s: %s (the new key is signed: keep %s)", kpath,
                  strerror(errno), npath);
        goto out;
    }
    if ((rc = save_signets(dir, user, org)) != EX_OK ||
        dc_write_file(mpath, "paranoid", 8, 0600, &e) != DC_OK) {
        rc = rc != EX_OK ? rc : fail(EX_CANTCREAT, "%s: %s", mpath, e.msg);
        goto out;
    }
    printf("%s is Paranoid: generation %lu made here and signed; the keys of generations 1 to "
           "%u are kept here as key-N.sealed, and the provider destroyed its copies\n", addr,
           gen, cur_gen);
out:
    cl_acct_close(a);
    cl_pass_free(pass, pl);
    for (size_t i = 0; i < nh; i++)
        dc_signet_free(hist[i]);
    dc_signet_free(horg);
    dc_signet_free(ssr);
    dc_signet_free(user);
    dc_signet_free(org);
    dc_sign_key_free(sk);
    dc_sign_key_free(cur_sk);
    dc_sign_key_free(nsk);
    dc_enc_key_free(ek);
    dc_enc_key_free(nek);
    free(sealed);
    free(line);
    free(kpath);
    free(npath);
    free(mpath);
    return rc;
}

static int cmd_migrate(const char *dir, int argc, char **argv)
{
    struct mode_opts mo;
    int rc = mode_options(argc, argv, "trustful", &mo);
    if (rc != EX_OK)
        return rc;
    if (mo.ao.server == NULL || optind + (mo.paranoid ? 1 : 0) != argc)
        usage();
    return mo.paranoid ? to_paranoid(dir, argv[optind], &mo.ao, mo.pfd, mo.cost)
                       : next_generation(dir, &mo.ao, mo.pfd, mo.cost, true);
}

/* ---- fetch-key ---- */

/* A second device of a Cautious account: the sealed keys from the provider, opened with the
 * passphrase alone (to check it; they stay sealed at rest), and the current signet. */
static int cmd_fetch(const char *dir, int argc, char **argv)
{
    static const struct option opts[] = {{"passphrase-fd", required_argument, NULL, 'P'},
                                         ACCT_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    int ch, pfd = -1;
    struct acct_opts ao = {NULL, NULL, NULL, -1};
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'P')
            pfd = parse_fd(optarg);
        else if (!acct_opt(&ao, ch))
            usage();
    }
    if (ao.server == NULL || optind + 1 != argc)
        usage();
    const char *addr = argv[optind];
    struct dc_err e = {0};
    char *kpath = path_in(dir, "key.sealed"), *mpath = path_in(dir, "account.mode");
    char *pass = NULL, *owner = NULL;
    size_t pl = 0, bl = 0, n = 0;
    uint8_t *blob = NULL;
    struct dc_sign_key *sk = NULL;
    struct dc_enc_key *ek = NULL;
    struct dc_signet *org = NULL, *user = NULL;
    struct cl_acct *a = NULL;
    struct acct_reply rep;
    struct stat st;
    int rc = EX_OK;
    if (stat(kpath, &st) == 0) {
        rc = fail(EX_CANTCREAT, "%s exists: this directory already has keys", kpath);
        goto out;
    }
    if ((rc = acct_login(&ao, addr, &a)) != EX_OK)
        goto out;
    char *line = dc_xasprintf("BLOB %s", addr);
    enum dc_status s = cl_acct_call(a, line, &rep, &e);
    free(line);
    if (s == DC_OK && (rep.nwords != 2 || cl_acct_word(&rep.words[1], &blob, &bl, &e) != DC_OK))
        s = dc_fail(&e, DC_ERR_FORMAT, "the provider's key blob is malformed");
    if (s != DC_OK) {
        rc = fail(acct_code(s), "%s", e.msg);
        goto out;
    }
    if (cl_pass_get(pfd, PASS_ENV, "passphrase of your DIME keys", &pass, &pl, &e) != DC_OK) {
        rc = fail(EX_NOINPUT, "%s", e.msg);
        goto out;
    }
    if (cl_keyfile_open(blob, bl, pass, pl, &owner, &sk, &ek, &e) != DC_OK) {
        rc = fail(e.code == DC_ERR_SIGNATURE ? EX_NOPERM : EX_DATAERR,
                  "the key blob from the provider: %s", e.msg);
        goto out;
    }
    if (strcasecmp(owner, addr) != 0) {
        rc = fail(EX_DATAERR, "the key blob from the provider holds %s's keys", owner);
        goto out;
    }
    line = dc_xasprintf("HISTORY %s", addr);
    s = cl_acct_call(a, line, &rep, &e);
    free(line);
    uint8_t *ob = NULL, *ub = NULL;
    size_t ol = 0, ul = 0;
    n = rep.nwords;
    if (s == DC_OK && (n < 2 || cl_acct_word(&rep.words[0], &ob, &ol, &e) != DC_OK ||
                       cl_acct_word(&rep.words[n - 1], &ub, &ul, &e) != DC_OK ||
                       dc_signet_parse(ob, ol, &org, &e) != DC_OK ||
                       dc_signet_parse(ub, ul, &user, &e) != DC_OK))
        s = dc_fail(&e, DC_ERR_FORMAT, "the provider's signet history: %s", e.msg);
    free(ob);
    free(ub);
    if (s != DC_OK) {
        rc = fail(acct_code(s), "%s", e.msg);
        goto out;
    }
    uint8_t spub[DC_ED25519_PUB_LEN];
    if (dc_signet_signing_key(user, spub, &e) != DC_OK ||
        memcmp(spub, sk->pub, DC_ED25519_PUB_LEN) != 0) {
        rc = fail(EX_PROTOCOL, "the provider's current signet is not for the keys in the blob");
        goto out;
    }
    if (dc_signet_verify_user(user, org, NULL, &e) < DC_SS_CRYPTO) {
        rc = fail(EX_PROTOCOL, "the provider's current signet does not verify: %s", e.msg);
        goto out;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rc = fail(EX_CANTCREAT, "%s: %s", dir, strerror(errno));
        goto out;
    }
    if (dc_write_file_new(kpath, blob, bl, 0600, &e) != DC_OK ||
        dc_write_file(mpath, "cautious", 8, 0600, &e) != DC_OK) {
        rc = fail(EX_CANTCREAT, "%s: %s", dir, e.msg);
        goto out;
    }
    if ((rc = save_signets(dir, user, org)) == EX_OK)
        printf("keys of %s fetched into %s (generation %zu)\n", addr, kpath, n - 1);
out:
    cl_acct_close(a);
    cl_pass_free(pass, pl);
    dc_sign_key_free(sk);
    dc_enc_key_free(ek);
    dc_signet_free(org);
    dc_signet_free(user);
    free(blob);
    free(owner);
    free(kpath);
    free(mpath);
    return rc;
}

/* ---- import-signet ---- */

static int cmd_import(const char *dir, int argc, char **argv)
{
    static const struct option opts[] = {{"org", required_argument, NULL, 'o'},
                                         {NULL, 0, NULL, 0}};
    const char *orgf = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'o')
            orgf = optarg;
        else
            usage();
    }
    if (orgf == NULL || optind + 1 != argc)
        usage();
    struct dc_err e = {0};
    struct dc_signet *user = NULL, *org = NULL, *ssr = NULL;
    char *rpath = path_in(dir, "request.ssr");
    int rc = EX_OK;
    if (dc_signet_load_file(argv[optind], &user, &e) != DC_OK) {
        rc = fail(EX_DATAERR, "%s: %s", argv[optind], e.msg);
    } else if (dc_signet_load_file(orgf, &org, &e) != DC_OK) {
        rc = fail(EX_DATAERR, "%s: %s", orgf, e.msg);
    } else if (dc_signet_load_file(rpath, &ssr, &e) != DC_OK) {
        rc = fail(EX_NOINPUT, "%s: %s (run dime-client init first)", rpath, e.msg);
    } else if (user->type != DC_SIGNET_USER || org->type != DC_SIGNET_ORG) {
        rc = fail(EX_DATAERR, "a user signet and an org signet are needed");
    } else if (!same_key(user, ssr)) {
        rc = fail(EX_DATAERR, "the signet is not for the keys of %s: its keys differ from "
                  "the signing request's", rpath);
    } else if (dc_signet_verify_user(user, org, NULL, &e) < DC_SS_CRYPTO) {
        rc = fail(EX_DATAERR, "the signet does not verify against the org signet: %s", e.msg);
    } else {
        char *up = path_in(dir, "user.signet"), *op = path_in(dir, "org.signet");
        rc = save_armored(up, user);
        if (rc == EX_OK)
            rc = save_armored(op, org);
        if (rc == EX_OK)
            printf("signet imported: %s\n", up);
        free(up);
        free(op);
    }
    dc_signet_free(user);
    dc_signet_free(org);
    dc_signet_free(ssr);
    free(rpath);
    return rc;
}

/* ---- send ---- */

/* All of fd, at most max bytes. */
static enum dc_status read_all(int fd, size_t max, uint8_t **out, size_t *len,
                               struct dc_err *e)
{
    struct dc_buf b;
    dc_buf_init(&b);
    for (;;) {
        dc_buf_reserve(&b, 65536);
        ssize_t r = read(fd, b.data + b.len, 65536);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            dc_buf_free(&b);
            return dc_fail(e, DC_ERR_IO, "read: %s", strerror(errno));
        }
        if (r == 0)
            break;
        b.len += (size_t)r;
        if (b.len > max) {
            dc_buf_free(&b);
            return dc_fail(e, DC_ERR_LIMIT, "more than %zu bytes", max);
        }
    }
    *out = dc_buf_steal(&b, len);
    return DC_OK;
}

static int cmd_send(const char *dir, int argc, char **argv)
{
    static const struct option opts[] = {
        {"smtp", required_argument, NULL, 's'},      {"login", required_argument, NULL, 'l'},
        {"password-fd", required_argument, NULL, 'W'}, {"passphrase-fd", required_argument, NULL, 'P'},
        {"ca-file", required_argument, NULL, 'C'},   {"signets", required_argument, NULL, 'S'},
        {"write", required_argument, NULL, 'w'},
        {"trust-anchor-file", required_argument, NULL, 'A'},
        {"trust-anchor", required_argument, NULL, 'a'},
        {"dns-stub", required_argument, NULL, 'D'},
        {"dns-local-zone", required_argument, NULL, 'L'},
        {"dx-port", required_argument, NULL, 'p'},
        {"dx-connect-to", required_argument, NULL, 'X'},
        {NULL, 0, NULL, 0}};
    const char *url = NULL, *login = NULL, *ca = NULL, *sdir = NULL, *wdir = NULL,
               *envfrom = NULL;
    bool t_opt = false;
    int ch, wfd = -1, pfd = -1;
    /* the recipients' keys: the client's own lookup (cl_lookup.h) */
    struct cl_lookup_conf lc = {.timeout = 10};
    const char *tas[16], *stubs[16], *zones[16];
    struct sockaddr_storage ss;
    socklen_t sl;
    while ((ch = getopt_long(argc, argv, "tf:i", opts, NULL)) != -1) {
        switch (ch) {
        case 't': t_opt = true; break;
        case 'f': envfrom = optarg; break;
        case 'i': break; /* sendmail's "dots are data": always so */
        case 's': url = optarg; break;
        case 'l': login = optarg; break;
        case 'W': wfd = parse_fd(optarg); break;
        case 'P': pfd = parse_fd(optarg); break;
        case 'C': ca = optarg; break;
        case 'S': sdir = optarg; break;
        case 'w': wdir = optarg; break;
        case 'A': lc.dns.trust_anchor_file = optarg; break;
        case 'a':
            if (lc.dns.n_trust_anchors == 16)
                return fail(EX_USAGE, "at most 16 --trust-anchor");
            tas[lc.dns.n_trust_anchors++] = optarg;
            break;
        case 'D':
            if (lc.dns.n_stubs == 16)
                return fail(EX_USAGE, "at most 16 --dns-stub");
            stubs[lc.dns.n_stubs++] = optarg;
            break;
        case 'L':
            if (lc.dns.n_local_zones == 16)
                return fail(EX_USAGE, "at most 16 --dns-local-zone");
            zones[lc.dns.n_local_zones++] = optarg;
            break;
        case 'p':
            lc.dx_port = (unsigned)strtoul(optarg, NULL, 10);
            if (lc.dx_port == 0 || lc.dx_port > 65535)
                return fail(EX_USAGE, "--dx-port %s: not a port", optarg);
            break;
        case 'X':
            if (dl_connect_to_parse(optarg, &ss, &sl) != DC_OK)
                return fail(EX_USAGE, "--dx-connect-to %s: ADDRESS:PORT (numeric)", optarg);
            lc.connect_to = optarg;
            break;
        default: usage();
        }
    }
    lc.dns.trust_anchors = tas;
    lc.dns.stubs = stubs;
    lc.dns.local_zones = zones;
    if (lc.dns.trust_anchor_file == NULL && lc.dns.n_trust_anchors == 0 &&
        access(CL_ROOT_ANCHOR, R_OK) == 0)
        lc.dns.trust_anchor_file = CL_ROOT_ANCHOR;
    lc.ca_file = ca;
    if (url == NULL && wdir == NULL)
        return fail(EX_USAGE, "--smtp URL is needed (smtp://host:587)");
    struct dc_err e = {0};
    int rc = EX_OK;
    char *kpath = path_in(dir, "key.sealed"), *up = path_in(dir, "user.signet"),
         *op = path_in(dir, "org.signet"), *peers = path_in(dir, "peers");
    char *pass = NULL, *pw = NULL, *address = NULL;
    size_t pl = 0, wl = 0, kl = 0, inl = 0;
    uint8_t *kbin = NULL, *in = NULL;
    struct dc_sign_key *sk = NULL;
    struct dc_enc_key *ek = NULL;
    struct dc_signet *user = NULL, *org = NULL;
    struct cl_msg m = {0};
    char **rcpts = NULL;
    size_t nr = 0;
    if (dc_read_file(kpath, CL_KEYFILE_MAX, &kbin, &kl, &e) != DC_OK) {
        rc = fail(EX_NOINPUT, "%s: %s", kpath, e.msg);
        goto out;
    }
    if (dc_signet_load_file(up, &user, &e) != DC_OK || dc_signet_load_file(op, &org, &e) != DC_OK) {
        rc = fail(EX_NOINPUT, "no imported signet in %s: %s", dir, e.msg);
        goto out;
    }
    if (read_all(0, MAX_MESSAGE, &in, &inl, &e) != DC_OK ||
        cl_msg_parse(in, inl, MAX_MESSAGE, &m, &e) != DC_OK) {
        rc = fail(EX_DATAERR, "the message: %s", e.msg);
        goto out;
    }
    if (cl_pass_get(pfd, PASS_ENV, "passphrase of your DIME keys", &pass, &pl, &e) != DC_OK) {
        rc = fail(EX_NOINPUT, "%s", e.msg);
        goto out;
    }
    if (cl_keyfile_open(kbin, kl, pass, pl, &address, &sk, &ek, &e) != DC_OK) {
        rc = fail(e.code == DC_ERR_SIGNATURE ? EX_NOPERM : EX_DATAERR, "%s: %s", kpath, e.msg);
        goto out;
    }
    if (envfrom != NULL && strcasecmp(envfrom, address) != 0) {
        rc = fail(EX_USAGE, "-f %s: this client's keys are %s's", envfrom, address);
        goto out;
    }
    if (m.from == NULL || strcasecmp(m.from, address) != 0) {
        rc = fail(EX_DATAERR, "the From field must name %s alone (the author the signature "
                  "vouches for)", address);
        goto out;
    }
    for (int i = optind; i < argc; i++)
        cl_addr_list(argv[i], &rcpts, &nr);
    if (t_opt)
        for (size_t i = 0; i < m.nrcpt; i++) {
            rcpts = dc_xrealloc(rcpts, (nr + 1) * sizeof(char *));
            rcpts[nr++] = dc_xstrdup(m.rcpts[i]);
        }
    if (nr == 0) {
        rc = fail(EX_USAGE, "no recipients (give them as arguments, or -t)");
        goto out;
    }
    if (url != NULL && wdir == NULL &&
        cl_pass_get(wfd, SMTP_PASS_ENV, "SMTP password", &pw, &wl, &e) != DC_OK) {
        rc = fail(EX_NOINPUT, "%s", e.msg);
        goto out;
    }
    struct cl_author a = {address, sk, user, org};
    struct cl_smtp smtp = {url, login ? login : address, pw, ca, 120};
    /* every recipient's signets first: nothing is sent unless all of them verify */
    struct cl_peer *pp = dc_xcalloc(nr, sizeof(*pp));
    struct cl_lookup *lk = NULL;
    lc.pin_dir = sdir ? sdir : peers;
    if (cl_lookup_open(&lc, &lk, &e) != DC_OK)
        rc = fail(EX_CONFIG, "the recipients' keys cannot be looked up: %s", e.msg);
    for (size_t i = 0; i < nr && rc == EX_OK; i++) {
        static const int codes[] = {[CL_LK_OK] = EX_OK, [CL_LK_TEMPFAIL] = EX_TEMPFAIL,
                                    [CL_LK_NOT_DIME] = EX_NOUSER, [CL_LK_REFUSED] = EX_PROTOCOL,
                                    [CL_LK_PIN] = EX_CONFIG};
        static const char *const what[] = {
            [CL_LK_OK] = "", [CL_LK_TEMPFAIL] = "lookup failed for now",
            [CL_LK_NOT_DIME] = "not a DIME address",
            [CL_LK_REFUSED] = "the keys DNS and the DX gave do not verify",
            [CL_LK_PIN] = "the keys disagree with your pinned signets"};
        char why[700] = "";
        enum cl_lookup_result lr = cl_lookup_peer(lk, rcpts[i], &pp[i], why, sizeof(why));
        if (lr != CL_LK_OK)
            rc = fail(codes[lr], "%s: %s, nothing sent: %s", rcpts[i], what[lr], why);
    }
    cl_lookup_close(lk);
    for (size_t i = 0; i < nr && rc == EX_OK; i++) {
        uint8_t *w = NULL;
        size_t wlen = 0;
        if (cl_wrap(&a, &m, rcpts[i], &pp[i], &w, &wlen, &e) != DC_OK) {
            rc = fail(EX_SOFTWARE, "%s: building the D/MIME: %s", rcpts[i], e.msg);
        } else if (wdir != NULL) {
            char *f = dc_xasprintf("%s/%s.eml", wdir, rcpts[i]);
            if (dc_write_file(f, w, wlen, 0600, &e) != DC_OK)
                rc = fail(EX_CANTCREAT, "%s: %s", f, e.msg);
            free(f);
        } else if (cl_smtp_send(&smtp, address, rcpts[i], w, wlen, &e) != DC_OK) {
            rc = fail(strstr(e.msg, "refused: 5") ? EX_NOPERM : EX_TEMPFAIL, "%s: %s",
                      rcpts[i], e.msg);
        }
        free(w);
    }
    for (size_t i = 0; i < nr; i++)
        cl_peer_free(&pp[i]);
    free(pp);
out:
    for (size_t i = 0; i < nr; i++)
        free(rcpts[i]);
    free(rcpts);
    cl_msg_free(&m);
    cl_pass_free(pass, pl);
    cl_pass_free(pw, wl);
    dc_sign_key_free(sk);
    dc_enc_key_free(ek);
    dc_signet_free(user);
    dc_signet_free(org);
    free(address);
    free(kbin);
    free(in);
    free(kpath);
    free(up);
    free(op);
    free(peers);
    return rc;
}

int main(int argc, char **argv)
{
    const char *dopt = NULL;
    int i = 1;
    if (argc > 2 && strcmp(argv[1], "-d") == 0) {
        dopt = argv[2];
        i = 3;
    }
    if (i >= argc)
        usage();
    cmd = argv[i];
    const char *dir = dir_of(dopt);
    /* getopt_long from the command's own arguments: argv[0] is the command */
    int cargc = argc - i;
    char **cargv = argv + i;
    optind = 1;
    if (strcmp(cmd, "init") == 0)
        return cmd_init(dir, cargc, cargv);
    if (strcmp(cmd, "import-signet") == 0)
        return cmd_import(dir, cargc, cargv);
    if (strcmp(cmd, "send") == 0)
        return cmd_send(dir, cargc, cargv);
    if (strcmp(cmd, "sync") == 0)
        return cl_sync_main(dir, cargc, cargv);
    if (strcmp(cmd, "decrypt") == 0)
        return cl_decrypt_main(dir, cargc, cargv);
    if (strcmp(cmd, "rotate") == 0)
        return cmd_rotate(dir, cargc, cargv);
    if (strcmp(cmd, "fetch-key") == 0)
        return cmd_fetch(dir, cargc, cargv);
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(dir, cargc, cargv);
    usage();
}
