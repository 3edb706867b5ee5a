/*
 * rl_signets - the DX server's answers to SGNT, VRFY and HIST for the local domains, from the
 * keyvault (public data only). They run on a worker thread of rl_server (the keyvault may be
 * slow: SQLite waits up to 5 s for its lock), never on the DMTP loop, which keeps serving the
 * other connections and answers 476 itself when the keyvault does not within keyvault-timeout.
 *
 * Replies: SGNT 250 OK [signet] (451 when it does not fit on one line), VRFY 250 CURRENT or
 * 250 UPDATE [fp], HIST 250-[signet] lines then 250 OK; 576 not a local domain or no such
 * signet or history; 476 keyvault unavailable or failing.
 */
#ifndef RL_SIGNETS_H
#define RL_SIGNETS_H

#include "dc_dmtp.h"
#include "rl_config.h"

struct kv_client;

/* Appends the reply to cmd (SGNT, VRFY or HIST with a user address) to out and returns its
 * code. kv NULL: the keyvault is unreachable (476). A failure of the keyvault is described in
 * why (empty otherwise) for the caller's log. */
int rl_signets_answer(const struct rl_config *cfg, struct kv_client *kv,
                      const struct dc_dmtp_cmd *cmd, struct dc_buf *out, char *why, size_t wl);

#endif
