/*
 * kv_client - a blocking client of dime-keyvaultd (one connection, one request at a time;
 * use one client per thread). Used by the milter, the relay and the tests.
 *
 * Every call returns DC_OK only for an "ok" response. Otherwise kv_client_status() tells the
 * protocol status (KV_E_DENIED...), and err carries the daemon's message; transport and
 * framing problems give DC_ERR_IO / DC_ERR_FORMAT with status KV_E_INTERNAL.
 */
#ifndef KV_CLIENT_H
#define KV_CLIENT_H

#include "dc_crypto.h"
#include "dc_signet.h"
#include "dl_metrics.h"
#include "kv_proto.h"

struct kv_client;

/* Bound, in milliseconds, on the wait for the vault: to accept the connection (its listen
 * queue is full) and for each later read or write, so a vault that hangs fails the request
 * with "keyvault read: no progress within 10000 ms" instead of holding the caller forever.
 * The vault answers a request in milliseconds; a signing stream is bounded per frame. */
#define KV_CLIENT_TIMEOUT_MS 10000

enum dc_status kv_client_connect(const char *path, struct kv_client **out, struct dc_err *err);
void kv_client_close(struct kv_client *c);
enum kv_status kv_client_status(const struct kv_client *c);
/* Whether the last kv_client_account() answer said the account became Trustful from
 * Cautious or Paranoid at its current generation (ACCOUNT.md, "Migration"): mail sealed to
 * its earlier generations opens only on the user's device. */
bool kv_client_migrated(const struct kv_client *c);

/*
 * Whether the failure s of the last call on c means the keyvault is out of service (answer
 * with a temporary failure, retry later) rather than a refusal for this principal, key or
 * message: a transport failure (DC_ERR_IO; framing errors leave KV_E_INTERNAL), KV_E_INTERNAL
 * (the vault's storage or system) or KV_E_DENIED (this process is not allowed: a setup fault,
 * never the message's). The one classification used by the milter and the relay.
 */
bool kv_client_outage(const struct kv_client *c, enum dc_status s);

/* Every request this process sent the keyvault, by operation and result, counted with
 * relaxed atomics (for a daemon's metrics, dl_metrics.h): the cell of operation op (1 to
 * KV_OP_MAX) and result r is kv_client_counts[(op - 1) * KV_RESULTS + r]. ok: answered ok;
 * refused: the vault answered with an error status; timeout: no progress within
 * KV_CLIENT_TIMEOUT_MS; failed: any other transport or framing failure. */
enum kv_result { KV_RES_OK, KV_RES_REFUSED, KV_RES_FAILED, KV_RES_TIMEOUT, KV_RESULTS };
extern const char *const kv_result_words[]; /* "ok", "refused"..., NULL-terminated */
extern _Atomic uint64_t kv_client_counts[KV_OP_MAX * KV_RESULTS];
/* The metric family of those counts (labels op and result) under a daemon's name. */
struct dl_metric kv_client_metric(const char *name);

/* The connected socket (for tests that watch the daemon close it). */
int kv_client_fd(const struct kv_client *c);

/* The payload of the last response (valid until the next call), for diagnostics. */
void kv_client_last_response(const struct kv_client *c, const uint8_t **p, size_t *len);

/* Sends raw bytes (for tests of malformed input) and reads one response frame. Every request
 * goes through here: a used connection the vault has closed (idle-timeout, restart) is
 * replaced first, and a single request the vault closed the connection on before answering
 * is sent once more on a new one (not a signing stream's later frames, not a timeout). */
enum dc_status kv_client_raw(struct kv_client *c, const uint8_t *bytes, size_t len,
                             struct kv_response *resp, struct dc_err *err);

enum dc_status kv_client_sign(struct kv_client *c, const char *principal,
                              enum kv_purpose purpose, const uint8_t *msg, size_t len,
                              uint8_t sig[KV_SIG_LEN], struct dc_err *err);
