/*
 * lookup_client - client of the relay's lookup service (see lookup_client.h and LOOKUP.md).
 */
#include "lookup_client.h"

#include "dc_mrec.h"
#include "dl_sock.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_MAX 262144

void lookup_ans_free(struct lookup_ans *ans)
{
    dc_signet_free(ans->org);
    dc_signet_free(ans->user);
    ans->org = ans->user = NULL;
}

static enum dc_status set_signet(const char *v, size_t vlen, struct dc_signet **slot,
                                 const char *key, struct dc_err *err)
{
    if (*slot)
        return dc_fail(err, DC_ERR_ORDER, "lookup answer: %s twice", key);
    struct dc_err e = {0};
    if (dc_signet_from_b64(v, vlen, slot, &e) != DC_OK)
        return dc_fail(err, DC_ERR_FORMAT, "lookup answer: %s: %s", key, e.msg);
    return DC_OK;
}

enum dc_status lookup_ans_parse(const char *text, size_t len, struct lookup_ans *ans,
                                struct dc_err *err)
{
    memset(ans, 0, sizeof(*ans));
    ans->policy = -1;
    size_t off = 0;
    int have_outcome = 0, ended = 0;
    enum dc_status s = DC_OK;
    while (off < len && s == DC_OK) {
        const char *line = text + off;
        const char *nl = memchr(line, '\n', len - off);
        if (!nl) {
            s = dc_fail(err, DC_ERR_TRUNCATED, "lookup answer: unterminated line");
            break;
        }
        size_t ll = (size_t)(nl - line);
        off += ll + 1;
        if (ll == 0) {
            ended = 1;
            break;
        }
        if (memchr(line, '\0', ll) != NULL) {
            /* a NUL would cut a value short unseen (a fingerprint, the outcome) */
            s = dc_fail(err, DC_ERR_FORMAT, "lookup answer: a NUL byte");
            break;
        }
        const char *eq = memchr(line, '=', ll);
        if (!eq) {
            s = dc_fail(err, DC_ERR_FORMAT, "lookup answer: a line without '='");
            break;
        }
        size_t kl = (size_t)(eq - line), vlen = ll - kl - 1;
        const char *v = eq + 1;
        char key[32];
        if (kl == 0 || kl >= sizeof(key)) {
            s = dc_fail(err, DC_ERR_FORMAT, "lookup answer: bad key");
            break;
        }
        memcpy(key, line, kl);
        key[kl] = '\0';
        if (!have_outcome) {
            char word[16];
            if (strcmp(key, "outcome") != 0 || vlen >= sizeof(word)) {
                s = dc_fail(err, DC_ERR_FORMAT, "lookup answer: outcome is not first");
                break;
            }
            memcpy(word, v, vlen);
            word[vlen] = '\0';
            int o = lookup_outcome_parse(word);
            if (o < 0) {
                s = dc_fail(err, DC_ERR_FORMAT, "lookup answer: unknown outcome");
                break;
            }
            ans->outcome = (enum lookup_outcome)o;
            have_outcome = 1;
        } else if (strcmp(key, "org-signet") == 0) {
            s = set_signet(v, vlen, &ans->org, key, err);
        } else if (strcmp(key, "user-signet") == 0) {
            s = set_signet(v, vlen, &ans->user, key, err);
        } else if (strcmp(key, "org-fp") == 0 || strcmp(key, "user-fp") == 0) {
            char *dst = key[0] == 'o' ? ans->org_fp : ans->user_fp;
            bool printable = true;
            for (size_t i = 0; i < vlen; i++)
                printable = printable && v[i] > ' ' && v[i] < 0x7f;
            if (vlen != DC_FP_B64_LEN || !printable) {
                s = dc_fail(err, DC_ERR_FORMAT, "lookup answer: %s of the wrong length or "
                                                "with a byte outside printable ASCII", key);
                break;
            }
            memcpy(dst, v, vlen);
            dst[vlen] = '\0';
        } else if (strcmp(key, "policy") == 0) {
            char word[16];
            enum dc_mrec_policy pol;
            if (vlen >= sizeof(word)) {
                s = dc_fail(err, DC_ERR_FORMAT, "lookup answer: unknown policy");
                break;
            }
            memcpy(word, v, vlen);
            word[vlen] = '\0';
            if (dc_mrec_policy_parse(word, &pol, NULL) != DC_OK) {
                s = dc_fail(err, DC_ERR_FORMAT, "lookup answer: unknown policy");
                break;
            }
            ans->policy = (int)pol;
        } else if (strcmp(key, "no-user-signet") == 0) {
            ans->no_user_signet = vlen == 3 && memcmp(v, "yes", 3) == 0;
        } else if (strcmp(key, "no-such-user") == 0) {
            ans->no_such_user = vlen == 3 && memcmp(v, "yes", 3) == 0;
        } else if (strcmp(key, "reason") == 0) {
            dc_safe_str(v, vlen, ans->reason, sizeof(ans->reason) - 4);
        }
        /* other keys (cached, dnssec, record, inherited-from, custody) are informational */
    }
    if (s == DC_OK && (!have_outcome || !ended))
        s = dc_fail(err, DC_ERR_TRUNCATED, "lookup answer: %s",
                    have_outcome ? "no empty line at the end" : "no outcome");
    if (s == DC_OK && (ans->outcome == LOOKUP_SECURE || ans->outcome == LOOKUP_INSECURE) &&
        !ans->org)
        s = dc_fail(err, DC_ERR_FIELD, "lookup answer: %s without an org signet",
                    lookup_outcome_name(ans->outcome));
    /* the fingerprints given must be those of the signets given: dime-relayd names a signet
     * by its ID fingerprint (signed signets), else its full or crypto fingerprint
     * (dc_signet_fp) */
    struct { struct dc_signet *sg; const char *fp; } pairs[2] = {{ans->org, ans->org_fp},
                                                                 {ans->user, ans->user_fp}};
    static const enum dc_fp_kind kinds[] = {DC_FP_ID, DC_FP_FULL, DC_FP_CRYPTO};
    for (int i = 0; i < 2 && s == DC_OK; i++) {
        if (!pairs[i].sg || !pairs[i].fp[0])
            continue;
        bool match = false;
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]) && !match; k++) {
            char fp[DC_FP_B64_LEN + 1];
            match = dc_signet_fingerprint(pairs[i].sg, kinds[k], fp, NULL) == DC_OK &&
                    strcmp(fp, pairs[i].fp) == 0;
        }
        if (!match)
            s = dc_fail(err, DC_ERR_FIELD, "lookup answer: a fingerprint does not match its "
                                           "signet");
    }
    if (s != DC_OK)
        lookup_ans_free(ans);
    return s;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum dc_status lookup_query(const char *socket_path, unsigned timeout_s, const char *name,
                            const char *local_domain, struct lookup_ans *ans, struct dc_err *err)
{
    return lookup_query_org(socket_path, timeout_s, name, local_domain, NULL, ans, err);
}

