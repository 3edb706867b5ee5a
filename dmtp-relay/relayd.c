/*
 * dime-relayd - the DMTP relay of a DIME domain: the DX server (signets over DMTP/TLS from
 * the keyvault's public data, and inbound mail: rl_server.h, rl_inbound.h), the local lookup
 * service (LOOKUP.md), the submission service for the milter (SUBMIT.md), outbound delivery
 * from the durable queue (rl_deliver.h, rl_queue.h) and injection of inbound mail and DSNs
 * into Postfix (rl_inject.h). It holds no private key: its TLS key is the only secret; the
 * origin signatures and the destination key slots go through the keyvault.
 *
 * It runs in the foreground (a service manager detaches it) and writes its PID to pid-file.
 *
 * Exit status: 0 clean stop, or -n with a valid configuration; 1 configuration or start-up
 * error; 2 usage.
 */
#include "dc_config.h"
#include "dl_log.h"
#include "dl_pidfile.h"
#include "dl_priv.h"
#include "dl_sock.h"
#include "rl_config.h"
#include "rl_deliver.h"
#include "rl_dual.h"
#include "rl_inject.h"
#include "rl_lookup.h"
#include "rl_metrics.h"
#include "rl_queue.h"
#include "rl_server.h"
#include "rl_shared.h"
#include "rl_submit.h"
#include "dl_tls.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(void)
{
    fprintf(stderr, "usage: dime-relayd [-f] [-n] [-c config]\n");
    exit(2);
}

/* The lookup and submission sockets (mode 0660), made while still root when started as root:
 * their directory may be writable by root only. They belong to the user the relay becomes,
 * as they would if that user had made them. */
static int local_socket(const struct rl_config *cfg, const char *path, struct dc_err *err)
{
    bool drop = cfg->uid != 0 && geteuid() == 0;
    return dl_sock_listen(path, 0660, drop ? cfg->uid : DL_SOCK_KEEP_UID,
                          drop ? cfg->gid : DL_SOCK_KEEP_GID, 128, err);
}

