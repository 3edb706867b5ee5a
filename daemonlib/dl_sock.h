/*
 * dl_sock - the Unix stream sockets between our processes, set up in one place.
 *
 * Listening: the socket appears at its path only once it is finished. It is bound under a
 * temporary name beside the path, given its owner, group and mode, put into listening
 * state, and then renamed over the path. A client that waits for the path therefore never
 * connects to a socket whose permissions are still the creation defaults, and a daemon that
 * restarts replaces its old socket without a moment where the path is missing. A path that
 * exists and is not a socket (a file or directory put there by mistake) is refused, never
 * removed.
 *
 * Connecting: always close-on-exec, with a bound on the wait for the listener (a full
 * listen queue makes connect() wait) and, if asked, on every later send and receive
 * (SO_SNDTIMEO, SO_RCVTIMEO: a blocking call then fails with EAGAIN, which
 * dl_sock_io_error() turns into words). Error texts name the peer, the path and the cause.
 */
#ifndef DL_SOCK_H
#define DL_SOCK_H

#include "dc_util.h"

#include <sys/types.h>

/* Passed as owner or group: leave it as the creating process made it. */
#define DL_SOCK_KEEP_UID ((uid_t)-1)
#define DL_SOCK_KEEP_GID ((gid_t)-1)

/* chown(2) of path, only for what differs (0 when nothing does, so a process filtered from
 * chown, as by the systemd units' SystemCallFilter, passes when the owner and group it asks
 * for are its own); -1 with errno otherwise. */
int dl_sock_chown(const char *path, uid_t owner, gid_t group);

/* A listening socket at path (non-blocking, close-on-exec) with exactly the given mode
 * (e.g. 0660), owner and group (DL_SOCK_KEEP_* to leave them). Returns the descriptor, or -1
 * with err set. The caller removes the path when it stops serving. */
int dl_sock_listen(const char *path, mode_t mode, uid_t owner, gid_t group, int backlog,
                   struct dc_err *err);

/* A listening TCP socket (non-blocking, close-on-exec, SO_REUSEADDR, backlog 128) on an IPv4
 * or IPv6 address literal and port, or -1 with err set ("listen on ADDRESS port N: ..."). */
int dl_sock_listen_tcp(const char *address, unsigned port, struct dc_err *err);

/* A connected, blocking socket to path, or -1 with err set. what names the peer in error
 * texts ("keyvault", "relay lookup"...; NULL: none). connect_ms bounds the wait for room in
 * the listener's queue, io_ms each later send and receive, both in milliseconds; 0 leaves
 * that wait unbounded (for callers that poll with their own deadline). */
int dl_sock_connect(const char *what, const char *path, int connect_ms, int io_ms,
                    struct dc_err *err);

/* Fills err for a failed send or receive (errno as the call left it) on a socket from
 * dl_sock_connect: a timeout reads as one, not as "Resource temporarily unavailable".
 * Returns DC_ERR_IO. */
enum dc_status dl_sock_io_error(struct dc_err *err, const char *what, const char *op,
                                int io_ms);

#endif
