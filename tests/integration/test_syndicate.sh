#!/usr/bin/env bash
# Integration test of syndicates (issue 15, item 3; daemonlib/SYNDICATE.md), TAP output.
#
# alice.test and bob.test as in test_pins.sh (lib/dime_env.sh: real keyvaults, relays,
# Postfix, nsd with DNSSEC-signed zones), both records with syn=dx.carol.test. A third relay,
# dx.carol.test (127.0.0.6, syndicate-for = "*"), is their syndicate: it pinned both domains
# before anyone else talked to them. Then:
#  - first contact alice -> bob and bob -> alice: each relay asks carol (XSYN over DMTP/TLS),
#    carol agrees, the mail goes;
#  - first contact while carol reports another POK for bob.test: tempfail at alice, nothing
#    pinned, the log names both keys and what carol said; carol agreeing again: delivered;
#  - a takeover of bob.test (a new POK without a rollover link, the attacker's DX and relay,
#    a record without syn=): alice asks the syndicates of the record it pinned, carol still
#    reports the old POK, so alice refuses it outbound and inbound (tempfail, the log with
#    both fingerprints and carol's answer);
#  - carol's operator accepts the new POK (pins reset at carol, carol sees it again): alice's
#    pin moves on carol's word ("moved by syndicates"), mail goes to the new DX.
#
# usage: test_syndicate.sh KEYVAULTD DIMECTL RELAYD RELAYCTL XFER_SUBMIT
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KVD=$(abs "$1")
CTL=$(abs "$2")
RLD=$(abs "$3")
RLC=$(abs "$4")
SUB=$(abs "$5")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"
START=$(date +%s)

for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf sqlite3; do
    command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ "$(id -u)" = 0 ] || skip_all "needs root (private Postfix instances)"

