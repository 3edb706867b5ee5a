/*
 * dc_config - the option tables of every section of dime.conf, and the parse that applies
 * them to the whole file. Typed accessors per daemon live beside each daemon.
 */
#include "dc_config.h"

#include "dc_mrec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* libconfuse reports through a callback without a user pointer; the parse is not reentrant,
 * which is fine for a configuration loaded at start-up and on SIGHUP. */
static struct dc_err *cur_err;
static const char *cur_path;

__attribute__((format(printf, 2, 0)))
static void conf_error(cfg_t *cfg, const char *fmt, va_list ap)
{
    char msg[200];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (cur_err != NULL && cur_err->code == DC_OK)
        dc_fail(cur_err, DC_ERR_FORMAT, "%s:%d: %s", cfg && cfg->filename ? cfg->filename : cur_path ? cur_path : "?",
                cfg ? cfg->line : 0, msg);
}

/* The schema: every option of dime.conf with its type, default, the daemons that read it,
 * those that apply a change on SIGHUP, and its meaning. It is the one source of the option
 * tables below (cfg_opt_t, for libconfuse), of dc_config_opts (reload reports, the check of
 * contrib/dime.conf) and of dime.conf(5), which tools/confdoc.c writes at build time.
 * X(type, name, default, read by, applied on SIGHUP by, meaning); type is STR, INT, BOOL or
 * STR_LIST (libconfuse's CFG_ macros). Meanings are troff-safe text (no leading dot). */
#define KV DC_KEYVAULT
#define RL DC_RELAY
#define MF DC_MILTER
#define AC DC_ACCOUNT
#define RESTART 0u

#define TOP_OPTS(X)                                                                         \
    X(STR, "syslog-facility", "mail", KV | RL | MF | AC, RESTART,                              \
      "The syslog facility of the daemons' lines when they log to syslog (not under "        \
      "systemd and without -f): mail, daemon, user or local0 to local7.")                    \
    X(STR, "syslog-socket", "/dev/log", KV | RL | MF | AC, RESTART,                            \
      "The syslog daemon's Unix datagram socket.")

#define KEYVAULT_OPTS(X)                                                                    \
    X(STR, "socket", "/run/dime-keyvault/keyvault.sock", KV, RESTART,                      \
      "The Unix socket the relay and the milter connect to (mode 0660).")                    \
    X(STR, "socket-group", "", KV, RESTART,                                                \
      "The group of the socket: who may connect (\"\": the daemon's own group).")            \
    X(STR, "store", "sqlite", KV, RESTART,                                                 \
      "Where the keys, signets and accounts are kept: sqlite (the file database, one node) " \
      "or postgresql (store-conninfo: shared by the keyvaults of every node of the domain, " \
      "which all hold the same master key or passphrase).")                                 \
    X(STR, "database", "/var/lib/dime-keyvault/keyvault.db", KV, RESTART,                  \
      "The SQLite database of keys, signets and accounts (store = sqlite); every secret in " \
      "it is sealed under the master key.")                                                  \
    X(STR, "store-conninfo", "", KV, RESTART,                                              \
      "With store = postgresql: libpq's connection string, e.g. \"host=/run/postgresql "     \
      "dbname=dime user=dime-vault\" (a host starting with / is a Unix socket directory). "  \
      "It is never logged; keep a password in a passfile= file rather than here.")          \
    X(STR, "master-key-file", "", KV, RESTART,                                             \
      "A file of 32 random bytes (mode 0400): the master key. Set exactly one of this and "  \
      "passphrase-file.")                                                                    \
    X(STR, "passphrase-file", "", KV, RESTART,                                             \
      "A file whose first line is a passphrase the master key is derived from (scrypt).")    \
    X(STR, "user", "dime-vault", KV, RESTART,                                              \
      "Started as root: the user to become after opening the socket and reading the master " \
      "secret (\"root\": stay root, logged as a warning; \"\" is an error).")                \
    X(STR, "pid-file", "/run/dime-keyvault/keyvaultd.pid", KV, RESTART,                   \
      "Where the daemon writes its process id (not with -f).")                               \
    X(INT, "max-clients", 256, KV, KV,                                                     \
      "Connections at once (1 to 4096); more are refused and logged.")                       \
    X(INT, "sign-stream-max", 268435456, KV, KV,                                           \
      "Bytes one signing stream may carry (a message larger than one SIGN frame), 65536 "    \
      "to 2^40.")                                                                            \
    X(INT, "sign-stream-timeout", 60, KV, KV,                                              \
      "Seconds an unfinished signing stream may stay idle before it is dropped.")            \
    X(INT, "idle-timeout", 300, KV, KV,                                                    \
      "Seconds a connection may wait between requests; the relay and the milter connect "    \
      "again on their next request.")                                                        \
    X(STR_LIST, "relay-users", "{}", KV, KV,                                               \
      "User names or uids of the relay (checked with SO_PEERCRED): they may make origin "    \
      "signatures as the local domains and derive the domains' KEKs, nothing else.")         \
    X(STR_LIST, "milter-users", "{}", KV, KV,                                              \
      "User names or uids of the milter: they may make author signatures and use the keys "  \
      "of the local domains' users, nothing else.")                                         \
    X(STR_LIST, "account-users", "{}", KV, KV,                                             \
      "User names or uids of the account service (dime-accountd): they may enroll a user's " \
      "first key generation, rotate it with a custody signature, and read a Cautious "       \
      "user's sealed key blob and signets, for the domain's users only; never a private-key " \
      "operation.")

