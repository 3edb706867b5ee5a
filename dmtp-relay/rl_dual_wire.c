/*
 * rl_dual_wire - what the dual-mode front writes and reads without I/O: the PROXY v2 header
 * for Postfix, the judgement of a client's first command, Postfix's greeting with the DMTPv1
 * token. See rl_dual.h.
 */
#include "rl_dual.h"

#include "dc_dmtp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

/* PROXY protocol v2 (haproxy's proxy-protocol.txt, section 2.2): a 12-byte signature, the
 * version and command (0x21: version 2, PROXY), the family and transport (0x11 TCP over IPv4,
 * 0x21 TCP over IPv6), the length of what follows (big endian), then source and destination
 * addresses and source and destination ports, all in network order. */
static const uint8_t proxy_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                      0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* The IPv4 address of sa (AF_INET, or an IPv4-mapped AF_INET6), false for another. */
static bool v4_of(const struct sockaddr *sa, uint8_t addr[4], uint8_t port[2])
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        memcpy(addr, &s->sin_addr, 4);
        memcpy(port, &s->sin_port, 2);
        return true;
    }
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    if (sa->sa_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
        return false;
    memcpy(addr, s6->sin6_addr.s6_addr + 12, 4);
    memcpy(port, &s6->sin6_port, 2);
    return true;
}

size_t rl_dual_proxy_v2(const struct sockaddr *src, const struct sockaddr *dst,
                        uint8_t out[RL_DUAL_PROXY_MAX])
{
    memcpy(out, proxy_sig, sizeof(proxy_sig));
    out[12] = 0x21;
    uint8_t sa[4] = {0}, da[4] = {0}, sp[2] = {0}, dp[2] = {0};
    bool s4 = v4_of(src, sa, sp), d4 = v4_of(dst, da, dp);
    if (s4 && d4) {
        out[13] = 0x11;
        out[14] = 0;
        out[15] = 12;
        memcpy(out + 16, sa, 4);
        memcpy(out + 20, da, 4);
        memcpy(out + 24, sp, 2);
        memcpy(out + 26, dp, 2);
        return 28;
    }
    if (s4 || d4 || src->sa_family != AF_INET6 || dst->sa_family != AF_INET6)
        return 0;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)src;
    const struct sockaddr_in6 *d6 = (const struct sockaddr_in6 *)dst;
    out[13] = 0x21;
    out[14] = 0;
    out[15] = 36;
    memcpy(out + 16, &s6->sin6_addr, 16);
    memcpy(out + 32, &d6->sin6_addr, 16);
    memcpy(out + 48, &s6->sin6_port, 2);
    memcpy(out + 50, &d6->sin6_port, 2);
    return 52;
}

/* A host name as a DMTP client names the DX: letters, digits, '-', '.', 1..253 bytes. */
static bool host_ok(const uint8_t *p, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

enum rl_dual_first rl_dual_classify(const uint8_t *p, size_t len, size_t *linelen)
{
    static const char verb[] = "STARTTLS ";
    const size_t vl = sizeof(verb) - 1;
    size_t k = len < vl ? len : vl;
    if (strncasecmp((const char *)p, verb, k) != 0) /* cannot become STARTTLS */
        return RL_DUAL_SMTP;
    size_t end;
    enum dc_status st = dc_dmtp_line(p, len, RL_DUAL_LINE_MAX, &end);
    if (st != DC_OK)
        return st == DC_ERR_TRUNCATED ? RL_DUAL_MORE : RL_DUAL_SMTP;
    /* STARTTLS SP host SP MODE=DMTPv1 CRLF, single spaces as the client writes them */
    if (end <= vl)
        return RL_DUAL_SMTP;
    const uint8_t *h = p + vl, *sp = memchr(h, ' ', end - vl);
    static const char mode[] = "MODE=DMTPv1";
    const size_t ml = sizeof(mode) - 1;
    if (sp == NULL || !host_ok(h, (size_t)(sp - h)) ||
        (size_t)(p + end - (sp + 1)) != ml || strncasecmp((const char *)sp + 1, mode, ml) != 0)
        return RL_DUAL_SMTP;
    *linelen = end + 2;
    return RL_DUAL_DMTP;
}

enum dc_status rl_dual_banner(const uint8_t *in, size_t len, struct dc_buf *out, size_t *used,
                              int *code)
{
    size_t pos = 0;
    int first = -1;
    for (;;) {
        size_t ll;
        enum dc_status st = dc_dmtp_line(in + pos, len - pos, DC_DMTP_LINE_MAX, &ll);
        if (st == DC_ERR_LIMIT)
            return DC_ERR_FORMAT;
        if (st != DC_OK)
            return DC_ERR_TRUNCATED;
        const uint8_t *l = in + pos;
        if (ll < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' || l[2] < '0' ||
            l[2] > '9' || (ll > 3 && l[3] != ' ' && l[3] != '-'))
            return DC_ERR_FORMAT;
        int c = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
        if (first >= 0 && c != first)
            return DC_ERR_FORMAT;
        first = c;
        pos += ll + 2;
        if (ll == 3 || l[3] == ' ')
            break;
    }
    /* the first line: code, separator, host name, then the rest of its text */
    size_t ll;
    dc_dmtp_line(in, len, DC_DMTP_LINE_MAX, &ll);
    if (first == 220) {
        size_t host_end = ll > 4 ? 4 : ll;
        while (host_end < ll && in[host_end] != ' ')
            host_end++;
        dc_buf_append(out, in, host_end);
        dc_buf_append(out, " DMTPv1", 7);
        dc_buf_append(out, in + host_end, pos - host_end);
    } else {
        dc_buf_append(out, in, pos);
    }
    *used = pos;
    *code = first;
    return DC_OK;
}

bool rl_dual_target(const char *spec, struct sockaddr_storage *ss, socklen_t *sl)
{
    memset(ss, 0, sizeof(*ss));
    if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un *u = (struct sockaddr_un *)ss;
        const char *path = spec + 5;
        if (path[0] != '/' || strlen(path) >= sizeof(u->sun_path))
            return false;
        u->sun_family = AF_UNIX;
        strcpy(u->sun_path, path);
        *sl = sizeof(*u);
        return true;
    }
    char host[64];
    unsigned port;
    if (!rl_config_hostport(spec, host, &port))
        return false;
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *sl = sizeof(*s4);
        return true;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *sl = sizeof(*s6);
        return true;
    }
    return false;
}
