#!/usr/bin/perl

# What the TURN relay carries, seen from a hand-built client and a peer
# socket: over UDP, TCP and TLS, a Send indication reaches the peer and
# the peer's answer comes back in a Data indication naming it; after
# ChannelBind both ways use ChannelData (padded to 4 bytes over TCP and
# TLS, several in one segment, one split over segments); a peer without
# permission reaches nobody; the relayed address is in the port range.
# teleclinic_turn_bandwidth drops what exceeds it.  Many clients over two
# workers each get their own data back.  A reload keeps a UDP allocation
# (its next Refresh works) and closes TCP connections; a graceful stop
# with allocations open logs no alert.  The counters show
# in the http side's teleclinic_metrics when it exports them.

use strict;
use warnings;

use Test::More;

use IO::Select;
use IO::Socket::IP;
use Time::HiRes qw(sleep);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Turn qw(attr peer_socket);

###############################################################################

my $SECRET = 'relay-secret';

my $t = Teleclinic::Test->new(workers => 2, udp => 1);
$t->has(qw(stream));

# TLS when nginx has stream_ssl and openssl makes a certificate; the
# TLS server is in the configuration only then
my $have_ssl = Teleclinic::Test::has_feature('stream_ssl');
my $have_tls = $have_ssl
               && system('openssl req -x509 -newkey rsa:2048 -nodes -days 2 '
                         . '-subj /CN=localhost '
                         . '-keyout ' . $t->prefix . '/turn.key '
                         . '-out ' . $t->prefix . '/turn.crt '
                         . '>/dev/null 2>&1') == 0;
my $no_tls = $have_ssl ? 'openssl could not make a certificate'
                       : 'nginx lacks stream_ssl';
my $tls = !$have_tls ? '' : <<'TLS';
    server {
        listen 127.0.0.1:%%PORT2%% ssl;
        ssl_certificate %%PREFIX%%/turn.crt;
        ssl_certificate_key %%PREFIX%%/turn.key;
        teleclinic_turn;
    }
TLS

my $lo = 40000 + int rand 20000;
my ($min, $max) = ($lo, $lo + 499);

$t->write_file('turn.secret', "$SECRET\n");

$t->run(<<"EOF");
http {
    %%TEMP_PATHS%%
    teleclinic_zone teleclinic 4m;
    teleclinic_journal %%PREFIX%%/journal;
    teleclinic_token_secret relay-test-token-secret;

    server {
        listen 127.0.0.1:%%PORT3%%;
        location = /metrics { teleclinic_metrics; }
    }
}

stream {
    teleclinic_turn_secret_file %%PREFIX%%/turn.secret;
    teleclinic_turn_relay_ports $min-$max;
    teleclinic_turn_allow_peer 127.0.0.0/8;

    server {
        listen 127.0.0.1:%%PORT%% udp reuseport;
        listen 127.0.0.1:%%PORT%%;
        teleclinic_turn;
    }

$tls
    server {
        listen 127.0.0.1:%%PORT4%% udp reuseport;
        teleclinic_turn;
        teleclinic_turn_bandwidth 20k;
    }
}
EOF

my %port = (udp => $t->port('PORT'), tcp => $t->port('PORT'),
            tls => $t->port('PORT2'));

