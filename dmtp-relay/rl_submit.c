/*
 * rl_submit - the submission service. See rl_submit.h and SUBMIT.md.
 */
#include "rl_submit.h"
#include "rl_metrics.h"
#include "dl_log.h"

#include "dc_dmime.h"
#include "dc_signet.h"
#include "kv_client.h"
#include "rl_queue.h"
#include "submit_client.h"
#include "rl_workers.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_IDLE_MS 30000
/* a submission thread with nothing to do for this long ends */
#define WORKER_IDLE_MS 10000

struct rl_submitd {
    const struct rl_config *cfg;
    int lfd;
    pthread_t acceptor;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned running;
    struct rl_workers *pool; /* threads kept between submissions */
    struct kv_keep *keep;    /* and their keyvault connections */
    atomic_int stop; /* read by the acceptor without the lock */
    void (*on_commit)(void *);
    void *ctx;
};

/* ---- the origin step ---- */

static int kv_code(struct kv_client *kv, enum dc_status s)
{
    return kv_client_outage(kv, s) ? 451 : 554;
}

/* The signet of name in *slot (fp: the generation with that fingerprint, NULL: the current
 * one), from the keyvault unless *slot already is that one: have holds "name fp". */
static enum dc_status signet_of(struct kv_client *kv, const char *name, const char *fp,
                                char *have, size_t cap, struct dc_signet **slot,
                                struct dc_err *e)
{
    char want[SUBMIT_ADDR_MAX + DC_FP_B64_LEN + 3];
    if (snprintf(want, sizeof(want), "%s %s", name, fp ? fp : "") >= (int)sizeof(want) ||
        strlen(want) >= cap)
        return dc_fail(e, DC_ERR_ARG, "name too long");
    if (*slot != NULL && strcmp(have, want) == 0)
        return DC_OK;
    dc_signet_free(*slot);
    *slot = NULL;
    enum dc_status s = kv_client_signet(kv, name, fp, slot, e);
    if (s == DC_OK)
        memcpy(have, want, strlen(want) + 1);
    return s;
}

void rl_origin_signets_free(struct rl_origin_signets *sg)
{
    dc_signet_free(sg->author);
    dc_signet_free(sg->origin);
    memset(sg, 0, sizeof(*sg));
}

