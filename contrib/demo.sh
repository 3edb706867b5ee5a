#!/usr/bin/env bash
# The two-domain DIME demo on loopback (run by `contrib/quickstart.sh demo`; as root).
#
#   contrib/demo.sh start BUILD-DIR DEMO-DIR   start alice.test and bob.test (the same setup as
#                                              tests/integration/test_e2e.sh, from
#                                              tests/integration/lib/), send alice -> bob, show
#                                              the stored D/MIME and the delivered message
#   contrib/demo.sh stop DEMO-DIR              stop every process of the demo by its PID
#
# Everything lives in DEMO-DIR; nothing outside it is configured or changed (the Postfix
# instances are private: postfix -c DIR/etc, loopback high ports). When the users dime-vault,
# dime-relay and dime-milter exist (quickstart creates them), each daemon runs as its own.
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lib=$top/tests/integration/lib

stop() {
    local dir=$1 pid i left
    [ -f "$dir/pids" ] || { echo "demo: nothing to stop in $dir (no pids file)"; return 0; }
    # shellcheck disable=SC2013
    for pid in $(cat "$dir/pids"); do kill -TERM "$pid" 2>/dev/null; done
    for ((i = 0; i < 200; i++)); do # libmilter notices SIGTERM within 5 s
        left=
        for pid in $(cat "$dir/pids"); do
            st=$(ps -o stat= -p "$pid" 2>/dev/null) && [ "${st#Z}" = "$st" ] && left+=" $pid"
        done
        [ -z "$left" ] && break
        sleep 0.05
    done
    # shellcheck disable=SC2086
    [ -z "$left" ] || kill -KILL $left 2>/dev/null
    rm -f "$dir/pids"
    echo "demo: stopped (files kept in $dir)"
}

