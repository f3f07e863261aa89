#!/usr/bin/perl

# A data key's rotation reaches the snapshots' files: a start with a new
# key and the old one after it seals every image file anew with the new
# key (written beside, fsync'd, renamed over the old one), as compaction
# does the journal, so that the old key can go and every image still
# reads back byte for byte; a second such start has nothing left to do,
# and a re-seal's file left by a crash is removed.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha256);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Room qw(:all);
use Teleclinic::WS;

###############################################################################

my $t = room(http => 'teleclinic_data_key_file %%REPO%%/conf/data.key;');

my $API = '/api/v1';
my ($p1) = book_soon($t, 'doc-a', 1);
my $doc = login($t, 'doc-a');
my $dir = $t->prefix . '/teleclinic/snapshots';
my $rec = "$API/appointments/$p1->{id}/record";

# a run of bytes that no sealed file may show
my $MARK = 'TELECLINIC-ROTATION-MARK-' x 4;
my @images = (
    [ 'image/png', "\x89PNG\r\n\x1a\n" . ($MARK . pack('N*', 0 .. 255)) x 4 ],
    [ 'image/jpeg', "\xff\xd8\xff\xe0\0\x10JFIF\0" . $MARK . ("\x5a" x 3000) ],
);

sub kid_of {
    my ($hex) = @_;
    $hex =~ s/\s+//g;
    return substr(sha256(pack 'H*', $hex), 0, 4);
}

my $old_key = $t->read_file($t->repo . '/conf/data.key');
my $new_key = join('', map { sprintf '%02x', int rand 256 } 1 .. 32);
$t->write_file('new.key', "$new_key\n");
my ($old_kid, $new_kid) = (kid_of($old_key), kid_of($new_key));

sub file_of { "$dir/$p1->{id}-$_[0]" }

sub kid_in {
    my ($sid) = @_;
    open my $fh, '<', file_of($sid) or return '';
    binmode $fh;
    read $fh, my $kid, 4;
    return $kid;
}

sub images_read {
    my ($what, @sid) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    for my $i (0 .. $#sid) {
        my $g = $t->http(GET => "$rec/snapshots/$sid[$i]",
                         headers => { Authorization => "Bearer $doc" });
        is($g->{status}, 200, "$what: snapshot $sid[$i] reads");
        ok(defined $g->{body} && $g->{body} eq $images[$i][1],
           "$what: snapshot $sid[$i] is byte-identical");
    }
}

sub with_keys {
    my (@keys) = @_;
    my $conf = $t->read_file('nginx.conf');
    $conf =~ s{teleclinic_data_key_file [^;]+;}
              {teleclinic_data_key_file @keys;}
        or die 'no data key in the conf';
    $t->write_file('nginx.conf', $conf);
}

sub resealed_count {
    my @n = $t->error_log =~ /sealed (\d+) snapshots anew/g;
    return scalar @n;
}

###############################################################################
# two snapshots under the old key

my ($pws) = patient($t, $p1);
my ($dws) = doctor_console($t, 'doc-a');
$dws->send_json({ type => 'call_next' });
my $ring = $pws->recv_json(type => 'ring');
$pws->send_json({ type => 'accept', call => $ring->{call} });
$dws->recv_json(type => 'call');

my @sid;
for my $image (@images) {
    $dws->send_json({ type => 'snapshot_request', call => $ring->{call} });
    my $asked = $pws->recv_json(type => 'snapshot_request');
    $pws->send_json({ type => 'snapshot_consent', call => $ring->{call},
                      request => $asked->{request}, granted => \1 });
    my $c = $dws->recv_json(type => 'snapshot_consent');
    my $r = $t->http(POST => "$rec/snapshots?request=$c->{request}",
                     headers => { Authorization => "Bearer $doc",
                                  'Content-Type' => $image->[0] },
                     body => $image->[1]);
    is($r->{status}, 201, "a $image->[0] snapshot");
    push @sid, $r->{json}{id};
}

$pws->close(1000);
$dws->close(1000);

is(kid_in($_), $old_kid, "snapshot $_ is sealed with the old key") for @sid;

###############################################################################
# the rotation: the new key first, the old one after it

$t->stop;

# a re-seal's file that a crash left before its rename
$t->write_file("teleclinic/snapshots/$p1->{id}-$sid[0].new", 'left over');

with_keys($t->prefix . '/new.key', $t->repo . '/conf/data.key');
$t->start;

like($t->error_log, qr/compacted/, 'the journal is compacted');
like($t->error_log, qr/sealed 2 snapshots anew with the first data key/,
     'the two files are sealed anew');
is(kid_in($_), $new_kid, "snapshot $_ is sealed with the new key") for @sid;
is(-s file_of($sid[$_]), length($images[$_][1]) + 32,
   "snapshot $sid[$_]: the image and the seal's 32 bytes") for 0 .. $#sid;

opendir(my $dh, $dir) or die "$dir: $!";
my @left = grep { /\.new$/ } readdir $dh;
closedir $dh;
is_deeply(\@left, [], 'no re-seal\'s file is left');

images_read('during the rotation', @sid);

# the next start with both keys finds nothing to seal
$t->stop;
$t->start;
is(resealed_count(), 1, 'a second start seals nothing anew');
$t->stop;

###############################################################################
# the old key gone: every image still reads, none in clear on disk

with_keys($t->prefix . '/new.key');
$t->start;

images_read('the new key alone', @sid);

opendir($dh, $dir) or die "$dir: $!";
my $found = 0;
for my $f (grep { !/^\./ } readdir $dh) {
    my $bytes = $t->read_file("teleclinic/snapshots/$f");
    $found++ if index($bytes, 'TELECLINIC-ROTATION-MARK') >= 0
                || index($bytes, "\x5a" x 16) >= 0;
}
closedir $dh;
is($found, 0, 'no file shows the images\' bytes');

$t->stop;

done_testing();
