/* The relay's record step and cache against a fake resolver (the dl_dns interface): every
 * DNSSEC outcome, several DIME records, policy, exp= after a record vanished; and the shared
 * configuration schema. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dc_config.h"
#include "kv_client.h"
#include "rl_cache.h"
#include "rl_lookup.h"
#include "lookup_proto.h"
#include "rl_metrics.h"
#include "rl_resolve.h"
#include "dl_resolve_int.h"
#include "submit_client.h"
#include "rl_workers.h"

/* ---- a fake resolver: canned answers by name (any type) ---- */

struct canned {
    const char *name;
    enum dl_dns_sec sec;
    const char *txt[3]; /* TXT RRs (one character-string each); NULL-terminated */
};

struct fake {
    struct dl_dns base;
    int efd;
    const struct canned *answers;
    size_t n;
    struct {
        const char *name;
        dl_dns_cb cb;
        void *arg;
    } q[8];
    size_t nq;
};

static enum dc_status f_query(struct dl_dns *d, const char *name, int type, dl_dns_cb cb,
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

static int f_fd(struct dl_dns *d) { return ((struct fake *)d)->efd; }

static enum dc_status f_process(struct dl_dns *d, struct dc_err *err)
{
    struct fake *f = (struct fake *)d;
    uint64_t v;
    cr_assert_eq(read(f->efd, &v, sizeof(v)), (ssize_t)sizeof(v));
    while (f->nq > 0) {
        f->nq--;
        struct dl_dns_answer a;
        memset(&a, 0, sizeof(a));
        a.sec = DL_DNS_SECURE;
        a.nodata = a.nxdomain = true;
        for (size_t i = 0; i < f->n; i++) {
            if (strcmp(f->answers[i].name, f->q[f->nq].name) != 0)
                continue;
            a.sec = f->answers[i].sec;
            a.nodata = a.nxdomain = false;
            a.ttl = 300;
            if (a.sec == DL_DNS_BOGUS || a.sec == DL_DNS_TEMPFAIL)
                snprintf(a.why, sizeof(a.why), "canned %s", dl_dns_sec_name(a.sec));
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
        dl_dns_answer_free(&a);
    }
    return DC_OK;
}

static size_t f_pending(struct dl_dns *d) { return ((struct fake *)d)->nq; }
static void f_cancel(struct dl_dns *d) { ((struct fake *)d)->nq = 0; }
static void f_free(struct dl_dns *d)
{
    close(((struct fake *)d)->efd);
    free(d);
}

static const struct dl_dns_ops fake_ops = {f_query, f_fd, f_process, f_pending, f_cancel,
                                           f_free};

static struct dl_dns *fake_new(const struct canned *c, size_t n)
{
    struct fake *f = calloc(1, sizeof(*f));
    f->base.ops = &fake_ops;
    f->efd = eventfd(0, EFD_CLOEXEC);
    f->answers = c;
    f->n = n;
    return &f->base;
}

/* An event loop that fails (libunbound: ub_process and its pipe) with the query pending. */
static enum dc_status f_process_fails(struct dl_dns *d, struct dc_err *err)
{
    uint64_t v;
    cr_assert_eq(read(((struct fake *)d)->efd, &v, sizeof(v)), (ssize_t)sizeof(v));
    return dc_fail(err, DC_ERR_IO, "canned process failure");
}

static const struct dl_dns_ops failing_ops = {f_query, f_fd, f_process_fails, f_pending,
                                              f_cancel, f_free};

#define REC "ver=1 pok=dJdPPUXV7VaK++KmF3GNOHYRYpJTwTCHCBkLcxe/OZs dx=dx.a.test"

static const struct canned zone[] = {
    {"_dime.secure.test", DL_DNS_SECURE, {REC, NULL}},
    {"_dime.bogus.test", DL_DNS_BOGUS, {REC, NULL}},
    {"_dime.plain.test", DL_DNS_INSECURE, {REC, NULL}},
    {"_dx.dxonly.test", DL_DNS_SECURE, {REC, NULL}},
    {"_dime.two.test", DL_DNS_SECURE, {REC, REC " dx=b.test", NULL}},
    {"_dime.mixed.test", DL_DNS_SECURE, {"v=spf1 -all", REC, NULL}},
    {"_dime.broken.test", DL_DNS_SECURE, {"ver=1 pok=short", NULL}},
    {"_dime.down.test", DL_DNS_TEMPFAIL, {NULL}},
};

static struct rl_config cfg;

static enum dl_outcome resolve(const char *name, bool require, struct dl_lookup *l)
{
    memset(&cfg, 0, sizeof(cfg));
    cfg.remote_port = 26;
    cfg.remote_dual_port = 25;
    cfg.connect_timeout = 1;
    struct dl_resolver r;
    rl_resolver_init(&r, &cfg, NULL);
    r.dns = fake_new(zone, sizeof(zone) / sizeof(zone[0]));
    enum dl_outcome o = dl_resolve(&r, name, require, NULL, l);
    dl_dns_free(r.dns);
    return o;
}

struct rcase {
    char name[40];
    bool require;
    enum dl_outcome want;
    char reason[60];
};

static struct rcase rcases[] = {
    /* a secure record gets as far as the DX, which has no address here */
    {"secure.test", true, DL_OUT_TEMPFAIL, "no DX reachable"},
    {"bogus.test", true, DL_OUT_BOGUS, "bogus (DNSSEC validation failed): canned"},
    {"bogus.test", false, DL_OUT_BOGUS, "bogus"},
    {"plain.test", true, DL_OUT_REFUSED, "insecure (not signed) and require-dnssec"},
    {"plain.test", false, DL_OUT_TEMPFAIL, "no DX reachable"},
    {"dxonly.test", true, DL_OUT_TEMPFAIL, "no DX reachable"},
    {"nothing.test", true, DL_OUT_NOT_DIME, "proven by DNSSEC"},
    {"two.test", true, DL_OUT_REFUSED, "has 2 DIME records"},
    {"mixed.test", true, DL_OUT_TEMPFAIL, "no DX reachable"},
    {"broken.test", true, DL_OUT_REFUSED, "invalid DIME record"},
    {"down.test", true, DL_OUT_TEMPFAIL, "DNS lookup of _dime.down.test failed"},
    {"a b.test", true, DL_OUT_REFUSED, "bad name"},
};

ParameterizedTestParameters(relay, record_outcomes)
{
    return cr_make_param_array(struct rcase, rcases, sizeof(rcases) / sizeof(rcases[0]));
}

ParameterizedTest(struct rcase *c, relay, record_outcomes)
{
    struct dl_lookup l;
    enum dl_outcome o = resolve(c->name, c->require, &l);
    cr_expect_eq(o, c->want, "%s: outcome %s, wanted %s (%s)", c->name, dl_outcome_name(o),
                 dl_outcome_name(c->want), l.reason);
    cr_expect(strstr(l.reason, c->reason) != NULL, "%s: reason '%s' lacks '%s'", c->name,
              l.reason, c->reason);
    dl_lookup_free(&l);
}

Test(relay, failed_dns_wait_leaves_no_query_behind)
{
    struct dl_dns *d = fake_new(zone, sizeof(zone) / sizeof(zone[0]));
    d->ops = &failing_ops;
    struct dl_dns_answer a;
    dl_dns_lookup(d, "_dime.secure.test", DL_DNS_TYPE_TXT, 1000, &a);
    cr_expect_eq(a.sec, DL_DNS_TEMPFAIL);
    cr_expect(strstr(a.why, "canned process failure") != NULL, "why: %s", a.why);
    cr_expect_eq(a.n, 0);
    /* still registered, its answer would go to a, a frame of a lookup that has returned */
    cr_expect_eq(d->ops->pending(d), 0, "the failed lookup's query is still pending");
    dl_dns_free(d);
}

Test(relay, bogus_data_is_never_handed_out)
{
    struct dl_lookup l;
    resolve("bogus.test", false, &l);
    cr_assert_null(l.rec);
    cr_assert_null(l.record_text);
    dl_lookup_free(&l);
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
    cr_assert_eq(rl_cache_record_put(c, "Nothing.test", REC " exp=3", DL_DNS_SECURE, now - 10,
                                     now + 3 * 86400, &err), DC_OK);
    memset(&cfg, 0, sizeof(cfg));
    cfg.remote_port = 26;
    cfg.remote_dual_port = 25;
    cfg.connect_timeout = 1;
    struct dl_resolver r;
    rl_resolver_init(&r, &cfg, NULL);
    r.dns = fake_new(zone, sizeof(zone) / sizeof(zone[0]));
    struct dl_lookup l;
    bool cached;
    enum dl_outcome o = rl_lookup_cached(&r, c, "nothing.test", true, &l, &cached);
    cr_expect_eq(o, DL_OUT_TEMPFAIL, "outcome %s: %s", dl_outcome_name(o), l.reason);
    cr_expect(strstr(l.reason, "exp=") != NULL, "%s", l.reason);
    cr_expect(!cached);
    dl_lookup_free(&l);
    /* without the exp= sighting, it is simply not a DIME domain */
    cr_assert_eq(rl_cache_record_put(c, "nothing.test", REC, DL_DNS_SECURE, now - 10, 0, &err),
                 DC_OK);
    o = rl_lookup_cached(&r, c, "nothing.test", true, &l, &cached);
    cr_expect_eq(o, DL_OUT_NOT_DIME, "outcome %s", dl_outcome_name(o));
    dl_lookup_free(&l);
    dl_dns_free(r.dns);
    rl_cache_close(c);
    unlink(path);
    char side[64];
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s.key", path);
    unlink(side);
}

/* ---- first opens of a new cache from several threads at once ---- */

struct opener {
    const char *path;
    pthread_barrier_t *go;
    struct rl_cache *c;
    enum dc_status s;
    char msg[256];
};

static void *open_at_once(void *arg)
{
    struct opener *o = arg;
    struct dc_err e = {0};
    pthread_barrier_wait(o->go);
    o->s = rl_cache_open(o->path, &o->c, &e);
    snprintf(o->msg, sizeof(o->msg), "%s", e.msg);
    return NULL;
}

/* The lookup workers of a relay share one pid: the key file's creation must not collide
 * between them, and all must end up with the one key (what one writes, the others read).
 * The switch of the new database to WAL must not fail either ("database is locked": about one
 * round in 50 failed before rl_cache_open retried it). */
Test(relay, cache_first_opens_from_threads_share_one_key)
{
    char dir[] = "/tmp/test_relay_cachedir.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/cache.db", dir);
    enum { N = 16, ROUNDS = 100 };
    for (int round = 0; round < ROUNDS; round++) {
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, N);
        struct opener o[N];
        pthread_t t[N];
        for (int i = 0; i < N; i++) {
            o[i] = (struct opener){.path = path, .go = &go};
            cr_assert_eq(pthread_create(&t[i], NULL, open_at_once, &o[i]), 0);
        }
        for (int i = 0; i < N; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&go);
        bool all = true;
        for (int i = 0; i < N; i++) {
            cr_expect_eq(o[i].s, DC_OK, "round %d, thread %d: %s", round, i, o[i].msg);
            all = all && o[i].s == DC_OK;
        }
        struct dc_err e = {0};
        if (all)
            cr_expect_eq(rl_cache_record_put(o[0].c, "b.test", REC, DL_DNS_SECURE, 1, 0, &e),
                         DC_OK, "%s", e.msg);
        for (int i = 0; i < N; i++) {
            struct rl_cache_record rec = {0};
            if (all)
                cr_expect_eq(rl_cache_record_get(o[i].c, "B.test", &rec, &e), DC_OK,
                             "round %d, thread %d: %s", round, i, e.msg);
            rl_cache_record_free(&rec);
            rl_cache_close(o[i].c);
        }
        char side[96];
        static const char *const ext[] = {"", "-wal", "-shm", ".key"};
        for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
            snprintf(side, sizeof(side), "%s%s", path, ext[i]);
            unlink(side);
        }
        if (!all)
            break;
    }
    cr_expect_eq(rmdir(dir), 0, "%s holds more than the cache files (a temporary key?)", dir);
}