#define RELAY_OPTS(X)                                                                       \
    X(STR, "hostname", "", RL, RESTART,                                                    \
      "The name in the DMTP banner, EHLO and injected mail (\"\": the system host name); "   \
      "it must match the DX certificate.")                                                   \
    X(STR, "listen-address", "0.0.0.0", RL, RESTART,                                       \
      "The IP address of the DX server (DMTP over TLS).")                                    \
    X(INT, "listen-port", 26, RL, RESTART, "The port of the DX server.")                   \
    X(STR, "tls-certificate", "", RL, RL,                                                  \
      "The DX server's certificate chain (PEM). Read again on SIGHUP even when the name "    \
      "is the same: a renewed certificate serves the connections accepted after it.")       \
    X(STR, "tls-key", "", RL, RL,                                                          \
      "The private key of tls-certificate (PEM); read again on SIGHUP.")                     \
    X(STR, "ca-file", "", RL, RESTART,                                                     \
      "CAs for remote DX certificates that the remote record does not pin with tls= "        \
      "(\"\": the system store).")                                                           \
    X(STR, "keyvault-socket", "/run/dime-keyvault/keyvault.sock", RL, RESTART,             \
      "The keyvault's socket.")                                                              \
    X(INT, "keyvault-timeout", 10, RL, RESTART, "Seconds a SGNT, VRFY or HIST waits for the keyvault (on a worker thread); then 476.") \
    X(INT, "signet-workers", 64, RL, RESTART, "Worker threads answering SGNT, VRFY and HIST at once.") \
    X(STR, "pid-file", "/run/dime-relay/relayd.pid", RL, RESTART,                          \
      "Where the relay writes its process id.")                                              \
    X(STR, "user", "dime-relay", RL, RESTART,                                              \
      "Started as root: the user to become after binding the port and making the local "     \
      "sockets (\"root\": stay root, logged as a warning; \"\" is an error).")               \
    X(INT, "max-clients", 256, RL, RL,                                                     \
      "DX connections and dual-mode front sessions at once; more are accepted and closed "   \
      "at once (by the front after 421 4.3.2).")                       \
    X(INT, "idle-timeout", 60, RL, RESTART,                                                \
      "Seconds a DX session may go without a complete command line (also the TLS "          \
      "handshake); the floor of the delivery's read timeout.")                               \
    X(INT, "max-errors", 5, RL, RL,                                                        \
      "Bad commands in a DX session before 421 and disconnection.")                          \
    X(INT, "max-clients-per-address", 16, RL, RESTART, "DX connections from one IP address; more get 421 after the TLS handshake.") \
    X(INT, "data-timeout", 60, RL, RESTART, "Inside DATA: seconds without a byte of the message (then 421); every read that brings bytes counts as progress.") \
    X(INT, "data-time-limit", 3600, RL, RESTART, "Inside DATA: seconds for the whole message (then 421).") \
    X(INT, "signet-rate", 3000, RL, RESTART, "SGNT, VRFY and HIST per minute from one client address (more: 431).") \
    X(INT, "signet-burst", 300, RL, RESTART, "SGNT, VRFY and HIST from one client address at once, before signet-rate applies.") \
    X(INT, "data-memory-limit", 268435456, RL, RESTART, "Bytes of inbound messages held in memory, all clients together (431 when full); at least max-message-size, or data-spool-threshold when that is smaller.") \
    X(INT, "data-spool-threshold", 1048576, RL, RESTART, "Inbound messages larger than this many bytes are written to a file in data-spool-directory while they arrive, holding 64 KiB of data-memory-limit instead of their size (0: every message in memory).") \
    X(STR, "data-spool-directory", "", RL, RESTART, "Where spooled inbound messages wait (unnamed files, 0600, made and emptied at start; \"\": spool/ beside queue-database).") \
    X(INT, "remote-port", 26, RL, RESTART, "The DX port of other domains.")                \
    X(INT, "remote-dual-port", 25, RL, RESTART,                                            \
      "The port of dual-mode (STARTTLS) MX hosts of other domains.")                         \
    X(STR, "dual-mode-listen", "", RL, RESTART,                                             \
      "The dual-mode front, ADDRESS:PORT (such as 0.0.0.0:25): plain SMTP handed to "        \
      "Postfix at dual-mode-postfix with the PROXY protocol, DIME peers upgraded to DMTP "    \
      "with STARTTLS MODE=DMTPv1 (dime-relayd(8), DUAL MODE); off by default (\"\").")      \
    X(STR, "dual-mode-postfix", "127.0.0.1:10025", RL, RESTART,                             \
      "Postfix's smtpd behind the front, ADDRESS:PORT or unix:/PATH, a listener with "       \
      "smtpd_upstream_proxy_protocol = haproxy (README.postfix).")                           \
    X(INT, "dual-mode-timeout", 300, RL, RESTART,                                           \
      "Seconds a front session may go without a byte either way (at least Postfix's "        \
      "smtpd_timeout).")                                                                     \
    X(INT, "dual-mode-time-limit", 3600, RL, RESTART,                                       \
      "Seconds a plain SMTP session through the front may last in all.")                     \
    X(INT, "connect-timeout", 20, RL, RESTART,                                             \
      "Seconds for a DNS lookup and for a DMTP connection to another domain.")               \
    X(INT, "lookup-deadline", 60, RL, RESTART, "Seconds in all for one resolution (lookup, origin check, start of a delivery).") \
    X(INT, "dx-max-hosts", 4, RL, RESTART, "DX hosts tried per resolution.") \
    X(INT, "dx-max-addresses", 4, RL, RESTART, "Addresses tried of each DX host.") \
    X(INT, "not-dime-cache-ttl", 3600, RL, RESTART, "Seconds at most a \"not a DIME domain\" answer is cached (the DNS answer's TTL when shorter).") \
    X(STR, "trust-anchor-file", "/usr/share/dns/root.key", RL, RESTART,                    \
      "DNSSEC trust anchors, a file (dns-root-data).")                                       \
    X(STR_LIST, "trust-anchor", "{}", RL, RESTART,                                         \
      "DNSSEC trust anchors as DS or DNSKEY lines.")                                         \
    X(STR_LIST, "dns-stub", "{}", RL, RESTART,                                             \
      "Stub zones of the resolver, \"zone addr[@port]\".")                                   \
    X(STR_LIST, "dns-forwarder", "{}", RL, RESTART,                                        \
      "Forwarders of the resolver, \"addr[@port]\".")                                        \
    X(STR_LIST, "dns-local-zone", "{}", RL, RESTART,                                       \
      "unbound local-zone settings, such as \"test. transparent\".")                         \
    X(STR, "cache-database", "/var/lib/dime-relay/cache.db", RL, RESTART,                  \
      "The signet cache (SQLite); rows are found by a keyed hash and sealed under the key "  \
      "file <cache-database>.key (made on first use, 0600).")                                \
    X(STR, "state", "sqlite", RL, RESTART,                                                 \
      "Where the state the relays of a domain share is kept (the POK pins and the digests of " \
      "accepted inbound messages): sqlite (pin-database and the queue, one node) or "        \
      "postgresql (state-conninfo: one database for every node of the domain).")             \
    X(STR, "state-conninfo", "", RL, RESTART,                                              \
      "With state = postgresql: libpq's connection string, e.g. \"host=/run/postgresql "     \
      "dbname=dime user=dime-relay\". Never logged; keep a password in a passfile= file.")   \
    X(STR, "pin-database", "/var/lib/dime-relay/pins.db", RL, RESTART,                    \
      "The organization keys (POKs) pinned per domain when first seen under a DNSSEC-secure "\
      "record (SQLite); a different POK later needs a rollover signature by the pinned one "  \
      "or 'dime-relayctl pins reset'. Empty: no pinning.")                                   \
    X(STR_LIST, "syndicates", "{}", RL, RESTART,                                          \
      "Syndicate relays (\"host[:port]\") asked, with a domain's syn= hosts, before a POK is " \
      "pinned or a pin moves without a rollover link (daemonlib/SYNDICATE.md).")              \
    X(INT, "syndicate-quorum", -1, RL, RESTART,                                             \
      "Syndicates that must confirm a new POK; -1: a majority of those listed; 0: no check.") \
    X(INT, "syndicate-cache-ttl", 300, RL, RESTART,                                        \
      "Seconds the syndicates' word on a domain's new POK is kept before they are asked again.")\
    X(STR_LIST, "syndicate-for", "{}", RL, RESTART,                                       \
      "Domains whose pin this relay serves to others (XSYN); \"*\": every pinned one.")      \
    X(INT, "signet-cache-ttl", 86400, RL, RESTART,                                         \
      "Seconds a cached signet is used without asking again.")                               \
    X(STR, "lookup-socket", "/run/dime-relay/lookup.sock", RL, RESTART,                    \
      "The lookup service for the milter (mode 0660, the relay's user and group).")          \
    X(INT, "lookup-workers", 16, RL, RESTART, "Lookups resolved at the same time.")         \
    X(INT, "lookup-domain-concurrency", 8, RL, RESTART, "Resolutions of names of one domain at once (more: tempfail, busy).") \
    X(STR, "submit-socket", "/run/dime-relay/submit.sock", RL, RESTART,                    \
      "The submission service for the milter (mode 0660 like the lookup socket).")           \
    X(INT, "submit-workers", 8, RL, RESTART, "Submissions handled at the same time.")       \
    X(INT, "submit-timeout", 300, RL, RESTART, "Seconds for a whole submission request.")   \
    X(INT, "submit-max-total", 1073741824, RL, RESTART, "Bytes of one submission request.") \
    X(INT, "max-message-size", 104857600, RL, RESTART,                                     \
      "Bytes of one message, submitted or received over DMTP (SIZE in EHLO).")               \
    X(STR, "queue-database", "/var/lib/dime-relay/queue.db", RL, RESTART,                  \
      "The durable queue (SQLite, WAL, synchronous=FULL).")                                  \
    X(STR, "queue-key-file", "/var/lib/dime-relay/queue.key", RL, RESTART,                 \
      "The key that seals the addresses in the queue (made on first start, 0600).")          \
    X(INT, "queue-lifetime", 432000, RL, RESTART,                                          \
      "Seconds a message may stay in the queue; then its sender gets a DSN.")                \
    X(INT, "queue-max-messages", 100000, RL, RESTART, "Messages queued at most (outbound plus inbound not yet injected): more is answered 452 4.3.1 (submission) or 431 (DMTP).") \
    X(INT, "queue-min-free", 268435456, RL, RESTART, "Bytes kept free on the queue's file system: below, 452 4.3.1 (submission) or 431 (DMTP).") \
    X(INT, "retry-min", 60, RL, RESTART, "Seconds before the first retry of a delivery.")   \
    X(INT, "retry-max", 3600, RL, RESTART, "The longest time between retries, seconds.")    \
    X(INT, "queue-scan-interval", 1, RL, RESTART, "Seconds between scans of the queue.")   \
    X(INT, "delivery-workers", 32, RL, RESTART, "DMTP sessions at once, to all domains.")   \
    X(INT, "destination-concurrency", 4, RL, RESTART,                                      \
      "DMTP sessions at once to one destination domain.")                                    \
    X(INT, "delivery-reply-timeout", 120, RL, RESTART, "Seconds for each whole reply of a remote DX when delivering (then the message is deferred).") \
    X(INT, "inbound-workers", 8, RL, RESTART,                                              \
      "Inbound messages checked at once (more: 431).")                                       \
    X(STR, "inject-address", "127.0.0.1", RL, RESTART,                                     \
      "Postfix's loopback listener for inbound mail and DSNs (README.postfix).")             \
    X(INT, "inject-port", 10026, RL, RESTART, "The port of that listener.")                \
    X(INT, "inject-concurrency", 4, RL, RESTART,                                           \
      "Injection sessions at once (each one SMTP connection, a message at a time).") \
    X(STR, "metrics-socket", "/run/dime-relay/metrics.sock", RL, RESTART,                  \
      "The metrics endpoint (HTTP GET /metrics, Prometheus text format), a Unix socket of "  \
      "mode 0660 like the lookup socket; dime-relayctl stats reads it (\"\": none). The "     \
      "metrics are listed in dime-relayd(8), METRICS; none names a domain or an address.")   \
    X(STR, "metrics-listen", "", RL, RESTART,                                              \
      "The same endpoint on TCP, ADDRESS:PORT (such as 127.0.0.1:9426) for a Prometheus "    \
      "scraper; off by default (\"\"). It has no access control: bind it to loopback, or "    \
      "keep it on a network only the scraper reaches.")                                      \
    X(INT, "inject-hold-after", 86400, RL, RESTART, "Seconds an inbound message may fail injection before it is held (an alert in the log; dime-relayctl queue list shows it, queue release retries it).")

