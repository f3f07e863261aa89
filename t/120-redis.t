#!/usr/bin/perl

# Redis in the workers: each worker connects to the teleclinic_redis
# server and says so in the log; when Redis stops the loss is logged and
# the API goes on, and when it comes back on the same port the workers
# reconnect by themselves; a server that stops answering (SIGSTOP) is
# found by the PING of an idle connection and dropped after the timeout; a password is sent (AUTH) before the
# connection counts as up, and a wrong one is logged and retried; under
# Sentinel the worker follows a failover to the promoted replica; nginx
# stops with QUIT and no open-socket alert.  Real redis-server and
# Sentinel processes on free ports, stopped by pid at the end.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::IP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);

###############################################################################

my $REDIS = '/usr/bin/redis-server';

plan(skip_all => "redis-server is not installed (Debian: redis-server)")
    unless -x $REDIS;

my $dir = tempdir('teleclinic-redis-XXXXXX', TMPDIR => 1,
                  CLEANUP => !$ENV{TELECLINIC_KEEP});
my %servers;    # pid => port

END {
    # stopped here too when a test dies half way
    kill 'KILL', keys %servers if %servers;
    waitpid($_, 0) for keys %servers;
}

# a redis-server (or, with sentinel => conf text, a Sentinel) on $port
sub start_redis {
    my ($port, %opts) = @_;

    my @args;

    if (defined $opts{sentinel}) {
        my $conf = "$dir/sentinel-$port.conf";
        open my $fh, '>', $conf or die "$conf: $!";
        print $fh "port $port\nbind 127.0.0.1\ndir $dir\n$opts{sentinel}";
        close $fh;

        # Sentinel rewrites its conf file: it must be its own
        @args = ($conf, '--sentinel');

    } else {
        @args = ('--port', $port, '--bind', '127.0.0.1', '--save', '',
                 '--appendonly', 'no', '--dir', $dir,
                 '--dbfilename', "dump-$port.rdb", @{ $opts{args} // [] });
    }

    my $pid = fork // die "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/redis-$port.log";
        open STDERR, '>&', \*STDOUT;
        { exec $REDIS, @args, '--logfile', '', '--daemonize', 'no' };
        POSIX::_exit(127);
    }

    $servers{$pid} = $port;

    wait_for(sub { my $r = command($port, 'PING');
                   defined $r && !ref $r && $r =~ /^(?:PONG|NOAUTH)/ },
             "redis on $port answers");

    return $pid;
}

sub stop_redis {
    my ($pid, $signal) = @_;

    kill $signal // 'TERM', $pid;
    waitpid($pid, 0);
    delete $servers{$pid};
}

# one command on a fresh connection: a string, an array ref, or undef
sub command {
    my ($port, @argv) = @_;

    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
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

    die "timed out waiting: $what\n";
}

# how often $re matches in nginx's error log
sub count_log {
    my ($t, $re) = @_;
    my @m = $t->error_log =~ /$re/g;
    return scalar @m;
}

# waits (up to $seconds) until $re matched $n times in the log
sub log_has {
    my ($t, $re, $n, $seconds) = @_;

    my $until = time + ($seconds // 15);

    while (time < $until) {
        return 1 if count_log($t, $re) >= $n;
        sleep 0.1;
    }

    return 0;
}

# patient data goes to Redis sealed only: every conf here has a data key
my $KEY_FILE = "$dir/data.key";
{
    open my $fh, '>', $KEY_FILE or die "$KEY_FILE: $!";
    print $fh join('', map { sprintf '%02x', int rand 256 } 1 .. 32), "\n";
    close $fh;
}

sub nginx {
    my ($http, %opts) = @_;

    my $t = Teleclinic::Test->new(workers => $opts{workers} // 1);
    write_directory($t);
    $t->run(conf(http => "$http\nteleclinic_data_key_file $KEY_FILE;"));

    return $t;
}

sub api_answers {
    my ($t) = @_;
    my $r = $t->http(GET => '/api/v1/departments');
    return $r->{status} // 0;
}

# what nginx -t says of a conf with $http in http{}
sub conf_test {
    my ($http, %opts) = @_;

    my $t = Teleclinic::Test->new;
    write_directory($t);

    my $p = $t->prefix;
    my $conf = $t->write_file('test.conf', $t->conf_text(conf(
        http => $http . ($opts{nokey} ? '' : "\nteleclinic_data_key_file $KEY_FILE;"))));

    # a module built with ASan loads only with its runtime
    local $ENV{LD_PRELOAD} = Teleclinic::Test::asan_env()
        if $ENV{TELECLINIC_ASAN};
    local $ENV{ASAN_OPTIONS} = 'detect_leaks=0';

    return scalar `$Teleclinic::Test::NGINX -t -p $p/ -c $conf -e $p/logs/test.log 2>&1`;
}

###############################################################################

# the directives' errors, without the value of a parameter

like(conf_test('teleclinic_redis 127.0.0.1;'),
     qr/no port in redis address "127\.0\.0\.1"/, 'an address needs a port');
like(conf_test('teleclinic_redis sentinel;'),
     qr/"teleclinic_redis sentinel" needs "teleclinic_redis_sentinel"/,
     'sentinel needs the sentinels');
like(conf_test('teleclinic_redis_sentinel 127.0.0.1:26379 127.0.0.1:26380;'),
     qr/"teleclinic_redis_sentinel" needs master=/, 'sentinels need master=');
like(conf_test("teleclinic_redis 127.0.0.1:6379;\n"
               . 'teleclinic_redis_sentinel 127.0.0.1:26379 master=m;'),
     qr/takes "sentinel" instead of an address/,
     'an address and sentinels are refused together');

my $out = conf_test('teleclinic_redis 127.0.0.1:6379 pasword=hunter2;');
like($out, qr/invalid parameter "pasword="/, 'a misspelt parameter');
unlike($out, qr/hunter2/, 'its value is not shown');

like(conf_test('teleclinic_redis_sentinel 127.0.0.1:26379 master=m;'),
     qr/test is successful/, 'teleclinic_redis_sentinel may stand alone');
like(conf_test('teleclinic_redis 127.0.0.1:6379;', nokey => 1),
     qr/needs "teleclinic_data_key_file" with "teleclinic_redis"/,
     'Redis without a data key is refused: patient data leaves sealed');

# (a) connects, (b) loses Redis, goes on, reconnects on its own

my $port = free_port();
my $pid = start_redis($port);

my $t = nginx("teleclinic_redis 127.0.0.1:$port;", workers => 2);

my $connected = qr/teleclinic: redis "main": connected to 127\.0\.0\.1:$port\b/;

ok(log_has($t, $connected, 2), 'both workers connect to Redis');

my @workers = $t->worker_pids;

stop_redis($pid);

ok(log_has($t, qr/teleclinic: redis "main": lost 127\.0\.0\.1:$port: /, 2),
   'the loss is logged');
is(api_answers($t), 200, 'the API answers with Redis stopped');
is_deeply([$t->worker_pids], \@workers, 'no worker died');

$pid = start_redis($port);

ok(log_has($t, $connected, 4), 'both workers reconnect when Redis is back');
is(api_answers($t), 200, 'the API answers after the reconnect');

# a server that stops answering keeps its sockets open: PING finds it
kill 'STOP', $pid;

ok(log_has($t, qr/redis "main": lost 127\.0\.0\.1:$port: timed out/, 2, 20),
   'a server that stopped answering is dropped after the timeout');
is(api_answers($t), 200, 'the API answers meanwhile');

kill 'CONT', $pid;

ok(log_has($t, $connected, 6, 20), 'reconnects once it answers again');

# a reload: the old workers close theirs, the new ones connect
$t->reload;

ok(log_has($t, $connected, 8), 'the new workers connect after a reload');

$t->stop;
unlike($t->error_log, qr/open socket/, 'no socket left open at exit');
stop_redis($pid);

# a unix socket

my $sock = "$dir/redis.sock";
$port = free_port();
$pid = start_redis($port, args => ['--unixsocket', $sock,
                                   '--unixsocketperm', '700']);

$t = nginx("teleclinic_redis unix:$sock;");

ok(log_has($t, qr/redis "main": connected to unix:\Q$sock\E/, 1),
   'connects to a unix socket');
$t->stop;
stop_redis($pid);

# (c) AUTH before the connection counts; a wrong password is retried

my $secret = 'redis-test-password';
$port = free_port();
$pid = start_redis($port, args => ['--requirepass', $secret]);

$t = nginx("teleclinic_redis 127.0.0.1:$port password=$secret db=3;");

ok(log_has($t, qr/redis "main": connected to 127\.0\.0\.1:$port\b/, 1),
   'connects with the right password and db=3');
$t->stop;

$t = nginx("teleclinic_redis 127.0.0.1:$port password=wrong-one;");

my $refused = qr/redis "main": cannot connect to 127\.0\.0\.1:$port: refused: WRONGPASS/;

ok(log_has($t, $refused, 3), 'a wrong password is logged and retried');
is(count_log($t, qr/\[notice\].*redis "main".*WRONGPASS/), 1,
   'at notice once, the retries at info');
unlike($t->error_log, qr/connected to/, 'never counted as connected');
unlike($t->error_log, qr/\Q$secret\E|wrong-one/, 'no password in the log');
is(api_answers($t), 200, 'the API answers meanwhile');
$t->stop;
stop_redis($pid);

# (d) Sentinel: the worker follows a failover to the promoted replica

my $master = free_port();
my $replica = free_port();
my @sentinels = map { free_port() } 1 .. 3;

# every port is listened on before anything connects out, so that no
# outgoing connection's local port takes one of them first

my $mpid = start_redis($master);
start_redis($replica);
start_redis($_, sentinel => '') for @sentinels;

command($replica, 'REPLICAOF', '127.0.0.1', $master);

wait_for(sub { my $r = command($replica, 'INFO', 'replication');
               defined $r && $r =~ /master_link_status:up/ },
         'the replica is in sync', 30);

for my $s (@sentinels) {
    command($s, 'SENTINEL', 'MONITOR', 'tc', '127.0.0.1', $master, 2);
    command($s, 'SENTINEL', 'SET', 'tc', 'down-after-milliseconds', 1000);
    command($s, 'SENTINEL', 'SET', 'tc', 'failover-timeout', 3000);
}

# a failover needs the replica and a quorum known to the sentinels
wait_for(sub {
             my $ok = 1;
             for my $s (@sentinels) {
                 my $r = command($s, 'SENTINEL', 'replicas', 'tc');
                 my $o = command($s, 'SENTINEL', 'sentinels', 'tc');
                 $ok &&= ref $r && @$r >= 1 && ref $o && @$o >= 2;
             }
             $ok
         }, 'the sentinels know the replica and each other', 60);

$t = nginx("teleclinic_redis sentinel timeout=500ms;\n"
           . "teleclinic_redis_sentinel "
           . join(' ', map { "127.0.0.1:$_" } @sentinels) . " master=tc;");

ok(log_has($t, qr/redis "main": connected to 127\.0\.0\.1:$master\b/, 1),
   'connects to the master the sentinels name');

stop_redis($mpid, 'KILL');

ok(log_has($t, qr/redis "main": lost 127\.0\.0\.1:$master: /, 1),
   'the master\'s loss is logged');
ok(log_has($t, qr/redis "main": connected to 127\.0\.0\.1:$replica\b/, 1, 60),
   'follows the failover to the promoted replica');
is(api_answers($t), 200, 'the API answers after the failover');

# (e) QUIT: the harness fails on any [alert]
$t->stop;
unlike($t->error_log, qr/open socket/, 'no socket left open at exit');

stop_redis($_) for keys %servers;

done_testing();
