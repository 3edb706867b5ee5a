/*
 * dc_util - allocation, secure memory, errors, buffers, files. See dc_util.h.
 */
#include "dc_util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum dc_status dc_vfail(struct dc_err *err, enum dc_status code, const char *fmt, va_list ap)
{
    if (err != NULL) {
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    }
    return code;
}

enum dc_status dc_fail(struct dc_err *err, enum dc_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dc_vfail(err, code, fmt, ap);
    va_end(ap);
    return code;
}

const char *dc_status_name(enum dc_status code)
{
    switch (code) {
    case DC_OK: return "ok";
    case DC_ERR_ARG: return "invalid argument";
    case DC_ERR_NOMEM: return "out of memory";
    case DC_ERR_IO: return "i/o error";
    case DC_ERR_FORMAT: return "malformed input";
    case DC_ERR_TRUNCATED: return "truncated input";
    case DC_ERR_LIMIT: return "size limit exceeded";
    case DC_ERR_CRC: return "checksum mismatch";
    case DC_ERR_BASE64: return "bad base64";
    case DC_ERR_MAGIC: return "wrong object type";
    case DC_ERR_ORDER: return "fields out of order or repeated";
    case DC_ERR_FIELD: return "bad field";
    case DC_ERR_KEY: return "invalid key";
    case DC_ERR_SIGNATURE: return "bad signature";
    case DC_ERR_CUSTODY: return "broken chain of custody";
    case DC_ERR_CRYPTO: return "crypto library failure";
    case DC_ERR_NOTFOUND: return "not found";
    }
    return "unknown error";
}

static void oom(size_t n)
{
    fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *dc_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *dc_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom(n * size);
    return p;
}

void *dc_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *dc_xstrdup(const char *s)
{
    return dc_xstrndup(s, strlen(s));
}

char *dc_xstrndup(const char *s, size_t n)
{
    char *p = dc_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *dc_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p = NULL;
    va_start(ap, fmt);
    int r = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (r < 0)
        oom(0);
    return p;
}

void dc_memzero(void *p, size_t n)
{
    if (p != NULL && n > 0)
        explicit_bzero(p, n);
}

/* ---- secure memory ----
 *
 * Small secrets (keys, KEKs, keyvault responses: up to SECURE_SLOT_MAX bytes) come from a
 * pool of 64 KiB chunks, each mmap'd, locked and marked MADV_DONTDUMP once, and cut into
 * slots of one size class (64 to 4096 bytes). A freed slot is zeroized whole and goes back to
 * its class's free list (its first bytes then hold the list link, no secret). Before, every
 * allocation locked and every free unlocked its heap pages: two system calls that split and
 * merged the heap mapping each time (the milter made about 25 of each per relayed message,
 * the keyvault about 32), and a free unlocked a page that another secret on it still
 * needed. Larger allocations keep that old way. Chunks are never returned (the pool grows to
 * the peak of live secrets, which is small). Under AddressSanitizer a slot's bytes past the
 * requested size and free slots are poisoned, so overflows are still caught. */
/* gcc defines __SANITIZE_ADDRESS__; clang (14, the fuzz build) only has the feature test */
#if defined(__SANITIZE_ADDRESS__)
#define DC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DC_ASAN 1
#endif
#endif
#if defined(DC_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
/* LeakSanitizer scans the heap, globals and stacks for pointers, not memory mapped by the
 * program: without this, an object reachable only through a secret in the pool (the
 * EVP_PKEY of a key kept for the life of the process) was reported as leaked */
#define LSAN_ROOT(p, n) __lsan_register_root_region(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#define LSAN_ROOT(p, n) ((void)(p), (void)(n))
#endif

#define SECURE_CHUNK ((size_t)65536)
#define SECURE_CLASSES 7 /* 64 << 0 .. 64 << 6 */
#define SECURE_SLOT_MIN ((size_t)64)
#define SECURE_SLOT_MAX (SECURE_SLOT_MIN << (SECURE_CLASSES - 1))
#define SECURE_CHUNKS_MAX 256 /* 16 MiB of pool; beyond, allocations take the old way */

