/*
 * fuzz_dmtp_data - the relay's inbound DATA path before any key is used, as rl_server.c
 * drives it: bytes arrive in two pieces (the first input byte says where the stream is cut),
 * the length comes from the D/MIME header (rl_inbound_frame, with the MAIL FROM SIZE= from
 * the next two bytes when not zero), the message must be followed by CRLF, and then it is
 * parsed (rl_inbound_parse).
 */
#include "rl_inbound.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t cut = data[0];
    unsigned long hint = dc_get_be(data + 1, 2);
    data += 3;
    size -= 3;
    if (cut > size)
        cut = size;
    struct dc_buf b;
    dc_buf_init(&b);
    size_t total = 0;
    int code = 0;
    struct dc_err e = {0};
    enum dc_status st = DC_ERR_TRUNCATED;
    const size_t pieces[2][2] = {{0, cut}, {cut, size}};
    for (int i = 0; i < 2 && st == DC_ERR_TRUNCATED; i++) {
        dc_buf_append(&b, data + pieces[i][0], pieces[i][1] - pieces[i][0]);
        st = rl_inbound_frame(b.data, b.len, 1u << 20, hint, &total, &code, &e);
    }
    if (st == DC_OK && total + 2 <= b.len && b.data[total] == '\r' && b.data[total + 1] == '\n') {
        struct dc_dmime *m = NULL;
        if (rl_inbound_parse(b.data, total, &m, &e) == DC_OK)
            dc_dmime_free(m);
    }
    dc_buf_free(&b);
    return 0;
}
