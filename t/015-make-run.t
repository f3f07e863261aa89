#!/usr/bin/perl

# What `make run` starts: bin/teleclinic-run with conf/nginx.conf and the
# demo directory serves the API, with at least 3 departments (dermatology
# and endocrinology among them), at least 6 doctors, and free slots on
# each of the next 7 days.  The demo's on-call doctor in 5-minute slots
# gives a queue of two at any hour; a favicon is there; the log is at
# notice (no token of a duplicate header line in it); and the limits per
# client address of conf/nginx.conf answer 429 with a JSON error.

use strict;
use warnings;

use Test::More;
use IO::Socket::IP;
use POSIX qw(strftime);
use Mojo::UserAgent;
use Mojo::URL;
use Mojo::Date;
use Mojo::IOLoop;

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test qw(:DEFAULT make_run stop_make_run);
use Teleclinic::WS;

###############################################################################

my $run = make_run();
my ($port, $turn_port) = @$run{qw(port turn_port)};

ok($run->{up}, 'teleclinic-run listens on the given port');

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
    open(my $fh, '<', "$FindBin::Bin/../conf/turn.secret")
        or die "turn.secret: $!";
    local $/;
    <$fh> =~ s/\s+$//r;
};
my $relayed = `timeout 60 turnutils_uclient -W $secret -u demo \\
                -e 127.0.0.1 -y -n 50 -m 2 -l 200 -p $turn_port 127.0.0.1 2>&1`;
like($relayed, qr/Total lost packets 0\b/,
     'TURN relays with the demo secret (the README\'s command)')
    or diag $relayed =~ s/.*\n(.{0,800})$/$1/sr;

# a queue of two at any hour: the on-call doctor in 5-minute slots has
# at least two free slots within the 15 minutes of check-in

{
    my @soon;

    for my $n (0, 1) {
        my $day = strftime('%Y-%m-%d', localtime(time + $n * 86400));
        my $slots = $ua->get("$base/doctors/jonas-weber/slots?date=$day")
            ->result->json;

        push @soon, grep {
            $_->{status} eq 'free'
            && Mojo::Date->new($_->{start})->epoch - time <= 15 * 60
            && Mojo::Date->new($_->{start})->epoch > time
        } @$slots;
    }

    ok(@soon >= 2, 'jonas-weber has two free slots within check-in');

    my @ws;

    for my $i (0, 1) {
        my $b = $ua->post("$base/appointments" => json => {
            slot => $soon[$i]{id},
            patient => { name => "Queue Patient $i", phone => '+4930123456' },
        })->result;
        is($b->code, 201, "queue patient $i booked");

        my $ws = Teleclinic::WS->connect("ws://127.0.0.1:$port/ws");
        my $w = $ws->hello($b->json->{token});
        is($w->{type}, 'welcome', "queue patient $i checked in");
        push @ws, $ws;
    }

    my $q = $ws[1]->recv_json(type => 'queue',
                              match => sub { $_[0]{position} == 2 });
    ok($q, 'the second patient waits in place 2 of 2');
    $_->close(1000) for @ws;
}

# the favicon is there (no open() error for it in the log)

my $icon = $ua->get("http://127.0.0.1:$port/favicon.ico")->result;
is($icon->code, 200, 'favicon.ico is served');
is($ua->get("http://127.0.0.1:$port/favicon.svg")->result->code, 200,
   'favicon.svg is served');

# two Authorization headers: nginx refuses them; at notice it does not log
# the header line with the tokens

{
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port)
        or die "connect: $!";
    print $s "GET /api/v1/appointments/0123456789abcdef HTTP/1.0\r\n"
           . "Host: 127.0.0.1\r\n"
           . "Authorization: Bearer DUPLICATE-TOKEN-ONE\r\n"
           . "Authorization: Bearer DUPLICATE-TOKEN-TWO\r\n\r\n";
    my $answer = do { local $/; <$s> } // '';
    like($answer, qr{^HTTP/1\.1 400}, 'two Authorization headers: 400');
}

# limit_req on the booking POST: past the burst, 429 with a JSON error

{
    my %seen;
    my $limited;

    for (1 .. 40) {
        my $r = $ua->post("$base/appointments" => json => {})->result;
        $seen{ $r->code }++;
        $limited //= $r if $r->code == 429;
    }

    ok($seen{429}, 'a burst of bookings from one address gets 429')
        or diag explain \%seen;
    is($limited && $limited->json->{error}{code}, 'rate_limited',
       '429 rate_limited, a JSON error');
    ok($limited && $limited->headers->header('Retry-After'),
       'with Retry-After');
    is($ua->get("$base/departments")->result->code, 200,
       'reading is not limited');
}

# limit_conn on /ws: one address holds at most 100 WebSockets

{
    my ($open, $refused, $done) = (0, 0, 0);
    my @tx;
    my $wua = Mojo::UserAgent->new(request_timeout => 10,
                                   inactivity_timeout => 30);

    for (1 .. 110) {
        $wua->websocket("ws://127.0.0.1:$port/ws" => sub {
            my (undef, $tx) = @_;
            $done++;

            if ($tx->is_websocket) {
                $open++;
                push @tx, $tx;
            } elsif (($tx->res->code // 0) == 429) {
                $refused++;
            }
        });
    }

    my $end = time + 15;
    Mojo::IOLoop->one_tick while $done < 110 && time < $end;

    is($open, 100, '100 WebSockets from one address are open');
    is($refused, 10, 'the 10 more are refused with 429');
    $_->finish for @tx;
    Mojo::IOLoop->one_tick for 1 .. 20;
}

ok(stop_make_run($run), 'nginx stops on QUIT');

my $log = do { local (@ARGV, $/) = $run->{log}; <> } // '';
unlike($log, qr/\[(alert|emerg)\]/, 'no alert or emerg in the log');
unlike($log, qr/DUPLICATE-TOKEN/, 'no token of a header line in the log');
unlike($log, qr/\[info\]/, 'the log is at notice');
unlike($log, qr/favicon/, 'no favicon error in the log');

done_testing();
