/*
 * kv_server - listening socket, ppoll() event loop, per-request access control and logging.
 * See kv_server.h for the design.
 */
#include "kv_server.h"

#include "dc_config.h"
#include "kv_server_int.h"
#include "dl_log.h"
#include "kv_device.h"
#include "kv_policy.h"
#include "dl_sock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

/* ---- socket ---- */

int kv_server_listen(const struct kv_config *c, struct dc_err *err)
{
    return dl_sock_listen(c->socket, 0660, DL_SOCK_KEEP_UID,
                          c->socket_group != NULL ? c->socket_gid : DL_SOCK_KEEP_GID, 128, err);
}

/* ---- request handling ---- */

static void fp_str(const struct kv_bytes *b, char out[KV_FP_LEN + 1], const char **p)
{
    if (b->p == NULL) {
        *p = NULL;
        return;
    }
    memcpy(out, b->p, KV_FP_LEN);
    out[KV_FP_LEN] = '\0';
    *p = out;
}

static void error_response(struct dc_buf *out, enum kv_status st, const char *msg)
{
    struct dc_err ignore;
    kv_msg_begin(out, (uint8_t)st);
    size_t n = strlen(msg);
    if (n > 512)
        n = 512;
    if (n > 0)
        kv_msg_add(out, KV_T_MESSAGE, msg, n);
    kv_msg_end(out, &ignore);
}

static bool is_sign(enum kv_op op)
{
    return op == KV_OP_SIGN || op == KV_OP_SIGN_BEGIN;
}

/* The vault's domain name, read once it exists (dimectl refuses to set up a second one, so
 * it never changes under a running daemon); NULL while there is none, or while the store
 * cannot be read (err says which: DC_ERR_NOTFOUND only for "none"). */
static const char *vault_domain(struct kv_vault *v, struct dc_err *err)
{
    static char name[KV_NAME_MAX + 1];
    if (name[0] == '\0') {
        struct kv_domain d;
        if (kv_store_domain_get(v->store, &d, err) != DC_OK)
            return NULL;
        snprintf(name, sizeof(name), "%s", d.name);
        kv_domain_clear(&d);
    }
    return name;
}

void kv_stream_state_clear(struct kv_stream_state *s)
{
    kv_sign_stream_free(s->stream);
    memset(s, 0, sizeof(*s));
}

/* SIGN-DATA, SIGN-PASS2, SIGN-END: the stream's next step. Any error ends the stream. */
static void stream_step(struct kv_stream_state *ss, uid_t uid, pid_t pid,
                        const struct kv_request *r, struct dc_buf *out)
{
    struct dc_err err = {0};
    enum kv_status st;
    uint8_t sig[KV_SIG_LEN];
    if (ss == NULL || ss->stream == NULL) {
        dl_log(LOG_WARNING, "op=%s uid=%u pid=%ld result=bad-request reason=\"no signing "
               "stream in progress\"", kv_op_name(r->op), (unsigned)uid, (long)pid);
        error_response(out, KV_E_BADREQ, "no signing stream in progress");
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &ss->last);
    /* the first pass is held to the purpose's input shape as it comes (kv_policy.h); the
     * second must repeat it exactly, which the vault checks by hash */
    struct dc_err why = {0};
    switch (r->op) {
    case KV_OP_SIGN_DATA:
        st = kv_vault_stream_data(ss->stream, r->data.p, r->data.len, &err);
        if (st == KV_OK && !ss->pass2 &&
            dc_dmime_input_update(&ss->input, r->data.p, r->data.len, &why) != DC_OK)
            st = KV_E_PURPOSE;
        ss->bytes += r->data.len;
        break;
    case KV_OP_SIGN_PASS2:
        st = ss->pass2 || dc_dmime_input_final(&ss->input, &why) == DC_OK
                 ? kv_vault_stream_pass2(ss->stream, &err)
                 : KV_E_PURPOSE;
        ss->pass2 = true;
        break;
    default: st = kv_vault_stream_end(ss->stream, sig, &err); break;
    }
    if (why.msg[0] != '\0') /* the shape check's refusal, worded as kv_policy_check's */
        dc_fail(&err, why.code, "not signed: %s", why.msg);
    if (st != KV_OK) {
        dl_log(LOG_NOTICE, "op=sign-stream principal=%s purpose=%s bytes=%llu uid=%u pid=%ld "
               "result=%s reason=\"%s: %s\"", ss->shown, kv_purpose_name(ss->purpose),
               (unsigned long long)ss->bytes, (unsigned)uid, (long)pid, kv_status_name(st),
               kv_op_name(r->op), err.msg);
        kv_stream_state_clear(ss);
        error_response(out, st, err.msg);
        return;
    }
    kv_msg_begin(out, KV_OK);
    if (r->op == KV_OP_SIGN_END) {
        kv_msg_add(out, KV_T_SIG, sig, sizeof(sig));
        dl_log(LOG_INFO, "op=sign-stream principal=%s purpose=%s bytes=%llu uid=%u pid=%ld "
               "result=ok", ss->shown, kv_purpose_name(ss->purpose),
               (unsigned long long)ss->bytes, (unsigned)uid, (long)pid);
        kv_stream_state_clear(ss);
    }
    struct dc_err e2;
    kv_msg_end(out, &e2);
}

