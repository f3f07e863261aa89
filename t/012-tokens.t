#!/usr/bin/perl

# Access to an appointment: the patient's token (and nothing else that
# looks like one), the admin key in the Authorization header only, and a
# token secret read from teleclinic_token_secret_file.  Tokens are
# crafted here from the format in the brief; a crafted token that the
# server accepts proves the crafting, so the refusals that follow are
# refusals of exactly what was altered.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url decode_base64url);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);

###############################################################################

my $API = '/api/v1';
my $SECRET = $TOKEN_SECRET;       # what conf() gives nginx
my $ADMIN = $ADMIN_KEY;
my $TTL = 7 * 86400;

my $t = Teleclinic::Test->new(workers => 2);

write_directory($t);
$t->run(conf());

my $date = day_ahead(1);

my $r = book($t, free_slot($t, 'gp-one', $date)->{id}, name => 'Anna A');
is($r->{status}, 201, 'book A') or BAIL_OUT('cannot book');
my $a = $r->{json};

$r = book($t, free_slot($t, 'gp-one', $date)->{id}, name => 'Bert B');
is($r->{status}, 201, 'book B') or BAIL_OUT('cannot book');
my $b = $r->{json};

my $a_exp = token_expiry($a->{token});

###############################################################################
# the crafting is right: it reproduces and extends what the server issues

is($a_exp, epoch_of($a->{end}) + $TTL, 'issued token: end + 7 days');
is(craft($SECRET, 1, $a_exp, $a->{id}), $a->{token},
   'crafted token equals the issued one, byte for byte');

my $future = craft($SECRET, 1, time + 30 * 86400, $a->{id});
isnt($future, $a->{token}, 'crafted token with another expiry differs');

$r = get_appt($a->{id}, "Bearer $future");
is($r->{status}, 200, 'crafted valid token with a future expiry: 200');
is($r->{json}{patient}{name}, 'Anna A', 'crafted token reads A');

$r = get_appt($a->{id}, "Bearer $a->{token}");
is($r->{status}, 200, 'issued token: 200');

###############################################################################
# refused tokens

my ($pay, $mac) = split /\./, $a->{token};
my $raw = decode_base64url($pay);

my %bad = (
    'garbage'                 => 'garbage',
    'only a payload'          => $pay,
    'empty signature'         => "$pay.",
    'empty payload'           => ".$mac",
    'two dots'                => "$pay.$mac.$mac",
    'altered signature'       => "$pay." . flip($mac),
    'signature cut short'     => "$pay." . substr($mac, 0, -2),
    'signature of B'          => "$pay." . (split /\./, $b->{token})[1],
    'altered payload'         => flip($pay) . ".$mac",
    'payload names B, A MAC'  => encode_base64url(pack('C Q> H16', 1,
                                                       $a_exp, $b->{id}))
                                 . ".$mac",
    'later expiry, old MAC'   => encode_base64url(pack('C Q> H16', 1,
                                                       $a_exp + 86400,
                                                       $a->{id}))
                                 . ".$mac",
    'token and trailing junk' => "$a->{token}x",
    'expired'                 => craft($SECRET, 1, time - 3600, $a->{id}),
    'expired long ago'        => craft($SECRET, 1, 1, $a->{id}),
    'other secret'            => craft('another-secret-0123456789', 1,
                                       $a_exp, $a->{id}),
    'secret with a suffix'    => craft("${SECRET}x", 1, $a_exp, $a->{id}),
    'label without its NUL'   => craft($SECRET, 1, $a_exp, $a->{id},
                                       'ngx_teleclinic token v1'),
    'kind 2 (not a patient)'  => craft($SECRET, 2, $a_exp, $a->{id}),
    'kind 0'                  => craft($SECRET, 0, $a_exp, $a->{id}),
    'subject of 7 bytes'      => craft_raw($SECRET,
                                     pack('C Q> a7', 1, $a_exp,
                                          substr(pack('H16', $a->{id}), 1))),
    'subject of 9 bytes'      => craft_raw($SECRET,
                                     pack('C Q> a9', 1, $a_exp,
                                          "\0" . pack('H16', $a->{id}))),
    'very long'               => 'A' x 5000 . ".$mac",
);

