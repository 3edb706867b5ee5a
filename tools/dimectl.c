/*
 * dimectl - administration of the DIME keyvault: the domain, user accounts and their keys,
 * signets and the DNS management record. It works on the vault's database directly (the
 * daemon sees every change with its next request), so it must run as root or as the vault's
 * user, with the same configuration file as dime-keyvaultd (for the database path and the
 * master key). Every change is one database transaction.
 *
 * Exit status: 0 success; 1 the operation was refused or the item does not exist; 2 usage
 * error; 3 an input file is unreadable or malformed; 4 database, master key or internal
 * failure. See dimectl(8).
 */
#include "dimectl.h"

#include "dc_b64.h"
#include "dc_config.h"
#include "dc_keys.h"
#include "dc_mrec.h"
#include "dc_signet.h"
#include "kv_config.h"
#include "dimectl.h"
#include "kv_vault.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool json;
static const char *config_path = DC_CONFIG_DEFAULT_PATH;

static void usage(void)
{
    fprintf(stderr,
            "usage: dimectl [-c config] [--json] command ...\n"
            "  domain init DOMAIN --pok-file FILE | --pok-online [--pok-file FILE]\n"
            "  domain import --key FILE --signet FILE [--sok FILE] [--offline-pok]\n"
            "  domain rollover-sok --pok FILE [--revoke]\n"
            "  domain rollover-pok --pok-old FILE --pok-file NEWFILE [dns-record options]\n"
            "  domain show\n"
            "  dns-record [--tls-cert PEM]... [--pok FILE] [--dx HOST]... [--policy "
            "mixed|strict|experimental]\n"
            "             [--sub strict|relaxed|explicit] [--syn HOSTS] [--expiry DAYS] "
            "[--record-ttl SECS] [--ttl N]\n"
            "  user add ADDRESS [--mode trustful|cautious|paranoid] [--ssr FILE] "
            "[--key-blob FILE] [--key FILE]\n"
            "  user show ADDRESS\n"
            "  user list\n"
            "  user rotate ADDRESS [--ssr FILE] [--key-blob FILE] [--key FILE]\n"
            "  user set-mode ADDRESS MODE [--ssr FILE] [--key-blob FILE] [--key FILE]\n"
            "  user retire ADDRESS [--below GENERATION]\n"
            "  signet show NAME [--fingerprint FP] [--armor]\n"
            "  signet history ADDRESS\n"
            "  setup DOMAIN [--pok-file FILE] [--dx HOST] [--user ADDRESS] [--csr FILE] "
            "[--policy P] [--ttl N] [--apply [--postfix-config DIR]]\n"
            "  check DOMAIN\n");
    exit(EX_USAGE);
}

