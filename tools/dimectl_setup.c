/*
 * dimectl setup DOMAIN - a new domain in one command: the domain's keys (the POK exported to
 * a file for offline storage, the online SOK in the vault: what `domain init --pok-file`
 * does), the DX host's TLS key and a self-signed certificate (or the ones already at relay
 * { tls-certificate, tls-key }) bound into the record by a tls= signature, the DNS records to
 * publish, the Postfix lines (or, with --apply, postconf run on them) and optionally the
 * first Trustful user.
 *
 * Nothing half-done: every file is prepared under a temporary name first; the vault stores
 * the domain last (its export callback writes the POK file, signs the certificate and puts
 * the TLS files in place), and when anything before that fails, what was made is removed.
 * Run again for a domain the vault already holds, it keeps the keys and files it finds and
 * does the rest again (records, Postfix lines, the user if missing); for another domain it
 * refuses (one vault serves one domain).
 */
#include "dimectl.h"
#include "dimectl_postfix.h"

#include "dc_b64.h"
#include "dc_config.h"
#include "dc_keys.h"
#include "dc_mrec.h"
#include "dc_signet.h"
#include "kv_config.h"
#include "rl_config.h"

#include <confuse.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CERT_DAYS 730L
#define RSA_BITS  2048 /* RSA: libdime's client offers ECDHE-RSA-AES256-GCM-SHA384 only */

/* ---- whose files: the vault's user for the store, root for the rest ---- */

static uid_t vault_uid;
static gid_t vault_gid;
static bool switched;

/* A run ends as root, the user it started as: leak checkers (and anything at exit that
 * inspects the process) see the process its real user owns. */
static void root_at_exit(void)
{
    dimectl_root(true);
}

int dimectl_vault_ids(const char *config_path)
{
    struct kv_config kc;
    struct dc_err err = {0};
    if (geteuid() != 0)
        return EX_OK;
    if (kv_config_load(config_path, &kc, &err) != DC_OK)
        return say_err(EX_INTERNAL, "%s", err.msg);
    struct passwd *pw = getpwnam(kc.user);
    if (pw != NULL && pw->pw_uid != 0) {
        vault_uid = pw->pw_uid;
        vault_gid = pw->pw_gid;
        switched = true;
        atexit(root_at_exit);
        dimectl_root(false);
    }
    kv_config_free(&kc);
    return EX_OK;
}

void dimectl_root(bool on)
{
    if (!switched)
        return;
    bool ok = on ? seteuid(0) == 0 && setegid(0) == 0
                 : setegid(vault_gid) == 0 && seteuid(vault_uid) == 0;
    if (!ok) { /* cannot happen with a real uid of 0; never go on as the wrong user */
        say_err(EX_INTERNAL, "cannot change the effective user: %s", strerror(errno));
        exit(EX_INTERNAL);
    }
}

/* Files made by this run, removed again when the run fails. */
struct made {
    char *path[8];
    size_t n;
};

static void made_add(struct made *m, const char *path)
{
    if (m->n < sizeof(m->path) / sizeof(m->path[0]))
        m->path[m->n++] = dc_xstrdup(path);
}

static void made_undo(struct made *m)
{
    for (size_t i = 0; i < m->n; i++) {
        unlink(m->path[i]);
        free(m->path[i]);
    }
    m->n = 0;
}

static void made_keep(struct made *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->path[i]);
    m->n = 0;
}

static const char *ssl_why(void)
{
    static char buf[200];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return e ? buf : "unknown OpenSSL error";
}

/* A new file (never over an existing one) with mode, written by the PEM writer w. */
static bool pem_new(const char *path, unsigned mode, int (*w)(FILE *, void *), void *obj,
                    struct made *m)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        say_err(EX_INTERNAL, "%s: %s", path, strerror(errno));
        return false;
    }
    made_add(m, path);
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        say_err(EX_INTERNAL, "%s: %s", path, strerror(errno));
        return false;
    }
    bool ok = w(f, obj) == 1 && fflush(f) == 0 && fsync(fd) == 0;
    if (fclose(f) != 0 || !ok) {
        say_err(EX_INTERNAL, "%s: cannot write: %s", path, ssl_why());
        return false;
    }
    return true;
}