#define MILTER_OPTS(X)                                                                      \
    X(STR, "socket", "unix:/run/dime-milter/milter.sock", MF, RESTART,                     \
      "Where Postfix connects, in libmilter's syntax (unix:PATH or inet:PORT@HOST, not "     \
      "Postfix's inet:HOST:PORT).")                                                          \
    X(STR, "socket-group", "", MF, RESTART,                                                \
      "The group of a unix socket (mode 0660): Postfix's (\"\": the milter user's own "      \
      "group).")                                                                             \
    X(STR, "keyvault-socket", "/run/dime-keyvault/keyvault.sock", MF, MF,                  \
      "The keyvault's socket.")                                                              \
    X(STR, "relay-lookup-socket", "/run/dime-relay/lookup.sock", MF, MF,                   \
      "The relay's lookup service.")                                                         \
    X(STR, "relay-submit-socket", "/run/dime-relay/submit.sock", MF, MF,                   \
      "The relay's submission service.")                                                     \
    X(STR_LIST, "trusted-networks", "{}", MF, MF,                                          \
      "Clients whose mail counts as outbound without SMTP authentication (they are trusted " \
      "to have checked the sender themselves: keep this to the hosts that need it). Empty "  \
      "by default: every local process can reach 127.0.0.1:25, so listing loopback lets "    \
      "any of them have mail signed as any local sender.")                                   \
    X(STR, "injection-database", "/var/lib/dime-milter/injections.db", MF, RESTART,        \
      "The record of accepted injections that turns a repeat after a relay crash into a "    \
      "discard (\"\": no record, such a repeat is delivered twice).")                        \
    X(STR, "postfix-queue-directory", "", MF, RESTART,                                     \
      "Postfix's queue_directory, where the relay injects (\"\": not used). With it, a "     \
      "repeated injection whose first attempt Postfix never committed (its queue file in "   \
      "incoming/ without the owner-execute bit: Postfix was killed in between) is let "     \
      "through and that file removed, instead of being discarded (rl_inject.h). Started as " \
      "root, the milter forks one process for this that runs as the directory's owner.")   \
    X(STR_LIST, "injection-clients", "{127.0.0.1, ::1}", MF, MF,                           \
      "Where the relay injects from: its X-DIME-Injection fields count only from these.")    \
    X(STR, "authserv-id", "", MF, MF,                                                      \
      "The name in Authentication-Results (\"\": the host name). Any such field with this "  \
      "name that the milter did not add itself is deleted: run the milter on port 25 too "   \
      "(README.postfix).")                                                                   \
    X(STR, "user", "dime-milter", MF, RESTART,                                             \
      "Started as root: the user to become after opening the socket (\"root\": stay root, "  \
      "logged as a warning; \"\" is an error).")                                             \
    X(STR, "pid-file", "/run/dime-milter/milter.pid", MF, RESTART,                         \
      "Where the milter writes its process id.")                                             \
    X(STR, "metrics-socket", "", MF, RESTART,                                              \
      "A Unix socket (mode 0660) serving the milter's counts of recipients by route, "       \
      "downgrades included, and of keyvault requests, in the Prometheus text format (HTTP "  \
      "GET /metrics; \"\": none; dime-milter(8), METRICS).")                                 \
    X(INT, "max-message-size", 52428800, MF, MF, "The largest message converted, bytes.")  \
    X(INT, "timeout", 300, MF, MF,                                                         \
      "Seconds of each request to the relay, and libmilter's timeout towards Postfix (that " \
      "one changes only at a restart).")                                                     \
    X(BOOL, "log-why", cfg_false, MF, MF, "Log why a message was not converted.")           \
    X(BOOL, "sign-local-submissions", cfg_false, MF, MF,                                   \
      "Author-sign mail submitted with sendmail(1) (Postfix's pickup, seen through "         \
      "non_smtpd_milters) as its envelope sender, as for a login that owns the sender. "     \
      "Only with Postfix's local_login_sender_maps limiting each local login to its own "    \
      "addresses: otherwise any local user could sign as anyone. Off: never signed.")        \
    X(STR, "sender-login-map", "", MF, MF,                                                 \
      "Which SASL logins may send (and so be author-signed) as which sender: an absolute "   \
      "path of a file of \"address-or-@domain login[, login...]\" lines, looked up like "    \
      "Postfix's smtpd_sender_login_maps (full address, then @domain). Without a map, or "   \
      "without an entry for the sender, the login must be the address or its local part. "   \
      "Read at start and again on SIGHUP (as the milter's user).")

