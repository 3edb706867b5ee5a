#!/usr/bin/env bash
# End-to-end test of the gateway (issue 7 section 3), TAP output.
#
# Two DIME domains on loopback (lib/dime_env.sh): alice.test (127.0.0.2) and bob.test
# (127.0.0.3), each with a private Postfix (submission listener and injection listener, both
# behind dime-milter, Maildir delivery), dime-milter, dime-relayd and dime-keyvaultd; nsd
# serves the DNSSEC-signed zones. legacy.test has no DIME record and its own Postfix; bogus.test
# has a DIME record in a zone that does not validate. Users: alice@alice.test (Trustful),
# bob@ and dan@bob.test (Trustful), carol@bob.test (Cautious); mallory@alice.test has no
# account. Mail goes in with swaks through the submission listener (the client is in the
# milter's trusted-networks). Each DIME domain's Postfix also has a port-25-like listener with
# the milter (MX_PORT), and the other DIME domain is routed there by plain SMTP: whatever a
# gateway lets out as plain SMTP would arrive in a mailbox in clear.
#
# usage: test_e2e.sh MILTER KEYVAULTD DIMECTL RELAYD RELAYCTL DIME-SIGNET XFER_SUBMIT DIME-MESSAGE
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
MILTER=$(abs "$1")
KVD=$(abs "$2")
CTL=$(abs "$3")
RLD=$(abs "$4")
RLC=$(abs "$5")
DS=$(abs "$6")
SUBMIT=$(abs "$7")
DM=$(abs "$8")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"
PEER="$HERE/dmtp_peer.py"

for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf script swaks; do
    command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ "$(id -u)" = 0 ] || skip_all "needs root (private Postfix instances)"

source "$HERE/lib/postfix.sh"
source "$HERE/lib/dime_env.sh"
source "$HERE/lib/e2e.sh"
trap env_cleanup EXIT
declare -A MX_PORT=()
env_pf_hook() { e2e_mx_hook "$1"; }
die() { e2e_die "$@"; }
e2e_init || die "setup failed"
echo "# ENV_USERS=$ENV_USERS (1: each daemon started as root becomes its own user)"
PFA=$T/pf-alice
PFB=$T/pf-bob
PFL=$T/pf-legacy
cd "$T" || die "cd"

