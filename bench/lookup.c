/*
 * bench/lookup - signet lookups through dime-relayd's lookup socket (LOOKUP.md), cached and
 * uncached, against floors measured in the same run.
 *
 * Runs inside the environment of tests/integration/test_relay.sh (nsd with the signed test
 * zones on loopback, keyvaults and relays for alice.test and bob.test), which calls it as its
 * RELAY_ENV_HOOK with the test directory and the DX port; bench/lookup.sh sets that up.
 *   cached:   alice's relay answers `LOOKUP bob@bob.test` from its signet cache;
 *             floor: the same socket round trip to a server thread in this process that
 *             returns a reply of the same size without doing anything.
 *   uncached: bob's relay keeps no signet (signet-cache-ttl = 0) and a new resolver per
 *             lookup, so every `LOOKUP alice@alice.test` pays DNSSEC-validated TXT, A and
 *             AAAA lookups against nsd, the TLS handshake with alice's DX, the certificate
 *             check and SGNT for the org and the user signet with their verification;
 *             floor: a TLS handshake with alice's DX and one SGNT, with nothing checked.
 * Every answer is checked (outcome=secure, user signet present). One client, sequential.
 * Prints lookups/s, p50/p99 latency and the ratio ours / floor.
 *
 * Usage: lookup TESTDIR DXPORT [seconds-per-measurement]
 */
#include "dl_sock.h"
#include "lookup_proto.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 200000

static double budget = 1.0;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct result {
    double rate, p50, p99;
};

/* Runs op until the budget is spent; op returns 0 on success. */
static struct result measure(const char *what, int (*op)(void *), void *arg)
{
    static double lat[MAX_SAMPLES];
    size_t n = 0;
    double t0 = now(), t;
    do {
        double s = now();
        if (op(arg) != 0) {
            fprintf(stderr, "bench/lookup: %s failed\n", what);
            exit(1);
        }
        t = now();
        lat[n++] = (t - s) * 1000.0;
    } while (t - t0 < budget && n < MAX_SAMPLES);
    qsort(lat, n, sizeof(lat[0]), cmp);
    struct result r = {(double)n / (t - t0), lat[n / 2], lat[(n * 99) / 100]};
    return r;
}

/* ---- the lookup socket ---- */

struct lookup {
    const char *sock;
    const char *req;
    char reply[16384];
    size_t len;
};

static int unix_roundtrip(struct lookup *l)
{
    int fd = dl_sock_connect(NULL, l->sock, 10000, 0, NULL);
    if (fd < 0)
        return -1;
    size_t rl = strlen(l->req);
    if (write(fd, l->req, rl) != (ssize_t)rl) {
        close(fd);
        return -1;
    }
    l->len = 0;
    for (;;) {
        ssize_t r = read(fd, l->reply + l->len, sizeof(l->reply) - 1 - l->len);
        if (r <= 0)
            break;
        l->len += (size_t)r;
    }
    close(fd);
    l->reply[l->len] = '\0';
    return 0;
}

static int op_lookup(void *arg)
{
    struct lookup *l = arg;
    if (unix_roundtrip(l) != 0 || strncmp(l->reply, "outcome=secure\n", 15) != 0 ||
        strstr(l->reply, "\nuser-signet=") == NULL) {
        fprintf(stderr, "bench/lookup: unexpected answer: %.300s\n", l->reply);
        return -1;
    }
    return 0;
}

static int op_floor_unix(void *arg)
{
    struct lookup *l = arg;
    return unix_roundtrip(l) == 0 && l->len > 0 ? 0 : -1;
}

/* The floor server: reads one line, answers with a canned reply of the real size. */
struct floor_srv {
    int lfd;
    char reply[16384];
    size_t len;
};

static void *floor_thread(void *arg)
{
    struct floor_srv *f = arg;
    for (;;) {
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        char buf[700];
        size_t n = 0;
        while (n < sizeof(buf)) {
            ssize_t r = read(fd, buf + n, sizeof(buf) - n);
            if (r <= 0 || memchr(buf + n, '\n', (size_t)r) != NULL)
                break;
            n += (size_t)r;
        }
        if (write(fd, f->reply, f->len) < 0)
            perror("floor write");
        close(fd);
    }
}

/* ---- the DX floor: TLS + SGNT, nothing checked ---- */

struct dx {
    SSL_CTX *ctx;
    int port;
};