static int w_key(FILE *f, void *k) { return PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL); }
static int w_cert(FILE *f, void *x) { return PEM_write_X509(f, x); }
static int w_req(FILE *f, void *r) { return PEM_write_X509_REQ(f, r); }

static bool add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    bool ok = e != NULL && X509_add_ext(x, e, -1) == 1;
    X509_EXTENSION_free(e);
    return ok;
}

/* The DX's TLS key (RSA) and a self-signed certificate for host, under key_tmp and cert_tmp;
 * with csr (may be NULL) also a certificate request for the same key, for a CA. The
 * certificate's DER goes to *der. */
static bool make_tls(const char *host, const char *key_tmp, const char *cert_tmp,
                     const char *csr, uint8_t **der, size_t *dl, struct made *m)
{
    EVP_PKEY *pk = EVP_RSA_gen(RSA_BITS);
    X509 *x = X509_new();
    X509_REQ *req = NULL;
    BIGNUM *bn = BN_new();
    char san[300];
    snprintf(san, sizeof(san), "DNS:%s", host);
    bool ok = pk != NULL && x != NULL && bn != NULL && BN_rand(bn, 64, BN_RAND_TOP_ANY,
                                                                 BN_RAND_BOTTOM_ANY) == 1 &&
              BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL &&
              X509_set_version(x, 2) == 1 &&
              X509_gmtime_adj(X509_getm_notBefore(x), 0) != NULL &&
              X509_gmtime_adj(X509_getm_notAfter(x), CERT_DAYS * 86400) != NULL &&
              X509_set_pubkey(x, pk) == 1 &&
              X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                         (const unsigned char *)host, -1, -1, 0) == 1 &&
              X509_set_issuer_name(x, X509_get_subject_name(x)) == 1 &&
              add_ext(x, NID_basic_constraints, "critical,CA:FALSE") &&
              add_ext(x, NID_ext_key_usage, "serverAuth") &&
              add_ext(x, NID_subject_alt_name, san) && X509_sign(x, pk, EVP_sha256()) > 0;
    if (!ok)
        say_err(EX_INTERNAL, "TLS key and certificate: %s", ssl_why());
    if (ok && csr != NULL) {
        /* the same extensions (SAN, usage); a shallow copy: X509_REQ_add_extensions copies */
        STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_dup(X509_get0_extensions(x));
        req = X509_REQ_new();
        ok = req != NULL && exts != NULL && X509_REQ_set_version(req, 0) == 1 &&
             X509_REQ_set_subject_name(req, X509_get_subject_name(x)) == 1 &&
             X509_REQ_set_pubkey(req, pk) == 1 && X509_REQ_add_extensions(req, exts) == 1 &&
             X509_REQ_sign(req, pk, EVP_sha256()) > 0;
        sk_X509_EXTENSION_free(exts);
        if (!ok)
            say_err(EX_INTERNAL, "certificate request: %s", ssl_why());
    }
    ok = ok && pem_new(key_tmp, 0400, w_key, pk, m) && pem_new(cert_tmp, 0644, w_cert, x, m) &&
         (csr == NULL || pem_new(csr, 0644, w_req, req, m));
    unsigned char *p = NULL;
    int n = ok ? i2d_X509(x, &p) : 0;
    if (ok && n > 0) {
        *der = dc_xmalloc((size_t)n);
        memcpy(*der, p, (size_t)n);
        *dl = (size_t)n;
    }
    ok = ok && n > 0;
    OPENSSL_free(p);
    BN_free(bn);
    X509_REQ_free(req);
    X509_free(x);
    EVP_PKEY_free(pk);
    return ok;
}

/* What kv_vault_domain_init's export callback does, in order: the POK file, the tls=
 * signature over the certificate, the TLS files into place (link: never over a file). */
struct init_ctx {
    const char *pok_file;
    const uint8_t *der;
    size_t dl;
    uint8_t tls_sig[DC_ED25519_SIG_LEN];
    const char *key_tmp, *cert_tmp, *key_path, *cert_path; /* tmp NULL: files kept */
    struct made *m;
};

