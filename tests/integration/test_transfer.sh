#!/usr/bin/env bash
# Integration test of mail transfer between two dime-relayd (issue 6), TAP output.
#
# alice.test (127.0.0.2) and bob.test (127.0.0.3), each with a keyvault, a relayd and a
# private Postfix (lib/dime_env.sh, lib/postfix.sh); nsd serves the DNSSEC-signed zones.
# Messages are built and submitted as dime-milter does (xfer_submit, through SUBMIT.md);
# alice's relay origin-signs and delivers them over DMTP to bob's relay, which checks and
# commits them and injects them into bob's Postfix, which delivers to bob's Maildir.
#
# usage: test_transfer.sh KEYVAULTD DIMECTL RELAYD RELAYCTL XFER_SUBMIT
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KVD=$(abs "$1")
CTL=$(abs "$2")
RLD=$(abs "$3")
RLC=$(abs "$4")
SUB=$(abs "$5")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"
PEER="$HERE/dmtp_peer.py"

for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf script; do
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
RELAY_EXTRA="queue-lifetime = 25" env_init "$KVD" "$CTL" "$RLD" || die "setup failed"
A="-c $T/alice/dime.conf"
B="-c $T/bob/dime.conf"
PFA=$T/pf-alice
PFB=$T/pf-bob

