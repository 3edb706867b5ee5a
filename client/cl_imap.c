/*
 * cl_imap - IMAP through libcurl (see cl_imap.h).
 *
 * libcurl's IMAP URLs: "URL/MAILBOX;UIDVALIDITY=V/;UID=U" selects the mailbox (checking V)
 * and fetches BODY[] of UID U, the literal's bytes going to the write callback; a custom
 * request ("STATUS ...", "UID SEARCH ...") hands the command's untagged lines to the same
 * callback, after selecting MAILBOX when the URL names one.
 */
#include "cl_imap.h"

#include "cl_curl.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct sink {
    struct dc_buf b;
    size_t max;
    bool over;
};

static size_t take(char *p, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    if (s->b.len + size * n > s->max) {
        s->over = true;
        return 0; /* libcurl stops the transfer */
    }
    dc_buf_append(&s->b, p, size * n);
    return size * n;
}

static bool mailbox_ok(const char *m)
{
    if (m == NULL || *m == '\0' || strlen(m) > 200)
        return false;
    for (const char *c = m; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              strchr("._-/", *c)))
            return false;
    return true;
}

/* One request on the kept connection: path after the URL, an optional custom command; the
 * response (untagged lines, or the message) in s. */
static enum dc_status run(struct cl_imap *im, const char *path, const char *custom,
                          struct sink *s, struct dc_err *err)
{
    if (!mailbox_ok(im->mailbox))
        return dc_fail(err, DC_ERR_ARG, "mailbox name: letters, digits and \"._-/\" only");
    CURL *c = im->curl;
    if (c == NULL && (c = im->curl = cl_curl_new(err)) == NULL)
        return err ? err->code : DC_ERR_NOMEM;
    size_t ul = strlen(im->url);
    while (ul > 0 && im->url[ul - 1] == '/')
        ul--;
    char *url = dc_xasprintf("%.*s/%s", (int)ul, im->url, path);
    char ebuf[CURL_ERROR_SIZE] = "";
    dc_buf_init(&s->b);
    s->over = false;
    curl_easy_setopt(c, CURLOPT_URL, url);
    cl_curl_secure(c, "imap,imaps", im->ca_file, im->login, im->password, im->timeout);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, custom);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, take);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    CURLcode rc = curl_easy_perform(c);
    free(url);
    if (rc == CURLE_OK)
        return DC_OK;
    dc_buf_free(&s->b);
    if (s->over)
        return dc_fail(err, DC_ERR_LIMIT, "IMAP: a message of more than %zu bytes", s->max);
    if (rc == CURLE_LOGIN_DENIED)
        return dc_fail(err, DC_ERR_SIGNATURE, "IMAP: login refused: %s",
                       ebuf[0] ? ebuf : curl_easy_strerror(rc));
    return dc_fail(err, DC_ERR_IO, "IMAP: %s", ebuf[0] ? ebuf : curl_easy_strerror(rc));
}

/* The decimal after "NAME " in s, or false. */
static bool item(const char *s, const char *name, uint32_t *v)
{
    const char *p = strcasestr(s, name);
    size_t n = strlen(name);
    if (p == NULL || p[n] != ' ' || p[n + 1] < '0' || p[n + 1] > '9')
        return false;
    char *end;
    unsigned long long x = strtoull(p + n + 1, &end, 10);
    if (x > UINT32_MAX)
        return false;
    *v = (uint32_t)x;
    return true;
}

enum dc_status cl_imap_status(struct cl_imap *im, uint32_t *uidvalidity, uint32_t *uidnext,
                              struct dc_err *err)
{
    struct sink s = {.max = 1u << 20};
    char *cmd = dc_xasprintf("STATUS \"%s\" (UIDVALIDITY UIDNEXT)", im->mailbox);
    enum dc_status st = run(im, "", cmd, &s, err);
    free(cmd);
    if (st != DC_OK)
        return st;
    const char *line = s.b.data ? strcasestr((const char *)s.b.data, "* STATUS ") : NULL;
    if (line == NULL || !item(line, "UIDVALIDITY", uidvalidity) ||
        !item(line, "UIDNEXT", uidnext) || *uidvalidity == 0)
        st = dc_fail(err, DC_ERR_FORMAT, "IMAP: no UIDVALIDITY and UIDNEXT in the STATUS answer");
    dc_buf_free(&s.b);
    return st;
}

void cl_imap_parse_search(const char *text, size_t len, uint32_t **uids, size_t *n)
{
    *uids = NULL;
    *n = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
        const char *p = text + pos, *end = p + ll;
        pos += ll + 1;
        if (ll < 8 || strncasecmp(p, "* SEARCH", 8) != 0)
            continue;
        for (p += 8; p < end;) {
            while (p < end && (*p == ' ' || *p == '\r'))
                p++;
            uint64_t x = 0;
            const char *d = p;
            while (p < end && *p >= '0' && *p <= '9' && x <= UINT32_MAX)
                x = x * 10 + (uint64_t)(*p++ - '0');
            if (p == d || x == 0 || x > UINT32_MAX || (p < end && *p != ' ' && *p != '\r'))
                break; /* not a UID: the rest of the line is not read */
            *uids = dc_xrealloc(*uids, (*n + 1) * sizeof(**uids));
            (*uids)[(*n)++] = (uint32_t)x;
        }
    }
}

static int by_value(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

enum dc_status cl_imap_search(struct cl_imap *im, uint32_t uidvalidity, uint32_t from,
                              uint32_t **uids, size_t *n, struct dc_err *err)
{
    struct sink s = {.max = 64u << 20};
    char *path = dc_xasprintf("%s;UIDVALIDITY=%" PRIu32, im->mailbox, uidvalidity);
    char *cmd = dc_xasprintf("UID SEARCH UID %" PRIu32 ":*", from);
    enum dc_status st = run(im, path, cmd, &s, err);
    free(path);
    free(cmd);
    if (st != DC_OK)
        return st;
    uint32_t *all;
    size_t na;
    cl_imap_parse_search((const char *)s.b.data, s.b.len, &all, &na);
    dc_buf_free(&s.b);
    /* "from:*" also matches the highest UID when it is below from */
    *n = 0;
    for (size_t i = 0; i < na; i++)
        if (all[i] >= from)
            all[(*n)++] = all[i];
    qsort(all, *n, sizeof(*all), by_value);
    *uids = all;
    return DC_OK;
}

enum dc_status cl_imap_fetch(struct cl_imap *im, uint32_t uidvalidity, uint32_t uid,
                             uint8_t **msg, size_t *len, struct dc_err *err)
{
    struct sink s = {.max = im->max_message ? im->max_message : 64u << 20};
    char *path = dc_xasprintf("%s;UIDVALIDITY=%" PRIu32 "/;UID=%" PRIu32, im->mailbox,
                              uidvalidity, uid);
    enum dc_status st = run(im, path, NULL, &s, err);
    free(path);
    if (st == DC_OK && s.b.len == 0)
        st = dc_fail(err, DC_ERR_NOTFOUND, "IMAP: UID %" PRIu32 " has no message", uid);
    if (st == DC_OK)
        *msg = dc_buf_steal(&s.b, len);
    return st;
}

void cl_imap_close(struct cl_imap *im)
{
    if (im->curl != NULL)
        curl_easy_cleanup(im->curl);
    im->curl = NULL;
}
