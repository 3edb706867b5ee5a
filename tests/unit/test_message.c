/*
 * dc_message: MIME -> final D/MIME -> MIME over the whole corpus (tests/corpus/mime), with
 * the libdime vector signets and keys and with freshly made ones; a 20 MB attachment split
 * into continuation chunks; what the origin and destination can read; tampering, wrong keys
 * and wrong signets.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc_b64.h"
#include "dc_keys.h"
#include "dc_message.h"
#include "vectors.h"

/* Signets and keys by actor: author, origin, destination, recipient. */
struct party {
    struct dc_signet *sig[4];
    struct dc_keyfile *key[4];
    struct dc_signer signer[4];
    struct dc_kek_source kek[4];
    const char *from, *to;
};

static void party_finish(struct party *p)
{
    for (int a = 0; a < 4; a++) {
        dc_signer_local(&p->signer[a], p->key[a]->sign);
        dc_kek_source_local(&p->kek[a], p->key[a]->enc);
    }
}

static void party_vectors(struct party *p)
{
    static const char *names[4] = {"alice-alice.test", "alice.test", "bob.test", "bob-bob.test"};
    memset(p, 0, sizeof(*p));
    for (int a = 0; a < 4; a++) {
        char n[64];
        struct dc_err err = {0};
        snprintf(n, sizeof(n), "%s.signet", names[a]);
        cr_assert_eq(dc_signet_load_file(vec_path(n), &p->sig[a], &err), DC_OK, "%s", err.msg);
        snprintf(n, sizeof(n), "%s.key", names[a]);
        cr_assert_eq(dc_keyfile_load_file(vec_path(n), &p->key[a], &err), DC_OK, "%s", err.msg);
    }
    p->from = "alice@alice.test";
    p->to = "bob@bob.test";
    party_finish(p);
}

/* Two fresh domains: an org signet each and a user signet signed by it. */
static void party_fresh(struct party *p)
{
    memset(p, 0, sizeof(*p));
    struct dc_err err = {0};
    for (int a = 0; a < 4; a++)
        cr_assert_eq(dc_keyfile_generate(a == 1 || a == 2 ? DC_KEY_ORG : DC_KEY_USER, &p->key[a],
                                         &err),
                     DC_OK, "%s", err.msg);
    for (int a = 1; a <= 2; a++)
        cr_assert_eq(dc_signet_org_create(p->key[a]->sign, p->key[a]->enc->pub, &p->sig[a], &err),
                     DC_OK, "%s", err.msg);
    for (int a = 0; a <= 3; a += 3) {
        struct dc_signet *ssr = NULL;
        struct dc_signer org;
        dc_signer_local(&org, p->key[a == 0 ? 1 : 2]->sign);
        cr_assert_eq(dc_signet_ssr_create(p->key[a]->sign, p->key[a]->enc->pub, NULL, &ssr, &err),
                     DC_OK, "%s", err.msg);
        cr_assert_eq(dc_signet_ssr_sign(ssr, NULL, &org, &p->sig[a], &err), DC_OK, "%s",
                     err.msg);
        dc_signet_free(ssr);
    }
    p->from = "carol@one.example";
    p->to = "dave@two.example";
    party_finish(p);
}

static void party_free(struct party *p)
{
    for (int a = 0; a < 4; a++) {
        dc_signet_free(p->sig[a]);
        dc_keyfile_free(p->key[a]);
    }
}

/* Lookup over a party; records what it was asked. */
struct lk {
    const struct party *p;
    const struct dc_signet *author, *origin; /* override (NULL = the party's) */
    int no_author, no_origin;
    char asked_author[128], asked_origin[128];
};

static enum dc_status lk_find(void *ctx, enum dc_msg_role role, const char *name, const char *fp,
                              struct dc_signet **out, struct dc_err *err)
{
    struct lk *l = ctx;
    char *rec = role == DC_MSG_AUTHOR_SIGNET ? l->asked_author : l->asked_origin;
    snprintf(rec, 128, "%s", name ? name : "(none)");
    if (role == DC_MSG_AUTHOR_SIGNET) {
        if (l->no_author)
            return DC_ERR_NOTFOUND;
        *out = dc_signet_dup(l->author ? l->author : l->p->sig[DC_ACTOR_AUTHOR]);
    } else {
        if (l->no_origin)
            return DC_ERR_NOTFOUND;
        *out = dc_signet_dup(l->origin ? l->origin : l->p->sig[DC_ACTOR_ORIGIN]);
    }
    return DC_OK;
}

