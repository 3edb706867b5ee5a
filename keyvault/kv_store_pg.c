/*
 * kv_store_pg - the PostgreSQL backend of kv_store.h, for a domain served by several nodes
 * whose keyvaults share one store (store = postgresql, store-conninfo; dime-keyvaultd(8)).
 *
 * The tables are those of the SQLite backend under the prefix kv_ (the database may hold the
 * tables of other components too), in the component "keyvault" of dl_pg's schema_version.
 * Every change is one dl_pg_txn transaction at SERIALIZABLE, so changes made at once through
 * two nodes are applied as if one after the other: of two rotations of one user from the
 * same generation one wins and the other finds the generation moved (DC_ERR_ORDER), of two
 * adds of one user the second gets DC_ERR_ARG. Reads are single statements outside a
 * transaction: each sees what was committed when it began, whichever node committed it.
 *
 * Reads a request makes (the user's row, a generation, the domain row) are kept in a cache in
 * this process, and forgotten when PostgreSQL says they changed: triggers on kv_users,
 * kv_generations and kv_domain (schema version 2) send NOTIFY kv_changed with the address
 * (or "*" for the domain, or a TRUNCATE) from whichever transaction changes them, so every
 * writer, a node's keyvault, dimectl, an operator's SQL, is heard. See "The cache" below for
 * what it holds and how stale it can be.
 *
 * What differs from SQLite: a replaced domain row (SOK rollover) is not overwritten with
 * zeros in place; PostgreSQL keeps the old row version until VACUUM removes it (its keys are
 * sealed either way). Losing the server is a temporary failure (dl_pg.h).
 */
#include "kv_store.h"

#include "dl_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cache_slot;

struct pg_store {
    struct kv_store base; /* first: the interface */
    struct dl_pg *pg;
    int version;
    struct cache_slot *cache; /* CACHE_SLOTS */
    int64_t synced;           /* ms: when the last round trip that succeeded began */
};

static const char *const migrations[] = {
    NULL, /* version 0: no tables */
    /* 1: everything version 3 of the SQLite store has */
    "CREATE TABLE kv_meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);"
    "CREATE TABLE kv_domain (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL,"
    "  signet BYTEA NOT NULL, pok BYTEA, enc BYTEA NOT NULL, sok BYTEA,"
    "  sok_perm INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE kv_users (address TEXT PRIMARY KEY, mode INTEGER NOT NULL"
    "  CHECK (mode BETWEEN 1 AND 3), generation BIGINT NOT NULL CHECK (generation >= 1),"
    "  created BIGINT NOT NULL);"
    "CREATE TABLE kv_generations (address TEXT NOT NULL REFERENCES kv_users(address),"
    "  generation BIGINT NOT NULL, mode INTEGER NOT NULL CHECK (mode BETWEEN 1 AND 3),"
    "  fp TEXT NOT NULL, fp_crypto TEXT NOT NULL, signet BYTEA NOT NULL, sealed BYTEA,"
    "  blob BYTEA, created BIGINT NOT NULL, PRIMARY KEY (address, generation));"
    "CREATE INDEX kv_generations_fp ON kv_generations (fp);"
    "CREATE INDEX kv_generations_fp_crypto ON kv_generations (fp_crypto);"
    "CREATE TABLE kv_org_signets (fp TEXT NOT NULL, fp_crypto TEXT NOT NULL,"
    "  signet BYTEA NOT NULL, replaced BIGINT NOT NULL);"
    "CREATE INDEX kv_org_signets_fp ON kv_org_signets (fp);"
    "CREATE INDEX kv_org_signets_fp_crypto ON kv_org_signets (fp_crypto);",
    /* 2: a change of a user's or the domain's rows says so to every node's cache (NOTIFY is
     * sent when, and only if, the transaction commits; one per payload per transaction) */
    "CREATE FUNCTION kv_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    "  IF TG_LEVEL = 'STATEMENT' OR TG_TABLE_NAME = 'kv_domain' THEN"
    "    PERFORM pg_notify('kv_changed', '*');"
    "  ELSIF TG_OP = 'DELETE' THEN PERFORM pg_notify('kv_changed', OLD.address);"
    "  ELSE"
    "    PERFORM pg_notify('kv_changed', NEW.address);"
    "    IF TG_OP = 'UPDATE' AND OLD.address <> NEW.address THEN"
    "      PERFORM pg_notify('kv_changed', OLD.address); END IF;"
    "  END IF; RETURN NULL; END $$;"
    "CREATE TRIGGER kv_users_changed AFTER INSERT OR UPDATE OR DELETE ON kv_users"
    "  FOR EACH ROW EXECUTE FUNCTION kv_changed();"
    "CREATE TRIGGER kv_generations_changed AFTER INSERT OR UPDATE OR DELETE ON kv_generations"
    "  FOR EACH ROW EXECUTE FUNCTION kv_changed();"
    "CREATE TRIGGER kv_domain_changed AFTER INSERT OR UPDATE OR DELETE ON kv_domain"
    "  FOR EACH ROW EXECUTE FUNCTION kv_changed();"
    "CREATE TRIGGER kv_users_emptied AFTER TRUNCATE ON kv_users"
    "  FOR EACH STATEMENT EXECUTE FUNCTION kv_changed();"
    "CREATE TRIGGER kv_generations_emptied AFTER TRUNCATE ON kv_generations"
    "  FOR EACH STATEMENT EXECUTE FUNCTION kv_changed();"
    "CREATE TRIGGER kv_domain_emptied AFTER TRUNCATE ON kv_domain"
    "  FOR EACH STATEMENT EXECUTE FUNCTION kv_changed();",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])) - 1)