Test(relay, record_ttl_bounds_the_cache_time)
{
    static const struct {
        uint32_t dns;
        const char *rec; /* record text; NULL: none */
        uint32_t want;
    } t[] = {
        {300, NULL, 300},
        {5, NULL, RL_RECORD_TTL_FLOOR},
        {300, "ver=1 pok=/AiRTqpCJiydVBPY4+0SddJuArhAcOfX/aDig6p+5/I", 300},
        {300, "ver=1 pok=/AiRTqpCJiydVBPY4+0SddJuArhAcOfX/aDig6p+5/I ttl=20", 20},
        {300, "ver=1 pok=/AiRTqpCJiydVBPY4+0SddJuArhAcOfX/aDig6p+5/I ttl=0",
         RL_RECORD_OWN_TTL_FLOOR},
        {300, "ver=1 pok=/AiRTqpCJiydVBPY4+0SddJuArhAcOfX/aDig6p+5/I ttl=86400", 300},
        {5, "ver=1 pok=/AiRTqpCJiydVBPY4+0SddJuArhAcOfX/aDig6p+5/I ttl=30", 30},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct dc_mrec *r = NULL;
        if (t[i].rec != NULL)
            cr_assert_eq(dc_mrec_parse_text(t[i].rec, &r, NULL), DC_OK);
        cr_assert_eq(rl_lookup_cache_ttl(t[i].dns, r), t[i].want, "case %zu: %u", i,
                     rl_lookup_cache_ttl(t[i].dns, r));
        dc_mrec_free(r);
    }
}

