#!/usr/bin/perl

# The audit trail: $teleclinic_appointment, $teleclinic_actor and
# $teleclinic_action in an access log say who did what to which visit;
# and after a whole book / read / reschedule / cancel / error cycle no
# patient name, phone, reason or token is in access.log, the audit log
# or error.log (at info level).

use strict;
use warnings;

use Test::More;
use MIME::Base64 qw(encode_base64url);
use Mojo::JSON qw(encode_json);
use Mojo::Util qw(url_escape);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);

###############################################################################

my $API = '/api/v1';

my $t = Teleclinic::Test->new(workers => 2);

write_directory($t);

# the harness logs at info level, and access.log in the combined format
$t->run(conf(http => <<'EOF', server => 'location /other { return 204; }'));
log_format audit 'AUDIT $request_method $uri $status '
                 'actor=$teleclinic_actor action=$teleclinic_action '
                 'appt=$teleclinic_appointment';
access_log %%PREFIX%%/logs/audit.log audit;
EOF

my $date = day_ahead(1);

# patient data that is easy to find, whole or in parts
my %secret = (
    name   => 'Zelda Quixotic-Patientname',
    phone  => '+49 170 9876543',
    reason => 'Unmistakable reason words',
);

my @slots = free_slot_ids($t, 'gp-one', $date);

###############################################################################
# the cycle

my $r = book($t, $slots[0], %secret);
is($r->{status}, 201, 'book') or BAIL_OUT('cannot book');
my $a = $r->{json};
my $id = $a->{id};
my @tokens = ($a->{token});

my $auth = auth($a->{token});

$r = $t->http(GET => "$API/appointments/$id", headers => $auth);
is($r->{status}, 200, 'read with the token');

$r = appointment($t, $id, $ADMIN_KEY);
is($r->{status}, 200, 'read with the admin key');

$r = appointment($t, $id);
is($r->{status}, 401, 'read without a token');

# a second booking, whose token reads the first: 403
$r = book($t, $slots[1], name => 'Other Person', phone => '+1 212 5550100');
is($r->{status}, 201, 'book another');
my $other = $r->{json};
push @tokens, $other->{token};

$r = appointment($t, $id, $other->{token});
is($r->{status}, 403, "read with another appointment's token");

$r = $t->http(POST => "$API/appointments/$id/reschedule", headers => $auth,
              body => { slot => $slots[2] });
is($r->{status}, 200, 'reschedule');
push @tokens, $r->{json}{token};
$auth = auth($r->{json}{token});

$r = $t->http(POST => "$API/appointments/$id/reschedule", headers => $auth,
              body => { slot => $slots[1] });
is($r->{status}, 409, 'reschedule onto a taken slot');

$r = $t->http(GET => "$API/appointments/$id", headers => $auth);
is($r->{status}, 200, 'read with the new token');

$r = $t->http(POST => "$API/appointments/$id/cancel", headers => $auth);
is($r->{status}, 200, 'cancel');

# the cancel outdated the token
$r = $t->http(POST => "$API/appointments/$id/cancel", headers => $auth);
is($r->{status}, 401, 'cancel again');

# refused bookings that carry the patient's data
$r = book($t, $slots[1], %secret);
is($r->{status}, 409, 'book a taken slot');

$r = book($t, $slots[3], %secret, phone => "$secret{phone} ext");
is($r->{status}, 422, 'book with a bad phone');

$r = book($t, $slots[3], %secret, name => "$secret{name}\n");
is($r->{status}, 422, 'book with a control character in the name');

$r = $t->http(POST => "$API/appointments",
              headers => { 'Content-Type' => 'application/json' },
              body => '{"slot":"' . $slots[3] . '","patient":{"name":"'
                      . $secret{name} . "\xff\",\"phone\":\"$secret{phone}\"");
is($r->{status}, 400, 'book with malformed JSON and invalid UTF-8');

$r = $t->http(POST => "$API/appointments",
              body => encode_json({ slot => $slots[3],
                                    patient => { name => $secret{name},
                                                 phone => $secret{phone} },
                                    reason => $secret{reason} x 700 }));
is($r->{status}, 413, 'book with a body over the limit');

# tokens and patient data where they do not belong
$r = appointment($t, $id, "$tokens[0]x");
is($r->{status}, 401, 'read with an altered token');

$r = appointment($t, $id, encode_base64url($secret{name}));
is($r->{status}, 401, 'read with a token made of the name');

