#!/usr/bin/env bash
# The DIME record's pol=, sub= and ttl= as the gateway honours them (issue 15, item 1), TAP
# output. Real nsd with DNSSEC-signed zones, real relays, milters and Postfix (lib/dime_env.sh):
# alice.test and bob.test, each Postfix with a port-25-like listener behind its milter
# (MX_PORT), the other DIME domain routed there by plain SMTP, so whatever a gateway lets out
# as plain SMTP arrives in a mailbox. erin@bob.test has a mailbox but no DIME account (bob's
# DX answers SGNT for her with 576). on-no-signet = accept at both domains.
#
# bob.test's record is changed three times with dimectl dns-record, re-signed and served by a
# restarted nsd; alice's relay is restarted after each change (its resolver keeps DNS answers
# for their TTL, 300 s here; the relay's own record cache stays unless said otherwise):
#   1. pol=mixed (the default) sub=strict: erin gets plain SMTP (downgrade); plain mail on
#      alice's port 25 claiming bob.test is accepted; sub.bob.test is refused (sub=strict).
#   2. pol=strict sub=relaxed ttl=20: nothing goes plain to erin: she is no such user of a
#      strict domain (550 5.1.1 at submission, bob's listener sees nothing); in a message to
#      bob and nobody@bob.test only nobody's RCPT gets 550 5.1.1, bob gets it; plain mail
#      claiming bob.test as envelope sender or in From is refused with 550 5.7.1 through
#      Postfix and the milter; sub.bob.test follows bob.test's record.
#   3. sub=explicit ttl=20: the relay still answers from its cache at once, and within the
#      record's ttl= (20 s, far below the DNS TTL of 300 s) it sees the new record;
#      sub.bob.test is then not a DIME domain.
#
# usage: test_record.sh MILTER KEYVAULTD DIMECTL RELAYD RELAYCTL DIME-SIGNET
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
MILTER=$(abs "$1")
KVD=$(abs "$2")
CTL=$(abs "$3")
RLD=$(abs "$4")
RLC=$(abs "$5")
DS=$(abs "$6")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"

for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf swaks; do
    command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ "$(id -u)" = 0 ] || skip_all "needs root (private Postfix instances)"
START=$(date +%s)

source "$HERE/lib/postfix.sh"
source "$HERE/lib/dime_env.sh"
source "$HERE/lib/e2e.sh" # its env_user_hook adds dan@ and carol@bob.test (no mailboxes here)
trap env_cleanup EXIT
declare -A MX_PORT=()
env_pf_hook() { e2e_mx_hook "$1"; }
die() { e2e_die "$@"; }
# every daemon as root: dimectl rewrites bob's record from bob's store while it runs
ENV_MILTER=$MILTER ENV_USERS=0
ENV_DOMAIN_EXTRA='on-no-signet = "accept"'
ENV_PF_USERS=([alice]=alice [bob]="bob erin")
env_init "$KVD" "$CTL" "$RLD" || die "setup failed"
PFA=$T/pf-alice
PFB=$T/pf-bob
cd "$T" || die "cd"
echo "# setup took $(($(date +%s) - START)) s"

