#!/usr/bin/env bash
# Several nodes on one Redis (teleclinic_redis, teleclinic_node), in one
# run:
#
# 1. Booking: POST /api/v1/appointments (fsync on), wrk as in booking.sh
#    (bench/lib/wrk.sh, bench/lib/book.lua: each request a distinct free
#    slot), on one nginx with one worker: the journal alone, then the
#    same conf with the Redis mirror on (a redis-server started here on a
#    free port, --appendonly yes --appendfsync everysec; then, by CONFIG
#    SET, appendfsync always).  With the mirror a booking first claims
#    its slot in Redis (SET NX) and its answer waits for the XADD's reply
#    after the local fdatasync.  Each run goes on with the slots after
#    the last one's.  The ratio mirror / journal.
#    Then the mirror's snapshot of the zone those runs filled: how long
#    worker 0 holds the zone's lock while it encodes it.
# 2. Fan-out between nodes (bench/lib/nodes.pl, the tests' harness: two
#    nodes of 2 workers each on another redis-server): a booking on node
#    A until node B answers its GET /api/v1/appointments/{id}; and
#    call_next by a doctor's console on B, the room's node, until each
#    other waiting patient has its new position: PATIENTS (60) waiting,
#    all but ON_ROOM (10) of them on A (relayed over Pub/Sub); the same
#    on one node without Redis (between its 2 workers).  Then the same
#    with bench/room/roomload.c (C, epoll) as the client: the other
#    doctor's C_PATIENTS (250) patients, 4 in 5 on the node that is not
#    the room's (relayed), against one node.
# 3. Failover (nodes.pl): A killed (SIGKILL, master and workers) under
#    its relayed patients, who reconnect to B at once; A started again
#    (empty: it loads the stream); its patients relayed to B again, B
#    killed: until A has seen B leave (heartbeat 1 s, alive 3 s) and
#    closed them (1012), and until, reconnecting to A, they are welcomed
#    there with their position.
#
# nginx and redis-server of part 1 run on CPU 0 and wrk on CPU 1 (two
# CPUs), at nice NICE (-10; 0: as is); part 2 and 3 are not pinned.
#
# Environment: DURATION (10s), CONNS (200), THREADS (1), ROUNDS (1; more:
# each line the best of that many), DOCTORS (100), DAYS (59), ZONE
# (1024m), NICE (-10), BOOKINGS (200), PATIENTS (60), ON_ROOM (10),
# CALL_ROUNDS (5), C_PATIENTS (250), NGINX, TELECLINIC_MODULE,
# BENCH_TMPDIR (on a real disk: the journals and Redis's appendonly file
# go there), KEEP=1, VERBOSE=1, PERF=1 (see bench/lib/wrk.sh).

set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo"/bench/lib/nginx.sh
. "$repo"/bench/lib/wrk.sh

DURATION=${DURATION:-10s}
CONNS=${CONNS:-200}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-1}
DOCTORS=${DOCTORS:-100}
DAYS=${DAYS:-59}
ZONE=${ZONE:-1024m}
NICE=${NICE:--10}
BOOKINGS=${BOOKINGS:-200}
PATIENTS=${PATIENTS:-60}
ON_ROOM=${ON_ROOM:-10}
CALL_ROUNDS=${CALL_ROUNDS:-5}
C_PATIENTS=${C_PATIENTS:-250}

SLOT_MINUTES=5
SLOTS_PER_DAY=$((24 * 60 / SLOT_MINUTES))
OFFICE=10
REDIS=/usr/bin/redis-server

bench_require wrk perl curl redis-cli /usr/bin/time "$REDIS"

nginx_prefix nodes

redis_pid=""
client=""

cleanup() {
    bench_cleanup

    # nodes.pl stops its nodes and its redis-server from its END blocks
    if [ -n "$client" ] && kill -0 "$client" 2>/dev/null; then
        kill -TERM "$client" 2>/dev/null || true
        wait "$client" 2>/dev/null || true
    fi

    nginx_stop "$nginx_master"

    if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
        kill -TERM "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi

    nginx_remove_prefix
}

trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(free_port)
redis_port=$(free_port)

bench_pin

perl "$repo"/bench/lib/directory.pl "$DOCTORS" "$OFFICE" \
    > "$prefix"/directory.json

mkdir -p "$prefix"/redis

# shellcheck disable=SC2086
$pin_nginx "$REDIS" --port "$redis_port" --bind 127.0.0.1 --save '' \
    --appendonly yes --appendfsync everysec --dir "$prefix"/redis \
    --logfile "$prefix"/logs/redis.log --daemonize no &
redis_pid=$!

rcli() {
    redis-cli -p "$redis_port" "$@"
}

for _ in $(seq 1 100); do
    [ "$(rcli ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
done

# node_conf JOURNAL [MIRROR DIRECTIVES]: the conf of booking.sh's POST
node_conf() {
    nginx_write_conf 1 4096 <<EOF
    teleclinic_zone bench $ZONE;
    teleclinic_journal $prefix/state/$1;
    teleclinic_directory $prefix/directory.json;
    teleclinic_token_secret bench-token-secret-0123456789;
    teleclinic_admin_key bench-admin-key-0123456789;
    # both sealed: the mirror sends the journal's lines, which need a key
    teleclinic_data_key_file $repo/conf/data.key;
    ${2:-}

    server {
        listen 127.0.0.1:$port;

        location /api/v1/ {
            teleclinic_api;
        }
    }
EOF
}

base=http://127.0.0.1:$port

# log_wait TEXT SECONDS: until the error log has TEXT, or SECONDS passed
log_wait() {
    local i

    for i in $(seq 1 $(($2 * 10))); do
        grep -q "$1" "$prefix"/logs/error.log && return 0
        sleep 0.1
    done

    return 1
}

node_up() {
    # shellcheck disable=SC2086
    nginx_start $pin_nginx
    nginx_wait_up "$base/api/v1/doctors"
    worker=$(nginx_workers "$nginx_master" | awk '{print $1}')
}

days=$(for i in $(seq 1 "$DAYS"); do date -d "+$i day" +%Y%m%d; done \
       | paste -sd, -)
book_args=("$DOCTORS" "$SLOTS_PER_DAY" "$SLOT_MINUTES" "$days" "$THREADS")

echo "setup: nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'), 1 worker," \
     "$setup_cpus, redis-server with nginx;" \
     "$("$REDIS" --version | awk '{print $3}');" \
     "wrk -t$THREADS -c$CONNS -d$DURATION keepalive, $ROUNDS round(s);" \
     "journal fsync=on on" \
     "$(df -T "$prefix" | awk 'NR == 2 {print $2 " " $7}'); zone $ZONE"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

sent=0
booked=0
declare -A status_of

# post TEST NAME: one booking run on the running node
post() {
    local n

    fsyncs_start
    bench "$2" -s "$repo"/bench/lib/book.lua "$base" \
        -- /api/v1/appointments "${book_args[@]}" count "start=$sent"
    best "$1"
    fsyncs_stop

    n=$(sed -n 's/.*slots=\([0-9]*\).*/\1/p' <<< "$R_STATUS")
    sent=${n:-$sent}
    status_of[$1]+="${status_of[$1]:+; }$R_STATUS"
    n=$(sed -n 's/.*\b201=\([0-9]*\).*/\1/p' <<< "$R_STATUS")
    booked=$(( booked + ${n:-0} ))
}

# warm TEST: a 1 s booking run first, its figures left out
warm() {
    DURATION=1s post "warm-$1" warm-up
}

for _ in $(seq 1 "$ROUNDS"); do
    node_conf journal-single
    node_up
    warm single
    post single "POST, journal"
    nginx_stop "$nginx_master"
    nginx_master=""

    node_conf journal-mirror "teleclinic_redis 127.0.0.1:$redis_port;
    teleclinic_node n1;"
    node_up

    # the worker connects to Redis: until a booking is not a 503
    log_wait 'redis "main": connected' 5 || true

    rcli config set appendfsync everysec >/dev/null
    warm everysec
    post everysec "POST, mirror everysec"
    rcli config set appendfsync always >/dev/null
    post always "POST, mirror always"
    nginx_stop "$nginx_master"
    nginx_master=""
done

stream_len=$(rcli xlen 'teleclinic:{bench}:log')

# The mirror's snapshot in Redis of the zone those runs filled: the time
# worker 0 holds the zone's lock to copy its events (every snapshot=, 10m
# by default, which no run above reached; here 1 s after a start on the
# same journal), from its log line.
node_conf journal-mirror "teleclinic_redis 127.0.0.1:$redis_port snapshot=1s;
    teleclinic_node n1;"
node_up
log_wait 'mirror: snapshot of' 30 || true

snap=$(grep -o 'mirror: snapshot of .*' "$prefix"/logs/error.log | head -1)
snap_records=$(sed -n 's/.*snapshot of \([0-9]*\) records.*/\1/p' <<< "$snap")
snap_bytes=$(sed -n 's/.* \([0-9]*\) bytes.*/\1/p' <<< "$snap")
snap_ms=$(sed -n 's/.*locked for \([0-9]*\) ms.*/\1/p' <<< "$snap")
nginx_stop "$nginx_master"
nginx_master=""

# the cross-node parts

echo "parts 2 and 3: 2 nodes x 2 workers on one redis-server" \
     "(appendfsync everysec), not pinned; $PATIENTS patients, $ON_ROOM of" \
     "them on the room's node; $CALL_ROUNDS rounds of call_next" >&2

cc -O2 -Wall -o "$prefix"/roomload "$repo"/bench/room/roomload.c -lcrypto

perl "$repo"/bench/lib/nodes.pl "$BOOKINGS" "$PATIENTS" "$ON_ROOM" \
    "$CALL_ROUNDS" "$prefix"/roomload "$C_PATIENTS" \
    > "$prefix"/nodes.out 2> "$prefix"/nodes.err &
client=$!

if ! wait "$client"; then
    client=""
    echo "$bench_name: nodes.pl failed:" >&2
    tail -20 "$prefix"/nodes.err >&2
    exit 1
fi

client=""

# field NAME KEY: from nodes.pl's line NAME
field() {
    awk -v n="$1" -v k="$2" '$1 == n {
        for (i = 2; i <= NF; i++) {
            split($i, kv, "=")
            if (kv[1] == k) print kv[2]
        }
    }' "$prefix"/nodes.out
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'
}

