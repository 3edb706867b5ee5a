/*
 * cl_decrypt - what dime-client makes of one message from the user's mailbox (sync and
 * decrypt share it): a D/MIME wrapper (Content-Type: application/x-dime, the D/MIME bytes in
 * base64, as dime-relayd injects it) is opened with the user's own encryption key, every
 * signature is checked, and the original message is rebuilt byte for byte.
 *
 * Trust: the author's user signet and the origin's org signet come only from what the user
 * holds locally: the signet directory (ADDRESS.signet, DOMAIN.signet, verified by the user
 * out of band) and the user's own imported signets (user.signet, org.signet). The message
 * names its signets by fingerprint only, so the provider cannot put other keys in their
 * place; the user signet must verify under its org signet, and dc_message checks that both
 * are the ones the envelope names. A signet the user does not hold makes the message
 * "unverified": dime=fail, never pass.
 *
 * Result, always one new first header field, "Authentication-Results: ID; dime=..." (ID is
 * the authserv-id, default "dime-client"):
 *   pass  every check passed; the rest is the rebuilt message exactly as the author's side
 *         encrypted it.
 *   fail  anything else (the reason in a comment); the rest is the wrapper as it came, so
 *         no unverified content is ever shown as the author's.
 *   none  not a wrapper; the rest is the message as it came.
 * In every case Authentication-Results fields that claim ID are removed from the rest: only
 * this client's own verdict carries its name (a provider could otherwise put "dime=pass"
 * into a plain message). Nothing else is changed.
 */
#ifndef CL_DECRYPT_H
#define CL_DECRYPT_H

#include "cl_state.h"

#include "dc_crypto.h"
#include "dc_signet.h"

#define CL_AUTHSERV_DEFAULT "dime-client"

enum cl_dime { CL_DIME_PASS = 0, CL_DIME_FAIL = 1, CL_DIME_NONE = 2 };
const char *cl_dime_name(enum cl_dime r);

struct cl_reader {
    const char *address;            /* the key's address: the only recipient accepted */
    const struct dc_enc_key *ek;    /* the user's encryption key */
    const char *signets;            /* the signet directory */
    const struct dc_signet *own_user, *own_org; /* the imported signets, or NULL */
    const char *authserv_id;
    const struct dc_enc_key *const *older; /* the keys of earlier generations, tried in turn */
    size_t nolder;
};

struct cl_opened {
    enum cl_dime result;
    char reason[200];               /* fail: why (no parentheses, backslashes or controls) */
    char *author;                   /* the envelope's author when it was read */
    uint8_t digest[CL_DIGEST_LEN];  /* of the D/MIME bytes (a wrapper), else the message */
    uint8_t *msg;                   /* the message to hand out, our field first */
    size_t len;
};

/* Never fails: every problem is a fail result. Free with cl_opened_free. */
void cl_open_message(const struct cl_reader *r, const uint8_t *in, size_t len,
                     struct cl_opened *out);
void cl_opened_free(struct cl_opened *o);

#endif