static const struct kv_store_ops pg_ops;

/* ---- the cache ----
 *
 * Without it every request costs a round trip to PostgreSQL (the generation it signs or
 * decrypts with) while the single-threaded vault serves nobody else: bench/keyvault measured
 * a fifth of the SQLite store's SIGN rate (BENCHMARKS.md). Kept here: the rows user_get,
 * gen_get (current or numbered), gen_by_fp and domain_get read, as stored, so the private keys
 * in them are sealed (AES-256-GCM under the master key; what PostgreSQL and its backups hold
 * too): the cache holds nothing that is not already on the database server, and the unsealed
 * key of a request is made in secure memory and wiped after it as before. A row that was not
 * found is not kept. Direct-mapped, CACHE_SLOTS rows; a collision only costs a read.
 *
 * Forgotten: the rows of an address when a notification names it, everything on "*" (the
 * domain, a TRUNCATE) and whenever the connection is lost or made again (notifications sent
 * meanwhile are not heard: nothing kept may be answered after that).
 *
 * How stale an answer can be: pending notifications are taken from the socket before every
 * cached answer, so a change is used from the moment its notification has reached this
 * process, normally well under a millisecond after the COMMIT on a LAN. Should notifications
 * stop arriving without the connection failing (a network partition that has not yet timed
 * out), a cached row is only answered within CACHE_FRESH_MS of the start of a round trip that
 * succeeded; otherwise a SELECT 1 goes first, and PostgreSQL sends the notifications of every
 * change committed before it began ahead of its answer (a listening session delivers pending
 * notifications before it reports ready for the next statement). So a request never uses a
 * key generation whose change was committed more than CACHE_FRESH_MS (plus one round trip)
 * before it, even when notifications are lost; without the cache a request already used the
 * row it read, whatever was committed while it was signing. */

#define CACHE_SLOTS 1024
#define CACHE_FRESH_MS 250

enum cache_kind { C_EMPTY, C_USER, C_GEN, C_GEN_FP, C_DOMAIN };