echo
echo "1. booking, 1 worker, fsync on"
table_head
table_line single   "POST, journal"          "" single
table_line everysec "POST, mirror everysec"  "" single
table_line always   "POST, mirror always"    "" single
echo
echo "  mirror / journal: req/s everysec $(ratio "${B_RPS[everysec]}" \
"${B_RPS[single]}"), always $(ratio "${B_RPS[always]}" "${B_RPS[single]}");" \
     "us/req everysec $(ratio "${B_US[everysec]}" "${B_US[single]}")," \
     "always $(ratio "${B_US[always]}" "${B_US[single]}")"
echo "  (the % columns: of the journal alone; us/req: the worker's CPU per" \
     "booking, fsync threads included; redis-server's is not in it)"
echo "  stream entries: $stream_len"
table_warnings "$booked" single everysec always
for t in single everysec always; do
    echo "  statuses $t: ${status_of[$t]}"
done
if [ -n "$snap_ms" ]; then
    echo "  snapshot in Redis of that zone: $snap_records records," \
         "$(awk -v b="$snap_bytes" 'BEGIN {printf "%.1f", b / 1048576}') MiB;" \
         "the zone locked for $snap_ms ms" \
         "($(awk -v m="$snap_ms" -v n="$snap_records" \
             'BEGIN {printf "%.2f", (n > 0) ? m * 1000 / n : 0}') us a record)"
