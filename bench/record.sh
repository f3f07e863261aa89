#!/usr/bin/env bash
# The visit record's API next to nginx's own `return 200`, in one run.
#
# Starts one private nginx (Debian's /usr/sbin/nginx with our module, one
# worker) from a conf in a temp prefix on a free port, with
#   location = /ok    { return 200 "ok\n"; }    the reference
#   location /api/v1/ { teleclinic_api; }
# one round-the-clock doctor `rec` with a password hash
# (bin/teleclinic-passwd), the demo formulary and data key (records sealed
# at rest, as in production) and the journal with its default durable
# settings (fsync=on, group commit on the default thread pool).  The setup
# books APPTS + 1 appointments of `rec` and logs the doctor in through
# POST /api/v1/doctor/login; one appointment gets a note and five items
# (two prescriptions, an order, two follow-ups).  Then wrk, keepalive, one
# run per line of the table:
#
#   return 200 (GET)       GET /ok
#   return 200 (PUT)       PUT /ok with the notes and the doctor's token
#   GET record             GET appointments/{id}/record of the one with the
#                          note and items, with the doctor's token
#   PUT record/note        PUT appointments/{id}/record/note, round-robin
#                          over the other appointments (bench/lib/note.lua),
#                          each answered after fdatasync
#
# Percentages are of `return 200 (GET)`.  With two or more CPUs nginx
# (master, worker, thread pool, the login thread) is pinned to CPU 0 and
# wrk to CPU 1.  The table shows the worker's CPU time per request (the
# figure least moved by other load on the machine), how busy the worker and
# wrk were (who was the limit) and how much of each core others took (then
# the req/s are low).
#
# Snapshot upload (MB/s) is not measured yet (see bench/README.md).
#
# Environment: DURATION (10s), CONNS (200), THREADS (wrk -t, 1), ROUNDS
# (1; with more, each line is the best of that many runs), APPTS
# (appointments whose notes the PUTs write, 1000), KEY (1: records sealed
# with conf/data.key; 0: no teleclinic_data_key_file), ZONE (256m), NICE
# (nginx's and wrk's nice value, -10 as in turn.sh; 0: as is), NGINX,
# TELECLINIC_MODULE, BENCH_TMPDIR (where the prefix and so the journal go,
# /tmp; keep it on a real disk: fsync on tmpfs costs nothing), KEEP=1 keeps
# the prefix, PERF=1 records each run with perf and prints the hottest
# symbols (the figures of such a run are low; PERF=dwarf records DWARF call
# graphs, which see through the libraries' missing frame pointers: read
# them with KEEP=1 and perf report --children), VERBOSE=1 shows wrk's
# output.

set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo"/bench/lib/nginx.sh

DURATION=${DURATION:-10s}
CONNS=${CONNS:-200}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-1}
APPTS=${APPTS:-1000}
KEY=${KEY:-1}
ZONE=${ZONE:-256m}
NICE=${NICE:--10}

PASSWORD=bench-doctor-password

bench_require wrk python3 curl /usr/bin/time

nginx_prefix record

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
    pinned=1
    setup_cpus="nginx (master, worker, thread pool) on CPU 0, wrk on CPU 1"
else
    pin_nginx=""
    pin_wrk=""
    pinned=""
    setup_cpus="no pinning ($ncpu CPU)"
fi

# other engineers' test suites share the machine: above their priority the
# two sides lose less of their cores to them (what they still take shows
# in "others")
if [ "$NICE" != 0 ] && nice -n "$NICE" true 2>/dev/null \
   && [ "$(nice -n "$NICE" nice)" = "$NICE" ]
then
    pin_nginx="nice -n $NICE $pin_nginx"
    pin_wrk="nice -n $NICE $pin_wrk"
    setup_cpus="$setup_cpus, both at nice $NICE"
fi

hash=$(echo "$PASSWORD" | python3 "$repo"/bin/teleclinic-passwd)

python3 - "$hash" > "$prefix"/directory.json <<'EOF'
import json
import sys

days = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']

print(json.dumps({
    'departments': [{'id': 'bench', 'name': 'Round the clock'}],
    'doctors': [{'id': 'rec', 'name': 'Dr. Record', 'department': 'bench',
                 'password': sys.argv[1],
                 'schedule': {'slot_minutes': 5,
                              'hours': {d: [['00:00', '24:00']]
                                        for d in days},
                              'days_off': []}}]}))
EOF

key_conf=""
if [ "$KEY" = 1 ]; then
    key_conf="teleclinic_data_key_file $repo/conf/data.key;"
fi

nginx_write_conf 1 4096 <<EOF
    teleclinic_zone bench $ZONE;
    teleclinic_journal $prefix/state/journal;
    teleclinic_directory $prefix/directory.json;
    teleclinic_formulary $repo/conf/formulary.json;
    teleclinic_token_secret bench-token-secret-0123456789;
    teleclinic_admin_key bench-admin-key-0123456789;
    $key_conf

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


# The state, through the API over one keep-alive connection: APPTS + 1
# bookings of `rec` from tomorrow 00:00 on (one fsync each, a few
# seconds), the doctor's login, and the note and items of the first
# appointment.  Writes the ids the PUTs go round (ids), the one read
# (read_id) and the doctor's token (token).
setup_start=$(date +%s.%N)

python3 - "$port" "$APPTS" "$PASSWORD" "$prefix" <<'EOF'
import datetime
import http.client
import json
import sys

port, count, password, prefix = (int(sys.argv[1]), int(sys.argv[2]),
                                 sys.argv[3], sys.argv[4])
conn = http.client.HTTPConnection('127.0.0.1', port, timeout=60)


def request(method, path, body=None, token=None, want=200):
    headers = {'Content-Type': 'application/json'}
    if token:
        headers['Authorization'] = 'Bearer ' + token
    conn.request(method, path, headers=headers,
                 body=None if body is None else json.dumps(body).encode())
    r = conn.getresponse()
    answer = r.read()
    if r.status != want:
        sys.exit('record.sh setup: %s %s: %d %s'
                 % (method, path, r.status, answer[:300]))
    return json.loads(answer)


ids = []
day = datetime.date.today()
minute = 24 * 60
skipped = 0

while len(ids) < count + 1:
    if minute >= 24 * 60:
        day += datetime.timedelta(days=1)
        minute = 0

    slot = 'rec.%s.%02d%02d' % (day.strftime('%Y%m%d'), minute // 60,
                                minute % 60)
    minute += 5

    conn.request('POST', '/api/v1/appointments', headers={
                     'Content-Type': 'application/json'},
                 body=json.dumps({
                     'slot': slot,
                     'patient': {'name': 'Bench Patient %d' % len(ids),
                                 'phone': '+4930%08d' % len(ids)},
                     'reason': 'bench'}).encode())
    r = conn.getresponse()
    answer = r.read()

    if r.status == 201:
        ids.append(json.loads(answer)['id'])
        continue

    # a slot a clock change took away
    skipped += 1
    if skipped > 100:
        sys.exit('record.sh setup: booking %s: %d %s'
                 % (slot, r.status, answer[:300]))

token = request('POST', '/api/v1/doctor/login',
                {'doctor': 'rec', 'password': password})['token']

url = '/api/v1/appointments/%s/record' % ids[0]
request('PUT', url + '/note', {
    'complaint': 'dry cough for two weeks, worse at night',
    'history': 'no smoking; asthma as a child; hay fever in spring',
    'findings': 'audible wheeze when breathing out fast; T 37.9 C',
    'diagnosis': 'acute bronchitis, likely viral',
    'advice': 'rest, fluids; call again if short of breath'}, token)
request('POST', url + '/prescriptions', {
    'drug': 'salbutamol-inhaler', 'dose': '2 puffs',
    'frequency': 'up to 4 x a day when needed', 'days': 14,
    'quantity': 1, 'note': 'shake before use'}, token, 201)
