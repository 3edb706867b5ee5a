/*
 * dl_log - the one logger of every dime-gateway daemon.
 *
 * A line has a syslog severity and is written as key=value pairs after a short event word;
 * a line about one message starts with that message's queue id (the Postfix queue id in the
 * milter, the transfer id in the relay), so that `grep QUEUEID /var/log/mail.log` follows a
 * message through Postfix and the gateway. Lines never carry content, subjects or the
 * addresses of parties other than the one a line is about.
 *
 * Where lines go is chosen once, at start (dl_log_open), never at the call site:
 *  - syslog: one datagram per line, "<PRI>Mmm dd hh:mm:ss ident[pid]: text" (the format of
 *    syslog(3)) to the socket given (default /dev/log), with the facility given (default
 *    mail). Written here rather than through syslog(3) so that the socket can be named: the
 *    tests read a daemon's syslog lines from a socket of their own. A syslog daemon that
 *    restarts is connected to again on the next line; a line that cannot be sent is lost.
 *  - stderr: one "ident[pid]: text" line per write, whole lines even from many threads.
 *    Under systemd (JOURNAL_STREAM names stderr's stream) each line starts with "<N>", the
 *    severity as sd-daemon(3) reads it, so that the journal keeps it.
 * Before dl_log_open, lines go to stderr under the ident "dime".
 */
#ifndef DL_LOG_H
#define DL_LOG_H

#include <stdbool.h>
#include <syslog.h>

#define DL_LOG_SYSLOG 1u
#define DL_LOG_STDERR 2u

#define DL_LOG_SOCKET_DEFAULT "/dev/log"

/* ident must stay valid for the life of the process. facility: a name that
 * dl_log_facility knows (NULL: mail); socket: the syslog socket (NULL: /dev/log). Returns
 * false (and logs to stderr) for an unknown facility, which then is mail. */
bool dl_log_open(const char *ident, unsigned where, const char *facility, const char *socket);

/* dl_log_open with facility mail and /dev/log. */
void dl_log_init(const char *ident, unsigned where);

/* Where a daemon logs: stderr when it runs in the foreground (-f) or under systemd (its
 * stderr is the stream JOURNAL_STREAM names), syslog otherwise. */
unsigned dl_log_where(bool foreground);

/* The LOG_* facility code of a name (mail, daemon, user, local0 .. local7), -1 if unknown. */
int dl_log_facility(const char *name);

/* prio is a syslog severity (LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG). A line
 * longer than 1023 bytes is cut there. */
void dl_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Logs one option changed on SIGHUP (a dc_config_change_fn, dc_config.h): "reload
 * [section=S|domain=D] option=O result=applied", or result=ignored reason="needs a restart"
 * for an option this daemon reads only at start. ctx is unused. */
void dl_log_change(void *ctx, const char *section, const char *title, const char *opt,
                   bool applied);

#endif
