#!/usr/bin/env bash
# bench/pipeline - the whole DIME path, Postfix to Postfix, against plain SMTP between the
# same two Postfix instances, in one run on loopback (issue 7). Run as root:
#
#   bench/pipeline.sh BUILD-DIR [COUNT] [SIZE...]     (default COUNT 200, SIZE 4096 65536)
#   environment: CONNS (parallel SMTP sessions of the client, default 4), ROUNDS (default 1),
#   PACED (messages of the paced runs, default 30), VERBOSE=1 (on stderr: the client's line
#   of every run, with its submission time, and for DIME burst runs the largest depths of the
#   two relay queues seen, sampled every 0.25 s with dime-relayctl, which shows the stage
#   where messages wait; off by default, as the sampling costs CPU), CPU=1 (on stderr, after
#   each burst run: CPU time per message from the client's start to the last delivery, user
#   + system from /proc/PID/stat, of each kind of DIME daemon of the build, both domains
#   together, of the two Postfix instances and of the client, and of the whole machine from
#   /proc/stat, which includes whatever else runs)
#
# Setup: the environment of the end-to-end test (e2e_init of tests/integration/lib/e2e.sh:
# nsd with the signed zones; for alice.test and bob.test a private Postfix, dime-milter,
# dime-relayd and dime-keyvaultd; an idle legacy.test Postfix). Two listeners are added with
# env_pf_hook, both without milter: a plain submission listener on alice's Postfix and a plain
# receiving listener on bob's, and alice's Postfix routes bob.test to the latter (transport).
#
# DIME: the client (bench/pipeline_client.py, CONNS sessions) submits COUNT messages of SIZE
# bytes from alice@alice.test to bob@bob.test on alice's submission listener. alice's milter
# encrypts and signs (alice's keyvault), submits to alice's relay and removes the recipient
# (Postfix discards the empty message); the relay sends it over DMTP/TLS to bob's relay (bob's
# keyvault, SQLite commit), which injects the wrapper into bob's Postfix, whose milter decrypts
# and verifies it (bob's keyvault) and restores the original; virtual(8) writes it to bob's
# Maildir. The transport entry is never used on this path (checked: alice's Postfix delivers
# nothing to bob.test).
# Plain: the same client, count and size on alice's plain submission listener; alice's Postfix
# queues the message and its smtp(8) client relays it to bob's plain listener; bob's Postfix
# queues it and virtual(8) delivers it. This is the same pair of Postfix instances doing what
# they do for mail without DIME: each message crosses both Postfix queues and one SMTP hop
# (no TLS: plain SMTP is what DIME replaces here), with no milter and no DIME daemon on the path.
#
# Clock: from the first client connection to the mtime of the last delivered Maildir file.
# Latency per message: client's wall clock after the 250 to DATA -> mtime of its Maildir file
# (matched by Message-ID). In the burst runs (COUNT messages over CONNS sessions) it includes
# the wait behind earlier messages at the slowest stage; the paced runs (PACED messages, one
# session, each sent once the previous one is in the Maildir) give the latency of an idle
# pipeline, so "added" there is what DIME adds to one message.
# Checks: every message of a DIME run carries dime=pass in bob's Authentication-Results and
# appears as status=sent in alice's relay log and status=injected in bob's; in a plain run
# none does, and alice's Postfix logs COUNT deliveries to bob's plain listener. A warm-up of
# a few messages on each path runs first (signet caches, TLS sessions, Postfix processes), and
# every run starts with empty queues.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: bench/pipeline.sh BUILD-DIR [COUNT] [SIZE...]" >&2; exit 2; }
B=$(cd "$1" && pwd) || exit 2
N=${2:-200}
shift $(($# >= 2 ? 2 : 1))
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(4096 65536)
CONNS=${CONNS:-4}
PACED=${PACED:-30}
ROUNDS=${ROUNDS:-1}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LIB=$HERE/../tests/integration/lib
CLIENT=$HERE/pipeline_client.py
[ "$(id -u)" = 0 ] || { echo "bench/pipeline: run as root (Postfix)" >&2; exit 2; }
source "$LIB/postfix.sh"
source "$LIB/dime_env.sh"
source "$LIB/e2e.sh"
trap env_cleanup EXIT
# bin NAME DIR...: the first $B/DIR/NAME that exists (builds before c0dce33 had the tools
# next to their daemons: keyvault/dimectl, keyvault/dime-signet, dmtp-relay/dime-relayctl)
bin() {
    local n=$1 d
    shift
    for d in "$@"; do [ -x "$B/$d/$n" ] && { echo "$B/$d/$n"; return 0; }; done
    echo "$B/$1/$n"
}
MILTER=$B/milter/dime-milter KVD=$B/keyvault/dime-keyvaultd CTL=$(bin dimectl tools keyvault)
RLD=$B/dmtp-relay/dime-relayd RLC=$(bin dime-relayctl tools dmtp-relay)
DS=$(bin dime-signet tools keyvault)

# plain listeners (no milter) and alice's route to bob's plain listener; bob's Postfix is
# configured after alice's, so its port is picked on alice's turn
declare -A PLAIN_PORT=()
env_pf_hook() {
    local d=$1
    if [ "$d" = alice ]; then
        PLAIN_PORT[alice]=$(env_pick) && PLAIN_PORT[bob]=$(env_pick) || return 1
        pf_transport "$T/pf-alice" bob.test "smtp:[${ADDR[bob]}]:${PLAIN_PORT[bob]}"
    fi
    pf_listener "$T/pf-$d" "${ADDR[$d]}" "${PLAIN_PORT[$d]}" none
    # Postfix's inflow control: cleanup(8) takes a token per received message and qmgr(8)
    # gives one back per delivery, else cleanup waits up to in_flow_delay (1 s). On the DIME
    # path alice's qmgr delivers nothing (the milter hands the message to the relay and
    # Postfix discards the empty transaction), so submission stalled in steps of up to 1 s
    # (contrib/README.postfix). Off on both instances, for both paths.
    pf_set "$T/pf-$d" "in_flow_delay = 0s"
}
e2e_init >/dev/null 2>>"${TMPDIR:-/tmp}/pipeline-setup.$$" || {
    echo "bench/pipeline: setup failed" >&2
    cat "${TMPDIR:-/tmp}/pipeline-setup.$$" "$T"/setup.log "$T"/*.log 2>/dev/null | tail -20 >&2
    rm -f "${TMPDIR:-/tmp}/pipeline-setup.$$"
    exit 1
}
rm -f "${TMPDIR:-/tmp}/pipeline-setup.$$"
PFA=$T/pf-alice PFB=$T/pf-bob
BOBBOX=$PFB/mail/bob

load1() { cut -d' ' -f1 /proc/loadavg; }
count() { grep -c -- "$1" "$2" 2>/dev/null; } # lines of FILE matching REGEX (0 if none)
plain_sent() { count "relay=${ADDR[bob]}\[${ADDR[bob]}\]:${PLAIN_PORT[bob]},.*status=sent" "$PFA/maillog"; }
relay_sent() { count 'deliver id=.* status=sent' "$T/alice-relayd.log"; }
relay_injected() { count 'inject id=.* status=injected' "$T/bob-relayd.log"; }
idle() { # both Postfix queues and both relay queues empty
    [ "$(pf_queue_count "$PFA")" = 0 ] && [ "$(pf_queue_count "$PFB")" = 0 ] && e2e_queues_empty
}
wait_idle() {
    local i
    for ((i = 0; i < 600; i++)); do idle && return 0; sleep 0.1; done
    echo "bench/pipeline: queues not empty after 60 s" >&2
    return 1
}
# wait_count FUNC WANT: until FUNC prints at least WANT (logs are written a moment after the fact)
wait_count() {
    local i
    for ((i = 0; i < 100; i++)); do [ "$("$1")" -ge "$2" ] && return 0; sleep 0.1; done
    return 1
}

# CPU time (user + system, in clock ticks) per kind of DIME daemon of this build, both domains
# together, as "dime-milter TICKS" lines, and "all TICKS" from /proc/stat (every process of
# the machine, also what is not ours). The daemons live through the whole bench, so the
# difference of two readings is their CPU in between.
CPU_DIME= CPU_MASTERS=
cpu_read() {
    # the processes are found once (the daemons and the Postfix masters live through the
    # bench): searching /proc costs more CPU than a burst's daemons in a window
    if [ -z "$CPU_DIME" ]; then
        CPU_DIME=$(find /proc -mindepth 2 -maxdepth 2 -path '/proc/[0-9]*/exe' -lname "$B/*" \
            -printf '%h/stat ' 2>/dev/null)
        local m
        for m in $(find /proc -mindepth 2 -maxdepth 2 -path '/proc/[0-9]*/cwd' \
            -lname "$T/pf-*" -printf '%h ' 2>/dev/null); do
            [ "$(cat "$m/comm" 2>/dev/null)" = master ] && CPU_MASTERS+="${m#/proc/} "
        done
    fi
    # the Postfix instances: each master with the time of the children it reaped, and its
    # live children. One cat and one awk for all (each process started here costs CPU in the
    # window measured).
    local m c kids files=()
    for m in $CPU_MASTERS; do
        files+=("/proc/$m/stat")
        # the list has no newline at its end, so read returns 1 after filling the array
        kids=()
        read -r -a kids <"/proc/$m/task/$m/children" 2>/dev/null || :
        for c in "${kids[@]}"; do files+=("/proc/$c/stat"); done
    done
    # shellcheck disable=SC2086
    { cat $CPU_DIME "${files[@]}" /proc/stat 2>/dev/null; echo "wall $EPOCHREALTIME"; } |
        awk -v ms=" $CPU_MASTERS" '
            $1 == "cpu" { print "all", $2 + $3 + $4 + $7 + $8; next }
            $1 == "wall" { print; next }
            $1 ~ /^[0-9]+$/ {
                c = $2; gsub(/[()]/, "", c)
                if (c ~ /^dime-/) { t[c] += $14 + $15; next }
                pf += $14 + $15
                if (index(ms, " " $1 " ")) pf += $16 + $17
            }
            END { for (k in t) print k, t[k]; print "postfix", pf + 0 }'
}

# cpu_report BEFORE-FILE AFTER-FILE N TAG CLIENT-CPU-S: milliseconds per message per kind
cpu_report() {
    awk -v n="$3" -v tag="$4" -v ccpu="${5:-0}" -v hz="$(getconf CLK_TCK)" -v ncpu="$(nproc)" '
        NR == FNR { b[$1] = $2; next }
        { d[$1] = $2 - b[$1] }
        END {
            line = sprintf("# %s: CPU ms per message:", tag); tot = 0
            for (k in d) if (k ~ /^dime-/) { line = line sprintf(" %s %.2f", k, d[k] * 1000 / hz / n); tot += d[k] }
            line = line sprintf("; Postfix (both) %.2f; client %.2f", d["postfix"] * 1000 / hz / n, ccpu * 1000 / n)
            printf "%s; ours %.2f; whole machine %.2f (%.0f%% of %d CPUs busy)\n", line,
                   tot * 1000 / hz / n, d["all"] * 1000 / hz / n,
                   (d["wall"] > 0 ? 100 * d["all"] / hz / d["wall"] / ncpu : 0), ncpu
        }' "$1" "$2" >&2
}

sample_queues() { # until killed: "ALICE-RELAY-QUEUE BOB-RELAY-QUEUE" lines
    while :; do
        echo "$("$RLC" -c "$T/alice/dime.conf" queue list 2>/dev/null | grep -c .)" \
            "$("$RLC" -c "$T/bob/dime.conf" queue list 2>/dev/null | grep -c .)"
        sleep 0.25
    done
}

# run PATH SIZE COUNT TAG [paced]: one measured run; sets R_RATE R_P50 R_P99 R_LOAD
run() {
    local path=$1 size=$2 n=$3 tag=$4 paced=${5:-} port ps rs ri l0 out dp
    case $path in dime) port=${SUB_PORT[alice]} ;; plain) port=${PLAIN_PORT[alice]} ;; esac
    wait_idle || return 1
    find "$BOBBOX/new" "$BOBBOX/cur" -type f -delete 2>/dev/null
    ps=$(plain_sent) rs=$(relay_sent) ri=$(relay_injected) l0=$(load1)
    local smp=
    if [ "${VERBOSE:-0}" = 1 ] && [ "$path" = dime ] && [ -z "$paced" ] && [ "${tag#warm}" = "$tag" ]; then
        sample_queues >"$T/depth-$tag.txt" &
        smp=$!
    fi
    local cpu=0
    if [ "${CPU:-0}" = 1 ] && [ -z "$paced" ] && [ "${tag#warm}" = "$tag" ]; then
        cpu=1
        cpu_read >"$T/cpu0-$tag.txt"
    fi
    out=$(python3 "$CLIENT" "${ADDR[alice]}" "$port" alice@alice.test bob@bob.test "$n" "$size" \
        "$CONNS" "$tag" "$BOBBOX" $((60 + n)) "$T/lat-$tag.txt" $paced) || return 1
    R_LOAD="$l0/$(load1)"
    # the second reading when the client saw the last delivery: the window is the run's own
    # (the waits for empty queues below poll Postfix and the relays, which costs CPU too)
    [ $cpu = 1 ] && cpu_read >"$T/cpu1-$tag.txt"
    [ "${VERBOSE:-0}" = 1 ] && echo "# $tag: $out" >&2
    if [ -n "$smp" ]; then
        kill "$smp" 2>/dev/null
        wait "$smp" 2>/dev/null
        sort -n -k1 "$T/depth-$tag.txt" | tail -1 | awk '{ printf "# %s: deepest alice relay queue (outbound) %d,", t, $1 }' t="$tag" >&2
        sort -n -k2 "$T/depth-$tag.txt" | tail -1 | awk '{ printf " bob relay queue (inbound, to inject) %d\n", $2 }' >&2
    fi
    local kv npass=
    R_RATE='' R_P50='' R_P99='' R_CCPU=0
    for kv in $out; do
        case $kv in
        rate=*) R_RATE=${kv#*=} ;;
        p50=*) R_P50=${kv#*=} ;;
        p99=*) R_P99=${kv#*=} ;;
        dimepass=*) npass=${kv#*=} ;;
        cpu=*) R_CCPU=${kv#*=} ;;
        esac
    done
    wait_idle || return 1
    [ $cpu = 1 ] && cpu_report "$T/cpu0-$tag.txt" "$T/cpu1-$tag.txt" "$n" "$tag" "$R_CCPU"
    if [ "$path" = dime ]; then
        wait_count relay_sent $((rs + n)) && wait_count relay_injected $((ri + n))
        dp=$?
        if [ "$npass" != "$n" ] || [ $dp != 0 ] || [ "$(plain_sent)" != "$ps" ]; then
            echo "bench/pipeline: DIME run $tag did not go through DIME: dime=pass $npass of $n," \
                "relay sent $(($(relay_sent) - rs)), injected $(($(relay_injected) - ri))," \
                "plain SMTP deliveries by alice's Postfix $(($(plain_sent) - ps))" >&2
            return 1
        fi
    else
        wait_count plain_sent $((ps + n))
        dp=$?
        if [ "$npass" != 0 ] || [ $dp != 0 ] || [ "$(relay_sent)" != "$rs" ] ||
            [ "$(relay_injected)" != "$ri" ]; then
            echo "bench/pipeline: plain run $tag was not plain SMTP: dime=pass $npass," \
                "relay sent $(($(relay_sent) - rs)), injected $(($(relay_injected) - ri))," \
                "plain SMTP deliveries $(($(plain_sent) - ps)) of $n" >&2
            return 1
        fi
    fi
}

