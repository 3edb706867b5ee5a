/*
 * dc_rollover - the POK rollover signature. See dc_rollover.h.
 */
#include "dc_rollover.h"

#include "dc_b64.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LABEL "DIME POK rollover v1"
#define DOMAIN_MAX 253

/* The signed bytes: label NUL domain NUL old new. */
static size_t link_msg(const char *domain, const uint8_t old[DC_ED25519_PUB_LEN],
                       const uint8_t new_pub[DC_ED25519_PUB_LEN], uint8_t *out)
{
    size_t n = sizeof(LABEL); /* with its NUL */
    memcpy(out, LABEL, n);
    for (size_t i = 0; domain[i] != '\0' && i < DOMAIN_MAX; i++)
        out[n++] = (uint8_t)tolower((unsigned char)domain[i]);
    out[n++] = 0;
    memcpy(out + n, old, DC_ED25519_PUB_LEN);
    n += DC_ED25519_PUB_LEN;
    memcpy(out + n, new_pub, DC_ED25519_PUB_LEN);
    return n + DC_ED25519_PUB_LEN;
}
#define LINK_MSG_MAX (sizeof(LABEL) + DOMAIN_MAX + 1 + 2 * DC_ED25519_PUB_LEN)

void dc_rollover_link_text(const struct dc_rollover_link *l, char *out, size_t cap)
{
    char o[64], n[64], s[100];
    dc_b64_encode(l->old_pok, DC_ED25519_PUB_LEN, o, 0);
    dc_b64_encode(l->new_pok, DC_ED25519_PUB_LEN, n, 0);
    dc_b64_encode(l->sig, DC_ED25519_SIG_LEN, s, 0);
    snprintf(out, cap, "v=1 old=%s new=%s sig=%s", o, n, s);
}

enum dc_status dc_rollover_link_parse(const uint8_t *data, size_t len,
                                      struct dc_rollover_link *l, struct dc_err *err)
{
    /* exactly "v=1 old=" 43 " new=" 43 " sig=" 86 */
    static const size_t want = 8 + 43 + 5 + 43 + 5 + 86;
    const char *t = (const char *)data;
    if (len != want || memcmp(t, "v=1 old=", 8) != 0 || memcmp(t + 51, " new=", 5) != 0 ||
        memcmp(t + 99, " sig=", 5) != 0)
        return dc_fail(err, DC_ERR_FORMAT, "not a version 1 POK rollover link");
    if (dc_b64_decode_exact(t + 8, 43, l->old_pok, DC_ED25519_PUB_LEN, err) != DC_OK ||
        dc_b64_decode_exact(t + 56, 43, l->new_pok, DC_ED25519_PUB_LEN, err) != DC_OK ||
        dc_b64_decode_exact(t + 104, 86, l->sig, DC_ED25519_SIG_LEN, err) != DC_OK)
        return dc_fail(err, DC_ERR_FORMAT, "POK rollover link: bad base64: %s", err ? err->msg : "");
    return DC_OK;
}

enum dc_status dc_rollover_link_sign(const struct dc_signer *old, const char *domain,
                                     const uint8_t new_pub[DC_ED25519_PUB_LEN],
                                     struct dc_rollover_link *l, struct dc_err *err)
{
    if (strlen(domain) > DOMAIN_MAX)
        return dc_fail(err, DC_ERR_ARG, "domain name too long");
    uint8_t msg[LINK_MSG_MAX];
    size_t n = link_msg(domain, old->pub, new_pub, msg);
    memcpy(l->old_pok, old->pub, DC_ED25519_PUB_LEN);
    memcpy(l->new_pok, new_pub, DC_ED25519_PUB_LEN);
    return dc_signer_sign(old, msg, n, l->sig, err);
}

bool dc_rollover_link_valid(const struct dc_rollover_link *l, const char *domain)
{
    if (strlen(domain) > DOMAIN_MAX)
        return false;
    uint8_t msg[LINK_MSG_MAX];
    size_t n = link_msg(domain, l->old_pok, l->new_pok, msg);
    return dc_ed25519_verify(l->old_pok, msg, n, l->sig) == DC_OK;
}

static bool is_link(const struct dc_signet_field *f)
{
    return f->fid == DC_FID_UNDEFINED && f->name_len == strlen(DC_ROLLOVER_FIELD) &&
           memcmp(f->name, DC_ROLLOVER_FIELD, f->name_len) == 0;
}

static enum dc_status add_undefined(struct dc_signet *s, const struct dc_signet_field *f,
                                    struct dc_err *err)
{
    char *name = dc_xstrndup((const char *)f->name, f->name_len);
    enum dc_status st = dc_signet_add_undefined(s, name, f->data, f->len, err);
    free(name);
    return st;
}

