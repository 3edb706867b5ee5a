/*
 * cl_state - what `dime-client sync` remembers between runs, in the client's directory:
 *
 *   sync.state   where the last run stopped in the server's mailbox, rewritten whole
 *                (temporary file, fsync, rename) after each message:
 *                    dime-client-sync 1
 *                    uidvalidity <decimal>
 *                    last-uid <decimal>
 *                A new UIDVALIDITY (the server renumbered the mailbox) restarts at UID 1.
 *   sync.seen    one line per message already delivered to the local Maildir: the hex of
 *                the first 32 bytes of SHA-512 over the D/MIME bytes (a wrapper) or over the
 *                whole message (anything else). Appended and fsync'd after the delivery, so
 *                a refetch (new UIDVALIDITY, a lost sync.state) delivers nothing twice. A
 *                crash between the delivery and the append can deliver one message twice,
 *                never lose one. A last line without its line end (a cut append) is ignored, and
 *                the next append truncates it away first.
 *
 * Both files are refused when malformed (the reason names the file and the line): sync stops
 * rather than guess where it was.
 */
#ifndef CL_STATE_H
#define CL_STATE_H

#include "dc_util.h"

#include <stdbool.h>
#include <stdint.h>

#define CL_DIGEST_LEN 32

struct cl_state {
    uint32_t uidvalidity; /* 0: no run yet */
    uint32_t last_uid;    /* the highest UID handled under uidvalidity */
    uint8_t (*seen)[CL_DIGEST_LEN];
    size_t nseen;
    bool torn;            /* sync.seen ends inside a line: the next append cuts it off */
    size_t seen_len;      /* bytes of sync.seen up to its last complete line */
    char *state_path, *seen_path;
};

/* Reads dir/sync.state and dir/sync.seen (absent files: a first run). */
enum dc_status cl_state_load(const char *dir, struct cl_state *st, struct dc_err *err);
/* Writes sync.state atomically. */
enum dc_status cl_state_save(const struct cl_state *st, struct dc_err *err);
bool cl_state_seen(const struct cl_state *st, const uint8_t d[CL_DIGEST_LEN]);
/* Appends d to sync.seen (fsync'd) and to st. */
enum dc_status cl_state_add_seen(struct cl_state *st, const uint8_t d[CL_DIGEST_LEN],
                                 struct dc_err *err);
void cl_state_free(struct cl_state *st);

/* The digest sync.seen keeps of bytes. */
void cl_digest(const uint8_t *p, size_t len, uint8_t out[CL_DIGEST_LEN]);

#endif
