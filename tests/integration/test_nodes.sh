#!/usr/bin/env bash
# bob.test on two complete gateway nodes behind two dx= hosts, one PostgreSQL (issue 18), TAP.
#
# lib/nodes.sh on lib/dime_env.sh: alice.test one node as everywhere (keyvault, relay, milter,
# Postfix); bob.test node 1 (127.0.0.3, dx.bob.test) and node 2 (127.0.0.6, dx2.bob.test),
# each with its own relay, milter, keyvault and Postfix, both keyvaults on one PostgreSQL
# store and both relays on its shared state (lib/pg.sh: a private server on a Unix socket).
# bob.test's DNSSEC-signed record lists dx.bob.test first: alice's relay delivers to node 1
# and goes to node 2 only when node 1 does not answer (rl_resolve.c: an unreachable DX passes
# to the next, one that answers decides). Mail goes the way a user's does: SMTP into alice's
# submission listener (chaos_submit.py), milter A, relay A, DMTP to a bob node, its Postfix,
# its milter, bob's Maildir on that node.
#  - a pin learned on node 1 protects node 2: node 1 pins alice.test's POK with the first
#    message; an attacker then takes over alice.test's DNS with its own POK and DX
#    (env_impostor) and sends to node 2, which never saw alice.test: refused as a pin mismatch.
#  - a key rotation through node 1 (dimectl user rotate with node 1's configuration, on the
#    shared store) is what node 2 serves and opens: with node 1's relay stopped, alice's next
#    message goes to node 2, encrypted to bob's new signet, and is delivered.
#  - NODES_MESSAGES (default 500, times DIME_TEST_SCALE) messages while the node alice's
#    relay is talking to is SIGKILLed (all its processes, by PID) and started again, one node
#    down at a time, in a loop bounded by rounds and seconds (alice's relay keeps its session
#    with the node that answered, so the node it fails over to gets the next kill):
#    every message lands exactly once in the union of the two nodes' Maildirs. The union:
#    each node's Postfix delivers locally, as a provider's nodes each hand mail to the one
#    mail store; what must hold is once in the domain, whichever node took it. Any loss
#    (the injection window of RELIABILITY.md included: each node's milter has
#    postfix-queue-directory) or duplicate fails.
#  - PostgreSQL stopped: the node alice's relay talks to and (its relay stopped) the other one
#    answer alice's relay with a tempfail and a log line naming PostgreSQL, the mail stays in alice's relay queue; PostgreSQL
#    started again: everything delivered, once.
#
# usage: test_nodes.sh KEYVAULTD DIMECTL RELAYD RELAYCTL MILTER XFER_SUBMIT
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KVD=$(abs "$1")
CTL=$(abs "$2")
RLD=$(abs "$3")
RLC=$(abs "$4")
MILTER=$(abs "$5")
SUB=$(abs "$6")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"
source "$HERE/lib/pg.sh"
PEER="$HERE/dmtp_peer.py"
START=$(date +%s)
scaled() { awk -v n="$1" -v s="${DIME_TEST_SCALE:-1}" -v m="$2" \
    'BEGIN { v = int(n * s); if (v < m) v = m; print v }'; }
N=$(scaled "${NODES_MESSAGES:-500}" 20)
ROUNDS=$(scaled 40 3)
KILL_S=60

for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf script; do
    command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ "$(id -u)" = 0 ] || skip_all "needs root (private Postfix instances)"
pg_available || skip_all "PostgreSQL server programs (postgresql) or the postgres user missing"

source "$HERE/lib/postfix.sh"
source "$HERE/lib/dime_env.sh"
source "$HERE/lib/nodes.sh"
SUBPID=
MAL_PIDS=()
cleanup() {
    [ -n "$SUBPID" ] && kill "$SUBPID" 2>/dev/null && wait "$SUBPID" 2>/dev/null
    for p in "${MAL_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    env_cleanup
    pg_cleanup
}
trap cleanup EXIT
die() {
    echo "Bail out! $*"
    for f in "$T"/*.log "$T"/pf-*/maillog; do [ -s "$f" ] && tail -5 "$f" | sed "s|^|# $(basename "$f"): |"; done
    exit 1
}
t() { # t DESC CMD...: one test line from CMD's status
    local d=$1
    shift
    if "$@"; then ok "$d"; else notok "$d"; fi
}

