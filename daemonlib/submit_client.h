/*
 * submit_client - the client side of dime-relayd's submission protocol (SUBMIT.md): one
 * atomic, idempotent request carrying every D/MIME message made from one Postfix message.
 * Blocking, no global state, safe to call from several threads at once. Also the protocol
 * code both sides share: field checks, the submission key, and the relay's request reader
 * (submit_read, kept free of sockets so that tests/fuzz/fuzz_submit.c can drive it).
 */
#ifndef SUBMIT_CLIENT_H
#define SUBMIT_CLIENT_H

#include "dc_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SUBMIT_MAX_MESSAGES 1000
#define SUBMIT_ADDR_MAX     254
#define SUBMIT_QID_MAX      64
#define SUBMIT_MSGID_MAX    998
#define SUBMIT_REPLY_MAX    512

struct submit_msg {
    const char *sender;    /* envelope sender for DSNs, or "" / "<>" for the null sender */
    const char *recipient; /* local@domain */
    const uint8_t *dmime;  /* the D/MIME bytes */
    size_t len;
};

struct submit_req {
    const char *queue_id;   /* Postfix queue id */
    const char *message_id; /* Message-ID value, NULL or "" when absent */
    const struct submit_msg *msgs;
    size_t nmsgs;
};

struct submit_result {
    int code;            /* reply code; 0 when no reply was read (outcome unknown) */
    char status[16];     /* enhanced status code, e.g. "4.3.0" */
    char text[SUBMIT_REPLY_MAX]; /* the whole reply line without the LF */
    bool duplicate;      /* 250 for a key committed before */
    char sid[17];        /* submission id on 250 */
    size_t count;        /* messages of that submission on 250 */
};

/*
 * Sends the request and reads the reply. DC_OK only for a 250 reply. A reply of another code
 * gives DC_ERR_FIELD with res->code set (4xx: tempfail; 5xx: see SUBMIT.md). Arguments that
 * break the protocol's rules give DC_ERR_ARG before anything is sent; connection, timeout and
 * unparseable replies give DC_ERR_IO / DC_ERR_FORMAT with res->code 0. timeout_s bounds every
 * single read and write (0: 300 s).
 */
enum dc_status submit_send(const char *socket_path, unsigned timeout_s,
                           const struct submit_req *req, struct submit_result *res,
                           struct dc_err *err);

/* The submission key (SUBMIT.md, Idempotency), as 64 hex digits plus NUL; the relay uses the
 * same function. DC_ERR_ARG when the fields break their rules. */
enum dc_status submit_key(const char *queue_id, const char *message_id,
                          const char *const *recipients, size_t n, char out[65],
                          struct dc_err *err);

/* The request as submit_send() writes it: the header lines (DIME-SUBMIT 1 up to messages <n>)
 * and the line before each message's bytes. Appended to b; no checks (submit_send checks). */
void submit_put_head(struct dc_buf *b, const struct submit_req *req);
void submit_put_msg(struct dc_buf *b, const struct submit_msg *m);

/* Parses res->text (one reply line without its LF) into res->code, status, duplicate, sid
 * and count. res->code stays 0 when the line does not follow SUBMIT.md (a 250 line must
 * carry queued or duplicate, a 16-hex-digit sid and a count of 1-1000). */
void submit_parse_reply(struct submit_result *res);

/* ---- the relay's side: reading a request ---- */

/* Where request bytes come from: read() stores up to cap bytes in buf and returns how many;
 * 0 means no more (end of input, timeout or error: ctx knows which). */
struct submit_src {
    size_t (*read)(void *ctx, uint8_t *buf, size_t cap);
    void *ctx;
};

/* A request in memory as a source, handed out at most step bytes per read() (0: no limit),
 * as a socket may cut it: for tests and fuzzing. off counts the bytes read so far. */
struct submit_mem {
    const uint8_t *p;
    size_t len, off, step;
};
size_t submit_mem_read(void *mem, uint8_t *buf, size_t cap);

struct submit_in_msg {
    char sender[SUBMIT_ADDR_MAX + 1];    /* "" for the null sender <> */
    char recipient[SUBMIT_ADDR_MAX + 1];
    char domain[SUBMIT_ADDR_MAX + 1];    /* the recipient's domain in lower case */
    uint8_t *data;                          /* the D/MIME bytes (malloc'd) */
    size_t len;
};

struct submit_in {
    char queue_id[SUBMIT_QID_MAX + 1];
    char message_id[SUBMIT_MSGID_MAX + 1];
    struct submit_in_msg *msgs;
    size_t n;
};

/*
 * Reads one request (SUBMIT.md, Request) from src, up to its "end" line; what follows it is
 * not looked at. Returns 0 with *in filled when the request follows every rule, else the
 * reply code (500 framing, 501 field, 552 size) with the whole reply line (without LF, no
 * address or content in it) in reply. A message's bytes are read only after its line
 * passed every check, so a refused size is never read. max_message and max_total are
 * max-message-size and submit-max-total. Free *in with submit_in_free in both cases.
 */
int submit_read(const struct submit_src *src, unsigned long max_message,
                unsigned long max_total, struct submit_in *in,
                char reply[SUBMIT_REPLY_MAX]);
void submit_in_free(struct submit_in *in);

/* Field checks shared by the client and the relay. */
bool submit_qid_ok(const char *s);
bool submit_msgid_ok(const char *s, size_t len);
/* local@domain, printable ASCII without spaces, at most 254 bytes, one '@' with non-empty
 * sides at the last '@'. */
bool submit_addr_ok(const char *s);

#endif
