/*
 * dc_message - MIME <-> final D/MIME, joining dc_dmap and dc_dmime (see dc_message.h).
 */
#include "dc_message.h"

#include "dc_b64.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The domain of an address: what follows the last '@', which must be non-empty. */
static const char *domain_of(const char *addr)
{
    const char *at = strrchr(addr, '@');
    return at && at[1] ? at + 1 : NULL;
}

/* 1 when pub is the org signet's POK or one of its SOKs with the MSG bit. */
static int org_may_sign(const struct dc_signet *org, const uint8_t pub[DC_ED25519_PUB_LEN])
{
    uint8_t pok[DC_ED25519_PUB_LEN];
    if (dc_signet_signing_key(org, pok, NULL) == DC_OK && memcmp(pok, pub, sizeof(pok)) == 0)
        return 1;
    struct dc_sok soks[DC_DMIME_MAX_ORIGIN_KEYS];
    size_t n = dc_signet_soks(org, soks, DC_DMIME_MAX_ORIGIN_KEYS);
    if (n > DC_DMIME_MAX_ORIGIN_KEYS)
        n = DC_DMIME_MAX_ORIGIN_KEYS;
    for (size_t i = 0; i < n; i++)
        if ((soks[i].perm & DC_SOK_MSG) && memcmp(soks[i].pub, pub, DC_ED25519_PUB_LEN) == 0)
            return 1;
    return 0;
}

/* Asks the caller's lookup for a signet; NOTFOUND is an error only when required. */
static enum dc_status lookup_signet(const struct dc_msg_lookup *l, enum dc_msg_role role,
                                    const char *name, const char *fp, int required,
                                    struct dc_signet **out, struct dc_err *err)
{
    const char *what = role == DC_MSG_AUTHOR_SIGNET ? "author" : "origin";
    enum dc_status st = DC_ERR_NOTFOUND;
    *out = NULL;
    if (l && l->find) {
        struct dc_err e = {0};
        st = l->find(l->ctx, role, name, fp, out, &e);
        if (st == DC_OK && *out == NULL)
            st = DC_ERR_NOTFOUND;
        if (st != DC_OK && st != DC_ERR_NOTFOUND) {
            dc_signet_free(*out);
            *out = NULL;
            return dc_fail(err, st, "%s signet lookup: %s", what,
                           e.msg[0] ? e.msg : dc_status_name(st));
        }
    }
    if (st == DC_ERR_NOTFOUND) {
        if (!required)
            return DC_OK;
        return dc_fail(err, DC_ERR_NOTFOUND, "no %s signet for <%s> [%.16s...]", what,
                       name ? name : "?", fp ? fp : "?");
    }
    return DC_OK;
}

/* ---- the origin's step ---- */

/* With out NULL, m is signed in place. */
static enum dc_status origin_step(struct dc_dmime *m, const struct dc_kek_source *ks,
                                  const struct dc_signer *signer,
                                  const struct dc_msg_lookup *lookup, struct dc_dmime **out,
                                  struct dc_err *err)
{
    struct dc_dmime_reader *r = NULL;
    struct dc_signet *as = NULL, *os = NULL;
    struct dc_dmime_result *res = NULL;
    struct dc_dmime_signet_keys k;
    enum dc_status st = dc_dmime_open(m, DC_ACTOR_ORIGIN, ks, &r, err);
    if (st != DC_OK)
        return st;
    const struct dc_dmime_envelope *env = dc_dmime_envelope(r);
    if ((st = lookup_signet(lookup, DC_MSG_AUTHOR_SIGNET, env->author, env->author_fp, 1, &as,
                            err)) ||
        (st = lookup_signet(lookup, DC_MSG_ORIGIN_SIGNET, NULL, NULL, 0, &os, err)))
        goto done;
    if (os && !org_may_sign(os, signer->pub)) {
        st = dc_fail(err, DC_ERR_KEY,
                     "the origin signing key is neither the origin signet's POK nor a SOK "
                     "allowed to sign messages");
        goto done;
    }
    /* The origin signatures are still placeholders: check only the author's. */
    if ((st = dc_dmime_keys_from_signets(r, as, NULL, &k, err)) ||
        (st = dc_dmime_decrypt(r, &k.keys, &res, err)))
        goto done;
    st = out ? dc_dmime_origin_sign(r, signer, out, err)
             : dc_dmime_origin_sign_inplace(r, m, signer, err);
done:
    dc_dmime_result_free(res);
    dc_signet_free(as);
    dc_signet_free(os);
    dc_dmime_reader_free(r);
    return st;
}

enum dc_status dc_message_origin_sign(const uint8_t *bin, size_t len,
                                      const struct dc_kek_source *ks,
                                      const struct dc_signer *origin,
                                      const struct dc_msg_lookup *lookup, struct dc_dmime **out,
                                      struct dc_err *err)
{
    *out = NULL;
    if (!bin || !ks || !origin)
        return dc_fail(err, DC_ERR_ARG, "origin signing: missing argument");
    struct dc_dmime *m = NULL;
    enum dc_status st = dc_dmime_parse(bin, len, &m, err);
    if (st != DC_OK)
        return st;
    st = origin_step(m, ks, origin, lookup, out, err);
    dc_dmime_free(m);
    return st;
}