struct cache_slot {
    enum cache_kind kind;
    uint32_t generation; /* C_GEN: as asked (0: the current one) */
    char address[KV_NAME_MAX + 1];
    char fp[KV_FPSTR_LEN + 1]; /* C_GEN_FP: as asked */
    struct kv_user u;
    struct kv_generation g;
    struct kv_domain d;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void slot_clear(struct cache_slot *c)
{
    kv_generation_clear(&c->g);
    kv_domain_clear(&c->d);
    memset(c, 0, sizeof(*c));
}

/* dl_pg's notification callback: an address, "*", or NULL (notifications may be missed). */
static void cache_forget(void *ctx, const char *payload)
{
    struct pg_store *s = ctx;
    for (size_t i = 0; s->cache != NULL && i < CACHE_SLOTS; i++) {
        struct cache_slot *c = &s->cache[i];
        if (c->kind != C_EMPTY && (payload == NULL || strcmp(payload, "*") == 0 ||
                                   strcmp(payload, c->address) == 0))
            slot_clear(c);
    }
    if (payload == NULL)
        s->synced = 0;
}

static struct cache_slot *slot_of(struct pg_store *s, enum cache_kind kind, const char *address,
                                  uint32_t generation, const char *fp)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    const char *parts[] = {address, fp != NULL ? fp : ""};
    for (size_t k = 0; k < 2; k++)
        for (const unsigned char *p = (const unsigned char *)parts[k]; *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
    h = (h ^ (uint64_t)kind) * 1099511628211ULL;
    h = (h ^ generation) * 1099511628211ULL;
    return &s->cache[h % CACHE_SLOTS];
}

/* The kept row for the question, or NULL: after the notifications that have arrived are
 * applied, and only on a connection that answered within CACHE_FRESH_MS (see above). */
static const struct cache_slot *cache_find(struct pg_store *s, enum cache_kind kind,
                                           const char *address, uint32_t generation,
                                           const char *fp)
{
    if (!dl_pg_heard(s->pg))
        return NULL;
    const struct cache_slot *c = slot_of(s, kind, address, generation, fp);
    if (c->kind != kind || strcmp(c->address, address) != 0 || c->generation != generation ||
        strcmp(c->fp, fp != NULL ? fp : "") != 0)
        return NULL;
    int64_t t = mono_ms();
    if (t - s->synced > CACHE_FRESH_MS) {
        struct dc_err ignored = {0};
        if (dl_pg_exec(s->pg, "SELECT 1", NULL, NULL, &ignored) != DC_OK ||
            !dl_pg_heard(s->pg))
            return NULL;
        s->synced = t;
        if (c->kind != kind) /* forgotten by what the round trip brought */
            return NULL;
    }
    return c;
}

/* The slot to keep the answer to a question in, emptied; t: when its read began. */
static struct cache_slot *cache_put(struct pg_store *s, enum cache_kind kind,
                                    const char *address, uint32_t generation, const char *fp,
                                    int64_t t)
{
    struct cache_slot *c = slot_of(s, kind, address, generation, fp);
    slot_clear(c);
    c->kind = kind;
    c->generation = generation;
    snprintf(c->address, sizeof(c->address), "%s", address);
    snprintf(c->fp, sizeof(c->fp), "%s", fp != NULL ? fp : "");
    s->synced = t;
    return c;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    if (p == NULL)
        return NULL;
    uint8_t *b = dc_xmalloc(n + 1);
    memcpy(b, p, n);
    b[n] = 0;
    return b;
}

static void copy_gen(struct kv_generation *to, const struct kv_generation *from)
{
    *to = *from;
    to->signet = dup_bytes(from->signet, from->signet_len);
    to->sealed = dup_bytes(from->sealed, from->sealed_len);
    to->blob = dup_bytes(from->blob, from->blob_len);
}

static void copy_domain(struct kv_domain *to, const struct kv_domain *from)
{
    *to = *from;
    to->signet = dup_bytes(from->signet, from->signet_len);
    to->pok = dup_bytes(from->pok, from->pok_len);
    to->enc = dup_bytes(from->enc, from->enc_len);
    to->sok = dup_bytes(from->sok, from->sok_len);
}

enum dc_status kv_store_open_pg(const char *conninfo, struct kv_store **out, struct dc_err *err)
{
    struct pg_store *s = dc_xcalloc(1, sizeof(*s));
    s->base.ops = &pg_ops;
    const struct dl_pg_opts o = {.what = "keyvault store", .conninfo = conninfo};
    enum dc_status st = dl_pg_open(&o, &s->pg, err);
    if (st == DC_OK)
        st = dl_pg_migrate(s->pg, "keyvault", migrations, SCHEMA_VERSION, &s->version, err);
    if (st == DC_OK) {
        s->cache = dc_xcalloc(CACHE_SLOTS, sizeof(*s->cache));
        st = dl_pg_listen(s->pg, "kv_changed", cache_forget, s, err);
    }
    if (st != DC_OK) {
        dl_pg_close(s->pg);
        free(s->cache);
        free(s);
        return st;
    }
    *out = &s->base;
    return DC_OK;
}

static void pg_close(struct kv_store *bs)
{
    struct pg_store *s = (struct pg_store *)bs;
    dl_pg_close(s->pg);
    cache_forget(s, NULL);
    free(s->cache);
    free(s);
}

static int pg_schema_version(struct kv_store *bs)
{
    return ((struct pg_store *)bs)->version;
}

static struct dl_pg *pg_of(struct kv_store *bs)
{
    return ((struct pg_store *)bs)->pg;
}

/* One row of a query with one text parameter: DC_ERR_NOTFOUND (with notfound as the
 * message) when there is none. */
static enum dc_status one_row(struct dl_pg *pg, const char *sql, const struct dl_pg_args *a,
                              PGresult **r, const char *notfound, struct dc_err *err)
{
    enum dc_status s = dl_pg_exec(pg, sql, a, r, err);
    if (s == DC_OK && dl_pg_rows(*r) == 0) {
        PQclear(*r);
        *r = NULL;
        return dc_fail(err, DC_ERR_NOTFOUND, "%s", notfound);
    }
    return s;
}

/* ---- meta ---- */

static enum dc_status pg_meta_get(struct kv_store *bs, const char *key, uint8_t **val,
                                  size_t *len, struct dc_err *err)
{
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, key);
    PGresult *r;
    char nf[96];
    snprintf(nf, sizeof(nf), "no %.40s setting in the database", key);
    enum dc_status s = one_row(pg_of(bs), "SELECT value FROM kv_meta WHERE key = $1", &a, &r,
                               nf, err);
    if (s == DC_OK) {
        *val = dl_pg_bytes(r, 0, 0, len);
        PQclear(r);
    }
    return s;
}

