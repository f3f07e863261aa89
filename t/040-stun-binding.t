#!/usr/bin/perl

# STUN Binding (RFC 8489) on a "teleclinic_turn" stream server, over UDP
# and TCP: coturn's own client learns its address from it; a Binding
# request made here byte by byte gets the client's address back in
# XOR-MAPPED-ADDRESS, with SOFTWARE, and FINGERPRINT when the request had
# one; several requests in one TCP segment, or one split across
# segments, are each answered.  What is not STUN (garbage, a truncated
# message, a wrong magic cookie, a wrong FINGERPRINT) gets no answer over
# UDP and closes a TCP connection, and the same workers answer the next
# request.  An unknown comprehension-required attribute gets 420 with
# UNKNOWN-ATTRIBUTES; the TURN methods, which need an allocation that
# does not exist, get 437; a malformed attribute gets 400; indications
# get nothing.

use strict;
use warnings;

use Test::More;

use Compress::Zlib qw(crc32);
use IO::Select;
use IO::Socket::IP;
use Socket qw(inet_ntoa);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Turn qw(attr message tid);

###############################################################################

my $COOKIE = 0x2112A442;
my $WAIT = 3;            # seconds to wait for an answer that must come

my $t = Teleclinic::Test->new(workers => 2, udp => 1);
$t->has(qw(stream));

$t->run(<<'EOF');
stream {
    server {
        listen 127.0.0.1:%%PORT%% udp reuseport;
        listen 127.0.0.1:%%PORT%%;
        teleclinic_turn;
    }
}
EOF

my $port = $t->port('PORT');
my @workers = $t->worker_pids;

###############################################################################

# STUN messages: Teleclinic::Turn builds them, a Binding's parts are here

# appends FINGERPRINT: CRC-32 of all before it, the length counting it
sub with_fingerprint {
    my ($msg) = @_;
    substr($msg, 2, 2) = pack 'n', length($msg) - 20 + 8;
    return $msg . attr(0x8028, pack 'N', crc32($msg) ^ 0x5354554e);
}

sub binding { message(0x0001, @_) }

# { type, tid, attrs => { type => [values] }, order => [types] }, or undef
sub parse {
    my ($bytes) = @_;

    return undef if !defined $bytes || length $bytes < 20;

    my ($type, $len, $cookie) = unpack 'nnN', $bytes;
    return undef if $cookie != $COOKIE || 20 + $len != length $bytes;

    my %m = (type => $type, tid => substr($bytes, 8, 12), attrs => {},
             order => [], bytes => $bytes);
    my $pos = 20;

    while ($pos < length $bytes) {
        my ($at, $al) = unpack 'nn', substr $bytes, $pos, 4;
        my $value = substr $bytes, $pos + 4, $al;
        push @{ $m{attrs}{$at} }, $value;
        push @{ $m{order} }, $at;
        $m{fp_at} = $pos if $at == 0x8028;
        $pos += 4 + $al + (4 - $al % 4) % 4;
    }

    return \%m;
}

# "ip:port" from XOR-MAPPED-ADDRESS (IPv4)
sub mapped {
    my ($m) = @_;
    my $v = $m->{attrs}{0x0020}[0];
    return '' unless defined $v;
    my ($family, $xport, $xaddr) = unpack 'xCnN', $v;
    return 'family ' . $family if $family != 1;
    return inet_ntoa(pack 'N', $xaddr ^ $COOKIE) . ':'
           . ($xport ^ ($COOKIE >> 16));
}

sub error_code {
    my ($m) = @_;
    my $v = $m->{attrs}{0x0009}[0];
    return 0 unless defined $v;
    my ($class, $number) = unpack 'xxCC', $v;
    return ($class & 7) * 100 + $number;
}

sub fingerprint_ok {
    my ($m) = @_;
    my $at = $m->{fp_at};
    return 0 unless defined $at;
    my ($fp) = unpack 'N', $m->{attrs}{0x8028}[0];
    return $m->{order}[-1] == 0x8028
           && $fp == (crc32(substr $m->{bytes}, 0, $at) ^ 0x5354554e);
}

sub udp_socket {
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
                                Proto => 'udp')
        or die "udp socket: $@";
    return $s;
}

sub udp_recv {
    my ($s) = @_;
    return undef unless IO::Select->new($s)->can_read($WAIT);
    my $buf;
    return defined $s->recv($buf, 65536) ? $buf : undef;
}

sub tcp_socket {
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
                                Proto => 'tcp')
        or die "tcp socket: $@";
    return $s;
}

# the next message from a TCP stream, framed by its length; undef on EOF;
# what follows it waits in the socket's buffer for the next call
my %pending;

