/*
 * fuzz_resolve - what the resolver (the relay's and dime-client's) reads from DNS and from a remote DX
 * (daemonlib/dl_resolve.c), through its own functions. The first byte chooses:
 *   0: MX RDATA: the rest is RRs, each a length byte and its bytes, answered (DNSSEC-secure)
 *      by a stand-in for libunbound behind the dl_dns interface, to dl_dx_hosts;
 *   1: dual mode: the rest is what a plain-text DX sends (banner, STARTTLS reply), read from
 *      a socket by dl_dual_start (the plain reply reader and the DMTPv1 banner check);
 *   2: HIST: the second byte says whether the chain must start at a known signet (the
 *      first generation's), the rest are reply lines, walked by dl_custody_walk against a
 *      fixed org signet and a three-generation user chain (whose signets are the seeds);
 *      the same reply is classified as a VRFY answer by dl_vrfy_answer.
 * Invariants: DX hosts are at most 3 MX names then the domain, every one a valid host name;
 * dual mode fails with a printable reason or succeeds only on a 220 DMTPv1 banner; a custody
 * walk is secure only for a reply that ends at the current signet, with custody_len its
 * length, and otherwise has a reason; a VRFY answer is CURRENT or UPDATE only for one 2xx line.
 *
 * FUZZ_RESOLVE_SEEDS=<dir> writes the HIST seeds (the chain's replies) there and exits.
 */
#include "dl_resolve_int.h"
#include "rl_resolve.h"

#include "dc_signet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* ---- a DNS that answers at once from the input ---- */

struct fake_dns {
    struct dl_dns base;
    const uint8_t *p;
    size_t n;
};

static enum dc_status fake_query(struct dl_dns *d, const char *name, int type, dl_dns_cb cb,
                                 void *arg, struct dc_err *err)
{
    struct fake_dns *f = (struct fake_dns *)d;
    struct dl_dns_answer a;
    memset(&a, 0, sizeof(a));
    a.sec = DL_DNS_SECURE;
    const uint8_t *p = f->p;
    size_t n = f->n;
    while (n > 0 && a.n < DL_DNS_MAX_RR) {
        size_t l = p[0] < n - 1 ? p[0] : n - 1;
        a.rr[a.n].data = dc_xmalloc(l ? l : 1);
        memcpy(a.rr[a.n].data, p + 1, l);
        a.rr[a.n].len = l;
        a.n++;
        p += l + 1;
        n -= l + 1;
    }
    a.nodata = a.n == 0;
    cb(arg, &a);
    dl_dns_answer_free(&a);
    return DC_OK;
}
static int fake_fd(struct dl_dns *d) { return -1; }
static enum dc_status fake_process(struct dl_dns *d, struct dc_err *err) { return DC_OK; }
static size_t fake_pending(struct dl_dns *d) { return 0; }
static void fake_cancel(struct dl_dns *d) {}
static void fake_free(struct dl_dns *d) {}
static const struct dl_dns_ops fake_ops = {fake_query, fake_fd, fake_process, fake_pending,
                                           fake_cancel, fake_free};

static void mx(const uint8_t *p, size_t n)
{
    static struct rl_config cfg = {.connect_timeout = 1};
    struct fake_dns f = {{&fake_ops}, p, n};
    struct dl_resolver r;
    rl_resolver_init(&r, &cfg, NULL);
    r.dns = &f.base;
    struct dc_mrec rec;
    memset(&rec, 0, sizeof(rec));
    struct dl_lookup l;
    memset(&l, 0, sizeof(l));
    l.rec = &rec;
    static struct hosts h; /* zeroed, as resolve() allocates it */
    memset(&h, 0, sizeof(h));
    dl_dx_hosts(&r, "example.org", &l, &h);
    if (h.n < 1 || h.n > 4 || strcmp(h.name[h.n - 1], "example.org") != 0 || h.mx[h.n - 1])
        abort();
    for (size_t i = 0; i + 1 < h.n; i++)
        if (!h.mx[i] || strchr(h.name[i], '@') != NULL ||
            dc_dmtp_check_name(h.name[i], NULL) != DC_OK)
            abort(); /* a host name the connect, the certificate check and the log take */
}

/* ---- dual mode ---- */

static void printable(const char *t)
{
    for (; *t; t++)
        if ((unsigned char)*t < 0x20 || (unsigned char)*t > 0x7e)
            abort();
}

static void dual(const uint8_t *p, size_t n)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    for (size_t off = 0; off < n;) {
        ssize_t w = write(sv[1], p + off, n - off);
        if (w <= 0)
            abort();
        off += (size_t)w;
    }
    shutdown(sv[1], SHUT_WR); /* the DX sent all it will; our STARTTLS still fits */
    char why[300] = "";
    bool ok = dl_dual_start(sv[0], "dx.example.org", why, sizeof(why));
    if (ok ? why[0] != '\0' || n < 4 || memcmp(p, "220", 3) != 0 ||
                 memmem(p, n, "DMTPv1", 6) == NULL
           : why[0] == '\0')
        abort();
    printable(why);
    close(sv[0]);
    close(sv[1]);
}

