/*
 * rl_syndicate - syndicates (issue 15, item 3; daemonlib/SYNDICATE.md): relays that tell
 * others which organization key (POK) they observed for a domain, from their pin database.
 *
 * The service: `XSYN <domain>` over DMTP, answered from the pin of domain when the domain is
 * in syndicate-for ("*": every pinned one). The check: before a domain's POK is pinned for
 * the first time, and before a pin moves to a POK without a rollover link, the resolver asks
 * the domain's syndicates (its record's syn= hosts and the relay's `syndicates`) and needs
 * syndicate-quorum of them (-1: a majority) to answer with that same POK.
 */
#ifndef RL_SYNDICATE_H
#define RL_SYNDICATE_H

#include "rl_config.h"
#include "rl_pins.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RL_SYN_VERB "XSYN"
#define RL_SYN_MAX 8 /* syndicates asked per check (syn= and dime.conf together) */

/* What a syndicate says about a domain: its pin, as observed. */
struct rl_syn_view {
    char domain[256];
    char pok[44];                   /* base64, unpadded */
    char fp[DC_FP_B64_LEN + 1];     /* crypto fingerprint of the org signet last seen */
    int64_t first_seen, last_seen;
    char how[16];                   /* first-seen, rollover, syndicate, reset */
    char previous_pok[44];          /* "" when none */
};

/* The reply text after "250 " for a pin: "XSYN <domain> pok=.. fp=.. first=N seen=N how=..
 * prev=..|-". out: at least DC_DMTP_LINE_MAX bytes. */
void rl_syn_format(const struct rl_pin *pin, char *out, size_t cap);
/* Parses such a text (the whole line after the code); the domain must be want (any case). */
enum dc_status rl_syn_parse(const char *text, const char *want, struct rl_syn_view *v,
                            struct dc_err *err);

/* Does this relay serve domain's pin (syndicate-for)? */
bool rl_syn_serves(const struct rl_config *cfg, const char *domain);
/* The answer to "XSYN <arg>" (arg: the text after the verb): the code and the reply text. */
int rl_syn_answer(const struct rl_config *cfg, const char *arg, char *text, size_t cap);

/* The syndicates of a domain: its record's syn= (comma separated hosts, may be NULL) and the
 * configured ones, without repeats and without this relay's own hostname, at most
 * RL_SYN_MAX. Returns how many. */
size_t rl_syn_hosts(const struct rl_config *cfg, const char *syn, char hosts[][262]);
/* How many must confirm among n asked (0: no check). */
size_t rl_syn_quorum(const struct rl_config *cfg, size_t n);

/* The syndicates' word on (domain, POK), kept in the process for syndicate-cache-ttl seconds
 * so that a refused domain's every retry and query does not ask them again (bounded: the
 * oldest entry goes). get: true and *r, evidence filled when a fresh word is kept. */
bool rl_syn_cache_get(const char *domain, const char *pok, unsigned ttl, int *r,
                      char *evidence, size_t el);
void rl_syn_cache_put(const char *domain, const char *pok, int r, const char *evidence);

#endif
