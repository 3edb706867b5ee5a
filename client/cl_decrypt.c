/*
 * cl_decrypt - opening and checking one message with the user's own key (see cl_decrypt.h).
 */
#include "cl_decrypt.h"

#include "cl_send.h"

#include "dc_b64.h"
#include "dc_message.h"
#include "dc_mime.h"

#include <ctype.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_NAME 254

const char *cl_dime_name(enum cl_dime r)
{
    return r == CL_DIME_PASS ? "pass" : r == CL_DIME_FAIL ? "fail" : "none";
}

/* Records the first reason a message fails; later ones are consequences. */
__attribute__((format(printf, 2, 3))) static void why(struct cl_opened *o, const char *fmt, ...)
{
    if (o->result == CL_DIME_FAIL && o->reason[0])
        return;
    struct dc_err e;
    va_list ap;
    va_start(ap, fmt);
    dc_vfail(&e, DC_ERR_SIGNATURE, fmt, ap);
    va_end(ap);
    o->result = CL_DIME_FAIL;
    /* the reason goes into a header comment: nothing that would end or escape it */
    size_t n = 0;
    for (const char *c = e.msg; *c && n + 1 < sizeof(o->reason); c++)
        o->reason[n++] = strchr("()\\", *c) || (unsigned char)*c < 0x20 ||
                                 (unsigned char)*c >= 0x7f ? ' ' : *c;
    o->reason[n] = '\0';
}

/* ---- signets the user holds ---- */

struct finder {
    const struct cl_reader *r;
    struct cl_opened *o;
};

/* A name from the envelope as a file name: lower case, letters, digits and ".-_+@" only,
 * not starting with '.'; false otherwise. */
static bool file_name(const char *name, char out[MAX_NAME + 1])
{
    size_t n = strlen(name);
    if (n == 0 || n > MAX_NAME || name[0] == '.')
        return false;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c != '\0' && !isalnum(c) && !strchr(".-_+@", c))
            return false;
        out[i] = (char)tolower(c);
    }
    return true;
}

/* dir/NAME.signet when the user has it: DC_OK, DC_ERR_NOTFOUND, or the load error. */
static enum dc_status held(const char *dir, const char *name, struct dc_signet **out,
                           struct dc_err *err)
{
    char *p = dc_xasprintf("%s/%s.signet", dir, name);
    enum dc_status s = access(p, F_OK) == 0 ? dc_signet_load_file(p, out, err) : DC_ERR_NOTFOUND;
    free(p);
    return s;
}

/* The org signet of domain: the signet directory's, else the user's own org signet when
 * the domain is the user's. */
static enum dc_status org_of(const struct finder *f, const char *domain, struct dc_signet **out,
                             struct dc_err *err)
{
    enum dc_status s = held(f->r->signets, domain, out, err);
    const char *own = strrchr(f->r->address, '@');
    if (s == DC_ERR_NOTFOUND && f->r->own_org != NULL && own && strcasecmp(own + 1, domain) == 0) {
        *out = dc_signet_dup(f->r->own_org);
        s = DC_OK;
    }
    if (s == DC_ERR_NOTFOUND)
        why(f->o, "unverified: no signet of %s in %s", domain, f->r->signets);
    else if (s != DC_OK)
        why(f->o, "the signet of %s: %s", domain, err->msg);
    return s;
}

static enum dc_status find(void *ctx, enum dc_msg_role role, const char *name, const char *fp,
                           struct dc_signet **out, struct dc_err *err)
{
    struct finder *f = ctx;
    char fn[MAX_NAME + 1];
    (void)fp; /* dc_message compares the signet with the envelope's fingerprint */
    if (name == NULL)
        return DC_ERR_NOTFOUND;
    bool user = role == DC_MSG_AUTHOR_SIGNET;
    const char *at = strrchr(name, '@');
    if (!file_name(name, fn) || (user ? at == NULL || at == name : at != NULL)) {
        why(f->o, "malformed %s in the envelope", user ? "author" : "origin");
        return dc_fail(err, DC_ERR_FIELD, "malformed name");
    }
    if (!user)
        return org_of(f, fn, out, err);
    struct dc_signet *org = NULL, *u = NULL;
    enum dc_status s = org_of(f, strrchr(fn, '@') + 1, &org, err);
    if (s == DC_OK) {
        if (f->r->own_user != NULL && strcasecmp(fn, f->r->address) == 0) {
            u = dc_signet_dup(f->r->own_user);
        } else if ((s = held(f->r->signets, fn, &u, err)) == DC_ERR_NOTFOUND) {
            why(f->o, "unverified: no signet of %s in %s", fn, f->r->signets);
        } else if (s != DC_OK) {
            why(f->o, "the signet of %s: %s", fn, err->msg);
        }
    }
    if (s == DC_OK && dc_signet_verify_user(u, org, NULL, err) < DC_SS_CRYPTO) {
        why(f->o, "the signet of %s does not verify under its org signet", fn);
        s = dc_fail(err, DC_ERR_SIGNATURE, "author signet not verified");
    }
    dc_signet_free(org);
    if (s == DC_OK)
        *out = u;
    else
        dc_signet_free(u);
    return s;
}

