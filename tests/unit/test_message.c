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
    /* 17 MiB raw, about 23 MB of base64: the attachment chunk holds the decoded file, which
     * is still larger than one chunk can carry */
    build_with_attachment(&b, 17u << 20);
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
    /* the display is the 5-byte text/plain alternative, the attachment 256 bytes */
    struct dc_dmime *m = encrypt_msg(&p, mime, len, 3, 1);
    expect_round_trip(&p, m, mime, len, "max_data 3");
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
    "--zz\r\nContent-Type: text/plain\r\n\r\nBODY-MARKER-55fd and enough text to fill several "
    "cipher blocks of the display chunk\r\n--zz\r\nContent-Type: application/octet-stream\r\n"
    "\r\nATTACH-MARKER-9e1 and enough bytes to fill several cipher blocks of the "
    "attachment\r\n--zz--\r\n";

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

/* ---- the streaming path: files in, files out (dc_message_*_fd) ---- */

#include <sys/wait.h>
#include <unistd.h>

/* A temporary regular file (removed at exit) holding len bytes; its descriptor. */
static int file_with(const void *p, size_t len)
{
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    int fd = dup(fileno(f));
    fclose(f);
    cr_assert_geq(fd, 0);
    size_t at = 0;
    while (at < len) {
        ssize_t w = pwrite(fd, (const uint8_t *)p + at, len - at, (off_t)at);
        cr_assert_gt(w, 0);
        at += (size_t)w;
    }
    return fd;
}

static uint8_t *file_bytes(int fd, size_t *len)
{
    off_t end = lseek(fd, 0, SEEK_END);
    cr_assert_geq(end, 0);
    uint8_t *b = malloc((size_t)end + 1);
    size_t at = 0;
    while (at < (size_t)end) {
        ssize_t r = pread(fd, b + at, (size_t)end - at, (off_t)at);
        cr_assert_gt(r, 0);
        at += (size_t)r;
    }
    *len = (size_t)end;
    return b;
}

static void encrypt_file(const struct party *p, int in_fd, int out_fd, size_t max_data,
                         int origin_sign)
{
    struct dc_msg_parties pp = {p->from, p->to, p->sig[0], p->sig[1], p->sig[2], p->sig[3]};
    struct dc_msg_opts o = {.now = 1790000000, .max_data = max_data};
    struct dc_mime_limits lim;
    dc_mime_limits_default(&lim);
    lim.max_size = 64u << 20;
    o.limits = &lim;
    struct dc_err err = {0};
    size_t n = 0;
    enum dc_status st =
        dc_message_encrypt_fd(in_fd, out_fd, &pp, &p->signer[DC_ACTOR_AUTHOR],
                              origin_sign ? &p->signer[DC_ACTOR_ORIGIN] : NULL,
                              origin_sign ? &p->kek[DC_ACTOR_ORIGIN] : NULL, &o, &n, &err);
    cr_assert_eq(st, DC_OK, "encrypt_fd: %s", err.msg);
    cr_assert_eq((size_t)lseek(out_fd, 0, SEEK_END), n, "file truncated to the message size");
}

/* Decrypts the file as actor with the streaming path; the rebuilt message (author and
 * recipient) is returned, or NULL. */
