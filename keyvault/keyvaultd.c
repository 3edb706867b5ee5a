/*
 * dime-keyvaultd - the DIME key custody daemon: the only process that holds private keys.
 * It signs, derives KEKs and unwraps key slots for the milter and the relay over a Unix
 * socket (daemonlib/KEYVAULT.md), checking each peer's uid per operation.
 *
 * Start-up order (see dime-keyvaultd(8)): configuration; core dumps off; listening socket;
 * master secret; PID file opened; privileges dropped to `user` (when started as root);
 * database opened and the master key checked against it; then detach (unless -f) and serve.
 *
 * Exit status: 0 clean stop or -n with a valid configuration; 1 configuration error or any
 * start-up failure; 2 usage error.
 */
#include "dc_config.h"
#include "kv_config.h"
#include "dl_log.h"
#include "dl_pidfile.h"
#include "dl_priv.h"
#include "kv_server.h"
#include "kv_vault.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <syslog.h>
#include <unistd.h>

static void usage(void)
{
    fprintf(stderr, "usage: dime-keyvaultd [-f] [-n] [-c config]\n");
    exit(2);
}

static int fail(const char *what, const struct dc_err *err)
{
    dl_log(LOG_ERR, "fatal: %s: %s", what, err->msg);
    return 1;
}

static int drop_privileges(const struct kv_config *c, struct dc_err *err)
{
    struct dl_priv p = {c->user, c->uid, c->gid};
    if (dl_priv_start(&p, err) != DC_OK)
        return -1;
    prctl(PR_SET_DUMPABLE, 0); /* a uid change resets it */
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = DC_CONFIG_DEFAULT_PATH;
    bool foreground = false, check = false;
    int ch;
    while ((ch = getopt(argc, argv, "c:fn")) != -1) {
        switch (ch) {
        case 'c': path = optarg; break;
        case 'f': foreground = true; break;
        case 'n': check = true; break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    /* SIGHUP reads the file again, maybe after daemon() changed to / */
    static char abs_path[PATH_MAX];
    const char *reload_path = realpath(path, abs_path) != NULL ? abs_path : path;

    struct kv_config cfg;
    struct dc_err err = {0};
    if (kv_config_load(path, &cfg, &err) != DC_OK) {
        fprintf(stderr, "dime-keyvaultd: %s\n", err.msg);
        return 1;
    }
    if (check) {
        kv_config_free(&cfg);
        return 0;
    }
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    prctl(PR_SET_DUMPABLE, 0);
    dl_log_open("dime-keyvaultd", dl_log_where(foreground),
                cfg_getstr(cfg.tree, "syslog-facility"), cfg_getstr(cfg.tree, "syslog-socket"));

    struct kv_secret sec;
    struct kv_vault *vault = NULL;
    struct dl_pidfile pidfile = DL_PIDFILE_INIT;
    int rc = 1;
    int lfd = kv_server_listen(&cfg, &err);
    if (lfd < 0) {
        rc = fail("socket", &err);
        goto out;
    }
    if (kv_secret_load(cfg.master_key_file, cfg.passphrase_file, &sec, &err) != DC_OK) {
        rc = fail("master secret", &err);
        goto out;
    }
    if (!foreground) {
        if (dl_pidfile_open(&pidfile, cfg.pid_file, &err) != DC_OK) {
            kv_secret_clear(&sec);
            rc = fail("pid file", &err);
            goto out;
        }
    }
    if (drop_privileges(&cfg, &err) != 0) {
        kv_secret_clear(&sec);
        rc = fail("privileges", &err);
        goto out;
    }
    struct kv_store *store = NULL;
    if (kv_store_open(cfg.store, cfg.database, cfg.store_conninfo, &store, &err) != DC_OK) {
        kv_secret_clear(&sec);
        rc = fail("database", &err);
        goto out;
    }
    if (kv_vault_open_store(store, &sec, &vault, &err) != DC_OK) {
        rc = fail("database", &err);
        goto out;
    }
    if (!foreground) {
        if (daemon(0, 0) != 0) {
            dc_fail(&err, DC_ERR_IO, "daemon: %s", strerror(errno));
            rc = fail("detach", &err);
            goto out;
        }
        if (dl_pidfile_write(&pidfile, &err) != DC_OK)
            dl_log(LOG_WARNING, "%s", err.msg);
    }
    dl_log(LOG_INFO, "started uid=%u", (unsigned)getuid());
    rc = kv_server_run(lfd, vault, &cfg, reload_path);
    unlink(cfg.socket);
    dl_pidfile_remove(&pidfile);
out:
    if (lfd >= 0)
        close(lfd);
    if (pidfile.fd >= 0) /* a failed start: close it, keep the file of whoever runs */
        close(pidfile.fd);
    kv_vault_close(vault);
    kv_config_free(&cfg);
    return rc;
}
