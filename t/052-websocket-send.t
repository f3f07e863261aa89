#!/usr/bin/perl

# What the WebSocket sends, as the client's TCP socket sees it: every
# frame arrives in one TCP segment (its header and payload sent together:
# one segment, over TLS one record), the waiting room's queue updates to
# a patient as the echo answers, plain and over TLS; and a client that
# stops reading for a while and then reads gets every answer whole and in
# order, plain and over TLS.

use strict;
use warnings;

use Test::More;

use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::IP;
use IO::Socket::SSL qw(SSL_VERIFY_NONE);
use Mojo::IOLoop;
use Mojo::JSON qw(decode_json encode_json);
use Socket qw(IPPROTO_TCP SOL_SOCKET SO_RCVBUF TCP_INFO);
use Time::HiRes qw(sleep time);

use lib 't/lib';
use Teleclinic::Room qw(:all);
use Teleclinic::WS qw(pump);

$SIG{PIPE} = 'IGNORE';

###############################################################################

my $dir = tempdir(CLEANUP => 1);

system('sh', '-c', 'exec "$@" 2>/dev/null', 'sh', 'openssl', 'req',
       '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
       '-subj', '/CN=127.0.0.1', '-keyout', "$dir/key.pem",
       '-out', "$dir/cert.pem") == 0
    or BAIL_OUT('openssl could not make a certificate');

# PORT3: a small socket buffer, so that answers wait in the module
my $t = room(server => "listen 127.0.0.1:%%PORT2%% ssl;\n"
                       . "ssl_certificate $dir/cert.pem;\n"
                       . "ssl_certificate_key $dir/key.pem;\n",
             http => "server {\n"
                     . "    listen 127.0.0.1:%%PORT3%% sndbuf=16k;\n"
                     . "    listen 127.0.0.1:%%PORT4%% ssl sndbuf=16k;\n"
                     . "    ssl_certificate $dir/cert.pem;\n"
                     . "    ssl_certificate_key $dir/key.pem;\n"
                     . "    location = /ws {\n"
                     . "        teleclinic_websocket;\n"
                     . "        teleclinic_websocket_rate 1000r/s"
                     . " burst=1000;\n"
                     . "    }\n"
                     . "}\n");

Teleclinic::WS::ua()->insecure(1);

# struct tcp_info's tcpi_data_segs_in (Linux 4.6): segments with data
# this socket received
sub data_segments {
    my ($sock) = @_;

    my $info = getsockopt($sock, IPPROTO_TCP, TCP_INFO) // '';

    return length($info) >= 156 ? unpack('L', substr($info, 152, 4)) : -1;
}

# the TCP socket under a Teleclinic::WS client
sub socket_of {
    my ($ws) = @_;

    my $tx = $ws->{tx} or return undef;
    my $stream = Mojo::IOLoop->stream($tx->connection) or return undef;

    return $stream->handle;
}

###############################################################################

# One segment a frame: a patient's queue updates (the fan-out) and echo
# answers of many sizes, over ws:// and wss://.

