package Teleclinic::Test;

# Test harness for ngx_teleclinic: runs a private nginx instance per test
# object and fails the test on [alert]/[emerg] or sanitizer reports.
#
#   use FindBin; use lib "$FindBin::Bin/lib";
#   use Teleclinic::Test;                  # exports free_port
#
#   my $t = Teleclinic::Test->new(workers => 2);
#   $t->write_file('data.json', '{}');     # returns absolute path
#   $t->run(<<'EOF');                      # writes conf, starts, waits
#   http {
#       %%TEMP_PATHS%%
#       server {
#           listen 127.0.0.1:%%PORT%%;
#           location / { return 200 "ok\n"; }
#       }
#   }
#   EOF
#   my $r = $t->http(POST => '/api', body => { a => 1 },
#                    headers => { 'X-Foo' => 1 });
#   # $r->{status}, $r->{json}, $r->{body}, $r->{headers}, $r->{error}
#   $t->reload;                            # HUP, wait for new workers
#   $t->kill9;                             # SIGKILL master and workers
#   $t->start;                             # start again, same conf
#   $t->allow_log(qr/expected alert/);
#   $t->stop;                              # QUIT, wait, check logs
#
# new(%opts):
#   workers => N       worker_processes, default 2
#   module  => 0       do not load our module (only the stream module)
#   udp     => 1       ports from placeholders must also be free for UDP
#
# Conf placeholders:
#   %%TEMP_PATHS%%     the five *_temp_path directives (and access_log)
#                      under the prefix, for use inside http{}
#   %%PREFIX%%         the prefix directory (no trailing slash)
#   %%REPO%%           the repository root
#   %%PORT%%, %%PORT2%%, ...  free ports, allocated on first use and
#                      stable for the object's lifetime
#
# Methods: new, has(@features), try_run($conf), write_file, read_file, run, start, stop, reload, kill9,
# port($name), url($path [, $port_name]), http, ua, error_log,
# log_problems, allow_log, prefix, repo, master_pid, worker_pids,
# is_running.  run/start/reload die with the error log when nginx does
# not come up; stop reports problems as a failed test (ok(0) + diag).
#
# http($method, $path_or_url, body => $ref_as_json_or_string,
#      headers => {...}, port => 'PORT2') returns
# { status, json (decoded or undef), body, headers (Mojo), error }.
#
# Functions: free_port(udp => 1); make_run(var => $dir, conf => $template)
# and stop_make_run($run), what `make run` starts (exported on request).
#
# Environment:
#   TELECLINIC_MODULE  path of our .so, default build/ in the repo
#   TELECLINIC_ASAN=1  preload libasan into nginx, watch for reports
#   TELECLINIC_KEEP=1  keep the temp prefix after the test

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::IP;
use POSIX qw(:sys_wait_h setpgid);
use Scalar::Util qw(weaken);
use Test::More ();
use Time::HiRes qw(sleep time);

use Mojo::UserAgent;

our @EXPORT = qw(free_port);
our @EXPORT_OK = qw(make_run stop_make_run);

our $NGINX = $ENV{TELECLINIC_NGINX} // '/usr/sbin/nginx';
our $STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
our $TIMEOUT = 10;

# this file is t/lib/Teleclinic/Test.pm: the repo is three dirs up
our $REPO = abs_path(dirname(__FILE__) . '/../../..');

my %used_ports;
my @instances;

# lines that make a test fail when found in error.log or nginx's stderr
my $PROBLEM = qr/\[(?:alert|emerg)\]|AddressSanitizer|LeakSanitizer
                 |runtime\ error:/x;


###############################################################################

sub free_port {
    my (%opts) = @_;

    for (1 .. 100) {
        my $s = IO::Socket::IP->new(
            LocalHost => '127.0.0.1',
            LocalPort => 0,
            Proto     => 'tcp',
            Listen    => 1,
        ) or croak "free_port: cannot bind tcp: $@";

        my $port = $s->sockport;
        close $s;

        # the kernel may hand the same ephemeral port out again
        next if $used_ports{$port};

        if ($opts{udp}) {
            my $u = IO::Socket::IP->new(
                LocalHost => '127.0.0.1',
                LocalPort => $port,
                Proto     => 'udp',
            ) or next;
            close $u;
        }

        $used_ports{$port} = 1;
        return $port;
    }

    croak "free_port: no free port found";
}


