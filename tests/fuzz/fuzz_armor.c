/*
 * Fuzz target: the armor reader. Whatever decodes is armored again under the tag that was
 * read, and that text must decode to the same tag and the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "dc_armor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char tag[DC_ARMOR_TAG_MAX];
    uint8_t *bin = NULL;
    size_t binlen = 0;
    struct dc_err err = {0};
    enum dc_status s = dc_armor_decode((const char *)data, size, tag, &bin, &binlen, &err);
    if (s != DC_OK) {
        if (err.code != s || err.msg[0] == '\0')
            abort();
        return 0;
    }
    if (memchr(tag, '\0', DC_ARMOR_TAG_MAX) == NULL)
        abort();

    char *text = dc_armor_encode(tag, bin, binlen);
    if (!dc_armor_detect((const uint8_t *)text, strlen(text)))
        abort();
    char tag2[DC_ARMOR_TAG_MAX];
    uint8_t *bin2 = NULL;
    size_t binlen2 = 0;
    if (dc_armor_decode(text, strlen(text), tag2, &bin2, &binlen2, &err) != DC_OK)
        abort();
    if (strcmp(tag, tag2) != 0 || binlen != binlen2 ||
        (binlen > 0 && memcmp(bin, bin2, binlen) != 0))
        abort();

    free(bin2);
    free(text);
    free(bin);
    return 0;
}