Test(relay, lookup_log_reason_names_no_one)
{
    static const struct {
        const char *in, *out;
    } t[] = {
        {"DNS lookup of _dime.bob.test failed: DNS timeout",
         "DNS lookup of <name> failed: DNS timeout"},
        {"SGNT bob@bob.test: 451 \"try later\"", "SGNT <name>: 451 'try later'"},
        {"no DX reachable: dx.bob.test (127.0.0.3) port 26: connection failed: Connection refused",
         "no DX reachable: <name> (<name>) port 26: connection failed: Connection refused"},
        {"DX [2001:db8::1]: no DMTPv1 banner", "DX [<name>]: no DMTPv1 banner"},
        {"the DIME record of Bob.Test. disappeared, but its exp= keeps it",
         "the DIME record of <name>. disappeared, but its exp= keeps it"},
        {"/var/lib/dime/cache.db.key: Permission denied",
         "/var/lib/dime/cache.db.key: Permission denied"},
        {"busy", "busy"},
        {"", ""},
        {"error:0A000086:SSL routines::certificate verify failed",
         "error:0A000086:SSL routines::certificate verify failed"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char out[512];
        rl_lookup_log_reason(t[i].in, out, sizeof(out));
        cr_expect_str_eq(out, t[i].out, "case %zu", i);
    }
    char small[8];
    rl_lookup_log_reason("SGNT bob@bob.test: x", small, sizeof(small));
    cr_expect_str_eq(small, "SGNT <n");
}

/* ---- the shared schema ---- */

/* text loaded as a configuration file into *rc (to free when DC_OK) */
static enum dc_status conf_load(const char *text, struct rl_config *rc, struct dc_err *err)
{
    char path[] = "/tmp/test_relay_conf.XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    enum dc_status s = rl_config_load(path, false, rc, err);
    unlink(path);
    return s;
}

static enum dc_status conf(const char *text, struct dc_err *err)
{
    struct rl_config rc;
    enum dc_status s = conf_load(text, &rc, err);
    if (s == DC_OK)
        rl_config_free(&rc);
    return s;
}

/* Only a 576 or 510 under a DNSSEC-secure pol=strict record is a definitive "no such user"
 * (LOOKUP.md no-such-user): an insecure record, pol=mixed or experimental (users without DIME
 * get plain SMTP there) or another 5xx (a DX that does not understand us) are not. */
Test(relay, no_such_user_needs_a_secure_strict_record_and_576_or_510)
{
    cr_expect(dl_no_such_user(576, DL_DNS_SECURE, DC_MREC_POL_STRICT));
    cr_expect(dl_no_such_user(510, DL_DNS_SECURE, DC_MREC_POL_STRICT));
    cr_expect_not(dl_no_such_user(576, DL_DNS_INSECURE, DC_MREC_POL_STRICT));
    cr_expect_not(dl_no_such_user(576, DL_DNS_SECURE, DC_MREC_POL_MIXED));
    cr_expect_not(dl_no_such_user(576, DL_DNS_SECURE, DC_MREC_POL_EXPERIMENTAL));
    static const int other[] = {500, 501, 502, 550, 570, 575, 586, 476, 451, 250};
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
        cr_expect_not(dl_no_such_user(other[i], DL_DNS_SECURE, DC_MREC_POL_STRICT), "%d",
                      other[i]);
}

Test(relay, config_schema)
{
    struct dc_err err = {0};
    cr_expect_eq(conf("relay { user = \"root\" }\ndomain \"a.test\" { require-dnssec = false }\n"
                      "keyvault { socket = \"/x\" }\n", &err), DC_OK, "%s", err.msg);
    memset(&err, 0, sizeof(err));
    cr_expect_eq(conf("relay { user = \"\" }\n", &err), DC_ERR_FIELD);
    cr_expect(strstr(err.msg, "relay: user is empty") != NULL, "%s", err.msg);
    memset(&err, 0, sizeof(err));
    cr_expect_eq(conf("relay { user = \"no-such-user-dime\" }\n", &err), DC_ERR_FIELD);
    cr_expect(strstr(err.msg, "no such user") != NULL, "%s", err.msg);
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

    /* a new message comes with generation 1 reserved, pending: its first attempt needs no
     * commit of its own (rl_queue_in_add) */
    char tid[24];
    bool dup = true;
    cr_assert_eq(rl_queue_in_add(q, (const uint8_t *)"xyz", 3, "s@b.test", "a.test", tid, &dup,
                                 &e), DC_OK, "%s", e.msg);
    cr_expect(!dup);
    cr_assert_eq(rl_queue_in_done(q, "00aa", &e), DC_OK);
    next_in(q, &in);
    cr_expect_str_eq(in.tid, tid);
    cr_expect_eq(in.gen, 1u);
    cr_expect(in.pending);
    cr_expect_eq(in.attempts, 0u);
    cr_expect(in.created >= rl_now() - 5 && in.created <= rl_now());
    rl_q_in_free(&in);
    rl_queue_close(q);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* ---- the submission request reader (submit_read) and the lookup request line, apart
 * from their sockets ---- */

static int read_request(const char *req, size_t len, size_t step, struct submit_in *in,
                        char *reply, size_t *consumed)
{
    struct submit_mem m = {(const uint8_t *)req, len, 0, step};
    struct submit_src src = {submit_mem_read, &m};
    int rc = submit_read(&src, 100, 150, in, reply);
    if (consumed)
        *consumed = m.off;
    return rc;
}

Test(relay, submit_request_reader)
{
    static const char ok[] = "DIME-SUBMIT 1\nqueue-id 4Xyz09\nmessage-id <a b@c>\nmessages 2\n"
                             "message s@A.test r@B.Test 3\nabc"
                             "message <> q@c.test 4\n\n\0\r\n"
                             "end\n";
    for (size_t step = 1; step <= 4096; step *= 8) {
        struct submit_in in;
        char reply[SUBMIT_REPLY_MAX];
        cr_assert_eq(read_request(ok, sizeof(ok) - 1, step, &in, reply, NULL), 0, "%s", reply);
        cr_expect_str_eq(in.queue_id, "4Xyz09");
        cr_expect_str_eq(in.message_id, "<a b@c>");
        cr_assert_eq(in.n, 2u);
        cr_expect_str_eq(in.msgs[0].sender, "s@A.test");
        cr_expect_str_eq(in.msgs[0].recipient, "r@B.Test");
        cr_expect_str_eq(in.msgs[0].domain, "b.test");
        cr_expect_eq(in.msgs[0].len, 3u);
        cr_expect_eq(memcmp(in.msgs[0].data, "abc", 3), 0);
        cr_expect_str_eq(in.msgs[1].sender, "", "<> is the null sender");
        cr_expect_eq(in.msgs[1].len, 4u);
        cr_expect_eq(memcmp(in.msgs[1].data, "\n\0\r\n", 4), 0);
        submit_in_free(&in);
    }

    /* what the client writes, the relay reads back */
    const struct submit_msg msgs[] = {{"", "x@d.test", (const uint8_t *)"12345", 5},
                                         {"a@b.c", "y@d.test", (const uint8_t *)"\n", 1}};
    const struct submit_req req = {"ABC", NULL, msgs, 2};
    struct dc_buf b;
    dc_buf_init(&b);
    submit_put_head(&b, &req);
    for (size_t i = 0; i < 2; i++) {
        submit_put_msg(&b, &msgs[i]);
        dc_buf_append(&b, msgs[i].dmime, msgs[i].len);
    }
    dc_buf_append(&b, "end\n", 4);
    struct submit_in in;
    char reply[SUBMIT_REPLY_MAX];
    cr_assert_eq(read_request((const char *)b.data, b.len, 7, &in, reply, NULL), 0, "%s", reply);
    cr_expect_str_eq(in.message_id, "");
    cr_expect_str_eq(in.msgs[0].sender, "");
    cr_expect_str_eq(in.msgs[1].sender, "a@b.c");
    cr_expect_eq(in.msgs[1].len, 1u);
    submit_in_free(&in);
    dc_buf_free(&b);

#define HEAD "DIME-SUBMIT 1\nqueue-id Q1\nmessage-id \nmessages 1\n"
    static const struct {
        const char *req;
        size_t len; /* 0: strlen */
        int code;
    } bad[] = {
        {"DIME-SUBMIT 1\r\nqueue-id Q1\n", 0, 500},                 /* CR before LF */
        {"DIME-SUBMIT 1\0x\nqueue-id Q1\n", 26, 500},               /* NUL in a line */
        {"DIME-SUBMIT 1\nqueue-id Q1\nmessage-id a\0b\nmessages 1\n", 50, 500},
        {"DIME-SUBMIT 1\nmessage-id \nqueue-id Q1\n", 0, 500},      /* order */
        {"DIME-SUBMIT 1\nqueue-id Q-1\n", 0, 501},
        {"DIME-SUBMIT 1\nqueue-id Q1\nmessage-id \x01\n", 0, 501},
        {"DIME-SUBMIT 1\nqueue-id Q1\nmessage-id \nmessages 0\n", 0, 501},
        {"DIME-SUBMIT 1\nqueue-id Q1\nmessage-id \nmessages 01\n", 0, 501},
        {"DIME-SUBMIT 1\nqueue-id Q1\nmessage-id \nmessages 1001\n", 0, 501},
        {HEAD "message s@a.b r@c.d 3 x\nabc" "end\n", 0, 500},    /* a fourth word */
        {HEAD "message  s@a.b r@c.d 3\nabc" "end\n", 0, 500},     /* two spaces */
        {HEAD "message s@a.b r@c.d 03\nabc" "end\n", 0, 501},
        {HEAD "message s@a.b r@c.d 0\n" "end\n", 0, 501},
        {HEAD "message s r@c.d 3\nabc" "end\n", 0, 501},
        {HEAD "message s@a.b rcd 3\nabc" "end\n", 0, 501},
        {HEAD "message s@a.b r@c.d 101\n", 0, 552},                /* above max_message */
        {HEAD "message s@a.b r@c.d 3\nab", 0, 500},                /* short data */
        {HEAD "message s@a.b r@c.d 3\nabcEND\n", 0, 500},          /* no end line */
        {HEAD "message s@a.b r@c.d 3\nabc", 0, 500},               /* nothing after the data */
        {"DIME-SUBMIT 1\nqueue-id Q1\nmessage-id \nmessages 2\nmessage s@a.b r@c.d 3\nabc"
         "message s@a.b r@c.d 3\nabcend\n", 0, 501},               /* recipient repeated */
        {"DIME-SUBMIT 1\nqueue-id Q1\nmessage-id \nmessages 2\nmessage s@a.b r@c.d 100\n", 0,
         0},                                                        /* (filled in below) */
        {"", 0, 500},
    };
#undef HEAD
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].req);
        struct dc_buf r;
        dc_buf_init(&r);
        dc_buf_append(&r, bad[i].req, len);
        int want = bad[i].code;
        if (want == 0) { /* two messages of 100 bytes: above the total of 150 */
            for (int k = 0; k < 100; k++)
                dc_buf_putc(&r, 'x');
            dc_buf_printf(&r, "message s@a.b q@c.d 100\n");
            want = 552;
        }
        size_t used = 0;
        cr_expect_eq(read_request((const char *)r.data, r.len, 5, &in, reply, &used), want,
                     "case %zu: %s", i, reply);
        cr_expect_eq(atoi(reply), want, "case %zu: %s", i, reply);
        cr_expect_null(strchr(reply, '\n'));
        cr_expect_null(strstr(reply, "@"), "case %zu: an address in the reply: %s", i, reply);
        if (want == 552)
            cr_expect_leq(used, r.len, "case %zu", i);
        submit_in_free(&in);
        dc_buf_free(&r);
    }
    /* a refused size is not read: the 101 bytes never arrive and are not waited for */
    static const char big[] = "DIME-SUBMIT 1\nqueue-id Q\nmessage-id \nmessages 1\n"
                              "message <> r@c.d 101\n";
    size_t used = 0;
    cr_expect_eq(read_request(big, sizeof(big) - 1, 1, &in, reply, &used), 552);
    cr_expect_eq(used, sizeof(big) - 1);
    submit_in_free(&in);
}

