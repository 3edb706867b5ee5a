#!/usr/bin/env bash
# bench/dmtp - messages/s relayed relay -> relay over DMTP/TLS, against Postfix smtp ->
# smtpd relaying the same number of same-size messages over TLS between two Postfix
# instances, in one run on loopback (issue 6). Run as root (private Postfix instances):
#
#   bench/dmtp.sh BUILD-DIR [COUNT]        (default COUNT 200)
#
# DIME: COUNT messages are submitted to alice's relay while bob's relay is stopped (so they
# wait, origin-signed, in alice's queue), then bob's relay starts and the clock runs until
# alice's queue is empty: every message was sent over DMTP/TLS, checked by bob (destination
# key slot unwrapped by bob's keyvault, origin signatures verified) and committed by bob
# (SQLite, fsync) before its 250. Postfix: COUNT messages wait in instance A (defer_transports
# = smtp), then A relays them to instance B over SMTP with STARTTLS (smtp_tls_security_level
# = encrypt) and the clock runs until A's queue is empty (B fsynced each queue file before its
# 250). Both clocks include up to one queue scan (relay: queue-scan-interval 1 s; Postfix:
# postqueue -f is immediate). Sizes: 4 KiB and 256 KiB bodies.
set -uo pipefail
B=$(cd "$1" && pwd)
N=${2:-200}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LIB=$HERE/../tests/integration/lib
[ "$(id -u)" = 0 ] || { echo "bench/dmtp: run as root (Postfix)" >&2; exit 2; }
source "$LIB/postfix.sh"
source "$LIB/dime_env.sh"
trap env_cleanup EXIT
RELAY_EXTRA="queue-lifetime = 3600" env_init "$B/keyvault/dime-keyvaultd" "$B/keyvault/dimectl" \
    "$B/dmtp-relay/dime-relayd" >/dev/null || { echo "setup failed" >&2; exit 1; }
RLC=$B/dmtp-relay/dime-relayctl
SUB=$B/tests/integration/xfer_submit

now() { date +%s%N; }
alice_empty() { [ -z "$("$RLC" -c "$T/alice/dime.conf" queue list 2>/dev/null)" ]; }

# Both set RATE (messages/s); they run in this shell, not in $(...): relay_stop must be able to
# wait for the relay it stops.
dime_run() { # SIZE
    local size=$1 t0 t1
    # bob's signets into alice's cache while bob is up (the submitter looks them up)
    "$RLC" -c "$T/alice/dime.conf" -d alice.test query bob@bob.test >/dev/null || return 1
    relay_stop bob
    "$SUB" -c "$T/alice/dime.conf" -f alice@alice.test -t bob@bob.test -q B$size -m b$size \
        -n "$N" -j 8 -s "$size" >sub.out 2>sub.err || { echo "submit failed" >&2; head -3 sub.out sub.err >&2; return 1; }
    t0=$(now)
    relay_start bob || return 1
    "$RLC" -c "$T/alice/dime.conf" queue flush >/dev/null
    local k=0
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
    RATE=$(awk -v n="$N" -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", n / (ns / 1e9) }')
}

# ---- two Postfix instances with TLS between them ----
PA=$(env_pick) && PB=$(env_pick) || exit 1
pf_create "$T/pfa" 127.0.0.2 "$PA" pa.test alice
pf_create "$T/pfb" 127.0.0.3 "$PB" pb.test bob
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=mx.pb.test \
    -keyout "$T/pfb/etc/key.pem" -out "$T/pfb/etc/cert.pem" 2>/dev/null
pf_set "$T/pfb" "smtpd_tls_chain_files = $T/pfb/etc/key.pem, $T/pfb/etc/cert.pem" \
    "smtpd_tls_security_level = may"
pf_set "$T/pfa" "smtp_tls_security_level = encrypt" "defer_transports = smtp" \
    "default_destination_concurrency_limit = 4"
pf_transport "$T/pfa" pb.test "smtp:[127.0.0.3]:$PB"
pf_start "$T/pfa" && pf_start "$T/pfb" || exit 1
pf_queue_len() { postqueue -c "$T/pfa/etc" -j 2>/dev/null | grep -c .; }

postfix_run() { # SIZE
    local size=$1 t0 t1 i body
    body=$(head -c $((size * 3 / 4)) /dev/urandom | base64 -w 62)
    for ((i = 0; i < N; i++)); do
        printf 'From: alice@pa.test\nTo: bob@pb.test\nSubject: bench %s\n\n%s\n' "$i" "$body" |
            sendmail -C "$T/pfa/etc" -f alice@pa.test bob@pb.test
    done
    until [ "$(pf_queue_len)" -ge "$N" ]; do sleep 0.05; done
    pf_set "$T/pfa" "defer_transports ="
    pf_reload "$T/pfa"
    t0=$(now)
    postqueue -c "$T/pfa/etc" -f
    until [ "$(pf_queue_len)" = 0 ]; do sleep 0.02; done
    t1=$(now)
    pf_set "$T/pfa" "defer_transports = smtp"
    pf_reload "$T/pfa"
    RATE=$(awk -v n="$N" -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", n / (ns / 1e9) }')
}

echo "dime-gateway bench/dmtp ($N messages per run, loopback, TLS both ways; ratio = DMTP / Postfix)"
for size in 4096 262144; do
    dime_run "$size" || exit 1
    d=$RATE
    postfix_run "$size" || exit 1
    p=$RATE
    printf '%-8s relay->relay DMTP/TLS %8s msg/s | Postfix smtp->smtpd TLS %8s msg/s | ratio %s\n' \
        "$((size / 1024))KiB" "$d" "$p" "$(awk -v a="$d" -v b="$p" 'BEGIN { printf "%.2f", a / b }')"
done
