#!/usr/bin/perl

# TURN refusals, each with its STUN error code, from a TURN client built
# by hand (t/lib/Teleclinic/Turn.pm): no credentials get 401 with REALM
# and NONCE; a wrong password, an expired username and an unknown realm
# get 401; a nonce that expired or was not made here gets 438 with a
# fresh one, and the request then goes through; denied peers (loopback
# without teleclinic_turn_allow_peer, private and metadata addresses)
# get 403 and Send indications to them are dropped; the user quota gets
# 486, the total quota 508; an allocation that expired, or was deleted
# with LIFETIME 0, gets 437 and relays nothing; bad requests get 400,
# unknown comprehension-required attributes 420, TCP relays 442,
# unknown or reused RESERVATION-TOKENs 508 (a fresh one gets the port
# kept by EVEN-PORT), a
# second Allocate on the same 5-tuple 437 (and its retransmission the
# same success again), another user's Refresh 441.  Refused requests
# never allocate.

use strict;
use warnings;

use Test::More;

use IO::Select;

use lib 't/lib';
use Teleclinic::Test;
use Teleclinic::Turn qw(attr peer_attr rest_username peer_socket);

###############################################################################

my $SECRET = 'refusals-secret';

my $t = Teleclinic::Test->new(workers => 2, udp => 1);

my $lo = 40000 + int rand 20000;
my $ports = $lo . '-' . ($lo + 499);

$t->run(<<"EOF");
stream {
    teleclinic_turn_secret $SECRET;
    teleclinic_turn_realm refusals.test;
    teleclinic_turn_relay_ports $ports;

    # the main server: loopback peers allowed, for the test's own peers
    server {
        listen 127.0.0.1:%%PORT%% udp reuseport;
        listen 127.0.0.1:%%PORT%%;
        teleclinic_turn;
        teleclinic_turn_allow_peer 127.0.0.0/8;
        teleclinic_turn_user_quota 2;
        teleclinic_turn_nonce_lifetime 2s;
    }

    # the default policy; allocations live 2 s
    server {
        listen 127.0.0.1:%%PORT2%% udp reuseport;
        teleclinic_turn;
        teleclinic_turn_max_lifetime 2s;
        teleclinic_turn_total_quota 1;
    }
}
EOF

my $port = $t->port('PORT');
my $port2 = $t->port('PORT2');

sub client {
    my (%o) = @_;
    return Teleclinic::Turn->new(port => $port, secret => $SECRET, %o);
}

my $peer = peer_socket();
my $pport = $peer->sockport;