sub tcp_recv {
    my ($s) = @_;
    my $buf = \$pending{$s};
    my $sel = IO::Select->new($s);

    $$buf //= '';

    while (1) {
        if (length $$buf >= 20) {
            my $need = 20 + unpack 'x2n', $$buf;
            return substr($$buf, 0, $need, '') if length $$buf >= $need;
        }
        return undef unless $sel->can_read($WAIT);
        my $n = sysread $s, $$buf, 65536, length $$buf;
        return undef unless $n;
    }
}

# true when the peer closed the connection (EOF or reset) before $WAIT
sub tcp_closed {
    my ($s) = @_;
    return 0 unless IO::Select->new($s)->can_read($WAIT);
    my $n = sysread $s, my $buf, 65536;
    return !$n;
}

###############################################################################

# coturn's client

SKIP: {
    my ($client) = grep { -x } map { "$_/turnutils_stunclient" }
                   split /:/, $ENV{PATH};
    skip 'turnutils_stunclient not installed (apt-get install coturn)', 1
        unless $client;

    my $out = `timeout 20 $client -p $port 127.0.0.1 2>&1`;
    like($out, qr/UDP reflexive addr: 127\.0\.0\.1:\d+/,
         'turnutils_stunclient: reflexive address')
        or diag($out);
}

###############################################################################

# Binding over UDP

my $u = udp_socket();
my $me = '127.0.0.1:' . $u->sockport;

my $tid = tid();
$u->send(binding($tid));
my $m = parse(udp_recv($u));

ok($m, 'udp: answer to Binding');
is($m->{type}, 0x0101, 'udp: Binding success') if $m;
is($m->{tid}, $tid, 'udp: same transaction id') if $m;
is(mapped($m), $me, 'udp: XOR-MAPPED-ADDRESS is the client') if $m;
is($m->{attrs}{0x8022}[0], 'ngx_teleclinic', 'udp: SOFTWARE') if $m;
ok(!$m->{attrs}{0x8028}, 'udp: no FINGERPRINT unasked') if $m;

$tid = tid();
$u->send(with_fingerprint(binding($tid, attr(0x8022, 'test client'))));
$m = parse(udp_recv($u));
ok($m && $m->{tid} eq $tid, 'udp: answer to Binding with FINGERPRINT');
ok($m && fingerprint_ok($m), 'udp: answer has a valid FINGERPRINT');
is($m && mapped($m), $me, 'udp: again the client address');

# the same session answers again and again
my $answered = 0;
for (1 .. 5) {
    $tid = tid();
    $u->send(binding($tid));
    $m = parse(udp_recv($u));
    $answered++ if $m && $m->{tid} eq $tid && mapped($m) eq $me;
}
is($answered, 5, 'udp: five Bindings in one session, five answers');

# another client, another address
my $u2 = udp_socket();
$tid = tid();
$u2->send(binding($tid));
$m = parse(udp_recv($u2));
is($m && mapped($m), '127.0.0.1:' . $u2->sockport,
   'udp: a second client gets its own address');

###############################################################################

# not STUN over UDP: no answer, and the next request is answered; the
# answer to the good request must be the first datagram to come back

my $good = binding(tid());
my $bad_fp = with_fingerprint(binding(tid()));
substr($bad_fp, -1, 1) = chr(ord(substr $bad_fp, -1) ^ 1);
my $bad_cookie = binding(tid());
substr($bad_cookie, 4, 4) = pack 'N', 0x2112A443;

my %bad = (
    'garbage'          => "hello, is this a TURN server?\n",
    'empty datagram'   => '',
    'short header'     => substr($good, 0, 12),
    'truncated'        => substr(binding(tid(), attr(0x8022, 'abcdefgh')),
                                 0, 28),
    'length too long'  => pack('nnN', 1, 64, $COOKIE) . tid(),
    'length not /4'    => pack('nnN', 1, 2, $COOKIE) . tid() . "ab",
    'wrong cookie'     => $bad_cookie,
    'bad FINGERPRINT'  => $bad_fp,
    'attribute overrun'=> message(0x0001, tid(),
                                  pack('nn', 0x8022, 200) . 'abcd'),
    'top bits set'     => pack('nnN', 0xc001, 0, $COOKIE) . tid(),
    'after FINGERPRINT'=> with_fingerprint(binding(tid()))
                          . attr(0x8022, 'late'),
);

for my $name (sort keys %bad) {
    my $bytes = $bad{$name};

    # a length that still counts what follows FINGERPRINT
    if ($name eq 'after FINGERPRINT') {
        substr($bytes, 2, 2) = pack 'n', length($bytes) - 20;
    }

    $u->send($bytes);
    $tid = tid();
    $u->send(binding($tid));
    $m = parse(udp_recv($u));
    is($m && $m->{tid}, $tid, "udp: $name: no answer, next one answered");
}

###############################################################################

# requests that get an error

