#!/usr/bin/perl

# The call, with the patient and the doctor on different nginx workers:
# call_next rings, busy while ringing, accept gives both sides a call
# with ICE servers and TURN credentials scoped to the call; signaling
# passes data unchanged between the two participants only (a 6 KiB
# SDP-like text, a burst in order), strangers get not_in_call and reach
# nobody; hangup by either side ends it for both; the appointment goes
# arrived -> in-call -> fulfilled with its times, and the visit moves
# the doctor's running average; decline and an unanswered ring send the
# patient to the end of the queue; call of a named patient; queue_empty.

use strict;
use warnings;

use Test::More;

use Mojo::JSON qw(true false);
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(appointment);
use Teleclinic::Room qw(:all);
use Teleclinic::WS;

###############################################################################

my $RING = 3;
my $TTL = 3600;
my $AVG = $SLOT_MINUTES * 60;

my $t = room(ring => "${RING}s", ttl => "${TTL}s");

my @p = book_soon($t, 'doc-a', 4);

sub status_of {
    my ($a) = @_;
    return appointment($t, $a->{id}, $a->{token})->{json} // {};
}

# the call message of one side, its ICE servers and TURN credentials
sub check_call {
    my ($m, %want) = @_;

    my $who = $want{role};

    ok($m, "$who gets call") or return;

    is($m->{call}, $want{call}, "$who call: the call id");
    is($m->{role}, $who, "$who call: role");
    is($m->{appointment}, $want{appointment}, "$who call: appointment");
    ok(($m->{offerer} ? 1 : 0) == ($who eq 'doctor' ? 1 : 0),
       "$who call: offerer only for the doctor");
    ok(($m->{rejoin} ? 1 : 0) == ($want{rejoin} ? 1 : 0),
       "$who call: rejoin " . ($want{rejoin} ? 'true' : 'false'));

    my $ice = ref $m->{ice_servers} eq 'ARRAY' ? $m->{ice_servers} : [];
    my %urls;
    my $creds = 0;

    for my $s (@$ice) {
        my @u = ref $s->{urls} ? @{ $s->{urls} } : ($s->{urls} // ());
        $urls{$_} = 1 for @u;

        next unless grep { /^turns?:/ } @u;

        my ($exp, $call, $role) =
            ($s->{username} // '') =~ /^(\d+):([^:]+):([^:]+)$/;

        is("$call:$role", "$want{call}:$who",
           "$who TURN username: EXPIRY:CALL:ROLE of this call and role");
        ok($exp >= int($want{before}) + $TTL && $exp <= $want{after} + $TTL,
           "$who TURN username: expiry is now + teleclinic_turn_ttl")
            or diag "expiry $exp, now between $want{before} and $want{after}";
        is($s->{credential}, turn_credential($s->{username} // ''),
           "$who TURN credential: base64(HMAC-SHA1(secret, username))");
        $creds++;
    }

    ok($creds, "$who call: TURN entries carry credentials")
        or diag explain $ice;
    ok($urls{'stun:127.0.0.1:3478'}
       && $urls{'turn:127.0.0.1:3478?transport=udp'}
       && $urls{'turns:127.0.0.1:5349?transport=tcp'},
       "$who call: every URL of teleclinic_ice_servers")
        or diag explain $ice;
}

###############################################################################
# nobody there yet

my ($doc, $dw) = doctor_console($t, 'doc-a');
my $wdoc = worker_of($t, $doc);
ok($wdoc, 'the doctor\'s worker is found');

$doc->send_json({ type => 'call_next', id => 'n1' });
my $e = expect_error($doc, 'queue_empty', 'call_next, nobody waiting');
is($e && $e->{id}, 'n1', 'queue_empty: the id comes back');

###############################################################################
# three patients; the first on the other worker

my ($p0, $w) = patient($t, $p[0], not_on => $wdoc);
is($w && $w->{type}, 'welcome', 'patient 1 checks in');
isnt(worker_of($t, $p0), $wdoc, 'patient 1 and the doctor: different workers');

my ($p1) = patient($t, $p[1]);
my ($p2) = patient($t, $p[2]);

expect_doctor_queue($doc, [ map { $_->{id} } @p[0 .. 2] ],
                    'doctor sees three patients');
expect_queue($p2, { position => 3, waiting => 3 }, 'patient 3: 3 of 3');

###############################################################################
# call_next rings the first, the doctor is busy meanwhile

$doc->send_json({ type => 'call_next' });

my $cs = $doc->recv_json(type => 'call_state');
is($cs && $cs->{state}, 'ringing', 'call_next: call_state ringing');
is($cs && $cs->{appointment}, $p[0]{id}, 'call_next: the first patient');
my $call = $cs ? $cs->{call} : 'none';
ok(defined $call && length $call, 'call_next: a call id');

my $ring = $p0->recv_json(type => 'ring');
is($ring && $ring->{call}, $call, 'patient 1 gets ring with the call id');
is($ring && $ring->{timeout}, $RING, 'ring: timeout = teleclinic_ring_timeout');

my $dq = expect_doctor_queue($doc, [ map { $_->{id} } @p[0 .. 2] ],
                             'doctor queue while ringing');
is($dq && $dq->{patients}[0]{state}, 'ringing', 'doctor queue: ringing');

$doc->send_json({ type => 'call_next' });
expect_error($doc, 'busy', 'call_next while ringing: busy');

$doc->send_json({ type => 'call', appointment => $p[1]{id} });
expect_error($doc, 'busy', 'call while ringing: busy');

$p1->send_json({ type => 'accept', call => $call });
expect_error($p1, 'not_in_call', 'another patient accepts the ring: refused');

$p1->send_json({ type => 'decline', call => $call });
expect_error($p1, 'not_in_call', 'another patient declines it: refused');

###############################################################################
# accept

my $before = time;
$p0->send_json({ type => 'accept', call => $call });

my $pc = $p0->recv_json(type => 'call');
my $dc = $doc->recv_json(type => 'call');
my $after = time;

check_call($pc, role => 'patient', call => $call, appointment => $p[0]{id},
           before => $before, after => $after);
check_call($dc, role => 'doctor', call => $call, appointment => $p[0]{id},
           before => $before, after => $after);

$dq = $doc->recv_json(type => 'queue', match => sub {
    ($_[0]{patients}[0]{state} // '') eq 'in-call'
});
is($dq && $dq->{patients}[0]{appointment}, $p[0]{id},
   'doctor queue: the patient in the call shows in-call');
is($dq && $dq->{waiting}, 2,
   'doctor queue: waiting counts the two waiting, not the one in the call');
my $q = expect_queue($p1, { doctor_busy => 1 },
                     'patient 2 is told the doctor is busy');
if ($q) {
    my $rest = $q->{estimated_wait} - ($q->{position} - 1) * $AVG;
    ok($rest >= 0 && $rest <= $AVG,
       'estimated_wait = rest of the call (<= average) + (position - 1)'
       . ' x average') or diag explain $q;
}

my $s = status_of($p[0]);
is($s->{status}, 'in-call', 'accepted: the appointment is in-call');
# field names proposed by the tests (the README has none yet)
ok(epoch($s->{visit_start}), 'in-call: the visit\'s start is set')
    or diag explain $s;

###############################################################################
# signaling between the two workers

my $sdp = join '', map { sprintf "a=candidate:%d 1 udp %d 10.0.%d.%d %d typ"
                                 . " host generation 0 \x{e9}\r\n",
                                 $_, 2122260223 - $_, $_ % 250, $_ % 200,
                                 50000 + $_ } 1 .. 80;
$sdp = substr("v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\ns=-\r\n" . $sdp,
              0, 6 * 1024);

my $offer = { type => 'offer', sdp => $sdp,
              extra => [1, 2.5, undef, true, false, { nested => "\x{263a}" }] };

$doc->send_json({ type => 'signal', call => $call, data => $offer });
my $sg = $p0->recv_json(type => 'signal');
is($sg && $sg->{from}, 'doctor', 'signal to the patient: from doctor');
is($sg && $sg->{call}, $call, 'signal: the call id');
is_deeply($sg && $sg->{data}, $offer,
          'a 6 KiB offer crosses workers unchanged');

my $answer = { type => 'answer', sdp => "v=0\r\ns=answer\r\n" };
$p0->send_json({ type => 'signal', call => $call, data => $answer });
$sg = $doc->recv_json(type => 'signal');
is($sg && $sg->{from}, 'patient', 'signal to the doctor: from patient');
is_deeply($sg && $sg->{data}, $answer, 'the answer arrives unchanged');

# a burst of candidates keeps its order
for my $i (1 .. 30) {
    $p0->send_json({ type => 'signal', call => $call,
                     data => { candidate => "candidate:$i",
                               sdpMLineIndex => 0 } });
}
my @got;
for (1 .. 30) {
    my $m = $doc->recv_json(type => 'signal') or last;
    push @got, $m->{data}{candidate};
}
is_deeply(\@got, [ map { "candidate:$_" } 1 .. 30 ],
          '30 candidates arrive, in order');

$p0->send_json({ type => 'signal', call => $call, data => 'not an object' });
expect_error($p0, 'bad_message', 'signal data that is not an object');

$p0->send_json({ type => 'media', call => $call, state => 'connected' });
$doc->send_json({ type => 'media', call => $call, state => 'connected' });

###############################################################################
# strangers

my ($docb) = doctor_console($t, 'doc-b');

for my $who ([ 'another patient', $p1 ], [ 'another doctor', $docb ]) {
    my ($name, $ws) = @$who;

    $ws->send_json({ type => 'signal', call => $call,
                     data => { type => 'offer', sdp => 'evil' } });
    expect_error($ws, 'not_in_call', "$name sends signal: not_in_call");

    $ws->send_json({ type => 'media', call => $call, state => 'failed' });
    expect_error($ws, 'not_in_call', "$name sends media: not_in_call");

    $ws->send_json({ type => 'hangup', call => $call });
    expect_error($ws, 'not_in_call', "$name sends hangup: not_in_call");
}

$p0->send_json({ type => 'signal', call => 'fedcba9876543210', data => {} });
expect_error($p0, 'not_in_call', 'signal for an unknown call: not_in_call');

my @leak = ($doc->quiet(0.5, type => 'signal'), $p0->take(type => 'signal'),
            $doc->take(type => 'ended'), $p0->take(type => 'ended'));
is(scalar @leak, 0, 'nothing of the strangers reached the participants')
    or diag explain \@leak;
is(scalar($p0->take(type => 'error')) + scalar($doc->take(type => 'error')),
   0, 'media reports of the participants: no error');

###############################################################################
# the doctor hangs up

$doc->send_json({ type => 'hangup', call => $call });

my $end_d = $doc->recv_json(type => 'ended', call => $call);
my $end_p = $p0->recv_json(type => 'ended', call => $call);
my $visit_done = time;
is($end_d && "$end_d->{call} $end_d->{reason}", "$call hangup",
   'doctor hangs up: the doctor gets ended hangup');
is($end_p && "$end_p->{call} $end_p->{reason}", "$call hangup",
   'doctor hangs up: the patient gets ended hangup');
my $v = $p0->recv_json(type => 'visit');
is($v && $v->{status}, 'fulfilled', 'the patient gets visit fulfilled');

$s = status_of($p[0]);
is($s->{status}, 'fulfilled', 'hung up: the appointment is fulfilled');
ok(epoch($s->{visit_end}) && epoch($s->{visit_start})
   && epoch($s->{visit_end}) >= epoch($s->{visit_start}),
   'fulfilled: the visit\'s start and end') or diag explain $s;

$dq = expect_doctor_queue($doc, [ map { $_->{id} } @p[1, 2] ],
                          'the patient seen leaves the queue');

# the doctor's first finished visit sets the average (the slot length
# stood in until then)
my $long = $visit_done - $before + 1;
my $avg = $dq ? $dq->{average} : -1;
ok($avg >= 0 && $avg <= $long && $avg < $AVG,
   'the first visit\'s duration is the average now')
    or diag "average $avg, visit under $long s";

expect_queue($p1, { position => 1, waiting => 2, doctor_busy => 0 },
             'patient 2 is next, the doctor is free');

$p0->send_json({ type => 'signal', call => $call, data => {} });
expect_error($p0, 'not_in_call', 'signal for the ended call: not_in_call');

###############################################################################
# decline: back to the end

$doc->send_json({ type => 'call_next' });
$cs = $doc->recv_json(type => 'call_state',
                      match => sub { $_[0]{state} eq 'ringing' });
is($cs && $cs->{appointment}, $p[1]{id}, 'call_next rings patient 2');
$ring = $p1->recv_json(type => 'ring');
ok($ring, 'patient 2 rings');

$p1->send_json({ type => 'decline', call => $ring ? $ring->{call} : 'x' });
$cs = $doc->recv_json(type => 'call_state',
                      match => sub { $_[0]{state} ne 'ringing' });
is($cs && $cs->{state}, 'declined', 'decline: call_state declined');
is($cs && $cs->{appointment}, $p[1]{id}, 'declined: the appointment');
expect_doctor_queue($doc, [ map { $_->{id} } @p[2, 1] ],
                    'declined: patient 2 goes to the end');
expect_queue($p1, { position => 2, waiting => 2 },
             'declined: patient 2 is told position 2');
is(status_of($p[1])->{status}, 'arrived', 'declined: still arrived');

###############################################################################
# no answer: timeout, back to the end

$doc->send_json({ type => 'call_next' });
$cs = $doc->recv_json(type => 'call_state',
                      match => sub { $_[0]{state} eq 'ringing' });
is($cs && $cs->{appointment}, $p[2]{id}, 'call_next rings patient 3');
$ring = $p2->recv_json(type => 'ring');
my $rung = $ring ? $ring->{call} : 'x';

$cs = $doc->recv_json(type => 'call_state', timeout => $RING + 15,
                      match => sub { $_[0]{state} ne 'ringing' });
is($cs && $cs->{state}, 'timeout', 'no answer: call_state timeout');
expect_doctor_queue($doc, [ map { $_->{id} } @p[1, 2] ],
                    'timeout: patient 3 goes to the end');

$p2->send_json({ type => 'accept', call => $rung });
expect_error($p2, 'not_in_call', 'accepting a ring that timed out');

###############################################################################
# call a named patient; the patient hangs up

$doc->send_json({ type => 'call', appointment => $p[2]{id} });
$cs = $doc->recv_json(type => 'call_state',
                      match => sub { $_[0]{state} eq 'ringing' });
is($cs && $cs->{appointment}, $p[2]{id},
   'call by name rings that patient, not the first');
$ring = $p2->recv_json(type => 'ring');
is(scalar($p1->quiet(0.3, type => 'ring')), 0, 'the first one does not ring');

$dq = expect_doctor_queue($doc, [ map { $_->{id} } @p[1, 2] ],
                          'call by name: the rung patient keeps their place');
is(join(',', map { $_->{state} } @{ $dq ? $dq->{patients} : [] }),
   'waiting,ringing', 'call by name: the second one is ringing');

$call = $ring ? $ring->{call} : 'x';
$p2->send_json({ type => 'accept', call => $call });
ok($p2->recv_json(type => 'call') && $doc->recv_json(type => 'call'),
   'accepted: both get call');

# the README: "waiting" counts the patients waiting (state waiting or
# ringing), "patients" lists the one in the call first, then those
# waiting in queue order (each one's position)
$dq = $doc->recv_json(type => 'queue', match => sub {
    grep { ($_->{state} // '') eq 'in-call' } @{ $_[0]{patients} // [] }
});
is(join(',', map { "$_->{appointment}:$_->{state}" }
             @{ $dq ? $dq->{patients} : [] }),
   "$p[2]{id}:in-call,$p[1]{id}:waiting",
   'in a call with the second: the console lists the one in the call first');
is($dq && $dq->{waiting}, 1,
   'in a call with the second: waiting is 1, the one in the call not counted');
is($dq && $dq->{waiting},
   scalar(grep { $_->{state} ne 'in-call' } @{ $dq ? $dq->{patients} : [] }),
   'waiting = the patients listed who are not in the call');
expect_queue($p1, { position => 1, waiting => 1, doctor_busy => 1 },
             'the one waiting: position 1 of 1, the doctor busy');

$p2->send_json({ type => 'hangup', call => $call });
$end_d = $doc->recv_json(type => 'ended', call => $call);
$end_p = $p2->recv_json(type => 'ended', call => $call);
is($end_d && $end_d->{reason}, 'hangup', 'patient hangs up: doctor ended');
is($end_p && $end_p->{reason}, 'hangup', 'patient hangs up: patient ended');
is(status_of($p[2])->{status}, 'fulfilled', 'patient hung up: fulfilled');

###############################################################################
# the last one leaves: nobody to call

$p1->send_json({ type => 'leave' });
expect_doctor_queue($doc, [], 'the last patient left');
$doc->send_json({ type => 'call_next' });
expect_error($doc, 'queue_empty', 'call_next on an empty queue: queue_empty');

###############################################################################

$_->close for grep { !$_->closed } $p0, $p1, $p2, $doc, $docb;

ok($t->stop, 'no alerts in the log');

done_testing;
