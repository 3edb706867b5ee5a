/*
 * rl_lookup_proto - the wire format of dime-relayd's lookup service (LOOKUP.md), apart from
 * the service's sockets, cache and resolver so that the fuzz targets (tests/fuzz/
 * fuzz_lookup_req.c, fuzz_lookup_ans.c) build it with dimecore alone:
 *   - the request line "LOOKUP <name> [<local-domain>]": parse and format;
 *   - one "key=value" answer line as the relay writes it.
 */
#ifndef RL_LOOKUP_PROTO_H
#define RL_LOOKUP_PROTO_H

#include "dc_util.h"

#include <stddef.h>

#define RL_LOOKUP_REQ_MAX  600 /* request line with its LF */
#define RL_LOOKUP_WORD_MAX 299 /* name and local-domain */

struct rl_lookup_req {
    char name[RL_LOOKUP_WORD_MAX + 1];  /* domain or user@domain, as sent */
    char local[RL_LOOKUP_WORD_MAX + 1]; /* "" when the request names no local domain */
};

/*
 * Parses one request line of len bytes, without its LF (one CR at the end is dropped):
 * "LOOKUP", one space, the name, and optionally one space and the local domain; each word
 * 1-299 bytes of printable ASCII without spaces (0x21-0x7E). Nothing else may follow.
 * DC_ERR_FORMAT (with what is wrong in err) otherwise. The name itself is checked later
 * (dc_dmtp_check_name), not here.
 */
enum dc_status rl_lookup_req_parse(const char *line, size_t len, struct rl_lookup_req *out,
                                   struct dc_err *err);

/* The request line for name and local (NULL or "": none), with its LF, into out (capacity
 * cap). Returns its length, or 0 when the words break the rules above or it does not fit
 * in cap or RL_LOOKUP_REQ_MAX. */
size_t rl_lookup_req_format(const char *name, const char *local, char *out, size_t cap);

/* Appends the answer line "k=v\n"; a CR or LF inside v becomes a space. */
void rl_lookup_put(struct dc_buf *b, const char *k, const char *v);

#endif
