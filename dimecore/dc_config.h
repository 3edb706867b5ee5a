/*
 * dc_config - the one schema of /etc/dime/dime.conf (libconfuse).
 *
 * The file has one section per daemon and one section per local domain:
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

/* NULL-terminated value lists of the domain options (dc_config.c), and the index of v in
 * such a list (-1 when absent). */
extern const char *const dc_config_actions[];
extern const char *const dc_config_modes[];
extern const char *const dc_config_on_opts[];
int dc_config_word(const char *const *words, const char *v);

/* A string option, NULL when empty. */
const char *dc_config_str(cfg_t *sec, const char *opt);

#endif
