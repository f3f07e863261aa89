#!/usr/bin/perl

# The pilot's metrics (location with teleclinic_metrics, Prometheus text
# format): calls started, connected, failed by reason (declined,
# timeout, dropped), the consultation and waiting time histograms, the
# queue length per doctor and the open WebSocket connections move with
# what the clients do.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Room qw(:all);
use Teleclinic::WS qw(pump_until);

###############################################################################

my $t = room(ring => '2s', grace => '2s');

my @p = book_soon($t, 'doc-a', 3);
my @id = map { $_->{id} } @p;

# name => [ [ {labels}, value ] ... ]
sub scrape {
    my ($m, $r) = metrics($t);
    my %f;

    for my $key (keys %$m) {
        my ($name, $labels) =
            $key =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$/ or next;
        my %l = ($labels // '') =~ /(\w+)="((?:[^"\\]|\\.)*)"/g;
        push @{ $f{$name} }, [ \%l, $m->{$key} ];
    }

    return (\%f, $r);
}

# the sum of the samples of the first family whose name matches $re, with
# these labels
sub val {
    my ($f, $re, %want) = @_;

    my ($name) = sort grep { /$re/ } keys %$f;
    return undef unless $name;

    my $sum = 0;

    SAMPLE: for my $s (@{ $f->{$name} }) {
        for my $k (keys %want) {
            next SAMPLE unless ($s->[0]{$k} // '') eq $want{$k};
        }
        $sum += $s->[1];
    }

    return $sum;
}

my %RE = (
    started   => qr/^teleclinic_calls?_started(_total)?$/,
    connected => qr/^teleclinic_calls?_connected(_total)?$/,
    failed    => qr/^teleclinic_calls?_failed(_total)?$/,
    queue     => qr/^teleclinic_queue_length$/,
    sockets   => qr/^teleclinic_websocket_connections$/,
    visit     => qr/^teleclinic_\w*(consultation|visit)\w*_seconds_count$/,
    wait      => qr/^teleclinic_\w*wait\w*_seconds_count$/,
);

###############################################################################

my ($f, $r) = scrape();
is($r->{status}, 200, 'metrics: 200');
like($r->{headers}->content_type // '', qr{^text/plain}, 'metrics: text/plain');
like($r->{body}, qr/^# TYPE teleclinic_\w+ (counter|gauge|histogram)$/m,
     'metrics: TYPE lines');

my $SAMPLE = qr/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+Inf]+$/;
my @bad = grep { !/^#/ && !/$SAMPLE/ } split /\n/, $r->{body} // '';
is(scalar @bad, 0, 'every line is a comment or a sample') or diag "@bad";

# a family is there before it has samples (no queue yet: no doctor)
my @types = ($r->{body} // '') =~ /^# TYPE (\w+) /mg;

for my $k (sort keys %RE) {
    ok(scalar(grep { $_ =~ $RE{$k} || "${_}_count" =~ $RE{$k} } @types),
       "metrics: a $k family") or diag $r->{body};
}

my %base = map { $_ => val($f, $RE{$_}) // 0 } keys %RE;

###############################################################################
# connections and the queue length

my ($doc) = doctor_console($t, 'doc-a');
my %ws;
($ws{$_}) = patient($t, $p[$_]) for 0 .. 2;
expect_doctor_queue($doc, [ @id ], 'three waiting');

($f) = scrape();
is(val($f, $RE{queue}, doctor => 'doc-a'), 3, 'queue length of doc-a: 3');
is(val($f, $RE{queue}, doctor => 'doc-b') // 0, 0, 'queue length of doc-b: 0');
is(val($f, $RE{sockets}) - $base{sockets}, 4,
   'WebSocket connections: four more');

###############################################################################
# a declined call, an unanswered one, a connected one

$doc->send_json({ type => 'call_next' });
my $ring = $ws{0}->recv_json(type => 'ring');
$ws{0}->send_json({ type => 'decline', call => $ring ? $ring->{call} : 'x' });
ok($doc->recv_json(type => 'call_state',
                   match => sub { $_[0]{state} eq 'declined' }), 'declined');

$doc->send_json({ type => 'call_next' });
ok($ws{1}->recv_json(type => 'ring'), 'patient 2 rings');
ok($doc->recv_json(type => 'call_state', timeout => 15,
                   match => sub { $_[0]{state} eq 'timeout' }),
   'patient 2 does not answer');

$doc->send_json({ type => 'call', appointment => $id[2] });
$ring = $ws{2}->recv_json(type => 'ring');
my $call = $ring ? $ring->{call} : 'x';
$ws{2}->send_json({ type => 'accept', call => $call });
ok($doc->recv_json(type => 'call'), 'patient 3 accepts');
$doc->send_json({ type => 'media', call => $call, state => 'connected' });
$ws{2}->send_json({ type => 'media', call => $call, state => 'connected' });
Teleclinic::WS::pump(0.3);

($f) = scrape();
is(val($f, $RE{started}) - $base{started}, 3, 'calls started: 3');
is(val($f, $RE{connected}) - $base{connected}, 1, 'calls connected: 1');
is(val($f, $RE{failed}, reason => 'declined'), 1, 'failed, declined: 1');
is(val($f, $RE{failed}, reason => 'timeout'), 1, 'failed, timeout: 1');
is(val($f, $RE{queue}, doctor => 'doc-a'), 2,
   'queue length: the patient in the call is not waiting');

$doc->send_json({ type => 'hangup', call => $call });
ok($ws{2}->recv_json(type => 'ended', call => $call), 'hung up');
Teleclinic::WS::pump(0.3);

($f) = scrape();
is(val($f, $RE{visit}) - $base{visit}, 1,
   'consultation duration histogram: one visit');
ok(val($f, $RE{wait}) - $base{wait} >= 1,
   'waiting time histogram: counted');

###############################################################################
# a call whose patient drops for good

$doc->send_json({ type => 'call', appointment => $id[0] });
$ring = $ws{0}->recv_json(type => 'ring');
$call = $ring ? $ring->{call} : 'x';
$ws{0}->send_json({ type => 'accept', call => $call });
ok($doc->recv_json(type => 'call', call => $call), 'patient 1 accepts');
$ws{0}->drop;
ok($doc->recv_json(type => 'ended', call => $call, timeout => 15),
   'patient 1 dropped');

($f) = scrape();
is(val($f, $RE{failed}, reason => 'dropped'), 1, 'failed, dropped: 1');

###############################################################################

$_->close for grep { !$_->closed } $doc, values %ws;

my $left;
pump_until(sub {
    ($f) = scrape();
    $left = val($f, $RE{sockets}) - $base{sockets};
    $left == 0;
}, 10);
is($left, 0, 'WebSocket connections: back where they were');

ok($t->stop, 'no alerts in the log');

done_testing;