/* ---- encryption ---- */

/* The lookup used right after encryption: the parties' own signets. */
static enum dc_status parties_find(void *ctx, enum dc_msg_role role, const char *name,
                                   const char *fp, struct dc_signet **out, struct dc_err *err)
{
    const struct dc_msg_parties *p = ctx;
    *out = dc_signet_dup(role == DC_MSG_AUTHOR_SIGNET ? p->author : p->origin);
    return DC_OK;
}

struct party_keys {
    char fp[4][DC_FP_B64_LEN + 1];
    uint8_t enc[4][DC_SECP_PUB_LEN];
};

static enum dc_status party_keys(const struct dc_msg_parties *p, struct party_keys *k,
                                 struct dc_err *err)
{
    const struct dc_signet *s[4] = {p->author, p->origin, p->destination, p->recipient};
    static const enum dc_signet_type want[4] = {DC_SIGNET_USER, DC_SIGNET_ORG, DC_SIGNET_ORG,
                                                DC_SIGNET_USER};
    for (unsigned a = 0; a < 4; a++) {
        const char *who = dc_actor_name((enum dc_actor)a);
        struct dc_err e = {0};
        enum dc_status st;
        if (s[a]->type != want[a])
            return dc_fail(err, DC_ERR_ARG, "the %s signet is a %s signet, not a %s signet", who,
                           dc_signet_type_name(s[a]->type), dc_signet_type_name(want[a]));
        if ((st = dc_signet_fingerprint(s[a], DC_FP_CRYPTO, k->fp[a], &e)) ||
            (st = dc_signet_enc_key(s[a], k->enc[a], &e)))
            return dc_fail(err, st, "the %s signet: %s", who, e.msg);
    }
    return DC_OK;
}

/* Cuts the bytes of an item (the concatenation of segs) into parts of at most max bytes,
 * the continuation flag on all but the last; each part gets its own slice of the segments. */
static void cut_item(const struct dc_dmime_seg *segs, size_t nsegs, size_t total, size_t max,
                     struct dc_dmime_part *parts, size_t *np, struct dc_dmime_seg *pool,
                     size_t *npool)
{
    size_t pieces = total == 0 ? 1 : total / max + (total % max != 0);
    size_t si = 0, soff = 0;
    for (size_t k = 0; k < pieces; k++) {
        size_t want = total - k * max < max ? total - k * max : max;
        struct dc_dmime_part *pt = &parts[(*np)++];
        pt->len = want;
        pt->flags = k + 1 < pieces ? DC_DMAP_FLAG_CONTINUED : 0;
        pt->segs = pool + *npool;
        pt->data = NULL;
        pt->nsegs = 0;
        while (want > 0 && si < nsegs) {
            size_t avail = segs[si].len - soff;
            if (avail == 0) {
                si++;
                soff = 0;
                continue;
            }
            size_t take = avail < want ? avail : want;
            pool[(*npool)++] = (struct dc_dmime_seg){segs[si].p + soff, take};
            pt->nsegs++;
            soff += take;
            want -= take;
        }
    }
}

/*
 * MIME -> D/MIME. The input is mime[0, len) (in a map when inmap is set: its scanned and
 * encrypted ranges are released); the output goes to a heap message (*out) or, with
 * out_fd >= 0, into a map of that file (then *out's bytes live in *outmap).
 */
/* A decoded attachment of a message in a file goes to an unlinked temporary file (in
 * $TMPDIR, else /tmp), mapped, so that the file path keeps its bounded resident set. */
