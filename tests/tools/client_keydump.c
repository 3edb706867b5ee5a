/*
 * client_keydump - test tool: the private key bytes sealed in a dime-client key file, as two
 * hex lines (the Ed25519 seed, the secp256k1 scalar), so that test_client.sh can search the
 * server's files for them; with a second argument, also those keys as a USER KEY file
 * (dime-message decrypt opens a message with it). Passphrase from DIME_CLIENT_PASSPHRASE.
 * Never installed.
 *
 * usage: client_keydump KEY-FILE [USER-KEY-OUT]
 */
#include "cl_keyfile.h"
#include "dc_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
    printf("\n");
}

int main(int argc, char **argv)
{
    const char *pass = getenv("DIME_CLIENT_PASSPHRASE");
    struct dc_err e = {0};
    uint8_t *bin;
    size_t len;
    char *addr;
    struct dc_sign_key *sk;
    struct dc_enc_key *ek;
    if (argc < 2 || argc > 3 || pass == NULL) {
        fprintf(stderr, "usage: DIME_CLIENT_PASSPHRASE=... client_keydump KEY-FILE "
                "[USER-KEY-OUT]\n");
        return 2;
    }
    if (dc_read_file(argv[1], CL_KEYFILE_MAX, &bin, &len, &e) != DC_OK ||
        cl_keyfile_open(bin, len, pass, strlen(pass), &addr, &sk, &ek, &e) != DC_OK) {
        fprintf(stderr, "client_keydump: %s\n", e.msg);
        return 1;
    }
    hex(sk->seed, DC_ED25519_SEED_LEN);
    hex(ek->priv, DC_SECP_PRIV_LEN);
    struct dc_keyfile kf = {.type = DC_KEY_USER, .sign = sk, .enc = ek};
    if (argc == 3 && dc_keyfile_save(&kf, argv[2], &e) != DC_OK) {
        fprintf(stderr, "client_keydump: %s: %s\n", argv[2], e.msg);
        return 1;
    }
    free(addr);
    free(bin);
    dc_sign_key_free(sk);
    dc_enc_key_free(ek);
    return 0;
}
