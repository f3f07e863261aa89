#!/usr/bin/perl

# The visit record reaches the hospital: with teleclinic_records_url a
# closed record is POSTed to the EMR as a FHIR R4 transaction Bundle,
# signed like the notifications, retried until a 2xx, and so is the
# patient's rating in a Bundle of its own; every Bundle passes a FHIR R4
# validator we did not write; each follow-up reaches the messaging
# gateway as a "followup" message with its kind.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(hmac_sha256_hex);
use JSON::PP;
use MIME::Base64 ();

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Room qw(:all);
use Teleclinic::Gateway;
use Teleclinic::WS;

###############################################################################

my $EMR_SECRET = 'emr-secret-0123456789abcdef';
my $GW_SECRET = 'gateway-secret-0123456789';

my $emr_port = Teleclinic::Test::free_port();
my $gw_port = Teleclinic::Test::free_port();

my $t = room(http => <<"EOF");
teleclinic_public_url http://127.0.0.1:%%PORT%%;
teleclinic_formulary %%REPO%%/conf/formulary.json;
teleclinic_records_url http://127.0.0.1:$emr_port/fhir;
teleclinic_records_secret $EMR_SECRET;
teleclinic_notify_url http://127.0.0.1:$gw_port/notify;
teleclinic_notify_secret $GW_SECRET;
EOF

my $emr = Teleclinic::Gateway->new(port => $emr_port,
                                   log => $t->prefix . '/emr.log');
my $gw = Teleclinic::Gateway->new(port => $gw_port,
                                  log => $t->prefix . '/gateway.log');

# the EMR fails twice first: the Bundle is retried
$emr->start(fail => [500, 'close']);
$gw->start;

my $API = '/api/v1';
my ($p1) = book_soon($t, 'doc-a', 1);
my $doc = login($t, 'doc-a');

sub req {
    my ($method, $url, $token, $body) = @_;
    return $t->http($method => $url,
                    headers => { Authorization => "Bearer $token" },
                    defined $body ? (body => $body) : ());
}

my $rec = "$API/appointments/$p1->{id}/record";

is(req(PUT => "$rec/note", $doc, { complaint => 'cough',
                                   diagnosis => 'acute bronchitis',
                                   advice => 'rest' })->{status}, 200,
   'the note');

###############################################################################
# the formulary and the exam catalogue decide what can be ordered

is(req(POST => "$rec/prescriptions", $doc,
       { drug => 'no-such-drug', dose => '1', frequency => '1' })
   ->{json}{error}{code}, 'unknown_drug', 'a drug not in the formulary');
is(req(POST => "$rec/orders", $doc, { exam => 'no-such-exam' })
   ->{json}{error}{code}, 'unknown_exam', 'an exam not in the catalogue');

my $r = req(POST => "$rec/prescriptions", $doc,
            { drug => 'paracetamol-500', dose => '500 mg',
              frequency => 'when needed', days => 3, quantity => 10 });
is($r->{status}, 201, 'a prescription from the formulary');
is(req(POST => "$rec/orders", $doc, { exam => 'cbc', note => 'fasting' })
   ->{status}, 201, 'an order from the catalogue');

$r = req(POST => "$rec/followups", $doc,
         { kind => 'pharmacy', note => 'deliver to the home address',
           due => Teleclinic::Clinic::day_ahead(1) });
is($r->{status}, 201, 'a follow-up');

