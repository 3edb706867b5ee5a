/*
 * kv_policy - the vault's access policy per class of client. See kv_policy.h.
 */
#include "kv_policy.h"

#include <string.h>

const char *kv_class_name(unsigned classes)
{
    static const char *const names[] = {"none", "relay", "milter", "relay+milter", "account",
                                        "relay+account", "milter+account",
                                        "relay+milter+account"};
    return names[classes & KV_CLASS_ALL];
}

enum dc_dmime_input kv_policy_input(enum kv_purpose p)
{
    switch (p) {
    case KV_PURPOSE_AUTHOR_TREE: return DC_DMIME_IN_TREE;
    case KV_PURPOSE_AUTHOR_FULL: return DC_DMIME_IN_AUTHOR_FULL;
    case KV_PURPOSE_ORIGIN: return DC_DMIME_IN_ORIGIN;
    default: return DC_DMIME_IN_CHUNK;
    }
}

static bool is_sign(enum kv_op op)
{
    return op == KV_OP_SIGN || op == KV_OP_SIGN_BEGIN;
}

static bool author_purpose(enum kv_purpose p)
{
    return p == KV_PURPOSE_CHUNK || p == KV_PURPOSE_AUTHOR_TREE || p == KV_PURPOSE_AUTHOR_FULL;
}

/* The relay: the organization's origin signatures and KEK, public data of the domain. */
static enum kv_status relay_may(const struct kv_ask *a, bool org, struct dc_err *err)
{
    switch (a->op) {
    case KV_OP_SIGN:
    case KV_OP_SIGN_BEGIN:
        if (org && a->purpose == KV_PURPOSE_ORIGIN)
            return KV_OK;
        dc_fail(err, DC_ERR_ARG, "relay may sign only origin signatures of %s", a->domain);
        return KV_E_DENIED;
    case KV_OP_KEK:
        if (org)
            return KV_OK;
        dc_fail(err, DC_ERR_ARG, "relay may derive only the KEK of %s itself, not of a user",
                a->domain);
        return KV_E_DENIED;
    case KV_OP_UNWRAP:
        dc_fail(err, DC_ERR_ARG, "relay may not unwrap key slots");
        return KV_E_DENIED;
    case KV_OP_ENROLL:
    case KV_OP_ROTATE:
    case KV_OP_BLOB:
        dc_fail(err, DC_ERR_ARG, "relay may not %s", kv_op_name(a->op));
        return KV_E_DENIED;
    default: /* SIGNET, HISTORY, ACCOUNT: public data of the domain */
        return KV_OK;
    }
}

/* The milter: the author signatures and keys of the domain's users, public data. */
static enum kv_status milter_may(const struct kv_ask *a, bool org, struct dc_err *err)
{
    switch (a->op) {
    case KV_OP_SIGN:
    case KV_OP_SIGN_BEGIN:
        if (!org && author_purpose(a->purpose))
            return KV_OK;
        dc_fail(err, DC_ERR_ARG, "milter may sign only author signatures (chunk, author-tree, "
                "author-full) of users of %s", a->domain);
        return KV_E_DENIED;
    case KV_OP_KEK:
    case KV_OP_UNWRAP:
        if (!org)
            return KV_OK;
        dc_fail(err, DC_ERR_ARG, "milter may use only the keys of users of %s, not of the "
                "organization", a->domain);
        return KV_E_DENIED;
    case KV_OP_ENROLL:
    case KV_OP_ROTATE:
    case KV_OP_BLOB:
        dc_fail(err, DC_ERR_ARG, "milter may not %s", kv_op_name(a->op));
        return KV_E_DENIED;
    default: /* SIGNET, HISTORY (which earlier generations may open a message: mf_inbound),
              * ACCOUNT: public data, served over DMTP too */
        return KV_OK;
    }
}

/* A user's own device, through the account service: a user's account, signets and key blob,
 * never a private-key operation and never the organization. */