static int spill_file(void *ctx)
{
    (void)ctx;
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] != '/')
        dir = "/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
    char path[4096];
    snprintf(path, sizeof(path), "%s/dime-spill-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

static enum dc_status encrypt_common(const uint8_t *mime, size_t len, const struct dc_fmap *inmap,
                                     int out_fd, const struct dc_msg_parties *p,
                                     const struct dc_signer *author,
                                     const struct dc_signer *origin,
                                     const struct dc_kek_source *origin_kek,
                                     const struct dc_msg_opts *opts, struct dc_dmime **out,
                                     struct dc_fmap **outmap, struct dc_err *err)
{
    *out = NULL;
    if ((!mime && len) || !p || !p->author || !p->origin || !p->destination || !p->recipient ||
        !author)
        return dc_fail(err, DC_ERR_ARG, "encrypt: missing message, signet or author key");
    if ((origin == NULL) != (origin_kek == NULL))
        return dc_fail(err, DC_ERR_ARG,
                       "encrypt: origin signing needs both the origin's signer and its KEK");
    static const struct dc_msg_opts defaults = {0};
    if (!opts)
        opts = &defaults;

    struct party_keys pk;
    struct dc_dmap_out mo;
    struct dc_dmime_part *parts = NULL;
    struct dc_dmime_seg *pool = NULL;
    struct dc_dmime *m = NULL;
    struct dc_fmap *map = NULL;
    int mapped = 0;
    enum dc_status st;
    char *from = p->from ? dc_xstrdup(p->from) : dc_signet_id(p->author);
    char *to = p->to ? dc_xstrdup(p->to) : dc_signet_id(p->recipient);
    const char *odom = from ? domain_of(from) : NULL;
    const char *ddom = to ? domain_of(to) : NULL;
    if (!odom || !ddom) {
        st = dc_fail(err, DC_ERR_ARG,
                     "encrypt: no envelope %s address with a domain (give one, or a signet "
                     "whose identifier is one)",
                     odom ? "recipient" : "sender");
        goto done;
    }
    if ((st = party_keys(p, &pk, err)))
        goto done;
    uint8_t pub[DC_ED25519_PUB_LEN];
    if ((st = dc_signet_signing_key(p->author, pub, err)))
        goto done;
    if (memcmp(pub, author->pub, sizeof(pub)) != 0) {
        st = dc_fail(err, DC_ERR_KEY, "encrypt: the author key is not the author signet's key");
        goto done;
    }
    if (origin && !org_may_sign(p->origin, origin->pub)) {
        st = dc_fail(err, DC_ERR_KEY,
                     "encrypt: the origin key is neither the origin signet's POK nor a SOK "
                     "allowed to sign messages");
        goto done;
    }
    size_t max_data = opts->max_data ? opts->max_data : DC_DMAP_CHUNK_DATA_MAX;
    if (max_data > DC_DMAP_CHUNK_DATA_MAX) {
        st = dc_fail(err, DC_ERR_ARG, "chunk data limit %zu above the D/MIME maximum %u",
                     max_data, DC_DMAP_CHUNK_DATA_MAX);
        goto done;
    }

    /* The display content stays a view into the input (no copy of a large body). */
    struct dc_dmap_opts dopts = {.env_from = from, .env_to = to, .now = opts->now,
                                 .limits = opts->limits, .display_view = 1,
                                 .release = dc_fmap_releaser(inmap),
                                 .spill_fd = inmap ? spill_file : NULL};
    if ((st = dc_dmap_forward(mime, len, &dopts, &mo, err)))
        goto done;
    mapped = 1;
    /* Pieces exactly as dc_dmap_chunks cuts them: display first, then each attachment. */
    size_t dtotal = mo.display.len + mo.content.len, np = 0, npool = 0, cap = 0;
    cap += dtotal / max_data + 1;
    for (size_t i = 0; i < mo.nattach; i++)
        cap += mo.attach[i].len / max_data + 1;
    parts = dc_xcalloc(cap, sizeof(*parts));
    pool = dc_xcalloc(2 * cap, sizeof(*pool));
    struct dc_dmime_seg dseg[2] = {{mo.display.data, mo.display.len},
                                   {mo.content.p, mo.content.len}};
    cut_item(dseg, 2, dtotal, max_data, parts, &np, pool, &npool);
    size_t ndisp = np;
    for (size_t i = 0; i < mo.nattach; i++) {
        struct dc_dmime_seg as = {mo.attach[i].p, mo.attach[i].len};
        cut_item(&as, 1, as.len, max_data, parts, &np, pool, &npool);
    }
    struct dc_dmime_draft d = {
        .author = from,
        .author_fp = pk.fp[DC_ACTOR_AUTHOR],
        .author_enc = pk.enc[DC_ACTOR_AUTHOR],
        .origin = odom,
        .origin_fp = pk.fp[DC_ACTOR_ORIGIN],
        .origin_enc = pk.enc[DC_ACTOR_ORIGIN],
        .destination = ddom,
        .destination_fp = pk.fp[DC_ACTOR_DESTINATION],
        .destination_enc = pk.enc[DC_ACTOR_DESTINATION],
        .recipient = to,
        .recipient_fp = pk.fp[DC_ACTOR_RECIPIENT],
        .recipient_enc = pk.enc[DC_ACTOR_RECIPIENT],
        .common = mo.common.data,
        .common_len = mo.common.len,
        .other = mo.other.len ? mo.other.data : (const uint8_t *)DC_MSG_EMPTY_OTHER,
        .other_len = mo.other.len ? mo.other.len : strlen(DC_MSG_EMPTY_OTHER),
        .display = parts,
        .ndisplay = ndisp,
        .attach = parts + ndisp,
        .nattach = np - ndisp,
        .release = dc_dmap_releaser(&mo),
    };
    if (out_fd >= 0) {
        if ((st = dc_fmap_create(out_fd, dc_dmime_size_bound(&d), &map, err)) ||
            (st = dc_dmime_encrypt_to_map(&d, author, map, &m, err)))
            goto done;
    } else if ((st = dc_dmime_encrypt(&d, author, &m, err))) {
        goto done;
    }
    if (origin) {
        struct dc_msg_lookup own = {parties_find, (void *)p};
        if (map) {
            st = origin_step(m, origin_kek, origin, &own, NULL, err);
        } else {
            struct dc_dmime *signed_m = NULL;
            st = origin_step(m, origin_kek, origin, &own, &signed_m, err);
            dc_dmime_free(m);
            m = signed_m;
        }
        if (st != DC_OK)
            goto done;
    }
    if (map && (st = dc_fmap_finish(map, out_fd, m->len, err)))
        goto done;
    *out = m;
    m = NULL;
    if (outmap) {
        *outmap = map;
        map = NULL;
    }
done:
    dc_dmime_free(m);
    dc_fmap_close(map);
    free(parts);
    free(pool);
    if (mapped)
        dc_dmap_out_free(&mo);
    free(from);
    free(to);
    return st;
}

enum dc_status dc_message_encrypt(const uint8_t *mime, size_t len, const struct dc_msg_parties *p,
                                  const struct dc_signer *author, const struct dc_signer *origin,
                                  const struct dc_kek_source *origin_kek,
                                  const struct dc_msg_opts *opts, struct dc_dmime **out,
                                  struct dc_err *err)
{
    return encrypt_common(mime, len, NULL, -1, p, author, origin, origin_kek, opts, out, NULL,
                          err);
}

/* Largest D/MIME file (msg_size is 32 bits). */
#define MAX_DMIME_FILE ((size_t)0xffffffffu + 6u + 65540u)

enum dc_status dc_message_encrypt_fd(int in_fd, int out_fd, const struct dc_msg_parties *p,
                                     const struct dc_signer *author,
                                     const struct dc_signer *origin,
                                     const struct dc_kek_source *origin_kek,
                                     const struct dc_msg_opts *opts, size_t *out_len,
                                     struct dc_err *err)
{
    struct dc_fmap *in = NULL, *outmap = NULL;
    struct dc_dmime *m = NULL;
    const struct dc_mime_limits *lim = opts ? opts->limits : NULL;
    size_t max = lim ? lim->max_size : DC_MIME_MAX_SIZE;
    if (out_fd < 0)
        return dc_fail(err, DC_ERR_ARG, "encrypt: no output file");
    enum dc_status st = dc_fmap_read(in_fd, max, &in, err);
    if (st != DC_OK)
        return st;
    st = encrypt_common(in->p ? in->p : (const uint8_t *)"", in->len, in, out_fd, p, author,
                        origin, origin_kek, opts, &m, &outmap, err);
    if (st == DC_OK && out_len)
        *out_len = m->len;
    dc_dmime_free(m);
    dc_fmap_close(outmap);
    dc_fmap_close(in);
    return st;
}

/* Copies in_fd to out_fd (both from offset 0) in windows. */
static enum dc_status copy_file(int in_fd, int out_fd, size_t len, struct dc_err *err)
{
    uint8_t *buf = dc_xmalloc(DC_STREAM_WINDOW);
    size_t at = 0;
    enum dc_status st = DC_OK;
    while (at < len && st == DC_OK) {
        size_t want = len - at < DC_STREAM_WINDOW ? len - at : DC_STREAM_WINDOW;
        ssize_t n = pread(in_fd, buf, want, (off_t)at);
        if (n <= 0) {
            st = dc_fail(err, DC_ERR_IO, "reading the message: %s",
                         n < 0 ? strerror(errno) : "unexpected end of file");
            break;
        }
        for (ssize_t w = 0; w < n && st == DC_OK;) {
            ssize_t k = pwrite(out_fd, buf + w, (size_t)(n - w), (off_t)(at + (size_t)w));
            if (k <= 0)
                st = dc_fail(err, DC_ERR_IO, "writing the message: %s", strerror(errno));
            else
                w += k;
        }
        at += (size_t)n;
    }
    free(buf);
    return st;
}

enum dc_status dc_message_origin_sign_fd(int in_fd, int out_fd, const struct dc_kek_source *ks,
                                         const struct dc_signer *origin,
                                         const struct dc_msg_lookup *lookup, size_t *out_len,
                                         struct dc_err *err)
{
    if (!ks || !origin || out_fd < 0)
        return dc_fail(err, DC_ERR_ARG, "origin signing: missing argument");
    struct dc_fmap *in = NULL, *map = NULL;
    struct dc_dmime *m = NULL;
    enum dc_status st = dc_fmap_read(in_fd, MAX_DMIME_FILE, &in, err);
    if (st != DC_OK)
        return st;
    size_t len = in->len;
    dc_fmap_close(in);
    if (len == 0) {
        st = dc_fail(err, DC_ERR_TRUNCATED, "D/MIME: empty file");
        goto done;
    }
    /* The signatures are written in place into a copy of the message. */
    if ((st = copy_file(in_fd, out_fd, len, err)) ||
        (st = dc_fmap_create(out_fd, len, &map, err)))
        goto done;
    map->len = len;
    if ((st = dc_dmime_parse_mapped(map, &m, err)) ||
        (st = origin_step(m, ks, origin, lookup, NULL, err)))
        goto done;
    if (out_len)
        *out_len = len;
done:
    dc_dmime_free(m);
    dc_fmap_close(map);
    return st;
}

/* ---- decryption ---- */

static char *dup_or_null(const char *s)
{
    return s ? dc_xstrdup(s) : NULL;
}

void dc_message_free(struct dc_message *m)
{
    if (!m)
        return;
    struct dc_dmime_envelope *e = &m->env;
    char *strs[] = {e->author, e->author_fp, e->destination, e->destination_fp,
                    e->recipient, e->recipient_fp, e->origin, e->origin_fp};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(strs[i]);
    dc_dmime_result_free(m->res);
    dc_dmime_free(m->dm);
    dc_fmap_close(m->map);
    if (m->mime) {
        dc_memzero(m->mime, m->mime_len);
        free(m->mime);
    }
    free(m);
}

/*
 * A message for data without our framing: the common and other header lines, then the
 * display data as the body or, with attachments, a multipart/mixed whose first part is the
 * display data (text/plain) and each attachment item a base64 application/octet-stream part.
 */
static void unframed(const struct dc_dmime_item *common, const uint8_t *other, size_t olen,
                     const struct dc_dmap_chunk *pc, size_t n, struct dc_buf *b)
{
    int multi = 0;
    for (size_t i = 0; i < n; i++)
        multi |= pc[i].type == DC_CHUNK_ATTACH;
    dc_buf_append(b, common->data, common->data_len);
    dc_buf_append(b, other, olen);
    uint8_t rnd[12];
    char bnd[2 * sizeof(rnd) + 1];
    if (multi) {
        if (dc_random(rnd, sizeof(rnd)) != DC_OK)
            memset(rnd, 0x5a, sizeof(rnd));
        dc_hex_encode(rnd, sizeof(rnd), bnd);
        dc_buf_printf(b, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
                         "boundary=\"dime-%s\"\r\n\r\n--dime-%s\r\n"
                         "Content-Type: text/plain\r\n",
                      bnd, bnd);
    }
    dc_buf_append(b, "\r\n", 2);
    for (size_t i = 0; i < n;) {
        /* One item: this piece and its continuations. */
        struct dc_buf item;
        dc_buf_init(&item);
        uint8_t type = pc[i].type;
        do
            dc_buf_append(&item, pc[i].data, pc[i].len);
        while ((pc[i++].flags & DC_DMAP_FLAG_CONTINUED) && i < n && pc[i].type == type);
        if (type == DC_CHUNK_DISPLAY) {
            dc_buf_append(b, item.data, item.len);
        } else {
            dc_buf_printf(b, "\r\n--dime-%s\r\nContent-Type: application/octet-stream\r\n"
                             "Content-Transfer-Encoding: base64\r\n\r\n",
                          bnd);
            char *enc = dc_b64_encode_alloc(item.data, item.len, 1);
            size_t el = strlen(enc);
            for (size_t at = 0; at < el; at += 76) {
                dc_buf_append(b, enc + at, el - at < 76 ? el - at : 76);
                dc_buf_append(b, "\r\n", 2);
            }
            free(enc);
        }
        dc_buf_free(&item);
    }
    if (multi)
        dc_buf_printf(b, "\r\n--dime-%s--\r\n", bnd);
}

/* The MIME message from the decrypted chunk 34, 67 and 131 data. */
static enum dc_status rebuild(const struct dc_dmime_result *res, struct dc_message *out,
                              struct dc_err *err)
{
    struct dc_dmap_chunk *pc = dc_xcalloc(res->nitems ? res->nitems : 1, sizeof(*pc));
    size_t n = 0;
    for (size_t i = 0; i < res->nitems; i++) {
        const struct dc_dmime_item *it = &res->items[i];
        if (!it->visible || (it->type != DC_CHUNK_DISPLAY && it->type != DC_CHUNK_ATTACH))
            continue;
        pc[n].type = it->type;
        pc[n].flags = it->flags;
        pc[n].data = it->data;
        pc[n].len = it->data_len;
        n++;
    }
    const uint8_t *other = res->other ? res->other->data : NULL;
    size_t olen = res->other ? res->other->data_len : 0;
    if (olen == strlen(DC_MSG_EMPTY_OTHER) && memcmp(other, DC_MSG_EMPTY_OTHER, olen) == 0)
        olen = 0;
    struct dc_buf b;
    struct dc_err e = {0};
    dc_buf_init(&b);
    enum dc_status st = dc_dmap_reverse(other, olen, pc, n, &b, &e);
    out->framed = st == DC_OK;
    if (st == DC_ERR_MAGIC && res->common) {
        /* Not ours (no framing block): a message from another implementation. */
        unframed(res->common, other, olen, pc, n, &b);
        st = DC_OK;
    }
    free(pc);
    if (st != DC_OK) {
        dc_buf_free(&b);
        return dc_fail(err, st, "rebuilding the MIME message: %s", e.msg);
    }
    out->mime = dc_buf_steal(&b, &out->mime_len);
    return DC_OK;
}

/* ---- streaming rebuild ---- */

struct stream_rebuild {
    const struct dc_dmime_reader *r;
    const size_t *idx; /* dmap chunk -> D/MIME chunk index */
    size_t ndisp;      /* display pieces (the first ndisp) */
    const struct dc_dmap_chunk *pc;
    int fd;            /* output file, or -1: */
    struct dc_buf *mem; /* the output in memory */
    size_t written;
    struct dc_dmime_result *verify; /* decrypted with DC_DMIME_DEFER_CONTENT: verify while
                                       copying (dc_dmime_read_verified) */
};

/* Adapts a dmap sink to a dc_dmime_sink, dropping the first `skip` bytes. */
struct skip_sink {
    size_t skip;
    const struct dc_dmap_sink *out;
};

static enum dc_status skip_write(void *ctx, const uint8_t *p, size_t n, struct dc_err *err)
{
    struct skip_sink *s = ctx;
    if (s->skip >= n) {
        s->skip -= n;
        return DC_OK;
    }
    p += s->skip;
    n -= s->skip;
    s->skip = 0;
    return s->out->write(s->out->ctx, p, n, err);
}

static enum dc_status sr_copy(void *ctx, size_t i, size_t skip, const struct dc_dmap_sink *out,
                              struct dc_err *err)
{
    struct stream_rebuild *sr = ctx;
    struct skip_sink ss = {skip, out};
    if (sr->verify)
        return dc_dmime_read_verified(sr->r, sr->verify, sr->idx[i], skip_write, &ss, err);
    return dc_dmime_read_data(sr->r, sr->idx[i], skip_write, &ss, err);
}

struct prefix_fill {
    uint8_t *dst;
    size_t want, have;
};

/* Returned by prefix_write once the prefix is complete, to stop decrypting the chunk. */
#define PREFIX_FULL DC_ERR_LIMIT

static enum dc_status prefix_write(void *ctx, const uint8_t *p, size_t n, struct dc_err *err)
{
    struct prefix_fill *f = ctx;
    size_t k = f->want - f->have < n ? f->want - f->have : n;
    memcpy(f->dst + f->have, p, k);
    f->have += k;
    return f->have == f->want ? PREFIX_FULL : DC_OK;
}

/* Appends the first bytes of chunk i's data to f, until f is full. */
static enum dc_status read_prefix(const struct dc_dmime_reader *r, size_t i,
                                  struct prefix_fill *f, struct dc_err *err)
{
    if (f->have == f->want)
        return DC_OK;
    enum dc_status st = dc_dmime_read_data(r, i, prefix_write, f, err);
    return st == PREFIX_FULL && f->have == f->want ? DC_OK : st;
}

static enum dc_status sr_prefix(void *ctx, uint8_t *dst, size_t n, struct dc_err *err)
{
    struct stream_rebuild *sr = ctx;
    struct prefix_fill f = {dst, n, 0};
    for (size_t k = 0; k < sr->ndisp && f.have < n; k++) {
        enum dc_status st = read_prefix(sr->r, sr->idx[k], &f, err);
        if (st != DC_OK)
            return st;
    }
    if (f.have < n)
        return dc_fail(err, DC_ERR_TRUNCATED, "display data shorter than announced");
    return DC_OK;
}

static enum dc_status out_write(void *ctx, const uint8_t *p, size_t n, struct dc_err *err)
{
    struct stream_rebuild *sr = ctx;
    if (sr->mem) {
        dc_buf_append(sr->mem, p, n);
        sr->written += n;
        return DC_OK;
    }
    while (n > 0) {
        ssize_t k = write(sr->fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return dc_fail(err, DC_ERR_IO, "writing the message: %s", strerror(errno));
        p += k;
        n -= (size_t)k;
        sr->written += (size_t)k;
    }
    return DC_OK;
}

/*
 * The MIME message from data left in the D/MIME message, decrypted a window at a time while
 * it is written: to fd after dc_dmime_decrypt_ex with DC_DMIME_NO_CONTENT (every signature
 * was checked, and the data is decrypted a second time here: nothing reaches the file before
 * that), or with fd < 0 into msg->mime after DC_DMIME_DEFER_CONTENT (the display and
 * attachment chunks are decrypted and verified once, here, straight into the message; the
 * caller checks the result with dc_dmime_decrypt_finish before handing it out).
 */
static enum dc_status rebuild_stream(const struct dc_dmime_reader *r, struct dc_message *msg,
                                     int fd, struct dc_err *err)
{
    const struct dc_dmime_result *res = msg->res;
    struct dc_dmap_chunk *pc = dc_xcalloc(res->nitems ? res->nitems : 1, sizeof(*pc));
    size_t *idx = dc_xcalloc(res->nitems ? res->nitems : 1, sizeof(*idx));
    size_t n = 0, ndisp = 0;
    for (size_t i = 0; i < res->nitems; i++) {
        const struct dc_dmime_item *it = &res->items[i];
        if (!it->visible || (it->type != DC_CHUNK_DISPLAY && it->type != DC_CHUNK_ATTACH))
            continue;
        pc[n] = (struct dc_dmap_chunk){it->type, it->flags, NULL, it->data_len};
        idx[n] = i;
        if (it->type == DC_CHUNK_DISPLAY && ndisp == n)
            ndisp = n + 1;
        n++;
    }
    const uint8_t *other = res->other ? res->other->data : NULL;
    size_t olen = res->other ? res->other->data_len : 0;
    if (olen == strlen(DC_MSG_EMPTY_OTHER) && memcmp(other, DC_MSG_EMPTY_OTHER, olen) == 0)
        olen = 0;
    struct dc_buf mem;
    dc_buf_init(&mem);
    if (fd < 0) {
        /* An upper bound of the message: the data of chunks 34, 67 and 131 hold every byte
         * of it (the framing block holds the rest of the header and the delimiters). */
        size_t bound = olen;
        for (size_t k = 0; k < n; k++)
            bound += pc[k].len;
        dc_buf_reserve(&mem, bound);
    }
    struct stream_rebuild sr = {r, idx, ndisp, pc, fd, fd < 0 ? &mem : NULL, 0,
                                fd < 0 ? msg->res : NULL};
    struct dc_dmap_source src = {sr_copy, sr_prefix, &sr};
    struct dc_dmap_sink sink = {out_write, &sr};
    struct dc_err e = {0};
    enum dc_status st = dc_dmap_reverse_stream(other, olen, pc, n, &src, &sink, &e);
    msg->framed = st == DC_OK;
    if (st == DC_ERR_MAGIC && res->common && sr.written == 0) {
        /* Not ours (no framing block): load the data and rebuild in memory. */
        struct dc_dmime_result *rr = msg->res;
        st = DC_OK;
        for (size_t k = 0; k < n && st == DC_OK; k++) {
            struct dc_dmime_item *it = &rr->items[idx[k]];
            struct prefix_fill f = {dc_xmalloc(it->data_len + 1), it->data_len, 0};
            st = read_prefix(r, idx[k], &f, &e);
            it->data = f.dst;
        }
        if (st == DC_OK)
            st = rebuild(rr, msg, &e);
        if (st == DC_OK && fd >= 0) {
            st = out_write(&sr, msg->mime, msg->mime_len, &e);
            dc_memzero(msg->mime, msg->mime_len);
            free(msg->mime);
            msg->mime = NULL;
        }
    } else if (st == DC_OK && fd < 0) {
        msg->mime = dc_buf_steal(&mem, &msg->mime_len);
    }
    if (mem.data) {
        dc_memzero(mem.data, mem.len);
        dc_buf_free(&mem);
    }
    if (fd >= 0 || !msg->mime)
        msg->mime_len = sr.written;
    free(pc);
    free(idx);
    if (st != DC_OK)
        return dc_fail(err, st, "rebuilding the MIME message: %s", e.msg);
    return DC_OK;
}

/* Decrypts the parsed message dm (owned by the result on success) as actor. */
static enum dc_status decrypt_common(struct dc_dmime *dm, enum dc_actor actor,
                                     const struct dc_kek_source *ks,
                                     const struct dc_msg_lookup *lookup, int stream, int out_fd,
                                     struct dc_message **out, struct dc_err *err)
{
    struct dc_dmime_reader *r = NULL;
    struct dc_signet *as = NULL, *os = NULL;
    struct dc_dmime_result *res = NULL;
    struct dc_dmime_signet_keys k;
    struct dc_message *msg = NULL;
    enum dc_status st;
    struct dc_err oe = {0};
    if ((st = dc_dmime_open(dm, actor, ks, &r, &oe))) {
        /* A wrong key decrypts the envelope to noise: say so before the details. */
        if (st == DC_ERR_FORMAT || st == DC_ERR_FIELD)
            dc_fail(err, st, "the %s's key does not open this message, or its envelope is "
                             "damaged: %s", dc_actor_name(actor), oe.msg);
        else
            dc_fail(err, st, "%s", oe.msg);
        goto done;
    }
    const struct dc_dmime_envelope *env = dc_dmime_envelope(r);
    if ((st = lookup_signet(lookup, DC_MSG_AUTHOR_SIGNET, env->author, env->author_fp,
                            actor != DC_ACTOR_DESTINATION, &as, err)) ||
        (st = lookup_signet(lookup, DC_MSG_ORIGIN_SIGNET, env->origin, env->origin_fp,
                            actor == DC_ACTOR_DESTINATION || actor == DC_ACTOR_RECIPIENT, &os,
                            err)) ||
        (st = dc_dmime_keys_from_signets(r, as, os, &k, err)))
        goto done;
    /* The author and the recipient rebuild the message from the display and attachment
     * data; it is not kept by the decryption (see rebuild_stream). In memory, those chunks
     * are decrypted and verified once, while the message is rebuilt. */
    int rebuilds = actor == DC_ACTOR_AUTHOR || actor == DC_ACTOR_RECIPIENT;
    int defer = rebuilds && !stream;
    st = dc_dmime_decrypt_ex(r, &k.keys,
                             stream ? DC_DMIME_NO_CONTENT : defer ? DC_DMIME_DEFER_CONTENT : 0,
                             &res, err);
    if (st == DC_ERR_SIGNATURE && res && defer) {
        /* Every chunk's state, and the first failure in message order, as without deferral
         * (a malformed content chunk still wins, as it did). */
        st = dc_dmime_decrypt_finish(r, res, err);
        if (st == DC_OK) /* cannot happen: something failed already */
            st = DC_ERR_SIGNATURE;
    }
    if (st != DC_OK && !(st == DC_ERR_SIGNATURE && res))
        goto done;
    msg = dc_xcalloc(1, sizeof(*msg));
    msg->actor = actor;
    msg->have_author_key = as != NULL;
    msg->have_origin_key = os != NULL;
    msg->env.author = dup_or_null(env->author);
    msg->env.author_fp = dup_or_null(env->author_fp);
    msg->env.destination = dup_or_null(env->destination);
    msg->env.destination_fp = dup_or_null(env->destination_fp);
    msg->env.recipient = dup_or_null(env->recipient);
    msg->env.recipient_fp = dup_or_null(env->recipient_fp);
    msg->env.origin = dup_or_null(env->origin);
    msg->env.origin_fp = dup_or_null(env->origin_fp);
    msg->res = res;
    res = NULL;
    if (st == DC_OK && rebuilds && (!stream || out_fd >= 0)) {
        st = rebuild_stream(r, msg, stream ? out_fd : -1, err);
        if (defer) {
            /* The chunks the rebuild did not copy, then the verdict; a verification failure
             * is reported before a rebuilding error, as without deferral. */
            struct dc_err fe = {0};
            enum dc_status fs = dc_dmime_decrypt_finish(r, msg->res, &fe);
            if (fs != DC_OK) {
                st = fs;
                if (err)
                    *err = fe;
                if (msg->mime) {
                    dc_memzero(msg->mime, msg->mime_len);
                    free(msg->mime);
                    msg->mime = NULL;
                }
                msg->mime_len = 0;
            }
        }
        if (st != DC_OK && st != DC_ERR_SIGNATURE) {
            dc_message_free(msg);
            msg = NULL;
            goto done;
        }
    }
    msg->dm = dm;
    *out = msg;
done:
    dc_dmime_result_free(res);
    dc_signet_free(as);
    dc_signet_free(os);
    dc_dmime_reader_free(r);
    return st;
}

enum dc_status dc_message_decrypt(const uint8_t *bin, size_t len, enum dc_actor actor,
                                  const struct dc_kek_source *ks,
                                  const struct dc_msg_lookup *lookup, struct dc_message **out,
                                  struct dc_err *err)
{
    *out = NULL;
    if (!bin || !ks || (unsigned)actor > DC_ACTOR_RECIPIENT)
        return dc_fail(err, DC_ERR_ARG, "decrypt: missing message, key or actor");
    /* A view, not a copy: every pass over bin is done before returning, and then the kept
     * chunk table lets go of the caller's bytes. */
    struct dc_dmime *dm = NULL;
    enum dc_status st = dc_dmime_parse_view(bin, len, &dm, err);
    if (st != DC_OK)
        return st;
    st = decrypt_common(dm, actor, ks, lookup, 0, -1, out, err);
    if (*out)
        dm->bin = NULL;
    else
        dc_dmime_free(dm);
    return st;
}

enum dc_status dc_message_decrypt_fd(int in_fd, enum dc_actor actor,
                                     const struct dc_kek_source *ks,
                                     const struct dc_msg_lookup *lookup, int out_fd,
                                     struct dc_message **out, struct dc_err *err)
{
    *out = NULL;
    if (!ks || (unsigned)actor > DC_ACTOR_RECIPIENT)
        return dc_fail(err, DC_ERR_ARG, "decrypt: missing key or actor");
    struct dc_fmap *map = NULL;
    struct dc_dmime *dm = NULL;
    enum dc_status st = dc_fmap_read(in_fd, MAX_DMIME_FILE, &map, err);
    if (st != DC_OK)
        return st;
    if (!map->p) {
        dc_fmap_close(map);
        return dc_fail(err, DC_ERR_TRUNCATED, "D/MIME: empty file");
    }
    if ((st = dc_dmime_parse_mapped(map, &dm, err))) {
        dc_fmap_close(map);
        return st;
    }
    st = decrypt_common(dm, actor, ks, lookup, 1, out_fd, out, err);
    if (*out) {
        (*out)->map = map;
    } else {
        dc_dmime_free(dm);
        dc_fmap_close(map);
    }
    return st;
}
