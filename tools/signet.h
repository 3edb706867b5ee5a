/*
 * signet - private to dime-signet: what its command files share. dime-signet.c has the
 * command table and main; signet_common.c loading, writing and printing objects and the
 * shared options; signet_keys.c org-generate, user-request and rotate; signet_sign.c sign
 * and sok-add; signet_inspect.c show, verify and fingerprint; signet_dns.c dns-record.
 */
#ifndef SIGNET_H
#define SIGNET_H

#include "dc_crypto.h"
#include "dc_keys.h"
#include "dc_signet.h"
#include "dc_util.h"
#include "tl_common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct object {
    struct dc_signet *signet; /* exactly one of these is set */
    struct dc_keyfile *key;
    bool armored;
};

/* Long-option values: info fields are OPT_FIELD_BASE + fid. */
enum {
    OPT_HELP = 'h',
    OPT_FORCE = 1000,
    OPT_FIELD,
    OPT_PREVIOUS_KEY,
    OPT_NEW_KEY,
    OPT_PERM,
    OPT_ORG_SIGNET,
    OPT_PREVIOUS,
    OPT_PRIVATE,
    OPT_KIND,
    OPT_ORG,
    OPT_POK,
    OPT_POLICY,
    OPT_DX,
    OPT_TLS_CERT,
    OPT_EXPIRY,
    OPT_TTL,
    OPT_RECORD_TTL,
    OPT_SUB,
    OPT_SYN,
    OPT_FIELD_BASE = 2000,
};

#define INFO_COMMON_LONGOPTS                                                                  \
    {"name", required_argument, NULL, OPT_FIELD_BASE + 16},                                   \
        {"address", required_argument, NULL, OPT_FIELD_BASE + 17},                            \
        {"province", required_argument, NULL, OPT_FIELD_BASE + 18},                           \
        {"country", required_argument, NULL, OPT_FIELD_BASE + 19},                            \
        {"postal", required_argument, NULL, OPT_FIELD_BASE + 20},                             \
        {"phone", required_argument, NULL, OPT_FIELD_BASE + 21},                              \
        {"website", required_argument, NULL, OPT_FIELD_BASE + 160},                           \
        {"field", required_argument, NULL, OPT_FIELD}

#define INFO_ORG_LONGOPTS                                                                     \
    {"abuse", required_argument, NULL, OPT_FIELD_BASE + 200},                                 \
        {"admin", required_argument, NULL, OPT_FIELD_BASE + 201},                             \
        {"support", required_argument, NULL, OPT_FIELD_BASE + 202}

#define INFO_COMMON_HELP                                                                      \
    "  --name TEXT          Name (fid 16)\n"                                                  \
    "  --address TEXT       Address (fid 17)\n"                                               \
    "  --province TEXT      Province (fid 18)\n"                                              \
    "  --country TEXT       Country (fid 19)\n"                                               \
    "  --postal TEXT        Postal-Code (fid 20)\n"                                           \
    "  --phone TEXT         Phone-Number (fid 21, may be repeated)\n"                         \
    "  --website TEXT       Website (fid 160)\n"                                              \
    "  --field FID=VALUE    any other text field by number (16-250); a non-numeric FID\n"     \
    "                       makes an Undefined-Field (fid 251) with that name\n"

#define INFO_ORG_HELP                                                                         \
    "  --abuse TEXT         Contact-Abuse (fid 200)\n"                                        \
    "  --admin TEXT         Contact-Admin (fid 201)\n"                                        \
    "  --support TEXT       Contact-Support (fid 202)\n"

#define EXIT_HELP                                                                             \
    "Exit status: 0 success, 1 verification failed or key not authorized, 2 usage error,\n"   \
    "3 input file unreadable, malformed or of the wrong kind, 4 internal, crypto or\n"        \
    "output error.\n"

struct info_field {
    uint8_t fid;       /* 251 for an undefined field */
    const char *name;  /* undefined fields only */
    size_t name_len;
    const char *value;
};

