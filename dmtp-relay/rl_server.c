/*
 * rl_server - DMTP DX server loop. See rl_server.h for behaviour and reply codes.
 */
#include "rl_server.h"
#include "rl_metrics.h"
#include "rl_server_int.h"
#include "dl_log.h"

#include "dc_config.h"
#include "dc_dmtp.h"
#include "dc_fmap.h"
#include "kv_client.h"

#include "rl_dual.h"
#include "rl_inbound.h"
#include "rl_lookup.h"
#include "rl_queue.h"
#include "rl_shared.h"
#include "rl_signets.h"
#include "rl_spool.h"
#include "rl_syndicate.h"
#include "dl_sock.h"
#include "dl_tls.h"
#include "rl_workers.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define VJOB_IDLE_MS 10000 /* a verifying thread idle this long ends */

/* An inbound message being checked and committed by a worker thread. */
struct vjob {
    struct server *s;
    const struct rl_config *cfg; /* the server's configuration when the message arrived */
    unsigned conn_id;
    char ip[INET6_ADDRSTRLEN];
    char mail[DC_DMTP_NAME_MAX + 1], rcpt[DC_DMTP_NAME_MAX + 1];
    uint8_t *data;
    size_t len, charged;
    int spool_fd; /* the message is in this spool file (data NULL), or -1 */
    int code;
    char text[400];
    unsigned seq;
    bool signet;            /* a SGNT/VRFY/HIST: cmd in, the reply lines out */
    struct dc_dmtp_cmd cmd;
    struct dc_buf out;
    struct vjob *next;
};

/* A configuration loaded on SIGHUP: the file as read (the owner of its strings), and the
 * one the server runs with, the start-up values but for those a reload may change. Kept
 * until the loop ends: inbound workers hold pointers into it (their vjob's cfg). */
struct reloaded {
    struct rl_config loaded;
    struct rl_config run;
    struct reloaded *next;
};

static volatile sig_atomic_t stop_flag, hup_flag;
static void on_stop(int sig)
{
    if (sig == SIGHUP)
        hup_flag = 1;
    else
        stop_flag = 1;
}

int rl_server_listen(const struct rl_config *c, struct dc_err *err)
{
    return dl_sock_listen_tcp(c->listen_address, c->listen_port, err);
}

/* ---- commands ---- */

static void reply(struct conn *c, int code, const char *text)
{
    dc_dmtp_reply_put(&c->out, code, false, "%s", text);
}

static void bad(struct server *s, struct conn *c, int code, const char *text)
{
    reply(c, code, text);
    if (++c->errors >= s->cfg->max_errors) {
        rl_count_limit(RL_LIMIT_MAX_ERRORS);
        reply(c, 421, "too many errors, closing connection");
        c->st = ST_CLOSING;
    }
}

static long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Takes a token from the bucket of c's address; false when it is empty. */
static bool signet_rate_ok(struct server *s, struct conn *c)
{
    long now = mono_ms();
    double per_ms = s->cfg->signet_rate / 60000.0, burst = s->cfg->signet_burst;
    struct rate *r = NULL;
    size_t oldest = 0;
    for (size_t i = 0; i < s->nrates; i++) {
        struct rate *x = &s->rates[i];
        x->tokens += (double)(now - x->last_ms) * per_ms;
        x->tokens = x->tokens > burst ? burst : x->tokens;
        x->last_ms = now;
        if (strcmp(x->ip, c->ip) == 0)
            r = x;
        else if (x->tokens >= burst) /* full again: forget it */
            s->rates[i--] = s->rates[--s->nrates];
        else if (s->rates[i].tokens > s->rates[oldest].tokens)
            oldest = i;
    }
    if (r == NULL) {
        if (s->nrates == RATE_MAX)
            r = &s->rates[oldest];
        else
            r = &s->rates[s->nrates++];
        memcpy(r->ip, c->ip, sizeof(r->ip));
        r->tokens = burst;
        r->last_ms = now;
    }
    if (r->tokens < 1.0)
        return false;
    r->tokens -= 1.0;
    return true;
}

/* ---- mail transfer (MAIL, RCPT, DATA) ---- */

/* Raises c's reservation to want bytes; false (nothing changed) when the budget lacks them. */
static bool budget_take(struct conn *c, size_t want)
{
    struct budget *b = c->budget;
    if (want <= c->charged)
        return true;
    pthread_mutex_lock(&b->mu);
    bool ok = b->used + (want - c->charged) <= b->limit;
    if (ok) {
        b->used += want - c->charged;
        c->charged = want;
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}

static void budget_give(struct budget *b, size_t *charged)
{
    pthread_mutex_lock(&b->mu);
    b->used -= *charged;
    pthread_mutex_unlock(&b->mu);
    *charged = 0;
}

static void reset_tx(struct conn *c)
{
    c->mail = c->rcpt = c->in_data = false;
    c->mail_domain[0] = c->rcpt_domain[0] = '\0';
    c->size_hint = 0;
    c->data_total = 0;
    dc_buf_free(&c->data);
    dc_buf_init(&c->data);
    if (c->spooling)
        close(c->spool_fd); /* unnamed: the file goes with it */
    c->spooling = false;
    c->spooled = 0;
    if (c->charged > 0)
        budget_give(c->budget, &c->charged);
}

/* After "MAIL FROM:" / "RCPT TO:": <domain> or domain, then [fp] or the word fingerprint,
 * then for MAIL: SIZE=n, RETURN=..., DATA=... Returns false on bad syntax. */
static bool mail_args(const char *line, size_t len, size_t skip, char *domain, bool mail,
                      unsigned long *size)
{
    char buf[DC_DMTP_CMD_MAX + 1];
    if (len <= skip || len >= sizeof(buf))
        return false;
    memcpy(buf, line + skip, len - skip);
    buf[len - skip] = '\0';
    char *save = NULL, *tok = strtok_r(buf, " ", &save);
    if (tok == NULL)
        return false;
    size_t tl = strlen(tok);
    if (tok[0] == '<') {
        if (tl < 3 || tok[tl - 1] != '>')
            return false;
        tok[tl - 1] = '\0';
        tok++;
    }
    if (strchr(tok, '@') != NULL || dc_dmtp_check_name(tok, NULL) != DC_OK ||
        strlen(tok) > DC_DMTP_NAME_MAX)
        return false;
    strcpy(domain, tok);
    bool seen_fp = false;
    while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
        if (!seen_fp && (tok[0] == '[' || strcmp(tok, "fingerprint") == 0)) {
            seen_fp = true;
        } else if (mail && strncasecmp(tok, "SIZE=", 5) == 0) {
            char *end;
            if (tok[5] < '0' || tok[5] > '9')
                return false;
            *size = strtoul(tok + 5, &end, 10);
            if (*end != '\0')
                return false;
        } else if (mail && (strncasecmp(tok, "RETURN=", 7) == 0 ||
                            strncasecmp(tok, "DATA=", 5) == 0)) {
            continue;
        } else {
            return false;
        }
    }
    return true;
}