enum dc_status rl_origin_sign(struct kv_client *kv, struct rl_origin_signets *sg,
                              const char *origin_domain, const char *sender,
                              const char *recipient, const uint8_t *in, size_t len, uint8_t **out, size_t *outlen,
                              int *code, char *why, size_t wl)
{
    struct dc_err e = {0};
    struct dc_dmime *m = NULL, *signed_m = NULL;
    struct dc_dmime_reader *r = NULL;
    struct dc_dmime_result *res = NULL;
    struct dc_dmime_signet_keys *keys = NULL;
    enum dc_status s;
    *out = NULL;
    *code = 554;
    if ((s = dc_dmime_parse(in, len, &m, &e)) != DC_OK) {
        snprintf(why, wl, "not a D/MIME message: %s", e.msg);
        goto out;
    }
    struct kv_remote kek = {kv, origin_domain, 0, NULL};
    struct dc_kek_source ks = {kv_remote_kek, &kek};
    if ((s = dc_dmime_open(m, DC_ACTOR_ORIGIN, &ks, &r, &e)) != DC_OK) {
        *code = s != DC_ERR_FORMAT ? kv_code(kv, s) : 554;
        snprintf(why, wl, "cannot open as the origin %s: %s", origin_domain, e.msg);
        goto out;
    }
    const struct dc_dmime_envelope *env = dc_dmime_envelope(r);
    const char *at = strrchr(recipient, '@');
    if (env->destination == NULL || at == NULL || strcasecmp(env->destination, at + 1) != 0) {
        s = DC_ERR_FIELD;
        snprintf(why, wl, "the envelope's destination is not the recipient's domain");
        goto out;
    }
    if (env->author == NULL) {
        s = DC_ERR_FIELD;
        snprintf(why, wl, "no author in the envelope");
        goto out;
    }
    const char *aat = strrchr(env->author, '@');
    if (aat == NULL || strcasecmp(aat + 1, origin_domain) != 0) {
        s = DC_ERR_FIELD;
        snprintf(why, wl, "the author is not in the origin domain %s", origin_domain);
        goto out;
    }
    /* the author is the one the submission names as its sender (the milter checked that the
     * login owns that address), not another user of the domain; the null sender (parsed as
     * "", a notice the milter signed as the domain's notice-author) names none */
    if (sender[0] != '\0' && strcmp(sender, "<>") != 0 && strcasecmp(env->author, sender) != 0) {
        s = DC_ERR_FIELD;
        snprintf(why, wl, "the author is not the sender");
        goto out;
    }
    /* the author signet the envelope names: the user's current generation or one the vault
     * keeps from before a rotation (mail a client signed just before it rotated) */
    if ((s = signet_of(kv, env->author, env->author_fp, sg->author_name,
                       sizeof(sg->author_name), &sg->author, &e)) != DC_OK) {
        *code = kv_code(kv, s);
        snprintf(why, wl, *code == 554 ? "the author signet is no generation of the author "
                                         "in this vault: %s" : "keyvault: signet: %s", e.msg);
        goto out;
    }
    if ((s = signet_of(kv, origin_domain, NULL, sg->origin_name, sizeof(sg->origin_name),
                       &sg->origin, &e)) != DC_OK) {
        *code = kv_code(kv, s);
        snprintf(why, wl, "keyvault: signet: %s", e.msg);
        goto out;
    }
    keys = dc_xcalloc(1, sizeof(*keys));
    /* the origin signatures are not made yet (or are about to be made again): only the
     * author's signatures are checked, so no origin key is given */
    if ((s = dc_dmime_keys_from_signets(r, sg->author, NULL, keys, &e)) != DC_OK) {
        snprintf(why, wl, "signets do not match the envelope: %s", e.msg);
        goto out;
    }
    if ((s = dc_dmime_decrypt_ex(r, &keys->keys, DC_DMIME_NO_CONTENT, &res, &e)) != DC_OK) {
        snprintf(why, wl, "author signatures: %s", e.msg);
        goto out;
    }
    struct kv_remote sr = {kv, origin_domain, KV_PURPOSE_ORIGIN, NULL};
    struct dc_signer signer; /* streams messages above one SIGN frame (SIGN-BEGIN...) */
    kv_remote_signer(&signer, &sr, NULL);
    if ((s = dc_signet_signing_key(sg->origin, signer.pub, &e)) != DC_OK) {
        snprintf(why, wl, "origin signet: %s", e.msg);
        goto out;
    }
    if ((s = dc_dmime_origin_sign(r, &signer, &signed_m, &e)) != DC_OK) {
        *code = kv_code(kv, s);
        snprintf(why, wl, "origin signing: %s", e.msg);
        goto out;
    }
    const uint8_t *b = dc_dmime_bytes(signed_m, outlen);
    *out = dc_xmalloc(*outlen);
    memcpy(*out, b, *outlen);
    *code = 250;
out:
    dc_dmime_result_free(res);
    free(keys);
    dc_dmime_reader_free(r);
    dc_dmime_free(signed_m);
    dc_dmime_free(m);
    return s;
}

/* ---- reading a request: the socket as a submit_src ---- */

struct rd {
    int fd;
    struct timespec deadline;
    bool timeout;
};

static long ms_left(const struct rd *r)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (long)(r->deadline.tv_sec - now.tv_sec) * 1000 +
              (r->deadline.tv_nsec - now.tv_nsec) / 1000000;
    return ms;
}