static uint8_t *decrypt_file(const struct party *p, int fd, enum dc_actor a, size_t *outlen,
                             enum dc_status want, const char *name)
{
    struct lk l = {.p = p};
    struct dc_msg_lookup lookup = {lk_find, &l};
    int writes = a == DC_ACTOR_AUTHOR || a == DC_ACTOR_RECIPIENT;
    int out = writes ? file_with("", 0) : -1;
    struct dc_message *dm = NULL;
    struct dc_err err = {0};
    enum dc_status st = dc_message_decrypt_fd(fd, a, &p->kek[a], &lookup, out, &dm, &err);
    cr_assert_eq(st, want, "%s as %s: %s", name, dc_actor_name(a), err.msg);
    uint8_t *b = NULL;
    if (writes) {
        b = file_bytes(out, outlen);
        close(out);
        if (st == DC_OK)
            cr_assert_eq(*outlen, dm->mime_len, "%s", name);
        else
            cr_assert_eq(*outlen, 0, "%s: nothing written when verification fails", name);
    }
    if (st == DC_OK) {
        const struct dc_dmime_result *r = dm->res;
        cr_assert_null(dm->mime);
        for (size_t k = 0; k < r->nitems; k++)
            if (r->items[k].visible && r->items[k].type <= DC_CHUNK_ATTACH)
                cr_assert_eq(r->items[k].sig, DC_DSIG_OK, "%s: chunk %zu", name, k);
        cr_assert_eq(r->origin_full, DC_DSIG_OK, "%s", name);
    }
    dc_message_free(dm);
    return b;
}

/* One message both ways: file encode read by the in-memory decoder and by the streaming one
 * as every actor, and the in-memory encode read by the streaming decoder. */
static void stream_round_trip(const struct party *p, const uint8_t *mime, size_t len,
                              size_t max_data, const char *name)
{
    int in = file_with(mime, len), out = file_with("", 0);
    encrypt_file(p, in, out, max_data, 1);
    size_t blen, rl;
    uint8_t *bin = file_bytes(out, &blen);
    struct dc_dmime *m = NULL;
    cr_assert_eq(dc_dmime_parse(bin, blen, &m, NULL), DC_OK, "%s", name);
    expect_round_trip(p, m, mime, len, name); /* in-memory reader, both actors */
    dc_dmime_free(m);
    free(bin);
    for (int a = 0; a < 4; a++) {
        uint8_t *back = decrypt_file(p, out, (enum dc_actor)a, &rl, DC_OK, name);
        if (back) {
            cr_assert_eq(rl, len, "%s as %s: %zu bytes back, %zu in", name,
                         dc_actor_name((enum dc_actor)a), rl, len);
            cr_assert(len == 0 || memcmp(back, mime, len) == 0, "%s: bytes differ", name);
        }
        free(back);
    }
    close(out);
    /* the in-memory encoder's message through the streaming decoder */
    m = encrypt_msg(p, mime, len, max_data, 1);
    const uint8_t *mb = dc_dmime_bytes(m, &blen);
    out = file_with(mb, blen);
    uint8_t *back = decrypt_file(p, out, DC_ACTOR_RECIPIENT, &rl, DC_OK, name);
    cr_assert(rl == len && (len == 0 || memcmp(back, mime, len) == 0), "%s", name);
    free(back);
    close(out);
    dc_dmime_free(m);
    close(in);
}

Test(message, corpus_round_trips_through_files_with_the_streaming_path, .timeout = 240)
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
        /* default chunk size, and small chunks (many pieces, segments split) */
        stream_round_trip(&p, mime, len, 0, de->d_name);
        stream_round_trip(&p, mime, len, 300, de->d_name);
        free(mime);
        files++;
    }
    closedir(d);
    cr_assert_geq(files, 40);
    party_free(&p);
}

/* Large bodies in each mapping mode, several windows and chunks: a 6 MiB single-part body
 * (kind B), a 6 MiB message that does not parse (kind W, whole message), and a multipart
 * whose displayable part comes after a 5 MiB attachment and is itself 3 MiB (kind M). */