pg_start || die "PostgreSQL did not start"
nodes_env "$PG_CONNINFO"
ENV_MILTER=$MILTER
ENV_PF_USERS=([alice]=alice [bob]=bob)
env_init "$KVD" "$CTL" "$RLD" || die "setup failed"
NODES_NO_RELAY=1 nodes_add || die "bob's node 2"
ok "PostgreSQL, alice.test, bob.test's two nodes started ($(($(date +%s) - START)) s)"
t "bob.test's signed record lists dx.bob.test, then dx2.bob.test" \
    grep -q 'dx=dx\.bob\.test dx=dx2\.bob\.test' <(sed 's/" "//g' "$T/bob.rec")

# submit TAG COUNT [CLIENTS PACE_MS]: COUNT messages alice -> bob over SMTP into alice's
# submission listener, in the background (SUBPID); subjects "chaos S<TAG>-<i>", outcomes in
# $T/TAG.out
submit() {
    python3 "$HERE/chaos_submit.py" "${ADDR[alice]}" "${SUB_PORT[alice]}" alice@alice.test \
        bob@bob.test "$2" "${3:-1}" "$1" 90 "${4:-0}" "$T/$1.out" 2>>"$T/submit.err" &
    SUBPID=$!
}
submit_wait() { wait "$SUBPID"; local rc=$?; SUBPID=; return $rc; }
# delivered TAG: bob's messages of TAG on both nodes, one message index a line, sorted
delivered() {
    nodes_mail_files | xargs -r grep -ho "^Subject: chaos S$1-[0-9]*" | sed 's/.*-//' | sort
}
# wait_delivered TAG COUNT SECONDS: until COUNT messages of TAG are in bob's Maildirs
wait_delivered() {
    local i
    for ((i = 0; i < $3 * 4; i++)); do
        [ "$(delivered "$1" | wc -l)" -ge "$2" ] && return 0
        sleep 0.25
    done
    return 1
}
# wait_log FILE TEXT SECONDS: until the fixed string is in FILE
wait_log() {
    local i
    for ((i = 0; i < $3 * 4; i++)); do grep -qF -- "$2" "$1" 2>/dev/null && return 0; sleep 0.25; done
    return 1
}
queued_out() { "$RLC" -c "$T/alice/dime.conf" queue list 2>/dev/null | awk '$2 == "out"' | wc -l; }
relay_queues_empty() {
    local d
    for d in alice bob bob2; do
        [ -z "$("$RLC" -c "$T/$d/dime.conf" queue list 2>/dev/null)" ] || return 1
    done
}
# serving: the bob node alice's relay holds a DMTP session with (bob or bob2); bob (node 1,
# the first dx=) when it holds none
serving() {
    if ss -Htn state established "dst ${ADDR[bob2]}:$DXP" | grep -q .; then echo bob2; else echo bob; fi
}
other() { if [ "$1" = bob ]; then echo bob2; else echo bob; fi; }
pok_of() { grep -o 'pok=[^ "]*' "$1" | head -1 | cut -d= -f2; }
pok_a=$(pok_of "$T/alice.rec")

# ---- a pin learned on node 1 protects node 2 ----
submit P1 1 && submit_wait
t "alice's first message to bob.test, node 2's relay not running, delivered by node 1" \
    wait_delivered P1 1 30
t "... node 1 pinned alice.test's POK in the shared store" \
    test "$(pg_sql dime "SELECT pok FROM relay_pins WHERE domain = 'alice.test'")" = "$pok_a"
relay_start bob2 || die "node 2's relay"
ENV_IMPOSTOR_OF=alice env_impostor || die "the attacker's alice.test"
env_publish alice "$T/mal.rec" 127.0.0.5 || die "publish the takeover of alice.test"
pok_m=$(pok_of "$T/mal.rec")
"$SUB" -c "$T/mal/dime.conf" -f alice@alice.test -t bob@bob.test -q "mal" -m "forged" \
    -o "$T/mal.bin" >/dev/null 2>>"$T/submit.log" || die "the attacker's message"
