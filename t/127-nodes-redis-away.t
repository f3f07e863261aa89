#!/usr/bin/perl

# Redis away with a room's clients on two nodes: no connection can be
# relayed, so the room stays on the node it was on, and a hello for it
# on the other node is answered with room_elsewhere (the room's node
# first in its nodes) and close 1013; the client goes there, and the
# doctor and the patients still meet in one room, calls and all.  A
# client that could not reach the room's node says so in its hello
# (unreachable) and the room is made where it is.  When Redis is back,
# that room goes home again (1012) and everyone is in one room; so do a
# node's rooms when the node comes back.  Real redis-server and nginx.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);
use Teleclinic::Room qw(:all);
use Teleclinic::Redis;

###############################################################################

plan(skip_all => 'redis-server is not installed (Debian: redis-server)')
    unless Teleclinic::Redis::available();

my $redis = Teleclinic::Redis->new;
my %node = %{ room_nodes($redis, grace => '3s') };

my $h = home_of('doc-a', keys %node);
my ($o) = grep { $_ ne $h } sort keys %node;
my ($home, $other) = ($node{$h}, $node{$o});

note("the room of doc-a is on node $h");

my @p = book_soon($home, 'doc-a', 3);
my $until = time + 5;
sleep 0.05 until appointment($other, $p[2]{id}, $p[2]{token})->{status}
                 == 200 || time > $until;

# with Redis: the hello on the other node is relayed
my ($relayed, $w) = patient($other, $p[0]);
is($w && $w->{type}, 'welcome', 'with Redis a hello on either node is welcome');
$relayed->close(1000);

###############################################################################
# Redis stops

$redis->stop;

for my $n ($home, $other) {
    my $u = time + 10;
    sleep 0.1 until $n->error_log =~ /redis.*(?:lost|closed|refused)/i
                    || time > $u;
}

# a patient comes to the other node: told where the room is
my $ws = connect_ws($other);
$w = $ws->hello($p[0]{token}, id => 'h1');
is($w && $w->{type}, 'error', 'Redis away: a hello on the other node is refused');
is($w && $w->{code}, 'room_elsewhere', 'with room_elsewhere');
is($w && $w->{id}, 'h1', 'with the hello\'s id');
is($w && $w->{nodes} && $w->{nodes}[0], $home->url(''),
   'the room\'s node first in its nodes');
is($w && $w->{nodes} && $w->{nodes}[1], $other->url(''), 'then this one');
is($ws->wait_closed(5), 1013, 'and close 1013');

# the doctor, too
my $token = login($other, 'doc-a');
$ws = connect_ws($other);
$w = $ws->hello($token);
is($w && $w->{code}, 'room_elsewhere', 'the doctor on the other node too');
is($ws->wait_closed(5), 1013, 'close 1013');

# where they are sent, they meet
my ($doc, $dw) = (connect_ws($home));
$dw = $doc->hello($token);
is($dw && $dw->{type}, 'welcome', 'the doctor on the room\'s node: welcome');
my ($p0, $w0) = patient($home, $p[0]);
is($w0 && $w0->{type}, 'welcome', 'the patient on the room\'s node: welcome');
my ($p1) = patient($home, $p[1]);

expect_doctor_queue($doc, [ map { $_->{id} } @p[0, 1] ],
                    'one room: the doctor sees both patients');

$doc->send_json({ type => 'call_next' });
my $ring = $p0->recv_json(type => 'ring');
ok($ring, 'Redis away: call_next rings the first patient');
$p0->send_json({ type => 'accept', call => $ring ? $ring->{call} : '' });
ok($p0->recv_json(type => 'call') && $doc->recv_json(type => 'call'),
   'and they are in a call');
expect_queue($p1, { position => 1 }, 'the second patient moves up');

# the room's node cannot be reached: the other one makes the room
$ws = connect_ws($other);
$ws->send_json({ type => 'hello', token => $p[2]{token},
                 unreachable => 'http://x' });
expect_error($ws, 'bad_message', 'unreachable that is not a list: bad_message');
$ws->send_json({ type => 'hello', token => $p[2]{token},
                 unreachable => [ 7 ] });
expect_error($ws, 'bad_message', 'a list of numbers: bad_message');
$ws->send_json({ type => 'hello', token => $p[2]{token},
                 unreachable => [ map { "http://n$_" } 1 .. 17 ] });
