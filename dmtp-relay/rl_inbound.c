/*
 * rl_inbound - checks on inbound DMTP messages. See rl_inbound.h.
 */
#include "rl_inbound.h"

#include "dc_fmap.h"
#include "kv_client.h"
#include "rl_cache.h"
#include "rl_lookup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void result(struct rl_inbound_result *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void result(struct rl_inbound_result *r, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->text, sizeof(r->text), fmt, ap);
    va_end(ap);
    for (char *c = r->text; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            *c = '?';
    r->code = code;
}

void rl_inbound_check(const struct rl_config *cfg, SSL_CTX *client_tls, struct kv_client *kv,
                      const char *mail_domain, const char *rcpt_domain, const uint8_t *p,
                      size_t n, const struct dc_fmap *map, struct rl_inbound_result *res)
{
    memset(res, 0, sizeof(*res));
    struct dc_err e = {0};
    struct dc_dmime *m = NULL;
    struct dc_dmime_reader *r = NULL;
    struct dc_dmime_result *dr = NULL;
    struct dc_dmime_signet_keys *keys = NULL;
    struct rl_cache *cache = NULL;
    struct dl_resolver rv;
    rl_resolver_init(&rv, cfg, client_tls);
    struct dl_lookup l;
    memset(&l, 0, sizeof(l));
    const struct rl_domain *ld = rl_config_domain(cfg, rcpt_domain);
    if (ld == NULL) {
        result(res, 510, "not a local domain");
        return;
    }
    enum dc_status ps = map != NULL ? dc_dmime_parse_mapped(map, &m, &e)
                                    : rl_inbound_parse(p, n, &m, &e);
    if (ps != DC_OK) {
        result(res, 501, "not a D/MIME message: %s", e.msg);
        goto out;
    }
    struct kv_remote kek = {kv, ld->name, 0, NULL};
    struct dc_kek_source ks = {kv_remote_kek, &kek};
    enum dc_status s = dc_dmime_open(m, DC_ACTOR_DESTINATION, &ks, &r, &e);
    if (s != DC_OK) {
        if (kv_client_outage(kv, s))
            result(res, 476, "keyvault unavailable");
        else
            result(res, 576, "cannot open the message as %s: %s", ld->name, e.msg);
        goto out;
    }
    const struct dc_dmime_envelope *env = dc_dmime_envelope(r);
    if (env->recipient == NULL || env->origin == NULL || env->origin_fp == NULL) {
        result(res, 501, "envelope without recipient or origin");
        goto out;
    }
    const char *at = strrchr(env->recipient, '@');
    if (at == NULL || strcasecmp(at + 1, ld->name) != 0 || strlen(env->recipient) > 254) {
        result(res, 510, "invalid recipient: not in %s", ld->name);
        goto out;
    }
    if (strcasecmp(env->origin, mail_domain) != 0) {
        result(res, 578, "the envelope's origin is not the MAIL FROM domain");
        goto out;
    }
    bool exists = false;
    enum kv_mode mode = 0;
    uint32_t gen = 0;
    if ((s = kv_client_account(kv, env->recipient, &exists, &mode, &gen, &e)) != DC_OK) {
        if (kv_client_outage(kv, s)) {
            result(res, 476, "keyvault unavailable");
            goto out;
        }
        exists = false;
    }
    if (!exists) {
        result(res, 510, "invalid recipient");
        goto out;
    }
    bool cached = false;
    /* not the last connection when it closes: the lookup service keeps one open */
    if (rl_cache_open(cfg->cache_database, &cache, &e) != DC_OK) {
        result(res, 470, "origin signet temporarily unavailable (cache)");
        goto out;
    }
    enum dl_outcome o = rl_lookup_cached(&rv, cache, env->origin, ld->require_dnssec, &l, &cached);
    if (o == DL_OUT_TEMPFAIL || o == DL_OUT_BOGUS) {
        char why[sizeof(l.reason)];
        rl_lookup_log_reason(l.reason, why, sizeof(why));
        result(res, 470, "origin signet temporarily unavailable: %s (%.200s)", dl_outcome_name(o),
               why);
        goto out;
    }
    if (o != DL_OUT_SECURE && o != DL_OUT_INSECURE) {
        result(res, 570, "origin signet unavailable: %s", dl_outcome_name(o));
        goto out;
    }
    o = rl_lookup_named_org(&rv, env->origin, env->origin_fp, ld->require_dnssec, o, &l);
    if (o != DL_OUT_SECURE && o != DL_OUT_INSECURE) {
        char why[sizeof(l.reason)];
        rl_lookup_log_reason(l.reason, why, sizeof(why));
        result(res, o == DL_OUT_TEMPFAIL ? 470 : 570, "the origin signet the message names is "
               "unavailable: %s (%.200s)", dl_outcome_name(o), why);
        goto out;
    }
    keys = dc_xcalloc(1, sizeof(*keys));
    if (dc_dmime_keys_from_signets(r, NULL, l.org, keys, &e) != DC_OK) {
        result(res, 575, "invalid origin signet: %s", e.msg);
        goto out;
    }
    s = dc_dmime_decrypt_ex(r, &keys->keys, DC_DMIME_NO_CONTENT, &dr, &e);
    if (s == DC_ERR_SIGNATURE) {
        result(res, 578, "invalid origin signature: %s", e.msg);
        goto out;
    }
    if (s != DC_OK) {
        result(res, 501, "malformed message: %s", e.msg);
        goto out;
    }
    if (dr->origin_full != DC_DSIG_OK) {
        result(res, 578, "invalid origin signature (full: %s)", dc_dmime_sig_name(dr->origin_full));
        goto out;
    }
    snprintf(res->recipient, sizeof(res->recipient), "%s", env->recipient);
    snprintf(res->origin, sizeof(res->origin), "%.255s", env->origin);
    res->code = 250;
out:
    dc_dmime_result_free(dr);
    free(keys);
    dl_lookup_free(&l);
    rl_cache_close(cache);
    dl_dns_give(rv.dns);
    dc_dmime_reader_free(r);
    dc_dmime_free(m);
}
