#!/usr/bin/perl

# Replay gives back exactly what the clinic saw: appointments in every
# status (booked, arrived, in-call, fulfilled, noshow, cancelled,
# rescheduled), each read whole by the admin and by its patient, the
# doctors' days, the appointment counts of the metrics and the doctor's
# running average are the same after kill -9, after a graceful restart,
# and after a restart that compacts the journal (and kill -9 after
# that).  A patient booked before a restart who checks in after it gets
# their arrival time of now, in the doctor's queue and in the waiting
# time histogram.

use strict;
use warnings;

use Test::More;
use Data::Dumper ();
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(appointment cancel reschedule admin_day day_ahead
                          lengthen_journal $ADMIN_KEY);
use Teleclinic::Room qw(:all);
use Teleclinic::WS;

###############################################################################

my $t = room(grace => '30s', ring => '10s');
my $journal = $t->prefix . '/state/journal';

my @a = book_soon($t, 'doc-a', 8,
                  names => ['Booked Only', 'Checked In', 'Visit Done',
                            'No Show', 'Cancelled', 'Moved',
                            'After Restart', 'Moved Away']);
my ($booked, $checked, $done, $noshow, $cancelled, $moved, $later) = @a;
my ($b) = book_soon($t, 'doc-b', 1, names => ['In Call']);
my @all = (@a[0 .. 6], $b);

# cancelled and rescheduled (to the slot booked as "Moved Away", freed)
is(cancel($t, $a[7]{id}, $a[7]{token})->{status}, 200, 'a slot is freed');
is(cancel($t, $cancelled->{id}, $cancelled->{token})->{status}, 200,
   'cancelled');

my $r = reschedule($t, $moved->{id}, $moved->{token}, $a[7]{slot});
is($r->{status}, 200, 'rescheduled');
$moved->{token} = $r->{json}{token};

# arrived, and waiting
my ($pw, $w) = patient($t, $checked);
is($w && $w->{type}, 'welcome', 'a patient checks in');

# a visit: rung, accepted, hung up
my ($doc) = doctor_console($t, 'doc-a');
my ($pv) = patient($t, $done);

visit($doc, $pv, $done, 1);

