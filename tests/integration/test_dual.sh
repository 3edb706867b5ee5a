#!/usr/bin/env bash
# Integration test of the dual-mode front (issue 19 item 5; dime-relayd(8), DUAL MODE), TAP.
#
# alice.test and bob.test as in lib/dime_env.sh, with the milters. bob.test publishes no dx=:
# its MX is mx.bob.test (127.0.0.8), where bob's relay runs the front (dual-mode-listen) in
# front of a Postfix smtpd listener with smtpd_upstream_proxy_protocol = haproxy. Nothing
# answers DMTP on 127.0.0.8's DX port, so alice's relay reaches bob in dual mode on its
# remote-dual-port, the front's port.
#   (a) a legacy SMTP client from 127.0.0.7 sees Postfix's banner with DMTPv1 and its mail
#       arrives with 127.0.0.7 (not the front's address) in Received:
#   (b) alice -> bob through the front in DMTP mode: dime=pass in bob's mailbox, and the
#       front's log line says mode=dmtp
#   (c) Postfix stopped: the front answers 421 4.3.0
#
# usage: test_dual.sh MILTER KEYVAULTD DIMECTL RELAYD
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
MILTER=$(abs "$1")
KVD=$(abs "$2")
CTL=$(abs "$3")
RLD=$(abs "$4")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"
START=$(date +%s)

for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf script swaks; do
    command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ "$(id -u)" = 0 ] || skip_all "needs root (private Postfix instances)"

source "$HERE/lib/postfix.sh"
source "$HERE/lib/dime_env.sh"
source "$HERE/lib/e2e.sh" # e2e_send, e2e_die (its env_user_hook is replaced below)
trap env_cleanup EXIT

MXIP=127.0.0.8     # mx.bob.test: the front
LEGACYIP=127.0.0.7 # the legacy client

# bob: a record without dx= (MX only), the front in bob's relay; alice: bob's MX in dual mode
env_user_hook() {
    if [ -z "${FRONTP:-}" ]; then FRONTP=$(env_pick) && PROXYP=$(env_pick) || return 1; fi
    case $1 in
    bob)
        "$CTL" -c "$T/bob/dime.conf" dns-record --tls-cert dx.bob.test.pem --pok bob/pok.key \
            --ttl 300 >bob.rec 2>>setup.log || return 1
        sed -i "s|^  remote-dual-port = .*|&\n  dual-mode-listen = \"$MXIP:$FRONTP\"\n  dual-mode-postfix = \"${ADDR[bob]}:$PROXYP\"\n  dual-mode-timeout = 3\n  max-clients = 8|" \
            "$T/bob/dime.conf"
        ;;
    alice) sed -i "s|^  remote-dual-port = .*|  remote-dual-port = $FRONTP|" "$T/alice/dime.conf" ;;
    esac
}
env_pf_hook() {
    [ "$1" = bob ] || return 0
    # Postfix behind the front: the PROXY header names the client; no milter on this
    # listener (plain mail from outside is Postfix's business here)
    pf_listener "$T/pf-bob" "${ADDR[bob]}" "$PROXYP" none smtpd_upstream_proxy_protocol=haproxy
}
ENV_ZONE_EXTRA=([bob]="@ MX 10 mx.bob.test.
mx A $MXIP")
ENV_MILTER=$MILTER env_init "$KVD" "$CTL" "$RLD" || e2e_die "setup failed"
PFB=$T/pf-bob
env_wait_tcp "$MXIP" "$FRONTP" "${RL_PID[bob]}" || e2e_die "the front does not listen"
for _ in $(seq 100); do # bound before the loop starts; its start line follows
    grep -q "dual-mode listening=$MXIP:$FRONTP" "$T/bob-relayd.log" && break
    sleep 0.05
done
grep -q "dual-mode listening=$MXIP:$FRONTP" "$T/bob-relayd.log" || e2e_die "no dual-mode start line"

# ---- (a) a legacy SMTP client through the front reaches Postfix with its own address ----
python3 - "$LEGACYIP" "$MXIP" "$FRONTP" >out.txt 2>err.txt <<'PY'
import smtplib, sys
src, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = smtplib.SMTP(host, port, timeout=20, source_address=(src, 0))
msg = ("From: lee@legacy.test\r\nTo: bob@bob.test\r\nSubject: dual legacy\r\n"
       "Message-ID: <dual-legacy@legacy.test>\r\n\r\nplain SMTP through the front\r\n")
s.ehlo("client.legacy.test")
s.sendmail("lee@legacy.test", ["bob@bob.test"], msg)
s.quit()
print("sent")
PY
rc=$?
[ $rc = 0 ] && has sent && ok "a legacy SMTP client is served by Postfix through the front" ||
    notok "a legacy SMTP client is served by Postfix through the front"
# the greeting the client saw: Postfix's, with the DMTPv1 offer after its host name
printf 'QUIT\r\n' | timeout 10 python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 10, (sys.argv[3], 0))
print(s.recv(512).decode(errors="replace").strip())
s.sendall(b"QUIT\r\n")
print(s.recv(512).decode(errors="replace").strip())' "$MXIP" "$FRONTP" "$LEGACYIP" >out.txt 2>err.txt
grep -q "^220 mx.bob.test DMTPv1 ESMTP pf-bob" out.txt && grep -q "^221 " out.txt &&
    ok "the front passes Postfix's greeting with DMTPv1 after the host name" ||
    notok "the front passes Postfix's greeting with DMTPv1 after the host name"
