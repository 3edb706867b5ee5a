#!/usr/bin/env bash
# Integration test of dime-relayd and dime-relayctl (trust and discovery), TAP output.
#
# Starts on loopback, in a temporary directory, every process stopped by its PID on exit:
#   nsd on 127.0.0.1:$DNSP serving test. (signed, the trust anchor) and, delegated from it,
#     alice.test and bob.test (signed, DS in test.), bad.test (signed, then its TXT edited),
#     plain.test (unsigned, no DS); test. itself holds records for wrongtls.test,
#     wronghost.test, evil.test and tamper.test that point at the relays below;
#   a keyvault and a relayd for alice.test (127.0.0.2), bob.test (127.0.0.3) and plain.test
#     (127.0.0.4), each with its own RSA certificate from a test CA and tls= in its record;
#   a fake DX (dmtp_peer.py) on 127.0.0.5 serving signets no real relay would serve, and one
#     on 127.0.0.6 in dual mode (STARTTLS on the "port 25" of an MX host).
# Zones are signed at test time with ldns-keygen/ldns-signzone. Needs: nsd, ldnsutils,
# openssl, python3, ss (iproute2).
#
# usage: test_relay.sh KEYVAULTD DIMECTL RELAYD RELAYCTL
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KVD=$(abs "$1")
CTL=$(abs "$2")
RLD=$(abs "$3")
RLC=$(abs "$4")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEER="$HERE/dmtp_peer.py"
# shellcheck source=lib/nsd.sh
source "$HERE/lib/nsd.sh"

for t in nsd ldns-keygen ldns-signzone openssl python3 ss; do
    if ! command -v "$t" >/dev/null; then
        if [ -n "${DIME_TESTS_STRICT:-}" ]; then
            echo "Bail out! $t is not installed (DIME_TESTS_STRICT is set)"
            exit 1
        fi
        echo "1..0 # SKIP $t is not installed"
        exit 0
    fi
done

