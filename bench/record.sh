#!/usr/bin/env bash
# The visit record's API next to nginx's own `return 200`, in one run.
#
# Starts one private nginx (Debian's /usr/sbin/nginx with our module, one
# worker) from a conf in a temp prefix on a free port, with
#   location = /ok    { return 200 "ok\n"; }    the reference
#   location /api/v1/ { teleclinic_api; }
#   location /dav/    { dav_methods PUT; }      the uploads' reference
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
#   PUT image (nginx dav)  PUT /dav/<name> of a ~200 KB PNG (image.png), a
#                          new file each (bench/lib/snapshot.lua)
#   POST record/snapshots  the same image to appointments/{id}/record/
#                          snapshots?request=R, each under its own consent
#
# The snapshot runs' consents are a visit's: SNAP_CALLS doctors snapNNN
# each call their one patient (checked in), and over the WebSocket each
# asks SNAP_CONSENTS times and the patient grants it (bench/lib/
# consent.pl); the table's line is then the uploads' req/s, and their
# MB/s follow it, as a % of nginx's dav line rather than of return 200.
#
# Percentages are of `return 200 (GET)`.  With two or more CPUs nginx
# (master, worker, thread pool, the login thread) is pinned to CPU 0 and
# wrk to CPU 1.  The table shows the worker's CPU time per request (the
# figure least moved by other load on the machine), how busy the worker and
# wrk were (who was the limit) and how much of each core others took (then
# the req/s are low).
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
# output; SNAP (1; 0: no snapshot runs), SNAP_CALLS (calls a round, 40),
# SNAP_CONSENTS (consents a call, 199: a record keeps 200), SNAP_CONNS
# (wrk -c of the upload runs, 32), SNAP_DURATION (5s: more uploads than
# SNAP_CALLS * SNAP_CONSENTS make the run INVALID).  The runs and the
# table are bench/lib/wrk.sh's, shared with booking.sh.

set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo"/bench/lib/nginx.sh
. "$repo"/bench/lib/wrk.sh

DURATION=${DURATION:-10s}
CONNS=${CONNS:-200}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-1}
APPTS=${APPTS:-1000}
KEY=${KEY:-1}
ZONE=${ZONE:-256m}
NICE=${NICE:--10}
SNAP=${SNAP:-1}
SNAP_CALLS=${SNAP_CALLS:-40}
SNAP_CONSENTS=${SNAP_CONSENTS:-199}
SNAP_CONNS=${SNAP_CONNS:-32}
SNAP_DURATION=${SNAP_DURATION:-5s}

PASSWORD=bench-doctor-password

bench_require wrk python3 perl curl /usr/bin/time

nginx_prefix record

cleanup() {
    bench_cleanup
    nginx_stop "$nginx_master"
    nginx_remove_prefix
}

trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(free_port)

bench_pin

hash=$(echo "$PASSWORD" | python3 "$repo"/bin/teleclinic-passwd)

# rec, and the doctors of the snapshot runs' calls, one a call:
# snap000, snap001, ... (SNAP_CALLS of them a round)
python3 - "$hash" "$((SNAP ? ROUNDS * SNAP_CALLS : 0))" \
    > "$prefix"/directory.json <<'EOF'
import json
import sys

days = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']
schedule = {'slot_minutes': 5,
            'hours': {d: [['00:00', '24:00']] for d in days},
            'days_off': []}
doctors = [{'id': 'rec', 'name': 'Dr. Record'}]
doctors += [{'id': 'snap%03d' % i, 'name': 'Dr. Snapshot %d' % i}
            for i in range(int(sys.argv[2]))]

print(json.dumps({
    'departments': [{'id': 'bench', 'name': 'Round the clock'}],
    'doctors': [dict(d, department='bench', password=sys.argv[1],
                     schedule=schedule) for d in doctors]}))
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
            # a snapshot's image, as in conf/nginx.conf
            client_max_body_size 2m;
            teleclinic_api;
        }

        # the snapshot runs' consents: a doctor asks for a few in a
        # visit, the bench for SNAP_CONSENTS in seconds
        location = /ws {
            teleclinic_websocket;
            teleclinic_websocket_rate 100000r/s burst=100000;
        }

        # the upload's reference: nginx itself takes the same body into
        # a temp file and renames it into place (no fsync), a new file
        # for each as the API makes
        location /dav/ {
            root $prefix;
            dav_methods PUT;
            client_max_body_size 2m;
        }
    }
EOF

mkdir -p "$prefix"/dav

nginx_start $pin_nginx

base=http://127.0.0.1:$port

nginx_wait_up "$base/api/v1/doctors"

