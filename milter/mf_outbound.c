/*
 * mf_outbound - D/MIME for each DIME recipient and one submission to the relay (see
 * mf_outbound.h and daemonlib/SUBMIT.md).
 */
#include "mf_outbound.h"

#include "dc_message.h"
#include "dl_log.h"
#include "submit_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

__attribute__((format(printf, 4, 5)))
static enum dc_status refuse(struct mf_out_result *r, const struct mf_domain *d,
                             enum mf_event ev, const char *fmt, ...)
{
    struct mf_decision dec;
    mf_policy_outbound_failure(d, ev, &dec);
    r->event = ev;
    r->action = dec.action;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
    va_end(ap);
    return DC_ERR_IO;
}

/* A keyvault failure is an outage unless the vault refused the operation for this account. */
static enum mf_event kv_event(struct kv_client *kv, enum dc_status s)
{
    return kv_client_outage(kv, s) ? MF_EV_KEYVAULT : MF_EV_VERIFY;
}

/* How long a submission whose outcome is unknown is sent again (send_request). */
#define MF_SUBMIT_RESEND_S 30

/* One submission request; res says what to answer when it fails.
 * No reply at all (the relay is down, or died before answering: it may have committed the
 * request) leaves the outcome unknown. A tempfail then would have the client send the message
 * again, as a new Postfix queue id, so a new submission key: a relay that had committed the
 * first would deliver it twice (and after a 4xx). So the same request, same key, goes again
 * every half second for up to MF_SUBMIT_RESEND_S seconds (within timeout): a relay back up by
 * then answers "250 duplicate" for what it had, or commits it now. Only when it stays
 * unreachable longer does the message tempfail with its outcome unknown.
 * own: author-made D/MIME, whose refusal by the relay's checks is the sender's fault (550
 * 5.7.1 with the relay's text), never a policy question. */
static enum dc_status send_request(const struct mf_config *cfg, const struct mf_domain *d,
                                   const char *qid, const char *msgid,
                                   const struct submit_msg *msgs, size_t n, bool own,
                                   struct mf_out_result *res)
{
    struct dc_err e = {0};
    struct submit_req req = {qid, msgid, msgs, n};
    struct submit_result sr;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned resent = 0;
    enum dc_status s;
    for (;;) {
        s = submit_send(cfg->submit_socket, cfg->timeout, &req, &sr, &e);
        if (s == DC_OK || sr.code != 0 || s == DC_ERR_ARG)
            break;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec + 1 > (time_t)(cfg->timeout < MF_SUBMIT_RESEND_S
                                                    ? cfg->timeout : MF_SUBMIT_RESEND_S))
            break;
        nanosleep(&(struct timespec){0, 500000000}, NULL);
        resent++;
    }
    if (resent)
        dl_log(s == DC_OK ? LOG_INFO : LOG_WARNING, "%s: submission sent %u more time%s after no "
               "reply from the relay: %s", qid, resent, resent == 1 ? "" : "s",
               s == DC_OK ? (sr.duplicate ? "250 duplicate" : "250 queued") : e.msg);
    if (s == DC_OK) {
        memcpy(res->sid, sr.sid, sizeof(res->sid));
        res->duplicate = sr.duplicate;
        return DC_OK;
    }
    if (sr.code == 552) {
        /* a size limit of the relay: retrying cannot help */
        res->event = MF_EV_RELAY;
        res->action = MF_REJECT;
        snprintf(res->smtp_status, sizeof(res->smtp_status), ".3.4");
        snprintf(res->reason, sizeof(res->reason), "relay: message too large");
        return DC_ERR_LIMIT;
    }
    if (sr.code == 554 && own) {
        res->event = MF_EV_VERIFY;
        res->action = MF_REJECT;
        snprintf(res->smtp_status, sizeof(res->smtp_status), ".7.1");
        snprintf(res->reason, sizeof(res->reason), "author-made D/MIME refused: %.150s",
                 sr.text);
        return DC_ERR_SIGNATURE;
    }
    if (sr.code == 554)
        return refuse(res, d, MF_EV_VERIFY, "relay refused a message: %.120s", sr.text);
    if (sr.code != 0)
        return refuse(res, d, MF_EV_RELAY, "relay: %.120s", sr.text);
    return refuse(res, d, MF_EV_RELAY, "relay submission: %s", e.msg);
}