static enum kv_status account_may(const struct kv_ask *a, bool org, struct dc_err *err)
{
    if (org && a->op == KV_OP_SIGNET)
        return KV_OK; /* the org signet a device verifies its own signet with */
    if (org) {
        dc_fail(err, DC_ERR_ARG, "account service may act only for users of %s, not for the "
                "organization", a->domain);
        return KV_E_DENIED;
    }
    switch (a->op) {
    case KV_OP_ENROLL:
    case KV_OP_ROTATE:
    case KV_OP_BLOB:
    case KV_OP_KEYS:
    case KV_OP_TO_PARANOID:
    case KV_OP_TO_TRUSTFUL:
    case KV_OP_HISTORY:
    case KV_OP_SIGNET:
    case KV_OP_ACCOUNT:
        return KV_OK;
    default:
        dc_fail(err, DC_ERR_ARG, "account service may not %s: it never uses a private key "
                "but the organization's signet key, inside enroll and rotate",
                kv_op_name(a->op));
        return KV_E_DENIED;
    }
}

static bool device_op(enum kv_op op)
{
    return op == KV_OP_ENROLL || op == KV_OP_ROTATE || op == KV_OP_BLOB || op == KV_OP_KEYS ||
           op == KV_OP_TO_PARANOID || op == KV_OP_TO_TRUSTFUL;
}

/* Whether principal is the domain itself (*org) or one of its users; false: neither. */
static bool of_domain(const char *principal, const char *domain, bool *org)
{
    const char *at = strchr(principal, '@');
    *org = at == NULL;
    return strcmp(at != NULL ? at + 1 : principal, domain) == 0;
}

enum kv_status kv_policy_check(unsigned classes, const struct kv_ask *a, struct dc_err *err)
{
    if ((classes & KV_CLASS_ALL) == 0) {
        dc_fail(err, DC_ERR_ARG, "this uid is in none of relay-users, milter-users and "
                "account-users");
        return KV_E_DENIED;
    }
    if (device_op(a->op) && !(classes & KV_CLASS_ACCOUNT)) {
        dc_fail(err, DC_ERR_ARG, "only the account service (account-users) may %s",
                kv_op_name(a->op));
        return KV_E_DENIED;
    }
    if (is_sign(a->op) && (a->purpose == KV_PURPOSE_SIGNET || a->purpose == KV_PURPOSE_TLS)) {
        dc_fail(err, DC_ERR_ARG, "%s signatures are made by dimectl on the database, never "
                "over the socket", kv_purpose_name(a->purpose));
        return KV_E_PURPOSE;
    }
    if (a->domain == NULL) {
        dc_fail(err, DC_ERR_NOTFOUND, "the vault holds no domain yet");
        return KV_E_NOTFOUND;
    }
    bool org;
    if (!of_domain(a->principal, a->domain, &org)) {
        dc_fail(err, DC_ERR_ARG, "%s may use only %s and its users",
                kv_class_name(classes), a->domain);
        return KV_E_DENIED;
    }
    /* a uid in several classes may do what any of them may; the first refusal is reported */
    struct dc_err other;
    enum kv_status st = KV_E_DENIED;
    bool told = false;
    if (classes & KV_CLASS_RELAY) {
        st = relay_may(a, org, err);
        told = true;
    }
    if (st != KV_OK && (classes & KV_CLASS_MILTER)) {
        st = milter_may(a, org, told ? &other : err);
        told = true;
    }
    if (st != KV_OK && (classes & KV_CLASS_ACCOUNT))
        st = account_may(a, org, told ? &other : err);
    if (st != KV_OK || a->op != KV_OP_SIGN)
        return st;
    struct dc_err why = {0};
    if (dc_dmime_input_check(kv_policy_input(a->purpose), a->data, a->len, &why) != DC_OK) {
        dc_fail(err, DC_ERR_FORMAT, "not signed: %s", why.msg);
        return KV_E_PURPOSE;
    }
    return KV_OK;
}
