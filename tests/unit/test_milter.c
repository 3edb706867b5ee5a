/*
 * dime-milter's decision table (mf_policy), outbound routing per recipient and per message
 * (mf_route), trusted networks, and the parse of the relay's lookup answers (lookup_client),
 * without libmilter or any daemon.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dc_config.h"
#include "mf_author.h"
#include "mf_config.h"
#include "mf_inbound.h"
#include "lookup_client.h"
#include "mf_policy.h"
#include "mf_route.h"
#include "mf_sender.h"
#include "mf_strict.h"
#include "dc_mrec.h"

static char *require_list[] = {"strict.example", ".partner.example"};

static struct mf_domain domain_with(enum mf_action a)
{
    struct mf_domain d = {.name = "b.test", .mode = MF_MODE_BOTH};
    for (int i = 0; i < MF_EV_COUNT; i++)
        d.on[i] = a;
    d.require_dime = require_list;
    d.nrequire = 2;
    return d;
}

/* arrays, not pointers: Criterion copies the parameters into another process */
struct ocase {
    char name[64];
    enum mf_action configured; /* every on-* */
    enum lookup_outcome outcome;
    char rcpt_domain[32];
    enum mf_route route;
    enum mf_action action;
    bool downgrade;
};

static struct ocase ocases[] = {
    {"secure goes DIME", MF_TEMPFAIL, LOOKUP_SECURE, "a.test", MF_ROUTE_DIME, MF_ACCEPT, false},
    {"insecure allowed by the relay goes DIME", MF_TEMPFAIL, LOOKUP_INSECURE, "a.test",
     MF_ROUTE_DIME, MF_ACCEPT, false},
    {"no record, default policy: tempfail", MF_TEMPFAIL, LOOKUP_NOT_DIME, "a.test",
     MF_ROUTE_REFUSE, MF_TEMPFAIL, false},
    {"no record, on-no-signet accept: legacy, counted", MF_ACCEPT, LOOKUP_NOT_DIME, "a.test",
     MF_ROUTE_LEGACY, MF_ACCEPT, true},
    {"no record, quarantine: legacy held", MF_QUARANTINE, LOOKUP_NOT_DIME, "a.test",
     MF_ROUTE_LEGACY, MF_QUARANTINE, true},
    {"no record, reject", MF_REJECT, LOOKUP_NOT_DIME, "a.test", MF_ROUTE_REFUSE, MF_REJECT,
     false},
    {"no record at a require-dime domain: never legacy", MF_ACCEPT, LOOKUP_NOT_DIME,
     "strict.example", MF_ROUTE_REFUSE, MF_TEMPFAIL, false},
    {"no record at a subdomain of a .suffix entry: never legacy", MF_QUARANTINE,
     LOOKUP_NOT_DIME, "mx.partner.example", MF_ROUTE_REFUSE, MF_TEMPFAIL, false},
    {"the .suffix entry does not cover the domain itself", MF_ACCEPT, LOOKUP_NOT_DIME,
     "partner.example", MF_ROUTE_LEGACY, MF_ACCEPT, true},
    {"bogus with accept configured: still tempfail", MF_ACCEPT, LOOKUP_BOGUS, "a.test",
     MF_ROUTE_REFUSE, MF_TEMPFAIL, false},
    {"refused with quarantine configured: tempfail", MF_QUARANTINE, LOOKUP_REFUSED, "a.test",
     MF_ROUTE_REFUSE, MF_TEMPFAIL, false},
    {"bogus with reject configured: reject", MF_REJECT, LOOKUP_BOGUS, "a.test",
     MF_ROUTE_REFUSE, MF_REJECT, false},
    {"DNS tempfail with accept configured: tempfail", MF_ACCEPT, LOOKUP_TEMPFAIL, "a.test",
     MF_ROUTE_REFUSE, MF_TEMPFAIL, false},
};

ParameterizedTestParameters(milter, outbound_table)
{
    return cr_make_param_array(struct ocase, ocases, sizeof(ocases) / sizeof(ocases[0]));
}

ParameterizedTest(struct ocase *c, milter, outbound_table)
{
    struct mf_domain d = domain_with(c->configured);
    struct mf_decision dec;
    mf_policy_outbound(&d, c->outcome, c->rcpt_domain, &dec);
    cr_expect_eq(dec.route, c->route, "%s: route %d", c->name, dec.route);
    if (c->route != MF_ROUTE_DIME)
        cr_expect_eq(dec.action, c->action, "%s: action %s", c->name, mf_action_name(dec.action));
    cr_expect_eq(dec.downgrade, c->downgrade, "%s: downgrade", c->name);
}

Test(milter, outbound_failures_never_let_mail_through)
{
    for (int a = MF_ACCEPT; a <= MF_QUARANTINE; a++) {
        struct mf_domain d = domain_with((enum mf_action)a);
        for (int ev = 0; ev < MF_EV_COUNT; ev++) {
            struct mf_decision dec;
            mf_policy_outbound_failure(&d, (enum mf_event)ev, &dec);
            cr_expect_eq(dec.route, MF_ROUTE_REFUSE);
            cr_expect(dec.action == (a == MF_REJECT ? MF_REJECT : MF_TEMPFAIL),
                      "event %s with %s gave %s", mf_event_name((enum mf_event)ev),
                      mf_action_name((enum mf_action)a), mf_action_name(dec.action));
        }
    }
}

Test(milter, inbound_uses_the_configured_action_per_event)
{
    struct mf_domain d = domain_with(MF_TEMPFAIL);
    d.on[MF_EV_VERIFY] = MF_QUARANTINE;
    d.on[MF_EV_BOGUS] = MF_REJECT;
    cr_expect_eq(mf_policy_inbound(&d, MF_EV_VERIFY), MF_QUARANTINE);
    cr_expect_eq(mf_policy_inbound(&d, MF_EV_BOGUS), MF_REJECT);
    cr_expect_eq(mf_policy_inbound(&d, MF_EV_KEYVAULT), MF_TEMPFAIL);
    cr_expect_str_eq(mf_event_ar_result(MF_EV_VERIFY), "fail");
    cr_expect_str_eq(mf_event_ar_result(MF_EV_RELAY), "temperror");
    cr_expect_str_eq(mf_event_ar_result(MF_EV_NO_SIGNET), "permerror");
}

Test(milter, outcomes_map_to_events)
{
    cr_expect_eq(mf_outcome_event(LOOKUP_NOT_DIME), MF_EV_NO_SIGNET);
    cr_expect_eq(mf_outcome_event(LOOKUP_BOGUS), MF_EV_BOGUS);
    cr_expect_eq(mf_outcome_event(LOOKUP_REFUSED), MF_EV_BOGUS);
    cr_expect_eq(mf_outcome_event(LOOKUP_TEMPFAIL), MF_EV_DNS_ERROR);
    cr_expect_eq(lookup_outcome_parse("not-dime"), LOOKUP_NOT_DIME);
    cr_expect_eq(lookup_outcome_parse("secure "), -1);
    cr_expect_eq(lookup_outcome_parse(""), -1);
}

