/*
 * dc_util - small shared helpers of the DIME core library.
 *
 * Error reporting: every fallible function returns an enum dc_status (DC_OK is 0) and, when
 * given a struct dc_err, fills it with a precise, human-readable reason. The reason never
 * contains key material; untrusted strings are cut to a short length before they go in.
 *
 * Memory: dc_xmalloc() and friends never return NULL (they abort on exhaustion, as Postfix's
 * mymalloc does). Key bytes live in dc_secure_alloc() memory: locked (mlock), excluded from
 * core dumps (MADV_DONTDUMP) where possible, and zeroized by dc_secure_free().
 */
#ifndef DC_UTIL_H
#define DC_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

enum dc_status {
    DC_OK = 0,
    DC_ERR_ARG,       /* caller passed an invalid argument */
    DC_ERR_NOMEM,     /* allocation failed */
    DC_ERR_IO,        /* file or system call failed */
    DC_ERR_FORMAT,    /* input bytes are malformed */
    DC_ERR_TRUNCATED, /* input ended early */
    DC_ERR_LIMIT,     /* input exceeds a size limit */
    DC_ERR_CRC,       /* armor checksum mismatch */
    DC_ERR_BASE64,    /* bad base64 */
    DC_ERR_MAGIC,     /* unknown or unexpected object type */
    DC_ERR_ORDER,     /* fields out of order or a unique field repeated */
    DC_ERR_FIELD,     /* unknown, missing or malformed field */
    DC_ERR_KEY,       /* invalid key (e.g. point not on curve) */
    DC_ERR_SIGNATURE, /* a signature does not verify */
    DC_ERR_CUSTODY,   /* chain of custody broken */
    DC_ERR_CRYPTO,    /* the crypto library failed */
    DC_ERR_NOTFOUND,  /* requested item is absent */
};

#define DC_ERR_MSG_MAX 256

struct dc_err {
    enum dc_status code;
    char msg[DC_ERR_MSG_MAX];
};

/* Records an error (if err is not NULL) and returns code, for `return dc_fail(...)`. */
enum dc_status dc_fail(struct dc_err *err, enum dc_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same with a va_list, for functions that report through their own wrappers. */
enum dc_status dc_vfail(struct dc_err *err, enum dc_status code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

const char *dc_status_name(enum dc_status code);

/* Allocation that never fails (aborts with a message on exhaustion). */
void *dc_xmalloc(size_t n);
void *dc_xcalloc(size_t n, size_t size);
void *dc_xrealloc(void *p, size_t n);
char *dc_xstrdup(const char *s);
char *dc_xstrndup(const char *s, size_t n);
char *dc_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Memory for secrets: locked, not dumped, zeroized when freed. Never returns NULL. */
void *dc_secure_alloc(size_t n);
void dc_secure_free(void *p, size_t n);
void dc_memzero(void *p, size_t n);

/* Constant-time comparison; returns 0 when equal. */
int dc_memeq_ct(const void *a, const void *b, size_t n);

/* A growable byte buffer with explicit length. Always NUL-terminated for convenience. */
struct dc_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

void dc_buf_init(struct dc_buf *b);
void dc_buf_free(struct dc_buf *b);
void dc_buf_reserve(struct dc_buf *b, size_t extra);
void dc_buf_append(struct dc_buf *b, const void *p, size_t n);
void dc_buf_putc(struct dc_buf *b, uint8_t c);
void dc_buf_printf(struct dc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dc_buf_put_be(struct dc_buf *b, uint64_t v, unsigned width);
/* Hands the storage to the caller (who frees it with free()); the buffer becomes empty. */
uint8_t *dc_buf_steal(struct dc_buf *b, size_t *len);

/* Big-endian helpers. */
static inline uint32_t dc_get_be(const uint8_t *p, unsigned width)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < width; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Hex encode (lower case) into out (2*n+1 bytes). */
void dc_hex_encode(const uint8_t *in, size_t n, char *out);
/* Strict hex decode of exactly 2*n characters; returns DC_OK or DC_ERR_FORMAT. */
enum dc_status dc_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t n);

/* Reads a whole file (up to max bytes) into a malloc'd buffer (NUL-terminated). */
enum dc_status dc_read_file(const char *path, size_t max, uint8_t **out, size_t *outlen,
                            struct dc_err *err);
/* Writes a file atomically (temp file + fsync + rename) with the given mode. */
enum dc_status dc_write_file(const char *path, const void *data, size_t len, unsigned mode,
                             struct dc_err *err);
/* The same for a file that must not exist yet: DC_ERR_ARG when path exists (never replaced). */
enum dc_status dc_write_file_new(const char *path, const void *data, size_t len, unsigned mode,
                                 struct dc_err *err);

/* Copies at most max printable characters of untrusted s into out (size max+4), replacing
 * non-printable bytes with '?', appending "..." when cut. For error messages and logs. */
const char *dc_safe_str(const void *s, size_t len, char *out, size_t max);

#endif
