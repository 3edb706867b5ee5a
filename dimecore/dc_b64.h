/*
 * dc_b64 - RFC 4648 base64 (standard alphabet), padded and unpadded, strict decoding.
 */
#ifndef DC_B64_H
#define DC_B64_H

#include "dc_util.h"

/* Length of the encoding of n bytes, without the terminating NUL. */
size_t dc_b64_enc_len(size_t n, int pad);
/* Encodes into out (dc_b64_enc_len()+1 bytes); returns the length written. */
size_t dc_b64_encode(const uint8_t *in, size_t n, char *out, int pad);
/* Encodes into a new malloc'd string. */
char *dc_b64_encode_alloc(const uint8_t *in, size_t n, int pad);

/* Strict decoding: only alphabet characters, then optional '=' padding consistent with the
 * length (unpadded input is accepted), non-zero trailing bits rejected. out must hold
 * dc_b64_dec_max(inlen) bytes. */
size_t dc_b64_dec_max(size_t inlen);
enum dc_status dc_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t *outlen,
                             struct dc_err *err);
/* Decodes and requires exactly n output bytes. */
enum dc_status dc_b64_decode_exact(const char *in, size_t inlen, uint8_t *out, size_t n,
                                   struct dc_err *err);

#endif
