/*
 * dime-relayctl - the relay seen from the command line. `lookup NAME` shows what the relay
 * sees for a domain or user@domain: the record and its DNSSEC status, the DX chosen, the
 * certificate check, the signets and their fingerprints, and the outcome with its reason.
 *
 * `query NAME` asks the running dime-relayd through its lookup socket (LOOKUP.md), which
 * answers from its signet cache or resolves, and prints the answer as it comes.
 *
 * `pins list|show DOMAIN|reset DOMAIN` reads or resets the relay's pinned organization keys
 * (relayctl_pins.c). `lookup` checks the pins too, but stores nothing.
 *
 * `queue list|flush [ID]|delete ID|hold ID|release ID` works on the relay's queue database,
 * like postqueue -p / postqueue -f / postsuper -d / -h / -H: list prints one line per
 * message still owed (queue id, direction, state, destination or origin domain, Postfix
 * queue id, size, age, attempts, last error), never an address, a subject or content. A
 * flush makes messages due at once; the running relay picks them up within
 * queue-scan-interval. `queue export FILE` moves every owed message into a new queue file (and
 * its key FILE.key), `queue import FILE` moves them from there into this relay's queue: how a
 * node's queue is taken over when the node is gone for good. Exit status: 0 done, 1 no such
 * message, 2 usage, 4 database error.
 *
 * `stats [--raw]` reads the running relay's metrics (metrics-socket, dime-relayd(8)) and
 * prints them as a table, one line per series, a histogram as its count and mean; --raw
 * prints the Prometheus text as the relay sent it. Exit status: 0, or 4 when the relay does
 * not answer.
 *
 * Exit status: 0 verified (secure, or insecure where policy allows it); 1 refused (bogus,
 * invalid, policy); 2 usage or configuration; 3 not a DIME domain; 4 temporary failure.
 */
#include "dc_config.h"
#include "dl_metrics.h"
#include "dl_sock.h"
#include "lookup_proto.h"
#include "relayctl.h"
#include "rl_config.h"
#include "rl_queue.h"
#include "rl_resolve.h"
#include "rl_shared.h"
#include "dl_tls.h"

#include <getopt.h>
#include <sys/stat.h>
#include <poll.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    fprintf(stderr, "usage: dime-relayctl [-c config] [-n] [-d local-domain] "
                    "[--known-fp FP] lookup|query NAME\n"
                    "       dime-relayctl [-c config] queue list|flush [ID]|delete ID|hold ID|"
                    "release ID\n"
                    "       dime-relayctl [-c config] queue export|import FILE\n"
                    "       dime-relayctl [-c config] pins list|show DOMAIN|reset DOMAIN\n"
                    "       dime-relayctl [-c config] stats [--raw]\n");
    exit(2);
}

static int exit_code(enum dl_outcome o)
{
    switch (o) {
    case DL_OUT_SECURE:
    case DL_OUT_INSECURE: return 0;
    case DL_OUT_NOT_DIME: return 3;
    case DL_OUT_TEMPFAIL: return 4;
    default: return 1;
    }
}

/* LOOKUP through the daemon's socket; prints the answer, exit code from its outcome. */
static int query(const struct rl_config *cfg, const char *name, const char *local)
{
    struct dc_err err = {0};
    int fd = dl_sock_connect("relay lookup", cfg->lookup_socket,
                             (int)(cfg->connect_timeout * 1000), 0, &err);
    if (fd < 0) {
        fprintf(stderr, "dime-relayctl: %s\n", err.msg);
        return 4;
    }
    char req[LOOKUP_REQ_MAX + 1];
    size_t n = lookup_req_format(name, local, NULL, req, sizeof(req));
    if (n == 0 || write(fd, req, n) != (ssize_t)n) {
        close(fd);
        return 2;
    }
    struct dc_buf b;
    dc_buf_init(&b);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(cfg->connect_timeout * 4000)) != 1)
            break;
        uint8_t tmp[4096];
        ssize_t r = read(fd, tmp, sizeof(tmp));
        if (r <= 0)
            break;
        dc_buf_append(&b, tmp, (size_t)r);
    }
    close(fd);
    fwrite(b.data, 1, b.len, stdout);
    int rc = 4;
    const char *o = b.len > 8 ? memmem(b.data, b.len, "outcome=", 8) : NULL;
    if (o != NULL) {
        o += 8;
        const char *nl = memchr(o, '\n', b.len - (size_t)(o - (const char *)b.data));
        char word[16] = "";
        if (nl != NULL && (size_t)(nl - o) < sizeof(word))
            memcpy(word, o, (size_t)(nl - o));
        int oc = lookup_outcome_parse(word);
        rc = oc == LOOKUP_SECURE || oc == LOOKUP_INSECURE ? 0
             : oc == LOOKUP_NOT_DIME                      ? 3
             : oc == LOOKUP_TEMPFAIL                      ? 4
                                                          : 1;
    }
    dc_buf_free(&b);
    return rc;
}

