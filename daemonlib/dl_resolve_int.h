/*
 * dl_resolve_int - the parts of the resolver that read what DNS and a remote DX send, for
 * dl_resolve.c and its fuzz target (tests/fuzz/fuzz_resolve.c), and dl_dx_hosts for
 * `dimectl check` (the hosts a relay tries). Not an API: nothing else includes this.
 */
#ifndef DL_RESOLVE_INT_H
#define DL_RESOLVE_INT_H

#include "dl_resolve.h"

#include "dc_dmtp.h"

#include <stdbool.h>
#include <stddef.h>

/* The DX hosts to try, in order. */
struct hosts {
    char name[DC_MREC_MAX_DX + 3][256];
    bool mx[DC_MREC_MAX_DX + 3]; /* from MX: dual mode on remote-dual-port is tried too */
    size_t n;
};

/* The record's dx= hosts; without any, up to 3 MX hosts of domain (lowest preference
 * first, from their RDATA) and then domain itself. */
void dl_dx_hosts(struct dl_resolver *r, const char *domain, struct dl_lookup *l,
                 struct hosts *h);
/* Dual mode on the plain socket fd: the banner must announce DMTPv1, STARTTLS must get a
 * 2xx with nothing after it. false (why filled) otherwise. */
bool dl_dual_start(int fd, const char *host, char *why, size_t wl);
/* The reply to HIST <user> [known]: a chain of signets that starts at known (when given),
 * each verified against l->org and its predecessor, ending at l->user; DL_OUT_SECURE (and
 * l->custody_len set) or a failure with l->reason. */
enum dl_outcome dl_custody_walk(const struct dc_dmtp_reply *rep, const char *user,
                                const char *known, struct dl_lookup *l);
/* The VRFY reply rep classified: 2xx with one line, `CURRENT`, or `UPDATE` and one
 * fingerprint (bare, in brackets or in angle brackets); anything else is DL_VRFY_OTHER. */
enum dl_vrfy dl_vrfy_answer(const struct dc_dmtp_reply *rep);

#endif
