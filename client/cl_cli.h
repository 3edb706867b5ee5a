/*
 * cl_cli - what every dime-client command prints when it fails: one line on standard error,
 * "dime-client: COMMAND: reason".
 */
#ifndef CL_CLI_H
#define CL_CLI_H

#include <stdarg.h>

/* Prints the line; returns code (the exit status the caller gives). */
int cl_vsay(const char *cmd, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
