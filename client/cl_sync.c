/*
 * cl_sync - dime-client sync and decrypt (see cl_sync.h).
 */
#include "cl_sync.h"

#include "cl_cli.h"
#include "cl_decrypt.h"
#include "cl_imap.h"
#include "cl_keyfile.h"
#include "cl_maildir.h"
#include "cl_pass.h"
#include "cl_state.h"

#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#define MAX_MESSAGE (64u << 20)
#define PASS_ENV "DIME_CLIENT_PASSPHRASE"
#define IMAP_PASS_ENV "DIME_IMAP_PASSWORD"

static const char *cmd_name = "sync";

__attribute__((format(printf, 2, 3))) static int say(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cl_vsay(cmd_name, code, fmt, ap);
    va_end(ap);
    return code;
}

/* A descriptor number option, -1 when it is not one. */
static int fd_opt(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return *s && !*end && errno == 0 && v >= 0 && v <= 65535 ? (int)v : -1;
}

/* The user's side: the key (opened with the passphrase) and the imported signets. */
#define OLDER_MAX 64

struct me {
    char *address;
    struct dc_sign_key *sk;
    struct dc_enc_key *ek;
    struct dc_signet *user, *org;
    struct dc_enc_key *older[OLDER_MAX]; /* key-N.sealed: earlier generations */
    size_t nolder;
};

/* The encryption keys of earlier generations kept in dir (key-N.sealed, from a rotation or a
 * migration), opened with the same passphrase; one that does not open is said and passed
 * over (mail sealed to it then fails as before). */
static void me_older(const char *dir, const char *pass, size_t pl, struct me *m)
{
    glob_t g;
    char *pat = dc_xasprintf("%s/key-*.sealed", dir);
    if (glob(pat, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc && m->nolder < OLDER_MAX; i++) {
            struct dc_err e = {0};
            uint8_t *bin = NULL;
            size_t bl = 0;
            char *addr = NULL;
            struct dc_sign_key *sk = NULL;
            struct dc_enc_key *ek = NULL;
            if (dc_read_file(g.gl_pathv[i], CL_KEYFILE_MAX, &bin, &bl, &e) == DC_OK &&
                cl_keyfile_open(bin, bl, pass, pl, &addr, &sk, &ek, &e) == DC_OK)
                m->older[m->nolder++] = ek;
            else
                say(0, "%s: %s (passed over)", g.gl_pathv[i], e.msg);
            dc_sign_key_free(sk);
            free(addr);
            free(bin);
        }
        globfree(&g);
    }
    free(pat);
}

static void me_free(struct me *m)
{
    free(m->address);
    dc_sign_key_free(m->sk);
    dc_enc_key_free(m->ek);
    dc_signet_free(m->user);
    dc_signet_free(m->org);
    for (size_t i = 0; i < m->nolder; i++)
        dc_enc_key_free(m->older[i]);
    memset(m, 0, sizeof(*m));
}

static int me_open(const char *dir, int pfd, struct me *m)
{
    memset(m, 0, sizeof(*m));
    struct dc_err e = {0};
    char *kpath = dc_xasprintf("%s/key.sealed", dir), *up = dc_xasprintf("%s/user.signet", dir),
         *op = dc_xasprintf("%s/org.signet", dir);
    uint8_t *kbin = NULL;
    size_t kl = 0, pl = 0;
    char *pass = NULL;
    int rc = EX_OK;
    if (dc_read_file(kpath, CL_KEYFILE_MAX, &kbin, &kl, &e) != DC_OK) {
        rc = say(EX_NOINPUT, "%s: %s", kpath, e.msg);
    } else if (dc_signet_load_file(up, &m->user, &e) != DC_OK ||
               dc_signet_load_file(op, &m->org, &e) != DC_OK) {
        rc = say(EX_NOINPUT, "no imported signet in %s: %s", dir, e.msg);
    } else if (cl_pass_get(pfd, PASS_ENV, "passphrase of your DIME keys", &pass, &pl, &e) !=
               DC_OK) {
        rc = say(EX_NOINPUT, "%s", e.msg);
    } else if (cl_keyfile_open(kbin, kl, pass, pl, &m->address, &m->sk, &m->ek, &e) != DC_OK) {
        rc = say(e.code == DC_ERR_SIGNATURE ? EX_NOPERM : EX_DATAERR, "%s: %s", kpath, e.msg);
    } else {
        me_older(dir, pass, pl, m);
    }
    cl_pass_free(pass, pl);
    free(kbin);
    free(kpath);
    free(up);
    free(op);
    if (rc != EX_OK)
        me_free(m);
    return rc;
}

/* Options both commands take. */
struct common {
    const char *signets, *authserv;
    int pfd;
};

/* ---- sync ---- */

struct counts {
    unsigned fetched, pass, fail, none, dup, skipped;
};

