/*
 * dimectl_postfix - the Postfix lines of `dimectl setup`; see dimectl_postfix.h.
 */
#include "dimectl_postfix.h"

#include "dc_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool pfx_milter_socket(const char *sock, char *out, size_t cap)
{
    const char *at;
    int n;
    if (strncmp(sock, "unix:", 5) == 0 && sock[5] == '/')
        n = snprintf(out, cap, "unix:%s", sock + 5);
    else if (strncmp(sock, "local:", 6) == 0 && sock[6] == '/')
        n = snprintf(out, cap, "unix:%s", sock + 6);
    else if (strncmp(sock, "inet:", 5) == 0 && (at = strchr(sock, '@')) != NULL &&
             at > sock + 5 && at[1] != '\0')
        n = snprintf(out, cap, "inet:%s:%.*s", at + 1, (int)(at - sock - 5), sock + 5);
    else if (strncmp(sock, "inet6:", 6) == 0 && (at = strchr(sock, '@')) != NULL &&
             at > sock + 6 && at[1] != '\0')
        n = snprintf(out, cap, "inet6:[%s]:%.*s", at + 1, (int)(at - sock - 6), sock + 6);
    else
        return false;
    return n > 0 && (size_t)n < cap;
}

static void add(struct pfx_ops *ops, char flag, char *arg)
{
    ops->op = dc_xrealloc(ops->op, (ops->n + 1) * sizeof(*ops->op));
    ops->op[ops->n++] = (struct pfx_op){.flag = flag, .arg = arg};
}

void pfx_ops_build(struct pfx_ops *ops, const char *milter, const char *inject_addr,
                   unsigned inject_port)
{
    memset(ops, 0, sizeof(*ops));
    /* main.cf: the milter for sendmail(1) mail and for Postfix's own bounces (they go to
     * the verified author of DIME mail, which must not get them as plain SMTP), and how
     * Postfix treats a milter that fails */
    add(ops, 'e', dc_xasprintf("non_smtpd_milters = %s", milter));
    add(ops, 'e', dc_xstrdup("internal_mail_filter_classes = bounce"));
    add(ops, 'e', dc_xstrdup("milter_default_action = tempfail"));
    add(ops, 'e', dc_xstrdup("milter_protocol = 6"));
    add(ops, 'e', dc_xstrdup("milter_content_timeout = 300s"));
    /* submission: the DIME milter on authenticated mail */
    add(ops, 'M', dc_xstrdup("submission/inet=submission inet n - n - - smtpd"));
    ops->op[ops->n - 1].if_absent = true;
    static const char *const sub[] = {
        "syslog_name=postfix/submission",
        "smtpd_tls_security_level=encrypt",
        "smtpd_sasl_auth_enable=yes",
        "smtpd_client_restrictions=permit_sasl_authenticated,reject",
        "smtpd_sender_restrictions=reject_sender_login_mismatch",
        "smtpd_relay_restrictions=permit_sasl_authenticated,reject",
    };
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++)
        add(ops, 'P', dc_xasprintf("submission/inet/%s", sub[i]));
    add(ops, 'P', dc_xasprintf("submission/inet/smtpd_milters=%s", milter));
    add(ops, 'P', dc_xstrdup("submission/inet/milter_default_action=tempfail"));
    /* the listener where the relay injects inbound D/MIME, loopback only */
    char svc[300];
    snprintf(svc, sizeof(svc), "%s:%u", inject_addr, inject_port);
    add(ops, 'M', dc_xasprintf("%s/inet=%s inet n - n - - smtpd", svc, svc));
    static const char *const inj[] = {
        "syslog_name=postfix/dime-inject",
        "mynetworks=127.0.0.0/8",
        "smtpd_client_restrictions=permit_mynetworks,reject",
        "smtpd_relay_restrictions=permit_mynetworks,reject",
        "smtpd_sasl_auth_enable=no",
    };
    for (size_t i = 0; i < sizeof(inj) / sizeof(inj[0]); i++)
        add(ops, 'P', dc_xasprintf("%s/inet/%s", svc, inj[i]));
    add(ops, 'P', dc_xasprintf("%s/inet/smtpd_milters=%s", svc, milter));
    add(ops, 'P', dc_xasprintf("%s/inet/milter_default_action=tempfail", svc));
    /* port 25: the milter removes forged Authentication-Results fields there */
    add(ops, 'P', dc_xasprintf("smtp/inet/smtpd_milters=%s", milter));
    ops->op[ops->n - 1].if_exists = true;
    add(ops, 'P', dc_xstrdup("smtp/inet/milter_default_action=tempfail"));
    ops->op[ops->n - 1].if_exists = true;
}

void pfx_ops_free(struct pfx_ops *ops)
{
    for (size_t i = 0; i < ops->n; i++)
        free(ops->op[i].arg);
    free(ops->op);
    memset(ops, 0, sizeof(*ops));
}

char *pfx_ops_text(const struct pfx_ops *ops)
{
    struct dc_buf b;
    dc_buf_init(&b);
    dc_buf_printf(&b, "# main.cf\n");
    for (size_t i = 0; i < ops->n; i++)
        if (ops->op[i].flag == 'e')
            dc_buf_printf(&b, "%s\n", ops->op[i].arg);
    dc_buf_printf(&b, "# master.cf\n");
    const char *shown = ""; /* the service/type whose entry was printed last */
    size_t shown_len = 0;
    for (size_t i = 0; i < ops->n; i++) {
        const char *a = ops->op[i].arg, *eq = strchr(a, '='), *sl = strchr(a, '/');
        if (ops->op[i].flag == 'M' && eq != NULL) {
            dc_buf_printf(&b, "%s\n", eq + 1);
            shown = a;
            shown_len = (size_t)(eq - a);
        } else if (ops->op[i].flag == 'P' && sl != NULL && (sl = strchr(sl + 1, '/')) != NULL) {
            size_t svc = (size_t)(sl - a);
            if (svc != shown_len || strncmp(a, shown, svc) != 0) {
                /* -o lines of an entry already in master.cf (smtp): name it */
                dc_buf_printf(&b, "%.*s ...   (your existing entry, plus:)\n",
                              (int)(strchr(a, '/') - a), a);
                shown = a;
                shown_len = svc;
            }
            dc_buf_printf(&b, "  -o %s\n", sl + 1);
        }
    }
    dc_buf_putc(&b, '\0');
    return (char *)dc_buf_steal(&b, &(size_t){0});
}
