/*
 * dc_fmap - files mapped into memory for the streaming D/MIME paths, with bounded residency.
 *
 * A message of 100 MiB must not make the process 100 MiB large. The codec keeps working on
 * plain pointers into the mapping, and every pass over a large range gives the pages it has
 * finished with back (dc_fmap_release: madvise(MADV_DONTNEED), widened to whole 2 MiB blocks
 * of the file). For a read-only private mapping of a file the pages are simply dropped and
 * come back from the page cache if touched again; for a shared writable mapping the written
 * data stays in the page cache (and goes to the file), only the process's mapping of it is
 * dropped. The page cache is the kernel's, not the process's resident set.
 *
 * The input file must not change while it is mapped (the milter and dime-message own theirs).
 */
#ifndef DC_FMAP_H
#define DC_FMAP_H

#include "dc_util.h"

struct dc_fmap {
    uint8_t *p;   /* the mapping (NULL for an empty file) */
    size_t len;   /* bytes of the file that are data */
    size_t cap;   /* bytes mapped (writable maps: room reserved for writing) */
    int writable;
};

/* Maps the whole of fd (a regular file) read-only and private; fails with DC_ERR_LIMIT above
 * max bytes. */
enum dc_status dc_fmap_read(int fd, size_t max, struct dc_fmap **out, struct dc_err *err);
/* Grows fd to cap bytes and maps it shared and writable (len starts at 0). */
enum dc_status dc_fmap_create(int fd, size_t cap, struct dc_fmap **out, struct dc_err *err);
/* Sets the file's final length (writable maps; len <= cap) with ftruncate. */
enum dc_status dc_fmap_finish(struct dc_fmap *m, int fd, size_t len, struct dc_err *err);
/* Drops the process's pages of [p, p + n) when they belong to m, widened to whole
 * DC_FMAP_RELEASE blocks of the file (see dc_fmap.c): the caller must not rely on anything but
 * the data staying the same (it always does: pages come back from the file). */
#define DC_FMAP_RELEASE (2u << 20)
void dc_fmap_release(const struct dc_fmap *m, const void *p, size_t n);
void dc_fmap_close(struct dc_fmap *m);

/* The same as a callback, for code that does not know whether its bytes are mapped. */
struct dc_release {
    void (*fn)(void *ctx, const void *p, size_t n);
    void *ctx;
};
/* A release hook over m (m may be NULL: then the hook does nothing). */
struct dc_release dc_fmap_releaser(const struct dc_fmap *m);
static inline void dc_release_call(const struct dc_release *r, const void *p, size_t n)
{
    if (r && r->fn)
        r->fn(r->ctx, p, n);
}

/* Window size of every streaming pass (bytes hashed, encrypted or copied between releases). */
#define DC_STREAM_WINDOW (1u << 20)

#endif
