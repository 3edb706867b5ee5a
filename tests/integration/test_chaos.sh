#!/usr/bin/env bash
# Chaos test of the whole gateway (issue 16), TAP output. CHAOS_MESSAGES (default 500 times
# DIME_TEST_SCALE)
# messages go from alice@alice.test to bob@bob.test (Trustful) the way a user's mail goes: over
# SMTP into alice's Postfix (the submission listener), through dime-milter A (D/MIME, signed
# through keyvault A, one submission to relay A), relay A to relay B over DMTP, injected into
# bob's Postfix, converted back by dime-milter B, delivered to bob's Maildir. CHAOS_CLIENTS
# (default 4) clients send them (chaos_submit.py), each pausing CHAOS_PACE_MS (default 400)
# between its messages, and send a message again after a 4xx or a lost connection, as real
# clients do. Meanwhile a loop SIGKILLs, one at a time in random
# order, alice's and bob's relay, keyvault, milter and Postfix master (by PID) and restarts the
# daemon at once; bounded by CHAOS_ROUNDS kills (default 80 times DIME_TEST_SCALE) and
# CHAOS_KILL_SECONDS (default
# 150) of killing, and it stops when every client is done. A Postfix master is restarted with
# `postfix start` once the children it leaves behind are gone (they exit when they notice
# their master died; those still there after 2 s are killed by PID: they hold its listening
# sockets).
# At the end:
#   - every message acknowledged with 250 is in bob's Maildir exactly once, or was bounced to
#     alice with a delivery status notification (counted); a message never acknowledged (a
#     client gave up, or a 5xx) is there at most once;
#   - no message is in bob's Maildir twice, whatever the number of attempts its client made;
#   - nothing in clear: the subjects and bodies appear in no file of alice's Postfix (queue,
#     log), of the relays (queue database, WAL, injection journal, log), of the keyvaults, of
#     the milters (injection record, logs), of bob's Postfix queue or log; bob's address in no
#     relay queue or journal, injection record or daemon log;
#   - the relays' queues and both Postfix queues are empty.
# Figures (TAP comments): rounds, kills per daemon, messages, acknowledged, delivered,
# bounced, attempts, duration.
# What a SIGKILL cannot show: a power cut. Killing a process loses only what it had not yet
# handed to the kernel; the page cache survives, so an fsync skipped or lost is invisible here
# (RELIABILITY.md says which commits skip it and what a power cut there costs).
#
# usage: test_chaos.sh KEYVAULTD DIMECTL RELAYD RELAYCTL MILTER DIME-SIGNET
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KVD=$(abs "$1")
CTL=$(abs "$2")
RLD=$(abs "$3")
RLC=$(abs "$4")
MILTER=$(abs "$5")
DS=$(abs "$6")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"
# DIME_TEST_SCALE (lib/tap.sh `scaled`; lower under the sanitizers) scales the default
# message and round counts
N=${CHAOS_MESSAGES:-$(scaled 500)}
CLIENTS=${CHAOS_CLIENTS:-4}
ROUNDS=${CHAOS_ROUNDS:-$(scaled 80)}
MIN_ROUNDS=$(scaled 8)
KILL_S=${CHAOS_KILL_SECONDS:-150}
# Unpaced, 4 clients put 500 messages through in about 10 s on a quiet machine; paced, the
# flow lasts about a minute plus what the kills cost, for some 50 kill rounds.
PACE_MS=${CHAOS_PACE_MS:-400}
T_START=$(date +%s)

for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf script; do
    command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ "$(id -u)" = 0 ] || skip_all "needs root (private Postfix instances)"

