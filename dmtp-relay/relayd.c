/*
 * dime-relayd - the DMTP relay of a DIME domain. This version is the DX server, serving the
 * local domains' signets (SGNT, VRFY, HIST) over DMTP/TLS from the keyvault's public data,
 * and the local lookup service (LOOKUP.md) that resolves and verifies remote signets for the
 * milter, with a signet cache. It holds no private key: its TLS key is the only secret.
 *
 * It runs in the foreground (a service manager detaches it) and writes its PID to pid-file.
 *
 * Exit status: 0 clean stop, or -n with a valid configuration; 1 configuration or start-up
 * error; 2 usage.
 */
#include "rl_config.h"
#include "rl_lookup.h"
#include "rl_server.h"
#include "rl_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(void)
{
    fprintf(stderr, "usage: dime-relayd [-n] [-c config]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *path = "/etc/dime/dime.conf";
    bool check = false;
    int ch;
    while ((ch = getopt(argc, argv, "c:n")) != -1) {
        switch (ch) {
        case 'c': path = optarg; break;
        case 'n': check = true; break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    struct rl_config cfg;
    struct dc_err err = {0};
    if (rl_config_load(path, true, &cfg, &err) != DC_OK) {
        fprintf(stderr, "dime-relayd: %s\n", err.msg);
        return 1;
    }
    SSL_CTX *tls = NULL, *client = NULL;
    struct rl_lookupd *lk = NULL;
    int rc = 1, lfd = -1;
    if (rl_tls_server_ctx(cfg.tls_cert, cfg.tls_key, &tls, &err) != DC_OK) {
        fprintf(stderr, "dime-relayd: %s\n", err.msg);
        goto out;
    }
    if (check) {
        rc = 0;
        goto out;
    }
    lfd = rl_server_listen(&cfg, &err);
    if (lfd < 0) {
        fprintf(stderr, "dime-relayd: %s\n", err.msg);
        goto out;
    }
    if (rl_tls_client_ctx(cfg.ca_file, &client, &err) != DC_OK ||
        rl_lookupd_start(&cfg, client, &lk, &err) != DC_OK) {
        fprintf(stderr, "dime-relayd: %s\n", err.msg);
        goto out;
    }
    int pidfd = open(cfg.pid_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (pidfd < 0) {
        fprintf(stderr, "dime-relayd: %s: %s\n", cfg.pid_file, strerror(errno));
        rl_lookupd_stop(lk);
        goto out;
    }
    char pid[32];
    int pl = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (write(pidfd, pid, (size_t)pl) != pl)
        fprintf(stderr, "dime-relayd: %s: short write\n", cfg.pid_file);
    close(pidfd);
    rc = rl_server_run(lfd, tls, &cfg, lk);
    rl_lookupd_stop(lk);
    unlink(cfg.pid_file);
out:
    SSL_CTX_free(client);
    if (lfd >= 0)
        close(lfd);
    SSL_CTX_free(tls);
    rl_config_free(&cfg);
    return rc;
}
