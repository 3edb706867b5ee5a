/*
 * dl_resolve - record, DX, certificate and signet resolution. See dl_resolve.h.
 */
#include "dl_resolve.h"
#include "dl_resolve_int.h"


#include "dl_log.h"

#include "dc_dmtp.h"
#include "lookup_proto.h"

#include "dl_tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The resolver's outcomes are the lookup service's (LOOKUP.md), in the same order: their
 * words come from lookup_proto, which the clients parse them with. */
_Static_assert(DL_OUT_SECURE == (int)LOOKUP_SECURE && DL_OUT_INSECURE == (int)LOOKUP_INSECURE &&
                   DL_OUT_NOT_DIME == (int)LOOKUP_NOT_DIME && DL_OUT_BOGUS == (int)LOOKUP_BOGUS &&
                   DL_OUT_REFUSED == (int)LOOKUP_REFUSED &&
                   DL_OUT_TEMPFAIL == (int)LOOKUP_TEMPFAIL,
               "enum dl_outcome follows enum lookup_outcome");

const char *dl_outcome_name(enum dl_outcome o)
{
    return lookup_outcome_name((enum lookup_outcome)o);
}

static enum dl_outcome set(struct dl_lookup *l, enum dl_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum dl_outcome set(struct dl_lookup *l, enum dl_outcome o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->reason, sizeof(l->reason), fmt, ap);
    va_end(ap);
    l->outcome = o;
    return o;
}

void dl_lookup_free(struct dl_lookup *l)
{
    free(l->record_text);
    dc_mrec_free(l->rec);
    dc_signet_free(l->org);
    dc_signet_free(l->user);
    memset(l, 0, sizeof(*l));
}

/* ---- bounds ---- */

static long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* How long one step (a DNS query, a connect, a read) may wait: connect-timeout, or what is
 * left of lookup-deadline when that is less; 0 once the deadline passed. */
static int step_ms(long deadline_ms, unsigned connect_timeout)
{
    long left = deadline_ms - mono_ms();
    long t = (long)connect_timeout * 1000;
    return left <= 0 ? 0 : (int)(left < t ? left : t);
}

/* ---- 1. the record ---- */

static enum dl_outcome find_record(struct dl_resolver *r, const char *domain, bool require,
                                   struct dl_lookup *l)
{
    static const char *const prefixes[] = {"_dime.", "_dx."};
    bool all_secure = true;
    uint32_t neg_ttl = UINT32_MAX;
    for (size_t p = 0; p < 2; p++) {
        struct dl_dns_answer a;
        snprintf(l->record_name, sizeof(l->record_name), "%s%s", prefixes[p], domain);
        dl_dns_lookup(r->dns, l->record_name, DL_DNS_TYPE_TXT,
                      step_ms(r->deadline_ms, r->cfg.connect_timeout), &a);
        l->record_sec = a.sec;
        if (a.sec == DL_DNS_TEMPFAIL || a.sec == DL_DNS_BOGUS)
            dl_dns_answer_free(&a); /* data that comes with a failure is never used */
        if (a.sec == DL_DNS_TEMPFAIL)
            return set(l, DL_OUT_TEMPFAIL, "DNS lookup of %s failed: %s", l->record_name, a.why);
        if (a.sec == DL_DNS_BOGUS)
            return set(l, DL_OUT_BOGUS, "record %s is bogus (DNSSEC validation failed): %s",
                       l->record_name, a.why);
        if (a.sec != DL_DNS_SECURE)
            all_secure = false;
        if (a.nodata) {
            neg_ttl = a.ttl < neg_ttl ? a.ttl : neg_ttl;
            dl_dns_answer_free(&a);
            continue;
        }
        l->record_ttl = a.ttl;
        size_t found = 0;
        struct dc_err first = {0};
        for (size_t i = 0; i < a.n; i++) {
            struct dc_mrec_str strs[64];
            size_t ns;
            struct dc_mrec *rec = NULL;
            struct dc_err e = {0};
            if (dc_mrec_rdata_strings(a.rr[i].data, a.rr[i].len, strs, 64, &ns, &e) != DC_OK ||
                dc_mrec_parse(strs, ns, &rec, &e) != DC_OK) {
                if (first.code == DC_OK)
                    first = e;
                continue;
            }
            if (++found > 1) {
                dc_mrec_free(rec);
                continue;
            }
            l->rec = rec;
            struct dc_buf t;
            dc_buf_init(&t);
            for (size_t k = 0; k < ns; k++)
                dc_buf_append(&t, strs[k].ptr, strs[k].len);
            l->record_text = (char *)dc_buf_steal(&t, &(size_t){0});
        }
        dl_dns_answer_free(&a);
        if (found > 1)
            return set(l, DL_OUT_REFUSED, "%s has %zu DIME records; exactly one is allowed",
                       l->record_name, found);
        if (found == 0)
            return set(l, DL_OUT_REFUSED, "%s: invalid DIME record: %s", l->record_name,
                       first.msg);
        if (l->record_sec == DL_DNS_INSECURE && require)
            return set(l, DL_OUT_REFUSED, "record %s is insecure (not signed) and "
                       "require-dnssec is on", l->record_name);
        return l->record_sec == DL_DNS_SECURE ? DL_OUT_SECURE : DL_OUT_INSECURE;
    }
    l->record_sec = all_secure ? DL_DNS_SECURE : DL_DNS_INSECURE;
    l->record_ttl = neg_ttl; /* how long the absence may be believed */
    snprintf(l->record_name, sizeof(l->record_name), "_dime.%s", domain);
    return set(l, DL_OUT_NOT_DIME, "not a DIME domain: no record at _dime.%s or _dx.%s (%s)",
               domain, domain, all_secure ? "proven by DNSSEC" : "answer not signed");
}

/* A name without a record of its own (l: its not-a-DIME-domain answer): the nearest
 * ancestor with a record decides by its sub= (dl_resolve.h, step 1). The ancestors' answers
 * are the resolver's to cache; the name's outcome is cached under the name (rl_lookup.c). */