Test(message, large_bodies_round_trip_through_files_in_every_mode, .timeout = 240)
{
    struct party p;
    party_fresh(&p);
    struct dc_buf b;
    const char *hdr = "From: Carol <carol@one.example>\r\nTo: Dave <dave@two.example>\r\n"
                      "Subject: large\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n";
    dc_buf_init(&b);
    dc_buf_printf(&b, "%sContent-Type: text/plain\r\n\r\n", hdr);
    for (unsigned i = 0; b.len < (6u << 20); i++)
        dc_buf_printf(&b, "line %u of a long plain text body\r\n", i);
    stream_round_trip(&p, b.data, b.len, 0, "6 MiB body (B)");
    stream_round_trip(&p, b.data, b.len, 1000000, "6 MiB body (B), 1 MB chunks");
    b.len = 0;
    dc_buf_printf(&b, "%s\x01not a header line\r\n\r\n", hdr);
    for (unsigned i = 0; b.len < (6u << 20); i++)
        dc_buf_printf(&b, "whole %u\n", i);
    stream_round_trip(&p, b.data, b.len, 0, "6 MiB unparseable (W)");
    b.len = 0;
    dc_buf_printf(&b, "%sMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n"
                      "pre\r\n--z\r\nContent-Type: application/octet-stream\r\n\r\n",
                  hdr);
    for (unsigned i = 0; b.len < (5u << 20); i++)
        dc_buf_printf(&b, "%08x%08x\n", i, i * 2654435761u);
    dc_buf_printf(&b, "\r\n--z\r\nContent-Type: text/plain\r\n\r\n");
    size_t start = b.len;
    for (unsigned i = 0; b.len - start < (3u << 20); i++)
        dc_buf_printf(&b, "display %u\r\n", i);
    dc_buf_printf(&b, "\r\n--z--\r\nepilogue\r\n");
    stream_round_trip(&p, b.data, b.len, 0, "display after attachment (M)");
    stream_round_trip(&p, b.data, b.len, 2000000, "display after attachment (M), 2 MB chunks");
    dc_buf_free(&b);
    party_free(&p);
}

/* Origin signing is deterministic: the streaming origin step on message.author.dmsg gives
 * the same bytes as the in-memory one (and as libdime's message.dmsg, see test_dmime). */
Test(message, streaming_origin_sign_of_the_vector_equals_the_in_memory_one)
{
    struct party p;
    party_vectors(&p);
    size_t alen, flen;
    uint8_t *ab = vec_read("message.author.dmsg", &alen);
    struct lk l = {.p = &p};
    struct dc_msg_lookup lookup = {lk_find, &l};
    struct dc_dmime *m = NULL;
    struct dc_err err = {0};
    cr_assert_eq(dc_message_origin_sign(ab, alen, &p.kek[DC_ACTOR_ORIGIN],
                                        &p.signer[DC_ACTOR_ORIGIN], &lookup, &m, &err),
                 DC_OK, "%s", err.msg);
    int in = file_with(ab, alen), out = file_with("", 0);
    size_t n = 0;
    cr_assert_eq(dc_message_origin_sign_fd(in, out, &p.kek[DC_ACTOR_ORIGIN],
                                           &p.signer[DC_ACTOR_ORIGIN], &lookup, &n, &err),
                 DC_OK, "%s", err.msg);
    uint8_t *fb = file_bytes(out, &flen);
    size_t mlen;
    const uint8_t *mb = dc_dmime_bytes(m, &mlen);
    cr_assert_eq(flen, mlen);
    cr_assert_eq(n, mlen);
    cr_assert_eq(memcmp(fb, mb, mlen), 0, "streaming origin signature differs");
    cr_assert_neq(memcmp(fb, ab, alen), 0, "the placeholders were replaced");
    /* and every actor reads the vector message.dmsg through the streaming decoder */
    size_t vlen;
    uint8_t *vb = vec_read("message.dmsg", &vlen);
    int vfd = file_with(vb, vlen);
    for (int a = 0; a < 4; a++) {
        size_t rl = 0;
        free(decrypt_file(&p, vfd, (enum dc_actor)a, &rl, DC_OK, "message.dmsg"));
        if (a == DC_ACTOR_AUTHOR || a == DC_ACTOR_RECIPIENT)
            cr_assert_gt(rl, 0, "unframed libdime message rebuilt");
    }
    close(vfd);
    free(vb);
    free(fb);
    free(ab);
    close(in);
    close(out);
    dc_dmime_free(m);
    party_free(&p);
}