worker=$(nginx_workers "$nginx_master" | awk '{print $1}')


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


# The snapshot runs' state: each snap doctor's login and one appointment
# of theirs in the next slot (about to start: its patient may check in),
# a line "APPOINTMENT PATIENT_TOKEN DOCTOR_TOKEN" per call in calls.<round>;
# and the image, image.png: a real PNG (a noisy 272x256 RGB frame that
# zlib cannot shrink much, about 200 KB), as a camera's still would be.
if [ "$SNAP" = 1 ]; then
    python3 - "$port" "$ROUNDS" "$SNAP_CALLS" "$PASSWORD" "$prefix" <<'EOF'
import datetime
import http.client
import json
import os
import struct
import sys
import zlib

port, rounds, calls, password, prefix = (int(sys.argv[1]), int(sys.argv[2]),
                                         int(sys.argv[3]), sys.argv[4],
                                         sys.argv[5])
conn = http.client.HTTPConnection('127.0.0.1', port, timeout=60)


def post(path, body):
    conn.request('POST', path, headers={'Content-Type': 'application/json'},
                 body=json.dumps(body).encode())
    r = conn.getresponse()
    answer = r.read()
    return r.status, answer


# the first slot that starts at least a minute from now
now = datetime.datetime.now() + datetime.timedelta(minutes=1)
start = now.replace(second=0, microsecond=0) \
        + datetime.timedelta(minutes=5 - now.minute % 5)

for rnd in range(rounds):
    with open('%s/calls.%d' % (prefix, rnd + 1), 'w') as f:
        for i in range(rnd * calls, (rnd + 1) * calls):
            doctor = 'snap%03d' % i

            for k in range(3):
                at = start + datetime.timedelta(minutes=5 * k)
                status, answer = post('/api/v1/appointments', {
                    'slot': '%s.%s' % (doctor, at.strftime('%Y%m%d.%H%M')),
                    'patient': {'name': 'Snapshot Patient %d' % i,
                                'phone': '+4940%08d' % i},
                    'reason': 'bench'})
                if status == 201:
                    break
            else:
                sys.exit('record.sh setup: booking of %s: %d %s'
                         % (doctor, status, answer[:300]))

            appt = json.loads(answer)
            status, answer = post('/api/v1/doctor/login',
                                  {'doctor': doctor, 'password': password})
            if status != 200:
                sys.exit('record.sh setup: login of %s: %d %s'
                         % (doctor, status, answer[:300]))

            f.write('%s %s %s\n' % (appt['id'], appt['token'],
                                    json.loads(answer)['token']))


def chunk(kind, data):
    return (struct.pack('>I', len(data)) + kind + data
            + struct.pack('>I', zlib.crc32(kind + data)))


width, height = 272, 256
noise = os.urandom(width * height * 3)
rows = b''.join(b'\0' + bytes((x // 2 + b // 4) & 0xff for x, b in
                               enumerate(noise[y * width * 3:
                                               (y + 1) * width * 3]))
                for y in range(height))

with open(prefix + '/image.png', 'wb') as f:
    f.write(b'\x89PNG\r\n\x1a\n'
            + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2,
                                         0, 0, 0))
            + chunk(b'IDAT', zlib.compress(rows, 9))
            + chunk(b'IEND', b''))
EOF
fi

token=$(cat "$prefix"/token)
read_id=$(cat "$prefix"/read_id)
read_url="$base/api/v1/appointments/$read_id/record"
auth="Authorization: Bearer $token"
note_args=("$prefix"/ids "$token" "$THREADS")



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
snapped=0
snap_status=""
snap_error=""
snap_over=0