int say_err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dimectl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* Exit code for a failed vault call. */
static int code_of(enum dc_status s)
{
    switch (s) {
    case DC_ERR_IO: return EX_INTERNAL;
    case DC_ERR_SIGNATURE: return EX_INTERNAL; /* master key mismatch or tampered row */
    case DC_ERR_CRYPTO: return EX_INTERNAL;
    default: return EX_REFUSED;
    }
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static struct kv_vault *open_vault(int *rc)
{
    struct kv_config cfg;
    struct dc_err err = {0};
    struct kv_secret sec;
    struct kv_vault *v = NULL;
    if (kv_config_load(config_path, &cfg, &err) != DC_OK) {
        *rc = say_err(EX_INTERNAL, "%s", err.msg);
        return NULL;
    }
    struct kv_store *store = NULL;
    if (kv_secret_load(cfg.master_key_file, cfg.passphrase_file, &sec, &err) != DC_OK)
        *rc = say_err(EX_INTERNAL, "%s", err.msg);
    else if (kv_store_open(cfg.store, cfg.database, cfg.store_conninfo, &store, &err) != DC_OK) {
        kv_secret_clear(&sec);
        *rc = say_err(EX_INTERNAL, "%s", err.msg);
    } else if (kv_vault_open_store(store, &sec, &v, &err) != DC_OK) {
        *rc = say_err(EX_INTERNAL, "%s", err.msg);
        v = NULL;
    }
    kv_config_free(&cfg);
    return v;
}

static int load_signet(const char *path, struct dc_signet **out)
{
    struct dc_err err = {0};
    if (dc_signet_load_file(path, out, &err) != DC_OK)
        return say_err(EX_INPUT, "%s: %s", path, err.msg);
    return EX_OK;
}

static int load_blob(const char *path, uint8_t **out, size_t *len)
{
    struct dc_err err = {0};
    if (dc_read_file(path, 1 << 20, out, len, &err) != DC_OK)
        return say_err(EX_INPUT, "%s: %s", path, err.msg);
    if (*len == 0)
        return say_err(EX_INPUT, "%s: empty key blob", path);
    return EX_OK;
}

static void b64(const uint8_t *p, size_t n, char *out)
{
    dc_b64_encode(p, n, out, 0);
}

/* ---- domain ---- */

static int domain_show(struct kv_vault *v)
{
    struct kv_domain d;
    struct dc_err err = {0};
    struct dc_signet *org = NULL;
    if (kv_store_domain_get(v->store, &d, &err) != DC_OK)
        return say_err(EX_REFUSED, "%s", err.msg);
    uint8_t pok[32];
    char pokb[64], fp[DC_FP_B64_LEN + 1], fpc[DC_FP_B64_LEN + 1];
    int rc = EX_OK;
    if (dc_signet_parse(d.signet, d.signet_len, &org, &err) != DC_OK ||
        dc_signet_signing_key(org, pok, &err) != DC_OK || dc_signet_fp(org, fp, fpc, &err)) {
        rc = say_err(EX_INTERNAL, "stored org signet: %s", err.msg);
        goto out;
    }
    b64(pok, 32, pokb);
    struct kv_user *users = NULL;
    size_t nu = 0;
    kv_store_user_list(v->store, &users, &nu, NULL);
    free(users);
    if (json) {
        printf("{\"domain\":");
        json_str(d.name);
        printf(",\"pok\":\"%s\",\"pok_online\":%s,\"sok_online\":%s,\"sok_permissions\":%u,"
               "\"fingerprint\":\"%s\",\"crypto_fingerprint\":\"%s\",\"users\":%zu,"
               "\"schema_version\":%d}\n", pokb, d.pok ? "true" : "false",
               d.sok ? "true" : "false", d.sok_perm, fp, fpc, nu,
               kv_store_schema_version(v->store));
    } else {
        printf("domain:          %s\npok:             %s (%s)\n", d.name, pokb,
               d.pok ? "online" : "offline");
        struct dc_sok soks[DC_SIGNET_MAX_SOKS];
        size_t ns = dc_signet_soks(org, soks, DC_SIGNET_MAX_SOKS);
        for (size_t i = 0; i < ns && i < DC_SIGNET_MAX_SOKS; i++) {
            char sb[64];
            b64(soks[i].pub, 32, sb);
            printf("sok:             %s permissions 0x%02x (%s)\n", sb, soks[i].perm,
                   d.sok != NULL && i == 0 && soks[i].perm == d.sok_perm ? "online"
                                                                       : "not in the vault");
        }
        printf("fingerprint:     %s\ncrypto fp:       %s\nusers:           %zu\n"
               "schema version:  %d\n", fp, fpc, nu, kv_store_schema_version(v->store));
    }
out:
    dc_signet_free(org);
    kv_domain_clear(&d);
    return rc;
}

/* For kv_vault_domain_init: the new org key file goes to ctx (a path), mode 0400, never over
 * an existing file. */
static enum dc_status export_pok(void *ctx, const struct dc_keyfile *key, struct dc_err *err)
{
    return dc_keyfile_save_new(key, ctx, 0400, err);
}

static int domain_init(struct kv_vault *v, int argc, char **argv)
{
    static const struct option opts[] = {{"pok-file", required_argument, NULL, 'p'},
                                         {"pok-online", no_argument, NULL, 'o'},
                                         {NULL, 0, NULL, 0}};
    struct dc_err err = {0};
    const char *file = NULL;
    bool online = false;
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'p')
            file = optarg;
        else if (ch == 'o')
            online = true;
        else
            usage();
    }
    if (optind != argc - 1)
        usage();
    if (file == NULL && !online)
        return say_err(EX_USAGE, "domain init: --pok-file FILE names where the POK goes for "
                       "offline storage (or --pok-online keeps it in the vault)");
    if (kv_vault_domain_init(v, argv[optind], online, file ? export_pok : NULL, (void *)file,
                             &err) != DC_OK) {
        int rc = say_err(code_of(err.code), "domain init: %s", err.msg);
        /* the file is ours only when the vault refused after writing it */
        if (file != NULL && err.code != DC_ERR_ARG && access(file, F_OK) == 0)
            unlink(file);
        return rc;
    }
    int rc = domain_show(v);
    if (rc == EX_OK && file != NULL)
        fprintf(json ? stderr : stdout,
                "The POK (primary organizational key) is in %s (mode 0400, not encrypted).\n"
                "%s"
                "Move it to offline storage now; it is needed again only for 'dimectl domain "
                "rollover-sok' and 'dimectl dns-record --tls-cert'.\n", file,
                online ? "A copy stays in the vault (--pok-online).\n"
                       : "The vault does not hold it: it signs with its online SOK.\n");
    return rc;
}