static int cmd_mail(struct server *s, struct conn *c, const char *line, size_t len)
{
    if (!c->ehlo) {
        bad(s, c, 503, "send EHLO first");
        return 503;
    }
    if (c->mail) {
        bad(s, c, 503, "MAIL transaction already in progress");
        return 503;
    }
    if (len < 10 || strncasecmp(line, "MAIL FROM:", 10) != 0) {
        bad(s, c, 501, "syntax: MAIL FROM: <domain> [fingerprint] SIZE=n");
        return 501;
    }
    unsigned long size = 0;
    if (!mail_args(line, len, 10, c->mail_domain, true, &size)) {
        bad(s, c, 501, "syntax: MAIL FROM: <domain> [fingerprint] SIZE=n");
        return 501;
    }
    if (size > s->cfg->max_message_size) {
        reply(c, 552, "message too large");
        return 552;
    }
    if (size > 0 && !budget_take(c, rl_spool_charge(size, s->cfg->data_spool_threshold))) {
        rl_count_limit(RL_LIMIT_DATA_MEMORY);
        dl_log(LOG_WARNING, PEER_FMT "limit=data-memory-limit size=%lu", c->id, c->ip, size);
        reply(c, 431, "destination limits exceeded (memory), try again later");
        return 431;
    }
    c->size_hint = size;
    c->mail = true;
    reply(c, 250, "OK");
    return 250;
}

static int cmd_rcpt(struct server *s, struct conn *c, const char *line, size_t len)
{
    if (!c->mail || c->rcpt) {
        bad(s, c, 503, c->rcpt ? "one RCPT per transaction" : "send MAIL first");
        return 503;
    }
    if (len < 8 || strncasecmp(line, "RCPT TO:", 8) != 0 ||
        !mail_args(line, len, 8, c->rcpt_domain, false, NULL)) {
        bad(s, c, 501, "syntax: RCPT TO: <domain> [fingerprint]");
        return 501;
    }
    if (rl_config_domain(s->cfg, c->rcpt_domain) == NULL) {
        reply(c, 510, "not a local domain");
        return 510;
    }
    c->rcpt = true;
    reply(c, 250, "OK");
    return 250;
}

static int cmd_data(struct server *s, struct conn *c)
{
    if (!c->mail || !c->rcpt) {
        bad(s, c, 503, c->mail ? "send RCPT first" : "send MAIL first");
        return 503;
    }
    if (s->mail == NULL) {
        reply(c, 502, "mail transfer disabled");
        return 502;
    }
    char nonce[17];
    rl_random_id(nonce, 8);
    dc_dmtp_reply_put(&c->out, 354, false, "CONTINUE [%s]", nonce);
    c->in_data = true;
    c->data_total = 0;
    c->data_start = c->last = time(NULL);
    return 354;
}

static void vjob_done(struct server *s, struct vjob *j);

static void *vjob_main(void *arg)
{
    struct vjob *j = arg;
    struct server *s = j->s;
    const struct rl_config *cfg = j->cfg;
    struct kv_client *kv = NULL;
    struct dc_err e = {0};
    struct dc_fmap *map = NULL;
    const uint8_t *data = j->data;
    if (j->spool_fd >= 0 && dc_fmap_read(j->spool_fd, j->len, &map, &e) != DC_OK) {
        dl_log(LOG_ERR, PEER_FMT "spool error=\"%s\"", j->conn_id, j->ip, e.msg);
        j->code = 451;
        snprintf(j->text, sizeof(j->text), "local error, try again later");
    } else if (kv_keep_take(s->keep, &kv, &e) != DC_OK) {
        j->code = 476;
        snprintf(j->text, sizeof(j->text), "keyvault unavailable");
    } else {
        struct rl_inbound_result r;
        if (map != NULL)
            data = map->p;
        rl_inbound_check(cfg, s->mail->client_tls, kv, j->mail, j->rcpt, data, j->len, map, &r);
        j->code = r.code;
        snprintf(j->text, sizeof(j->text), "%s", r.text);
        if (r.code == 250) {
            struct rl_queue *q = NULL;
            char tid[24];
            bool dup = false;
            enum dc_status qs = DC_OK;
            char full[200];
            if (rl_queue_take(cfg->queue_database, cfg->queue_key_file, &q, &e) == DC_OK &&
                !rl_queue_room(q, 1, j->len, cfg->queue_max_messages, cfg->queue_min_free,
                               full, sizeof(full))) {
                rl_count_limit(RL_LIMIT_QUEUE_FULL);
                dl_log(LOG_WARNING, PEER_FMT "limit=queue-full reason=\"%s\"", j->conn_id, j->ip,
                       full);
                j->code = 431;
                snprintf(j->text, sizeof(j->text), "destination limits exceeded (queue full), "
                         "try again later");
            } else if (q == NULL || (qs = rl_shared_in_add(q, data, j->len, map, r.recipient,
                                                            r.origin, tid, &dup, &e)) != DC_OK) {
                /* the shared digests (state = postgresql): unreachable, or another node
                 * commits the same message now; either way the sender tries again later */
                bool busy = qs == DC_ERR_ORDER;
                dl_log(busy ? LOG_NOTICE : LOG_ERR, PEER_FMT "inbound %s error=\"%s\"",
                       j->conn_id, j->ip, busy ? "dedup" : "queue", e.msg);
                j->code = 451;
                snprintf(j->text, sizeof(j->text), "%s, try again later",
                         busy ? "the message is being committed by another node"
                              : "local error");
            } else {
                snprintf(j->text, sizeof(j->text), "OK [%s]", tid);
                dl_log(LOG_INFO, PEER_FMT "inbound tid=%s origin=%s size=%zu%s", j->conn_id,
                       j->ip, tid, r.origin, j->len, dup ? " duplicate" : " committed");
                rl_count_message(RL_ROUTE_DMTP_IN, dup ? 0 : 1);
                if (!dup && s->mail->on_inbound)
                    s->mail->on_inbound(s->mail->ctx);
            }
            rl_queue_give(q);
        } else {
            dl_log(LOG_WARNING, PEER_FMT "inbound refused code=%d reason=\"%s\"", j->conn_id,
                   j->ip, r.code, r.text);
        }
        kv_keep_give(s->keep, kv);
    }
    dc_fmap_close(map);
    if (j->spool_fd >= 0)
        close(j->spool_fd);
    free(j->data);
    j->data = NULL;
    budget_give(&s->budget, &j->charged);
    vjob_done(s, j);
    return NULL;
}

