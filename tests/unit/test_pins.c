/* POK pinning (issue 15): the rollover link in the org signet (dc_rollover.h) made and
 * verified, its chain over several rollovers and the ways it fails; the pin decision table
 * (rl_pin_decide, rl_pin_absence_held); and the pin store as the resolver drives it
 * (rl_pins_check, rl_pins_absent) on a real SQLite file; the syndicates' XSYN reply
 * (rl_syn_format, rl_syn_parse, rl_syn_answer from a real pin store), whom a check asks
 * (rl_syn_hosts, rl_syn_quorum) and what rl_pins_check does with their word. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dc_b64.h"
#include "dc_dmtp.h"
#include "dc_keys.h"
#include "dc_rollover.h"
#include "dc_signet.h"
#include "rl_metrics.h"
#include "rl_pins.h"
#include "rl_syndicate.h"

#define D "bob.test"

struct org {
    struct dc_sign_key *pok;
    struct dc_signer signer;
    struct dc_signet *signet;
};

static struct dc_enc_key *enc;
static struct dc_sign_key *sok;

static void setup(void)
{
    cr_assert_eq(dc_enc_key_generate(&enc, NULL), DC_OK);
    cr_assert_eq(dc_sign_key_generate(&sok, NULL), DC_OK);
}

static void teardown(void)
{
    dc_enc_key_free(enc);
    dc_sign_key_free(sok);
}

/* An org signet as dimectl domain init makes one: POK, one SOK, encryption key, the full and
 * ID signatures with the identifier. */
static void org_new(struct org *o)
{
    struct dc_signet *base = NULL;
    cr_assert_eq(dc_sign_key_generate(&o->pok, NULL), DC_OK);
    dc_signer_local(&o->signer, o->pok);
    cr_assert_eq(dc_signet_org_create(o->pok, enc->pub, &base, NULL), DC_OK);
    cr_assert_eq(dc_signet_set_id(base, D, NULL), DC_OK);
    struct dc_sok s = {.perm = DC_SOK_SIGNET | DC_SOK_MSG};
    memcpy(s.pub, sok->pub, sizeof(s.pub));
    cr_assert_eq(dc_signet_org_set_soks(base, &s, 1, &o->signer, &o->signet, NULL), DC_OK);
    dc_signet_free(base);
}

/* The next org after o: a new POK, the signet rolled over by o's POK. */
static void org_next(const struct org *o, struct org *n, const char *domain)
{
    struct dc_err e = {0};
    cr_assert_eq(dc_sign_key_generate(&n->pok, NULL), DC_OK);
    dc_signer_local(&n->signer, n->pok);
    cr_assert_eq(dc_rollover_org(o->signet, domain, &o->signer, &n->signer, &n->signet, &e),
                 DC_OK, "%s", e.msg);
}

static void org_free(struct org *o)
{
    dc_signet_free(o->signet);
    dc_sign_key_free(o->pok);
}

static size_t links(const struct dc_signet *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nfields; i++)
        n += s->fields[i].fid == DC_FID_UNDEFINED;
    return n;
}

TestSuite(rollover, .init = setup, .fini = teardown);

