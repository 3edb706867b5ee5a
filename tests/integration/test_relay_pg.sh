#!/usr/bin/env bash
# Two relays of one domain on shared state in PostgreSQL (issue 18, state = postgresql), TAP.
#
# alice.test and bob.test as in test_transfer.sh (lib/dime_env.sh: real keyvaults, relays,
# Postfix, nsd with DNSSEC-signed zones), a private PostgreSQL (lib/pg.sh). bob.test gets a
# second node: a second relay on 127.0.0.6 with its own queue, cache and (unused) SQLite pin
# file, the same keyvault and the same Postfix, and both of bob's relays keep their shared
# state in the PostgreSQL database. D/MIME messages from alice.test (built by xfer_submit,
# origin-signed by alice's keyvault) are sent to either node with dmtp_peer.py, as a sending
# relay does that tries bob.test's dx= hosts in turn.
#  - pins: alice.test's POK, pinned by node 1 when its first message arrives, is what node 2
#    checks against: with the shared pin moved to another POK (node 1 having pinned a key the
#    DNS no longer shows) and the shared cache's entries gone, node 2 refuses alice.test's mail (4xx, "pin mismatch"), which it
#    never saw before; `dime-relayctl pins show|list|reset` through node 2's configuration
#    read and change the shared pins.
#  - inbound dedup: a message node 1 accepted and the sender, having lost the 250, retries
#    to node 2 is answered 250 by node 2 without being stored again: bob gets it once.
#    Another node's pending claim of the digest is a tempfail, taken over after its bound.
#  - signet cache: a lookup node 1 made (fetched from alice's DX) is answered by node 2 from
#    the shared cache, alice's DX serving no SGNT; the rows name nobody in clear; a third
#    node whose cache key file was not copied from node 1 refuses to start.
#  - PostgreSQL stopped: inbound DATA to both nodes is a tempfail (nothing accepted, so
#    nothing lost), and so is a lookup; started again: the message is accepted and delivered
#    once, the lookup answered from the shared cache.
#
#  - tests/unit/test_pins.c's pins_pg tests on this server: two nodes' first contacts with a
#    domain racing (one pin wins, the loser decides again against it, both agree).
#
#  - tests/unit/test_relay_store.c's cache_pg test on a database of its own: two nodes'
#    caches share their entries, an upsert of one name from both, a third key refused.
#
# usage: test_relay_pg.sh KEYVAULTD DIMECTL RELAYD RELAYCTL XFER_SUBMIT TEST_PINS TEST_RELAY_STORE
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KVD=$(abs "$1")
CTL=$(abs "$2")
RLD=$(abs "$3")
RLC=$(abs "$4")
SUB=$(abs "$5")
UNIT_PINS=$(abs "$6")
UNIT_STORE=$(abs "$7")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"
source "$HERE/lib/pg.sh"
PEER="$HERE/dmtp_peer.py"
START=$(date +%s)

for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf; do
    command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ "$(id -u)" = 0 ] || skip_all "needs root (private Postfix instances)"
pg_available || skip_all "PostgreSQL server programs (postgresql) or the postgres user missing"

source "$HERE/lib/postfix.sh"
source "$HERE/lib/dime_env.sh"
cleanup() { relay_stop bob2; env_cleanup; pg_cleanup; }
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
env_init "$KVD" "$CTL" "$RLD" || die "setup failed"
ADDR[bob2]=127.0.0.6
PFB=$T/pf-bob
B1="-c $T/bob/dime.conf"
B2="-c $T/bob2/dime.conf"
# bob's node 1 on the shared state; node 2: the same, its own relay files and address
sed -i "s|^  pin-database = .*|&\n  state = \"postgresql\"\n  state-conninfo = \"$PG_CONNINFO\"|" \
    "$T/bob/dime.conf"
mkdir -p "$T/bob2"
sed -E -e "s#^(  (pid-file|cache-database|pin-database|lookup-socket|submit-socket|metrics-socket|queue-database|queue-key-file) = \")$T/bob/#\1$T/bob2/#" \
    -e "s|listen-address = \"${ADDR[bob]}\"|listen-address = \"${ADDR[bob2]}\"|" \
    "$T/bob/dime.conf" >"$T/bob2/dime.conf"
