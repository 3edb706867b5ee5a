/*
 * kv_client - blocking keyvault client over the Unix socket. See kv_client.h.
 */
#include "kv_client.h"
#include "dc_dmime.h"
#include "dl_sock.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct kv_client {
    int fd;
    char *path;  /* for the one reconnection after the vault closed a kept connection */
    bool served; /* a request was answered on fd: the vault may close it as idle */
    long answered_ms; /* CLOCK_MONOTONIC, of the last answer on fd */
    struct dc_buf req;
    uint8_t *resp; /* last response payload */
    size_t resplen;
    enum kv_status status;
    bool migrated; /* the last ACCOUNT answer's KV_T_MIGRATED */
};

static long mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

enum dc_status kv_client_connect(const char *path, struct kv_client **out, struct dc_err *err)
{
    int fd = dl_sock_connect("keyvault", path, KV_CLIENT_TIMEOUT_MS, KV_CLIENT_TIMEOUT_MS, err);
    if (fd < 0)
        return err != NULL ? err->code : DC_ERR_IO;
    struct kv_client *c = dc_xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->path = dc_xstrdup(path);
    dc_buf_init(&c->req);
    *out = c;
    return DC_OK;
}

void kv_client_close(struct kv_client *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->path);
    dc_buf_free(&c->req);
    if (c->resp != NULL)
        dc_secure_free(c->resp, c->resplen);
    free(c);
}

enum kv_status kv_client_status(const struct kv_client *c)
{
    return c->status;
}

bool kv_client_migrated(const struct kv_client *c)
{
    return c->migrated;
}

bool kv_client_outage(const struct kv_client *c, enum dc_status s)
{
    return s == DC_ERR_IO || c->status == KV_E_INTERNAL || c->status == KV_E_DENIED;
}

int kv_client_fd(const struct kv_client *c)
{
    return c->fd;
}

void kv_client_last_response(const struct kv_client *c, const uint8_t **p, size_t *len)
{
    *p = c->resp;
    *len = c->resp ? c->resplen : 0;
}

static enum dc_status write_all(int fd, const uint8_t *p, size_t n, struct dc_err *err)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return dl_sock_io_error(err, "keyvault", "write", KV_CLIENT_TIMEOUT_MS);
        p += w;
        n -= (size_t)w;
    }
    return DC_OK;
}

static enum dc_status read_all(int fd, uint8_t *p, size_t n, struct dc_err *err)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return dl_sock_io_error(err, "keyvault", "read", KV_CLIENT_TIMEOUT_MS);
        if (r == 0)
            return dc_fail(err, DC_ERR_IO, "keyvault closed the connection");
        p += r;
        n -= (size_t)r;
    }
    return DC_OK;
}

/* Reads one response frame into c->resp and parses it; an error status becomes an error
 * naming it. *framed (may be NULL) tells whether a whole frame was read, i.e. whether the
 * connection is still in step with the vault. */
static enum dc_status read_response(struct kv_client *c, struct kv_response *resp,
                                    bool *framed, struct dc_err *err)
{
    if (framed != NULL)
        *framed = false;
    uint8_t hdr[4];
    uint32_t n;
    c->status = KV_E_INTERNAL;
    if (c->resp != NULL) {
        dc_secure_free(c->resp, c->resplen);
        c->resp = NULL;
    }
    enum dc_status s = read_all(c->fd, hdr, 4, err);
    if (s == DC_OK)
        s = kv_frame_len(hdr, &n, err);
    if (s != DC_OK)
        return s;
    /* responses may carry a KEK or a slot plaintext: keep them in secure memory */
    c->resp = dc_secure_alloc(n);
    c->resplen = n;
    if ((s = read_all(c->fd, c->resp, n, err)) != DC_OK)
        return s;
    if (framed != NULL)
        *framed = true;
    if ((s = kv_response_parse(c->resp, n, resp, err)) != DC_OK)
        return s;
    c->served = true;
    c->answered_ms = mono_ms();
    c->status = resp->status;
    if (resp->status != KV_OK) {
        char msg[200];
        return dc_fail(err, resp->status == KV_E_NOTFOUND ? DC_ERR_NOTFOUND : DC_ERR_ARG,
                       "keyvault: %s: %s", kv_status_name(resp->status),
                       resp->message.len ? dc_safe_str(resp->message.p, resp->message.len, msg,
                                                       190)
                                         : "no reason given");
    }
    return DC_OK;
}