# a no-show the doctor marks before the patient came
$doc->send_json({ type => 'noshow', appointment => $noshow->{id} });
Teleclinic::WS::pump_until(sub {
    (appointment($t, $noshow->{id}, $ADMIN_KEY)->{json}{status} // '')
        eq 'noshow'
}, 10);

# in a call when nginx is killed
my ($docb) = doctor_console($t, 'doc-b');
my ($pc) = patient($t, $b);

visit($docb, $pc, $b, 0);

$doc->close(1000);

my %status = map { $_->{name} => status($_) } @all;

is_deeply(\%status, {
    'Booked Only'   => 'booked',
    'Checked In'    => 'arrived',
    'Visit Done'    => 'fulfilled',
    'No Show'       => 'noshow',
    'Cancelled'     => 'cancelled',
    'Moved'         => 'booked',
    'After Restart' => 'booked',
    'In Call'       => 'in-call',
}, 'appointments in every status') or diag explain \%status;

my $v = appointment($t, $done->{id}, $ADMIN_KEY)->{json};
ok(epoch($v->{arrived}) && epoch($v->{visit_start})
   && epoch($v->{visit_end}), 'the visit has its three times')
    or diag explain $v;

my $before = view();

###############################################################################
# kill -9

$t->kill9;
undef $_ for $pw, $pv, $pc, $docb;
$t->start;

compare(view(), $before, 'after kill -9');

###############################################################################
# booked before the restart, checks in after it

my $m0 = metrics($t);
is($m0->{teleclinic_waiting_time_seconds_count} // 0, 0,
   'the metrics count from this start: no wait yet');
is($m0->{teleclinic_consultation_duration_seconds_count} // 0, 0,
   'the metrics count from this start: no visit yet');

($doc) = doctor_console($t, 'doc-a');

my $in = time;
my ($pl, $wl) = patient($t, $later);
is($wl && $wl->{type}, 'welcome', 'the patient booked before checks in');

my $dq = expect_doctor_queue($doc, [ $later->{id} ],
                             'the doctor sees the patient');
my $arrived = epoch($dq && $dq->{patients}[0]{arrived});
ok($arrived && abs($arrived - $in) < 30,
   'the doctor\'s queue shows the arrival of now')
    or diag explain $dq;

$v = appointment($t, $later->{id}, $later->{token})->{json};
is(epoch($v->{arrived}), $arrived, 'the appointment: arrived now');
ok(!exists $v->{visit_start} && !exists $v->{visit_end},
   'the appointment: no visit times before the visit')
    or diag explain $v;

visit($doc, $pl, $later, 1);

my $m1 = metrics($t);
is($m1->{teleclinic_waiting_time_seconds_count}, 1, 'one wait counted');
cmp_ok($m1->{teleclinic_waiting_time_seconds_sum} // -1, '<', 60,
       'the wait is the seconds since the check-in');
is($m1->{teleclinic_consultation_duration_seconds_count}, 1,
   'one visit counted');
cmp_ok($m1->{teleclinic_consultation_duration_seconds_sum} // -1, '<', 60,
       'the visit lasted seconds');

$v = appointment($t, $later->{id}, $later->{token})->{json};
is($v->{status}, 'fulfilled', 'the visit after the restart is fulfilled');
ok(epoch($v->{arrived}) <= epoch($v->{visit_start})
   && epoch($v->{visit_start}) <= epoch($v->{visit_end})
   && epoch($v->{visit_end}) <= time + 1,
   'arrived <= visit_start <= visit_end <= now') or diag explain $v;

$doc->close(1000);
$pl->close(1000);

$before = view();

###############################################################################
# a graceful restart

ok($t->stop, 'stopped');
$t->start;

compare(view(), $before, 'after a graceful restart');

###############################################################################
# a restart that compacts the journal: delivered messages make it long

ok($t->stop, 'stopped again');

ok(lengthen_journal($t, 1500), 'the journal\'s last sequence number');

my $size = -s $journal;
my $from = length $t->error_log;

$t->start;

like(substr($t->error_log, $from), qr/\[notice\].*compacted "\Q$journal\E"/,
     'the journal is compacted at start');
cmp_ok(-s $journal, '<', $size, 'the journal shrank');

compare(view(), $before, 'after compaction');

$t->kill9;
$t->start;

compare(view(), $before, 'after kill -9 with the compacted journal');

ok($t->stop, 'no alerts in the log');

done_testing;

###############################################################################

sub status {
    my ($appt) = @_;
    return appointment($t, $appt->{id}, $ADMIN_KEY)->{json}{status} // '?';
}

# the doctor rings the patient, who accepts; hangs up when $end
sub visit {
    my ($doc, $p, $appt, $end) = @_;

    $doc->send_json({ type => 'call', appointment => $appt->{id} });

    my $ring = $p->recv_json(type => 'ring');
    ok($ring, "$appt->{name}: rung") or return;

    $p->send_json({ type => 'accept', call => $ring->{call} });
    ok($doc->recv_json(type => 'call', call => $ring->{call}),
       "$appt->{name}: in the call");

    return unless $end;

    # a visit of a second or more
    Teleclinic::WS::pump(1.1);

    $doc->send_json({ type => 'hangup', call => $ring->{call} });

    my $m = $p->recv_json(type => 'visit');
    is($m && $m->{status}, 'fulfilled', "$appt->{name}: fulfilled");
}

# the whole of what the API shows
sub view {
    my %v;

    for my $appt (@all) {
        for my $who (['admin', $ADMIN_KEY], ['patient', $appt->{token}]) {
            my $r = appointment($t, $appt->{id}, $who->[1]);
            $v{"$appt->{name}, read by the $who->[0]"} =
                { status => $r->{status}, json => $r->{json} };
        }
    }

    for my $doctor ('doc-a', 'doc-b') {
        for my $n (0, 1) {
            my $date = day_ahead($n);
            my $r = admin_day($t, $doctor, $date);
            $v{"the day of $doctor on $date"} =
                { status => $r->{status}, json => $r->{json} };
        }
    }

    my $m = metrics($t);
    $v{metrics} = { map { $_ => $m->{$_} }
                    grep { /^teleclinic_appointments\{/ } keys %$m };

    # the doctor's running average, which the visits made
    my ($ws, $welcome) = doctor_console($t, 'doc-a');
    $v{'the average of doc-a'} = $welcome && $welcome->{average};
    $ws->close(1000);

    return \%v;
}

sub compare {
    my ($after, $before, $what) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    my @differ = grep { canon($after->{$_}) ne canon($before->{$_}) }
                 sort keys %{ { %$before, %$after } };

    is(scalar @differ, 0, "$what: the API shows the same")
        or diag explain { map { $_ => { before => $before->{$_},
                                        after => $after->{$_} } }
                          @differ[0 .. ($#differ < 3 ? $#differ : 3)] };
}

sub canon {
    my ($x) = @_;

    local $Data::Dumper::Sortkeys = 1;
    local $Data::Dumper::Indent = 0;
    local $Data::Dumper::Terse = 1;

    return Data::Dumper::Dumper($x);
}

sub read_journal {
    return $t->read_file($journal);
}