source "$HERE/lib/postfix.sh"
source "$HERE/lib/dime_env.sh"
MAL_PIDS=()
cleanup() {
    local p
    for p in "${MAL_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    env_cleanup
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

# the syndicates' word is kept 4 s (syndicate-cache-ttl): long enough to see it kept
RELAY_EXTRA="syndicate-cache-ttl = 4" ENV_RECORD_OPTS="--syn dx.carol.test" env_init "$KVD" "$CTL" "$RLD" || die "setup failed"
A="-c $T/alice/dime.conf"
C="-c $T/carol/dime.conf"
PFA=$T/pf-alice
PFB=$T/pf-bob
submit() { "$SUB" -c "$T/$1/dime.conf" -f "$2" -t "$3" -q "$4" -m "$4" >out.txt 2>err.txt; }
pin_field() { # pin_field RELAY-OPTS DOMAIN FIELD
    "$RLC" $1 pins show "$2" 2>/dev/null | awk -v k="$3:" '$1 == k {print $2}'
}
rec_pok() { grep -o 'pok=[^ "]*' "$1" | head -1 | cut -d= -f2; }
queued() { "$RLC" $A queue list 2>/dev/null | grep -c .; }
# alice's relay again with an empty signet cache (as after the TTLs): the next message
# resolves bob.test anew; its pins stay
alice_fresh() { relay_stop alice; rm -f "$T"/alice/cache.db*; relay_start alice; }
# bob.test's zone with the _dime/_dx lines of REC and dx at ADDR, signed with its keys
publish_bob() {
    local ksk zsk
    read -r _ ksk zsk < <(grep '^bob.test ' keys/keys.txt)
    { printf '$ORIGIN bob.test.\n$TTL 300\n@ SOA ns.test. hostmaster.test. %s 3600 600 86400 300\n@ NS ns.test.\n' \
        "$(date +%s)"; grep '^_d' "$1"; echo "dx A $2"; } >zones/bob.test.zone
    ldns-signzone -f zones/bob.test.signed -o bob.test. zones/bob.test.zone "keys/$zsk" \
        "keys/$ksk" >>setup.log 2>&1 && env_nsd_start
}

# ---- carol: dx.carol.test in test., its certificate, its relay (alice's vault) ----
read -r _ TKSK TZSK < <(grep '^test ' keys/keys.txt)
echo "dx.carol A 127.0.0.6" >>zones/test.zone.in
ldns-signzone -f zones/test.signed -o test. zones/test.zone.in "keys/$TZSK" "keys/$TKSK" \
    >>setup.log 2>&1 && env_nsd_start || die "dx.carol.test in test."
openssl req -newkey rsa:2048 -nodes -subj "/CN=dx.carol.test" -keyout dx.carol.test.key \
    -out dx.carol.test.csr 2>/dev/null &&
    printf 'subjectAltName=DNS:dx.carol.test\nextendedKeyUsage=serverAuth\n' >dx.carol.test.ext &&
    openssl x509 -req -in dx.carol.test.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile dx.carol.test.ext -out dx.carol.test.pem 2>/dev/null || die "carol's certificate"
mkdir -p carol
sed -e "/^relay {/,/^}/ s|$T/alice/|$T/carol/|" -e "s|$T/carol/kv.sock|$T/alice/kv.sock|" \
    -e "s|dx.alice.test|dx.carol.test|g" -e "s|${ADDR[alice]}|127.0.0.6|g" \
    -e "s|inject-port = .*|inject-port = $(env_pick)|" -e 's|domain "alice.test"|domain "carol.test"|' \
    -e 's|^relay {|relay {\n  syndicate-for = {"*"}|' alice/dime.conf >carol/dime.conf
CAROL=
carol_start() { # with an empty signet cache: its next query resolves anew
    if [ -n "$CAROL" ]; then kill "$CAROL" 2>/dev/null; wait "$CAROL" 2>/dev/null; fi
    rm -f carol/cache.db* carol/lookup.sock
    "$RLD" -f -c carol/dime.conf 2>>"$T/carol-relayd.log" &
    CAROL=$!
    MAL_PIDS+=("$CAROL")
    env_wait_tcp 127.0.0.6 "$DXP" "$CAROL" || return 1
    for _ in $(seq 200); do [ -S carol/lookup.sock ] && return 0; sleep 0.05; done
    return 1
}
carol_start || die "carol's relay"
for d in alice.test bob.test; do "$RLC" $C query $d >out.txt 2>err.txt; done
pok1=$(rec_pok bob.rec)
t "carol (whose own name in syn= it skips) pinned alice.test and bob.test" \
    test "$(pin_field "$C" bob.test pok)" = "$pok1" -a \
    "$(pin_field "$C" alice.test pok)" = "$(rec_pok alice.rec)"
t "the records name carol as syndicate" grep -q 'syn=dx.carol.test' bob.rec

# ---- first contact, carol agrees ----
submit alice alice@alice.test bob@bob.test M0
t "alice -> bob on carol's word: delivered" pf_wait_mail "$PFB" bob 1 30
t "alice pinned bob.test, first seen, with its record's syndicates" \
    test "$(pin_field "$A" bob.test pok)" = "$pok1" -a "$(pin_field "$A" bob.test how)" = first-seen -a \
    "$(pin_field "$A" bob.test syndicates)" = dx.carol.test
submit bob bob@bob.test alice@alice.test N0
t "bob -> alice (bob checks alice's origin signet with carol): delivered" \
    pf_wait_mail "$PFA" alice 1 30
t "carol answered XSYN to both relays" \
    test "$(grep -c 'cmd=XSYN code=250' "$T/carol-relayd.log")" -ge 2

# ---- first contact while carol reports another POK ----
pokc=$(rec_pok alice.rec)
sqlite3 carol/pins.db "UPDATE pins SET pok = '$pokc' WHERE domain = 'bob.test'"
"$RLC" $A pins reset bob.test >/dev/null 2>&1
alice_fresh || die "alice's relay"
submit alice alice@alice.test bob@bob.test M1
t "carol disagrees: a tempfail at submission, nothing queued" \
    test -n "$(grep "outcome=tempfail first contact with bob.test: its syndicates do not confirm" err.txt)" -a \
    "$(queued)" = 0
t "... nothing pinned" test -z "$(pin_field "$A" bob.test pok)"
grep -F "syndicate refusal domain=bob.test first-contact pok=$pok1 " "$T/alice-relayd.log" |
    head -1 >line.txt
t "alice's log names the POK and what carol said (its POK and fingerprint)" \
    grep -qF "quorum=1 agreed=0 dx.carol.test:disagrees(pok=$pokc fp=" line.txt
"$RLC" $A stats --raw >out.txt 2>&1
t "... counted in the metrics (dime_relay_pin_refusals_total, reason syndicate_first_contact)" \
    grep -qE '^dime_relay_pin_refusals_total\{reason="syndicate_first_contact"\} [1-9]' out.txt
sqlite3 carol/pins.db "UPDATE pins SET pok = '$pok1' WHERE domain = 'bob.test'"
asked=$(grep -c 'cmd=XSYN' "$T/carol-relayd.log")
"$RLC" $A query bob.test >out.txt 2>err.txt
t "carol's word is kept (syndicate-cache-ttl): still tempfail, carol not asked again" \
    test -n "$(grep -x 'outcome=tempfail' out.txt)" -a -n "$(grep 'kept [0-9]* s' out.txt)" -a \
    "$(grep -c 'cmd=XSYN' "$T/carol-relayd.log")" = "$asked"
# until the word kept expires (4 s): a bounded retry, as the sender's queue would do
resubmit() { # resubmit FROM RCPT TAG: submit until a 250, at most 15 times a second apart
    local i
    for i in $(seq 15); do submit alice "$1" "$2" "$3" && has " 250 " && return 0; sleep 1; done
    return 1
}
t "carol agrees again (asked again once the word expired): accepted" \
    resubmit alice@alice.test bob@bob.test M2
t "... delivered" pf_wait_mail "$PFB" bob 2 30

# ---- takeover: a new POK without a rollover link, the attacker's DX ----
# the attacker's record names no syndicate: the pinned record's syn= is asked all the same
env_impostor || die "attacker's domain and relay"
M="-c $T/mal/dime.conf"
pokm=$(rec_pok mal.rec)
publish_bob mal.rec 127.0.0.5 || die "publish the takeover"
alice_fresh || die "alice's relay"
submit alice alice@alice.test bob@bob.test M3
t "takeover: a tempfail at submission (the pin holds, carol does not confirm)" \
    test -n "$(grep 'outcome=tempfail POK of bob.test contradicts its pin' err.txt)" -a \
    "$(queued)" = 0
grep -F "pin mismatch domain=bob.test pinned_pok=$pok1 " "$T/alice-relayd.log" |
    grep -F " new_pok=$pokm " | head -1 >line.txt
t "alice's log: both keys and fingerprints, and carol's answer (the pinned POK)" \
    test -n "$(grep -E 'pinned_fp=[A-Za-z0-9+/]{86} new_pok=.* new_fp=[A-Za-z0-9+/]{86} ' line.txt |
        grep -F "syndicates=1 quorum=1 agreed=0 dx.carol.test:disagrees(pok=$pok1 fp=")"