/* Between requests the vault sends nothing: a readable socket means it closed the
 * connection (or broke the protocol), and the connection is of no further use. */
static bool quiet(const struct kv_client *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    return poll(&p, 1, 0) == 0;
}

/* Replaces c's connection by a new one to the same socket. */
static enum dc_status reconnect(struct kv_client *c, struct dc_err *err)
{
    int fd = dl_sock_connect("keyvault", c->path, KV_CLIENT_TIMEOUT_MS, KV_CLIENT_TIMEOUT_MS,
                             err);
    if (fd < 0)
        return err != NULL ? err->code : DC_ERR_IO;
    close(c->fd);
    c->fd = fd;
    c->served = false;
    return DC_OK;
}

/* Before a request that may start on a new connection: a used connection the vault has
 * closed meanwhile (its idle-timeout, a restart) is replaced. The vault's idle-timeout is at
 * least 1 s, so a connection answered less than half a second ago is not polled: the
 * requests of one message follow each other closely, and each poll was a system call on
 * the hot path. A restart in that half second is what the resend of kv_client_raw covers. */
static enum dc_status fresh_if_closed(struct kv_client *c, struct dc_err *err)
{
    if (!c->served || mono_ms() - c->answered_ms < 500)
        return DC_OK;
    return quiet(c) ? DC_OK : reconnect(c, err);
}

/* Whether request bytes continue a signing stream (which a new connection does not have). */
static bool stream_step(const uint8_t *bytes, size_t len)
{
    uint8_t op = len > 5 ? bytes[5] : 0;
    return op == KV_OP_SIGN_DATA || op == KV_OP_SIGN_PASS2 || op == KV_OP_SIGN_END;
}

/* A used connection the vault closed is replaced before the request, and, when the vault
 * closes it just as the request goes out (write refused, or the end of the stream instead
 * of an answer), the request is sent once more on a new connection: every single-frame
 * request is idempotent. A timeout is not retried, nor a signing stream's later frames. */
static enum dc_status raw(struct kv_client *c, const uint8_t *bytes, size_t len,
                          struct kv_response *resp, struct dc_err *err)
{
    c->status = KV_E_INTERNAL;
    bool step = stream_step(bytes, len);
    enum dc_status s = step ? DC_OK : fresh_if_closed(c, err);
    for (int attempt = 0; s == DC_OK; attempt++) {
        bool used = c->served, framed = false;
        errno = 0;
        s = write_all(c->fd, bytes, len, err);
        if (s == DC_OK)
            s = read_response(c, resp, &framed, err);
        bool closed = s == DC_ERR_IO && !framed &&
                      (errno == 0 || errno == EPIPE || errno == ECONNRESET);
        if (!closed || attempt > 0 || !used || step)
            return s;
        s = reconnect(c, err);
    }
    return s;
}

const char *const kv_result_words[] = {"ok", "refused", "failed", "timeout", NULL};
_Atomic uint64_t kv_client_counts[KV_OP_MAX * KV_RESULTS];

struct dl_metric kv_client_metric(const char *name)
{
    return (struct dl_metric){.name = name,
                              .help = "Requests to the keyvault by operation and result.",
                              .type = DL_METRIC_COUNTER,
                              .label = {"op", "result"},
                              .values = {kv_op_words, kv_result_words},
                              .cells = kv_client_counts};
}