/* ---- outbound routing (mf_route) ---- */

static struct mf_rcpt_facts answered(const char *domain, enum lookup_outcome o, bool signets)
{
    struct mf_rcpt_facts f = {.domain = domain, .answered = true, .outcome = o,
                              .signets = signets};
    return f;
}

Test(milter, route_local_recipients_stay_with_postfix)
{
    struct mf_domain d = domain_with(MF_REJECT);
    struct mf_rcpt_facts f = {.domain = "b.test", .local = true};
    struct mf_decision dec;
    mf_route_rcpt(&d, &f, &dec);
    cr_expect_eq(dec.route, MF_ROUTE_LEGACY);
    cr_expect_not(dec.downgrade, "a local recipient is not a downgrade");
    struct mf_route_plan plan = {0};
    mf_route_note(&plan, &dec);
    cr_expect_eq(plan.nleft, 1);
    cr_expect_eq(plan.ndowngrade, 0);
    cr_expect_not(plan.quarantine);
    cr_expect_not(plan.refused);
}

Test(milter, route_failures_refuse_per_policy)
{
    for (int a = MF_ACCEPT; a <= MF_QUARANTINE; a++) {
        struct mf_domain d = domain_with((enum mf_action)a);
        enum mf_action want = a == MF_REJECT ? MF_REJECT : MF_TEMPFAIL;
        struct mf_decision dec;
        /* no domain in the address: unverifiable */
        struct mf_rcpt_facts nodom = {.domain = NULL};
        mf_route_rcpt(&d, &nodom, &dec);
        cr_expect_eq(dec.route, MF_ROUTE_REFUSE);
        cr_expect_eq(dec.event, MF_EV_VERIFY);
        cr_expect_eq(dec.action, want);
        /* the lookup service did not answer: a relay failure, never legacy */
        struct mf_rcpt_facts silent = {.domain = "a.test"};
        mf_route_rcpt(&d, &silent, &dec);
        cr_expect_eq(dec.route, MF_ROUTE_REFUSE);
        cr_expect_eq(dec.event, MF_EV_RELAY);
        cr_expect_eq(dec.action, want);
        /* a DIME domain without this user's signet: the user does not exist there */
        struct mf_rcpt_facts nouser = answered("a.test", LOOKUP_SECURE, false);
        mf_route_rcpt(&d, &nouser, &dec);
        cr_expect_eq(dec.route, MF_ROUTE_REFUSE);
        cr_expect_eq(dec.event, MF_EV_NO_SIGNET);
        cr_expect_eq(dec.action, want);
    }
}

Test(milter, route_follows_the_policy_table_on_an_answer)
{
    struct mf_domain d = domain_with(MF_QUARANTINE);
    struct mf_decision dec;
    struct mf_rcpt_facts f = answered("a.test", LOOKUP_SECURE, true);
    mf_route_rcpt(&d, &f, &dec);
    cr_expect_eq(dec.route, MF_ROUTE_DIME);
    f = answered("a.test", LOOKUP_INSECURE, true);
    mf_route_rcpt(&d, &f, &dec);
    cr_expect_eq(dec.route, MF_ROUTE_DIME);
    f = answered("a.test", LOOKUP_NOT_DIME, false);
    mf_route_rcpt(&d, &f, &dec);
    cr_expect_eq(dec.route, MF_ROUTE_LEGACY);
    cr_expect_eq(dec.action, MF_QUARANTINE);
    cr_expect(dec.downgrade);
    f = answered("strict.example", LOOKUP_NOT_DIME, false);
    mf_route_rcpt(&d, &f, &dec);
    cr_expect_eq(dec.route, MF_ROUTE_REFUSE, "outbound-require-dime is never legacy");
    f = answered("a.test", LOOKUP_BOGUS, false);
    mf_route_rcpt(&d, &f, &dec);
    cr_expect_eq(dec.route, MF_ROUTE_REFUSE);
    cr_expect_eq(dec.event, MF_EV_BOGUS);
    cr_expect_eq(dec.action, MF_TEMPFAIL);
}

/* A DIME domain's DX has no signet for the user: pol= of its record decides. */
Test(milter, route_user_without_signet_follows_the_record_policy)
{
    static const int pols[] = {DC_MREC_POL_EXPERIMENTAL, DC_MREC_POL_MIXED, -1,
                               DC_MREC_POL_STRICT};
    for (int a = MF_ACCEPT; a <= MF_QUARANTINE; a++) {
        struct mf_domain d = domain_with((enum mf_action)a);
        for (size_t k = 0; k < sizeof(pols) / sizeof(pols[0]); k++) {
            struct mf_rcpt_facts f = answered("a.test", LOOKUP_REFUSED, false);
            f.policy = pols[k];
            f.no_user_signet = true;
            struct mf_decision dec;
            mf_route_rcpt(&d, &f, &dec);
            if (pols[k] == DC_MREC_POL_STRICT || a == MF_REJECT || a == MF_TEMPFAIL) {
                /* strict: never plain, whatever on-no-signet says; the others as configured */
                cr_expect_eq(dec.route, MF_ROUTE_REFUSE, "pol %d on-no-signet %s", pols[k],
                             mf_action_name((enum mf_action)a));
                cr_expect_eq(dec.action, a == MF_REJECT ? MF_REJECT : MF_TEMPFAIL);
                cr_expect_eq(dec.event, MF_EV_NO_SIGNET);
                cr_expect_eq(dec.strict, pols[k] == DC_MREC_POL_STRICT);
            } else {
                cr_expect_eq(dec.route, MF_ROUTE_LEGACY, "pol %d on-no-signet %s", pols[k],
                             mf_action_name((enum mf_action)a));
                cr_expect_eq(dec.action, (enum mf_action)a);
                cr_expect(dec.downgrade);
            }
        }
        /* the same answer at a require-dime domain stays refused */
        struct mf_rcpt_facts f = answered("strict.example", LOOKUP_REFUSED, false);
        f.policy = DC_MREC_POL_MIXED;
        f.no_user_signet = true;
        struct mf_decision dec;
        mf_route_rcpt(&d, &f, &dec);
        cr_expect_eq(dec.route, MF_ROUTE_REFUSE);
        /* a refusal that is not about the user's signet is never legacy */
        f = answered("a.test", LOOKUP_REFUSED, false);
        f.policy = DC_MREC_POL_EXPERIMENTAL;
        mf_route_rcpt(&d, &f, &dec);
        cr_expect_eq(dec.route, MF_ROUTE_REFUSE);
        cr_expect_eq(dec.event, MF_EV_BOGUS);
        cr_expect_not(dec.strict);
    }
}

/* A definitive "no such user" (no-such-user=yes) is a reject with 5.1.1 whatever on-no-signet
 * says; the same DX refusal without it (insecure record, pol=mixed, another 5xx: the relay
 * does not set it) keeps the answers of before, tempfail included. */
