#!/usr/bin/env bash
# Integration test of SIGHUP and of syslog logging (issue 17), TAP output.
#
# The two-domain gateway of the end-to-end test (lib/e2e.sh: keyvaults, relays, milters,
# Postfix, nsd). Checked with the real daemons:
#  - 200 messages through the real path (xfer_submit -> alice's relay -> DMTP -> bob's relay
#    -> bob's Postfix) while both relays and both keyvaults get SIGHUP again and again, with
#    the file changing between them: every submission 250, every message delivered once, in
#    bounded time, no daemon gone; then 40 messages through Postfix and both milters while
#    the milters get SIGHUP;
#  - a configuration that -n refuses, on SIGHUP: each daemon logs why and keeps running with
#    the old one (and mail still goes through);
#  - changed options take effect (relay max-errors on a new DMTP session, the milter's
#    authserv-id in the next message's Authentication-Results), and one that needs a restart
#    is logged as ignored;
#  - a renewed DX certificate is what the relay serves after SIGHUP (openssl s_client);
#  - syslog: a keyvault and a relay without -f write their lines, with the configured
#    facility, to the syslog socket the file names (a socket of this test).
#
# usage: test_reload.sh MILTER KEYVAULTD DIMECTL RELAYD RELAYCTL DIME-SIGNET XFER_SUBMIT
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
MILTER=$(abs "$1")
KVD=$(abs "$2")
CTL=$(abs "$3")
RLD=$(abs "$4")
RLC=$(abs "$5")
DS=$(abs "$6")
SUBMIT=$(abs "$7")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"

for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf swaks; do
    command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ "$(id -u)" = 0 ] || skip_all "needs root (private Postfix instances)"

source "$HERE/lib/postfix.sh"
source "$HERE/lib/dime_env.sh"
source "$HERE/lib/e2e.sh"
trap env_cleanup EXIT
die() {
    echo "Bail out! $*"
    for f in "$T"/*.log "$T"/pf-*/maillog; do [ -s "$f" ] && tail -5 "$f" | sed "s|^|# $(basename "$f"): |"; done
    exit 1
}
e2e_init || die "setup failed"
PFB=$T/pf-bob
cd "$T" || die "cd"
unset JOURNAL_STREAM # the daemons started without -f below must choose syslog