static struct dc_dmime *encrypt_msg(const struct party *p, const uint8_t *mime, size_t len,
                                    size_t max_data, int origin_sign)
{
    struct dc_msg_parties pp = {p->from, p->to, p->sig[0], p->sig[1], p->sig[2], p->sig[3]};
    struct dc_msg_opts o = {.now = 1790000000, .max_data = max_data};
    struct dc_mime_limits lim;
    dc_mime_limits_default(&lim);
    lim.max_size = 64u << 20;
    o.limits = &lim;
    struct dc_dmime *m = NULL;
    struct dc_err err = {0};
    enum dc_status st =
        dc_message_encrypt(mime, len, &pp, &p->signer[DC_ACTOR_AUTHOR],
                           origin_sign ? &p->signer[DC_ACTOR_ORIGIN] : NULL,
                           origin_sign ? &p->kek[DC_ACTOR_ORIGIN] : NULL, &o, &m, &err);
    cr_assert_eq(st, DC_OK, "encrypt: %s", err.msg);
    return m;
}

/* Decrypts as actor a with the party's signets; returns the status. */
static enum dc_status decrypt_as(const struct party *p, const struct dc_dmime *m,
                                 enum dc_actor a, const struct dc_kek_source *ks,
                                 struct dc_message **out, struct dc_err *err)
{
    struct lk l = {.p = p};
    struct dc_msg_lookup lookup = {lk_find, &l};
    size_t len;
    const uint8_t *bin = dc_dmime_bytes(m, &len);
    return dc_message_decrypt(bin, len, a, ks ? ks : &p->kek[a], &lookup, out, err);
}

static void expect_round_trip(const struct party *p, const struct dc_dmime *m,
                              const uint8_t *mime, size_t len, const char *name)
{
    enum dc_actor readers[2] = {DC_ACTOR_RECIPIENT, DC_ACTOR_AUTHOR};
    for (int i = 0; i < 2; i++) {
        struct dc_message *dm = NULL;
        struct dc_err err = {0};
        enum dc_status st = decrypt_as(p, m, readers[i], NULL, &dm, &err);
        cr_assert_eq(st, DC_OK, "%s as %s: %s", name, dc_actor_name(readers[i]), err.msg);
        cr_assert(dm->framed, "%s", name);
        cr_assert_eq(dm->mime_len, len, "%s as %s: %zu bytes back, %zu in", name,
                     dc_actor_name(readers[i]), dm->mime_len, len);
        cr_assert(len == 0 || memcmp(dm->mime, mime, len) == 0, "%s: bytes differ", name);
        const struct dc_dmime_result *r = dm->res;
        cr_assert(r->tree == DC_DSIG_OK && r->author_full == DC_DSIG_OK &&
                      r->meta_bounce == DC_DSIG_OK && r->display_bounce == DC_DSIG_OK &&
                      r->origin_full == DC_DSIG_OK,
                  "%s: a message signature is not OK", name);
        for (size_t k = 0; k < r->nitems; k++)
            if (r->items[k].visible && r->items[k].type <= DC_CHUNK_ATTACH)
                cr_assert_eq(r->items[k].sig, DC_DSIG_OK, "%s: chunk %zu", name, k);
        cr_assert_str_eq(dm->env.author, p->from);
        cr_assert_str_eq(dm->env.recipient, p->to);
        dc_message_free(dm);
    }
}

static const char *corpus_dir(void)
{
    static char dir[4096];
    snprintf(dir, sizeof(dir), "%s/../../corpus/mime", getenv("DC_VECTORS"));
    return dir;
}

static uint8_t *corpus_read(const char *name, size_t *len)
{
    char path[4200];
    uint8_t *b = NULL;
    snprintf(path, sizeof(path), "%s/%s", corpus_dir(), name);
    cr_assert_eq(dc_read_file(path, 64u << 20, &b, len, NULL), DC_OK, "%s", path);
    return b;
}

