/*
 * dime-message - encrypt, origin-sign, decrypt and inspect D/MIME messages with signets and
 * key files on disk: the operator's tool for looking into a message the gateway refused.
 *
 * Exit status: 0 success; 1 a signature does not verify or a signet/key does not belong to
 * the message; 2 usage error; 3 an input is unreadable or malformed (including a message
 * the given key cannot open); 4 internal or output error. See dime-message(1).
 * Errors are one line: "dime-message: <command>: <reason>". Key material is never printed.
 */
#include "dc_keys.h"
#include "dc_message.h"
#include "dc_signet.h"
#include "dc_util.h"
#include "tl_common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DMSG (1024u * 1024u * 1024u) /* largest D/MIME file read */

static int exit_for(enum dc_status st)
{
    switch (st) {
    case DC_OK: return EX_OK;
    case DC_ERR_SIGNATURE:
    case DC_ERR_KEY:
    case DC_ERR_CUSTODY: return EX_VERIFY;
    case DC_ERR_ARG:
    case DC_ERR_NOMEM:
    case DC_ERR_CRYPTO:
    case DC_ERR_IO: return EX_INTERNAL;
    default: return EX_INPUT;
    }
}

static int report(const struct dc_err *err)
{
    tl_fail(NULL, "%s", err->msg[0] ? err->msg : dc_status_name(err->code));
    return exit_for(err->code);
}

/* ---- options shared by every command ---- */

struct opts {
    const char *author_signet, *author_key, *origin_signet, *origin_key, *dest_signet,
        *recipient_signet, *key, *as, *from, *to, *in, *out;
    size_t max_size;
};

enum {
    O_AUTHOR_SIGNET = 256,
    O_AUTHOR_KEY,
    O_ORIGIN_SIGNET,
    O_ORIGIN_KEY,
    O_DEST_SIGNET,
    O_RECIPIENT_SIGNET,
    O_KEY,
    O_AS,
    O_FROM,
    O_TO,
    O_MAX_SIZE,
};

