/*
 * dl_pidfile - see dl_pidfile.h.
 */
#include "dl_pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum dc_status dl_pidfile_open(struct dl_pidfile *pf, const char *path, struct dc_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return dc_fail(err, DC_ERR_IO, "pid file %s: %s", path, strerror(errno));
    pf->fd = fd;
    pf->path = path;
    return DC_OK;
}

enum dc_status dl_pidfile_write(struct dl_pidfile *pf, struct dc_err *err)
{
    char line[32];
    int n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
    ssize_t w = write(pf->fd, line, (size_t)n);
    int saved = errno;
    close(pf->fd);
    pf->fd = -1;
    if (w != n)
        return dc_fail(err, DC_ERR_IO, "pid file %s: %s", pf->path,
                       w < 0 ? strerror(saved) : "short write");
    return DC_OK;
}

void dl_pidfile_remove(struct dl_pidfile *pf)
{
    if (pf->fd >= 0)
        close(pf->fd);
    pf->fd = -1;
    if (pf->path != NULL)
        unlink(pf->path);
    pf->path = NULL;
}
