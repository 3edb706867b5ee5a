/*
 * kv_proto - keyvault wire format: frame length check, strict request and response parsers,
 * message building. See kv_proto.h and daemonlib/KEYVAULT.md.
 */
#include "kv_proto.h"

#include <string.h>

static const char *const op_names[] = {
    [KV_OP_SIGN] = "sign",       [KV_OP_KEK] = "kek",         [KV_OP_UNWRAP] = "unwrap",
    [KV_OP_SIGNET] = "signet",   [KV_OP_HISTORY] = "history", [KV_OP_ACCOUNT] = "account",
    [KV_OP_SIGN_BEGIN] = "sign-begin", [KV_OP_SIGN_DATA] = "sign-data",
    [KV_OP_SIGN_PASS2] = "sign-pass2", [KV_OP_SIGN_END] = "sign-end",
    [KV_OP_ENROLL] = "enroll",   [KV_OP_ROTATE] = "rotate",   [KV_OP_BLOB] = "blob",
    [KV_OP_KEYS] = "keys",       [KV_OP_TO_PARANOID] = "to-paranoid",
    [KV_OP_TO_TRUSTFUL] = "to-trustful",
    [KV_OP_MAX + 1] = NULL,
};

static const char *const purpose_names[] = {
    [KV_PURPOSE_CHUNK] = "chunk",   [KV_PURPOSE_AUTHOR_TREE] = "author-tree",
    [KV_PURPOSE_AUTHOR_FULL] = "author-full", [KV_PURPOSE_ORIGIN] = "origin",
    [KV_PURPOSE_SIGNET] = "signet", [KV_PURPOSE_TLS] = "tls",
};

static const char *const status_names[] = {
    [KV_OK] = "ok",           [KV_E_BADREQ] = "bad-request", [KV_E_DENIED] = "denied",
    [KV_E_NOTFOUND] = "not-found", [KV_E_MODE] = "mode",     [KV_E_PURPOSE] = "purpose",
    [KV_E_CRYPTO] = "crypto", [KV_E_INTERNAL] = "internal", [KV_E_EXISTS] = "exists",
    [KV_E_CUSTODY] = "custody",
};

static const char *const mode_names[] = {
    [KV_MODE_TRUSTFUL] = "trustful",
    [KV_MODE_CAUTIOUS] = "cautious",
    [KV_MODE_PARANOID] = "paranoid",
};

const char *const *const kv_op_words = &op_names[1];

const char *kv_op_name(enum kv_op op)
{
    return (op >= 1 && op <= KV_OP_MAX) ? op_names[op] : "unknown";
}

const char *kv_purpose_name(enum kv_purpose p)
{
    return (p >= 1 && p <= KV_PURPOSE_MAX) ? purpose_names[p] : "unknown";
}

enum kv_purpose kv_purpose_from_name(const char *name)
{
    for (int i = 1; i <= KV_PURPOSE_MAX; i++)
        if (strcmp(purpose_names[i], name) == 0)
            return (enum kv_purpose)i;
    return 0;
}

const char *kv_status_name(enum kv_status st)
{
    return st <= KV_STATUS_MAX ? status_names[st] : "unknown";
}

const char *kv_mode_name(enum kv_mode m)
{
    return (m >= 1 && m <= KV_MODE_PARANOID) ? mode_names[m] : "unknown";
}

enum kv_mode kv_mode_from_name(const char *name)
{
    for (int i = 1; i <= KV_MODE_PARANOID; i++)
        if (strcmp(mode_names[i], name) == 0)
            return (enum kv_mode)i;
    return 0;
}

enum dc_status kv_frame_len(const uint8_t hdr[4], uint32_t *len, struct dc_err *err)
{
    uint32_t n = dc_get_be(hdr, 4);
    if (n == 0)
        return dc_fail(err, DC_ERR_LIMIT, "empty frame");
    if (n > KV_FRAME_MAX)
        return dc_fail(err, DC_ERR_LIMIT, "frame of %u bytes exceeds the limit of %u", n,
                       KV_FRAME_MAX);
    *len = n;
    return DC_OK;
}

/* Length range of each tag's value; max 0 = unknown tag. */
struct tag_spec {
    uint8_t tag;
    const char *name;
    size_t min, max;
};

