/*
 * dc_dmap - the byte-exact mapping between an RFC 5322/MIME message and the logical contents
 * of a D/MIME message (PROFILE.md §4): common headers (chunk 33), other headers (34), display
 * (67) and attachments (131). This module only produces and consumes the plain chunk data;
 * the D/MIME binary codec (dc_dmime) signs, pads and encrypts it.
 *
 * Forward (dc_dmap_forward), structured mode:
 *   - chunk 33: for each of Date, To, CC, From, Organization, Subject (matched case-
 *     insensitively, so "Cc" counts) the FIRST field's unfolded value, as "Label: value\r\n"
 *     in that order with the labels of dmime-dmtp.md §7.3. CR, LF and NUL bytes left in a
 *     value after unfolding become spaces. A missing Date is synthesized (RFC 5322 date in
 *     UTC from opts->now), a missing From/To takes opts->env_from/env_to, a missing Subject
 *     is empty; CC and Organization are left out when absent.
 *   - chunk 34: every other header field (including second and later copies of the six),
 *     raw bytes with folding and line endings, in original order.
 *   - chunk 67: the framing block below, then the display content: the whole body when
 *     the message has no attachments; for a top-level multipart/mixed with at least two parts,
 *     the first direct part that is displayable (text/ *, multipart/alternative or
 *     multipart/related, not Content-Disposition: attachment), as the entity (headers + body).
 *   - chunk 131: every other direct part of that multipart/mixed, as the exact entity bytes.
 * Whole-message mode (framing kind W): the display content is the whole original message;
 * chunk 34 is empty and there are no attachments. Chunk 33 is still filled, from the header
 * section when it parses, otherwise all synthesized. It is used when the message does not
 * parse (any dc_mime error, limits included), when a multipart/mixed has no displayable
 * direct part, or when an attachment part would be empty (D/MIME chunks cannot be empty).
 * The reason is reported in dc_dmap_out.reason / reason_code.
 *
 * Framing block, version 1 (at the start of the display data; all lengths decimal ASCII):
 *
 *   frame   = "DIMEFRAME/1" LF record* end content
 *   record  = TAG LEN ":" BYTES ","       TAG one letter; LEN 1-10 digits, no leading zeros
 *   end     = "E0:,"
 *
 *   K  kind, first record, exactly one byte: "W" whole message, "B" header + body (display
 *      content is the body), "M" header + multipart/mixed split into display and attachments
 *   Y  second record: the chunk-33 headers that were synthesized, decimal bit mask 0..63,
 *      bit i for index i of §7.3 (1 Date, 2 To, 8 From, 32 Subject)
 *   then, unless kind W, the header section in original order:
 *   C  the raw bytes of a field whose value went to chunk 33 (folding and ending kept)
 *   O  decimal length of the next field to take from chunk 34 (1-10 digits)
 *   S  the empty line between header and body: "", "\n" or "\r\n"
 *   then, for kind M only:
 *   P  preamble
 *   D  a delimiter line (see dc_mime.h) followed by the display part (at most one D)
 *   A  a delimiter line followed by the next attachment
 *      (at least one D or A, and one A per attachment, in attachment order)
 *   Z  the close delimiter line
 *   Q  the epilogue
 *
 * The message is rebuilt as: C/O fields in order, S, then for B the content, for M
 * P, each D/A line followed by its part, Z, Q; for W just the content. Decoding checks every
 * length against the bytes present, the record order, that the O lengths add up to chunk 34
 * exactly and that the A records match the attachments, and fails with DC_ERR_FORMAT (bad
 * framing), DC_ERR_MAGIC (not a v1 frame) or DC_ERR_ORDER (record order) otherwise.
 *
 * Chunks (dc_dmap_chunks / dc_dmap_reverse): the display data and each attachment are cut
 * into pieces of at most max_data bytes; every piece but the last of an item has flag
 * DC_DMAP_FLAG_CONTINUED (128). Display pieces come first (type 67), then attachments (131).
 *
 * Memory: forward copies the header fields and the display content once (into chunk 33/34/
 * 67 data), the display content only without opts->display_view; attachments and chunk
 * pieces are views into the caller's message or into the dc_dmap_out buffers. Reverse writes
 * the message once into a buffer sized in advance (plus one copy of the display data when it
 * arrives in several pieces); dc_dmap_reverse_stream holds only the framing block.
 */
#ifndef DC_DMAP_H
#define DC_DMAP_H

#include <stddef.h>
#include <stdint.h>

#include "dc_fmap.h"
#include "dc_mime.h"
#include "dc_util.h"

#define DC_DMAP_TYPE_DISPLAY 67
#define DC_DMAP_TYPE_ATTACH 131
#define DC_DMAP_FLAG_CONTINUED 128 /* DATA_SEGMENT_CONTINUATION_ENABLED */
#define DC_DMAP_FLAG_GZIP 4        /* not supported: such chunks are rejected */

/* The last field of chunk 34: the frame, base64 (see above). */
#define DC_DMAP_FRAME_FIELD "X-Dime-Frame"
/* One field per attachment chunk item in chunk 34: number, type and file name. */
#define DC_DMAP_ATTACH_FIELD "X-Dime-Attachment"
/* The display chunk's data when the display body is empty (chunks cannot be empty). */
#define DC_DMAP_PLACEHOLDER "\r\n"

/* Largest chunk data that always fits a D/MIME standard payload: the payload max is
 * 16,777,215 and must be a multiple of 16 (so 16,777,200); it holds 69 bytes of overhead and
 * up to 16 + 240 padding bytes (dmime-dmtp.md §4.3): 16,777,200 - 69 - 256 = 16,776,875. */
