package Teleclinic::Gateway;

# A messaging gateway for the tests: a small HTTP server in a forked child
# that records every request it gets (headers and body) as one JSON line
# in a file, and answers 200, or fails the first requests as told.
#
#   use Teleclinic::Gateway;
#
#   my $gw = Teleclinic::Gateway->new(port => $t->port('PORT2'),
#                                     log => $t->prefix . '/gateway.log');
#   $gw->start;                        # bound and listening on return
#   $gw->start(fail => [500, 'close']);  # 1st request 500, 2nd: closed
#                                      # without an answer, then 200
#   my @r = $gw->requests;             # every request recorded so far,
#       # { n, answer (200|500|'close'), method, path, headers (names in
#       #   lower case), body (bytes), json (decoded body or undef) }
#   my $r = $gw->wait_for(sub { grep { ... } @_ }, 10);  # poll; undef
#   $gw->stop;                         # TERM the child by pid, reap it
#
# The log file lives on across stop/start, so it holds every request the
# gateway has ever recorded.

use strict;
use warnings;

use Carp qw(croak);
use IO::Select;
use IO::Socket::IP;
use JSON::PP;
use POSIX ();
use Scalar::Util qw(weaken);
use Time::HiRes qw(sleep time);

my @instances;

sub new {
    my ($class, %opts) = @_;

    croak 'port needed' unless $opts{port};
    croak 'log needed' unless $opts{log};

    my $self = bless {
        port  => $opts{port},
        log   => $opts{log},
        owner => $$,
    }, $class;

    push @instances, $self;
    weaken($instances[-1]);

    return $self;
}

sub port { $_[0]->{port} }
sub is_running { defined $_[0]->{pid} }

sub start {
    my ($self, %opts) = @_;

    croak "gateway already running (pid $self->{pid})" if $self->{pid};

    my @fail = @{ $opts{fail} // [] };

    # bound in the parent: the port listens once start returns
    my $ls = IO::Socket::IP->new(
        LocalHost => '127.0.0.1',
        LocalPort => $self->{port},
        Proto     => 'tcp',
        Listen    => 128,
        ReuseAddr => 1,
    ) or croak "gateway: cannot listen on $self->{port}: $@";

    my $pid = fork;
    croak "fork: $!" unless defined $pid;

    if ($pid == 0) {
        $SIG{TERM} = sub { POSIX::_exit(0) };
        $SIG{PIPE} = 'IGNORE';

        eval { serve($ls, $self->{log}, \@fail) };

        print STDERR "gateway: $@" if $@;

        # no END blocks of the test in the child
        POSIX::_exit(0);
    }

    close $ls;
    $self->{pid} = $pid;

    return $self;
}

sub stop {
    my ($self) = @_;

    my $pid = delete $self->{pid} or return;
    return unless $$ == $self->{owner};

    kill 'TERM', $pid;
    waitpid($pid, 0);
}

sub serve {
    my ($ls, $log, $fail) = @_;

    my $json = JSON::PP->new->ascii->canonical;
    my $n = 0;

    open my $fh, '>>', $log or die "open $log: $!";
    binmode $fh;

    for (;;) {
        my $c = $ls->accept or next;
        binmode $c;

        my $req = read_request($c);

        # a client that sent nothing complete gets nothing
        unless ($req) {
            close $c;
            next;
        }

        my $answer = @$fail ? shift @$fail : 200;

        $req->{n} = ++$n;
        $req->{answer} = $answer;

        # recorded before the answer: an accepted message is on file
        # before the module can see the 200
        syswrite $fh, $json->encode($req) . "\n";

        if ($answer ne 'close') {
            my $text = $answer == 200 ? 'OK' : 'Failed';
            print $c "HTTP/1.1 $answer $text\r\n"
                     . "Content-Length: 0\r\nConnection: close\r\n\r\n";
        }

        close $c;
    }
}

sub read_request {
    my ($c) = @_;

    my $sel = IO::Select->new($c);
    my $buf = '';
    my ($head, $len);
    my $deadline = time + 5;

    for (;;) {
        if (!defined $head && $buf =~ /\r\n\r\n/) {
            ($head, $buf) = split /\r\n\r\n/, $buf, 2;
            ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
            $len //= 0;
        }

        last if defined $head && length $buf >= $len;

        my $left = $deadline - time;
        return undef if $left <= 0 || !$sel->can_read($left);

        my $got = sysread $c, $buf, 65536, length $buf;
        return undef unless $got;
    }

    my ($line, @lines) = split /\r\n/, $head;
    my ($method, $path) = split ' ', $line;
    my %headers;

    for (@lines) {
        my ($name, $value) = /^([^:]+):\s*(.*)$/ or next;
        $headers{ lc $name } = $value;
    }

    return {
        method  => $method,
        path    => $path,
        headers => \%headers,
        body    => substr($buf, 0, $len),
    };
}

sub requests {
    my ($self) = @_;

    open my $fh, '<', $self->{log} or return ();
    binmode $fh;

    my $json = JSON::PP->new;
    my @r;

    while (my $line = <$fh>) {
        # a line still being written is not a request yet
        last unless $line =~ /\n$/;

        my $r = $json->decode($line);
        $r->{json} = eval { JSON::PP->new->utf8->decode($r->{body}) };
        push @r, $r;
    }

    close $fh;

    return @r;
}

# polls until $check->(@requests) returns true; returns what it returned
sub wait_for {
    my ($self, $check, $timeout) = @_;

    my $deadline = time + ($timeout // 10);

    for (;;) {
        my $res = $check->($self->requests);
        return $res if $res;
        return undef if time > $deadline;
        sleep 0.1;
    }
}

sub DESTROY {
    my ($self) = @_;

    local ($?, $!, $@);
    $self->stop;
}

END {
    local ($?, $!, $@);

    for my $gw (grep { defined } @instances) {
        $gw->stop;
    }
}

1;