/* One request being served: what the per-operation handlers work with. Each handler adds
 * its fields to out (begun as KV_OK) and returns the status; on failure err says why. */
struct call {
    struct kv_vault *v;
    const struct kv_config *c;
    struct kv_stream_state *ss;
    const struct kv_request *r;
    const char *principal, *shown;
    const char *fp, *from, *to; /* NULL when the request has none */
    struct dc_buf *out;
    struct dc_err *err;
};

static enum kv_status op_sign(const struct call *k)
{
    uint8_t sig[KV_SIG_LEN];
    enum kv_status st = kv_vault_sign(k->v, k->principal, k->r->purpose, k->r->data.p,
                                      k->r->data.len, sig, k->err);
    if (st == KV_OK)
        kv_msg_add(k->out, KV_T_SIG, sig, sizeof(sig));
    return st;
}

static enum kv_status op_kek(const struct call *k)
{
    struct dc_kek *kek = dc_secure_alloc(sizeof(*kek));
    enum kv_status st = kv_vault_kek(k->v, k->principal, k->r->eph, k->fp, kek, k->err);
    if (st == KV_OK) {
        uint8_t *wire = dc_secure_alloc(KV_KEK_LEN); /* iv || key */
        memcpy(wire, kek->iv, DC_AES_BLOCK);
        memcpy(wire + DC_AES_BLOCK, kek->key, DC_AES_KEY_LEN);
        kv_msg_add(k->out, KV_T_KEK, wire, KV_KEK_LEN);
        dc_secure_free(wire, KV_KEK_LEN);
    }
    dc_secure_free(kek, sizeof(*kek));
    return st;
}

static enum kv_status op_unwrap(const struct call *k)
{
    uint8_t *plain = dc_secure_alloc(KV_SLOT_LEN);
    enum kv_status st =
        kv_vault_unwrap(k->v, k->principal, k->r->eph, k->r->slot, k->fp, plain, k->err);
    if (st == KV_OK)
        kv_msg_add(k->out, KV_T_PLAIN, plain, KV_SLOT_LEN);
    dc_secure_free(plain, KV_SLOT_LEN);
    return st;
}

static enum kv_status op_signet(const struct call *k)
{
    uint8_t *bin = NULL;
    size_t blen = 0;
    enum kv_status st = kv_vault_signet(k->v, k->principal, k->fp, &bin, &blen, k->err);
    if (st == KV_OK && kv_msg_add(k->out, KV_T_SIGNET, bin, blen) != DC_OK) {
        st = KV_E_INTERNAL;
        dc_fail(k->err, DC_ERR_LIMIT, "signet too large for a response");
    }
    free(bin);
    return st;
}

