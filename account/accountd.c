/*
 * dime-accountd - the account service of users' own devices (dime-accountd(8)): over TLS, a
 * Cautious or Paranoid user's dime-client logs in with the password Dovecot checks, enrolls
 * its first key generation, rotates with a custody signature, fetches its sealed key blob
 * and its signet history (daemonlib/ACCOUNT.md). The keyvault signs and stores; this process
 * holds no DIME key, only its TLS key, and never a user's password beyond one request.
 *
 * One thread per connection, at most max-clients at once; started as root it binds the port
 * and reads the TLS key, then becomes its user.
 */
#include "ac_config.h"
#include "ac_session.h"

#include "dc_config.h"
#include "dl_log.h"
#include "dl_pidfile.h"
#include "dl_priv.h"
#include "dl_sock.h"
#include "dl_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

static volatile sig_atomic_t got_term;
static atomic_uint active;

static void on_term(int sig)
{
    (void)sig;
    got_term = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: dime-accountd [-c dime.conf] [-f] [-n]\n");
    exit(2);
}

static int fail(const char *what, const struct dc_err *err)
{
    dl_log(LOG_ERR, "fatal: %s: %s", what, err->msg);
    return 1;
}

struct job {
    const struct ac_config *cfg;
    SSL_CTX *tls;
    int fd;
    char rip[64];
};

static void *serve(void *arg)
{
    struct job *j = arg;
    ac_session_run(j->cfg, j->tls, j->fd, j->rip);
    free(j);
    atomic_fetch_sub(&active, 1);
    return NULL;
}

static void peer_of(const struct sockaddr_storage *ss, char *out, size_t len)
{
    const void *a = ss->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                                              : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    if (inet_ntop(ss->ss_family, a, out, (socklen_t)len) == NULL)
        snprintf(out, len, "unknown");
}

static int run(int lfd, const struct ac_config *cfg, SSL_CTX *tls)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (!got_term) {
        struct pollfd p = {lfd, POLLIN, 0};
        if (poll(&p, 1, 1000) <= 0)
            continue;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        struct job *j = dc_xcalloc(1, sizeof(*j));
        j->cfg = cfg;
        j->tls = tls;
        j->fd = fd;
        peer_of(&ss, j->rip, sizeof(j->rip));
        if (atomic_fetch_add(&active, 1) >= cfg->max_clients) {
            atomic_fetch_sub(&active, 1);
            dl_log(LOG_WARNING, "op=accept ip=%s result=refused reason=\"max-clients %u "
                   "reached\"", j->rip, cfg->max_clients);
            close(fd);
            free(j);
            continue;
        }
        pthread_t t;
        if (pthread_create(&t, &attr, serve, j) != 0) {
            atomic_fetch_sub(&active, 1);
            close(fd);
            free(j);
        }
    }
    pthread_attr_destroy(&attr);
    /* connections under way end within their timeout; wait for them that long at most */
    for (unsigned i = 0; atomic_load(&active) > 0 && i < cfg->timeout * 10; i++)
        usleep(100000);
    dl_log(LOG_INFO, "stopped");
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
    struct ac_config cfg;
    struct dc_err err = {0};
    if (ac_config_load(path, &cfg, &err) != DC_OK) {
        fprintf(stderr, "dime-accountd: %s\n", err.msg);
        return 1;
    }
    if (check) {
        ac_config_free(&cfg);
        return 0;
    }
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    prctl(PR_SET_DUMPABLE, 0);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGHUP, SIG_IGN); /* the options apply at a restart only (dime-accountd(8)) */
    dl_log_open("dime-accountd", dl_log_where(foreground),
                cfg_getstr(cfg.tree, "syslog-facility"), cfg_getstr(cfg.tree, "syslog-socket"));
    SSL_CTX *tls = NULL;
    struct dl_pidfile pidfile = DL_PIDFILE_INIT;
    int rc = 1;
    int lfd = dl_sock_listen_tcp(cfg.listen_address, cfg.listen_port, &err);
    if (lfd < 0) {
        rc = fail("listen", &err);
        goto out;
    }
    if (dl_tls_server_ctx(cfg.tls_certificate, cfg.tls_key, &tls, &err) != DC_OK) {
        rc = fail("tls", &err);
        goto out;
    }
    if (!foreground && dl_pidfile_open(&pidfile, cfg.pid_file, &err) != DC_OK) {
        rc = fail("pid file", &err);
        goto out;
    }
    struct dl_priv p = {cfg.user, cfg.uid, cfg.gid};
    if (dl_priv_start(&p, &err) != DC_OK) {
        rc = fail("privileges", &err);
        goto out;
    }
    prctl(PR_SET_DUMPABLE, 0); /* a uid change resets it */
    if (!foreground) {
        if (daemon(0, 0) != 0) {
            dc_fail(&err, DC_ERR_IO, "daemon: %s", strerror(errno));
            rc = fail("detach", &err);
            goto out;
        }
        if (dl_pidfile_write(&pidfile, &err) != DC_OK)
            dl_log(LOG_WARNING, "%s", err.msg);
    }
    dl_log(LOG_INFO, "started uid=%u listen=%s:%u", (unsigned)getuid(), cfg.listen_address,
           cfg.listen_port);
    rc = run(lfd, &cfg, tls);
    dl_pidfile_remove(&pidfile);
out:
    if (lfd >= 0)
        close(lfd);
    if (pidfile.fd >= 0)
        close(pidfile.fd);
    SSL_CTX_free(tls);
    ac_config_free(&cfg);
    return rc;
}
