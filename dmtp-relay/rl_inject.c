/*
 * rl_inject - injection into Postfix and DSNs. See rl_inject.h.
 */
#include "rl_inject.h"

#include "rl_boot.h"
#include "rl_inject_int.h"
#include "rl_metrics.h"
#include "dl_log.h"

#include "dc_b64.h"
#include "rl_queue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * inject-concurrency sessions, each a thread with its own queue connection and SMTP
 * connection. A session claims a message by putting its id in busy[] under claim_mu, and
 * looks only at messages no other session holds (rl_queue_in_next_except); the slot is
 * cleared once the outcome is in the queue. The claim lives only in memory: after a crash
 * nothing is in flight, and the pending mark and generation in the queue (rl_inject.h) are
 * per message, written only by the session that holds it. DSNs go through session 0 only.
 */
struct rl_injector {
    const struct rl_config *cfg;
    unsigned n;
    pthread_t *th;
    struct inj_session *sess;
    pthread_mutex_t mu; /* wakes, the journal */
    pthread_cond_t cv;
    unsigned long wakes; /* rl_injector_wake calls so far */
    atomic_int stop; /* set under mu, read by the sessions without it */
    pthread_mutex_t claim_mu;
    char (*busy)[24]; /* per session: the tid it injects, or "" */
    /* the injection journal, shared (below) */
    int jfd;
    unsigned jlines;    /* lines written since it was last emptied */
    unsigned joutstanding; /* lines whose queue update is not done yet */
    int64_t started;    /* rl_now() at start */
    bool boot_checked;  /* boot_check done (by the first session to get a queue) */
};

struct inj_session {
    struct rl_injector *inj;
    unsigned no;
};

void rl_injector_wake(void *ctx)
{
    struct rl_injector *i = ctx;
    pthread_mutex_lock(&i->mu);
    i->wakes++;
    pthread_cond_broadcast(&i->cv);
    pthread_mutex_unlock(&i->mu);
}