/* The body of GET /metrics on the metrics socket into b; false (with a message) if none. */
static bool fetch_metrics(const struct rl_config *cfg, struct dc_buf *b)
{
    struct dc_err err = {0};
    if (cfg->metrics_socket == NULL) {
        fprintf(stderr, "dime-relayctl: metrics-socket is not set\n");
        return false;
    }
    int ms = (int)(cfg->connect_timeout * 1000);
    int fd = dl_sock_connect("relay metrics", cfg->metrics_socket, ms, ms, &err);
    if (fd < 0) {
        fprintf(stderr, "dime-relayctl: %s\n", err.msg);
        return false;
    }
    static const char req[] = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    bool ok = write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1);
    uint8_t tmp[4096];
    ssize_t r;
    while (ok && (r = read(fd, tmp, sizeof(tmp))) > 0)
        dc_buf_append(b, tmp, (size_t)r);
    close(fd);
    dc_buf_putc(b, '\0');
    const char *body = strstr((const char *)b->data, "\r\n\r\n");
    if (!ok || strncmp((const char *)b->data, "HTTP/1.0 200 ", 13) != 0 || body == NULL) {
        fprintf(stderr, "dime-relayctl: %s: no metrics in the answer\n", cfg->metrics_socket);
        return false;
    }
    size_t skip = (size_t)(body + 4 - (const char *)b->data);
    memmove(b->data, b->data + skip, b->len - skip);
    b->len -= skip + 1; /* without the terminator added above */
    return true;
}

/* label="value",... as label=value label=value */
static void plain_labels(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in != '\0' && o + 2 < cap; in++) {
        if (*in == '"')
            continue;
        out[o++] = *in == ',' ? ' ' : *in;
    }
    out[o] = '\0';
}

static int stats_cmd(const struct rl_config *cfg, bool raw)
{
    struct dc_buf b;
    dc_buf_init(&b);
    if (!fetch_metrics(cfg, &b)) {
        dc_buf_free(&b);
        return 4;
    }
    if (raw) {
        fwrite(b.data, 1, b.len, stdout);
        dc_buf_free(&b);
        return 0;
    }
    printf("%-36s %-44s %s\n", "METRIC", "LABELS", "VALUE");
    char hist[128] = "";
    double sum = 0;
    for (size_t off = 0; off < b.len;) {
        const char *line = (const char *)b.data + off;
        const char *nl = memchr(line, '\n', b.len - off);
        size_t len = nl != NULL ? (size_t)(nl - line) : b.len - off;
        off += len + 1;
        struct dl_metric_sample s;
        char type[16];
        if (len > 7 && strncmp(line, "# TYPE ", 7) == 0 &&
            sscanf(line + 7, "%127s %15s", s.name, type) == 2) {
            snprintf(hist, sizeof(hist), "%s", strcmp(type, "histogram") == 0 ? s.name : "");
            continue;
        }
        if (!dl_metrics_parse_sample(line, len, &s))
            continue;
        char labels[256];
        plain_labels(s.labels, labels, sizeof(labels));
        size_t hl = strlen(hist);
        if (hl == 0) {
            printf("%-36s %-44s %.0f\n", s.name, labels[0] ? labels : "-", s.value);
        } else if (strcmp(s.name + hl, "_sum") == 0) {
            sum = s.value;
        } else if (strcmp(s.name + hl, "_count") == 0) {
            char v[64];
            snprintf(v, sizeof(v), "%.0f (mean %.3f s)", s.value, s.value > 0 ? sum / s.value : 0);
            printf("%-36s %-44s %s\n", hist, labels[0] ? labels : "-", v);
        }
    }
    dc_buf_free(&b);
    return 0;
}

static void list_one(void *ctx, const struct rl_q_entry *e)
{
    int64_t now = *(int64_t *)ctx;
    long age = (long)(now - e->created);
    printf("%-20s %-3s %-7s %-30s qid=%s size=%zu age=%ldd%02ldh%02ldm%02lds attempts=%u",
           e->id, e->dir, e->state, e->domain, e->pf_qid[0] ? e->pf_qid : "-", e->size,
           age / 86400, age % 86400 / 3600, age % 3600 / 60, age % 60, e->attempts);
    if (e->next_try > now)
        printf(" next-try=%llds", (long long)(e->next_try - now));
    if (e->last_error[0])
        printf(" last-error=\"%s\"", e->last_error);
    putchar('\n');
}