enum dc_status kv_client_raw(struct kv_client *c, const uint8_t *bytes, size_t len,
                             struct kv_response *resp, struct dc_err *err)
{
    enum dc_status s = raw(c, bytes, len, resp, err);
    int e = errno;
    uint8_t op = len > 5 ? bytes[5] : 0;
    enum kv_result r = s == DC_OK                                    ? KV_RES_OK
                       : c->status != KV_E_INTERNAL                  ? KV_RES_REFUSED
                       : s == DC_ERR_IO && (e == EAGAIN || e == EWOULDBLOCK) ? KV_RES_TIMEOUT
                                                                     : KV_RES_FAILED;
    if (op >= 1 && op <= KV_OP_MAX)
        atomic_fetch_add_explicit(&kv_client_counts[(op - 1) * KV_RESULTS + r], 1,
                                  memory_order_relaxed);
    errno = e;
    return s;
}

static enum dc_status call(struct kv_client *c, struct kv_response *resp, struct dc_err *err)
{
    enum dc_status s = kv_msg_end(&c->req, err);
    if (s != DC_OK)
        return s;
    s = kv_client_raw(c, c->req.data, c->req.len, resp, err);
    dc_memzero(c->req.data, c->req.len);
    return s;
}

static enum dc_status add(struct kv_client *c, uint8_t tag, const void *p, size_t n,
                          struct dc_err *err)
{
    if (kv_msg_add(&c->req, tag, p, n) != DC_OK)
        return dc_fail(err, DC_ERR_LIMIT, "request too large");
    return DC_OK;
}

static enum dc_status begin(struct kv_client *c, enum kv_op op, const char *principal,
                            struct dc_err *err)
{
    kv_msg_begin(&c->req, (uint8_t)op);
    return add(c, KV_T_PRINCIPAL, principal, strlen(principal), err);
}

static enum dc_status missing(const void *p, const char *what, struct dc_err *err)
{
    return p ? DC_OK : dc_fail(err, DC_ERR_FORMAT, "keyvault response lacks the %s", what);
}

enum dc_status kv_client_sign(struct kv_client *c, const char *principal,
                              enum kv_purpose purpose, const uint8_t *msg, size_t len,
                              uint8_t sig[KV_SIG_LEN], struct dc_err *err)
{
    struct kv_response r;
    uint8_t p = (uint8_t)purpose;
    enum dc_status s = begin(c, KV_OP_SIGN, principal, err);
    if (s == DC_OK)
        s = add(c, KV_T_PURPOSE, &p, 1, err);
    if (s == DC_OK)
        s = add(c, KV_T_DATA, msg, len, err);
    if (s == DC_OK)
        s = call(c, &r, err);
    if (s == DC_OK && (s = missing(r.sig, "signature", err)) == DC_OK)
        memcpy(sig, r.sig, KV_SIG_LEN);
    return s;
}

enum dc_status kv_client_sign_many(struct kv_client *c, const char *principal,
                                   enum kv_purpose purpose, size_t n, const uint8_t *const *msgs,
                                   const size_t *lens, uint8_t (*const *sigs)[KV_SIG_LEN],
                                   struct dc_err *err)
{
    /* All n requests in one buffer and one write (the vault handles them in turn and answers
     * them together); then the n answers. */
    struct dc_buf all;
    dc_buf_init(&all);
    uint8_t p = (uint8_t)purpose;
    enum dc_status s = DC_OK;
    for (size_t i = 0; i < n && s == DC_OK; i++) {
        if (lens[i] > KV_DATA_MAX)
            s = dc_fail(err, DC_ERR_LIMIT, "keyvault: %zu bytes to sign in one request, at "
                        "most %u", lens[i], KV_DATA_MAX);
        if (s == DC_OK)
            s = begin(c, KV_OP_SIGN, principal, err);
        if (s == DC_OK)
            s = add(c, KV_T_PURPOSE, &p, 1, err);
        if (s == DC_OK)
            s = add(c, KV_T_DATA, msgs[i], lens[i], err);
        if (s == DC_OK)
            s = kv_msg_end(&c->req, err);
        if (s == DC_OK)
            dc_buf_append(&all, c->req.data, c->req.len);
        dc_memzero(c->req.data, c->req.len);
    }
    if (s == DC_OK) {
        c->status = KV_E_INTERNAL;
        s = fresh_if_closed(c, err);
    }
    if (s == DC_OK)
        s = write_all(c->fd, all.data, all.len, err);
    if (all.data != NULL)
        dc_memzero(all.data, all.len);
    dc_buf_free(&all);
    if (s != DC_OK)
        return s;
    /* Every request gets its answer, in order. All are read, so that the connection stays in
     * step for the next request, and the first failure is the result. */
    enum dc_status first = DC_OK;
    enum kv_status first_status = KV_OK;
    for (size_t i = 0; i < n; i++) {
        struct kv_response r;
        bool framed;
        struct dc_err *e = first == DC_OK ? err : NULL;
        enum dc_status si = read_response(c, &r, &framed, e);
        if (si == DC_OK && (si = missing(r.sig, "signature", e)) == DC_OK) {
            memcpy(*sigs[i], r.sig, KV_SIG_LEN);
            continue;
        }
        if (first == DC_OK) {
            first = si;
            first_status = c->status;
        }
        if (!framed) { /* out of step: later requests on it fail rather than misread */
            shutdown(c->fd, SHUT_RDWR);
            break;
        }
    }
    c->status = first_status;
    return first;
}

