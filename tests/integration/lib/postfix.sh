# shellcheck shell=bash
# lib/postfix.sh - private Postfix instances for integration tests (source it; bash).
#
# Each instance lives in one directory and is started with `postfix -c DIR/etc` (no
# multi-instance registration, /etc/postfix is neither read nor changed, the system Postfix
# service is not needed). It listens only on loopback high ports and delivers to Maildirs of
# virtual users. Must run as root (the Postfix master refuses otherwise).
#
#   pf_create DIR IP PORT DOMAIN [USER...]
#       Writes DIR/etc (main.cf, master.cf, vmailbox, transport), DIR/queue, DIR/data,
#       DIR/mail (Maildirs: DIR/mail/USER/), DIR/maillog. DIR must be absolute and every
#       parent reachable by the postfix and nobody users (chmod 755). IP:PORT is a plain
#       smtpd listener (the injection listener: no milter). USERs (default: alice bob carol)
#       get USER@DOMAIN mailboxes. myhostname is mx.DOMAIN: instances need different domains.
#   pf_listener DIR IP PORT [MILTER [NAME=VALUE...]]
#       Adds another smtpd listener (e.g. the "submission" one), with smtpd_milters=MILTER
#       (e.g. unix:/path/milter.sock or inet:127.0.0.1:PORT) and milter_default_action=tempfail
#       when MILTER is given; MILTER "none" gives a listener without milters even when
#       main.cf sets smtpd_milters ("" for main.cf's). Each NAME=VALUE becomes a "-o" of the
#       listener (master.cf: no blanks in VALUE; lists take commas). Call before pf_start (or
#       pf_reload after).
#   pf_set DIR 'name = value'...   postconf -e on the instance.
#   pf_transport DIR DOMAIN NEXTHOP   e.g. pf_transport DIR b.test 'smtp:[127.0.0.3]:20025'
#   pf_start DIR      postfix check + start, waits until every listener accepts; sets
#                     PF_MASTER_PID[DIR] and prints nothing. Returns non-zero (with the
#                     reason on stderr) on failure.
#   pf_stop DIR       SIGTERM to the master by its PID, waits for it and for every daemon of
#                     the instance (found by MAIL_CONFIG=DIR/etc in their environment), SIGKILL
#                     by PID after 10 s. Safe to call twice or for a stopped instance.
#   pf_stop_all       pf_stop for every instance started here (put it in your EXIT trap).
#   pf_kill DIR       SIGKILL to the master by its PID, then to the daemons it leaves behind
#                     (they exit by themselves once they see it gone, and must before a new
#                     master can bind the same listeners; those still there after 2 s, e.g. an
#                     smtpd in a session, are killed by PID); PF_KILLED: how many of those.
#   pf_reload DIR     postfix reload (texthash maps are read only at daemon start).
#   pf_postfix DIR ARGS...  postfix -c DIR/etc ARGS under script(1): postfix(1) prints its
#                     errors only to a TTY.
#   pf_sendmail DIR FROM RCPT... < MESSAGE   sendmail -C DIR/etc (pickup path).
#   pf_mail_count DIR USER       number of delivered messages in USER's Maildir (new/ + cur/).
#   pf_mail_files DIR USER       their paths, one per line.
#   pf_wait_mail DIR USER N [TIMEOUT_S=30]   until USER has at least N messages.
#   pf_queue_count DIR           messages in the instance's queue (postqueue -j).
#
# Gotchas handled (../shared/TESTBED.md section 2): absolute -c paths; inet_interfaces =
# loopback-only with the address in the master.cf service name (lo only carries 127.0.0.1
# as an interface address); chroot n everywhere; data_directory owned by postfix; virtual
# mailbox base owned by nobody; logging through postlogd to DIR/maillog (no syslog); no DNS
# (smtp_dns_support_level = disabled, nexthops are [ip]:port); the master daemonizes, so it is
# waited for by polling its PID, and a zombie counts as stopped.

declare -gA PF_MASTER_PID=()
declare -gA PF_LISTENERS=()

pf_postfix() {
    local dir=$1
    shift
    script -qec "postfix -c $dir/etc $*" /dev/null
}

