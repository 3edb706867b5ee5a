/*
 * dime-milter - the Postfix milter of the DIME gateway: outbound mail of local Trustful
 * senders becomes D/MIME handed to dime-relayd; inbound D/MIME wrappers for local Trustful
 * recipients become the original message again, verified. See dime-milter(8).
 *
 * Trust: the milter holds no key material (the keyvault signs and derives keys), and takes
 * no policy from a message: only dime.conf and the relay's DNSSEC-checked lookups decide.
 * It can be restarted at any time: until the relay acknowledged a submission, Postfix still
 * owns the message, and the milter tempfails.
 */
#include "dc_config.h"
#include "dc_util.h"
#include "mf_config.h"
#include "mf_filter.h"
#include "mf_inject.h"
#include "mf_queue.h"
#include "mf_metrics.h"
#include "dl_log.h"
#include "dl_pidfile.h"
#include "dl_priv.h"
#include "dl_sock.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef DIME_VERSION
#define DIME_VERSION "unknown"
#endif

static void usage(FILE *f)
{
    fprintf(f, "Usage: dime-milter [-c CONFIG] [-n] [-f] [-p SOCKET]\n"
               "  -c CONFIG  configuration file (default " DC_CONFIG_DEFAULT_PATH ")\n"
               "  -n         check the configuration and exit (0 good, 1 bad)\n"
               "  -f         stay in the foreground and log to stderr as well\n"
               "  -p SOCKET  listen here instead of milter { socket } (libmilter syntax)\n"
               "  -V         print the version\n");
}

/* The path of a unix:/local: socket specification, NULL for inet sockets. */
static const char *unix_path(const char *spec)
{
    if (strncmp(spec, "unix:", 5) == 0)
        return spec + 5;
    if (strncmp(spec, "local:", 6) == 0)
        return spec + 6;
    return NULL;
}

/* The group named by socket-group, (gid_t)-1 when none is set. */
static enum dc_status socket_group(const char *name, gid_t *out, struct dc_err *err)
{
    *out = (gid_t)-1;
    if (name == NULL)
        return DC_OK;
    errno = 0;
    struct group *gr = getgrnam(name);
    if (gr == NULL)
        return dc_fail(err, DC_ERR_FIELD, "milter: socket-group: no such group '%.64s'", name);
    *out = gr->gr_gid;
    return DC_OK;
}

/* The unix socket gets the milter's user (when started as root) and socket-group (as root,
 * or as a member of that group), then the process becomes its user. */
static int drop_privileges(const struct dl_priv *p, gid_t sgid, const char *sock)
{
    struct dc_err err = {0};
    const char *path = unix_path(sock);
    bool root = geteuid() == 0 && p->uid != 0;
    uid_t owner = root ? p->uid : (uid_t)-1;
    gid_t group = sgid != (gid_t)-1 ? sgid : root ? p->gid : (gid_t)-1;
    if (path != NULL && dl_sock_chown(path, owner, group) != 0) {
        dl_log(LOG_ERR, "chown %s: %s", path, strerror(errno));
        return -1;
    }
    if (dl_priv_start(p, &err) != DC_OK) {
        dl_log(LOG_ERR, "cannot become %s: %s", p->user, err.msg);
        return -1;
    }
    return 0;
}

/* The configuration as -n checks it: the file, the user, the socket group. */
static enum dc_status load(const char *path, struct mf_config *cfg, struct dl_priv *priv,
                           gid_t *sgid, struct dc_err *err)
{
    struct dc_err e = {0};
    if (mf_config_load(path, cfg, err) != DC_OK)
        return err->code;
    if (dl_priv_config("milter", cfg->user, priv, &e) != DC_OK ||
        socket_group(cfg->socket_group, sgid, &e) != DC_OK) {
        mf_config_free(cfg);
        return dc_fail(err, e.code, "%s: %s", path, e.msg);
    }
    return DC_OK;
}

/* SIGHUP: libmilter waits for SIGHUP, SIGTERM and SIGINT in a thread of its own and stops on
 * any of them. So smfi_main runs in a second thread and this one, the process's first,
 * keeps SIGHUP unblocked: the kernel gives a signal sent to the process to its first thread
 * when that one takes it, so a HUP comes here and a TERM (blocked here) to libmilter. */
