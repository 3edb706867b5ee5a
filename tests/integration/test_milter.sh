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
wait_sock() { # wait_sock PATH PID
    for _ in $(seq 200); do
        [ -S "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
free_port() { ! ss -Htln | awk '{print $4}' | grep -qE "[:.]$1\$"; }
pick_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 30000))
        if free_port "$p"; then echo "$p"; return 0; fi
    done
    return 1
}

# ---- keys: a.test offline, b.test in the keyvault ----
mkdir -p a b data spool table
{
    "$DS" org-generate a.test -k a/org.key -s a/org.signet &&
    "$DS" org-generate b.test -k b/org.key -s b/org.signet &&
    "$DS" user-request alice@a.test -k a/alice.key -r a/alice.ssr &&
    "$DS" sign a/alice.ssr -k a/org.key -i alice@a.test -o a/alice.signet &&
    "$DS" user-request dave@b.test -k b/dave.key -r b/dave.ssr
} >setup.log 2>&1 || die "dime-signet setup"
me=$(id -u)
head -c 32 /dev/urandom >master.key
chmod 600 master.key
AUTHSERV=mx.b.test
milter_conf() { # milter_conf FILE KV-SOCKET LOOKUP-SOCKET SUBMIT-SOCKET [domain options...]
    local f=$1 kv=$2 lk=$3 sb=$4
    shift 4
    cat >"$f" <<CONF
keyvault {
  socket = "$T/kv.sock"
  database = "$T/kv.db"
  master-key-file = "$T/master.key"
  pid-file = "$T/kv.pid"
  allow-sign = {"$me"}
  allow-kek = {"$me"}
  allow-unwrap = {"$me"}
  allow-signet = {"$me"}
  allow-account = {"$me"}
}
milter {
  socket = "unix:$T/milter.sock"
  keyvault-socket = "$kv"
  relay-lookup-socket = "$lk"
  relay-submit-socket = "$sb"
  trusted-networks = {"127.0.0.0/8", "::1"}
  authserv-id = "$AUTHSERV"
  pid-file = ""
  timeout = 10
  log-why = true
}
domain "b.test" {
$(printf '  %s\n' "$@")
}
CONF
}
milter_conf main.conf "$T/kv.sock" "$T/lookup.sock" "$T/submit.sock"
milter_conf policy.conf "$T/kv.sock" "$T/lookup.sock" "$T/submit.sock" \
    'on-no-signet = accept' 'on-verify-failure = accept' 'on-bogus = accept' \
    'on-dns-error = reject' 'outbound-require-dime = {"nodime2.test"}'
milter_conf kvdown.conf "$T/no-kv.sock" "$T/lookup.sock" "$T/submit.sock"
milter_conf relaydown.conf "$T/kv.sock" "$T/no-lookup.sock" "$T/no-submit.sock"
{
    "$CTL" -c main.conf domain import --key b/org.key --signet b/org.signet &&
    "$CTL" -c main.conf user add bob@b.test &&
    "$CTL" -c main.conf user add dave@b.test --mode paranoid --ssr b/dave.ssr &&
    "$CTL" -c main.conf signet show bob@b.test --armor >b/bob.signet &&
    "$CTL" -c main.conf signet show dave@b.test --armor >b/dave.signet
} >>setup.log 2>&1 || die "dimectl setup"

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

# ---- messages ----
crlf() { sed 's/$/\r/'; }
crlf >data/orig.eml <<'MSG'
From: Alice <alice@a.test>
To: Bob <bob@b.test>
Subject: DIME milter test
Date: Thu, 26 Nov 2026 10:00:00 +0000
Message-ID: <milter-test-1@a.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Hello Bob,
this is the secret body of the milter test.
MSG
crlf >data/out.eml <<'MSG'
From: Bob <bob@b.test>
To: Alice <alice@a.test>
Subject: DIME milter outbound
Date: Thu, 26 Nov 2026 11:00:00 +0000
Message-ID: <milter-test-2@b.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Hello Alice,
the outbound body, in
  three lines.
MSG
crlf >data/plain.eml <<'MSG'
From: x@ext.test
To: bob@b.test
Subject: plain mail

