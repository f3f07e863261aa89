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
use Time::HiRes qw(sleep time);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);
use Teleclinic::Redis;

###############################################################################

plan(skip_all => "redis-server is not installed (Debian: redis-server)")
    unless Teleclinic::Redis::available();

my $dir = tempdir('teleclinic-redis-XXXXXX', TMPDIR => 1,
                  CLEANUP => !$ENV{TELECLINIC_KEEP});

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
my $redis = Teleclinic::Redis->new(port => $port);

my $t = nginx("teleclinic_redis 127.0.0.1:$port;", workers => 2);

my $connected = qr/teleclinic: redis "main": connected to 127\.0\.0\.1:$port\b/;

ok(log_has($t, $connected, 2), 'both workers connect to Redis');

my @workers = $t->worker_pids;

$redis->stop;

ok(log_has($t, qr/teleclinic: redis "main": lost 127\.0\.0\.1:$port: /, 2),
   'the loss is logged');
is(api_answers($t), 200, 'the API answers with Redis stopped');
is_deeply([$t->worker_pids], \@workers, 'no worker died');

$redis->start;

ok(log_has($t, $connected, 4), 'both workers reconnect when Redis is back');
is(api_answers($t), 200, 'the API answers after the reconnect');

# a server that stops answering keeps its sockets open: PING finds it
kill 'STOP', $redis->pid;

ok(log_has($t, qr/redis "main": lost 127\.0\.0\.1:$port: timed out/, 2, 20),
   'a server that stopped answering is dropped after the timeout');
is(api_answers($t), 200, 'the API answers meanwhile');

kill 'CONT', $redis->pid;

ok(log_has($t, $connected, 6, 20), 'reconnects once it answers again');

# a reload: the old workers close theirs, the new ones connect
$t->reload;

ok(log_has($t, $connected, 8), 'the new workers connect after a reload');

$t->stop;
unlike($t->error_log, qr/open socket/, 'no socket left open at exit');
$redis->stop;

# a unix socket

my $sock = "$dir/redis.sock";
$port = free_port();
$redis = Teleclinic::Redis->new(port => $port,
                                args => ['--unixsocket', $sock,
                                         '--unixsocketperm', '700']);

$t = nginx("teleclinic_redis unix:$sock;");

ok(log_has($t, qr/redis "main": connected to unix:\Q$sock\E/, 1),
   'connects to a unix socket');
$t->stop;
$redis->stop;

# (c) AUTH before the connection counts; a wrong password is retried

my $secret = 'redis-test-password';
$port = free_port();
$redis = Teleclinic::Redis->new(port => $port,
                                args => ['--requirepass', $secret]);

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
$redis->stop;

# (d) Sentinel: the worker follows a failover to the promoted replica

my ($m, $r, @s) = Teleclinic::Redis::sentinel_group();
my ($master, $replica) = ($m->port, $r->port);

$t = nginx("teleclinic_redis sentinel timeout=500ms;\n"
           . "teleclinic_redis_sentinel "
           . join(' ', map { '127.0.0.1:' . $_->port } @s) . " master=tc;");

ok(log_has($t, qr/redis "main": connected to 127\.0\.0\.1:$master\b/, 1),
   'connects to the master the sentinels name');

$m->stop('KILL');

ok(log_has($t, qr/redis "main": lost 127\.0\.0\.1:$master: /, 1),
   'the master\'s loss is logged');
ok(log_has($t, qr/redis "main": connected to 127\.0\.0\.1:$replica\b/, 1, 60),
   'follows the failover to the promoted replica');
is(api_answers($t), 200, 'the API answers after the failover');

# (e) QUIT: the harness fails on any [alert]
$t->stop;
unlike($t->error_log, qr/open socket/, 'no socket left open at exit');

$_->stop for $r, @s;

done_testing();
