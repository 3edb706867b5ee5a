/*
 * Fuzz target: private key files, as binary and through dc_keyfile_load (armor or binary).
 * A parsed key file must serialize (variant A), reparse to the same keys, armor and load
 * back to the same keys; a failure must carry its code and message and no output.
 */
#include <stdlib.h>
#include <string.h>

#include "dc_keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_keys(const struct dc_keyfile *a, const struct dc_keyfile *b)
{
    if (a->type != b->type || (a->sok == NULL) != (b->sok == NULL))
        abort();
    if (a->sok != NULL) {
        if (a->sok_perm != b->sok_perm || memcmp(a->sok->seed, b->sok->seed, 32) != 0 ||
            memcmp(a->sok->pub, b->sok->pub, 32) != 0)
            abort();
        return;
    }
    if (memcmp(a->sign->seed, b->sign->seed, 32) != 0 ||
        memcmp(a->sign->pub, b->sign->pub, 32) != 0 ||
        memcmp(a->enc->priv, b->enc->priv, 32) != 0 || memcmp(a->enc->pub, b->enc->pub, 33) != 0)
        abort();
}

static void exercise(const struct dc_keyfile *k)
{
    uint8_t *bin = NULL;
    size_t n = 0;
    if (dc_keyfile_serialize(k, &bin, &n, NULL) != DC_OK)
        abort();
    struct dc_keyfile *b = NULL;
    if (dc_keyfile_parse(bin, n, &b, NULL) != DC_OK || b->variant != DC_VARIANT_LIBDIME)
        abort();
    same_keys(k, b);
    dc_keyfile_free(b);
    dc_secure_free(bin, n);
    char *arm = NULL;
    if (dc_keyfile_armor(k, &arm, NULL) != DC_OK)
        abort();
    b = NULL;
    if (dc_keyfile_load((const uint8_t *)arm, strlen(arm), &b, NULL) != DC_OK)
        abort();
    same_keys(k, b);
    dc_keyfile_free(b);
    dc_secure_free(arm, strlen(arm) + 1);
}

static void check(enum dc_status st, struct dc_keyfile *k, const struct dc_err *err)
{
    if (st == DC_OK) {
        exercise(k);
        dc_keyfile_free(k);
    } else if (k != NULL || err->code != st || err->msg[0] == '\0') {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dc_keyfile *k = NULL;
    struct dc_err err = {0};
    check(dc_keyfile_parse(data, size, &k, &err), k, &err);
    k = NULL;
    memset(&err, 0, sizeof(err));
    check(dc_keyfile_load(data, size, &k, &err), k, &err);
    return 0;
}