/* ---- the message around it ---- */

/* Whether f is an Authentication-Results field whose authserv-id is id (RFC 8601: after
 * blanks and comments, the id, then ';', a blank, a comment or the end). */
static bool claims(const struct dc_mime_field *f, const char *id)
{
    if (!dc_mime_name_is(f, "Authentication-Results"))
        return false;
    const uint8_t *v = f->value.p, *end = v + f->value.len;
    for (;;) {
        while (v < end && isspace(*v))
            v++;
        if (v == end || *v != '(')
            break;
        for (int depth = 0; v < end; v++) {
            if (*v == '\\' && v + 1 < end)
                v++;
            else if (*v == '(')
                depth++;
            else if (*v == ')' && --depth == 0) {
                v++;
                break;
            }
        }
    }
    size_t n = strlen(id);
    return (size_t)(end - v) >= n && strncasecmp((const char *)v, id, n) == 0 &&
           (v + n == end || v[n] == ';' || v[n] == '(' || isspace(v[n]));
}

/* out gets our field, then e's fields but those claiming id, its separator and body. */
static void emit(const struct cl_reader *r, const struct dc_mime_entity *e, const char *field,
                 struct cl_opened *o)
{
    /* the message's own line ends */
    bool crlf = e->nfields == 0 || (e->fields[0].raw.len >= 2 &&
                                    e->fields[0].raw.p[e->fields[0].raw.len - 2] == '\r');
    struct dc_buf b;
    dc_buf_init(&b);
    dc_buf_printf(&b, "Authentication-Results: %s; ", r->authserv_id);
    for (const char *c = field; *c; c++) {
        if (*c == '\n')
            dc_buf_append(&b, crlf ? "\r\n\t" : "\n\t", crlf ? 3 : 2);
        else
            dc_buf_putc(&b, (uint8_t)*c);
    }
    dc_buf_append(&b, crlf ? "\r\n" : "\n", crlf ? 2 : 1);
    for (size_t i = 0; i < e->nfields; i++)
        if (!claims(&e->fields[i], r->authserv_id))
            dc_buf_append(&b, e->fields[i].raw.p, e->fields[i].raw.len);
    dc_buf_append(&b, e->sep.p, e->sep.len);
    dc_buf_append(&b, e->body.p, e->body.len);
    o->msg = dc_buf_steal(&b, &o->len);
}

/* The bytes of a base64 body: its alphabet, with line breaks and blanks between. */
static enum dc_status unbase64(const struct dc_mime_view *body, uint8_t **out, size_t *len)
{
    char *t = dc_xmalloc(body->len + 1);
    size_t n = 0;
    for (size_t i = 0; i < body->len; i++) {
        uint8_t c = body->p[i];
        if (isalnum(c) || c == '+' || c == '/' || c == '=')
            t[n++] = (char)c;
        else if (!isspace(c)) {
            free(t);
            return DC_ERR_BASE64;
        }
    }
    *out = dc_xmalloc(dc_b64_dec_max(n) + 1);
    enum dc_status s = n == 0 ? DC_ERR_BASE64 : dc_b64_decode(t, n, *out, len, NULL);
    free(t);
    if (s != DC_OK) {
        free(*out);
        *out = NULL;
    }
    return s;
}

static bool cte_base64(const struct dc_mime_entity *e)
{
    const struct dc_mime_field *f = dc_mime_find(e, "Content-Transfer-Encoding");
    if (f == NULL)
        return false;
    struct dc_buf v;
    dc_buf_init(&v);
    dc_mime_unfold(f, &v);
    bool yes = v.len == 6 && strncasecmp((const char *)v.data, "base64", 6) == 0;
    dc_buf_free(&v);
    return yes;
}

/* The D/MIME opened as the recipient: every check of the milter's inbound side, with the
 * user's key and the user's signets. Sets o->author; the rebuilt message on success. */
