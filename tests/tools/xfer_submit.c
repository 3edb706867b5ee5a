/*
 * xfer_submit - test client for the mail transfer tests: does what dime-milter does for one
 * DIME recipient (signets from the keyvault and from the relay's lookup service, the MIME
 * message encrypted and author-signed through the keyvault) and submits through the
 * submission protocol (submit_client). With -o it writes the final form instead
 * (origin-signed through the keyvault too), for tests that talk DMTP themselves.
 *
 * usage: xfer_submit -c CONF -f FROM -t TO [-e ENVELOPE-TO] [-n COUNT] [-j THREADS]
 *                    [-q QID-PREFIX] [-m MARKER] [-o FILE] [-r]
 * -s BYTES: body of about this size (base64 text lines), for benchmarks.
 * -d MS: a pause of MS milliseconds before each message but the first of a thread (paces a
 * flow so that it lasts about COUNT / THREADS * MS however fast the relays are).
 * -r: like a milter that tempfails and is retried: a submission without a 250 (no reply,
 * 4xx, relay not running) is sent again, up to 3 minutes; the key makes that safe.
 * Prints one line per message: "<i> <reply>"; exit 0 when every submission got 250.
 */
#include "dc_b64.h"
#include "dc_message.h"
#include "kv_client.h"
#include "lookup_client.h"
#include "rl_config.h"
#include "submit_client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct rl_config cfg;
static const char *from, *to, *env_to, *qprefix = "XFER", *marker = "MARK", *outfile;
static unsigned count = 1, threads = 1, next_i, pause_ms;
static int retry;
static size_t body_size;
static int failures;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct dc_signet *dest_org, *rcpt_user;

static void die(const char *m)
{
    fprintf(stderr, "xfer_submit: %s\n", m);
    exit(2);
}

/* LOOKUP through the relay: org and user signets of the recipient. */
static void lookup(void)
{
    const char *at = strrchr(from, '@');
    struct lookup_ans a;
    struct dc_err e = {0};
    if (lookup_query(cfg.lookup_socket, 60, to, at + 1, &a, &e) != DC_OK)
        die(e.msg);
    if (a.outcome != LOOKUP_SECURE && a.outcome != LOOKUP_INSECURE) {
        fprintf(stderr, "xfer_submit: lookup %s: outcome=%s %s\n", to,
                lookup_outcome_name(a.outcome), a.reason);
        exit(2);
    }
    dest_org = a.org;
    rcpt_user = a.user;
    if (!dest_org || !rcpt_user)
        die("lookup gave no signets");
}

static int one(struct kv_client *kv, struct dc_signet *author, struct dc_signet *origin,
               unsigned i)
{
    char qid[64], mid[128];
    size_t cap = 2048 + body_size + body_size / 64 * 2;
    char *mime = dc_xmalloc(cap);
    snprintf(qid, sizeof(qid), "%s%u", qprefix, i);
    snprintf(mid, sizeof(mid), "<%s.%u@xfer.test>", marker, i);
    int ml = snprintf(mime, 2048,
                      "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nFrom: <%s>\r\nTo: <%s>\r\n"
                      "Subject: Subject-%s-%u\r\nMessage-ID: %s\r\n\r\nBody-%s-%u\r\n",
                      from, to, marker, i, mid, marker, i);
    for (size_t k = 0; k < body_size; k += 64) {
        static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        memcpy(mime + ml, a, 64);
        memcpy(mime + ml + 62, "\r\n", 2);
        ml += 64;
    }
    struct kv_remote ar = {kv, from, KV_PURPOSE_AUTHOR_FULL, NULL};
    struct dc_signer as;
    kv_remote_signer(&as, &ar, NULL);
    struct dc_err e = {0};
    if (dc_signet_signing_key(author, as.pub, &e) != DC_OK)
        die(e.msg);
    const char *at = strrchr(from, '@');
    struct kv_remote orr = {kv, at + 1, KV_PURPOSE_ORIGIN, NULL};
    struct dc_signer os;
    kv_remote_signer(&os, &orr, NULL);
    struct kv_remote ok = {kv, at + 1, 0, NULL};
    struct dc_kek_source oks = {kv_remote_kek, &ok};
    if (dc_signet_signing_key(origin, os.pub, &e) != DC_OK)
        die(e.msg);
    struct dc_msg_parties p = {from, env_to ? env_to : to, author, origin, dest_org, rcpt_user};
    struct dc_msg_opts opts;
    memset(&opts, 0, sizeof(opts));
    struct dc_dmime *dm = NULL;
    if (dc_message_encrypt((const uint8_t *)mime, (size_t)ml, &p, &as, outfile ? &os : NULL,
                           outfile ? &oks : NULL, &opts, &dm, &e) != DC_OK) {
        fprintf(stderr, "xfer_submit: encrypt %u: %s\n", i, e.msg);
        free(mime);
        return -1;
    }
    free(mime);
    size_t len;
    const uint8_t *bytes = dc_dmime_bytes(dm, &len);
    if (outfile) {
        FILE *f = fopen(outfile, "wb");
        if (!f || fwrite(bytes, 1, len, f) != len || fclose(f) != 0)
            die("cannot write the output file");
        dc_dmime_free(dm);
        return 0;
    }
    struct submit_msg m = {from, env_to ? env_to : to, bytes, len};
    struct submit_req req = {qid, mid, &m, 1};
    struct submit_result res;
    enum dc_status s = submit_send(cfg.submit_socket, 120, &req, &res, &e);
    for (int k = 0; retry && s != DC_OK && res.code < 500 && k < 900; k++) {
        usleep(200000);
        s = submit_send(cfg.submit_socket, 120, &req, &res, &e);
    }
    pthread_mutex_lock(&mu);
    printf("%u %s\n", i, res.code ? res.text : e.msg);
    fflush(stdout);
    pthread_mutex_unlock(&mu);
    dc_dmime_free(dm);
    return s == DC_OK ? 0 : -1;
}