/* queue export FILE / queue import FILE: moves the owed messages from this relay's queue into
 * a new queue database FILE (its sealing key FILE.key, both 0600), or from such a file into
 * this relay's queue (rl_queue_move). */
static int queue_move_cmd(const struct rl_config *cfg, bool export, const char *file)
{
    char keyfile[4096];
    if (snprintf(keyfile, sizeof(keyfile), "%s.key", file) >= (int)sizeof(keyfile)) {
        fprintf(stderr, "dime-relayctl: %s: name too long\n", file);
        return 2;
    }
    if (export && (access(file, F_OK) == 0 || access(keyfile, F_OK) == 0)) {
        fprintf(stderr, "dime-relayctl: %s or %s exists already: export writes a new file\n",
                file, keyfile);
        return 2;
    }
    if (!export && (access(file, R_OK) != 0 || access(keyfile, R_OK) != 0)) {
        fprintf(stderr, "dime-relayctl: %s and %s must both be readable\n", file, keyfile);
        return 2;
    }
    umask(077);
    struct rl_queue *ours = NULL, *theirs = NULL;
    struct dc_err err = {0};
    enum dc_status s = rl_queue_open(cfg->queue_database, cfg->queue_key_file, &ours, &err);
    if (s == DC_OK)
        s = rl_queue_open(file, keyfile, &theirs, &err);
    struct rl_q_moved n = {0};
    if (s == DC_OK)
        s = export ? rl_queue_move(ours, theirs, &n, &err) : rl_queue_move(theirs, ours, &n, &err);
    if (theirs)
        rl_queue_close(theirs);
    if (ours)
        rl_queue_close(ours);
    printf("%s %s: %u outbound and %u inbound message%s moved, %u found there already\n",
           export ? "export to" : "import from", file, n.out, n.in, n.out + n.in == 1 ? "" : "s",
           n.dup);
    if (n.sending)
        printf("%u message%s being sent by the running relay stayed (run again after it is"
               " stopped)\n", n.sending, n.sending == 1 ? "" : "s");
    if (s != DC_OK) {
        fprintf(stderr, "dime-relayctl: %s\n", err.msg);
        return 4;
    }
    return 0;
}