Test(milter, route_no_such_user_is_rejected_for_good)
{
    for (int a = MF_ACCEPT; a <= MF_QUARANTINE; a++) {
        struct mf_domain d = domain_with((enum mf_action)a);
        struct mf_rcpt_facts f = answered("a.test", LOOKUP_REFUSED, false);
        f.policy = DC_MREC_POL_STRICT;
        f.no_user_signet = true;
        f.no_such_user = true;
        struct mf_decision dec;
        mf_route_rcpt(&d, &f, &dec);
        cr_expect_eq(dec.route, MF_ROUTE_REFUSE, "on-no-signet %s",
                     mf_action_name((enum mf_action)a));
        cr_expect_eq(dec.action, MF_REJECT, "on-no-signet %s", mf_action_name((enum mf_action)a));
        cr_expect_eq(dec.event, MF_EV_NO_SIGNET);
        cr_expect(dec.no_user && dec.strict);
        /* without the definitive mark: strict but uncertain, on-no-signet decides 4xx/5xx */
        f.no_such_user = false;
        mf_route_rcpt(&d, &f, &dec);
        cr_expect_eq(dec.route, MF_ROUTE_REFUSE);
        cr_expect_eq(dec.action, a == MF_REJECT ? MF_REJECT : MF_TEMPFAIL);
        cr_expect_not(dec.no_user);
        /* the mark on an outcome other than refused is not believed */
        f = answered("a.test", LOOKUP_TEMPFAIL, false);
        f.no_such_user = true;
        mf_route_rcpt(&d, &f, &dec);
        cr_expect_not(dec.no_user);
        cr_expect_eq(dec.event, MF_EV_DNS_ERROR);
    }
    /* a message with an unknown recipient and a tempfailed one is rejected: 5.1.1 does not
     * heal by retrying, whichever recipient comes first */
    struct mf_domain d = domain_with(MF_TEMPFAIL);
    struct mf_rcpt_facts gone = answered("a.test", LOOKUP_REFUSED, false);
    gone.policy = DC_MREC_POL_STRICT;
    gone.no_user_signet = gone.no_such_user = true;
    struct mf_rcpt_facts late = answered("c.test", LOOKUP_TEMPFAIL, false);
    struct mf_route_plan plan = {0};
    struct mf_decision dec;
    mf_route_rcpt(&d, &late, &dec);
    mf_route_note(&plan, &dec);
    mf_route_rcpt(&d, &gone, &dec);
    mf_route_note(&plan, &dec);
    cr_expect(plan.refused && plan.refusal.no_user && plan.refusal.action == MF_REJECT);
    cr_expect_str_eq(MF_NO_USER_ESC, ".1.1");
}

Test(milter, strict_sender_domains_of_envelope_and_from)
{
    char d[MF_STRICT_MAX_DOMAINS][MF_STRICT_DOMAIN_MAX + 1];
    const char *from[] = {"\"Bob\" <bob@Strict.Example.>", "a@x.test, \"c@y.test\" <c@z.test>",
                          "undisclosed-recipients:;"};
    size_t n = mf_strict_domains("bounce@strict.example", from, 3, d, MF_STRICT_MAX_DOMAINS);
    cr_assert_eq(n, 4, "got %zu", n);
    cr_expect_str_eq(d[0], "strict.example");
    cr_expect_str_eq(d[1], "x.test");
    cr_expect_str_eq(d[2], "y.test");
    cr_expect_str_eq(d[3], "z.test");
    cr_expect_eq(mf_strict_domains("", NULL, 0, d, MF_STRICT_MAX_DOMAINS), 0,
                 "the null sender claims no domain");
    cr_expect_eq(mf_strict_domains("a@[1.2.3.4]", NULL, 0, d, MF_STRICT_MAX_DOMAINS), 0);
    cr_expect_eq(mf_strict_domains("a@b.test", from, 2, d, 2), 2, "at most max");
}

Test(milter, strict_sender_decision)
{
    struct mf_domain d = domain_with(MF_TEMPFAIL);
    d.on[MF_EV_STRICT_SENDER] = MF_QUARANTINE;
    struct lookup_ans ans;
    struct mf_strict_verdict v;
    memset(&ans, 0, sizeof(ans));
    ans.policy = DC_MREC_POL_STRICT;
    static const enum lookup_outcome any[] = {LOOKUP_SECURE, LOOKUP_TEMPFAIL, LOOKUP_REFUSED};
    for (size_t i = 0; i < 3; i++) {
        ans.outcome = any[i];
        mf_strict_decide(&d, true, &ans, &v);
        cr_expect(v.strict && v.known);
        cr_expect_eq(v.action, MF_QUARANTINE, "strict with outcome %s",
                     lookup_outcome_name(any[i]));
    }
    d.on[MF_EV_STRICT_SENDER] = MF_REJECT;
    mf_strict_decide(&d, true, &ans, &v);
    cr_expect_eq(v.action, MF_REJECT);
    ans.policy = DC_MREC_POL_MIXED;
    ans.outcome = LOOKUP_SECURE;
    mf_strict_decide(&d, true, &ans, &v);
    cr_expect(!v.strict && v.known && v.action == MF_ACCEPT);
    ans.policy = -1;
    ans.outcome = LOOKUP_NOT_DIME;
    mf_strict_decide(&d, true, &ans, &v);
    cr_expect(!v.strict && v.known && v.action == MF_ACCEPT, "no record: nothing to do");
    ans.outcome = LOOKUP_TEMPFAIL;
    mf_strict_decide(&d, true, &ans, &v);
    cr_expect(!v.strict && !v.known && v.action == MF_ACCEPT, "unknown policy passes, logged");
    mf_strict_decide(&d, false, &ans, &v);
    cr_expect(!v.strict && !v.known && v.action == MF_ACCEPT);
}

/* The lookup answer's policy and no-user-signet keys reach the client. */
Test(milter, lookup_answer_policy_keys)
{
    struct lookup_ans a;
    static const char t1[] = "outcome=refused\npolicy=strict\nno-user-signet=yes\n"
                             "reason=SGNT x: 576 no such signet\n\n";
    cr_assert_eq(lookup_ans_parse(t1, sizeof(t1) - 1, &a, NULL), DC_OK);
    cr_expect_eq(a.policy, DC_MREC_POL_STRICT);
    cr_expect(a.no_user_signet);
    cr_expect_not(a.no_such_user);
    lookup_ans_free(&a);
    static const char t4[] = "outcome=refused\ndnssec=secure\npolicy=strict\nno-user-signet=yes\n"
                             "no-such-user=yes\nreason=SGNT x: 576 no such signet\n\n";
    cr_assert_eq(lookup_ans_parse(t4, sizeof(t4) - 1, &a, NULL), DC_OK);
    cr_expect(a.no_user_signet && a.no_such_user);
    lookup_ans_free(&a);
    static const char t2[] = "outcome=not-dime\nreason=x\n\n";
    cr_assert_eq(lookup_ans_parse(t2, sizeof(t2) - 1, &a, NULL), DC_OK);
    cr_expect_eq(a.policy, -1);
    cr_expect_not(a.no_user_signet);
    lookup_ans_free(&a);
    static const char t3[] = "outcome=refused\npolicy=lax\n\n";
    cr_expect_neq(lookup_ans_parse(t3, sizeof(t3) - 1, &a, NULL), DC_OK);
}

