#!/usr/bin/env bash
# contrib/systemd/*.service: `systemd-analyze verify` accepts each unit without a word, and
# `systemd-analyze security --offline=yes` rates each "OK" or better (SAFE, PERFECT), with the
# score the unit's comment records (checked with the systemd version the comment names). Both
# run on copies whose Exec lines point at this build's daemons (verify wants the binaries to
# exist) with MANPATH at the source's man pages (verify runs man for Documentation=). Two
# spoiled copies show that each check can fail. TAP output.
#
# usage: test_units.sh SOURCE-ROOT DAEMON...   (the built dime-keyvaultd, dime-relayd, dime-milter,
#        dime-accountd)
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
SRC=$(abs "$1")
shift
EXE=() # sed expressions: /usr/sbin/NAME -> this build's NAME
for x in "$@"; do EXE+=(-e "s|/usr/sbin/$(basename "$x")\b|$(abs "$x")|g"); done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"

command -v systemd-analyze >/dev/null || skip_all "systemd-analyze is not installed (package systemd)"
command -v man >/dev/null || skip_all "man is not installed (package man-db; verify checks Documentation=)"
T=$(mktemp -d "${TMPDIR:-/tmp}/dime-units-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
mkdir -p man/man8
for f in keyvault/dime-keyvaultd.8 dmtp-relay/dime-relayd.8 milter/dime-milter.8 account/dime-accountd.8; do
    cp "$SRC/$f" man/man8/
done
export MANPATH=$T/man
sdver=$(systemd-analyze --version | awk 'NR == 1 {print $2}')

copy() { # copy UNIT-FILE DEST: the unit with this build's binaries
    sed "${EXE[@]}" "$1" >"$2"
}

# "N.N LEVEL" of a unit file, from the last line of systemd-analyze security
exposure() {
    systemd-analyze security --offline=yes "$1" >out.txt 2>err.txt
    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]* [A-Z]*\).*/\1/p' out.txt | tail -1
}
good_level() { case "${1#* }" in OK | SAFE | PERFECT) return 0 ;; *) return 1 ;; esac; }

units=("$SRC"/contrib/systemd/*.service)
[ ${#units[@]} -eq 4 ] && ok "four units in contrib/systemd" || notok "four units in contrib/systemd"
for u in "${units[@]}"; do
    b=$(basename "$u")
    copy "$u" "$b"
    # verify says nothing when all is well; any line (unknown key, missing binary or man page,
    # bad dependency) counts as a complaint
    if systemd-analyze verify "./$b" >out.txt 2>err.txt && ! [ -s out.txt ] && ! [ -s err.txt ]; then
        ok "$b: systemd-analyze verify has nothing to say"
    else
        notok "$b: systemd-analyze verify has nothing to say"
    fi
    got=$(exposure "./$b")
    if [ -n "$got" ] && good_level "$got"; then
        ok "$b: exposure $got (OK or better)"
    else
        notok "$b: exposure '$got' (OK or better)"
    fi
    said=$(sed -n "s/^# systemd-analyze security --offline=yes: \([0-9.]* [A-Z]*\) (systemd \([0-9]*\);.*/\1 \2/p" "$u")
    if [ "${said##* }" != "$sdver" ]; then
        ok "$b: recorded score '$said' is for another systemd than $sdver # SKIP"
    elif [ "${said% *}" = "$got" ]; then
        ok "$b: the unit's comment records the score ($got)"
    else
        : >out.txt
        echo "comment: '$said', measured: '$got'" >err.txt
        notok "$b: the unit's comment records the score"
    fi
done

# the checks can fail: a unit stripped of its hardening rates worse than OK, and a misspelt
# directive makes verify complain
u=$SRC/contrib/systemd/dime-relayd.service
copy "$u" bare.service
sed -i -E '/^(User|Group|SupplementaryGroups|NoNewPrivileges|Private|Protect|Restrict|System|Capability|Ambient|Lock|Memory|Remove|Device|IPAddress|ProcSubset|UMask)/d' bare.service
got=$(exposure ./bare.service)
if [ -n "$got" ] && ! good_level "$got"; then
    ok "a relay unit without its hardening is rated worse than OK ($got)"
else
    notok "a relay unit without its hardening is rated worse than OK ('$got')"
fi
copy "$u" typo.service
sed -i 's/^NoNewPrivileges=/NoNewPrivilege=/' typo.service
systemd-analyze verify ./typo.service >out.txt 2>err.txt
if grep -q "NoNewPrivilege" out.txt err.txt; then
    ok "verify complains about a misspelt directive"
else
    notok "verify complains about a misspelt directive"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
