/*
 * dl_seal - see dl_seal.h.
 */
#include "dl_seal.h"

#include <string.h>

#define AAD_MAX (3 + DL_SEAL_PURPOSE_MAX + DL_SEAL_ROW_MAX)

/* The additional data of a value sealed for purpose in row; 0 when either is out of range. */
static size_t aad(uint8_t buf[AAD_MAX], const char *purpose, const char *row)
{
    size_t pl = strlen(purpose), rl = strlen(row);
    if (pl == 0 || pl > DL_SEAL_PURPOSE_MAX || rl > DL_SEAL_ROW_MAX)
        return 0;
    buf[0] = DL_SEAL_VERSION;
    buf[1] = (uint8_t)(pl >> 8);
    buf[2] = (uint8_t)pl;
    memcpy(buf + 3, purpose, pl);
    memcpy(buf + 3 + pl, row, rl);
    return 3 + pl + rl;
}

enum dc_status dl_seal(const uint8_t key[DL_SEAL_KEY_LEN], const char *purpose, const char *row,
                       const void *in, size_t len, uint8_t *out, struct dc_err *err)
{
    uint8_t a[AAD_MAX];
    size_t al = aad(a, purpose, row);
    if (al == 0)
        return dc_fail(err, DC_ERR_ARG, "seal: purpose or row of a bad length");
    uint8_t *nonce = out + 1, *ct = nonce + DC_GCM_IV_LEN, *tag = ct + len;
    out[0] = DL_SEAL_VERSION;
    if (dc_random(nonce, DC_GCM_IV_LEN) != DC_OK)
        return dc_fail(err, DC_ERR_CRYPTO, "no random bytes for the seal nonce");
    return dc_aes256_gcm_seal(key, nonce, a, al, in, len, ct, tag, err);
}

size_t dl_unseal_len(size_t len)
{
    return len < DL_SEAL_OVERHEAD ? 0 : len - DL_SEAL_OVERHEAD;
}

enum dc_status dl_unseal(const uint8_t key[DL_SEAL_KEY_LEN], const char *purpose, const char *row,
                         const uint8_t *in, size_t len, void *out, struct dc_err *err)
{
    if (in == NULL || len < DL_SEAL_OVERHEAD)
        return dc_fail(err, DC_ERR_TRUNCATED, "sealed %s of %zu bytes is too short", purpose,
                       len);
    if (in[0] != DL_SEAL_VERSION)
        return dc_fail(err, DC_ERR_FORMAT, "sealed %s has version %u, not %u", purpose,
                       (unsigned)in[0], (unsigned)DL_SEAL_VERSION);
    uint8_t a[AAD_MAX];
    size_t al = aad(a, purpose, row);
    if (al == 0)
        return dc_fail(err, DC_ERR_ARG, "open: purpose or row of a bad length");
    size_t n = len - DL_SEAL_OVERHEAD;
    const uint8_t *nonce = in + 1, *ct = nonce + DC_GCM_IV_LEN, *tag = ct + n;
    enum dc_status s = dc_aes256_gcm_open(key, nonce, a, al, ct, n, tag, out, err);
    if (s == DC_ERR_SIGNATURE)
        return dc_fail(err, s, "sealed %s does not open: wrong key, or it belongs to another "
                       "record or was altered", purpose);
    return s;
}
