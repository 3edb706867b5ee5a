/*
 * dimectl.h - what dimectl.c shares with the files of its larger commands.
 */
#ifndef DIMECTL_H
#define DIMECTL_H

#include "kv_vault.h"

#include <stdbool.h>

enum { EX_OK = 0, EX_REFUSED = 1, EX_USAGE = 2, EX_INPUT = 3, EX_INTERNAL = 4 };

typedef int (*dimectl_cmd_fn)(struct kv_vault *v, int argc, char **argv);

/* domain rollover-pok --pok-old FILE --pok-file NEWFILE [dns-record options]: argv[0] is
 * "domain", argv[1] "rollover-pok". The new record is printed by dns_record (dimectl's
 * dns-record command, given the new POK file). */
int dimectl_pok_rollover(struct kv_vault *v, int argc, char **argv, bool json,
                         dimectl_cmd_fn dns_record);

#endif
