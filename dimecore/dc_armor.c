/*
 * dc_armor - armor encode/decode with OpenPGP CRC-24. See dc_armor.h.
 */
#include "dc_armor.h"
#include "dc_b64.h"

#include <stdlib.h>
#include <string.h>

uint32_t dc_crc24(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xB704CEu;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint32_t)p[i] << 16;
        for (int b = 0; b < 8; b++) {
            crc <<= 1;
            if (crc & 0x1000000u)
                crc ^= 0x1864CFBu;
        }
    }
    return crc & 0xFFFFFFu;
}

char *dc_armor_encode(const char *tag, const uint8_t *bin, size_t len)
{
    struct dc_buf b;
    dc_buf_init(&b);
    dc_buf_printf(&b, "-----BEGIN %s-----\n", tag);
    char *body = dc_b64_encode_alloc(bin, len, 1);
    size_t blen = strlen(body);
    for (size_t i = 0; i < blen; i += 64) {
        size_t n = blen - i < 64 ? blen - i : 64;
        dc_buf_append(&b, body + i, n);
        dc_buf_putc(&b, '\n');
    }
    free(body);
    uint32_t crc = dc_crc24(bin, len);
    uint8_t c[3] = {(uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
    char cs[5];
    dc_b64_encode(c, 3, cs, 1);
    dc_buf_printf(&b, "=%s\n-----END %s-----\n", cs, tag);
    return (char *)dc_buf_steal(&b, NULL);
}

int dc_armor_detect(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return len - i >= 11 && memcmp(p + i, "-----BEGIN ", 11) == 0;
}

/* Next line of text (without CR/LF), advancing *pos. Returns 0 at the end of the text. */
static int next_line(const char *t, size_t len, size_t *pos, const char **line, size_t *llen)
{
    if (*pos >= len)
        return 0;
    size_t s = *pos, e = s;
    while (e < len && t[e] != '\n')
        e++;
    *pos = e < len ? e + 1 : e;
    *line = t + s;
    while (e > s && (t[e - 1] == '\r' || t[e - 1] == ' ' || t[e - 1] == '\t'))
        e--;
    while (s < e && (t[s] == ' ' || t[s] == '\t')) {
        s++;
        (*line)++;
    }
    *llen = e - s;
    return 1;
}

static int parse_marker(const char *line, size_t n, const char *what, char tag[DC_ARMOR_TAG_MAX])
{
    size_t wl = strlen(what);
    if (n < 5 + wl + 5 || memcmp(line, "-----", 5) != 0 || memcmp(line + 5, what, wl) != 0 ||
        memcmp(line + n - 5, "-----", 5) != 0)
        return 0;
    size_t tl = n - 10 - wl;
    if (tl == 0 || tl >= DC_ARMOR_TAG_MAX)
        return 0;
    for (size_t i = 0; i < tl; i++) {
        char c = line[5 + wl + i];
        if (!((c >= 'A' && c <= 'Z') || c == ' '))
            return 0;
    }
    memcpy(tag, line + 5 + wl, tl);
    tag[tl] = '\0';
    return 1;
}

enum dc_status dc_armor_decode(const char *text, size_t len, char tag[DC_ARMOR_TAG_MAX],
                               uint8_t **bin, size_t *binlen, struct dc_err *err)
{
    size_t pos = 0;
    const char *line;
    size_t ll;
    int found = 0;
    while (next_line(text, len, &pos, &line, &ll)) {
        if (ll == 0)
            continue;
        if (!parse_marker(line, ll, "BEGIN ", tag))
            return dc_fail(err, DC_ERR_FORMAT, "armor does not start with a -----BEGIN "
                                               "<TAG>----- line");
        found = 1;
        break;
    }
    if (!found)
        return dc_fail(err, DC_ERR_TRUNCATED, "empty input: no armor found");

    struct dc_buf body;
    dc_buf_init(&body);
    const char *crcline = NULL;
    size_t crclen = 0;
    enum dc_status s = DC_OK;
    int ended = 0;
    while (next_line(text, len, &pos, &line, &ll)) {
        if (ll == 0)
            continue;
        if (line[0] == '-') {
            char endtag[DC_ARMOR_TAG_MAX];
            if (!parse_marker(line, ll, "END ", endtag)) {
                s = dc_fail(err, DC_ERR_FORMAT, "armor has a malformed END line");
                goto out;
            }
            if (strcmp(endtag, tag) != 0) {
                s = dc_fail(err, DC_ERR_FORMAT, "armor END tag \"%s\" does not match BEGIN "
                                                "tag \"%s\"", endtag, tag);
                goto out;
            }
            ended = 1;
            break;
        }
        if (crcline != NULL) {
            s = dc_fail(err, DC_ERR_FORMAT, "armor has data after the checksum line");
            goto out;
        }
        if (line[0] == '=') {
            crcline = line + 1;
            crclen = ll - 1;
            continue;
        }
        if (body.len + ll > DC_ARMOR_BIN_MAX / 3 * 4 + 8) {
            s = dc_fail(err, DC_ERR_LIMIT, "armor body exceeds the largest DIME object");
            goto out;
        }
        dc_buf_append(&body, line, ll);
    }
    if (!ended) {
        s = dc_fail(err, DC_ERR_TRUNCATED, "armor has no -----END %s----- line", tag);
        goto out;
    }
    if (crcline == NULL) {
        s = dc_fail(err, DC_ERR_FORMAT, "armor has no checksum line (=XXXX)");
        goto out;
    }
    uint8_t crcb[3];
    if (crclen != 4 || dc_b64_decode_exact(crcline, 4, crcb, 3, NULL) != DC_OK) {
        s = dc_fail(err, DC_ERR_BASE64, "armor checksum line is not '=' and 4 base64 "
                                        "characters");
        goto out;
    }
    if (body.len == 0) {
        s = dc_fail(err, DC_ERR_TRUNCATED, "armor has an empty body");
        goto out;
    }
    uint8_t *out = dc_xmalloc(dc_b64_dec_max(body.len));
    size_t outlen = 0;
    struct dc_err e2;
    if (dc_b64_decode((const char *)body.data, body.len, out, &outlen, &e2) != DC_OK) {
        free(out);
        s = dc_fail(err, DC_ERR_BASE64, "armor body: %s", e2.msg);
        goto out;
    }
    uint32_t want = (uint32_t)crcb[0] << 16 | (uint32_t)crcb[1] << 8 | crcb[2];
    uint32_t got = dc_crc24(out, outlen);
    if (want != got) {
        dc_memzero(out, outlen);
        free(out);
        s = dc_fail(err, DC_ERR_CRC, "armor CRC-24 mismatch: line says %06x, data gives %06x",
                    want, got);
        goto out;
    }
    *bin = out;
    *binlen = outlen;
out:
    dc_memzero(body.data, body.len);
    dc_buf_free(&body);
    return s;
}
