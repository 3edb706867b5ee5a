/*
 * fuzz_dmtp_session - the relay's DX server as a peer drives it after the TLS handshake: the
 * command line framing, every command with its arguments (MAIL FROM / RCPT TO included), the
 * transaction state machine and the DATA framing, all run by rl_server.c itself
 * (rl_conn_room / rl_conn_got, as its connection loop calls them after each read).
 *
 * Input: the first byte sets the size of each read (1-255 bytes; 0: as much as fits), the
 * rest is what the peer sends. The keyvault socket does not exist (SGNT/VRFY/HIST take their
 * 476 path) and no verifying worker is free (a complete message gets the busy reply 431
 * after its framing was checked): the message's content is fuzz_inbound_parse's.
 *
 * Invariants: every reply line is "[2-5]dd" then ' ' or '-', printable, CRLF-terminated and
 * at most DC_DMTP_LINE_MAX bytes, and the output ends with a final line; the command buffer
 * never overflows and is always drained once the replies are read; a message's announced
 * length is within max-message-size and its buffer never grows past it and its CRLF; a
 * closing connection's last reply is 221 or 421.
 */
#include "rl_server_int.h"

#include "dl_log.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSG 65536u

static char name_local[] = "example.org";
static struct rl_domain domains[1];
static struct rl_config cfg;
static struct rl_server_mail mail;

static void setup(void)
{
    dl_log_init("fuzz", 0); /* no log output */
    domains[0].name = name_local;
    cfg.hostname = "dx.example.org";
    cfg.keyvault_socket = "/nonexistent/keyvault.sock";
    cfg.max_errors = 20;
    cfg.max_message_size = MAX_MSG;
    cfg.inbound_workers = 0; /* every message finds the workers busy */
    cfg.signet_workers = 0;  /* every SGNT/VRFY/HIST too: 476 busy, no thread */
    cfg.signet_rate = 600;   /* the per-address rate table runs, and 431 beyond it */
    cfg.signet_burst = 20;
    cfg.data_memory_limit = 4 * (size_t)MAX_MSG; /* reservations at MAIL SIZE= and header */
    cfg.idle_timeout = 60;
    cfg.domains = domains;
    cfg.ndomains = 1;
}

/* Checks the replies queued so far and drops them, as the peer reading them would. Returns
 * the code of the last line. */
static int drain(struct conn *c)
{
    const uint8_t *p = c->out.data;
    size_t n = c->out.len;
    int last = 0;
    bool final = true;
    while (n > 0) {
        const uint8_t *nl = memchr(p, '\n', n);
        if (nl == NULL)
            abort(); /* an unterminated line */
        size_t ll = (size_t)(nl - p) + 1;
        if (ll < 6 || ll > DC_DMTP_LINE_MAX || p[ll - 2] != '\r')
            abort();
        if (p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9' ||
            (p[3] != ' ' && p[3] != '-'))
            abort();
        for (size_t i = 4; i < ll - 2; i++)
            if (p[i] < 0x20 || p[i] > 0x7e)
                abort();
        last = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        final = p[3] == ' ';
        p += ll;
        n -= ll;
    }
    if (!final)
        abort(); /* a multi-line reply left unfinished */
    c->out.len = c->outoff = 0;
    return last;
}

static void check(const struct server *s, const struct conn *c)
{
    if (c->inlen > sizeof(c->in) || c->errors > s->cfg->max_errors)
        abort();
    if (c->in_data && c->data_total > 0 &&
        (c->data_total > MAX_MSG || c->data.len > c->data_total + 2))
        abort();
    if (!c->in_data && c->data.len != 0)
        abort(); /* a message buffer outside DATA */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
    }
    if (size < 1)
        return 0;
    size_t step = data[0] ? data[0] : SIZE_MAX;
    data++;
    size--;
    static struct rate rates[RATE_MAX]; /* as rl_server_run gives the server */
    struct server s = {.cfg = &cfg, .mail = &mail, .rates = rates};
    s.budget.limit = cfg.data_memory_limit;
    pthread_mutex_init(&s.mu, NULL);
    pthread_mutex_init(&s.budget.mu, NULL);
    struct conn *c = dc_xcalloc(1, sizeof(*c));
    c->fd = -1;
    c->st = ST_OPEN;
    memcpy(c->ip, "192.0.2.1", 10);
    c->budget = &s.budget; /* as accept_one does */
    dc_buf_init(&c->out);
    dc_buf_init(&c->data);
    int last = 0;
    size_t off = 0;
    while (c->st == ST_OPEN && off < size) {
        if (c->out.len > 0)
            last = drain(c);
        if (c->inlen == sizeof(c->in)) { /* the daemon's loop: full buffer, replies read */
            rl_conn_lines(&s, c);
            if (c->st == ST_OPEN && c->inlen == sizeof(c->in))
                abort(); /* nothing could be taken: the connection would hang */
            check(&s, c);
            continue;
        }
        size_t room;
        uint8_t *to = rl_conn_room(c, &room);
        if (room == 0)
            abort();
        size_t n = size - off;
        if (n > room)
            n = room;
        if (n > step)
            n = step;
        memcpy(to, data + off, n);
        off += n;
        rl_conn_got(&s, c, n);
        check(&s, c);
    }
    if (c->out.len > 0)
        last = drain(c);
    if (c->st == ST_CLOSING && last != 221 && last != 421)
        abort();
    dc_buf_free(&c->out);
    dc_buf_free(&c->data);
    free(c);
    if (s.running != 0 || s.budget.used > s.budget.limit)
        abort(); /* no job can start without workers; the budget holds */
    pthread_mutex_destroy(&s.mu);
    pthread_mutex_destroy(&s.budget.mu);
    return 0;
}