# warm-up: signet caches, DMTP/TLS connections, Postfix daemons on both paths. The first
# lookup of bob.test can fail on a loaded machine (the milter answers 451 and a real client
# would try again): up to three tries, each with new messages.
warm=0
for w in 1 2 3; do
    if run dime 4096 5 "warm$w-dime" && run plain 4096 5 "warm$w-plain"; then warm=1; break; fi
    sleep 2
done
[ $warm = 1 ] || { echo "bench/pipeline: warm-up failed" >&2; exit 1; }

echo "dime-gateway bench/pipeline ($N messages per burst run over $CONNS SMTP sessions, $PACED per paced run, loopback)"
echo "DIME: alice submission -> milter -> relay -DMTP/TLS-> relay -> Postfix -> milter -> bob's Maildir"
echo "plain: alice submission -> Postfix -SMTP-> Postfix -> bob's Maildir (no milter, no DIME daemon)"
echo "latency: after the 250 at submission -> file in bob's Maildir, in ms; burst: during the"
echo "burst run; paced: one message at a time; load: 1-min load average before/after the burst"
printf '%-6s %-5s %8s %7s %7s | %7s %7s | %s\n' size path msg/s p50 p99 paced50 paced99 load
row() { # SIZE-LABEL PATH RATE P50 P99 PACED50 PACED99 LOAD
    printf '%-6s %-5s %8s %7s %7s | %7s %7s | %s\n' "$@"
}
for ((r = 1; r <= ROUNDS; r++)); do
    for size in "${SIZES[@]}"; do
        lbl="$((size / 1024))KiB"
        run plain "$size" "$PACED" "pp$r-$size" paced || exit 1
        pq50=$R_P50 pq99=$R_P99
        run plain "$size" "$N" "p$r-$size" || exit 1
        pr=$R_RATE p50=$R_P50 p99=$R_P99
        row "$lbl" plain "$pr" "$p50" "$p99" "$pq50" "$pq99" "$R_LOAD"
        run dime "$size" "$PACED" "dp$r-$size" paced || exit 1
        dq50=$R_P50 dq99=$R_P99
        run dime "$size" "$N" "d$r-$size" || exit 1
        row "$lbl" DIME "$R_RATE" "$R_P50" "$R_P99" "$dq50" "$dq99" "$R_LOAD"
        printf '%-6s ratio %s; added latency: burst p50 %+d p99 %+d ms, paced p50 %+d p99 %+d ms\n' \
            "$lbl" "$(awk -v a="$R_RATE" -v b="$pr" 'BEGIN { printf "%.2f", a / b }')" \
            $((R_P50 - p50)) $((R_P99 - p99)) $((dq50 - pq50)) $((dq99 - pq99))
    done
done
