/*
 * dl_log - see dl_log.h.
 */
#include "dl_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static const char *log_ident = "dime";
static unsigned log_where = DL_LOG_STDERR;

void dl_log_init(const char *ident, unsigned where)
{
    log_ident = ident;
    log_where = where;
    if (where & DL_LOG_SYSLOG)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void dl_log(int prio, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (log_where & DL_LOG_SYSLOG)
        syslog(prio, "%s", line);
    if (log_where & DL_LOG_STDERR) {
        /* one stdio call per line, under the stream's lock: threads never interleave */
        fprintf(stderr, "%s[%ld]: %s\n", log_ident, (long)getpid(), line);
        fflush(stderr);
    }
}
