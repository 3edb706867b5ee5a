/*
 * rl_seal - keeping addresses out of the relay's databases in clear.
 *
 * The queue and the signet cache hold who mails whom: recipients and senders of queued
 * messages, the addresses and domains whose signets were looked up, and the signets (which
 * name their owner). None of it may sit on disk in clear. Each database has a 32-byte local
 * key in a file of its own (random, mode 0600, created on first use) and stores
 *   - values it must read back SEALED in daemonlib's format (dl_seal.h), with the column as
 *     purpose ("outq.rcpt") and the row's key as row, so that a sealed value copied into
 *     another row or another column does not open;
 *   - names it only has to find again as a KEYED HASH: HMAC-SHA-512 of the name in lower
 *     case, truncated to 32 bytes, as 64 hex digits (the same name gives the same row, and
 *     nobody without the key can test a guessed address against the table).
 * The key protects against a copied database file or backup, not against root on the
 * running host, who can read the key file too.
 */
#ifndef RL_SEAL_H
#define RL_SEAL_H

#include "dc_crypto.h"
#include "dc_util.h"
#include "dl_seal.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RL_SEAL_OVERHEAD DL_SEAL_OVERHEAD
#define RL_SEAL_NAME_LEN 64 /* hex digits of a keyed name hash */

/* Reads the 32-byte key at path, creating it (random, mode 0600) when it does not exist; of
 * two processes or threads creating it at once, the first one's key is used by both, and
 * *created (may be NULL) is true only for the one whose key was kept. */
enum dc_status rl_seal_load_key_created(const char *path, uint8_t key[32], bool *created,
                                        struct dc_err *err);
/* The same without *created. */
enum dc_status rl_seal_load_key(const char *path, uint8_t key[32], struct dc_err *err);

/* Seals len bytes of in into out (which holds RL_SEAL_OVERHEAD + len bytes) with dl_seal,
 * label as purpose; returns the sealed length. */
size_t rl_seal(const uint8_t key[32], const char *label, const char *row, const void *in,
               size_t len, uint8_t *out);
/* Opens what rl_seal made with the same key, label and row into out (cap bytes, one more
 * than the longest value expected: out is NUL-terminated); false when the value does not
 * authenticate or does not fit. *outlen (may be NULL) gets the plain length. */
bool rl_unseal(const uint8_t key[32], const char *label, const char *row, const uint8_t *in,
               size_t len, void *out, size_t cap, size_t *outlen);

/* The keyed hash of name (ASCII case folded) as RL_SEAL_NAME_LEN hex digits and a NUL. */
void rl_seal_name(const uint8_t key[32], const char *name, char out[RL_SEAL_NAME_LEN + 1]);

/* A 32-byte subkey of key for one purpose (HMAC-SHA-512 of the label, truncated), so that one
 * key file can serve the hash and the cipher without using the same key for both. */
void rl_seal_subkey(const uint8_t key[32], const char *label, uint8_t out[32]);

/* ---- for the SQLite stores ---- */

/* Registers on db, for migrations written in SQL:
 *   rl_seal(label, row, text)     the text sealed under key, bound to label and row
 *   rl_reseal(label, row, sealed) a value in the relay's first format (below) with no
 *                                 additional data, sealed again bound to label and row;
 *                                 returned unchanged when it does not open
 *   rl_reseal_bound(label, row, sealed)
 *                                 the same for a value in the first format bound to
 *                                 "label:row"
 * The first format, before dl_seal, was iv (12) | tag (16) | ciphertext, AES-256-GCM with
 * "label:row" or nothing as additional data; these two functions are all that still read it.
 *   rl_name(name)                 rl_seal_name under name_key (only when name_key is given)
 * The keys are used, not copied: they must outlive db's use of the functions. */
void rl_seal_sql_functions(sqlite3 *db, const uint8_t key[32], const uint8_t *name_key);

/* Brings db to schema version (PRAGMA user_version). When it is older, step(db, from, ctx)
 * runs inside one IMMEDIATE transaction (the version is checked again inside it, so of
 * processes opening at once only one migrates) with secure_delete on, so that pages which held
 * clear values are overwritten; then the version is set, the transaction committed and the
 * WAL checkpointed (best effort: a reader may delay it). step returns false on an SQLite
 * error. A database newer than version is refused. what names the database in errors. */
enum dc_status rl_seal_upgrade(sqlite3 *db, const char *what, int version,
                               bool (*step)(sqlite3 *db, int from, void *ctx), void *ctx,
                               struct dc_err *err);
/* For a step of rl_seal_upgrade: when table still has old_column, runs sql (which converts
 * the table). False only when sql fails. */
bool rl_sql_convert(sqlite3 *db, const char *table, const char *old_column, const char *sql);

/* fsync of the directory that holds path (its new name reaches the disk); false, errno set,
 * when it cannot be opened or synced. */
bool rl_sync_parent(const char *path);

#endif