static void *worker(void *arg)
{
    (void)arg;
    struct kv_client *kv = NULL;
    struct dc_err e = {0};
    struct dc_signet *author = NULL, *origin = NULL;
    if (kv_client_connect(cfg.keyvault_socket, &kv, &e) != DC_OK ||
        kv_client_signet(kv, from, NULL, &author, &e) != DC_OK ||
        kv_client_signet(kv, strrchr(from, '@') + 1, NULL, &origin, &e) != DC_OK)
        die(e.msg);
    for (;;) {
        pthread_mutex_lock(&mu);
        unsigned i = next_i++;
        pthread_mutex_unlock(&mu);
        if (i >= count)
            break;
        if (pause_ms && i >= threads)
            usleep(pause_ms * 1000U);
        if (one(kv, author, origin, i) != 0) {
            pthread_mutex_lock(&mu);
            failures++;
            pthread_mutex_unlock(&mu);
        }
    }
    dc_signet_free(author);
    dc_signet_free(origin);
    kv_client_close(kv);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *conf = NULL;
    int ch;
    while ((ch = getopt(argc, argv, "c:f:t:e:n:j:q:m:o:rs:d:")) != -1) {
        switch (ch) {
        case 'c': conf = optarg; break;
        case 'f': from = optarg; break;
        case 't': to = optarg; break;
        case 'e': env_to = optarg; break;
        case 'n': count = (unsigned)atoi(optarg); break;
        case 'j': threads = (unsigned)atoi(optarg); break;
        case 'q': qprefix = optarg; break;
        case 'm': marker = optarg; break;
        case 'o': outfile = optarg; break;
        case 'r': retry = 1; break;
        case 's': body_size = (size_t)atol(optarg); break;
        case 'd': pause_ms = (unsigned)atoi(optarg); break;
        default: die("bad option");
        }
    }
    if (!conf || !from || !to || !strchr(from, '@') || threads == 0 || threads > 256)
        die("usage: xfer_submit -c CONF -f FROM -t TO [-e ENV-TO] [-n N] [-j J] [-q QID] "
            "[-m MARKER] [-o FILE] [-r] [-s BYTES] [-d MS]");
    struct dc_err e = {0};
    if (rl_config_load(conf, false, &cfg, &e) != DC_OK)
        die(e.msg);
    lookup();
    if (outfile)
        count = threads = 1;
    pthread_t t[256];
    for (unsigned k = 0; k < threads; k++)
        pthread_create(&t[k], NULL, worker, NULL);
    for (unsigned k = 0; k < threads; k++)
        pthread_join(t[k], NULL);
    dc_signet_free(dest_org);
    dc_signet_free(rcpt_user);
    rl_config_free(&cfg);
    return failures ? 1 : 0;
}
