#!/usr/bin/perl

# The WebSocket endpoint (teleclinic_websocket): the handshake and each
# way it is refused, the versioned JSON protocol (echo, errors), the
# close codes a bad peer gets (1002 bad close frame, 1007 bad UTF-8, 1009
# too big, 1003 binary, 1008 flood of messages or pings), fragmented
# messages, pings, a peer that never reads, and the 1001 every open
# WebSocket gets when nginx reloads.

use strict;
use warnings;

use Test::More;

use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use IO::Select;
use IO::Socket::IP;
use Mojo::IOLoop;
use Mojo::JSON qw(decode_json encode_json);
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Time::HiRes qw(sleep time);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;

$SIG{PIPE} = 'IGNORE';

###############################################################################

my $t = Teleclinic::Test->new(workers => 2);

$t->run(<<'EOF');
http {
    %%TEMP_PATHS%%
    lingering_timeout 1s;

    server {
        listen 127.0.0.1:%%PORT%%;

        teleclinic_websocket_ping 1s;

        location = /ws { teleclinic_websocket; }

        location = /ws-listed {
            teleclinic_websocket;
            teleclinic_websocket_origins https://clinic.example
                                         https://www.clinic.example;
        }
    }

    server {
        listen 127.0.0.1:%%PORT2%% sndbuf=16k;

        location = /ws {
            teleclinic_websocket;
            teleclinic_websocket_send_buffer 64k;
            teleclinic_websocket_rate 100000r/s burst=100000;
        }
    }
}
EOF

my $port = $t->port('PORT');
my $SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

# the UserAgent stays alive for the whole test: a temporary one hangs
my $ua = $t->ua;

###############################################################################

# Raw connections, for what a well-behaved client library will not send.

my %rbuf;

