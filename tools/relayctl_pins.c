/*
 * relayctl_pins - `dime-relayctl pins list|show DOMAIN|reset DOMAIN`: the relay's pinned
 * organization keys (rl_pins.h). A reset is the operator's decision that a domain's new POK
 * is legitimate although it carries no rollover signature by the pinned one: the next
 * resolution of the domain pins whatever its DNSSEC-secure record names then.
 */
#include "relayctl.h"

#include "rl_pins.h"
#include "rl_shared.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void when(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t == 0 || gmtime_r(&tt, &tm) == NULL)
        snprintf(out, cap, "-");
    else
        strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void list_one(const struct rl_pin *p, void *ctx)
{
    (void)ctx;
    char last[32];
    when(p->last_seen, last, sizeof(last));
    printf("%s pok=%s exp=%u last-seen=%s how=%s refused=%llu\n", p->domain, p->pok,
           p->exp_days, last, p->how, (unsigned long long)p->refused);
}

static void show(const struct rl_pin *p)
{
    char first[32], last[32], refused[32];
    when(p->first_seen, first, sizeof(first));
    when(p->last_seen, last, sizeof(last));
    when(p->refused_at, refused, sizeof(refused));
    printf("domain:        %s\npok:           %s\nsoks:          %s\n"
           "org-signet:    %s (crypto fingerprint)\nfirst-seen:    %s\nlast-seen:     %s\n"
           "exp:           %u days\nhow:           %s\n",
           p->domain, p->pok, p->soks[0] ? p->soks : "-", p->org_fp, first, last, p->exp_days,
           p->how);
    if (p->previous_pok[0] != '\0')
        printf("previous-pok:  %s\n", p->previous_pok);
    if (p->syn[0] != '\0') /* asked when another POK comes without a rollover link */
        printf("syndicates:    %s\n", p->syn);
    printf("refused:       %llu\n", (unsigned long long)p->refused);
    if (p->refused > 0)
        printf("refused-pok:   %s (last at %s)\n", p->refused_pok, refused);
}

int relayctl_pins(const struct rl_config *cfg, int argc, char **argv)
{
    const char *op = argv[0], *domain = argc > 1 ? argv[1] : NULL;
    bool list = strcmp(op, "list") == 0;
    if ((list && argc != 1) ||
        (!list && (argc != 2 || (strcmp(op, "show") != 0 && strcmp(op, "reset") != 0))))
        return -1;
    if (cfg->pin_database == NULL || cfg->pin_database[0] == '\0') {
        fprintf(stderr, "dime-relayctl: pin-database is empty: no pins are kept\n");
        return 1;
    }
    struct dc_err err = {0};
    if (cfg->state_pg && rl_shared_start(cfg->state_conninfo, cfg->queue_database, &err) != DC_OK) {
        fprintf(stderr, "dime-relayctl: %s\n", err.msg);
        return 4;
    }
    struct stat st;
    if (!cfg->state_pg && geteuid() == 0 && stat(cfg->pin_database, &st) == 0 && st.st_uid != 0 &&
        (setegid(st.st_gid) != 0 || seteuid(st.st_uid) != 0)) {
        /* as the file's owner (the relay's user): a -wal or -shm file this makes stays
         * usable for the relay, where root's would lock it out */
        perror("dime-relayctl: seteuid to the pin database's owner");
        return 4;
    }
    struct rl_pins *p = NULL;
    if (rl_pins_open(cfg->pin_database, strcmp(op, "reset") != 0, &p, &err) != DC_OK) {
        fprintf(stderr, "dime-relayctl: %s\n", err.msg);
        rl_shared_stop();
        return 4;
    }
    enum dc_status s;
    struct rl_pin pin;
    if (list) {
        s = rl_pins_each(p, list_one, NULL, &err);
    } else if (strcmp(op, "show") == 0) {
        if ((s = rl_pins_get(p, domain, &pin, &err)) == DC_OK)
            show(&pin);
    } else if ((s = rl_pins_get(p, domain, &pin, &err)) == DC_OK &&
               (s = rl_pins_delete(p, domain, &err)) == DC_OK) {
        printf("%s: pin of POK %s removed; the next DNSSEC-secure resolution pins the POK the "
               "domain's record names then\n", pin.domain, pin.pok);
    }
    rl_pins_close(p);
    rl_shared_stop();
    if (s != DC_OK) {
        fprintf(stderr, "dime-relayctl: %s\n", err.msg);
        return s == DC_ERR_NOTFOUND ? 1 : 4;
    }
    return 0;
}
