#!/usr/bin/env bash
# Integration test of dime-keyvaultd and dimectl: starts the real daemon in the foreground on
# a temporary socket and SQLite file (stopped by PID on exit), sets up a domain and users in
# every mode with dimectl, and exercises every operation with dime-kvclient, which checks the
# answers against public data (signets) and keys it generated itself. Output is TAP.
# With STORE postgresql the same runs on the PostgreSQL backend, a private server started for
# the test (lib/pg.sh): the meson test keyvault-pg-full.
#
# usage: test_keyvault.sh DAEMON DIMECTL KVCLIENT DIME-SIGNET [STORE]
set -uo pipefail
TAPLIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/tap.sh"

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KVD=$(abs "$1")
CTL=$(abs "$2")
KVC=$(abs "$3")
DS=$(abs "$4")
STORE=${5:-sqlite}

T=$(mktemp -d "${TMPDIR:-/tmp}/dime-keyvault-test.XXXXXX")
DPID=
DRC=0
stop_daemon() { # SIGTERM by PID; DRC gets the exit status (non-zero on a sanitizer report)
    DRC=0
    if [ -n "$DPID" ]; then
        kill "$DPID" 2>/dev/null
        wait "$DPID" 2>/dev/null
        DRC=$?
        DPID=
    fi
}
stop_checked() { # stop_checked DESCRIPTION
    stop_daemon
    if [ "$DRC" -eq 0 ]; then ok "$1"; else
        echo "#   daemon exit status $DRC"
        tail -20 daemon.log | sed 's/^/#   log: /'
        notok "$1"
    fi
}
# the foreground daemon by $DPID, the detached one by its PID file
trap 'stop_daemon; [ -s "$T/kv.pid" ] && kill "$(cat "$T/kv.pid")" 2>/dev/null; pg_cleanup
    rm -rf "$T"' EXIT
cd "$T"

. "$TAPLIB"
pg_cleanup() { :; }
if [ "$STORE" = postgresql ]; then
    . "$(dirname "$TAPLIB")/pg.sh"
    pg_available || skip_all "PostgreSQL server programs (postgresql) or the postgres user missing"
    pg_start || skip_all "PostgreSQL does not start here: $(tail -1 "$PG_DIR"/*.log)"
    # a second database for the passphrase test below
    pg_sql dime "CREATE DATABASE pp" >/dev/null
    STORE_LINES="store = \"postgresql\"
  store-conninfo = \"$PG_CONNINFO\""
else
    STORE_LINES="database = \"$T/kv.db\""
fi
check() { # check DESCRIPTION COMMAND...: ok when the command succeeds
    local desc=$1
    shift
    if "$@" >out.txt 2>err.txt; then ok "$desc"; else notok "$desc"; fi
}
check_fails() { # check_fails DESCRIPTION EXPECTED-EXIT PATTERN COMMAND...
    local desc=$1 want=$2 pat=$3 rc
    shift 3
    "$@" >out.txt 2>err.txt
    rc=$?
    if [ "$rc" -eq "$want" ] && grep -q -- "$pat" out.txt err.txt; then
        ok "$desc"
    else
        echo "#   exit $rc, wanted $want and '$pat'"
        notok "$desc"
    fi
}
check_out() { # check_out DESCRIPTION PATTERN COMMAND...: succeeds and prints PATTERN
    local desc=$1 pat=$2
    shift 2
    if "$@" >out.txt 2>err.txt && grep -q -- "$pat" out.txt; then ok "$desc"; else
        head -c 600 out.txt err.txt | sed 's/^/#   /'
        notok "$desc"
    fi
}

me=$(id -u)
# numeric uids without accounts for the policy tests: the relay's, the milter's, and one in
# neither class
RU=4101
MU=4102
XU=4103
head -c 32 /dev/urandom >master.key
chmod 600 master.key
write_conf() { # write_conf FILE RELAY-UIDS MILTER-UIDS [extra lines]
    cat >"$1" <<CONF
keyvault {
  socket = "$T/kv.sock"
  $STORE_LINES
  master-key-file = "$T/master.key"
  pid-file = "$T/kv.pid"
  user = "root"
  relay-users = {$2}
  milter-users = {$3}
  sign-stream-timeout = 2
  $4
}
CONF
}
# we are in both classes (the protocol tests below need the relay's and the milter's
# operations from one process); RU and MU in one each
if [ "$me" -eq 0 ] && getent group nogroup >/dev/null && command -v setpriv >/dev/null; then
    write_conf kv.conf "\"$me\", \"$RU\"" "\"$me\", \"$MU\"" 'socket-group = "nogroup"'
    as_nobody=1
    NG=$(getent group nogroup | cut -d: -f3)