Test(relay, submit_reply_parse)
{
    static const struct {
        const char *line;
        int code;
        bool dup;
        size_t count;
    } cases[] = {
        {"250 2.0.0 queued 0123456789abcdef 3", 250, false, 3},
        {"250 2.0.0 duplicate 0123456789ABCDEF 1000", 250, true, 1000},
        {"451 4.3.0 keyvault unavailable", 451, false, 0},
        {"554 5.6.0 message 2: no", 554, false, 0},
        {"250 2.0.0 queued 0123456789abcdeg 3", 0, false, 0},  /* not hex */
        {"250 2.0.0 queued 0123456789abcdef 0", 0, false, 0},
        {"250 2.0.0 queued 0123456789abcdef -1", 0, false, 0},
        {"250 2.0.0 queued 0123456789abcdef 1001", 0, false, 0},
        {"250 2.0.0 stored 0123456789abcdef 1", 0, false, 0},
        {"2x0 2.0.0 x", 0, false, 0},
        {"650 6.0.0 x", 0, false, 0},
        {"451  x", 0, false, 0},
        {"451", 0, false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct submit_result r;
        memset(&r, 0, sizeof(r));
        snprintf(r.text, sizeof(r.text), "%s", cases[i].line);
        submit_parse_reply(&r);
        cr_expect_eq(r.code, cases[i].code, "%s", cases[i].line);
        if (cases[i].code == 250) {
            cr_expect_eq(r.duplicate, cases[i].dup);
            cr_expect_eq(r.count, cases[i].count);
            cr_expect_eq(strlen(r.sid), 16u);
            cr_expect_str_eq(r.status, "2.0.0");
        }
    }
}

Test(relay, lookup_request_line)
{
    struct lookup_req r;
    struct dc_err e = {0};
    static const char one[] = "LOOKUP bob@b.test";
    cr_assert_eq(lookup_req_parse(one, strlen(one), &r, &e), DC_OK, "%s", e.msg);
    cr_expect_str_eq(r.name, "bob@b.test");
    cr_expect_str_eq(r.local, "");
    static const char two[] = "LOOKUP b.test a.test\r";
    cr_assert_eq(lookup_req_parse(two, strlen(two), &r, &e), DC_OK, "%s", e.msg);
    cr_expect_str_eq(r.name, "b.test");
    cr_expect_str_eq(r.local, "a.test");

    char longest[LOOKUP_REQ_MAX + 1], w1[300], w2[300];
    memset(w1, 'n', 299);
    w1[299] = '\0';
    memset(w2, 'l', 293);
    w2[293] = '\0';
    /* "LOOKUP " 299 " " 293 LF is 601 bytes: one too many */
    cr_expect_eq(lookup_req_format(w1, w2, NULL, longest, sizeof(longest)), 0u);
    w2[292] = '\0';
    size_t n = lookup_req_format(w1, w2, NULL, longest, sizeof(longest));
    cr_expect_eq(n, (size_t)LOOKUP_REQ_MAX);
    cr_assert_neq(n, 0u);
    cr_expect_leq(n, (size_t)LOOKUP_REQ_MAX);
    cr_expect_eq(longest[n - 1], '\n');
    cr_assert_eq(lookup_req_parse(longest, n - 1, &r, &e), DC_OK, "%s", e.msg);
    cr_expect_str_eq(r.name, w1);
    cr_expect_str_eq(r.local, w2);
    cr_expect_eq(lookup_req_format("a b", NULL, NULL, longest, sizeof(longest)), 0u);
    cr_expect_eq(lookup_req_format("", NULL, NULL, longest, sizeof(longest)), 0u);
    cr_expect_eq(lookup_req_format("a", "b", NULL, longest, 5), 0u);
    n = lookup_req_format("x.test", "", NULL, longest, sizeof(longest));
    cr_expect_eq(n, 14u);
    cr_expect_eq(memcmp(longest, "LOOKUP x.test\n", 14), 0);

    /* a third word: the org signet wanted, by fingerprint */
    char fp[DC_FP_B64_LEN + 1], three[200];
    memset(fp, 'Q', DC_FP_B64_LEN);
    fp[DC_FP_B64_LEN] = '\0';
    fp[5] = '+';
    fp[6] = '/';
    n = lookup_req_format("b.test", "a.test", fp, three, sizeof(three));
    cr_assert_neq(n, 0u);
    cr_assert_eq(lookup_req_parse(three, n - 1, &r, &e), DC_OK, "%s", e.msg);
    cr_expect_str_eq(r.local, "a.test");
    cr_expect_str_eq(r.org_fp, fp);
    cr_expect_eq(lookup_req_format("b.test", NULL, fp, three, sizeof(three)), 0u,
                 "a fingerprint without a local domain");
    cr_expect_eq(lookup_req_format("b.test", "a.test", "short", three, sizeof(three)), 0u);
    snprintf(three, sizeof(three), "LOOKUP b.test a.test %.85s", fp);
    cr_expect_neq(lookup_req_parse(three, strlen(three), &r, &e), DC_OK, "85 characters");
    snprintf(three, sizeof(three), "LOOKUP b.test a.test %s x", fp);
    cr_expect_neq(lookup_req_parse(three, strlen(three), &r, &e), DC_OK, "a fourth word");
    fp[9] = '-';
    snprintf(three, sizeof(three), "LOOKUP b.test a.test %s", fp);
    cr_expect_neq(lookup_req_parse(three, strlen(three), &r, &e), DC_OK, "not base64");
    cr_expect(r.org_fp[0] == '\0', "words left behind");

    static const char *const bad[] = {
        "LOOKUP", "LOOKUP ", "lookup b.test", "LOOKUP  b.test", "LOOKUP b.test ",
        "LOOKUP b.test a.test c.test", "LOOKUP\tb.test", "LOOKUP b.test\ta.test",
        "LOOKUP b.test  a.test", "LOOKUP b.t\x01st", "LOOKUP b.test\r\r", "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    {
        cr_expect_neq(lookup_req_parse(bad[i], strlen(bad[i]), &r, &e), DC_OK, "%s",
                      bad[i]);
        cr_expect(r.name[0] == '\0' && r.local[0] == '\0', "%s: words left behind", bad[i]);
    }
    static const char nul[] = "LOOKUP b.test\0a.test";
    cr_expect_neq(lookup_req_parse(nul, sizeof(nul) - 1, &r, &e), DC_OK);
    memcpy(longest, "LOOKUP ", 7);
    memset(longest + 7, 'x', 300);
    cr_expect_neq(lookup_req_parse(longest, 307, &r, &e), DC_OK, "a 300-byte name");

    struct dc_buf b;
    dc_buf_init(&b);
    lookup_put(&b, "reason", "a\r\nb");
    cr_expect_eq(b.len, 12u);
    cr_expect_eq(memcmp(b.data, "reason=a  b\n", 12), 0);
    dc_buf_free(&b);
}

/* ---- rl_workers: the lookup and submission services' kept threads ---- */

struct wk_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned done;
    unsigned arrived; /* jobs inside the barrier below */
    unsigned hold;    /* jobs that wait there until this many arrived */
    pid_t seen[64]; /* thread ids (a pthread_t of an ended thread is given again) */
    unsigned nseen;
};

