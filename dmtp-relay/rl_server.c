/*
 * rl_server - DMTP DX server loop. See rl_server.h for behaviour and reply codes.
 */
#include "rl_server.h"

#include "dc_dmtp.h"
#include "kv_client.h"
#include "kv_vault.h"
#include "rl_lookup.h"
#include "rl_tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define OUT_HIGH 65536 /* stop reading commands while this much output is queued */

void rl_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dime-relayd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

enum conn_state { ST_HANDSHAKE, ST_OPEN, ST_CLOSING };

struct conn {
    int fd;
    unsigned id;
    SSL *ssl;
    enum conn_state st;
    uint8_t in[DC_DMTP_CMD_MAX];
    size_t inlen;
    bool discarding; /* skipping the rest of an overlong line */
    struct dc_buf out;
    size_t outoff;
    short want;      /* POLLIN / POLLOUT wanted by TLS */
    time_t last;
    unsigned errors;
    bool ehlo;
};

struct server {
    const struct rl_config *cfg;
    SSL_CTX *tls;
    struct conn **conns;
    size_t nconns;
    unsigned next_id;
    struct kv_client *kv;
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
        rl_log("conn=%u keyvault error=\"%s\"", c->id, err.msg);
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
        if (kv_signet_fp(sig, fp, fpc, &err) != DC_OK) {
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
        dc_dmtp_reply_put(&c->out, 250, false, "MODE");
        c->ehlo = true;
        break;
    case DC_DMTP_MAIL:
        if (!c->ehlo) {
            bad(s, c, 503, "send EHLO first");
            code = 503;
        } else {
            reply(c, 502, "mail transfer is not implemented by this relay yet");
            code = 502;
        }
        break;
    case DC_DMTP_RCPT:
    case DC_DMTP_DATA:
        bad(s, c, 503, "no MAIL transaction in progress");
        code = 503;
        break;
    case DC_DMTP_SGNT:
    case DC_DMTP_VRFY: code = cmd_sgnt(s, c, &cmd); break;
    case DC_DMTP_HIST: code = cmd_hist(s, c, &cmd); break;
    case DC_DMTP_MODE: reply(c, 250, "OK DMTPv1"); break;
    case DC_DMTP_NOOP:
    case DC_DMTP_RSET: reply(c, 250, "OK"); break;
    case DC_DMTP_QUIT:
        reply(c, 221, "BYE");
        c->st = ST_CLOSING;
        code = 221;
        break;
    case DC_DMTP_HELP:
        dc_dmtp_reply_put(&c->out, 214, true, "commands: EHLO SGNT VRFY HIST MODE NOOP RSET");
        dc_dmtp_reply_put(&c->out, 214, false, "QUIT HELP (MAIL RCPT DATA: not implemented)");
        code = 214;
        break;
    }
    rl_log("conn=%u cmd=%s code=%d", c->id, dc_dmtp_verb_name(cmd.verb), code);
}

/* ---- connection I/O ---- */

static void conn_free(struct conn *c)
{
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    close(c->fd);
    dc_buf_free(&c->out);
    free(c);
}

/* Consumes complete lines from the input buffer. */
static void lines(struct server *s, struct conn *c)
{
    while (c->st == ST_OPEN && c->out.len - c->outoff < OUT_HIGH) {
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
            rl_log("conn=%u tls handshake failed: %s", c->id, rl_tls_error(b, sizeof(b)));
            return false;
        }
        c->st = ST_OPEN;
        c->last = time(NULL);
        rl_log("conn=%u tls=%s cipher=%s", c->id, SSL_get_version(c->ssl),
               SSL_get_cipher_name(c->ssl));
        dc_dmtp_reply_put(&c->out, 220, false, "%s DMTPv1 dime-relayd ready",
                          s->cfg->hostname);
    }
    if (!flush_out(c))
        return false;
    if (c->outoff < c->out.len)
        return true; /* wait until the peer reads */
    while (c->st == ST_OPEN) {
        if (c->inlen == sizeof(c->in)) {
            lines(s, c);
            if (c->inlen == sizeof(c->in))
                break; /* output backlog: wait */
            continue;
        }
        ERR_clear_error();
        int n = SSL_read(c->ssl, c->in + c->inlen, (int)(sizeof(c->in) - c->inlen));
        if (n > 0) {
            c->inlen += (size_t)n;
            lines(s, c);
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
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    unsigned id = ++s->next_id;
    if (s->nconns >= s->cfg->max_clients) {
        rl_log("conn=%u refused=max-clients", id);
        close(fd);
        return;
    }
    int one = 1; /* replies are small writes: do not let Nagle hold them for an ACK */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct conn *c = dc_xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->id = id;
    c->ssl = SSL_new(s->tls);
    c->last = time(NULL);
    c->want = POLLIN;
    dc_buf_init(&c->out);
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

int rl_server_run(int lfd, SSL_CTX *tls, const struct rl_config *cfg, struct rl_lookupd *lk)
{
    struct server s = {.cfg = cfg, .tls = tls};
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
    struct pollfd *pfd = NULL;
    rl_log("listening address=%s port=%u", cfg->listen_address, cfg->listen_port);
    while (!stop_flag) {
        pfd = dc_xrealloc(pfd, (s.nconns + 2) * sizeof(*pfd));
        pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (size_t i = 0; i < s.nconns; i++)
            pfd[i + 1] = (struct pollfd){.fd = s.conns[i]->fd, .events = s.conns[i]->want};
        size_t np = s.nconns + 1;
        if (lk != NULL)
            pfd[np++] = (struct pollfd){.fd = rl_lookupd_fd(lk), .events = POLLIN};
        struct timespec ts = {1, 0};
        int r = ppoll(pfd, np, &ts, &orig);
        short lrev = r > 0 && lk != NULL ? pfd[np - 1].revents : 0;
        if (r < 0 && errno != EINTR) {
            rl_log("fatal: poll: %s", strerror(errno));
            break;
        }
        time_t now = time(NULL);
        size_t n = s.nconns; /* connections accepted below are served next round */
        for (size_t i = n; i-- > 0;) {
            struct conn *c = s.conns[i];
            bool keep = true;
            if (r > 0 && pfd[i + 1].revents != 0)
                keep = conn_io(&s, c);
            if (keep && now - c->last >= (time_t)cfg->idle_timeout) {
                if (c->st == ST_OPEN) {
                    reply(c, 421, "idle timeout, closing connection");
                    c->st = ST_CLOSING;
                    flush_out(c);
                }
                rl_log("conn=%u closed=idle", c->id);
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
    rl_log("stopping");
    for (size_t i = 0; i < s.nconns; i++)
        conn_free(s.conns[i]);
    free(s.conns);
    free(pfd);
    if (s.kv != NULL)
        kv_client_close(s.kv);
    return 0;
}