static int wake[2] = {-1, -1}; /* 'h': SIGHUP, 'e': smfi_main returned */
static int milter_rc;

static void on_hup(int sig)
{
    (void)sig;
    int e = errno;
    ssize_t w = write(wake[1], "h", 1);
    (void)w;
    errno = e;
}

static void *milter_main(void *arg)
{
    (void)arg;
    milter_rc = smfi_main();
    ssize_t w = write(wake[1], "e", 1);
    (void)w;
    return NULL;
}

/* A configuration that replaced another: kept until exit (sessions may still use it). */
struct retired {
    struct mf_config cfg;
    struct retired *next;
};

/* The options the milter reads per session or per request change at once; the socket, its
 * group, the user, the pid file and the injection record are read at start (a restart). */
static void reload(const char *path, struct mf_config **cur, struct retired **kept)
{
    struct retired *r = dc_xcalloc(1, sizeof(*r));
    struct dl_priv priv;
    gid_t sgid;
    struct dc_err err = {0};
    if (load(path, &r->cfg, &priv, &sgid, &err) != DC_OK) {
        dl_log(LOG_ERR, "reload refused, keeping the running configuration: %s", err.msg);
        free(r);
        return;
    }
    unsigned restart = dc_config_changes((*cur)->tree, r->cfg.tree, DC_MILTER, dl_log_change,
                                         NULL);
    mf_filter_reconfig(&r->cfg);
    *cur = &r->cfg;
    r->next = *kept;
    *kept = r;
    dl_log(LOG_INFO, "reload config=%s result=done domains=%zu restart-needed=%u", path,
           r->cfg.ndomains, restart);
}

/* Runs smfi_main in a thread and reloads on SIGHUP until it returns. */
static int serve(const char *path, struct mf_config *cfg)
{
    struct retired *kept = NULL;
    struct mf_config *cur = cfg;
    sigset_t block, hup;
    sigemptyset(&block);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_hup;
    sa.sa_flags = SA_RESTART;
    pthread_t t;
    if (pipe2(wake, O_CLOEXEC) != 0 || sigaction(SIGHUP, &sa, NULL) != 0 ||
        pthread_sigmask(SIG_BLOCK, &block, NULL) != 0 ||
        pthread_create(&t, NULL, milter_main, NULL) != 0) {
        dl_log(LOG_ERR, "cannot start: %s", strerror(errno));
        return MI_FAILURE;
    }
    pthread_sigmask(SIG_UNBLOCK, &hup, NULL);
    for (;;) {
        char c;
        ssize_t n = read(wake[0], &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != 1 || c == 'e')
            break;
        reload(path, &cur, &kept);
    }
    pthread_join(t, NULL);
    for (struct retired *r = kept, *n; r != NULL; r = n) {
        n = r->next;
        mf_config_free(&r->cfg);
        free(r);
    }
    return milter_rc;
}

