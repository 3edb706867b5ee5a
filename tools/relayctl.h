/*
 * relayctl.h - what relayctl.c shares with the files of its larger commands.
 */
#ifndef RELAYCTL_H
#define RELAYCTL_H

#include "rl_config.h"

/* pins list | pins show DOMAIN | pins reset DOMAIN (argv[0] is the operation): the exit
 * status, or -1 for a usage error. */
int relayctl_pins(const struct rl_config *cfg, int argc, char **argv);

#endif