/* Hands a finished job back to the loop. */
static void vjob_done(struct server *s, struct vjob *j)
{
    /* the wake-up is written before running drops, under the lock: once running is 0 the
     * stopping loop closes the pipe and s goes away (s lives on rl_server_run's stack), so
     * nothing may touch s after the unlock (the pipe is non-blocking: a full pipe already
     * wakes the loop) */
    pthread_mutex_lock(&s->mu);
    j->next = s->done;
    s->done = j;
    ssize_t w = write(s->pipe[1], "x", 1);
    (void)w;
    s->running--;
    if (j->signet)
        s->signet_jobs--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* A SGNT, VRFY or HIST on a worker thread: the keyvault may be slow, the loop does not wait. */
static void signet_main(struct vjob *j)
{
    struct server *s = j->s;
    struct kv_client *kv = NULL;
    struct dc_err e = {0};
    char why[DC_ERR_MSG_MAX];
    if (kv_keep_take(s->keep, &kv, &e) != DC_OK)
        kv = NULL;
    j->code = rl_signets_answer(s->cfg, kv, &j->cmd, &j->out, why, sizeof(why));
    if (kv == NULL || why[0] != '\0')
        dl_log(LOG_ERR, PEER_FMT "keyvault error=\"%s\"", j->conn_id, j->ip,
               kv == NULL ? e.msg : why);
    if (kv != NULL && kv_client_status(kv) == KV_E_INTERNAL)
        kv_client_close(kv); /* a transport failure: the next job connects again */
    else
        kv_keep_give(s->keep, kv);
    vjob_done(s, j);
}

static void vjob_run(void *ctx, void *job)
{
    struct vjob *j = job;
    (void)ctx;
    if (j->signet)
        signet_main(j);
    else
        vjob_main(j);
}

/* Hands a SGNT, VRFY or HIST to a worker; the reply comes when it is done (finished) or when
 * keyvault-timeout passes (the loop's timeouts). Returns 0, or the code of a reply sent now. */
static int signet_start(struct server *s, struct conn *c, const struct dc_dmtp_cmd *cmd)
{
    if (cmd->verb == DC_DMTP_HIST && strchr(cmd->name, '@') == NULL) {
        bad(s, c, 501, "HIST takes a user address");
        return 501;
    }
    pthread_mutex_lock(&s->mu);
    bool full = s->signet_jobs >= s->cfg->signet_workers;
    if (!full) {
        s->running++;
        s->signet_jobs++;
    }
    pthread_mutex_unlock(&s->mu);
    if (full) {
        reply(c, 476, "signet temporarily unavailable (busy)");
        return 476;
    }
    struct vjob *j = dc_xcalloc(1, sizeof(*j));
    j->s = s;
    j->conn_id = c->id;
    memcpy(j->ip, c->ip, sizeof(j->ip));
    j->signet = true;
    j->spool_fd = -1;
    j->cmd = *cmd;
    j->seq = ++c->seq;
    dc_buf_init(&j->out);
    if (!rl_workers_run(s->pool, j)) {
        free(j);
        pthread_mutex_lock(&s->mu);
        s->running--;
        s->signet_jobs--;
        pthread_mutex_unlock(&s->mu);
        reply(c, 476, "signet temporarily unavailable");
        return 476;
    }
    c->verifying = c->signet_wait = true;
    c->job_start_ms = mono_ms();
    return 0;
}

/* The whole message arrived: hand it to a worker; the reply comes when it is done. */
static void start_check(struct server *s, struct conn *c)
{
    pthread_mutex_lock(&s->mu);
    bool full = s->running - s->signet_jobs >= s->cfg->inbound_workers;
    if (!full)
        s->running++;
    pthread_mutex_unlock(&s->mu);
    if (full) {
        rl_count_limit(RL_LIMIT_INBOUND_WORKERS);
        reply(c, 431, "destination limits exceeded, try again later");
        reset_tx(c);
        return;
    }
    struct vjob *j = dc_xcalloc(1, sizeof(*j));
    j->s = s;
    j->cfg = s->cfg;
    j->conn_id = c->id;
    memcpy(j->ip, c->ip, sizeof(j->ip));
    strcpy(j->mail, c->mail_domain);
    strcpy(j->rcpt, c->rcpt_domain);
    j->data = dc_buf_steal(&c->data, &j->len);
    j->len = c->data_total;
    dc_buf_init(&c->data);
    j->spool_fd = c->spooling ? c->spool_fd : -1; /* the worker closes it */
    if (c->spooling) {
        free(j->data);
        j->data = NULL;
    }
    c->spooling = false;
    c->spooled = 0;
    j->seq = ++c->seq;
    j->charged = c->charged; /* the worker gives it back when it frees the bytes */
    c->charged = 0;
    c->verifying = true;
    /* a kept thread, not one created (and its stack mapped, faulted in and released) for
     * each inbound message */
    if (!rl_workers_run(s->pool, j)) {
        free(j->data);
        if (j->spool_fd >= 0)
            close(j->spool_fd);
        budget_give(&s->budget, &j->charged);
        free(j);
        c->verifying = false;
        pthread_mutex_lock(&s->mu);
        s->running--;
        pthread_mutex_unlock(&s->mu);
        reply(c, 451, "local error, try again later");
        reset_tx(c);
    }
}

/* A message that cannot go on (the byte stream cannot be resynchronized): code, then 421. */
static void data_abort(struct conn *c, int code, const char *text)
{
    reply(c, code, text);
    reply(c, 421, "cannot resynchronize, closing connection");
    c->st = ST_CLOSING;
    reset_tx(c);
}

/* Bytes of the message and its CRLF received so far, in memory and in the spool file. */
static size_t data_got(const struct conn *c)
{
    return c->spooled + c->data.len;
}

/* A spooled message: moves the staged bytes to its file. */
static bool spool_flush(struct conn *c)
{
    struct dc_err e = {0};
    if (!c->spooling || c->data.len == 0)
        return true;
    if (rl_spool_write(c->spool_fd, c->data.data, c->data.len, &e) != DC_OK) {
        dl_log(LOG_ERR, PEER_FMT "spool error=\"%s\"", c->id, c->ip, e.msg);
        data_abort(c, 451, "local error, try again later");
        return false;
    }
    c->spooled += c->data.len;
    c->data.len = 0;
    return true;
}

/* The message's length is known: reserve its memory, or its staging buffer and a spool file
 * when it is above data-spool-threshold. False when the connection is being closed. */
static bool data_start(struct server *s, struct conn *c, size_t total)
{
    if (!budget_take(c, rl_spool_charge(total, s->cfg->data_spool_threshold))) {
        rl_count_limit(RL_LIMIT_DATA_MEMORY);
        dl_log(LOG_WARNING, PEER_FMT "limit=data-memory-limit size=%zu", c->id, c->ip, total);
        data_abort(c, 431, "destination limits exceeded (memory), try again later");
        return false;
    }
    c->data_total = total;
    /* bytes read beyond the message and its CRLF go back to the command buffer */
    if (c->data.len > total + 2) {
        size_t extra = c->data.len - total - 2;
        memcpy(c->in, c->data.data + total + 2, extra);
        c->inlen = extra;
        c->data.len = total + 2;
    }
    if (!rl_spool_wanted(total, s->cfg->data_spool_threshold)) {
        dc_buf_reserve(&c->data, total + 2 - c->data.len);
        return true;
    }
    struct dc_err e = {0};
    c->spool_fd = rl_spool_open(s->spool_dir, &e);
    if (c->spool_fd < 0) {
        dl_log(LOG_ERR, PEER_FMT "spool error=\"%s\"", c->id, c->ip, e.msg);
        data_abort(c, 451, "local error, try again later");
        return false;
    }
    c->spooling = true;
    dl_log(LOG_INFO, PEER_FMT "spool size=%zu", c->id, c->ip, total);
    if (!spool_flush(c))
        return false;
    dc_buf_reserve(&c->data, RL_SPOOL_CHUNK);
    return true;
}

/* The whole message and two more bytes arrived: are those CRLF? A spooled message's file is
 * cut to the message. */
static bool data_crlf(struct conn *c)
{
    uint8_t t[2];
    if (!c->spooling)
        return c->data.data[c->data_total] == '\r' && c->data.data[c->data_total + 1] == '\n';
    if (!spool_flush(c))
        return false;
    if (pread(c->spool_fd, t, 2, (off_t)c->data_total) != 2 ||
        ftruncate(c->spool_fd, (off_t)c->data_total) != 0)
        return false;
    return t[0] == '\r' && t[1] == '\n';
}

/* Takes DATA bytes from the input buffer (or, read straight into c->data, counts them). */
static void data_in(struct server *s, struct conn *c)
{
    c->last = time(NULL); /* DATA bytes arrived: progress (data-timeout) */
    if (c->data_total == 0) {
        size_t take = c->inlen;
        dc_buf_append(&c->data, c->in, take);
        c->inlen = 0;
        int code;
        struct dc_err e = {0};
        size_t total;
        enum dc_status st = rl_inbound_frame(c->data.data, c->data.len, s->cfg->max_message_size,
                                             c->size_hint, &total, &code, &e);
        if (st == DC_ERR_TRUNCATED)
            return;
        if (st != DC_OK) {
            dl_log(LOG_WARNING, PEER_FMT "data refused code=%d reason=\"%s\"", c->id, c->ip, code,
                   e.msg);
            char t[DC_ERR_MSG_MAX + 40];
            snprintf(t, sizeof(t), "%s: %s", code == 552 ? "message too large" : "data corrupted",
                     e.msg);
            data_abort(c, code, t);
            return;
        }
        if (!data_start(s, c, total))
            return;
    } else {
        size_t want = c->data_total + 2 - data_got(c);
        if (c->spooling && RL_SPOOL_CHUNK - c->data.len < want)
            want = RL_SPOOL_CHUNK - c->data.len;
        size_t take = c->inlen < want ? c->inlen : want;
        dc_buf_append(&c->data, c->in, take);
        memmove(c->in, c->in + take, c->inlen - take);
        c->inlen -= take;
    }
    bool whole = data_got(c) >= c->data_total + 2;
    if (c->spooling && (whole || c->data.len >= RL_SPOOL_CHUNK) && !spool_flush(c))
        return;
    if (!whole)
        return;
    c->in_data = false;
    c->last = time(NULL);
    if (c->st != ST_OPEN)
        return;
    if (!data_crlf(c)) {
        if (c->st == ST_OPEN)
            data_abort(c, 451, "data corrupted: the message is not followed by CRLF");
        return;
    }
    start_check(s, c);
}

/* XSYN <domain> (daemonlib/SYNDICATE.md): the pin this relay holds for the domain, read
 * from the pin database on the loop (one indexed row), rate limited as SGNT is. */
static void cmd_syn(struct server *s, struct conn *c, const char *line, size_t len)
{
    char arg[DC_DMTP_CMD_MAX], text[DC_DMTP_LINE_MAX - 8];
    int code;
    snprintf(arg, sizeof(arg), "%.*s", (int)(len - 5), line + 5);
    if (!signet_rate_ok(s, c)) {
        if (!c->rate_logged)
            dl_log(LOG_WARNING, PEER_FMT "limit=signet-rate", c->id, c->ip);
        c->rate_logged = true;
        code = 431;
        snprintf(text, sizeof(text), "too many signet requests, try again later");
    } else {
        code = rl_syn_answer(s->cfg, arg, text, sizeof(text));
    }
    if (code == 501)
        bad(s, c, 501, text);
    else
        reply(c, code, text);
    dl_log(LOG_INFO, PEER_FMT "cmd=" RL_SYN_VERB " code=%d", c->id, c->ip, code);
}

static void command(struct server *s, struct conn *c, const char *line, size_t len)
{
    struct dc_dmtp_cmd cmd;
    struct dc_err err = {0};
    c->last = time(NULL); /* only whole lines count as activity (slow senders time out) */
    if (len > strlen(RL_SYN_VERB) && strncasecmp(line, RL_SYN_VERB " ", 5) == 0) {
        cmd_syn(s, c, line, len);
        return;
    }
    enum dc_status st = dc_dmtp_cmd_parse(line, len, &cmd, &err);
    if (st == DC_ERR_NOTFOUND) {
        bad(s, c, 500, "command unrecognized");
        return;
    }
    if (st != DC_OK) {
        char msg[DC_ERR_MSG_MAX + 32];
        snprintf(msg, sizeof(msg), "argument syntax error: %.200s", err.msg);
        bad(s, c, 501, msg);
        return;
    }
    int code = 250;
    switch (cmd.verb) {
    case DC_DMTP_EHLO:
        dc_dmtp_reply_put(&c->out, 250, true, "%s", s->cfg->hostname);
        dc_dmtp_reply_put(&c->out, 250, true, "SGNT");
        dc_dmtp_reply_put(&c->out, 250, true, "VRFY");
        dc_dmtp_reply_put(&c->out, 250, true, "HIST");
        dc_dmtp_reply_put(&c->out, 250, true, "MODE");
        if (s->cfg->n_syndicate_for > 0)
            dc_dmtp_reply_put(&c->out, 250, true, RL_SYN_VERB);
        dc_dmtp_reply_put(&c->out, 250, false, "SIZE %lu", s->cfg->max_message_size);
        c->ehlo = true;
        break;
    case DC_DMTP_MAIL: code = cmd_mail(s, c, line, len); break;
    case DC_DMTP_RCPT: code = cmd_rcpt(s, c, line, len); break;
    case DC_DMTP_DATA: code = cmd_data(s, c); break;
    case DC_DMTP_SGNT:
    case DC_DMTP_VRFY:
    case DC_DMTP_HIST:
        if (!signet_rate_ok(s, c)) {
            rl_count_limit(RL_LIMIT_SIGNET_RATE);
            if (!c->rate_logged)
                dl_log(LOG_WARNING, PEER_FMT "limit=signet-rate", c->id, c->ip);
            c->rate_logged = true;
            reply(c, 431, "too many signet requests, try again later");
            code = 431;
        } else {
            code = signet_start(s, c, &cmd);
        }
        break;
    case DC_DMTP_MODE: reply(c, 250, "OK DMTPv1"); break;
    case DC_DMTP_NOOP: reply(c, 250, "OK"); break;
    case DC_DMTP_RSET:
        reset_tx(c);
        reply(c, 250, "OK");
        break;
    case DC_DMTP_QUIT:
        reply(c, 221, "BYE");
        c->st = ST_CLOSING;
        code = 221;
        break;
    case DC_DMTP_HELP:
        dc_dmtp_reply_put(&c->out, 214, true, "commands: EHLO SGNT VRFY HIST MODE NOOP RSET");
        dc_dmtp_reply_put(&c->out, 214, false, "QUIT HELP MAIL RCPT DATA");
        code = 214;
        break;
    }
    if (code != 0) /* 0: with a worker, logged when it answers (finished) */
        dl_log(LOG_INFO, PEER_FMT "cmd=%s code=%d", c->id, c->ip, dc_dmtp_verb_name(cmd.verb),
               code);
}

/* ---- connection I/O ---- */

static void conn_free(struct conn *c)
{
    dl_log(LOG_INFO, PEER_FMT "disconnect", c->id, c->ip);
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    close(c->fd);
    dc_buf_free(&c->out);
    reset_tx(c); /* frees the message buffer and gives back its reservation */
    free(c);
}

void rl_conn_lines(struct server *s, struct conn *c)
{
    while (c->st == ST_OPEN && c->out.len - c->outoff < OUT_HIGH && !c->verifying) {
        if (c->in_data) {
            if (c->inlen == 0)
                return;
            data_in(s, c);
            continue;
        }
        size_t ll;
        enum dc_status st = dc_dmtp_line(c->in, c->inlen, sizeof(c->in), &ll);
        if (st == DC_ERR_TRUNCATED)
            return;
        size_t used;
        if (st == DC_ERR_LIMIT) { /* no CRLF in a full buffer */
            if (!c->discarding)
                bad(s, c, 500, "line too long");
            c->discarding = true;
            /* keep a trailing CR: it may start the CRLF */
            used = c->in[c->inlen - 1] == '\r' ? c->inlen - 1 : c->inlen;
        } else {
            if (c->discarding)
                c->discarding = false;
            else
                command(s, c, (const char *)c->in, ll);
            used = ll + 2;
        }
        memmove(c->in, c->in + used, c->inlen - used);
        c->inlen -= used;
    }
}

/* Inside a message whose length is known, with no command bytes waiting, the bytes go
 * straight into the message's buffer (reserved by data_in for all of it): a 256 KiB message
 * took 256 reads of 1 KiB through the command buffer, each copied again. Never past the
 * message's end, so no command bytes land there. */
static bool direct_read(const struct conn *c)
{
    return c->in_data && c->data_total > 0 && c->inlen == 0;
}

uint8_t *rl_conn_room(struct conn *c, size_t *room)
{
    if (direct_read(c)) {
        /* a spooled message: up to the end of the staging buffer */
        size_t left = c->data_total + 2 - data_got(c);
        if (c->spooling && RL_SPOOL_CHUNK - c->data.len < left)
            left = RL_SPOOL_CHUNK - c->data.len;
        *room = left;
        return c->data.data + c->data.len;
    }
    *room = sizeof(c->in) - c->inlen;
    return c->in + c->inlen;
}

void rl_conn_got(struct server *s, struct conn *c, size_t n)
{
    if (direct_read(c)) {
        c->data.len += n;
        data_in(s, c);
    } else {
        c->inlen += n;
        rl_conn_lines(s, c);
    }
}

/* Returns false when the connection is finished. */
static bool flush_out(struct conn *c)
{
    while (c->outoff < c->out.len) {
        ERR_clear_error();
        int n = SSL_write(c->ssl, c->out.data + c->outoff, (int)(c->out.len - c->outoff));
        if (n > 0) {
            c->outoff += (size_t)n;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            c->want = e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
            return true;
        }
        return false;
    }
    c->out.len = c->outoff = 0;
    return c->st != ST_CLOSING;
}

static bool conn_io(struct server *s, struct conn *c)
{
    c->want = POLLIN;
    if (c->st == ST_HANDSHAKE) {
        ERR_clear_error();
        int r = SSL_accept(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                c->want = e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
                return true;
            }
            char b[160];
            dl_log(LOG_ERR, PEER_FMT "tls handshake failed: %s", c->id, c->ip,
                   dl_tls_error(b, sizeof(b)));
            return false;
        }
        c->st = ST_OPEN;
        c->last = time(NULL);
        dl_log(LOG_INFO, PEER_FMT "tls=%s cipher=%s", c->id, c->ip, SSL_get_version(c->ssl),
               SSL_get_cipher_name(c->ssl));
        if (c->refuse) { /* after TLS: the peer reads the reason in a reply it understands */
            reply(c, 421, "too many connections from your address, try again later");
            c->st = ST_CLOSING;
        } else if (c->dual) { /* dual mode: the banner was Postfix's, TLS confirms the mode */
            reply(c, 250, "OK DMTPv1");
        } else {
            dc_dmtp_reply_put(&c->out, 220, false, "%s DMTPv1 dime-relayd ready",
                              s->cfg->hostname);
        }
    }
    if (!flush_out(c))
        return false;
    if (c->outoff < c->out.len)
        return true; /* wait until the peer reads */
    while (c->st == ST_OPEN && !c->verifying) {
        if (c->inlen == sizeof(c->in)) {
            rl_conn_lines(s, c);
            if (c->inlen == sizeof(c->in))
                break; /* output backlog: wait */
            continue;
        }
        size_t room;
        uint8_t *to = rl_conn_room(c, &room);
        ERR_clear_error();
        int n = SSL_read(c->ssl, to, room > INT_MAX ? INT_MAX : (int)room);
        if (n > 0) {
            rl_conn_got(s, c, (size_t)n);
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            c->want = e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
            break;
        }
        return false; /* EOF or error */
    }
    if (!flush_out(c))
        return false;
    return true;
}

