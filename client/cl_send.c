/*
 * cl_send - building and submitting author-made D/MIME (see cl_send.h).
 */
#include "cl_send.h"

#include "cl_curl.h"

#include "dc_b64.h"
#include "dc_message.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the message ---- */

/* Appends value's addresses: separated by ',' (or a group's closing ';') outside quotes,
 * comments and angle brackets; <addr> when present, else the token without comments and
 * blanks. Groups' names ("name:") are skipped. */
void cl_addr_list(const char *value, char ***list, size_t *n)
{
    const char *p = value;
    while (*p) {
        char tok[512], angle[512];
        size_t t = 0, a = 0;
        bool in_angle = false, have_angle = false;
        int quote = 0, depth = 0;
        for (; *p && (quote || depth || in_angle || (*p != ',' && *p != ';')); p++) {
            char c = *p;
            if (quote) {
                if (c == '\\' && p[1])
                    p++;
                else if (c == '"')
                    quote = 0;
                continue;
            }
            if (depth) {
                depth += c == '(' ? 1 : c == ')' ? -1 : 0;
                continue;
            }
            if (c == '"') {
                quote = 1;
            } else if (c == '(') {
                depth = 1;
            } else if (c == '<') {
                in_angle = true;
                have_angle = true;
                a = 0;
            } else if (c == '>') {
                in_angle = false;
            } else if (in_angle) {
                if (a + 1 < sizeof(angle) && !isspace((unsigned char)c))
                    angle[a++] = c;
            } else if (c == ':') {
                t = 0; /* a group's name */
            } else if (!isspace((unsigned char)c) && t + 1 < sizeof(tok)) {
                tok[t++] = c;
            }
        }
        if (*p == ',' || *p == ';') /* ';' ends a group */
            p++;
        const char *addr = have_angle ? angle : tok;
        size_t al = have_angle ? a : t;
        if (al > 0 && memchr(addr, '@', al) != NULL) {
            *list = dc_xrealloc(*list, (*n + 1) * sizeof(char *));
            char *s = dc_xmalloc(al + 1);
            memcpy(s, addr, al);
            s[al] = '\0';
            (*list)[(*n)++] = s;
        }
    }
}

static bool field_is(const char *line, size_t len, const char *name)
{
    size_t nl = strlen(name);
    return len > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0;
}

/* Header field value of an unfolded field line (after the colon, blanks skipped). */
static char *field_value(const char *line, size_t len)
{
    const char *c = memchr(line, ':', len);
    size_t off = (size_t)(c - line) + 1;
    while (off < len && (line[off] == ' ' || line[off] == '\t'))
        off++;
    char *v = dc_xmalloc(len - off + 1);
    size_t o = 0;
    for (size_t i = off; i < len; i++)
        if (line[i] != '\r' && line[i] != '\n')
            v[o++] = line[i];
    v[o] = '\0';
    return v;
}

/* The index after the line that starts at pos. */
static size_t line_end(const struct dc_buf *b, size_t pos)
{
    const uint8_t *nl = memchr(b->data + pos, '\n', b->len - pos);
    return nl ? (size_t)(nl - b->data) + 1 : b->len;
}

enum dc_status cl_msg_parse(const uint8_t *in, size_t len, size_t max, struct cl_msg *out,
                            struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    if (len > max)
        return dc_fail(err, DC_ERR_LIMIT, "the message has more than %zu bytes", max);
    /* CR LF line ends throughout */
    struct dc_buf b;
    dc_buf_init(&b);
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
            dc_buf_putc(&b, '\r');
        dc_buf_putc(&b, in[i]);
    }
    if (b.len < 2 || b.data[b.len - 1] != '\n')
        dc_buf_append(&b, "\r\n", 2);
    /* the header: fields are a first line and its continuations */
    struct dc_buf o;
    dc_buf_init(&o);
    size_t pos = 0, nfrom = 0;
    char *from = NULL;
    while (pos < b.len) {
        size_t end = line_end(&b, pos);
        if (end - pos == 2)
            break; /* the empty line: the body follows */
        while (end < b.len && (b.data[end] == ' ' || b.data[end] == '\t'))
            end = line_end(&b, end);
        const char *line = (const char *)b.data + pos;
        size_t ll = end - pos;
        if (memchr(line, ':', ll) == NULL)
            break; /* not a field: taken as the start of the body */
        bool keep = true;
        if (field_is(line, ll, "From")) {
            char *v = field_value(line, ll);
            char **l = NULL;
            size_t n = 0;
            cl_addr_list(v, &l, &n);
            nfrom += n;
            if (n == 1 && from == NULL)
                from = l[0];
            else
                for (size_t i = 0; i < n; i++)
                    free(l[i]);
            free(l);
            free(v);
        } else if (field_is(line, ll, "To") || field_is(line, ll, "Cc") ||
                   field_is(line, ll, "Bcc")) {
            char *v = field_value(line, ll);
            cl_addr_list(v, &out->rcpts, &out->nrcpt);
            free(v);
            keep = !field_is(line, ll, "Bcc"); /* a Bcc field goes to nobody */
        }
        if (keep)
            dc_buf_append(&o, line, ll);
        pos = end;
    }
    dc_buf_append(&o, b.data + pos, b.len - pos);
    dc_buf_free(&b);
    out->from = nfrom == 1 ? from : NULL;
    if (nfrom != 1)
        free(from);
    out->mime = dc_buf_steal(&o, &out->len);
    return DC_OK;
}