static enum dc_status pg_meta_put(struct kv_store *bs, const char *key, const uint8_t *val,
                                  size_t len, struct dc_err *err)
{
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, key);
    dl_pg_arg_bytes(&a, val, len);
    /* one statement that may run twice with the same effect: no transaction needed */
    return dl_pg_exec(pg_of(bs), "INSERT INTO kv_meta (key, value) VALUES ($1, $2) "
                      "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", &a, NULL, err);
}

static enum dc_status pg_meta_add(struct kv_store *bs, const char *key, const uint8_t *val,
                                  size_t len, struct dc_err *err)
{
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, key);
    dl_pg_arg_bytes(&a, val, len);
    PGresult *r;
    enum dc_status s = dl_pg_exec(pg_of(bs), "INSERT INTO kv_meta (key, value) VALUES ($1, $2)"
                                  " ON CONFLICT (key) DO NOTHING", &a, &r, err);
    if (s != DC_OK)
        return s;
    long n = dl_pg_changed(r);
    PQclear(r);
    return n == 1 ? DC_OK : dc_fail(err, DC_ERR_ARG, "the %.40s setting exists", key);
}

/* ---- domain ---- */

static void read_domain(const PGresult *r, struct kv_domain *d)
{
    dl_pg_text(r, 0, 0, d->name, KV_NAME_MAX);
    d->signet = dl_pg_bytes(r, 0, 1, &d->signet_len);
    d->pok = dl_pg_bytes(r, 0, 2, &d->pok_len);
    d->enc = dl_pg_bytes(r, 0, 3, &d->enc_len);
    d->sok = dl_pg_bytes(r, 0, 4, &d->sok_len);
    d->sok_perm = (unsigned)dl_pg_int(r, 0, 5);
}

static enum dc_status pg_domain_get(struct kv_store *bs, struct kv_domain *out,
                                    struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    struct pg_store *ps = (struct pg_store *)bs;
    const struct cache_slot *c = cache_find(ps, C_DOMAIN, "", 0, NULL);
    if (c != NULL) {
        copy_domain(out, &c->d);
        return DC_OK;
    }
    int64_t t = mono_ms();
    PGresult *r;
    enum dc_status s = one_row(pg_of(bs), "SELECT name, signet, pok, enc, sok, sok_perm FROM "
                               "kv_domain WHERE id = 1", NULL, &r, "no domain: run 'dimectl "
                               "domain init' or 'dimectl domain import' first", err);
    if (s == DC_OK) {
        read_domain(r, out);
        PQclear(r);
        copy_domain(&cache_put(ps, C_DOMAIN, "", 0, NULL, t)->d, out);
    }
    return s;
}

/* The domain row as d has it (inside the caller's transaction). */
static enum dc_status write_domain(struct dl_pg *pg, const struct kv_domain *d,
                                   struct dc_err *err)
{
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, d->name);
    dl_pg_arg_bytes(&a, d->signet, d->signet_len);
    dl_pg_arg_bytes(&a, d->pok, d->pok_len);
    dl_pg_arg_bytes(&a, d->enc, d->enc_len);
    dl_pg_arg_bytes(&a, d->sok, d->sok_len);
    dl_pg_arg_int(&a, d->sok_perm);
    return dl_pg_exec(pg, "INSERT INTO kv_domain (id, name, signet, pok, enc, sok, sok_perm) "
                      "VALUES (1, $1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET "
                      "name = EXCLUDED.name, signet = EXCLUDED.signet, pok = EXCLUDED.pok, "
                      "enc = EXCLUDED.enc, sok = EXCLUDED.sok, sok_perm = EXCLUDED.sok_perm",
                      &a, NULL, err);
}

struct domain_put {
    const struct kv_domain *d;
    bool replace;
};

static enum dc_status domain_put_txn(struct dl_pg *pg, void *ctx, struct dc_err *err)
{
    const struct domain_put *p = ctx;
    PGresult *r;
    enum dc_status s = dl_pg_exec(pg, "SELECT name FROM kv_domain WHERE id = 1 FOR UPDATE",
                                  NULL, &r, err);
    if (s != DC_OK)
        return s;
    char existing[KV_NAME_MAX + 1] = "";
    bool have = dl_pg_rows(r) > 0;
    if (have)
        dl_pg_text(r, 0, 0, existing, KV_NAME_MAX);
    PQclear(r);
    if (have && !p->replace)
        return dc_fail(err, DC_ERR_ARG, "the vault already holds domain %s", existing);
    if (have && strcmp(existing, p->d->name) != 0)
        return dc_fail(err, DC_ERR_ARG, "the vault holds domain %s, not %s", existing,
                       p->d->name);
    return write_domain(pg, p->d, err);
}

