/*
 * rl_boot - the boot id the relay last ran under (see rl_boot.h).
 */
#include "rl_boot.h"

#include "rl_seal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads up to RL_BOOT_ID_LEN characters of a boot id from path; false when there are fewer. */
static bool read_id(const char *path, char id[RL_BOOT_ID_LEN + 1])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, id, RL_BOOT_ID_LEN);
    close(fd);
    if (n != RL_BOOT_ID_LEN)
        return false;
    id[RL_BOOT_ID_LEN] = '\0';
    for (size_t i = 0; i < RL_BOOT_ID_LEN; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f') || id[i] == '-'))
            return false;
    return true;
}

bool rl_boot_id(char id[RL_BOOT_ID_LEN + 1])
{
    return read_id("/proc/sys/kernel/random/boot_id", id);
}

bool rl_boot_changed(const char *path, const char *id)
{
    char old[RL_BOOT_ID_LEN + 1];
    return !read_id(path, old) || strcmp(old, id) != 0;
}

bool rl_boot_save(const char *path, const char *id)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t n = strlen(id);
    bool ok = write(fd, id, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (ok && rename(tmp, path) != 0) {
        e = errno;
        ok = false;
    }
    if (!ok) {
        unlink(tmp);
        errno = e;
        return false;
    }
    return rl_sync_parent(path);
}