static void rfc5322_date(char *out, size_t cap, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* Lines of 76 base64 characters (57 bytes) and CRLF, encoded in place into room reserved
 * for all of them at once (appending line by line regrew and copied the buffer about a dozen
 * times for a 256 KiB message). */
static void b64_lines(struct dc_buf *b, const uint8_t *p, size_t n)
{
    size_t nlines = (n + 56) / 57;
    dc_buf_reserve(b, nlines * 78);
    char *o = (char *)b->data + b->len;
    for (size_t off = 0; off < n; off += 57) {
        size_t k = n - off < 57 ? n - off : 57;
        o += dc_b64_encode(p + off, k, o, 1);
        *o++ = '\r';
        *o++ = '\n';
    }
    b->len = (size_t)((uint8_t *)o - b->data);
    b->data[b->len] = '\0';
}

void rl_inject_wrapper(struct dc_buf *b, const char *hostname, const char *tid, unsigned gen,
                       const char *origin, const char *recipient, const uint8_t *dmime,
                       size_t len)
{
    char date[64];
    rfc5322_date(date, sizeof(date), time(NULL));
    dc_buf_printf(b,
                  "Received: from %s by %s (dime-relayd) with DMTP id %s;\r\n\t%s\r\n"
                  "X-DIME-Transaction: %s\r\n"
                  "X-DIME-Injection: %s.%u\r\n"
                  "Message-ID: <%s@%s>\r\n"
                  "Date: %s\r\n"
                  "From: MAILER-DAEMON@%s\r\n"
                  "To: <%s>\r\n"
                  "MIME-Version: 1.0\r\n"
                  "Content-Type: application/x-dime\r\n"
                  "Content-Transfer-Encoding: base64\r\n"
                  "\r\n",
                  origin, hostname, tid, date, tid, tid, gen, tid, hostname, date, hostname,
                  recipient);
    b64_lines(b, dmime, len);
}

static void dsn_text(struct dc_buf *b, const struct rl_config *cfg, const struct rl_q_out *m)
{
    char date[64], arr[64], boundary[40];
    rfc5322_date(date, sizeof(date), time(NULL));
    rfc5322_date(arr, sizeof(arr), (time_t)m->created);
    rl_random_id(boundary, 12);
    bool expired = strncmp(m->last_error, "delivery time expired", 21) == 0;
    dc_buf_printf(b,
                  "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
                  "To: <%s>\r\n"
                  "Subject: Undelivered Mail Returned to Sender\r\n"
                  "Date: %s\r\n"
                  "Message-ID: <%s.dsn@%s>\r\n"
                  "Auto-Submitted: auto-replied\r\n"
                  "MIME-Version: 1.0\r\n"
                  "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                  "\tboundary=\"%s\"\r\n"
                  "\r\n"
                  "This is a MIME-encapsulated message.\r\n"
                  "\r\n"
                  "--%s\r\n"
                  "Content-Type: text/plain; charset=us-ascii\r\n"
                  "\r\n"
                  "This is the DIME relay at %s.\r\n"
                  "\r\n"
                  "Your message (Postfix queue id %s) could not be delivered to\r\n"
                  "<%s> over DMTP%s.\r\n"
                  "\r\n"
                  "The remote system or the relay said: %s\r\n"
                  "\r\n"
                  "--%s\r\n"
                  "Content-Type: message/delivery-status\r\n"
                  "\r\n"
                  "Reporting-MTA: dns; %s\r\n"
                  "X-Postfix-Queue-ID: %s\r\n"
                  "X-DIME-Queue-ID: %s\r\n"
                  "Arrival-Date: %s\r\n"
                  "\r\n"
                  "Final-Recipient: rfc822; %s\r\n"
                  "Action: failed\r\n"
                  "Status: %s\r\n"
                  "Remote-MTA: dns; %s\r\n"
                  "Diagnostic-Code: X-DMTP; %s\r\n"
                  "\r\n"
                  "--%s--\r\n",
                  cfg->hostname, m->sender, date, m->id, cfg->hostname, boundary, boundary,
                  cfg->hostname, m->pf_qid, m->recipient,
                  expired ? " within the queue lifetime" : "", m->last_error, boundary,
                  cfg->hostname, m->pf_qid, m->id, arr, m->recipient,
                  expired ? "4.4.7" : "5.0.0", m->domain, m->last_error, boundary);
}

/* ---- a minimal SMTP client ---- */

int rl_smtp_reply(struct smtp *s, char *text, size_t cap)
{
    for (;;) {
        char *nl = memchr(s->buf, '\n', s->len);
        while (nl != NULL) {
            size_t ll = (size_t)(nl - s->buf) + 1;
            /* "250 text", or the code alone ("250" CRLF, RFC 5321 4.2: the text is optional) */
            bool last = ll >= 4 && (s->buf[3] == ' ' || s->buf[3] == '\n' ||
                                    (s->buf[3] == '\r' && ll == 5));
            bool cont = ll >= 4 && s->buf[3] == '-';
            /* a reply line starts with three digits, the first 2-5 (RFC 5321 4.2); anything
             * else from the listener is a protocol error, not a code */
            const char *d = s->buf;
            bool digits = ll >= 4 && d[0] >= '2' && d[0] <= '5' && d[1] >= '0' && d[1] <= '9' &&
                          d[2] >= '0' && d[2] <= '9';
            int code = digits ? (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0') : -1;
            if (last && text) {
                size_t tl = ll - 1 < cap - 1 ? ll - 1 : cap - 1;
                memcpy(text, s->buf, tl);
                text[tl] = '\0';
                if (tl && text[tl - 1] == '\r')
                    text[--tl] = '\0';
                /* the text goes to the log and the queue's last error (relayctl, DSNs):
                 * nothing but printable ASCII, whatever the listener sent */
                for (size_t i = 0; i < tl; i++)
                    if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] > 0x7e)
                        text[i] = '?';
            }
            memmove(s->buf, s->buf + ll, s->len - ll);
            s->len -= ll;
            if (last)
                return code;
            if (!cont || !digits)
                return -1;
            nl = memchr(s->buf, '\n', s->len);
        }
        if (s->len == sizeof(s->buf))
            return -1;
        ssize_t n = read(s->fd, s->buf + s->len, sizeof(s->buf) - s->len);
        if (n <= 0)
            return -1;
        s->len += (size_t)n;
    }
}