t "the pin is unchanged" test "$(pin_field "$A" bob.test pok)" = "$pok1"
# inbound: the attacker's relay sends as bob.test to alice
submit mal bob@bob.test alice@alice.test X1
for _ in $(seq 100); do "$RLC" $M queue list 2>/dev/null | grep -q "47[0-9]" && break; sleep 0.1; done
"$RLC" $M queue list >out.txt 2>&1
t "inbound under the new POK: alice refuses it with a 4xx" grep -qE "47[0-9]" out.txt
t "... logged with carol's answer" \
    test "$(grep -F "pin mismatch domain=bob.test pinned_pok=$pok1 " "$T/alice-relayd.log" |
        grep -F "new_pok=$pokm " | grep -c "dx.carol.test:disagrees")" -ge 2
t "nothing from the attacker reached alice" test "$(pf_mail_count "$PFA" alice)" = 1

# ---- carol confirms the new POK: alice's pin moves ----
"$RLC" $C pins reset bob.test >/dev/null 2>&1
carol_start || die "carol's relay"
"$RLC" $C query bob.test >out.txt 2>err.txt
t "carol's operator accepted the new POK (carol pinned it)" \
    test "$(pin_field "$C" bob.test pok)" = "$pokm"
t "alice -> bob under the new POK: accepted (once alice's kept refusal expired)" \
    resubmit alice@alice.test bob@bob.test M4
t "alice's pin moved on carol's word (how: syndicate)" \
    test "$(pin_field "$A" bob.test pok)" = "$pokm" -a "$(pin_field "$A" bob.test how)" = syndicate -a \
    "$(pin_field "$A" bob.test previous-pok)" = "$pok1"
t "alice logged the move with both keys and carol's agreement" \
    test -n "$(grep -F "pin domain=bob.test moved by syndicates old_pok=$pok1 " "$T/alice-relayd.log" |
        grep -F "new_pok=$pokm " | grep "agreed=1 dx.carol.test:agrees(pok=$pokm ")"
for _ in $(seq 100); do "$RLC" $M queue list 2>/dev/null | grep -qE '^[^ ]+ +in ' && break; sleep 0.1; done
t "... and the new DX received it" test -n "$("$RLC" $M queue list 2>/dev/null | grep -E '^[^ ]+ +in ')"

echo "# duration $(($(date +%s) - START)) s"
echo "1..$n"
[ "$failed" = 0 ]
