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
# figures of such a run are low; PERF=dwarf: see bench/lib/wrk.sh),
# VERBOSE=1 shows wrk's output.  The runs and the table are
# bench/lib/wrk.sh's, shared with record.sh.

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

SLOT_MINUTES=5
SLOTS_PER_DAY=$((24 * 60 / SLOT_MINUTES))
OFFICE=10

bench_require wrk perl curl /usr/bin/time

nginx_prefix bench

cleanup() {
    bench_cleanup
    nginx_stop "$nginx_master"
    nginx_remove_prefix
}

trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(free_port)

bench_pin

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

tomorrow=$(date -d tomorrow +%F)
days=$(for i in $(seq 1 "$DAYS"); do date -d "+$i day" +%Y%m%d; done \
       | paste -sd, -)
book_args=("$DOCTORS" "$SLOTS_PER_DAY" "$SLOT_MINUTES" "$days" "$THREADS")



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

    fsyncs_start

    bench "POST appointments" -s "$repo"/bench/lib/book.lua "$base" \
        -- /api/v1/appointments "${book_args[@]}" count "start=$sent"
    best post

    fsyncs_stop

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


busy=$(curl -s "$booked_url" | grep -o '"busy"' | wc -l)
office_bytes=$(curl -s "$office_url" | wc -c)
day_bytes=$(curl -s "$day_url" | wc -c)

table_head

table_line ok     "return 200 (GET)"
table_line okpost "return 200 (POST)"
table_line office "GET slots, office day"  "(target >= 50%)"
table_line day    "GET slots, 24h day"     "(target >= 50%)"
table_line post   "POST appointments"      "(target >= 20%)"
table_line full   "GET slots, 24h booked"

table_legend
cat <<EOF
  GET slots: office day o05 tomorrow, 24 slots, $office_bytes bytes;
  24h day $day_doctor tomorrow, 288 slots, $day_bytes bytes; booked: d000
  tomorrow, $busy of 288 busy, $booked appointments in the zone.
  POST appointments: fsync on; $booked answered 201, ${B_NON2XX[post]} \
non-2xx; vs return 200 (POST): $(pct "${B_RPS[post]}" "${B_RPS[okpost]}")%
EOF

table_warnings "$journal_new" ok okpost office day post full

echo "  statuses: $post_status"
[ -n "$post_error" ] && echo "  first answer other than 201: $post_error"

table_perf

status=0

table_invalid ok okpost office day full || status=1

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
