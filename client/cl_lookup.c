/*
 * cl_lookup - the recipient's keys, looked up and verified by the client (see cl_lookup.h).
 */
#include "cl_lookup.h"

#include "dl_resolve.h"
#include "dl_tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cl_lookup {
    const struct cl_lookup_conf *conf;
    struct dl_dns *dns;
    SSL_CTX *tls;
};

enum dc_status cl_lookup_open(const struct cl_lookup_conf *conf, struct cl_lookup **out,
                              struct dc_err *err)
{
    *out = NULL;
    bool anchored = conf->dns.n_trust_anchors > 0 ||
                    (conf->dns.trust_anchor_file != NULL && conf->dns.trust_anchor_file[0]);
    if (!anchored) /* without one nothing is secure, and nothing insecure is used */
        return dc_fail(err, DC_ERR_ARG, "no DNSSEC trust anchor (--trust-anchor-file or "
                       "--trust-anchor)");
    struct cl_lookup *lk = dc_xcalloc(1, sizeof(*lk));
    lk->conf = conf;
    enum dc_status s = dl_dns_unbound_new(&conf->dns, &lk->dns, err);
    if (s == DC_OK)
        s = dl_tls_client_ctx(conf->ca_file, &lk->tls, err);
    if (s != DC_OK) {
        cl_lookup_close(lk);
        return s;
    }
    *out = lk;
    return DC_OK;
}

void cl_lookup_close(struct cl_lookup *lk)
{
    if (lk == NULL)
        return;
    dl_dns_free(lk->dns);
    SSL_CTX_free(lk->tls);
    free(lk);
}

static bool same_signet(const struct dc_signet *a, const struct dc_signet *b)
{
    return a->bin_len == b->bin_len && memcmp(a->bin, b->bin, a->bin_len) == 0;
}

enum cl_lookup_result cl_pin(const char *dir, const char *name,
                             const struct dc_signet *verified, bool chained, char *why,
                             size_t wl)
{
    char *path = dc_xasprintf("%s/%s.signet", dir, name);
    struct dc_signet *pinned = NULL;
    struct dc_err e = {0};
    enum cl_lookup_result r = CL_LK_OK;
    bool write = false;
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        write = true; /* first use */
    } else if (dc_signet_load_file(path, &pinned, &e) != DC_OK) {
        snprintf(why, wl, "%s: the pinned signet cannot be read: %s", path, e.msg);
        r = CL_LK_PIN;
    } else if (!same_signet(pinned, verified)) {
        if (chained && verified->type == DC_SIGNET_USER) {
            write = true; /* a rotation: its custody chain from the pinned signet verified */
        } else {
            char fp[DC_FP_B64_LEN + 1], fpc[DC_FP_B64_LEN + 1], vfp[DC_FP_B64_LEN + 1];
            dc_signet_fp(pinned, fp, fpc, NULL);
            dc_signet_fp(verified, vfp, fpc, NULL);
            snprintf(why, wl, "%s: the signet the lookup verified (%s) is not the pinned one "
                     "(%s)%s; nothing sent (remove the pin only when you know why it changed)",
                     path, vfp, fp, verified->type == DC_SIGNET_USER
                                        ? " and no custody chain leads from the pinned one" : "");
            r = CL_LK_PIN;
        }
    }
    if (write) {
        char *a = dc_signet_armor(verified);
        if ((mkdir(dir, 0700) != 0 && errno != EEXIST) ||
            dc_write_file(path, a, strlen(a), 0644, &e) != DC_OK) {
            snprintf(why, wl, "%s: the verified signet cannot be pinned: %s", path,
                     e.code != DC_OK ? e.msg : strerror(errno));
            r = CL_LK_TEMPFAIL;
        }
        free(a);
    }
    dc_signet_free(pinned);
    free(path);
    return r;
}

/* The fingerprint of the pinned user signet, for HIST (empty: none, or unreadable: the pin
 * check reports it). */
static void pinned_fp(const char *dir, const char *name, char fp[DC_FP_B64_LEN + 1])
{
    fp[0] = '\0';
    if (dir == NULL)
        return;
    char *path = dc_xasprintf("%s/%s.signet", dir, name);
    struct dc_signet *s = NULL;
    char fpc[DC_FP_B64_LEN + 1];
    if (dc_signet_load_file(path, &s, NULL) == DC_OK && dc_signet_fp(s, fp, fpc, NULL) != DC_OK)
        fp[0] = '\0';
    dc_signet_free(s);
    free(path);
}

static enum dl_outcome resolve(struct cl_lookup *lk, const char *rcpt, const char *known,
                               struct dl_lookup *l)
{
    const struct cl_lookup_conf *c = lk->conf;
    struct dl_resolver r = {
        .cfg = {.connect_timeout = c->timeout ? c->timeout : 10,
                .lookup_deadline = 4 * (c->timeout ? c->timeout : 10),
                .dx_max_hosts = 3,
                .dx_max_addresses = 4,
                .remote_port = c->dx_port ? c->dx_port : 26,
                .remote_dual_port = 25},
        .connect_to = c->connect_to,
        .dns = lk->dns,
        .tls = lk->tls,
    };
    /* DNSSEC is required: an insecure record could come from whoever answers DNS */
    return dl_resolve(&r, rcpt, true, known[0] ? known : NULL, l);
}

enum cl_lookup_result cl_lookup_peer(struct cl_lookup *lk, const char *rcpt, struct cl_peer *p,
                                     char *why, size_t wl)
{
    memset(p, 0, sizeof(*p));
    const char *dir = lk->conf->pin_dir;
    char known[DC_FP_B64_LEN + 1];
    pinned_fp(dir, rcpt, known);
    struct dl_lookup l;
    enum dl_outcome o = resolve(lk, rcpt, known, &l);
    if (o == DL_OUT_REFUSED && known[0] != '\0') {
        /* no custody chain from the pin: does the signet verify without it? Then the pin is
         * what disagrees; else the lookup's own refusal is the one to report */
        dl_lookup_free(&l);
        o = resolve(lk, rcpt, "", &l);
        if (o == DL_OUT_SECURE) {
            enum cl_lookup_result pr = cl_pin(dir, rcpt, l.user, false, why, wl);
            dl_lookup_free(&l);
            return pr != CL_LK_OK ? pr : CL_LK_PIN;
        }
    }
    enum cl_lookup_result res = CL_LK_OK;
    switch (o) {
    case DL_OUT_SECURE:
        break;
    case DL_OUT_TEMPFAIL:
        res = CL_LK_TEMPFAIL;
        break;
    case DL_OUT_NOT_DIME:
        res = CL_LK_NOT_DIME;
        break;
    default: /* bogus, refused, insecure */
        res = CL_LK_REFUSED;
        break;
    }
    if (res != CL_LK_OK) {
        snprintf(why, wl, "%s", l.reason);
        dl_lookup_free(&l);
        return res;
    }
    /* the org signet is its domain's: an ancestor's whose record stands for the name */
    const char *domain = l.inherited_from[0] ? l.inherited_from : strrchr(rcpt, '@') + 1;
    if (dir != NULL) {
        res = cl_pin(dir, domain, l.org, false, why, wl);
        if (res == CL_LK_OK)
            res = cl_pin(dir, rcpt, l.user, known[0] != '\0', why, wl);
    }
    if (res == CL_LK_OK) {
        p->org = l.org;
        p->user = l.user;
        l.org = l.user = NULL;
    }
    dl_lookup_free(&l);
    return res;
}
