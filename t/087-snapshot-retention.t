#!/usr/bin/perl

# A record forgotten after teleclinic_record_retention takes its
# snapshots' files with it: the worker that forgot it removes those older
# than an hour (a younger one may be another worker's, not yet
# journaled), and the next start removes the rest.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Room qw(:all);
use Teleclinic::WS;

###############################################################################

my $t = room(http => "teleclinic_record_retention 2s;\n"
                     . 'teleclinic_data_key_file %%REPO%%/conf/data.key;');

my $API = '/api/v1';
my ($p1) = book_soon($t, 'doc-a', 1);
my $doc = login($t, 'doc-a');
my $dir = $t->prefix . '/teleclinic/snapshots';
my $rec = "$API/appointments/$p1->{id}/record";
my $png = "\x89PNG\r\n\x1a\n" . join('', map { chr } 0 .. 255);

my ($pws) = patient($t, $p1);
my ($dws) = doctor_console($t, 'doc-a');
$dws->send_json({ type => 'call_next' });
my $ring = $pws->recv_json(type => 'ring');
$pws->send_json({ type => 'accept', call => $ring->{call} });
$dws->recv_json(type => 'call');

my @sid;
for (1 .. 2) {
    $dws->send_json({ type => 'snapshot_request', call => $ring->{call} });
    my $asked = $pws->recv_json(type => 'snapshot_request');
    $pws->send_json({ type => 'snapshot_consent', call => $ring->{call},
                      request => $asked->{request}, granted => \1 });
    my $c = $dws->recv_json(type => 'snapshot_consent');
    my $r = $t->http(POST => "$rec/snapshots?request=$c->{request}",
                     headers => { Authorization => "Bearer $doc",
                                  'Content-Type' => 'image/png' },
                     body => $png);
    is($r->{status}, 201, "snapshot $_");
    push @sid, $r->{json}{id};
}

$dws->send_json({ type => 'hangup', call => $ring->{call} });
$pws->recv_json(type => 'ended');
$pws->close(1000);
$dws->close(1000);

is($t->http(POST => "$rec/close",
            headers => { Authorization => "Bearer $doc" })->{status}, 200,
   'closed');

my ($old, $young) = map { "$dir/$p1->{id}-$_" } @sid;
ok(-e $old && -e $young, 'both files are there');

# the first is older than the hour's margin
my $then = time - 2 * 3600;
utime($then, $then, $old) or die "utime $old: $!";

# past the retention; the workers sweep a second after their start
sleep 2.5;
$t->stop;
$t->start;

for (1 .. 100) {
    last unless -e $old;
    sleep 0.1;
}
ok(!-e $old, 'the forgotten record\'s old file is removed');
ok(-e $young, 'a file younger than an hour stays for now');
like($t->error_log, qr/visit records past their retention expired/,
     'the record was forgotten');

# the next start removes what no record names
$t->stop;
$t->start;
ok(!-e $young, 'the next start removes the younger file too');

$t->stop;

done_testing();
