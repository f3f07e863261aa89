#!/usr/bin/perl

# Bad input to the booking API: every malformed, mistyped, oversized or
# misrouted request gets its 4xx with the error document
# {"error":{"code","message"[,"field"]}}, never a 500, never a booking;
# afterwards the same workers still serve a normal booking.

use strict;
use warnings;

use Test::More;
use IO::Socket::IP;
use Mojo::JSON qw(encode_json decode_json);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);

# test names quote the non-ASCII input
binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

###############################################################################

my $API = '/api/v1';

my $t = Teleclinic::Test->new(workers => 2);

write_directory($t);

$t->run(conf());

my @workers = $t->worker_pids;
is(scalar @workers, 2, 'two workers before the matrix');

my $date = day_ahead(1);
(my $ymd = $date) =~ tr/-//d;
(my $yesterday = day_ahead(-1)) =~ tr/-//d;
(my $far = day_ahead(70)) =~ tr/-//d;

my $slot = free_slot($t, 'gp-one', $date)->{id};
my $patient = { name => 'Erika Mustermann', phone => '+49 30 1234567' };

# a booking to reschedule, and the state every refusal must leave alone
my $r = book($t, $slot);
is($r->{status}, 201, 'a booking to reschedule') or BAIL_OUT('no booking');
my $appt = $r->{json};
my $auth = auth($appt->{token});

my $before = free_count();

###############################################################################
# POST /appointments: the body

my $json = '{"slot":"' . "gp-one.$ymd.0830" . '","patient":{"name":"A",'
           . '"phone":"+49 30 1234567"}';

post_raw('malformed JSON', "$json,", 400, 'malformed_json');
post_raw('truncated JSON', $json, 400, 'malformed_json');
post_raw('empty body', '', 400, 'malformed_json');
post_raw('not JSON at all', 'slot=x&name=y', 400, 'malformed_json');
post_raw('JSON with trailing garbage', "$json} x", 400, 'malformed_json');

post_raw('JSON array', '[]', 422, 'invalid_body');
post_raw('JSON string', '"gp-one"', 422, 'invalid_body');
post_raw('JSON number', '42', 422, 'invalid_body');
post_raw('JSON null', 'null', 422, 'invalid_body');
post_raw('JSON true', 'true', 422, 'invalid_body');

# wrong types
post('slot a number', { slot => 42, patient => $patient },
     422, 'invalid_type', 'slot');
post('slot an array', { slot => ["gp-one.$ymd.0830"], patient => $patient },
     422, 'invalid_type', 'slot');
post('slot null', { slot => undef, patient => $patient },
     422, 'invalid_type', 'slot');
post('patient a string', { slot => "gp-one.$ymd.0830", patient => 'Erika' },
     422, 'invalid_type', 'patient');
post('patient an array', { slot => "gp-one.$ymd.0830", patient => [] },
     422, 'invalid_type', 'patient');
post('name a number',
     { slot => "gp-one.$ymd.0830", patient => { %$patient, name => 42 } },
     422, 'invalid_type', 'patient.name');
post('phone a number',
     { slot => "gp-one.$ymd.0830",
       patient => { %$patient, phone => 4930123456 } },
     422, 'invalid_type', 'patient.phone');
post('reason an object',
     { slot => "gp-one.$ymd.0830", patient => $patient, reason => {} },
     422, 'invalid_type', 'reason');

# missing fields
post('no slot', { patient => $patient }, 422, 'missing_field', 'slot');
post('no patient', { slot => "gp-one.$ymd.0830" },
     422, 'missing_field', 'patient');
post('no name',
     { slot => "gp-one.$ymd.0830", patient => { phone => '+49 30 1234567' } },
     422, 'missing_field', 'patient.name');
post('no phone',
     { slot => "gp-one.$ymd.0830", patient => { name => 'Erika' } },
     422, 'missing_field', 'patient.phone');
post('empty object', {}, 422, 'missing_field', 'slot');

