/*
 * mf_sender - who may author-sign as an envelope sender: the SASL login's ownership of the
 * sender address (the sender-login-map, with the semantics of Postfix's
 * smtpd_sender_login_maps) and the one address of the From field. No libmilter, no I/O
 * beyond reading the map file once at start.
 *
 * Map file (milter { sender-login-map } in dime.conf), one entry per logical line:
 *
 *     # comment (a line whose first non-blank character is '#')
 *     alice@a.example      alice
 *     sales@a.example      alice, bob
 *     @b.example           b-admin
 *
 * The key is an address or @domain, the value one or more SASL logins separated by commas
 * and/or blanks. A line that starts with a blank continues the previous one (as in Postfix
 * tables). Keys and logins compare without regard to case; a key given twice is an error.
 * Lookup order, as Postfix does for non-regexp tables: the full address, then @domain. With
 * no map, or no entry for the sender, the sender is owned by the login that equals the whole
 * address or its local part.
 */
#ifndef MF_SENDER_H
#define MF_SENDER_H

#include "dc_util.h"

#include <stdbool.h>
#include <stddef.h>

struct mf_login_entry {
    char *key;     /* "local@domain" or "@domain" */
    char **logins;
    size_t nlogins;
};

struct mf_login_map {
    struct mf_login_entry *entries; /* sorted by key, case-insensitively */
    size_t n;
};

/* Parses map text (name is for error messages: "file:line: ..."). On error out is empty. */
enum dc_status mf_login_map_parse(const char *text, size_t len, const char *name,
                                  struct mf_login_map *out, struct dc_err *err);
/* Reads and parses the file at path. */
enum dc_status mf_login_map_load(const char *path, struct mf_login_map *out,
                                 struct dc_err *err);
void mf_login_map_free(struct mf_login_map *m);

/* The entry that decides for sender (full address, then @domain), or NULL. m may be NULL. */
const struct mf_login_entry *mf_login_map_find(const struct mf_login_map *m,
                                               const char *sender);

/* Whether login owns sender: listed in the entry the map has for sender, or, without an
 * entry, equal to the address or to its local part. m may be NULL (no map). */
bool mf_login_owns(const struct mf_login_map *m, const char *login, const char *sender);

/* The address of a From field value that names exactly one mailbox ("Name <a@b>", "a@b",
 * "a@b (comment)", quoted display names with commas), malloc'd; NULL for no address, a
 * group, several mailboxes or an address with blanks in it. */
char *mf_from_single(const char *value);

#endif