static int domain_rollover(struct kv_vault *v, int argc, char **argv)
{
    static const struct option opts[] = {{"pok", required_argument, NULL, 'p'},
                                         {"revoke", no_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    struct dc_err err = {0};
    const char *file = NULL;
    bool revoke = false;
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'p')
            file = optarg;
        else if (ch == 'r')
            revoke = true;
        else
            usage();
    }
    if (file == NULL || optind != argc)
        usage();
    struct dc_keyfile *kf = NULL;
    struct kv_rollover r;
    if (dc_keyfile_load_file(file, &kf, &err) != DC_OK)
        return say_err(EX_INPUT, "%s: %s", file, err.msg);
    enum dc_status s = kv_vault_sok_rollover(v, kf, revoke, &r, &err);
    dc_keyfile_free(kf);
    if (s != DC_OK)
        return say_err(code_of(s), "domain rollover-sok: %s", err.msg);
    char nb[64], ob[64];
    b64(r.sok, 32, nb);
    b64(r.old_sok, 32, ob);
    if (json) {
        printf("{\"sok\":\"%s\",\"old_sok\":", nb);
        if (r.had_sok)
            printf("\"%s\"", ob);
        else
            printf("null");
        printf(",\"old_sok_listed\":%s,\"retired_soks_listed\":%zu,\"fingerprint\":\"%s\","
               "\"old_fingerprint\":\"%s\"}\n", r.old_listed ? "true" : "false",
               r.retired_listed, r.fp, r.old_fp);
        return EX_OK;
    }
    printf("new online SOK:  %s permissions 0x%02x\n", nb, r.perm);
    if (r.had_sok)
        printf("old SOK:         %s: private key destroyed, %s\n", ob,
               r.old_listed ? "still listed with the SIGNET bit only (user signets it signed "
                              "keep verifying)"
                            : "no longer listed");
    printf("org signet:      %s\nreplaced signet: %s (still served by fingerprint)\n", r.fp,
           r.old_fp);
    printf("The _dime record and its tls= values stay valid (the POK did not change).\n");
    return EX_OK;
}

static int cmd_dns_record(struct kv_vault *v, int argc, char **argv);

