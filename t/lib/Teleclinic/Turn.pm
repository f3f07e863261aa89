package Teleclinic::Turn;

# A small TURN client (RFC 8656) for the tests, built from the RFC by
# hand: STUN messages with REST-style long-term credentials, over UDP,
# TCP or TLS.
#
#   my $c = Teleclinic::Turn->new(port => $port, secret => 'S',
#                                 proto => 'udp');   # or tcp, tls
#   my $r = $c->allocate;                  # 401 round trip included
#   $r->{code}                             # 0 for success, or the error
#   $c->relayed                            # "ip:port" of the allocation
#   $r = $c->request(0x008, peer('127.0.0.1', 5000));  # CreatePermission
#   $c->send_channel(0x4000, 'data');
#   my ($ch, $data) = $c->recv_channel;
#
# Functions: attr, peer_attr, lifetime_attr, rest_username, parse,
# message, tid, and peer_socket (a UDP socket on 127.0.0.2 for a test's
# own peer: the relay, on 127.0.0.1, refuses its own address as a peer
# outside its relay ports).  Each client has its own username unless
# given one, as each participant of a call has.

use strict;
use warnings;

use Exporter qw(import);
use Compress::Zlib qw(crc32);
use Digest::MD5 qw(md5);
use Digest::SHA qw(hmac_sha1);
use IO::Select;
use IO::Socket::IP;
use MIME::Base64 qw(encode_base64);
use Socket qw(inet_aton inet_ntoa inet_pton AF_INET6);

our @EXPORT_OK = qw(attr peer_attr lifetime_attr rest_username parse
                    message tid peer_socket);

our $COOKIE = 0x2112A442;
our $WAIT = 3;

my $clients = 0;

our %METHOD = (allocate => 0x003, refresh => 0x004, send => 0x006,
               data => 0x007, permission => 0x008, channel_bind => 0x009);

sub tid { pack 'N3', map { int rand 2**32 } 1 .. 3 }

sub attr {
    my ($type, $value) = @_;
    my $pad = (4 - length($value) % 4) % 4;
    return pack('nn', $type, length $value) . $value . "\0" x $pad;
}

sub message {
    my ($type, $tid, @attrs) = @_;
    my $body = join '', @attrs;
    return pack('nnN', $type, length $body, $COOKIE) . $tid . $body;
}