static const struct option long_opts[] = {
    {"author-signet", required_argument, NULL, O_AUTHOR_SIGNET},
    {"author-key", required_argument, NULL, O_AUTHOR_KEY},
    {"origin-signet", required_argument, NULL, O_ORIGIN_SIGNET},
    {"origin-key", required_argument, NULL, O_ORIGIN_KEY},
    {"dest-signet", required_argument, NULL, O_DEST_SIGNET},
    {"recipient-signet", required_argument, NULL, O_RECIPIENT_SIGNET},
    {"key", required_argument, NULL, O_KEY},
    {"as", required_argument, NULL, O_AS},
    {"from", required_argument, NULL, O_FROM},
    {"to", required_argument, NULL, O_TO},
    {"max-size", required_argument, NULL, O_MAX_SIZE},
    {"input", required_argument, NULL, 'i'},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

#define EXIT_HELP                                                                              \
    "\nExit status: 0 ok, 1 verification failed, 2 usage error, 3 malformed input,\n"        \
    "4 other error.\n"

static const char help_main[] =
    "Usage: dime-message COMMAND [OPTIONS]\n"
    "Encrypt, origin-sign, decrypt and inspect D/MIME messages.\n\n"
    "Commands:\n"
    "  encrypt       MIME message -> D/MIME (author form, or final with --origin-key)\n"
    "  origin-sign   add the origin signatures to an author-form message\n"
    "  decrypt       open a message as one of the four actors\n"
    "  show          chunk table, keyslot holders and (with --as/--key) signature results\n\n"
    "Run 'dime-message COMMAND --help' for a command's options.\n"
    "  -h, --help     show this help\n"
    "  --version      print the version\n" EXIT_HELP;

static const char help_encrypt[] =
    "Usage: dime-message encrypt --author-signet F --author-key F --origin-signet F\n"
    "         [--origin-key F] --dest-signet F --recipient-signet F [--from ADDR] [--to ADDR]\n"
    "         [--max-size BYTES] -i MIME -o DMSG\n"
    "Maps the MIME message to D/MIME chunks and encrypts it for the author, the origin,\n"
    "the destination and the recipient. With --origin-key the origin signatures are\n"
    "applied as well (the final form); without it the author form is written.\n"
    "--from/--to default to the author's and recipient's signet identifiers.\n"
    "--max-size is the largest MIME message accepted (default 50 MiB).\n"
    "  -h, --help     show this help\n" EXIT_HELP;

static const char help_origin_sign[] =
    "Usage: dime-message origin-sign --origin-key F --author-signet F [--origin-signet F]\n"
    "         -i DMSG -o DMSG\n"
    "Opens an author-form message as the origin, checks the author's signatures with the\n"
    "author signet and writes the message with the origin signatures.\n"
    "  -h, --help     show this help\n" EXIT_HELP;

static const char help_decrypt[] =
    "Usage: dime-message decrypt --as author|origin|destination|recipient --key F\n"
    "         [--author-signet F] [--origin-signet F] -i DMSG [-o OUT]\n"
    "Opens the message with the actor's key file. author and recipient: writes the rebuilt\n"
    "MIME message to OUT (standard output without -o; then no report is printed) and the\n"
    "report to standard output. origin and destination: prints what that actor learns.\n"
    "The author signet is needed by the author, origin and recipient, the origin signet by\n"
    "the destination and recipient.\n"
    "  -h, --help     show this help\n" EXIT_HELP;

static const char help_show[] =
    "Usage: dime-message show -i DMSG [--as ACTOR --key F [--author-signet F]\n"
    "         [--origin-signet F]]\n"
    "Prints the chunk table (offset, type, name, payload size, keyslot holders); with\n"
    "--as and --key also what that actor can open and every signature result.\n"
    "  -h, --help     show this help\n" EXIT_HELP;

/* Parses argv into o; returns -1 to go on, or an exit status (help printed, usage error). */
static int parse_opts(int argc, char **argv, const char *help, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    o->max_size = DC_MIME_MAX_SIZE;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":i:o:h", long_opts, NULL)) != -1) {
        switch (c) {
        case O_AUTHOR_SIGNET: o->author_signet = optarg; break;
        case O_AUTHOR_KEY: o->author_key = optarg; break;
        case O_ORIGIN_SIGNET: o->origin_signet = optarg; break;
        case O_ORIGIN_KEY: o->origin_key = optarg; break;
        case O_DEST_SIGNET: o->dest_signet = optarg; break;
        case O_RECIPIENT_SIGNET: o->recipient_signet = optarg; break;
        case O_KEY: o->key = optarg; break;
        case O_AS: o->as = optarg; break;
        case O_FROM: o->from = optarg; break;
        case O_TO: o->to = optarg; break;
        case O_MAX_SIZE: {
            char *end;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end || v == 0 || v > (1ull << 32))
                return tl_usage("--max-size needs a byte count from 1 to 4294967296");
            o->max_size = (size_t)v;
            break;
        }
        case 'i': o->in = optarg; break;
        case 'o': o->out = optarg; break;
        case 'h': fputs(help, stdout); return EX_OK;
        case ':': return tl_usage("option '%s' requires an argument", argv[optind - 1]);
        default: return tl_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return tl_usage("unexpected argument '%s'", argv[optind]);
    return -1;
}

/* Options this command does not take are usage errors rather than silently ignored. */
static int reject(const char *val, const char *name)
{
    return val ? tl_usage("option --%s does not apply here", name) : -1;
}

/* The sending side's options (keys and signets of encrypt and origin-sign), which decrypt and
 * show do not take. */
static int reject_sending(const struct opts *o)
{
    int rc;
    if ((rc = reject(o->author_key, "author-key")) >= 0 ||
        (rc = reject(o->origin_key, "origin-key")) >= 0 ||
        (rc = reject(o->dest_signet, "dest-signet")) >= 0 ||
        (rc = reject(o->recipient_signet, "recipient-signet")) >= 0)
        return rc;
    return -1;
}

/* ---- loading ---- */

static int load_signet(const char *path, enum dc_signet_type type, const char *role,
                       struct dc_signet **out)
{
    struct dc_err err = {0};
    *out = NULL;
    if (!path)
        return EX_OK;
    if (dc_signet_load_file(path, out, &err) != DC_OK) {
        tl_fail(NULL, "%s: %s", path, err.msg);
        return exit_for(err.code) == EX_VERIFY ? EX_VERIFY : EX_INPUT;
    }
    if ((*out)->type != type) {
        tl_fail(NULL, "%s: the %s signet must be a %s signet, not a %s signet", path, role,
                dc_signet_type_name(type), dc_signet_type_name((*out)->type));
        dc_signet_free(*out);
        *out = NULL;
        return EX_INPUT;
    }
    return EX_OK;
}

