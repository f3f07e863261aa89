#!/usr/bin/perl

# The waiting room across nodes: a doctor's room lives on one node (of
# the nodes alive, the one rendezvous hashing names), and connections
# that come to another node for it are relayed through Redis.  A patient
# on one node sees their place move when the doctor on the other calls
# the next patient; the ring, the answer, the call and the signaling
# cross between nodes as between workers.  When the node a client came
# to dies, the room's node lets that client go (its grace period starts)
# and everyone else keeps their place.  Real redis-server and nginx.

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

# the node of a doctor's room, as the module chooses it
sub home { home_of($_[0], keys %node) }

for my $doctor (qw(doc-a doc-b)) {
    my $h = home($doctor);
    my ($o) = grep { $_ ne $h } sort keys %node;
    my ($home, $other) = ($node{$h}, $node{$o});

    note("$doctor: the room on node $h, the doctor and patient 1 on $o");

    my @p = book_soon($home, $doctor, 3);

    # a booking on one node is on the other before the patients come
    my $until = time + 5;
    sleep 0.05 until appointment($other, $p[2]{id}, $p[2]{token})->{status}
                     == 200 || time > $until;

    my ($p0, $w0) = patient($other, $p[0]);
    is($w0->{type}, 'welcome', "$doctor: patient 1 checks in on node $o")
        or diag explain $w0;
    is($w0->{doctor}, $doctor, "$doctor: welcomed to the doctor's room");
    is_deeply([ sort @{ $w0->{nodes} // [] } ],
              [ sort map { $node{$_}->url('') } keys %node ],
              "$doctor: the welcome lists both nodes' URLs");
    is($w0->{nodes}[0], $home->url(''), "$doctor: the room's node first");

    my ($p1, $w1) = patient($home, $p[1]);
    is($w1->{type}, 'welcome', "$doctor: patient 2 checks in on node $h");

    expect_queue($p0, { position => 1 },
                 "$doctor: patient 1 (relayed) is first");
    expect_queue($p1, { position => 2, waiting => 2 },
                 "$doctor: patient 2 is second");

    my ($doc, $hi, $doc_token) = doctor_console($other, $doctor);
    is($hi->{type}, 'welcome', "$doctor: the console on node $o");
    expect_doctor_queue($doc, [ $p[0]{id}, $p[1]{id} ],
                        "$doctor: the console sees both, in order");

    # a third patient on the other node, relayed, comes in behind them
    my ($p2) = patient($other, $p[2]);
    expect_queue($p2, { position => 3 }, "$doctor: patient 3 is third");

    my $VISITS = 'teleclinic_consultation_duration_seconds_count';
    my %visits = map { $_ => metrics($node{$_})->{$VISITS} // 0 } keys %node;

    my $t0 = time;
    $doc->send_json({ type => 'call_next' });

    my $ring = $p0->recv_json(type => 'ring');
    ok($ring && $ring->{call}, "$doctor: patient 1 is rung across nodes");
    my $call = $ring ? $ring->{call} : '';

    $p0->send_json({ type => 'accept', call => $call });
    ok($p0->recv_json(type => 'call'), "$doctor: the patient's call");
    ok($doc->recv_json(type => 'call'), "$doctor: the doctor's call");

    expect_queue($p1, { position => 1 },
                 "$doctor: patient 2, on the room's node, moves up");
    expect_queue($p2, { position => 2 },
                 "$doctor: patient 3, relayed, moves up");
    note(sprintf "%s: call_next to the last new position: %.1f ms",
         $doctor, (time - $t0) * 1000);

    # signaling both ways
    my $offer = { type => 'offer', sdp => "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n" };
    $doc->send_json({ type => 'signal', call => $call, data => $offer });
    my $sg = $p0->recv_json(type => 'signal');
    is_deeply($sg && $sg->{data}, $offer, "$doctor: the offer reaches the patient");

    my $answer = { type => 'answer', sdp => "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\n" };
    $p0->send_json({ type => 'signal', call => $call, data => $answer });
    $sg = $doc->recv_json(type => 'signal');
    is_deeply($sg && $sg->{data}, $answer, "$doctor: the answer reaches the doctor");

    $doc->send_json({ type => 'hangup', call => $call });
    my $end = $p0->recv_json(type => 'ended');
    is($end && $end->{reason}, 'hangup',
       "$doctor: the hangup reaches the patient");

    # the visit is counted by the node that held it, not again by the
    # other one, which has it from Redis: the nodes' metrics add up
    my $until1 = time + 5;
    sleep 0.05 until (appointment($other, $p[0]{id}, $p[0]{token})
                      ->{json}{status} // '') eq 'fulfilled' || time > $until1;
    is(metrics($home)->{$VISITS}, $visits{$h} + 1,
       "$doctor: the visit in node ${h}'s metrics");
    is(metrics($other)->{$VISITS} // 0, $visits{$o},
       "$doctor: and not again in node ${o}'s");

    # the visit's record written on one node is read on the other
    my $put = $other->http(PUT => "/api/v1/appointments/$p[0]{id}/record/note",
                           headers => { Authorization => "Bearer $doc_token" },
                           body => { diagnosis => "diagnosis of $doctor" });
    is($put->{status}, 200, "$doctor: the note written on node $o");

    my $until2 = time + 5;
    my $rec;
    do {
        $rec = $home->http(GET => "/api/v1/appointments/$p[0]{id}/record",
                           headers => admin_auth());
        sleep 0.05 unless ($rec->{json}{note}{diagnosis} // '') ne '';
    } while (($rec->{json}{note}{diagnosis} // '') eq '' && time < $until2);
    is($rec->{json}{note}{diagnosis}, "diagnosis of $doctor",
       "$doctor: and read on node $h");

    # an error comes back through the relay too
    $p0->send_json({ type => 'accept', call => $call, id => 'x1' });
    my $e = expect_error($p0, 'not_in_call', "$doctor: a refusal is relayed");
    is($e && $e->{id}, 'x1', "$doctor: with the message's id");

    $_->close(1000) for $p0, $p1, $p2, $doc;
}

# the node clients came to dies with a call in progress: they connect
# again to the node that is left (the browser app takes the next of the
# welcome's nodes), the call is brought back to both (rejoin: they make a
# new peer connection) and the queue keeps its order

my $h = home('doc-a');
my ($o) = grep { $_ ne $h } sort keys %node;
my ($home, $other) = ($node{$h}, $node{$o});

my @p = book_soon($home, 'doc-a', 3, skip => 3);
my $until = time + 5;
sleep 0.05 until appointment($other, $p[2]{id}, $p[2]{token})->{status}
                 == 200 || time > $until;

my ($doc, undef, $doc_token) = doctor_console($other, 'doc-a');
my ($doc2, $hi, $back, $pc, $dc, $killed);
my ($in_call) = patient($other, $p[0]);
my ($queued) = patient($other, $p[1]);
my ($local) = patient($home, $p[2]);

# (the first round's patients who were never called stay in the queue,
# not connected)
my %ours = map { $_->{id} => 1 } @p;
ok($doc->recv_json(type => 'queue', match => sub {
       join(',', grep { $ours{$_} } map { $_->{appointment} // '' }
                      @{ $_[0]{patients} // [] })
       eq join(',', map { $_->{id} } @p)
   }), 'three patients in the room, two relayed, in order');

my ($call, $in) = start_call($doc, $in_call, $p[0]);
ok($in, 'a call between two relayed clients');

$killed = time;
$other->kill9;

ok(!$local->closed, "the room's own patient stays connected");

$doc2 = connect_ws($home);
$hi = $doc2->hello($doc_token);
is($hi && $hi->{type}, 'welcome', 'the doctor connects again to the node left');

($back) = patient($home, $p[0]);
$pc = $back->recv_json(type => 'call', timeout => 15);
$dc = $doc2->recv_json(type => 'call', timeout => 15);

ok($pc && $pc->{rejoin}, 'the patient is given the call back (rejoin)');
ok($dc && $dc->{rejoin}, 'the doctor too');
is($pc && $pc->{call}, $call, 'the same call');
note(sprintf 'node killed to the call given back to both: %.0f ms',
     (time - $killed) * 1000);

my ($queued2) = patient($home, $p[1]);
expect_queue($queued2, { position => 1 },
             'the relayed patient who waited is first again');
expect_queue($local, { position => 2 }, 'the local one second, as before');

$doc2->send_json({ type => 'hangup', call => $dc ? $dc->{call} : '' });
ok($back->recv_json(type => 'ended'), 'the call given back ends with a hangup');

$_->close(1000) for $doc2, $back, $queued2, $local;

# the room's own node dies with a call in progress: the node left makes
# the room again as its clients come back; the call is given back to
# both (rejoin: a new call id, new TURN credentials), the patients
# waiting keep their places, one sent back with "later" too

$other->start;                       # its journal, then the stream

for my $n ($home, $other) {
    my $until = time + 15;
    sleep 0.1 until ($n->error_log =~ /(\d+) nodes alive(?!.*nodes alive)/s
                     && $1 == 2) || time > $until;
}

my @q = book_soon($home, 'doc-a', 4, skip => 6);
$until = time + 5;
sleep 0.05 until appointment($other, $q[3]{id}, $q[3]{token})->{status}
                 == 200 || time > $until;

my %waits = map { $q[$_]{id} => 1 } 1 .. 3;

# the doctor's queue, of this scenario's waiting patients
sub waiting_order {
    my ($ws, $want, $name) = @_;

    my @ids = map { $_->{id} } @$want;

    ok($ws->recv_json(type => 'queue', timeout => 10, match => sub {
           join(',', grep { $waits{$_} } map { $_->{appointment} // '' }
                          @{ $_[0]{patients} // [] })
           eq join(',', @ids)
       }), $name);
}

my ($dw, $tw, $talking);
my %wq;
($doc, $dw) = doctor_console($home, 'doc-a');
($talking, $tw) = patient($home, $q[0]);
($wq{1}) = patient($other, $q[1]);
($wq{2}) = patient($home, $q[2]);
($wq{3}) = patient($other, $q[3]);

waiting_order($doc, [ @q[1 .. 3] ],
              'three wait, two on the other node, in order');

# "later": the first of them goes to the end, and the stream has it
$doc->send_json({ type => 'skip', appointment => $q[1]{id} });
waiting_order($doc, [ @q[2, 3, 1] ], 'one sent back with later');

my ($stream) = @{ $redis->command('KEYS', 'teleclinic:*:log') // [] };
Teleclinic::Redis::wait_for(sub {
    my $entries = $redis->command('XRANGE', $stream, '-', '+') // [];
    grep { /"op":"back"/ && /\Q$q[1]{id}\E/ }
         map { @{ $_->[1] } } @$entries;
}, 'the sent-back line in the stream');

my ($old_call, $on) = start_call($doc, $talking, $q[0]);
ok($on, 'a call in the room, on its own node');


# the call's status reaches the other node before the kill
$until = time + 5;
sleep 0.05 until (appointment($other, $q[0]{id}, $q[0]{token})->{json}{status}
                  // '') eq 'in-call' || time > $until;

my $seen = () = $other->error_log =~ /1 nodes alive/g;
$killed = time;
$home->kill9;

$until = time + 15;
sleep 0.1 until (() = $other->error_log =~ /1 nodes alive/g) > $seen
                || time > $until;
ok((() = $other->error_log =~ /1 nodes alive/g) > $seen,
   "node $o finds node $h gone");

ok($wq{1}->wait_closed(10) && $wq{3}->wait_closed(10),
   'the relayed patients are let go, to connect again');

$doc2 = connect_ws($other);
$hi = $doc2->hello($doc_token);
is($hi && $hi->{type}, 'welcome', 'the doctor connects to the node left');

($back) = patient($other, $q[0]);
$pc = $back->recv_json(type => 'call', timeout => 10);
$dc = $doc2->recv_json(type => 'call', timeout => 10);

ok($pc && $pc->{rejoin}, 'the patient is given the call back (rejoin)');
ok($dc && $dc->{rejoin}, 'the doctor too');
is($pc && $pc->{call}, $dc && $dc->{call}, 'one call for both');
isnt($pc && $pc->{call}, $old_call, 'made again, with a new id');
note(sprintf 'room node killed to the call given back to both: %.0f ms',
     (time - $killed) * 1000);

# they come back in another order than they had; the queue has its own
($wq{$_}) = patient($other, $q[$_]) for 1, 3, 2;
waiting_order($doc2, [ @q[2, 3, 1] ],
              'the queue made again has the order it had, later kept');
expect_queue($wq{2}, { position => 1 }, 'the first waiting is first');
expect_queue($wq{1}, { position => 3 }, 'the one sent back is last');

my $sig = { type => 'offer', sdp => "v=0\r\no=- 3 3 IN IP4 127.0.0.1\r\n" };
$doc2->send_json({ type => 'signal', call => $dc->{call}, data => $sig });
my $got = $back->recv_json(type => 'signal');
is_deeply($got && $got->{data}, $sig, 'signaling goes on in the call');

$_->close(1000) for $doc2, $back, values %wq;

ok($other->stop, "node $o stopped cleanly");
$redis->stop;

done_testing;