static enum dl_outcome inherit(struct dl_resolver *r, const char *domain, bool require,
                               struct dl_lookup *l)
{
    const char *p = domain;
    for (unsigned up = 0; up < DL_SUB_MAX_UP; up++) {
        p = strchr(p, '.');
        if (p == NULL || strchr(++p, '.') == NULL)
            break; /* a top-level domain publishes no policy for the names under it */
        struct dl_lookup a;
        memset(&a, 0, sizeof(a));
        enum dl_outcome o = find_record(r, p, require, &a);
        if (o == DL_OUT_NOT_DIME) {
            if (a.record_sec != DL_DNS_SECURE)
                l->record_sec = a.record_sec; /* proven only when every answer is secure */
            dl_lookup_free(&a);
            continue;
        }
        if (o == DL_OUT_SECURE || o == DL_OUT_INSECURE) {
            if (a.rec->subdomain == DC_MREC_SUB_EXPLICIT) {
                set(l, DL_OUT_NOT_DIME, "not a DIME domain: no record at _dime.%s or _dx.%s, "
                    "and the record of %s says sub=explicit (only names with a record of "
                    "their own are DIME)", domain, domain, p);
            } else if (a.rec->subdomain == DC_MREC_SUB_RELAXED) {
                /* the ancestor's record stands for the name: its DX, POKs, pol= */
                l->rec = a.rec;
                l->record_text = a.record_text;
                a.rec = NULL;
                a.record_text = NULL;
                l->record_sec = a.record_sec;
                l->record_ttl = a.record_ttl;
                snprintf(l->record_name, sizeof(l->record_name), "%s", a.record_name);
                snprintf(l->inherited_from, sizeof(l->inherited_from), "%s", p);
                l->reason[0] = '\0';
                l->outcome = o;
            } else {
                /* the ancestor's record is kept for its pol= (LOOKUP.md) */
                l->rec = a.rec;
                a.rec = NULL;
                o = set(l, DL_OUT_REFUSED, "%s has no DIME record of its own, and the record "
                        "of %s says sub=strict (every subdomain must publish its own): not a "
                        "DIME domain cannot be concluded", domain, p);
            }
            dl_lookup_free(&a);
            return l->outcome;
        }
        /* an ancestor that cannot be read: whether the name is DIME is not known */
        set(l, o, "%s has no DIME record of its own; its ancestor %s: %s", domain, p, a.reason);
        dl_lookup_free(&a);
        return o;
    }
    return l->outcome;
}

/* ---- 2. DX hosts ---- */

/* Uncompressed wire name to text; false when malformed or not a host name (checked like a
 * record's dx= hosts: the name goes to the connect, the certificate check and the log). */
static bool wire_name(const uint8_t *p, size_t len, char *out, size_t cap)
{
    size_t i = 0, o = 0;
    while (i < len && p[i] != 0) {
        size_t l = p[i++];
        if (l > 63 || i + l > len || o + l + 2 > cap)
            return false;
        memcpy(out + o, p + i, l);
        o += l;
        out[o++] = '.';
        i += l;
    }
    if (o == 0)
        return false;
    out[o - 1] = '\0';
    return dc_mrec_check_host(out, o - 1, "MX host", NULL) == DC_OK;
}


void dl_dx_hosts(struct dl_resolver *r, const char *domain, struct dl_lookup *l,
                 struct hosts *h)
{
    h->n = 0;
    for (size_t i = 0; i < l->rec->dx_count; i++)
        snprintf(h->name[h->n++], 256, "%s", l->rec->dx[i]);
    if (h->n > 0)
        return;
    struct dl_dns_answer a;
    dl_dns_lookup(r->dns, domain, DL_DNS_TYPE_MX,
                  step_ms(r->deadline_ms, r->cfg.connect_timeout), &a);
    if (a.sec == DL_DNS_SECURE || a.sec == DL_DNS_INSECURE) {
        /* at most 3, lowest preference first */
        bool used[DL_DNS_MAX_RR] = {false};
        for (size_t k = 0; k < 3; k++) {
            size_t best = a.n;
            for (size_t i = 0; i < a.n; i++)
                if (!used[i] && a.rr[i].len > 2 &&
                    (best == a.n || dc_get_be(a.rr[i].data, 2) < dc_get_be(a.rr[best].data, 2)))
                    best = i;
            if (best == a.n)
                break;
            used[best] = true;
            if (wire_name(a.rr[best].data + 2, a.rr[best].len - 2, h->name[h->n], 256))
                h->mx[h->n++] = true;
        }
    }
    dl_dns_answer_free(&a);
    snprintf(h->name[h->n++], 256, "%s", domain);
}