wait_for() {
    local t=$1 i
    shift
    for ((i = 0; i < t * 10; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}
t() { # t DESC CMD...: one test line from CMD's status
    local d=$1
    shift
    if "$@"; then ok "$d"; else notok "$d"; fi
}
count() { grep -c -- "$1" "$2" 2>/dev/null || true; }
alive() { kill -0 "$1" 2>/dev/null; }
# conf_set D SECTION-LINE-PATTERN NEW-LINE: replace the first line matching the pattern
conf_set() { sed -i "0,/$2/s||$3|" "$T/$1/dime.conf"; }
bob_count() { pf_mail_count "$PFB" bob; }
# In production the relay reads its key as its own user (the unit starts it as dime-relay);
# so must a reload here, where it started as root and dropped
[ "${ENV_USERS:-0}" = 1 ] && chown dime-relay dx.alice.test.key dx.bob.test.key
sed -i '/^relay {/a\  max-errors = 5' bob/dime.conf

# ---- SIGHUP during a burst of 200 messages ----
before=$(bob_count)
T0=$(date +%s)
"$SUBMIT" -c "$T/alice/dime.conf" -f alice@alice.test -t bob@bob.test -q HUP -m hup -n 200 -j 8 \
    -d 30 >burst.txt 2>burst.err &
sub=$!
hups=0
while alive "$sub"; do
    # the file changes between the signals
    conf_set bob 'max-errors = [0-9]*' "max-errors = $((3 + hups % 4))"
    kill -HUP "${RL_PID[alice]}" "${RL_PID[bob]}" "${KV_PID[alice]}" "${KV_PID[bob]}"
    hups=$((hups + 1))
    sleep 0.2
done
wait "$sub"
echo "# $hups rounds of SIGHUP during the burst"
cp burst.txt out.txt
t "burst: SIGHUP was sent at least 5 times while messages were submitted" [ "$hups" -ge 5 ]
t "burst: all 200 submissions answered 250 queued" [ "$(grep -c ' 250 2.0.0 queued ' burst.txt)" = 200 ]
if pf_wait_mail "$PFB" bob $((before + 200)) 180; then ok "burst: 200 messages delivered to bob"; else
    echo "# bob has $(bob_count), wanted $((before + 200))"
    notok "burst: 200 messages delivered to bob"
fi
echo "# burst delivered in $(($(date +%s) - T0)) s"
t "burst: delivered within 180 s of the first submission" [ $(($(date +%s) - T0)) -le 180 ]
# bob's milter gives bob the original message back: xfer_submit's Message-IDs <hup.I@...>
n_mid=$(pf_mail_files "$PFB" bob | xargs grep -hi '^Message-ID: <hup\.' | sort -u | wc -l)
n_all=$(pf_mail_files "$PFB" bob | xargs grep -hi '^Message-ID: <hup\.' | wc -l)
echo "# $n_mid distinct of $n_all burst messages in bob's mailbox"
t "burst: each of the 200 messages delivered exactly once" [ "$n_mid" = 200 ] && [ "$n_all" = 200 ]
t "burst: alice's queue is empty afterwards" wait_for 30 e2e_queues_empty
! grep -q 'status=bounced\|status=expired' alice-relayd.log >out.txt &&
    ok "burst: nothing bounced" || notok "burst: nothing bounced"
t "burst: every relay and keyvault still runs" alive "${RL_PID[alice]}" && alive "${RL_PID[bob]}" &&
    alive "${KV_PID[alice]}" && alive "${KV_PID[bob]}"
t "burst: each relay logged its reloads" [ "$(count 'reload config=.* result=done' bob-relayd.log)" -ge 5 ] &&
    [ "$(count 'reload config=.* result=done' alice-relayd.log)" -ge 5 ]
t "burst: each keyvault logged its reloads" [ "$(count 'reload config=.* result=done' bob-kv.log)" -ge 5 ]
grep -q 'reload section=relay option=max-errors result=applied' bob-relayd.log &&
    ok "bob's relay logs the changed max-errors as applied" ||
    notok "bob's relay logs the changed max-errors as applied"

# ---- a changed option takes effect (max-errors, on a new DMTP session) ----
# bad_until_close N: N unknown commands on a new session; prints how many 500 came before 421
bad_until_close() {
    { for ((i = 0; i < $1; i++)); do printf 'BOGUS\r\n'; sleep 0.05; done; sleep 1; } |
        timeout 15 openssl s_client -connect "${ADDR[bob]}:$DXP" -quiet -CAfile ca.pem \
            -servername dx.bob.test 2>/dev/null | tr -d '\r' >dmtp.txt
    awk '/^421/ { print n; found = 1; exit } /^500/ { n++ } END { if (!found) print "none" }' dmtp.txt
}
conf_set bob 'max-errors = [0-9]*' 'max-errors = 5'
kill -HUP "${RL_PID[bob]}"
wait_for 5 grep -q 'option=max-errors result=applied' bob-relayd.log
sleep 0.5
cp dmtp.txt out.txt 2>/dev/null
r=$(bad_until_close 3)
cp dmtp.txt out.txt
t "max-errors = 5: three bad commands do not close the session (got: $r)" [ "$r" = none ]
conf_set bob 'max-errors = [0-9]*' 'max-errors = 2'
lines=$(wc -l <bob-relayd.log)
kill -HUP "${RL_PID[bob]}"
wait_for 5 sh -c "tail -n +$((lines + 1)) bob-relayd.log | grep -q 'reload config=.* result=done'"
r=$(bad_until_close 3)
cp dmtp.txt out.txt
t "after SIGHUP with max-errors = 2: 421 after the second bad command (got: $r)" [ "$r" = 2 ]

# ---- an option that needs a restart is logged as ignored ----
lines=$(wc -l <bob-relayd.log)
conf_set bob 'queue-scan-interval = 1' 'queue-scan-interval = 2'
kill -HUP "${RL_PID[bob]}"
wait_for 5 sh -c "tail -n +$((lines + 1)) bob-relayd.log | grep -q 'reload config=.* result=done'"
tail -n +$((lines + 1)) bob-relayd.log >out.txt
t "queue-scan-interval changed: logged as needing a restart" \
    has 'reload section=relay option=queue-scan-interval result=ignored reason="needs a restart"'
t "the reload says how many changes wait for a restart" has 'restart-needed=1'

# ---- a broken configuration on SIGHUP: refused, logged, the old one stays ----
for d in alice bob; do cp "$d/dime.conf" "$d/dime.conf.good"; done
printf 'relay { no-such-option = 1 }\n' >>bob/dime.conf
lines=$(wc -l <bob-relayd.log)
kill -HUP "${RL_PID[bob]}"
wait_for 5 sh -c "tail -n +$((lines + 1)) bob-relayd.log | grep -q 'reload refused'"
tail -n +$((lines + 1)) bob-relayd.log >out.txt
t "relay: a broken file on SIGHUP is refused, with the reason" \
    grep -q 'reload refused, keeping the running configuration: .*dime.conf:[0-9]*: .*no-such-option' out.txt
r=$(bad_until_close 3)
cp dmtp.txt out.txt
t "relay: the running configuration stays (max-errors still 2: got $r)" [ "$r" = 2 ]
# a file that parses but fails the relay's checks (-n): an unreadable certificate
cp bob/dime.conf.good bob/dime.conf
conf_set bob 'tls-certificate = .*' "tls-certificate = \"$T/missing.pem\""
"$RLD" -n -c bob/dime.conf >/dev/null 2>&1 && notok "-n refuses a missing certificate" ||
    ok "-n refuses a missing certificate"
lines=$(wc -l <bob-relayd.log)
kill -HUP "${RL_PID[bob]}"
wait_for 5 sh -c "tail -n +$((lines + 1)) bob-relayd.log | grep -q 'reload refused'"
tail -n +$((lines + 1)) bob-relayd.log >out.txt
t "relay: a file -n refuses (missing certificate) is refused on SIGHUP" has 'tls-certificate'
for d in keyvault milter; do
    case $d in keyvault) pid=${KV_PID[bob]} log=bob-kv.log ;; milter) pid=${MI_PID[bob]} log=bob-milter.log ;; esac
    cp bob/dime.conf.good bob/dime.conf
    printf '%s { no-such-option = 1 }\n' "$d" >>bob/dime.conf
    lines=$(wc -l <"$log")
    kill -HUP "$pid"
    wait_for 5 sh -c "tail -n +$((lines + 1)) $log | grep -q 'reload refused'"
    tail -n +$((lines + 1)) "$log" >out.txt
    t "$d: a broken file on SIGHUP is refused with the reason, the $d keeps running" \
        grep -q 'reload refused, keeping the running configuration: .*no-such-option' out.txt &&
        alive "$pid"