static enum kv_status op_history(const struct call *k)
{
    struct kv_generation *g = NULL;
    size_t n = 0;
    if (strchr(k->principal, '@') == NULL) {
        dc_fail(k->err, DC_ERR_ARG, "history needs a user address");
        return KV_E_BADREQ;
    }
    enum kv_status st = kv_vault_history(k->v, k->principal, k->from, k->to, &g, &n, k->err);
    for (size_t i = 0; st == KV_OK && i < n; i++)
        if (kv_msg_add(k->out, KV_T_SIGNET, g[i].signet, g[i].signet_len) != DC_OK) {
            st = KV_E_INTERNAL;
            dc_fail(k->err, DC_ERR_LIMIT, "history too large for one response: ask for a "
                    "shorter range");
        }
    kv_generations_free(g, n);
    return st;
}

static enum kv_status op_sign_begin(const struct call *k)
{
    struct kv_stream_state *ss = k->ss;
    if (ss == NULL) {
        dc_fail(k->err, DC_ERR_ARG, "signing streams are not available here");
        return KV_E_BADREQ;
    }
    if (ss->stream != NULL) {
        kv_stream_state_clear(ss);
        dc_fail(k->err, DC_ERR_ORDER, "a signing stream is already in progress (both are "
                "abandoned)");
        return KV_E_BADREQ;
    }
    enum kv_status st = kv_vault_stream_begin(
        k->v, k->principal, k->r->purpose, k->r->has_length ? k->r->length : UINT64_MAX,
        k->c->sign_stream_max, &ss->stream, k->err);
    if (st == KV_OK) {
        snprintf(ss->shown, sizeof(ss->shown), "%s", k->shown);
        ss->purpose = k->r->purpose;
        dc_dmime_input_init(&ss->input, kv_policy_input(k->r->purpose));
        ss->pass2 = false;
        ss->bytes = 0;
        clock_gettime(CLOCK_MONOTONIC, &ss->last);
    }
    return st;
}

static enum kv_status op_account(const struct call *k)
{
    bool exists = false;
    struct kv_user u;
    if (strchr(k->principal, '@') == NULL) {
        dc_fail(k->err, DC_ERR_ARG, "account needs a user address");
        return KV_E_BADREQ;
    }
    enum kv_status st = kv_vault_account(k->v, k->principal, &exists, &u, k->err);
    if (st == KV_OK) {
        uint8_t e = exists, m = (uint8_t)u.mode;
        kv_msg_add(k->out, KV_T_EXISTS, &e, 1);
        if (exists) {
            uint8_t g[4] = {(uint8_t)(u.generation >> 24), (uint8_t)(u.generation >> 16),
                            (uint8_t)(u.generation >> 8), (uint8_t)u.generation};
            kv_msg_add(k->out, KV_T_MODE, &m, 1);
            kv_msg_add(k->out, KV_T_GENERATION, g, 4);
            if (kv_device_migrated(k->v, &u)) {
                uint8_t one = 1;
                kv_msg_add(k->out, KV_T_MIGRATED, &one, 1);
            }
        }
    }
    return st;
}

/* ENROLL and ROTATE answer with the new user signet and its generation. */
static enum kv_status signed_reply(const struct call *k, enum kv_status st, uint8_t *signet,
                                   size_t len, uint32_t gen)
{
    uint8_t g[4] = {(uint8_t)(gen >> 24), (uint8_t)(gen >> 16), (uint8_t)(gen >> 8),
                    (uint8_t)gen};
    if (st == KV_OK && (kv_msg_add(k->out, KV_T_SIGNET, signet, len) != DC_OK ||
                        kv_msg_add(k->out, KV_T_GENERATION, g, 4) != DC_OK)) {
        st = KV_E_INTERNAL;
        dc_fail(k->err, DC_ERR_LIMIT, "signet too large for a response");
    }
    free(signet);
    return st;
}

