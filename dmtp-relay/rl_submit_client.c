/*
 * rl_submit_client - see rl_submit_client.h and SUBMIT.md.
 */
#include "rl_submit_client.h"

#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

bool rl_submit_qid_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > RL_SUBMIT_QID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return false;
    }
    return true;
}

bool rl_submit_msgid_ok(const char *s, size_t len)
{
    if (len > RL_SUBMIT_MSGID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

bool rl_submit_addr_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 3 || n > RL_SUBMIT_ADDR_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    const char *at = strrchr(s, '@');
    return at && at != s && at[1] != '\0' && at[1] != '.';
}

static int cmp_str(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t lx = strlen(x), ly = strlen(y);
    int c = memcmp(x, y, lx < ly ? lx : ly);
    return c ? c : (lx < ly ? -1 : lx > ly);
}

enum dc_status rl_submit_key(const char *queue_id, const char *message_id,
                             const char *const *recipients, size_t n, char out[65],
                             struct dc_err *err)
{
    if (!message_id)
        message_id = "";
    if (!rl_submit_qid_ok(queue_id) || !rl_submit_msgid_ok(message_id, strlen(message_id)) ||
        n == 0 || n > RL_SUBMIT_MAX_MESSAGES)
        return dc_fail(err, DC_ERR_ARG, "submission key: bad queue-id, message-id or count");
    const char **sorted = dc_xcalloc(n, sizeof(*sorted));
    for (size_t i = 0; i < n; i++) {
        if (!rl_submit_addr_ok(recipients[i])) {
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

static enum dc_status send_all(int fd, const void *p, size_t n, unsigned timeout_s,
                               struct dc_err *err)
{
    const uint8_t *b = p;
    while (n > 0) {
        enum dc_status st = wait_fd(fd, POLLOUT, timeout_s, err);
        if (st != DC_OK)
            return st;
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return dc_fail(err, DC_ERR_IO, "submission socket: %s", strerror(errno));
        }
        b += w;
        n -= (size_t)w;
    }
    return DC_OK;
}

static void parse_reply(struct rl_submit_result *res)
{
    const char *t = res->text;
    if (strlen(t) < 4 || t[3] != ' ' || t[0] < '2' || t[0] > '5')
        return;
    int code = (t[0] - '0') * 100 + (t[1] - '0') * 10 + (t[2] - '0');
    if (t[1] < '0' || t[1] > '9' || t[2] < '0' || t[2] > '9')
        return;
    const char *s = t + 4;
    size_t sl = strcspn(s, " ");
    if (sl == 0 || sl >= sizeof(res->status))
        return;
    memcpy(res->status, s, sl);
    res->status[sl] = '\0';
    if (code == 250) {
        char word[16], sid[32];
        unsigned long cnt = 0;
        if (sscanf(s + sl, " %15s %31s %lu", word, sid, &cnt) != 3 || strlen(sid) != 16 ||
            (strcmp(word, "queued") && strcmp(word, "duplicate")))
            return;
        res->duplicate = strcmp(word, "duplicate") == 0;
        memcpy(res->sid, sid, 17);
        res->count = cnt;
    }
    res->code = code;
}

enum dc_status rl_submit(const char *socket_path, unsigned timeout_s,
                         const struct rl_submit_req *req, struct rl_submit_result *res,
                         struct dc_err *err)
{
    memset(res, 0, sizeof(*res));
    if (!timeout_s)
        timeout_s = 300;
    const char *mid = req->message_id ? req->message_id : "";
    if (!rl_submit_qid_ok(req->queue_id) || !rl_submit_msgid_ok(mid, strlen(mid)) ||
        req->nmsgs == 0 || req->nmsgs > RL_SUBMIT_MAX_MESSAGES)
        return dc_fail(err, DC_ERR_ARG, "submission: bad queue-id, message-id or count");
    for (size_t i = 0; i < req->nmsgs; i++) {
        const struct rl_submit_msg *m = &req->msgs[i];
        const char *snd = m->sender ? m->sender : "";
        if ((*snd && strcmp(snd, "<>") && !rl_submit_addr_ok(snd)) ||
            !rl_submit_addr_ok(m->recipient) || m->len == 0 || !m->dmime)
            return dc_fail(err, DC_ERR_ARG, "submission: message %zu: bad sender, recipient "
                                            "or data", i + 1);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(req->msgs[j].recipient, m->recipient))
                return dc_fail(err, DC_ERR_ARG, "submission: message %zu: recipient repeated",
                               i + 1);
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(socket_path) >= sizeof(sa.sun_path))
        return dc_fail(err, DC_ERR_ARG, "submission socket path too long");
    memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return dc_fail(err, DC_ERR_IO, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        dc_fail(err, DC_ERR_IO, "%s: %s", socket_path, strerror(errno));
        close(fd);
        return DC_ERR_IO;
    }
    struct dc_buf h;
    dc_buf_init(&h);
    dc_buf_printf(&h, "DIME-SUBMIT 1\nqueue-id %s\nmessage-id %s\nmessages %zu\n",
                  req->queue_id, mid, req->nmsgs);
    enum dc_status st = send_all(fd, h.data, h.len, timeout_s, err);
    for (size_t i = 0; st == DC_OK && i < req->nmsgs; i++) {
        const struct rl_submit_msg *m = &req->msgs[i];
        const char *snd = m->sender && *m->sender ? m->sender : "<>";
        h.len = 0;
        dc_buf_printf(&h, "message %s %s %zu\n", snd, m->recipient, m->len);
        st = send_all(fd, h.data, h.len, timeout_s, err);
        if (st == DC_OK)
            st = send_all(fd, m->dmime, m->len, timeout_s, err);
    }
    if (st == DC_OK)
        st = send_all(fd, "end\n", 4, timeout_s, err);
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
    parse_reply(res);
    if (res->code == 0)
        return dc_fail(err, DC_ERR_FORMAT, "submission: unparseable reply");
    if (res->code != 250)
        return dc_fail(err, DC_ERR_FIELD, "submission refused: %s", res->text);
    return DC_OK;
}
