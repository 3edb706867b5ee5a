/*
 * rl_server_int - the DX server's connection state and the part of its loop that works on
 * bytes already read (commands, the MAIL/RCPT arguments, the DATA framing), for rl_server.c
 * and for the fuzz target that feeds it bytes (tests/fuzz/fuzz_dmtp_session.c). Not an API:
 * nothing else includes this.
 */
#ifndef RL_SERVER_INT_H
#define RL_SERVER_INT_H

#include "rl_server.h"

#include "dc_dmtp.h"

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define OUT_HIGH 65536 /* stop reading commands while this much output is queued */

enum conn_state { ST_HANDSHAKE, ST_OPEN, ST_CLOSING };

/* Bytes of inbound messages held in memory, all connections together (data-memory-limit):
 * reserved from SIZE at MAIL or from the D/MIME header's length, handed to the verifying
 * worker with the message and given back when its buffer is freed. */
struct budget {
    pthread_mutex_t mu;
    size_t used, limit;
};

/* Every log line about an inbound connection starts "conn=N ip=ADDR" (the peer, for abuse
 * handling); none names a recipient or an account. */
#define PEER_FMT "conn=%u ip=%s "

struct conn {
    int fd;
    unsigned id;
    char ip[INET6_ADDRSTRLEN]; /* the peer's address, as logged */
    SSL *ssl;
    enum conn_state st;
    uint8_t in[DC_DMTP_CMD_MAX];
    size_t inlen;
    bool discarding; /* skipping the rest of an overlong line */
    struct dc_buf out;
    size_t outoff;
    short want;      /* POLLIN / POLLOUT wanted by TLS */
    time_t last;
    unsigned errors;
    bool ehlo;
    bool refuse;     /* over max-clients-per-address: 421 after the handshake */
    bool dual;       /* came through the dual-mode front: 250 OK DMTPv1 after the handshake */
    bool rate_logged; /* signet-rate was logged for this connection */
    bool signet_wait; /* verifying: a SGNT/VRFY/HIST is with a worker (keyvault-timeout) */
    unsigned seq;     /* of the last job handed to a worker: a later result is dropped */
    long job_start_ms; /* CLOCK_MONOTONIC, of that job */
    struct budget *budget;
    size_t charged;  /* this connection's share of budget->used */
    time_t data_start; /* when 354 was sent */
    /* mail transaction */
    bool mail, rcpt, in_data, verifying;
    char mail_domain[DC_DMTP_NAME_MAX + 1];
    char rcpt_domain[DC_DMTP_NAME_MAX + 1];
    unsigned long size_hint;
    size_t data_total; /* 0 until the D/MIME header was read */
    struct dc_buf data; /* the message, or when spooling the bytes not yet in the file */
    bool spooling;      /* above data-spool-threshold: the message goes to spool_fd */
    int spool_fd;
    size_t spooled;     /* bytes of the message (and its CRLF) in the spool file */
};

/* Signet requests of one client address (signet-rate, signet-burst): a token bucket, kept
 * while it is not full again, so that reconnecting does not refill it. */
struct rate {
    char ip[INET6_ADDRSTRLEN];
    double tokens;
    long last_ms;
};
#define RATE_MAX 4096 /* addresses remembered; the one idle longest makes room */


struct reloaded;

struct server {
    /* what the loop and the workers it starts read; replaced only by the loop (reload) */
    const struct rl_config *cfg;
    const char *config_path;
    struct reloaded *reloads;
    SSL_CTX *tls; /* new connections' context: a reload replaces it (a reference each) */
    struct conn **conns;
    size_t nconns;
    unsigned next_id;
    struct kv_keep *keep; /* the verifying workers' keyvault connections */
    const struct rl_server_mail *mail;
    int pipe[2]; /* workers -> loop: a finished vjob */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct vjob *done;
    unsigned running;       /* jobs with the workers, signet jobs included */
    unsigned signet_jobs;
    struct rl_workers *pool; /* the verifying threads, kept between messages */
    struct budget budget;
    struct rate *rates;
    size_t nrates;
    char spool_dir[4096]; /* rl_spool_dir of the configuration */
    struct rl_dual *dual; /* the dual-mode front, or NULL */
};

/* Where the next read of c goes and how many bytes fit there: the command buffer, or inside
 * a message whose length is known (and no command bytes waiting) the message's own buffer. */
uint8_t *rl_conn_room(struct conn *c, size_t *room);
/* n bytes (1 <= n <= room) were read to rl_conn_room(c): handles them (commands, DATA),
 * queueing replies in c->out. */
void rl_conn_got(struct server *s, struct conn *c, size_t n);
/* Handles the complete command lines and DATA bytes waiting in c->in, while c is open, not
 * verifying a message and less than OUT_HIGH bytes of replies wait to be written. */
void rl_conn_lines(struct server *s, struct conn *c);

#endif
