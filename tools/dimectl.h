/*
 * dimectl.h - what dimectl.c shares with the files of its bigger commands (dimectl_setup.c:
 * setup, dimectl_check.c: check): exit statuses and the error line.
 */
#ifndef DIMECTL_H
#define DIMECTL_H

#include "kv_vault.h"

enum { EX_OK = 0, EX_REFUSED = 1, EX_USAGE = 2, EX_INPUT = 3, EX_INTERNAL = 4 };

/* "dimectl: " + the message on stderr; returns code. */
int say_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* dimectl setup DOMAIN ... and dimectl check DOMAIN ...: argv[0] is the command. */
int dimectl_setup(struct kv_vault *v, const char *config_path, int argc, char **argv);
int dimectl_check(struct kv_vault *v, const char *config_path, int argc, char **argv);

#endif
