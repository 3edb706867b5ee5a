# nsd_write_conf FILE DIR PORT ZONE... - writes an nsd.conf for a private nsd on 127.0.0.1:PORT
# that keeps every file under DIR (zones in DIR/zones as ZONE.signed, state in DIR/nsd, no
# chroot, no user change, no remote control). Sourced by the integration tests.
nsd_write_conf() {
    local file=$1 dir=$2 port=$3 z
    shift 3
    {
        cat <<NSD
server:
    ip-address: 127.0.0.1
    port: $port
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$dir/zones"
    database: ""
    zonelistfile: "$dir/nsd/zone.list"
    xfrdfile: "$dir/nsd/xfrd.state"
    xfrdir: "$dir/nsd"
    pidfile: "$dir/nsd/nsd.pid"
    logfile: "$dir/nsd.log"
    verbosity: 1
remote-control:
    control-enable: no
NSD
        for z in "$@"; do
            printf 'zone:\n    name: "%s."\n    zonefile: "%s.signed"\n' "$z" "$z"
        done
    } >"$file"
}
