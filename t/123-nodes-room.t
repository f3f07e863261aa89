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
use Compress::Zlib qw(crc32);
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
my $KEY = join '', map { sprintf '%02x', int rand 256 } 1 .. 32;

my %node;

for my $name (qw(a b)) {
    $node{$name} = room(grace => '3s', http => join "\n",
        'teleclinic_redis 127.0.0.1:' . $redis->port . ';',
        'teleclinic_public_url http://127.0.0.1:%%PORT%%;',
        "teleclinic_node $name;");
}

# the node of a doctor's room, as the module chooses it
sub home {
    my ($doctor) = @_;
    my ($best) = sort { crc32("$doctor/$b") <=> crc32("$doctor/$a") } keys %node;
    return $best;
}

# every node knows both alive
for my $name (sort keys %node) {
    my $until = time + 15;
    sleep 0.1 until $node{$name}->error_log =~ /2 nodes alive/ || time > $until;
    like($node{$name}->error_log, qr/2 nodes alive/, "node $name sees 2 nodes");
}

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

    my ($doc, $hi) = doctor_console($other, $doctor);
    is($hi->{type}, 'welcome', "$doctor: the console on node $o");
    expect_doctor_queue($doc, [ $p[0]{id}, $p[1]{id} ],
                        "$doctor: the console sees both, in order");

    # a third patient on the other node, relayed, comes in behind them
    my ($p2) = patient($other, $p[2]);
    expect_queue($p2, { position => 3 }, "$doctor: patient 3 is third");

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

    # an error comes back through the relay too
    $p0->send_json({ type => 'accept', call => $call, id => 'x1' });
    my $e = expect_error($p0, 'not_in_call', "$doctor: a refusal is relayed");
    is($e && $e->{id}, 'x1', "$doctor: with the message's id");

    $_->close(1000) for $p0, $p1, $p2, $doc;
}

# the node clients came to dies: the room's node lets them go, the rest
# keep their place

my $h = home('doc-a');
my ($o) = grep { $_ ne $h } sort keys %node;
my ($home, $other) = ($node{$h}, $node{$o});

my @p = book_soon($home, 'doc-a', 2, skip => 3);
my $until = time + 5;
sleep 0.05 until appointment($other, $p[1]{id}, $p[1]{token})->{status}
                 == 200 || time > $until;

my ($first) = patient($home, $p[0]);
my ($second) = patient($other, $p[1]);
my ($doc) = doctor_console($home, 'doc-a');

# (the first round's patients who were never called stay in the queue,
# not connected)
my %ours = map { $_->{id} => 1 } @p;
ok($doc->recv_json(type => 'queue', match => sub {
       join(',', grep { $ours{$_} } map { $_->{appointment} // '' }
                      @{ $_[0]{patients} // [] })
       eq "$p[0]{id},$p[1]{id}"
   }), 'both patients in the room, one relayed, in order');

$other->kill9;

ok(!$first->closed, "the room's own patient stays connected");

my $q = $doc->recv_json(type => 'queue', timeout => 15, match => sub {
    grep { ($_->{appointment} // '') eq $p[1]{id}
           && ($_->{connected} // 1) == 0 } @{ $_[0]{patients} // [] }
});
ok($q, 'the console sees the relayed patient drop when their node dies');

# they come back through the node that is left, in their place
my ($again, $w) = patient($home, $p[1]);
is($w->{type}, 'welcome', 'the patient connects again to the node left');
expect_queue($again, { position => 2 }, 'and is second, as before');

$_->close(1000) for $first, $again, $doc;

ok($home->stop, "node $h stopped cleanly");
$redis->stop;

done_testing;
