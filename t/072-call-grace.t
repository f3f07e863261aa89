#!/usr/bin/perl

# Connections that drop, with teleclinic_grace 3s: a waiting patient
# keeps the place while away (shown not connected to the doctor, who
# cannot call them: not_connected; call_next passes over them), comes
# back to the same place, and after the grace is out of the queue (a new
# hello checks in at the end); a participant who drops out of a call
# comes back to it (call with rejoin true, the other side gets peer
# left, then joined, and the signaling works again), and one who does
# not come back ends the call with dropped.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(appointment);
use Teleclinic::Room qw(:all);
use Teleclinic::WS;

###############################################################################

my $GRACE = 3;

my $t = room(grace => "${GRACE}s", ring => '5s');

my @p = book_soon($t, 'doc-a', 6);
my @id = map { $_->{id} } @p;

sub connected_of {
    my ($m, $id) = @_;
    my ($e) = grep { $_->{appointment} eq $id } @{ $m->{patients} // [] };
    return $e ? ($e->{connected} ? 1 : 0) : undef;
}

# the doctor's next queue message in which $id's connected flag is $want
sub expect_connected {
    my ($doc, $id, $want, $name) = @_;

    my $m = $doc->recv_json(type => 'queue', match => sub {
        (connected_of($_[0], $id) // -1) == $want
    });

    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok($m, $name);

    return $m;
}

###############################################################################
# a waiting patient drops and comes back within the grace period

my ($doc, undef, $dtoken) = doctor_console($t, 'doc-a');
my $wdoc = worker_of($t, $doc);

my %ws;
($ws{$_}) = patient($t, $p[$_]) for 0 .. 2;

expect_doctor_queue($doc, [ @id[0 .. 2] ], 'three patients waiting');
expect_queue($ws{2}, { position => 3, waiting => 3 }, 'patient 3: 3 of 3');

$ws{1}->drop;
my $dq = expect_connected($doc, $id[1], 0,
                          'patient 2 drops: shown not connected');
is(join(',', map { $_->{appointment} } @{ $dq ? $dq->{patients} : [] }),
   join(',', @id[0 .. 2]), 'patient 2 keeps the place meanwhile');

$doc->send_json({ type => 'call', appointment => $id[1] });
expect_error($doc, 'not_connected', 'call of a patient who is away');

my $w;
($ws{1}, $w) = patient($t, $p[1]);
is($w && $w->{type}, 'welcome', 'patient 2 comes back within the grace');
expect_queue($ws{1}, { position => 2, waiting => 3 },
             'back in time: the same place');
expect_connected($doc, $id[1], 1, 'the doctor sees patient 2 connected');

###############################################################################
# after the grace period

$ws{1}->drop;
expect_doctor_queue($doc, [ @id[0, 2] ],
                    'after the grace patient 2 leaves the queue',
                    timeout => $GRACE + 15);
expect_queue($ws{2}, { position => 2, waiting => 2 },
             'patient 3 moves up when patient 2 is gone');
is(appointment($t, $id[1], $p[1]{token})->{json}{status}, 'arrived',
   'gone after the grace: the appointment stays arrived');

($ws{1}, $w) = patient($t, $p[1]);
is($w && $w->{type}, 'welcome', 'patient 2 says hello again');
expect_doctor_queue($doc, [ @id[0, 2, 1] ],
                    'a new hello after the grace checks in at the end');

###############################################################################
# call_next passes over a patient who is away; queue_empty with only them

$ws{0}->drop;
$dq = expect_connected($doc, $id[0], 0, 'patient 1 drops');

# the first connected one in the queue as the doctor sees it
my ($next) = grep { $_->{connected} } @{ $dq ? $dq->{patients} : [] };
my ($k) = grep { $id[$_] eq ($next ? $next->{appointment} : '') } 0 .. 5;
is($dq && $dq->{patients}[0]{appointment}, $id[0],
   'patient 1, away, heads the queue');

$doc->send_json({ type => 'call_next' });
my $cs = $doc->recv_json(type => 'call_state');
ok($next && $cs && $cs->{appointment} eq $next->{appointment},
   'call_next rings the first connected patient, not the one away');
my $ring = defined $k ? $ws{$k}->recv_json(type => 'ring') : undef;
$ws{$k // 2}->send_json({ type => 'decline',
                          call => $ring ? $ring->{call} : 'x' });
$cs = $doc->recv_json(type => 'call_state',
                      match => sub { $_[0]{state} eq 'declined' });
ok($cs, 'declined');

$ws{$_}->drop for 1, 2;
ok($doc->recv_json(type => 'queue', match => sub {
       !grep { $_->{connected} } @{ $_[0]{patients} }
   }), 'patients 2 and 3 drop too: nobody connected');
$doc->send_json({ type => 'call_next' });
expect_error($doc, 'queue_empty',
             'call_next with only patients who are away: queue_empty');

expect_doctor_queue($doc, [], 'after the grace all three are gone',
                    timeout => $GRACE + 15);

###############################################################################
# a call: the patient drops and rejoins, then the doctor

my ($pa) = patient($t, $p[3], not_on => $wdoc);
expect_doctor_queue($doc, [ $id[3] ], 'patient 4 waits');

$doc->send_json({ type => 'call_next' });
$ring = $pa->recv_json(type => 'ring');
my $call = $ring ? $ring->{call} : 'x';
$pa->send_json({ type => 'accept', call => $call });
ok($pa->recv_json(type => 'call') && $doc->recv_json(type => 'call'),
   'call with patient 4 set up');

$pa->drop;
my $peer = $doc->recv_json(type => 'peer');
is($peer && "$peer->{call} $peer->{state}", "$call left",
   'patient drops: the doctor gets peer left');

($pa, $w) = patient($t, $p[3], not_on => $wdoc);
is($w && $w->{type}, 'welcome', 'patient 4 comes back');
is($w && $w->{status}, 'in-call', 'welcome says in-call');

my $pc = $pa->recv_json(type => 'call');
is($pc && $pc->{call}, $call, 'the patient gets the same call again');
ok($pc && $pc->{rejoin}, 'the patient\'s call: rejoin true');
ok($pc && grep({ ($_->{username} // '') =~ /^\d+:\Q$call\E:patient$/
                 && $_->{credential} eq turn_credential($_->{username}) }
               @{ $pc->{ice_servers} // [] }),
   'the patient gets credentials again');

$peer = $doc->recv_json(type => 'peer');
is($peer && "$peer->{call} $peer->{state}", "$call joined",
   'the doctor gets peer joined');
my $dc = $doc->recv_json(type => 'call');
ok($dc && $dc->{rejoin} && $dc->{call} eq $call,
   'the doctor gets call with rejoin true');

isnt(worker_of($t, $pa), $wdoc, 'patient and doctor on different workers');

$doc->send_json({ type => 'signal', call => $call,
                  data => { type => 'offer', sdp => 'ice-restart' } });
my $sg = $pa->recv_json(type => 'signal');
is($sg && $sg->{data}{sdp}, 'ice-restart',
   'the ICE-restart offer reaches the patient who came back');

# the doctor drops and comes back
$doc->drop;
$peer = $pa->recv_json(type => 'peer');
is($peer && "$peer->{call} $peer->{state}", "$call left",
   'doctor drops: the patient gets peer left');

$doc = connect_ws($t, not_on => worker_of($t, $pa));
$w = $doc->hello($dtoken);
is($w && $w->{type}, 'welcome', 'the doctor comes back with the token');
$dc = $doc->recv_json(type => 'call');
ok($dc && $dc->{rejoin} && $dc->{call} eq $call && $dc->{offerer},
   'the doctor gets the call again: rejoin, offerer');
$peer = $pa->recv_json(type => 'peer');
is($peer && "$peer->{call} $peer->{state}", "$call joined",
   'the patient gets peer joined');
$pc = $pa->recv_json(type => 'call');
ok($pc && $pc->{rejoin}, 'the patient gets call with rejoin true');

$pa->send_json({ type => 'signal', call => $call,
                data => { type => 'answer', sdp => 'restarted' } });
$sg = $doc->recv_json(type => 'signal');
is($sg && $sg->{data}{sdp}, 'restarted', 'the answer reaches the doctor');

# the doctor drops for good: dropped
$doc->drop;
my $end = $pa->recv_json(type => 'ended', call => $call,
                         timeout => $GRACE + 15);
is($end && "$end->{call} $end->{reason}", "$call dropped",
   'the doctor does not come back: ended dropped');

###############################################################################
# the patient drops for good

$doc = connect_ws($t);
$w = $doc->hello($dtoken);
is($w && $w->{type}, 'welcome', 'the doctor again');

my ($pb) = patient($t, $p[4]);
expect_doctor_queue($doc, [ $id[4] ], 'patient 5 waits');
$doc->send_json({ type => 'call_next' });
$ring = $pb->recv_json(type => 'ring');
$call = $ring ? $ring->{call} : 'x';
$pb->send_json({ type => 'accept', call => $call });
ok($pb->recv_json(type => 'call') && $doc->recv_json(type => 'call'),
   'call with patient 5 set up');

$pb->drop;
$peer = $doc->recv_json(type => 'peer');
is($peer && $peer->{state}, 'left', 'patient 5 drops: peer left');
$end = $doc->recv_json(type => 'ended', call => $call,
                      timeout => $GRACE + 15);
is($end && "$end->{call} $end->{reason}", "$call dropped",
   'the patient does not come back: ended dropped');

$doc->send_json({ type => 'signal', call => $call, data => {} });
expect_error($doc, 'not_in_call', 'the dropped call is over');

###############################################################################

$_->close for grep { !$_->closed } $doc, $pa, $pb, values %ws;

ok($t->stop, 'no alerts in the log');

done_testing;
