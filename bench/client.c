/*
 * bench/client - dime-client's own work per 4 KiB message against the D/MIME crypto floor of
 * the same message, measured in the same run (issue 14).
 *
 *   send: what `dime-client send` does per message and recipient once its key is open:
 *         parse the message (cl_msg_parse) and make the author-form D/MIME in its
 *         application/x-dime message (cl_wrap). Floor: the codec call inside cl_wrap alone,
 *         dc_message_encrypt in author form of the same parsed message.
 *   sync: what `dime-client sync` does per message once it is fetched: open and check the
 *         wrapper (cl_open_message: base64, dc_message_decrypt as the recipient with the
 *         sender's signets read from the peers directory, the checks of the milter's inbound
 *         side, our verdict field), deliver it into a local Maildir (cl_maildir_deliver:
 *         write, fsync, rename, fsync of new/) and remember it (cl_state_add_seen: append and
 *         fsync of sync.seen). Floor: dc_message_decrypt of the same D/MIME as the
 *         recipient, the signets handed over from memory.
 * The ratio is floor time / real time (1.0 = nothing but the codec). The two fsyncs of sync
 * are the disk's price, not the CPU's; the run prints sync without them too (the same work
 * into a Maildir on tmpfs when /dev/shm exists).
 *
 * Once per process, not per message: opening the key file (Argon2id) at the interactive and
 * moderate costs. `dime-client send` is one process per message (sendmail's interface), so
 * this is what each submission pays on top; sync pays it once per run.
 *
 * Not measured: SMTP and IMAP. Per message they are round trips to the provider (libcurl
 * over TLS: the handshake once per command for send, once per run for sync, then one
 * command and its answer per message), which the network and the server decide; in process
 * there is nothing of the client's own to time there.
 *
 * Usage: client [seconds-per-measurement [cpu]]   (default 1.0, wall-clock time; best of 3
 * rounds). With "cpu" every measurement counts the process's CPU time, as bench/dmime's
 * option: a loaded machine's waiting for a core does not count, and neither does the
 * waiting of an fsync, so the Maildir rows then show the CPU of delivery only.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cl_decrypt.h"
#include "cl_keyfile.h"
#include "cl_maildir.h"
#include "cl_send.h"
#include "cl_state.h"
#include "dc_b64.h"
#include "dc_keys.h"
#include "dc_message.h"

static double budget = 1.0;
static clockid_t clock_id = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#include "best_of_three.h"

static void die(const char *what, const struct dc_err *e)
{
    fprintf(stderr, "bench/client: %s failed: %s\n", what, e ? e->msg : "");
    exit(1);
}

/* bob@bob.test (0) of bob.test (1); alice.test (2) and its Paranoid carol@alice.test (3) */
static struct dc_keyfile *key[4];
static struct dc_signet *sig[4];

static void world(void)
{
    struct dc_err e = {0};
    for (int a = 0; a < 4; a++)
        if (dc_keyfile_generate(a == 1 || a == 2 ? DC_KEY_ORG : DC_KEY_USER, &key[a], &e) != DC_OK)
            die("keys", &e);
    for (int a = 1; a <= 2; a++)
        if (dc_signet_org_create(key[a]->sign, key[a]->enc->pub, &sig[a], &e) != DC_OK)
            die("org signet", &e);
    for (int a = 0; a <= 3; a += 3) {
        struct dc_signet *ssr = NULL;
        struct dc_signer org;
        dc_signer_local(&org, key[a ? 2 : 1]->sign);
        if (dc_signet_ssr_create(key[a]->sign, key[a]->enc->pub, NULL, &ssr, &e) != DC_OK ||
            dc_signet_ssr_sign(ssr, NULL, &org, &sig[a], &e) != DC_OK)
            die("user signet", &e);
        dc_signet_free(ssr);
    }
}

/* A 4 KiB text message from `from` to `to`. */
static char *message(const char *from, const char *to)
{
    struct dc_buf b;
    dc_buf_init(&b);
    dc_buf_printf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: a 4 KiB message\r\n"
                      "Date: Mon, 07 Dec 2026 12:00:00 +0000\r\nMessage-ID: <1@bench>\r\n"
                      "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
                  from, to);
    while (b.len < 4096 - 74)
        dc_buf_printf(&b, "%.70s\r\n",
                      "The quick brown fox jumps over the lazy dog, sealed on my own machine..");
    dc_buf_putc(&b, '\0');
    return (char *)b.data;
}