expect_error($ws, 'bad_message', 'a list too long: bad_message');

$w = $ws->hello($p[2]{token}, unreachable => [ 'http://elsewhere' ]);
is($w && $w->{code}, 'room_elsewhere',
   'another node unreachable: still room_elsewhere');

$ws = connect_ws($other);
$w = $ws->hello($p[2]{token}, unreachable => [ $home->url('') ]);
is($w && $w->{type}, 'welcome',
   'the room\'s node unreachable: welcome on this one');
expect_queue($ws, { position => 1 }, 'first in the room made here');

###############################################################################
# Redis is back: the room made on the other node goes home (1012), its
# patient is relayed there and is in the one room

$redis->start;

is($ws->wait_closed(20), 1012, 'Redis back: the room made here moves (1012)');

# a relayed welcome is the room's node's: it names itself first
my ($p2, $w2) = patient($other, $p[2]);
ok($w2 && $w2->{type} eq 'welcome'
   && ($w2->{nodes}[0] // '') eq $home->url(''),
   'the patient connects again, relayed');
expect_doctor_queue($doc, [ map { $_->{id} } @p[0, 1, 2] ],
                    'the doctor has all three, in order, in one room');

###############################################################################
# the room's node goes and comes back: its rooms go back to it

$_->close(1000) for $p0, $p2;
ok($home->stop, "node $h stopped");
is($doc->wait_closed(5), 1001, 'its clients are told it goes (1001)');

my $seen = () = $other->error_log =~ /1 nodes alive/g;
$until = time + 15;
sleep 0.1 until (() = $other->error_log =~ /1 nodes alive/g) > $seen
                || time > $until;

($doc, $dw) = (connect_ws($other));
$dw = $doc->hello($token);
is($dw && $dw->{type}, 'welcome', "the doctor on node $o, which has the room");
($p1) = patient($other, $p[1]);
($p2) = patient($other, $p[2]);
expect_doctor_queue($doc, [ map { $_->{id} } @p[1, 2] ],
                    'the patients are there too');

# a call in progress when the room moves
my (undef, $on) = start_call($doc, $p1, $p[1]);
ok($on, "a call on node $o");

# a node's back events of an appointment, in its journal
sub backs {
    my ($t, $appt) = @_;
    return scalar grep { /"op":"back"/ && /\Q$appt->{id}\E/ }
                  split /\n/, $t->read_file($t->prefix . '/state/journal');
}
my $backs = backs($other, $p[2]);

$home->start;

is($doc->wait_closed(20), 1012, "node $h back: the room moves home (1012)");
is($p1->wait_closed(5), 1012, 'the patient in the call too');
is($p2->wait_closed(5), 1012, 'and the one waiting');

($doc, $dw) = (connect_ws($other));
$dw = $doc->hello($token);
($p1) = patient($other, $p[1]);
my $pc = $p1->recv_json(type => 'call', timeout => 10);
my $dc = $doc->recv_json(type => 'call', timeout => 10);
ok($dc && $dc->{rejoin} && $pc && $pc->{rejoin},
   "relayed to node $h, both are given the call back (rejoin)");
is($pc && $pc->{call}, $dc && $dc->{call}, 'one call for both');
($p2) = patient($other, $p[2]);
expect_queue($p2, { position => 1 }, 'the waiting patient is first');

# node o's grace period for the clients it let go runs out: it must not
# end the call there (that would make the visit fulfilled) nor send the
# waiting patient to the end
sleep 4;
is(appointment($home, $p[1]{id}, $p[1]{token})->{json}{status}, 'in-call',
   "after node ${o}'s grace period the visit is still in-call");
is(backs($other, $p[2]), $backs, 'nor anyone sent to the end');

$doc->send_json({ type => 'hangup', call => $dc ? $dc->{call} : '' });
ok($p1->recv_json(type => 'ended'), 'the call ends with its hangup');
$until = time + 5;
sleep 0.1 until (appointment($other, $p[1]{id}, $p[1]{token})->{json}{status}
                 // '') eq 'fulfilled' || time > $until;
is(appointment($other, $p[1]{id}, $p[1]{token})->{json}{status}, 'fulfilled',
   'then the visit is fulfilled, on both nodes');

$_->close(1000) for $doc, $p1, $p2;

ok($_->stop, 'stopped cleanly') for $home, $other;
$redis->stop;

done_testing;
