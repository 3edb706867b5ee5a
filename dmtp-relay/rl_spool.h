/*
 * rl_spool - where an inbound DMTP message larger than data-spool-threshold waits while it
 * arrives: a file without a name in the spool directory (O_TMPFILE, or mkstemp and unlink at
 * once where the file system lacks it), mode 0600, owned by the relay's user. Only a small
 * staging buffer per connection (RL_SPOOL_CHUNK) is held in memory and counted against
 * data-memory-limit, so a large message over a slow link no longer holds its whole size in
 * memory for as long as it takes to arrive. The verifying worker maps the finished file
 * (dc_fmap, pages given back as the parse and the digests pass them) and the queue copies it
 * into its database in windows (rl_queue_in_add_map); closing the descriptor frees the file.
 * Nothing is ever left under a name, but for a crash between mkstemp and unlink on the
 * fallback path: rl_spool_prepare removes such leftovers when the relay starts.
 */
#ifndef RL_SPOOL_H
#define RL_SPOOL_H

#include "dc_util.h"

#include <stdbool.h>
#include <stddef.h>

#define RL_SPOOL_CHUNK 65536 /* the staging buffer of a spooled message, bytes */

/* Whether a message of total bytes (header included, its CRLF not) goes to a spool file
 * under threshold (0: never). */
bool rl_spool_wanted(size_t total, unsigned long threshold);
/* The bytes a message of total bytes holds in memory while it arrives, which is what it
 * reserves of data-memory-limit: all of it with its CRLF, or the staging buffer when it is
 * spooled (never more than the message itself). */
size_t rl_spool_charge(size_t total, unsigned long threshold);
/* The spool directory of the configuration: dir itself, or when it is empty or NULL
 * "spool" beside the queue database. Writes at most n bytes to out; false if too long. */
bool rl_spool_dir(const char *dir, const char *queue_database, char *out, size_t n);
/* Makes dir (0700) when missing and removes the files a crash may have left there. Run as
 * the relay's user, at start. */
enum dc_status rl_spool_prepare(const char *dir, struct dc_err *err);
/* A new unnamed file in dir, read-write, 0600: its descriptor, or -1 with err set. */
int rl_spool_open(const char *dir, struct dc_err *err);
/* Appends n bytes to fd (a plain, blocking file write). */
enum dc_status rl_spool_write(int fd, const void *p, size_t n, struct dc_err *err);

#endif
