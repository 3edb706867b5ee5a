#!/usr/bin/env bash
# Sender binding with a real SASL server (issue 13), TAP output.
#
# alice.test and bob.test as in the end-to-end test (lib/dime_env.sh: Postfix, dime-milter,
# dime-relayd, dime-keyvaultd per domain, nsd with the signed zones). alice.test's vault holds
# alice@ and carol@alice.test (both Trustful). A private Dovecot (lib/dovecot.sh) is the SASL
# server of alice's Postfix: logins alice and carol in a passwd-file. Two submission listeners
# on alice's Postfix take AUTH PLAIN (smtpd_sasl_type = dovecot) and run dime-milter, which
# gets the login as {auth_authen}:
#   SASL_PORT    relay only for authenticated clients; the sender is checked by the milter
#                alone (its sender-login-map, dime-milter(8))
#   PFMAP_PORT   the same plus Postfix's own check, as contrib/README.postfix shows it:
#                smtpd_sender_login_maps + reject_sender_login_mismatch
# The client is Python's smtplib (smtp_auth.py). Cases: alice as herself is signed and
# delivered (dime=pass at bob); alice with MAIL FROM:<carol@> or with From: carol@ gets 550
# 5.7.1 from the milter and the keyvault signs nothing; after the milter restarts with a
# sender-login-map that lets alice use carol's address, the same message is signed as carol
# and delivered; a wrong password gets Postfix's 535 from Dovecot's answer.
#
# usage: test_sasl.sh MILTER KEYVAULTD DIMECTL RELAYD
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
MILTER=$(abs "$1")
KVD=$(abs "$2")
CTL=$(abs "$3")
RLD=$(abs "$4")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"
CLIENT="$HERE/smtp_auth.py"

source "$HERE/lib/sasl_env.sh"

ALICE_PW=alice-$RANDOM$RANDOM
CAROL_PW=carol-$RANDOM$RANDOM
env_user_hook() {
    [ "$1" = alice ] || return 0
    "$CTL" -c "$T/alice/dime.conf" user add carol@alice.test >/dev/null 2>>setup.log
}
env_pf_hook() { # Dovecot, and the two SASL listeners on alice's Postfix
    [ "$1" = alice ] || return 0
    dv_start "$T/dovecot" "alice:$ALICE_PW" "carol:$CAROL_PW" || return 1
    SASL_PORT=$(env_pick) && PFMAP_PORT=$(env_pick) || return 1
    printf 'alice@alice.test alice\ncarol@alice.test carol\n' >"$T/sender_login"
    local pf=$T/pf-alice sock
    sock="unix:$(env_dir alice milter)/milter.sock"
    local sasl=(smtpd_sasl_auth_enable=yes smtpd_sasl_type=dovecot "smtpd_sasl_path=$DV_SOCK"
        smtpd_relay_restrictions=permit_sasl_authenticated,reject)
    pf_listener "$pf" "${ADDR[alice]}" "$SASL_PORT" "$sock" "${sasl[@]}"
    pf_listener "$pf" "${ADDR[alice]}" "$PFMAP_PORT" "$sock" "${sasl[@]}" \
        "smtpd_sender_login_maps=texthash:$T/sender_login" \
        smtpd_sender_restrictions=reject_sender_login_mismatch
}
ENV_MILTER=$MILTER ENV_USERS=${ENV_USERS:-auto}
ENV_PF_USERS=([alice]="alice carol" [bob]=bob)
env_init "$KVD" "$CTL" "$RLD" || die "setup failed"
echo "# ENV_USERS=$ENV_USERS (1: each daemon started as root becomes its own user)"
PFB=$T/pf-bob
KVLOG=$T/alice-kv.log
cd "$T" || die "cd"

