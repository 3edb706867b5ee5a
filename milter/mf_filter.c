/*
 * mf_filter - libmilter callbacks of dime-milter (see mf_filter.h).
 *
 * Per connection: the client address (trusted-networks). Per message: the envelope, every
 * header field as received (for the replacement and for rebuilding the message), and the
 * body when the message is converted. Messages that are neither an inbound wrapper for a
 * local recipient nor outbound mail of a local sender are accepted at end of header, before
 * their body is transferred.
 *
 * Header indexes: smfi_chgheader counts the occurrences of one field name (1-based) among
 * the fields the milter was shown. Postfix does not show milters the Received: field it adds
 * itself (test_milter_postfix.sh checks the result in a real mailbox), and it counts the same
 * way. Fields are deleted from the last occurrence to the first so that deleting one never
 * renumbers another still to be deleted. Trace fields (Received) stay. Header values are
 * negotiated with SMFIP_HDR_LEADSPC, so they keep the space after the colon both ways.
 */
#include "mf_filter.h"

#include "dc_crypto.h"
#include "dc_util.h"
#include "kv_client.h"
#include "mf_inbound.h"
#include "mf_inject.h"
#include "mf_queue.h"
#include "mf_strict.h"
#include "mf_metrics.h"
#include "dl_log.h"
#include "lookup_client.h"
#include "mf_author.h"
#include "mf_outbound.h"
#include "mf_route.h"
#include "mf_sender.h"
#include "submit_client.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define AR_FIELD "Authentication-Results"

/* The running configuration: replaced on SIGHUP (mf_filter_reconfig) while sessions run, so
 * every use loads it atomically; a replaced one stays valid until exit (a session may hold
 * its domain policy). */
static const struct mf_config *_Atomic cfg;
static struct mf_injdb *injdb;
static struct mf_queue *pfqueue; /* postfix-queue-directory's helper (NULL: none) */
static atomic_ulong downgrades;

struct hdr {
    char *name, *value; /* value as received (leading space kept when negotiated) */
};

/* A recipient's lookup answer taken at RCPT (rcpt_no_such_user), kept for the routing at end
 * of message. */
struct early {
    bool answered;
    struct lookup_ans ans;
};

struct mf_priv {
    bool trusted_net;
    bool local_submit; /* non-SMTP mail (sendmail(1), pickup): see cb_connect */
    bool inj_client; /* connected from injection-clients */
    bool leadspc;
    unsigned long noreply; /* the SMFIP_NR_* steps negotiated: no reply for them */
    /* the keyvault connection, kept for the session's next message (see session_keyvault) */
    struct kv_client *kv;
    /* message */
    char *sender;
    char *auth;
    char **rcpts; /* as received (for smfi_delrcpt) */
    struct early *early; /* per recipient */
    size_t nrcpt;
    struct hdr *hdrs;
    size_t nhdr;
    bool wrapper; /* first Content-Type is application/x-dime */
    bool our_ar;  /* an Authentication-Results field claims our authserv-id */
    bool ar_gone; /* those fields were deleted (or the whole header replaced) */
    bool ctype_seen;
    enum { DIR_NONE, DIR_IN, DIR_OUT } dir;
    const struct mf_domain *dom;
    const char *signer; /* outbound: the author signing, the sender or the notice-author */
    struct dc_buf body;
    bool too_big;
    bool injected; /* a relay injection (X-DIME-Injection from injection-clients) */
    uint8_t inj_key[MF_INJ_KEY_LEN];
    char inj_id[80];
    /* a repeat let through: the entry's queue id it takes over at end of message ("" none) */
    char inj_takes[MF_QID_MAX + 1];
    /* plain mail claiming a pol=strict domain, held by on-strict-sender = quarantine */
    char strict_hold[MF_STRICT_DOMAIN_MAX + 1];
};

static void msg_reset(struct mf_priv *p)
{
    free(p->sender);
    free(p->auth);
    for (size_t i = 0; i < p->nrcpt; i++) {
        free(p->rcpts[i]);
        if (p->early[i].answered)
            lookup_ans_free(&p->early[i].ans);
    }
    free(p->rcpts);
    free(p->early);
    for (size_t i = 0; i < p->nhdr; i++) {
        free(p->hdrs[i].name);
        free(p->hdrs[i].value);
    }
    free(p->hdrs);
    dc_buf_free(&p->body);
    /* what belongs to the connection stays */
    bool t = p->trusted_net, ls = p->local_submit, ic = p->inj_client, l = p->leadspc;
    unsigned long nr = p->noreply;
    struct kv_client *kv = p->kv;
    memset(p, 0, sizeof(*p));
    p->kv = kv;
    p->trusted_net = t;
    p->local_submit = ls;
    p->inj_client = ic;
    p->leadspc = l;
    p->noreply = nr;
    dc_buf_init(&p->body);
}

static struct mf_priv *priv(SMFICTX *ctx)
{
    return smfi_getpriv(ctx);
}

static const char *qid_of(SMFICTX *ctx)
{
    const char *q = smfi_getsymval(ctx, "i");
    return q && *q ? q : "NOQUEUE";
}

/* Printable ASCII without '%' (libmilter formats reply texts), '"' and parentheses (the text
 * also goes into header comments and quoted strings). */
static void clean(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < ' ' || (unsigned char)*s > '~' || *s == '%' || *s == '"' ||
            *s == '(' || *s == ')' || *s == '\\')
            *s = ' ';
}

/* The filter's own reply: a 451 or 550 with the class digit of esc set to match. */
static sfsistat reply(SMFICTX *ctx, enum mf_action a, const char *esc, const char *text)
{
    char t[240];
    snprintf(t, sizeof(t), "DIME: %s", text);
    clean(t);
    char st[8];
    snprintf(st, sizeof(st), "%c%s", a == MF_REJECT ? '5' : '4', esc[0] == '.' ? esc : esc + 1);
    if (a == MF_REJECT) {
        smfi_setreply(ctx, "550", st, t);
        return SMFIS_REJECT;
    }
    smfi_setreply(ctx, "451", st, t);
    return SMFIS_TEMPFAIL;
}

/* The reply for a refusal because of ev (reject or tempfail). */
static sfsistat reply_event(SMFICTX *ctx, enum mf_action a, enum mf_event ev)
{
    return reply(ctx, a, mf_event_esc(ev), mf_event_reply(ev));
}

/* ---- connection and envelope ---- */

static sfsistat cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                             unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                             unsigned long *pf2, unsigned long *pf3)
{
    unsigned long want = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_DELRCPT |
                         SMFIF_QUARANTINE | SMFIF_CHGFROM;
    if ((f0 & want) != want) {
        dl_log(LOG_ERR, "the MTA does not offer the actions the milter needs (0x%lx of 0x%lx)",
               f0 & want, want);
        return SMFIS_REJECT;
    }
    *pf0 = want;
    /* Header values with their leading space, so that rebuilt fields are byte-exact. The
     * steps whose callbacks always go on get no reply, so the MTA does not wait for one:
     * about 10 round trips fewer per message and milter (one per header field), each a
     * wake-up of the MTA's smtpd and of the milter. RCPT is answered: an unknown user of a
     * DIME domain is refused there (rcpt_no_such_user). */
    unsigned long noreply = SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_HDR | SMFIP_NR_BODY;
    /* DATA and unknown commands have no callback (libmilter would answer CONTINUE to each):
     * the MTA need not send them, which saves a command, its macros and a reply per message.
     * HELO stays (once per session; the miltertest scripts send it). Header fields are
     * always wanted (never SMFIP_NOHDRS): every message is checked for Authentication-Results
     * that claim our authserv-id. */
    unsigned long skip = SMFIP_NODATA | SMFIP_NOUNKNOWN;
    *pf1 = f1 & (SMFIP_HDR_LEADSPC | noreply | skip);
    *pf2 = *pf3 = 0;
    (void)f2;
    (void)f3;
    struct mf_priv *p = dc_xcalloc(1, sizeof(*p));
    dc_buf_init(&p->body);
    p->leadspc = (f1 & SMFIP_HDR_LEADSPC) != 0;
    p->noreply = f1 & noreply;
    smfi_setpriv(ctx, p);
    return SMFIS_CONTINUE;
}

