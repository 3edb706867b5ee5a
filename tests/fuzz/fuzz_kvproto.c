/*
 * Fuzz target: the keyvault request and response parsers (keyvault/kv_proto.c). The input is
 * one payload (no frame header). Whatever parses must re-encode, through the builder, to the
 * same bytes: fields are unique and ordered, so the encoding of a parsed message is unique.
 * Every rejection must carry a reason.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kv_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void add(struct dc_buf *b, uint8_t tag, const void *p, size_t n)
{
    if (kv_msg_add(b, tag, p, n) != DC_OK)
        abort();
}

static void same(struct dc_buf *b, const uint8_t *data, size_t size)
{
    struct dc_err err = {0};
    if (kv_msg_end(b, &err) != DC_OK || b->len != size + 4 || memcmp(b->data + 4, data, size))
        abort();
}

static void check_request(const uint8_t *data, size_t size)
{
    struct kv_request r;
    struct dc_err err = {0};
    if (kv_request_parse(data, size, &r, &err) != DC_OK) {
        if (err.code == DC_OK || err.msg[0] == '\0')
            abort();
        return;
    }
    struct dc_buf b;
    dc_buf_init(&b);
    kv_msg_begin(&b, (uint8_t)r.op);
    /* the stream frames after SIGN-BEGIN carry no principal */
    bool bare = r.op == KV_OP_SIGN_DATA || r.op == KV_OP_SIGN_PASS2 || r.op == KV_OP_SIGN_END;
    if ((r.principal.p == NULL) != bare)
        abort();
    if (r.principal.p)
        add(&b, KV_T_PRINCIPAL, r.principal.p, r.principal.len);
    if (r.purpose) {
        uint8_t p = (uint8_t)r.purpose;
        add(&b, KV_T_PURPOSE, &p, 1);
    }
    if (r.data.p)
        add(&b, KV_T_DATA, r.data.p, r.data.len);
    if (r.eph)
        add(&b, KV_T_EPH, r.eph, KV_EPH_LEN);
    if (r.slot)
        add(&b, KV_T_SLOT, r.slot, KV_SLOT_LEN);
    if (r.fp.p)
        add(&b, KV_T_FP, r.fp.p, r.fp.len);
    if (r.from_fp.p)
        add(&b, KV_T_FROM_FP, r.from_fp.p, r.from_fp.len);
    if (r.to_fp.p)
        add(&b, KV_T_TO_FP, r.to_fp.p, r.to_fp.len);
    if (r.has_length) {
        if (r.op != KV_OP_SIGN_BEGIN)
            abort();
        dc_buf_putc(&b, KV_T_LENGTH);
        dc_buf_put_be(&b, KV_LENGTH_LEN, 2);
        dc_buf_put_be(&b, r.length, 8);
    }
    if (r.ssr.p)
        add(&b, KV_T_SSR, r.ssr.p, r.ssr.len);
    if (r.blob.p)
        add(&b, KV_T_BLOB, r.blob.p, r.blob.len);
    if (r.new_mode) {
        if (r.op != KV_OP_ENROLL)
            abort();
        uint8_t m = (uint8_t)r.new_mode;
        add(&b, KV_T_NEW_MODE, &m, 1);
    }
    same(&b, data, size);
    dc_buf_free(&b);
}

static void check_response(const uint8_t *data, size_t size)
{
    struct kv_response r;
    struct dc_err err = {0};
    if (kv_response_parse(data, size, &r, &err) != DC_OK) {
        if (err.code == DC_OK || err.msg[0] == '\0')
            abort();
        return;
    }
    struct dc_buf b;
    dc_buf_init(&b);
    kv_msg_begin(&b, (uint8_t)r.status);
    if (r.sig)
        add(&b, KV_T_SIG, r.sig, KV_SIG_LEN);
    if (r.kek)
        add(&b, KV_T_KEK, r.kek, KV_KEK_LEN);
    if (r.plain)
        add(&b, KV_T_PLAIN, r.plain, KV_SLOT_LEN);
    for (size_t i = 0; i < r.nsignets; i++)
        add(&b, KV_T_SIGNET, r.signets[i].p, r.signets[i].len);
    if (r.has_exists) {
        uint8_t e = r.exists;
        add(&b, KV_T_EXISTS, &e, 1);
    }
    if (r.mode) {
        uint8_t m = (uint8_t)r.mode;
        add(&b, KV_T_MODE, &m, 1);
    }
    if (r.has_generation) {
        dc_buf_putc(&b, KV_T_GENERATION);
        dc_buf_put_be(&b, 4, 2);
        dc_buf_put_be(&b, r.generation, 4);
    }
    if (r.message.p)
        add(&b, KV_T_MESSAGE, r.message.p, r.message.len);
    if (r.blob.p)
        add(&b, KV_T_KEY_BLOB, r.blob.p, r.blob.len);
    for (size_t i = 0; i < r.nkeys; i++)
        add(&b, KV_T_USER_KEY, r.keys[i].p, r.keys[i].len);
    if (r.migrated) {
        uint8_t one = 1;
        add(&b, KV_T_MIGRATED, &one, 1);
    }
    same(&b, data, size);
    dc_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 4) {
        uint32_t n = 0;
        struct dc_err err = {0};
        if (kv_frame_len(data, &n, &err) == DC_OK && (n == 0 || n > KV_FRAME_MAX))
            abort();
    }
    check_request(data, size);
    check_response(data, size);
    return 0;
}
