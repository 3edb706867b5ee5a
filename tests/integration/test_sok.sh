#!/usr/bin/env bash
# Integration test of the organization's keys in the online vault (issue 13), TAP output.
#
# alice.test and bob.test as in test_transfer.sh (lib/dime_env.sh): alice set up with
# dimectl's default (the POK in a file, an online SOK), bob with --pok-online. Checked with
# the real dimectl, keyvaults and relays: no POK in alice's vault, the POK file; origin
# signatures and user signets made by the SOK verify on the receiving side; a SOK rollover
# (dimectl domain rollover-sok) with mail in flight, a message after it, user signets issued
# before and after it, the signet a peer fetches, the old SOK's sealed bytes gone.
#
# usage: test_sok.sh KEYVAULTD DIMECTL RELAYD RELAYCTL XFER_SUBMIT DIME-SIGNET KVCLIENT
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KVD=$(abs "$1")
CTL=$(abs "$2")
RLD=$(abs "$3")
RLC=$(abs "$4")
SUB=$(abs "$5")
DS=$(abs "$6")
KVC=$(abs "$7")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"

for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf sqlite3 xxd; do
    command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ "$(id -u)" = 0 ] || skip_all "needs root (private Postfix instances)"

source "$HERE/lib/postfix.sh"
source "$HERE/lib/dime_env.sh"
trap env_cleanup EXIT
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
wait_for() {
    local s=$1 i
    shift
    for ((i = 0; i < s * 10; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}

ENV_POK_ONLINE=bob env_init "$KVD" "$CTL" "$RLD" || die "setup failed"
A="-c $T/alice/dime.conf"
B="-c $T/bob/dime.conf"
PFA=$T/pf-alice
PFB=$T/pf-bob
submit() { "$SUB" -c "$T/$1/dime.conf" -f "$1@$1.test" -t "$2" -q "$3" -m "$3" >out.txt 2>err.txt; }
count() { pf_mail_count "$1" "$2"; }
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }
db() { sqlite3 "$(env_dir "$1" kv)/kv.db" "$2"; }

# ---- domain init: the POK in a file, not in the vault ----
t "alice's vault database holds no POK (domain row, pok column NULL)" \
    test "$(db alice 'SELECT pok IS NULL AND sok IS NOT NULL FROM domain')" = 1
"$CTL" $A --json domain show >out.txt 2>err.txt
t "the vault says so: pok_online false, sok_online true, permissions 3" \
    grep -q '"pok_online":false,"sok_online":true,"sok_permissions":3' out.txt
t "the POK file exists with mode 0400" test "$(stat -c %a "$T/alice/pok.key")" = 400
pok=$(grep -o 'pok=[^ "]*' alice.rec | head -1 | cut -d= -f2)
"$DS" show "$T/alice/pok.key" >out.txt 2>&1
"$CTL" $A domain show >ctl.txt 2>&1
t "the POK file holds the domain's POK (the one in the _dime record and the vault's signet)" \
    test -n "$pok" -a -n "$(grep -xF "pok: $pok" out.txt)" -a \
    -n "$(grep -F "pok:             $pok (offline)" ctl.txt)"
t "--pok-online keeps the POK in bob's vault (and writes the file too)" \
    test "$(db bob 'SELECT pok IS NOT NULL FROM domain')" = 1 -a -s "$T/bob/pok.key"
"$CTL" $B --json domain show >out.txt 2>err.txt
t "... and bob's SOK signs user signets only (the POK signs origin signatures)" \
    grep -q '"pok_online":true,"sok_online":true,"sok_permissions":1' out.txt

# a scratch vault: init without a destination for the POK, and never over an existing file
sed "s|$(env_dir alice kv)/kv|$T/scratch-kv|g" alice/dime.conf >scratch.conf
echo keep >scratch.pok
"$CTL" -c "$T/scratch.conf" domain init scratch.test >out.txt 2>err.txt
t "domain init without --pok-file or --pok-online: usage error (2)" test $? = 2
"$CTL" -c "$T/scratch.conf" domain init scratch.test --pok-file scratch.pok >out.txt 2>err.txt
rc=$?
t "domain init refuses to overwrite an existing POK file (1), file untouched, no domain" \
    test $rc = 1 -a "$(cat scratch.pok)" = keep -a \
    "$(sqlite3 "$T/scratch-kv.db" 'SELECT count(*) FROM domain')" = 0
has "not overwritten" err.txt && ok "... and says why" || notok "... and says why"
"$CTL" $A dns-record --tls-cert dx.alice.test.pem >out.txt 2>err.txt
rc=$?
t "dns-record --tls-cert with the POK offline and no --pok: refused, names --pok" \
    test $rc = 1 -a -n "$(grep -e '--pok' err.txt)"
"$CTL" $B dns-record --tls-cert dx.bob.test.pem --dx dx.bob.test --ttl 300 >out.txt 2>err.txt
t "dns-record with the POK online (bob): the same tls= as signed from the POK file" \
    test "$(grep -o 'tls=[^ ]*' out.txt | head -1)" = "$(grep -o 'tls=[^ ]*' bob.rec | head -1)"

# ---- SOK-signed origin signatures and user signets verify at the receiver ----
"$KVC" -s "$(env_dir alice kv)/kv.sock" check alice.test >out.txt 2>err.txt
t "alice's keyvault signs for the organization with the SOK (dime-kvclient check)" test $? = 0

submit alice bob@bob.test M0
t "alice -> bob (origin signed by alice's SOK): delivered" pf_wait_mail "$PFB" bob 1 30
submit bob alice@alice.test N0
t "bob -> alice (--pok-online: origin signed by the POK): delivered" pf_wait_mail "$PFA" alice 1 30
"$RLC" $B -d bob.test lookup alice@alice.test >out.txt 2>err.txt
t "bob's relay verifies alice's user signet (signed by the SOK)" test $? = 0
sok1=$(grep -o 'sok: *[^ ]*' ctl.txt | head -1 | awk '{print $2}')
old_sealed=$(db alice 'SELECT hex(sok) FROM domain')

# ---- rollover with a message in flight ----
relay_stop bob
submit alice bob@bob.test M1
t "a message queued at alice while bob is down (origin signed by the old SOK)" has " 250 "
"$CTL" $A --json domain rollover-sok --pok "$T/alice/pok.key" >roll.json 2>err.txt
t "dimectl domain rollover-sok --pok FILE: done" test $? = 0
"$CTL" $A domain show >ctl2.txt 2>&1
sok2=$(grep -o 'sok: *[^ ]*' ctl2.txt | head -1 | awk '{print $2}')
t "the vault signs with a new SOK, the old one listed with the SIGNET bit only" \
    test -n "$sok2" -a "$sok2" != "$sok1" -a "$(json_field roll.json old_sok)" = "$sok1" -a \
    -n "$(grep -F "sok:             $sok1 permissions 0x01 (not in the vault)" ctl2.txt)"
t "the old SOK's sealed seed is gone from the database and its log" \
    test "$(db alice 'SELECT hex(sok) FROM domain')" != "$old_sealed" -a \
    -z "$(cat "$(env_dir alice kv)"/kv.db* | xxd -p | tr -d '\n' | grep -io "$old_sealed")"
t "the POK stays out of the vault" test "$(db alice 'SELECT pok IS NULL FROM domain')" = 1
t "the replaced org signet is kept (served by fingerprint)" \
    test "$(db alice 'SELECT count(*) FROM org_signets')" = 1
"$CTL" $A signet show alice.test --fingerprint "$(json_field roll.json old_fingerprint)" \
    >out.txt 2>err.txt
t "dimectl signet show --fingerprint OLD: the replaced org signet" has "type:         org"
# bob forgets what it cached: the message names the org signet from before the rollover,
# bob's fresh lookup finds the new one and fetches the named one by its fingerprint
rm -f "$T"/bob/cache.db*
relay_start bob || die "bob relay restart"
"$RLC" $A queue flush >/dev/null 2>&1
t "mail in flight signed by the old SOK: delivered after the rollover" \
    pf_wait_mail "$PFB" bob 2 40
t "bob's relay did not refuse it" test -z "$(grep -E ' 57[05] ' "$T/bob-relayd.log")"

# ---- after the rollover ----
submit alice bob@bob.test M2
t "a message sent after the rollover (new SOK): delivered" pf_wait_mail "$PFB" bob 3 30
"$RLC" $B -d bob.test lookup alice.test >out.txt 2>err.txt
fp2=$(json_field roll.json fingerprint)
t "a signet fetched after the rollover is the new one (its fingerprint, listing the new SOK)" \
    has "$fp2"
"$RLC" $B -d bob.test lookup alice@alice.test >out.txt 2>err.txt
t "alice's user signet from before the rollover still verifies at bob" test $? = 0
"$CTL" $A user add carl@alice.test >/dev/null 2>err.txt
"$RLC" $B -d bob.test lookup carl@alice.test >out.txt 2>err.txt
t "a user signet issued after the rollover (new SOK) verifies at bob" test $? = 0
"$CTL" $A signet history alice@alice.test >out.txt 2>err.txt
t "dimectl signet history: alice's generations verify against the new org signet" test $? = 0

# a second rollover while bob caches the org signet of the first: the next message names a
# newer one than bob's cache holds
"$RLC" $B -d bob.test query alice.test >/dev/null 2>&1
"$CTL" $A domain rollover-sok --pok "$T/alice/pok.key" >out.txt 2>err.txt
t "a second rollover: the first SOK still listed (alice's signet needs it)" \
    has "old SOK:"
"$CTL" $A domain show >ctl3.txt 2>&1
t "... the first SOK stays listed (SIGNET only), as does the second" \
    test -n "$(grep -F "$sok1 permissions 0x01" ctl3.txt)" -a \
    -n "$(grep -F "$sok2 permissions 0x01" ctl3.txt)"
submit alice bob@bob.test M3
t "a message naming a newer org signet than bob caches: delivered" pf_wait_mail "$PFB" bob 4 30
t "nothing bounced to alice" test "$(count "$PFA" alice)" = 1

# a wrong POK file changes nothing
"$CTL" $A --json domain show >before.json 2>&1
"$CTL" $A domain rollover-sok --pok "$T/bob/pok.key" >out.txt 2>err.txt
rc=$?
"$CTL" $A --json domain show >after.json 2>&1
t "rollover with another domain's POK file: refused (1), nothing changed" \
    test $rc = 1 -a "$(cat before.json)" = "$(cat after.json)"

# bob (--pok-online) rolls over too
"$CTL" $B domain rollover-sok --pok "$T/bob/pok.key" >out.txt 2>err.txt
t "rollover on a vault that holds its POK (--pok-online)" test $? = 0
submit bob alice@alice.test N1
t "bob -> alice after bob's rollover: delivered" pf_wait_mail "$PFA" alice 2 30
t "bob's vault logged its POK signing origin signatures once (no SOK with the MSG bit)" \
    test "$(grep -c 'org-signer domain=bob.test permission=0x02 key=pok' "$T/bob-kv.log")" = 1

echo "1..$n"
[ "$failed" = 0 ]