# (data, "ip:port" of the sender) or ()
sub peer_recv {
    my ($s, $wait) = @_;
    return () unless IO::Select->new($s)->can_read($wait // 3);
    my $buf;
    my $from = $s->recv($buf, 65536);
    return () unless defined $from;
    my ($port, $addr) = Socket::unpack_sockaddr_in($from);
    return ($buf, Socket::inet_ntoa($addr) . ':' . $port);
}

sub peer_send {
    my ($s, $relayed, $data) = @_;
    my ($ip, $port) = split /:/, $relayed;
    $s->send($data, 0, Socket::pack_sockaddr_in($port,
                                                Socket::inet_aton($ip)));
}

sub metrics {
    my $r = $t->http(GET => '/metrics', port => 'PORT3');
    return $r->{body} // '';
}

sub metric {
    my ($text, $name) = @_;
    my ($v) = $text =~ /^\Q$name\E (\d+)$/m;
    return $v;
}

###############################################################################

for my $proto ('udp', 'tcp', 'tls') {

    SKIP: {
    skip $no_tls, 18 if $proto eq 'tls' && !$have_tls;

    my $c = Teleclinic::Turn->new(port => $port{$proto}, secret => $SECRET,
                                  proto => $proto);
    my $m = $c->allocate;
    is($m && $m->{code}, 0, "$proto: allocated");

    my ($rip, $rport) = split /:/, $c->relayed;
    ok($rip eq '127.0.0.1' && $rport >= $min && $rport <= $max,
       "$proto: relayed address in the port range");

    my $peer = peer_socket();
    my $pport = $peer->sockport;
    my $other = peer_socket();
    my $stranger = peer_socket('127.0.0.3');

    is($c->permission(['127.0.0.2', $pport])->{code}, 0,
       "$proto: CreatePermission");

    $c->send_indication('127.0.0.2', $pport, 'hello peer');
    my ($data, $from) = peer_recv($peer);
    is($data, 'hello peer', "$proto: Send indication reaches the peer");
    is($from, $c->relayed, "$proto: from the relayed address");

    peer_send($peer, $c->relayed, 'hello client');
    my ($who, $got) = $c->recv_data;
    is($got, 'hello client', "$proto: Data indication to the client");
    is($who, "127.0.0.2:$pport", "$proto: XOR-PEER-ADDRESS names the peer");

    # another port of the peer's address has the permission (by IP),
    # another address (127.0.0.3, loopback too) has none
    peer_send($stranger, $c->relayed, 'from a stranger');
    sleep 0.2;
    peer_send($other, $c->relayed, 'same ip, other port');
    ($who, $got) = $c->recv_data;
    is($got, 'same ip, other port', "$proto: permission is by IP address");
    ($who, $got) = $c->recv_data(0.5);
    ok(!defined $got, "$proto: nothing from an address without permission");

    is($c->channel_bind(0x4123, '127.0.0.2', $pport)->{code}, 0,
       "$proto: ChannelBind");

    # odd lengths exercise the padding over streams
    $c->send_channel(0x4123, 'abcde');
    ($data) = peer_recv($peer);
    is($data, 'abcde', "$proto: ChannelData reaches the peer");

    peer_send($peer, $c->relayed, 'xyz');
    ($who, $got) = $c->recv_data;
    is($who, 0x4123, "$proto: the peer's data comes on the channel");
    is($got, 'xyz', "$proto: ChannelData to the client");

    # the other port of the peer's address has no channel: indication
    peer_send($other, $c->relayed, 'no channel');
    ($who, $got) = $c->recv_data;
    is($who, '127.0.0.2:' . $other->sockport,
       "$proto: a peer without a channel gets a Data indication");

    # several messages at once, and (over streams) one split in pieces
    $c->raw_send(join '', map { my $d = "msg$_" x $_;
                                pack('nn', 0x4123, length $d) . $d
                                . ($proto eq 'udp' ? ''
                                   : "\0" x ((4 - length($d) % 4) % 4)) }
                          1 .. 3)
        if $proto ne 'udp';
    if ($proto eq 'udp') {
        $c->send_channel(0x4123, "msg$_" x $_) for 1 .. 3;
    }
    my @got = map { (peer_recv($peer))[0] // '' } 1 .. 3;
    is_deeply(\@got, [map { "msg$_" x $_ } 1 .. 3],
              "$proto: three ChannelData in a row");

    if ($proto ne 'udp') {
        my $frame = pack('nn', 0x4123, 7) . "pieces!" . "\0";
        for my $piece (substr($frame, 0, 3), substr($frame, 3, 4),
                       substr($frame, 7))
        {
            $c->raw_send($piece);
            sleep 0.05;
        }
        ($data) = peer_recv($peer);
        is($data, 'pieces!', "$proto: ChannelData split over segments");
    } else {
        # a datagram longer than its ChannelData (padding over UDP)
        $c->raw_send(pack('nn', 0x4123, 3) . "pad\0");
        ($data) = peer_recv($peer);
        is($data, 'pad', "$proto: ChannelData with padding over UDP");
    }

    # a bigger datagram both ways
    my $big = join '', map { chr(($_ * 7) % 256) } 1 .. 1300;
    $c->send_channel(0x4123, $big);
    ($data) = peer_recv($peer);
    is($data, $big, "$proto: 1300 bytes to the peer");
    peer_send($peer, $c->relayed, $big);
    ($who, $got) = $c->recv_data;
    is($got, $big, "$proto: 1300 bytes to the client");

    $c->refresh(0);
    }
}

###############################################################################

# bandwidth: 20 KB/s per allocation; 60 datagrams of 1000 bytes at once
# exceed the second's worth the bucket holds

{
    my $c = Teleclinic::Turn->new(port => $t->port('PORT4'),
                                  secret => $SECRET);
    is($c->allocate->{code}, 0, 'bandwidth: allocated');

    my $peer = peer_socket();
    is($c->channel_bind(0x4000, '127.0.0.2', $peer->sockport)->{code}, 0,
       'bandwidth: ChannelBind');

    $c->send_channel(0x4000, 'x' x 1000) for 1 .. 60;

    my $n = 0;
    while (my ($d) = peer_recv($peer, 1)) {
        $n++;
    }

    ok($n >= 10 && $n < 60, "bandwidth: $n of 60 relayed");
}

###############################################################################

# many clients over two workers: each gets its own data back through a
# channel to one peer

{
    my $peer = peer_socket();
    my @c;

    for my $i (1 .. 12) {
        my $c = Teleclinic::Turn->new(port => $port{udp}, secret => $SECRET);
        next unless $c->allocate->{code} == 0;
        next unless $c->channel_bind(0x4000, '127.0.0.2',
                                     $peer->sockport)->{code} == 0;
        push @c, $c;
    }

    is(scalar @c, 12, 'twelve clients allocated');

    $_->send_channel(0x4000, 'client ' . $_->local_port) for @c;

    # the peer echoes each datagram to the relayed address it came from
    my $echoed = 0;
    while (my ($d, $from) = peer_recv($peer, 1)) {
        peer_send($peer, $from, $d);
        $echoed++;
        last if $echoed == @c;
    }

    my $right = grep {
        my ($ch, $d) = $_->recv_data;
        defined $d && $d eq 'client ' . $_->local_port;
    } @c;

    is($right, 12, 'each client gets its own data back');

    $_->refresh(0) for @c;
}

###############################################################################

# counters, through the http side's metrics (when it exports them)

SKIP: {
    my $text = metrics();
    skip 'teleclinic_metrics does not export the TURN counters yet', 5
        unless $text =~ /teleclinic_turn_/;

    # the TLS pass above allocates once, when it runs
    my $allocations = $have_tls ? 16 : 15;

    my $v;
    for (1 .. 30) {
        $text = metrics();
        $v = metric($text,
                    'teleclinic_turn_refusals_total{reason="bandwidth"}');
        last if $v && metric($text,
            'teleclinic_turn_relayed_packets_total{direction="to_client"}')
            && metric($text, 'teleclinic_turn_allocations_total')
               >= $allocations;
        sleep 0.2;
    }

    ok($v, 'metrics: bandwidth drops counted');
    note($text =~ /^(teleclinic_turn.*\n)/mg);
    is(metric($text, 'teleclinic_turn_allocations_total'), $allocations,
       'metrics: allocations counted')
        or diag($text =~ /^(teleclinic_turn.*)$/mg);
    ok(metric($text,
             'teleclinic_turn_relayed_packets_total{direction="to_peer"}'),
       'metrics: packets to peers counted');
    is(metric($text, 'teleclinic_turn_allocations'), 1,
       'metrics: one allocation left (the bandwidth test\'s)');
    like($text, qr/^# TYPE teleclinic_turn_allocations gauge$/m,
         'metrics: TYPE lines');
}

###############################################################################

# a reload: UDP allocations go on at the new workers (t/046 has more),
# TCP ones end with their connection

{
    my $c = Teleclinic::Turn->new(port => $port{udp}, secret => $SECRET);
    is($c->allocate->{code}, 0, 'before reload: allocated');

    my $s = Teleclinic::Turn->new(port => $port{tcp}, secret => $SECRET,
                                  proto => 'tcp');
    is($s->allocate->{code}, 0, 'before reload: tcp allocated');

    $t->reload;

    my $m = $c->refresh;

    # the old nonce is stale for the new workers: 438, then the answer
    $m = $c->refresh if $m && $m->{code} == 438;
    is($m && $m->{code}, 0, 'after reload: udp Refresh finds the allocation');

    my $closed = 0;
    if (IO::Select->new($s->socket)->can_read(5)) {
        my $n = sysread $s->socket, my $buf, 100;
        $closed = defined $n && $n == 0;
    }
    ok($closed, 'after reload: tcp connection closed');

    # allocations open at stop: no alert (stop checks the log)
    my $peer = peer_socket();
    $c->channel_bind(0x4000, '127.0.0.2', $peer->sockport);
}

$t->stop;

done_testing();