Test(message, corpus_round_trips_with_vector_keys_as_recipient_and_author)
{
    struct party p;
    party_vectors(&p);
    DIR *d = opendir(corpus_dir());
    cr_assert_not_null(d);
    size_t files = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        size_t len;
        uint8_t *mime = corpus_read(de->d_name, &len);
        struct dc_dmime *m = encrypt_msg(&p, mime, len, 0, 1);
        expect_round_trip(&p, m, mime, len, de->d_name);
        dc_dmime_free(m);
        free(mime);
        files++;
    }
    closedir(d);
    cr_assert_geq(files, 40);
    party_free(&p);
}

/* Fresh signets; author form first, then the separate origin step. */
Test(message, corpus_round_trips_with_fresh_keys_and_separate_origin_step)
{
    struct party p;
    party_fresh(&p);
    DIR *d = opendir(corpus_dir());
    cr_assert_not_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        size_t len, alen;
        uint8_t *mime = corpus_read(de->d_name, &len);
        struct dc_dmime *am = encrypt_msg(&p, mime, len, 0, 0);
        /* The author form does not pass the recipient: the origin signatures are zeros. */
        struct dc_message *dm = NULL;
        struct dc_err err = {0};
        cr_assert_eq(decrypt_as(&p, am, DC_ACTOR_RECIPIENT, NULL, &dm, &err), DC_ERR_SIGNATURE);
        cr_assert_not_null(strstr(err.msg, "chunk 248"), "%s", err.msg);
        cr_assert_null(dm->mime);
        dc_message_free(dm);

        struct lk l = {.p = &p};
        struct dc_msg_lookup lookup = {lk_find, &l};
        struct dc_dmime *fm = NULL;
        const uint8_t *ab = dc_dmime_bytes(am, &alen);
        cr_assert_eq(dc_message_origin_sign(ab, alen, &p.kek[DC_ACTOR_ORIGIN],
                                            &p.signer[DC_ACTOR_ORIGIN], &lookup, &fm, &err),
                     DC_OK, "%s: %s", de->d_name, err.msg);
        cr_assert_str_eq(l.asked_author, p.from);
        expect_round_trip(&p, fm, mime, len, de->d_name);
        dc_dmime_free(fm);
        dc_dmime_free(am);
        free(mime);
    }
    closedir(d);
    party_free(&p);
}

/* Count of chunks of a type and of those with the continuation flag. */
static void count_chunks(const struct dc_message *dm, unsigned type, size_t *n, size_t *cont)
{
    *n = *cont = 0;
    for (size_t i = 0; i < dm->res->nitems; i++) {
        const struct dc_dmime_item *it = &dm->res->items[i];
        if (it->type != type)
            continue;
        (*n)++;
        if (it->flags & DC_DMIME_FLAG_CONTINUATION)
            (*cont)++;
    }
}

static void build_with_attachment(struct dc_buf *b, size_t raw)
{
    dc_buf_init(b);
    dc_buf_printf(b, "From: Alice <alice@alice.test>\r\nTo: Bob <bob@bob.test>\r\n"
                     "Subject: big one\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
                     "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n"
                     "\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b1\r\n"
                     "Content-Type: application/octet-stream\r\n"
                     "Content-Transfer-Encoding: base64\r\n\r\n");
    uint8_t chunk[57];
    uint32_t x = 12345;
    for (size_t at = 0; at < raw; at += sizeof(chunk)) {
        for (size_t k = 0; k < sizeof(chunk); k++) {
            x = x * 1103515245u + 12345u;
            chunk[k] = (uint8_t)(x >> 24);
        }
        size_t n = raw - at < sizeof(chunk) ? raw - at : sizeof(chunk);
        char *enc = dc_b64_encode_alloc(chunk, n, 1);
        dc_buf_printf(b, "%s\r\n", enc);
        free(enc);
    }
    dc_buf_printf(b, "--b1--\r\n");
}