static bool send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

static int smtp_cmd(struct smtp *s, char *text, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int smtp_cmd(struct smtp *s, char *text, size_t cap, const char *fmt, ...)
{
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) || !send_all(s->fd, line, (size_t)n))
        return -1;
    return rl_smtp_reply(s, text, cap);
}

static void smtp_close(struct smtp *s, bool quit)
{
    if (s->fd < 0)
        return;
    if (quit)
        smtp_cmd(s, NULL, 0, "QUIT\r\n");
    close(s->fd);
    s->fd = -1;
    s->len = 0;
}

static bool smtp_open(const struct rl_config *cfg, struct smtp *s, char *why, size_t wl)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sl;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, cfg->inject_address, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)cfg->inject_port);
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, cfg->inject_address, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)cfg->inject_port);
        sl = sizeof(*s6);
    } else {
        snprintf(why, wl, "inject-address is not an IP address");
        return false;
    }
    s->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    s->len = 0;
    struct timeval tv = {60, 0};
    if (s->fd >= 0) {
        setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&ss, sl) != 0) {
        snprintf(why, wl, "connect to %s port %u: %s", cfg->inject_address, cfg->inject_port,
                 strerror(errno));
        if (s->fd >= 0)
            close(s->fd);
        s->fd = -1;
        return false;
    }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char t[300];
    int c = rl_smtp_reply(s, t, sizeof(t));
    if (c == 220)
        c = smtp_cmd(s, t, sizeof(t), "EHLO %s\r\n", cfg->hostname);
    if (c != 250) {
        snprintf(why, wl, "Postfix greeting/EHLO: %s", c < 0 ? "connection lost" : t);
        smtp_close(s, false);
        return false;
    }
    return true;
}

/* One message. 250: delivered; 4xx/5xx/-1 otherwise (why filled). *dot: the final dot was
 * sent, so with -1 (no reply) Postfix may have queued the message. */
static int smtp_send(struct smtp *s, const char *from, const char *rcpt, const struct dc_buf *msg,
                     bool *dot, char *why, size_t wl)
{
    *dot = false;
    char t[300];
    int c = smtp_cmd(s, t, sizeof(t), "MAIL FROM:<%s>\r\n", from);
    if (c == 250)
        c = smtp_cmd(s, t, sizeof(t), "RCPT TO:<%s>\r\n", rcpt);
    if (c == 250 || c == 251)
        c = smtp_cmd(s, t, sizeof(t), "DATA\r\n");
    if (c == 354) {
        /* our text: header lines we wrote and base64; dot-stuff anyway. The lines go out
         * in runs up to the next line that starts with a dot (in practice the whole
         * message in one send), not one send per line: with TCP_NODELAY each line was a
         * segment of its own, about 1,200 for a 64 KiB message (bench/pipeline). The scan
         * looks for dots, not for line ends: base64 has none, so the body is one memchr
         * (one per 78-byte line was 2-3% of the relay's CPU at 256 KiB). */
        const uint8_t *p = msg->data;
        size_t n = msg->len;
        bool ok = true;
        size_t run = 0; /* first byte not sent yet */
        for (const uint8_t *d = memchr(p, '.', n); d != NULL && ok;
             d = memchr(d + 1, '.', n - (size_t)(d + 1 - p))) {
            size_t i = (size_t)(d - p);
            if (i == 0 || p[i - 1] == '\n') { /* a line that starts with a dot */
                ok = send_all(s->fd, p + run, i - run) && send_all(s->fd, ".", 1);
                run = i;
            }
        }
        if (ok)
            ok = send_all(s->fd, p + run, n - run);
        if (ok && send_all(s->fd, ".\r\n", 3)) {
            *dot = true;
            c = rl_smtp_reply(s, t, sizeof(t));
        } else {
            c = -1;
        }
    }
    if (c != 250)
        snprintf(why, wl, "Postfix: %s", c < 0 ? "connection lost" : t);
    return c;
}

