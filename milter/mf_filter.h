/*
 * mf_filter - dime-milter's libmilter callbacks: which messages are inbound wrappers, which
 * are outbound mail of local Trustful senders, and what to answer (mf_policy.h decides,
 * mf_inbound.h and mf_outbound.h convert).
 */
#ifndef MF_FILTER_H
#define MF_FILTER_H

#include "mf_config.h"

#include <libmilter/mfapi.h>

/* The filter description for smfi_register; cfg must outlive the milter. */
struct smfiDesc *mf_filter_desc(const struct mf_config *cfg);

#endif
