/*
 * bench/keyvault - dime-keyvaultd's request throughput and latency against the same work done
 * in-process (issue 4).
 *
 * Sets up a private temporary directory (SQLite database, master key file mode 0600,
 * configuration, socket), creates a domain and a Trustful user with the kv_vault code that
 * dimectl uses, starts the real daemon (fork + exec of the path given as argument, foreground,
 * log to a file in the temporary directory) and waits until it answers on the socket. Then,
 * for a fixed time each:
 *   - socket: SIGN (user, chunk purpose, 1 KiB message) and UNWRAP (a 64-byte key slot wrapped
 *     under the user's KEK for a random ephemeral key) with 1, 8 and 64 client threads, each
 *     with its own kv_client connection, one request at a time;
 *   - in-process: kv_vault_sign / kv_vault_unwrap called directly on the same database from
 *     one thread (the daemon is single-threaded), so the same per-request store lookups and
 *     unsealing are paid;
 *   - crypto floor: dc_ed25519_sign with a ready key, and dc_kek_derive + AES-256-CBC decrypt.
 * Prints requests/s and p50/p99 latency, the ratio socket / in-process and whether the targets
 * of issue 4 are met (>= 50% of in-process throughput at 8 clients; p99 under 2 ms). Every
 * answer is checked (signatures verify, unwrapped slots equal the wrapped plaintext). The
 * daemon is stopped by PID and the directory removed at the end, on error and on SIGINT.
 *
 * With DIME_BENCH_PG_CONNINFO set (libpq's connection string of an empty database), all of it
 * runs a second time on the PostgreSQL store (store = postgresql), after the SQLite pass.
 *
 * Usage: keyvault DIME-KEYVAULTD [seconds-per-measurement]   (default 1.0)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dc_crypto.h"
#include "dc_signet.h"
#include "kv_client.h"
#include "kv_vault.h"

#define USER "bench@bench.example"
#define DOMAIN "bench.example"
#define MSG_LEN 1024
#define TARGET_RATIO 0.5
#define TARGET_P99_MS 2.0

static double budget = 1.0;

/* ---- temporary directory and daemon, cleaned up on every exit path ---- */

static char dir[64];
static char p_key[128], p_conf[128], p_db[128], p_wal[128], p_shm[128], p_sock[128],
    p_log[128], p_pid[128];
static volatile pid_t daemon_pid = -1;
static volatile sig_atomic_t stopping; /* SIGINT/SIGTERM: the handler cleans up and exits */

static void cleanup(void) /* async-signal-safe: kill, waitpid, unlink, rmdir */
{
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGTERM);
        waitpid(daemon_pid, NULL, 0);
        daemon_pid = -1;
    }
    if (dir[0] == '\0')
        return;
    const char *files[] = {p_key, p_conf, p_db, p_wal, p_shm, p_sock, p_log, p_pid};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(dir);
    dir[0] = '\0';
}

static void on_signal(int sig)
{
    stopping = 1;
    cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void show_log(void) /* the last lines */
{
    enum { KEEP = 10 };
    FILE *f = fopen(p_log, "r");
    char lines[KEEP][512];
    unsigned n = 0;
    if (f == NULL)
        return;
    while (fgets(lines[n % KEEP], sizeof(lines[0]), f) != NULL)
        n++;
    fclose(f);
    for (unsigned i = n > KEEP ? n - KEEP : 0; i < n; i++)
        fprintf(stderr, "  daemon log: %s", lines[i % KEEP]);
}

static void die(const char *what, const struct dc_err *err)
{
    while (stopping) /* a worker whose connection the signal handler just closed */
        pause();
    fprintf(stderr, "bench/keyvault: %s failed%s%s\n", what, err ? ": " : "",
            err ? err->msg : "");
    if (dir[0] != '\0')
        show_log();
    cleanup();
    exit(1);
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || fchmod(fd, mode) != 0)
        die(path, NULL);
    close(fd);
}