static enum dc_status pg_domain_put(struct kv_store *bs, const struct kv_domain *d,
                                    bool replace, struct dc_err *err)
{
    struct domain_put p = {d, replace};
    return dl_pg_txn(pg_of(bs), domain_put_txn, &p, err);
}

struct rollover {
    const struct kv_domain *d;
    const uint8_t *prev;
    size_t prev_len;
    const char *prev_fp, *prev_fpc;
};

static enum dc_status rollover_txn(struct dl_pg *pg, void *ctx, struct dc_err *err)
{
    const struct rollover *o = ctx;
    PGresult *r;
    enum dc_status s = one_row(pg, "SELECT signet, name FROM kv_domain WHERE id = 1 FOR UPDATE",
                               NULL, &r, "no domain", err);
    if (s != DC_OK)
        return s;
    char name[KV_NAME_MAX + 1];
    dl_pg_text(r, 0, 1, name, KV_NAME_MAX);
    bool same = (size_t)PQgetlength(r, 0, 0) == o->prev_len &&
                memcmp(PQgetvalue(r, 0, 0), o->prev, o->prev_len) == 0 &&
                strcmp(name, o->d->name) == 0;
    PQclear(r);
    if (!same)
        return dc_fail(err, DC_ERR_ORDER, "the org signet changed meanwhile (a concurrent "
                       "rollover?)");
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, o->prev_fp);
    dl_pg_arg_text(&a, o->prev_fpc);
    dl_pg_arg_bytes(&a, o->prev, o->prev_len);
    dl_pg_arg_int(&a, (int64_t)time(NULL));
    s = dl_pg_exec(pg, "INSERT INTO kv_org_signets (fp, fp_crypto, signet, replaced) "
                   "VALUES ($1, $2, $3, $4)", &a, NULL, err);
    return s == DC_OK ? write_domain(pg, o->d, err) : s;
}

static enum dc_status pg_domain_rollover(struct kv_store *bs, const struct kv_domain *d,
                                         const uint8_t *prev, size_t prev_len,
                                         const char *prev_fp, const char *prev_fpc,
                                         struct dc_err *err)
{
    struct rollover o = {d, prev, prev_len, prev_fp, prev_fpc};
    return dl_pg_txn(pg_of(bs), rollover_txn, &o, err);
}

static enum dc_status pg_org_signet_by_fp(struct kv_store *bs, const char *fp, uint8_t **bin,
                                          size_t *len, struct dc_err *err)
{
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, fp);
    PGresult *r;
    enum dc_status s = one_row(pg_of(bs), "SELECT signet FROM kv_org_signets WHERE fp = $1 OR "
                               "fp_crypto = $1 ORDER BY replaced DESC LIMIT 1", &a, &r,
                               "no org signet with that fingerprint", err);
    if (s == DC_OK) {
        *bin = dl_pg_bytes(r, 0, 0, len);
        PQclear(r);
    }
    return s;
}

/* ---- users ---- */

static void read_user(const PGresult *r, int row, struct kv_user *u)
{
    memset(u, 0, sizeof(*u));
    dl_pg_text(r, row, 0, u->address, KV_NAME_MAX);
    u->mode = (enum kv_mode)dl_pg_int(r, row, 1);
    u->generation = (uint32_t)dl_pg_int(r, row, 2);
    u->created = dl_pg_int(r, row, 3);
}

static enum dc_status pg_user_get(struct kv_store *bs, const char *address, struct kv_user *out,
                                  struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    struct pg_store *ps = (struct pg_store *)bs;
    const struct cache_slot *c = cache_find(ps, C_USER, address, 0, NULL);
    if (c != NULL) {
        *out = c->u;
        return DC_OK;
    }
    int64_t t = mono_ms();
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, address);
    PGresult *r;
    char nf[300];
    snprintf(nf, sizeof(nf), "no user %.254s", address);
    enum dc_status s = one_row(pg_of(bs), "SELECT address, mode, generation, created FROM "
                               "kv_users WHERE address = $1", &a, &r, nf, err);
    if (s == DC_OK) {
        read_user(r, 0, out);
        PQclear(r);
        cache_put(ps, C_USER, address, 0, NULL, t)->u = *out;
    }
    return s;
}

