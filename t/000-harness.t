#!/usr/bin/perl

# Smoke test of the test harness itself: start, reload, kill -9 and
# restart, stop and log checks, on a plain nginx without our module
# (module => 0), so it works even when the module does not build.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;

###############################################################################

my %seen;
my @ports = map { free_port() } 1 .. 5;
is(scalar(grep { !$seen{$_}++ } @ports), 5, 'free_port: distinct ports');
ok(free_port(udp => 1) > 0, 'free_port: udp');

my $t = Teleclinic::Test->new(module => 0, workers => 2);

my $file = $t->write_file('html/hello.txt', "hello\n");
is($file, $t->prefix . '/html/hello.txt', 'write_file returns path');

$t->run(<<'EOF');
http {
    %%TEMP_PATHS%%

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            return 200 "ok\n";
        }

        location /json {
            default_type application/json;
            return 200 '{"a":1,"prefix":"%%PREFIX%%"}';
        }
    }

    server {
        listen 127.0.0.1:%%PORT2%%;

        location / {
            root %%PREFIX%%/html;
        }
    }
}
EOF

ok($t->is_running, 'started');
isnt($t->port('PORT'), $t->port('PORT2'), 'PORT and PORT2 differ');
is($t->url('/x'), 'http://127.0.0.1:' . $t->port . '/x', 'url');

my $r = $t->http(GET => '/');
is($r->{status}, 200, 'GET / status');
is($r->{body}, "ok\n", 'GET / body');

$r = $t->http(POST => '/json', body => { x => [1, 2] },
              headers => { 'X-Test' => 'yes' });
is($r->{status}, 200, 'POST /json status');
is($r->{json}{a}, 1, 'json decoded');
is($r->{json}{prefix}, $t->prefix, '%%PREFIX%% substituted');
like($r->{headers}->content_type, qr{application/json}, 'headers');

$r = $t->http(GET => '/hello.txt', port => 'PORT2');
is($r->{body}, "hello\n", 'second port serves file from prefix');

my @old = $t->worker_pids;
is(scalar @old, 2, 'two workers');

$t->reload;

my %old = map { $_ => 1 } @old;
ok(!grep({ $old{$_} } $t->worker_pids), 'reload: new workers');
is($t->http(GET => '/')->{status}, 200, 'GET / after reload');

my $master = $t->master_pid;
@old = $t->worker_pids;

$t->kill9;

ok(!$t->is_running, 'kill9: not running');
ok(!kill(0, $master), 'kill9: master gone');
ok(!grep({ -e "/proc/$_" && !zombie($_) } @old), 'kill9: workers gone');
ok($t->http(GET => '/')->{error}, 'kill9: connection refused');

$t->start;
is($t->http(GET => '/')->{body}, "ok\n", 'GET / after kill9 + start');

$master = $t->master_pid;
@old = $t->worker_pids;

ok($t->stop, 'stop: clean');
ok(!kill(0, $master), 'stop: master gone');
ok(!grep({ -e "/proc/$_" && !zombie($_) } @old), 'stop: workers gone');
is(scalar($t->log_problems), 0, 'no log problems');
like($t->error_log, qr/\[notice\].*exit/, 'error_log readable');

# the log check must catch a problem line and honour allow_log
open my $fh, '>>', $t->prefix . '/logs/error.log' or die $!;
print $fh "2024/01/01 00:00:00 [alert] 1#1: fake alert for the harness\n";
close $fh;

my @p = $t->log_problems;
is(scalar @p, 1, 'log_problems: one problem');
like($p[0], qr/fake alert/, 'log_problems: the fake alert');

$t->allow_log(qr/fake alert for the harness/);
is(scalar($t->log_problems), 0, 'allow_log whitelists it');

# a conf nginx rejects: start must fail and say why
my $bad = Teleclinic::Test->new(module => 0);

eval { $bad->run("http { %%TEMP_PATHS%% no_such_directive; }\n") };
like($@, qr/\[emerg\].*unknown directive "no_such_directive"/,
     'bad conf: start dies with the emerg line');
ok(!$bad->is_running, 'bad conf: not running');

$bad->allow_log(qr/unknown directive "no_such_directive"/);
ok($bad->stop, 'bad conf: allowed emerg is not a problem');

done_testing;

###############################################################################

sub zombie {
    my ($pid) = @_;

    open my $fh, '<', "/proc/$pid/stat" or return 1;
    my $stat = <$fh> // '';
    return $stat =~ /\)\s+Z/;
}

###############################################################################