/* A key file with both a signing and an encryption key. */
static int load_key(const char *path, enum dc_key_type type, struct dc_keyfile **out)
{
    struct dc_err err = {0};
    *out = NULL;
    if (!path)
        return EX_OK;
    if (dc_keyfile_load_file(path, out, &err) != DC_OK) {
        tl_fail(NULL, "%s: %s", path, err.msg);
        return EX_INPUT;
    }
    if ((*out)->type != type || !(*out)->sign || !(*out)->enc) {
        tl_fail(NULL, "%s: not a%s key file with signing and encryption keys", path,
                type == DC_KEY_ORG ? "n organizational" : " user");
        dc_keyfile_free(*out);
        *out = NULL;
        return EX_INPUT;
    }
    return EX_OK;
}

static int read_input(const char *path, size_t max, uint8_t **data, size_t *len)
{
    struct dc_err err = {0};
    if (dc_read_file(path, max, data, len, &err) != DC_OK) {
        tl_fail(NULL, "%s", err.msg);
        return EX_INPUT;
    }
    return EX_OK;
}

static int write_output(const char *path, const uint8_t *data, size_t len, unsigned mode)
{
    if (!path || strcmp(path, "-") == 0) {
        if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0) {
            tl_fail(NULL, "writing to standard output failed");
            return EX_INTERNAL;
        }
        return EX_OK;
    }
    struct dc_err err = {0};
    if (dc_write_file(path, data, len, mode, &err) != DC_OK) {
        tl_fail(NULL, "%s", err.msg);
        return EX_INTERNAL;
    }
    return EX_OK;
}

/* ---- files for the streaming path (bounded memory, dc_message_*_fd) ---- */