# lengths: limits count characters, not bytes
post('empty name',
     { slot => "gp-one.$ymd.0830", patient => { %$patient, name => '' } },
     422, 'invalid_length', 'patient.name');
post('name of 201 characters',
     { slot => "gp-one.$ymd.0830",
       patient => { %$patient, name => 'a' x 201 } },
     422, 'invalid_length', 'patient.name');
post('reason of 1001 characters',
     { slot => "gp-one.$ymd.0830", patient => $patient,
       reason => 'r' x 1001 },
     422, 'invalid_length', 'reason');
post('empty slot', { slot => '', patient => $patient },
     422, 'invalid_length', 'slot');
post('slot of 65 characters', { slot => 'a' x 65, patient => $patient },
     422, 'invalid_length', 'slot');

# control characters
post('newline in name',
     { slot => "gp-one.$ymd.0830",
       patient => { %$patient, name => "Erika\nMustermann" } },
     422, 'invalid_characters', 'patient.name');
post('tab in name',
     { slot => "gp-one.$ymd.0830",
       patient => { %$patient, name => "Erika\tMustermann" } },
     422, 'invalid_characters', 'patient.name');
post('DEL in name',
     { slot => "gp-one.$ymd.0830",
       patient => { %$patient, name => "Erika\x7f" } },
     422, 'invalid_characters', 'patient.name');
post('escape in reason',
     { slot => "gp-one.$ymd.0830", patient => $patient,
       reason => "\e[31mred" },
     422, 'invalid_characters', 'reason');
post_raw('NUL in name',
         '{"slot":"' . "gp-one.$ymd.0830" . '","patient":{"name":'
         . '"Erika\u0000Mustermann","phone":"+49 30 1234567"}}',
         422, 'invalid_characters', 'patient.name');

# C1 controls anywhere, direction controls in a name, and names that show
# nothing: the same invalid_characters as other control characters
for my $case (['NEL (U+0085) in a name', "Erika\x{85}Mustermann"],
              ['a name of NEL alone', "\x{85}"],
              ['CSI (U+009B) in a name', "Erika\x{9b}31m"],
              ['RLO (U+202E) in a name', "Erika \x{202e}nnamretsuM"],
              ['a name of RLO alone', "\x{202e}"],
              ['LRE (U+202A) in a name', "\x{202a}Erika"],
              ['PDF (U+202C) in a name', "Erika\x{202c}"],
              ['RLI (U+2067) in a name', "\x{2067}Erika\x{2069}"],
              ['FSI (U+2068) in a name', "Erika \x{2068}M"],
              ['RLM (U+200F) in a name', "Erika\x{200f}"],
              ['LRM (U+200E) in a name', "\x{200e}Erika"],
              ['ALM (U+061C) in a name', "Erika\x{61c}"],
              ['a name of ZWSP (U+200B) alone', "\x{200b}"],
              ['a name of spaces', '   '],
              ['a name of no-break spaces and ZWSP', "\x{a0}\x{200b}\x{a0}"],
              ['a name of joiners and word joiners',
               "\x{200c}\x{200d}\x{2060}"],
              ['a name of BOM, soft hyphen, ideographic space',
               "\x{feff}\x{ad}\x{3000}"],
              ['a name of a Hangul filler', "\x{3164}"],
              ['a name of tag characters', "\x{e0041}\x{e0042}"])
{
    my ($what, $name) = @$case;

    post($what, { slot => "gp-one.$ymd.0830",
                  patient => { %$patient, name => $name } },
         422, 'invalid_characters', 'patient.name');
}

post('C1 (U+0085) in the reason',
     { slot => "gp-one.$ymd.0830", patient => $patient,
       reason => "rash\x{85}" },
     422, 'invalid_characters', 'reason');

