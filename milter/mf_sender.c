/*
 * mf_sender - sender ownership and the From address (see mf_sender.h).
 */
#include "mf_sender.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAP_MAX_BYTES (16u << 20)

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static int entry_cmp(const void *a, const void *b)
{
    return strcasecmp(((const struct mf_login_entry *)a)->key,
                      ((const struct mf_login_entry *)b)->key);
}

static void entry_free(struct mf_login_entry *e)
{
    free(e->key);
    for (size_t i = 0; i < e->nlogins; i++)
        free(e->logins[i]);
    free(e->logins);
}

/* A key is "local@domain" or "@domain": one '@', a domain after it, no blanks. */
static bool key_ok(const char *k)
{
    const char *at = strchr(k, '@');
    return at != NULL && strchr(at + 1, '@') == NULL && at[1] != '\0' && at[1] != '.';
}

/* One logical line (text, NUL-terminated, continuation lines already joined) into e. */
static enum dc_status parse_entry(char *line, const char *name, unsigned lineno,
                                  struct mf_login_entry *e, struct dc_err *err)
{
    memset(e, 0, sizeof(*e));
    char *save = NULL;
    char *key = strtok_r(line, " \t\r\n", &save);
    if (key == NULL)
        return DC_OK; /* nothing but blanks */
    if (!key_ok(key))
        return dc_fail(err, DC_ERR_FORMAT, "%s:%u: \"%.80s\" is neither an address nor @domain",
                       name, lineno, key);
    e->key = dc_xstrdup(key);
    for (char *l; (l = strtok_r(NULL, ", \t\r\n", &save)) != NULL;) {
        e->logins = dc_xrealloc(e->logins, (e->nlogins + 1) * sizeof(char *));
        e->logins[e->nlogins++] = dc_xstrdup(l);
    }
    if (e->nlogins == 0) {
        entry_free(e);
        memset(e, 0, sizeof(*e));
        return dc_fail(err, DC_ERR_FORMAT, "%s:%u: %.80s: no login", name, lineno, key);
    }
    return DC_OK;
}

enum dc_status mf_login_map_parse(const char *text, size_t len, const char *name,
                                  struct mf_login_map *out, struct dc_err *err)
{
    memset(out, 0, sizeof(*out));
    struct dc_buf logical;
    dc_buf_init(&logical);
    unsigned lineno = 0, start = 0;
    enum dc_status s = DC_OK;
    size_t off = 0;
    /* one pass over the physical lines; a logical line is parsed when the next one starts
     * (or at the end) */
    while (s == DC_OK) {
        bool end = off >= len;
        const char *line = text + off;
        size_t ll = 0;
        if (!end) {
            const char *nl = memchr(line, '\n', len - off);
            ll = nl ? (size_t)(nl - line) : len - off;
            off += ll + 1;
            lineno++;
            if (memchr(line, '\0', ll) != NULL) {
                s = dc_fail(err, DC_ERR_FORMAT, "%s:%u: a NUL byte", name, lineno);
                break;
            }
        }
        size_t i = 0;
        while (i < ll && blank(line[i]))
            i++;
        bool empty = i == ll;
        bool comment = !empty && line[i] == '#';
        if (!end && (empty || comment))
            continue;
        if (!end && i > 0) { /* a continuation of the logical line */
            if (logical.len == 0) {
                s = dc_fail(err, DC_ERR_FORMAT, "%s:%u: a continuation line without an entry",
                            name, lineno);
                break;
            }
            dc_buf_putc(&logical, ' ');
            dc_buf_append(&logical, line + i, ll - i);
            continue;
        }
        if (logical.len > 0) {
            struct mf_login_entry e;
            s = parse_entry((char *)logical.data, name, start, &e, err);
            if (s == DC_OK && e.key != NULL) {
                out->entries = dc_xrealloc(out->entries, (out->n + 1) * sizeof(e));
                out->entries[out->n++] = e;
            }
            logical.len = 0;
            logical.data[0] = '\0';
        }
        if (end)
            break;
        start = lineno;
        dc_buf_append(&logical, line, ll);
    }
    dc_buf_free(&logical);
    if (s == DC_OK && out->n > 1) {
        qsort(out->entries, out->n, sizeof(*out->entries), entry_cmp);
        for (size_t i = 1; i < out->n; i++)
            if (strcasecmp(out->entries[i - 1].key, out->entries[i].key) == 0) {
                s = dc_fail(err, DC_ERR_FORMAT, "%s: %.80s is listed twice", name,
                            out->entries[i].key);
                break;
            }
    }
    if (s != DC_OK)
        mf_login_map_free(out);
    return s;
}