done
cp bob/dime.conf.good bob/dime.conf
t "relay: still running after the refused reloads" alive "${RL_PID[bob]}"

# ---- the milter: SIGHUP applies authserv-id to the next message ----
msg() {
    printf 'From: alice@alice.test\nTo: bob@bob.test\nSubject: reload %s\n' "$1"
    printf 'Date: Thu, 26 Nov 2026 12:00:00 +0000\nMessage-ID: <%s.%s@example>\n\nbody %s\n' "$1" "$RANDOM" "$1"
}
ar_of() { # ar_of MARKER: the Authentication-Results of bob's message with that subject
    local f
    f=$(pf_mail_files "$PFB" bob | xargs grep -l "^Subject: reload $1" 2>/dev/null | head -1)
    [ -n "$f" ] && grep -m1 '^Authentication-Results:' "$f"
}
before=$(bob_count)
msg one >m1.eml
e2e_send alice alice@alice.test bob@bob.test m1.eml
pf_wait_mail "$PFB" bob $((before + 1)) 60
ar_of one >out.txt
t "milter: before the reload, Authentication-Results names mx.bob.test" has 'Authentication-Results: mx.bob.test;'
conf_set bob 'authserv-id = .*' 'authserv-id = "mx2.bob.test"'
lines=$(wc -l <bob-milter.log)
kill -HUP "${MI_PID[bob]}"
wait_for 5 sh -c "tail -n +$((lines + 1)) bob-milter.log | grep -q 'reload config=.* result=done'"
tail -n +$((lines + 1)) bob-milter.log >out.txt
t "milter: the reload logs authserv-id as applied" has 'reload section=milter option=authserv-id result=applied'
msg two >m2.eml
e2e_send alice alice@alice.test bob@bob.test m2.eml
pf_wait_mail "$PFB" bob $((before + 2)) 60
ar_of two >out.txt
t "milter: after SIGHUP, the next message's Authentication-Results names mx2.bob.test" \
    has 'Authentication-Results: mx2.bob.test;'
