#!/usr/bin/perl

# The README's directive reference, variables and API table agree with the
# code: every directive, variable and route the module has is documented,
# and the README documents nothing the module lacks.

use strict;
use warnings;

use Test::More;
use File::Basename qw(dirname);
use Cwd qw(abs_path);

my $repo = abs_path(dirname(__FILE__) . '/..');

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!";
    local $/;
    return <$fh>;
}

my $readme = slurp("$repo/README.md");
my $code = join '', map { slurp($_) } glob("$repo/src/*.c $repo/src/*/*.c");

# directives: the ngx_command_t tables
my %directives;
while ($code =~ /\{\s*ngx_string\("(teleclinic_[a-z0-9_]+)"\),\s*NGX_/g) {
    $directives{$1} = 1;
}

ok(scalar(keys %directives) >= 10, 'directives found in the code');

for my $d (sort keys %directives) {
    like($readme, qr/^### \Q$d\E\n\n\*\*Syntax:\*\* `\Q$d\E[ ;]/m,
         "README documents directive $d");
}

my @documented = $readme =~ /^### (teleclinic_[a-z0-9_]+)$/mg;
for my $d (@documented) {
    ok($directives{$d}, "README's directive $d exists in the code");
}

my @blocks = split /^### /m, $readme;
for my $b (grep { /^teleclinic_/ } @blocks) {
    my ($name) = $b =~ /^(\S+)/;
    like($b, qr/\*\*Default:\*\*.*\n\*\*Context:\*\* \S/,
         "$name has Default and Context");
}

# variables: the ngx_http_variable_t table
my @vars = $code =~ /\{\s*ngx_string\("(teleclinic_[a-z0-9_]+)"\),\s*NULL,/g;
ok(@vars >= 3, 'variables found in the code');

for my $v (@vars) {
    like($readme, qr/`\$\Q$v\E`/, "README documents variable \$$v");
}

# routes: the route table in the booking API
my @routes;
while ($code =~ /\{\s*NGX_HTTP_([A-Z]+),\s*\{\s*([^}]*)\},/g) {
    my ($method, $path) = ($1, $2);
    my @seg = $path =~ /"([^"]+)"/g;
    push @routes, [$method, join('/', @seg)];
}

ok(@routes >= 10, 'routes found in the code');

my %table;
for my $line ($readme =~ /^\| `([A-Z]+ \/api\/v1\/[^`]*)`/mg) {
    my ($method, $path) = split / /, $line, 2;
    $path =~ s{^/api/v1/}{};
    $path =~ s{\[.*\]}{};
    $path =~ s{\?.*}{};
    $path =~ s{\{[a-z]+\}}{*}g;
    $table{"$method $path"} = 1;
}

for my $r (@routes) {
    my $key = "$r->[0] $r->[1]";
    ok($table{$key}, "README's API table has $key");
}

is(scalar(keys %table), scalar(@routes),
   'the API table has no route the code lacks');

# what make run sets up is named where a newcomer reads: the metrics URL
# of conf/nginx.conf, where the state is kept, and the limits it sets
my $conf = slurp("$repo/conf/nginx.conf");
my $run = slurp("$repo/bin/teleclinic-run");

my ($metrics) = $conf =~ /location\s*=\s*(\S+)\s*\{[^}]*teleclinic_metrics;/;
ok($metrics, 'conf/nginx.conf has a metrics location');
like($readme, qr{http://127\.0\.0\.1:8080\Q$metrics\E\b},
     "the README names make run's metrics URL");

my ($var) = $run =~ /\$\{(TELECLINIC_[A-Z]+):-/;
ok($var, 'bin/teleclinic-run takes its state directory from the env');
like($readme, qr/`\Q$var\E`/, "the README names $var");

for my $limit ($conf =~ /^\s*(limit_(?:req|conn)\s+[^;]*);/mg) {
    (my $re = quotemeta $limit) =~ s/\\\s+/\\s+/g;
    like($readme, qr/$re/, "the README's example shows $limit");
}

like($conf, qr/^error_log\s+\S+\s+notice;/m, "the demo logs at notice");

done_testing();
