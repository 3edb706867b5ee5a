/* The daemons' plumbing in daemonlib: Unix sockets (dl_sock.h) and the privilege drop
 * (dl_priv.h). The socket tests run as any user; the drop itself needs root and runs in a
 * forked child, which is skipped otherwise. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dl_log.h"
#include "dl_priv.h"
#include "dl_sock.h"

static char dir[64];

static void mkdir_tmp(void)
{
    strcpy(dir, "/tmp/test_plumbing.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

/* The tests leave plain files and sockets only. */
static void rm_tmp(void)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, ".."))
            cr_expect_eq(unlinkat(dirfd(d), e->d_name, 0), 0, "%s", e->d_name);
    closedir(d);
    cr_expect_eq(rmdir(dir), 0);
}

static const char *in_dir(const char *name)
{
    static char p[128];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return p;
}

/* A listening socket in the test directory, owner and group left as they come. */
static int listen_at(const char *path, mode_t mode, int backlog)
{
    struct dc_err err = {0};
    int fd = dl_sock_listen(path, mode, DL_SOCK_KEEP_UID, DL_SOCK_KEEP_GID, backlog, &err);
    cr_assert_geq(fd, 0, "%s", err.msg);
    return fd;
}

static long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* A group other than ours when we may give it away (root), else our own. */
static gid_t other_gid(void)
{
    struct dl_priv p;
    if (geteuid() == 0 && dl_priv_lookup("nobody", NULL, &p, NULL) == DC_OK)
        return p.gid;
    return getgid();
}

TestSuite(sock, .init = mkdir_tmp, .fini = rm_tmp);

Test(sock, listen_mode_and_group)
{
    const char *path = in_dir("s.sock");
    gid_t g = other_gid();
    struct dc_err err = {0};
    int fd = dl_sock_listen(path, 0660, DL_SOCK_KEEP_UID, g, 16, &err);
    cr_assert_geq(fd, 0, "%s", err.msg);
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    cr_expect(S_ISSOCK(st.st_mode));
    cr_expect_eq(st.st_mode & 07777, 0660, "mode %o", (unsigned)(st.st_mode & 07777));
    cr_expect_eq(st.st_gid, g);
    cr_expect_eq(st.st_uid, geteuid());
    /* the temporary name is gone */
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid());
    cr_expect_neq(access(tmp, F_OK), 0);
    /* and it serves */
    int c = dl_sock_connect("test", path, 1000, 1000, &err);
    cr_assert_geq(c, 0, "%s", err.msg);
    close(c);
    close(fd);
}

Test(sock, replaces_a_stale_socket_atomically)
{
    const char *path = in_dir("s.sock");
    struct dc_err err = {0};
    int old = listen_at(path, 0600, 16);
    struct stat st1, st2;
    cr_assert_eq(lstat(path, &st1), 0);
    int fresh = listen_at(path, 0660, 16);
    cr_assert_eq(lstat(path, &st2), 0);
    cr_expect_neq(st1.st_ino, st2.st_ino, "the path names the new socket");
    cr_expect_eq(st2.st_mode & 07777, 0660);
    /* a client reaches the new listener, not the old one */
    int c = dl_sock_connect(NULL, path, 1000, 1000, &err);
    cr_assert_geq(c, 0, "%s", err.msg);
    int a = accept(fresh, NULL, NULL);
    cr_expect_geq(a, 0);
    cr_expect_lt(accept(old, NULL, NULL), 0);
    cr_expect_eq(errno, EAGAIN);
    close(a);
    close(c);
    close(old);
    close(fresh);
}

Test(sock, refuses_a_path_that_is_not_a_socket)
{
    const char *path = in_dir("file");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("keep me\n", f);
    fclose(f);
    struct dc_err err = {0};
    cr_expect_lt(dl_sock_listen(path, 0660, DL_SOCK_KEEP_UID, DL_SOCK_KEEP_GID, 16, &err), 0);
    cr_expect_eq(err.code, DC_ERR_IO);
    cr_expect(strstr(err.msg, "exists and is not a socket") != NULL, "%s", err.msg);
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    cr_expect(S_ISREG(st.st_mode) && st.st_size == 8, "the file is untouched");

    struct dc_err e2 = {0};
    cr_expect_lt(dl_sock_listen(dir, 0660, DL_SOCK_KEEP_UID, DL_SOCK_KEEP_GID, 16, &e2), 0);
    cr_expect(strstr(e2.msg, "exists and is not a socket") != NULL, "%s", e2.msg);
}

Test(sock, path_too_long)
{
    char path[200];
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    struct dc_err err = {0};
    cr_expect_lt(dl_sock_listen(path, 0660, DL_SOCK_KEEP_UID, DL_SOCK_KEEP_GID, 16, &err), 0);
    cr_expect_eq(err.code, DC_ERR_ARG);
    struct dc_err e2 = {0};
    cr_expect_lt(dl_sock_connect("keyvault", path, 100, 100, &e2), 0);
    cr_expect_eq(e2.code, DC_ERR_ARG);
    cr_expect(strstr(e2.msg, "keyvault socket path") != NULL, "%s", e2.msg);
}

