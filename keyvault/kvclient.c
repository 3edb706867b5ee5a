/*
 * dime-kvclient - a test and diagnostic client of dime-keyvaultd. It checks answers against
 * public data only: signatures against the signet's signing key, KEKs against ECDH from the
 * ephemeral private key it generated (ECDH is symmetric), unwrapped slots against the slot it
 * wrapped itself.
 *
 *   dime-kvclient -s SOCKET check PRINCIPAL [FINGERPRINT]  every key operation, verified
 *   dime-kvclient -s SOCKET history USER                   fetch the history, verify the chain
 *   dime-kvclient -s SOCKET account USER                   exists=.. mode=.. generation=..
 *   dime-kvclient -s SOCKET fp PRINCIPAL                   current signet fingerprint
 *   dime-kvclient -s SOCKET probe OP PRINCIPAL             send a well-formed OP, print status
 *   dime-kvclient -s SOCKET raw HEX                        send raw bytes, print the answer
 *   dime-kvclient -s SOCKET raw-close HEX                  send raw bytes, half-close, expect
 *                                                          the daemon to close unanswered
 *   -d FILE  append the hex of every checked response payload to FILE
 *   dime-kvclient -s SOCKET stress CLIENTS ROUNDS PRINCIPAL concurrent sign + unwrap checks
 *
 * Exit status: 0 success; 1 a check failed or the daemon refused; 2 usage; 4 no answer.
 */
#include "dc_crypto.h"
#include "dc_signet.h"
#include "kv_client.h"
#include "kv_proto.h"
#include "kv_vault.h"

#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *sock;
static FILE *dump; /* -d: hex of every response payload, one per line */
static pthread_mutex_t dump_lock = PTHREAD_MUTEX_INITIALIZER;

static void dump_last(const struct kv_client *c)
{
    const uint8_t *p;
    size_t n;
    if (dump == NULL)
        return;
    kv_client_last_response(c, &p, &n);
    pthread_mutex_lock(&dump_lock);
    for (size_t i = 0; i < n; i++)
        fprintf(dump, "%02x", p[i]);
    fputc('\n', dump);
    pthread_mutex_unlock(&dump_lock);
}

static void usage(void)
{
    fprintf(stderr, "usage: dime-kvclient -s SOCKET check|history|account|fp|probe|raw|stress "
                    "...\n");
    exit(2);
}

static struct kv_client *conn(void)
{
    struct kv_client *c;
    struct dc_err err = {0};
    if (kv_client_connect(sock, &c, &err) != DC_OK) {
        fprintf(stderr, "dime-kvclient: %s\n", err.msg);
        exit(4);
    }
    return c;
}

/* One round of sign + KEK + unwrap checks; returns 0 when every answer is right. */
static int check_once(struct kv_client *c, const char *principal, const char *fp, bool quiet)
{
    struct dc_err err = {0};
    struct dc_signet *s = NULL;
    struct dc_enc_key *eph = NULL;
    uint8_t spub[32], epub[33], msg[200], sig[64], slot[64], plain[64], got[64];
    struct dc_kek local, remote;
    bool user = strchr(principal, '@') != NULL;
    int bad = 1;
    if (kv_client_signet(c, principal, fp, &s, &err) != DC_OK)
        goto out;
    dump_last(c);
    if (dc_signet_signing_key(s, spub, &err) != DC_OK || dc_signet_enc_key(s, epub, &err) != DC_OK)
        goto out;
    dc_random(msg, sizeof(msg));
    if (fp == NULL) {
        if (kv_client_sign(c, principal, user ? KV_PURPOSE_CHUNK : KV_PURPOSE_ORIGIN, msg,
                           sizeof(msg), sig, &err) != DC_OK)
            goto out;
        dump_last(c);
        if (dc_ed25519_verify(spub, msg, sizeof(msg), sig) != DC_OK) {
            dc_fail(&err, DC_ERR_SIGNATURE, "signature does not verify with the signet's key");
            goto out;
        }
    }
    if (dc_enc_key_generate(&eph, &err) != DC_OK || dc_kek_derive(eph, epub, &local, &err))
        goto out;
    if (kv_client_kek(c, principal, eph->pub, fp, &remote, &err) != DC_OK)
        goto out;
    dump_last(c);
    if (memcmp(&local, &remote, sizeof(local)) != 0) {
        dc_fail(&err, DC_ERR_CRYPTO, "KEK differs from ECDH with the signet's key");
        goto out;
    }
    dc_random(plain, sizeof(plain));
    if (dc_aes256_cbc_encrypt(local.key, local.iv, plain, 64, slot, &err) != DC_OK)
        goto out;
    if (kv_client_unwrap(c, principal, eph->pub, slot, fp, got, &err) != DC_OK)
        goto out;
    dump_last(c);
    if (memcmp(got, plain, 64) != 0) {
        dc_fail(&err, DC_ERR_CRYPTO, "unwrapped slot differs from the one wrapped");
        goto out;
    }
    bad = 0;
out:
    if (bad && !quiet)
        fprintf(stderr, "dime-kvclient: check %s: %s (status %s)\n", principal, err.msg,
                kv_status_name(kv_client_status(c)));
    dc_signet_free(s);
    dc_enc_key_free(eph);
    return bad;
}