static enum dc_status export_and_bind(void *arg, const struct dc_keyfile *key,
                                      struct dc_err *err)
{
    struct init_ctx *c = arg;
    struct dc_signer s;
    dc_signer_local(&s, key->sign);
    enum dc_status st = dc_mrec_tls_sign(&s, c->der, c->dl, c->tls_sig, NULL, err);
    if (st != DC_OK)
        return st;
    dimectl_root(true);
    if ((st = dc_keyfile_save_new(key, c->pok_file, 0400, err)) == DC_OK) {
        made_add(c->m, c->pok_file);
        if (c->key_tmp != NULL && link(c->key_tmp, c->key_path) != 0)
            st = dc_fail(err, DC_ERR_IO, "%s: %s", c->key_path, strerror(errno));
        else if (c->key_tmp != NULL)
            made_add(c->m, c->key_path);
        if (st == DC_OK && c->key_tmp != NULL && link(c->cert_tmp, c->cert_path) != 0)
            st = dc_fail(err, DC_ERR_IO, "%s: %s", c->cert_path, strerror(errno));
        else if (st == DC_OK && c->key_tmp != NULL)
            made_add(c->m, c->cert_path);
    }
    dimectl_root(false);
    return st;
}

/* The DX key, made as root, goes to the relay's user. */
static void give(const char *path, const char *user)
{
    struct passwd *pw = user != NULL ? getpwnam(user) : NULL;
    if (getuid() != 0 || pw == NULL || pw->pw_uid == 0)
        return;
    dimectl_root(true);
    if (chown(path, pw->pw_uid, pw->pw_gid) != 0)
        say_err(EX_OK, "warning: chown %s %s: %s", user, path, strerror(errno));
    dimectl_root(false);
}

/* ---- Postfix ---- */

static bool postconf(const char *dir, const char *flag, const char *arg, char *out, size_t cap)
{
    int p[2];
    if (pipe(p) != 0)
        return false;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return false;
    }
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        if (dir != NULL)
            execlp("postconf", "postconf", "-c", dir, flag, arg, (char *)NULL);
        else
            execlp("postconf", "postconf", flag, arg, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    char sink[512];
    while ((r = read(p[0], out && n + 1 < cap ? out + n : sink,
                     out && n + 1 < cap ? cap - n - 1 : sizeof(sink))) > 0)
        if (out && n + 1 < cap)
            n += (size_t)r;
    if (out)
        out[n] = '\0';
    close(p[0]);
    int ws;
    return waitpid(pid, &ws, 0) == pid && WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
}

static bool service_exists(const char *dir, const char *arg)
{
    char svc[300], out[4096];
    snprintf(svc, sizeof(svc), "%.*s", (int)strcspn(arg, "="), arg);
    /* "smtp/inet/x=y" or "smtp/inet=..." -> "smtp/inet" */
    char *sl = strchr(svc, '/');
    if (sl != NULL && (sl = strchr(sl + 1, '/')) != NULL)
        *sl = '\0';
    return postconf(dir, "-M", svc, out, sizeof(out)) && out[0] != '\0';
}

/* postconf on every operation; main.cf and master.cf are put back when one fails. */
static int apply_postfix(const char *dir, const struct pfx_ops *ops)
{
    char cfdir[1024];
    if (dir != NULL)
        snprintf(cfdir, sizeof(cfdir), "%s", dir);
    else if (!postconf(NULL, "-h", "config_directory", cfdir, sizeof(cfdir)))
        return say_err(EX_INTERNAL, "postconf -h config_directory failed (is Postfix "
                       "installed?)");
    cfdir[strcspn(cfdir, "\n")] = '\0';
    static const char *const files[] = {"main.cf", "master.cf"};
    uint8_t *saved[2] = {NULL, NULL};
    size_t slen[2] = {0, 0};
    struct dc_err err = {0};
    int rc = EX_OK;
    for (size_t i = 0; i < 2 && rc == EX_OK; i++) {
        char *path = dc_xasprintf("%s/%s", cfdir, files[i]);
        if (dc_read_file(path, 1 << 24, &saved[i], &slen[i], &err) != DC_OK)
            rc = say_err(EX_INPUT, "Postfix configuration: %s", err.msg);
        free(path);
    }
    for (size_t i = 0; i < ops->n && rc == EX_OK; i++) {
        const struct pfx_op *o = &ops->op[i];
        bool exists = (o->if_exists || o->if_absent) && service_exists(cfdir, o->arg);
        if ((o->if_exists && !exists) || (o->if_absent && exists)) {
            printf("postconf -%c %s: skipped (%s)\n", o->flag, o->arg,
                   exists ? "the entry exists: only its -o's are set" : "no such service");
            continue;
        }
        char flag[3] = {'-', o->flag, '\0'};
        if (!postconf(cfdir, flag, o->arg, NULL, 0))
            rc = say_err(EX_INTERNAL, "postconf -c %s %s '%s' failed; main.cf and master.cf "
                         "are restored", cfdir, flag, o->arg);
        else
            printf("postconf -%c %s\n", o->flag, o->arg);
    }
    for (size_t i = 0; i < 2; i++) {
        if (rc != EX_OK && saved[i] != NULL) {
            char *path = dc_xasprintf("%s/%s", cfdir, files[i]);
            if (dc_write_file(path, saved[i], slen[i], 0644, &err) != DC_OK)
                say_err(EX_INTERNAL, "restoring %s: %s", path, err.msg);
            free(path);
        }
        free(saved[i]);
    }
    if (rc == EX_OK)
        printf("Postfix configuration in %s updated: check it with 'postfix check', then "
               "'postfix reload'.\n", cfdir);
    return rc;
}