struct info_list {
    struct info_field *v;
    size_t n;
};

/* The fingerprint kinds by name (--kind, and the order they are printed in). */
struct fp_kind_name {
    const char *name;
    enum dc_fp_kind kind;
};
#define N_FP_KINDS 4
extern const struct fp_kind_name fp_kinds[N_FP_KINDS];

/* Reports a library error about file; strips a leading "file: " the library may add. */
void fail_err(const char *file, const struct dc_err *err);
/* Exit status for a failure to load an input. */
int input_exit(enum dc_status st);
void object_free(struct object *o);
/* Loads any signet, SSR or key file (armored or binary). Prints the error and returns the
 * exit status on failure. */
int load_object(const char *path, struct object *o);
/* Stable upper-case token for a state (what scripts match), and its meaning. */
const char *state_token(enum dc_signet_state st);
const char *state_meaning(enum dc_signet_state st);
const char *signet_object_name(enum dc_signet_type t);
/* Loads a signet of the wanted type (0 = any signet or SSR), or a key file of the wanted
 * type; print the error and return the exit status otherwise. */
int load_signet(const char *path, enum dc_signet_type want, struct dc_signet **out);
int load_key(const char *path, enum dc_key_type want, struct dc_keyfile **out);
/* Refuses to replace an existing file unless forced. */
int check_new_file(const char *path, bool force);
int write_signet(const char *path, const struct dc_signet *s);
int save_key(const char *path, const struct dc_keyfile *k);
/* A DNS name (lower-cased in place), a local@domain address (returns the domain part or
 * NULL). */
bool valid_domain(char *d);
const char *valid_address(char *a);
/* Untrusted text in double quotes with control and bidi characters escaped; base64. */
void print_quoted(FILE *f, const uint8_t *s, size_t n);
void print_b64(FILE *f, const uint8_t *p, size_t n);
/* Binary fields (keys, signatures, photo) are printed in base64, the others as text. */
bool field_is_binary(enum dc_signet_type t, uint8_t fid);
const char *perm_string(uint8_t perm, char buf[64]);
/* Prints "<prefix><kind>: <fp>" for every fingerprint the signet reaches. */
int print_fingerprints(const char *path, const struct dc_signet *s, const char *prefix);
/* The info-field options (see struct info_list). */
void info_free(struct info_list *l);
int info_add(struct info_list *l, size_t cap, uint8_t fid, const char *arg);
int info_apply(const struct info_list *l, struct dc_signet *s);
/* An info-field option from getopt_long (anything else is a bad option). */
int info_option(struct info_list *l, int argc, char **argv, int c);
/* Reports an unknown option or a missing argument after getopt_long returned '?' or ':'. */
int bad_option(int argc, char **argv, int c);
/* Signs 253, sets the ID and signs 255. */
int finish_signet(struct dc_signet *s, const char *id, const struct dc_signer *signer,
                  const char *what);
/* The org signet's POK (fid 1), that the key file holds it (kf->sign), and that the org
 * signet verifies with it; each prints the error and returns the exit status. */
int org_pok(const char *path, const struct dc_signet *org, uint8_t pok[DC_ED25519_PUB_LEN]);
int pok_matches(const char *keypath, const struct dc_keyfile *kf,
                const uint8_t pok[DC_ED25519_PUB_LEN], const char *orgpath);
int org_self_check(const char *path, const struct dc_signet *org,
                   const uint8_t pok[DC_ED25519_PUB_LEN]);

/* The commands: each gets argv from its name on, and returns the exit status. */
int cmd_org_generate(int argc, char **argv);
int cmd_user_request(int argc, char **argv);
int cmd_rotate(int argc, char **argv);
int cmd_sign(int argc, char **argv);
int cmd_sok_add(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_fingerprint(int argc, char **argv);
int cmd_dns_record(int argc, char **argv);

#endif
