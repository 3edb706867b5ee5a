/*
 * dl_priv - see dl_priv.h.
 */
#include "dl_priv.h"

#include "dl_log.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

enum dc_status dl_priv_lookup(const char *user, const char *group, struct dl_priv *out,
                              struct dc_err *err)
{
    if (user == NULL || user[0] == '\0')
        return dc_fail(err, DC_ERR_ARG, "no user to run as");
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (pw == NULL)
        return dc_fail(err, DC_ERR_NOTFOUND, "user %.64s: %s", user,
                       errno ? strerror(errno) : "no such user");
    out->user = user;
    out->uid = pw->pw_uid;
    out->gid = pw->pw_gid;
    if (group != NULL && group[0] != '\0') {
        errno = 0;
        struct group *gr = getgrnam(group);
        if (gr == NULL)
            return dc_fail(err, DC_ERR_NOTFOUND, "group %.64s: %s", group,
                           errno ? strerror(errno) : "no such group");
        out->gid = gr->gr_gid;
    }
    if (out->uid == 0 || out->gid == 0)
        return dc_fail(err, DC_ERR_ARG, "user %.64s: uid or gid 0 is root, not a drop", user);
    return DC_OK;
}

enum dc_status dl_priv_drop(const struct dl_priv *p, struct dc_err *err)
{
    if (geteuid() != 0)
        return DC_OK;
    if (p->uid == 0 || p->gid == 0)
        return dc_fail(err, DC_ERR_ARG, "user %.64s: uid or gid 0 is root, not a drop", p->user);
    /* groups before the uid: once the uid is not 0, they can no longer be changed */
    if (initgroups(p->user, p->gid) != 0)
        return dc_fail(err, DC_ERR_IO, "initgroups %.64s: %s", p->user, strerror(errno));
    if (setresgid(p->gid, p->gid, p->gid) != 0)
        return dc_fail(err, DC_ERR_IO, "setresgid %u: %s", (unsigned)p->gid, strerror(errno));
    if (setresuid(p->uid, p->uid, p->uid) != 0)
        return dc_fail(err, DC_ERR_IO, "setresuid %u (%.64s): %s", (unsigned)p->uid, p->user,
                       strerror(errno));
    return dl_priv_verify(p->uid, p->gid, err);
}

enum dc_status dl_priv_verify(uid_t uid, gid_t gid, struct dc_err *err)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0)
        return dc_fail(err, DC_ERR_IO, "getresuid/getresgid: %s", strerror(errno));
    if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid)
        return dc_fail(err, DC_ERR_IO, "privilege drop incomplete: uid %u/%u/%u gid %u/%u/%u, "
                       "wanted uid %u gid %u", (unsigned)ru, (unsigned)eu, (unsigned)su,
                       (unsigned)rg, (unsigned)eg, (unsigned)sg, (unsigned)uid, (unsigned)gid);
    /* the proof: the way back must be closed (a kernel or a capability set that still lets
     * us become root again would make the drop worthless) */
    if (setuid(0) == 0 || setgid(0) == 0)
        return dc_fail(err, DC_ERR_IO, "privilege drop ineffective: uid or gid 0 can be taken "
                       "again");
    return DC_OK;
}

enum dc_status dl_priv_config(const char *what, const char *user, struct dl_priv *out,
                              struct dc_err *err)
{
    if (user == NULL || user[0] == '\0')
        return dc_fail(err, DC_ERR_ARG, "%s: user is empty: name the user to run as (user = "
                       "\"root\" keeps a daemon started as root at uid 0; not advised)", what);
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (pw != NULL && pw->pw_uid == 0) {
        *out = (struct dl_priv){user, 0, pw->pw_gid};
        return DC_OK;
    }
    struct dc_err e = {0};
    if (dl_priv_lookup(user, NULL, out, &e) != DC_OK)
        return dc_fail(err, e.code, "%s: %s", what, e.msg);
    return DC_OK;
}

enum dc_status dl_priv_start(const struct dl_priv *p, struct dc_err *err)
{
    if (p->uid != 0)
        return dl_priv_drop(p, err);
    if (geteuid() == 0)
        dl_log(LOG_WARNING, "running as root (user = \"%.64s\" in the configuration): every "
               "flaw in this daemon is a flaw of root; name its own user instead", p->user);
    return DC_OK;
}
