#!/usr/bin/perl

# Bad input in the waiting room never reaches other connections: binary
# garbage, invalid UTF-8, an oversize signal and a flood from one
# patient close that patient's connection with the right code (1003,
# 1007, 1009, 1008), and messages for a call the sender is not in get
# not_in_call; after each, the others still get their queue updates
# and the call between two others goes on.  A hello with a validly
# signed token of a kind the server does not issue is unauthorized.

use strict;
use warnings;

use Test::More;

use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);
use Mojo::JSON qw(encode_json);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw($TOKEN_SECRET);
use Teleclinic::Room qw(:all);
use Teleclinic::WS;

###############################################################################

my $t = room(grace => '30s');

my @p = book_soon($t, 'doc-a', 9);
my @id = map { $_->{id} } @p;

my ($doc) = doctor_console($t, 'doc-a');

my %ws;
($ws{$_}) = patient($t, $p[$_]) for 0 .. 3;
expect_doctor_queue($doc, [ @id[0 .. 3] ], 'four waiting');
expect_queue($ws{3}, { position => 4, waiting => 4 }, 'patient 4: 4 of 4');

# a call between the doctor and patient 1, to see it is not disturbed
$doc->send_json({ type => 'call_next' });
my $ring = $ws{0}->recv_json(type => 'ring');
my $call = $ring ? $ring->{call} : 'x';
$ws{0}->send_json({ type => 'accept', call => $call });
ok($ws{0}->recv_json(type => 'call') && $doc->recv_json(type => 'call'),
   'the doctor and patient 1 are in a call');

my $n = 4;

# the room still works for the others: a new arrival reaches the
# doctor, a skip of the head of the queue moves every waiting patient,
# and the call goes on
sub others_still_served {
    my ($what, @watch) = @_;

    $_->take(type => 'queue') for $doc, map { $ws{$_} } @watch;

    my ($ws) = patient($t, $p[$n]);
    $ws{$n} = $ws;
    my $new = $id[$n++];

    my $dq = $doc->recv_json(type => 'queue', match => sub {
        grep { $_->{appointment} eq $new } @{ $_[0]{patients} }
    });
    ok($dq, "after $what: the doctor sees the next arrival");

    my ($head) = grep { $_->{state} eq 'waiting' }
                 @{ $dq ? $dq->{patients} : [] };
    $doc->send_json({ type => 'skip',
                      appointment => $head ? $head->{appointment} : 'x' });

    for my $i (@watch) {
        ok($ws{$i}->recv_json(type => 'queue'),
           "after $what: patient " . ($i + 1) . ' is told the new place');
    }

    my $sdp = "after $what";
    $doc->send_json({ type => 'signal', call => $call,
                      data => { type => 'offer', sdp => $sdp } });
    my $sg = $ws{0}->recv_json(type => 'signal');
    is($sg && $sg->{data}{sdp}, $sdp, "after $what: the call goes on");
}

###############################################################################
# messages for a call one is not in

for my $type (qw(accept decline signal media hangup)) {
    $ws{1}->send_json({ type => $type, call => $call, state => 'failed',
                        data => { type => 'offer', sdp => 'x' } });
    expect_error($ws{1}, 'not_in_call',
                 "$type for another patient's call: not_in_call");
}

for my $type (qw(signal hangup)) {
    $ws{1}->send_json({ type => $type, call => 'ffffffffffffffff',
                        data => {} });
    expect_error($ws{1}, 'not_in_call',
                 "$type for a call that does not exist: not_in_call");
}

my @leak = ($doc->quiet(0.5, type => 'signal'), $ws{0}->take(type => 'signal'),
            $doc->take(type => 'ended'), $ws{0}->take(type => 'ended'));
is(scalar @leak, 0, 'nothing reached the call\'s participants');

others_still_served('messages for a call', 2, 3);

###############################################################################
# binary garbage while in the queue

$ws{1}->send_binary(join '', map { chr int rand 256 } 1 .. 512);
is($ws{1}->wait_closed, 1003, 'binary garbage: close 1003');
others_still_served('binary garbage', 2, 3);

###############################################################################
# invalid UTF-8

$ws{2}->send_text('{"v":1,"type":"leave","x":"' . "\xff\xfe" . '"}');
is($ws{2}->wait_closed, 1007, 'invalid UTF-8: close 1007');
others_still_served('invalid UTF-8', 3);

###############################################################################
# an oversize signal from a participant ends only that connection

$ws{3}->send_json({ type => 'signal', call => $call,
                    data => { sdp => 'x' x (80 * 1024) } });
is($ws{3}->wait_closed, 1009, 'oversize signal: close 1009');
is(scalar($ws{0}->quiet(0.3, type => 'signal')), 0,
   'nothing of it reached the call');
others_still_served('an oversize message', 4);

###############################################################################
# a flood

my $flood = encode_json({ v => 1, type => 'signal', call => $call,
                          data => {} });
$ws{4}->send_text($flood) for 1 .. 1000;
is($ws{4}->wait_closed, 1008, 'a flood: close 1008');
others_still_served('a flood', 5);

###############################################################################
# validly signed tokens of kinds the server never issues open nothing;
# the same crafting with kind 1 checks the patient in, which proves it

my $appt = pack 'H16', $p[8]{id};
my $exp = time + 86400;

for my $case ([0, $appt], [3, $appt], [255, $appt], [3, 'doc-a'],
              [0, 'doc-a'])
{
    my ($kind, $subject) = @$case;
    my $what = "a signed token of kind $kind for "
               . ($subject eq 'doc-a' ? 'a doctor' : 'an appointment');

    my $c = Teleclinic::WS->connect($t->url('/ws'));
    my $m = $c->hello(craft($kind, $exp, $subject), id => 'k');

    is($m && $m->{code}, 'unauthorized', "$what: unauthorized");
    is($m && $m->{id}, 'k', "$what: the id comes back");
    is($c->wait_closed, 1008, "$what: close 1008");
}

{
    my $c = Teleclinic::WS->connect($t->url('/ws'));
    my $m = $c->hello(craft(1, $exp, $appt));

    is($m && $m->{type}, 'welcome', 'the crafting with kind 1: welcome');
    $ws{8} = $c;
}

###############################################################################

$_->close for grep { !$_->closed } $doc, values %ws;

ok($t->stop, 'no alerts in the log');

done_testing;

###############################################################################

# a token as the server makes one (see t/012-tokens.t), of any kind
sub craft {
    my ($kind, $exp, $subject) = @_;

    my $payload = pack('C Q>', $kind, $exp) . $subject;

    return encode_base64url($payload) . '.'
           . encode_base64url(hmac_sha256("ngx_teleclinic token v1\0"
                                          . $payload, $TOKEN_SECRET));
}
