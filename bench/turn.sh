#!/usr/bin/env bash
# The TURN relay next to coturn, in one run.
#
# Builds bench/turn/turnload.c (gcc -O2 -lcrypto) into build/, then starts
#   coturn  Debian's turnserver, one relay thread (-m 1), UDP only, the
#           shared secret, loopback peers allowed;
#   ours    Debian's /usr/sbin/nginx with the module, worker_processes 1,
#           a stream server with teleclinic_turn, the same secret,
#           loopback peers allowed;
# each on a free port with its own free relay port range, both pinned to
# CPU 0 and the load generator to CPU 1 (with two or more CPUs).  For each
# load in LEVELS, turnload opens that many allocations on each server in
# turn (REST credentials, Allocate, CreatePermission, ChannelBind), streams
# ChannelData for DURATION seconds and, with ECHO=1, has the peer send
# every packet back through the relay, as the other end of a call does.
# It prints per load and server: packets relayed per second, the server's
# CPU seconds per million packets (utime + stime of the turnserver
# process, all its threads, or of the nginx worker, while the streams
# run), loss, the one-way time from client to peer through the relay
# (p50, p99), and the ratios ours/coturn; then the same streams sent
# straight to the peer (no relay: the loopback's own share of the times).
#
# Last, the reload: RELOAD_STREAMS audio-like streams through ours, each
# client sending a Refresh every PROBE_MS ms and allocating again when
# answered 437 or not at all (a browser would restart ICE, later); nginx
# gets `-s reload` (HUP) after a second; the longest gap between two
# packets of a stream at the peer is how long the reload interrupted it.
#
# Environment:
#   LEVELS     loads, "audio:N" (160 B at 50 pps), "video:N" (1000 B at
#              200 pps) or "NAME:N:BYTES:PPS" (default "audio:500
#              audio:1000 video:100 video:200")
#   DURATION   seconds per run (10)
#   ROUNDS     runs per load and server (1); the table shows the run that
#              other processes disturbed least (see "others")
#   ECHO       1: two-way streams (default), 0: client to peer only
#   SERVERS    "coturn ours" (default), or one of them
#   RELOAD     1: measure the reload (default), 0: skip it
#   RELOAD_STREAMS (20), PROBE_MS (200)
#   NICE       the servers' and turnload's nice value (-10; 0: as is)
#   PERF=1     records the server with perf during each run and prints its
#              hottest symbols and its share of kernel and user time (the
#              figures of such a run are a little lower); PERF_LINES (15)
#   NGINX, TELECLINIC_MODULE, BENCH_TMPDIR, KEEP=1 (bench/lib/nginx.sh;
#   the prefix also holds coturn's log), VERBOSE=1 shows turnload's whole
#   output.

set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)

LEVELS=${LEVELS:-audio:500 audio:1000 video:100 video:200}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-1}
ECHO=${ECHO:-1}
SERVERS=${SERVERS:-coturn ours}
RELOAD=${RELOAD:-1}
RELOAD_STREAMS=${RELOAD_STREAMS:-20}
PROBE_MS=${PROBE_MS:-200}
NICE=${NICE:--10}
SECRET=bench-turn-secret-0123456789
REALM=bench.teleclinic
RANGE=2500                       # relay ports per server

for tool in gcc perl turnserver taskset; do
    command -v $tool >/dev/null || { echo "turn.sh: $tool is missing" >&2
                                     exit 1; }
done

. "$repo"/bench/lib/nginx.sh

nginx_prefix turn
coturn_pid=""

# coturn_stop: TERM, then KILL after 10 s
coturn_stop() {
    [ -n "$coturn_pid" ] && kill -0 "$coturn_pid" 2>/dev/null || return 0
    kill -TERM "$coturn_pid" 2>/dev/null || true

    for _ in $(seq 1 100); do
        kill -0 "$coturn_pid" 2>/dev/null || break
        sleep 0.1
    done

    kill -KILL "$coturn_pid" 2>/dev/null || true
    wait "$coturn_pid" 2>/dev/null || true
}

cleanup() {
    coturn_stop
    nginx_stop "$nginx_master"
    nginx_remove_prefix
}

trap cleanup EXIT
trap 'exit 130' INT TERM


# the load generator, rebuilt when its source is newer

turnload=$repo/build/turnload
if [ ! -x "$turnload" ] \
   || [ "$repo"/bench/turn/turnload.c -nt "$turnload" ]
then
    mkdir -p "$repo"/build
    gcc -O2 -Wall -Wextra -Wno-unused-parameter -o "$turnload" \
        "$repo"/bench/turn/turnload.c -lcrypto