Test(message, twenty_megabyte_attachment_round_trips_in_continuation_chunks, .timeout = 240)
{
    struct party p;
    party_vectors(&p);
    struct dc_buf b;
    build_with_attachment(&b, 15u << 20); /* 15 MiB raw, about 20.4 MB of base64 */
    cr_assert_gt(b.len, 20000000u);
    struct dc_dmime *m = encrypt_msg(&p, b.data, b.len, 0, 1);
    expect_round_trip(&p, m, b.data, b.len, "20 MB attachment");
    struct dc_message *dm = NULL;
    cr_assert_eq(decrypt_as(&p, m, DC_ACTOR_RECIPIENT, NULL, &dm, NULL), DC_OK);
    size_t n, cont;
    count_chunks(dm, DC_CHUNK_ATTACH, &n, &cont);
    cr_assert_eq(n, 2);
    cr_assert_eq(cont, 1);
    cr_assert(dm->res->items[dc_dmime_find(dm->dm, DC_CHUNK_ATTACH)].flags &
              DC_DMIME_FLAG_CONTINUATION);
    dc_message_free(dm);
    dc_dmime_free(m);
    dc_buf_free(&b);
    party_free(&p);
}

Test(message, small_chunk_size_splits_display_and_attachments)
{
    struct party p;
    party_vectors(&p);
    size_t len;
    uint8_t *mime = corpus_read("nested-mixed-alternative-attachment.eml", &len);
    struct dc_dmime *m = encrypt_msg(&p, mime, len, 100, 1);
    expect_round_trip(&p, m, mime, len, "max_data 100");
    struct dc_message *dm = NULL;
    cr_assert_eq(decrypt_as(&p, m, DC_ACTOR_RECIPIENT, NULL, &dm, NULL), DC_OK);
    size_t n, cont;
    count_chunks(dm, DC_CHUNK_DISPLAY, &n, &cont);
    cr_assert_gt(n, 1);
    cr_assert_eq(cont, n - 1);
    count_chunks(dm, DC_CHUNK_ATTACH, &n, &cont);
    cr_assert_gt(cont, 0);
    dc_message_free(dm);
    dc_dmime_free(m);
    free(mime);
    party_free(&p);
}

static const char secret_msg[] =
    "From: Alice <alice@alice.test>\r\nTo: Bob <bob@bob.test>\r\n"
    "Subject: Quarterly-Secret-Subject-7731\r\nX-Private: HEADER-MARKER-0042\r\n"
    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n"
    "--zz\r\nContent-Type: text/plain\r\n\r\nBODY-MARKER-55fd\r\n--zz\r\n"
    "Content-Type: application/octet-stream\r\n\r\nATTACH-MARKER-9e1\r\n--zz--\r\n";

static int has(const uint8_t *p, size_t n, const char *needle)
{
    return p && memmem(p, n, needle, strlen(needle)) != NULL;
}

Test(message, origin_and_destination_see_no_header_subject_or_body_bytes)
{
    static const char *markers[] = {"Quarterly-Secret-Subject-7731", "HEADER-MARKER-0042",
                                    "BODY-MARKER-55fd", "ATTACH-MARKER-9e1", "Subject",
                                    "Alice <"};
    struct party p;
    party_vectors(&p);
    struct dc_dmime *m = encrypt_msg(&p, (const uint8_t *)secret_msg, strlen(secret_msg), 0, 1);
    size_t len;
    const uint8_t *bin = dc_dmime_bytes(m, &len);
    for (size_t k = 0; k < 4; k++)
        cr_assert(!has(bin, len, markers[k]), "ciphertext holds %s", markers[k]);
    enum dc_actor servers[2] = {DC_ACTOR_ORIGIN, DC_ACTOR_DESTINATION};
    for (int s = 0; s < 2; s++) {
        struct dc_message *dm = NULL;
        struct dc_err err = {0};
        cr_assert_eq(decrypt_as(&p, m, servers[s], NULL, &dm, &err), DC_OK, "%s", err.msg);
        cr_assert_null(dm->mime);
        size_t nvis = 0;
        for (size_t i = 0; i < dm->res->nitems; i++) {
            const struct dc_dmime_item *it = &dm->res->items[i];
            if (!it->visible)
                continue;
            nvis++;
            cr_assert(it->type == DC_CHUNK_ORIGIN || it->type == DC_CHUNK_DESTINATION ||
                          it->type >= DC_CHUNK_SIG_TREE,
                      "%s sees chunk %u", dc_actor_name(servers[s]), it->type);
            for (size_t k = 0; k < sizeof(markers) / sizeof(markers[0]); k++)
                cr_assert(!has(it->data, it->data_len, markers[k]), "%s reads %s",
                          dc_actor_name(servers[s]), markers[k]);
        }
        cr_assert_null(dm->res->common);
        cr_assert_null(dm->res->other);
        if (servers[s] == DC_ACTOR_ORIGIN) {
            cr_assert_eq(nvis, 6);
            cr_assert_str_eq(dm->env.author, "alice@alice.test");
            cr_assert_str_eq(dm->env.destination, "bob.test");
            cr_assert_null(dm->env.recipient);
        } else {
            cr_assert_eq(nvis, 4);
            cr_assert_null(dm->env.author);
            cr_assert_str_eq(dm->env.recipient, "bob@bob.test");
            cr_assert_str_eq(dm->env.origin, "alice.test");
            cr_assert_eq(dm->res->origin_full, DC_DSIG_OK);
        }
        dc_message_free(dm);
    }
    dc_dmime_free(m);
    party_free(&p);
}