F=
if pf_wait_mail "$PFB" bob 1 30; then
    F=$(grep -l "dual-legacy@legacy.test" $(pf_mail_files "$PFB" bob) 2>/dev/null | head -1)
fi
if [ -n "$F" ] && grep -q "^Received: from client.legacy.test (unknown \[$LEGACYIP\])" "$F" &&
    ! grep -q "\[$MXIP\]\|\[${ADDR[bob]}\]" "$F"; then
    ok "Received: names the client's own address ($LEGACYIP), from the PROXY header"
else
    [ -n "$F" ] && grep -A1 '^Received' "$F" >out.txt
    notok "Received: names the client's own address ($LEGACYIP), from the PROXY header"
fi
# a message far larger than the front's buffers (16 KiB each way): it goes through whole,
# with the front reading the client only as fast as Postfix takes the bytes
python3 - "$LEGACYIP" "$MXIP" "$FRONTP" >out.txt 2>err.txt <<'PY'
import hashlib, smtplib, sys
src, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
body = "".join("line %07d of a large message through the dual-mode front\r\n" % i
               for i in range(60000))
msg = ("From: lee@legacy.test\r\nTo: bob@bob.test\r\nSubject: dual large\r\n"
       "Message-ID: <dual-large@legacy.test>\r\n\r\n" + body)
s = smtplib.SMTP(host, port, timeout=60, source_address=(src, 0))
s.sendmail("lee@legacy.test", ["bob@bob.test"], msg)
s.quit()
print(hashlib.sha256(body.replace("\r\n", "\n").encode()).hexdigest())
PY
WANT=$(cat out.txt)
F=
if pf_wait_mail "$PFB" bob 2 60; then
    F=$(grep -l "dual-large@legacy.test" $(pf_mail_files "$PFB" bob) 2>/dev/null | head -1)
fi
[ -n "$F" ] && [ -n "$WANT" ] &&
    [ "$(sed '1,/^$/d' "$F" | tr -d '\r' | sha256sum | cut -d' ' -f1)" = "$WANT" ] &&
    ok "a 3.5 MB message through the front arrives byte for byte" ||
    notok "a 3.5 MB message through the front arrives byte for byte"
grep -q "ip=$LEGACYIP port=[0-9]* dual mode=smtp in=[1-9][0-9]* out=[1-9][0-9]* ms=[0-9]* end=" \
    "$T/bob-relayd.log" && ok "the front logs one line for the SMTP session" ||
    { grep "dual" "$T/bob-relayd.log" | tail -3 >out.txt; notok "the front logs one line for the SMTP session"; }

# ---- (b) alice's relay delivers to bob in dual mode ----
cat >m1.eml <<EOF
From: alice@alice.test
To: bob@bob.test
Subject: through the dual-mode front
Message-ID: <dual-dmtp@alice.test>

