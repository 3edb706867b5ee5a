/* The relay's record step and cache against a fake resolver (the rl_dns interface): every
 * DNSSEC outcome, several DIME records, policy, exp= after a record vanished; and the shared
 * configuration schema. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dc_config.h"
#include "rl_cache.h"
#include "rl_lookup.h"
#include "rl_resolve.h"

/* ---- a fake resolver: canned answers by name (any type) ---- */

struct canned {
    const char *name;
    enum rl_dns_sec sec;
    const char *txt[3]; /* TXT RRs (one character-string each); NULL-terminated */
};

struct fake {
    struct rl_dns base;
    int efd;
    const struct canned *answers;
    size_t n;
    struct {
        const char *name;
        rl_dns_cb cb;
        void *arg;
    } q[8];
    size_t nq;
};

static enum dc_status f_query(struct rl_dns *d, const char *name, int type, rl_dns_cb cb,
                              void *arg, struct dc_err *err)
{
    struct fake *f = (struct fake *)d;
    cr_assert(f->nq < 8);
    f->q[f->nq].name = name;
    f->q[f->nq].cb = cb;
    f->q[f->nq].arg = arg;
    f->nq++;
    uint64_t one = 1;
    cr_assert_eq(write(f->efd, &one, sizeof(one)), (ssize_t)sizeof(one));
    return DC_OK;
}

static int f_fd(struct rl_dns *d) { return ((struct fake *)d)->efd; }

static enum dc_status f_process(struct rl_dns *d, struct dc_err *err)
{
    struct fake *f = (struct fake *)d;
    uint64_t v;
    cr_assert_eq(read(f->efd, &v, sizeof(v)), (ssize_t)sizeof(v));
    while (f->nq > 0) {
        f->nq--;
        struct rl_dns_answer a;
        memset(&a, 0, sizeof(a));
        a.sec = RL_DNS_SECURE;
        a.nodata = a.nxdomain = true;
        for (size_t i = 0; i < f->n; i++) {
            if (strcmp(f->answers[i].name, f->q[f->nq].name) != 0)
                continue;
            a.sec = f->answers[i].sec;
            a.nodata = a.nxdomain = false;
            a.ttl = 300;
            if (a.sec == RL_DNS_BOGUS || a.sec == RL_DNS_TEMPFAIL)
                snprintf(a.why, sizeof(a.why), "canned %s", rl_dns_sec_name(a.sec));
            for (size_t k = 0; f->answers[i].txt[k] != NULL; k++) {
                size_t l = strlen(f->answers[i].txt[k]);
                a.rr[a.n].data = malloc(l + 1);
                a.rr[a.n].data[0] = (uint8_t)l;
                memcpy(a.rr[a.n].data + 1, f->answers[i].txt[k], l);
                a.rr[a.n].len = l + 1;
                a.n++;
            }
        }
        f->q[f->nq].cb(f->q[f->nq].arg, &a);
        rl_dns_answer_free(&a);
    }
    return DC_OK;
}

static size_t f_pending(struct rl_dns *d) { return ((struct fake *)d)->nq; }
static void f_cancel(struct rl_dns *d) { ((struct fake *)d)->nq = 0; }
static void f_free(struct rl_dns *d)
{
    close(((struct fake *)d)->efd);
    free(d);
}

static const struct rl_dns_ops fake_ops = {f_query, f_fd, f_process, f_pending, f_cancel,
                                           f_free};

static struct rl_dns *fake_new(const struct canned *c, size_t n)
{
    struct fake *f = calloc(1, sizeof(*f));
    f->base.ops = &fake_ops;
    f->efd = eventfd(0, EFD_CLOEXEC);
    f->answers = c;
    f->n = n;
    return &f->base;
}

#define REC "ver=1 pok=dJdPPUXV7VaK++KmF3GNOHYRYpJTwTCHCBkLcxe/OZs dx=dx.a.test"

static const struct canned zone[] = {
    {"_dime.secure.test", RL_DNS_SECURE, {REC, NULL}},
    {"_dime.bogus.test", RL_DNS_BOGUS, {REC, NULL}},
    {"_dime.plain.test", RL_DNS_INSECURE, {REC, NULL}},
    {"_dx.dxonly.test", RL_DNS_SECURE, {REC, NULL}},
    {"_dime.two.test", RL_DNS_SECURE, {REC, REC " dx=b.test", NULL}},
    {"_dime.mixed.test", RL_DNS_SECURE, {"v=spf1 -all", REC, NULL}},
    {"_dime.broken.test", RL_DNS_SECURE, {"ver=1 pok=short", NULL}},
    {"_dime.down.test", RL_DNS_TEMPFAIL, {NULL}},
};

static struct rl_config cfg;

static enum rl_outcome resolve(const char *name, bool require, struct rl_lookup *l)
{
    memset(&cfg, 0, sizeof(cfg));
    cfg.remote_port = 26;
    cfg.remote_dual_port = 25;
    cfg.connect_timeout = 1;
    struct rl_resolver r = {.cfg = &cfg, .dns = fake_new(zone, sizeof(zone) / sizeof(zone[0]))};
    enum rl_outcome o = rl_resolve(&r, name, require, NULL, l);
    rl_dns_free(r.dns);
    return o;
}

