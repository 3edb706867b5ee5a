/*
 * cl_maildir - safe delivery into a Maildir (see cl_maildir.h).
 */
#include "cl_maildir.h"

#include "dc_crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

enum dc_status cl_maildir_init(const char *dir, struct dc_err *err)
{
    static const char *const sub[] = {"", "/tmp", "/new", "/cur"};
    for (size_t i = 0; i < 4; i++) {
        char *p = dc_xasprintf("%s%s", dir, sub[i]);
        int r = mkdir(p, 0700);
        int e = errno;
        struct stat st;
        bool is_dir = r == 0 || (e == EEXIST && stat(p, &st) == 0 && S_ISDIR(st.st_mode));
        free(p);
        if (!is_dir)
            return dc_fail(err, DC_ERR_IO, "%s%s: %s", dir, sub[i],
                           r != 0 && e != EEXIST ? strerror(e) : "not a directory");
    }
    return DC_OK;
}

/* Writes all n bytes of p; 0 or an errno. */
static int put(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int e = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return e;
}

/* A name no other delivery uses: time, microseconds, pid, a per-process count and random
 * bytes; the host name with '/' and ':' (Maildir's flag separator) replaced. */
static char *unique_name(void)
{
    static unsigned count;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint8_t r[8];
    char rhex[17], host[256];
    if (dc_random(r, sizeof(r)) != DC_OK)
        memset(r, 0, sizeof(r)); /* still unique by time, pid and count */
    dc_hex_encode(r, sizeof(r), rhex);
    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
        strcpy(host, "localhost");
    host[sizeof(host) - 1] = '\0';
    for (char *c = host; *c; c++)
        if (*c == '/' || *c == ':')
            *c = '_';
    return dc_xasprintf("%lld.M%ldP%ldQ%uR%s.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
                        (long)getpid(), ++count, rhex, host);
}

enum dc_status cl_maildir_deliver(const char *dir, const void *head, size_t hlen,
                                  const void *body, size_t blen, char **name,
                                  struct dc_err *err)
{
    char *n = unique_name();
    char *tmp = dc_xasprintf("%s/tmp/%s", dir, n), *dst = dc_xasprintf("%s/new/%s", dir, n);
    char *newdir = dc_xasprintf("%s/new", dir);
    enum dc_status s = DC_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int e = fd < 0 ? errno : 0;
    if (e == 0) {
        e = put(fd, head, hlen);
        if (e == 0)
            e = put(fd, body, blen);
        if (e == 0 && fsync(fd) != 0)
            e = errno;
        if (close(fd) != 0 && e == 0)
            e = errno;
        /* new/ never holds a partial message: the rename is the delivery */
        if (e == 0 && rename(tmp, dst) != 0)
            e = errno;
        if (e != 0)
            unlink(tmp);
        else
            e = sync_dir(newdir);
    }
    if (e != 0)
        s = dc_fail(err, DC_ERR_IO, "%s: %s", fd < 0 ? tmp : dst, strerror(e));
    if (s == DC_OK && name != NULL)
        *name = n;
    else
        free(n);
    free(tmp);
    free(dst);
    free(newdir);
    return s;
}