start() {
    local build=$1 dir=$2
    case $build in /*) ;; *) build=$PWD/$build ;; esac
    MILTER=$build/milter/dime-milter KVD=$build/keyvault/dime-keyvaultd
    CTL=$build/tools/dimectl RLD=$build/dmtp-relay/dime-relayd
    RLC=$build/tools/dime-relayctl DS=$build/tools/dime-signet
    DM=$build/tools/dime-message
    local x
    for x in "$MILTER" "$KVD" "$CTL" "$RLD" "$RLC" "$DS" "$DM"; do
        [ -x "$x" ] || { echo "demo: $x is missing (build first)" >&2; return 1; }
    done
    [ -f "$dir/pids" ] && stop "$dir"
    rm -rf "$dir"
    source "$lib/postfix.sh"
    source "$lib/dime_env.sh"
    source "$lib/e2e.sh"
    ENV_DIR=$dir
    # the record a domain would publish: pol=mixed (dimectl's default: users without a signet
    # still get ordinary mail), subdomains only with a record of their own, looked at again
    # within an hour, DIME-required for 30 days after the record disappears
    ENV_RECORD_OPTS="--policy mixed --sub explicit --record-ttl 3600 --expiry 30"
    echo "==> starting nsd, 3 Postfix instances, 2 keyvaults, 2 relays and 2 milters in $dir"
    if ! e2e_init >>"$dir.setup.out" 2>&1; then
        echo "demo: setup failed; logs:" >&2
        tail -5 "$dir.setup.out" "$dir"/*.log >&2 2>/dev/null
        env_cleanup >/dev/null 2>&1
        return 1
    fi
    mv "$dir.setup.out" "$dir/setup.out"
    cd "$dir" || return 1
    write_pids() {
        echo "$NSD_PID ${KV_PID[*]} ${RL_PID[*]} ${MI_PID[*]} ${PF_MASTER_PID[*]}" | tr ' ' '\n' |
            grep . >"$dir/pids"
    }
    write_pids
    if [ "$ENV_USERS" = 1 ]; then
        echo "==> each daemon runs as its own user (contrib/quickstart.sh users), in its own directory:"
        # shellcheck disable=SC2086
        ps -o user:12=,comm= -p "$(echo ${KV_PID[*]} ${RL_PID[*]} ${MI_PID[*]} | tr ' ' ,)" |
            sort -u | sed 's/^/    /'
        (cd "$dir" && stat -c '    %n %U:%G %a' alice/kv alice/relay alice/milter)
    fi
    cat >"$dir/stop.sh" <<EOF
#!/bin/sh
exec bash "$top/contrib/demo.sh" stop "$dir"
EOF
    chmod 755 "$dir/stop.sh"

    echo "==> each domain was set up with dimectl domain init --pok-file: the vault signs with an"
    echo "    online SOK; the POK (the key the _dime record names) is in $dir/alice/pok.key and"
    echo "    $dir/bob/pok.key, mode 0400 (on a real gateway: moved to offline storage)"
    "$CTL" -c alice/dime.conf domain show | grep -e '^pok' -e '^sok' | sed 's/^/    /'
    echo
    echo "==> alice's relay discovers bob@bob.test (DNSSEC-validated _dime record, DX, signets):"
    echo "    dime-relayctl query bob@bob.test -d alice.test"
    "$RLC" -c alice/dime.conf -d alice.test query bob@bob.test >query.out 2>&1 ||
        { cat query.out >&2; echo "demo: lookup of bob@bob.test failed" >&2; return 1; }
    grep -v -e '-signet=' -e '^$' query.out | cut -c1-110 | sed 's/^/    /'
    # bob's relay pauses (the signets above are cached), so that the message stays in alice's
    # relay queue and its stored form can be shown
    relay_stop bob
    local subj="Hello from alice $(date +%H:%M:%S)"
    {
        printf 'From: Alice <alice@alice.test>\nTo: Bob <bob@bob.test>\nSubject: %s\n' "$subj"
        printf 'Date: %s\nMessage-ID: <demo.%s@alice.test>\n' "$(date -R)" "$(date +%s%N)"
        printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n'
        printf 'Hi Bob,\nthis travelled as D/MIME: only you can read it.\nAlice\n'
    } | sed 's/$/\r/' >first.eml
    echo "==> alice@alice.test sends to bob@bob.test through alice's Postfix (submission port ${SUB_PORT[alice]})"
    if ! e2e_send alice alice@alice.test bob@bob.test first.eml; then
        grep '^<\*\*' out.txt >&2
        echo "demo: submission failed" >&2
        return 1
    fi
    grep '^<-  250 .*queued as\|^<-  250 2.0.0 Ok' out.txt | tail -1
    local i
    for ((i = 0; i < 300; i++)); do
        "$RLC" -c alice/dime.conf queue list 2>/dev/null | grep -q . && break
        sleep 0.1
    done
    python3 - "$(env_dir alice relay)/queue.db" stored.dmsg <<'PY' || { echo "demo: nothing in alice's relay queue" >&2; return 1; }
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
row = db.execute("SELECT data FROM outq_data LIMIT 1").fetchone()
if row is None:
    sys.exit(1)
open(sys.argv[2], "wb").write(row[0])
PY
    echo
    echo "==> alice's relay queue (dime-relayctl queue list): no addresses, no subject"
    "$RLC" -c alice/dime.conf queue list
    echo
    echo "==> the D/MIME message as alice's relay stored it ($dir/stored.dmsg, $(stat -c %s stored.dmsg) bytes):"
    echo "    dime-message show -i stored.dmsg"
    "$DM" show -i stored.dmsg | sed 's/^/    /'
    echo "    first bytes (xxd):"
    xxd stored.dmsg | head -8 | sed 's/^/    /'
    if grep -a -q -F -e "$subj" -e 'Hi Bob' -e bob@bob.test stored.dmsg; then
        echo "demo: the stored message contains text in clear!" >&2
        return 1
    fi
    echo "    (searched: neither the subject, nor the body, nor bob@bob.test appears in it)"
    echo
    echo "==> bob's relay comes back; alice's relay delivers over DMTP"
    relay_start bob >>setup.out 2>&1 || { echo "demo: bob's relay did not restart" >&2; return 1; }
    write_pids
    if ! pf_wait_mail "$T/pf-bob" bob 1 60; then
        echo "demo: nothing arrived in bob's Maildir within 60 s; see $dir/*.log" >&2
        return 1
    fi
    local f
    f=$(pf_mail_files "$T/pf-bob" bob | head -1)
    echo
    echo "==> the message in bob's Maildir ($f):"
    sed 's/^/    /' "$f"
    local stopcmd="./contrib/quickstart.sh demo-stop"
    [ "$dir" = /var/tmp/dime-demo ] || stopcmd="DEMO_DIR=$dir $stopcmd"
    cat <<EOF

==> the demo is running ($dir)
  send more (alice -> bob; use --port ${SUB_PORT[bob]} --server 127.0.0.3 for bob -> alice):
    swaks --server 127.0.0.2 --port ${SUB_PORT[alice]} --from alice@alice.test --to bob@bob.test \\
      --header 'Subject: another one' --body 'Hello again'
  bob's mailbox:   ls $dir/pf-bob/mail/bob/new/
  alice's mailbox: ls $dir/pf-alice/mail/alice/new/
  logs:            $dir/*.log, $dir/pf-*/maillog
  stop it:         $stopcmd   (or $dir/stop.sh)
EOF
}

case "${1:-}" in
start)
    # on failure, stop whatever was started
    start "$2" "$3" || { [ -f "$3/pids" ] && stop "$3"; exit 1; }
    ;;
stop) stop "$2" ;;
*)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
