package Teleclinic::Redis;

# Real redis-server and redis-sentinel processes for the tests of several
# nodes, each on a free port in a temporary directory, stopped by pid at
# the end (also when a test dies half way).
#
#   use Teleclinic::Redis;
#   my $redis = Teleclinic::Redis->new;           # a server, started
#   $redis->port;  $redis->command('XLEN', $key); # a string, an array
#                                                 # ref, or undef
#   $redis->stop;  $redis->start;                 # the same port again
#   my $s = Teleclinic::Redis->new(sentinel => "sentinel monitor ...\n");
#
# new(%opts): port (a free one), args ([...] more redis-server arguments),
#   sentinel (conf text: a Sentinel instead of a server), start (1).
# command(@argv) one command on a fresh connection.
# wait_for($cond, $what [, $seconds]) polls $cond every 0.1 s (10 s),
#   dies with $what.
# sentinel_group(%opts) a master, its replica and three Sentinels that
#   watch it as "tc" (quorum 2, down after 1 s), in sync and known to
#   each other: ($master, $replica, @sentinels).  opts: args (of both
#   servers).

use strict;
use warnings;

use Carp qw(croak);
use File::Temp qw(tempdir);
use IO::Socket::IP;
use POSIX ();
use Time::HiRes qw(sleep time);

use Teleclinic::Test;

our $SERVER = '/usr/bin/redis-server';

my $DIR;
my %running;    # pid => 1, for the END block

END {
    kill 'KILL', keys %running if %running;
    waitpid($_, 0) for keys %running;
}

sub available { -x $SERVER }

sub new {
    my ($class, %opts) = @_;

    $DIR //= tempdir('teleclinic-redis-XXXXXX', TMPDIR => 1,
                     CLEANUP => !$ENV{TELECLINIC_KEEP});

    my $self = bless {
        port     => $opts{port} // Teleclinic::Test::free_port(),
        args     => $opts{args} // [],
        sentinel => $opts{sentinel},
    }, $class;

    $self->start unless defined $opts{start} && !$opts{start};

    return $self;
}

sub port { $_[0]->{port} }
sub pid { $_[0]->{pid} }
sub dir { $DIR }

sub start {
    my ($self) = @_;

    my $port = $self->{port};
    my @args;

    if (defined $self->{sentinel}) {
        my $conf = "$DIR/sentinel-$port.conf";
        open my $fh, '>', $conf or croak "$conf: $!";
        print $fh "port $port\nbind 127.0.0.1\ndir $DIR\n$self->{sentinel}";
        close $fh;

        # Sentinel rewrites its conf file: it must be its own
        @args = ($conf, '--sentinel');

    } else {
        @args = ('--port', $port, '--bind', '127.0.0.1', '--save', '',
                 '--appendonly', 'no', '--dir', $DIR,
                 '--dbfilename', "dump-$port.rdb", @{ $self->{args} });
    }

    my $pid = fork // croak "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$DIR/redis-$port.log";
        open STDERR, '>&', \*STDOUT;
        { exec $SERVER, @args, '--logfile', '', '--daemonize', 'no' };
        POSIX::_exit(127);
    }

    $self->{pid} = $pid;
    $running{$pid} = 1;

    wait_for(sub { my $r = $self->command('PING');
                   defined $r && !ref $r && $r =~ /^(?:PONG|NOAUTH)/ },
             "redis on $port answers");

    return $self;
}

sub stop {
    my ($self, $signal) = @_;

    my $pid = delete $self->{pid} or return;

    kill $signal // 'TERM', $pid;
    waitpid($pid, 0);
    delete $running{$pid};
}

sub command {
    my ($self, @argv) = @_;

    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1',
                                PeerPort => $self->{port},
                                Proto => 'tcp', Timeout => 2)
        or return undef;

    print $s '*' . @argv . "\r\n",
             map { '$' . length($_) . "\r\n$_\r\n" } @argv;

    my $reply = read_reply($s);
    close $s;

    return $reply;
}

sub read_reply {
    my ($s) = @_;

    my $line = <$s> // return undef;
    $line =~ s/\r\n\z//;

    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));

    return $rest if $type eq '+' || $type eq '-' || $type eq ':';

    if ($type eq '$') {
        return undef if $rest < 0;
        read($s, my $data, $rest + 2);
        return substr($data, 0, $rest);
    }

    if ($type eq '*') {
        return undef if $rest < 0;
        return [ map { read_reply($s) } 1 .. $rest ];
    }

    return undef;
}

sub wait_for {
    my ($cond, $what, $seconds) = @_;

    my $until = time + ($seconds // 10);

    while (time < $until) {
        return 1 if $cond->();
        sleep 0.1;
    }

    croak "timed out waiting: $what";
}

sub sentinel_group {
    my (%opts) = @_;

    # every port is listened on before anything connects out, so that no
    # outgoing connection's local port takes one of them first
    my $master = Teleclinic::Redis->new(args => $opts{args});
    my $replica = Teleclinic::Redis->new(args => $opts{args});
    my @sentinels = map { Teleclinic::Redis->new(sentinel => '') } 1 .. 3;

    $replica->command('REPLICAOF', '127.0.0.1', $master->port);

    wait_for(sub {
        ($replica->command('INFO', 'replication') // '')
            =~ /master_link_status:up/
    }, 'the replica is in sync', 30);

    for my $s (@sentinels) {
        $s->command('SENTINEL', 'MONITOR', 'tc', '127.0.0.1', $master->port,
                    2);
        $s->command('SENTINEL', 'SET', 'tc', 'down-after-milliseconds', 1000);
        $s->command('SENTINEL', 'SET', 'tc', 'failover-timeout', 3000);
    }

    # a failover needs the replica and a quorum known to the sentinels
    wait_for(sub {
        my $ok = 1;
        for my $s (@sentinels) {
            my $r = $s->command('SENTINEL', 'replicas', 'tc');
            my $o = $s->command('SENTINEL', 'sentinels', 'tc');
            $ok &&= ref $r && @$r >= 1 && ref $o && @$o >= 2;
        }
        $ok;
    }, 'the sentinels know the replica and each other', 60);

    return ($master, $replica, @sentinels);
}

sub DESTROY {
    my ($self) = @_;
    $self->stop('KILL') if $self->{pid};
}

1;
