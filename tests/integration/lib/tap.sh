# TAP helpers shared by the integration test scripts (sourced, not run).
#   ok DESC / notok DESC    one test line; notok also shows the first lines of out.txt/err.txt
#                           of the current directory, where the scripts keep the last output
#   todo DESC REASON        a known failure, shown as "not ok N - DESC # TODO REASON": TAP
#                           (and meson) count it as an expected failure, not as passed
#   has TEXT [FILE]         fixed-string search (default out.txt)
#   scaled N [MIN]          N times DIME_TEST_SCALE (a factor, default 1; the sanitizer setup
#                           sets it lower), at least MIN (default 1): counts of load loops
#   skip_all REASON         the whole script cannot run here: "1..0 # SKIP REASON", or
#                           "Bail out!" and exit 1 when DIME_TESTS_STRICT is set (CI)
# Scripts print their plan ("1..$n") at the end, which TAP allows, and exit non-zero when
# $failed is not 0.
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() {
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $1"
    if [ -s out.txt ]; then sed -n '1,15s/^/#   out: /p' out.txt; fi
    if [ -s err.txt ]; then sed -n '1,15s/^/#   err: /p' err.txt; fi
}
todo() { n=$((n + 1)); echo "not ok $n - $1 # TODO $2"; }
scaled() {
    awk -v n="$1" -v m="${2:-1}" -v f="${DIME_TEST_SCALE:-1}" \
        'BEGIN { if (f !~ /^[0-9]*\.?[0-9]+$/) f = 1; v = int(n * f + 0.5); print (v < m ? m : v) }'
}
has() { grep -qF -- "$1" "${2:-out.txt}"; }
skip_all() {
    if [ -n "${DIME_TESTS_STRICT:-}" ]; then
        echo "Bail out! $1 (DIME_TESTS_STRICT is set)"
        exit 1
    fi
    echo "1..0 # SKIP $1"
    exit 0
}