/* One UID: fetched, opened, delivered unless already delivered, remembered. */
static int one(struct cl_imap *im, struct cl_state *st, const struct cl_reader *r,
               const char *maildir, uint32_t uid, struct counts *c)
{
    struct dc_err e = {0};
    uint8_t *msg = NULL;
    size_t len = 0;
    if (cl_imap_fetch(im, st->uidvalidity, uid, &msg, &len, &e) != DC_OK) {
        if (e.code != DC_ERR_LIMIT)
            return say(EX_TEMPFAIL, "UID %" PRIu32 ": %s", uid, e.msg);
        /* never deliverable here: said once, then passed over, not retried forever */
        say(EX_DATAERR, "UID %" PRIu32 ": %s: skipped (still on the server)", uid, e.msg);
        c->skipped++;
        st->last_uid = uid;
        return cl_state_save(st, &e) == DC_OK ? EX_OK : say(EX_CANTCREAT, "%s", e.msg);
    }
    c->fetched++;
    struct cl_opened o;
    cl_open_message(r, msg, len, &o);
    free(msg);
    int rc = EX_OK;
    if (cl_state_seen(st, o.digest)) {
        c->dup++;
    } else {
        char *name = NULL;
        if (cl_maildir_deliver(maildir, o.msg, o.len, NULL, 0, &name, &e) != DC_OK ||
            cl_state_add_seen(st, o.digest, &e) != DC_OK) {
            rc = say(EX_CANTCREAT, "%s", e.msg);
        } else {
            *(o.result == CL_DIME_PASS ? &c->pass : o.result == CL_DIME_FAIL ? &c->fail
                                                                            : &c->none) += 1;
            printf("UID %" PRIu32 ": dime=%s%s%s -> new/%s\n", uid, cl_dime_name(o.result),
                   o.author ? " from " : "", o.author ? o.author : "", name);
            if (o.result == CL_DIME_FAIL)
                printf("    reason: %s\n", o.reason);
        }
        free(name);
    }
    cl_opened_free(&o);
    if (rc == EX_OK) {
        st->last_uid = uid;
        if (cl_state_save(st, &e) != DC_OK)
            rc = say(EX_CANTCREAT, "%s", e.msg);
    }
    return rc;
}

int cl_sync_main(const char *dir, int argc, char **argv)
{
    static const struct option opts[] = {
        {"imap", required_argument, NULL, 'u'},         {"login", required_argument, NULL, 'l'},
        {"password-fd", required_argument, NULL, 'W'},  {"passphrase-fd", required_argument, NULL, 'P'},
        {"ca-file", required_argument, NULL, 'C'},      {"signets", required_argument, NULL, 'S'},
        {"maildir", required_argument, NULL, 'm'},      {"mailbox", required_argument, NULL, 'b'},
        {"authserv-id", required_argument, NULL, 'A'},  {NULL, 0, NULL, 0}};
    cmd_name = "sync";
    struct cl_imap im = {.mailbox = "INBOX", .timeout = 120, .max_message = MAX_MESSAGE};
    struct common co = {NULL, CL_AUTHSERV_DEFAULT, -1};
    const char *maildir = NULL;
    int ch, wfd = -1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'u': im.url = optarg; break;
        case 'l': im.login = optarg; break;
        case 'W':
        case 'P':
            if (fd_opt(optarg) < 0)
                return say(EX_USAGE, "'%s' is not a file descriptor number", optarg);
            *(ch == 'W' ? &wfd : &co.pfd) = fd_opt(optarg);
            break;
        case 'C': im.ca_file = optarg; break;
        case 'S': co.signets = optarg; break;
        case 'm': maildir = optarg; break;
        case 'b': im.mailbox = optarg; break;
        case 'A': co.authserv = optarg; break;
        default: return say(EX_USAGE, "see dime-client(1) for the options");
        }
    }
    if (im.url == NULL || optind != argc)
        return say(EX_USAGE, "--imap URL is needed (imaps://host:993 or imap://host:143, "
                   "which must offer STARTTLS), and nothing else");
    char *peers = dc_xasprintf("%s/peers", dir), *md = dc_xasprintf("%s/Maildir", dir);
    struct me me;
    struct cl_state st = {0};
    struct dc_err e = {0};
    char *pw = NULL;
    size_t wl = 0;
    struct counts c = {0};
    int rc = me_open(dir, co.pfd, &me);
    if (rc != EX_OK)
        goto out;
    if (maildir == NULL)
        maildir = md;
    if (cl_state_load(dir, &st, &e) != DC_OK) {
        rc = say(EX_DATAERR, "%s", e.msg);
        goto out;
    }
    if (cl_maildir_init(maildir, &e) != DC_OK) {
        rc = say(EX_CANTCREAT, "%s", e.msg);
        goto out;
    }
    if (cl_pass_get(wfd, IMAP_PASS_ENV, "IMAP password", &pw, &wl, &e) != DC_OK) {
        rc = say(EX_NOINPUT, "%s", e.msg);
        goto out;
    }
    im.login = im.login ? im.login : me.address;
    im.password = pw;
    struct cl_reader r = {me.address, me.ek, co.signets ? co.signets : peers, me.user, me.org,
                          co.authserv, (const struct dc_enc_key *const *)me.older, me.nolder};
    uint32_t validity, next, *uids = NULL;
    size_t n = 0;
    if (cl_imap_status(&im, &validity, &next, &e) != DC_OK) {
        rc = say(e.code == DC_ERR_SIGNATURE ? EX_NOPERM : EX_TEMPFAIL, "%s", e.msg);
        goto out;
    }
    if (validity != st.uidvalidity) {
        /* a first run, or the server renumbered the mailbox: everything again; sync.seen
         * keeps what was delivered from being delivered twice */
        if (st.uidvalidity != 0)
            printf("UIDVALIDITY changed (%" PRIu32 " -> %" PRIu32 "): fetching the mailbox "
                   "again, skipping what was delivered\n", st.uidvalidity, validity);
        st.uidvalidity = validity;
        st.last_uid = 0;
    }
    if (next > st.last_uid + 1 &&
        cl_imap_search(&im, validity, st.last_uid + 1, &uids, &n, &e) != DC_OK) {
        rc = say(EX_TEMPFAIL, "%s", e.msg);
        goto out;
    }
    for (size_t i = 0; i < n && rc == EX_OK; i++)
        rc = one(&im, &st, &r, maildir, uids[i], &c);
    free(uids);
    if (rc == EX_OK && cl_state_save(&st, &e) != DC_OK)
        rc = say(EX_CANTCREAT, "%s", e.msg);
    printf("sync: %u fetched, %u delivered (%u pass, %u fail, %u not DIME), %u already "
           "delivered%s\n", c.fetched, c.pass + c.fail + c.none, c.pass, c.fail, c.none, c.dup,
           c.skipped ? ", some too large (above)" : "");