/* ---- HIST custody chain ---- */

static struct dc_signet *org, *gen[3];
static char gen0_fp[DC_FP_B64_LEN + 1];

static struct dc_sign_key *key_of(uint8_t b)
{
    uint8_t seed[32];
    memset(seed, b, sizeof(seed));
    struct dc_sign_key *k = NULL;
    if (dc_sign_key_from_seed(seed, &k, NULL) != DC_OK)
        abort();
    return k;
}

static void chain_setup(void)
{
    uint8_t priv[32];
    memset(priv, 0x11, sizeof(priv));
    struct dc_enc_key *ek = NULL;
    if (dc_enc_key_from_private(priv, &ek, NULL) != DC_OK)
        abort();
    struct dc_sign_key *pok = key_of(0x5a);
    struct dc_signer signer;
    if (dc_signet_org_create(pok, ek->pub, &org, NULL) != DC_OK)
        abort();
    dc_signer_local(&signer, pok);
    struct dc_sign_key *prev = NULL;
    for (int i = 0; i < 3; i++) {
        struct dc_sign_key *k = key_of((uint8_t)(0x21 + i));
        struct dc_signet *ssr = NULL;
        if (dc_signet_ssr_create(k, ek->pub, prev, &ssr, NULL) != DC_OK ||
            dc_signet_ssr_sign(ssr, i ? gen[i - 1] : NULL, &signer, &gen[i], NULL) != DC_OK)
            abort();
        dc_signet_free(ssr);
        dc_sign_key_free(prev);
        prev = k;
    }
    dc_sign_key_free(prev);
    dc_sign_key_free(pok);
    dc_enc_key_free(ek);
    char fpc[DC_FP_B64_LEN + 1];
    if (dc_signet_fp(gen[0], gen0_fp, fpc, NULL) != DC_OK)
        abort();
}

static void write_seeds(const char *dir)
{
    for (int known = 0; known < 2; known++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/hist-%s", dir, known ? "known" : "full");
        FILE *f = fopen(path, "wb");
        if (f == NULL)
            abort();
        fputc(2, f);
        fputc(known, f);
        for (int i = 0; i < 3; i++) {
            char *b = dc_signet_b64(gen[i]);
            fprintf(f, "250-[%s]\r\n", b);
            free(b);
        }
        fprintf(f, "250 OK\r\n");
        fclose(f);
    }
}

static void hist(const uint8_t *p, size_t n)
{
    if (n < 1)
        return;
    const char *known = p[0] & 1 ? gen0_fp : NULL;
    p++;
    n--;
    struct dc_dmtp_reply rep;
    dc_dmtp_reply_init(&rep);
    while (!rep.done) {
        size_t ll;
        if (dc_dmtp_line(p, n, DC_DMTP_LINE_MAX, &ll) != DC_OK ||
            dc_dmtp_reply_add(&rep, (const char *)p, ll, NULL) != DC_OK)
            break;
        p += ll + 2;
        n -= ll + 2;
    }
    if (rep.done) { /* what read_reply hands over */
        if (dl_vrfy_answer(&rep) != DL_VRFY_OTHER && (rep.code / 100 != 2 || rep.nlines != 1))
            abort();
        struct dl_lookup l;
        memset(&l, 0, sizeof(l));
        l.org = org;
        l.user = gen[2];
        enum dl_outcome o = dl_custody_walk(&rep, "alice@example.org", known, &l);
        if (o == DL_OUT_SECURE) {
            const char *b;
            size_t bl;
            struct dc_signet *end = NULL;
            if (l.custody_len != rep.nlines - 1 || rep.nlines < 2 ||
                dc_dmtp_bracket(rep.lines[rep.nlines - 2], &b, &bl, NULL) != DC_OK ||
                dc_signet_from_b64(b, bl, &end, NULL) != DC_OK ||
                end->bin_len != gen[2]->bin_len ||
                memcmp(end->bin, gen[2]->bin, end->bin_len) != 0)
                abort();
            dc_signet_free(end);
        } else if (l.reason[0] == '\0' || l.custody_len != 0) {
            abort();
        }
    }
    dc_dmtp_reply_free(&rep);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    chain_setup();
    const char *dir = getenv("FUZZ_RESOLVE_SEEDS");
    if (dir != NULL) {
        write_seeds(dir);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0: mx(data + 1, size - 1); break;
    case 1: dual(data + 1, size - 1); break;
    default: hist(data + 1, size - 1); break;
    }
    return 0;
}