static void setup_dir(const char *conninfo)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/dime-bench-kv.XXXXXX",
             tmp != NULL && strlen(tmp) < 32 ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        dir[0] = '\0';
        die("mkdtemp", NULL);
    }
    snprintf(p_key, sizeof(p_key), "%s/master.key", dir);
    snprintf(p_conf, sizeof(p_conf), "%s/kv.conf", dir);
    snprintf(p_db, sizeof(p_db), "%s/kv.db", dir);
    snprintf(p_wal, sizeof(p_wal), "%s/kv.db-wal", dir);
    snprintf(p_shm, sizeof(p_shm), "%s/kv.db-shm", dir);
    snprintf(p_sock, sizeof(p_sock), "%s/kv.sock", dir);
    snprintf(p_log, sizeof(p_log), "%s/kv.log", dir);
    snprintf(p_pid, sizeof(p_pid), "%s/kv.pid", dir);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    uint8_t key[KV_MASTER_LEN];
    if (dc_random(key, sizeof(key)) != DC_OK)
        die("random master key", NULL);
    write_file(p_key, key, sizeof(key), 0600);
    dc_memzero(key, sizeof(key));

    unsigned me = (unsigned)getuid();
    char *store = conninfo != NULL
                      ? dc_xasprintf("store = \"postgresql\"\n  store-conninfo = \"%s\"", conninfo)
                      : dc_xasprintf("database = \"%s\"", p_db);
    char *conf = dc_xasprintf("keyvault {\n  socket = \"%s\"\n  %s\n"
                              "  master-key-file = \"%s\"\n  pid-file = \"%s\"\n  user = \"root\"\n"
                              "  milter-users = {\"%u\"}\n}\n",
                              p_sock, store, p_key, p_pid, me);
    free(store);
    write_file(p_conf, conf, strlen(conf), 0600);
    free(conf);
}