static const struct tag_spec tag_specs[] = {
    {KV_T_PRINCIPAL, "principal", 1, KV_PRINCIPAL_MAX},
    {KV_T_PURPOSE, "purpose", 1, 1},
    {KV_T_DATA, "data", 0, KV_DATA_MAX},
    {KV_T_EPH, "eph", KV_EPH_LEN, KV_EPH_LEN},
    {KV_T_SLOT, "slot", KV_SLOT_LEN, KV_SLOT_LEN},
    {KV_T_FP, "fingerprint", KV_FP_LEN, KV_FP_LEN},
    {KV_T_FROM_FP, "from-fingerprint", KV_FP_LEN, KV_FP_LEN},
    {KV_T_TO_FP, "to-fingerprint", KV_FP_LEN, KV_FP_LEN},
    {KV_T_LENGTH, "length", KV_LENGTH_LEN, KV_LENGTH_LEN},
    {KV_T_SSR, "ssr", 5, KV_SSR_MAX},
    {KV_T_BLOB, "blob", 1, KV_BLOB_MAX},
    {KV_T_NEW_MODE, "new-mode", 1, 1},
    {KV_T_NEW_KEYS, "new-keys", KV_USER_KEYS_LEN, KV_USER_KEYS_LEN},
    {KV_T_SIG, "signature", KV_SIG_LEN, KV_SIG_LEN},
    {KV_T_KEK, "kek", KV_KEK_LEN, KV_KEK_LEN},
    {KV_T_PLAIN, "plaintext", KV_SLOT_LEN, KV_SLOT_LEN},
    {KV_T_SIGNET, "signet", 5, 65535},
    {KV_T_EXISTS, "exists", 1, 1},
    {KV_T_MODE, "mode", 1, 1},
    {KV_T_GENERATION, "generation", 4, 4},
    {KV_T_MESSAGE, "message", 1, 512},
    {KV_T_KEY_BLOB, "key-blob", 1, KV_BLOB_MAX},
    {KV_T_USER_KEY, "user-key", 4 + KV_USER_KEYS_LEN, 4 + KV_USER_KEYS_LEN},
    {KV_T_MIGRATED, "migrated", 1, 1},
};

static const struct tag_spec *tag_lookup(uint8_t tag)
{
    for (size_t i = 0; i < sizeof(tag_specs) / sizeof(tag_specs[0]); i++)
        if (tag_specs[i].tag == tag)
            return &tag_specs[i];
    return NULL;
}

/* Bit for a request tag (1..KV_T_NEW_KEYS) in the allowed/required masks below. */
#define RB(t) (1u << (t))

static const struct {
    unsigned required, allowed;
} op_fields[KV_OP_MAX + 1] = {
    [KV_OP_SIGN] = {RB(KV_T_PRINCIPAL) | RB(KV_T_PURPOSE) | RB(KV_T_DATA),
                    RB(KV_T_PRINCIPAL) | RB(KV_T_PURPOSE) | RB(KV_T_DATA)},
    [KV_OP_KEK] = {RB(KV_T_PRINCIPAL) | RB(KV_T_EPH),
                   RB(KV_T_PRINCIPAL) | RB(KV_T_EPH) | RB(KV_T_FP)},
    [KV_OP_UNWRAP] = {RB(KV_T_PRINCIPAL) | RB(KV_T_EPH) | RB(KV_T_SLOT),
                      RB(KV_T_PRINCIPAL) | RB(KV_T_EPH) | RB(KV_T_SLOT) | RB(KV_T_FP)},
    [KV_OP_SIGNET] = {RB(KV_T_PRINCIPAL), RB(KV_T_PRINCIPAL) | RB(KV_T_FP)},
    [KV_OP_HISTORY] = {RB(KV_T_PRINCIPAL),
                       RB(KV_T_PRINCIPAL) | RB(KV_T_FROM_FP) | RB(KV_T_TO_FP)},
    [KV_OP_ACCOUNT] = {RB(KV_T_PRINCIPAL), RB(KV_T_PRINCIPAL)},
    [KV_OP_SIGN_BEGIN] = {RB(KV_T_PRINCIPAL) | RB(KV_T_PURPOSE),
                          RB(KV_T_PRINCIPAL) | RB(KV_T_PURPOSE) | RB(KV_T_LENGTH)},
    [KV_OP_SIGN_DATA] = {RB(KV_T_DATA), RB(KV_T_DATA)},
    [KV_OP_SIGN_PASS2] = {0, 0},
    [KV_OP_SIGN_END] = {0, 0},
    [KV_OP_ENROLL] = {RB(KV_T_PRINCIPAL) | RB(KV_T_SSR) | RB(KV_T_NEW_MODE),
                      RB(KV_T_PRINCIPAL) | RB(KV_T_SSR) | RB(KV_T_BLOB) | RB(KV_T_NEW_MODE)},
    [KV_OP_ROTATE] = {RB(KV_T_PRINCIPAL) | RB(KV_T_SSR),
                      RB(KV_T_PRINCIPAL) | RB(KV_T_SSR) | RB(KV_T_BLOB)},
    [KV_OP_BLOB] = {RB(KV_T_PRINCIPAL), RB(KV_T_PRINCIPAL)},
    [KV_OP_KEYS] = {RB(KV_T_PRINCIPAL), RB(KV_T_PRINCIPAL)},
    [KV_OP_TO_PARANOID] = {RB(KV_T_PRINCIPAL) | RB(KV_T_SSR), RB(KV_T_PRINCIPAL) | RB(KV_T_SSR)},
    [KV_OP_TO_TRUSTFUL] = {RB(KV_T_PRINCIPAL) | RB(KV_T_SSR) | RB(KV_T_NEW_KEYS),
                           RB(KV_T_PRINCIPAL) | RB(KV_T_SSR) | RB(KV_T_NEW_KEYS)},
};

