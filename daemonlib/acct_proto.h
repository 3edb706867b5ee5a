/*
 * acct_proto - the account service's wire format (daemonlib/ACCOUNT.md): a user's device
 * talks to dime-accountd over TLS in lines of text. The server's request parser and the
 * client's reply parser, shared by dime-accountd and dime-client.
 *
 *     request  = verb *(SP word) CRLF (a bare LF is accepted)
 *     reply    = "OK" *(SP word) CRLF / "NO" SP code SP text CRLF
 *
 * Words are printable ASCII without spaces; binary values (the password, signets, the key
 * blob) travel as standard base64. A request line is at most ACCT_LINE_MAX bytes with its
 * end, a reply line ACCT_REPLY_MAX.
 *
 * SECURITY: the request parser sees the bytes of anyone who can reach the port, before any
 * login. It never allocates, never reads outside [line, line+len), and checks every word's
 * syntax and length for its verb; the values point into the caller's line.
 */
#ifndef ACCT_PROTO_H
#define ACCT_PROTO_H

#include "dc_util.h"

#include <stdbool.h>
#include <stddef.h>

#define ACCT_VERSION 1
#define ACCT_LINE_MAX 16384u  /* a request line, CRLF included */
#define ACCT_REPLY_MAX 65536u /* a reply line (HISTORY: up to 64 signets), CRLF included */
#define ACCT_ADDR_MAX 254u
#define ACCT_LOGIN_MAX 254u
#define ACCT_PASS_B64_MAX 1368u /* base64 of a 1024-byte password */
#define ACCT_SSR_B64_MAX 5464u  /* base64 of KV_SSR_MAX (4096) bytes */
#define ACCT_BLOB_B64_MAX 5464u /* base64 of KV_BLOB_MAX (4096) bytes */
#define ACCT_WORDS_MAX 72u      /* words of a reply: OK, a count, 64 signets and a few */
#define ACCT_KEYS_LEN 64u       /* TRUSTFUL: a generation's signing seed || encryption scalar */
#define ACCT_KEYS_B64_MAX 88u   /* its base64 */

enum acct_verb {
    ACCT_LOGIN = 1, /* LOGIN login b64(password) */
    ACCT_ENROLL,    /* ENROLL address cautious|paranoid b64(ssr) [b64(blob)] */
    ACCT_ROTATE,    /* ROTATE address b64(ssr) [b64(blob)] */
    ACCT_BLOB,      /* BLOB address */
    ACCT_HISTORY,   /* HISTORY address */
    ACCT_QUIT,      /* QUIT */
    ACCT_KEYS,      /* KEYS address (migration: a Trustful account's private keys) */
    ACCT_PARANOID,  /* PARANOID address b64(ssr) (migration Trustful -> Paranoid) */
    ACCT_TRUSTFUL,  /* TRUSTFUL address b64(ssr) b64(keys) (migration to Trustful) */
};
#define ACCT_VERB_LAST ACCT_TRUSTFUL

struct acct_word {
    const char *p;
    size_t len;
};

struct acct_request {
    enum acct_verb verb;
    struct acct_word login, pass;    /* LOGIN (pass is base64) */
    struct acct_word address;        /* every verb but LOGIN and QUIT */
    bool cautious;                   /* ENROLL: the mode word */
    struct acct_word ssr, blob;      /* ENROLL, ROTATE, PARANOID, TRUSTFUL (base64); blob.p
                                        NULL when absent */
    struct acct_word keys;           /* TRUSTFUL (base64 of ACCT_KEYS_LEN bytes) */
};

const char *acct_verb_name(enum acct_verb v);

/* One request line (with or without its CRLF/LF). DC_ERR_FORMAT, _FIELD or _LIMIT with a
 * message fit for the "NO bad" reply. */
enum dc_status acct_request_parse(const char *line, size_t len, struct acct_request *req,
                                  struct dc_err *err);

struct acct_reply {
    bool ok;
    struct acct_word code;                  /* NO */
    struct acct_word text;                  /* NO: the rest of the line */
    struct acct_word words[ACCT_WORDS_MAX]; /* OK: the words after "OK" */
    size_t nwords;
};

/* One reply line. DC_ERR_FORMAT when it is neither OK nor NO, DC_ERR_LIMIT with too many
 * words. */
enum dc_status acct_reply_parse(const char *line, size_t len, struct acct_reply *rep,
                                struct dc_err *err);

#endif
