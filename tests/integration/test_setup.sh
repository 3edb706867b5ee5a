#!/bin/bash
# test_setup.sh KEYVAULTD DIMECTL RELAYD - `dimectl setup` and `dimectl check` (dimectl(8))
# against a private nsd serving DNSSEC-signed zones, the domain's own keyvault and relay.
#
# setup on a fresh state directory makes the keys, the POK file, the DX's TLS key and
# self-signed certificate, a CSR and the first user; its records go into the signed zone
# setup.test; with the keyvault and the relay running, check prints seven OK lines and exits
# 0. Then each thing check must notice, one at a time: a record whose tls= signs another
# certificate (the tls line), no A record for the DX host (dx-host), nothing listening on the
# DX port (dx-port). setup again is idempotent for the same domain and refuses another one;
# a setup that fails before the vault stores the domain leaves no file and no domain. setup
# --apply against a private Postfix configuration (lib/postfix.sh) sets the lines postconf
# shows. Every process is stopped by its PID.
set -u
KVD=$1 CTL=$2 RLD=$3
LIB=$(cd "$(dirname "$0")/lib" && pwd)
# shellcheck source=lib/tap.sh
source "$LIB/tap.sh"
# shellcheck source=lib/nsd.sh
source "$LIB/nsd.sh"
# shellcheck source=lib/postfix.sh
source "$LIB/postfix.sh"
# shellcheck source=lib/dime_env.sh
source "$LIB/dime_env.sh" # env_pick, env_wait_tcp

for t in nsd ldns-keygen ldns-signzone postconf openssl; do
    command -v "$t" >/dev/null || skip_all "$t not installed"
