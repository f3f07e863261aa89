#!/usr/bin/perl

# A full zone makes room first: cancelled appointments whose time has
# passed are expired (through the journal, so a restart frees the same
# memory) and the booking that needed the room succeeds.

use strict;
use warnings;

use Test::More;
use POSIX qw(strftime);
use Compress::Raw::Zlib ();
use Mojo::JSON qw(encode_json);

use lib 't/lib';
use Teleclinic::Test;

###############################################################################

my $DOCTOR = 'exp-one';
my @WEEK = qw(mon tue wed thu fri sat sun);

my $t = Teleclinic::Test->new(workers => 2);

$t->write_file('directory.json', encode_json({
    departments => [{ id => 'gp', name => 'General Practice' }],
    doctors     => [{
        id         => $DOCTOR,
        name       => 'Dr. Expire',
        department => 'gp',
        schedule   => {
            slot_minutes => 5,
            hours        => { map { $_ => [['00:00', '24:00']] } @WEEK },
        },
    }],
}));

my $conf = <<'EOF';
http {
    %%TEMP_PATHS%%

    teleclinic_zone tc 32k;
    teleclinic_journal %%PREFIX%%/state/journal;
    teleclinic_directory %%PREFIX%%/directory.json;
    teleclinic_token_secret test-secret-0123456789;

    server {
        listen 127.0.0.1:%%PORT%%;

        location /api/v1/ {
            teleclinic_api;
        }
    }
}
EOF

# A journal holding yesterday's cancelled appointments, as many as the
# zone takes: the largest count with which nginx still starts.

my $reason = 'r' x 900;
my $started;

$t->allow_log(qr/is too small for the journal/);

for (my $n = 24; $n > 0; $n -= 2) {
    $t->write_file('state/journal', past_cancelled($n));

    if (eval { $t->run($conf); 1 }) {
        $started = $n;
        last;
    }
}

ok($started, "nginx starts with past cancelled appointments filling it");

# the zone is nearly full of them; new bookings need their room

my $tomorrow = strftime('%Y-%m-%d', localtime(time + 86400));
my $slots = $t->http(GET => "/api/v1/doctors/$DOCTOR/slots?date=$tomorrow")
    ->{json};

my @ok;

for my $i (0 .. 5) {
    my $r = $t->http(POST => '/api/v1/appointments', body => {
        slot    => $slots->[$i]{id},
        patient => { name => "New Patient $i", phone => '+49 30 1234567' },
        reason  => $reason,
    });

    push @ok, $r if $r->{status} == 201;
}

is(scalar @ok, 6, 'every new booking succeeds in a zone full of past ones');
like($t->error_log, qr/past cancelled appointments expired/,
     'the error log tells that past cancelled appointments expired');
unlike($t->error_log, qr/zone "tc" is full/, 'no booking was refused');

# a restart replays the expiry: the state fits, the new bookings are there

$t->kill9;
$t->start;

for my $r (@ok) {
    my $g = $t->http(GET => "/api/v1/appointments/$r->{json}{id}",
                     headers => { Authorization => "Bearer $r->{json}{token}" });
    is($g->{status}, 200, "a new booking is there after a restart");
}

$t->stop;

done_testing();

###############################################################################

sub past_cancelled {
    my ($n) = @_;
    my $journal = '';
    my $start = int(time / 300) * 300 - 86400;

    for my $i (1 .. $n) {
        my $text = encode_json({
            seq => $i, op => 'appt', at => $start, created => $start - 3600,
            id => sprintf('%016x', 0xe0000000 + $i), status => 3,
            doctor => $DOCTOR, start => $start + $i * 300,
            end => $start + $i * 300 + 300,
            name => "Past Patient $i", phone => '+49 30 7654321',
            reason => $reason,
        });

        $journal .= sprintf("%08x %s\n",
                            Compress::Raw::Zlib::crc32($text), $text);
    }

    return $journal;
}
