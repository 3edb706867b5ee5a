# shellcheck shell=bash
# lib/dovecot.sh - a private Dovecot that is only a SASL server for Postfix (source it after
# lib/postfix.sh; bash, as root: Dovecot's master starts its auth process as the dovecot user).
#
#   dv_start DIR LOGIN:PASSWORD...
#       Writes DIR/dovecot.conf and DIR/users (passwd-file, plaintext passwords: test logins
#       only) and starts `dovecot -F -c DIR/dovecot.conf` in the background. Its base_dir
#       (DIR/run) and state_dir (DIR/state) are inside DIR, so /etc/dovecot, /run/dovecot
#       and /var/lib/dovecot are neither read nor changed and no system service is needed.
#       No protocols: the only listener is the auth service's Unix socket DV_SOCK
#       (DIR/auth-postfix, owned by postfix), for smtpd_sasl_type = dovecot and
#       smtpd_sasl_path = $DV_SOCK. Waits until the socket is there; sets DV_PID and
#       DV_SOCK. Log: DIR/dovecot.log. DIR must be absolute and reachable by the dovecot user.
#       With DV_IMAP="IP PORT CERT KEY MAILDIRS [IMAPS-PORT]" also IMAP on IP:PORT, STARTTLS
#       required (ssl = required: no login before TLS) with that certificate and key, and
#       IMAP over TLS from the start on IP:IMAPS-PORT when given, each user's mailbox the
#       Maildir MAILDIRS/USER (as Postfix's virtual delivery makes them, owned by nobody,
#       whose uid the users get); waits until the ports listen too.
#       With DV_ACCOUNT_USER set, a second auth socket DV_ACCOUNT_SOCK (DIR/auth-dime, mode
#       0600, owned by that user) for dime-accountd.
#   dv_stop     SIGTERM to the master by its PID (it stops its children), SIGKILL after 5 s.
#               Safe to call twice or when nothing was started.

DV_PID=
DV_SOCK=
DV_ACCOUNT_SOCK=

dv_start() {
    local dir=$1 u
    shift
    case $dir in /*) ;; *) echo "dv_start: $dir is not absolute" >&2; return 2 ;; esac
    mkdir -p "$dir" && chmod 755 "$dir" || return 1
    DV_SOCK=$dir/auth-postfix
    local ip='' port='' cert='' key='' maildirs='' sport='' protocols='' ssl=no
    if [ -n "${DV_IMAP:-}" ]; then
        read -r ip port cert key maildirs sport <<<"$DV_IMAP"
        protocols=imap ssl=required
    fi
    local extra=
    if [ -n "${DV_ACCOUNT_USER:-}" ]; then
        DV_ACCOUNT_SOCK=$dir/auth-dime
        extra="unix_listener $DV_ACCOUNT_SOCK {
    mode = 0600
    user = $DV_ACCOUNT_USER
  }"
    fi
    : >"$dir/users"
    for u in "$@"; do printf '%s:{PLAIN}%s\n' "${u%%:*}" "${u#*:}" >>"$dir/users"; done
    chmod 644 "$dir/users"
    cat >"$dir/dovecot.conf" <<CONF
base_dir = $dir/run
state_dir = $dir/state
instance_name = $(basename "$dir")
log_path = $dir/dovecot.log
# no POP3 or LMTP; IMAP only with DV_IMAP (else nothing listens on TCP)
protocols = $protocols
listen = ${ip:-127.0.0.1}
ssl = $ssl
# The test's clients authenticate with AUTH PLAIN over plain SMTP on loopback (Postfix's
# smtpd_tls_auth_only is off there), so Dovecot must accept plaintext mechanisms without
# TLS. A real submission service offers AUTH only after STARTTLS (contrib/README.postfix).
disable_plaintext_auth = no
auth_mechanisms = plain login
# failed logins in the log, with the reason (the test looks for them)
auth_verbose = yes
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/users
}
# Postfix asks only the passdb; Dovecot still wants a userdb to start
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=${maildirs:-/nonexistent}/%n
}
service auth {
  unix_listener $DV_SOCK {
    mode = 0660
    user = postfix
    group = postfix
  }
  $extra
}
CONF
    [ -n "$protocols" ] && cat >>"$dir/dovecot.conf" <<CONF
ssl_cert = <$cert
ssl_key = <$key
mail_location = maildir:$maildirs/%n
# Postfix delivers as nobody (virtual_uid_maps = static:65534)
first_valid_uid = 1
service imap-login {
  inet_listener imap {
    address = $ip
    port = $port
  }
  inet_listener imaps {
    address = $ip
    port = ${sport:-0}
    ssl = yes
  }
}
CONF
    dovecot -F -c "$dir/dovecot.conf" >>"$dir/dovecot.log" 2>&1 &
    DV_PID=$!
    for _ in $(seq 200); do
        [ -S "$DV_SOCK" ] && { [ -z "$port" ] || ss -Htln "src $ip:$port" | grep -q .; } &&
            { [ -z "$sport" ] || ss -Htln "src $ip:$sport" | grep -q .; } && return 0
        pf_alive "$DV_PID" || break
        sleep 0.05
    done
    echo "dv_start: Dovecot did not make $DV_SOCK:" >&2
    tail -5 "$dir/dovecot.log" >&2
    return 1
}

dv_stop() {
    local p=$DV_PID i
    [ -n "$p" ] || return 0
    kill -TERM "$p" 2>/dev/null
    for ((i = 0; i < 100; i++)); do pf_alive "$p" || break; sleep 0.05; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    DV_PID=
}