#define ACCOUNT_OPTS(X)                                                                     \
    X(STR, "listen-address", "127.0.0.1", AC, RESTART,                                     \
      "The IP address of the account service (TLS) that users' devices reach.")             \
    X(INT, "listen-port", 4626, AC, RESTART, "Its port.")                                  \
    X(STR, "tls-certificate", "", AC, RESTART,                                             \
      "The service's certificate chain (PEM), for the name the devices connect to.")        \
    X(STR, "tls-key", "", AC, RESTART, "The private key of tls-certificate (PEM).")        \
    X(STR, "keyvault-socket", "/run/dime-keyvault/keyvault.sock", AC, RESTART,             \
      "The keyvault's socket (this user must be in the keyvault's account-users).")         \
    X(STR, "dovecot-auth-socket", "/run/dovecot/auth-dime", AC, RESTART,                   \
      "Dovecot's auth socket (a unix_listener of service auth that this user may open): "   \
      "logins are checked there, with the passwords Postfix's SASL uses.")                  \
    X(STR, "user", "dime-account", AC, RESTART,                                            \
      "Started as root: the user to become after binding the port and reading the TLS key " \
      "(\"root\": stay root, logged as a warning; \"\" is an error).")                       \
    X(STR, "pid-file", "/run/dime-account/accountd.pid", AC, RESTART,                      \
      "Where the daemon writes its process id (not with -f).")                              \
    X(INT, "max-clients", 64, AC, RESTART,                                                 \
      "Connections at once (1 to 1024); more are answered NO busy and closed.")            \
    X(INT, "timeout", 30, AC, RESTART,                                                     \
      "Seconds for the TLS handshake, for each request line and each reply, and for "       \
      "Dovecot's answer; a connection idle longer is closed.")

