/*
 * dl_log - the one logger of every dime-gateway daemon.
 *
 * A line has a syslog severity and is written as key=value pairs after a short event word;
 * a line about one message starts with that message's queue id (the Postfix queue id in the
 * milter, the transfer id in the relay), so that `grep QUEUEID /var/log/mail.log` follows a
 * message through Postfix and the gateway. Lines never carry content, subjects or the
 * addresses of parties other than the one a line is about.
 *
 * Where lines go is chosen once, at start (dl_log_init), never at the call site: syslog
 * (facility mail, the ident as tag, with the pid), stderr (one "ident[pid]: text" line per
 * write, whole lines even from many threads), or both. Before dl_log_init, lines go to
 * stderr under the ident "dime".
 */
#ifndef DL_LOG_H
#define DL_LOG_H

#include <syslog.h>

#define DL_LOG_SYSLOG 1u
#define DL_LOG_STDERR 2u

/* ident must stay valid for the life of the process (syslog keeps the pointer). */
void dl_log_init(const char *ident, unsigned where);

/* prio is a syslog severity (LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG). A line
 * longer than 1023 bytes is cut there. */
void dl_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
