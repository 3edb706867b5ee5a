/*
 * mf_inbound - opening D/MIME wrappers for local Trustful recipients (see mf_inbound.h).
 */
#include "mf_inbound.h"

#include "dc_b64.h"
#include "dc_message.h"
#include "lookup_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool mf_wrapper_type(const char *v)
{
    while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
        v++;
    static const char t[] = "application/x-dime";
    if (strncasecmp(v, t, sizeof(t) - 1) != 0)
        return false;
    char c = v[sizeof(t) - 1];
    return c == '\0' || c == ';' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

__attribute__((format(printf, 3, 4)))
static void fail(struct mf_in_result *r, enum mf_event ev, const char *fmt, ...)
{
    if (!r->pass && r->reason[0])
        return; /* the first reason wins */
    r->pass = false;
    r->event = ev;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
    va_end(ap);
    /* the reason goes into a header comment: no parentheses, backslashes or line breaks */
    for (char *p = r->reason; *p; p++)
        if (*p == '(' || *p == ')' || *p == '\\' || (unsigned char)*p < ' ' || *p == 0x7f)
            *p = ' ';
}

/* What the lookup callback saw, so that the caller can map a failure to its event. */
struct lookup_ctx {
    const struct mf_config *cfg;
    const char *local;
    struct mf_in_result *res;
    /* The org signet that came with the author's answer, and the author's domain: the
     * origin is nearly always that domain, and the relay would answer its lookup from the
     * same cache entry under the same DNSSEC requirement (the same local domain), so it is
     * not asked twice. */
    struct dc_signet *author_org;
    const char *author_domain;
};

static enum dc_status find_signet(void *ctx, enum dc_msg_role role, const char *name,
                                  const char *fp, struct dc_signet **out, struct dc_err *err)
{
    struct lookup_ctx *c = ctx;
    if (name == NULL)
        return DC_ERR_NOTFOUND;
    const char *what = role == DC_MSG_AUTHOR_SIGNET ? "author" : "origin";
    if (role == DC_MSG_AUTHOR_SIGNET ? strchr(name, '@') == NULL : strchr(name, '@') != NULL) {
        fail(c->res, MF_EV_VERIFY, "malformed %s in the envelope", what);
        return dc_fail(err, DC_ERR_FIELD, "malformed %s", what);
    }
    /* the origin's org signet is the one the message names (fp): another one when the origin
     * rolled its SOK over since it signed, or since the relay cached it; the relay then gets
     * the named one by its fingerprint */
    char full[DC_FP_B64_LEN + 1], crypto[DC_FP_B64_LEN + 1];
    if (role == DC_MSG_ORIGIN_SIGNET && c->author_org != NULL &&
        strcasecmp(name, c->author_domain) == 0 &&
        (fp == NULL || (dc_signet_fp(c->author_org, full, crypto, NULL) == DC_OK &&
                        strcmp(crypto, fp) == 0))) {
        *out = c->author_org;
        c->author_org = NULL;
        return DC_OK;
    }
    const char *want = role == DC_MSG_ORIGIN_SIGNET ? fp : NULL;
    struct lookup_ans a;
    struct dc_err e = {0};
    if (lookup_query_org(c->cfg->lookup_socket, c->cfg->timeout, name, c->local, want, &a, &e) !=
        DC_OK) {
        fail(c->res, MF_EV_RELAY, "relay lookup of the %s signet failed: %s", what, e.msg);
        return dc_fail(err, DC_ERR_IO, "relay unavailable");
    }
    enum dc_status s = DC_OK;
    if (a.outcome == LOOKUP_SECURE || a.outcome == LOOKUP_INSECURE) {
        struct dc_signet *sg = role == DC_MSG_AUTHOR_SIGNET ? a.user : a.org;
        if (sg == NULL) {
            fail(c->res, MF_EV_NO_SIGNET, "the relay has no %s signet", what);
            s = dc_fail(err, DC_ERR_NOTFOUND, "no %s signet", what);
        } else {
            *out = sg;
            if (role == DC_MSG_AUTHOR_SIGNET) {
                a.user = NULL;
                dc_signet_free(c->author_org);
                c->author_org = a.org;
                c->author_domain = strrchr(name, '@') + 1;
                a.org = NULL;
            } else {
                a.org = NULL;
            }
        }
    } else {
        enum mf_event ev = mf_outcome_event(a.outcome);
        fail(c->res, ev, "%s signet lookup: %s%s%s", what, lookup_outcome_name(a.outcome),
             a.reason[0] ? ", " : "", a.reason);
        s = dc_fail(err, ev == MF_EV_NO_SIGNET ? DC_ERR_NOTFOUND : DC_ERR_IO, "%s lookup %s",
                    what, lookup_outcome_name(a.outcome));
    }
    /* dc_message compares the signet with the envelope's fingerprint */
    lookup_ans_free(&a);
    return s;
}

/* The KEK through the keyvault; records a keyvault failure as such (a refusal for this
 * message's key is a verification failure, not an outage). */
struct kek_ctx {
    struct kv_remote remote;
    struct mf_in_result *res;
};

static enum dc_status derive(void *ctx, const uint8_t eph[DC_SECP_PUB_LEN], struct dc_kek *out,
                             struct dc_err *err)
{
    struct kek_ctx *k = ctx;
    enum dc_status s = kv_remote_kek(&k->remote, eph, out, err);
    if (s != DC_OK) {
        if (kv_client_outage(k->remote.client, s))
            fail(k->res, MF_EV_KEYVAULT, "keyvault: %s", err ? err->msg : "failed");
        else
            fail(k->res, MF_EV_VERIFY, "keyvault refused the recipient key: %s",
                 err ? err->msg : "");
    }
    return s;
}

/* The current key did not open the envelope (noise, not a refusal): a sender may still hold
 * the recipient's previous signet (a relay keeps one for the record's TTL, LOOKUP.md), so
 * the earlier generations the vault still keeps are tried, newest first, each by its
 * fingerprint (KEK with fp). Stops at the first that opens, or that the vault refuses (retired
 * keys are the older ones), or fails otherwise. The history is public data (DMTP HIST). */
#define MF_EARLIER_MAX 8
static enum dc_status open_earlier(struct kv_client *kv, const char *rcpt, const uint8_t *bin,
                                   size_t blen, const struct dc_kek_source *ks,
                                   const struct dc_msg_lookup *lookup, enum dc_status first,
                                   struct dc_message **m, struct mf_in_result *res,
                                   struct dc_err *e)
{
    struct kek_ctx *kc = ks->ctx;
    struct dc_signet **h = NULL;
    size_t n = 0;
    struct dc_err he = {0};
    enum dc_status hs = kv_client_history(kv, rcpt, NULL, NULL, &h, &n, &he);
    if (hs != DC_OK) {
        if (kv_client_outage(kv, hs))
            fail(res, MF_EV_KEYVAULT, "keyvault: history: %s", he.msg);
        return first;
    }
    /* the attempts' keyvault answers go to a scratch result: a refused (retired) earlier key
     * must not replace the current key's failure, an outage must still tempfail */
    struct mf_in_result scratch = {0};
    kc->res = &scratch;
    enum dc_status s = first;
    /* h[n - 1] is the current generation, already tried */
    for (size_t i = n > 0 ? n - 1 : 0, tries = 0; i-- > 0 && tries < MF_EARLIER_MAX; tries++) {
        char fp[DC_FP_B64_LEN + 1], fpc[DC_FP_B64_LEN + 1];
        if (dc_signet_fp(h[i], fp, fpc, &he) != DC_OK)
            break;
        kc->remote.fp = fp;
        struct dc_err te = {0};
        s = dc_message_decrypt(bin, blen, DC_ACTOR_RECIPIENT, ks, lookup, m, &te);
        kc->remote.fp = NULL;
        if (scratch.reason[0]) {
            if (scratch.event == MF_EV_KEYVAULT)
                fail(res, MF_EV_KEYVAULT, "%s", scratch.reason);
            break;
        }
        if (*m != NULL || !(s == DC_ERR_FORMAT || s == DC_ERR_FIELD)) {
            *e = te; /* opened (or failed past the envelope): this attempt's outcome */
            kc->res = res;
            goto out;
        }
    }
    kc->res = res;
    s = first; /* no earlier key opened it: the current key's failure is the one to report */
out:
    for (size_t i = 0; i < n; i++)
        dc_signet_free(h[i]);
    free(h);
    return s;
}

bool mf_from_names(const uint8_t *mime, size_t len, const char *addr)
{
    size_t al = strlen(addr);
    size_t off = 0;
    while (off < len) {
        const uint8_t *nl = memchr(mime + off, '\n', len - off);
        size_t ll = nl ? (size_t)(nl - (mime + off)) : len - off;
        const char *line = (const char *)mime + off;
        if (ll == 0 || (ll == 1 && line[0] == '\r'))
            return false; /* end of the header */
        if (ll >= 5 && strncasecmp(line, "From:", 5) == 0) {
            /* the field with its continuation lines */
            size_t end = off + ll + 1;
            if (end > len)
                end = len; /* the field is the last line, without a line end */
            while (end < len && (mime[end] == ' ' || mime[end] == '\t')) {
                const uint8_t *n2 = memchr(mime + end, '\n', len - end);
                end = n2 ? (size_t)(n2 - mime) + 1 : len;
            }
            for (size_t i = off + 5; i + al <= end; i++)
                if (strncasecmp((const char *)mime + i, addr, al) == 0) {
                    char before = (char)mime[i - 1];
                    char after = i + al < len ? (char)mime[i + al] : '\0';
                    bool lb = before == '<' || before == ' ' || before == '\t' || before == ':';
                    bool rb = after == '>' || after == '\r' || after == '\n' || after == ' ' ||
                              after == ',' || after == '\0';
                    if (lb && rb)
                        return true;
                }
            return false;
        }
        off += ll + 1;
    }
    return false;
}

enum dc_status mf_wrapper_decode(const uint8_t *body, size_t len, uint8_t **out,
                                 size_t *outlen, struct dc_err *err)
{
    *out = NULL;
    *outlen = 0;
    /* base64 with line breaks: keep the alphabet, refuse anything else (range tests in
     * line rather than isalnum(), a library call per byte of every wrapper, in the "C"
     * locale the milter runs in the same set) */
    char *b64 = dc_xmalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = body[i];
        if ((uint8_t)((c | 0x20) - 'a') < 26 || (uint8_t)(c - '0') < 10 || c == '+' ||
            c == '/' || c == '=') {
            b64[n++] = (char)c;
            continue;
        }
        if (c == '\r' || c == '\n' || c == ' ' || c == '\t')
            continue;
        free(b64);
        return dc_fail(err, DC_ERR_FORMAT, "wrapper body: a byte outside base64");
    }
    uint8_t *bin = dc_xmalloc(dc_b64_dec_max(n) + 1);
    enum dc_status s = n == 0 ? dc_fail(err, DC_ERR_FORMAT, "wrapper body: empty")
                              : dc_b64_decode(b64, n, bin, outlen, err);
    free(b64);
    if (s != DC_OK) {
        free(bin);
        *outlen = 0;
        return s;
    }
    *out = bin;
    return DC_OK;
}

