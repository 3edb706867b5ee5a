#!/usr/bin/env bash
# The Debian packages, built and installed as an operator would (issue 17), TAP output.
# Run as root on Debian 12 from a git checkout; contrib/quickstart.sh test runs it last.
#
#   tests/package/test_deb.sh
#
# 1. copies the tree as git has it (tracked files, uncommitted changes included: git stash
#    create) to a new directory under /tmp, installs its Build-Depends (apt-get build-dep)
#    and builds with dpkg-buildpackage -b -us -uc (no debug symbol packages)
# 2. lintian: no errors (warnings and notes are printed)
# 3. apt-get install ./*.deb: the users, groups, directories, units (installed, not enabled),
#    /etc/dime/dime.conf as a conffile, man pages; Postfix's configuration untouched
# 4. the setup steps of README.md ("Install on a server": dimectl setup) on the installed
#    defaults up to the daemons' -n, dime-keyvaultd started as its unit starts it (nothing but the installed
#    /etc/dime/dime.conf, directories and user), then the two-domain exchange of
#    tests/integration/lib/e2e.sh
#    (real Postfix, nsd, loopback) with the binaries from /usr, each daemon as its user,
#    after the build tree is deleted
# 5. apt-get purge: every file and directory the packages made is gone. The system users
#    and groups stay (Debian's practice: files they owned may remain elsewhere, and a later
#    user must not inherit them).
# The users usually exist before (quickstart's `users`), so the installed dime-common's
# postinst also runs in a private mount namespace over a copy of /etc without them: it must
# create them with their groups, and a second run (an upgrade) must change nothing.
#
# KEEP=1 keeps the work directory. Packages named dime-* already installed are purged
# first; an /etc/dime not made by them stops the test. Every process is stopped by PID.
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../integration/lib/tap.sh
source "$top/tests/integration/lib/tap.sh"

PKGS=(dime-common dime-keyvault dime-relay dime-milter dime-tools)
DAEMONS=(keyvault relay milter)
[ "$(id -u)" = 0 ] || skip_all "needs root (apt-get install, private Postfix instances)"
for t in git dpkg-buildpackage lintian apt-get unshare openssl nsd ldns-keygen ldns-signzone postfix swaks ss; do
    command -v "$t" >/dev/null || skip_all "$t is not installed"
done
git -C "$top" rev-parse --git-dir >/dev/null 2>&1 || skip_all "$top is not a git checkout"