/* Connects with a timeout; returns the socket or -1. */
static int tcp_connect(const struct sockaddr *sa, socklen_t sl, int timeout_ms)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, sa, sl) != 0) {
        if (errno != EINPROGRESS) {
            close(fd);
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int e = 0;
        socklen_t el = sizeof(e);
        int pr = poll(&p, 1, timeout_ms);
        if (pr != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0 || e != 0) {
            /* the caller logs strerror(errno): the connect's outcome, not its EINPROGRESS */
            e = pr == 0 ? ETIMEDOUT : e != 0 ? e : errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    int one = 1; /* commands are small writes: no Nagle delay waiting for an ACK */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Tries the addresses of host; returns a connected socket or -1 (why filled). */
static int connect_host(struct dl_resolver *r, const char *host, unsigned port,
                        struct dl_lookup *l, char *why, size_t wl)
{
    if (r->connect_to != NULL && r->connect_to[0] != '\0') {
        /* every DX connection to the one address given (testing, diagnosis): the host name
         * still decides the certificate check */
        struct sockaddr_storage ss;
        socklen_t sl;
        if (dl_connect_to_parse(r->connect_to, &ss, &sl) != DC_OK) {
            snprintf(why, wl, "bad connect-to address %.100s", r->connect_to);
            return -1;
        }
        snprintf(l->dx_addr, sizeof(l->dx_addr), "%.63s", r->connect_to);
        int fd = tcp_connect((struct sockaddr *)&ss, sl,
                             step_ms(r->deadline_ms, r->cfg.connect_timeout));
        if (fd < 0)
            snprintf(why, wl, "%s (connect-to %s): connection failed: %s", host,
                     r->connect_to, strerror(errno));
        return fd;
    }
    static const int types[] = {DL_DNS_TYPE_A, DL_DNS_TYPE_AAAA};
    unsigned tried = 0, most = r->cfg.dx_max_addresses ? r->cfg.dx_max_addresses : UINT_MAX;
    for (size_t t = 0; t < 2 && tried < most; t++) {
        struct dl_dns_answer a;
        dl_dns_lookup(r->dns, host, types[t], step_ms(r->deadline_ms, r->cfg.connect_timeout),
                      &a);
        if (a.sec == DL_DNS_BOGUS || a.sec == DL_DNS_TEMPFAIL) {
            snprintf(why, wl, "%s %s: %s (%s)", host, t ? "AAAA" : "A", dl_dns_sec_name(a.sec),
                     a.why);
            dl_dns_answer_free(&a);
            continue;
        }
        for (size_t i = 0; i < a.n; i++) {
            if (tried == most) {
                snprintf(why + strlen(why), wl - strlen(why), " (%u addresses tried: "
                         "dx-max-addresses)", tried);
                break;
            }
            struct sockaddr_storage ss;
            memset(&ss, 0, sizeof(ss));
            socklen_t sl;
            if (types[t] == DL_DNS_TYPE_A && a.rr[i].len == 4) {
                struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
                s4->sin_family = AF_INET;
                s4->sin_port = htons((uint16_t)port);
                memcpy(&s4->sin_addr, a.rr[i].data, 4);
                sl = sizeof(*s4);
                inet_ntop(AF_INET, a.rr[i].data, l->dx_addr, sizeof(l->dx_addr));
            } else if (types[t] == DL_DNS_TYPE_AAAA && a.rr[i].len == 16) {
                struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
                s6->sin6_family = AF_INET6;
                s6->sin6_port = htons((uint16_t)port);
                memcpy(&s6->sin6_addr, a.rr[i].data, 16);
                sl = sizeof(*s6);
                inet_ntop(AF_INET6, a.rr[i].data, l->dx_addr, sizeof(l->dx_addr));
            } else {
                continue;
            }
            int ms = step_ms(r->deadline_ms, r->cfg.connect_timeout);
            if (ms == 0)
                break; /* resolve() reports the deadline */
            tried++;
            int fd = tcp_connect((struct sockaddr *)&ss, sl, ms);
            if (fd >= 0) {
                dl_dns_answer_free(&a);
                return fd;
            }
            snprintf(why, wl, "%s (%s) port %u: connection failed: %s", host, l->dx_addr,
                     port, strerror(errno));
        }
        dl_dns_answer_free(&a);
    }
    l->dx_addr[0] = '\0';
    return -1;
}

/* ---- 3. certificate ---- */

static enum dl_outcome check_cert(SSL *ssl, const char *host, struct dl_lookup *l)
{
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (cert == NULL)
        return set(l, DL_OUT_REFUSED, "DX %s sent no certificate", host);
    unsigned char *der = NULL;
    int dl = i2d_X509(cert, &der);
    enum dl_outcome o = DL_OUT_SECURE;
    struct dc_err e = {0};
    enum dc_status ts = dl > 0 ? dc_mrec_tls_verify(l->rec, der, (size_t)dl, NULL, &e)
                               : DC_ERR_FORMAT;
    if (ts == DC_OK && l->record_sec == DL_DNS_SECURE) {
        snprintf(l->cert_check, sizeof(l->cert_check),
                 "tls= signature verified under a POK of the secure record");
    } else if (ts != DC_OK && ts != DC_ERR_NOTFOUND) {
        o = set(l, DL_OUT_REFUSED, "DX %s certificate does not match the record's tls= "
                "signatures: %s", host, e.msg);
    } else {
        long vr = SSL_get_verify_result(ssl);
        if (vr != X509_V_OK)
            o = set(l, DL_OUT_REFUSED, "DX %s certificate not trusted (no matching tls= in a "
                    "secure record, and CA chain check failed: %s)", host,
                    X509_verify_cert_error_string(vr));
        else if (X509_check_host(cert, host, 0, 0, NULL) != 1)
            o = set(l, DL_OUT_REFUSED, "DX certificate does not match the host name %s", host);
        else
            snprintf(l->cert_check, sizeof(l->cert_check), "CA chain and host name %s "
                     "verified%s", host, ts == DC_OK ? " (tls= matched, record insecure)" : "");
    }
    OPENSSL_free(der);
    X509_free(cert);
    return o;
}

/* ---- 4/5. DMTP ---- */

struct session {
    SSL *ssl;
    uint8_t buf[DC_DMTP_LINE_MAX];
    size_t len;
    long deadline_ms;  /* no read past it (lookup-deadline, a mail reply's time); 0: none */
    unsigned step_s;   /* the longest one read may wait */
    void (*vrfy_seen)(enum dl_vrfy v); /* told each VRFY answer (the relay's metrics) */
};

/* Within a resolution, each read waits at most what is left of the deadline. */
static bool session_arm(struct session *s)
{
    if (s->deadline_ms == 0)
        return true;
    int ms = step_ms(s->deadline_ms, s->step_s);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    int fd = SSL_get_fd(s->ssl);
    return ms > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
           setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0;
}

static enum dc_status read_reply(struct session *s, struct dc_dmtp_reply *rep,
                                 struct dc_err *err)
{
    dc_dmtp_reply_init(rep);
    while (!rep->done) {
        size_t ll;
        enum dc_status st = dc_dmtp_line(s->buf, s->len, sizeof(s->buf), &ll);
        if (st == DC_OK) {
            st = dc_dmtp_reply_add(rep, (const char *)s->buf, ll, err);
            memmove(s->buf, s->buf + ll + 2, s->len - ll - 2);
            s->len -= ll + 2;
            if (st != DC_OK)
                return st;
            continue;
        }
        if (st == DC_ERR_LIMIT)
            return dc_fail(err, DC_ERR_LIMIT, "reply line too long");
        if (!session_arm(s))
            return dc_fail(err, DC_ERR_IO, "reply time limit passed");
        int n = SSL_read(s->ssl, s->buf + s->len, (int)(sizeof(s->buf) - s->len));
        if (n <= 0)
            return dc_fail(err, DC_ERR_IO, "connection closed or timed out");
        s->len += (size_t)n;
    }
    return DC_OK;
}

static enum dc_status command(struct session *s, struct dc_dmtp_reply *rep, struct dc_err *err,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum dc_status command(struct session *s, struct dc_dmtp_reply *rep, struct dc_err *err,
                              const char *fmt, ...)
{
    char line[DC_DMTP_CMD_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) - 2)
        return dc_fail(err, DC_ERR_LIMIT, "command too long");
    memcpy(line + n, "\r\n", 2);
    if (SSL_write(s->ssl, line, n + 2) != n + 2)
        return dc_fail(err, DC_ERR_IO, "write failed");
    return read_reply(s, rep, err);
}

/* SGNT name [fp] (fp may be NULL: the current signet): the signet from a "250 OK [b64]"
 * reply. */
static enum dl_outcome fetch_signet(struct session *s, const char *name, const char *fp,
                                    struct dc_signet **out, struct dl_lookup *l, int *code)
{
    struct dc_dmtp_reply rep;
    struct dc_err e = {0};
    const char *p;
    size_t pl;
    *out = NULL;
    enum dc_status cs = fp != NULL ? command(s, &rep, &e, "SGNT <%s> [%s]", name, fp)
                                   : command(s, &rep, &e, "SGNT <%s>", name);
    if (cs != DC_OK) {
        dc_dmtp_reply_free(&rep);
        return set(l, DL_OUT_TEMPFAIL, "SGNT %s: %s", name, e.msg);
    }
    enum dl_outcome o = DL_OUT_SECURE;
    *code = rep.code;
    if (rep.code / 100 == 4)
        o = set(l, DL_OUT_TEMPFAIL, "SGNT %s: %d %.200s", name, rep.code, rep.lines[0]);
    else if (rep.code / 100 != 2)
        o = set(l, DL_OUT_REFUSED, "SGNT %s: %d %.200s", name, rep.code, rep.lines[0]);
    else if (dc_dmtp_bracket(rep.lines[0], &p, &pl, &e) != DC_OK ||
             dc_signet_from_b64(p, pl, out, &e) != DC_OK)
        o = set(l, DL_OUT_REFUSED, "SGNT %s: unreadable signet: %s", name, e.msg);
    dc_dmtp_reply_free(&rep);
    return o;
}

static const char *const vrfy_names[DL_VRFYS] = {"current", "update", "other"};

const char *dl_vrfy_name(enum dl_vrfy v)
{
    return (unsigned)v < DL_VRFYS ? vrfy_names[v] : "other";
}

enum dl_vrfy dl_vrfy_answer(const struct dc_dmtp_reply *rep)
{
    if (rep->code / 100 != 2 || rep->nlines != 1 || rep->lines[0] == NULL)
        return DL_VRFY_OTHER;
    const char *t = rep->lines[0];
    if (strcasecmp(t, "CURRENT") == 0)
        return DL_VRFY_CURRENT;
    if (strncasecmp(t, "UPDATE ", 7) != 0)
        return DL_VRFY_OTHER;
    /* one fingerprint: bare, [fp] or <fp> (dmime-dmtp.md writes <newfp>, our DX sends [fp]) */
    const char *f = t + 7;
    size_t n = strlen(f);
    if (n >= 2 && ((f[0] == '[' && f[n - 1] == ']') || (f[0] == '<' && f[n - 1] == '>'))) {
        f++;
        n -= 2;
    }
    if (n == 0 || n > 2 * DC_FP_B64_LEN)
        return DL_VRFY_OTHER;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)f[i]) && strchr("+/-_=", f[i]) == NULL)
            return DL_VRFY_OTHER;
    return DL_VRFY_UPDATE;
}

