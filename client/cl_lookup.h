/*
 * cl_lookup - dime-client's own lookup of a recipient's keys, so that the provider cannot
 * substitute them: daemonlib's dl_resolve, the resolver the relay uses (the _dime record
 * through libunbound, DNSSEC-secure required; the DX host from the record, TLS with the
 * record's tls= check; SGNT of the org signet, verified against the record's POKs; SGNT of
 * the user signet, verified under the org signet, HIST and the custody chain when it has
 * one), straight to the recipient domain's DX, never through the provider.
 *
 * A local directory (DIR/peers, or --signets DIR) pins what was verified once: ORG.signet and
 * ADDRESS.signet. A pinned org signet must be the verified one byte for byte; a pinned user
 * signet must be the verified one, or the verified one must descend from it by a custody
 * chain (a rotation: the pin then moves to it). Anything else stops the send (CL_LK_PIN). A
 * signet not pinned yet is written there after it verified (trust on first use).
 */
#ifndef CL_LOOKUP_H
#define CL_LOOKUP_H

#include "cl_send.h"

#include "dl_dns.h"

#include <stdbool.h>
#include <stddef.h>

/* The DNS root's trust anchor when none is given (Debian's dns-root-data). */
#define CL_ROOT_ANCHOR "/usr/share/dns/root.key"

struct cl_lookup_conf {
    struct dl_dns_conf dns;  /* trust anchors (one is required), stubs, local zones */
    const char *ca_file;     /* DX certificates not named by a tls= of a secure record */
    const char *connect_to;  /* "addr:port": every DX connection there (testing, diagnosis) */
    unsigned dx_port;        /* 0: 26 */
    unsigned timeout;        /* seconds per DNS query, connect and read; 0: 10 */
    const char *pin_dir;     /* NULL: no pins */
};

enum cl_lookup_result {
    CL_LK_OK = 0,
    CL_LK_TEMPFAIL, /* DNS or the DX could not be reached: try later */
    CL_LK_NOT_DIME, /* no DIME record: no D/MIME can be made for the recipient */
    CL_LK_REFUSED,  /* what DNS or the DX answered does not verify (a substituted signet) */
    CL_LK_PIN,      /* verified, but it disagrees with the pin directory */
};

struct cl_lookup;
enum dc_status cl_lookup_open(const struct cl_lookup_conf *conf, struct cl_lookup **out,
                              struct dc_err *err);
/* rcpt's verified signets into p, or why (the reason, with the name). */
enum cl_lookup_result cl_lookup_peer(struct cl_lookup *lk, const char *rcpt, struct cl_peer *p,
                                     char *why, size_t wl);
void cl_lookup_close(struct cl_lookup *lk);

/* The pin check alone (cl_lookup_peer calls it): verified against DIR/NAME.signet. A user
 * signet that differs (chained: the verified one descends from the pin, checked by the caller)
 * moves the pin; an absent pin is written. CL_LK_OK, CL_LK_PIN or CL_LK_TEMPFAIL (a file that
 * cannot be read or written), why filled when not OK. */
enum cl_lookup_result cl_pin(const char *dir, const char *name,
                             const struct dc_signet *verified, bool chained, char *why,
                             size_t wl);

#endif