static void wk_job(void *ctx, void *job)
{
    struct wk_state *s = ctx;
    pthread_mutex_lock(&s->mu);
    bool known = false;
    for (unsigned i = 0; i < s->nseen; i++)
        known = known || s->seen[i] == gettid();
    if (!known && s->nseen < 64)
        s->seen[s->nseen++] = gettid();
    s->arrived++;
    pthread_cond_broadcast(&s->cv);
    while (s->arrived < s->hold)
        pthread_cond_wait(&s->cv, &s->mu);
    s->done += *(unsigned *)job;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    free(job);
}

static void wk_hand(struct rl_workers *w, unsigned v)
{
    unsigned *j = malloc(sizeof(*j));
    *j = v;
    cr_assert(rl_workers_run(w, j));
}

Test(workers, one_thread_for_jobs_one_after_another)
{
    struct wk_state s = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct rl_workers *w = rl_workers_new(wk_job, &s, 10000);
    for (unsigned i = 0; i < 20; i++) {
        wk_hand(w, 1);
        pthread_mutex_lock(&s.mu);
        while (s.done < i + 1)
            pthread_cond_wait(&s.cv, &s.mu);
        pthread_mutex_unlock(&s.mu);
        usleep(1000); /* the thread is back waiting for the next job */
    }
    rl_workers_free(w);
    cr_assert_eq(s.done, 20);
    cr_assert_eq(s.nseen, 1, "%u threads for 20 jobs one after another", s.nseen);
}