/* n SIGN requests of one principal and purpose sent together (one write; the vault answers
 * them in order), for the small chunk signatures of a message: sigs[i] signs msgs[i], each at
 * most KV_DATA_MAX bytes. The first failure is the result (and the status); every answer is
 * read, so the connection stays usable. */
enum dc_status kv_client_sign_many(struct kv_client *c, const char *principal,
                                   enum kv_purpose purpose, size_t n, const uint8_t *const *msgs,
                                   const size_t *lens, uint8_t (*const *sigs)[KV_SIG_LEN],
                                   struct dc_err *err);
/* A signing stream (daemonlib/KEYVAULT.md): the message comes from feed, which is called exactly twice
 * and must give the same bytes both times; it goes out in SIGN-DATA frames of up to
 * KV_DATA_MAX bytes, so client memory stays bounded whatever the message size. length is the
 * message length when known (announced to the vault, which then refuses a too-large message
 * before any data), else UINT64_MAX. The signature equals kv_client_sign's over the whole
 * message. */
enum dc_status kv_client_sign_stream(struct kv_client *c, const char *principal,
                                     enum kv_purpose purpose, uint64_t length,
                                     dc_ed25519_feed feed, void *feed_ctx,
                                     uint8_t sig[KV_SIG_LEN], struct dc_err *err);
/* fp may be NULL (current key). */
enum dc_status kv_client_kek(struct kv_client *c, const char *principal,
                             const uint8_t eph[KV_EPH_LEN], const char *fp, struct dc_kek *kek,
                             struct dc_err *err);
enum dc_status kv_client_unwrap(struct kv_client *c, const char *principal,
                                const uint8_t eph[KV_EPH_LEN], const uint8_t slot[KV_SLOT_LEN],
                                const char *fp, uint8_t plain[KV_SLOT_LEN], struct dc_err *err);
enum dc_status kv_client_signet(struct kv_client *c, const char *principal, const char *fp,
                                struct dc_signet **out, struct dc_err *err);
/* from/to may be NULL; *out is an array of n signets (free each, then the array). */
enum dc_status kv_client_history(struct kv_client *c, const char *user, const char *from,
                                 const char *to, struct dc_signet ***out, size_t *n,
                                 struct dc_err *err);
enum dc_status kv_client_account(struct kv_client *c, const char *user, bool *exists,
                                 enum kv_mode *mode, uint32_t *generation, struct dc_err *err);
/* The account service's requests (class account, ACCOUNT.md): a new Cautious or Paranoid
 * account from its SSR (blob: Cautious only, else NULL), the next generation from an SSR
 * with a custody signature, and a Cautious user's sealed key blob. *signet and *blob are
 * malloc'd copies; *gen is the generation they belong to. */
enum dc_status kv_client_enroll(struct kv_client *c, const char *user, enum kv_mode mode,
                                const uint8_t *ssr, size_t ssrlen, const uint8_t *blob,
                                size_t bloblen, uint8_t **signet, size_t *len, uint32_t *gen,
                                struct dc_err *err);
enum dc_status kv_client_rotate(struct kv_client *c, const char *user, const uint8_t *ssr,
                                size_t ssrlen, const uint8_t *blob, size_t bloblen,
                                uint8_t **signet, size_t *len, uint32_t *gen,
                                struct dc_err *err);
enum dc_status kv_client_blob(struct kv_client *c, const char *user, uint8_t **blob,
                              size_t *len, uint32_t *gen, struct dc_err *err);
/* Migration (ACCOUNT.md): a Trustful user's private keys, every generation the vault holds,
 * oldest first, each 4 bytes of generation (big-endian) and KV_USER_KEYS_LEN of keys, in
 * *keys (dc_secure_alloc'd, *n entries of 4 + KV_USER_KEYS_LEN bytes; free with
 * dc_secure_free(*keys, *n * (4 + KV_USER_KEYS_LEN))). */
