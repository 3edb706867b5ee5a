/*
 * dc_config - the one schema of /etc/dime/dime.conf (libconfuse).
 *
 * The file has options of its own (syslog-facility, syslog-socket), one section per daemon
 * and one section per local domain (every option: dime.conf(5), made from dc_config.c):
 *
 *   keyvault { ... }        dime-keyvaultd (options: see dime-keyvaultd(8))
 *   relay { ... }           dime-relayd and dime-relayctl (see dime-relayd(8))
 *   milter { ... }          dime-milter (see dime-milter(8))
 *   domain "example.org" {  one per local domain
 *     require-dnssec = true   refuse remote DIME records that DNSSEC does not prove secure
 *     mode, outbound-require-dime, on-* = accept|reject|tempfail|quarantine: the milter's
 *       policy for this domain (dime-milter(8)); values are checked here for every daemon
 *   }
 *
 * Every daemon parses the whole file with this schema, so an unknown option or a wrong type
 * anywhere is an error for all of them (and for `-n`). Each daemon then checks and reads its
 * own section with its typed accessor (kv_config.c, rl_config.c); sections the daemon does not
 * use may be absent.
 */
#ifndef DC_CONFIG_H
#define DC_CONFIG_H

#include "dc_util.h"

#include <confuse.h>
#include <stdbool.h>

#define DC_CONFIG_DEFAULT_PATH "/etc/dime/dime.conf"

/* Parses path with the full schema. On success *out is a tree to release with cfg_free().
 * Errors name the file, line and option. The domain sections are checked here as well
 * (titles must be valid domain names, no domain twice, known mode and on-* values), and
 * keyvault { }, relay { } and milter { } may appear at most once each (cfg_size() tells
 * whether a section is present). */
enum dc_status dc_config_parse(const char *path, cfg_t **out, struct dc_err *err);

/* The domain "x" section for domain (case-insensitive), or NULL when there is none. */
cfg_t *dc_config_domain(cfg_t *cfg, const char *domain);

/* NULL-terminated value lists of the domain options and of syslog-facility (dc_config.c),
 * and the index of v in
 * such a list (-1 when absent). */
extern const char *const dc_config_actions[];
extern const char *const dc_config_modes[];
extern const char *const dc_config_on_opts[];
int dc_config_word(const char *const *words, const char *v);

/* The daemons, as bits of struct dc_config_opt's readers and reload. */
#define DC_KEYVAULT 1u
#define DC_RELAY 2u
#define DC_MILTER 4u
#define DC_ACCOUNT 8u
/* The daemons that read the domain sections (the keyvault knows its domains from its
 * store), and those that take sections added or removed on SIGHUP (the relay's threads were
 * started with the domains they serve). */
#define DC_DOMAINS_READERS (DC_RELAY | DC_MILTER)
#define DC_DOMAINS_RELOAD DC_MILTER

/* One option of the schema: section ("" for the top level, "domain" for domain "x" { }),
 * name, the daemons that read it, those that apply a change on SIGHUP (the others need a
 * restart for it), and its meaning as dime.conf(5) prints it. */
struct dc_config_opt {
    const char *section;
    const char *name;
    unsigned readers;
    unsigned reload;
    const char *meaning;
};
/* Every option, in the order of the file; ends with a NULL name. */
extern const struct dc_config_opt dc_config_opts[];
extern const char *const dc_config_facilities[];

/* A tree of the schema with every default (cfg_free it): for the man page generator. */
cfg_t *dc_config_schema(void);

/* Called for an option whose value differs between two trees (title: the domain of a
 * domain option, NULL otherwise; opt NULL: the domain section was added or removed);
 * applied: whether the daemon takes the change on SIGHUP. */
typedef void (*dc_config_change_fn)(void *ctx, const char *section, const char *title,
                                    const char *opt, bool applied);
/* Compares the options daemon self (DC_KEYVAULT, ...) reads in two parsed files; returns how
 * many of the changes need a restart. */
unsigned dc_config_changes(cfg_t *old, cfg_t *nw, unsigned self, dc_config_change_fn fn,
                           void *ctx);

/* A string option, NULL when empty. */
const char *dc_config_str(cfg_t *sec, const char *opt);

#endif
