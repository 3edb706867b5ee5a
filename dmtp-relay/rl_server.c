/*
 * rl_server - DMTP DX server loop. See rl_server.h for behaviour and reply codes.
 */
#include "rl_server.h"
#include "rl_server_int.h"
#include "dl_log.h"

#include "dc_dmtp.h"
#include "kv_client.h"

#include "rl_inbound.h"
#include "rl_lookup.h"
#include "rl_queue.h"
#include "rl_tls.h"
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define VJOB_IDLE_MS 10000 /* a verifying thread idle this long ends */

/* An inbound message being checked and committed by a worker thread. */
struct vjob {
    struct server *s;
    unsigned conn_id;
    char ip[INET6_ADDRSTRLEN];
    char mail[DC_DMTP_NAME_MAX + 1], rcpt[DC_DMTP_NAME_MAX + 1];
    uint8_t *data;
    size_t len;
    int code;
    char text[400];
    struct vjob *next;
};

static volatile sig_atomic_t stop_flag;
static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

int rl_server_listen(const struct rl_config *c, struct dc_err *err)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, c->listen_address, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)c->listen_port);
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, c->listen_address, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)c->listen_port);
        sl = sizeof(*s6);
    } else {
        dc_fail(err, DC_ERR_FIELD, "listen-address %.64s is not an IP address",
                c->listen_address);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 128) != 0) {
        dc_fail(err, DC_ERR_IO, "listen on %.64s port %u: %s", c->listen_address,
                c->listen_port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* ---- keyvault access (public data only: SIGNET, HISTORY) ---- */

static struct kv_client *vault(struct server *s, struct dc_err *err)
{
    if (s->kv == NULL && kv_client_connect(s->cfg->keyvault_socket, &s->kv, err) != DC_OK)
        s->kv = NULL;
    return s->kv;
}

/* After a transport failure the connection is dropped and made again on the next use. */
static void vault_failed(struct server *s)
{
    if (s->kv != NULL && kv_client_status(s->kv) == KV_E_INTERNAL) {
        kv_client_close(s->kv);
        s->kv = NULL;
    }
}

static bool local_name(struct server *s, const char *name)
{
    const char *at = strrchr(name, '@');
    return rl_config_domain(s->cfg, at ? at + 1 : name) != NULL;
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
        reply(c, 421, "too many errors, closing connection");
        c->st = ST_CLOSING;
    }
}

static int cmd_sgnt(struct server *s, struct conn *c, const struct dc_dmtp_cmd *cmd)
{
    struct dc_err err = {0};
    struct dc_signet *sig = NULL;
    if (!local_name(s, cmd->name)) {
        reply(c, 576, "not a local domain");
        return 576;
    }
    struct kv_client *kv = vault(s, &err);
    if (kv == NULL) {
        reply(c, 476, "signet temporarily unavailable");
        return 476;
    }
    if (kv_client_signet(kv, cmd->name, cmd->nfp ? cmd->fp[0] : NULL, &sig, &err) != DC_OK) {
        enum kv_status ks = kv_client_status(kv);
        vault_failed(s);
        if (ks == KV_E_NOTFOUND) {
            reply(c, 576, "no such signet");
            return 576;
        }
        dl_log(LOG_ERR, PEER_FMT "keyvault error=\"%s\"", c->id, c->ip, err.msg);
        reply(c, 476, "signet temporarily unavailable");
        return 476;
    }
    int code = 250;
    if (cmd->verb == DC_DMTP_SGNT) {
        char *b64 = dc_signet_b64(sig);
        if (strlen(b64) + 12 > DC_DMTP_LINE_MAX) {
            reply(c, 451, "signet too large for one line");
            code = 451;
        } else {
            dc_dmtp_reply_put(&c->out, 250, false, "OK [%s]", b64);
        }
        free(b64);
    } else { /* VRFY */
        char fp[DC_FP_B64_LEN + 1], fpc[DC_FP_B64_LEN + 1];
        if (dc_signet_fp(sig, fp, fpc, &err) != DC_OK) {
            reply(c, 451, "cannot fingerprint the signet");
            code = 451;
        } else if (strcmp(fp, cmd->fp[0]) == 0 || strcmp(fpc, cmd->fp[0]) == 0) {
            reply(c, 250, "CURRENT");
        } else {
            dc_dmtp_reply_put(&c->out, 250, false, "UPDATE [%s]", fp);
        }
    }
    dc_signet_free(sig);
    return code;
}

static int cmd_hist(struct server *s, struct conn *c, const struct dc_dmtp_cmd *cmd)
{
    struct dc_err err = {0};
    if (strchr(cmd->name, '@') == NULL) {
        bad(s, c, 501, "HIST takes a user address");
        return 501;
    }
    if (!local_name(s, cmd->name)) {
        reply(c, 576, "not a local domain");
        return 576;
    }
    struct kv_client *kv = vault(s, &err);
    struct dc_signet **h = NULL;
    size_t n = 0;
    if (kv == NULL) {
        reply(c, 476, "signet history temporarily unavailable");
        return 476;
    }
    if (kv_client_history(kv, cmd->name, cmd->nfp > 0 ? cmd->fp[0] : NULL,
                          cmd->nfp > 1 ? cmd->fp[1] : NULL, &h, &n, &err) != DC_OK) {
        enum kv_status ks = kv_client_status(kv);
        vault_failed(s);
        reply(c, ks == KV_E_NOTFOUND ? 576 : 476,
              ks == KV_E_NOTFOUND ? "no such signet history" : "history temporarily unavailable");
        return ks == KV_E_NOTFOUND ? 576 : 476;
    }
    for (size_t i = 0; i < n; i++) {
        char *b64 = dc_signet_b64(h[i]);
        dc_dmtp_reply_put(&c->out, 250, true, "[%s]", b64);
        free(b64);
        dc_signet_free(h[i]);
    }
    free(h);
    reply(c, 250, "OK");
    return 250;
}

/* ---- mail transfer (MAIL, RCPT, DATA) ---- */

static void reset_tx(struct conn *c)
{
    c->mail = c->rcpt = c->in_data = false;
    c->mail_domain[0] = c->rcpt_domain[0] = '\0';
    c->size_hint = 0;
    c->data_total = 0;
    dc_buf_free(&c->data);
    dc_buf_init(&c->data);
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
    return 354;
}

static void *vjob_main(void *arg)
{
    struct vjob *j = arg;
    struct server *s = j->s;
    const struct rl_config *cfg = s->cfg;
    struct kv_client *kv = NULL;
    struct dc_err e = {0};
    if (kv_keep_take(s->keep, &kv, &e) != DC_OK) {
        j->code = 476;
        snprintf(j->text, sizeof(j->text), "keyvault unavailable");
    } else {
        struct rl_inbound_result r;
        rl_inbound_check(cfg, s->mail->client_tls, kv, j->mail, j->rcpt, j->data, j->len, &r);
        j->code = r.code;
        snprintf(j->text, sizeof(j->text), "%s", r.text);
        if (r.code == 250) {
            struct rl_queue *q = NULL;
            char tid[24];
            bool dup = false;
            if (rl_queue_take(cfg->queue_database, cfg->queue_key_file, &q, &e) != DC_OK ||
                rl_queue_in_add(q, j->data, j->len, r.recipient, r.origin, tid, &dup, &e) !=
                    DC_OK) {
                dl_log(LOG_ERR, PEER_FMT "inbound queue error=\"%s\"", j->conn_id, j->ip,
                       e.msg);
                j->code = 451;
                snprintf(j->text, sizeof(j->text), "local error, try again later");
            } else {
                snprintf(j->text, sizeof(j->text), "OK [%s]", tid);
                dl_log(LOG_INFO, PEER_FMT "inbound tid=%s origin=%s size=%zu%s", j->conn_id,
                       j->ip, tid, r.origin, j->len, dup ? " duplicate" : " committed");
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
    free(j->data);
    j->data = NULL;
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
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void vjob_run(void *ctx, void *job)
{
    (void)ctx;
    vjob_main(job);
}

/* The whole message arrived: hand it to a worker; the reply comes when it is done. */
static void start_check(struct server *s, struct conn *c)
{
    pthread_mutex_lock(&s->mu);
    bool full = s->running >= s->cfg->inbound_workers;
    if (!full)
        s->running++;
    pthread_mutex_unlock(&s->mu);
    if (full) {
        reply(c, 431, "destination limits exceeded, try again later");
        reset_tx(c);
        return;
    }
    struct vjob *j = dc_xcalloc(1, sizeof(*j));
    j->s = s;
    j->conn_id = c->id;
    memcpy(j->ip, c->ip, sizeof(j->ip));
    strcpy(j->mail, c->mail_domain);
    strcpy(j->rcpt, c->rcpt_domain);
    j->data = dc_buf_steal(&c->data, &j->len);
    j->len = c->data_total;
    dc_buf_init(&c->data);
    c->verifying = true;
    /* a kept thread, not one created (and its stack mapped, faulted in and released) for
     * each inbound message */
    if (!rl_workers_run(s->pool, j)) {
        free(j->data);
        free(j);
        c->verifying = false;
        pthread_mutex_lock(&s->mu);
        s->running--;
        pthread_mutex_unlock(&s->mu);
        reply(c, 451, "local error, try again later");
        reset_tx(c);
    }
}

/* Takes DATA bytes from the input buffer. */
static void data_in(struct server *s, struct conn *c)
{
    size_t want;
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
            reply(c, code, t);
            reply(c, 421, "cannot resynchronize, closing connection");
            c->st = ST_CLOSING;
            reset_tx(c);
            return;
        }
        c->data_total = total;
        /* bytes read beyond the message and its CRLF go back to the command buffer */
        if (c->data.len > total + 2) {
            size_t extra = c->data.len - total - 2;
            memcpy(c->in, c->data.data + total + 2, extra);
            c->inlen = extra;
            c->data.len = total + 2;
        }
        dc_buf_reserve(&c->data, total + 2 - c->data.len);
    } else {
        want = c->data_total + 2 - c->data.len;
        size_t take = c->inlen < want ? c->inlen : want;
        dc_buf_append(&c->data, c->in, take);
        memmove(c->in, c->in + take, c->inlen - take);
        c->inlen -= take;
    }
    if (c->data.len < c->data_total + 2)
        return;
    c->in_data = false;
    c->last = time(NULL);
    if (c->data.data[c->data_total] != '\r' || c->data.data[c->data_total + 1] != '\n') {
        reply(c, 451, "data corrupted: the message is not followed by CRLF");
        reply(c, 421, "cannot resynchronize, closing connection");
        c->st = ST_CLOSING;
        reset_tx(c);
        return;
    }
    start_check(s, c);
}

static void command(struct server *s, struct conn *c, const char *line, size_t len)
{
    struct dc_dmtp_cmd cmd;
    struct dc_err err = {0};
    c->last = time(NULL); /* only whole lines count as activity (slow senders time out) */
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
        dc_dmtp_reply_put(&c->out, 250, false, "SIZE %lu", s->cfg->max_message_size);
        c->ehlo = true;
        break;
    case DC_DMTP_MAIL: code = cmd_mail(s, c, line, len); break;
    case DC_DMTP_RCPT: code = cmd_rcpt(s, c, line, len); break;
    case DC_DMTP_DATA: code = cmd_data(s, c); break;
    case DC_DMTP_SGNT:
    case DC_DMTP_VRFY: code = cmd_sgnt(s, c, &cmd); break;
    case DC_DMTP_HIST: code = cmd_hist(s, c, &cmd); break;
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
    dl_log(LOG_INFO, PEER_FMT "cmd=%s code=%d", c->id, c->ip, dc_dmtp_verb_name(cmd.verb), code);
}

/* ---- connection I/O ---- */

static void conn_free(struct conn *c)
{
    dl_log(LOG_INFO, PEER_FMT "disconnect", c->id, c->ip);
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    close(c->fd);
    dc_buf_free(&c->out);
    dc_buf_free(&c->data);
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
        *room = c->data_total + 2 - c->data.len;
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
                   rl_tls_error(b, sizeof(b)));
            return false;
        }
        c->st = ST_OPEN;
        c->last = time(NULL);
        dl_log(LOG_INFO, PEER_FMT "tls=%s cipher=%s", c->id, c->ip, SSL_get_version(c->ssl),
               SSL_get_cipher_name(c->ssl));
        dc_dmtp_reply_put(&c->out, 220, false, "%s DMTPv1 dime-relayd ready", s->cfg->hostname);
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

static void accept_one(struct server *s, int lfd)
{
    struct sockaddr_storage sa;
    socklen_t sl = sizeof(sa);
    int fd = accept4(lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    unsigned id = ++s->next_id;
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, ip, sizeof(ip));
    else if (sa.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, ip, sizeof(ip));
    if (s->nconns >= s->cfg->max_clients) {
        dl_log(LOG_WARNING, PEER_FMT "refused=max-clients", id, ip);
        close(fd);
        return;
    }
    dl_log(LOG_INFO, PEER_FMT "connect", id, ip);
    int one = 1; /* replies are small writes: do not let Nagle hold them for an ACK */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct conn *c = dc_xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->id = id;
    memcpy(c->ip, ip, sizeof(c->ip));
    c->ssl = SSL_new(s->tls);
    c->last = time(NULL);
    c->want = POLLIN;
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
            if (c->id != j->conn_id || !c->verifying)
                continue;
            reply(c, j->code, j->text);
            dl_log(LOG_INFO, PEER_FMT "cmd=DATA code=%d", c->id, c->ip, j->code);
            c->verifying = false;
            c->last = time(NULL);
            reset_tx(c);
            rl_conn_lines(s, c); /* commands the peer sent meanwhile */
            c->want = POLLOUT;
            break;
        }
        free(j);
        j = next;
    }
}

