#!/usr/bin/perl

# Several nodes under Redis Sentinel: the Redis master is killed right
# after bookings were acknowledged; the Sentinels promote the replica,
# both nodes follow it, and no acknowledged booking is lost: each is on
# the other node and in the new master's stream (replicas=1: a change is
# answered once a replica has it too, appendfsync always on both).
# Bookings go on after the failover.  Real redis-server, Sentinels and
# nginx, stopped by pid.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);
use Teleclinic::Redis;

###############################################################################

plan(skip_all => 'redis-server is not installed (Debian: redis-server)')
    unless Teleclinic::Redis::available();

my @durable = ('--appendonly', 'yes', '--appendfsync', 'always');

my ($master, $replica, @sentinels) =
    Teleclinic::Redis::sentinel_group(args => \@durable);

my %node;

for my $name (qw(a b)) {
    $node{$name} = group_node($name, join "\n",
        'teleclinic_redis sentinel replicas=1 timeout=500ms;',
        'teleclinic_redis_sentinel '
        . join(' ', map { '127.0.0.1:' . $_->port } @sentinels)
        . ' master=tc;');
}

my $date = day_ahead(1);
my @free = (free_slot_ids($node{a}, 'gp-one', $date),
            free_slot_ids($node{a}, 'gp-two', $date));

my @booked;

for my $i (0 .. 11) {
    my $r = book_when_up($node{a}, $free[$i], name => "Patient $i",
                         wait => 30);
    is($r->{status}, 201, "booking $i acknowledged on node a")
        or diag explain $r->{json};
    push @booked, $r->{json};
}

# the master dies at once after the last answer
$master->stop('KILL');

for my $name (qw(a b)) {
    my $until = time + 30;
    sleep 0.1 until $node{$name}->error_log
                    =~ /redis "main": connected to 127\.0\.0\.1:${\ $replica->port }\b/
                    || time > $until;
    like($node{$name}->error_log,
         qr/redis "main": connected to 127\.0\.0\.1:${\ $replica->port }\b/,
         "node $name follows the failover to the promoted replica");
}

# every acknowledged booking is on the other node, and in the stream

for my $i (0 .. $#booked) {
    my $b = $booked[$i] // next;
    my $until = time + 15;
    my $r;

    do {
        $r = appointment($node{b}, $b->{id}, $b->{token});
        sleep 0.1 if $r->{status} != 200;
    } while ($r->{status} != 200 && time < $until);

    is($r->{status}, 200, "booking $i is on node b after the failover");
}

my $entries = $replica->command('XRANGE', 'teleclinic:{tc}:log', '-', '+');
my %in = map { my %f = @{ $_->[1] }; (($f{line} // '') =~ /"id":"([0-9a-f]+)"/)[0] // '' => 1 }
         @{ $entries // [] };
is(scalar(grep { $in{$_->{id} // ''} } @booked), scalar @booked,
   'the new master\'s stream has every acknowledged booking');

# bookings go on, on both nodes

my $r = book_when_up($node{a}, $free[12], name => 'After A',
                     wait => 30);
is($r->{status}, 201, 'node a books after the failover');
$r = book_when_up($node{b}, $free[13], name => 'After B', wait => 30);
is($r->{status}, 201, 'node b books after the failover');

$r = book($node{b}, $free[12]);
is($r->{status}, 409, 'and a slot node a took is taken on node b');

for my $name (sort keys %node) {
    ok($node{$name}->stop, "node $name stopped cleanly");
}

$_->stop for $replica, @sentinels;

done_testing;
