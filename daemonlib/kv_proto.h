/*
 * kv_proto - the keyvault request protocol: framing and strict parsing (see daemonlib/KEYVAULT.md).
 *
 * A frame is a 4-byte big-endian length followed by that many payload bytes (1..KV_FRAME_MAX).
 * A payload is: version byte (1), op or status byte, then TLV fields (tag byte, 2-byte
 * big-endian length, value) in strictly increasing tag order; only the SIGNET and USER-KEY
 * response tags may repeat. Every tag has a length range; unknown tags, missing required fields and fields
 * an op does not take are errors. Parsed fields point into the caller's payload buffer.
 *
 * SECURITY: this parser sees bytes from any process that can open the socket. It never
 * allocates, never reads outside [buf, buf+len), and reports the first problem precisely.
 */
#ifndef KV_PROTO_H
#define KV_PROTO_H

#include "dc_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KV_VERSION       1
#define KV_FRAME_MAX     65536u
#define KV_DATA_MAX      60000u /* bytes a SIGN request may carry */
#define KV_PRINCIPAL_MAX 254u
#define KV_FP_LEN        86u  /* unpadded base64 of a SHA-512 fingerprint */
#define KV_EPH_LEN       33u
#define KV_SLOT_LEN      64u
#define KV_KEK_LEN       48u  /* iv (16) || key (32), as struct dc_kek */
#define KV_SIG_LEN       64u
#define KV_HISTORY_MAX   64u  /* signets one HISTORY response may carry */
#define KV_LENGTH_LEN    8u   /* u64 big-endian message length of a signing stream */
#define KV_SSR_MAX       4096u /* bytes of a signing request (ENROLL, ROTATE) */
#define KV_BLOB_MAX      4096u /* bytes of a Cautious user's sealed key blob */

enum kv_op {
    KV_OP_SIGN = 1,
    KV_OP_KEK = 2,
    KV_OP_UNWRAP = 3,
    KV_OP_SIGNET = 4,
    KV_OP_HISTORY = 5,
    KV_OP_ACCOUNT = 6,
    /* a signing stream (daemonlib/KEYVAULT.md): BEGIN, DATA..., PASS2, the same DATA..., END */
    KV_OP_SIGN_BEGIN = 7,
    KV_OP_SIGN_DATA = 8,
    KV_OP_SIGN_PASS2 = 9,
    KV_OP_SIGN_END = 10,
    /* a user's own device through the account service (class account, ACCOUNT.md) */
    KV_OP_ENROLL = 11, /* a new account's first generation from its SSR */
    KV_OP_ROTATE = 12, /* the next generation from an SSR with a custody signature */
    KV_OP_BLOB = 13,   /* a Cautious user's sealed key blob of the current generation */
    /* moving between modes (ACCOUNT.md, "Migration") */
    KV_OP_KEYS = 14,        /* a Trustful user's private keys of every generation the vault holds */
    KV_OP_TO_PARANOID = 15, /* Trustful -> Paranoid: the device's generation, the vault's keys destroyed */
    KV_OP_TO_TRUSTFUL = 16, /* Paranoid or Cautious -> Trustful: the device's generation and its keys */
};
#define KV_OP_MAX 16

enum kv_purpose {
    KV_PURPOSE_CHUNK = 1,
    KV_PURPOSE_AUTHOR_TREE = 2,
    KV_PURPOSE_AUTHOR_FULL = 3,
    KV_PURPOSE_ORIGIN = 4,
    KV_PURPOSE_SIGNET = 5,
    KV_PURPOSE_TLS = 6,
};
#define KV_PURPOSE_MAX 6

/* Response status byte. */
enum kv_status {
    KV_OK = 0,
    KV_E_BADREQ = 1,   /* malformed, oversized or truncated request */
    KV_E_DENIED = 2,   /* peer uid not allowed for this operation */
    KV_E_NOTFOUND = 3, /* no such principal, key generation or signet */
    KV_E_MODE = 4,     /* the account's mode does not allow it (vault has no private key) */
    KV_E_PURPOSE = 5,  /* purpose not valid for this principal or key */
    KV_E_CRYPTO = 6,   /* e.g. ephemeral key not on the curve */
    KV_E_INTERNAL = 7, /* storage or system failure: retry later */
    KV_E_EXISTS = 8,   /* ENROLL: the account exists; ROTATE: a concurrent rotation */
    KV_E_CUSTODY = 9,  /* ROTATE: no valid custody signature by the current generation */
};
#define KV_STATUS_MAX 9

