/*
 * submit_client - see submit_client.h and SUBMIT.md.
 */
#include "submit_client.h"
#include "dl_sock.h"

#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

bool submit_qid_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > SUBMIT_QID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return false;
    }
    return true;
}

bool submit_msgid_ok(const char *s, size_t len)
{
    if (len > SUBMIT_MSGID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

bool submit_addr_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 3 || n > SUBMIT_ADDR_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    const char *at = strrchr(s, '@');
    return at && at != s && at[1] != '\0' && at[1] != '.';
}

static bool parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] != '\0') || strlen(s) > 12)
        return false;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t lx = strlen(x), ly = strlen(y);
    int c = memcmp(x, y, lx < ly ? lx : ly);
    return c ? c : (lx < ly ? -1 : lx > ly);
}

enum dc_status submit_key(const char *queue_id, const char *message_id,
                          const char *const *recipients, size_t n, char out[65],
                          struct dc_err *err)
{
    if (!message_id)
        message_id = "";
    if (!submit_qid_ok(queue_id) || !submit_msgid_ok(message_id, strlen(message_id)) ||
        n == 0 || n > SUBMIT_MAX_MESSAGES)
        return dc_fail(err, DC_ERR_ARG, "submission key: bad queue-id, message-id or count");
    const char **sorted = dc_xcalloc(n, sizeof(*sorted));
    for (size_t i = 0; i < n; i++) {
        if (!submit_addr_ok(recipients[i])) {
            free(sorted);
            return dc_fail(err, DC_ERR_ARG, "submission key: recipient %zu is not an address",
                           i + 1);
        }
        sorted[i] = recipients[i];
    }
    qsort(sorted, n, sizeof(*sorted), cmp_str);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        free(sorted);
        return dc_fail(err, DC_ERR_CRYPTO, "SHA-256 unavailable");
    }
    static const char tag[] = "dime-submit-1";
    EVP_DigestUpdate(md, tag, sizeof(tag)); /* with its NUL */
    EVP_DigestUpdate(md, queue_id, strlen(queue_id) + 1);
    EVP_DigestUpdate(md, message_id, strlen(message_id) + 1);
    for (size_t i = 0; i < n; i++)
        EVP_DigestUpdate(md, sorted[i], strlen(sorted[i]) + 1);
    uint8_t h[32];
    unsigned hl = 0;
    EVP_DigestFinal_ex(md, h, &hl);
    EVP_MD_CTX_free(md);
    free(sorted);
    dc_hex_encode(h, 32, out);
    out[64] = '\0';
    return DC_OK;
}

static enum dc_status wait_fd(int fd, short ev, unsigned timeout_s, struct dc_err *err)
{
    struct pollfd p = {.fd = fd, .events = ev};
    for (;;) {
        int r = poll(&p, 1, (int)timeout_s * 1000);
        if (r > 0)
            return DC_OK;
        if (r == 0)
            return dc_fail(err, DC_ERR_IO, "submission socket: timeout");
        if (errno != EINTR)
            return dc_fail(err, DC_ERR_IO, "poll: %s", strerror(errno));
    }
}

/* Sends the iovec array whole (advanced in place): sendmsg first, poll only when the socket
 * has no room, so that a request that fits the socket buffer is one system call and one
 * wake-up of the relay instead of a poll and a send per piece. */
static enum dc_status send_allv(int fd, struct iovec *iov, size_t n, unsigned timeout_s,
                                struct dc_err *err)
{
    while (n > 0) {
        if (iov->iov_len == 0) {
            iov++;
            n--;
            continue;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n < IOV_MAX ? n : IOV_MAX};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                enum dc_status st = wait_fd(fd, POLLOUT, timeout_s, err);
                if (st != DC_OK)
                    return st;
                continue;
            }
            return dc_fail(err, DC_ERR_IO, "submission socket: %s", strerror(errno));
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return DC_OK;
}