done
START=$(date +%s)
T=$(mktemp -d "${TMPDIR:-/tmp}/dime-setup-test.XXXXXX")
chmod 755 "$T"
cd "$T" || exit 1
NSD_PID='' KV='' RL=''
cleanup() {
    local p
    for p in $RL $KV $NSD_PID; do kill "$p" 2>/dev/null; done
    for p in $RL $KV $NSD_PID; do wait "$p" 2>/dev/null; done
    cd /
    if [ "${KEEP:-0}" = 1 ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

IP=127.0.0.6
DNSP=$(env_pick) && DXP=$(env_pick) && INJP=$(env_pick) || { echo "Bail out! no free port"; exit 1; }
mkdir -p state zones keys nsd
# the zones' keys first: the trust anchor goes into dime.conf before setup reads it
(
    cd keys || exit 1
    for z in test setup.test; do
        echo "$z $(ldns-keygen -a ED25519 -k "$z.") $(ldns-keygen -a ED25519 "$z.")"
    done >keys.txt
) || exit 1
read -r _ TKSK TZSK < <(grep '^test ' keys/keys.txt)
read -r _ SKSK SZSK < <(grep '^setup.test ' keys/keys.txt)
TA=$(cat "keys/$TKSK.ds")
head -c 32 /dev/urandom >state/master.key
chmod 600 state/master.key
me=$(id -u)
cat >dime.conf <<CONF
keyvault {
  socket = "$T/state/kv.sock"
  database = "$T/state/kv.db"
  master-key-file = "$T/state/master.key"
  pid-file = "$T/state/kv.pid"
  user = "root"
  relay-users = {"$me"}
  milter-users = {"$me"}
}
relay {
  hostname = "dx.setup.test"
  listen-address = "$IP"
  listen-port = $DXP
  remote-port = $DXP
  remote-dual-port = $DXP
  tls-certificate = "$T/state/dx.pem"
  tls-key = "$T/state/dx.key"
  keyvault-socket = "$T/state/kv.sock"
  pid-file = "$T/state/relayd.pid"
  user = "root"
  trust-anchor-file = ""
  trust-anchor = {"$TA"}
  dns-stub = {"test. 127.0.0.1@$DNSP", "setup.test. 127.0.0.1@$DNSP"}
  dns-local-zone = {"test. transparent"}
  connect-timeout = 3
  lookup-deadline = 20
  cache-database = "$T/state/cache.db"
  lookup-socket = "$T/state/lookup.sock"
  submit-socket = "$T/state/submit.sock"
  metrics-socket = "$T/state/metrics.sock"
  queue-database = "$T/state/queue.db"
  queue-key-file = "$T/state/queue.key"
  inject-address = "127.0.0.1"
  inject-port = $INJP
}
milter {
  socket = "inet:8895@127.0.0.1"
}
domain "setup.test" {
  require-dnssec = true
}
CONF
ctl() { "$CTL" -c "$T/dime.conf" "$@"; }

# --- a setup that fails inside the vault's step leaves nothing ---
ctl setup setup.test --pok-file "$T/no/such/dir/pok.key" >out.txt 2>err.txt
rc=$?
if [ $rc -ne 0 ] && [ ! -e state/dx.key ] && [ ! -e state/dx.pem ] &&
    [ -z "$(find state -name '*.setup-*')" ] && ! ctl domain show >/dev/null 2>&1; then
    ok "setup failing at the POK file: exit $rc, no TLS file, no temporary file, no domain"
else
    notok "setup failing at the POK file left something (rc=$rc)"
fi

# --- as root with the daemons' users: the vault's files as keyvault { user } ---
if id dime-vault >/dev/null 2>&1 && id dime-relay >/dev/null 2>&1; then
    mkdir -p users/kv
    chown dime-vault users/kv && chmod 700 users/kv
    head -c 32 /dev/urandom >users/master.key
    chown dime-vault users/master.key && chmod 400 users/master.key
    sed -e "s|$T/state/kv.db|$T/users/kv/kv.db|; s|$T/state/master.key|$T/users/master.key|" \
        -e "s|$T/state/dx\.|$T/users/dx.|" -e '/^keyvault {/,/^}/s/user = "root"/user = "dime-vault"/' \
        -e '/^relay {/,/^}/s/user = "root"/user = "dime-relay"/' dime.conf >users/dime.conf
    "$CTL" -c "$T/users/dime.conf" setup setup.test --pok-file "$T/users/pok.key" \
        --user bob@setup.test >out.txt 2>err.txt
    rc=$?
    got="$(stat -c '%U' users/kv/kv.db 2>/dev/null) $(stat -c '%U %a' users/dx.key users/pok.key 2>/dev/null | tr '\n' ' ')"
    if [ $rc -eq 0 ] && [ "$got" = "dime-vault dime-relay 400 root 400 " ]; then
        ok "setup as root: the store belongs to dime-vault, the DX key to dime-relay, the POK file to root"
    else
        notok "setup as root with the daemons' users (rc=$rc, owners: $got)"
    fi
else
    ok "# SKIP no dime-vault and dime-relay users (contrib/quickstart.sh users)"
fi

# --- setup on a fresh state directory ---
ctl setup setup.test --pok-file "$T/pok.key" --user alice@setup.test --csr "$T/dx.csr" \
    --ttl 300 >setup.txt 2>err.txt
rc=$?
cp setup.txt out.txt
modes="$(stat -c %a pok.key 2>/dev/null) $(stat -c %a state/dx.key 2>/dev/null)"
if [ $rc -eq 0 ] && [ "$modes" = "400 400" ] && [ -s state/dx.pem ] && [ -s dx.csr ] &&
    grep '^_dime\.setup\.test\. 300 IN TXT ' setup.txt | grep -q ' pol=mixed ' && grep -q '^_dime.* tls=' setup.txt &&
    grep -q "^dx\.setup\.test\. 300 IN A $IP\$" setup.txt &&
    grep -q '^non_smtpd_milters = inet:127.0.0.1:8895$' setup.txt &&
    grep -q '^internal_mail_filter_classes = bounce$' setup.txt &&
    grep -q "^127.0.0.1:$INJP inet n - n - - smtpd\$" setup.txt; then
    ok "setup: exit 0, POK file and DX key 0400, certificate, CSR, records with pol=mixed and tls=, A, Postfix lines"
else
    notok "setup (rc=$rc modes=$modes)"
fi
if openssl req -in dx.csr -noout -verify 2>/dev/null &&
    openssl x509 -in state/dx.pem -noout -ext subjectAltName 2>/dev/null | grep -q 'DNS:dx.setup.test' &&
    [ "$(openssl x509 -in state/dx.pem -noout -pubkey | sha256sum)" = \
      "$(openssl req -in dx.csr -noout -pubkey | sha256sum)" ]; then
    ok "the certificate names dx.setup.test; the CSR verifies and is for the same key"
else
    notok "certificate or CSR"
fi
ctl user show alice@setup.test >out.txt 2>err.txt
if has "mode:        trustful" && ctl domain show | grep -q '(offline)'; then
    ok "the first user is Trustful; the POK is not in the vault"
else
    notok "user or POK custody after setup"
fi

# --- zones: the records setup printed, signed; nsd; the keyvault and the relay ---
sign_zones() { # $1: the lines of setup.test beyond SOA/NS; NO_DS=1: test. has no DS for it
    local zh='$ORIGIN %s.\n$TTL 300\n@ SOA ns.test. hostmaster.test. %s 3600 600 86400 300\n@ NS ns.test.\n'
    { printf "$zh" setup.test "$SERIAL"; printf '%s\n' "$1"; } >zones/setup.test.zone
    { printf "$zh" test "$SERIAL"; echo "ns A 127.0.0.1"; echo "setup NS ns.test."
      [ "${NO_DS:-0}" = 1 ] || cat "keys/$SKSK.ds"; } >zones/test.zone
    ldns-signzone -f zones/setup.test.signed -o setup.test. zones/setup.test.zone \
        "keys/$SZSK" "keys/$SKSK" >>setup.log 2>&1 &&
        ldns-signzone -f zones/test.signed -o test. zones/test.zone "keys/$TZSK" "keys/$TKSK" \
            >>setup.log 2>&1
}
nsd_run() { # (re)starts nsd on the signed zones
    if [ -n "$NSD_PID" ]; then kill "$NSD_PID"; wait "$NSD_PID" 2>/dev/null; fi
    rm -f nsd/nsd.pid
    nsd -d -c nsd/nsd.conf >>nsd.log 2>&1 &
    NSD_PID=$!
    for _ in $(seq 200); do
        ss -Hlun "src 127.0.0.1:$DNSP" | grep -q . && return 0
        sleep 0.05
    done
    return 1
}
SERIAL=1
RECORDS=$(grep -E '^(_dime|_dx|dx)\.setup\.test\. ' setup.txt)
sign_zones "$RECORDS" || { echo "Bail out! zone signing failed"; exit 1; }
nsd_write_conf nsd/nsd.conf "$T" "$DNSP" test setup.test
nsd_run || { echo "Bail out! nsd did not start"; exit 1; }
"$KVD" -f -c "$T/dime.conf" 2>>kv.log &
KV=$!
for _ in $(seq 200); do [ -S state/kv.sock ] && break; sleep 0.05; done
"$RLD" -f -c "$T/dime.conf" 2>>relayd.log &
RL=$!
env_wait_tcp "$IP" "$DXP" "$RL" || { echo "Bail out! the relay did not start"; exit 1; }

ctl check setup.test >out.txt 2>err.txt
rc=$?
oks=$(grep -c '^[a-z-]* *OK ' out.txt)
if [ $rc -eq 0 ] && [ "$oks" -eq 7 ] && ! grep -q FAIL out.txt && has "setup.test: all OK"; then
    ok "check: seven lines OK (record, parse, pok, dx-host, dx-port, tls, signet), exit 0"
else
    notok "check after setup (rc=$rc, $oks OK lines)"
fi
sed 's/^/#   /' out.txt

# --- setup again: the same domain is idempotent, another one is refused ---
pok_before=$(sha256sum <pok.key)
ctl setup setup.test --pok-file "$T/pok.key" --user alice@setup.test --ttl 300 >out.txt 2>err.txt
rc=$?
if [ $rc -eq 0 ] && has "already set up: keys kept" && has "(exists, trustful)" &&
    [ "$(sha256sum <pok.key)" = "$pok_before" ] &&
    [ "$(grep '^_dime' out.txt)" = "$(grep '^_dime' setup.txt)" ]; then
    ok "setup again for setup.test: exit 0, keys and files kept, the same record"
else
    notok "setup again (rc=$rc)"
fi
ctl setup other.test --pok-file "$T/other.pok" >out.txt 2>err.txt
rc=$?
if [ $rc -eq 1 ] && has "already holds domain setup.test" err.txt && [ ! -e other.pok ]; then
    ok "setup of another domain is refused (exit 1), nothing written"
else
    notok "setup of another domain (rc=$rc)"
fi

# --- a record whose tls= signs another certificate: the tls line ---
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=dx.setup.test -keyout other.key \
    -out other.pem 2>/dev/null
ctl dns-record --tls-cert other.pem --pok pok.key --dx dx.setup.test --ttl 300 >other.rec 2>>err.txt
SERIAL=2
sign_zones "$(grep '^_d' other.rec; grep '^dx\.setup\.test\. ' setup.txt)" && nsd_run
ctl check setup.test >out.txt 2>err.txt
rc=$?
if [ $rc -ne 0 ] && grep -q '^tls *FAIL .*tls=' out.txt && grep -q '^record *OK' out.txt &&
    grep -q '^dx-port *OK' out.txt && grep -q 'nor does it match relay { tls-certificate }' out.txt &&
    has "NOT OK"; then
    ok "check with another certificate's tls=: the tls line says so, exit $rc"
else
    notok "check with a wrong tls= (rc=$rc)"
fi
grep '^tls' out.txt | sed 's/^/#   /'

# --- no A record for the DX host: the dx-host line ---
SERIAL=3
sign_zones "$(grep -E '^_d' setup.txt)" && nsd_run
ctl check setup.test >out.txt 2>err.txt
rc=$?
if [ $rc -ne 0 ] && grep -q '^dx-host *FAIL dx.setup.test has no address' out.txt &&
    grep -q '^pok *OK' out.txt; then
    ok "check without the DX's A record: the dx-host line says so, exit $rc"
else
    notok "check without an A record (rc=$rc)"
fi

# --- no DS for setup.test in test.: the record is insecure, the record line says so ---
SERIAL=4
NO_DS=1 sign_zones "$RECORDS" && nsd_run
ctl check setup.test >out.txt 2>err.txt
rc=$?
if [ $rc -ne 0 ] && grep -q '^record *FAIL .*not DNSSEC-signed (insecure)' out.txt &&
    grep -q '^parse *OK' out.txt && grep -q '^tls *FAIL not checked: .*insecure record' out.txt; then
    ok "check with an unsigned delegation: the record line says insecure, exit $rc"
else
    notok "check with an insecure record (rc=$rc)"
fi

# --- nothing listening on the DX port: the dx-port line ---
SERIAL=5
sign_zones "$RECORDS" && nsd_run
kill "$RL"
wait "$RL" 2>/dev/null
RL=
ctl check setup.test >out.txt 2>err.txt
rc=$?
if [ $rc -ne 0 ] && grep -q "^dx-host *OK *dx.setup.test -> $IP" out.txt &&
    grep -q '^dx-port *FAIL .*connection failed' out.txt; then
    ok "check with the relay stopped: the dx-port line says the connection failed, exit $rc"
else
    notok "check with nothing on the DX port (rc=$rc)"
fi
grep '^dx-port' out.txt | sed 's/^/#   /'

# --- setup --apply on a private Postfix configuration ---
pf_create "$T/pf" 127.0.0.1 "$(env_pick)" setup.test >/dev/null 2>&1
ctl setup setup.test --pok-file "$T/pok.key" --apply --postfix-config "$T/pf/etc" \
    >out.txt 2>err.txt
rc=$?
P=$(postconf -c "$T/pf/etc" -P 2>/dev/null)
if [ $rc -eq 0 ] &&
    [ "$(postconf -c "$T/pf/etc" -h non_smtpd_milters)" = "inet:127.0.0.1:8895" ] &&
    [ "$(postconf -c "$T/pf/etc" -h internal_mail_filter_classes)" = bounce ] &&
    [ "$(postconf -c "$T/pf/etc" -h milter_default_action)" = tempfail ] &&
    grep -qx 'submission/inet/smtpd_milters = inet:127.0.0.1:8895' <<<"$P" &&
    grep -qx "127.0.0.1:$INJP/inet/smtpd_milters = inet:127.0.0.1:8895" <<<"$P" &&
    grep -qx "127.0.0.1:$INJP/inet/mynetworks = 127.0.0.0/8" <<<"$P" &&
    postconf -c "$T/pf/etc" -M submission/inet | grep -q smtpd &&
    has "skipped (no such service)"; then
    ok "setup --apply: postconf -c shows the main.cf and master.cf lines"
else
    notok "setup --apply (rc=$rc)"
fi
if pf_postfix "$T/pf" check >out.txt 2>&1; then
    ok "postfix check accepts the applied configuration"
else
    notok "postfix check after --apply"
fi
echo "# duration $(($(date +%s) - START)) s"
echo "1..$n"
[ "$failed" -eq 0 ]