static size_t sock_read(void *ctx, uint8_t *buf, size_t cap)
{
    struct rd *r = ctx;
    for (;;) {
        long left = ms_left(r);
        if (left <= 0) {
            r->timeout = true;
            return 0;
        }
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        int pr = poll(&p, 1, (int)(left < READ_IDLE_MS ? left : READ_IDLE_MS));
        if (pr == 0) {
            r->timeout = true;
            return 0;
        }
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return 0;
        ssize_t n = read(r->fd, buf, cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        return (size_t)n;
    }
}

static void answer(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void answer(int fd, const char *fmt, ...)
{
    char line[SUBMIT_REPLY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    for (int i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    ssize_t w = send(fd, line, (size_t)n, MSG_NOSIGNAL);
    (void)w;
}

static const char *origin_for(const struct rl_config *cfg, const char *sender)
{
    const char *at = strrchr(sender, '@');
    if (at != NULL && rl_config_domain(cfg, at + 1) != NULL)
        return rl_config_domain(cfg, at + 1)->name;
    return cfg->ndomains > 0 ? cfg->domains[0].name : NULL;
}

static void handle(struct rl_submitd *sd, int fd)
{
    const struct rl_config *cfg = sd->cfg;
    struct rd r = {.fd = fd};
    clock_gettime(CLOCK_MONOTONIC, &r.deadline);
    r.deadline.tv_sec += cfg->submit_timeout;
    struct submit_src src = {sock_read, &r};
    struct submit_in in;
    char reply[SUBMIT_REPLY_MAX];
    struct kv_client *kv = NULL;
    struct rl_origin_signets sg = {.author = NULL};
    struct rl_queue *q = NULL;
    struct dc_err e = {0};
    int rc = submit_read(&src, cfg->max_message_size, cfg->submit_max_total, &in, reply);
    const char *qid = in.queue_id, *mid = in.message_id;
    struct submit_in_msg *msgs = in.msgs;
    size_t n = in.n;
    if (rc != 0) {
        answer(fd, "%s%s", reply, rc == 500 && r.timeout ? " (timeout)" : "");
        goto out;
    }
    const char **rcpts = dc_xcalloc(n, sizeof(*rcpts));
    for (size_t i = 0; i < n; i++)
        rcpts[i] = msgs[i].recipient;
    char key[65];
    enum dc_status ks = submit_key(qid, mid, rcpts, n, key, &e);
    free(rcpts);
    if (ks != DC_OK) {
        answer(fd, "501 5.5.4 %s", e.msg);
        goto out;
    }
    if (rl_queue_take(cfg->queue_database, cfg->queue_key_file, &q, &e) != DC_OK) {
        dl_log(LOG_ERR, "submit qid=%s queue error=\"%s\"", qid, e.msg);
        answer(fd, "451 4.3.0 queue unavailable");
        goto out;
    }
    char sid[17];
    size_t count = 0;
    if (rl_queue_known(q, key, sid, &count)) {
        dl_log(LOG_INFO, "submit qid=%s sid=%s messages=%zu duplicate", qid, sid, count);
        answer(fd, "250 2.0.0 duplicate %s %zu", sid, count);
        goto out;
    }
    size_t bytes = 0;
    char full[200];
    for (size_t i = 0; i < n; i++)
        bytes += msgs[i].len;
    if (!rl_queue_room(q, n, bytes, cfg->queue_max_messages, cfg->queue_min_free, full,
                       sizeof(full))) {
        rl_count_limit(RL_LIMIT_QUEUE_FULL);
        dl_log(LOG_WARNING, "submit qid=%s limit=queue-full reason=\"%s\"", qid, full);
        answer(fd, "452 4.3.1 queue full, try again later");
        goto out;
    }
    if (kv_keep_take(sd->keep, &kv, &e) != DC_OK) {
        dl_log(LOG_ERR, "submit qid=%s keyvault error=\"%s\"", qid, e.msg);
        answer(fd, "451 4.3.0 keyvault unavailable");
        goto out;
    }
    struct rl_q_new *nm = dc_xcalloc(n, sizeof(*nm));
    bool failed = false;
    for (unsigned long i = 0; i < n && !failed; i++) {
        const char *origin = origin_for(cfg, msgs[i].sender);
        uint8_t *signed_b = NULL;
        size_t signed_len = 0;
        int code;
        char why[300];
        if (origin == NULL) {
            answer(fd, "451 4.3.0 no local domain configured");
            failed = true;
            break;
        }
        if (rl_origin_sign(kv, &sg, origin, msgs[i].sender, msgs[i].recipient, msgs[i].data,
                           msgs[i].len,
                           &signed_b, &signed_len, &code, why, sizeof(why)) != DC_OK) {
            dl_log(LOG_WARNING, "submit qid=%s message=%lu refused code=%d why=\"%s\"", qid, i + 1,
                   code, why);
            if (code == 451)
                answer(fd, "451 4.3.0 message %lu: %s", i + 1, why);
            else
                answer(fd, "554 5.6.0 message %lu: %s", i + 1, why);
            failed = true;
            break;
        }
        free(msgs[i].data);
        msgs[i].data = signed_b;
        msgs[i].len = signed_len;
        nm[i] = (struct rl_q_new){msgs[i].sender, msgs[i].recipient, msgs[i].domain, origin,
                                  msgs[i].data, msgs[i].len};
    }
    if (!failed) {
        bool dup = false;
        if (rl_queue_submit(q, key, qid, nm, n, sid, &count, &dup, &e) != DC_OK) {
            dl_log(LOG_ERR, "submit qid=%s queue error=\"%s\"", qid, e.msg);
            answer(fd, "451 4.3.0 queue write failed");
        } else {
            dl_log(LOG_INFO, "submit qid=%s sid=%s messages=%zu%s", qid, sid, count,
                   dup ? " duplicate" : " committed");
            answer(fd, "250 2.0.0 %s %s %zu", dup ? "duplicate" : "queued", sid, count);
            rl_count_message(RL_ROUTE_SUBMITTED, dup ? 0 : (unsigned)count);
            if (!dup && sd->on_commit)
                sd->on_commit(sd->ctx);
        }
    }
    free(nm);
out:
    rl_origin_signets_free(&sg);
    kv_keep_give(sd->keep, kv);
    rl_queue_give(q);
    submit_in_free(&in);
}

struct job {
    struct rl_submitd *sd;
    int fd;
};

static void run_job(void *ctx, void *arg)
{
    struct rl_submitd *sd = ctx;
    struct job *j = arg;
    handle(sd, j->fd);
    close(j->fd);
    pthread_mutex_lock(&sd->mu);
    sd->running--;
    pthread_cond_broadcast(&sd->cv);
    pthread_mutex_unlock(&sd->mu);
    free(j);
}

static void *acceptor(void *arg)
{
    struct rl_submitd *sd = arg;
    while (!sd->stop) {
        struct pollfd p = {.fd = sd->lfd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        /* at most submit-workers at once: further clients wait in the listen backlog */
        pthread_mutex_lock(&sd->mu);
        while (sd->running >= sd->cfg->submit_workers && !sd->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&sd->cv, &sd->mu, &ts);
        }
        pthread_mutex_unlock(&sd->mu);
        if (sd->stop)
            break;
        int fd = accept4(sd->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&sd->mu);
        sd->running++;
        pthread_mutex_unlock(&sd->mu);
        struct job *j = dc_xmalloc(sizeof(*j));
        j->sd = sd;
        j->fd = fd;
        if (!rl_workers_run(sd->pool, j)) {
            answer(fd, "421 4.3.2 cannot start a worker");
            close(fd);
            free(j);
            pthread_mutex_lock(&sd->mu);
            sd->running--;
            pthread_mutex_unlock(&sd->mu);
        }
    }
    return NULL;
}

enum dc_status rl_submitd_start(const struct rl_config *cfg, int fd, void (*on_commit)(void *),
                                void *ctx, struct rl_submitd **out, struct dc_err *err)
{
    struct rl_submitd *sd = dc_xcalloc(1, sizeof(*sd));
    sd->cfg = cfg;
    sd->lfd = fd;
    sd->on_commit = on_commit;
    sd->ctx = ctx;
    pthread_mutex_init(&sd->mu, NULL);
    pthread_cond_init(&sd->cv, NULL);
    sd->pool = rl_workers_new(run_job, sd, WORKER_IDLE_MS);
    sd->keep = kv_keep_new(cfg->keyvault_socket, cfg->submit_workers);
    if (pthread_create(&sd->acceptor, NULL, acceptor, sd) != 0) {
        rl_workers_free(sd->pool);
        kv_keep_free(sd->keep);
        close(fd);
        free(sd);
        return dc_fail(err, DC_ERR_IO, "cannot start the submission thread");
    }
    *out = sd;
    return DC_OK;
}

void rl_submitd_stop(struct rl_submitd *sd)
{
    if (sd == NULL)
        return;
    pthread_mutex_lock(&sd->mu);
    sd->stop = 1;
    pthread_cond_broadcast(&sd->cv); /* an acceptor waiting for a free worker */
    pthread_mutex_unlock(&sd->mu);
    pthread_join(sd->acceptor, NULL);
    close(sd->lfd);
    unlink(sd->cfg->submit_socket);
    pthread_mutex_lock(&sd->mu);
    while (sd->running > 0)
        pthread_cond_wait(&sd->cv, &sd->mu);
    pthread_mutex_unlock(&sd->mu);
    rl_workers_free(sd->pool);
    kv_keep_free(sd->keep);
    pthread_mutex_destroy(&sd->mu);
    pthread_cond_destroy(&sd->cv);
    free(sd);
}
