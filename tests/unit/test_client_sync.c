/*
 * dime-client's reading side without a server: the sync state files (cl_state), the Maildir
 * writer (cl_maildir), the SEARCH answer (cl_imap_parse_search) and the verdict on one
 * message (cl_open_message) with fresh keys and signets in a temporary signet directory; the
 * pins of send's lookup (cl_pin) and its --dx-connect-to address.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cl_decrypt.h"
#include "cl_imap.h"
#include "cl_lookup.h"
#include "cl_maildir.h"
#include "cl_state.h"

#include "dc_b64.h"
#include "dc_keys.h"
#include "dc_message.h"
#include "dl_resolve.h"

#include <arpa/inet.h>

static char *tmpdir(void)
{
    char *d = strdup("/tmp/cl-sync-XXXXXX");
    cr_assert_not_null(mkdtemp(d));
    return d;
}

/* Removes the directory tmpdir() made and frees its name. */
static void rmtree(char *d)
{
    char *cmd = dc_xasprintf("rm -rf '%s'", d);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(d);
}

static void put_file(const char *dir, const char *name, const char *text)
{
    char *p = dc_xasprintf("%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* ---- cl_state ---- */

Test(state, a_first_run_then_what_was_saved_and_appended)
{
    char *d = tmpdir();
    struct cl_state st;
    struct dc_err e = {0};
    cr_assert_eq(cl_state_load(d, &st, &e), DC_OK, "%s", e.msg);
    cr_assert_eq(st.uidvalidity, 0);
    cr_assert_eq(st.last_uid, 0);
    cr_assert_eq(st.nseen, 0);
    uint8_t a[CL_DIGEST_LEN], b[CL_DIGEST_LEN];
    cl_digest((const uint8_t *)"one", 3, a);
    cl_digest((const uint8_t *)"two", 3, b);
    cr_assert(memcmp(a, b, CL_DIGEST_LEN) != 0);
    st.uidvalidity = 4000000000u;
    st.last_uid = 17;
    cr_assert_eq(cl_state_save(&st, &e), DC_OK, "%s", e.msg);
    cr_assert_eq(cl_state_add_seen(&st, a, &e), DC_OK, "%s", e.msg);
    cr_assert(cl_state_seen(&st, a));
    cr_assert(!cl_state_seen(&st, b));
    cl_state_free(&st);

    cr_assert_eq(cl_state_load(d, &st, &e), DC_OK, "%s", e.msg);
    cr_assert_eq(st.uidvalidity, 4000000000u);
    cr_assert_eq(st.last_uid, 17);
    cr_assert_eq(st.nseen, 1);
    cr_assert(cl_state_seen(&st, a));
    cr_assert(!cl_state_seen(&st, b));
    cl_state_free(&st);
    rmtree(d);
}

Test(state, malformed_files_are_refused_by_name_and_line)
{
    static const struct {
        const char *state, *why;
    } bad[] = {
        {"dime-client-sync 2\nuidvalidity 1\nlast-uid 1\n", "line 1"},
        {"dime-client-sync 1\nuidvalidity 1\n", "line 3 missing"},
        {"dime-client-sync 1\nuidvalidity x\nlast-uid 1\n", "line 2 is not uidvalidity"},
        {"dime-client-sync 1\nuidvalidity 4294967296\nlast-uid 1\n", "line 2"},
        {"dime-client-sync 1\nuidvalidity 1\nlast-uid -1\n", "line 3 is not last-uid"},
        {"dime-client-sync 1\nuidvalidity 1\nlast-uid 1\nmore\n", "more than three lines"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *d = tmpdir();
        put_file(d, "sync.state", bad[i].state);
        struct cl_state st;
        struct dc_err e = {0};
        cr_assert_neq(cl_state_load(d, &st, &e), DC_OK, "case %zu loaded", i);
        cr_assert(strstr(e.msg, "sync.state") && strstr(e.msg, bad[i].why), "case %zu: %s", i,
                  e.msg);
        rmtree(d);
    }
    char *d = tmpdir();
    put_file(d, "sync.seen", "00\n");
    struct cl_state st;
    struct dc_err e = {0};
    cr_assert_neq(cl_state_load(d, &st, &e), DC_OK);
    cr_assert(strstr(e.msg, "sync.seen: line 1 is not a digest"), "%s", e.msg);
    rmtree(d);
}

Test(state, a_cut_append_is_dropped_and_the_next_append_replaces_it)
{
    char *d = tmpdir();
    uint8_t a[CL_DIGEST_LEN], b[CL_DIGEST_LEN];
    cl_digest((const uint8_t *)"a", 1, a);
    cl_digest((const uint8_t *)"b", 1, b);
    char hex[2 * CL_DIGEST_LEN + 1];
    dc_hex_encode(a, CL_DIGEST_LEN, hex);
    char *text = dc_xasprintf("%s\n%.20s", hex, hex); /* the second append cut short */
    put_file(d, "sync.seen", text);
    free(text);
    struct cl_state st;
    struct dc_err e = {0};
    cr_assert_eq(cl_state_load(d, &st, &e), DC_OK, "%s", e.msg);
    cr_assert_eq(st.nseen, 1);
    cr_assert(st.torn);
    cr_assert_eq(cl_state_add_seen(&st, b, &e), DC_OK, "%s", e.msg);
    cl_state_free(&st);
    cr_assert_eq(cl_state_load(d, &st, &e), DC_OK, "%s", e.msg);
    cr_assert_eq(st.nseen, 2);
    cr_assert(!st.torn);
    cr_assert(cl_state_seen(&st, a) && cl_state_seen(&st, b));
    cl_state_free(&st);
    rmtree(d);
}

/* ---- cl_maildir ---- */

Test(maildir, made_then_each_message_in_new_whole_and_under_its_own_name)
{
    char *d = tmpdir();
    char *md = dc_xasprintf("%s/Mail", d);
    struct dc_err e = {0};
    cr_assert_eq(cl_maildir_init(md, &e), DC_OK, "%s", e.msg);
    cr_assert_eq(cl_maildir_init(md, &e), DC_OK, "a second init: %s", e.msg);
    char *names[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(cl_maildir_deliver(md, "Subject: x\r\n", 12, "\r\nbody\r\n", 8, &names[i],
                                        &e),
                     DC_OK, "%s", e.msg);
    cr_assert(strcmp(names[0], names[1]) != 0 && strcmp(names[1], names[2]) != 0);
    cr_assert_null(strchr(names[0], ':'));
    char *sub = dc_xasprintf("%s/new", md);
    cr_assert_eq(count_files(sub), 3);
    free(sub);
    sub = dc_xasprintf("%s/tmp", md);
    cr_assert_eq(count_files(sub), 0, "nothing is left in tmp");
    free(sub);
    char *p = dc_xasprintf("%s/new/%s", md, names[1]);
    uint8_t *b;
    size_t n;
    cr_assert_eq(dc_read_file(p, 1000, &b, &n, &e), DC_OK, "%s", e.msg);
    cr_assert_eq(n, 20);
    cr_assert(memcmp(b, "Subject: x\r\n\r\nbody\r\n", 20) == 0);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    free(b);
    free(p);
    for (int i = 0; i < 3; i++)
        free(names[i]);
    free(md);
    rmtree(d);
}

Test(maildir, a_file_where_a_directory_belongs_is_an_error)
{
    char *d = tmpdir();
    put_file(d, "new", "x");
    struct dc_err e = {0};
    cr_assert_neq(cl_maildir_init(d, &e), DC_OK);
    cr_assert(strstr(e.msg, "/new: not a directory"), "%s", e.msg);
    cr_assert_neq(cl_maildir_deliver(d, "a", 1, NULL, 0, NULL, &e), DC_OK);
    rmtree(d);
}

/* ---- the SEARCH answer ---- */

Test(imap, search_numbers_from_untagged_lines_only)
{
    const char *t = "* SEARCH 3 4 17\r\n* 2 EXISTS\r\n* SEARCH 4294967295\r\n"
                    "* SEARCH 5 x 6\r\n* SEARCH 4294967296\r\n* SEARCH\r\n";
    uint32_t *u;
    size_t n;
    cl_imap_parse_search(t, strlen(t), &u, &n);
    cr_assert_eq(n, 5);
    uint32_t want[] = {3, 4, 17, 4294967295u, 5};
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(u[i], want[i], "uid %zu", i);
    free(u);
}

/* ---- the verdict ---- */

struct world {
    struct dc_keyfile *key[4]; /* author, origin, destination, recipient */
    struct dc_signet *sig[4];
    char *dir;                 /* the signet directory */
};

static void world_make(struct world *w)
{
    memset(w, 0, sizeof(*w));
    struct dc_err e = {0};
    for (int a = 0; a < 4; a++)
        cr_assert_eq(dc_keyfile_generate(a == 1 || a == 2 ? DC_KEY_ORG : DC_KEY_USER, &w->key[a],
                                         &e),
                     DC_OK, "%s", e.msg);
    for (int a = 1; a <= 2; a++)
        cr_assert_eq(dc_signet_org_create(w->key[a]->sign, w->key[a]->enc->pub, &w->sig[a], &e),
                     DC_OK, "%s", e.msg);
    for (int a = 0; a <= 3; a += 3) {
        struct dc_signet *ssr = NULL;
        struct dc_signer org;
        dc_signer_local(&org, w->key[a ? 2 : 1]->sign);
        cr_assert_eq(dc_signet_ssr_create(w->key[a]->sign, w->key[a]->enc->pub, NULL, &ssr, &e),
                     DC_OK, "%s", e.msg);
        cr_assert_eq(dc_signet_ssr_sign(ssr, NULL, &org, &w->sig[a], &e), DC_OK, "%s", e.msg);
        dc_signet_free(ssr);
    }
    w->dir = tmpdir();
    static const char *names[2] = {"bob@bob.test", "bob.test"};
    for (int a = 0; a < 2; a++) {
        char *arm = dc_signet_armor(w->sig[a]);
        char *f = dc_xasprintf("%s.signet", names[a]);
        put_file(w->dir, f, arm);
        free(f);
        free(arm);
    }
}

static void world_free(struct world *w)
{
    for (int a = 0; a < 4; a++) {
        dc_keyfile_free(w->key[a]);
        dc_signet_free(w->sig[a]);
    }
    rmtree(w->dir);
}

static const char MSG[] = "From: Bob <bob@bob.test>\r\nTo: <carol@alice.test>\r\n"
                          "Subject: sealed\r\nDate: Mon, 07 Dec 2026 13:00:00 +0000\r\n"
                          "Message-ID: <1@bob.test>\r\nAuthentication-Results: dime-client; "
                          "dime=pass header.from=ceo@bank.test\r\nMIME-Version: 1.0\r\n"
                          "Content-Type: text/plain\r\n\r\nHello  \r\n.\r\n";

/* MSG from bob@bob.test to carol@alice.test in a wrapper as the relay injects it; flip: a
 * D/MIME byte to change. */
static char *wrapped(const struct world *w, long flip)
{
    struct dc_msg_parties p = {"bob@bob.test", "carol@alice.test", w->sig[0], w->sig[1],
                               w->sig[2], w->sig[3]};
    struct dc_signer as, os;
    struct dc_kek_source oks;
    dc_signer_local(&as, w->key[0]->sign);
    dc_signer_local(&os, w->key[1]->sign);
    dc_kek_source_local(&oks, w->key[1]->enc);
    struct dc_msg_opts o = {0};
    struct dc_dmime *dm = NULL;
    struct dc_err e = {0};
    cr_assert_eq(dc_message_encrypt((const uint8_t *)MSG, strlen(MSG), &p, &as, &os, &oks, &o,
                                    &dm, &e),
                 DC_OK, "%s", e.msg);
    size_t n;
    const uint8_t *b = dc_dmime_bytes(dm, &n);
    uint8_t *bin = dc_xmalloc(n);
    memcpy(bin, b, n);
    if (flip >= 0)
        bin[flip % (long)n] ^= 1;
    char *b64 = dc_b64_encode_alloc(bin, n, 1);
    struct dc_buf w64;
    dc_buf_init(&w64);
    dc_buf_printf(&w64, "Received: from bob.test by dx.alice.test (dime-relayd)\r\n"
                        "Authentication-Results: dime-client; dime=pass\r\n"
                        "To: <carol@alice.test>\r\nContent-Type: application/x-dime\r\n"
                        "Content-Transfer-Encoding: base64\r\n\r\n");
    for (size_t i = 0; i < strlen(b64); i += 76)
        dc_buf_printf(&w64, "%.76s\r\n", b64 + i);
    free(b64);
    free(bin);
    dc_dmime_free(dm);
    size_t l;
    return (char *)dc_buf_steal(&w64, &l);
}

static void open_as_carol(const struct world *w, const char *msg, struct cl_opened *o)
{
    struct cl_reader r = {"carol@alice.test", w->key[3]->enc, w->dir, NULL, NULL,
                          CL_AUTHSERV_DEFAULT, NULL, 0};
    cl_open_message(&r, (const uint8_t *)msg, strlen(msg), o);
}

Test(verdict, pass_gives_the_message_byte_for_byte_under_our_field)
{
    struct world w;
    world_make(&w);
    char *in = wrapped(&w, -1);
    struct cl_opened o;
    open_as_carol(&w, in, &o);
    cr_assert_eq(o.result, CL_DIME_PASS, "%s", o.reason);
    cr_assert_str_eq(o.author, "bob@bob.test");
    const char *head = "Authentication-Results: dime-client; dime=pass header.from=bob@bob.test"
                       "\r\n\t(author signet ";
    cr_assert(o.len > strlen(head) && memcmp(o.msg, head, strlen(head)) == 0);
    const char *end = strstr((const char *)o.msg, ")\r\n");
    cr_assert_not_null(end);
    /* the author's own field claiming our authserv-id is the only part removed */
    const char *ar = strstr(MSG, "Authentication-Results");
    const char *ar_end = strstr(ar, "\r\n") + 2;
    struct dc_buf want;
    dc_buf_init(&want);
    dc_buf_append(&want, MSG, (size_t)(ar - MSG));
    dc_buf_append(&want, ar_end, strlen(ar_end));
    size_t rest = o.len - (size_t)(end + 3 - (const char *)o.msg);
    cr_assert_eq(rest, want.len);
    cr_assert(memcmp(end + 3, want.data, want.len) == 0);
    /* the same message again gives the same digest: sync.seen recognises it */
    struct cl_opened o2;
    open_as_carol(&w, in, &o2);
    cr_assert(memcmp(o.digest, o2.digest, CL_DIGEST_LEN) == 0);
    dc_buf_free(&want);
    cl_opened_free(&o);
    cl_opened_free(&o2);
    free(in);
    world_free(&w);
}

Test(verdict, an_altered_byte_is_fail_with_the_wrapper_and_no_content)
{
    struct world w;
    world_make(&w);
    for (long at = 100; at < 3000; at += 700) {
        char *in = wrapped(&w, at);
        struct cl_opened o;
        open_as_carol(&w, in, &o);
        cr_assert_eq(o.result, CL_DIME_FAIL, "byte %ld passed", at);
        cr_assert(o.reason[0]);
        const char *body = strstr((const char *)o.msg, "\r\n\r\n");
        cr_assert_null(strstr((const char *)o.msg, "Subject: sealed"));
        cr_assert(body && strstr(body, "Hello") == NULL);
        /* our old field in the wrapper is gone: one verdict of ours, the new one */
        cr_assert(strncmp((const char *)o.msg, "Authentication-Results: dime-client; dime=fail",
                          46) == 0);
        cr_assert_null(strstr((const char *)o.msg + 10, "dime-client; dime=pass"));
        cl_opened_free(&o);
        free(in);
    }
    world_free(&w);
}

Test(verdict, signets_only_from_the_directory_never_pass_without)
{
    struct world w;
    world_make(&w);
    char *in = wrapped(&w, -1);
    char *p = dc_xasprintf("%s/bob@bob.test.signet", w.dir);
    cr_assert_eq(unlink(p), 0);
    struct cl_opened o;
    open_as_carol(&w, in, &o);
    cr_assert_eq(o.result, CL_DIME_FAIL);
    cr_assert(strstr(o.reason, "unverified: no signet of bob@bob.test"), "%s", o.reason);
    cl_opened_free(&o);
    /* the recipient's own signet in the author's place: not the one the message names */
    char *arm = dc_signet_armor(w.sig[3]);
    put_file(w.dir, "bob@bob.test.signet", arm);
    free(arm);
    open_as_carol(&w, in, &o);
    cr_assert_eq(o.result, CL_DIME_FAIL);
    cl_opened_free(&o);
    free(p);
    free(in);
    world_free(&w);
}

Test(verdict, another_key_or_another_address_is_fail)
{
    struct world w;
    world_make(&w);
    char *in = wrapped(&w, -1);
    struct cl_opened o;
    struct cl_reader r = {"dave@alice.test", w.key[3]->enc, w.dir, NULL, NULL, "dime-client", NULL, 0};
    cl_open_message(&r, (const uint8_t *)in, strlen(in), &o);
    cr_assert_eq(o.result, CL_DIME_FAIL);
    cr_assert(strstr(o.reason, "not addressed to dave@alice.test"), "%s", o.reason);
    cl_opened_free(&o);
    r.address = "carol@alice.test";
    r.ek = w.key[0]->enc; /* the author's key, not carol's */
    cl_open_message(&r, (const uint8_t *)in, strlen(in), &o);
    cr_assert_eq(o.result, CL_DIME_FAIL);
    cl_opened_free(&o);
    free(in);
    world_free(&w);
}

/* after a rotation or a migration the current key is another: mail sealed to the earlier
 * generation opens with the key kept for it, and with it only */
Test(verdict, an_earlier_generations_key_opens_mail_sealed_to_it)
{
    struct world w;
    world_make(&w);
    char *in = wrapped(&w, -1);
    const struct dc_enc_key *older[2] = {w.key[0]->enc, w.key[3]->enc};
    struct cl_reader r = {"carol@alice.test", w.key[1]->enc, w.dir, NULL, NULL,
                          CL_AUTHSERV_DEFAULT, older, 1};
    struct cl_opened o;
    cl_open_message(&r, (const uint8_t *)in, strlen(in), &o);
    cr_assert_eq(o.result, CL_DIME_FAIL, "not carol's key among them: %s", o.reason);
    cl_opened_free(&o);
    r.nolder = 2;
    cl_open_message(&r, (const uint8_t *)in, strlen(in), &o);
    cr_assert_eq(o.result, CL_DIME_PASS, "%s", o.reason);
    cr_assert_str_eq(o.author, "bob@bob.test");
    cl_opened_free(&o);
    free(in);
    world_free(&w);
}

Test(verdict, a_plain_message_is_none_and_loses_only_a_forged_verdict)
{
    struct world w;
    world_make(&w);
    const char *in = "From: <x@y.test>\nAuthentication-Results: (c) DIME-CLIENT; dime=pass\n"
                     "Authentication-Results: mx.alice.test; spf=pass\nSubject: hi\n\nbody\n";
    struct cl_opened o;
    open_as_carol(&w, in, &o);
    cr_assert_eq(o.result, CL_DIME_NONE);
    const char *want = "Authentication-Results: dime-client; dime=none (not a DIME message)\n"
                       "From: <x@y.test>\nAuthentication-Results: mx.alice.test; spf=pass\n"
                       "Subject: hi\n\nbody\n";
    cr_assert_eq(o.len, strlen(want));
    cr_assert(memcmp(o.msg, want, o.len) == 0, "%.*s", (int)o.len, o.msg);
    cl_opened_free(&o);
    /* not even a header: handed out as it is under our field */
    open_as_carol(&w, "From nobody\n\nx\n", &o);
    cr_assert_eq(o.result, CL_DIME_NONE);
    cr_assert(strstr((const char *)o.msg, "\r\nFrom nobody\n\nx\n"));
    cl_opened_free(&o);
    /* a wrapper whose body is not base64 */
    open_as_carol(&w, "Content-Type: application/x-dime\nContent-Transfer-Encoding: base64\n\n"
                      "not base64!\n", &o);
    cr_assert_eq(o.result, CL_DIME_FAIL);
    cr_assert(strstr(o.reason, "not base64"), "%s", o.reason);
    cl_opened_free(&o);
    world_free(&w);
}

/* ---- the pins of send's lookup (cl_pin) ---- */

static char *slurp(const char *dir, const char *name)
{
    char *p = dc_xasprintf("%s/%s", dir, name);
    uint8_t *b = NULL;
    size_t n = 0;
    enum dc_status s = dc_read_file(p, 1 << 20, &b, &n, NULL);
    free(p);
    if (s != DC_OK)
        return NULL;
    char *t = dc_xmalloc(n + 1);
    memcpy(t, b, n);
    t[n] = '\0';
    free(b);
    return t;
}

Test(pins, a_first_verified_signet_is_pinned_and_then_agrees)
{
    struct world w;
    world_make(&w);
    char *dir = dc_xasprintf("%s/pins", w.dir); /* not there yet: made */
    char why[600] = "";
    cr_assert_eq(cl_pin(dir, "bob.test", w.sig[1], false, why, sizeof(why)), CL_LK_OK, "%s", why);
    char *got = slurp(dir, "bob.test.signet"), *want = dc_signet_armor(w.sig[1]);
    cr_assert_str_eq(got, want);
    cr_assert_eq(cl_pin(dir, "bob.test", w.sig[1], false, why, sizeof(why)), CL_LK_OK, "%s", why);
    free(got);
    free(want);
    free(dir);
    world_free(&w);
}

Test(pins, another_org_signet_stops_and_the_pin_stays)
{
    struct world w;
    world_make(&w); /* bob.test.signet there is sig[1] */
    char why[600] = "";
    cr_assert_eq(cl_pin(w.dir, "bob.test", w.sig[2], false, why, sizeof(why)), CL_LK_PIN);
    cr_assert(strstr(why, "bob.test.signet: the signet the lookup verified") &&
                  strstr(why, "is not the pinned one"), "%s", why);
    cr_assert_null(strstr(why, "custody"), "%s", why);
    char *got = slurp(w.dir, "bob.test.signet"), *want = dc_signet_armor(w.sig[1]);
    cr_assert_str_eq(got, want);
    free(got);
    free(want);
    world_free(&w);
}

Test(pins, another_user_signet_moves_the_pin_only_along_a_custody_chain)
{
    struct world w;
    world_make(&w); /* bob@bob.test.signet there is sig[0] */
    char why[600] = "";
    cr_assert_eq(cl_pin(w.dir, "bob@bob.test", w.sig[3], false, why, sizeof(why)), CL_LK_PIN);
    cr_assert(strstr(why, "no custody chain leads from the pinned one"), "%s", why);
    char *got = slurp(w.dir, "bob@bob.test.signet"), *old = dc_signet_armor(w.sig[0]);
    cr_assert_str_eq(got, old);
    free(got);
    cr_assert_eq(cl_pin(w.dir, "bob@bob.test", w.sig[3], true, why, sizeof(why)), CL_LK_OK,
                 "%s", why);
    char *moved = dc_signet_armor(w.sig[3]);
    got = slurp(w.dir, "bob@bob.test.signet");
    cr_assert_str_eq(got, moved);
    /* a chain says nothing about an org signet */
    cr_assert_eq(cl_pin(w.dir, "bob.test", w.sig[2], true, why, sizeof(why)), CL_LK_PIN);
    free(got);
    free(old);
    free(moved);
    world_free(&w);
}

Test(pins, an_unreadable_pin_stops)
{
    struct world w;
    world_make(&w);
    put_file(w.dir, "carol@bob.test.signet", "-----BEGIN USER SIGNET-----\nnot a signet\n");
    char why[600] = "";
    cr_assert_eq(cl_pin(w.dir, "carol@bob.test", w.sig[0], false, why, sizeof(why)), CL_LK_PIN);
    cr_assert(strstr(why, "carol@bob.test.signet: the pinned signet cannot be read"), "%s", why);
    world_free(&w);
}

/* ---- --dx-connect-to ---- */

Test(pins, connect_to_addresses)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    cr_assert_eq(dl_connect_to_parse("127.0.0.3:2526", &ss, &sl), DC_OK);
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
    cr_assert_eq(ss.ss_family, AF_INET);
    cr_assert_eq(ntohs(s4->sin_port), 2526);
    cr_assert_eq(ntohl(s4->sin_addr.s_addr), 0x7f000003u);
    cr_assert_eq(dl_connect_to_parse("[::1]:26", &ss, &sl), DC_OK);
    cr_assert_eq(ss.ss_family, AF_INET6);
    cr_assert_eq(sl, sizeof(struct sockaddr_in6));
    static const char *const bad[] = {"127.0.0.1", "127.0.0.1:", "127.0.0.1:0",
                                      "127.0.0.1:65536", "127.0.0.1:26x", ":26", "dx.bob.test:26",
                                      "::1:26", "[::1]", "127.0.0.1:-26", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_neq(dl_connect_to_parse(bad[i], &ss, &sl), DC_OK, "%s", bad[i]);
}
