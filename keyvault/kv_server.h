/*
 * kv_server - dime-keyvaultd's serving side: the listening socket, the event loop, access
 * control per request and the request log.
 *
 * Design: one thread and a ppoll() loop over non-blocking sockets. Every operation is a
 * few tens of microseconds of CPU (one Ed25519 signature or one ECDH plus an indexed SQLite
 * read and an AES-GCM open), so a single thread keeps up with many clients, and it needs no
 * locking around the SQLite handle, the configuration (reloaded on SIGHUP) or key memory.
 * Clients are served fairly: each connection has at most one request in progress, and a
 * slow client cannot block others (reads and writes never block). If CPU ever becomes the
 * limit, a worker pool can be put behind kv_server_handle() without changing the protocol.
 *
 * Signing streams (SIGN-BEGIN .. SIGN-END) keep their state in the connection between frames:
 * a few hundred bytes of hash state and the expanded key in secure memory, whatever the
 * message size, so a stream costs no more memory than an idle connection; other clients are
 * served between its frames. A stream idle for sign-stream-timeout seconds is dropped with
 * its connection.
 *
 * Log lines (syslog, or stderr in the foreground), one per request (one per signing stream,
 * at its end or failure):
 *   op=sign principal=alice@example.org purpose=chunk uid=1000 pid=42 result=ok
 *   op=kek principal=bob@example.org uid=1001 pid=43 result=denied reason="..."
 * They never contain key bytes or message data.
 */
#ifndef KV_SERVER_H
#define KV_SERVER_H

#include "dc_dmime.h"
#include "kv_config.h"
#include "kv_vault.h"

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>


/* Creates the listening socket with dl_sock_listen: mode 0660, group socket-group, put in
 * place of a stale socket (never of another kind of file). Returns the fd or -1 (err
 * filled). */
int kv_server_listen(const struct kv_config *c, struct dc_err *err);

/* A connection's signing stream, between SIGN-BEGIN and SIGN-END (stream NULL: none). */
struct kv_stream_state {
    struct kv_sign_stream *stream;
    char shown[KV_NAME_MAX + 8]; /* principal, for the log */
    enum kv_purpose purpose;
    uint64_t bytes; /* both passes */
    struct timespec last; /* CLOCK_MONOTONIC of the last frame */
    struct dc_dmime_input_check input; /* the first pass's shape, for the purpose */
    bool pass2;
};
void kv_stream_state_clear(struct kv_stream_state *s);

/* Handles one request payload from a peer; appends one response frame to out. ss holds the
 * connection's signing stream (NULL: stream operations are refused). */
void kv_server_handle(struct kv_vault *v, const struct kv_config *c, uid_t uid, pid_t pid,
                      struct kv_stream_state *ss, const uint8_t *req, size_t len,
                      struct dc_buf *out);

/* Serves until SIGTERM or SIGINT; on SIGHUP re-reads the allow lists from config_path.
 * Returns 0 on a clean stop. */
int kv_server_run(int lfd, struct kv_vault *v, struct kv_config *c, const char *config_path);

#endif