int main(int argc, char **argv)
{
    const char *path = DC_CONFIG_DEFAULT_PATH, *sock = NULL;
    bool check = false, foreground = false;
    int c;
    while ((c = getopt(argc, argv, "c:nfp:Vh")) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'n': check = true; break;
        case 'f': foreground = true; break;
        case 'p': sock = optarg; break;
        case 'V': printf("dime-milter %s\n", DIME_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    /* SIGHUP reads the file again, maybe after daemon() changed to / */
    static char abs_path[PATH_MAX];
    const char *reload_path = realpath(path, abs_path) != NULL ? abs_path : path;
    struct mf_config cfg;
    struct dc_err err = {0};
    struct dl_priv priv;
    gid_t sgid;
    if (load(path, &cfg, &priv, &sgid, &err) != DC_OK) {
        fprintf(stderr, "dime-milter: %s\n", err.msg);
        return 1;
    }
    if (check) {
        mf_config_free(&cfg);
        return 0;
    }
    if (sock) {
        free(cfg.socket);
        cfg.socket = dc_xstrdup(sock);
    }
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    dl_log_open("dime-milter", dl_log_where(foreground), cfg_getstr(cfg.tree, "syslog-facility"),
                cfg_getstr(cfg.tree, "syslog-socket"));
    umask(007); /* the unix socket: owner and group (add postfix to the milter's group) */
    if (smfi_setconn(cfg.socket) != MI_SUCCESS || smfi_settimeout((int)cfg.timeout) != MI_SUCCESS ||
        smfi_register(*mf_filter_desc(&cfg)) != MI_SUCCESS) {
        dl_log(LOG_ERR, "cannot set up the milter on %s", cfg.socket);
        mf_config_free(&cfg);
        return 1;
    }
    if (smfi_opensocket(1) != MI_SUCCESS) {
        dl_log(LOG_ERR, "cannot open the milter socket %s", cfg.socket);
        mf_config_free(&cfg);
        return 1;
    }
    /* before the privileges go: the one process that may look into Postfix's incoming/
     * (mf_queue.h); it leaves root for the directory's owner at once */
    struct mf_queue *pfq = NULL;
    if (cfg.injection_db && cfg.pf_queue_dir &&
        mf_queue_start(cfg.pf_queue_dir, &pfq, &err) != DC_OK)
        dl_log(LOG_WARNING, "%s: running without it, a repeated injection whose first attempt "
                            "Postfix never committed is discarded (dime-milter(8))",
               err.msg);
    if (drop_privileges(&priv, sgid, cfg.socket) != 0) {
        mf_queue_stop(pfq);
        mf_config_free(&cfg);
        return 1;
    }
    /* the record of injections, as the milter's user; checked before daemon(), opened
     * again after it (an SQLite connection does not cross a fork) */
    struct mf_injdb *injdb = NULL;
    if (cfg.injection_db && mf_injdb_open(cfg.injection_db, &injdb, &err) != DC_OK) {
        dl_log(LOG_ERR, "injection-database %s", err.msg);
        mf_config_free(&cfg);
        return 1;
    }
    mf_injdb_close(injdb);
    injdb = NULL;
    if (!foreground && daemon(0, 0) != 0) {
        dl_log(LOG_ERR, "daemon: %s", strerror(errno));
        mf_config_free(&cfg);
        return 1;
    }
    if (cfg.injection_db && mf_injdb_open(cfg.injection_db, &injdb, &err) != DC_OK) {
        dl_log(LOG_ERR, "injection-database %s", err.msg);
        mf_config_free(&cfg);
        return 1;
    }
    mf_filter_injdb(injdb, pfq);
    if (!injdb)
        dl_log(LOG_WARNING, "injection-database is empty: a message dime-relayd injects again "
                            "after a crash is delivered twice");
    /* written as the milter's user, after daemon(): its directory must be the user's */
    struct dl_pidfile pidfile = DL_PIDFILE_INIT;
    if (cfg.pid_file && (dl_pidfile_open(&pidfile, cfg.pid_file, &err) != DC_OK ||
                         dl_pidfile_write(&pidfile, &err) != DC_OK))
        dl_log(LOG_WARNING, "%s", err.msg);
    /* the metrics socket, as the milter's user after daemon() (the thread must be ours) */
    int mfd = cfg.metrics_socket == NULL ? -1
              : dl_sock_listen(cfg.metrics_socket, 0660, DL_SOCK_KEEP_UID, DL_SOCK_KEEP_GID,
                               16, &err);
    if ((cfg.metrics_socket != NULL && mfd < 0) || mf_metrics_start(mfd, &err) != DC_OK) {
        dl_log(LOG_ERR, "metrics-socket: %s", err.msg);
        dl_pidfile_remove(&pidfile);
        mf_config_free(&cfg);
        return 1;
    }
    dl_log(LOG_INFO, "dime-milter %s starting on %s (%zu local domains)", DIME_VERSION,
           cfg.socket, cfg.ndomains);
    int rc = serve(reload_path, &cfg);
    dl_log(LOG_INFO, "dime-milter stopping (status %d)", rc);
    /* sessions may still be running (libmilter does not wait for them): the record is
     * closed, its struct stays reachable through mf_filter_injdb until the process exits */
    mf_injdb_shut(injdb);
    mf_metrics_stop();
    if (mfd >= 0)
        unlink(cfg.metrics_socket);
    dl_pidfile_remove(&pidfile);
    const char *up = unix_path(cfg.socket);
    if (up)
        unlink(up);
    mf_config_free(&cfg);
    return rc == MI_SUCCESS ? 0 : 1;
}
