# shellcheck shell=bash
# lib/e2e.sh - the two-domain gateway of the end-to-end test and of the demo (source it after
# lib/postfix.sh and lib/dime_env.sh; bash, as root). Needs MILTER KVD CTL RLD RLC DS (paths
# of dime-milter, dime-keyvaultd, dimectl, dime-relayd, dime-relayctl, dime-signet).
#
#   e2e_args EXE...     the test's arguments (dime-milter, dime-keyvaultd, dimectl,
#                       dime-relayd, dime-relayctl, dime-signet) as absolute paths in MILTER
#                       KVD CTL RLD RLC DS
#   e2e_init            env_init with the milters, legacy.test and bogus.test (lib/dime_env.sh),
#                       the daemons as their own users when they exist (ENV_USERS=auto):
#                       alice@alice.test; bob@, dan@ (Trustful) and carol@bob.test (Cautious);
#                       on-no-signet = accept, so mail to a domain proved to have no DIME
#                       record goes as plain SMTP (logged by the milter as a downgrade)
#   e2e_send D FROM RCPTS FILE [swaks options]   swaks to D's submission listener; output in
#                       out.txt/err.txt of the current directory, status of swaks
#   e2e_strip_trace FILE   header and body without Received/Return-Path/Delivered-To/
#                       X-Original-To/Authentication-Results, LF line ends
#   e2e_notail          stdin to stdout without trailing empty lines
#   e2e_wrap DMIME RCPT [FLIP]   an injection wrapper as dime-relayd writes it (rl_inject.c)
#                       for the D/MIME file, with one byte in its middle XORed with 1 if FLIP
#   e2e_queues_empty    both relay queues are empty
#   e2e_relay_files     every file the relays wrote: SQLite databases (with -wal/-shm) and logs
#   e2e_mx_hook D       for env_pf_hook: D's Postfix gets a port-25-like listener behind its
#                       milter (MX_PORT[D], an associative array the caller declares), and
#                       the other DIME domain is routed there by plain SMTP: whatever a
#                       gateway lets out as plain SMTP arrives in a mailbox
#   e2e_die TEXT        "Bail out!" with the last lines of every log, exit 1

e2e_args() {
    local names=(MILTER KVD CTL RLD RLC DS) i a
    for ((i = 0; i < ${#names[@]} && i < $#; i++)); do
        a=${*:i+1:1}
        case $a in /*) ;; *) a=$PWD/$a ;; esac
        printf -v "${names[i]}" '%s' "$a"
    done
}

e2e_mx_hook() {
    local o=alice
    [ "$1" = alice ] && o=bob
    if [ -z "${MX_PORT[alice]:-}" ]; then
        MX_PORT[alice]=$(env_pick) && MX_PORT[bob]=$(env_pick) || return 1
        [ "${MX_PORT[alice]}" != "${MX_PORT[bob]}" ] || return 1
    fi
    pf_listener "$T/pf-$1" "${ADDR[$1]}" "${MX_PORT[$1]}" "unix:$(env_dir "$1" milter)/milter.sock"
    pf_transport "$T/pf-$1" "$o.test" "smtp:[${ADDR[$o]}]:${MX_PORT[$o]}"
}

e2e_die() {
    echo "Bail out! $*"
    for f in "$T"/*.log "$T"/pf-*/maillog; do [ -s "$f" ] && tail -5 "$f" | sed "s|^|# $(basename "$f"): |"; done
    exit 1
}

e2e_init() {
    ENV_MILTER=$MILTER ENV_LEGACY=1 ENV_BOGUS=1 ENV_USERS=${ENV_USERS:-auto}
    ENV_DOMAIN_EXTRA='on-no-signet = "accept"'
    ENV_PF_USERS=([alice]=alice [bob]="bob dan carol")
    env_init "$KVD" "$CTL" "$RLD"
}

env_user_hook() {
    [ "$1" = bob ] || return 0
    "$CTL" -c "$T/bob/dime.conf" user add dan@bob.test >/dev/null 2>>setup.log || return 1
    "$DS" user-request carol@bob.test -k bob/carol.key -r bob/carol.ssr >>setup.log 2>&1 || return 1
    # Cautious: the vault keeps only a blob the client encrypted; here random bytes stand in
    head -c 300 /dev/urandom >bob/carol.blob
    "$CTL" -c "$T/bob/dime.conf" user add carol@bob.test --mode cautious --ssr bob/carol.ssr \
        --key-blob bob/carol.blob >/dev/null 2>>setup.log
}

e2e_send() {
    local d=$1 from=$2 to=$3 file=$4
    shift 4
    swaks --server "${ADDR[$d]}" --port "${SUB_PORT[$d]}" --from "$from" --to "$to" \
        --data "@$file" --helo "client.$d.test" "$@" >out.txt 2>err.txt
}

e2e_strip_trace() {
    tr -d '\r' <"$1" | awk 'BEGIN { skip = 0; body = 0 }
        body { print; next }
        /^$/ { body = 1; print; next }
        /^[ \t]/ { if (!skip) print; next }
        { skip = ($0 ~ /^(Received|Return-Path|Delivered-To|Authentication-Results|X-Original-To):/) }
        !skip { print }'
}

e2e_notail() { sed -e ':a' -e '/^\n*$/{$d;N;ba' -e '}'; }

e2e_wrap() {
    local f=$1 rcpt=$2 flip=${3:-} tid
    tid=$(head -c 10 /dev/urandom | xxd -p)
    {
        printf 'Received: from alice.test by dx.bob.test (dime-relayd) with DMTP id %s;\n' "$tid"
        printf '\t%s\nX-DIME-Transaction: %s\nMessage-ID: <%s@dx.bob.test>\n' "$(date -R)" "$tid" "$tid"
        printf 'Date: %s\nFrom: MAILER-DAEMON@dx.bob.test\nTo: <%s>\nMIME-Version: 1.0\n' "$(date -R)" "$rcpt"
        printf 'Content-Type: application/x-dime\nContent-Transfer-Encoding: base64\n\n'
        python3 -c '
import base64, sys
b = bytearray(open(sys.argv[1], "rb").read())
if sys.argv[2]:
    b[len(b) // 2] ^= 1
sys.stdout.write(base64.encodebytes(bytes(b)).decode())' "$f" "$flip"
    } | sed 's/$/\r/'
}

e2e_queues_empty() {
    [ -z "$("$RLC" -c "$T/alice/dime.conf" queue list 2>/dev/null)" ] &&
        [ -z "$("$RLC" -c "$T/bob/dime.conf" queue list 2>/dev/null)" ]
}

e2e_relay_files() {
    local d
    for d in alice bob; do
        ls "$(env_dir "$d" relay)"/queue.db* "$(env_dir "$d" relay)"/cache.db* "$T/$d-relayd.log" 2>/dev/null
    done
}
