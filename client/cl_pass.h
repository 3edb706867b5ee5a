/*
 * cl_pass - where dime-client gets a secret (the key file's passphrase, the SMTP password):
 * a file descriptor named on the command line, else an environment variable, else the
 * terminal with echo off. The first line is the secret (the line end is not part of it).
 */
#ifndef CL_PASS_H
#define CL_PASS_H

#include "dc_util.h"

/* fd >= 0: read that descriptor to its end or first line end; else env's value when set;
 * else prompt on /dev/tty. The secret is in secure memory: free with cl_pass_free. */
enum dc_status cl_pass_get(int fd, const char *env, const char *prompt, char **out,
                           size_t *len, struct dc_err *err);
void cl_pass_free(char *p, size_t len);

#endif