r=$(python3 "$PEER" send "${ADDR[bob2]}" "$DXP" alice.test bob.test "$T/mal.bin" 2>>"$T/peer.log")
t "alice.test taken over (its DNS with a new POK, the attacker's DX): node 2, which never saw alice.test, refuses the attacker's message: $r" \
    grep -qE '^4[0-9][0-9] ' <<<"$r"
t "... logged by node 2 as a pin mismatch against node 1's pin" \
    grep -qF "pin mismatch domain=alice.test pinned_pok=$pok_a " "$T/bob2-relayd.log"
t "... the shared pin stays alice.test's POK ($pok_m refused)" \
    test "$(pg_sql dime "SELECT pok FROM relay_pins WHERE domain = 'alice.test'")" = "$pok_a"
for p in "${MAL_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
MAL_PIDS=()
env_publish alice "$T/alice.rec" "${ADDR[alice]}" || die "publish alice.test again"
# node 2's resolver holds the attacker's record for its TTL: restarted (its signet cache is
# the shared one, which holds nothing of the attacker: the refused signet was not stored)
relay_stop bob2
relay_start bob2 || die "node 2's relay again"

# ---- a rotation through node 1 is used by node 2 ----
"$CTL" -c "$T/bob/dime.conf" user rotate bob@bob.test >out.txt 2>err.txt
t "bob's key rotated through node 1's configuration: generation 2" grep -q "generation: *2" out.txt
relay_stop bob
# alice's relay still holds bob's previous signet (for the record's TTL, LOOKUP.md): a
# message encrypted to it must still open on bob's nodes
submit R0 1 && submit_wait
if wait_delivered R0 1 15; then
    ok "a message alice encrypted to bob's previous signet, kept in her cache, opened by node 2"
else
    notok "a message alice encrypted to bob's previous signet, kept in her cache, opened by node 2"
    for id in $("$RLC" -c "$T/bob2/dime.conf" queue list 2>/dev/null | awk '$2 == "in" { print $1 }'); do
        "$RLC" -c "$T/bob2/dime.conf" queue delete "$id" >/dev/null 2>&1
    done
fi
# alice's relay with an empty cache, as once the TTL has passed: it fetches bob's new signet
relay_stop alice
rm -f "$T"/alice/cache.db*
relay_start alice || die "alice's relay again"
submit R1 1 && submit_wait
t "node 1's relay stopped: alice's next message delivered by node 2" \
    wait_delivered R1 1 30
t "... in node 2's Maildir" test -n "$(pf_mail_files "$T/pf-bob2" bob | xargs -r grep -l "^Subject: chaos SR1-1")"
"$RLC" -c "$T/alice/dime.conf" query bob@bob.test >"$T/query.txt" 2>&1
"$CTL" -c "$T/bob2/dime.conf" user show bob@bob.test >"$T/show.txt" 2>&1
fp2=$(awk '$1 == 2 && /keys/ { print $NF }' "$T/show.txt")
t "... encrypted to bob's generation 2 signet, which node 2 shows as current ($fp2)" \
    test -n "$fp2" -a "$(sed -n 's/^user-fp=//p' "$T/query.txt")" = "$fp2"
relay_start bob || die "node 1's relay again"

# ---- node 1 SIGKILLed and started again while the messages flow ----
MARK=$RANDOM$RANDOM
t0=$(date +%s%N)
submit "$MARK" "$N" 4 0
r=0
until_s=$(($(date +%s) + KILL_S))
declare -A KILLS=([bob]=0 [bob2]=0)
while [ $r -lt "$ROUNDS" ] && [ "$(date +%s)" -lt $until_s ] && kill -0 "$SUBPID" 2>/dev/null; do
    sleep "$(awk -v s=$RANDOM 'BEGIN { srand(s); printf "%.2f", 0.3 + rand() * 0.7 }')"
    r=$((r + 1))
    k0=$(date +%s%N)
    v=$(serving)
    KILLS[$v]=$((KILLS[$v] + 1))
    node_kill "$v"
    sleep "$(awk -v s=$RANDOM 'BEGIN { srand(s); printf "%.2f", 0.2 + rand() * 0.8 }')"
    node_start "$v" || die "$v did not start again after round $r"
    echo "# round $r: $v SIGKILLed ($PF_KILLED Postfix daemons left by its master), back after" \
        "$((($(date +%s%N) - k0) / 1000000)) ms; $(wc -l <"$T/$MARK.out") of $N submitted," \
        "$(delivered "$MARK" | wc -l) delivered"