Test(milter, route_plan_counts_and_keeps_the_first_refusal)
{
    struct mf_domain accept = domain_with(MF_ACCEPT), quar = domain_with(MF_QUARANTINE);
    struct mf_route_plan plan = {0};
    struct mf_decision dec;
    struct mf_rcpt_facts dime = answered("a.test", LOOKUP_SECURE, true);
    struct mf_rcpt_facts plain = answered("c.test", LOOKUP_NOT_DIME, false);
    struct mf_rcpt_facts local = {.domain = "b.test", .local = true};
    mf_route_rcpt(&accept, &dime, &dec);
    mf_route_note(&plan, &dec);
    mf_route_rcpt(&accept, &plain, &dec);
    mf_route_note(&plan, &dec);
    mf_route_rcpt(&accept, &local, &dec);
    mf_route_note(&plan, &dec);
    cr_expect_eq(plan.ndime, 1);
    cr_expect_eq(plan.nleft, 2);
    cr_expect_eq(plan.ndowngrade, 1);
    cr_expect_not(plan.quarantine, "on-no-signet accept does not hold the message");
    cr_expect_not(plan.refused);
    mf_route_rcpt(&quar, &plain, &dec);
    mf_route_note(&plan, &dec);
    cr_expect(plan.quarantine, "on-no-signet quarantine holds the message");

    /* refusals: the first decides, but a reject replaces an earlier tempfail */
    struct mf_domain tempfail = domain_with(MF_TEMPFAIL), reject = domain_with(MF_REJECT);
    struct mf_rcpt_facts silent = {.domain = "a.test"};
    struct mf_rcpt_facts bogus = answered("a.test", LOOKUP_BOGUS, false);
    struct mf_route_plan p2 = {0};
    mf_route_rcpt(&tempfail, &silent, &dec);
    mf_route_note(&p2, &dec);
    cr_expect(p2.refused);
    cr_expect_eq(p2.refusal.action, MF_TEMPFAIL);
    cr_expect_eq(p2.refusal.event, MF_EV_RELAY);
    mf_route_rcpt(&reject, &bogus, &dec);
    mf_route_note(&p2, &dec);
    cr_expect_eq(p2.refusal.action, MF_REJECT);
    cr_expect_eq(p2.refusal.event, MF_EV_BOGUS);
    mf_route_rcpt(&reject, &silent, &dec);
    mf_route_note(&p2, &dec);
    cr_expect_eq(p2.refusal.event, MF_EV_BOGUS, "a later reject does not replace a reject");
    mf_route_rcpt(&tempfail, &bogus, &dec);
    mf_route_note(&p2, &dec);
    cr_expect_eq(p2.refusal.action, MF_REJECT, "a tempfail never replaces a reject");
    cr_expect_eq(p2.ndime, 0);
    cr_expect_eq(p2.nleft, 0);
}

static bool match(const struct mf_net *nets, size_t n, const char *addr)
{
    struct sockaddr_storage ss = {0};
    if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    else
        cr_assert_fail("bad test address %s", addr);
    return mf_net_match(nets, n, (struct sockaddr *)&ss);
}

