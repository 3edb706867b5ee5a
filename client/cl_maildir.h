/*
 * cl_maildir - delivery into a local Maildir (tmp/, new/, cur/), the way every Maildir reader
 * expects it: the message is written under a unique name in tmp/, fsync'd, then renamed
 * into new/ and new/ is fsync'd, so a reader never sees a partial file and a crash leaves at
 * most a stray file in tmp/. Unique names are time.MmicrosPpidQcountRrandom.host, as in the
 * Maildir convention (a random part instead of the device and inode). Directories are made
 * with mode 0700, files with 0600.
 */
#ifndef CL_MAILDIR_H
#define CL_MAILDIR_H

#include "dc_util.h"

/* Makes dir and its tmp, new and cur subdirectories when they are missing. */
enum dc_status cl_maildir_init(const char *dir, struct dc_err *err);

/* Delivers head followed by body (either may be empty) as one message into dir/new; *name
 * (when not NULL) gets the file's name in new/ (malloc'd). */
enum dc_status cl_maildir_deliver(const char *dir, const void *head, size_t hlen,
                                  const void *body, size_t blen, char **name,
                                  struct dc_err *err);

#endif