void cl_msg_free(struct cl_msg *m)
{
    free(m->mime);
    free(m->from);
    for (size_t i = 0; i < m->nrcpt; i++)
        free(m->rcpts[i]);
    free(m->rcpts);
    memset(m, 0, sizeof(*m));
}

void cl_peer_free(struct cl_peer *p)
{
    dc_signet_free(p->org);
    dc_signet_free(p->user);
    p->org = p->user = NULL;
}

/* ---- the wrapper ---- */

enum dc_status cl_wrap(const struct cl_author *a, const struct cl_msg *m, const char *rcpt,
                       const struct cl_peer *peer, uint8_t **out, size_t *outlen,
                       struct dc_err *err)
{
    struct dc_signer signer;
    dc_signer_local(&signer, a->sk);
    struct dc_msg_parties p = {
        .from = a->address,
        .to = rcpt,
        .author = a->user,
        .origin = a->org,
        .destination = peer->org,
        .recipient = peer->user,
    };
    struct dc_msg_opts opts = {.now = 0, .limits = NULL, .max_data = 0};
    struct dc_dmime *dm = NULL;
    /* author form: no origin signer, the provider's relay adds the origin signatures */
    enum dc_status s = dc_message_encrypt(m->mime, m->len, &p, &signer, NULL, NULL, &opts,
                                          &dm, err);
    if (s != DC_OK)
        return s;
    size_t bl;
    const uint8_t *bin = dc_dmime_bytes(dm, &bl);
    char *b64 = dc_b64_encode_alloc(bin, bl, 1);
    dc_dmime_free(dm);
    uint8_t rnd[12];
    char mid[17];
    if ((s = dc_random(rnd, sizeof(rnd))) != DC_OK) {
        dc_fail(err, s, "no random bytes for the Message-ID");
        free(b64);
        return s;
    }
    dc_b64_encode(rnd, sizeof(rnd), mid, 0);
    for (char *c = mid; *c; c++)
        if (*c == '+' || *c == '/')
            *c = '-';
    const char *dom = strrchr(a->address, '@') + 1;
    struct dc_buf w;
    dc_buf_init(&w);
    /* no Subject and nothing else of the message: its fields are inside the D/MIME */
    dc_buf_printf(&w, "From: <%s>\r\nTo: <%s>\r\nMessage-ID: <%s.dime-client@%s>\r\n"
                      "MIME-Version: 1.0\r\nContent-Type: application/x-dime\r\n"
                      "Content-Transfer-Encoding: base64\r\n\r\n",
                  a->address, rcpt, mid, dom);
    size_t n = strlen(b64);
    for (size_t i = 0; i < n; i += 76) {
        dc_buf_append(&w, b64 + i, n - i < 76 ? n - i : 76);
        dc_buf_append(&w, "\r\n", 2);
    }
    free(b64);
    *out = dc_buf_steal(&w, outlen);
    return DC_OK;
}

/* ---- SMTP (libcurl) ---- */

struct upload {
    const uint8_t *p;
    size_t left;
};

static size_t feed(char *buf, size_t size, size_t nitems, void *arg)
{
    struct upload *u = arg;
    size_t n = size * nitems < u->left ? size * nitems : u->left;
    memcpy(buf, u->p, n);
    u->p += n;
    u->left -= n;
    return n;
}

/* Keeps the server's last reply line (what a refusal says). */
static int trace(CURL *c, curl_infotype type, char *data, size_t size, void *arg)
{
    (void)c;
    char *last = arg;
    if (type != CURLINFO_HEADER_IN || size == 0)
        return 0;
    size_t n = size < 255 ? size : 255;
    while (n > 0 && (data[n - 1] == '\r' || data[n - 1] == '\n'))
        n--;
    memcpy(last, data, n);
    last[n] = '\0';
    return 0;
}

enum dc_status cl_smtp_send(const struct cl_smtp *s, const char *sender, const char *rcpt,
                            const uint8_t *msg, size_t len, struct dc_err *err)
{
    CURL *c = cl_curl_new(err);
    if (c == NULL)
        return err ? err->code : DC_ERR_NOMEM;
    char from[300], to[300], last[256] = "", ebuf[CURL_ERROR_SIZE] = "";
    snprintf(from, sizeof(from), "<%s>", sender);
    snprintf(to, sizeof(to), "<%s>", rcpt);
    struct curl_slist *rl = curl_slist_append(NULL, to);
    struct upload u = {msg, len};
    curl_easy_setopt(c, CURLOPT_URL, s->url);
    cl_curl_secure(c, "smtp,smtps", s->ca_file, s->login, s->password, s->timeout);
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rl);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, feed);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, trace);
    curl_easy_setopt(c, CURLOPT_DEBUGDATA, last);
    curl_easy_setopt(c, CURLOPT_VERBOSE, 1L); /* for trace: nothing is printed */
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(rl);
    curl_easy_cleanup(c);
    if (rc == CURLE_OK)
        return DC_OK;
    if (last[0] >= '4' && last[0] <= '5')
        return dc_fail(err, DC_ERR_IO, "the server refused: %s", last);
    return dc_fail(err, DC_ERR_IO, "SMTP: %s", ebuf[0] ? ebuf : curl_easy_strerror(rc));
}
