#!/usr/bin/env bash
# bench/dmtp - messages/s relayed relay -> relay over DMTP/TLS, against Postfix smtp ->
# smtpd relaying the same number of same-size messages over TLS between two Postfix
# instances, in one run on loopback (issue 6). Run as root (private Postfix instances):
#
#   bench/dmtp.sh BUILD-DIR [COUNT [ROUNDS]]     (defaults: COUNT 200, ROUNDS 3)
#
# Both clocks run from "COUNT messages wait in the sender's queue, the receiver is up" to
# "the sender's queue is empty"; each size is measured ROUNDS times, DIME and Postfix
# alternating, and the best round of each side is reported (the machine may be shared).
#
# DIME: COUNT messages are submitted to alice's relay while bob's relay is stopped (they wait,
# origin-signed, in alice's queue); alice's relay is stopped, the queue flushed (all due
# now), bob's relay started, and the clock starts as alice's relay starts: its scheduler scans
# the queue on start, so no queue-scan-interval is on the clock. Each message is sent over
# DMTP/TLS (connections reused, destination-concurrency 4), checked by bob (destination key
# slot unwrapped by bob's keyvault, origin signatures verified) and committed by bob (SQLite
# WAL, synchronous=FULL) before its 250; alice deletes it from its queue after the 250. Bob
# injects it into its Postfix meanwhile: off the clock, but on the same CPUs and database.
#
# Postfix: COUNT messages are injected into instance A with defer_transports = smtp and the
# clock starts once all of them sit in A's deferred queue; `postqueue -f` then delivers them
# (a flush overrides defer_transports, no reload). A relays to instance B over SMTP with
# STARTTLS (smtp_tls_security_level = encrypt), concurrency 4 to B like the relay; B's
# cleanup fsyncs each queue file before its 250 and B delivers to a Maildir (virtual, fsync)
# off the clock, like bob's injection. B does no reverse DNS lookup of the client
# (smtpd_peername_lookup = no): the relay does none, and on this VM a lookup of 127.0.0.2
# sometimes waits for the 5 s resolver timeout. Left at their defaults because they made this
# baseline slower here (BENCHMARKS.md): TLS connection reuse (smtp_tls_connection_reuse: one
# tlsproxy does every TLS session), the client's TLS session cache (through tlsmgr), a
# higher concurrency. Sizes: 4 KiB and 256 KiB.
#
# "hop only" runs the same again with no delivery beside the clock on the receiving side:
# bob's Postfix is stopped (bob's relay queues what arrives; its injections wait) and B puts
# what it accepts on hold (queued and fsynced, not delivered); both deliver after the clock.
# Every round ends once bob has injected everything or B has delivered everything, so no
# round runs beside the previous one's leftovers.
set -uo pipefail
B=$(cd "$1" && pwd)
N=${2:-200}
ROUNDS=${3:-3}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LIB=$HERE/../tests/integration/lib
[ "$(id -u)" = 0 ] || { echo "bench/dmtp: run as root (Postfix)" >&2; exit 2; }
source "$LIB/postfix.sh"
source "$LIB/dime_env.sh"
trap env_cleanup EXIT
# bin NAME DIR...: the first $B/DIR/NAME that exists (builds before c0dce33 had the tools
# next to their daemons and xfer_submit in tests/integration/)
bin() {
    local n=$1 d
    shift
    for d in "$@"; do [ -x "$B/$d/$n" ] && { echo "$B/$d/$n"; return 0; }; done
    echo "$B/$1/$n"
}
RELAY_EXTRA="queue-lifetime = 3600
  destination-concurrency = 4" env_init "$B/keyvault/dime-keyvaultd" \
    "$(bin dimectl tools keyvault)" "$B/dmtp-relay/dime-relayd" >/dev/null ||
    { echo "setup failed" >&2; exit 1; }
RLC=$(bin dime-relayctl tools dmtp-relay)
SUB=$(bin xfer_submit tests/tools tests/integration)

now() { date +%s%N; }
alice_empty() { [ -z "$("$RLC" -c "$T/alice/dime.conf" queue list 2>/dev/null)" ]; }
bob_empty() { [ -z "$("$RLC" -c "$T/bob/dime.conf" queue list 2>/dev/null)" ]; }
until_true() { # WHAT CMD...: polls CMD every 0.05 s for up to 120 s
    local what=$1 k=0
    shift
    until "$@"; do
        sleep 0.05
        k=$((k + 1))
        [ $k -lt 2400 ] || { echo "bench/dmtp: $what" >&2; return 1; }
    done
}
rate() { awk -v n="$N" -v ns=$(($2 - $1)) 'BEGIN { printf "%.1f", n / (ns / 1e9) }'; }

# Both set RATE (messages/s); they run in this shell, not in $(...): relay_stop must be able to
# wait for the relay it stops.
dime_run() { # SIZE ROUND [paused]
    local size=$1 t0 t1 k=0 paused=${3:-}
    # bob's signets into alice's cache while bob is up (the submitter looks them up)
    "$RLC" -c "$T/alice/dime.conf" -d alice.test query bob@bob.test >/dev/null || return 1
    relay_stop bob
    "$SUB" -c "$T/alice/dime.conf" -f alice@alice.test -t bob@bob.test -q "B${size}R${2}N" \
        -m "b$size.$2." -n "$N" -j 8 -s "$size" >sub.out 2>sub.err ||
        { echo "submit failed" >&2; head -3 sub.out sub.err >&2; return 1; }
    relay_stop alice
    "$RLC" -c "$T/alice/dime.conf" queue flush >/dev/null || return 1
    relay_start bob || return 1
    # paused: bob's Postfix is down, so bob's relay only queues what arrives (its injection
    # waits and runs after the clock instead of beside it)
    [ -z "$paused" ] || pf_stop "$T/pf-bob"
    t0=$(now)
    relay_start alice || return 1
    until alice_empty; do
        sleep 0.02
        k=$((k + 1))
        if [ $k -gt 6000 ]; then
            echo "bench/dmtp: alice's queue did not drain:" >&2
            "$RLC" -c "$T/alice/dime.conf" queue list | head -3 >&2
            return 1
        fi
    done
    t1=$(now)
    RATE=$(rate "$t0" "$t1")
    [ -z "$paused" ] || pf_start "$T/pf-bob" || return 1
    # the next round starts with bob's injections done
    until_true "bob's relay did not inject everything" bob_empty
}