/* VRFY <name> [fp]: is the held signet with fingerprint fp (what: "org" or "user", for the
 * log) still the current one? Only a CURRENT says so; UPDATE, a failure or any other answer
 * means "fetch" (a DX that does not know VRFY still serves SGNT). The answer is never
 * evidence of a signet: what is fetched is verified as always, what is kept was verified
 * when it was stored. */
static bool still_current(struct session *s, const char *what, const char *name,
                          const char *fp)
{
    struct dc_dmtp_reply rep;
    struct dc_err e = {0};
    dc_dmtp_reply_init(&rep);
    enum dl_vrfy v = command(s, &rep, &e, "VRFY <%s> [%s]", name, fp) == DC_OK
                         ? dl_vrfy_answer(&rep) : DL_VRFY_OTHER;
    dc_dmtp_reply_free(&rep);
    if (s->vrfy_seen != NULL)
        s->vrfy_seen(v);
    dl_log(LOG_DEBUG, "signet refresh signet=%s vrfy=%s%s%s", what, dl_vrfy_name(v),
           v == DL_VRFY_CURRENT ? " action=keep" : " action=fetch",
           e.code != DC_OK ? " reason=io" : "");
    return v == DL_VRFY_CURRENT;
}

static bool ok_state(enum dc_signet_state st)
{
    return st >= DC_SS_CRYPTO;
}