static enum dc_status pg_user_list(struct kv_store *bs, struct kv_user **out, size_t *n,
                                   struct dc_err *err)
{
    PGresult *r;
    /* ordered by bytes, as SQLite orders them, whatever the database's collation */
    enum dc_status s = dl_pg_exec(pg_of(bs), "SELECT address, mode, generation, created FROM "
                                  "kv_users ORDER BY address COLLATE \"C\"", NULL, &r, err);
    if (s != DC_OK)
        return s;
    int rows = dl_pg_rows(r);
    struct kv_user *v = dc_xcalloc(rows > 0 ? (size_t)rows : 1, sizeof(*v));
    for (int i = 0; i < rows; i++)
        read_user(r, i, &v[i]);
    PQclear(r);
    *out = v;
    *n = (size_t)rows;
    return DC_OK;
}

static enum dc_status insert_gen(struct dl_pg *pg, const char *address,
                                 const struct kv_generation *g, struct dc_err *err)
{
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, address);
    dl_pg_arg_int(&a, g->generation);
    dl_pg_arg_int(&a, g->mode);
    dl_pg_arg_text(&a, g->fp);
    dl_pg_arg_text(&a, g->fp_crypto);
    dl_pg_arg_bytes(&a, g->signet, g->signet_len);
    dl_pg_arg_bytes(&a, g->sealed, g->sealed_len);
    dl_pg_arg_bytes(&a, g->blob, g->blob_len);
    dl_pg_arg_int(&a, g->created ? g->created : (int64_t)time(NULL));
    return dl_pg_exec(pg, "INSERT INTO kv_generations (address, generation, mode, fp, "
                      "fp_crypto, signet, sealed, blob, created) VALUES ($1, $2, $3, $4, $5, "
                      "$6, $7, $8, $9)", &a, NULL, err);
}

struct user_change {
    const struct kv_user *u;
    const char *address;
    uint32_t prev;
    const struct kv_generation *g;
    uint32_t below;
    size_t removed;
};

static enum dc_status user_add_txn(struct dl_pg *pg, void *ctx, struct dc_err *err)
{
    const struct user_change *c = ctx;
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, c->u->address);
    dl_pg_arg_int(&a, c->u->mode);
    dl_pg_arg_int(&a, c->u->created ? c->u->created : (int64_t)time(NULL));
    enum dc_status s = dl_pg_exec(pg, "INSERT INTO kv_users (address, mode, generation, "
                                  "created) VALUES ($1, $2, 1, $3)", &a, NULL, err);
    if (s == DC_ERR_ARG)
        return dc_fail(err, DC_ERR_ARG, "user %s already exists", c->u->address);
    return s == DC_OK ? insert_gen(pg, c->u->address, c->g, err) : s;
}

static enum dc_status pg_user_add(struct kv_store *bs, const struct kv_user *u,
                                  const struct kv_generation *g, struct dc_err *err)
{
    if (g->generation != 1 || u->generation != 1)
        return dc_fail(err, DC_ERR_ARG, "a new user starts at generation 1");
    struct user_change c = {.u = u, .g = g};
    return dl_pg_txn(pg_of(bs), user_add_txn, &c, err);
}

static enum dc_status user_rotate_txn(struct dl_pg *pg, void *ctx, struct dc_err *err)
{
    const struct user_change *c = ctx;
    struct dl_pg_args a = {0};
    dl_pg_arg_int(&a, c->g->generation);
    dl_pg_arg_int(&a, c->g->mode);
    dl_pg_arg_text(&a, c->address);
    dl_pg_arg_int(&a, c->prev);
    PGresult *r;
    enum dc_status s = dl_pg_exec(pg, "UPDATE kv_users SET generation = $1, mode = $2 WHERE "
                                  "address = $3 AND generation = $4", &a, &r, err);
    if (s != DC_OK)
        return s;
    long n = dl_pg_changed(r);
    PQclear(r);
    if (n != 1)
        return dc_fail(err, DC_ERR_ORDER, "user %s is not at generation %u (changed "
                       "concurrently, or absent)", c->address, c->prev);
    return insert_gen(pg, c->address, c->g, err);
}

static enum dc_status pg_user_rotate(struct kv_store *bs, const char *address, uint32_t prev,
                                     const struct kv_generation *g, struct dc_err *err)
{
    if (g->generation != prev + 1)
        return dc_fail(err, DC_ERR_ARG, "generation %u does not follow %u", g->generation, prev);
    struct user_change c = {.address = address, .prev = prev, .g = g};
    return dl_pg_txn(pg_of(bs), user_rotate_txn, &c, err);
}

static enum dc_status user_retire_txn(struct dl_pg *pg, void *ctx, struct dc_err *err)
{
    struct user_change *c = ctx;
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, c->address);
    dl_pg_arg_int(&a, c->below);
    PGresult *r;
    enum dc_status s = dl_pg_exec(pg, "UPDATE kv_generations SET sealed = NULL, blob = NULL "
                                  "WHERE address = $1 AND generation < $2 AND (sealed IS NOT "
                                  "NULL OR blob IS NOT NULL)", &a, &r, err);
    if (s == DC_OK) {
        c->removed = (size_t)dl_pg_changed(r);
        PQclear(r);
    }
    return s;
}