relay_stop bob
relay_start bob || die "bob's node 1 on PostgreSQL"
# the signet cache key, as an operator copies it to every node (node 1 created it)
cache_db() { sed -n 's/^  cache-database = "\(.*\)"/\1/p' "$T/$1/dime.conf"; }
cp -p "$(cache_db bob).key" "$(cache_db bob2).key" || die "copying the cache key to node 2"
relay_start bob2 || die "bob's node 2"
ok "PostgreSQL, alice.test and bob.test's two relays on it started ($(($(date +%s) - START)) s)"
t "the schema is version 3 of component relay" \
    test "$(pg_sql dime "SELECT version FROM schema_version WHERE component = 'relay'")" = 3

bob_count() { pf_mail_count "$PFB" bob; }
# final TAG: a D/MIME message alice -> bob in TAG.bin, as alice's relay would send it
final() {
    "$SUB" -c "$T/alice/dime.conf" -f alice@alice.test -t bob@bob.test -q "$1" -m "$1" \
        -o "$T/$1.bin" >/dev/null 2>>"$T/submit.log"
}
# send NODE TAG: one DMTP transaction to bob's node (1: 127.0.0.3, 2: 127.0.0.6); reply line
send() {
    local a=${ADDR[bob]}
    [ "$1" = 2 ] && a=${ADDR[bob2]}
    python3 "$PEER" send "$a" "$DXP" alice.test bob.test "$T/$2.bin" 2>>"$T/peer.log"
}
shared_pok() { pg_sql dime "SELECT pok FROM relay_pins WHERE domain = 'alice.test'"; }
pok_a=$(grep -o 'pok=[^ "]*' alice.rec | head -1 | cut -d= -f2)
pok_b=$(grep -o 'pok=[^ "]*' bob.rec | head -1 | cut -d= -f2)

# ---- two nodes' first contacts racing (the unit test, on this server) ----
DIME_TEST_PG_CONNINFO=$PG_CONNINFO "$UNIT_PINS" --filter 'pins_pg/*' --tap=- -j1 >out.txt 2>err.txt
t "test_pins pins_pg on PostgreSQL: two nodes' first contacts racing agree on one pin" \
    test $? = 0 -a -n "$(grep '^ok .*two_nodes_first_contact  (' out.txt)" -a -z "$(grep '^not ok' out.txt)"

# ---- the signet cache of two nodes (the unit test, on a database of its own) ----
pg_sql postgres "CREATE DATABASE cache_unit" >/dev/null
DIME_TEST_PG_CONNINFO=${PG_CONNINFO/dbname=dime/dbname=cache_unit} \
    "$UNIT_STORE" --filter 'cache_pg/*' --tap=- -j1 >out.txt 2>err.txt
t "test_relay_store cache_pg on PostgreSQL: two nodes share the cache, another key is refused" \
    test $? = 0 -a -n "$(grep '^ok .*two_nodes_one_cache  (' out.txt)" -a -z "$(grep '^not ok' out.txt)"

# ---- a pin learned by node 1 protects node 2 ----
final M1 || die "D/MIME message M1"
r=$(send 1 M1)
t "node 1 accepts alice's first message: $r" grep -q '^250 ' <<<"$r"
t "... delivered to bob" pf_wait_mail "$PFB" bob 1 30
t "node 1 pinned alice.test's POK in the shared store" test "$(shared_pok)" = "$pok_a"
"$RLC" $B2 pins show alice.test >out.txt 2>err.txt
t "node 2's dime-relayctl pins show reads it" grep -q "^pok: *$pok_a" out.txt
"$RLC" $B2 pins list >out.txt 2>err.txt
t "... pins list too" grep -q "^alice.test pok=$pok_a " out.txt
# the shared pin now names another POK (bob.test's: a real key that is not alice.test's), as
# if node 1 had pinned a POK that alice.test's DNS no longer shows
pg_sql dime "UPDATE relay_pins SET pok = '$pok_b' WHERE domain = 'alice.test'" >/dev/null
# the pins are checked when a signet is resolved, not when the cache answers: the domain's
# cache, shared too, forgets alice.test as if its entries had expired
pg_sql dime "DELETE FROM relay_cache_records; DELETE FROM relay_cache_signets" >/dev/null
final M2 || die "D/MIME message M2"
r=$(send 2 M2)
t "node 2, which never saw alice.test before, refuses its POK against the shared pin: $r" \
    grep -qE '^4[0-9][0-9] ' <<<"$r"