t "milter: SIGHUP does not stop the milter (libmilter alone would)" alive "${MI_PID[bob]}"

# ---- the milters under SIGHUP while mail goes through Postfix (submission, both milters) ----
before=$(bob_count)
burst_swaks() { # burst_swaks K: 10 messages, one after another, each accepted (250) or counted
    local i
    for ((i = 0; i < 10; i++)); do
        msg "mb$1x$i" >"mb$1x$i.eml"
        swaks --server "${ADDR[alice]}" --port "${SUB_PORT[alice]}" --from alice@alice.test \
            --to bob@bob.test --data "@mb$1x$i.eml" --helo client.alice.test >"mb$1x$i.out" 2>&1 ||
            echo "mb$1x$i" >>mb.failed
    done
}
: >mb.failed
pids=()
for k in 1 2 3 4; do burst_swaks "$k" & pids+=($!); done
mhups=0
while alive "${pids[0]}" || alive "${pids[1]}" || alive "${pids[2]}" || alive "${pids[3]}"; do
    kill -HUP "${MI_PID[alice]}" "${MI_PID[bob]}"
    mhups=$((mhups + 1))
    sleep 0.2
done
wait "${pids[@]}"
cp mb.failed out.txt
t "milter burst: 40 messages submitted through Postfix during $mhups SIGHUPs of both milters, none refused" \
    [ ! -s mb.failed ] && [ "$mhups" -ge 3 ]
if pf_wait_mail "$PFB" bob $((before + 40)) 120; then ok "milter burst: 40 messages delivered to bob"; else
    echo "# bob has $(($(bob_count) - before)) of 40"
    notok "milter burst: 40 messages delivered to bob"
fi
t "milter burst: both milters still run" alive "${MI_PID[alice]}" && alive "${MI_PID[bob]}"

# ---- a renewed certificate is served after SIGHUP ----
fp_served() {
    timeout 10 openssl s_client -connect "${ADDR[bob]}:$DXP" -servername dx.bob.test </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256
}
old=$(fp_served)
openssl x509 -req -in dx.bob.test.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3 \
    -extfile dx.bob.test.ext -out renewed.pem 2>/dev/null
new=$(openssl x509 -in renewed.pem -noout -fingerprint -sha256)
echo "# served before: $old; renewed: $new"
cp renewed.pem dx.bob.test.pem # renewed in place, as certbot does
lines=$(wc -l <bob-relayd.log)
kill -HUP "${RL_PID[bob]}"
wait_for 5 sh -c "tail -n +$((lines + 1)) bob-relayd.log | grep -q 'reload config=.* result=done'"
served=$(fp_served)
t "TLS: the relay served a fingerprint before" [ -n "$old" ]
t "TLS: after SIGHUP the renewed certificate is served (same file name)" [ "$served" = "$new" ] &&
    [ "$served" != "$old" ]