static int cmd_history(const char *user)
{
    struct kv_client *c = conn();
    struct dc_err err = {0};
    struct dc_signet **v = NULL, *org = NULL;
    size_t n = 0;
    int rc = 1;
    const char *dom = strchr(user, '@');
    if (dom == NULL)
        usage();
    if (kv_client_history(c, user, NULL, NULL, &v, &n, &err) != DC_OK ||
        kv_client_signet(c, dom + 1, NULL, &org, &err) != DC_OK) {
        fprintf(stderr, "dime-kvclient: %s\n", err.msg);
        goto out;
    }
    rc = 0;
    for (size_t i = 0; i < n; i++) {
        enum dc_signet_state st = dc_signet_verify_user(v[i], org, i ? v[i - 1] : NULL, &err);
        char fp[DC_FP_B64_LEN + 1], fpc[DC_FP_B64_LEN + 1];
        kv_signet_fp(v[i], fp, fpc, NULL);
        printf("%zu %s %s\n", i + 1, dc_signet_state_name(st), fp);
        if (st < DC_SS_CRYPTO) {
            fprintf(stderr, "dime-kvclient: signet %zu: %s\n", i + 1, err.msg);
            rc = 1;
        }
    }
out:
    for (size_t i = 0; i < n; i++)
        dc_signet_free(v[i]);
    free(v);
    dc_signet_free(org);
    kv_client_close(c);
    return rc;
}

static enum kv_op op_of(const char *name)
{
    for (int i = 1; i <= KV_OP_MAX; i++)
        if (strcmp(kv_op_name((enum kv_op)i), name) == 0)
            return (enum kv_op)i;
    usage();
    return 0;
}

static int cmd_probe(const char *opname, const char *principal)
{
    struct kv_client *c = conn();
    struct dc_err err = {0};
    struct dc_enc_key *eph = NULL;
    uint8_t buf[64] = {0}, sig[64], out[64];
    struct dc_kek kek;
    struct dc_signet *s = NULL, **v = NULL;
    size_t n = 0;
    bool ex;
    enum dc_status st = DC_OK;
    dc_enc_key_generate(&eph, &err);
    switch (op_of(opname)) {
    case KV_OP_SIGN:
        st = kv_client_sign(c, principal, strchr(principal, '@') ? KV_PURPOSE_CHUNK
                            : KV_PURPOSE_ORIGIN, buf, 10, sig, &err);
        break;
    case KV_OP_KEK: st = kv_client_kek(c, principal, eph->pub, NULL, &kek, &err); break;
    case KV_OP_UNWRAP: st = kv_client_unwrap(c, principal, eph->pub, buf, NULL, out, &err); break;
    case KV_OP_SIGNET: st = kv_client_signet(c, principal, NULL, &s, &err); break;
    case KV_OP_HISTORY: st = kv_client_history(c, principal, NULL, NULL, &v, &n, &err); break;
    case KV_OP_ACCOUNT: st = kv_client_account(c, principal, &ex, NULL, NULL, &err); break;
    }
    int rc = (st == DC_OK || kv_client_status(c) != KV_E_INTERNAL) ? 0 : 4;
    printf("%s %s\n", opname, st == DC_OK ? "ok" : kv_status_name(kv_client_status(c)));
    for (size_t i = 0; i < n; i++)
        dc_signet_free(v[i]);
    free(v);
    dc_signet_free(s);
    dc_enc_key_free(eph);
    kv_client_close(c);
    return rc;
}

static int cmd_raw(const char *hex)
{
    size_t n = strlen(hex) / 2;
    uint8_t *b = dc_xmalloc(n + 1);
    if (strlen(hex) % 2 || dc_hex_decode(hex, 2 * n, b, n) != DC_OK)
        usage();
    struct kv_client *c = conn();
    struct kv_response r;
    struct dc_err err = {0};
    enum dc_status st = kv_client_raw(c, b, n, &r, &err);
    int rc = 0;
    if (st == DC_OK) {
        printf("ok\n");
    } else if (kv_client_status(c) != KV_E_INTERNAL) {
        printf("%s %s\n", kv_status_name(kv_client_status(c)), err.msg);
    } else {
        printf("no-answer %s\n", err.msg);
        rc = 4;
    }
    free(b);
    kv_client_close(c);
    return rc;
}

/* Sends raw bytes, then closes the sending side: a truncated frame must get no answer and
 * the connection must be dropped (exit 0 when the daemon closes without answering). */
