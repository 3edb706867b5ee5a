/*
 * Fuzz target: the D/MIME parser and the actor read path. Whatever parses must serialize
 * to the identical bytes. Parsed messages are then opened and decrypted as the recipient
 * (bob@bob.test) and as the origin (alice.test) with the conformance-vector keys; garbage
 * must fail with a status and a message and leave no result behind. The recipient's read
 * is repeated with deferred content (DC_DMIME_DEFER_CONTENT + dc_dmime_decrypt_finish) and
 * must end the same way. When the origin's read
 * succeeds, origin signing must produce a message that parses again with the same layout.
 * The same bytes also go through the common-headers parser (chunk 33 text): whatever parses
 * must format back to the identical text.
 */
#include <stdlib.h>
#include <string.h>

#include "dc_dmime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Vector keys (tests/vectors/libdime/keys.json). */
static const char *const bob_user_enc =
    "1d7f60a9c59a8360941c615cfb61c37016aca66f0662d4526af01741adee2e06";
static const char *const alice_org_enc =
    "b2c60faa8c57c4823627cfa8d84d78a04923123b8d1331ceaecb424efb41401c";
static const char *const alice_org_seed =
    "9eb86ee5539c6344ba676434cb39db6f06de09b2f46c91cc47d13862f5c0cca5";
static const char *const alice_user_pub =
    "9712b7b8a7e4d8db0d4bb1cdbabc68c611b002b6a82c0302afdee9347f4a9bed";

static struct dc_enc_key *recp_key, *orig_key;
static struct dc_sign_key *orig_sign;
static uint8_t author_pub[32], origin_pub[32];

static void init_keys(void)
{
    uint8_t b[32];
    if (recp_key)
        return;
    if (dc_hex_decode(bob_user_enc, 64, b, 32) || dc_enc_key_from_private(b, &recp_key, NULL) ||
        dc_hex_decode(alice_org_enc, 64, b, 32) || dc_enc_key_from_private(b, &orig_key, NULL) ||
        dc_hex_decode(alice_org_seed, 64, b, 32) ||
        dc_sign_key_from_seed(b, &orig_sign, NULL) ||
        dc_hex_decode(alice_user_pub, 64, author_pub, 32))
        abort();
    memcpy(origin_pub, orig_sign->pub, 32);
}

static void check_fail(enum dc_status st, const struct dc_err *err)
{
    if (st == DC_OK || err->code != st || err->msg[0] == '\0')
        abort();
}

/* The recipient again with DC_DMIME_DEFER_CONTENT, as dc_message_decrypt reads: after
 * dc_dmime_decrypt_finish, the same status, message and signature states as the plain read
 * (want*), and nothing left pending. */
static void deferred_same(struct dc_dmime_reader *r, const struct dc_dmime_keys *keys,
                          enum dc_status want, const struct dc_err *werr,
                          const struct dc_dmime_result *wres)
{
    struct dc_dmime_result *res = NULL;
    struct dc_err err = {0};
    enum dc_status st = dc_dmime_decrypt_ex(r, keys, DC_DMIME_DEFER_CONTENT, &res, &err);
    if (res) {
        st = dc_dmime_decrypt_finish(r, res, &err);
        if (st != DC_OK && st != DC_ERR_SIGNATURE) {
            dc_dmime_result_free(res);
            res = NULL;
        }
    }
    if (st != want || strcmp(err.msg, werr->msg) != 0 || (res == NULL) != (wres == NULL))
        abort();
    for (size_t i = 0; res && i < res->nitems; i++)
        if (res->items[i].sig != wres->items[i].sig || res->items[i].pending ||
            res->items[i].data_len != wres->items[i].data_len)
            abort();
    dc_dmime_result_free(res);
}

static void read_as(const struct dc_dmime *m, enum dc_actor actor, struct dc_enc_key *k)
{
    struct dc_kek_source ks;
    struct dc_dmime_reader *r = NULL;
    struct dc_err err = {0};
    dc_kek_source_local(&ks, k);
    enum dc_status st = dc_dmime_open(m, actor, &ks, &r, &err);
    if (st != DC_OK) {
        check_fail(st, &err);
        if (r)
            abort();
        return;
    }
    struct dc_dmime_keys keys = {.author_pub = author_pub,
                                 .origin_pubs = (const uint8_t(*)[32])origin_pub,
                                 .norigin_pubs = actor == DC_ACTOR_ORIGIN ? 0 : 1};
    struct dc_dmime_result *res = NULL;
    st = dc_dmime_decrypt(r, &keys, &res, &err);
    if (st == DC_OK) {
        /* success means every visible signature with a key verified */
        if (!res)
            abort();
        for (size_t i = 0; i < res->nitems; i++)
            if (res->items[i].sig == DC_DSIG_FAILED)
                abort();
    } else {
        check_fail(st, &err);
        if ((st == DC_ERR_SIGNATURE) != (res != NULL))
            abort();
    }
    if (actor == DC_ACTOR_RECIPIENT)
        deferred_same(r, &keys, st, &err, res);
    dc_dmime_result_free(res);
    if (st == DC_OK && actor == DC_ACTOR_ORIGIN) {
        struct dc_signer s;
        struct dc_dmime *o = NULL, *again = NULL;
        dc_signer_local(&s, orig_sign);
        st = dc_dmime_origin_sign(r, &s, &o, &err);
        if (st == DC_OK) {
            if (dc_dmime_parse(o->bin, o->len, &again, NULL) != DC_OK ||
                again->nchunks != m->nchunks || o->len != m->len)
                abort();
            dc_dmime_free(again);
            dc_dmime_free(o);
        } else {
            check_fail(st, &err);
        }
    }
    dc_dmime_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dc_dmime *m = NULL;
    struct dc_err err = {0};
    init_keys();
    /* The common-headers grammar, on the same bytes: what parses formats back identically. */
    struct dc_dmime_common ch;
    if (dc_dmime_common_parse(data, size, &ch, &err) == DC_OK) {
        struct dc_buf b;
        dc_buf_init(&b);
        if (dc_dmime_common_format(&ch, &b, NULL) != DC_OK || b.len != size ||
            memcmp(b.data, data, size) != 0)
            abort();
        dc_buf_free(&b);
    } else {
        check_fail(err.code, &err);
    }
    memset(&err, 0, sizeof(err));
    enum dc_status st = dc_dmime_parse(data, size, &m, &err);
    if (st != DC_OK) {
        check_fail(st, &err);
        if (m)
            abort();
        return 0;
    }
    size_t len;
    const uint8_t *out = dc_dmime_bytes(m, &len);
    if (len != size || memcmp(out, data, size) != 0)
        abort();
    for (size_t i = 0; i < m->nchunks; i++)
        if (!dc_dmime_chunk_name(m->chunks[i].type))
            abort();
    read_as(m, DC_ACTOR_RECIPIENT, recp_key);
    read_as(m, DC_ACTOR_ORIGIN, orig_key);
    dc_dmime_free(m);
    return 0;
}
