/*
 * kv_server_int - the keyvault's connection state and the functions of its loop that split
 * the byte stream into request frames (buffering pipelined ones) and write the answers, for
 * kv_server.c and its fuzz target (tests/fuzz/fuzz_kv_frames.c). Not an API: nothing else
 * includes this.
 */
#ifndef KV_SERVER_INT_H
#define KV_SERVER_INT_H

#include "kv_server.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct conn {
    int fd;
    uid_t uid;
    pid_t pid;
    uint8_t *in; /* IN_CAP bytes: what was read and not yet handled */
    size_t have;
    struct dc_buf out;
    struct dc_buf resp; /* one answer being made */
    size_t out_off;
    bool close_after; /* after the pending output is written */
    struct kv_stream_state ss;
    struct timespec last; /* CLOCK_MONOTONIC of the last progress, for idle-timeout */
};

/* A whole frame, header and payload: read(2) takes as much as is there, usually a whole
 * request at once (reading the header and the payload apart was two reads per request). */
#define IN_CAP (4 + (size_t)KV_FRAME_MAX)
/* Answers of pipelined requests gathered before one write. */
#define OUT_BATCH 16384

/* Whether c->in holds a whole frame, or a header that kv_frame_len refuses. */
bool kv_frame_complete(const struct conn *c);
/* Reads what is available; handles a complete frame (one). false: drop the connection. */
bool kv_conn_read(struct conn *c, struct kv_vault *v, const struct kv_config *cfg);
/* Writes pending output. false: drop the connection. */
bool kv_conn_write(struct conn *c);
/* After a read: the complete frames already buffered (pipelined requests), up to OUT_BATCH
 * bytes of answers, then the write. false: drop the connection. */
bool kv_conn_pipelined(struct conn *cn, struct kv_vault *v, const struct kv_config *c);
/* Closes the socket and frees c, its buffers wiped. */
void kv_conn_free(struct conn *c);

#endif
