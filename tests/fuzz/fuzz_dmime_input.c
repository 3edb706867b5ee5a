/*
 * Fuzz target: the keyvault's shape check of signature inputs (dc_dmime_input_*), which
 * reads bytes from the vault's clients. For every kind, the one-shot check and a streamed
 * check in pieces cut by the input's first byte must agree; an input that passes as a
 * chunk-sequence kind must also parse as a chunk run when given a message header (the
 * checker and the parser share their rules, so they must not disagree).
 */
#include <stdlib.h>
#include <string.h>

#include "dc_dmime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_kind(enum dc_dmime_input kind, const uint8_t *data, size_t size)
{
    struct dc_err e1 = {0}, e2 = {0};
    enum dc_status one = dc_dmime_input_check(kind, data, size, &e1);
    if (one != DC_OK && (e1.code != one || e1.msg[0] == '\0'))
        abort();
    size_t step = size > 0 ? (size_t)data[0] % 17 + 1 : 1;
    struct dc_dmime_input_check c;
    dc_dmime_input_init(&c, kind);
    enum dc_status st = DC_OK;
    for (size_t at = 0; at < size && st == DC_OK; at += step)
        st = dc_dmime_input_update(&c, data + at, size - at < step ? size - at : step, &e2);
    if (st == DC_OK)
        st = dc_dmime_input_final(&c, &e2);
    if (st != one || strcmp(e1.msg, e2.msg) != 0)
        abort();
    /* a refused checker stays refused */
    if (st != DC_OK && dc_dmime_input_update(&c, data, size, &e2) == DC_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int k = DC_DMIME_IN_CHUNK; k <= DC_DMIME_IN_ORIGIN; k++)
        check_kind((enum dc_dmime_input)k, data, size);
    /* an author full input is a whole message minus 226..255, which the parser requires: it
     * must at least get past every chunk header (its error is a missing chunk) */
    if (dc_dmime_input_check(DC_DMIME_IN_AUTHOR_FULL, data, size, NULL) == DC_OK &&
        size < 0xffffffffu) {
        uint8_t *m = malloc(size + 6);
        struct dc_dmime *dm = NULL;
        struct dc_err err = {0};
        m[0] = DC_DMIME_MAGIC >> 8;
        m[1] = DC_DMIME_MAGIC & 0xff;
        m[2] = (uint8_t)(size >> 24);
        m[3] = (uint8_t)(size >> 16);
        m[4] = (uint8_t)(size >> 8);
        m[5] = (uint8_t)size;
        memcpy(m + 6, data, size);
        if (dc_dmime_parse(m, size + 6, &dm, &err) != DC_ERR_FIELD)
            abort();
        free(m);
    }
    return 0;
}