static int cmd_raw_close(const char *hex)
{
    size_t n = strlen(hex) / 2;
    uint8_t *b = dc_xmalloc(n + 1), buf[256];
    if (strlen(hex) % 2 || dc_hex_decode(hex, 2 * n, b, n) != DC_OK)
        usage();
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("dime-kvclient: connect");
        return 4;
    }
    if (write(fd, b, n) != (ssize_t)n) {
        perror("dime-kvclient: write");
        return 4;
    }
    shutdown(fd, SHUT_WR);
    ssize_t r = read(fd, buf, sizeof(buf));
    close(fd);
    free(b);
    printf("%s\n", r == 0 ? "closed-without-answer" : "answered");
    return r == 0 ? 0 : 1;
}

struct job {
    const char *principal;
    int rounds;
    int failures;
};

static void *stress_one(void *arg)
{
    struct job *j = arg;
    struct kv_client *c;
    struct dc_err err = {0};
    if (kv_client_connect(sock, &c, &err) != DC_OK) {
        fprintf(stderr, "dime-kvclient: %s\n", err.msg);
        j->failures = j->rounds;
        return NULL;
    }
    for (int i = 0; i < j->rounds; i++)
        j->failures += check_once(c, j->principal, NULL, false);
    kv_client_close(c);
    return NULL;
}

static int cmd_stress(int clients, int rounds, const char *principal)
{
    if (clients < 1 || clients > 1024 || rounds < 1)
        usage();
    pthread_t *t = dc_xcalloc((size_t)clients, sizeof(*t));
    struct job *j = dc_xcalloc((size_t)clients, sizeof(*j));
    for (int i = 0; i < clients; i++) {
        j[i].principal = principal;
        j[i].rounds = rounds;
        if (pthread_create(&t[i], NULL, stress_one, &j[i]) != 0) {
            fprintf(stderr, "dime-kvclient: cannot start thread %d\n", i);
            exit(1);
        }
    }
    int failures = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(t[i], NULL);
        failures += j[i].failures;
    }
    printf("clients=%d rounds=%d failures=%d\n", clients, rounds, failures);
    free(t);
    free(j);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    int ch;
    while ((ch = getopt(argc, argv, "s:d:")) != -1) {
        if (ch == 's') {
            sock = optarg;
        } else if (ch == 'd') {
            if ((dump = fopen(optarg, "a")) == NULL) {
                perror(optarg);
                return 2;
            }
        } else {
            usage();
        }
    }
    argc -= optind;
    argv += optind;
    if (sock == NULL || argc < 1)
        usage();
    const char *cmd = argv[0];
    if (strcmp(cmd, "check") == 0 && (argc == 2 || argc == 3)) {
        struct kv_client *c = conn();
        int rc = check_once(c, argv[1], argc == 3 ? argv[2] : NULL, false);
        kv_client_close(c);
        if (rc == 0)
            printf("check %s ok\n", argv[1]);
        return rc;
    }
    if (strcmp(cmd, "history") == 0 && argc == 2)
        return cmd_history(argv[1]);
    if (strcmp(cmd, "account") == 0 && argc == 2) {
        struct kv_client *c = conn();
        struct dc_err err = {0};
        bool ex = false;
        enum kv_mode m = 0;
        uint32_t g = 0;
        enum dc_status st = kv_client_account(c, argv[1], &ex, &m, &g, &err);
        kv_client_close(c);
        if (st != DC_OK) {
            fprintf(stderr, "dime-kvclient: %s\n", err.msg);
            return 1;
        }
        printf("exists=%d mode=%s generation=%u\n", ex, ex ? kv_mode_name(m) : "-", g);
        return 0;
    }
    if (strcmp(cmd, "fp") == 0 && argc == 2) {
        struct kv_client *c = conn();
        struct dc_err err = {0};
        struct dc_signet *s = NULL;
        char fp[DC_FP_B64_LEN + 1], fpc[DC_FP_B64_LEN + 1];
        enum dc_status st = kv_client_signet(c, argv[1], NULL, &s, &err);
        if (st == DC_OK)
            st = kv_signet_fp(s, fp, fpc, &err);
        dc_signet_free(s);
        kv_client_close(c);
        if (st != DC_OK) {
            fprintf(stderr, "dime-kvclient: %s\n", err.msg);
            return 1;
        }
        printf("%s\n", fp);
        return 0;
    }
    if (strcmp(cmd, "probe") == 0 && argc == 3)
        return cmd_probe(argv[1], argv[2]);
    if (strcmp(cmd, "raw") == 0 && argc == 2)
        return cmd_raw(argv[1]);
    if (strcmp(cmd, "raw-close") == 0 && argc == 2)
        return cmd_raw_close(argv[1]);
    if (strcmp(cmd, "stress") == 0 && argc == 4)
        return cmd_stress(atoi(argv[1]), atoi(argv[2]), argv[3]);
    usage();
    return 2;
}