enum dc_status mf_login_map_load(const char *path, struct mf_login_map *out,
                                 struct dc_err *err)
{
    uint8_t *text;
    size_t len;
    memset(out, 0, sizeof(*out));
    enum dc_status s = dc_read_file(path, MAP_MAX_BYTES, &text, &len, err);
    if (s != DC_OK)
        return s;
    s = mf_login_map_parse((const char *)text, len, path, out, err);
    free(text);
    return s;
}

void mf_login_map_free(struct mf_login_map *m)
{
    for (size_t i = 0; i < m->n; i++)
        entry_free(&m->entries[i]);
    free(m->entries);
    memset(m, 0, sizeof(*m));
}

static const struct mf_login_entry *find_key(const struct mf_login_map *m, const char *key)
{
    struct mf_login_entry probe = {.key = (char *)(uintptr_t)key};
    return bsearch(&probe, m->entries, m->n, sizeof(*m->entries), entry_cmp);
}

const struct mf_login_entry *mf_login_map_find(const struct mf_login_map *m,
                                               const char *sender)
{
    if (m == NULL || m->n == 0 || sender == NULL)
        return NULL;
    const struct mf_login_entry *e = find_key(m, sender);
    const char *at = strrchr(sender, '@');
    if (e == NULL && at != NULL && at != sender)
        e = find_key(m, at);
    return e;
}

bool mf_login_owns(const struct mf_login_map *m, const char *login, const char *sender)
{
    if (login == NULL || *login == '\0' || sender == NULL || *sender == '\0')
        return false;
    const struct mf_login_entry *e = mf_login_map_find(m, sender);
    if (e != NULL) {
        for (size_t i = 0; i < e->nlogins; i++)
            if (strcasecmp(e->logins[i], login) == 0)
                return true;
        return false;
    }
    if (strcasecmp(login, sender) == 0)
        return true;
    const char *at = strrchr(sender, '@');
    size_t ll = strlen(login);
    return at != NULL && (size_t)(at - sender) == ll && strncasecmp(sender, login, ll) == 0;
}

/* ---- the From field ---- */

char *mf_from_single(const char *value)
{
    /* Outside comments: the text between the first pair of angle brackets, or the whole
     * text when there is none. A comma or a colon (a group) outside quotes, comments and
     * brackets means something other than one mailbox. */
    struct dc_buf bare, angle;
    dc_buf_init(&bare);
    dc_buf_init(&angle);
    int depth = 0, nangle = 0;
    bool quoted = false, in_angle = false, bad = false;
    for (const char *v = value; *v && !bad; v++) {
        char c = *v;
        if (c == '\\' && (quoted || depth > 0) && v[1]) {
            v++; /* a quoted pair: not a delimiter */
            if (!depth)
                dc_buf_putc(in_angle ? &angle : &bare, (uint8_t)*v);
            continue;
        }
        if (depth > 0) {
            depth += c == '(' ? 1 : c == ')' ? -1 : 0;
            continue;
        }
        if (quoted) {
            quoted = c != '"';
            if (in_angle)
                dc_buf_putc(&angle, (uint8_t)c);
            else
                dc_buf_putc(&bare, (uint8_t)c);
            continue;
        }
        switch (c) {
        case '(':
            depth = 1;
            break;
        case '"':
            quoted = true;
            dc_buf_putc(in_angle ? &angle : &bare, (uint8_t)c);
            break;
        case '<':
            if (in_angle || ++nangle > 1)
                bad = true;
            in_angle = true;
            break;
        case '>':
            if (!in_angle)
                bad = true;
            in_angle = false;
            break;
        case ',':
        case ';':
            bad = true;
            break;
        case ':':
            if (!in_angle)
                bad = true; /* a group */
            dc_buf_putc(&angle, (uint8_t)c);
            break;
        default:
            dc_buf_putc(in_angle ? &angle : &bare, (uint8_t)c);
        }
    }
    bad = bad || depth != 0 || quoted || in_angle;
    struct dc_buf *src = nangle ? &angle : &bare;
    char *addr = NULL;
    if (!bad) {
        dc_buf_putc(src, '\0');
        char *s = (char *)src->data;
        if (nangle) {
            char *route = strrchr(s, ':'); /* an obsolete source route: @a,@b:addr */
            if (route)
                s = route + 1;
        }
        while (*s && (blank(*s) || *s == '\n'))
            s++;
        size_t n = strlen(s);
        while (n > 0 && (blank(s[n - 1]) || s[n - 1] == '\n'))
            n--;
        bool ok = n > 0 && memchr(s, '@', n) != NULL;
        for (size_t i = 0; ok && i < n; i++)
            ok = !blank(s[i]) && s[i] != '\n';
        if (ok)
            addr = dc_xstrndup(s, n);
    }
    dc_buf_free(&bare);
    dc_buf_free(&angle);
    return addr;
}