static void start_daemon(const char *exe)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork", NULL);
    if (pid == 0) {
        int fd = open(p_log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        execl(exe, exe, "-f", "-c", p_conf, (char *)NULL);
        _exit(127);
    }
    daemon_pid = pid;
    for (int i = 0; i < 500; i++) { /* up to 5 s */
        struct kv_client *c = NULL;
        if (kv_client_connect(p_sock, &c, NULL) == DC_OK) {
            kv_client_close(c);
            return;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            daemon_pid = -1;
            die("starting dime-keyvaultd (it exited)", NULL);
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    die("waiting for the daemon's socket", NULL);
}

/* ---- the work ---- */

static uint8_t sign_pub[DC_ED25519_PUB_LEN]; /* the user's public signing key */
static uint8_t eph_pub[KV_EPH_LEN];         /* ephemeral key of the wrapped slot */
static uint8_t slot[KV_SLOT_LEN], slot_plain[KV_SLOT_LEN];

/* Domain, Trustful user and a slot wrapped for the user's encryption key; the vault stays
 * open for the in-process measurements. */
static struct kv_vault *setup_vault(const char *conninfo)
{
    struct dc_err err = {0};
    struct kv_secret sec;
    struct kv_vault *v = NULL;
    struct kv_store *store = NULL;
    if (kv_secret_load(p_key, NULL, &sec, &err) != DC_OK ||
        kv_store_open(conninfo != NULL ? KV_STORE_POSTGRESQL : KV_STORE_SQLITE, p_db, conninfo,
                      &store, &err) != DC_OK ||
        kv_vault_open_store(store, &sec, &v, &err) != DC_OK)
        die("opening the vault", &err);
    if (kv_vault_domain_init(v, DOMAIN, true, NULL, NULL, &err) != DC_OK)
        die("domain init", &err);
    if (kv_vault_user_add(v, USER, KV_MODE_TRUSTFUL, NULL, NULL, 0, NULL, &err) != DC_OK)
        die("user add", &err);
    uint8_t *bin = NULL, enc_pub[DC_SECP_PUB_LEN];
    size_t len = 0;
    struct dc_signet *s = NULL;
    if (kv_vault_signet(v, USER, NULL, &bin, &len, &err) != KV_OK ||
        dc_signet_parse(bin, len, &s, &err) != DC_OK ||
        dc_signet_signing_key(s, sign_pub, &err) != DC_OK ||
        dc_signet_enc_key(s, enc_pub, &err) != DC_OK)
        die("reading the user's signet", &err);
    dc_signet_free(s);
    free(bin);
    struct dc_enc_key *eph = NULL;
    struct dc_kek kek;
    if (dc_enc_key_generate(&eph, &err) != DC_OK ||
        dc_kek_derive(eph, enc_pub, &kek, &err) != DC_OK ||
        dc_random(slot_plain, sizeof(slot_plain)) != DC_OK ||
        dc_aes256_cbc_encrypt(kek.key, kek.iv, slot_plain, KV_SLOT_LEN, slot, &err) != DC_OK)
        die("wrapping a key slot", &err);
    memcpy(eph_pub, eph->pub, KV_EPH_LEN);
    dc_enc_key_free(eph);
    return v;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum op { OP_SIGN, OP_UNWRAP };

struct lat {
    double *v; /* seconds per request */
    size_t n, cap;
};

static void lat_add(struct lat *l, double x)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4096;
        l->v = dc_xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = x;
}

struct result {
    double rate, p50, p99; /* requests/s, ms, ms */
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static struct result summarize(struct lat *l, double secs)
{
    struct result r = {(double)l->n / secs, 0, 0};
    if (l->n > 0) {
        qsort(l->v, l->n, sizeof(*l->v), cmp_double);
        r.p50 = l->v[(size_t)((double)(l->n - 1) * 0.50)] * 1e3;
        r.p99 = l->v[(size_t)((double)(l->n - 1) * 0.99)] * 1e3;
    }
    return r;
}

/* One request in-process or over a connection; checks the answer. */
static void one(enum op op, struct kv_client *c, struct kv_vault *v, const uint8_t *msg,
                bool check)
{
    struct dc_err err = {0};
    uint8_t sig[KV_SIG_LEN], plain[KV_SLOT_LEN];
    bool ok;
    if (op == OP_SIGN) {
        ok = c ? kv_client_sign(c, USER, KV_PURPOSE_CHUNK, msg, MSG_LEN, sig, &err) == DC_OK
               : kv_vault_sign(v, USER, KV_PURPOSE_CHUNK, msg, MSG_LEN, sig, &err) == KV_OK;
        if (ok && check && dc_ed25519_verify(sign_pub, msg, MSG_LEN, sig) != DC_OK)
            die("verifying a signature from the vault", NULL);
    } else {
        ok = c ? kv_client_unwrap(c, USER, eph_pub, slot, NULL, plain, &err) == DC_OK
               : kv_vault_unwrap(v, USER, eph_pub, slot, NULL, plain, &err) == KV_OK;
        if (ok && memcmp(plain, slot_plain, KV_SLOT_LEN) != 0)
            die("checking an unwrapped slot", NULL);
    }
    if (!ok)
        die(op == OP_SIGN ? "sign request" : "unwrap request", &err);
}

/* Runs requests until the deadline; latencies into *l. */
static void run_loop(enum op op, struct kv_client *c, struct kv_vault *v, double end,
                     struct lat *l)
{
    uint8_t msg[MSG_LEN];
    dc_random(msg, sizeof(msg));
    /* the shape of a chunk signature's input, which the vault checks: data size, flags, no
     * padding */
    msg[0] = (uint8_t)((MSG_LEN - 5) >> 16);
    msg[1] = (uint8_t)((MSG_LEN - 5) >> 8);
    msg[2] = (uint8_t)(MSG_LEN - 5);
    msg[3] = msg[4] = 0;
    double t = now();
    bool first = true;
    while (t < end) {
        one(op, c, v, msg, first);
        first = false;
        double t2 = now();
        lat_add(l, t2 - t);
        t = t2;
    }
}

struct worker {
    pthread_t th;
    enum op op;
    struct kv_client *client;
    pthread_barrier_t *start;
    double *end;
    struct lat lat;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(w->start);
    run_loop(w->op, w->client, NULL, *w->end, &w->lat);
    return NULL;
}

static struct result over_socket(enum op op, int nclients)
{
    struct worker *w = dc_xcalloc((size_t)nclients, sizeof(*w));
    pthread_barrier_t start;
    double end = 0;
    pthread_barrier_init(&start, NULL, (unsigned)nclients + 1);
    for (int i = 0; i < nclients; i++) {
        struct dc_err err = {0};
        if (kv_client_connect(p_sock, &w[i].client, &err) != DC_OK)
            die("connecting to the daemon", &err);
        w[i].op = op;
        w[i].start = &start;
        w[i].end = &end;
        if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0)
            die("pthread_create", NULL);
    }
    double t0 = now();
    end = t0 + budget;
    pthread_barrier_wait(&start);
    struct lat all = {0};
    for (int i = 0; i < nclients; i++) {
        pthread_join(w[i].th, NULL);
        kv_client_close(w[i].client);
        for (size_t k = 0; k < w[i].lat.n; k++)
            lat_add(&all, w[i].lat.v[k]);
        free(w[i].lat.v);
    }
    double secs = now() - t0;
    pthread_barrier_destroy(&start);
    free(w);
    struct result r = summarize(&all, secs);
    free(all.v);
    return r;
}

static struct result in_process(enum op op, struct kv_vault *v)
{
    struct lat l = {0};
    double t0 = now();
    run_loop(op, NULL, v, t0 + budget, &l);
    struct result r = summarize(&l, now() - t0);
    free(l.v);
    return r;
}

/* The crypto alone, with ready keys: no store, no unsealing, no protocol. */
static struct result floor_crypto(enum op op)
{
    struct dc_err err = {0};
    struct dc_sign_key *sk = NULL;
    struct dc_enc_key *ek = NULL, *eph = NULL;
    if (dc_sign_key_generate(&sk, &err) != DC_OK || dc_enc_key_generate(&ek, &err) != DC_OK ||
        dc_enc_key_generate(&eph, &err) != DC_OK)
        die("key generation", &err);
    uint8_t msg[MSG_LEN], sig[KV_SIG_LEN], buf[KV_SLOT_LEN];
    dc_random(msg, sizeof(msg));
    struct lat l = {0};
    double t0 = now(), t = t0, end = t0 + budget;
    while (t < end) {
        if (op == OP_SIGN) {
            if (dc_ed25519_sign(sk, msg, MSG_LEN, sig, &err) != DC_OK)
                die("dc_ed25519_sign", &err);
        } else {
            struct dc_kek kek;
            if (dc_kek_derive(ek, eph->pub, &kek, &err) != DC_OK ||
                dc_aes256_cbc_decrypt(kek.key, kek.iv, slot, KV_SLOT_LEN, buf, &err) != DC_OK)
                die("KEK + AES", &err);
            dc_memzero(&kek, sizeof(kek));
        }
        double t2 = now();
        lat_add(&l, t2 - t);
        t = t2;
    }
    struct result r = summarize(&l, now() - t0);
    free(l.v);
    dc_sign_key_free(sk);
    dc_enc_key_free(ek);
    dc_enc_key_free(eph);
    return r;
}

static void row(const char *name, const char *how, struct result r, const struct result *base)
{
    printf("%-7s %-22s %10.1f req/s  p50 %7.3f ms  p99 %7.3f ms", name, how, r.rate, r.p50,
           r.p99);
    if (base != NULL)
        printf("  | ratio %5.2f", r.rate / base->rate);
    printf("\n");
}

/* Every measurement on one store (conninfo NULL: SQLite), the daemon stopped at the end. */
static void run(const char *exe, const char *conninfo)
{
    setup_dir(conninfo);
    struct kv_vault *v = setup_vault(conninfo);
    start_daemon(exe);

    printf("dime-gateway bench/keyvault, store %s (%.1f s per measurement; SIGN: user key, "
           "chunk purpose, %d-byte message; UNWRAP: %u-byte slot; ratio = socket / "
           "in-process)\n", conninfo != NULL ? "postgresql" : "sqlite",
           budget, MSG_LEN, KV_SLOT_LEN);
    static const int clients[] = {1, 8, 64};
    static const char *names[] = {"SIGN", "UNWRAP"};
    bool met = true;
    char why[512] = "";
    size_t wl = 0;
    for (int op = OP_SIGN; op <= OP_UNWRAP; op++) {
        struct result fl = floor_crypto((enum op)op);
        struct result ip = in_process((enum op)op, v);
        row(names[op], op == OP_SIGN ? "crypto floor (sign)" : "crypto floor (KEK+AES)", fl,
            NULL);
        row(names[op], "in-process (kv_vault)", ip, NULL);
        for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++) {
            char how[32];
            snprintf(how, sizeof(how), "socket, %2d client%s", clients[i],
                     clients[i] > 1 ? "s" : "");
            struct result r = over_socket((enum op)op, clients[i]);
            row(names[op], how, r, &ip);
            if (clients[i] == 8 && r.rate / ip.rate < TARGET_RATIO) {
                met = false;
                wl += (size_t)snprintf(why + wl, sizeof(why) - wl, " %s ratio %.2f < %.2f;",
                                       names[op], r.rate / ip.rate, TARGET_RATIO);
            }
            if (clients[i] <= 8 && r.p99 >= TARGET_P99_MS) {
                met = false;
                wl += (size_t)snprintf(why + wl, sizeof(why) - wl,
                                       " %s p99 %.3f ms >= %.1f ms at %d clients;", names[op],
                                       r.p99, TARGET_P99_MS, clients[i]);
            }
        }
    }
    printf("targets (8 clients: socket >= %.0f%% of in-process; p99 < %.1f ms at 1 and 8 "
           "clients): %s%s\n",
           TARGET_RATIO * 100, TARGET_P99_MS, met ? "met" : "MISSED:", why);
    kv_vault_close(v);
    /* a clean stop on SIGTERM exits 0; anything else (e.g. a sanitizer report) fails */
    pid_t pid = daemon_pid;
    int status = 0;
    daemon_pid = -1;
    kill(pid, SIGTERM);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("stopping dime-keyvaultd (it did not exit cleanly)", NULL);
    cleanup();
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: keyvault DIME-KEYVAULTD [seconds-per-measurement]\n");
        return 2;
    }
    if (argc > 2)
        budget = atof(argv[2]);
    if (budget <= 0)
        budget = 1.0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    run(argv[1], NULL);
    const char *pg = getenv("DIME_BENCH_PG_CONNINFO");
    if (pg != NULL && pg[0] != '\0')
        run(argv[1], pg);
    return 0;
}
