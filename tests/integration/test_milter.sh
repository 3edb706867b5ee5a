#!/usr/bin/env bash
# dime-milter's decision table through miltertest (Lua scenarios in tests/milter/), TAP output.
#
# Starts on loopback, in a temporary directory, every process stopped by its PID on exit:
#   dime-keyvaultd for the local domain b.test (bob Trustful, dave Paranoid);
#   tests/milter/fake_relay.py: the relay's lookup and submission sockets, answering from a
#     table (a.test secure, nodime.test not-dime, bogus.test bogus, slow.test tempfail,
#     dead.test closes without answering) and storing submitted D/MIME messages;
#   dime-milter, started by miltertest itself (mt.startfilter) once per scenario file.
# The remote domain a.test (alice) exists only as key files made with dime-signet; inbound
# test messages are D/MIME made with dime-message, wrapped as dime-relayd injects them.
# Outbound submissions are checked by completing the origin step with b.test's org key and
# opening them as alice: the result must be byte-identical to what was submitted.
#
# usage: test_milter.sh MILTER KEYVAULTD DIMECTL DIME-SIGNET DIME-MESSAGE
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
MILTER=$(abs "$1")
KVD=$(abs "$2")
CTL=$(abs "$3")
DS=$(abs "$4")
DM=$(abs "$5")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCEN=$(cd "$HERE/../milter" && pwd)
source "$HERE/lib/tap.sh"

for t in miltertest python3 base64; do
    if ! command -v "$t" >/dev/null; then
        if [ -n "${DIME_TESTS_STRICT:-}" ]; then
            echo "Bail out! $t is not installed (DIME_TESTS_STRICT is set)"
            exit 1
        fi
        echo "1..0 # SKIP $t is not installed"
        exit 0
    fi
done