DMTP over STARTTLS MODE=DMTPv1 on bob's port 25.
EOF
e2e_send alice alice@alice.test bob@bob.test m1.eml
F=
if pf_wait_mail "$PFB" bob 3 60; then
    F=$(grep -l "dual-dmtp@alice.test" $(pf_mail_files "$PFB" bob) 2>/dev/null | head -1)
fi
if [ -n "$F" ] && grep -q "^Authentication-Results: mx.bob.test; dime=pass header.from=alice@alice.test" "$F"; then
    ok "alice -> bob through the front: delivered with dime=pass"
else
    tail -5 "$T/alice-relayd.log" >out.txt
    notok "alice -> bob through the front: delivered with dime=pass"
fi
grep -q "dx=mx.bob.test.*port=$FRONTP\|mx.bob.test.*dual" "$T/alice-relayd.log" &&
    ok "alice's relay went to bob's MX host in dual mode" ||
    { grep -i "bob" "$T/alice-relayd.log" | tail -3 >out.txt; notok "alice's relay went to bob's MX host in dual mode"; }
# the front's line, then the same conn= in the DX server up to the message's 250
CID=$(sed -n 's/.* conn=\([0-9]*\) ip=[0-9.]* port=[0-9]* dual mode=dmtp in=[1-9][0-9]* out=[1-9][0-9]* ms=[0-9]* end=starttls$/\1/p' \
    "$T/bob-relayd.log" | tail -1)
[ -n "$CID" ] && grep -q "conn=$CID ip=[0-9.]* tls=TLSv1" "$T/bob-relayd.log" &&
    grep -q "conn=$CID ip=[0-9.]* cmd=DATA code=250" "$T/bob-relayd.log" &&
    ok "the front logs mode=dmtp and the DX server takes that session (TLS, DATA 250)" ||
    { grep "dual\|DATA" "$T/bob-relayd.log" | tail -4 >out.txt
      notok "the front logs mode=dmtp and the DX server takes that session (TLS, DATA 250)"; }

# ---- a client that says nothing after the greeting is closed at dual-mode-timeout (3 s) ----
timeout 20 python3 -c '
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 10)
s.settimeout(15)
t = time.monotonic()
s.recv(512)
while s.recv(512):
    pass
print("closed after %.1f s" % (time.monotonic() - t))' "$MXIP" "$FRONTP" >out.txt 2>err.txt
grep -q "closed after [2-9]\.[0-9] s" out.txt &&
    grep -q "dual mode=closed in=0 out=[1-9][0-9]* ms=[0-9]* end=idle timeout" "$T/bob-relayd.log" &&
    ok "a silent client is closed at dual-mode-timeout (end=idle timeout)" ||
    notok "a silent client is closed at dual-mode-timeout (end=idle timeout)"

# ---- front sessions count against max-clients (8 here) with the DX connections ----
# (a DX session alice's relay still holds takes a place too: the 421 comes at the 9th or before)
timeout 20 python3 -c '
import socket, sys
held = []
for i in range(9):
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 10)
    s.settimeout(10)
    r = s.recv(512).decode(errors="replace").strip()
    print(r.split(" ")[0] if r.startswith("220 ") else r)
    held.append(s)
    if not r.startswith("220 "):
        break' "$MXIP" "$FRONTP" >out.txt 2>err.txt
[ "$(grep -vc '^220$' out.txt)" = 1 ] && tail -1 out.txt | grep -q "^421 4.3.2 " &&
    grep -q "dual refused=max-clients" "$T/bob-relayd.log" &&
    ok "beyond max-clients the front answers 421 4.3.2" ||
    notok "beyond max-clients the front answers 421 4.3.2"

# ---- (c) Postfix down: 421 4.3.0 ----
pf_stop "$PFB"
timeout 10 python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 10)
print(s.recv(512).decode(errors="replace").strip())' "$MXIP" "$FRONTP" >out.txt 2>err.txt
grep -q "^421 4.3.0 " out.txt && ok "Postfix stopped: the front answers 421 4.3.0" ||
    notok "Postfix stopped: the front answers 421 4.3.0"
grep -q "dual mode=refused" "$T/bob-relayd.log" && ok "... and logs mode=refused" ||
    notok "... and logs mode=refused"

echo "# duration $(($(date +%s) - START)) s"
echo "1..$n"
[ "$failed" = 0 ]