static int op_floor_dx(void *arg)
{
    struct dx *d = arg;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port)};
    inet_pton(AF_INET, "127.0.0.2", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    SSL *ssl = SSL_new(d->ctx);
    SSL_set_fd(ssl, fd);
    int ok = SSL_connect(ssl) == 1;
    char buf[8192];
    size_t n = 0;
    int lines = 0;
    static const char cmd[] = "SGNT <alice.test>\r\nQUIT\r\n";
    if (ok)
        ok = SSL_write(ssl, cmd, sizeof(cmd) - 1) == (int)sizeof(cmd) - 1;
    while (ok && lines < 3) { /* banner, SGNT reply, QUIT reply */
        int r = SSL_read(ssl, buf + n, (int)(sizeof(buf) - n));
        if (r <= 0)
            break;
        for (int i = 0; i < r; i++)
            lines += buf[n + (size_t)i] == '\n';
        n += (size_t)r;
    }
    ok = ok && lines == 3;
    SSL_free(ssl);
    close(fd);
    return ok ? 0 : -1;
}

static void row(const char *name, struct result r, struct result base, const char *bname)
{
    printf("%-34s %9.1f lookups/s  p50 %8.3f ms  p99 %8.3f ms | %-34s %9.1f/s  p50 %8.3f ms "
           "| ratio %5.2f\n",
           name, r.rate, r.p50, r.p99, bname, base.rate, base.p50, r.rate / base.rate);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: lookup TESTDIR DXPORT [seconds-per-measurement]\n");
        return 2;
    }
    if (argc > 3)
        budget = atof(argv[3]);
    char a_sock[512], b_sock[512], f_sock[512];
    snprintf(a_sock, sizeof(a_sock), "%s/alice/lookup.sock", argv[1]);
    snprintf(b_sock, sizeof(b_sock), "%s/bob/lookup.sock", argv[1]);
    snprintf(f_sock, sizeof(f_sock), "%s/floor.sock", argv[1]);

    /* cached: warm alice's cache, then measure */
    char bob_req[LOOKUP_REQ_MAX + 1], alice_req[LOOKUP_REQ_MAX + 1];
    lookup_req_format("bob@bob.test", "alice.test", NULL, bob_req, sizeof(bob_req));
    lookup_req_format("alice@alice.test", "bob.test", NULL, alice_req, sizeof(alice_req));
    struct lookup cached = {.sock = a_sock, .req = bob_req};
    if (op_lookup(&cached) != 0)
        return 1;
    struct result rc = measure("cached lookup", op_lookup, &cached);
    if (strstr(cached.reply, "cached=yes") == NULL) {
        fprintf(stderr, "bench/lookup: alice's answer did not come from the cache\n");
        return 1;
    }

    struct floor_srv fs = {0};
    memcpy(fs.reply, cached.reply, cached.len);
    fs.len = cached.len;
    struct dc_err le = {0};
    fs.lfd = dl_sock_listen(f_sock, 0600, DL_SOCK_KEEP_UID, DL_SOCK_KEEP_GID, 64, &le);
    if (fs.lfd < 0) {
        fprintf(stderr, "bench/lookup: floor socket: %s\n", le.msg);
        return 1;
    }
    fcntl(fs.lfd, F_SETFL, 0); /* the floor thread blocks in accept() */
    pthread_t th;
    pthread_create(&th, NULL, floor_thread, &fs);
    pthread_detach(th);
    struct lookup fl = {.sock = f_sock, .req = bob_req};
    struct result fc = measure("socket floor", op_floor_unix, &fl);

    struct lookup unc = {.sock = b_sock, .req = alice_req};
    struct result ru = measure("uncached lookup", op_lookup, &unc);
    if (strstr(unc.reply, "cached=no") == NULL) {
        fprintf(stderr, "bench/lookup: bob's answer came from the cache\n");
        return 1;
    }
    struct dx d = {.ctx = SSL_CTX_new(TLS_client_method()), .port = atoi(argv[2])};
    SSL_CTX_set_verify(d.ctx, SSL_VERIFY_NONE, NULL);
    struct result fd = measure("DX floor", op_floor_dx, &d);
    SSL_CTX_free(d.ctx);

    printf("dime-gateway bench/lookup (%.1f s per measurement, one client, sequential; "
           "ratio = ours / floor)\n", budget);
    row("cached (signet cache)", rc, fc, "floor: same-size socket round trip");
    row("uncached (DNSSEC+TLS+SGNT+verify)", ru, fd, "floor: TLS handshake + one SGNT");
    unlink(f_sock);
    return 0;
}
