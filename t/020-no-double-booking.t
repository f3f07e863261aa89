#!/usr/bin/perl

# No double booking: 200 truly concurrent POSTs for one slot, from several
# client processes against two nginx workers, give exactly one 201 and
# 199 x 409 slot_taken; the slot then holds only the winner.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);

###############################################################################

my $DOCTOR = 'race-one';
my $CLIENTS = 4;              # client processes
my $PER_CLIENT = 50;          # concurrent requests in each
my $ROUNDS = 5;               # slots raced for

my $t = Teleclinic::Test->new(workers => 2);

write_directory($t, directory(
    departments => ['gp'],
    doctors     => [ doctor($DOCTOR, 'gp', name => 'Dr. Race',
                            hours => ALL_DAY) ],
));

# reuseport gives each worker its own listening socket and spreads the
# connections between them by hash: both workers take part in every race
$t->run(conf(listen => 'reuseport',
             http => q{log_format race '$pid $request_method $status';},
             api => 'access_log %%PREFIX%%/logs/race.log race;'));

my @workers = $t->worker_pids;
is(scalar @workers, 2, 'two workers');

my $date = day_ahead(1);
my $r = $t->http(GET => "/api/v1/doctors/$DOCTOR/slots?date=$date");
is($r->{status}, 200, 'slots of tomorrow');

my @free = grep { $_->{status} eq 'free' } @{ $r->{json} // [] };
cmp_ok(scalar @free, '>=', $ROUNDS, "at least $ROUNDS free slots");

# slots spread over the day, not neighbours
my @slots = map { $free[int($_ * @free / $ROUNDS)]{id} } 0 .. $ROUNDS - 1;
my %winner;

for my $slot (@slots) {
    my @res = race($slot, [$t->port], clients => $CLIENTS,
                   per_client => $PER_CLIENT);

    is(scalar @res, $CLIENTS * $PER_CLIENT, "$slot: every request answered");

    my @won = grep { $_->{status} == 201 } @res;
    my @lost = grep { $_->{status} == 409 } @res;
    my @other = grep { $_->{status} != 201 && $_->{status} != 409 } @res;

    is(scalar @won, 1, "$slot: exactly one 201");
    is(scalar @lost, $CLIENTS * $PER_CLIENT - 1, "$slot: all others 409");
    is(scalar @other, 0, "$slot: no other answer")
        or diag(join ', ', map { $_->{status} || $_->{error} } @other[0 .. 4]);

    is(scalar(grep { ($_->{code} // '') eq 'slot_taken'
                     && ($_->{field} // '') eq 'slot' } @lost),
       scalar @lost, "$slot: every 409 is slot_taken on field slot");

    my $w = $won[0] or next;

    is($w->{body}{slot}, $slot, "$slot: the winner has the slot");
    is($w->{body}{status}, 'booked', "$slot: the winner is booked");

    $r = appointment($t, $w->{body}{id}, $w->{body}{token});
    is($r->{status}, 200, "$slot: the winner reads its appointment");
    is($r->{json}{slot}, $slot, "$slot: stored with the slot");
    is($r->{json}{patient}{name}, $w->{name},
       "$slot: stored for the winning patient");

    $winner{$slot} = $w->{body}{id};
}

# what the clinic sees: each raced slot busy, held by the winner alone

$r = $t->http(GET => "/api/v1/doctors/$DOCTOR/slots?date=$date");
my %status = map { $_->{id} => $_->{status} } @{ $r->{json} // [] };
is(scalar(grep { ($status{$_} // '') eq 'busy' } @slots), $ROUNDS,
   'raced slots are busy');

$r = admin_day($t, $DOCTOR, $date);
is($r->{status}, 200, "admin: the doctor's day");

my @day = @{ $r->{json} // [] };
is(scalar @day, $ROUNDS, "admin: one appointment per raced slot");
is_deeply({ map { $_->{slot} => $_->{id} } @day }, \%winner,
          'admin: each slot held by its winner');

# both workers answered POSTs (reuseport makes that certain)
my %served;

for (split /\n/, $t->read_file('logs/race.log')) {
    my ($pid, $method) = split ' ';
    $served{$pid}++ if $method eq 'POST';
}

is(scalar(keys %served), 2, 'both workers served bookings');
is_deeply([sort { $a <=> $b } $t->worker_pids], [sort { $a <=> $b } @workers],
          'workers unchanged: none crashed');

ok($t->stop, 'nginx stopped cleanly');

done_testing;
