#!/usr/bin/env bash
# The waiting room and call signaling under load, in one run:
#
# 1. PATIENTS (10,000) waiting patients of one doctor connected at once to
#    one nginx with 2 workers: the workers' memory and the zone's before
#    and after, per connection (target < 16 KiB).
# 2. Fan-out: ROUNDS times the doctor's console sends call_next (the rung
#    patient accepts at once, the doctor hangs up after); the time from
#    call_next until every other waiting patient has a queue message with
#    their new position.
# 3. Fan-out as a clinic has it: those connections closed, PATIENTS other
#    patients spread evenly over DOCTORS (50) doctors q00.. (200 each),
#    all connected at once; ROUNDS rounds of call_next by q00 as in 2,
#    timed until q00's other waiting patients have their new position
#    (target: within 100 ms), and every message to the patients of the
#    other doctors during a round counted (there should be none).
# 4. Signaling: CALLS calls, half with the doctor and the patient on
#    different workers, half with both on one worker (the baseline, in the
#    same run); `signal` messages relayed between the two sides, paced at
#    RATE messages/s (latency at a moderate load) and then as fast as they
#    go with WINDOW messages in flight per side (messages/s), each
#    kind in turn, twice.  One-way latency from a send time carried in the
#    message (one clock: the client sends and receives).  Target: p99 <
#    5 ms across workers.
# 5. Fan-out beside nchan, the reference: two more nginx with one worker
#    each, ours and one with Debian's nchan only; for each of SUBSCRIBERS
#    (1,000 and 5,000), RUNS (3) times in turn: that many waiting
#    patients of one doctor and FROUNDS (20) rounds of call_next as in 2,
#    then as many subscribers of one nchan channel and 2 x FROUNDS
#    publishes at the rounds' pace.  Messages delivered per worker
#    CPU-second, the median of the runs and the ratio to nchan's (target:
#    at least 1), and the worker's memory per idle connection.  Needs
#    nchan: apt-get install --no-install-recommends libnginx-mod-nchan
#    (the script says so and stops without it; SUBSCRIBERS= leaves the
#    part out).  ONLY_NCHAN=1 runs this part alone.
#
# The load client is bench/room/roomload.c (C, epoll, compiled here into
# the temp prefix).  The appointments and doctor logins are made through
# the HTTP API (bench/room/setup.py) with the journal at fsync=off: this
# bench is not about the disk.  Booking: one doctor working round the
# clock in 5-minute slots has 288 slots a day, so PATIENTS appointments
# span PATIENTS/288 days from tomorrow on (the booking horizon of 60 days
# allows up to about 17,000); teleclinic_checkin_open is set to 60d so
# that every one of them may check in now.  The doctors q00.. work the
# same hours; each has PATIENTS/DOCTORS appointments from tomorrow on
# (booked after part 2, so that part's state is as it was).  The signaling
# calls have one doctor each (c000...), each with one appointment.
#
# nginx (master and both workers) runs on CPU 0 and the client on CPU 1
# when there are two CPUs (taskset), so that the client does not take
# nginx's CPU; both workers then share one core.  The listen socket has
# reuseport so that connections spread over both workers.  The script
# raises its own ulimit -n for the client and sets worker_rlimit_nofile
# and worker_connections for nginx.
#
# Environment: PATIENTS (10000), ROUNDS (5), DOCTORS (50, of part 3; 0
# leaves part 3 out), CALLS (64, even), DURATION
# (3, seconds per signaling phase), RATE (2000, messages/s of the paced
# phases), WINDOW (1), SIZE (200, bytes of padding in each signal's data,
# an ICE candidate's size; an SDP is some KiB), ZONE (256m), NGINX,
# TELECLINIC_MODULE, KEEP=1 keeps the temp prefix, PIN=0 runs without
# taskset, SERVER_CONF (more directives for the server{} block, to try
# e.g. request_pool_size); of part 5: SUBSCRIBERS ("1000 5000"), FROUNDS
# (20), RUNS (3), ONLY_NCHAN=1, PERF=DIR (`perf record -g` of the worker
# during each measurement into DIR).

set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)

. "$repo"/bench/lib/nginx.sh

PATIENTS=${PATIENTS:-10000}
ROUNDS=${ROUNDS:-5}
DOCTORS=${DOCTORS:-50}
CALLS=${CALLS:-64}
DURATION=${DURATION:-3}
RATE=${RATE:-2000}
WINDOW=${WINDOW:-1}
SIZE=${SIZE:-200}
ZONE=${ZONE:-256m}
SUBSCRIBERS=${SUBSCRIBERS-1000 5000}
FROUNDS=${FROUNDS:-20}
RUNS=${RUNS:-3}