sub raw_read {
    my ($s, $want, $timeout) = @_;

    my $deadline = time() + ($timeout // 10);
    my $sel = IO::Select->new($s);

    while (length($rbuf{$s}) < $want) {
        my $left = $deadline - time();
        return 'timeout' if $left <= 0;
        next unless $sel->can_read($left);

        my $n = sysread($s, my $chunk, 65536);
        next if !defined $n && ($! == EINTR || $! == EAGAIN);
        return 'eof' unless $n;
        $rbuf{$s} .= $chunk;
    }

    return 'ok';
}

# GET with WebSocket headers; undef values drop a header
sub handshake {
    my (%opts) = @_;

    my $p = $opts{port} // $port;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $p,
                                Timeout => 5)
        or die "connect: $@";
    $rbuf{$s} = '';

    my %h = (
        'Host' => "127.0.0.1:$p",
        'Upgrade' => 'websocket',
        'Connection' => 'keep-alive, Upgrade',
        'Sec-WebSocket-Key' => $SAMPLE_KEY,
        'Sec-WebSocket-Version' => '13',
        %{ $opts{headers} // {} },
    );

    my $req = ($opts{method} // 'GET') . ' ' . ($opts{path} // '/ws')
              . " HTTP/1.1\r\n";
    for my $k (sort keys %h) {
        $req .= "$k: $h{$k}\r\n" if defined $h{$k};
    }
    $req .= "\r\n" . ($opts{extra} // '');

    syswrite($s, $req) or die "write: $!";

    while ($rbuf{$s} !~ /\r\n\r\n/) {
        raw_read($s, length($rbuf{$s}) + 1) eq 'ok' or last;
    }

    my ($head, $rest) = split /\r\n\r\n/, $rbuf{$s}, 2;
    $rbuf{$s} = $rest // '';

    my ($status) = ($head // '') =~ m{^HTTP/1\.1 (\d+)};
    my %rh;
    for my $line (split /\r\n/, $head // '') {
        $rh{lc $1} = $2 if $line =~ /^([^:]+):\s*(.*)$/;
    }

    my $body = '';
    if ($rh{'content-length'}) {
        raw_read($s, $rh{'content-length'});
        $body = substr($rbuf{$s}, 0, $rh{'content-length'}, '');
    }

    return { sock => $s, status => $status // 0, headers => \%rh,
             body => $body };
}

sub frame {
    my ($opcode, $payload, %o) = @_;

    my $fin = $o{fin} // 1;
    my $len = length $payload;
    my $f = chr(($fin ? 0x80 : 0) | $opcode);

    if ($len < 126) {
        $f .= chr(0x80 | $len);
    } elsif ($len < 65536) {
        $f .= chr(0x80 | 126) . pack('n', $len);
    } else {
        $f .= chr(0x80 | 127) . pack('Q>', $len);
    }

    my $mask = pack('N', int(rand(2**32)));
    my $masked = $payload ^ (substr($mask x (int($len / 4) + 1), 0, $len));

    return $f . $mask . $masked;
}

sub send_frame {
    my ($s, @args) = @_;
    my $f = frame(@args);
    return syswrite($s, $f) == length $f;
}

# the next frame from the server: { opcode, payload, fin } or 'eof'/'timeout'
sub read_frame {
    my ($s, $timeout) = @_;

    my $r = raw_read($s, 2, $timeout);
    return $r if $r ne 'ok';

    my ($b0, $b1) = unpack('CC', $rbuf{$s});
    my $len = $b1 & 0x7f;
    my $hlen = 2;

    if ($len == 126) {
        $hlen = 4;
        $r = raw_read($s, $hlen, $timeout);
        return $r if $r ne 'ok';
        $len = unpack('n', substr($rbuf{$s}, 2, 2));

    } elsif ($len == 127) {
        $hlen = 10;
        $r = raw_read($s, $hlen, $timeout);
        return $r if $r ne 'ok';
        $len = unpack('Q>', substr($rbuf{$s}, 2, 8));
    }

    $r = raw_read($s, $hlen + $len, $timeout);
    return $r if $r ne 'ok';

    substr($rbuf{$s}, 0, $hlen, '');

    return { fin => $b0 >> 7, opcode => $b0 & 0x0f, masked => $b1 >> 7,
             payload => substr($rbuf{$s}, 0, $len, '') };
}

sub close_code {
    my ($f) = @_;
    return undef unless ref $f && $f->{opcode} == 8;
    return unpack('n', $f->{payload});
}

# frames until a close frame or the end of the connection
sub read_until_close {
    my ($s) = @_;

    my @frames;

    for (1 .. 1000) {
        my $f = read_frame($s, 10);
        push @frames, $f;
        last unless ref $f;
        last if $f->{opcode} == 8;
    }

    return @frames;
}

# Mojo::UserAgent: send messages, collect text messages until $expect
# arrived (then close with 1000) or the server closes.
sub talk {
    my (%o) = @_;

    my %res = (messages => []);

    $ua->websocket($t->url($o{path} // '/ws') => $o{headers} // {} => sub {
        my ($ua, $tx) = @_;

        unless ($tx->is_websocket) {
            $res{status} = $tx->res->code;
            Mojo::IOLoop->stop;
            return;
        }

        $res{status} = 101;

        $tx->on(finish => sub {
            my ($tx, $code, $reason) = @_;
            $res{code} = $code;
            Mojo::IOLoop->stop;
        });

        $tx->on(text => sub {
            my ($tx, $bytes) = @_;
            push @{ $res{messages} }, eval { decode_json($bytes) } // $bytes;
            $tx->finish(1000)
                if $o{expect} && @{ $res{messages} } == $o{expect};
        });

        # strings here are JSON texts already encoded to UTF-8
        $tx->send(ref $_ ? $_ : { text => $_ }) for @{ $o{send} // [] };
        $o{after}->($tx) if $o{after};
    });

    my $timer = Mojo::IOLoop->timer(15 => sub {
        $res{timeout} = 1;
        Mojo::IOLoop->stop;
    });

    Mojo::IOLoop->start;
    Mojo::IOLoop->remove($timer);

    return \%res;
}

###############################################################################

# The handshake.

my $h = handshake();
is($h->{status}, 101, 'handshake: 101');
is($h->{headers}{'sec-websocket-accept'}, 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=',
   'Sec-WebSocket-Accept of the RFC 6455 sample key');
like($h->{headers}{upgrade} // '', qr/^websocket$/i, 'Upgrade: websocket');
like($h->{headers}{connection} // '', qr/upgrade/i, 'Connection: upgrade');
ok(send_frame($h->{sock}, 1, '{"v":1,"type":"echo","data":"raw"}'),
   'raw echo sent');
my $f = read_frame($h->{sock});
is_deeply(ref $f ? decode_json($f->{payload}) : $f,
          { v => 1, type => 'echo', data => 'raw' }, 'raw echo answered');
ok(ref $f && !$f->{masked}, 'server frames are not masked');
send_frame($h->{sock}, 8, pack('n', 1000));
$f = read_frame($h->{sock});
is(close_code($f), 1000, 'close answered with 1000');
is(read_frame($h->{sock}), 'eof', 'server closes the TCP connection');

# RFC 6455, 5.5.1 and 7.4: a close body is empty or a code (and a reason);
# a body of 1 byte, or a code not valid on the wire, is a protocol error
$h = handshake();
send_frame($h->{sock}, 8, "\x03");
$f = read_frame($h->{sock});
is(close_code($f), 1002, 'close frame of 1 byte: close 1002');
is(read_frame($h->{sock}), 'eof', 'close frame of 1 byte: TCP closed');

for my $code (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999,
              5000) {
    $h = handshake();
    send_frame($h->{sock}, 8, pack('n', $code) . 'bye');
    $f = read_frame($h->{sock});
    is(close_code($f), 1002, "close code $code: close 1002");
    close $h->{sock};
}

for my $code (1001, 3000, 4999) {
    $h = handshake();
    send_frame($h->{sock}, 8, pack('n', $code));
    $f = read_frame($h->{sock});
    is(close_code($f), $code, "close code $code: answered with $code");
    close $h->{sock};
}

$h = handshake();
send_frame($h->{sock}, 8, '');
$f = read_frame($h->{sock});
ok(ref $f && $f->{opcode} == 8 && $f->{payload} eq '',
   'empty close frame: answered with an empty one');
close $h->{sock};

# a frame sent right behind the handshake, in the same packet
$h = handshake(extra => frame(1, '{"v":1,"type":"echo","data":1}'));
is($h->{status}, 101, 'handshake with a frame behind it');
$f = read_frame($h->{sock});
is_deeply(ref $f ? decode_json($f->{payload}) : $f,
          { v => 1, type => 'echo', data => 1 },
          'the frame that came with the handshake is answered');
close $h->{sock};

$h = handshake(headers => { 'Sec-WebSocket-Version' => '8' });
is($h->{status}, 426, 'version 8: 426');
is($h->{headers}{'sec-websocket-version'}, '13',
   '426 says Sec-WebSocket-Version: 13');

$h = handshake(headers => { 'Sec-WebSocket-Version' => undef });
is($h->{status}, 426, 'no version: 426');

$h = handshake(headers => { 'Upgrade' => undef, 'Connection' => undef,
                            'Sec-WebSocket-Key' => undef,
                            'Sec-WebSocket-Version' => undef });
is($h->{status}, 426, 'plain GET: 426');
like($h->{headers}{upgrade} // '', qr/^websocket$/i, '426 names websocket');

$h = handshake(headers => { 'Sec-WebSocket-Key' => 'AAAA' });
is($h->{status}, 400, 'short key: 400');

$h = handshake(headers => { 'Sec-WebSocket-Key' => 'A' x 28 });
is($h->{status}, 400, 'key of 21 bytes: 400');

$h = handshake(headers => {
    'Sec-WebSocket-Key' => '!AAAAAAAAAAAAAAAAAAAAA==' });
is($h->{status}, 400, 'key not base64: 400');

$h = handshake(headers => { 'Sec-WebSocket-Key' => undef });
is($h->{status}, 400, 'no key: 400');

$h = handshake(headers => { 'Connection' => 'keep-alive' });
is($h->{status}, 400, 'Connection without upgrade: 400');

$h = handshake(method => 'POST');
is($h->{status}, 405, 'POST: 405');
is($h->{headers}{allow}, 'GET', '405 allows GET');

$h = handshake(headers => { 'Origin' => 'https://evil.example' });
is($h->{status}, 403, 'another site\'s origin: 403');
is(eval { decode_json($h->{body})->{error}{code} }, 'origin_not_allowed',
   '403 says why');

$h = handshake(headers => { 'Origin' => "http://127.0.0.1:$port" });
is($h->{status}, 101, 'same-host origin: 101');
close $h->{sock};

$h = handshake(path => '/ws-listed',
               headers => { 'Origin' => 'https://www.clinic.example' });
is($h->{status}, 101, 'listed origin: 101');
close $h->{sock};

$h = handshake(path => '/ws-listed',
               headers => { 'Origin' => "http://127.0.0.1:$port" });
is($h->{status}, 403, 'same host but not listed: 403');

###############################################################################

# The protocol.

my $r = talk(send => [encode_json({ v => 1, type => 'echo', id => 7,
                                    data => { a => [1, "\x{e9}t\x{e9}"] } })],
             expect => 1);
is_deeply($r->{messages},
          [{ v => 1, type => 'echo', id => 7,
             data => { a => [1, "\x{e9}t\x{e9}"] } }],
          'echo round trip (UTF-8 data, id kept)');

$r = talk(send => ['{"v":1,"type":"book-me"}'], expect => 1);
is($r->{messages}[0]{type}, 'error', 'unknown type: error');
is($r->{messages}[0]{code}, 'unknown_type', 'unknown type: unknown_type');

$r = talk(send => ['{"v":1,"type":', '[1,2]', '{"v":2,"type":"echo"}',
                   '{"v":1}'],
          expect => 4);
is_deeply([map { $_->{code} } @{ $r->{messages} }],
          [('bad_message') x 4],
          'invalid JSON, not an object, v 2, no type: bad_message');

my $echo_head = '{"v":1,"type":"echo","data":"';

$r = talk(send => [{ text => $echo_head . "\xc3\x28\"}" }]);
is($r->{code}, 1007, 'invalid UTF-8: close 1007');

$r = talk(send => [{ text => $echo_head . "\xed\xa0\x80\"}" }]);
is($r->{code}, 1007, 'UTF-8 surrogate: close 1007');

$r = talk(send => [encode_json({ v => 1, type => 'echo',
                                 data => 'x' x (70 * 1024) })]);
is($r->{code}, 1009, 'message over 64k: close 1009');

$r = talk(send => [encode_json({ v => 1, type => 'echo',
                                 data => 'x' x (60 * 1024) })],
          expect => 1);
is(length($r->{messages}[0]{data} // ''), 60 * 1024,
   'message under 64k echoed');

$r = talk(send => [{ binary => "\x00\x01" }]);
is($r->{code}, 1003, 'binary message: close 1003');

# a text message in three frames, with a ping between them
$h = handshake();
send_frame($h->{sock}, 1, '{"v":1,"ty', fin => 0);
send_frame($h->{sock}, 0, 'pe":"echo","data":"fr', fin => 0);
send_frame($h->{sock}, 9, 'hello?');
send_frame($h->{sock}, 0, 'agments"}', fin => 1);
$f = read_frame($h->{sock});
is(ref $f && $f->{opcode}, 10, 'ping between fragments answered first');
is(ref $f && $f->{payload}, 'hello?', 'pong carries the ping\'s data');
$f = read_frame($h->{sock});
is_deeply(ref $f ? decode_json($f->{payload}) : $f,
          { v => 1, type => 'echo', data => 'fragments' },
          'fragmented message reassembled');
close $h->{sock};

# An idle connection gives wslay's context back and makes a new one when
# bytes come: never while a message or a frame is half received.  The
# same messages, slowly: fragments apart, and frames byte by byte.
$h = handshake();
send_frame($h->{sock}, 1, '{"v":1,"ty', fin => 0);
sleep 0.3;
send_frame($h->{sock}, 0, 'pe":"echo","data":"sl', fin => 0);
sleep 0.3;
send_frame($h->{sock}, 9, 'idle?');
sleep 0.3;
send_frame($h->{sock}, 0, 'ow"}', fin => 1);
$f = read_frame($h->{sock});
is(ref $f && $f->{payload}, 'idle?', 'slow fragments: the ping answered');
$f = read_frame($h->{sock});
is_deeply(ref $f ? decode_json($f->{payload}) : $f,
          { v => 1, type => 'echo', data => 'slow' },
          'slow fragments: the message reassembled');

# the next data frame; the server's pings on the way are answered
sub read_data {
    my ($s) = @_;

    for (1 .. 10) {
        my $f = read_frame($s, 3);
        return $f unless ref $f && $f->{opcode} == 9;
        send_frame($s, 10, $f->{payload});
    }

    return 'only pings';
}

for my $len (10, 300) {
    my $data = 'b' x $len;
    my $bytes = frame(1, qq{{"v":1,"type":"echo","data":"$data"}});

    for my $byte (split //, $bytes) {
        syswrite($h->{sock}, $byte);
        sleep 0.002;
    }

    $f = read_data($h->{sock});
    is(ref $f && $f->{opcode} == 1 ? decode_json($f->{payload})->{data} : $f,
       $data, "a frame byte by byte, $len bytes of data: echoed");
}

close $h->{sock};

# a length in a longer form than needed breaks RFC 6455 (5.2): the
# connection is failed (7.1.7: a close frame is optional)
$h = handshake();
my $long = '{"v":1,"type":"echo","data":"long"}';
my $mask = "\x01\x02\x03\x04";
syswrite($h->{sock}, "\x81" . chr(0x80 | 126) . pack('n', length $long)
                     . $mask . ($long ^ substr($mask x 16, 0, length $long)));
$f = read_data($h->{sock});
like(ref $f ? $f->{opcode} . ' ' . unpack('n', $f->{payload}) : $f,
     qr/^(8 1002|eof)$/,
     'a length in a longer form than needed: the connection is failed');
close $h->{sock};

# flood: 20 messages a second, 40 at once
$r = talk(send => [map { encode_json({ v => 1, type => 'echo', data => $_ }) }
                   1 .. 150]);
my @echo = grep { $_->{type} eq 'echo' } @{ $r->{messages} };
my @limited = grep { ($_->{code} // '') eq 'rate_limited' } @{ $r->{messages} };
ok(@echo >= 40 && @echo < 150, 'flood: the burst answered, not all');
is(scalar(@limited), 1, 'flood: one rate_limited error');
is($r->{code}, 1008, 'flood: close 1008');

# pings count toward the same limit: each costs a pong
$h = handshake();
syswrite($h->{sock}, join '', map { frame(9, "p$_") } 1 .. 150);
my @frames = read_until_close($h->{sock});
my @pongs = grep { ref $_ && $_->{opcode} == 10 } @frames;
ok(@pongs >= 40 && @pongs < 150, 'ping flood: the burst answered, not all');
is(scalar(grep { ref $_ && $_->{opcode} == 1
                 && (eval { decode_json($_->{payload})->{code} } // '')
                    eq 'rate_limited' } @frames),
   1, 'ping flood: one rate_limited error');
is(close_code($frames[-1]), 1008, 'ping flood: close 1008');
close $h->{sock};

###############################################################################

# Pings (interval 1s here).

$r = talk(after => sub {
    my ($tx) = @_;
    Mojo::IOLoop->timer(3.5 => sub {
        $tx->send(encode_json({ v => 1, type => 'echo', data => 'alive' }));
    });
}, expect => 1);
is($r->{messages}[0]{data}, 'alive',
   'a client that answers pings stays connected');

$h = handshake();
@frames = read_until_close($h->{sock});
ok((grep { ref $_ && $_->{opcode} == 9 } @frames), 'server pings');
is($frames[-1], 'eof', 'a client that does not answer pings is dropped');

###############################################################################

# A peer that sends and never reads is dropped, not buffered for.

$h = handshake(port => $t->port('PORT2'));
is($h->{status}, 101, 'backpressure: handshake');
{
    my $s = $h->{sock};
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, 4096);
    $s->blocking(0);

    my $msg = frame(1, encode_json({ v => 1, type => 'echo',
                                     data => 'y' x (32 * 1024) }));
    my $sel = IO::Select->new($s);
    my ($sent, $failed) = (0, 0);
    my $deadline = time() + 30;

    SEND: while ($sent < 64 * 1024 * 1024 && time() < $deadline) {
        my $off = 0;

        while ($off < length $msg) {
            last SEND if time() >= $deadline;
            next unless $sel->can_write(1);

            my $n = syswrite($s, $msg, length($msg) - $off, $off);

            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                $failed = 1;
                last SEND;
            }

            $off += $n;
        }

        $sent += length $msg;
    }

    ok($failed, 'a client that never reads is dropped');
    close $s;
}

###############################################################################

# A reload closes every WebSocket with 1001 and old workers exit.

my @old = $t->worker_pids;
my @socks = map { handshake()->{sock} } 1 .. 4;

# two answer the close, two do not
$t->reload;

for my $i (0 .. $#socks) {
    my @fr = read_until_close($socks[$i]);
    is(close_code($fr[-1]), 1001, "reload: WebSocket $i gets close 1001");
    if ($i % 2) {
        send_frame($socks[$i], 8, pack('n', 1001));
        is(read_frame($socks[$i]), 'eof', "reload: WebSocket $i closed");
    }
}

my $gone;
for (1 .. 100) {
    $gone = !grep { kill 0, $_ } @old;
    last if $gone;
    sleep 0.1;
}
ok($gone, 'old workers exit');

close $_ for @socks;

# the new workers serve
$r = talk(send => ['{"v":1,"type":"echo","data":"after"}'], expect => 1);
is($r->{messages}[0]{data}, 'after', 'echo after the reload');

$t->stop;

done_testing();