MARK=rec$RANDOM$RANDOM
msg() { # msg FILE FROM-FIELD TAG
    printf 'From: %s\r\nTo: someone\r\nSubject: %s %s\r\nMessage-ID: <%s.%s@example>\r\n\r\n%s body\r\n' \
        "$2" "$3" "$MARK" "$3" "$MARK" "$3" >"$1"
}
submit() { # submit FROM RCPT FILE: alice's submission listener (a trusted client)
    swaks --server "${ADDR[alice]}" --port "${SUB_PORT[alice]}" --from "$1" --to "$2" \
        --data "@$3" --helo client.alice.test >out.txt 2>err.txt
}
port25() { # port25 FROM RCPT FILE: alice's port-25 listener, from an address that is no
    # injection client and with no login
    swaks --server "${ADDR[alice]}" --port "${MX_PORT[alice]}" --local-interface 127.0.0.9 \
        --from "$1" --to "$2" --data "@$3" --helo mx.elsewhere.test >out.txt 2>err.txt
}
query() { "$RLC" -c "$T/alice/dime.conf" -d alice.test query "$1" >q.txt 2>&1; }
# bob_record OPTIONS...: bob.test's record from dimectl dns-record with OPTIONS, signed and
# served; alice's relay restarted (with its cache dropped when CLEAR=1)
bob_record() {
    "$CTL" -c "$T/bob/dime.conf" dns-record --tls-cert dx.bob.test.pem --pok bob/pok.key \
        --dx dx.bob.test --ttl 300 "$@" >bob.rec 2>>setup.log || return 1
    {
        printf '$ORIGIN bob.test.\n$TTL 300\n@ SOA ns.test. hostmaster.test. 1 3600 600 86400 300\n@ NS ns.test.\n'
        grep '^_d' bob.rec
        echo "dx A ${ADDR[bob]}"
    } >zones/bob.test.zone
    local z ksk zsk
    read -r z ksk zsk < <(grep '^bob.test ' keys/keys.txt)
    ldns-signzone -f zones/bob.test.signed -o bob.test. zones/bob.test.zone "keys/$zsk" "keys/$ksk" \
        >>setup.log 2>&1 || return 1
    env_nsd_start || return 1
    relay_stop alice
    local c
    c=$(env_dir alice relay)/cache.db
    [ "${CLEAR:-0}" = 1 ] && rm -f "$c" "$c-wal" "$c-shm"
    relay_start alice
}

# ---- 1. pol=mixed (what dns-record publishes unless told), sub=strict ----
rec_text() { sed -n '/^_dime/{s/" "//g;p}' bob.rec; } # the record, its strings joined
rec_text | grep -q ' pol=mixed .* sub=strict"$' &&
    ok "dimectl dns-record publishes pol=mixed by default" ||
    notok "dimectl dns-record publishes pol=mixed by default"

msg m1.eml alice@alice.test mixed-erin
if submit alice@alice.test erin@bob.test m1.eml && pf_wait_mail "$PFB" erin 1 60 &&
    grep -q 'domain=bob.test outcome=refused route=legacy downgrade=yes action=accept' "$T/alice-milter.log"; then
    ok "pol=mixed: a user without a signet follows on-no-signet (accept): plain SMTP, logged as a downgrade"
else
    notok "pol=mixed: a user without a signet follows on-no-signet (accept): plain SMTP, logged as a downgrade"
fi

msg p1.eml bob@bob.test port25-mixed
port25 bob@bob.test alice@alice.test p1.eml && pf_wait_mail "$PFA" alice 1 60 &&
    ok "pol=mixed: plain mail on port 25 claiming the domain is accepted" ||
    notok "pol=mixed: plain mail on port 25 claiming the domain is accepted"

query sub.bob.test
grep -q '^outcome=refused' q.txt && grep -q 'says sub=strict' q.txt && grep -q '^policy=mixed' q.txt &&
    ok "sub=strict: a subdomain without a record of its own is refused, never 'not DIME'" ||
    { sed 's/^/# /' q.txt; notok "sub=strict: a subdomain without a record of its own is refused, never 'not DIME'"; }

# ---- 2. pol=strict sub=relaxed ttl=20 ----
CLEAR=1 bob_record --policy strict --sub relaxed --record-ttl 20 || die "record 2"
rec_text | grep -q ' pol=strict .* ttl=20 sub=relaxed"$' || die "record 2: $(rec_text)"