else
    write_conf kv.conf "\"$me\"" "\"$me\"" ''
    as_nobody=0
fi
C="-c $T/kv.conf"

start_daemon() { # start_daemon CONFIG: foreground daemon in the background, wait for socket
    rm -f kv.sock
    "$KVD" -f -c "$1" 2>>daemon.log &
    DPID=$!
    for _ in $(seq 100); do
        [ -S kv.sock ] && return 0
        kill -0 "$DPID" 2>/dev/null || { DPID=; return 1; }
        sleep 0.05
    done
    return 1
}

# ---- configuration ----
check "-n accepts a valid configuration" "$KVD" -n -c kv.conf
sed 's/relay-users/relay-userz/' kv.conf >bad1.conf
check_fails "-n rejects an unknown option" 1 "relay-userz" "$KVD" -n -c bad1.conf
sed "s|master-key-file.*|&\n  passphrase-file = \"$T/pass\"|" kv.conf >bad2.conf
check_fails "-n rejects two master secrets" 1 "exactly one" "$KVD" -n -c bad2.conf
sed 's/milter-users = .*/milter-users = {"no-such-user-here"}/' kv.conf >bad3.conf
check_fails "-n rejects an unknown user in milter-users" 1 \
    "milter-users: no such user 'no-such-user-here'" "$KVD" -n -c bad3.conf
# the per-operation allow lists of earlier versions would silently lose their meaning
for old in allow-sign allow-sign-org allow-kek allow-unwrap allow-signet allow-history \
    allow-account; do
    sed "s/^}/  $old = {\"$me\"}\n}/" kv.conf >bad4.conf
    check_fails "-n refuses the old $old, naming its replacement" 1 \
        "$old is no longer supported: list the relay's user in relay-users and the milter's in milter-users" \
        "$KVD" -n -c bad4.conf
done
sed 's/^}/  idle-timeout = 0\n}/' kv.conf >bad5.conf
check_fails "-n refuses idle-timeout 0" 1 "idle-timeout 0 is outside 1..86400" \
    "$KVD" -n -c bad5.conf

# ---- domain and users with dimectl (the org and one user from dime-signet files) ----
"$DS" org-generate example.test -k org.key -s org.signet >/dev/null 2>&1
"$DS" user-request alice@example.test -k alice.key -r alice.ssr >/dev/null 2>&1
"$DS" user-request carol@example.test -k carol.key -r carol.ssr >/dev/null 2>&1
"$DS" user-request paul@example.test -k paul.key -r paul.ssr >/dev/null 2>&1
"$DS" user-request sam@example.test -k sam.key -r sam.ssr >/dev/null 2>&1
head -c 300 /dev/urandom >carol.blob
check_out "dimectl domain import" "pok:" "$CTL" $C domain import --key org.key --signet org.signet
check_fails "dimectl domain init refuses a second domain" 1 "already holds" \
    "$CTL" $C domain init other.test --pok-file other.pok
if [ ! -e other.pok ]; then ok "a refused domain init writes no POK file"
else notok "a refused domain init writes no POK file"; fi
check_out "dimectl user add trustful (imported key)" "trustful" \
    "$CTL" $C user add alice@example.test --key alice.key
check_out "dimectl user add trustful (imported key for the stream tests)" "trustful" \
    "$CTL" $C user add sam@example.test --key sam.key
check_out "dimectl user add trustful (vault keys)" "private keys" \
    "$CTL" $C user add Bob@Example.test
check_out "dimectl user add cautious" "encrypted blob" \
    "$CTL" $C user add carol@example.test --mode cautious --ssr carol.ssr --key-blob carol.blob
check_out "dimectl user add paranoid" "signet only" \
    "$CTL" $C user add paul@example.test --mode paranoid --ssr paul.ssr
check_fails "dimectl user add cautious without a blob" 1 "key blob" \
    "$CTL" $C user add cara@example.test --mode cautious --ssr carol.ssr
check_fails "dimectl user add with a bad mode" 2 "not trustful" \
    "$CTL" $C user add x@example.test --mode sloppy
