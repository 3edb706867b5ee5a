/*
 * mf_policy - dime-milter's decision table (see mf_policy.h).
 */
#include "mf_policy.h"

#include "dc_util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool mf_mode_inbound(enum mf_mode m)
{
    return m == MF_MODE_BOTH || m == MF_MODE_INBOUND;
}

bool mf_mode_outbound(enum mf_mode m)
{
    return m == MF_MODE_BOTH || m == MF_MODE_OUTBOUND;
}

const char *mf_action_name(enum mf_action a)
{
    static const char *const n[] = {"accept", "reject", "tempfail", "quarantine"};
    return (unsigned)a < 4 ? n[a] : "?";
}

const char *mf_event_name(enum mf_event e)
{
    static const char *const n[] = {"no-signet",           "dns-error",         "bogus",
                                    "keyvault-unavailable", "relay-unavailable", "verify-failure",
                                    "strict-sender"};
    return (unsigned)e < MF_EV_COUNT ? n[e] : "?";
}

bool mf_domain_requires_dime(const struct mf_domain *d, const char *rcpt_domain)
{
    if (rcpt_domain == NULL)
        return false;
    size_t rl = strlen(rcpt_domain);
    for (size_t i = 0; i < d->nrequire; i++) {
        const char *e = d->require_dime[i];
        if (e[0] != '.') {
            if (strcasecmp(e, rcpt_domain) == 0)
                return true;
            continue;
        }
        size_t el = strlen(e);
        /* ".x" matches "y.x" but not "x" itself */
        if (rl > el && strcasecmp(rcpt_domain + rl - el, e) == 0)
            return true;
    }
    return false;
}

enum mf_event mf_outcome_event(enum lookup_outcome o)
{
    switch (o) {
    case LOOKUP_NOT_DIME:
        return MF_EV_NO_SIGNET;
    case LOOKUP_BOGUS:
    case LOOKUP_REFUSED:
        return MF_EV_BOGUS;
    case LOOKUP_TEMPFAIL:
        return MF_EV_DNS_ERROR;
    case LOOKUP_SECURE:
    case LOOKUP_INSECURE:
        break;
    }
    return MF_EV_VERIFY; /* not reached for valid outcomes */
}

void mf_policy_outbound_failure(const struct mf_domain *d, enum mf_event ev,
                                struct mf_decision *out)
{
    out->route = MF_ROUTE_REFUSE;
    out->event = ev;
    out->downgrade = false;
    out->strict = false;
    out->no_user = false;
    /* only reject is honoured besides tempfail: accept or quarantine would mean sending
     * the message in clear after a failure */
    out->action = d->on[ev] == MF_REJECT ? MF_REJECT : MF_TEMPFAIL;
}

void mf_policy_outbound(const struct mf_domain *d, enum lookup_outcome o, const char *rcpt_domain,
                        struct mf_decision *out)
{
    if (o == LOOKUP_SECURE || o == LOOKUP_INSECURE) {
        out->route = MF_ROUTE_DIME;
        out->event = MF_EV_COUNT;
        out->action = MF_ACCEPT;
        out->downgrade = false;
        out->strict = false;
        out->no_user = false;
        return;
    }
    enum mf_event ev = mf_outcome_event(o);
    if (ev == MF_EV_NO_SIGNET && !mf_domain_requires_dime(d, rcpt_domain) &&
        (d->on[ev] == MF_ACCEPT || d->on[ev] == MF_QUARANTINE)) {
        out->route = MF_ROUTE_LEGACY;
        out->event = ev;
        out->action = d->on[ev];
        out->downgrade = true;
        out->strict = false;
        out->no_user = false;
        return;
    }
    mf_policy_outbound_failure(d, ev, out);
}

enum mf_action mf_policy_inbound(const struct mf_domain *d, enum mf_event ev)
{
    return (unsigned)ev < MF_EV_COUNT ? d->on[ev] : MF_TEMPFAIL;
}