static bool b64_char(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

static enum dc_status check_value(uint8_t tag, const uint8_t *v, size_t n, struct dc_err *err)
{
    switch (tag) {
    case KV_T_PRINCIPAL: {
        size_t ats = 0;
        for (size_t i = 0; i < n; i++) {
            if (v[i] <= 0x20 || v[i] >= 0x7f)
                return dc_fail(err, DC_ERR_FIELD,
                               "principal: byte %zu is not a printable non-space character", i);
            if (v[i] == '@')
                ats++;
        }
        if (ats > 1 || v[0] == '@' || v[n - 1] == '@')
            return dc_fail(err, DC_ERR_FIELD, "principal: not a domain or user@domain");
        return DC_OK;
    }
    case KV_T_PURPOSE:
        if (v[0] < 1 || v[0] > KV_PURPOSE_MAX)
            return dc_fail(err, DC_ERR_FIELD, "purpose: unknown value %u", v[0]);
        return DC_OK;
    case KV_T_FP:
    case KV_T_FROM_FP:
    case KV_T_TO_FP:
        for (size_t i = 0; i < n; i++)
            if (!b64_char(v[i]))
                return dc_fail(err, DC_ERR_FIELD, "%s: byte %zu is not base64",
                               tag_lookup(tag)->name, i);
        return DC_OK;
    case KV_T_EXISTS:
        if (v[0] > 1)
            return dc_fail(err, DC_ERR_FIELD, "exists: value %u is not 0 or 1", v[0]);
        return DC_OK;
    case KV_T_MODE:
        if (v[0] < 1 || v[0] > KV_MODE_PARANOID)
            return dc_fail(err, DC_ERR_FIELD, "mode: unknown value %u", v[0]);
        return DC_OK;
    case KV_T_NEW_MODE: /* a device's own keys: never Trustful */
        if (v[0] != KV_MODE_CAUTIOUS && v[0] != KV_MODE_PARANOID)
            return dc_fail(err, DC_ERR_FIELD, "new-mode: %u is neither cautious nor paranoid",
                           v[0]);
        return DC_OK;
    default:
        return DC_OK;
    }
}

/* Walks the TLV fields after the 2-byte prefix, calling take() for each one after the
 * generic checks (known tag, length range, order, value syntax). */
typedef enum dc_status (*field_fn)(void *ctx, uint8_t tag, const uint8_t *v, size_t n,
                                   struct dc_err *err);

static enum dc_status walk(const uint8_t *buf, size_t len, bool request, field_fn take,
                           void *ctx, struct dc_err *err)
{
    size_t off = 2;
    int last = -1;
    while (off < len) {
        if (len - off < 3)
            return dc_fail(err, DC_ERR_TRUNCATED, "field header at offset %zu is truncated",
                           off);
        uint8_t tag = buf[off];
        size_t n = dc_get_be(buf + off + 1, 2);
        const struct tag_spec *ts = tag_lookup(tag);
        if (ts == NULL || (request != (tag < 0x80)))
            return dc_fail(err, DC_ERR_FIELD, "unknown field tag 0x%02x at offset %zu", tag,
                           off);
        if (len - off - 3 < n)
            return dc_fail(err, DC_ERR_TRUNCATED,
                           "%s: value of %zu bytes runs past the end of the message", ts->name,
                           n);
        if (n < ts->min || n > ts->max)
            return dc_fail(err, DC_ERR_FIELD, "%s: length %zu outside %zu..%zu", ts->name, n,
                           ts->min, ts->max);
        if ((int)tag < last || ((int)tag == last && tag != KV_T_SIGNET && tag != KV_T_USER_KEY))
            return dc_fail(err, DC_ERR_ORDER, "%s: field out of order or repeated", ts->name);
        last = tag;
        enum dc_status st = check_value(tag, buf + off + 3, n, err);
        if (st != DC_OK)
            return st;
        st = take(ctx, tag, buf + off + 3, n, err);
        if (st != DC_OK)
            return st;
        off += 3 + n;
    }
    return DC_OK;
}

struct req_ctx {
    struct kv_request *req;
    unsigned seen;
};

static enum dc_status take_req(void *vctx, uint8_t tag, const uint8_t *v, size_t n,
                               struct dc_err *err)
{
    struct req_ctx *c = vctx;
    struct kv_request *r = c->req;
    if (!(op_fields[r->op].allowed & RB(tag)))
        return dc_fail(err, DC_ERR_FIELD, "%s: not a field of a %s request",
                       tag_lookup(tag)->name, kv_op_name(r->op));
    c->seen |= RB(tag);
    struct kv_bytes b = {v, n};
    switch (tag) {
    case KV_T_PRINCIPAL: r->principal = b; break;
    case KV_T_PURPOSE: r->purpose = (enum kv_purpose)v[0]; break;
    case KV_T_DATA: r->data = b; break;
    case KV_T_EPH: r->eph = v; break;
    case KV_T_SLOT: r->slot = v; break;
    case KV_T_FP: r->fp = b; break;
    case KV_T_FROM_FP: r->from_fp = b; break;
    case KV_T_TO_FP: r->to_fp = b; break;
    case KV_T_LENGTH:
        r->has_length = true;
        r->length = (uint64_t)dc_get_be(v, 4) << 32 | dc_get_be(v + 4, 4);
        break;
    case KV_T_SSR: r->ssr = b; break;
    case KV_T_BLOB: r->blob = b; break;
    case KV_T_NEW_MODE: r->new_mode = (enum kv_mode)v[0]; break;
    case KV_T_NEW_KEYS: r->new_keys = v; break;
    default: break;
    }
    return DC_OK;
}

static enum dc_status check_prefix(const uint8_t *buf, size_t len, struct dc_err *err)
{
    if (len < 2)
        return dc_fail(err, DC_ERR_TRUNCATED, "message of %zu bytes is shorter than 2", len);
    if (len > KV_FRAME_MAX)
        return dc_fail(err, DC_ERR_LIMIT, "message of %zu bytes exceeds %u", len, KV_FRAME_MAX);
    if (buf[0] != KV_VERSION)
        return dc_fail(err, DC_ERR_FORMAT, "protocol version %u is not %u", buf[0], KV_VERSION);
    return DC_OK;
}

enum dc_status kv_request_parse(const uint8_t *buf, size_t len, struct kv_request *req,
                                struct dc_err *err)
{
    memset(req, 0, sizeof(*req));
    enum dc_status st = check_prefix(buf, len, err);
    if (st != DC_OK)
        return st;
    if (buf[1] < 1 || buf[1] > KV_OP_MAX)
        return dc_fail(err, DC_ERR_FORMAT, "unknown operation %u", buf[1]);
    req->op = (enum kv_op)buf[1];
    struct req_ctx c = {req, 0};
    st = walk(buf, len, true, take_req, &c, err);
    if (st != DC_OK) {
        enum kv_op op = req->op;
        memset(req, 0, sizeof(*req));
        req->op = op;
        return st;
    }
    unsigned missing = op_fields[req->op].required & ~c.seen;
    if (missing) {
        for (uint8_t t = 1; t <= KV_T_NEW_KEYS; t++)
            if (missing & RB(t)) {
                enum kv_op op = req->op;
                memset(req, 0, sizeof(*req));
                req->op = op;
                return dc_fail(err, DC_ERR_FIELD, "%s request lacks the %s field",
                               kv_op_name(op), tag_lookup(t)->name);
            }
    }
    return DC_OK;
}

static enum dc_status take_resp(void *vctx, uint8_t tag, const uint8_t *v, size_t n,
                                struct dc_err *err)
{
    struct kv_response *r = vctx;
    switch (tag) {
    case KV_T_SIG: r->sig = v; break;
    case KV_T_KEK: r->kek = v; break;
    case KV_T_PLAIN: r->plain = v; break;
    case KV_T_SIGNET:
        if (r->nsignets == KV_HISTORY_MAX)
            return dc_fail(err, DC_ERR_LIMIT, "more than %u signets", KV_HISTORY_MAX);
        r->signets[r->nsignets].p = v;
        r->signets[r->nsignets].len = n;
        r->nsignets++;
        break;
    case KV_T_EXISTS:
        r->has_exists = true;
        r->exists = v[0] == 1;
        break;
    case KV_T_MODE: r->mode = (enum kv_mode)v[0]; break;
    case KV_T_GENERATION:
        r->has_generation = true;
        r->generation = dc_get_be(v, 4);
        break;
    case KV_T_MESSAGE:
        r->message.p = v;
        r->message.len = n;
        break;
    case KV_T_KEY_BLOB:
        r->blob.p = v;
        r->blob.len = n;
        break;
    case KV_T_MIGRATED: /* present means yes: the one value is 1 */
        if (v[0] != 1)
            return dc_fail(err, DC_ERR_FIELD, "migrated: value %u, not 1", v[0]);
        r->migrated = true;
        break;
    case KV_T_USER_KEY:
        if (r->nkeys == KV_HISTORY_MAX)
            return dc_fail(err, DC_ERR_LIMIT, "more than %u user keys", KV_HISTORY_MAX);
        r->keys[r->nkeys].p = v;
        r->keys[r->nkeys++].len = n;
        break;
    default: break;
    }
    return DC_OK;
}

enum dc_status kv_response_parse(const uint8_t *buf, size_t len, struct kv_response *resp,
                                 struct dc_err *err)
{
    memset(resp, 0, sizeof(*resp));
    enum dc_status st = check_prefix(buf, len, err);
    if (st != DC_OK)
        return st;
    if (buf[1] > KV_STATUS_MAX)
        return dc_fail(err, DC_ERR_FORMAT, "unknown status %u", buf[1]);
    resp->status = (enum kv_status)buf[1];
    st = walk(buf, len, false, take_resp, resp, err);
    if (st != DC_OK) {
        memset(resp, 0, sizeof(*resp));
        return st;
    }
    return DC_OK;
}

void kv_msg_begin(struct dc_buf *b, uint8_t op_or_status)
{
    b->len = 0;
    dc_buf_put_be(b, 0, 4);
    dc_buf_putc(b, KV_VERSION);
    dc_buf_putc(b, op_or_status);
}

enum dc_status kv_msg_add(struct dc_buf *b, uint8_t tag, const void *p, size_t len)
{
    if (len > 0xffff || b->len + 3 + len > 4 + (size_t)KV_FRAME_MAX)
        return DC_ERR_LIMIT;
    dc_buf_putc(b, tag);
    dc_buf_put_be(b, len, 2);
    dc_buf_append(b, p, len);
    return DC_OK;
}

enum dc_status kv_msg_end(struct dc_buf *b, struct dc_err *err)
{
    if (b->len < 6 || b->len - 4 > KV_FRAME_MAX)
        return dc_fail(err, DC_ERR_LIMIT, "message of %zu bytes exceeds %u", b->len - 4,
                       KV_FRAME_MAX);
    size_t n = b->len - 4;
    b->data[0] = (uint8_t)(n >> 24);
    b->data[1] = (uint8_t)(n >> 16);
    b->data[2] = (uint8_t)(n >> 8);
    b->data[3] = (uint8_t)n;
    return DC_OK;
}