Test(workers, jobs_at_once_each_get_a_thread)
{
    /* 8 jobs that can only end together: a pool short of threads would hang here */
    struct wk_state s = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
                         .hold = 8};
    struct rl_workers *w = rl_workers_new(wk_job, &s, 10000);
    for (unsigned i = 0; i < 8; i++)
        wk_hand(w, i + 1);
    rl_workers_free(w); /* runs what was handed over to its end */
    cr_assert_eq(s.done, 36);
    cr_assert_eq(s.nseen, 8);
}

Test(workers, idle_threads_end)
{
    struct wk_state s = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct rl_workers *w = rl_workers_new(wk_job, &s, 50);
    wk_hand(w, 1);
    usleep(300000); /* past the idle time: the thread has ended */
    wk_hand(w, 1);
    rl_workers_free(w);
    cr_assert_eq(s.done, 2);
    cr_assert_eq(s.nseen, 2);
}

/* ---- kept keyvault connections (kv_keep), against a socket that only accepts ---- */

/* Whether a connection waits to be accepted on lfd (accepted, so the next call sees the
 * next one); its fd in *fd. */
static bool kk_accepted(int lfd, int *fd)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    if (poll(&p, 1, 0) != 1)
        return false;
    *fd = accept(lfd, NULL, NULL);
    return *fd >= 0;
}

Test(keep, open_connections_are_used_again_closed_ones_replaced)
{
    char dir[] = "/tmp/kvkeep-XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/kv.sock", dir);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
              listen(lfd, 8) == 0);
    struct kv_keep *k = kv_keep_new(path, 1);
    struct kv_client *a = NULL, *b = NULL, *c = NULL;
    struct dc_err e = {0};
    int fa = -1, fb = -1, fc = -1;
    cr_assert_eq(kv_keep_take(k, &a, &e), DC_OK, "%s", e.msg);
    cr_assert_eq(kv_keep_take(k, &b, &e), DC_OK, "%s", e.msg);
    cr_assert(kk_accepted(lfd, &fa) && kk_accepted(lfd, &fb), "two workers, two connections");
    kv_keep_give(k, a);
    kv_keep_give(k, b); /* one idle connection at most: b is closed */
    char x;
    cr_expect_eq(read(fb, &x, 1), 0, "the connection beyond max_idle is closed");
    cr_assert_eq(kv_keep_take(k, &c, &e), DC_OK, "%s", e.msg);
    cr_expect_eq(c, a, "the idle connection is taken again");
    cr_expect_not(kk_accepted(lfd, &fc), "no new connection for it");
    kv_keep_give(k, c);
    close(fa); /* the vault ends the kept connection (a restart) */
    cr_assert_eq(kv_keep_take(k, &c, &e), DC_OK, "%s", e.msg);
    cr_expect(kk_accepted(lfd, &fc), "a closed connection is replaced by a new one");
    kv_keep_give(k, c);
    kv_keep_free(k);
    close(fb);
    if (fc >= 0)
        close(fc);
    close(lfd);
    unlink(path);
    rmdir(dir);
}

