package Teleclinic::WS;

# A synchronous WebSocket client for tests of the waiting room and the
# call: each client keeps the JSON messages it got in a queue, and a
# test waits for the one it wants while the others stay queued.  Every
# client runs on Mojo::IOLoop's singleton, so waiting on one client also
# delivers the messages of all the others.
#
#   use FindBin; use lib "$FindBin::Bin/lib";
#   use Teleclinic::WS;
#
#   my $ws = Teleclinic::WS->connect($t->url('/ws'));   # dies on failure
#   $ws->send_json({ type => 'hello', token => $token });  # v => 1 added
#   my $m = $ws->recv_json(type => 'welcome', timeout => 10);
#   my $q = $ws->recv_json(type => 'queue',
#                          match => sub { $_[0]{position} == 1 });
#   my @late = $ws->quiet(1, type => 'signal');  # what came within 1 s
#   $ws->close(1000);                            # the server's close code
#   $ws->drop;                                   # TCP gone, no close frame
#   my $pid = $ws->worker_pid($t->worker_pids);  # nginx worker holding it
#
# connect($url, timeout => 10, headers => {...}) returns the client or
#   dies (with the HTTP status when the server refused the upgrade).
# send_json($hash) sends it as a text frame (adds v => 1 unless there);
#   send_text($bytes), send_binary($bytes) send raw payloads.
# recv_json(type => T, match => CODE, timeout => S) removes and returns
#   the first queued message of that type for which CODE is true, pumping
#   the event loop until it arrives; undef after the timeout (default 10)
#   or when the connection closed without it.  Without type: any message.
#   call => ID: only a message whose "call" is ID.
# hello($token, %fields) sends hello and returns the welcome or error.
# pending(type => T) the queued messages (of type T), left queued.
# take(type => T) removes and returns the queued messages (of type T).
# quiet($seconds, type => T) pumps for $seconds, then take(type => T).
# closed() the close code once the connection is over (1006 when it
#   ended without a close frame), else undef; close_reason().
# wait_closed($timeout) pumps until closed; the code or undef.
# close($code) sends a close frame, waits for the end; the code the
#   server answered (or 1006).
# drop() ends the TCP connection without a close frame (a lost network).
# worker_pid(@pids) which of these pids (nginx workers) holds the server
#   end of this connection: the client's port is found in /proc/net/tcp
#   (and tcp6) as the remote port of the server's socket, and that
#   socket's inode among the links in /proc/PID/fd.
#
# Functions: pump($seconds) runs the event loop for that long;
# pump_until(CODE, $timeout) until CODE is true (1) or the timeout (0).

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use List::Util qw(min);
use Mojo::IOLoop;
use Mojo::JSON qw(decode_json encode_json);
use Mojo::UserAgent;
use Scalar::Util qw(weaken);
use Time::HiRes qw(time);

our @EXPORT_OK = qw(pump pump_until);

our $TIMEOUT = 10;

# kept for the whole test: a temporary UserAgent silently hangs
my $UA;

sub ua {
    return $UA //= do {
        my $ua = Mojo::UserAgent->new;
        $ua->connect_timeout($TIMEOUT);
        $ua->request_timeout($TIMEOUT);

        # the server pings; an idle waiting patient is not a dead one
        $ua->inactivity_timeout(0);
        $ua;
    };
}


###############################################################################