$tid = tid();
$u->send(binding($tid, attr(0x7ff0, 'what is this'), attr(0x8ff0, 'fine'),
                 attr(0x0003, pack 'N', 0)));
$m = parse(udp_recv($u));
ok($m, 'unknown attribute: answer');
if ($m) {
    is($m->{type}, 0x0111, 'unknown attribute: Binding error');
    is($m->{tid}, $tid, 'unknown attribute: same transaction id');
    is(error_code($m), 420, 'unknown attribute: 420');
    is(join(',', map { sprintf '%04x', $_ }
                 unpack 'n*', $m->{attrs}{0x000A}[0] // ''),
       '7ff0,0003',
       'unknown attribute: UNKNOWN-ATTRIBUTES lists the required ones');
}

$tid = tid();
$u->send(binding($tid, attr(0x0019, "\x11\0\0")));
$m = parse(udp_recv($u));
is($m && error_code($m), 400, 'malformed REQUESTED-TRANSPORT: 400');

# Refresh, CreatePermission, ChannelBind: no allocation on this 5-tuple
for my $method ([0x0004, 'Refresh'], [0x0008, 'CreatePermission'],
                [0x0009, 'ChannelBind'])
{
    $tid = tid();
    $u->send(message($method->[0], $tid, attr(0x000D, pack 'N', 600)));
    $m = parse(udp_recv($u));
    is($m && $m->{type}, $method->[0] | 0x0110,
       "$method->[1]: error answer");
    is($m && error_code($m), 437, "$method->[1]: 437 Allocation Mismatch");
}

$tid = tid();
$u->send(message(0x000f, $tid));                      # method 0x00f
$m = parse(udp_recv($u));
is($m && error_code($m), 400, 'unknown method: 400');

# indications and answers get no answer: the next request's comes first
$u->send(message(0x0011, tid()));                     # Binding indication
$u->send(message(0x0101, tid()));                     # Binding success
$u->send(message(0x0016, tid(), attr(0x0013, 'x')));  # Send indication
$tid = tid();
$u->send(binding($tid));
$m = parse(udp_recv($u));
is($m && $m->{tid}, $tid, 'indications and answers: no answer');

###############################################################################

# Binding over TCP

my $s = tcp_socket();
my $tme = '127.0.0.1:' . $s->sockport;

$tid = tid();
syswrite $s, with_fingerprint(binding($tid));
$m = parse(tcp_recv($s));
ok($m && $m->{tid} eq $tid, 'tcp: answer to Binding');
is($m && $m->{type}, 0x0101, 'tcp: Binding success');
is($m && mapped($m), $tme, 'tcp: XOR-MAPPED-ADDRESS is the client');
ok($m && fingerprint_ok($m), 'tcp: FINGERPRINT');

# three requests in one segment
my @tids = map { tid() } 1 .. 3;
syswrite $s, join '', map { binding($_) } @tids;
my @got = map { my $x = parse(tcp_recv($s)); $x ? $x->{tid} : '' } 1 .. 3;
is_deeply(\@got, \@tids, 'tcp: three requests in a segment, three answers');

# one request in pieces
$tid = tid();
my $req = binding($tid, attr(0x8022, 'piecemeal client'));
for my $piece (substr($req, 0, 3), substr($req, 3, 17), substr($req, 20)) {
    syswrite $s, $piece;
    select undef, undef, undef, 0.05;
}
$m = parse(tcp_recv($s));
is($m && $m->{tid}, $tid, 'tcp: a request in three pieces');

# an unknown attribute over TCP
$tid = tid();
syswrite $s, binding($tid, attr(0x4001, 'x'));
$m = parse(tcp_recv($s));
is($m && error_code($m), 420, 'tcp: 420');

# garbage closes the connection
syswrite $s, "GET / HTTP/1.0\r\n\r\n";
ok(tcp_closed($s), 'tcp: garbage closes the connection');
close $s;

$s = tcp_socket();
syswrite $s, $bad_fp;
ok(tcp_closed($s), 'tcp: bad FINGERPRINT closes the connection');
close $s;

$s = tcp_socket();
syswrite $s, pack('nnN', 1, 60000, $COOKIE) . tid();
ok(tcp_closed($s), 'tcp: a message larger than the buffer closes');
close $s;

$s = tcp_socket();
$tid = tid();
syswrite $s, binding($tid);
$m = parse(tcp_recv($s));
is($m && $m->{tid}, $tid, 'tcp: a new connection is answered');
close $s;

###############################################################################

is(join(' ', $t->worker_pids), join(' ', @workers), 'same workers');

$tid = tid();
$u->send(binding($tid));
$m = parse(udp_recv($u));
is($m && $m->{tid}, $tid, 'udp: still answered at the end');

# graceful shutdown with UDP sessions and a TCP connection open: stop
# checks that nginx exits and logs no alert
$s = tcp_socket();
$t->stop;

done_testing();
