#!/usr/bin/perl

# TURN refusals, each with its STUN error code, from a TURN client built
# by hand (t/lib/Teleclinic/Turn.pm): no credentials get 401 with REALM
# and NONCE; a wrong password, an expired username and an unknown realm
# get 401; a nonce that expired or was not made here gets 438 with a
# fresh one, and the request then goes through; denied peers (loopback
# without teleclinic_turn_allow_peer, private and metadata addresses)
# get 403 and Send indications to them are dropped, and so are the
# relay's own addresses (bound and public, of any teleclinic_turn server)
# outside the relay ports, even where teleclinic_turn_allow_peer allows
# them, while two relayed clients reach each other at relay ports; IPv6
# forms of IPv4 (mapped, NAT64, 6to4, Teredo) are judged by the embedded
# IPv4, SIIT and NAT64 local-use are denied; a wildcard relay address
# does not start; the user quota gets 486 (10 when no directive sets
# it), but only once authenticated: a stale nonce gets 438 and a wrong
# password 401 first; the total quota 508; an allocation that expired, or was deleted
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
use IO::Socket::IP;

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Turn qw(attr peer_attr rest_username peer_socket);

###############################################################################

my $SECRET = 'refusals-secret';

my $t = Teleclinic::Test->new(workers => 2, udp => 1);
$t->has(qw(stream));

# IPv6 peers need an IPv6 relay: a server on ::1 when the loopback has it
my $have_v6 = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0,
                                  Proto => 'udp') ? 1 : 0;
my $v6 = !$have_v6 ? '' : <<'V6';

    server {
        listen [::1]:%%PORT5%% udp reuseport;
        teleclinic_turn;
    }
V6

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

    # behind NAT: relays bound on 127.0.0.1, given out as 203.0.113.5
    server {
        listen 127.0.0.1:%%PORT3%% udp reuseport;
        teleclinic_turn;
        teleclinic_turn_relay_address 127.0.0.1 203.0.113.5;
        teleclinic_turn_allow_peer 127.0.0.0/8;
    }

    # no quota directive
    server {
        listen 127.0.0.1:%%PORT4%% udp reuseport;
        teleclinic_turn;
    }
$v6}
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


$m = $d->permission(['127.0.0.2', $pport]);
is($m && $m->{code}, 403, 'default policy: loopback peer 403');
$m = $d->channel_bind(0x4000, '127.0.0.2', $pport);
is($m && $m->{code}, 403, 'default policy: ChannelBind to loopback 403');

$d->send_indication('127.0.0.2', $pport, 'to a denied peer');
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
                 peer_attr('127.0.0.2', 9));