###############################################################################

# What `make run` starts: bin/teleclinic-run (conf/nginx.conf, the demo
# directory, the TURN relay) in the foreground on free ports, its state and
# run.log (stdout and stderr) in var, a temporary directory unless given;
# conf => another template of conf/nginx.conf's form.  Waits up to 10 s
# for the port; returns { pid, port, turn_port, var, log, up }.

sub make_run {
    my (%opts) = @_;

    my $run = {
        var       => $opts{var} // tempdir(CLEANUP => 1),
        port      => $opts{port} // free_port(),
        turn_port => $opts{turn_port} // free_port(udp => 1),
        up        => 0,
    };

    $run->{log} = "$run->{var}/run.log";

    my $pid = fork() // croak "make_run: fork: $!";

    if ($pid == 0) {
        $ENV{TELECLINIC_VAR} = $run->{var};
        $ENV{TELECLINIC_CONF} = $opts{conf} if defined $opts{conf};
        open STDOUT, '>', $run->{log};
        open STDERR, '>&', \*STDOUT;
        exec "$REPO/bin/teleclinic-run", $run->{port}, $run->{turn_port}
            or exit 127;
    }

    $run->{pid} = $pid;

    for (1 .. 100) {
        if (IO::Socket::IP->new(PeerHost => '127.0.0.1',
                                PeerPort => $run->{port}))
        {
            $run->{up} = 1;
            last;
        }

        sleep 0.1;
    }

    return $run;
}

# QUIT, and KILL when nginx has not gone 10 s later; returns whether QUIT
# was enough

sub stop_make_run {
    my ($run) = @_;

    kill 'QUIT', $run->{pid};

    return 1 if defined wait_pid($run->{pid}, 10);

    kill 'KILL', $run->{pid};
    waitpid($run->{pid}, 0);

    return 0;
}


###############################################################################

sub new {
    my ($class, %opts) = @_;

    my $keep = $ENV{TELECLINIC_KEEP} ? 1 : 0;
    my $prefix = tempdir('teleclinic-XXXXXX', TMPDIR => 1,
                         CLEANUP => !$keep);

    mkdir "$prefix/logs" or croak "mkdir $prefix/logs: $!";
    mkdir "$prefix/tmp" or croak "mkdir $prefix/tmp: $!";

    Test::More::diag("teleclinic prefix kept: $prefix") if $keep;

    my $self = bless {
        prefix   => $prefix,
        workers  => $opts{workers} // 2,
        module   => $opts{module} // 1,
        udp      => $opts{udp} // 0,
        ports    => {},
        allowed  => [],
        reported => {},          # asan report files already reported
        owner    => $$,          # forked children must not stop nginx
    }, $class;

    # END must find live objects even if the test still holds them
    push @instances, $self;
    weaken($instances[-1]);

    return $self;
}

sub prefix { $_[0]->{prefix} }
sub repo { $REPO }
sub master_pid { $_[0]->{pid} }
sub is_running { defined $_[0]->{pid} }

sub module_path {
    return $ENV{TELECLINIC_MODULE}
           || "$REPO/build/ngx_http_teleclinic_module.so";
}

sub port {
    my ($self, $name) = @_;

    $name //= 'PORT';
    croak "bad port name '$name'" unless $name =~ /^PORT\d*$/;

    return $self->{ports}{$name} //= free_port(udp => $self->{udp});
}