not for DIME
MSG
encrypt() { # encrypt RECIPIENT-SIGNET OUT
    "$DM" encrypt --author-signet a/alice.signet --author-key a/alice.key \
        --origin-signet a/org.signet --origin-key a/org.key --dest-signet b/org.signet \
        --recipient-signet "$1" -i data/orig.eml -o "$2"
}
wrap() { # wrap DMSG RCPT OUT [extra header line]: the wrapper as dime-relayd injects it
    {
        printf 'Received: from dx.a.test by relay.b.test; Thu, 26 Nov 2026 10:00:01 +0000\r\n'
        [ -n "${4:-}" ] && printf '%s\r\n' "$4"
        printf 'From: <alice@a.test>\r\nTo: <%s>\r\nSubject: DIME message\r\n' "$2"
        printf 'MIME-Version: 1.0\r\nContent-Type: application/x-dime\r\n'
        printf 'Content-Transfer-Encoding: base64\r\n\r\n'
        base64 -w 76 "$1" | crlf
    } >"$3"
}
{
    encrypt b/bob.signet bob.dmsg && encrypt b/dave.signet dave.dmsg
} >>setup.log 2>&1 || die "dime-message encrypt"
wrap bob.dmsg bob@b.test data/wrap-bob.eml
wrap dave.dmsg dave@b.test data/wrap-dave.eml
# one byte changed in the middle of the encrypted data
python3 - bob.dmsg tampered.dmsg <<'PY' || die "tamper"
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0x01
open(sys.argv[2], "wb").write(b)
PY
wrap tampered.dmsg bob@b.test data/wrap-tampered.eml
wrap tampered.dmsg bob@b.test data/wrap-tampered-ar.eml \
    "Authentication-Results: $AUTHSERV; dime=pass header.from=alice@a.test"
# a message whose Author is at bogus.test (the same keys, another name)
"$DS" user-request mallory@bogus.test -k a/mallory.key -r a/mallory.ssr >>setup.log 2>&1 &&
    "$DS" org-generate bogus.test -k a/bogus.key -s a/bogus.signet >>setup.log 2>&1 &&
    "$DS" sign a/mallory.ssr -k a/bogus.key -i mallory@bogus.test -o a/mallory.signet >>setup.log 2>&1 &&
    "$DM" encrypt --author-signet a/mallory.signet --author-key a/mallory.key \
        --origin-signet a/bogus.signet --origin-key a/bogus.key --dest-signet b/org.signet \
        --recipient-signet b/bob.signet -i data/orig.eml -o bogus.dmsg >>setup.log 2>&1 ||
    die "bogus.test message"
wrap bogus.dmsg bob@b.test data/wrap-bogus.eml
cp "$SCEN/common.lua" data/

# ---- the relay's lookup table ----
b64() { grep -v -e '^-----' -e '^=' "$1" | tr -d '\n'; }
fp() { "$DS" fingerprint "$1" --kind crypto; }
{
    echo "outcome=secure"
    echo "dnssec=secure"
    echo "org-fp=$(fp a/org.signet)"
    echo "org-signet=$(b64 a/org.signet)"
    echo "user-fp=$(fp a/alice.signet)"
    echo "user-signet=$(b64 a/alice.signet)"
} >table/alice@a.test
{
    echo "outcome=secure"
    echo "org-fp=$(fp a/org.signet)"
    echo "org-signet=$(b64 a/org.signet)"
} >table/a.test
printf 'outcome=not-dime\nreason=no record (DNSSEC: secure)\n' >table/carol@nodime.test
printf 'outcome=not-dime\nreason=no record (DNSSEC: secure)\n' >table/x@nodime2.test
printf 'outcome=bogus\nreason=signature expired\n' >table/eve@bogus.test
printf 'outcome=bogus\nreason=signature expired\n' >table/mallory@bogus.test
printf 'outcome=bogus\nreason=signature expired\n' >table/bogus.test
printf 'outcome=tempfail\nreason=DNS timeout\n' >table/t@slow.test
echo CLOSE >table/zed@dead.test

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
cat main.log policy.log keyvault-down.log relay-down.log | grep 'dime-milter:' >milter.log
if grep -q 'OUTQID1: outbound rcpt=1 domain=a.test outcome=secure route=dime' milter.log &&
    grep -q 'OUTQID1: outbound submitted=1 submission=0000000000000001' milter.log; then
    ok "decisions are logged with the queue id"
else
    tail -20 milter.log >out.txt
    notok "decisions are logged with the queue id"
fi
if grep -q 'route=legacy downgrade=yes action=accept downgrades=1' milter.log; then
    ok "the downgrade to legacy SMTP is logged and counted"
else
    notok "the downgrade to legacy SMTP is logged and counted"
fi
if grep -q -e 'alice@' -e 'carol@' -e 'eve@' -e 'DIME milter' -e 'secret body' -e 'Hello' milter.log; then
    grep -e 'alice@' -e 'carol@' -e 'eve@' -e 'DIME milter' -e 'secret body' -e 'Hello' milter.log | head -5 >out.txt
    notok "logs hold no address of another party, subject or content"
else
    ok "logs hold no address of another party, subject or content"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