/* The feed's sink: fills buf and sends a SIGN-DATA frame whenever it is full. update()
 * cannot fail, so the first error is kept and the rest of the pass skipped. */
struct stream_out {
    struct kv_client *c;
    uint8_t *buf; /* KV_DATA_MAX */
    size_t n;
    enum dc_status st;
    struct dc_err *err;
};

static enum dc_status send_data(struct stream_out *o)
{
    struct kv_response r;
    kv_msg_begin(&o->c->req, KV_OP_SIGN_DATA);
    enum dc_status s = add(o->c, KV_T_DATA, o->buf, o->n, o->err);
    if (s == DC_OK)
        s = call(o->c, &r, o->err);
    dc_memzero(o->buf, o->n);
    o->n = 0;
    return s;
}

static void stream_update(void *h, const void *p, size_t n)
{
    struct stream_out *o = h;
    const uint8_t *b = p;
    while (n > 0 && o->st == DC_OK) {
        size_t take = KV_DATA_MAX - o->n < n ? KV_DATA_MAX - o->n : n;
        memcpy(o->buf + o->n, b, take);
        o->n += take;
        b += take;
        n -= take;
        if (o->n == KV_DATA_MAX)
            o->st = send_data(o);
    }
}

/* One pass: the feed, then what is left in the buffer. */
static enum dc_status stream_pass(struct stream_out *o, dc_ed25519_feed feed, void *feed_ctx)
{
    enum dc_status s = feed(feed_ctx, stream_update, o, o->err);
    if (s == DC_OK)
        s = o->st;
    else if (o->st == DC_OK)
        o->st = s; /* the feed's own error: err already says why */
    if (s == DC_OK && o->n > 0)
        s = send_data(o);
    return s;
}

static enum dc_status simple(struct kv_client *c, enum kv_op op, struct kv_response *r,
                             struct dc_err *err)
{
    kv_msg_begin(&c->req, (uint8_t)op);
    return call(c, r, err);
}

enum dc_status kv_client_sign_stream(struct kv_client *c, const char *principal,
                                     enum kv_purpose purpose, uint64_t length,
                                     dc_ed25519_feed feed, void *feed_ctx,
                                     uint8_t sig[KV_SIG_LEN], struct dc_err *err)
{
    struct kv_response r;
    uint8_t p = (uint8_t)purpose, len8[KV_LENGTH_LEN];
    for (unsigned i = 0; i < KV_LENGTH_LEN; i++)
        len8[i] = (uint8_t)(length >> (56 - 8 * i));
    enum dc_status s = begin(c, KV_OP_SIGN_BEGIN, principal, err);
    if (s == DC_OK)
        s = add(c, KV_T_PURPOSE, &p, 1, err);
    if (s == DC_OK && length != UINT64_MAX)
        s = add(c, KV_T_LENGTH, len8, sizeof(len8), err);
    if (s == DC_OK)
        s = call(c, &r, err);
    if (s != DC_OK)
        return s;
    struct stream_out o = {c, dc_xmalloc(KV_DATA_MAX), 0, DC_OK, err};
    s = stream_pass(&o, feed, feed_ctx);
    if (s == DC_OK)
        s = simple(c, KV_OP_SIGN_PASS2, &r, err);
    if (s == DC_OK)
        s = stream_pass(&o, feed, feed_ctx);
    if (s == DC_OK)
        s = simple(c, KV_OP_SIGN_END, &r, err);
    if (s == DC_OK && (s = missing(r.sig, "signature", err)) == DC_OK)
        memcpy(sig, r.sig, KV_SIG_LEN);
    dc_memzero(o.buf, KV_DATA_MAX);
    free(o.buf);
    if (s != DC_OK && c->status == KV_OK) {
        /* the failure is ours (the feed) while the vault holds an unfinished stream: end it
         * with a frame it must refuse, so the connection can be used again */
        struct dc_err ignore = {0};
        (void)simple(c, KV_OP_SIGN_END, &r, &ignore);
        if (c->status != KV_E_INTERNAL)
            c->status = KV_E_INTERNAL;
    }
    return s;
}

