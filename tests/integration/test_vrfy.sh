#!/usr/bin/env bash
# The signet cache refreshed with VRFY (issue 19, item 6), TAP output. Real nsd with
# DNSSEC-signed zones, real relays, keyvaults, milters and Postfix (lib/dime_env.sh):
# alice.test and bob.test, both records with ttl=10 (RL_RECORD_OWN_TTL_FLOOR: the shortest a
# record's ttl= makes the relay's cache), so alice's relay holds bob's signets for 10 s.
#
#   1. alice mails bob: bob's DX serves the signets with SGNT (nothing cached yet).
#   2. The cache entries expire; alice mails bob again: alice's relay asks bob's DX
#      `VRFY <name> [fp]` for the org and the user signet, is told CURRENT and fetches
#      nothing (bob's DX logs VRFY and no SGNT; alice's metrics count the hits).
#   3. bob's user key is rotated (dimectl user rotate); after the next expiry alice's next
#      message makes the relay ask VRFY, which answers UPDATE for bob's signet: that one is
#      fetched with SGNT, its custody chain walked from the signet held (HIST), and the
#      message goes out under the new signet (alice's cache holds it, bob reads the message).
# Each count is read from bob's relay log (its cmd= lines) before and after a message.
#
# usage: test_vrfy.sh MILTER KEYVAULTD DIMECTL RELAYD RELAYCTL
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
MILTER=$(abs "$1")
KVD=$(abs "$2")
CTL=$(abs "$3")
RLD=$(abs "$4")
RLC=$(abs "$5")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"

for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf swaks; do
    command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ "$(id -u)" = 0 ] || skip_all "needs root (private Postfix instances)"
START=$(date +%s)