/* Tampering a file in the display or an attachment chunk: the streaming decoder fails
 * naming the chunk and writes nothing. */
Test(message, streaming_decoder_refuses_a_tampered_file_and_writes_nothing)
{
    struct party p;
    party_vectors(&p);
    struct dc_buf b;
    build_with_attachment(&b, 3u << 20);
    struct dc_dmime *m = encrypt_msg(&p, b.data, b.len, 0, 1);
    static const unsigned types[] = {DC_CHUNK_DISPLAY, DC_CHUNK_ATTACH};
    for (size_t t = 0; t < 2; t++) {
        uint8_t *bad;
        size_t blen;
        tamper(m, types[t], &bad, &blen);
        int fd = file_with(bad, blen);
        struct lk l = {.p = &p};
        struct dc_msg_lookup lookup = {lk_find, &l};
        struct dc_message *dm = NULL;
        struct dc_err err = {0};
        int out = file_with("", 0);
        enum dc_status st = dc_message_decrypt_fd(fd, DC_ACTOR_RECIPIENT,
                                                  &p.kek[DC_ACTOR_RECIPIENT], &lookup, out, &dm,
                                                  &err);
        cr_assert_neq(st, DC_OK);
        char want[16];
        snprintf(want, sizeof(want), "chunk %u (", types[t]);
        cr_assert(strstr(err.msg, want) != NULL, "%s", err.msg);
        cr_assert_eq(lseek(out, 0, SEEK_END), 0, "nothing written");
        dc_message_free(dm);
        close(out);
        close(fd);
        free(bad);
    }
    dc_dmime_free(m);
    dc_buf_free(&b);
    party_free(&p);
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#ifndef UNDER_ASAN
/* Peak resident set (VmHWM) of this process in kB, from /proc/self/status. */
static long peak_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb < 0 ? 1L << 40 : kb;
}
#endif

/* Memory stays bounded: a 48 MiB message encoded and decoded from files in a child process
 * whose peak resident set must stay under 40 MiB (the in-memory path needs several times the
 * message). Skipped under AddressSanitizer, whose allocator keeps freed memory resident. */
Test(message, streaming_path_keeps_the_resident_set_below_the_message_size, .timeout = 240)
{
#ifdef UNDER_ASAN
    cr_skip_test("RSS is not meaningful under AddressSanitizer");
#else
    struct party p;
    party_vectors(&p);
    struct dc_buf b;
    build_with_attachment(&b, 36u << 20); /* 48 MiB of base64 */
    cr_assert_gt(b.len, 48u << 20);
    int in = file_with(b.data, b.len), out = file_with("", 0), back = file_with("", 0);
    size_t mlen = b.len;
    uint8_t want[DC_SHA512_LEN], got[DC_SHA512_LEN];
    dc_sha512(b.data, b.len, want);
    /* A forked child starts with the parent's resident pages: drop the message first. */
    dc_buf_free(&b);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* A child inherits its parent's peak: reset it (Linux >= 4.0), then measure. */
        FILE *cr = fopen("/proc/self/clear_refs", "w");
        if (!cr || fputs("5", cr) < 0 || fclose(cr) != 0)
            _exit(4);
        struct dc_msg_parties pp = {p.from, p.to, p.sig[0], p.sig[1], p.sig[2], p.sig[3]};
        struct dc_mime_limits lim;
        dc_mime_limits_default(&lim);
        lim.max_size = 64u << 20;
        struct dc_msg_opts o = {.limits = &lim};
        struct lk l = {.p = &p};
        struct dc_msg_lookup lookup = {lk_find, &l};
        struct dc_message *dm = NULL;
        if (dc_message_encrypt_fd(in, out, &pp, &p.signer[0], &p.signer[1], &p.kek[1], &o, NULL,
                                  NULL) != DC_OK ||
            dc_message_decrypt_fd(out, DC_ACTOR_RECIPIENT, &p.kek[3], &lookup, back, &dm,
                                  NULL) != DC_OK)
            _exit(2);
        dc_message_free(dm);
        _exit(peak_kb() < 40 * 1024 ? 0 : 3);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child: status %d (2: codec failed, 3: peak RSS of 40 MiB or more, 4: cannot "
              "reset the peak)",
              WEXITSTATUS(status));
    size_t rl;
    uint8_t *rb = file_bytes(back, &rl);
    cr_assert_eq(rl, mlen);
    dc_sha512(rb, rl, got);
    cr_assert_arr_eq(got, want, sizeof(want), "the rebuilt message differs");
    free(rb);
    close(in);
    close(out);
    close(back);
    party_free(&p);
#endif
}