static struct {
    pthread_mutex_t mu;
    void *free_list[SECURE_CLASSES];
    struct { uint8_t *base; unsigned cls; } chunk[SECURE_CHUNKS_MAX];
    unsigned nchunks;
} secure = {.mu = PTHREAD_MUTEX_INITIALIZER};

static unsigned secure_class(size_t n)
{
    unsigned c = 0;
    while ((SECURE_SLOT_MIN << c) < n)
        c++;
    return c;
}

/* A new chunk cut into slots of class cls, on its free list; false when none can be had. */
static bool secure_grow(unsigned cls)
{
    if (secure.nchunks == SECURE_CHUNKS_MAX)
        return false;
    uint8_t *base = mmap(NULL, SECURE_CHUNK, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return false;
    (void)mlock(base, SECURE_CHUNK); /* best effort, as below */
#ifdef MADV_DONTDUMP
    (void)madvise(base, SECURE_CHUNK, MADV_DONTDUMP);
#endif
    LSAN_ROOT(base, SECURE_CHUNK);
    size_t slot = SECURE_SLOT_MIN << cls;
    for (size_t off = SECURE_CHUNK; off >= slot; off -= slot) {
        void *p = base + off - slot;
        memcpy(p, &secure.free_list[cls], sizeof(void *));
        secure.free_list[cls] = p;
        POISON(p, slot);
    }
    secure.chunk[secure.nchunks].base = base;
    secure.chunk[secure.nchunks].cls = cls;
    secure.nchunks++;
    return true;
}

static void *secure_pool_alloc(size_t n)
{
    unsigned cls = secure_class(n);
    size_t slot = SECURE_SLOT_MIN << cls;
    void *p = NULL;
    pthread_mutex_lock(&secure.mu);
    if (secure.free_list[cls] != NULL || secure_grow(cls)) {
        p = secure.free_list[cls];
        UNPOISON(p, slot);
        memcpy(&secure.free_list[cls], p, sizeof(void *));
        memset(p, 0, sizeof(void *)); /* the rest is zero: fresh, or zeroized when freed */
        POISON((uint8_t *)p + n, slot - n);
    }
    pthread_mutex_unlock(&secure.mu);
    return p;
}

/* Gives p back when it is a pool slot; false when it is not one. */
static bool secure_pool_free(void *p)
{
    bool mine = false;
    pthread_mutex_lock(&secure.mu);
    for (unsigned i = 0; i < secure.nchunks && !mine; i++) {
        uint8_t *b = secure.chunk[i].base;
        if ((uint8_t *)p < b || (uint8_t *)p >= b + SECURE_CHUNK)
            continue;
        unsigned cls = secure.chunk[i].cls;
        size_t slot = SECURE_SLOT_MIN << cls;
        UNPOISON(p, slot);
        explicit_bzero(p, slot);
        memcpy(p, &secure.free_list[cls], sizeof(void *));
        secure.free_list[cls] = p;
        POISON(p, slot);
        mine = true;
    }
    pthread_mutex_unlock(&secure.mu);
    return mine;
}

void *dc_secure_alloc(size_t n)
{
    if (n == 0)
        n = 1;
    if (n <= SECURE_SLOT_MAX) {
        void *p = secure_pool_alloc(n);
        if (p != NULL)
            return p;
    }
    void *p = dc_xcalloc(1, n);
    /* Best effort: locking fails without CAP_IPC_LOCK beyond RLIMIT_MEMLOCK; the memory is
     * still zeroized on free. */
    (void)mlock(p, n);
#ifdef MADV_DONTDUMP
    /* madvise works on whole pages; small allocations share pages with other heap data,
     * so only large ones are marked here. The daemons also set RLIMIT_CORE to 0. */
    if (n >= (size_t)sysconf(_SC_PAGESIZE) * 2) {
        uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t start = ((uintptr_t)p + pg - 1) & ~(pg - 1);
        uintptr_t end = ((uintptr_t)p + n) & ~(pg - 1);
        if (end > start)
            (void)madvise((void *)start, end - start, MADV_DONTDUMP);
    }
#endif
    return p;
}

void dc_secure_free(void *p, size_t n)
{
    if (p == NULL || secure_pool_free(p))
        return;
    explicit_bzero(p, n);
    (void)munlock(p, n);
    free(p);
}

int dc_memeq_ct(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d != 0;
}

void dc_buf_init(struct dc_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void dc_buf_free(struct dc_buf *b)
{
    free(b->data);
    dc_buf_init(b);
}

void dc_buf_reserve(struct dc_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        oom(SIZE_MAX);
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->data = dc_xrealloc(b->data, cap);
    b->cap = cap;
}

void dc_buf_append(struct dc_buf *b, const void *p, size_t n)
{
    dc_buf_reserve(b, n);
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void dc_buf_putc(struct dc_buf *b, uint8_t c)
{
    dc_buf_append(b, &c, 1);
}

void dc_buf_printf(struct dc_buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    dc_buf_reserve(b, (size_t)n);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}

void dc_buf_put_be(struct dc_buf *b, uint64_t v, unsigned width)
{
    uint8_t tmp[8];
    for (unsigned i = 0; i < width; i++)
        tmp[i] = (uint8_t)(v >> (8 * (width - 1 - i)));
    dc_buf_append(b, tmp, width);
}

uint8_t *dc_buf_steal(struct dc_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (p == NULL)
        p = dc_xcalloc(1, 1);
    if (len != NULL)
        *len = b->len;
    dc_buf_init(b);
    return p;
}

void dc_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

enum dc_status dc_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t n)
{
    if (inlen != 2 * n)
        return DC_ERR_FORMAT;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval((unsigned char)in[2 * i]), lo = hexval((unsigned char)in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return DC_ERR_FORMAT;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return DC_OK;
}

enum dc_status dc_read_file(const char *path, size_t max, uint8_t **out, size_t *outlen,
                            struct dc_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dc_fail(err, DC_ERR_IO, "%s: %s", path, strerror(errno));
    struct dc_buf b;
    dc_buf_init(&b);
    for (;;) {
        dc_buf_reserve(&b, 4096);
        ssize_t r = read(fd, b.data + b.len, b.cap - b.len - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            dc_buf_free(&b);
            return dc_fail(err, DC_ERR_IO, "%s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        b.len += (size_t)r;
        if (b.len > max) {
            close(fd);
            dc_buf_free(&b);
            return dc_fail(err, DC_ERR_LIMIT, "%s: larger than %zu bytes", path, max);
        }
    }
    close(fd);
    dc_buf_reserve(&b, 0);
    b.data[b.len] = 0;
    *out = dc_buf_steal(&b, outlen);
    return DC_OK;
}

/* The temporary file is renamed over path, or (excl) linked to it, which fails when path
 * exists, and removed. */
static enum dc_status write_file(const char *path, const void *data, size_t len, unsigned mode,
                                 bool excl, struct dc_err *err)
{
    char *tmp = dc_xasprintf("%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        enum dc_status s = dc_fail(err, DC_ERR_IO, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return s;
    }
    const uint8_t *p = data;
    size_t left = len;
    int e = 0;
    if (fchmod(fd, (mode_t)mode) != 0)
        e = errno;
    while (e == 0 && left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            e = errno;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (e == 0 && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && e == 0)
        e = errno;
    if (e == 0 && (excl ? link(tmp, path) : rename(tmp, path)) != 0)
        e = errno;
    if (e != 0 || excl)
        unlink(tmp);
    free(tmp);
    if (e == EEXIST)
        return dc_fail(err, DC_ERR_ARG, "%s exists: not overwritten", path);
    if (e != 0)
        return dc_fail(err, DC_ERR_IO, "%s: %s", path, strerror(e));
    return DC_OK;
}

enum dc_status dc_write_file(const char *path, const void *data, size_t len, unsigned mode,
                             struct dc_err *err)
{
    return write_file(path, data, len, mode, false, err);
}

enum dc_status dc_write_file_new(const char *path, const void *data, size_t len, unsigned mode,
                                 struct dc_err *err)
{
    return write_file(path, data, len, mode, true, err);
}

const char *dc_safe_str(const void *s, size_t len, char *out, size_t max)
{
    const uint8_t *p = s;
    size_t n = len < max ? len : max;
    size_t i;
    for (i = 0; i < n; i++)
        out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    if (len > max) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}