/* What a callback that goes on returns for its step: no reply when that was negotiated. */
static sfsistat go_on(const struct mf_priv *p, unsigned long step)
{
    return p != NULL && (p->noreply & step) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/* An IPv4 or IPv6 client address with port 0: no TCP peer has it. */
static bool port_zero(const _SOCK_ADDR *sa)
{
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)sa)->sin_port == 0;
    if (sa->sa_family == AF_INET6)
        return ((const struct sockaddr_in6 *)(const void *)sa)->sin6_port == 0;
    return false;
}

static sfsistat cb_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
    struct mf_priv *p = priv(ctx);
    if (!p) {
        p = dc_xcalloc(1, sizeof(*p));
        dc_buf_init(&p->body);
        smfi_setpriv(ctx, p);
    }
    /* Mail submitted with sendmail(1) reaches non_smtpd_milters through Postfix's cleanup,
     * which makes up a connection from "localhost" 127.0.0.1 with client port 0 (the
     * {daemon_addr} macro is absent too). No TCP client has port 0, so port 0 means that
     * there was no SMTP client: any local user could have chosen the envelope sender
     * (sendmail -f), and the loopback address proves nothing. Such mail is never trusted by
     * trusted-networks. */
    p->local_submit = port_zero(sa);
    p->trusted_net = !p->local_submit && mf_net_match(cfg->nets, cfg->nnets, sa);
    p->inj_client = !p->local_submit && mf_net_match(cfg->inj_nets, cfg->ninj_nets, sa);
    (void)host;
    return go_on(p, SMFIP_NR_CONN);
}

static sfsistat cb_envfrom(SMFICTX *ctx, char **argv)
{
    struct mf_priv *p = priv(ctx);
    msg_reset(p);
    p->sender = mf_addr_strip(argv[0]);
    const char *a = smfi_getsymval(ctx, "{auth_authen}");
    if (a && *a)
        p->auth = dc_xstrdup(a);
    return go_on(p, SMFIP_NR_MAIL);
}

static void log_route(const char *qid, size_t i, const struct mf_rcpt_facts *f,
                      const struct mf_decision *dec, const struct lookup_ans *ans,
                      const struct dc_err *e);

/* The facts a lookup answer gives mf_route (f->answered set). */
static void facts_of(struct mf_rcpt_facts *f, const struct lookup_ans *a)
{
    f->answered = true;
    f->outcome = a->outcome;
    f->signets = a->user && a->org;
    f->policy = a->policy;
    f->no_user_signet = a->no_user_signet;
    f->no_such_user = a->no_such_user;
}

/* At RCPT: the local domain whose outbound policy will route the message, as cb_eoh will
 * decide (a sender of a local domain with outbound conversion, authenticated by a login that
 * owns the address or in trusted-networks), or NULL. Mail without an SMTP client
 * (local_submit) is routed at end of message only. */
static const struct mf_domain *rcpt_outbound_domain(const struct mf_priv *p)
{
    if (p->local_submit || p->sender == NULL)
        return NULL;
    const struct mf_domain *sd = mf_config_domain(cfg, mf_addr_domain(p->sender));
    if (sd == NULL || !mf_mode_outbound(sd->mode) || (p->auth == NULL && !p->trusted_net))
        return NULL;
    if (p->auth != NULL && !mf_login_owns(&cfg->login_map, p->auth, p->sender))
        return NULL;
    return sd;
}

/* Seconds a lookup at RCPT may take: Postfix gives a milter milter_command_timeout (30 s by
 * default) for RCPT, against milter_content_timeout (300 s) at end of message; a resolution
 * the relay has not finished by then is asked for again at end of message, where it waits for
 * the same resolution (the relay resolves a name once for concurrent askers). */
#define MF_RCPT_LOOKUP_MAX 20

/* Looks up a recipient of outbound mail at once: true when the answer is a definitive "no
 * such user" (mf_route_rcpt's no_user; logged), which refuses this recipient alone while the
 * others go on. Any other answer is kept in early for the routing at end of message, which
 * then asks no second time. */
static bool rcpt_no_such_user(SMFICTX *ctx, const struct mf_priv *p, const struct mf_domain *d,
                              const char *rcpt, struct early *early)
{
    char *bare = mf_addr_strip(rcpt);
    struct mf_rcpt_facts f = {.domain = mf_addr_domain(bare)};
    bool gone = false;
    if (f.domain != NULL && !mf_config_domain(cfg, f.domain)) {
        struct dc_err e = {0};
        unsigned t = cfg->timeout < MF_RCPT_LOOKUP_MAX ? cfg->timeout : MF_RCPT_LOOKUP_MAX;
        early->answered = lookup_query(cfg->lookup_socket, t, bare, d->name, &early->ans, &e) ==
                          DC_OK;
        if (early->answered) {
            facts_of(&f, &early->ans);
            struct mf_decision dec;
            mf_route_rcpt(d, &f, &dec);
            gone = dec.route == MF_ROUTE_REFUSE && dec.no_user;
            if (gone) {
                log_route(qid_of(ctx), p->nrcpt, &f, &dec, &early->ans, &e);
                lookup_ans_free(&early->ans);
                early->answered = false;
            }
        }
    }
    free(bare);
    return gone;
}

static sfsistat cb_envrcpt(SMFICTX *ctx, char **argv)
{
    struct mf_priv *p = priv(ctx);
    struct early early = {0};
    const struct mf_domain *d = rcpt_outbound_domain(p);
    if (d != NULL && rcpt_no_such_user(ctx, p, d, argv[0], &early))
        return reply(ctx, MF_REJECT, MF_NO_USER_ESC, MF_NO_USER_TEXT);
    p->rcpts = dc_xrealloc(p->rcpts, (p->nrcpt + 1) * sizeof(char *));
    p->early = dc_xrealloc(p->early, (p->nrcpt + 1) * sizeof(*p->early));
    p->early[p->nrcpt] = early;
    p->rcpts[p->nrcpt++] = dc_xstrdup(argv[0]);
    return go_on(p, SMFIP_NR_RCPT);
}

static void hdr_append(struct mf_priv *p, const char *name, const char *value)
{
    p->hdrs = dc_xrealloc(p->hdrs, (p->nhdr + 1) * sizeof(*p->hdrs));
    p->hdrs[p->nhdr].name = dc_xstrdup(name);
    p->hdrs[p->nhdr].value = dc_xstrdup(value);
    p->nhdr++;
}

static sfsistat cb_header(SMFICTX *ctx, char *name, char *value)
{
    struct mf_priv *p = priv(ctx);
    hdr_append(p, name, value);
    if (!p->ctype_seen && strcasecmp(name, "Content-Type") == 0) {
        p->ctype_seen = true;
        p->wrapper = mf_wrapper_type(value);
    }
    return go_on(p, SMFIP_NR_HDR);
}

/* Whether an Authentication-Results value names our authserv-id (RFC 8601: CFWS, then the
 * authserv-id, then CFWS, an optional version or ';'). Case-insensitive, as host names are. */
static bool is_our_ar(const char *value)
{
    const char *v = value;
    for (;;) {
        while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
            v++;
        if (*v != '(')
            break;
        for (int depth = 0; *v; v++) {
            if (*v == '\\' && v[1]) {
                v++;
            } else if (*v == '(') {
                depth++;
            } else if (*v == ')' && --depth == 0) {
                v++;
                break;
            }
        }
    }
    size_t n = strlen(cfg->authserv_id);
    if (strncasecmp(v, cfg->authserv_id, n) != 0)
        return false;
    char c = v[n];
    return c == ';' || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '(' || c == '\0';
}

static bool is_our_ar_field(const struct hdr *h)
{
    return strcasecmp(h->name, AR_FIELD) == 0 && is_our_ar(h->value);
}

