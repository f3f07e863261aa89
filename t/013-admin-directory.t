#!/usr/bin/perl

# The admin API: the key guards every admin route; the directory is read,
# changed per doctor and department and as a whole, checked before it is
# stored, kept over a restart and a reload, and replaced by the directory
# file when that file changes; a doctor's day lists its appointments.

use strict;
use warnings;

use Test::More;
use Mojo::JSON qw(encode_json);
use IO::Socket::INET;
use Time::HiRes qw(sleep);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);

###############################################################################

my $API = '/api/v1';
my $KEY = admin_auth();

my $t = Teleclinic::Test->new(workers => 2);

write_directory($t);

$t->run(conf());

my $date = day_ahead(1);
my $date2 = day_ahead(2);
(my $ymd = $date) =~ tr/-//d;
(my $ymd2 = $date2) =~ tr/-//d;

###############################################################################
# the key

my $r = book($t, "gp-one.$ymd.1630", name => 'Key Holder');
is($r->{status}, 201, 'a patient with a token') or BAIL_OUT('cannot book');
my $patient = $r->{json};

my $doc = encode_json(doctor('intruder', 'gp'));
my $dept = encode_json({ name => 'Intruders' });

my @routes = (
    [ GET    => "$API/admin/directory" ],
    [ PUT    => "$API/admin/directory", encode_json({ departments => [],
                                                       doctors => [] }) ],
    [ PUT    => "$API/admin/doctors/intruder", $doc ],
    [ DELETE => "$API/admin/doctors/gp-one" ],
    [ PUT    => "$API/admin/departments/intruders", $dept ],
    [ DELETE => "$API/admin/departments/derm" ],
    [ GET    => "$API/admin/doctors/gp-one/appointments?date=$date" ],
);

