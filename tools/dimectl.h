/*
 * dimectl.h - what dimectl.c shares with the files of its bigger commands (dimectl_setup.c:
 * setup, dimectl_check.c: check, dimectl_pok.c: domain rollover-pok): exit statuses and the
 * error line.
 */
#ifndef DIMECTL_H
#define DIMECTL_H

#include "kv_vault.h"

#include <stdbool.h>

enum { EX_OK = 0, EX_REFUSED = 1, EX_USAGE = 2, EX_INPUT = 3, EX_INTERNAL = 4 };

/* "dimectl: " + the message on stderr; returns code. */
int say_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Started as root for setup or check: become keyvault { user } of config_path (the
 * effective ids only), so that the vault's store and master key are opened as the daemon
 * opens them (the master key must belong to the effective user); dimectl_root(true) takes
 * root back for what needs it (files in /etc, postconf), dimectl_root(false) returns to the
 * vault's user. Nothing changes when not root or when the vault's user is root. */
int dimectl_vault_ids(const char *config_path);
void dimectl_root(bool on);

/* dimectl setup DOMAIN ... and dimectl check DOMAIN ...: argv[0] is the command. */
int dimectl_setup(struct kv_vault *v, const char *config_path, int argc, char **argv);
int dimectl_check(struct kv_vault *v, const char *config_path, int argc, char **argv);

typedef int (*dimectl_cmd_fn)(struct kv_vault *v, int argc, char **argv);

/* domain rollover-pok --pok-old FILE --pok-file NEWFILE [dns-record options]: argv[0] is
 * "domain", argv[1] "rollover-pok". The new record is printed by dns_record (dimectl's
 * dns-record command, given the new POK file). */
int dimectl_pok_rollover(struct kv_vault *v, int argc, char **argv, bool json,
                         dimectl_cmd_fn dns_record);

#endif
