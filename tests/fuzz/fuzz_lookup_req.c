/*
 * fuzz_lookup_req - the relay's parser of the lookup request line (lookup_req_parse,
 * LOOKUP.md), which any local process with access to the lookup socket can send. The input
 * is the line without its LF. Checked: an accepted line has a name and an optional local
 * domain of 1-299 printable bytes without spaces, and when it fits the 600-byte limit,
 * lookup_req_format gives back exactly the input (without a final CR) and it parses to the
 * same words.
 */
#include "lookup_proto.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void word_ok(const char *w, bool may_be_empty)
{
    size_t n = strlen(w);
    if ((n == 0 && !may_be_empty) || n > LOOKUP_WORD_MAX)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)w[i] < 0x21 || (unsigned char)w[i] > 0x7e)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lookup_req r;
    if (lookup_req_parse((const char *)data, size, &r, NULL) != DC_OK) {
        if (r.name[0] || r.local[0] || r.org_fp[0])
            abort(); /* a refused line leaves nothing behind */
        return 0;
    }
    word_ok(r.name, false);
    word_ok(r.local, true);
    size_t len = size > 0 && data[size - 1] == '\r' ? size - 1 : size;
    char line[LOOKUP_REQ_MAX + 1];
    size_t n = lookup_req_format(r.name, r.local, r.org_fp, line, sizeof(line));
    if (len + 1 > LOOKUP_REQ_MAX) {
        if (n != 0)
            abort();
        return 0;
    }
    if (n != len + 1 || memcmp(line, data, len) != 0 || line[len] != '\n')
        abort();
    struct lookup_req again;
    if (lookup_req_parse(line, n - 1, &again, NULL) != DC_OK ||
        strcmp(again.name, r.name) || strcmp(again.local, r.local) ||
        strcmp(again.org_fp, r.org_fp))
        abort();
    return 0;
}