static uint8_t *open_dmime(const struct cl_reader *r, const uint8_t *bin, size_t blen,
                           struct cl_opened *o, size_t *mlen, char fps[2][DC_FP_B64_LEN + 1],
                           char **origin)
{
    struct finder f = {r, o};
    struct dc_msg_lookup lookup = {find, &f};
    struct dc_kek_source ks;
    dc_kek_source_local(&ks, r->ek);
    struct dc_message *m = NULL;
    struct dc_err e = {0};
    enum dc_status s = dc_message_decrypt(bin, blen, DC_ACTOR_RECIPIENT, &ks, &lookup, &m, &e);
    /* sealed to an earlier generation (sent before a rotation or a migration reached the
     * sender): the keys kept for it, the current key's failure reported when none opens it */
    for (size_t i = 0; s != DC_OK && i < r->nolder; i++) {
        struct dc_message *m2 = NULL;
        struct dc_err e2 = {0};
        dc_kek_source_local(&ks, r->older[i]);
        if (dc_message_decrypt(bin, blen, DC_ACTOR_RECIPIENT, &ks, &lookup, &m2, &e2) == DC_OK) {
            dc_message_free(m);
            m = m2;
            s = DC_OK;
        } else {
            dc_message_free(m2);
        }
    }
    uint8_t *mime = NULL;
    if (m != NULL && m->env.author != NULL)
        o->author = dc_xstrdup(m->env.author);
    const char *adom = o->author ? strrchr(o->author, '@') : NULL;
    struct cl_msg cm = {0};
    if (s != DC_OK) {
        why(o, "%s", e.msg[0] ? e.msg : dc_status_name(s));
    } else if (!m->have_author_key || !m->have_origin_key) {
        why(o, "the %s signature could not be checked", m->have_author_key ? "origin" : "author");
    } else if (m->mime == NULL || !m->framed) {
        why(o, "the message could not be rebuilt byte for byte");
    } else if (m->env.recipient == NULL || strcasecmp(m->env.recipient, r->address) != 0) {
        why(o, "the D/MIME is not addressed to %s", r->address);
    } else if (adom == NULL || m->env.origin == NULL || strcasecmp(adom + 1, m->env.origin) != 0) {
        why(o, "the origin is not the author's domain");
    } else if (cl_msg_parse(m->mime, m->mime_len, m->mime_len, &cm, &e) != DC_OK ||
               cm.from == NULL || strcasecmp(cm.from, o->author) != 0) {
        why(o, "From does not name the signing author alone");
    } else {
        mime = m->mime;
        *mlen = m->mime_len;
        m->mime = NULL;
        snprintf(fps[0], DC_FP_B64_LEN + 1, "%s", m->env.author_fp ? m->env.author_fp : "?");
        snprintf(fps[1], DC_FP_B64_LEN + 1, "%s", m->env.origin_fp ? m->env.origin_fp : "?");
        *origin = dc_xstrdup(m->env.origin);
    }
    cl_msg_free(&cm);
    dc_message_free(m);
    return mime;
}

void cl_open_message(const struct cl_reader *r, const uint8_t *in, size_t len,
                     struct cl_opened *o)
{
    memset(o, 0, sizeof(*o));
    o->result = CL_DIME_NONE;
    struct dc_mime_limits lim;
    dc_mime_limits_default(&lim);
    lim.max_size = SIZE_MAX;
    struct dc_mime_entity e;
    cl_digest(in, len, o->digest);
    if (dc_mime_parse_header(in, len, &lim, &e, NULL) != DC_OK) {
        /* not even a header: handed out as it is, under our verdict */
        struct dc_mime_entity bare = {.body = {in, len}};
        emit(r, &bare, "dime=none (not a DIME message)", o);
        return;
    }
    if (strcmp(e.ctype, "application/x-dime") != 0) {
        emit(r, &e, "dime=none (not a DIME message)", o);
        dc_mime_free(&e);
        return;
    }
    uint8_t *bin = NULL, *mime = NULL;
    size_t blen = 0, mlen = 0;
    char fps[2][DC_FP_B64_LEN + 1], *origin = NULL;
    if (!cte_base64(&e) || unbase64(&e.body, &bin, &blen) != DC_OK) {
        why(o, "the wrapper's body is not base64");
    } else {
        cl_digest(bin, blen, o->digest);
        mime = open_dmime(r, bin, blen, o, &mlen, fps, &origin);
    }
    struct dc_mime_entity inner;
    if (mime != NULL && dc_mime_parse_header(mime, mlen, &lim, &inner, NULL) == DC_OK) {
        o->result = CL_DIME_PASS;
        char *ar = dc_xasprintf("dime=pass header.from=%s\n(author signet %s; origin %s "
                                "signet %s)", o->author, fps[0], origin, fps[1]);
        emit(r, &inner, ar, o);
        free(ar);
        dc_mime_free(&inner);
    } else {
        if (mime != NULL)
            why(o, "the rebuilt message has no header");
        char *ar = dc_xasprintf("dime=fail\n(%s)", o->reason);
        emit(r, &e, ar, o);
        free(ar);
    }
    free(origin);
    free(mime);
    free(bin);
    dc_mime_free(&e);
}

void cl_opened_free(struct cl_opened *o)
{
    free(o->author);
    free(o->msg);
    memset(o, 0, sizeof(*o));
}