Test(rollover, round_trip)
{
    struct org a, b;
    struct dc_err e = {0};
    org_new(&a);
    org_next(&a, &b, D);
    /* the new signet verifies under the new POK alone, to its ID signature */
    cr_expect_eq(dc_signet_verify_org(b.signet,
                                      (const uint8_t(*)[DC_ED25519_PUB_LEN])b.pok->pub, 1, &e),
                 DC_SS_ID, "%s", e.msg);
    cr_expect_lt(dc_signet_verify_org(b.signet,
                                      (const uint8_t(*)[DC_ED25519_PUB_LEN])a.pok->pub, 1, &e),
                 DC_SS_CRYPTO);
    /* its bytes parse again (what a peer receives), with the link as an Undefined-Field */
    struct dc_signet *back = NULL;
    cr_assert_eq(dc_signet_parse(b.signet->bin, b.signet->bin_len, &back, &e), DC_OK, "%s",
                 e.msg);
    const struct dc_signet_field *f = dc_signet_field(back, DC_FID_UNDEFINED, 0);
    cr_assert_not_null(f);
    cr_expect_eq(f->name_len, strlen(DC_ROLLOVER_FIELD));
    cr_expect_eq(memcmp(f->name, DC_ROLLOVER_FIELD, f->name_len), 0);
    struct dc_rollover_link l;
    cr_assert_eq(dc_rollover_link_parse(f->data, f->len, &l, &e), DC_OK, "%s", e.msg);
    cr_expect_eq(memcmp(l.old_pok, a.pok->pub, 32), 0);
    cr_expect_eq(memcmp(l.new_pok, b.pok->pub, 32), 0);
    cr_expect(dc_rollover_link_valid(&l, D));
    cr_expect(dc_rollover_link_valid(&l, "BOB.TEST"), "the domain is compared in lower case");
    cr_expect_not(dc_rollover_link_valid(&l, "mallory.test"), "a link is bound to its domain");
    char text[256];
    dc_rollover_link_text(&l, text, sizeof(text));
    cr_expect_eq(strlen(text), f->len);
    cr_expect_eq(memcmp(text, f->data, f->len), 0);
    /* encryption key, SOK and identifier stay */
    uint8_t ek[DC_SECP_PUB_LEN];
    cr_expect_eq(dc_signet_enc_key(back, ek, NULL), DC_OK);
    cr_expect_eq(memcmp(ek, enc->pub, sizeof(ek)), 0);
    struct dc_sok soks[4];
    cr_expect_eq(dc_signet_soks(back, soks, 4), 1);
    cr_expect_eq(memcmp(soks[0].pub, sok->pub, 32), 0);
    char *id = dc_signet_id(back);
    cr_expect_str_eq(id, D);
    free(id);
    size_t steps = 9;
    cr_expect(dc_rollover_chain(back, D, a.pok->pub, &steps, &e), "%s", e.msg);
    cr_expect_eq(steps, 1);
    cr_expect(dc_rollover_chain(back, D, b.pok->pub, &steps, &e));
    cr_expect_eq(steps, 0, "the signet's own POK is reached in no step");
    dc_signet_free(back);
    org_free(&a);
    org_free(&b);
}

Test(rollover, chain_of_several)
{
    struct org o[4];
    struct dc_err e = {0};
    size_t steps = 0;
    org_new(&o[0]);
    for (int i = 1; i < 4; i++)
        org_next(&o[i - 1], &o[i], D);
    cr_expect_eq(links(o[3].signet), 3, "each rollover adds a link and keeps the earlier ones");
    for (int i = 0; i < 3; i++) {
        cr_expect(dc_rollover_chain(o[3].signet, D, o[i].pok->pub, &steps, &e), "%s", e.msg);
        cr_expect_eq(steps, (size_t)(3 - i));
    }
    /* a key that never was the domain's POK leads nowhere */
    struct dc_sign_key *k = NULL;
    cr_assert_eq(dc_sign_key_generate(&k, NULL), DC_OK);
    cr_expect_not(dc_rollover_chain(o[3].signet, D, k->pub, &steps, &e));
    cr_expect_not_null(strstr(e.msg, "no chain"), "%s", e.msg);
    dc_sign_key_free(k);
    for (int i = 0; i < 4; i++)
        org_free(&o[i]);
}

Test(rollover, links_bounded)
{
    struct org o[DC_ROLLOVER_MAX_LINKS + 2];
    size_t steps = 0;
    org_new(&o[0]);
    for (int i = 1; i < DC_ROLLOVER_MAX_LINKS + 2; i++)
        org_next(&o[i - 1], &o[i], D);
    cr_expect_eq(links(o[DC_ROLLOVER_MAX_LINKS + 1].signet), DC_ROLLOVER_MAX_LINKS);
    cr_expect_not(dc_rollover_chain(o[DC_ROLLOVER_MAX_LINKS + 1].signet, D, o[0].pok->pub,
                                    &steps, NULL), "the oldest link was dropped");
    cr_expect(dc_rollover_chain(o[DC_ROLLOVER_MAX_LINKS + 1].signet, D, o[1].pok->pub, &steps,
                                NULL));
    for (int i = 0; i < DC_ROLLOVER_MAX_LINKS + 2; i++)
        org_free(&o[i]);
}

