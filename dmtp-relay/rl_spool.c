/*
 * rl_spool - spool files of large inbound messages. See rl_spool.h.
 */
#include "rl_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LEFTOVER_PREFIX "in." /* names of the mkstemp fallback, unlinked at once */

bool rl_spool_wanted(size_t total, unsigned long threshold)
{
    return threshold > 0 && total > threshold;
}

size_t rl_spool_charge(size_t total, unsigned long threshold)
{
    size_t whole = total + 2;
    if (!rl_spool_wanted(total, threshold))
        return whole;
    return whole < RL_SPOOL_CHUNK ? whole : RL_SPOOL_CHUNK;
}

bool rl_spool_dir(const char *dir, const char *queue_database, char *out, size_t n)
{
    int w;
    if (dir != NULL && dir[0] != '\0') {
        w = snprintf(out, n, "%s", dir);
    } else {
        const char *slash = queue_database ? strrchr(queue_database, '/') : NULL;
        if (slash == NULL)
            return false;
        w = snprintf(out, n, "%.*s/spool", (int)(slash - queue_database), queue_database);
    }
    return w > 0 && (size_t)w < n;
}

enum dc_status rl_spool_prepare(const char *dir, struct dc_err *err)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return dc_fail(err, DC_ERR_IO, "spool directory %.200s: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (d == NULL)
        return dc_fail(err, DC_ERR_IO, "spool directory %.200s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, LEFTOVER_PREFIX, strlen(LEFTOVER_PREFIX)) == 0)
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    return DC_OK;
}

int rl_spool_open(const char *dir, struct dc_err *err)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
        dc_fail(err, DC_ERR_IO, "spool file in %.200s: %s", dir, strerror(errno));
        return -1;
    }
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/" LEFTOVER_PREFIX "XXXXXX", dir) >= (int)sizeof(path)) {
        dc_fail(err, DC_ERR_ARG, "spool directory name too long");
        return -1;
    }
    fd = mkostemp(path, O_CLOEXEC); /* 0600 */
    if (fd < 0) {
        dc_fail(err, DC_ERR_IO, "spool file in %.200s: %s", dir, strerror(errno));
        return -1;
    }
    unlink(path);
    return fd;
}

enum dc_status rl_spool_write(int fd, const void *p, size_t n, struct dc_err *err)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return dc_fail(err, DC_ERR_IO, "spool write: %s", w < 0 ? strerror(errno) : "no room");
        b += w;
        n -= (size_t)w;
    }
    return DC_OK;
}