for my $what (sort keys %bad) {
    $r = get_appt($a->{id}, "Bearer $bad{$what}");
    refused($r, 401, "$what token");
}

for my $h ('', 'Bearer', 'Bearer ', "Basic $a->{token}", "Token $a->{token}",
           "Bearer  $a->{token}", "$a->{token}")
{
    $r = get_appt($a->{id}, $h eq '' ? undef : $h);
    refused($r, 401, "Authorization '" . substr($h, 0, 12) . "'");
}

$r = get_appt($a->{id}, "bearer $a->{token}");
is($r->{status}, 200, 'the scheme is case-insensitive');

# a valid token, of the other appointment
$r = get_appt($a->{id}, "Bearer $b->{token}");
refused($r, 403, "B's token for A");

$r = get_appt($b->{id}, "Bearer $a->{token}");
refused($r, 403, "A's token for B");

$r = get_appt($b->{id}, 'Bearer ' . craft($SECRET, 1, time - 60, $a->{id}));
refused($r, 401, "A's expired token for B");

# tokens that do not verify change nothing either
my $s = free_slot($t, 'gp-two', $date)->{id};

for my $case (['none', undef, 401],
              ['altered', "Bearer $pay." . flip($mac), 401],
              ['expired', 'Bearer ' . craft($SECRET, 1, time - 60, $a->{id}),
               401],
              ['other secret', 'Bearer ' . craft('another-secret-0123456789',
                                                 1, $a_exp, $a->{id}), 401],
              ["B's", "Bearer $b->{token}", 403])
{
    my ($what, $auth, $status) = @$case;

    $r = $t->http(POST => "$API/appointments/$a->{id}/cancel",
                  headers => { $auth ? (Authorization => $auth) : () });
    refused($r, $status, "cancel with $what token");

    $r = $t->http(POST => "$API/appointments/$a->{id}/reschedule",
                  body => { slot => $s },
                  headers => { $auth ? (Authorization => $auth) : () });
    refused($r, $status, "reschedule with $what token");
}

$r = get_appt($a->{id}, "Bearer $a->{token}");
is($r->{json}{status}, 'booked', 'A is still booked');
is($r->{json}{slot}, $a->{slot}, 'A is still in its slot');
is((grep { $_->{id} eq $s } @{ slots($t, 'gp-two', $date) })[0]{status},
   'free', 'the slot of the refused reschedules is free');

###############################################################################
# the admin key: in the header, never in the URL

$r = get_appt($a->{id}, "Bearer $ADMIN");
is($r->{status}, 200, 'admin key: 200');
is($r->{json}{patient}{name}, 'Anna A', 'admin key: patient data');

$r = get_appt($b->{id}, "Bearer $ADMIN");
is($r->{json}{patient}{name}, 'Bert B', 'admin key: any appointment');

refused(get_appt($a->{id}, 'Bearer ' . substr($ADMIN, 0, -1)), 401,
        'admin key cut short');
refused(get_appt($a->{id}, "Bearer ${ADMIN}x"), 401, 'admin key too long');
refused(get_appt($a->{id}, 'Bearer ' . uc $ADMIN), 401, 'admin key in caps');

