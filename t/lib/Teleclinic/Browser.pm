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
        open my $in, '<', "$REPO/conf/nginx.conf" or die "conf: $!";
        my $text = do { local $/; <$in> };
        $text =~ s/^(\s*teleclinic_zone .*)$/$1\n    $opts{http}/m
            or die 'no teleclinic_zone line in conf/nginx.conf';
        $conf = "$var/template.conf";
        open my $out, '>', $conf or die "$conf: $!";
        print $out $text;
        close $out;
    }

    my $run = make_run(var => $var, conf => $conf);
    my ($port, $turn_port) = @$run{qw(port turn_port)};

    ok($run->{up}, "teleclinic-run listens on $port")
        or diag(slurp($run->{log}));

    if ($run->{up}) {
        local $ENV{TELECLINIC_BASE} = "http://127.0.0.1:$port";
        local $ENV{TELECLINIC_TURN_PORT} = $turn_port;
        local $ENV{TELECLINIC_SHOTS} = $shots;
        local $ENV{TELECLINIC_VAR} = $var;

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

    stop_make_run($run);

    my $log = slurp($run->{log});
    my @bad = grep { /\[(alert|emerg|crit)\]|AddressSanitizer/ } split /\n/, $log;
    ok(!@bad, 'no alert, crit or emerg in the error log') or diag(join "\n", @bad);

    done_testing();
}

sub slurp {
    my ($file) = @_;
    open my $f, '<', $file or return '';
    local $/;
    return scalar <$f>;
}

1;
