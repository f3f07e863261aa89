#!/usr/bin/env bash
# Booking API throughput next to nginx's own `return 200`, in one run.
#
# Starts one private nginx (Debian's /usr/sbin/nginx with our module, one
# worker) from a conf in a temp prefix on a free port, with
#   location = /ok    { return 200 "ok\n"; }    the reference
#   location /api/v1/ { teleclinic_api; }
# a generated directory (bench/lib/directory.pl) and the journal with its
# default durable settings (fsync=on, group commit on the default thread
# pool).  Then wrk, keepalive, one run per line of the table:
#
#   return 200 (GET)       GET /ok
#   return 200 (POST)      POST /ok with the bodies of the bookings
#   GET slots, office day  GET doctors/o05/slots?date=tomorrow (24 slots)
#   GET slots, 24h day     GET doctors/d050/slots?date=tomorrow (288 slots;
#                          the middle one of DOCTORS)
#   POST appointments      each request books a distinct free slot
#                          (bench/lib/book.lua), answered after fdatasync
#   GET slots, 24h booked  a 288-slot day after the bookings
#
# Percentages are of `return 200 (GET)`.  With two or more CPUs nginx
# (master, worker, thread pool) is pinned to CPU 0 and wrk to CPU 1.  The
# table shows the worker's CPU time per request (the figure least moved by
# other load on the machine), how busy the worker and wrk were (who was the
# limit) and how much of each core others took (then the req/s are low).
#
# Environment: DURATION (10s), CONNS (200: with fewer, the POST run is
# bound by fsync latency rather than by nginx, see README), THREADS (wrk
# -t, 1), ROUNDS (1; with more, each line is the best of that many runs), DOCTORS
# (round-the-clock doctors, 100), DAYS (days booked from tomorrow, 59,
# within the 60-day horizon), ZONE (1024m), NGINX, TELECLINIC_MODULE,
# BENCH_TMPDIR (where the prefix and so the journal go, /tmp; keep it on a
# real disk: fsync on tmpfs costs nothing), KEEP=1 keeps the prefix,
# PERF=1 records each run with perf and prints the hottest symbols (the
# figures of such a run are low), VERBOSE=1 shows wrk's output.

set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo"/bench/lib/nginx.sh

DURATION=${DURATION:-10s}
CONNS=${CONNS:-200}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-1}
DOCTORS=${DOCTORS:-100}
DAYS=${DAYS:-59}
ZONE=${ZONE:-1024m}

SLOT_MINUTES=5
SLOTS_PER_DAY=$((24 * 60 / SLOT_MINUTES))
OFFICE=10

bench_require wrk perl curl /usr/bin/time

nginx_prefix bench

cleanup() {
    local pid

    for pid in ${perf_rec:-} ${perf_stat:-}; do
        kill -INT "$pid" 2>/dev/null || true
    done

    nginx_stop "$nginx_master"
    nginx_remove_prefix
}

trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(free_port)

ncpu=$(nproc)
if [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null; then
    pin_nginx="taskset -c 0"
    pin_wrk="taskset -c 1"
    setup_cpus="nginx (master, worker, thread pool) on CPU 0, wrk on CPU 1"
else
    pin_nginx=""
    pin_wrk=""
    setup_cpus="no pinning ($ncpu CPU)"
fi

perl "$repo"/bench/lib/directory.pl "$DOCTORS" "$OFFICE" \
    > "$prefix"/directory.json

nginx_write_conf 1 4096 <<EOF
    teleclinic_zone bench $ZONE;
    teleclinic_journal $prefix/state/journal;
    teleclinic_directory $prefix/directory.json;
    teleclinic_token_secret bench-token-secret-0123456789;
    teleclinic_admin_key bench-admin-key-0123456789;

    server {
        listen 127.0.0.1:$port;

        location = /ok {
            return 200 "ok\n";
        }

        location /api/v1/ {
            teleclinic_api;
        }
    }
EOF

nginx_start $pin_nginx

base=http://127.0.0.1:$port

nginx_wait_up "$base/api/v1/doctors"

worker=$(nginx_workers "$nginx_master" | awk '{print $1}')
clk=$(getconf CLK_TCK)

tomorrow=$(date -d tomorrow +%F)
days=$(for i in $(seq 1 "$DAYS"); do date -d "+$i day" +%Y%m%d; done \
       | paste -sd, -)
book_args=("$DOCTORS" "$SLOTS_PER_DAY" "$SLOT_MINUTES" "$days" "$THREADS")


# the worker's CPU time, its threads (the fsync thread pool) included
worker_ticks() {
    awk '{print $14 + $15}' /proc/"$worker"/stat
}

# busy and all jiffies of a CPU
cpu_ticks() {
    awk -v cpu="cpu$1" '$1 == cpu {print $2 + $3 + $4 + $7 + $8 + $9,
                                         $2 + $3 + $4 + $5 + $6 + $7 + $8
                                         + $9}' /proc/stat
}

