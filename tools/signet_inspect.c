/*
 * signet_inspect - dime-signet show, verify and fingerprint: the commands that only read
 * signets, SSRs and key files and report what they hold and whether they verify.
 */
#include "signet.h"

#include "dc_b64.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

int cmd_show(int argc, char **argv)
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
        return tl_usage("needs at least one FILE");
    if (priv)
        tl_fail(NULL, "warning: printing PRIVATE key material to standard output");
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
        tl_fail("stdout", "%s", strerror(errno));
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

int cmd_verify(int argc, char **argv)
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
                return tl_usage("at most %d --pok values", MAX_POKS);
            if (strlen(optarg) != 43 ||
                dc_b64_decode_exact(optarg, 43, poks[npoks], DC_ED25519_PUB_LEN, &err) != DC_OK)
                return tl_usage("--pok needs 43 characters of unpadded base64 (an Ed25519 "
                                "key)%s%s", err.msg[0] ? ": " : "", err.msg);
            npoks++;
            break;
        }
        case 'h': fputs(help_verify, stdout); return EX_OK;
        default: return bad_option(argc, argv, c);
        }
    }
    if (optind + 1 != argc)
        return tl_usage("needs exactly one FILE");
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
            rc = tl_usage("--org and --previous apply to user signets and SSRs only");
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
            rc = tl_usage("a user signet needs --org ORGSIGNET");
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
            rc = tl_usage("--org and --pok do not apply to a signing request");
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

int cmd_fingerprint(int argc, char **argv)
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
        return tl_usage("needs exactly one FILE");
    size_t k = N_FP_KINDS;
    if (kind != NULL) {
        for (k = 0; k < N_FP_KINDS; k++)
            if (strcasecmp(kind, fp_kinds[k].name) == 0)
                break;
        if (k == N_FP_KINDS)
            return tl_usage("--kind must be crypto, full, id or ssr");
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
            tl_fail(path, "has no %s fingerprint (%s)", fp_kinds[k].name, err.msg);
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

