#!/usr/bin/perl

# Consented snapshots: during a call the doctor asks over the WebSocket,
# the patient answers (granted or refused, journaled), and only under a
# granted, unused consent does the doctor's upload of a JPEG or PNG get
# 201; the image comes back byte for byte (to the patient once the
# record is final), sealed on disk with the data key, survives kill -9,
# and a file no record names is removed at the next start.  The
# consent's decision is sealed in the journal too (and compaction seals
# it with the new key); a journal of decisions in clear still replays; a
# granted consent expires after teleclinic_snapshot_consent_timeout.
# Strangers to the call get the protocol's error codes, bad uploads the
# right 4xx.

use strict;
use warnings;

use Test::More;
use Compress::Zlib qw(crc32);
use Digest::SHA qw(sha256);
use MIME::Base64 qw(decode_base64url);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(admin_auth);
use Teleclinic::Room qw(:all);
use Teleclinic::WS;

###############################################################################

my $t = room(http => <<'EOF');
teleclinic_data_key_file %%REPO%%/conf/data.key;
teleclinic_snapshot_max_size 64k;
log_format audit '$teleclinic_action $teleclinic_actor $teleclinic_appointment $status';
access_log %%PREFIX%%/logs/audit.log audit;
EOF

my $API = '/api/v1';
my ($p1, $p2) = book_soon($t, 'doc-a', 2);
my $doc = login($t, 'doc-a');
my $admin = admin_auth()->{Authorization} =~ s/^Bearer //r;
my $dir = $t->prefix . '/teleclinic/snapshots';

# a distinctive run of bytes that no sealed file may show
my $MARK = 'TELECLINIC-SNAPSHOT-MARK-' x 4;
my $png = "\x89PNG\r\n\x1a\n" . "\0\0\0\rIHDR"
          . ($MARK . pack('N*', 0 .. 255)) x 8;
my $jpeg = "\xff\xd8\xff\xe0\0\x10JFIF\0" . $MARK . ("\x55\xaa" x 1000);
my $gif = "GIF89a\x01\0\x01\0\x80\0\0" . $MARK;