uint8_t *mf_wrapper_dmime(const uint8_t *body, size_t len, size_t *outlen)
{
    uint8_t *bin;
    struct dc_dmime *m = NULL;
    if (mf_wrapper_decode(body, len, &bin, outlen, NULL) != DC_OK)
        return NULL;
    if (dc_dmime_parse(bin, *outlen, &m, NULL) != DC_OK) {
        free(bin);
        bin = NULL;
    }
    dc_dmime_free(m);
    return bin;
}

void mf_inbound_open(const struct mf_config *cfg, const struct mf_domain *d,
                     struct kv_client *kv, const char *rcpt, const uint8_t *body, size_t len,
                     struct mf_in_result *res)
{
    memset(res, 0, sizeof(*res));
    uint8_t *bin = NULL;
    size_t blen = 0;
    struct dc_err e = {0};
    if (mf_wrapper_decode(body, len, &bin, &blen, &e) != DC_OK) {
        fail(res, MF_EV_VERIFY, "wrapper body is not base64");
        return;
    }
    struct lookup_ctx lc = {cfg, d->name, res, NULL, NULL};
    struct dc_msg_lookup lookup = {find_signet, &lc};
    struct kek_ctx kc = {{kv, rcpt, KV_PURPOSE_CHUNK, NULL}, res};
    struct dc_kek_source ks = {derive, &kc};
    struct dc_message *m = NULL;
    enum dc_status s = dc_message_decrypt(bin, blen, DC_ACTOR_RECIPIENT, &ks, &lookup, &m, &e);
    if (m == NULL && (s == DC_ERR_FORMAT || s == DC_ERR_FIELD) && res->reason[0] == '\0')
        s = open_earlier(kv, rcpt, bin, blen, &ks, &lookup, s, &m, res, &e);
    dc_signet_free(lc.author_org);
    free(bin);
    if (m) {
        if (m->env.author)
            res->author = dc_xstrdup(m->env.author);
        if (m->env.origin)
            res->origin = dc_xstrdup(m->env.origin);
        if (m->env.author_fp && strlen(m->env.author_fp) == DC_FP_B64_LEN)
            memcpy(res->author_fp, m->env.author_fp, DC_FP_B64_LEN + 1);
        if (m->env.origin_fp && strlen(m->env.origin_fp) == DC_FP_B64_LEN)
            memcpy(res->origin_fp, m->env.origin_fp, DC_FP_B64_LEN + 1);
    }
    if (s != DC_OK) {
        /* a failure the callbacks did not classify is the message's own */
        fail(res, MF_EV_VERIFY, "%s", e.msg[0] ? e.msg : dc_status_name(s));
    } else if (!m->have_author_key || !m->have_origin_key) {
        fail(res, MF_EV_VERIFY, "the %s signature could not be checked",
             m->have_author_key ? "origin" : "author");
    } else if (!m->mime || !m->framed) {
        fail(res, MF_EV_VERIFY, "the message could not be rebuilt byte-exact");
    } else if (!m->env.recipient || strcasecmp(m->env.recipient, rcpt) != 0) {
        fail(res, MF_EV_VERIFY, "the D/MIME recipient is not the envelope recipient");
    } else if (!res->author || !mf_from_names(m->mime, m->mime_len, res->author)) {
        fail(res, MF_EV_VERIFY, "From does not name the signing author");
    } else {
        res->pass = true;
        res->mime = m->mime;
        res->mime_len = m->mime_len;
        m->mime = NULL;
    }
    dc_message_free(m);
}

void mf_in_result_free(struct mf_in_result *res)
{
    free(res->author);
    free(res->origin);
    free(res->mime);
    memset(res, 0, sizeof(*res));
}