check_fails "dimectl user add for another domain" 1 "not an address of" \
    "$CTL" $C user add x@other.test
check_fails "dimectl unknown command" 2 "unknown command" "$CTL" $C frobnicate
check_out "dimectl user list --json" '"address":"bob@example.test","mode":"trustful"' \
    "$CTL" $C --json user list
check_out "dimectl dns-record" "_dx.example.test. 3600 IN TXT" \
    "$CTL" $C dns-record --dx mx.example.test

# the key material in the vault is sealed, but names, modes and signets are nobody else's
if [ "$STORE" = postgresql ]; then ok "the vault database file mode # SKIP on PostgreSQL"
elif [ "$(stat -c %a kv.db)" = 600 ]; then ok "the vault database is created with mode 0600"
else notok "the vault database is created with mode 0600 (it is $(stat -c %a kv.db))"; fi

# ---- the daemon ----
chmod 644 master.key
check_fails "a master key with mode 0644 stops start-up" 1 "too open" \
    "$KVD" -f -c kv.conf
chmod 600 master.key
head -c 32 /dev/urandom >other.key
chmod 400 other.key
sed "s|$T/master.key|$T/other.key|" kv.conf >wrongkey.conf
check_fails "another master key stops start-up" 1 "does not match" "$KVD" -f -c wrongkey.conf

if start_daemon kv.conf; then ok "daemon starts"; else notok "daemon starts"; fi
mode=$(stat -c %a kv.sock)
if [ "$mode" = 660 ]; then ok "socket mode 0660"; else notok "socket mode 0660 (is $mode)"; fi
K="$KVC -s $T/kv.sock -d $T/responses.hex"

check "sign, KEK and unwrap as a trustful user (imported key)" $K check alice@example.test
check "sign, KEK and unwrap as a trustful user (vault key)" $K check bob@example.test
check "sign and KEK as the organization" $K check example.test
# pipelined chunk signatures (what the milter's encoder sends for a message's small chunks)
check_out "sign-many: 7 pipelined signatures equal single SIGNs" "sign-many ok 7" \
    $K sign-many bob@example.test 7
check_out "sign-many: one frame's worth" "sign-many ok 1" $K sign-many bob@example.test 1
check_out "sign-many refused for a cautious user, connection still in step" \
    "mode .*in step" sh -c "$K sign-many carol@example.test 5 | tr '\n' ' '"
check_out "account: trustful" "exists=1 mode=trustful generation=1" $K account alice@example.test
check_out "account: cautious" "exists=1 mode=cautious" $K account carol@example.test
check_out "account: paranoid" "exists=1 mode=paranoid" $K account paul@example.test
check_out "account: unknown user" "exists=0" $K account nobody@example.test
check_out "cautious user: no signing in the vault" "sign mode" $K probe sign carol@example.test
check_out "paranoid user: no KEK in the vault" "kek mode" $K probe kek paul@example.test
check_out "signet of a cautious user" "signet ok" $K probe signet carol@example.test
check_out "org may not sign a chunk" "^denied .*may sign only" \
    $K raw "00000019010101000c$(printf 'example.test' | od -An -tx1 | tr -d ' \n')020001010300010a"

# signing streams (SIGN-BEGIN, SIGN-DATA..., SIGN-PASS2, SIGN-DATA..., SIGN-END)
check_out "stream: 5 MiB signature equals dc_ed25519_sign with the user's key file" \
    "stream ok 52428[89][0-9] equals-local" $K stream sam@example.test 5242880 sam.key
check_out "stream: equals a one-frame SIGN of the same message" \
    "stream ok 400[0-9][0-9] equals-sign" $K stream bob@example.test 40000
check_out "stream: the smallest author-full input equals a one-frame SIGN" \
    "stream ok 1589 equals-sign" $K stream bob@example.test 0
check_out "stream: the organization, 3 MiB, verifies with the org signet" \
    "stream ok 31457[2-4][0-9]" $K stream example.test 3145728
for how in mismatch short long order nostream; do
    check_out "stream: $how is refused and the connection still serves" \
        "^$how refused bad-request" $K stream-bad sam@example.test "$how"
    grep -q "connection still serves" out.txt || notok "stream: $how leaves a working connection"
done
check_out "stream: a second pass with other bytes is refused as such" "differs from the first" \
    $K stream-bad sam@example.test mismatch