/* A named input that is a regular file (not "-"), opened read-only; -1 otherwise. */
static int open_regular(const char *path)
{
    if (!path || strcmp(path, "-") == 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* An output written under a temporary name and renamed into place on success. */
struct out_file {
    char *tmp;
    int fd;
};

static int out_open(const char *path, unsigned mode, struct out_file *o)
{
    o->tmp = dc_xasprintf("%s.tmpXXXXXX", path);
    o->fd = mkstemp(o->tmp);
    if (o->fd < 0 || fchmod(o->fd, (mode_t)mode) != 0) {
        tl_fail(NULL, "%s: %s", o->tmp, strerror(errno));
        if (o->fd >= 0) {
            close(o->fd);
            unlink(o->tmp);
        }
        free(o->tmp);
        o->tmp = NULL;
        return EX_INTERNAL;
    }
    return EX_OK;
}

/* ok: fsync and rename to path; otherwise remove the temporary file. */
static int out_close(struct out_file *o, const char *path, int ok)
{
    int rc = EX_OK;
    if (!o->tmp)
        return EX_OK;
    if (ok && (fsync(o->fd) != 0 || close(o->fd) != 0 || rename(o->tmp, path) != 0)) {
        tl_fail(NULL, "%s: %s", path, strerror(errno));
        rc = EX_INTERNAL;
        ok = 0;
    } else if (!ok) {
        close(o->fd);
    }
    if (!ok)
        unlink(o->tmp);
    free(o->tmp);
    o->tmp = NULL;
    return rc;
}

/* The lookup answering with the signets given on the command line. */
struct cli_signets {
    struct dc_signet *author, *origin;
};

static enum dc_status cli_find(void *ctx, enum dc_msg_role role, const char *name,
                               const char *fp, struct dc_signet **out, struct dc_err *err)
{
    const struct cli_signets *s = ctx;
    const struct dc_signet *have = role == DC_MSG_AUTHOR_SIGNET ? s->author : s->origin;
    if (!have)
        return DC_ERR_NOTFOUND;
    *out = dc_signet_dup(have);
    return DC_OK;
}

static int parse_actor(const char *s, enum dc_actor *a)
{
    for (unsigned i = 0; i < 4; i++)
        if (strcmp(s, dc_actor_name((enum dc_actor)i)) == 0) {
            *a = (enum dc_actor)i;
            return 0;
        }
    return -1;
}

/* ---- encrypt ---- */

static int cmd_encrypt(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, help_encrypt, &o);
    if (rc >= 0)
        return rc;
    if ((rc = reject(o.key, "key")) >= 0 || (rc = reject(o.as, "as")) >= 0)
        return rc;
    if (!o.author_signet || !o.author_key || !o.origin_signet || !o.dest_signet ||
        !o.recipient_signet || !o.in || !o.out)
        return tl_usage("needs --author-signet, --author-key, --origin-signet, --dest-signet, "
                        "--recipient-signet, -i and -o");
    struct dc_signet *sg[4] = {NULL, NULL, NULL, NULL};
    struct dc_keyfile *ak = NULL, *ok = NULL;
    uint8_t *mime = NULL;
    size_t len = 0;
    struct dc_dmime *m = NULL;
    if ((rc = load_signet(o.author_signet, DC_SIGNET_USER, "author", &sg[0])) ||
        (rc = load_signet(o.origin_signet, DC_SIGNET_ORG, "origin", &sg[1])) ||
        (rc = load_signet(o.dest_signet, DC_SIGNET_ORG, "destination", &sg[2])) ||
        (rc = load_signet(o.recipient_signet, DC_SIGNET_USER, "recipient", &sg[3])) ||
        (rc = load_key(o.author_key, DC_KEY_USER, &ak)) ||
        (rc = load_key(o.origin_key, DC_KEY_ORG, &ok)))
        goto done;
    int in_fd = strcmp(o.out, "-") == 0 ? -1 : open_regular(o.in);
    if (in_fd < 0 && (rc = read_input(o.in, o.max_size, &mime, &len)))
        goto done;
    struct dc_signer as, os;
    struct dc_kek_source oks;
    dc_signer_local(&as, ak->sign);
    if (ok) {
        dc_signer_local(&os, ok->sign);
        dc_kek_source_local(&oks, ok->enc);
    }
    struct dc_msg_parties pp = {o.from, o.to, sg[0], sg[1], sg[2], sg[3]};
    struct dc_mime_limits lim;
    dc_mime_limits_default(&lim);
    lim.max_size = o.max_size;
    struct dc_msg_opts mo = {.limits = &lim};
    struct dc_err err = {0};
    if (in_fd >= 0) {
        /* File to file: the streaming path, memory bounded whatever the message size. */
        struct out_file of;
        if ((rc = out_open(o.out, 0644, &of)) == EX_OK) {
            enum dc_status st = dc_message_encrypt_fd(in_fd, of.fd, &pp, &as, ok ? &os : NULL,
                                                      ok ? &oks : NULL, &mo, NULL, &err);
            rc = out_close(&of, o.out, st == DC_OK);
            if (st != DC_OK)
                rc = report(&err);
        }
        close(in_fd);
        goto done;
    }
    if (dc_message_encrypt(mime, len, &pp, &as, ok ? &os : NULL, ok ? &oks : NULL, &mo, &m,
                           &err) != DC_OK) {
        rc = report(&err);
        goto done;
    }
    size_t blen;
    const uint8_t *bin = dc_dmime_bytes(m, &blen);
    rc = write_output(o.out, bin, blen, 0644);
done:
    dc_dmime_free(m);
    free(mime);
    for (int i = 0; i < 4; i++)
        dc_signet_free(sg[i]);
    dc_keyfile_free(ak);
    dc_keyfile_free(ok);
    return rc;
}

/* ---- origin-sign ---- */

static int cmd_origin_sign(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, help_origin_sign, &o);
    if (rc >= 0)
        return rc;
    if ((rc = reject(o.key, "key")) >= 0 || (rc = reject(o.as, "as")) >= 0 ||
        (rc = reject(o.author_key, "author-key")) >= 0 ||
        (rc = reject(o.dest_signet, "dest-signet")) >= 0 ||
        (rc = reject(o.recipient_signet, "recipient-signet")) >= 0)
        return rc;
    if (!o.origin_key || !o.author_signet || !o.in || !o.out)
        return tl_usage("needs --origin-key, --author-signet, -i and -o");
    struct cli_signets s = {NULL, NULL};
    struct dc_keyfile *ok = NULL;
    uint8_t *bin = NULL;
    size_t len = 0;
    struct dc_dmime *m = NULL;
    if ((rc = load_signet(o.author_signet, DC_SIGNET_USER, "author", &s.author)) ||
        (rc = load_signet(o.origin_signet, DC_SIGNET_ORG, "origin", &s.origin)) ||
        (rc = load_key(o.origin_key, DC_KEY_ORG, &ok)))
        goto done;
    int in_fd = strcmp(o.out, "-") == 0 ? -1 : open_regular(o.in);
    if (in_fd < 0 && (rc = read_input(o.in, MAX_DMSG, &bin, &len)))
        goto done;
    struct dc_signer os;
    struct dc_kek_source oks;
    dc_signer_local(&os, ok->sign);
    dc_kek_source_local(&oks, ok->enc);
    struct dc_msg_lookup lookup = {cli_find, &s};
    struct dc_err err = {0};
    if (in_fd >= 0) {
        struct out_file of;
        if ((rc = out_open(o.out, 0644, &of)) == EX_OK) {
            enum dc_status st =
                dc_message_origin_sign_fd(in_fd, of.fd, &oks, &os, &lookup, NULL, &err);
            rc = out_close(&of, o.out, st == DC_OK);
            if (st != DC_OK)
                rc = report(&err);
        }
        close(in_fd);
        goto done;
    }
    if (dc_message_origin_sign(bin, len, &oks, &os, &lookup, &m, &err) != DC_OK) {
        rc = report(&err);
        goto done;
    }
    size_t blen;
    const uint8_t *out = dc_dmime_bytes(m, &blen);
    rc = write_output(o.out, out, blen, 0644);
done:
    dc_dmime_free(m);
    free(bin);
    dc_signet_free(s.author);
    dc_signet_free(s.origin);
    dc_keyfile_free(ok);
    return rc;
}