/*
 * The injection journal (queue-database + ".injected"): the id of every message Postfix
 * accepted is appended with one write(2) the moment the 250 arrives, before the queue
 * database is updated (which may wait for the SQLite write lock and an fsync). A relay
 * killed in between finds the id there on restart and does not inject the message again.
 * What remains is the time between Postfix's own commit and that write.
 * Neither the appends nor the truncations are fsynced, on purpose: the journal is there for
 * a process that dies, whose writes the kernel keeps. A power cut may lose its last lines
 * (or the database's done marks it stood for, rl_queue_in_done, or a truncation may reach
 * the disk before them): then those messages are queued again with their attempt pending,
 * and the host restart gives each a new generation (boot_check), so Postfix gets a second
 * copy of what it had taken. A duplicate, never a loss; DSNs (at least once anyway) alike.
 */
/*
 * After a host restart (rl_inject.h): attempts left pending get a new generation. Done once
 * per start, before the first injection; the new boot id is stored only after the queue
 * commit, so a relay that dies in between does it again on its next start.
 */
static void boot_check(const struct rl_config *cfg, struct rl_queue *q)
{
    char id[RL_BOOT_ID_LEN + 1], path[4200];
    if (!rl_boot_id(id)) {
        dl_log(LOG_WARNING, "inject boot id unknown: attempts pending at a host restart keep "
               "their generation");
        return;
    }
    snprintf(path, sizeof(path), "%s.boot", cfg->queue_database);
    if (!rl_boot_changed(path, id))
        return;
    unsigned n = 0;
    struct dc_err e = {0};
    if (rl_queue_in_unpend(q, &n, &e) != DC_OK) {
        dl_log(LOG_ERR, "inject host restart: queue error=\"%s\"", e.msg);
        return;
    }
    if (n)
        dl_log(LOG_WARNING, "inject host restarted: %u attempt%s of unknown outcome go again "
               "with a new generation (Postfix may have lost an unsynced copy)", n,
               n == 1 ? "" : "s");
    if (!rl_boot_save(path, id))
        dl_log(LOG_ERR, "inject %s: %s", path, strerror(errno));
}

static int journal_open(const struct rl_config *cfg, struct rl_queue *q)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s.injected", cfg->queue_database);
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        dl_log(LOG_ERR, "inject journal %s: %s", path, strerror(errno));
        return -1;
    }
    /* replay: ids recorded by an earlier run */
    char buf[8192], id[32];
    size_t il = 0;
    ssize_t n;
    unsigned replayed = 0;
    bool ok = true;
    off_t off = 0;
    while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
        off += n;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (il < sizeof(id) - 1)
                    id[il++] = buf[i];
                continue;
            }
            id[il] = '\0';
            il = 0;
            struct dc_err e = {0};
            enum dc_status st = id[0] == 'd' ? rl_queue_out_done(q, id + 2, &e)
                                             : rl_queue_in_done(q, id + 2, &e);
            if (st != DC_OK)
                ok = false;
            replayed++;
        }
    }
    if (replayed)
        dl_log(LOG_INFO, "inject journal replayed=%u", replayed);
    if (ok && ftruncate(fd, 0) != 0)
        dl_log(LOG_ERR, "inject journal: truncate: %s", strerror(errno));
    return fd;
}

static void journal_add(struct rl_injector *inj, bool dsn, const char *id)
{
    pthread_mutex_lock(&inj->mu);
    int fd = inj->jfd;
    if (fd >= 0) {
        inj->jlines++;
        inj->joutstanding++;
    }
    pthread_mutex_unlock(&inj->mu);
    if (fd < 0)
        return;
    char line[64];
    int n = snprintf(line, sizeof(line), "%c %s\n", dsn ? 'd' : 'i', id);
    /* O_APPEND: the sessions' lines do not interleave */
    if (write(fd, line, (size_t)n) != n)
        dl_log(LOG_ERR, "inject journal: write: %s", strerror(errno));
}