/* Flips a byte of the first chunk of `type`'s payload, at payload offset `at` (ciphertext
 * block 6 garbles plaintext block 6, which is chunk data past the 69-byte header). */
static void tamper_at(const struct dc_dmime *m, unsigned type, size_t at, uint8_t **out,
                      size_t *len)
{
    const uint8_t *bin = dc_dmime_bytes(m, len);
    long i = dc_dmime_find(m, type);
    cr_assert_geq(i, 0);
    *out = malloc(*len);
    memcpy(*out, bin, *len);
    cr_assert_lt(at, m->chunks[i].payload_len);
    (*out)[m->chunks[i].offset + 4 + at] ^= 0x01;
}

static void tamper(const struct dc_dmime *m, unsigned type, uint8_t **out, size_t *len)
{
    tamper_at(m, type, 96 + 3, out, len);
}

Test(message, tampered_display_or_attachment_fails_naming_the_chunk)
{
    struct party p;
    party_vectors(&p);
    struct dc_dmime *m = encrypt_msg(&p, (const uint8_t *)secret_msg, strlen(secret_msg), 0, 1);
    unsigned types[2] = {DC_CHUNK_DISPLAY, DC_CHUNK_ATTACH};
    for (int t = 0; t < 2; t++) {
        uint8_t *bad;
        size_t len;
        tamper(m, types[t], &bad, &len);
        struct lk l = {.p = &p};
        struct dc_msg_lookup lookup = {lk_find, &l};
        struct dc_message *dm = NULL;
        struct dc_err err = {0};
        enum dc_status st = dc_message_decrypt(bad, len, DC_ACTOR_RECIPIENT,
                                               &p.kek[DC_ACTOR_RECIPIENT], &lookup, &dm, &err);
        cr_assert_eq(st, DC_ERR_SIGNATURE, "%s", err.msg);
        char want[32];
        snprintf(want, sizeof(want), "chunk %u (", types[t]);
        cr_assert_not_null(strstr(err.msg, want), "%s", err.msg);
        cr_assert_not_null(dm);
        cr_assert_null(dm->mime);
        long ci = dc_dmime_find(dm->dm, types[t]);
        cr_assert_eq(dm->res->items[ci].sig, DC_DSIG_FAILED);
        dc_message_free(dm);
        /* The origin cannot open the chunk, but the author tree signature (first) covers it. */
        st = dc_message_decrypt(bad, len, DC_ACTOR_ORIGIN, &p.kek[DC_ACTOR_ORIGIN], &lookup,
                                &dm, &err);
        cr_assert_eq(st, DC_ERR_SIGNATURE);
        cr_assert_not_null(strstr(err.msg, "chunk 225 ("), "%s", err.msg);
        cr_assert_eq(dm->res->author_full, DC_DSIG_FAILED);
        dc_message_free(dm);
        free(bad);
        /* In the padding (last block): a format error, still naming the chunk. */
        tamper_at(m, types[t], m->chunks[dc_dmime_find(m, types[t])].payload_len - 1, &bad,
                  &len);
        st = dc_message_decrypt(bad, len, DC_ACTOR_RECIPIENT, &p.kek[DC_ACTOR_RECIPIENT],
                                &lookup, &dm, &err);
        cr_assert_neq(st, DC_OK);
        cr_assert_not_null(strstr(err.msg, want), "%s", err.msg);
        dc_message_free(dm);
        free(bad);
    }
    dc_dmime_free(m);
    party_free(&p);
}