/* A DX connection on fd (accepted, or handed over by the dual-mode front): the TLS
 * handshake is next. */
static void conn_start(struct server *s, int fd, unsigned id, const char *ip, bool dual)
{
    unsigned same = 0;
    for (size_t i = 0; i < s->nconns; i++)
        if (!s->conns[i]->refuse && strcmp(s->conns[i]->ip, ip) == 0)
            same++;
    bool refuse = same >= s->cfg->max_clients_per_address;
    if (refuse)
        rl_count_limit(RL_LIMIT_PER_ADDRESS);
    if (refuse)
        dl_log(LOG_WARNING, PEER_FMT "limit=max-clients-per-address connections=%u", id, ip,
               same);
    else
        dl_log(LOG_INFO, PEER_FMT "connect", id, ip);
    int one = 1; /* replies are small writes: do not let Nagle hold them for an ACK */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct conn *c = dc_xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->id = id;
    snprintf(c->ip, sizeof(c->ip), "%s", ip);
    c->ssl = SSL_new(s->tls);
    c->last = time(NULL);
    c->want = POLLIN;
    c->refuse = refuse;
    c->dual = dual;
    c->budget = &s->budget;
    dc_buf_init(&c->out);
    dc_buf_init(&c->data);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
        conn_free(c);
        return;
    }
    s->conns = dc_xrealloc(s->conns, (s->nconns + 1) * sizeof(*s->conns));
    s->conns[s->nconns++] = c;
    if (!conn_io(s, c)) {
        s->nconns--;
        conn_free(c);
    }
}

