#!/usr/bin/env bash
# Each daemon, started as root with dime.conf's default user (no user line), ends up as that
# user: real, effective and saved uid and gid, and the user's groups from the group database
# (the Uid, Gid and Groups lines of /proc/PID/status). Started as root with an empty user it
# refuses to start (exit 1, a message that says what to write); with user = "root" it stays
# root and says so in its log. Needs root and the users dime-vault, dime-relay and
# dime-milter (contrib/quickstart.sh users). TAP output.
#
# usage: test_privileges.sh KEYVAULTD DIMECTL RELAYD MILTER
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KVD=$(abs "$1")
CTL=$(abs "$2")
RLD=$(abs "$3")
MILTER=$(abs "$4")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root (the daemons drop from root)"
for u in dime-vault dime-relay dime-milter; do
    id "$u" >/dev/null 2>&1 || skip_all "no user $u (contrib/quickstart.sh users creates them)"
done
command -v openssl >/dev/null || skip_all "openssl is not installed"

T=$(mktemp -d "${TMPDIR:-/tmp}/dime-priv-test.XXXXXX")
chmod 755 "$T"
PIDS=() # every daemon started, stopped by PID (stop, below) at exit
trap 'for p in "${PIDS[@]}"; do stop "$p"; done; [ "${KEEP:-0}" = 1 ] || rm -rf "$T"' EXIT
cd "$T" || exit 1

port=$((20000 + RANDOM % 30000))
for _ in $(seq 50); do
    ss -Htln | awk '{print $4}' | grep -qE "[:.]$port\$" || break
    port=$((20000 + RANDOM % 30000))
done
# one directory per daemon, owned by its user, as /run/dime-* and /var/lib/dime-* are
mkdir kv relay milter
chown dime-vault kv
chown dime-relay relay
chown dime-milter milter
chmod 700 kv relay milter
head -c 32 /dev/urandom >master.key
chmod 600 master.key
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=dx.priv.test" -keyout dx.key -out dx.pem 2>/dev/null || { echo "Bail out! openssl"; exit 1; }
ta=/usr/share/dns/root.key
[ -r "$ta" ] || skip_all "no $ta (package dns-root-data)"

# write_conf FILE LINE: every section with its paths in $T; LINE goes into all three
# sections (empty: each daemon's default user)
write_conf() {
    cat >"$1" <<CONF
keyvault {
  socket = "$T/kv/kv.sock"
  database = "$T/kv/kv.db"
  master-key-file = "$T/master.key"
  pid-file = "$T/kv/kv.pid"
  $2
}
relay {
  hostname = "dx.priv.test"
  listen-address = "127.0.0.1"
  listen-port = $port
  tls-certificate = "$T/dx.pem"
  tls-key = "$T/dx.key"
  keyvault-socket = "$T/kv/kv.sock"
  pid-file = "$T/relay/relayd.pid"
  trust-anchor-file = "$ta"
  cache-database = "$T/relay/cache.db"
  pin-database = "$T/relay/pins.db"
  lookup-socket = "$T/relay/lookup.sock"
  submit-socket = "$T/relay/submit.sock"
  metrics-socket = "$T/relay/metrics.sock"
  queue-database = "$T/relay/queue.db"
  queue-key-file = "$T/relay/queue.key"
  $2
}
milter {
  socket = "unix:$T/milter/milter.sock"
  socket-group = "postfix"
  keyvault-socket = "$T/kv/kv.sock"
  relay-lookup-socket = "$T/relay/lookup.sock"
  relay-submit-socket = "$T/relay/submit.sock"
  injection-database = "$T/milter/injections.db"
  pid-file = ""
  $2
}
domain "priv.test" {
}
CONF
}
write_conf default.conf ""
write_conf empty.conf 'user = ""'
write_conf root.conf 'user = "root"'
"$CTL" -c default.conf domain init priv.test --pok-file priv.pok >/dev/null 2>setup.log || { echo "Bail out! dimectl"; exit 1; }
chown dime-vault kv/kv.db*

