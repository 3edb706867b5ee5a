/*
 * rl_syndicate - the XSYN reply and whom to ask. See rl_syndicate.h.
 */
#include "rl_syndicate.h"

#include "dc_dmtp.h"

#include <ctype.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void rl_syn_format(const struct rl_pin *pin, char *out, size_t cap)
{
    snprintf(out, cap, RL_SYN_VERB " %s pok=%s fp=%s first=%" PRId64 " seen=%" PRId64
             " how=%s prev=%s", pin->domain, pin->pok, pin->org_fp, pin->first_seen,
             pin->last_seen, pin->how, pin->previous_pok[0] ? pin->previous_pok : "-");
}

/* Copies a token of b64 / name characters into out; false when empty, too long or other. */
static bool token(const char *p, size_t n, char *out, size_t cap, const char *extra)
{
    if (n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)p[i]) && strchr(extra, p[i]) == NULL)
            return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

static bool number(const char *p, size_t n, int64_t *out)
{
    if (n == 0 || n > 18)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i]))
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

enum dc_status rl_syn_parse(const char *text, const char *want, struct rl_syn_view *v,
                            struct dc_err *err)
{
    static const char *const keys[] = {"pok", "fp", "first", "seen", "how", "prev"};
    memset(v, 0, sizeof(*v));
    size_t vl = strlen(RL_SYN_VERB);
    if (strncmp(text, RL_SYN_VERB " ", vl + 1) != 0)
        return dc_fail(err, DC_ERR_FORMAT, "XSYN reply: does not start with " RL_SYN_VERB);
    const char *p = text + vl + 1;
    size_t n = strcspn(p, " ");
    if (!token(p, n, v->domain, sizeof(v->domain), ".-_"))
        return dc_fail(err, DC_ERR_FORMAT, "XSYN reply: bad domain");
    if (want != NULL && strcasecmp(v->domain, want) != 0)
        return dc_fail(err, DC_ERR_FORMAT, "XSYN reply: about another domain");
    p += n;
    bool got[6] = {false};
    while (*p == ' ') {
        p++;
        n = strcspn(p, " ");
        const char *eq = memchr(p, '=', n);
        size_t k = 0, kl = eq ? (size_t)(eq - p) : 0;
        for (; eq != NULL && k < 6; k++)
            if (strlen(keys[k]) == kl && strncmp(p, keys[k], kl) == 0)
                break;
        if (eq == NULL || k == 6 || got[k])
            return dc_fail(err, DC_ERR_FORMAT, "XSYN reply: unknown or repeated field");
        const char *val = eq + 1;
        size_t l = n - kl - 1;
        bool ok = false;
        switch (k) {
        case 0: ok = token(val, l, v->pok, sizeof(v->pok), "+/"); break;
        case 1: ok = token(val, l, v->fp, sizeof(v->fp), "+/"); break;
        case 2: ok = number(val, l, &v->first_seen); break;
        case 3: ok = number(val, l, &v->last_seen); break;
        case 4: ok = token(val, l, v->how, sizeof(v->how), "-"); break;
        case 5:
            ok = (l == 1 && val[0] == '-') ||
                 token(val, l, v->previous_pok, sizeof(v->previous_pok), "+/");
            break;
        }
        if (!ok)
            return dc_fail(err, DC_ERR_FORMAT, "XSYN reply: bad value of %s", keys[k]);
        got[k] = true;
        p += n;
    }
    if (*p != '\0' || !got[0] || !got[1])
        return dc_fail(err, DC_ERR_FORMAT, "XSYN reply: no pok= or fp=");
    return DC_OK;
}

bool rl_syn_serves(const struct rl_config *cfg, const char *domain)
{
    for (size_t i = 0; i < cfg->n_syndicate_for; i++)
        if (strcmp(cfg->syndicate_for[i], "*") == 0 ||
            strcasecmp(cfg->syndicate_for[i], domain) == 0)
            return true;
    return false;
}

int rl_syn_answer(const struct rl_config *cfg, const char *arg, char *text, size_t cap)
{
    char d[256];
    struct dc_err e = {0};
    size_t n = strlen(arg);
    if (n >= 2 && arg[0] == '<' && arg[n - 1] == '>') {
        arg++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(d) || strchr(arg, '@') != NULL) {
        snprintf(text, cap, "XSYN takes a domain: XSYN <domain>");
        return 501;
    }
    memcpy(d, arg, n);
    d[n] = '\0';
    if (dc_dmtp_check_name(d, &e) != DC_OK) {
        snprintf(text, cap, "XSYN: bad domain: %.200s", e.msg);
        return 501;
    }
    if (!rl_syn_serves(cfg, d) || cfg->pin_database == NULL || cfg->pin_database[0] == '\0') {
        snprintf(text, cap, "not a syndicate for %s", d);
        return 550;
    }
    struct rl_pins *p = NULL;
    struct rl_pin pin;
    enum dc_status s = rl_pins_open(cfg->pin_database, true, &p, &e);
    if (s == DC_OK)
        s = rl_pins_get(p, d, &pin, &e);
    rl_pins_close(p);
    if (s == DC_ERR_NOTFOUND) {
        snprintf(text, cap, "no POK observed for %s", d);
        return 550;
    }
    if (s != DC_OK) {
        snprintf(text, cap, "pin database unavailable, try again later");
        return 451;
    }
    rl_syn_format(&pin, text, cap);
    return 250;
}

