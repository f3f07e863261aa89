#!/usr/bin/perl

# TURN (RFC 8656) with coturn's own client, turnutils_uclient, using the
# REST-style shared secret (-W): two clients allocate relays, bind
# channels to each other's relayed addresses and stream to each other
# through the module (-y), over UDP, over TCP and over TLS (nginx ends
# TLS with a certificate the test makes), with no packet lost.  Two
# workers: a UDP client and its relay stay with the worker that holds
# its session (reuseport).  The same again with Send indications
# instead of channels (-s); with and without -c (RTCP relays on port
# pairs reserved with EVEN-PORT and RESERVATION-TOKEN); over IPv6 too
# when the loopback has it.

use strict;
use warnings;

use Test::More;

use IO::Socket::IP;

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;

###############################################################################

my ($uclient) = grep { -x } map { "$_/turnutils_uclient" }
                split /:/, $ENV{PATH};
plan(skip_all => 'turnutils_uclient not installed (apt-get install coturn)')
    unless $uclient;

my $SECRET = 'uclient-test-secret';

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

# IPv6 when the loopback has it
my $have_v6 = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0,
                                  Proto => 'udp') ? 1 : 0;
my $v6 = !$have_v6 ? '' : <<'V6';
    server {
        listen [::1]:%%PORT3%% udp reuseport;
        listen [::1]:%%PORT3%%;
        teleclinic_turn;
        teleclinic_turn_allow_peer ::1/128;
    }
V6

my $lo = 40000 + int rand 20000;
my $ports = $lo . '-' . ($lo + 999);

$t->run(<<"EOF");
stream {
    teleclinic_turn_secret $SECRET;
    teleclinic_turn_realm test.realm;
    teleclinic_turn_relay_ports $ports;

    # the test's peers are on loopback
    teleclinic_turn_allow_peer 127.0.0.0/8;

    server {
        listen 127.0.0.1:%%PORT%% udp reuseport;
        listen 127.0.0.1:%%PORT%%;
        teleclinic_turn;
    }

$v6
$tls
}
EOF

my $port = $t->port('PORT');
my $tls_port = $t->port('PORT2');

###############################################################################

# runs turnutils_uclient; returns (sent, received, lost, output);
# ('-6', ...) talks to ::1 instead of 127.0.0.1
sub uclient {
    my (@args) = @_;

    my $host = '127.0.0.1';
    if (@args && $args[0] eq '-6') {
        shift @args;
        $host = '::1';
    }

    my $cmd = join ' ', 'timeout 60', $uclient, '-W', $SECRET,
                        '-u', 'uclient', '-e', $host, @args,
                        $host, '2>&1';
    my $out = `$cmd`;

    my ($sent, $recv) = $out =~ /tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$/m;
    my ($lost) = $out =~ /Total lost packets (\d+)/;

    return ($sent // -1, $recv // -1, $lost // -1, $out);
}

sub check {
    my ($name, @args) = @_;

    my ($sent, $recv, $lost, $out) = uclient(@args);

    # -m 2 -y: two clients, each sends 50 messages to the other
    ok($sent >= 100 && $sent == $recv && $lost == 0,
       "$name: $sent sent, $recv received, $lost lost")
        or diag($out =~ s/^(.{0,4000}).*/$1/sr);
}

check('udp, channels', '-y', '-c', '-n', 50, '-m', 2, '-l', 200, '-p', $port);
# without -c each client also allocates an RTCP relay: EVEN-PORT with
# R for the RTP one, the RESERVATION-TOKEN for the next port
check('udp, channels, RTP and RTCP relays', '-y', '-n', 50, '-m', 2,
      '-l', 200, '-p', $port);
check('udp, Send and Data indications', '-y', '-c', '-s', '-n', 50,
      '-m', 2, '-l', 200, '-p', $port);
check('tcp, channels', '-t', '-y', '-c', '-n', 50, '-m', 2, '-l', 200,
      '-p', $port);
check('tcp, channels, odd length (padding)', '-t', '-y', '-c', '-n', 50,
      '-m', 2, '-l', 171, '-p', $port);
check('tcp, channels, RTP and RTCP relays', '-t', '-y', '-n', 50, '-m', 2,
      '-l', 200, '-p', $port);
check('tcp, Send and Data indications', '-t', '-y', '-c', '-s', '-n', 50,
      '-m', 2, '-l', 200, '-p', $port);

SKIP: {
    skip $no_tls, 1 unless $have_tls;

    check('tls, channels', '-t', '-S', '-y', '-c', '-n', 50, '-m', 2, '-l', 200,
          '-p', $tls_port);
}

SKIP: {
    skip 'no IPv6 on the loopback', 2 unless $have_v6;

    my $p6 = $t->port('PORT3');
    check('ipv6 udp, channels', '-6', '-x', '-y', '-n', 50, '-m', 2,
          '-l', 200, '-p', $p6);
    check('ipv6 tcp, channels', '-6', '-t', '-x', '-y', '-n', 50, '-m', 2,
          '-l', 200, '-p', $p6);
}

# a wrong secret: no allocation, nothing relayed
{
    my $cmd = "timeout 30 $uclient -W wrong-secret -u uclient -e 127.0.0.1"
              . " -y -n 5 -m 1 -l 100 -p $port 127.0.0.1 2>&1";
    my $out = `$cmd`;
    my ($recv) = $out =~ /tot_recv_msgs=(\d+)\s*$/m;
    ok(!$recv, 'wrong secret: nothing relayed') or diag($out);
}

$t->stop;

done_testing();