# start NAME PROGRAM ARGS...: in the background, log NAME.log; PID in $pid
start() {
    local name=$1
    shift
    "$@" 2>>"$name.log" &
    pid=$!
    PIDS+=("$pid")
}
wait_for() { # wait_for PATH PID: the socket appears while the process lives
    for _ in $(seq 200); do
        [ -S "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
stop() {
    kill "$1" 2>/dev/null
    for _ in $(seq 200); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
# ids PID: "uid uid uid uid / gid gid gid gid / sorted groups" from /proc/PID/status
ids() {
    local f=/proc/$1/status u g grp
    u=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "$f" 2>/dev/null)
    g=$(awk '/^Gid:/ {print $2, $3, $4, $5}' "$f" 2>/dev/null)
    grp=$(awk '/^Groups:/ {for (i = 2; i <= NF; i++) print $i}' "$f" 2>/dev/null | sort -n |
        tr '\n' ' ' | sed 's/ $//')
    echo "$u / $g / $grp"
}
want_ids() { # want_ids USER: what ids would print for a process that became USER
    local u g
    u=$(id -u "$1") g=$(id -g "$1")
    echo "$u $u $u $u / $g $g $g $g / $(id -G "$1" | tr ' ' '\n' | sort -n | tr '\n' ' ' | sed 's/ $//')"
}
check_ids() { # check_ids NAME PID USER
    local got want
    want=$(want_ids "$3")
    # The socket can appear before the drop ends (the relay makes its sockets, then drops):
    # wait up to 5 s for the ids to settle, so a loaded machine does not catch it half-way.
    for _ in $(seq 100); do
        got=$(ids "$2")
        [ "$got" = "$want" ] && break
        sleep 0.05
    done
    if [ "$got" = "$want" ]; then
        ok "$1 started as root runs as $3 by default (uid, gid, groups: $got)"
    else
        : >out.txt
        printf 'got:  %s\nwant: %s\n' "$got" "$want" >err.txt
        tail -3 "$1.log" >>err.txt
        notok "$1 started as root runs as $3 by default"
    fi
}
refuses() { # refuses NAME PROGRAM ARGS...: exit 1 and the message, within 10 s
    local name=$1 rc
    shift
    timeout 10 "$@" >out.txt 2>err.txt
    rc=$?
    if [ "$rc" -eq 1 ] && grep -q "$name: user is empty: name the user to run as" err.txt; then
        ok "$name started as root with user = \"\" refuses to start (exit 1, says why)"
    else
        echo "exit $rc" >>err.txt
        notok "$name started as root with user = \"\" refuses to start (exit 1, says why)"
    fi
}

# ---- the default users ----
start keyvault "$KVD" -f -c default.conf
kvpid=$pid
wait_for kv/kv.sock "$kvpid" && check_ids keyvault "$kvpid" dime-vault ||
    notok "keyvault starts with the default user"
start relay "$RLD" -f -c default.conf
rlpid=$pid
wait_for relay/submit.sock "$rlpid" && check_ids relay "$rlpid" dime-relay ||
    notok "relay starts with the default user"
start milter "$MILTER" -f -c default.conf
mipid=$pid
wait_for milter/milter.sock "$mipid" && check_ids milter "$mipid" dime-milter ||
    notok "milter starts with the default user"
st=$(stat -c '%U:%G' milter/milter.sock relay/lookup.sock relay/submit.sock relay/metrics.sock \
    2>/dev/null | tr '\n' ' ')
if [ "$st" = "dime-milter:postfix dime-relay:dime-relay dime-relay:dime-relay dime-relay:dime-relay " ]; then
    ok "the milter's socket belongs to it and to socket-group, the relay's to its user and group"
else
    echo "$st" >err.txt
    notok "the milter's socket belongs to it and to socket-group, the relay's to its user and group"
fi
stop "$mipid"
stop "$rlpid"
stop "$kvpid"

# ---- an empty user: no daemon runs as root by default ----
refuses keyvault "$KVD" -f -c empty.conf
refuses relay "$RLD" -c empty.conf
refuses milter "$MILTER" -f -c empty.conf
for x in "keyvault:$KVD" "relay:$RLD" "milter:$MILTER"; do
    "${x#*:}" -n -c empty.conf >out.txt 2>err.txt
    if [ $? -eq 1 ] && grep -q "${x%%:*}: user is empty" err.txt; then
        ok "${x%%:*} -n rejects an empty user"
    else
        notok "${x%%:*} -n rejects an empty user"
    fi
done

# ---- root by name: stays root, warns ----
rm -f kv/kv.sock
: >keyvault.log
start keyvault "$KVD" -f -c root.conf
kvpid=$pid
if wait_for kv/kv.sock "$kvpid" && [ "$(ids "$kvpid" | cut -d' ' -f1-4)" = "0 0 0 0" ] &&
    grep -q 'running as root (user = "root" in the configuration)' keyvault.log; then
    ok "keyvault with user = \"root\" stays root and logs a warning"
else
    cp keyvault.log err.txt
    notok "keyvault with user = \"root\" stays root and logs a warning"
fi
stop "$kvpid"

echo "1..$n"
[ "$failed" -eq 0 ]
