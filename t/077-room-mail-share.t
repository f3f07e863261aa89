#!/usr/bin/perl

# Mail between workers takes a bounded share of the zone: with the
# patient's worker stopped (a worker that does not read its mailbox), the
# doctor's signals to it pile up only to an eighth of the zone, and
# bookings, which need the zone's memory, go on being answered 201; once
# the worker runs again the call goes on.

use strict;
use warnings;

use Test::More;

use IO::Socket::INET;
use Mojo::JSON qw(encode_json decode_json);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(slots day_ahead);
use Teleclinic::Room qw(:all);
use Teleclinic::WS;

###############################################################################

# a 1m zone: 3 MB of signals would fill it eight times over
my $t = room(zone => '1m', ws_rate => '10000r/s burst=10000');

my ($appt) = book_soon($t, 'doc-a', 1);
my @workers = $t->worker_pids;
is(scalar @workers, 2, 'two workers');

my ($p, $pm) = patient($t, $appt);
is($pm && $pm->{type}, 'welcome', 'the patient is welcomed');
my $b = worker_of($t, $p);
my ($a) = grep { $_ != $b } @workers;

my $doc = doctor_console($t, 'doc-a', on => $a);
$doc->send_json({ type => 'call_next' });
my $ring = $p->recv_json(type => 'ring');
ok($ring, 'the patient is rung');
$p->send_json({ type => 'accept', call => $ring->{call} });
ok($p->recv_json(type => 'call'), 'the patient is in the call');
ok($doc->recv_json(type => 'call'), 'the doctor is in the call');
my $call = $ring->{call};

# an HTTP connection held by the doctor's worker, which keeps running
my $http;

for (1 .. 64) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->port, Proto => 'tcp')
        or next;
    my $probe = bless { local_port => $s->sockport,
                        remote_port => $s->peerport }, 'Teleclinic::WS';
    my $pid = $probe->worker_pid(@workers) // -1;
    if ($pid == $a) { $http = $s; last }
    close $s;
}

ok($http, 'an HTTP connection on the doctor\'s worker')
    or BAIL_OUT('no connection on the running worker');

my @free = grep { $_->{status} eq 'free' }
           map { @{ slots($t, 'doc-b', day_ahead($_)) } } 1 .. 3;
ok(@free >= 21, 'free slots to book');

sub book_raw {
    my ($slot) = @_;

    my $body = encode_json({ slot => $slot,
                             patient => { name => 'Mail Share',
                                          phone => '+49 30 1234567' } });
    print $http "POST /api/v1/appointments HTTP/1.1\r\n"
              . "Host: localhost\r\nContent-Type: application/json\r\n"
              . 'Content-Length: ' . length($body) . "\r\n\r\n$body";

    my $head = '';
    while (defined(my $line = <$http>)) {
        last if $line eq "\r\n";
        $head .= $line;
    }
    my ($status) = $head =~ m{^HTTP/1\.1 (\d+)};
    my ($len) = $head =~ /^Content-Length: (\d+)/mi;
    read($http, my $answer, $len // 0);

    return ($status // 0, $answer);
}

my ($status, $answer) = book_raw(shift(@free)->{id});
is($status, 201, 'a booking before the patient\'s worker stops')
    or diag $answer;

###############################################################################

kill 'STOP', $b;

# signals of every size, from a candidate's to an SDP's: 3 MB in all,
# so that every size of the zone's chunks would be used up
my $sent = 0;
my $n = 0;

while ($sent < 3 * 1024 * 1024) {
    my $pad = 'x' x (64 + ($n * 397) % 6000);
    $doc->send_json({ type => 'signal', call => $call,
                      data => { type => 'candidate', n => ++$n,
                                pad => $pad } });
    $sent += length $pad;
}

# a round trip through the doctor's worker: the signals are all handled
$doc->send_json({ type => 'hangup', call => 'not-this-call' });
ok($doc->recv_json(type => 'error', timeout => 30),
   "the doctor's worker handled the $n signals (3 MB)");

my @statuses = map { (book_raw($_->{id}))[0] } splice @free, 0, 20;
is_deeply(\@statuses, [ (201) x 20 ],
          'bookings are answered 201 while mail waits for the stopped worker')
    or diag "@statuses";

kill 'CONT', $b;

my $sg = $p->recv_json(type => 'signal', timeout => 10);
ok($sg, 'the worker runs again: the patient gets the first signals')
    or diag 'no signal after SIGCONT';
is($sg && $sg->{data}{n}, 1, 'the first signal first');

$doc->send_json({ type => 'signal', call => $call, data => { n => 'after' } });
ok($p->recv_json(type => 'signal', timeout => 10,
                 match => sub { ($_[0]{data}{n} // '') eq 'after' }),
   'a signal after the backlog arrives: the call goes on');

close $http;
$p->close(1000);
$doc->close(1000);
$t->stop;

done_testing;
