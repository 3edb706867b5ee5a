#!/usr/bin/env bash
# Crash safety of the mail transfer (issue 6), TAP output: while CRASH_MESSAGES (default 500)
# messages flow from alice.test to bob.test (submitted by 2 clients that resubmit until they
# get a 250, as the milter's tempfail + Postfix retry would), dime-relayd is killed with
# SIGKILL again and again until every message arrived (at least CRASH_ROUNDS times, default
# 12, at most 40; alternately the sending and the receiving relay, at random moments
# 0.1-0.35 s apart) and restarted at once. Then every message must reach
# bob's Maildir: none lost, none twice over the submission and DMTP hops (a message repeated
# over DMTP after a lost reply keeps its transaction id, so distinct ids count messages), and
# both queues empty. The Postfix injection hop is at-least-once (rl_inject.h): repeated
# injections are reported as a TAP TODO. The kill points are printed as comments.
#
# usage: test_crash.sh KEYVAULTD DIMECTL RELAYD RELAYCTL XFER_SUBMIT
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KVD=$(abs "$1")
CTL=$(abs "$2")
RLD=$(abs "$3")
RLC=$(abs "$4")
SUB=$(abs "$5")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${CRASH_MESSAGES:-500}
ROUNDS=${CRASH_ROUNDS:-12}

skip() {
    if [ -n "${DIME_TESTS_STRICT:-}" ]; then
        echo "Bail out! $1 (DIME_TESTS_STRICT is set)"
        exit 1
    fi
    echo "1..0 # SKIP $1"
    exit 0
}
for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf script; do
    command -v "$t" >/dev/null || skip "$t is not installed"
done
[ "$(id -u)" = 0 ] || skip "needs root (private Postfix instances)"

source "$HERE/lib/tap.sh"
source "$HERE/lib/postfix.sh"
source "$HERE/lib/dime_env.sh"
SUBPID=
cleanup() {
    [ -n "$SUBPID" ] && kill "$SUBPID" 2>/dev/null && wait "$SUBPID" 2>/dev/null
    env_cleanup
}
trap cleanup EXIT
die() {
    echo "Bail out! $*"
    for f in "$T"/*.log; do [ -s "$f" ] && tail -5 "$f" | sed "s|^|# $(basename "$f"): |"; done
    exit 1
}
env_init "$KVD" "$CTL" "$RLD" || die "setup failed"
PFB=$T/pf-bob

"$SUB" -c "$T/alice/dime.conf" -f alice@alice.test -t bob@bob.test -q CRASH -m crash -n "$N" \
    -j 2 -r >submit.out 2>submit.err &
SUBPID=$!
t0=$(date +%s%N)
r=0
while [ $r -lt 40 ] && [ "$(pf_mail_count "$PFB" bob)" -lt "$N" ]; do
    r=$((r + 1))
    sleep "$(awk -v s=$RANDOM 'BEGIN { srand(s); printf "%.2f", 0.1 + rand() * 0.25 }')"
    if ((r % 2)); then side=alice; else side=bob; fi
    ms=$((($(date +%s%N) - t0) / 1000000))
    sub=$(grep -c ' 250 ' submit.out)
    got=$(pf_mail_count "$PFB" bob)
    relay_kill "$side"
    echo "# round $r: SIGKILL $side relayd at ${ms} ms (submitted $sub/$N, delivered $got)"
    relay_start "$side" || die "restart $side after round $r"
done
[ $r -ge "$ROUNDS" ] && ok "$r SIGKILL rounds while the messages flowed (at least $ROUNDS)" ||
    notok "$r SIGKILL rounds while the messages flowed (at least $ROUNDS)"
wait "$SUBPID"
rc=$?
SUBPID=
[ $rc = 0 ] && [ "$(grep -c ' 250 ' submit.out)" = "$N" ] && ok "all $N submissions acknowledged" ||
    notok "all $N submissions acknowledged ($(grep -c ' 250 ' submit.out))"
queues_empty() {
    [ -z "$("$RLC" -c "$T/alice/dime.conf" queue list 2>/dev/null)" ] &&
        [ -z "$("$RLC" -c "$T/bob/dime.conf" queue list 2>/dev/null)" ]
}
for _ in $(seq 600); do
    [ "$(pf_mail_count "$PFB" bob)" -ge "$N" ] && queues_empty && break
    sleep 0.5
done
sleep 3 # anything still on its way would show up as a surplus
files=$(pf_mail_count "$PFB" bob)
tids=$(pf_mail_files "$PFB" bob | xargs grep -h '^X-DIME-Transaction:' | sort -u | wc -l)
echo "# delivered files $files, distinct transaction ids $tids, submissions $N"
[ "$files" -ge "$N" ] && [ "$tids" -ge "$N" ] && ok "none lost: $tids distinct messages delivered" ||
    notok "none lost: $tids distinct messages delivered"
[ "$tids" -le "$N" ] && ok "no message twice over the submission and DMTP hops ($tids ids)" ||
    notok "no message twice over the submission and DMTP hops ($tids ids)"
# The Postfix injection hop is at-least-once: a kill between Postfix's 250 and the relay's
# commit of "injected" repeats the injection (same transaction id). Known limitation, see
# rl_inject.h; reported, not hidden.
if [ "$files" = "$tids" ]; then
    ok "no message injected into Postfix twice"
else
    echo "not ok $((n + 1)) - no message injected into Postfix twice ($((files - tids)) repeated) # TODO injection is at-least-once (rl_inject.h)"
    n=$((n + 1))
fi
queues_empty && ok "both queues empty" || notok "both queues empty"
echo "1..$n"
[ "$failed" -eq 0 ]
