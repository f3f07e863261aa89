#!/usr/bin/perl

# Patient data at rest: with teleclinic_data_key_file the journal holds
# the patient's name, phone and reason sealed (AES-256-GCM), never in
# clear; replay opens them; a second, old key still opens what it sealed
# during a rotation and compaction seals everything anew with the new
# key; a journal sealed with a key nginx is not given stops the start
# and is left whole; a journal written without a key still replays.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);

###############################################################################

my $t = Teleclinic::Test->new(workers => 2);
my $journal = $t->prefix . '/state/journal';

write_directory($t);
$t->write_file('key1', join('', map { sprintf '%02x', int rand 256 } 1 .. 32)
                       . "\n");
$t->write_file('key2', join('', map { sprintf '%02x', int rand 256 } 1 .. 32)
                       . "\n");

my %conf = (
    none     => conf(),
    key1     => conf(http => "teleclinic_data_key_file %%PREFIX%%/key1;"),
    key2     => conf(http => "teleclinic_data_key_file %%PREFIX%%/key2;"),
    rotation => conf(http => 'teleclinic_data_key_file %%PREFIX%%/key2 '
                             . '%%PREFIX%%/key1;'),
);

my @free;

sub journal_text {
    open my $fh, '<', $journal or return '';
    local $/;
    return scalar <$fh>;
}

sub book_patient {
    my ($tag) = @_;

    my %p = (name => "Zelda Quixote-$tag", phone => "+49 30 555 01$tag",
             reason => "persistent cough with fever $tag");
    my $r = book($t, shift @free, %p);
    is($r->{status}, 201, "booking $tag") or diag explain $r;

    return { %p, id => $r->{json}{id}, token => $r->{json}{token} };
}

sub seen_as_booked {
    my ($p, $what) = @_;

    my $r = appointment($t, $p->{id}, $p->{token});
    is($r->{status}, 200, "$what: the appointment is there");
    is($r->{json}{patient}{name}, $p->{name}, "$what: the name");
    is($r->{json}{patient}{phone}, $p->{phone}, "$what: the phone");
    is($r->{json}{reason}, $p->{reason}, "$what: the reason");
}

sub in_clear {
    my ($p) = @_;
    my $j = journal_text();
    return grep { index($j, $_) >= 0 } @$p{qw(name phone reason)};
}

# a start that must fail: its emerg line, and the journal as it was
sub refused {
    my ($conf, $what) = @_;

    my $size = -s $journal;
    my $from = length $t->error_log;

    ok(!eval { $t->run($conf); 1 }, "$what: nginx does not start");
    $t->stop if $t->is_running;

    like(substr($t->error_log, $from),
         qr/\[emerg\].*is sealed with a data key that teleclinic_data_key_file does not give/,
         "$what: the reason is logged");
    is(-s $journal, $size, "$what: the journal is left whole");
}

$t->allow_log(qr/is sealed with a data key that/);

###############################################################################
# sealed with one key

$t->run($conf{key1});

@free = free_slot_ids($t, 'gp-one', day_ahead(2));
my $x = book_patient('01');
seen_as_booked($x, 'key1');
is_deeply([ in_clear($x) ], [], 'key1: no name, phone or reason in clear')
    or diag explain [ in_clear($x) ];
like(journal_text(), qr/"ename":"[A-Za-z0-9_-]+"/,
     'key1: the name is sealed, as base64url');

$t->kill9;
$t->start;
seen_as_booked($x, 'key1, kill -9 and start');

$t->stop;

###############################################################################
# without the key, or with another one, nginx does not start

refused($conf{none}, 'no key');
refused($conf{key2}, 'another key');

###############################################################################
# rotation: the old key opens, the new one seals; compaction re-seals

$t->run($conf{rotation});
seen_as_booked($x, 'rotation');

like($t->error_log, qr/compacted/,
     'rotation: a start with an old key compacts the journal');

my $y = book_patient('02');
my $r = reschedule($t, $y->{id}, $y->{token}, shift @free);
is($r->{status}, 200, 'rotation: a reschedule');
$y->{token} = $r->{json}{token};

$t->stop;
$t->run($conf{rotation});

seen_as_booked($x, 'rotation, compacted');
seen_as_booked($y, 'rotation, compacted');
is_deeply([ in_clear($x), in_clear($y) ], [], 'compacted: nothing in clear');

$t->stop;

# after compaction the new key alone opens everything, the old one nothing
$t->run($conf{key2});
seen_as_booked($x, 'key2 alone after compaction');
seen_as_booked($y, 'key2 alone after compaction');
$t->stop;

refused($conf{key1}, 'the old key alone after compaction');

###############################################################################
# a journal written without a key replays with one; new records are sealed

unlink $journal or die "unlink $journal: $!";

$t->run($conf{none});
my $z = book_patient('03');
ok(scalar(in_clear($z)), 'no key: the journal holds the fields in clear');
$t->stop;

$t->run($conf{key1});
seen_as_booked($z, 'a plain journal, then a key');
my $w = book_patient('04');
is_deeply([ in_clear($w) ], [], 'then a key: new records are sealed');

$t->kill9;
$t->start;
seen_as_booked($z, 'plain and sealed records, kill -9');
seen_as_booked($w, 'plain and sealed records, kill -9');

$t->stop;

###############################################################################
# a key file that is not a key

$t->write_file('bad-key', "not a key\n");
my $from = length $t->error_log;
ok(!eval { $t->run(conf(http => 'teleclinic_data_key_file '
                                . '%%PREFIX%%/bad-key;')); 1 },
   'a bad key file: nginx does not start');
like(substr($t->error_log . ($@ // ''), $from),
     qr/the data key ".*bad-key" is not 32 bytes/, 'a bad key file: why');
$t->allow_log(qr/the data key/);

done_testing;