static void accept_one(struct server *s, int lfd)
{
    struct sockaddr_storage sa;
    socklen_t sl = sizeof(sa);
    int fd = accept4(lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    unsigned id = ++s->next_id;
    rl_count_connection();
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, ip, sizeof(ip));
    else if (sa.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, ip, sizeof(ip));
    if (s->nconns + rl_dual_count(s->dual) >= s->cfg->max_clients) {
        rl_count_limit(RL_LIMIT_MAX_CLIENTS);
        dl_log(LOG_WARNING, PEER_FMT "refused=max-clients", id, ip);
        close(fd);
        return;
    }
    conn_start(s, fd, id, ip, false);
}

/* The dual-mode front's DMTP client after STARTTLS MODE=DMTPv1 (rl_dual.h). */
static void dual_handoff(void *ctx, int fd, unsigned id, const char *ip)
{
    struct server *s = ctx;
    rl_count_connection();
    conn_start(s, fd, id, ip, true);
}

/* Replies for inbound messages whose check finished. */
static void finished(struct server *s)
{
    char b[64];
    while (read(s->pipe[0], b, sizeof(b)) > 0) {
    }
    pthread_mutex_lock(&s->mu);
    struct vjob *j = s->done;
    s->done = NULL;
    pthread_mutex_unlock(&s->mu);
    while (j != NULL) {
        struct vjob *next = j->next;
        for (size_t i = 0; i < s->nconns; i++) {
            struct conn *c = s->conns[i];
            if (c->id != j->conn_id || !c->verifying || c->seq != j->seq)
                continue; /* gone, or answered 476 at keyvault-timeout */
            if (j->signet)
                dc_buf_append(&c->out, j->out.data, j->out.len);
            else
                reply(c, j->code, j->text);
            dl_log(LOG_INFO, PEER_FMT "cmd=%s code=%d", c->id, c->ip,
                   j->signet ? dc_dmtp_verb_name(j->cmd.verb) : "DATA", j->code);
            c->verifying = c->signet_wait = false;
            c->last = time(NULL);
            if (!j->signet)
                reset_tx(c);
            rl_conn_lines(s, c); /* commands the peer sent meanwhile */
            c->want = POLLOUT;
            break;
        }
        dc_buf_free(&j->out);
        free(j);
        j = next;
    }
}