/* An option of an earlier version that kv_config refuses naming what replaced it, instead
 * of libconfuse's "no such option" (not in dc_config_opts nor in contrib/dime.conf). */
#define CFG_RETIRED(name) CFG_STR_LIST(name, "{}", CFGF_NONE)

#define DOMAIN_OPTS(X)                                                                      \
    X(BOOL, "require-dnssec", cfg_true, RL, RESTART,                                       \
      "Refuse remote DIME records that DNSSEC does not prove secure (the relay's lookups).") \
    X(STR, "mode", "both", MF, MF,                                                         \
      "The directions the milter converts this domain's mail in: both, inbound, outbound, "  \
      "off.")                                                                                \
    X(STR_LIST, "outbound-require-dime", "{}", MF, MF,                                     \
      "Recipient domains (\"x\", or \".x\" for its subdomains) that never get plain SMTP.")  \
    X(STR, "on-no-signet", "accept", MF, MF,                                               \
      "Outbound to a recipient without DIME: accept sends it as ordinary mail (every such "  \
      "downgrade logged with downgrade=yes and counted); tempfail or reject is the strict "  \
      "setting (mail only as DIME). It also decides for senders the gateway cannot sign for " \
      "(no account, Cautious, Paranoid) to domains without DIME; to DIME domains they "      \
      "always get 550 5.7.1.")                                                               \
    X(STR, "on-dns-error", "tempfail", MF, MF,                                             \
      "The recipient's DIME record cannot be looked up (DNS failure).")                      \
    X(STR, "on-bogus", "tempfail", MF, MF,                                                 \
      "The recipient's DIME record fails DNSSEC validation.")                                \
    X(STR, "on-keyvault-unavailable", "tempfail", MF, MF,                                  \
      "The keyvault does not answer.")                                                       \
    X(STR, "on-relay-unavailable", "tempfail", MF, MF,                                     \
      "The relay's lookup or submission service does not answer.")                           \
    X(STR, "on-verify-failure", "tempfail", MF, MF,                                        \
      "Inbound: a signature of a message does not verify.")                                  \
    X(STR, "notice-author", "", MF, MF,                                                    \
      "A Trustful account of this domain (e.g. mailer-daemon@domain) that signs Postfix's "  \
      "bounces and other null-sender notices from sendmail(1) to DIME recipients, with "     \
      "From naming it and the null envelope sender kept (\"\": none; such notices wait "     \
      "queued, never sent in clear).")                                                       \
    X(STR, "on-strict-sender", "reject", MF, MF,                                           \
      "Inbound plain SMTP (not authenticated, not the relay's injection) whose envelope "    \
      "sender or From domain publishes pol=strict: reject (550 5.7.1), quarantine (held), "  \
      "tempfail, or accept (logged only).")

