#!/usr/bin/perl

# A full zone: in the smallest zone nginx accepts, booking until memory
# runs out ends in 503 zone_full and an error log line, never a crash;
# reading, listing and cancelling go on working.  A gateway is configured
# (on a port where nothing listens), so every change also keeps its
# messages in the zone's outbox, as in production.

use strict;
use warnings;

use Test::More;
use POSIX qw(strftime);
use Mojo::JSON qw(encode_json);

use lib 't/lib';
use Teleclinic::Test;

###############################################################################

my $ADMIN = 'test-admin-key-0123456789';
my $DOCTOR = 'full-one';
my @WEEK = qw(mon tue wed thu fri sat sun);

my $t = Teleclinic::Test->new(workers => 2);

$t->write_file('directory.json', encode_json({
    departments => [{ id => 'gp', name => 'General Practice' }],
    doctors     => [{
        id         => $DOCTOR,
        name       => 'Dr. Full',
        department => 'gp',
        schedule   => {
            slot_minutes => 5,
            hours        => { map { $_ => [['00:00', '24:00']] } @WEEK },
            days_off     => [],
        },
    }],
}));

# 32k, eight pages, is the smallest zone the directive takes
$t->run(<<"EOF");
http {
    %%TEMP_PATHS%%

    teleclinic_zone tc 32k;
    teleclinic_journal %%PREFIX%%/state/journal;
    teleclinic_directory %%PREFIX%%/directory.json;
    teleclinic_token_secret test-secret-0123456789;
    teleclinic_admin_key $ADMIN;
    teleclinic_public_url https://clinic.example;
    teleclinic_notify_url http://127.0.0.1:%%PORT2%%/messages;
    teleclinic_notify_secret test-notify-secret-0123456789;

    server {
        listen 127.0.0.1:%%PORT%%;

        location /api/v1/ {
            teleclinic_api;
        }
    }
}
EOF

my $master = $t->master_pid;
my @workers = $t->worker_pids;
# days after tomorrow: every booking there has a reminder waiting
my @free = map { free_slots($_) } day_ahead(2), day_ahead(3);

# bookings, with a reason long enough to fill the zone in a few dozen

my (@booked, $r);

for my $i (1 .. 200) {
    my $slot = shift @free;
    $r = book($slot, "Full Patient $i");
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
    $r = $t->http(POST => "/api/v1/appointments/$moved->{id}/reschedule",
                  headers => auth($moved->{token}), body => { slot => $slot });
    last unless $r->{status} == 200;

    $moved->{slot} = $slot;
    $moved->{token} = $r->{json}{token};
}

is($r->{status}, 503, 'reschedule in a full zone: 503');
is($r->{json}{error}{code}, 'zone_full', 'reschedule: zone_full');

$r = book(shift @free, 'One More Patient');
is($r->{status}, 503, 'booking still refused');
is($r->{json}{error}{code}, 'zone_full', 'booking still zone_full');

like($t->error_log, qr/\[error\].*teleclinic zone "tc" is full/,
     'error log: the zone is full');

# what is stored can still be read, listed and cancelled

my @bad = grep {
    my $g = $t->http(GET => "/api/v1/appointments/$_->{id}",
                     headers => auth($_->{token}));
    !(($g->{status} // 0) == 200 && $g->{json}{status} eq 'booked'
      && $g->{json}{slot} eq $_->{slot}
      && $g->{json}{patient}{name} eq $_->{name})
} @booked;

is(scalar @bad, 0, 'every booking reads back');

my $date = day_ahead(2);
$r = $t->http(GET => "/api/v1/doctors/$DOCTOR/slots?date=$date");
is($r->{status}, 200, 'slots are listed');

my %status = map { $_->{id} => $_->{status} } @{ $r->{json} // [] };

$r = $t->http(GET => "/api/v1/admin/doctors/$DOCTOR/appointments"
                     . "?date=$date", headers => auth($ADMIN));
is($r->{status}, 200, "the doctor's day is listed");
is(scalar(grep { $_->{slot} =~ /\.\Q${\ ($date =~ tr{-}{}dr)}\E\./ }
               @booked),
   scalar @{ $r->{json} // [] }, "the doctor's day: every booking of the day");

my @cancel = @booked[1 .. ($#booked < 3 ? $#booked : 3)];

ok(@cancel, 'bookings to cancel');

for my $b (@cancel) {
    $r = $t->http(POST => "/api/v1/appointments/$b->{id}/cancel",
                  headers => auth($b->{token}));
    is($r->{status}, 200, 'cancel in a full zone: 200')
        or diag($r->{body});
    is($r->{json}{status}, 'cancelled', 'cancel: status cancelled');

    $b->{status} = 'cancelled' if ($r->{status} // 0) == 200;
}

$r = $t->http(GET => "/api/v1/doctors/$DOCTOR/slots?date=$date");
%status = map { $_->{id} => $_->{status} } @{ $r->{json} // [] };

for my $b (grep { ($_->{status} // '') eq 'cancelled' } @cancel) {
    is($status{ $b->{slot} }, 'free', 'a cancelled slot is free');

    my $g = $t->http(GET => "/api/v1/appointments/$b->{id}",
                     headers => auth($b->{token}));
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
    my $g = $t->http(GET => "/api/v1/appointments/$_->{id}",
                     headers => auth($_->{token}));
    !(($g->{status} // 0) == 200
      && $g->{json}{status} eq ($_->{status} // 'booked')
      && $g->{json}{slot} eq $_->{slot})
} @booked;

is(scalar @bad, 0, 'after kill -9 and start: every booking as it was');

ok($t->stop, 'nginx stopped cleanly');

done_testing;

###############################################################################

# the server's local date $n days ahead (nginx runs with our TZ)
sub day_ahead {
    my ($n) = @_;

    # noon today plus whole days: a DST change cannot skip or repeat a day
    my @now = localtime;
    my $noon = time - ($now[2] - 12) * 3600 - $now[1] * 60 - $now[0];

    return strftime('%Y-%m-%d', localtime($noon + $n * 86400));
}

sub auth {
    my ($token) = @_;
    return { Authorization => "Bearer $token" };
}

sub free_slots {
    my ($date) = @_;

    my $r = $t->http(GET => "/api/v1/doctors/$DOCTOR/slots?date=$date");
    die "slots on $date: $r->{status}\n" unless ($r->{status} // 0) == 200;

    return map { $_->{id} } grep { $_->{status} eq 'free' } @{ $r->{json} };
}

sub book {
    my ($slot, $name) = @_;

    return $t->http(POST => '/api/v1/appointments', body => {
        slot    => $slot,
        patient => { name => $name, phone => '+49 30 1234567' },
        reason  => 'a reason of some length ' x 12,
    });
}

###############################################################################