#define DC_DMAP_CHUNK_DATA_MAX 16776875u

/* Indexes of the chunk-33 headers (dmime-dmtp.md §7.3) and the synthesized-mask bits. */
enum dc_dmap_hdr {
    DC_DMAP_DATE = 0,
    DC_DMAP_TO = 1,
    DC_DMAP_CC = 2,
    DC_DMAP_FROM = 3,
    DC_DMAP_ORG = 4,
    DC_DMAP_SUBJECT = 5,
};

enum dc_dmap_mode {
    DC_DMAP_STRUCTURED = 1,
    DC_DMAP_WHOLE = 2,
};

struct dc_dmap_opts {
    const char *env_from;                /* for a missing From (NULL = empty) */
    const char *env_to;                  /* for a missing To (NULL = empty) */
    int64_t now;                         /* seconds since 1970 for a synthesized Date;
                                            0 = current time */
    const struct dc_mime_limits *limits; /* NULL = dc_mime defaults */
    /* 1: the display content is not copied: out->display holds the framing block only and
     * out->content is a view of the content in msg (the chunk data is display + content). */
    int display_view;
    struct dc_release release; /* optional: given scanned ranges of msg (a mapped file) */
    /* Optional: a new empty temporary file (its descriptor, or -1) for a decoded body of
     * DC_STREAM_WINDOW bytes or more, which then lives in a mapping of that file whose pages
     * are released as they are written and read (see dc_dmap_releaser), not on the heap. */
    int (*spill_fd)(void *ctx);
    void *spill_ctx;
};

struct dc_dmap_out {
    enum dc_dmap_mode mode;
    enum dc_status reason_code; /* why whole-message mode was used; DC_OK otherwise */
    char reason[DC_ERR_MSG_MAX];
    unsigned synthesized;       /* bit i set: chunk-33 header i was made up */
    struct dc_buf common;       /* chunk 33 data */
    struct dc_buf other;        /* chunk 34 data, may be empty */
    struct dc_buf display;      /* chunk 67 data (with display_view: empty) */
    struct dc_mime_view content; /* with display_view: the chunk 67 data, in msg or owned */
    struct dc_mime_view *attach; /* chunk 131 data, views into the message or owned */
    size_t nattach;
    uint8_t **owned;            /* decoded bodies the views above may point into */
    size_t nowned;
    struct dc_fmap **maps;      /* decoded bodies in spill files (opts->spill_fd) */
    int *mapfds;
    size_t nmaps;
    struct dc_release input_release; /* opts->release */
};

/* A release hook for everything m's views point into: msg (through opts->release) and the
 * spill files. m must stay where it is while the hook is used. */
struct dc_release dc_dmap_releaser(const struct dc_dmap_out *m);

struct dc_dmap_chunk {
    uint8_t type;  /* DC_DMAP_TYPE_DISPLAY or DC_DMAP_TYPE_ATTACH */
    uint8_t flags; /* DC_DMAP_FLAG_CONTINUED on all but the last piece of an item */
    const uint8_t *data;
    size_t len;
};

/* Maps msg[0..len) (which must outlive *out). Fails only for bad arguments or a message
 * larger than the size limit (DC_ERR_LIMIT); any shape is mapped. Free with
 * dc_dmap_out_free. */
enum dc_status dc_dmap_forward(const uint8_t *msg, size_t len, const struct dc_dmap_opts *opts,
                               struct dc_dmap_out *out, struct dc_err *err);
void dc_dmap_out_free(struct dc_dmap_out *out);

/* Cuts the display data and the attachments into chunk pieces of at most max_data bytes
 * (0 = DC_DMAP_CHUNK_DATA_MAX; larger values are DC_ERR_ARG). *chunks is malloc'd (free()),
 * its data pointers are views into m and the message. */
enum dc_status dc_dmap_chunks(const struct dc_dmap_out *m, size_t max_data,
                              struct dc_dmap_chunk **chunks, size_t *n, struct dc_err *err);

/* Rebuilds the original message from chunk 34 data (other, may be empty) and the display and
 * attachment chunks in wire order. Appends it to msg (initialized by the caller). On failure
 * msg keeps its old length and err says which chunk or record is wrong. The chunk-33 data is
 * not needed: the framing holds the raw common fields. */
enum dc_status dc_dmap_reverse(const uint8_t *other, size_t other_len,
                               const struct dc_dmap_chunk *chunks, size_t n,
                               struct dc_buf *msg, struct dc_err *err);

/*
 * dc_dmap_reverse for data that is not in memory: the chunks' data pointers may be NULL
 * (lengths set), and then src reads them. The framing block is read from the start of the
 * display item (growing until it parses); the rest is copied to out, a window at a time,
 * in message order. Every check of dc_dmap_reverse is made before the first byte is written.
 */
struct dc_dmap_sink {
    enum dc_status (*write)(void *ctx, const uint8_t *p, size_t n, struct dc_err *err);
    void *ctx;
};
struct dc_dmap_source {
    /* Hands the data of chunks[i] from byte skip to its end to out, in windows. */
    enum dc_status (*copy)(void *ctx, size_t i, size_t skip, const struct dc_dmap_sink *out,
                           struct dc_err *err);
    /* Reads bytes [0, n) of the display item (the display chunks joined) into dst. */
    enum dc_status (*display_prefix)(void *ctx, uint8_t *dst, size_t n, struct dc_err *err);
    void *ctx;
};
enum dc_status dc_dmap_reverse_stream(const uint8_t *other, size_t other_len,
                                      const struct dc_dmap_chunk *chunks, size_t n,
                                      const struct dc_dmap_source *src,
                                      const struct dc_dmap_sink *out, struct dc_err *err);

#endif
