/*
 * Fuzz target: strict base64 decoding. Strictness makes every accepted input canonical, so
 * re-encoding (padded if the input was padded, unpadded otherwise) must give the input back,
 * and both encodings must decode to the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "dc_b64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    uint8_t *out = malloc(dc_b64_dec_max(size));
    size_t outlen = 0;
    struct dc_err err = {0};
    enum dc_status s = dc_b64_decode(in, size, out, &outlen, &err);
    if (s != DC_OK) {
        if (s != DC_ERR_BASE64 || err.code != s || err.msg[0] == '\0')
            abort();
        free(out);
        return 0;
    }
    if (outlen > dc_b64_dec_max(size))
        abort();

    char *padded = dc_b64_encode_alloc(out, outlen, 1);
    char *bare = dc_b64_encode_alloc(out, outlen, 0);
    if (strlen(padded) != dc_b64_enc_len(outlen, 1) || strlen(bare) != dc_b64_enc_len(outlen, 0))
        abort();
    const char *same = (size > 0 && in[size - 1] == '=') ? padded : bare;
    if (strlen(same) != size || memcmp(same, in, size) != 0)
        abort();

    const char *enc[2] = {padded, bare};
    for (int i = 0; i < 2; i++) {
        size_t elen = strlen(enc[i]);
        uint8_t *back = malloc(dc_b64_dec_max(elen));
        size_t backlen = 0;
        if (dc_b64_decode(enc[i], elen, back, &backlen, &err) != DC_OK || backlen != outlen ||
            (outlen > 0 && memcmp(back, out, outlen) != 0))
            abort();
        if (outlen > 0 && dc_b64_decode_exact(enc[i], elen, back, outlen, &err) != DC_OK)
            abort();
        free(back);
    }

    free(bare);
    free(padded);
    free(out);
    return 0;
}
