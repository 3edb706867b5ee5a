/*
 * mf_policy - the decision table of dime-milter: what a lookup outcome or a failure means for
 * one recipient, given the local domain's policy (domain "x" { } in dime.conf). Pure
 * functions, no I/O; the filter (mf_filter.c) maps the result to libmilter replies.
 *
 * Vocabulary (OpenDKIM's On-* actions): accept, reject, tempfail, quarantine. Every event
 * defaults to tempfail. Nothing inside a message is an input here: policy can only come from
 * the configuration and the relay's lookup.
 *
 * Outbound, only on-no-signet may let a recipient go as legacy SMTP (accept, or quarantine =
 * legacy plus Postfix's hold queue), and not for a recipient domain listed in
 * outbound-require-dime, nor for one whose record says pol=strict (mf_route.h). Every other outbound event is answered with reject when configured
 * so, and with tempfail otherwise: mail is never downgraded to plain SMTP because DNS, the
 * relay or the keyvault failed or a record is bogus.
 */
#ifndef MF_POLICY_H
#define MF_POLICY_H

#include "lookup_proto.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* In the order of dc_config_actions. */
enum mf_action {
    MF_ACCEPT = 0,
    MF_REJECT = 1,
    MF_TEMPFAIL = 2,
    MF_QUARANTINE = 3,
};

/* In the order of dc_config_on_opts. */
enum mf_event {
    MF_EV_NO_SIGNET = 0,  /* no DIME record / no signet for the party */
    MF_EV_DNS_ERROR = 1,  /* lookup outcome tempfail (DNS or the remote DX) */
    MF_EV_BOGUS = 2,      /* lookup outcome bogus or refused */
    MF_EV_KEYVAULT = 3,   /* keyvault unreachable or failing */
    MF_EV_RELAY = 4,      /* relay lookup or submission service unreachable or failing */
    MF_EV_VERIFY = 5,     /* a D/MIME message did not decrypt or verify */
    MF_EV_STRICT_SENDER = 6, /* inbound plain SMTP claiming a pol=strict domain as sender */
    MF_EV_COUNT = 7,
};

/* Directions converted for a local domain (dc_config_modes order). */
enum mf_mode {
    MF_MODE_BOTH = 0,
    MF_MODE_INBOUND = 1,
    MF_MODE_OUTBOUND = 2,
    MF_MODE_OFF = 3,
};

struct mf_domain {
    char *name;
    enum mf_mode mode;
    enum mf_action on[MF_EV_COUNT];
    char **require_dime; /* outbound-require-dime: "x" or ".x" */
    size_t nrequire;
    char *notice_author; /* notice-author: signs null-sender notices; NULL: none */
};

bool mf_mode_inbound(enum mf_mode m);
bool mf_mode_outbound(enum mf_mode m);

const char *mf_action_name(enum mf_action a);
const char *mf_event_name(enum mf_event e);

/* How one outbound recipient goes. */
enum mf_route {
    MF_ROUTE_DIME,   /* D/MIME through the relay */
    MF_ROUTE_LEGACY, /* stays with Postfix (a downgrade when the domain has no record) */
    MF_ROUTE_REFUSE, /* the whole message gets `action` (reject or tempfail) */
};

struct mf_decision {
    enum mf_route route;
    enum mf_event event;   /* why, unless route is DIME */
    enum mf_action action; /* LEGACY: accept or quarantine; REFUSE: reject or tempfail */
    bool downgrade;        /* legacy SMTP to a domain that may not be DIME */
    bool strict;           /* REFUSE because the recipient's domain publishes pol=strict */
    bool no_user;          /* REFUSE (reject) because the recipient does not exist there */
};

/* The reply to a message refused because a recipient's domain publishes pol=strict and has
 * no signet for the recipient (mf_route_rcpt): 550 or 451 with .7.1. */
#define MF_STRICT_RCPT_TEXT                                                                  \
    "a recipient's domain publishes the strict DIME policy pol=strict and has no DIME "      \
    "signet for that address: the message is not sent as plain SMTP"

/* The reply to a message refused because a recipient does not exist at its DIME domain
 * (mf_route_rcpt, no_user): always 550 with 5.1.1. */
#define MF_NO_USER_ESC ".1.1"
#define MF_NO_USER_TEXT                                                                      \
    "a recipient's DIME domain has no such user: its DNSSEC-signed record says pol=strict "  \
    "and its verified DIME server has no signet for that address"

/* The recipient's domain matches one entry of outbound-require-dime ("x" exactly, ".x" any
 * subdomain of x), case-insensitively. */
bool mf_domain_requires_dime(const struct mf_domain *d, const char *rcpt_domain);

/* Outbound: the decision for a recipient from the lookup outcome. */
void mf_policy_outbound(const struct mf_domain *d, enum lookup_outcome o, const char *rcpt_domain,
                        struct mf_decision *out);
/* Outbound: the decision for a failure that is not a lookup outcome (keyvault, relay,
 * building the message). */
void mf_policy_outbound_failure(const struct mf_domain *d, enum mf_event ev,
                                struct mf_decision *out);
/* Inbound: the action for an event on a D/MIME wrapper (accept and quarantine deliver the
 * wrapper untouched with a failing Authentication-Results). */
enum mf_action mf_policy_inbound(const struct mf_domain *d, enum mf_event ev);
/* The RFC 8601 result word for an inbound event: fail, permerror or temperror. */
const char *mf_event_ar_result(enum mf_event ev);
/* The SMTP reply for a refusal because of ev: the enhanced status code without its class
 * digit (".7.1") and a fixed text. The text names no party and no detail of the failure (the
 * log line has those). */
const char *mf_event_esc(enum mf_event ev);
const char *mf_event_reply(enum mf_event ev);
/* The event a lookup outcome other than secure and insecure stands for. */
enum mf_event mf_outcome_event(enum lookup_outcome o);

/* Networks (trusted-networks): "a.b.c.d[/n]" or "x:y::z[/n]". */
struct mf_net {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned bits;
};
/* 0 on success, -1 when s is not a network. */
int mf_net_parse(const char *s, struct mf_net *out);
/* Whether sa (IPv4, IPv6 or IPv4-mapped IPv6) is inside one of nets. */
bool mf_net_match(const struct mf_net *nets, size_t n, const struct sockaddr *sa);

/* The part after the last '@' (or NULL when there is none or it is empty). Angle brackets
 * are not expected here: see mf_addr_strip. */
const char *mf_addr_domain(const char *addr);
/* A copy of an envelope address without surrounding <> and whitespace. */
char *mf_addr_strip(const char *addr);
/* Copies s into out (size n, always terminated) with the local part of everything that looks
 * like an address replaced by '*' ("no signet for bob@b.test" -> "no signet for *@b.test"):
 * for log lines that carry text from elsewhere (the relay, the keyvault, the D/MIME code),
 * which must not name a party. Returns out. */
const char *mf_addr_mask(const char *s, char *out, size_t n);

#endif