W=$(mktemp -d /tmp/dime-deb-test.XXXXXX)
chmod 755 "$W"
cd "$W" || exit 1
KV_SMOKE_PID=
T=
installed=0
cleanup() {
    if [ -n "$KV_SMOKE_PID" ]; then kill "$KV_SMOKE_PID" 2>/dev/null; wait "$KV_SMOKE_PID" 2>/dev/null; fi
    [ -n "$T" ] && declare -F env_cleanup >/dev/null && env_cleanup >/dev/null 2>&1
    if [ "$installed" = 1 ]; then
        # /etc/dime did not exist before: these files are the test's own (step 4a)
        rm -f /etc/dime/master.key /etc/dime/dx.key /etc/dime/dx.pem
        apt-get purge -y -q "${PKGS[@]}" >"$W/purge-on-exit.log" 2>&1
    fi
    cd /
    if [ "${KEEP:-0}" = 1 ]; then echo "# kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
die() {
    echo "Bail out! $*"
    exit 1
}
# step NAME CMD...: CMD's output in NAME.log, its tail shown when it fails
step() {
    local name=$1
    shift
    "$@" >"$W/$name.log" 2>&1 && return 0
    tail -25 "$W/$name.log" | sed "s|^|#   $name: |"
    return 1
}
export DEBIAN_FRONTEND=noninteractive

# ---- a machine without the packages ----
for p in "${PKGS[@]}"; do
    if dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^[ir]'; then
        echo "# $p is installed from an earlier run: purging it first"
        step purge-before apt-get purge -y -q "$p" || die "could not purge $p"
    fi
done
[ -e /etc/dime ] && die "/etc/dime exists and no dime package owns it: not touching it"
pf_conf_sum() { cat /etc/postfix/main.cf /etc/postfix/master.cf 2>/dev/null | sha256sum; }
PF_BEFORE=$(pf_conf_sum)

# ---- 1. build from a clean copy ----
start=$SECONDS
mkdir src
rev=$(git -C "$top" stash create 2>/dev/null)
git -C "$top" archive "${rev:-HEAD}" | tar -x -C src || die "git archive"
[ -d src/debian ] || die "no debian/ in the tree"
(cd src && step build-dep apt-get build-dep -y -q ./) || die "apt-get build-dep failed"
if (cd src && DEB_BUILD_OPTIONS="noddebs parallel=${JOBS:-$(nproc)}" step build \
    dpkg-buildpackage -b -us -uc); then
    ok "dpkg-buildpackage -b -us -uc from a clean copy ($((SECONDS - start)) s)"
else
    notok "dpkg-buildpackage -b -us -uc from a clean copy"
    die "no packages to test"
fi
debs=$(ls ./*.deb)
for p in "${PKGS[@]}"; do
    [[ $debs == *"/${p}_"* ]] || notok "$p was built"
done
[ "$(echo "$debs" | wc -l)" = ${#PKGS[@]} ] && ok "five packages: $(echo "$debs" | tr '\n' ' ')" ||
    notok "five packages (got: $(echo "$debs" | tr '\n' ' '))"

# ---- 2. lintian ----
start=$SECONDS
lintian --fail-on error --display-info ./*.changes >lintian.txt 2>&1
rc=$?
sed 's/^/# lintian: /' lintian.txt | grep -v 'running with root privileges'
if [ $rc = 0 ] && ! grep -q '^E:' lintian.txt; then
    ok "lintian: no errors ($(grep -c '^W:' lintian.txt) warnings, $((SECONDS - start)) s)"
else
    notok "lintian: no errors"
fi

# ---- 3. install ----
if step install apt-get install -y -q ./*.deb; then
    installed=1
    ok "apt-get install ./*.deb"
else
    installed=1
    die "apt-get install failed"
fi
# the build tree goes: from here on only what the packages installed runs
rm -rf src/obj-* src/debian/.debhelper src/debian/tmp src/debian/dime-*/
where=
for x in dime-keyvaultd dimectl dime-relayd dime-relayctl dime-milter dime-signet dime-message dime-client; do
    where+=" $(command -v "$x" || echo "$x:missing")"
done
[ "$where" = " /usr/sbin/dime-keyvaultd /usr/sbin/dimectl /usr/sbin/dime-relayd /usr/sbin/dime-relayctl /usr/sbin/dime-milter /usr/bin/dime-signet /usr/bin/dime-message /usr/bin/dime-client" ] &&
    ok "the eight programs are in /usr/bin and /usr/sbin" ||
    notok "the eight programs are in /usr/bin and /usr/sbin (got:$where)"

users_ok=1
for spec in dime-vault: dime-relay:dime dime-milter:dime,dime-relay; do
    u=${spec%%:*} want=${spec#*:}
    e=$(getent passwd "$u") || { users_ok=0; echo "# no user $u"; continue; }
    IFS=: read -r _ _ uid _ _ home shell <<<"$e"
    [ "$uid" -lt 1000 ] && [ "$shell" = /usr/sbin/nologin ] && [ "$home" = /nonexistent ] ||
        { users_ok=0; echo "# $u: uid $uid home $home shell $shell"; }
    for g in ${want//,/ }; do
        id -nG "$u" | tr ' ' '\n' | grep -qx "$g" || { users_ok=0; echo "# $u is not in $g"; }
    done
done
[ $users_ok = 1 ] && ok "system users dime-vault, dime-relay (group dime), dime-milter (dime, dime-relay)" ||
    notok "system users dime-vault, dime-relay (group dime), dime-milter (dime, dime-relay)"

# postinst on a machine without the users: in a private mount namespace, over a copy of /etc
unshare -m --propagation private bash -s >postinst.txt 2>&1 <<'NS'
etc=$(mktemp -d /tmp/dime-deb-etc.XXXXXX)
trap 'umount /etc; rm -rf "$etc"' EXIT
# the entries go from the copy's files (userdel refuses users that processes run as)
cp -a /etc/. "$etc"/ &&
    sed -i -E '/^(dime|dime-vault|dime-relay|dime-milter):/d' "$etc"/passwd "$etc"/shadow \
        "$etc"/group "$etc"/gshadow && mount --bind "$etc" /etc || exit 1
getent passwd dime-vault && exit 1
getent group dime && exit 1
sh /var/lib/dpkg/info/dime-common.postinst configure || exit 1
show() { for u in dime-vault dime-relay dime-milter; do getent passwd "$u" | cut -d: -f1,6,7; id -nG "$u"; done; }
show >first
sh /var/lib/dpkg/info/dime-common.postinst configure 0.1.0-1 || exit 1
show >second
cat first
cmp first second && rm first second
NS
if [ $? = 0 ] && [ "$(tr '\n' ' ' <postinst.txt)" = "dime-vault:/nonexistent:/usr/sbin/nologin dime-vault dime-relay:/nonexistent:/usr/sbin/nologin dime-relay dime dime-milter:/nonexistent:/usr/sbin/nologin dime-milter dime dime-relay " ]; then
    ok "dime-common's postinst without the users creates them and their groups; run again, no change"
else
    sed 's/^/#   /' postinst.txt
    notok "dime-common's postinst without the users creates them and their groups; run again, no change"
fi

dirs_ok=1
for spec in /run/dime-keyvault:dime-vault:dime:750 /var/lib/dime-keyvault:dime-vault:dime:700 \
    /run/dime-relay:dime-relay:dime-relay:750 /var/lib/dime-relay:dime-relay:dime-relay:700 \
    /run/dime-milter:dime-milter:postfix:750 /var/lib/dime-milter:dime-milter:postfix:700; do
    IFS=: read -r d ou og om <<<"$spec"
    got=$(stat -c '%U:%G:%a' "$d" 2>/dev/null)
    [ "$got" = "$ou:$og:$om" ] || { dirs_ok=0; echo "# $d: ${got:-missing}, want $ou:$og:$om"; }
done
[ $dirs_ok = 1 ] && ok "runtime and state directories with the owners and modes of README.md" ||
    notok "runtime and state directories with the owners and modes of README.md"

units_ok=1
for u in dime-keyvaultd dime-relayd dime-milter dime-accountd; do
    [ -f "/lib/systemd/system/$u.service" ] || { units_ok=0; echo "# no $u.service"; }
    ls /etc/systemd/system/*.wants/"$u.service" >/dev/null 2>&1 && { units_ok=0; echo "# $u is enabled"; }
    st=$(systemctl is-enabled "$u.service" 2>/dev/null)
    [ "$st" = disabled ] || { units_ok=0; echo "# systemctl is-enabled $u: $st"; }
done
[ $units_ok = 1 ] && ok "the four units are installed and disabled (the operator enables them)" ||
    notok "the four units are installed and disabled (the operator enables them)"

if dpkg-query -W -f='${Conffiles}\n' dime-common | grep -q '^ /etc/dime/dime.conf ' &&
    cmp -s /etc/dime/dime.conf src/contrib/dime.conf; then
    ok "/etc/dime/dime.conf is contrib/dime.conf, a conffile of dime-common"
else
    notok "/etc/dime/dime.conf is contrib/dime.conf, a conffile of dime-common"
fi
man_ok=1
for m in dime-keyvaultd.8 dimectl.8 dime-relayd.8 dime-relayctl.8 dime-milter.8 dime-signet.1 dime-message.1 dime-client.1 dime.conf.5; do
    man -w "${m%.*}" 2>/dev/null | grep -q "/man${m##*.}/$m" || { man_ok=0; echo "# no man page $m"; }
done
[ $man_ok = 1 ] && ok "the nine man pages" || notok "the nine man pages"
[ "$(pf_conf_sum)" = "$PF_BEFORE" ] && ok "Postfix's main.cf and master.cf untouched" ||
    notok "Postfix's main.cf and master.cf untouched"

# ---- 4a. the installed defaults alone (the steps of README.md, "Install on a server") ----
# as an operator begins: a master key owned by the vault's user, then `dimectl setup` as root
# (the domain, its POK file, the DX key and certificate, a user, the records; Postfix lines
# printed, not applied: this machine's Postfix stays untouched), the files it makes owned by
# the daemons' users; each daemon checks /etc/dime/dime.conf (-n) as its unit's user; then
# the keyvault started as dime-keyvaultd.service starts it (user dime-vault, group dime) with
# no option but -f
install -d -m 700 pok
head -c 32 /dev/urandom >/etc/dime/master.key
chown dime-vault /etc/dime/master.key && chmod 400 /etc/dime/master.key
vault() { runuser -u dime-vault -- "$@"; }
if dimectl setup example.org --pok-file "$W/pok/example.org.pok" --user alice@example.org \
        >record.txt 2>err.txt &&
    grep -q '^_dime.example.org.* tls=' record.txt &&
    [ "$(stat -c '%U %a' /etc/dime/dx.key)" = "dime-relay 400" ] &&
    [ "$(stat -c '%U' /var/lib/dime-keyvault/keyvault.db)" = dime-vault ] &&
    vault dimectl user show alice@example.org >>out.txt 2>>err.txt; then
    ok "dimectl setup on /etc/dime/dime.conf: record with tls=, dx.key for dime-relay, the store for dime-vault"
else
    cat record.txt >>out.txt
    notok "dimectl setup on /etc/dime/dime.conf: record with tls=, dx.key for dime-relay, the store for dime-vault"
fi
if vault dime-keyvaultd -n >out.txt 2>err.txt &&
    runuser -u dime-relay -g dime-relay -G dime -- dime-relayd -n >>out.txt 2>>err.txt &&
    runuser -u dime-milter -g postfix -G dime -G dime-relay -- dime-milter -n >>out.txt 2>>err.txt; then
    ok "dime-keyvaultd -n, dime-relayd -n, dime-milter -n: /etc/dime/dime.conf is valid, each as its user"
else
    notok "dime-keyvaultd -n, dime-relayd -n, dime-milter -n: /etc/dime/dime.conf is valid, each as its user"
fi
setpriv --reuid=dime-vault --regid=dime --clear-groups dime-keyvaultd -f 2>kv-default.log &
KV_SMOKE_PID=$!
for _ in $(seq 100); do
    [ -S /run/dime-keyvault/keyvault.sock ] && break
    kill -0 "$KV_SMOKE_PID" 2>/dev/null || break
    sleep 0.05
done
got="$(stat -c '%G %a' /run/dime-keyvault/keyvault.sock 2>/dev/null) $(ps -o user= -p "$KV_SMOKE_PID")"
if [ "$got" = "dime 660 dime-vault" ]; then
    ok "dime-keyvaultd on the defaults: keyvault.sock (group dime, 0660) in /run/dime-keyvault, runs as dime-vault"
else
    sed 's/^/#   kv: /' kv-default.log | tail -5
    notok "dime-keyvaultd on the defaults: socket group, mode and user (got: $got)"
fi
kill "$KV_SMOKE_PID" 2>/dev/null
wait "$KV_SMOKE_PID" 2>/dev/null
KV_SMOKE_PID=

# ---- 4b. the two-domain exchange with the installed daemons ----
start=$SECONDS
# shellcheck disable=SC2034 # read by lib/dime_env.sh and lib/e2e.sh
MILTER=/usr/sbin/dime-milter KVD=/usr/sbin/dime-keyvaultd CTL=/usr/sbin/dimectl \
    RLD=/usr/sbin/dime-relayd RLC=/usr/sbin/dime-relayctl DS=/usr/bin/dime-signet
lib=$W/src/tests/integration/lib
source "$lib/postfix.sh"
source "$lib/dime_env.sh"
source "$lib/e2e.sh"
# shellcheck disable=SC2034
ENV_USERS=1 ENV_DIR=$W/xfer T=$W/xfer # env_init makes it
if ! e2e_init >setup.out 2>&1; then
    tail -5 setup.out "$T"/*.log 2>/dev/null | sed 's/^/#   /'
    die "two-domain setup with the installed daemons failed"
fi
cd "$T" || die "cd $T"
users=$(ps -o user= -p "$(echo "${KV_PID[*]} ${RL_PID[*]} ${MI_PID[*]}" | tr ' ' ,)" | sort -u | tr '\n' ' ')
exe=$(for p in "${KV_PID[@]}" "${RL_PID[@]}" "${MI_PID[@]}"; do readlink "/proc/$p/exe"; done | sort -u | tr '\n' ' ')
[ "$users" = "dime-milter dime-relay dime-vault " ] &&
    [ "$exe" = "/usr/sbin/dime-keyvaultd /usr/sbin/dime-milter /usr/sbin/dime-relayd " ] &&
    ok "alice.test and bob.test: /usr/sbin daemons, each as its user" ||
    notok "alice.test and bob.test: /usr/sbin daemons, each as its user (got: $users; $exe)"
mark=deb$RANDOM$RANDOM
for dir in alice:bob bob:alice; do
    s=${dir%:*} r=${dir#*:}
    printf 'From: %s@%s.test\r\nTo: %s@%s.test\r\nSubject: %s %s\r\n\r\nHello %s\r\n' \
        "$s" "$s" "$r" "$r" "$mark" "$s" "$r" >"$s.eml"
    if e2e_send "$s" "$s@$s.test" "$r@$r.test" "$s.eml" && pf_wait_mail "$T/pf-$r" "$r" 1 60; then
        f=$(pf_mail_files "$T/pf-$r" "$r" | head -1)
        if grep -q "^Subject: $mark $s" "$f" &&
            grep -q "^Authentication-Results: mx.$r.test; dime=pass header.from=$s@$s.test " "$f" &&
            grep -q 'status=sent' "$T/$s-relayd.log"; then
            ok "$s -> $r: delivered over DMTP with dime=pass"
        else
            grep -e '^Subject' -e '^Authentication-Results' "$f" >out.txt
            notok "$s -> $r: delivered over DMTP with dime=pass"
        fi
    else
        notok "$s -> $r: delivered within 60 s"
    fi
done
echo "# exchange: $((SECONDS - start)) s"
cd "$W" || exit 1
env_cleanup >/dev/null 2>&1
T=

# ---- 5. purge ----
rm -f /etc/dime/master.key /etc/dime/dx.key /etc/dime/dx.pem # the operator's files, not the package's
if step purge apt-get purge -y -q "${PKGS[@]}"; then
    installed=0
    ok "apt-get purge"
else
    notok "apt-get purge"
fi
left=
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^[ir]' && left+=" package:$p"
done
for d in "${DAEMONS[@]}"; do
    for f in "/run/dime-$d" "/var/lib/dime-$d" "/usr/lib/tmpfiles.d/dime-$d.conf"; do
        [ -e "$f" ] && left+=" $f"
    done
done
for f in /etc/dime /lib/systemd/system/dime-keyvaultd.service /lib/systemd/system/dime-relayd.service \
    /lib/systemd/system/dime-milter.service /lib/systemd/system/dime-accountd.service /usr/sbin/dime-keyvaultd /usr/sbin/dimectl \
    /usr/sbin/dime-relayd /usr/sbin/dime-relayctl /usr/sbin/dime-milter /usr/bin/dime-signet \
    /usr/bin/dime-message /usr/share/doc/dime-common /var/lib/systemd/deb-systemd-helper-enabled/dime-keyvaultd.service.dsh-also; do
    [ -e "$f" ] && left+=" $f"
done
[ -z "$left" ] && ok "purge left nothing the packages made (the system users stay, by policy)" ||
    notok "purge left nothing the packages made (left:$left)"

echo "1..$n"
[ "$failed" = 0 ]