int main(int argc, char **argv)
{
    const char *path = DC_CONFIG_DEFAULT_PATH;
    bool check = false, foreground = false;
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
    /* a SIGHUP while starting waits for the server loop, which reloads; it never ends us */
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    sigprocmask(SIG_BLOCK, &hup, NULL);
    dl_log_init("dime-relayd", DL_LOG_STDERR); /* until the file names where lines go */
    struct rl_config cfg;
    struct dc_err err = {0};
    if (rl_config_load(path, true, &cfg, &err) != DC_OK) {
        dl_log(LOG_ERR, "%s", err.msg);
        return 1;
    }
    if (!check)
        dl_log_open("dime-relayd", dl_log_where(foreground),
                    cfg_getstr(cfg.tree, "syslog-facility"), cfg_getstr(cfg.tree, "syslog-socket"));
    SSL_CTX *tls = NULL, *client = NULL;
    struct rl_lookupd *lk = NULL;
    struct rl_delivery *dl = NULL;
    struct rl_injector *inj = NULL;
    struct rl_submitd *sub = NULL;
    struct rl_metricsd *met = NULL;
    int rc = 1, lfd = -1, dual_fd = -1, lookup_fd = -1, submit_fd = -1, met_fd = -1, met_tcp = -1;
    struct dl_pidfile pidfile = DL_PIDFILE_INIT;
    if (dl_tls_server_ctx(cfg.tls_cert, cfg.tls_key, &tls, &err) != DC_OK) {
        dl_log(LOG_ERR, "%s", err.msg);
        goto out;
    }
    if (check) {
        rc = 0;
        goto out;
    }
    lfd = rl_server_listen(&cfg, &err);
    /* the dual-mode front's port (25) is bound as root too */
    if (lfd >= 0 && cfg.dual_mode_listen != NULL &&
        (dual_fd = rl_dual_listen(cfg.dual_mode_listen, &err)) < 0) {
        close(lfd);
        lfd = -1;
    }
    if (lfd < 0) {
        dl_log(LOG_ERR, "%s", err.msg);
        goto out;
    }
    /* the pid-file exists before anything serves (the port already accepts connections) */
    if (dl_pidfile_open(&pidfile, cfg.pid_file, &err) != DC_OK ||
        dl_pidfile_write(&pidfile, &err) != DC_OK) {
        dl_log(LOG_ERR, "%s", err.msg);
        dl_pidfile_remove(&pidfile);
        goto out;
    }
    /* the last steps as root (when started as root): the local sockets, then the drop; the
     * threads below start as the relay's user and open the queue and the cache as it */
    lookup_fd = local_socket(&cfg, cfg.lookup_socket, &err);
    if (lookup_fd >= 0)
        submit_fd = local_socket(&cfg, cfg.submit_socket, &err);
    bool met_ok = submit_fd >= 0 && (cfg.metrics_socket == NULL ||
                                     (met_fd = local_socket(&cfg, cfg.metrics_socket, &err)) >= 0) &&
                  (cfg.metrics_listen == NULL ||
                   (met_tcp = rl_metrics_listen_tcp(cfg.metrics_listen, &err)) >= 0);
    struct dl_priv priv = {cfg.user, cfg.uid, cfg.gid};
    /* the shared state (state = postgresql) is reached and migrated before anything serves */
    if (!met_ok || dl_priv_start(&priv, &err) != DC_OK ||
        (cfg.state_pg && rl_shared_start(cfg.state_conninfo, cfg.queue_database, &err) != DC_OK)) {
        dl_log(LOG_ERR, "%s", err.msg);
        if (lookup_fd >= 0)
            unlink(cfg.lookup_socket);
        if (submit_fd >= 0)
            unlink(cfg.submit_socket);
        if (met_fd >= 0)
            unlink(cfg.metrics_socket);
        dl_pidfile_remove(&pidfile);
        goto out;
    }
    /* SIGTERM, SIGINT and SIGHUP are blocked in every thread but the server loop's ppoll */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, NULL);
    if (dl_tls_client_ctx(cfg.ca_file, &client, &err) != DC_OK ||
        rl_lookupd_start(&cfg, client, lookup_fd, &lk, &err) != DC_OK ||
        rl_delivery_start(&cfg, client, &dl, &err) != DC_OK ||
        rl_injector_start(&cfg, &inj, &err) != DC_OK ||
        rl_submitd_start(&cfg, submit_fd, rl_delivery_wake, dl, &sub, &err) != DC_OK ||
        rl_metricsd_start(&cfg, met_fd, met_tcp, &met, &err) != DC_OK) {
        dl_log(LOG_ERR, "%s", err.msg);
        rl_submitd_stop(sub);
        rl_injector_stop(inj);
        rl_delivery_stop(dl);
        rl_lookupd_stop(lk);
        if (met_fd >= 0)
            unlink(cfg.metrics_socket);
        dl_pidfile_remove(&pidfile);
        goto out;
    }
    struct rl_server_mail mail = {client, rl_injector_wake, inj, dual_fd};
    dual_fd = -1; /* the server's from here on */
    rc = rl_server_run(lfd, tls, &cfg, reload_path, lk, &mail);
    rl_metricsd_stop(met);
    if (met_fd >= 0)
        unlink(cfg.metrics_socket);
    rl_submitd_stop(sub);
    rl_delivery_stop(dl);
    rl_injector_stop(inj);
    rl_lookupd_stop(lk);
    rl_queue_pool_drain();
    dl_dns_drain();
    dl_pidfile_remove(&pidfile);
out:
    rl_shared_stop();
    SSL_CTX_free(client);
    if (lfd >= 0)
        close(lfd);
    if (dual_fd >= 0)
        close(dual_fd);
    SSL_CTX_free(tls);
    rl_config_free(&cfg);
    return rc;
}