static enum dc_status eph_fp(struct kv_client *c, enum kv_op op, const char *principal,
                             const uint8_t *eph, const uint8_t *slot, const char *fp,
                             struct kv_response *r, struct dc_err *err)
{
    enum dc_status s = begin(c, op, principal, err);
    if (s == DC_OK)
        s = add(c, KV_T_EPH, eph, KV_EPH_LEN, err);
    if (s == DC_OK && slot != NULL)
        s = add(c, KV_T_SLOT, slot, KV_SLOT_LEN, err);
    if (s == DC_OK && fp != NULL)
        s = add(c, KV_T_FP, fp, strlen(fp), err);
    if (s == DC_OK)
        s = call(c, r, err);
    return s;
}

enum dc_status kv_client_kek(struct kv_client *c, const char *principal,
                             const uint8_t eph[KV_EPH_LEN], const char *fp, struct dc_kek *kek,
                             struct dc_err *err)
{
    struct kv_response r;
    enum dc_status s = eph_fp(c, KV_OP_KEK, principal, eph, NULL, fp, &r, err);
    if (s == DC_OK && (s = missing(r.kek, "KEK", err)) == DC_OK) {
        memcpy(kek->iv, r.kek, DC_AES_BLOCK);
        memcpy(kek->key, r.kek + DC_AES_BLOCK, DC_AES_KEY_LEN);
    }
    return s;
}

enum dc_status kv_client_unwrap(struct kv_client *c, const char *principal,
                                const uint8_t eph[KV_EPH_LEN], const uint8_t slot[KV_SLOT_LEN],
                                const char *fp, uint8_t plain[KV_SLOT_LEN], struct dc_err *err)
{
    struct kv_response r;
    enum dc_status s = eph_fp(c, KV_OP_UNWRAP, principal, eph, slot, fp, &r, err);
    if (s == DC_OK && (s = missing(r.plain, "slot plaintext", err)) == DC_OK)
        memcpy(plain, r.plain, KV_SLOT_LEN);
    return s;
}

enum dc_status kv_client_signet(struct kv_client *c, const char *principal, const char *fp,
                                struct dc_signet **out, struct dc_err *err)
{
    struct kv_response r;
    enum dc_status s = begin(c, KV_OP_SIGNET, principal, err);
    if (s == DC_OK && fp != NULL)
        s = add(c, KV_T_FP, fp, strlen(fp), err);
    if (s == DC_OK)
        s = call(c, &r, err);
    if (s == DC_OK && r.nsignets != 1)
        s = dc_fail(err, DC_ERR_FORMAT, "keyvault sent %zu signets, expected 1", r.nsignets);
    if (s == DC_OK)
        s = dc_signet_parse(r.signets[0].p, r.signets[0].len, out, err);
    return s;
}

