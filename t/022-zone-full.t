#!/usr/bin/perl

# A full zone: in the smallest zone nginx accepts, booking until memory
# runs out ends in 503 zone_full and an error log line, never a crash;
# reading, listing and cancelling go on working.  A gateway is configured
# (on a port where nothing listens), so every change also keeps its
# messages in the zone's outbox, as in production.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);

###############################################################################

my $DOCTOR = 'full-one';
my $REASON = 'a reason of some length ' x 12;

my $t = Teleclinic::Test->new(workers => 2);

write_directory($t, directory(
    departments => ['gp'],
    doctors     => [ doctor($DOCTOR, 'gp', name => 'Dr. Full',
                            slot_minutes => 5, hours => ALL_DAY) ],
));

# 32k, eight pages, is the smallest zone the directive takes
$t->run(conf(zone => '32k', http => <<'EOF'));
teleclinic_public_url https://clinic.example;
teleclinic_notify_url http://127.0.0.1:%%PORT2%%/messages;
teleclinic_notify_secret test-notify-secret-0123456789;
EOF

my $master = $t->master_pid;
my @workers = $t->worker_pids;
# days after tomorrow: every booking there has a reminder waiting
my @free = map { free_slot_ids($t, $DOCTOR, $_) } day_ahead(2), day_ahead(3);

# bookings, with a reason long enough to fill the zone in a few dozen

my (@booked, $r);

for my $i (1 .. 200) {
    my $slot = shift @free;
    $r = book($t, $slot, name => "Full Patient $i", reason => $REASON);
    last unless $r->{status} == 201;

    push @booked, { id => $r->{json}{id}, token => $r->{json}{token},
                    slot => $slot, name => "Full Patient $i" };
}

cmp_ok(scalar @booked, '>', 0, 'bookings before the zone is full');
is($r->{status}, 503, 'booking in a full zone: 503');
is($r->{json}{error}{code}, 'zone_full', 'error code zone_full');
ok($r->{json}{error}{message}, 'with a message');

# reschedules take the small pieces of memory the bookings left

my $moved = $booked[0];

for my $i (1 .. 200) {
    my $slot = shift @free;
    $r = reschedule($t, $moved->{id}, $moved->{token}, $slot);
    last unless $r->{status} == 200;

    $moved->{slot} = $slot;
    $moved->{token} = $r->{json}{token};
}

is($r->{status}, 503, 'reschedule in a full zone: 503');
is($r->{json}{error}{code}, 'zone_full', 'reschedule: zone_full');

$r = book($t, shift @free, name => 'One More Patient',
         reason => $REASON);
is($r->{status}, 503, 'booking still refused');
is($r->{json}{error}{code}, 'zone_full', 'booking still zone_full');

like($t->error_log, qr/\[error\].*teleclinic zone "tc" is full/,
     'error log: the zone is full');

# what is stored can still be read, listed and cancelled

my @bad = grep {
    my $g = appointment($t, $_->{id},
                        ($_->{status} // '') eq 'cancelled'
                        ? $ADMIN_KEY : $_->{token});
    !(($g->{status} // 0) == 200 && $g->{json}{status} eq 'booked'
      && $g->{json}{slot} eq $_->{slot}
      && $g->{json}{patient}{name} eq $_->{name})
} @booked;

is(scalar @bad, 0, 'every booking reads back');

my $date = day_ahead(2);
$r = $t->http(GET => "/api/v1/doctors/$DOCTOR/slots?date=$date");
is($r->{status}, 200, 'slots are listed');

my %status = map { $_->{id} => $_->{status} } @{ $r->{json} // [] };

$r = admin_day($t, $DOCTOR, $date);
is($r->{status}, 200, "the doctor's day is listed");
is(scalar(grep { $_->{slot} =~ /\.\Q${\ ($date =~ tr{-}{}dr)}\E\./ }
               @booked),
   scalar @{ $r->{json} // [] }, "the doctor's day: every booking of the day");

my @cancel = @booked[1 .. ($#booked < 3 ? $#booked : 3)];

ok(@cancel, 'bookings to cancel');

for my $b (@cancel) {
    $r = cancel($t, $b->{id}, $b->{token});
    is($r->{status}, 200, 'cancel in a full zone: 200')
        or diag($r->{body});
    is($r->{json}{status}, 'cancelled', 'cancel: status cancelled');

    $b->{status} = 'cancelled' if ($r->{status} // 0) == 200;
}

$r = $t->http(GET => "/api/v1/doctors/$DOCTOR/slots?date=$date");
%status = map { $_->{id} => $_->{status} } @{ $r->{json} // [] };

for my $b (grep { ($_->{status} // '') eq 'cancelled' } @cancel) {
    is($status{ $b->{slot} }, 'free', 'a cancelled slot is free');

    # (the cancel outdated the patient's token: the admin reads it)
    my $g = appointment($t, $b->{id}, $ADMIN_KEY);
    is($g->{json}{status}, 'cancelled', 'a cancelled one reads cancelled');
}

# nothing crashed: the same master and workers, no critical log line

ok(kill(0, $master), 'master alive');
is_deeply([$t->worker_pids], \@workers, 'workers unchanged: none crashed');
unlike($t->error_log, qr/\[(?:crit|alert|emerg)\]/,
       'no crit, alert or emerg in the log');

# the journal of a full zone fits the same zone again after a crash

$t->kill9;
$t->start;

@bad = grep {
    my $g = appointment($t, $_->{id},
                        ($_->{status} // '') eq 'cancelled'
                        ? $ADMIN_KEY : $_->{token});
    !(($g->{status} // 0) == 200
      && $g->{json}{status} eq ($_->{status} // 'booked')
      && $g->{json}{slot} eq $_->{slot})
} @booked;

is(scalar @bad, 0, 'after kill -9 and start: every booking as it was');

ok($t->stop, 'nginx stopped cleanly');

done_testing;