check_fails "stream: the announced length is held to sign-stream-max" 1 \
    "bad-request: a message of 3000000[0-9][0-9] bytes exceeds sign-stream-max" \
    $K stream sam@example.test 300000000
check_out "stream: a cautious user has no key to stream with" "sign-begin mode" \
    $K probe sign-begin carol@example.test
check_out "stream: the organization may not stream a chunk purpose" "^denied .*may sign only" \
    $K raw "00000015010701000c$(printf 'example.test' | od -An -tx1 | tr -d ' \n')02000101"
# a client that stops mid-stream is dropped after sign-stream-timeout (2 s), while others are
# served meanwhile, streams included
$K stream-stall sam@example.test 10 >stall.txt 2>&1 &
stall=$!
sleep 0.3
check "stream: others are served while a stream stalls" $K check bob@example.test
check_out "stream: another stream completes while one stalls" "stream ok 10485[7-9][0-9]" \
    $K stream bob@example.test 1048576
wait "$stall"
if grep -q "closed after [23] s" stall.txt; then ok "stream: a stalled stream is dropped after the idle timeout"; else
    echo "#   $(cat stall.txt)"; notok "stream: a stalled stream is dropped after the idle timeout"; fi
check_out "stream: the timeout is logged" "op=sign-stream principal=sam@example.test purpose=author-full bytes=1000 uid=$me .*result=timeout" \
    cat daemon.log
check_out "stream: one log line per finished stream" \
    "op=sign-stream principal=sam@example.test purpose=author-full bytes=104857[6-9][0-9] uid=$me pid=[0-9]* result=ok" \
    cat daemon.log
# a whole D/MIME message through the vault: dc_message_encrypt_fd with the author's and the
# origin's signatures and the origin KEK from the vault, then dc_message_decrypt_fd as the
# recipient (KEK and signets from the vault); a one-frame signer could not sign it at all
mkdir -p msg
check_out "message: 32 MiB encrypted with vault signatures decrypts, verifies, round-trips" \
    "^message ok 33554432 " $K message sam@example.test bob@example.test 33554432 "$T/msg"
peak=$(sed -n 's/.*peak-rss-kib=\([0-9]*\).*/\1/p' out.txt)
if [ -n "${ASAN_OPTIONS:-}" ]; then
    ok "message: client peak RSS below the message size # SKIP not measured under ASan"
elif [ -n "$peak" ] && [ "$peak" -lt 32768 ]; then
    ok "message: client peak RSS ${peak} KiB, below the 32 MiB message"
else
    notok "message: client peak RSS '${peak}' KiB, below the 32 MiB message"
fi
rm -rf msg
check "daemon still serves after the stream tests" $K check sam@example.test

# rotation: new keys, custody chain, old key still decrypts by fingerprint
fp1=$($K fp alice@example.test)
check_out "rotate a trustful user" "generation:  2" "$CTL" $C user rotate alice@example.test
check "new key after rotation" $K check alice@example.test
check "old-generation KEK and unwrap by fingerprint" $K check alice@example.test "$fp1"
check_out "history verifies the chain of custody" "^2 ID" $K history alice@example.test
"$DS" user-request paul@example.test -k paul2.key -r paul2.ssr -p paul.key >/dev/null 2>&1
check_out "rotate a paranoid user with an SSR carrying custody" "generation:  2" \
    "$CTL" $C user rotate paul@example.test --ssr paul2.ssr
check_out "paranoid history verifies" "^2 ID" $K history paul@example.test
check_fails "a rotation SSR without custody is refused" 1 "custody" \
    "$CTL" $C user rotate paul@example.test --ssr paul.ssr
check_out "dimectl signet history" "^2  ID" "$CTL" $C signet history alice@example.test
check_out "dimectl user retire" "1 generation" "$CTL" $C user retire alice@example.test
check_fails "retired keys no longer unwrap" 1 "not-found" $K check alice@example.test "$fp1"
check "current key still works after retire" $K check alice@example.test

# malformed, oversized and truncated requests
check_out "bad version -> bad-request" "bad-request" $K raw 00000002ff01
check_out "unknown op -> bad-request" "bad-request" $K raw 000000020109
check_out "field past the end -> bad-request" "bad-request" $K raw 00000006010601ffff61
check_out "repeated field -> bad-request" "repeated" $K raw 0000000a01060100016101000162
check_out "missing field -> bad-request" "lacks" $K raw 000000020102
check_out "unknown tag -> bad-request" "unknown field tag" $K raw 00000009010601000161770000
check_out "oversized frame -> bad-request" "exceeds" $K raw 00010001
check_out "zero-length frame -> bad-request" "empty frame" $K raw 00000000
check_out "truncated frame -> dropped without answer" "closed-without-answer" \
    $K raw-close 0000010001060100