enum dc_status kv_client_keys(struct kv_client *c, const char *user, uint8_t **keys, size_t *n,
                              struct dc_err *err);
/* Trustful -> Paranoid from the device's SSR (custody by the current key); Paranoid or
 * Cautious -> Trustful from the device's SSR and the new generation's keys. */
enum dc_status kv_client_to_paranoid(struct kv_client *c, const char *user, const uint8_t *ssr,
                                     size_t ssrlen, uint8_t **signet, size_t *len,
                                     uint32_t *gen, struct dc_err *err);
enum dc_status kv_client_to_trustful(struct kv_client *c, const char *user, const uint8_t *ssr,
                                     size_t ssrlen, const uint8_t keys[KV_USER_KEYS_LEN],
                                     uint8_t **signet, size_t *len, uint32_t *gen,
                                     struct dc_err *err);

/*
 * Connections kept between requests, for a service whose worker threads each need one
 * connection at a time: a worker takes one (an idle kept one, else a new one) for its job and
 * gives it back afterwards. Thread-safe. A kept connection the vault has closed meanwhile (its
 * idle-timeout, a restart) is noticed when it is taken and replaced by a new one, so neither
 * costs a failed request (any kv_client does the same before a request, see kv_client_raw);
 * one given back after an outage (kv_client_outage) is closed.
 */
struct kv_keep;
/* At most max_idle connections wait (0: none are kept). */
struct kv_keep *kv_keep_new(const char *path, unsigned max_idle);
enum dc_status kv_keep_take(struct kv_keep *k, struct kv_client **out, struct dc_err *err);
/* c may be NULL. */
void kv_keep_give(struct kv_keep *k, struct kv_client *c);
void kv_keep_free(struct kv_keep *k);

/* Remote signer and KEK source: ctx is a struct kv_remote that must outlive their use. The
 * derive function has the signature of struct dc_kek_source (dc_dmime.h). */
struct kv_remote {
    struct kv_client *client;
    const char *principal;
    enum kv_purpose purpose; /* for the signer */
    const char *fp;          /* KEK: the generation with this signet fingerprint (NULL: current) */
};
/* Messages longer than one SIGN request carries (KV_DATA_MAX) go through a signing stream,
 * so the result is the same signature whatever the length. */
enum dc_status kv_remote_sign(void *ctx, const uint8_t *msg, size_t len,
                              uint8_t sig[DC_ED25519_SIG_LEN], struct dc_err *err);
/* The sign_many method of struct dc_signer over kv_client_sign_many (one by one through
 * kv_remote_sign when a message is larger than one request carries). */
enum dc_status kv_remote_sign_many(void *ctx, size_t n, const uint8_t *const *msgs,
                                   const size_t *lens,
                                   uint8_t (*const *sigs)[DC_ED25519_SIG_LEN],
                                   struct dc_err *err);
/* The stream method of struct dc_signer over kv_client_sign_stream. */
enum dc_status kv_remote_sign_stream(void *ctx, dc_ed25519_feed feed, void *feed_ctx,
                                     uint8_t sig[DC_ED25519_SIG_LEN], struct dc_err *err);
/* A signer through the vault: sign = kv_remote_sign, sign_stream = kv_remote_sign_stream,
 * sign_many = kv_remote_sign_many, ctx = r; pub is the signing key of the principal's signet
 * (needed by callers that embed it). For a user, r->purpose follows what the D/MIME codec
 * says each signature covers (dc_signer_input: chunk, author-tree, author-full), so one
 * signer makes all of an author's signatures. */
void kv_remote_signer(struct dc_signer *s, struct kv_remote *r,
                      const uint8_t pub[DC_ED25519_PUB_LEN]);
enum dc_status kv_remote_kek(void *ctx, const uint8_t eph[DC_SECP_PUB_LEN], struct dc_kek *out,
                             struct dc_err *err);

#endif
