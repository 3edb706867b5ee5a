# shellcheck shell=bash
# tests/milter/fixture.sh - what the dime-milter tests share (source it; bash). Needs DS, DM,
# CTL (dime-signet, dime-message, dimectl), T (the test directory, also the current
# directory), SCEN (this directory) and die.
#
#   wait_sock PATH PID, pick_port    readiness of a Unix socket, a free loopback port
#   milter_conf FILE KV LOOKUP SUBMIT [domain option...]   a dime.conf for the domain b.test
#   fixture_setup   keys: a.test (alice) as files, b.test in a keyvault database (bob
#                   Trustful, dave Paranoid); main.conf; messages under data/ (orig.eml,
#                   out.eml, plain.eml, wrappers for bob, dave, tampered, bogus author, and
#                   own-dave.eml: Paranoid dave's own D/MIME for alice, own-dave.dmsg its
#                   bytes); the fake relay's lookup table under table/ (al@a.test: a second
#                   DIME recipient; nobody@ and erin@strict.test: no signet at a strict
#                   domain, definitive and not)
#   fp FILE         the crypto fingerprint of a signet file

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

AUTHSERV=mx.b.test
me=$(id -u)

milter_conf() { # milter_conf FILE KV-SOCKET LOOKUP-SOCKET SUBMIT-SOCKET [domain options...]
    local f=$1 kv=$2 lk=$3 sb=$4
    shift 4
    cat >"$f" <<CONF
keyvault {
  socket = "$T/kv.sock"
  database = "$T/kv.db"
  master-key-file = "$T/master.key"
  pid-file = "$T/kv.pid"
  user = "root"
  milter-users = {"$me"}
}
milter {
  socket = "unix:$T/milter.sock"
  keyvault-socket = "$kv"
  relay-lookup-socket = "$lk"
  relay-submit-socket = "$sb"
  trusted-networks = {"127.0.0.0/8", "::1"}
  injection-clients = {"127.0.0.1"}
  injection-database = "$T/injections.db"
  authserv-id = "$AUTHSERV"
  pid-file = ""
  user = "root"
  timeout = 10
  log-why = true
}
domain "b.test" {
$(printf '  %s\n' "$@")
}
CONF
}

fixture_setup() {
mkdir -p a b data spool table
{
    "$DS" org-generate a.test -k a/org.key -s a/org.signet &&
    "$DS" org-generate b.test -k b/org.key -s b/org.signet &&
    "$DS" user-request alice@a.test -k a/alice.key -r a/alice.ssr &&
    "$DS" sign a/alice.ssr -k a/org.key -i alice@a.test -o a/alice.signet &&
    "$DS" user-request dave@b.test -k b/dave.key -r b/dave.ssr
} >setup.log 2>&1 || die "dime-signet setup"
head -c 32 /dev/urandom >master.key
chmod 600 master.key
# the strict setting (the default is on-no-signet = accept): t-main.lua checks that mail to
# a domain without DIME is then tempfailed
milter_conf main.conf "$T/kv.sock" "$T/lookup.sock" "$T/submit.sock" 'on-no-signet = tempfail'
{
    "$CTL" -c main.conf domain import --key b/org.key --signet b/org.signet &&
    "$CTL" -c main.conf user add bob@b.test &&
    "$CTL" -c main.conf user add dave@b.test --mode paranoid --ssr b/dave.ssr &&
    "$CTL" -c main.conf signet show bob@b.test --armor >b/bob.signet &&
    "$CTL" -c main.conf signet show dave@b.test --armor >b/dave.signet
} >>setup.log 2>&1 || die "dimectl setup"

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
# D/MIME Paranoid dave's own client made for alice (author form: the relay adds the origin
# signatures), in the wrapper his client submits
"$DM" encrypt --author-signet b/dave.signet --author-key b/dave.key --origin-signet b/org.signet \
    --dest-signet a/org.signet --recipient-signet a/alice.signet -i data/out.eml -o own-dave.dmsg \
    >>setup.log 2>&1 || die "dave's own D/MIME"
wrap own-dave.dmsg alice@a.test data/own-dave.eml
sed -i 's/^From: <alice@a.test>/From: <dave@b.test>/' data/own-dave.eml
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
cp table/alice@a.test table/al@a.test # a second DIME recipient (alice's signets)
printf 'outcome=not-dime\nreason=no record (DNSSEC: secure)\n' >table/carol@nodime.test
printf 'outcome=not-dime\nreason=no record (DNSSEC: secure)\n' >table/x@nodime2.test
# reasons that name the address, as a relay's may: the milter's log must not pass them on
printf 'outcome=bogus\nreason=signature expired for eve@bogus.test\n' >table/eve@bogus.test
printf 'outcome=bogus\nreason=signature expired for mallory@bogus.test\n' >table/mallory@bogus.test
printf 'outcome=bogus\nreason=signature expired\n' >table/bogus.test
printf 'outcome=tempfail\nreason=DNS timeout\n' >table/t@slow.test
echo CLOSE >table/zed@dead.test
# a strict domain's DX refused SGNT for the user: definitively (576 under a secure record,
# no-such-user) and not (an insecure record)
printf 'outcome=refused\ndnssec=secure\npolicy=strict\nno-user-signet=yes\nno-such-user=yes\nreason=SGNT nobody@strict.test: 576 no such signet\n' >table/nobody@strict.test
printf 'outcome=refused\ndnssec=insecure\npolicy=strict\nno-user-signet=yes\nreason=SGNT erin@strict.test: 576 no such signet\n' >table/erin@strict.test

}