/* ENROLL, ROTATE and the two migrations: a new generation, answered with its signet */
static enum kv_status op_generation(const struct call *k)
{
    const struct kv_request *r = k->r;
    uint8_t *signet = NULL;
    size_t len = 0;
    uint32_t gen = 0;
    enum kv_status st;
    switch (r->op) {
    case KV_OP_ENROLL:
        st = kv_device_enroll(k->v, k->principal, r->new_mode, r->ssr.p, r->ssr.len, r->blob.p,
                              r->blob.len, &signet, &len, &gen, k->err);
        break;
    case KV_OP_ROTATE:
        st = kv_device_rotate(k->v, k->principal, r->ssr.p, r->ssr.len, r->blob.p, r->blob.len,
                              &signet, &len, &gen, k->err);
        break;
    case KV_OP_TO_PARANOID:
        st = kv_device_to_paranoid(k->v, k->principal, r->ssr.p, r->ssr.len, &signet, &len,
                                   &gen, k->err);
        break;
    default: /* KV_OP_TO_TRUSTFUL */
        st = kv_device_to_trustful(k->v, k->principal, r->ssr.p, r->ssr.len, r->new_keys,
                                   &signet, &len, &gen, k->err);
        break;
    }
    return signed_reply(k, st, signet, len, gen);
}

static enum kv_status op_blob(const struct call *k)
{
    uint8_t *blob = NULL;
    size_t len = 0;
    uint32_t gen = 0;
    enum kv_status st = kv_device_blob(k->v, k->principal, &blob, &len, &gen, k->err);
    uint8_t g[4] = {(uint8_t)(gen >> 24), (uint8_t)(gen >> 16), (uint8_t)(gen >> 8),
                    (uint8_t)gen};
    if (st == KV_OK && (kv_msg_add(k->out, KV_T_GENERATION, g, 4) != DC_OK ||
                        kv_msg_add(k->out, KV_T_KEY_BLOB, blob, len) != DC_OK)) {
        st = KV_E_INTERNAL;
        dc_fail(k->err, DC_ERR_LIMIT, "key blob too large for a response");
    }
    free(blob);
    return st;
}

static enum kv_status op_keys(const struct call *k)
{
    uint8_t *keys = NULL;
    size_t n = 0;
    const size_t one = 4 + KV_USER_KEYS_LEN;
    enum kv_status st = kv_device_keys(k->v, k->principal, &keys, &n, k->err);
    for (size_t i = 0; st == KV_OK && i < n; i++)
        if (kv_msg_add(k->out, KV_T_USER_KEY, keys + i * one, one) != DC_OK) {
            st = KV_E_INTERNAL;
            dc_fail(k->err, DC_ERR_LIMIT, "keys too large for a response");
        }
    if (keys != NULL)
        dc_secure_free(keys, n * one + 1);
    return st;
}

static enum kv_status run_op(const struct call *k)
{
    switch (k->r->op) {
    case KV_OP_SIGN: return op_sign(k);
    case KV_OP_KEK: return op_kek(k);
    case KV_OP_UNWRAP: return op_unwrap(k);
    case KV_OP_SIGNET: return op_signet(k);
    case KV_OP_HISTORY: return op_history(k);
    case KV_OP_SIGN_BEGIN: return op_sign_begin(k);
    case KV_OP_ACCOUNT: return op_account(k);
    case KV_OP_ENROLL:
    case KV_OP_ROTATE:
    case KV_OP_TO_PARANOID:
    case KV_OP_TO_TRUSTFUL: return op_generation(k);
    case KV_OP_BLOB: return op_blob(k);
    case KV_OP_KEYS: return op_keys(k);
    case KV_OP_SIGN_DATA:
    case KV_OP_SIGN_PASS2:
    case KV_OP_SIGN_END:
        break; /* the stream's steps, handled before */
    }
    return KV_OK;
}