struct rcase {
    char name[40];
    bool require;
    enum rl_outcome want;
    char reason[60];
};

static struct rcase rcases[] = {
    /* a secure record gets as far as the DX, which has no address here */
    {"secure.test", true, RL_OUT_TEMPFAIL, "no DX reachable"},
    {"bogus.test", true, RL_OUT_BOGUS, "bogus (DNSSEC validation failed): canned"},
    {"bogus.test", false, RL_OUT_BOGUS, "bogus"},
    {"plain.test", true, RL_OUT_REFUSED, "insecure (not signed) and require-dnssec"},
    {"plain.test", false, RL_OUT_TEMPFAIL, "no DX reachable"},
    {"dxonly.test", true, RL_OUT_TEMPFAIL, "no DX reachable"},
    {"nothing.test", true, RL_OUT_NOT_DIME, "proven by DNSSEC"},
    {"two.test", true, RL_OUT_REFUSED, "has 2 DIME records"},
    {"mixed.test", true, RL_OUT_TEMPFAIL, "no DX reachable"},
    {"broken.test", true, RL_OUT_REFUSED, "invalid DIME record"},
    {"down.test", true, RL_OUT_TEMPFAIL, "DNS lookup of _dime.down.test failed"},
    {"a b.test", true, RL_OUT_REFUSED, "bad name"},
};

ParameterizedTestParameters(relay, record_outcomes)
{
    return cr_make_param_array(struct rcase, rcases, sizeof(rcases) / sizeof(rcases[0]));
}

ParameterizedTest(struct rcase *c, relay, record_outcomes)
{
    struct rl_lookup l;
    enum rl_outcome o = resolve(c->name, c->require, &l);
    cr_expect_eq(o, c->want, "%s: outcome %s, wanted %s (%s)", c->name, rl_outcome_name(o),
                 rl_outcome_name(c->want), l.reason);
    cr_expect(strstr(l.reason, c->reason) != NULL, "%s: reason '%s' lacks '%s'", c->name,
              l.reason, c->reason);
    rl_lookup_free(&l);
}

Test(relay, bogus_data_is_never_handed_out)
{
    struct rl_lookup l;
    resolve("bogus.test", false, &l);
    cr_assert_null(l.rec);
    cr_assert_null(l.record_text);
    rl_lookup_free(&l);
}

Test(relay, exp_keeps_a_vanished_domain_dime_required)
{
    char path[] = "/tmp/test_relay_cache.XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    struct rl_cache *c;
    struct dc_err err = {0};
    cr_assert_eq(rl_cache_open(path, &c, &err), DC_OK, "%s", err.msg);
    int64_t now = time(NULL);
    /* nothing.test had a record with exp=; its entry expired, dime_until did not */
    cr_assert_eq(rl_cache_record_put(c, "Nothing.test", REC " exp=3", RL_DNS_SECURE, now - 10,
                                     now + 3 * 86400, &err), DC_OK);
    memset(&cfg, 0, sizeof(cfg));
    cfg.remote_port = 26;
    cfg.remote_dual_port = 25;
    cfg.connect_timeout = 1;
    struct rl_resolver r = {.cfg = &cfg, .dns = fake_new(zone, sizeof(zone) / sizeof(zone[0]))};
    struct rl_lookup l;
    bool cached;
    enum rl_outcome o = rl_lookup_cached(&r, c, "nothing.test", true, &l, &cached);
    cr_expect_eq(o, RL_OUT_TEMPFAIL, "outcome %s: %s", rl_outcome_name(o), l.reason);
    cr_expect(strstr(l.reason, "exp=") != NULL, "%s", l.reason);
    cr_expect(!cached);
    rl_lookup_free(&l);
    /* without the exp= sighting, it is simply not a DIME domain */
    cr_assert_eq(rl_cache_record_put(c, "nothing.test", REC, RL_DNS_SECURE, now - 10, 0, &err),
                 DC_OK);
    o = rl_lookup_cached(&r, c, "nothing.test", true, &l, &cached);
    cr_expect_eq(o, RL_OUT_NOT_DIME, "outcome %s", rl_outcome_name(o));
    rl_lookup_free(&l);
    rl_dns_free(r.dns);
    rl_cache_close(c);
    unlink(path);
    char side[64];
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
}

/* ---- the shared schema ---- */

static enum dc_status conf(const char *text, struct dc_err *err)
{
    char path[] = "/tmp/test_relay_conf.XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct rl_config rc;
    enum dc_status s = rl_config_load(path, false, &rc, err);
    if (s == DC_OK)
        rl_config_free(&rc);
    unlink(path);
    return s;
}

