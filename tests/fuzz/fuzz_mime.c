/*
 * libFuzzer target for dc_mime / dc_dmap.
 *  1. Any bytes, mapped forward (default and tight limits), cut into chunks and mapped back,
 *     must give the same bytes: abort() otherwise.
 *  2. Any bytes fed to the reverse path as framing (with some of them as chunk-34 data and two
 *     small attachments) must fail cleanly or succeed; the sanitizers catch the rest.
 *  3. The input's own forward mapping with one byte changed in chunk 34 (where the frame is)
 *     or in the display data goes through the reverse path too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc_dmap.h"
#include "dc_mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *data, size_t size, const struct dc_mime_limits *lim,
                  size_t max_data, size_t flip_at, uint8_t flip)
{
    struct dc_dmap_opts o = {.env_from = "from@a.test", .env_to = "to@b.test", .now = 1795694400,
                             .limits = lim};
    struct dc_dmap_out m;
    if (dc_dmap_forward(data, size, &o, &m, NULL) != DC_OK)
        abort(); /* only the size limit can refuse, and it is 50 MiB */
    struct dc_dmap_chunk *ch;
    size_t n;
    if (dc_dmap_chunks(&m, max_data, &ch, &n, NULL) != DC_OK)
        abort();
    struct dc_buf out;
    dc_buf_init(&out);
    if (dc_dmap_reverse(m.other.data, m.other.len, ch, n, &out, NULL) != DC_OK)
        abort();
    if (out.len != size || (size > 0 && memcmp(out.data, data, size) != 0))
        abort();
    /* tampered framing (chunk 34, where the frame is) */
    if (m.other.len > 0) {
        m.other.data[flip_at % m.other.len] ^= flip ? flip : 1;
        out.len = 0;
        (void)dc_dmap_reverse(m.other.data, m.other.len, ch, n, &out, NULL);
        m.other.data[flip_at % m.other.len] ^= flip ? flip : 1;
    }
    /* tampered display content */
    if (m.display.len > 0) {
        m.display.data[flip_at % m.display.len] ^= flip ? flip : 1;
        struct dc_dmap_chunk *c2;
        size_t n2;
        if (dc_dmap_chunks(&m, max_data, &c2, &n2, NULL) != DC_OK)
            abort();
        out.len = 0;
        (void)dc_dmap_reverse(m.other.data, m.other.len, c2, n2, &out, NULL);
        free(c2);
    }
    dc_buf_free(&out);
    free(ch);
    dc_dmap_out_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t b0 = size > 0 ? data[0] : 0, b1 = size > 1 ? data[1] : 0;
    check(data, size, NULL, 0, b1, b0);
    struct dc_mime_limits tight = {3, 12, 80, 16, 1u << 20};
    check(data, size, &tight, 1 + (size_t)(b0 % 37), (size_t)b0 * 7, b1);

    /* reverse on arbitrary bytes */
    size_t k = size > 0 ? 1 + (size_t)b0 % size : 0;
    if (k > size)
        k = size;
    const uint8_t *other = size > 1 ? data + 1 : NULL;
    size_t other_len = k > 1 ? k - 1 : 0;
    struct dc_dmap_chunk ch[4] = {
        {DC_DMAP_TYPE_DISPLAY, 0, data + k, size - k},
        {DC_DMAP_TYPE_ATTACH, 0, (const uint8_t *)"x", 1},
        {DC_DMAP_TYPE_ATTACH, DC_DMAP_FLAG_CONTINUED, (const uint8_t *)"y", 1},
        {DC_DMAP_TYPE_ATTACH, 0, (const uint8_t *)"z", 1},
    };
    struct dc_buf out;
    dc_buf_init(&out);
    for (size_t nch = 1; nch <= 4; nch += 2) {
        out.len = 0;
        (void)dc_dmap_reverse(other, other_len, ch, nch, &out, NULL);
        out.len = 0;
        (void)dc_dmap_reverse(NULL, 0, ch, nch, &out, NULL);
    }
    dc_buf_free(&out);
    return 0;
}