# requests sent before the previous answer (read together): each is answered, in order
check_out "three frames in one write -> three answers" "answers 3" \
    $K raw-pipe 00000002ff0100000002ff0100000002ff01
check_out "a frame and a truncated one -> one answer, then dropped" "answers 1" \
    $K raw-pipe 00000002ff010000010001060100
# found by fuzz_kv_frames: the error answer to a bad header replaced the answers of the
# requests before it that were not written yet
check_out "two frames and an empty one -> three answers, then dropped" "answers 3" \
    $K raw-pipe 00000002ff0100000002ff0100000000
check_out "a frame and an oversized one -> two answers, then dropped" "answers 2" \
    $K raw-pipe 00000002ff0100010001
check "daemon still serves after malformed input" $K check bob@example.test

# the vault's policy per class (kv_policy.h), as the relay's uid RU, the milter's MU, an uid
# in neither class XU and nobody, by numeric uid; every refusal says precisely why
if [ "$as_nobody" -eq 1 ]; then
    chmod 755 "$T"
    cp org.signet pub-org.signet
    # a real origin-signature input: the 255 range of the libdime conformance message
    # (tests/vectors/libdime/message.dmsg, chunks 2..249 after the 6-byte header)
    vec="$(dirname "$TAPLIB")/../../vectors/libdime/message.dmsg"
    tail -c +7 "$vec" | head -c 4541 >origin-255.bin
    chmod 644 pub-org.signet origin-255.bin
    as() { # as UID kvclient-args...: dime-kvclient under that uid and the socket's group
        local u=$1
        shift
        setpriv --reuid="$u" --regid="$NG" --clear-groups "$KVC" -s "$T/kv.sock" "$@"
    }
    ask_is() { # ask_is DESCRIPTION UID PATTERN ask-args...
        local desc=$1 u=$2 pat=$3
        shift 3
        check_out "$desc" "$pat" as "$u" ask "$@"
    }
    # the relay: origin signatures and the KEK of its own organization, public data
    ask_is "relay: KEK for a user refused" $RU \
        "^kek denied: .*relay may derive only the KEK of example.test itself, not of a user" \
        kek bob@example.test
    ask_is "relay: UNWRAP for a user refused" $RU "^unwrap denied: .*relay may not unwrap" \
        unwrap bob@example.test
    ask_is "relay: UNWRAP for the organization refused" $RU \
        "^unwrap denied: .*relay may not unwrap" unwrap example.test
    ask_is "relay: SIGN over arbitrary bytes refused" $RU \
        "^sign purpose: .*not signed: origin signature input: " sign example.test origin random
    ask_is "relay: SIGN over a signet refused" $RU \
        "^sign purpose: .*not signed: origin signature input: " \
        sign example.test origin @pub-org.signet
    ask_is "relay: a signing stream over arbitrary bytes refused" $RU \
        "^sign-stream purpose: .*not signed: origin signature input: " \
        sign-stream example.test origin random
    ask_is "relay: a signet signature refused" $RU \
        "^sign purpose: .*signet signatures are made by dimectl on the database, never over the socket" \
        sign example.test signet valid
    ask_is "relay: a TLS-binding signature refused" $RU \
        "^sign purpose: .*tls signatures are made by dimectl" sign example.test tls valid
    ask_is "relay: a user's chunk signature refused" $RU \
        "^sign denied: .*relay may sign only origin signatures of example.test" \
        sign bob@example.test chunk valid
    ask_is "relay: SIGN origin for another domain refused" $RU \
        "^sign denied: .*relay may use only example.test and its users" \
        sign other.test origin valid
    for op in kek signet; do
        ask_is "relay: $op for another domain refused" $RU \
            "^$op denied: .*relay may use only example.test and its users" $op other.test
    done
    for op in signet history account; do
        ask_is "relay: $op for another domain's user refused" $RU \
            "^$op denied: .*relay may use only example.test and its users" $op bob@other.test
    done
    ask_is "relay: SIGN origin over a real origin-signature input" $RU "^sign ok" \
        sign example.test origin @origin-255.bin
    ask_is "relay: a signing stream over an origin input" $RU "^sign-stream ok" \
        sign-stream example.test origin valid
    ask_is "relay: the organization's KEK" $RU "^kek ok" kek example.test
    for op in signet history account; do
        ask_is "relay: $op of a user" $RU "^$op ok" $op bob@example.test
    done
    # the milter: author signatures and keys of the domain's users
    for purpose in origin chunk author-full; do
        ask_is "milter: organization signature ($purpose) refused" $MU \
            "^sign denied: .*milter may sign only author signatures (chunk, author-tree, author-full) of users of example.test" \
            sign example.test "$purpose" valid
    done
    ask_is "milter: organization signing stream refused" $MU \
        "^sign-stream denied: .*milter may sign only author signatures" \
        sign-stream example.test origin valid
    ask_is "milter: a signet signature refused" $MU "^sign purpose: .*signet signatures are made by dimectl" \
        sign bob@example.test signet valid
    for purpose in chunk author-tree author-full; do
        ask_is "milter: $purpose signature as a local user" $MU "^sign ok" \
            sign bob@example.test "$purpose" valid
        ask_is "milter: $purpose signature as another domain's user refused" $MU \
            "^sign denied: .*milter may use only example.test and its users" \
            sign bob@other.test "$purpose" valid
    done
    ask_is "milter: author-full signing stream as a local user" $MU "^sign-stream ok" \
        sign-stream bob@example.test author-full valid
    ask_is "milter: a chunk signature over arbitrary bytes refused" $MU \
        "^sign purpose: .*not signed: chunk signature input: " sign bob@example.test chunk random
    ask_is "milter: an author-full stream over a signet refused" $MU \
        "^sign-stream purpose: .*not signed: author full signature input: D/MIME: unknown chunk type" \
        sign-stream bob@example.test author-full @pub-org.signet
    ask_is "milter: KEK of the organization refused" $MU \
        "^kek denied: .*milter may use only the keys of users of example.test" kek example.test
    ask_is "milter: UNWRAP as the organization refused" $MU \
        "^unwrap denied: .*milter may use only the keys of users" unwrap example.test
    ask_is "milter: KEK for another domain's user refused" $MU \
        "^kek denied: .*milter may use only example.test and its users" kek bob@other.test
    ask_is "milter: history of another domain's user refused" $MU \
        "^history denied: .*milter may use only example.test and its users" history bob@other.test
    for op in kek unwrap signet account history; do
        ask_is "milter: $op of a local user" $MU "^$op ok" $op bob@example.test
    done
    # alice is at generation 2 (generation 1 retired above); one more rotation keeps 2's keys
    fp2=$($K fp alice@example.test)
    "$CTL" $C user rotate alice@example.test >/dev/null 2>&1
    check "milter: KEK and unwrap of a retained generation by fingerprint" \
        as $MU check alice@example.test "$fp2"
    check_fails "milter: KEK of the retired generation 1 is not-found" 1 "not-found" \
        as $MU check alice@example.test "$fp1"
    # only the account service (account-users) enrolls, rotates and reads key blobs
    for u in $RU $MU; do
        for op in enroll rotate blob; do
            ask_is "uid $u (relay or milter) refused: $op" $u \
                "^$op denied: .*only the account service (account-users) may $op" \
                $op carol@example.test
        done
    done
    # neither class: nothing at all
    for u in $XU nobody; do
        uid=$(id -u "$u" 2>/dev/null || echo "$u")
        for op in kek unwrap signet history account; do
            ask_is "uid $u refused: $op" "$uid" \
                "^$op denied: .*this uid is in none of relay-users, milter-users and account-users" \
                $op bob@example.test
        done
        ask_is "uid $u refused: org sign" "$uid" \
            "^sign denied: .*none of relay-users, milter-users and account-users" sign example.test origin valid
        ask_is "uid $u refused: user sign" "$uid" \
            "^sign denied: .*none of relay-users, milter-users and account-users" sign bob@example.test chunk valid
        ask_is "uid $u refused: sign-begin" "$uid" \
            "^sign-stream denied: .*none of relay-users, milter-users and account-users" \
            sign-stream example.test origin valid
    done
    check_out "a refusal is logged with the class and the reason" \
        "op=kek principal=bob@example.test uid=$RU class=relay pid=[0-9]* result=denied reason=\"relay may derive only" \
        cat daemon.log
    chmod 700 "$T"