/* A wrapper the relay injected: X-DIME-Injection (the first one) from an injection-clients
 * address. Elsewhere the field is not looked at: no outside sender can make the milter drop
 * a message by naming a value in it. */
static void injection_of(struct mf_priv *p)
{
    if (!injdb || !p->inj_client || !p->wrapper || p->nrcpt != 1)
        return;
    for (size_t i = 0; i < p->nhdr; i++)
        if (strcasecmp(p->hdrs[i].name, "X-DIME-Injection") == 0) {
            p->injected = mf_inj_key(p->hdrs[i].value, p->inj_key, p->inj_id);
            return;
        }
}

/* Plain mail from outside (not authenticated, not local submission, not from the relay's
 * injection address) claiming, as envelope sender or in From, a domain whose record says
 * pol=strict: on-strict-sender of the first local recipient domain decides (mf_strict.h).
 * SMFIS_CONTINUE unless refused; a quarantine is noted for the end of the message. */
static sfsistat strict_sender(SMFICTX *ctx, struct mf_priv *p, const char *qid)
{
    const struct mf_domain *d = NULL;
    for (size_t i = 0; i < p->nrcpt && d == NULL; i++) {
        char *r = mf_addr_strip(p->rcpts[i]);
        d = mf_config_domain(cfg, mf_addr_domain(r));
        free(r);
    }
    if (d == NULL)
        return SMFIS_CONTINUE; /* not ours to deliver: Postfix refuses to relay it */
    const char *from[MF_STRICT_MAX_DOMAINS];
    size_t nfrom = 0;
    for (size_t i = 0; i < p->nhdr && nfrom < MF_STRICT_MAX_DOMAINS; i++)
        if (strcasecmp(p->hdrs[i].name, "From") == 0)
            from[nfrom++] = p->hdrs[i].value;
    char doms[MF_STRICT_MAX_DOMAINS][MF_STRICT_DOMAIN_MAX + 1];
    size_t n = mf_strict_domains(p->sender, from, nfrom, doms, MF_STRICT_MAX_DOMAINS);
    for (size_t i = 0; i < n; i++) {
        struct lookup_ans ans;
        struct dc_err e = {0};
        struct mf_strict_verdict v;
        char masked[160];
        memset(&ans, 0, sizeof(ans));
        bool answered = lookup_query(cfg->lookup_socket, cfg->timeout, doms[i], d->name, &ans,
                                     &e) == DC_OK;
        mf_strict_decide(d, answered, &ans, &v);
        if (!v.known)
            dl_log(LOG_INFO, "%s: inbound plain claimed=%s policy=unknown action=accept "
                   "reason=\"%s\"", qid, doms[i],
                   mf_addr_mask(answered ? ans.reason : e.msg, masked, sizeof(masked)));
        lookup_ans_free(&ans);
        if (!v.strict)
            continue;
        dl_log(LOG_WARNING, "%s: inbound plain claimed=%s policy=strict event=%s action=%s",
               qid, doms[i], mf_event_name(MF_EV_STRICT_SENDER), mf_action_name(v.action));
        if (v.action == MF_QUARANTINE && p->strict_hold[0] == '\0')
            memcpy(p->strict_hold, doms[i], sizeof(p->strict_hold));
        if (v.action == MF_REJECT || v.action == MF_TEMPFAIL) {
            char *t = dc_xasprintf("the sender domain %s publishes the strict DIME policy "
                                   "pol=strict: its mail comes only as DIME, never as plain "
                                   "SMTP", doms[i]);
            sfsistat r = reply(ctx, v.action, mf_event_esc(MF_EV_STRICT_SENDER), t);
            free(t);
            return r;
        }
    }
    return SMFIS_CONTINUE;
}

/* The local domain whose outbound policy routes a notice, i.e. non-SMTP mail with the null
 * envelope sender (Postfix's bounces with internal_mail_filter_classes = bounce, a vacation
 * reply through sendmail(1)): the domain of its From address, or the local domain that
 * address is a host of (Postfix's bounces come from MAILER-DAEMON@$myhostname), else the
 * first local domain. NULL when none converts outbound mail. */
static const struct mf_domain *notice_domain(const struct mf_priv *p)
{
    const struct mf_domain *d = NULL;
    for (size_t i = 0; i < p->nhdr && d == NULL; i++) {
        if (strcasecmp(p->hdrs[i].name, "From") != 0)
            continue;
        char *a = mf_from_single(p->hdrs[i].value);
        const char *fd = mf_addr_domain(a);
        for (size_t j = 0; fd != NULL && j < cfg->ndomains && d == NULL; j++) {
            const char *n = cfg->domains[j].name;
            size_t fl = strlen(fd), nl = strlen(n);
            if (strcasecmp(fd, n) == 0 ||
                (fl > nl + 1 && fd[fl - nl - 1] == '.' && strcasecmp(fd + fl - nl, n) == 0))
                d = &cfg->domains[j];
        }
        free(a);
    }
    if (d == NULL && cfg->ndomains > 0)
        d = &cfg->domains[0];
    return d != NULL && mf_mode_outbound(d->mode) ? d : NULL;
}

/* An injection already recorded (mf_inject.h, rl_inject.h "The window"): discarded, unless
 * the attempt it was recorded for never reached Postfix's queue. That attempt's queue file
 * is then withdrawn (mf_queue.h) and this repeat goes on in its place: the entry is marked
 * MF_INJ_WITHDRAWN at once (durably), so that a repeat of this repeat is let through too
 * should this one fail in turn before its own end of message. SMFIS_CONTINUE: not a repeat,
 * or one let through. */
static sfsistat repeat_check(SMFICTX *ctx, struct mf_priv *p, const char *qid)
{
    struct dc_err e = {0};
    char first[MF_QID_MAX + 1];
    int seen = mf_injdb_seen(injdb, p->inj_key, first, &e);
    if (seen < 0) {
        dl_log(LOG_ERR, "%s: inbound injection=%s: %s", qid, p->inj_id, e.msg);
        return reply(ctx, MF_TEMPFAIL, ".3.0", "internal error");
    }
    if (seen == 0)
        return SMFIS_CONTINUE;
    enum mf_qstate st = MF_Q_ERROR;
    if (strcmp(first, MF_INJ_WITHDRAWN) != 0 && first[0] != '\0' && pfqueue != NULL)
        st = mf_queue_withdraw(pfqueue, first);
    enum mf_inj_verdict v = mf_inj_repeat(first, pfqueue != NULL, st);
    if (v == MF_INJ_TAKE_OVER && strcmp(first, MF_INJ_WITHDRAWN) != 0) {
        bool dup = false;
        if (mf_injdb_record(injdb, p->inj_key, MF_INJ_WITHDRAWN, first, &dup, &e) != DC_OK) {
            /* the file is gone: the next repeat must not be dropped for want of it */
            dl_log(LOG_ERR, "%s: inbound injection=%s: %s", qid, p->inj_id, e.msg);
            return reply(ctx, MF_TEMPFAIL, ".3.0", "internal error");
        }
        if (dup)
            v = MF_INJ_DISCARD; /* another repeat took it over meanwhile */
    }
    if (v == MF_INJ_TAKE_OVER) {
        snprintf(p->inj_takes, sizeof(p->inj_takes), "%s", MF_INJ_WITHDRAWN);
        dl_log(LOG_NOTICE, "%s: inbound injection=%s action=continue reason=\"repeated "
                           "injection, its first attempt never committed by Postfix (queue file "
                           "withdrawn)\" first-queue-id=%s", qid, p->inj_id,
               strcmp(first, MF_INJ_WITHDRAWN) == 0 ? "none" : first);
        return SMFIS_CONTINUE;
    }
    if (st == MF_Q_ERROR && pfqueue != NULL && first[0] != '\0')
        dl_log(LOG_ERR, "%s: inbound injection=%s: postfix-queue-directory: no answer about "
                        "%s; discarded as before", qid, p->inj_id, first);
    dl_log(LOG_INFO, "%s: inbound injection=%s action=discard reason=\"repeated injection\" "
                     "first-queue-id=%s first-attempt=\"%s\"", qid, p->inj_id,
           first[0] ? first : "unknown", first[0] && pfqueue ? mf_qstate_name(st) : "not checked");
    return SMFIS_DISCARD;
}