static int cmd_domain(struct kv_vault *v, int argc, char **argv)
{
    struct dc_err err = {0};
    if (argc < 2)
        usage();
    if (strcmp(argv[1], "init") == 0)
        return domain_init(v, argc, argv);
    if (strcmp(argv[1], "rollover-sok") == 0)
        return domain_rollover(v, argc, argv);
    if (strcmp(argv[1], "rollover-pok") == 0)
        return dimectl_pok_rollover(v, argc, argv, json, cmd_dns_record);
    if (strcmp(argv[1], "show") == 0) {
        if (argc != 2)
            usage();
        return domain_show(v);
    }
    if (strcmp(argv[1], "import") != 0)
        usage();
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'}, {"signet", required_argument, NULL, 's'},
        {"sok", required_argument, NULL, 'o'}, {"offline-pok", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0}};
    const char *key = NULL, *signet = NULL, *sok = NULL;
    bool offline = false;
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'k': key = optarg; break;
        case 's': signet = optarg; break;
        case 'o': sok = optarg; break;
        case 'f': offline = true; break;
        default: usage();
        }
    }
    if (key == NULL || signet == NULL || optind != argc)
        usage();
    struct dc_keyfile *kf = NULL, *sk = NULL;
    struct dc_signet *org = NULL;
    int rc = EX_OK;
    if (dc_keyfile_load_file(key, &kf, &err) != DC_OK)
        rc = say_err(EX_INPUT, "%s: %s", key, err.msg);
    else if (sok != NULL && dc_keyfile_load_file(sok, &sk, &err) != DC_OK)
        rc = say_err(EX_INPUT, "%s: %s", sok, err.msg);
    else if ((rc = load_signet(signet, &org)) == EX_OK &&
             kv_vault_domain_import(v, kf, org, sk, offline, &err) != DC_OK)
        rc = say_err(code_of(err.code), "domain import: %s", err.msg);
    dc_keyfile_free(kf);
    dc_keyfile_free(sk);
    dc_signet_free(org);
    return rc == EX_OK ? domain_show(v) : rc;
}

/* ---- dns-record ---- */

static int cmd_dns_record(struct kv_vault *v, int argc, char **argv)
{
    static const struct option opts[] = {
        {"tls-cert", required_argument, NULL, 't'}, {"dx", required_argument, NULL, 'x'},
        {"policy", required_argument, NULL, 'p'},   {"ttl", required_argument, NULL, 'l'},
        {"pok", required_argument, NULL, 'k'},      {"sub", required_argument, NULL, 's'},
        {"syn", required_argument, NULL, 'y'},      {"expiry", required_argument, NULL, 'e'},
        {"record-ttl", required_argument, NULL, 'r'}, {NULL, 0, NULL, 0}};
    /* the options that are record fields, set as the record's parser reads them */
    static const char fieldopt[][2][12] = {{"x", "dx"}, {"p", "pol"}, {"s", "sub"},
                                          {"y", "syn"}, {"e", "exp"}, {"r", "ttl"}};
    struct dc_err err = {0};
    struct dc_mrec *rec = dc_mrec_new_publish();
    struct kv_domain d = {0};
    struct dc_signet *org = NULL;
    struct dc_keyfile *pk = NULL; /* freed at out, which the first failures jump to */
    struct kv_org_signer os = {0};
    char *text = NULL, *lines = NULL;
    unsigned long ttl = 3600;
    int rc = EX_OK, ch;
    uint8_t pok[32];
    optind = 1;
    if (kv_store_domain_get(v->store, &d, &err) != DC_OK) {
        rc = say_err(EX_REFUSED, "%s", err.msg);
        goto out;
    }
    if (dc_signet_parse(d.signet, d.signet_len, &org, &err) != DC_OK ||
        dc_signet_signing_key(org, pok, &err) != DC_OK ||
        dc_mrec_add_pok(rec, pok, &err) != DC_OK) {
        rc = say_err(EX_INTERNAL, "org signet: %s", err.msg);
        goto out;
    }
    /* tls= values are signed by the POK (peers check them against the record's POKs): from
     * --pok, else the vault's when it is online; --pok is looked for first */
    const char *pokfile = NULL;
    struct dc_signer tls_signer;
    bool have_signer = false;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1)
        if (ch == 'k')
            pokfile = optarg;
    optind = 1;
    if (pokfile != NULL) {
        if (dc_keyfile_load_file(pokfile, &pk, &err) != DC_OK) {
            rc = say_err(EX_INPUT, "%s: %s", pokfile, err.msg);
            goto out;
        }
        if (pk->sign == NULL || dc_memeq_ct(pk->sign->pub, pok, sizeof(pok)) != 0) {
            rc = say_err(EX_REFUSED, "%s: not the POK of %s", pokfile, d.name);
            goto out;
        }
        dc_signer_local(&tls_signer, pk->sign);
        have_signer = true;
    }
    while (rc == EX_OK && (ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'k': break;
        case 't': {
            uint8_t *der = NULL;
            size_t dl = 0;
            if (dc_mrec_cert_der(optarg, &der, &dl, &err) != DC_OK) {
                rc = say_err(err.code == DC_ERR_CRYPTO ? EX_INTERNAL : EX_INPUT, "%s", err.msg);
                break;
            }
            if (!have_signer && kv_vault_pok_signer(v, &os, &err) != KV_OK) {
                rc = say_err(EX_REFUSED, "tls: %s: give the POK's file with --pok (tls= "
                             "values are checked against the POK)", err.msg);
            } else {
                if (!have_signer)
                    tls_signer = os.signer;
                have_signer = true;
                if (dc_mrec_add_tls_cert(rec, &tls_signer, der, dl, &err) != DC_OK)
                    rc = say_err(EX_REFUSED, "tls: %s", err.msg);
            }
            free(der);
            break;
        }
        case 'l': {
            char *end;
            errno = 0;
            ttl = strtoul(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || errno != 0 || ttl > 2147483647UL)
                rc = say_err(EX_USAGE, "--ttl: '%s' is not a number of seconds", optarg);
            break;
        }
        default: {
            size_t f = 0;
            while (f < sizeof(fieldopt) / sizeof(fieldopt[0]) && fieldopt[f][0][0] != ch)
                f++;
            if (f == sizeof(fieldopt) / sizeof(fieldopt[0]))
                usage();
            if (dc_mrec_set(rec, fieldopt[f][1], optarg, &err) != DC_OK)
                rc = say_err(EX_USAGE, "%s", err.msg);
        }
        }
    }
    if (rc == EX_OK && optind != argc)
        usage();
    if (rc == EX_OK && dc_mrec_publish(rec, d.name, (uint32_t)ttl, &text, &lines, &err) != DC_OK)
        rc = say_err(EX_INTERNAL, "record: %s", err.msg);
    if (rc == EX_OK) {
        if (json) {
            printf("{\"domain\":");
            json_str(d.name);
            printf(",\"record\":");
            json_str(text);
            printf(",\"zone\":");
            json_str(lines);
            printf("}\n");
        } else {
            fputs(lines, stdout);
        }
    }