enum dl_outcome dl_custody_walk(const struct dc_dmtp_reply *rep, const char *user,
                                const char *known, struct dl_lookup *l)
{
    struct dc_err e = {0};
    enum dl_outcome o = DL_OUT_SECURE;
    if (rep->code / 100 != 2 || rep->nlines < 2)
        return set(l, rep->code / 100 == 4 ? DL_OUT_TEMPFAIL : DL_OUT_REFUSED,
                   "HIST %s: %d %.200s", user, rep->code, rep->lines[rep->nlines - 1]);
    struct dc_signet *prev = NULL;
    size_t n = rep->nlines - 1;
    for (size_t i = 0; i < n && o == DL_OUT_SECURE; i++) {
        const char *p;
        size_t pl;
        struct dc_signet *sg = NULL;
        if (dc_dmtp_bracket(rep->lines[i], &p, &pl, &e) != DC_OK ||
            dc_signet_from_b64(p, pl, &sg, &e) != DC_OK) {
            o = set(l, DL_OUT_REFUSED, "HIST %s: entry %zu unreadable: %s", user, i + 1, e.msg);
            break;
        }
        char fp[DC_FP_B64_LEN + 1], fpc[DC_FP_B64_LEN + 1];
        if (i == 0 && known != NULL) {
            /* the chain starts at the signet we already trusted */
            if (dc_signet_fp(sg, fp, fpc, &e) != DC_OK ||
                (strcmp(fp, known) != 0 && strcmp(fpc, known) != 0))
                o = set(l, DL_OUT_REFUSED, "HIST %s: history does not start at the known "
                        "signet", user);
        } else {
            enum dc_signet_state vs = dc_signet_verify_user(sg, l->org, prev, &e);
            l->user_state = vs;
            if (!ok_state(vs))
                o = set(l, DL_OUT_REFUSED, "HIST %s: custody chain broken at entry %zu: %s",
                        user, i + 1, e.msg);
        }
        dc_signet_free(prev);
        prev = sg;
    }
    if (o == DL_OUT_SECURE &&
        (prev == NULL || prev->bin_len != l->user->bin_len ||
         memcmp(prev->bin, l->user->bin, prev->bin_len) != 0))
        o = set(l, DL_OUT_REFUSED, "HIST %s: history does not end at the current signet", user);
    if (o == DL_OUT_SECURE) {
        l->custody_len = n;
    }
    dc_signet_free(prev);
    return o;
}

static enum dl_outcome custody(struct session *s, const char *user, const char *known,
                               struct dl_lookup *l)
{
    struct dc_dmtp_reply rep;
    struct dc_err e = {0};
    enum dc_status st = known ? command(s, &rep, &e, "HIST <%s> [%s]", user, known)
                              : command(s, &rep, &e, "HIST <%s>", user);
    enum dl_outcome o = st != DC_OK ? set(l, DL_OUT_TEMPFAIL, "HIST %s: %s", user, e.msg)
                                    : dl_custody_walk(&rep, user, known, l);
    dc_dmtp_reply_free(&rep);
    return o;
}

bool dl_no_such_user(int code, enum dl_dns_sec record_sec, int policy)
{
    return (code == 576 || code == 510) && record_sec == DL_DNS_SECURE &&
           policy == DC_MREC_POL_STRICT;
}

/* Does the banner text announce DMTPv1 (a whitespace-separated token)? */
static bool dmtpv1(const char *t)
{
    const char *p = t;
    while ((p = strstr(p, "DMTPv1")) != NULL) {
        if ((p == t || p[-1] == ' ') && (p[6] == '\0' || p[6] == ' '))
            return true;
        p += 6;
    }
    return false;
}

/* The user signet held (hu) in place of SGNT <user>, when the org signet just verified is the
 * one it was verified under (ho) and the DX says it is current. */
static bool keep_user(struct session *s, const struct dl_held *ho, const struct dl_held *hu,
                      const char *user, struct dl_lookup *l)
{
    if (hu == NULL || hu->sig == NULL || hu->sig->type != DC_SIGNET_USER || ho == NULL ||
        ho->sig == NULL || strcmp(ho->fp, l->org_fp) != 0 ||
        !still_current(s, "user", user, hu->fp))
        return false;
    struct dc_err e = {0};
    if (dc_signet_field(hu->sig, DC_FID_USER_CUSTODY, 0) != NULL) {
        /* its custody chain was walked when it was stored, under this same org signet */
        l->user_state = DC_SS_CRYPTO;
    } else {
        l->user_state = dc_signet_verify_user(hu->sig, l->org, NULL, &e);
        if (!ok_state(l->user_state))
            return false; /* not what was stored: fetch and verify (and say why) */
    }
    l->user = dc_signet_dup(hu->sig);
    snprintf(l->user_fp, sizeof(l->user_fp), "%s", hu->fp);
    return true;
}

static enum dl_outcome signets(struct session *s, bool banner, const char *domain,
                               const char *org_fp, const char *user, const char *known,
                               const struct dl_held *ho, const struct dl_held *hu,
                               struct dl_lookup *l)
{
    struct dc_dmtp_reply rep;
    struct dc_err e = {0};
    if (banner && (read_reply(s, &rep, &e) != DC_OK || rep.code != 220 || rep.nlines == 0 ||
                   !dmtpv1(rep.lines[0]))) {
        dc_dmtp_reply_free(&rep);
        return set(l, DL_OUT_TEMPFAIL, "DX %s: no DMTPv1 banner%s%s", l->dx_host,
                   e.code ? ": " : "", e.msg);
    }
    if (banner)
        dc_dmtp_reply_free(&rep);
    int code = 0;
    enum dl_outcome o = DL_OUT_SECURE;
    /* a held org signet kept on CURRENT is verified against the record's POKs below like a
     * fetched one; an org signet named by fingerprint is always fetched */
    if (org_fp == NULL && ho != NULL && ho->sig != NULL && ho->sig->type == DC_SIGNET_ORG &&
        still_current(s, "org", domain, ho->fp))
        l->org = dc_signet_dup(ho->sig);
    else
        o = fetch_signet(s, domain, org_fp, &l->org, l, &code);
    if (o != DL_OUT_SECURE)
        return o;
    if (l->org->type != DC_SIGNET_ORG)
        return set(l, DL_OUT_REFUSED, "SGNT %s did not return an org signet", domain);
    l->org_state = dc_signet_verify_org(l->org, (const uint8_t(*)[DC_ED25519_PUB_LEN])l->rec->pok,
                                        l->rec->pok_count, &e);
    if (!ok_state(l->org_state))
        return set(l, DL_OUT_REFUSED, "org signet of %s does not verify against the record's "
                   "POKs: %s", domain, e.msg);
    char fpc[DC_FP_B64_LEN + 1];
    dc_signet_fp(l->org, l->org_fp, fpc, NULL);
    if (user == NULL || keep_user(s, ho, hu, user, l))
        return DL_OUT_SECURE;
    o = fetch_signet(s, user, NULL, &l->user, l, &code);
    /* a verified DX that refuses the user's signet for good: the domain has none for it */
    l->no_user_signet = o == DL_OUT_REFUSED && code / 100 == 5;
    l->no_such_user = l->no_user_signet && l->rec != NULL &&
                      dl_no_such_user(code, l->record_sec, (int)l->rec->policy);
    if (o != DL_OUT_SECURE)
        return o;
    if (l->user->type != DC_SIGNET_USER)
        return set(l, DL_OUT_REFUSED, "SGNT %s did not return a user signet", user);
    dc_signet_fp(l->user, l->user_fp, fpc, NULL);
    bool changed = known != NULL && strcmp(known, l->user_fp) != 0 && strcmp(known, fpc) != 0;
    bool has_coc = dc_signet_field(l->user, DC_FID_USER_CUSTODY, 0) != NULL;
    if (!changed && !has_coc) {
        l->user_state = dc_signet_verify_user(l->user, l->org, NULL, &e);
        if (!ok_state(l->user_state))
            return set(l, DL_OUT_REFUSED, "user signet of %s does not verify against the org "
                       "signet: %s", user, e.msg);
        return DL_OUT_SECURE;
    }
    return custody(s, user, changed ? known : NULL, l);
}