is($m && $m->{code}, 420, 'unknown comprehension-required attribute: 420');
is($m && join(',', unpack 'n*', $m->{attrs}{0x000A}[0] // ''), 0x7ff0,
   '420 lists it in UNKNOWN-ATTRIBUTES');

$m = $c->request(0x008);
is($m && $m->{code}, 400, 'CreatePermission without a peer: 400');

$m = $c->request(0x009, attr(0x000C, pack 'nx2', 0x3000),
                 peer_attr('127.0.0.2', 9));
is($m && $m->{code}, 400, 'ChannelBind with channel 0x3000: 400');

$m = $c->request(0x009, peer_attr('127.0.0.2', 9));
is($m && $m->{code}, 400, 'ChannelBind without a channel: 400');

is($c->channel_bind(0x4001, '127.0.0.2', 9)->{code}, 0, 'ChannelBind');
is($c->channel_bind(0x4001, '127.0.0.2', 10)->{code}, 400,
   'the channel bound again to another peer: 400');
is($c->channel_bind(0x4002, '127.0.0.2', 9)->{code}, 400,
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

$m = $c->permission(['127.0.0.2', 5000], ['192.168.0.1', 5000]);
is($m && $m->{code}, 403, 'CreatePermission with one denied peer: 403');

is($c->permission(['127.0.0.2', 5000])->{code}, 0,
   'CreatePermission to an allowed peer');

# LIFETIME 0 deletes the allocation
$m = $c->refresh(0);
is($m && $m->{code}, 0, 'Refresh with LIFETIME 0: success');
is($m && unpack('N', $m->{attrs}{0x000D}[0] // ''), 0,
   'Refresh with LIFETIME 0: LIFETIME 0');
is($c->refresh->{code}, 437, 'after LIFETIME 0: 437');
is($c->permission(['127.0.0.2', 5000])->{code}, 437,
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

# authentication comes before the quota (RFC 8656 7.2, RFC 8489 9.2.4):
# a user at the quota with a stale nonce gets 438, with a wrong password
# 401, and only an authenticated Allocate 486

$m = client(username => $name)->allocate;
is($m && $m->{code}, 486, 'at the quota again');

$c = client(username => $name);
$c->request(0x003, attr(0x0019, pack 'Cx3', 17), { auth => 0 });
$good = $c->{nonce};

$m = $c->request(0x003, attr(0x0019, pack 'Cx3', 17),
                 { nonce => 'ffffffff' . ('0' x 24) });
is($m && $m->{code}, 438, 'at the quota, a nonce not ours: 438');

select undef, undef, undef, 3.1;

$m = $c->request(0x003, attr(0x0019, pack 'Cx3', 17), { nonce => $good });
is($m && $m->{code}, 438, 'at the quota, a stale nonce: 438');
$m = $c->request(0x003, attr(0x0019, pack 'Cx3', 17),
                 { nonce => $good, secret => 'not-the-secret' });
is($m && $m->{code}, 438, 'at the quota, a stale nonce, wrong password: 438');
$m = $c->request(0x003, attr(0x0019, pack 'Cx3', 17),
                 { secret => 'not-the-secret' });
is($m && $m->{code}, 401, 'at the quota, a wrong password: 401');
$m = $c->request(0x003, attr(0x0019, pack 'Cx3', 17));
is($m && $m->{code}, 486, 'at the quota, authenticated: 486');
ok($m && $c->integrity_ok($m), '486 has MESSAGE-INTEGRITY');

$_->refresh(0) for @q[1, 2];

###############################################################################

# the default user quota: 10 allocations per username

{
    my $user = rest_username(time + 600, 'default-quota');
    my @d = map { Teleclinic::Turn->new(port => $t->port('PORT4'),
                                        secret => $SECRET,
                                        username => $user) } 1 .. 11;

    my $ok = grep { my $r = $_->allocate; $r && $r->{code} == 0 }
             @d[0 .. 9];
    is($ok, 10, 'no quota directive: 10 allocations of one username');

    $m = $d[10]->allocate;
    is($m && $m->{code}, 486, 'no quota directive: the 11th gets 486');

    $_->refresh(0) for @d[0 .. 9];
}

###############################################################################

# the relay's own addresses are no peers but at relay ports, even with
# 127.0.0.0/8 allowed: here the relays are on 127.0.0.1, the address of
# the TURN port too

# a socket on the relay's address, at a port outside the relay ports
my $own;
for (1 .. 20) {
    $own = peer_socket('127.0.0.1');
    last if $own->sockport < $lo || $own->sockport > $lo + 499;
}
my $oport = $own->sockport;

$c = client();
is($c->allocate->{code}, 0, 'own address: allocated');

$m = $c->permission(['127.0.0.1', $oport]);
is($m && $m->{code}, 403, 'CreatePermission to the relay address: 403');
$m = $c->channel_bind(0x4010, '127.0.0.1', $oport);
is($m && $m->{code}, 403, 'ChannelBind to the relay address: 403');
$m = $c->channel_bind(0x4010, '127.0.0.1', $port);
is($m && $m->{code}, 403, 'ChannelBind to the TURN port: 403');
$m = $c->permission(['203.0.113.5', 53]);
is($m && $m->{code}, 403,
   "CreatePermission to another server's public address: 403");

# the permission for the IP at a relay port does not open other ports
is($c->permission(['127.0.0.1', $lo])->{code}, 0,
   'CreatePermission to the relay address at a relay port');
$c->send_indication('127.0.0.1', $oport, 'to the relay host');
ok(!defined peer_recv($own, 1),
   'Send indication to the relay address outside the relay ports: dropped');

# two relayed clients reach each other at their relayed addresses
$c2 = client();
is($c2->allocate->{code}, 0, 'own address: a second client');
my ($ip1, $port1) = split /:/, $c->relayed;
my ($ip2, $port2r) = split /:/, $c2->relayed;
is($c2->permission([$ip1, $port1])->{code}, 0,
   'CreatePermission to the other relayed address');
is($c->channel_bind(0x4011, $ip2, $port2r)->{code}, 0,
   'ChannelBind to the other relayed address');
$c->send_channel(0x4011, 'relay to relay');
my ($from, $data) = $c2->recv_data;
is($data, 'relay to relay', 'relayed client to relayed client');
is($from, $c->relayed, 'from the first relayed address');

$_->refresh(0) for $c, $c2;

# the bound address and the public one of a relay behind NAT

$c = Teleclinic::Turn->new(port => $t->port('PORT3'), secret => $SECRET);
is($c->allocate->{code}, 0, 'behind NAT: allocated');
like($c->relayed, qr/^203\.0\.113\.5:\d+$/,
     'behind NAT: the public address is given out');

$m = $c->permission(['203.0.113.5', 53]);
is($m && $m->{code}, 403, 'CreatePermission to the public address: 403');
$m = $c->channel_bind(0x4000, '203.0.113.5', 3478);
is($m && $m->{code}, 403, 'ChannelBind to the public address: 403');
$m = $c->permission(['127.0.0.1', 5000]);
is($m && $m->{code}, 403,
   'CreatePermission to the bound address, though allowed: 403');
is($c->permission(['203.0.113.5', $lo + 1])->{code}, 0,
   'CreatePermission to the public address at a relay port');
is($c->permission(['127.0.0.2', 5000])->{code}, 0,
   'CreatePermission to another allowed loopback address');
$c->refresh(0);

###############################################################################

# IPv6 peers: IPv4 in IPv6 forms judged by the embedded IPv4, SIIT and
# NAT64 local-use denied, other global addresses allowed

SKIP: {
    skip 'no IPv6 on the loopback', 1 unless $have_v6;

    $c = Teleclinic::Turn->new(host => '::1', port => $t->port('PORT5'),
                               secret => $SECRET);
    is($c->allocate->{code}, 0, 'IPv6: allocated');

    my @denied = (
        '::ffff:10.0.0.1',                  # IPv4-mapped
        '::ffff:127.0.0.1',
        '64:ff9b::7f00:1',                  # NAT64, 127.0.0.1
        '64:ff9b::a9fe:a9fe',               # NAT64, 169.254.169.254
        '64:ff9b::c0a8:101',                # NAT64, 192.168.1.1
        '64:ff9b:1::808:808',               # NAT64 local-use
        '64:ff9b:1:ffff::1',
        '::ffff:0:808:808',                 # SIIT
        '::ffff:0:a00:1',
        '2002:a00:1::1',                    # 6to4 of 10.0.0.1
        '2002:7f00:1::1',                   # 6to4 of 127.0.0.1
        '2002:a9fe:a9fe::1',                # 6to4 of 169.254.169.254
        '2001:0:a00:1::1',                  # Teredo, server 10.0.0.1
        '2001:0:808:808:0:ffff:80ff:fffe',  # Teredo, client 127.0.0.1
        'fd00::1', 'fe80::1', 'ff02::1', '::1', '::',
    );

    for my $ip (@denied) {
        $m = $c->permission([$ip, 5000]);
        is($m && $m->{code}, 403, "IPv6: CreatePermission to $ip: 403");
    }

    $m = $c->channel_bind(0x4000, '2002:a00:1::1', 5000);
    is($m && $m->{code}, 403, 'IPv6: ChannelBind to 6to4 of 10.0.0.1: 403');

    for my $ip ('2001:db8:1::1', '::ffff:8.8.8.8', '64:ff9b::808:808',
                '2002:808:808::1', '2001:0:808:808:0:ffff:f7f7:f7f7')
    {
        $m = $c->permission([$ip, 5000]);
        is($m && $m->{code}, 0, "IPv6: CreatePermission to $ip");
    }

    $c->refresh(0);
}

###############################################################################

# a wildcard relay address: the relay would not know its own addresses

for my $addr ('0.0.0.0', '::', '127.0.0.1 0.0.0.0') {
    my $w = Teleclinic::Test->new(workers => 1, udp => 1);
    eval { $w->run(<<"EOF") };
stream {
    teleclinic_turn_secret $SECRET;
    server {
        listen 127.0.0.1:%%PORT%% udp;
        teleclinic_turn;
        teleclinic_turn_relay_address $addr;
    }
}
EOF
    like($@, qr/\[emerg\].*is a wildcard/,
         "teleclinic_turn_relay_address $addr: emerg");
    $w->allow_log(qr/is a wildcard/);
}

###############################################################################

# an allocation that expires drops ChannelData (on the main server the
# allocation lives 600 s; LIFETIME 0 ends it at once)

$c = client();
$c->allocate;
is($c->channel_bind(0x4000, '127.0.0.2', $pport)->{code}, 0,
   'ChannelBind to the test peer');
$c->send_channel(0x4000, 'before');
is(peer_recv($peer), 'before', 'ChannelData relayed');
$c->refresh(0);
$c->send_channel(0x4000, 'after');
ok(!defined peer_recv($peer, 1), 'ChannelData after the deletion: dropped');

$t->stop;

done_testing();
