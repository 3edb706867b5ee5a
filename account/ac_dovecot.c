/*
 * ac_dovecot - Dovecot auth client: one connection per login check. See ac_dovecot.h.
 */
#include "ac_dovecot.h"

#include "dc_b64.h"
#include "dl_sock.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_DV 16384 /* Dovecot's own bound on an auth protocol line */
#define REQ_ID "1"

struct reader {
    int fd;
    int timeout_ms;
    char buf[LINE_MAX_DV + 1];
    size_t len;
};

/* The next line (without LF), NUL-terminated in r->buf; the rest stays buffered. */
static enum dc_status read_line(struct reader *r, char *line, size_t max, struct dc_err *err)
{
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        if (nl != NULL) {
            size_t n = (size_t)(nl - r->buf);
            if (n >= max)
                return dc_fail(err, DC_ERR_LIMIT, "dovecot auth: line of %zu bytes", n);
            memcpy(line, r->buf, n);
            line[n] = '\0';
            memmove(r->buf, nl + 1, r->len - n - 1);
            r->len -= n + 1;
            return DC_OK;
        }
        if (r->len == LINE_MAX_DV)
            return dc_fail(err, DC_ERR_LIMIT, "dovecot auth: line longer than %d bytes",
                           LINE_MAX_DV);
        ssize_t got = read(r->fd, r->buf + r->len, LINE_MAX_DV - r->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return dl_sock_io_error(err, "dovecot auth", "read", r->timeout_ms);
        if (got == 0)
            return dc_fail(err, DC_ERR_IO, "dovecot auth: connection closed");
        r->len += (size_t)got;
    }
}

static enum dc_status write_all(int fd, const char *p, size_t n, int timeout_ms,
                                struct dc_err *err)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return dl_sock_io_error(err, "dovecot auth", "write", timeout_ms);
        p += w;
        n -= (size_t)w;
    }
    return DC_OK;
}

/* The value of an optional parameter name=... among the TAB-separated fields, or NULL. */
static const char *param(char *fields, const char *name)
{
    size_t nl = strlen(name);
    char *save = NULL;
    for (char *f = strtok_r(fields, "\t", &save); f != NULL; f = strtok_r(NULL, "\t", &save))
        if (strncmp(f, name, nl) == 0 && f[nl] == '=')
            return f + nl + 1;
    return NULL;
}

/* The server's handshake up to DONE: major version 1 and the PLAIN mechanism. */
static enum dc_status handshake(struct reader *r, char *line, struct dc_err *err)
{
    bool version = false, plain = false;
    for (int i = 0; i < 64; i++) {
        enum dc_status s = read_line(r, line, LINE_MAX_DV + 1, err);
        if (s != DC_OK)
            return s;
        if (strncmp(line, "VERSION\t", 8) == 0) {
            if (strncmp(line + 8, "1\t", 2) != 0)
                return dc_fail(err, DC_ERR_FORMAT, "dovecot auth: protocol version %.16s, "
                               "not 1", line + 8);
            version = true;
        } else if (strncmp(line, "MECH\tPLAIN", 10) == 0 && (line[10] == '\0' ||
                                                             line[10] == '\t')) {
            plain = true;
        } else if (strcmp(line, "DONE") == 0) {
            if (!version)
                return dc_fail(err, DC_ERR_FORMAT, "dovecot auth: no VERSION before DONE");
            if (!plain)
                return dc_fail(err, DC_ERR_FORMAT, "dovecot auth: the PLAIN mechanism is not "
                               "offered (auth_mechanisms)");
            return DC_OK;
        }
    }
    return dc_fail(err, DC_ERR_FORMAT, "dovecot auth: no DONE after 64 handshake lines");
}

/* user= of an OK, without Dovecot's escapes (a name that has any is refused). */
static enum dc_status take_user(char *fields, const char *login, char user[AC_USER_MAX + 1],
                                struct dc_err *err)
{
    const char *u = param(fields, "user");
    if (u == NULL)
        u = login;
    size_t n = strlen(u);
    if (n == 0 || n > AC_USER_MAX)
        return dc_fail(err, DC_ERR_FORMAT, "dovecot auth: user name of %zu bytes", n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)u[i] <= 0x20 || (unsigned char)u[i] >= 0x7f)
            return dc_fail(err, DC_ERR_FORMAT, "dovecot auth: user name with byte 0x%02x",
                           (unsigned char)u[i]);
    memcpy(user, u, n + 1);
    return DC_OK;
}