static enum dc_status pg_user_retire(struct kv_store *bs, const char *address, uint32_t below,
                                     size_t *removed, struct dc_err *err)
{
    struct user_change c = {.address = address, .below = below};
    enum dc_status s = dl_pg_txn(pg_of(bs), user_retire_txn, &c, err);
    if (s == DC_OK)
        *removed = c.removed;
    return s;
}

/* ---- generations ---- */

#define GEN_COLS "generation, mode, fp, fp_crypto, signet, sealed, blob, created"

static void read_gen(const PGresult *r, int row, struct kv_generation *g)
{
    memset(g, 0, sizeof(*g));
    g->generation = (uint32_t)dl_pg_int(r, row, 0);
    g->mode = (enum kv_mode)dl_pg_int(r, row, 1);
    dl_pg_text(r, row, 2, g->fp, KV_FPSTR_LEN);
    dl_pg_text(r, row, 3, g->fp_crypto, KV_FPSTR_LEN);
    g->signet = dl_pg_bytes(r, row, 4, &g->signet_len);
    g->sealed = dl_pg_bytes(r, row, 5, &g->sealed_len);
    g->blob = dl_pg_bytes(r, row, 6, &g->blob_len);
    g->created = dl_pg_int(r, row, 7);
}

/* kind, generation and fp: the question, for the cache (C_GEN with a generation, 0 for the
 * current one, or C_GEN_FP with fp). */
static enum dc_status one_gen(struct kv_store *bs, const char *sql, const struct dl_pg_args *a,
                              const char *address, enum cache_kind kind, uint32_t generation,
                              const char *fp, struct kv_generation *out, struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    struct pg_store *ps = (struct pg_store *)bs;
    const struct cache_slot *c = cache_find(ps, kind, address, generation, fp);
    if (c != NULL) {
        copy_gen(out, &c->g);
        return DC_OK;
    }
    int64_t t = mono_ms();
    PGresult *r;
    char nf[300];
    snprintf(nf, sizeof(nf), "no such key generation of %.254s", address);
    enum dc_status s = one_row(pg_of(bs), sql, a, &r, nf, err);
    if (s == DC_OK) {
        read_gen(r, 0, out);
        PQclear(r);
        copy_gen(&cache_put(ps, kind, address, generation, fp, t)->g, out);
    }
    return s;
}

static enum dc_status pg_gen_get(struct kv_store *bs, const char *address, uint32_t generation,
                                 struct kv_generation *out, struct dc_err *err)
{
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, address);
    if (generation == 0)
        return one_gen(bs, "SELECT " GEN_COLS " FROM kv_generations WHERE address = $1 AND "
                       "generation = (SELECT generation FROM kv_users WHERE address = $1)", &a,
                       address, C_GEN, 0, NULL, out, err);
    dl_pg_arg_int(&a, generation);
    return one_gen(bs, "SELECT " GEN_COLS " FROM kv_generations WHERE address = $1 AND "
                   "generation = $2", &a, address, C_GEN, generation, NULL, out, err);
}

static enum dc_status pg_gen_by_fp(struct kv_store *bs, const char *address, const char *fp,
                                   struct kv_generation *out, struct dc_err *err)
{
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, address);
    dl_pg_arg_text(&a, fp);
    return one_gen(bs, "SELECT " GEN_COLS " FROM kv_generations WHERE address = $1 AND "
                   "(fp = $2 OR fp_crypto = $2)", &a, address, C_GEN_FP, 0, fp, out, err);
}

static enum dc_status pg_gen_list(struct kv_store *bs, const char *address,
                                  struct kv_generation **out, size_t *n, struct dc_err *err)
{
    struct dl_pg_args a = {0};
    dl_pg_arg_text(&a, address);
    PGresult *r;
    enum dc_status s = dl_pg_exec(pg_of(bs), "SELECT " GEN_COLS " FROM kv_generations WHERE "
                                  "address = $1 ORDER BY generation", &a, &r, err);
    if (s != DC_OK)
        return s;
    int rows = dl_pg_rows(r);
    struct kv_generation *v = dc_xcalloc(rows > 0 ? (size_t)rows : 1, sizeof(*v));
    for (int i = 0; i < rows; i++)
        read_gen(r, i, &v[i]);
    PQclear(r);
    *out = v;
    *n = (size_t)rows;
    return DC_OK;
}

/* ---- conversion of the sealed values ---- */

/* Where the sealed values are: a query for name, generation, bytes and row key of each, and
 * the update writing new bytes ($1) by row key ($2, and the generation $3 where keyed). */
