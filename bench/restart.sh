#!/usr/bin/env bash
# Restart time with 100 000 appointments on disk: from kill -9 of master
# and workers to the first successful GET /api/v1/departments of a new
# nginx, which has replayed the whole journal by then.
#
# The state is made through the real API: a generated directory of DOCTORS
# doctors who work round the clock in 5-minute slots, then wrk books
# APPOINTMENTS distinct slots over the next DAYS days (the journal at
# fsync=off for this fill only, to save time).  nginx is then stopped and
# started with the journal's defaults (fsync=on, group commit), and the
# state is checked through the API: the admin's listings of all the
# doctors' days hold APPOINTMENTS appointments, and a sample of bookings
# reads back with each patient's token.  Then RUNS times: kill -9 of
# master and workers, start, poll until GET /api/v1/departments answers
# 200; each start's "replayed ... appointments" notice must count them all,
# and the sample is read back again at the end.
#
# Prints "restart with N appointments: X s (target < 2 s)", X the median
# of the runs, and exits 1 when X is over the target.
#
# Environment: APPOINTMENTS (100000), DOCTORS (100), DAYS (7), RUNS (10),
# TARGET (2, seconds), ZONE (512m), NGINX, TELECLINIC_MODULE, BENCH_TMPDIR
# (where the prefix and so the journal go, /tmp; keep it on a real disk),
# KEEP=1 keeps the prefix.

set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo"/bench/lib/nginx.sh

APPOINTMENTS=${APPOINTMENTS:-100000}
DOCTORS=${DOCTORS:-100}
DAYS=${DAYS:-7}
RUNS=${RUNS:-10}
TARGET=${TARGET:-2}
ZONE=${ZONE:-512m}

SLOT_MINUTES=5
SLOTS_PER_DAY=$((24 * 60 / SLOT_MINUTES))
ADMIN_KEY=bench-admin-key-0123456789

bench_require wrk perl curl

if [ $((DOCTORS * DAYS * SLOTS_PER_DAY)) -lt "$APPOINTMENTS" ]; then
    echo "restart.sh: $DOCTORS doctors x $DAYS days have fewer than" \
         "$APPOINTMENTS slots" >&2
    exit 1
fi

nginx_prefix restart
mkdir -p "$prefix"/sample
wrk_pid=""

# nginx runs in the background of this script or of the perl below; its
# pid file names the master of the moment
cleanup() {
    [ -n "$wrk_pid" ] && kill -INT "$wrk_pid" 2>/dev/null || true

    nginx_stop "$(cat "$prefix"/logs/nginx.pid 2>/dev/null || true)"
    wait 2>/dev/null || true
    nginx_remove_prefix
}

trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(free_port)
base=http://127.0.0.1:$port


# the directory: DOCTORS doctors "r000".. working round the clock

perl -MJSON::PP -e '
    my ($n, $minutes) = @ARGV;
    my %h;
    @h{qw(mon tue wed thu fri sat sun)} = ([["00:00", "24:00"]]) x 7;
    print JSON::PP->new->canonical->encode({
        departments => [ map { { id => "dep$_", name => "Department $_" } }
                         0 .. 9 ],
        doctors => [ map { {
            id => sprintf("r%03d", $_), name => "Dr. Restart $_",
            department => "dep" . $_ % 10,
            schedule => { slot_minutes => $minutes + 0, hours => \%h,
                          days_off => [] } } } 0 .. $n - 1 ],
    }), "\n";
' "$DOCTORS" "$SLOT_MINUTES" > "$prefix"/directory.json


# the conf; $1 is what follows the journal's path

write_conf() {
    nginx_write_conf 2 1024 <<EOF
    teleclinic_zone restart $ZONE;
    teleclinic_journal $prefix/state/journal$1;
    teleclinic_directory $prefix/directory.json;
    teleclinic_token_secret bench-token-secret-0123456789;
    teleclinic_admin_key $ADMIN_KEY;

    server {
        listen 127.0.0.1:$port;

        location /api/v1/ {
            teleclinic_api;
        }
    }
EOF
}


# the fill: wrk books APPOINTMENTS distinct slots, each thread its share

cat > "$prefix"/fill.lua <<'EOF'
-- thread t of T sends bookings t, t + T, ... below N; booking g is for
-- doctor g % D on day (g / D) % #days at minute ((g / D) / #days) * M.
-- Once a thread has all its answers it records a sample and stops; its
-- connections send cheap GETs meanwhile, never another booking.  wrk
-- calls request() once before the run to check it (on the first thread
-- only): that call, and so each thread's first, is a GET as well.

local headers = { ["Content-Type"] = "application/json" }
local threads = {}

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