else
    echo "  snapshot in Redis: no log line of it" >&2
fi

echo
echo "2. fan-out                                             p50 ms   p99 ms   max ms    n"
printf '%-52s %8s %8s %8s %5s\n' \
    "booking on A until B answers it" \
    "$(field booking_a_to_b p50)" "$(field booking_a_to_b p99)" \
    "$(field booking_a_to_b max)" "$(field booking_a_to_b n)"
for k in nodes one; do
    if [ $k = nodes ]; then w="2 nodes (relayed)"; else w="1 node, 2 workers"; fi
    printf '%-52s %8s %8s %8s %5s\n' \
        "call_next until each moved up, $w" \
        "$(field callnext_${k}_each p50)" "$(field callnext_${k}_each p99)" \
        "$(field callnext_${k}_each max)" "$(field callnext_${k}_each n)"
    printf '%-52s %8s %8s %8s %5s\n' \
        "call_next until the last moved up, $w" \
        "$(field callnext_${k}_last p50)" "$(field callnext_${k}_last p99)" \
        "$(field callnext_${k}_last max)" "$(field callnext_${k}_last n)"
done
for k in nodes one; do
    if [ $k = nodes ]; then w="2 nodes, C client"; else w="1 node, C client"; fi
    printf '%-52s %8s %8s %8s %5s\n' \
        "call_next until each moved up, $w" \
        "$(field callnext_c_$k p50)" "-" "-" "$(field callnext_c_$k patients)"
    printf '%-52s %8s %8s %8s %5s\n' \
        "call_next until the last moved up, $w" \
        "$(field callnext_c_$k last)" "-" "$(field callnext_c_$k last_worst)" \
        "$(field callnext_c_$k patients)"
done
echo "  nodes / one node: each p50 $(ratio "$(field callnext_nodes_each p50)" \
"$(field callnext_one_each p50)"), last p50 $(ratio \
"$(field callnext_nodes_last p50)" "$(field callnext_one_last p50)");" \
     "B polled back to back: $(field booking_polls polls) polls of" \
     "$(field booking_polls n) found nothing yet"
echo "  roomload (C): nodes / one node: each p50 $(ratio \
"$(field callnext_c_nodes p50)" "$(field callnext_c_one p50)"), last p50" \
     "$(ratio "$(field callnext_c_nodes last)" "$(field callnext_c_one last)")" \
     "(4 in 5 patients relayed; p50: the median over the rounds of each" \
     "round's median patient; last: of each round's last, max its worst)"

echo
echo "3. failover, ms from the kill                 closed  1st welcome  last welcome  last position   n  retries"
fo() {
    printf '%-44s %7s %12s %13s %14s %4s %7s\n' "$1" "$2" \
        "$(field "$3" first_welcome)" "$(field "$3" last_welcome)" \
        "$(field "$3" last_position)" "$(field "$3" n)" "$(field "$3" errors)"
}
fo "no kill: reconnect to B (the client's cost)" "-" reconnect_alive_to_b
fo "kill -9 A (relaying), reconnect to B" "$(field kill_a_closed ms)" \
    kill_a_to_b
fo "kill -9 B (room's), A closes, reconnect to A" \
    "$(field kill_b_closed first)-$(field kill_b_closed last)" kill_b_to_a
echo "  close codes from A after B's death: $(field kill_b_closed codes)"

status=0

table_invalid single everysec always || status=1

# the harness's checks of the nodes' logs when nodes.pl stopped them
if grep -A5 '^not ok' "$prefix"/nodes.err >&2; then
    echo "nodes.pl: a node's stop found the problems above" >&2
    status=1
fi

if grep -E '\[(alert|crit|emerg)\]' "$prefix"/logs/error.log >&2; then
    echo "the error log has the problems above" >&2
    status=1
fi

exit $status