enum dc_status lookup_query_org(const char *socket_path, unsigned timeout_s, const char *name,
                                const char *local_domain, const char *org_fp,
                                struct lookup_ans *ans, struct dc_err *err)
{
    memset(ans, 0, sizeof(*ans));
    char req[LOOKUP_REQ_MAX + 1];
    size_t rl = lookup_req_format(name, local_domain, org_fp, req, sizeof(req));
    if (rl == 0)
        return dc_fail(err, DC_ERR_ARG, "lookup name not usable");
    /* the answer is awaited in poll() against the deadline below; the I/O bound covers the
     * request's send */
    int ms = (int)timeout_s * 1000;
    int fd = dl_sock_connect("relay lookup", socket_path, ms, ms, err);
    if (fd < 0)
        return err != NULL ? err->code : DC_ERR_IO;
    if (send(fd, req, rl, MSG_NOSIGNAL) != (ssize_t)rl) {
        close(fd);
        return dc_fail(err, DC_ERR_IO, "relay lookup: cannot send the request");
    }
    struct dc_buf b;
    dc_buf_init(&b);
    int64_t deadline = now_ms() + (int64_t)timeout_s * 1000;
    enum dc_status s = DC_OK;
    for (;;) {
        if (b.len >= 2 && memcmp(b.data + b.len - 2, "\n\n", 2) == 0)
            break;
        if (b.len == 1 && b.data[0] == '\n')
            break;
        int64_t left = deadline - now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) != 1) {
            s = dc_fail(err, DC_ERR_IO, "relay lookup: no answer within %u s", timeout_s);
            break;
        }
        dc_buf_reserve(&b, 4096);
        ssize_t n = read(fd, b.data + b.len, 4096);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* closed: the parse tells whether the answer was whole */
        b.len += (size_t)n;
        if (b.len > ANSWER_MAX) {
            s = dc_fail(err, DC_ERR_LIMIT, "relay lookup: answer too long");
            break;
        }
    }
    close(fd);
    if (s == DC_OK)
        s = lookup_ans_parse((const char *)b.data, b.len, ans, err);
    dc_buf_free(&b);
    if (s != DC_OK && s != DC_ERR_ARG)
        s = s == DC_ERR_IO ? DC_ERR_IO : DC_ERR_FORMAT;
    return s;
}