sub peer_recv {
    my ($s, $wait) = @_;
    return undef unless IO::Select->new($s)->can_read($wait // 2);
    my $buf;
    return defined $s->recv($buf, 65536) ? $buf : undef;
}

###############################################################################

# the second server first, while no allocation counts against its total
# quota (it counts those of every server): default peer policy, total
# quota 1, max lifetime 2 s

my ($c, $m);

my $d = Teleclinic::Turn->new(port => $port2, secret => $SECRET);
$m = $d->allocate(attr(0x000D, pack 'N', 3600));
is($m && $m->{code}, 0, 'default policy server: allocated');
is($d->lifetime, 2, 'LIFETIME is the teleclinic_turn_max_lifetime');


$m = $d->permission(['127.0.0.1', $pport]);
is($m && $m->{code}, 403, 'default policy: loopback peer 403');
$m = $d->channel_bind(0x4000, '127.0.0.1', $pport);
is($m && $m->{code}, 403, 'default policy: ChannelBind to loopback 403');

$d->send_indication('127.0.0.1', $pport, 'to a denied peer');
ok(!defined peer_recv($peer, 1), 'Send indication to a denied peer: dropped');

$m = Teleclinic::Turn->new(port => $port2, secret => $SECRET)->allocate;
is($m && $m->{code}, 508, 'total quota reached: 508');

# the allocation expires: 437, and nothing is relayed

select undef, undef, undef, 3;

is($d->refresh->{code}, 437, 'expired allocation: Refresh 437');

# the expiry freed the total quota
$m = Teleclinic::Turn->new(port => $port2, secret => $SECRET)->allocate;
is($m && $m->{code}, 0, 'after the expiry the total quota has room');

###############################################################################

# no credentials: 401 with realm and nonce, and no allocation

$c = client();
$m = $c->request(0x003, attr(0x0019, pack 'Cx3', 17), { auth => 0 });
is($m && $m->{code}, 401, 'no credentials: 401');
is($m && $m->{attrs}{0x0014}[0], 'refusals.test', '401 has the REALM');
like($m && $m->{attrs}{0x0015}[0], qr/^[0-9a-f]{32}$/, '401 has a NONCE');
ok($m && !$m->{attrs}{0x0008}, '401 has no MESSAGE-INTEGRITY');

# the same 5-tuple has nothing to refresh
$m = $c->refresh;
is($m && $m->{code}, 437, 'after a 401: no allocation (437 on Refresh)');

# a wrong password: the integrity does not match
$c = client();
$c->request(0x003, attr(0x0019, pack 'Cx3', 17), { auth => 0 });
$m = $c->request(0x003, attr(0x0019, pack 'Cx3', 17),
                 { secret => 'not-the-secret' });
is($m && $m->{code}, 401, 'wrong password: 401');
ok($m && $m->{attrs}{0x0015}, 'wrong password: 401 with a NONCE');
is($c->refresh->{code}, 437, 'wrong password: no allocation');

# an expired username
$c = client(username => rest_username(time - 10, 'late'));
$m = $c->allocate;
is($m && $m->{code}, 401, 'expired username: 401');
is($c->request(0x004, { username => rest_username(time + 60) })->{code},
   437, 'expired username: no allocation');

# not a REST username
$c = client(username => 'alice');
is($c->allocate->{code}, 401, 'username without an expiry: 401');

# another realm
$c = client();
$c->request(0x003, attr(0x0019, pack 'Cx3', 17), { auth => 0 });
$m = $c->request(0x003, attr(0x0019, pack 'Cx3', 17),
                 { realm => 'other.realm' });
is($m && $m->{code}, 401, 'another realm: 401');

# MESSAGE-INTEGRITY without USERNAME: 400
$c = client();
$c->request(0x003, attr(0x0019, pack 'Cx3', 17), { auth => 0 });
{
    my $msg = Teleclinic::Turn::message(0x003, Teleclinic::Turn::tid(),
                                        attr(0x0019, pack 'Cx3', 17),
                                        attr(0x0008, "\0" x 20));
    $c->raw_send($msg);
    $m = Teleclinic::Turn::parse($c->raw_recv);
    is($m && $m->{code}, 400, 'MESSAGE-INTEGRITY without USERNAME: 400');
}

###############################################################################

# nonces: one not made here, one expired; each gets 438 and a fresh one

$c = client();
$c->request(0x003, attr(0x0019, pack 'Cx3', 17), { auth => 0 });
my $good = $c->{nonce};

$m = $c->request(0x003, attr(0x0019, pack 'Cx3', 17),
                 { nonce => 'ffffffff' . ('0' x 24) });
is($m && $m->{code}, 438, 'forged nonce: 438 Stale Nonce');
ok($m && $m->{attrs}{0x0015} && $m->{attrs}{0x0014},
   '438 has REALM and a fresh NONCE');

# nonce_lifetime is 2 s here
select undef, undef, undef, 3.1;

$m = $c->request(0x003, attr(0x0019, pack 'Cx3', 17), { nonce => $good });
is($m && $m->{code}, 438, 'expired nonce: 438 Stale Nonce');
isnt($m && $m->{attrs}{0x0015}[0], $good, '438 brings a new nonce');

$m = $c->request(0x003, attr(0x0019, pack 'Cx3', 17));
is($m && $m->{code}, 0, 'with the fresh nonce: allocated');
ok($m && $c->integrity_ok($m), 'the success has our MESSAGE-INTEGRITY');
$c->refresh(0);

###############################################################################

# requests that are wrong once authenticated

$c = client();
$m = $c->allocate;
is($m && $m->{code}, 0, 'allocate') or diag(explain $m);
my $first = $m;

# a retransmission gets the same answer, another Allocate 437
$m = $c->request(0x003, attr(0x0019, pack 'Cx3', 17),
                 { tid => $first->{tid} });
is($m && $m->{code}, 0, 'Allocate retransmitted: success again');
is($m && Teleclinic::Turn::xor_addr($m->{attrs}{0x0016}[0]), $c->relayed,
   'Allocate retransmitted: the same relayed address');
$m = $c->request(0x003, attr(0x0019, pack 'Cx3', 17));
is($m && $m->{code}, 437, 'a second Allocate on the 5-tuple: 437');
ok($m && $c->integrity_ok($m), '437 has MESSAGE-INTEGRITY');

$m = $c->request(0x008, attr(0x7ff0, 'what is this'),
                 peer_attr('127.0.0.1', 9));
is($m && $m->{code}, 420, 'unknown comprehension-required attribute: 420');
is($m && join(',', unpack 'n*', $m->{attrs}{0x000A}[0] // ''), 0x7ff0,
   '420 lists it in UNKNOWN-ATTRIBUTES');

$m = $c->request(0x008);
is($m && $m->{code}, 400, 'CreatePermission without a peer: 400');

$m = $c->request(0x009, attr(0x000C, pack 'nx2', 0x3000),
                 peer_attr('127.0.0.1', 9));
is($m && $m->{code}, 400, 'ChannelBind with channel 0x3000: 400');

$m = $c->request(0x009, peer_attr('127.0.0.1', 9));
is($m && $m->{code}, 400, 'ChannelBind without a channel: 400');

is($c->channel_bind(0x4001, '127.0.0.1', 9)->{code}, 0, 'ChannelBind');
is($c->channel_bind(0x4001, '127.0.0.1', 10)->{code}, 400,
   'the channel bound again to another peer: 400');
is($c->channel_bind(0x4002, '127.0.0.1', 9)->{code}, 400,
   'the peer bound again to another channel: 400');

# a malformed attribute value
$m = $c->request(0x004, attr(0x000D, 'abc'));
is($m && $m->{code}, 400, 'malformed LIFETIME: 400');

# another user on this 5-tuple
$m = $c->request(0x004, { username => rest_username(time + 60, 'other') });
is($m && $m->{code}, 441, 'Refresh as another user: 441');

# denied peers, with loopback allowed on this server

for my $ip ('10.1.2.3', '192.168.1.1', '172.16.0.1', '169.254.169.254',
            '100.64.0.1', '0.0.0.0', '224.0.0.1', '255.255.255.255')
{
    $m = $c->permission([$ip, 5000]);
    is($m && $m->{code}, 403, "CreatePermission to $ip: 403");
}

$m = $c->channel_bind(0x4005, '10.0.0.1', 5000);
is($m && $m->{code}, 403, 'ChannelBind to 10.0.0.1: 403');

$m = $c->permission(['127.0.0.1', 5000], ['192.168.0.1', 5000]);
is($m && $m->{code}, 403, 'CreatePermission with one denied peer: 403');

is($c->permission(['127.0.0.1', 5000])->{code}, 0,
   'CreatePermission to an allowed peer');

# LIFETIME 0 deletes the allocation
$m = $c->refresh(0);
is($m && $m->{code}, 0, 'Refresh with LIFETIME 0: success');
is($m && unpack('N', $m->{attrs}{0x000D}[0] // ''), 0,
   'Refresh with LIFETIME 0: LIFETIME 0');
is($c->refresh->{code}, 437, 'after LIFETIME 0: 437');
is($c->permission(['127.0.0.1', 5000])->{code}, 437,
   'after LIFETIME 0: CreatePermission 437');

# a TCP relay is not served
$c = client();
$c->request(0x003, attr(0x0019, pack 'Cx3', 17), { auth => 0 });
$m = $c->request(0x003, attr(0x0019, pack 'Cx3', 6));
is($m && $m->{code}, 442, 'REQUESTED-TRANSPORT TCP: 442');
$m = $c->request(0x003);
is($m && $m->{code}, 400, 'no REQUESTED-TRANSPORT: 400');
$m = $c->request(0x003, attr(0x0019, pack 'Cx3', 17),
                 attr(0x0017, pack 'Cx3', 2));
is($m && $m->{code}, 440, 'an IPv6 relay from an IPv4 server: 440');

###############################################################################

# port pairs: EVEN-PORT with R reserves the next port for a token, which
# a client of another 5-tuple (maybe at another worker) uses once

$c = client();
$m = $c->allocate(attr(0x0018, "\x80"));
is($m && $m->{code}, 0, 'EVEN-PORT with R: allocated');
my ($even) = ($c->relayed // '') =~ /:(\d+)$/;
ok(defined $even && $even % 2 == 0, 'EVEN-PORT: an even port');
my $token = $m && $m->{attrs}{0x0022}[0];
is(length($token // ''), 8, 'EVEN-PORT with R: a RESERVATION-TOKEN');

my $c2 = client();
$m = $c2->allocate(attr(0x0022, $token), attr(0x0018, "\0"));
is($m && $m->{code}, 400, 'RESERVATION-TOKEN with EVEN-PORT: 400');
$m = $c2->request(0x003, attr(0x0019, pack 'Cx3', 17), attr(0x0022, $token));
is($m && $m->{code}, 0, 'RESERVATION-TOKEN: allocated');
is($c2 && Teleclinic::Turn::xor_addr($m->{attrs}{0x0016}[0]),
   '127.0.0.1:' . (($even // 0) + 1), 'RESERVATION-TOKEN: the next port');

my $c3 = client();
$m = $c3->allocate(attr(0x0022, $token));
is($m && $m->{code}, 508, 'a RESERVATION-TOKEN used twice: 508');
$m = client()->allocate(attr(0x0022, 'abcdefgh'));
is($m && $m->{code}, 508, 'an unknown RESERVATION-TOKEN: 508');

$_->refresh(0) for $c, $c2;

###############################################################################

# the user quota: two allocations per username

my $name = rest_username(time + 600, 'quota');
my @q = map { client(username => $name) } 1 .. 3;
is($q[0]->allocate->{code}, 0, 'quota: first allocation');
is($q[1]->allocate->{code}, 0, 'quota: second allocation');
$m = $q[2]->allocate;
is($m && $m->{code}, 486, 'quota: third allocation 486');
is(client()->allocate->{code}, 0, 'quota: another username allocates');

# freed by LIFETIME 0, the quota has room again
$q[0]->refresh(0);
is($q[2]->allocate->{code}, 0, 'quota: room again after a deletion');

###############################################################################

###############################################################################

# an allocation that expires drops ChannelData (on the main server the
# allocation lives 600 s; LIFETIME 0 ends it at once)

$c = client();
$c->allocate;
is($c->channel_bind(0x4000, '127.0.0.1', $pport)->{code}, 0,
   'ChannelBind to the test peer');
$c->send_channel(0x4000, 'before');
is(peer_recv($peer), 'before', 'ChannelData relayed');
$c->refresh(0);
$c->send_channel(0x4000, 'after');
ok(!defined peer_recv($peer, 1), 'ChannelData after the deletion: dropped');

$t->stop;

done_testing();