/* ---- the injecting client's reply reader (rl_inject.c) ---- */

#include "rl_inject_int.h"

/* rl_smtp_reply on bytes the listener sent (then closed): each reply's code and text (NULL:
 * no reply expected, -1), read with a text buffer of cap bytes. */
static void inject_replies(const char *bytes, size_t cap, const int *codes, const char **texts)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(write(sv[1], bytes, strlen(bytes)), (ssize_t)strlen(bytes));
    close(sv[1]);
    struct smtp s = {.fd = sv[0]};
    char t[300];
    cr_assert(cap <= sizeof(t));
    for (size_t i = 0; texts[i] != NULL; i++) {
        cr_assert_eq(rl_smtp_reply(&s, t, cap), codes[i], "reply %zu", i);
        cr_assert_str_eq(t, texts[i]);
    }
    cr_assert_eq(rl_smtp_reply(&s, t, cap), -1);
    close(sv[0]);
}

Test(relay, inject_reply_text_is_printable)
{
    /* found by fuzz_inject_reply: a CR or other control byte inside a reply line reached the
     * text that is logged and kept as the queue's last error; a bad code ends the session */
    inject_replies("250-a\r\n550 5.1.1 bad\rX-Injected: 1\x01\x7f\xff end\r\n2x0 no code\r\n",
                   300, (const int[]){550}, (const char *[]){"550 5.1.1 bad?X-Injected: 1??? end",
                                                           NULL});
}

Test(relay, inject_reply_multiline_and_cut)
{
    inject_replies("220 mail.example.org ESMTP\r\n250-one\r\n250-two\r\n250 three\r\n", 8,
                   (const int[]){220, 250}, (const char *[]){"220 mai", "250 thr", NULL});
}

Test(relay, inject_reply_code_alone)
{
    /* RFC 5321 4.2: a reply's text is optional; "250" CRLF is a whole reply */
    inject_replies("250\r\n354\n250-x\r\n250\r\n", 300, (const int[]){250, 354, 250},
                   (const char *[]){"250", "354", "250", NULL});
}

/* ---- DX hosts from MX RDATA (rl_resolve.c) ---- */

#include "dl_resolve_int.h"

/* The hosts dl_dx_hosts finds for domain without dx= in its record. */
static size_t mx_hosts(const struct canned *mx, struct hosts *h)
{
    struct dl_dns *d = fake_new(mx, 1);
    struct rl_config c = {.connect_timeout = 1};
    /* a resolution's deadline far ahead (lookup-deadline): the MX query gets its time */
    struct dl_resolver r;
    rl_resolver_init(&r, &c, NULL);
    r.dns = d;
    r.deadline_ms = LONG_MAX;
    struct dc_mrec rec = {0};
    struct dl_lookup l = {.rec = &rec};
    memset(h, 0, sizeof(*h));
    dl_dx_hosts(&r, mx->name, &l, h);
    dl_dns_free(d);
    return h->n;
}

Test(relay, mx_names_must_be_host_names)
{
    /* found by fuzz_resolve: any bytes of an MX exchange's labels became the DX host name
     * (spaces, control characters, '@'), which goes to the connect, the certificate check
     * and the log; such an MX is now skipped like a malformed one */
    /* The canned RRs are TXT-shaped: a length byte, then the string. As MX RDATA that byte
     * and the string's first are the preference, the rest the exchange's labels (the root
     * label may be left out: the name ends with the RDATA). */
    static const struct canned good = {"mx.test", DL_DNS_SECURE,
                                       {"\x0a\x02mx\x04mail\x04test", NULL}};
    static const struct canned bad = {"mx.test", DL_DNS_SECURE,
                                      {"\x0a\x05m\rx y\x04test", NULL}};
    static const struct canned at = {"mx.test", DL_DNS_SECURE,
                                     {"\x0a\x05a@b.c\x04test", NULL}};
    struct hosts *h = malloc(sizeof(*h));
    cr_assert_eq(mx_hosts(&good, h), 2);
    cr_expect_str_eq(h->name[0], "mx.mail.test");
    cr_expect(h->mx[0]);
    cr_expect_str_eq(h->name[1], "mx.test");
    cr_expect_eq(mx_hosts(&bad, h), 1, "host %s", h->name[0]);
    cr_expect_str_eq(h->name[0], "mx.test");
    cr_expect_eq(mx_hosts(&at, h), 1, "host %s", h->name[0]);
    free(h);
}

/* metrics-listen is ADDRESS:PORT (IPv6 in brackets), checked when the file is loaded (-n);
 * unset, there is no TCP endpoint, only the Unix socket */
