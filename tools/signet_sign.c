/*
 * signet_sign - dime-signet sign and sok-add: the commands that sign with the
 * organization's keys (an SSR into a user signet, by the POK or an authorized SOK; a new
 * SOK into the organizational signet, by the POK).
 */
#include "signet.h"

#include "dc_b64.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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

/* What one sign run works with: the paths from the options, the objects loaded from them,
 * and the signer chosen. */
struct sign_job {
    const char *keypath, *outpath, *orgpath, *prevpath, *ssrpath;
    char *id;           /* USER@DOMAIN */
    const char *domain; /* its domain part */
    struct dc_signet *ssr, *org, *prev, *user;
    struct dc_keyfile *kf;
    struct dc_signer signer;
};

/* The signing key: the POK, or a SOK that the org signet lists with the SIGNET bit. */
static int sign_choose_signer(struct sign_job *j)
{
    const struct dc_keyfile *kf = j->kf;
    if (kf->sok != NULL) {
        char pb[64];
        if (!(kf->sok_perm & DC_SOK_SIGNET)) {
            tl_fail(j->keypath, "this SOK is not allowed to sign signets (permissions: %s)",
                    perm_string(kf->sok_perm, pb));
            return EX_VERIFY;
        }
        if (j->org == NULL)
            return tl_usage("signing with a SOK needs --org-signet listing that SOK");
        struct dc_sok soks[64];
        size_t n = dc_signet_soks(j->org, soks, sizeof(soks) / sizeof(soks[0]));
        bool listed = false;
        for (size_t i = 0; i < n && i < sizeof(soks) / sizeof(soks[0]); i++) {
            if (memcmp(soks[i].pub, kf->sok->pub, DC_ED25519_PUB_LEN) == 0) {
                listed = true;
                if (!(soks[i].perm & DC_SOK_SIGNET)) {
                    tl_fail(j->orgpath, "lists this SOK without the signet permission "
                                        "(permissions: %s)", perm_string(soks[i].perm, pb));
                    return EX_VERIFY;
                }
            }
        }
        if (!listed) {
            tl_fail(j->orgpath, "does not list the SOK in %s", j->keypath);
            return EX_VERIFY;
        }
        dc_signer_local(&j->signer, kf->sok);
        return EX_OK;
    }
    if (j->org != NULL) {
        uint8_t pok[DC_ED25519_PUB_LEN];
        int rc;
        if ((rc = org_pok(j->orgpath, j->org, pok)) != EX_OK ||
            (rc = pok_matches(j->keypath, kf, pok, j->orgpath)) != EX_OK)
            return rc;
    }
    dc_signer_local(&j->signer, kf->sign);
    return EX_OK;
}

/* The org signet is the signet of the address's domain, the previous signet one of the
 * address. */
static int sign_check_ids(const struct sign_job *j)
{
    int rc = EX_OK;
    char *orgid = NULL, *previd = NULL;
    if (j->org != NULL) {
        orgid = dc_signet_id(j->org);
        if (orgid == NULL) {
            tl_fail(j->orgpath, "has no signet identifier (fid 254)");
            rc = EX_INPUT;
        } else if (strcasecmp(orgid, j->domain) != 0) {
            char safe[68];
            tl_fail(j->orgpath, "is the signet of '%s', not of %s",
                    dc_safe_str(orgid, strlen(orgid), safe, 64), j->domain);
            rc = EX_VERIFY;
        }
    }
    if (rc == EX_OK && j->prev != NULL) {
        previd = dc_signet_id(j->prev);
        if (previd == NULL || strcasecmp(previd, j->id) != 0) {
            tl_fail(j->prevpath, "is not a signet of %s", j->id);
            rc = EX_VERIFY;
        }
    }
    free(orgid);
    free(previd);
    return rc;
}