# erin has a mailbox at bob's Postfix but no signet: under a DNSSEC-signed pol=strict record
# and a verified DX that answers SGNT for her with 576 she is no address a DIME sender can
# reach, for good (LOOKUP.md no-such-user): 550 5.1.1 at submission, whatever on-no-signet says
NO_USER550="^<\*\* *550 5.1.1 DIME: a recipient's DIME domain has no such user"
rcpt_reply() { grep -A1 -F -- "-> RCPT TO:<$1>" out.txt | sed -n 2p; } # swaks's reply to it
listener_before=$(grep -c 'to=<erin@bob.test>' "$PFB/maillog")
ne=$(pf_mail_count "$PFB" erin)
msg m2.eml alice@alice.test strict-erin
if ! submit alice@alice.test erin@bob.test m2.eml && rcpt_reply erin@bob.test | grep -q "$NO_USER550" &&
    grep -q 'domain=bob.test outcome=refused event=no-signet action=reject policy=strict no-such-user=yes' "$T/alice-milter.log"; then
    ok "pol=strict: a user without a signet is no such user: 550 5.1.1 at RCPT although on-no-signet = accept"
else
    sed 's/^/# /' out.txt | grep '<\*\*' | head -3
    notok "pol=strict: a user without a signet is no such user: 550 5.1.1 at RCPT although on-no-signet = accept"
fi
query nobody@bob.test
grep -q '^outcome=refused' q.txt && grep -q '^dnssec=secure' q.txt && grep -q '^no-user-signet=yes' q.txt &&
    grep -q '^no-such-user=yes' q.txt && grep -q '576 no such signet' q.txt &&
    ok "the lookup answer for an unknown user of a secure strict domain says no-such-user=yes (DX reply 576)" ||
    { sed 's/^/# /' q.txt; notok "the lookup answer for an unknown user of a secure strict domain says no-such-user=yes (DX reply 576)"; }

# a known and an unknown recipient in one message: the milter looks each recipient up at
# RCPT, so only the unknown one is refused (550 5.1.1 for that RCPT); the message goes on to
# bob over DIME
nb=$(pf_mail_count "$PFB" bob)
msg m3.eml alice@alice.test strict-two
submit alice@alice.test bob@bob.test,nobody@bob.test m3.eml
if rcpt_reply nobody@bob.test | grep -q "$NO_USER550" && rcpt_reply bob@bob.test | grep -q '^<- *250 ' &&
    grep -q '^<- *250 .*queued as' out.txt &&
    pf_wait_mail "$PFB" bob $((nb + 1)) 60 && grep -rq "strict-two $MARK" "$PFB/mail"; then
    ok "two recipients, one unknown at the strict domain: that RCPT gets 550 5.1.1, bob gets the message over DIME"
else
    grep -E '^(<-|<\*\*)' out.txt | sed 's/^/# /' | tail -6
    notok "two recipients, one unknown at the strict domain: that RCPT gets 550 5.1.1, bob gets the message over DIME"
fi
sleep 2
{ [ "$(grep -c 'to=<erin@bob.test>' "$PFB/maillog")" = "$listener_before" ] &&
    [ "$(pf_mail_count "$PFB" erin)" = "$ne" ] && ! grep -q "strict-erin.$MARK" "$PFB/maillog" &&
    [ "$(pf_mail_count "$PFB" bob)" = $((nb + 1)) ] && ! grep -q 'to=<nobody@bob.test>' "$PFB/maillog" &&
    [ "$(pf_queue_count "$PFA")" = 0 ] && [ "$(pf_queue_count "$PFB")" = 0 ] &&
    e2e_queues_empty; } &&
    ok "unknown recipients: bob's plain-SMTP listener received nothing, no refused message reached a mailbox, every Postfix and relay queue is empty" ||
    notok "unknown recipients: bob's plain-SMTP listener received nothing, no refused message reached a mailbox, every Postfix and relay queue is empty"

