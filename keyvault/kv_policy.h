/*
 * kv_policy - what each class of the vault's clients may ask for. The vault, not the caller,
 * decides: a peer's class comes from its uid (SO_PEERCRED) and the configuration
 * (relay-users, milter-users), and kv_policy_check() is the one function that says whether
 * that class may run an operation for a principal with a purpose over given data. A batched
 * operation calls it once per item.
 *
 *   relay   SIGN and SIGN-BEGIN with purpose origin as the vault's organization only, over
 *           data shaped like an origin-signature input; KEK of the organization only;
 *           SIGNET, HISTORY and ACCOUNT for the vault's domain. Never UNWRAP, never a user
 *           key, nothing for another domain.
 *   milter  SIGN and SIGN-BEGIN with the author purposes (chunk, author-tree, author-full)
 *           as users of the vault's domain, over data shaped like that purpose's input; KEK
 *           and UNWRAP for users of the vault's domain (any generation the vault still
 *           holds); SIGNET and ACCOUNT. Never an organization key.
 *   account ENROLL, ROTATE and BLOB (only this class), HISTORY, SIGNET and ACCOUNT, for
 *           users of the vault's domain only (and SIGNET of the domain itself): the account service (dime-accountd) on behalf
 *           of a user its login authenticated. ENROLL and ROTATE make the org's signature on
 *           the user's SSR inside the vault (the vault chooses the key, checks custody), and
 *           no request of this class uses a user's private key: the vault holds none of a
 *           Cautious or Paranoid user.
 *   relay and milter: never ENROLL, ROTATE or BLOB.
 *   any     signet and tls signatures are never made over the socket: dimectl makes them
 *           in-process on the database.
 *
 * A uid in both classes (a test setup running both daemons as one user) may do what either
 * class may; a uid in neither may do nothing.
 */
#ifndef KV_POLICY_H
#define KV_POLICY_H

#include "dc_dmime.h"
#include "kv_proto.h"

#include <stdbool.h>

/* Class bits of a peer. */
#define KV_CLASS_RELAY  1u
#define KV_CLASS_MILTER 2u
#define KV_CLASS_ACCOUNT 4u
#define KV_CLASS_ALL (KV_CLASS_RELAY | KV_CLASS_MILTER | KV_CLASS_ACCOUNT)

/* "relay", "milter", "account", their combinations ("relay+milter") or "none". */
const char *kv_class_name(unsigned classes);

/* One request, or one item of a batch, as the policy sees it. */
struct kv_ask {
    enum kv_op op;           /* SIGN-BEGIN for a whole stream */
    enum kv_purpose purpose; /* SIGN, SIGN-BEGIN */
    const char *principal;   /* normalized (kv_normalize) */
    const char *domain;      /* the vault's domain; NULL when none is set up yet */
    const uint8_t *data;     /* SIGN: the bytes to sign, checked for the purpose's shape
                              * (SIGN-BEGIN: the stream checks them as they come) */
    size_t len;
};

/* KV_OK, or the refusal: KV_E_DENIED (class, operation or principal), KV_E_PURPOSE (a purpose
 * never served over the socket, or data that is not that purpose's input), KV_E_NOTFOUND (no
 * domain yet); err says precisely why, e.g. "relay may sign only origin signatures of
 * example.org". */
enum kv_status kv_policy_check(unsigned classes, const struct kv_ask *a, struct dc_err *err);

/* The shape of the data a signing purpose covers (purposes chunk .. origin). */
enum dc_dmime_input kv_policy_input(enum kv_purpose p);

#endif
