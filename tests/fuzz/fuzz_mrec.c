/*
 * Fuzz target: the DNS management record parser. The input is split at '\n' into DNS
 * character-strings (the newlines vanish, as the separators between strings do). Whatever
 * parses must generate, reparse to an equal record and generate the same text again.
 */
#include <stdlib.h>
#include <string.h>

#include "dc_mrec.h"

#define MAX_STRS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dc_mrec_str strs[MAX_STRS];
    size_t n = 0, start = 0;
    for (size_t i = 0; i < size && n < MAX_STRS - 1; i++) {
        if (data[i] == '\n') {
            strs[n].ptr = data + start;
            strs[n].len = i - start;
            n++;
            start = i + 1;
        }
    }
    strs[n].ptr = data + start;
    strs[n].len = size - start;
    n++;

    struct dc_mrec *r = NULL;
    struct dc_err err = {0};
    enum dc_status s = dc_mrec_parse(strs, n, &r, &err);
    if (s != DC_OK) {
        /* a failure carries its code and a message, and no record */
        if (r != NULL || err.code != s || err.msg[0] == '\0')
            abort();
        return 0;
    }

    char *text = NULL;
    s = dc_mrec_generate(r, &text, &err);
    if (s == DC_ERR_LIMIT) {
        /* defaults written out (ver, pol, sub) can push a record near 4096 bytes over */
        dc_mrec_free(r);
        return 0;
    }
    if (s != DC_OK)
        abort();

    struct dc_mrec_str *parts = NULL;
    size_t np = 0;
    dc_mrec_split(text, strlen(text), &parts, &np);
    struct dc_mrec *back = NULL;
    if (dc_mrec_parse(parts, np, &back, &err) != DC_OK)
        abort();
    if (!dc_mrec_equal(r, back) || back->unknown_count != 0)
        abort();
    char *again = NULL;
    if (dc_mrec_generate(back, &again, &err) != DC_OK || strcmp(text, again) != 0)
        abort();
    char *rdata = dc_mrec_txt_rdata(text, strlen(text));
    if (rdata[0] != '"')
        abort();

    free(rdata);
    free(again);
    free(parts);
    dc_mrec_free(back);
    free(text);
    dc_mrec_free(r);
    return 0;
}