# XOR-PEER-ADDRESS of an IPv4 address, or of an IPv6 one (which is
# XORed with the transaction id too)
sub peer_attr {
    my ($ip, $port, $tid) = @_;

    if ($ip =~ /:/) {
        my $key = pack('N', $COOKIE) . ($tid // "\0" x 12);
        return attr(0x0012, pack('xCn', 2, $port ^ ($COOKIE >> 16))
                            . (inet_pton(AF_INET6, $ip) ^ $key));
    }

    return attr(0x0012, pack('xCnN', 1, $port ^ ($COOKIE >> 16),
                             unpack('N', inet_aton($ip)) ^ $COOKIE));
}

sub lifetime_attr { attr(0x000D, pack 'N', $_[0]) }

sub peer_socket {
    my ($ip) = @_;
    my $s = IO::Socket::IP->new(LocalHost => $ip // '127.0.0.2',
                                LocalPort => 0, Proto => 'udp')
        or die "peer socket: $@";
    return $s;
}

sub rest_username {
    my ($expiry, $name) = @_;
    return $expiry . ':' . ($name // 'test');
}

# { type, method, class, tid, code, attrs => { type => [values] } }
sub parse {
    my ($bytes) = @_;

    return undef if !defined $bytes || length $bytes < 20;

    my ($type, $len, $cookie) = unpack 'nnN', $bytes;
    return undef if $cookie != $COOKIE || 20 + $len != length $bytes;

    my %m = (type => $type, tid => substr($bytes, 8, 12), attrs => {},
             bytes => $bytes);
    $m{method} = ($type & 0x000f) | (($type & 0x00e0) >> 1)
                 | (($type & 0x3e00) >> 2);
    $m{class} = $type & 0x0110;

    my $pos = 20;
    while ($pos + 4 <= length $bytes) {
        my ($at, $al) = unpack 'nn', substr $bytes, $pos, 4;
        push @{ $m{attrs}{$at} }, substr $bytes, $pos + 4, $al;
        $m{mi_at} = $pos if $at == 0x0008;
        $pos += 4 + $al + (4 - $al % 4) % 4;
    }

    my $ec = $m{attrs}{0x0009}[0];
    if (defined $ec) {
        my ($class, $number) = unpack 'xxCC', $ec;
        $m{code} = ($class & 7) * 100 + $number;
    } else {
        $m{code} = 0;
    }

    return \%m;
}

# "ip:port" from an XOR address attribute value (IPv4)
sub xor_addr {
    my ($v) = @_;
    return '' unless defined $v;
    my ($family, $xport, $xaddr) = unpack 'xCnN', $v;
    return "family $family" if $family != 1;
    return inet_ntoa(pack 'N', $xaddr ^ $COOKIE) . ':'
           . ($xport ^ ($COOKIE >> 16));
}

###############################################################################

sub new {
    my ($class, %o) = @_;

    my $self = bless {
        host     => $o{host} // '127.0.0.1',
        port     => $o{port},
        proto    => $o{proto} // 'udp',
        secret   => $o{secret},
        username => $o{username}
                    // rest_username(time + 3600, 'test' . ++$clients),
        realm    => undef,
        nonce    => undef,
        buf      => '',
    }, $class;

    $self->connect;

    return $self;
}

sub connect {
    my ($self) = @_;

    if ($self->{proto} eq 'tls') {
        require IO::Socket::SSL;
        $self->{s} = IO::Socket::SSL->new(
            PeerHost => $self->{host}, PeerPort => $self->{port},
            SSL_verify_mode => 0,
        ) or die "tls connect: $IO::Socket::SSL::SSL_ERROR";
    } else {
        $self->{s} = IO::Socket::IP->new(
            PeerHost => $self->{host}, PeerPort => $self->{port},
            Proto => $self->{proto} eq 'udp' ? 'udp' : 'tcp',
        ) or die "$self->{proto} connect: $@";
    }

    $self->{s}->blocking(0) if $self->{proto} eq 'tls';
    $self->{buf} = '';
}

sub socket { $_[0]->{s} }
sub local_port { $_[0]->{s}->sockport }
sub username { $_[0]->{username} }

sub password {
    my ($self, $secret, $username) = @_;
    return encode_base64(hmac_sha1($username // $self->{username},
                                   $secret // $self->{secret}), '');
}

sub key {
    my ($self, $secret) = @_;
    return md5(join ':', $self->{username}, $self->{realm} // '',
               $self->password($secret));
}

sub raw_send {
    my ($self, $bytes) = @_;

    if ($self->{proto} eq 'udp') {
        $self->{s}->send($bytes);
    } else {
        my $off = 0;
        while ($off < length $bytes) {
            my $n = syswrite $self->{s}, $bytes, length($bytes) - $off, $off;
            if (!defined $n) {
                IO::Select->new($self->{s})->can_write(1);
                next;
            }
            $off += $n;
        }
    }
}

# the next datagram, or the next framed message of the stream (STUN or
# ChannelData); undef when nothing comes within $wait seconds
sub raw_recv {
    my ($self, $wait) = @_;

    $wait //= $WAIT;
    my $s = $self->{s};

    if ($self->{proto} eq 'udp') {
        return undef unless IO::Select->new($s)->can_read($wait);
        my $buf;
        return defined $s->recv($buf, 65536) ? $buf : undef;
    }

    my $deadline = time + $wait;

    while (1) {
        my $b = \$self->{buf};

        if (length $$b >= 4) {
            my ($first, $len) = unpack 'nn', $$b;
            my $need = ($first & 0xc000) == 0x4000
                       ? 4 + $len + (4 - $len % 4) % 4
                       : 20 + $len;
            return substr($$b, 0, $need, '') if length $$b >= $need;
        }

        my $pending = $self->{proto} eq 'tls' && $s->pending;
        if (!$pending) {
            my $left = $deadline - time;
            return undef if $left <= 0;
            return undef unless IO::Select->new($s)->can_read($left);
        }

        my $n = sysread $s, $$b, 65536, length $$b;
        next if !defined $n && $self->{proto} eq 'tls';
        return undef unless $n;
    }
}

# a request; with credentials once a realm and nonce are known (or when
# asked), with MESSAGE-INTEGRITY and FINGERPRINT; returns the parsed
# answer to this transaction (other messages are skipped)
sub request {
    my ($self, $method, @attrs) = @_;

    my %o;
    %o = %{ pop @attrs } if @attrs && ref $attrs[-1] eq 'HASH';

    my $tid = $o{tid} // tid();
    my $bytes = $self->build($method, $tid, \@attrs, %o);

    $self->raw_send($bytes);

    my $deadline = time + $WAIT;
    while (time < $deadline) {
        my $m = parse($self->raw_recv($deadline - time));
        return undef unless $m;
        next unless $m->{tid} eq $tid;
        if ($m->{code} == 401 || $m->{code} == 438) {
            $self->{realm} = $m->{attrs}{0x0014}[0];
            $self->{nonce} = $m->{attrs}{0x0015}[0];
        }
        return $m;
    }

    return undef;
}

sub build {
    my ($self, $method, $tid, $attrs, %o) = @_;

    my @a = @$attrs;
    my $auth = exists $o{auth} ? $o{auth} : defined $self->{nonce};

    if ($auth) {
        push @a, attr(0x0006, $o{username} // $self->{username});
        push @a, attr(0x0014, $o{realm} // $self->{realm});
        push @a, attr(0x0015, $o{nonce} // $self->{nonce});
    }

    my $msg = message($method, $tid, @a);

    if ($auth) {
        my $key = $o{key} // md5(join ':', $o{username} // $self->{username},
                                 $o{realm} // $self->{realm},
                                 $self->password($o{secret},
                                                 $o{username}));
        substr($msg, 2, 2) = pack 'n', length($msg) - 20 + 24;
        $msg .= attr(0x0008, hmac_sha1($msg, $key));
    }

    substr($msg, 2, 2) = pack 'n', length($msg) - 20 + 8;
    $msg .= attr(0x8028, pack 'N', crc32($msg) ^ 0x5354554e);

    return $msg;
}

# true when the answer's MESSAGE-INTEGRITY matches our key
sub integrity_ok {
    my ($self, $m) = @_;

    my $at = $m->{mi_at};
    return 0 unless defined $at;

    my $msg = substr $m->{bytes}, 0, $at;
    substr($msg, 2, 2) = pack 'n', $at - 20 + 24;

    return hmac_sha1($msg, $self->key) eq $m->{attrs}{0x0008}[0];
}

# Allocate with the 401 round trip; the answer to the last request
sub allocate {
    my ($self, @attrs) = @_;

    my @req = (attr(0x0019, pack 'Cx3', 17), @attrs);

    my $m = $self->request(0x003, @req, { auth => 0 });
    return $m unless $m && $m->{code} == 401;

    $m = $self->request(0x003, @req);

    if ($m && $m->{code} == 0) {
        $self->{relayed} = xor_addr($m->{attrs}{0x0016}[0]);
        $self->{lifetime} = unpack 'N', $m->{attrs}{0x000D}[0] // "\0" x 4;
    }

    return $m;
}

sub relayed { $_[0]->{relayed} }
sub lifetime { $_[0]->{lifetime} }

sub permission {
    my ($self, @peers) = @_;
    my $tid = tid();
    return $self->request(0x008, (map { peer_attr(@$_, $tid) } @peers),
                          { tid => $tid });
}

sub channel_bind {
    my ($self, $channel, $ip, $port) = @_;
    my $tid = tid();
    return $self->request(0x009, attr(0x000C, pack 'nx2', $channel),
                          peer_attr($ip, $port, $tid), { tid => $tid });
}

sub refresh {
    my ($self, @lifetime) = @_;
    return $self->request(0x004, map { lifetime_attr($_) } @lifetime);
}

sub send_indication {
    my ($self, $ip, $port, $data) = @_;
    $self->raw_send(message(0x0016, tid(), peer_attr($ip, $port),
                            attr(0x0013, $data)));
}

sub send_channel {
    my ($self, $channel, $data) = @_;
    my $frame = pack('nn', $channel, length $data) . $data;
    $frame .= "\0" x ((4 - length($data) % 4) % 4)
        if $self->{proto} ne 'udp';
    $self->raw_send($frame);
}

# the next relayed data: (channel or "peer ip:port", data), or ()
sub recv_data {
    my ($self, $wait) = @_;

    my $deadline = time + ($wait // $WAIT);

    while (time < $deadline) {
        my $bytes = $self->raw_recv($deadline - time);
        return () unless defined $bytes;

        my ($first, $len) = unpack 'nn', $bytes;

        if (($first & 0xc000) == 0x4000) {
            return ($first, substr $bytes, 4, $len);
        }

        my $m = parse($bytes) or next;
        next unless $m->{type} == 0x0017;

        return (xor_addr($m->{attrs}{0x0012}[0]), $m->{attrs}{0x0013}[0]);
    }

    return ();
}

1;
