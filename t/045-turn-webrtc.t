#!/usr/bin/perl

# A WebRTC call through our TURN relay and nothing else: two aiortc peers
# (t/lib/turn_webrtc.py, Debian's python3-aiortc) with the relay as their
# only ICE server and relay candidates only, REST-style credentials from
# the shared secret, one sending video, the other decoding it.  Once over
# a server that listens on UDP only and once over one that listens on TCP
# only (TURN over TCP from the client, UDP relays), so each call can only
# have used that transport.  Each call must connect, offer nothing but
# relay candidates, nominate a pair of relay addresses from our relay port
# range, and decode more frames at the end than at the start.  A peer with
# a wrong secret gets no relay candidate and no call.

use strict;
use warnings;

use Test::More;

use IO::Socket::IP;
use JSON::PP qw(decode_json);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;

###############################################################################

my $PYTHON = '/usr/bin/python3';
my $SCRIPT = Teleclinic::Test->repo . '/t/lib/turn_webrtc.py';
my $SECRET = 'webrtc-test-secret-0123456789';
my $SECONDS = 2;           # of media between the two frame counts

plan skip_all => 'python3-aiortc is not installed'
    unless system($PYTHON, '-c', 'import aiortc') == 0;

# a block of relay ports free for UDP, above the kernel's ephemeral range
sub free_range {
    my ($n) = @_;

    open my $f, '<', '/proc/sys/net/ipv4/ip_local_port_range' or die $!;
    my (undef, $hi) = split ' ', scalar <$f>;
    close $f;

    my $lo = $hi + 1 < 65536 - 2 * $n ? $hi + 1 : 20000;

    TRY: for (1 .. 50) {
        my $start = $lo + int rand(65536 - $n - $lo);

        for my $p ($start .. $start + $n - 1) {
            IO::Socket::IP->new(Proto => 'udp', LocalHost => '127.0.0.1',
                                LocalPort => $p) or next TRY;
        }

        return $start;
    }

    die "no free block of $n ports";
}

my $min = free_range(200);
my $max = $min + 199;

my $t = Teleclinic::Test->new(workers => 2, udp => 1);
$t->has(qw(stream));

$t->run(<<"EOF");
stream {
    teleclinic_turn_secret $SECRET;
    teleclinic_turn_relay_address 127.0.0.1;
    teleclinic_turn_relay_ports $min-$max;

    # the other peer's relay address is on loopback
    teleclinic_turn_allow_peer 127.0.0.0/8;

    server {
        listen 127.0.0.1:%%PORT%% udp reuseport;
        teleclinic_turn;
    }

    server {
        listen 127.0.0.1:%%PORT2%%;
        teleclinic_turn;
    }
}
EOF

###############################################################################

# runs a call, returns its JSON report (or one with an error)
sub call {
    my ($port, $secret, $transport) = @_;

    my $out = qx{timeout 60 $PYTHON $SCRIPT 127.0.0.1 $port $secret \\
                 $transport $SECONDS 2>&1};
    my ($json) = $out =~ /^(\{.*\})\s*$/m;

    return { error => "no report: $out" } unless defined $json;
    return decode_json($json);
}

sub in_range {
    my ($addr) = @_;
    my ($type, $port) = ($addr // '') =~ /^(\w+) 127\.0\.0\.1:(\d+)$/
        or return 0;
    return $type eq 'relay' && $port >= $min && $port <= $max;
}

for my $case ([udp => $t->port('PORT')], [tcp => $t->port('PORT2')]) {
    my ($transport, $port) = @$case;

    my $r = call($port, $SECRET, $transport);

    is($r->{error}, undef, "$transport: the call went through")
        or diag(explain($r));
    ok($r->{connected}, "$transport: ICE completed");

    my @types = @{ $r->{candidates} // [] };
    ok(@types >= 2 && !grep({ $_ ne 'relay' } @types),
       "$transport: both peers offered relay candidates only (@types)");

    ok(in_range($r->{local}),
       "$transport: the callee's candidate is our relay ("
       . ($r->{local} // 'none') . ")");
    ok(in_range($r->{remote}),
       "$transport: the caller's candidate is our relay ("
       . ($r->{remote} // 'none') . ")");

    my ($first, $last) = @{ $r->{frames} // [0, 0] };
    ok($first > 0, "$transport: video frames decoded ($first)");
    cmp_ok($last, '>', $first, "$transport: and more after ${SECONDS}s");
}

my $r = call($t->port('PORT'), 'not-the-secret', 'udp');

like($r->{error} // '', qr/401/, 'a wrong secret: the allocation is refused');
ok(!$r->{connected}, 'a wrong secret: no call');

$t->stop;

done_testing;
