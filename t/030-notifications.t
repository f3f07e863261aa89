#!/usr/bin/perl

# Notifications: what the hospital's messaging gateway receives.  A small
# HTTP server (t/lib/Teleclinic/Gateway.pm) plays the gateway and records
# every request.  Booking, cancelling and rescheduling send a signed
# message each; a reminder arrives before a booked visit and never for a
# cancelled one; a gateway that is down or fails gets the message again
# later, until it accepts it once; the outbox survives a stop and a
# kill -9 of nginx; the two workers do not deliver a message twice.

use strict;
use warnings;
use utf8;

use Test::More;

use Compress::Raw::Zlib ();
use Digest::SHA qw(hmac_sha256_hex);
use JSON::PP;
use POSIX qw(strftime mktime);
use Time::HiRes qw(sleep);
use Time::Local qw(timegm);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(conf directory doctor write_directory auth
                         reschedule ALL_DAY);
use Teleclinic::Gateway;

###############################################################################

my $NOTIFY_SECRET = 'notify-secret-0123456789';
my $PUBLIC = 'https://clinic.example';

my $t = Teleclinic::Test->new(workers => 2);
my $gw = Teleclinic::Gateway->new(port => $t->port('PORT2'),
                                  log => $t->prefix . '/gateway.log');

write_directory($t, directory(
    departments => [{ id => 'general', name => 'General Practice' }],
    doctors     => [
        doctor('ada-one', 'general', name => 'Dr. Ada One',
               slot_minutes => 5, hours => ALL_DAY),
        doctor('bo-two', 'general', name => 'Dr. Bo Two',
               slot_minutes => 5, hours => ALL_DAY),
    ],
));

# The reminder of a slot starting at $soon becomes due a few seconds
# after the booking: reminder_before is the time left until the slot,
# less that margin.  Slots are 5 minutes long, so $soon is 1 to 6 minutes
# ahead.

my $now = int(Time::HiRes::time());
my $soon = (int(($now + 60) / 300) + 1) * 300;
my $reminder_due = $now + 5;
my $before = $soon - $reminder_due;

$gw->start;

# reuseport: new connections spread over both workers; the log says
# which worker served a request
$t->run(conf(listen => 'reuseport',
             api => 'access_log %%PREFIX%%/logs/worker.log worker;',
             http => <<"EOF"));
teleclinic_public_url $PUBLIC/;
teleclinic_reminder_before ${before}s;
teleclinic_notify_url http://127.0.0.1:%%PORT2%%/hooks/teleclinic;
teleclinic_notify_secret $NOTIFY_SECRET;
teleclinic_notify_timeout 3s;
log_format worker '\$pid \$request_method \$uri \$status';
EOF

###############################################################################

# a booking and a cancelled booking of the slot that starts soon

my $soon_slot = slot_id('ada-one', $soon);

my $r = $t->http(GET => '/api/v1/doctors/ada-one/slots?date='
                        . strftime('%Y-%m-%d', localtime $soon));