fi


# free_udp_port: a port free for UDP and TCP on 127.0.0.1
free_udp_port() {
    perl -MIO::Socket::IP -e '
        for (1 .. 100) {
            my $t = IO::Socket::IP->new(Listen => 1, LocalHost => "127.0.0.1",
                                        LocalPort => 0) or next;
            my $p = $t->sockport;
            IO::Socket::IP->new(Proto => "udp", LocalHost => "127.0.0.1",
                                LocalPort => $p) or next;
            print $p; exit 0;
        }
        exit 1;'
}

# free_range N: the first port of N consecutive ports free for UDP, above
# the kernel's ephemeral range so that clients do not take them meanwhile
free_range() {
    perl -MIO::Socket::IP -e '
        my ($n, $avoid) = @ARGV;
        open my $f, "<", "/proc/sys/net/ipv4/ip_local_port_range";
        my (undef, $hi) = split " ", <$f>;
        my $lo = $hi + 1;
        $lo = 10000 if 65535 - $lo < 2 * $n;
        TRY: for (1 .. 50) {
            my $start = $lo + int rand(65535 - $n - $lo);
            next if $avoid && abs($start - $avoid) < $n;
            for my $p ($start .. $start + $n - 1) {
                IO::Socket::IP->new(Proto => "udp", LocalHost => "127.0.0.1",
                                    LocalPort => $p) or next TRY;
            }
            print $start; exit 0;
        }
        exit 1;' "$1" "${2:-0}"
}

ncpu=$(nproc)
if [ "$ncpu" -ge 2 ]; then
    pin_server="taskset -c 0"
    pin_load="taskset -c 1"
    setup_cpus="servers on CPU 0, turnload on CPU 1"
else
    pin_server=""
    pin_load=""
    setup_cpus="no pinning ($ncpu CPU)"
fi

# Other processes on a shared machine move latency most: servers and
# turnload run at a higher priority (both servers alike) when allowed.
if [ "$NICE" != 0 ] && nice -n "$NICE" true 2>/dev/null \
   && [ "$(nice -n "$NICE" nice)" = "$NICE" ]
then
    pin_server="nice -n $NICE $pin_server"
    pin_load="nice -n $NICE $pin_load"
    setup_cpus="$setup_cpus, both at nice $NICE"
fi


# coturn

start_coturn() {
    coturn_port=$(free_udp_port)
    coturn_relay=$(free_range $RANGE)

    $pin_server turnserver -c /dev/null -n --log-file=stdout \
        -L 127.0.0.1 --listening-port "$coturn_port" \
        --relay-ip 127.0.0.1 --min-port "$coturn_relay" \
        --max-port $((coturn_relay + RANGE - 1)) \
        --use-auth-secret --static-auth-secret="$SECRET" --realm "$REALM" \
        --no-tls --no-dtls --no-tcp-relay --allow-loopback-peers --no-cli \
        --relay-threads 1 --simple-log \
        > "$prefix"/logs/coturn.log 2>&1 &
    coturn_pid=$!

    # up when it answers: one allocation, shortly
    for i in $(seq 1 50); do
        if $turnload -s 127.0.0.1:"$coturn_port" -k "$SECRET" -n 1 \
               -d 0.05 >/dev/null 2>&1
        then
            return 0
        fi
        kill -0 "$coturn_pid" 2>/dev/null || break
        sleep 0.2
    done

    echo "turn.sh: coturn did not come up" >&2
    tail -20 "$prefix"/logs/coturn.log >&2
    exit 1
}


# ours