void submit_parse_reply(struct submit_result *res)
{
    const char *t = res->text;
    res->code = 0;
    if (strlen(t) < 4 || t[3] != ' ' || t[0] < '2' || t[0] > '5')
        return;
    if (t[1] < '0' || t[1] > '9' || t[2] < '0' || t[2] > '9')
        return;
    int code = (t[0] - '0') * 100 + (t[1] - '0') * 10 + (t[2] - '0');
    const char *s = t + 4;
    size_t sl = strcspn(s, " ");
    if (sl == 0 || sl >= sizeof(res->status))
        return;
    memcpy(res->status, s, sl);
    res->status[sl] = '\0';
    if (code == 250) {
        char word[16], sid[32], cnt[16];
        unsigned long c = 0;
        if (sscanf(s + sl, " %15s %31s %15s", word, sid, cnt) != 3 || strlen(sid) != 16 ||
            strspn(sid, "0123456789abcdefABCDEF") != 16 ||
            (strcmp(word, "queued") && strcmp(word, "duplicate")) ||
            !parse_ulong(cnt, SUBMIT_MAX_MESSAGES, &c) || c == 0)
            return;
        res->duplicate = strcmp(word, "duplicate") == 0;
        memcpy(res->sid, sid, 17);
        res->count = c;
    }
    res->code = code;
}

void submit_put_head(struct dc_buf *b, const struct submit_req *req)
{
    dc_buf_printf(b, "DIME-SUBMIT 1\nqueue-id %s\nmessage-id %s\nmessages %zu\n",
                  req->queue_id, req->message_id ? req->message_id : "", req->nmsgs);
}

void submit_put_msg(struct dc_buf *b, const struct submit_msg *m)
{
    const char *snd = m->sender && *m->sender ? m->sender : "<>";
    dc_buf_printf(b, "message %s %s %zu\n", snd, m->recipient, m->len);
}

/* ---- reading a request (the relay's side) ---- */

struct rd {
    const struct submit_src *src;
    uint8_t buf[4096];
    size_t off, len;
};

static bool fill(struct rd *r)
{
    r->off = 0;
    r->len = r->src->read(r->src->ctx, r->buf, sizeof(r->buf));
    if (r->len > sizeof(r->buf))
        r->len = 0;
    return r->len > 0;
}

/* A header line of at most max - 1 bytes without its LF; false on the end of the input, an
 * overlong line or a NUL byte (which would cut the line short for every string check). */
static bool read_line(struct rd *r, char *out, size_t max)
{
    size_t n = 0;
    for (;;) {
        if (r->off == r->len && !fill(r))
            return false;
        uint8_t c = r->buf[r->off++];
        if (c == '\n') {
            out[n] = '\0';
            return true;
        }
        if (n + 1 >= max || c == '\0')
            return false;
        out[n++] = (char)c;
    }
}

static bool read_bytes(struct rd *r, uint8_t *out, size_t n)
{
    while (n > 0) {
        if (r->off == r->len && !fill(r))
            return false;
        size_t k = r->len - r->off < n ? r->len - r->off : n;
        memcpy(out, r->buf + r->off, k);
        r->off += k;
        out += k;
        n -= k;
    }
    return true;
}

size_t submit_mem_read(void *mem, uint8_t *buf, size_t cap)
{
    struct submit_mem *m = mem;
    size_t k = m->len - m->off;
    if (k > cap)
        k = cap;
    if (m->step > 0 && k > m->step)
        k = m->step;
    memcpy(buf, m->p + m->off, k);
    m->off += k;
    return k;
}

/* Copies s into d (capacity cap), cut to fit. */
static void scpy(char *d, size_t cap, const char *s)
{
    size_t n = strnlen(s, cap - 1);
    memcpy(d, s, n);
    d[n] = '\0';
}

void submit_in_free(struct submit_in *in)
{
    for (size_t i = 0; in->msgs && i < in->n; i++)
        free(in->msgs[i].data);
    free(in->msgs);
    in->msgs = NULL;
    in->n = 0;
}

__attribute__((format(printf, 3, 4)))
static int refuse(char *reply, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reply, SUBMIT_REPLY_MAX, fmt, ap);
    va_end(ap);
    return code;
}

