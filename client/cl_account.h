/*
 * cl_account - dime-client's side of the provider's account service (dime-accountd(8),
 * daemonlib/ACCOUNT.md): a TLS connection that checks the service's certificate (the
 * system's CAs or --ca-file, and the host name or IP address it was given), then request and
 * reply lines. libcurl does not speak this protocol; OpenSSL does the TLS.
 */
#ifndef CL_ACCOUNT_H
#define CL_ACCOUNT_H

#include "acct_proto.h"
#include "dc_util.h"

struct cl_acct;

/* Connects to server ("host:port"; an IPv6 literal in brackets), TLS with verification,
 * and reads the greeting. timeout_s bounds the connect and every read and write. */
enum dc_status cl_acct_open(const char *server, const char *ca_file, int timeout_s,
                            struct cl_acct **out, struct dc_err *err);
/* LOGIN: DC_ERR_SIGNATURE with "login failed" when the provider refuses the password. */
enum dc_status cl_acct_login(struct cl_acct *a, const char *login, const char *pw, size_t pwlen,
                             struct dc_err *err);
/* Sends one request line (without its end) and reads the reply: DC_OK for OK (rep's words
 * point into a buffer of a that the next call reuses). A NO reply is an error naming its
 * code and text: DC_ERR_CUSTODY for custody, DC_ERR_SIGNATURE for auth, DC_ERR_IO for
 * tempfail, DC_ERR_ARG for the others; DC_ERR_IO for the transport. */
enum dc_status cl_acct_call(struct cl_acct *a, const char *line, struct acct_reply *rep,
                            struct dc_err *err);
/* One word of a reply, base64-decoded (malloc'd). */
enum dc_status cl_acct_word(const struct acct_word *w, uint8_t **out, size_t *len,
                            struct dc_err *err);
void cl_acct_close(struct cl_acct *a); /* sends QUIT; NULL is fine */

#endif