/* The SSR: self signature, and custody when it is a rotation (which needs --previous). */
static int sign_check_ssr(const struct sign_job *j)
{
    struct dc_err err = {0};
    bool rotation = dc_signet_field(j->ssr, DC_FID_USER_CUSTODY, 0) != NULL;
    if (rotation && j->prev == NULL)
        return tl_usage("%s is a key rotation (it has a custody signature): give the user's "
                        "current signet with --previous", j->ssrpath);
    if (!rotation && j->prev != NULL) {
        tl_fail(j->ssrpath, "has no chain-of-custody signature, but --previous was given");
        return EX_VERIFY;
    }
    enum dc_signet_state st = dc_signet_verify_ssr(j->ssr, j->prev, &err);
    if (st != DC_SS_SSR) {
        tl_fail(j->ssrpath, "request does not verify (%s): %s", state_token(st), err.msg);
        return EX_VERIFY;
    }
    return EX_OK;
}

/* Signs the SSR into the user signet with its info fields and ID, checks it against the org
 * signet when there is one, and writes it. */
static int sign_make_user(struct sign_job *j, const struct info_list *info)
{
    struct dc_err err = {0};
    int rc;
    if (dc_signet_ssr_sign(j->ssr, j->prev, &j->signer, &j->user, &err) != DC_OK) {
        fail_err(j->ssrpath, &err);
        return err.code == DC_ERR_SIGNATURE || err.code == DC_ERR_CUSTODY ? EX_VERIFY
               : input_exit(err.code);
    }
    if ((rc = info_apply(info, j->user)) != EX_OK ||
        (rc = finish_signet(j->user, j->id, &j->signer, j->outpath)) != EX_OK)
        return rc;
    if (j->org != NULL) {
        /* Self check before handing the signet out. */
        enum dc_signet_state st = dc_signet_verify_user(j->user, j->org, j->prev, &err);
        if (st != DC_SS_ID) {
            tl_fail(j->outpath, "the new signet does not verify against %s (%s): %s",
                    j->orgpath, state_token(st), err.msg);
            return EX_INTERNAL;
        }
    }
    return write_signet(j->outpath, j->user);
}

int cmd_sign(int argc, char **argv)
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
    struct sign_job j = {0};
    bool force = false;
    struct info_list info = {0};
    int c, rc = EX_OK;

    while ((c = getopt_long(argc, argv, ":k:i:o:O:P:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'k': j.keypath = optarg; break;
        case 'i': j.id = optarg; break;
        case 'o': j.outpath = optarg; break;
        case 'O': j.orgpath = optarg; break;
        case 'P': j.prevpath = optarg; break;
        case 'f': force = true; break;
        case 'h': fputs(help_sign, stdout); info_free(&info); return EX_OK;
        default: rc = info_option(&info, argc, argv, c); break;
        }
        if (rc != EX_OK) {
            info_free(&info);
            return rc;
        }
    }
    if (optind + 1 != argc || j.keypath == NULL || j.id == NULL || j.outpath == NULL) {
        info_free(&info);
        return tl_usage("needs SSRFILE, -k KEYFILE, -i USER@DOMAIN and -o SIGNETFILE");
    }
    j.ssrpath = argv[optind];
    j.domain = valid_address(j.id);
    if (j.domain == NULL) {
        info_free(&info);
        return tl_usage("'%s' is not a valid USER@DOMAIN address", j.id);
    }
    if ((rc = check_new_file(j.outpath, force)) != EX_OK) {
        info_free(&info);
        return rc;
    }

    if ((rc = load_signet(j.ssrpath, DC_SIGNET_SSR, &j.ssr)) != EX_OK ||
        (rc = load_key(j.keypath, DC_KEY_ORG, &j.kf)) != EX_OK)
        goto out;
    if (j.orgpath != NULL && (rc = load_signet(j.orgpath, DC_SIGNET_ORG, &j.org)) != EX_OK)
        goto out;
    if (j.prevpath != NULL && (rc = load_signet(j.prevpath, DC_SIGNET_USER, &j.prev)) != EX_OK)
        goto out;
    if ((rc = sign_choose_signer(&j)) != EX_OK || (rc = sign_check_ids(&j)) != EX_OK ||
        (rc = sign_check_ssr(&j)) != EX_OK || (rc = sign_make_user(&j, &info)) != EX_OK)
        goto out;
    printf("user signet: %s\n", j.outpath);
    printf("id: %s\n", j.id);
    printf("signed with: %s\n", j.kf->sok != NULL ? "SOK" : "POK");
    rc = print_fingerprints(j.outpath, j.user, "fingerprint-");
out:
    dc_signet_free(j.user);
    dc_signet_free(j.ssr);
    dc_signet_free(j.org);
    dc_signet_free(j.prev);
    dc_keyfile_free(j.kf);
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
            int rc = tl_usage("--perm: unknown permission '%s' (use signet, msg, tls, "
                              "software)", t);
            free(copy);
            return rc;
        }
    }
    free(copy);
    if (perm == 0)
        return tl_usage("--perm: give at least one permission");
    *out = perm;
    return EX_OK;
}

