#!/usr/bin/env bash
# Replies to DIME mail and mail from sendmail(1) (issue 19, items 3 and 4), TAP output.
#
# The two-domain gateway of test_e2e.sh (lib/e2e.sh: alice.test and bob.test on loopback, each
# with Postfix, dime-milter, dime-relayd, dime-keyvaultd; nsd with DNSSEC; each DIME domain
# routed to the other's port-25-like listener by plain SMTP, so whatever leaves as plain SMTP
# arrives in a mailbox). Both Postfix instances run the milter for sendmail(1) mail and their
# own bounces (non_smtpd_milters, internal_mail_filter_classes = bounce), and both milters
# have sign-local-submissions = true. Checks:
#   - a DIME message arrives with Return-Path: <alice@alice.test>, the verified author. No
#     Sieve engine is installed here: Sieve's envelope test ("from") and vacation read this
#     envelope sender, which the delivery agent writes as Return-Path;
#   - `sendmail -t` at alice's Postfix (its own sendmail with -C) leaves as D/MIME: bob's
#     mailbox has it with dime=pass, delivered through bob's relay;
#   - a reply through bob's sendmail(1) to that Return-Path, as a Sieve vacation action sends
#     it with the user's address as envelope sender, reaches alice as D/MIME;
#   - a bounce bob's Postfix makes for a DIME message (dan@bob.test is an alias of a user
#     bob's Postfix does not know) is never sent in clear: it has no author to sign, so bob's
#     milter tempfails it and Postfix keeps the message queued; alice gets nothing in clear;
#   - then bob's domain gets notice-author = mailer-daemon@bob.test (a Trustful account made
#     with dimectl user add at setup) and bob's milter is reloaded: the queued bounce, retried,
#     reaches alice's mailbox as D/MIME with dime=pass for mailer-daemon@bob.test, its content
#     the DSN (multipart/report with the original's header fields), Postfix's From kept as
#     Original-From; still nothing reaches alice.test as plain SMTP;
#   - a null-sender message an SMTP client submits to bob's trusted listener for alice is not
#     signed as the notice author (only mail without an SMTP client is a notice).
#
# usage: test_replies.sh MILTER KEYVAULTD DIMECTL RELAYD RELAYCTL DIME-SIGNET
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"
source "$HERE/lib/e2e.sh"
e2e_args "$@"

for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf postqueue sendmail script swaks; do
    command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ "$(id -u)" = 0 ] || skip_all "needs root (private Postfix instances)"

START=$SECONDS
source "$HERE/lib/postfix.sh"
source "$HERE/lib/dime_env.sh"
trap env_cleanup EXIT
declare -A MX_PORT=()
env_pf_hook() {
    e2e_mx_hook "$1" || return 1
    # dan@bob.test is accepted, then rewritten to a user bob's Postfix does not know (after the
    # milter, in cleanup): its delivery fails for good and Postfix bounces the message
    if [ "$1" = bob ]; then
        pf_set "$T/pf-bob" 'virtual_alias_maps = inline:{ { dan@bob.test = gone@bob.test } }'
    fi
}
die() { e2e_die "$@"; }
# e2e.sh's accounts, and bob's notice author: an ordinary Trustful account
eval "e2e_$(declare -f env_user_hook)"
env_user_hook() {
    e2e_env_user_hook "$1" || return 1
    [ "$1" = bob ] || return 0
    "$CTL" -c "$T/bob/dime.conf" user add mailer-daemon@bob.test >/dev/null 2>>setup.log
}
# Postfix's local_login_sender_maps makes each local login use only its own addresses
# (sendmail(1) and postdrop enforce it); that is what sign-local-submissions relies on
MILTER_EXTRA='sign-local-submissions = true'
e2e_init || die "setup failed"
PFA=$T/pf-alice
PFB=$T/pf-bob
pf_set "$PFA" 'local_login_sender_maps = inline:{ { root = alice@alice.test } }' &&
    pf_set "$PFB" 'local_login_sender_maps = inline:{ { root = bob@bob.test } }' &&
    pf_reload "$PFA" && pf_reload "$PFB" || die "local_login_sender_maps"
cd "$T" || die "cd"
# the premise: sendmail(1) refuses a sender the login does not own (nothing reaches the milter)
printf 'From: mallory@alice.test\n\nx\n' >forged.eml
if pf_sendmail "$PFA" mallory@alice.test bob@bob.test <forged.eml 2>forged.err ||
    ! grep -q "not authorized to use sender" forged.err; then
    sed 's/^/# /' forged.err
    die "sendmail let root send as mallory@alice.test despite local_login_sender_maps"
fi
echo "# setup took $((SECONDS - START)) s"