Test(relay, metrics_listen)
{
    struct dc_err err = {0};
    struct rl_config rc;
    cr_assert_eq(conf_load("relay { user = \"root\" }\n", &rc, &err), DC_OK, "%s", err.msg);
    cr_expect_null(rc.metrics_listen, "metrics-listen is on by default: %s", rc.metrics_listen);
    cr_expect_str_eq(rc.metrics_socket, "/run/dime-relay/metrics.sock");
    rl_config_free(&rc);
    cr_expect_eq(conf("relay { user = \"root\"\n metrics-listen = \"127.0.0.1:9426\" }\n", &err),
                 DC_OK, "%s", err.msg);
    memset(&err, 0, sizeof(err));
    cr_expect_eq(conf("relay { user = \"root\"\n metrics-listen = \"9426\" }\n", &err),
                 DC_ERR_FIELD);
    cr_expect(strstr(err.msg, "metrics-listen \"9426\" is not ADDRESS:PORT") != NULL, "%s",
              err.msg);
    char host[64];
    unsigned port = 0;
    cr_expect(rl_config_hostport("[::1]:9426", host, &port));
    cr_expect_str_eq(host, "::1");
    cr_expect_eq(port, 9426);
    static const char *const bad[] = {"127.0.0.1:", ":9426", "127.0.0.1:0", "127.0.0.1:65536",
                                      "127.0.0.1:94x", "[]:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect(!rl_config_hostport(bad[i], host, &port), "accepted %s", bad[i]);
}

/* The dual-mode front is off unless dual-mode-listen names an address; its Postfix target
 * is checked only when it is on (rl_dual.h). */
Test(relay, dual_mode_settings)
{
    struct dc_err err = {0};
    struct rl_config rc;
    cr_assert_eq(conf_load("relay { user = \"root\" }\n", &rc, &err), DC_OK, "%s", err.msg);
    cr_expect_null(rc.dual_mode_listen, "the front is on by default");
    cr_expect_eq(rc.dual_mode_timeout, 300);
    cr_expect_eq(rc.dual_mode_time_limit, 3600);
    rl_config_free(&rc);
    cr_expect_eq(conf("relay { user = \"root\"\n dual-mode-listen = \"0.0.0.0:25\"\n"
                      " dual-mode-postfix = \"unix:/run/postfix-proxy.sock\" }\n", &err),
                 DC_OK, "%s", err.msg);
    cr_expect_eq(conf("relay { user = \"root\"\n dual-mode-listen = \"25\" }\n", &err),
                 DC_ERR_FIELD);
    cr_expect(strstr(err.msg, "dual-mode-listen \"25\" is not ADDRESS:PORT") != NULL, "%s",
              err.msg);
    memset(&err, 0, sizeof(err));
    cr_expect_eq(conf("relay { user = \"root\"\n dual-mode-listen = \"0.0.0.0:25\"\n"
                      " dual-mode-postfix = \"localhost:10025\" }\n", &err),
                 DC_ERR_FIELD);
    cr_expect(strstr(err.msg, "dual-mode-postfix \"localhost:10025\"") != NULL, "%s", err.msg);
}

/* ---- VRFY before a refetch (issue 19, item 6) ---- */

static enum dl_vrfy vrfy_of(const char *const *lines)
{
    struct dc_dmtp_reply rep;
    struct dc_err err = {0};
    dc_dmtp_reply_init(&rep);
    for (size_t i = 0; lines[i] != NULL; i++)
        cr_assert_eq(dc_dmtp_reply_add(&rep, lines[i], strlen(lines[i]), &err), DC_OK, "%s: %s",
                     lines[i], err.msg);
    enum dl_vrfy v = dl_vrfy_answer(&rep);
    dc_dmtp_reply_free(&rep);
    return v;
}

/* Only a one-line 2xx CURRENT keeps the held signet; an UPDATE needs one fingerprint (bare,
 * [fp] as our DX sends it, <fp> as the spec writes it); a DX that does not know VRFY (500,
 * 502), refuses it (576), fails (476) or answers in another form means a fetch. */
Test(relay, vrfy_answer_is_classified)
{
    static const char fp[] = "ZPxr3JX2Y0r8Nqf6x0n5B1vX7Yd9wQk2Lm4Rt6Uy8Io0Pa1Sd3Fg5Hj7Kl9Zx2Cv4Bn6Mq8We0Rt2Yu4Io6Pa8S";
    char upd[3][200];
    snprintf(upd[0], sizeof(upd[0]), "250 UPDATE [%s]", fp);
    snprintf(upd[1], sizeof(upd[1]), "250 UPDATE <%s>", fp);
    snprintf(upd[2], sizeof(upd[2]), "250 UPDATE %s", fp);
    cr_expect_eq(vrfy_of((const char *const[]){"250 CURRENT", NULL}), DL_VRFY_CURRENT);
    cr_expect_eq(vrfy_of((const char *const[]){"250 current", NULL}), DL_VRFY_CURRENT);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(vrfy_of((const char *const[]){upd[i], NULL}), DL_VRFY_UPDATE, "%s", upd[i]);
    static const char *const other[] = {
        "500 command unrecognized", "502 not implemented", "576 no such signet",
        "476 signet temporarily unavailable", "250 OK", "250 CURRENT please", "250 UPDATE",
        "250 UPDATE []", "250 UPDATE [a b]", "250 UPDATE [abc", "250 UPDATE a;b",
        "354 CURRENT", "250 CURRENTLY"};
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
        cr_expect_eq(vrfy_of((const char *const[]){other[i], NULL}), DL_VRFY_OTHER, "%s",
                     other[i]);
    cr_expect_eq(vrfy_of((const char *const[]){"250-CURRENT", "250 CURRENT", NULL}),
                 DL_VRFY_OTHER, "two lines");
    cr_expect_str_eq(dl_vrfy_name(DL_VRFY_CURRENT), "current");
    cr_expect_str_eq(dl_vrfy_name(DL_VRFY_UPDATE), "update");
    cr_expect_str_eq(dl_vrfy_name(DL_VRFY_OTHER), "other");
}

/* The answers are counted by kind in the relay's metrics (hits: current) */
Test(relay, vrfy_answers_are_counted)
{
    rl_count_vrfy(DL_VRFY_CURRENT);
    rl_count_vrfy(DL_VRFY_CURRENT);
    rl_count_vrfy(DL_VRFY_UPDATE);
    rl_count_vrfy(DL_VRFY_OTHER);
    rl_count_vrfy(DL_VRFY_OTHER);
    rl_count_vrfy(DL_VRFY_OTHER);
    struct rl_config mc = {.queue_database = "/nonexistent/dime-test/queue.db",
                            .queue_key_file = "/nonexistent/dime-test/queue.key"};
    struct dc_buf out;
    dc_buf_init(&out);
    rl_metrics_text(&mc, &out);
    dc_buf_putc(&out, '\0');
    const char *t = (const char *)out.data;
    cr_expect(strstr(t, "# TYPE dime_relay_signet_vrfy_total counter\n") != NULL, "%s", t);
    cr_expect(strstr(t, "dime_relay_signet_vrfy_total{answer=\"current\"} 2\n") != NULL, "%s", t);
    cr_expect(strstr(t, "dime_relay_signet_vrfy_total{answer=\"update\"} 1\n") != NULL, "%s", t);
    cr_expect(strstr(t, "dime_relay_signet_vrfy_total{answer=\"other\"} 3\n") != NULL, "%s", t);
    dc_buf_free(&out);
}