/* ---- decrypt and show ---- */

static void print_chunk_table(const struct dc_dmime *m, const struct dc_message *dm)
{
    printf("message: %zu bytes, %zu chunks, tracing %zu bytes\n", m->len, m->nchunks,
           m->tracing_len);
    printf("%8s %4s  %-40s %8s  %-35s%s\n", "offset", "type", "name", "payload", "keyslots",
           dm ? "  opened  signature" : "");
    for (size_t i = 0; i < m->nchunks; i++) {
        const struct dc_dmime_chunk *c = &m->chunks[i];
        char holders[64] = "";
        for (unsigned a = 0; a < 4; a++)
            if (c->actors & DC_ACTOR_BIT(a)) {
                if (holders[0])
                    strcat(holders, ",");
                strcat(holders, dc_actor_name((enum dc_actor)a));
            }
        printf("%8zu %4u  %-40s %8zu  %-35s", c->offset, c->type, dc_dmime_chunk_name(c->type),
               c->payload_len, holders[0] ? holders : "-");
        if (dm) {
            const struct dc_dmime_item *it = &dm->res->items[i];
            char extra[32] = "";
            if (it->visible && c->type <= DC_CHUNK_ATTACH)
                snprintf(extra, sizeof(extra), " (%zu bytes, flags %u)", it->data_len,
                         (unsigned)it->flags);
            printf("  %-6s  %s%s", it->visible ? "yes" : "no",
                   it->visible ? dc_dmime_sig_name(it->sig) : "-", extra);
        }
        putchar('\n');
    }
}

static void print_report(const struct dc_message *dm, enum dc_status st)
{
    const struct dc_dmime_envelope *e = &dm->env;
    printf("actor: %s\n", dc_actor_name(dm->actor));
    if (e->author)
        printf("author: %s\nauthor-signet: %s\ndestination: %s\ndestination-signet: %s\n",
               e->author, e->author_fp, e->destination, e->destination_fp);
    if (e->recipient)
        printf("recipient: %s\nrecipient-signet: %s\norigin: %s\norigin-signet: %s\n",
               e->recipient, e->recipient_fp, e->origin, e->origin_fp);
    printf("author key: %s\norigin key: %s\n", dm->have_author_key ? "given" : "not given",
           dm->have_origin_key ? "given" : "not given");
    size_t open = 0;
    for (size_t i = 0; i < dm->res->nitems; i++) {
        const struct dc_dmime_item *it = &dm->res->items[i];
        if (!it->visible)
            continue;
        open++;
        printf("signature %u %s: %s\n", it->type, dc_dmime_chunk_name(it->type),
               dc_dmime_sig_name(it->sig));
    }
    printf("chunks opened: %zu of %zu\n", open, dm->res->nitems);
    if (dm->res->common)
        printf("common headers: %zu bytes\n", dm->res->common->data_len);
    if (dm->mime || dm->mime_len) /* in memory, or written by the streaming path */
        printf("mime: %zu bytes (%s)\n", dm->mime_len,
               dm->framed ? "byte-exact" : "rebuilt from an unframed message");
    printf("result: %s\n", st == DC_OK ? "verified" : "FAILED");
}