# names of every script, with the joiners they need, are fine
for my $name ("J\x{f6}rg M\x{fc}ller", "\x{410}\x{43d}\x{43d}\x{430}",
              "\x{5f0}\x{627}\x{62f}\x{631}",
              "\x{645}\x{647}\x{200c}\x{631}\x{62f}\x{627}\x{62f}",
              "\x{938}\x{94d}\x{200d}\x{930}", "\x{738b}\x{82b3}",
              " Erika\x{a0}Mustermann ")
{
    my $free = free_slot($t, 'gp-two', $date);
    my $b = book($t, $free->{id}, name => $name);

    is($b->{status}, 201, "a name of " . length($name) . ' characters, '
                          . sprintf('U+%04X first', ord $name) . ': 201');
    is(appointment($t, $b->{json}{id}, $ADMIN_KEY)->{json}{patient}{name},
       $name, 'the name is kept as it was sent');
    is(cancel($t, $b->{json}{id}, $ADMIN_KEY)->{status}, 200,
       'and cancelled again');
}

# phone numbers
for my $phone ('030 1234567', '+49 30 abc4567', '+12 345', '+', '+49/30/123',
               '+1234567890123456', "+49 30 1234567\x{0660}")
{
    post("bad phone '$phone'",
         { slot => "gp-one.$ymd.0830",
           patient => { %$patient, phone => $phone } },
         422, 'invalid_phone', 'patient.phone');
}

post('phone of 33 characters',
     { slot => "gp-one.$ymd.0830",
       patient => { %$patient, phone => '+49 ' . '1-' x 14 . '1' } },
     422, 'invalid_length', 'patient.phone');

###############################################################################
# POST /appointments: the slot

for my $id ("gp-one", "gp-one.$ymd", "gp-one.$ymd.08", "gp-one.$ymd.08000",
            "gp-one.${ymd}0.800", "GP-ONE.$ymd.0800", "gp_one.$ymd.0800",
            "-gp.$ymd.0800", "gp-.$ymd.0800", ".$ymd.0800",
            "gp-one.$ymd.2500", "gp-one.$ymd.0860", "gp-one.20270230.0800",
            "gp-one.20271301.0800", "gp-one.19991231.0800",
            "gp-one.$ymd.08:00", "gp-one/$ymd/0800", "gp-one.$ymd.0800 ",
            "gp-one.2026-1-1.0800", "gp-one.$ymd.+800",
            "\x{e9}\x{e9}.$ymd.0800")
{
    post("slot id syntax '$id'", { slot => $id, patient => $patient },
         422, 'invalid_slot', 'slot');
}

post('unknown doctor', { slot => "nobody.$ymd.0800", patient => $patient },
     422, 'unknown_slot', 'slot');
post('time off the slot grid',
     { slot => "gp-one.$ymd.0815", patient => $patient },
     422, 'unknown_slot', 'slot');
post('time in the lunch break',
     { slot => "gp-one.$ymd.1200", patient => $patient },
     422, 'unknown_slot', 'slot');
post('time after hours', { slot => "gp-one.$ymd.1700", patient => $patient },
     422, 'unknown_slot', 'slot');
post('past slot', { slot => "gp-one.$yesterday.0800", patient => $patient },
     422, 'slot_in_past', 'slot');
post('slot beyond the horizon',
     { slot => "gp-one.$far.0800", patient => $patient },
     422, 'slot_too_far', 'slot');

###############################################################################
# JSON the parser must refuse without harm

my $valid = '"slot":"' . "gp-one.$ymd.0830" . '","patient":{"name":"A",'
            . '"phone":"+49 30 1234567"}';

post_raw('invalid UTF-8 in a string',
         '{"slot":"' . "gp-one.$ymd.0830" . '","patient":{"name":'
         . "\"Erika \xc3\x28 \xff\xfe\",\"phone\":\"+49 30 1234567\"}}",
         400, 'malformed_json');
post_raw('overlong UTF-8 in a string',
         "{$valid,\"reason\":\"\xc0\xaf\"}", 400, 'malformed_json');
post_raw('lone surrogate escape', "{$valid,\"reason\":\"\\ud800\"}",
         400, 'malformed_json');
post_raw('1e400', "{$valid,\"n\":1e400}", 400, 'malformed_json');
post_raw('99999999999999999999999',
         "{$valid,\"n\":99999999999999999999999}", 400, 'malformed_json');
