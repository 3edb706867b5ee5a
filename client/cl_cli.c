/*
 * cl_cli - the one error line of dime-client's commands (see cl_cli.h).
 */
#include "cl_cli.h"

#include <stdio.h>

int cl_vsay(const char *cmd, int code, const char *fmt, va_list ap)
{
    fprintf(stderr, "dime-client: %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    return code;
}
