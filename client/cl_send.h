/*
 * cl_send - dime-client send: one author-form D/MIME message per recipient, signed as the
 * author with the user's own key, each carried in its own application/x-dime message
 * (daemonlib/AUTHOR-SUBMIT.md) and submitted over SMTP with AUTH, STARTTLS required
 * (libcurl).
 */
#ifndef CL_SEND_H
#define CL_SEND_H

#include "dc_crypto.h"
#include "dc_signet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The message as read: header fields unfolded for the few that matter. */
struct cl_msg {
    uint8_t *mime; /* the message to encrypt: CR LF line ends, Bcc fields removed */
    size_t len;
    char *from;    /* the single address of From, NULL when absent or several */
    char **rcpts;  /* To, Cc, Bcc addresses (for -t) */
    size_t nrcpt;
};

/* Parses the message (any line ends; at most max bytes). */
enum dc_status cl_msg_parse(const uint8_t *in, size_t len, size_t max, struct cl_msg *out,
                            struct dc_err *err);
void cl_msg_free(struct cl_msg *m);
/* Splits an address list field value into bare addresses, appended to *list. */
void cl_addr_list(const char *value, char ***list, size_t *n);

/* A recipient's verified signets (the destination's org signet and the user signet). */
struct cl_peer {
    struct dc_signet *org, *user;
};
void cl_peer_free(struct cl_peer *p);

/* The author's side. */
struct cl_author {
    const char *address;
    const struct dc_sign_key *sk;
    const struct dc_signet *user; /* the imported signet */
    const struct dc_signet *org;  /* the author's domain's org signet */
};

/* The author-form D/MIME for one recipient, in its application/x-dime message (malloc'd). */
enum dc_status cl_wrap(const struct cl_author *a, const struct cl_msg *m, const char *rcpt,
                       const struct cl_peer *peer, uint8_t **out, size_t *outlen,
                       struct dc_err *err);

struct cl_smtp {
    const char *url;      /* smtp://host:port */
    const char *login;
    const char *password;
    const char *ca_file;  /* NULL: the system's CAs */
    unsigned timeout;     /* seconds per submission */
};

/* One submission: MAIL FROM sender, RCPT TO rcpt, the bytes. On failure err holds the
 * server's last reply line when there was one. */
enum dc_status cl_smtp_send(const struct cl_smtp *s, const char *sender, const char *rcpt,
                            const uint8_t *msg, size_t len, struct dc_err *err);

#endif