post_raw('slot 1e400', '{"slot":1e400,"patient":{"name":"A",'
         . '"phone":"+49 30 1234567"}}', 400, 'malformed_json');
# deeper than the parser's limit (2048), under the body limit
post_raw('deep array nesting', '[' x 5000 . ']' x 5000,
         400, 'malformed_json');
post_raw('deep object nesting', "{$valid,\"x\":" . '{"a":' x 2500 . '1'
         . '}' x 2500 . '}', 400, 'malformed_json');
post_raw('unclosed deep nesting', '{"a":' . '[' x 15000, 400,
         'malformed_json');
post_raw('duplicate key', "{$valid,\"slot\":\"gp-one.$ymd.0900\"}",
         400, 'malformed_json');
post_raw('duplicate key in patient',
         '{"slot":"' . "gp-one.$ymd.0830" . '","patient":{"name":"A",'
         . '"name":"B","phone":"+49 30 1234567"}}', 400, 'malformed_json');

###############################################################################
# bodies over teleclinic_body_max_size (16k)

my $big = encode_json({ slot => "gp-one.$ymd.0830", patient => $patient,
                        reason => 'r', pad => 'x' x 17000 });

post_raw('body over the limit with Content-Length', $big, 413,
         'body_too_large');

$r = raw("POST $API/appointments HTTP/1.1\r\nHost: localhost\r\n"
         . "Content-Type: application/json\r\n"
         . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
         . chunked($big));
check($r, 'chunked body over the limit', 413, 'body_too_large');

# the rest of a refused body is read and dropped: the connection goes on
$r = raw("POST $API/appointments HTTP/1.1\r\nHost: localhost\r\n"
         . "Content-Length: " . length($big) . "\r\n\r\n$big"
         . "GET $API/departments HTTP/1.1\r\nHost: localhost\r\n"
         . "Connection: close\r\n\r\n");
check($r, 'body over the limit, then a request on the connection', 413,
      'body_too_large');
like($r->{rest} // '', qr{^HTTP/1\.1 200 .*"General Practice"}s,
     'the next request on the connection is answered');

# a chunked body under the limit is read: it fails only as JSON
$r = raw("POST $API/appointments HTTP/1.1\r\nHost: localhost\r\n"
         . "Content-Type: application/json\r\n"
         . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
         . chunked('{"slot": [1, 2'));
check($r, 'chunked body under the limit, malformed', 400, 'malformed_json');

$r = raw("POST $API/appointments/$appt->{id}/reschedule HTTP/1.1\r\n"
         . "Host: localhost\r\nAuthorization: Bearer $appt->{token}\r\n"
         . "Content-Length: " . length($big) . "\r\nConnection: close\r\n"
         . "\r\n$big");
check($r, 'reschedule body over the limit', 413, 'body_too_large');

###############################################################################
# the slots of a day: bad dates

for my $q ('date=2026-02-30', 'date=2027-02-29', 'date=2026-13-01',
           'date=2026-00-10', 'date=2026-12-32', 'date=2026-12-00',
           'date=garbage', 'date=', 'date=20261126', 'date=2026-1-01',
           'date=2026-01-01T00:00', 'date=-026-01-01', 'date=1999-12-31',
           'day=2026-11-26', '')
{
    my $url = "$API/doctors/gp-one/slots" . ($q ne '' ? "?$q" : '');

    $r = $t->http(GET => $url);
    check($r, "slots with '$q'", 400, 'invalid_date', 'date');
}

$r = $t->http(GET => "$API/doctors/gp-one/slots?date=2028-02-29");
is($r->{status}, 200, 'slots on a leap day: 200');

$r = $t->http(GET => "$API/doctors?department=Not%20An%20Id");
check($r, 'doctors of a department that is no id', 400, 'invalid_department',
      'department');

###############################################################################
# reschedule: the body