/* A SGNT, VRFY or HIST whose worker has not answered within keyvault-timeout: 476 now, the
 * worker's late answer is dropped (finished compares seq). */
static void signet_late(struct server *s, struct conn *c)
{
    rl_count_limit(RL_LIMIT_KEYVAULT_TIMEOUT);
    dl_log(LOG_WARNING, PEER_FMT "limit=keyvault-timeout", c->id, c->ip);
    reply(c, 476, "signet temporarily unavailable (keyvault timeout)");
    c->verifying = c->signet_wait = false;
    c->seq++;
    c->last = time(NULL);
    rl_conn_lines(s, c);
    c->want = POLLOUT;
}

/* Why c is to be closed for lack of progress, or NULL. Outside a message: no whole command
 * line for idle-timeout. Inside one: no byte for data-timeout (each read counts, as Postfix's
 * smtpd_timeout, so a large message over a slow link arrives), or the message still
 * incomplete after data-time-limit (a byte now and then does not hold a slot for ever). */
static const char *expired(const struct rl_config *cfg, const struct conn *c, time_t now)
{
    if (!c->in_data)
        return now - c->last >= (time_t)cfg->idle_timeout ? "idle timeout" : NULL;
    if (now - c->last >= (time_t)cfg->data_timeout)
        return "data-timeout";
    if (now - c->data_start >= (time_t)cfg->data_time_limit)
        return "data-time-limit";
    return NULL;
}

