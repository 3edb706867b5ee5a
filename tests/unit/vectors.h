/* Test helpers: the libdime conformance vectors (tests/vectors/libdime) and hex. */
#ifndef TEST_VECTORS_H
#define TEST_VECTORS_H

#include <stddef.h>
#include <stdint.h>

/* Reads tests/vectors/libdime/<name> (directory from $DC_VECTORS); aborts the test on error.
 * The buffer is malloc'd and NUL-terminated. */
uint8_t *vec_read(const char *name, size_t *len);
/* Decodes a hex string into a malloc'd buffer; aborts the test on bad hex. */
uint8_t *vec_hex(const char *hex, size_t *len);
/* Path of a vector file (static buffer). */
const char *vec_path(const char *name);

#endif
