/*
 * dl_metrics - the metric cells and their exposition text. See dl_metrics.h.
 */
#include "dl_metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static size_t nvalues(const char *const *v)
{
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    return n;
}

size_t dl_metric_series(const struct dl_metric *m)
{
    size_t n = 1;
    for (int i = 0; i < 2; i++)
        if (m->label[i] != NULL)
            n *= nvalues(m->values[i]);
    return n;
}

void dl_hist_observe(struct dl_hist *h, const double *bounds, size_t nbounds, uint64_t usec)
{
    size_t i = 0;
    while (i < nbounds && (double)usec > bounds[i] * 1e6)
        i++;
    dl_metric_add(&h->bucket[i], 1);
    dl_metric_add(&h->sum_us, usec);
}

uint64_t dl_metrics_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* HELP text: backslash and line feed escaped. */
static void put_help(struct dc_buf *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            dc_buf_append(out, "\\\\", 2);
        else if (*s == '\n')
            dc_buf_append(out, "\\n", 2);
        else
            dc_buf_putc(out, (uint8_t)*s);
    }
}

/* A label value: backslash, double quote and line feed escaped. */
static void put_value(struct dc_buf *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"')
            dc_buf_putc(out, '\\');
        if (*s == '\n')
            dc_buf_append(out, "\\n", 2);
        else
            dc_buf_putc(out, (uint8_t)*s);
    }
}

/* name{labels of series k[,le="..."]} */
static void put_series(struct dc_buf *out, const struct dl_metric *m, const char *suffix, size_t k,
                       const char *le)
{
    size_t n1 = m->label[1] != NULL ? nvalues(m->values[1]) : 1;
    size_t idx[2] = {k / n1, k % n1};
    dc_buf_printf(out, "%s%s", m->name, suffix);
    bool any = false;
    for (int i = 0; i < 2; i++) {
        if (m->label[i] == NULL)
            continue;
        dc_buf_printf(out, "%s%s=\"", any ? "," : "{", m->label[i]);
        put_value(out, m->values[i][idx[i]]);
        dc_buf_putc(out, '"');
        any = true;
    }
    if (le != NULL) {
        dc_buf_printf(out, "%sle=\"%s\"", any ? "," : "{", le);
        any = true;
    }
    if (any)
        dc_buf_putc(out, '}');
}

static uint64_t get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void write_hist(struct dc_buf *out, const struct dl_metric *m, size_t k)
{
    struct dl_hist *h = &m->hists[k];
    uint64_t total = 0;
    for (size_t b = 0; b <= m->nbounds; b++) {
        char le[32];
        if (b < m->nbounds)
            snprintf(le, sizeof(le), "%g", m->bounds[b]);
        else
            strcpy(le, "+Inf");
        total += get(&h->bucket[b]);
        put_series(out, m, "_bucket", k, le);
        dc_buf_printf(out, " %llu\n", (unsigned long long)total);
    }
    uint64_t sum = get(&h->sum_us);
    put_series(out, m, "_sum", k, NULL);
    dc_buf_printf(out, " %llu.%06llu\n", (unsigned long long)(sum / 1000000u),
                  (unsigned long long)(sum % 1000000u));
    put_series(out, m, "_count", k, NULL);
    dc_buf_printf(out, " %llu\n", (unsigned long long)total);
}

void dl_metrics_write(const struct dl_metric *m, size_t n, struct dc_buf *out)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    for (size_t f = 0; f < n; f++) {
        dc_buf_printf(out, "# HELP %s ", m[f].name);
        put_help(out, m[f].help);
        dc_buf_printf(out, "\n# TYPE %s %s\n", m[f].name, types[m[f].type]);
        size_t ns = dl_metric_series(&m[f]);
        for (size_t k = 0; k < ns; k++) {
            if (m[f].type == DL_METRIC_HISTOGRAM) {
                write_hist(out, &m[f], k);
                continue;
            }
            put_series(out, &m[f], "", k, NULL);
            dc_buf_printf(out, " %llu\n", (unsigned long long)get(&m[f].cells[k]));
        }
    }
}

