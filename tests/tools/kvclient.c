/*
 * dime-kvclient - a test and diagnostic client of dime-keyvaultd. It checks answers against
 * public data only: signatures against the signet's signing key (for the organization, or a
 * SOK listed with the MSG bit), KEKs against ECDH from the
 * ephemeral private key it generated (ECDH is symmetric), unwrapped slots against the slot it
 * wrapped itself.
 *
 *   dime-kvclient -s SOCKET check PRINCIPAL [FINGERPRINT]  every key operation, verified
 *   dime-kvclient -s SOCKET history USER                   fetch the history, verify the chain
 *   dime-kvclient -s SOCKET account USER                   exists=.. mode=.. generation=..
 *   dime-kvclient -s SOCKET fp PRINCIPAL                   current signet fingerprint
 *   dime-kvclient -s SOCKET probe OP PRINCIPAL             send a well-formed OP, print status
 *   dime-kvclient -s SOCKET ask OP PRINCIPAL [PURPOSE [valid|random|@FILE]]
 *       one request (sign, sign-stream, kek, unwrap, signet, history, account) as the
 *       vault's policy sees it: prints "OP ok" or "OP STATUS: MESSAGE"
 *   dime-kvclient -s SOCKET raw HEX                        send raw bytes, print the answer
 *   dime-kvclient -s SOCKET raw-pipe HEX                   send raw bytes (several frames) at
 *                                                          once, half-close, count the answers
 *   dime-kvclient -s SOCKET raw-close HEX                  send raw bytes, half-close, expect
 *                                                          the daemon to close unanswered
 *   -d FILE  append the hex of every checked response payload to FILE
 *   dime-kvclient -s SOCKET stress CLIENTS ROUNDS PRINCIPAL concurrent sign + unwrap checks
 *   dime-kvclient -s SOCKET stream PRINCIPAL SIZE [KEYFILE]
 *       a signing stream over at least SIZE pseudo-random bytes laid out as a D/MIME
 *       author-full input (a user) or origin input (the organization), as the vault checks:
 *       the signature must verify with the signet's key, equal dc_ed25519_sign with
 *       KEYFILE's key when given, and equal a one-frame SIGN when it fits one frame; prints
 *       "stream ok BYTES" with the actual size
 *   dime-kvclient -s SOCKET stream-bad PRINCIPAL mismatch|short|long|order|nostream
 *       a broken stream (second pass with one byte flipped, shorter, longer than announced,
 *       SIGN-END before SIGN-PASS2, SIGN-DATA without SIGN-BEGIN): prints the status of the
 *       refusal, then checks that the connection still signs
 *   dime-kvclient -s SOCKET message AUTHOR RECIPIENT SIZE DIR
 *       dc_message_encrypt_fd of a SIZE-byte MIME message from AUTHOR to RECIPIENT (both users
 *       of the vault's domain) with every signature and KEK through the vault (final form:
 *       author and origin signed), then dc_message_decrypt_fd as the recipient (KEK from the
 *       vault, signets from the vault): the rebuilt message must equal the input. Files go to
 *       DIR. Prints "message ok SIZE peak-rss-kib=N".
 *   dime-kvclient -s SOCKET sign-many USER N
 *       N chunk-signature requests (purpose chunk, each shaped like a D/MIME chunk's padded
 *       plaintext, 192 bytes up to one full frame) sent together with kv_client_sign_many:
 *       every signature must verify with the signet's key and equal a one-by-one SIGN of the
 *       same bytes, and the connection must answer a SIGNET request afterwards. Prints
 *       "sign-many ok N", or the refusal's status and message, then "in step" or
 *       "out of step" for the request after it.
 *   dime-kvclient -s SOCKET idle PRINCIPAL SECONDS
 *       a SIGNET request, then silence until the vault closes the connection (idle-timeout),
 *       then one more request on the same client, which must reconnect: prints "closed
 *       after N s" and "reused ok"
 *   dime-kvclient -s SOCKET stream-stall PRINCIPAL SECONDS
 *       begins a stream, sends one frame and waits (at most SECONDS) for the daemon to close
 *       the connection: prints "closed after N s" or "still open"
 *
 * Exit status: 0 success; 1 a check failed or the daemon refused; 2 usage; 4 no answer.
 */
#include "dc_crypto.h"
#include "dc_keys.h"
#include "dc_message.h"
#include "dc_signet.h"
#include "dl_sock.h"
#include "kv_client.h"
#include "kv_proto.h"


