#!/bin/sh
# Runs the libFuzzer targets of a fuzz build.
#
#   tests/fuzz/run.sh <build-dir> <seconds-per-target>
#   tests/fuzz/run.sh --long <build-dir> <minutes-per-target> [target...]
#
# Builds nothing: configure and build first, e.g.
#   CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false && ninja -C build-fuzz
#
# The first form (CI) runs each fuzz_* executable found under <build-dir> on a temporary COPY
# of its seed corpus (tests/fuzz/corpus/<target>/, which is never modified) with
# -max_total_time, a fixed -seed, a 2 GB RSS limit and final stats, FUZZ_WORKERS targets at
# a time (default 1). The number of executed inputs is printed per target.
#
# --long is a campaign: every named target (default: all) for <minutes-per-target>, with a
# random seed (FUZZ_SEED sets one), on a corpus kept in <build-dir>/fuzz-corpus/<target>/
# (seeded from the tree's corpus on the first run, grown by every later one, so a campaign
# can be continued), FUZZ_WORKERS targets at a time (default 1: give each its own core).
# Each target's figures (executions, seconds, cov, ft, corpus, exit status) are appended to
# <build-dir>/fuzz-stats/<target>.txt and summed up at the end; its log is
# <build-dir>/fuzz-stats/<target>.log. Inputs worth adding to the tree's seeds can be
# picked from the kept corpus with libFuzzer's -merge=1.
#
# Crash inputs are kept in <build-dir>/fuzz-artifacts/<target>/. Exits non-zero when any
# target fails (crash, leak, timeout, out of memory) or when no target is found.
set -u