/* Usage checks of --as and the signets it needs; -1 when fine. */
static int check_actor(const struct opts *o)
{
    enum dc_actor a;
    if (parse_actor(o->as, &a) != 0)
        return tl_usage("--as must be author, origin, destination or recipient");
    if (a != DC_ACTOR_DESTINATION && !o->author_signet)
        return tl_usage("the %s needs --author-signet", o->as);
    if ((a == DC_ACTOR_DESTINATION || a == DC_ACTOR_RECIPIENT) && !o->origin_signet)
        return tl_usage("the %s needs --origin-signet", o->as);
    return -1;
}

/* Opens the message as o->as with o->key; returns the status, *dm set as for
 * dc_message_decrypt; exit status through *rc when nothing could be opened. */
static int open_as(const struct opts *o, const uint8_t *bin, size_t len, int in_fd, int out_fd,
                   struct dc_message **dm, struct dc_err *err, enum dc_status *st)
{
    enum dc_actor a = DC_ACTOR_RECIPIENT;
    *dm = NULL;
    parse_actor(o->as, &a); /* checked by check_actor() */
    struct cli_signets s = {NULL, NULL};
    struct dc_keyfile *k = NULL;
    int rc;
    enum dc_key_type kt = a == DC_ACTOR_AUTHOR || a == DC_ACTOR_RECIPIENT ? DC_KEY_USER
                                                                          : DC_KEY_ORG;
    if ((rc = load_signet(o->author_signet, DC_SIGNET_USER, "author", &s.author)) ||
        (rc = load_signet(o->origin_signet, DC_SIGNET_ORG, "origin", &s.origin)) ||
        (rc = load_key(o->key, kt, &k)))
        goto done;
    struct dc_kek_source ks;
    dc_kek_source_local(&ks, k->enc);
    struct dc_msg_lookup lookup = {cli_find, &s};
    if (in_fd >= 0)
        *st = dc_message_decrypt_fd(in_fd, a, &ks, &lookup, out_fd, dm, err);
    else
        *st = dc_message_decrypt(bin, len, a, &ks, &lookup, dm, err);
    rc = -1;
done:
    dc_signet_free(s.author);
    dc_signet_free(s.origin);
    dc_keyfile_free(k);
    return rc;
}

