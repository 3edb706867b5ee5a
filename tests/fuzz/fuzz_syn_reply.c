/*
 * fuzz_syn_reply - the parser of a syndicate's XSYN reply (rl_syn_parse, rl_syndicate.c;
 * daemonlib/SYNDICATE.md), fed what the resolver hands it: the text of one reply line after
 * "250 " (dc_dmtp_reply_add cuts it at DC_DMTP_LINE_MAX). The first byte picks whether the
 * domain must be bob.test (as a check asks) or any. Checked: a parsed view has a pok and an
 * fp of base64 characters, a domain of name characters, and the line rl_syn_format writes for
 * it parses to the same view.
 */
#include "rl_syndicate.h"

#include "dc_dmtp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool b64ish(const char *s)
{
    return s[0] != '\0' &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") ==
               strlen(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    bool want = data[0] & 1;
    data++;
    size--;
    char *text = malloc(DC_DMTP_LINE_MAX);
    size_t n = size < DC_DMTP_LINE_MAX - 1 ? size : DC_DMTP_LINE_MAX - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    struct rl_syn_view v;
    struct dc_err e = {0};
    if (rl_syn_parse(text, want ? "bob.test" : NULL, &v, &e) == DC_OK) {
        if (!b64ish(v.pok) || !b64ish(v.fp) || v.domain[0] == '\0' ||
            strspn(v.domain, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_") !=
                strlen(v.domain) ||
            (v.previous_pok[0] != '\0' && !b64ish(v.previous_pok)) || v.first_seen < 0 ||
            v.last_seen < 0)
            abort();
        /* the formatter writes a view back; it parses to the same */
        struct rl_pin pin;
        memset(&pin, 0, sizeof(pin));
        snprintf(pin.domain, sizeof(pin.domain), "%s", v.domain);
        snprintf(pin.pok, sizeof(pin.pok), "%s", v.pok);
        snprintf(pin.org_fp, sizeof(pin.org_fp), "%s", v.fp);
        snprintf(pin.how, sizeof(pin.how), "%s", v.how[0] ? v.how : "x");
        snprintf(pin.previous_pok, sizeof(pin.previous_pok), "%s", v.previous_pok);
        pin.first_seen = v.first_seen;
        pin.last_seen = v.last_seen;
        char again[DC_DMTP_LINE_MAX];
        rl_syn_format(&pin, again, sizeof(again));
        struct rl_syn_view w;
        if (rl_syn_parse(again, v.domain, &w, &e) != DC_OK || strcmp(w.pok, v.pok) != 0 ||
            strcmp(w.fp, v.fp) != 0 || strcmp(w.previous_pok, v.previous_pok) != 0 ||
            w.first_seen != v.first_seen || w.last_seen != v.last_seen)
            abort();
    }
    free(text);
    return 0;
}