/* SIGHUP, in the loop: the file is loaded and checked as -n does (with the certificate and
 * key); refused, everything stays as it was. Otherwise the options the loop applies
 * (max-clients, max-errors, the certificate and key, read again even under the same names)
 * hold for what comes next: connections keep the TLS context they started with (OpenSSL
 * counts its references), a message being checked keeps its configuration. The options
 * other threads read at start need a restart; each changed one is logged. */
static void reload(struct server *s)
{
    struct reloaded *r = dc_xcalloc(1, sizeof(*r));
    struct dc_err err = {0};
    SSL_CTX *tls = NULL;
    if (rl_config_load(s->config_path, true, &r->loaded, &err) != DC_OK ||
        dl_tls_server_ctx(r->loaded.tls_cert, r->loaded.tls_key, &tls, &err) != DC_OK) {
        dl_log(LOG_ERR, "reload refused, keeping the running configuration: %s", err.msg);
        rl_config_free(&r->loaded); /* a failed load left it empty */
        free(r);
        return;
    }
    unsigned restart = dc_config_changes(s->cfg->tree, r->loaded.tree, DC_RELAY,
                                         dl_log_change, NULL);
    r->run = *s->cfg; /* shares the strings of the earlier ones, which stay until the end */
    r->run.max_clients = r->loaded.max_clients;
    r->run.max_errors = r->loaded.max_errors;
    r->run.tls_cert = r->loaded.tls_cert;
    r->run.tls_key = r->loaded.tls_key;
    r->run.tree = r->loaded.tree; /* what the next reload compares with */
    r->next = s->reloads;
    s->reloads = r;
    s->cfg = &r->run;
    SSL_CTX_free(s->tls);
    s->tls = tls;
    dl_log(LOG_INFO, "reload config=%s result=done tls-certificate=%s restart-needed=%u",
           s->config_path, r->run.tls_cert, restart);
}