t "... logged as a pin mismatch with both keys" \
    grep -qF "pin mismatch domain=alice.test pinned_pok=$pok_b " "$T/bob2-relayd.log"
t "... counted in the shared pin, which stays" \
    test "$(pg_sql dime "SELECT pok || ' ' || refused FROM relay_pins WHERE domain = 'alice.test'")" = "$pok_b 1"
"$RLC" $B2 pins reset alice.test >out.txt 2>err.txt
t "pins reset through node 2's configuration: the shared pin is gone" \
    test $? = 0 -a -z "$(shared_pok)"
r=$(send 2 M2)
t "node 2 then accepts alice's message: $r" grep -q '^250 ' <<<"$r"
t "... and pinned alice.test's POK again, first seen" \
    test "$(pg_sql dime "SELECT pok || ' ' || how FROM relay_pins WHERE domain = 'alice.test'")" = "$pok_a first-seen"
t "... delivered to bob" pf_wait_mail "$PFB" bob 2 30

# ---- inbound dedup: a message retried to the other node is accepted once in the domain ----
before=$(bob_count)
final M4 || die "D/MIME message M4"
r1=$(send 1 M4)
r2=$(send 2 M4)
tid1=$(grep -o '\[[0-9a-f]*\]' <<<"$r1")
t "the same message to node 1, then to node 2: both 250 with node 1's transaction id ($r1 / $r2)" \
    test -n "$tid1" -a "$r2" = "$r1"
t "... node 2 says it is a duplicate" grep -q "inbound tid=${tid1:1:20} .* duplicate" "$T/bob2-relayd.log"
t "... delivered to bob" pf_wait_mail "$PFB" bob $((before + 1)) 30
sleep 3
t "... once" test "$(bob_count)" = $((before + 1))
t "... node 2's queue never held it" test -z "$("$RLC" $B2 queue list 2>/dev/null)"
t "the shared record says stored by node 1" \
    test "$(pg_sql dime "SELECT state || ' ' || tid || ' ' || (node LIKE '%/bob/queue.db') FROM relay_inbound WHERE hash = '\\x$(sha256sum "$T/M4.bin" | cut -c1-64)'")" = "stored ${tid1:1:20} true"
# another node's claim, pending (it commits the message at this moment): a tempfail; once the
# claim is older than the bound (that node died before its commit): taken over
final M5 || die "D/MIME message M5"
h5=$(sha256sum "$T/M5.bin" | cut -c1-64)
pg_sql dime "INSERT INTO relay_inbound VALUES ('\\x$h5', 'elsewhere:/q.db', 'pending', $(date +%s), '')" >/dev/null
r=$(send 2 M5)
t "another node's fresh pending claim: 451, try again later: $r" grep -q '^451 .*another node' <<<"$r"
pg_sql dime "UPDATE relay_inbound SET claimed = claimed - 400 WHERE hash = '\\x$h5'" >/dev/null
r=$(send 2 M5)
t "... older than the bound: node 2 takes it over and accepts it: $r" grep -q '^250 ' <<<"$r"
t "... delivered to bob" pf_wait_mail "$PFB" bob $((before + 2)) 30