enum dc_status mf_outbound_submit_own(const struct mf_config *cfg, const struct mf_domain *d,
                                      const char *qid, const char *msgid, const char *sender,
                                      const char *rcpt, const uint8_t *dmime, size_t len,
                                      struct mf_out_result *res)
{
    memset(res, 0, sizeof(*res));
    struct submit_msg m = {.sender = sender, .recipient = rcpt, .dmime = dmime, .len = len};
    return send_request(cfg, d, qid, msgid, &m, 1, true, res);
}

enum dc_status mf_outbound_submit(const struct mf_config *cfg, const struct mf_domain *d,
                                  struct kv_client *kv, const char *qid, const char *msgid,
                                  const char *sender, const char *envelope,
                                  const struct mf_out_rcpt *rcpts, size_t n,
                                  const uint8_t *mime, size_t len, struct mf_out_result *res)
{
    memset(res, 0, sizeof(*res));
    struct dc_err e = {0};
    struct dc_signet *author = NULL, *origin = NULL;
    enum dc_status s;
    if ((s = kv_client_signet(kv, sender, NULL, &author, &e)) != DC_OK)
        return refuse(res, d, kv_event(kv, s), "keyvault: sender signet: %s", e.msg);
    if ((s = kv_client_signet(kv, d->name, NULL, &origin, &e)) != DC_OK) {
        dc_signet_free(author);
        return refuse(res, d, kv_event(kv, s), "keyvault: org signet: %s", e.msg);
    }
    /* The author's signatures are made by the keyvault; the large ones (the author's full
     * signature covers the whole D/MIME message) stream through it in bounded frames. */
    struct kv_remote ar = {kv, sender, KV_PURPOSE_AUTHOR_FULL, NULL};
    struct dc_signer signer;
    uint8_t author_pub[DC_ED25519_PUB_LEN];
    struct submit_msg *msgs = dc_xcalloc(n, sizeof(*msgs));
    struct dc_dmime **dms = dc_xcalloc(n, sizeof(*dms));
    enum dc_status rc = DC_OK;
    if ((s = dc_signet_signing_key(author, author_pub, &e)) != DC_OK) {
        rc = refuse(res, d, MF_EV_KEYVAULT, "sender signet unusable: %s", e.msg);
        goto out;
    }
    kv_remote_signer(&signer, &ar, author_pub);
    for (size_t i = 0; i < n; i++) {
        struct dc_msg_parties p = {
            .from = sender,
            .to = rcpts[i].addr,
            .author = author,
            .origin = origin,
            .destination = rcpts[i].ans->org,
            .recipient = rcpts[i].ans->user,
        };
        struct dc_mime_limits lim;
        dc_mime_limits_default(&lim);
        lim.max_size = cfg->max_message_size;
        struct dc_msg_opts opts = {.now = 0, .limits = &lim, .max_data = 0};
        s = dc_message_encrypt(mime, len, &p, &signer, NULL, NULL, &opts, &dms[i], &e);
        if (s != DC_OK) {
            rc = refuse(res, d, kv_event(kv, s), "building D/MIME for recipient %zu failed: %s", i + 1, e.msg);
            goto out;
        }
        msgs[i].sender = envelope;
        msgs[i].recipient = rcpts[i].addr;
        msgs[i].dmime = dc_dmime_bytes(dms[i], &msgs[i].len);
    }
    rc = send_request(cfg, d, qid, msgid, msgs, n, false, res);
out:
    for (size_t i = 0; i < n; i++)
        dc_dmime_free(dms[i]);
    free(dms);
    free(msgs);
    dc_signet_free(author);
    dc_signet_free(origin);
    return rc;
}
