/*
 * dime-client's sealed key file (cl_keyfile) and its reading of a message to send (cl_msg,
 * cl_addr_list), without any server.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cl_keyfile.h"
#include "cl_send.h"

struct keys {
    struct dc_sign_key *sk;
    struct dc_enc_key *ek;
    uint8_t *bin;
    size_t len;
};

static struct keys sealed(const char *pass)
{
    struct keys k = {0};
    struct dc_err e = {0};
    cr_assert_eq(dc_sign_key_generate(&k.sk, &e), DC_OK);
    cr_assert_eq(dc_enc_key_generate(&k.ek, &e), DC_OK);
    cr_assert_eq(cl_keyfile_seal("carol@alice.test", k.sk, k.ek, pass, strlen(pass),
                                 CL_KDF_INTERACTIVE, &k.bin, &k.len, &e),
                 DC_OK, "%s", e.msg);
    return k;
}

/* What cl_keyfile_open gave back. */
struct opened {
    char *addr;
    struct dc_sign_key *sk;
    struct dc_enc_key *ek;
    struct dc_err e;
};

static enum dc_status open_with(const uint8_t *bin, size_t len, const char *pass,
                                struct opened *o)
{
    memset(o, 0, sizeof(*o));
    return cl_keyfile_open(bin, len, pass, strlen(pass), &o->addr, &o->sk, &o->ek, &o->e);
}

static void opened_free(struct opened *o)
{
    free(o->addr);
    dc_sign_key_free(o->sk);
    dc_enc_key_free(o->ek);
}

static void keys_free(struct keys *k)
{
    dc_sign_key_free(k->sk);
    dc_enc_key_free(k->ek);
    free(k->bin);
}

Test(client, the_right_passphrase_gives_back_both_keys_and_the_address)
{
    struct keys k = sealed("correct horse");
    struct opened o;
    cr_assert_eq(open_with(k.bin, k.len, "correct horse", &o), DC_OK, "%s", o.e.msg);
    cr_assert_str_eq(o.addr, "carol@alice.test");
    cr_assert_arr_eq(o.sk->seed, k.sk->seed, DC_ED25519_SEED_LEN);
    cr_assert_arr_eq(o.sk->pub, k.sk->pub, DC_ED25519_PUB_LEN);
    cr_assert_arr_eq(o.ek->priv, k.ek->priv, DC_SECP_PRIV_LEN);
    cr_assert_arr_eq(o.ek->pub, k.ek->pub, DC_SECP_PUB_LEN);
    opened_free(&o);
    keys_free(&k);
}

Test(client, the_key_bytes_are_not_in_the_file)
{
    struct keys k = sealed("correct horse");
    cr_assert_null(memmem(k.bin, k.len, k.sk->seed, 8), "seed bytes in the sealed file");
    cr_assert_null(memmem(k.bin, k.len, k.ek->priv, 8), "private scalar in the sealed file");
    keys_free(&k);
}

Test(client, a_wrong_passphrase_is_a_clear_error)
{
    struct keys k = sealed("correct horse");
    struct opened o;
    cr_assert_eq(open_with(k.bin, k.len, "correct hors", &o), DC_ERR_SIGNATURE);
    cr_assert_str_eq(o.e.msg, "wrong passphrase, or the key file was altered");
    cr_assert_null(o.addr);
    cr_assert_null(o.sk);
    cr_assert_null(o.ek);
    keys_free(&k);
}

Test(client, every_altered_byte_fails_the_open)
{
    struct keys k = sealed("pw");
    /* each part of the file: KDF id and costs, salt, nonce, address, ciphertext, tag (each
     * open costs an Argon2id run: a sample, not every byte) */
    const size_t at[] = {8, 12, 16, 17, 32, 33, 50, 57, 60, k.len - 40, k.len - 17, k.len - 1};
    for (size_t j = 0; j < sizeof(at) / sizeof(at[0]); j++) {
        struct opened o;
        k.bin[at[j]] ^= 0x01;
        enum dc_status s = open_with(k.bin, k.len, "pw", &o);
        k.bin[at[j]] ^= 0x01;
        cr_assert_neq(s, DC_OK, "byte %zu altered and still opened", at[j]);
    }
    keys_free(&k);
}

