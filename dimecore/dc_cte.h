/*
 * dc_cte - the MIME content transfer encodings base64 and quoted-printable (RFC 2045 6.7,
 * 6.8) as dc_dmap needs them: a body is stored decoded only when encoding the decoded bytes
 * again gives the original body back byte for byte, so the encoder is the authority and the
 * decoder only proposes.
 *
 * A style says how a body was laid out: the encoding, the line length (base64: characters
 * per line; quoted-printable: the longest line, '=' of a soft break included), the line
 * ending of the encoder's own breaks (CRLF or LF) and, for base64, whether the last line has
 * an ending. dc_cte_style_text writes it as a short token ("b76cf", "q76c"), which is what the
 * dc_dmap frame stores; dc_cte_style_parse reads it back.
 *
 * The encoder is incremental: data may arrive in any number of pieces (the chunks of an
 * item, or the windows of a streaming copy) and its output goes to a callback in pieces of
 * at most DC_CTE_OUT bytes.
 *
 * Quoted-printable as written here: bytes 33..126 other than '=' stay literal, and so do space
 * and tab unless a line break or the end of the data follows them; CR LF and a lone LF in
 * the data are hard line breaks, written as they are; every other byte (a lone CR included)
 * is "=XX" with upper-case hex; a soft break ("=" and the style's line ending) comes before a
 * character that would make the line longer than the style's length.
 */
#ifndef DC_CTE_H
#define DC_CTE_H

#include <stddef.h>
#include <stdint.h>

#include "dc_fmap.h"
#include "dc_util.h"

#define DC_CTE_OUT 4096
#define DC_CTE_MAX_LINE 998 /* RFC 5322 line limit, ending excluded */

enum dc_cte_kind {
    DC_CTE_B64 = 'b',
    DC_CTE_QP = 'q',
};

struct dc_cte_style {
    enum dc_cte_kind kind;
    unsigned width; /* 1..DC_CTE_MAX_LINE (quoted-printable: at least 4) */
    int crlf;       /* the encoder's line breaks are CR LF (else LF) */
    int final;      /* base64: the last line has a line ending */
};

typedef enum dc_status (*dc_cte_write)(void *ctx, const uint8_t *p, size_t n,
                                       struct dc_err *err);

struct dc_cte_enc {
    struct dc_cte_style st;
    dc_cte_write write;
    void *ctx;
    enum dc_status status; /* first failure of write, sticky */
    struct dc_err *err;
    unsigned col;          /* characters on the current output line */
    uint8_t carry[3];      /* base64: input bytes waiting for a full group */
    unsigned ncarry;
    int pend;              /* quoted-printable: held back space, tab or CR, or -1 */
    uint8_t out[DC_CTE_OUT];
    size_t nout;
};

/* Writes the style token into out (at least 16 bytes). */
void dc_cte_style_text(const struct dc_cte_style *s, char *out, size_t cap);
/* Reads a style token; 0 when it is not one. */
int dc_cte_style_parse(const uint8_t *p, size_t n, struct dc_cte_style *s);

void dc_cte_enc_init(struct dc_cte_enc *e, const struct dc_cte_style *s, dc_cte_write write,
                     void *ctx, struct dc_err *err);
enum dc_status dc_cte_enc_feed(struct dc_cte_enc *e, const uint8_t *p, size_t n);
/* Writes what is held back and the final line ending; returns the first failure. */
enum dc_status dc_cte_enc_finish(struct dc_cte_enc *e);

/* If body (transfer encoding `kind`) decodes and encodes back to the same bytes, fills *s,
 * puts the decoded bytes in *dec (malloc'd, free()) and *dlen, and returns 1. Otherwise
 * returns 0 and leaves *dec NULL. */
int dc_cte_decode_exact(enum dc_cte_kind kind, const uint8_t *body, size_t len,
                        struct dc_cte_style *s, uint8_t **dec, size_t *dlen);

/* The same into dst (room for len bytes), a DC_STREAM_WINDOW at a time, handing the input
 * and output ranges it has finished with to rel_in and rel_out (either may be NULL): the
 * bounded-memory form, for bodies in mapped files. */
int dc_cte_decode_into(enum dc_cte_kind kind, const uint8_t *body, size_t len,
                       struct dc_cte_style *s, uint8_t *dst, size_t *dlen,
                       const struct dc_release *rel_in, const struct dc_release *rel_out);

#endif