static int queue_cmd(const struct rl_config *cfg, int argc, char **argv)
{
    const char *op = argv[0], *id = argc > 1 ? argv[1] : NULL;
    if (strcmp(op, "export") == 0 || strcmp(op, "import") == 0) {
        if (argc != 2)
            usage();
        return queue_move_cmd(cfg, strcmp(op, "export") == 0, id);
    }
    bool needs_id = strcmp(op, "delete") == 0 || strcmp(op, "hold") == 0 ||
                    strcmp(op, "release") == 0;
    bool known = needs_id || strcmp(op, "list") == 0 || strcmp(op, "flush") == 0;
    if (!known || argc > 2 || (needs_id && id == NULL) || (strcmp(op, "list") == 0 && id))
        usage();
    struct rl_queue *q = NULL;
    struct dc_err err = {0};
    if (rl_queue_open(cfg->queue_database, cfg->queue_key_file, &q, &err) != DC_OK) {
        fprintf(stderr, "dime-relayctl: %s\n", err.msg);
        return 4;
    }
    enum dc_status s;
    unsigned n = 0;
    int64_t now = rl_now();
    if (strcmp(op, "list") == 0)
        s = rl_queue_list(q, list_one, &now, &err);
    else if (strcmp(op, "flush") == 0)
        s = rl_queue_flush(q, id, &n, &err);
    else if (strcmp(op, "delete") == 0)
        s = rl_queue_delete(q, id, &err);
    else
        s = rl_queue_hold(q, id, strcmp(op, "hold") == 0, &err);
    rl_queue_close(q);
    if (s != DC_OK) {
        fprintf(stderr, "dime-relayctl: %s\n", err.msg);
        return s == DC_ERR_NOTFOUND ? 1 : 4;
    }
    if (strcmp(op, "flush") == 0)
        printf("%u message%s scheduled for immediate delivery\n", n, n == 1 ? "" : "s");
    else if (strcmp(op, "list") != 0)
        printf("%s: %s\n", id, strcmp(op, "delete") == 0 ? "deleted"
                               : strcmp(op, "hold") == 0 ? "held" : "released");
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = DC_CONFIG_DEFAULT_PATH, *local = NULL, *known = NULL;
    bool check = false;
    bool raw = false;
    static const struct option lo[] = {{"known-fp", required_argument, NULL, 'k'},
                                       {"raw", no_argument, NULL, 'r'},
                                       {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "c:d:n", lo, NULL)) != -1) {
        switch (ch) {
        case 'c': path = optarg; break;
        case 'd': local = optarg; break;
        case 'n': check = true; break;
        case 'k': known = optarg; break;
        case 'r': raw = true; break;
        default: usage();
        }
    }
    struct rl_config cfg;
    struct dc_err err = {0};
    if (rl_config_load(path, false, &cfg, &err) != DC_OK) {
        fprintf(stderr, "dime-relayctl: %s\n", err.msg);
        return 2;
    }
    if (check) {
        rl_config_free(&cfg);
        return 0;
    }
    if (optind + 1 < argc && strcmp(argv[optind], "queue") == 0) {
        int qrc = queue_cmd(&cfg, argc - optind - 1, argv + optind + 1);
        rl_config_free(&cfg);
        return qrc;
    }
    if (optind + 1 < argc && strcmp(argv[optind], "pins") == 0) {
        int prc = relayctl_pins(&cfg, argc - optind - 1, argv + optind + 1);
        rl_config_free(&cfg);
        if (prc < 0)
            usage();
        return prc;
    }
    if (optind + 1 == argc && strcmp(argv[optind], "stats") == 0) {
        int src = stats_cmd(&cfg, raw);
        rl_config_free(&cfg);
        return src;
    }
    if (optind + 2 == argc && strcmp(argv[optind], "query") == 0) {
        int qrc = query(&cfg, argv[optind + 1], local);
        rl_config_free(&cfg);
        return qrc;
    }
    if (optind + 2 != argc || strcmp(argv[optind], "lookup") != 0) {
        rl_config_free(&cfg);
        usage();
    }
    const char *name = argv[optind + 1];
    /* the local domain's policy: -d, else the only domain section, else the default (on) */
    bool require = true;
    const struct rl_domain *d = local ? rl_config_domain(&cfg, local)
                                      : cfg.ndomains == 1 ? &cfg.domains[0] : NULL;
    if (local != NULL && d == NULL) {
        fprintf(stderr, "dime-relayctl: no domain \"%s\" section\n", local);
        rl_config_free(&cfg);
        return 2;
    }
    if (d != NULL)
        require = d->require_dnssec;
    struct dl_resolver r;
    rl_resolver_init(&r, &cfg, NULL);
    r.pins_read_only = true;
    int rc = 2;
    if ((cfg.state_pg &&
         rl_shared_start(cfg.state_conninfo, cfg.queue_database, &err) != DC_OK) ||
        dl_dns_unbound_new(&cfg.dns, &r.dns, &err) != DC_OK ||
        dl_tls_client_ctx(cfg.ca_file, &r.tls, &err) != DC_OK) {
        fprintf(stderr, "dime-relayctl: %s\n", err.msg);
        goto out;
    }
    struct dl_lookup l;
    enum dl_outcome o = dl_resolve(&r, name, require, known, &l);
    printf("name:          %s\n", name);
    printf("policy:        require-dnssec=%s\n", require ? "yes" : "no");
    if (l.record_name[0] != '\0')
        printf("record:        %s dnssec=%s ttl=%u\n", l.record_name,
               dl_dns_sec_name(l.record_sec), l.record_ttl);
    if (l.record_text != NULL)
        printf("record-text:   %s\n", l.record_text);
    if (l.dx_host[0] != '\0')
        printf("dx:            %s address=%s port=%u%s\n", l.dx_host, l.dx_addr, l.dx_port,
               l.dual_mode ? " (dual mode, STARTTLS)" : "");
    if (l.cert_check[0] != '\0')
        printf("certificate:   %s\n", l.cert_check);
    if (l.org != NULL && l.org_fp[0] != '\0')
        printf("org-signet:    state=%s fingerprint=%s\n", dc_signet_state_name(l.org_state),
               l.org_fp);
    if (l.user != NULL && l.user_fp[0] != '\0')
        printf("user-signet:   state=%s fingerprint=%s\n", dc_signet_state_name(l.user_state),
               l.user_fp);
    if (l.custody_len > 0)
        printf("custody:       chain of %zu signets verified through HIST\n", l.custody_len);
    printf("outcome:       %s\n", dl_outcome_name(o));
    if (o != DL_OUT_SECURE && o != DL_OUT_INSECURE)
        printf("reason:        %s\n", l.reason);
    else if (o == DL_OUT_INSECURE)
        printf("note:          the record is not DNSSEC-signed (insecure); allowed by policy\n");
    rc = exit_code(o);
    dl_lookup_free(&l);
out:
    rl_shared_stop();
    dl_dns_free(r.dns);
    SSL_CTX_free(r.tls);
    rl_config_free(&cfg);
    return rc;
}