/* The queue has what journal_add recorded for one message. */
static void journal_settled(struct rl_injector *inj)
{
    pthread_mutex_lock(&inj->mu);
    if (inj->jfd >= 0 && inj->joutstanding > 0)
        inj->joutstanding--;
    pthread_mutex_unlock(&inj->mu);
}

/* A session is idle: when every journaled id is in the queue too, start the journal anew. */
static void journal_trim(struct rl_injector *inj)
{
    pthread_mutex_lock(&inj->mu);
    if (inj->jfd >= 0 && inj->jlines > 0 && inj->joutstanding == 0 && ftruncate(inj->jfd, 0) == 0)
        inj->jlines = 0;
    pthread_mutex_unlock(&inj->mu);
}

/* The next inbound message no other session holds, claimed for session no. */
static void claim_in(struct rl_injector *inj, unsigned no, struct rl_queue *q, int64_t now,
                     struct rl_q_in *in, bool *found, struct dc_err *e)
{
    char(*others)[24] = dc_xcalloc(inj->n, sizeof(*others));
    pthread_mutex_lock(&inj->claim_mu);
    size_t k = 0;
    for (unsigned j = 0; j < inj->n; j++)
        if (j != no && inj->busy[j][0] != '\0')
            memcpy(others[k++], inj->busy[j], sizeof(others[0]));
    rl_queue_in_next_except(q, now, (const char(*)[24])others, k, in, found, e);
    if (*found)
        snprintf(inj->busy[no], sizeof(inj->busy[no]), "%s", in->tid);
    pthread_mutex_unlock(&inj->claim_mu);
    free(others);
}

static void release_in(struct rl_injector *inj, unsigned no)
{
    pthread_mutex_lock(&inj->claim_mu);
    inj->busy[no][0] = '\0';
    pthread_mutex_unlock(&inj->claim_mu);
}