/* The access check (kv_policy_check, with the peer's class from its uid): refuses, with the
 * log line and the response, what the vault's policy does not allow this peer. */
static bool check_access(struct kv_vault *v, const struct kv_config *c,
                         const struct kv_request *r, const char *principal, const char *shown,
                         const char *purpose, uid_t uid, pid_t pid, struct dc_buf *out)
{
    struct dc_err err = {0};
    unsigned classes = kv_config_classes(c, uid);
    struct kv_ask a = {r->op, r->purpose, principal, vault_domain(v, &err), r->data.p,
                       r->data.len};
    enum kv_status st;
    if (a.domain == NULL && err.code != DC_OK && err.code != DC_ERR_NOTFOUND) {
        st = KV_E_INTERNAL; /* the store unreadable (PostgreSQL down): a tempfail, not "no domain" */
    } else {
        err = (struct dc_err){0};
        st = kv_policy_check(classes, &a, &err);
    }
    if (st == KV_OK)
        return true;
    dl_log(LOG_WARNING, "op=%s principal=%s%s uid=%u class=%s pid=%ld result=%s reason=\"%s\"",
           kv_op_name(r->op), shown, purpose, (unsigned)uid, kv_class_name(classes), (long)pid,
           kv_status_name(st), err.msg);
    error_response(out, st, err.msg);
    return false;
}

/* Ends the response: the handler's fields, or (wiped) an error response; and the log line. */
static void finish_response(const struct call *k, enum kv_status st, const char *purpose,
                            uid_t uid, pid_t pid)
{
    enum kv_op op = k->r->op;
    if (st != KV_OK) {
        dc_memzero(k->out->data, k->out->len);
        error_response(k->out, st, k->err->msg);
        dl_log(st == KV_E_INTERNAL ? LOG_ERR : LOG_NOTICE,
               "op=%s principal=%s%s uid=%u pid=%ld result=%s reason=\"%s\"", kv_op_name(op),
               k->shown, purpose, (unsigned)uid, (long)pid, kv_status_name(st), k->err->msg);
        return;
    }
    struct dc_err e2;
    kv_msg_end(k->out, &e2);
    if (op != KV_OP_SIGN_BEGIN) /* a stream is logged once, at its end */
        dl_log(LOG_INFO, "op=%s principal=%s%s uid=%u pid=%ld result=ok", kv_op_name(op),
               k->shown, purpose, (unsigned)uid, (long)pid);
}

void kv_server_handle(struct kv_vault *v, const struct kv_config *c, uid_t uid, pid_t pid,
                      struct kv_stream_state *ss, const uint8_t *req, size_t len,
                      struct dc_buf *out)
{
    struct kv_request r;
    struct dc_err err = {0};
    char principal[KV_NAME_MAX + 1] = "-";
    char shown[KV_NAME_MAX + 8];
    char fpb[KV_FP_LEN + 1], fromb[KV_FP_LEN + 1], tob[KV_FP_LEN + 1];

    if (kv_request_parse(req, len, &r, &err) != DC_OK) {
        dl_log(LOG_WARNING, "op=%s uid=%u pid=%ld result=bad-request reason=\"%s\"%s",
               r.op ? kv_op_name(r.op) : "-", (unsigned)uid, (long)pid, err.msg,
               ss && ss->stream ? " (signing stream abandoned)" : "");
        if (ss != NULL)
            kv_stream_state_clear(ss);
        error_response(out, KV_E_BADREQ, err.msg);
        return;
    }
    if (r.op == KV_OP_SIGN_DATA || r.op == KV_OP_SIGN_PASS2 || r.op == KV_OP_SIGN_END) {
        stream_step(ss, uid, pid, &r, out);
        return;
    }
    if (kv_normalize((const char *)r.principal.p, r.principal.len, principal, &err) != DC_OK) {
        dl_log(LOG_WARNING, "op=%s uid=%u pid=%ld result=bad-request reason=\"%s\"",
               kv_op_name(r.op), (unsigned)uid, (long)pid, err.msg);
        error_response(out, KV_E_BADREQ, err.msg);
        return;
    }
    dc_safe_str(principal, strlen(principal), shown, KV_NAME_MAX);
    char purpose[32] = "";
    if (is_sign(r.op))
        snprintf(purpose, sizeof(purpose), " purpose=%s", kv_purpose_name(r.purpose));
    if (!check_access(v, c, &r, principal, shown, purpose, uid, pid, out))
        return;
    struct call k = {v, c, ss, &r, principal, shown, NULL, NULL, NULL, out, &err};
    fp_str(&r.fp, fpb, &k.fp);
    fp_str(&r.from_fp, fromb, &k.from);
    fp_str(&r.to_fp, tob, &k.to);

