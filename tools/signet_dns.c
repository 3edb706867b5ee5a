/*
 * signet_dns - dime-signet dns-record: the DIME management record (_dime and _dx TXT
 * zone-file lines) for an organizational signet, with an optional tls= signature.
 */
#include "signet.h"

#include "dc_mrec.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    "  --policy POL         mixed (default), strict or experimental\n"
    "  --dx HOST            a DIME delivery host (may be repeated, order kept)\n"
    "  --sub SUB            sub= field: strict (default), relaxed or explicit\n"
    "  --syn HOSTS          syn= field: the domain's syndicates\n"
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
        return tl_usage("%s needs a non-negative decimal number, got '%s'", opt, arg);
    unsigned long long v = strtoull(arg, &end, 10);
    if (*end != '\0' || errno != 0 || v > 0xffffffffull)
        return tl_usage("%s needs a decimal number up to 4294967295, got '%s'", opt, arg);
    *out = (uint32_t)v;
    return EX_OK;
}

/* The options of a dns-record run. */
struct dns_args {
    const char *certpath, *keypath;
    uint32_t ttl;
};

/* Reads the options into rec and a; EX_OK, -1 after --help, or the exit status. */
static int dns_options(int argc, char **argv, struct dc_mrec *rec, struct dns_args *a)
{
    static const struct option opts[] = {
        {"policy", required_argument, NULL, OPT_POLICY},
        {"dx", required_argument, NULL, OPT_DX},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"key", required_argument, NULL, 'k'},
        {"expiry", required_argument, NULL, OPT_EXPIRY},
        {"record-ttl", required_argument, NULL, OPT_RECORD_TTL},
        {"sub", required_argument, NULL, OPT_SUB},
        {"syn", required_argument, NULL, OPT_SYN},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct dc_err err = {0};
    int c, rc = EX_OK;
    while (rc == EX_OK && (c = getopt_long(argc, argv, ":k:h", opts, NULL)) != -1) {
        const char *field = NULL; /* a record field: set as the record's parser reads it */
        switch (c) {
        case OPT_POLICY: field = "pol"; break;
        case OPT_DX: field = "dx"; break;
        case OPT_SUB: field = "sub"; break;
        case OPT_SYN: field = "syn"; break;
        case OPT_EXPIRY: field = "exp"; break;
        case OPT_RECORD_TTL: field = "ttl"; break;
        case OPT_TLS_CERT: a->certpath = optarg; break;
        case 'k': a->keypath = optarg; break;
        case OPT_TTL:
            rc = parse_u32("--ttl", optarg, &a->ttl);
            if (rc == EX_OK && a->ttl > 0x7fffffffu)
                rc = tl_usage("--ttl is at most 2147483647");
            break;
        case 'h': fputs(help_dns_record, stdout); return -1;
        default: rc = bad_option(argc, argv, c); break;
        }
        if (field != NULL && dc_mrec_set(rec, field, optarg, &err) != DC_OK)
            rc = tl_usage("%s", err.msg);
    }
    if (rc != EX_OK)
        return rc;
    if (optind + 1 != argc)
        return tl_usage("needs exactly one ORGSIGNET");
    if ((a->certpath == NULL) != (a->keypath == NULL))
        return tl_usage("--tls-cert and -k go together");
    return EX_OK;
}

/* Adds the tls= signature of the certificate, made with the POK from the key file. */
static int dns_tls(struct dc_mrec *rec, const struct dns_args *a, const char *path,
                   const uint8_t pok[DC_ED25519_PUB_LEN])
{
    struct dc_err err = {0};
    struct dc_keyfile *kf = NULL;
    struct dc_signer signer;
    uint8_t *der = NULL;
    size_t derlen = 0;
    int rc;
    if ((rc = load_key(a->keypath, DC_KEY_ORG, &kf)) != EX_OK)
        return rc;
    if (kf->sign == NULL || memcmp(kf->sign->pub, pok, DC_ED25519_PUB_LEN) != 0) {
        tl_fail(a->keypath, "does not hold the POK of %s (tls= must be signed by the POK)",
                path);
        rc = EX_VERIFY;
    } else if (dc_mrec_cert_der(a->certpath, &der, &derlen, &err) != DC_OK) {
        fail_err(a->certpath, &err);
        rc = err.code == DC_ERR_CRYPTO ? EX_INTERNAL : EX_INPUT;
    } else {
        dc_signer_local(&signer, kf->sign);
        if (dc_mrec_add_tls_cert(rec, &signer, der, derlen, &err) != DC_OK) {
            fail_err(a->certpath, &err);
            rc = EX_INTERNAL;
        }
    }
    free(der);
    dc_keyfile_free(kf);
    return rc;
}

int cmd_dns_record(int argc, char **argv)
{
    struct dc_mrec *rec = dc_mrec_new_publish();
    struct dns_args a = {.ttl = 3600};
    struct dc_err err = {0};
    struct dc_signet *org = NULL;
    char *id = NULL, *text = NULL, *lines = NULL;
    int rc = dns_options(argc, argv, rec, &a);
    if (rc != EX_OK) {
        dc_mrec_free(rec);
        return rc < 0 ? EX_OK : rc;
    }
    const char *path = argv[optind];
    if ((rc = load_signet(path, DC_SIGNET_ORG, &org)) != EX_OK)
        goto out;
    uint8_t pok[DC_ED25519_PUB_LEN];
    if ((rc = org_pok(path, org, pok)) != EX_OK || (rc = org_self_check(path, org, pok)) != EX_OK)
        goto out;
    id = dc_signet_id(org);
    if (id == NULL) {
        tl_fail(path, "has no signet identifier (fid 254), so its domain is unknown");
        rc = EX_INPUT;
        goto out;
    }
    if (dc_mrec_add_pok(rec, pok, &err) != DC_OK) {
        fail_err(path, &err);
        rc = EX_INTERNAL;
        goto out;
    }
    if (a.certpath != NULL && (rc = dns_tls(rec, &a, path, pok)) != EX_OK)
        goto out;
    if (dc_mrec_publish(rec, id, a.ttl, &text, &lines, &err) != DC_OK) {
        char safe[68];
        tl_fail(path, "cannot make the record for '%s': %s",
                dc_safe_str(id, strlen(id), safe, 64), err.msg);
        rc = EX_INPUT;
        goto out;
    }
    fputs(lines, stdout);
out:
    free(lines);
    free(text);
    free(id);
    dc_signet_free(org);
    dc_mrec_free(rec);
    return rc;
}