/* Reads one reply over the plain socket (dual mode, before STARTTLS). */
static enum dc_status plain_reply(int fd, uint8_t *buf, size_t *len, struct dc_dmtp_reply *rep,
                                  struct dc_err *err)
{
    dc_dmtp_reply_init(rep);
    while (!rep->done) {
        size_t ll;
        enum dc_status st = dc_dmtp_line(buf, *len, DC_DMTP_LINE_MAX, &ll);
        if (st == DC_OK) {
            st = dc_dmtp_reply_add(rep, (const char *)buf, ll, err);
            memmove(buf, buf + ll + 2, *len - ll - 2);
            *len -= ll + 2;
            if (st != DC_OK)
                return st;
            continue;
        }
        if (st == DC_ERR_LIMIT)
            return dc_fail(err, DC_ERR_LIMIT, "reply line too long");
        ssize_t n = read(fd, buf + *len, DC_DMTP_LINE_MAX - *len);
        if (n <= 0)
            return dc_fail(err, DC_ERR_IO, "connection closed or timed out");
        *len += (size_t)n;
    }
    return DC_OK;
}

/* Dual mode (dmime-dmtp.md 11.6): plain banner announcing DMTPv1, `STARTTLS <host>
 * MODE=DMTPv1`, a 2xx, then TLS. false (why filled) when the peer does not offer it. */
bool dl_dual_start(int fd, const char *host, char *why, size_t wl)
{
    uint8_t *buf = dc_xmalloc(DC_DMTP_LINE_MAX);
    size_t len = 0;
    struct dc_dmtp_reply rep;
    struct dc_err e = {0};
    bool ok = false;
    if (plain_reply(fd, buf, &len, &rep, &e) != DC_OK || rep.code != 220 ||
        !dmtpv1(rep.lines[0])) {
        snprintf(why, wl, "%s: dual mode: no DMTPv1 banner%s%.150s", host, e.code ? ": " : "",
                 e.msg);
    } else {
        dc_dmtp_reply_free(&rep);
        char cmd[300];
        int n = snprintf(cmd, sizeof(cmd), "STARTTLS %s MODE=DMTPv1\r\n", host);
        if (n < 0 || (size_t)n >= sizeof(cmd) || write(fd, cmd, (size_t)n) != n)
            snprintf(why, wl, "%s: dual mode: write failed", host);
        else if (plain_reply(fd, buf, &len, &rep, &e) != DC_OK || rep.code / 100 != 2)
            snprintf(why, wl, "%s: dual mode: STARTTLS refused", host);
        else if (len != 0)
            snprintf(why, wl, "%s: dual mode: data after the STARTTLS reply", host);
        else
            ok = true;
    }
    dc_dmtp_reply_free(&rep);
    free(buf);
    return ok;
}

/* After the handshake in dual mode, the server confirms the mode over TLS: 2xx OK DMTPv1. */
static bool dual_confirm(struct session *s, char *why, size_t wl, const char *host)
{
    struct dc_dmtp_reply rep;
    struct dc_err e = {0};
    bool ok = read_reply(s, &rep, &e) == DC_OK && rep.code / 100 == 2 && rep.nlines == 1 &&
              strcmp(rep.lines[0], "OK DMTPv1") == 0;
    if (!ok)
        snprintf(why, wl, "%s: dual mode: no OK DMTPv1 after STARTTLS", host);
    dc_dmtp_reply_free(&rep);
    return ok;
}

struct dl_session {
    struct session s;
    int fd;
    unsigned reply_timeout;
};

/* A mail session's reply: all of it within reply_timeout, however it is dripped. */
static void reply_deadline(struct dl_session *s)
{
    s->s.deadline_ms = mono_ms() + (long)s->reply_timeout * 1000;
    s->s.step_s = s->reply_timeout;
}


/* The caller's check of a verified org signet (the relay's POK pins and syndicates). */
static enum dl_outcome org_verified(struct dl_resolver *r, const char *domain,
                                    struct dl_lookup *l)
{
    char why[1000] = "";
    if (r->hooks == NULL || r->hooks->org_verified == NULL ||
        r->hooks->org_verified(r, domain, l, why, sizeof(why)))
        return DL_OUT_SECURE;
    return set(l, DL_OUT_TEMPFAIL, "%s", why);
}

