#!/usr/bin/perl

# A full zone makes room first: cancelled appointments whose time has
# passed are expired (through the journal, so a restart frees the same
# memory) and the booking that needed the room succeeds.

use strict;
use warnings;

use Test::More;
use Compress::Raw::Zlib ();
use Mojo::JSON qw(encode_json);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);

###############################################################################

my $DOCTOR = 'exp-one';

my $t = Teleclinic::Test->new(workers => 2);

write_directory($t, directory(
    departments => ['gp'],
    doctors     => [ doctor($DOCTOR, 'gp', name => 'Dr. Expire',
                            slot_minutes => 5, hours => ALL_DAY) ],
));

my $conf = conf(zone => '32k');

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

my $slots = slots($t, $DOCTOR, day_ahead(1));

my @ok;

for my $i (0 .. 5) {
    my $r = book($t, $slots->[$i]{id}, name => "New Patient $i",
                 reason => $reason);

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
    my $g = appointment($t, $r->{json}{id}, $r->{json}{token});
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