#define AS_CFG(type, name, def, readers, reload, meaning) CFG_##type(name, def, CFGF_NONE),

static cfg_opt_t keyvault_opts[] = {
    KEYVAULT_OPTS(AS_CFG)
    /* replaced by relay-users and milter-users */
    CFG_RETIRED("allow-sign"),
    CFG_RETIRED("allow-sign-org"),
    CFG_RETIRED("allow-kek"),
    CFG_RETIRED("allow-unwrap"),
    CFG_RETIRED("allow-signet"),
    CFG_RETIRED("allow-history"),
    CFG_RETIRED("allow-account"),
    CFG_END(),
};
static cfg_opt_t relay_opts[] = {RELAY_OPTS(AS_CFG) CFG_END()};
static cfg_opt_t milter_opts[] = {MILTER_OPTS(AS_CFG) CFG_END()};
static cfg_opt_t domain_opts[] = {DOMAIN_OPTS(AS_CFG) CFG_END()};
static cfg_opt_t account_opts[] = {ACCOUNT_OPTS(AS_CFG) CFG_END()};

#define DOC_TOP(type, name, def, readers, reload, meaning) {"", name, readers, reload, meaning},
#define DOC_KV(type, name, def, readers, reload, meaning)                                  \
    {"keyvault", name, readers, reload, meaning},
