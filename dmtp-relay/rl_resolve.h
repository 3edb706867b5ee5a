/*
 * rl_resolve - the relay's resolver: daemonlib's dl_resolve (record, DX, certificate, signets)
 * with the relay's configuration (connect-timeout, lookup-deadline, dx-max-hosts,
 * dx-max-addresses, remote-port, remote-dual-port) and its additions as dl_resolve hooks:
 * the POK pins (rl_pins.h) on a "no record" and after an org signet verified, the syndicates
 * asked when a pin is new or would move (rl_syndicate.h), and VRFY answers counted in the
 * metrics (rl_metrics.h).
 */
#ifndef RL_RESOLVE_H
#define RL_RESOLVE_H

#include "dl_resolve.h"
#include "rl_config.h"

#include <openssl/ssl.h>

/* r set up for cfg (which must outlive it) and the client TLS context tls; no DNS context. */
void rl_resolver_init(struct dl_resolver *r, const struct rl_config *cfg, SSL_CTX *tls);

/* The relay configuration r was set up with. */
static inline const struct rl_config *rl_resolver_cfg(const struct dl_resolver *r)
{
    return r->hook_ctx;
}

#endif