Test(relay, config_schema)
{
    struct dc_err err = {0};
    cr_expect_eq(conf("relay { }\ndomain \"a.test\" { require-dnssec = false }\n"
                      "keyvault { socket = \"/x\" }\n", &err), DC_OK, "%s", err.msg);
    memset(&err, 0, sizeof(err));
    cr_expect_eq(conf("relay { frob = 1 }\n", &err), DC_ERR_FORMAT);
    cr_expect(strstr(err.msg, "frob") != NULL, "%s", err.msg);
    memset(&err, 0, sizeof(err));
    cr_expect_neq(conf("relay { }\nkeyvault { frob = 1 }\n", &err), DC_OK,
                  "an unknown keyvault option is an error for the relay too");
    memset(&err, 0, sizeof(err));
    cr_expect_neq(conf("keyvault { }\n", &err), DC_OK, "the relay needs its section");
    memset(&err, 0, sizeof(err));
    cr_expect_neq(conf("relay { }\ndomain \"a.test\" { }\ndomain \"A.test\" { }\n", &err), DC_OK);
    cr_expect(strstr(err.msg, "twice") != NULL, "%s", err.msg);
    memset(&err, 0, sizeof(err));
    cr_expect_neq(conf("relay { }\ndomain \"not a domain\" { }\n", &err), DC_OK);
    memset(&err, 0, sizeof(err));
    cr_expect_neq(conf("relay { listen-port = 70000 }\n", &err), DC_OK);
    cr_expect(strstr(err.msg, "listen-port") != NULL, "%s", err.msg);
    memset(&err, 0, sizeof(err));
    cr_expect_neq(conf("relay { cache-database = \"relative.db\" }\n", &err), DC_OK);
}

/* ---- the injection generation in the inbound queue (rl_inject.h) ---- */

#include "rl_queue.h"

#include <sqlite3.h>

static void next_in(struct rl_queue *q, struct rl_q_in *in)
{
    struct dc_err e = {0};
    bool found = false;
    cr_assert_eq(rl_queue_in_next(q, 0x7fffffff, in, &found, &e), DC_OK, "%s", e.msg);
    cr_assert(found);
}

Test(relay, queue_injection_generation)
{
    char dir[] = "/tmp/test_relay_q.XXXXXX", db[80], key[80];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db, sizeof(db), "%s/q.db", dir);
    snprintf(key, sizeof(key), "%s/q.key", dir);
    /* a queue database from before the generation columns */
    sqlite3 *old = NULL;
    cr_assert_eq(sqlite3_open(db, &old), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(old,
                              "CREATE TABLE inq(tid TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE,"
                              " recipient TEXT NOT NULL, origin TEXT NOT NULL, created INTEGER"
                              " NOT NULL, next_try INTEGER NOT NULL, attempts INTEGER NOT NULL"
                              " DEFAULT 0, state TEXT NOT NULL DEFAULT 'queued', held INTEGER"
                              " NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '', size"
                              " INTEGER NOT NULL, data BLOB);"
                              "INSERT INTO inq(tid, hash, recipient, origin, created, next_try,"
                              " size, data) VALUES('00aa', x'01', 'r@b.test', 'a.test', 1, 1, 1,"
                              " x'41');",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(old);

    struct rl_queue *q = NULL;
    struct dc_err e = {0};
    cr_assert_eq(rl_queue_open(db, key, &q, &e), DC_OK, "%s", e.msg);
    struct rl_q_in in;
    next_in(q, &in);
    cr_expect_str_eq(in.tid, "00aa");
    cr_expect_eq(in.gen, 0u, "an old row has had no attempt");
    cr_expect(!in.pending);
    rl_q_in_free(&in);

    /* attempt 1, outcome unknown: stays pending with the same generation, also after a
     * reopen (the relay restarted) */
    cr_assert_eq(rl_queue_in_attempt(q, "00aa", 1, &e), DC_OK, "%s", e.msg);
    rl_queue_close(q);
    cr_assert_eq(rl_queue_open(db, key, &q, &e), DC_OK, "%s", e.msg);
    next_in(q, &in);
    cr_expect_eq(in.gen, 1u);
    cr_expect(in.pending);
    rl_q_in_free(&in);
    cr_assert_eq(rl_queue_in_defer(q, "00aa", 0, "no reply after the dot", true, &e), DC_OK);
    next_in(q, &in);
    cr_expect_eq(in.gen, 1u);
    cr_expect(in.pending, "an unknown outcome keeps the generation pending");
    cr_expect_eq(in.attempts, 1u);
    rl_q_in_free(&in);
    /* a definite failure clears it: the next attempt takes a new generation */
    cr_assert_eq(rl_queue_in_defer(q, "00aa", 0, "451 try later", false, &e), DC_OK);
    next_in(q, &in);
    cr_expect_eq(in.gen, 1u);
    cr_expect(!in.pending);
    rl_q_in_free(&in);

    /* a new message starts at generation 0 */
    char tid[24];
    bool dup = true;
    cr_assert_eq(rl_queue_in_add(q, (const uint8_t *)"xyz", 3, "s@b.test", "a.test", tid, &dup,
                                 &e), DC_OK, "%s", e.msg);
    cr_expect(!dup);
    cr_assert_eq(rl_queue_in_done(q, "00aa", &e), DC_OK);
    next_in(q, &in);
    cr_expect_str_eq(in.tid, tid);
    cr_expect_eq(in.gen, 0u);
    cr_expect(!in.pending);
    rl_q_in_free(&in);
    rl_queue_close(q);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}