enum dc_status kv_client_history(struct kv_client *c, const char *user, const char *from,
                                 const char *to, struct dc_signet ***out, size_t *n,
                                 struct dc_err *err)
{
    struct kv_response r;
    enum dc_status s = begin(c, KV_OP_HISTORY, user, err);
    if (s == DC_OK && from != NULL)
        s = add(c, KV_T_FROM_FP, from, strlen(from), err);
    if (s == DC_OK && to != NULL)
        s = add(c, KV_T_TO_FP, to, strlen(to), err);
    if (s == DC_OK)
        s = call(c, &r, err);
    if (s != DC_OK)
        return s;
    struct dc_signet **v = dc_xcalloc(r.nsignets ? r.nsignets : 1, sizeof(*v));
    for (size_t i = 0; i < r.nsignets; i++) {
        if ((s = dc_signet_parse(r.signets[i].p, r.signets[i].len, &v[i], err)) != DC_OK) {
            for (size_t j = 0; j < i; j++)
                dc_signet_free(v[j]);
            free(v);
            return s;
        }
    }
    *out = v;
    *n = r.nsignets;
    return DC_OK;
}

/* The new signet of an ENROLL or ROTATE (a copy) and its generation. */
static enum dc_status signed_answer(struct kv_client *c, uint8_t **signet, size_t *len,
                                    uint32_t *gen, struct dc_err *err)
{
    struct kv_response r;
    enum dc_status s = call(c, &r, err);
    if (s == DC_OK && (r.nsignets != 1 || !r.has_generation))
        s = dc_fail(err, DC_ERR_FORMAT, "keyvault response lacks the signet or generation");
    if (s != DC_OK)
        return s;
    *signet = dc_xmalloc(r.signets[0].len);
    memcpy(*signet, r.signets[0].p, r.signets[0].len);
    *len = r.signets[0].len;
    *gen = r.generation;
    return DC_OK;
}

enum dc_status kv_client_enroll(struct kv_client *c, const char *user, enum kv_mode mode,
                                const uint8_t *ssr, size_t ssrlen, const uint8_t *blob,
                                size_t bloblen, uint8_t **signet, size_t *len, uint32_t *gen,
                                struct dc_err *err)
{
    uint8_t m = (uint8_t)mode;
    enum dc_status s = begin(c, KV_OP_ENROLL, user, err);
    if (s == DC_OK)
        s = add(c, KV_T_SSR, ssr, ssrlen, err);
    if (s == DC_OK && blob != NULL)
        s = add(c, KV_T_BLOB, blob, bloblen, err);
    if (s == DC_OK)
        s = add(c, KV_T_NEW_MODE, &m, 1, err);
    return s == DC_OK ? signed_answer(c, signet, len, gen, err) : s;
}

enum dc_status kv_client_rotate(struct kv_client *c, const char *user, const uint8_t *ssr,
                                size_t ssrlen, const uint8_t *blob, size_t bloblen,
                                uint8_t **signet, size_t *len, uint32_t *gen,
                                struct dc_err *err)
{
    enum dc_status s = begin(c, KV_OP_ROTATE, user, err);
    if (s == DC_OK)
        s = add(c, KV_T_SSR, ssr, ssrlen, err);
    if (s == DC_OK && blob != NULL)
        s = add(c, KV_T_BLOB, blob, bloblen, err);
    return s == DC_OK ? signed_answer(c, signet, len, gen, err) : s;
}

enum dc_status kv_client_blob(struct kv_client *c, const char *user, uint8_t **blob,
                              size_t *len, uint32_t *gen, struct dc_err *err)
{
    struct kv_response r;
    enum dc_status s = begin(c, KV_OP_BLOB, user, err);
    if (s == DC_OK)
        s = call(c, &r, err);
    if (s == DC_OK && (r.blob.p == NULL || !r.has_generation))
        s = dc_fail(err, DC_ERR_FORMAT, "keyvault response lacks the key blob or generation");
    if (s != DC_OK)
        return s;
    *blob = dc_xmalloc(r.blob.len);
    memcpy(*blob, r.blob.p, r.blob.len);
    *len = r.blob.len;
    *gen = r.generation;
    return DC_OK;
}