T=$(mktemp -d "${TMPDIR:-/tmp}/dime-relay-test.XXXXXX")
chmod 755 "$T"
PIDS=()
stop_pid() { # SIGTERM, wait; returns the exit status
    local pid=$1 rc=0
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rc=$?
    return $rc
}
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [ "${KEEP:-0}" = 1 ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
cd "$T"

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() {
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $1"
    [ -s out.txt ] && sed -n '1,20s/^/#   out: /p' out.txt
    [ -s err.txt ] && sed -n '1,10s/^/#   err: /p' err.txt
}
die() {
    echo "Bail out! $*"
    for f in "$T"/*.log; do [ -s "$f" ] && tail -5 "$f" | sed "s|^|# $(basename "$f"): |"; done
    exit 1
}
# expect DESCRIPTION EXIT PATTERN COMMAND...: the command exits EXIT and its output has PATTERN
expect() {
    local desc=$1 want=$2 pat=$3 rc
    shift 3
    "$@" >out.txt 2>err.txt
    rc=$?
    { echo "== $desc (exit $rc)"; cat out.txt err.txt; } >>cases.log
    if [ "$rc" -eq "$want" ] && grep -q -- "$pat" out.txt; then ok "$desc"; else
        echo "#   exit $rc, wanted $want and '$pat'"
        notok "$desc"
    fi
}

# ---- ports: two free high ports (DNS on 127.0.0.1, DMTP on 127.0.0.2-5) ----
free_port() { ! ss -Htuln | awk '{print $5}' | grep -qE "[:.]$1\$"; }
pick() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 30000))
        if free_port "$p" && [ "$p" != "${DNSP:-}" ]; then echo "$p"; return 0; fi
    done
    return 1
}
DNSP=$(pick) || die "no free port"
DXP=$(pick) || die "no free port"
DUALP=$(pick) || die "no free port"
[ "$DUALP" != "$DXP" ] || DUALP=$(pick) || die "no free port"
wait_tcp() { # wait_tcp ADDR PORT PID
    for _ in $(seq 200); do
        ss -Htln "src $1:$2" | grep -q . && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# ---- certificates: a test CA and one RSA certificate per DX ----
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=DIME relay test CA" -keyout ca.key -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    2>/dev/null || die "CA"
for h in dx.alice.test dx.bob.test dx.plain.test dx.evil.test; do
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$h" -keyout "$h.key" -out "$h.csr" \
        2>/dev/null || die "key $h"
    printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$h" >"$h.ext"
    openssl x509 -req -in "$h.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile "$h.ext" -out "$h.pem" 2>/dev/null || die "cert $h"
done

# ---- keyvaults, domains, users, records ----
me=$(id -u)
conf() { # conf NAME ADDR REQUIRE-DNSSEC IDLE CACHE-TTL MAX-CLIENTS [LINES]: NAME/dime.conf
    local d=$T/$1
    mkdir -p "$d"
    head -c 32 /dev/urandom >"$d/master.key"
    chmod 600 "$d/master.key"
    cat >"$d/dime.conf" <<CONF
keyvault {
  socket = "$d/kv.sock"
  database = "$d/kv.db"
  master-key-file = "$d/master.key"
  pid-file = "$d/kv.pid"
  user = "root"
  relay-users = {"$me"}
}
relay {
  hostname = "dx.$1.test"
  listen-address = "$2"
  listen-port = $DXP
  remote-port = $DXP
  remote-dual-port = $DUALP
  tls-certificate = "$T/dx.$1.test.pem"
  tls-key = "$T/dx.$1.test.key"
  ca-file = "$T/ca.pem"
  keyvault-socket = "$d/kv.sock"
  pid-file = "$d/relayd.pid"
  user = "root"
  trust-anchor-file = ""
  trust-anchor = {"@TA@"}
  dns-stub = {"test. 127.0.0.1@$DNSP", "alice.test. 127.0.0.1@$DNSP", "bob.test. 127.0.0.1@$DNSP",
              "bad.test. 127.0.0.1@$DNSP", "plain.test. 127.0.0.1@$DNSP"}
  dns-local-zone = {"test. transparent"}
  idle-timeout = $4
  max-errors = 5
  connect-timeout = 3
  cache-database = "$d/cache.db"
  pin-database = "$d/pins.db"
  lookup-socket = "$d/lookup.sock"
  submit-socket = "$d/submit.sock"
  metrics-socket = "$d/metrics.sock"
  queue-database = "$d/queue.db"
  queue-key-file = "$d/queue.key"
  signet-cache-ttl = $5
  max-clients = $6
  ${7:-}
}
domain "$1.test" {
  require-dnssec = $3
}
CONF
}
# alice: a whole resolution within 5 s, 256 connections from one address (the case
# "concurrent" below); plain: 2 DX hosts and 2 addresses of each at most
conf alice 127.0.0.2 true 30 3600 256 "lookup-deadline = 5
  max-clients-per-address = 256"
conf bob 127.0.0.3 true 2 "${RELAY_BOB_CACHE_TTL:-2}" 256
conf plain 127.0.0.4 false 30 3600 4 "dx-max-hosts = 2
  dx-max-addresses = 2"
for d in alice bob plain; do
    "$CTL" -c "$d/dime.conf" domain init "$d.test" --pok-file "$d/pok.key" >/dev/null \
        2>>setup.log || die "domain init $d"
    "$CTL" -c "$d/dime.conf" user add "$d@$d.test" >/dev/null 2>>setup.log || die "user add $d"
    "$CTL" -c "$d/dime.conf" dns-record --tls-cert "dx.$d.test.pem" --pok "$d/pok.key" \
        --dx "dx.$d.test" --ttl 300 >"$d.rec" 2>>setup.log || die "dns-record $d"
done
"$CTL" -c alice/dime.conf dns-record --tls-cert dx.evil.test.pem --pok alice/pok.key \
    --dx dx.evil.test --ttl 300 >evil.rec 2>>setup.log || die "dns-record evil"
# bob's POK signing alice's certificate: a tls= that matches no POK of alice's record
"$CTL" -c bob/dime.conf dns-record --tls-cert dx.alice.test.pem --pok bob/pok.key --ttl 300 \
    >wrongtls.rec 2>>setup.log || die "dns-record wrongtls"
field() { grep -m1 '^_dime' "$1" | grep -o "$2=[^ \"]*" | head -1; }
ALICE_POK=$(field alice.rec pok)
rec_of() { grep -m1 '^_dime' "$1" | sed 's/^[^"]*//'; }

# ---- zones ----
mkdir -p zones keys
zone_head() { # zone_head ZONE
    printf '$ORIGIN %s.\n$TTL 300\n@ SOA ns.test. hostmaster.test. 1 3600 600 86400 300\n@ NS ns.test.\n' "$1"
}
declare -A ADDR=([alice]=127.0.0.2 [bob]=127.0.0.3 [plain]=127.0.0.4)
declare -A RPID
for d in alice bob plain; do
    { zone_head "$d.test"; grep '^_d' "$d.rec"; echo "dx A ${ADDR[$d]}"; } >"zones/$d.test.zone"
done
{ zone_head bad.test; grep '^_d' alice.rec | sed 's/alice\.test\./bad.test./'; } >zones/bad.test.zone
{
    zone_head test
    echo "ns A 127.0.0.1"
    for d in alice bob plain bad; do echo "$d NS ns.test."; done
    echo "_dime.wrongtls TXT \"ver=1 $ALICE_POK $(field wrongtls.rec tls) dx=dx.alice.test\""
    echo "_dime.wronghost TXT \"ver=1 $ALICE_POK dx=alias.wronghost.test\""
    echo "alias.wronghost A 127.0.0.2"
    echo "_dime.evil TXT $(rec_of evil.rec)"
    echo "_dime.tamper TXT $(rec_of evil.rec)"
    echo "dx.evil A 127.0.0.5"
    echo "_dime.dual TXT \"ver=1 $ALICE_POK $(field evil.rec tls)\""
    echo "dual MX 10 mx.dual.test."
    echo "mx.dual A 127.0.0.6"
    # slow.test: three DX hosts that accept TCP and never answer (a blackhole on 127.0.0.13)
    echo "_dime.slow TXT \"ver=1 $ALICE_POK dx=h1.slow.test dx=h2.slow.test dx=h3.slow.test\""
    for h in h1 h2 h3; do echo "$h.slow A 127.0.0.13"; done
    # many.test: one DX host with three addresses where nothing listens
    echo "_dime.many TXT \"ver=1 $ALICE_POK dx=m.many.test\""
    for a in 20 21 22; do echo "m.many A 127.0.0.$a"; done
} >zones/test.zone.in
(
    cd keys || exit 1
    for z in test alice.test bob.test bad.test; do
        echo "$z $(ldns-keygen -a ED25519 -k "$z.") $(ldns-keygen -a ED25519 "$z.")"
    done >keys.txt
) || die "ldns-keygen"
while read -r z ksk zsk; do
    if [ "$z" = test ]; then
        TKSK=$ksk
        TZSK=$zsk
        continue
    fi
    ldns-signzone -f "zones/$z.signed" -o "$z." "zones/$z.zone" "keys/$zsk" "keys/$ksk" \
        >>setup.log 2>&1 || die "sign $z"
    cat "keys/$ksk.ds" >>zones/test.zone.in
done <keys/keys.txt
cp zones/plain.test.zone zones/plain.test.signed
# bad.test: edited after signing (a different dx), so its signature no longer verifies
sed -i 's/dx=dx\.alice\.test/dx=evil.example/' zones/bad.test.signed
ldns-signzone -f zones/test.signed -o test. zones/test.zone.in "keys/$TZSK" "keys/$TKSK" \
    >>setup.log 2>&1 || die "sign test"
TA=$(cat "keys/$TKSK.ds")
for d in alice bob plain; do sed -i "s|@TA@|$TA|" "$d/dime.conf"; done

mkdir -p nsd
nsd_write_conf nsd/nsd.conf "$T" "$DNSP" test alice.test bob.test bad.test plain.test
nsd -d -c nsd/nsd.conf >>nsd.log 2>&1 &
NSD_PID=$!
PIDS+=("$NSD_PID")
for _ in $(seq 200); do
    ss -Hlun "src 127.0.0.1:$DNSP" | grep -q . && break
    kill -0 "$NSD_PID" 2>/dev/null || die "nsd exited"
    sleep 0.05
done
ss -Hlun "src 127.0.0.1:$DNSP" | grep -q . || die "nsd is not listening"

# ---- daemons ----
for d in alice bob plain; do
    "$KVD" -f -c "$d/dime.conf" 2>>"$d-kv.log" &
    PIDS+=("$!")
    kp=$!
    for _ in $(seq 200); do
        [ -S "$d/kv.sock" ] && break
        kill -0 "$kp" 2>/dev/null || die "keyvault $d exited"
        sleep 0.05
    done
    "$RLD" -f -c "$d/dime.conf" 2>>"$d-relayd.log" &
    RPID[$d]=$!
    PIDS+=("$!")
done
for d in alice bob plain; do
    for _ in $(seq 200); do [ -S "$d/lookup.sock" ] && break; sleep 0.05; done
    [ -S "$d/lookup.sock" ] || die "relayd $d: no lookup socket"
done
wait_tcp 127.0.0.2 "$DXP" "${RPID[alice]}" || die "relayd alice not listening"
[ "$(cat alice/relayd.pid 2>/dev/null)" = "${RPID[alice]}" ] || die "relayd alice: wrong pid-file"
wait_tcp 127.0.0.3 "$DXP" "${RPID[bob]}" || die "relayd bob not listening"
wait_tcp 127.0.0.4 "$DXP" "${RPID[plain]}" || die "relayd plain not listening"

# ---- the fake DX on 127.0.0.5 ----
ALICE_ORG=$(python3 "$PEER" sgnt 127.0.0.2 "$DXP" alice.test) || die "SGNT alice.test"
BOB_USER=$(python3 "$PEER" sgnt 127.0.0.3 "$DXP" bob@bob.test) || die "SGNT bob@bob.test"
{
    printf 'evil.test\t250 OK [%s]\n' "$ALICE_ORG"
    printf 'mallory@evil.test\t250 OK [%s]\n' "$BOB_USER"
    printf 'tamper.test\t250 OK [%s]\n' "$(python3 "$PEER" tamper "$ALICE_ORG")"
} >fake.map
python3 "$PEER" fake-dx 127.0.0.5 "$DXP" dx.evil.test.pem dx.evil.test.key fake.map fake.ready \
    2>>fake.log &
PIDS+=("$!")
printf 'dual.test\t250 OK [%s]\n' "$ALICE_ORG" >dual.map
python3 "$PEER" fake-dx 127.0.0.6 "$DUALP" dx.evil.test.pem dx.evil.test.key dual.map dual.ready \
    dual 2>>fake.log &
PIDS+=("$!")
python3 "$PEER" blackhole 127.0.0.13 "$DXP" hole.ready 2>>fake.log &
PIDS+=("$!")
for _ in $(seq 200); do [ -e fake.ready ] && [ -e dual.ready ] && [ -e hole.ready ] && break; sleep 0.05; done
[ -e fake.ready ] && [ -e dual.ready ] && [ -e hole.ready ] || die "fake DX did not start"

# RELAY_ENV_HOOK (bench/lookup.sh): run a command in this environment instead of the cases
if [ -n "${RELAY_ENV_HOOK:-}" ]; then
    "$RELAY_ENV_HOOK" "$T" "$DXP" ${RELAY_ENV_HOOK_ARG:-}
    exit $?
fi

# ---- cases ----
A="-c alice/dime.conf"
B="-c bob/dime.conf"
P="-c plain/dime.conf"

# K concurrent first lookups of one name on each relay right after its start (empty cache):
# each must get the same secure answer. They once raced on creating the cache key's temporary
# file (one name per process, shared by the lookup workers) and answered tempfail; the relay
# now creates the cache when it starts, and test_relay.c opens a new cache from 16 threads.
K=8
for d in alice bob plain; do
    qp=()
    for i in $(seq $K); do
        "$RLC" -c "$d/dime.conf" query bob@bob.test >"first.$d.$i" 2>&1 &
        qp+=("$!")
    done
    bad=0
    for i in $(seq $K); do
        wait "${qp[$((i - 1))]}" || bad=$((bad + 1))
        grep -E '^(user|org)-fp=' "first.$d.$i" >"fps.$d.$i"
    done
    same=$(cat fps."$d".* | sort | uniq -c | awk -v k=$K '$1 == k' | wc -l)
    cp "first.$d.1" out.txt
    grep -h '^reason=' first."$d".* | sort | uniq -c >err.txt
    if [ "$bad" -eq 0 ] && [ "$same" -eq 2 ] && [ -e "$d/cache.db.key" ]; then
        ok "$d: $K concurrent first lookups all secure, same org and user fingerprints"
    else
        echo "#   $bad of $K failed; fingerprints the same in all: $same of 2"
        notok "$d: $K concurrent first lookups all secure, same org and user fingerprints"
    fi
done
# the same name asked K times at once (all connected before any request is sent) on a relay
# whose cache has no entry for it: resolved once, the others wait for it and read the cache
python3 - alice/lookup.sock alice@alice.test $K >out.txt 2>err.txt <<'PY'
import select, socket, sys
path, name, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
socks = []
for _ in range(k):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    socks.append(s)
for s in socks:
    s.sendall(b"LOOKUP " + name.encode() + b"\n")
answers = {s: b"" for s in socks}
open_ = set(socks)
while open_:
    ready, _, _ = select.select(list(open_), [], [], 30)
    if not ready:
        sys.exit("no answer within 30 s")
    for s in ready:
        data = s.recv(65536)
        if data:
            answers[s] += data
        else:
            open_.discard(s)
for s in socks:
    f = dict(l.split("=", 1) for l in answers[s].decode().splitlines() if "=" in l)
    print(f.get("outcome"), f.get("cached"), f.get("org-fp"), f.get("user-fp"))
PY
n_sec=$(grep -c '^secure ' out.txt)
n_res=$(grep -c '^secure no ' out.txt)
n_fp=$(awk '{print $3, $4}' out.txt | sort -u | wc -l)
[ "$n_sec" -eq $K ] && [ "$n_res" -eq 1 ] && [ "$n_fp" -eq 1 ] &&
    ok "alice: $K simultaneous lookups of one uncached name: all secure, one resolution, the others from the cache" ||
    notok "alice: $K simultaneous lookups of one uncached name: $n_sec secure, $n_res resolved, $n_fp answers"
"$RLD" -n $A >out.txt 2>err.txt && ok "dime-relayd -n accepts the shared configuration" ||
    notok "dime-relayd -n accepts the shared configuration"
"$KVD" -n $A >out.txt 2>err.txt && ok "dime-keyvaultd -n accepts the same file" ||
    notok "dime-keyvaultd -n accepts the same file"
sed 's/max-errors = 5/max-errorz = 5/' alice/dime.conf >bad.conf
"$RLD" -n -c bad.conf >out.txt 2>err.txt
[ $? -eq 1 ] && grep -q "max-errorz" err.txt && ok "an unknown relay option is an error for relayd" ||
    notok "an unknown relay option is an error for relayd"
"$KVD" -n -c bad.conf >out.txt 2>err.txt
[ $? -eq 1 ] && grep -q "max-errorz" err.txt && ok "... and for the keyvault (one schema)" ||
    notok "... and for the keyvault (one schema)"

# relay { user }: an unknown user is a configuration error. As root, the relay binds its port
# and makes its local sockets in a directory only root may write, then runs as nobody (every
# id), and still resolves through its cache, which nobody owns.
sed 's|^  user = "root"$|  user = "no-such-user-dime"|' alice/dime.conf >bad.conf
"$RLD" -n -c bad.conf >out.txt 2>err.txt
[ $? -eq 1 ] && grep -q 'relay: user no-such-user-dime: no such user' err.txt &&
    ok "an unknown relay user is a configuration error" ||
    notok "an unknown relay user is a configuration error"
if [ "$me" -eq 0 ] && id nobody >/dev/null 2>&1; then
    mkdir -p drop/var
    chown nobody drop/var
    chmod o+x "$T" # nobody reaches drop/var and ca.pem
    sed -e 's|listen-address = "127.0.0.2"|listen-address = "127.0.0.7"|' \
        -e "s#$T/alice/\(cache.db\|pins.db\|queue.db\|queue.key\)#$T/drop/var/\1#" \
        -e "s#$T/alice/\(relayd.pid\|lookup.sock\|submit.sock\)#$T/drop/\1#" \
        -e '/^relay {/,/^}/s|^  user = "root"$|  user = "nobody"|' alice/dime.conf >drop/dime.conf
    "$RLD" -f -c drop/dime.conf 2>>drop-relayd.log &
    dpid=$!
    PIDS+=("$dpid")
    wait_tcp 127.0.0.7 "$DXP" "$dpid" &&
        for _ in $(seq 200); do [ -S drop/submit.sock ] && break; sleep 0.05; done
    nu=$(id -u nobody)
    ng=$(id -g nobody)
    ids=$(awk '/^Uid:|^Gid:/ {print $2, $3, $4}' "/proc/$dpid/status" 2>/dev/null | tr '\n' ' ')
    [ "$ids" = "$nu $nu $nu $ng $ng $ng " ] &&
        ok "root-started relay runs as nobody (real, effective, saved uid and gid)" ||
        notok "root-started relay runs as nobody (ids: '$ids')"
    [ "$(stat -c '%U %a' drop/lookup.sock drop/submit.sock 2>/dev/null | sort -u)" = "nobody 660" ] &&
        [ "$(stat -c %U drop)" = root ] &&
        ok "its sockets were made before the drop, for nobody, mode 0660" ||
        notok "its sockets were made before the drop, for nobody, mode 0660"
    expect "the dropped relay resolves through its own cache" 0 "outcome=secure" \
        "$RLC" -c drop/dime.conf query bob.test
    kill "$dpid" 2>/dev/null
    wait "$dpid" 2>/dev/null
    chmod o-x "$T"
fi

expect "alice resolves bob.test: secure record, tls= check, org signet" 0 "outcome:       secure" \
    "$RLC" $A lookup bob.test
grep -q "certificate:   tls= signature verified" out.txt && grep -q "dx:            dx.bob.test address=127.0.0.3" out.txt &&
    ok "lookup shows the DX chosen and the certificate check" || notok "lookup shows the DX chosen and the certificate check"
expect "alice resolves and verifies bob@bob.test" 0 "user-signet:   state=" "$RLC" $A lookup bob@bob.test
expect "bob resolves and verifies alice@alice.test" 0 "outcome:       secure" "$RLC" $B lookup alice@alice.test
expect "bogus record (edited after signing) is refused" 1 "reason:.*bogus" "$RLC" $A lookup bad.test
expect "unsigned zone with require-dnssec is refused" 1 "reason:.*insecure" "$RLC" $A lookup plain.test
expect "unsigned zone without require-dnssec is accepted, marked insecure" 0 \
    "outcome:       insecure" "$RLC" $P lookup plain@plain.test
expect "no record (secure NXDOMAIN) means not a DIME domain" 3 "not a DIME domain.*proven by DNSSEC" \
    "$RLC" $A lookup nobody.test
expect "wrong tls= is refused" 1 "does not match the record's tls=" "$RLC" $A lookup wrongtls.test
expect "certificate for another host, without tls=, is refused" 1 "does not match the host name" \
    "$RLC" $A lookup wronghost.test
expect "a user signet signed by another org is refused" 1 "user signet of mallory@evil.test does not verify" \
    "$RLC" $A lookup mallory@evil.test
expect "no dx= and no DX on port 26: the MX host in dual mode (STARTTLS MODE=DMTPv1)" 0 \
    "dx:            mx.dual.test address=127.0.0.6 port=$DUALP (dual mode, STARTTLS)" \
    "$RLC" $A lookup dual.test
expect "tampered org signet bytes are refused" 1 "reason:.*org signet of tamper.test does not verify" \
    "$RLC" $A lookup tamper.test

# the lookup service of the running relays (signet cache: bob keeps signets 2 s)
expect "lookup service: first answer is resolved" 0 "cached=no" "$RLC" $B query alice@alice.test
grep -q "^user-signet=" out.txt && grep -q "^org-signet=" out.txt && ok "lookup service returns both signets" ||
    notok "lookup service returns both signets"
CACHED_FP=$(sed -n 's/^user-fp=//p' out.txt)
expect "lookup service: second answer comes from the cache" 0 "cached=yes" "$RLC" $B query alice@alice.test
expect "lookup service: no record means not-dime" 3 "outcome=not-dime" "$RLC" $A query nobody.test
expect "lookup service: a not-dime answer is cached (the answers' TTL, bounded)" 3 "cached=yes" \
    "$RLC" $A query nobody.test
expect "lookup service: bogus record" 1 "reason=.*bogus" "$RLC" $A query bad.test
expect "lookup service: local policy of the asking domain (require-dnssec)" 1 "outcome=refused" \
    "$RLC" $A -d alice.test query plain.test
expect "lookup service: a malformed name is refused with the reason" 1 "reason=bad name" \
    "$RLC" $A query 'a@b@c.test'

# rotation: bob saw alice's first signet; after the rotation it must follow HIST
"$RLC" $B lookup alice@alice.test >out.txt 2>err.txt
OLD_FP=$(sed -n 's/^user-signet: .*fingerprint=//p' out.txt)
"$CTL" -c alice/dime.conf user rotate alice@alice.test >/dev/null 2>>setup.log || die "rotate"
expect "a rotated user: custody chain verified through HIST (known signet)" 0 \
    "custody:       chain of 2 signets verified through HIST" "$RLC" $B --known-fp "$OLD_FP" lookup alice@alice.test
expect "a rotated user: whole history verified when nothing is known" 0 \
    "custody:       chain of 2 signets verified through HIST" "$RLC" $B lookup alice@alice.test
expect "a known fingerprint that is not in the history is refused" 1 "reason:.*HIST" \
    "$RLC" $B --known-fp "$(printf 'A%.0s' $(seq 86))" lookup alice@alice.test
# bob's cached entry expires after 2 s: the next lookup must notice the change and walk HIST
sleep 2.2
expect "lookup service: a changed user signet is accepted through HIST after the cache expires" 0 \
    "^custody=2" "$RLC" $B query alice@alice.test
NEW_FP=$(sed -n 's/^user-fp=//p' out.txt)
[ -n "$NEW_FP" ] && [ "$NEW_FP" != "$CACHED_FP" ] && ok "lookup service: the cache now holds the new signet" ||
    notok "lookup service: the cache now holds the new signet"
# a DX that does not know VRFY (the fake one answers 500): an expired entry is fetched with SGNT
vrfy_other() { "$RLC" $B stats --raw 2>/dev/null | sed -n 's/^dime_relay_signet_vrfy_total{answer="other"} //p'; }
"$RLC" $B query evil.test >/dev/null 2>&1
sleep 2.2
before=$(vrfy_other)
expect "lookup service: an expired signet from a DX without VRFY is fetched again (SGNT)" 0 \
    "^cached=no" "$RLC" $B query evil.test
after=$(vrfy_other)
[ -n "$before" ] && [ -n "$after" ] && [ "$after" -gt "$before" ] &&
    ok "the unanswered VRFY is counted (answer=other $before -> $after)" ||
    notok "the unanswered VRFY is counted (answer=other '$before' -> '$after')"

# ---- DX server robustness (alice: idle 30 s; bob: idle 2 s) ----
for c in overlong junk unknown order concurrent; do
    if timeout 120 python3 "$PEER" robust 127.0.0.2 "$DXP" "$c" >out.txt 2>err.txt; then
        ok "DX server: $c"
    else notok "DX server: $c"; fi
done
if timeout 60 python3 "$PEER" robust 127.0.0.3 "$DXP" idle >out.txt 2>err.txt; then
    ok "DX server: idle and slowloris connections are closed, others served"
else notok "DX server: idle and slowloris connections are closed, others served"; fi
if timeout 60 python3 "$PEER" robust 127.0.0.4 "$DXP" limit4 >out.txt 2>err.txt; then
    ok "DX server: connections beyond max-clients are closed, the others served"
else notok "DX server: connections beyond max-clients are closed, the others served"; fi
printf 'SGNT <alice.test>\r\nQUIT\r\n' | timeout 10 openssl s_client -quiet -tls1_2 \
    -cipher ECDHE-RSA-AES256-GCM-SHA384 -connect "127.0.0.2:$DXP" >out.txt 2>err.txt
grep -q '^250 OK \[' out.txt && ok "TLS 1.2 ECDHE-RSA-AES256-GCM-SHA384 (libdime's cipher) works" ||
    notok "TLS 1.2 ECDHE-RSA-AES256-GCM-SHA384 (libdime's cipher) works"
printf 'QUIT\r\n' | timeout 10 openssl s_client -quiet -tls1_2 -cipher AES256-SHA \
    -connect "127.0.0.2:$DXP" >out.txt 2>err.txt
grep -q '^220' out.txt && notok "a non-ECDHE, non-AEAD cipher is refused" || ok "a non-ECDHE, non-AEAD cipher is refused"

# ---- bounds of a resolution ----
# elapsed CMD...: runs CMD with out.txt/err.txt, sets SECS (tenths of a second)
elapsed() {
    local t0
    t0=$(date +%s%N)
    "$@" >out.txt 2>err.txt
    RC=$?
    SECS=$((($(date +%s%N) - t0) / 100000000))
}
elapsed "$RLC" $A lookup slow.test
if [ "$RC" = 4 ] && grep -q "lookup-deadline of 5 s passed" out.txt && [ "$SECS" -lt 65 ]; then
    ok "three silent DX hosts (connect-timeout 3 s each): lookup-deadline 5 s ends it in $SECS/10 s"
else notok "three silent DX hosts: lookup-deadline 5 s ends it (exit $RC, $SECS/10 s)"; fi
elapsed "$RLC" $P lookup slow.test
if [ "$RC" = 4 ] && grep -q "2 of 3 DX hosts tried: dx-max-hosts" out.txt && [ "$SECS" -lt 85 ]; then
    ok "dx-max-hosts 2: two of the three silent DX hosts tried ($SECS/10 s)"
else notok "dx-max-hosts 2: two of the three silent DX hosts tried (exit $RC, $SECS/10 s)"; fi
expect "dx-max-addresses 2: two of the three addresses of a DX host tried" 4 \
    "port $DXP: connection failed: Connection refused (2 addresses tried: dx-max-addresses)" \
    "$RLC" $P lookup many.test

# ---- DNS down ----
stop_pid "$NSD_PID"
expect "nsd stopped: temporary failure" 4 "outcome:       tempfail" "$RLC" $A lookup bob.test
expect "nsd stopped: the lookup service answers tempfail with a reason" 4 "^reason=DNS" \
    "$RLC" $A query carol@unknown-zone.test
expect "nsd stopped: the cached not-dime answer still holds, no DNS asked" 3 "cached=yes" \
    "$RLC" $A query nobody.test
if grep -q 'lookup outcome=tempfail cached=no reason="DNS lookup of <name> failed: ' \
    alice-relayd.log && ! grep -qiE 'carol|unknown-zone|bob\.test' alice-relayd.log; then
    ok "the relay logs why a lookup failed, naming no one"
else
    grep 'outcome=tempfail' alice-relayd.log | tail -3 | sed 's/^/#   /'
    notok "the relay logs why a lookup failed, naming no one"
fi

# ---- clean stops (a sanitizer report would make the exit status non-zero) ----
for d in alice bob plain; do
    if stop_pid "${RPID[$d]}" && [ ! -e "$d/relayd.pid" ] && [ ! -e "$d/lookup.sock" ]; then
        ok "relayd $d stops cleanly (pid-file and lookup socket removed)"
    else
        tail -5 "$d-relayd.log" | sed 's/^/#   /'
        notok "relayd $d stops cleanly"
    fi
done

echo "1..$n"
[ "$failed" -eq 0 ]
