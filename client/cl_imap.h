/*
 * cl_imap - the few IMAP operations `dime-client sync` needs, through libcurl (TLS, SASL,
 * literals): the mailbox's UIDVALIDITY and UIDNEXT (STATUS, no selection), the UIDs from a
 * given one on (UID SEARCH), and one message by UID (UID FETCH BODY[]). TLS is required: an
 * imaps:// URL, or imap:// with STARTTLS (CURLUSESSL_ALL: no login goes in clear). Nothing
 * is stored, moved, expunged or deleted; fetching BODY[] lets the server set \Seen, as any
 * mail client's reading does. One connection is kept for the whole run. A fetch names the
 * UIDVALIDITY the UIDs came from: libcurl refuses the fetch when the server's has changed.
 */
#ifndef CL_IMAP_H
#define CL_IMAP_H

#include "dc_util.h"

#include <stdint.h>

struct cl_imap {
    const char *url;      /* imaps://host:port or imap://host:port (no path) */
    const char *mailbox;  /* e.g. INBOX: letters, digits and "._-/" only */
    const char *login, *password;
    const char *ca_file;  /* NULL: the system's CAs */
    unsigned timeout;     /* seconds per request */
    size_t max_message;   /* bytes; a larger message is an error */
    void *curl;           /* the libcurl handle (cl_imap_close frees it) */
};

enum dc_status cl_imap_status(struct cl_imap *im, uint32_t *uidvalidity, uint32_t *uidnext,
                              struct dc_err *err);
/* UIDs >= from, ascending (malloc'd, *n of them). */
enum dc_status cl_imap_search(struct cl_imap *im, uint32_t uidvalidity, uint32_t from,
                              uint32_t **uids, size_t *n, struct dc_err *err);
enum dc_status cl_imap_fetch(struct cl_imap *im, uint32_t uidvalidity, uint32_t uid,
                             uint8_t **msg, size_t *len, struct dc_err *err);
void cl_imap_close(struct cl_imap *im);

/* The numbers after "* SEARCH" in the server's untagged lines (for the tests). */
void cl_imap_parse_search(const char *text, size_t len, uint32_t **uids, size_t *n);

#endif
