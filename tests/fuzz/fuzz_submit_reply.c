/*
 * fuzz_submit_reply - the milter's parser of the relay's submission reply
 * (submit_parse_reply, SUBMIT.md Reply), fed the way submit_send() reads it: at most 511
 * bytes up to the first LF, a CR cut off. Checked: a parsed reply has a code of 200-599 and a
 * status without spaces; a 250 has queued/duplicate, a 16-hex-digit sid and a count of
 * 1-1000, and the line the relay would write for it (rl_submit.c) parses to the same.
 */
#include "submit_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct submit_result r;
    memset(&r, 0, sizeof(r));
    size_t n = size < sizeof(r.text) - 1 ? size : sizeof(r.text) - 1;
    memcpy(r.text, data, n);
    r.text[n] = '\0';
    char *nl = memchr(r.text, '\n', n);
    if (nl)
        *nl = '\0';
    if (strchr(r.text, '\r'))
        *strchr(r.text, '\r') = '\0';
    submit_parse_reply(&r);
    if (r.code == 0)
        return 0;
    if (r.code < 200 || r.code > 599 || r.status[0] == '\0' || strchr(r.status, ' '))
        abort();
    if (r.code != 250)
        return 0;
    if (strlen(r.sid) != 16 || strspn(r.sid, "0123456789abcdefABCDEF") != 16 || r.count == 0 ||
        r.count > SUBMIT_MAX_MESSAGES)
        abort();
    struct submit_result again;
    memset(&again, 0, sizeof(again));
    snprintf(again.text, sizeof(again.text), "250 %s %s %s %zu", r.status,
             r.duplicate ? "duplicate" : "queued", r.sid, r.count);
    submit_parse_reply(&again);
    if (again.code != 250 || again.duplicate != r.duplicate || again.count != r.count ||
        strcmp(again.sid, r.sid) || strcmp(again.status, r.status))
        abort();
    return 0;
}