int rl_server_run(int lfd, SSL_CTX *tls, const struct rl_config *cfg, struct rl_lookupd *lk,
                  const struct rl_server_mail *mail)
{
    struct server s = {.cfg = cfg, .tls = tls, .mail = mail};
    if (pipe2(s.pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        dl_log(LOG_CRIT, "fatal: pipe: %s", strerror(errno));
        return 1;
    }
    s.keep = kv_keep_new(cfg->keyvault_socket, cfg->inbound_workers);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    s.pool = rl_workers_new(vjob_run, NULL, VJOB_IDLE_MS);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block, orig;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &orig);
    /* the caller may have blocked them already (for its threads): ppoll lets them in */
    sigdelset(&orig, SIGTERM);
    sigdelset(&orig, SIGINT);
    struct pollfd *pfd = NULL;
    dl_log(LOG_INFO, "listening address=%s port=%u", cfg->listen_address, cfg->listen_port);
    while (!stop_flag) {
        pfd = dc_xrealloc(pfd, (s.nconns + 3) * sizeof(*pfd));
        pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (size_t i = 0; i < s.nconns; i++)
            pfd[i + 1] = (struct pollfd){.fd = s.conns[i]->fd,
                                         .events = s.conns[i]->verifying ? 0 : s.conns[i]->want};
        size_t np = s.nconns + 1;
        size_t pipe_i = np++;
        pfd[pipe_i] = (struct pollfd){.fd = s.pipe[0], .events = POLLIN};
        if (lk != NULL)
            pfd[np++] = (struct pollfd){.fd = rl_lookupd_fd(lk), .events = POLLIN};
        struct timespec ts = {1, 0};
        int r = ppoll(pfd, np, &ts, &orig);
        short lrev = r > 0 && lk != NULL ? pfd[np - 1].revents : 0;
        short prev = r > 0 ? pfd[pipe_i].revents : 0;
        if (r < 0 && errno != EINTR) {
            dl_log(LOG_CRIT, "fatal: poll: %s", strerror(errno));
            break;
        }
        time_t now = time(NULL);
        size_t n = s.nconns; /* connections accepted below are served next round */
        for (size_t i = n; i-- > 0;) {
            struct conn *c = s.conns[i];
            bool keep = true;
            if (r > 0 && pfd[i + 1].revents != 0)
                keep = conn_io(&s, c);
            if (keep && !c->verifying && now - c->last >= (time_t)cfg->idle_timeout) {
                if (c->st == ST_OPEN) {
                    reply(c, 421, "idle timeout, closing connection");
                    c->st = ST_CLOSING;
                    flush_out(c);
                }
                dl_log(LOG_INFO, PEER_FMT "closed=idle", c->id, c->ip);
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
    free(pfd);
    if (s.kv != NULL)
        kv_client_close(s.kv);
    kv_keep_free(s.keep);
    return 0;
}