start_nginx() {
    local user=""

    nginx_port=$(free_udp_port)
    nginx_relay=$(free_range $RANGE "${coturn_relay:-0}")

    if [ "$(id -u)" = 0 ]; then
        user="user $(id -un) $(id -gn);"
    fi

    cat > "$prefix"/nginx.conf <<EOF
load_module $STREAM_MODULE;
load_module $MODULE;

$user
worker_processes 1;
worker_rlimit_nofile 20000;
pid $prefix/logs/nginx.pid;
error_log $prefix/logs/error.log notice;

events {
    worker_connections 16384;
    # all waiting datagrams in one wakeup (as the README advises for TURN)
    multi_accept on;
}

stream {
    server {
        # coturn sets 4 MB (net.core.rmem_max here) on its listening
        # socket; nginx keeps the default (208 KB) unless told
        listen 127.0.0.1:$nginx_port udp reuseport rcvbuf=4m sndbuf=4m;
        listen 127.0.0.1:$nginx_port;

        teleclinic_turn;
        teleclinic_turn_secret $SECRET;
        teleclinic_turn_realm $REALM;
        # the relay's own address is never a peer: the load tool's peer
        # is on 127.0.0.1, the relay sockets on 127.0.0.2 (loopback too)
        teleclinic_turn_relay_address 127.0.0.2;
        teleclinic_turn_relay_ports $nginx_relay-$((nginx_relay + RANGE - 1));
        teleclinic_turn_allow_peer 127.0.0.0/8;
        # one user name for every stream, and more streams than the
        # defaults allow a hospital's users
        teleclinic_turn_user_quota 100000;
        teleclinic_turn_total_quota 100000;
    }
}
EOF

    if ! "$NGINX" -t -q -p "$prefix/" -c "$prefix"/nginx.conf \
           -e "$prefix"/logs/error.log 2>"$prefix"/logs/nginx-t.log
    then
        nginx_unavailable=$(grep -m1 -o 'emerg\].*' \
                                "$prefix"/logs/nginx-t.log || true)
        return 1
    fi

    nginx_start $pin_server

    for i in $(seq 1 50); do
        if $turnload -s 127.0.0.1:"$nginx_port" -k "$SECRET" -n 1 \
               -d 0.05 >/dev/null 2>&1
        then
            nginx_worker=$(nginx_workers "$nginx_master" | awk '{print $1}')
            return 0
        fi
        kill -0 "$nginx_master" 2>/dev/null || break
        sleep 0.2
    done

    nginx_unavailable="no allocation answered"
    tail -20 "$prefix"/logs/error.log >&2
    return 1
}


# level SPEC: sets L_NAME L_N L_SIZE L_PPS
level() {
    local kind n size pps

    IFS=: read -r kind n size pps <<< "$1"

    case $kind in
        audio) size=${size:-160}; pps=${pps:-50} ;;
        video) size=${size:-1000}; pps=${pps:-200} ;;
    esac

    if [ -z "$n" ] || [ -z "$size" ] || [ -z "$pps" ]; then
        echo "turn.sh: bad level \"$1\"" >&2
        exit 1
    fi

    L_NAME="$n $kind, $size B at $pps pps"
    L_N=$n
    L_SIZE=$size
    L_PPS=$pps
}

# the ticks CPU N was busy or, in a virtual machine, taken by the host
cpu_busy() {
    awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9}' \
        /proc/stat
}

proc_ticks() {
    awk '{print $14 + $15}' /proc/"$1"/stat 2>/dev/null || echo 0
}