source "$HERE/lib/postfix.sh"
source "$HERE/lib/dime_env.sh"
trap env_cleanup EXIT
die() {
    echo "Bail out! $*"
    for f in "$T"/*.log; do [ -s "$f" ] && tail -5 "$f" | sed "s|^|# $(basename "$f"): |"; done
    exit 1
}
TTL=10
ENV_MILTER=$MILTER ENV_USERS=0 ENV_RECORD_OPTS="--record-ttl $TTL"
env_init "$KVD" "$CTL" "$RLD" || die "setup failed"
PFB=$T/pf-bob
cd "$T" || die "cd"
grep -q "ttl=$TTL" bob.rec || die "bob's record has no ttl=$TTL: $(grep '^_dime' bob.rec)"
echo "# setup took $(($(date +%s) - START)) s"

MARK=vrfy$RANDOM$RANDOM
SENT=0
# send TAG: alice to bob through alice's submission listener (a trusted client), then wait
# until bob's mailbox has it; the time the milter looked bob up is in LOOKED
send() {
    printf 'From: alice@alice.test\r\nTo: bob@bob.test\r\nSubject: %s %s\r\n\r\n%s body\r\n' \
        "$1" "$MARK" "$1" >"$1.eml"
    swaks --server "${ADDR[alice]}" --port "${SUB_PORT[alice]}" --from alice@alice.test \
        --to bob@bob.test --data "@$1.eml" --helo client.alice.test >out.txt 2>err.txt ||
        return 1
    LOOKED=$(date +%s)
    SENT=$((SENT + 1))
    pf_wait_mail "$PFB" bob "$SENT" 60
}
# served VERB: how many VERB commands bob's DX answered with 250 so far
served() { grep -c "cmd=$1 code=250" "$T/bob-relayd.log"; }
counts() { echo "$(served SGNT) $(served VRFY) $(served HIST)"; }
# vrfy ANSWER: alice's relay's count of VRFY answers of that kind (0 when not shown)
vrfy() {
    local v
    v=$("$RLC" -c "$T/alice/dime.conf" stats --raw 2>/dev/null |
        sed -n "s/^dime_relay_signet_vrfy_total{answer=\"$1\"} //p")
    echo "${v:-0}"
}
# expire: wait until alice's cache entries from the last lookup are past their ttl=
expire() { local w=$((LOOKED + TTL + 1 - $(date +%s))); [ "$w" -gt 0 ] && sleep "$w"; }
query() { "$RLC" -c "$T/alice/dime.conf" -d alice.test query bob@bob.test >q.txt 2>&1; }

# ---- 1. a first message: nothing cached, the signets are fetched ----
read -r s0 v0 h0 < <(counts)
send first || die "the first message did not arrive"
read -r s1 v1 h1 < <(counts)
# what the checks below compare with: without a cache, both signets come with SGNT
[ $((s1 - s0)) -ge 2 ] || die "first message: bob's DX served $((s1 - s0)) SGNT, not the org and user signets"
query
OLD_FP=$(sed -n 's/^user-fp=//p' q.txt)
grep -q '^cached=yes' q.txt && [ -n "$OLD_FP" ] || die "alice's cache does not hold bob: $(head -3 q.txt)"

# ---- 2. expired, nothing changed: VRFY answers CURRENT, nothing is fetched ----
expire
c0=$(vrfy current)
send second || die "the second message did not arrive"
read -r s2 v2 h2 < <(counts)
c1=$(vrfy current)
echo "# after expiry: SGNT +$((s2 - s1)) VRFY +$((v2 - v1)) HIST +$((h2 - h1)); alice's current answers +$((c1 - c0))"
query
[ "$s2" = "$s1" ] && [ $((v2 - v1)) -ge 2 ] && grep -q '^cached=yes' q.txt &&
    grep -qx "user-fp=$OLD_FP" q.txt &&
    ok "expired cache, nothing changed: alice's relay sent VRFY ($((v2 - v1))) and no SGNT to bob's DX, and kept bob's signet" ||
    { sed 's/^/# /' q.txt | head -4; notok "expired cache, nothing changed: alice's relay sent VRFY and no SGNT to bob's DX (SGNT +$((s2 - s1)), VRFY +$((v2 - v1))), and kept bob's signet"; }
[ $((c1 - c0)) -ge 2 ] &&
    ok "alice's metrics count the VRFY hits (answer=current +$((c1 - c0)))" ||
    notok "alice's metrics count the VRFY hits (answer=current +$((c1 - c0)))"

# ---- 3. bob's key rotated: VRFY answers UPDATE, the new signet is fetched ----
"$CTL" -c "$T/bob/dime.conf" user rotate bob@bob.test >rotate.txt 2>&1 || die "rotate: $(cat rotate.txt)"
expire
u0=$(vrfy update)
read -r s2 v2 h2 < <(counts)
send third || die "the message after the rotation did not arrive"
read -r s3 v3 h3 < <(counts)
u1=$(vrfy update)
echo "# after the rotation: SGNT +$((s3 - s2)) VRFY +$((v3 - v2)) HIST +$((h3 - h2)); alice's update answers +$((u1 - u0))"
query
NEW_FP=$(sed -n 's/^user-fp=//p' q.txt)
"$RLC" -c "$T/alice/dime.conf" lookup bob@bob.test >out.txt 2>err.txt
CUR_FP=$(sed -n 's/^user-signet: .*fingerprint=//p' out.txt)
echo "# bob's signet: before ${OLD_FP:0:12}, cached now ${NEW_FP:0:12}, served now ${CUR_FP:0:12}"
[ $((v3 - v2)) -ge 2 ] && [ "$((s3 - s2))" = 1 ] && [ $((h3 - h2)) -ge 1 ] && [ $((u1 - u0)) -ge 1 ] &&
    grep -q '^cached=yes' q.txt && [ -n "$NEW_FP" ] && [ "$NEW_FP" != "$OLD_FP" ] && [ "$NEW_FP" = "$CUR_FP" ] &&
    ok "after the rotation: VRFY answered UPDATE, only bob's signet fetched (SGNT) with its chain (HIST), the message went out under the new signet" ||
    { sed 's/^/# /' q.txt | head -4; notok "after the rotation: VRFY answered UPDATE, only bob's signet fetched (SGNT) with its chain (HIST), the message went out under the new signet"; }

echo "# took $(($(date +%s) - START)) s"
echo "1..$n"
[ "$failed" = 0 ]
