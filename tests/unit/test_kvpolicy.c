/* The keyvault's access policy (kv_policy_check): every class against every operation,
 * principal kind and purpose, and the data shape of signatures, as a table. The daemon's
 * integration test (test_keyvault.sh) runs the same rules through the socket by uid. */
#include <criterion/criterion.h>
#include <string.h>

#include "kv_policy.h"

#define R KV_CLASS_RELAY
#define M KV_CLASS_MILTER
#define A KV_CLASS_ACCOUNT

/* Bytes of each shape: a chunk input (192 bytes, data size 187, no padding), a tree input
 * (four hashes, the last zero), an origin/author-full prefix, and bytes of none. */
static uint8_t chunk_in[192], tree_in[256], junk[300];
static uint8_t run_origin[37 + 452 * 2 + 388], run_full[37 + 452 * 2 + 388 + 260];

static size_t put_chunk(uint8_t *p, unsigned type, size_t plen, unsigned slots)
{
    p[0] = (uint8_t)type;
    p[1] = (uint8_t)(plen >> 16);
    p[2] = (uint8_t)(plen >> 8);
    p[3] = (uint8_t)plen;
    return 4 + plen + 64 * slots;
}

static size_t put_run(uint8_t *p, bool tree)
{
    size_t at = 0;
    at += put_chunk(p + at, 2, 33, 0);
    at += put_chunk(p + at, 4, 256, 3);
    at += put_chunk(p + at, 5, 256, 3);
    at += put_chunk(p + at, 33, 256, 2);
    if (tree)
        at += put_chunk(p + at, 225, 64, 3);
    return at;
}

static void setup(void)
{
    memset(chunk_in, 0x41, sizeof(chunk_in));
    chunk_in[0] = 0;
    chunk_in[1] = 0;
    chunk_in[2] = 187;
    chunk_in[3] = chunk_in[4] = 0;
    memset(tree_in, 0x42, sizeof(tree_in));
    memset(tree_in + 192, 0, 64);
    memset(junk, 0x43, sizeof(junk));
    cr_assert_eq(put_run(run_origin, false), sizeof(run_origin));
    cr_assert_eq(put_run(run_full, true), sizeof(run_full));
}

struct item {
    unsigned classes;
    enum kv_op op;
    enum kv_purpose purpose;
    const char *principal;
    const uint8_t *data; /* SIGN only */
    size_t len;
    enum kv_status want;
    const char *msg; /* substring of the refusal */
};

#define D(x) x, sizeof(x)
#define NO NULL, 0

TestSuite(kvpolicy, .init = setup);

