/*
 * fuzz_inject_reply - the reply reader of the relay's SMTP client that injects inbound mail
 * into Postfix (rl_smtp_reply, dmtp-relay/rl_inject.c), reading from a socket as it does.
 *
 * Input: the first byte sets the size of the text buffer (1-256), the rest is what the
 * listener sends; replies are read until the reader gives up (-1). Invariants: a code is
 * -1 or 200-599 and is the first three characters of the text returned with it; the text
 * is NUL-terminated within the buffer and holds no line end; the reader's buffer never
 * holds more than its size; every call consumes bytes or ends the session.
 */
#include "rl_inject_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    size_t cap = (size_t)data[0] + 1;
    data++;
    size--;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(sv[1], data + off, size - off);
        if (w <= 0)
            abort();
        off += (size_t)w;
    }
    close(sv[1]);
    struct smtp s = {.fd = sv[0]};
    char *text = malloc(cap); /* exact size: ASan sees a write past it */
    for (size_t calls = 0;; calls++) {
        if (calls > size + 1)
            abort(); /* each reply takes at least one line end */
        memset(text, 'X', cap);
        int code = rl_smtp_reply(&s, text, cap);
        if (s.len > sizeof(s.buf))
            abort();
        if (code == -1)
            break;
        if (code < 200 || code > 599)
            abort();
        size_t tl = strnlen(text, cap);
        if (tl == cap || memchr(text, '\n', tl) != NULL || memchr(text, '\r', tl) != NULL)
            abort();
        char want[4] = {(char)('0' + code / 100), (char)('0' + code / 10 % 10),
                        (char)('0' + code % 10), 0};
        if (strncmp(text, want, tl < 3 ? tl : 3) != 0)
            abort();
    }
    free(text);
    close(sv[0]);
    return 0;
}
