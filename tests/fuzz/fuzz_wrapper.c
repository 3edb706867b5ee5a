/*
 * fuzz_wrapper - what dime-milter parses of an inbound message before any key is used: the
 * Content-Type value that marks the D/MIME wrapper (mf_wrapper_type), the wrapper's base64
 * body (mf_wrapper_decode) and the D/MIME structure in it (dc_dmime_parse), and the From
 * field check on a rebuilt message (mf_from_names). Checked: decoded bytes, written again as
 * base64 lines (as dime-relayd's injection writes them, line width from the first input
 * byte), decode to the same bytes.
 */
#include "dc_b64.h"
#include "dc_dmime.h"
#include "mf_inbound.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    (void)mf_wrapper_type(s);
    free(s);
    (void)mf_from_names(data, size, "a@b.test");
    (void)mf_from_names(data, size, "Alice@Alice.Test");

    uint8_t *bin = NULL;
    size_t n = 0;
    if (mf_wrapper_decode(data, size, &bin, &n, NULL) != DC_OK) {
        if (bin != NULL)
            abort();
        return 0;
    }
    if (n == 0 || bin == NULL)
        abort();
    size_t width = 3 * (1 + (size_t)(size > 0 ? data[0] % 32 : 18)); /* 57 for the relay */
    struct dc_buf b;
    dc_buf_init(&b);
    char *line = malloc(dc_b64_enc_len(width, 1) + 1);
    if (line == NULL)
        abort();
    for (size_t off = 0; off < n; off += width) {
        size_t k = n - off < width ? n - off : width;
        size_t l = dc_b64_encode(bin + off, k, line, 1);
        dc_buf_append(&b, line, l);
        dc_buf_append(&b, "\r\n", 2);
    }
    free(line);
    uint8_t *again = NULL;
    size_t n2 = 0;
    if (mf_wrapper_decode(b.data, b.len, &again, &n2, NULL) != DC_OK || n2 != n ||
        memcmp(again, bin, n) != 0)
        abort();
    free(again);
    dc_buf_free(&b);
    struct dc_dmime *m = NULL;
    if (dc_dmime_parse(bin, n, &m, NULL) == DC_OK)
        dc_dmime_free(m);
    free(bin);
    return 0;
}
