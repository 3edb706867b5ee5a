/*
 * rl_submit - the submission service of dime-relayd (protocol: SUBMIT.md). An acceptor
 * thread on submit-socket (mode 0660) hands each connection to a worker thread (at most
 * submit-workers; more get 421). A worker reads the whole request, refuses it when a field
 * breaks its rule, applies the origin organization's signatures to every message through the
 * keyvault (KEK and SIGN as the local domain), and commits all messages in one transaction
 * (rl_queue.h) before it answers 250. A known submission key is answered 250 duplicate
 * before any key is used.
 */
#ifndef RL_SUBMIT_H
#define RL_SUBMIT_H

#include "dc_signet.h"
#include "rl_config.h"
#include "submit_client.h"

struct rl_submitd;
/* fd: the listening socket on submit-socket (dl_sock_listen, made by the caller before it
 * gives up root); the service owns it from here, and closes it when it cannot start.
 * on_commit(ctx) is called after each new commit (to wake the delivery scheduler). */
enum dc_status rl_submitd_start(const struct rl_config *cfg, int fd, void (*on_commit)(void *),
                                void *ctx, struct rl_submitd **out, struct dc_err *err);
/* Stops accepting, waits for running workers, removes the socket. */
void rl_submitd_stop(struct rl_submitd *s);

/* The author's and the origin's signets as one submission's messages need them: fetched
 * from the keyvault for the first message and used for the others (a request carries one
 * sender's message for its recipients). Kept for one request only: a signet may rotate. */
struct rl_origin_signets {
    char author_name[SUBMIT_ADDR_MAX + DC_FP_B64_LEN + 3], origin_name[256 + 2];
    struct dc_signet *author, *origin; /* NULL until fetched */
};
void rl_origin_signets_free(struct rl_origin_signets *sg);

/* The origin step for one submitted message (also used by tests through relayd): parses the
 * D/MIME bytes, opens them as the origin with the keyvault, checks that the envelope's
 * destination is the recipient's domain, that its author is the sender (unless the sender
 * is "<>") and in the origin domain, that the author signet it names is a generation of that
 * author in the vault (current or retained), and the author's signatures; then signs as the
 * origin. The signets come from sg (see above). On failure, code and why hold the SUBMIT.md
 * reply on failure (451 or 554). */
struct kv_client;
enum dc_status rl_origin_sign(struct kv_client *kv, struct rl_origin_signets *sg,
                              const char *origin_domain, const char *sender,
                              const char *recipient, const uint8_t *in, size_t len,
                              uint8_t **out, size_t *outlen, int *code, char *why, size_t wl);

#endif
