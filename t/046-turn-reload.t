#!/usr/bin/perl

# A relayed UDP stream survives `nginx -s reload`: the old worker hands
# its allocations to the new worker of the same number, which reads the
# same reuseport socket.  Clients that do nothing (no Refresh, no new
# Allocate) keep their relayed address, permissions and channels, both
# ways; data that a peer sends before the client writes again reaches
# the client; later reloads hand them on again, whether or not their
# clients wrote to the worker that adopted them; a Refresh after a
# reload finds the allocation (after the 438 of the old nonce).

use strict;
use warnings;

use Test::More;

use IO::Select;
use Time::HiRes qw(sleep);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Turn qw(peer_socket);

###############################################################################

my $SECRET = 'reload-secret';

my $t = Teleclinic::Test->new(workers => 2, udp => 1);
$t->has(qw(stream));

my $lo = 40000 + int rand 20000;
my ($min, $max) = ($lo, $lo + 499);

$t->write_file('turn.secret', "$SECRET\n");

$t->run(<<"EOF");
stream {
    teleclinic_turn_secret_file %%PREFIX%%/turn.secret;
    teleclinic_turn_relay_ports $min-$max;
    teleclinic_turn_allow_peer 127.0.0.0/8;

    server {
        listen 127.0.0.1:%%PORT%% udp reuseport;
        teleclinic_turn;
    }
}
EOF

my $port = $t->port('PORT');

# what arrives at the peer: { "ip:port" of the sender => [data] }
sub peer_drain {
    my ($s, $want) = @_;
    my (%got, $n);
    $n = 0;
    while ($n < $want && IO::Select->new($s)->can_read(3)) {
        my $from = $s->recv(my $buf, 65536);
        last unless defined $from;
        my ($p, $a) = Socket::unpack_sockaddr_in($from);
        push @{ $got{Socket::inet_ntoa($a) . ":$p"} }, $buf;
        $n++;
    }
    return \%got;
}

sub peer_send {
    my ($s, $relayed, $data) = @_;
    my ($ip, $p) = split /:/, $relayed;
    $s->send($data, 0, Socket::pack_sockaddr_in($p, Socket::inet_aton($ip)));
}

###############################################################################

# several clients, so that both workers hold some

my $peer = peer_socket();
my @c;

for my $i (0 .. 7) {
    my $c = Teleclinic::Turn->new(port => $port, secret => $SECRET);
    is($c->allocate->{code}, 0, "client $i: allocated");
    is($c->channel_bind(0x4000, '127.0.0.2', $peer->sockport)->{code}, 0,
       "client $i: channel bound");
    push @c, $c;
}

sub both_ways {
    my ($when) = @_;

    for my $i (0 .. $#c) {
        $c[$i]->send_channel(0x4000, "$when from $i");
    }

    my $got = peer_drain($peer, scalar @c);

    for my $i (0 .. $#c) {
        my $r = $c[$i]->relayed;
        is_deeply($got->{$r}, ["$when from $i"],
                  "$when: client $i reaches the peer from $r");
        peer_send($peer, $r, "$when to $i");
    }

    for my $i (0 .. $#c) {
        my ($ch, $data) = $c[$i]->recv_data(3);
        is($data, "$when to $i", "$when: the peer reaches client $i");
    }
}

both_ways('before');

$t->reload;

both_ways('after reload');

# the peer first, before the clients write again

$t->reload;

for my $i (0 .. $#c) {
    peer_send($peer, $c[$i]->relayed, "second reload to $i");
}

for my $i (0 .. $#c) {
    my ($ch, $data) = $c[$i]->recv_data(3);
    is($data, "second reload to $i",
       "second reload: the peer reaches client $i first");
}

# a third reload before they write: what the workers adopted and no
# client claimed yet goes on to the next ones

$t->reload;

both_ways('third reload');

# the allocation is known: a Refresh works (438 first: new nonce key)

my $m = $c[0]->refresh;
$m = $c[0]->refresh if $m && $m->{code} == 438;
is($m && $m->{code}, 0, 'after reload: Refresh finds the allocation');

$t->stop;

done_testing;