#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
    fprintf(stderr, "usage: dime-kvclient -s SOCKET check|history|account|fp|probe|raw|stress|sign-many "
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

/* A reproducible message for a signing purpose: pseudo-random bytes (SHA-512 of seed and
 * block counter) laid out as the purpose's D/MIME input (the vault checks the shape, see
 * dc_dmime_input), at least `want` bytes long; fed in pieces of irregular sizes so that frame
 * boundaries fall everywhere. */
#define GEN_CHUNKS 64
struct gen {
    uint64_t size;
    uint8_t seed[16];
    int flip_pass; /* when non-zero, the pass on which to flip one byte */
    int pass;
    /* the fixed bytes laid over the random ones: chunk headers, or a chunk input's header */
    size_t nfix;
    uint64_t fix_off[GEN_CHUNKS];
    uint8_t fix[GEN_CHUNKS][5];
    uint8_t fix_len[GEN_CHUNKS];
    uint64_t zero_from; /* tree inputs: the last hash is zero from here on */
};

static void gen_chunk(struct gen *g, unsigned type, uint64_t plen, unsigned nslots)
{
    g->fix_off[g->nfix] = g->size;
    g->fix[g->nfix][0] = (uint8_t)type;
    g->fix[g->nfix][1] = (uint8_t)(plen >> 16);
    g->fix[g->nfix][2] = (uint8_t)(plen >> 8);
    g->fix[g->nfix][3] = (uint8_t)plen;
    g->fix_len[g->nfix++] = 4;
    g->size += 4 + plen + 64 * (uint64_t)nslots;
}

/* Lays out an input of at least want bytes for purpose. Chunk inputs: data and no padding.
 * Tree inputs: hashes, the last one zero.
 * Chunk runs: ephemeral, origin, destination, common, as many display chunks as fill the
 * size, then the tree chunk for author-full (an origin input ends with the display chunks,
 * the 249 range). */
static void gen_layout(struct gen *g, enum kv_purpose purpose, uint64_t want)
{
    g->size = 0;
    g->nfix = 0;
    g->zero_from = UINT64_MAX;
    if (purpose == KV_PURPOSE_AUTHOR_TREE) {
        g->size = want < 4 * 64 ? 4 * 64 : (want + 63) / 64 * 64;
        g->zero_from = g->size - 64;
        return;
    }
    if (purpose == KV_PURPOSE_CHUNK) {
        g->size = want < 192 ? 192 : (want + 15) / 16 * 16;
        uint64_t ds = g->size - 5;
        uint8_t h[5] = {(uint8_t)(ds >> 16), (uint8_t)(ds >> 8), (uint8_t)ds, 0, 0};
        memcpy(g->fix[0], h, 5);
        g->fix_len[0] = 5;
        g->nfix = 1;
        return;
    }
    gen_chunk(g, 2, 33, 0);
    gen_chunk(g, 4, 256, 3);
    gen_chunk(g, 5, 256, 3);
    gen_chunk(g, 33, 256, 2);
    uint64_t tail = purpose == KV_PURPOSE_AUTHOR_FULL ? 4 + 64 + 3 * 64 : 0;
    while (g->size + tail < want && g->nfix < GEN_CHUNKS - 1) {
        uint64_t q = want - g->size - tail; /* bytes still wanted, header and slots included */
        q = q > 4 + 128 + 16000000 ? 16000000 : q < 4 + 128 + 256 ? 256 : (q - 132 + 15) / 16 * 16;
        gen_chunk(g, 67, q, 2);
    }
    if (tail)
        gen_chunk(g, 225, 64, 3);
}

static void gen_block(const struct gen *g, uint64_t i, uint8_t out[64])
{
    uint8_t in[24];
    memcpy(in, g->seed, 16);
    for (int k = 0; k < 8; k++)
        in[16 + k] = (uint8_t)(i >> (8 * k));
    dc_sha512(in, sizeof(in), out);
}

/* Bytes [off, off + n) of the message into out. */
static void gen_range(const struct gen *g, uint64_t off, size_t n, uint8_t *out)
{
    uint8_t blk[64];
    for (size_t k = 0; k < n;) {
        uint64_t at = off + k;
        gen_block(g, at / 64, blk);
        size_t from = (size_t)(at % 64), take = 64 - from < n - k ? 64 - from : n - k;
        memcpy(out + k, blk + from, take);
        k += take;
    }
    for (uint64_t z = g->zero_from > off ? g->zero_from : off; z < off + n; z++)
        out[z - off] = 0;
    for (size_t i = 0; i < g->nfix; i++)
        for (size_t j = 0; j < g->fix_len[i]; j++)
            if (g->fix_off[i] + j >= off && g->fix_off[i] + j < off + n)
                out[g->fix_off[i] + j - off] = g->fix[i][j];
}

static enum dc_status gen_feed(void *ctx, void (*update)(void *h, const void *p, size_t n),
                               void *h, struct dc_err *err)
{
    struct gen *g = ctx;
    uint8_t buf[4096];
    uint64_t off = 0;
    size_t piece = 1;
    g->pass++;
    while (off < g->size) {
        size_t want = piece % 4093 + 1;
        if (want > g->size - off)
            want = (size_t)(g->size - off);
        gen_range(g, off, want, buf);
        if (g->flip_pass == g->pass && off <= g->size / 2 && g->size / 2 < off + want)
            buf[(size_t)(g->size / 2 - off)] ^= 0x01;
        update(h, buf, want);
        off += want;
        piece = piece * 7 + 3;
    }
    return DC_OK;
}

static uint8_t *gen_all(struct gen *g)
{
    uint8_t *m = dc_xmalloc(g->size + 1);
    gen_range(g, 0, (size_t)g->size, m);
    return m;
}

/* A valid input of about want bytes for purpose, in a new buffer of *n bytes. */
static uint8_t *valid_input(enum kv_purpose purpose, uint64_t want, size_t *n)
{
    struct gen g;
    memset(&g, 0, sizeof(g));
    dc_random(g.seed, sizeof(g.seed));
    gen_layout(&g, purpose, want);
    *n = (size_t)g.size;
    return gen_all(&g);
}

/* One round of sign + KEK + unwrap checks; returns 0 when every answer is right. */
static int check_once(struct kv_client *c, const char *principal, const char *fp, bool quiet)
{
    struct dc_err err = {0};
    struct dc_signet *s = NULL;
    struct dc_enc_key *eph = NULL;
    uint8_t spub[32], epub[33], sig[64], slot[64], plain[64], got[64], *msg = NULL;
    size_t mlen = 0;
    struct dc_kek local, remote;
    bool user = strchr(principal, '@') != NULL;
    int bad = 1;
    if (kv_client_signet(c, principal, fp, &s, &err) != DC_OK)
        goto out;
    dump_last(c);
    if (dc_signet_signing_key(s, spub, &err) != DC_OK || dc_signet_enc_key(s, epub, &err) != DC_OK)
        goto out;
    msg = valid_input(user ? KV_PURPOSE_CHUNK : KV_PURPOSE_ORIGIN, 200, &mlen);
    if (fp == NULL) {
        if (kv_client_sign(c, principal, user ? KV_PURPOSE_CHUNK : KV_PURPOSE_ORIGIN, msg,
                           mlen, sig, &err) != DC_OK)
            goto out;
        dump_last(c);
        /* the organization signs origin signatures with a SOK that has the MSG bit, or the POK */
        bool good = dc_ed25519_verify(spub, msg, mlen, sig) == DC_OK;
        struct dc_sok soks[DC_SIGNET_MAX_SOKS];
        size_t ns = user ? 0 : dc_signet_soks(s, soks, DC_SIGNET_MAX_SOKS);
        for (size_t i = 0; !good && i < ns && i < DC_SIGNET_MAX_SOKS; i++)
            good = (soks[i].perm & DC_SOK_MSG) &&
                   dc_ed25519_verify(soks[i].pub, msg, mlen, sig) == DC_OK;
        if (!good) {
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
    bad = 0;
    if (!user) /* no class may unwrap as the organization (kv_policy.h) */
        goto out;
    bad = 1;
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
    free(msg);
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
        dc_signet_fp(v[i], fp, fpc, NULL);
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

static enum kv_purpose purpose_for(const char *principal)
{
    return strchr(principal, '@') ? KV_PURPOSE_AUTHOR_FULL : KV_PURPOSE_ORIGIN;
}

static int cmd_sign_many(const char *user, size_t n)
{
    struct kv_client *c = conn();
    struct dc_err err = {0};
    struct dc_signet *s = NULL;
    uint8_t pub[32], one[64];
    const uint8_t **msgs = dc_xcalloc(n, sizeof(*msgs));
    size_t *lens = dc_xcalloc(n, sizeof(*lens));
    uint8_t(*sig)[64] = dc_xcalloc(n, 64);
    uint8_t(**sigs)[64] = dc_xcalloc(n, sizeof(*sigs));
    int rc = 1;
    for (size_t i = 0; i < n; i++) {
        /* sizes spread over the smallest chunk input (192) .. KV_DATA_MAX, both ends
         * included; the vault checks the shape (valid_input) */
        size_t want = n == 1 ? KV_DATA_MAX : 192 + (KV_DATA_MAX - 192) * i / (n - 1);
        msgs[i] = valid_input(KV_PURPOSE_CHUNK, want, &lens[i]);
        sigs[i] = &sig[i];
    }
    if (kv_client_signet(c, user, NULL, &s, &err) != DC_OK ||
        dc_signet_signing_key(s, pub, &err) != DC_OK)
        goto out;
    if (kv_client_sign_many(c, user, KV_PURPOSE_CHUNK, n, msgs, lens, sigs, &err) != DC_OK) {
        printf("%s %s\n", kv_status_name(kv_client_status(c)), err.msg);
        struct dc_signet *again = NULL;
        printf("%s\n", kv_client_signet(c, user, NULL, &again, &err) == DC_OK ? "in step"
                                                                            : "out of step");
        dc_signet_free(again);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (dc_ed25519_verify(pub, msgs[i], lens[i], sig[i]) != DC_OK) {
            dc_fail(&err, DC_ERR_SIGNATURE, "signature %zu of %zu does not verify", i + 1, n);
            goto out;
        }
        if (kv_client_sign(c, user, KV_PURPOSE_CHUNK, msgs[i], lens[i], one, &err) != DC_OK)
            goto out;
        if (memcmp(one, sig[i], 64) != 0) {
            dc_fail(&err, DC_ERR_SIGNATURE, "signature %zu of %zu differs from a single SIGN",
                    i + 1, n);
            goto out;
        }
    }
    printf("sign-many ok %zu\n", n);
    rc = 0;
out:
    if (rc != 0 && err.msg[0])
        fprintf(stderr, "dime-kvclient: %s\n", err.msg);
    for (size_t i = 0; i < n; i++)
        free((uint8_t *)msgs[i]);
    free(msgs);
    free(lens);
    free(sig);
    free(sigs);
    dc_signet_free(s);
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
    case KV_OP_SIGN: {
        enum kv_purpose pp = strchr(principal, '@') ? KV_PURPOSE_CHUNK : KV_PURPOSE_ORIGIN;
        size_t mlen;
        uint8_t *m = valid_input(pp, 200, &mlen);
        st = kv_client_sign(c, principal, pp, m, mlen, sig, &err);
        free(m);
        break;
    }
    case KV_OP_KEK: st = kv_client_kek(c, principal, eph->pub, NULL, &kek, &err); break;
    case KV_OP_UNWRAP: st = kv_client_unwrap(c, principal, eph->pub, buf, NULL, out, &err); break;
    case KV_OP_SIGNET: st = kv_client_signet(c, principal, NULL, &s, &err); break;
    case KV_OP_HISTORY: st = kv_client_history(c, principal, NULL, NULL, &v, &n, &err); break;
    case KV_OP_ACCOUNT: st = kv_client_account(c, principal, &ex, NULL, NULL, &err); break;
    case KV_OP_SIGN_BEGIN: {
        uint8_t p = (uint8_t)purpose_for(principal);
        struct kv_response r;
        struct dc_buf b;
        dc_buf_init(&b);
        kv_msg_begin(&b, KV_OP_SIGN_BEGIN);
        kv_msg_add(&b, KV_T_PRINCIPAL, principal, strlen(principal));
        kv_msg_add(&b, KV_T_PURPOSE, &p, 1);
        st = kv_msg_end(&b, &err);
        if (st == DC_OK)
            st = kv_client_raw(c, b.data, b.len, &r, &err);
        dc_buf_free(&b);
        break;
    }
    default: usage();
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

static enum kv_purpose purpose_of(const char *name)
{
    for (int i = 1; i <= KV_PURPOSE_MAX; i++)
        if (strcmp(kv_purpose_name((enum kv_purpose)i), name) == 0)
            return (enum kv_purpose)i;
    usage();
    return 0;
}

/* The data of an `ask`: valid (an input of the purpose's shape), random, or @FILE. */
static uint8_t *ask_data(const char *how, enum kv_purpose purpose, size_t *n)
{
    if (strcmp(how, "valid") == 0)
        return valid_input(purpose > KV_PURPOSE_ORIGIN ? KV_PURPOSE_CHUNK : purpose, 3000, n);
    if (strcmp(how, "random") == 0) {
        uint8_t *b = dc_xmalloc(3000);
        dc_random(b, 3000);
        *n = 3000;
        return b;
    }
    FILE *f = how[0] == '@' ? fopen(how + 1, "rb") : NULL;
    if (f == NULL)
        usage();
    uint8_t *b = dc_xmalloc(KV_DATA_MAX);
    *n = fread(b, 1, KV_DATA_MAX, f);
    fclose(f);
    return b;
}

/* The data of an ask for a signing stream, in two pieces (two SIGN-DATA frames). */
struct halves {
    const uint8_t *p;
    size_t n;
};

static enum dc_status halves_feed(void *ctx, void (*update)(void *h, const void *p, size_t n),
                                  void *h, struct dc_err *err)
{
    const struct halves *d = ctx;
    update(h, d->p, d->n / 2);
    update(h, d->p + d->n / 2, d->n - d->n / 2);
    return DC_OK;
}

/*
 * ask OP PRINCIPAL [PURPOSE [DATA]]: one request as the vault's policy sees it; prints
 * "OP ok" or "OP STATUS: MESSAGE". OP is sign, sign-stream (a whole signing stream), kek,
 * unwrap, signet, history, account, or a device's enroll (Paranoid, a new SSR), rotate (an
 * SSR without custody) and blob; DATA (signing) is valid, random or @FILE.
 */
static int cmd_ask(int argc, char **argv)
{
    const char *op = argv[0], *principal = argv[1];
    enum kv_purpose purpose = argc > 2 ? purpose_of(argv[2]) : KV_PURPOSE_CHUNK;
    size_t n = 0;
    uint8_t *data = NULL, sig[64], out[64] = {0};
    struct kv_client *c = conn();
    struct dc_err err = {0};
    struct dc_enc_key *eph = NULL;
    struct dc_kek kek;
    struct dc_signet *s = NULL, **v = NULL;
    size_t nv = 0;
    bool ex;
    enum dc_status st;
    dc_enc_key_generate(&eph, &err);
    if (strcmp(op, "sign") == 0 || strcmp(op, "sign-stream") == 0) {
        data = ask_data(argc > 3 ? argv[3] : "valid", purpose, &n);
        struct halves hv = {data, n};
        st = op[4] == '\0' ? kv_client_sign(c, principal, purpose, data, n, sig, &err)
                           : kv_client_sign_stream(c, principal, purpose, n, halves_feed, &hv,
                                                   sig, &err);
    } else if (strcmp(op, "kek") == 0) {
        st = kv_client_kek(c, principal, eph->pub, NULL, &kek, &err);
    } else if (strcmp(op, "unwrap") == 0) {
        st = kv_client_unwrap(c, principal, eph->pub, out, NULL, out, &err);
    } else if (strcmp(op, "signet") == 0) {
        st = kv_client_signet(c, principal, NULL, &s, &err);
    } else if (strcmp(op, "history") == 0) {
        st = kv_client_history(c, principal, NULL, NULL, &v, &nv, &err);
    } else if (strcmp(op, "account") == 0) {
        st = kv_client_account(c, principal, &ex, NULL, NULL, &err);
    } else if (strcmp(op, "enroll") == 0 || strcmp(op, "rotate") == 0) {
        /* a device's first-generation request for new keys (no custody signature) */
        struct dc_sign_key *sk = NULL;
        struct dc_enc_key *ek = NULL;
        struct dc_signet *req = NULL;
        uint8_t *res = NULL;
        size_t rl = 0;
        uint32_t gen = 0;
        st = dc_sign_key_generate(&sk, &err);
        if (st == DC_OK && (st = dc_enc_key_generate(&ek, &err)) == DC_OK)
            st = dc_signet_ssr_create(sk, ek->pub, NULL, &req, &err);
        if (st == DC_OK)
            st = op[0] == 'e' ? kv_client_enroll(c, principal, KV_MODE_PARANOID, req->bin,
                                                 req->bin_len, NULL, 0, &res, &rl, &gen, &err)
                              : kv_client_rotate(c, principal, req->bin, req->bin_len, NULL, 0,
                                                 &res, &rl, &gen, &err);
        free(res);
        dc_signet_free(req);
        dc_sign_key_free(sk);
        dc_enc_key_free(ek);
    } else if (strcmp(op, "blob") == 0) {
        uint8_t *res = NULL;
        size_t rl = 0;
        uint32_t gen = 0;
        st = kv_client_blob(c, principal, &res, &rl, &gen, &err);
        free(res);
    } else {
        usage();
        return 2;
    }
    if (st == DC_OK)
        printf("%s ok\n", op);
    else
        printf("%s %s: %s\n", op, kv_status_name(kv_client_status(c)), err.msg);
    int rc = st == DC_OK || kv_client_status(c) != KV_E_INTERNAL ? 0 : 4;
    for (size_t i = 0; i < nv; i++)
        dc_signet_free(v[i]);
    free(v);
    dc_signet_free(s);
    dc_enc_key_free(eph);
    free(data);
    kv_client_close(c);
    return rc;
}

/* The bytes of a hex argument (usage() when it is not hex); *n is their count. */
static uint8_t *hex_arg(const char *hex, size_t *n)
{
    *n = strlen(hex) / 2;
    uint8_t *b = dc_xmalloc(*n + 1);
    if (strlen(hex) % 2 || dc_hex_decode(hex, 2 * *n, b, *n) != DC_OK)
        usage();
    return b;
}

static int cmd_raw(const char *hex)
{
    size_t n;
    uint8_t *b = hex_arg(hex, &n);
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

/* Connects, sends the bytes of hex and closes the sending side: the socket, or -1. */
static int send_half_closed(const char *hex)
{
    size_t n;
    uint8_t *b = hex_arg(hex, &n);
    struct dc_err err = {0};
    int fd = dl_sock_connect("keyvault", sock, KV_CLIENT_TIMEOUT_MS, KV_CLIENT_TIMEOUT_MS, &err);
    if (fd < 0)
        fprintf(stderr, "dime-kvclient: %s\n", err.msg);
    else if (write(fd, b, n) != (ssize_t)n) {
        perror("dime-kvclient: write");
        close(fd);
        fd = -1;
    } else
        shutdown(fd, SHUT_WR);
    free(b);
    return fd;
}

/* Sends raw bytes, then closes the sending side: a truncated frame must get no answer and
 * the connection must be dropped (exit 0 when the daemon closes without answering). */
static int cmd_raw_close(const char *hex)
{
    uint8_t buf[256];
    int fd = send_half_closed(hex);
    if (fd < 0)
        return 4;
    ssize_t r = read(fd, buf, sizeof(buf));
    close(fd);
    printf("%s\n", r == 0 ? "closed-without-answer" : "answered");
    return r == 0 ? 0 : 1;
}

/* Sends raw bytes at once (several frames: a client that does not wait for each answer),
 * closes the sending side and counts the whole answer frames until the daemon closes. */
static int cmd_raw_pipe(const char *hex)
{
    uint8_t buf[4096];
    int fd = send_half_closed(hex);
    if (fd < 0)
        return 4;
    size_t have = 0, answers = 0;
    ssize_t r;
    while ((r = read(fd, buf + have, sizeof(buf) - have)) > 0) {
        have += (size_t)r;
        while (have >= 4 && have - 4 >= dc_get_be(buf, 4)) {
            size_t used = 4 + dc_get_be(buf, 4);
            memmove(buf, buf + used, have - used);
            have -= used;
            answers++;
        }
    }
    close(fd);
    printf("answers %zu\n", answers);
    return 0;
}

/* ---- signing streams ---- */

static void verify_update(void *h, const void *p, size_t n)
{
    dc_ed25519_verify_update(h, p, n);
}

static int cmd_stream(const char *principal, uint64_t size, const char *keyfile)
{
    struct kv_client *c = conn();
    struct dc_err err = {0};
    struct dc_signet *s = NULL;
    struct dc_keyfile *kf = NULL;
    uint8_t pub[32], sig[64], ref[64];
    struct gen g;
    int rc = 1;
    memset(&g, 0, sizeof(g));
    dc_random(g.seed, sizeof(g.seed));
    gen_layout(&g, purpose_for(principal), size);
    size = g.size;
    if (kv_client_signet(c, principal, NULL, &s, &err) != DC_OK ||
        dc_signet_signing_key(s, pub, &err) != DC_OK)
        goto out;
    if (kv_client_sign_stream(c, principal, purpose_for(principal), size, gen_feed, &g, sig,
                              &err) != DC_OK)
        goto out;
    dump_last(c);
    if (g.pass != 2) {
        dc_fail(&err, DC_ERR_ARG, "the feed ran %d times, not twice", g.pass);
        goto out;
    }
    /* verification streams too: the message is never held here unless a key is given */
    struct dc_ed25519_verify_ctx *vc = dc_ed25519_verify_init(pub, sig);
    struct gen g2 = g;
    g2.pass = 0;
    gen_feed(&g2, verify_update, vc, &err);
    if (dc_ed25519_verify_final(vc) != DC_OK) {
        dc_fail(&err, DC_ERR_SIGNATURE, "the streamed signature does not verify with the "
                "signet's key");
        goto out;
    }
    if (keyfile != NULL || size <= KV_DATA_MAX) {
        uint8_t *m = gen_all(&g);
        enum dc_status st;
        if (keyfile != NULL) {
            st = dc_keyfile_load_file(keyfile, &kf, &err);
            if (st == DC_OK && (kf->sign == NULL || memcmp(kf->sign->pub, pub, 32) != 0))
                st = dc_fail(&err, DC_ERR_KEY, "%s is not the key of the current signet",
                             keyfile);
            if (st == DC_OK)
                st = dc_ed25519_sign(kf->sign, m, (size_t)size, ref, &err);
        } else {
            st = kv_client_sign(c, principal, purpose_for(principal), m, (size_t)size, ref,
                                &err);
        }
        free(m);
        if (st != DC_OK)
            goto out;
        if (memcmp(ref, sig, 64) != 0) {
            dc_fail(&err, DC_ERR_SIGNATURE, "the streamed signature differs from %s",
                    keyfile ? "dc_ed25519_sign with the key file" : "a one-frame SIGN");
            goto out;
        }
    }
    printf("stream ok %llu%s\n", (unsigned long long)size,
           keyfile ? " equals-local" : size <= KV_DATA_MAX ? " equals-sign" : "");
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "dime-kvclient: stream %s: %s (status %s)\n", principal, err.msg,
                kv_status_name(kv_client_status(c)));
    dc_keyfile_free(kf);
    dc_signet_free(s);
    kv_client_close(c);
    return rc;
}

/* Sends one request frame built from op and optional fields; prints nothing. */
static enum dc_status frame(struct kv_client *c, enum kv_op op, const char *principal,
                            const uint8_t *data, size_t dlen, uint64_t length,
                            struct dc_err *err)
{
    struct dc_buf b;
    struct kv_response r;
    dc_buf_init(&b);
    kv_msg_begin(&b, (uint8_t)op);
    if (principal != NULL) {
        uint8_t p = (uint8_t)purpose_for(principal);
        kv_msg_add(&b, KV_T_PRINCIPAL, principal, strlen(principal));
        kv_msg_add(&b, KV_T_PURPOSE, &p, 1);
    }
    if (data != NULL)
        kv_msg_add(&b, KV_T_DATA, data, dlen);
    if (length != UINT64_MAX) {
        uint8_t l[8];
        for (int i = 0; i < 8; i++)
            l[i] = (uint8_t)(length >> (56 - 8 * i));
        kv_msg_add(&b, KV_T_LENGTH, l, 8);
    }
    enum dc_status st = kv_msg_end(&b, err);
    if (st == DC_OK)
        st = kv_client_raw(c, b.data, b.len, &r, err);
    dc_buf_free(&b);
    return st;
}

static int cmd_stream_bad(const char *principal, const char *how)
{
    struct kv_client *c = conn();
    struct dc_err err = {0};
    size_t mlen; /* a whole valid input of about 3000 bytes, and a copy with one byte flipped */
    uint8_t *m = valid_input(purpose_for(principal), 3000, &mlen), *m2 = dc_xmalloc(mlen);
    memcpy(m2, m, mlen);
    m2[mlen / 2] ^= 0x80;
    bool announce = strcmp(how, "long") == 0;
    enum dc_status st = DC_OK;
    if (strcmp(how, "nostream") == 0) {
        st = frame(c, KV_OP_SIGN_DATA, NULL, m, mlen, UINT64_MAX, &err);
        goto told;
    }
    st = frame(c, KV_OP_SIGN_BEGIN, principal, NULL, 0, announce ? mlen : UINT64_MAX,
               &err);
    if (st == DC_OK)
        st = frame(c, KV_OP_SIGN_DATA, NULL, m, mlen, UINT64_MAX, &err);
    if (st == DC_OK && strcmp(how, "order") == 0) {
        st = frame(c, KV_OP_SIGN_END, NULL, NULL, 0, UINT64_MAX, &err);
        goto told;
    }
    if (st == DC_OK)
        st = frame(c, KV_OP_SIGN_PASS2, NULL, NULL, 0, UINT64_MAX, &err);
    if (st == DC_OK) {
        if (strcmp(how, "mismatch") == 0)
            st = frame(c, KV_OP_SIGN_DATA, NULL, m2, mlen, UINT64_MAX, &err);
        else if (strcmp(how, "short") == 0)
            st = frame(c, KV_OP_SIGN_DATA, NULL, m, mlen - 1, UINT64_MAX, &err);
        else if (announce) /* the announced length, then one byte more */
            st = frame(c, KV_OP_SIGN_DATA, NULL, m, mlen, UINT64_MAX, &err) != DC_OK
                     ? DC_ERR_ARG
                     : frame(c, KV_OP_SIGN_DATA, NULL, m, 1, UINT64_MAX, &err);
        else
            usage();
    }
    if (st == DC_OK)
        st = frame(c, KV_OP_SIGN_END, NULL, NULL, 0, UINT64_MAX, &err);
told:
    free(m);
    free(m2);
    if (st == DC_OK) {
        printf("%s accepted\n", how);
        kv_client_close(c);
        return 1;
    }
    printf("%s refused %s: %s\n", how, kv_status_name(kv_client_status(c)), err.msg);
    if (kv_client_status(c) == KV_E_INTERNAL) {
        kv_client_close(c);
        return 4;
    }
    /* the same connection goes on working */
    int rc = check_once(c, principal, NULL, false);
    printf("connection %s\n", rc == 0 ? "still serves" : "broken");
    kv_client_close(c);
    return rc;
}

static int cmd_stream_stall(const char *principal, int seconds)
{
    struct kv_client *c = conn();
    struct dc_err err = {0};
    size_t vlen;
    uint8_t m[1000], *v = valid_input(purpose_for(principal), 100000, &vlen);
    memcpy(m, v, sizeof(m)); /* a valid start: the stall, not the shape, must end it */
    free(v);
    if (frame(c, KV_OP_SIGN_BEGIN, principal, NULL, 0, UINT64_MAX, &err) != DC_OK ||
        frame(c, KV_OP_SIGN_DATA, NULL, m, sizeof(m), UINT64_MAX, &err) != DC_OK) {
        fprintf(stderr, "dime-kvclient: %s\n", err.msg);
        kv_client_close(c);
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* no request outstanding: a closed connection fails the next request */
    int rc = 1;
    for (int i = 0; i < seconds * 10; i++) {
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
        int fd = kv_client_fd(c);
        char b;
        ssize_t r = recv(fd, &b, 1, MSG_DONTWAIT | MSG_PEEK);
        if (r == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            printf("closed after %ld s\n", (long)(t1.tv_sec - t0.tv_sec));
            rc = 0;
            break;
        }
    }
    if (rc)
        printf("still open\n");
    kv_client_close(c);
    return rc;
}

/* idle PRINCIPAL SECONDS: a request, then no traffic until the vault closes the connection
 * (its idle-timeout; at most SECONDS), then another request on the same client, which must
 * go through on a new connection: prints "closed after N s" and "reused ok". */
static int cmd_idle(const char *principal, int seconds)
{
    struct kv_client *c = conn();
    struct dc_err err = {0};
    struct dc_signet *s = NULL;
    int rc = 1;
    if (kv_client_signet(c, principal, NULL, &s, &err) != DC_OK)
        goto out;
    dc_signet_free(s);
    s = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool closed = false;
    for (int i = 0; i < seconds * 10 && !closed; i++) {
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
        char b;
        closed = recv(kv_client_fd(c), &b, 1, MSG_DONTWAIT | MSG_PEEK) == 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!closed) {
        printf("still open\n");
        goto out;
    }
    printf("closed after %ld s\n", (long)(t1.tv_sec - t0.tv_sec));
    if (kv_client_signet(c, principal, NULL, &s, &err) != DC_OK)
        goto out;
    printf("reused ok\n");
    rc = 0;
out:
    if (rc && err.msg[0])
        fprintf(stderr, "dime-kvclient: idle: %s\n", err.msg);
    dc_signet_free(s);
    kv_client_close(c);
    return rc;
}

/* ---- a whole message through the vault ---- */

struct vault_lookup {
    struct kv_client *c;
    const char *author, *origin;
};

static enum dc_status vault_find(void *ctx, enum dc_msg_role role, const char *name,
                                 const char *fp, struct dc_signet **out, struct dc_err *err)
{
    struct vault_lookup *l = ctx;
    return kv_client_signet(l->c, role == DC_MSG_AUTHOR_SIGNET ? l->author : l->origin, NULL,
                            out, err);
}

/* Writes a MIME message of about size bytes (headers, then 64-byte lines) to path. */
static enum dc_status write_mime(const char *path, const char *from, const char *to,
                                 uint64_t size, struct dc_err *err)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return dc_fail(err, DC_ERR_IO, "%s: cannot create", path);
    int h = fprintf(f, "From: <%s>\r\nTo: <%s>\r\nSubject: streamed\r\n"
                       "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <s@x.test>\r\n"
                       "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n", from, to);
    static const char line[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint64_t n = h > 0 ? (uint64_t)h : 0;
    for (uint64_t i = 0; n + 64 <= size; i++) { /* whole lines only: up to 63 bytes short */
        fprintf(f, "%08llu%.54s\r\n", (unsigned long long)i, line);
        n += 64;
    }
    return fclose(f) == 0 ? DC_OK : dc_fail(err, DC_ERR_IO, "%s: write failed", path);
}

static bool same_files(const char *a, const char *b)
{
    int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
    bool same = fa >= 0 && fb >= 0;
    uint8_t x[65536], y[65536];
    while (same) {
        ssize_t ra = read(fa, x, sizeof(x)), rb = read(fb, y, sizeof(y));
        if (ra != rb || ra < 0 || memcmp(x, y, (size_t)ra) != 0)
            same = false;
        if (ra <= 0)
            break;
    }
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    return same;
}

static int cmd_message(const char *author, const char *rcpt, uint64_t size, const char *dir)
{
    struct kv_client *c = conn();
    struct dc_err err = {0};
    const char *dom = strchr(author, '@');
    struct dc_signet *as = NULL, *os = NULL, *rs = NULL;
    struct dc_message *m = NULL;
    char *in = dc_xasprintf("%s/plain.eml", dir), *enc = dc_xasprintf("%s/msg.dmsg", dir);
    char *out = dc_xasprintf("%s/rebuilt.eml", dir);
    int rc = 1, fi = -1, fo = -1, fr = -1;
    if (dom == NULL || strchr(rcpt, '@') == NULL)
        usage();
    dom++;
    if (kv_client_signet(c, author, NULL, &as, &err) != DC_OK ||
        kv_client_signet(c, dom, NULL, &os, &err) != DC_OK ||
        kv_client_signet(c, rcpt, NULL, &rs, &err) != DC_OK ||
        write_mime(in, author, rcpt, size, &err) != DC_OK)
        goto done;
    struct kv_remote ar = {c, author, KV_PURPOSE_AUTHOR_FULL, NULL};
    struct kv_remote orr = {c, dom, KV_PURPOSE_ORIGIN, NULL};
    struct kv_remote ok = {c, dom, 0, NULL}, rk = {c, rcpt, 0, NULL};
    struct dc_signer asg, osg;
    kv_remote_signer(&asg, &ar, NULL);
    kv_remote_signer(&osg, &orr, NULL);
    struct dc_kek_source oks = {kv_remote_kek, &ok}, rks = {kv_remote_kek, &rk};
    if (dc_signet_signing_key(as, asg.pub, &err) != DC_OK ||
        dc_signet_signing_key(os, osg.pub, &err) != DC_OK)
        goto done;
    struct dc_msg_parties p = {.from = author, .to = rcpt, .author = as, .origin = os,
                               .destination = os, .recipient = rs};
    struct dc_mime_limits lim;
    dc_mime_limits_default(&lim);
    lim.max_size = (size_t)size + 1;
    struct dc_msg_opts opts = {.now = 0, .limits = &lim, .max_data = 0};
    size_t elen = 0;
    fi = open(in, O_RDONLY | O_CLOEXEC);
    fo = open(enc, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fi < 0 || fo < 0) {
        dc_fail(&err, DC_ERR_IO, "cannot open the message files in %s", dir);
        goto done;
    }
    if (dc_message_encrypt_fd(fi, fo, &p, &asg, &osg, &oks, &opts, &elen, &err) != DC_OK)
        goto done;
    close(fo);
    fo = open(enc, O_RDONLY | O_CLOEXEC);
    fr = open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    struct vault_lookup vl = {c, author, dom};
    struct dc_msg_lookup lk = {vault_find, &vl};
    if (fo < 0 || fr < 0 ||
        dc_message_decrypt_fd(fo, DC_ACTOR_RECIPIENT, &rks, &lk, fr, &m, &err) != DC_OK)
        goto done;
    if (!m->have_author_key || !m->have_origin_key) {
        dc_fail(&err, DC_ERR_SIGNATURE, "the decryption did not check both signers");
        goto done;
    }
    if (!same_files(in, out)) {
        dc_fail(&err, DC_ERR_FORMAT, "the rebuilt message differs from the input");
        goto done;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("message ok %llu dmime=%zu peak-rss-kib=%ld\n", (unsigned long long)size, elen,
           ru.ru_maxrss);
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "dime-kvclient: message: %s (status %s)\n", err.msg,
                kv_status_name(kv_client_status(c)));
    if (fi >= 0)
        close(fi);
    if (fo >= 0)
        close(fo);
    if (fr >= 0)
        close(fr);
    dc_message_free(m);
    dc_signet_free(as);
    dc_signet_free(os);
    dc_signet_free(rs);
    free(in);
    free(enc);
    free(out);
    kv_client_close(c);
    return rc;
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
            st = dc_signet_fp(s, fp, fpc, &err);
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
    if (strcmp(cmd, "ask") == 0 && argc >= 3 && argc <= 5)
        return cmd_ask(argc - 1, argv + 1);
    if (strcmp(cmd, "raw") == 0 && argc == 2)
        return cmd_raw(argv[1]);
    if (strcmp(cmd, "raw-close") == 0 && argc == 2)
        return cmd_raw_close(argv[1]);
    if (strcmp(cmd, "raw-pipe") == 0 && argc == 2)
        return cmd_raw_pipe(argv[1]);
    if (strcmp(cmd, "stream") == 0 && (argc == 3 || argc == 4))
        return cmd_stream(argv[1], strtoull(argv[2], NULL, 10), argc == 4 ? argv[3] : NULL);
    if (strcmp(cmd, "stream-bad") == 0 && argc == 3)
        return cmd_stream_bad(argv[1], argv[2]);
    if (strcmp(cmd, "message") == 0 && argc == 5)
        return cmd_message(argv[1], argv[2], strtoull(argv[3], NULL, 10), argv[4]);
    if (strcmp(cmd, "sign-many") == 0 && argc == 3)
        {
        int n = atoi(argv[2]);
        if (n < 1 || n > 1000)
            usage();
        return cmd_sign_many(argv[1], (size_t)n);
    }
    if (strcmp(cmd, "idle") == 0 && argc == 3)
        return cmd_idle(argv[1], atoi(argv[2]));
    if (strcmp(cmd, "stream-stall") == 0 && argc == 3)
        return cmd_stream_stall(argv[1], atoi(argv[2]));
    if (strcmp(cmd, "stress") == 0 && argc == 4)
        return cmd_stress(atoi(argv[1]), atoi(argv[2]), argv[3]);
    usage();
    return 2;
}