# a percentage a / b, or 0
pct() {
    awk -v a="$1" -v b="$2" 'BEGIN {printf "%d", (b > 0) ? 100 * a / b : 0}'
}


# bench NAME [wrk arguments]: runs wrk, sets R_* to its figures
bench() {
    local name=$1 out w0 w1 b0 a0 b1 a1 c0 d0 c1 d1 start end secs file
    shift

    perf_rec=""

    file=$prefix/perf.${name//[^a-z0-9]/-}.data

    if [ -n "${PERF:-}" ]; then
        perf record -q -F 2999 -g -p "$worker" -o "$file" \
            >/dev/null 2>&1 &
        perf_rec=$!
        sleep 0.2
    fi

    w0=$(worker_ticks)
    read -r b0 a0 < <(cpu_ticks 0)
    read -r c0 d0 < <(cpu_ticks 1)
    start=$(date +%s.%N)

    out=$($pin_wrk /usr/bin/time -f 'BENCH_TIME %U %S' \
          wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$@" 2>&1) \
        || true

    end=$(date +%s.%N)
    w1=$(worker_ticks)
    read -r b1 a1 < <(cpu_ticks 0)
    read -r c1 d1 < <(cpu_ticks 1)

    if [ -n "$perf_rec" ]; then
        kill -INT "$perf_rec" 2>/dev/null || true
        wait "$perf_rec" 2>/dev/null || true
        perf_rec=""
        echo "== perf: $name" >> "$prefix"/perf.txt
        perf report -i "$file" --no-children --sort dso,symbol -g none \
            --percent-limit 1 --stdio 2>/dev/null \
            | grep -v -e '^#' -e '^$' | head -30 >> "$prefix"/perf.txt
    fi

    [ -n "${VERBOSE:-}" ] && printf '== %s\n%s\n' "$name" "$out" >&2

    R_RPS=$(awk '/^Requests\/sec:/ {printf "%d", $2}' <<< "$out")
    R_REQS=$(awk '/ requests in / {print $1}' <<< "$out")
    R_NON2XX=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<< "$out")
    R_NON2XX=${R_NON2XX:-0}
    R_SOCKERR=$(sed -n 's/.*Socket errors: //p' <<< "$out")
    R_P50=$(awk '$1 == "50%" {print $2}' <<< "$out")
    R_P99=$(awk '$1 == "99%" {print $2}' <<< "$out")
    R_STATUS=$(sed -n 's/^BENCH_STATUS //p' <<< "$out")
    R_FIRST_ERROR=$(sed -n 's/^BENCH_FIRST_ERROR //p' <<< "$out")

    secs=$(awk -v s="$start" -v e="$end" 'BEGIN {print e - s}')

    # CPU: the worker's, wrk's, and what others took of each core
    R_WORKER=$(awk -v t="$((w1 - w0))" -v hz="$clk" -v s="$secs" \
               'BEGIN {printf "%d", 100 * t / hz / s}')
    R_US=$(awk -v t="$((w1 - w0))" -v hz="$clk" -v n="$R_REQS" \
           'BEGIN {printf "%.1f", n ? 1e6 * t / hz / n : 0}')
    R_WRK=$(awk -v s="$secs" '/^BENCH_TIME/ {printf "%d",
                                             100 * ($2 + $3) / s}' <<< "$out")

    if [ -n "$pin_wrk" ]; then
        R_OTHERS="$(( $(pct $((b1 - b0)) $((a1 - a0))) - R_WORKER ))"
        R_OTHERS="$R_OTHERS/$(( $(pct $((c1 - c0)) $((d1 - d0))) - R_WRK ))"
        R_OTHERS=$(sed 's/-[0-9]*/0/g' <<< "$R_OTHERS")
    else
        R_OTHERS="-"
    fi

    if [ -z "$R_RPS" ]; then
        echo "booking.sh: wrk failed for $name:" >&2
        echo "$out" >&2
        exit 1
    fi
}


# best TEST: keeps the last bench's figures in B_<field>[TEST] when its
# req/s are the best of the rounds so far; errors of every round add up
declare -A B_RPS B_US B_WORKER B_WRK B_OTHERS B_P50 B_P99 B_NON2XX \
           B_SOCKERR
best() {
    local t=$1

    if [ -z "${B_RPS[$t]:-}" ] || [ "$R_RPS" -gt "${B_RPS[$t]}" ]; then
        B_RPS[$t]=$R_RPS
        B_US[$t]=$R_US
        B_WORKER[$t]=$R_WORKER
        B_WRK[$t]=$R_WRK
        B_OTHERS[$t]=$R_OTHERS
        B_P50[$t]=$R_P50
        B_P99[$t]=$R_P99
    fi

    B_NON2XX[$t]=$(( ${B_NON2XX[$t]:-0} + R_NON2XX ))
    if [ -n "$R_SOCKERR" ] \
       && [ "$R_SOCKERR" != "connect 0, read 0, write 0, timeout 0" ]
    then
        B_SOCKERR[$t]="${B_SOCKERR[$t]:-}${B_SOCKERR[$t]:+; }$R_SOCKERR"
    fi
}


echo "setup: nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'), 1 worker," \
     "$setup_cpus; wrk -t$THREADS -c$CONNS -d$DURATION keepalive," \
     "$ROUNDS round(s); journal fsync=on (group commit, default thread" \
     "pool) on $(df -T "$prefix" | awk 'NR == 2 {print $2 " " $7}');" \
     "access_log off; zone $ZONE; no notify_url"
echo "directory: $DOCTORS doctors d000.. working 24h in 5-minute slots" \
     "every day, $OFFICE doctors o00.. 08-12 and 13-17 in 20-minute slots;" \
     "bookings over $DAYS days from tomorrow" \
     "($((DOCTORS * SLOTS_PER_DAY * DAYS)) distinct slots)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

journal=$prefix/state/journal

journal_lines() {
    if [ -f "$journal" ]; then wc -l < "$journal"; else echo 0; fi
}

office_url="$base/api/v1/doctors/o05/slots?date=$tomorrow"
day_doctor=$(printf 'd%03d' $((DOCTORS / 2)))
day_url="$base/api/v1/doctors/$day_doctor/slots?date=$tomorrow"
booked_url="$base/api/v1/doctors/d000/slots?date=$tomorrow"

# a short warm-up of each path
DURATION=1s bench warmup "$base/ok"
DURATION=1s bench warmup "$office_url"

sent=0
booked=0
post_status=""
post_error=""
journal_new=0
fsyncs=""

for round in $(seq 1 "$ROUNDS"); do
    bench "return 200 (GET)" "$base/ok"
    best ok

    bench "return 200 (POST)" -s "$repo"/bench/lib/book.lua "$base" \
        -- /ok "${book_args[@]}"
    best okpost

    bench "GET slots office" "$office_url"
    best office

    bench "GET slots 24h" "$day_url"
    best day

    j0=$(journal_lines)

    perf_stat=""
    if [ -z "${PERF:-}" ] \
       && perf stat -e syscalls:sys_enter_fdatasync -p "$worker" -- true \
          >/dev/null 2>&1
    then
        perf stat -x, -e syscalls:sys_enter_fdatasync -p "$worker" \
            -o "$prefix"/fsyncs >/dev/null 2>&1 &
        perf_stat=$!
        sleep 0.2
    fi

    bench "POST appointments" -s "$repo"/bench/lib/book.lua "$base" \
        -- /api/v1/appointments "${book_args[@]}" count "start=$sent"
    best post

    if [ -n "$perf_stat" ]; then
        kill -INT "$perf_stat" 2>/dev/null || true
        wait "$perf_stat" 2>/dev/null || true
        perf_stat=""
        n=$(awk -F, '/fdatasync/ {print $1}' "$prefix"/fsyncs 2>/dev/null \
            || true)
        fsyncs=$(( ${fsyncs:-0} + ${n:-0} ))
    fi

    # requests still in flight when wrk stopped have slots too
    n=$(sed -n 's/.*slots=\([0-9]*\).*/\1/p' <<< "$R_STATUS")
    sent=${n:-$sent}
    n=$(sed -n 's/.*\b201=\([0-9]*\).*/\1/p' <<< "$R_STATUS")
    booked=$(( booked + ${n:-0} ))
    post_status+="${post_status:+; }$R_STATUS"
    post_error=${post_error:-$R_FIRST_ERROR}
    journal_new=$(( journal_new + $(journal_lines) - j0 ))

    bench "GET slots 24h booked" "$booked_url"
    best full
done


ref=${B_RPS[ok]}
busy=$(curl -s "$booked_url" | grep -o '"busy"' | wc -l)
office_bytes=$(curl -s "$office_url" | wc -c)
day_bytes=$(curl -s "$day_url" | wc -c)

printf '\n%-24s %7s %5s %-16s %7s %5s %6s %4s %7s %8s %8s\n' \
    "" "req/s" "" "" "us/req" "byCPU" "worker" "wrk" "others" "p50" "p99"

# line TEST NAME TARGET: one line of the table
line() {
    local t=$1 of="" cpu=""

    if [ "$t" != ok ]; then
        of="$(pct "${B_RPS[$t]}" "$ref")%"
        cpu="$(awk -v a="${B_US[ok]}" -v b="${B_US[$t]}" \
               'BEGIN {printf "%d", (b > 0) ? 100 * a / b : 0}')%"
    fi

    printf '%-24s %7s %5s %-16s %7s %5s %5s%% %3s%% %6s%% %8s %8s\n' \
        "$2" "${B_RPS[$t]}" "$of" "$3" "${B_US[$t]}" "$cpu" \
        "${B_WORKER[$t]}" "${B_WRK[$t]}" "${B_OTHERS[$t]}" "${B_P50[$t]}" \
        "${B_P99[$t]}"
}

line ok     "return 200 (GET)"       ""
line okpost "return 200 (POST)"      ""
line office "GET slots, office day"  "(target >= 50%)"
line day    "GET slots, 24h day"     "(target >= 50%)"
line post   "POST appointments"      "(target >= 20%)"
line full   "GET slots, 24h booked"  ""

cat <<EOF

  req/s and its % of return 200 (GET): what the targets are about.
  us/req: the worker's CPU time (its fsync threads included) per request;
  byCPU: return 200's us/req as a % of it, the req/s ratio to expect when
  nginx's core is the only limit (other load moves it much less).
  worker, wrk: how busy each was; others: what other processes took of
  nginx's core / wrk's core (above a few % the req/s are understated).
  GET slots: office day o05 tomorrow, 24 slots, $office_bytes bytes;
  24h day $day_doctor tomorrow, 288 slots, $day_bytes bytes; booked: d000
  tomorrow, $busy of 288 busy, $booked appointments in the zone.
  POST appointments: fsync on; $booked answered 201, ${B_NON2XX[post]} \
non-2xx; vs return 200 (POST): $(pct "${B_RPS[post]}" "${B_RPS[okpost]}")%
EOF

disturbed=$(for t in ok okpost office day post full; do
                 tr '/' '\n' <<< "${B_OTHERS[$t]}"
             done | sort -n | tail -1)

if [ "$disturbed" != "-" ] && [ "${disturbed:-0}" -gt 10 ]; then
    echo "  WARNING: other processes took up to $disturbed% of a core during" \
         "the runs: the req/s (and the ratios) are unreliable; us/req less so"
fi

if [ -n "$fsyncs" ] && [ "$fsyncs" -gt 0 ]; then
    echo "  $fsyncs fdatasync() calls, $((journal_new / fsyncs)) records" \
         "each on average (group commit)"
fi

echo "  statuses: $post_status"
[ -n "$post_error" ] && echo "  first answer other than 201: $post_error"

if [ -n "${PERF:-}" ]; then
    echo
    cat "$prefix"/perf.txt
    echo "perf data: $prefix/perf.*.data (KEEP=1 keeps them)"
fi

status=0

for t in ok okpost office day full; do
    if [ "${B_NON2XX[$t]}" != 0 ] || [ -n "${B_SOCKERR[$t]:-}" ]; then
        echo "INVALID: $t: ${B_NON2XX[$t]} non-2xx answers," \
             "socket errors: ${B_SOCKERR[$t]:-none}" >&2
        status=1
    fi
done

if [ "${B_NON2XX[post]}" != 0 ] || [ -n "${B_SOCKERR[post]:-}" ]; then
    echo "INVALID: POST appointments had answers other than 201 (slots" \
         "taken, zone full, errors) or socket errors" \
         "(${B_SOCKERR[post]:-none}): its figure does not count" >&2
    status=1
fi

# each 201 is a record in the journal; requests in flight when wrk
# stopped were booked without being counted
if [ "$journal_new" -lt "$booked" ] \
   || [ "$journal_new" -gt "$((booked + ROUNDS * CONNS))" ]
then
    echo "INVALID: $booked bookings answered 201 but the journal has" \
         "$journal_new new records" >&2
    status=1
fi

if grep -E '\[(alert|crit|emerg)\]' "$prefix"/logs/error.log >&2; then
    echo "the error log has the problems above" >&2
    status=1
fi

exit $status