const char *mf_event_ar_result(enum mf_event ev)
{
    switch (ev) {
    case MF_EV_NO_SIGNET:
        return "permerror";
    case MF_EV_DNS_ERROR:
    case MF_EV_KEYVAULT:
    case MF_EV_RELAY:
        return "temperror";
    default:
        return "fail";
    }
}

const char *mf_event_esc(enum mf_event ev)
{
    static const char *const e[] = {".7.1", ".4.3", ".7.1", ".3.0", ".3.0", ".7.5", ".7.1"};
    return (unsigned)ev < MF_EV_COUNT ? e[ev] : ".3.0";
}

const char *mf_event_reply(enum mf_event ev)
{
    static const char *const t[] = {
        "a recipient has no DIME signet and legacy SMTP is not allowed",
        "DIME lookup failed, try again later",
        "DIME record or signets of a party failed validation",
        "keyvault unavailable",
        "relay unavailable",
        "D/MIME message failed verification",
        ("the sender's domain publishes the strict DIME policy pol=strict: its mail comes "
         "only as DIME, never as plain SMTP"), /* parenthesized: one element, two lines */
    };
    return (unsigned)ev < MF_EV_COUNT ? t[ev] : "internal error";
}

int mf_net_parse(const char *s, struct mf_net *out)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof(buf))
        return -1;
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    memset(out, 0, sizeof(*out));
    unsigned max;
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    out->bits = max;
    if (slash) {
        const char *p = slash + 1;
        if (*p == '\0' || strlen(p) > 3)
            return -1;
        unsigned v = 0;
        for (; *p; p++) {
            if (!isdigit((unsigned char)*p))
                return -1;
            v = v * 10 + (unsigned)(*p - '0');
        }
        if (v > max)
            return -1;
        out->bits = v;
    }
    return 0;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

bool mf_net_match(const struct mf_net *nets, size_t n, const struct sockaddr *sa)
{
    if (sa == NULL)
        return false;
    uint8_t a4[4], a6[16];
    bool has4 = false, has6 = false;
    if (sa->sa_family == AF_INET) {
        memcpy(a4, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        has4 = true;
    } else if (sa->sa_family == AF_INET6) {
        memcpy(a6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        has6 = true;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a6, mapped, 12) == 0) {
            memcpy(a4, a6 + 12, 4);
            has4 = true;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (nets[i].family == AF_INET && has4 && prefix_eq(a4, nets[i].addr, nets[i].bits))
            return true;
        if (nets[i].family == AF_INET6 && has6 && prefix_eq(a6, nets[i].addr, nets[i].bits))
            return true;
    }
    return false;
}

const char *mf_addr_domain(const char *addr)
{
    const char *at = addr ? strrchr(addr, '@') : NULL;
    return at && at[1] ? at + 1 : NULL;
}

char *mf_addr_strip(const char *addr)
{
    while (*addr == ' ' || *addr == '\t')
        addr++;
    size_t n = strlen(addr);
    while (n > 0 && (addr[n - 1] == ' ' || addr[n - 1] == '\t'))
        n--;
    if (n >= 2 && addr[0] == '<' && addr[n - 1] == '>') {
        addr++;
        n -= 2;
    }
    return dc_xstrndup(addr, n);
}

static bool local_char(char c)
{
    return isalnum((unsigned char)c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL);
}

const char *mf_addr_mask(const char *s, char *out, size_t n)
{
    size_t o = 0;
    if (n == 0)
        return out;
    while (*s && o + 1 < n) {
        if (!local_char(*s)) {
            out[o++] = *s++;
            continue;
        }
        const char *run = s;
        while (local_char(*s))
            s++;
        bool addr = *s == '@' && (isalnum((unsigned char)s[1]) || s[1] == '[');
        if (addr) {
            out[o++] = '*';
            continue;
        }
        for (; run < s && o + 1 < n; run++)
            out[o++] = *run;
    }
    out[o] = '\0';
    return out;
}
