# shellcheck shell=bash
# lib/sasl_env.sh - the start of a two-domain test whose alice.test Postfix takes SASL logins
# from a private Dovecot (test_sasl.sh, test_client.sh). Source it after lib/tap.sh with HERE
# set: skips the test when a tool, root or the dovecot user is missing; sources
# lib/postfix.sh, lib/dime_env.sh and lib/dovecot.sh; sets the EXIT trap that stops the
# milters (both at once: libmilter takes up to 5 s to notice SIGTERM), Dovecot and the rest
# of the environment; defines die MESSAGE (Bail out! with the logs' last lines).

for t in nsd ldns-keygen ldns-signzone openssl python3 ss postfix postconf script dovecot; do
    command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ "$(id -u)" = 0 ] || skip_all "needs root (private Postfix instances, Dovecot)"
id dovecot >/dev/null 2>&1 || skip_all "no dovecot user (the dovecot-core package makes it)"

source "$HERE/lib/postfix.sh"
source "$HERE/lib/dime_env.sh"
source "$HERE/lib/dovecot.sh"
sasl_env_cleanup() {
    local d
    for d in alice bob; do [ -n "${MI_PID[$d]:-}" ] && kill "${MI_PID[$d]}" 2>/dev/null; done
    dv_stop
    env_cleanup
}
trap sasl_env_cleanup EXIT
die() {
    echo "Bail out! $*"
    for f in "$T"/*.log "$T"/pf-*/maillog "$T"/dovecot/dovecot.log; do
        [ -s "$f" ] && tail -5 "$f" | sed "s|^|# $(basename "$f"): |"
    done
    exit 1
}