static enum dc_status find_mem(void *ctx, enum dc_msg_role role, const char *name,
                               const char *fp, struct dc_signet **out, struct dc_err *err)
{
    *out = dc_signet_dup(role == DC_MSG_AUTHOR_SIGNET ? sig[0] : sig[1]);
    return DC_OK;
}

static void put_signet(const char *dir, const char *name, const struct dc_signet *s)
{
    struct dc_err e = {0};
    char *p = dc_xasprintf("%s/%s.signet", dir, name), *a = dc_signet_armor(s);
    if (dc_write_file(p, a, strlen(a), 0644, &e) != DC_OK)
        die("signet file", &e);
    free(p);
    free(a);
}

static void rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *p = dc_xasprintf("%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rmtree(p);
        else
            unlink(p);
        free(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

static void row(const char *what, double real, double floor)
{
    printf("%-44s %9.0f msg/s %8.3f ms   floor %9.0f msg/s %8.3f ms   ratio %.2f\n", what,
           real, 1e3 / real, floor, 1e3 / floor, real / floor);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        budget = atof(argv[1]);
    if (budget <= 0)
        budget = 1.0;
    if (argc > 2 && strcmp(argv[2], "cpu") == 0)
        clock_id = CLOCK_PROCESS_CPUTIME_ID;
    struct dc_err e = {0};
    world();

    /* ---- send ---- */
    char *out_msg = message("carol@alice.test", "bob@bob.test");
    size_t olen = strlen(out_msg);
    struct cl_author au = {"carol@alice.test", key[3]->sign, sig[3], sig[2]};
    struct cl_peer peer = {sig[1], sig[0]};
    struct cl_msg pm;
    if (cl_msg_parse((const uint8_t *)out_msg, olen, olen, &pm, &e) != DC_OK)
        die("parse", &e);
    struct dc_msg_parties sp = {"carol@alice.test", "bob@bob.test", sig[3], sig[2], sig[1],
                                sig[0]};
    struct dc_signer signer;
    dc_signer_local(&signer, key[3]->sign);
    struct dc_msg_opts opts = {0};
    double send_real, send_floor;
    MEASURE(send_floor, 10, {
        struct dc_dmime *dm = NULL;
        if (dc_message_encrypt(pm.mime, pm.len, &sp, &signer, NULL, NULL, &opts, &dm, &e) !=
            DC_OK)
            die("author-form encode", &e);
        dc_dmime_free(dm);
    });
    MEASURE(send_real, 10, {
        struct cl_msg m;
        uint8_t *w = NULL;
        size_t wl = 0;
        if (cl_msg_parse((const uint8_t *)out_msg, olen, olen, &m, &e) != DC_OK ||
            cl_wrap(&au, &m, "bob@bob.test", &peer, &w, &wl, &e) != DC_OK)
            die("cl_wrap", &e);
        free(w);
        cl_msg_free(&m);
    });

    /* ---- sync: bob's message to carol as alice's relay injects it ---- */
    char *in_msg = message("bob@bob.test", "carol@alice.test");
    struct dc_msg_parties rp = {"bob@bob.test", "carol@alice.test", sig[0], sig[1], sig[2],
                                sig[3]};
    struct dc_signer as, os;
    struct dc_kek_source oks, ks;
    dc_signer_local(&as, key[0]->sign);
    dc_signer_local(&os, key[1]->sign);
    dc_kek_source_local(&oks, key[1]->enc);
    dc_kek_source_local(&ks, key[3]->enc);
    struct dc_dmime *dm = NULL;
    if (dc_message_encrypt((const uint8_t *)in_msg, strlen(in_msg), &rp, &as, &os, &oks, &opts,
                           &dm, &e) != DC_OK)
        die("final encode", &e);
    size_t bl;
    const uint8_t *bin = dc_dmime_bytes(dm, &bl);
    char *b64 = dc_b64_encode_alloc(bin, bl, 1);
    struct dc_buf wb;
    dc_buf_init(&wb);
    dc_buf_printf(&wb, "Received: from bob.test by dx.alice.test (dime-relayd)\r\n"
                       "To: <carol@alice.test>\r\nContent-Type: application/x-dime\r\n"
                       "Content-Transfer-Encoding: base64\r\n\r\n");
    for (size_t i = 0; i < strlen(b64); i += 76)
        dc_buf_printf(&wb, "%.76s\r\n", b64 + i);
    free(b64);
    struct dc_msg_lookup mem = {find_mem, NULL};
    double sync_floor, sync_real, sync_mem = 0, sync_open;
    MEASURE(sync_floor, 10, {
        struct dc_message *m = NULL;
        if (dc_message_decrypt(bin, bl, DC_ACTOR_RECIPIENT, &ks, &mem, &m, &e) != DC_OK)
            die("decode", &e);
        dc_message_free(m);
    });
    char tmpl[] = "/tmp/bench-client.XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (dir == NULL)
        die("mkdtemp", NULL);
    put_signet(dir, "bob@bob.test", sig[0]);
    put_signet(dir, "bob.test", sig[1]);
    struct cl_reader r = {"carol@alice.test", key[3]->enc, dir, sig[3], sig[2],
                          CL_AUTHSERV_DEFAULT, NULL, 0};
    MEASURE(sync_open, 10, {
        struct cl_opened o;
        cl_open_message(&r, wb.data, wb.len, &o);
        if (o.result != CL_DIME_PASS)
            die("cl_open_message", NULL);
        cl_opened_free(&o);
    });
    /* the whole of sync's per-message work, into a Maildir on the disk, then on tmpfs */
    const char *where[2] = {dir, "/dev/shm"};
    for (int w = 0; w < 2; w++) {
        char *base = w == 0 ? dc_xstrdup(dir) : NULL;
        if (w == 1) {
            char t2[] = "/dev/shm/bench-client.XXXXXX";
            if (access(where[1], W_OK) != 0 || mkdtemp(t2) == NULL)
                break;
            base = dc_xstrdup(t2);
        }
        char *md = dc_xasprintf("%s/Maildir", base);
        struct cl_state st;
        if (cl_maildir_init(md, &e) != DC_OK || cl_state_load(base, &st, &e) != DC_OK)
            die("maildir", &e);
        double *res = w == 0 ? &sync_real : &sync_mem;
        MEASURE(*res, 10, {
            struct cl_opened o;
            cl_open_message(&r, wb.data, wb.len, &o);
            if (o.result != CL_DIME_PASS ||
                cl_maildir_deliver(md, o.msg, o.len, NULL, 0, NULL, &e) != DC_OK ||
                cl_state_add_seen(&st, o.digest, &e) != DC_OK)
                die("deliver", &e);
            cl_opened_free(&o);
        });
        cl_state_free(&st);
        free(md);
        if (w == 1)
            rmtree(base);
        free(base);
    }
    rmtree(dir);

    /* ---- once per process: the key file ---- */
    double kdf[2] = {0, 0};
    for (int c = 0; c < 2; c++) {
        uint8_t *sealed = NULL;
        size_t sl = 0;
        if (cl_keyfile_seal("carol@alice.test", key[3]->sign, key[3]->enc, "passphrase", 10,
                            (enum cl_kdf_cost)c, &sealed, &sl, &e) != DC_OK)
            die("seal", &e);
        MEASURE(kdf[c], 2, {
            char *a = NULL;
            struct dc_sign_key *k1 = NULL;
            struct dc_enc_key *k2 = NULL;
            if (cl_keyfile_open(sealed, sl, "passphrase", 10, &a, &k1, &k2, &e) != DC_OK)
                die("open", &e);
            free(a);
            dc_sign_key_free(k1);
            dc_enc_key_free(k2);
        });
        free(sealed);
    }

    printf("bench/client: 4 KiB message (%zu bytes), %.1f s per measurement (%s), best of 3 "
           "rounds; ratio = floor time / our time\n", olen, budget,
           clock_id == CLOCK_MONOTONIC ? "wall clock" : "process CPU time");
    row("send: parse + author-form D/MIME + wrapper", send_real, send_floor);
    row("sync: open + check (signets from files)", sync_open, sync_floor);
    row("sync: + Maildir delivery + sync.seen (disk)", sync_real, sync_floor);
    if (sync_mem > 0)
        row("sync: + Maildir delivery + sync.seen (tmpfs)", sync_mem, sync_floor);
    printf("per process (key file, Argon2id): interactive %.1f ms, moderate %.1f ms\n",
           1e3 / kdf[0], 1e3 / kdf[1]);
    cl_msg_free(&pm);
    dc_dmime_free(dm);
    dc_buf_free(&wb);
    free(out_msg);
    free(in_msg);
    for (int a = 0; a < 4; a++) {
        dc_keyfile_free(key[a]);
        dc_signet_free(sig[a]);
    }
    return 0;
}