else
    ok "policy by uid class # SKIP needs root, setpriv and the group nogroup"
fi
stop_checked "daemon stops cleanly on SIGTERM"
write_conf other.conf '"4242424"' '"4242425"' 'idle-timeout = 1'
if start_daemon other.conf; then ok "daemon starts with classes excluding us"; else
    notok "daemon starts with classes excluding us"; fi
for op in sign kek unwrap signet history account sign-begin; do
    check_out "uid $me in neither class refused: $op" "$op denied" \
        "$KVC" -s "$T/kv.sock" probe "$op" bob@example.test
done
stop_checked "second daemon stops cleanly"

# idle-timeout: a kept connection idle longer is closed by the vault, and the client's next
# request goes through on a new connection (kv_client retries once)
write_conf idle.conf "\"$me\"" "\"$me\"" 'idle-timeout = 1'
start_daemon idle.conf || notok "daemon starts with idle-timeout 1"
check_out "an idle connection is closed after idle-timeout" "closed after [12] s" \
    $K idle bob@example.test 5
if grep -q "reused ok" out.txt; then ok "the client's next request reconnects once and succeeds"; else
    echo "#   $(cat out.txt err.txt)"; notok "the client's next request reconnects once and succeeds"; fi
check_out "the idle close is logged" \
    "uid=$me pid=[0-9]* result=closed reason=\"idle for 1 s (idle-timeout)\"" cat daemon.log