done
submit_wait
acked=$(awk '$2 == 250' "$T/$MARK.out" | wc -l)
t "every message accepted by alice's Postfix ($acked of $N)" test "$acked" = "$N"
for _ in $(seq 240); do
    [ "$(delivered "$MARK" | wc -l)" -ge "$acked" ] && relay_queues_empty &&
        [ "$(pf_queue_count "$T/pf-alice")" = 0 ] && [ "$(pf_queue_count "$T/pf-bob")" = 0 ] &&
        [ "$(pf_queue_count "$T/pf-bob2")" = 0 ] && break
    sleep 0.5
done
sleep 2 # anything still on its way would show up as a surplus
flow_s=$((($(date +%s%N) - t0) / 1000000000))
delivered "$MARK" >"$T/delivered.idx"
awk '$2 == 250 { print $1 }' "$T/$MARK.out" | sort >"$T/acked.idx"
comm -23 "$T/acked.idx" <(sort -u "$T/delivered.idx") >"$T/missing.idx"
missing=$(wc -l <"$T/missing.idx")
twice=$(uniq -d "$T/delivered.idx" | wc -l)
n1=$(pf_mail_files "$T/pf-bob" bob | xargs -r grep -l "^Subject: chaos S$MARK-" | wc -l)
n2=$(pf_mail_files "$T/pf-bob2" bob | xargs -r grep -l "^Subject: chaos S$MARK-" | wc -l)
echo "# $r rounds of SIGKILL (node 1 ${KILLS[bob]}, node 2 ${KILLS[bob2]}) in $flow_s s; $N messages, delivered by node 1: $n1," \
    "by node 2: $n2; node 2 answered $(grep -c ' duplicate' "$T/bob2-relayd.log") retried" \
    "messages as duplicates, node 1 $(grep -c ' duplicate' "$T/bob-relayd.log")"
t "$r SIGKILL rounds of the serving node while the messages flowed" test "$r" -ge 1
t "both nodes delivered part of the flow ($n1 and $n2 messages)" test "$n1" -gt 0 -a "$n2" -gt 0
# the window of RELIABILITY.md: node 1's Postfix killed after its milter recorded the
# injection and before cleanup committed the queue file; that file stays in incoming/
window=0
while read -r i; do
    files=$(find "$T/pf-bob/queue/incoming" "$T/pf-bob2/queue/incoming" -type f 2>/dev/null |
        xargs -r grep -salE "chaos S$MARK-$i([^0-9]|\$)")
    [ -n "$files" ] || continue
    window=$((window + 1))
    # what the milters and relays said about that queue id and its injection
    for f in $files; do
        q=$(basename "$f")
        echo "# missing $i: uncommitted $f ($(stat -c %a "$f"))"
        inj=$(grep -h "$q" "$T"/bob-milter.log "$T"/bob2-milter.log | grep -o 'injection=[^ ]*' | head -1)
        grep -h -e "$q" ${inj:+-e "$inj"} "$T"/bob-milter.log "$T"/bob2-milter.log \
            "$T"/bob-relayd.log "$T"/bob2-relayd.log | head -12 | sed 's/^/#   /'
    done
done <"$T/missing.idx"
if [ "$missing" = 0 ]; then
    ok "every message delivered ($acked)"
else
    sed 's/^/missing /' "$T/missing.idx" | head >out.txt
    notok "every message delivered ($missing of $acked missing, $window of them in the injection window)"
fi
# for a duplicate: which node's Maildir has each copy and how it came in (queue ids)
for i in $(uniq -d "$T/delivered.idx" | head -5); do
    nodes_mail_files | xargs -r grep -l "^Subject: chaos S$MARK-$i\$" | while read -r f; do
        echo "# twice: $i in ${f#"$T"/}: $(grep -m2 -A1 '^Received:' "$f" | tr -s ' \n\t' ' ' | cut -c1-300)"
    done
done
t "no message delivered twice ($(wc -l <"$T/delivered.idx") files, $twice twice)" test "$twice" = 0
t "... all of them converted back with dime=pass" test "$(nodes_mail_files |
    xargs -r grep -l "^Subject: chaos S$MARK-" | xargs -r grep -L '^Authentication-Results: mx.bob.test; dime=pass' | wc -l)" = 0
