/*
 * fuzz_dmap_stream - dc_dmap_reverse_stream, the framing parser that rebuilds an inbound
 * message from decrypted chunks that are not in memory (dc_message_decrypt_fd). It reads a
 * growing prefix of the display item until the framing parses (64 KiB first), so a large
 * framing is part of what is tested: a filler of up to 512 KiB can be put into the display
 * item. Input: 6 header bytes (where the filler goes, its length, the window of the source,
 * the display piece size, how much is chunk-34 data), then the bytes. Checked, against
 * dc_dmap_reverse on the same chunks in memory (the first layout, the framing at the start of
 * the display item, and the current one, the same bytes as the DIMEFRAME/2 frame in chunk
 * 34's last field):
 *   - both succeed or both fail, and on success they write the same bytes;
 *   - the input mapped forward (dc_dmap_forward, dc_dmap_chunks) and rebuilt through the
 *     stream is the input again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dc_b64.h"
#include "dc_dmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The chunks' data lives here; the stream sees only lengths. */
struct mem_chunks {
    const struct dc_dmap_chunk *c;
    size_t n, ndisp, window;
};

static enum dc_status src_copy(void *ctx, size_t i, size_t skip, const struct dc_dmap_sink *out,
                               struct dc_err *err)
{
    struct mem_chunks *m = ctx;
    if (i >= m->n || skip > m->c[i].len)
        abort(); /* dc_dmap asked for bytes that are not there */
    for (size_t off = skip; off < m->c[i].len; off += m->window) {
        size_t k = m->c[i].len - off < m->window ? m->c[i].len - off : m->window;
        enum dc_status st = out->write(out->ctx, m->c[i].data + off, k, err);
        if (st != DC_OK)
            return st;
    }
    return DC_OK;
}

static enum dc_status src_prefix(void *ctx, uint8_t *dst, size_t n, struct dc_err *err)
{
    struct mem_chunks *m = ctx;
    size_t have = 0;
    for (size_t k = 0; k < m->ndisp && have < n; k++) {
        size_t t = m->c[k].len < n - have ? m->c[k].len : n - have;
        memcpy(dst + have, m->c[k].data, t);
        have += t;
    }
    if (have < n)
        return dc_fail(err, DC_ERR_TRUNCATED, "display data shorter than announced");
    return DC_OK;
}

static enum dc_status sink_write(void *ctx, const uint8_t *p, size_t n, struct dc_err *err)
{
    dc_buf_append(ctx, p, n);
    return DC_OK;
}