Test(milter, trusted_networks)
{
    struct mf_net nets[3];
    cr_assert_eq(mf_net_parse("10.1.0.0/16", &nets[0]), 0);
    cr_assert_eq(mf_net_parse("2001:db8::/33", &nets[1]), 0);
    cr_assert_eq(mf_net_parse("192.0.2.7", &nets[2]), 0);
    cr_expect(match(nets, 3, "10.1.255.3"));
    cr_expect(!match(nets, 3, "10.2.0.1"));
    cr_expect(match(nets, 3, "2001:db8:7fff::1"));
    cr_expect(!match(nets, 3, "2001:db8:8000::1"));
    cr_expect(match(nets, 3, "192.0.2.7"));
    cr_expect(!match(nets, 3, "192.0.2.8"));
    cr_expect(match(nets, 3, "::ffff:10.1.2.3"), "IPv4-mapped IPv6 address");
    cr_expect(!mf_net_match(nets, 3, NULL), "no address (a local client) is not trusted");
    struct mf_net n;
    const char *bad[] = {"10.0.0.0/33", "10.0.0.0/", "::/129", "example.org", "", "1.2.3.4/8x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(mf_net_parse(bad[i], &n), -1, "%s accepted", bad[i]);
}

Test(milter, addresses)
{
    char *a = mf_addr_strip(" <Alice@A.test> ");
    cr_expect_str_eq(a, "Alice@A.test");
    cr_expect_str_eq(mf_addr_domain(a), "A.test");
    free(a);
    a = mf_addr_strip("<>");
    cr_expect_str_eq(a, "");
    cr_expect_null(mf_addr_domain(a));
    free(a);
    cr_expect_null(mf_addr_domain("user@"));
}

Test(milter, address_mask_for_logs)
{
    char out[64];
    struct {
        const char *in, *want;
    } c[] = {
        {"no account for bob@b.test", "no account for *@b.test"},
        {"<first.last+tag@a.test>, x@[192.0.2.1]", "<*@a.test>, *@[192.0.2.1]"},
        {"user signet of \"o'neil@a.test\" missing", "user signet of \"*@a.test\" missing"},
        {"a @ b, @domain, trailing@", "a @ b, @domain, trailing@"},
        {"signature expired", "signature expired"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
        cr_expect_str_eq(mf_addr_mask(c[i].in, out, sizeof(out)), c[i].want, "%s", c[i].in);
    char small[8];
    cr_expect_str_eq(mf_addr_mask("abcdefghijk", small, sizeof(small)), "abcdefg");
    cr_expect_str_eq(mf_addr_mask("bob@b.test", small, sizeof(small)), "*@b.tes");
}

/* The sender-login-map: format, errors with the line, lookup order and ownership. */
static const char login_map_text[] =
    "# who may send as whom\n"
    "alice@a.test   alice\n"
    "Sales@A.test   alice, bob\n"
    "   carol\n"
    "  # a comment inside\n"
    "\n"
    "@b.test        b-admin bob2\r\n"
    "x@c.test\tx,y ,z\n";

Test(milter, login_map_parse_and_lookup)
{
    struct mf_login_map m;
    struct dc_err e = {0};
    cr_assert_eq(mf_login_map_parse(login_map_text, strlen(login_map_text), "map", &m, &e), DC_OK,
                 "%s", e.msg);
    cr_assert_eq(m.n, 4);
    const struct mf_login_entry *x = mf_login_map_find(&m, "sales@a.test");
    cr_assert_not_null(x);
    cr_expect_eq(x->nlogins, 3, "the continuation line adds carol");
    cr_expect_str_eq(x->logins[2], "carol");
    x = mf_login_map_find(&m, "x@c.test");
    cr_assert_not_null(x);
    cr_expect_eq(x->nlogins, 3);
    cr_expect_str_eq(x->logins[1], "y");
    /* the full address first, then @domain */
    cr_expect_str_eq(mf_login_map_find(&m, "anyone@b.test")->key, "@b.test");
    cr_expect_str_eq(mf_login_map_find(&m, "ALICE@a.test")->key, "alice@a.test");
    cr_expect_null(mf_login_map_find(&m, "dave@a.test"));
    cr_expect_null(mf_login_map_find(&m, "b.test"));

    /* an entry decides alone */
    cr_expect(mf_login_owns(&m, "bob", "sales@a.test"));
    cr_expect(mf_login_owns(&m, "CAROL", "sales@a.test"));
    cr_expect_not(mf_login_owns(&m, "sales", "sales@a.test"), "the default does not apply");
    cr_expect(mf_login_owns(&m, "b-admin", "zed@b.test"));
    cr_expect_not(mf_login_owns(&m, "zed", "zed@b.test"), "@domain replaces the default");
    cr_expect_not(mf_login_owns(&m, "bob", "alice@a.test"));
    /* no entry: the address or its local part */
    cr_expect(mf_login_owns(&m, "dave", "dave@a.test"));
    cr_expect(mf_login_owns(&m, "Dave@A.test", "dave@a.test"));
    cr_expect_not(mf_login_owns(&m, "alice", "dave@a.test"));
    cr_expect_not(mf_login_owns(&m, "dav", "dave@a.test"));
    cr_expect_not(mf_login_owns(&m, "", "dave@a.test"));
    mf_login_map_free(&m);
    /* no map at all */
    cr_expect(mf_login_owns(NULL, "bob", "bob@b.test"));
    cr_expect_not(mf_login_owns(NULL, "alice", "bob@b.test"));
    cr_expect_not(mf_login_owns(NULL, "alice", "carol@b.test"));
}

Test(milter, login_map_errors_name_the_line)
{
    struct {
        const char *text, *want;
    } bad[] = {
        {"alice@a.test\n", "map:1: alice@a.test: no login"},
        {"# c\nalice alice\n", "map:2: \"alice\" is neither an address nor @domain"},
        {"  alice\n", "map:1: a continuation line without an entry"},
        {"a@b.test x\nA@B.test y\n", "map: A@B.test is listed twice"},
        {"@ x\n", "map:1: \"@\" is neither"},
        {"a@b@c x\n", "neither an address"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct mf_login_map m;
        struct dc_err e = {0};
        cr_expect_neq(mf_login_map_parse(bad[i].text, strlen(bad[i].text), "map", &m, &e), DC_OK,
                      "%s accepted", bad[i].text);
        cr_expect(strstr(e.msg, bad[i].want) != NULL, "%s: %s", bad[i].text, e.msg);
        cr_expect_eq(m.n, 0);
    }
    struct mf_login_map m;
    struct dc_err e = {0};
    cr_expect_eq(mf_login_map_parse("", 0, "map", &m, &e), DC_OK, "an empty map is fine");
    cr_expect_eq(m.n, 0);
    cr_expect_neq(mf_login_map_load("/nonexistent/dime-login-map", &m, &e), DC_OK);
}

Test(milter, from_field_single_address)
{
    struct {
        const char *value, *want; /* want NULL: not one mailbox */
    } c[] = {
        {" Bob <bob@b.test>", "bob@b.test"},
        {" bob@b.test", "bob@b.test"},
        {" bob@b.test (Bob, the builder)", "bob@b.test"},
        {" \"Builder, Bob\" <bob@b.test>", "bob@b.test"},
        {" \"Bob <carol@b.test>\" <bob@b.test>", "bob@b.test"},
        {" (carol@b.test, x) <bob@b.test>", "bob@b.test"},
        {" Bob\r\n <bob@b.test>", "bob@b.test"},
        {" <@relay.test:bob@b.test>", "bob@b.test"},
        {" bob@b.test, carol@b.test", NULL},
        {" Bob <bob@b.test>, Carol <carol@b.test>", NULL},
        {" Bob <bob@b.test> <carol@b.test>", NULL},
        {" friends: bob@b.test;", NULL},
        {" undisclosed-recipients:;", NULL},
        {" Bob", NULL},
        {" <>", NULL},
        {"", NULL},
        {" Bob <bob@b.test", NULL},
        {" bob @b.test", NULL},
        {" (unclosed <bob@b.test>", NULL},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        char *a = mf_from_single(c[i].value);
        if (c[i].want == NULL)
            cr_expect_null(a, "[%s] gave %s", c[i].value, a);
        else
            cr_expect(a != NULL && strcmp(a, c[i].want) == 0, "[%s] gave %s", c[i].value,
                      a ? a : "nothing");
        free(a);
    }
}

Test(milter, lookup_answers)
{
    struct lookup_ans a;
    const char *ok = "outcome=bogus\nreason=signature expired\nrecord=x\n\n";
    cr_assert_eq(lookup_ans_parse(ok, strlen(ok), &a, NULL), DC_OK);
    cr_expect_eq(a.outcome, LOOKUP_BOGUS);
    cr_expect_str_eq(a.reason, "signature expired");
    lookup_ans_free(&a);
    const char *bad[] = {
        "reason=x\noutcome=secure\n\n",     /* outcome not first */
        "outcome=maybe\n\n",                /* unknown outcome */
        "outcome=not-dime\n",               /* no empty line */
        "outcome=secure\n\n",               /* secure without signets */
        "outcome=secure\norg-signet=AAAA\n\n", /* not a signet */
        "outcome=not-dime\norg-fp=short\n\n",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct dc_err e = {0};
        cr_expect_neq(lookup_ans_parse(bad[i], strlen(bad[i]), &a, &e), DC_OK, "case %zu", i);
    }
    /* found by fuzz_lookup_ans: a fingerprint of the right length with a NUL (or a control
     * byte) in it was taken, cut short at the NUL */
    char fp[200];
    int n = snprintf(fp, sizeof(fp), "outcome=not-dime\norg-fp=%0*d\n\n", DC_FP_B64_LEN, 7);
    cr_assert_eq(lookup_ans_parse(fp, (size_t)n, &a, NULL), DC_OK);
    lookup_ans_free(&a);
    for (char c = 0; c <= ' '; c += ' ') {
        fp[30] = c;
        cr_expect_neq(lookup_ans_parse(fp, (size_t)n, &a, NULL), DC_OK, "byte %d", c);
    }
    static const char nul_outcome[] = "outcome=bogus\0x\n\n";
    cr_expect_neq(lookup_ans_parse(nul_outcome, sizeof(nul_outcome) - 1, &a, NULL), DC_OK);
}

Test(milter, wrapper_body_decode)
{
    uint8_t *bin = NULL;
    size_t n = 0;
    struct dc_err e = {0};
    static const char ok[] = "AAcH\r\nCA==\r\n";
    cr_assert_eq(mf_wrapper_decode((const uint8_t *)ok, strlen(ok), &bin, &n, &e), DC_OK, "%s",
                 e.msg);
    cr_expect_eq(n, 4u);
    cr_expect_eq(memcmp(bin, "\x00\x07\x07\x08", 4), 0);
    free(bin);
    static const char spaced[] = " AAcH\tCA\n";
    cr_assert_eq(mf_wrapper_decode((const uint8_t *)spaced, strlen(spaced), &bin, &n, &e),
                 DC_OK, "%s", e.msg);
    cr_expect_eq(n, 4u);
    free(bin);
    static const char *const bad[] = {"", "\r\n \t", "AAc*", "AAcH\r\nC", "A===", "AAcH\x80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bin = (uint8_t *)"x";
        cr_expect_neq(mf_wrapper_decode((const uint8_t *)bad[i], strlen(bad[i]), &bin, &n, &e),
                      DC_OK, "case %zu", i);
        cr_expect_null(bin, "case %zu", i);
    }
    cr_expect(mf_wrapper_type(" application/X-DIME; x=y"));
    cr_expect(mf_wrapper_type("application/x-dime"));
    cr_expect(!mf_wrapper_type("application/x-dimex"));
    cr_expect(!mf_wrapper_type("text/plain"));
}

/* mf_from_names on a message whose last line is the From field without a line end: the
 * address must not be compared past the message (the buffer below is exactly the message) */
Test(milter, from_names_stays_inside_the_message)
{
    static const char *const msgs[] = {"From: a@b.c", "From: <a@b.c>", "To: x\r\nFrom: a@b.cd",
                                       "From: a@b.c\r\n", "From: x\r\n a@b.c"};
    static const bool want[] = {true, true, false, true, true};
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        size_t len = strlen(msgs[i]);
        uint8_t *m = malloc(len);
        cr_assert_not_null(m);
        memcpy(m, msgs[i], len);
        cr_expect_eq(mf_from_names(m, len, "a@b.c"), want[i], "case %zu", i);
        cr_expect(!mf_from_names(m, len, "a@b.cde"), "case %zu", i);
        free(m);
    }
}

/* ---- the record of injections (mf_inject) ---- */

#include "mf_inject.h"

#include <unistd.h>

Test(milter, injection_key)
{
    uint8_t k1[MF_INJ_KEY_LEN], k2[MF_INJ_KEY_LEN], k3[MF_INJ_KEY_LEN];
    char id[80];
    cr_assert(mf_inj_key(" 0a1b2c3d4e5f60718293.1\r\n", k1, id));
    cr_expect_str_eq(id, "0a1b2c3d4e5f60718293.1");
    cr_assert(mf_inj_key("0a1b2c3d4e5f60718293.1", k2, NULL));
    cr_expect(memcmp(k1, k2, sizeof(k1)) == 0, "surrounding white space does not count");
    cr_assert(mf_inj_key("0a1b2c3d4e5f60718293.2", k3, NULL));
    cr_expect(memcmp(k1, k3, sizeof(k1)) != 0, "another generation, another key");
    const char *bad[] = {"", "0a1b", ".1", "0a1b.", "0A1B.1", "0a1b.1 x", "0a1b.12345678901",
                         "0a1b;1", "0a1b.-1", "bob@b.test.1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect(!mf_inj_key(bad[i], k1, NULL), "\"%s\" is not a value", bad[i]);
}

Test(milter, injection_record)
{
    char dir[] = "/tmp/test_milter_inj.XXXXXX", path[80], first[MF_QID_MAX + 1];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/inj.db", dir);
    struct mf_injdb *db = NULL;
    struct dc_err e = {0};
    cr_assert_eq(mf_injdb_open(path, &db, &e), DC_OK, "%s", e.msg);
    uint8_t a[MF_INJ_KEY_LEN], b[MF_INJ_KEY_LEN];
    cr_assert(mf_inj_key("00ff.1", a, NULL) && mf_inj_key("00ff.2", b, NULL));
    cr_expect_eq(mf_injdb_seen(db, a, first, &e), 0);
    bool dup = true;
    cr_expect_eq(mf_injdb_record(db, a, "Q1", NULL, &dup, &e), DC_OK, "%s", e.msg);
    cr_expect(!dup);
    cr_expect_eq(mf_injdb_record(db, a, "Q2", NULL, &dup, &e), DC_OK);
    cr_expect(dup, "the second record of one value is a repeat");
    mf_injdb_close(db);
    /* durable: a restarted milter still knows it, with the first attempt's queue id */
    cr_assert_eq(mf_injdb_open(path, &db, &e), DC_OK, "%s", e.msg);
    cr_expect_eq(mf_injdb_seen(db, a, first, &e), 1);
    cr_expect_str_eq(first, "Q1");
    cr_expect_eq(mf_injdb_seen(db, b, first, &e), 0);
    /* a repeat takes the entry over only while it still names the queue id it replaces */
    cr_expect_eq(mf_injdb_record(db, a, MF_INJ_WITHDRAWN, "Q9", &dup, &e), DC_OK);
    cr_expect(dup, "another queue id: not taken over");
    cr_expect_eq(mf_injdb_record(db, a, MF_INJ_WITHDRAWN, "Q1", &dup, &e), DC_OK);
    cr_expect(!dup);
    cr_expect_eq(mf_injdb_record(db, a, MF_INJ_WITHDRAWN, "Q1", &dup, &e), DC_OK);
    cr_expect(dup, "a second repeat cannot take it over again");
    cr_expect_eq(mf_injdb_record(db, a, "Q3", MF_INJ_WITHDRAWN, &dup, &e), DC_OK);
    cr_expect(!dup);
    cr_expect_eq(mf_injdb_seen(db, a, first, &e), 1);
    cr_expect_str_eq(first, "Q3");
    cr_expect_eq(mf_injdb_record(db, b, "", NULL, &dup, &e), DC_OK);
    cr_expect_eq(mf_injdb_seen(db, b, first, &e), 1);
    cr_expect_str_eq(first, "", "no queue id known");
    /* shut at the daemon's exit: a session still running gets an error, not freed memory */
    mf_injdb_shut(db);
    e.msg[0] = '\0';
    cr_expect_eq(mf_injdb_seen(db, a, first, &e), -1);
    cr_expect(strstr(e.msg, "stopping") != NULL, "%s", e.msg);
    cr_expect_neq(mf_injdb_record(db, b, "Q1", NULL, &dup, &e), DC_OK);
    mf_injdb_close(db);
    cr_expect_neq(mf_injdb_open("/nonexistent-dir/x/inj.db", &db, &e), DC_OK);
    /* a database from before the queue ids: opened, its entries have none */
    snprintf(path, sizeof(path), "%s/old.db", dir);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "sqlite3 %s 'CREATE TABLE injected(key BLOB PRIMARY KEY, created"
             " INTEGER NOT NULL) WITHOUT ROWID;"
             " INSERT INTO injected VALUES(zeroblob(32), 1)'", path);
    cr_assert_eq(system(cmd), 0);
    {
        cr_assert_eq(mf_injdb_open(path, &db, &e), DC_OK, "%s", e.msg);
        uint8_t z[MF_INJ_KEY_LEN] = {0};
        cr_expect_eq(mf_injdb_seen(db, z, first, &e), 1);
        cr_expect_str_eq(first, "", "an old entry has no queue id");
        cr_expect_eq(mf_injdb_record(db, z, "Q1", NULL, &dup, &e), DC_OK, "%s", e.msg);
        cr_expect(dup);
        mf_injdb_close(db);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* What becomes of a repeat (mf_inj_repeat): let through only when nothing of the earlier
 * attempt can be queued. */
Test(milter, injection_repeat_verdict)
{
    cr_expect_eq(mf_inj_repeat("Q1", true, MF_Q_WITHDRAWN), MF_INJ_TAKE_OVER);
    cr_expect_eq(mf_inj_repeat(MF_INJ_WITHDRAWN, true, MF_Q_ERROR), MF_INJ_TAKE_OVER);
    cr_expect_eq(mf_inj_repeat(MF_INJ_WITHDRAWN, false, MF_Q_ERROR), MF_INJ_TAKE_OVER,
                 "withdrawn earlier: nothing queued, checked or not");
    cr_expect_eq(mf_inj_repeat("Q1", true, MF_Q_READY), MF_INJ_DISCARD, "committed");
    cr_expect_eq(mf_inj_repeat("Q1", true, MF_Q_ABSENT), MF_INJ_DISCARD,
                 "gone: delivered as likely as removed");
    cr_expect_eq(mf_inj_repeat("Q1", true, MF_Q_ERROR), MF_INJ_DISCARD, "no answer");
    cr_expect_eq(mf_inj_repeat("Q1", false, MF_Q_WITHDRAWN), MF_INJ_DISCARD, "not checked");
    cr_expect_eq(mf_inj_repeat("", true, MF_Q_WITHDRAWN), MF_INJ_DISCARD, "no queue id kept");
}

/* The queue helper (mf_queue.h) on a directory laid out as Postfix's: a file without the
 * owner-execute bit is withdrawn, one with it stays, a missing one is absent, a name that is
 * no queue id is refused; run as root it becomes the directory's owner. */
Test(milter, queue_withdraw)
{
    char dir[] = "/tmp/test_milter_q.XXXXXX", path[120];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/incoming", dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    const char *names[] = {"4ABC1", "4ABC2"};
    mode_t modes[] = {0600, 0700};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/incoming/%s", dir, names[i]);
        int fd = open(path, O_CREAT | O_WRONLY, modes[i]);
        cr_assert(fd >= 0);
        cr_assert_eq(fchmod(fd, modes[i]), 0);
        close(fd);
    }
    snprintf(path, sizeof(path), "%s/incoming", dir);
    if (geteuid() == 0) {
        char cmd[200];
        snprintf(cmd, sizeof(cmd), "chown -R 65534 %s", path);
        cr_assert_eq(system(cmd), 0);
    }
    struct mf_queue *q = NULL;
    struct dc_err e = {0};
    cr_assert_eq(mf_queue_start(dir, &q, &e), DC_OK, "%s", e.msg);
    cr_expect_eq(mf_queue_withdraw(q, "4ABC1"), MF_Q_WITHDRAWN);
    snprintf(path, sizeof(path), "%s/incoming/4ABC1", dir);
    cr_expect_neq(access(path, F_OK), 0, "the uncommitted file is gone");
    cr_expect_eq(mf_queue_withdraw(q, "4ABC1"), MF_Q_ABSENT, "only once");
    cr_expect_eq(mf_queue_withdraw(q, "4ABC2"), MF_Q_READY);
    snprintf(path, sizeof(path), "%s/incoming/4ABC2", dir);
    cr_expect_eq(access(path, F_OK), 0, "the committed file stays");
    cr_expect_eq(mf_queue_withdraw(q, "../x"), MF_Q_ERROR);
    cr_expect_eq(mf_queue_withdraw(q, ""), MF_Q_ERROR);
    mf_queue_stop(q);
    /* the directory of root (not Postfix's) is refused */
    char cmd[200];
    if (geteuid() == 0) {
        snprintf(cmd, sizeof(cmd), "chown -R 0 %s/incoming", dir);
        cr_assert_eq(system(cmd), 0);
        cr_expect_neq(mf_queue_start(dir, &q, &e), DC_OK);
    }
    cr_expect_neq(mf_queue_start("/nonexistent-dir", &q, &e), DC_OK);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* The first queue id of each outbound message (mf_injdb_first_qid): a new attempt gets it,
 * another message gets its own, and a restarted milter still knows it. */
Test(milter, submission_first_qid)
{
    char dir[] = "/tmp/test_milter_sub.XXXXXX", path[80], first[MF_QID_MAX + 1];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/inj.db", dir);
    struct mf_injdb *db = NULL;
    struct dc_err e = {0};
    cr_assert_eq(mf_injdb_open(path, &db, &e), DC_OK, "%s", e.msg);
    uint8_t a[MF_INJ_KEY_LEN], b[MF_INJ_KEY_LEN];
    memset(a, 1, sizeof(a));
    memset(b, 2, sizeof(b));
    cr_expect_eq(mf_injdb_first_qid(db, a, "QA1", first, &e), DC_OK, "%s", e.msg);
    cr_expect_str_eq(first, "QA1", "a first attempt keeps its own");
    cr_expect_eq(mf_injdb_first_qid(db, a, "QA2", first, &e), DC_OK, "%s", e.msg);
    cr_expect_str_eq(first, "QA1", "a new attempt gets the first one's");
    cr_expect_eq(mf_injdb_first_qid(db, b, "QB1", first, &e), DC_OK, "%s", e.msg);
    cr_expect_str_eq(first, "QB1", "another message its own");
    mf_injdb_close(db);
    cr_assert_eq(mf_injdb_open(path, &db, &e), DC_OK, "%s", e.msg);
    cr_expect_eq(mf_injdb_first_qid(db, a, "QA3", first, &e), DC_OK, "%s", e.msg);
    cr_expect_str_eq(first, "QA1", "known after a restart");
    mf_injdb_shut(db);
    cr_expect_neq(mf_injdb_first_qid(db, a, "QA4", first, &e), DC_OK);
    cr_expect_str_eq(first, "QA4", "closed: its own");
    mf_injdb_close(db);
    char cmd[120];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* ---- the configuration: defaults and what a SIGHUP would change (dc_config_changes) ---- */

static char conf_path[64];

static void write_conf(const char *text)
{
    strcpy(conf_path, "/tmp/dime-unit-conf.XXXXXX");
    int fd = mkstemp(conf_path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
}

static cfg_t *parse_text(const char *text)
{
    cfg_t *t = NULL;
    struct dc_err e = {0};
    write_conf(text);
    cr_assert_eq(dc_config_parse(conf_path, &t, &e), DC_OK, "%s", e.msg);
    unlink(conf_path);
    return t;
}

#define BASE "milter { user = \"root\" pid-file = \"\" }\n"

Test(config, on_no_signet_defaults_to_accept_and_the_rest_to_tempfail)
{
    struct mf_config c;
    struct dc_err e = {0};
    write_conf(BASE "domain \"b.test\" { }\n");
    cr_assert_eq(mf_config_load(conf_path, &c, &e), DC_OK, "%s", e.msg);
    unlink(conf_path);
    cr_expect_eq(c.domains[0].on[MF_EV_NO_SIGNET], MF_ACCEPT);
    cr_expect_eq(c.domains[0].on[MF_EV_STRICT_SENDER], MF_REJECT);
    for (int k = 0; k < MF_EV_COUNT; k++)
        if (k != MF_EV_NO_SIGNET && k != MF_EV_STRICT_SENDER)
            cr_expect_eq(c.domains[0].on[k], MF_TEMPFAIL, "%s", dc_config_on_opts[k]);
    mf_config_free(&c);
}

Test(config, notice_author_is_an_address_of_its_own_domain)
{
    struct mf_config c;
    struct dc_err e = {0};
    write_conf(BASE "domain \"b.test\" { notice-author = \"mailer-daemon@B.test\" }\n"
                    "domain \"c.test\" { }\n");
    cr_assert_eq(mf_config_load(conf_path, &c, &e), DC_OK, "%s", e.msg);
    unlink(conf_path);
    cr_expect_str_eq(c.domains[0].notice_author, "mailer-daemon@B.test");
    cr_expect_null(c.domains[1].notice_author);
    mf_config_free(&c);
    const char *bad[] = {"mailer-daemon@c.test", "mailer-daemon@sub.b.test", "@b.test",
                         "mailer-daemon", "\\\"m d\\\"@b.test"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *conf = dc_xasprintf(BASE "domain \"b.test\" { notice-author = \"%s\" }\n",
                                  bad[i]);
        write_conf(conf);
        free(conf);
        cr_expect_neq(mf_config_load(conf_path, &c, &e), DC_OK, "%s accepted", bad[i]);
        unlink(conf_path);
        cr_expect(strstr(e.msg, "notice-author") != NULL, "%s", e.msg);
    }
}

Test(config, an_unknown_syslog_facility_is_refused)
{
    cfg_t *t = NULL;
    struct dc_err e = {0};
    write_conf("syslog-facility = \"kern\"\n" BASE);
    cr_expect_neq(dc_config_parse(conf_path, &t, &e), DC_OK);
    unlink(conf_path);
    cr_expect(strstr(e.msg, "syslog-facility") != NULL, "%s", e.msg);
}

struct seen {
    char lines[16][160];
    int n;
};

static void collect(void *ctx, const char *sec, const char *title, const char *opt, bool applied)
{
    struct seen *s = ctx;
    if (s->n < 16)
        snprintf(s->lines[s->n++], sizeof(s->lines[0]), "%s %s %s %s", sec,
                 title ? title : "-", opt ? opt : "-", applied ? "applied" : "restart");
}

static bool saw(const struct seen *s, const char *line)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->lines[i], line) == 0)
            return true;
    return false;
}

Test(config, changes_are_reported_per_daemon_with_what_sighup_applies)
{
    cfg_t *a = parse_text(BASE "relay { max-errors = 5 }\ndomain \"b.test\" { }\n");
    cfg_t *b = parse_text("milter { user = \"root\" pid-file = \"\" authserv-id = \"mx2\" "
                          "socket = \"unix:/x\" }\nrelay { max-errors = 2 listen-port = 27 }\n"
                          "domain \"b.test\" { on-no-signet = \"tempfail\" }\n"
                          "domain \"c.test\" { }\n");
    struct seen m = {0}, r = {0}, k = {0};
    cr_expect_eq(dc_config_changes(a, b, DC_MILTER, collect, &m), 1, "socket needs a restart");
    cr_expect(saw(&m, "milter - authserv-id applied"));
    cr_expect(saw(&m, "milter - socket restart"));
    cr_expect(saw(&m, "domain b.test on-no-signet applied"));
    cr_expect(saw(&m, "domain c.test - applied"), "a new domain: applied by the milter");
    cr_expect_eq(m.n, 4, "nothing the milter does not read (got %d)", m.n);
    cr_expect_eq(dc_config_changes(a, b, DC_RELAY, collect, &r), 2);
    cr_expect(saw(&r, "relay - max-errors applied"));
    cr_expect(saw(&r, "relay - listen-port restart"));
    cr_expect(saw(&r, "domain c.test - restart"), "a new domain: the relay needs a restart");
    cr_expect_eq(r.n, 3, "the milter's domain policy is not the relay's (got %d)", r.n);
    cr_expect_eq(dc_config_changes(a, b, DC_KEYVAULT, collect, &k), 0);
    cr_expect_eq(k.n, 0, "%s", k.n ? k.lines[0] : "");
    struct seen same = {0};
    cr_expect_eq(dc_config_changes(a, a, DC_MILTER | DC_RELAY, collect, &same), 0);
    cr_expect_eq(same.n, 0, "the same file changes nothing");
    cfg_free(a);
    cfg_free(b);
}

/* Author-made D/MIME (mf_author): each missing fact alone refuses, with its own text. */
Test(milter, author_made_needs_login_dmime_one_dime_recipient)
{
    const struct mf_author_facts good = {.login = true, .dmime = true, .nrcpt = 1,
                                         .dime_rcpt = true};
    const char *why = NULL;
    cr_assert_null(mf_author_refusal(&good, &why));
    struct mf_author_facts f[5];
    for (int i = 0; i < 5; i++)
        f[i] = good;
    f[0].login = false;
    f[1].too_big = true;
    f[2].dmime = false;
    f[3].nrcpt = 2;
    f[4].dime_rcpt = false;
    const char *seen[5];
    for (int i = 0; i < 5; i++) {
        seen[i] = mf_author_refusal(&f[i], &why);
        cr_assert_not_null(seen[i], "case %d accepted", i);
        cr_assert_not_null(why);
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(seen[i], seen[j], "cases %d and %d give the same text", i, j);
    }
    f[3].nrcpt = 0;
    cr_assert_not_null(mf_author_refusal(&f[3], &why), "no recipient accepted");
}