function init(args)
   n = tonumber(args[1])
   ndoctors = tonumber(args[2])
   minutes = tonumber(args[3])
   nthreads = tonumber(args[4])
   dir = args[5]
   days = {}
   for d in string.gmatch(args[6], "%d+") do
      days[#days + 1] = d
   end

   quota = math.floor((n - tid + nthreads - 1) / nthreads)
   g = tid
   answered = 0
   booked = 0
   failed = 0
   checked = false
   sample = io.open(dir .. "/sample/" .. tid, "w")
end

function request()
   if g >= n or not checked then
      checked = true
      return wrk.format("GET", "/api/v1/departments")
   end

   local r = math.floor(g / ndoctors)
   local m = math.floor(r / #days) * minutes
   local slot = string.format("r%03d.%s.%02d%02d", g % ndoctors,
                              days[r % #days + 1], math.floor(m / 60),
                              m % 60)
   local body = string.format('{"slot":"%s","patient":{"name":'
                              .. '"Restart Patient %d","phone":'
                              .. '"+49 30 %07d"},"reason":"restart '
                              .. 'bench"}', slot, g, g)
   g = g + nthreads

   return wrk.format("POST", "/api/v1/appointments", headers, body)
end

function response(status, headers, body)
   if status == 200 then
      return
   end

   answered = answered + 1

   if status == 201 then
      booked = booked + 1

      if booked % 997 == 1 then
         sample:write(string.match(body, '"id":"(%x+)"'), " ",
                      string.match(body, '"slot":"([^"]+)"'), " ",
                      string.match(body, '"token":"([^"]+)"'), "\n")
      end

   else
      failed = failed + 1
   end

   if answered >= quota then
      sample:close()
      local f = io.open(dir .. "/fill." .. tid, "w")
      f:write(booked, " ", failed, "\n")
      f:close()
      wrk.thread:stop()
   end
end
EOF

days=$(for i in $(seq 1 "$DAYS"); do date -d "+$i day" +%Y%m%d; done \
       | paste -sd, -)

write_conf " fsync=off"

nginx_start
nginx_wait_up "$base/api/v1/departments"

echo "filling: $APPOINTMENTS bookings through the API," \
     "$DOCTORS doctors x $DAYS days, journal fsync=off"

start=$(date +%s.%N)

# wrk runs until its -d even when every thread has stopped: stopped here
wrk -t2 -c32 -d600s -s "$prefix"/fill.lua "$base" \
    -- "$APPOINTMENTS" "$DOCTORS" "$SLOT_MINUTES" 2 "$prefix" "$days" \
    > "$prefix"/wrk.log 2>&1 &
wrk_pid=$!

while [ ! -f "$prefix"/fill.0 ] || [ ! -f "$prefix"/fill.1 ]; do
    kill -0 "$wrk_pid" 2>/dev/null || { cat "$prefix"/wrk.log >&2
                                        echo "restart.sh: wrk ended" >&2
                                        exit 1; }
    sleep 0.2
done

kill -INT "$wrk_pid" 2>/dev/null || true
wait "$wrk_pid" || true
wrk_pid=""

read -r booked0 failed0 < "$prefix"/fill.0
read -r booked1 failed1 < "$prefix"/fill.1
booked=$((booked0 + booked1))
failed=$((failed0 + failed1))

echo "filled: $booked booked, $failed refused in" \
     "$(perl -e 'printf "%.1f", $ARGV[1] - $ARGV[0]' "$start" \
        "$(date +%s.%N)") s"

if [ "$booked" != "$APPOINTMENTS" ] || [ "$failed" != 0 ]; then
    echo "restart.sh: the fill did not book every slot" >&2
    exit 1
fi

# a clean stop, then the durable defaults for what is measured
nginx_stop "$nginx_master"

write_conf ""


# checks and timed restarts

perl - "$NGINX" "$prefix" "$base" "$APPOINTMENTS" "$DOCTORS" "$days" \
       "$RUNS" "$TARGET" "$ADMIN_KEY" <<'EOF'
use strict;
use warnings;

use HTTP::Tiny;
use JSON::PP qw(decode_json);
use POSIX qw(WNOHANG sysconf _SC_CLK_TCK);
use Time::HiRes qw(time sleep);

my ($nginx, $prefix, $base, $n, $doctors, $days, $runs, $target, $admin)
    = @ARGV;

my @days = split /,/, $days;
my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 10);
my $master;

sub start {
    my $pid = fork // die "fork: $!";

    if ($pid == 0) {
        exec $nginx, '-p', "$prefix/", '-c', "$prefix/nginx.conf",
             '-e', "$prefix/logs/error.log", '-g', 'daemon off;';
        die "exec $nginx: $!";
    }

    $master = $pid;
}

# the first 200 of GET departments, polled every millisecond
sub up {
    my $poll = HTTP::Tiny->new(keep_alive => 0, timeout => 10);
    my $deadline = time + 60;

    while (time < $deadline) {
        return 1 if $poll->get("$base/api/v1/departments")->{status} == 200;
        die "nginx exited\n" . `tail -5 $prefix/logs/error.log`
            if waitpid($master, WNOHANG) == $master;
        sleep 0.001;
    }

    die "nginx not up within 60 s\n";
}

# the master's CPU time so far: the replay, whatever else runs meanwhile
sub cpu {
    open my $fh, '<', "/proc/$master/stat" or return 0;
    my @f = split ' ', (split /\)/, scalar(<$fh> // ''))[-1];
    return ($f[11] + $f[12]) / sysconf(_SC_CLK_TCK);
}

sub load {
    open my $fh, '<', '/proc/loadavg' or return '?';
    return (split ' ', scalar <$fh>)[0];
}

sub median {
    my @v = sort { $a <=> $b } @_;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

sub children {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/task/$pid/children" or return ();
    return split ' ', scalar(<$fh> // '');
}

sub gone {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 1;
    return (<$fh> // '') =~ /\)\s+[ZX]\s/;
}

# kill -9 of master and workers, until none is left
sub kill9 {
    my @workers = children($master);

    kill 'KILL', $master, @workers;
    waitpid $master, 0;

    sleep 0.001 while grep { !gone($_) } @workers;
}

sub count {
    my $total = 0;

    for my $d (0 .. $doctors - 1) {
        for my $day (@days) {
            my $date = join '-', unpack 'A4 A2 A2', $day;
            my $r = $http->get(sprintf("%s/api/v1/admin/doctors/r%03d/"
                                       . "appointments?date=%s",
                                       $base, $d, $date),
                               { headers => { Authorization =>
                                              "Bearer $admin" } });
            die "listing: $r->{status}\n" unless $r->{status} == 200;
            # a regex, not decode_json: JSON::PP takes many seconds here
            $total += () = $r->{content} =~ /"status":"booked"/g;
        }
    }

    return $total;
}

my @sample = map { [split ' '] }
             map { split /\n/, do { local (@ARGV, $/) = $_; <> } }
             glob "$prefix/sample/*";

sub read_sample {
    my $bad = 0;

    for my $s (@sample) {
        my ($id, $slot, $token) = @$s;
        my $r = $http->get("$base/api/v1/appointments/$id",
                           { headers => { Authorization =>
                                          "Bearer $token" } });
        my $j = $r->{status} == 200 ? decode_json($r->{content}) : {};

        $bad++ unless ($j->{status} // '') eq 'booked'
                      && ($j->{slot} // '') eq $slot;
    }

    return $bad;
}

sub replayed {
    open my $fh, '<', "$prefix/logs/error.log" or return -1;
    my ($last) = (grep { /replayed \d+ records/ } <$fh>)[-1];
    return $last && $last =~ /replayed \d+ records, (\d+) appointments/
           ? $1 : -1;
}

start();
up();

my $listed = count();
my $bad = read_sample();

printf "state: %d appointments listed, %d of %d sampled bookings read "
       . "back, journal %.1f MB\n", $listed, @sample - $bad,
       scalar @sample, (-s "$prefix/state/journal") / 1e6;

die "restart.sh: $listed appointments listed, not $n\n" if $listed != $n;
die "restart.sh: $bad sampled bookings differ\n" if $bad || !@sample;

my (@t, @cpu);
my $load = load();

for my $run (1 .. $runs) {
    my $t0 = time;

    kill9();
    start();
    up();

    push @t, time - $t0;
    push @cpu, cpu();

    my $m = replayed();
    die "restart.sh: run $run replayed $m appointments, not $n\n"
        if $m != $n;
}

$bad = read_sample();
die "restart.sh: after the runs $bad sampled bookings differ\n" if $bad;

my $median = median(@t);
my $ncpu = () = do { local (@ARGV, $/) = '/proc/cpuinfo'; <> }
                =~ /^processor/mg;

printf "runs, in order: %s s\n", join ' ', map { sprintf '%.3f', $_ } @t;
printf "master CPU time to come up: %.2f s (median); load average %s to "
       . "%s on %d CPUs\n", median(@cpu), $load, load(), $ncpu;
printf "restart with %d appointments: %.2f s (target < %s s)%s\n",
       $n, $median, $target,
       $median < $target ? '' : ' -- OVER TARGET';

kill 'QUIT', $master;
waitpid $master, 0;

exit($median < $target ? 0 : 1);
EOF
