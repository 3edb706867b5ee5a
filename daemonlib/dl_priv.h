/*
 * dl_priv - the one privilege drop of the daemons.
 *
 * A daemon started as root does what needs root first (binding its sockets and ports,
 * reading secrets only root may read), then becomes its configured user for good: the
 * supplementary groups become the user's own (the group database, as at a login), then the
 * real, effective and saved group ids, then the three user ids. Afterwards the drop is
 * checked rather than trusted: every id must be the target, and asking for uid 0 or gid 0
 * again must fail. A daemon that cannot prove it is no longer root refuses to go on.
 *
 * A daemon not started as root has nothing to drop and stays who it is (a service manager
 * that starts it as its user, or a test).
 */
#ifndef DL_PRIV_H
#define DL_PRIV_H

#include "dc_util.h"

#include <sys/types.h>

struct dl_priv {
    const char *user; /* the name, for the group database and messages */
    uid_t uid;
    gid_t gid;
};

/* Looks up user (a name) and group (a name; NULL or "" for the user's primary group). The
 * result points to user, which must outlive it. Unknown names, and a user or group with id
 * 0, are errors: running as root is not a drop. */
enum dc_status dl_priv_lookup(const char *user, const char *group, struct dl_priv *out,
                              struct dc_err *err);

/* Becomes p's user when the effective uid is 0 (see above), else does nothing. An error
 * leaves the process in an unknown state between root and the user: exit. */
enum dc_status dl_priv_drop(const struct dl_priv *p, struct dc_err *err);

/* DC_OK when all real, effective and saved ids are uid and gid and neither uid 0 nor gid 0
 * can be taken again. The check tries setuid(0) and setgid(0): a process for which they
 * succeed was root (or is again) and must not continue. */
enum dc_status dl_priv_verify(uid_t uid, gid_t gid, struct dc_err *err);

#endif
