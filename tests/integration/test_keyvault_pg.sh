#!/usr/bin/env bash
# The keyvault on PostgreSQL (store = postgresql): a private server started for the test
# (lib/pg.sh, Unix socket in a temporary directory), the domain and users set up with dimectl,
# two dime-keyvaultd processes on the one database (as two nodes of a domain would run them)
# serving each other's changes, concurrent changes applied one after the other, the schema
# version, each daemon's cache of the rows it read (it answers while the tables are locked;
# a rotation, retirement or removal committed elsewhere is used at the very next request, also
# after the daemon's connection was lost meanwhile), and an outage: PostgreSQL stopped -> requests get the temporary `internal` status
# and the daemons keep running; started again -> requests work without restarting them.
# Then the dl_pg helpers against the same server (tests/tools/pgcheck). Output is TAP.
#
# usage: test_keyvault_pg.sh DAEMON DIMECTL KVCLIENT DIME-SIGNET PGCHECK
set -uo pipefail
LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib"
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KVD=$(abs "$1")
CTL=$(abs "$2")
KVC=$(abs "$3")
DS=$(abs "$4")
PGC=$(abs "$5")
START=$(date +%s)

. "$LIB/tap.sh"
. "$LIB/pg.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/dime-kvpg-test.XXXXXX")
declare -A DPID=()
stop_kv() { # stop_kv N: SIGTERM by PID; DRC gets the exit status
    DRC=0
    if [ -n "${DPID[$1]:-}" ]; then
        kill "${DPID[$1]}" 2>/dev/null
        wait "${DPID[$1]}" 2>/dev/null
        DRC=$?
        DPID[$1]=
    fi
}
trap 'stop_kv 1; stop_kv 2; pg_cleanup; rm -rf "$T"' EXIT
cd "$T" || exit 1