#define DOC_RL(type, name, def, readers, reload, meaning) {"relay", name, readers, reload, meaning},
#define DOC_MF(type, name, def, readers, reload, meaning)                                  \
    {"milter", name, readers, reload, meaning},
#define DOC_DOM(type, name, def, readers, reload, meaning)                                 \
    {"domain", name, readers, reload, meaning},
#define DOC_AC(type, name, def, readers, reload, meaning)                                  \
    {"account", name, readers, reload, meaning},

const struct dc_config_opt dc_config_opts[] = {
    TOP_OPTS(DOC_TOP) KEYVAULT_OPTS(DOC_KV) RELAY_OPTS(DOC_RL) MILTER_OPTS(DOC_MF)
    DOMAIN_OPTS(DOC_DOM) ACCOUNT_OPTS(DOC_AC) {NULL, NULL, 0, 0, NULL},
};

/* The values of the on-* actions of domain "x" { } (OpenDKIM's vocabulary). */
const char *const dc_config_actions[] = {"accept", "reject", "tempfail", "quarantine", NULL};
/* The directions a local domain's mail is converted in. */
const char *const dc_config_modes[] = {"both", "inbound", "outbound", "off", NULL};
/* The on-* options of domain "x" { }, in the order of enum mf_event (milter/mf_policy.h). */
const char *const dc_config_on_opts[] = {"on-no-signet", "on-dns-error", "on-bogus",
                                         "on-keyvault-unavailable", "on-relay-unavailable",
                                         "on-verify-failure", "on-strict-sender", NULL};
/* The syslog facilities (dl_log_facility knows the same names). */
const char *const dc_config_facilities[] = {"mail", "daemon", "user", "local0", "local1",
                                            "local2", "local3", "local4", "local5", "local6",
                                            "local7", NULL};

int dc_config_word(const char *const *words, const char *v)
{
    for (int i = 0; v != NULL && words[i] != NULL; i++)
        if (strcmp(words[i], v) == 0)
            return i;
    return -1;
}