for my $case (
    [ 'malformed JSON', '{"slot":', 400, 'malformed_json' ],
    [ 'JSON array', '["x"]', 422, 'invalid_body' ],
    [ 'no slot', '{}', 422, 'missing_field', 'slot' ],
    [ 'slot a number', '{"slot":7}', 422, 'invalid_type', 'slot' ],
    [ 'slot id syntax', '{"slot":"gp-one"}', 422, 'invalid_slot', 'slot' ],
    [ 'unknown slot', "{\"slot\":\"gp-one.$ymd.0815\"}", 422,
      'unknown_slot', 'slot' ],
    [ 'past slot', "{\"slot\":\"gp-one.$yesterday.0800\"}", 422,
      'slot_in_past', 'slot' ],
    [ 'slot beyond the horizon', "{\"slot\":\"gp-one.$far.0800\"}", 422,
      'slot_too_far', 'slot' ],
    [ 'duplicate key', "{\"slot\":\"gp-one.$ymd.0900\","
      . "\"slot\":\"gp-one.$ymd.0930\"}", 400, 'malformed_json' ],
    [ 'invalid UTF-8', "{\"slot\":\"\xff\"}", 400, 'malformed_json' ],
)
{
    my ($what, $body, @want) = @$case;

    $r = $t->http(POST => "$API/appointments/$appt->{id}/reschedule",
                  body => $body,
                  headers => { %$auth, 'Content-Type' => 'application/json' });
    check($r, "reschedule: $what", @want);
}

###############################################################################
# routes and methods

for my $path ("$API/", "$API/nope", "$API/departments/gp",
              "$API/doctors/gp-one/slots/extra",
              "$API/doctors/gp-one/days?date=$date",
              "$API/appointments/$appt->{id}/undo",
              "$API/a/b/c/d/e/f/g/h", "$API/admin", "$API/admin/nope",
              "$API/Departments")
{
    $r = $t->http(GET => $path);
    check($r, "GET $path", 404, 'not_found');
}

for my $call (['DELETE', "$API/departments"],
              ['POST', "$API/departments"],
              ['PUT', "$API/doctors"],
              ['POST', "$API/doctors/gp-one/slots?date=$date"],
              ['GET', "$API/appointments"],
              ['PUT', "$API/appointments"],
              ['DELETE', "$API/appointments/$appt->{id}"],
              ['PATCH', "$API/appointments/$appt->{id}"],
              ['GET', "$API/appointments/$appt->{id}/cancel"],
              ['PUT', "$API/appointments/$appt->{id}/reschedule"],
              ['POST', "$API/admin/directory"],
              ['GET', "$API/admin/doctors/gp-one"])
{
    my ($method, $path) = @$call;

    $r = $t->http($method => $path, headers => $auth, body => '{}');
    check($r, "$method $path", 405, 'method_not_allowed');
    ok($r->{headers}->header('Allow'), "$method $path: Allow header");
}

###############################################################################
# appointment ids

for my $id ('xyz', '0123456789ABCDEF', '0123456789abcde',
            '0123456789abcdef0', '0123456789abcdeg', '-123456789abcdef',
            '0x23456789abcdef')
{
    for my $call (['GET', ''], ['POST', '/cancel'], ['POST', '/reschedule'])
    {
        my ($method, $tail) = @$call;
        my $path = "$API/appointments/$id$tail";

        $r = $t->http($method => $path, headers => $auth,
                      body => "{\"slot\":\"gp-one.$ymd.0900\"}");
        check($r, "$method appointment id '$id'$tail", 404,
              'unknown_appointment');
    }
}

# a well-formed id that names nothing
my $none = $appt->{id} eq 'ffffffffffffffff' ? 'fffffffffffffffe'
                                               : 'ffffffffffffffff';

$r = appointment($t, $none, $ADMIN_KEY);
check($r, 'unknown appointment, admin', 404, 'unknown_appointment');

$r = cancel($t, $none, $ADMIN_KEY);
check($r, 'cancel an unknown appointment, admin', 404,
      'unknown_appointment');

$r = appointment($t, $none);
check($r, 'unknown appointment, no token: 401 before any lookup', 401,
      'unauthorized');

###############################################################################
# nothing above changed anything, and the same workers serve a booking