static sfsistat cb_eoh(SMFICTX *ctx)
{
    struct mf_priv *p = priv(ctx);
    const char *qid = qid_of(ctx);
    injection_of(p);
    for (size_t i = 0; i < p->nhdr && !p->our_ar; i++)
        p->our_ar = is_our_ar_field(&p->hdrs[i]);
    if (p->injected) {
        sfsistat r = repeat_check(ctx, p, qid);
        if (r != SMFIS_CONTINUE)
            return r;
    }
    if (p->wrapper && p->nrcpt == 1) {
        char *r = mf_addr_strip(p->rcpts[0]);
        const struct mf_domain *d = mf_config_domain(cfg, mf_addr_domain(r));
        free(r);
        if (d && mf_mode_inbound(d->mode)) {
            p->dir = DIR_IN;
            p->dom = d;
            return SMFIS_CONTINUE;
        }
    } else if (p->wrapper && cfg->log_why) {
        dl_log(LOG_INFO, "%s: why: a D/MIME wrapper for %zu recipients is left as it is", qid,
               p->nrcpt);
    }
    const struct mf_domain *sd = mf_config_domain(cfg, mf_addr_domain(p->sender));
    bool trusted = p->auth != NULL || p->trusted_net;
    if (sd == NULL && p->local_submit && p->sender[0] == '\0' && p->nrcpt > 0)
        sd = notice_domain(p); /* a bounce or another notice: see do_outbound */
    /* a local domain's non-SMTP mail without a login is routed too, signed only with
     * sign-local-submissions (do_outbound): else DIME recipients refuse it, others follow
     * on-no-signet */
    if (sd && mf_mode_outbound(sd->mode) && (trusted || p->local_submit) && p->nrcpt > 0) {
        if (p->auth != NULL && !mf_login_owns(&cfg->login_map, p->auth, p->sender)) {
            dl_log(LOG_WARNING, "%s: outbound domain=%s action=reject reason=\"the login does "
                                "not own the sender address\"", qid, sd->name);
            char *t = dc_xasprintf("the login %.64s does not own the sender address %.100s; "
                                   "nothing signed", p->auth, p->sender);
            sfsistat r = reply(ctx, MF_REJECT, ".7.1", t);
            free(t);
            return r;
        }
        p->dir = DIR_OUT;
        p->dom = sd;
        return SMFIS_CONTINUE;
    }
    if (cfg->log_why)
        dl_log(LOG_INFO, "%s: why: not converted (%s)", qid,
               !sd ? "sender not in a local domain"
               : !mf_mode_outbound(sd->mode) ? "outbound conversion off for the domain"
               : !trusted ? "sender neither authenticated nor in trusted-networks"
                          : "no recipients");
    if (p->auth == NULL && !p->local_submit && !p->inj_client) {
        sfsistat r = strict_sender(ctx, p, qid);
        if (r != SMFIS_CONTINUE)
            return r;
    }
    /* an injection is recorded at end of message even when it is not converted, a field
     * claiming our verdict is deleted there (header changes are made at end of message), and
     * a quarantine is asked for there */
    return p->injected || p->our_ar || p->strict_hold[0] ? SMFIS_CONTINUE : SMFIS_ACCEPT;
}

static sfsistat cb_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
    struct mf_priv *p = priv(ctx);
    if (p->too_big || p->body.len + len > cfg->max_message_size) {
        p->too_big = true;
        dc_buf_free(&p->body);
        dc_buf_init(&p->body);
        return go_on(p, SMFIP_NR_BODY);
    }
    dc_buf_append(&p->body, chunk, len);
    return go_on(p, SMFIP_NR_BODY);
}

/* ---- inbound ---- */

/* Deletes the fields selected by del (by index into p->hdrs), last occurrence first. */
static int delete_fields(SMFICTX *ctx, struct mf_priv *p, const bool *del)
{
    for (size_t i = p->nhdr; i-- > 0;) {
        if (!del[i])
            continue;
        int idx = 0;
        for (size_t j = 0; j <= i; j++)
            if (strcasecmp(p->hdrs[j].name, p->hdrs[i].name) == 0)
                idx++;
        if (smfi_chgheader(ctx, p->hdrs[i].name, idx, NULL) != MI_SUCCESS)
            return -1;
    }
    return 0;
}

/* Deletes every Authentication-Results field that claims our authserv-id, once per message:
 * whatever path the message takes, no verdict of ours reaches a mailbox unless we made it. */
static int strip_our_ar(SMFICTX *ctx, struct mf_priv *p, const char *qid)
{
    if (!p->our_ar || p->ar_gone)
        return 0;
    bool *del = dc_xcalloc(p->nhdr, sizeof(bool));
    size_t n = 0;
    for (size_t i = 0; i < p->nhdr; i++)
        n += del[i] = is_our_ar_field(&p->hdrs[i]);
    int rc = delete_fields(ctx, p, del);
    free(del);
    p->ar_gone = rc == 0;
    if (rc == 0)
        dl_log(LOG_NOTICE, "%s: deleted=%zu reason=\"Authentication-Results with our "
                           "authserv-id from outside\"", qid, n);
    return rc;
}

/* A header value for smfi_addheader: folding with LF only, without the final line end, with
 * the leading space only when the MTA keeps it (SMFIP_HDR_LEADSPC). */
static char *milter_value(const struct mf_priv *p, const char *v, size_t len)
{
    if (!p->leadspc && len > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        len--;
    }
    char *out = dc_xmalloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++)
        if (!(v[i] == '\r' && i + 1 < len && v[i + 1] == '\n'))
            out[o++] = v[i];
    while (o > 0 && (out[o - 1] == '\n' || out[o - 1] == '\r'))
        o--;
    out[o] = '\0';
    return out;
}

static int insert_ar(SMFICTX *ctx, const struct mf_priv *p, const char *text)
{
    char *v = dc_xasprintf("%s%s; %s", p->leadspc ? " " : "", cfg->authserv_id, text);
    int rc = smfi_insheader(ctx, 0, AR_FIELD, v);
    free(v);
    return rc == MI_SUCCESS ? 0 : -1;
}

/* Replaces header and body with the rebuilt message; -1 when libmilter refused a step. */
static int replace_message(SMFICTX *ctx, struct mf_priv *p, const struct mf_in_result *r)
{
    bool *del = dc_xcalloc(p->nhdr ? p->nhdr : 1, sizeof(bool));
    for (size_t i = 0; i < p->nhdr; i++)
        del[i] = strcasecmp(p->hdrs[i].name, "Received") != 0;
    int rc = delete_fields(ctx, p, del);
    free(del);
    p->ar_gone = rc == 0;
    const char *m = (const char *)r->mime;
    size_t len = r->mime_len, off = 0;
    while (rc == 0 && off < len) {
        const char *line = m + off;
        if (line[0] == '\n' || (line[0] == '\r' && off + 1 < len && line[1] == '\n')) {
            off += line[0] == '\r' ? 2 : 1;
            break; /* the body starts */
        }
        /* one field: this line and its continuation lines */
        size_t end = off;
        do {
            const char *nl = memchr(m + end, '\n', len - end);
            end = nl ? (size_t)(nl - m) + 1 : len;
        } while (end < len && (m[end] == ' ' || m[end] == '\t'));
        const char *colon = memchr(line, ':', end - off);
        if (!colon || colon == line) {
            rc = -1;
            break;
        }
        size_t nl = (size_t)(colon - line);
        while (nl > 0 && (line[nl - 1] == ' ' || line[nl - 1] == '\t'))
            nl--;
        char *name = dc_xstrndup(line, nl);
        char *value = milter_value(p, colon + 1, end - (size_t)(colon + 1 - m));
        /* a field claiming our own verdict inside the message is never passed on */
        if (!(strcasecmp(name, AR_FIELD) == 0 && is_our_ar(value)) &&
            smfi_addheader(ctx, name, value) != MI_SUCCESS)
            rc = -1;
        free(name);
        free(value);
        off = end;
    }
    if (rc == 0 && smfi_replacebody(ctx, (unsigned char *)(uintptr_t)(m + off), (int)(len - off)) !=
                       MI_SUCCESS)
        rc = -1;
    return rc;
}

