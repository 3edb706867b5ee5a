/*
 * mf_outbound - the outbound conversion of one Postfix message from a local Trustful sender:
 * one D/MIME message per DIME recipient (author form, signed as the sender through the
 * keyvault; the relay adds the origin signatures, SUBMIT.md), all handed to dime-relayd in
 * one atomic, idempotent submission; or the D/MIME a Cautious or Paranoid sender's client
 * made, submitted as it is.
 */
#ifndef MF_OUTBOUND_H
#define MF_OUTBOUND_H

#include "kv_client.h"
#include "mf_config.h"
#include "lookup_client.h"

struct mf_out_rcpt {
    const char *addr;          /* bare address */
    struct lookup_ans *ans; /* secure or insecure answer with both signets */
};

struct mf_out_result {
    enum mf_event event;  /* on failure */
    enum mf_action action; /* on failure: reject or tempfail (mf_policy_outbound_failure) */
    char smtp_status[8];  /* on failure: "" for the event's reply (mf_event_reply), or the
                             enhanced status without class (".3.4") for the reason as text */
    char reason[200];     /* on failure: for the log (no addresses) */
    char sid[17];         /* on success: the relay's submission id */
    bool duplicate;
};

/*
 * Builds and submits. mime is the whole message as Postfix has it (header fields as
 * received, CR LF line ends), author-signed as sender; envelope is the relay's envelope
 * sender (the same address, or "" for a notice's null sender). DC_OK once the relay committed every message; otherwise res
 * says what to answer.
 */
enum dc_status mf_outbound_submit(const struct mf_config *cfg, const struct mf_domain *d,
                                  struct kv_client *kv, const char *qid, const char *msgid,
                                  const char *sender, const char *envelope,
                                  const struct mf_out_rcpt *rcpts, size_t n,
                                  const uint8_t *mime, size_t len, struct mf_out_result *res);

/*
 * Submits D/MIME the sender's own client made (author form, for one recipient) as it is: the
 * relay checks it (destination domain, author signatures against the author's signet) and
 * adds the origin signatures, as for the milter's own messages.
 */
enum dc_status mf_outbound_submit_own(const struct mf_config *cfg, const struct mf_domain *d,
                                      const char *qid, const char *msgid, const char *sender,
                                      const char *rcpt, const uint8_t *dmime, size_t len,
                                      struct mf_out_result *res);

#endif
