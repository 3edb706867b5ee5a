/*
 * mf_log - dime-milter's log: syslog (facility mail), and stderr too when running in the
 * foreground. Per-message lines start with the Postfix queue id; they never carry addresses
 * of other parties, subjects or content.
 */
#ifndef MF_LOG_H
#define MF_LOG_H

#include <stdbool.h>
#include <syslog.h>

void mf_log_init(bool to_stderr);
void mf_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