source "$HERE/lib/postfix.sh"
source "$HERE/lib/dime_env.sh"
source "$HERE/lib/e2e.sh"
SUBPID=
cleanup() {
    [ -n "$SUBPID" ] && kill "$SUBPID" 2>/dev/null && wait "$SUBPID" 2>/dev/null
    env_cleanup
}
trap cleanup EXIT
die() {
    echo "Bail out! $*"
    for f in "$T"/*.log "$T"/pf-*/maillog; do [ -s "$f" ] && tail -5 "$f" | sed "s|^|# $(basename "$f"): |"; done
    exit 1
}
ENV_MILTER=$MILTER
ENV_PF_USERS=([alice]=alice [bob]=bob)
env_init "$KVD" "$CTL" "$RLD" || die "setup failed"
PFA=$T/pf-alice
PFB=$T/pf-bob
MARK=$RANDOM$RANDOM$RANDOM

# ---- the kills, each followed by a restart ----
declare -A KILLS=()
PF_LEFT=0
reap() { kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
kill_kv() {
    reap "${KV_PID[$1]}"
    KV_PID[$1]=
    kv_start "$1"
}
kill_milter() {
    reap "${MI_PID[$1]}"
    MI_PID[$1]=
    milter_start "$1"
}
kill_relay() {
    relay_kill "$1"
    relay_start "$1"
}
# The master daemonizes: it is not our child, so it is not reaped; its children (smtpd,
# cleanup, qmgr...) exit by themselves once they see it gone, and must, before a new master
# can bind the same listeners.
kill_postfix() {
    pf_kill "$T/pf-$1"
    PF_LEFT=$((PF_LEFT + PF_KILLED))
    pf_start "$T/pf-$1" 2>>"$T/pf-restart.log"
}
TARGETS=(alice:relay bob:relay alice:kv bob:kv alice:milter bob:milter alice:postfix bob:postfix)

t0=$(date +%s%N)
python3 "$HERE/chaos_submit.py" "${ADDR[alice]}" "${SUB_PORT[alice]}" alice@alice.test \
    bob@bob.test "$N" "$CLIENTS" "$MARK" 200 "$PACE_MS" "$T/submit.out" 2>"$T/submit.err" &
SUBPID=$!
r=0
kill_until=$(($(date +%s) + KILL_S))
while [ $r -lt "$ROUNDS" ] && [ "$(date +%s)" -lt $kill_until ] && kill -0 "$SUBPID" 2>/dev/null; do
    sleep "$(awk -v s=$RANDOM 'BEGIN { srand(s); printf "%.2f", 0.3 + rand() * 0.9 }')"
    kill -0 "$SUBPID" 2>/dev/null || break
    r=$((r + 1))
    tg=${TARGETS[RANDOM % ${#TARGETS[@]}]}
    d=${tg%%:*} what=${tg#*:}
    KILLS[$what]=$((${KILLS[$what]:-0} + 1))
    ms=$((($(date +%s%N) - t0) / 1000000))
    done_n=$(wc -l <"$T/submit.out")
    got=$(pf_mail_count "$PFB" bob)
    k0=$(date +%s%N)
    "kill_$what" "$d" || die "restart of $d $what after round $r"
    echo "# round $r at ${ms} ms: SIGKILL $d $what, back in $((($(date +%s%N) - k0) / 1000000)) ms" \
        "($done_n of $N clients done, $got delivered)"
done
wait "$SUBPID"
src=$?
SUBPID=
kill_ms=$((($(date +%s%N) - t0) / 1000000))
[ $src = 0 ] && [ "$(wc -l <"$T/submit.out")" = "$N" ] && ok "every client finished ($N messages)" ||
    { head -5 "$T/submit.err" >err.txt; notok "every client finished ($N messages)"; }

acked=$(awk '$2 == 250' "$T/submit.out" | wc -l)
refused=$(awk '$2 >= 500' "$T/submit.out" | wc -l)
gaveup=$(awk '$2 == 0' "$T/submit.out" | wc -l)
attempts=$(awk '{ s += $3 } END { print s + 0 }' "$T/submit.out")
# every message settles: delivered to bob or bounced to alice, and no queue holds anything
dsns() { pf_mail_files "$PFA" alice | xargs -r grep -l '^Content-Type: multipart/report' | wc -l; }
for _ in $(seq 240); do
    [ $(($(pf_mail_count "$PFB" bob) + $(dsns))) -ge "$acked" ] && e2e_queues_empty &&
        [ "$(pf_queue_count "$PFA")" = 0 ] && [ "$(pf_queue_count "$PFB")" = 0 ] && break
    sleep 0.5
done
sleep 3 # anything still on its way would show up as a surplus
settle_ms=$((($(date +%s%N) - t0) / 1000000))

# message index of each file in bob's Maildir, from its subject
# (comm needs its inputs in the collating order of sort without -n: the .idx files are sorted
# as text, not as numbers, or comm pairs the wrong lines and says so on stderr)
pf_mail_files "$PFB" bob | xargs -r grep -ho "^Subject: chaos S$MARK-[0-9]*" | sed 's/.*-//' |
    sort >"$T/delivered.idx"
files=$(pf_mail_count "$PFB" bob)
distinct=$(sort -u "$T/delivered.idx" | wc -l)
twice=$(uniq -d "$T/delivered.idx" | wc -l)
# a DSN names the Postfix queue id of the message (rl_inject.c); the clients noted each one
: >"$T/bounced.idx"
for f in $(pf_mail_files "$PFA" alice | xargs -r grep -l '^Content-Type: multipart/report'); do
    awk '$2 == 250 && $4 != "-" { print $1, $4 }' "$T/submit.out" | while read -r i q; do
        grep -q "$q" "$f" && echo "$i"
    done
done | sort -u >"$T/bounced.idx"
bounced=$(wc -l <"$T/bounced.idx")
dsn_files=$(dsns)
awk '$2 == 250 { print $1 }' "$T/submit.out" | sort >"$T/acked.idx"
missing=$(comm -23 "$T/acked.idx" <(sort -u "$T/delivered.idx" "$T/bounced.idx") | wc -l)
both=$(comm -12 <(sort -u "$T/delivered.idx") "$T/bounced.idx" | wc -l)
unacked_delivered=$(comm -13 "$T/acked.idx" <(sort -u "$T/delivered.idx") | wc -l)

echo "# rounds: $r SIGKILLs in $kill_ms ms (relay ${KILLS[relay]:-0}, keyvault ${KILLS[kv]:-0}," \
    "milter ${KILLS[milter]:-0}, Postfix master ${KILLS[postfix]:-0}; $PF_LEFT Postfix" \
    "children left by a killed master killed too)"
echo "# messages $N, acknowledged $acked, refused (5xx) $refused, given up $gaveup," \
    "attempts $attempts ($CLIENTS clients)"
echo "# delivered $files files, $distinct distinct messages, $twice twice;" \
    "bounced $bounced ($dsn_files DSNs); unacknowledged but delivered $unacked_delivered"
echo "# duration: $((settle_ms / 1000)) s from the first submission to the last delivery" \
    "(+3 s of watch), $(($(date +%s) - T_START)) s in all"
echo "# logs: alice's milter sent $(grep -c 'more time.* after no reply from the relay' "$T"/alice-milter.log)" \
    "requests again after no reply and $(grep -c 'a new attempt of the message first seen as' "$T"/alice-milter.log)" \
    "new attempts under their first queue id; alice's relay answered" \
    "$(grep -c 'messages=[0-9]* duplicate' "$T"/alice-relayd.log) duplicate submissions;" \
    "bob's relay repeated $(grep -c 'status=repeat' "$T"/bob-relayd.log) injections, bob's milter" \
    "discarded $(grep -c 'action=discard reason="repeated injection"' "$T"/bob-milter.log)"

[ "$r" -ge "$MIN_ROUNDS" ] && ok "$r SIGKILL rounds while the messages flowed" ||
    notok "$r SIGKILL rounds while the messages flowed (fewer than $MIN_ROUNDS)"
# The injection window (rl_inject.h): Postfix's master killed with its cleanup after
# dime-milter recorded an injection and before cleanup committed the queue file, while bob's
# relay read no reply. dime-milter now withdraws that uncommitted file and lets the relay's
# repeat through (test_inject_window.sh makes it happen on purpose), so such a message is no
# longer missing; should one be, it is named below (its text still in an uncommitted file of
# bob's incoming/ queue) and the test fails, as for any other loss.
comm -23 "$T/acked.idx" <(sort -u "$T/delivered.idx" "$T/bounced.idx") >"$T/missing.idx"
window=0
while read -r i; do
    grep -rqaE "chaos S$MARK-$i([^0-9]|\$)" "$PFB/queue/incoming" 2>/dev/null && window=$((window + 1))
done <"$T/missing.idx"
echo "# withdrawn: bob's milter let $(grep -c 'action=continue reason="repeated injection' "$T"/bob-milter.log)" \
    "repeats through whose first attempt Postfix never committed"
[ "$missing" = 0 ] &&
    ok "every acknowledged message delivered or bounced ($acked: $distinct delivered, $bounced bounced)" ||
    notok "every acknowledged message delivered or bounced ($missing of $acked neither, $window of them in an uncommitted incoming/ file of bob's Postfix)"
[ "$twice" = 0 ] && [ "$files" = "$distinct" ] && [ "$both" = 0 ] &&
    ok "no message delivered twice ($files files for $distinct messages, $both both delivered and bounced)" ||
    notok "no message delivered twice ($files files for $distinct messages, $twice twice, $both both delivered and bounced)"
[ "$((acked + gaveup + refused))" = "$N" ] && [ "$acked" -ge $((N * 9 / 10)) ] &&
    ok "at least 90% acknowledged within the clients' deadline ($acked of $N)" ||
    notok "at least 90% acknowledged within the clients' deadline ($acked of $N)"
pass=$(pf_mail_files "$PFB" bob | xargs -r grep -l '^Authentication-Results: mx.bob.test; dime=pass' | wc -l)
[ "$pass" = "$files" ] && ok "every delivered message converted back with dime=pass" ||
    notok "every delivered message converted back with dime=pass ($pass of $files)"

# ---- nothing in clear ----
clear_files() { # every file of the gateway outside bob's Maildir that could hold a message
    find "$PFA/queue" "$PFB/queue" -type f 2>/dev/null
    ls "$PFA/maillog" "$PFB/maillog" "$T"/*-relayd.log "$T"/*-kv.log "$T"/*-milter.log 2>/dev/null
    for d in alice bob; do
        find "$(env_dir "$d" relay)" "$(env_dir "$d" kv)" "$(env_dir "$d" milter)" -maxdepth 1 \
            -type f \( -name '*.db*' -o -name '*.injected' \) 2>/dev/null
    done
}
clear_files | sort -u >"$T/clear.list"
nfiles=$(wc -l <"$T/clear.list")
leaks=$(xargs -r -d '\n' grep -alE "S$MARK|B$MARK" <"$T/clear.list")
if [ -z "$leaks" ]; then
    ok "no subject or body in clear in $nfiles files outside bob's Maildir"
else
    echo "$leaks" >out.txt
    notok "no subject or body in clear outside bob's Maildir"
fi
# (bob's keyvault serves bob's account: its store and its log name it, as bob's Postfix log
# does; the relays' signet caches hold signets, which name their owner: none is about a message)
leaks=$(grep -vE '/pf-(alice|bob)/|/kv\.db|/bob-kv\.log|/cache\.db' "$T/clear.list" |
    xargs -r -d '\n' grep -alF 'bob@bob.test')
[ -z "$leaks" ] && ok "bob's address in clear in no queue, journal, injection record or log of the daemons" ||
    { echo "$leaks" >out.txt; notok "bob's address in clear in no queue, journal, injection record or log of the daemons"; }
e2e_queues_empty && [ "$(pf_queue_count "$PFA")" = 0 ] && [ "$(pf_queue_count "$PFB")" = 0 ] &&
    ok "both relay queues and both Postfix queues empty" ||
    notok "both relay queues and both Postfix queues empty"
echo "1..$n"
[ "$failed" -eq 0 ]