enum kv_tag {
    /* request fields */
    KV_T_PRINCIPAL = 0x01,
    KV_T_PURPOSE = 0x02,
    KV_T_DATA = 0x03,
    KV_T_EPH = 0x04,
    KV_T_SLOT = 0x05,
    KV_T_FP = 0x06,
    KV_T_FROM_FP = 0x07,
    KV_T_TO_FP = 0x08,
    KV_T_LENGTH = 0x09, /* SIGN-BEGIN: KV_LENGTH_LEN bytes */
    KV_T_SSR = 0x0a,    /* ENROLL, ROTATE: the signing request (binary signet) */
    KV_T_BLOB = 0x0b,   /* ENROLL, ROTATE: a Cautious user's sealed key blob */
    KV_T_NEW_MODE = 0x0c, /* ENROLL: cautious or paranoid, one byte */
    KV_T_NEW_KEYS = 0x0d, /* TO-TRUSTFUL: the new generation's signing seed || enc scalar */
    /* response fields */
    KV_T_SIG = 0x81,
    KV_T_KEK = 0x82,
    KV_T_PLAIN = 0x83,
    KV_T_SIGNET = 0x84, /* repeatable (HISTORY) */
    KV_T_EXISTS = 0x85,
    KV_T_MODE = 0x86,
    KV_T_GENERATION = 0x87,
    KV_T_MESSAGE = 0x88,
    KV_T_KEY_BLOB = 0x89, /* BLOB */
    KV_T_USER_KEY = 0x8a, /* KEYS, repeatable: u32 generation || signing seed || enc scalar */
    KV_T_MIGRATED = 0x8b, /* ACCOUNT: 1 when a Trustful account's previous generation was
                             Cautious or Paranoid (its keys are the user's only) */
};
#define KV_USER_KEYS_LEN 64u /* Ed25519 seed (32) || secp256k1 scalar (32) */

/* Account modes, as stored and as sent in KV_T_MODE. */
enum kv_mode {
    KV_MODE_TRUSTFUL = 1,
    KV_MODE_CAUTIOUS = 2,
    KV_MODE_PARANOID = 3,
};

struct kv_bytes {
    const uint8_t *p;
    size_t len;
};

struct kv_request {
    enum kv_op op;
    struct kv_bytes principal; /* printable, no spaces; absent in SIGN-DATA/-PASS2/-END */
    enum kv_purpose purpose;   /* SIGN, SIGN-BEGIN */
    struct kv_bytes data;      /* SIGN, SIGN-DATA */
    const uint8_t *eph;        /* KEK, UNWRAP: KV_EPH_LEN bytes */
    const uint8_t *slot;       /* UNWRAP: KV_SLOT_LEN bytes */
    struct kv_bytes fp;        /* optional: KEK, UNWRAP, SIGNET; KV_FP_LEN when present */
    struct kv_bytes from_fp;   /* HISTORY */
    struct kv_bytes to_fp;     /* HISTORY */
    bool has_length;           /* SIGN-BEGIN, optional */
    uint64_t length;
    struct kv_bytes ssr;       /* ENROLL, ROTATE */
    struct kv_bytes blob;      /* ENROLL, ROTATE: Cautious only */
    enum kv_mode new_mode;     /* ENROLL */
    const uint8_t *new_keys;   /* TO-TRUSTFUL: KV_USER_KEYS_LEN bytes */
};

struct kv_response {
    enum kv_status status;
    const uint8_t *sig;   /* KV_SIG_LEN */
    const uint8_t *kek;   /* KV_KEK_LEN */
    const uint8_t *plain; /* KV_SLOT_LEN */
    struct kv_bytes signets[KV_HISTORY_MAX];
    size_t nsignets;
    bool has_exists;
    bool exists;
    enum kv_mode mode; /* 0 when absent */
    bool has_generation;
    uint32_t generation;
    bool migrated; /* ACCOUNT: KV_T_MIGRATED */
    struct kv_bytes message;
    struct kv_bytes blob; /* BLOB */
    struct kv_bytes keys[KV_HISTORY_MAX]; /* KEYS: 4 + KV_USER_KEYS_LEN bytes each */
    size_t nkeys;
};

const char *kv_op_name(enum kv_op op);
/* The names of operations 1 to KV_OP_MAX in order, NULL-terminated (metric labels). */
extern const char *const *const kv_op_words;
const char *kv_purpose_name(enum kv_purpose p);
/* Parses "chunk", "author-tree"...; returns 0 when unknown. */
enum kv_purpose kv_purpose_from_name(const char *name);
const char *kv_status_name(enum kv_status st);
const char *kv_mode_name(enum kv_mode m);
enum kv_mode kv_mode_from_name(const char *name); /* 0 when unknown */

/* The payload length announced by a 4-byte frame header; DC_ERR_LIMIT when 0 or above
 * KV_FRAME_MAX. */
enum dc_status kv_frame_len(const uint8_t hdr[4], uint32_t *len, struct dc_err *err);

enum dc_status kv_request_parse(const uint8_t *buf, size_t len, struct kv_request *req,
                                struct dc_err *err);
enum dc_status kv_response_parse(const uint8_t *buf, size_t len, struct kv_response *resp,
                                 struct dc_err *err);

/* Building: kv_msg_begin writes the frame header placeholder, version and op/status byte;
 * kv_msg_add appends one field (the caller keeps tags increasing); kv_msg_end fills in the
 * length. DC_ERR_LIMIT when the frame would exceed KV_FRAME_MAX (the buffer is then unusable). */
void kv_msg_begin(struct dc_buf *b, uint8_t op_or_status);
enum dc_status kv_msg_add(struct dc_buf *b, uint8_t tag, const void *p, size_t len);
enum dc_status kv_msg_end(struct dc_buf *b, struct dc_err *err);

#endif
