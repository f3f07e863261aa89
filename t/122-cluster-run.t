#!/usr/bin/perl

# What `make run NODES=2` starts: bin/teleclinic-cluster on free ports
# brings up a Redis master, its replica, three Sentinels and two nodes
# with the demo data; a booking on node 1 is seen on node 2 with the
# patient's token; ports already in use are named and nothing starts;
# SIGTERM stops every process it started (the nodes' workers too).

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::IP;
use POSIX qw(:sys_wait_h strftime);
use Time::HiRes qw(sleep time);
use Mojo::UserAgent;

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;

###############################################################################

plan(skip_all => 'redis-server is not installed (Debian: redis-server,'
                 . ' redis-sentinel)')
    unless -x '/usr/bin/redis-server';

my $REPO = Teleclinic::Test->repo;
my $SCRIPT = "$REPO/bin/teleclinic-cluster";

sub bindable {
    my ($port, $proto) = @_;

    return IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => $port,
                               Proto => $proto,
                               $proto eq 'tcp' ? (Listen => 1) : ());
}

# three bases of consecutive free ports, below the kernel's ephemeral
# ports and the relay's: http 2, TURN 2 (TCP and UDP), Redis 5
sub free_bases {
    for (1 .. 200) {
        my $base = 20000 + 20 * int rand 600;
        my ($http, $turn, $redis) = ($base, $base + 5, $base + 10);

        next if grep { !bindable($_, 'tcp') }
                     $http, $http + 1, $turn, $turn + 1,
                     $redis .. $redis + 4;
        next if grep { !bindable($_, 'udp') } $turn, $turn + 1;

        return ($http, $turn, $redis);
    }

    die "no free ports for the cluster";
}

# the script in the background, its output in $var/run.log
sub cluster {
    my ($var, @args) = @_;

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        $ENV{TELECLINIC_VAR} = $var;
        open STDOUT, '>', "$var/run.log";
        open STDERR, '>&', \*STDOUT;
        exec $SCRIPT, @args or POSIX::_exit(127);
    }

    return $pid;
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    return <$fh>;
}

sub wait_pid {
    my ($pid, $seconds) = @_;

    my $until = time + $seconds;

    while (time < $until) {
        return $? if waitpid($pid, WNOHANG) == $pid;
        sleep 0.1;
    }

    return undef;
}

sub alive {
    my ($pid) = @_;

    my $stat = slurp("/proc/$pid/stat") or return 0;
    return $stat !~ /^\d+ \(.*\) Z/;
}

# the children of a process (an nginx master's workers)
sub children {
    my ($ppid) = @_;

    my @kids;

    for my $stat (glob '/proc/[0-9]*/stat') {
        my ($pid, $parent) = slurp($stat) =~ /^(\d+) \(.*\) \S (\d+)/
            or next;
        push @kids, $pid if $parent == $ppid;
    }

    return @kids;
}

sub eventually {
    my ($cond, $seconds) = @_;

    my $until = time + $seconds;
    my $r;

    until ($r = $cond->()) {
        last if time > $until;
        sleep 0.1;
    }

    return $r;
}

###############################################################################

my $run_line = `make -s -n -C $REPO run NODES=2 PORT=18080 REDIS_PORT=18180`;
like($run_line, qr{bin/teleclinic-cluster 2 18080 3478 18180},
     'make run NODES=2 runs bin/teleclinic-cluster');
like(`make -s -n -C $REPO run PORT=18080`, qr{bin/teleclinic-run 18080 3478},
     'make run without NODES is bin/teleclinic-run, as before');

my ($http, $turn, $redis) = free_bases();
my $var = tempdir('teleclinic-cluster-XXXXXX', TMPDIR => 1,
                  CLEANUP => !$ENV{TELECLINIC_KEEP});

my $pid = cluster($var, 2, $http, $turn, $redis);
END { kill 'KILL', $pid if $pid && $pid != $$ && alive($pid) }

my $ua = Mojo::UserAgent->new(request_timeout => 5, connect_timeout => 2);
my @base = map { "http://127.0.0.1:$_/api/v1" } $http, $http + 1;