for my $scheme ('ws', 'wss') {
    my $port = $t->port($scheme eq 'ws' ? 'PORT' : 'PORT2');
    my $url = "$scheme://127.0.0.1:$port/ws";
    my $doctor = $scheme eq 'ws' ? 'doc-a' : 'doc-b';

    my @p = book_soon($t, $doctor, 3, skip => 0);

    # the last of three checks in first: the others move it back
    my $ws = Teleclinic::WS->connect($url);
    my $w = $ws->hello($p[2]{token});
    is($w && $w->{type}, 'welcome', "$scheme: the patient checks in");
    expect_queue($ws, { position => 1 }, "$scheme: position 1");
    $ws->quiet(0.5);

    # the frames that reach the client from here on, pings too
    my $frames = 0;
    $ws->{tx}->on(frame => sub { $frames++ });

    my $sock = socket_of($ws);
    my $before = data_segments($sock);
    ok($before >= 0, "$scheme: the client socket's TCP_INFO");

    my $doc = Teleclinic::WS->connect($url);
    $doc->hello(login($t, $doctor));

    my @others = map {
        my $o = Teleclinic::WS->connect($url);
        $o->hello($_->{token});
        $o;
    } @p[0, 1];

    expect_queue($ws, { position => 3 }, "$scheme: the others before it");

    $doc->send_json({ type => 'call_next' });
    my $ring = $others[0]->recv_json(type => 'ring');
    $others[0]->send_json({ type => 'accept', call => $ring->{call} })
        if $ring;
    expect_queue($ws, { position => 2, doctor_busy => 1 },
                 "$scheme: the doctor is busy, position 2");
    $doc->send_json({ type => 'hangup', call => $ring ? $ring->{call} : '' });
    expect_queue($ws, { position => 2, doctor_busy => 0 },
                 "$scheme: the doctor is free again");

    # echoes of every size, up to a frame of more than 4 KiB (the stack)
    my $echoed = 0;

    for my $len (10, 100, 1000, 4090, 8000, 12000) {
        $ws->send_json({ type => 'echo', data => 'e' x $len });
        my $e = $ws->recv_json(type => 'echo');
        $echoed++ if $e && length($e->{data} // '') == $len;
    }

    is($echoed, 6, "$scheme: every echo answered whole");

    $ws->quiet(0.5);

    my $segments = data_segments($sock) - $before;

    ok($frames >= 9 && $segments <= $frames,
       "$scheme: one TCP segment a frame ($segments segments for $frames "
       . "frames)");

    $_->close(1000) for @others;
    $doc->close(1000);
    $ws->close(1000);
}

###############################################################################

# A client that stops reading, then reads: every answer, whole, in order.

sub frame {
    my ($op, $payload) = @_;

    my $len = length $payload;
    my $mask = pack('N', int(rand(2**32)));
    my $head = chr(0x80 | $op);

    $head .= $len < 126 ? chr(0x80 | $len)
           : $len < 65536 ? chr(0x80 | 126) . pack('n', $len)
           : chr(0x80 | 127) . pack('Q>', $len);

    return $head . $mask . ($payload ^ substr($mask x ($len / 4 + 1), 0, $len));
}

my %rbuf;

sub raw_read {
    my ($s, $want, $timeout) = @_;

    my $deadline = time() + $timeout;
    my $sel = IO::Select->new($s);

    while (length($rbuf{$s} // '') < $want) {
        my $left = $deadline - time();
        return 'timeout' if $left <= 0;

        # TLS may hold a record's bytes that select() does not see
        next unless ($s->can('pending') && $s->pending)
                    || $sel->can_read($left);

        my $r = sysread($s, my $chunk, 65536);
        next if !defined $r && ($! == EINTR || $! == EAGAIN
                                || $! == EWOULDBLOCK);
        return 'eof' unless $r;
        $rbuf{$s} .= $chunk;
    }

    return 'ok';
}

sub read_frame {
    my ($s) = @_;

    my $r = raw_read($s, 2, 10);
    return $r if $r ne 'ok';

    my ($b0, $b1) = unpack('CC', $rbuf{$s});
    my ($len, $hlen) = ($b1 & 0x7f, 2);

    if ($len == 126) {
        $hlen = 4;
        $r = raw_read($s, $hlen, 10);
        return $r if $r ne 'ok';
        $len = unpack('n', substr($rbuf{$s}, 2, 2));

    } elsif ($len == 127) {
        $hlen = 10;
        $r = raw_read($s, $hlen, 10);
        return $r if $r ne 'ok';
        $len = unpack('Q>', substr($rbuf{$s}, 2, 8));
    }

    $r = raw_read($s, $hlen + $len, 10);
    return $r if $r ne 'ok';

    substr($rbuf{$s}, 0, $hlen, '');

    return { opcode => $b0 & 0x0f, payload => substr($rbuf{$s}, 0, $len, '') };
}

for my $scheme ('ws', 'wss') {
    my $port = $t->port($scheme eq 'ws' ? 'PORT3' : 'PORT4');
    my $s;

    if ($scheme eq 'ws') {
        $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
                                 Timeout => 5);
    } else {
        $s = IO::Socket::SSL->new(PeerHost => '127.0.0.1', PeerPort => $port,
                                  SSL_verify_mode => SSL_VERIFY_NONE,
                                  Timeout => 5);
    }

    ok($s, "$scheme slow reader: connected") or next;

    setsockopt($s, SOL_SOCKET, SO_RCVBUF, 4096);

    syswrite($s, "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
                 . "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 . "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 . "Sec-WebSocket-Version: 13\r\n\r\n");

    raw_read($s, 1, 10);
    1 while raw_read($s, index($rbuf{$s}, "\r\n\r\n") + 4, 10) eq 'ok'
            && index($rbuf{$s}, "\r\n\r\n") < 0;
    like($rbuf{$s} // '', qr{^HTTP/1\.1 101}, "$scheme slow reader: 101");
    substr($rbuf{$s}, 0, index($rbuf{$s}, "\r\n\r\n") + 4, '');

    # about 48 KB of answers: more than the socket buffers hold, less
    # than teleclinic_websocket_send_buffer
    my @sizes = map { 1000 + 700 * $_ } 0 .. 11;
    my $out = join '', map {
        frame(1, encode_json({ v => 1, type => 'echo', id => $_,
                               data => chr(97 + $_) x $sizes[$_] }))
    } 0 .. $#sizes;

    # TLS writes a record at a time
    for (my $off = 0; $off < length $out; ) {
        my $w = syswrite($s, $out, length($out) - $off, $off);
        last unless $w || $! == EAGAIN || $! == EINTR;
        $off += $w // 0;
    }

    sleep 1;

    my @got;

    for (0 .. $#sizes) {
        my $f = read_frame($s);
        last unless ref $f;
        my $m = eval { decode_json($f->{payload}) } // {};
        push @got, ($m->{id} // '?') . ':' . length($m->{data} // '')
                   . ':' . (($m->{data} // '') =~ /^(.)\1*$/ ? $1 : '?');
    }

    is(join(' ', @got),
       join(' ', map { "$_:$sizes[$_]:" . chr(97 + $_) } 0 .. $#sizes),
       "$scheme slow reader: every answer whole and in order");

    syswrite($s, frame(8, pack('n', 1000)));
    my $f = read_frame($s);
    is(ref $f && $f->{opcode} == 8 ? unpack('n', $f->{payload}) : $f, 1000,
       "$scheme slow reader: the close answered after them");
    close $s;
}

$t->stop;

done_testing;