/* The milter's socket (milter { socket } of the same file) as Postfix spells it. */
static bool milter_socket(const char *config_path, char *out, size_t cap)
{
    cfg_t *cfg = NULL;
    struct dc_err err = {0};
    const char *s = NULL;
    if (dc_config_parse(config_path, &cfg, &err) == DC_OK) {
        cfg_t *sec = cfg_getsec(cfg, "milter");
        s = sec != NULL ? dc_config_str(sec, "socket") : NULL;
    }
    bool ok = pfx_milter_socket(s != NULL ? s : "unix:/run/dime-milter/milter.sock", out, cap);
    if (!ok)
        say_err(EX_USAGE, "milter { socket = \"%s\" } is not unix:PATH or inet:PORT@HOST", s);
    if (cfg != NULL)
        cfg_free(cfg);
    return ok;
}

/* ---- the command ---- */

struct setup_opts {
    const char *domain, *pok_file, *dx, *user, *csr, *pf_dir, *policy;
    bool apply;
    unsigned long ttl;
};

static int parse_opts(int argc, char **argv, struct setup_opts *o)
{
    static const struct option opts[] = {
        {"pok-file", required_argument, NULL, 'p'}, {"dx", required_argument, NULL, 'x'},
        {"user", required_argument, NULL, 'u'},     {"csr", required_argument, NULL, 'r'},
        {"apply", no_argument, NULL, 'a'},          {"postfix-config", required_argument, NULL, 'c'},
        {"ttl", required_argument, NULL, 't'},      {"policy", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0}};
    int ch;
    char *end;
    o->ttl = 3600;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'p': o->pok_file = optarg; break;
        case 'x': o->dx = optarg; break;
        case 'u': o->user = optarg; break;
        case 'r': o->csr = optarg; break;
        case 'a': o->apply = true; break;
        case 'c': o->pf_dir = optarg; break;
        case 'o': {
            enum dc_mrec_policy pol; /* checked here: before any key is made */
            if (dc_mrec_policy_parse(optarg, &pol, NULL) != DC_OK)
                return say_err(EX_USAGE, "--policy: '%s' is not experimental, mixed or strict",
                               optarg);
            o->policy = optarg;
            break;
        }
        case 't':
            errno = 0;
            o->ttl = strtoul(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || errno != 0 || o->ttl > 2147483647UL)
                return say_err(EX_USAGE, "--ttl: '%s' is not a number of seconds", optarg);
            break;
        default: return say_err(EX_USAGE, "setup: unknown option (see dimectl(8))");
        }
    }
    if (optind != argc - 1)
        return say_err(EX_USAGE, "usage: dimectl setup DOMAIN [--pok-file FILE] [--dx HOST] "
                       "[--user ADDRESS] [--csr FILE] [--policy P] [--ttl N] [--apply "
                       "[--postfix-config DIR]]");
    if (o->pf_dir != NULL && !o->apply)
        return say_err(EX_USAGE, "--postfix-config goes with --apply");
    o->domain = argv[optind];
    return EX_OK;
}

