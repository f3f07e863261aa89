#!/usr/bin/perl

# The reference docs agree with the code: every directive (docs/http.md or
# docs/stream.md, by the module whose command table has it, alphabetical),
# variable (docs/http.md) and route (docs/api.md) the module has is
# documented, and the docs document nothing the module lacks; the README
# keeps the quick start and links every docs file.

use strict;
use warnings;

use Test::More;
use File::Basename qw(dirname);
use Cwd qw(abs_path);
use File::Find qw(find);

my $repo = abs_path(dirname(__FILE__) . '/..');

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!";
    local $/;
    return <$fh>;
}

my $readme = slurp("$repo/README.md");
my %doc = map { $_ => slurp("$repo/docs/$_.md") } qw(http stream api);

# src/**/*.c: the files may live in src/, src/http/ or src/stream/
my @src;
find(sub { push @src, $File::Find::name if /\.c$/ }, "$repo/src");
@src = sort @src;
ok(@src, 'source files found');

my $code = join '', map { slurp($_) } @src;

# directives: the ngx_command_t tables; a stream module's file documents
# in docs/stream.md, every other in docs/http.md
my %directives;
for my $f (@src) {
    my $text = slurp($f);
    my $kind = $f =~ m{(?:^|/)ngx_stream_[^/]*$} ? 'stream' : 'http';
    while ($text =~ /\{\s*ngx_string\("(teleclinic_[a-z0-9_]+)"\),\s*NGX_/g) {
        $directives{$1} = $kind;
    }
}

ok(scalar(keys %directives) >= 10, 'directives found in the code');

for my $d (sort keys %directives) {
    my $kind = $directives{$d};
    like($doc{$kind}, qr/^### \Q$d\E\n\n\*\*Syntax:\*\* <code>\Q$d\E[ ;]/m,
         "docs/$kind.md documents directive $d");
    # the repository hook greps the README for every directive's name
    like($readme, qr/\Q$d\E/, "README names directive $d");
    like($readme, qr{\(docs/\Q$kind\E\.md#\Q$d\E\)},
         "README's index links $d");
}

for my $kind (qw(http stream)) {
    my @documented = $doc{$kind} =~ /^### (teleclinic_[a-z0-9_]+)$/mg;
    ok(@documented, "docs/$kind.md has directives");
    for my $d (@documented) {
        is($directives{$d}, $kind, "docs/$kind.md's directive $d exists "
           . "in the $kind module");
    }
    is_deeply(\@documented, [sort @documented],
              "docs/$kind.md's directives are alphabetical");

    my @blocks = split /^### /m, $doc{$kind};
    for my $b (grep { /^teleclinic_/ } @blocks) {
        my ($name) = $b =~ /^(\S+)/;
        # nginx.org's form: the parameters in italics, literals as they are
        my ($syntax) = $b =~ /^\*\*Syntax:\*\* <code>(.*)<\/code>$/m;
        ok(defined $syntax, "$name: Syntax in <code>");
        (my $bare = $syntax // '') =~ s{<i>.*?</i>}{}g;
        $bare =~ s/^\Q$name\E//;
        my $literal = qr/(?:on|off|http|fsync|thread_pool|burst|sentinel)\b/;
        unlike($bare, qr/\b(?!$literal)[a-z_]{2,}\b(?!=)/,
               "$name: every parameter of its Syntax is marked");
        like($b, qr/^\*\*Syntax:\*\*\ \S.*\n
                    \*\*Default:\*\*.*\n
                    \*\*Context:\*\*\ \S/mx,
             "$name has Syntax, Default and Context on their own lines");
    }
}

# the reference is no longer in the README
unlike($readme, qr/^\*\*Syntax:\*\*/m, 'README has no directive reference');

# variables: the ngx_http_variable_t table
my @vars = $code =~ /\{\s*ngx_string\("(teleclinic_[a-z0-9_]+)"\),\s*NULL,/g;
ok(@vars >= 3, 'variables found in the code');

for my $v (@vars) {
    like($doc{http}, qr/`\$\Q$v\E`/, "docs/http.md documents variable \$$v");
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
for my $line ($doc{api} =~ /^\| `([A-Z]+ \/api\/v1\/[^`]*)`/mg) {
    my ($method, $path) = split / /, $line, 2;
    $path =~ s{^/api/v1/}{};
    $path =~ s{\[.*\]}{};
    $path =~ s{\?.*}{};
    $path =~ s{\{[a-z]+\}}{*}g;
    $table{"$method $path"} = 1;
}

for my $r (@routes) {
    my $key = "$r->[0] $r->[1]";
    ok($table{$key}, "docs/api.md's API table has $key");
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

my @limits = $conf =~ /^\s*(limit_(?:req|conn)\s+[^;]*);/mg;
ok(@limits >= 4, 'conf/nginx.conf sets limits per client address');

for my $limit (@limits) {
    (my $re = quotemeta $limit) =~ s/\\\s+/\\s+/g;
    like($readme, qr/$re/, "the README's example shows $limit");
}

# the README is the quick start and the way to the rest
like($readme, qr/`make run`/, 'README shows make run');
like($readme, qr/`make test`/, 'README shows make test');
for my $f (qw(docs/http.md docs/stream.md docs/api.md docs/protocol.md
              docs/operations.md docs/architecture.md bench/README.md))
{
    ok(-f "$repo/$f", "$f exists");
    like($readme, qr/\]\(\Q$f\E\)/, "README links $f");
}

like($conf, qr/^error_log\s+\S+\s+notice;/m, "the demo logs at notice");

done_testing();