enum dc_status kv_client_keys(struct kv_client *c, const char *user, uint8_t **keys, size_t *n,
                              struct dc_err *err)
{
    struct kv_response r;
    enum dc_status s = begin(c, KV_OP_KEYS, user, err);
    if (s == DC_OK)
        s = call(c, &r, err);
    if (s == DC_OK && r.nkeys == 0)
        s = dc_fail(err, DC_ERR_FORMAT, "keyvault response holds no key");
    if (s != DC_OK)
        return s;
    const size_t one = 4 + KV_USER_KEYS_LEN;
    *keys = dc_secure_alloc(r.nkeys * one);
    for (size_t i = 0; i < r.nkeys; i++)
        memcpy(*keys + i * one, r.keys[i].p, one);
    *n = r.nkeys;
    return DC_OK;
}

enum dc_status kv_client_to_paranoid(struct kv_client *c, const char *user, const uint8_t *ssr,
                                     size_t ssrlen, uint8_t **signet, size_t *len,
                                     uint32_t *gen, struct dc_err *err)
{
    enum dc_status s = begin(c, KV_OP_TO_PARANOID, user, err);
    if (s == DC_OK)
        s = add(c, KV_T_SSR, ssr, ssrlen, err);
    return s == DC_OK ? signed_answer(c, signet, len, gen, err) : s;
}

enum dc_status kv_client_to_trustful(struct kv_client *c, const char *user, const uint8_t *ssr,
                                     size_t ssrlen, const uint8_t keys[KV_USER_KEYS_LEN],
                                     uint8_t **signet, size_t *len, uint32_t *gen,
                                     struct dc_err *err)
{
    enum dc_status s = begin(c, KV_OP_TO_TRUSTFUL, user, err);
    if (s == DC_OK)
        s = add(c, KV_T_SSR, ssr, ssrlen, err);
    if (s == DC_OK)
        s = add(c, KV_T_NEW_KEYS, keys, KV_USER_KEYS_LEN, err);
    return s == DC_OK ? signed_answer(c, signet, len, gen, err) : s;
}

enum dc_status kv_client_account(struct kv_client *c, const char *user, bool *exists,
                                 enum kv_mode *mode, uint32_t *generation, struct dc_err *err)
{
    struct kv_response r;
    enum dc_status s = begin(c, KV_OP_ACCOUNT, user, err);
    if (s == DC_OK)
        s = call(c, &r, err);
    if (s == DC_OK && !r.has_exists)
        s = dc_fail(err, DC_ERR_FORMAT, "keyvault response lacks the exists field");
    if (s != DC_OK)
        return s;
    *exists = r.exists;
    c->migrated = r.migrated;
    if (mode != NULL)
        *mode = r.mode;
    if (generation != NULL)
        *generation = r.has_generation ? r.generation : 0;
    return DC_OK;
}

/* A message already in memory, fed to a signing stream. */
struct buf_feed {
    const uint8_t *p;
    size_t n;
};

static enum dc_status buf_feed(void *ctx, void (*update)(void *h, const void *p, size_t n),
                               void *h, struct dc_err *err)
{
    const struct buf_feed *b = ctx;
    update(h, b->p, b->n);
    return DC_OK;
}

enum dc_status kv_remote_sign(void *ctx, const uint8_t *msg, size_t len,
                              uint8_t sig[DC_ED25519_SIG_LEN], struct dc_err *err)
{
    struct kv_remote *r = ctx;
    if (len <= KV_DATA_MAX)
        return kv_client_sign(r->client, r->principal, r->purpose, msg, len, sig, err);
    /* Larger than one request carries: the same signature through a signing stream. */
    struct buf_feed b = {msg, len};
    return kv_client_sign_stream(r->client, r->principal, r->purpose, len, buf_feed, &b, sig,
                                 err);
}

enum dc_status kv_remote_sign_many(void *ctx, size_t n, const uint8_t *const *msgs,
                                   const size_t *lens,
                                   uint8_t (*const *sigs)[DC_ED25519_SIG_LEN],
                                   struct dc_err *err)
{
    struct kv_remote *r = ctx;
    for (size_t i = 0; i < n; i++)
        if (lens[i] > KV_DATA_MAX) { /* too large for a pipelined request: one by one */
            enum dc_status s = DC_OK;
            for (size_t j = 0; j < n && s == DC_OK; j++)
                s = kv_remote_sign(ctx, msgs[j], lens[j], *sigs[j], err);
            return s;
        }
    return kv_client_sign_many(r->client, r->principal, r->purpose, n, msgs, lens, sigs, err);
}

