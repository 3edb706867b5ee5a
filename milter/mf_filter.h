/*
 * mf_filter - dime-milter's libmilter callbacks: which messages are inbound wrappers, which
 * are outbound mail of local Trustful senders, and what to answer (mf_policy.h decides,
 * mf_inbound.h and mf_outbound.h convert). Wrappers dime-relayd injects again after an
 * unknown outcome are discarded (mf_inject.h), unless Postfix never committed the earlier
 * attempt (mf_queue.h).
 */
#ifndef MF_FILTER_H
#define MF_FILTER_H

#include "mf_config.h"

#include <libmilter/mfapi.h>

/* The filter description for smfi_register; cfg must outlive the milter. */
struct smfiDesc *mf_filter_desc(const struct mf_config *cfg);
/* The record of accepted injections (mf_inject.h); NULL: repeats are not detected. */
struct mf_injdb;
struct mf_queue;
/* q: postfix-queue-directory's helper (mf_queue.h), NULL without one. */
void mf_filter_injdb(struct mf_injdb *db, struct mf_queue *q);
/* SIGHUP: sessions use c from now on; the caller keeps the one it replaces until exit. */
void mf_filter_reconfig(const struct mf_config *c);

#endif