enum dc_status ac_dovecot_auth(const char *sock, const char *login, const uint8_t *pass,
                               size_t passlen, const char *rip, int timeout_ms,
                               char user[AC_USER_MAX + 1], struct dc_err *err)
{
    size_t ll = strlen(login);
    if (ll == 0 || ll > AC_USER_MAX || passlen > 1024 || strpbrk(rip, "\t\n") != NULL)
        return dc_fail(err, DC_ERR_ARG, "login or password too long");
    int fd = dl_sock_connect("dovecot auth", sock, timeout_ms, timeout_ms, err);
    if (fd < 0)
        return DC_ERR_IO;
    struct reader *r = dc_xcalloc(1, sizeof(*r));
    char *line = dc_xmalloc(LINE_MAX_DV + 1);
    r->fd = fd;
    r->timeout_ms = timeout_ms;
    /* SASL PLAIN: authzid (empty) NUL authcid NUL password, base64 */
    size_t plen = 2 + ll + passlen;
    uint8_t *plain = dc_secure_alloc(plen);
    plain[0] = 0;
    memcpy(plain + 1, login, ll);
    plain[1 + ll] = 0;
    memcpy(plain + 2 + ll, pass, passlen);
    size_t blen = dc_b64_enc_len(plen, 1);
    char *b64 = dc_secure_alloc(blen + 1);
    dc_b64_encode(plain, plen, b64, 1);
    dc_secure_free(plain, plen);
    char head[128];
    int hl = snprintf(head, sizeof(head), "VERSION\t1\t2\nCPID\t%ld\n", (long)getpid());
    enum dc_status s = write_all(fd, head, (size_t)hl, timeout_ms, err);
    if (s == DC_OK)
        s = handshake(r, line, err);
    if (s == DC_OK) {
        size_t al = blen + strlen(rip) + 96;
        char *auth = dc_secure_alloc(al);
        int n = snprintf(auth, al, "AUTH\t" REQ_ID "\tPLAIN\tservice=dime-account\tsecured\t"
                         "rip=%s\tresp=%s\n", rip, b64);
        s = write_all(fd, auth, (size_t)n, timeout_ms, err);
        dc_secure_free(auth, al);
    }
    dc_secure_free(b64, blen + 1);
    /* the answer to our request; other lines (none are expected) are skipped */
    for (int i = 0; s == DC_OK && i < 16; i++) {
        if ((s = read_line(r, line, LINE_MAX_DV + 1, err)) != DC_OK)
            break;
        if (strncmp(line, "OK\t" REQ_ID, 4) == 0 && (line[4] == '\0' || line[4] == '\t')) {
            s = take_user(line + 4, login, user, err);
            goto done;
        }
        if (strncmp(line, "FAIL\t" REQ_ID, 6) == 0 && (line[6] == '\0' || line[6] == '\t')) {
            const char *why = param(line + 6, "reason");
            bool temp = strstr(line + 6, "\ttemp") != NULL || strstr(line + 6, "code=temp_fail");
            s = dc_fail(err, temp ? DC_ERR_IO : DC_ERR_SIGNATURE, "login refused%s%.100s%s",
                        why ? " (" : "", why ? why : "", why ? ")" : "");
            goto done;
        }
        if (strncmp(line, "CONT\t" REQ_ID, 6) == 0) {
            s = dc_fail(err, DC_ERR_SIGNATURE, "login refused (a PLAIN step was asked for)");
            goto done;
        }
    }
    if (s == DC_OK)
        s = dc_fail(err, DC_ERR_FORMAT, "dovecot auth: no answer to the request");
done:
    dc_memzero(r->buf, sizeof(r->buf)); /* Dovecot never echoes the response, but be sure */
    free(r);
    free(line);
    close(fd);
    return s;
}