# ---- two Postfix instances with TLS between them ----
PA=$(env_pick) && PB=$(env_pick) || exit 1
pf_create "$T/pfa" 127.0.0.2 "$PA" pa.test alice
pf_create "$T/pfb" 127.0.0.3 "$PB" pb.test bob
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=mx.pb.test \
    -keyout "$T/pfb/etc/key.pem" -out "$T/pfb/etc/cert.pem" 2>/dev/null
pf_set "$T/pfb" "smtpd_tls_chain_files = $T/pfb/etc/key.pem, $T/pfb/etc/cert.pem" \
    "smtpd_tls_security_level = may" "smtpd_peername_lookup = no"
pf_set "$T/pfa" "smtp_tls_security_level = encrypt" "defer_transports = smtp" \
    "default_destination_concurrency_limit = 4" "initial_destination_concurrency = 4"
pf_transport "$T/pfa" pb.test "smtp:[127.0.0.3]:$PB"
pf_start "$T/pfa" && pf_start "$T/pfb" || exit 1
pf_queue_len() { postqueue -c "$T/pfa/etc" -j 2>/dev/null | grep -c .; }
pf_b_empty() { [ "$(postqueue -c "$T/pfb/etc" -j 2>/dev/null | grep -c .)" = 0 ]; }
pf_deferred() { postqueue -c "$T/pfa/etc" -j 2>/dev/null | grep -c '"queue_name": *"deferred"'; }

postfix_run() { # SIZE [paused]
    local size=$1 t0 t1 i body k=0 paused=${2:-}
    body=$(head -c $((size * 3 / 4)) /dev/urandom | base64 -w 62)
    for ((i = 0; i < N; i++)); do
        printf 'From: alice@pa.test\nTo: bob@pb.test\nSubject: bench %s\n\n%s\n' "$i" "$body" |
            sendmail -C "$T/pfa/etc" -f alice@pa.test bob@pb.test
    done
    # all of them deferred, none still in incoming/active (one there now would be deferred
    # after the flush and wait for the next queue run)
    until [ "$(pf_deferred)" -ge "$N" ]; do
        sleep 0.05
        k=$((k + 1))
        [ $k -lt 1200 ] || { echo "bench/dmtp: Postfix A did not defer $N messages" >&2; return 1; }
    done
    # paused: B puts what it accepts on hold (queued and fsynced as usual, not delivered)
    if [ -n "$paused" ]; then
        pf_set "$T/pfb" "smtpd_client_restrictions = check_client_access static:HOLD"
        pf_reload "$T/pfb"
    fi
    t0=$(now)
    postqueue -c "$T/pfa/etc" -f
    until [ "$(pf_queue_len)" = 0 ]; do sleep 0.02; done
    t1=$(now)
    RATE=$(rate "$t0" "$t1")
    if [ -n "$paused" ]; then
        pf_set "$T/pfb" "smtpd_client_restrictions ="
        pf_reload "$T/pfb"
        postsuper -c "$T/pfb/etc" -H ALL 2>/dev/null
        postqueue -c "$T/pfb/etc" -f
    fi
    # the next round starts with B's deliveries done
    until_true "Postfix B did not deliver everything" pf_b_empty
}

best() { awk -v a="$1" -v b="$2" 'BEGIN { print (b + 0 > a + 0) ? b : a }'; }

echo "dime-gateway bench/dmtp ($N messages per run, best of $ROUNDS rounds, loopback, TLS both" \
    "ways; ratio = DMTP / Postfix)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
for size in 4096 262144; do
    bd=0 bq=0 bp=0 bh=0 runs=
    for ((r = 1; r <= ROUNDS; r++)); do
        dime_run "$size" "$r" || exit 1
        d=$RATE
        dime_run "$size" "${r}P" paused || exit 1
        q=$RATE
        postfix_run "$size" || exit 1
        p=$RATE
        postfix_run "$size" paused || exit 1
        h=$RATE
        bd=$(best "$bd" "$d") bq=$(best "$bq" "$q") bp=$(best "$bp" "$p") bh=$(best "$bh" "$h")
        runs="$runs $d/$p/$q/$h"
    done
    printf '%-8s relay->relay DMTP/TLS %8s msg/s | Postfix smtp->smtpd TLS %8s msg/s | ratio %s\n' \
        "$((size / 1024))KiB" "$bd" "$bp" "$(ratio "$bd" "$bp")"
    printf '%-8s hop only (no delivery beside the clock): DMTP/TLS %8s msg/s | Postfix %8s msg/s | ratio %s\n' \
        "" "$bq" "$bh" "$(ratio "$bq" "$bh")"
    printf '%-8s rounds (DMTP/Postfix/DMTP hop/Postfix hop):%s\n' "" "$runs"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
