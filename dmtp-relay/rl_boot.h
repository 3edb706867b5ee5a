/*
 * rl_boot - was the host restarted since the relay last ran? (rl_inject.h, "After a host
 * restart")
 *
 * The kernel gives every boot a random id (/proc/sys/kernel/random/boot_id). The relay keeps
 * the id it last ran under in a small file beside its queue (queue-database + ".boot").
 * A process restart keeps the page cache, so every write made before it is still there; a
 * host restart (power cut, panic, reset) keeps only what reached the disk, and Postfix's
 * copy of a message it had not answered yet may be gone while dime-milter's record of that
 * attempt is not. The injector uses this to give such attempts a new generation.
 */
#ifndef RL_BOOT_H
#define RL_BOOT_H

#include <stdbool.h>

#define RL_BOOT_ID_LEN 36

/* The id of the running boot into id (NUL-terminated); false when the kernel does not tell. */
bool rl_boot_id(char id[RL_BOOT_ID_LEN + 1]);

/* Whether the boot id stored in path differs from id, or path holds none (no file, a short
 * or damaged one: a relay that never recorded it cannot tell, and assumes a restart). */
bool rl_boot_changed(const char *path, const char *id);

/* Stores id in path durably: a temporary file written and fsynced, renamed into place, the
 * directory fsynced. false (errno set) when any step fails. */
bool rl_boot_save(const char *path, const char *id);

#endif
