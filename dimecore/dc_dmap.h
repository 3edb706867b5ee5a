/*
 * dc_dmap - the byte-exact mapping between an RFC 5322/MIME message and the logical contents
 * of a D/MIME message (PROFILE.md §4): common headers (chunk 33), other headers (34), display
 * (67) and attachments (131). This module only produces and consumes the plain chunk data;
 * the D/MIME binary codec (dc_dmime) signs, pads and encrypts it. dimecore/FORMAT.md has the
 * layout with its reasons and the check against lavabit/libdime.
 *
 * The content chunks hold what a DIME client shows and saves, nothing of ours: everything
 * else needed to give the original message back byte for byte (the raw header section,
 * part headers, delimiters, preamble, epilogue, transfer encodings) is the frame, which is
 * the last field of chunk 34. libdime keeps chunk 34 as opaque "other headers" and rejects
 * chunk types it does not know, so a field there is the one place it carries and ignores.
 *
 * Forward (dc_dmap_forward), structured mode:
 *   - chunk 33: for each of Date, To, CC, From, Organization, Subject (matched case-
 *     insensitively, so "Cc" counts) the FIRST field's unfolded value, as "Label: value\r\n"
 *     in that order with the labels of dmime-dmtp.md §7.3. CR, LF and NUL bytes left in a
 *     value after unfolding become spaces. A missing Date is synthesized (RFC 5322 date in
 *     UTC from opts->now), a missing From/To takes opts->env_from/env_to, a missing Subject
 *     is empty; CC and Organization are left out when absent.
 *   - chunk 34: every other header field (including second and later copies of the six),
 *     raw bytes with folding and line endings, in original order; then "\r\n" if the last
 *     of them had no line ending; then one "X-Dime-Attachment: N; type=T[; filename="F"]"
 *     field per attachment (N from 1 in chunk order, T the part's type, F from the
 *     Content-Disposition filename or the Content-Type name parameter, RFC 2231 single-piece
 *     form decoded, control bytes, '"' and '\' made '_'); last the frame field
 *     "X-Dime-Frame: " with the frame in base64, folded to 76 columns.
 *   - chunk 67, the display content: the body of the message when it has no attachments;
 *     for a top-level multipart/mixed with at least two parts, the body of its first direct
 *     part that is displayable (text/ *, multipart/alternative or multipart/related, not
 *     Content-Disposition: attachment). When that display entity is a multipart/alternative
 *     with a text/plain alternative (a non-empty leaf, not an attachment), the display
 *     content is the body of the first such alternative and the other alternatives stay
 *     whole in the frame. A text/ * body in base64 or quoted-printable is stored decoded
 *     when encoding the decoded bytes again (dc_cte) gives the body back exactly;
 *     otherwise, and for other multipart displays, as it is. An empty body is stored as
 *     DC_DMAP_PLACEHOLDER (chunks cannot be empty), which the frame says to drop.
 *   - chunk 131: the body of every other direct part of that multipart/mixed, decoded under
 *     the same rule whatever its type (the file's bytes). A part with an empty body has no
 *     chunk: it stays whole in the frame.
 * Whole-message mode (frame kind W): the display content is the whole original message,
 * there are no attachments and chunk 34 holds only the frame. Chunk 33 is still filled, from
 * the header section when it parses, otherwise all synthesized. It is used when the message
 * does not parse (any dc_mime error, limits included), when a multipart/mixed has no
 * displayable direct part, or when chunk 34 would exceed DC_DMAP_CHUNK_DATA_MAX.
 * The reason is reported in dc_dmap_out.reason / reason_code.
 *
 * Frame, version 2 (the decoded value of the X-Dime-Frame field; lengths decimal ASCII):
 *
 *   frame   = "DIMEFRAME/2" LF record* end
 *   record  = TAG LEN ":" BYTES ","       TAG one letter; LEN 1-10 digits, no leading zeros
 *   end     = "E0:,"                      and nothing after it
 *
 *   K  kind, first record, one byte: "W" whole message, "B" header + body (the display
 *      content is the body), "M" header + multipart/mixed split into display and attachments
 *   Y  second record: the chunk-33 headers that were synthesized, decimal bit mask 0..63,
 *      bit i for index i of §7.3 (1 Date, 2 To, 8 From, 32 Subject)
 *   then, unless kind W, the header section in original order:
 *   C  the raw bytes of a field whose value went to chunk 33 (folding and ending kept)
 *   O  decimal length of the next field to take from chunk 34 (1-10 digits)
 *   S  the empty line between header and body: "", "\n" or "\r\n"
 *   then, for kinds W and B, the display records; for kind M:
 *   P  preamble
 *   D  a delimiter line (see dc_mime.h) before the display part, then its H record and its
 *      display records
 *   A  a delimiter line before the next attachment, then its H and T records
 *   N  a delimiter line and a whole part that has no chunk (empty body)
 *      (exactly one D, one A per attachment in chunk order, any number of N)
 *   H  the part's header section (fields and the empty line)
 *   T  how the content chunk gives the body back: "r" as it is; "-" the chunk holds the
 *      placeholder and the body is empty; or a dc_cte style ("b76cf", "q76c": encode the
 *      chunk data in base64 / quoted-printable with that line length, line ending, final
 *      line ending)
 *   Z  the close delimiter line
 *   Q  the epilogue
 *   Display records: a T record for the display content; or, for a display that is a
 *   multipart/alternative, U (empty), then P, the alternatives in order (N for each one kept
 *   whole, exactly one D with its H and T records for the one in the display chunk), Z, Q.
 *
 * The message is rebuilt as: C/O fields in order, S, then for W and B the content, for M
 * P, each D/A/N line followed by its H and content (or the N part), Z, Q. Decoding checks
 * every length against the bytes present, the record order, that the O lengths stay inside
 * the original fields of chunk 34 and that exactly the X-Dime-Attachment fields follow them,
 * that the A records match the attachments and the T records are known treatments, and
 * fails with DC_ERR_FORMAT or DC_ERR_ORDER otherwise, before anything is written.
 *
 * Reading other layouts (dc_dmap_reverse): when chunk 34 does not end in a frame field, the
 * display data is tried as the first layout (below); data that is neither gives
 * DC_ERR_MAGIC, which dc_message takes as a message from another implementation (libdime:
 * no frame at all) and rebuilds a plain message from it.
 *
 * First layout (DIMEFRAME/1, written until issue 19, still read): the frame was at the start
 * of the display data ("DIMEFRAME/1" LF, the records above without H, T and N, then the
 * display content), the display content was the whole display part (its headers included)
 * and each attachment chunk held a whole part (headers and encoded body); chunk 34 held only
 * the other fields, or CR LF when there were none (see dc_message.h).
 *
 * Chunks (dc_dmap_chunks / dc_dmap_reverse): the display data and each attachment are cut
 * into pieces of at most max_data bytes; every piece but the last of an item has flag
 * DC_DMAP_FLAG_CONTINUED (128). Display pieces come first (type 67), then attachments (131).
 *
 * Memory: forward copies the header fields and the frame into chunk 33/34 data, and the
 * display content only without opts->display_view. Content that is not decoded is a view
 * into the caller's message; a decoded body is a heap buffer the output owns, or with
 * opts->spill_fd (the file-to-file path) a mapping of a temporary file, written and checked
 * a DC_STREAM_WINDOW at a time with its pages released (dc_dmap_releaser), so that a mapped
 * message still does not make the process as large as its attachments. Reverse writes the
 * message once into a buffer sized in advance (an estimate for encoded bodies; plus, for the
 * first layout, one copy of the display data when it arrives in several pieces);
 * dc_dmap_reverse_stream holds the frame (in chunk 34, already in memory) and an encoder's
 * 4 KiB of output, or for the first layout the framing block read from the display item.
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
 * attachment chunks in wire order, in either layout. Appends it to msg (initialized by the
 * caller). On failure msg keeps its old length and err says which chunk or record is wrong;
 * DC_ERR_MAGIC means neither layout (no frame). The chunk-33 data is not needed: the frame
 * holds the raw common fields. */
enum dc_status dc_dmap_reverse(const uint8_t *other, size_t other_len,
                               const struct dc_dmap_chunk *chunks, size_t n,
                               struct dc_buf *msg, struct dc_err *err);

/*
 * dc_dmap_reverse for data that is not in memory: the chunks' data pointers may be NULL
 * (lengths set), and then src reads them. The frame is in chunk 34 (other); for the first
 * layout the framing block is read from the start of the display item (growing until it
 * parses). The rest is copied to out, a window at a time and through the transfer encoder
 * where a T record asks for one, in message order. Every check of dc_dmap_reverse is made
 * before the first byte is written.
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
