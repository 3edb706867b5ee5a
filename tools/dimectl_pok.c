/*
 * dimectl_pok - `dimectl domain rollover-pok`: a new POK for the domain, signed over by the
 * old one (dc_rollover.h), so that relays that pinned the old POK follow without their
 * operators' help (issue 15). See dimectl(8).
 */
#include "dimectl.h"

#include "dc_b64.h"
#include "dc_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(int code, const char *what, const char *msg)
{
    fprintf(stderr, "dimectl: domain rollover-pok: %s%s%s\n", what, msg[0] ? ": " : "", msg);
    return code;
}

/* The new key file goes to ctx (a path), mode 0400, never over an existing file. */
static enum dc_status save_new(void *ctx, const struct dc_keyfile *key, struct dc_err *err)
{
    return dc_keyfile_save_new(key, ctx, 0400, err);
}

int dimectl_pok_rollover(struct kv_vault *v, int argc, char **argv, bool json,
                         dimectl_cmd_fn dns_record)
{
    const char *old_file = NULL, *new_file = NULL;
    /* the options that are not ours go to dns-record, with --pok NEWFILE */
    char **rest = dc_xcalloc((size_t)argc + 4, sizeof(*rest));
    int nrest = 0;
    rest[nrest++] = "dns-record";
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--pok-old") == 0 && i + 1 < argc)
            old_file = argv[++i];
        else if (strcmp(argv[i], "--pok-file") == 0 && i + 1 < argc)
            new_file = argv[++i];
        else if (strcmp(argv[i], "--pok") == 0) {
            free(rest);
            return fail(EX_USAGE, "--pok", "the record is signed with the new POK (--pok-file)");
        } else
            rest[nrest++] = argv[i];
    }
    if (old_file == NULL || new_file == NULL) {
        free(rest);
        return fail(EX_USAGE, "usage", "domain rollover-pok --pok-old FILE --pok-file NEWFILE "
                    "[dns-record options]");
    }
    if (access(new_file, F_OK) == 0) {
        free(rest);
        return fail(EX_REFUSED, new_file, "exists; not overwritten");
    }
    struct dc_err err = {0};
    struct dc_keyfile *old = NULL;
    struct kv_pok_rollover r;
    if (dc_keyfile_load_file(old_file, &old, &err) != DC_OK) {
        free(rest);
        return fail(EX_INPUT, old_file, err.msg);
    }
    enum dc_status s = kv_vault_pok_rollover(v, old, save_new, (void *)new_file, &r, &err);
    dc_keyfile_free(old);
    if (s != DC_OK) {
        /* it did not exist before: a file there now is the one the vault wrote before it
         * refused to store the rollover */
        unlink(new_file);
        free(rest);
        return fail(s == DC_ERR_IO || s == DC_ERR_CRYPTO ? EX_INTERNAL : EX_REFUSED, "", err.msg);
    }
    char nb[64], ob[64];
    dc_b64_encode(r.pok, sizeof(r.pok), nb, 0);
    dc_b64_encode(r.old_pok, sizeof(r.old_pok), ob, 0);
    FILE *o = json ? stderr : stdout; /* --json: stdout is the record's JSON */
    fprintf(o, "new POK:         %s (in %s, mode 0400)\nold POK:         %s (signed the "
            "rollover link)\norg signet:      %s\nreplaced signet: %s (still served by "
            "fingerprint)\nPublish the record below (it names the new POK); then move %s to "
            "offline storage.\n", nb, new_file, ob, r.fp, r.old_fp, new_file);
    rest[nrest++] = "--pok";
    rest[nrest++] = (char *)new_file;
    rest[nrest] = NULL;
    int rc = dns_record(v, nrest, rest);
    free(rest);
    return rc;
}