request('POST', url + '/prescriptions', {
    'drug': 'paracetamol-500', 'dose': '1 g',
    'frequency': 'up to 3 x a day when needed', 'days': 5,
    'quantity': 20}, token, 201)
request('POST', url + '/orders', {'exam': 'chest-xray',
                                  'note': 'if no better in a week'},
        token, 201)
request('POST', url + '/followups', {'kind': 'pharmacy',
                                     'note': 'deliver the inhaler'},
        token, 201)
request('POST', url + '/followups', {
    'kind': 'revisit', 'note': 'video visit in one week',
    'due': (datetime.date.today()
            + datetime.timedelta(days=8)).isoformat()}, token, 201)

with open(prefix + '/ids', 'w') as f:
    f.write('\n'.join(ids[1:]) + '\n')
with open(prefix + '/read_id', 'w') as f:
    f.write(ids[0] + '\n')
with open(prefix + '/token', 'w') as f:
    f.write(token + '\n')

print('setup: %d appointments of rec from %s on, %d slots skipped'
      % (len(ids), datetime.date.today() + datetime.timedelta(days=1),
         skipped), file=sys.stderr)
EOF

setup_end=$(date +%s.%N)

token=$(cat "$prefix"/token)
read_id=$(cat "$prefix"/read_id)
read_url="$base/api/v1/appointments/$read_id/record"
auth="Authorization: Bearer $token"
note_args=("$prefix"/ids "$token" "$THREADS")


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

    # lower case first: "GET" and "PUT" would both be "---"
    file=${name,,}
    file=$prefix/perf.${file//[^a-z0-9]/-}.data

    if [ -n "${PERF:-}" ]; then
        if [ "$PERF" = dwarf ]; then
            perf record -q -F 999 --call-graph dwarf -p "$worker" \
                -o "$file" >/dev/null 2>&1 &
        else
            perf record -q -F 2999 -g -p "$worker" -o "$file" \
                >/dev/null 2>&1 &
        fi
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

    if [ -n "$pinned" ]; then
        R_OTHERS="$(( $(pct $((b1 - b0)) $((a1 - a0))) - R_WORKER ))"
        R_OTHERS="$R_OTHERS/$(( $(pct $((c1 - c0)) $((d1 - d0))) - R_WRK ))"
        R_OTHERS=$(sed 's/-[0-9]*/0/g' <<< "$R_OTHERS")
    else
        R_OTHERS="-"
    fi

    if [ -z "$R_RPS" ]; then
        echo "record.sh: wrk failed for $name:" >&2
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


if [ "$KEY" = 1 ]; then
    sealed="records sealed with conf/data.key (AES-256-GCM)"
else
    sealed="no data key"
fi

echo "setup: nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'), 1 worker," \
     "$setup_cpus; wrk -t$THREADS -c$CONNS -d$DURATION keepalive," \
     "$ROUNDS round(s); journal fsync=on (group commit, default thread" \
     "pool) on $(df -T "$prefix" | awk 'NR == 2 {print $2 " " $7}');" \
     "$sealed; access_log off; zone $ZONE"
echo "state: doctor rec (round the clock, 5-minute slots), $((APPTS + 1))" \
     "appointments booked in $(awk -v s="$setup_start" -v e="$setup_end" \
                                'BEGIN {printf "%.1f", e - s}') s," \
     "one login; PUTs over $APPTS of them, GET of the other one"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

journal=$prefix/state/journal

journal_lines() {
    if [ -f "$journal" ]; then wc -l < "$journal"; else echo 0; fi
}

# a short warm-up of each path
DURATION=1s bench warmup "$base/ok"
DURATION=1s bench warmup -H "$auth" "$read_url"

written=0
put_status=""
put_error=""
journal_new=0
fsyncs=""

for round in $(seq 1 "$ROUNDS"); do
    bench "return 200 (GET)" "$base/ok"
    best ok

    bench "return 200 (PUT)" -s "$repo"/bench/lib/note.lua "$base" \
        -- "${note_args[@]}" path=/ok
    best okput

    bench "GET record" -H "$auth" "$read_url"
    best get

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

    bench "PUT record/note" -s "$repo"/bench/lib/note.lua "$base" \
        -- "${note_args[@]}" count
    best put

    if [ -n "$perf_stat" ]; then
        kill -INT "$perf_stat" 2>/dev/null || true
        wait "$perf_stat" 2>/dev/null || true
        perf_stat=""
        n=$(awk -F, '/fdatasync/ {print $1}' "$prefix"/fsyncs 2>/dev/null \
            || true)
        fsyncs=$(( ${fsyncs:-0} + ${n:-0} ))
    fi

    n=$(sed -n 's/.*\b200=\([0-9]*\).*/\1/p' <<< "$R_STATUS")
    written=$(( written + ${n:-0} ))
    put_status+="${put_status:+; }$R_STATUS"
    put_error=${put_error:-$R_FIRST_ERROR}
    journal_new=$(( journal_new + $(journal_lines) - j0 ))
done


ref=${B_RPS[ok]}
read_bytes=$(curl -s -H "$auth" "$read_url" | wc -c)
note_answer=$(curl -s -H "$auth" \
              "$base/api/v1/appointments/$(head -1 "$prefix"/ids)/record" \
              | wc -c)

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
line okput  "return 200 (PUT)"       ""
line get    "GET record"             "(target >= 50%)"
line put    "PUT record/note"        "(target >= 20%)"

cat <<EOF

  req/s and its % of return 200 (GET): what the targets are about.
  us/req: the worker's CPU time (its fsync threads included) per request;
  byCPU: return 200's us/req as a % of it, the req/s ratio to expect when
  nginx's core is the only limit (other load moves it much less).
  worker, wrk: how busy each was; others: what other processes took of
  nginx's core / wrk's core (above a few % the req/s are understated).
  GET record: a note and 5 items (2 prescriptions, an order, 2
  follow-ups), read by its doctor, $read_bytes bytes.
  PUT record/note: a 5-field note of about 600 bytes, fsync on, round-robin
  over $APPTS appointments, answered with the record ($note_answer bytes);
  $written answered 200, ${B_NON2XX[put]} non-2xx; vs return 200 (PUT): \
$(pct "${B_RPS[put]}" "${B_RPS[okput]}")%
EOF

disturbed=$(for t in ok okput get put; do
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

echo "  statuses: $put_status"
[ -n "$put_error" ] && echo "  first answer other than 200: $put_error"

if [ -n "${PERF:-}" ]; then
    echo
    cat "$prefix"/perf.txt
    echo "perf data: $prefix/perf.*.data (KEEP=1 keeps them)"
fi

status=0

for t in ok okput get; do
    if [ "${B_NON2XX[$t]}" != 0 ] || [ -n "${B_SOCKERR[$t]:-}" ]; then
        echo "INVALID: $t: ${B_NON2XX[$t]} non-2xx answers," \
             "socket errors: ${B_SOCKERR[$t]:-none}" >&2
        status=1
    fi
done

if [ "${B_NON2XX[put]}" != 0 ] || [ -n "${B_SOCKERR[put]:-}" ]; then
    echo "INVALID: PUT record/note had answers other than 200 or socket" \
         "errors (${B_SOCKERR[put]:-none}): its figure does not count" >&2
    status=1
fi

# each 200 is a record in the journal; requests in flight when wrk
# stopped were written without being counted
if [ "$journal_new" -lt "$written" ] \
   || [ "$journal_new" -gt "$((written + ROUNDS * CONNS))" ]
then
    echo "INVALID: $written notes answered 200 but the journal has" \
         "$journal_new new records" >&2
    status=1
fi

if grep -E '\[(alert|crit|emerg)\]' "$prefix"/logs/error.log >&2; then
    echo "the error log has the problems above" >&2
    status=1
fi

exit $status
