/*
 * dc_dmtp - the DMTP wire codec: command lines, and replies, as libdime's client speaks them
 * ("syntax A", ../shared/spec/dmime-dmtp.md section 11, PROFILE.md section 5).
 *
 *   SGNT <name> [fp]          name is a domain or user@domain; the brackets are optional
 *   VRFY <name> [fp]          the fingerprint is required
 *   HIST <name> [from] [to]
 *   EHLO <domain>
 *   MODE | NOOP | RSET | QUIT | HELP | DATA [fp]
 *   MAIL FROM: ... | RCPT TO: ...   recognized; their arguments belong to the mail transfer
 *
 * A fingerprint is 86 characters of unpadded base64; the literal word `fingerprint` that
 * libdime's client sends as a placeholder counts as "no fingerprint".
 *
 * Replies: `NNN text` lines, `NNN-text` for every line but the last of a multi-line reply,
 * all with the same code, CRLF-terminated.
 *
 * Limits: a command line is at most DC_DMTP_CMD_MAX bytes and a reply line at most
 * DC_DMTP_LINE_MAX bytes, CRLF included; only printable ASCII and spaces are accepted.
 * The codec does no I/O and keeps no state beyond the reply being assembled.
 */
#ifndef DC_DMTP_H
#define DC_DMTP_H

#include "dc_signet.h"
#include "dc_util.h"

#include <stdbool.h>

#define DC_DMTP_CMD_MAX     1024
#define DC_DMTP_LINE_MAX    4096
#define DC_DMTP_NAME_MAX    255
#define DC_DMTP_REPLY_LINES 128

enum dc_dmtp_verb {
    DC_DMTP_EHLO = 1,
    DC_DMTP_MAIL,
    DC_DMTP_RCPT,
    DC_DMTP_DATA,
    DC_DMTP_SGNT,
    DC_DMTP_VRFY,
    DC_DMTP_HIST,
    DC_DMTP_MODE,
    DC_DMTP_NOOP,
    DC_DMTP_RSET,
    DC_DMTP_QUIT,
    DC_DMTP_HELP,
};

struct dc_dmtp_cmd {
    enum dc_dmtp_verb verb;
    char name[DC_DMTP_NAME_MAX + 1]; /* SGNT/VRFY/HIST/EHLO argument, brackets removed */
    size_t nfp;                      /* fingerprints given (placeholders not counted) */
    char fp[2][DC_FP_B64_LEN + 1];
};

/* Looks for one CRLF-terminated line at the start of buf. DC_OK: *linelen is its length
 * without the CRLF. DC_ERR_TRUNCATED: no CRLF yet and fewer than max bytes buffered.
 * DC_ERR_LIMIT: max bytes (CRLF included) passed without CRLF. */
enum dc_status dc_dmtp_line(const uint8_t *buf, size_t len, size_t max, size_t *linelen);

/* Parses a command line (without CRLF). DC_ERR_NOTFOUND: unknown command (reply 500);
 * DC_ERR_FORMAT: known command with bad arguments, or bytes outside printable ASCII (501). */
enum dc_status dc_dmtp_cmd_parse(const char *line, size_t len, struct dc_dmtp_cmd *out,
                                 struct dc_err *err);
const char *dc_dmtp_verb_name(enum dc_dmtp_verb v);

/* Checks a signet name: a domain, or local@domain with a printable local part of at most
 * 64 characters. */
enum dc_status dc_dmtp_check_name(const char *name, struct dc_err *err);

/* Appends one reply line with CRLF; more = true gives "NNN-" (not the last line). Text that
 * would exceed DC_DMTP_LINE_MAX is cut; control characters become '?'. */
void dc_dmtp_reply_put(struct dc_buf *b, int code, bool more, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A reply being read line by line. */
struct dc_dmtp_reply {
    int code;
    size_t nlines;
    char *lines[DC_DMTP_REPLY_LINES]; /* texts after "NNN " / "NNN-", malloc'd */
    bool done;
};
void dc_dmtp_reply_init(struct dc_dmtp_reply *r);
void dc_dmtp_reply_free(struct dc_dmtp_reply *r);
/* Adds one received line (without CRLF). Sets r->done after the final line. Errors: bad
 * code, code changed within the reply, bad separator, non-printable bytes, too many lines,
 * or a line after the final one. */
enum dc_status dc_dmtp_reply_add(struct dc_dmtp_reply *r, const char *line, size_t len,
                                 struct dc_err *err);

/* In the text t of a reply line: the contents of the first [...] group, as a pointer into t
 * and its length. DC_ERR_FORMAT when absent or unterminated. */
enum dc_status dc_dmtp_bracket(const char *t, const char **p, size_t *len, struct dc_err *err);

#endif
