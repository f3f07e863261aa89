#!/usr/bin/perl

# Days with a clock change, in a time zone that has them (nginx's
# "env TZ=..."): on the day clocks go forward the skipped hour has no
# slot, every slot has the offset in force at its start, and no two
# slots start at the same moment; the slot's id and its wall time agree.

use strict;
use warnings;

use Test::More;
use POSIX qw(mktime);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);

###############################################################################

plan(skip_all => 'no tzdata for Europe/Berlin')
    unless -f '/usr/share/zoneinfo/Europe/Berlin';

my $t = Teleclinic::Test->new(workers => 1);

write_directory($t, directory(
    departments => ['gp'],
    doctors     => [ doctor('clock-one', 'gp', name => 'Dr. Clock',
                            slot_minutes => 60, hours => ALL_DAY) ],
));

$t->run(conf(main => 'env TZ=Europe/Berlin;', zone => '1m',
             http => 'teleclinic_booking_horizon 1000d;'));

sub day {
    my ($date) = @_;
    my $r = $t->http(GET => "/api/v1/doctors/clock-one/slots?date=$date");
    return $r->{json};
}

# clocks go forward at 02:00 on the last Sunday of March 2027

my $spring = day('2027-03-28');

is_deeply([map { substr($_->{id}, -4) } @$spring],
          [map { sprintf('%02d00', $_) } 0, 1, 3 .. 23],
          'spring forward: no slot in the skipped hour');
is($spring->[1]{start}, '2027-03-28T01:00:00+01:00', 'before: +01:00');
is($spring->[1]{end}, '2027-03-28T03:00:00+02:00',
   'the slot before the change ends at 03:00 summer time');
is($spring->[2]{start}, '2027-03-28T03:00:00+02:00', 'after: +02:00');

# clocks go back at 03:00 on the last Sunday of October 2027

my $autumn = day('2027-10-31');

is(scalar @$autumn, 24, 'fall back: one slot per wall-clock hour');
is($autumn->[0]{start}, '2027-10-31T00:00:00+02:00', 'midnight: +02:00');
is($autumn->[23]{start}, '2027-10-31T23:00:00+01:00', 'evening: +01:00');

# a plain day either side, and no two slots at one moment

for my $date ('2027-03-27', '2027-03-29', '2027-10-30', '2027-11-01') {
    my $d = day($date);
    is(scalar @$d, 24, "$date: 24 slots");
}

for my $d ($spring, $autumn) {
    my %seen;
    my @dup = grep { $seen{epoch($_->{start})}++ } @$d;
    is(scalar @dup, 0, 'no two slots start at the same moment');

    my @bad = grep { substr($_->{id}, -4) ne
                     substr($_->{start}, 11, 2) . substr($_->{start}, 14, 2) }
              @$d;
    is(scalar @bad, 0, 'each slot id names its wall-clock start');
}

# a slot in the skipped hour cannot be booked; the one after can

my $r = book($t, 'clock-one.20270328.0200', name => 'Clock Patient');
is($r->{json}{error}{code}, 'unknown_slot', 'no booking in the skipped hour');

$r = book($t, 'clock-one.20270328.0300', name => 'Clock Patient');
is($r->{status}, 201, 'the hour after the change can be booked');
is($r->{json}{start}, '2027-03-28T03:00:00+02:00', 'at 03:00 summer time');

$t->stop;

done_testing();

sub epoch {
    my ($s) = @_;
    my ($y, $mo, $d, $h, $mi, $se, $sign, $oh, $om) =
        $s =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)([+-])(\d+):(\d+)$/;
    my $off = ($oh * 3600 + $om * 60) * ($sign eq '-' ? -1 : 1);
    local $ENV{TZ} = 'UTC';
    return mktime($se, $mi, $h, $d, $mo - 1, $y - 1900) - $off;
}