MARK=sasl$RANDOM$RANDOM
msg() { # msg FILE FROM TAG
    {
        printf 'From: %s\nTo: Bob <bob@bob.test>\nSubject: %s %s\n' "$2" "$3" "$MARK"
        printf 'Date: Mon, 07 Dec 2026 12:00:00 +0000\nMessage-ID: <%s.%s@example>\n' "$3" "$MARK"
        printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\nHello from %s.\n' "$3"
    } | sed 's/$/\r/' >"$1"
}
# send PORT LOGIN PASSWORD MAIL-FROM FILE: to bob@bob.test; the reply line in out.txt
send() {
    python3 "$CLIENT" "${ADDR[alice]}" "$1" "$2" "$3" "$4" bob@bob.test "$5" >out.txt 2>err.txt
}
# signs [PRINCIPAL]: how many signatures the keyvault made (as PRINCIPAL): op=sign for each
# chunk hash and the author signatures, op=sign-stream for a streamed one
signs() { grep -c "op=sign\(-stream\)\? principal=${1:-[^ ]*} .*result=ok" "$KVLOG"; }
delivered() { # delivered N TAG FROM: bob has N messages, the one tagged TAG with dime=pass for FROM
    local f
    pf_wait_mail "$PFB" bob "$1" 60 || return 1
    f=$(grep -l "^Subject: $2 $MARK" "$PFB"/mail/bob/new/* "$PFB"/mail/bob/cur/* 2>/dev/null | head -1)
    [ -n "$f" ] && grep -q "^Authentication-Results: mx.bob.test; dime=pass header.from=$3 " "$f"
}
# accepted PORT SENDER FILE TAG: alice's login; queued, and bob gets it with dime=pass for SENDER
accepted() {
    local nb
    nb=$(pf_mail_count "$PFB" bob)
    send "$1" alice "$ALICE_PW" "$2" "$3" && has "sent 250" && delivered $((nb + 1)) "$4" "$2"
}
# refused PORT PASSWORD SENDER FILE REPLY: alice's login; refused with REPLY ("STAGE CODE TEXT")
refused() { ! send "$1" alice "$2" "$3" "$4" && has "$5"; }
# check DESC CMD...: one TAP line, ok when CMD succeeds
check() {
    local d=$1
    shift
    if "$@"; then ok "$d"; else notok "$d"; fi
}
ge1() { [ "$1" -ge 1 ]; }

# ---- alice as herself ----
msg m1.eml alice@alice.test own
check "alice authenticated through Dovecot, as herself: delivered to bob with dime=pass" \
    accepted "$SASL_PORT" alice@alice.test m1.eml own
check "the keyvault signed as alice@alice.test" ge1 "$(signs alice@alice.test)"

# ---- alice as carol: refused by the milter, nothing signed ----
nb=$(pf_mail_count "$PFB" bob) ns=$(signs)
msg m2.eml carol@alice.test env
check "alice with MAIL FROM:<carol@alice.test>: 550 5.7.1 from the milter" \
    refused "$SASL_PORT" "$ALICE_PW" carol@alice.test m2.eml \
    "data 550 5.7.1 DIME: the login alice does not own the sender address carol@alice.test; nothing signed"
msg m3.eml carol@alice.test from
check "alice with From: carol@alice.test: 550 5.7.1 from the milter" \
    refused "$SASL_PORT" "$ALICE_PW" alice@alice.test m3.eml \
    "data 550 5.7.1 DIME: the From field must name the sender address alice@alice.test alone to be signed"
sleep 2 # anything that slipped through would be on its way to bob by now
grep "op=sign" "$KVLOG" | tail -3 >out.txt
: >err.txt
check "nothing signed (as carol or anyone), nothing reached bob" \
    [ "$(signs carol@alice.test) $(signs) $(pf_mail_count "$PFB" bob)" = "0 $ns $nb" ]

# ---- Postfix's own check in front of the milter (smtpd_delay_reject, the default, answers
# sender restrictions at RCPT TO) ----
check "smtpd_sender_login_maps + reject_sender_login_mismatch: alice as carol refused before DATA" \
    refused "$PFMAP_PORT" "$ALICE_PW" carol@alice.test m2.eml \
    "rcpt 553 5.7.1 <carol@alice.test>: Sender address rejected: not owned by user alice"
msg m4.eml alice@alice.test pfmap
check "with Postfix's check as well, alice as herself is delivered with dime=pass" \
    accepted "$PFMAP_PORT" alice@alice.test m4.eml pfmap

# ---- a sender-login-map that lets alice use carol's address (read at start: restart) ----
printf '# alice may send as carol (and carol herself)\ncarol@alice.test alice, carol\n' >login.map
chmod 644 login.map
sed -i "s|^  log-why = true|  log-why = true\n  sender-login-map = \"$T/login.map\"|" alice/dime.conf
milter_stop alice
milter_start alice || die "the milter did not start with the sender-login-map"
msg m5.eml carol@alice.test granted
check "login map grants carol@ to alice: accepted, delivered to bob with dime=pass as carol" \
    accepted "$SASL_PORT" carol@alice.test m5.eml granted
check "now the keyvault signed as carol@alice.test" ge1 "$(signs carol@alice.test)"

# ---- the SASL server is really asked (last: Dovecot delays the next logins from an address
# that failed, its auth penalty) ----
check "a wrong password: Postfix answers 535 5.7.8 after asking Dovecot" \
    refused "$SASL_PORT" "wrong-$ALICE_PW" alice@alice.test m1.eml "auth 535 5.7.8"
tail -3 dovecot/dovecot.log >out.txt
check "Dovecot's log has the password mismatch for alice" \
    grep -q "passwd-file(alice,.*Password mismatch" dovecot/dovecot.log

echo "1..$n"
[ "$failed" -eq 0 ]