pf_create() {
    local dir=$1 ip=$2 port=$3 dom=$4 u
    shift 4
    local users=("$@")
    [ ${#users[@]} -gt 0 ] || users=(alice bob carol)
    case $dir in /*) ;; *) echo "pf_create: $dir is not absolute" >&2; return 2 ;; esac
    mkdir -p "$dir/etc" "$dir/queue" "$dir/data" "$dir/mail" || return 1
    chmod 755 "$dir" "$dir/etc" "$dir/queue"
    chown postfix:postfix "$dir/data" && chown nobody:nogroup "$dir/mail" || return 1
    local name
    name=$(basename "$dir")
    cat >"$dir/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.$dom
mydomain = $dom
myorigin = \$myhostname
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
relayhost =
smtpd_banner = \$myhostname ESMTP $name
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = $dom
virtual_mailbox_base = $dir/mail
virtual_mailbox_maps = texthash:$dir/etc/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
transport_maps = texthash:$dir/etc/transport
maillog_file = $dir/maillog
maillog_file_prefixes = /tmp, /var, /dev/stdout, ${TMPDIR:-/tmp}
syslog_name = postfix-$name
smtp_host_lookup = native
smtp_dns_support_level = disabled
smtp_bind_address = $ip
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
delay_warning_time = 0
message_size_limit = 104857600
virtual_mailbox_limit = 0
biff = no
CF
    cat >"$dir/etc/master.cf" <<CF
# service        type  private unpriv  chroot  wakeup  maxproc command
$ip:$port  inet  n       -       n       -       -       smtpd
pickup           unix  n       -       n       60      1       pickup
cleanup          unix  n       -       n       -       0       cleanup
qmgr             unix  n       -       n       300     1       qmgr
tlsmgr           unix  -       -       n       1000?   1       tlsmgr
rewrite          unix  -       -       n       -       -       trivial-rewrite
bounce           unix  -       -       n       -       0       bounce
defer            unix  -       -       n       -       0       bounce
trace            unix  -       -       n       -       0       bounce
verify           unix  -       -       n       -       1       verify
flush            unix  n       -       n       1000?   0       flush
proxymap         unix  -       -       n       -       -       proxymap
smtp             unix  -       -       n       -       -       smtp
relay            unix  -       -       n       -       -       smtp
showq            unix  n       -       n       -       -       showq
error            unix  -       -       n       -       -       error
retry            unix  -       -       n       -       -       error
discard          unix  -       -       n       -       -       discard
virtual          unix  -       n       n       -       -       virtual
anvil            unix  -       -       n       -       1       anvil
scache           unix  -       -       n       -       1       scache
postlog          unix-dgram n  -       n       -       1       postlogd
CF
    : >"$dir/etc/vmailbox"
    for u in "${users[@]}"; do printf '%s@%s %s/\n' "$u" "$dom" "$u" >>"$dir/etc/vmailbox"; done
    : >"$dir/etc/transport"
    PF_LISTENERS[$dir]="$ip:$port"
}

pf_listener() {
    local dir=$1 ip=$2 port=$3 milter=${4:-} o
    shift 3
    [ $# -gt 0 ] && shift
    {
        printf '%s:%s  inet  n       -       n       -       -       smtpd\n' "$ip" "$port"
        if [ "$milter" = none ]; then
            printf '  -o smtpd_milters=\n'
        elif [ -n "$milter" ]; then
            printf '  -o smtpd_milters=%s\n  -o milter_default_action=tempfail\n' "$milter"
            printf '  -o milter_protocol=6\n'
        fi
        for o in "$@"; do printf '  -o %s\n' "$o"; done
    } >>"$dir/etc/master.cf"
    PF_LISTENERS[$dir]="${PF_LISTENERS[$dir]:-} $ip:$port"
}

pf_set() {
    local dir=$1
    shift
    postconf -c "$dir/etc" -e "$@"
}

pf_transport() { printf '%s %s\n' "$2" "$3" >>"$1/etc/transport"; }

pf_alive() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "${st#Z}" = "$st" ]
}

pf_start() {
    local dir=$1 ep i ok
    if ! pf_postfix "$dir" check >"$dir.check.log" 2>&1; then
        echo "pf_start: postfix check $dir failed:" >&2
        cat "$dir.check.log" >&2
        return 1
    fi
    if ! pf_postfix "$dir" start >"$dir.start.log" 2>&1; then
        echo "pf_start: postfix start $dir failed:" >&2
        cat "$dir.start.log" >&2
        tail -5 "$dir/maillog" >&2 2>/dev/null
        return 1
    fi
    for ((i = 0; i < 200; i++)); do
        [ -s "$dir/queue/pid/master.pid" ] && break
        sleep 0.05
    done
    PF_MASTER_PID[$dir]=$(tr -d ' \n' <"$dir/queue/pid/master.pid" 2>/dev/null)
    [ -n "${PF_MASTER_PID[$dir]}" ] || { echo "pf_start: $dir: no master.pid" >&2; return 1; }
    for ep in ${PF_LISTENERS[$dir]}; do
        ok=0
        for ((i = 0; i < 200; i++)); do
            if ss -Hltn "src $ep" 2>/dev/null | grep -q .; then ok=1; break; fi
            sleep 0.05
        done
        [ $ok = 1 ] || { echo "pf_start: $dir: nothing listens on $ep" >&2; return 1; }
    done
}

pf_pids_of() { # daemons of the instance: MAIL_CONFIG=DIR/etc in their environment
    # one grep over every environment (a tr and a grep per process took about 1 s per call)
    local f pid
    for f in $(grep -lxzF "MAIL_CONFIG=$1/etc" /proc/[0-9]*/environ 2>/dev/null); do
        pid=${f#/proc/}
        pid=${pid%/environ}
        pf_alive "$pid" && echo "$pid"
    done
    return 0
}

pf_stop() {
    local dir=$1 mp=${PF_MASTER_PID[$1]:-} i left
    [ -n "$mp" ] || return 0
    kill -TERM "$mp" 2>/dev/null
    for ((i = 0; i < 200; i++)); do pf_alive "$mp" || break; sleep 0.05; done
    pf_alive "$mp" && kill -KILL "$mp" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        left=$(pf_pids_of "$dir")
        [ -z "$left" ] && break
        sleep 0.05
    done
    # shellcheck disable=SC2086
    [ -z "$left" ] || kill -KILL $left 2>/dev/null
    rm -f "$dir/queue/pid/master.pid"
    PF_MASTER_PID[$dir]=
}

pf_kill() {
    local dir=$1 mp=${PF_MASTER_PID[$1]:-} left i
    PF_KILLED=0
    [ -n "$mp" ] && kill -KILL "$mp" 2>/dev/null
    for ((i = 0; i < 10; i++)); do
        sleep 0.2
        left=$(pf_pids_of "$dir")
        [ -z "$left" ] && break
    done
    if [ -n "$left" ]; then
        PF_KILLED=$(echo $left | wc -w)
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null
        for ((i = 0; i < 20; i++)); do [ -z "$(pf_pids_of "$dir")" ] && break; sleep 0.1; done
    fi
    rm -f "$dir/queue/pid/master.pid"
    PF_MASTER_PID[$dir]=
}

pf_stop_all() {
    local d
    for d in "${!PF_MASTER_PID[@]}"; do pf_stop "$d"; done
}

pf_reload() { pf_postfix "$1" reload >/dev/null 2>&1; }

pf_sendmail() {
    local dir=$1 from=$2
    shift 2
    sendmail -C "$dir/etc" -f "$from" "$@"
}

pf_mail_files() {
    local m="$1/mail/$2"
    find "$m/new" "$m/cur" -type f 2>/dev/null
}

pf_mail_count() { pf_mail_files "$1" "$2" | wc -l; }

pf_wait_mail() {
    local dir=$1 user=$2 want=$3 t=${4:-30} i
    for ((i = 0; i < t * 10; i++)); do
        [ "$(pf_mail_count "$dir" "$user")" -ge "$want" ] && return 0
        sleep 0.1
    done
    return 1
}

pf_queue_count() { postqueue -c "$1/etc" -j 2>/dev/null | grep -c . ; }