check_out "in the middle of a stream, sign-stream-timeout (2 s) applies, not idle-timeout" \
    "closed after [23] s" $K stream-stall bob@example.test 5
stop_checked "idle-timeout daemon stops cleanly"

# 64 concurrent clients
start_daemon kv.conf || notok "daemon restarts"
check_out "64 concurrent clients, sign + KEK + unwrap each" "failures=0" \
    $K stress 64 10 bob@example.test
check_out "64 concurrent clients as the organization" "failures=0" \
    $K stress 64 5 example.test
check_out "one log line per request with key=value fields" \
    "op=sign principal=bob@example.test purpose=chunk uid=$me" cat daemon.log
stop_checked "daemon stops cleanly after the concurrency run"

# set-mode: a rotation into another mode (SSR with custody from the user's current key)
"$DS" user-request carol@example.test -k carol2.key -r carol2.ssr -p carol.key >/dev/null 2>&1
check_out "dimectl user set-mode cautious -> paranoid" "mode:        paranoid" \
    "$CTL" $C user set-mode carol@example.test paranoid --ssr carol2.ssr
check_fails "dimectl user set-mode with a bad mode" 2 "needs a mode" \
    "$CTL" $C user set-mode carol@example.test careless

# detached daemon with a PID file; as root also the privilege drop to `user`
if [ "$me" -eq 0 ] && id nobody >/dev/null 2>&1; then
    chown nobody kv.db kv.db-wal kv.db-shm 2>/dev/null
    chown nobody "$T"
    sed 's|^  user = "root"$|  user = "nobody"|' kv.conf >drop.conf
    dconf=drop.conf
else
    dconf=kv.conf
fi
rm -f kv.pid kv.sock
if "$KVD" -c "$T/$dconf" 2>>daemon.log; then ok "daemon detaches"; else notok "daemon detaches"; fi
for _ in $(seq 100); do [ -s kv.pid ] && [ -S kv.sock ] && break; sleep 0.05; done
bgpid=$(cat kv.pid 2>/dev/null)
if [ -n "$bgpid" ] && kill -0 "$bgpid" 2>/dev/null; then ok "PID file names the daemon"; else
    notok "PID file names the daemon"; fi
if [ "$dconf" = drop.conf ]; then
    user=$(ps -o user= -p "$bgpid" 2>/dev/null | tr -d ' ')
    if [ "$user" = nobody ]; then ok "privileges dropped to nobody"; else
        notok "privileges dropped to nobody (runs as '$user')"; fi
fi
check "detached daemon serves" $K check bob@example.test
[ -n "$bgpid" ] && kill "$bgpid" 2>/dev/null
for _ in $(seq 100); do kill -0 "$bgpid" 2>/dev/null || break; sleep 0.05; done
if ! kill -0 "$bgpid" 2>/dev/null; then ok "detached daemon stops on SIGTERM"; else
    notok "detached daemon stops on SIGTERM"; kill -9 "$bgpid"; fi
chown -R "$me" "$T" 2>/dev/null