t "every relay queue and Postfix queue empty" eval 'relay_queues_empty &&
    [ "$(pf_queue_count "$T/pf-alice")$(pf_queue_count "$T/pf-bob")$(pf_queue_count "$T/pf-bob2")" = 000 ]'

# ---- dimectl check reads the shared pins ----
"$CTL" -c "$T/bob2/dime.conf" check bob.test >out.txt 2>err.txt
t "dimectl check bob.test through node 2: all OK" test $? = 0 -a -n "$(grep 'bob.test: all OK' out.txt)"
# a pin of bob.test in the shared store naming another POK (alice.test's), as another node
# of a relay that had pinned a wrong key would hold it: the check must see it
pg_sql dime "INSERT INTO relay_pins SELECT 'bob.test', pok, soks, org_fp, first_seen, last_seen,
    exp_days, how, previous_pok, refused, refused_pok, refused_at, syn FROM relay_pins
    WHERE domain = 'alice.test'" >/dev/null
"$CTL" -c "$T/bob2/dime.conf" check bob.test >out.txt 2>err.txt
t "... with a contradicting pin of bob.test in the shared store (none in the SQLite pin file): FAIL pin" \
    test $? = 1 -a -n "$(grep '^pin *FAIL .*contradicts its pin' out.txt)"
pg_sql dime "DELETE FROM relay_pins WHERE domain = 'bob.test'" >/dev/null

# ---- PostgreSQL stopped: both nodes tempfail, nothing lost; started again: mail flows ----
K=$(scaled 10 3)
# the node alice's relay does not talk to gets a keyvault that has served nothing yet: it must
# not take the store's outage for "no domain" (its relay would answer SGNT with 576)
w=$(other "$(serving)")
kv_stop "$w"
kv_start "$w" || die "$w's keyvault"
pg_stop
o1=$(grep -c 'PostgreSQL unavailable' "$T/bob-relayd.log")
o2=$(grep -c 'PostgreSQL unavailable' "$T/bob2-relayd.log")
submit PG "$K" 2 && submit_wait
t "PostgreSQL stopped: alice's Postfix still takes the $K messages" \
    test "$(awk '$2 == 250' "$T/PG.out" | wc -l)" = "$K"
grew() { [ "$(grep -c 'PostgreSQL unavailable' "$1")" -gt "$2" ]; }
declare -A O=([bob]=$o1 [bob2]=$o2)
v=$(other "$w")
for _ in $(seq 120); do grew "$T/$v-relayd.log" "${O[$v]}" && break; sleep 0.25; done
t "$v tempfails alice's relay, logging PostgreSQL unavailable" grew "$T/$v-relayd.log" "${O[$v]}"
relay_stop "$v"
for _ in $(seq 120); do grew "$T/$w-relayd.log" "${O[$w]}" && break; sleep 0.25; done
t "$v's relay stopped: $w tempfails it too, logged" grew "$T/$w-relayd.log" "${O[$w]}"
grep -h 'PostgreSQL unavailable' "$T/bob-relayd.log" "$T/bob2-relayd.log" | tail -2 | sed 's/^/#   /'
t "... $w answers SGNT for its own domain with a tempfail, never 576 no such signet" \
    test "$(grep -c 'cmd=SGNT code=576' "$T/$w-relayd.log")" = 0 -a \
    -n "$(grep 'op=signet principal=bob.test .*result=internal reason="keyvault store: PostgreSQL unavailable' "$T/$w-kv.log")"
q=$(queued_out)
t "... the messages stay in alice's relay queue ($q of $K), none delivered" \
    test "$q" -ge 1 -a "$(delivered PG | wc -l)" = 0
pg_restart || die "PostgreSQL did not start again"
relay_start "$v" || die "$v's relay after the outage"
t "PostgreSQL started again: all $K delivered" wait_delivered PG "$K" 60
sleep 2
t "... once each" test "$(delivered PG | uniq -d | wc -l)" = 0 -a "$(delivered PG | wc -l)" = "$K"

ok "duration $(($(date +%s) - START)) s"
echo "1..$n"
[ "$failed" -eq 0 ]
