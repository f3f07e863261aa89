#!/usr/bin/perl

# The formulary and the exam catalogue (teleclinic_formulary): doctors
# (and the admin) search drugs by the start of a word of a name or a
# translated name, in any case and in UTF-8, Chinese names anywhere; at
# most 20, those a name begins with first, then by name; the exams as in
# the file.  Patients and strangers are refused; a bad q is 422; without
# the directive both routes are 404.  A reload reads a changed file, an
# invalid file refuses the reload or the start with the reason; and
# conf/formulary.json, the demo data of make run, loads.

use strict;
use warnings;
use utf8;

use Test::More;
use Encode qw(encode);
use Mojo::JSON qw(encode_json decode_json);
use Mojo::Util qw(url_escape);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);

my $API = '/api/v1';

###############################################################################

sub drug {
    my ($id, $name, $form, $strength, $code, %names) = @_;

    return { id => $id, name => $name, form => $form, strength => $strength,
             (defined $code ? (code => $code,
                               system => 'http://www.whocc.no/atc') : ()),
             (%names ? (names => \%names) : ()) };
}

my @drugs = (
    drug('amoxicillin-500', 'Amoxicillin', 'capsule', '500 mg', 'J01CA04',
         zh => '阿莫西林', ru => 'Амоксициллин'),
    drug('co-amoxiclav', 'Amoxicillin + clavulanic acid', 'tablet',
         '500 mg + 125 mg', 'J01CR02', zh => '阿莫西林克拉维酸钾'),
    drug('ceftriaxone-1g', 'Ceftriaxone', 'powder for injection', '1 g',
         'J01DD04', zh => '头孢曲松'),
    drug('ciprofloxacin-500', 'Ciprofloxacin', 'tablet', '500 mg',
         'J01MA02', zh => '环丙沙星'),
    drug('folic-acid-5', 'Folic acid', 'tablet', '5 mg', 'B03BB01',
         zh => '叶酸', es => 'Ácido fólico'),
    # the same name twice: the file's order stands
    drug('paracetamol-syrup', 'Paracetamol', 'oral liquid', '120 mg/5 mL',
         'N02BE01', zh => '对乙酰氨基酚'),
    drug('paracetamol-500', 'Paracetamol', 'tablet', '500 mg', 'N02BE01',
         zh => '对乙酰氨基酚'),
    drug('metformin-500', 'Metformin', 'tablet', '500 mg', 'A10BA02',
         zh => '二甲双胍'),
    (map { drug(sprintf('zz-test-%02d', $_), sprintf('Zztest %02d', $_),
                'tablet', '1 mg') } reverse 1 .. 25),    # not coded
);

my @exams = (
    { id => 'cbc', name => 'Complete blood count', code => '58410-2',
      system => 'http://loinc.org', names => { zh => '全血细胞计数' } },
    { id => 'hba1c', name => 'Hemoglobin A1c', code => '4548-4',
      system => 'http://loinc.org' },
    { id => 'chest-xray', name => 'Chest X-ray' },
);

sub write_formulary {
    my ($t, $doc, $name) = @_;
    return $t->write_file($name // 'formulary.json',
                          ref $doc ? encode_json($doc) : $doc);
}

my $t = Teleclinic::Test->new(workers => 2);
write_directory($t);
write_formulary($t, { drugs => \@drugs, exams => \@exams });

my %opts = (
    http => "log_format catalog '\$teleclinic_actor \$teleclinic_action "
          . "\$status';\n"
          . "access_log %%PREFIX%%/catalog.log catalog;",
    api => "set \$doctor_sso \$http_x_sso_user;\n"
         . "teleclinic_doctor_identity \$doctor_sso;",
);
my $formulary = 'teleclinic_formulary %%PREFIX%%/formulary.json;';