# kill -9 during user add and rotate: afterwards every user is whole (the user row and its
# current generation agree, the custody chain verifies) or absent
torn=0
for i in $(seq 12); do
    "$CTL" $C user add "k$i@example.test" >/dev/null 2>&1 &
    p1=$!
    "$CTL" $C user rotate bob@example.test >/dev/null 2>&1 &
    p2=$!
    sleep "0.0$((i % 10))"
    kill -9 "$p1" "$p2" 2>/dev/null
    wait "$p1" "$p2" 2>/dev/null
    if "$CTL" $C --json user show "k$i@example.test" >show.json 2>/dev/null; then
        gen=$(grep -o '"generation":[0-9]*' show.json | head -1 | cut -d: -f2)
        last=$(grep -o '"generation":[0-9]*' show.json | tail -1 | cut -d: -f2)
        [ "$gen" = 1 ] && [ "$last" = 1 ] || torn=$((torn + 1))
    fi
done
"$CTL" $C --json user show bob@example.test >show.json 2>&1
gen=$(grep -o '"generation":[0-9]*' show.json | head -1 | cut -d: -f2)
last=$(grep -o '"generation":[0-9]*' show.json | tail -1 | cut -d: -f2)
if [ "$torn" -eq 0 ] && [ -n "$gen" ] && [ "$gen" = "$last" ] &&
    "$CTL" $C signet history bob@example.test >out.txt 2>err.txt; then
    ok "kill -9 during user add and rotate leaves whole states (bob at generation $gen)"
else
    notok "kill -9 during user add and rotate leaves whole states ($torn torn, $gen/$last)"
fi

# a passphrase instead of a key file (scrypt), and a wrong passphrase
printf 'correct horse battery staple\n' >pass
chmod 600 pass
sed "s|master-key-file.*|passphrase-file = \"$T/pass\"|; s|$T/kv.db|$T/pp.db|; s|dbname=dime|dbname=pp|" \
    kv.conf >pp.conf
check_out "dimectl with a passphrase-derived master key" "pok:" \
    "$CTL" -c "$T/pp.conf" domain init pp.test --pok-file pp.pok
printf 'another passphrase here\n' >pass
check_fails "a wrong passphrase is refused" 4 "does not match" "$CTL" -c "$T/pp.conf" domain show

# no private key bytes in any response, log line or dimectl output
"$CTL" $C domain show >ctl.txt 2>&1
"$CTL" $C --json user show alice@example.test >>ctl.txt 2>&1
"$CTL" $C --json signet show example.test >>ctl.txt 2>&1
"$CTL" $C dns-record >>ctl.txt 2>&1
keybytes() { # the 32-byte private values of a variant A key file, as hex, one per line
    grep -v -e '-----' -e '^=' "$1" | base64 -d | od -An -v -tx1 | tr -d ' \n' |
        sed -E 's/^.{14}(.{64}).{6}(.{64}).*/\1\n\2/'
}
leaks=0
nkeys=0
for kf in org.key alice.key; do
    for hex in $(keybytes "$kf"); do
        nkeys=$((nkeys + 1))
        b64=$(printf '%s' "$hex" | xxd -r -p | base64 -w0 | tr -d '=')
        for f in responses.hex daemon.log ctl.txt; do
            if grep -qi -- "$hex" "$f" || grep -qF -- "$b64" "$f"; then
                echo "#   key bytes of $kf found in $f"
                leaks=$((leaks + 1))
            fi
        done
    done
done
if [ "$nkeys" -eq 4 ] && [ -s responses.hex ] && [ "$leaks" -eq 0 ]; then
    ok "no private key bytes in responses, log or dimectl output ($nkeys keys searched)"
else
    notok "no private key bytes in responses, log or dimectl output ($nkeys keys, $leaks hits)"
fi
# self-check of the extraction: the first value of org.key is the POK seed, whose public key
# is the POK that dimectl shows
seed=$(keybytes org.key | head -1)
pub=$(printf '302e020100300506032b657004220420%s' "$seed" | xxd -r -p |
    openssl pkey -inform DER -pubout -outform DER 2>/dev/null | tail -c 32 | base64 -w0 | tr -d '=')
if [ -n "$pub" ] && grep -qF "pok:             $pub" ctl.txt; then
    ok "the searched bytes are the real keys (POK seed gives the published POK)"
else
    notok "the searched bytes are the real keys (POK seed gives the published POK)"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
