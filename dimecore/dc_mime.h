/*
 * dc_mime - a MIME parser (RFC 5322 / 2045 / 2046) over a byte buffer that never trusts it.
 *
 * The parser does not copy the message: everything it returns is a view (pointer + length)
 * into the caller's buffer, which must outlive the parse result. Views are laid out so that
 * concatenating them gives the input back byte for byte:
 *
 *   entity    = fields[0].raw + ... + fields[n-1].raw + sep + body
 *   multipart = preamble + parts[0].delim + parts[0].ent.raw + ... + close + epilogue
 *
 * Lines end at LF; a CR directly before that LF belongs to the line ending ("\r\n"), a CR
 * anywhere else is an ordinary byte. CRLF, LF-only and mixed endings are all accepted.
 *
 * Header section: fields until the first empty line ("\r\n" or "\n", kept in `sep`) or the
 * end of the input (then `sep` and `body` are empty). A field starts with a name of printable
 * ASCII other than ':' (optionally followed by spaces/tabs, the obsolete RFC 5322 form), then
 * ':'; lines starting with SP or HT continue it. Any other line, such as an mbox "From " line,
 * is a format error.
 *
 * Multipart bodies (Content-Type multipart/<any>, boundary parameter required): a delimiter
 * line is "--" boundary ["--"] followed only by spaces/tabs (transport padding) up to the line
 * ending or the end of the input. `delim` and `close` hold the whole line including the line
 * ending that precedes it (which RFC 2046 counts as part of the delimiter), the padding and its
 * own line ending. A missing close delimiter or a multipart without parts is a format error.
 * message/rfc822 (and every other non-multipart type) is a leaf: its body is not looked into.
 *
 * Content-Type: type/subtype and parameters, comments and folding allowed. The boundary comes
 * from `boundary=` (token or quoted string); when that is absent, from the RFC 2231 forms
 * `boundary*=charset'lang'%XX..` and `boundary*0=`, `boundary*1*=` ... (at most 16 pieces).
 * The first Content-Type field of an entity counts; without one the type is text/plain.
 *
 * Limits (struct dc_mime_limits; dc_mime_limits_default gives the values below): nesting
 * depth of multiparts, header fields per entity, bytes per physical header line (line ending
 * not counted), parts in the whole tree, total input size. Exceeding one is DC_ERR_LIMIT with
 * a message naming the limit and where it was hit.
 */
#ifndef DC_MIME_H
#define DC_MIME_H

#include <stddef.h>
#include <stdint.h>

#include "dc_util.h"

#define DC_MIME_MAX_DEPTH 32          /* multipart nesting levels below the top entity */
#define DC_MIME_MAX_HEADERS 1000      /* header fields per entity */
#define DC_MIME_MAX_LINE 65536        /* bytes per physical header line, ending excluded */
#define DC_MIME_MAX_PARTS 10000       /* body parts in the whole tree */
#define DC_MIME_MAX_SIZE (50u << 20)  /* default total input size (50 MiB, PROFILE §4) */
#define DC_MIME_MAX_BOUNDARY 200      /* boundary bytes accepted (RFC 2046 asks for <= 70) */

struct dc_mime_limits {
    unsigned max_depth;
    size_t max_headers;
    size_t max_line;
    size_t max_parts;
    size_t max_size;
};

struct dc_mime_view {
    const uint8_t *p;
    size_t len;
};

struct dc_mime_field {
    struct dc_mime_view raw;   /* the whole field: name, colon, value, folding, final ending */
    struct dc_mime_view name;  /* the name, without the optional spaces before ':' */
    struct dc_mime_view value; /* after ':' up to the final line ending, folding kept */
};

enum dc_mime_kind {
    DC_MIME_LEAF = 0,      /* any single-part entity */
    DC_MIME_MULTIPART = 1, /* multipart/<any> with its parts parsed */
    DC_MIME_MESSAGE = 2,   /* message/rfc822: a leaf whose body is a whole message */
};

struct dc_mime_part;

struct dc_mime_entity {
    struct dc_mime_view raw; /* the whole entity */
    struct dc_mime_field *fields;
    size_t nfields;
    struct dc_mime_view sep;  /* the empty line ending the header section, or empty */
    struct dc_mime_view body; /* everything after sep */
    enum dc_mime_kind kind;
    char ctype[128];       /* "type/subtype" in lower case; "text/plain" when absent or bad */
    char disposition[32];  /* Content-Disposition token in lower case, or "" */
    /* Multipart only (kind == DC_MIME_MULTIPART). */
    uint8_t boundary[DC_MIME_MAX_BOUNDARY];
    size_t boundary_len;
    struct dc_mime_view preamble;
    struct dc_mime_part *parts;
    size_t nparts;
    struct dc_mime_view close;
    struct dc_mime_view epilogue;
};

struct dc_mime_part {
    struct dc_mime_view delim; /* the delimiter line before this part, see above */
    struct dc_mime_entity ent;
};

/* Fills *l with the DC_MIME_MAX_* values. */
void dc_mime_limits_default(struct dc_mime_limits *l);

/* Parses the whole entity tree of p[0..len). lim may be NULL (defaults). On failure *out is
 * left empty (nothing to free) and err says what and where. On success free with
 * dc_mime_free. */
enum dc_status dc_mime_parse(const uint8_t *p, size_t len, const struct dc_mime_limits *lim,
                             struct dc_mime_entity *out, struct dc_err *err);

/* Parses only the header section of p[0..len) (fields, sep, body view, ctype, disposition;
 * kind is never MULTIPART). Used when the full parse fails but the header is still wanted. */
enum dc_status dc_mime_parse_header(const uint8_t *p, size_t len,
                                    const struct dc_mime_limits *lim,
                                    struct dc_mime_entity *out, struct dc_err *err);

void dc_mime_free(struct dc_mime_entity *e);

struct dc_release;
/* dc_mime_parse for a message in a mapped file: while scanning bodies for delimiters, every
 * DC_STREAM_WINDOW bytes scanned are handed to rel (which drops their pages), so that the
 * parse of a large message does not keep it resident. */
enum dc_status dc_mime_parse_released(const uint8_t *p, size_t len,
                                      const struct dc_mime_limits *lim,
                                      const struct dc_release *rel, struct dc_mime_entity *out,
                                      struct dc_err *err);

/* First field named `name` (ASCII case-insensitive), or NULL. */
const struct dc_mime_field *dc_mime_find(const struct dc_mime_entity *e, const char *name);

/* True when the field's name equals `name` ignoring ASCII case. */
int dc_mime_name_is(const struct dc_mime_field *f, const char *name);

/* Appends the unfolded value of f to out: line endings followed by SP/HT removed (RFC 5322
 * 2.2.3), leading and trailing spaces/tabs dropped. Bytes are otherwise kept as they are. */
void dc_mime_unfold(const struct dc_mime_field *f, struct dc_buf *out);

/* Parses a Content-Type value (folded or not). Writes "type/subtype" in lower case to
 * ctype (size cap, at least 2); when a boundary parameter is present copies it to boundary
 * (size DC_MIME_MAX_BOUNDARY) and sets *blen, else *blen = 0. Returns DC_ERR_FORMAT for a
 * value without a valid type/subtype, DC_ERR_LIMIT for an overlong boundary. */
enum dc_status dc_mime_content_type(const uint8_t *v, size_t n, char *ctype, size_t cap,
                                    uint8_t *boundary, size_t *blen, struct dc_err *err);

#endif