Test(message, wrong_recipient_key_fails_precisely)
{
    struct party p;
    party_vectors(&p);
    struct dc_dmime *m = encrypt_msg(&p, (const uint8_t *)secret_msg, strlen(secret_msg), 0, 1);
    struct dc_keyfile *other = NULL;
    cr_assert_eq(dc_keyfile_generate(DC_KEY_USER, &other, NULL), DC_OK);
    struct dc_kek_source ks;
    dc_kek_source_local(&ks, other->enc);
    struct dc_message *dm = NULL;
    struct dc_err err = {0};
    enum dc_status st = decrypt_as(&p, m, DC_ACTOR_RECIPIENT, &ks, &dm, &err);
    cr_assert_neq(st, DC_OK);
    cr_assert_null(dm);
    cr_assert_not_null(strstr(err.msg, "chunk 4 ("), "%s", err.msg);
    /* The destination's key is not the recipient's either. */
    st = decrypt_as(&p, m, DC_ACTOR_RECIPIENT, &p.kek[DC_ACTOR_DESTINATION], &dm, &err);
    cr_assert_neq(st, DC_OK);
    cr_assert_null(dm);
    dc_keyfile_free(other);
    dc_dmime_free(m);
    party_free(&p);
}

Test(message, wrong_or_missing_signets_fail)
{
    struct party p;
    party_vectors(&p);
    struct dc_dmime *m = encrypt_msg(&p, (const uint8_t *)secret_msg, strlen(secret_msg), 0, 1);
    size_t len;
    const uint8_t *bin = dc_dmime_bytes(m, &len);
    struct dc_message *dm = NULL;
    struct dc_err err = {0};
    /* The recipient's own signet offered as the author's: fingerprint mismatch. */
    struct lk l = {.p = &p, .author = p.sig[DC_ACTOR_RECIPIENT]};
    struct dc_msg_lookup lookup = {lk_find, &l};
    cr_assert_eq(dc_message_decrypt(bin, len, DC_ACTOR_RECIPIENT, &p.kek[3], &lookup, &dm, &err),
                 DC_ERR_KEY);
    cr_assert_not_null(strstr(err.msg, "author"), "%s", err.msg);
    cr_assert_str_eq(l.asked_author, "alice@alice.test");
    cr_assert_str_eq(l.asked_origin, "alice.test");
    struct lk l2 = {.p = &p, .origin = p.sig[DC_ACTOR_DESTINATION]};
    lookup.ctx = &l2;
    cr_assert_eq(dc_message_decrypt(bin, len, DC_ACTOR_RECIPIENT, &p.kek[3], &lookup, &dm, &err),
                 DC_ERR_KEY);
    cr_assert_not_null(strstr(err.msg, "origin"), "%s", err.msg);
    /* No origin signet: the recipient needs it; the author can do without. */
    struct lk l3 = {.p = &p, .no_origin = 1};
    lookup.ctx = &l3;
    cr_assert_eq(dc_message_decrypt(bin, len, DC_ACTOR_RECIPIENT, &p.kek[3], &lookup, &dm, &err),
                 DC_ERR_NOTFOUND);
    cr_assert_not_null(strstr(err.msg, "no origin signet for <alice.test>"), "%s", err.msg);
    cr_assert_eq(dc_message_decrypt(bin, len, DC_ACTOR_AUTHOR, &p.kek[0], &lookup, &dm, &err),
                 DC_OK, "%s", err.msg);
    cr_assert_eq(dm->res->origin_full, DC_DSIG_NO_KEY);
    cr_assert_eq(dm->mime_len, strlen(secret_msg));
    dc_message_free(dm);
    /* The destination is never told the author, and verifies without its key. */
    struct lk l4 = {.p = &p, .no_author = 1};
    lookup.ctx = &l4;
    cr_assert_eq(dc_message_decrypt(bin, len, DC_ACTOR_DESTINATION, &p.kek[2], &lookup, &dm,
                                    &err),
                 DC_OK, "%s", err.msg);
    cr_assert_str_eq(l4.asked_author, "(none)");
    cr_assert_eq(dm->res->items[dc_dmime_find(dm->dm, DC_CHUNK_DESTINATION)].sig,
                 DC_DSIG_NO_KEY);
    dc_message_free(dm);
    dc_dmime_free(m);
    party_free(&p);
}