Test(rollover, refused)
{
    struct org a, b, m;
    struct dc_err e = {0};
    size_t steps;
    org_new(&a);
    org_new(&m);
    /* only the signet's own POK can sign its rollover */
    struct dc_signet *x = NULL;
    cr_expect_eq(dc_rollover_org(a.signet, D, &m.signer, &m.signer, &x, &e), DC_ERR_KEY);
    cr_expect_eq(dc_rollover_org(a.signet, D, &a.signer, &a.signer, &x, &e), DC_ERR_KEY,
                 "the new POK must differ");
    /* a link made for another domain does not serve this one */
    org_next(&a, &b, "other.test");
    cr_expect_not(dc_rollover_chain(b.signet, D, a.pok->pub, &steps, &e));
    cr_expect_not_null(strstr(e.msg, "does not verify"), "%s", e.msg);
    /* a link with one bit of its signature changed */
    const struct dc_signet_field *f = dc_signet_field(b.signet, DC_FID_UNDEFINED, 0);
    struct dc_rollover_link l;
    cr_assert_eq(dc_rollover_link_parse(f->data, f->len, &l, NULL), DC_OK);
    cr_expect(dc_rollover_link_valid(&l, "other.test"));
    l.sig[10] ^= 1;
    cr_expect_not(dc_rollover_link_valid(&l, "other.test"));
    /* malformed link texts */
    static const char *const bad[] = {"", "v=2 old=", "v=1 old=AAAA new=AAAA sig=AAAA"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(dc_rollover_link_parse((const uint8_t *)bad[i], strlen(bad[i]), &l, NULL),
                     DC_ERR_FORMAT, "%s", bad[i]);
    /* a signet without links */
    cr_expect_not(dc_rollover_chain(m.signet, D, a.pok->pub, &steps, &e));
    cr_expect_not_null(strstr(e.msg, "no POK rollover link"), "%s", e.msg);
    org_free(&a);
    org_free(&b);
    org_free(&m);
}

/* ---- the decision table ---- */

static void pin_of(const struct org *o, struct rl_pin *p)
{
    uint8_t k[DC_ED25519_PUB_LEN];
    memset(p, 0, sizeof(*p));
    snprintf(p->domain, sizeof(p->domain), D);
    cr_assert_eq(dc_signet_signing_key(o->signet, k, NULL), DC_OK);
    dc_b64_encode(k, sizeof(k), p->pok, 0);
}

TestSuite(decide, .init = setup, .fini = teardown);

Test(decide, table)
{
    struct org a, b, c, m;
    org_new(&a);
    org_next(&a, &b, D);
    org_next(&b, &c, D);
    org_new(&m); /* the attacker's: another POK, no link from a */
    struct rl_pin pa, pb, pm;
    pin_of(&a, &pa);
    pin_of(&b, &pb);
    pin_of(&m, &pm);
    char why[300];
    struct {
        const char *what;
        const struct rl_pin *pin;
        const struct dc_signet *org;
        bool secure;
        enum rl_pin_verdict want;
    } rows[] = {
        {"no pin, secure record: pinned", NULL, a.signet, true, RL_PIN_NEW},
        {"no pin, insecure record: nothing to pin", NULL, a.signet, false, RL_PIN_UNPINNED},
        {"the pinned POK", &pa, a.signet, true, RL_PIN_SAME},
        {"the pinned POK, insecure record", &pa, a.signet, false, RL_PIN_SAME},
        {"one rollover from the pin", &pa, b.signet, true, RL_PIN_ROLLOVER},
        {"two rollovers from the pin", &pa, c.signet, true, RL_PIN_ROLLOVER},
        {"another POK without a link (takeover)", &pa, m.signet, true, RL_PIN_MISMATCH},
        {"another POK, insecure record", &pa, m.signet, false, RL_PIN_MISMATCH},
        {"back to an older POK (no link leads back)", &pb, a.signet, true, RL_PIN_MISMATCH},
        {"links that do not start at the pin", &pm, c.signet, true, RL_PIN_MISMATCH},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        enum rl_pin_verdict v = rl_pin_decide(rows[i].pin, rows[i].org, D, rows[i].secure, why,
                                              sizeof(why));
        cr_expect_eq(v, rows[i].want, "%s: %s, want %s", rows[i].what, rl_pin_verdict_name(v),
                     rl_pin_verdict_name(rows[i].want));
        cr_expect_eq(why[0] != '\0', v == RL_PIN_MISMATCH, "%s: a reason only with a mismatch",
                     rows[i].what);
    }
    struct rl_pin bad = pa;
    snprintf(bad.pok, sizeof(bad.pok), "not base64!");
    cr_expect_eq(rl_pin_decide(&bad, a.signet, D, true, why, sizeof(why)), RL_PIN_MISMATCH,
                 "an unreadable pin refuses");
    org_free(&a);
    org_free(&b);
    org_free(&c);
    org_free(&m);
}

Test(decide, absence)
{
    int64_t now = 1800000000, until;
    struct rl_pin p = {.last_seen = now - 86400, .exp_days = 2};
    cr_expect(rl_pin_absence_held(&p, now, &until), "seen a day ago, exp=2: held");
    cr_expect_eq(until, now + 86400);
    p.last_seen = now - 2 * 86400;
    cr_expect_not(rl_pin_absence_held(&p, now, &until), "exactly exp days: no longer");
    p.last_seen = now;
    p.exp_days = 0;
    cr_expect_not(rl_pin_absence_held(&p, now, &until), "no exp=: not held");
    cr_expect_not(rl_pin_absence_held(NULL, now, &until), "no pin: not held");
}

/* ---- the store, as the resolver drives it ---- */

TestSuite(store, .init = setup, .fini = teardown);

Test(store, check_and_absence)
{
    char dir[] = "/tmp/test_pins.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char db[300], why[400];
    snprintf(db, sizeof(db), "%s/pins.db", dir);
    struct org a, b, m;
    org_new(&a);
    org_next(&a, &b, D);
    org_new(&m);
    struct rl_pins *p = NULL;
    struct rl_pin pin;

    /* read-only before anything exists: nothing pinned, nothing created */
    cr_expect(rl_pins_check(db, true, D, a.signet, true, 3, NULL, why, sizeof(why)));
    cr_expect_neq(access(db, F_OK), 0, "a read-only check creates no store");
    cr_expect(rl_pins_check(db, false, D, m.signet, false, 0, NULL, why, sizeof(why)),
              "an insecure record pins nothing");
    cr_assert_eq(rl_pins_open(db, true, &p, NULL), DC_OK);
    cr_expect_eq(rl_pins_get(p, D, &pin, NULL), DC_ERR_NOTFOUND);
    rl_pins_close(p);

    cr_expect(rl_pins_check(db, false, "Bob.Test", a.signet, true, 3, NULL, why, sizeof(why)));
    cr_assert_eq(rl_pins_open(db, true, &p, NULL), DC_OK);
    cr_assert_eq(rl_pins_get(p, D, &pin, NULL), DC_OK, "the domain is pinned in lower case");
    rl_pins_close(p);
    struct rl_pin pa;
    pin_of(&a, &pa);
    cr_expect_str_eq(pin.pok, pa.pok);
    cr_expect_str_eq(pin.how, "first-seen");
    cr_expect_eq(pin.exp_days, 3);
    cr_expect_neq(strstr(pin.soks, "/0x03"), NULL, "%s", pin.soks);

    uint64_t before = rl_refusals(RL_REFUSE_POK_MISMATCH);
    cr_expect_not(rl_pins_check(db, false, D, m.signet, true, 3, NULL, why, sizeof(why)));
    cr_expect_neq(strstr(why, "contradicts its pin"), NULL, "%s", why);
    cr_expect_eq(rl_refusals(RL_REFUSE_POK_MISMATCH), before + 1);
    cr_assert_eq(rl_pins_open(db, false, &p, NULL), DC_OK);
    cr_assert_eq(rl_pins_get(p, D, &pin, NULL), DC_OK);
    cr_expect_str_eq(pin.pok, pa.pok, "a refusal leaves the pin");
    cr_expect_eq(pin.refused, 1);
    rl_pins_close(p);

    cr_expect(rl_pins_check(db, false, D, b.signet, true, 5, NULL, why, sizeof(why)), "%s", why);
    cr_assert_eq(rl_pins_open(db, false, &p, NULL), DC_OK);
    cr_assert_eq(rl_pins_get(p, D, &pin, NULL), DC_OK);
    cr_expect_str_eq(pin.how, "rollover");
    cr_expect_str_eq(pin.previous_pok, pa.pok);
    cr_expect_eq(pin.exp_days, 5);
    cr_expect_not(rl_pins_check(db, false, D, a.signet, true, 5, NULL, why, sizeof(why)),
                  "the old POK is not accepted after the rollover");

    /* the record disappears: held within exp, dropped after it */
    cr_expect(rl_pins_absent(db, false, true, D, why, sizeof(why)));
    cr_expect_neq(strstr(why, "no downgrade"), NULL, "%s", why);
    rl_pins_close(p);
    /* six days later (exp=5): the pin aged in SQL, as the integration test does */
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "sqlite3 %s \"UPDATE pins SET last_seen = last_seen - 6 * 86400\"",
             db);
    cr_assert_eq(system(cmd), 0);
    cr_expect_not(rl_pins_absent(db, false, false, D, why, sizeof(why)),
                  "after exp an insecure absence is not DIME");
    cr_assert_eq(rl_pins_open(db, false, &p, NULL), DC_OK);
    cr_expect_eq(rl_pins_get(p, D, &pin, NULL), DC_OK, "... but drops no pin");
    rl_pins_close(p);
    cr_expect_not(rl_pins_absent(db, false, true, D, why, sizeof(why)));
    cr_assert_eq(rl_pins_open(db, false, &p, NULL), DC_OK);
    cr_expect_eq(rl_pins_get(p, D, &pin, NULL), DC_ERR_NOTFOUND, "a secure absence drops it");
    cr_expect_eq(rl_pins_delete(p, D, NULL), DC_ERR_NOTFOUND);
    rl_pins_close(p);
    cr_expect_not(rl_pins_absent(db, false, true, D, why, sizeof(why)), "no pin: not held");

    org_free(&a);
    org_free(&b);
    org_free(&m);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* ---- syndicates (rl_syndicate.h) ---- */

TestSuite(syndicate, .init = setup, .fini = teardown);

Test(syndicate, reply_round_trip_and_rejects)
{
    struct rl_pin pin;
    memset(&pin, 0, sizeof(pin));
    snprintf(pin.domain, sizeof(pin.domain), D);
    memset(pin.pok, 'A', 43);
    memset(pin.org_fp, 'f', DC_FP_B64_LEN);
    pin.first_seen = 1700000000;
    pin.last_seen = 1700000600;
    snprintf(pin.how, sizeof(pin.how), "first-seen");
    char line[DC_DMTP_LINE_MAX];
    rl_syn_format(&pin, line, sizeof(line));
    struct rl_syn_view v;
    struct dc_err e = {0};
    cr_assert_eq(rl_syn_parse(line, "BOB.test", &v, &e), DC_OK, "%s: %s", line, e.msg);
    cr_expect_str_eq(v.pok, pin.pok);
    cr_expect_str_eq(v.fp, pin.org_fp);
    cr_expect_eq(v.first_seen, 1700000000);
    cr_expect_eq(v.last_seen, 1700000600);
    cr_expect_str_eq(v.how, "first-seen");
    cr_expect_str_eq(v.previous_pok, "", "prev=- is none");
    memset(pin.previous_pok, 'B', 43);
    snprintf(pin.how, sizeof(pin.how), "syndicate");
    rl_syn_format(&pin, line, sizeof(line));
    cr_assert_eq(rl_syn_parse(line, D, &v, &e), DC_OK, "%s", e.msg);
    cr_expect_str_eq(v.previous_pok, pin.previous_pok);
    cr_expect_neq(rl_syn_parse(line, "mallory.test", &v, &e), DC_OK, "about another domain");
    static const char *const bad[] = {
        "",
        "XSYN",
        "XSYN bob.test",                              /* no pok= fp= */
        "XSYN bob.test pok=AAAA",                     /* no fp= */
        "XSYN bob.test fp=ffff",                      /* no pok= */
        "XSYN bob.test pok=AAAA fp=ffff ",            /* trailing space */
        "XSYN bob.test pok=AAAA fp=ffff pok=BBBB",    /* repeated */
        "XSYN bob.test pok=AAAA fp=ffff key=1",       /* unknown */
        "XSYN bob.test pok=AA;A fp=ffff",             /* not base64 */
        "XSYN bob.test pok= fp=ffff",                 /* empty */
        "XSYN bob.test pok=AAAA fp=ffff first=12x",   /* not a number */
        "XSYN bob.test pok=AAAA fp=ffff first=1234567890123456789",
        "XSYN bob.test pok=AAAA fp=ffff how=first_seen",
        "XSYN bob.test pok=AAAA fp=ffff nokey",
        "xsyn bob.test pok=AAAA fp=ffff",
        "XSYN b@b.test pok=AAAA fp=ffff",
        "SGNT bob.test pok=AAAA fp=ffff",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_neq(rl_syn_parse(bad[i], NULL, &v, &e), DC_OK, "accepted: \"%s\"", bad[i]);
    cr_expect_eq(rl_syn_parse("XSYN bob.test pok=AAAA fp=ffff", NULL, &v, &e), DC_OK,
                 "the other fields are optional: %s", e.msg);
}

Test(syndicate, hosts_and_quorum)
{
    const char *conf[] = {"B.test:27", "c.test"};
    struct rl_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.syndicates = conf;
    cfg.n_syndicates = 2;
    cfg.syndicate_quorum = -1;
    char h[RL_SYN_MAX][262];
    cr_assert_eq(rl_syn_hosts(&cfg, "a.test,b.test:27", h), 3, "syn= and dime.conf, no repeats");
    cr_expect_str_eq(h[0], "a.test");
    cr_expect_str_eq(h[1], "b.test:27");
    cr_expect_str_eq(h[2], "c.test");
    cr_expect_eq(rl_syn_hosts(&cfg, NULL, h), 2);
    cfg.hostname = "A.test";
    cr_expect_eq(rl_syn_hosts(&cfg, "a.test:26,b.test:27", h), 2, "a relay does not ask itself");
    cr_expect_str_eq(h[0], "b.test:27");
    cfg.hostname = NULL;
    cr_expect_eq(rl_syn_hosts(&cfg, "a,b,c,d,e,f,g,h,i,j", h), RL_SYN_MAX, "bounded");
    cr_expect_eq(rl_syn_quorum(&cfg, 3), 2, "a majority");
    cr_expect_eq(rl_syn_quorum(&cfg, 4), 3);
    cr_expect_eq(rl_syn_quorum(&cfg, 1), 1);
    cr_expect_eq(rl_syn_quorum(&cfg, 0), 0, "none listed: no check");
    cfg.syndicate_quorum = 0;
    cr_expect_eq(rl_syn_quorum(&cfg, 3), 0, "0: no check");
    cfg.syndicate_quorum = 2;
    cr_expect_eq(rl_syn_quorum(&cfg, 1), 2, "a quorum above those listed cannot be met");
}

Test(syndicate, word_kept)
{
    char ev[700];
    int r = -1;
    cr_expect_not(rl_syn_cache_get("kept.test", "AAAA", 300, &r, ev, sizeof(ev)));
    rl_syn_cache_put("kept.test", "AAAA", RL_SYN_REFUSED, "carol:disagrees");
    cr_assert(rl_syn_cache_get("KEPT.test", "AAAA", 300, &r, ev, sizeof(ev)));
    cr_expect_eq(r, RL_SYN_REFUSED);
    cr_expect_neq(strstr(ev, "carol:disagrees (kept "), NULL, "%s", ev);
    cr_expect_not(rl_syn_cache_get("kept.test", "BBBB", 300, &r, ev, sizeof(ev)),
                  "the word is on one POK");
    rl_syn_cache_put("kept.test", "AAAA", RL_SYN_AGREED, "carol:agrees");
    cr_assert(rl_syn_cache_get("kept.test", "AAAA", 300, &r, ev, sizeof(ev)));
    cr_expect_eq(r, RL_SYN_AGREED, "a new word replaces the old");
    cr_expect_not(rl_syn_cache_get("kept.test", "AAAA", 0, &r, ev, sizeof(ev)), "ttl 0: none");
    for (int i = 0; i < 200; i++) { /* bounded: the oldest goes */
        char d[32];
        snprintf(d, sizeof(d), "d%d.test", i);
        rl_syn_cache_put(d, "AAAA", RL_SYN_REFUSED, "x");
    }
    cr_expect(rl_syn_cache_get("d199.test", "AAAA", 300, &r, ev, sizeof(ev)));
}

/* what the test's syndicates say: a fixed word, and evidence naming it */
static enum rl_syn_result said;
static char asked_syn[256]; /* the syn= whose hosts the check handed over */
static enum rl_syn_result fixed_word(void *ctx, const char *domain, const char *pok,
                                     const char *syn, char *evidence, size_t el)
{
    (void)ctx;
    snprintf(asked_syn, sizeof(asked_syn), "%s", syn ? syn : "(none)");
    snprintf(evidence, el, "test-syndicate about %s pok=%s", domain, pok);
    return said;
}

Test(syndicate, answer_and_check)
{
    char dir[] = "/tmp/test_syn.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char db[300], why[1000], text[DC_DMTP_LINE_MAX];
    snprintf(db, sizeof(db), "%s/pins.db", dir);
    struct org a, m;
    org_new(&a);
    org_new(&m);
    struct rl_pin pa, pm, pin;
    pin_of(&a, &pa);
    pin_of(&m, &pm);
    struct rl_syn_ask ask = {.confirm = fixed_word, .record_syn = "carol.test"};
    struct rl_pins *p = NULL;

    said = RL_SYN_REFUSED;
    cr_expect_not(rl_pins_check(db, false, D, a.signet, true, 0, &ask, why, sizeof(why)),
                  "first contact the syndicates refuse");
    cr_expect_neq(strstr(why, "test-syndicate about bob.test"), NULL, "%s", why);
    cr_expect_str_eq(asked_syn, "carol.test", "first contact: the record's syn=");
    cr_assert_eq(rl_pins_open(db, true, &p, NULL), DC_OK);
    cr_expect_eq(rl_pins_get(p, D, &pin, NULL), DC_ERR_NOTFOUND, "... pins nothing");
    rl_pins_close(p);
    said = RL_SYN_AGREED;
    cr_expect(rl_pins_check(db, false, D, a.signet, true, 0, &ask, why, sizeof(why)), "%s", why);

    /* the service, from that store */
    const char *all[] = {"*"}, *other[] = {"alice.test"};
    struct rl_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.pin_database = db;
    cfg.syndicate_for = other;
    cfg.n_syndicate_for = 1;
    cr_expect_eq(rl_syn_answer(&cfg, "<bob.test>", text, sizeof(text)), 550, "not served");
    cfg.syndicate_for = all;
    cr_assert_eq(rl_syn_answer(&cfg, "<Bob.Test>", text, sizeof(text)), 250, "%s", text);
    struct rl_syn_view v;
    cr_assert_eq(rl_syn_parse(text, D, &v, NULL), DC_OK, "%s", text);
    cr_expect_str_eq(v.pok, pa.pok);
    cr_expect_str_eq(v.how, "first-seen");
    cr_expect_eq(rl_syn_answer(&cfg, "<carol.test>", text, sizeof(text)), 550, "not pinned");
    cr_expect_eq(rl_syn_answer(&cfg, "<bob@bob.test>", text, sizeof(text)), 501);
    cr_expect_eq(rl_syn_answer(&cfg, "<>", text, sizeof(text)), 501);
    cr_expect_eq(rl_syn_answer(&cfg, "<bad domain>", text, sizeof(text)), 501);

    cr_assert_eq(rl_pins_open(db, true, &p, NULL), DC_OK);
    cr_assert_eq(rl_pins_get(p, D, &pin, NULL), DC_OK);
    cr_expect_str_eq(pin.syn, "carol.test", "the pin keeps the record's syn=");
    rl_pins_close(p);

    /* another POK without a rollover link, from a record that names other syndicates */
    ask.record_syn = "mallory.test";
    said = RL_SYN_REFUSED;
    cr_expect_not(rl_pins_check(db, false, D, m.signet, true, 0, &ask, why, sizeof(why)));
    cr_expect_neq(strstr(why, "contradicts its pin"), NULL, "%s", why);
    cr_expect_str_eq(asked_syn, "carol.test", "a new POK: the pinned syn=, not the new record's");
    said = RL_SYN_NONE;
    cr_expect_not(rl_pins_check(db, false, D, m.signet, true, 0, &ask, why, sizeof(why)),
                  "no syndicates: the pin holds");
    said = RL_SYN_AGREED;
    cr_expect(rl_pins_check(db, false, D, m.signet, true, 0, &ask, why, sizeof(why)),
              "the syndicates confirm it: %s", why);
    cr_assert_eq(rl_syn_answer(&cfg, "<bob.test>", text, sizeof(text)), 250, "%s", text);
    cr_assert_eq(rl_syn_parse(text, D, &v, NULL), DC_OK, "%s", text);
    cr_expect_str_eq(v.pok, pm.pok, "the pin moved");
    cr_expect_str_eq(v.how, "syndicate");
    cr_expect_str_eq(v.previous_pok, pa.pok);
    said = RL_SYN_REFUSED;
    cr_expect(rl_pins_check(db, false, D, m.signet, true, 0, &ask, why, sizeof(why)),
              "the pinned POK asks nobody: %s", why);

    org_free(&a);
    org_free(&m);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}
