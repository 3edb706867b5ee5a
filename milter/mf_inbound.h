/*
 * mf_inbound - the inbound conversion: a D/MIME wrapper (application/x-dime, the D/MIME bytes
 * in base64, as dime-relayd injects it) for one local Trustful recipient is opened through the
 * keyvault (the recipient's KEK), every chunk is decrypted and verified with dc_message (the
 * author's user signet and the origin's org signet come from the relay's lookup service), and
 * the original message is rebuilt byte-exact. Nothing of the content is returned unless
 * every check passed.
 */
#ifndef MF_INBOUND_H
#define MF_INBOUND_H

#include "kv_client.h"
#include "mf_config.h"
#include "mf_policy.h"

#include <stdbool.h>

struct mf_in_result {
    bool pass;
    enum mf_event event;       /* when !pass */
    char reason[200];          /* when !pass: safe for logs and headers (no content) */
    char *author, *origin;     /* envelope Author and Origin, when known */
    char author_fp[DC_FP_B64_LEN + 1], origin_fp[DC_FP_B64_LEN + 1];
    uint8_t *mime;             /* pass: the rebuilt message */
    size_t mime_len;
};

/* Whether a Content-Type value names the wrapper. */
bool mf_wrapper_type(const char *value);

/* The D/MIME bytes of a wrapper body: base64 lines, where CR, LF, space and tab are
 * skipped. DC_ERR_FORMAT (or dc_b64_decode's error) for any other byte, bad base64 or an
 * empty body; on DC_OK *out is malloc'd (free()). */
enum dc_status mf_wrapper_decode(const uint8_t *body, size_t len, uint8_t **out,
                                 size_t *outlen, struct dc_err *err);

/* The D/MIME bytes of a wrapper body when they are a well-formed D/MIME message (its
 * structure only: no key is needed and no signature is checked), malloc'd; NULL otherwise. */
uint8_t *mf_wrapper_dmime(const uint8_t *body, size_t len, size_t *outlen);

/* Decodes the wrapper body (base64 lines) and opens it for rcpt (a bare address in the local
 * domain d). kv is a connected keyvault client. Always fills res; free with
 * mf_in_result_free. */
void mf_inbound_open(const struct mf_config *cfg, const struct mf_domain *d,
                     struct kv_client *kv, const char *rcpt, const uint8_t *body, size_t len,
                     struct mf_in_result *res);
void mf_in_result_free(struct mf_in_result *res);

/* Whether the From: field of the message mime names addr (case-insensitive). */
bool mf_from_names(const uint8_t *mime, size_t len, const char *addr);

#endif
