#!/usr/bin/perl

# The visit record: the appointment's doctor writes the note,
# prescriptions, orders and follow-ups while it is open and closes it once
# the visit's call has taken place; then it is final (409 record_final)
# but for addenda; the patient sees it only once final and rates the visit
# once; another doctor, the patient and the admin key get what they may;
# bad bodies get the right 4xx; the record survives kill -9, sealed in
# the journal; $teleclinic_action names each request.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(admin_auth day_ahead);
use Teleclinic::Room qw(:all);
use Teleclinic::WS;

###############################################################################

my $t = room(http => <<'EOF');
teleclinic_data_key_file %%REPO%%/conf/data.key;
log_format audit '$teleclinic_action $teleclinic_actor $teleclinic_appointment $status';
access_log %%PREFIX%%/logs/audit.log audit;
EOF

my $API = '/api/v1';
my ($p1, $p2) = book_soon($t, 'doc-a', 2);
my $doc = login($t, 'doc-a');
my $other = login($t, 'doc-b');
my $admin = admin_auth()->{Authorization} =~ s/^Bearer //r;

sub rec_url { "$API/appointments/$_[0]{id}/record" . ($_[1] // '') }

sub req {
    my ($method, $url, $token, $body) = @_;
    return $t->http($method => $url,
                    headers => { Authorization => "Bearer $token" },
                    defined $body ? (body => $body) : ());
}

sub code_is {
    my ($r, $status, $code, $what) = @_;
    is($r->{status}, $status, "$what: $status");
    is(($r->{json} // {})->{error}{code}, $code, "$what: $code")
        if defined $code;
}

###############################################################################
# before anything is written

my $r = req(GET => rec_url($p1), $doc);
is($r->{status}, 200, 'the doctor reads an empty record');
is($r->{json}{status}, 'open', 'empty record: open');
is($r->{json}{appointment}, $p1->{id}, 'empty record: the appointment');
is_deeply($r->{json}{note}, { map { $_ => '' }
                              qw(complaint history findings diagnosis advice) },
          'empty record: an empty note');
is_deeply([ map { scalar @{ $r->{json}{$_} } }
            qw(prescriptions orders followups snapshots addenda) ],
          [0, 0, 0, 0, 0], 'empty record: no items');
ok(!defined $r->{json}{rating}, 'empty record: no rating');

code_is(req(GET => rec_url($p1), $p1->{token}), 404, 'no_record',
        'the patient before it is final');
is(req(GET => rec_url($p1), $admin)->{status}, 200, 'the admin key reads it');
code_is($t->http(GET => rec_url($p1)), 401, 'unauthorized', 'no token');
code_is(req(GET => rec_url($p1), $other), 403, 'forbidden', 'another doctor');
code_is(req(GET => rec_url($p1), $p2->{token}), 403, 'forbidden',
        'another appointment\'s patient');
code_is(req(GET => "$API/appointments/0123456789abcdef/record", $doc), 404,
        'unknown_appointment', 'an unknown appointment');

###############################################################################
# the doctor's own day (the console's list of today's appointments)

$r = req(GET => "$API/doctor/appointments", $doc);
is($r->{status}, 200, "the doctor's own day: 200");
is_deeply([ map { $_->{id} } @{ $r->{json} // [] } ],
          [ $p1->{id}, $p2->{id} ], "the doctor's own day: both, in order");
is(($r->{json} // [{}])->[0]{patient}{name}, $p1->{name},
   "the doctor's own day: with the patient's name");
(my $today = $p1->{start}) =~ s/T.*//;
is_deeply([ map { $_->{id} }
            @{ req(GET => "$API/doctor/appointments?date=$today",
                   $doc)->{json} // [] } ],
          [ $p1->{id}, $p2->{id} ], "the doctor's own day by its date");
is_deeply(req(GET => "$API/doctor/appointments", $other)->{json}, [],
          "another doctor's own day does not list them");
code_is(req(GET => "$API/doctor/appointments?date=2026-02-30", $doc), 400,
        'invalid_date', "the doctor's own day of a bad date");
code_is(req(GET => "$API/doctor/appointments", $p1->{token}), 403,
        'forbidden', "a patient's token on the doctor's day");
code_is($t->http(GET => "$API/doctor/appointments"), 401, 'unauthorized',
        "the doctor's day without a token");

###############################################################################
# the note

my %note = (complaint => "cough for two weeks\nworse at night",
            history => 'no smoking; asthma as a child',
            findings => "wheeze, T 37.9 \x{b0}C",
            diagnosis => "acute bronchitis \x{6025}\x{6027}\x{652f}",
            advice => "rest, fluids\tand a follow-up");

$r = req(PUT => rec_url($p1, '/note'), $doc, \%note);
is($r->{status}, 200, 'PUT note: 200');
is_deeply($r->{json}{note}, \%note, 'PUT note: the record with the note');

code_is(req(PUT => rec_url($p1, '/note'), $p1->{token}, \%note), 403,
        'forbidden', 'the patient writes the note');
code_is(req(PUT => rec_url($p1, '/note'), $admin, \%note), 403, 'forbidden',
        'the admin key writes the note');
code_is(req(PUT => rec_url($p1, '/note'), $other, \%note), 403, 'forbidden',
        'another doctor writes the note');

code_is(req(PUT => rec_url($p1, '/note'), $doc, { diagnosis => 42 }), 422,
        'invalid_type', 'a number for a text');
code_is(req(PUT => rec_url($p1, '/note'), $doc,
            { advice => 'x' x 4001 }), 422, 'invalid_length',
        '4001 characters');
is(req(PUT => rec_url($p1, '/note'), $doc, { advice => "\x{754c}" x 4000 })
   ->{status}, 200, '4000 characters of three bytes each');
code_is(req(PUT => rec_url($p1, '/note'), $doc,
            { findings => "bell\x07" }), 422, 'invalid_characters',
        'a control character');
code_is(req(PUT => rec_url($p1, '/note'), $doc, [1]), 422, 'invalid_body',
        'an array');
$r = $t->http(PUT => rec_url($p1, '/note'),
              headers => { Authorization => "Bearer $doc" }, body => '{"x":');
code_is($r, 400, 'malformed_json', 'malformed JSON');

$r = req(PUT => rec_url($p1, '/note'), $doc, \%note);
is_deeply($r->{json}{note}, \%note, 'the note again');

###############################################################################
# items

my %rx = (drug => 'amoxicillin', dose => '500 mg', frequency => '3 x a day',
          days => 7, quantity => 21, note => 'after meals');
$r = req(POST => rec_url($p1, '/prescriptions'), $doc, \%rx);
is($r->{status}, 201, 'a prescription: 201');
my $rx1 = $r->{json}{id};
ok($rx1, 'a prescription: its id');

$r = req(POST => rec_url($p1, '/prescriptions'), $doc,
         { drug => 'paracetamol', dose => '1 g', frequency => 'when needed' });
is($r->{status}, 201, 'a prescription without days and quantity');
my $rx2 = $r->{json}{id};
isnt($rx2, $rx1, 'a new id');

code_is(req(POST => rec_url($p1, '/prescriptions'), $doc,
            { dose => '1', frequency => '1' }), 422, 'missing_field',
        'no drug');
code_is(req(POST => rec_url($p1, '/prescriptions'), $doc,
            { %rx, drug => 'NOT A DRUG' }), 422, 'unknown_drug',
        'a drug that is no formulary id');
code_is(req(POST => rec_url($p1, '/prescriptions'), $doc,
            { %rx, days => 0 }), 422, 'invalid_field', '0 days');
code_is(req(POST => rec_url($p1, '/prescriptions'), $doc,
            { %rx, quantity => '21' }), 422, 'invalid_type',
        'a quantity as a string');

$r = req(POST => rec_url($p1, '/orders'), $doc,
         { exam => 'chest-x-ray', note => 'PA view' });
is($r->{status}, 201, 'an order: 201');
my $order = $r->{json}{id};
code_is(req(POST => rec_url($p1, '/orders'), $doc, { note => 'x' }), 422,
        'missing_field', 'an order without exam');

my $due = day_ahead(14);
$r = req(POST => rec_url($p1, '/followups'), $doc,
         { kind => 'revisit', note => 'in two weeks', due => $due });
is($r->{status}, 201, 'a follow-up: 201');
code_is(req(POST => rec_url($p1, '/followups'), $doc, { kind => 'party' }),
        422, 'invalid_field', 'an unknown follow-up kind');
code_is(req(POST => rec_url($p1, '/followups'), $doc,
            { kind => 'payment', due => '2026-02-30' }), 422, 'invalid_field',
        'a due date that is no date');
is(req(POST => rec_url($p1, '/followups'), $doc, { kind => 'pharmacy' })
   ->{status}, 201, 'a follow-up without note and due');

code_is(req(POST => rec_url($p1, '/prescriptions'), $p1->{token}, \%rx), 403,
        'forbidden', 'the patient prescribes');
code_is(req(POST => rec_url($p1, '/nonsense'), $doc, {}), 404, 'not_found',
        'an unknown kind of item');

$r = req(DELETE => rec_url($p1, "/prescriptions/$rx2"), $doc);
is($r->{status}, 200, 'DELETE a prescription: 200');
is_deeply([ map { $_->{id} } @{ $r->{json}{prescriptions} } ], [$rx1],
          'DELETE: the other prescription stays');
code_is(req(DELETE => rec_url($p1, "/prescriptions/$rx2"), $doc), 404,
        'not_found', 'DELETE it again');
code_is(req(DELETE => rec_url($p1, "/prescriptions/$order"), $doc), 404,
        'not_found', 'DELETE an order as a prescription');
code_is(req(DELETE => rec_url($p1, "/followups/1"), $doc), 404,
        'not_found', 'follow-ups are not deleted');

$r = req(GET => rec_url($p1), $doc);
my $rec = $r->{json};
is_deeply({ map { $_ => $rec->{prescriptions}[0]{$_} } keys %rx }, \%rx,
          'the prescription as written');
is($rec->{orders}[0]{exam}, 'chest-x-ray', 'the order');
is($rec->{followups}[0]{due}, $due, 'the follow-up\'s due date');
is($rec->{followups}[0]{kind}, 'revisit', 'the follow-up\'s kind');
ok(epoch($rec->{prescriptions}[0]{at}), 'an item has its time');

###############################################################################
# closing

code_is(req(POST => rec_url($p1, '/close'), $doc), 409, 'visit_not_held',
        'close before the visit');
code_is(req(POST => "$API/appointments/$p1->{id}/rating", $p1->{token},
            { score => 5 }), 409, 'visit_not_held', 'rate before the visit');

# the visit
my ($pws) = patient($t, $p1);
my ($dws) = doctor_console($t, 'doc-a');
$dws->send_json({ type => 'call_next' });
my $ring = $pws->recv_json(type => 'ring');
$pws->send_json({ type => 'accept', call => $ring->{call} });
ok($dws->recv_json(type => 'call'), 'the call');
$dws->send_json({ type => 'hangup', call => $ring->{call} });
ok($pws->recv_json(type => 'ended'), 'the call ended');
$pws->close(1000);
$dws->close(1000);

code_is(req(POST => rec_url($p1, '/close'), $p1->{token}), 403, 'forbidden',
        'the patient closes');
$r = req(POST => rec_url($p1, '/close'), $doc);
is($r->{status}, 200, 'close: 200');
is($r->{json}{status}, 'final', 'close: final');
ok(epoch($r->{json}{closed}), 'close: its time');

code_is(req(POST => rec_url($p1, '/close'), $doc), 409, 'record_final',
        'close again');
code_is(req(PUT => rec_url($p1, '/note'), $doc, \%note), 409, 'record_final',
        'the note of a final record');
code_is(req(POST => rec_url($p1, '/prescriptions'), $doc, \%rx), 409,
        'record_final', 'a prescription on a final record');
code_is(req(DELETE => rec_url($p1, "/prescriptions/$rx1"), $doc), 409,
        'record_final', 'DELETE on a final record');

$r = req(POST => rec_url($p1, '/addenda'), $doc,
         { text => 'culture came back negative' });
is($r->{status}, 201, 'an addendum to the final record: 201');
code_is(req(POST => rec_url($p1, '/addenda'), $doc, {}), 422,
        'missing_field', 'an addendum without text');

$r = req(GET => rec_url($p1), $p1->{token});
is($r->{status}, 200, 'the patient reads the final record');
is_deeply($r->{json}{note}, \%note, 'the patient sees the note');
is($r->{json}{addenda}[0]{text}, 'culture came back negative',
   'the patient sees the addendum');

###############################################################################
# the rating

my $rating = "$API/appointments/$p1->{id}/rating";
code_is(req(POST => $rating, $doc, { score => 5 }), 403, 'forbidden',
        'the doctor rates');
code_is(req(POST => $rating, $p1->{token}, { score => 6 }), 422,
        'invalid_field', 'score 6');
code_is(req(POST => $rating, $p1->{token}, {}), 422, 'missing_field',
        'no score');
$r = req(POST => $rating, $p1->{token}, { score => 4, comment => 'kind' });
is($r->{status}, 201, 'the rating: 201');
is($r->{json}{score}, 4, 'the rating: its score');
code_is(req(POST => $rating, $p1->{token}, { score => 5 }), 409,
        'already_rated', 'a second rating');
code_is(req(POST => "$API/appointments/$p2->{id}/rating", $p2->{token},
            { score => 5 }), 409, 'visit_not_held', 'a visit not held');

my $m0 = metrics($t);
is($m0->{'teleclinic_records_closed_total'}, 1, 'metrics: one record closed');
is($m0->{'teleclinic_rating_bucket{le="3"}'}, 0, 'metrics: no rating <= 3');
is($m0->{'teleclinic_rating_bucket{le="4"}'}, 1, 'metrics: one rating <= 4');
is($m0->{'teleclinic_rating_count'}, 1, 'metrics: one rating');
is($m0->{'teleclinic_rating_sum'}, 4, 'metrics: the ratings\' sum');

###############################################################################
# durable and sealed

my $before = req(GET => rec_url($p1), $doc)->{json};
is($before->{rating}{comment}, 'kind', 'the record shows the rating');

$t->kill9;
$t->start;

is_deeply(req(GET => rec_url($p1), $doc)->{json}, $before,
          'kill -9 and start: the same record');

my $journal = $t->read_file('state/journal');
for my $secret ('acute bronchitis', 'cough for two weeks', 'after meals',
                'culture came back', 'in two weeks') {
    ok(index($journal, $secret) < 0, "the journal does not hold \"$secret\"");
}

# a start with an old data key after the new one compacts the journal:
# the records come back from the events compaction wrote
$t->stop;
$t->write_file('new.key', join('', map { sprintf '%02x', int rand 256 }
                                       1 .. 32) . "\n");
my $conf = $t->read_file('nginx.conf');
$conf =~ s{(teleclinic_data_key_file )(\S+);}{$1 . $t->prefix . "/new.key $2;"}e
    or die 'no data key in the conf';
$t->write_file('nginx.conf', $conf);
$t->start;

like($t->error_log, qr/compacted/, 'a compacting start');
is_deeply(req(GET => rec_url($p1), $doc)->{json}, $before,
          'after compaction: the same record');

my $m = metrics($t);
is($m->{'teleclinic_records_closed_total'}, 0,
   'metrics: closing before this start is not counted again');

for my $secret ('bronchitis', 'cough for two weeks', 'after meals',
                'culture came back') {
    ok(index($t->error_log, $secret) < 0,
       "the error log (info) does not hold \"$secret\"");
}

###############################################################################
# the audit trail

my $audit = $t->read_file('logs/audit.log');
for my $line ('record_read doctor', 'note doctor', 'prescribe doctor',
              'order doctor', 'followup doctor', 'close doctor',
              'addendum doctor', 'rating patient') {
    like($audit, qr/^\Q$line\E $p1->{id} 2\d\d$/m, "audit: $line");
}
like($audit, qr/^day doctor - 200$/m, "audit: the doctor's day");

$t->stop;

done_testing;
