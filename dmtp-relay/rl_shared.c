/*
 * rl_shared - the relay's connections to the shared PostgreSQL state. See rl_shared.h.
 */
#include "rl_shared.h"

#include <pthread.h>
#include <stdlib.h>

/* Schema of component "relay". Each entry takes the version before it to its own. */
static const char *const migrations[] = {
    NULL,
    /* 1: the POK pins, one row per domain (lower case), as the SQLite pins and pin_syn */
    "CREATE TABLE relay_pins (domain TEXT PRIMARY KEY, pok TEXT NOT NULL, soks TEXT NOT NULL,"
    " org_fp TEXT NOT NULL, first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL,"
    " exp_days BIGINT NOT NULL, how TEXT NOT NULL, previous_pok TEXT NOT NULL,"
    " refused BIGINT NOT NULL, refused_pok TEXT NOT NULL, refused_at BIGINT NOT NULL,"
    " syn TEXT NOT NULL)",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])) - 1)

#define POOL_MAX 32 /* idle connections kept; more are closed when given back */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *conninfo; /* NULL: not started */
static struct dl_pg *idle[POOL_MAX];
static int n_idle;

static enum dc_status connect_one(const char *ci, struct dl_pg **out, struct dc_err *err)
{
    const struct dl_pg_opts o = {.what = "relay state", .conninfo = ci};
    return dl_pg_open(&o, out, err);
}

enum dc_status rl_shared_start(const char *ci, struct dc_err *err)
{
    struct dl_pg *pg = NULL;
    int version = 0;
    enum dc_status s = connect_one(ci, &pg, err);
    if (s == DC_OK)
        s = dl_pg_migrate(pg, "relay", migrations, SCHEMA_VERSION, &version, err);
    if (s != DC_OK) {
        dl_pg_close(pg);
        return s;
    }
    conninfo = dc_xstrdup(ci);
    idle[n_idle++] = pg;
    return DC_OK;
}

bool rl_shared_on(void)
{
    return conninfo != NULL;
}

enum dc_status rl_shared_take(struct dl_pg **out, struct dc_err *err)
{
    *out = NULL;
    if (conninfo == NULL)
        return dc_fail(err, DC_ERR_ARG, "relay state: state = postgresql is not started");
    pthread_mutex_lock(&lock);
    if (n_idle > 0)
        *out = idle[--n_idle];
    pthread_mutex_unlock(&lock);
    /* an idle connection that lost its server reconnects on its next statement (dl_pg) */
    return *out != NULL ? DC_OK : connect_one(conninfo, out, err);
}

void rl_shared_give(struct dl_pg *pg)
{
    if (pg == NULL)
        return;
    pthread_mutex_lock(&lock);
    if (n_idle < POOL_MAX) {
        idle[n_idle++] = pg;
        pg = NULL;
    }
    pthread_mutex_unlock(&lock);
    dl_pg_close(pg);
}

void rl_shared_stop(void)
{
    pthread_mutex_lock(&lock);
    while (n_idle > 0)
        dl_pg_close(idle[--n_idle]);
    free(conninfo);
    conninfo = NULL;
    pthread_mutex_unlock(&lock);
}