my $up = eventually(sub {
    !alive($pid) and return -1;
    return slurp("$var/run.log") =~ /Watch a failover/
           && !grep { ($ua->get("$_/departments")->result->code // 0) != 200 }
                    @base;
}, 60);

ok($up && $up != -1, 'both nodes answer /api/v1/departments')
    or BAIL_OUT('the cluster did not start: ' . slurp("$var/run.log"));

my $log = slurp("$var/run.log");
like($log, qr{http://127\.0\.0\.1:$http/}, 'the table names node 1');
like($log, qr{http://127\.0\.0\.1:@{[$http + 1]}/}, 'and node 2');
like($log, qr{127\.0\.0\.1:$redis\b.*\n.*127\.0\.0\.1:@{[$redis + 1]}}s,
     'the Redis master and replica');
like($log, qr{Sentinel|sentinel}, 'the Sentinels');

my %pid = map { split ' ' } split /\n/, slurp("$var/pids");
is_deeply([sort keys %pid],
          [qw(node1 node2 redis-master redis-replica sentinel1 sentinel2
              sentinel3)],
          'its pids file names each process');

for my $node ('node1', 'node2') {
    my $master = slurp("$var/$node/nginx.pid") =~ s/\s+//gr;
    is($master, $pid{$node}, "$node: the pid is nginx's master");
}

is(`redis-cli -p @{[$redis + 2]} sentinel get-master-addr-by-name teleclinic`,
   "127.0.0.1\n$redis\n", 'a Sentinel names the master');

# each node has its own STUN/TURN port

SKIP: {
    skip('turnutils_stunclient is not installed (Debian: coturn)', 2)
        unless -x '/usr/bin/turnutils_stunclient';

    for my $p ($turn, $turn + 1) {
        like(`timeout 20 turnutils_stunclient -p $p 127.0.0.1 2>&1`,
             qr/reflexive addr: 127\.0\.0\.1:\d+/, "STUN answers on $p");
    }
}

# a port in use: named, and nothing else starts

{
    my $other = tempdir(CLEANUP => 1);
    my $busy = cluster($other, 2, $http + 1, $turn + 10, $redis + 10);
    my $status = wait_pid($busy, 20);

    ok(defined $status && $status != 0, 'a busy port: it stops, not 0');
    like(slurp("$other/run.log"), qr/port @{[$http + 1]} \(node1 http, tcp\) is in use/,
         'and says which port');
    ok(!-s "$other/pids", 'having started nothing');
}

# a booking on node 1 is one on node 2

my $date = strftime('%Y-%m-%d', localtime(time + 86400));
my ($slot) = grep { $_->{status} eq 'free' }
             @{ $ua->get("$base[0]/doctors/anna-berg/slots?date=$date")
                ->result->json };

# node 1 takes bookings once it reaches the master through the Sentinels
my $book = eventually(sub {
    my $r = $ua->post("$base[0]/appointments" => json => {
        slot => $slot->{id},
        patient => { name => 'Cluster Patient', phone => '+49 30 1234567' },
        reason => 'a rash',
    })->result;
    return $r->code == 503 ? undef : $r;
}, 10);

is($book && $book->code, 201, 'booked on node 1')
    or diag $book && $book->body;

my ($id, $token) = $book ? @{ $book->json }{qw(id token)} : ('', '');

my $seen = eventually(sub {
    my $r = $ua->get("$base[1]/appointments/$id"
                     => { Authorization => "Bearer $token" })->result;
    return $r->code == 200 ? $r : undef;
}, 10);

ok($seen, 'node 2 has it, and takes the patient\'s token');
is($seen && $seen->json->{slot}, $slot->{id}, 'the same slot');

# SIGTERM stops everything it started

my @workers = map { children($pid{$_}) } 'node1', 'node2';
ok(@workers >= 4, 'the nodes\' workers are there');

kill 'TERM', $pid;
my $status = wait_pid($pid, 60);
ok(defined $status, 'SIGTERM: the script ends');

my @left = grep { alive($_) } values %pid, @workers;
is("@left", '', 'no process it started is left');

for my $name ('node1', 'node2') {
    my $l = slurp("$var/logs/$name.log");
    unlike($l, qr/\[(?:alert|emerg)\]/, "$name: no alert or emerg");
}

$pid = 0;

done_testing();