int rl_server_run(int lfd, SSL_CTX *tls, const struct rl_config *cfg, const char *config_path,
                  struct rl_lookupd *lk, const struct rl_server_mail *mail)
{
    struct server s = {.cfg = cfg, .config_path = config_path, .tls = tls, .mail = mail};
    /* as the relay's user: the spool directory is its own, and starts empty */
    struct dc_err serr = {0};
    if (!rl_spool_dir(cfg->data_spool_directory, cfg->queue_database, s.spool_dir,
                      sizeof(s.spool_dir)) ||
        rl_spool_prepare(s.spool_dir, &serr) != DC_OK) {
        dl_log(LOG_CRIT, "fatal: %s", serr.msg[0] ? serr.msg : "spool directory name too long");
        return 1;
    }
    if (pipe2(s.pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        dl_log(LOG_CRIT, "fatal: pipe: %s", strerror(errno));
        return 1;
    }
    SSL_CTX_up_ref(tls); /* the caller keeps its own; s.tls is freed at the end */
    s.keep = kv_keep_new(cfg->keyvault_socket, cfg->inbound_workers + cfg->signet_workers);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    pthread_mutex_init(&s.budget.mu, NULL);
    s.budget.limit = cfg->data_memory_limit;
    s.rates = dc_xcalloc(RATE_MAX, sizeof(*s.rates));
    s.pool = rl_workers_new(vjob_run, NULL, VJOB_IDLE_MS);
    if (mail != NULL && mail->dual_fd >= 0) {
        s.dual = rl_dual_new(mail->dual_fd, cfg->dual_mode_postfix, &s.next_id, dual_handoff, &s);
        if (s.dual == NULL)
            close(mail->dual_fd); /* rl_config_load checked the target: not reached */
        else
            dl_log(LOG_INFO, "dual-mode listening=%s postfix=%s", cfg->dual_mode_listen,
                   cfg->dual_mode_postfix);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block, orig;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &orig);
    /* the caller may have blocked them already (for its threads): ppoll lets them in */
    sigdelset(&orig, SIGTERM);
    sigdelset(&orig, SIGINT);
    sigdelset(&orig, SIGHUP);
    struct pollfd *pfd = NULL;
    dl_log(LOG_INFO, "listening address=%s port=%u", cfg->listen_address, cfg->listen_port);
    while (!stop_flag) {
        if (hup_flag) {
            hup_flag = 0;
            reload(&s);
        }
        pfd = dc_xrealloc(pfd, (s.nconns + 3 + rl_dual_nfds(s.dual)) * sizeof(*pfd));
        pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (size_t i = 0; i < s.nconns; i++)
            pfd[i + 1] = (struct pollfd){.fd = s.conns[i]->fd,
                                         .events = s.conns[i]->verifying ? 0 : s.conns[i]->want};
        size_t np = s.nconns + 1;
        size_t pipe_i = np++;
        pfd[pipe_i] = (struct pollfd){.fd = s.pipe[0], .events = POLLIN};
        if (lk != NULL)
            pfd[np++] = (struct pollfd){.fd = rl_lookupd_fd(lk), .events = POLLIN};
        size_t dual_i = np;
        if (s.dual != NULL) {
            rl_dual_fds(s.dual, pfd + dual_i);
            np += rl_dual_nfds(s.dual);
        }
        struct timespec ts = {1, 0};
        int r = ppoll(pfd, np, &ts, &orig);
        short lrev = r > 0 && lk != NULL ? pfd[dual_i - 1].revents : 0;
        short prev = r > 0 ? pfd[pipe_i].revents : 0;
        if (r < 0 && errno != EINTR) {
            dl_log(LOG_CRIT, "fatal: poll: %s", strerror(errno));
            break;
        }
        time_t now = time(NULL);
        size_t n = s.nconns; /* connections accepted below are served next round */
        rl_count_open_connections((unsigned)n);
        for (size_t i = n; i-- > 0;) {
            struct conn *c = s.conns[i];
            bool keep = true;
            if (r > 0 && pfd[i + 1].revents != 0)
                keep = conn_io(&s, c);
            if (keep && c->signet_wait &&
                mono_ms() - c->job_start_ms >= (long)cfg->keyvault_timeout * 1000)
                signet_late(&s, c);
            const char *why = keep && !c->verifying ? expired(cfg, c, now) : NULL;
            if (why != NULL) {
                if (c->st == ST_OPEN) {
                    char t[80];
                    snprintf(t, sizeof(t), "%s, closing connection", why);
                    reply(c, 421, t);
                    c->st = ST_CLOSING;
                    flush_out(c);
                }
                rl_count_closed(c->in_data ? why : "idle");
                dl_log(c->in_data ? LOG_WARNING : LOG_INFO, PEER_FMT "closed=%s", c->id, c->ip,
                       c->in_data ? why : "idle");
                keep = false;
            }
            if (!keep) {
                conn_free(c);
                s.conns[i] = s.conns[--s.nconns];
                /* the moved connection was polled in slot s.nconns + 1; it is handled
                 * next round, its revents are dropped with this poll set */
                pfd[i + 1] = pfd[s.nconns + 1];
            }
        }
        if (s.dual != NULL) /* after the loop above: a hand-off adds a connection */
            rl_dual_io(s.dual, s.cfg, s.nconns, pfd + dual_i, r > 0);
        if (prev & POLLIN)
            finished(&s);
        if (lrev & POLLIN)
            rl_lookupd_accept(lk);
        if (r > 0 && (pfd[0].revents & POLLIN))
            for (int k = 0; k < 16; k++) {
                size_t before = s.next_id;
                accept_one(&s, lfd);
                if (s.next_id == before)
                    break;
            }
    }
    dl_log(LOG_INFO, "stopping");
    pthread_mutex_lock(&s.mu);
    while (s.running > 0) /* workers point at s */
        pthread_cond_wait(&s.cv, &s.mu);
    pthread_mutex_unlock(&s.mu);
    rl_workers_free(s.pool); /* waits for its idle threads to end */
    rl_dual_free(s.dual);
    for (struct vjob *j = s.done, *n; j != NULL; j = n) {
        n = j->next;
        free(j);
    }
    close(s.pipe[0]);
    close(s.pipe[1]);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    for (size_t i = 0; i < s.nconns; i++)
        conn_free(s.conns[i]);
    free(s.conns);
    pthread_mutex_destroy(&s.budget.mu);
    free(s.rates);
    free(pfd);
    kv_keep_free(s.keep);
    SSL_CTX_free(s.tls);
    for (struct reloaded *r = s.reloads, *n; r != NULL; r = n) {
        n = r->next;
        rl_config_free(&r->loaded);
        free(r);
    }
    return 0;
}