Test(client, other_files_and_truncations_are_refused_by_name)
{
    struct keys k = sealed("pw");
    struct opened o;
    cr_assert_eq(open_with((const uint8_t *)"-----BEGIN", 10, "pw", &o), DC_ERR_MAGIC);
    cr_assert_eq(open_with(k.bin, k.len - 1, "pw", &o), DC_ERR_FORMAT);
    cr_assert_eq(open_with(k.bin, 20, "pw", &o), DC_ERR_TRUNCATED);
    keys_free(&k);
}

Test(client, sealing_refuses_an_empty_passphrase_and_a_non_address)
{
    struct keys k = sealed("pw");
    struct dc_err e = {0};
    uint8_t *b;
    size_t l;
    cr_assert_eq(cl_keyfile_seal("carol@alice.test", k.sk, k.ek, "", 0, CL_KDF_INTERACTIVE, &b,
                                 &l, &e), DC_ERR_ARG);
    cr_assert_eq(cl_keyfile_seal("carol", k.sk, k.ek, "pw", 2, CL_KDF_INTERACTIVE, &b, &l, &e),
                 DC_ERR_ARG);
    cr_assert_eq(cl_kdf_cost_from_name("moderate"), CL_KDF_MODERATE);
    cr_assert_eq(cl_kdf_cost_from_name("cheap"), -1);
    keys_free(&k);
}

Test(client, address_lists)
{
    char **l = NULL;
    size_t n = 0;
    cl_addr_list("Bob <bob@bob.test>, \"Doe, Jane\" <jane@x.test> (work), dan@bob.test,"
                 " undisclosed:;, team: a@t.test, b@t.test;", &l, &n);
    cr_assert_eq(n, 5);
    const char *want[] = {"bob@bob.test", "jane@x.test", "dan@bob.test", "a@t.test", "b@t.test"};
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(l[i], want[i]);
        free(l[i]);
    }
    free(l);
}

Test(client, the_message_to_send)
{
    const char *in = "From: Carol <carol@alice.test>\nTo: bob@bob.test,\n dan@bob.test\n"
                     "Bcc: eve@bob.test,\n\tfay@bob.test\nSubject: hi\n\nbody\nline\n";
    struct cl_msg m;
    struct dc_err e = {0};
    cr_assert_eq(cl_msg_parse((const uint8_t *)in, strlen(in), 1000, &m, &e), DC_OK);
    cr_assert_str_eq(m.from, "carol@alice.test");
    cr_assert_eq(m.nrcpt, 4);
    cr_assert_str_eq(m.rcpts[1], "dan@bob.test");
    cr_assert_str_eq(m.rcpts[2], "eve@bob.test");
    cr_assert_str_eq(m.rcpts[3], "fay@bob.test");
    const char *want = "From: Carol <carol@alice.test>\r\nTo: bob@bob.test,\r\n dan@bob.test\r\n"
                       "Subject: hi\r\n\r\nbody\r\nline\r\n";
    cr_assert_eq(m.len, strlen(want));
    cr_assert_arr_eq(m.mime, want, m.len, "Bcc not removed or line ends not CR LF");
    cl_msg_free(&m);
    const char *two = "From: a@x.test, b@x.test\r\n\r\n";
    cr_assert_eq(cl_msg_parse((const uint8_t *)two, strlen(two), 1000, &m, &e), DC_OK);
    cr_assert_null(m.from, "two authors in From");
    cl_msg_free(&m);
    cr_assert_eq(cl_msg_parse((const uint8_t *)two, strlen(two), 10, &m, &e), DC_ERR_LIMIT);
}