PASSWORD=bench-doctor-password
TARGET_KIB=16
TARGET_P99_MS=5
TARGET_FANOUT_MS=100

bench_require cc perl python3 curl taskset

if [ $((CALLS % 2)) != 0 ] || [ "$CALLS" -lt 2 ]; then
    echo "room.sh: CALLS must be even" >&2
    exit 1
fi

if [ "$DOCTORS" -lt 0 ] || [ "$DOCTORS" -gt "$PATIENTS" ]; then
    echo "room.sh: DOCTORS must be 0 to PATIENTS" >&2
    exit 1
fi

# the client holds PATIENTS sockets and a worker at most as many (the
# limit is per process)
nofile=$PATIENTS
for n in $SUBSCRIBERS; do
    [ "$n" -gt "$nofile" ] && nofile=$n
done
nofile=$((nofile + 1024))
if [ "$(ulimit -n)" -lt "$nofile" ]; then
    ulimit -n "$nofile" 2>/dev/null || {
        echo "room.sh: cannot raise ulimit -n to $nofile (hard limit" \
             "$(ulimit -Hn)); try fewer PATIENTS" >&2
        exit 1
    }
fi

client=""
side_masters=""
beside_ours=""
beside_nchan=""

cleanup() {
    exec 3>&- 2>/dev/null || true

    if [ -n "$client" ] && kill -0 "$client" 2>/dev/null; then
        kill -TERM "$client" 2>/dev/null || true
        wait "$client" 2>/dev/null || true
    fi

    nginx_stop "$nginx_master"

    for m in $side_masters; do
        nginx_stop "$m"
    done

    nginx_remove_prefix
}

trap cleanup EXIT
trap 'exit 130' INT TERM

nginx_prefix room
port=$(free_port)

cc -O2 -Wall -o "$prefix"/roomload "$repo"/bench/room/roomload.c -lcrypto

if [ "$(nproc)" -ge 2 ] && [ "${PIN:-1}" = 1 ]; then
    pin_nginx="taskset -c 0"
    pin_client="taskset -c 1"
    setup_cpus="nginx (master, 2 workers) on CPU 0, the client on CPU 1"
else
    pin_nginx=""
    pin_client=""
    setup_cpus="no pinning"
fi

# memory: kB of a field of /proc/PID/status summed over the workers
status_kb() {
    local field=$1 pid sum=0 v

    for pid in $w0 $w1; do
        v=$(awk -v f="$field:" '$1 == f {print $2}' /proc/"$pid"/status)
        sum=$((sum + ${v:-0}))
    done

    echo $sum
}

# kB of the zone's pages a worker has touched (the largest shared
# anonymous mapping, the zone), the larger of the two workers' figures
zone_kb() {
    local pid v max=0

    for pid in $w0 $w1; do
        v=$(awk '/^[0-9a-f]+-[0-9a-f]+ / {cur = ($6 == "/dev/zero")}
                 cur && $1 == "Size:" {size = $2}
                 cur && $1 == "Rss:" {if (size > best) {best = size
                                                        rss = $2}}
                 END {print rss + 0}' /proc/"$pid"/smaps)
        [ "$v" -gt "$max" ] && max=$v
    done

    echo $max
}

# kernel memory of all TCP sockets (both ends are on this machine), kB
tcp_kb() {
    awk -v pg="$(getconf PAGESIZE)" '$1 == "TCP:" {
        for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) * pg / 1024
    }' /proc/net/sockstat
}

mem_snapshot() {
    M_RSS=$(status_kb VmRSS)
    M_ANON=$(status_kb RssAnon)
    M_SHMEM=$(status_kb RssShmem)
    M_ZONE=$(zone_kb)
    M_TCP=$(tcp_kb)
}


# room_start NAME TOKENS DOCTOR_TOKEN [PORT ROUNDS PID,PID]: the room
# client in the background, its stdin the fifo $prefix/NAME.ctl (fd 3),
# its output $prefix/NAME.out
room_start() {
    client_start "$1" room -p "${4:-$port}" -u /ws -t "$2" -D "$3" \
        -R "${5:-$ROUNDS}" -W "${6:-$w0,$w1}"
}

# client_start NAME ARGS...: roomload ARGS so, for any of its modes
client_start() {
    local name=$1

    shift
    out=$prefix/$name.out
    mkfifo "$prefix/$name.ctl"
    $pin_client "$prefix"/roomload "$@" < "$prefix/$name.ctl" > "$out" 2>&1 &
    client=$!
    exec 3> "$prefix/$name.ctl"
}

