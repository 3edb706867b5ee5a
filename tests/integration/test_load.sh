#!/usr/bin/env bash
# Load test of dime-relayd under hostile load (issue 16), TAP output.
#
# alice.test (127.0.0.2) and bob.test (127.0.0.3) from lib/dime_env.sh: the real relays and
# keyvaults, each with its own Postfix; normal mail goes alice -> bob through alice's
# submission service (xfer_submit), DMTP to bob's DX server, and bob's injection into its
# Postfix, which delivers it to bob's mailbox. bob: max-message-size 64 MiB,
# data-memory-limit 8 MiB, data-spool-threshold 1 MiB, signet-rate 1200/min with
# signet-burst 100 (so that a flood slowed down by a busy machine still exceeds it), the other
# limits at their defaults.
#
#   spool: a 50 MB message (LOAD_BIG) sent at 20 MB/s to bob's DX port arrives intact in
#     bob's mailbox (without spooling it could not: it is 6 times data-memory-limit); bob's
#     peak RSS from the start of the transfer to its 250 grows by less than a quarter of the
#     message (it grows by 6-8 MiB whatever the size: a 20 MB message would not pass); the
#     spool directory is the relay's, 0700, and empty afterwards;
#   blocks: LOAD_ROUNDS (3 times DIME_TEST_SCALE) rounds of a block of normal mail without the
#     attack, then one with it; a block sends messages one after another for LOAD_BLOCK_S (8)
#     seconds, at most LOAD_N (300), each timed from the start of its submission until it is in
#     bob's mailbox. The attack (load_peer.py, against bob's DX port, started before and stopped
#     after each block with it): LOAD_SLOW (200) slow TLS clients dripping bytes (half in
#     commands, half inside a 30 MB message), a flood of SGNT (240/s from 4 addresses) and
#     oversize DATA (4/s: SIZE= and a header above max-message-size);
#   checks: median latency under attack <= LOAD_FACTOR (3) x the median without it; bob's
#     peak RSS over all blocks (VmHWM) <= LOAD_RSS_MB (128) MiB; every normal message in
#     bob's mailbox exactly once; both queues empty; the oversize messages got 552; the
#     limits hit are in bob's log (limit=signet-rate, data refused code=552, closed=idle).
# Under ASan (ASAN_OPTIONS set, as in the san test setup) the RSS figures are printed but the
# two RSS checks are skipped: the shadow memory and the quarantine of freed blocks (256 MiB)
# count in RSS, so they say nothing about what the relay holds.
# The figures are printed as TAP comments and recorded in BENCHMARKS.md ("Load test").
#
# usage: test_load.sh KEYVAULTD DIMECTL RELAYD RELAYCTL XFER_SUBMIT
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KVD=$(abs "$1")
CTL=$(abs "$2")
RLD=$(abs "$3")
RLC=$(abs "$4")
SUB=$(abs "$5")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"
LOADP="$HERE/load_peer.py"
N=${LOAD_N:-300}
ROUNDS=${LOAD_ROUNDS:-$(scaled 3)}
BLOCK_S=${LOAD_BLOCK_S:-8}
FACTOR=${LOAD_FACTOR:-3}
SLOW=${LOAD_SLOW:-200}
RSS_MB=${LOAD_RSS_MB:-128}
# rss_check OK TEXT: an RSS check, skipped under ASan
rss_check() {
    if [ -n "${ASAN_OPTIONS:-}" ]; then
        ok "$2 # SKIP not measured under ASan"
    elif [ "$1" = 1 ]; then ok "$2"; else notok "$2"; fi
}
BIG=${LOAD_BIG:-50000000}
T0=$(date +%s)

for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf; do
    command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ "$(id -u)" = 0 ] || skip_all "needs root (private Postfix instances)"