/* The length of the host part of "host[:port]". */
static size_t memcspn_colon(const char *h, size_t len)
{
    const char *c = memchr(h, ':', len);
    return c != NULL ? (size_t)(c - h) : len;
}

/* Adds h (len bytes) unless it is there already or names this relay itself (its hostname,
 * with or without a port): a relay does not ask itself. */
static void add_host(const struct rl_config *cfg, char hosts[][262], size_t *n, const char *h,
                     size_t len)
{
    if (len == 0 || len >= 262 || *n == RL_SYN_MAX)
        return;
    size_t hl = memcspn_colon(h, len);
    if (cfg->hostname != NULL && strlen(cfg->hostname) == hl &&
        strncasecmp(cfg->hostname, h, hl) == 0)
        return;
    for (size_t i = 0; i < *n; i++)
        if (strlen(hosts[i]) == len && strncasecmp(hosts[i], h, len) == 0)
            return;
    memcpy(hosts[*n], h, len);
    hosts[(*n)++][len] = '\0';
}

size_t rl_syn_hosts(const struct rl_config *cfg, const char *syn, char hosts[][262])
{
    size_t n = 0;
    while (syn != NULL && *syn != '\0') {
        size_t l = strcspn(syn, ", ");
        add_host(cfg, hosts, &n, syn, l);
        syn += l;
        syn += strspn(syn, ", ");
    }
    for (size_t i = 0; i < cfg->n_syndicates; i++)
        add_host(cfg, hosts, &n, cfg->syndicates[i], strlen(cfg->syndicates[i]));
    return n;
}

size_t rl_syn_quorum(const struct rl_config *cfg, size_t n)
{
    if (n == 0 || cfg->syndicate_quorum == 0)
        return 0;
    if (cfg->syndicate_quorum < 0)
        return n / 2 + 1;
    return (size_t)cfg->syndicate_quorum;
}

/* ---- the word kept ---- */

#define SYN_CACHE_N 64

static struct {
    char domain[256];
    char pok[44];
    int r;
    char evidence[600];
    time_t at;
} syn_cache[SYN_CACHE_N];
static pthread_mutex_t syn_cache_mu = PTHREAD_MUTEX_INITIALIZER;

bool rl_syn_cache_get(const char *domain, const char *pok, unsigned ttl, int *r,
                      char *evidence, size_t el)
{
    bool hit = false;
    time_t now = time(NULL);
    pthread_mutex_lock(&syn_cache_mu);
    for (size_t i = 0; i < SYN_CACHE_N && !hit; i++) {
        if (syn_cache[i].at == 0 || now - syn_cache[i].at >= (time_t)ttl ||
            strcasecmp(syn_cache[i].domain, domain) != 0 || strcmp(syn_cache[i].pok, pok) != 0)
            continue;
        *r = syn_cache[i].r;
        snprintf(evidence, el, "%s (kept %lld s)", syn_cache[i].evidence,
                 (long long)(now - syn_cache[i].at));
        hit = true;
    }
    pthread_mutex_unlock(&syn_cache_mu);
    return hit;
}

void rl_syn_cache_put(const char *domain, const char *pok, int r, const char *evidence)
{
    pthread_mutex_lock(&syn_cache_mu);
    size_t at = 0;
    for (size_t i = 0; i < SYN_CACHE_N; i++) {
        if (strcasecmp(syn_cache[i].domain, domain) == 0 && strcmp(syn_cache[i].pok, pok) == 0) {
            at = i;
            break;
        }
        if (syn_cache[i].at < syn_cache[at].at)
            at = i;
    }
    snprintf(syn_cache[at].domain, sizeof(syn_cache[at].domain), "%s", domain);
    snprintf(syn_cache[at].pok, sizeof(syn_cache[at].pok), "%s", pok);
    snprintf(syn_cache[at].evidence, sizeof(syn_cache[at].evidence), "%s", evidence);
    syn_cache[at].r = r;
    syn_cache[at].at = time(NULL);
    pthread_mutex_unlock(&syn_cache_mu);
}
