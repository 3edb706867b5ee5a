/*
 * rl_pins - the second trust anchor beyond DNSSEC: every domain's organization key (POK)
 * pinned when the relay first sees it under a DNSSEC-secure record (issue 15).
 *
 * Whoever controls a domain's DNS controls its `_dime` record; without pins a new, validly
 * signed record with a new POK redirects the domain's mail and nothing notices. With pins, a
 * domain's org signet must carry the pinned POK, or a chain of rollover links from it
 * (dc_rollover.h, made by `dimectl domain rollover-pok`), or the operator must reset the pin
 * (`dime-relayctl pins reset DOMAIN`). Anything else is a tempfail: nothing is delivered to
 * the new keys, nothing is accepted under them, nothing is downgraded to plain SMTP, and the
 * relay logs both keys and both fingerprints (log line "pin mismatch", counted per domain in
 * the store and in the metric dime_relay_pin_refusals_total).
 *
 * A pin also holds the record's exp= (days): a pinned domain whose record disappears (a
 * secure "no record") within exp days of its last sighting stays DIME-required, so mail to
 * it waits (tempfail) instead of going as plain SMTP; after that the domain is not DIME and
 * its pin is dropped.
 *
 * The store is SQLite (pin-database in dime.conf, default /var/lib/dime-relay/pins.db), one
 * row per domain, in clear: domains and public keys only. Every check opens it, reads, and
 * writes what changed; a store that cannot be read fails closed (tempfail).
 */
#ifndef RL_PINS_H
#define RL_PINS_H

#include "dc_signet.h"

#include <stdbool.h>
#include <stdint.h>

#define RL_PIN_SOKS_MAX 1400 /* text of the SOK list: up to 16 x (43 + 5) */

struct rl_pin {
    char domain[256];
    char pok[44];                      /* base64, unpadded */
    char soks[RL_PIN_SOKS_MAX];        /* "b64/perm" entries, space separated */
    char org_fp[DC_FP_B64_LEN + 1];    /* crypto fingerprint of the org signet last seen */
    int64_t first_seen, last_seen;     /* seconds since the epoch */
    uint32_t exp_days;                 /* the record's exp= (0: none) */
    char how[16];                      /* "first-seen", "rollover", "syndicate" or "reset" */
    char previous_pok[44];             /* before the last rollover or reset, or "" */
    uint64_t refused;                  /* checks refused since the pin was made */
    char refused_pok[44];              /* the POK last refused, or "" */
    int64_t refused_at;
    /* the record's syn= when the POK was last seen under a secure record ("" none): the
     * syndicates asked when a later record brings another POK (never the new record's own,
     * which whoever took over the DNS wrote); table pin_syn, beside pins */
    char syn[256];
};

/* ---- the decision (no store): tested in tests/unit/test_pins.c ---- */

enum rl_pin_verdict {
    RL_PIN_UNPINNED,  /* no pin and the record is not secure: nothing to pin */
    RL_PIN_NEW,       /* no pin, secure record: pin it */
    RL_PIN_SAME,      /* the pinned POK */
    RL_PIN_ROLLOVER,  /* a chain of rollover links from the pinned POK: move the pin */
    RL_PIN_MISMATCH,  /* another POK without a chain: refuse */
};
const char *rl_pin_verdict_name(enum rl_pin_verdict v);
/* pin NULL: none. why gets the reason of a mismatch. */
enum rl_pin_verdict rl_pin_decide(const struct rl_pin *pin, const struct dc_signet *org,
                                  const char *domain, bool secure, char *why, size_t wl);
/* A secure "no record" for a pinned domain: true while the record's exp= keeps the domain
 * DIME-required (*until: when that ends). */
bool rl_pin_absence_held(const struct rl_pin *pin, int64_t now, int64_t *until);

/* ---- the store ---- */

struct rl_pins;
/* read_only: never creates or writes (dime-relayctl lookup); a missing file is an empty
 * store then. */
enum dc_status rl_pins_open(const char *path, bool read_only, struct rl_pins **out,
                            struct dc_err *err);
void rl_pins_close(struct rl_pins *p);
/* DC_ERR_NOTFOUND when the domain has no pin. */
enum dc_status rl_pins_get(struct rl_pins *p, const char *domain, struct rl_pin *pin,
                           struct dc_err *err);
enum dc_status rl_pins_delete(struct rl_pins *p, const char *domain, struct dc_err *err);
/* Every pin, in domain order. */
enum dc_status rl_pins_each(struct rl_pins *p, void (*fn)(const struct rl_pin *, void *),
                            void *ctx, struct dc_err *err);

/* ---- what the resolver calls (rl_resolve.c) ---- */

/* The syndicates' word on a POK (rl_syndicate.h): asked by rl_pins_check before a first pin
 * and before a pin moves without a rollover link. */
enum rl_syn_result {
    RL_SYN_NONE,     /* no syndicate listed, or syndicate-quorum 0: no check */
    RL_SYN_AGREED,   /* the quorum answered with this POK */
    RL_SYN_REFUSED,  /* disagreement or no quorum */
};
struct rl_syn_ask {
    /* pok: base64; syn: the syn= whose hosts to ask (NULL: none) besides the configured
     * ones; evidence: who said what, for the log */
    enum rl_syn_result (*confirm)(void *ctx, const char *domain, const char *pok,
                                  const char *syn, char *evidence, size_t el);
    void *ctx;
    const char *record_syn; /* the syn= of the record being checked, or NULL */
};

/* The org signet of domain, verified against its record (secure: DNSSEC-secure; exp_days:
 * the record's exp=, 0 when absent), against the pin in db. true: go on (pinned, same,
 * rolled over, or nothing to pin); false: refuse for now (why). read_only: decide, store
 * nothing. ask (may be NULL): the syndicates, asked on a first pin (the record's syn=) and
 * on a POK without a rollover link (the pinned syn=, not the new record's); their quorum
 * moves the pin (how "syndicate"), their refusal is a false. A store that cannot be opened or read is a false. */
bool rl_pins_check(const char *db, bool read_only, const char *domain,
                   const struct dc_signet *org, bool secure, uint32_t exp_days,
                   const struct rl_syn_ask *ask, char *why, size_t wl);
/* A "no record" for domain: true when its pin's exp= still holds the domain as DIME (why
 * says until when); false when it is not DIME (the pin, if any, is dropped when the absence
 * is DNSSEC-secure and not read_only). A store that cannot be read is a true (hold). */
bool rl_pins_absent(const char *db, bool read_only, bool secure, const char *domain, char *why,
                    size_t wl);

#endif