static sfsistat inbound_failure(SMFICTX *ctx, struct mf_priv *p, const char *qid,
                                const char *rcpt_dom, enum mf_event ev, const char *reason,
                                const char *author)
{
    enum mf_action a = mf_policy_inbound(p->dom, ev);
    char masked[160];
    dl_log(LOG_WARNING, "%s: inbound domain=%s result=%s event=%s action=%s reason=\"%s\"",
           qid, rcpt_dom, mf_event_ar_result(ev), mf_event_name(ev), mf_action_name(a),
           mf_addr_mask(reason, masked, sizeof(masked)));
    if (a == MF_REJECT || a == MF_TEMPFAIL)
        return reply_event(ctx, a, ev);
    /* accept and quarantine: the wrapper goes on untouched, marked as failed, and no field
     * that claims our verdict survives */
    int rc = strip_our_ar(ctx, p, qid);
    char why[220];
    snprintf(why, sizeof(why), "%s", reason);
    clean(why);
    char *text = author ? dc_xasprintf("dime=%s reason=\"%s\" header.from=%s",
                                       mf_event_ar_result(ev), why, author)
                        : dc_xasprintf("dime=%s reason=\"%s\"", mf_event_ar_result(ev), why);
    if (rc == 0)
        rc = insert_ar(ctx, p, text);
    free(text);
    if (rc == 0 && a == MF_QUARANTINE && smfi_quarantine(ctx, "DIME verification failed") !=
                                             MI_SUCCESS)
        rc = -1;
    if (rc != 0) {
        dl_log(LOG_ERR, "%s: inbound: the MTA refused a header change", qid);
        return reply(ctx, MF_TEMPFAIL, ".3.0", "internal error");
    }
    return SMFIS_ACCEPT;
}

/* The keyvault for this message, with the account of user: the connection kept from the
 * session's previous message first, else (none, or the keyvault closed it meanwhile, e.g. a
 * restart) a new one; NULL when the keyvault cannot be reached or fails. The keyvault checks
 * the peer's uid on each request, so a kept connection grants nothing a new one would not. */
static struct kv_client *session_keyvault(struct mf_priv *p, const char *user, bool *exists,
                                          enum kv_mode *mode, uint32_t *gen, struct dc_err *e)
{
    if (p->kv != NULL) {
        if (kv_client_account(p->kv, user, exists, mode, gen, e) == DC_OK)
            return p->kv;
        kv_client_close(p->kv);
        p->kv = NULL;
        memset(e, 0, sizeof(*e));
    }
    if (kv_client_connect(cfg->keyvault_socket, &p->kv, e) != DC_OK) {
        p->kv = NULL;
        return NULL;
    }
    if (kv_client_account(p->kv, user, exists, mode, gen, e) != DC_OK) {
        kv_client_close(p->kv);
        p->kv = NULL;
    }
    return p->kv;
}

/* After a message: the connection is kept only when its last request succeeded (a failed
 * or cut signing stream leaves nothing behind for the next message). */
static void kv_done(struct mf_priv *p)
{
    if (p->kv != NULL && kv_client_status(p->kv) != KV_OK) {
        kv_client_close(p->kv);
        p->kv = NULL;
    }
}

/* The verified author becomes the envelope sender (Return-Path at delivery), instead of the
 * relay's null sender: what Sieve's envelope test, vacation replies and bounces use. Only
 * called after mf_inbound_open passed (author signature checked against the author's signet,
 * From naming the author). An address that cannot stand in MAIL FROM as it is (a quoted local
 * part, 8-bit) keeps the null sender. -1 when the MTA refused the change. */
static int author_sender(SMFICTX *ctx, const char *qid, const char *author)
{
    const char *at = author != NULL ? strrchr(author, '@') : NULL;
    bool ok = at != NULL && at != author && at[1] != '\0' && strlen(author) <= 254;
    for (const char *c = author; ok && *c; c++)
        ok = *c > ' ' && *c <= '~' && strchr("<>()[]\\,;:\"", *c) == NULL;
    if (!ok) {
        dl_log(LOG_NOTICE, "%s: inbound: the author address cannot be the envelope sender; "
                           "the null sender stays", qid);
        return 0;
    }
    char *a = dc_xasprintf("<%s>", author);
    int rc = smfi_chgfrom(ctx, a, NULL) == MI_SUCCESS ? 0 : -1;
    free(a);
    return rc;
}

static sfsistat do_inbound(SMFICTX *ctx, struct mf_priv *p, const char *qid)
{
    char *rcpt = mf_addr_strip(p->rcpts[0]);
    const char *rdom = mf_addr_domain(rcpt);
    sfsistat ret;
    struct kv_client *kv = NULL;
    struct dc_err e = {0};
    bool exists = false;
    enum kv_mode mode = 0;
    uint32_t gen = 0;
    if ((kv = session_keyvault(p, rcpt, &exists, &mode, &gen, &e)) == NULL) {
        ret = inbound_failure(ctx, p, qid, rdom, MF_EV_KEYVAULT, "keyvault unavailable", NULL);
        goto out;
    }
    if (!exists || mode != KV_MODE_TRUSTFUL) {
        dl_log(LOG_INFO, "%s: inbound domain=%s result=none action=unchanged reason=\"%s\"", qid,
               rdom, !exists ? "no account" : kv_mode_name(mode));
        ret = SMFIS_ACCEPT;
        goto out; /* a field claiming our verdict goes at end of message (cb_eom) */
    }
    if (p->too_big) {
        ret = inbound_failure(ctx, p, qid, rdom, MF_EV_VERIFY, "message too large", NULL);
        goto out;
    }
    struct mf_in_result r;
    mf_inbound_open(cfg, p->dom, kv, rcpt, p->body.data, p->body.len, &r);
    if (!r.pass && r.event == MF_EV_VERIFY && kv_client_migrated(kv)) {
        /* the account became Trustful from Paranoid or Cautious at its current generation
         * (daemonlib/ACCOUNT.md, "Migration"): mail a sender sealed to an earlier one opens
         * only on the user's device, so it goes on as the untouched wrapper, as it would to
         * a Paranoid account, which the device checks */
        dl_log(LOG_INFO, "%s: inbound domain=%s result=none action=unchanged reason=\"migrated "
               "to trustful at generation %u; not opened with it: %s\"", qid, rdom, gen,
               r.reason);
        mf_in_result_free(&r);
        ret = SMFIS_ACCEPT;
        goto out;
    }
    if (!r.pass) {
        ret = inbound_failure(ctx, p, qid, rdom, r.event, r.reason, r.author);
        mf_in_result_free(&r);
        goto out;
    }
    char *ar = dc_xasprintf("dime=pass header.from=%s (author signet %s; origin %s signet %s)",
                            r.author, r.author_fp, r.origin ? r.origin : "?", r.origin_fp);
    int rc = replace_message(ctx, p, &r);
    if (rc == 0)
        rc = insert_ar(ctx, p, ar);
    if (rc == 0)
        rc = author_sender(ctx, qid, r.author);
    free(ar);
    if (rc != 0) {
        dl_log(LOG_ERR, "%s: inbound: the MTA refused a header or body change", qid);
        ret = reply(ctx, MF_TEMPFAIL, ".3.0", "internal error");
    } else {
        dl_log(LOG_INFO, "%s: inbound domain=%s result=pass origin=%s size=%zu", qid, rdom,
               r.origin ? r.origin : "?", r.mime_len);
        ret = SMFIS_ACCEPT;
    }
    mf_in_result_free(&r);
out:
    kv_done(p);
    free(rcpt);
    return ret;
}

/* ---- outbound ---- */