out:
    dc_keyfile_free(pk);
    kv_org_signer_free(&os);
    free(text);
    free(lines);
    dc_signet_free(org);
    kv_domain_clear(&d);
    dc_mrec_free(rec);
    return rc;
}

/* ---- users ---- */

static const char *held(const struct kv_generation *g)
{
    return g->sealed ? "private keys" : g->blob ? "encrypted blob" : g->mode ==
           KV_MODE_TRUSTFUL ? "retired" : "signet only";
}

static int user_show(struct kv_vault *v, const char *address)
{
    char addr[KV_NAME_MAX + 1];
    struct dc_err err = {0};
    struct kv_user u;
    struct kv_generation *g = NULL;
    size_t n = 0;
    if (kv_normalize(address, strlen(address), addr, &err) != DC_OK)
        return say_err(EX_USAGE, "%s", err.msg);
    if (kv_store_user_get(v->store, addr, &u, &err) != DC_OK)
        return say_err(code_of(err.code), "%s", err.msg);
    if (kv_store_gen_list(v->store, addr, &g, &n, &err) != DC_OK)
        return say_err(EX_INTERNAL, "%s", err.msg);
    if (json) {
        printf("{\"address\":");
        json_str(u.address);
        printf(",\"mode\":\"%s\",\"generation\":%u,\"created\":%lld,\"generations\":[",
               kv_mode_name(u.mode), u.generation, (long long)u.created);
        for (size_t i = 0; i < n; i++)
            printf("%s{\"generation\":%u,\"mode\":\"%s\",\"fingerprint\":\"%s\","
                   "\"crypto_fingerprint\":\"%s\",\"holds\":\"%s\",\"created\":%lld}",
                   i ? "," : "", g[i].generation, kv_mode_name(g[i].mode), g[i].fp,
                   g[i].fp_crypto, held(&g[i]), (long long)g[i].created);
        printf("]}\n");
    } else {
        printf("address:     %s\nmode:        %s\ngeneration:  %u\n", u.address,
               kv_mode_name(u.mode), u.generation);
        for (size_t i = 0; i < n; i++)
            printf("  %u  %-9s %-15s %s\n", g[i].generation, kv_mode_name(g[i].mode),
                   held(&g[i]), g[i].fp);
    }
    kv_generations_free(g, n);
    return EX_OK;
}