static void *inject_main(void *arg)
{
    struct inj_session *ses = arg;
    struct rl_injector *inj = ses->inj;
    const unsigned no = ses->no;
    const struct rl_config *cfg = inj->cfg;
    struct rl_queue *q = NULL;
    struct smtp s = {.fd = -1};
    struct dc_err e = {0};
    int64_t down_until = 0, idle_since = 0;
    unsigned long seen = 0;
    while (!inj->stop) {
        bool worked = false;
        if (q == NULL && rl_queue_open(cfg->queue_database, cfg->queue_key_file, &q, &e) != DC_OK) {
            dl_log(LOG_ERR, "inject queue error=\"%s\"", e.msg);
            q = NULL;
        }
        /* the journal is opened and replayed by the first session to get here; the others
         * wait for it on the mutex */
        pthread_mutex_lock(&inj->mu);
        if (q != NULL && !inj->boot_checked) {
            boot_check(cfg, q);
            inj->boot_checked = true;
        }
        if (q != NULL && inj->jfd < 0)
            inj->jfd = journal_open(cfg, q);
        seen = inj->wakes;
        pthread_mutex_unlock(&inj->mu);
        int64_t now = rl_now();
        if (q != NULL && now >= down_until) {
            struct rl_q_in in;
            struct rl_q_out b;
            bool f1 = false, f2 = false;
            char why[400];
            claim_in(inj, no, q, now, &in, &f1, &e);
            if (!f1 && no == 0)
                rl_queue_bounce_next(q, now, &b, &f2, &e);
            if ((f1 || f2) && f2 && b.sender[0] == '\0') {
                dl_log(LOG_WARNING, "dsn id=%s qid=%s status=dropped reason=\"null sender\"", b.id,
                       b.pf_qid);
                rl_queue_out_done(q, b.id, &e);
                worked = true;
            } else if (f1 || f2) {
                worked = true;
                /* the generation of this attempt (rl_inject.h): the pending one again when
                 * its outcome is unknown, else a new one, durable before anything is sent */
                unsigned gen = f1 ? (in.pending ? in.gen : in.gen + 1) : 0;
                /* a row stored since this relay started and not tried yet holds the
                 * generation reserved for its first attempt (rl_queue_in_add); one stored
                 * before and never deferred may have had that attempt under way at a restart
                 * (or not: the two cannot be told apart) */
                bool fresh = in.attempts == 0 && in.created > inj->started;
                if (f1 && in.pending && !fresh)
                    dl_log(LOG_WARNING, "inject id=%s gen=%u status=repeat reason=\"%s\"", in.tid,
                           gen,
                           in.attempts == 0 && in.gen == 1
                               ? "first attempt, may have been under way at a restart"
                               : "outcome of the last attempt unknown");
                if (f1 && !in.pending && rl_queue_in_attempt(q, in.tid, gen, &e) != DC_OK) {
                    dl_log(LOG_WARNING, "inject id=%s status=deferred reason=\"%s\"", in.tid,
                           e.msg);
                    rl_q_in_free(&in);
                    release_in(inj, no);
                    down_until = rl_now() + cfg->retry_min;
                    continue;
                }
                struct dc_buf msg;
                dc_buf_init(&msg);
                if (f1)
                    rl_inject_wrapper(&msg, cfg->hostname, in.tid, gen, in.origin, in.recipient,
                                      in.data, in.len);
                else
                    dsn_text(&msg, cfg, &b);
                int c = -1;
                bool dot = false;
                const char *to = f1 ? in.recipient : b.sender;
                bool reused = s.fd >= 0;
                if (s.fd >= 0 || smtp_open(cfg, &s, why, sizeof(why)))
                    c = smtp_send(&s, "", to, &msg, &dot, why, sizeof(why));
                if (c < 0 && !dot && reused) {
                    /* a kept connection Postfix closed meanwhile (its smtpd timed out):
                     * nothing of this attempt reached it, so it goes on a new connection */
                    smtp_close(&s, false);
                    if (smtp_open(cfg, &s, why, sizeof(why)))
                        c = smtp_send(&s, "", to, &msg, &dot, why, sizeof(why));
                }
                dc_buf_free(&msg);
                const char *id = f1 ? in.tid : b.id;
                if (c == 250) {
                    journal_add(inj, !f1, id);
                    if (f1)
                        rl_queue_in_done(q, in.tid, &e);
                    else
                        rl_queue_out_done(q, b.id, &e);
                    journal_settled(inj);
                    rl_count_message(f1 ? RL_ROUTE_INJECTED : RL_ROUTE_DSN, 1);
                    if (f1)
                        dl_log(LOG_INFO, "inject id=%s gen=%u status=injected", id, gen);
                    else
                        dl_log(LOG_INFO, "dsn id=%s status=injected", id);
                } else {
                    unsigned att = f1 ? in.attempts : 0;
                    int64_t next = rl_now() + (c >= 500 && c < 600 ? (int64_t)cfg->retry_max
                                                                   : rl_backoff(att, cfg->retry_min,
                                                                                cfg->retry_max));
                    /* a message Postfix has refused (or been unreachable for) since
                     * inject-hold-after is held for the postmaster instead of being retried
                     * for ever: dime-relayctl queue list shows it, queue release retries it */
                    bool hold = f1 && now - in.created >= (int64_t)cfg->inject_hold_after;
                    rl_count_defer(RL_DEFER_INJECTION);
                    /* pending stays for an attempt that may have been queued (the dot
                     * went out, no reply), and for a repeat that failed before its dot (a
                     * connection refused while Postfix restarts): nothing of it reached the
                     * milter, and the earlier attempt's outcome is as unknown as it was; a
                     * new generation would be a second copy if that attempt was queued */
                    if (f1)
                        rl_queue_in_defer(q, in.tid, next, why,
                                          (c < 0 && dot) || (in.pending && !dot), &e);
                    else
                        rl_queue_bounce_retry(q, b.id, next, &e);
                    if (hold && rl_queue_hold(q, in.tid, true, &e) == DC_OK)
                        dl_log(LOG_ALERT, "inject id=%s status=held reason=\"not injected for "
                               "%lld s (inject-hold-after); dime-relayctl queue release %s "
                               "retries it: %s\"", in.tid, (long long)(now - in.created),
                               in.tid, why);
                    if (f1)
                        dl_log(LOG_WARNING, "inject id=%s gen=%u status=deferred%s reason=\"%s\"",
                               id, gen, c < 0 && dot ? " outcome=unknown" : "", why);
                    else
                        dl_log(LOG_WARNING, "dsn id=%s status=deferred reason=\"%s\"", id, why);
                    if (c < 0) {
                        /* Postfix unreachable: wait before the next attempt of anything */
                        smtp_close(&s, false);
                        down_until = rl_now() + cfg->retry_min;
                    } else if (smtp_cmd(&s, NULL, 0, "RSET\r\n") != 250) {
                        smtp_close(&s, false);
                    }
                }
                if (f1) {
                    rl_q_in_free(&in);
                    release_in(inj, no);
                }
            }
        }
        if (worked) {
            idle_since = 0;
            continue;
        }
        journal_trim(inj);
        /* the connection is kept for a message that may follow soon; after two idle seconds
         * it is closed, well inside Postfix's smtpd_timeout */
        now = rl_now();
        if (idle_since == 0)
            idle_since = now;
        if (s.fd >= 0 && now - idle_since >= 2)
            smtp_close(&s, true);
        pthread_mutex_lock(&inj->mu);
        if (inj->wakes == seen && !inj->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += s.fd >= 0 ? 1 : cfg->queue_scan_interval;
            pthread_cond_timedwait(&inj->cv, &inj->mu, &ts);
        }
        pthread_mutex_unlock(&inj->mu);
    }
    smtp_close(&s, true);
    rl_queue_close(q);
    return NULL;
}