out:
    cl_imap_close(&im);
    cl_pass_free(pw, wl);
    cl_state_free(&st);
    me_free(&me);
    free(peers);
    free(md);
    return rc;
}

/* ---- decrypt ---- */

int cl_decrypt_main(const char *dir, int argc, char **argv)
{
    static const struct option opts[] = {
        {"passphrase-fd", required_argument, NULL, 'P'}, {"signets", required_argument, NULL, 'S'},
        {"authserv-id", required_argument, NULL, 'A'},   {NULL, 0, NULL, 0}};
    cmd_name = "decrypt";
    struct common co = {NULL, CL_AUTHSERV_DEFAULT, -1};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'P':
            if ((co.pfd = fd_opt(optarg)) < 0)
                return say(EX_USAGE, "'%s' is not a file descriptor number", optarg);
            break;
        case 'S': co.signets = optarg; break;
        case 'A': co.authserv = optarg; break;
        default: return say(EX_USAGE, "see dime-client(1) for the options");
        }
    }
    if (optind != argc)
        return say(EX_USAGE, "the message comes on standard input");
    struct dc_buf in;
    dc_buf_init(&in);
    for (;;) {
        dc_buf_reserve(&in, 65536);
        ssize_t k = read(0, in.data + in.len, 65536);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 || in.len + (size_t)k > MAX_MESSAGE) {
            dc_buf_free(&in);
            return say(k < 0 ? EX_IOERR : EX_DATAERR, "standard input: %s",
                       k < 0 ? strerror(errno) : "the message is too large");
        }
        if (k == 0)
            break;
        in.len += (size_t)k;
    }
    char *peers = dc_xasprintf("%s/peers", dir);
    struct me me;
    int rc = me_open(dir, co.pfd, &me);
    if (rc == EX_OK) {
        struct cl_reader r = {me.address, me.ek, co.signets ? co.signets : peers, me.user,
                              me.org, co.authserv, (const struct dc_enc_key *const *)me.older,
                              me.nolder};
        struct cl_opened o;
        cl_open_message(&r, in.data, in.len, &o);
        rc = o.result == CL_DIME_PASS ? CL_EXIT_PASS
             : o.result == CL_DIME_FAIL ? CL_EXIT_FAIL : CL_EXIT_NONE;
        if (fwrite(o.msg, 1, o.len, stdout) != o.len || fflush(stdout) != 0)
            rc = say(EX_IOERR, "standard output: %s", strerror(errno));
        else if (o.result == CL_DIME_FAIL)
            say(rc, "dime=fail: %s", o.reason);
        cl_opened_free(&o);
    }
    me_free(&me);
    free(peers);
    dc_buf_free(&in);
    return rc;
}
