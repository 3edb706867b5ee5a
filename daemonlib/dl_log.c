/*
 * dl_log - see dl_log.h.
 */
#include "dl_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *log_ident = "dime";
static unsigned log_where = DL_LOG_STDERR;
static bool log_journal; /* stderr is systemd's journal: "<N>" before each line */
static int log_facility = LOG_MAIL;
static struct sockaddr_un log_addr;
static int log_fd = -1; /* the syslog socket, connected; -1 until the first line */
static pthread_mutex_t log_fd_mu = PTHREAD_MUTEX_INITIALIZER;

/* "ident[pid]: " of every line, made once per process: getpid() per line was one of the
 * keyvault's system calls per request (BENCHMARKS.md). A forked child (daemonizing) makes
 * its own on its first line. */
static char log_prefix[128];
static size_t log_prefix_len;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t prefix_mu = PTHREAD_MUTEX_INITIALIZER;

static void forget_prefix(void)
{
    __atomic_store_n(&log_prefix_len, 0, __ATOMIC_RELEASE);
    pthread_mutex_init(&prefix_mu, NULL); /* the child has one thread */
    pthread_mutex_init(&log_fd_mu, NULL);
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, forget_prefix);
}

static const struct {
    const char *name;
    int code;
} facilities[] = {
    {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},
    {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
    {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
    {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
};

/* systemd sets JOURNAL_STREAM to "device:inode" of the stream it gave the service as stdout
 * and stderr; children inherit the variable with another stderr, so it is compared
 * (systemd.exec(5)). */
static bool stderr_is_journal(void)
{
    const char *v = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    return v != NULL && sscanf(v, "%llu:%llu", &dev, &ino) == 2 &&
           fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
           (unsigned long long)st.st_ino == ino;
}

int dl_log_facility(const char *name)
{
    for (size_t i = 0; name != NULL && i < sizeof(facilities) / sizeof(facilities[0]); i++)
        if (strcmp(facilities[i].name, name) == 0)
            return facilities[i].code;
    return -1;
}

bool dl_log_open(const char *ident, unsigned where, const char *facility, const char *socket)
{
    int fac = facility != NULL ? dl_log_facility(facility) : LOG_MAIL;
    log_ident = ident;
    log_where = where;
    log_journal = stderr_is_journal();
    log_facility = fac >= 0 ? fac : LOG_MAIL;
    memset(&log_addr, 0, sizeof(log_addr));
    log_addr.sun_family = AF_UNIX;
    snprintf(log_addr.sun_path, sizeof(log_addr.sun_path), "%s",
             socket != NULL && socket[0] != '\0' ? socket : DL_LOG_SOCKET_DEFAULT);
    pthread_mutex_lock(&log_fd_mu);
    if (log_fd >= 0)
        close(log_fd);
    __atomic_store_n(&log_fd, -1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&log_fd_mu);
    __atomic_store_n(&log_prefix_len, 0, __ATOMIC_RELEASE);
    pthread_once(&atfork_once, register_atfork);
    if (fac < 0)
        dl_log(LOG_ERR, "unknown syslog facility '%.32s', using mail", facility);
    return fac >= 0;
}

void dl_log_init(const char *ident, unsigned where)
{
    dl_log_open(ident, where, NULL, NULL);
}

unsigned dl_log_where(bool foreground)
{
    return foreground || stderr_is_journal() ? DL_LOG_STDERR : DL_LOG_SYSLOG;
}

/* The length of "ident[pid]: " in log_prefix, made on first use in this process. */
static size_t prefix(void)
{
    size_t pl = __atomic_load_n(&log_prefix_len, __ATOMIC_ACQUIRE);
    if (pl != 0)
        return pl;
    pthread_once(&atfork_once, register_atfork); /* also for lines before dl_log_open */
    pthread_mutex_lock(&prefix_mu);
    if ((pl = __atomic_load_n(&log_prefix_len, __ATOMIC_ACQUIRE)) == 0) {
        int k = snprintf(log_prefix, sizeof(log_prefix), "%s[%ld]: ", log_ident,
                         (long)getpid());
        pl = k <= 0 ? 0 : (size_t)k < sizeof(log_prefix) ? (size_t)k : sizeof(log_prefix) - 1;
        __atomic_store_n(&log_prefix_len, pl, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&prefix_mu);
    return pl;
}

/* One write(2) per line: threads never interleave within a line. */
static void to_stderr(int prio, const char *line, size_t n)
{
    char buf[8 + 128 + 1024 + 1];
    size_t pl = prefix(), len = 0, off = 0;
    if (log_journal)
        len = (size_t)snprintf(buf, 8, "<%d>", prio & LOG_PRIMASK);
    memcpy(buf + len, log_prefix, pl);
    memcpy(buf + len + pl, line, n);
    len += pl + n;
    buf[len++] = '\n';
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

/* One datagram per line; the socket is (re)connected under the lock, sent on without it. */
static void to_syslog(int prio, const char *line, size_t n)
{
    char buf[64 + 128 + 1024];
    char ts[32];
    struct tm tm;
    time_t now = time(NULL);
    localtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%h %e %T", &tm);
    int k = snprintf(buf, 64, "<%d>%s ", (prio & LOG_PRIMASK) | log_facility, ts);
    size_t pl = prefix(), len = (size_t)(k > 0 && k < 64 ? k : 0);
    memcpy(buf + len, log_prefix, pl);
    memcpy(buf + len + pl, line, n);
    len += pl + n;
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = __atomic_load_n(&log_fd, __ATOMIC_ACQUIRE);
        if (fd < 0) {
            pthread_mutex_lock(&log_fd_mu);
            if ((fd = log_fd) < 0) {
                fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                if (fd >= 0 &&
                    connect(fd, (struct sockaddr *)&log_addr, sizeof(log_addr)) != 0) {
                    close(fd);
                    fd = -1;
                }
                __atomic_store_n(&log_fd, fd, __ATOMIC_RELEASE);
            }
            pthread_mutex_unlock(&log_fd_mu);
            if (fd < 0)
                return; /* no syslog daemon: the line is lost, as with syslog(3) */
        }
        ssize_t w;
        do
            w = send(fd, buf, len, MSG_NOSIGNAL);
        while (w < 0 && errno == EINTR);
        if (w >= 0 || (errno != ECONNREFUSED && errno != ENOTCONN && errno != EBADF))
            return;
        /* the syslog daemon went away (restarted): connect again, once */
        pthread_mutex_lock(&log_fd_mu);
        if (log_fd == fd) {
            close(fd);
            __atomic_store_n(&log_fd, -1, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&log_fd_mu);
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
        to_syslog(prio, line, (size_t)n);
    if (log_where & DL_LOG_STDERR)
        to_stderr(prio, line, (size_t)n);
}

void dl_log_change(void *ctx, const char *section, const char *title, const char *opt,
                   bool applied)
{
    (void)ctx;
    char where[128] = "";
    if (title != NULL)
        snprintf(where, sizeof(where), "domain=%.64s ", title);
    else if (section[0] != '\0')
        snprintf(where, sizeof(where), "section=%s ", section);
    dl_log(applied ? LOG_INFO : LOG_WARNING, "reload %s%s%s result=%s", where,
           opt != NULL ? "option=" : "", opt != NULL ? opt : "section=added-or-removed",
           applied ? "applied" : "ignored reason=\"needs a restart\"");
}