sub with_formulary {
    my ($line) = @_;
    return conf(%opts, http => "$opts{http}\n" . ($line // ''));
}

$t->run(with_formulary($formulary));

my $r = $t->http(POST => "$API/doctor/login",
                 headers => { 'X-SSO-User' => 'gp-one' });
is($r->{status}, 200, 'a doctor logs in');
my $doctor = $r->{json}{token};

sub get {
    my ($path, $token) = @_;
    return $t->http(GET => "$API/$path", headers => auth($token));
}

# the ids found for q, as a doctor
sub search {
    my ($q) = @_;

    my $r = get('formulary?q=' . url_escape(encode('UTF-8', $q)), $doctor);

    return "status $r->{status}" unless $r->{status} == 200;
    return [ map { $_->{id} } @{ $r->{json} } ];
}

###############################################################################
# what a hit looks like

$r = get('formulary?q=metformin', $doctor);
is($r->{status}, 200, 'a doctor searches the formulary');
is_deeply($r->{json}, [ { id => 'metformin-500', name => 'Metformin',
                          form => 'tablet', strength => '500 mg' } ],
          'a hit: id, name, form, strength');
is($r->{headers}->header('Cache-Control'), 'no-store', 'not cached');
like($r->{headers}->content_type, qr{^application/json}, 'JSON');

###############################################################################
# matches: the start of a word, any case, translations, UTF-8

is_deeply(search('amox'), [qw(amoxicillin-500 co-amoxiclav)],
          'the start of the name');
is_deeply(search('AmOX'), [qw(amoxicillin-500 co-amoxiclav)],
          'in any case');
is_deeply(search('clavulanic'), ['co-amoxiclav'], 'a later word');
is_deeply(search('clavulanic ac'), ['co-amoxiclav'],
          'words with the space between them');
is_deeply(search('moxicillin'), [], 'not the middle of a word');
is_deeply(search('cillin'), [], 'nor its end');
is_deeply(search('xyz'), [], 'nothing found: an empty array');
is_deeply(search('  metformin '), ['metformin-500'],
          'spaces around q do not count');

is_deeply(search('ácido'), ['folic-acid-5'], 'accented Latin');
is_deeply(search('ÁCIDO FÓL'), ['folic-acid-5'],
          'accented Latin in upper case');
is_deeply(search('fólico'), ['folic-acid-5'], 'a later accented word');
is_deeply(search('АМОКС'), ['amoxicillin-500'], 'Cyrillic, in any case');

is_deeply(search('阿莫西林'), [qw(amoxicillin-500 co-amoxiclav)],
          'a Chinese name');
is_deeply(search('克拉维酸'), ['co-amoxiclav'],
          'Chinese: any part of the name');
is_deeply(search('西林'), [qw(amoxicillin-500 co-amoxiclav)],
          'Chinese: the end of the name');
is_deeply(search('酸'), [qw(co-amoxiclav folic-acid-5)],
          'Chinese: one character');
is_deeply(search('乙酰氨'), [qw(paracetamol-syrup paracetamol-500)],
          'Chinese: the same name twice in the file order');

###############################################################################
# order: those a name begins with first, then by name, stable

is_deeply(search('c'), [qw(ceftriaxone-1g ciprofloxacin-500 co-amoxiclav)],
          'names that begin with q first, then the later words');
is_deeply(search('acid'), [qw(co-amoxiclav folic-acid-5)],
          'later words by name');
is_deeply(search('paracetamol'), [qw(paracetamol-syrup paracetamol-500)],
          'the same name: as in the file');

# at most 20
my @zz = map { sprintf('zz-test-%02d', $_) } 1 .. 20;
is_deeply(search('zztest'), \@zz, 'at most 20, the first by name');
is_deeply(search('zztest 2'), [map { sprintf('zz-test-%02d', $_) } 20 .. 25],
          'a longer q narrows it');

# no q, or an empty one: the first 20 by name
my @first = (qw(amoxicillin-500 co-amoxiclav ceftriaxone-1g
                ciprofloxacin-500 folic-acid-5 metformin-500
                paracetamol-syrup paracetamol-500),
             map { sprintf('zz-test-%02d', $_) } 1 .. 12);
$r = get('formulary', $doctor);
is($r->{status}, 200, 'no q: 200');
is_deeply([ map { $_->{id} } @{ $r->{json} } ], \@first,
          'no q: the first 20 by name');
is_deeply(search(''), \@first, 'an empty q: the same');
is_deeply(search('   '), \@first, 'only spaces: the same');

# '+' is a space in a query string; other arguments are left alone
$r = get('formulary?page=2&q=clavulanic+acid', $doctor);
is_deeply([ map { $_->{id} } @{ $r->{json} // [] } ], ['co-amoxiclav'],
          "'+' is a space, other arguments ignored");

###############################################################################
# a bad q: 422 invalid_field q

for my $case (
    [ 'a' x 101, '101 bytes' ],
    [ '%E9%98%BF' x 34, '102 bytes of Chinese' ],
    [ '%FF', 'a byte that is not UTF-8' ],
    [ '%C3', 'a cut UTF-8 sequence' ],
    [ '%C0%AF', 'an overlong UTF-8 form' ],
    [ '%ED%A0%80', 'a surrogate' ],
    [ 'a%00', 'NUL' ],
    [ 'a%0Ab', 'a line feed' ],
    [ '%7F', 'DEL' ],
    [ '%C2%85', 'a C1 control' ],
    [ '%zz', 'a malformed escape' ],
    [ 'ab%4', 'a cut escape' ],
)
{
    my ($q, $what) = @$case;
    my $r = get("formulary?q=$q", $doctor);

    is($r->{status}, 422, "q with $what: 422");
    is_deeply([ @{ ($r->{json} // {})->{error} // {} }{qw(code field)} ],
              [ 'invalid_field', 'q' ], "q with $what: invalid_field q");
}

is(get('formulary?q=' . ('a' x 100), $doctor)->{status}, 200,
   'q of 100 bytes: 200');
is(get('formulary?q=' . ('%E9%98%BF' x 33), $doctor)->{status}, 200,
   'q of 99 bytes of Chinese: 200');

###############################################################################
# the exams, as in the file

$r = get('exams', $doctor);
is($r->{status}, 200, 'a doctor reads the exams');
is_deeply($r->{json}, [ map { { id => $_->{id}, name => $_->{name} } }
                        @exams ],
          'the exams: id and name, as in the file');

###############################################################################
# who may read them

my $slot = free_slot($t, 'gp-one');
my $booking = book($t, $slot->{id});
is($booking->{status}, 201, 'a patient books');

for my $path ('formulary?q=amox', 'exams') {
    $r = get($path);
    is($r->{status}, 401, "$path without a token: 401");
    is($r->{json}{error}{code}, 'unauthorized', "$path: unauthorized");

    $r = get($path, 'AAAA.BBBB');
    is($r->{status}, 401, "$path with a bad token: 401");

    $r = get($path, substr($doctor, 0, -2) . 'AA');
    is($r->{status}, 401, "$path with an altered doctor token: 401");

    $r = get($path, $booking->{json}{token});
    is($r->{status}, 403, "$path with a patient's token: 403");
    is($r->{json}{error}{code}, 'forbidden', "$path: forbidden");

    $r = get($path, $ADMIN_KEY);
    is($r->{status}, 200, "$path with the admin key: 200");
}

# $teleclinic_action: formulary and exams, with who asked
my $log = $t->read_file('catalog.log');
like($log, qr/^doctor formulary 200$/m, 'the audit log: doctor formulary');
like($log, qr/^doctor exams 200$/m, 'the audit log: doctor exams');
like($log, qr/^admin formulary 200$/m, 'the audit log: admin formulary');
like($log, qr/^patient formulary 403$/m, 'the audit log: patient refused');
unlike($log . $t->error_log, qr/clavulanic|amox/i,
       'no search text in the logs');

###############################################################################
# the record names what was prescribed and ordered, from the formulary

{
    my $b = book($t, free_slot($t, 'gp-one', day_ahead(1))->{id});
    my $rec = "$API/appointments/$b->{json}{id}/record";
    my $h = auth($doctor);

    is($t->http(POST => "$rec/prescriptions", headers => $h,
                body => { drug => 'amoxicillin-500', dose => '1 capsule',
                          frequency => '3 x a day', days => 7,
                          quantity => 21 })->{status}, 201,
       'a prescription from the formulary');
    is($t->http(POST => "$rec/orders", headers => $h,
                body => { exam => 'cbc' })->{status}, 201,
       'an order from the catalogue');
    is($t->http(POST => "$rec/orders", headers => $h,
                body => { exam => 'chest-xray' })->{status}, 201,
       'an order of an exam with no translation');

    my $got = $t->http(GET => $rec, headers => $h)->{json} // {};
    my ($rx) = @{ $got->{prescriptions} // [] };
    is_deeply([ @{ $rx // {} }{qw(drug name form strength)} ],
              [ 'amoxicillin-500', 'Amoxicillin', 'capsule', '500 mg' ],
              "the record's prescription: name, form, strength");
    is_deeply($rx->{names}, { zh => '阿莫西林', ru => 'Амоксициллин' },
              "the record's prescription: the translated names");
    is_deeply([ map { [ $_->{exam}, $_->{name}, $_->{names} ] }
                @{ $got->{orders} // [] } ],
              [ [ 'cbc', 'Complete blood count', { zh => '全血细胞计数' } ],
                [ 'chest-xray', 'Chest X-ray', {} ] ],
              "the record's orders: names and translations");
}

###############################################################################
# reload: a changed file is read again; an invalid one refuses the
# reload and the old formulary goes on

$drugs[0]{name} = 'Amoxicillin trihydrate';
write_formulary($t, { drugs => [ $drugs[0], $drugs[4] ],
                      exams => [ $exams[1] ] });
$t->reload;

$r = get('formulary?q=trihydr', $doctor);
is_deeply([ map { $_->{name} } @{ $r->{json} // [] } ],
          ['Amoxicillin trihydrate'], 'reload: the changed file is read');
is_deeply(search('metformin'), [], 'reload: a drug taken out is gone');
is_deeply([ map { $_->{id} } @{ get('exams', $doctor)->{json} // [] } ],
          ['hba1c'], 'reload: the exams of the changed file');

for my $case (
    [ '{"drugs": [', qr/: the formulary is not valid JSON/, 'not JSON' ],
    [ { drugs => [] }, qr/: the formulary needs the arrays "drugs" and "exams"/,
      'no exams' ],
    [ { drugs => [ $drugs[0], { %{ $drugs[4] }, id => 'Folic' } ],
        exams => [] },
      qr/: drugs\[1\]: a drug needs an "id"/, 'a bad id' ],
    [ { drugs => [ $drugs[0], $drugs[0] ], exams => [] },
      qr/: drugs\[1\]: two drugs have the same "id"/, 'twice the same id' ],
    [ { drugs => [ { %{ $drugs[0] }, strength => '' } ], exams => [] },
      qr/: drugs\[0\]: a drug needs a "name", a "form" and a "strength"/,
      'an empty strength' ],
    [ { drugs => [ { %{ $drugs[0] }, system => undef } ], exams => [] },
      qr/: drugs\[0\]: a "system" is the URI/, 'a code without system' ],
    [ { drugs => [], exams => [ { id => 'x', name => "a\nb" } ] },
      qr/: exams\[0\]: an exam needs a "name"/, 'a control character' ],
    [ { drugs => [], exams => [ { id => 'x', name => 'X',
                                  names => { 'z h' => 'X' } } ] },
      qr/: exams\[0\]: a translation's key is a language tag/,
      'a bad language tag' ],
)
{
    my ($doc, $why, $what) = @$case;

    if (ref $doc) {
        for my $d (@{ $doc->{drugs} }) {
            delete $d->{system} if exists $d->{system}
                                   && !defined $d->{system};
        }
    }

    write_formulary($t, $doc);
    ok(!eval { $t->reload; 1 }, "reload with $what: refused");
    like($@, qr/\[emerg\].*invalid formulary ".*formulary\.json"$why/,
         "reload with $what: the reason");
    is_deeply(search('trihydr'), ['amoxicillin-500'],
              "reload with $what: the old formulary goes on");
}

$t->allow_log(qr/invalid formulary/, qr/open\(\) ".*none\.json" failed/);

# without the directive: 404 no_formulary, for those who may ask
$t->write_file('nginx.conf', $t->conf_text(with_formulary()));
$t->reload;

for my $path ('formulary?q=amox', 'exams') {
    $r = get($path, $doctor);
    is($r->{status}, 404, "$path without teleclinic_formulary: 404");
    is($r->{json}{error}{code}, 'no_formulary', "$path: no_formulary");
    is(get($path)->{status}, 401, "$path without a token: still 401");
}

$t->stop;

###############################################################################
# an invalid file stops the start, with the reason

write_formulary($t, { drugs => [ { %{ $drugs[0] }, form => 7 } ],
                      exams => [] });
my $from = length $t->error_log;
ok(!eval { $t->run(with_formulary($formulary)); 1 },
   'an invalid formulary: nginx does not start');
like(substr($t->error_log, $from) . ($@ // ''),
     qr/invalid formulary ".*formulary\.json": drugs\[0\]: a drug needs/,
     'an invalid formulary: the reason');
$t->stop if $t->is_running;

ok(!eval { $t->run(with_formulary('teleclinic_formulary '
                                  . '%%PREFIX%%/none.json;')); 1 },
   'a missing formulary: nginx does not start');
like(substr($t->error_log, $from) . ($@ // ''),
     qr/open\(\) ".*none\.json" failed/, 'a missing formulary: the reason');
$t->stop if $t->is_running;

###############################################################################
# conf/formulary.json: make run's demo data

my $demo_file = $t->repo . '/conf/formulary.json';
open my $fh, '<', $demo_file or die "$demo_file: $!";
my $demo = decode_json(do { local $/; <$fh> });
close $fh;

my @demo_drugs = @{ $demo->{drugs} };
my @demo_exams = @{ $demo->{exams} };

cmp_ok(scalar @demo_drugs, '>=', 150, 'the demo has at least 150 drugs');
cmp_ok(scalar @demo_exams, '>=', 30, 'the demo has at least 30 exams');

my @bad = grep { ($_->{code} // '') !~ /^[A-Z][0-9]{2}[A-Z]{2}[0-9]{2}$/
                 || ($_->{system} // '') ne 'http://www.whocc.no/atc' }
          @demo_drugs;
is_deeply([ map { $_->{id} } @bad ], [],
          'every demo drug has an ATC code (system http://www.whocc.no/atc)');
is_deeply([ map { $_->{id} } grep { !($_->{names} // {})->{zh} }
            @demo_drugs ], [], 'every demo drug has a Chinese name');
is_deeply([ map { $_->{id} } grep { defined $_->{code}
                                    && ($_->{system} // '') ne
                                       'http://loinc.org' }
            @demo_exams ], [], 'the demo exams are coded in LOINC');

$t->run(conf(%opts, http => "teleclinic_formulary $demo_file;"));

$r = get('exams', $doctor);
is($r->{status}, 200, 'the demo formulary loads');
is(scalar @{ $r->{json} // [] }, scalar @demo_exams, 'with all its exams');
is(scalar @{ get('formulary', $doctor)->{json} // [] }, 20,
   'and a search of it answers 20');

$t->stop;

done_testing;