# wait_for WORD SECONDS: until the client prints WORD or ends
wait_for() {
    local i

    for i in $(seq 1 $(($2 * 10))); do
        grep -q "^$1" "$out" && return 0
        kill -0 "$client" 2>/dev/null || break
        sleep 0.1
    done

    echo "room.sh: the client did not reach $1:" >&2
    cat "$out" >&2
    exit 1
}

# room_rounds: the client's rounds, then it closes every connection
room_rounds() {
    client_go
    sed -n '/^doctor:/,/^DONE/p' "$out" | grep -v '^DONE'
}

# client_go: the client goes on from READY, until it is DONE and ends
client_go() {
    echo go >&3
    wait_for DONE 600
    exec 3>&-
    wait "$client" || true
    client=""
}

# workers_idle [PID...]: until the workers (w0 and w1 by default) take
# under 10% of a core for 0.5 s (the closed connections of a run are
# settled), at most 60 s
workers_idle() {
    local i a b pid pids=()

    for pid in "${@:-}"; do
        [ -n "$pid" ] && pids+=(/proc/"$pid"/stat)
    done

    [ ${#pids[@]} -gt 0 ] || pids=(/proc/"$w0"/stat /proc/"$w1"/stat)

    for i in $(seq 1 120); do
        a=$(cat "${pids[@]}" | awk '{sub(/.*\) /, ""); t += $12 + $13}
                             END {print t}')
        sleep 0.5
        b=$(cat "${pids[@]}" | awk '{sub(/.*\) /, ""); t += $12 + $13}
                             END {print t}')
        [ $((b - a)) -lt $(($(getconf CLK_TCK) / 20)) ] && return 0
    done
}


# 5. Fan-out beside nchan, the reference.  Two more nginx, one worker
#    each, pinned as the others: ours, and one with Debian's nchan
#    (libnginx-mod-nchan) only.  For each of SUBSCRIBERS, RUNS times in
#    turn: that many waiting patients of one doctor connected to ours,
#    FROUNDS rounds of call_next as in 2 (each sends every waiting patient
#    two queue messages); then as many WebSocket subscribers of one nchan
#    channel, 2 x FROUNDS publishes of a message the size of a patient's
#    queue message, one at a time, each once all have the one before,
#    and 500 ms of quiet after every second one as after a round (on
#    loopback the pace decides who pays for the ACKs: data after an idle
#    longer than the RTO is ACKed at once, in the softirq of the sending
#    CPU).  Each subscriber pings once after its handshake, as a patient
#    says hello.  The figure: messages the patients or subscribers
#    received per CPU-second of the worker (utime + stime, /proc/PID/stat,
#    over the rounds or the publishes), the median of the runs; and the
#    worker's memory per idle connection.  Both ping every 30 s (ours by
#    default; nchan_websocket_ping_interval 30).

nchan_module=/usr/lib/nginx/modules/ngx_nchan_module.so

# side_conf DIR CONNECTIONS MODULE...: DIR/nginx.conf for one worker with
# those modules, its http {} holding the temp paths and then stdin
side_conf() {
    local dir=$1 conns=$2 user="" m

    shift 2
    mkdir -p "$dir"/logs "$dir"/tmp "$dir"/state

    [ "$(id -u)" = 0 ] && user="user $(id -un) $(id -gn);"

    {
        for m in "$@"; do
            echo "load_module $m;"
        done
        cat <<CONF

$user
worker_processes 1;
worker_rlimit_nofile $nofile;
pid $dir/logs/nginx.pid;
error_log $dir/logs/error.log notice;

events {
    worker_connections $conns;
}

http {
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;

    access_log off;
    keepalive_requests 10000000;

CONF
        cat
        echo "}"
    } > "$dir"/nginx.conf
}

# side_start DIR URL: that nginx in the background, pinned as the others,
# until URL answers; side_worker is its worker's pid
side_start() {
    local master

    # shellcheck disable=SC2086
    $pin_nginx "$NGINX" -p "$1/" -c "$1/nginx.conf" -e "$1/logs/error.log" \
        -g 'daemon off;' &
    master=$!
    side_masters="$side_masters $master"

    for _ in $(seq 1 300); do
        curl -s -o /dev/null "$2" && break
        kill -0 "$master" 2>/dev/null || break
        sleep 0.1
    done

    side_worker=$(nginx_workers "$master" | awk '{print $1}')

    if [ -z "$side_worker" ]; then
        echo "room.sh: the nginx in $1 did not come up:" >&2
        tail -20 "$1"/logs/error.log >&2
        exit 1
    fi
}

# side_reload WORKER: a reload of that worker's nginx; prints the new
# worker's pid once the old one is gone
side_reload() {
    local master new

    master=$(awk '{print $4}' /proc/"$1"/stat)
    kill -HUP "$master"

    for _ in $(seq 1 300); do
        new=$(nginx_workers "$master" | awk '{print $1}')
        if [ -n "$new" ] && [ "$new" != "$1" ] && ! kill -0 "$1" 2>/dev/null
        then
            echo "$new"
            return 0
        fi
        sleep 0.1
    done

    echo "room.sh: no new worker after a reload" >&2
    exit 1
}

# perf_start PID NAME, perf_stop: with PERF=DIR, `perf record -g` of the
# worker into DIR/NAME.data meanwhile
perf_start() {
    perf_pid=""
    [ -n "${PERF:-}" ] || return 0
    mkdir -p "$PERF"
    perf record -q -g -p "$1" -o "$PERF/$2.data" 2>/dev/null 3>&- &
    perf_pid=$!
    sleep 0.5
}

perf_stop() {
    [ -n "$perf_pid" ] || return 0
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    perf_pid=""
}

# kb PID FIELD: a field of /proc/PID/status in kB
kb() {
    awk -v f="$2:" '$1 == f {print $2}' /proc/"$1"/status
}

# beside_measure NAME PID LINE -- CLIENT ARGS...: one client run against
# one worker; prints the client's LINE (DELIVERIES or NCHAN) with the
# worker's private and shared memory per connection (KiB) appended
beside_measure() {
    local name=$1 pid=$2 word=$3 n=$4 a_anon a_shm b_anon b_shm line

    shift 5
    workers_idle "$pid"
    b_anon=$(kb "$pid" RssAnon) b_shm=$(kb "$pid" RssShmem)
    client_start "$name" "$@"
    wait_for READY 900
    sleep 1
    a_anon=$(kb "$pid" RssAnon) a_shm=$(kb "$pid" RssShmem)
    perf_start "$pid" "$name"
    client_go
    perf_stop

    line=$(grep "^$word" "$out" || true)
    [ -n "$line" ] || { cat "$out" >&2; exit 1; }

    awk -v l="$line" -v n="$n" -v a0="$b_anon" -v a1="$a_anon" \
        -v s0="$b_shm" -v s1="$a_shm" 'BEGIN {
            printf "%s anon_kib=%.2f shm_kib=%.2f\n", l, (a1 - a0) / n,
                   (s1 - s0) / n
        }'
}

beside_nchan() {
    local n k max=0 fdir ndir fport nport fw nw qsize line doctors=""

    for n in $SUBSCRIBERS; do
        [ "$n" -gt "$max" ] && max=$n
        for k in $(seq 1 "$RUNS"); do
            doctors="$doctors f$n-$k"
        done
    done

    fdir=$prefix/beside-ours
    ndir=$prefix/beside-nchan
    fport=$(free_port)
    nport=$(free_port)
    while [ "$nport" = "$fport" ] || [ "$nport" = "$port" ]; do
        nport=$(free_port)
    done

    # a doctor of ours for each level and run
    # shellcheck disable=SC2086
    python3 - "$(echo "$PASSWORD" | python3 "$repo"/bin/teleclinic-passwd)" \
        $doctors > "$prefix"/beside-directory.json <<'PY'
import json, sys

pw, ids = sys.argv[1], sys.argv[2:]
days = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']
sched = {'slot_minutes': 5, 'hours': {d: [['00:00', '24:00']] for d in days},
         'days_off': []}
print(json.dumps({'departments': [{'id': 'bench', 'name': 'Bench'}],
                  'doctors': [{'id': i, 'name': 'Dr. Fan %s' % i,
                               'department': 'bench', 'password': pw,
                               'schedule': sched} for i in ids]}))
PY

    side_conf "$fdir" $((max + 512)) "$STREAM_MODULE" "$MODULE" <<CONF
    teleclinic_zone beside $ZONE;
    teleclinic_journal $fdir/state/journal fsync=off;
    teleclinic_directory $prefix/beside-directory.json;
    teleclinic_token_secret bench-token-secret-0123456789;
    teleclinic_admin_key bench-admin-key-0123456789;
    teleclinic_checkin_open 60d;
    teleclinic_ring_timeout 60s;

    server {
        listen 127.0.0.1:$fport;

        location /api/v1/ {
            teleclinic_api;
        }

        location = /ws {
            teleclinic_websocket;
        }
    }
CONF

    # a channel for each level and run (?id=), so that none gets
    # another's messages
    side_conf "$ndir" $((max + 512)) "$nchan_module" <<CONF
    server {
        listen 127.0.0.1:$nport;

        location = /sub {
            nchan_subscriber websocket;
            nchan_channel_id \$arg_id;
            nchan_websocket_ping_interval 30;
        }

        location = /pub {
            nchan_publisher;
            nchan_channel_id \$arg_id;
        }
    }
CONF

    side_start "$fdir" "http://127.0.0.1:$fport/api/v1/departments"
    fw=$side_worker
    side_start "$ndir" "http://127.0.0.1:$nport/"
    nw=$side_worker

    echo
    echo "fan-out beside nchan $(dpkg-query -W -f='${Version}' \
        libnginx-mod-nchan 2>/dev/null): one worker each ($fw, nchan $nw)," \
         "${pin_nginx:+both on CPU 0, the client on CPU 1; }$FROUNDS" \
         "rounds of call_next against 2 x $FROUNDS publishes, $RUNS runs" \
         "in turn; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

    for n in $SUBSCRIBERS; do
        for k in $(seq 1 "$RUNS"); do
            python3 "$repo"/bench/room/setup.py "$fport" book "f$n-$k" "$n" \
                > "$prefix"/beside-$n-$k.txt 2>/dev/null
            python3 "$repo"/bench/room/setup.py "$fport" login "$PASSWORD" \
                "f$n-$k" > "$prefix"/beside-$n-$k-doctor.txt
        done

        # new workers: the first run's memory is not what a run before
        # freed
        fw=$(side_reload "$fw")
        nw=$(side_reload "$nw")

        for k in $(seq 1 "$RUNS"); do
            line=$(beside_measure "beside-ours-$n-$k" "$fw" DELIVERIES "$n" \
                   -- room -p "$fport" -u /ws -t "$prefix"/beside-$n-$k.txt \
                   -D "$(cat "$prefix"/beside-$n-$k-doctor.txt)" \
                   -R "$FROUNDS" -W "$fw,0")
            echo "  $n run $k ours:  ${line#DELIVERIES }"
            beside_ours="$beside_ours
$n $k $line"
            qsize=$(sed -n 's/.*queue_bytes=\([0-9]*\).*/\1/p' <<< "$line")

            line=$(beside_measure "beside-nchan-$n-$k" "$nw" NCHAN "$n" \
                   -- nchan -p "$nport" -u "/sub?id=c$n-$k" \
                   -x "/pub?id=c$n-$k" -n "$n" -P $((2 * FROUNDS)) \
                   -s "${qsize:-96}" -W "$nw,0")
            echo "  $n run $k nchan: ${line#NCHAN }"
            beside_nchan="$beside_nchan
$n $k $line"
        done
    done

    beside_table
}

# beside_field NAME LEVEL LINES: the values of a field at that level,
# one a line, in the order of the runs
beside_field() {
    awk -v n="$2" -v f="$1" '$1 == n {
        for (i = 3; i <= NF; i++) if (index($i, f "=") == 1) {
            print substr($i, length(f) + 2)
        }
    }' <<< "$3"
}

median() {
    sort -n | awk '{v[NR] = $1} END {
        if (NR % 2) printf "%s", v[(NR + 1) / 2]
        else if (NR) printf "%.0f", (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}

beside_table() {
    local n o c ratios

    printf '\nfan-out beside nchan: messages delivered per worker'
    printf ' CPU-second, one worker each, median of %d runs\n' "$RUNS"
    printf '  %-11s %9s %9s %7s %13s %11s %11s\n' subscribers ours nchan \
        ratio "ratio range" "ours KiB" "nchan KiB"

    for n in $SUBSCRIBERS; do
        o=$(beside_field per_cpu_s "$n" "$beside_ours" | median)
        c=$(beside_field per_cpu_s "$n" "$beside_nchan" | median)
        ratios=$(paste <(beside_field per_cpu_s "$n" "$beside_ours") \
                       <(beside_field per_cpu_s "$n" "$beside_nchan") \
                 | awk '$2 > 0 {print $1 / $2}' | sort -n \
                 | awk 'NR == 1 {lo = $1} {hi = $1}
                        END {printf "%.2f-%.2f", lo, hi}')
        printf '  %-11s %9s %9s %7s %13s %11s %11s\n' "$n" "$o" "$c" \
            "$(awk -v a="$o" -v b="$c" 'BEGIN {printf "%.2f", b ? a / b : 0}')" \
            "$ratios" \
            "$(beside_field anon_kib "$n" "$beside_ours" | head -1)" \
            "$(beside_field anon_kib "$n" "$beside_nchan" | head -1)"
    done

    echo "  (KiB: the worker's private memory (RssAnon) per idle" \
         "connection in the first run, a new worker's; ours has 0.25 KiB" \
         "of zone besides, part 1)"
}

if [ -n "$SUBSCRIBERS" ] && [ ! -f "$nchan_module" ]; then
    echo "room.sh: no $nchan_module for the fan-out beside nchan; install" \
         "it with: apt-get install --no-install-recommends" \
         "libnginx-mod-nchan (or SUBSCRIBERS= leaves it out)" >&2
    exit 1
fi

if [ "${ONLY_NCHAN:-0}" = 1 ]; then
    beside_nchan

    if grep -E '\[(alert|crit|emerg)\]' "$prefix"/beside-*/logs/error.log \
           >&2
    then
        echo "the error logs have the problems above" >&2
        exit 1
    fi

    exit 0
fi

# the directory: "room" works round the clock (the 10,000 patients),
# q00.. too (the spread queues), c000.. too, one call each; all with the
# same password
hash=$(echo "$PASSWORD" | python3 "$repo"/bin/teleclinic-passwd)

# q00..q49: two digits or as many as DOCTORS needs
qwidth=$(( ${#DOCTORS} > 2 ? ${#DOCTORS} : 2 ))
qdoctors=$(for i in $(seq 0 $((DOCTORS - 1))); do
               printf "q%0${qwidth}d " "$i"
           done)

python3 - "$CALLS" "$hash" $qdoctors > "$prefix"/directory.json <<'EOF'
import json, sys

calls, pw, queues = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
days = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']
sched = {'slot_minutes': 5, 'hours': {d: [['00:00', '24:00']] for d in days},
         'days_off': []}
doctors = [{'id': 'room', 'name': 'Dr. Room', 'department': 'bench',
            'password': pw, 'schedule': sched}]
doctors += [{'id': q, 'name': 'Dr. Queue %s' % q[1:], 'department': 'bench',
             'password': pw, 'schedule': sched} for q in queues]
doctors += [{'id': 'c%03d' % i, 'name': 'Dr. Call %d' % i,
             'department': 'bench', 'password': pw, 'schedule': sched}
            for i in range(calls)]
print(json.dumps({'departments': [{'id': 'bench', 'name': 'Bench'}],
                  'doctors': doctors}))
EOF

nginx_write_conf 2 $((PATIENTS + 512)) <<EOF
    teleclinic_zone bench $ZONE;
    teleclinic_journal $prefix/state/journal fsync=off;
    teleclinic_directory $prefix/directory.json;
    teleclinic_token_secret bench-token-secret-0123456789;
    teleclinic_admin_key bench-admin-key-0123456789;
    teleclinic_checkin_open 60d;
    teleclinic_ring_timeout 60s;

    server {
        listen 127.0.0.1:$port reuseport;
        ${SERVER_CONF:-}

        location /api/v1/ {
            teleclinic_api;
        }

        location = /ws {
            teleclinic_websocket;
            teleclinic_websocket_rate 100000r/s burst=100000;
            # the client connects every socket before the first hello
            teleclinic_websocket_hello_timeout 10m;
            teleclinic_websocket_send_buffer 64m;
        }
    }
EOF

# a worker holds up to PATIENTS sockets
sed -i "s/^worker_processes .*/&\nworker_rlimit_nofile $nofile;/" \
    "$prefix"/nginx.conf

# shellcheck disable=SC2086
nginx_start $pin_nginx
base=http://127.0.0.1:$port
nginx_wait_up "$base/api/v1/departments"

workers=$(nginx_workers "$nginx_master")
w0=$(awk '{print $1}' <<< "$workers")
w1=$(awk '{print $2}' <<< "$workers")

if [ -z "$w1" ]; then
    echo "room.sh: expected two workers, have: $workers" >&2
    exit 1
fi

echo "setup: nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'), 2 workers" \
     "($w0, $w1), $setup_cpus; loopback, no TLS; zone $ZONE; journal" \
     "fsync=off; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# the state, through the API
python3 "$repo"/bench/room/setup.py "$port" book room "$PATIENTS" \
    > "$prefix"/patients.txt
python3 "$repo"/bench/room/setup.py "$port" login "$PASSWORD" room \
    > "$prefix"/doctor.txt

calls=$(for i in $(seq 0 $((CALLS - 1))); do printf 'c%03d ' "$i"; done)

for d in $calls; do
    python3 "$repo"/bench/room/setup.py "$port" book "$d" 1 2>/dev/null
done > "$prefix"/call-patients.txt

# shellcheck disable=SC2086
python3 "$repo"/bench/room/setup.py "$port" login "$PASSWORD" $calls \
    > "$prefix"/call-doctors.txt
paste -d' ' "$prefix"/call-doctors.txt "$prefix"/call-patients.txt \
    > "$prefix"/pairs.txt

[ "$(wc -l < "$prefix"/pairs.txt)" = "$CALLS" ] \
    || { echo "room.sh: could not book the calls' appointments" >&2; exit 1; }


# 1. the waiting room: 10,000 patients, then the fan-out rounds

mem_snapshot
b_rss=$M_RSS b_anon=$M_ANON b_shmem=$M_SHMEM b_zone=$M_ZONE b_tcp=$M_TCP

room_start room "$prefix"/patients.txt "$(cat "$prefix"/doctor.txt)"
wait_for READY 900

connected=$(awk '$1 == "READY" {print $2}' "$out")

# a moment for the workers to finish what the last updates left
sleep 1
mem_snapshot

grep -v -e '^READY' "$out"

per_conn() {
    awk -v a="$1" -v b="$2" -v n="$connected" \
        'BEGIN {printf "%.2f", n ? (b - a) / n : 0}'
}

rss_per=$(per_conn "$b_rss" "$M_RSS")
anon_per=$(per_conn "$b_anon" "$M_ANON")
zone_per=$(per_conn "$b_zone" "$M_ZONE")
tcp_per=$(per_conn "$b_tcp" "$M_TCP")
total_per=$(awk -v a="$anon_per" -v z="$zone_per" \
            'BEGIN {printf "%.2f", a + z}')

printf '\n%-31s %10s %10s   %s\n' "memory, kB (both workers)" \
    before after "per connection"
printf '  workers VmRSS                 %10d %10d   %6s KiB\n' \
    "$b_rss" "$M_RSS" "$rss_per"
printf '  workers RssAnon (private)     %10d %10d   %6s KiB\n' \
    "$b_anon" "$M_ANON" "$anon_per"
printf '  workers RssShmem (zone, ...)  %10d %10d\n' "$b_shmem" "$M_SHMEM"
printf '  zone pages touched (max/wkr)  %10d %10d   %6s KiB\n' \
    "$b_zone" "$M_ZONE" "$zone_per"
printf '  kernel TCP memory (both ends) %10d %10d   %6s KiB\n' \
    "$b_tcp" "$M_TCP" "$tcp_per"
printf '  %d connections: RssAnon + zone = %s KiB per connection' \
    "$connected" "$total_per"
printf ' (target < %d KiB)\n\n' "$TARGET_KIB"

room_rounds

fanout=$(grep '^FANOUT' "$prefix"/room.out || true)


# 3. the same number of patients over DOCTORS queues, one doctor calls

spread=""
spread_connected=0

if [ "$DOCTORS" -gt 0 ]; then
    # q00's share is the largest when PATIENTS is not a multiple
    qcaller=${qdoctors%% *}

    # shellcheck disable=SC2086
    python3 "$repo"/bench/room/setup.py "$port" spread "$PATIENTS" \
        $qdoctors > "$prefix"/spread-patients.txt
    python3 "$repo"/bench/room/setup.py "$port" login "$PASSWORD" \
        "$qcaller" > "$prefix"/spread-doctor.txt

    workers_idle

    printf '\n%s patients over %d doctors (%s each), all connected;' \
        "$PATIENTS" "$DOCTORS" "$((PATIENTS / DOCTORS))"
    printf ' %s calls\n' "$qcaller"

    room_start spread "$prefix"/spread-patients.txt \
        "$(cat "$prefix"/spread-doctor.txt)"
    wait_for READY 900

    spread_connected=$(awk '$1 == "READY" {print $2}' "$out")
    grep -v -e '^READY' "$out"
    echo

    room_rounds

    spread=$(grep '^FANOUT' "$prefix"/spread.out || true)
fi


# 4. signaling between workers, the same-worker relay as the baseline

echo
$pin_client "$prefix"/roomload signal -p "$port" -u /ws \
    -f "$prefix"/pairs.txt -W "$w0,$w1" -d "$DURATION" -w "$WINDOW" \
    -r "$RATE" -s "$SIZE" -k 2 > "$prefix"/signal.out 2>&1 || true

grep -v '^SIGNAL' "$prefix"/signal.out

sig() {
    sed -n "s/^SIGNAL $1 .*\\b$2=\\([0-9.]*\\).*/\\1/p" "$prefix"/signal.out
}

if ! grep -q '^SIGNAL cross' "$prefix"/signal.out; then
    echo "room.sh: the signaling run failed:" >&2
    cat "$prefix"/signal.out >&2
    exit 1
fi

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'
}

printf '\nsignaling, %d calls of each kind, %d-byte padding;' "$((CALLS / 2))" \
    "$SIZE"
printf ' paced: %d msg/s; load: %d in flight per side\n' "$RATE" "$WINDOW"
printf '%-22s %10s %10s %10s\n' "" "across" "one worker" "ratio"
for f in paced_n paced_p50_ms paced_p99_ms paced_p999_ms paced_max_ms \
         load_n load_rate load_p50_ms load_p99_ms worker_us_per_msg \
         workers_cpu_pct client_cpu_pct others_cpu_pct
do
    printf '%-22s %10s %10s %10s\n' "$f" "$(sig cross $f)" "$(sig same $f)" \
        "$(ratio "$(sig cross $f)" "$(sig same $f)")"
done

echo
echo "SUMMARY"
echo "  memory per waiting patient: $total_per KiB (workers' private RSS" \
     "$anon_per + zone $zone_per; VmRSS $rss_per) for $connected" \
     "connections (target < $TARGET_KIB KiB)"
# fan FIELD [LINE]: a field of a FANOUT line (the one-queue run's)
fan() {
    sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<< "${2-$fanout}"
}

# 10000 -> 10,000
thousands() {
    sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<< "$1"
}

echo "  fan-out to $(fan patients) waiting patients: all have their new" \
     "position $(fan last_median_ms) ms after call_next (median of" \
     "$ROUNDS rounds, worst $(fan last_worst_ms) ms; the median patient" \
     "$(fan p50_median_ms) ms); the doctor_busy update of the ring" \
     "reached all in $(fan busy_last_median_ms) ms"

if [ -n "$spread" ]; then
    echo "  fan-out with $spread_connected connected over $DOCTORS doctors:" \
         "$(fan patients "$spread") waiting patients of $qcaller have" \
         "their new position $(fan last_median_ms "$spread") ms after" \
         "call_next (median of $ROUNDS rounds, worst" \
         "$(fan last_worst_ms "$spread") ms; target $TARGET_FANOUT_MS ms);" \
         "the $(fan others "$spread") patients of the other doctors got" \
         "$(fan others_msgs "$spread") messages in the rounds" \
         "($(fan others_queue_msgs "$spread") queue)"
fi
echo "  signaling across workers: $(sig cross load_rate) msg/s" \
     "($(ratio "$(sig cross load_rate)" "$(sig same load_rate)") of one" \
     "worker's $(sig same load_rate)); p99 $(sig cross paced_p99_ms) ms" \
     "at $RATE msg/s (one worker: $(sig same paced_p99_ms) ms)," \
     "$(sig cross load_p99_ms) ms at full load (target p99 <" \
     "$TARGET_P99_MS ms)"

# the two fan-outs side by side; p50 and max over the rounds of the time
# until the last of the doctor's other waiting patients had their new
# position
printf '\nfan-out: call_next until all the doctor'"'"'s other waiting'
printf ' patients have their new position, %d rounds\n' "$ROUNDS"
printf '  %-36s %8s %9s %9s %9s %9s\n' "" waiting "p50, ms" "max, ms" \
    target "others got"
printf '  %-36s %8s %9s %9s %9s %9s\n' \
    "$(thousands "$connected") in one queue" "$(fan patients)" \
    "$(fan last_median_ms)" "$(fan last_worst_ms)" - -
if [ -n "$spread" ]; then
    label="$(thousands "$spread_connected") connected,"
    label="$label $((PATIENTS / DOCTORS)) per doctor"
    printf '  %-36s %8s %9s %9s %9s %9s\n' "$label" \
        "$(fan patients "$spread")" "$(fan last_median_ms "$spread")" \
        "$(fan last_worst_ms "$spread")" "< $TARGET_FANOUT_MS ms" \
        "$(fan others_msgs "$spread") msgs"
fi

if [ -n "$SUBSCRIBERS" ]; then
    beside_nchan
fi

disturbed=$( (sig cross others_cpu_pct; sig same others_cpu_pct
              sed -n "s/.*other processes' \([0-9]*\)%.*/\1/p" \
                  "$prefix"/room.out "$prefix"/spread.out 2>/dev/null) \
            | sort -n | tail -1)

if [ "${disturbed:-0}" -gt 10 ]; then
    echo "  WARNING: other processes took up to $disturbed% of a core during" \
         "the measurements: the delays are overstated and the rates" \
         "understated; worker_us_per_msg less so"
fi

status=0

if grep -E '\[(alert|crit|emerg)\]' "$prefix"/logs/error.log \
       "$prefix"/beside-*/logs/error.log 2>/dev/null >&2
then
    echo "the error log has the problems above" >&2
    status=1
fi

if [ "$connected" -lt "$PATIENTS" ]; then
    echo "INVALID: only $connected of $PATIENTS patients were connected" >&2
    status=1
fi

if [ "$DOCTORS" -gt 0 ] && [ "$spread_connected" -lt "$PATIENTS" ]; then
    echo "INVALID: only $spread_connected of $PATIENTS patients over" \
         "$DOCTORS doctors were connected" >&2
    status=1
fi

if [ -n "$spread" ] && [ "$(fan others_msgs "$spread")" != 0 ]; then
    echo "FAIL: a call of $qcaller sent messages to patients of other" \
         "doctors" >&2
    status=1
fi

exit $status