static bool name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* label="value"[,label="value"...] up to end; false when malformed. */
static bool labels_ok(const char *p, const char *end)
{
    while (p < end) {
        if (!name_start(*p) || *p == ':')
            return false;
        while (p < end && name_char(*p) && *p != ':')
            p++;
        if (end - p < 2 || p[0] != '=' || p[1] != '"')
            return false;
        for (p += 2;; p++) {
            if (p >= end || *p == '\n')
                return false;
            if (*p == '\\') {
                if (++p >= end || (*p != '\\' && *p != '"' && *p != 'n'))
                    return false;
            } else if (*p == '"') {
                break;
            }
        }
        p++;
        if (p < end && *p++ != ',')
            return false;
    }
    return true;
}

static bool value_ok(const char *s, double *v)
{
    if (strcmp(s, "+Inf") == 0 || strcmp(s, "-Inf") == 0 || strcmp(s, "NaN") == 0) {
        *v = s[0] == 'N' ? NAN : s[0] == '+' ? INFINITY : -INFINITY;
        return true;
    }
    char *e;
    if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '-' || s[0] == '+' || s[0] == '.'))
        return false;
    *v = strtod(s, &e);
    return e != s && *e == '\0';
}

bool dl_metrics_parse_sample(const char *line, size_t len, struct dl_metric_sample *out)
{
    memset(out, 0, sizeof(*out));
    const char *p = line, *end = line + len;
    if (len > 0 && end[-1] == '\n')
        end--;
    if (p == end || !name_start(*p))
        return false;
    while (p < end && name_char(*p))
        p++;
    if ((size_t)(p - line) >= sizeof(out->name))
        return false;
    memcpy(out->name, line, (size_t)(p - line));
    if (p < end && *p == '{') {
        /* the closing brace: the last '}' before the value (values may hold braces) */
        const char *close = NULL;
        for (const char *q = p + 1; q < end; q++) {
            if (*q == '\\') {
                q++;
                continue;
            }
            if (*q == '"') {
                for (q++; q < end && *q != '"'; q++)
                    if (*q == '\\')
                        q++;
                continue;
            }
            if (*q == '}') {
                close = q;
                break;
            }
        }
        if (close == NULL || (size_t)(close - p - 1) >= sizeof(out->labels) ||
            !labels_ok(p + 1, close))
            return false;
        memcpy(out->labels, p + 1, (size_t)(close - p - 1));
        p = close + 1;
    }
    if (p >= end || *p != ' ')
        return false;
    p++;
    char val[64];
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    const char *vend = sp != NULL ? sp : end;
    if (vend == p || (size_t)(vend - p) >= sizeof(val))
        return false;
    memcpy(val, p, (size_t)(vend - p));
    val[vend - p] = '\0';
    if (!value_ok(val, &out->value))
        return false;
    if (sp != NULL) { /* an optional timestamp: an integer of milliseconds */
        const char *t = sp + 1;
        if (t < end && *t == '-')
            t++;
        if (t == end)
            return false;
        for (; t < end; t++)
            if (*t < '0' || *t > '9')
                return false;
    }
    return true;
}

/* ---- the endpoint: HTTP/1.0, one request per connection ---- */

struct dl_metrics_server {
    void (*text)(void *ctx, struct dc_buf *out);
    void *ctx;
    int fd[2];   /* Unix, TCP; -1 when not used */
    int stop[2]; /* a byte on stop[1] ends the thread */
    pthread_t th;
};

#define REQ_MAX 4096
#define REQ_MS  2000

