#include "vectors.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc_util.h"

const char *vec_path(const char *name)
{
    static char path[4096];
    const char *dir = getenv("DC_VECTORS");
    if (dir == NULL)
        dir = "tests/vectors/libdime";
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return path;
}

uint8_t *vec_read(const char *name, size_t *len)
{
    uint8_t *buf = NULL;
    struct dc_err err;
    if (dc_read_file(vec_path(name), 64u << 20, &buf, len, &err) != DC_OK)
        cr_assert_fail("cannot read vector %s: %s", name, err.msg);
    return buf;
}

uint8_t *vec_hex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    uint8_t *out = dc_xmalloc(n + 1);
    if (dc_hex_decode(hex, strlen(hex), out, n) != DC_OK)
        cr_assert_fail("bad hex in test data: %.40s", hex);
    *len = n;
    return out;
}
