#!/usr/bin/perl

# Weekly schedules: a doctor's weekday hours, slot length and days off
# decide which slots are listed and which can be booked, and the two
# agree on every day of a week.

use strict;
use warnings;

use Test::More;
use POSIX qw(strftime);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);

###############################################################################

my @WEEK = qw(sun mon tue wed thu fri sat);

# the day after tomorrow is a day off; each weekday has its own hours

my $off = strftime('%Y-%m-%d', localtime(time + 2 * 86400));
my %hours = (
    mon => [['09:00', '10:00']],
    wed => [['09:00', '10:00'], ['14:00', '15:00']],
    fri => [['16:00', '17:00']],
    sat => [['08:00', '08:45']],
);

my $t = Teleclinic::Test->new(workers => 2);

write_directory($t, directory(
    departments => ['gp'],
    doctors     => [ doctor('week-one', 'gp', name => 'Dr. Week',
                            slot_minutes => 15, hours => \%hours,
                            days_off => [$off]) ],
));

$t->run(conf(zone => '1m'));

for my $n (1 .. 8) {
    my @tm = localtime(time + $n * 86400);
    my $date = strftime('%Y-%m-%d', @tm);
    my $compact = strftime('%Y%m%d', @tm);
    my $day = $WEEK[$tm[6]];

    my @want;

    if ($date ne $off) {
        for my $range (@{ $hours{$day} // [] }) {
            my ($from, $to) = map { my ($h, $m) = split /:/; $h * 60 + $m }
                              @$range;

            for (my $m = $from; $m + 15 <= $to; $m += 15) {
                push @want, sprintf('week-one.%s.%02d%02d', $compact,
                                    $m / 60, $m % 60);
            }
        }
    }

    my $r = $t->http(GET => "/api/v1/doctors/week-one/slots?date=$date");
    is_deeply([map { $_->{id} } @{ $r->{json} }], \@want,
              "$date ($day): the slots its hours say");

    # every quarter hour of the day can be booked only where it is a slot

    my %slot = map { $_ => 1 } @want;
    my ($booked, $refused, $wrong) = (0, 0, 0);

    for (my $m = 0; $m < 24 * 60; $m += 15) {
        my $id = sprintf('week-one.%s.%02d%02d', $compact, $m / 60, $m % 60);
        my $b = book($t, $id, name => 'Week Patient');

        if ($slot{$id}) {
            $b->{status} == 201 ? $booked++ : $wrong++;

        } else {
            ($b->{status} == 422 && $b->{json}{error}{code} eq 'unknown_slot')
                ? $refused++ : $wrong++;
        }
    }

    is($wrong, 0, "$date ($day): $booked booked, $refused refused, "
                  . "as the schedule says");
}

$t->stop;

done_testing();