T=$(mktemp -d "${TMPDIR:-/tmp}/dime-milter-test.XXXXXX")
chmod 755 "$T"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [ "${KEEP:-0}" = 1 ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
cd "$T"
die() {
    echo "Bail out! $*"
    for f in "$T"/*.log; do [ -s "$f" ] && tail -5 "$f" | sed "s|^|# $(basename "$f"): |"; done
    exit 1
}
source "$SCEN/fixture.sh"
fixture_setup
milter_conf policy.conf "$T/kv.sock" "$T/lookup.sock" "$T/submit.sock" \
    'on-no-signet = accept' 'on-verify-failure = accept' 'on-bogus = accept' \
    'on-dns-error = reject' 'outbound-require-dime = {"nodime2.test"}'
milter_conf kvdown.conf "$T/no-kv.sock" "$T/lookup.sock" "$T/submit.sock"
milter_conf relaydown.conf "$T/kv.sock" "$T/no-lookup.sock" "$T/no-submit.sock"
# ---- configuration checks (-n) ----
if "$MILTER" -n -c main.conf >out.txt 2>err.txt; then ok "dime-milter -n accepts the test configuration"; else notok "dime-milter -n accepts the test configuration"; fi
bad_conf() { # bad_conf DESC PATTERN DOMAIN-OPTION
    milter_conf bad.conf "$T/kv.sock" "$T/lookup.sock" "$T/submit.sock" "$3"
    if ! "$MILTER" -n -c bad.conf >out.txt 2>err.txt && has "$2" err.txt; then ok "$1"; else notok "$1"; fi
}
bad_conf "-n refuses an unknown on-* action" "on-bogus must be" 'on-bogus = discard'
bad_conf "-n refuses an unknown mode" "mode must be" 'mode = sideways'
bad_conf "-n refuses a bad outbound-require-dime entry" "outbound-require-dime" 'outbound-require-dime = {"not a domain"}'
sed 's|socket = "unix:|socket = "inet:127.0.0.1:|' main.conf >bad.conf
if ! "$MILTER" -n -c bad.conf >out.txt 2>err.txt && has "libmilter syntax" err.txt; then ok "-n refuses a socket without a libmilter type"; else notok "-n refuses a socket without a libmilter type"; fi
sed 's|"::1"|"::1", "10.0.0.0/33"|' main.conf >bad.conf
if ! "$MILTER" -n -c bad.conf >out.txt 2>err.txt && has "trusted-networks" err.txt; then ok "-n refuses a bad trusted network"; else notok "-n refuses a bad trusted network"; fi

# the sender-login-map (dime-milter(8)): dave may send as bob; the rest of b.test only b-admin
cat >login.map <<'MAP'
# owner map for b.test
bob@b.test      dave
@b.test         b-admin
MAP
sed "s|  log-why = true|  log-why = true\n  sender-login-map = \"$T/login.map\"|" main.conf >sender.conf
if "$MILTER" -n -c sender.conf >out.txt 2>err.txt; then ok "-n accepts a sender-login-map"; else notok "-n accepts a sender-login-map"; fi
printf 'bob@b.test dave\nbob@b.test\n' >bad.map
sed "s|/login.map|/bad.map|" sender.conf >bad.conf
if ! "$MILTER" -n -c bad.conf >out.txt 2>err.txt && has "bad.map:2: bob@b.test: no login" err.txt; then ok "-n refuses a sender-login-map entry without a login, naming file and line"; else notok "-n refuses a sender-login-map entry without a login, naming file and line"; fi
sed "s|\"$T/login.map\"|\"login.map\"|" sender.conf >bad.conf
if ! "$MILTER" -n -c bad.conf >out.txt 2>err.txt && has "sender-login-map must be an absolute path" err.txt; then ok "-n refuses a relative sender-login-map"; else notok "-n refuses a relative sender-login-map"; fi

# ---- services ----
"$KVD" -c main.conf -f >kv.log 2>&1 &
PIDS+=($!)
wait_sock "$T/kv.sock" $! || die "keyvault did not start"
python3 "$SCEN/fake_relay.py" "$T/lookup.sock" "$T/submit.sock" "$T/table" "$T/spool" \
    >relay.log 2>&1 &
PIDS+=($!)
wait_sock "$T/lookup.sock" $! && wait_sock "$T/submit.sock" $! || die "fake relay did not start"

# run_mt NAME LUA CONF [VAR=VALUE...]: one miltertest run; each "ok:" line it prints becomes
# a TAP line, and the run passes only with the final *** PASS
run_mt() {
    local name=$1 lua=$2 conf=$3 rc=0
    shift 3
    local defs=(-D "MILTER=$MILTER" -D "CONF=$T/$conf" -D "SOCK=unix:$T/milter.sock"
        -D "DATA=$T/data" -D "SPOOL=$T/spool" -D "AUTHSERV=$AUTHSERV"
        -D "ALICE_FP=$(fp a/alice.signet)" -D "AORG_FP=$(fp a/org.signet)")
    for d in "$@"; do defs+=(-D "$d"); done
    miltertest "${defs[@]}" -s "$SCEN/$lua" >"$name.log" 2>&1 || rc=$?
    while read -r line; do ok "$name: $line"; done < <(sed -n 's/^ok: //p' "$name.log")
    if [ $rc -eq 0 ] && grep -q '^\*\*\* PASS' "$name.log"; then
        ok "$name: every scenario passed"
    else
        cp "$name.log" out.txt
        : >err.txt
        grep -e '\*\*\* FAIL' -e 'dime-milter:' "$name.log" | tail -15 >out.txt
        notok "$name: miltertest exit $rc"
    fi
}
run_mt main t-main.lua main.conf
run_mt policy t-policy.lua policy.conf
run_mt sender t-sender.lua sender.conf
run_mt keyvault-down t-down.lua kvdown.conf DOWN=keyvault
run_mt relay-down t-down.lua relaydown.conf DOWN=relay

# ---- what the relay received ----
if [ -f spool/1.request ] && grep -qx 'queue-id OUTQID1' spool/1.request &&
    grep -qx 'message-id <milter-test-2@b.test>' spool/1.request &&
    grep -q '^message bob@b.test alice@a.test ' spool/1.request; then
    ok "submission names the queue id, the Message-ID, the sender and the recipient"
else
    cp spool/1.request out.txt 2>/dev/null
    notok "submission names the queue id, the Message-ID, the sender and the recipient"
fi
# the relay's origin step (b.test's org key), then alice opens it
if "$DM" origin-sign --origin-key b/org.key --author-signet b/bob.signet \
    --origin-signet b/org.signet -i "spool/1.alice@a.test.dmsg" -o final.dmsg >out.txt 2>err.txt &&
    "$DM" decrypt --as recipient --key a/alice.key --author-signet b/bob.signet \
        --origin-signet b/org.signet -i final.dmsg -o opened.eml >out.txt 2>err.txt &&
    cmp -s opened.eml data/out.eml; then
    ok "the submitted D/MIME opens for alice as the exact message bob sent"
else
    notok "the submitted D/MIME opens for alice as the exact message bob sent"
fi
if grep -q 'Hello Alice' "spool/1.alice@a.test.dmsg" || grep -q 'DIME milter outbound' "spool/1.alice@a.test.dmsg"; then
    notok "the submitted D/MIME does not hold the subject or body in clear"
else
    ok "the submitted D/MIME does not hold the subject or body in clear"
fi

# ---- logs ----
cat main.log policy.log sender.log keyvault-down.log relay-down.log | grep 'dime-milter\[' >milter.log
if grep -q 'OUTQID1: outbound rcpt=1 domain=a.test outcome=secure route=dime' milter.log &&
    grep -q 'OUTQID1: outbound submitted=1 submission=0000000000000001' milter.log; then
    ok "decisions are logged with the queue id"
else
    tail -20 milter.log >out.txt
    notok "decisions are logged with the queue id"
fi
if grep -q 'outcome=bogus event=bogus action=tempfail reason="signature expired for \*@bogus.test"' milter.log; then
    ok "text from elsewhere is logged with the addresses in it masked"
else
    notok "text from elsewhere is logged with the addresses in it masked"
fi
if grep -q 'route=legacy downgrade=yes action=accept downgrades=1' milter.log; then
    ok "the downgrade to legacy SMTP is logged and counted"
else
    notok "the downgrade to legacy SMTP is logged and counted"
fi
ADDRS=(-e 'alice@' -e 'al@' -e 'carol@' -e 'eve@' -e 'mallory@' -e 'nobody@' -e 'dave@' -e 'bob@' -e 'x@')
if grep -q "${ADDRS[@]}" -e 'DIME milter' -e 'secret body' -e 'Hello' milter.log; then
    grep "${ADDRS[@]}" -e 'DIME milter' -e 'secret body' -e 'Hello' milter.log | head -5 >out.txt
    notok "logs hold no address of another party, subject or content"
else
    ok "logs hold no address of another party, subject or content"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