for my $route (@routes) {
    my ($method, $path, $body) = @$route;
    my $what = "$method " . ($path =~ s{^$API/}{}r);

    for my $case ([ 'no key', {}, 401, 'unauthorized' ],
                  [ 'Basic auth', { Authorization => "Basic $ADMIN_KEY" },
                    401, 'unauthorized' ],
                  [ 'wrong key', { Authorization => 'Bearer '
                                   . 'wrong-admin-key-0123456789' },
                    403, 'forbidden' ],
                  [ 'key cut short', { Authorization => 'Bearer '
                                       . substr($ADMIN_KEY, 0, -1) },
                    403, 'forbidden' ],
                  [ "a patient's token",
                    { Authorization => "Bearer $patient->{token}" },
                    403, 'forbidden' ])
    {
        my ($who, $headers, $status, $code) = @$case;

        $r = $t->http($method => $path, headers => $headers,
                      defined $body ? (body => $body) : ());
        is($r->{status}, $status, "$what, $who: $status");
        is(($r->{json} // {})->{error}{code}, $code, "$what, $who: $code");
        ok(!exists(($r->{json} // {})->{departments}),
           "$what, $who: no directory in the answer");
    }
}

is_deeply(admin_directory(), directory(),
          'refused writes changed nothing');
is_deeply(doctor_ids(), [qw(gp-one gp-two derm-one)],
          'refused writes: doctors as before');

###############################################################################
# GET directory

$r = $t->http(GET => "$API/admin/directory", headers => $KEY);
is($r->{status}, 200, 'GET directory: 200');
like($r->{headers}->content_type // '', qr{^application/json},
     'GET directory: JSON');
is($r->{headers}->cache_control, 'no-store', 'GET directory: no-store');
is_deeply($r->{json}, directory(), 'GET directory: the file as loaded');

###############################################################################
# a doctor's day

# booked out of time order, one cancelled, others elsewhere
my %appt;

for my $case ([ day_b  => "gp-one.$ymd.1400", 'Pat Two' ],
              [ day_a  => "gp-one.$ymd.0900", 'Pat One' ],
              [ day_x  => "gp-one.$ymd.1100", 'Pat Cancelled' ],
              [ day_c  => "gp-one.$ymd.1500", 'Pat Three' ],
              [ other  => "gp-two.$ymd.1000", 'Pat Other Doctor' ],
              [ later  => "gp-one.$ymd2.0900", 'Pat Later Day' ])
{
    my ($key, $slot, $name) = @$case;

    $r = book($t, $slot, name => $name, reason => "reason of $key");
    is($r->{status}, 201, "book $key") or BAIL_OUT("cannot book $slot");
    $appt{$key} = $r->{json};
}

$r = cancel($t, $appt{day_x}{id}, $ADMIN_KEY);
is($r->{status}, 200, 'cancel one of the day');

my $day = doctor_day('gp-one', $date);
is_deeply([ map { $_->{id} } @$day ],
          [ map { $_->{id} } @appt{qw(day_a day_b day_c)}, $patient ],
          "the doctor's day: booked ones in time order, no cancelled one");
is_deeply([ map { $_->{patient}{name} } @$day ],
          [ 'Pat One', 'Pat Two', 'Pat Three', 'Key Holder' ],
          "the doctor's day: with patient names");
is($day->[0]{patient}{phone}, '+49 30 1234567', 'with the phone');
is($day->[0]{reason}, 'reason of day_a', 'with the reason');
is($day->[0]{slot}, "gp-one.$ymd.0900", 'with the slot');
is($day->[0]{start}, $appt{day_a}{start}, 'with the start');
is($day->[0]{status}, 'booked', 'status booked');
ok(!grep({ exists $_->{token} } @$day), 'no tokens in the list');

is_deeply([ map { $_->{id} } @{ doctor_day('gp-two', $date) } ],
          [ $appt{other}{id} ], "the other doctor's day");
is_deeply([ map { $_->{id} } @{ doctor_day('gp-one', $date2) } ],
          [ $appt{later}{id} ], 'the next day');
is_deeply(doctor_day('derm-one', $date), [], 'a day without appointments');

# moving an appointment moves it between days and in the order
$r = reschedule($t, $appt{day_c}{id}, $ADMIN_KEY, "gp-one.$ymd.0800");
is($r->{status}, 200, 'reschedule one to the start of the day');

$r = reschedule($t, $appt{later}{id}, $ADMIN_KEY, "gp-one.$ymd.1300");
is($r->{status}, 200, 'reschedule one from the next day');

$r = book($t, "gp-one.$ymd.1100", name => 'Pat Rebooked');
is($r->{status}, 201, 'book the cancelled slot again');
$appt{rebooked} = $r->{json};

is_deeply([ map { $_->{id} } @{ doctor_day('gp-one', $date) } ],
          [ map { $_->{id} }
                @appt{qw(day_c day_a rebooked later day_b)}, $patient ],
          "the doctor's day follows reschedules and rebookings");
is_deeply(doctor_day('gp-one', $date2), [], 'the next day is empty now');

for my $q ("date=$ymd", 'date=2026-02-30', 'date=', '') {
    $r = $t->http(GET => "$API/admin/doctors/gp-one/appointments"
                         . ($q ne '' ? "?$q" : ''), headers => $KEY);
    is($r->{status}, 400, "doctor's day with '$q': 400");
    is(($r->{json} // {})->{error}{code}, 'invalid_date',
       "doctor's day with '$q': invalid_date");
}

###############################################################################
# PUT and DELETE a doctor

my $new = doctor('new-doc', 'derm', name => 'Dr. New', slot_minutes => 60,
                 hours => [['10:00', '13:00']]);

$r = put("doctors/new-doc", $new);
is($r->{status}, 200, 'PUT doctor: 200');
is(($r->{json} // {})->{doctors}, 4, 'PUT doctor: four doctors now');

$r = $t->http(GET => "$API/doctors?department=derm");
is_deeply($r->{json},
          [ { id => 'derm-one', name => 'Dr. Dora One', department => 'derm',
              slot_minutes => 20 },
            { id => 'new-doc', name => 'Dr. New', department => 'derm',
              slot_minutes => 60 } ],
          'PUT doctor: listed in /doctors of the department');

is_deeply([ map { $_->{id} } @{ slots($t, 'new-doc', $date) } ],
          [ map { "new-doc.$ymd.$_" } qw(1000 1100 1200) ],
          'PUT doctor: has the slots of its schedule');

$r = book($t, "new-doc.$ymd.1100");
is($r->{status}, 201, 'PUT doctor: bookable');

# the same id again replaces the doctor; the URL names it
$r = put("doctors/gp-two", { %{ doctor('someone-else', 'gp',
                                       slot_minutes => 15) },
                             name => 'Dr. Gus Two, part time' });
is($r->{status}, 200, 'PUT an existing doctor: 200');
is($r->{json}{doctors}, 4, 'PUT an existing doctor: still four');

my ($gp2) = grep { $_->{id} eq 'gp-two' } @{ $t->http(GET =>
                                                "$API/doctors")->{json} };
is_deeply($gp2, { id => 'gp-two', name => 'Dr. Gus Two, part time',
                  department => 'gp', slot_minutes => 15 },
          'PUT an existing doctor: replaced, id from the URL');
is(scalar @{ slots($t, 'gp-two', $date) }, 32,
   'PUT an existing doctor: the new slot length');
is_deeply(doctor_ids(), [qw(gp-one gp-two derm-one new-doc)],
          'PUT an existing doctor: no doctor with the id of the body');

# invalid doctors: refused, nothing changes
my $before = admin_directory();
my %sched = %{ doctor('x', 'gp')->{schedule} };

for my $case (
    [ 'slot_minutes that do not divide a day',
      { %{ doctor('bad', 'gp') },
        schedule => { %sched, slot_minutes => 7 } } ],
    [ 'slot_minutes 0', { %{ doctor('bad', 'gp') },
                         schedule => { %sched, slot_minutes => 0 } } ],
    [ 'slot_minutes a string', { %{ doctor('bad', 'gp') },
                                 schedule => { %sched,
                                               slot_minutes => '30' } } ],
    [ 'hour 25:00', doctor('bad', 'gp', hours => [['08:00', '25:00']]) ],
    [ 'minute 08:60', doctor('bad', 'gp', hours => [['08:60', '09:00']]) ],
    [ 'range ends before it starts',
      doctor('bad', 'gp', hours => [['12:00', '08:00']]) ],
    [ 'overlapping ranges',
      doctor('bad', 'gp', hours => [['08:00', '12:00'], ['11:00', '13:00']]) ],
    [ 'range of three', doctor('bad', 'gp',
                               hours => [['08:00', '10:00', '12:00']]) ],
    [ 'time as a number', doctor('bad', 'gp', hours => [[800, 1200]]) ],
    [ 'hours an array', { %{ doctor('bad', 'gp') },
                          schedule => { %sched, hours => [] } } ],
    [ 'weekday not an array',
      { %{ doctor('bad', 'gp') },
        schedule => { %sched, hours => { mon => '08:00' } } } ],
    [ 'bad day off', doctor('bad', 'gp', days_off => ['2026-02-30']) ],
    [ 'no schedule', { id => 'bad', name => 'Dr. Bad', department => 'gp' } ],
    [ 'no name', { %{ doctor('bad', 'gp') }, name => undef } ],
    [ 'a NUL in the name', { %{ doctor('bad', 'gp') }, name => "Dr.\0Bad" } ],
    [ 'unknown department', doctor('bad', 'cardiology') ],
    [ 'department a number', { %{ doctor('bad', 'gp') }, department => 7 } ],
)
{
    my ($what, $body) = @$case;

    delete $body->{name} if exists $body->{name} && !defined $body->{name};

    $r = put('doctors/bad', $body);
    is($r->{status}, 422, "PUT doctor with $what: 422");
    is(($r->{json} // {})->{error}{code}, 'invalid_directory',
       "PUT doctor with $what: invalid_directory");
}

$r = $t->http(PUT => "$API/admin/doctors/bad", headers => $KEY,
              body => '{"name":');
is($r->{status}, 400, 'PUT doctor with malformed JSON: 400');
is(($r->{json} // {})->{error}{code}, 'malformed_json',
   'PUT doctor with malformed JSON: malformed_json');

for my $id ('Bad', 'bad_id', '-bad', 'a' x 33) {
    $r = put("doctors/$id", doctor('bad', 'gp'));
    is($r->{status}, 400, "PUT doctor '$id': 400");
    is(($r->{json} // {})->{error}{code}, 'invalid_id',
       "PUT doctor '$id': invalid_id");
}

is_deeply(admin_directory(), $before, 'refused doctors changed nothing');
is($t->http(GET => "$API/doctors/bad/slots?date=$date")->{status}, 404,
   'no doctor "bad"');

# DELETE
$r = $t->http(DELETE => "$API/admin/doctors/new-doc", headers => $KEY);
is($r->{status}, 200, 'DELETE doctor: 200');
is(($r->{json} // {})->{doctors}, 3, 'DELETE doctor: three left');
is_deeply(doctor_ids(), [qw(gp-one gp-two derm-one)],
          'DELETE doctor: gone from /doctors');
is($t->http(GET => "$API/doctors/new-doc/slots?date=$date")->{status}, 404,
   'DELETE doctor: no slots');
is(book($t, "new-doc.$ymd.1000")->{status}, 422, 'DELETE doctor: no booking');

$r = $t->http(DELETE => "$API/admin/doctors/new-doc", headers => $KEY);
is($r->{status}, 404, 'DELETE a deleted doctor: 404');
is(($r->{json} // {})->{error}{code}, 'not_found', 'DELETE again: not_found');

###############################################################################
# departments

$r = put('departments/cardio', { name => 'Cardiology' });
is($r->{status}, 200, 'PUT department: 200');
is_deeply([ map { $_->{id} } @{ $t->http(GET => "$API/departments")
                                  ->{json} } ],
          [qw(gp derm cardio)], 'PUT department: listed');

$r = put('departments/cardio', { name => 'Heart Medicine' });
is($r->{status}, 200, 'PUT department again: 200');
is_deeply((grep { $_->{id} eq 'cardio' }
                @{ $t->http(GET => "$API/departments")->{json} })[0],
          { id => 'cardio', name => 'Heart Medicine' },
          'PUT department again: renamed, not duplicated');

$r = put('doctors/heart-doc', doctor('heart-doc', 'cardio'));
is($r->{status}, 200, 'a doctor in the new department');

for my $case ([ 'no name', {} ], [ 'empty name', { name => '' } ],
              [ 'name a number', { name => 5 } ])
{
    my ($what, $body) = @$case;

    $r = put('departments/bad', $body);
    is($r->{status}, 422, "PUT department with $what: 422");
}

$r = $t->http(DELETE => "$API/admin/departments/gp", headers => $KEY);
is($r->{status}, 422, 'DELETE a department with doctors: 422');
is(($r->{json} // {})->{error}{code}, 'invalid_directory',
   'DELETE a department with doctors: invalid_directory');
is_deeply([ map { $_->{id} } @{ $t->http(GET => "$API/departments")
                                  ->{json} } ],
          [qw(gp derm cardio)], 'the department is still there');

$r = $t->http(DELETE => "$API/admin/doctors/heart-doc", headers => $KEY);
is($r->{status}, 200, 'delete its last doctor');

$r = $t->http(DELETE => "$API/admin/departments/cardio", headers => $KEY);
is($r->{status}, 200, 'DELETE an empty department: 200');
is_deeply([ map { $_->{id} } @{ $t->http(GET => "$API/departments")
                                  ->{json} } ],
          [qw(gp derm)], 'DELETE department: gone');

$r = $t->http(DELETE => "$API/admin/departments/cardio", headers => $KEY);
is($r->{status}, 404, 'DELETE a deleted department: 404');

###############################################################################
# PUT the whole directory

my $whole = {
    departments => [ { id => 'gp', name => 'General Practice' },
                     { id => 'psy', name => 'Psychiatry' } ],
    doctors => [ doctor('gp-one', 'gp', name => 'Dr. Gina One'),
                 doctor('psy-one', 'psy', name => 'Dr. Sigmund',
                        slot_minutes => 45, hours => [['10:00', '16:00']]) ],
};

$r = $t->http(PUT => "$API/admin/directory", headers => $KEY,
              body => encode_json($whole));
is($r->{status}, 200, 'PUT directory: 200');
is(($r->{json} // {})->{doctors}, 2, 'PUT directory: two doctors');

is_deeply(admin_directory(), $whole, 'PUT directory: GET gives it back');
is_deeply([ map { $_->{id} } @{ $t->http(GET => "$API/departments")
                                  ->{json} } ],
          [qw(gp psy)], 'PUT directory: departments');
is_deeply(doctor_ids(), [qw(gp-one psy-one)], 'PUT directory: doctors');
is(scalar @{ slots($t, 'psy-one', $date) }, 8,
   'PUT directory: six hours of 45 minutes');
is($t->http(GET => "$API/doctors/gp-two/slots?date=$date")->{status}, 404,
   'PUT directory: a doctor left out is gone');

for my $case (
    [ 'malformed JSON', '{"departments":' ],
    [ 'not an object', '[]' ],
    [ 'no doctors', encode_json({ departments => [] }) ],
    [ 'two doctors with one id',
      encode_json({ departments => $whole->{departments},
                    doctors => [ doctor('dup', 'gp'), doctor('dup', 'psy') ]
                  }) ],
    [ 'two departments with one id',
      encode_json({ departments => [ { id => 'gp', name => 'A' },
                                     { id => 'gp', name => 'B' } ],
                    doctors => [] }) ],
    [ 'a bad department id',
      encode_json({ departments => [ { id => 'G P', name => 'A' } ],
                    doctors => [] }) ],
)
{
    my ($what, $body) = @$case;

    $r = $t->http(PUT => "$API/admin/directory", headers => $KEY,
                  body => $body);
    like($r->{status}, qr/^4\d\d$/, "PUT directory, $what: 4xx");
    ok(($r->{json} // {})->{error}{code}, "PUT directory, $what: error");
}

is_deeply(admin_directory(), $whole, 'refused directories changed nothing');

###############################################################################
# restart and reload keep what the API changed

$r = put('doctors/psy-two', doctor('psy-two', 'psy', name => 'Dr. Carl'));
is($r->{status}, 200, 'one more change before the restart');

my $changed = admin_directory();

$t->stop;
$t->start;

is_deeply(admin_directory(), $changed, 'restart: the changed directory');
is_deeply(doctor_ids(), [qw(gp-one psy-one psy-two)], 'restart: doctors');

$t->reload;

is_deeply(admin_directory(), $changed, 'reload: the changed directory');
is_deeply(doctor_ids(), [qw(gp-one psy-one psy-two)], 'reload: doctors');

$r = appointment($t, $appt{day_a}{id}, $ADMIN_KEY);
is($r->{json}{status}, 'booked', 'restart and reload: bookings kept');

###############################################################################
# a changed directory file is stored only once the reload is accepted: a
# reload refused after the zone was set up (a port it cannot bind) leaves
# the directory as it was

{
    my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                     LocalPort => 0, Listen => 1,
                                     Proto => 'tcp')
        or die "listen: $!";
    my $port = $busy->sockport;

    $t->allow_log(qr/bind\(\) to 127\.0\.0\.1:$port failed/,
                  qr/still could not bind/);

    my $good = $t->read_file('nginx.conf');
    (my $bad = $good) =~ s/(listen 127\.0\.0\.1:\d+)/listen 127.0.0.1:$port;\n        $1/
        or die 'no listen line in the conf';

    my $log_start = length $t->error_log;

    write_directory($t, {
        departments => [ { id => 'derm', name => 'Dermatology' } ],
        doctors => [ doctor('refused-doc', 'derm', name => 'Dr. Refused') ],
    });
    $t->write_file('nginx.conf', $bad);
    kill 'HUP', $t->master_pid;

    my $deadline = time + 30;
    sleep 0.1 until substr($t->error_log, $log_start) =~ /still could not bind/
                    || time > $deadline;
    like(substr($t->error_log, $log_start), qr/still could not bind/,
         'the reload was refused after the zone was set up');

    is_deeply(admin_directory(), $changed,
              'refused reload: the directory file was not stored');
    is_deeply(doctor_ids(), [qw(gp-one psy-one psy-two)],
              'refused reload: the doctors as before');

    $t->write_file('nginx.conf', $good);
}

###############################################################################
# a changed directory file wins at reload, and then stays

my $file = {
    departments => [ { id => 'derm', name => 'Dermatology' } ],
    doctors => [ doctor('file-doc', 'derm', name => 'Dr. File') ],
};

write_directory($t, $file);
$t->reload;

is_deeply(admin_directory(), $file, 'changed file + reload: the file wins');
is_deeply(doctor_ids(), ['file-doc'], 'changed file + reload: doctors');

$t->reload;
is_deeply(admin_directory(), $file, 'second reload: still the file');

$r = put('departments/gp', { name => 'General Practice' });
is($r->{status}, 200, 'an API change after the file');

$t->stop;
$t->start;

is_deeply([ map { $_->{id} } @{ $t->http(GET => "$API/departments")
                                  ->{json} } ],
          [qw(derm gp)], 'restart: the unchanged file does not undo it');

# changed while nginx was down: the file wins at start
$file->{doctors}[0]{name} = 'Dr. File, renamed';
write_directory($t, $file);

$t->stop;
$t->start;

is_deeply(admin_directory(), $file, 'file changed while stopped: it wins');

$t->stop;
undef $t;

done_testing;

###############################################################################

sub put {
    my ($what, $body) = @_;

    return $t->http(PUT => "$API/admin/$what", headers => $KEY,
                    body => encode_json($body));
}

sub admin_directory {
    my $r = $t->http(GET => "$API/admin/directory", headers => $KEY);
    return $r->{status} == 200 ? $r->{json} : "status $r->{status}";
}

sub doctor_ids {
    return [ map { $_->{id} } @{ $t->http(GET => "$API/doctors")->{json} } ];
}

sub doctor_day {
    my ($doctor, $date) = @_;

    my $r = admin_day($t, $doctor, $date);

    return $r->{status} == 200 ? $r->{json} : "status $r->{status}";
}

###############################################################################
