#!/usr/bin/env bash
# Integration test of dime-relayd's metrics (dime-relayd(8), METRICS), TAP output.
#
# Two domains as in test_transfer.sh (lib/dime_env.sh): alice's relay also serves the
# metrics on a loopback TCP port (metrics-listen), both on their metrics-socket. Known
# traffic goes through: N messages alice -> bob over DMTP, one to an unknown recipient
# (bounced at bob with 510, a DSN into alice's Postfix), lookups of each outcome through
# alice's lookup service, and a DMTP session at bob that reaches max-errors. Then the exact
# counts are read from both relays (curl over TCP and over the Unix socket, and
# dime-relayctl stats), every exposition passes a strict format check (metrics_check.py),
# and the latency histograms count exactly the deliveries and the lookups.
#
# usage: test_metrics.sh KEYVAULTD DIMECTL RELAYD RELAYCTL XFER_SUBMIT
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KVD=$(abs "$1")
CTL=$(abs "$2")
RLD=$(abs "$3")
RLC=$(abs "$4")
SUB=$(abs "$5")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"
CHECK="$HERE/metrics_check.py"
START=$(date +%s)

for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf curl; do
    command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ "$(id -u)" = 0 ] || skip_all "needs root (private Postfix instances)"

source "$HERE/lib/postfix.sh"
source "$HERE/lib/dime_env.sh"
trap env_cleanup EXIT
die() {
    echo "Bail out! $*"
    for f in "$T"/*.log; do [ -s "$f" ] && tail -5 "$f" | sed "s|^|# $(basename "$f"): |"; done
    exit 1
}
ENV_BOGUS=1 env_init "$KVD" "$CTL" "$RLD" || die "setup failed"
cd "$T" || die "no $T"
N=5
# alice's relay again, with the TCP endpoint too (its counters start from zero)
MP=$(env_pick) || die "no free port"
sed -i "/^relay {/a\\  metrics-listen = \"127.0.0.2:$MP\"" alice/dime.conf
relay_stop alice
L0=$(wc -l <alice-relayd.log)
relay_start alice || die "alice's relay restart"
env_wait_tcp 127.0.0.2 "$MP" "${RL_PID[alice]}" || die "no metrics port"
AM=$(env_dir alice relay)/metrics.sock
BM=$(env_dir bob relay)/metrics.sock

wait_for() {
    local t=$1 i
    shift
    for ((i = 0; i < t * 10; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}
scrape_a() { curl -sS --max-time 10 "http://127.0.0.2:$MP/metrics" >"$1" 2>err.txt; }
scrape_b() { curl -sS --max-time 10 --unix-socket "$BM" http://localhost/metrics >"$1" 2>err.txt; }
# get FILE SERIES: its value ("missing" when absent)
get() { python3 "$CHECK" "$1" get "$2"; }
# expect FILE SERIES VALUE: one TAP line
expect() {
    local v
    v=$(get "$1" "$2")
    if [ "$v" = "$3" ]; then ok "$1: $2 = $3"; else
        echo "# got $v" >out.txt
        notok "$1: $2 = $3"
    fi
}
strict() {
    if python3 "$CHECK" "$1" >out.txt 2>err.txt; then ok "$1: the whole exposition passes the strict check"
    else notok "$1: the whole exposition passes the strict check"; fi
}
queue_empty() { [ -z "$("$RLC" -c "$T/$1/dime.conf" queue list 2>/dev/null)" ]; }

# ---- before any mail ----
scrape_a a0.txt && ok "alice: GET /metrics over TCP (metrics-listen)" || notok "alice: GET /metrics over TCP (metrics-listen)"
strict a0.txt
expect a0.txt 'dime_relay_messages_total{route="dmtp_out"}' 0
expect a0.txt 'dime_relay_queue_messages{queue="outbound"}' 0
curl -sS -D hdr.txt -o /dev/null "http://127.0.0.2:$MP/metrics" 2>err.txt
grep -qi '^Content-Type: text/plain; version=0.0.4' hdr.txt && ok "Content-Type names the text format 0.0.4" ||
    notok "Content-Type names the text format 0.0.4"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.2:$MP/other")
[ "$code" = 404 ] && ok "another path: 404" || notok "another path: 404 (got $code)"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.2:$MP/metrics")
[ "$code" = 405 ] && ok "another method: 405" || notok "another method: 405 (got $code)"
ss -Htln | awk '{print $4}' | grep -qx "127.0.0.3:$MP" && notok "bob has no TCP endpoint (metrics-listen unset)" ||
    ok "bob has no TCP endpoint (metrics-listen unset)"
stat -c '%a' "$AM" >out.txt
[ "$(cat out.txt)" = 660 ] && ok "the metrics socket has mode 0660" || notok "the metrics socket has mode 0660"

# ---- traffic of known routes ----
before=$(pf_mail_count "$T/pf-bob" bob)
"$SUB" -c alice/dime.conf -f alice@alice.test -t bob@bob.test -q MET -m met -n $N >out.txt 2>err.txt
[ "$(grep -c ' 250 2.0.0 queued ' out.txt)" = $N ] && ok "$N submissions queued" || notok "$N submissions queued"
"$SUB" -c alice/dime.conf -f alice@alice.test -t bob@bob.test -e ghost@bob.test -q GHOST \
    -m ghost >out.txt 2>err.txt
has ' 250 ' && ok "a submission to an unknown recipient queued" || notok "a submission to an unknown recipient queued"
pf_wait_mail "$T/pf-bob" bob $((before + N)) 60 && ok "$N messages delivered to bob" ||
    notok "$N messages delivered to bob"
dsn() { pf_mail_files "$T/pf-alice" alice | xargs -r grep -l "X-Postfix-Queue-ID: GHOST0" 2>/dev/null | grep -q .; }
wait_for 30 dsn && ok "the DSN reached alice" || notok "the DSN reached alice"
wait_for 30 queue_empty alice && wait_for 30 queue_empty bob && ok "both queues are empty" ||
    notok "both queues are empty"
# lookups through alice's lookup service (xfer_submit made some of its own, as the milter
# does): a new name from dns then from the cache, not a DIME domain, bogus, tempfail; counted from here
scrape_a am.txt || notok "alice: scrape before the lookups"
q() { "$RLC" -c alice/dime.conf query "$1" >/dev/null 2>&1; echo $?; }
rcs="$(q alice@alice.test) $(q alice@alice.test) $(q nothing.test) $(q bogus.test) $(q down.test)"
[ "$rcs" = "0 0 3 1 4" ] && ok "lookups answered secure, secure, not-dime, bogus, tempfail" ||
    notok "lookups answered secure, secure, not-dime, bogus, tempfail (exit codes $rcs)"
# a DMTP session at bob with 5 bad commands: max-errors (5) ends it
python3 - "$DXP" >out.txt 2>err.txt <<'PY'
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.3", int(sys.argv[1])), timeout=10))
f = s.makefile("rb")
f.readline()
for _ in range(5):
    s.sendall(b"BOGUS\r\n")
print(f.read().decode(errors="replace"))
PY
has '421' && ok "bob closes the session after max-errors bad commands" ||
    notok "bob closes the session after max-errors bad commands"

# ---- alice: exact counts ----
scrape_a a1.txt || notok "alice: scrape after the traffic"
strict a1.txt
expect a1.txt 'dime_relay_messages_total{route="submitted"}' $((N + 1))
expect a1.txt 'dime_relay_messages_total{route="dmtp_out"}' $N
expect a1.txt 'dime_relay_messages_total{route="bounced"}' 1
expect a1.txt 'dime_relay_messages_total{route="dsn"}' 1
expect a1.txt 'dime_relay_messages_total{route="dmtp_in"}' 0
expect a1.txt 'dime_relay_messages_total{route="injected"}' 0
expect a1.txt 'dime_relay_delivery_seconds_count' $N
# delta SERIES WANT: the series grew by WANT between am.txt and a1.txt
delta() {
    local a b
    a=$(get am.txt "$1") b=$(get a1.txt "$1")
    if [ "$a" != missing ] && [ "$b" != missing ] && [ $((b - a)) = "$2" ]; then ok "alice: $1 +$2"
    else
        echo "# $a -> $b" >out.txt
        notok "alice: $1 +$2"
    fi
}
delta 'dime_relay_lookups_total{outcome="dime",source="dns"}' 1
delta 'dime_relay_lookups_total{outcome="dime",source="cache"}' 1
delta 'dime_relay_lookups_total{outcome="not_dime",source="dns"}' 1
delta 'dime_relay_lookups_total{outcome="bogus",source="dns"}' 1
delta 'dime_relay_lookups_total{outcome="tempfail",source="dns"}' 1
delta 'dime_relay_lookup_seconds_count' 5
# all lookups: the histogram's count, and one log line each
total=$(python3 "$CHECK" a1.txt sum dime_relay_lookups_total)
logged=$(tail -n +$((L0 + 1)) alice-relayd.log | grep -c 'lookup outcome=')
[ "$(get a1.txt dime_relay_lookup_seconds_count)" = "$total" ] && [ "$total" = "$logged" ] &&
    ok "alice: lookup_seconds_count = lookups_total = lookup log lines ($total)" ||
    notok "alice: lookup_seconds_count = lookups_total = lookup log lines ($total, $logged)"
expect a1.txt 'dime_relay_queue_messages{queue="outbound"}' 0
# every submission had its origin signatures made by alice's keyvault, and nothing failed
v=$(get a1.txt 'dime_relay_keyvault_requests_total{op="sign",result="ok"}')
[ "$v" != missing ] && [ "$v" -ge $((N + 1)) ] && ok "alice: keyvault sign ok counted ($v >= $((N + 1)))" ||
    notok "alice: keyvault sign ok counted ($v >= $((N + 1)))"
grep -E 'keyvault_requests_total\{op="[a-z0-9-]+",result="(failed|timeout)"\} [1-9]' a1.txt >out.txt
[ ! -s out.txt ] && ok "alice: no keyvault request failed or timed out" || notok "alice: no keyvault request failed or timed out"
# nothing in the metrics names a domain or an address
grep -E 'alice|bob|ghost|\.test' a1.txt >out.txt
[ ! -s out.txt ] && ok "alice: no domain or address in the metrics" || notok "alice: no domain or address in the metrics"

# ---- bob: exact counts, over the Unix socket ----
scrape_b b1.txt && ok "bob: GET /metrics over the metrics socket" || notok "bob: GET /metrics over the metrics socket"
strict b1.txt
expect b1.txt 'dime_relay_messages_total{route="dmtp_in"}' $N
expect b1.txt 'dime_relay_messages_total{route="injected"}' $N
expect b1.txt 'dime_relay_messages_total{route="dmtp_out"}' 0
expect b1.txt 'dime_relay_delivery_seconds_count' 0
expect b1.txt 'dime_relay_limit_hits_total{limit="max-errors"}' 1
expect b1.txt 'dime_relay_queue_messages{queue="inbound"}' 0
v=$(get b1.txt 'dime_relay_dmtp_connections_total')
[ "$v" != missing ] && [ "$v" -ge 2 ] && ok "bob: DMTP connections counted ($v >= 2)" ||
    notok "bob: DMTP connections counted ($v >= 2)"
v=$(get b1.txt 'dime_relay_keyvault_requests_total{op="kek",result="ok"}')
[ "$v" != missing ] && [ "$v" -ge $N ] && ok "bob: keyvault KEKs counted ($v >= $N)" ||
    notok "bob: keyvault KEKs counted ($v >= $N)"

# ---- dime-relayctl stats prints the same figures ----
"$RLC" -c alice/dime.conf stats --raw >a2.txt 2>err.txt && ok "stats --raw" || notok "stats --raw"
cmp -s a1.txt a2.txt && ok "stats --raw is the exposition the endpoint serves" ||
    { diff a1.txt a2.txt | head -5 >out.txt; notok "stats --raw is the exposition the endpoint serves"; }
"$RLC" -c alice/dime.conf stats >table.txt 2>err.txt && ok "stats" || notok "stats"
row() { awk -v m="$1" -v l="$2" '$1 == m && $2 == l { print $3 }' table.txt; }
[ "$(row dime_relay_messages_total route=dmtp_out)" = $N ] &&
    [ "$(row dime_relay_messages_total route=submitted)" = $((N + 1)) ] &&
    [ "$(awk '$1 == "dime_relay_lookups_total" && $2 == "outcome=bogus" && $3 == "source=dns" { print $4 }' table.txt)" = 1 ] &&
    [ "$(row dime_relay_delivery_seconds -)" = $N ] &&
    ok "stats: the table shows the same counts (route, lookup, histogram count)" ||
    { cp table.txt out.txt; notok "stats: the table shows the same counts (route, lookup, histogram count)"; }
# every series of the exposition is one row of the table (histograms as one row each)
series=$(grep -c -v -e '^#' -e '_bucket{' -e '_sum[ {]' a1.txt)
rows=$(($(wc -l <table.txt) - 1))
[ "$series" = "$rows" ] && ok "stats: one row per series ($rows)" || notok "stats: one row per series ($rows, want $series)"
"$RLC" -c bob/dime.conf stats --raw >b2.txt 2>err.txt
[ "$(get b2.txt 'dime_relay_messages_total{route="injected"}')" = $N ] &&
    ok "stats --raw on bob: the same injected count" || notok "stats --raw on bob: the same injected count"

# ---- the endpoint off ----
sed -i 's|^  metrics-socket = .*|  metrics-socket = ""|' bob/dime.conf
relay_stop bob
relay_start bob || die "bob's relay restart"
[ ! -e "$BM" ] && ok "metrics-socket \"\": no socket" || notok "metrics-socket \"\": no socket"
"$RLC" -c bob/dime.conf stats >out.txt 2>err.txt
[ $? = 4 ] && has 'metrics-socket is not set' err.txt && ok "stats without the socket: exit 4, says why" ||
    notok "stats without the socket: exit 4, says why"

echo "# duration $(($(date +%s) - START)) s"
echo "1..$n"
[ "$failed" = 0 ]
