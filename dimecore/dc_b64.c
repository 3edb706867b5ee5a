/*
 * dc_b64 - base64 for signets, armor, fingerprints and DNS records. See dc_b64.h.
 */
#include "dc_b64.h"

#include <stdlib.h>
#include <string.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t dc_b64_enc_len(size_t n, int pad)
{
    if (pad)
        return (n + 2) / 3 * 4;
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t dc_b64_encode(const uint8_t *in, size_t n, char *out, int pad)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        if (pad) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

char *dc_b64_encode_alloc(const uint8_t *in, size_t n, int pad)
{
    char *out = dc_xmalloc(dc_b64_enc_len(n, pad) + 1);
    dc_b64_encode(in, n, out, pad);
    return out;
}

/* The value of each byte as a base64 digit, -1 for a byte outside the alphabet: a table
 * instead of five range tests per character (the milter decodes every injected wrapper, a
 * third more bytes than the message). */
#define D(c, v) [(unsigned char)(c)] = (int8_t)((v) + 1)
static const int8_t digit1[256] = {
    D('A', 0),  D('B', 1),  D('C', 2),  D('D', 3),  D('E', 4),  D('F', 5),  D('G', 6),
    D('H', 7),  D('I', 8),  D('J', 9),  D('K', 10), D('L', 11), D('M', 12), D('N', 13),
    D('O', 14), D('P', 15), D('Q', 16), D('R', 17), D('S', 18), D('T', 19), D('U', 20),
    D('V', 21), D('W', 22), D('X', 23), D('Y', 24), D('Z', 25), D('a', 26), D('b', 27),
    D('c', 28), D('d', 29), D('e', 30), D('f', 31), D('g', 32), D('h', 33), D('i', 34),
    D('j', 35), D('k', 36), D('l', 37), D('m', 38), D('n', 39), D('o', 40), D('p', 41),
    D('q', 42), D('r', 43), D('s', 44), D('t', 45), D('u', 46), D('v', 47), D('w', 48),
    D('x', 49), D('y', 50), D('z', 51), D('0', 52), D('1', 53), D('2', 54), D('3', 55),
    D('4', 56), D('5', 57), D('6', 58), D('7', 59), D('8', 60), D('9', 61), D('+', 62),
    D('/', 63),
};
#undef D

static int val(unsigned char c)
{
    return digit1[c] - 1; /* entries not listed are 0: -1 */
}

size_t dc_b64_dec_max(size_t inlen)
{
    return inlen / 4 * 3 + 3;
}

enum dc_status dc_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t *outlen,
                             struct dc_err *err)
{
    size_t n = inlen;
    size_t pads = 0;
    while (n > 0 && in[n - 1] == '=' && pads < 2) {
        n--;
        pads++;
    }
    if (pads > 0 && inlen % 4 != 0)
        return dc_fail(err, DC_ERR_BASE64, "base64 padding does not complete a 4-character "
                                           "group");
    if (n % 4 == 1)
        return dc_fail(err, DC_ERR_BASE64, "base64 length %zu is impossible", inlen);
    if (pads > 0 && (n + pads) % 4 != 0)
        return dc_fail(err, DC_ERR_BASE64, "base64 has wrong padding");
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0, i = 0;
    /* whole groups of four digits to three bytes; a group with a byte outside the alphabet
     * is left to the loop below, which names it */
    for (; i + 4 <= n; i += 4) {
        int a = val((unsigned char)in[i]), b = val((unsigned char)in[i + 1]),
            c = val((unsigned char)in[i + 2]), d = val((unsigned char)in[i + 3]);
        if ((a | b | c | d) < 0)
            break;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    for (; i < n; i++) {
        int v = val((unsigned char)in[i]);
        if (v < 0)
            return dc_fail(err, DC_ERR_BASE64, "invalid base64 character 0x%02x at offset %zu",
                           (unsigned char)in[i], i);
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return dc_fail(err, DC_ERR_BASE64, "base64 has non-zero trailing bits");
    *outlen = o;
    return DC_OK;
}

enum dc_status dc_b64_decode_exact(const char *in, size_t inlen, uint8_t *out, size_t n,
                                   struct dc_err *err)
{
    /* n bytes take enc_len(n, 0) characters unpadded and enc_len(n, 1) padded */
    if (inlen == 0 || inlen < dc_b64_enc_len(n, 0) || inlen > dc_b64_enc_len(n, 1))
        return dc_fail(err, DC_ERR_BASE64, "base64 value of %zu characters cannot hold "
                                           "exactly %zu bytes", inlen, n);
    uint8_t *tmp = dc_xmalloc(dc_b64_dec_max(inlen));
    size_t got = 0;
    enum dc_status s = dc_b64_decode(in, inlen, tmp, &got, err);
    if (s == DC_OK && got != n)
        s = dc_fail(err, DC_ERR_BASE64, "base64 value decodes to %zu bytes, expected %zu", got,
                    n);
    if (s == DC_OK)
        memcpy(out, tmp, n);
    dc_memzero(tmp, got);
    free(tmp);
    return s;
}
