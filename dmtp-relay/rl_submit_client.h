/*
 * rl_submit_client - the client side of dime-relayd's submission protocol (SUBMIT.md): one
 * atomic, idempotent request carrying every D/MIME message made from one Postfix message.
 * Blocking, no global state, safe to call from several threads at once.
 */
#ifndef RL_SUBMIT_CLIENT_H
#define RL_SUBMIT_CLIENT_H

#include "dc_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RL_SUBMIT_MAX_MESSAGES 1000
#define RL_SUBMIT_ADDR_MAX     254
#define RL_SUBMIT_QID_MAX      64
#define RL_SUBMIT_MSGID_MAX    998
#define RL_SUBMIT_REPLY_MAX    512

struct rl_submit_msg {
    const char *sender;    /* envelope sender for DSNs, or "" / "<>" for the null sender */
    const char *recipient; /* local@domain */
    const uint8_t *dmime;  /* the D/MIME bytes */
    size_t len;
};

struct rl_submit_req {
    const char *queue_id;   /* Postfix queue id */
    const char *message_id; /* Message-ID value, NULL or "" when absent */
    const struct rl_submit_msg *msgs;
    size_t nmsgs;
};

struct rl_submit_result {
    int code;            /* reply code; 0 when no reply was read (outcome unknown) */
    char status[16];     /* enhanced status code, e.g. "4.3.0" */
    char text[RL_SUBMIT_REPLY_MAX]; /* the whole reply line without the LF */
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
enum dc_status rl_submit(const char *socket_path, unsigned timeout_s,
                         const struct rl_submit_req *req, struct rl_submit_result *res,
                         struct dc_err *err);

/* The submission key (SUBMIT.md, Idempotency), as 64 hex digits plus NUL; the relay uses the
 * same function. DC_ERR_ARG when the fields break their rules. */
enum dc_status rl_submit_key(const char *queue_id, const char *message_id,
                             const char *const *recipients, size_t n, char out[65],
                             struct dc_err *err);

/* Field checks shared by the client and the relay. */
bool rl_submit_qid_ok(const char *s);
bool rl_submit_msgid_ok(const char *s, size_t len);
/* local@domain, printable ASCII without spaces, at most 254 bytes, one '@' with non-empty
 * sides at the last '@'. */
bool rl_submit_addr_ok(const char *s);

#endif
