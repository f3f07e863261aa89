#!/usr/bin/perl

# The outbox across nodes: a booking's confirmation is the message of the
# node that took the booking; while that node lives no other node sends
# it (the gateway gets it once, and the others' copies leave when it is
# sent); when that node dies with it unsent, another node sends it.  Real
# redis-server, nginx and the tests' gateway, stopped by pid.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);
use Teleclinic::Redis;
use Teleclinic::Gateway;

###############################################################################

plan(skip_all => 'redis-server is not installed (Debian: redis-server)')
    unless Teleclinic::Redis::available();

my $redis = Teleclinic::Redis->new;
my $gw_port = Teleclinic::Test::free_port();
my %node;

for my $name (qw(a b)) {
    $node{$name} = group_node($name,
        'teleclinic_redis 127.0.0.1:' . $redis->port . ';',
        http => join "\n",
            'teleclinic_public_url https://clinic.example/;',
            "teleclinic_notify_url http://127.0.0.1:$gw_port/hooks;",
            'teleclinic_notify_secret notify-secret-0123456789;',
            'teleclinic_notify_timeout 1s;');
}

my $gw = Teleclinic::Gateway->new(port => $gw_port,
                                  log => $node{a}->prefix . '/gateway.log');
$gw->start;

sub confirmations {
    my ($id) = @_;
    return grep { ($_->{json}{type} // '') eq 'confirmation'
                  && ($_->{json}{appointment} // '') eq $id } $gw->requests;
}

# wait until both nodes know each other alive
for my $t (values %node) {
    my $until = time + 10;
    sleep 0.1 until $t->error_log =~ /2 nodes alive/ || time > $until;
}

my $date = day_ahead(1);
my @free = free_slot_ids($node{a}, 'gp-one', $date);

# node a alive: its confirmation goes out once, by node a

my $r = book_when_up($node{a}, $free[0], name => 'Once Only');
is($r->{status}, 201, 'booked on node a');
my $first = $r->{json}{id};

ok($gw->wait_for(sub { confirmations($first) }, 10),
   'the confirmation reaches the gateway');
sleep 3;    # a second copy would have gone by now
is(scalar(confirmations($first)), 1, 'once: node b did not send its copy');

# node a dies with a confirmation it could not send: node b sends it

$gw->stop;

$r = book_when_up($node{a}, $free[1], name => 'Taken Over');
is($r->{status}, 201, 'booked on node a while the gateway is down');
my $second = $r->{json}{id};

# node b has the booking before node a goes
my $until = time + 5;
sleep 0.05 until appointment($node{b}, $second, $r->{json}{token})->{status}
                 == 200 || time > $until;

$node{a}->kill9;
$gw->start;

ok($gw->wait_for(sub { confirmations($second) }, 20),
   'node b sends the dead node\'s confirmation');

my ($m) = confirmations($second);
is($m->{json}{appointment}, $second, 'for its appointment');

ok($node{b}->stop, 'node b stopped cleanly');
$gw->stop;
$redis->stop;

done_testing;