/* org with one more SOK (fid 2), re-signed by the POK (dc_signet_org_set_soks). */
static int org_add_sok(const struct dc_signet *org, uint8_t perm, const uint8_t pub[32],
                       const struct dc_signer *pok, struct dc_signet **out, struct dc_err *err)
{
    struct dc_sok soks[DC_SIGNET_MAX_SOKS];
    size_t n = dc_signet_soks(org, soks, DC_SIGNET_MAX_SOKS);
    if (n >= DC_SIGNET_MAX_SOKS)
        return dc_fail(err, DC_ERR_LIMIT, "the signet already lists %zu SOKs", n);
    soks[n].perm = perm;
    memcpy(soks[n].pub, pub, DC_ED25519_PUB_LEN);
    return dc_signet_org_set_soks(org, soks, n + 1, pok, out, err);
}

int cmd_sok_add(int argc, char **argv)
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
        return tl_usage("unexpected argument '%s'", argv[optind]);
    if (keypath == NULL || signetpath == NULL || permarg == NULL || outpath == NULL)
        return tl_usage("needs -k ORGKEY, -s ORGSIGNET, --perm LIST and -o SOKKEYFILE");
    uint8_t perm = 0;
    if ((rc = parse_perm(permarg, &perm)) != EX_OK)
        return rc;
    if (strcmp(outpath, keypath) == 0 || strcmp(outpath, signetpath) == 0)
        return tl_usage("the SOK key file must be a new file");
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
        tl_fail(keypath, "is a SOK key file; adding a SOK needs the POK");
        rc = EX_VERIFY;
        goto out;
    }
    uint8_t pok[DC_ED25519_PUB_LEN];
    if ((rc = org_pok(signetpath, org, pok)) != EX_OK ||
        (rc = pok_matches(keypath, kf, pok, signetpath)) != EX_OK ||
        (rc = org_self_check(signetpath, org, pok)) != EX_OK)
        goto out;
    if (dc_keyfile_sok_generate(perm, &sok, &err) != DC_OK) {
        tl_fail(NULL, "cannot generate the SOK: %s", err.msg);
        rc = EX_INTERNAL;
        goto out;
    }
    dc_signer_local(&signer, kf->sign);
    if (org_add_sok(org, perm, sok->sok->pub, &signer, &updated, &err) != DC_OK) {
        tl_fail(signetpath, "cannot add the SOK: %s", err.msg);
        rc = input_exit(err.code) == EX_INTERNAL ? EX_INTERNAL : EX_INPUT;
        goto out;
    }
    enum dc_signet_state st =
        dc_signet_verify_org(updated, (const uint8_t(*)[DC_ED25519_PUB_LEN])pok, 1, &err);
    if (st < DC_SS_FULL) {
        tl_fail(signetpath, "the updated signet does not verify (%s): %s",
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

