#!/usr/bin/env bash
# contrib/dime.conf: the commented sample passes -n of all four daemons (with its paths moved
# into a temporary directory and its users mapped to ones that exist), and it names every
# option of the schema in dimecore/dc_config.c. TAP output.
#
# usage: test_contrib.sh KEYVAULTD RELAYD MILTER SOURCE-ROOT ACCOUNTD
set -uo pipefail

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KVD=$(abs "$1")
RLD=$(abs "$2")
MILTER=$(abs "$3")
SRC=$(abs "$4")
ACD=$(abs "$5")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/tap.sh"

if ! command -v openssl >/dev/null; then
    if [ -n "${DIME_TESTS_STRICT:-}" ]; then echo "Bail out! openssl is not installed"; exit 1; fi
    echo "1..0 # SKIP openssl is not installed"
    exit 0
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/dime-contrib-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
mkdir -p etc lib run
head -c 32 /dev/urandom >etc/master.key
chmod 400 etc/master.key
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=dx.example.org" -keyout etc/dx.key -out etc/dx.pem 2>/dev/null ||
    { echo "Bail out! openssl"; exit 1; }
ta=/usr/share/dns/root.key
[ -r "$ta" ] || ta=""
sed -e "s|/etc/dime/|$T/etc/|g" -e "s|/var/lib/dime-[a-z]*/|$T/lib/|g" -e "s|/run/dime-[a-z]*/|$T/run/|g" \
    -e 's|"dime-vault"|"nobody"|g; s|"dime-relay"|"nobody"|g; s|"dime-milter"|"nobody"|g; s|"dime-account"|"nobody"|g' \
    -e 's|socket-group = "dime"|socket-group = "nogroup"|; s|socket-group = "postfix"|socket-group = "nogroup"|' \
    -e "s|trust-anchor-file = \"/usr/share/dns/root.key\"|trust-anchor-file = \"$ta\"|" \
    "$SRC/contrib/dime.conf" >dime.conf

for d in "dime-keyvaultd:$KVD" "dime-relayd:$RLD" "dime-milter:$MILTER" "dime-accountd:$ACD"; do
    if "${d#*:}" -n -c dime.conf >out.txt 2>err.txt; then
        ok "${d%%:*} -n accepts contrib/dime.conf"
    else
        notok "${d%%:*} -n accepts contrib/dime.conf"
    fi
done

# every option of every section of the schema appears as "name =" in the sample
missing=()
while read -r opt; do
    grep -qE "^[[:space:]]*$opt[[:space:]]*=" "$SRC/contrib/dime.conf" || missing+=("$opt")
done < <(grep -oE 'CFG_(STR|INT|BOOL|STR_LIST|INT_LIST|FLOAT)\("[a-z0-9-]+"' \
    "$SRC/dimecore/dc_config.c" | sed 's/.*("//; s/"$//' | sort -u)
if [ ${#missing[@]} -eq 0 ]; then
    ok "contrib/dime.conf names every option of dc_config.c"
else
    echo "${missing[*]}" >out.txt
    : >err.txt
    notok "contrib/dime.conf names every option of dc_config.c"
fi
for s in keyvault relay milter domain; do
    if grep -qE "^$s( \"[^\"]+\")? \{" "$SRC/contrib/dime.conf"; then ok "contrib/dime.conf has a $s section"; else notok "contrib/dime.conf has a $s section"; fi
done

echo "1..$n"
[ "$failed" -eq 0 ]
