/*
 * dimectl_postfix - the Postfix lines of `dimectl setup` (contrib/README.postfix in the form
 * postconf(1) takes them): what it prints, and what --apply hands to postconf -e / -M / -P.
 * Pure string work, no Postfix needed (unit-tested in tests/unit/test_pfx.c).
 */
#ifndef DIMECTL_POSTFIX_H
#define DIMECTL_POSTFIX_H

#include <stdbool.h>
#include <stddef.h>

/* One postconf operation: flag 'e' (main.cf "name = value"), 'M' (a master.cf entry
 * "service/type=service type private unpriv chroot wakeup maxproc command") or 'P' (a
 * master.cf -o: "service/type/name=value"). arg is malloc'd. */
struct pfx_op {
    char flag;
    char *arg;
    bool if_exists; /* 'P' on a service the operator has already (smtp/inet): skipped when
                       master.cf has no such entry */
    bool if_absent; /* 'M' of a service the operator may have already (submission): kept
                       when present, only its -o's are set */
};

struct pfx_ops {
    struct pfx_op *op;
    size_t n;
};

/*
 * The milter's socket as Postfix spells it: "unix:PATH" and "local:PATH" stay "unix:PATH",
 * libmilter's "inet:PORT@HOST" becomes "inet:HOST:PORT" (and "inet6:PORT@HOST"
 * "inet6:[HOST]:PORT"). false when sock is none of these (out untouched).
 */
bool pfx_milter_socket(const char *sock, char *out, size_t cap);

/* The operations for a milter at milter (Postfix spelling) and the relay's injection listener
 * inject_addr:inject_port, in the order to apply them. */
void pfx_ops_build(struct pfx_ops *ops, const char *milter, const char *inject_addr,
                   unsigned inject_port);
void pfx_ops_free(struct pfx_ops *ops);

/* The text to print: main.cf lines, then each master.cf entry with its -o lines indented,
 * as contrib/README.postfix shows them. malloc'd. */
char *pfx_ops_text(const struct pfx_ops *ops);

#endif
