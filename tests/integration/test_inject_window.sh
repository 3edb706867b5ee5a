#!/usr/bin/env bash
# The injection window (rl_inject.h, "The window"; RELIABILITY.md), made to happen on purpose,
# with the real daemons and no hook in them. TAP output.
# One message goes from alice@alice.test to bob@bob.test. While bob's relay holds it, bob's
# Postfix is stopped and bob's keyvault paused (SIGSTOP), then Postfix started again: relay B
# injects, dime-milter B reaches its end of message and waits for the keyvault (it decrypts
# there). Bob's cleanup processes are then paused too, the keyvault let go: the milter
# finishes, records the injection (with the first attempt's queue id) and answers, but
# cleanup cannot commit: its queue file stays in incoming/ without the owner-execute bit.
# Every process of bob's Postfix is then SIGKILLed (a crash: relay B reads no reply after its
# final dot; relay B is paused meanwhile, see 4. below) and Postfix started again. Relay B
# injects again with the same generation; the milter finds the first attempt uncommitted,
# withdraws its file and lets the repeat through.
# Checks: the window was really reached (recorded, file without the bit), the repeat came with
# the same generation, bob has the message exactly once and converted back (dime=pass), the
# uncommitted file (decrypted text) is gone, the milter logged the first queue id, and both
# relay queues and bob's Postfix queue are empty. Before this fix the milter discarded the
# repeat and the message was lost (test_chaos.sh saw it in 4 of 6 runs).
# Then the other side, with a second message: bob's smtpd paused instead of cleanup, so
# Postfix commits and delivers but relay B reads no 250; Postfix crashes and stays down until
# relay B's repeat met a refused connection. Relay B must keep the generation (a refused
# connection says nothing of the earlier attempt) and the milter discard its repeat (the
# first attempt's file is no longer in incoming/): one copy. Before, relay B took a new
# generation after the refusal and bob got the message twice.
#
# usage: test_inject_window.sh KEYVAULTD DIMECTL RELAYD RELAYCTL MILTER
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KVD=$(abs "$1")
CTL=$(abs "$2")
RLD=$(abs "$3")
RLC=$(abs "$4")
MILTER=$(abs "$5")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"
T_START=$(date +%s)

for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf sqlite3; do
    command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ "$(id -u)" = 0 ] || skip_all "needs root (private Postfix instances)"

