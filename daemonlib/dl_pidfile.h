/*
 * dl_pidfile - the daemons' pid file.
 *
 * The file is created (or emptied) by dl_pidfile_open, which refuses to follow a symbolic
 * link and gives it mode 0644: a daemon started as root opens it before its privilege drop,
 * when the directory (/run) is root's. The process id goes in with dl_pidfile_write, after
 * daemon() when the daemon detaches itself, so the file names the process that serves.
 * dl_pidfile_remove unlinks it at a clean exit; after a drop that fails when the directory
 * is root's, which is harmless: the next start truncates the file.
 */
#ifndef DL_PIDFILE_H
#define DL_PIDFILE_H

#include "dc_util.h"

struct dl_pidfile {
    int fd;           /* open until written */
    const char *path; /* NULL until opened; the caller's string, which must outlive it */
};
#define DL_PIDFILE_INIT {-1, NULL}

enum dc_status dl_pidfile_open(struct dl_pidfile *pf, const char *path, struct dc_err *err);
/* Writes "<pid>\n" of the calling process and closes the file. */
enum dc_status dl_pidfile_write(struct dl_pidfile *pf, struct dc_err *err);
/* Closes and unlinks a file this process opened; nothing when none was. */
void dl_pidfile_remove(struct dl_pidfile *pf);

#endif
