/* dc_fmap - mapped files with explicit release of finished ranges (see dc_fmap.h). */
#include "dc_fmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum dc_status dc_fmap_read(int fd, size_t max, struct dc_fmap **out, struct dc_err *err)
{
    struct stat st;
    *out = NULL;
    if (fstat(fd, &st) != 0)
        return dc_fail(err, DC_ERR_IO, "fstat: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return dc_fail(err, DC_ERR_ARG, "not a regular file (cannot map it)");
    if ((uint64_t)st.st_size > (uint64_t)max)
        return dc_fail(err, DC_ERR_LIMIT, "file of %lld bytes exceeds the %zu-byte limit",
                       (long long)st.st_size, max);
    struct dc_fmap *m = dc_xcalloc(1, sizeof(*m));
    m->len = m->cap = (size_t)st.st_size;
    if (m->len > 0) {
        void *p = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            free(m);
            return dc_fail(err, DC_ERR_IO, "mmap: %s", strerror(errno));
        }
        m->p = p;
    }
    *out = m;
    return DC_OK;
}

enum dc_status dc_fmap_create(int fd, size_t cap, struct dc_fmap **out, struct dc_err *err)
{
    *out = NULL;
    if (cap == 0)
        return dc_fail(err, DC_ERR_ARG, "dc_fmap_create: empty mapping");
    if (ftruncate(fd, (off_t)cap) != 0)
        return dc_fail(err, DC_ERR_IO, "ftruncate: %s", strerror(errno));
    void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return dc_fail(err, DC_ERR_IO, "mmap: %s", strerror(errno));
    struct dc_fmap *m = dc_xcalloc(1, sizeof(*m));
    m->p = p;
    m->cap = cap;
    m->writable = 1;
    *out = m;
    return DC_OK;
}

enum dc_status dc_fmap_finish(struct dc_fmap *m, int fd, size_t len, struct dc_err *err)
{
    if (!m->writable || len > m->cap)
        return dc_fail(err, DC_ERR_ARG, "dc_fmap_finish: %zu bytes do not fit", len);
    if (ftruncate(fd, (off_t)len) != 0)
        return dc_fail(err, DC_ERR_IO, "ftruncate: %s", strerror(errno));
    m->len = len;
    return DC_OK;
}

void dc_fmap_release(const struct dc_fmap *m, const void *p, size_t n)
{
    if (!m || !m->p || n == 0)
        return;
    const uint8_t *b = p, *base = m->p;
    if (b < base || b >= base + m->cap)
        return;
    size_t off = (size_t)(b - base);
    if (n > m->cap - off)
        n = m->cap - off;
    /* The page cache may hold the file in large folios (2 MiB on this kernel when the file
     * was written in large blocks), and dropping only part of such a folio's mapping does not
     * lower the resident set (measured). So the range is widened to whole DC_FMAP_RELEASE
     * blocks of the file: the bytes around it that are still in use just fault in again
     * from the page cache, which costs a little time and never changes what they read. */
    size_t s0 = off & ~(size_t)(DC_FMAP_RELEASE - 1);
    size_t e0 = off + n; /* <= cap */
    size_t room = m->cap - e0, up = (DC_FMAP_RELEASE - e0 % DC_FMAP_RELEASE) % DC_FMAP_RELEASE;
    e0 += up < room ? up : room; /* never past the mapping */
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    e0 = (e0 + pg - 1) & ~(pg - 1); /* the mapping itself is whole pages */
    madvise(m->p + s0, e0 - s0, MADV_DONTNEED); /* advice only: a failure changes nothing */
}

void dc_fmap_close(struct dc_fmap *m)
{
    if (!m)
        return;
    if (m->p)
        munmap(m->p, m->cap);
    free(m);
}

static void release_cb(void *ctx, const void *p, size_t n)
{
    dc_fmap_release(ctx, p, n);
}

struct dc_release dc_fmap_releaser(const struct dc_fmap *m)
{
    struct dc_release r = {m ? release_cb : NULL, (void *)(uintptr_t)m};
    return r;
}
