/*
 * fuzz_dual - what the dual-mode front reads from others before it decides (rl_dual_wire.c):
 * the first byte picks the part.
 *   0: a client's first bytes after the greeting (rl_dual_classify). Checked: DMTP only for a
 *      line inside the bytes that starts "STARTTLS " and ends in CRLF, MORE only below
 *      RL_DUAL_LINE_MAX bytes.
 *   1: what Postfix sends as its greeting (rl_dual_banner). Checked: a complete reply is no
 *      longer than the input, comes out with its bytes kept (plus " DMTPv1" for a 220), and
 *      the rewritten greeting reads again as one complete reply of the same code.
 *   2: two socket addresses (rl_dual_proxy_v2). Checked: 0, 28 or 52 bytes, the v2 signature.
 */
#include "rl_dual.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void first(const uint8_t *p, size_t n)
{
    size_t ll = 0;
    enum rl_dual_first f = rl_dual_classify(p, n, &ll);
    if (f == RL_DUAL_DMTP &&
        (ll > n || ll < 11 || strncasecmp((const char *)p, "STARTTLS ", 9) != 0 ||
         p[ll - 2] != '\r' || p[ll - 1] != '\n'))
        abort();
    if (f == RL_DUAL_MORE && n >= RL_DUAL_LINE_MAX)
        abort();
}

static void banner(const uint8_t *p, size_t n)
{
    struct dc_buf out;
    dc_buf_init(&out);
    size_t used = 0;
    int code = 0;
    if (rl_dual_banner(p, n, &out, &used, &code) == DC_OK) {
        size_t extra = code == 220 ? 7 : 0;
        if (used > n || used < 5 || code < 200 || code > 599 || out.len != used + extra ||
            memcmp(out.data, p, 3) != 0)
            abort();
        struct dc_buf again;
        dc_buf_init(&again);
        size_t used2 = 0;
        int code2 = 0;
        if (rl_dual_banner(out.data, out.len, &again, &used2, &code2) != DC_OK ||
            used2 != out.len || code2 != code)
            abort();
        dc_buf_free(&again);
    }
    dc_buf_free(&out);
}

static void proxy(const uint8_t *p, size_t n)
{
    struct sockaddr_storage a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    size_t half = sizeof(struct sockaddr_in6);
    memcpy(&a, p, n < half ? n : half);
    if (n > half)
        memcpy(&b, p + half, n - half < half ? n - half : half);
    uint8_t h[RL_DUAL_PROXY_MAX];
    size_t l = rl_dual_proxy_v2((struct sockaddr *)&a, (struct sockaddr *)&b, h);
    if (l != 0 && l != 28 && l != 52)
        abort();
    if (l != 0 && (memcmp(h, "\r\n\r\n\0\r\nQUIT\n", 12) != 0 || h[12] != 0x21 ||
                   (size_t)(h[14] * 256 + h[15]) != l - 16))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0] % 3;
    /* a copy of exactly the input: reads past it are the sanitizer's to find */
    uint8_t *p = malloc(size - 1 ? size - 1 : 1);
    memcpy(p, data + 1, size - 1);
    if (mode == 0)
        first(p, size - 1);
    else if (mode == 1)
        banner(p, size - 1);
    else
        proxy(p, size - 1);
    free(p);
    return 0;
}
