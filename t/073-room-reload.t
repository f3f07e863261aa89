#!/usr/bin/perl

# nginx -s reload with the waiting room and a call open: every client
# gets close 1001, the old workers exit, the clients connect again and
# say hello to the new workers, and the queue (order with a skipped
# patient, positions) and the call (rejoin within the grace period)
# are as before; no alert in the log.  After kill -9 and a start the
# queue's order (sent back, left and come back) is as it was.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(lengthen_journal);
use Teleclinic::Room qw(:all);
use Teleclinic::WS qw(pump_until);

###############################################################################

my $t = room(grace => '10s');

my @p = book_soon($t, 'doc-a', 3);
my @id = map { $_->{id} } @p;
my ($q) = book_soon($t, 'doc-b', 1);

my ($doc, undef, $dtoken) = doctor_console($t, 'doc-a');
my ($docb, undef, $btoken) = doctor_console($t, 'doc-b');

my %ws;
($ws{$_}) = patient($t, $p[$_]) for 0 .. 2;
my ($qws) = patient($t, $q);

expect_doctor_queue($doc, [ @id ], 'three waiting');

$doc->send_json({ type => 'skip', appointment => $id[0] });
expect_doctor_queue($doc, [ @id[1, 2, 0] ], 'patient 1 skipped');
expect_queue($ws{0}, { position => 3, waiting => 3 }, 'patient 1: 3 of 3');

# doctor b is in a call with patient q
$docb->send_json({ type => 'call_next' });
my $ring = $qws->recv_json(type => 'ring');
my $call = $ring ? $ring->{call} : 'x';
$qws->send_json({ type => 'accept', call => $call });
ok($qws->recv_json(type => 'call') && $docb->recv_json(type => 'call'),
   'doctor b and patient q are in a call');

###############################################################################

my @old = $t->worker_pids;
$t->reload;

for my $name (sort keys %ws) {
    is($ws{$name}->wait_closed, 1001, "reload: patient $name gets 1001");
}
is($doc->wait_closed, 1001, 'reload: doctor a gets 1001');
is($docb->wait_closed, 1001, 'reload: doctor b gets 1001');
is($qws->wait_closed, 1001, 'reload: patient q gets 1001');

my $gone = pump_until(sub { !grep { kill 0, $_ } @old }, 15);
ok($gone, 'the old workers exit');

my @problems = $t->log_problems;
is(scalar @problems, 0, 'no alert in the log after the reload')
    or diag join "\n", @problems;

###############################################################################
# connect again

my %new = map { $_ => 1 } $t->worker_pids;

$doc = connect_ws($t);
my $w = $doc->hello($dtoken);
is($w && $w->{type}, 'welcome', 'doctor a: hello again');
ok($new{ worker_of($t, $doc) // 0 }, 'doctor a is on a new worker');

for my $i (0 .. 2) {
    ($ws{$i}, $w) = patient($t, $p[$i]);
    is($w && $w->{type}, 'welcome', "patient $i: hello again");
}

expect_doctor_queue($doc, [ @id[1, 2, 0] ],
                    'the queue is as before, the skip kept');
expect_queue($ws{1}, { position => 1, waiting => 3 }, 'patient 2: 1 of 3');
expect_queue($ws{2}, { position => 2, waiting => 3 }, 'patient 3: 2 of 3');
expect_queue($ws{0}, { position => 3, waiting => 3 }, 'patient 1: 3 of 3');

($qws, $w) = patient($t, $q);
is($w && $w->{status}, 'in-call', 'patient q: welcome in-call');
my $pc = $qws->recv_json(type => 'call');
ok($pc && $pc->{call} eq $call && $pc->{rejoin},
   'patient q rejoins the call');

$docb = connect_ws($t);
$w = $docb->hello($btoken);
my $dc = $docb->recv_json(type => 'call');
ok($dc && $dc->{call} eq $call && $dc->{rejoin}, 'doctor b rejoins the call');

$docb->send_json({ type => 'signal', call => $call,
                   data => { type => 'offer', sdp => 'after reload' } });
my $sg = $qws->recv_json(type => 'signal');
is($sg && $sg->{data}{sdp}, 'after reload', 'signaling after the reload');

# the room works on: doctor a calls the next patient
$doc->send_json({ type => 'call_next' });
$ring = $ws{1}->recv_json(type => 'ring');
ok($ring, 'call_next after the reload rings patient 2');

# patient 2 says no: to the end; patient 3 leaves and comes back: to the
# end, behind patient 2
$ws{1}->send_json({ type => 'decline', call => $ring ? $ring->{call} : 'x' });
expect_doctor_queue($doc, [ @id[2, 0, 1] ], 'patient 2 declines: last');
$ws{2}->send_json({ type => 'leave' });
expect_doctor_queue($doc, [ @id[0, 1] ], 'patient 3 leaves');
($ws{2}) = patient($t, $p[2]);
expect_doctor_queue($doc, [ @id[0, 1, 2] ], 'patient 3 back, at the end');

###############################################################################
# kill -9 and a start (compacting the journal): the queue's order is the
# appointments', from the journal; the patients come back in another
# order and have their places

$_->close for grep { !$_->closed } $doc, $docb, $qws, values %ws;

$t->kill9;

# many delivered messages make the journal long: the start compacts it,
# and the compacted journal keeps the order too
my $journal = $t->prefix . '/state/journal';
lengthen_journal($t, 1500);

my $from = length $t->error_log;
$t->start;
like(substr($t->error_log, $from), qr/\[notice\].*compacted/,
     'the start compacts the journal');
like($t->read_file($journal), qr/"op":"appt".*"back":\d+/,
     'the compacted journal keeps who was sent back');

for my $i (2, 1, 0) {
    ($ws{$i}, $w) = patient($t, $p[$i]);
    is($w && $w->{type}, 'welcome',
       'after the restart: patient ' . ($i + 1) . ' hello');
}

$doc = connect_ws($t);
$w = $doc->hello($dtoken);
is($w && $w->{type}, 'welcome', 'after the restart: doctor a hello');
expect_doctor_queue($doc, [ @id[0, 1, 2] ],
                    'after the restart the queue is in its order');
expect_queue($ws{0}, { position => 1, waiting => 3 }, 'patient 1: 1 of 3');
expect_queue($ws{2}, { position => 3, waiting => 3 }, 'patient 3: 3 of 3');

###############################################################################

$_->close for grep { !$_->closed } $doc, values %ws;

ok($t->stop, 'no alerts in the log');

done_testing;
