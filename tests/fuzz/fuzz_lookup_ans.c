/*
 * fuzz_lookup_ans - the lookup client's parser of the relay's answer (lookup_ans_parse,
 * LOOKUP.md): key=value lines up to an empty line, with base64 signets and their
 * fingerprints. Checked: a secure or insecure answer carries an org signet, every
 * fingerprint given matches its signet, and the answer the relay would write for what was
 * parsed (lookup_put, the relay's writer) parses to the same outcome, reason, fingerprints
 * and signets.
 */
#include "lookup_client.h"
#include "lookup_proto.h"

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
    struct lookup_ans a;
    if (lookup_ans_parse((const char *)data, size, &a, NULL) != DC_OK) {
        if (a.org != NULL || a.user != NULL)
            abort(); /* a refused answer hands out no signet */
        return 0;
    }
    if ((a.outcome == LOOKUP_SECURE || a.outcome == LOOKUP_INSECURE) && a.org == NULL)
        abort();
    struct dc_buf b;
    dc_buf_init(&b);
    lookup_put(&b, "outcome", lookup_outcome_name(a.outcome));
    lookup_put(&b, "cached", "no");
    const struct { const char *fpk, *sgk, *fp; struct dc_signet *sg; } s[2] = {
        {"org-fp", "org-signet", a.org_fp, a.org}, {"user-fp", "user-signet", a.user_fp, a.user}};
    for (int i = 0; i < 2; i++) {
        if (s[i].fp[0])
            lookup_put(&b, s[i].fpk, s[i].fp);
        if (s[i].sg) {
            char *t = dc_signet_b64(s[i].sg);
            if (t == NULL)
                abort();
            lookup_put(&b, s[i].sgk, t);
            free(t);
        }
    }
    if (a.reason[0])
        lookup_put(&b, "reason", a.reason);
    dc_buf_putc(&b, '\n');
    struct lookup_ans again;
    if (lookup_ans_parse((const char *)b.data, b.len, &again, NULL) != DC_OK)
        abort();
    if (again.outcome != a.outcome || strcmp(again.reason, a.reason) ||
        strcmp(again.org_fp, a.org_fp) || strcmp(again.user_fp, a.user_fp))
        abort();
    same_signet(a.org, again.org);
    same_signet(a.user, again.user);
    lookup_ans_free(&again);
    lookup_ans_free(&a);
    dc_buf_free(&b);
    return 0;
}