sub rec_url { "$API/appointments/$_[0]{id}/record" . ($_[1] // '') }

sub req {
    my ($method, $url, $token, $body, %h) = @_;
    return $t->http($method => $url,
                    headers => { Authorization => "Bearer $token", %h },
                    defined $body ? (body => $body) : ());
}

sub upload {
    my ($request, $type, $body, $token) = @_;
    my $q = defined $request ? "?request=$request" : '';
    return req(POST => rec_url($p1, "/snapshots$q"), $token // $doc, $body,
               'Content-Type' => $type);
}

# the consents' lines in the journal, and their decisions sealed with the
# key of a key file: an "eg" of one byte, nothing in clear
sub consent_lines {
    return grep { /"op":"consent"/ } split /\n/, $t->read_file('state/journal');
}

sub key_id {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!";
    my $key = do { local $/; <$fh> };
    $key =~ s/\s+\z//;
    $key = pack 'H*', $key if $key =~ /^[0-9a-fA-F]{64}$/;
    return substr(sha256($key), 0, 4);
}

sub consents_sealed {
    my ($n, $file, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @lines = consent_lines();
    my @bad;
    for my $l (@lines) {
        my ($eg) = $l =~ /"eg":"([A-Za-z0-9_-]+)"/;
        my $sealed = defined $eg ? decode_base64url($eg) : '';
        push @bad, $l if $l =~ /"(?:g|n0|n1|granted)"/
                         || length $sealed != 1 + 4 + 12 + 16
                         || substr($sealed, 0, 4) ne key_id($file);
    }
    is(scalar @lines, $n, "$what: $n consents in the journal");
    is_deeply(\@bad, [], "$what: each decision sealed, one byte, this key")
        or diag explain \@bad;
}

sub code_is {
    my ($r, $status, $code, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, $status, "$what: $status");
    is(($r->{json} // {})->{error}{code}, $code, "$what: $code")
        if defined $code;
}

###############################################################################
# the call, and strangers to it

my ($pws) = patient($t, $p1);
my ($other) = patient($t, $p2);
my ($dws) = doctor_console($t, 'doc-a');
my ($bws) = doctor_console($t, 'doc-b');

$dws->send_json({ type => 'call_next' });
my $ring = $pws->recv_json(type => 'ring');
my $call = $ring->{call};
$pws->send_json({ type => 'accept', call => $call });
ok($dws->recv_json(type => 'call'), 'the call is on');

$bws->send_json({ type => 'snapshot_request', call => $call });
expect_error($bws, 'not_in_call', 'another doctor cannot ask');
$other->send_json({ type => 'snapshot_consent', call => $call,
                    request => 1, granted => \1 });
expect_error($other, 'not_in_call', 'another patient cannot answer');
$pws->send_json({ type => 'snapshot_request', call => $call });
expect_error($pws, 'unknown_type', 'the patient does not ask');
$dws->send_json({ type => 'snapshot_consent', call => $call,
                  request => 1, granted => \1 });
expect_error($dws, 'unknown_type', 'the doctor does not answer');
$dws->send_json({ type => 'snapshot_request', call => '0123456789abcdef' });
expect_error($dws, 'not_in_call', 'a request in another call');
$pws->send_json({ type => 'snapshot_consent', call => $call,
                  request => 'x', granted => \1 });
expect_error($pws, 'bad_message', 'a request id that is not a number');
$pws->send_json({ type => 'snapshot_consent', call => $call,
                  request => 5, granted => 'yes' });
expect_error($pws, 'bad_message', '"granted" that is not a boolean');
$pws->send_json({ type => 'snapshot_consent', call => $call,
                  request => 5, granted => \1 });
expect_error($pws, 'unknown_request', 'an answer to nothing asked');

###############################################################################
# granted

sub ask {
    $dws->send_json({ type => 'snapshot_request', call => $call });
    return $pws->recv_json(type => 'snapshot_request');
}

sub answer {
    my ($m, $granted) = @_;
    $pws->send_json({ type => 'snapshot_consent', call => $call,
                      request => $m->{request},
                      granted => $granted ? \1 : \0 });
    return $dws->recv_json(type => 'snapshot_consent');
}

# a request asked and answered: what the patient was asked
sub consented {
    my ($granted) = @_;
    my $m = ask();
    answer($m, $granted);
    return $m;
}

# a restart with a new data key first and the one in use after it
sub start_with_new_key {
    $t->stop;
    $t->write_file('new.key', join('', map { sprintf '%02x', int rand 256 }
                                           1 .. 32) . "\n");
    my $conf = $t->read_file('nginx.conf');
    $conf =~ s{(teleclinic_data_key_file )(\S+);}
              {$1 . $t->prefix . "/new.key $2;"}e
        or die 'no data key in the conf';
    $t->write_file('nginx.conf', $conf);
    $t->start;
}

my $asked = ask();
ok($asked, 'the patient is asked');
is($asked->{call}, $call, 'snapshot_request: the call');
like($asked->{request}, qr/^[1-9][0-9]*$/, 'snapshot_request: a request id');
ok($asked->{request} < 2 ** 53, 'the request id is a safe integer');
ok(!$bws->quiet(0.3, type => 'snapshot_request'),
   'another doctor hears nothing');
ok(!$other->quiet(0.1, type => 'snapshot_request'),
   'another patient hears nothing');

$pws->send_json({ type => 'snapshot_consent', call => $call,
                  request => $asked->{request} + 1, granted => \1 });
expect_error($pws, 'unknown_request', 'an answer to another request');

my $granted = answer($asked, 1);
is_deeply($granted, { v => 1, type => 'snapshot_consent', call => $call,
                      request => $asked->{request}, granted => \1 },
          'the doctor gets the consent');
my $R = $asked->{request};

code_is(upload(undef, 'image/png', $png), 403, 'no_consent',
        'an upload without a request');
code_is(upload($R + 1, 'image/png', $png), 403, 'no_consent',
        'an upload under another request');
code_is(upload($R, 'image/png', $png, $p1->{token}), 403, 'forbidden',
        'the patient uploads');
code_is(upload($R, 'text/plain', "just some text\n"), 415,
        'unsupported_media_type', 'a text body');
code_is(upload($R, 'image/png', "just some text\n"), 415,
        'unsupported_media_type', 'a text body called a PNG');
code_is(upload($R, 'image/gif', $gif), 415, 'unsupported_media_type',
        'a GIF');
code_is(upload($R, 'image/png', $gif), 415, 'unsupported_media_type',
        'a GIF called a PNG');
code_is(upload($R, 'image/jpeg', $png), 415, 'unsupported_media_type',
        'a PNG called a JPEG');
code_is(upload($R, 'image/png', ''), 415, 'unsupported_media_type',
        'an empty body');
code_is(upload($R, 'image/png', "\x89PNG\r\n\x1a\n" . ('x' x (65 * 1024))),
        413, 'body_too_large', 'over teleclinic_snapshot_max_size');

my $r = upload($R, 'image/png', $png);
is($r->{status}, 201, 'an upload under the consent: 201');
my $sid = $r->{json}{id};
like($sid, qr/^[0-9]+$/, 'the snapshot\'s id');

code_is(upload($R, 'image/png', $png), 403, 'no_consent',
        'a second upload under the same consent');

###############################################################################
# refused, then granted again

my $asked2 = ask();
isnt($asked2->{request}, $R, 'a new request, a new id');
ok(!answer($asked2, 0)->{granted}, 'the doctor hears the refusal');
code_is(upload($asked2->{request}, 'image/png', $png), 403, 'no_consent',
        'an upload under a refusal');

my $asked3 = ask();
answer($asked3, 1);
$r = upload($asked3->{request}, 'image/jpeg; charset=binary', $jpeg);
is($r->{status}, 201, 'a JPEG under a new consent');
my $sid2 = $r->{json}{id};

###############################################################################
# reading it back

my $rec = req(GET => rec_url($p1), $doc)->{json};
is(scalar @{ $rec->{snapshots} }, 2, 'the record lists two snapshots');
is($rec->{snapshots}[0]{id}, $sid, 'the first snapshot\'s id');
like($rec->{snapshots}[0]{taken} // '', qr/^\d{4}-\d\d-\d\dT/,
     'when it was taken');
is_deeply([ sort keys %{ $rec->{snapshots}[0] } ], [qw(id taken)],
          'a snapshot shows its id and when it was taken');

sub image_is {
    my ($token, $id, $bytes, $type, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $g = req(GET => rec_url($p1, "/snapshots/$id"), $token);
    is($g->{status}, 200, "$what: 200");
    ok(defined $g->{body} && $g->{body} eq $bytes, "$what: byte-identical");
    is($g->{headers}->content_type, $type, "$what: $type");
    is($g->{headers}->cache_control, 'no-store', "$what: no-store");
}

image_is($doc, $sid, $png, 'image/png', 'the doctor reads the PNG');
image_is($doc, $sid2, $jpeg, 'image/jpeg', 'the doctor reads the JPEG');
image_is($admin, $sid, $png, 'image/png', 'the admin key reads it');
code_is(req(GET => rec_url($p1, "/snapshots/$sid"), $p1->{token}), 404,
        undef, 'the patient, before the record is final');
code_is(req(GET => rec_url($p1, "/snapshots/$sid"), login($t, 'doc-b')),
        403, 'forbidden', 'another doctor');
code_is(req(GET => rec_url($p1, '/snapshots/999'), $doc), 404, 'not_found',
        'an unknown snapshot');
code_is(req(GET => rec_url($p2, "/snapshots/$sid"), $doc), 404,
        'not_found', 'the id in another record');

# sealed at rest
opendir(my $dh, $dir) or die "$dir: $!";
my @files = grep { !/^\./ } readdir $dh;
closedir $dh;
is(scalar @files, 2, 'two files in the snapshot directory');
my $found = 0;
for my $f (@files) {
    my $bytes = $t->read_file("teleclinic/snapshots/$f");
    $found++ if index($bytes, 'TELECLINIC-SNAPSHOT-MARK') >= 0
                || index($bytes, "\x55\xaa" x 8) >= 0;
}
is($found, 0, 'no file shows the images\' bytes');
ok(index($t->read_file('state/journal'), 'TELECLINIC-SNAPSHOT-MARK') < 0,
   'nor does the journal');

###############################################################################
# final: the patient reads it, nothing more is taken

my $asked4 = consented(1);
my $asked5 = consented(1);
$dws->send_json({ type => 'hangup', call => $call });
ok($pws->recv_json(type => 'ended'), 'the call ended');

# the consents are journaled: used stays used, granted stays granted
$t->kill9;
$t->start;

consents_sealed(5, $t->repo . "/conf/data.key", 'after kill -9');
code_is(upload($R, 'image/png', $png), 403, 'no_consent',
        'after kill -9: a used consent is still used');
code_is(upload($asked2->{request}, 'image/png', $png), 403, 'no_consent',
        'after kill -9: a refused consent is still refused');
$r = upload($asked4->{request}, 'image/png', $png);
is($r->{status}, 201, 'after kill -9: a granted consent is still there');
my $sid3 = $r->{json}{id};
ok($sid3 > $sid2, 'a new id after the restart');

is(req(POST => rec_url($p1, '/close'), $doc)->{status}, 200, 'closed');
code_is(upload($asked5->{request}, 'image/png', $png), 409, 'record_final',
        'an upload to a final record');
image_is($p1->{token}, $sid, $png, 'image/png',
         'the patient, once the record is final');

###############################################################################
# kill -9: the images and their record survive; an orphan is removed

my $before = req(GET => rec_url($p1), $doc)->{json};

$t->kill9;

my $orphan = "$p1->{id}-" . ($sid3 + 10);
$t->write_file("teleclinic/snapshots/$orphan", $png);
$t->write_file("teleclinic/snapshots/$p2->{id}-1", $png);
$t->write_file('teleclinic/snapshots/README', 'not ours');

$t->start;

is_deeply(req(GET => rec_url($p1), $doc)->{json}, $before,
          'kill -9 and start: the same record');
image_is($doc, $sid, $png, 'image/png', 'after kill -9: the PNG');
image_is($doc, $sid2, $jpeg, 'image/jpeg', 'after kill -9: the JPEG');
ok(!-e "$dir/$orphan", 'an orphan of the record is removed at start');
ok(!-e "$dir/$p2->{id}-1", 'an orphan of no record is removed at start');
ok(-e "$dir/README", 'a file not named like a snapshot stays');
like($t->error_log, qr/removed the orphan snapshot/, 'and logged');

# a start with a new data key beside the old one compacts the journal:
# the consents and snapshots come back from what compaction wrote, and
# the files sealed with the old key still open
start_with_new_key();

like($t->error_log, qr/compacted/, 'a compacting start');
consents_sealed(5, $t->prefix . '/new.key',
                'after compaction with a new key');
is_deeply(req(GET => rec_url($p1), $doc)->{json}, $before,
          'after compaction: the same record');
image_is($doc, $sid2, $jpeg, 'image/jpeg', 'after compaction: the JPEG');
ok(-e "$dir/$p1->{id}-$sid3", 'no snapshot of the record is swept');

###############################################################################
# the audit trail

my $audit = $t->read_file('logs/audit.log');
like($audit, qr/^snapshot doctor $p1->{id} 201$/m,
     '$teleclinic_action: snapshot');
like($audit, qr/^snapshot doctor $p1->{id} 403$/m,
     '$teleclinic_action: a refused snapshot');

$pws->close(1000);
$other->close(1000);
$dws->close(1000);
$bws->close(1000);

$t->stop;

###############################################################################
# without a data key: the timeout, and decisions in clear that replay
# once a key is given, those of journals older than the sealed decision
# among them; compaction with the key seals them all

$t = room(http => <<'EOF');
teleclinic_snapshot_max_size 64k;
teleclinic_snapshot_consent_timeout 3s;
EOF

($p1) = book_soon($t, 'doc-a', 1);
$doc = login($t, 'doc-a');
($pws) = patient($t, $p1);
($dws) = doctor_console($t, 'doc-a');

$dws->send_json({ type => 'call_next' });
$call = $pws->recv_json(type => 'ring')->{call};
$pws->send_json({ type => 'accept', call => $call });
ok($dws->recv_json(type => 'call'), 'no key: the call is on');

my $late = consented(1);
my $soon = consented(1);
is(upload($soon->{request}, 'image/png', $png)->{status}, 201,
   'a consent used within teleclinic_snapshot_consent_timeout');
sleep 5;
code_is(upload($late->{request}, 'image/png', $png), 403, 'no_consent',
        'a consent used after teleclinic_snapshot_consent_timeout');

my $yes = consented(1);
my $no = consented(0);
$dws->send_json({ type => 'hangup', call => $call });
ok($pws->recv_json(type => 'ended'), 'no key: the call ended');
$pws->close(1000);
$dws->close(1000);

sub decision_of {
    my ($request) = @_;
    my ($l) = grep { /"req":$request\b/ } consent_lines();
    return ($l // '') =~ /"g":"([01])"/ ? $1 : undef;
}

is(decision_of($yes->{request}), '1', 'no key: a granted decision in clear');
is(decision_of($no->{request}), '0', 'no key: a refusal in clear');

$t->stop;

# as journals before the sealed decision wrote them: "n0":1 when granted
my ($seq) = ($t->read_file('state/journal') =~ /.*"seq":(\d+)/s);
my ($old_yes, $old_no) = (1000001, 1000002);
my $old = '';
for my $c ([ $old_yes, ',"n0":1' ], [ $old_no, '' ]) {
    my $json = sprintf '{"seq":%d,"op":"consent","at":%d,"id":"%s",'
                       . '"created":%d%s,"req":%d}',
                       ++$seq, time, $p1->{id}, time, $c->[1], $c->[0];
    $old .= sprintf "%08x %s\n", crc32($json), $json;
}
$t->write_file('state/journal', $t->read_file('state/journal') . $old);

my $conf = $t->read_file('nginx.conf');
$conf =~ s{teleclinic_snapshot_consent_timeout 3s;}
          {'teleclinic_data_key_file ' . $t->repo . '/conf/data.key;'}e
    or die 'no timeout in the conf';
$t->write_file('nginx.conf', $conf);
$t->start;

code_is(upload($no->{request}, 'image/png', $png), 403, 'no_consent',
        'a key after none: a refusal in clear replays refused');
code_is(upload($old_no, 'image/png', $png), 403, 'no_consent',
        'a key after none: an older journal\'s refusal replays refused');
is(upload($old_yes, 'image/png', $png)->{status}, 201,
   'a key after none: an older journal\'s granted consent replays granted');

# the new key first, the demo one after it: a compacting start
start_with_new_key();

like($t->error_log, qr/compacted/,
     'a key after none, then a new key: a compacting start');
consents_sealed(6, $t->prefix . '/new.key',
                'decisions once in clear, compacted');
code_is(upload($no->{request}, 'image/png', $png), 403, 'no_consent',
        'compacted: a refusal stays refused');
is(upload($yes->{request}, 'image/png', $png)->{status}, 201,
   'compacted: a granted consent stays granted');

$t->stop;

done_testing();