# the follow-up reaches the gateway at once, the record not yet
my $fu = $gw->wait_for(sub {
    (grep { (($_->{json} // {})->{type} // '') eq 'followup' } @_)[0] }, 15);
ok($fu, 'the gateway gets a followup message');
is($fu && $fu->{json}{followup}{kind}, 'pharmacy', 'followup: its kind');
is($fu && $fu->{json}{followup}{note}, 'deliver to the home address',
   'followup: its note');
is($fu && $fu->{json}{appointment}, $p1->{id}, 'followup: the appointment');
ok(!grep({ $_->{answer} eq '200' } $emr->requests),
   'nothing to the EMR before the record is closed');

###############################################################################
# the visit, then closing

my ($pws) = patient($t, $p1);
my ($dws) = doctor_console($t, 'doc-a');
$dws->send_json({ type => 'call_next' });
my $ring = $pws->recv_json(type => 'ring');
$pws->send_json({ type => 'accept', call => $ring->{call} });
$dws->recv_json(type => 'call');

# a snapshot under a granted consent, and a refused request
my $png = "\x89PNG\r\n\x1a\n" . "\0\0\0\rIHDR" . join('', map { chr } 0 .. 255);
my @consent;
for my $granted (1, 0) {
    $dws->send_json({ type => 'snapshot_request', call => $ring->{call} });
    my $asked = $pws->recv_json(type => 'snapshot_request');
    $pws->send_json({ type => 'snapshot_consent', call => $ring->{call},
                      request => $asked->{request},
                      granted => $granted ? \1 : \0 });
    push @consent, $dws->recv_json(type => 'snapshot_consent');
}
is($t->http(POST => "$rec/snapshots?request=$consent[0]{request}",
            headers => { Authorization => "Bearer $doc",
                         'Content-Type' => 'image/png' },
            body => $png)->{status}, 201, 'a snapshot under the consent');

$dws->send_json({ type => 'hangup', call => $ring->{call} });
$pws->recv_json(type => 'ended');
$pws->close(1000);
$dws->close(1000);

is(req(POST => "$rec/close", $doc)->{status}, 200, 'closed');

my $got = $emr->wait_for(sub {
    (grep { $_->{answer} eq '200' } @_)[0] }, 30);
ok($got, 'the EMR gets the record, after two failed attempts');

my @tries = $emr->requests;
is(scalar(@tries), 3, 'three attempts: 500, no answer, 200')
    or diag explain [ map { $_->{answer} } @tries ];
is_deeply([ map { $_->{body} } @tries[0, 1] ], [ ($got->{body}) x 2 ],
          'each attempt the same Bundle');
is($got->{path}, '/fhir', 'POSTed to the records URL');
is($got->{headers}{'content-type'}, 'application/json', 'as JSON');

my ($ts, $sig) = ($got->{headers}{'x-teleclinic-signature'} // '')
    =~ /^t=(\d+),sha256=([0-9a-f]{64})$/;
is($sig, hmac_sha256_hex("$ts.$got->{body}", $EMR_SECRET),
   'signed with teleclinic_records_secret');

my $bundle = $got->{json};
is($bundle->{resourceType}, 'Bundle', 'a Bundle');
is($bundle->{type}, 'transaction', 'a transaction');

my %types;
$types{ $_->{resource}{resourceType} }++ for @{ $bundle->{entry} };
for my $type (qw(Patient Encounter Condition MedicationRequest
                 ServiceRequest Task Media)) {
    ok($types{$type}, "the Bundle has a $type");
}
is($types{Consent}, 2, 'a Consent for each decision');

my ($media) = map { $_->{resource} } grep {
    $_->{resource}{resourceType} eq 'Media' } @{ $bundle->{entry} };
is($media->{content}{contentType}, 'image/png', 'Media: the content type');
ok(MIME::Base64::decode_base64($media->{content}{data} // '') eq $png,
   'Media: the image\'s bytes');
my @decisions = sort map { $_->{resource}{provision}{type} } grep {
    $_->{resource}{resourceType} eq 'Consent' } @{ $bundle->{entry} };
is_deeply(\@decisions, [qw(deny permit)], 'Consent: one permit, one deny');

my ($med) = map { $_->{resource} } grep {
    $_->{resource}{resourceType} eq 'MedicationRequest' } @{ $bundle->{entry} };
my ($coding) = @{ $med->{medicationCodeableConcept}{coding} // [] };
is($coding && $coding->{code}, 'N02BE01', 'the drug\'s ATC code');
is($coding && $coding->{system}, 'http://www.whocc.no/atc',
   'the ATC system');

###############################################################################
# the rating, in its own Bundle

is(req(POST => "$API/appointments/$p1->{id}/rating", $p1->{token},
       { score => 5, comment => 'very clear' })->{status}, 201, 'rated');

my $rated = $emr->wait_for(sub {
    (grep { $_->{answer} eq '200' && $_->{body} =~ /very clear/ } @_)[0] },
    30);
ok($rated, 'the EMR gets the rating');

###############################################################################
# every Bundle the EMR got passes the FHIR R4 validator

my @bundles = grep { $_->{answer} eq '200' } $emr->requests;
my @files;
for my $i (0 .. $#bundles) {
    push @files, $t->write_file("bundle-$i.json", $bundles[$i]{body});
}

my $out = `node @{[ $t->repo ]}/t/lib/fhir-validate.js @files 2>&1`;
is($?, 0, scalar(@files) . ' Bundles pass the FHIR R4 validator')
    or diag $out;

$emr->stop;
$gw->stop;
$t->stop;

done_testing;
