/*
 * fuzz_kv_frames - the keyvault's splitting of a connection's byte stream into request
 * frames (keyvault/kv_server.c: kv_frame_complete, kv_conn_read, the buffering of pipelined
 * frames in kv_conn_pipelined, kv_conn_write), on a socket, with a real vault (an empty one
 * in memory, the peer in the relay class) answering each request.
 *
 * Input: the first byte sets how many bytes the peer writes at a time (1-255; 0: all at
 * once), the rest is the stream; then the peer closes its side. Invariants: the input buffer
 * never holds more than IN_CAP bytes; every answer is a well-formed response frame; the
 * peer gets exactly one answer per complete request frame up to the first header that
 * kv_frame_len refuses, one more (an error) for that header, and nothing after it.
 */
#include "kv_server_int.h"

#include "dl_log.h"
#include "kv_proto.h"
#include "kv_vault.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct kv_vault *vault;
static struct kv_config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    dl_log_init("fuzz", 0); /* no log output */
    /* an SQLite database in memory: nothing on disk, nothing left behind */
    struct kv_secret sec = {.key = dc_secure_alloc(sizeof(struct kv_master))};
    memset(sec.key, 0x42, sizeof(struct kv_master));
    struct dc_err err = {0};
    if (kv_vault_open(":memory:", &sec, &vault, &err) != DC_OK) {
        fprintf(stderr, "vault: %s\n", err.msg);
        abort();
    }
    cfg.relay_users.uid[0] = getuid();
    cfg.relay_users.n = 1;
    cfg.idle_timeout = 60;
    cfg.sign_stream_max = 1 << 20;
    cfg.sign_stream_timeout = 60;
    return 0;
}

/* The answers the peer can read now, appended to got. */
static void peer_read(int fd, struct dc_buf *got)
{
    uint8_t b[8192];
    ssize_t r;
    while ((r = read(fd, b, sizeof(b))) > 0)
        dc_buf_append(got, b, (size_t)r);
}

/* How many answers the stream p[0..n) must get (see the invariants above). */
static size_t answers_due(const uint8_t *p, size_t n)
{
    size_t due = 0;
    while (n >= 4) {
        uint32_t len = (uint32_t)dc_get_be(p, 4);
        if (len == 0 || len > KV_FRAME_MAX)
            return due + 1;
        if (n - 4 < len)
            break;
        due++;
        p += 4 + len;
        n -= 4 + len;
    }
    return due;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = data[0] ? data[0] : SIZE_MAX;
    data++;
    size--;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0)
        abort();
    struct conn *c = dc_xcalloc(1, sizeof(*c));
    c->fd = sv[0];
    c->uid = getuid();
    c->pid = getpid();
    c->in = dc_xmalloc(IN_CAP);
    dc_buf_init(&c->out);
    dc_buf_init(&c->resp);
    struct dc_buf got;
    dc_buf_init(&got);
    bool keep = true, closed = false;
    size_t off = 0;
    for (unsigned rounds = 0; keep; rounds++) {
        if (rounds > size + 16)
            abort(); /* neither progress nor an end */
        if (off < size) {
            size_t n = size - off < step ? size - off : step;
            ssize_t w = write(sv[1], data + off, n);
            if (w > 0)
                off += (size_t)w;
        } else if (!closed) {
            shutdown(sv[1], SHUT_WR);
            closed = true;
        }
        keep = kv_conn_read(c, vault, &cfg); /* ppoll said POLLIN (or POLLHUP) */
        if (c->have > IN_CAP)
            abort();
        if (keep)
            keep = kv_conn_pipelined(c, vault, &cfg);
        peer_read(sv[1], &got);
    }
    kv_conn_free(c); /* closes sv[0] */
    peer_read(sv[1], &got);
    close(sv[1]);
    /* every answer a response frame; as many as the complete requests written */
    size_t nans = 0, at = 0;
    while (at < got.len) {
        uint32_t len;
        struct kv_response resp;
        if (got.len - at < 4 || kv_frame_len(got.data + at, &len, NULL) != DC_OK ||
            got.len - at - 4 < len ||
            kv_response_parse(got.data + at + 4, len, &resp, NULL) != DC_OK)
            abort();
        nans++;
        at += 4 + len;
    }
    if (nans != answers_due(data, off)) {
        fprintf(stderr, "answers %zu, due %zu\n", nans, answers_due(data, off));
        abort();
    }
    dc_buf_free(&got);
    return 0;
}