sub pump_until {
    my ($cond, $timeout) = @_;

    my $deadline = time + ($timeout // $TIMEOUT);

    until ($cond->()) {
        my $left = $deadline - time;
        return 0 if $left <= 0;

        # a timer makes one_tick return even when nothing else happens
        my $id = Mojo::IOLoop->timer(min($left, 0.05) => sub { });
        Mojo::IOLoop->one_tick;
        Mojo::IOLoop->remove($id);
    }

    return 1;
}

sub pump {
    my ($seconds) = @_;

    my $end = time + $seconds;
    pump_until(sub { time >= $end }, $seconds + 1);

    return;
}


###############################################################################

sub connect {
    my ($class, $url, %opts) = @_;

    my $self = bless { url => $url, queue => [] }, $class;
    my $weak = $self;
    weaken($weak);

    my ($done, $error);

    ua()->websocket($url => $opts{headers} // {} => sub {
        my ($ua, $tx) = @_;

        $done = 1;

        unless ($tx->is_websocket) {
            my $err = $tx->error // {};
            $error = $tx->res->code
                     ? 'HTTP ' . $tx->res->code . ' ' . ($tx->res->body // '')
                     : ($err->{message} // 'no answer');
            return;
        }

        $tx->max_websocket_size(16 * 1024 * 1024);

        $tx->on(text => sub {
            my ($tx, $bytes) = @_;
            return unless $weak;
            my $m = eval { decode_json($bytes) };
            push @{ $weak->{queue} },
                ref $m eq 'HASH' ? $m : { type => '_not_json', raw => $bytes };
        });

        $tx->on(binary => sub {
            my ($tx, $bytes) = @_;
            push @{ $weak->{queue} }, { type => '_binary', raw => $bytes }
                if $weak;
        });

        $tx->on(finish => sub {
            my ($tx, $code, $reason) = @_;
            return unless $weak;
            $weak->{closed} = $code // 1006;
            $weak->{close_reason} = $reason;
            delete $weak->{tx};
        });

        $weak->{tx} = $tx if $weak;
        $weak->{local_port} = $tx->local_port if $weak;
        $weak->{remote_port} = $tx->remote_port if $weak;
    });

    pump_until(sub { $done }, $opts{timeout} // $TIMEOUT)
        or croak "websocket $url: no handshake within "
                 . ($opts{timeout} // $TIMEOUT) . ' s';

    croak "websocket $url: $error" if $error;

    return $self;
}

sub local_port { $_[0]->{local_port} }
sub remote_port { $_[0]->{remote_port} }
sub closed { $_[0]->{closed} }
sub close_reason { $_[0]->{close_reason} }

sub send_text {
    my ($self, $bytes) = @_;

    my $tx = $self->{tx} or return 0;
    $tx->send({ text => $bytes });
    return 1;
}

sub send_binary {
    my ($self, $bytes) = @_;

    my $tx = $self->{tx} or return 0;
    $tx->send({ binary => $bytes });
    return 1;
}

sub send_json {
    my ($self, $m) = @_;

    $m = { v => 1, %$m } unless exists $m->{v};
    return $self->send_text(encode_json($m));
}

sub hello {
    my ($self, $token, %fields) = @_;

    $self->send_json({ type => 'hello', token => $token, %fields });

    return $self->recv_json(match => sub {
        $_[0]{type} eq 'welcome' || $_[0]{type} eq 'error'
    });
}

sub _find {
    my ($self, $type, $match, $call) = @_;

    my $q = $self->{queue};

    for my $i (0 .. $#$q) {
        next if defined $type && ($q->[$i]{type} // '') ne $type;
        next if defined $call && ($q->[$i]{call} // '') ne $call;
        next if $match && !$match->($q->[$i]);
        return splice @$q, $i, 1;
    }

    return undef;
}

sub recv_json {
    my ($self, %opts) = @_;

    my $found;

    pump_until(sub {
        $found = $self->_find($opts{type}, $opts{match}, $opts{call});
        return 1 if $found;

        # nothing more can come once it is closed
        return defined $self->{closed};
    }, $opts{timeout} // $TIMEOUT);

    return $found;
}

sub pending {
    my ($self, %opts) = @_;

    return grep { !defined $opts{type} || ($_->{type} // '') eq $opts{type} }
           @{ $self->{queue} };
}

sub take {
    my ($self, %opts) = @_;

    my (@taken, @kept);

    for my $m (@{ $self->{queue} }) {
        if (!defined $opts{type} || ($m->{type} // '') eq $opts{type}) {
            push @taken, $m;
        } else {
            push @kept, $m;
        }
    }

    $self->{queue} = \@kept;

    return @taken;
}

sub quiet {
    my ($self, $seconds, %opts) = @_;

    pump($seconds);

    return $self->take(%opts);
}

sub wait_closed {
    my ($self, $timeout) = @_;

    pump_until(sub { defined $self->{closed} }, $timeout // $TIMEOUT);

    return $self->{closed};
}

sub close {
    my ($self, $code) = @_;

    if (my $tx = $self->{tx}) {
        $tx->finish($code // 1000);
    }

    return $self->wait_closed;
}

sub drop {
    my ($self) = @_;

    my $tx = $self->{tx} or return;
    my $stream = Mojo::IOLoop->stream($tx->connection);

    $stream->close if $stream;

    # the finish event comes on the next turns of the loop
    $self->wait_closed(2);
    $self->{closed} //= 1006;
    delete $self->{tx};

    return;
}


###############################################################################

# the inode of the server's end of this connection
sub server_inode {
    my ($self) = @_;

    my ($lport, $rport) = ($self->{local_port}, $self->{remote_port});
    return undef unless $lport && $rport;

    for my $file ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $file or next;
        <$fh>;

        while (my $line = <$fh>) {
            my @f = split ' ', $line;
            my ($local) = $f[1] =~ /:([0-9A-F]+)$/ or next;
            my ($remote) = $f[2] =~ /:([0-9A-F]+)$/ or next;

            # the server's socket: our port is its remote port
            next unless hex($local) == $rport && hex($remote) == $lport;
            next unless $f[9];

            CORE::close $fh;
            return $f[9];
        }

        CORE::close $fh;
    }

    return undef;
}

sub worker_pid {
    my ($self, @pids) = @_;

    my $inode = $self->server_inode or return undef;
    my $want = "socket:[$inode]";

    for my $pid (@pids) {
        opendir my $dh, "/proc/$pid/fd" or next;

        for my $fd (readdir $dh) {
            next unless $fd =~ /^\d+$/;
            my $link = readlink "/proc/$pid/fd/$fd" // next;

            if ($link eq $want) {
                closedir $dh;
                return $pid;
            }
        }

        closedir $dh;
    }

    return undef;
}

sub DESTROY {
    my ($self) = @_;

    local ($@, $!, $?);

    if (my $tx = $self->{tx}) {
        my $stream = Mojo::IOLoop->stream($tx->connection);
        $stream->close if $stream;
    }
}

1;