static int cmd_user(struct kv_vault *v, int argc, char **argv)
{
    static const struct option opts[] = {
        {"mode", required_argument, NULL, 'm'},    {"ssr", required_argument, NULL, 's'},
        {"key-blob", required_argument, NULL, 'b'}, {"below", required_argument, NULL, 'w'},
        {"key", required_argument, NULL, 'k'},     {NULL, 0, NULL, 0}};
    struct dc_err err = {0};
    if (argc < 2)
        usage();
    const char *sub = argv[1];
    if (strcmp(sub, "list") == 0) {
        struct kv_user *u = NULL;
        size_t n = 0;
        if (argc != 2)
            usage();
        if (kv_store_user_list(v->store, &u, &n, &err) != DC_OK)
            return say_err(EX_INTERNAL, "%s", err.msg);
        if (json)
            printf("[");
        for (size_t i = 0; i < n; i++) {
            if (json) {
                printf("%s{\"address\":", i ? "," : "");
                json_str(u[i].address);
                printf(",\"mode\":\"%s\",\"generation\":%u}", kv_mode_name(u[i].mode),
                       u[i].generation);
            } else {
                printf("%-40s %-9s %u\n", u[i].address, kv_mode_name(u[i].mode),
                       u[i].generation);
            }
        }
        if (json)
            printf("]\n");
        free(u);
        return EX_OK;
    }
    if (argc < 3)
        usage();
    const char *addr = argv[2];
    if (strchr(addr, '@') == NULL)
        return say_err(EX_USAGE, "'%s' is not an address (user@domain)", addr);
    if (strcmp(sub, "show") == 0) {
        if (argc != 3)
            usage();
        return user_show(v, addr);
    }
    enum kv_mode mode = 0;
    int first = 3;
    if (strcmp(sub, "set-mode") == 0) {
        if (argc < 4 || (mode = kv_mode_from_name(argv[3])) == 0)
            return say_err(EX_USAGE, "set-mode needs a mode: trustful, cautious or paranoid");
        first = 4;
    } else if (strcmp(sub, "add") != 0 && strcmp(sub, "rotate") != 0 &&
               strcmp(sub, "retire") != 0) {
        usage();
    }
    const char *ssrf = NULL, *blobf = NULL, *keyf = NULL;
    unsigned long below = 0;
    int ch;
    optind = first;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'm':
            if (strcmp(sub, "add") != 0)
                return say_err(EX_USAGE, "--mode is for user add (use user set-mode)");
            if ((mode = kv_mode_from_name(optarg)) == 0)
                return say_err(EX_USAGE, "--mode: '%s' is not trustful, cautious or paranoid",
                               optarg);
            break;
        case 's': ssrf = optarg; break;
        case 'b': blobf = optarg; break;
        case 'k': keyf = optarg; break;
        case 'w': {
            char *end;
            below = strtoul(optarg, &end, 10);
            if (strcmp(sub, "retire") != 0 || *optarg == '\0' || *end != '\0' || below < 1 ||
                below > 0xffffffffUL)
                return say_err(EX_USAGE, "--below: a generation number, for user retire");
            break;
        }
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    if (strcmp(sub, "retire") == 0) {
        char a[KV_NAME_MAX + 1];
        struct kv_user u;
        size_t removed = 0;
        if (ssrf || blobf || keyf)
            return say_err(EX_USAGE, "user retire takes only --below");
        if (kv_normalize(addr, strlen(addr), a, &err) != DC_OK)
            return say_err(EX_USAGE, "%s", err.msg);
        if (kv_store_user_get(v->store, a, &u, &err) != DC_OK)
            return say_err(code_of(err.code), "%s", err.msg);
        if (below == 0)
            below = u.generation;
        if (below > u.generation)
            return say_err(EX_REFUSED, "--below %lu would retire the current generation %u",
                           below, u.generation);
        if (kv_store_user_retire(v->store, a, (uint32_t)below, &removed, &err) != DC_OK)
            return say_err(EX_INTERNAL, "%s", err.msg);
        if (json)
            printf("{\"address\":\"%s\",\"retired_generations\":%zu}\n", a, removed);
        else
            printf("%s: keys of %zu generation(s) below %lu retired\n", a, removed, below);
        return EX_OK;
    }
    struct dc_signet *ssr = NULL;
    uint8_t *blob = NULL;
    size_t bl = 0;
    struct dc_keyfile *kf = NULL;
    int rc = EX_OK;
    if (keyf != NULL && dc_keyfile_load_file(keyf, &kf, &err) != DC_OK)
        rc = say_err(EX_INPUT, "%s: %s", keyf, err.msg);
    if (rc == EX_OK && ssrf != NULL)
        rc = load_signet(ssrf, &ssr);
    if (rc == EX_OK && blobf != NULL)
        rc = load_blob(blobf, &blob, &bl);
    if (rc == EX_OK) {
        enum dc_status s;
        if (strcmp(sub, "add") == 0)
            s = kv_vault_user_add(v, addr, mode ? mode : KV_MODE_TRUSTFUL, ssr, blob, bl, kf,
                                  &err);
        else
            s = kv_vault_user_rotate(v, addr, mode, ssr, blob, bl, kf, NULL, &err);
        if (s != DC_OK)
            rc = say_err(code_of(s), "user %s: %s", sub, err.msg);
    }
    dc_keyfile_free(kf);
    dc_signet_free(ssr);
    free(blob);
    return rc == EX_OK ? user_show(v, addr) : rc;
}

