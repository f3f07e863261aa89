#!/usr/bin/perl

# Granted snapshot consents for record.sh's upload run, the way a visit
# gets them: over the WebSocket, in calls.
#
#   perl bench/lib/consent.pl WS_URL CALLS_FILE COUNT > CONSENTS
#
# CALLS_FILE has a line per visit: "APPOINTMENT PATIENT_TOKEN
# DOCTOR_TOKEN", each of its own doctor, checked in as the first of that
# doctor's queue.  Each patient says hello, each doctor calls the next
# patient, the patient accepts; then, COUNT times, every doctor sends
# snapshot_request, every patient grants it, and every doctor gets the
# consent (one request at a time per call: a new one replaces one not
# answered yet; the calls go side by side, so the journal's group commit
# takes their consents together).  Prints "APPOINTMENT REQUEST
# DOCTOR_TOKEN" for each granted consent, and on stderr how long it took.
# A record keeps NGX_TELECLINIC_RECORD_CONSENTS (200) consents and as many
# items, so COUNT stays below that; more uploads need more calls.
#
# The WebSocket client is the tests' (t/lib/Teleclinic/WS.pm); the
# server's teleclinic_websocket_rate must allow COUNT messages in a few
# seconds.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../../t/lib";
use Teleclinic::WS;
use Time::HiRes qw(time);

my ($url, $file, $count) = @ARGV;
die "usage: $0 WS_URL CALLS_FILE COUNT\n" unless $count;

open my $fh, '<', $file or die "$file: $!\n";
my @visits = map { chomp; my @f = split ' '; { appt => $f[0],
                   patient => $f[1], doctor => $f[2] } } grep { /\S/ } <$fh>;
close $fh;

my $start = time;

sub want {
    my ($ws, $what, %opts) = @_;

    my $m = $ws->recv_json(match => sub {
        $_[0]{type} eq $opts{type} || $_[0]{type} eq 'error'
    }, %opts, type => undef);

    die "consent.pl: $what: "
        . ($m ? "error $m->{code}" : 'nothing within the timeout') . "\n"
        unless $m && $m->{type} eq $opts{type};

    return $m;
}

for my $v (@visits) {
    $v->{pws} = Teleclinic::WS->connect($url);
    my $m = $v->{pws}->hello($v->{patient});
    die "consent.pl: patient hello: " . ($m ? $m->{code} // $m->{type} : '')
        . "\n" unless $m && $m->{type} eq 'welcome';

    $v->{dws} = Teleclinic::WS->connect($url);
    $m = $v->{dws}->hello($v->{doctor});
    die "consent.pl: doctor hello: " . ($m ? $m->{code} // $m->{type} : '')
        . "\n" unless $m && $m->{type} eq 'welcome';

    $v->{dws}->send_json({ type => 'call_next' });
}

for my $v (@visits) {
    $v->{call} = want($v->{pws}, 'ring', type => 'ring')->{call};
    $v->{pws}->send_json({ type => 'accept', call => $v->{call} });
}

want($_->{dws}, 'call', type => 'call') for @visits;

my $granted = 0;

for (1 .. $count) {
    $_->{dws}->send_json({ type => 'snapshot_request', call => $_->{call} })
        for @visits;

    for my $v (@visits) {
        my $m = want($v->{pws}, 'snapshot_request', type => 'snapshot_request',
                     call => $v->{call});
        $v->{pws}->send_json({ type => 'snapshot_consent', call => $v->{call},
                               request => $m->{request}, granted => \1 });
    }

    for my $v (@visits) {
        my $m = want($v->{dws}, 'snapshot_consent', type => 'snapshot_consent',
                     call => $v->{call});
        die "consent.pl: a consent not granted\n" unless $m->{granted};
        print "$v->{appt} $m->{request} $v->{doctor}\n";
        $granted++;
    }
}

# uploads come after the calls: a doctor keeps the frames of a visit
for my $v (@visits) {
    $v->{dws}->send_json({ type => 'hangup', call => $v->{call} });
    want($v->{pws}, 'ended', type => 'ended', call => $v->{call});
}

printf STDERR "consent.pl: %d consents granted in %d calls in %.1f s\n",
    $granted, scalar @visits, time - $start;