for my $q ("key=$ADMIN", "admin_key=$ADMIN", "token=$ADMIN",
           "access_token=$ADMIN", "token=$a->{token}",
           "access_token=$a->{token}")
{
    my ($name) = $q =~ /^(\w+)=/;

    $r = $t->http(GET => "$API/appointments/$a->{id}?$q");
    refused($r, 401, "?$name= in the URL");
    ok(!exists(($r->{json} // {})->{patient}), "?$name=: no patient data");
}

$r = $t->http(GET => "$API/admin/directory?key=$ADMIN");
refused($r, 401, 'admin directory with ?key= in the URL');

# the admin key also works where a token would
$r = cancel($t, $b->{id}, $ADMIN);
is($r->{status}, 200, 'admin key cancels');
is($r->{json}{status}, 'cancelled', 'admin cancel: cancelled');

$r = get_appt($b->{id}, "Bearer $b->{token}");
refused($r, 401, "B's token after the admin's cancel");
ok(!exists(($r->{json} // {})->{patient}), 'no patient data for it');

$r = get_appt($b->{id}, "Bearer $ADMIN");
is($r->{json}{status}, 'cancelled', 'B is cancelled');

###############################################################################
# a token names the appointment's version: a reschedule or a cancel
# outdates the tokens given before it

$r = book($t, free_slot($t, 'gp-one', $date)->{id}, name => 'Dora D',
          phone => '+49 30 7654321');
is($r->{status}, 201, 'book D') or BAIL_OUT('cannot book');
my $d = $r->{json};
my $d_exp = token_expiry($d->{token});

is(length(decode_base64url((split /\./, $d->{token})[0])), 1 + 8 + 8,
   'a new booking: the subject is the id alone (version 0)');

my $s2 = free_slot($t, 'gp-two', $date, 1)->{id};
$r = $t->http(POST => "$API/appointments/$d->{id}/reschedule",
              body => { slot => $s2 }, headers => auth_of($d->{token}));
is($r->{status}, 200, 'D rescheduled');
my $d1 = $r->{json}{token};
my $d1_exp = token_expiry($d1);

isnt($d1, $d->{token}, 'the reschedule gives a new token');
is(craft_raw($SECRET, pack('C Q> H16 N', 1, $d1_exp, $d->{id}, 1)), $d1,
   'the new token names version 1: the id, then 4 bytes');
like($r->{json}{join_url}, qr/#token=\Q$d1\E$/,
     'the new join_url carries the new token');

refused(get_appt($d->{id}, "Bearer $d->{token}"), 401,
        'the old token after the reschedule reads nothing');
refused($t->http(POST => "$API/appointments/$d->{id}/reschedule",
                 body => { slot => free_slot($t, 'gp-two', $date, 2)->{id} },
                 headers => auth_of($d->{token})), 401,
        'the old token does not reschedule');
refused($t->http(POST => "$API/appointments/$d->{id}/reschedule",
                 body => { slot => 'not a slot' },
                 headers => auth_of($d->{token})), 401,
        'the old token with a bad body: 401 first');
refused($t->http(POST => "$API/appointments/$d->{id}/cancel",
                 headers => auth_of($d->{token})), 401,
        'the old token does not cancel');

for my $case (['version 0 spelt with 4 bytes',
               pack('C Q> H16 N', 1, $d1_exp, $d->{id}, 0)],
              ['version 2, not yet there',
               pack('C Q> H16 N', 1, $d1_exp, $d->{id}, 2)],
              ['a version of 2 bytes',
               pack('C Q> H16 n', 1, $d1_exp, $d->{id}, 1)])
{
    refused(get_appt($d->{id}, 'Bearer ' . craft_raw($SECRET, $case->[1])),
            401, "a crafted token of $case->[0]");
}

$r = get_appt($d->{id}, "Bearer $d1");
is($r->{status}, 200, 'the new token reads D');
is($r->{json}{slot}, $s2, 'D is in the new slot');
is($r->{json}{patient}{name}, 'Dora D', 'the new token: the patient');

# the versions are in the journal
$t->kill9;
$t->start;

refused(get_appt($d->{id}, "Bearer $d->{token}"), 401,
        'after kill -9: the old token still reads nothing');
is(get_appt($d->{id}, "Bearer $d1")->{status}, 200,
   'after kill -9: the new token reads D');
is(get_appt($a->{id}, "Bearer $a->{token}")->{status}, 200,
   'after kill -9: a token of an appointment never changed reads it');

$r = $t->http(POST => "$API/appointments/$d->{id}/cancel",
              headers => auth_of($d1));
is($r->{status}, 200, 'D cancelled with the new token');
is($r->{json}{status}, 'cancelled', 'the answer: cancelled');
ok(!exists $r->{json}{patient}, 'the answer: no patient data');

$r = get_appt($d->{id}, "Bearer $d1");
refused($r, 401, 'the token after the cancel reads nothing');
ok(!exists(($r->{json} // {})->{patient}), 'no name or phone for it');

refused($t->http(POST => "$API/appointments/$d->{id}/cancel",
                 headers => auth_of($d1)), 401,
        'the token after the cancel does not cancel again');

$r = get_appt($d->{id}, "Bearer $ADMIN");
is($r->{status}, 200, 'the admin still reads D');
is($r->{json}{patient}{phone}, '+49 30 7654321', 'the admin: the phone');

$t->stop;
undef $t;

###############################################################################
# teleclinic_token_secret_file: the secret comes from a file

my $FILE_SECRET = 'file-secret-abcdefghijklmnop';

my $f = Teleclinic::Test->new(workers => 2);

write_directory($f);
$f->write_file('secret/token', "$FILE_SECRET\n");

$f->run(conf(secret => 'teleclinic_token_secret_file '
                       . '%%PREFIX%%/secret/token;'));

$r = book($f, free_slot($f, 'gp-one', $date)->{id}, name => 'Carla C');
is($r->{status}, 201, 'secret file: book');
my $c = $r->{json};
my $c_exp = token_expiry($c->{token});

is(craft($FILE_SECRET, 1, $c_exp, $c->{id}), $c->{token},
   'secret file: the token is signed with the file content, newline cut');

$r = appointment($f, $c->{id}, $c->{token});
is($r->{status}, 200, 'secret file: issued token verifies');
is($r->{json}{patient}{name}, 'Carla C', 'secret file: reads the patient');

$r = appointment($f, $c->{id},
                 craft($FILE_SECRET, 1, time + 86400, $c->{id}));
is($r->{status}, 200, 'secret file: crafted token verifies');

for my $case (['the conf secret', $SECRET],
              ['the file with its newline', "$FILE_SECRET\n"])
{
    my ($what, $key) = @$case;

    $r = appointment($f, $c->{id}, craft($key, 1, $c_exp, $c->{id}));
    refused($r, 401, "secret file: token signed with $what");
}

$f->stop;
undef $f;

done_testing;

###############################################################################

sub craft_raw {
    my ($secret, $payload, $label) = @_;

    $label //= "ngx_teleclinic token v1\0";

    return encode_base64url($payload) . '.'
           . encode_base64url(hmac_sha256($label . $payload, $secret));
}

sub craft {
    my ($secret, $kind, $exp, $id, $label) = @_;
    return craft_raw($secret, pack('C Q> H16', $kind, $exp, $id), $label);
}

sub token_expiry {
    my ($token) = @_;

    my ($payload) = split /\./, $token;
    my ($kind, $exp) = unpack 'C Q>', decode_base64url($payload);
    return $exp;
}

# one base64url character changed to another
sub flip {
    my ($s) = @_;

    my $i = int(length($s) / 2);
    my $c = substr($s, $i, 1);
    substr($s, $i, 1) = $c eq 'A' ? 'B' : 'A';

    return $s;
}

sub auth_of {
    my ($token) = @_;
    return { Authorization => "Bearer $token" };
}

sub get_appt {
    my ($id, $auth) = @_;

    return $t->http(GET => "$API/appointments/$id",
                    headers => { defined $auth ? (Authorization => $auth)
                                               : () });
}

sub refused {
    my ($r, $status, $what) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    my $code = $status == 401 ? 'unauthorized' : 'forbidden';

    is($r->{status}, $status, "$what: $status")
        && is(($r->{json} // {})->{error}{code}, $code, "$what: $code");
}

sub epoch_of {
    my ($s) = @_;

    require Time::Local;

    my ($y, $m, $d, $hh, $mm, $ss, $sign, $oh, $om) =
        $s =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)([+-])(\d+):(\d+)$/
        or return -1;

    my $off = ($oh * 60 + $om) * 60;
    my $t = Time::Local::timegm($ss, $mm, $hh, $d, $m - 1, $y);

    return $sign eq '+' ? $t - $off : $t + $off;
}

###############################################################################