usage() {
    echo "usage: $0 <build-dir> <seconds-per-target>" >&2
    echo "       $0 --long <build-dir> <minutes-per-target> [target...]" >&2
    exit 2
}
long=0
if [ "${1:-}" = "--long" ]; then
    long=1
    shift
    [ $# -ge 2 ] || usage
else
    [ $# -eq 2 ] || usage
fi
build=$1
secs=$2
shift 2
case $secs in
    '' | *[!0-9]* | 0) echo "$0: the time must be a positive integer, not '$secs'" >&2; exit 2 ;;
esac
[ $long -eq 1 ] && secs=$((secs * 60))
if [ ! -d "$build" ]; then
    echo "$0: no build directory '$build'" >&2
    exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
seeds=$here/corpus
# A fixed libFuzzer seed by default, so that a CI run explores the same inputs as the run
# a developer made before committing (within the time limit); FUZZ_SEED=0 picks a random
# seed for exploratory runs.
# (In --long mode the default is 0, a random seed per run.)
if [ $long -eq 1 ]; then seed=${FUZZ_SEED:-0}; else seed=${FUZZ_SEED:-1}; fi
build=$(cd "$build" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dc-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

targets=$(find "$build" -type f -name 'fuzz_*' -perm -u+x ! -path '*.p/*' | sort)
if [ -z "$targets" ]; then
    echo "$0: no fuzz_* executables under $build (configure with -Dfuzz=true and build)" >&2
    exit 1
fi

# Runs "$1 <target>" for every target, FUZZ_WORKERS targets at a time (default 1: each its
# own core): the targets are dealt round-robin into that many queues, each queue one target
# after the other. Returns 1 when any run failed.
workers=${FUZZ_WORKERS:-1}
case $workers in '' | *[!0-9]* | 0) echo "$0: FUZZ_WORKERS must be >= 1" >&2; exit 2 ;; esac
deal() {
    i=0
    pids=""
    while [ $i -lt "$workers" ]; do
        k=0
        queue=""
        for bin in $targets; do
            [ $((k % workers)) -eq $i ] && queue="$queue $bin"
            k=$((k + 1))
        done
        if [ -n "$queue" ]; then
            (
                bad=0
                for bin in $queue; do
                    "$1" "$bin" || bad=1
                done
                exit $bad
            ) &
            pids="$pids $!"
        fi
        i=$((i + 1))
    done
    bad=0
    for p in $pids; do
        wait "$p" || bad=1
    done
    return $bad
}

if [ $long -eq 1 ]; then
    if [ $# -gt 0 ]; then
        chosen=""
        for want in "$@"; do
            bin=$(printf '%s\n' "$targets" | grep "/$want\$" | head -n 1)
            if [ -z "$bin" ]; then
                echo "$0: no target $want under $build" >&2
                exit 2
            fi
            chosen="$chosen $bin"
        done
        targets=$chosen
    fi
    stats=$build/fuzz-stats
    mkdir -p "$stats"
    # One campaign run of one target; appends its figures to $stats/<name>.txt.
    campaign() {
        bin=$1
        name=$(basename "$bin")
        corpus=$build/fuzz-corpus/$name
        if [ ! -d "$corpus" ]; then
            mkdir -p "$corpus"
            [ -d "$seeds/$name" ] && cp -R "$seeds/$name/." "$corpus/"
        fi
        artifacts=$build/fuzz-artifacts/$name
        mkdir -p "$artifacts"
        log=$stats/$name.log
        echo "== $name: ${secs}s (campaign)"
        start=$(date +%s)
        "$bin" -max_total_time="$secs" -seed="$seed" -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1
        rc=$?
        took=$(($(date +%s) - start))
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        line=$(grep -E '^#[0-9]+' "$log" | grep ' cov: ' | tail -n 1)
        cov=$(printf '%s' "$line" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
        ft=$(printf '%s' "$line" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
        corp=$(printf '%s' "$line" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
        result=ok
        [ $rc -eq 0 ] || result="FAIL(exit $rc, see $log and $artifacts)"
        [ $rc -eq 0 ] && rmdir "$artifacts" 2>/dev/null
        printf '%s %s execs=%s seconds=%s cov=%s ft=%s corp=%s seed=%s %s\n' \
            "$(date -u +%Y-%m-%dT%H:%MZ)" "$name" "${execs:-?}" "$took" "${cov:-?}" \
            "${ft:-?}" "${corp:-?}" "$seed" "$result" >>"$stats/$name.txt"
        [ $rc -eq 0 ]
    }
    deal campaign
    failed=$?
    echo "== campaign figures (each target's last line of $stats/<target>.txt)"
    for bin in $targets; do
        tail -n 1 "$stats/$(basename "$bin").txt"
    done
    exit $failed
fi

# One CI-form run of one target on a temporary copy of its seeds; prints its result and
# writes its summary line to $tmp/<name>/result.
short_run() {
    bin=$1
    name=$(basename "$bin")
    corpus=$tmp/$name/corpus
    mkdir -p "$corpus"
    if [ -d "$seeds/$name" ]; then
        cp -R "$seeds/$name/." "$corpus/"
    else
        echo "note: $name has no seed corpus in $seeds/$name" >&2
    fi
    artifacts=$build/fuzz-artifacts/$name
    mkdir -p "$artifacts"
    log=$tmp/$name/log
    "$bin" -max_total_time="$secs" -seed="$seed" -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [ -n "$execs" ] || execs="?"
    if [ $rc -ne 0 ]; then
        # one block, so that two targets' failure reports do not interleave
        {
            echo "FAIL $name (exit $rc) after $execs executions; last lines of its log:"
            tail -n 60 "$log"
            echo "crash inputs (if any): $artifacts"
        } >"$tmp/$name/report"
        cat "$tmp/$name/report"
        echo "$name FAIL execs=$execs" >"$tmp/$name/result"
        return 1
    fi
    echo "ok   $name: $execs executions (${secs}s)"
    echo "$name ok execs=$execs" >"$tmp/$name/result"
    rmdir "$artifacts" 2>/dev/null
    return 0
}

deal short_run
failed=$?

echo "== summary"
for bin in $targets; do
    name=$(basename "$bin")
    if [ -f "$tmp/$name/result" ]; then cat "$tmp/$name/result"; else echo "$name FAIL (no result)"; failed=1; fi
done
exit $failed