$r = $t->http(PUT => "$API/admin/directory", headers => $auth,
              body => encode_json(directory()));
is($r->{status}, 403, "admin call with a patient's token");

$r = $t->http(PUT => "$API/admin/directory",
              headers => admin_auth(),
              body => encode_json(directory()));
is($r->{status}, 200, 'admin directory change');

$r = $t->http(GET => "$API/departments");
is($r->{status}, 200, 'departments');

$r = $t->http(GET => '/other');
is($r->{status}, 204, 'a location without the API');

# the log lines are written after the answer: stop nginx to have them all
$t->stop;

###############################################################################
# the audit lines

my @audit = grep { /^AUDIT / } split /\n/, $t->read_file('logs/audit.log');

my @want = (
    [ 'book',             "POST $API/appointments 201", 'anonymous', 'book',
      $id ],
    [ 'read, patient',    "GET $API/appointments/$id 200", 'patient',
      'read', $id ],
    [ 'read, admin',      "GET $API/appointments/$id 200", 'admin', 'read',
      $id ],
    [ 'read, no token',   "GET $API/appointments/$id 401", 'anonymous',
      'read', $id ],
    [ 'book another',     "POST $API/appointments 201", 'anonymous', 'book',
      $other->{id} ],
    [ "read, other's token", "GET $API/appointments/$id 403", 'patient',
      'read', $id ],
    [ 'reschedule',       "POST $API/appointments/$id/reschedule 200",
      'patient', 'reschedule', $id ],
    [ 'reschedule, taken', "POST $API/appointments/$id/reschedule 409",
      'patient', 'reschedule', $id ],
    [ 'cancel',           "POST $API/appointments/$id/cancel 200", 'patient',
      'cancel', $id ],
    [ 'cancel again',     "POST $API/appointments/$id/cancel 401", 'patient',
      'cancel', $id ],
    [ 'book, taken',      "POST $API/appointments 409", 'anonymous', 'book',
      '-' ],
    [ 'book, bad phone',  "POST $API/appointments 422", 'anonymous', 'book',
      '-' ],
    [ 'read, altered token', "GET $API/appointments/$id 401", 'anonymous',
      'read', $id ],
    [ 'directory, patient token', "PUT $API/admin/directory 403",
      'anonymous', '-', '-' ],
    [ 'directory, admin', "PUT $API/admin/directory 200", 'admin',
      'directory', '-' ],
    [ 'departments',      "GET $API/departments 200", 'anonymous', '-', '-' ],
    [ 'no API',           'GET /other 204', '-', '-', '-' ],
);

for my $w (@want) {
    my ($what, $req, $actor, $action, $appt) = @$w;
    my $line = "AUDIT $req actor=$actor action=$action appt=$appt";

    ok(scalar(grep { $_ eq $line } @audit), "audit: $what")
        or diag("wanted: $line");
}

is(scalar(grep { m{ \Q$API\E/appointments/$id/reschedule 200 } } @audit), 1,
   'audit: one line per request');

###############################################################################
# no patient data, no token, in any log

my %logs = (
    'access.log' => $t->read_file('logs/access.log'),
    'audit.log'  => $t->read_file('logs/audit.log'),
    'error.log'  => $t->error_log,
);

ok(length $logs{'access.log'} && $logs{'access.log'} =~ /appointments/,
   'access.log has the requests');
like($logs{'error.log'}, qr/\[info\]/, 'error.log is at info level');

(my $digits = $secret{phone}) =~ tr/0-9//cd;

my %needles = (
    'name'               => $secret{name},
    'surname'            => 'Quixotic',
    'name, URL-escaped'  => url_escape($secret{name}),
    'name, base64url'    => encode_base64url($secret{name}),
    'phone'              => $secret{phone},
    'phone digits'       => $digits,
    'reason'             => $secret{reason},
    'other patient'      => 'Other Person',
);

for my $n (0 .. $#tokens) {
    my ($payload, $mac) = split /\./, $tokens[$n];
    $needles{"token $n"} = $tokens[$n];
    $needles{"token $n signature"} = $mac;
    $needles{"token $n payload"} = $payload;
}

for my $log (sort keys %logs) {
    my @found = grep { index($logs{$log}, $needles{$_}) >= 0 } sort keys
                %needles;

    is("@found", '', "$log: no patient data or token");
}

undef $t;

done_testing;

###############################################################################
