#!/usr/bin/env bash
# dime-gateway quick start for a fresh Debian 12 machine (run as root from the source tree).
#
#   contrib/quickstart.sh test   install build dependencies, build, run every test:
#                                unit + integration tests, the same under ASan/UBSan with
#                                leak checking, each libFuzzer target for a bounded time, and
#                                the Debian packages (tests/package/test_deb.sh: build, lintian,
#                                install, two-domain exchange with the installed daemons, purge)
#   contrib/quickstart.sh deps   only install the Debian packages
#   contrib/quickstart.sh users  only create the daemons' system users and groups (as a real
#                                installation has them: README.md, "Users and directories");
#                                `test` and `demo` do it too
#   contrib/quickstart.sh demo   install, build (in build/), start alice.test and bob.test on
#                                loopback (DEMO_DIR, default /var/tmp/dime-demo), send a
#                                message from alice to bob through real Postfix and DIME, show
#                                it as the relay stored it and as bob received it
#   contrib/quickstart.sh demo-stop   stop every demo process (by PID)
#
# Environment: FUZZ_SECONDS (per fuzz target, default 10: a smoke run; the campaigns of
# tests/fuzz/README.md run longer, by hand), JOBS (ninja -j, default nproc),
# FUZZ_WORKERS (fuzz targets run at once, default JOBS).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

PACKAGES=(
    build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
    libssl-dev libsecp256k1-dev libsodium-dev libcriterion-dev libsqlite3-dev libpq-dev
    libunbound-dev libevent-dev libconfuse-dev libmilter-dev libcurl4-openssl-dev
    nsd ldnsutils dns-root-data openssl python3 iproute2
    time xxd postfix swaks miltertest procps dovecot-core dovecot-imapd postgresql-15
    systemd man-db passwd
    git dpkg-dev debhelper lintian
)

say() { printf '==> %s\n' "$*"; }

deps() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "all build dependencies are installed"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "quickstart: missing packages (run as root to install): ${missing[*]}" >&2
        exit 1
    fi
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Postfix without a system configuration: the tests run private instances (postfix -c)
    # and neither need nor touch the system service.
    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
    # dovecot-core: the SASL server of the sender-binding test, run as a private instance
    # (dovecot -c) with its own base_dir; the system service is not used. dovecot-imapd:
    # the same private instance serves the mailbox dime-client sync reads over IMAP.
    # postgresql-15: the keyvault's PostgreSQL tests start private servers (tests/integration/
    # lib/pg.sh, initdb in a temporary directory); the packaged cluster is not used.
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# The daemons' own users (the defaults of dime.conf) and their groups: dime reaches the
# keyvault's socket (the relay, the milter and the account service), dime-relay the relay's
# lookup and submission sockets. Existing users
# only get the missing group memberships.
users() {
    [ "$(id -u)" -eq 0 ] || { echo "quickstart: creating users needs root" >&2; exit 1; }
    getent group dime >/dev/null || groupadd --system dime
    local spec u groups
    for spec in dime-vault: dime-relay:dime dime-milter:dime,dime-relay dime-account:dime; do
        u=${spec%%:*} groups=${spec#*:}
        if ! getent passwd "$u" >/dev/null; then
            say "creating system user $u${groups:+ (groups $groups)}"
            useradd --system --user-group --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin ${groups:+--groups "$groups"} "$u"
        elif [ -n "$groups" ]; then
            usermod -a -G "$groups" "$u"
        fi
    done
}

setup() { # setup DIR [meson options...]
    local dir=$1
    shift
    if [ -d "$dir" ]; then
        meson setup --wipe "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@" >/dev/null
    fi
}

run_tests() {
    local jobs=${JOBS:-$(nproc)}
    # Integration tests skip when a tool they need is missing; here everything was just
    # installed, so a missing tool is an error, not a skip.
    export DIME_TESTS_STRICT=1
    say "build and test (gcc, -Werror)"
    setup build
    ninja -C build -j "$jobs"
    meson test -C build --print-errorlogs --num-processes "$jobs"

    say "build and test under AddressSanitizer + UndefinedBehaviorSanitizer (leaks fail)"
    setup build-san -Db_sanitize=address,undefined -Db_lundef=false
    ninja -C build-san -j "$jobs"
    meson test -C build-san --setup san --print-errorlogs --num-processes "$jobs"

    say "libFuzzer targets (clang), ${FUZZ_SECONDS:-10}s each"
    CC=clang setup build-fuzz -Dfuzz=true -Dtests=false
    ninja -C build-fuzz -j "$jobs"
    FUZZ_WORKERS=${FUZZ_WORKERS:-$jobs} bash tests/fuzz/run.sh build-fuzz "${FUZZ_SECONDS:-10}"

    say "Debian packages: build from a clean copy, lintian, install, exchange, purge"
    bash tests/package/test_deb.sh
    say "all tests passed"
}

case "${1:-}" in
deps) deps ;;
users) users ;;
test)
    deps
    users
    run_tests
    ;;
demo)
    [ "$(id -u)" -eq 0 ] || { echo "quickstart: the demo runs Postfix instances: run as root" >&2; exit 1; }
    deps
    users
    say "build (build/)"
    [ -f build/build.ninja ] || meson setup build >/dev/null
    ninja -C build -j "${JOBS:-$(nproc)}"
    # its own session: the daemons outlive this terminal until demo-stop
    setsid -w bash contrib/demo.sh start build "${DEMO_DIR:-/var/tmp/dime-demo}"
    ;;
demo-stop) bash contrib/demo.sh stop "${DEMO_DIR:-/var/tmp/dime-demo}" ;;
*)
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
