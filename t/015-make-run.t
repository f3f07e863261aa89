#!/usr/bin/perl

# What `make run` starts: bin/teleclinic-run with conf/nginx.conf and the
# demo directory serves the API, with at least 3 departments (dermatology
# and endocrinology among them), at least 6 doctors, and free slots on
# each of the next 7 days.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::IP;
use POSIX qw(strftime WNOHANG);
use Time::HiRes qw(sleep);
use Mojo::UserAgent;
use Mojo::URL;
use Mojo::IOLoop;

use lib 't/lib';
use Teleclinic::Test;

###############################################################################

my $var = tempdir(CLEANUP => 1);
my $port = free_port();
my $turn_port = free_port(udp => 1);

my $pid = fork() // die "fork: $!";

if ($pid == 0) {
    $ENV{TELECLINIC_VAR} = $var;
    open STDOUT, '>', "$var/run.log";
    open STDERR, '>&', \*STDOUT;
    exec 'bin/teleclinic-run', $port, $turn_port or exit 127;
}

my $up = 0;

for (1 .. 100) {
    if (IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port)) {
        $up = 1;
        last;
    }

    sleep 0.1;
}

ok($up, 'teleclinic-run listens on the given port');

my $ua = Mojo::UserAgent->new(request_timeout => 10);
my $base = "http://127.0.0.1:$port/api/v1";

my $depts = $ua->get("$base/departments")->result->json;
my %dept = map { $_->{id} => 1 } @$depts;

ok(@$depts >= 3, 'at least 3 departments');
ok($dept{dermatology}, 'dermatology is a department');
ok($dept{endocrinology}, 'endocrinology is a department');

my $doctors = $ua->get("$base/doctors")->result->json;
ok(@$doctors >= 6, 'at least 6 doctors');

for my $n (0 .. 6) {
    my @now = localtime;

    # the on-call doctor's last slot of today starts at 23:45
    next if $n == 0 && $now[2] == 23 && $now[1] >= 40;

    my $date = strftime('%Y-%m-%d', localtime(time + $n * 86400));
    my $free = 0;

    for my $d (@$doctors) {
        my $slots = $ua->get("$base/doctors/$d->{id}/slots?date=$date")
            ->result->json;
        $free += grep { $_->{status} eq 'free' } @$slots;
    }

    ok($free > 0, "free slots on $date (today + $n)");
}

my $res = $ua->get("http://127.0.0.1:$port/")->result;
is($res->code, 200, 'the booking page is served from html/');

# the links of a booking lead to pages that are there

my $date = strftime('%Y-%m-%d', localtime(time + 86400));
my ($slot) = grep { $_->{status} eq 'free' }
             @{ $ua->get("$base/doctors/$doctors->[0]{id}/slots?date=$date")
                ->result->json };
my $book = $ua->post("$base/appointments" => json => {
    slot => $slot->{id},
    patient => { name => 'Demo Patient', phone => '+49 30 1234567' },
})->result;

is($book->code, 201, 'a demo booking');

for my $link ('join_url', 'guide_url') {
    my $url = Mojo::URL->new($book->json->{$link});
    is($url->host_port, "127.0.0.1:$port", "$link points at this server");
    is($ua->get($url)->result->code, 200, "$link: the page is there");
}

# the waiting room's WebSocket and the STUN server are up too

my ($echo, $tx);
$ua->websocket("ws://127.0.0.1:$port/ws" => sub {
    ($ua, $tx) = @_;
    return Mojo::IOLoop->stop unless $tx->is_websocket;
    $tx->on(json => sub { $echo = $_[1]; $tx->finish; Mojo::IOLoop->stop });
    $tx->send({ json => { v => 1, type => 'echo', data => 'hello' } });
});
my $timer = Mojo::IOLoop->timer(10 => sub { Mojo::IOLoop->stop });
Mojo::IOLoop->start;
Mojo::IOLoop->remove($timer);
is($echo && $echo->{data}, 'hello', 'the WebSocket at /ws answers');

# a demo doctor's console: the demo password logs in, the hello answers
my $login = $ua->post("$base/doctor/login" => json => {
    doctor => $doctors->[0]{id}, password => 'demo-password',
})->result;
is($login->code, 200, 'a demo doctor logs in with the demo password');

my $welcome;
$ua->websocket("ws://127.0.0.1:$port/ws" => sub {
    ($ua, $tx) = @_;
    return Mojo::IOLoop->stop unless $tx->is_websocket;
    $tx->on(json => sub {
        $welcome //= $_[1];
        $tx->finish;
        Mojo::IOLoop->stop;
    });
    $tx->send({ json => { v => 1, type => 'hello',
                          token => $login->json->{token} } });
});
$timer = Mojo::IOLoop->timer(10 => sub { Mojo::IOLoop->stop });
Mojo::IOLoop->start;
Mojo::IOLoop->remove($timer);
is($welcome && $welcome->{type} . ' ' . $welcome->{role}, 'welcome doctor',
   'the doctor\'s console connects to the waiting room');

my $metrics = $ua->get("http://127.0.0.1:$port/metrics")->result;
like($metrics->body, qr/^teleclinic_calls_started_total \d+$/m,
     'metrics at /metrics');
like($metrics->body, qr/^teleclinic_turn_/m, 'with the TURN relay\'s');

my $stun = `timeout 20 turnutils_stunclient -p $turn_port 127.0.0.1 2>&1`;
like($stun, qr/reflexive addr: 127\.0\.0\.1:\d+/,
     'STUN answers on the TURN port');

# the README's turnutils_uclient command, relayed with the demo secret
my $secret = do {
    open(my $fh, '<', 'conf/turn.secret') or die "turn.secret: $!";
    local $/;
    <$fh> =~ s/\s+$//r;
};
my $relayed = `timeout 60 turnutils_uclient -W $secret -u demo \\
                -e 127.0.0.1 -y -n 50 -m 2 -l 200 -p $turn_port 127.0.0.1 2>&1`;
like($relayed, qr/Total lost packets 0\b/,
     'TURN relays with the demo secret (the README\'s command)')
    or diag $relayed =~ s/.*\n(.{0,800})$/$1/sr;

kill 'QUIT', $pid;

my $gone = 0;

for (1 .. 100) {
    if (waitpid($pid, WNOHANG) == $pid) {
        $gone = 1;
        last;
    }

    sleep 0.1;
}

if (!$gone) {
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

ok($gone, 'nginx stops on QUIT');

my $log = do { local (@ARGV, $/) = "$var/run.log"; <> } // '';
unlike($log, qr/\[(alert|emerg)\]/, 'no alert or emerg in the log');

done_testing();