    kv_msg_begin(out, KV_OK);
    finish_response(&k, run_op(&k), purpose, uid, pid);
}

/* ---- event loop ---- */


static volatile sig_atomic_t got_term, got_hup;

static int64_t ms_since(const struct timespec *then, const struct timespec *now)
{
    return ((int64_t)now->tv_sec - then->tv_sec) * 1000 +
           (now->tv_nsec - then->tv_nsec) / 1000000;
}

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        got_hup = 1;
    else
        got_term = 1;
}

void kv_conn_free(struct conn *c)
{
    close(c->fd);
    kv_stream_state_clear(&c->ss);
    dc_memzero(c->in, c->have);
    free(c->in);
    if (c->out.data != NULL)
        dc_memzero(c->out.data, c->out.cap);
    dc_buf_free(&c->out);
    if (c->resp.data != NULL)
        dc_memzero(c->resp.data, c->resp.cap);
    dc_buf_free(&c->resp);
    free(c);
}

static void accept_all(int lfd, struct conn ***conns, size_t *n, unsigned max)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                dl_log(LOG_WARNING, "accept: %s", strerror(errno));
            return;
        }
        struct ucred cr;
        socklen_t cl = sizeof(cr);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0) {
            dl_log(LOG_WARNING, "SO_PEERCRED: %s", strerror(errno));
            close(fd);
            continue;
        }
        if (*n >= max) {
            dl_log(LOG_WARNING, "uid=%u pid=%ld result=refused reason=\"max-clients %u "
                   "reached\"", (unsigned)cr.uid, (long)cr.pid, max);
            close(fd);
            continue;
        }
        struct conn *c = dc_xcalloc(1, sizeof(*c));
        c->fd = fd;
        c->uid = cr.uid;
        c->pid = cr.pid;
        c->in = dc_xmalloc(IN_CAP);
        dc_buf_init(&c->out);
        dc_buf_init(&c->resp);
        clock_gettime(CLOCK_MONOTONIC, &c->last);
        *conns = dc_xrealloc(*conns, (*n + 1) * sizeof(**conns));
        (*conns)[(*n)++] = c;
    }
}

/* Whether c->in holds a whole frame, or a header that kv_frame_len refuses. */
bool kv_frame_complete(const struct conn *c)
{
    if (c->have < 4)
        return false;
    uint32_t n = dc_get_be(c->in, 4);
    return n == 0 || n > KV_FRAME_MAX || c->have - 4 >= n;
}

/* Handles the first frame of c->in, which is complete (frame_complete), and drops it from
 * the buffer (wiped). */
