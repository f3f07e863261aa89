#!/usr/bin/perl

# The WebSocket behind TLS: a "listen ... ssl" server, nginx ends TLS and
# the endpoint works unchanged: a patient checks in and is told their
# place, the doctor's console sees them, over wss://.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Room qw(:all);
use Teleclinic::Test;
use Teleclinic::WS;

###############################################################################

plan(skip_all => 'nginx lacks http_ssl')
    unless Teleclinic::Test::has_feature('http_ssl');

# a self-signed certificate for the test's server, made here
my $dir = tempdir(CLEANUP => 1);

system('sh', '-c', 'exec "$@" 2>/dev/null', 'sh', 'openssl', 'req', '-x509',
       '-newkey', 'rsa:2048', '-nodes',
       '-days', '1', '-subj', '/CN=127.0.0.1', '-keyout', "$dir/key.pem",
       '-out', "$dir/cert.pem") == 0
    or plan(skip_all => 'openssl could not make a certificate');

my $t = room(server => "listen 127.0.0.1:%%PORT2%% ssl;\n"
                       . "ssl_certificate $dir/cert.pem;\n"
                       . "ssl_certificate_key $dir/key.pem;\n");

# the certificate is our own: no CA to check it against
Teleclinic::WS::ua()->insecure(1);

my $wss = 'wss://127.0.0.1:' . $t->port('PORT2') . '/ws';
like($wss, qr{^wss://127\.0\.0\.1:\d+/ws$}, 'a wss:// URL');

my @p = book_soon($t, 'doc-a', 1);

my $doc = Teleclinic::WS->connect($wss);
ok($doc, 'doctor: the TLS handshake and the WebSocket upgrade');
$doc->send_json({ type => 'hello', token => login($t, 'doc-a') });
my $w = $doc->recv_json(type => 'welcome');
is($w && $w->{role}, 'doctor', 'doctor: welcome over TLS');

my $ws = Teleclinic::WS->connect($wss);
$ws->send_json({ type => 'hello', token => $p[0]{token} });
$w = $ws->recv_json(type => 'welcome');
is($w && $w->{role}, 'patient', 'patient: welcome over TLS');

expect_queue($ws, { position => 1 }, 'patient: position 1 over TLS');
expect_doctor_queue($doc, [ $p[0]{id} ], 'doctor: sees the patient');

# a message over 16k crosses TLS records whole
$ws->send_json({ type => 'echo', data => 'x' x 40000 });
my $e = $ws->recv_json(type => 'echo');
is(length($e && $e->{data} // ''), 40000, 'a 40 KB message, whole');

$ws->close(1000);
$doc->close(1000);

$t->stop;

done_testing;