Test(message, encrypt_refuses_keys_that_do_not_match_the_signets)
{
    struct party p;
    party_vectors(&p);
    struct dc_msg_parties pp = {p.from, p.to, p.sig[0], p.sig[1], p.sig[2], p.sig[3]};
    struct dc_dmime *m = NULL;
    struct dc_err err = {0};
    const uint8_t *msg = (const uint8_t *)secret_msg;
    size_t len = strlen(secret_msg);
    /* The recipient's key as the author's. */
    cr_assert_eq(dc_message_encrypt(msg, len, &pp, &p.signer[3], NULL, NULL, NULL, &m, &err),
                 DC_ERR_KEY);
    /* The destination's POK as the origin's. */
    cr_assert_eq(dc_message_encrypt(msg, len, &pp, &p.signer[0], &p.signer[2], &p.kek[1], NULL,
                                    &m, &err),
                 DC_ERR_KEY);
    /* Signer without KEK. */
    cr_assert_eq(dc_message_encrypt(msg, len, &pp, &p.signer[0], &p.signer[1], NULL, NULL, &m,
                                    &err),
                 DC_ERR_ARG);
    /* Signets in the wrong roles. */
    struct dc_msg_parties swapped = pp;
    swapped.origin = p.sig[0];
    cr_assert_eq(dc_message_encrypt(msg, len, &swapped, &p.signer[0], NULL, NULL, NULL, &m,
                                    &err),
                 DC_ERR_ARG);
    /* Addresses default to the signet identifiers. */
    pp.from = pp.to = NULL;
    cr_assert_eq(dc_message_encrypt(msg, len, &pp, &p.signer[0], NULL, NULL, NULL, &m, &err),
                 DC_OK, "%s", err.msg);
    struct dc_message *dm = NULL;
    cr_assert_eq(decrypt_as(&p, m, DC_ACTOR_DESTINATION, NULL, &dm, &err), DC_ERR_SIGNATURE);
    cr_assert_str_eq(dm->env.recipient, "bob@bob.test");
    cr_assert_str_eq(dm->env.origin, "alice.test");
    dc_message_free(dm);
    dc_dmime_free(m);
    party_free(&p);
}

/* The libdime vector (no framing): the recipient gets a plain message built from the parts. */
Test(message, libdime_vector_message_opens_as_all_four_actors)
{
    struct party p;
    party_vectors(&p);
    size_t len;
    uint8_t *bin = vec_read("message.dmsg", &len);
    for (int a = 0; a < 4; a++) {
        struct lk l = {.p = &p};
        struct dc_msg_lookup lookup = {lk_find, &l};
        struct dc_message *dm = NULL;
        struct dc_err err = {0};
        cr_assert_eq(dc_message_decrypt(bin, len, (enum dc_actor)a, &p.kek[a], &lookup, &dm,
                                        &err),
                     DC_OK, "%s: %s", dc_actor_name((enum dc_actor)a), err.msg);
        if (a == DC_ACTOR_AUTHOR || a == DC_ACTOR_RECIPIENT) {
            cr_assert_eq(dm->framed, 0);
            cr_assert(has(dm->mime, dm->mime_len, "Subject: DIME interop test message\r\n"));
            cr_assert(has(dm->mime, dm->mime_len, "X-Interop-Test: libdime-vector-1\r\n"));
            cr_assert(has(dm->mime, dm->mime_len, "this is a DIME interop test message"));
            /* base64 of "attachment.bin: DIME attachment test\n..." */
            cr_assert(has(dm->mime, dm->mime_len, "YXR0YWNobWVudC5iaW46IERJTUUgYXR0YWNobWVud"));
            /* What we built parses as MIME. */
            struct dc_mime_entity e;
            cr_assert_eq(dc_mime_parse(dm->mime, dm->mime_len, NULL, &e, NULL), DC_OK);
            dc_mime_free(&e);
        } else {
            cr_assert_null(dm->mime);
        }
        dc_message_free(dm);
    }
    free(bin);
    party_free(&p);
}
