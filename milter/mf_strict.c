/* mf_strict - plain SMTP claiming a pol=strict domain (see mf_strict.h). */
#include "mf_strict.h"

#include "dc_mrec.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static bool domain_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-';
}

/* Adds the domain of len bytes at p (a final dot dropped) when new; returns the count. */
static size_t add(const char *p, size_t len, char (*out)[MF_STRICT_DOMAIN_MAX + 1], size_t n,
                  size_t max)
{
    while (len > 0 && p[len - 1] == '.')
        len--;
    if (len == 0 || len > MF_STRICT_DOMAIN_MAX || n == max)
        return n;
    char d[MF_STRICT_DOMAIN_MAX + 1];
    for (size_t i = 0; i < len; i++)
        d[i] = (char)tolower((unsigned char)p[i]);
    d[len] = '\0';
    for (size_t i = 0; i < n; i++)
        if (strcmp(out[i], d) == 0)
            return n;
    memcpy(out[n], d, len + 1);
    return n + 1;
}

/* The domain after the '@' at p: the host-name characters that follow it. */
static size_t add_after(const char *p, char (*out)[MF_STRICT_DOMAIN_MAX + 1], size_t n,
                        size_t max)
{
    size_t len = 0;
    while (domain_char(p[1 + len]))
        len++;
    return add(p + 1, len, out, n, max);
}

size_t mf_strict_domains(const char *sender, const char *const *from, size_t nfrom,
                         char (*out)[MF_STRICT_DOMAIN_MAX + 1], size_t max)
{
    size_t n = 0;
    const char *at = sender != NULL ? strrchr(sender, '@') : NULL;
    if (at != NULL)
        n = add_after(at, out, n, max);
    for (size_t f = 0; f < nfrom; f++)
        for (const char *p = strchr(from[f], '@'); p != NULL; p = strchr(p + 1, '@'))
            n = add_after(p, out, n, max);
    return n;
}

void mf_strict_decide(const struct mf_domain *d, bool answered, const struct lookup_ans *ans,
                      struct mf_strict_verdict *v)
{
    v->known = answered && (ans->policy >= 0 || ans->outcome == LOOKUP_NOT_DIME);
    v->strict = answered && ans->policy == DC_MREC_POL_STRICT;
    v->action = v->strict ? mf_policy_inbound(d, MF_EV_STRICT_SENDER) : MF_ACCEPT;
}
