# TAP helpers shared by the integration test scripts (sourced, not run).
#   ok DESC / notok DESC    one test line; notok also shows the first lines of out.txt/err.txt
#                           of the current directory, where the scripts keep the last output
#   has TEXT [FILE]         fixed-string search (default out.txt)
#   todo_check DESC REASON CMD...   a known gap: "not ok N - DESC # TODO REASON" (not counted
#                           as failed) while CMD fails, "ok N - DESC # TODO REASON" once it
#                           passes (meson then reports an unexpected pass: drop the TODO)
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
has() { grep -qF -- "$1" "${2:-out.txt}"; }
todo_check() {
    local desc=$1 reason=$2
    shift 2
    n=$((n + 1))
    if "$@"; then echo "ok $n - $desc # TODO $reason"; return; fi
    echo "not ok $n - $desc # TODO $reason"
    if [ -s out.txt ]; then sed -n '1,5s/^/#   out: /p' out.txt; fi
}