static enum dl_outcome resolve(struct dl_resolver *r, const char *name, bool require_dnssec,
                               const char *known_fp, struct dl_lookup *l,
                               struct dl_session **keep)
{
    memset(l, 0, sizeof(*l));
    struct dc_err e = {0};
    if (dc_dmtp_check_name(name, &e) != DC_OK)
        return set(l, DL_OUT_REFUSED, "bad name: %s", e.msg);
    const char *at = strrchr(name, '@');
    const char *domain = at ? at + 1 : name;
    const char *user = at ? name : NULL;
    /* 0 (a configuration built by hand, not loaded): no deadline, as before the option */
    unsigned dl = r->cfg.lookup_deadline ? r->cfg.lookup_deadline : 86400;
    r->deadline_ms = mono_ms() + (long)dl * 1000;
    enum dl_outcome rec_o = find_record(r, domain, require_dnssec, l);
    /* a pinned domain whose record vanished stays DIME for its exp= days: no inheritance */
    if (rec_o == DL_OUT_NOT_DIME && r->hooks != NULL && r->hooks->absent != NULL) {
        char why[400] = "";
        if (r->hooks->absent(r, domain, l->record_sec == DL_DNS_SECURE, why, sizeof(why))) {
            set(l, DL_OUT_TEMPFAIL, "%s", why);
            return l->outcome = DL_OUT_TEMPFAIL;
        }
    }
    if (rec_o == DL_OUT_NOT_DIME)
        rec_o = inherit(r, domain, require_dnssec, l);
    if (rec_o != DL_OUT_SECURE && rec_o != DL_OUT_INSECURE)
        return rec_o;
    /* whose DX and org signet: the name's, or the ancestor's whose record stands for it */
    const char *org_domain = l->inherited_from[0] ? l->inherited_from : domain;
    struct hosts *h = dc_xcalloc(1, sizeof(*h));
    dl_dx_hosts(r, org_domain, l, h);
    char why[300] = "no DX host";
    enum dl_outcome o = DL_OUT_TEMPFAIL;
    size_t nh = r->cfg.dx_max_hosts && r->cfg.dx_max_hosts < h->n ? r->cfg.dx_max_hosts : h->n;
    bool late = false;
    for (size_t i = 0; i < nh; i++) {
        bool dual = false;
        if ((late = step_ms(r->deadline_ms, r->cfg.connect_timeout) == 0))
            break;
        l->dx_port = r->cfg.remote_port;
        int fd = connect_host(r, h->name[i], l->dx_port, l, why, sizeof(why));
        if (fd < 0 && h->mx[i]) {
            /* an MX host without port 26: DMTP through STARTTLS on the dual-mode port */
            l->dx_port = r->cfg.remote_dual_port;
            fd = connect_host(r, h->name[i], l->dx_port, l, why, sizeof(why));
            if (fd >= 0 && !dl_dual_start(fd, h->name[i], why, sizeof(why))) {
                close(fd);
                fd = -1;
            }
            dual = fd >= 0;
        }
        if (fd < 0)
            continue;
        l->dual_mode = dual;
        snprintf(l->dx_host, sizeof(l->dx_host), "%s", h->name[i]);
        SSL *ssl = SSL_new(r->tls);
        struct session *s = dc_xcalloc(1, sizeof(*s));
        s->ssl = ssl;
        s->vrfy_seen = r->hooks != NULL ? r->hooks->vrfy_seen : NULL;
        s->deadline_ms = r->deadline_ms;
        s->step_s = r->cfg.connect_timeout;
        char eb[200];
        ERR_clear_error();
        if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
            SSL_set_tlsext_host_name(ssl, h->name[i]) != 1 || !session_arm(s) ||
            SSL_connect(ssl) != 1) {
            snprintf(why, sizeof(why), "%s: TLS handshake failed: %s", h->name[i],
                     dl_tls_error(eb, sizeof(eb)));
            o = DL_OUT_TEMPFAIL;
        } else {
            o = check_cert(ssl, h->name[i], l);
            if (o == DL_OUT_SECURE && dual && !dual_confirm(s, why, sizeof(why), h->name[i]))
                o = DL_OUT_TEMPFAIL;
            else if (o == DL_OUT_SECURE) {
                o = signets(s, !dual, org_domain, r->org_fp, user, known_fp, &r->held_org,
                            &r->held_user, l);
                if (o == DL_OUT_SECURE) /* the pin is the org signet's domain's */
                    o = org_verified(r, org_domain, l);
                if (o == DL_OUT_SECURE && keep != NULL) {
                    /* the caller continues the session (mail transfer) */
                    struct dl_session *ks = dc_xcalloc(1, sizeof(*ks));
                    ks->s = *s;
                    ks->s.deadline_ms = 0; /* reply_timeout from here on */
                    ks->fd = fd;
                    *keep = ks;
                    free(s);
                    break;
                }
                struct dc_dmtp_reply rep;
                dc_dmtp_reply_init(&rep);
                if (o == DL_OUT_SECURE && command(s, &rep, &e, "QUIT") == DC_OK)
                    SSL_shutdown(ssl);
                dc_dmtp_reply_free(&rep);
            }
        }
        SSL_free(ssl);
        free(s);
        close(fd);
        if (o != DL_OUT_TEMPFAIL || l->reason[0] != '\0')
            break; /* a DX that answered decides; an unreachable one passes to the next */
    }
    late = late || (o == DL_OUT_TEMPFAIL && step_ms(r->deadline_ms, 1) == 0);
    size_t total = h->n;
    free(h);
    if (late) { /* a DX that did answer in time decided already; this one ran out of time */
        char last[sizeof(l->reason)];
        snprintf(last, sizeof(last), "%s", l->reason[0] != '\0' ? l->reason : why);
        return set(l, DL_OUT_TEMPFAIL, "lookup-deadline of %u s passed: %s",
                   r->cfg.lookup_deadline, last);
    }
    if (o == DL_OUT_TEMPFAIL && l->reason[0] == '\0' && nh < total)
        return set(l, DL_OUT_TEMPFAIL, "no DX reachable (%zu of %zu DX hosts tried: "
                   "dx-max-hosts): %s", nh, total, why);
    if (o == DL_OUT_TEMPFAIL && l->reason[0] == '\0')
        return set(l, DL_OUT_TEMPFAIL, "no DX reachable: %s", why);
    if (o == DL_OUT_SECURE)
        l->outcome = o = rec_o;
    return o;
}