/* A stored message (tests/vectors/<dir>) opens byte-exact as the author and the recipient,
 * in memory and through the streaming file decoder. */
static void stored_message_rebuilds(const char *dir)
{
    struct party p;
    party_vectors(&p);
    char n1[64], n2[64];
    snprintf(n1, sizeof(n1), "../%s/message.dmsg", dir);
    snprintf(n2, sizeof(n2), "../%s/message.eml", dir);
    size_t len, elen, rl;
    uint8_t *bin = vec_read(n1, &len);
    uint8_t *eml = vec_read(n2, &elen);
    for (int a = 0; a < 4; a += 3) {
        struct lk l = {.p = &p};
        struct dc_msg_lookup lookup = {lk_find, &l};
        struct dc_message *dm = NULL;
        struct dc_err err = {0};
        cr_assert_eq(dc_message_decrypt(bin, len, (enum dc_actor)a, &p.kek[a], &lookup, &dm,
                                        &err),
                     DC_OK, "%s: %s", dir, err.msg);
        cr_assert_eq(dm->framed, 1, "%s", dir);
        cr_assert_eq(dm->mime_len, elen, "%s", dir);
        cr_assert(memcmp(dm->mime, eml, elen) == 0, "%s: bytes differ", dir);
        dc_message_free(dm);
        int fd = file_with(bin, len);
        uint8_t *back = decrypt_file(&p, fd, (enum dc_actor)a, &rl, DC_OK, dir);
        cr_assert(rl == elen && memcmp(back, eml, elen) == 0, "%s: streaming: bytes differ",
                  dir);
        free(back);
        close(fd);
    }
    free(bin);
    free(eml);
    party_free(&p);
}

/* tests/vectors/dimeframe1: a message stored in the first layout (DIMEFRAME/1 block at the
 * start of the display chunk, whole MIME parts in the attachment chunks), made by this
 * project's dime-message before the layout changed. It must still open byte-exact. */
Test(message, stored_dimeframe1_message_still_rebuilds_byte_exact)
{
    stored_message_rebuilds("dimeframe1");
}

/* tests/vectors/dimeframe2: a message in the current layout, the one lavabit/libdime was
 * shown to read (display.txt and attachment.bin are what libdime got from chunks 67 and
 * 131, see its README). Our reader rebuilds it byte-exact, and our mapping of its MIME
 * message gives exactly those chunk contents. */
Test(message, stored_dimeframe2_message_rebuilds_and_maps_to_what_libdime_read)
{
    stored_message_rebuilds("dimeframe2");
    size_t elen, dlen, alen;
    uint8_t *eml = vec_read("../dimeframe2/message.eml", &elen);
    uint8_t *disp = vec_read("../dimeframe2/display.txt", &dlen);
    uint8_t *att = vec_read("../dimeframe2/attachment.bin", &alen);
    struct dc_dmap_out mo;
    cr_assert_eq(dc_dmap_forward(eml, elen, NULL, &mo, NULL), DC_OK);
    cr_assert(mo.display.len == dlen && memcmp(mo.display.data, disp, dlen) == 0);
    cr_assert(mo.nattach == 1 && mo.attach[0].len == alen &&
              memcmp(mo.attach[0].p, att, alen) == 0);
    dc_dmap_out_free(&mo);
    free(eml);
    free(disp);
    free(att);
}