static cfg_opt_t top_opts[] = {
    TOP_OPTS(AS_CFG)
    /* MULTI only so that an absent section can be told from an empty one (libconfuse always
     * has a single section); dc_config_parse refuses a repeated one */
    CFG_SEC("keyvault", keyvault_opts, CFGF_MULTI),
    CFG_SEC("relay", relay_opts, CFGF_MULTI),
    CFG_SEC("milter", milter_opts, CFGF_MULTI),
    CFG_SEC("domain", domain_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_SEC("account", account_opts, CFGF_MULTI),
    CFG_END(),
};

static enum dc_status check_domains(cfg_t *cfg, const char *path, struct dc_err *err)
{
    unsigned n = cfg_size(cfg, "domain");
    for (unsigned i = 0; i < n; i++) {
        const char *t = cfg_title(cfg_getnsec(cfg, "domain", i));
        struct dc_err e = {0};
        if (t == NULL || dc_mrec_check_host(t, strlen(t), "domain", &e) != DC_OK)
            return dc_fail(err, DC_ERR_FIELD, "%s: domain \"%.64s\": not a domain name", path,
                           t ? t : "");
        cfg_t *d = cfg_getnsec(cfg, "domain", i);
        if (dc_config_word(dc_config_modes, cfg_getstr(d, "mode")) < 0)
            return dc_fail(err, DC_ERR_FIELD,
                           "%s: domain \"%.64s\": mode must be both, inbound, outbound or off",
                           path, t);
        for (unsigned k = 0; dc_config_on_opts[k] != NULL; k++)
            if (dc_config_word(dc_config_actions, cfg_getstr(d, dc_config_on_opts[k])) < 0)
                return dc_fail(err, DC_ERR_FIELD,
                               "%s: domain \"%.64s\": %s must be accept, reject, tempfail or "
                               "quarantine", path, t, dc_config_on_opts[k]);
        for (unsigned k = 0; k < cfg_size(d, "outbound-require-dime"); k++) {
            const char *r = cfg_getnstr(d, "outbound-require-dime", k);
            const char *h = r[0] == '.' ? r + 1 : r;
            if (dc_mrec_check_host(h, strlen(h), "domain", &e) != DC_OK)
                return dc_fail(err, DC_ERR_FIELD,
                               "%s: domain \"%.64s\": outbound-require-dime: \"%.64s\" is not "
                               "a domain name or .suffix", path, t, r);
        }
        for (unsigned j = 0; j < i; j++)
            if (strcasecmp(t, cfg_title(cfg_getnsec(cfg, "domain", j))) == 0)
                return dc_fail(err, DC_ERR_FIELD, "%s: domain \"%.64s\" appears twice", path, t);
    }
    return DC_OK;
}

enum dc_status dc_config_parse(const char *path, cfg_t **out, struct dc_err *err)
{
    *out = NULL;
    struct dc_err local = {0};
    cur_err = &local;
    cur_path = path;
    cfg_t *cfg = cfg_init(top_opts, CFGF_NONE);
    cfg_set_error_function(cfg, conf_error);
    int rc = cfg_parse(cfg, path);
    cur_err = NULL;
    cur_path = NULL;
    if (rc == CFG_FILE_ERROR) {
        int e = errno;
        cfg_free(cfg);
        return dc_fail(err, DC_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (rc != CFG_SUCCESS) {
        cfg_free(cfg);
        if (local.code == DC_OK)
            return dc_fail(err, DC_ERR_FORMAT, "%s: syntax error", path);
        return dc_fail(err, local.code, "%s", local.msg);
    }
    static const char *const once[] = {"keyvault", "relay", "milter", "account"};
    for (size_t i = 0; i < 4; i++) {
        if (cfg_size(cfg, once[i]) > 1) {
            cfg_free(cfg);
            return dc_fail(err, DC_ERR_FIELD, "%s: the %s { } section appears more than once",
                           path, once[i]);
        }
    }
    if (dc_config_word(dc_config_facilities, cfg_getstr(cfg, "syslog-facility")) < 0) {
        cfg_free(cfg);
        return dc_fail(err, DC_ERR_FIELD, "%s: syslog-facility must be mail, daemon, user or "
                       "local0 to local7", path);
    }
    enum dc_status s = check_domains(cfg, path, err);
    if (s != DC_OK) {
        cfg_free(cfg);
        return s;
    }
    *out = cfg;
    return DC_OK;
}

cfg_t *dc_config_domain(cfg_t *cfg, const char *domain)
{
    unsigned n = cfg_size(cfg, "domain");
    for (unsigned i = 0; i < n; i++) {
        cfg_t *d = cfg_getnsec(cfg, "domain", i);
        if (strcasecmp(cfg_title(d), domain) == 0)
            return d;
    }
    return NULL;
}

const char *dc_config_str(cfg_t *sec, const char *opt)
{
    const char *v = cfg_getstr(sec, opt);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

cfg_t *dc_config_schema(void)
{
    return cfg_init(top_opts, CFGF_NONE);
}

/* The value of opt in sec as dime.conf would say it; the caller frees it. */
static char *value_text(cfg_t *sec, const char *name)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cfg_opt_t *o = sec != NULL ? cfg_getopt(sec, name) : NULL;
    if (f == NULL)
        return NULL;
    if (o != NULL)
        cfg_opt_print(o, f);
    fclose(f);
    return buf;
}

static bool differs(cfg_t *a, cfg_t *b, const char *name)
{
    char *x = value_text(a, name), *y = value_text(b, name);
    bool d = x == NULL || y == NULL || strcmp(x, y) != 0;
    free(x);
    free(y);
    return d;
}

/* The section sec of a tree: the top level for "", NULL when absent. */
static cfg_t *section(cfg_t *tree, const char *sec)
{
    if (sec[0] == '\0')
        return tree;
    return cfg_size(tree, sec) > 0 ? cfg_getsec(tree, sec) : NULL;
}

unsigned dc_config_changes(cfg_t *old, cfg_t *nw, unsigned self, dc_config_change_fn fn,
                           void *ctx)
{
    unsigned restart = 0;
    for (const struct dc_config_opt *o = dc_config_opts; o->name != NULL; o++) {
        if (!(o->readers & self) || strcmp(o->section, "domain") == 0)
            continue;
        cfg_t *a = section(old, o->section), *b = section(nw, o->section);
        if ((a == NULL && b == NULL) || !differs(a, b, o->name))
            continue;
        bool applied = (o->reload & self) != 0;
        restart += !applied;
        fn(ctx, o->section, NULL, o->name, applied);
    }
    /* domain sections: added or removed ones, then changed options of the others */
    for (int pass = 0; pass < 2 && (self & DC_DOMAINS_READERS); pass++) {
        cfg_t *from = pass == 0 ? old : nw, *to = pass == 0 ? nw : old;
        for (unsigned i = 0; i < cfg_size(from, "domain"); i++) {
            cfg_t *d = cfg_getnsec(from, "domain", i);
            cfg_t *other = dc_config_domain(to, cfg_title(d));
            if (other == NULL) {
                bool applied = (DC_DOMAINS_RELOAD & self) != 0;
                restart += !applied;
                fn(ctx, "domain", cfg_title(d), NULL, applied);
                continue;
            }
            if (pass == 1)
                continue; /* present in both: compared once */
            for (const struct dc_config_opt *o = dc_config_opts; o->name != NULL; o++) {
                if (!(o->readers & self) || strcmp(o->section, "domain") != 0 ||
                    !differs(d, other, o->name))
                    continue;
                bool applied = (o->reload & self) != 0;
                restart += !applied;
                fn(ctx, "domain", cfg_title(d), o->name, applied);
            }
        }
    }
    return restart;
}