static void conn_handle(struct conn *c, struct kv_vault *v, const struct kv_config *cfg)
{
    struct dc_err err = {0};
    uint32_t need;
    if (kv_frame_len(c->in, &need, &err) != DC_OK) {
        dl_log(LOG_WARNING, "uid=%u pid=%ld result=bad-request reason=\"%s\"",
               (unsigned)c->uid, (long)c->pid, err.msg);
        /* after the answers of the requests before it, not yet written (pipelined) */
        error_response(&c->resp, KV_E_BADREQ, err.msg);
        dc_buf_append(&c->out, c->resp.data, c->resp.len);
        c->close_after = true; /* the stream is no longer aligned */
        dc_memzero(c->in, c->have);
        c->have = 0;
        return;
    }
    /* The answer goes after those not yet written (several pipelined requests: one write). */
    kv_server_handle(v, cfg, c->uid, c->pid, &c->ss, c->in + 4, need, &c->resp);
    dc_buf_append(&c->out, c->resp.data, c->resp.len);
    dc_memzero(c->resp.data, c->resp.len);
    size_t used = 4 + (size_t)need, rest = c->have - used;
    memmove(c->in, c->in + used, rest);
    dc_memzero(c->in + rest, used);
    c->have = rest;
}

/* Reads what is available; handles a complete frame. Returns false to drop the connection. */
bool kv_conn_read(struct conn *c, struct kv_vault *v, const struct kv_config *cfg)
{
    while (!kv_frame_complete(c)) {
        ssize_t r = read(c->fd, c->in + c->have, IN_CAP - c->have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK;
        if (r == 0)
            return false; /* closed, possibly mid-frame: nothing to answer */
        c->have += (size_t)r;
    }
    conn_handle(c, v, cfg);
    return true; /* one request at a time: answer before handling the next */
}

/* Writes pending output. Returns false to drop the connection. */
bool kv_conn_write(struct conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK;
        c->out_off += (size_t)w;
    }
    dc_memzero(c->out.data, c->out.len);
    c->out.len = 0;
    c->out_off = 0;
    return !c->close_after;
}

bool kv_conn_pipelined(struct conn *cn, struct kv_vault *v, const struct kv_config *c)
{
    /* Requests a client sent before reading the answers (kv_client_sign_many) are read
     * already, and ppoll would not report them: handled now, and their answers go out
     * together, in one write (usually complete at once). */
    bool keep = true;
    while (keep && cn->out_off == 0 && cn->out.len < OUT_BATCH && !cn->close_after &&
           kv_frame_complete(cn))
        keep = kv_conn_read(cn, v, c);
    if (keep && cn->out.len > 0)
        keep = kv_conn_write(cn);
    return keep;
}

/* SIGHUP: the file is loaded and checked as -n does; refused, the running configuration stays.
 * The classes, max-clients and the limits change at once (the loop reads them per request
 * and per poll); the other options are read only at start and need a restart (logged). */
static void reload(struct kv_config *c, const char *path)
{
    struct kv_config n;
    struct dc_err err = {0};
    if (kv_config_load(path, &n, &err) != DC_OK) {
        dl_log(LOG_ERR, "reload refused, keeping the running configuration: %s", err.msg);
        return;
    }
    unsigned restart = dc_config_changes(c->tree, n.tree, DC_KEYVAULT, dl_log_change, NULL);
    c->relay_users = n.relay_users;
    c->milter_users = n.milter_users;
    c->account_users = n.account_users;
    c->max_clients = n.max_clients;
    c->idle_timeout = n.idle_timeout;
    c->sign_stream_max = n.sign_stream_max;
    c->sign_stream_timeout = n.sign_stream_timeout;
    struct cfg_t *t = c->tree; /* the file as now read: what the next reload compares with */
    c->tree = n.tree;
    n.tree = t;
    kv_config_free(&n);
    dl_log(LOG_INFO, "reload config=%s result=done restart-needed=%u", path, restart);
}

/* Milliseconds until cn has been idle too long (0: it has): sign-stream-timeout in the middle
 * of a signing stream, idle-timeout otherwise. */
static int64_t idle_left(const struct conn *cn, const struct kv_config *c,
                         const struct timespec *now)
{
    const struct timespec *since = cn->ss.stream != NULL ? &cn->ss.last : &cn->last;
    unsigned limit = cn->ss.stream != NULL ? c->sign_stream_timeout : c->idle_timeout;
    int64_t left = (int64_t)limit * 1000 - ms_since(since, now);
    return left > 0 ? left : 0;
}

