# shellcheck shell=bash
# lib/dime_env.sh - two DIME domains on loopback for the mail transfer tests (source it after
# lib/postfix.sh; bash, run as root for Postfix). Everything lives in $T and every process
# is stopped by its PID (env_cleanup in the EXIT trap).
#
#   env_init KVD CTL RLD        sets T, ports, certificates (test CA, RSA DX certificates),
#                               alice.test (127.0.0.2) and bob.test (127.0.0.3): dime.conf,
#                               keyvault domain + user (alice@alice.test, bob@bob.test),
#                               DNSSEC-signed zones served by nsd on 127.0.0.1 (test. holds
#                               down.test, whose DX 127.0.0.9 never answers), one private
#                               Postfix per domain (injection listener PF_PORT[d]).
#                               Extra relay { } lines: RELAY_EXTRA (both relays).
#   kv_start D / kv_stop D      the keyvault of alice or bob
#   relay_start D / relay_stop D / relay_kill D (SIGKILL)
#   env_cleanup                 stops everything, removes $T (KEEP=1 keeps it)
#   env_impostor [OPTS]         an attacker's copy of bob.test on 127.0.0.5 ($T/mal, MAL_PIDS;
#                               ENV_IMPOSTOR_OF=alice: of alice.test), its own SQLite stores
#   env_publish D REC ADDR      D's zone again with REC's _dime lines and dx at ADDR, re-signed,
#                               nsd restarted
#
# Opt-in parts (unset: none of them), for the end-to-end test and the demo:
#   ENV_DIR=PATH        use PATH (created, must not exist) instead of a mktemp directory
#   ENV_MILTER=EXE      dime-milter per domain (milter { } section, log $T/D-milter.log):
#                       on the injection listener and on a submission listener
#                       SUB_PORT[d] (clients on 127.0.0.0/8 count as trusted senders);
#                       milter_start D / milter_stop D. ENV_DOMAIN_EXTRA: extra lines in
#                       both domain { } sections; MILTER_EXTRA: in both milter { }. Each
#                       Postfix runs it for sendmail(1) mail and its own bounces too
#                       (non_smtpd_milters, internal_mail_filter_classes = bounce).
#   ENV_PF_USERS[d]     mailboxes of domain d's Postfix (default: d)
#   ENV_LEGACY=1        legacy.test (127.0.0.4), no DIME record (proved absent by NSEC in
#                       test.), delivered by a third Postfix $T/pf-legacy (port PF_PORT[legacy],
#                       mailboxes lee@legacy.test and eve@bogus.test); alice's and bob's
#                       Postfix route legacy.test and bogus.test there as plain SMTP
#   ENV_BOGUS=1         bogus.test: a signed zone with a DIME record whose DS in test. names
#                       another key, so validation of it ends bogus
#   ENV_POK_ONLINE="D.."  these domains keep their POK in the vault too (dimectl domain init
#                       --pok-online); every domain's POK file is $T/D/pok.key
#   ENV_USERS=1         each daemon runs as its own user (dime-vault, dime-relay, dime-milter:
#                       contrib/quickstart.sh users), started as root and dropping to it, with
#                       its files in its own directory as in production (env_dir D kv|relay|
#                       milter, modes and groups of README.md, "Users and directories"), the
#                       milter's socket group postfix; auto: 1 when root and the users exist.
#                       Unset or 0: everything in $T/D, user = "root"
#   env_user_hook D     called (when defined) after D's domain and first user exist, before
#                       any daemon starts: add more users with $CTL -c $T/D/dime.conf
#   env_pf_hook D       called (when defined) after D's Postfix is configured, before it
#                       starts: more listeners (pf_listener), transports, pf_set
#   ENV_DX[d]           domain d's dx= hosts, in order (default dx.D.test): a certificate
#                       $T/HOST.pem/.key each, all in the record (tls= and dx=); their A
#                       records beyond dx.D.test go in ENV_ZONE_EXTRA[d]
#   ENV_KV_EXTRA[d], ENV_RELAY_EXTRA[d]   extra lines in domain d's keyvault { } / relay { }
#   ENV_NODES           more node names (lib/nodes.sh) that env_cleanup stops too
#   ENV_ZONE_EXTRA[d]   more lines of domain d's zone (an MX, its A), signed with the rest;
#                       env_user_hook may also rewrite $d.rec (the _dime lines published)
# Logs: $T/D-relayd.log, $T/D-kv.log; Postfix: $T/pf-D (maildirs under mail/).