enum dc_status rl_injector_start(const struct rl_config *cfg, struct rl_injector **out,
                                 struct dc_err *err)
{
    struct rl_injector *i = dc_xcalloc(1, sizeof(*i));
    i->cfg = cfg;
    i->n = cfg->inject_concurrency ? cfg->inject_concurrency : 1;
    i->jfd = -1;
    i->started = rl_now();
    i->th = dc_xcalloc(i->n, sizeof(*i->th));
    i->sess = dc_xcalloc(i->n, sizeof(*i->sess));
    i->busy = dc_xcalloc(i->n, sizeof(*i->busy));
    pthread_mutex_init(&i->mu, NULL);
    pthread_cond_init(&i->cv, NULL);
    pthread_mutex_init(&i->claim_mu, NULL);
    unsigned started = 0;
    for (; started < i->n; started++) {
        i->sess[started] = (struct inj_session){i, started};
        if (pthread_create(&i->th[started], NULL, inject_main, &i->sess[started]) != 0)
            break;
    }
    if (started < i->n) {
        i->n = started; /* the ones running are stopped and joined */
        rl_injector_stop(i);
        return dc_fail(err, DC_ERR_IO, "cannot start the injector");
    }
    *out = i;
    return DC_OK;
}

void rl_injector_stop(struct rl_injector *i)
{
    if (i == NULL)
        return;
    pthread_mutex_lock(&i->mu);
    i->stop = 1;
    pthread_cond_broadcast(&i->cv);
    pthread_mutex_unlock(&i->mu);
    for (unsigned k = 0; k < i->n; k++)
        pthread_join(i->th[k], NULL);
    if (i->jfd >= 0)
        close(i->jfd);
    pthread_mutex_destroy(&i->mu);
    pthread_cond_destroy(&i->cv);
    pthread_mutex_destroy(&i->claim_mu);
    free(i->th);
    free(i->sess);
    free(i->busy);
    free(i);
}