/* ---- signets ---- */

static int cmd_signet(struct kv_vault *v, int argc, char **argv)
{
    static const struct option opts[] = {{"fingerprint", required_argument, NULL, 'f'},
                                         {"armor", no_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    struct dc_err err = {0};
    char name[KV_NAME_MAX + 1];
    if (argc < 3)
        usage();
    if (kv_normalize(argv[2], strlen(argv[2]), name, &err) != DC_OK)
        return say_err(EX_USAGE, "%s", err.msg);
    if (strcmp(argv[1], "history") == 0) {
        if (argc != 3 || strchr(name, '@') == NULL)
            usage();
        struct kv_generation *g = NULL;
        size_t n = 0;
        struct dc_signet *org = NULL, *prev = NULL;
        uint8_t *ob;
        size_t ol;
        if (kv_vault_history(v, name, NULL, NULL, &g, &n, &err) != KV_OK)
            return say_err(EX_REFUSED, "%s: %s", name, err.msg);
        if (kv_vault_signet(v, strchr(name, '@') + 1, NULL, &ob, &ol, &err) != KV_OK ||
            dc_signet_parse(ob, ol, &org, &err) != DC_OK) {
            kv_generations_free(g, n);
            return say_err(EX_INTERNAL, "org signet: %s", err.msg);
        }
        free(ob);
        int rc = EX_OK;
        if (json)
            printf("[");
        for (size_t i = 0; i < n; i++) {
            struct dc_signet *s = NULL;
            enum dc_signet_state st = DC_SS_MALFORMED;
            if (dc_signet_parse(g[i].signet, g[i].signet_len, &s, &err) == DC_OK)
                st = dc_signet_verify_user(s, org, prev, &err);
            if (st < DC_SS_CRYPTO)
                rc = EX_REFUSED;
            if (json)
                printf("%s{\"generation\":%u,\"fingerprint\":\"%s\",\"state\":\"%s\"}",
                       i ? "," : "", g[i].generation, g[i].fp, dc_signet_state_name(st));
            else
                printf("%u  %-10s %s\n", g[i].generation, dc_signet_state_name(st), g[i].fp);
            dc_signet_free(prev);
            prev = s;
        }
        if (json)
            printf("]\n");
        dc_signet_free(prev);
        dc_signet_free(org);
        kv_generations_free(g, n);
        return rc;
    }
    if (strcmp(argv[1], "show") != 0)
        usage();
    const char *fp = NULL;
    bool armor = false;
    int ch;
    optind = 3;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'f')
            fp = optarg;
        else if (ch == 'a')
            armor = true;
        else
            usage();
    }
    if (optind != argc)
        usage();
    uint8_t *bin;
    size_t bl;
    struct dc_signet *s = NULL;
    enum kv_status ks = kv_vault_signet(v, name, fp, &bin, &bl, &err);
    if (ks != KV_OK)
        return say_err(ks == KV_E_INTERNAL ? EX_INTERNAL : EX_REFUSED, "%s: %s", name, err.msg);
    enum dc_status st = dc_signet_parse(bin, bl, &s, &err);
    free(bin);
    if (st != DC_OK)
        return say_err(EX_INTERNAL, "stored signet: %s", err.msg);
    char f[DC_FP_B64_LEN + 1], fc[DC_FP_B64_LEN + 1];
    dc_signet_fp(s, f, fc, NULL);
    char *text = armor ? dc_signet_armor(s) : dc_signet_b64(s);
    if (json) {
        printf("{\"name\":");
        json_str(name);
        printf(",\"type\":\"%s\",\"fingerprint\":\"%s\",\"crypto_fingerprint\":\"%s\","
               "\"signet\":", dc_signet_type_name(s->type), f, fc);
        json_str(text);
        printf("}\n");
    } else if (armor) {
        fputs(text, stdout);
    } else {
        printf("name:         %s\ntype:         %s\nfingerprint:  %s\ncrypto fp:    %s\n"
               "signet:       %s\n", name, dc_signet_type_name(s->type), f, fc, text);
    }
    free(text);
    dc_signet_free(s);
    return EX_OK;
}