# run SERVER PORT PID ARGS...: one turnload run; R_* from its RESULT line,
# R_OTHERS: what other processes (and the host's steal) took of the
# server's CPU, in %
run() {
    local server=$1 port=$2 pid=$3 out b0 b1 p0 p1 t0 t1
    shift 3

    if [ "${PERF:-0}" = 1 ]; then
        perf_n=$(( ${perf_n:-0} + 1 ))
        perf_data=$prefix/perf.$perf_n.$server.data
        perf record -q -g -p "$pid" -o "$perf_data" 2>/dev/null &
        perf_pid=$!
        sleep 0.2
    fi

    b0=$(cpu_busy 0)
    p0=$(proc_ticks "$pid")
    t0=$(date +%s%N)

    out=$($pin_load "$turnload" -s 127.0.0.1:"$port" -k "$SECRET" \
              -c "$pid" "$@" 2>&1) || true

    if [ "${PERF:-0}" = 1 ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        echo "  perf, $server, $*:"
        # head closes the pipe early: not an error here
        perf report -q -i "$perf_data" --no-children -g none \
            --sort dso,sym 2>/dev/null | head -"${PERF_LINES:-15}" \
            | sed 's/^/  /' || true
        perf report -q -i "$perf_data" --no-children -g none --sort dso \
            2>/dev/null | head -4 | sed 's/^/  /' || true
    fi

    t1=$(date +%s%N)
    p1=$(proc_ticks "$pid")
    b1=$(cpu_busy 0)

    [ "${VERBOSE:-0}" = 1 ] && echo "$out" | sed "s/^/  $server: /"

    if ! grep -q '^RESULT ' <<< "$out"; then
        echo "turn.sh: turnload failed against $server:" >&2
        echo "$out" >&2
        exit 1
    fi

    # RESULT k=v ... -> R_k=v
    eval "$(grep '^RESULT ' <<< "$out" | tail -1 | cut -d' ' -f2- \
            | tr ' ' '\n' | sed 's/^/R_/')"

    R_REFUSED=$(grep '^refused' <<< "$out" | sed 's/refused with //' \
                | paste -sd, - || true)

    if [ -n "$pin_server" ]; then
        R_OTHERS=$(awk -v b=$((b1 - b0)) -v p=$((p1 - p0)) \
                       -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
                       'BEGIN {o = 100 * (b - p) / hz / (t / 1e9);
                               printf "%d", o < 0 ? 0 : o}')
    else
        R_OTHERS="-"
    fi
}

echo "setup: $ncpu CPUs, $setup_cpus; $(turnserver --version 2>/dev/null \
      | head -1 | sed 's/^/coturn /') with --relay-threads 1;" \
     "nginx $("$NGINX" -v 2>&1 | sed 's/.*\///') with 1 worker;" \
     "${DURATION}s per run, $ROUNDS round(s); $([ "$ECHO" = 1 ] && echo two-way \
      || echo one-way) streams"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

have_coturn=0
have_ours=0

if [[ " $SERVERS " == *" coturn "* ]]; then
    start_coturn
    have_coturn=1
fi

if [[ " $SERVERS " == *" ours "* ]]; then
    if [ ! -f "$MODULE" ]; then
        echo "ours: no $MODULE (run make)"
    elif start_nginx; then
        have_ours=1
    else
        echo "ours: not measured: ${nginx_unavailable:-nginx did not start}"
    fi
fi

echo_arg=""
[ "$ECHO" = 1 ] && echo_arg="-e"

printf '\n%-32s %-7s %9s %9s %8s %8s %8s %6s %6s %7s\n' \
    "load" "server" "pkts/s" "CPU s/M" "loss %" "p50 us" "p99 us" \
    "cpu %" "gen %" "others"

declare -A C_PPS C_CPU C_P50 C_P99 K
worst_gen=0
worst_others=0

# keep SERVER: the run's figures as the server's for this load, when the
# other processes disturbed it less than the rounds before
keep() {
    local v

    if [ -n "${K[$1.OTHERS]:-}" ] && [ "$R_OTHERS" != "-" ] \
       && [ "$R_OTHERS" -ge "${K[$1.OTHERS]}" ]
    then
        return 0
    fi

    for v in pps cpu_per_m loss_pct p50_us p99_us cpu_s secs gen_cpu_pct \
             failed
    do
        eval "K[\$1.\$v]=\$R_$v"
    done

    K[$1.OTHERS]=$R_OTHERS
    K[$1.REFUSED]=$R_REFUSED
}

for spec in $LEVELS; do
    level "$spec"
    args=(-n "$L_N" -b "$L_SIZE" -r "$L_PPS" -d "$DURATION" $echo_arg)
    K=()

    for round in $(seq 1 "$ROUNDS"); do
        for server in coturn ours; do
            case $server in
                coturn) [ $have_coturn = 1 ] || continue
                        run coturn "$coturn_port" "$coturn_pid" "${args[@]}"
                        ;;
                ours)   [ $have_ours = 1 ] || continue
                        run ours "$nginx_port" "$nginx_worker" "${args[@]}"
                        ;;
            esac

            keep $server
        done
    done

    first=1

    for server in coturn ours; do
        [ -n "${K[$server.pps]:-}" ] || continue

        name=""
        [ $first = 1 ] && name=$L_NAME
        first=0

        note=""
        [ "${K[$server.failed]}" != 0 ] \
            && note=" (${K[$server.failed]} of $L_N not allocated"
        [ -n "${K[$server.REFUSED]}" ] \
            && note="$note: ${K[$server.REFUSED]}"
        [ -n "$note" ] && note="$note)"

        printf '%-32s %-7s %9s %9s %8s %8s %8s %6s %6s %6s%%%s\n' \
            "$name" "$server" "${K[$server.pps]}" "${K[$server.cpu_per_m]}" \
            "${K[$server.loss_pct]}" "${K[$server.p50_us]}" \
            "${K[$server.p99_us]}" \
            "$(awk -v c="${K[$server.cpu_s]}" -v s="${K[$server.secs]}" \
                   'BEGIN {printf "%d", 100 * c / s}')" \
            "${K[$server.gen_cpu_pct]}" "${K[$server.OTHERS]}" "$note"

        [ "${K[$server.gen_cpu_pct]}" -gt "$worst_gen" ] \
            && worst_gen=${K[$server.gen_cpu_pct]}
        [ "${K[$server.OTHERS]}" != "-" ] \
            && [ "${K[$server.OTHERS]}" -gt "$worst_others" ] \
            && worst_others=${K[$server.OTHERS]}

        C_PPS[$server]=${K[$server.pps]}
        C_CPU[$server]=${K[$server.cpu_per_m]}
        C_P50[$server]=${K[$server.p50_us]}
        C_P99[$server]=${K[$server.p99_us]}
    done

    if [ $have_coturn = 1 ] && [ $have_ours = 1 ]; then
        printf '%-32s %-7s %9s %9s %8s %8s %8s\n' "" "ours/coturn" \
            "$(awk -v a="${C_PPS[ours]}" -v b="${C_PPS[coturn]}" \
                   'BEGIN {printf "%.2f", b ? a / b : 0}')" \
            "$(awk -v a="${C_CPU[ours]}" -v b="${C_CPU[coturn]}" \
                   'BEGIN {printf "%.2f", b ? a / b : 0}')" "" \
            "$(awk -v a="${C_P50[ours]}" -v b="${C_P50[coturn]}" \
                   'BEGIN {printf "%.2f", b ? a / b : 0}')" \
            "$(awk -v a="${C_P99[ours]}" -v b="${C_P99[coturn]}" \
                   'BEGIN {printf "%.2f", b ? a / b : 0}')"
    fi

    # the loopback's own share: the same streams, no relay
    out=$($pin_load "$turnload" -D -n "$L_N" -b "$L_SIZE" -r "$L_PPS" \
              -d "$(awk -v d="$DURATION" 'BEGIN {print d < 3 ? d : 3}')" \
              $echo_arg 2>&1 | grep '^RESULT' || true)
    eval "$(cut -d' ' -f2- <<< "$out" | tr ' ' '\n' | sed 's/^/R_/')"
    printf '%-32s %-7s %9s %9s %8s %8s %8s %6s %6s\n' "" "direct" "$R_pps" \
        "-" "$R_loss_pct" "$R_p50_us" "$R_p99_us" "-" "$R_gen_cpu_pct"
