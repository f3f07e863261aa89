package Teleclinic::Browser;

# The Perl side of the app's end-to-end tests: starts what `make run`
# starts (Teleclinic::Test's make_run: bin/teleclinic-run with
# conf/nginx.conf, the demo directory, the TURN relay), runs
# one Node.js script of t/browser/ against it (Debian's Chromium through
# playwright-core, see t/lib/browser.mjs), passes each of the script's TAP
# lines on as a test of its own, and stops nginx by its pid.  Skips when
# Chromium or the npm packages are not installed.

use strict;
use warnings;

use Exporter qw(import);
use File::Temp qw(tempdir);
use Test::More;

use Teleclinic::Test qw(make_run stop_make_run);

our @EXPORT = qw(run_browser_script);

my $REPO = Teleclinic::Test->repo;

sub run_browser_script {
    my ($script, %opts) = @_;

    my $chromium = $ENV{TELECLINIC_CHROMIUM} || '/usr/bin/chromium';

    plan skip_all => "no Chromium at $chromium" unless -x $chromium;
    plan skip_all => 'npm packages missing (npm ci)'
        unless -d "$REPO/node_modules/playwright-core"
               && -d "$REPO/node_modules/axe-core";

    # nginx, node and Chromium in a zone where it is about noon now, so
    # that a slot within check-in is today's whatever the hour (as
    # Teleclinic::Room does for the protocol tests); Etc/GMT-N is UTC+N
    my $off = 12 - (gmtime)[2];
    local $ENV{TZ} = sprintf('Etc/GMT%+d', -$off);

    my $var = tempdir(CLEANUP => 1);

    (my $name = $script) =~ s{.*/|\.mjs$}{}g;
    my $shots = "$REPO/build/screenshots/$name";
    system('rm', '-rf', $shots);

    # http => "...": directives added to make run's http{} (a test's own
    # variant of conf/nginx.conf, e.g. the hospital's SSO in front)
    my $conf;

    if (defined $opts{http}) {
        $conf = node_conf("$var/template.conf", $opts{http});
    }

    # nodes => 2: a second node of make run's configuration, both on a
    # Redis of the test's (TELECLINIC_BASE2 is the second; the first's
    # master pid is TELECLINIC_PID1 and Redis's TELECLINIC_REDIS_PID, for
    # the script to kill them)
    my (@more, $redis);

    if (($opts{nodes} // 1) > 1) {
        require Teleclinic::Redis;
        plan skip_all => 'redis-server is not installed'
            unless Teleclinic::Redis::available();

        $redis = Teleclinic::Redis->new;
        my @ports = map { Teleclinic::Test::free_port() } 1 .. 2;
        my @turn = map { Teleclinic::Test::free_port(udp => 1) } 1 .. 2;
        my $origins = join ' ', map { "http://127.0.0.1:$_" } @ports;

        for my $k (1, 2) {
            my $dir = $k == 1 ? $var : tempdir(CLEANUP => 1);
            my $relay = 49160 + ($k - 1) * 400;
            my $template = node_conf("$dir/template.conf", ($opts{http} // '')
                . "\n    teleclinic_redis 127.0.0.1:" . $redis->port . ';'
                . "\n    teleclinic_node node$k;"
                . "\n    teleclinic_websocket_origins $origins;",
                "$relay-" . ($relay + 399));
            push @more, { var => $dir, conf => $template,
                          port => $ports[$k - 1], turn_port => $turn[$k - 1] };
        }

        $conf = $more[0]{conf};
    }

    my $run = make_run(var => $var, conf => $conf,
                       @more ? (port => $more[0]{port},
                                turn_port => $more[0]{turn_port}) : ());
    my ($port, $turn_port) = @$run{qw(port turn_port)};
    my $run2;

    if (@more) {
        $run2 = make_run(%{ $more[1] });
        ok($run2->{up}, "the second node listens on $run2->{port}")
            or diag(slurp($run2->{log}));
    }

    ok($run->{up}, "teleclinic-run listens on $port")
        or diag(slurp($run->{log}));

    if ($run->{up}) {
        local $ENV{TELECLINIC_BASE} = "http://127.0.0.1:$port";
        local $ENV{TELECLINIC_TURN_PORT} = $turn_port;
        local $ENV{TELECLINIC_SHOTS} = $shots;
        local $ENV{TELECLINIC_VAR} = $var;
        local $ENV{TELECLINIC_BASE2} = $run2 ? "http://127.0.0.1:$run2->{port}" : '';
        local $ENV{TELECLINIC_PID1} = $run2 ? $run->{pid} : '';
        local $ENV{TELECLINIC_REDIS_PID} = $redis ? $redis->pid : '';

        note("screenshots of this test: $shots");

        open my $node, '-|', 'node', "$REPO/t/browser/$script"
            or die "node: $!";

        my $n = 0;

        while (my $line = <$node>) {
            chomp $line;

            if ($line =~ /^(not )?ok \d+ - (.*)$/) {
                ok(!$1, $2);
                $n++;
            } elsif ($line =~ /^#/) {
                note($line =~ s/^#\s?//r);
            } elsif ($line !~ /^1\.\.\d+$/) {
                diag($line);
            }
        }

        close $node;
        is($? >> 8, 0, "$script ran to its end ($n checks)");
    }

    stop_make_run($run) if kill 0, $run->{pid};

    if ($run2) {
        stop_make_run($run2);
        my @bad2 = grep { /\[(alert|emerg|crit)\]|AddressSanitizer/ }
                   split /\n/, slurp($run2->{log});
        ok(!@bad2, "the second node's log has no alert, crit or emerg")
            or diag(join "\n", @bad2);
        $redis->stop;
    }

    my $log = slurp($run->{log});
    my @bad = grep { /\[(alert|emerg|crit)\]|AddressSanitizer/ } split /\n/, $log;
    ok(!@bad, 'no alert, crit or emerg in the error log') or diag(join "\n", @bad);

    done_testing();
}

# make run's configuration with more http{} directives (after the
# teleclinic_zone line) and, given one, a TURN relay port range of its own
sub node_conf {
    my ($path, $http, $relay) = @_;

    open my $in, '<', "$REPO/conf/nginx.conf" or die "conf: $!";
    my $text = do { local $/; <$in> };
    $text =~ s/^(\s*teleclinic_zone .*)$/$1\n    $http/m
        or die 'no teleclinic_zone line in conf/nginx.conf';
    if (defined $relay) {
        $text =~ s/teleclinic_turn_relay_ports \d+-\d+;/teleclinic_turn_relay_ports $relay;/
            or die 'no teleclinic_turn_relay_ports line in conf/nginx.conf';
    }

    open my $out, '>', $path or die "$path: $!";
    print $out $text;
    close $out;

    return $path;
}

sub slurp {
    my ($file) = @_;
    open my $f, '<', $file or return '';
    local $/;
    return scalar <$f>;
}

1;