is(free_count(), $before, 'no refused request took a slot');

$r = appointment($t, $appt->{id}, $appt->{token});
is($r->{status}, 200, 'the booking is still readable');
is($r->{json}{slot}, $slot, 'the booking was not rescheduled');
is($r->{json}{status}, 'booked', 'the booking was not cancelled');

# limits count characters: 200 two-byte letters and 1000 three-byte ones
$r = book($t, free_slot($t, 'gp-two', $date)->{id},
          name => "\x{e9}" x 200, reason => "\x{20ac}" x 1000);
is($r->{status}, 201, 'longest name and reason in multibyte letters: 201');

$r = appointment($t, $r->{json}{id}, $r->{json}{token});
is($r->{json}{patient}{name}, "\x{e9}" x 200, 'the name reads back whole');
is($r->{json}{reason}, "\x{20ac}" x 1000, 'the reason reads back whole');

for my $n (1 .. 4) {
    is($t->http(GET => "$API/departments")->{status}, 200,
       "departments after the matrix ($n)");
}

is_deeply([ $t->worker_pids ], \@workers, 'same worker pids: no crash');
unlike($t->error_log, qr/\[alert\]|exited on signal|\[crit\]/,
       'no alert, crit or crashed worker in error.log');

$t->stop;
undef $t;

done_testing;

###############################################################################

# the error document: exactly {"error":{"code","message"[,"field"]}}
sub check {
    my ($r, $what, $status, $code, $field) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    my $e = ref $r->{json} eq 'HASH' ? $r->{json}{error} : undef;

    my $ok = is($r->{status}, $status, "$what: $status");

    $ok &&= ok(ref $e eq 'HASH' && keys %{ $r->{json} } == 1
               && !grep({ !/^(?:code|message|field)$/ } keys %$e)
               && defined $e->{message} && !ref $e->{message}
               && length $e->{message},
               "$what: error document");

    $ok &&= is($e->{code}, $code, "$what: code $code");
    $ok &&= is($e->{field}, $field, "$what: field " . ($field // 'none'));

    # raw() has no headers to check
    like($r->{headers}->content_type // '', qr{^application/json},
         "$what: JSON") if $ok && $r->{headers};

    return $ok;
}

sub post {
    my ($what, $body, @want) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    return check($t->http(POST => "$API/appointments", body => $body),
                 $what, @want);
}

sub post_raw {
    my ($what, $bytes, @want) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    return check($t->http(POST => "$API/appointments", body => $bytes,
                          headers => { 'Content-Type' => 'application/json' }),
                 $what, @want);
}

sub chunked {
    my ($data) = @_;

    my $out = '';

    while (length $data) {
        my $piece = substr($data, 0, 3000, '');
        $out .= sprintf("%x\r\n%s\r\n", length $piece, $piece);
    }

    return "${out}0\r\n\r\n";
}

# one request over a fresh connection, for what the user agent cannot send
sub raw {
    my ($request) = @_;

    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1',
                                PeerPort => $t->port, Proto => 'tcp',
                                Timeout => 10)
        or die "connect: $@";

    local $SIG{ALRM} = sub { die "raw request timed out\n" };
    alarm 10;

    print $s $request;

    my $res = '';
    1 while sysread($s, $res, 65536, length $res);

    alarm 0;
    close $s;

    my ($head, $body) = split /\r\n\r\n/, $res, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.[01] (\d{3})};
    my ($len) = ($head // '') =~ /^Content-Length: (\d+)/mi;
    my $rest = '';

    # a second response on the connection follows the first body
    $rest = substr($body, $len, length($body) - $len, '')
        if defined $len && defined $body && length $body > $len;

    my $json = eval { decode_json($body // '') };

    return { status => $status, body => $body, json => $json,
             rest => $rest };
}

sub free_count {
    my $n = 0;

    for my $doctor (qw(gp-one gp-two derm-one)) {
        $n += grep { $_->{status} eq 'free' } @{ slots($t, $doctor, $date) };
    }

    return $n;
}

###############################################################################
