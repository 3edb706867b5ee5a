/*
 * lookup_proto - the wire format of dime-relayd's lookup service (LOOKUP.md), shared by the
 * relay that answers and every client that asks (lookup_client, dime-relayctl, the tests and
 * benchmarks); free of sockets so that the fuzz targets (tests/fuzz/fuzz_lookup_req.c,
 * fuzz_lookup_ans.c) build it with dimecore alone:
 *   - the request line "LOOKUP <name> [<local-domain> [<org-fp>]]": parse and format;
 *   - the outcome words;
 *   - one "key=value" answer line as the relay writes it.
 */
#ifndef LOOKUP_PROTO_H
#define LOOKUP_PROTO_H

#include "dc_signet.h"
#include "dc_util.h"

#include <stddef.h>

#define LOOKUP_REQ_MAX  600 /* request line with its LF */
#define LOOKUP_WORD_MAX 299 /* name and local-domain */

struct lookup_req {
    char name[LOOKUP_WORD_MAX + 1];  /* domain or user@domain, as sent */
    char local[LOOKUP_WORD_MAX + 1]; /* "" when the request names no local domain */
    char org_fp[DC_FP_B64_LEN + 1];  /* "" when the request names no org signet */
};

/*
 * Parses one request line of len bytes, without its LF (one CR at the end is dropped):
 * "LOOKUP", one space, the name, and optionally one space and the local domain; each word
 * 1-299 bytes of printable ASCII without spaces (0x21-0x7E); after the local domain
 * optionally one space and the org signet wanted, by its fingerprint (86 unpadded base64
 * characters). Nothing else may follow.
 * DC_ERR_FORMAT (with what is wrong in err) otherwise. The name itself is checked later
 * (dc_dmtp_check_name), not here.
 */
enum dc_status lookup_req_parse(const char *line, size_t len, struct lookup_req *out,
                                struct dc_err *err);

/* The request line for name, local and org_fp (each NULL or "": none; org_fp only with
 * local), with its LF, into out (capacity cap). Returns its length, or 0 when the words break
 * the rules above or it does not fit in cap or LOOKUP_REQ_MAX. */
size_t lookup_req_format(const char *name, const char *local, const char *org_fp, char *out,
                         size_t cap);

/* The outcomes an answer's first line names (outcome=...), in this order. */
enum lookup_outcome {
    LOOKUP_SECURE = 0,
    LOOKUP_INSECURE,
    LOOKUP_NOT_DIME,
    LOOKUP_BOGUS,
    LOOKUP_REFUSED,
    LOOKUP_TEMPFAIL,
};
/* The word of an outcome ("not-dime"...), "?" for none. */
const char *lookup_outcome_name(enum lookup_outcome o);
/* -1 when s is not an outcome word. */
int lookup_outcome_parse(const char *s);

/* Appends the answer line "k=v\n"; a CR or LF inside v becomes a space. */
void lookup_put(struct dc_buf *b, const char *k, const char *v);

#endif