int submit_read(const struct submit_src *src, unsigned long max_message,
                unsigned long max_total, struct submit_in *in,
                char reply[SUBMIT_REPLY_MAX])
{
    memset(in, 0, sizeof(*in));
    reply[0] = '\0';
    struct rd *r = dc_xcalloc(1, sizeof(*r));
    r->src = src;
    char line[1100];
    unsigned long n = 0, total = 0;
    int code = 0;
#define FRAMING(...) do { code = refuse(reply, 500, "500 5.5.2 " __VA_ARGS__); goto out; } while (0)
#define FIELD(...) do { code = refuse(reply, 501, "501 5.5.4 " __VA_ARGS__); goto out; } while (0)
    if (!read_line(r, line, sizeof(line)) || strcmp(line, "DIME-SUBMIT 1") != 0)
        FRAMING("expected DIME-SUBMIT 1");
    if (!read_line(r, line, sizeof(line)) || strncmp(line, "queue-id ", 9) != 0)
        FRAMING("expected queue-id");
    if (!submit_qid_ok(line + 9))
        FIELD("queue-id: 1-64 letters and digits");
    scpy(in->queue_id, sizeof(in->queue_id), line + 9);
    if (!read_line(r, line, sizeof(line)) || strncmp(line, "message-id ", 11) != 0)
        FRAMING("expected message-id");
    if (!submit_msgid_ok(line + 11, strlen(line + 11)))
        FIELD("message-id: at most 998 bytes of printable ASCII");
    scpy(in->message_id, sizeof(in->message_id), line + 11);
    if (!read_line(r, line, sizeof(line)) || strncmp(line, "messages ", 9) != 0)
        FRAMING("expected messages");
    if (!parse_ulong(line + 9, SUBMIT_MAX_MESSAGES, &n) || n == 0)
        FIELD("messages: 1-%d", SUBMIT_MAX_MESSAGES);
    in->msgs = dc_xcalloc(n, sizeof(*in->msgs));
    for (unsigned long i = 0; i < n; i++) {
        struct submit_in_msg *m = &in->msgs[i];
        char snd[300], rcp[300], lens[32];
        if (!read_line(r, line, sizeof(line)))
            FRAMING("expected message %lu", i + 1);
        if (sscanf(line, "message %299s %299s %31s", snd, rcp, lens) != 3)
            FRAMING("message %lu: expected message <sender> <recipient> <length>", i + 1);
        char chk[700];
        snprintf(chk, sizeof(chk), "message %s %s %s", snd, rcp, lens);
        if (strcmp(chk, line) != 0)
            FRAMING("message %lu: expected message <sender> <recipient> <length>", i + 1);
        unsigned long len;
        if (strcmp(snd, "<>") != 0 && !submit_addr_ok(snd))
            FIELD("message %lu: sender is not an address or <>", i + 1);
        if (!submit_addr_ok(rcp))
            FIELD("message %lu: recipient is not an address", i + 1);
        if (!parse_ulong(lens, 4000000000ul, &len) || len == 0)
            FIELD("message %lu: bad length", i + 1);
        if (len > max_message) {
            code = refuse(reply, 552, "552 5.3.4 message %lu: above max-message-size (%lu bytes)",
                          i + 1, max_message);
            goto out;
        }
        total += len;
        if (total > max_total) {
            code = refuse(reply, 552, "552 5.3.4 request above submit-max-total (%lu bytes)",
                          max_total);
            goto out;
        }
        for (unsigned long j = 0; j < i; j++)
            if (strcmp(in->msgs[j].recipient, rcp) == 0)
                FIELD("message %lu: recipient repeated", i + 1);
        scpy(m->sender, sizeof(m->sender), strcmp(snd, "<>") ? snd : "");
        scpy(m->recipient, sizeof(m->recipient), rcp);
        scpy(m->domain, sizeof(m->domain), strrchr(rcp, '@') + 1);
        for (char *p = m->domain; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        in->n = i + 1; /* counts the messages whose data submit_in_free must free */
        m->data = dc_xmalloc(len);
        m->len = len;
        if (!read_bytes(r, m->data, len))
            FRAMING("message %lu: short data", i + 1);
    }
    if (!read_line(r, line, sizeof(line)) || strcmp(line, "end") != 0)
        FRAMING("expected end");
#undef FRAMING
#undef FIELD
out:
    free(r);
    return code;
}

enum dc_status submit_send(const char *socket_path, unsigned timeout_s,
                           const struct submit_req *req, struct submit_result *res,
                           struct dc_err *err)
{
    memset(res, 0, sizeof(*res));
    if (!timeout_s)
        timeout_s = 300;
    const char *mid = req->message_id ? req->message_id : "";
    if (!submit_qid_ok(req->queue_id) || !submit_msgid_ok(mid, strlen(mid)) ||
        req->nmsgs == 0 || req->nmsgs > SUBMIT_MAX_MESSAGES)
        return dc_fail(err, DC_ERR_ARG, "submission: bad queue-id, message-id or count");
    for (size_t i = 0; i < req->nmsgs; i++) {
        const struct submit_msg *m = &req->msgs[i];
        const char *snd = m->sender ? m->sender : "";
        if ((*snd && strcmp(snd, "<>") && !submit_addr_ok(snd)) ||
            !submit_addr_ok(m->recipient) || m->len == 0 || !m->dmime)
            return dc_fail(err, DC_ERR_ARG, "submission: message %zu: bad sender, recipient "
                                            "or data", i + 1);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(req->msgs[j].recipient, m->recipient))
                return dc_fail(err, DC_ERR_ARG, "submission: message %zu: recipient repeated",
                               i + 1);
    }
    /* the sends and the reply wait in poll() with their own deadline */
    int fd = dl_sock_connect("relay submission", socket_path, (int)timeout_s * 1000, 0, err);
    if (fd < 0)
        return err != NULL ? err->code : DC_ERR_IO;
    /* the request's head and each message's line into one buffer (offsets, as the buffer
     * may move while it grows), the D/MIME bytes where they are: one gathered send */
    struct dc_buf h;
    dc_buf_init(&h);
    size_t niov = 2 * req->nmsgs + 2;
    struct iovec *iov = dc_xcalloc(niov, sizeof(*iov));
    size_t *ends = dc_xcalloc(req->nmsgs + 1, sizeof(*ends));
    submit_put_head(&h, req);
    ends[0] = h.len;
    for (size_t i = 0; i < req->nmsgs; i++) {
        submit_put_msg(&h, &req->msgs[i]);
        ends[i + 1] = h.len;
    }
    iov[0] = (struct iovec){h.data, ends[0]};
    for (size_t i = 0; i < req->nmsgs; i++) {
        iov[1 + 2 * i] = (struct iovec){h.data + ends[i], ends[i + 1] - ends[i]};
        iov[2 + 2 * i] = (struct iovec){(void *)(uintptr_t)req->msgs[i].dmime, req->msgs[i].len};
    }
    iov[niov - 1] = (struct iovec){(void *)(uintptr_t)"end\n", 4};
    enum dc_status st = send_allv(fd, iov, niov, timeout_s, err);
    free(ends);
    free(iov);
    dc_buf_free(&h);
    /* The reply: one line. Read it even after a failed send: the relay may have refused
     * early (e.g. 552) and closed. */
    size_t got = 0;
    bool line = false;
    while (got < sizeof(res->text) - 1) {
        if (wait_fd(fd, POLLIN, timeout_s, NULL) != DC_OK)
            break;
        ssize_t r = recv(fd, res->text + got, sizeof(res->text) - 1 - got, MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
        char *nl = memchr(res->text, '\n', got);
        if (nl) {
            *nl = '\0';
            line = true;
            break;
        }
    }
    close(fd);
    if (!line) {
        res->text[0] = '\0';
        if (st != DC_OK)
            return st;
        return dc_fail(err, DC_ERR_IO, "submission: no reply (outcome unknown)");
    }
    if (strchr(res->text, '\r'))
        *strchr(res->text, '\r') = '\0';
    submit_parse_reply(res);
    if (res->code == 0)
        return dc_fail(err, DC_ERR_FORMAT, "submission: unparseable reply");
    if (res->code != 250)
        return dc_fail(err, DC_ERR_FIELD, "submission refused: %s", res->text);
    return DC_OK;
}