static int cmd_decrypt(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, help_decrypt, &o);
    if (rc >= 0)
        return rc;
    if ((rc = reject_sending(&o)) >= 0)
        return rc;
    if (!o.as || !o.key || !o.in)
        return tl_usage("needs --as, --key and -i");
    if ((rc = check_actor(&o)) >= 0)
        return rc;
    uint8_t *bin = NULL;
    size_t len = 0;
    struct dc_message *dm = NULL;
    struct dc_err err = {0};
    enum dc_status st = DC_OK;
    int to_stdout = !o.out || strcmp(o.out, "-") == 0;
    int in_fd = open_regular(o.in);
    if (in_fd >= 0) {
        /* From a file: the streaming path. The message goes to the output only after every
         * signature verified; to a temporary file renamed on success. */
        enum dc_actor a = DC_ACTOR_RECIPIENT;
        parse_actor(o.as, &a);
        int writes = a == DC_ACTOR_AUTHOR || a == DC_ACTOR_RECIPIENT;
        if (!writes && o.out) {
            close(in_fd);
            return tl_usage("-o applies to the author and the recipient only");
        }
        struct out_file of = {NULL, -1};
        if (writes && !to_stdout && (rc = out_open(o.out, 0600, &of)) != EX_OK) {
            close(in_fd);
            return rc;
        }
        int out_fd = !writes ? -1 : to_stdout ? STDOUT_FILENO : of.fd;
        rc = open_as(&o, NULL, 0, in_fd, out_fd, &dm, &err, &st);
        close(in_fd);
        int wrote = dm && st == DC_OK && writes;
        int orc = out_close(&of, o.out, wrote);
        if (rc >= 0)
            return rc;
        if (!dm)
            return report(&err);
        if (to_stdout && wrote && fflush(stdout) != 0)
            orc = EX_INTERNAL;
        if (orc == EX_OK && !(wrote && to_stdout))
            print_report(dm, st);
        dc_message_free(dm);
        if (st != DC_OK)
            return report(&err);
        return orc;
    }
    if ((rc = read_input(o.in, MAX_DMSG, &bin, &len)))
        return rc;
    rc = open_as(&o, bin, len, -1, -1, &dm, &err, &st);
    free(bin);
    if (rc >= 0)
        return rc;
    if (!dm)
        return report(&err);
    if (dm->mime) {
        rc = write_output(o.out, dm->mime, dm->mime_len, 0600);
        if (rc == EX_OK && !to_stdout)
            print_report(dm, st);
    } else {
        if (o.out && (dm->actor == DC_ACTOR_ORIGIN || dm->actor == DC_ACTOR_DESTINATION)) {
            dc_message_free(dm);
            return tl_usage("-o applies to the author and the recipient only");
        }
        print_report(dm, st);
        rc = EX_OK;
    }
    dc_message_free(dm);
    if (st != DC_OK)
        return report(&err);
    return rc;
}

static int cmd_show(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, help_show, &o);
    if (rc >= 0)
        return rc;
    if ((rc = reject_sending(&o)) >= 0 || (rc = reject(o.out, "output")) >= 0)
        return rc;
    if (!o.in)
        return tl_usage("needs -i");
    if (!o.as != !o.key)
        return tl_usage("--as and --key go together");
    if (o.as && (rc = check_actor(&o)) >= 0)
        return rc;
    uint8_t *bin = NULL;
    size_t len = 0;
    struct dc_dmime *m = NULL;
    struct dc_fmap *map = NULL;
    struct dc_err err = {0};
    /* A regular file is mapped, not read: the table and the checks stay bounded in memory. */
    int in_fd = open_regular(o.in);
    if (in_fd >= 0) {
        if (dc_fmap_read(in_fd, MAX_DMSG, &map, &err) != DC_OK) {
            close(in_fd);
            tl_fail(NULL, "%s", err.msg);
            return EX_INPUT;
        }
    } else if ((rc = read_input(o.in, MAX_DMSG, &bin, &len))) {
        return rc;
    }
    if ((map ? dc_dmime_parse_mapped(map, &m, &err) : dc_dmime_parse(bin, len, &m, &err)) !=
        DC_OK) {
        free(bin);
        dc_fmap_close(map);
        if (in_fd >= 0)
            close(in_fd);
        return report(&err);
    }
    struct dc_message *dm = NULL;
    enum dc_status st = DC_OK;
    if (o.as)
        rc = open_as(&o, bin, len, in_fd, -1, &dm, &err, &st);
    free(bin);
    if (in_fd >= 0)
        close(in_fd);
    if (!o.as || rc >= 0 || !dm) {
        /* Without --as, or when opening failed: the table alone (where it stopped). */
        print_chunk_table(m, NULL);
        dc_dmime_free(m);
        dc_fmap_close(map);
        return !o.as ? EX_OK : rc >= 0 ? rc : report(&err);
    }
    print_chunk_table(m, dm);
    print_report(dm, st);
    dc_dmime_free(m);
    dc_fmap_close(map);
    dc_message_free(dm);
    return st == DC_OK ? EX_OK : report(&err);
}

int main(int argc, char **argv)
{
    tl_prog = "dime-message";
    if (argc < 2)
        return tl_usage("no command given");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(help_main, stdout);
        return EX_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("dime-message %s\n", DIME_VERSION);
        return EX_OK;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"encrypt", cmd_encrypt},
                {"origin-sign", cmd_origin_sign},
                {"decrypt", cmd_decrypt},
                {"show", cmd_show}};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(cmd, cmds[i].name) == 0) {
            tl_cmd = cmds[i].name;
            return cmds[i].fn(argc - 1, argv + 1);
        }
    return tl_usage("unknown command '%s'", cmd);
}