enum dl_outcome dl_resolve(struct dl_resolver *r, const char *name, bool require_dnssec,
                           const char *known_fp, struct dl_lookup *l)
{
    return resolve(r, name, require_dnssec, known_fp, l, NULL);
}

enum dl_outcome dl_resolve_open(struct dl_resolver *r, const char *domain, bool require_dnssec,
                                unsigned reply_timeout, struct dl_lookup *l,
                                struct dl_session **out)
{
    *out = NULL;
    if (strchr(domain, '@') != NULL)
        return set(l, DL_OUT_REFUSED, "a destination is a domain");
    enum dl_outcome o = resolve(r, domain, require_dnssec, NULL, l, out);
    if (*out != NULL) {
        (*out)->reply_timeout = reply_timeout;
        struct timeval tv = {(time_t)reply_timeout, 0};
        setsockopt((*out)->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt((*out)->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    return o;
}

enum dc_status dl_session_cmd(struct dl_session *s, struct dc_dmtp_reply *rep,
                              struct dc_err *err, const char *line)
{
    dc_dmtp_reply_init(rep);
    if (s->reply_timeout != 0) /* else the resolution's deadline (dl_session_open_ca) */
        reply_deadline(s);
    return command(&s->s, rep, err, "%s", line);
}

enum dc_status dl_session_data(struct dl_session *s, const uint8_t *p, size_t n,
                               struct dc_dmtp_reply *rep, struct dc_err *err)
{
    dc_dmtp_reply_init(rep);
    while (n > 0) {
        int chunk = n > (1u << 20) ? (1 << 20) : (int)n;
        int w = SSL_write(s->s.ssl, p, chunk);
        if (w <= 0)
            return dc_fail(err, DC_ERR_IO, "write failed");
        p += w;
        n -= (size_t)w;
    }
    if (SSL_write(s->s.ssl, "\r\n", 2) != 2)
        return dc_fail(err, DC_ERR_IO, "write failed");
    dc_dmtp_reply_free(rep);
    reply_deadline(s); /* the bytes took what they took (each write within reply_timeout) */
    return read_reply(&s->s, rep, err);
}

bool dl_session_quiet(struct dl_session *s)
{
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    return SSL_pending(s->s.ssl) == 0 && poll(&p, 1, 0) == 0;
}

void dl_session_close(struct dl_session *s, bool quit)
{
    if (s == NULL)
        return;
    if (quit) {
        struct dc_dmtp_reply rep;
        struct dc_err e = {0};
        if (command(&s->s, &rep, &e, "QUIT") == DC_OK)
            SSL_shutdown(s->s.ssl);
        dc_dmtp_reply_free(&rep);
    }
    SSL_free(s->s.ssl);
    close(s->fd);
    free(s);
}

enum dc_status dl_connect_to_parse(const char *spec, struct sockaddr_storage *ss,
                                   socklen_t *sl)
{
    char a[64];
    const char *colon = strrchr(spec, ':');
    size_t al = colon != NULL ? (size_t)(colon - spec) : 0;
    bool bracketed = al >= 2 && spec[0] == '[' && spec[al - 1] == ']'; /* [v6]:port */
    if (bracketed) {
        spec++;
        al -= 2;
    }
    if (colon == NULL || al == 0 || al >= sizeof(a) ||
        (!bracketed && memchr(spec, ':', al) != NULL)) /* an IPv6 address needs brackets */
        return DC_ERR_ARG;
    memcpy(a, spec, al);
    a[al] = '\0';
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port == 0 || port > 65535)
        return DC_ERR_ARG;
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *sl = sizeof(*s6);
    } else {
        return DC_ERR_ARG;
    }
    return DC_OK;
}

struct dl_session *dl_session_open_ca(struct dl_resolver *r, const char *host, unsigned port,
                                      char *why, size_t wl)
{
    struct dl_lookup *scratch = dc_xcalloc(1, sizeof(*scratch));
    int fd = connect_host(r, host, port, scratch, why, wl);
    free(scratch);
    if (fd < 0)
        return NULL;
    struct dl_session *ks = dc_xcalloc(1, sizeof(*ks));
    struct session *s = &ks->s;
    ks->fd = fd;
    s->deadline_ms = r->deadline_ms;
    s->step_s = r->cfg.connect_timeout;
    s->ssl = SSL_new(r->tls);
    struct dc_dmtp_reply rep;
    struct dc_err e = {0};
    char eb[200];
    dc_dmtp_reply_init(&rep);
    ERR_clear_error();
    if (s->ssl == NULL || SSL_set_fd(s->ssl, fd) != 1 ||
        SSL_set_tlsext_host_name(s->ssl, host) != 1 || !session_arm(s) ||
        SSL_connect(s->ssl) != 1) {
        snprintf(why, wl, "%.100s: TLS handshake failed: %.80s", host, dl_tls_error(eb, sizeof(eb)));
        goto fail;
    }
    X509 *cert = SSL_get1_peer_certificate(s->ssl);
    bool trusted = cert != NULL && SSL_get_verify_result(s->ssl) == X509_V_OK &&
                   X509_check_host(cert, host, 0, 0, NULL) == 1;
    X509_free(cert);
    if (!trusted) {
        snprintf(why, wl, "%.100s: certificate not trusted (CA chain and host name)", host);
        goto fail;
    }
    if (read_reply(s, &rep, &e) != DC_OK || rep.code != 220 || !dmtpv1(rep.lines[0])) {
        snprintf(why, wl, "%.100s: no DMTPv1 banner", host);
        goto fail;
    }
    dc_dmtp_reply_free(&rep);
    return ks;
fail:
    dc_dmtp_reply_free(&rep);
    dl_session_close(ks, false);
    return NULL;
}
