/* tl_msg - the error lines of the offline tools (see tl_common.h). */
#include "tl_common.h"

#include <stdio.h>

const char *tl_prog = "dime-tool";
const char *tl_cmd = NULL;

void tl_vfail(const char *file, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", tl_prog);
    if (tl_cmd != NULL)
        fprintf(stderr, "%s: ", tl_cmd);
    if (file != NULL)
        fprintf(stderr, "%s: ", file);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void tl_fail(const char *file, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tl_vfail(file, fmt, ap);
    va_end(ap);
}

int tl_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tl_vfail(NULL, fmt, ap);
    va_end(ap);
    if (tl_cmd != NULL)
        fprintf(stderr, "Try '%s %s --help'.\n", tl_prog, tl_cmd);
    else
        fprintf(stderr, "Try '%s --help'.\n", tl_prog);
    return EX_USAGE;
}