/* The message as received: the header fields, an empty line and the body (CR LF). */
static uint8_t *rebuild_original(const struct mf_priv *p, size_t *len)
{
    struct dc_buf b;
    dc_buf_init(&b);
    for (size_t i = 0; i < p->nhdr; i++) {
        if (is_our_ar_field(&p->hdrs[i]))
            continue; /* deleted from Postfix's copy as well (strip_our_ar) */
        dc_buf_printf(&b, "%s:", p->hdrs[i].name);
        const char *v = p->hdrs[i].value;
        if (!p->leadspc)
            dc_buf_putc(&b, ' ');
        for (; *v; v++) {
            if (*v == '\n' && (v == p->hdrs[i].value || v[-1] != '\r'))
                dc_buf_putc(&b, '\r');
            dc_buf_putc(&b, (uint8_t)*v);
        }
        dc_buf_append(&b, "\r\n", 2);
    }
    dc_buf_append(&b, "\r\n", 2);
    dc_buf_append(&b, p->body.data, p->body.len);
    return dc_buf_steal(&b, len);
}

/* The Message-ID value unfolded and trimmed, "" when absent or unusable. */
static char *message_id(const struct mf_priv *p)
{
    for (size_t i = 0; i < p->nhdr; i++) {
        if (strcasecmp(p->hdrs[i].name, "Message-ID") != 0)
            continue;
        const char *v = p->hdrs[i].value;
        char *out = dc_xmalloc(strlen(v) + 1);
        size_t o = 0;
        for (; *v; v++)
            if (*v != '\r' && *v != '\n')
                out[o++] = *v == '\t' ? ' ' : *v;
        out[o] = '\0';
        size_t s = 0;
        while (out[s] == ' ')
            s++;
        while (o > s && out[o - 1] == ' ')
            o--;
        memmove(out, out + s, o - s);
        out[o - s] = '\0';
        if (!submit_msgid_ok(out, strlen(out)))
            out[0] = '\0';
        return out;
    }
    return dc_xstrdup("");
}

/* The log line for one recipient's route (e: the lookup error when there was no answer). */
static void log_route(const char *qid, size_t i, const struct mf_rcpt_facts *f,
                      const struct mf_decision *dec, const struct lookup_ans *ans,
                      const struct dc_err *e)
{
    const char *rd = f->domain;
    char masked[160]; /* the lookup's text comes from elsewhere: no address in the log */
    if (rd != NULL && f->local) {
        mf_count_recipient(MF_COUNT_LOCAL);
        dl_log(LOG_INFO, "%s: outbound rcpt=%zu domain=%s route=local", qid, i + 1, rd);
    } else if (rd == NULL || !f->answered) {
        mf_count_recipient(MF_COUNT_POLICY);
        dl_log(LOG_WARNING, "%s: outbound rcpt=%zu domain=%s event=%s action=%s%s%.100s%s",
               qid, i + 1, rd ? rd : "-", mf_event_name(dec->event),
               mf_action_name(dec->action), rd ? " reason=\"" : "",
               rd ? mf_addr_mask(e->msg, masked, sizeof(masked)) : "", rd ? "\"" : "");
    } else if (dec->route == MF_ROUTE_DIME) {
        mf_count_recipient(MF_COUNT_DIME);
        dl_log(LOG_INFO, "%s: outbound rcpt=%zu domain=%s outcome=%s route=dime", qid,
               i + 1, rd, lookup_outcome_name(ans->outcome));
    } else if (dec->route == MF_ROUTE_LEGACY) {
        unsigned long total = atomic_fetch_add(&downgrades, 1) + 1;
        mf_count_recipient(MF_COUNT_DOWNGRADE);
        dl_log(LOG_NOTICE,
               "%s: outbound rcpt=%zu domain=%s outcome=%s route=legacy downgrade=yes "
               "action=%s downgrades=%lu", qid, i + 1, rd, lookup_outcome_name(ans->outcome),
               mf_action_name(dec->action), total);
    } else {
        mf_count_recipient(MF_COUNT_POLICY);
        dl_log(LOG_WARNING, "%s: outbound rcpt=%zu domain=%s outcome=%s event=%s action=%s%s%s%s%s%s",
               qid, i + 1, rd, lookup_outcome_name(ans->outcome), mf_event_name(dec->event),
               mf_action_name(dec->action), dec->strict ? " policy=strict" : "",
               dec->no_user ? " no-such-user=yes" : "",
               ans->reason[0] ? " reason=\"" : "",
               mf_addr_mask(ans->reason, masked, sizeof(masked)), ans->reason[0] ? "\"" : "");
    }
}

/* Routes every recipient (mf_route decides; the lookups and the log lines are here): route[i]
 * per recipient, the D/MIME ones listed in dime (plan->ndime of them). */
