#!/bin/sh
# Runs every libFuzzer target of a fuzz build for a fixed time each.
#
#   tests/fuzz/run.sh <build-dir> <seconds-per-target>
#
# Builds nothing: configure and build first, e.g.
#   CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false && ninja -C build-fuzz
# Each fuzz_* executable found under <build-dir> runs on a temporary COPY of its seed corpus
# (tests/fuzz/corpus/<target>/, which is never modified) with -max_total_time, -seed, a 2 GB RSS
# limit and final stats. The number of executed inputs is printed per target. Crash inputs
# are kept in <build-dir>/fuzz-artifacts/<target>/. Exits non-zero when any target fails
# (crash, leak, timeout, out of memory) or when no target is found.
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 <build-dir> <seconds-per-target>" >&2
    exit 2
fi
build=$1
secs=$2
case $secs in
    '' | *[!0-9]*) echo "$0: seconds must be a positive integer, not '$secs'" >&2; exit 2 ;;
esac
if [ ! -d "$build" ]; then
    echo "$0: no build directory '$build'" >&2
    exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
seeds=$here/corpus
# A fixed libFuzzer seed by default, so that a CI run explores the same inputs as the run
# a developer made before committing (within the time limit); FUZZ_SEED=0 picks a random
# seed for exploratory runs.
seed=${FUZZ_SEED:-1}
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

failed=0
summary=""
for bin in $targets; do
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
    echo "== $name: ${secs}s"
    "$bin" -max_total_time="$secs" -seed="$seed" -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [ -n "$execs" ] || execs="?"
    if [ $rc -ne 0 ]; then
        failed=1
        echo "FAIL $name (exit $rc) after $execs executions; last lines of its log:"
        tail -n 60 "$log"
        echo "crash inputs (if any): $artifacts"
        summary="$summary$name FAIL execs=$execs
"
    else
        echo "ok   $name: $execs executions"
        summary="$summary$name ok execs=$execs
"
        rmdir "$artifacts" 2>/dev/null
    fi
done

echo "== summary"
printf '%s' "$summary"
exit $failed
