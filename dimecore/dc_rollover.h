/*
 * dc_rollover - the POK rollover signature: our extension to the organizational signet that
 * lets a relay which pinned a domain's POK accept a new one (issue 15, ARCHITECTURE.md).
 *
 * It mirrors the user signet's chain of custody (fid 4 of a user signet: the previous signing
 * key signs the new one): the previous POK signs the next POK. libdime has no such field and
 * refuses unknown field ids, so a link is carried in an Undefined-Field (fid 251), which
 * libdime, magma and PRIME parse and skip:
 *
 *   fid 251, name "POK-Rollover", data (text, no NUL):
 *     "v=1 old=<43-char b64 of the old POK> new=<43-char b64 of the new POK> sig=<86-char b64>"
 *
 * sig is an Ed25519 signature by the old POK over
 *     "DIME POK rollover v1" NUL <domain, lower case> NUL <old POK, 32 bytes> <new POK, 32 bytes>
 * so a link is bound to its domain and cannot be lifted from any other signature the POK
 * makes. The fields sit after the crypto signature (fid 4) and before the full one (fid 253),
 * so the new POK's full signature covers them too. A signet may carry several links (one per
 * rollover, oldest first, at most DC_ROLLOVER_MAX_LINKS): a relay that pinned any earlier POK
 * walks the chain from its pin to the signet's POK.
 */
#ifndef DC_ROLLOVER_H
#define DC_ROLLOVER_H

#include "dc_signet.h"

#define DC_ROLLOVER_FIELD "POK-Rollover"
#define DC_ROLLOVER_MAX_LINKS 8

struct dc_rollover_link {
    uint8_t old_pok[DC_ED25519_PUB_LEN];
    uint8_t new_pok[DC_ED25519_PUB_LEN];
    uint8_t sig[DC_ED25519_SIG_LEN];
};

/* The field text of a link (out: at least 256 bytes). */
void dc_rollover_link_text(const struct dc_rollover_link *l, char *out, size_t cap);
/* Parses a link's field text; DC_ERR_FORMAT when it is not one. */
enum dc_status dc_rollover_link_parse(const uint8_t *data, size_t len,
                                      struct dc_rollover_link *l, struct dc_err *err);
/* Signs the link old -> new_pub for domain with old (the old POK). */
enum dc_status dc_rollover_link_sign(const struct dc_signer *old, const char *domain,
                                     const uint8_t new_pub[DC_ED25519_PUB_LEN],
                                     struct dc_rollover_link *l, struct dc_err *err);
bool dc_rollover_link_valid(const struct dc_rollover_link *l, const char *domain);

/*
 * The org signet of domain that follows org under a new POK: the new POK (new_pok, which
 * signs fids 4, 253 and 255), org's encryption key, SOKs (re-listed, so user signets they
 * signed keep verifying), info fields and identifier, org's rollover links (the newest
 * DC_ROLLOVER_MAX_LINKS - 1) and a new link signed by old_pok, which must be org's POK.
 */
enum dc_status dc_rollover_org(const struct dc_signet *org, const char *domain,
                               const struct dc_signer *old_pok, const struct dc_signer *new_pok,
                               struct dc_signet **out, struct dc_err *err);

/* Whether org's POK is reachable from pinned through valid links of org (for domain); *steps
 * gets the number of links walked (0 when org's POK is pinned itself). false with why. */
bool dc_rollover_chain(const struct dc_signet *org, const char *domain,
                       const uint8_t pinned[DC_ED25519_PUB_LEN], size_t *steps,
                       struct dc_err *why);

#endif
