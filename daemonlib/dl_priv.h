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
 *
 * Every daemon's section of dime.conf names its user (`user`, by default the daemon's own:
 * dime-vault, dime-relay, dime-milter). Running as root is never a default: an empty `user`
 * is an error, and only a user whose uid is 0 named there (`user = "root"`) keeps a daemon
 * started as root at uid 0, with a warning in the log at every start (dl_priv_config,
 * dl_priv_start).
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

/* The `user` option of a daemon's section (what = the section's name, for messages): NULL or
 * "" is an error that says how to choose; a user with uid 0 (`user = "root"`) is the explicit
 * choice to stay root, returned with out->uid == 0 and the user's gid; any other user is
 * looked up as by dl_priv_lookup. */
enum dc_status dl_priv_config(const char *what, const char *user, struct dl_priv *out,
                              struct dc_err *err);

/* At start-up, after what needs root: a p from dl_priv_config with uid 0 keeps the process
 * as it is and, when it runs as root, logs a warning naming the option; any other p is
 * dl_priv_drop'ed (nothing to do when not started as root). */
enum dc_status dl_priv_start(const struct dl_priv *p, struct dc_err *err);

#endif