/* Both paths on the same chunks; abort() when they disagree. Returns the in-memory status. */
static enum dc_status both(const uint8_t *other, size_t olen, const struct dc_dmap_chunk *c,
                           size_t n, size_t window, struct dc_buf *out)
{
    dc_buf_init(out);
    enum dc_status s1 = dc_dmap_reverse(other, olen, c, n, out, NULL);
    struct dc_dmap_chunk *lens = malloc((n ? n : 1) * sizeof(*lens));
    if (lens == NULL)
        abort();
    size_t ndisp = 0;
    for (size_t i = 0; i < n; i++) {
        lens[i] = c[i];
        lens[i].data = NULL;
        if (c[i].type == DC_DMAP_TYPE_DISPLAY && ndisp == i)
            ndisp = i + 1;
    }
    struct mem_chunks m = {c, n, ndisp, window};
    struct dc_dmap_source src = {src_copy, src_prefix, &m};
    struct dc_buf s;
    dc_buf_init(&s);
    struct dc_dmap_sink sink = {sink_write, &s};
    enum dc_status s2 = dc_dmap_reverse_stream(other, olen, lens, n, &src, &sink, NULL);
    if ((s1 == DC_OK) != (s2 == DC_OK))
        abort();
    if (s1 == DC_OK && (s.len != out->len || (s.len && memcmp(s.data, out->data, s.len) != 0)))
        abort();
    dc_buf_free(&s);
    free(lens);
    return s1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6)
        return 0;
    size_t at = data[0], fill = ((size_t)data[1] << 8 | data[2]) * 8;
    size_t window = 1 + (size_t)data[3] * 64, piece = 1 + (size_t)data[4] * 97;
    size_t olen = data[5];
    data += 6;
    size -= 6;
    if (olen > size)
        olen = size;
    const uint8_t *other = olen ? data + size - olen : NULL;
    size_t flen = size - olen;
    if (at > flen)
        at = flen;

    /* display item: input[0, at) + filler + input[at, flen), cut into pieces */
    uint8_t *disp = malloc(flen + fill + 1);
    if (disp == NULL)
        abort();
    if (at)
        memcpy(disp, data, at);
    memset(disp + at, 'x', fill);
    if (flen > at)
        memcpy(disp + at + fill, data + at, flen - at);
    size_t dlen = flen + fill;
    size_t npieces = dlen ? (dlen + piece - 1) / piece : 1;
    if (npieces > 64) { /* keep the chunk table small: larger pieces */
        piece = (dlen + 63) / 64;
        npieces = (dlen + piece - 1) / piece;
    }
    struct dc_dmap_chunk *c = calloc(npieces + 3, sizeof(*c));
    if (c == NULL)
        abort();
    size_t n = 0;
    for (size_t off = 0; n < npieces; off += piece, n++) {
        size_t k = dlen - off < piece ? dlen - off : piece;
        c[n] = (struct dc_dmap_chunk){DC_DMAP_TYPE_DISPLAY,
                                      n + 1 < npieces ? DC_DMAP_FLAG_CONTINUED : 0,
                                      disp + off, k};
    }
    c[n++] = (struct dc_dmap_chunk){DC_DMAP_TYPE_ATTACH, 0, (const uint8_t *)"x", 1};
    c[n++] = (struct dc_dmap_chunk){DC_DMAP_TYPE_ATTACH, DC_DMAP_FLAG_CONTINUED,
                                    (const uint8_t *)"y", 1};
    c[n++] = (struct dc_dmap_chunk){DC_DMAP_TYPE_ATTACH, 0, (const uint8_t *)"z", 1};
    struct dc_buf out;
    for (size_t k = npieces; k <= n; k++) {
        (void)both(other, olen, c, k, window, &out);
        dc_buf_free(&out);
    }
    /* the same bytes as a DIMEFRAME/2 frame in chunk 34's last field (the current layout),
     * with the display item (filler included) as the content it points at */
    static const char magic2[] = "DIMEFRAME/2\n";
    uint8_t *fr = malloc(sizeof(magic2) + flen);
    if (fr == NULL)
        abort();
    memcpy(fr, magic2, sizeof(magic2) - 1);
    if (flen)
        memcpy(fr + sizeof(magic2) - 1, data, flen);
    char *b = dc_b64_encode_alloc(fr, sizeof(magic2) - 1 + flen, 1);
    struct dc_buf o2;
    dc_buf_init(&o2);
    if (olen)
        dc_buf_append(&o2, other, olen);
    dc_buf_printf(&o2, "%s: %s\r\n", DC_DMAP_FRAME_FIELD, b);
    for (size_t k = npieces; k <= n; k++) {
        (void)both(o2.data, o2.len, c, k, window, &out);
        dc_buf_free(&out);
    }
    dc_buf_free(&o2);
    free(b);
    free(fr);
    free(c);
    free(disp);

    /* the input as a message: forward, then back through the stream */
    struct dc_dmap_opts o = {.env_from = "from@a.test", .env_to = "to@b.test",
                             .now = 1795694400};
    struct dc_dmap_out fm;
    if (dc_dmap_forward(data, size, &o, &fm, NULL) != DC_OK)
        abort();
    struct dc_dmap_chunk *ch;
    size_t nch;
    if (dc_dmap_chunks(&fm, piece, &ch, &nch, NULL) != DC_OK)
        abort();
    if (both(fm.other.data, fm.other.len, ch, nch, window, &out) != DC_OK ||
        out.len != size || (size && memcmp(out.data, data, size) != 0))
        abort();
    dc_buf_free(&out);
    free(ch);
    dc_dmap_out_free(&fm);
    return 0;
}
