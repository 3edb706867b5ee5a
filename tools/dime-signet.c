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
#include "signet.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

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
    tl_prog = "dime-signet";
    if (argc < 2)
        return tl_usage("no command given");
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
        return tl_usage("unknown option '%s'", first);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(first, commands[i].name) == 0) {
            tl_cmd = commands[i].name;
            opterr = 0;
            optind = 1;
            int rc = commands[i].fn(argc - 1, argv + 1);
            if (fflush(stdout) != 0 && rc == EX_OK) {
                tl_fail("stdout", "%s", strerror(errno));
                rc = EX_INTERNAL;
            }
            return rc;
        }
    }
    return tl_usage("unknown command '%s'", first);
}