my ($listed) = grep { $_->{id} eq $soon_slot } @{ $r->{json} // [] };
ok($listed && $listed->{status} eq 'free', "slot $soon_slot is free");
is(iso_epoch($listed->{start}), $soon, 'slot starts when computed')
    if $listed;

my $rem = book($soon_slot, 'Rhea Minder', '+15550000001');
my $gone = book(slot_id('bo-two', $soon), 'Carl Cancel', '+15550000002');

diag('booked after the reminder was due: the reminder test cannot pass')
    if time >= $reminder_due;

$r = cancel($gone);
is($r->{status}, 200, 'cancel: 200');
is($r->{json}{status}, 'cancelled', 'cancel: status cancelled');

# confirmation

my $name = 'Zoë Ångström-Łukasz';
my $phone = '+41 79 555 01 23';

my $appt = book(day_slot('ada-one', 2, '10:00'), $name, $phone);

my $m = wait_message('confirmation', $appt->{id});
ok($m, 'confirmation arrived');

SKIP: {
skip 'no confirmation', 21 unless $m;

my $j = $m->{json};

is($m->{method}, 'POST', 'confirmation: POST');
is($m->{path}, '/hooks/teleclinic', 'confirmation: path of notify_url');
like($m->{headers}{'content-type'}, qr{^application/json},
     'confirmation: content type');
ok($j, 'confirmation: body is JSON');

like($m->{headers}{'x-teleclinic-message-id'}, qr/^\d+$/,
     'confirmation: message id header');
is($j->{id}, $m->{headers}{'x-teleclinic-message-id'},
   'confirmation: id in the body is the message id');

is($j->{type}, 'confirmation', 'confirmation: type');
is($j->{appointment}, $appt->{id}, 'confirmation: appointment id');
is($j->{status}, 'booked', 'confirmation: status');
is($j->{patient}{name}, $name, 'confirmation: patient name (UTF-8)');
is($j->{patient}{phone}, $phone, 'confirmation: patient phone');
is($j->{doctor}{id}, 'ada-one', 'confirmation: doctor id');
is($j->{doctor}{name}, 'Dr. Ada One', 'confirmation: doctor name');
is($j->{start}, $appt->{start}, 'confirmation: start as in booking');

like($j->{join_url}, qr/\Q$appt->{id}\E/, 'join_url: has appointment id');
like($j->{join_url}, qr/\Q$appt->{token}\E/, 'join_url: has token');
is($j->{join_url}, $appt->{join_url}, 'join_url: as in booking');
is($j->{guide_url}, "$PUBLIC/guide.html", 'guide_url');

ok(signature_ok($m->{headers}{'x-teleclinic-signature'}, $m->{body}),
   'confirmation: signature verifies');

# the verifier itself must reject what the secret did not sign
my $tampered = $m->{body};
$tampered =~ s/"booked"/"cancelled"/ or die 'cannot tamper';
ok(!signature_ok($m->{headers}{'x-teleclinic-signature'}, $tampered),
   'tampered body does not verify');

my $later = $m->{headers}{'x-teleclinic-signature'};
$later =~ s/^t=(\d+)/'t=' . ($1 + 1)/e;
ok(!signature_ok($later, $m->{body}), 'tampered time does not verify');

}

# cancellation of the second booking of the soon slot

$m = wait_message('cancellation', $gone->{id});
ok($m, 'cancellation arrived');
is($m->{json}{status}, 'cancelled', 'cancellation: status') if $m;
is($m->{json}{patient}{name}, 'Carl Cancel', 'cancellation: patient') if $m;
ok($m && signature_ok($m->{headers}{'x-teleclinic-signature'}, $m->{body}),
   'cancellation: signature verifies');

# reschedule, then cancel

my $new_slot = day_slot('bo-two', 3, '11:00');
$r = reschedule($t, $appt->{id}, $appt->{token}, $new_slot);
is($r->{status}, 200, 'reschedule: 200');

my $moved = $r->{json} // {};

$m = wait_message('reschedule', $appt->{id});
ok($m, 'reschedule arrived');

SKIP: {
skip 'no reschedule message', 6 unless $m;

my $j = $m->{json};

is($j->{start}, $moved->{start}, 'reschedule: new start');
isnt($j->{start}, $appt->{start}, 'reschedule: start changed');
is($j->{doctor}{id}, 'bo-two', 'reschedule: new doctor');
is($j->{doctor}{name}, 'Dr. Bo Two', 'reschedule: new doctor name');
is($j->{join_url}, $moved->{join_url}, 'reschedule: new join_url');
ok(signature_ok($m->{headers}{'x-teleclinic-signature'}, $m->{body}),
   'reschedule: signature verifies');

}

# with the token of the reschedule: it outdated the booking's
$r = cancel($moved);
is($r->{status}, 200, 'cancel rescheduled: 200');

$m = wait_message('cancellation', $appt->{id});
ok($m, 'cancellation of rescheduled visit arrived');
is($m->{json}{start}, $moved->{start}, 'cancellation: start') if $m;

# reminder

$m = wait_message('reminder', $rem->{id}, 20);
ok($m, 'reminder arrived');

SKIP: {
skip 'no reminder', 6 unless $m;

my $j = $m->{json};

is($j->{type}, 'reminder', 'reminder: type');
is($j->{start}, $rem->{start}, 'reminder: start');
is($j->{status}, 'booked', 'reminder: status');
is($j->{patient}{phone}, '+15550000001', 'reminder: patient phone');
is($j->{join_url}, $rem->{join_url}, 'reminder: join_url');
ok(signature_ok($m->{headers}{'x-teleclinic-signature'}, $m->{body}),
   'reminder: signature verifies');

}

# the cancelled visit's reminder was due in the same second: it would
# have gone out in the same sweep
sleep 1.5;
ok(!accepted('reminder', $gone->{id}), 'no reminder for cancelled visit');

wait_message('confirmation', $_->{id}) for $rem, $gone;

###############################################################################

# retries: the gateway is down (connection refused), then answers 500,
# then closes the connection without an answer, then accepts

$gw->stop;

my $log_from = length $t->error_log;
my $retried = book(day_slot('ada-one', 4, '09:00'), 'Ray Tried',
                   '+15550000003');

ok(wait_refused($log_from), 'retries: delivery failed, gateway down');

$gw->start(fail => [500, 'close']);

$m = wait_message('confirmation', $retried->{id}, 30);
ok($m, 'retries: delivered once the gateway accepts');

my @tries = messages('confirmation', $retried->{id});

is_deeply([map { $_->{answer} } @tries], [500, 'close', 200],
          'retries: 500, closed, accepted');
is(scalar(keys %{{ map { $_->{headers}{'x-teleclinic-message-id'} => 1 }
                   @tries }}), 1,
   'retries: one message id');
is(scalar(keys %{{ map { $_->{body} => 1 } @tries }}), 1,
   'retries: the same body each time');
is(scalar(grep { signature_ok($_->{headers}{'x-teleclinic-signature'},
                              $_->{body}) } @tries),
   scalar @tries, 'retries: every attempt signed');

###############################################################################

# the outbox survives restarts: a message not delivered before nginx
# stops (gracefully, then with kill -9) is delivered after the start

my @restarted;

for my $how ('stop', 'kill -9') {
    $gw->stop;

    $log_from = length $t->error_log;
    my $visit = book(day_slot('bo-two', $how eq 'stop' ? 4 : 5, '09:00'),
                     'Rita Start', '+15550000004');
    push @restarted, $visit;

    ok(wait_refused($log_from), "$how: delivery failed, gateway down");

    if ($how eq 'stop') {
        $t->stop;
    } else {
        $t->kill9;
    }

    $gw->start;
    $t->start;

    $m = wait_message('confirmation', $visit->{id});
    ok($m, "$how: confirmation delivered after the start");
    ok($m && signature_ok($m->{headers}{'x-teleclinic-signature'},
                          $m->{body}),
       "$how: signature verifies");
}

###############################################################################

# nginx was down from before a reminder was due until after the visit
# began: the reminder is dropped at the start, and delivery goes on.
# Such a visit is made by adding to the journal a copy of the module's
# own booking record, moved two hours back (booked 2 h ago, started
# 10 min ago, so its reminder fell due while nginx was down).

$t->stop;

my $stale = append_past_booking(7200, 600);

$t->start;

my $after = book(day_slot('ada-one', 5, '09:00'), 'Al After', '+15550000005');

ok(wait_message('confirmation', $after->{id}),
   'stale reminder: later messages still delivered');

unless (is($t->http(GET => '/api/v1/departments')->{status}, 200,
           'stale reminder: API answers'))
{
    # a worker stuck on the zone lock would hang every request that follows
    $t->kill9;
    done_testing();
    exit;
}

###############################################################################

# no duplicates: bookings over new connections reach both workers, and
# both deliver from the one outbox; the gateway answers 200 at once

my (@many, %workers);
my $log_lines = () = $t->read_file('logs/worker.log') =~ /\n/g;

# at least 12, and on until both workers have booked some
for my $i (0 .. 39) {
    last if $i >= 12 && keys %workers > 1;

    push @many, book(day_slot($i % 2 ? 'bo-two' : 'ada-one', 6,
                              sprintf('%02d:%02d', int($i / 2), 0)),
                     "Pat $i", sprintf('+1555000%04d', 100 + $i),
                     { Connection => 'close' });

    my @lines = split /\n/, $t->read_file('logs/worker.log');
    $workers{$_}++ for map { m{^(\d+) POST /api/v1/appointments 201} }
                       @lines[$log_lines .. $#lines];
}

is(scalar keys %workers, 2, 'the burst reached both workers');

ok($gw->wait_for(sub {
       my %ok = map { $_->{json}{appointment} => 1 }
                grep { $_->{answer} eq '200' && $_->{json}
                       && $_->{json}{type} eq 'confirmation' } @_;
       return !grep { !$ok{ $_->{id} } } @many;
   }), 'all confirmations of a burst arrived');

# the messages that exist, each accepted exactly once, no other ones

my @expect = (
    [confirmation => $rem], [reminder => $rem],
    [confirmation => $gone], [cancellation => $gone],
    [confirmation => $appt], [reschedule => $appt], [cancellation => $appt],
    [confirmation => $retried], [confirmation => $after],
    (map { [confirmation => $_] } @restarted),
    (map { [confirmation => $_] } @many),
);

my @requests = $gw->requests;
my (%count, %ids);

for my $q (grep { $_->{answer} eq '200' } @requests) {
    my $j = $q->{json} or next;
    $count{"$j->{type} $j->{appointment}"}++;
    $ids{ $q->{headers}{'x-teleclinic-message-id'} }++;
}

my @missing = grep { !$count{"$_->[0] $_->[1]{id}"} } @expect;
is(scalar @missing, 0, 'no message lost')
    or diag(join ', ', map { $_->[0] } @missing);

my @twice = grep { $count{$_} > 1 } keys %count;
is(scalar @twice, 0, 'no message accepted twice') or diag("@twice");
is(scalar(grep { $ids{$_} > 1 } keys %ids), 0,
   'no message id accepted twice');
is(scalar keys %ids, scalar keys %count, 'one message id per message');
ok(!$count{"reminder $gone->{id}"}, 'never a reminder for cancelled visit');
ok(!messages('reminder', $stale), 'never a reminder after the visit began');
is(scalar(grep { !/^confirmation / && !/^(?:cancellation|reschedule) /
                 && !/^reminder \Q$rem->{id}\E$/ } keys %count), 0,
   'no other messages');

is(scalar(grep { $_->{method} ne 'POST' || !$_->{json} } @requests), 0,
   'every request a POST with a JSON body');

$t->stop;
$gw->stop;

done_testing();

###############################################################################

sub slot_id {
    my ($doctor, $epoch) = @_;
    return "$doctor." . strftime('%Y%m%d.%H%M', localtime $epoch);
}

# the slot HH:MM of a doctor $days from today, local time
sub day_slot {
    my ($doctor, $days, $hhmm) = @_;

    my @now = localtime;
    my $noon = mktime(0, 0, 12, $now[3] + $days, $now[4], $now[5]);
    $hhmm =~ s/://;

    return "$doctor." . strftime('%Y%m%d', localtime $noon) . ".$hhmm";
}

sub iso_epoch {
    my ($s) = @_;

    my ($y, $mo, $d, $h, $mi, $se, $sign, $oh, $om) = ($s // '')
        =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)([+-])(\d\d):(\d\d)$/
        or return undef;

    my $off = ($oh * 60 + $om) * 60 * ($sign eq '-' ? -1 : 1);

    return timegm($se, $mi, $h, $d, $mo - 1, $y) - $off;
}

# appends to the stopped nginx's journal a copy of its first booking
# record, booked $ago seconds ago for a visit that began $began seconds
# ago, under a new id and sequence number; returns the id
sub append_past_booking {
    my ($ago, $began) = @_;

    my $json = JSON::PP->new->canonical;
    my ($book, $seq);

    for (split /\n/, $t->read_file('state/journal')) {
        my $o = $json->decode(substr($_, 9));
        $seq = $o->{seq} if !defined $seq || $o->{seq} > $seq;
        $book //= $o if $o->{op} eq 'book';
    }

    die "no booking record in the journal\n" unless $book;

    my $now = time;

    $book->{seq} = $seq + 1;
    $book->{id} = '00000000000000a1';
    $book->{at} = $now - $ago;
    $book->{start} = $now - $began;
    $book->{end} = $book->{start} + 300;

    my $text = $json->encode($book);
    my $crc = Compress::Raw::Zlib::crc32($text);

    open my $fh, '>>', $t->prefix . '/state/journal' or die "journal: $!";
    binmode $fh;
    printf $fh "%08x %s\n", $crc, $text;
    close $fh or die "journal: $!";

    return $book->{id};
}

sub book {
    my ($slot, $patient, $tel, $headers) = @_;

    my $r = $t->http(POST => '/api/v1/appointments',
                     body => { slot => $slot,
                               patient => { name => $patient,
                                            phone => $tel },
                               reason => 'follow-up' },
                     headers => $headers // {});

    is($r->{status}, 201, "book $slot: 201")
        or diag($r->{body} // $r->{error});

    return $r->{json} // { id => 'none' };
}

sub cancel {
    my ($a) = @_;
    return $t->http(POST => "/api/v1/appointments/$a->{id}/cancel",
                    headers => auth($a->{token}));
}

# recorded requests with a message of $type for appointment $id
sub messages {
    my ($type, $id) = @_;

    return grep { $_->{json} && $_->{json}{type} eq $type
                  && $_->{json}{appointment} eq $id } $gw->requests;
}

sub accepted {
    my ($type, $id) = @_;
    my ($m) = grep { $_->{answer} eq '200' } messages($type, $id);
    return $m;
}

sub wait_message {
    my ($type, $id, $timeout) = @_;

    return $gw->wait_for(sub {
        my ($m) = grep { $_->{answer} eq '200' && $_->{json}
                         && $_->{json}{type} eq $type
                         && $_->{json}{appointment} eq $id } @_;
        return $m;
    }, $timeout // 10);
}

# the module logged a failed delivery since offset $from of error.log
sub wait_refused {
    my ($from) = @_;

    for (1 .. 100) {
        my $log = substr($t->error_log, $from);
        return 1 if $log =~ /teleclinic: .* will be retried/;
        sleep 0.1;
    }

    return 0;
}

# X-Teleclinic-Signature: t=UNIX,sha256=HEX of HMAC(secret, "UNIX." body)
sub signature_ok {
    my ($header, $body) = @_;

    my ($ts, $mac) = ($header // '') =~ /^t=(\d+),sha256=([0-9a-f]{64})$/
        or return 0;

    return hmac_sha256_hex("$ts.$body", $NOTIFY_SECRET) eq $mac;
}

###############################################################################