submit() { "$SUB" -c "$T/alice/dime.conf" -f alice@alice.test "$@"; }
# wait_for SECONDS CMD...: until CMD succeeds
wait_for() {
    local t=$1 i
    shift
    for ((i = 0; i < t * 10; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}
queue_empty() { [ -z "$("$RLC" -c "$T/$1/dime.conf" queue list 2>/dev/null)" ]; }
bob_count() { pf_mail_count "$PFB" bob; }

# expiry: to down.test, whose DX never answers; checked at the end (queue-lifetime 25 s)
submit -t bob@bob.test -e x@down.test -q EXPIRE -m expire >out.txt 2>err.txt
grep -q "queued" out.txt && ok "submission to an unreachable domain is queued" ||
    notok "submission to an unreachable domain is queued"
T_EXPIRE=$(date +%s)

# ---- single message ----
submit -t bob@bob.test -q SINGLE -m single >out.txt 2>err.txt
grep -q "^0 250 2.0.0 queued [0-9a-f]\{16\} 1$" out.txt && ok "single message: submission 250 queued" ||
    notok "single message: submission 250 queued"
if pf_wait_mail "$PFB" bob 1 30; then ok "single message: delivered to bob's Maildir"; else
    notok "single message: delivered to bob's Maildir"
fi
F=$(pf_mail_files "$PFB" bob | head -1)
{ [ -n "$F" ] && grep -q '^Content-Type: application/x-dime' "$F" && grep -q '^To: <bob@bob.test>' "$F" &&
    grep -q '^X-DIME-Transaction: [0-9a-f]\{20\}' "$F"; } && ok "wrapper: application/x-dime, To, transaction id" ||
    notok "wrapper: application/x-dime, To, transaction id"
{ [ -n "$F" ] && ! grep -q 'single' "$F"; } && ok "wrapper: no subject or body in clear" ||
    notok "wrapper: no subject or body in clear"
[ -n "$F" ] && sed '1,/^$/d' "$F" >wrapped.b64 && base64 -d wrapped.b64 >wrapped.bin 2>/dev/null &&
    [ "$(head -c 2 wrapped.bin | xxd -p)" = 0737 ] &&
    ok "wrapper body is the base64 D/MIME message (magic 1847)" ||
    notok "wrapper body is the base64 D/MIME message (magic 1847)"
grep -q "deliver id=[0-9a-f]*\.1 qid=SINGLE0 domain=bob.test dx=dx.bob.test ip=127.0.0.3 port=$DXP status=sent remote-tid=" alice-relayd.log &&
    ok "alice's log: sent, with Postfix qid, the DX address it talked to and remote tid" ||
    notok "alice's log: sent, with Postfix qid, the DX address it talked to and remote tid"
grep -q "deliver domain=bob.test dx=dx.bob.test ip=127.0.0.3 port=$DXP connected" alice-relayd.log &&
    ok "alice's log: the DMTP connection to bob's DX, with its address" ||
    notok "alice's log: the DMTP connection to bob's DX, with its address"
# session_logged CONN IP WORD...: bob's relay logged "CONN ip=IP WORD" for each WORD, and
# every line of CONN names IP (waits up to 5 s for the disconnect: a session stays open 2 s).
# CONN is "dime-relayd[PID]: conn=N" (numbers start again when the relay restarts).
conn_of() { grep -o "dime-relayd\[[0-9]*\]: conn=[0-9]* ip=$1" bob-relayd.log | "$2" -1 | sed 's/ ip=.*//'; }
session_logged() {
    local c=$1 ip=$2 w
    shift 2
    [ -n "$c" ] || { echo "no connection found" >err.txt; return 1; }
    for _ in $(seq 100); do grep -qF "$c ip=$ip disconnect" bob-relayd.log && break; sleep 0.05; done
    for w in "$@"; do
        grep -qF "$c ip=$ip $w" bob-relayd.log || { echo "no '$c ip=$ip $w'" >err.txt; return 1; }
    done
    ! grep -F "$c " bob-relayd.log | grep -vF "$c ip=$ip " >err.txt
}
# alice's relay reaches 127.0.0.3 from the kernel's source address for it
src=$(ip -o route get 127.0.0.3 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
conn=$(conn_of "${src:-127.0.0.1} cmd=DATA code=250" head)
session_logged "$conn" "$src" connect tls= "cmd=EHLO code=250" "cmd=MAIL code=250" \
    "cmd=RCPT code=250" "inbound tid=" "cmd=DATA code=250" disconnect &&
    ok "bob's log: connect, TLS, each command and disconnect of alice's relay, with ip=$src" ||
    notok "bob's log: connect, TLS, each command and disconnect of alice's relay, with ip=$src"

# ---- idempotent resubmission ----
submit -t bob@bob.test -q SINGLE -m single >out.txt 2>err.txt
grep -q "^0 250 2.0.0 duplicate " out.txt && ok "same queue id + Message-ID + recipient: 250 duplicate" ||
    notok "same queue id + Message-ID + recipient: 250 duplicate"
sleep 2
[ "$(bob_count)" = 1 ] && ok "the duplicate was not delivered again" || notok "the duplicate was not delivered again"

# ---- the vaults close idle connections (idle-timeout 2 s in lib/dime_env.sh); the relays'
# kept ones are replaced and the next message goes through ----
sleep 3
grep -q 'result=closed reason="idle for 2 s (idle-timeout)"' "$T/alice-kv.log" &&
    ok "alice's keyvault closed the relay's idle kept connections" ||
    notok "alice's keyvault closed the relay's idle kept connections"
submit -t bob@bob.test -q IDLE -m after-idle >out.txt 2>err.txt
if pf_wait_mail "$PFB" bob 2 30; then ok "after the idle close: the next message is delivered"; else
    notok "after the idle close: the next message is delivered"
fi
! grep -q 'qid=IDLE0 .*status=deferred' "$T/alice-relayd.log" &&
    ok "after the idle close: no deferral on the way" ||
    notok "after the idle close: no deferral on the way"

# ---- 200 in parallel ----
before=$(bob_count)
submit -t bob@bob.test -q PAR -m par -n 200 -j 16 >out.txt 2>err.txt
[ "$(grep -c ' 250 2.0.0 queued ' out.txt)" = 200 ] && ok "200 parallel submissions: all 250" ||
    notok "200 parallel submissions: all 250"
if pf_wait_mail "$PFB" bob $((before + 200)) 180; then ok "200 messages delivered"; else
    echo "# bob has $(bob_count), wanted $((before + 200))"
    notok "200 messages delivered"
fi
n_tid=$(pf_mail_files "$PFB" bob | xargs grep -h '^X-DIME-Transaction:' | sort -u | wc -l)
[ "$n_tid" = "$(bob_count)" ] && ok "every delivered message has its own transaction id (no duplicates)" ||
    notok "every delivered message has its own transaction id (no duplicates)"
wait_for 30 queue_empty alice && ok "alice's queue is empty afterwards" || notok "alice's queue is empty afterwards"

# ---- remote relay down, then back ----
before=$(bob_count)
relay_stop bob
submit -t bob@bob.test -q DOWN -m down -n 5 -j 5 >out.txt 2>err.txt
[ "$(grep -c ' 250 ' out.txt)" = 5 ] && ok "bob's relay down: submissions still accepted" ||
    notok "bob's relay down: submissions still accepted"
deferred() { [ "$(grep -c 'qid=DOWN.*status=deferred' "$T/alice-relayd.log")" -ge 5 ]; }
wait_for 20 deferred && ok "alice defers while bob is down" || notok "alice defers while bob is down"
"$RLC" $A queue list >out.txt 2>err.txt
{ [ "$(grep -c 'out .*bob.test' out.txt)" -ge 5 ] && ! grep -q '@' out.txt; } &&
    ok "queue list: the deferred messages, their domain, no address" || notok "queue list: the deferred messages, their domain, no address"
relay_start bob || die "bob relay restart"
if pf_wait_mail "$PFB" bob $((before + 5)) 60; then ok "bob back: all 5 delivered"; else notok "bob back: all 5 delivered"; fi

# ---- 4xx (bob's keyvault down: 476), then 250 ----
before=$(bob_count)
kv_stop bob
submit -t bob@bob.test -q TEMP -m temp >out.txt 2>err.txt
got476() { grep -q 'qid=TEMP0 .*status=deferred.*476' "$T/alice-relayd.log"; }
wait_for 20 got476 && ok "remote 4xx (476): deferred" || notok "remote 4xx (476): deferred"
kv_start bob || die "bob keyvault restart"
if pf_wait_mail "$PFB" bob $((before + 1)) 30; then ok "then 250: delivered"; else notok "then 250: delivered"; fi

# ---- alice's keyvault down while the message waits: deferred, never sent with a made-up
# origin fingerprint in MAIL FROM; delivered once the vault is back ----
before=$(bob_count)
relay_stop bob
submit -t bob@bob.test -q NOKV -m nokv >out.txt 2>err.txt
grep -q ' 250 ' out.txt && ok "keyvault test: submission queued while bob is down" ||
    notok "keyvault test: submission queued while bob is down"
kv_stop alice
relay_start bob || die "bob relay restart"
"$RLC" $A queue flush >/dev/null 2>&1
nokv_deferred() { grep -q 'qid=NOKV0 .*status=deferred.*keyvault' "$T/alice-relayd.log"; }
wait_for 20 nokv_deferred && ok "alice's keyvault down: delivery deferred (keyvault named)" ||
    notok "alice's keyvault down: delivery deferred (keyvault named)"
sleep 3 # retry-max 2: more attempts while the vault is down
{ [ "$(bob_count)" = "$before" ] && ! grep -q 'qid=NOKV0 .*status=sent' "$T/alice-relayd.log"; } &&
    ok "alice's keyvault down: nothing sent to bob" || notok "alice's keyvault down: nothing sent to bob"
kv_start alice || die "alice keyvault restart"
if pf_wait_mail "$PFB" bob $((before + 1)) 30; then ok "alice's keyvault back: delivered"; else
    notok "alice's keyvault back: delivered"
fi

# ---- unknown recipient: 510 at bob, DSN to alice ----
submit -t bob@bob.test -e ghost@bob.test -q GHOST -m ghost >out.txt 2>err.txt
grep -q ' 250 ' out.txt && ok "unknown recipient: submission accepted" || notok "unknown recipient: submission accepted"
bounced() { grep -q 'qid=GHOST0 .*status=bounced.*510' "$T/alice-relayd.log"; }
wait_for 20 bounced && ok "remote 510 invalid recipient: bounced" || notok "remote 510 invalid recipient: bounced"
dsn_for() { pf_mail_files "$PFA" alice | xargs -r grep -l "X-Postfix-Queue-ID: $1" 2>/dev/null | head -1; }
has_dsn() { [ -n "$(dsn_for GHOST0)" ]; }
wait_for 20 has_dsn && ok "DSN in alice's mailbox" || notok "DSN in alice's mailbox"
D=$(dsn_for GHOST0)
{ [ -n "$D" ] && grep -q 'multipart/report; report-type=delivery-status' "$D" &&
    grep -q 'Final-Recipient: rfc822; ghost@bob.test' "$D" && grep -q 'Status: 5.0.0' "$D" &&
    grep -q 'Action: failed' "$D" && ! grep -q 'ghost-' "$D"; } &&
    ok "DSN: RFC 3464 report naming the recipient, no content" || notok "DSN: RFC 3464 report naming the recipient, no content"

# ---- tampered message over DMTP ----
"$SUB" -c "$T/alice/dime.conf" -f alice@alice.test -t bob@bob.test -m tamper -o "$T/final.bin" \
    >out.txt 2>err.txt || notok "final form for the DMTP tests"
before=$(bob_count)
# a byte in the middle (a content chunk: covered by the origin's full signature)
python3 "$PEER" send 127.0.0.3 "$DXP" alice.test bob.test "$T/final.bin" \
    $(($(stat -c %s "$T/final.bin") / 2)) >out.txt 2>err.txt
grep -qE '^5[0-9][0-9] ' out.txt && ok "tampered message refused: $(head -c 60 out.txt)" ||
    notok "tampered message refused"
python3 "$PEER" send 127.0.0.3 "$DXP" alice.test bob.test "$T/final.bin" 40 >out.txt 2>err.txt
grep -qE '^5[0-9][0-9] ' out.txt && ok "tampered envelope refused: $(head -c 60 out.txt)" ||
    notok "tampered envelope refused"
sleep 2
[ "$(bob_count)" = "$before" ] && ok "nothing of the tampered messages delivered" ||
    notok "nothing of the tampered messages delivered"
DMTP_PEER_SOURCE=127.0.0.8 python3 "$PEER" send 127.0.0.3 "$DXP" alice.test bob.test "$T/final.bin" >out.txt 2>err.txt
grep -qE '^250 OK \[[0-9a-f]{20}\]' out.txt && ok "the untampered bytes: 250 OK [tid]" ||
    notok "the untampered bytes: 250 OK [tid]"
# the peer came from 127.0.0.8: each line of its session says so
conn=$(conn_of "127.0.0.8 connect" tail)
session_logged "$conn" 127.0.0.8 connect tls= "cmd=EHLO code=250" "cmd=MAIL code=250" \
    "cmd=RCPT code=250" "inbound tid=" "cmd=DATA code=250" "cmd=QUIT code=221" disconnect &&
    ok "bob's log: the peer's address (127.0.0.8) on connect, TLS, each command and disconnect" ||
    notok "bob's log: the peer's address (127.0.0.8) on connect, TLS, each command and disconnect"
if grep -E 'conn=|deliver ' bob-relayd.log alice-relayd.log | grep -q '@'; then
    grep -E 'conn=|deliver ' bob-relayd.log alice-relayd.log | grep '@' | head -3 >err.txt
    notok "no address of a sender or recipient in the relays' DMTP and delivery lines"
else
    ok "no address of a sender or recipient in the relays' DMTP and delivery lines"
fi
tid1=$(grep -o '[0-9a-f]\{20\}' out.txt)
python3 "$PEER" send 127.0.0.3 "$DXP" alice.test bob.test "$T/final.bin" >out.txt 2>err.txt
[ -n "$tid1" ] && grep -q "250 OK \[$tid1\]" out.txt && ok "the same bytes again: the same tid, stored once" ||
    notok "the same bytes again: the same tid, stored once"
if pf_wait_mail "$PFB" bob $((before + 1)) 30; then ok "... and delivered once"; else notok "... and delivered once"; fi
python3 "$PEER" send 127.0.0.3 "$DXP" bob.test bob.test "$T/final.bin" >out.txt 2>err.txt
grep -qE '^578 ' out.txt && ok "origin not the MAIL FROM domain: 578" || notok "origin not the MAIL FROM domain: 578"

# ---- Postfix injection listener down ----
before=$(bob_count)
pf_stop "$PFB"
submit -t bob@bob.test -q PFDOWN -m pfdown >out.txt 2>err.txt
inq() { "$RLC" $B queue list 2>/dev/null | grep -q '^[0-9a-f]* *in .*attempts=[1-9]'; }
wait_for 30 inq && ok "Postfix down: message kept in bob's queue, retried" || notok "Postfix down: message kept in bob's queue, retried"
pf_start "$PFB" || die "restart bob's Postfix"
if pf_wait_mail "$PFB" bob $((before + 1)) 30; then ok "Postfix back: delivered"; else notok "Postfix back: delivered"; fi
wait_for 10 queue_empty bob && ok "bob's queue empty after injection" || notok "bob's queue empty after injection"

# ---- origin signet unobtainable at bob (nothing cached, no DNS answer): 470, then delivered ----
# bob's resolver is pointed at a port where nothing answers; alice's still works
before=$(bob_count)
relay_stop bob
cp "$T/bob/dime.conf" "$T/bob/dime.conf.good"
DEAD=$(env_pick) || die "no free port"
sed -i "s|@$DNSP\"|@$DEAD\"|g" "$T/bob/dime.conf"
rm -f "$T"/bob/cache.db*
relay_start bob || die "bob relay restart"
submit -t bob@bob.test -q NODNS -m nodns >out.txt 2>err.txt
got470() { grep -q 'qid=NODNS0 .*status=deferred.*470' "$T/alice-relayd.log"; }
if wait_for 15 got470; then ok "origin signet lookup fails at bob: 470, alice defers"; else
    grep 'qid=NODNS0' "$T/alice-relayd.log" | tail -2 | sed 's/^/# /'
    notok "origin signet lookup fails at bob: 470, alice defers"
fi
grep -q 'inbound refused code=470 reason="origin signet temporarily unavailable' "$T/bob-relayd.log" &&
    ok "bob's log gives the reason" || notok "bob's log gives the reason"
[ "$(bob_count)" = "$before" ] && ok "nothing delivered while the origin is unverifiable" ||
    notok "nothing delivered while the origin is unverifiable"
relay_stop bob
mv "$T/bob/dime.conf.good" "$T/bob/dime.conf"
relay_start bob || die "bob relay restart"
if pf_wait_mail "$PFB" bob $((before + 1)) 20; then ok "DNS back: delivered"; else notok "DNS back: delivered"; fi

# ---- queue CLI: hold, release, delete, flush ----
relay_stop bob
submit -t bob@bob.test -q HOLD -m hold -n 2 -j 1 >out.txt 2>err.txt
wait_for 10 grep -q 'qid=HOLD1 .*status=deferred' "$T/alice-relayd.log"
"$RLC" $A queue list >out.txt 2>err.txt
id0=$(grep 'qid=HOLD0' out.txt | cut -d' ' -f1)
id1=$(grep 'qid=HOLD1' out.txt | cut -d' ' -f1)
"$RLC" $A queue hold "$id0" >out.txt 2>err.txt && "$RLC" $A queue list | grep "^$id0 " | grep -q ' held ' &&
    ok "queue hold" || notok "queue hold"
"$RLC" $A queue delete "$id1" >out.txt 2>err.txt && ! "$RLC" $A queue list | grep -q "^$id1 " &&
    ok "queue delete" || notok "queue delete"
"$RLC" $A queue delete "$id1" >out.txt 2>err.txt
[ $? = 1 ] && ok "queue delete of an unknown id: exit 1" || notok "queue delete of an unknown id: exit 1"
# export (a node's queue taken over): the held message moves out with its state, sealed in
# a 0600 file under the file's own key; imported back it is owed again, still held
"$RLC" $A queue export "$T/export.db" >out.txt 2>err.txt &&
    grep -q '1 outbound and 0 inbound message moved' out.txt &&
    ! "$RLC" $A queue list | grep -q "qid=HOLD0" &&
    [ "$(stat -c %a "$T/export.db")" = 600 ] && [ "$(stat -c %a "$T/export.db.key")" = 600 ] &&
    ! grep -aq 'alice@alice.test\|bob@bob.test' "$T"/export.db* &&
    ok "queue export: moved out, file 0600, no address in it" || notok "queue export: moved out, file 0600, no address in it"
"$RLC" $A queue export "$T/export.db" >out.txt 2>err.txt
[ $? = 2 ] && grep -q 'exists already' err.txt && ok "queue export never writes into an existing file" ||
    notok "queue export never writes into an existing file"
"$RLC" $A queue import "$T/export.db" >out.txt 2>err.txt &&
    grep -q '1 outbound and 0 inbound message moved' out.txt &&
    "$RLC" $A queue list | grep 'qid=HOLD0' | grep -q ' held ' &&
    ok "queue import: owed again, still held" || notok "queue import: owed again, still held"
id0=$("$RLC" $A queue list | grep 'qid=HOLD0' | cut -d' ' -f1)
before=$(bob_count)
relay_start bob || die "bob relay restart"
"$RLC" $A queue flush >out.txt 2>err.txt
sleep 3
[ "$(bob_count)" = "$before" ] && ok "a held message stays" || notok "a held message stays"
"$RLC" $A queue release "$id0" >out.txt 2>err.txt
if pf_wait_mail "$PFB" bob $((before + 1)) 30; then ok "released: delivered"; else notok "released: delivered"; fi

# ---- expiry ----
left=$((T_EXPIRE + 27 - $(date +%s)))
[ "$left" -gt 0 ] && sleep "$left"
has_exp() { [ -n "$(dsn_for EXPIRE0)" ]; }
wait_for 20 has_exp && ok "queue lifetime exceeded: DSN in alice's mailbox" || notok "queue lifetime exceeded: DSN in alice's mailbox"
D=$(dsn_for EXPIRE0)
{ [ -n "$D" ] && grep -q 'Status: 4.4.7' "$D" && grep -q 'delivery time expired' "$D"; } &&
    ok "expiry DSN: 4.4.7, delivery time expired" || notok "expiry DSN: 4.4.7, delivery time expired"

# ---- nothing in clear in the relays' storage and logs ----
leak=0
for f in "$T"/alice/queue.db* "$T"/alice-relayd.log "$T"/bob/queue.db* "$T"/bob-relayd.log; do
    for pat in Subject- Body- single par- ghost-; do
        grep -aq -- "$pat" "$f" && { echo "# $pat in $f"; leak=1; }
    done
done
# the queues seal senders and recipients, the caches key by a keyed hash and seal signets
for f in "$T"/alice/queue.db* "$T"/alice/cache.db* "$T"/alice-relayd.log \
    "$T"/bob/queue.db* "$T"/bob/cache.db* "$T"/bob-relayd.log; do
    grep -aq 'alice@alice.test\|bob@bob.test\|ghost@bob.test\|x@down.test' "$f" &&
        { echo "# address in $f"; leak=1; }
done
[ $leak = 0 ] && ok "no subject, body or address in queue and cache databases and logs" ||
    notok "no subject, body or address in queue and cache databases and logs"

relay_stop alice && ok "alice's relay stops cleanly" || notok "alice's relay stops cleanly"
relay_stop bob && ok "bob's relay stops cleanly" || notok "bob's relay stops cleanly"
echo "1..$n"
[ "$failed" -eq 0 ]
