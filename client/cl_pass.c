/*
 * cl_pass - reading a secret (see cl_pass.h).
 */
#include "cl_pass.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define PASS_MAX 1024

/* One line from fd into the secure buffer p (PASS_MAX + 1 bytes). */
static enum dc_status read_line(int fd, char *p, size_t *len, struct dc_err *err)
{
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return dc_fail(err, DC_ERR_IO, "reading the secret: %s", strerror(errno));
        if (r == 0 || c == '\n')
            break;
        if (n == PASS_MAX)
            return dc_fail(err, DC_ERR_LIMIT, "the secret is longer than %d bytes", PASS_MAX);
        p[n++] = c;
    }
    if (n > 0 && p[n - 1] == '\r')
        n--;
    p[n] = '\0';
    *len = n;
    return DC_OK;
}

enum dc_status cl_pass_get(int fd, const char *env, const char *prompt, char **out,
                           size_t *len, struct dc_err *err)
{
    char *p = dc_secure_alloc(PASS_MAX + 1);
    enum dc_status s;
    const char *e = env ? getenv(env) : NULL;
    if (fd >= 0) {
        s = read_line(fd, p, len, err);
    } else if (e != NULL) {
        *len = strlen(e);
        s = *len > PASS_MAX ? dc_fail(err, DC_ERR_LIMIT, "%s is longer than %d bytes", env,
                                      PASS_MAX)
                            : DC_OK;
        if (s == DC_OK)
            memcpy(p, e, *len + 1);
    } else {
        int tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
        if (tty < 0) {
            dc_secure_free(p, PASS_MAX + 1);
            return dc_fail(err, DC_ERR_IO, "no terminal to ask for the %s (give it with a file "
                           "descriptor option or %s)", prompt, env ? env : "an option");
        }
        struct termios old, quiet;
        bool echo_off = tcgetattr(tty, &old) == 0;
        if (echo_off) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(tty, TCSAFLUSH, &quiet);
        }
        dprintf(tty, "%s: ", prompt);
        s = read_line(tty, p, len, err);
        dprintf(tty, "\n");
        if (echo_off)
            tcsetattr(tty, TCSAFLUSH, &old);
        close(tty);
    }
    if (s != DC_OK) {
        dc_secure_free(p, PASS_MAX + 1);
        return s;
    }
    *out = p;
    return DC_OK;
}

void cl_pass_free(char *p, size_t len)
{
    (void)len;
    if (p != NULL)
        dc_secure_free(p, PASS_MAX + 1);
}
