/*
 * cl_state - sync's position in the server's mailbox and its record of delivered messages
 * (see cl_state.h).
 */
#include "cl_state.h"

#include "dc_crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATE_MAX 4096
#define SEEN_MAX (64u << 20) /* two million messages */
#define STATE_MAGIC "dime-client-sync 1"

void cl_digest(const uint8_t *p, size_t len, uint8_t out[CL_DIGEST_LEN])
{
    uint8_t h[DC_SHA512_LEN];
    dc_sha512(p, len, h);
    memcpy(out, h, CL_DIGEST_LEN);
}

/* "name <decimal u32>" exactly. */
static bool num_line(const char *line, size_t len, const char *name, uint32_t *v)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || memcmp(line, name, nl) != 0 || line[nl] != ' ')
        return false;
    uint64_t x = 0;
    for (size_t i = nl + 1; i < len; i++) {
        if (line[i] < '0' || line[i] > '9' || (x = x * 10 + (uint64_t)(line[i] - '0')) > UINT32_MAX)
            return false;
    }
    *v = (uint32_t)x;
    return true;
}

static enum dc_status parse_state(const char *path, const char *t, size_t len,
                                  struct cl_state *st, struct dc_err *err)
{
    const char *names[] = {NULL, "uidvalidity", "last-uid"};
    uint32_t *vals[] = {NULL, &st->uidvalidity, &st->last_uid};
    size_t pos = 0;
    for (unsigned ln = 0; ln < 3; ln++) {
        const char *nl = memchr(t + pos, '\n', len - pos);
        if (nl == NULL)
            return dc_fail(err, DC_ERR_TRUNCATED, "%s: line %u missing", path, ln + 1);
        size_t ll = (size_t)(nl - (t + pos));
        bool good = ln == 0 ? ll == strlen(STATE_MAGIC) && memcmp(t + pos, STATE_MAGIC, ll) == 0
                            : num_line(t + pos, ll, names[ln], vals[ln]);
        if (!good)
            return dc_fail(err, DC_ERR_FORMAT, "%s: line %u is not %s", path, ln + 1,
                           ln == 0 ? "\"" STATE_MAGIC "\"" : names[ln]);
        pos += ll + 1;
    }
    if (pos != len)
        return dc_fail(err, DC_ERR_FORMAT, "%s: more than three lines", path);
    return DC_OK;
}

static enum dc_status parse_seen(const char *path, const char *t, size_t len,
                                 struct cl_state *st, struct dc_err *err)
{
    size_t pos = 0, ln = 0;
    while (pos < len) {
        const char *nl = memchr(t + pos, '\n', len - pos);
        if (nl == NULL) {
            st->torn = true; /* an append cut short: its message may be delivered again */
            break;
        }
        size_t ll = (size_t)(nl - (t + pos));
        ln++;
        uint8_t d[CL_DIGEST_LEN];
        if (ll != 2 * CL_DIGEST_LEN || dc_hex_decode(t + pos, ll, d, CL_DIGEST_LEN) != DC_OK)
            return dc_fail(err, DC_ERR_FORMAT, "%s: line %zu is not a digest", path, ln);
        st->seen = dc_xrealloc(st->seen, (st->nseen + 1) * sizeof(*st->seen));
        memcpy(st->seen[st->nseen++], d, CL_DIGEST_LEN);
        pos += ll + 1;
    }
    st->seen_len = pos;
    return DC_OK;
}

/* The file's bytes, or none (*len 0, *out NULL) when it does not exist. */
static enum dc_status read_opt(const char *path, size_t max, uint8_t **out, size_t *len,
                               struct dc_err *err)
{
    *out = NULL;
    *len = 0;
    if (access(path, F_OK) != 0 && errno == ENOENT)
        return DC_OK;
    return dc_read_file(path, max, out, len, err);
}

enum dc_status cl_state_load(const char *dir, struct cl_state *st, struct dc_err *err)
{
    memset(st, 0, sizeof(*st));
    st->state_path = dc_xasprintf("%s/sync.state", dir);
    st->seen_path = dc_xasprintf("%s/sync.seen", dir);
    uint8_t *b = NULL;
    size_t n = 0;
    enum dc_status s = read_opt(st->state_path, STATE_MAX, &b, &n, err);
    if (s == DC_OK && b != NULL)
        s = parse_state(st->state_path, (const char *)b, n, st, err);
    free(b);
    b = NULL;
    if (s == DC_OK)
        s = read_opt(st->seen_path, SEEN_MAX, &b, &n, err);
    if (s == DC_OK && b != NULL)
        s = parse_seen(st->seen_path, (const char *)b, n, st, err);
    free(b);
    if (s != DC_OK)
        cl_state_free(st);
    return s;
}

enum dc_status cl_state_save(const struct cl_state *st, struct dc_err *err)
{
    char *t = dc_xasprintf(STATE_MAGIC "\nuidvalidity %" PRIu32 "\nlast-uid %" PRIu32 "\n",
                           st->uidvalidity, st->last_uid);
    enum dc_status s = dc_write_file(st->state_path, t, strlen(t), 0600, err);
    free(t);
    return s;
}

bool cl_state_seen(const struct cl_state *st, const uint8_t d[CL_DIGEST_LEN])
{
    for (size_t i = 0; i < st->nseen; i++)
        if (memcmp(st->seen[i], d, CL_DIGEST_LEN) == 0)
            return true;
    return false;
}

enum dc_status cl_state_add_seen(struct cl_state *st, const uint8_t d[CL_DIGEST_LEN],
                                 struct dc_err *err)
{
    char line[2 * CL_DIGEST_LEN + 2];
    dc_hex_encode(d, CL_DIGEST_LEN, line);
    line[2 * CL_DIGEST_LEN] = '\n';
    size_t n = 2 * CL_DIGEST_LEN + 1;
    int fd = open(st->seen_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return dc_fail(err, DC_ERR_IO, "%s: %s", st->seen_path, strerror(errno));
    if (st->torn && ftruncate(fd, (off_t)st->seen_len) != 0) {
        int e = errno;
        close(fd);
        return dc_fail(err, DC_ERR_IO, "%s: %s", st->seen_path, strerror(e));
    }
    ssize_t w;
    do
        w = write(fd, line, n);
    while (w < 0 && errno == EINTR);
    int e = w == (ssize_t)n ? 0 : w < 0 ? errno : EIO;
    if (e == 0 && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && e == 0)
        e = errno;
    if (e != 0)
        return dc_fail(err, DC_ERR_IO, "%s: %s", st->seen_path, strerror(e));
    st->torn = false;
    st->seen_len += n;
    st->seen = dc_xrealloc(st->seen, (st->nseen + 1) * sizeof(*st->seen));
    memcpy(st->seen[st->nseen++], d, CL_DIGEST_LEN);
    return DC_OK;
}

void cl_state_free(struct cl_state *st)
{
    free(st->seen);
    free(st->state_path);
    free(st->seen_path);
    memset(st, 0, sizeof(*st));
}