for round in $(seq 1 "$ROUNDS"); do
    bench "return 200 (GET)" "$base/ok"
    best ok

    bench "return 200 (PUT)" -s "$repo"/bench/lib/note.lua "$base" \
        -- "${note_args[@]}" path=/ok
    best okput

    bench "GET record" -H "$auth" "$read_url"
    best get

    j0=$(journal_lines)

    fsyncs_start

    bench "PUT record/note" -s "$repo"/bench/lib/note.lua "$base" \
        -- "${note_args[@]}" count
    best put

    fsyncs_stop

    n=$(sed -n 's/.*\b200=\([0-9]*\).*/\1/p' <<< "$R_STATUS")
    written=$(( written + ${n:-0} ))
    put_status+="${put_status:+; }$R_STATUS"
    put_error=${put_error:-$R_FIRST_ERROR}
    journal_new=$(( journal_new + $(journal_lines) - j0 ))

    [ "$SNAP" = 1 ] || continue

    # this round's consents, then the same uploads to nginx's PUT and to
    # the API, within the consents' two minutes
    perl "$repo"/bench/lib/consent.pl "ws://127.0.0.1:$port/ws" \
        "$prefix/calls.$round" "$SNAP_CONSENTS" \
        > "$prefix"/consents 2>> "$prefix"/consent.log \
        || { cat "$prefix"/consent.log >&2; exit 1; }
    consents=$(wc -l < "$prefix"/consents)

    CONNS=$SNAP_CONNS DURATION=$SNAP_DURATION \
        bench "PUT image (nginx dav)" -s "$repo"/bench/lib/snapshot.lua \
        "$base" -- "$prefix"/consents "$prefix"/image.png image/png \
        "$THREADS" path=/dav/
    best okimg

    CONNS=$SNAP_CONNS DURATION=$SNAP_DURATION \
        bench "POST record/snapshots" -s "$repo"/bench/lib/snapshot.lua \
        "$base" -- "$prefix"/consents "$prefix"/image.png image/png \
        "$THREADS" count
    best snap

    n=$(sed -n 's/.*\b201=\([0-9]*\).*/\1/p' <<< "$R_STATUS")
    snapped=$(( snapped + ${n:-0} ))
    snap_status+="${snap_status:+; }$R_STATUS"
    snap_error=${snap_error:-$R_FIRST_ERROR}
    snap_over=$(( snap_over + (${n:-0} > consents ? 1 : 0) ))
done


read_bytes=$(curl -s -H "$auth" "$read_url" | wc -c)
note_answer=$(curl -s -H "$auth" \
              "$base/api/v1/appointments/$(head -1 "$prefix"/ids)/record" \
              | wc -c)

table_head

table_line ok    "return 200 (GET)"
table_line okput "return 200 (PUT)"
table_line get   "GET record"             "(target >= 50%)"
table_line put   "PUT record/note"        "(target >= 20%)"

if [ "$SNAP" = 1 ]; then
    image_bytes=$(wc -c < "$prefix"/image.png)
    table_line okimg "PUT image (nginx dav)"  "" okimg
    table_line snap  "POST record/snapshots"  "(of nginx dav)" okimg
fi

table_legend
cat <<EOF
  GET record: a note and 5 items (2 prescriptions, an order, 2
  follow-ups), read by its doctor, $read_bytes bytes.
  PUT record/note: a 5-field note of about 600 bytes, fsync on, round-robin
  over $APPTS appointments, answered with the record ($note_answer bytes);
  $written answered 200, ${B_NON2XX[put]} non-2xx; vs return 200 (PUT): \
$(pct "${B_RPS[put]}" "${B_RPS[okput]}")%
EOF

# MB/s: the uploads' bodies, in millions of bytes a second
mbps() {
    awk -v n="$1" -v b="$image_bytes" 'BEGIN {printf "%.1f", n * b / 1e6}'
}

if [ "$SNAP" = 1 ]; then
    cat <<EOF
  snapshot upload: MB/s ours $(mbps "${B_RPS[snap]}") of nginx's \
$(mbps "${B_RPS[okimg]}"): $(pct "${B_RPS[snap]}" "${B_RPS[okimg]}")%
  (a $image_bytes-byte PNG a request, $SNAP_CONNS connections, \
$SNAP_DURATION a run); nginx dav: PUT
  into a temp file renamed into place, no fsync; ours: POST .../record/
  snapshots under a granted consent each, the image checked, sealed,
  written and fsync'd (with its directory), then journaled (fsync),
  answered 201; $snapped answered 201; consents over the WebSocket: \
$(sed -n 's/^consent.pl: //p' "$prefix"/consent.log | paste -sd';' -)
EOF
fi

table_warnings "$journal_new" ok okput get put \
    $( [ "$SNAP" = 1 ] && echo okimg snap )

echo "  statuses: $put_status"
[ -n "$put_error" ] && echo "  first answer other than 200: $put_error"

table_perf

status=0

table_invalid ok okput get || status=1

if [ "$SNAP" = 1 ]; then
    table_invalid okimg || status=1

    if [ "${B_NON2XX[snap]}" != 0 ] || [ -n "${B_SOCKERR[snap]:-}" ] \
       || [ "$snap_over" != 0 ]
    then
        echo "INVALID: POST record/snapshots had answers other than 201" \
             "or socket errors (${B_SOCKERR[snap]:-none}): its figure does" \
             "not count (403 no_consent: more uploads than consents; raise" \
             "SNAP_CALLS); $snap_status; ${snap_error:0:300}" >&2
        status=1
    fi
fi

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