# ---- syslog: a keyvault and a relay without -f write to the syslog socket of the file ----
mkdir -p sl && chmod 755 sl
python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666)
with open(sys.argv[2], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(4096) + b"\n")' "$T/sl/log.sock" "$T/sl/syslog.txt" &
ENV_PIDS+=($!)
wait_for 5 test -S sl/log.sock
# a second keyvault of alice's database on its own socket, as a daemon (not -f): syslog
kvd=$(env_dir alice kv)
sed -e "s|socket = \"$kvd/kv.sock\"|socket = \"$T/sl/kv.sock\"|" \
    -e "s|pid-file = \"$kvd/kv.pid\"|pid-file = \"$T/sl/kv.pid\"|" alice/dime.conf.good >sl/kv.conf
sed -i '1i syslog-facility = "local3"\nsyslog-socket = "'"$T"'/sl/log.sock"' sl/kv.conf
[ "${ENV_USERS:-0}" = 1 ] && chown dime-vault sl
"$KVD" -c sl/kv.conf >sl/kv.out 2>&1
wait_for 5 test -s sl/kv.pid
kvpid=$(cat sl/kv.pid 2>/dev/null)
[ -n "$kvpid" ] && ENV_PIDS+=("$kvpid")
wait_for 5 grep -q 'dime-keyvaultd\[[0-9]*\]: serving' sl/syslog.txt
cp sl/syslog.txt out.txt
# local3 (19) * 8 + info (6) = 158
t "syslog: the keyvault's lines reach the socket with facility local3, severity info" \
    grep -q '^<158>[A-Z][a-z][a-z] [ 0-9][0-9] [0-9:]\{8\} dime-keyvaultd\[[0-9]*\]: serving socket=' sl/syslog.txt
t "syslog: nothing of it on stderr" [ ! -s sl/kv.out ]
sed -i '/^keyvault {/a\  max-clients = 7' sl/kv.conf
sed -i "s|database = \"$kvd/kv.db\"|database = \"$T/sl/other.db\"|" sl/kv.conf
[ -n "$kvpid" ] && kill -HUP "$kvpid"
wait_for 5 grep -q 'reload config=.* result=done' sl/syslog.txt
cp sl/syslog.txt out.txt
t "syslog: the keyvault's reload logs max-clients applied" \
    grep -q 'dime-keyvaultd\[[0-9]*\]: reload section=keyvault option=max-clients result=applied' sl/syslog.txt
t "syslog: and database ignored until a restart, as a warning (<156>)" \
    grep -q '^<156>.*reload section=keyvault option=database result=ignored reason="needs a restart"' sl/syslog.txt
[ -n "$kvpid" ] && kill "$kvpid"
# alice's relay, started again without -f
relay_stop alice
sed -i '1i syslog-socket = "'"$T"'/sl/log.sock"' alice/dime.conf
"$RLD" -c "$T/alice/dime.conf" >sl/relay.out 2>&1 &
RL_PID[alice]=$!
env_wait_tcp "${ADDR[alice]}" "$DXP" "${RL_PID[alice]}"
wait_for 5 grep -q 'dime-relayd\[[0-9]*\]: listening' sl/syslog.txt
cp sl/syslog.txt out.txt
# mail (2) * 8 + info (6) = 22: the default facility
t "syslog: the relay without -f logs to syslog, facility mail" \
    grep -q '^<22>.* dime-relayd\[[0-9]*\]: listening address=' sl/syslog.txt
t "syslog: the relay writes nothing to stderr then" [ ! -s sl/relay.out ]
relay_stop alice

echo "1..$n"
[ "$failed" -eq 0 ]
