/*
 * Fuzz target: signets. The input is tried as a binary signet and through dc_signet_load
 * (armor or binary). Whatever parses must: give every fingerprint or a clean NOTFOUND, expose
 * its keys, survive verification (org against its own POK, user against a fixed org signet
 * and itself as "previous", SSR alone and with itself as "previous"), and serialize back to
 * exactly the input bytes through base64, armor and dup. A valid SSR is also signed into a
 * user signet, which must then verify as CRYPTO. An org signet's POK rollover links (our
 * extension, dc_rollover.h) are walked from its own POK (always reached, no step) and from a
 * fixed "pinned" POK (reached in at most one step per link, or refused with a reason); the
 * input is also read as one link's field text, which must give the same link back through
 * its text form. Any broken invariant aborts.
 */
#include <stdlib.h>
#include <string.h>

#include "dc_rollover.h"
#include "dc_signet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dc_sign_key *org_key;
static struct dc_signet *org_signet;
static struct dc_signer org_signer;

static void setup(void)
{
    if (org_signet != NULL)
        return;
    uint8_t seed[32], enc[33];
    memset(seed, 0x5a, sizeof(seed));
    struct dc_enc_key *ek = NULL;
    uint8_t priv[32];
    memset(priv, 0x11, sizeof(priv));
    if (dc_sign_key_from_seed(seed, &org_key, NULL) != DC_OK ||
        dc_enc_key_from_private(priv, &ek, NULL) != DC_OK)
        abort();
    memcpy(enc, ek->pub, sizeof(enc));
    dc_enc_key_free(ek);
    if (dc_signet_org_create(org_key, enc, &org_signet, NULL) != DC_OK)
        abort();
    dc_signer_local(&org_signer, org_key);
}

static void same_bytes(const struct dc_signet *a, const struct dc_signet *b)
{
    if (a->bin_len != b->bin_len || memcmp(a->bin, b->bin, a->bin_len) != 0 ||
        a->type != b->type || a->variant != b->variant || a->nfields != b->nfields)
        abort();
}

static void check_failure(enum dc_status st, const void *out, const struct dc_err *err)
{
    if (out != NULL || err->code != st || err->msg[0] == '\0')
        abort();
}

static void exercise(const struct dc_signet *s)
{
    struct dc_err err = {0};
    char fp[DC_FP_B64_LEN + 1];
    for (int k = DC_FP_SSR; k <= DC_FP_ID; k++) {
        enum dc_status st = dc_signet_fingerprint(s, (enum dc_fp_kind)k, fp, &err);
        if (st == DC_OK && strlen(fp) != DC_FP_B64_LEN)
            abort();
        if (st != DC_OK && st != DC_ERR_NOTFOUND)
            abort();
    }
    uint8_t pub[1][32], epub[33];
    if (dc_signet_signing_key(s, pub[0], NULL) != DC_OK) /* the parser requires fid 1 */
        abort();
    (void)dc_signet_enc_key(s, epub, NULL);
    struct dc_sok soks[4];
    (void)dc_signet_soks(s, soks, 4);
    free(dc_signet_id(s));
    for (size_t i = 0; i < s->nfields; i++) {
        const struct dc_signet_field *f = &s->fields[i];
        if (f->end > s->bin_len - 5 || f->data < s->bin || f->data + f->len > s->bin + s->bin_len)
            abort();
        (void)dc_signet_field_name(s->type, f->fid);
    }

    struct dc_err why = {0};
    enum dc_signet_state st;
    switch (s->type) {
    case DC_SIGNET_ORG: {
        st = dc_signet_verify_org(s, (const uint8_t(*)[32])pub, 1, &why);
        size_t steps = 0, links = 0;
        if (!dc_rollover_chain(s, "bob.test", pub[0], &steps, &why) || steps != 0)
            abort();
        for (size_t i = 0; i < s->nfields; i++)
            links += s->fields[i].fid == 251;
        struct dc_err w = {0};
        if (dc_rollover_chain(s, "bob.test", org_key->pub, &steps, &w)
                ? steps > links || (steps == 0 && memcmp(pub[0], org_key->pub, 32) != 0)
                : w.msg[0] == '\0')
            abort();
        break;
    }
    case DC_SIGNET_USER:
        st = dc_signet_verify_user(s, org_signet, NULL, &why);
        (void)dc_signet_verify_user(s, org_signet, s, &why);
        break;
    case DC_SIGNET_SSR: {
        st = dc_signet_verify_ssr(s, NULL, &why);
        (void)dc_signet_verify_ssr(s, s, &why);
        struct dc_signet *u = NULL;
        enum dc_status ss = dc_signet_ssr_sign(s, NULL, &org_signer, &u, &err);
        if (ss == DC_OK) {
            if (st != DC_SS_SSR || dc_signet_verify_user(u, org_signet, NULL, &why) !=
                                       DC_SS_CRYPTO)
                abort();
            struct dc_signet *re = NULL;
            if (dc_signet_parse(u->bin, u->bin_len, &re, NULL) != DC_OK)
                abort();
            same_bytes(u, re);
            dc_signet_free(re);
            dc_signet_free(u);
        } else {
            check_failure(ss, u, &err);
        }
        break;
    }
    default:
        abort();
    }
    if (st > DC_SS_ID)
        abort();

    /* Serialization gives the input back, whatever its variant. */
    struct dc_signet *b = NULL;
    char *b64 = dc_signet_b64(s);
    if (dc_signet_from_b64(b64, strlen(b64), &b, NULL) != DC_OK)
        abort();
    same_bytes(s, b);
    dc_signet_free(b);
    free(b64);
    char *arm = dc_signet_armor(s);
    b = NULL;
    if (dc_signet_load((const uint8_t *)arm, strlen(arm), &b, NULL) != DC_OK)
        abort();
    same_bytes(s, b);
    dc_signet_free(b);
    free(arm);
    struct dc_signet *d = dc_signet_dup(s);
    same_bytes(s, d);
    /* Cutting at a field boundary above fid 1 keeps a parseable signet. */
    uint8_t from = s->nfields > 1 ? s->fields[s->nfields / 2].fid : 0;
    if (from > 1) {
        dc_signet_truncate(d, from);
        b = NULL;
        if (dc_signet_parse(d->bin, d->bin_len, &b, &err) != DC_OK)
            abort();
        dc_signet_free(b);
    }
    dc_signet_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    struct dc_signet *s = NULL;
    struct dc_err err = {0};
    enum dc_status st = dc_signet_parse(data, size, &s, &err);
    if (st == DC_OK) {
        if (s->bin_len != size || memcmp(s->bin, data, size) != 0)
            abort();
        exercise(s);
        dc_signet_free(s);
    } else {
        check_failure(st, s, &err);
    }
    struct dc_rollover_link l, back;
    if (dc_rollover_link_parse(data, size, &l, NULL) == DC_OK) {
        char text[256];
        dc_rollover_link_text(&l, text, sizeof(text));
        if (dc_rollover_link_parse((const uint8_t *)text, strlen(text), &back, NULL) != DC_OK ||
            memcmp(&l, &back, sizeof(l)) != 0)
            abort();
        (void)dc_rollover_link_valid(&l, "bob.test");
    }
    s = NULL;
    memset(&err, 0, sizeof(err));
    st = dc_signet_load(data, size, &s, &err);
    if (st == DC_OK) {
        exercise(s);
        dc_signet_free(s);
    } else {
        check_failure(st, s, &err);
    }
    return 0;
}
