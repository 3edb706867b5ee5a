/*
 * cl_curl - the libcurl setup send (SMTP) and sync (IMAP) share: one global initialization,
 * and a handle that speaks only the given protocols, requires TLS (implicit, or STARTTLS:
 * CURLUSESSL_ALL, so no login or password ever goes in clear), checks the server's
 * certificate against ca_file (NULL: the system's CAs) and logs in as login.
 */
#ifndef CL_CURL_H
#define CL_CURL_H

#include "dc_util.h"

#include <curl/curl.h>

/* A new handle (curl_easy_cleanup frees it), or NULL with err set. */
CURL *cl_curl_new(struct dc_err *err);
/* Protocols (e.g. "imap,imaps"), TLS required, CA file, login, password, timeout (seconds). */
void cl_curl_secure(CURL *c, const char *protocols, const char *ca_file, const char *login,
                    const char *password, unsigned timeout);

#endif