enum dc_status kv_remote_sign_stream(void *ctx, dc_ed25519_feed feed, void *feed_ctx,
                                     uint8_t sig[DC_ED25519_SIG_LEN], struct dc_err *err)
{
    struct kv_remote *r = ctx;
    return kv_client_sign_stream(r->client, r->principal, r->purpose, UINT64_MAX, feed,
                                 feed_ctx, sig, err);
}

/* The D/MIME codec names each signature's input: a user's signer asks for the matching
 * author purpose (the vault refuses a purpose over data of another shape); the
 * organization's keeps origin, its only purpose over the socket. */
static void kv_remote_input(void *ctx, int kind)
{
    struct kv_remote *r = ctx;
    if (r->purpose == KV_PURPOSE_ORIGIN)
        return;
    switch ((enum dc_dmime_input)kind) {
    case DC_DMIME_IN_CHUNK: r->purpose = KV_PURPOSE_CHUNK; break;
    case DC_DMIME_IN_TREE: r->purpose = KV_PURPOSE_AUTHOR_TREE; break;
    case DC_DMIME_IN_AUTHOR_FULL: r->purpose = KV_PURPOSE_AUTHOR_FULL; break;
    case DC_DMIME_IN_ORIGIN: break;
    }
}

void kv_remote_signer(struct dc_signer *s, struct kv_remote *r,
                      const uint8_t pub[DC_ED25519_PUB_LEN])
{
    memset(s, 0, sizeof(*s));
    s->sign = kv_remote_sign;
    s->sign_stream = kv_remote_sign_stream;
    s->sign_many = kv_remote_sign_many;
    s->input = kv_remote_input;
    s->ctx = r;
    if (pub != NULL)
        memcpy(s->pub, pub, DC_ED25519_PUB_LEN);
}

enum dc_status kv_remote_kek(void *ctx, const uint8_t eph[DC_SECP_PUB_LEN], struct dc_kek *out,
                             struct dc_err *err)
{
    struct kv_remote *r = ctx;
    return kv_client_kek(r->client, r->principal, eph, r->fp, out, err);
}

/* ---- kept connections ---- */

struct kv_keep {
    char *path;
    pthread_mutex_t mu;
    unsigned max_idle, nidle;
    struct kv_client **idle;
};

struct kv_keep *kv_keep_new(const char *path, unsigned max_idle)
{
    struct kv_keep *k = dc_xcalloc(1, sizeof(*k));
    k->path = dc_xstrdup(path);
    k->max_idle = max_idle;
    k->idle = dc_xcalloc(max_idle ? max_idle : 1, sizeof(*k->idle));
    pthread_mutex_init(&k->mu, NULL);
    return k;
}

enum dc_status kv_keep_take(struct kv_keep *k, struct kv_client **out, struct dc_err *err)
{
    for (;;) {
        pthread_mutex_lock(&k->mu);
        struct kv_client *c = k->nidle > 0 ? k->idle[--k->nidle] : NULL;
        pthread_mutex_unlock(&k->mu);
        if (c == NULL)
            break;
        if (quiet(c)) {
            *out = c;
            return DC_OK;
        }
        kv_client_close(c);
    }
    return kv_client_connect(k->path, out, err);
}

void kv_keep_give(struct kv_keep *k, struct kv_client *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&k->mu);
    bool keep = k->nidle < k->max_idle && !kv_client_outage(c, DC_OK);
    if (keep)
        k->idle[k->nidle++] = c;
    pthread_mutex_unlock(&k->mu);
    if (!keep)
        kv_client_close(c);
}

void kv_keep_free(struct kv_keep *k)
{
    if (k == NULL)
        return;
    for (unsigned i = 0; i < k->nidle; i++)
        kv_client_close(k->idle[i]);
    pthread_mutex_destroy(&k->mu);
    free(k->idle);
    free(k->path);
    free(k);
}