static const struct {
    const char *what, *select, *update;
    bool by_gen;
} sealed_cols[] = {
    {"master-check", "SELECT '', 0::int8, value, key FROM kv_meta WHERE key = 'master-check'",
     "UPDATE kv_meta SET value = $1 WHERE key = $2", false},
    {"org-pok", "SELECT name, 0::int8, pok, id::text FROM kv_domain WHERE pok IS NOT NULL",
     "UPDATE kv_domain SET pok = $1 WHERE id = $2::integer", false},
    {"org-enc", "SELECT name, 0::int8, enc, id::text FROM kv_domain WHERE enc IS NOT NULL",
     "UPDATE kv_domain SET enc = $1 WHERE id = $2::integer", false},
    {"org-sok", "SELECT name, 0::int8, sok, id::text FROM kv_domain WHERE sok IS NOT NULL",
     "UPDATE kv_domain SET sok = $1 WHERE id = $2::integer", false},
    {"user-key", "SELECT address, generation, sealed, address FROM kv_generations"
     " WHERE sealed IS NOT NULL", "UPDATE kv_generations SET sealed = $1 WHERE address = $2"
     " AND generation = $3", true},
};

struct reseal {
    struct kv_store *bs;
    unsigned version;
    kv_reseal_fn fn;
    void *ctx;
};

static enum dc_status reseal_col(struct dl_pg *pg, size_t k, const struct reseal *rs,
                                 struct dc_err *err)
{
    PGresult *r;
    enum dc_status s = dl_pg_exec(pg, sealed_cols[k].select, NULL, &r, err);
    for (int i = 0; s == DC_OK && i < dl_pg_rows(r); i++) {
        char name[KV_NAME_MAX + 1], key[KV_NAME_MAX + 1];
        dl_pg_text(r, i, 0, name, KV_NAME_MAX);
        dl_pg_text(r, i, 3, key, KV_NAME_MAX);
        int64_t gen = dl_pg_int(r, i, 1);
        uint8_t *out = NULL;
        size_t ol = 0;
        s = rs->fn(rs->ctx, sealed_cols[k].what, name, (uint32_t)gen,
                   (const uint8_t *)PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2), &out,
                   &ol, err);
        if (s != DC_OK)
            break;
        struct dl_pg_args a = {0};
        dl_pg_arg_bytes(&a, out, ol);
        dl_pg_arg_text(&a, key);
        if (sealed_cols[k].by_gen)
            dl_pg_arg_int(&a, gen);
        s = dl_pg_exec(pg, sealed_cols[k].update, &a, NULL, err);
        free(out);
    }
    if (r != NULL)
        PQclear(r);
    return s;
}

static enum dc_status reseal_txn(struct dl_pg *pg, void *ctx, struct dc_err *err)
{
    const struct reseal *rs = ctx;
    unsigned have;
    /* read again inside: of two nodes starting at once one converts, the other finds it done */
    enum dc_status s = kv_store_seal_version(rs->bs, &have, err);
    if (s == DC_OK && have > rs->version)
        s = dc_fail(err, DC_ERR_FORMAT, "database: sealed values in format %u, this program "
                    "knows %u", have, rs->version);
    if (s != DC_OK || have == rs->version)
        return s;
    for (size_t k = 0; s == DC_OK && k < sizeof(sealed_cols) / sizeof(sealed_cols[0]); k++)
        s = reseal_col(pg, k, rs, err);
    uint8_t nv = (uint8_t)rs->version;
    return s == DC_OK ? pg_meta_put(rs->bs, "seal-version", &nv, 1, err) : s;
}

static enum dc_status pg_reseal(struct kv_store *bs, unsigned version, kv_reseal_fn fn,
                                void *ctx, struct dc_err *err)
{
    unsigned have;
    enum dc_status s = kv_store_seal_version(bs, &have, err);
    if (s != DC_OK || have == version)
        return s;
    struct reseal rs = {bs, version, fn, ctx};
    return dl_pg_txn(pg_of(bs), reseal_txn, &rs, err);
}

static const struct kv_store_ops pg_ops = {
    .close = pg_close,
    .schema_version = pg_schema_version,
    .meta_get = pg_meta_get,
    .meta_put = pg_meta_put,
    .meta_add = pg_meta_add,
    .domain_get = pg_domain_get,
    .domain_put = pg_domain_put,
    .domain_rollover = pg_domain_rollover,
    .org_signet_by_fp = pg_org_signet_by_fp,
    .user_get = pg_user_get,
    .user_list = pg_user_list,
    .user_add = pg_user_add,
    .user_rotate = pg_user_rotate,
    .user_retire = pg_user_retire,
    .gen_get = pg_gen_get,
    .gen_by_fp = pg_gen_by_fp,
    .gen_list = pg_gen_list,
    .reseal = pg_reseal,
};