MARK=rp$RANDOM$RANDOM$RANDOM
msg() { # msg FILE FROM TO TAG
    {
        printf 'From: %s\nTo: %s\nSubject: %s subject %s\n' "$2" "$3" "$4" "$MARK"
        printf 'Date: Thu, 26 Nov 2026 12:00:00 +0000\nMessage-ID: <%s.%s@example>\n' "$4" "$MARK"
        printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n'
        printf 'Hello,\nthe %s body %s\n' "$4" "$MARK"
    } | sed 's/$/\r/' >"$1"
}
# the delivered file of TAG in USER's Maildir at Postfix DIR
delivered() { pf_mail_files "$1" "$2" | xargs -r grep -l "^Subject: $3 subject $MARK"; }
ar_pass() { grep -q "^Authentication-Results: mx.bob.test; dime=pass header.from=alice@alice.test (author signet " "$1"; }

# ---- the envelope sender of delivered DIME mail ----
msg m1.eml alice@alice.test bob@bob.test sieve
e2e_send alice alice@alice.test bob@bob.test m1.eml && pf_wait_mail "$PFB" bob 1 60
F=$(delivered "$PFB" bob sieve)
F1=$F
# the Return-Path Postfix's virtual(8) writes is the envelope sender: what Sieve's
# envelope :all :is "from" test compares and where vacation (RFC 5230) sends its reply
if [ -n "$F" ] && ar_pass "$F" &&
    [ "$(grep -m1 '^Return-Path:' "$F")" = 'Return-Path: <alice@alice.test>' ] &&
    grep -q 'from=<alice@alice.test>' "$PFB/maillog"; then
    ok "alice -> bob over DIME, dime=pass; envelope sender the verified author: Return-Path: <alice@alice.test>"
else
    notok "alice -> bob over DIME, dime=pass; envelope sender the verified author: Return-Path: <alice@alice.test>"
    [ -n "$F" ] && grep -m1 '^Return-Path:' "$F" | sed 's/^/# /'
fi

# ---- sendmail -t at alice's Postfix ----
nb=$(pf_mail_count "$PFB" bob)
s0=$(grep -c 'outbound submitted=1 ' "$T/alice-milter.log")
msg m2.eml alice@alice.test 'Bob <bob@bob.test>' sendmail-t
pf_sendmail "$PFA" alice@alice.test -t <m2.eml || notok "sendmail -t exit status"
# handed to alice's relay (the milter's submission), decrypted by bob's milter, and the plain
# SMTP route to bob's port-25-like listener saw nothing from alice's Postfix
if pf_wait_mail "$PFB" bob $((nb + 1)) 60 && F=$(delivered "$PFB" bob sendmail-t) && [ -n "$F" ] &&
    ar_pass "$F" && [ "$(grep -c 'outbound submitted=1 ' "$T/alice-milter.log")" -gt "$s0" ] &&
    grep -q "inbound domain=bob.test result=pass origin=alice.test" "$T/bob-milter.log" &&
    ! grep -q "client=.*\[${ADDR[alice]}\]" "$PFB/maillog" && [ "$(pf_queue_count "$PFA")" = 0 ]; then
    ok "sendmail -t from alice: D/MIME through the relays, in bob's mailbox with dime=pass, nothing in clear"
else
    notok "sendmail -t from alice: D/MIME through the relays, in bob's mailbox with dime=pass, nothing in clear"
fi

# ---- a vacation-style reply to the Return-Path of that message ----
# what a Sieve vacation action does with sieve_vacation_send_from_recipient = yes: a reply
# through bob's sendmail(1), from bob's address, to the envelope sender of the delivered mail
na=$(pf_mail_count "$PFA" alice)
RP=$(sed -n '1,/^\r*$/s/^Return-Path: <\(.*\)>\r*$/\1/p' "${F1:-/dev/null}" | head -1)
msg m5.eml bob@bob.test "${RP:-nobody}" vacation
[ -n "$RP" ] && pf_sendmail "$PFB" bob@bob.test "$RP" <m5.eml
if [ "$RP" = alice@alice.test ] && pf_wait_mail "$PFA" alice $((na + 1)) 60 &&
    F=$(delivered "$PFA" alice vacation) && [ -n "$F" ] &&
    grep -q "^Authentication-Results: mx.alice.test; dime=pass header.from=bob@bob.test (author signet " "$F" &&
    ! grep -q "client=.*\[${ADDR[bob]}\]" "$PFA/maillog"; then
    ok "a reply sent with sendmail(1) to the delivered Return-Path reaches alice as D/MIME (dime=pass)"
else
    notok "a reply sent with sendmail(1) to the delivered Return-Path reaches alice as D/MIME (dime=pass)"
fi