int main(int argc, char **argv)
{
    /* --json may appear anywhere */
    int n = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else
            argv[n++] = argv[i];
    }
    argc = n;
    argv[argc] = NULL;
    int i = 1;
    if (i < argc && strcmp(argv[i], "-c") == 0) {
        if (i + 1 >= argc)
            usage();
        config_path = argv[i + 1];
        i += 2;
    }
    if (i >= argc)
        usage();
    const char *cmd = argv[i];
    if (strcmp(cmd, "domain") && strcmp(cmd, "dns-record") && strcmp(cmd, "user") &&
        strcmp(cmd, "signet") && strcmp(cmd, "setup") && strcmp(cmd, "check"))
        return say_err(EX_USAGE, "unknown command '%s' (domain, dns-record, user, signet, "
                       "setup, check)", cmd);
    int rc = EX_OK;
    if ((strcmp(cmd, "setup") == 0 || strcmp(cmd, "check") == 0) &&
        (rc = dimectl_vault_ids(config_path)) != EX_OK)
        return rc;
    struct kv_vault *v = open_vault(&rc);
    if (v == NULL)
        return rc;
    argc -= i;
    argv += i;
    if (strcmp(cmd, "domain") == 0)
        rc = cmd_domain(v, argc, argv);
    else if (strcmp(cmd, "dns-record") == 0)
        rc = cmd_dns_record(v, argc, argv);
    else if (strcmp(cmd, "user") == 0)
        rc = cmd_user(v, argc, argv);
    else if (strcmp(cmd, "setup") == 0)
        rc = dimectl_setup(v, config_path, argc, argv);
    else if (strcmp(cmd, "check") == 0)
        rc = dimectl_check(v, config_path, argc, argv);
    else
        rc = cmd_signet(v, argc, argv);
    kv_vault_close(v);
    return rc;
}