Test(kvpolicy, every_class_operation_and_principal)
{
    const struct item t[] = {
        /* the relay */
        {R, KV_OP_SIGN, KV_PURPOSE_ORIGIN, "ex.org", D(run_origin), KV_OK, NULL},
        {R, KV_OP_SIGN_BEGIN, KV_PURPOSE_ORIGIN, "ex.org", NO, KV_OK, NULL},
        {R, KV_OP_SIGN, KV_PURPOSE_ORIGIN, "ex.org", D(junk), KV_E_PURPOSE,
         "not signed: origin signature input: "},
        {R, KV_OP_SIGN, KV_PURPOSE_ORIGIN, "ex.org", D(run_full), KV_E_PURPOSE,
         "ends with chunk 225"},
        {R, KV_OP_SIGN, KV_PURPOSE_CHUNK, "a@ex.org", D(chunk_in), KV_E_DENIED,
         "relay may sign only origin signatures of ex.org"},
        {R, KV_OP_SIGN, KV_PURPOSE_CHUNK, "ex.org", D(chunk_in), KV_E_DENIED,
         "relay may sign only origin signatures of ex.org"},
        {R, KV_OP_SIGN, KV_PURPOSE_SIGNET, "ex.org", D(junk), KV_E_PURPOSE,
         "signet signatures are made by dimectl"},
        {R, KV_OP_SIGN_BEGIN, KV_PURPOSE_TLS, "ex.org", NO, KV_E_PURPOSE,
         "tls signatures are made by dimectl"},
        {R, KV_OP_SIGN, KV_PURPOSE_ORIGIN, "other.org", D(run_origin), KV_E_DENIED,
         "relay may use only ex.org and its users"},
        {R, KV_OP_KEK, 0, "ex.org", NO, KV_OK, NULL},
        {R, KV_OP_KEK, 0, "a@ex.org", NO, KV_E_DENIED, "relay may derive only the KEK of ex.org"},
        {R, KV_OP_UNWRAP, 0, "ex.org", NO, KV_E_DENIED, "relay may not unwrap"},
        {R, KV_OP_UNWRAP, 0, "a@ex.org", NO, KV_E_DENIED, "relay may not unwrap"},
        {R, KV_OP_SIGNET, 0, "a@ex.org", NO, KV_OK, NULL},
        {R, KV_OP_HISTORY, 0, "a@ex.org", NO, KV_OK, NULL},
        {R, KV_OP_ACCOUNT, 0, "a@ex.org", NO, KV_OK, NULL},
        {R, KV_OP_SIGNET, 0, "a@other.org", NO, KV_E_DENIED, "may use only ex.org"},
        {R, KV_OP_SIGNET, 0, "sub.ex.org", NO, KV_E_DENIED, "may use only ex.org"},
        /* the milter */
        {M, KV_OP_SIGN, KV_PURPOSE_CHUNK, "a@ex.org", D(chunk_in), KV_OK, NULL},
        {M, KV_OP_SIGN, KV_PURPOSE_AUTHOR_TREE, "a@ex.org", D(tree_in), KV_OK, NULL},
        {M, KV_OP_SIGN, KV_PURPOSE_AUTHOR_FULL, "a@ex.org", D(run_full), KV_OK, NULL},
        {M, KV_OP_SIGN, KV_PURPOSE_AUTHOR_FULL, "a@ex.org", D(run_origin), KV_E_PURPOSE,
         "not signed: author full signature input: ends with chunk 33"},
        {M, KV_OP_SIGN, KV_PURPOSE_CHUNK, "a@ex.org", D(tree_in), KV_E_PURPOSE,
         "not signed: chunk signature input"},
        {M, KV_OP_SIGN, KV_PURPOSE_AUTHOR_TREE, "a@ex.org", D(chunk_in), KV_E_PURPOSE,
         "not signed: author tree signature input"},
        {M, KV_OP_SIGN_BEGIN, KV_PURPOSE_AUTHOR_FULL, "a@ex.org", NO, KV_OK, NULL},
        {M, KV_OP_SIGN, KV_PURPOSE_ORIGIN, "ex.org", D(run_origin), KV_E_DENIED,
         "milter may sign only author signatures"},
        {M, KV_OP_SIGN_BEGIN, KV_PURPOSE_ORIGIN, "ex.org", NO, KV_E_DENIED,
         "milter may sign only author signatures"},
        {M, KV_OP_SIGN, KV_PURPOSE_CHUNK, "a@other.org", D(chunk_in), KV_E_DENIED,
         "milter may use only ex.org and its users"},
        {M, KV_OP_KEK, 0, "a@ex.org", NO, KV_OK, NULL},
        {M, KV_OP_UNWRAP, 0, "a@ex.org", NO, KV_OK, NULL},
        {M, KV_OP_KEK, 0, "ex.org", NO, KV_E_DENIED, "milter may use only the keys of users"},
        {M, KV_OP_UNWRAP, 0, "ex.org", NO, KV_E_DENIED, "milter may use only the keys of users"},
        {M, KV_OP_HISTORY, 0, "a@ex.org", NO, KV_OK, NULL},
        {M, KV_OP_SIGNET, 0, "ex.org", NO, KV_OK, NULL},
        {M, KV_OP_ACCOUNT, 0, "a@ex.org", NO, KV_OK, NULL},
        /* both classes: either's permission */
        {R | M, KV_OP_SIGN, KV_PURPOSE_CHUNK, "a@ex.org", D(chunk_in), KV_OK, NULL},
        {R | M, KV_OP_SIGN, KV_PURPOSE_ORIGIN, "ex.org", D(run_origin), KV_OK, NULL},
        {R | M, KV_OP_UNWRAP, 0, "ex.org", NO, KV_E_DENIED, "relay may not unwrap"},
        {R | M, KV_OP_SIGN, KV_PURPOSE_SIGNET, "ex.org", D(junk), KV_E_PURPOSE, "dimectl"},
        /* neither */
        {0, KV_OP_SIGNET, 0, "ex.org", NO, KV_E_DENIED,
         "none of relay-users, milter-users and account-users"},
        {0, KV_OP_ACCOUNT, 0, "a@ex.org", NO, KV_E_DENIED, "none of"},
        {0, KV_OP_SIGN, KV_PURPOSE_CHUNK, "a@ex.org", D(chunk_in), KV_E_DENIED, "none of"},
        /* the account service: a user's device's operations, for the domain's users only */
        {A, KV_OP_ENROLL, 0, "a@ex.org", NO, KV_OK, NULL},
        {A, KV_OP_ROTATE, 0, "a@ex.org", NO, KV_OK, NULL},
        {A, KV_OP_BLOB, 0, "a@ex.org", NO, KV_OK, NULL},
        {A, KV_OP_HISTORY, 0, "a@ex.org", NO, KV_OK, NULL},
        {A, KV_OP_ACCOUNT, 0, "a@ex.org", NO, KV_OK, NULL},
        {A, KV_OP_SIGNET, 0, "ex.org", NO, KV_OK, NULL},
        {A, KV_OP_ENROLL, 0, "a@other.org", NO, KV_E_DENIED, "may use only ex.org"},
        {A, KV_OP_ROTATE, 0, "ex.org", NO, KV_E_DENIED, "only for users of ex.org"},
        {A, KV_OP_BLOB, 0, "ex.org", NO, KV_E_DENIED, "only for users of ex.org"},
        {A, KV_OP_SIGN, KV_PURPOSE_CHUNK, "a@ex.org", D(chunk_in), KV_E_DENIED,
         "account service may not sign"},
        {A, KV_OP_SIGN_BEGIN, KV_PURPOSE_AUTHOR_FULL, "a@ex.org", NO, KV_E_DENIED,
         "account service may not sign-begin"},
        {A, KV_OP_KEK, 0, "a@ex.org", NO, KV_E_DENIED, "account service may not kek"},
        {A, KV_OP_UNWRAP, 0, "a@ex.org", NO, KV_E_DENIED, "account service may not unwrap"},
        {A, KV_OP_SIGN, KV_PURPOSE_SIGNET, "ex.org", D(junk), KV_E_PURPOSE, "dimectl"},
        /* only the account service enrolls, rotates and reads key blobs */
        {R, KV_OP_ENROLL, 0, "a@ex.org", NO, KV_E_DENIED, "only the account service"},
        {M, KV_OP_ROTATE, 0, "a@ex.org", NO, KV_E_DENIED, "only the account service"},
        {R | M, KV_OP_BLOB, 0, "a@ex.org", NO, KV_E_DENIED, "only the account service"},
        {A | M, KV_OP_BLOB, 0, "a@ex.org", NO, KV_OK, NULL},
        {A | M, KV_OP_UNWRAP, 0, "a@ex.org", NO, KV_OK, NULL},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct kv_ask a = {t[i].op, t[i].purpose, t[i].principal, "ex.org", t[i].data, t[i].len};
        struct dc_err err = {0};
        enum kv_status st = kv_policy_check(t[i].classes, &a, &err);
        cr_assert_eq(st, t[i].want, "case %zu (%s %s %s): %s, wanted %s (%s)", i,
                     kv_class_name(t[i].classes), kv_op_name(t[i].op), t[i].principal,
                     kv_status_name(st), kv_status_name(t[i].want), err.msg);
        if (t[i].msg != NULL)
            cr_assert(strstr(err.msg, t[i].msg) != NULL, "case %zu: \"%s\" lacks \"%s\"", i,
                      err.msg, t[i].msg);
    }
}

Test(kvpolicy, no_domain_yet_is_not_found)
{
    struct kv_ask a = {KV_OP_SIGNET, 0, "ex.org", NULL, NULL, 0};
    struct dc_err err = {0};
    cr_assert_eq(kv_policy_check(R, &a, &err), KV_E_NOTFOUND);
    cr_assert_str_eq(err.msg, "the vault holds no domain yet");
}