enum dc_status dc_rollover_org(const struct dc_signet *org, const char *domain,
                               const struct dc_signer *old_pok, const struct dc_signer *new_pok,
                               struct dc_signet **out, struct dc_err *err)
{
    uint8_t pok[DC_ED25519_PUB_LEN];
    if (org == NULL || org->type != DC_SIGNET_ORG)
        return dc_fail(err, DC_ERR_ARG, "dc_rollover_org: not an org signet");
    enum dc_status st = dc_signet_signing_key(org, pok, err);
    if (st != DC_OK)
        return st;
    if (dc_memeq_ct(pok, old_pok->pub, sizeof(pok)) != 0)
        return dc_fail(err, DC_ERR_KEY, "the old POK is not the org signet's POK");
    if (dc_memeq_ct(pok, new_pok->pub, sizeof(pok)) == 0)
        return dc_fail(err, DC_ERR_KEY, "the new POK is the old one");
    const struct dc_signet_field *enc = dc_signet_field(org, DC_FID_ORG_ENC, 0);
    if (enc == NULL)
        return dc_fail(err, DC_ERR_FIELD, "the org signet has no encryption key");
    size_t nlinks = 0;
    for (size_t i = 0; i < org->nfields; i++)
        nlinks += is_link(&org->fields[i]);
    size_t skip = nlinks >= DC_ROLLOVER_MAX_LINKS ? nlinks - (DC_ROLLOVER_MAX_LINKS - 1) : 0;

    /* the new POK and everything of org but its signatures and SOKs; set_soks below adds the
     * SOKs and signs */
    struct dc_signet *tmp = dc_signet_new(DC_SIGNET_ORG);
    uint8_t pf[1 + DC_ED25519_PUB_LEN] = {0x40};
    memcpy(pf + 1, new_pok->pub, DC_ED25519_PUB_LEN);
    st = dc_signet_add_field(tmp, DC_FID_ORG_POK, pf, sizeof(pf), err);
    if (st == DC_OK)
        st = dc_signet_add_field(tmp, DC_FID_ORG_ENC, enc->data, enc->len, err);
    for (size_t i = 0; st == DC_OK && i < org->nfields; i++) {
        const struct dc_signet_field *f = &org->fields[i];
        if (f->fid <= DC_FID_ORG_CRYPTO || f->fid == DC_FID_FULL || f->fid == DC_FID_IDSIG)
            continue;
        if (is_link(f) && skip > 0) {
            skip--;
            continue;
        }
        if (f->fid == DC_FID_UNDEFINED)
            st = add_undefined(tmp, f, err);
        else
            st = dc_signet_add_field(tmp, f->fid, f->data, f->len, err);
    }
    struct dc_rollover_link l;
    char text[256];
    if (st == DC_OK)
        st = dc_rollover_link_sign(old_pok, domain, new_pok->pub, &l, err);
    if (st == DC_OK) {
        dc_rollover_link_text(&l, text, sizeof(text));
        st = dc_signet_add_undefined(tmp, DC_ROLLOVER_FIELD, (const uint8_t *)text,
                                     strlen(text), err);
    }
    struct dc_sok soks[DC_SIGNET_MAX_SOKS];
    size_t n = dc_signet_soks(org, soks, DC_SIGNET_MAX_SOKS);
    if (st == DC_OK && n > DC_SIGNET_MAX_SOKS)
        st = dc_fail(err, DC_ERR_LIMIT, "%zu SOKs: at most %d", n, DC_SIGNET_MAX_SOKS);
    if (st == DC_OK)
        st = dc_signet_org_set_soks(tmp, soks, n, new_pok, out, err);
    dc_signet_free(tmp);
    return st;
}

bool dc_rollover_chain(const struct dc_signet *org, const char *domain,
                       const uint8_t pinned[DC_ED25519_PUB_LEN], size_t *steps,
                       struct dc_err *why)
{
    uint8_t target[DC_ED25519_PUB_LEN], cur[DC_ED25519_PUB_LEN];
    *steps = 0;
    if (dc_signet_signing_key(org, target, why) != DC_OK)
        return false;
    memcpy(cur, pinned, sizeof(cur));
    size_t seen = 0, bad = 0;
    for (size_t i = 0; i < org->nfields; i++)
        seen += is_link(&org->fields[i]);
    /* each pass follows one link out of cur; links are few (a signet holds at most 64 KiB of
     * them even when someone else wrote it), so the passes are bounded by the field count */
    for (size_t pass = 0; pass <= org->nfields; pass++) {
        if (memcmp(cur, target, sizeof(cur)) == 0)
            return true;
        bool moved = false;
        for (size_t i = 0; i < org->nfields && !moved; i++) {
            struct dc_rollover_link l;
            if (!is_link(&org->fields[i]))
                continue;
            if (dc_rollover_link_parse(org->fields[i].data, org->fields[i].len, &l, NULL) !=
                    DC_OK ||
                memcmp(l.old_pok, cur, sizeof(cur)) != 0)
                continue;
            if (!dc_rollover_link_valid(&l, domain)) {
                bad++;
                continue;
            }
            memcpy(cur, l.new_pok, sizeof(cur));
            (*steps)++;
            moved = true;
        }
        if (!moved)
            break;
    }
    if (seen == 0)
        dc_fail(why, DC_ERR_SIGNATURE, "the org signet carries no POK rollover link");
    else if (bad > 0)
        dc_fail(why, DC_ERR_SIGNATURE, "a POK rollover link from the pinned POK does not "
                "verify");
    else
        dc_fail(why, DC_ERR_SIGNATURE, "no chain of POK rollover links leads from the pinned "
                "POK to the signet's (%zu links, %zu followed)", seen, *steps);
    return false;
}