declare -gA KV_PID=() RL_PID=() MI_PID=() PF_PORT=() SUB_PORT=()
declare -gA ADDR=([alice]=127.0.0.2 [bob]=127.0.0.3 [legacy]=127.0.0.4)
declare -gA ENV_PF_USERS 2>/dev/null
declare -gA ENV_ZONE_EXTRA 2>/dev/null
declare -gA ENV_DX ENV_KV_EXTRA ENV_RELAY_EXTRA 2>/dev/null
# shellcheck source=nsd.sh
source "$(dirname "${BASH_SOURCE[0]}")/nsd.sh"
ENV_PIDS=()

# env_dir D kv|relay|milter: the directory of that daemon of domain D
env_dir() { if [ "${ENV_USERS:-0}" = 1 ]; then echo "$T/$1/$2"; else echo "$T/$1"; fi; }

env_free_port() { ! ss -Htuln | awk '{print $5}' | grep -qE "[:.]$1\$"; }
env_pick() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 30000))
        if env_free_port "$p" && [[ " ${ENV_PORTS:-} " != *" $p "* ]]; then
            ENV_PORTS="${ENV_PORTS:-} $p"
            echo "$p"
            return 0
        fi
    done
    return 1
}

env_wait_tcp() { # ADDR PORT PID
    for _ in $(seq 400); do
        ss -Htln "src $1:$2" | grep -q . && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

env_init() {
    KVD=$1 CTL=$2 RLD=$3
    if [ -n "${ENV_DIR:-}" ]; then
        T=$ENV_DIR
        mkdir "$T" || return 1
    else
        T=$(mktemp -d "${TMPDIR:-/tmp}/dime-xfer-test.XXXXXX")
    fi
    chmod 755 "$T"
    cd "$T" || return 1
    ENV_PORTS=
    DNSP=$(env_pick) && DXP=$(env_pick) && PF_PORT[alice]=$(env_pick) &&
        PF_PORT[bob]=$(env_pick) || return 1
    if [ -n "${ENV_MILTER:-}" ]; then
        SUB_PORT[alice]=$(env_pick) && SUB_PORT[bob]=$(env_pick) || return 1
    fi
    if [ "${ENV_LEGACY:-0}" = 1 ]; then PF_PORT[legacy]=$(env_pick) || return 1; fi
    local stubs='"test. 127.0.0.1@'$DNSP'", "alice.test. 127.0.0.1@'$DNSP'", "bob.test. 127.0.0.1@'$DNSP'"'
    [ "${ENV_BOGUS:-0}" = 1 ] && stubs+=', "bogus.test. 127.0.0.1@'$DNSP'"'
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=DIME transfer test CA" -keyout ca.key -out ca.pem \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
        2>/dev/null || return 1
    local h d me
    for h in ${ENV_DX[alice]:-dx.alice.test} ${ENV_DX[bob]:-dx.bob.test}; do
        openssl req -newkey rsa:2048 -nodes -subj "/CN=$h" -keyout "$h.key" -out "$h.csr" \
            2>/dev/null || return 1
        printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$h" >"$h.ext"
        openssl x509 -req -in "$h.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile "$h.ext" -out "$h.pem" 2>/dev/null || return 1
    done
    me=$(id -u)
    if [ "${ENV_USERS:-0}" = auto ]; then
        ENV_USERS=0
        [ "$me" -eq 0 ] && id dime-vault && id dime-relay && id dime-milter && ENV_USERS=1
    fi >/dev/null 2>&1
    local kvd rld mid ukv=root url=root umi=root kvx= mix= relays="\"$me\"" milters="\"$me\""
    if [ "${ENV_USERS:-0}" = 1 ]; then
        ukv=dime-vault url=dime-relay umi=dime-milter
        kvx='socket-group = "dime"'
        mix='socket-group = "postfix"'
        relays+=', "dime-relay"'
        milters+=', "dime-milter"'
    fi
    for d in alice bob; do
        mkdir -p "$d"
        kvd=$(env_dir "$d" kv) rld=$(env_dir "$d" relay) mid=$(env_dir "$d" milter)
        if [ "${ENV_USERS:-0}" = 1 ]; then
            mkdir -p "$kvd" "$rld" "$mid"
            chown dime-vault:dime "$kvd" && chown dime-relay:dime-relay "$rld" &&
                chown dime-milter:postfix "$mid" && chmod 750 "$kvd" "$rld" "$mid" || return 1
        fi
        head -c 32 /dev/urandom >"$d/master.key"
        chmod 600 "$d/master.key"
        cat >"$d/dime.conf" <<CONF
keyvault {
  socket = "$kvd/kv.sock"
  database = "$kvd/kv.db"
  master-key-file = "$T/$d/master.key"
  pid-file = "$kvd/kv.pid"
  user = "$ukv"
  $kvx
  ${ENV_KV_EXTRA[$d]:-}
  # the test tools run as us, in both classes; the relay and the milter as their own users
  # when ENV_USERS=1, else as us too (one uid in both classes may do what either may;
  # test_keyvault.sh checks each class on its own uid)
  relay-users = {$relays}
  milter-users = {$milters}
  # short, so that the relays' and milters' kept connections are closed between messages
  # and the next message must get through on a new one (test_transfer.sh checks it)
  idle-timeout = 2
}
relay {
  hostname = "dx.$d.test"
  listen-address = "${ADDR[$d]}"
  listen-port = $DXP
  remote-port = $DXP
  remote-dual-port = $DXP
  tls-certificate = "$T/dx.$d.test.pem"
  tls-key = "$T/dx.$d.test.key"
  ca-file = "$T/ca.pem"
  keyvault-socket = "$kvd/kv.sock"
  pid-file = "$rld/relayd.pid"
  user = "$url"
  trust-anchor-file = ""
  trust-anchor = {"@TA@"}
  dns-stub = {$stubs}
  dns-local-zone = {"test. transparent"}
  connect-timeout = 3
  idle-timeout = 30
  cache-database = "$rld/cache.db"
  pin-database = "$rld/pins.db"
  lookup-socket = "$rld/lookup.sock"
  submit-socket = "$rld/submit.sock"
  metrics-socket = "$rld/metrics.sock"
  queue-database = "$rld/queue.db"
  queue-key-file = "$rld/queue.key"
  inject-address = "${ADDR[$d]}"
  inject-port = ${PF_PORT[$d]}
  retry-min = 1
  retry-max = 2
  queue-scan-interval = 1
  ${RELAY_EXTRA:-}
  ${ENV_RELAY_EXTRA[$d]:-}
}
domain "$d.test" {
  require-dnssec = true
  ${ENV_DOMAIN_EXTRA:-}
}
CONF
        if [ -n "${ENV_MILTER:-}" ]; then
            cat >>"$d/dime.conf" <<CONF
milter {
  socket = "unix:$mid/milter.sock"
  $mix
  keyvault-socket = "$kvd/kv.sock"
  relay-lookup-socket = "$rld/lookup.sock"
  relay-submit-socket = "$rld/submit.sock"
  trusted-networks = {"127.0.0.0/8"}
  injection-database = "$mid/milter-injections.db"
  postfix-queue-directory = "$T/pf-$d/queue"
  authserv-id = "mx.$d.test"
  pid-file = "$mid/milter.pid"
  metrics-socket = "$mid/milter-metrics.sock"
  user = "$umi"
  timeout = 30
  log-why = true
  ${MILTER_EXTRA:-}
}
CONF
        fi
        # the POK goes to a file, as dimectl's default is (ENV_POK_ONLINE: also in the vault)
        local online=
        [[ " ${ENV_POK_ONLINE:-} " == *" $d "* ]] && online=--pok-online
        "$CTL" -c "$d/dime.conf" domain init "$d.test" --pok-file "$d/pok.key" $online \
            >/dev/null 2>>setup.log || return 1
        "$CTL" -c "$d/dime.conf" user add "$d@$d.test" >/dev/null 2>>setup.log || return 1
        local dxo=() h
        for h in ${ENV_DX[$d]:-dx.$d.test}; do dxo+=(--tls-cert "$h.pem" --dx "$h"); done
        # shellcheck disable=SC2086 # ENV_RECORD_OPTS: more dns-record options, a word list
        "$CTL" -c "$d/dime.conf" dns-record "${dxo[@]}" --pok "$d/pok.key" \
            --ttl 300 ${ENV_RECORD_OPTS:-} >"$d.rec" 2>>setup.log || return 1
        if declare -F env_user_hook >/dev/null; then env_user_hook "$d" || return 1; fi
        # the store dimectl made as root belongs to the keyvault's user
        if [ "${ENV_USERS:-0}" = 1 ]; then chown dime-vault "$kvd"/kv.db* || return 1; fi
    done
    mkdir -p zones keys nsd
    local zh='$ORIGIN %s.\n$TTL 300\n@ SOA ns.test. hostmaster.test. 1 3600 600 86400 300\n@ NS ns.test.\n'
    for d in alice bob; do env_zone "$d" "$d.rec" "${ADDR[$d]}"; done
    {
        printf "$zh" test
        echo "ns A 127.0.0.1"
        echo "alice NS ns.test."
        echo "bob NS ns.test."
        grep '^_dime' bob.rec | sed 's/bob\.test\./down.test./; s/dx=dx\.bob\.test/dx=dx.down.test/'
        echo "dx.down A 127.0.0.9"
    } >zones/test.zone.in
    (
        cd keys || exit 1
        for z in test alice.test bob.test; do
            echo "$z $(ldns-keygen -a ED25519 -k "$z.") $(ldns-keygen -a ED25519 "$z.")"
        done >keys.txt
    ) || return 1
    local zones="test alice.test bob.test"
    if [ "${ENV_BOGUS:-0}" = 1 ]; then
        # signed with one key, while test. holds the DS of another: validation ends bogus
        { printf "$zh" bogus.test; grep '^_dime' bob.rec | sed 's/bob\.test\./bogus.test./'; } \
            >zones/bogus.test.zone
        echo "bogus NS ns.test." >>zones/test.zone.in
        (
            cd keys || exit 1
            k1=$(ldns-keygen -a ED25519 -k bogus.test.) && z1=$(ldns-keygen -a ED25519 bogus.test.) &&
                k2=$(ldns-keygen -a ED25519 -k bogus.test.) || exit 1
            cd .. && ldns-signzone -f zones/bogus.test.signed -o bogus.test. zones/bogus.test.zone \
                "keys/$z1" "keys/$k1" >>setup.log 2>&1 && cat "keys/$k2.ds" >>zones/test.zone.in
        ) || return 1
        zones+=" bogus.test"
    fi
    local z ksk zsk TKSK TZSK
    while read -r z ksk zsk; do
        if [ "$z" = test ]; then TKSK=$ksk TZSK=$zsk; continue; fi
        env_zone_sign "$z" || return 1
        cat "keys/$ksk.ds" >>zones/test.zone.in
    done <keys/keys.txt
    ldns-signzone -f zones/test.signed -o test. zones/test.zone.in "keys/$TZSK" "keys/$TKSK" \
        >>setup.log 2>&1 || return 1
    local TA
    TA=$(cat "keys/$TKSK.ds")
    for d in alice bob; do sed -i "s|@TA@|$TA|" "$d/dime.conf"; done
    # shellcheck disable=SC2086 # $zones is a word list
    nsd_write_conf nsd/nsd.conf "$T" "$DNSP" $zones
    env_nsd_start || return 1
    if [ "${ENV_LEGACY:-0}" = 1 ]; then
        pf_create "$T/pf-legacy" "${ADDR[legacy]}" "${PF_PORT[legacy]}" legacy.test lee || return 1
        pf_set "$T/pf-legacy" "virtual_mailbox_domains = legacy.test bogus.test" || return 1
        echo "eve@bogus.test eve/" >>"$T/pf-legacy/etc/vmailbox"
        pf_start "$T/pf-legacy" || return 1
    fi
    for d in alice bob; do
        env_pf_setup "$d" "$d" || return 1
        kv_start "$d" || return 1
        relay_start "$d" || return 1
        if [ -n "${ENV_MILTER:-}" ]; then milter_start "$d" || return 1; fi
    done
}

# env_pf_setup NODE D: the Postfix of NODE ($T/pf-NODE on ADDR[NODE]:PF_PORT[NODE], with the
# milter and listener SUB_PORT[NODE] when ENV_MILTER is set) for domain D's mailboxes, started
env_pf_setup() {
    local d=$1 dom=$2
    # shellcheck disable=SC2086
    pf_create "$T/pf-$d" "${ADDR[$d]}" "${PF_PORT[$d]}" "$dom.test" ${ENV_PF_USERS[$dom]:-$dom} || return 1
    if [ -n "${ENV_MILTER:-}" ]; then
        # sendmail(1) mail and Postfix's own bounces meet the milter too
        # (contrib/README.postfix)
        pf_set "$T/pf-$d" "smtpd_milters = unix:$(env_dir "$d" milter)/milter.sock" \
            "non_smtpd_milters = unix:$(env_dir "$d" milter)/milter.sock" \
            "internal_mail_filter_classes = bounce" \
            "milter_default_action = tempfail" "milter_protocol = 6" || return 1
        pf_listener "$T/pf-$d" "${ADDR[$d]}" "${SUB_PORT[$d]}" "unix:$(env_dir "$d" milter)/milter.sock"
    fi
    if [ "${ENV_LEGACY:-0}" = 1 ]; then
        pf_transport "$T/pf-$d" legacy.test "smtp:[${ADDR[legacy]}]:${PF_PORT[legacy]}"
        pf_transport "$T/pf-$d" bogus.test "smtp:[${ADDR[legacy]}]:${PF_PORT[legacy]}"
    fi
    if declare -F env_pf_hook >/dev/null; then env_pf_hook "$d" || return 1; fi
    pf_start "$T/pf-$d"
}

# env_zone D REC-FILE DX-ADDR: zones/D.test.zone with REC-FILE's _dime/_dx lines, dx at
# DX-ADDR and ENV_ZONE_EXTRA[D]; its SOA serial the time, so that a new version is newer
env_zone() {
    local zh='$ORIGIN %s.\n$TTL 300\n@ SOA ns.test. hostmaster.test. %s 3600 600 86400 300\n@ NS ns.test.\n'
    { printf "$zh" "$1.test" "$(date +%s)"; grep '^_d' "$2"; echo "dx A $3"
      [ -z "${ENV_ZONE_EXTRA[$1]:-}" ] || printf '%s\n' "${ENV_ZONE_EXTRA[$1]}"; } >"$T/zones/$1.test.zone"
}

# env_zone_sign ZONE: zones/ZONE.signed from zones/ZONE.zone with the zone's keys
env_zone_sign() {
    local ksk zsk
    read -r _ ksk zsk < <(grep "^$1 " "$T/keys/keys.txt")
    (cd "$T" && ldns-signzone -f "zones/$1.signed" -o "$1." "zones/$1.zone" "keys/$zsk" \
        "keys/$ksk" >>setup.log 2>&1)
}

# env_publish D REC-FILE DX-ADDR: D's zone again with these records (env_zone), signed with
# its keys, nsd restarted
env_publish() { env_zone "$@" && env_zone_sign "$1.test" && env_nsd_start; }

# env_impostor [DNS-RECORD-OPTIONS]: an attacker's copy of bob.test in $T/mal (its own
# keyvault, relay on 127.0.0.5, a new POK without a rollover link, a self-signed DX
# certificate), as a takeover of bob.test's DNS would bring; its record in $T/mal.rec, its
# PIDs appended to MAL_PIDS (stop them in the EXIT trap). The caller publishes the record.
env_impostor() {
    local d=${ENV_IMPOSTOR_OF:-bob}
    mkdir -p "$T/mal"
    sed -e "s|$T/$d/|$T/mal/|g" -e "s|${ADDR[$d]}|127.0.0.5|g" \
        -e "s|$T/dx.$d.test.pem|$T/mal/dx.pem|; s|$T/dx.$d.test.key|$T/mal/dx.key|" \
        -e "/^ *store\(-conninfo\)\? = /d; /^ *state\(-conninfo\)\? = /d" \
        -e "s|inject-port = .*|inject-port = $(env_pick)|" "$T/$d/dime.conf" >"$T/mal/dime.conf"
    head -c 32 /dev/urandom >"$T/mal/master.key"
    chmod 600 "$T/mal/master.key"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=dx.$d.test" \
        -keyout "$T/mal/dx.key" -out "$T/mal/dx.pem" 2>/dev/null || return 1
    local m="$T/mal/dime.conf"
    { "$CTL" -c "$m" domain init "$d.test" --pok-file "$T/mal/pok.key" &&
        "$CTL" -c "$m" user add "$d@$d.test" &&
        "$CTL" -c "$m" dns-record --tls-cert "$T/mal/dx.pem" --pok "$T/mal/pok.key" \
            --dx "dx.$d.test" --ttl 300 "$@" >"$T/mal.rec"; } >/dev/null 2>>"$T/setup.log" || return 1
    "$KVD" -f -c "$m" 2>>"$T/mal-kv.log" &
    MAL_PIDS+=($!)
    for _ in $(seq 200); do [ -S "$T/mal/kv.sock" ] && break; sleep 0.05; done
    "$RLD" -f -c "$m" 2>>"$T/mal-relayd.log" &
    MAL_PIDS+=($!)
    env_wait_tcp 127.0.0.5 "$DXP" "${MAL_PIDS[-1]}"
}

# nsd on 127.0.0.1:$DNSP with $T/nsd/nsd.conf; again after a zone file changed (the one
# running is stopped first: it reads its zones when it starts)
env_nsd_start() {
    if [ -n "${NSD_PID:-}" ]; then
        kill "$NSD_PID" 2>/dev/null
        wait "$NSD_PID" 2>/dev/null
    fi
    nsd -d -c "$T/nsd/nsd.conf" >>"$T/nsd.log" 2>&1 &
    NSD_PID=$!
    ENV_PIDS+=("$NSD_PID")
    for _ in $(seq 200); do
        ss -Hlun "src 127.0.0.1:$DNSP" | grep -q . && break
        sleep 0.05
    done
    ss -Hlun "src 127.0.0.1:$DNSP" | grep -q .
}

milter_start() {
    local d=$1 sock
    sock=$(env_dir "$d" milter)/milter.sock
    rm -f "$sock"
    "$ENV_MILTER" -f -c "$T/$d/dime.conf" 2>>"$T/$d-milter.log" &
    MI_PID[$d]=$!
    for _ in $(seq 200); do
        if [ -S "$sock" ]; then
            # Postfix's smtpd (user postfix) connects to it: through socket-group with
            # ENV_USERS, else (a root milter's socket) opened to all
            [ "${ENV_USERS:-0}" = 1 ] || chmod 666 "$sock"
            return 0
        fi
        kill -0 "${MI_PID[$d]}" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

milter_stop() { # libmilter notices SIGTERM within 5 s; SIGKILL after 10 s
    local p=${MI_PID[$1]:-} i
    [ -n "$p" ] || return 0
    kill "$p" 2>/dev/null
    for ((i = 0; i < 200; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    MI_PID[$1]=
}

kv_start() {
    local d=$1 sock
    sock=$(env_dir "$d" kv)/kv.sock
    rm -f "$sock"
    "$KVD" -f -c "$T/$d/dime.conf" 2>>"$T/$d-kv.log" &
    KV_PID[$d]=$!
    for _ in $(seq 200); do
        [ -S "$sock" ] && return 0
        kill -0 "${KV_PID[$d]}" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

kv_stop() {
    local p=${KV_PID[$1]:-}
    [ -n "$p" ] || return 0
    kill "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    KV_PID[$1]=
}

relay_start() {
    local d=$1
    "$RLD" -f -c "$T/$d/dime.conf" 2>>"$T/$d-relayd.log" &
    RL_PID[$d]=$!
    env_wait_tcp "${ADDR[$d]}" "$DXP" "${RL_PID[$d]}" || return 1
    for _ in $(seq 200); do
        [ -S "$(env_dir "$d" relay)/submit.sock" ] && return 0
        sleep 0.05
    done
    return 1
}

relay_stop() {
    local p=${RL_PID[$1]:-} rc=0
    [ -n "$p" ] || return 0
    kill "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    rc=$?
    RL_PID[$1]=
    return $rc
}

relay_kill() {
    local p=${RL_PID[$1]:-}
    [ -n "$p" ] || return 0
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    RL_PID[$1]=
    rm -f "$(env_dir "$1" relay)/submit.sock" "$(env_dir "$1" relay)/lookup.sock"
}

env_cleanup() {
    local d p
    for d in alice bob ${ENV_NODES:-}; do
        milter_stop "$d"
        relay_stop "$d"
        kv_stop "$d"
    done
    pf_stop_all
    for p in "${ENV_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${ENV_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    cd /
    if [ "${KEEP:-0}" = 1 ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
