/*
 * dl_log - see dl_log.h.
 */
#include "dl_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *log_ident = "dime";
static unsigned log_where = DL_LOG_STDERR;

/* "ident[pid]: " of the stderr lines, made once per process: getpid() per line was one of
 * the keyvault's system calls per request (BENCHMARKS.md). A forked child (daemonizing) makes
 * its own on its first line. */
static char log_prefix[128];
static size_t log_prefix_len;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t prefix_mu = PTHREAD_MUTEX_INITIALIZER;

static void forget_prefix(void)
{
    __atomic_store_n(&log_prefix_len, 0, __ATOMIC_RELEASE);
    pthread_mutex_init(&prefix_mu, NULL); /* the child has one thread */
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, forget_prefix);
}

void dl_log_init(const char *ident, unsigned where)
{
    log_ident = ident;
    log_where = where;
    __atomic_store_n(&log_prefix_len, 0, __ATOMIC_RELEASE);
    pthread_once(&atfork_once, register_atfork);
    if (where & DL_LOG_SYSLOG)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

/* One write(2) per line: threads never interleave within a line. */
static void to_stderr(const char *line, size_t n)
{
    char buf[128 + 1024 + 1];
    size_t pl = __atomic_load_n(&log_prefix_len, __ATOMIC_ACQUIRE);
    if (pl == 0) {
        pthread_once(&atfork_once, register_atfork); /* also for lines before dl_log_init */
        pthread_mutex_lock(&prefix_mu);
        if ((pl = __atomic_load_n(&log_prefix_len, __ATOMIC_ACQUIRE)) == 0) {
            int k = snprintf(log_prefix, sizeof(log_prefix), "%s[%ld]: ", log_ident,
                             (long)getpid());
            pl = k <= 0 ? 0 : (size_t)k < sizeof(log_prefix) ? (size_t)k
                                                             : sizeof(log_prefix) - 1;
            __atomic_store_n(&log_prefix_len, pl, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&prefix_mu);
    }
    memcpy(buf, log_prefix, pl);
    memcpy(buf + pl, line, n);
    buf[pl + n] = '\n';
    size_t len = pl + n + 1, off = 0;
    fflush(stderr); /* whatever stdio holds goes first */
    while (off < len) {
        ssize_t w = write(STDERR_FILENO, buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

void dl_log(int prio, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    else if ((size_t)n >= sizeof(line))
        n = (int)sizeof(line) - 1;
    if (log_where & DL_LOG_SYSLOG)
        syslog(prio, "%s", line);
    if (log_where & DL_LOG_STDERR)
        to_stderr(line, (size_t)n);
}
