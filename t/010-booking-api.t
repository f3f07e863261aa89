#!/usr/bin/perl

# The booking API as a patient's app uses it: departments, doctors,
# a doctor's slots for a day, booking, reading, cancelling and
# rescheduling an appointment, and the conflicts between them.

use strict;
use warnings;

use Test::More;
use MIME::Base64 qw(decode_base64url);
use POSIX qw(mktime);
use Time::Local qw(timegm);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);

###############################################################################

my $API = '/api/v1';
my $PUBLIC = 'https://clinic.example';
my $TTL = 7 * 86400;
my $RFC3339 = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d)$/;

my $t = Teleclinic::Test->new(workers => 2);

my $date = day_ahead(1);
(my $ymd = $date) =~ tr/-//d;

# one more doctor, who is off on the day the test books
my $dir = directory();
push @{ $dir->{doctors} },
    doctor('gp-off', 'gp', name => 'Dr. Off', days_off => [$date]);
write_directory($t, $dir);

# the trailing slash of the public URL must not double in the links
$t->run(conf(http => "teleclinic_public_url $PUBLIC/;"));

###############################################################################
# departments and doctors

my $r = $t->http(GET => "$API/departments");
is($r->{status}, 200, 'departments: 200');
like($r->{headers}->content_type // '', qr{^application/json},
     'departments: JSON');
is($r->{headers}->cache_control, 'no-store', 'departments: no-store');
is_deeply($r->{json},
          [ { id => 'gp', name => 'General Practice' },
            { id => 'derm', name => 'Dermatology' } ],
          'departments: both, in directory order');

my %doc = (
    'gp-one'   => { id => 'gp-one', name => 'Dr. Gina One',
                    department => 'gp', slot_minutes => 30 },
    'gp-two'   => { id => 'gp-two', name => 'Dr. Gus Two',
                    department => 'gp', slot_minutes => 30 },
    'derm-one' => { id => 'derm-one', name => 'Dr. Dora One',
                    department => 'derm', slot_minutes => 20 },
    'gp-off'   => { id => 'gp-off', name => 'Dr. Off',
                    department => 'gp', slot_minutes => 30 },
);

$r = $t->http(GET => "$API/doctors");
is($r->{status}, 200, 'doctors: 200');
is_deeply($r->{json}, [ @doc{qw(gp-one gp-two derm-one gp-off)} ],
          'doctors: all four with id, name, department, slot_minutes');

$r = $t->http(GET => "$API/doctors?department=gp");
is($r->{status}, 200, 'doctors of gp: 200');
is_deeply($r->{json}, [ @doc{qw(gp-one gp-two gp-off)} ],
          'doctors of gp: only gp');

$r = $t->http(GET => "$API/doctors?department=derm");
is_deeply($r->{json}, [ $doc{'derm-one'} ], 'doctors of derm: only derm');

$r = $t->http(GET => "$API/doctors?department=cardiology");
is($r->{status}, 200, 'doctors of an unknown department: 200');
is_deeply($r->{json}, [], 'doctors of an unknown department: none');

###############################################################################
# slots of a day

my $slots = slots($t, 'gp-one', $date);
is(scalar @$slots, 16, 'gp-one: 8 + 8 half-hour slots');
is_deeply([ map { $_->{id} } @$slots ],
          [ map { "gp-one.$ymd.$_" }
                qw(0800 0830 0900 0930 1000 1030 1100 1130
                   1300 1330 1400 1430 1500 1530 1600 1630) ],
          'gp-one: slot ids doctor.YYYYMMDD.HHMM, in time order');
is(scalar(grep { $_->{status} eq 'free' } @$slots), 16, 'all free');
is_deeply([ sort keys %{ $slots->[0] } ], [qw(end id start status)],
          'a slot has id, start, end, status');

my $bad = 0;

for my $s (@$slots) {
    my ($hh, $mm) = $s->{id} =~ /\.(\d\d)(\d\d)$/;
    my $want = local_epoch($date, $hh, $mm);

    $bad++ unless $s->{start} =~ $RFC3339 && $s->{end} =~ $RFC3339
                  && $s->{start} =~ /^${date}T$hh:$mm:00[+-]\d\d:\d\d$/
                  && rfc3339_epoch($s->{start}) == $want
                  && rfc3339_epoch($s->{end}) == $want + 30 * 60;
}

is($bad, 0, 'start and end: RFC 3339 local time with offset, 30 minutes');

my $derm = slots($t, 'derm-one', $date);
is(scalar @$derm, 24, 'derm-one: 12 + 12 slots of 20 minutes');
is($derm->[1]{id}, "derm-one.$ymd.0820", 'derm-one: second slot at 08:20');

is_deeply(slots($t, 'gp-off', $date), [], 'a day off has no slots');

$r = $t->http(GET => "$API/doctors/nobody/slots?date=$date");
is($r->{status}, 404, 'slots of an unknown doctor: 404');
is($r->{json}{error}{code}, 'unknown_doctor', 'slots: unknown_doctor');

###############################################################################
# booking

my $s1 = $slots->[2];
my $s2 = $slots->[5];
my $s3 = $slots->[9];

