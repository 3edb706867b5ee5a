/*
 * rl_inbound - the checks on a message received over DMTP, before the relay commits it.
 *
 *  1. rl_inbound_frame: the length of the D/MIME message from its first bytes (optional
 *     tracing header, then magic 1847 and the 4-byte size), checked against the relay's
 *     max-message-size and the SIZE= the sender announced. No key is used.
 *  2. rl_inbound_parse: the D/MIME structure (dc_dmime_parse). No key is used. The fuzz
 *     targets fuzz_dmtp_session (the framing, within the server's DATA path) and fuzz_dmime
 *     drive these two.
 *  3. rl_inbound_check: opens the message as the destination (KEK through the keyvault as
 *     the local domain named in RCPT TO), reads Recipient and Origin from the envelope,
 *     refuses a recipient of another domain or one the vault does not know (510), resolves
 *     the origin's org signet (rl_lookup_cached: DNSSEC record, DX, signet verified against
 *     the record's POKs), checks it against Origin-Signet and verifies every origin
 *     signature the destination can see (578 when one fails).
 *
 * Reply codes (dmime-dmtp.md 12.3): 451 data corrupted (length or terminator wrong),
 * 470 origin signet temporarily unavailable, 476 keyvault unavailable, 501 not a D/MIME
 * message, 510 invalid recipient, 552 too large, 570 origin signet unavailable (permanent),
 * 575 invalid origin signet, 576 not for this destination, 578 invalid origin signature.
 */
#ifndef RL_INBOUND_H
#define RL_INBOUND_H

#include "dc_dmime.h"
#include "rl_config.h"

#include <openssl/ssl.h>

/* DC_OK: *total is the message length (header included). DC_ERR_TRUNCATED: fewer bytes than
 * the header needs (call again with more). Other errors: *code is the reply (451, 552). */
enum dc_status rl_inbound_frame(const uint8_t *p, size_t n, unsigned long max,
                                unsigned long size_hint, size_t *total, int *code,
                                struct dc_err *err);
enum dc_status rl_inbound_parse(const uint8_t *p, size_t n, struct dc_dmime **out,
                                struct dc_err *err);

struct rl_inbound_result {
    int code;                /* 250 when the message may be committed */
    char text[300];          /* reply text for other codes */
    char recipient[256];
    char origin[256];
};
struct kv_client;
struct dc_fmap;
/* p and n are the message; map, when not NULL, is the mapped spool file they lie in
 * (rl_spool.h): the parse and the signature passes then stream over it. */
void rl_inbound_check(const struct rl_config *cfg, SSL_CTX *client_tls, struct kv_client *kv,
                      const char *mail_domain, const char *rcpt_domain, const uint8_t *p,
                      size_t n, const struct dc_fmap *map, struct rl_inbound_result *res);

#endif
