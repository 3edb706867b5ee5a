/*
 * kv_seal - master key loading (key file or scrypt passphrase) and AES-256-GCM sealing with
 * the row identity as additional data. See kv_seal.h.
 */
#include "kv_seal.h"

#include "dc_crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_FILE_MAX 4096

enum dc_status kv_check_secret_file(const char *path, struct dc_err *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return dc_fail(err, DC_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return dc_fail(err, DC_ERR_IO, "%s: not a regular file", path);
    if (st.st_uid != geteuid())
        return dc_fail(err, DC_ERR_IO, "%s: owned by uid %u, must be owned by uid %u (the "
                       "user starting the daemon)", path, (unsigned)st.st_uid,
                       (unsigned)geteuid());
    unsigned mode = st.st_mode & 07777;
    if (mode != 0400 && mode != 0600)
        return dc_fail(err, DC_ERR_IO, "%s: mode %04o is too open, must be 0400 or 0600", path,
                       mode);
    return DC_OK;
}

/* Reads a secret file into secure memory, after the ownership and mode checks. */
static enum dc_status read_secret(const char *path, uint8_t **out, size_t *outlen,
                                  struct dc_err *err)
{
    enum dc_status s = kv_check_secret_file(path, err);
    if (s != DC_OK)
        return s;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return dc_fail(err, DC_ERR_IO, "%s: %s", path, strerror(errno));
    uint8_t *buf = dc_secure_alloc(SECRET_FILE_MAX + 1);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, SECRET_FILE_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            dc_secure_free(buf, SECRET_FILE_MAX + 1);
            return dc_fail(err, DC_ERR_IO, "%s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > SECRET_FILE_MAX) {
            close(fd);
            dc_secure_free(buf, SECRET_FILE_MAX + 1);
            return dc_fail(err, DC_ERR_LIMIT, "%s: larger than %d bytes", path,
                           SECRET_FILE_MAX);
        }
    }
    close(fd);
    *out = buf;
    *outlen = n;
    return DC_OK;
}

enum dc_status kv_master_load_file(const char *path, struct kv_master **out, struct dc_err *err)
{
    uint8_t *buf;
    size_t n;
    enum dc_status s = read_secret(path, &buf, &n, err);
    if (s != DC_OK)
        return s;
    struct kv_master *m = dc_secure_alloc(sizeof(*m));
    if (n == KV_MASTER_LEN) {
        memcpy(m->key, buf, KV_MASTER_LEN);
    } else {
        size_t h = n;
        if (h > 0 && buf[h - 1] == '\n')
            h--;
        if (h != 2 * KV_MASTER_LEN ||
            dc_hex_decode((const char *)buf, h, m->key, KV_MASTER_LEN) != DC_OK) {
            dc_secure_free(buf, SECRET_FILE_MAX + 1);
            dc_secure_free(m, sizeof(*m));
            return dc_fail(err, DC_ERR_FORMAT, "%s: a master key file holds 32 bytes, or 64 "
                           "hex digits and an optional newline (found %zu bytes)", path, n);
        }
    }
    dc_secure_free(buf, SECRET_FILE_MAX + 1);
    *out = m;
    return DC_OK;
}

enum dc_status kv_passphrase_load(const char *path, uint8_t **pass, size_t *len,
                                  struct dc_err *err)
{
    uint8_t *buf;
    size_t n;
    enum dc_status s = read_secret(path, &buf, &n, err);
    if (s != DC_OK)
        return s;
    size_t plen = 0;
    while (plen < n && buf[plen] != '\n')
        plen++;
    if (plen < 8) {
        dc_secure_free(buf, SECRET_FILE_MAX + 1);
        return dc_fail(err, DC_ERR_FORMAT, "%s: the passphrase must have at least 8 characters",
                       path);
    }
    uint8_t *p = dc_secure_alloc(plen);
    memcpy(p, buf, plen);
    dc_secure_free(buf, SECRET_FILE_MAX + 1);
    *pass = p;
    *len = plen;
    return DC_OK;
}

enum dc_status kv_master_from_passphrase(const uint8_t *pass, size_t len,
                                         const uint8_t salt[KV_SALT_LEN], struct kv_master **out,
                                         struct dc_err *err)
{
    struct kv_master *m = dc_secure_alloc(sizeof(*m));
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    uint64_t sn = KV_SCRYPT_N;
    uint32_t sr = KV_SCRYPT_R, sp = KV_SCRYPT_P;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)pass, len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, KV_SALT_LEN),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &sn),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &sr),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &sp),
        OSSL_PARAM_construct_end(),
    };
    int ok = kctx != NULL && EVP_KDF_derive(kctx, m->key, KV_MASTER_LEN, params) == 1;
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    if (!ok) {
        dc_secure_free(m, sizeof(*m));
        return dc_fail(err, DC_ERR_CRYPTO, "scrypt key derivation failed");
    }
    *out = m;
    return DC_OK;
}

void kv_master_free(struct kv_master *m)
{
    if (m != NULL)
        dc_secure_free(m, sizeof(*m));
}

enum dc_status kv_seal(const struct kv_master *m, const char *kind, const char *row,
                       const uint8_t *in, size_t len, uint8_t **out, size_t *outlen,
                       struct dc_err *err)
{
    uint8_t *b = dc_xmalloc(len + KV_SEAL_OVERHEAD);
    enum dc_status s = dl_seal(m->key, kind, row, in, len, b, err);
    if (s != DC_OK) {
        free(b);
        return s;
    }
    *out = b;
    *outlen = len + KV_SEAL_OVERHEAD;
    return DC_OK;
}

enum dc_status kv_open(const struct kv_master *m, const char *kind, const char *row,
                       const uint8_t *in, size_t len, uint8_t **out, size_t *outlen,
                       struct dc_err *err)
{
    size_t n = dl_unseal_len(len);
    uint8_t *p = dc_secure_alloc(n > 0 ? n : 1);
    enum dc_status s = dl_unseal(m->key, kind, row, in, len, p, err);
    if (s != DC_OK) {
        dc_secure_free(p, n > 0 ? n : 1);
        if (s == DC_ERR_SIGNATURE)
            return dc_fail(err, s, "sealed %s of %s does not open: wrong master key, or the "
                           "blob belongs to another record or was altered", kind, row);
        return s;
    }
    *out = p;
    *outlen = n;
    return DC_OK;
}

#define V0_OVERHEAD (DC_GCM_IV_LEN + DC_GCM_TAG_LEN)

enum dc_status kv_open_v0(const struct kv_master *m, const char *kind, const char *row,
                          const uint8_t *in, size_t len, uint8_t **out, size_t *outlen,
                          struct dc_err *err)
{
    if (len <= V0_OVERHEAD)
        return dc_fail(err, DC_ERR_TRUNCATED, "old sealed blob of %zu bytes is too short", len);
    char *a = *row != '\0' ? dc_xasprintf("%s|%s", kind, row) : dc_xstrdup(kind);
    size_t n = len - V0_OVERHEAD;
    uint8_t *p = dc_secure_alloc(n);
    enum dc_status s = dc_aes256_gcm_open(m->key, in, (const uint8_t *)a, strlen(a),
                                          in + DC_GCM_IV_LEN, n, in + DC_GCM_IV_LEN + n, p, err);
    if (s == DC_ERR_SIGNATURE)
        dc_fail(err, s, "old sealed %s does not open: wrong master key, or the blob belongs to "
                "another record or was altered", a);
    free(a);
    if (s != DC_OK) {
        dc_secure_free(p, n);
        return s;
    }
    *out = p;
    *outlen = n;
    return DC_OK;
}
