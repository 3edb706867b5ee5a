/*
 * fuzz_submit - the relay's submission request reader (submit_read, SUBMIT.md), which
 * reads what the milter writes to the submission socket. The first input byte says how many
 * bytes each read() hands out (1-256, as a socket may cut the stream anywhere); the rest is
 * the request. Checked:
 *   - the outcome and reply do not depend on how the stream is cut (read again in 4096-byte
 *     pieces);
 *   - a refusal is 500, 501 or 552 with a one-line reply starting with its code and naming
 *     no address;
 *   - an accepted request keeps every field rule, and written again with the client's
 *     writer (submit_put_head / submit_put_msg) it is read back identical.
 */
#include "submit_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MESSAGE 65536ul
#define MAX_TOTAL   262144ul

static int read_req(const uint8_t *p, size_t len, size_t step, struct submit_in *in,
                    char *reply)
{
    struct submit_mem s = {p, len, 0, step};
    struct submit_src src = {submit_mem_read, &s};
    return submit_read(&src, MAX_MESSAGE, MAX_TOTAL, in, reply);
}

static void same(const struct submit_in *a, const struct submit_in *b)
{
    if (strcmp(a->queue_id, b->queue_id) || strcmp(a->message_id, b->message_id) || a->n != b->n)
        abort();
    for (size_t i = 0; i < a->n; i++) {
        const struct submit_in_msg *x = &a->msgs[i], *y = &b->msgs[i];
        if (strcmp(x->sender, y->sender) || strcmp(x->recipient, y->recipient) ||
            strcmp(x->domain, y->domain) || x->len != y->len ||
            memcmp(x->data, y->data, x->len) != 0)
            abort();
    }
}

static void check_fields(const struct submit_in *in)
{
    if (!submit_qid_ok(in->queue_id) ||
        !submit_msgid_ok(in->message_id, strlen(in->message_id)) || in->n == 0 ||
        in->n > SUBMIT_MAX_MESSAGES)
        abort();
    size_t total = 0;
    const char **rcpts = calloc(in->n, sizeof(*rcpts));
    if (rcpts == NULL)
        abort();
    for (size_t i = 0; i < in->n; i++) {
        const struct submit_in_msg *m = &in->msgs[i];
        if ((m->sender[0] && !submit_addr_ok(m->sender)) || !submit_addr_ok(m->recipient) ||
            m->len == 0 || m->len > MAX_MESSAGE || m->data == NULL)
            abort();
        const char *d = strrchr(m->recipient, '@') + 1;
        if (strcasecmp(d, m->domain) != 0)
            abort();
        for (const char *p = m->domain; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                abort();
        for (size_t j = 0; j < i; j++)
            if (strcmp(in->msgs[j].recipient, m->recipient) == 0)
                abort();
        total += m->len;
        rcpts[i] = m->recipient;
    }
    if (total > MAX_TOTAL)
        abort();
    /* the relay derives the submission key next: it must accept every accepted request */
    char key[65];
    if (submit_key(in->queue_id, in->message_id, rcpts, in->n, key, NULL) != DC_OK)
        abort();
    free(rcpts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] + 1;
    data++;
    size--;
    struct submit_in in, in2;
    char reply[SUBMIT_REPLY_MAX], reply2[SUBMIT_REPLY_MAX];
    int rc = read_req(data, size, step, &in, reply);
    int rc2 = read_req(data, size, 4096, &in2, reply2);
    if (rc != rc2 || strcmp(reply, reply2) != 0)
        abort();
    if (rc != 0) {
        if ((rc != 500 && rc != 501 && rc != 552) || atoi(reply) != rc ||
            strchr(reply, '\n') || strchr(reply, '@'))
            abort();
    } else {
        same(&in, &in2);
        check_fields(&in);
        struct submit_msg *msgs = calloc(in.n, sizeof(*msgs));
        if (msgs == NULL)
            abort();
        for (size_t i = 0; i < in.n; i++)
            msgs[i] = (struct submit_msg){in.msgs[i].sender, in.msgs[i].recipient,
                                             in.msgs[i].data, in.msgs[i].len};
        struct submit_req req = {in.queue_id, in.message_id, msgs, in.n};
        struct dc_buf b;
        dc_buf_init(&b);
        submit_put_head(&b, &req);
        for (size_t i = 0; i < in.n; i++) {
            submit_put_msg(&b, &msgs[i]);
            dc_buf_append(&b, msgs[i].dmime, msgs[i].len);
        }
        dc_buf_append(&b, "end\n", 4);
        struct submit_in again;
        if (read_req(b.data, b.len, step, &again, reply) != 0)
            abort();
        same(&in, &again);
        submit_in_free(&again);
        dc_buf_free(&b);
        free(msgs);
    }
    submit_in_free(&in);
    submit_in_free(&in2);
    return 0;
}
