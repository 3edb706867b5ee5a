/*
 * mf_queue - the process that takes back uncommitted Postfix queue files (see mf_queue.h).
 * One request at a time over a SOCK_SEQPACKET pair: the queue id out, one byte back.
 */
#include "mf_queue.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define QID_MAX 64

struct mf_queue {
    int fd;
    pid_t pid;
    pthread_mutex_t mu;
};

static bool qid_ok(const char *q, size_t n)
{
    if (n == 0 || n > QID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((q[i] >= '0' && q[i] <= '9') || (q[i] >= 'A' && q[i] <= 'Z') ||
              (q[i] >= 'a' && q[i] <= 'z')))
            return false;
    return true;
}

/* The answer for one queue id, in the directory dfd (incoming/). */
static char answer(int dfd, const char *qid)
{
    struct stat st;
    if (fstatat(dfd, qid, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 'A' : 'E';
    if (!S_ISREG(st.st_mode))
        return 'E';
    if ((st.st_mode & S_IRWXU) == S_IRWXU)
        return 'R';
    if (unlinkat(dfd, qid, 0) != 0)
        return errno == ENOENT ? 'A' : 'E';
    return 'W';
}

static void serve(int sock, int dfd)
{
    char qid[QID_MAX + 2];
    for (;;) {
        ssize_t n = recv(sock, qid, sizeof(qid) - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        qid[n] = '\0';
        char a = qid_ok(qid, (size_t)n) ? answer(dfd, qid) : 'E';
        if (send(sock, &a, 1, MSG_NOSIGNAL) != 1)
            return;
    }
}

/* The child: drops to the directory's owner and serves. Never returns. */
static void child(int sock, int dfd)
{
    struct stat st;
    long maxfd = sysconf(_SC_OPEN_MAX);
    for (int fd = 0; fd < (maxfd > 0 && maxfd < 65536 ? maxfd : 1024); fd++)
        if (fd != sock && fd != dfd)
            close(fd);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    if (fstat(dfd, &st) != 0 || st.st_uid == 0)
        _exit(1);
    if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(st.st_gid) != 0 ||
                           setuid(st.st_uid) != 0))
        _exit(1);
    if (geteuid() != st.st_uid)
        _exit(1);
    serve(sock, dfd);
    _exit(0);
}

enum dc_status mf_queue_start(const char *queue_dir, struct mf_queue **out, struct dc_err *err)
{
    *out = NULL;
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/incoming", queue_dir) >= (int)sizeof(path))
        return dc_fail(err, DC_ERR_FIELD, "postfix-queue-directory: too long");
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return dc_fail(err, DC_ERR_IO, "postfix-queue-directory: %s: %s", path,
                       strerror(errno));
    struct stat st;
    if (fstat(dfd, &st) != 0 || st.st_uid == 0) {
        close(dfd);
        return dc_fail(err, DC_ERR_FIELD, "postfix-queue-directory: %s is owned by root, not "
                       "by Postfix's mail_owner", path);
    }
    if (geteuid() != 0 && geteuid() != st.st_uid) {
        close(dfd);
        return dc_fail(err, DC_ERR_IO, "postfix-queue-directory: %s: started as uid %ld, "
                       "neither root nor its owner", path, (long)geteuid());
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        close(dfd);
        return dc_fail(err, DC_ERR_IO, "socketpair: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(dfd);
        close(sv[0]);
        close(sv[1]);
        return dc_fail(err, DC_ERR_IO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(sv[0]);
        child(sv[1], dfd);
    }
    close(sv[1]);
    close(dfd);
    struct mf_queue *q = dc_xcalloc(1, sizeof(*q));
    q->fd = sv[0];
    q->pid = pid;
    pthread_mutex_init(&q->mu, NULL);
    *out = q;
    return DC_OK;
}

enum mf_qstate mf_queue_withdraw(struct mf_queue *q, const char *qid)
{
    size_t n = strlen(qid);
    if (q == NULL || !qid_ok(qid, n))
        return MF_Q_ERROR;
    char a = 'E';
    pthread_mutex_lock(&q->mu);
    if (q->fd >= 0 && send(q->fd, qid, n, MSG_NOSIGNAL) == (ssize_t)n) {
        ssize_t r;
        do
            r = recv(q->fd, &a, 1, 0);
        while (r < 0 && errno == EINTR);
        if (r != 1)
            a = 'E';
    }
    pthread_mutex_unlock(&q->mu);
    return a == 'W' ? MF_Q_WITHDRAWN : a == 'R' ? MF_Q_READY : a == 'A' ? MF_Q_ABSENT
                                                                       : MF_Q_ERROR;
}

void mf_queue_stop(struct mf_queue *q)
{
    if (q == NULL)
        return;
    close(q->fd);
    waitpid(q->pid, NULL, 0);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

const char *mf_qstate_name(enum mf_qstate s)
{
    switch (s) {
    case MF_Q_WITHDRAWN: return "uncommitted, withdrawn";
    case MF_Q_READY: return "committed, in incoming";
    case MF_Q_ABSENT: return "not in incoming";
    default: return "unknown";
    }
}