static void respond(int fd, const char *status, const char *type, const void *body, size_t n)
{
    struct dc_buf b;
    dc_buf_init(&b);
    dc_buf_printf(&b,
                  "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                  "Connection: close\r\n\r\n",
                  status, type, n);
    dc_buf_append(&b, body, n);
    for (size_t off = 0; off < b.len;) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, REQ_MS) != 1)
            break;
        ssize_t w = send(fd, b.data + off, b.len - off, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    dc_buf_free(&b);
}

static void serve(struct dl_metrics_server *m, int fd)
{
    char req[REQ_MAX + 1] = "";
    size_t n = 0;
    uint64_t end = dl_metrics_now_us() + REQ_MS * 1000u;
    while (n < REQ_MAX && strstr(req, "\r\n\r\n") == NULL && strstr(req, "\n\n") == NULL) {
        uint64_t now = dl_metrics_now_us();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (now >= end || poll(&p, 1, (int)((end - now) / 1000u) + 1) != 1)
            return;
        ssize_t r = recv(fd, req + n, REQ_MAX - n, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return;
        n += (size_t)r;
        req[n] = '\0';
    }
    static const char text[] = "text/plain; charset=utf-8";
    if (strncmp(req, "GET ", 4) != 0) {
        respond(fd, "405 Method Not Allowed", text, "GET only\n", 9);
        return;
    }
    const char *path = req + 4, *sp = strchr(path, ' ');
    size_t pl = sp != NULL ? (size_t)(sp - path) : 0;
    if (!(pl == 8 && memcmp(path, "/metrics", 8) == 0) && !(pl == 1 && path[0] == '/')) {
        respond(fd, "404 Not Found", text, "GET /metrics\n", 13);
        return;
    }
    struct dc_buf body;
    dc_buf_init(&body);
    m->text(m->ctx, &body);
    respond(fd, "200 OK", DL_METRICS_CONTENT_TYPE, body.data, body.len);
    dc_buf_free(&body);
}

static void *run(void *arg)
{
    struct dl_metrics_server *m = arg;
    for (;;) {
        struct pollfd p[3] = {{.fd = m->stop[0], .events = POLLIN},
                              {.fd = m->fd[0], .events = POLLIN},
                              {.fd = m->fd[1], .events = POLLIN}};
        if (poll(p, 3, -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents != 0)
            break;
        for (int i = 1; i < 3; i++) {
            if (!(p[i].revents & POLLIN))
                continue;
            int c = accept4(m->fd[i - 1], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c >= 0) {
                serve(m, c);
                close(c);
            }
        }
    }
    return NULL;
}

enum dc_status dl_metrics_serve(const int fds[2], void (*text)(void *ctx, struct dc_buf *out),
                                void *ctx, struct dl_metrics_server **out, struct dc_err *err)
{
    *out = NULL;
    if (fds[0] < 0 && fds[1] < 0)
        return DC_OK;
    struct dl_metrics_server *m = dc_xcalloc(1, sizeof(*m));
    m->text = text;
    m->ctx = ctx;
    m->fd[0] = fds[0];
    m->fd[1] = fds[1];
    if (pipe2(m->stop, O_CLOEXEC) != 0) {
        free(m);
        return dc_fail(err, DC_ERR_IO, "metrics: pipe: %s", strerror(errno));
    }
    /* the thread takes no signal: they stay with the threads of the daemon that wait for
     * them (a SIGTERM given to this one would end the process without its clean stop) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int e = pthread_create(&m->th, NULL, run, m);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        close(m->stop[0]);
        close(m->stop[1]);
        free(m);
        return dc_fail(err, DC_ERR_IO, "metrics: thread: %s", strerror(e));
    }
    *out = m;
    return DC_OK;
}

void dl_metrics_serve_stop(struct dl_metrics_server *m)
{
    if (m == NULL)
        return;
    (void)!write(m->stop[1], "x", 1);
    pthread_join(m->th, NULL);
    close(m->stop[0]);
    close(m->stop[1]);
    for (int i = 0; i < 2; i++)
        if (m->fd[i] >= 0)
            close(m->fd[i]);
    free(m);
}