# wait_for SECONDS CMD...: until CMD succeeds
wait_for() {
    local t=$1 i
    shift
    for ((i = 0; i < t * 10; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}
MARK=e2e$RANDOM$RANDOM$RANDOM
# msg FILE FROM TO-FIELD TAG: a message with unique markers in subject and body (CRLF)
msg() {
    {
        printf 'From: %s\nTo: %s\nSubject: %s subject %s\n' "$2" "$3" "$4" "$MARK"
        printf 'Date: Thu, 26 Nov 2026 12:00:00 +0000\nMessage-ID: <%s.%s@example>\n' "$4" "$MARK"
        printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n'
        printf 'Hello,\nthe %s body %s,\n  with a folded-looking line and trailing space \n' "$4" "$MARK"
    } | sed 's/$/\r/' >"$1"
}
# the message as the user sees it, for comparison: without trace fields and our A-R, LF line
# ends, no trailing empty lines (swaks adds one line end after the data)
cmp_original() { # cmp_original DELIVERED SENT
    cmp -s <(e2e_strip_trace "$1" | e2e_notail) <(tr -d '\r' <"$2" | e2e_notail)
}
newest() { pf_mail_files "$1" "$2" | xargs -r ls -t | head -1; }
ar_pass() { # ar_pass FILE AUTHSERV FROM
    grep -q "^Authentication-Results: $2; dime=pass header.from=$3 (author signet " "$1"
}

# ---- alice -> bob ----
msg m1.eml alice@alice.test 'Bob <bob@bob.test>' first
if e2e_send alice alice@alice.test bob@bob.test m1.eml && pf_wait_mail "$PFB" bob 1 60; then
    ok "alice -> bob: accepted at submission and delivered to bob's Maildir"
else
    notok "alice -> bob: accepted at submission and delivered to bob's Maildir"
fi
F=$(newest "$PFB" bob)
if [ -n "$F" ] && cmp_original "$F" m1.eml; then
    ok "alice -> bob: header fields and body byte-identical to what alice sent"
else
    [ -n "$F" ] && diff <(e2e_strip_trace "$F") <(tr -d '\r' <m1.eml) | head -15 >out.txt
    notok "alice -> bob: header fields and body byte-identical to what alice sent"
fi
[ -n "$F" ] && ar_pass "$F" mx.bob.test alice@alice.test && ok "alice -> bob: Authentication-Results dime=pass" ||
    { [ -n "$F" ] && grep -A1 '^Authentication-Results' "$F" >out.txt; notok "alice -> bob: Authentication-Results dime=pass"; }
grep -q "status=sent" "$T/alice-relayd.log" && ! grep -q 'to=<bob@bob.test>.*status=' "$PFA/maillog" &&
    ok "alice -> bob: went through the relays, alice's Postfix never delivered it itself" ||
    notok "alice -> bob: went through the relays, alice's Postfix never delivered it itself"

# ---- bob replies ----
msg m2.eml bob@bob.test 'Alice <alice@alice.test>' reply
if e2e_send bob bob@bob.test alice@alice.test m2.eml && pf_wait_mail "$PFA" alice 1 60; then
    F=$(newest "$PFA" alice)
    if cmp_original "$F" m2.eml && ar_pass "$F" mx.alice.test bob@bob.test; then
        ok "bob -> alice: byte-identical with dime=pass"
    else
        diff <(e2e_strip_trace "$F") <(tr -d '\r' <m2.eml) | head -15 >out.txt
        notok "bob -> alice: byte-identical with dime=pass"
    fi
else
    notok "bob -> alice: byte-identical with dime=pass"
fi

# ---- one message: DIME + legacy + DIME ----
nb=$(pf_mail_count "$PFB" bob)
msg m3.eml alice@alice.test 'bob@bob.test, lee@legacy.test, dan@bob.test' mixed
if e2e_send alice alice@alice.test bob@bob.test,lee@legacy.test,dan@bob.test m3.eml &&
    pf_wait_mail "$PFB" bob $((nb + 1)) 60 && pf_wait_mail "$PFB" dan 1 60 && pf_wait_mail "$PFL" lee 1 60; then
    ok "mixed: accepted; bob, dan and lee each got a message"
else
    notok "mixed: accepted; bob, dan and lee each got a message"
fi
FB=$(newest "$PFB" bob) FD=$(newest "$PFB" dan) FL=$(newest "$PFL" lee)
{ [ -n "$FB" ] && [ -n "$FD" ] && cmp_original "$FB" m3.eml && cmp_original "$FD" m3.eml &&
    ar_pass "$FB" mx.bob.test alice@alice.test && ar_pass "$FD" mx.bob.test alice@alice.test; } &&
    ok "mixed: both DIME recipients got the original with dime=pass" ||
    notok "mixed: both DIME recipients got the original with dime=pass"
{ [ -n "$FL" ] && cmp_original "$FL" m3.eml && ! grep -qi 'x-dime\|dime=' "$FL"; } &&
    ok "mixed: the legacy recipient got plain MIME, unchanged" ||
    notok "mixed: the legacy recipient got plain MIME, unchanged"
[ "$(pf_mail_count "$PFB" bob)" = $((nb + 1)) ] && [ "$(pf_mail_count "$PFL" lee)" = 1 ] &&
    ok "mixed: one copy each" || notok "mixed: one copy each"
grep -q 'to=<lee@legacy.test>.*status=sent' "$PFA/maillog" && ! grep -q 'to=<dan@bob.test>.*status=' "$PFA/maillog" &&
    ok "mixed: alice's Postfix sent only the legacy copy as SMTP" ||
    notok "mixed: alice's Postfix sent only the legacy copy as SMTP"

# ---- Cautious recipient ----
msg m4.eml alice@alice.test 'carol@bob.test' cautious
if e2e_send alice alice@alice.test carol@bob.test m4.eml && pf_wait_mail "$PFB" carol 1 60; then
    F=$(newest "$PFB" carol)
    sed '1,/^\r\{0,1\}$/d' "$F" | base64 -d >carol.dmsg 2>/dev/null
    if grep -q '^Content-Type: application/x-dime' "$F" && ! grep -q "$MARK" "$F" &&
        ! grep -q 'dime=pass' "$F" && [ "$(head -c 2 carol.dmsg | xxd -p)" = 0737 ]; then
        ok "Cautious carol: the untouched application/x-dime wrapper (D/MIME magic, nothing in clear)"
    else
        head -20 "$F" >out.txt
        notok "Cautious carol: the untouched application/x-dime wrapper (D/MIME magic, nothing in clear)"
    fi
else
    notok "Cautious carol: the untouched application/x-dime wrapper (D/MIME magic, nothing in clear)"
fi

# ---- no silent plaintext: senders the gateway cannot sign for never reach a DIME domain ----
nb=$(pf_mail_count "$PFB" bob) na=$(pf_mail_count "$PFA" alice)
refused_550() { # refused_550 DESC DOMAIN FROM RCPT FILE TEXT: D's submission answers 550 5.7.1 TEXT
    if ! e2e_send "$2" "$3" "$4" "$5" && grep -q "^<\*\* *550 5.7.1 DIME: $6" out.txt; then
        ok "$1"
    else
        notok "$1"
    fi
}
msg np1.eml mallory@alice.test bob@bob.test noaccount
refused_550 "a sender without an account to a DIME recipient: 550 5.7.1 at submission" \
    alice mallory@alice.test bob@bob.test np1.eml "mallory@alice.test has no DIME account"
msg np2.eml carol@bob.test alice@alice.test cautious-out
refused_550 "a Cautious sender's plain message to a DIME recipient: 550 5.7.1 at submission" \
    bob carol@bob.test alice@alice.test np2.eml "carol@bob.test is a cautious DIME user"
msg np3.eml mallory@alice.test lee@legacy.test noaccount-legacy
d0=$(grep -c 'route=legacy downgrade=yes action=accept' "$T/alice-milter.log")
if e2e_send alice mallory@alice.test lee@legacy.test np3.eml && pf_wait_mail "$PFL" lee 2 60 &&
    [ "$(grep -c 'route=legacy downgrade=yes action=accept' "$T/alice-milter.log")" = $((d0 + 1)) ]; then
    ok "a sender without an account to a domain without DIME: on-no-signet (accept), logged as a downgrade"
else
    notok "a sender without an account to a domain without DIME: on-no-signet (accept), logged as a downgrade"
fi
sleep 2
{ [ "$(pf_mail_count "$PFB" bob)" = "$nb" ] && [ "$(pf_mail_count "$PFA" alice)" = "$na" ] &&
    ! grep -l -r -e "noaccount subject $MARK" -e "cautious-out subject $MARK" "$PFA/mail" "$PFB/mail" >/dev/null &&
    ! grep -q -e 'from=<mallory@alice.test>' "$PFB/maillog" && ! grep -q -e 'from=<carol@bob.test>' "$PFA/maillog" &&
    [ "$(pf_queue_count "$PFA")" = 0 ] && [ "$(pf_queue_count "$PFB")" = 0 ]; } &&
    ok "neither message reached the other DIME domain's Postfix or a mailbox, nothing queued" ||
    notok "neither message reached the other DIME domain's Postfix or a mailbox, nothing queued"

# sendmail(1): non-SMTP mail reaches the milter through non_smtpd_milters (lib/dime_env.sh),
# with a made-up client 127.0.0.1 (in trusted-networks here) and no login; without
# sign-local-submissions (test_replies.sh) any local user may have chosen its envelope
# sender, so it is never signed: refused for a DIME recipient (cleanup bounces it to
# the sender), on-no-signet for the others
na=$(pf_mail_count "$PFA" alice) nl=$(pf_mail_count "$PFL" lee)
d0=$(grep -c 'route=legacy downgrade=yes action=accept' "$T/alice-milter.log")
msg ns1.eml alice@alice.test bob@bob.test pickup-dime
msg ns2.eml alice@alice.test lee@legacy.test pickup-legacy
pf_sendmail "$PFA" alice@alice.test bob@bob.test <ns1.eml
pf_sendmail "$PFA" alice@alice.test lee@legacy.test <ns2.eml
NOAUTH='5.7.1 DIME: mail submitted without SMTP AUTH cannot be signed for DIME recipients'
if pf_wait_mail "$PFA" alice $((na + 1)) 60 && F=$(newest "$PFA" alice) && grep -q '^Status: 5.7.1' "$F" &&
    grep -q '<bob@bob.test>: DIME: mail submitted without SMTP AUTH' "$F" &&
    grep -q "^Subject: pickup-dime subject $MARK" "$F" &&
    grep -q "milter-reject: END-OF-MESSAGE from localhost\[127.0.0.1\]: $NOAUTH" "$PFA/maillog"; then
    ok "sendmail(1) to a DIME recipient: 5.7.1 from the milter, bounced to the sender"
else
    notok "sendmail(1) to a DIME recipient: 5.7.1 from the milter, bounced to the sender"
fi
if pf_wait_mail "$PFL" lee $((nl + 1)) 60 &&
    [ "$(grep -c 'route=legacy downgrade=yes action=accept' "$T/alice-milter.log")" = $((d0 + 1)) ]; then
    ok "sendmail(1) to a domain without DIME: on-no-signet (accept), logged as a downgrade"
else
    notok "sendmail(1) to a domain without DIME: on-no-signet (accept), logged as a downgrade"
fi
sleep 2
{ ! grep -l -r -e "pickup-dime subject $MARK" "$PFB/mail" >/dev/null &&
    ! grep -q "pickup-dime.$MARK" "$PFB/maillog" && [ "$(pf_queue_count "$PFA")" = 0 ] &&
    grep -q 'action=reject reason="submitted without SMTP AUTH"' "$T/alice-milter.log"; } &&
    ok "sendmail(1) to a DIME recipient never reached bob's Postfix or a mailbox, nothing queued" ||
    notok "sendmail(1) to a DIME recipient never reached bob's Postfix or a mailbox, nothing queued"

# the Cautious sender's own client makes the D/MIME (author form, with carol's key), but sends
# it without SMTP AUTH: author-made D/MIME is taken only from a login that owns the author
# address (test_client.sh sends it authenticated and sees it delivered with dime=pass)
msg np4.eml carol@bob.test 'Alice <alice@alice.test>' cautious-own
na=$(pf_mail_count "$PFA" alice)
{
    "$CTL" -c "$T/bob/dime.conf" signet show carol@bob.test --armor >carol.signet &&
        "$CTL" -c "$T/bob/dime.conf" signet show bob.test --armor >bob-org.signet &&
        "$CTL" -c "$T/alice/dime.conf" signet show alice@alice.test --armor >alice.signet &&
        "$CTL" -c "$T/alice/dime.conf" signet show alice.test --armor >alice-org.signet &&
        "$DM" encrypt --author-signet carol.signet --author-key "$T/bob/carol.key" \
            --origin-signet bob-org.signet --dest-signet alice-org.signet \
            --recipient-signet alice.signet -i np4.eml -o np4.dmsg
} >out.txt 2>err.txt || die "carol's own D/MIME"
e2e_wrap np4.dmsg alice@alice.test >np4-wrapped.eml
if ! e2e_send bob carol@bob.test alice@alice.test np4-wrapped.eml &&
    grep -q '^<\*\* *550 5\.7\.1 DIME: author-made D/MIME is taken only over authenticated SMTP' out.txt &&
    sleep 2 && [ "$(pf_mail_count "$PFA" alice)" = "$na" ] && [ "$(pf_queue_count "$PFB")" = 0 ]; then
    ok "a Cautious sender's own D/MIME without SMTP AUTH: 550 5.7.1, nothing queued or delivered"
else
    notok "a Cautious sender's own D/MIME without SMTP AUTH: 550 5.7.1, nothing queued or delivered"
fi

# ---- keyvault stopped ----
nb=$(pf_mail_count "$PFB" bob)
msg m5.eml alice@alice.test bob@bob.test kvdown
kv_stop alice
if ! e2e_send alice alice@alice.test bob@bob.test m5.eml && grep -q '^<\*\* *4[0-9][0-9] ' out.txt; then
    ok "alice's keyvault stopped: 4xx at submission ($(grep -o '4[0-9][0-9] [0-9.]*' out.txt | head -1))"
else
    notok "alice's keyvault stopped: 4xx at submission"
fi
sleep 1
[ "$(pf_queue_count "$PFA")" = 0 ] && [ "$(pf_mail_count "$PFB" bob)" = "$nb" ] &&
    ok "keyvault stopped: nothing queued or delivered" || notok "keyvault stopped: nothing queued or delivered"
kv_start alice || die "keyvault restart"
if e2e_send alice alice@alice.test bob@bob.test m5.eml && pf_wait_mail "$PFB" bob $((nb + 1)) 60 &&
    cmp_original "$(newest "$PFB" bob)" m5.eml; then
    ok "keyvault back: the retry is delivered"
else
    notok "keyvault back: the retry is delivered"
fi

# ---- relay stopped ----
nb=$(pf_mail_count "$PFB" bob)
msg m6.eml alice@alice.test bob@bob.test rldown
relay_stop alice
if ! e2e_send alice alice@alice.test bob@bob.test m6.eml && grep -q '^<\*\* *4[0-9][0-9] ' out.txt; then
    ok "alice's relay stopped: 4xx at submission ($(grep -o '4[0-9][0-9] [0-9.]*' out.txt | head -1))"
else
    notok "alice's relay stopped: 4xx at submission"
fi
relay_start alice || die "relay restart"
if e2e_send alice alice@alice.test bob@bob.test m6.eml && pf_wait_mail "$PFB" bob $((nb + 1)) 60 &&
    cmp_original "$(newest "$PFB" bob)" m6.eml; then
    ok "relay back: the retry is delivered"
else
    notok "relay back: the retry is delivered"
fi

# ---- bogus recipient zone ----
msg m7.eml alice@alice.test eve@bogus.test bogus
if ! e2e_send alice alice@alice.test eve@bogus.test m7.eml && grep -q '^<\*\* *4[0-9][0-9] ' out.txt; then
    ok "bogus recipient zone: deferred with 4xx at submission"
else
    notok "bogus recipient zone: deferred with 4xx at submission"
fi
grep -q 'bogus' "$T/alice-relayd.log" && ok "alice's relay found bogus.test bogus" ||
    notok "alice's relay found bogus.test bogus"
sleep 1
{ [ "$(pf_mail_count "$PFL" eve)" = 0 ] && ! grep -q 'to=<eve@bogus.test>.*status=' "$PFA/maillog" &&
    [ "$(pf_queue_count "$PFA")" = 0 ]; } &&
    ok "bogus recipient zone: never sent as plain SMTP" || notok "bogus recipient zone: never sent as plain SMTP"

# ---- forged messages ----
nb=$(pf_mail_count "$PFB" bob)
"$SUBMIT" -c "$T/alice/dime.conf" -f alice@alice.test -t bob@bob.test -m "forged $MARK" -o forge.bin \
    >out.txt 2>err.txt || die "final form for the forgery cases"
python3 "$PEER" send 127.0.0.3 "$DXP" alice.test bob.test forge.bin $(($(stat -c %s forge.bin) / 2)) \
    >out.txt 2>err.txt
grep -qE '^5[0-9][0-9] ' out.txt && ok "forged in transit over DMTP: bob's relay refuses it ($(head -c 40 out.txt))" ||
    notok "forged in transit over DMTP: bob's relay refuses it"
# between bob's relay and bob's Postfix: the wrapper as the relay injects it, one byte flipped
e2e_wrap forge.bin bob@bob.test 1 >forged.eml
e2e_wrap forge.bin bob@bob.test >genuine.eml
if ! swaks --server 127.0.0.3 --port "${PF_PORT[bob]}" --from alice@alice.test --to bob@bob.test \
    --data @forged.eml --helo dx.bob.test >out.txt 2>err.txt && grep -q '^<\*\* *4[0-9][0-9] ' out.txt; then
    ok "forged wrapper at bob's injection listener: refused with 4xx ($(grep -o '4[0-9][0-9] [0-9.]*' out.txt | head -1))"
else
    notok "forged wrapper at bob's injection listener: refused with 4xx"
fi
sleep 1
[ "$(pf_mail_count "$PFB" bob)" = "$nb" ] && ok "no forged message was delivered" ||
    notok "no forged message was delivered"
# the same bytes untampered pass: the flipped byte was the only reason
if swaks --server 127.0.0.3 --port "${PF_PORT[bob]}" --from alice@alice.test --to bob@bob.test \
    --data @genuine.eml --helo dx.bob.test >out.txt 2>err.txt && pf_wait_mail "$PFB" bob $((nb + 1)) 30 &&
    ar_pass "$(newest "$PFB" bob)" mx.bob.test alice@alice.test; then
    ok "control: the same wrapper untampered is delivered with dime=pass"
else
    notok "control: the same wrapper untampered is delivered with dime=pass"
fi
# every message bob received carries exactly one Authentication-Results field (the milter's)
bad=0
for f in $(pf_mail_files "$PFB" bob); do
    [ "$(grep -c '^Authentication-Results:' "$f")" = 1 ] || bad=$((bad + 1))
done
[ "$bad" = 0 ] && [ "$(pf_mail_count "$PFB" bob)" -ge 5 ] &&
    ok "each of bob's $(pf_mail_count "$PFB" bob) messages has exactly one Authentication-Results" ||
    notok "each of bob's messages has exactly one Authentication-Results ($bad without)"

# ---- nothing in clear at the relays ----
wait_for 30 e2e_queues_empty || echo "# relay queues not empty"
ADDRS=(-e bob@bob.test -e dan@bob.test -e carol@bob.test -e alice@alice.test -e lee@legacy.test)
# found WHAT FILE...: "file: count string ..." for each file holding one of the strings in WHAT
found() {
    local -n what=$1
    shift
    local f
    for f in "$@"; do
        grep -a -q -F "${what[@]}" "$f" 2>/dev/null || continue
        echo "$f: $(grep -a -o -F "${what[@]}" "$f" | sort | uniq -c | tr -s ' \n' ' ')"
    done
}
mapfile -t RF < <(e2e_relay_files)
CONTENT=(-e "$MARK")
found CONTENT "${RF[@]}" >out.txt
[ ! -s out.txt ] && [ ${#RF[@]} -ge 6 ] &&
    ok "no subject or body in ${#RF[@]} relay files (SQLite databases with WAL, logs)" ||
    notok "no subject or body in the relay files (${#RF[@]} files)"
found ADDRS "$T/alice-relayd.log" "$T/bob-relayd.log" >out.txt
[ ! -s out.txt ] && ok "no address in either relay's log" || notok "no address in either relay's log"
# the queues seal the addresses they keep (outbound: recipient, and the sender for DSNs;
# inbound: the local recipient); the signet caches key their rows by a keyed hash of the
# address or domain and seal the record and signet (which names its owner)
RCPTS=(-e bob@bob.test -e dan@bob.test -e carol@bob.test -e lee@legacy.test)
found RCPTS "$(env_dir alice relay)"/queue.db* >out.txt
[ ! -s out.txt ] && ok "no recipient in clear in the sending relay's queue" ||
    notok "no recipient in clear in the sending relay's queue"
SENDERS=(-e alice@alice.test)
found SENDERS "$(env_dir alice relay)"/queue.db* >out.txt
[ ! -s out.txt ] && ok "no sender in clear in the sending relay's queue" ||
    notok "no sender in clear in the sending relay's queue"
found ADDRS "$(env_dir bob relay)"/queue.db* >out.txt
[ ! -s out.txt ] && ok "no recipient in clear in the receiving relay's queue" ||
    notok "no recipient in clear in the receiving relay's queue"
found ADDRS "$(env_dir alice relay)"/cache.db* "$(env_dir bob relay)"/cache.db* >out.txt
[ ! -s out.txt ] && ok "no address in clear in the signet caches" ||
    notok "no address in clear in the signet caches"
DOMAINS=(-e alice.test -e bob.test -e legacy.test -e bogus.test)
found DOMAINS "$(env_dir alice relay)"/cache.db* "$(env_dir bob relay)"/cache.db* >out.txt
[ ! -s out.txt ] && ok "no domain in clear in the signet caches" ||
    notok "no domain in clear in the signet caches"

# ---- alice's SOK rollover: bob's milter verifies the next message with dime=pass ----
"$CTL" -c "$T/alice/dime.conf" domain rollover-sok --pok "$T/alice/pok.key" >out.txt 2>err.txt
t_roll=$?
msg m9.eml alice@alice.test 'Bob <bob@bob.test>' rolled
nb=$(pf_mail_count "$PFB" bob)
if [ "$t_roll" = 0 ] && e2e_send alice alice@alice.test bob@bob.test m9.eml &&
    pf_wait_mail "$PFB" bob $((nb + 1)) 60; then
    F=$(newest "$PFB" bob)
    if cmp_original "$F" m9.eml && ar_pass "$F" mx.bob.test alice@alice.test; then
        ok "after alice's SOK rollover: alice -> bob byte-identical with dime=pass"
    else
        grep -A1 '^Authentication-Results' "$F" >out.txt
        notok "after alice's SOK rollover: alice -> bob byte-identical with dime=pass"
    fi
else
    notok "after alice's SOK rollover: alice -> bob byte-identical with dime=pass"
fi

# the milters' logs name no party: no address at all, of a remote party or a local one
mapfile -t EVERY < <(printf -- '-e\n%s\n' bob@bob.test dan@bob.test carol@bob.test alice@alice.test \
    mallory@alice.test lee@legacy.test eve@bogus.test)
found EVERY "$T/alice-milter.log" "$T/bob-milter.log" >out.txt
[ ! -s out.txt ] && [ -s "$T/alice-milter.log" ] && [ -s "$T/bob-milter.log" ] &&
    ok "no address in either milter's log" || notok "no address in either milter's log"

# the milter's metrics: one count per outbound recipient's log line, by route
curl -sS --max-time 10 --unix-socket "$(env_dir alice milter)/milter-metrics.sock" \
    http://localhost/metrics >milter-metrics.txt 2>err.txt
python3 "$HERE/metrics_check.py" milter-metrics.txt >out.txt && ok "alice's milter metrics pass the strict check" ||
    notok "alice's milter metrics pass the strict check"
mget() { python3 "$HERE/metrics_check.py" milter-metrics.txt get "dime_milter_recipients_total{route=\"$1\"}"; }
dg=$(grep -c 'route=legacy downgrade=yes' "$T/alice-milter.log")
dm=$(grep -c 'outbound rcpt=.* route=dime' "$T/alice-milter.log")
[ "$(mget downgrade)" = "$dg" ] && [ "$dg" -ge 2 ] && [ "$(mget dime)" = "$dm" ] && [ "$dm" -ge 1 ] &&
    ok "milter metrics: downgrades ($dg) and DIME recipients ($dm) as logged" ||
    notok "milter metrics: downgrades ($(mget downgrade), logged $dg) and DIME recipients ($(mget dime), logged $dm) as logged"
found EVERY milter-metrics.txt >out.txt
[ ! -s out.txt ] && [ -s milter-metrics.txt ] && ok "no address in the milter's metrics" ||
    notok "no address in the milter's metrics"

# ---- clean stop ----
for d in alice bob; do
    p=${MI_PID[$d]}
    milter_stop "$d"
    [ ! -e "$(env_dir "$d" milter)/milter.sock" ] && ! kill -0 "$p" 2>/dev/null && ok "$d's milter stopped by its PID" ||
        notok "$d's milter stopped by its PID"
done

echo "1..$n"
[ "$failed" -eq 0 ]