/* The record: the vault's POK, the tls= signature (or made with signer), the DX host, the
 * policy (NULL: the record's default, as dns-record's). */
static int print_records(const char *domain, const uint8_t pok[32], const uint8_t *tls_sig,
                         const struct dc_signer *signer, const uint8_t *der, size_t dl,
                         const char *dx, const char *dx_addr, const struct setup_opts *o)
{
    struct dc_err err = {0};
    struct dc_mrec *rec = dc_mrec_new_publish();
    char *text = NULL, *lines = NULL;
    unsigned long ttl = o->ttl;
    int rc = EX_OK;
    if (o->policy != NULL && dc_mrec_policy_parse(o->policy, &rec->policy, &err) != DC_OK)
        rc = say_err(EX_USAGE, "--policy: '%s' is not experimental, mixed or strict",
                     o->policy);
    else if (dc_mrec_add_pok(rec, pok, &err) != DC_OK ||
        (tls_sig != NULL && dc_mrec_add_tls(rec, tls_sig, &err) != DC_OK) ||
        (tls_sig == NULL && signer != NULL &&
         dc_mrec_add_tls_cert(rec, signer, der, dl, &err) != DC_OK) ||
        dc_mrec_add_dx(rec, dx, &err) != DC_OK ||
        dc_mrec_publish(rec, domain, (uint32_t)ttl, &text, &lines, &err) != DC_OK) {
        rc = say_err(EX_INTERNAL, "record: %s", err.msg);
    }
    if (rc == EX_OK) {
        printf("\n; DNS: publish in the DNSSEC-signed zone of %s\n%s", domain, lines);
        bool any = dx_addr != NULL && strcmp(dx_addr, "0.0.0.0") != 0 &&
                   strcmp(dx_addr, "::") != 0;
        if (any)
            printf("%s. %lu IN %s %s\n", dx, ttl, strchr(dx_addr, ':') ? "AAAA" : "A", dx_addr);
        else
            printf("; %s. %lu IN A <the DX host's public address>\n", dx, ttl);
        printf("; mail from ordinary SMTP servers, if the domain has no MX yet:\n"
               "; %s. %lu IN MX 10 %s.\n", domain, ttl, dx);
    }
    free(text);
    free(lines);
    dc_mrec_free(rec);
    return rc;
}