static void idle_log(const struct conn *cn, const struct kv_config *c)
{
    if (cn->ss.stream != NULL)
        dl_log(LOG_NOTICE, "op=sign-stream principal=%s purpose=%s bytes=%llu uid=%u pid=%ld "
               "result=timeout reason=\"idle for %u s\"", cn->ss.shown,
               kv_purpose_name(cn->ss.purpose), (unsigned long long)cn->ss.bytes,
               (unsigned)cn->uid, (long)cn->pid, c->sign_stream_timeout);
    else
        dl_log(LOG_INFO, "uid=%u pid=%ld result=closed reason=\"idle for %u s "
               "(idle-timeout)\"", (unsigned)cn->uid, (long)cn->pid, c->idle_timeout);
}

int kv_server_run(int lfd, struct kv_vault *v, struct kv_config *c, const char *config_path)
{
    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    sigdelset(&waitmask, SIGHUP);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct conn **conns = NULL;
    size_t n = 0;
    struct pollfd *pfd = NULL;
    dl_log(LOG_INFO, "serving socket=%s database=%s max-clients=%u", c->socket, c->database,
           c->max_clients);
    while (!got_term) {
        if (got_hup) {
            got_hup = 0;
            reload(c, config_path);
        }
        pfd = dc_xrealloc(pfd, (n + 1) * sizeof(*pfd));
        pfd[0].fd = lfd;
        pfd[0].events = POLLIN;
        for (size_t i = 0; i < n; i++) {
            pfd[i + 1].fd = conns[i]->fd;
            pfd[i + 1].events = conns[i]->out.len > 0 ? POLLOUT : POLLIN;
        }
        /* the nearest deadline: idle-timeout of a connection between requests, the shorter
         * sign-stream-timeout of one in the middle of a signing stream */
        struct timespec now, tmo;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t wait_ms = -1;
        for (size_t i = 0; i < n; i++) {
            int64_t left = idle_left(conns[i], c, &now);
            if (wait_ms < 0 || left < wait_ms)
                wait_ms = left;
        }
        if (wait_ms >= 0) {
            wait_ms++; /* ms_since() rounds down: wake up just after the deadline */
            tmo.tv_sec = (time_t)(wait_ms / 1000);
            tmo.tv_nsec = (long)(wait_ms % 1000) * 1000000L;
        }
        int rc = ppoll(pfd, n + 1, wait_ms >= 0 ? &tmo : NULL, &waitmask);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            dl_log(LOG_ERR, "poll: %s", strerror(errno));
            break;
        }
        size_t live = 0;
        clock_gettime(CLOCK_MONOTONIC, &now);
        for (size_t i = 0; i < n; i++) {
            struct conn *cn = conns[i];
            short re = pfd[i + 1].revents;
            bool keep = true;
            if (re == 0 && idle_left(cn, c, &now) == 0) {
                idle_log(cn, c);
                keep = false; /* conn_free zeroizes a stream */
            } else if (re & (POLLERR | POLLNVAL))
                keep = false;
            else if (cn->out.len > 0 && (re & (POLLOUT | POLLHUP)))
                keep = kv_conn_write(cn);
            else if (re & (POLLIN | POLLHUP))
                keep = kv_conn_read(cn, v, c);
            if (re != 0)
                cn->last = now;
            if (keep)
                keep = kv_conn_pipelined(cn, v, c);
            if (keep)
                conns[live++] = cn;
            else
                kv_conn_free(cn);
        }
        n = live;
        if (pfd[0].revents & POLLIN)
            accept_all(lfd, &conns, &n, c->max_clients);
    }
    for (size_t i = 0; i < n; i++)
        kv_conn_free(conns[i]);
    free(conns);
    free(pfd);
    dl_log(LOG_INFO, "stopping");
    return 0;
}