Test(sock, connect_errors_name_peer_path_and_cause)
{
    const char *path = in_dir("gone.sock");
    struct dc_err err = {0};
    cr_expect_lt(dl_sock_connect("keyvault", path, 100, 100, &err), 0);
    cr_expect_eq(err.code, DC_ERR_IO);
    char want[200];
    snprintf(want, sizeof(want), "keyvault %s: connect: %s", path, strerror(ENOENT));
    cr_expect(strstr(err.msg, want) == err.msg, "%s", err.msg);

    /* a socket file nobody listens on any more */
    close(listen_at(path, 0600, 16));
    struct dc_err e2 = {0};
    cr_expect_lt(dl_sock_connect("relay lookup", path, 100, 100, &e2), 0);
    snprintf(want, sizeof(want), "relay lookup %s: connect: %s", path, strerror(ECONNREFUSED));
    cr_expect(strstr(e2.msg, want) == e2.msg, "%s", e2.msg);
}

Test(sock, connect_times_out_on_a_full_listen_queue)
{
    const char *path = in_dir("full.sock");
    struct dc_err err = {0};
    int fd = listen_at(path, 0600, 0);
    /* nobody accepts: the queue fills after a connection or two, then connect() waits */
    int held[8], n = 0, c = 0;
    struct timespec t0;
    while (n < 8) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        c = dl_sock_connect("relay submission", path, 300, 0, &err);
        if (c < 0)
            break;
        held[n++] = c;
    }
    cr_assert_lt(c, 0, "the queue never filled");
    long waited = ms_since(&t0);
    cr_expect_geq(waited, 250, "gave up after %ld ms", waited);
    cr_expect_lt(waited, 3000, "gave up after %ld ms", waited);
    cr_expect(strstr(err.msg, "no room in the listen queue within 300 ms") != NULL, "%s",
              err.msg);
    for (int i = 0; i < n; i++)
        close(held[i]);
    close(fd);
}

Test(sock, io_timeout_reads_as_a_timeout)
{
    const char *path = in_dir("mute.sock");
    struct dc_err err = {0};
    int fd = listen_at(path, 0600, 4);
    int c = dl_sock_connect("keyvault", path, 1000, 200, &err);
    cr_assert_geq(c, 0, "%s", err.msg);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char b;
    cr_expect_lt(read(c, &b, 1), 0);
    long waited = ms_since(&t0);
    cr_expect_geq(waited, 150, "read gave up after %ld ms", waited);
    cr_expect_eq(dl_sock_io_error(&err, "keyvault", "read", 200), DC_ERR_IO);
    cr_expect_str_eq(err.msg, "keyvault read: no progress within 200 ms");
    close(c);
    close(fd);
}

Test(priv, unknown_user_and_group)
{
    struct dl_priv p;
    struct dc_err err = {0};
    cr_expect_eq(dl_priv_lookup("no-such-user-dime", NULL, &p, &err), DC_ERR_NOTFOUND);
    cr_expect(strstr(err.msg, "no-such-user-dime") != NULL, "%s", err.msg);
    if (dl_priv_lookup("nobody", NULL, &p, NULL) == DC_OK) {
        struct dc_err e2 = {0};
        cr_expect_eq(dl_priv_lookup("nobody", "no-such-group-dime", &p, &e2), DC_ERR_NOTFOUND);
        cr_expect(strstr(e2.msg, "group no-such-group-dime") != NULL, "%s", e2.msg);
    }
    struct dc_err e3 = {0};
    cr_expect_eq(dl_priv_lookup("", NULL, &p, &e3), DC_ERR_ARG);
}

Test(priv, root_is_not_a_drop)
{
    struct dl_priv p;
    struct dc_err err = {0};
    cr_expect_eq(dl_priv_lookup("root", NULL, &p, &err), DC_ERR_ARG);
    cr_expect(strstr(err.msg, "not a drop") != NULL, "%s", err.msg);
    struct dl_priv r = {"root", 0, 0};
    struct dc_err e2 = {0};
    if (geteuid() == 0)
        cr_expect_eq(dl_priv_drop(&r, &e2), DC_ERR_ARG, "%s", e2.msg);
}

Test(priv, verify_checks_every_id)
{
    struct dc_err err = {0};
    /* ids other than ours: the drop is incomplete */
    cr_expect_eq(dl_priv_verify(getuid() + 1, getgid(), &err), DC_ERR_IO);
    cr_expect(strstr(err.msg, "privilege drop incomplete") != NULL, "%s", err.msg);
    struct dc_err e2 = {0};
    cr_expect_eq(dl_priv_verify(getuid(), getgid() + 1, &e2), DC_ERR_IO);
    /* our own ids: as root the way back is open, which is what verify must catch */
    struct dc_err e3 = {0};
    if (geteuid() == 0) {
        cr_expect_eq(dl_priv_verify(0, 0, &e3), DC_ERR_IO);
        cr_expect(strstr(e3.msg, "can be taken again") != NULL, "%s", e3.msg);
    } else {
        cr_expect_eq(dl_priv_verify(getuid(), getgid(), &e3), DC_OK, "%s", e3.msg);
    }
}

