/*
 * rl_inject_int - the reply reader of the relay's SMTP client that injects into Postfix
 * (rl_inject.c), for that file and for its fuzz target (tests/fuzz/fuzz_inject_reply.c).
 * Not an API: nothing else includes this.
 */
#ifndef RL_INJECT_INT_H
#define RL_INJECT_INT_H

#include <stddef.h>

struct smtp {
    int fd;
    char buf[4096];
    size_t len;
};

/* Reads one reply from s->fd (lines kept in s->buf for the next call): its code, 200-599,
 * or -1 when the listener closed, sent a line that is not a reply line or one longer than
 * s->buf. text (may be NULL) gets the last line without its line end, cut to cap - 1, every
 * byte outside printable ASCII replaced by '?'. */
int rl_smtp_reply(struct smtp *s, char *text, size_t cap);

#endif
