/*
 * rl_pins - pinned organization keys. See rl_pins.h.
 */
#include "rl_pins.h"

#include "rl_metrics.h"

#include "dc_b64.h"
#include "dc_rollover.h"
#include "dl_log.h"
#include "dl_sqlite.h"

#include <ctype.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define COLS "domain, pok, soks, org_fp, first_seen, last_seen, exp_days, how, previous_pok," \
             " refused, refused_pok, refused_at"
#define SCHEMA "CREATE TABLE IF NOT EXISTS pins(domain TEXT PRIMARY KEY, pok TEXT NOT NULL," \
               " soks TEXT NOT NULL, org_fp TEXT NOT NULL, first_seen INTEGER NOT NULL,"     \
               " last_seen INTEGER NOT NULL, exp_days INTEGER NOT NULL, how TEXT NOT NULL,"  \
               " previous_pok TEXT NOT NULL, refused INTEGER NOT NULL,"                      \
               " refused_pok TEXT NOT NULL, refused_at INTEGER NOT NULL)"

/* the record's syn= of each pin, a table of its own so that stores made before it read as
 * "no syn=" (read-only tools do not migrate anything) */
#define SCHEMA_SYN "CREATE TABLE IF NOT EXISTS pin_syn(domain TEXT PRIMARY KEY, syn TEXT NOT NULL)"

struct rl_pins {
    sqlite3 *db; /* NULL: a read-only open of a file that does not exist (no pins) */
};

const char *rl_pin_verdict_name(enum rl_pin_verdict v)
{
    switch (v) {
    case RL_PIN_UNPINNED: return "unpinned";
    case RL_PIN_NEW: return "new";
    case RL_PIN_SAME: return "same";
    case RL_PIN_ROLLOVER: return "rollover";
    case RL_PIN_MISMATCH: return "mismatch";
    }
    return "?";
}

/* ---- the decision ---- */

enum rl_pin_verdict rl_pin_decide(const struct rl_pin *pin, const struct dc_signet *org,
                                  const char *domain, bool secure, char *why, size_t wl)
{
    uint8_t pok[DC_ED25519_PUB_LEN], pinned[DC_ED25519_PUB_LEN];
    struct dc_err e = {0};
    why[0] = '\0';
    if (pin == NULL)
        return secure ? RL_PIN_NEW : RL_PIN_UNPINNED;
    if (dc_signet_signing_key(org, pok, &e) != DC_OK) {
        snprintf(why, wl, "org signet: %s", e.msg);
        return RL_PIN_MISMATCH;
    }
    if (dc_b64_decode_exact(pin->pok, strlen(pin->pok), pinned, sizeof(pinned), &e) != DC_OK) {
        snprintf(why, wl, "the pinned POK is unreadable: %s", e.msg);
        return RL_PIN_MISMATCH;
    }
    if (memcmp(pok, pinned, sizeof(pok)) == 0)
        return RL_PIN_SAME;
    size_t steps = 0;
    if (dc_rollover_chain(org, domain, pinned, &steps, &e))
        return RL_PIN_ROLLOVER;
    /* (b) of issue 15, the syndicates, may still confirm it: rl_pins_check asks them */
    snprintf(why, wl, "%s", e.msg);
    return RL_PIN_MISMATCH;
}

bool rl_pin_absence_held(const struct rl_pin *pin, int64_t now, int64_t *until)
{
    *until = 0;
    if (pin == NULL || pin->exp_days == 0)
        return false;
    *until = pin->last_seen + (int64_t)pin->exp_days * 86400;
    return now < *until;
}

/* ---- the store ---- */

static enum dc_status db_fail(sqlite3 *db, struct dc_err *err, const char *what)
{
    return dc_fail(err, DC_ERR_IO, "pin database: %s: %s", what, sqlite3_errmsg(db));
}