int dimectl_setup(struct kv_vault *v, const char *config_path, int argc, char **argv)
{
    struct setup_opts o = {0};
    struct dc_err err = {0};
    int rc = parse_opts(argc, argv, &o);
    if (rc != EX_OK)
        return rc;
    char domain[KV_NAME_MAX + 1], user[KV_NAME_MAX + 1] = "", milter[300];
    if (kv_normalize(o.domain, strlen(o.domain), domain, &err) != DC_OK ||
        strchr(domain, '@') != NULL)
        return say_err(EX_USAGE, "setup: '%s' is not a domain name", o.domain);
    if (o.user != NULL) {
        const char *at = strrchr(o.user, '@');
        if (at == NULL || kv_normalize(o.user, strlen(o.user), user, &err) != DC_OK ||
            strcmp(strrchr(user, '@') + 1, domain) != 0)
            return say_err(EX_USAGE, "--user: '%s' is not an address of %s", o.user, domain);
    }
    if (!milter_socket(config_path, milter, sizeof(milter)))
        return EX_USAGE;
    struct rl_config rc_cfg;
    if (rl_config_load(config_path, false, &rc_cfg, &err) != DC_OK)
        return say_err(EX_INTERNAL, "%s", err.msg);
    const char *dx = o.dx != NULL ? o.dx : rc_cfg.hostname;
    char *pok_default = dc_xasprintf("%s.pok", domain);
    const char *pok_file = o.pok_file != NULL ? o.pok_file : pok_default;
    char *key_tmp = NULL, *cert_tmp = NULL;
    uint8_t *der = NULL;
    size_t dl = 0;
    struct made m = {0};
    struct kv_domain d = {0};
    struct dc_signet *org = NULL;
    struct dc_keyfile *pk = NULL;
    struct kv_org_signer os = {0};
    struct pfx_ops ops = {0};
    uint8_t pok[32];
    bool existing = false;

    if (dc_mrec_check_host(dx, strlen(dx), "DX host", &err) != DC_OK) {
        rc = say_err(EX_USAGE, "%s (relay { hostname } or --dx)", err.msg);
        goto out;
    }
    enum dc_status ds = kv_store_domain_get(v->store, &d, &err);
    if (ds == DC_OK && strcmp(d.name, domain) != 0) {
        rc = say_err(EX_REFUSED, "setup: the vault already holds domain %s (one vault serves "
                     "one domain)", d.name);
        goto out;
    }
    if (ds != DC_OK && ds != DC_ERR_NOTFOUND) {
        rc = say_err(EX_INTERNAL, "%s", err.msg);
        goto out;
    }
    existing = ds == DC_OK;
    /* the DX's TLS key and certificate: kept when both exist, made when neither does */
    if (rc_cfg.tls_cert == NULL || rc_cfg.tls_key == NULL) {
        rc = say_err(EX_USAGE, "setup: relay { tls-certificate, tls-key } name no files");
        goto out;
    }
    bool have_key = access(rc_cfg.tls_key, F_OK) == 0;
    bool have_cert = access(rc_cfg.tls_cert, F_OK) == 0;
    if (have_key != have_cert) {
        rc = say_err(EX_REFUSED, "setup: %s exists but %s does not: give both or neither",
                     have_key ? rc_cfg.tls_key : rc_cfg.tls_cert,
                     have_key ? rc_cfg.tls_cert : rc_cfg.tls_key);
        goto out;
    }
    if (!existing && access(pok_file, F_OK) == 0) {
        rc = say_err(EX_REFUSED, "setup: %s exists; the new POK is never written over a file",
                     pok_file);
        goto out;
    }
    if (have_cert) {
        dimectl_root(true);
        enum dc_status cs = dc_mrec_cert_der(rc_cfg.tls_cert, &der, &dl, &err);
        dimectl_root(false);
        if (cs != DC_OK) {
            rc = say_err(EX_INPUT, "%s", err.msg);
            goto out;
        }
    } else {
        key_tmp = dc_xasprintf("%s.setup-%ld", rc_cfg.tls_key, (long)getpid());
        cert_tmp = dc_xasprintf("%s.setup-%ld", rc_cfg.tls_cert, (long)getpid());
        dimectl_root(true);
        bool made_tls = make_tls(dx, key_tmp, cert_tmp, o.csr, &der, &dl, &m);
        dimectl_root(false);
        if (!made_tls) {
            rc = EX_INTERNAL;
            goto out;
        }
    }

    struct init_ctx ic = {.pok_file = pok_file, .der = der, .dl = dl, .m = &m,
                          .key_tmp = key_tmp, .cert_tmp = cert_tmp,
                          .key_path = rc_cfg.tls_key, .cert_path = rc_cfg.tls_cert};
    const uint8_t *tls_sig = NULL;
    const struct dc_signer *signer = NULL;
    struct dc_signer local;
    if (!existing) {
        if (kv_vault_domain_init(v, domain, false, export_and_bind, &ic, &err) != DC_OK) {
            rc = say_err(err.code == DC_ERR_IO ? EX_INTERNAL : EX_REFUSED, "setup: %s",
                         err.msg);
            goto out;
        }
        tls_sig = ic.tls_sig;
        if (kv_store_domain_get(v->store, &d, &err) != DC_OK) {
            rc = say_err(EX_INTERNAL, "%s", err.msg);
            goto out;
        }
    } else if (key_tmp != NULL) {
        dimectl_root(true);
        bool linked = link(key_tmp, rc_cfg.tls_key) == 0;
        if (linked && link(cert_tmp, rc_cfg.tls_cert) != 0) {
            unlink(rc_cfg.tls_key);
            linked = false;
        }
        dimectl_root(false);
        if (!linked) {
            rc = say_err(EX_INTERNAL, "%s: %s", rc_cfg.tls_cert, strerror(errno));
            goto out;
        }
    }
    made_keep(&m); /* the domain is stored: what was made stays */
    if (dc_signet_parse(d.signet, d.signet_len, &org, &err) != DC_OK ||
        dc_signet_signing_key(org, pok, &err) != DC_OK) {
        rc = say_err(EX_INTERNAL, "stored org signet: %s", err.msg);
        goto out;
    }
    if (key_tmp != NULL)
        give(rc_cfg.tls_key, rc_cfg.user);
    if (existing) {
        /* the tls= signature needs the POK: its file when still here, else the vault's */
        dimectl_root(true);
        if (access(pok_file, F_OK) != 0 || dc_keyfile_load_file(pok_file, &pk, &err) != DC_OK) {
            dc_keyfile_free(pk);
            pk = NULL;
        }
        dimectl_root(false);
        if (pk != NULL && pk->sign != NULL && dc_memeq_ct(pk->sign->pub, pok, sizeof(pok)) == 0) {
            dc_signer_local(&local, pk->sign);
            signer = &local;
        } else if (kv_vault_pok_signer(v, &os, &err) == KV_OK) {
            signer = &os.signer;
        }
    }

    char pokb[64], fp[DC_FP_B64_LEN + 1], fpc[DC_FP_B64_LEN + 1];
    dc_b64_encode(pok, 32, pokb, 0);
    dc_signet_fp(org, fp, fpc, NULL);
    printf("domain:      %s (%s)\npok:         %s\norg signet:  %s\n", domain,
           existing ? "already set up: keys kept" : "new keys, online SOK in the vault",
           pokb, fp);
    if (!existing)
        printf("pok file:    %s (mode 0400, not encrypted): move it to offline storage; it is "
               "needed again only for 'dimectl domain rollover-sok' and 'dimectl dns-record "
               "--tls-cert'\n", pok_file);
    printf("tls:         %s, %s (%s)\n", rc_cfg.tls_cert, rc_cfg.tls_key,
           key_tmp != NULL ? "new key, self-signed certificate" : "kept");
    if (o.csr != NULL && key_tmp != NULL)
        printf("csr:         %s (for a CA; its certificate replaces %s, then 'dimectl dns-record "
               "--tls-cert' gives the new tls=)\n", o.csr, rc_cfg.tls_cert);
    else if (o.csr != NULL)
        printf("csr:         not made: the key at %s was there already\n", rc_cfg.tls_key);
    if (existing && tls_sig == NULL && signer == NULL)
        printf("warning:     no tls= in the record below: the POK is neither in %s nor in the "
               "vault (give --pok-file)\n", pok_file);
    if (user[0] != '\0') {
        struct kv_user u;
        if (kv_store_user_get(v->store, user, &u, &err) == DC_OK) {
            printf("user:        %s (exists, %s)\n", user, kv_mode_name(u.mode));
        } else if (kv_vault_user_add(v, user, KV_MODE_TRUSTFUL, NULL, NULL, 0, NULL, &err) !=
                   DC_OK) {
            rc = say_err(EX_REFUSED, "user add %s: %s (the domain is set up; run 'dimectl "
                         "user add %s')", user, err.msg, user);
            goto out;
        } else {
            printf("user:        %s (new, trustful)\n", user);
        }
    }
    rc = print_records(domain, pok, tls_sig, signer, der, dl, dx, rc_cfg.listen_address, &o);
    if (rc != EX_OK)
        goto out;
    pfx_ops_build(&ops, milter, rc_cfg.inject_address, rc_cfg.inject_port);
    if (o.apply) {
        printf("\n; Postfix\n");
        fflush(stdout);
        dimectl_root(true);
        rc = apply_postfix(o.pf_dir, &ops);
        dimectl_root(false);
    } else {
        char *t = pfx_ops_text(&ops);
        printf("\n; Postfix (contrib/README.postfix explains each line; 'dimectl setup %s "
               "--apply' sets them with postconf)\n%s", domain, t);
        free(t);
    }
out:
    dimectl_root(true);
    if (key_tmp != NULL)
        unlink(key_tmp);
    if (cert_tmp != NULL)
        unlink(cert_tmp);
    made_undo(&m);
    dimectl_root(false);
    pfx_ops_free(&ops);
    kv_org_signer_free(&os);
    dc_keyfile_free(pk);
    dc_signet_free(org);
    kv_domain_clear(&d);
    free(der);
    free(key_tmp);
    free(cert_tmp);
    free(pok_default);
    rl_config_free(&rc_cfg);
    return rc;
}
