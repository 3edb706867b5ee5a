/*
 * signet_keys - dime-signet org-generate, user-request and rotate: the commands that make
 * new keys (an organization's key file and signet, a user's key file and signing request,
 * with a chain of custody from the current key on rotation).
 */
#include "signet.h"

#include "dc_b64.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int cmd_org_generate(int argc, char **argv)
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
        default: rc = info_option(&info, argc, argv, c); break;
        }
        if (rc != EX_OK) {
            info_free(&info);
            return rc;
        }
    }
    if (optind + 1 != argc || keypath == NULL || signetpath == NULL) {
        info_free(&info);
        return tl_usage("needs DOMAIN, -k KEYFILE and -s SIGNETFILE");
    }
    char *domain = argv[optind];
    if (!valid_domain(domain)) {
        info_free(&info);
        return tl_usage("'%s' is not a valid domain name", domain);
    }
    if (strcmp(keypath, signetpath) == 0) {
        info_free(&info);
        return tl_usage("the key file and the signet file must differ");
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
        tl_fail(NULL, "cannot generate keys: %s", err.msg);
        rc = EX_INTERNAL;
        goto out;
    }
    if (dc_signet_org_create(kf->sign, kf->enc->pub, &s, &err) != DC_OK) {
        tl_fail(NULL, "cannot create the signet: %s", err.msg);
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
        return tl_usage("'%s' is not a valid USER@DOMAIN address", address);
    if (strcmp(newkeypath, ssrpath) == 0 ||
        (prevkeypath != NULL && (strcmp(prevkeypath, newkeypath) == 0 ||
                                 strcmp(prevkeypath, ssrpath) == 0)))
        return tl_usage("the key, previous key and request files must all differ");
    if ((rc = check_new_file(newkeypath, force)) != EX_OK ||
        (rc = check_new_file(ssrpath, force)) != EX_OK)
        return rc;

    struct dc_keyfile *prev = NULL, *kf = NULL;
    struct dc_signet *ssr = NULL;
    struct dc_err err = {0};
    if (prevkeypath != NULL && (rc = load_key(prevkeypath, DC_KEY_USER, &prev)) != EX_OK)
        return rc;
    if (dc_keyfile_generate(DC_KEY_USER, &kf, &err) != DC_OK) {
        tl_fail(NULL, "cannot generate keys: %s", err.msg);
        rc = EX_INTERNAL;
        goto out;
    }
    if (dc_signet_ssr_create(kf->sign, kf->enc->pub, prev ? prev->sign : NULL, &ssr, &err) !=
        DC_OK) {
        tl_fail(NULL, "cannot create the request: %s", err.msg);
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

int cmd_user_request(int argc, char **argv)
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
        return tl_usage("needs USER@DOMAIN, -k KEYFILE and -r SSRFILE");
    return make_request(argv[optind], keypath, ssrpath, prevpath, force);
}

int cmd_rotate(int argc, char **argv)
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
        return tl_usage("needs USER@DOMAIN, -k CURRENT_KEYFILE, --new-key NEWKEYFILE and "
                        "-r SSRFILE");
    return make_request(argv[optind], newpath, ssrpath, keypath, force);
}