done

cat <<EOF

  pkts/s: packets relayed per second, both directions; CPU s/M: the
  server's CPU seconds per million packets relayed (lower is better);
  loss: packets sent and never received, either direction; p50/p99: one
  way, client to peer through the relay, from the send time to the
  kernel's receive time at the peer; cpu %: the server's share of one
  core; gen %: turnload's share of its core; others: what other
  processes, and the host of this virtual machine (steal), took of the
  server's core (above a few % the figures are disturbed); direct: the
  same streams client to peer without a relay.
EOF

if [ "$worst_gen" -gt 90 ]; then
    echo "  WARNING: turnload used up to $worst_gen% of its core: at such" \
         "loads it, not the server, may be the limit"
fi

if [ "$worst_others" -gt 10 ]; then
    echo "  WARNING: other processes took up to $worst_others% of the" \
         "server's core: latency and loss are disturbed"
fi


# the reload

# reload PROBE_MS: one run of RELOAD_STREAMS streams with a reload after
# 1.5 s, the clients probing every PROBE_MS ms (0: not at all)
reload() {
    local secs=6 hup

    ( sleep 1.5; kill -HUP "$nginx_master" ) &
    hup=$!

    if [ "$1" = 0 ]; then
        run ours "$nginx_port" "$nginx_worker" -n "$RELOAD_STREAMS" -d $secs
    else
        run ours "$nginx_port" "$nginx_worker" -n "$RELOAD_STREAMS" \
            -d $secs -P "$1"
    fi

    wait $hup || true

    # the new worker, for the next run
    sleep 0.5
    nginx_worker=$(nginx_workers "$nginx_master" | awk '{print $1}')
}

if [ "$RELOAD" = 1 ] && [ $have_ours = 1 ]; then
    echo
    echo "reload: $RELOAD_STREAMS audio-like streams through ours, one-way," \
         "nginx -s reload 1.5 s into 6 s:"

    reload 0
    echo "  clients that do nothing: longest gap $R_max_gap_ms ms;" \
         "$R_stalled of $RELOAD_STREAMS streams stopped for good;" \
         "lost $R_lost of $R_sent"

    reload "$PROBE_MS"
    echo "  clients sending Refresh every $PROBE_MS ms and allocating again" \
         "on 437 or silence: longest gap $R_max_gap_ms ms (20 ms is none);" \
         "$R_gaps of $RELOAD_STREAMS streams interrupted," \
         "$R_stalled stopped for good; $R_reallocs reallocations;" \
         "lost $R_lost of $R_sent"
fi
