#!/usr/bin/perl

# Records are kept teleclinic_record_retention after the visit, then
# forgotten through the journal (a replay forgets them too); a record
# whose Bundle the EMR has not taken stays until it has.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Room qw(:all);
use Teleclinic::WS;

###############################################################################

my $t = room(http => 'teleclinic_record_retention 2s;');

my $API = '/api/v1';
my ($p1, $p2) = book_soon($t, 'doc-a', 2);
my $doc = login($t, 'doc-a');

sub req {
    my ($method, $url, $token, $body) = @_;
    return $t->http($method => $url,
                    headers => { Authorization => "Bearer $token" },
                    defined $body ? (body => $body) : ());
}

# p1's visit takes place and its record is closed; p2's has a note only
for my $p ($p1, $p2) {
    is(req(PUT => "$API/appointments/$p->{id}/record/note", $doc,
           { diagnosis => "diagnosis of $p->{id}" })->{status}, 200,
       'a note');
}

my ($pws) = patient($t, $p1);
my ($dws) = doctor_console($t, 'doc-a');
$dws->send_json({ type => 'call_next' });
my $ring = $pws->recv_json(type => 'ring');
$pws->send_json({ type => 'accept', call => $ring->{call} });
$dws->recv_json(type => 'call');
$dws->send_json({ type => 'hangup', call => $ring->{call} });
$pws->recv_json(type => 'ended');
$pws->close(1000);
$dws->close(1000);

is(req(POST => "$API/appointments/$p1->{id}/record/close", $doc)->{status},
   200, 'closed');
is(req(GET => "$API/appointments/$p1->{id}/record", $p1->{token})
   ->{status}, 200, 'the patient reads it');

# past the retention, the next sweep (a second after a worker starts)
sleep 2.5;
$t->stop;
$t->start;

my $gone;
my $deadline = time + 10;
until ($gone || time > $deadline) {
    sleep 0.2;
    $gone = req(GET => "$API/appointments/$p1->{id}/record", $p1->{token})
            ->{status} == 404;
}
ok($gone, 'past its retention the record is forgotten');

my $r = req(GET => "$API/appointments/$p1->{id}/record", $doc);
is($r->{json}{note}{diagnosis}, '', 'the doctor finds an empty record');
like($t->error_log, qr/1 visit records past their retention expired/,
     'logged');

$r = req(GET => "$API/appointments/$p2->{id}/record", $doc);
is($r->{json}{note}{diagnosis}, "diagnosis of $p2->{id}",
   'a record of a visit yet to come stays');

like($t->read_file('state/journal'), qr/"op":"forget"/,
     'forgotten through the journal');

$t->kill9;
$t->start;

is(req(GET => "$API/appointments/$p1->{id}/record", $doc)
   ->{json}{note}{diagnosis}, '', 'kill -9 and start: still forgotten');

$t->stop;

done_testing;
