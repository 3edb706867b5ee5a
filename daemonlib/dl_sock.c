/*
 * dl_sock - see dl_sock.h.
 */
#include "dl_sock.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* sockaddr_un for path, or false when the path does not fit. */
static bool fill_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(sa->sun_path))
        return false;
    memcpy(sa->sun_path, path, n + 1);
    return true;
}

int dl_sock_listen(const char *path, mode_t mode, uid_t owner, gid_t group, int backlog,
                   struct dc_err *err)
{
    struct sockaddr_un sa;
    char tmp[sizeof(sa.sun_path) + 32];
    snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid());
    if (!fill_addr(&sa, tmp)) {
        dc_fail(err, DC_ERR_ARG, "socket path %s is empty or too long", path);
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
        dc_fail(err, DC_ERR_IO, "%s exists and is not a socket", path);
        return -1;
    }
    unlink(tmp); /* left by an earlier process that had our pid */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        dc_fail(err, DC_ERR_IO, "socket: %s", strerror(errno));
        return -1;
    }
    /* created with no access for group and others; opened up below to exactly mode, after
     * the owner and group are right */
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc != 0) {
        dc_fail(err, DC_ERR_IO, "bind %s: %s", tmp, strerror(errno));
        close(fd);
        return -1;
    }
    const char *step = "chown";
    if (dl_sock_chown(tmp, owner, group) != 0)
        goto fail;
    step = "chmod";
    if (chmod(tmp, mode) != 0)
        goto fail;
    step = "listen";
    if (listen(fd, backlog) != 0)
        goto fail;
    step = "rename";
    if (rename(tmp, path) != 0)
        goto fail;
    return fd;
fail:
    dc_fail(err, DC_ERR_IO, "%s %s: %s", step, step[0] == 'r' ? path : tmp, strerror(errno));
    close(fd);
    unlink(tmp);
    return -1;
}

int dl_sock_chown(const char *path, uid_t owner, gid_t group)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    if (owner == st.st_uid)
        owner = DL_SOCK_KEEP_UID;
    if (group == st.st_gid)
        group = DL_SOCK_KEEP_GID;
    if (owner == DL_SOCK_KEEP_UID && group == DL_SOCK_KEEP_GID)
        return 0;
    return chown(path, owner, group);
}

static void set_timeout(int fd, int opt, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

int dl_sock_connect(const char *what, const char *path, int connect_ms, int io_ms,
                    struct dc_err *err)
{
    const char *w = what ? what : "", *sep = what ? " " : "";
    struct sockaddr_un sa;
    if (!fill_addr(&sa, path)) {
        dc_fail(err, DC_ERR_ARG, "%s%ssocket path %s is empty or too long", w, sep, path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        dc_fail(err, DC_ERR_IO, "%s%ssocket: %s", w, sep, strerror(errno));
        return -1;
    }
    /* A Unix connect() waits only when the listener's queue is full, and that wait is
     * bounded by the send timeout: set it to the connect bound first, to the I/O bound
     * after. */
    if (connect_ms > 0)
        set_timeout(fd, SO_SNDTIMEO, connect_ms);
    int rc;
    while ((rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa))) != 0 && errno == EINTR)
        ;
    if (rc != 0) {
        int e = errno;
        close(fd);
        if (e == EAGAIN)
            dc_fail(err, DC_ERR_IO, "%s%s%s: connect: no room in the listen queue within %d ms "
                    "(the daemon is overloaded or stuck)", w, sep, path, connect_ms);
        else
            dc_fail(err, DC_ERR_IO, "%s%s%s: connect: %s%s", w, sep, path, strerror(e),
                    e == ENOENT || e == ECONNREFUSED ? " (is the daemon running?)" : "");
        return -1;
    }
    set_timeout(fd, SO_SNDTIMEO, io_ms > 0 ? io_ms : 0);
    if (io_ms > 0)
        set_timeout(fd, SO_RCVTIMEO, io_ms);
    return fd;
}

enum dc_status dl_sock_io_error(struct dc_err *err, const char *what, const char *op,
                                int io_ms)
{
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK)
        return dc_fail(err, DC_ERR_IO, "%s %s: no progress within %d ms", what, op, io_ms);
    return dc_fail(err, DC_ERR_IO, "%s %s: %s", what, op, strerror(e));
}

int dl_sock_listen_tcp(const char *address, unsigned port, struct dc_err *err)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, address, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, address, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof(*s6);
    } else {
        dc_fail(err, DC_ERR_FIELD, "listen-address %.64s is not an IP address", address);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 128) != 0) {
        dc_fail(err, DC_ERR_IO, "listen on %.64s port %u: %s", address, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}