# ---- the signet cache, shared: what node 1 looked up, node 2 answers without fetching ----
pg_sql dime "DELETE FROM relay_cache_records; DELETE FROM relay_cache_signets" >/dev/null
sgnt() { grep -c "cmd=SGNT code=250" "$T/alice-relayd.log"; }
s0=$(sgnt)
"$RLC" $B1 query alice@alice.test >q1.txt 2>&1
s1=$(sgnt)
"$RLC" $B2 query alice@alice.test >q2.txt 2>&1
s2=$(sgnt)
t "node 1 looks alice@alice.test up, fetching from alice's DX (SGNT +$((s1 - s0)))" \
    test "$(sed -n 's/^outcome=//p' q1.txt)" = secure -a "$(sed -n 's/^cached=//p' q1.txt)" = no -a $((s1 - s0)) -ge 1
t "node 2 answers the same lookup from the shared cache (cached=yes, SGNT +$((s2 - s1)))" \
    test "$(sed -n 's/^outcome=//p' q2.txt)" = secure -a "$(sed -n 's/^cached=//p' q2.txt)" = yes -a "$s2" = "$s1"
t "... with the same user signet" \
    test -n "$(grep '^user-fp=' q1.txt)" -a "$(grep '^user-fp=' q1.txt)" = "$(grep '^user-fp=' q2.txt)"
pg_sql dime "SELECT name, encode(sealed, 'escape') FROM relay_cache_records UNION ALL
             SELECT name, encode(sealed, 'escape') FROM relay_cache_signets" >rows.txt
fpa=$(sed -n 's/^user-fp=//p' q1.txt)
t "the shared cache holds $(grep -c . rows.txt) rows, none naming alice.test or her signet in clear" \
    test "$(grep -c . rows.txt)" -ge 3 -a -z "$(grep -iF -e alice -e "$fpa" -e "$pok_a" rows.txt)"
# a node whose cache key is not the domain's (not copied): refuses to start, says why
mkdir -p "$T/bob3"
sed -e "s#$T/bob2/#$T/bob3/#" -e "s|listen-address = \"${ADDR[bob2]}\"|listen-address = \"127.0.0.7\"|" \
    "$T/bob2/dime.conf" >"$T/bob3/dime.conf"
timeout 20 "$RLD" -f -c "$T/bob3/dime.conf" 2>"$T/bob3-relayd.log"
rc=$?
t "a node with another cache key refuses to start (exit $rc)" test "$rc" != 0 -a "$rc" != 124
t "... saying its key file is not the domain's" \
    grep -q "key file $(cache_db bob3).key is not the key the domain's shared cache" "$T/bob3-relayd.log"

# ---- PostgreSQL stopped: a tempfail, never unpinned; started again: mail flows ----
pg_stop
"$RLC" $B2 query alice@alice.test >q3.txt 2>&1
t "PostgreSQL stopped: node 2's lookup of alice@alice.test tempfails: $(head -1 q3.txt)" \
    test "$(sed -n 's/^outcome=//p' q3.txt)" = tempfail
final M3 || die "D/MIME message M3"
r1=$(send 1 M3)
r2=$(send 2 M3)
t "PostgreSQL stopped: node 1 answers 4xx: $r1" grep -qE '^4[0-9][0-9] ' <<<"$r1"
t "... node 2 too: $r2" grep -qE '^4[0-9][0-9] ' <<<"$r2"
t "... with a log line naming the shared state" \
    grep -q "relay state: PostgreSQL unavailable" "$T/bob-relayd.log"
before=$(bob_count)
pg_restart || die "PostgreSQL did not start again"
for _ in 1 2 3 4 5; do r=$(send 2 M3); grep -q '^250 ' <<<"$r" && break; sleep 1; done
t "PostgreSQL started again: node 2 accepts it: $r" grep -q '^250 ' <<<"$r"
t "... delivered to bob" pf_wait_mail "$PFB" bob $((before + 1)) 30
sleep 3
t "... once (nothing of the refused attempts was stored)" test "$(bob_count)" = $((before + 1))
"$RLC" $B2 query alice@alice.test >q4.txt 2>&1
t "... and node 2's lookup answers again, from the shared cache" \
    test "$(sed -n 's/^outcome=//p' q4.txt)" = secure -a "$(sed -n 's/^cached=//p' q4.txt)" = yes

ok "duration $(($(date +%s) - START)) s"
echo "1..$n"
[ "$failed" -eq 0 ]