source "$HERE/lib/postfix.sh"
source "$HERE/lib/dime_env.sh"
source "$HERE/lib/e2e.sh" # e2e_queues_empty, e2e_die
unset -f env_user_hook # bob@bob.test is enough
STOPPED=()
cleanup() {
    local p
    for p in "${STOPPED[@]}"; do kill -CONT "$p" 2>/dev/null; done
    env_cleanup
}
trap cleanup EXIT
ENV_MILTER=$MILTER
ENV_PF_USERS=([alice]=alice [bob]=bob)
env_init "$KVD" "$CTL" "$RLD" || e2e_die "setup failed"
PFB=$T/pf-bob
MID=$(env_dir bob milter)
KVSOCK=$(env_dir bob kv)/kv.sock
MARK=$RANDOM$RANDOM
# up to S seconds (tenths) for a command to succeed
wait_for() {
    local s=$1 i
    shift
    for ((i = 0; i < s * 10; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}
ndeferred() { grep -c 'status=deferred' "$T/bob-relayd.log"; }
deferred_since() { [ "$(ndeferred)" -gt "$N0" ]; }
bob_down() { [ -z "$(pf_pids_of "$PFB")" ]; }
bob_queue_empty() { [ "$(pf_queue_count "$PFB")" = 0 ]; }
# connections waiting for the paused keyvault to accept them (the socket's name carries a
# suffix: the keyvault binds it under a temporary name first); one more than when it was
# paused: the milter at its end of message (the relay has its message already)
kv_backlog() { ss -Hxl | awk -v p="$KVSOCK" 'index($5, p) == 1 { print $3 }'; }
kv_waiting() { [ "$(kv_backlog)" -gt "$KV_BASE" ] 2>/dev/null; }
recorded_qid() { sqlite3 "$MID/milter-injections.db" "SELECT qid FROM injected WHERE qid<>''" 2>/dev/null; }
recorded() { [ -n "$(recorded_qid)" ]; }
pf_procs() { local p; for p in $(pf_pids_of "$PFB"); do echo "$p $(cat /proc/"$p"/comm 2>/dev/null)"; done; }
# pause (SIGSTOP) every process of bob's Postfix named $1
pause_bob() {
    local p
    p=$(pf_procs | awk -v n="$1" '$2 == n { print $1 }')
    [ -n "$p" ] || e2e_die "no $1 process in bob's Postfix"
    # shellcheck disable=SC2086
    kill -STOP $p
    STOPPED+=($p)
}
# a new message (subject marker $MARK) from alice, held by relay B while bob's Postfix is
# down, then injected with keyvault B paused: returns with dime-milter B at its end of message
to_the_milters_eom() {
    pf_stop "$PFB"
    N0=$(ndeferred)
    python3 "$HERE/chaos_submit.py" "${ADDR[alice]}" "${SUB_PORT[alice]}" alice@alice.test \
        bob@bob.test 1 1 "$MARK" 60 0 "$T/submit.out" 2>"$T/submit.err" ||
        e2e_die "submission to alice failed: $(head -3 "$T/submit.err")"
    wait_for 30 deferred_since || e2e_die "relay B never tried to inject"
    kill -STOP "${KV_PID[bob]}" && STOPPED+=("${KV_PID[bob]}")
    KV_BASE=$(kv_backlog)
    pf_start "$PFB" || e2e_die "postfix start"
    wait_for 30 kv_waiting || e2e_die "the milter never reached the keyvault"
}
# every process of bob's Postfix SIGKILLed (a paused one too)
crash_bob() {
    # shellcheck disable=SC2046
    kill -KILL "${PF_MASTER_PID[$PFB]}" $(pf_pids_of "$PFB") 2>/dev/null
    wait_for 10 bob_down || e2e_die "bob's Postfix did not die"
    rm -f "$PFB/queue/pid/master.pid"
    PF_MASTER_PID[$PFB]=
}

# 1.-2. the message waits in relay B, then reaches the milter, which waits for the keyvault
to_the_milters_eom
# 3. cleanup paused, then the milter let go: it records and answers, cleanup cannot commit
pause_bob cleanup
kill -CONT "${KV_PID[bob]}"
wait_for 15 recorded || e2e_die "the milter recorded no injection"
Q1=$(recorded_qid)
mode=$(stat -c %a "$PFB/queue/incoming/${Q1:-none}" 2>/dev/null)
[ -n "$mode" ] && [ $((8#$mode & 8#100)) = 0 ] &&
    ok "the window reached: injection recorded with queue id $Q1, its file in incoming/ uncommitted (mode $mode)" ||
    notok "the window reached: injection recorded with queue id $Q1, its file in incoming/ uncommitted (mode ${mode:-none})"
# 4. a crash of bob's Postfix in the window: every process SIGKILLed (a stopped one too).
# Relay B is paused meanwhile: a connection refused while Postfix is down is a definite
# failure, after which it would take a new generation; paused, it reads the lost connection
# only once Postfix is back, and its next attempt is the repeat (same generation).
kill -STOP "${RL_PID[bob]}" && STOPPED+=("${RL_PID[bob]}")
crash_bob
pf_start "$PFB" || e2e_die "postfix start after the crash"
kill -CONT "${RL_PID[bob]}"
STOPPED=()
# 5. the repeat
pf_wait_mail "$PFB" bob 1 60
wait_for 30 e2e_queues_empty
wait_for 30 bob_queue_empty
g=$(grep -o 'gen=[0-9]* status=repeat' "$T/bob-relayd.log" | tail -1 | cut -d' ' -f1)
[ -n "$g" ] && grep -q "inject id=.* $g status=injected" "$T/bob-relayd.log" &&
    ok "relay B injected again with the same generation (the outcome unknown)" ||
    notok "relay B injected again with the same generation (the outcome unknown)"
grep -q "inbound injection=.* action=continue .* first-queue-id=$Q1\$" "$T/bob-milter.log" &&
    ok "the milter let the repeat through, naming the first attempt's queue id" ||
    notok "the milter let the repeat through, naming the first attempt's queue id"
got=$(pf_mail_files "$PFB" bob | xargs -r grep -l "^Subject: chaos S$MARK-1\$" | wc -l)
[ "$got" = 1 ] && ok "bob has the message exactly once" || notok "bob has the message exactly once ($got)"
pass=$(pf_mail_files "$PFB" bob | xargs -r grep -l '^Authentication-Results: mx.bob.test; dime=pass' | wc -l)
[ "$pass" = 1 ] && ok "converted back (dime=pass)" || notok "converted back (dime=pass): $pass"
left=$(find "$PFB/queue" -type f -path '*/incoming/*' | xargs -r grep -alE "S$MARK|B$MARK")
[ ! -e "$PFB/queue/incoming/$Q1" ] && [ -z "$left" ] &&
    ok "the uncommitted file (decrypted text) is gone from bob's queue" ||
    notok "the uncommitted file (decrypted text) is gone from bob's queue: ${left:-$Q1}"
e2e_queues_empty && [ "$(pf_queue_count "$PFB")" = 0 ] && ok "relay queues and bob's Postfix queue empty" ||
    notok "relay queues and bob's Postfix queue empty"

# ---- the other side: committed, the reply lost, Postfix down when the repeat comes ----
# bob's smtpd is paused instead of cleanup: the milter answers, cleanup commits, Postfix
# delivers, and relay B reads no 250. Postfix then crashes and stays down until relay B's
# repeat found the connection refused; the attempt after that must still be the repeat (same
# generation), which the milter discards: one copy, not two.
MARK=$RANDOM$RANDOM
to_the_milters_eom
pause_bob smtpd
kill -CONT "${KV_PID[bob]}"
mail2() { pf_mail_files "$PFB" bob | xargs -r grep -l "^Subject: chaos S$MARK-1\$" | wc -l; }
delivered2() { [ "$(mail2)" -ge 1 ]; }
wait_for 30 delivered2 || e2e_die "the committed first attempt was not delivered"
# relay B's lines from the crash on: the lost reply, the repeat, its refused connection
L0=$(wc -l <"$T/bob-relayd.log")
crash_bob
STOPPED=()
refused_repeat() { tail -n +$((L0 + 1)) "$T/bob-relayd.log" | grep -A1 'status=repeat' | grep -q 'Connection refused'; }
wait_for 30 refused_repeat || e2e_die "relay B's repeat never met a refused connection"
g2=$(tail -n +$((L0 + 1)) "$T/bob-relayd.log" | grep -o 'gen=[0-9]* status=repeat' | tail -1 | cut -d' ' -f1)
pf_start "$PFB" || e2e_die "postfix start after the second crash"
wait_for 30 e2e_queues_empty
wait_for 30 bob_queue_empty
grep -q "inject id=.* $g2 status=injected" "$T/bob-relayd.log" &&
    ok "after a refused connection relay B still sent the repeat ($g2)" ||
    notok "after a refused connection relay B still sent the repeat ($g2): $(grep 'status=injected' "$T/bob-relayd.log" | tail -1)"
grep -q "inbound injection=.* action=discard reason=\"repeated injection\" first-queue-id=[^ ]* first-attempt=\"not in incoming\"" "$T/bob-milter.log" &&
    ok "the milter discarded the repeat of the committed attempt" ||
    notok "the milter discarded the repeat of the committed attempt"
[ "$(mail2)" = 1 ] && ok "bob has the second message exactly once" ||
    notok "bob has the second message exactly once ($(mail2))"
echo "# duration: $(($(date +%s) - T_START)) s"
echo "1..$n"
[ "$failed" -eq 0 ]
