/*
 * fuzz_lookup_ans - the milter's parser of the relay's lookup answer (mf_lookup_parse,
 * LOOKUP.md): key=value lines up to an empty line, with base64 signets and their
 * fingerprints. Checked: a secure or insecure answer carries an org signet, every
 * fingerprint given matches its signet, and the answer the relay would write for what was
 * parsed (rl_lookup_put, the relay's writer) parses to the same outcome, reason, fingerprints
 * and signets.
 */
#include "mf_lookup.h"
#include "rl_lookup_proto.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_signet(const struct dc_signet *a, const struct dc_signet *b)
{
    if ((a == NULL) != (b == NULL))
        abort();
    if (a == NULL)
        return;
    char *x = dc_signet_b64(a), *y = dc_signet_b64(b);
    if (x == NULL || y == NULL || strcmp(x, y) != 0)
        abort();
    free(x);
    free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mf_lookup_ans a;
    if (mf_lookup_parse((const char *)data, size, &a, NULL) != DC_OK) {
        if (a.org != NULL || a.user != NULL)
            abort(); /* a refused answer hands out no signet */
        return 0;
    }
    if ((a.outcome == MF_OUT_SECURE || a.outcome == MF_OUT_INSECURE) && a.org == NULL)
        abort();
    struct dc_buf b;
    dc_buf_init(&b);
    rl_lookup_put(&b, "outcome", mf_outcome_name(a.outcome));
    rl_lookup_put(&b, "cached", "no");
    const struct { const char *fpk, *sgk, *fp; struct dc_signet *sg; } s[2] = {
        {"org-fp", "org-signet", a.org_fp, a.org}, {"user-fp", "user-signet", a.user_fp, a.user}};
    for (int i = 0; i < 2; i++) {
        if (s[i].fp[0])
            rl_lookup_put(&b, s[i].fpk, s[i].fp);
        if (s[i].sg) {
            char *t = dc_signet_b64(s[i].sg);
            if (t == NULL)
                abort();
            rl_lookup_put(&b, s[i].sgk, t);
            free(t);
        }
    }
    if (a.reason[0])
        rl_lookup_put(&b, "reason", a.reason);
    dc_buf_putc(&b, '\n');
    struct mf_lookup_ans again;
    if (mf_lookup_parse((const char *)b.data, b.len, &again, NULL) != DC_OK)
        abort();
    if (again.outcome != a.outcome || strcmp(again.reason, a.reason) ||
        strcmp(again.org_fp, a.org_fp) || strcmp(again.user_fp, a.user_fp))
        abort();
    same_signet(a.org, again.org);
    same_signet(a.user, again.user);
    mf_lookup_ans_free(&again);
    mf_lookup_ans_free(&a);
    dc_buf_free(&b);
    return 0;
}
