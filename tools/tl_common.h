/*
 * tl_common - what the offline tools dime-signet and dime-message share: their exit
 * statuses, the version string, and their one-line error messages
 * ("<program>: <command>: [<file>: ]<reason>") with the "Try ... --help" hint after a
 * usage error. Each program sets tl_prog once and tl_cmd when it knows its command.
 */
#ifndef TL_COMMON_H
#define TL_COMMON_H

#include <stdarg.h>

#ifndef DIME_VERSION
#define DIME_VERSION "unknown"
#endif

enum {
    EX_OK = 0,
    EX_VERIFY = 1,
    EX_USAGE = 2,
    EX_INPUT = 3,
    EX_INTERNAL = 4,
};

extern const char *tl_prog; /* "dime-signet", "dime-message" */
extern const char *tl_cmd;  /* the command, once known; NULL before */

/* One error line on stderr; file (may be NULL) names what the error is about. */
void tl_vfail(const char *file, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void tl_fail(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A usage error: the error line, then where to find help. Returns EX_USAGE. */
int tl_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