# ---- a bounce bob's Postfix makes for a DIME message ----
t0=$(grep -c 'reason="notice with the null sender' "$T/bob-milter.log")
na=$(pf_mail_count "$PFA" alice)
msg m4.eml alice@alice.test dan@bob.test bounce
BOUNCED=0
if e2e_send alice alice@alice.test dan@bob.test m4.eml; then
    for ((i = 0; i < 600; i++)); do
        [ "$(grep -c 'reason="notice with the null sender' "$T/bob-milter.log")" -gt "$t0" ] && BOUNCED=1 && break
        sleep 0.1
    done
fi
if [ "$BOUNCED" = 1 ] && grep -q 'to=<gone@bob.test>, orig_to=<dan@bob.test>.* dsn=5.1.1, status=bounced' "$PFB/maillog" &&
    postqueue -c "$PFB/etc" -j | grep -q '"sender": "alice@alice.test"'; then
    ok "a bounce of a DIME message to its author: tempfailed by bob's milter, kept in bob's queue"
else
    notok "a bounce of a DIME message to its author: tempfailed by bob's milter, kept in bob's queue"
    grep -i 'bounce\|dan@' "$PFB/maillog" | tail -5 | sed 's/^/# /'
fi
sleep 3
# bob's Postfix connects from its own address; the relays inject from 127.0.0.1
if [ "$(pf_mail_count "$PFA" alice)" = "$na" ] && ! grep -q "client=.*\[${ADDR[bob]}\]" "$PFA/maillog" &&
    ! grep -rlq "bounce subject $MARK" "$PFA/mail"; then
    ok "the bounce never reached alice.test as plain SMTP"
else
    notok "the bounce never reached alice.test as plain SMTP"
fi

# ---- the same bounce once bob's domain has a notice author ----
r0=$(grep -c 'reload config=.* result=done' "$T/bob-milter.log")
sed -i 's/^domain "bob.test" {$/&\n  notice-author = "mailer-daemon@bob.test"/' "$T/bob/dime.conf"
kill -HUP "$(cat "$(env_dir bob milter)/milter.pid")"
for ((i = 0; i < 100; i++)); do
    [ "$(grep -c 'reload config=.* result=done' "$T/bob-milter.log")" -gt "$r0" ] && break
    sleep 0.1
done
s1=$(grep -c 'outbound submitted=1 ' "$T/bob-milter.log")
postqueue -c "$PFB/etc" -f
F=
if pf_wait_mail "$PFA" alice $((na + 1)) 60; then
    F=$(pf_mail_files "$PFA" alice | xargs -r grep -l "^Subject: bounce subject $MARK")
fi
if [ -n "$F" ] &&
    grep -q "^Authentication-Results: mx.alice.test; dime=pass header.from=mailer-daemon@bob.test (author signet " "$F" &&
    sed -n '1,/^\r*$/p' "$F" | grep -q '^From: mailer-daemon@bob.test' &&
    sed -n '1,/^\r*$/p' "$F" | grep -qi '^Original-From: .*<MAILER-DAEMON@mx.bob.test>' &&
    sed -n '1,/^\r*$/p' "$F" | grep -qi '^Content-Type: multipart/report; report-type=delivery-status' &&
    grep -Eqi '^Content-Type: (message/rfc822|text/rfc822-headers)' "$F" && grep -q '^Final-Recipient: rfc822; gone@bob.test' "$F" &&
    grep -q "^Message-ID: <bounce.$MARK@example>" "$F" &&
    [ "$(grep -c 'outbound submitted=1 ' "$T/bob-milter.log")" -gt "$s1" ]; then
    ok "with notice-author: the queued bounce reaches alice as D/MIME, dime=pass for mailer-daemon@bob.test, a DSN with the original's header"
else
    notok "with notice-author: the queued bounce reaches alice as D/MIME, dime=pass for mailer-daemon@bob.test, a DSN with the original's header"
    [ -n "$F" ] && sed -n '1,/^\r*$/p' "$F" | sed 's/^/# /'
    tail -3 "$T/bob-milter.log" | sed 's/^/# /'
fi
if ! grep -q "client=.*\[${ADDR[bob]}\]" "$PFA/maillog" && [ "$(pf_queue_count "$PFB")" = 0 ]; then
    ok "the signed bounce left bob through DIME only, and bob's queue is empty"
else
    notok "the signed bounce left bob through DIME only, and bob's queue is empty"
fi

# ---- a null sender from an SMTP client is no notice ----
w0=$(grep -c 'why: not converted' "$T/bob-milter.log")
s0=$(grep -c 'outbound submitted=' "$T/bob-milter.log")
msg m6.eml MAILER-DAEMON@bob.test alice@alice.test smtpnull
e2e_send bob '<>' alice@alice.test m6.eml
for ((i = 0; i < 100; i++)); do
    [ "$(grep -c 'why: not converted' "$T/bob-milter.log")" -gt "$w0" ] && break
    sleep 0.1
done
sleep 2
if [ "$(grep -c 'why: not converted' "$T/bob-milter.log")" -gt "$w0" ] &&
    [ "$(grep -c 'outbound submitted=' "$T/bob-milter.log")" = "$s0" ] &&
    ! pf_mail_files "$PFA" alice | xargs -r grep -l "^Subject: smtpnull subject $MARK" |
        xargs -r grep -q 'dime=pass header.from=mailer-daemon@bob.test'; then
    ok "a null-sender message from an SMTP client (trusted listener) is not signed as the notice author"
else
    notok "a null-sender message from an SMTP client (trusted listener) is not signed as the notice author"
fi

echo "# duration $((SECONDS - START)) s"
echo "1..$n"
[ "$failed" = 0 ]