source "$HERE/lib/postfix.sh"
source "$HERE/lib/dime_env.sh"
ATTACK_PID=
cleanup() {
    if [ -n "$ATTACK_PID" ]; then
        kill "$ATTACK_PID" 2>/dev/null
        wait "$ATTACK_PID" 2>/dev/null
    fi
    env_cleanup
}
trap cleanup EXIT
die() {
    echo "Bail out! $*"
    for f in "$T"/*.log; do [ -s "$f" ] && tail -5 "$f" | sed "s|^|# $(basename "$f"): |"; done
    exit 1
}
ENV_USERS=auto
RELAY_EXTRA="max-message-size = 67108864
  data-memory-limit = 8388608
  data-spool-threshold = 1048576
  signet-rate = 1200
  signet-burst = 100" env_init "$KVD" "$CTL" "$RLD" "$RLC" || die "setup failed"
# bob: idle-timeout 5 s, so that the slow clients in commands are cut and come back during
# the attack; queue-scan-interval 30 s, so that its injector starts on a commit's wake-up
# (after the log line "committed"), not on its own timer while the committing thread still
# checkpoints the WAL: the spool case measures the DATA path up to that line
relay_stop bob
sed -i -e 's/^  idle-timeout = 30$/  idle-timeout = 5/' \
    -e 's/^  queue-scan-interval = 1$/  queue-scan-interval = 30/' "$T/bob/dime.conf"
relay_start bob || die "bob relay restart"
BOBLOG=$T/bob-relayd.log
MAILDIR=$T/pf-bob/mail/bob
BPID=${RL_PID[bob]}
kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
mails() { find "$MAILDIR/new" "$MAILDIR/cur" -type f 2>/dev/null | wc -l; }

# ---- spool: a message 6 times data-memory-limit over a 20 MB/s link ----
"$SUB" -c "$T/alice/dime.conf" -f alice@alice.test -t bob@bob.test -m big -s "$BIG" \
    -o "$T/big.bin" >out.txt 2>err.txt || die "a large message: $(cat err.txt)"
size=$(stat -c %s "$T/big.bin")
rss0=$(kb "$BPID" VmRSS)
echo 5 >"/proc/$BPID/clear_refs" # VmHWM from here
# bob's RSS every 10 ms until the message is committed (then the injection into Postfix
# starts, which holds the whole message: reported below, not part of this check)
(
    while ! grep -q "inbound tid=.* size=$size committed" "$BOBLOG"; do
        kb "$BPID" VmRSS
        sleep 0.01
    done
) >"$T/rss.txt" 2>/dev/null &
SAMPLER=$!
timeout 60 python3 "$LOADP" big 127.0.0.3 "$DXP" alice.test bob.test "$T/big.bin" 20000000 \
    >out.txt 2>err.txt
for _ in $(seq 100); do kill -0 "$SAMPLER" 2>/dev/null || break; sleep 0.1; done
kill "$SAMPLER" 2>/dev/null
wait "$SAMPLER" 2>/dev/null
peak=$(sort -n "$T/rss.txt" | tail -1)
grep -qE '^250 OK \[[0-9a-f]{20}\] after' out.txt &&
    ok "a $size-byte message, $(awk -v s="$size" 'BEGIN { printf "%.1f", s / 8388608 }') x data-memory-limit, at 20 MB/s: $(sed 's/.*\] //' out.txt)" ||
    notok "a $size-byte message at 20 MB/s: 250 ($(cat out.txt err.txt | head -3))"
echo "# bob's RSS before: $(mib "$rss0") MiB, peak while receiving, checking and committing: $(mib "${peak:-0}") MiB ($(wc -l <"$T/rss.txt") samples; message $((size / 1048576)) MiB)"
good=0
[ -n "$peak" ] && [ $((peak - rss0)) -lt $((size / 1024 / 4)) ] && good=1
rss_check $good "bob's RSS grows by $(mib $((${peak:-0} - rss0))) MiB while receiving (bound: a quarter of the message, $((size / 4194304)) MiB)"
grep -q "ip=[0-9.]* spool size=$size\$" "$BOBLOG" && ok "bob's log: spool size=$size" ||
    notok "bob's log: spool size=$size"
spool=$(env_dir bob relay)/spool
want_owner=root
[ "${ENV_USERS:-0}" = 1 ] && want_owner=dime-relay
[ "$(stat -c %U:%a "$spool" 2>/dev/null)" = "$want_owner:700" ] &&
    ok "the spool directory is the relay's ($want_owner, 0700)" ||
    notok "the spool directory is the relay's ($(stat -c %U:%a "$spool" 2>&1))"
for _ in $(seq 300); do [ "$(mails)" -ge 1 ] && break; sleep 0.1; done
f=$(find "$MAILDIR/new" "$MAILDIR/cur" -type f 2>/dev/null | head -1)
# the injection wrapper: header, blank line, base64 of the D/MIME bytes
if [ -n "$f" ] && tr -d '\r' <"$f" | sed '1,/^$/d' | base64 -d 2>/dev/null | cmp -s - "$T/big.bin"; then
    ok "the spooled message arrived intact in bob's mailbox"
else notok "the spooled message arrived intact in bob's mailbox"; fi
echo "# bob's peak RSS after injecting it into Postfix: $(mib "$(kb "$BPID" VmHWM)") MiB"
[ -z "$(ls -A "$spool" 2>/dev/null)" ] && ok "the spool directory is empty afterwards" ||
    notok "the spool directory is empty afterwards ($(ls -A "$spool"))"
before_mail=$(mails)

# ---- normal mail without and with the attack, in alternating blocks ----
# LOAD_ROUNDS rounds of a block without the attack, then one with it; a block sends messages
# one after another for LOAD_BLOCK_S seconds (at most LOAD_N): a slower machine (or the
# sanitizer build) sends fewer, and load from elsewhere on the machine falls on both kinds
# of block alike, so their ratio stays meaningful
mail_block() { # TAG
    timeout $((BLOCK_S + 60)) python3 "$LOADP" mail "$SUB" "$T/alice/dime.conf" \
        alice@alice.test bob@bob.test "$MAILDIR" "$N" "$BLOCK_S" "$1" >"$T/mail-$1.txt" 2>&1
}
# the DX connections from the attack's addresses (127.0.1.x, 127.0.2.x) bob still holds
held() {
    ss -Htn state established state close-wait "src 127.0.0.3:$DXP" |
        grep -cE ' 127\.0\.[12]\.[0-9]+:[0-9]+ *$'
}
sent=0 minconns=999999 mailfail=0
: >"$T/attack-all.txt"
rssb=$(kb "$BPID" VmRSS)
echo 5 >"/proc/$BPID/clear_refs" # VmHWM from the first block on
for r in $(seq "$ROUNDS"); do
    mail_block "base$r" || { mailfail=1; echo "# base$r: $(tail -1 "$T/mail-base$r.txt")"; }
    ATTACK_SLOW=$SLOW ATTACK_SGNT_RATE=240 python3 "$LOADP" attack 127.0.0.3 "$DXP" \
        alice.test bob.test $((BLOCK_S + 60)) >"$T/attack$r.txt" 2>&1 &
    ATTACK_PID=$!
    for _ in $(seq 100); do grep -q 'attack started' "$T/attack$r.txt" && break; sleep 0.1; done
    # the slow clients connect within a second or two: the block starts once most are in
    conns=0
    for _ in $(seq 50); do
        c=$(held)
        [ "$c" -gt "$conns" ] && conns=$c
        [ "$c" -ge $((SLOW * 9 / 10)) ] && break
        sleep 0.2
    done
    [ "$conns" -lt "$minconns" ] && minconns=$conns
    mail_block "attack$r" || { mailfail=1; echo "# attack$r: $(tail -1 "$T/mail-attack$r.txt")"; }
    echo "# round $r: $(grep -c '^latency' "$T/mail-base$r.txt") messages without the attack," \
        "$(grep -c '^latency' "$T/mail-attack$r.txt") with it ($conns attack connections held at its start, $(held) at its end)"
    kill -TERM "$ATTACK_PID"
    wait "$ATTACK_PID"
    ATTACK_PID=
    tail -1 "$T/attack$r.txt" >>"$T/attack-all.txt"
    # bob has closed every attack connection before the next block without it
    for _ in $(seq 100); do [ "$(held)" = 0 ] && break; sleep 0.1; done
done
hwm=$(kb "$BPID" VmHWM)
for tag in base attack; do
    sent=$((sent + $(cat "$T/mail-$tag"[0-9]*.txt | sed -n 's/^sent=//p' | awk '{ s += $1 } END { print s + 0 }')))
done
# median, p90 and max of a kind of block, all rounds together
stats() {
    cat "$T/mail-$1"[0-9]*.txt | awk '$1 == "latency" { print $4 }' | sort -n |
        awk '{ v[NR] = $1 } END { if (NR) printf "%d %.4f %.4f %.4f", NR, v[int((NR + 1) / 2)], v[int(NR * 0.9) ? int(NR * 0.9) : 1], v[NR]; else print "0 0 0 0" }'
}
read -r bn bmed bp90 bmax <<<"$(stats base)"
read -r an amed ap90 amax <<<"$(stats attack)"
[ "$mailfail" = 0 ] && [ "$bn" -ge 10 ] && [ "$an" -ge 10 ] &&
    ok "$ROUNDS rounds of ${BLOCK_S} s blocks: $bn messages without the attack and $an with it, each delivered" ||
    notok "$ROUNDS rounds: every message delivered, at least 10 of each kind ($bn without, $an with the attack)"
echo "# latency without the attack (submission to bob's mailbox): median $bmed s, p90 $bp90 s, max $bmax s"
echo "# latency under attack: median $amed s, p90 $ap90 s, max $amax s"
[ "$minconns" -ge $((SLOW * 9 / 10)) ] &&
    ok "the attack held at least $minconns connections to bob's DX port in every round (>= $((SLOW * 9 / 10)))" ||
    notok "the attack held $minconns connections to bob's DX port (>= $((SLOW * 9 / 10)))"
# the counters of every round summed
summary=$(tr ' ' '\n' <"$T/attack-all.txt" | awk -F= 'NF == 2 { s[$1] += $2 } END { for (k in s) printf "%s=%d ", k, s[k] }')
echo "# attack, all rounds: $summary"
ratio=$(awk -v a="$amed" -v b="$bmed" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }')
awk -v r="$ratio" -v f="$FACTOR" 'BEGIN { exit !(r != "inf" && r <= f) }' &&
    ok "median latency under attack / without: $ratio (allowed <= $FACTOR)" ||
    notok "median latency under attack / without: $ratio (allowed <= $FACTOR)"
good=0
[ -n "$hwm" ] && [ "$hwm" -le $((RSS_MB * 1024)) ] && good=1
rss_check $good "bob's peak RSS over all blocks $(mib "${hwm:-0}") MiB, from $(mib "$rssb") MiB (bound $RSS_MB MiB)"

# ---- nothing lost, nothing twice ----
for _ in $(seq 100); do
    [ -z "$("$RLC" -c "$T/alice/dime.conf" queue list 2>/dev/null)" ] &&
        [ -z "$("$RLC" -c "$T/bob/dime.conf" queue list 2>/dev/null)" ] && break
    sleep 0.1
done
sleep 1 # a duplicate would come now
got=$(($(mails) - before_mail))
# distinct bodies (what follows the header Postfix and the injection added)
distinct=$(python3 - "$MAILDIR" <<'PY'
import hashlib, os, sys
seen = set()
for sub in ("new", "cur"):
    d = os.path.join(sys.argv[1], sub)
    for name in os.listdir(d) if os.path.isdir(d) else []:
        body = open(os.path.join(d, name), "rb").read().replace(b"\r", b"").split(b"\n\n", 1)
        seen.add(hashlib.sha256(body[-1]).digest())
print(len(seen))
PY
)
[ "$got" = "$sent" ] && [ "$distinct" = $((sent + 1)) ] &&
    ok "every normal message is in bob's mailbox exactly once ($got, $distinct distinct with the large one)" ||
    notok "every normal message is in bob's mailbox exactly once ($got of $sent, $distinct distinct)"
[ -z "$("$RLC" -c "$T/alice/dime.conf" queue list 2>/dev/null)" ] &&
    [ -z "$("$RLC" -c "$T/bob/dime.conf" queue list 2>/dev/null)" ] &&
    ok "both relay queues are empty" || notok "both relay queues are empty"

# ---- what the attack got, and the limits in bob's log ----
val() { echo "$summary" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
[ "$(val slow_conn)" -ge $((SLOW * ROUNDS)) ] 2>/dev/null &&
    [ "$(val slow_data_354)" -ge $((SLOW / 2 * ROUNDS)) ] 2>/dev/null &&
    ok "slow clients: $(val slow_conn) connections, $(val slow_data_354) inside a 30 MB message (spooled: 64 KiB each)" ||
    notok "slow clients: $((SLOW * ROUNDS)) connected, $((SLOW / 2 * ROUNDS)) inside a message ($summary)"
[ "$(val oversize_size_552)" -ge 1 ] 2>/dev/null && [ "$(val oversize_data_552)" -ge 1 ] 2>/dev/null &&
    [ -z "$(echo "$summary" | tr ' ' '\n' | grep -E '^oversize_(size|data)_[0-9]+=' | grep -v '_552=')" ] &&
    ok "oversize: SIZE= $(val oversize_size_552) x 552, header $(val oversize_data_552) x 552, no other reply" ||
    notok "oversize: 552 for each ($summary)"
[ "$(val sgnt_431)" -ge 1 ] 2>/dev/null &&
    ok "SGNT flood: $(val sgnt_250) answered, $(val sgnt_431) refused with 431 (signet-rate)" ||
    notok "SGNT flood: some refused with 431 ($summary)"
for l in 'ip=127\.0\.2\.1[0-3] limit=signet-rate$' 'ip=127\.0\.2\.20 data refused code=552 ' \
    'ip=127\.0\.1\.[0-9]* closed=idle$' 'ip=127\.0\.1\.[0-9]* spool size=30000000$'; do
    grep -qE "conn=[0-9]* $l" "$BOBLOG" && ok "bob's log: $l ($(grep -cE "conn=[0-9]* $l" "$BOBLOG") times)" ||
        notok "bob's log: $l"
done
echo "# SGNT from alice's relay (normal mail) in bob's log: $(grep -c 'ip=127.0.0.2 cmd=SGNT' "$BOBLOG"), refused: $(grep -c 'ip=127.0.0.2 limit=' "$BOBLOG")"
kill -0 "$BPID" 2>/dev/null && ok "bob's relay is still running" || notok "bob's relay is still running"
echo "# duration $(($(date +%s) - T0)) s"
echo "1..$n"
[ "$failed" = 0 ]
