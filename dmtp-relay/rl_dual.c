/*
 * rl_dual - the dual-mode front: sessions between a client on port 25 and Postfix's smtpd,
 * inside the DX server's poll loop. See rl_dual.h.
 */
#include "rl_dual.h"

#include "dl_log.h"
#include "rl_metrics.h"
#include "rl_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum dstate {
    D_CONNECT,  /* connecting to Postfix */
    D_BANNER,   /* PROXY header sent, waiting for Postfix's greeting */
    D_FIRST,    /* greeting passed on, waiting for the client's first command */
    D_STARTTLS, /* DMTP: the 220 to STARTTLS is being written, then the hand-off */
    D_PIPE,     /* SMTP: bytes copied both ways */
    D_CLOSING,  /* a last reply to the client is being written, then close */
};

/* Bytes waiting to go one way: b[off .. off+len). */
struct dq {
    size_t off, len;
    uint8_t b[RL_DUAL_BUF];
};

struct dsess {
    int cfd, pfd; /* client, Postfix (-1: closed) */
    unsigned id;
    char ip[INET6_ADDRSTRLEN];
    unsigned port;
    enum dstate st;
    const char *mode; /* as logged: smtp, dmtp, refused, closed */
    bool cl_eof, pf_eof;
    time_t start, last;
    long start_ms; /* CLOCK_MONOTONIC, for the logged duration */
    unsigned long long in, out; /* bytes from and to the client */
    struct dq up;               /* client -> Postfix */
    struct dq down;             /* Postfix -> client */
};

struct rl_dual {
    int lfd;
    unsigned *next_id;
    rl_dual_handoff *handoff;
    void *ctx;
    struct dsess **v;
    size_t n;
    struct sockaddr_storage target;
    socklen_t target_len;
};

/* ---- configuration ---- */

int rl_dual_listen(const char *spec, struct dc_err *err)
{
    char host[64];
    unsigned port;
    if (!rl_config_hostport(spec, host, &port)) {
        dc_fail(err, DC_ERR_FIELD, "dual-mode-listen \"%.64s\" is not ADDRESS:PORT", spec);
        return -1;
    }
    struct rl_config at = {.listen_address = host, .listen_port = port};
    return rl_server_listen(&at, err);
}

struct rl_dual *rl_dual_new(int lfd, const char *target, unsigned *next_id,
                            rl_dual_handoff *handoff, void *ctx)
{
    struct rl_dual *d = dc_xcalloc(1, sizeof(*d));
    if (!rl_dual_target(target, &d->target, &d->target_len)) {
        free(d);
        return NULL;
    }
    d->lfd = lfd;
    d->next_id = next_id;
    d->handoff = handoff;
    d->ctx = ctx;
    return d;
}

/* ---- buffers ---- */

/* Room at the end of q, moving what waits to the front when that makes room. */
static size_t dq_room(struct dq *q)
{
    if (q->len == 0)
        q->off = 0;
    else if (q->off > 0 && q->off + q->len > sizeof(q->b) / 2) {
        memmove(q->b, q->b + q->off, q->len);
        q->off = 0;
    }
    return sizeof(q->b) - q->off - q->len;
}

static void dq_put(struct dq *q, const void *p, size_t n)
{
    if (dq_room(q) < n) /* only short replies are put: a full queue drops them */
        return;
    memcpy(q->b + q->off + q->len, p, n);
    q->len += n;
}

