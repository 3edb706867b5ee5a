#!/usr/bin/env bash
# dime-milter behind a real Postfix (a private instance for b.test on loopback), TAP output:
# what miltertest cannot show - header indexes and SMFIP_HDR_LEADSPC as Postfix applies them,
# forged Authentication-Results with our authserv-id deleted on the port-25-like listener and
# from outbound mail (the field gone from the mailbox, another authserv-id's kept),
# the deletion of recipients and of Postfix's copy, and 4xx replies reaching the SMTP client;
# repeated injections (X-DIME-Injection) discarded for a converted and an untouched wrapper,
# a new generation delivered, the field from a client outside injection-clients ignored.
#
# Services (every one stopped by its PID): dime-keyvaultd for b.test, the relay stand-in
# tests/milter/fake_relay.py, dime-milter, and Postfix with two milter listeners: the
# injection listener (where dime-relayd delivers inbound wrappers) and a submission listener
# (clients in trusted-networks count as outbound senders). Mail is sent with swaks.
#
# usage: test_milter_postfix.sh MILTER KEYVAULTD DIMECTL DIME-SIGNET DIME-MESSAGE
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
source "$HERE/lib/postfix.sh"

for t in postfix swaks python3 ss script; do
    if ! command -v "$t" >/dev/null; then
        if [ -n "${DIME_TESTS_STRICT:-}" ]; then
            echo "Bail out! $t is not installed (DIME_TESTS_STRICT is set)"
            exit 1
        fi
        echo "1..0 # SKIP $t is not installed"
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    echo "1..0 # SKIP needs root (the Postfix master)"
    exit 0
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/dime-milter-pf.XXXXXX")
chmod 755 "$T"
PIDS=()
KV_PID=
cleanup() {
    local p
    pf_stop_all
    for p in "${PIDS[@]}" $KV_PID; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}" $KV_PID; do wait "$p" 2>/dev/null; done
    if [ "${KEEP:-0}" = 1 ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
cd "$T"
die() {
    echo "Bail out! $*"
    for f in "$T"/*.log "$T"/pf/maillog; do [ -s "$f" ] && tail -5 "$f" | sed "s|^|# $(basename "$f"): |"; done
    exit 1
}
source "$SCEN/fixture.sh"
fixture_setup

INJ=$(pick_port) && SUB=$(pick_port) && SMTP=$(pick_port) && MX=$(pick_port) || die "no free port"
[ "$(printf '%s\n' "$INJ" "$SUB" "$SMTP" "$MX" | sort -u | wc -l)" = 4 ] || die "port clash, run again"

# ---- services ----
kv_start() {
    "$KVD" -c main.conf -f >>kv.log 2>&1 &
    KV_PID=$!
    wait_sock "$T/kv.sock" $KV_PID || die "keyvault did not start"
}
kv_start
python3 "$SCEN/fake_relay.py" "$T/lookup.sock" "$T/submit.sock" "$T/table" "$T/spool" \
    >relay.log 2>&1 &
PIDS+=($!)
wait_sock "$T/lookup.sock" $! && wait_sock "$T/submit.sock" $! || die "fake relay did not start"
"$MILTER" -f -c main.conf >milter.log 2>&1 &
MILTER_PID=$!
PIDS+=($MILTER_PID)
wait_sock "$T/milter.sock" $MILTER_PID || die "dime-milter did not start"
chmod 666 "$T/milter.sock" # postfix (its own user) connects to it

pf_create "$T/pf" 127.0.0.1 "$SMTP" b.test bob carol dave
pf_listener "$T/pf" 127.0.0.1 "$INJ" "unix:$T/milter.sock"
pf_listener "$T/pf" 127.0.0.1 "$SUB" "unix:$T/milter.sock"
pf_listener "$T/pf" 127.0.0.1 "$MX" "unix:$T/milter.sock" # port 25, as README.postfix says
pf_start "$T/pf" 2>pf-start.log || die "postfix: $(head -3 pf-start.log)"

send() { # send PORT FROM RCPTS FILE: swaks, output in out.txt, exit status of swaks
    swaks --server 127.0.0.1 --port "$1" --from "$2" --to "$3" --data "@$4" \
        --helo client.b.test >out.txt 2>err.txt
}
# the header fields and body of a delivered message without trace fields, our A-R and the
# fields Postfix adds at delivery, with LF line ends
strip_trace() {
    awk 'BEGIN { skip = 0; body = 0 }
        body { print; next }
        /^$/ { body = 1; print; next }
        /^[ \t]/ { if (!skip) print; next }
        { skip = ($0 ~ /^(Received|Return-Path|Delivered-To|Authentication-Results|X-Original-To):/) }
        !skip { print }' "$1"
}

# ---- inbound: the wrapper for bob becomes alice's original message ----
if send "$INJ" alice@a.test bob@b.test data/wrap-bob.eml && pf_wait_mail "$T/pf" bob 1 20; then
    f=$(pf_mail_files "$T/pf" bob | head -1)
    tr -d '\r' <data/orig.eml >orig.lf
    strip_trace "$f" >got.lf
    if cmp -s got.lf orig.lf; then
        ok "inbound: bob's mailbox has alice's header fields and body byte for byte"
    else
        diff got.lf orig.lf | head -15 >out.txt
        notok "inbound: bob's mailbox has alice's header fields and body byte for byte"
    fi
    if grep -q "^Authentication-Results: $AUTHSERV; dime=pass header.from=alice@a.test (author signet $(fp a/alice.signet); origin a.test signet $(fp a/org.signet))" "$f"; then
        ok "inbound: Authentication-Results dime=pass names the author and both fingerprints"
    else
        grep -A2 '^Authentication-Results' "$f" >out.txt
        notok "inbound: Authentication-Results dime=pass names the author and both fingerprints"
    fi
    if grep -q '^Received: from client.b.test' "$f" && grep -q '^Received: from dx.a.test' "$f" &&
        ! grep -q 'application/x-dime' "$f"; then
        ok "inbound: trace fields stay, the wrapper's fields are gone"
    else
        head -20 "$f" >out.txt
        notok "inbound: trace fields stay, the wrapper's fields are gone"
    fi
else
    notok "inbound: the wrapper for bob was accepted and delivered"
fi

# ---- inbound: Paranoid dave keeps the wrapper ----
if send "$INJ" alice@a.test dave@b.test data/wrap-dave.eml && pf_wait_mail "$T/pf" dave 1 20 &&
    grep -q 'application/x-dime' "$(pf_mail_files "$T/pf" dave | head -1)" &&
    ! grep -q 'dime=pass' "$(pf_mail_files "$T/pf" dave | head -1)"; then
    ok "inbound: a Paranoid recipient gets the wrapper untouched"
else
    notok "inbound: a Paranoid recipient gets the wrapper untouched"
fi

# ---- inbound: a repeated injection (same X-DIME-Injection from the relay's address) is
# discarded, for a Trustful (converted) and a Paranoid (untouched) recipient; a new
# generation of the same transaction is delivered; the field from another client is ignored
declare -A TID
for u in bob dave; do
    TID[$u]=$(head -c 10 /dev/urandom | od -An -tx1 | tr -d ' \n')
    wrap $u.dmsg $u@b.test data/inj-$u-1.eml "X-DIME-Injection: ${TID[$u]}.1"
    wrap $u.dmsg $u@b.test data/inj-$u-2.eml "X-DIME-Injection: ${TID[$u]}.2"
done
discards() { grep -c "injection=$1 action=discard reason=\"repeated injection\"" milter.log; }
# send_n USER FILE EXPECTED-COUNT: sent with a 250, then USER has exactly that many messages
send_n() {
    send "$INJ" alice@a.test "$1@b.test" "$2" &&
        pf_wait_mail "$T/pf" "$1" "$3" 20 && sleep 1 && [ "$(pf_mail_count "$T/pf" "$1")" = "$3" ]
}
for u in bob dave; do
    c=$(pf_mail_count "$T/pf" "$u")
    if send_n "$u" "data/inj-$u-1.eml" $((c + 1)); then
        ok "injection $u: the first attempt is delivered"
    else
        notok "injection $u: the first attempt is delivered"
    fi
    d0=$(discards "${TID[$u]}.1")
    if send_n "$u" "data/inj-$u-1.eml" $((c + 1)) && [ "$(discards "${TID[$u]}.1")" = $((d0 + 1)) ] &&
        grep -q 'milter-discard' pf/maillog; then
        ok "injection $u: the same transaction and generation again gets 250 and is discarded"
    else
        notok "injection $u: the same transaction and generation again gets 250 and is discarded"
    fi
    if send_n "$u" "data/inj-$u-2.eml" $((c + 2)); then
        ok "injection $u: the same transaction with a new generation is delivered"
    else
        notok "injection $u: the same transaction with a new generation is delivered"
    fi
done
if grep -q "^X-DIME-Injection: ${TID[dave]}.2" $(pf_mail_files "$T/pf" dave) &&
    ! grep -q "^X-DIME-Injection:" $(pf_mail_files "$T/pf" bob); then
    ok "injection: the Paranoid recipient's wrapper is untouched, the converted message has no such field"
else
    notok "injection: the Paranoid recipient's wrapper is untouched, the converted message has no such field"
fi
# a client outside injection-clients (127.0.0.1 here) naming a recorded value: delivered
c=$(pf_mail_count "$T/pf" dave)
d0=$(discards "${TID[dave]}.1")
if swaks --server 127.0.0.1 --port "$INJ" --local-interface 127.0.0.5 --from alice@a.test \
    --to dave@b.test --data @data/inj-dave-1.eml --helo other.b.test >out.txt 2>err.txt &&
    pf_wait_mail "$T/pf" dave $((c + 1)) 20 && [ "$(discards "${TID[dave]}.1")" = "$d0" ]; then
    ok "injection: the field from another client address suppresses nothing"
else
    notok "injection: the field from another client address suppresses nothing"
fi
if python3 - injections.db "${TID[bob]}" "${TID[dave]}" <<'PY'; then
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = [r for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        for r in db.execute("SELECT * FROM " + t)]
text = " ".join(v.hex() if isinstance(v, bytes) else str(v) for r in rows for v in r)
sys.exit(0 if len(rows) >= 4 and sys.argv[2] not in text and sys.argv[3] not in text
         and "b.test" not in text else 1)
PY
    ok "injection: the record holds neither the transaction id nor an address"
else
    notok "injection: the record holds neither the transaction id nor an address"
fi

# ---- inbound: a tampered wrapper is refused with 451 (default on-verify-failure) ----
if ! send "$INJ" alice@a.test bob@b.test data/wrap-tampered.eml &&
    grep -q '451 4.7.5 DIME: D/MIME message failed verification' out.txt; then
    ok "inbound: a tampered wrapper gets 451 4.7.5 at end of data"
else
    notok "inbound: a tampered wrapper gets 451 4.7.5 at end of data"
fi

# ---- outbound: bob to alice (DIME) and carol (local) ----
if send "$SUB" bob@b.test alice@a.test,carol@b.test data/out.eml && pf_wait_mail "$T/pf" carol 1 20; then
    ok "outbound: accepted; the local recipient got the message"
    # swaks ends the data with one more line end; trailing empty lines are not compared
    notail() { sed -e ':a' -e '/^\n*$/{$d;N;ba' -e '}' "$1"; }
    tr -d '\r' <data/out.eml >out.lf
    strip_trace "$(pf_mail_files "$T/pf" carol | head -1)" >carol.lf
    if cmp -s <(notail carol.lf) <(notail out.lf); then ok "outbound: the local copy is unchanged"; else
        diff carol.lf out.lf | head >out.txt
        notok "outbound: the local copy is unchanged"
    fi
    if [ -f "spool/1.alice@a.test.dmsg" ] && grep -q '^message bob@b.test alice@a.test ' spool/1.request &&
        ! grep -q 'carol' spool/1.request; then
        ok "outbound: only the DIME recipient went to the relay"
    else
        notok "outbound: only the DIME recipient went to the relay"
    fi
    # Postfix must not still hold a copy for alice (a.test has no route here: it would wait)
    sleep 1
    if [ "$(pf_queue_count "$T/pf")" = 0 ] && ! grep -q 'to=<alice@a.test>' pf/maillog; then
        ok "outbound: Postfix kept no copy for the DIME recipient"
    else
        postqueue -c "$T/pf/etc" -p >out.txt 2>&1
        notok "outbound: Postfix kept no copy for the DIME recipient"
    fi
    # the submitted message is what bob sent: the same as carol's copy without the trace
    # fields (Postfix does not show milters the Received field it adds)
    if "$DM" origin-sign --origin-key b/org.key --author-signet b/bob.signet \
        --origin-signet b/org.signet -i "spool/1.alice@a.test.dmsg" -o final.dmsg >out.txt 2>err.txt &&
        "$DM" decrypt --as recipient --key a/alice.key --author-signet b/bob.signet \
            --origin-signet b/org.signet -i final.dmsg -o opened.eml >out.txt 2>err.txt; then
        tr -d '\r' <opened.eml | awk '/^Received:/ { r = 1; next } r && /^[ \t]/ { next } { r = 0; print }' >opened.lf
        # byte for byte what Postfix delivered to carol from the same transaction
        if cmp -s opened.lf carol.lf; then
            ok "outbound: alice opens exactly the message Postfix delivered to carol"
        else
            diff opened.lf carol.lf | head >out.txt
            notok "outbound: alice opens exactly the message Postfix delivered to carol"
        fi
    else
        notok "outbound: alice opens exactly the message Postfix delivered to carol"
    fi
else
    notok "outbound: accepted; the local recipient got the message"
fi

# ---- outbound, only DIME recipients: Postfix discards its copy ----
before=$(pf_mail_count "$T/pf" carol)
if send "$SUB" bob@b.test alice@a.test data/out.eml && [ -f "spool/2.alice@a.test.dmsg" ]; then
    sleep 1
    if [ "$(pf_queue_count "$T/pf")" = 0 ] && grep -q 'milter-discard' pf/maillog; then
        ok "outbound: with no recipient left, Postfix discards its copy"
    else
        grep milter pf/maillog | tail -3 >out.txt
        notok "outbound: with no recipient left, Postfix discards its copy"
    fi
else
    notok "outbound: a message to a DIME recipient only is accepted and submitted"
fi

# ---- failures reach the client as 4xx, nothing is lost ----
if ! send "$SUB" bob@b.test eve@bogus.test data/out.eml && grep -q '451 4.7.1 DIME: DIME record or signets of a party failed validation' out.txt; then
    ok "outbound: a bogus recipient domain gets 451 4.7.1, never plain SMTP"
else
    notok "outbound: a bogus recipient domain gets 451 4.7.1, never plain SMTP"
fi
kill "$KV_PID" && wait "$KV_PID" 2>/dev/null
KV_PID=
if ! send "$SUB" bob@b.test alice@a.test data/out.eml && grep -q '451 4.3.0 DIME: keyvault unavailable' out.txt &&
    [ ! -f "spool/3.alice@a.test.dmsg" ]; then
    ok "outbound: keyvault stopped: the client gets 451 4.3.0 and nothing is submitted"
else
    notok "outbound: keyvault stopped: the client gets 451 4.3.0 and nothing is submitted"
fi
if ! send "$INJ" alice@a.test bob@b.test data/wrap-bob.eml && grep -q '451 4.3.0 DIME: keyvault unavailable' out.txt; then
    ok "inbound: keyvault stopped: the relay gets 451 4.3.0 and keeps the message"
else
    notok "inbound: keyvault stopped: the relay gets 451 4.3.0 and keeps the message"
fi
kv_start
if send "$SUB" bob@b.test alice@a.test data/out.eml && [ -f "spool/3.alice@a.test.dmsg" ]; then
    ok "outbound: keyvault back: the retry goes through"
else
    notok "outbound: keyvault back: the retry goes through"
fi
# the relay commits and dies before its reply: the milter sends the same request again (same
# key) and takes the relay's "duplicate" answer, instead of a 4xx after which the client's new
# attempt (new queue id, new key) would be a second copy (found by test_chaos.sh)
sed 's/<milter-test-2@/<milter-drop-1@/' data/out.eml >data/drop1.eml
sed 's/<milter-test-2@/<milter-drop-2@/' data/out.eml >data/drop2.eml
touch spool/DROP
if send "$SUB" bob@b.test alice@a.test data/drop1.eml && [ -f "spool/4.alice@a.test.dmsg" ] &&
    [ ! -e spool/DROP ] && ! ls spool/5.* >/dev/null 2>&1 &&
    grep -q 'submission sent 1 more time after no reply from the relay: 250 duplicate' milter.log; then
    ok "outbound: no reply from the relay: the request goes again and its duplicate 250 is taken"
else
    grep 'more time' milter.log >>out.txt
    notok "outbound: no reply from the relay: the request goes again and its duplicate 250 is taken"
fi
# the relay commits, but the client gets a 4xx all the same (here the relay's own 451; in
# test_chaos.sh the milter killed after the relay's 250): the client's new attempt, with a new
# Postfix queue id, goes to the relay under the first one, as the same submission
echo '451 4.3.0 committed, but the client is told to try again' >spool/DROP
if ! send "$SUB" bob@b.test alice@a.test data/drop2.eml && [ -f "spool/5.alice@a.test.dmsg" ] &&
    send "$SUB" bob@b.test alice@a.test data/drop2.eml && ! ls spool/6.* >/dev/null 2>&1 &&
    grep -q 'outbound: a new attempt of the message first seen as' milter.log &&
    grep -q 'outbound submitted=1 submission=0000000000000005 duplicate=yes' milter.log; then
    ok "outbound: a client's new attempt after a 4xx is the same submission, not a second copy"
else
    grep 'first seen\|duplicate' milter.log >>out.txt
    notok "outbound: a client's new attempt after a 4xx is the same submission, not a second copy"
fi

# The milter keeps its keyvault connection for the SMTP session's next message: two messages
# in one session with the keyvault restarted between them both go through (the stale
# connection is replaced, the second message is not failed for it).
python3 - "$SUB" data/out.eml "$T/kv-restarted" >two.txt 2>&1 <<'PY' &
import os, smtplib, sys, time
port, path, flag = int(sys.argv[1]), sys.argv[2], sys.argv[3]
msg = open(path, 'rb').read()
s = smtplib.SMTP('127.0.0.1', port, local_hostname='client.b.test')
r1 = s.sendmail('bob@b.test', ['alice@a.test'], msg)
print('sent1', flush=True)
for _ in range(300):
    if os.path.exists(flag):
        break
    time.sleep(0.1)
r2 = s.sendmail('bob@b.test', ['alice@a.test'], msg)
s.quit()
print('sent2', r1, r2, flush=True)
PY
TWO=$!
for _ in $(seq 1 300); do grep -q sent1 two.txt && break; sleep 0.1; done
kill "$KV_PID" && wait "$KV_PID" 2>/dev/null
kv_start
touch "$T/kv-restarted"
if wait "$TWO" && grep -q '^sent2 {} {}' two.txt && [ -f "spool/6.alice@a.test.dmsg" ] &&
    [ -f "spool/7.alice@a.test.dmsg" ]; then
    ok "outbound: two messages in one session around a keyvault restart both go through"
else
    sed 's/^/# /' two.txt
    notok "outbound: two messages in one session around a keyvault restart both go through"
fi

# ---- Authentication-Results claiming our authserv-id: gone from the mailbox ----
crlf() { sed 's/$/\r/'; }
{
    echo "Authentication-Results: mx.other.test; dkim=pass header.d=ext.test"
    echo "Authentication-Results: $AUTHSERV; dime=pass header.from=alice@a.test"
    echo "Authentication-Results: (forged)"
    echo "  ${AUTHSERV^^} 1; dime=pass"
    tr -d '\r' <data/plain.eml
} | crlf >forged-ar.eml
c=$(pf_mail_count "$T/pf" bob)
if send "$MX" x@ext.test bob@b.test forged-ar.eml && pf_wait_mail "$T/pf" bob $((c + 1)) 20; then
    f=$(pf_mail_files "$T/pf" bob | xargs ls -t | head -1)
    if grep -q 'not for DIME' "$f" && ! grep -qi "dime=pass" "$f" &&
        [ "$(grep -c '^Authentication-Results:' "$f")" = 1 ] &&
        grep -q '^Authentication-Results: mx.other.test; dkim=pass header.d=ext.test' "$f"; then
        ok "port 25: a forged dime=pass with our authserv-id is gone from the mailbox, another authserv-id's field stays"
    else
        grep -A1 '^Authentication-Results' "$f" >out.txt
        notok "port 25: a forged dime=pass with our authserv-id is gone from the mailbox, another authserv-id's field stays"
    fi
else
    notok "port 25: a message with a forged Authentication-Results is delivered"
fi
# outbound with a local recipient: neither carol's copy nor the D/MIME for alice has it
{
    echo "Authentication-Results: $AUTHSERV; dime=pass header.from=bob@b.test"
    tr -d '\r' <data/out.eml
} | crlf >out-ar.eml
c=$(pf_mail_count "$T/pf" carol)
ns=$(ls spool | grep -c 'alice@a.test.dmsg$')
if send "$SUB" bob@b.test alice@a.test,carol@b.test out-ar.eml && pf_wait_mail "$T/pf" carol $((c + 1)) 20 &&
    [ -f "spool/$((ns + 1)).alice@a.test.dmsg" ]; then
    f=$(pf_mail_files "$T/pf" carol | xargs ls -t | head -1)
    if ! grep -q '^Authentication-Results' "$f" &&
        "$DM" origin-sign --origin-key b/org.key --author-signet b/bob.signet \
            --origin-signet b/org.signet -i "spool/$((ns + 1)).alice@a.test.dmsg" -o final-ar.dmsg >out.txt 2>err.txt &&
        "$DM" decrypt --as recipient --key a/alice.key --author-signet b/bob.signet \
            --origin-signet b/org.signet -i final-ar.dmsg -o opened-ar.eml >out.txt 2>err.txt &&
        ! grep -q 'Authentication-Results' opened-ar.eml && grep -q 'Hello Alice' opened-ar.eml; then
        ok "outbound: a forged Authentication-Results is in neither the local copy nor the D/MIME"
    else
        notok "outbound: a forged Authentication-Results is in neither the local copy nor the D/MIME"
    fi
else
    notok "outbound: a message with a forged Authentication-Results is accepted and submitted"
fi

# a clean stop (libmilter takes up to 5 s); under the sanitizers a leak or error report
# makes the exit status non-zero
pf_stop "$T/pf"
kill "$MILTER_PID"
wait "$MILTER_PID"
rc=$?
if [ $rc -eq 0 ] && [ ! -e "$T/milter.sock" ]; then
    ok "dime-milter stops cleanly on SIGTERM and removes its socket"
else
    tail -20 milter.log >out.txt
    notok "dime-milter stops cleanly on SIGTERM and removes its socket (exit $rc)"
fi
if grep -q -e 'alice@' -e 'eve@' -e 'DIME milter' -e 'Hello' milter.log; then
    grep -e 'alice@' -e 'eve@' -e 'DIME milter' -e 'Hello' milter.log | head -5 >out.txt
    notok "the milter's log holds no address of another party, subject or content"
else
    ok "the milter's log holds no address of another party, subject or content"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
