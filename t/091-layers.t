#!/usr/bin/perl

# The layering of src/: docs/architecture.md lists the files bottom-up,
# and each file may include and call only files listed before it (a .c
# file and its .h are one entry).  Files in src/ itself are the core: they
# include no http or stream header.  Upward calls go through handlers the
# module installs, which this check cannot see and does not need to.

use strict;
use warnings;

use Test::More;
use File::Basename qw(basename);

use FindBin;

my $ROOT = "$FindBin::Bin/..";

###############################################################################

# the entries of the first code block under "## Layers", bottom-up
sub layers {
    my ($text) = @_;

    my ($section) = $text =~ /^## Layers\n(.*?)(?=^## |\z)/ms
        or return ();
    my ($block) = $section =~ /^```\n(.*?)^```/ms
        or return ();

    return map { (split ' ', $_)[0] } grep { /^src\// } split /\n/, $block;
}

sub unit { my ($path) = @_; $path =~ s/\.[ch]$//; return $path }

sub strip {
    my ($src) = @_;
    $src =~ s{/\*.*?\*/}{ }gs;
    $src =~ s{"(?:\\.|[^"\\\n])*"}{""}g;
    return $src;
}

# %$files: path => source text; @$order: the layers' entries.  Returns the
# violations found, one line each.
sub check {
    my ($files, $order) = @_;

    my (@bad, %rank, %def);

    for my $i (0 .. $#$order) {
        push @bad, "$order->[$i]: listed twice" if exists $rank{unit($order->[$i])};
        $rank{unit($order->[$i])} = $i;
    }

    my %by_base = map { basename($_) => $_ } keys %$files;

    for my $path (sort keys %$files) {
        push @bad, "$path: not in the layers of docs/architecture.md"
            unless exists $rank{unit($path)};
    }

    for my $entry (@$order) {
        push @bad, "$entry: listed, but no such file"
            unless grep { unit($_) eq unit($entry) } keys %$files;
    }

    # a static function is its file's own: only the others link across
    my %static;

    for my $path (grep { /\.c$/ } keys %$files) {
        my $src = strip($files->{$path});

        while ($src =~ /^(static\s[^\n]*\n)?(ngx_\w*teleclinic\w*)\(/mg) {
            if ($1) {
                $static{$path}{$2} = 1;
            } else {
                $def{$2} = unit($path);
            }
        }
    }

    for my $path (sort keys %$files) {
        my $u = unit($path);
        next unless exists $rank{$u};
        my $core = $path =~ m{^src/[^/]+$};
        my $src = $files->{$path};

        while ($src =~ /^#include\s+([<"])([^>"]+)[>"]/mg) {
            my ($kind, $name) = ($1, $2);

            if ($core && $name =~ /^ngx_(http|stream)\b/) {
                push @bad, "$path: a core file includes $name";
            }

            next unless $kind eq '"';
            my $target = $by_base{$name};

            unless (defined $target) {
                push @bad, "$path: includes $name, which is not in src/";
                next;
            }

            my $t = unit($target);
            next unless exists $rank{$t};

            if ($rank{$t} > $rank{$u}) {
                push @bad, "$path: includes $name, which is above it";
            }
        }

        next unless $path =~ /\.c$/;

        my $code = strip($src);
        my %seen;

        while ($code =~ /\b(ngx_\w*teleclinic\w*)\s*\(/g) {
            my $f = $1;
            next if $static{$path}{$f};
            my $t = $def{$f};
            next unless defined $t && $t ne $u && exists $rank{$t};
            next if $seen{$f}++;

            if ($rank{$t} > $rank{$u}) {
                push @bad, "$path: calls $f() of $t, which is above it";
            }
        }
    }

    return @bad;
}

###############################################################################

# the check itself: a tree with each kind of fault is refused

my @faults = check({
    'src/ngx_teleclinic_low.c' => "#include <ngx_http.h>\n"
                                . "#include \"ngx_teleclinic_high.h\"\n"
                                . "void\nngx_teleclinic_low(void)\n{\n"
                                . "    ngx_teleclinic_high();\n}\n",
    'src/ngx_teleclinic_low.h' => '',
    'src/ngx_teleclinic_high.c' => "void\nngx_teleclinic_high(void)\n{\n"
                                 . "    /* ngx_teleclinic_low() */\n"
                                 . "    ngx_teleclinic_low();\n}\n",
    'src/ngx_teleclinic_high.h' => '',
    'src/ngx_teleclinic_stray.c' => '',
    # a static function of the same name as one above is not a call up
    'src/ngx_teleclinic_mid.c' => "static void\nngx_teleclinic_high(void)\n{\n}\n"
                                . "void\nngx_teleclinic_mid(void)\n{\n"
                                . "    ngx_teleclinic_high();\n}\n",
}, [ 'src/ngx_teleclinic_low.c', 'src/ngx_teleclinic_mid.c',
     'src/ngx_teleclinic_high.c',
     'src/ngx_teleclinic_gone.c' ]);

is_deeply([ sort @faults ], [ sort
    'src/ngx_teleclinic_low.c: a core file includes ngx_http.h',
    'src/ngx_teleclinic_low.c: includes ngx_teleclinic_high.h, which is above it',
    'src/ngx_teleclinic_low.c: calls ngx_teleclinic_high() of '
        . 'src/ngx_teleclinic_high, which is above it',
    'src/ngx_teleclinic_stray.c: not in the layers of docs/architecture.md',
    'src/ngx_teleclinic_gone.c: listed, but no such file',
], 'the check finds an upward include, an upward call, an http header in '
 . 'the core, a file left out and a file listed that is gone');

###############################################################################

# the tree as it is

open my $fh, '<', "$ROOT/docs/architecture.md" or die "architecture.md: $!";
my $doc = do { local $/; <$fh> };
close $fh;

my @order = layers($doc);
ok(@order > 10, 'docs/architecture.md lists the layers') or diag(
    'expected a "## Layers" section with a code block of src/ paths');

my %files;

for my $path (glob("$ROOT/src/*.[ch]"), glob("$ROOT/src/*/*.[ch]")) {
    open my $f, '<', $path or die "$path: $!";
    (my $rel = $path) =~ s{^\Q$ROOT\E/}{};
    $files{$rel} = do { local $/; <$f> };
    close $f;
}

ok(keys %files > 10, 'src/ has the sources');

my @bad = check(\%files, \@order);

# header guards follow the file's name, as nginx's do
for my $h (sort grep { /\.h$/ } keys %files) {
    my $want = '_' . uc(basename($h, '.h')) . '_H_INCLUDED_';
    push @bad, "$h: its guard is not $want"
        unless $files{$h} =~ /^#ifndef \Q$want\E\n#define \Q$want\E\n/m;
}

is(scalar @bad, 0, 'each file includes and calls only files below it, '
   . 'and its header guard follows its name')
    or diag(join "\n", @bad);

done_testing;