na=$(pf_mail_count "$PFA" alice)
STRICT550="^<\*\* *550 5.7.1 DIME: the sender domain bob.test publishes the strict DIME policy pol=strict"
msg p2.eml bob@bob.test port25-env
if ! port25 bob@bob.test alice@alice.test p2.eml && grep -q "$STRICT550" out.txt &&
    grep -q 'inbound plain claimed=bob.test policy=strict event=strict-sender action=reject' "$T/alice-milter.log"; then
    ok "pol=strict: plain mail on port 25 with the domain as envelope sender: 550 5.7.1 through Postfix and the milter"
else
    grep '<\*\*' out.txt | sed 's/^/# /' | head -3
    notok "pol=strict: plain mail on port 25 with the domain as envelope sender: 550 5.7.1 through Postfix and the milter"
fi
msg p3.eml 'Bob <bob@bob.test>' port25-from
! port25 someone@elsewhere.test alice@alice.test p3.eml && grep -q "$STRICT550" out.txt &&
    ok "pol=strict: plain mail on port 25 with the domain only in From: 550 5.7.1" ||
    notok "pol=strict: plain mail on port 25 with the domain only in From: 550 5.7.1"
msg p4.eml someone@elsewhere.test port25-legacy
port25 someone@elsewhere.test alice@alice.test p4.eml && pf_wait_mail "$PFA" alice $((na + 1)) 60 &&
    ! grep -rq -e "port25-env $MARK" -e "port25-from $MARK" "$PFA/mail" &&
    ok "a sender without DIME still gets through; neither refused message reached a mailbox" ||
    notok "a sender without DIME still gets through; neither refused message reached a mailbox"

query bob.test
bobfp=$(sed -n 's/^org-fp=//p' q.txt)
query sub.bob.test
grep -q '^outcome=secure' q.txt && grep -q '^inherited-from=bob.test' q.txt &&
    grep -q '^policy=strict' q.txt && [ -n "$bobfp" ] && grep -qxF "org-fp=$bobfp" q.txt &&
    ok "sub=relaxed: a subdomain without a record of its own follows bob.test's record, DX and org signet" ||
    { sed 's/^/# /' q.txt; notok "sub=relaxed: a subdomain without a record of its own follows bob.test's record, DX and org signet"; }

# ---- 3. sub=explicit ttl=20: the cache bounded by the record's ttl= ----
# a fresh resolution of bob.test, cached for 20 s (the record's ttl=) rather than 300 s (its
# DNS TTL)
for _ in $(seq 25); do
    query bob.test
    grep -q '^cached=no' q.txt && break
    sleep 1
done
T0=$(date +%s)
bob_record --policy strict --sub explicit --record-ttl 20 || die "record 3"
query bob.test
if grep -q '^cached=yes' q.txt && grep -q 'ttl=20 sub=relaxed$' q.txt; then
    ok "the relay answers from its cache first (the old record, sub=relaxed)"
else
    sed 's/^/# /' q.txt | head -4
    notok "the relay answers from its cache first (the old record, sub=relaxed)"
fi
seen=
for _ in $(seq 40); do
    query bob.test
    grep -q 'ttl=20 sub=explicit$' q.txt && { seen=$(($(date +%s) - T0)); break; }
    sleep 1
done
[ -n "$seen" ] && [ "$seen" -le 30 ] &&
    ok "ttl=20: the changed record is seen after ${seen} s, well within its DNS TTL of 300 s" ||
    { sed 's/^/# /' q.txt | head -4; notok "ttl=20: the changed record is seen within 30 s (DNS TTL 300 s)"; }
query sub.bob.test
grep -q '^outcome=not-dime' q.txt && grep -q 'says sub=explicit' q.txt &&
    ok "sub=explicit: a subdomain without a record of its own is not a DIME domain" ||
    { sed 's/^/# /' q.txt; notok "sub=explicit: a subdomain without a record of its own is not a DIME domain"; }

echo "# took $(($(date +%s) - START)) s"
echo "1..$n"
[ "$failed" = 0 ]