pg_available || skip_all "PostgreSQL server programs (postgresql) or the postgres user missing"
if pg_start; then ok "PostgreSQL started on a Unix socket in $PG_DIR ($(($(date +%s) - START)) s)"
else
    sed 's/^/#   /' "$PG_DIR"/*.log 2>/dev/null | tail -20
    notok "PostgreSQL started"
    echo "1..$n"
    exit 1
fi

check() { # check DESCRIPTION COMMAND...: ok when the command succeeds
    local desc=$1
    shift
    if "$@" >out.txt 2>err.txt; then ok "$desc"; else notok "$desc"; fi
}
check_out() { # check_out DESCRIPTION PATTERN COMMAND...: succeeds and prints PATTERN
    local desc=$1 pat=$2
    shift 2
    if "$@" >out.txt 2>err.txt && grep -q -- "$pat" out.txt; then ok "$desc"; else
        notok "$desc"
    fi
}
check_fails() { # check_fails DESCRIPTION PATTERN COMMAND...: fails and says PATTERN
    local desc=$1 pat=$2
    shift 2
    if ! "$@" >out.txt 2>err.txt && grep -q -- "$pat" out.txt err.txt; then ok "$desc"; else
        notok "$desc"
    fi
}

me=$(id -u)
head -c 32 /dev/urandom >master.key
chmod 600 master.key
write_conf() { # write_conf N [extra lines]: node N's keyvault on the shared store
    cat >"kv$1.conf" <<CONF
keyvault {
  socket = "$T/kv$1.sock"
  store = "postgresql"
  store-conninfo = "$PG_CONNINFO"
  master-key-file = "$T/master.key"
  pid-file = "$T/kv$1.pid"
  user = "root"
  relay-users = {"$me"}
  milter-users = {"$me"}
  ${2:-}
}
CONF
}
write_conf 1
write_conf 2
start_kv() { # start_kv N: node N's daemon in the foreground, in the background
    rm -f "kv$1.sock"
    "$KVD" -f -c "kv$1.conf" 2>>"kv$1.log" &
    DPID[$1]=$!
    for _ in $(seq 200); do
        [ -S "kv$1.sock" ] && return 0
        kill -0 "${DPID[$1]}" 2>/dev/null || { DPID[$1]=; return 1; }
        sleep 0.05
    done
    return 1
}
K1="$KVC -s $T/kv1.sock"
K2="$KVC -s $T/kv2.sock"

# ---- configuration ----
check "-n accepts store = postgresql" "$KVD" -n -c kv1.conf
sed '/store-conninfo/d' kv1.conf >bad1.conf
check_fails "-n: store = postgresql needs store-conninfo" "needs store-conninfo" \
    "$KVD" -n -c bad1.conf
sed 's/store = "postgresql"/store = "mysql"/' kv1.conf >bad2.conf
check_fails "-n: an unknown store is refused" "sqlite or postgresql" "$KVD" -n -c bad2.conf
sed "s|store-conninfo = .*|store-conninfo = \"host=/x password=abc s3cr3tpw dbname=dime\"|" \
    kv1.conf >bad3.conf
"$KVD" -n -c bad3.conf >out.txt 2>err.txt
rc=$?
if [ "$rc" -eq 1 ] && grep -q "store-conninfo: not a connection string" err.txt &&
    ! grep -q s3cr3tpw out.txt err.txt; then
    ok "-n: a malformed store-conninfo is refused without quoting any of it"
else notok "-n: a malformed store-conninfo is refused without quoting any of it (exit $rc)"; fi
# a password in the connection string is never printed, even when the connection fails
sed "s|store-conninfo = .*|store-conninfo = \"host=$T/nowhere dbname=dime password=s3cr3tpw\"|" \
    kv1.conf >nowhere.conf
"$KVD" -f -c nowhere.conf >out.txt 2>err.txt
rc=$?
if [ "$rc" -eq 1 ] && grep -q "PostgreSQL unavailable" err.txt && ! grep -q s3cr3tpw out.txt err.txt
then ok "an unreachable server stops start-up with a clear line, the password not shown"
else notok "an unreachable server stops start-up with a clear line, the password not shown (exit $rc)"; fi

# ---- domain and users through dimectl (node 1's configuration) ----
"$DS" user-request paul@example.test -k paul.key -r paul.ssr >/dev/null 2>&1
check_out "dimectl domain init on PostgreSQL" "example.test" \
    "$CTL" -c kv1.conf domain init example.test --pok-file "$T/pok.key"
check_out "dimectl user add trustful" "private keys" "$CTL" -c kv1.conf user add bob@example.test
check_out "dimectl user add paranoid" "signet only" \
    "$CTL" -c kv1.conf user add paul@example.test --mode paranoid --ssr paul.ssr
check_fails "dimectl user add of an existing user is refused" "already exists" \
    "$CTL" -c kv2.conf user add bob@example.test
check_out "node 2's dimectl lists the users node 1 added" '"address":"paul@example.test"' \
    "$CTL" -c kv2.conf --json user list
v=$(pg_sql dime "SELECT version FROM schema_version WHERE component = 'keyvault'")
if [ "$v" = 2 ]; then ok "schema_version has the keyvault at version 2"
else notok "schema_version has the keyvault at version 2 (is '$v')"; fi
# nothing secret in clear: the sealed columns are not the key file's bytes
n_sealed=$(pg_sql dime "SELECT count(*) FROM kv_generations WHERE sealed IS NOT NULL")
if [ "$n_sealed" = 1 ]; then ok "one generation with sealed keys (bob), none for paul"
else notok "one generation with sealed keys (is $n_sealed)"; fi

# ---- two daemons on one store ----
if start_kv 1 && start_kv 2; then ok "two keyvaults start on the one database"
else tail -n 5 kv1.log kv2.log | sed 's/^/#   /'; notok "two keyvaults start on the one database"; fi
check "node 1: sign, KEK and unwrap as bob" $K1 check bob@example.test
check "node 2: sign, KEK and unwrap as bob" $K2 check bob@example.test
check "node 2: sign and KEK as the organization" $K2 check example.test
check_out "node 2: paul is paranoid" "exists=1 mode=paranoid" $K2 account paul@example.test
check_out "node 1: no private key for paul" "kek mode" $K1 probe kek paul@example.test
# a user added while both run is served by both at once
check_out "dimectl adds dave while the daemons run" "private keys" \
    "$CTL" -c kv1.conf user add dave@example.test
check_out "node 2 serves dave at once" "exists=1 mode=trustful generation=1" \
    $K2 account dave@example.test
check "node 2 signs as dave" $K2 check dave@example.test
# a rotation through node 1's configuration is used by node 2 for the next request
check_out "dimectl rotates bob" "generation: *2" "$CTL" -c kv1.conf user rotate bob@example.test
check_out "node 2 answers generation 2 for bob" "generation=2" $K2 account bob@example.test
check "node 2 signs with bob's new key (checked against the new signet)" \
    $K2 check bob@example.test
check_out "node 1 too" "generation=2" $K1 account bob@example.test

# two rotations of one user at once: one wins, the other is refused and changes nothing.
# Another node's rotation holds the row (a transaction left open for 2 s); dimectl reads
# generation 1, waits for the row, and finds it moved when the other commits.
"$CTL" -c kv1.conf user add rita@example.test >/dev/null 2>&1
pg_sql dime "BEGIN;
  UPDATE kv_users SET generation = 2 WHERE address = 'rita@example.test';
  INSERT INTO kv_generations SELECT address, 2, mode, 'other-node', 'other-node', signet,
    sealed, blob, created FROM kv_generations WHERE address = 'rita@example.test';
  SELECT pg_sleep(2); COMMIT;" >race.txt 2>&1 &
race=$!
sleep 0.5
check_fails "a rotation racing another node's is refused: changed concurrently" \
    "changed concurrently" "$CTL" -c kv1.conf user rotate rita@example.test
wait "$race"
g=$(pg_sql dime "SELECT generation || ':' || (SELECT count(*) FROM kv_generations WHERE
    address = 'rita@example.test') FROM kv_users WHERE address = 'rita@example.test'")
if [ "$g" = "2:2" ]; then ok "the winner's generation stands, nothing of the loser's"
else notok "the winner's generation stands, nothing of the loser's (is $g)"; fi
# and several at once through dimectl: every generation row matches the user's count
rots=()
for i in 1 2 3 4; do
    "$CTL" -c "kv$(( (i % 2) + 1 )).conf" user rotate dave@example.test >"rot$i.txt" 2>&1 &
    rots+=($!)
done
wait "${rots[@]}"
won=$(grep -l "generation" rot?.txt | xargs grep -L "concurrently" | wc -l)
g=$(pg_sql dime "SELECT generation || ':' || (SELECT count(*) FROM kv_generations WHERE
    address = 'dave@example.test') FROM kv_users WHERE address = 'dave@example.test'")
if [ "$g" = "$((1 + won)):$((1 + won))" ] && [ "$won" -ge 1 ]; then
    ok "4 rotations at once through two nodes: $won applied, each whole, the rest refused"
else
    cat rot?.txt | sed 's/^/#   /'
    notok "4 rotations at once: $won applied, generation:rows is $g"
fi
check "node 1 signs as dave with the current key after the race" $K1 check dave@example.test

# ---- each daemon's cache of the rows it read, forgotten on NOTIFY from any writer ----
cur_fp() { # cur_fp ADDRESS: the current generation's fingerprint, as PostgreSQL has it
    pg_sql dime "SELECT g.fp FROM kv_generations g JOIN kv_users u USING (address)
        WHERE address = '$1' AND g.generation = u.generation"
}
# the cache answers: with kv_users and kv_generations locked by another session (as a long
# migration would), node 2 still signs and unwraps as bob from the rows it read before;
# reading them again would wait for the lock (held 3 s; the store's timeout is 5 s)
$K2 check bob@example.test >/dev/null 2>&1
pg_sql dime "BEGIN; LOCK TABLE kv_users, kv_generations IN ACCESS EXCLUSIVE MODE;
    SELECT pg_sleep(3); COMMIT;" >lock.txt 2>&1 &
locker=$!
for _ in $(seq 50); do # until the lock is held (bounded: 5 s)
    [ "$(pg_sql dime "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND
        relation = 'kv_users'::regclass")" = 1 ] && break
    sleep 0.1
done
t0=$(date +%s%N)
check "node 2 signs, KEK and unwrap as bob from its cache while the tables are locked" \
    $K2 check bob@example.test
ms=$((($(date +%s%N) - t0) / 1000000))
if [ "$ms" -lt 900 ]; then ok "... without waiting for the lock (${ms} ms)"
else notok "... without waiting for the lock (${ms} ms)"; fi
wait "$locker"
# a rotation through node 1's dimectl: node 2's very next requests use the new generation
$K2 check bob@example.test >/dev/null 2>&1
old_fp=$(cur_fp bob@example.test)
check_out "dimectl rotates bob again (node 2 has him cached)" "generation: *3" \
    "$CTL" -c kv1.conf user rotate bob@example.test
new_fp=$(cur_fp bob@example.test)
check_out "node 2's next answer is the new signet" "$new_fp" $K2 fp bob@example.test
check "node 2 signs with generation 3's key (checked against that signet)" \
    $K2 check bob@example.test
check_out "node 2: generation 3" "generation=3" $K2 account bob@example.test
# the old generation is usable for decryption until retired; once dimectl retires it through
# node 1, node 2 refuses it at once
check "node 2 decrypts with generation 2 by its fingerprint" $K2 check bob@example.test "$old_fp"
check_out "dimectl retires bob's generations below 3" "generation(s) below 3 retired" \
    "$CTL" -c kv1.conf user retire bob@example.test --below 3
check_fails "node 2 refuses generation 2 at once (its keys were retired)" "retired" \
    $K2 check bob@example.test "$old_fp"
# a user removed by any writer (here SQL, as an operator or another tool would) is refused
"$CTL" -c kv1.conf user add remy@example.test >/dev/null 2>&1
$K2 check remy@example.test >/dev/null 2>&1
check "node 2 serves remy (cached)" $K2 check remy@example.test
pg_sql dime "BEGIN; DELETE FROM kv_generations WHERE address = 'remy@example.test';
    DELETE FROM kv_users WHERE address = 'remy@example.test'; COMMIT;"
check_fails "remy removed in PostgreSQL: node 2 refuses at once" "not-found" \
    $K2 check remy@example.test
# a change committed while a daemon's connection is gone is never heard; the cache is dropped
# with the connection. Every gateway connection is ended by the server, then dave rotated.
$K2 check dave@example.test >/dev/null 2>&1
pg_sql dime "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE application_name = 'dime-gateway'" >/dev/null
"$CTL" -c kv1.conf user rotate dave@example.test >/dev/null 2>&1
check_out "node 2 lost its connection meanwhile: its next answer is dave's new signet" \
    "$(cur_fp dave@example.test)" $K2 fp dave@example.test
check "node 2 signs as dave with the new key" $K2 check dave@example.test

# ---- PostgreSQL stopped: temporary failure, the daemons stay; started: served again ----
pg_stop
check_fails "PostgreSQL stopped: node 1 answers internal (tempfail)" "internal" \
    $K1 account bob@example.test
check_fails "node 2 too" "internal" $K2 check bob@example.test
check_fails "a second request fails at once too" "internal" $K1 account bob@example.test
if kill -0 "${DPID[1]}" 2>/dev/null && kill -0 "${DPID[2]}" 2>/dev/null; then
    ok "both keyvaults keep running"; else notok "both keyvaults keep running"; fi
c=$(grep -c "PostgreSQL unavailable.*requests fail temporarily until it is back" kv1.log)
if [ "$c" = 1 ]; then ok "one log line for the outage (and one per refused request)"
else notok "one log line for the outage (found $c)"; fi
check_fails "dimectl says PostgreSQL is unavailable" "PostgreSQL unavailable" \
    "$CTL" -c kv1.conf user list
if pg_restart; then ok "PostgreSQL started again"; else notok "PostgreSQL started again"; fi
ok_again=0
for _ in $(seq 30); do # at most one connection attempt a second after a failed one
    if $K1 account bob@example.test >out.txt 2>err.txt && has "generation=3"; then
        ok_again=1
        break
    fi
    sleep 0.2
done
if [ "$ok_again" = 1 ]; then ok "node 1 serves again without a restart"
else notok "node 1 serves again without a restart"; fi
check "node 2 signs again without a restart" $K2 check bob@example.test
check_out "the return is logged" "PostgreSQL connected database=dime" cat kv1.log

for k in 1 2; do
    stop_kv "$k"
    if [ "$DRC" -eq 0 ]; then ok "keyvault $k stops cleanly"
    else tail -5 "kv$k.log" | sed 's/^/#   /'; notok "keyvault $k stops cleanly (exit $DRC)"; fi
done

# ---- dl_pg against the same server ----
"$PGC" "$PG_CONNINFO" >pgcheck.txt 2>&1
pgc_rc=$?
while IFS= read -r line; do
    case "$line" in
    "ok "*) ok "dl_pg: ${line#ok }" ;;
    "not ok "*) notok "dl_pg: ${line#not ok }" ;;
    *) echo "# $line" ;;
    esac
done <pgcheck.txt
if grep -q "^ok done" pgcheck.txt && [ "$pgc_rc" -eq 0 ]; then :; else
    notok "dl_pg checks ran to the end and exited 0 (exit $pgc_rc; a sanitizer report above?)"
fi

echo "# duration: $(($(date +%s) - START)) s"
echo "1..$n"
[ "$failed" -eq 0 ]