/* The child's checks, as its exit status: 0 all good, else the number of the failed one. */
static int drop_in_child(void)
{
    struct dl_priv p;
    if (dl_priv_lookup("nobody", NULL, &p, NULL) != DC_OK)
        return 1;
    struct dc_err err = {0};
    if (dl_priv_drop(&p, &err) != DC_OK) {
        fprintf(stderr, "drop: %s\n", err.msg);
        return 2;
    }
    uid_t r, e, s;
    gid_t rg, eg, sg;
    if (getresuid(&r, &e, &s) != 0 || r != p.uid || e != p.uid || s != p.uid)
        return 3;
    if (getresgid(&rg, &eg, &sg) != 0 || rg != p.gid || eg != p.gid || sg != p.gid)
        return 4;
    if (setuid(0) == 0 || seteuid(0) == 0 || setresuid(0, 0, 0) == 0 || setgid(0) == 0)
        return 5;
    gid_t groups[256];
    int n = getgroups(256, groups);
    for (int i = 0; i < n; i++)
        if (groups[i] == 0)
            return 6;
    /* a second drop, no longer root, leaves everything as it is */
    struct dl_priv again = {"root", 1, 1};
    if (dl_priv_drop(&again, &err) != DC_OK || getuid() != p.uid)
        return 7;
    return 0;
}

Test(priv, real_drop_to_nobody)
{
    struct dl_priv p;
    if (geteuid() != 0 || dl_priv_lookup("nobody", NULL, &p, NULL) != DC_OK)
        cr_skip_test("needs root and a user nobody");
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(drop_in_child());
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child check %d failed",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

Test(priv, config_root_only_by_name)
{
    struct dl_priv p;
    struct dc_err err = {0};
    /* no user: an error that says what to write, never root by default */
    cr_expect_eq(dl_priv_config("relay", "", &p, &err), DC_ERR_ARG);
    cr_expect(strstr(err.msg, "relay: user is empty") != NULL, "%s", err.msg);
    struct dc_err e2 = {0};
    cr_expect_eq(dl_priv_config("milter", NULL, &p, &e2), DC_ERR_ARG);
    struct dc_err e3 = {0};
    cr_expect_eq(dl_priv_config("keyvault", "no-such-user-dime", &p, &e3), DC_ERR_NOTFOUND);
    cr_expect(strstr(e3.msg, "keyvault: user no-such-user-dime: no such user") != NULL, "%s",
              e3.msg);
    /* root by name: the explicit choice, uid 0 */
    struct dc_err e4 = {0};
    cr_expect_eq(dl_priv_config("relay", "root", &p, &e4), DC_OK, "%s", e4.msg);
    cr_expect_eq(p.uid, 0);
    /* root stays root: nothing changes (and a warning goes to the log) */
    if (geteuid() == 0) {
        struct dc_err e5 = {0};
        cr_expect_eq(dl_priv_start(&p, &e5), DC_OK, "%s", e5.msg);
        cr_expect_eq(geteuid(), 0);
    }
    struct dl_priv n;
    struct dc_err e6 = {0};
    if (dl_priv_lookup("nobody", NULL, &n, NULL) == DC_OK) {
        cr_expect_eq(dl_priv_config("relay", "nobody", &p, &e6), DC_OK, "%s", e6.msg);
        cr_expect_eq(p.uid, n.uid);
        cr_expect_eq(p.gid, n.gid);
    }
}

/* ---- dl_log: the journal's severity prefix only when stderr is the journal's stream ---- */

static void log_to_file(const char *journal, char *out, size_t len)
{
    char path[] = "/tmp/dime-unit-log.XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    struct stat st;
    fstat(fd, &st);
    char v[64];
    snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
             journal != NULL ? (unsigned long long)st.st_ino : 1ULL);
    setenv("JOURNAL_STREAM", v, 1);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    dl_log_open("unit", dl_log_where(false), "mail", "/nonexistent/dime-unit-log");
    dl_log(LOG_WARNING, "event key=%d", 7);
    dup2(saved, STDERR_FILENO);
    close(saved);
    unsetenv("JOURNAL_STREAM");
    ssize_t n = pread(fd, out, len - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
}

Test(log, stderr_is_the_journal_lines_carry_the_severity)
{
    char buf[256];
    log_to_file("yes", buf, sizeof(buf));
    char want[64];
    snprintf(want, sizeof(want), "<4>unit[%ld]: event key=7\n", (long)getpid());
    cr_expect_str_eq(buf, want);
}

Test(log, another_stream_is_not_the_journal)
{
    char buf[256];
    /* JOURNAL_STREAM names another inode (inherited from a service by a child): syslog is
     * chosen, nothing is written to stderr */
    log_to_file(NULL, buf, sizeof(buf));
    cr_expect_str_eq(buf, "");
}