enum dc_status rl_pins_open(const char *path, bool read_only, struct rl_pins **out,
                            struct dc_err *err)
{
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return dc_fail(err, DC_ERR_ARG, "no pin-database");
    struct rl_pins *p = dc_xcalloc(1, sizeof(*p));
    if (read_only) {
        if (access(path, F_OK) != 0 && errno == ENOENT) {
            *out = p;
            return DC_OK;
        }
        if (sqlite3_open_v2(path, &p->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
            enum dc_status s = db_fail(p->db, err, path);
            rl_pins_close(p);
            return s;
        }
        sqlite3_busy_timeout(p->db, 5000);
        *out = p;
        return DC_OK;
    }
    struct dl_sqlite_opts o = {.what = "pin database", .mode = 0600, .busy_ms = 5000,
                               .synchronous = "FULL"};
    enum dc_status s = dl_sqlite_open(path, &o, &p->db, err);
    char *msg = NULL;
    if (s == DC_OK && (dl_sqlite_exec_retry(p->db, SCHEMA, 5000, &msg) != SQLITE_OK ||
                       dl_sqlite_exec_retry(p->db, SCHEMA_SYN, 5000, &msg) != SQLITE_OK)) {
        s = dc_fail(err, DC_ERR_IO, "pin database: schema: %s", msg ? msg : "?");
        sqlite3_free(msg);
    }
    if (s != DC_OK) {
        rl_pins_close(p);
        return s;
    }
    *out = p;
    return DC_OK;
}

void rl_pins_close(struct rl_pins *p)
{
    if (p == NULL)
        return;
    sqlite3_close(p->db);
    free(p);
}

static void lower(const char *in, char *out, size_t cap)
{
    size_t i = 0;
    for (; in[i] != '\0' && i + 1 < cap; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

static void col_text(sqlite3_stmt *st, int i, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

static void row(sqlite3_stmt *st, struct rl_pin *pin)
{
    memset(pin, 0, sizeof(*pin));
    col_text(st, 0, pin->domain, sizeof(pin->domain));
    col_text(st, 1, pin->pok, sizeof(pin->pok));
    col_text(st, 2, pin->soks, sizeof(pin->soks));
    col_text(st, 3, pin->org_fp, sizeof(pin->org_fp));
    pin->first_seen = sqlite3_column_int64(st, 4);
    pin->last_seen = sqlite3_column_int64(st, 5);
    pin->exp_days = (uint32_t)sqlite3_column_int64(st, 6);
    col_text(st, 7, pin->how, sizeof(pin->how));
    col_text(st, 8, pin->previous_pok, sizeof(pin->previous_pok));
    pin->refused = (uint64_t)sqlite3_column_int64(st, 9);
    col_text(st, 10, pin->refused_pok, sizeof(pin->refused_pok));
    pin->refused_at = sqlite3_column_int64(st, 11);
}

/* The syn= kept for pin->domain, "" when none (or a store from before pin_syn). */
static void get_syn(struct rl_pins *p, struct rl_pin *pin)
{
    sqlite3_stmt *st = NULL;
    pin->syn[0] = '\0';
    if (sqlite3_prepare_v2(p->db, "SELECT syn FROM pin_syn WHERE domain = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return;
    sqlite3_bind_text(st, 1, pin->domain, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        col_text(st, 0, pin->syn, sizeof(pin->syn));
    sqlite3_finalize(st);
}

/* A read-only store made before any pin has no table: no pins either. */
static bool no_table(struct rl_pins *p)
{
    return strstr(sqlite3_errmsg(p->db), "no such table") != NULL;
}

enum dc_status rl_pins_get(struct rl_pins *p, const char *domain, struct rl_pin *pin,
                           struct dc_err *err)
{
    char d[256];
    lower(domain, d, sizeof(d));
    if (p->db == NULL)
        return dc_fail(err, DC_ERR_NOTFOUND, "%s is not pinned", d);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(p->db, "SELECT " COLS " FROM pins WHERE domain = ?", -1, &st,
                           NULL) != SQLITE_OK) {
        if (no_table(p))
            return dc_fail(err, DC_ERR_NOTFOUND, "%s is not pinned", d);
        return db_fail(p->db, err, "select");
    }
    sqlite3_bind_text(st, 1, d, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    enum dc_status s = DC_OK;
    if (rc == SQLITE_ROW) {
        row(st, pin);
        get_syn(p, pin);
    } else if (rc == SQLITE_DONE)
        s = dc_fail(err, DC_ERR_NOTFOUND, "%s is not pinned", d);
    else
        s = db_fail(p->db, err, "select");
    sqlite3_finalize(st);
    return s;
}

static enum dc_status put(struct rl_pins *p, const struct rl_pin *pin, struct dc_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(p->db, "INSERT OR REPLACE INTO pins (" COLS ") VALUES "
                           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
        return db_fail(p->db, err, "insert");
    sqlite3_bind_text(st, 1, pin->domain, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, pin->pok, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, pin->soks, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, pin->org_fp, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, pin->first_seen);
    sqlite3_bind_int64(st, 6, pin->last_seen);
    sqlite3_bind_int64(st, 7, pin->exp_days);
    sqlite3_bind_text(st, 8, pin->how, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, pin->previous_pok, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, (sqlite3_int64)pin->refused);
    sqlite3_bind_text(st, 11, pin->refused_pok, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, pin->refused_at);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_fail(p->db, err, "insert");
    if (sqlite3_prepare_v2(p->db, "INSERT OR REPLACE INTO pin_syn (domain, syn) VALUES (?, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(p->db, err, "insert syn");
    sqlite3_bind_text(st, 1, pin->domain, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, pin->syn, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? DC_OK : db_fail(p->db, err, "insert syn");
}

enum dc_status rl_pins_delete(struct rl_pins *p, const char *domain, struct dc_err *err)
{
    char d[256];
    lower(domain, d, sizeof(d));
    if (p->db == NULL)
        return dc_fail(err, DC_ERR_NOTFOUND, "%s is not pinned", d);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(p->db, "DELETE FROM pins WHERE domain = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return db_fail(p->db, err, "delete");
    sqlite3_bind_text(st, 1, d, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_fail(p->db, err, "delete");
    bool gone = sqlite3_changes(p->db) > 0;
    if (sqlite3_prepare_v2(p->db, "DELETE FROM pin_syn WHERE domain = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, d, -1, SQLITE_TRANSIENT);
        sqlite3_step(st);
        sqlite3_finalize(st);
    }
    return gone ? DC_OK
                                      : dc_fail(err, DC_ERR_NOTFOUND, "%s is not pinned", d);
}

enum dc_status rl_pins_each(struct rl_pins *p, void (*fn)(const struct rl_pin *, void *),
                            void *ctx, struct dc_err *err)
{
    if (p->db == NULL)
        return DC_OK;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(p->db, "SELECT " COLS " FROM pins ORDER BY domain", -1, &st, NULL) !=
        SQLITE_OK)
        return no_table(p) ? DC_OK : db_fail(p->db, err, "select");
    int rc;
    struct rl_pin pin;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        row(st, &pin);
        get_syn(p, &pin);
        fn(&pin, ctx);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? DC_OK : db_fail(p->db, err, "select");
}

/* ---- what the resolver calls ---- */

static void b64key(const uint8_t k[DC_ED25519_PUB_LEN], char out[44])
{
    dc_b64_encode(k, DC_ED25519_PUB_LEN, out, 0);
}

/* The pin's view of org: POK, SOK list, crypto fingerprint. */
static bool describe(const struct dc_signet *org, struct rl_pin *pin)
{
    uint8_t pok[DC_ED25519_PUB_LEN];
    char fp[DC_FP_B64_LEN + 1];
    if (dc_signet_signing_key(org, pok, NULL) != DC_OK ||
        dc_signet_fp(org, fp, pin->org_fp, NULL) != DC_OK)
        return false;
    b64key(pok, pin->pok);
    struct dc_sok soks[DC_SIGNET_MAX_SOKS];
    size_t n = dc_signet_soks(org, soks, DC_SIGNET_MAX_SOKS);
    size_t at = 0;
    pin->soks[0] = '\0';
    for (size_t i = 0; i < n && i < DC_SIGNET_MAX_SOKS; i++) {
        char k[44];
        b64key(soks[i].pub, k);
        at += (size_t)snprintf(pin->soks + at, sizeof(pin->soks) - at, "%s%s/0x%02x",
                               i ? " " : "", k, soks[i].perm);
    }
    return true;
}

bool rl_pins_check(const char *db, bool read_only, const char *domain,
                   const struct dc_signet *org, bool secure, uint32_t exp_days,
                   const struct rl_syn_ask *ask, char *why, size_t wl)
{
    struct rl_pins *p = NULL;
    struct dc_err e = {0};
    struct rl_pin pin, seen;
    char d[256];
    lower(domain, d, sizeof(d));
    memset(&seen, 0, sizeof(seen));
    if (!describe(org, &seen)) {
        snprintf(why, wl, "pin check of %s: the org signet has no readable POK", d);
        return false;
    }
    if (rl_pins_open(db, read_only, &p, &e) != DC_OK) {
        snprintf(why, wl, "pin check of %s: %s", d, e.msg);
        dl_log(LOG_ERR, "pin domain=%s error=\"%s\"", d, e.msg);
        return false;
    }
    enum dc_status s = rl_pins_get(p, d, &pin, &e);
    if (s != DC_OK && s != DC_ERR_NOTFOUND) {
        snprintf(why, wl, "pin check of %s: %s", d, e.msg);
        dl_log(LOG_ERR, "pin domain=%s error=\"%s\"", d, e.msg);
        rl_pins_close(p);
        return false;
    }
    char reason[300];
    enum rl_pin_verdict v = rl_pin_decide(s == DC_OK ? &pin : NULL, org, d, secure, reason,
                                          sizeof(reason));
    int64_t now = time(NULL);
    /* the syndicates: before a first pin, and for a new POK without a rollover link */
    enum rl_syn_result sr = RL_SYN_NONE;
    char evidence[1500] = "";
    if (ask != NULL && v == RL_PIN_NEW)
        sr = ask->confirm(ask->ctx, d, seen.pok, ask->record_syn, evidence, sizeof(evidence));
    else if (ask != NULL && v == RL_PIN_MISMATCH) /* whom the pinned record named */
        sr = ask->confirm(ask->ctx, d, seen.pok, pin.syn, evidence, sizeof(evidence));
    if (v == RL_PIN_NEW && sr == RL_SYN_REFUSED) {
        rl_count_refusal(RL_REFUSE_FIRST_CONTACT);
        dl_log(LOG_ERR, "syndicate refusal domain=%s first-contact pok=%s fp=%s %s: nothing is "
               "pinned, sent or accepted until the domain's syndicates confirm its POK", d,
               seen.pok, seen.org_fp, evidence);
        snprintf(why, wl, "first contact with %s: its syndicates do not confirm POK %.12s... "
                 "(%s)", d, seen.pok, evidence);
        rl_pins_close(p);
        return false;
    }
    if (v == RL_PIN_MISMATCH && sr == RL_SYN_AGREED)
        v = RL_PIN_ROLLOVER;
    bool go = v != RL_PIN_MISMATCH;
    struct rl_pin next = s == DC_OK ? pin : seen;
    switch (v) {
    case RL_PIN_UNPINNED: break;
    case RL_PIN_NEW:
        snprintf(next.domain, sizeof(next.domain), "%s", d);
        next.first_seen = next.last_seen = now;
        next.exp_days = exp_days;
        snprintf(next.syn, sizeof(next.syn), "%s", ask && ask->record_syn ? ask->record_syn : "");
        /* not logged: lookups log no correspondent's name (LOOKUP.md); the store and
         * dime-relayctl pins show it */
        snprintf(next.how, sizeof(next.how), "first-seen");
        break;
    case RL_PIN_ROLLOVER:
        snprintf(next.previous_pok, sizeof(next.previous_pok), "%s", pin.pok);
        snprintf(next.how, sizeof(next.how), sr == RL_SYN_AGREED ? "syndicate" : "rollover");
        if (!read_only && sr == RL_SYN_AGREED)
            dl_log(LOG_NOTICE, "pin domain=%s moved by syndicates old_pok=%s old_fp=%s "
                   "new_pok=%s new_fp=%s %s", d, pin.pok, pin.org_fp, seen.pok, seen.org_fp,
                   evidence);
        else if (!read_only)
            dl_log(LOG_NOTICE, "pin domain=%s rollover old_pok=%s old_fp=%s new_pok=%s "
                   "new_fp=%s", d, pin.pok, pin.org_fp, seen.pok, seen.org_fp);
        /* fall through - the pin follows the signet */
    case RL_PIN_SAME:
        memcpy(next.pok, seen.pok, sizeof(next.pok));
        memcpy(next.soks, seen.soks, sizeof(next.soks));
        memcpy(next.org_fp, seen.org_fp, sizeof(next.org_fp));
        if (secure) { /* exp counts from the last secure sighting */
            next.last_seen = now;
            next.exp_days = exp_days;
            if (ask != NULL) /* the syndicates the domain names now, under a trusted POK */
                snprintf(next.syn, sizeof(next.syn), "%s", ask->record_syn ? ask->record_syn : "");
        }
        break;
    case RL_PIN_MISMATCH:
        rl_count_refusal(RL_REFUSE_POK_MISMATCH);
        next.refused++;
        snprintf(next.refused_pok, sizeof(next.refused_pok), "%s", seen.pok);
        next.refused_at = now;
        dl_log(LOG_ERR, "pin mismatch domain=%s pinned_pok=%s pinned_fp=%s new_pok=%s "
               "new_fp=%s refused=%llu reason=\"%s\"%s%s: possible takeover of the domain's "
               "DNS; nothing is sent to or accepted under the new key until it carries a "
               "rollover signature by the pinned POK, its syndicates confirm it, or "
               "'dime-relayctl pins reset %s'", d, pin.pok, pin.org_fp, seen.pok, seen.org_fp,
               (unsigned long long)next.refused, reason, evidence[0] ? " " : "", evidence, d);
        snprintf(why, wl, "POK of %s contradicts its pin (pinned %.12s..., now %.12s...): %s",
                 d, pin.pok, seen.pok, reason);
        break;
    }
    if (!read_only && v != RL_PIN_UNPINNED && put(p, &next, &e) != DC_OK) {
        dl_log(LOG_ERR, "pin domain=%s error=\"%s\"", d, e.msg);
        if (go) {
            snprintf(why, wl, "pin check of %s: %s", d, e.msg);
            go = false;
        }
    }
    rl_pins_close(p);
    return go;
}

bool rl_pins_absent(const char *db, bool read_only, bool secure, const char *domain, char *why,
                    size_t wl)
{
    struct rl_pins *p = NULL;
    struct dc_err e = {0};
    struct rl_pin pin;
    char d[256];
    lower(domain, d, sizeof(d));
    if (rl_pins_open(db, read_only, &p, &e) != DC_OK) {
        snprintf(why, wl, "pin check of %s: %s", d, e.msg);
        return true;
    }
    enum dc_status s = rl_pins_get(p, d, &pin, &e);
    if (s != DC_OK) {
        rl_pins_close(p);
        if (s == DC_ERR_NOTFOUND)
            return false;
        snprintf(why, wl, "pin check of %s: %s", d, e.msg);
        return true;
    }
    int64_t now = time(NULL), until;
    bool held = rl_pin_absence_held(&pin, now, &until);
    if (held) {
        snprintf(why, wl, "the DIME record of %s disappeared, but its pin's exp=%u keeps the "
                 "domain DIME-required for %lld more seconds (no downgrade)", d, pin.exp_days,
                 (long long)(until - now));
        dl_log(LOG_WARNING, "pin domain=%s record-gone held-until=%lld exp=%u pok=%s", d,
               (long long)until, pin.exp_days, pin.pok);
    } else if (!read_only && secure && rl_pins_delete(p, d, &e) == DC_OK) {
        dl_log(LOG_NOTICE, "pin domain=%s dropped: no record and exp=%u days passed since "
               "%lld; not a DIME domain", d, pin.exp_days, (long long)pin.last_seen);
    }
    rl_pins_close(p);
    return held;
}