static void route_rcpts(struct mf_priv *p, const char *qid, char **bare,
                        struct lookup_ans *ans, enum mf_route *route,
                        struct mf_out_rcpt *dime, struct mf_route_plan *plan)
{
    const struct mf_domain *d = p->dom;
    for (size_t i = 0; i < p->nrcpt; i++) {
        struct dc_err e = {0};
        struct mf_decision dec;
        bare[i] = mf_addr_strip(p->rcpts[i]);
        struct mf_rcpt_facts f = {.domain = mf_addr_domain(bare[i])};
        f.local = f.domain != NULL && mf_config_domain(cfg, f.domain);
        if (f.domain != NULL && !f.local) {
            if (p->early[i].answered) { /* asked at RCPT: the answer moves here */
                ans[i] = p->early[i].ans;
                p->early[i].answered = false;
                f.answered = true;
            } else {
                f.answered = lookup_query(cfg->lookup_socket, cfg->timeout, bare[i], d->name,
                                          &ans[i], &e) == DC_OK;
            }
            if (f.answered)
                facts_of(&f, &ans[i]);
        }
        mf_route_rcpt(d, &f, &dec);
        route[i] = dec.route;
        if (dec.route == MF_ROUTE_DIME) {
            dime[plan->ndime].addr = bare[i];
            dime[plan->ndime].ans = &ans[i];
        }
        mf_route_note(plan, &dec);
        log_route(qid, i, &f, &dec, &ans[i], &e);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The queue id to submit under (mf_inject.h, mf_injdb_first_qid): qid, or the one a
 * byte-identical message from the same sender to the same DIME recipients was first handed
 * to the relay under (a client's new attempt after a 4xx). Without an injection database or
 * a Message-ID, or when the record fails, qid (then such a new attempt may be delivered
 * twice, as before). */
static const char *first_qid(const struct mf_priv *p, const char *qid, const char *mid,
                             const struct mf_out_rcpt *dime, size_t n, const uint8_t *msg,
                             size_t len, char first[MF_QID_MAX + 1])
{
    if (injdb == NULL || mid[0] == '\0')
        return qid; /* no Message-ID: nothing says two such messages are one */
    const char **r = dc_xcalloc(n ? n : 1, sizeof(*r));
    for (size_t i = 0; i < n; i++)
        r[i] = dime[i].addr;
    qsort(r, n, sizeof(*r), cmp_str);
    struct dc_sha512_ctx *h = dc_sha512_new();
    dc_sha512_update(h, "dime-outbound-1", 16);
    dc_sha512_update(h, p->sender, strlen(p->sender) + 1);
    dc_sha512_update(h, mid, strlen(mid) + 1);
    for (size_t i = 0; i < n; i++)
        dc_sha512_update(h, r[i], strlen(r[i]) + 1);
    free(r);
    dc_sha512_update(h, msg, len);
    uint8_t d[DC_SHA512_LEN];
    dc_sha512_final(h, d);
    struct dc_err e = {0};
    if (mf_injdb_first_qid(injdb, d, qid, first, &e) != DC_OK) {
        dl_log(LOG_WARNING, "%s: outbound: submission record: %s", qid, e.msg);
        return qid;
    }
    if (strcmp(first, qid) != 0)
        dl_log(LOG_INFO, "%s: outbound: a new attempt of the message first seen as %s, "
               "submitted under that queue id", qid, first);
    return first;
}

/* Hands the D/MIME recipients to the relay and takes them off Postfix's copy: the messages
 * the milter builds, or (own != NULL) the one the sender's client made. */
static sfsistat submit_dime(SMFICTX *ctx, struct mf_priv *p, const char *qid,
                            struct kv_client *kv, const struct mf_out_rcpt *dime,
                            const enum mf_route *route, const struct mf_route_plan *plan,
                            const uint8_t *own, size_t ownlen, bool *ok)
{
    char *mid = message_id(p);
    struct mf_out_result res;
    enum dc_status s;
    size_t mlen = 0;
    uint8_t *mime = own != NULL ? NULL : rebuild_original(p, &mlen);
    char first[MF_QID_MAX + 1];
    const char *sqid = first_qid(p, qid, mid, dime, plan->ndime, own ? own : mime,
                                 own ? ownlen : mlen, first);
    if (own != NULL) {
        s = mf_outbound_submit_own(cfg, p->dom, sqid, mid, p->sender, dime[0].addr, own, ownlen,
                                   &res);
    } else {
        s = mf_outbound_submit(cfg, p->dom, kv, sqid, mid, p->signer, p->sender, dime,
                               plan->ndime, mime, mlen, &res);
        dc_memzero(mime, mlen);
        free(mime);
    }
    free(mid);
    *ok = s == DC_OK;
    if (s != DC_OK) {
        char masked[160];
        dl_log(LOG_WARNING, "%s: outbound event=%s action=%s reason=\"%s\"", qid,
               mf_event_name(res.event), mf_action_name(res.action),
               mf_addr_mask(res.reason, masked, sizeof(masked)));
        return res.smtp_status[0] ? reply(ctx, res.action, res.smtp_status, res.reason)
                                  : reply_event(ctx, res.action, res.event);
    }
    /* the relay owns these now */
    for (size_t i = 0; i < p->nrcpt; i++)
        if (route[i] == MF_ROUTE_DIME && smfi_delrcpt(ctx, p->rcpts[i]) != MI_SUCCESS) {
            /* the relay already committed: the copy Postfix keeps is a duplicate, not a
             * loss; say so loudly */
            dl_log(LOG_ERR, "%s: outbound: could not delete recipient %zu from the "
                            "Postfix copy after submission %s", qid, i + 1, res.sid);
        }
    dl_log(LOG_INFO, "%s: outbound submitted=%zu submission=%s%s%s legacy=%zu", qid,
           plan->ndime, res.sid, res.duplicate ? " duplicate=yes" : "",
           own ? " author-made=yes" : "", plan->nleft);
    return SMFIS_ACCEPT;
}

/* A notice signed by the notice-author: the D/MIME's From names that author (the receiving
 * gateway checks that From names the author), and each original From field (Postfix's
 * "MAILER-DAEMON@host (Mail Delivery System)", a vacation reply's user) stays as an
 * Original-From field (RFC 5703). Postfix's own copy, for recipients without DIME, keeps its
 * header as it is. */
static void notice_from(struct mf_priv *p)
{
    for (size_t i = 0; i < p->nhdr; i++)
        if (strcasecmp(p->hdrs[i].name, "From") == 0) {
            free(p->hdrs[i].name);
            p->hdrs[i].name = dc_xstrdup("Original-From");
        }
    char *v = dc_xasprintf("%s%s", p->leadspc ? " " : "", p->signer);
    hdr_append(p, "From", v);
    free(v);
}

/* The From field is there once and names the envelope sender alone: what the author
 * signature will vouch for (the receiving gateway checks that From names the author). */
static bool from_is_sender(const struct mf_priv *p)
{
    size_t nfrom = 0;
    bool same = false;
    for (size_t i = 0; i < p->nhdr; i++) {
        if (strcasecmp(p->hdrs[i].name, "From") != 0)
            continue;
        char *a = mf_from_single(p->hdrs[i].value);
        same = a != NULL && strcasecmp(a, p->signer) == 0;
        free(a);
        nfrom++;
    }
    return nfrom == 1 && same;
}

/* With DIME recipients in the plan: SMFIS_ACCEPT when the message can be author-signed as
 * its sender (or is, own: the D/MIME of a Cautious or Paranoid sender's client, which
 * mf_author_refusal checked), else the 550 that says why. A DIME domain never gets a local DIME domain's
 * mail as plain SMTP: not from a sender without an account or one whose keys the vault does
 * not hold (Cautious, Paranoid), and not with a From field the signature would not match. */
static sfsistat refuse_unsigned(SMFICTX *ctx, const struct mf_priv *p, const char *qid,
                                const struct mf_route_plan *plan, bool exists,
                                enum kv_mode mode, bool own)
{
    char *t;
    const char *why;
    if (own) {
        return SMFIS_ACCEPT; /* checked by mf_author_refusal */
    } else if (!exists) {
        why = "sender has no account";
        t = dc_xasprintf("%.100s has no DIME account; mail to DIME recipients is never sent "
                         "unsigned", p->signer);
    } else if (mode != KV_MODE_TRUSTFUL) {
        why = mode == KV_MODE_CAUTIOUS ? "sender cautious" : "sender paranoid";
        t = dc_xasprintf("%.100s is a %s DIME user; only D/MIME made by the sender's own "
                         "client goes to DIME recipients", p->signer, kv_mode_name(mode));
    } else if (!from_is_sender(p)) {
        why = "From is not the sender address";
        t = dc_xasprintf("the From field must name the sender address %.100s alone to be "
                         "signed", p->signer);
    } else {
        return SMFIS_ACCEPT;
    }
    dl_log(LOG_WARNING, "%s: outbound dime=%zu action=reject reason=\"%s\"", qid, plan->ndime,
           why);
    sfsistat r = reply(ctx, MF_REJECT, ".7.1", t);
    free(t);
    return r;
}

static sfsistat do_outbound(SMFICTX *ctx, struct mf_priv *p, const char *qid)
{
    const struct mf_domain *d = p->dom;
    struct mf_decision dec;
    struct kv_client *kv = NULL;
    struct dc_err e = {0};
    bool exists = false;
    enum kv_mode mode = 0;
    uint32_t gen = 0;
    sfsistat ret = SMFIS_ACCEPT;
    size_t n = p->nrcpt;
    char **bare = dc_xcalloc(n, sizeof(char *));
    struct lookup_ans *ans = dc_xcalloc(n, sizeof(*ans));
    enum mf_route *route = dc_xcalloc(n, sizeof(*route));
    struct mf_out_rcpt *dime = dc_xcalloc(n, sizeof(*dime));
    struct mf_route_plan plan = {0};
    uint8_t *own = NULL; /* D/MIME the sender's client made */
    size_t ownlen = 0;

    /* non-SMTP mail (see cb_connect) is signed only when Postfix ties its envelope sender to
     * the local login (sign-local-submissions); with the null sender (a notice: no author of
     * its own) only as the domain's notice-author (notice_from), the envelope kept null. An
     * SMTP client's null sender is no notice: local_submit is false for it. */
    bool notice = p->local_submit && p->sender[0] == '\0';
    bool notice_signed = notice && d->notice_author != NULL;
    bool unauth_local = p->auth == NULL && p->local_submit && !notice_signed &&
                        (notice || !cfg->sign_local);
    p->signer = notice_signed ? d->notice_author : p->sender;
    if (!unauth_local && (kv = session_keyvault(p, p->signer, &exists, &mode, &gen, &e)) == NULL) {
        mf_policy_outbound_failure(d, MF_EV_KEYVAULT, &dec);
        dl_log(LOG_WARNING, "%s: outbound event=keyvault-unavailable action=%s", qid,
               mf_action_name(dec.action));
        ret = reply_event(ctx, dec.action, MF_EV_KEYVAULT);
        goto out;
    }
    bool can_sign = exists && mode == KV_MODE_TRUSTFUL;
    /* a Cautious or Paranoid sender's client may make the D/MIME itself (signed as the
     * author with the key only the user holds): it goes to the relay as it is
     * (AUTHOR-SUBMIT.md) */
    bool author_made = exists && !can_sign && p->wrapper;
    if (author_made && !p->too_big)
        own = mf_wrapper_dmime(p->body.data, p->body.len, &ownlen);
    if (can_sign && p->too_big) {
        ret = reply(ctx, MF_REJECT, ".3.4", "message too large for DIME");
        dl_log(LOG_WARNING, "%s: outbound action=reject reason=\"message too large\"", qid);
        goto out;
    }
    route_rcpts(p, qid, bare, ans, route, dime, &plan);
    if (author_made) {
        /* a recipient whose route the policy refuses is answered by that policy below (a
         * tempfail for a lookup that may work later) */
        struct mf_author_facts af = {.login = p->auth != NULL, .too_big = p->too_big,
                                     .dmime = own != NULL, .nrcpt = p->nrcpt,
                                     .dime_rcpt = plan.refused ||
                                                  (p->nrcpt > 0 && route[0] == MF_ROUTE_DIME)};
        const char *why, *t = mf_author_refusal(&af, &why);
        if (t != NULL) {
            dl_log(LOG_WARNING, "%s: outbound author-made=yes action=reject reason=\"%s\"",
                   qid, why);
            ret = reply(ctx, MF_REJECT, ".7.1", t);
            goto out;
        }
    }
    if (plan.refused) {
        if (plan.refusal.no_user)
            ret = reply(ctx, MF_REJECT, MF_NO_USER_ESC, MF_NO_USER_TEXT);
        else if (plan.refusal.strict)
            ret = reply(ctx, plan.refusal.action, ".7.1", MF_STRICT_RCPT_TEXT);
        else
            ret = reply_event(ctx, plan.refusal.action, plan.refusal.event);
        goto out;
    }
    if (plan.ndime > 0 && notice_signed)
        notice_from(p);
    if (plan.ndime > 0 && notice && !notice_signed) {
        /* Postfix keeps a bounce it cannot hand over with the message it reports on and
         * tries again at each queue run; a sendmail(1) notice waits in the maildrop queue */
        dl_log(LOG_WARNING, "%s: outbound dime=%zu action=tempfail reason=\"notice with the "
                            "null sender, no author to sign\"", qid, plan.ndime);
        ret = reply(ctx, MF_TEMPFAIL, ".7.1", "a notice with the null sender has no author to "
                                              "sign for DIME recipients; never sent as plain "
                                              "SMTP, kept queued");
        goto out;
    }
    if (plan.ndime > 0 && unauth_local) {
        dl_log(LOG_WARNING, "%s: outbound dime=%zu action=reject reason=\"submitted without "
                            "SMTP AUTH\"", qid, plan.ndime);
        ret = reply(ctx, MF_REJECT, ".7.1", "mail submitted without SMTP AUTH cannot be signed "
                                            "for DIME recipients; submit over authenticated SMTP");
        goto out;
    }
    if (plan.ndime > 0 &&
        (ret = refuse_unsigned(ctx, p, qid, &plan, exists, mode, own != NULL)) != SMFIS_ACCEPT)
        goto out;
    if (plan.ndime > 0) {
        bool ok;
        ret = submit_dime(ctx, p, qid, kv, dime, route, &plan, own, ownlen, &ok);
        if (!ok)
            goto out;
    }
    if (plan.nleft == 0) {
        ret = SMFIS_DISCARD;
        goto out;
    }
    if (plan.quarantine &&
        smfi_quarantine(ctx, "DIME: sent as legacy SMTP by policy") != MI_SUCCESS)
        dl_log(LOG_ERR, "%s: outbound: quarantine refused by the MTA", qid);
out:
    for (size_t i = 0; i < n; i++) {
        free(bare[i]);
        lookup_ans_free(&ans[i]);
    }
    free(bare);
    free(ans);
    free(route);
    free(dime);
    free(own);
    kv_done(p);
    return ret;
}

static sfsistat header_refused(SMFICTX *ctx, const char *qid)
{
    dl_log(LOG_ERR, "%s: the MTA refused a header change", qid);
    return reply(ctx, MF_TEMPFAIL, ".3.0", "internal error");
}

static sfsistat cb_eom(SMFICTX *ctx)
{
    struct mf_priv *p = priv(ctx);
    const char *qid = qid_of(ctx);
    sfsistat r = SMFIS_ACCEPT;
    /* a field claiming our verdict goes before anything is handed on (outbound: before the
     * submission, so Postfix's copy and the D/MIME messages agree); inbound, the rebuilt or
     * failed paths delete it themselves, the untouched one below */
    if (p->dir != DIR_IN && strip_our_ar(ctx, p, qid) != 0)
        r = header_refused(ctx, qid);
    else if (p->dir == DIR_IN)
        r = do_inbound(ctx, p, qid);
    else if (p->dir == DIR_OUT)
        r = do_outbound(ctx, p, qid);
    if (r == SMFIS_ACCEPT && strip_our_ar(ctx, p, qid) != 0)
        r = header_refused(ctx, qid);
    if (r == SMFIS_ACCEPT && p->strict_hold[0] != '\0') {
        char *why = dc_xasprintf("DIME: plain SMTP claiming %s, whose record says pol=strict",
                                 p->strict_hold);
        if (smfi_quarantine(ctx, why) != MI_SUCCESS)
            dl_log(LOG_ERR, "%s: inbound: quarantine refused by the MTA", qid);
        free(why);
    }
    if (p->injected && r == SMFIS_ACCEPT) {
        /* durable before the acceptance: a repeat of this attempt will be discarded */
        struct dc_err e = {0};
        bool dup = false;
        const char *q = smfi_getsymval(ctx, "i");
        if (mf_injdb_record(injdb, p->inj_key, q && *q ? q : "",
                            p->inj_takes[0] ? p->inj_takes : NULL, &dup, &e) != DC_OK) {
            dl_log(LOG_ERR, "%s: inbound injection=%s: %s", qid, p->inj_id, e.msg);
            r = reply(ctx, MF_TEMPFAIL, ".3.0", "internal error");
        } else if (dup) {
            dl_log(LOG_INFO, "%s: inbound injection=%s action=discard reason=\"repeated "
                             "injection\"", qid, p->inj_id);
            r = SMFIS_DISCARD;
        }
    }
    msg_reset(p);
    return r;
}

static sfsistat cb_abort(SMFICTX *ctx)
{
    struct mf_priv *p = priv(ctx);
    if (p)
        msg_reset(p);
    return SMFIS_CONTINUE;
}

static sfsistat cb_close(SMFICTX *ctx)
{
    struct mf_priv *p = priv(ctx);
    if (p) {
        msg_reset(p);
        kv_client_close(p->kv);
        dc_buf_free(&p->body);
        free(p);
        smfi_setpriv(ctx, NULL);
    }
    return SMFIS_CONTINUE;
}

void mf_filter_injdb(struct mf_injdb *db, struct mf_queue *q)
{
    injdb = db;
    pfqueue = q;
}

struct smfiDesc *mf_filter_desc(const struct mf_config *c)
{
    static struct smfiDesc desc = {
        .xxfi_name = "dime-milter",
        .xxfi_version = SMFI_VERSION,
        .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_DELRCPT |
                      SMFIF_QUARANTINE | SMFIF_CHGFROM,
        .xxfi_connect = cb_connect,
        .xxfi_helo = NULL,
        .xxfi_envfrom = cb_envfrom,
        .xxfi_envrcpt = cb_envrcpt,
        .xxfi_header = cb_header,
        .xxfi_eoh = cb_eoh,
        .xxfi_body = cb_body,
        .xxfi_eom = cb_eom,
        .xxfi_abort = cb_abort,
        .xxfi_close = cb_close,
        .xxfi_unknown = NULL,
        .xxfi_data = NULL,
        .xxfi_negotiate = cb_negotiate,
    };
    cfg = c;
    return &desc;
}

void mf_filter_reconfig(const struct mf_config *c)
{
    cfg = c;
}
