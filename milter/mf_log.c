/*
 * mf_log - see mf_log.h.
 */
#include "mf_log.h"

#include <stdarg.h>
#include <stdio.h>

static bool log_stderr;

void mf_log_init(bool to_stderr)
{
    log_stderr = to_stderr;
    openlog("dime-milter", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void mf_log(int prio, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    syslog(prio, "%s", line);
    if (log_stderr) {
        /* one write per line: libmilter runs a thread per connection */
        fprintf(stderr, "dime-milter: %s\n", line);
        fflush(stderr);
    }
}
