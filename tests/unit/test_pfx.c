/* dimectl setup's Postfix lines (tools/dimectl_postfix.c): the milter socket in Postfix's
 * spelling, the postconf operations and the text printed without --apply. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dimectl_postfix.h"

static void sock_is(const char *in, const char *want)
{
    char out[300] = "untouched";
    bool ok = pfx_milter_socket(in, out, sizeof(out));
    if (want == NULL) {
        cr_assert(!ok, "'%s' accepted as '%s'", in, out);
        cr_assert_str_eq(out, "untouched");
    } else {
        cr_assert(ok, "'%s' refused", in);
        cr_assert_str_eq(out, want, "'%s' -> '%s', want '%s'", in, out, want);
    }
}

Test(pfx, milter_socket_spellings)
{
    sock_is("unix:/run/dime-milter/milter.sock", "unix:/run/dime-milter/milter.sock");
    sock_is("local:/var/spool/postfix/dime/milter.sock", "unix:/var/spool/postfix/dime/milter.sock");
    sock_is("inet:8895@127.0.0.1", "inet:127.0.0.1:8895");
    sock_is("inet:8895@localhost", "inet:localhost:8895");
    sock_is("inet6:8895@::1", "inet6:[::1]:8895");
}

Test(pfx, milter_socket_refusals)
{
    sock_is("unix:relative.sock", NULL);
    sock_is("inet:8895", NULL);
    sock_is("inet:@127.0.0.1", NULL);
    sock_is("inet:8895@", NULL);
    sock_is("/run/milter.sock", NULL);
    sock_is("", NULL);
    char small[8];
    cr_assert(!pfx_milter_socket("unix:/run/dime-milter/milter.sock", small, sizeof(small)));
}

static const struct pfx_op *find(const struct pfx_ops *ops, char flag, const char *arg)
{
    for (size_t i = 0; i < ops->n; i++)
        if (ops->op[i].flag == flag && strcmp(ops->op[i].arg, arg) == 0)
            return &ops->op[i];
    return NULL;
}

Test(pfx, operations)
{
    struct pfx_ops ops;
    pfx_ops_build(&ops, "unix:/m.sock", "127.0.0.1", 10026);
    cr_assert_not_null(find(&ops, 'e', "non_smtpd_milters = unix:/m.sock"));
    cr_assert_not_null(find(&ops, 'e', "internal_mail_filter_classes = bounce"));
    cr_assert_not_null(find(&ops, 'e', "milter_default_action = tempfail"));
    /* main.cf never gets smtpd_milters: it would put the milter on every smtpd, or drop
     * the operator's own (OpenDKIM on port 25) */
    for (size_t i = 0; i < ops.n; i++)
        cr_assert(!(ops.op[i].flag == 'e' && strncmp(ops.op[i].arg, "smtpd_milters", 13) == 0));
    const struct pfx_op *sub = find(&ops, 'M', "submission/inet=submission inet n - n - - smtpd");
    cr_assert_not_null(sub);
    cr_assert(sub->if_absent);
    cr_assert_not_null(find(&ops, 'P', "submission/inet/smtpd_milters=unix:/m.sock"));
    cr_assert_not_null(find(&ops, 'M', "127.0.0.1:10026/inet=127.0.0.1:10026 inet n - n - - smtpd"));
    cr_assert_not_null(find(&ops, 'P', "127.0.0.1:10026/inet/smtpd_milters=unix:/m.sock"));
    cr_assert_not_null(find(&ops, 'P', "127.0.0.1:10026/inet/smtpd_sasl_auth_enable=no"));
    const struct pfx_op *smtp = find(&ops, 'P', "smtp/inet/smtpd_milters=unix:/m.sock");
    cr_assert_not_null(smtp);
    cr_assert(smtp->if_exists);
    /* every -o comes after the -M of its entry */
    for (size_t i = 0; i < ops.n; i++) {
        if (ops.op[i].flag != 'M')
            continue;
        size_t svc = strcspn(ops.op[i].arg, "=");
        for (size_t k = 0; k < i; k++)
            cr_assert(!(ops.op[k].flag == 'P' && strncmp(ops.op[k].arg, ops.op[i].arg, svc) == 0 &&
                        ops.op[k].arg[svc] == '/'), "%s before its entry", ops.op[k].arg);
    }
    pfx_ops_free(&ops);
    cr_assert_eq(ops.n, 0);
}

Test(pfx, printed_text)
{
    struct pfx_ops ops;
    pfx_ops_build(&ops, "inet:127.0.0.1:8895", "127.0.0.1", 10026);
    char *t = pfx_ops_text(&ops);
    cr_assert_not_null(strstr(t, "# main.cf\nnon_smtpd_milters = inet:127.0.0.1:8895\n"));
    cr_assert_not_null(strstr(t, "# master.cf\nsubmission inet n - n - - smtpd\n"
                                 "  -o syslog_name=postfix/submission\n"));
    cr_assert_not_null(strstr(t, "127.0.0.1:10026 inet n - n - - smtpd\n"
                                 "  -o syslog_name=postfix/dime-inject\n"));
    cr_assert_not_null(strstr(t, "smtp ...   (your existing entry, plus:)\n"
                                 "  -o smtpd_milters=inet:127.0.0.1:8895\n"
                                 "  -o milter_default_action=tempfail\n"));
    /* each -o line once, under its entry only */
    cr_assert_null(strstr(strstr(t, "smtp ..."), "syslog_name"));
    free(t);
    pfx_ops_free(&ops);
}