/* Reads what fits from fd into q: bytes read, 0 (nothing now), -1 (end of file or error). */
static ssize_t dq_fill(int fd, struct dq *q)
{
    size_t room = dq_room(q);
    if (room == 0)
        return 0;
    ssize_t r = read(fd, q->b + q->off + q->len, room);
    if (r > 0) {
        q->len += (size_t)r;
        return r;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    return -1;
}

/* Writes what q holds to fd: bytes written, or -1 on error. */
static ssize_t dq_drain(int fd, struct dq *q)
{
    ssize_t total = 0;
    while (q->len > 0) {
        ssize_t w = send(fd, q->b + q->off, q->len, MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? total : -1;
        q->off += (size_t)w;
        q->len -= (size_t)w;
        total += w;
    }
    return total;
}

/* ---- sessions ---- */

static const char HANDOFF[] = "starttls"; /* the end of a DMTP session's front part */

static long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sess_end(struct dsess *x, const char *why)
{
    long ms = mono_ms() - x->start_ms;
    dl_log(LOG_INFO, "conn=%u ip=%s port=%u dual mode=%s in=%llu out=%llu ms=%ld end=%s", x->id,
           x->ip, x->port, x->mode, x->in, x->out, ms, why);
    if (x->cfd >= 0)
        close(x->cfd);
    if (x->pfd >= 0)
        close(x->pfd);
    free(x);
}

/* A last reply to the client (the Postfix side is closed), then the end. */
static void sess_last(struct dsess *x, const char *mode, const char *reply)
{
    if (x->pfd >= 0)
        close(x->pfd);
    x->pfd = -1;
    x->mode = mode;
    x->down.len = 0;
    dq_put(&x->down, reply, strlen(reply));
    x->st = D_CLOSING;
}

static void postfix_down(struct dsess *x, const char *what)
{
    dl_log(LOG_WARNING, "conn=%u ip=%s dual postfix unavailable: %s", x->id, x->ip, what);
    sess_last(x, "refused", "421 4.3.0 Service unavailable, try again later\r\n");
}

/* A new client: its session, connecting to Postfix, the PROXY header queued. */
static void accept_one(struct rl_dual *d, const struct rl_config *cfg, size_t others)
{
    struct sockaddr_storage sa, me;
    socklen_t sl = sizeof(sa), ml = sizeof(me);
    int fd = accept4(d->lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct dsess *x = dc_xcalloc(1, sizeof(*x));
    x->cfd = fd;
    x->pfd = -1;
    x->id = ++*d->next_id;
    x->start = x->last = time(NULL);
    x->start_ms = mono_ms();
    x->mode = "closed";
    snprintf(x->ip, sizeof(x->ip), "?");
    if (sa.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, x->ip, sizeof(x->ip));
        x->port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
    } else if (sa.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, x->ip, sizeof(x->ip));
        x->port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    d->v = dc_xrealloc(d->v, (d->n + 1) * sizeof(*d->v));
    d->v[d->n++] = x;
    if (d->n - 1 + others >= cfg->max_clients) {
        rl_count_limit(RL_LIMIT_MAX_CLIENTS);
        dl_log(LOG_WARNING, "conn=%u ip=%s dual refused=max-clients", x->id, x->ip);
        sess_last(x, "refused", "421 4.3.2 Too many connections, try again later\r\n");
        return;
    }
    uint8_t hdr[RL_DUAL_PROXY_MAX];
    size_t hl = 0;
    if (getsockname(fd, (struct sockaddr *)&me, &ml) == 0)
        hl = rl_dual_proxy_v2((struct sockaddr *)&sa, (struct sockaddr *)&me, hdr);
    if (hl == 0) {
        postfix_down(x, "no PROXY header for this address family");
        return;
    }
    dq_put(&x->up, hdr, hl);
    x->pfd = socket(d->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (x->pfd < 0 ||
        (connect(x->pfd, (struct sockaddr *)&d->target, d->target_len) != 0 &&
         errno != EINPROGRESS)) {
        postfix_down(x, strerror(errno));
        return;
    }
    if (d->target.ss_family != AF_UNIX)
        setsockopt(x->pfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    x->st = D_CONNECT;
}

/* The client's first command decides (rl_dual_classify). */
static void first(struct dsess *x)
{
    size_t ll = 0;
    enum rl_dual_first f = rl_dual_classify(x->up.b + x->up.off, x->up.len, &ll);
    if (f == RL_DUAL_MORE)
        return;
    if (f == RL_DUAL_SMTP) {
        x->mode = "smtp";
        x->st = D_PIPE; /* the bytes in up go to Postfix as they are */
        return;
    }
    x->mode = "dmtp";
    if (ll != x->up.len) { /* nothing may come before TLS: it would be read as plain text */
        sess_last(x, "dmtp", "503 5.5.1 Nothing may follow STARTTLS before TLS\r\n");
        return;
    }
    static const char quit[] = "QUIT\r\n";
    ssize_t w = send(x->pfd, quit, sizeof(quit) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w; /* Postfix ends the session on QUIT or on the close that follows */
    close(x->pfd);
    x->pfd = -1;
    x->up.len = 0;
    x->down.len = 0; /* whatever Postfix said after its greeting is not for a DMTP peer */
    static const char go[] = "220 2.0.0 Ready to start TLS\r\n";
    dq_put(&x->down, go, sizeof(go) - 1);
    x->st = D_STARTTLS;
}

/* Postfix's greeting arrived (or part of it): passed on with DMTPv1. */
static void banner(struct dsess *x)
{
    struct dc_buf out;
    dc_buf_init(&out);
    size_t used = 0;
    int code = 0;
    enum dc_status st = rl_dual_banner(x->down.b + x->down.off, x->down.len, &out, &used, &code);
    if (st == DC_ERR_TRUNCATED && dq_room(&x->down) > 0) {
        dc_buf_free(&out);
        return;
    }
    if (st != DC_OK || out.len > sizeof(x->down.b)) {
        dc_buf_free(&out);
        postfix_down(x, "no SMTP greeting");
        return;
    }
    /* the greeting, rewritten, then anything after it as it came */
    size_t rest = x->down.len - used;
    uint8_t *tail = x->down.b + x->down.off + used;
    if (out.len + rest > sizeof(x->down.b)) {
        dc_buf_free(&out);
        postfix_down(x, "greeting too long");
        return;
    }
    memmove(x->down.b + out.len, tail, rest);
    memcpy(x->down.b, out.data, out.len);
    x->down.off = 0;
    x->down.len = out.len + rest;
    dc_buf_free(&out);
    /* a greeting that refuses (421, 554): the client hears it from Postfix, SMTP follows */
    x->st = code == 220 ? D_FIRST : D_PIPE;
    if (code != 220)
        x->mode = "smtp";
}

/* Copies what can go each way. False when the session is over (why set). */
static bool pump(struct dsess *x, short cr, short pr, const char **why)
{
    bool read_client = x->st == D_FIRST || x->st == D_PIPE;
    bool write_postfix = x->st == D_PIPE || x->st == D_BANNER;
    if (x->pfd >= 0 && (x->st == D_BANNER || x->st == D_FIRST || x->st == D_PIPE) &&
        (pr & (POLLIN | POLLHUP | POLLERR)) && !x->pf_eof) {
        ssize_t r = dq_fill(x->pfd, &x->down);
        if (r > 0)
            x->last = time(NULL);
        else if (r < 0)
            x->pf_eof = true;
    }
    if (read_client && (cr & (POLLIN | POLLHUP | POLLERR)) && !x->cl_eof) {
        ssize_t r = dq_fill(x->cfd, &x->up);
        if (r > 0) {
            x->in += (unsigned long long)r;
            x->last = time(NULL);
        } else if (r < 0) {
            x->cl_eof = true;
        }
    }
    if (write_postfix && x->up.len > 0 && dq_drain(x->pfd, &x->up) < 0) {
        *why = "postfix write error";
        return false;
    }
    if (x->st != D_BANNER && x->st != D_CONNECT && x->down.len > 0) {
        ssize_t w = dq_drain(x->cfd, &x->down);
        if (w < 0) {
            *why = "client write error";
            return false;
        }
        if (w > 0) {
            x->out += (unsigned long long)w;
            x->last = time(NULL);
        }
    }
    return true;
}

/* One session after poll: false when it is over (logged and freed by the caller). */
static bool step(struct rl_dual *d, struct dsess *x, short cr, short pr, const char **why)
{
    if ((cr & POLLERR) ||
        ((cr & POLLHUP) && !(cr & POLLIN) && (x->st == D_CONNECT || x->st == D_BANNER))) {
        *why = "client closed";
        return false;
    }
    if (x->st == D_CONNECT) {
        if (!(pr & (POLLOUT | POLLERR | POLLHUP)))
            return true;
        int e = 0;
        socklen_t el = sizeof(e);
        if (getsockopt(x->pfd, SOL_SOCKET, SO_ERROR, &e, &el) != 0 || e != 0) {
            postfix_down(x, strerror(e != 0 ? e : errno));
        } else {
            x->st = D_BANNER;
            pr = POLLOUT; /* the PROXY header goes now */
        }
    }
    if (!pump(x, cr, pr, why))
        return false;
    if (x->st == D_BANNER) {
        if (x->down.len > 0)
            banner(x);
        else if (x->pf_eof)
            postfix_down(x, "closed before its greeting");
        if (x->st == D_FIRST || x->st == D_PIPE) /* the greeting goes out now */
            return step(d, x, POLLOUT, 0, why);
    }
    if (x->st == D_FIRST) {
        if (x->up.len > 0)
            first(x);
        if (x->st == D_PIPE && !pump(x, 0, POLLOUT, why)) /* the first line to Postfix */
            return false;
    }
    if (x->st == D_FIRST && (x->cl_eof || x->pf_eof) && x->down.len == 0) {
        *why = x->cl_eof ? "client closed" : "postfix closed";
        return false;
    }
    if (x->st == D_PIPE) {
        if (x->cl_eof && x->up.len == 0) {
            *why = "client closed";
            return false;
        }
        if (x->pf_eof && x->down.len == 0) {
            *why = "postfix closed";
            return false;
        }
        /* a peer gone while its queue is full: nothing more can move */
        if (((cr & (POLLHUP | POLLERR)) && dq_room(&x->up) == 0) ||
            ((pr & (POLLHUP | POLLERR)) && dq_room(&x->down) == 0)) {
            *why = "hangup";
            return false;
        }
    }
    if (x->st == D_STARTTLS || x->st == D_CLOSING) {
        if (x->down.len > 0) /* pump wrote what the client took */
            return true;
        if (x->st == D_CLOSING) {
            *why = "replied";
            return false;
        }
        *why = HANDOFF; /* DMTP: rl_dual_io gives the socket to the DX server */
        return false;
    }
    return true;
}

/* Why x has run out of time, or NULL. */
static const char *expired(const struct rl_config *cfg, const struct dsess *x, time_t now)
{
    if (x->st == D_CONNECT || x->st == D_BANNER)
        return now - x->last >= (time_t)cfg->connect_timeout ? "postfix timeout" : NULL;
    if (x->st == D_STARTTLS || x->st == D_CLOSING) /* a last reply the client does not take */
        return now - x->last >= (time_t)cfg->connect_timeout ? "write timeout" : NULL;
    if (now - x->last >= (time_t)cfg->dual_mode_timeout)
        return "idle timeout";
    if (now - x->start >= (time_t)cfg->dual_mode_time_limit)
        return "time limit";
    return NULL;
}

size_t rl_dual_count(const struct rl_dual *d)
{
    return d != NULL ? d->n : 0;
}

size_t rl_dual_nfds(const struct rl_dual *d)
{
    return d != NULL ? 1 + 2 * d->n : 0;
}

static short client_events(struct dsess *x)
{
    short e = x->down.len > 0 && x->st != D_BANNER && x->st != D_CONNECT ? POLLOUT : 0;
    if ((x->st == D_FIRST || x->st == D_PIPE) && !x->cl_eof && dq_room(&x->up) > 0)
        e |= POLLIN;
    return e;
}

static short postfix_events(struct dsess *x)
{
    if (x->st == D_CONNECT)
        return POLLOUT;
    short e = x->up.len > 0 && (x->st == D_BANNER || x->st == D_PIPE) ? POLLOUT : 0;
    if ((x->st == D_BANNER || x->st == D_FIRST || x->st == D_PIPE) && !x->pf_eof &&
        dq_room(&x->down) > 0)
        e |= POLLIN;
    return e;
}

void rl_dual_fds(const struct rl_dual *d, struct pollfd *p)
{
    p[0] = (struct pollfd){.fd = d->lfd, .events = POLLIN};
    for (size_t i = 0; i < d->n; i++) {
        struct dsess *x = d->v[i];
        /* a side at its end is not polled: its hangup would wake the loop for ever */
        p[1 + 2 * i] = (struct pollfd){.fd = x->cl_eof ? -1 : x->cfd, .events = client_events(x)};
        p[2 + 2 * i] = (struct pollfd){.fd = x->pf_eof ? -1 : x->pfd, .events = postfix_events(x)};
    }
}

void rl_dual_io(struct rl_dual *d, const struct rl_config *cfg, size_t others,
                const struct pollfd *p, bool polled)
{
    time_t now = time(NULL);
    for (size_t i = d->n; i-- > 0;) {
        struct dsess *x = d->v[i];
        const char *why = NULL;
        short cr = polled ? p[1 + 2 * i].revents : 0, pr = polled ? p[2 + 2 * i].revents : 0;
        bool keep = (cr == 0 && pr == 0) || step(d, x, cr, pr, &why);
        if (keep && (why = expired(cfg, x, now)) != NULL) {
            keep = false;
            if (x->st == D_CONNECT || x->st == D_BANNER) {
                postfix_down(x, why);
                keep = true; /* the 421 goes out first (D_CLOSING has its own time) */
                x->last = now;
            }
        }
        if (!keep) {
            int fd = why == HANDOFF ? x->cfd : -1;
            unsigned id = x->id;
            char ip[sizeof(x->ip)];
            memcpy(ip, x->ip, sizeof(ip));
            if (fd >= 0)
                x->cfd = -1;
            sess_end(x, why != NULL ? why : "closed"); /* the front's line comes first */
            d->v[i] = d->v[--d->n];
            if (fd >= 0)
                d->handoff(d->ctx, fd, id, ip);
        }
    }
    if (polled && (p[0].revents & POLLIN))
        for (int k = 0; k < 16; k++) {
            unsigned before = *d->next_id;
            accept_one(d, cfg, others);
            if (*d->next_id == before)
                break;
        }
}

void rl_dual_free(struct rl_dual *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++)
        sess_end(d->v[i], "stopping");
    free(d->v);
    close(d->lfd);
    free(d);
}