sub url {
    my ($self, $path, $name) = @_;
    return 'http://127.0.0.1:' . $self->port($name) . ($path // '/');
}

sub write_file {
    my ($self, $name, $content) = @_;

    my $path = "$self->{prefix}/$name";

    # allow "sub/dir/file" names
    my $dir = dirname($path);
    system('mkdir', '-p', $dir) == 0 or croak "mkdir -p $dir failed"
        unless -d $dir;

    open my $fh, '>', $path or croak "open $path: $!";
    binmode $fh;
    print $fh $content;
    close $fh or croak "close $path: $!";

    return $path;
}

sub read_file {
    my ($self, $name) = @_;

    my $path = $name =~ m{^/} ? $name : "$self->{prefix}/$name";

    open my $fh, '<', $path or return '';
    binmode $fh;
    local $/;
    my $content = <$fh>;
    close $fh;

    return $content // '';
}

sub error_log {
    my ($self) = @_;
    return $self->read_file('logs/error.log');
}

sub allow_log {
    my ($self, @re) = @_;
    push @{ $self->{allowed} }, @re;
    return $self;
}


###############################################################################

sub conf_text {
    my ($self, $body) = @_;

    my $p = $self->{prefix};
    # a built-in stream module must not be loaded again
    my $head = stream_dynamic() ? "load_module $STREAM_MODULE;\n" : '';

    if ($self->{module}) {
        my $so = $self->module_path;
        croak "module not found: $so (run make, or set TELECLINIC_MODULE)"
            unless -f $so;
        $head .= "load_module $so;\n";
    }

    # as root, workers would run as nobody and could not write the prefix
    if ($< == 0) {
        my $user = getpwuid($<);
        my $group = getgrgid($( + 0) // $user;
        $head .= "user $user $group;\n";
    }

    $head .= "worker_processes $self->{workers};\n"
           . "pid $p/logs/nginx.pid;\n"
           . "error_log $p/logs/error.log info;\n"
           . "events { worker_connections 1024; }\n\n";

    # the compiled-in paths point into /var/lib/nginx and /var/log/nginx
    my $temp = join "\n    ",
        "client_body_temp_path $p/tmp/client_body;",
        "proxy_temp_path $p/tmp/proxy;",
        "fastcgi_temp_path $p/tmp/fastcgi;",
        "uwsgi_temp_path $p/tmp/uwsgi;",
        "scgi_temp_path $p/tmp/scgi;",
        "access_log $p/logs/access.log;";

    $body =~ s/%%TEMP_PATHS%%/$temp/g;
    $body =~ s/%%PREFIX%%/$p/g;
    $body =~ s/%%REPO%%/$REPO/g;
    $body =~ s/%%(PORT\d*)%%/$self->port($1)/ge;

    croak "unknown placeholder $1 in conf" if $body =~ /(%%\w+%%)/;

    return $head . $body;
}

# the configure arguments of nginx -V, read once
my $nginx_v;

sub nginx_v {
    $nginx_v //= `$NGINX -V 2>&1` // '';
    return $nginx_v;
}

sub stream_dynamic { nginx_v() =~ /--with-stream=dynamic\b/ }

# has_feature('stream'), 'http_ssl', 'stream_ssl', 'threads', ...
sub has_feature {
    my ($f) = @_;
    my $v = nginx_v();

    return $v =~ /--with-stream(?:=dynamic)?(?:\s|$)/ if $f eq 'stream';
    return $v =~ /--with-threads\b/ if $f eq 'threads';
    return $v =~ /--with-\Q$f\E(?:_module)?(?:=dynamic)?(?:\s|$)/;
}

# $t->has(@features): skips the whole test file when one is missing
sub has {
    my ($self, @features) = @_;

    for my $f (@features) {
        next if has_feature($f);
        Test::More::plan(skip_all => "nginx lacks $f");
    }

    return $self;
}

# like run, but skips the test file when nginx does not start (an
# optional piece missing) instead of dying
sub try_run {
    my ($self, $body) = @_;

    eval { $self->run($body); 1 } and return $self;

    my ($why) = $@ =~ /(\[emerg\][^\n]*)/;
    $why //= (split /\n/, $@)[0] // 'nginx did not start';
    Test::More::plan(skip_all => "nginx did not start: $why");
}

sub run {
    my ($self, $body) = @_;

    $self->{conf} = $self->write_file('nginx.conf', $self->conf_text($body));
    $self->start;

    return $self;
}

# "tcp"/"udp" => [ports] nginx must have bound, from the expanded conf
sub listen_ports {
    my ($self) = @_;

    my $conf = $self->read_file($self->{conf});
    my %ports = (tcp => [], udp => []);

    while ($conf =~ /\blisten\s+([^;{}]+);/g) {
        my ($addr, @params) = split ' ', $1;
        next if $addr =~ /^unix:/;

        my ($port) = $addr =~ /(?:^|:)(\d+)$/ or next;
        my $proto = (grep { $_ eq 'udp' } @params) ? 'udp' : 'tcp';
        push @{ $ports{$proto} }, $port;
    }

    return %ports;
}

# local ports in LISTEN (tcp) or bound (udp) state; reading /proc/net
# instead of connecting keeps probes out of the module's logs and state
sub bound_ports {
    my ($proto) = @_;

    my %bound;
    my $state = $proto eq 'tcp' ? '0A' : '07';

    for my $file ("/proc/net/$proto", "/proc/net/${proto}6") {
        open my $fh, '<', $file or next;

        while (<$fh>) {
            my ($port, $st) = /^\s*\d+:\s+[0-9A-F]+:([0-9A-F]+)\s+\S+\s+(\S+)/
                or next;
            $bound{hex $port} = 1 if $st eq $state;
        }

        close $fh;
    }

    return \%bound;
}

sub asan_env {
    my $lib = `gcc -print-file-name=libasan.so`;
    chomp $lib;

    # gcc echoes the bare name back when it does not know the library
    croak "TELECLINIC_ASAN=1 but libasan.so not found (gcc says '$lib')"
        unless $lib =~ m{^/} && -e $lib;

    return $lib;
}

sub start {
    my ($self) = @_;

    croak "nginx already running (pid $self->{pid})" if $self->{pid};
    croak "no conf: call run() first" unless $self->{conf};

    my $p = $self->{prefix};
    my $asan = $ENV{TELECLINIC_ASAN} ? asan_env() : undef;
    my $log_start = -s "$p/logs/error.log" // 0;
    my $err_start = -s "$p/logs/stderr.log" // 0;

    # a stale pid file after kill9 would look like a started nginx
    unlink "$p/logs/nginx.pid";
    delete $self->{ua};

    my $pid = fork;
    croak "fork: $!" unless defined $pid;

    if ($pid == 0) {
        # own process group: kill9 and cleanup can signal master and
        # all workers at once, even after the master is gone
        setpgid(0, 0);

        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$p/logs/stderr.log";
        open STDERR, '>&', \*STDOUT;

        if ($asan) {
            $ENV{LD_PRELOAD} = $asan;
            $ENV{ASAN_OPTIONS} = 'detect_leaks=0:abort_on_error=0'
                                 . ':detect_stack_use_after_return=1'
                                 . ":log_path=$p/logs/asan";
        }

        # -e: startup errors go to our log, not to stderr
        { exec $NGINX, '-p', "$p/", '-c', $self->{conf},
              '-e', "$p/logs/error.log", '-g', 'daemon off;' };

        print STDERR "exec $NGINX: $!\n";
        POSIX::_exit(127);
    }

    # also set it from the parent, so kill9 works even if we are quick
    setpgid($pid, $pid);

    $self->{pid} = $pid;

    my %ports = $self->listen_ports;
    my @ports = (@{ $ports{tcp} }, @{ $ports{udp} });
    my $deadline = time + $TIMEOUT;
    my $why;

    for (;;) {
        if (waitpid($pid, WNOHANG) == $pid) {
            $why = 'nginx exited with ' . status_text($?);
            delete $self->{pid};
            last;
        }

        if ($self->started(%ports)) {
            return $self;
        }

        if (time > $deadline) {
            $why = "nginx not ready within $TIMEOUT s"
                   . ' (pid file, ports ' . join(',', @ports)
                   . ", $self->{workers} workers)";
            last;
        }

        sleep 0.05;
    }

    $self->kill_all if $self->{pid};

    my $log = substr($self->error_log, $log_start);
    my $err = substr($self->read_file('logs/stderr.log'), $err_start);

    # nginx echoes startup errors to stderr; they are in error.log already
    $err = join '', grep { !/^nginx: \[/ } split /^/, $err;

    die "$why\n--- error.log ---\n$log"
        . ($err ne '' ? "--- stderr ---\n$err" : '') . "\n";
}

sub started {
    my ($self, %ports) = @_;

    my $pidfile = $self->read_file('logs/nginx.pid');
    return 0 unless $pidfile =~ /^(\d+)/ && $1 == $self->{pid};

    for my $proto ('tcp', 'udp') {
        my $bound = bound_ports($proto);
        return 0 if grep { !$bound->{$_} } @{ $ports{$proto} };
    }

    # listen sockets belong to the master; wait for workers as well
    if ($self->{workers} =~ /^\d+$/) {
        my %t = $self->worker_titles;
        my @up = grep { $t{$_} =~ /worker process$/ } keys %t;
        return 0 if @up < $self->{workers};
    }

    return 1;
}

# children of the master: workers, cache manager/loader;
# worker_titles returns pid => process title
sub worker_pids {
    my ($self) = @_;

    my %t = $self->worker_titles;
    return sort { $a <=> $b } keys %t;
}

sub worker_titles {
    my ($self) = @_;

    my $master = $self->{pid} or return ();
    my %t;

    for my $line (`ps --ppid $master -o pid=,args=`) {
        my ($pid, $args) = $line =~ /^\s*(\d+)\s+(.*?)\s*$/ or next;
        $t{$pid} = $args;
    }

    return %t;
}

sub reload {
    my ($self) = @_;

    croak "nginx not running" unless $self->{pid};

    my $p = $self->{prefix};
    my $log_start = -s "$p/logs/error.log" // 0;
    my %old = map { $_ => 1 } $self->worker_pids;

    delete $self->{ua};
    kill 'HUP', $self->{pid} or croak "kill HUP $self->{pid}: $!";

    my $want = $self->{workers} =~ /^\d+$/ ? $self->{workers} : 1;
    my $deadline = time + $TIMEOUT;

    for (;;) {
        my $log = substr($self->error_log, $log_start);

        # a bad conf keeps the old workers; no point in waiting for it
        if ($log =~ /\[emerg\]/) {
            die "reload failed\n--- error.log ---\n$log\n";
        }

        if (waitpid($self->{pid}, WNOHANG) == $self->{pid}) {
            delete $self->{pid};
            die "nginx exited on reload with " . status_text($?)
                . "\n--- error.log ---\n$log\n";
        }

        my %now = $self->worker_titles;
        my @new = grep { !$old{$_} && $now{$_} =~ /worker process$/ }
                  keys %now;

        # old workers stop accepting once they show "is shutting down"
        my @busy = grep { $now{$_} !~ /shutting down/ } grep { $old{$_} }
                   keys %now;

        return $self if @new >= $want && !@busy;

        if (time > $deadline) {
            die "no new worker generation within $TIMEOUT s after HUP\n"
                . "--- error.log ---\n$log\n";
        }

        sleep 0.05;
    }
}

sub kill9 {
    my ($self) = @_;

    croak "nginx not running" unless $self->{pid};

    delete $self->{ua};
    $self->kill_all;

    return $self;
}

# SIGKILL the whole process group, reap the master, wait for the rest
sub kill_all {
    my ($self) = @_;

    my $pid = $self->{pid} or return;
    my @workers = $self->worker_pids;

    # master first: a master that sees workers die would respawn them
    kill 'KILL', $pid;
    kill 'KILL', -$pid;
    kill 'KILL', @workers if @workers;

    waitpid($pid, 0);
    delete $self->{pid};

    $self->wait_gone($pid, @workers);
}

# live (non-zombie) processes among @pids or in the process group $pgid;
# nobody may reap reparented workers here, so zombies count as gone
sub alive {
    my ($pgid, @pids) = @_;

    my %want = map { $_ => 1 } @pids;
    my @alive;

    opendir my $dh, '/proc' or return ();

    for my $pid (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh> // '';
        close $fh;

        # comm may hold spaces and parens: split after the last ')'
        my ($state, $ppid, $pgrp) = $stat =~ /\)\s+(\S)\s+(\d+)\s+(\d+)/
            or next;
        next if $state eq 'Z' || $state eq 'X';

        push @alive, $pid if $want{$pid} || $pgrp == $pgid;
    }

    closedir $dh;

    return @alive;
}

sub wait_gone {
    my ($self, $pgid, @pids) = @_;

    my $deadline = time + $TIMEOUT;

    while (my @left = alive($pgid, @pids)) {
        if (time > $deadline) {
            Test::More::diag("processes still alive: @left");
            return 0;
        }

        kill 'KILL', @left;
        sleep 0.05;
    }

    return 1;
}

sub stop {
    my ($self) = @_;

    # never signal or check from a forked child of the test
    return 1 unless $$ == $self->{owner};

    my @problems;

    if (my $pid = $self->{pid}) {
        my @workers = $self->worker_pids;

        delete $self->{ua};
        kill 'QUIT', $pid;

        my $status = wait_pid($pid, $TIMEOUT);

        if (!defined $status) {
            push @problems, "nginx master $pid did not exit on QUIT"
                            . " within $TIMEOUT s";
            kill 'TERM', $pid;
            $status = wait_pid($pid, 5);
        }

        if (!defined $status) {
            kill 'KILL', $pid;
            kill 'KILL', -$pid;
            waitpid($pid, 0);
            $status = $?;
        }

        push @problems, 'nginx master exited with ' . status_text($status)
            if defined $status && $status != 0
               && !grep { /did not exit/ } @problems;

        delete $self->{pid};

        # workers die with the master; make sure none lingers
        if (my @left = alive($pid, @workers)) {
            push @problems, "workers left after master exit: @left";
            $self->wait_gone($pid, @left);
        }
    }

    push @problems, $self->log_problems(new_only => 1);

    return 1 unless @problems;

    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::ok(0, "nginx in $self->{prefix} stopped cleanly");
    Test::More::diag(join "\n", @problems);

    return 0;
}

# problem lines in error.log and stderr.log plus asan report files;
# new_only: what a previous call with new_only has not seen yet
sub log_problems {
    my ($self, %opts) = @_;

    my $p = $self->{prefix};
    my @problems;

    for my $name ('error.log', 'stderr.log') {
        my $log = $self->read_file("logs/$name");
        my $key = "checked_$name";

        if ($opts{new_only}) {
            my $from = $self->{$key} // 0;
            $self->{$key} = length $log;
            $log = $from < length $log ? substr($log, $from) : '';
        }

        for my $line (split /\n/, $log) {
            next unless $line =~ $PROBLEM;

            # nginx's stderr echo of startup errors duplicates error.log
            next if $name eq 'stderr.log' && $line =~ /^nginx: \[/;

            next if grep { $line =~ $_ } @{ $self->{allowed} };
            push @problems, "$name: $line";
        }
    }

    for my $file (sort glob "$p/logs/asan.*") {
        next if $opts{new_only} && $self->{reported}{$file}++;

        my $report = $self->read_file($file);
        push @problems, "sanitizer report $file:\n$report";
    }

    return @problems;
}

sub wait_pid {
    my ($pid, $timeout) = @_;

    my $deadline = time + $timeout;

    while (time < $deadline) {
        return $? if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }

    return undef;
}

sub status_text {
    my ($status) = @_;

    return 'signal ' . ($status & 127) if $status & 127;
    return 'status ' . ($status >> 8);
}


###############################################################################

sub ua {
    my ($self) = @_;

    # kept in the object: a temporary UserAgent dies mid-request and hangs
    return $self->{ua} //= do {
        my $ua = Mojo::UserAgent->new;
        $ua->inactivity_timeout($TIMEOUT);
        $ua->request_timeout($TIMEOUT);
        $ua->connect_timeout($TIMEOUT);
        $ua->max_redirects(0);
        $ua;
    };
}

sub http {
    my ($self, $method, $path, %opts) = @_;

    my $url = $path =~ m{^\w+://} ? $path : $self->url($path, $opts{port});
    my $headers = $opts{headers} // {};

    my @body;

    if (ref $opts{body}) {
        @body = (json => $opts{body});

    } elsif (defined $opts{body}) {
        @body = ($opts{body});
    }

    my $tx = $self->ua->build_tx(uc $method, $url, $headers, @body);
    $tx = $self->ua->start($tx);

    my $res = $tx->res;
    my $err = $tx->error;

    return {
        status  => $res->code,
        body    => $res->body,
        json    => $res->code ? $res->json : undef,
        headers => $res->headers,
        error   => ($err && !$res->code) ? $err->{message} : undef,
    };
}


###############################################################################

sub DESTROY {
    my ($self) = @_;

    # waitpid in stop would clobber the exit status of the test
    local ($?, $!, $@);
    $self->stop if $self->{owner} && $$ == $self->{owner};
}

# exit on INT/TERM so END runs and nginx is not left behind
for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} //= sub { print STDERR "killed by SIG$sig\n"; exit 1 };
}

END {
    local ($?, $!, $@);

    for my $t (grep { defined } @instances) {
        $t->stop if $$ == $t->{owner};
    }
}

1;