$r = $t->http(POST => "$API/appointments", body => {
    slot    => $s1->{id},
    patient => { name => 'Erika Mustermann', phone => '+49 30 1234567' },
    reason  => 'itchy rash',
});

is($r->{status}, 201, 'book: 201');
like($r->{headers}->content_type // '', qr{^application/json}, 'book: JSON');
is($r->{headers}->cache_control, 'no-store', 'book: no-store');

my $a = $r->{json};

is_deeply([ sort keys %$a ],
          [ sort qw(id status slot doctor start end created token join_url
                    guide_url) ],
          'book: every field, no patient data');
like($a->{id}, qr/^[0-9a-f]{16}$/, 'book: id is 16 hex digits');
is($a->{status}, 'booked', 'book: status booked');
is($a->{slot}, $s1->{id}, 'book: slot');
is($a->{doctor}, 'gp-one', 'book: doctor');
is($a->{start}, $s1->{start}, 'book: start of the slot');
is($a->{end}, $s1->{end}, 'book: end of the slot');
like($a->{created}, $RFC3339, 'book: created is RFC 3339');
ok(rfc3339_epoch($a->{created}) < rfc3339_epoch($a->{start}),
   'book: created before the visit');

check_token($a, 'book');

is($a->{join_url}, "$PUBLIC/visit.html?appointment=$a->{id}"
                   . "#token=$a->{token}",
   'book: join_url from teleclinic_public_url, token in the fragment');
is($a->{guide_url}, "$PUBLIC/guide.html", 'book: guide_url');

is(slot_status('gp-one', $s1->{id}), 'busy', 'booked slot shows busy');
is(scalar(grep { $_->{status} eq 'free' } @{ slots($t, 'gp-one', $date) }),
   15, 'only that slot is busy');
is(slot_status('gp-two', "gp-two.$ymd." . substr($s1->{id}, -4)), 'free',
   'the same time of another doctor stays free');

# a second booking of the slot, also through the other worker
for my $n (1 .. 2) {
    $r = book($t, $s1->{id}, name => 'Max Mustermann');
    is($r->{status}, 409, "second booking of the slot ($n): 409");
    is($r->{json}{error}{code}, 'slot_taken', "second booking: slot_taken");
    is($r->{json}{error}{field}, 'slot', 'second booking: field slot');
}

###############################################################################
# reading

$r = appointment($t, $a->{id}, $a->{token});
is($r->{status}, 200, 'read with token: 200');
is($r->{headers}->cache_control, 'no-store', 'read: no-store');

my $g = $r->{json};
is($g->{id}, $a->{id}, 'read: id');
is($g->{status}, 'booked', 'read: status booked');
is($g->{slot}, $s1->{id}, 'read: slot');
is($g->{doctor}, 'gp-one', 'read: doctor');
is($g->{start}, $s1->{start}, 'read: start');
is($g->{end}, $s1->{end}, 'read: end');
is($g->{created}, $a->{created}, 'read: created');
is_deeply($g->{patient},
          { name => 'Erika Mustermann', phone => '+49 30 1234567' },
          'read: patient name and phone');
is($g->{reason}, 'itchy rash', 'read: reason');
ok(!exists $g->{token}, 'read: does not hand out the token again');

###############################################################################
# cancelling, and booking the slot again

$r = cancel($t, $a->{id}, $a->{token});
is($r->{status}, 200, 'cancel: 200');
is($r->{json}{status}, 'cancelled', 'cancel: status cancelled');
is($r->{json}{id}, $a->{id}, 'cancel: same appointment');
is($r->{json}{slot}, $s1->{id}, 'cancel: slot');

is(slot_status('gp-one', $s1->{id}), 'free', 'cancelled slot is free again');

# the cancel outdates the patient's token; the admin still sees it all
$r = appointment($t, $a->{id}, $a->{token});
is($r->{status}, 401, 'read a cancelled appointment with its token: 401');
ok(!exists(($r->{json} // {})->{patient}), 'read: no patient data');

$r = appointment($t, $a->{id}, $ADMIN_KEY);
is($r->{status}, 200, 'the admin reads a cancelled appointment: 200');
is($r->{json}{status}, 'cancelled', 'read: status cancelled');

$r = cancel($t, $a->{id}, $a->{token});
is($r->{status}, 401, 'cancel twice with the token: 401');

$r = cancel($t, $a->{id}, $ADMIN_KEY);
is($r->{status}, 409, 'cancel twice: 409');
ok($r->{json}{error}{code} && $r->{json}{error}{message},
   'cancel twice: error code and message');

$r = reschedule($t, $a->{id}, $ADMIN_KEY, $s2->{id});
is($r->{status}, 409, 'reschedule a cancelled appointment: 409');
is(slot_status('gp-one', $s2->{id}), 'free',
   'a refused reschedule takes no slot');

$r = book($t, $s1->{id}, name => 'Max Mustermann', phone => '+1 212 5550100');
is($r->{status}, 201, 'book the cancelled slot again: 201');

my $b = $r->{json};
isnt($b->{id}, $a->{id}, 'rebooking: a new appointment');
is($b->{status}, 'booked', 'rebooking: booked');
is($b->{slot}, $s1->{id}, 'rebooking: same slot');
is(slot_status('gp-one', $s1->{id}), 'busy', 'rebooked slot is busy');

$r = appointment($t, $b->{id}, $b->{token});
is($r->{json}{patient}{name}, 'Max Mustermann', 'rebooking: new patient');
is($r->{json}{reason}, 'test visit', 'rebooking: new reason');

$r = appointment($t, $a->{id}, $ADMIN_KEY);
is($r->{json}{status}, 'cancelled', 'the old appointment stays cancelled');

###############################################################################
# rescheduling

$r = reschedule($t, $b->{id}, $b->{token}, $s2->{id});
is($r->{status}, 200, 'reschedule to a free slot: 200');

my $c = $r->{json};
is($c->{id}, $b->{id}, 'reschedule: same appointment');
is($c->{status}, 'booked', 'reschedule: still booked');
is($c->{slot}, $s2->{id}, 'reschedule: new slot');
is($c->{start}, $s2->{start}, 'reschedule: new start');
is($c->{end}, $s2->{end}, 'reschedule: new end');
isnt($c->{token}, $b->{token}, 'reschedule: new token');
check_token($c, 'reschedule', 1);
is($c->{join_url}, "$PUBLIC/visit.html?appointment=$b->{id}"
                   . "#token=$c->{token}",
   'reschedule: join_url with the new token');

is(slot_status('gp-one', $s1->{id}), 'free', 'reschedule: old slot free');
is(slot_status('gp-one', $s2->{id}), 'busy', 'reschedule: new slot busy');

$r = appointment($t, $b->{id}, $c->{token});
is($r->{status}, 200, 'reschedule: the new token works');
is($r->{json}{slot}, $s2->{id}, 'reschedule: read shows the new slot');
is($r->{json}{patient}{name}, 'Max Mustermann', 'reschedule: same patient');

# a third appointment holds $s3; moving onto it must fail
$r = book($t, $s3->{id});
is($r->{status}, 201, 'book a third slot');
my $d = $r->{json};

$r = reschedule($t, $b->{id}, $c->{token}, $s3->{id});
is($r->{status}, 409, 'reschedule to a taken slot: 409');
is($r->{json}{error}{code}, 'slot_taken', 'reschedule: slot_taken');
is($r->{json}{error}{field}, 'slot', 'reschedule: field slot');

$r = appointment($t, $b->{id}, $c->{token});
is($r->{json}{slot}, $s2->{id}, 'refused reschedule: appointment unchanged');
is(slot_status('gp-one', $s2->{id}), 'busy', 'refused reschedule: slot kept');

$r = appointment($t, $d->{id}, $d->{token});
is($r->{json}{status}, 'booked', 'refused reschedule: other one untouched');

# onto its own slot: the slot is taken, by itself
$r = reschedule($t, $b->{id}, $c->{token}, $s2->{id});
is($r->{status}, 409, 'reschedule onto its own slot: 409');

$t->stop;
undef $t;

done_testing;

###############################################################################

sub slot_status {
    my ($doctor, $id) = @_;

    my ($s) = grep { $_->{id} eq $id } @{ slots($t, $doctor, $date) };
    return $s ? $s->{status} : 'missing';
}

# the token's payload names the appointment and lasts past the visit
sub check_token {
    my ($appt, $what, $version) = @_;

    my ($payload, $mac) = ($appt->{token} // '')
        =~ /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/;

    ok(defined $payload, "$what: token is base64url.base64url")
        or return;

    # the version follows the id once it is not 0
    my $bytes = decode_base64url($payload);
    is(length $bytes, $version ? 21 : 17,
       "$what: token payload of " . ($version ? 21 : 17) . ' bytes');

    my ($kind, $exp, $id, $v) = unpack 'C Q> a8 a*', $bytes;
    is($kind, 1, "$what: token of a patient");
    is(unpack('H16', $id), $appt->{id}, "$what: token names the appointment");
    is($version ? unpack('N', $v) : length $v, $version // 0,
       "$what: token names version " . ($version // 0));
    is($exp, rfc3339_epoch($appt->{end}) + $TTL,
       "$what: token valid until 7 days after the visit");
    is(length decode_base64url($mac), 32, "$what: HMAC-SHA256");
}

sub local_epoch {
    my ($ymd, $hh, $mm) = @_;

    my ($y, $m, $d) = split /-/, $ymd;
    return mktime(0, $mm, $hh, $d, $m - 1, $y - 1900, 0, 0, -1);
}

sub rfc3339_epoch {
    my ($s) = @_;

    my ($y, $m, $d, $hh, $mm, $ss, $z, $sign, $oh, $om) = $s =~
        /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(Z|([+-])(\d\d):(\d\d))$/
        or return -1;

    my $t = timegm($ss, $mm, $hh, $d, $m - 1, $y);
    return $t if $z eq 'Z';

    my $off = ($oh * 60 + $om) * 60;
    return $sign eq '+' ? $t - $off : $t + $off;
}

###############################################################################
