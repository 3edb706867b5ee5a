/*
 * fuzz_inj_header - the milter's reader of the X-DIME-Injection header value (mf_inj_key,
 * milter/mf_inject.c), which decides whether an injection from the relay is a repeat to
 * discard. The input is the header value as libmilter hands it over (NUL-terminated).
 * Invariants: an accepted value is "<1-64 hex>.<1-10 digits>" within white space, id is
 * exactly that token, the key is the first 32 bytes of its SHA-512, and the token alone and
 * with other surrounding white space gives the same key; what the relay writes
 * (rl_inject_wrapper's "%s.%u" of a transaction id) is accepted.
 */
#include "mf_inject.h"

#include "dc_crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v = malloc(size + 1);
    memcpy(v, data, size);
    v[size] = '\0';
    uint8_t key[MF_INJ_KEY_LEN];
    char id[80];
    memset(id, 'X', sizeof(id));
    if (mf_inj_key(v, key, id)) {
        size_t n = strnlen(id, sizeof(id));
        const char *dot = memchr(id, '.', n);
        if (n == sizeof(id) || dot == NULL || dot == id || dot - id > 64 ||
            n - (size_t)(dot - id) - 1 < 1 || n - (size_t)(dot - id) - 1 > 10 ||
            strspn(id, "0123456789abcdef") != (size_t)(dot - id) ||
            strspn(dot + 1, "0123456789") != n - (size_t)(dot - id) - 1 ||
            strstr(v, id) == NULL)
            abort();
        uint8_t h[DC_SHA512_LEN], k2[MF_INJ_KEY_LEN];
        dc_sha512(id, n, h);
        if (memcmp(h, key, MF_INJ_KEY_LEN) != 0)
            abort();
        char again[100];
        snprintf(again, sizeof(again), "\t%s \r\n", id);
        if (!mf_inj_key(id, k2, NULL) || memcmp(k2, key, sizeof(k2)) != 0 ||
            !mf_inj_key(again, k2, NULL) || memcmp(k2, key, sizeof(k2)) != 0)
            abort();
    } else if (size >= 2) {
        /* what the relay writes is always accepted: a hex id made of the input's bytes */
        char tid[33], hdr[64];
        size_t tl = size - 1 < 32 ? size - 1 : 32;
        for (size_t i = 0; i < tl; i++)
            tid[i] = "0123456789abcdef"[data[1 + i] & 15];
        tid[tl] = '\0';
        snprintf(hdr, sizeof(hdr), " %s.%u", tid, (unsigned)data[0] * 16777619u);
        if (!mf_inj_key(hdr, key, NULL))
            abort();
    }
    free(v);
    return 0;
}
