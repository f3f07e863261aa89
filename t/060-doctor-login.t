#!/usr/bin/perl

# Doctor login: POST /api/v1/doctor/login checks the doctor's scrypt hash
# from the directory (made here by bin/teleclinic-passwd) and answers a
# doctor token; wrong password and unknown doctor get the same 401; the
# sixth failure in a row gets 429; a malformed hash is refused with the
# directory; an SSO variable names the doctor without a password; and the
# worker keeps answering while logins are being verified.  The lockout
# holds against concurrent attempts and against made-up ids; a flood of
# logins gets 429 busy past the worker's KDF queue while bookings go on;
# a client that goes away has its check dropped before the KDF runs.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(decode_base64url);
use Mojo::JSON qw(encode_json);
use Mojo::Promise;
use IO::Socket::IP;
use Time::HiRes qw(sleep);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);

###############################################################################

my $API = '/api/v1';
my $SECRET = 'test-secret-0123456789';
my $ADMIN = 'test-admin-key-0123456789';
my %KEY = (Authorization => "Bearer $ADMIN");
my $PASSWORD = 'correct horse battery staple';
my $SESSION = 3600;

my $conf = <<'EOF';
http {
    %%TEMP_PATHS%%

    teleclinic_zone tc 8m;
    teleclinic_journal %%PREFIX%%/state/journal fsync=off;
    teleclinic_directory %%PREFIX%%/directory.json;
    teleclinic_token_secret test-secret-0123456789;
    teleclinic_admin_key test-admin-key-0123456789;
    teleclinic_doctor_session 1h;

    server {
        listen 127.0.0.1:%%PORT%%;

        location /api/v1/ {
            teleclinic_api;
        }

        location = /metrics {
            teleclinic_metrics;
        }
    }

    # behind the hospital's SSO: its user name, when there is one
    server {
        listen 127.0.0.1:%%PORT2%%;

        teleclinic_doctor_identity $doctor_sso;

        location /api/v1/ {
            set $doctor_sso $http_x_sso_user;
            teleclinic_api;
        }
    }
}
EOF

my $t = Teleclinic::Test->new(workers => 2);

my $hash = passwd($t, $PASSWORD);
like($hash, qr{^scrypt\$16384\$8\$1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]{43}=$},
     'teleclinic-passwd prints scrypt$N$r$p$salt$hash');
isnt(passwd($t, $PASSWORD), $hash, 'teleclinic-passwd salts each hash');

# gp-three and gp-four for the lockout's races, each alone
my $dir = directory(doctors => ['gp-one', 'gp-two', 'derm-one',
                                doctor('gp-three', 'gp'),
                                doctor('gp-four', 'gp')]);
$_->{password} = $hash for @{ $dir->{doctors} };
write_directory($t, $dir);

$t->run($conf);

###############################################################################
# the right password: a doctor token for the session

my $before = time;
my $r = login('gp-one', $PASSWORD);
is($r->{status}, 200, 'good password: 200')
    or diag explain $r->{json};
is($r->{json}{doctor}, 'gp-one', 'good password: the doctor');

my ($kind, $exp, $subject) = token_payload($r->{json}{token});
is($kind, 2, 'token: kind 2 (doctor)');
is($subject, 'gp-one', 'token: subject is the doctor id');
ok($exp >= $before + $SESSION && $exp <= time + $SESSION,
   'token: expires after teleclinic_doctor_session');
like($r->{json}{expires}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/,
     'expires: RFC 3339');
is(token_valid($r->{json}{token}), 1, 'token: signed with the secret');
is($r->{headers}->header('Cache-Control'), 'no-store',
   'the token is not cached');

###############################################################################
# wrong password, unknown doctor: the same answer

my $wrong = login('gp-one', 'not the password');
is($wrong->{status}, 401, 'wrong password: 401');
is($wrong->{json}{error}{code}, 'bad_credentials',
   'wrong password: bad_credentials');

my $unknown = login('no-such-doctor', $PASSWORD);
is($unknown->{status}, 401, 'unknown doctor: 401');
is($unknown->{body}, $wrong->{body}, 'unknown doctor: the same body');

$r = login('gp-one', uc $PASSWORD);
is($r->{status}, 401, 'password in other case: 401');

$r = login('gp-one', $PASSWORD);
is($r->{status}, 200, 'a few failures do not lock the doctor out');

###############################################################################
# brute force: five failures, then 429 even for the right password

for my $n (1 .. 5) {
    $r = login('gp-two', "guess $n");
    is($r->{status}, 401, "gp-two: failure $n is 401");
}

$r = login('gp-two', 'guess 6');
is($r->{status}, 429, 'gp-two: the sixth attempt is 429');
is($r->{json}{error}{code}, 'too_many_attempts', 'too_many_attempts');

$r = login('gp-two', $PASSWORD);
is($r->{status}, 429, 'gp-two: locked out even with the right password');

$r = login('derm-one', $PASSWORD);
is($r->{status}, 200, 'another doctor is not locked out');

###############################################################################
# bad input

$r = $t->http(POST => "$API/doctor/login", body => '{"doctor": "gp-one",');
is($r->{status}, 400, 'bad JSON: 400');
is($r->{json}{error}{code}, 'malformed_json', 'bad JSON: malformed_json');

$r = $t->http(POST => "$API/doctor/login", body => { doctor => 'gp-one' });
is($r->{status}, 422, 'no password: 422');
is($r->{json}{error}{field}, 'password', 'no password: field');

$r = $t->http(POST => "$API/doctor/login", body => { password => 'x' });
is($r->{status}, 422, 'no doctor: 422');
is($r->{json}{error}{field}, 'doctor', 'no doctor: field');

$r = login('gp-one', '');
is($r->{status}, 422, 'empty password: 422');

$r = $t->http(POST => "$API/doctor/login",
              body => { doctor => 7, password => $PASSWORD });
is($r->{status}, 422, 'doctor not a string: 422');

$r = $t->http(POST => "$API/doctor/login", body => '[1]');
is($r->{status}, 422, 'not an object: 422');

$r = $t->http(PUT => "$API/doctor/login", body => {});
is($r->{status}, 405, 'PUT: 405');

###############################################################################
# a malformed hash is refused with the directory

my @bad = (
    'plain text password',
    'scrypt$16384$8$1$c2FsdA==',
    'scrypt$16383$8$1$c2FsdA==$' . ('A' x 43) . '=',
    'scrypt$16384$8$1$c2FsdA==$c2hvcnQ=',
    'scrypt$16384$8$1$!!!!$' . ('A' x 43) . '=',
    'bcrypt$16384$8$1$c2FsdA==$' . ('A' x 43) . '=',
    'scrypt$16384$8$1$c2FsdA==$' . ('A' x 43) . '=$x',
);

for my $bad (@bad) {
    my $d = directory();
    $_->{password} = $hash for @{ $d->{doctors} };
    $d->{doctors}[0]{password} = $bad;

    $r = $t->http(PUT => "$API/admin/directory", headers => \%KEY,
                  body => $d);
    is($r->{status}, 422, "PUT directory with hash '$bad': 422");
}

my $doc = doctor('gp-one', 'gp', name => 'Dr. Gina One');
$doc->{password} = 'scrypt$1$1$1$$';
$r = $t->http(PUT => "$API/admin/doctors/gp-one", headers => \%KEY,
              body => $doc);
is($r->{status}, 422, 'PUT doctor with a malformed hash: 422');

$r = login('gp-one', $PASSWORD);
is($r->{status}, 200, 'refused changes left the password alone');

# a doctor without a password cannot log in with one
$doc->{password} = undef;
delete $doc->{password};
$r = $t->http(PUT => "$API/admin/doctors/gp-one", headers => \%KEY,
              body => $doc);
is($r->{status}, 200, 'PUT doctor without a password: 200');

$r = login('gp-one', $PASSWORD);
is($r->{status}, 401, 'doctor without a password: 401');
is($r->{body}, $wrong->{body}, 'doctor without a password: the same body');

$doc->{password} = $hash;
$r = $t->http(PUT => "$API/admin/doctors/gp-one", headers => \%KEY,
              body => $doc);
is($r->{status}, 200, 'PUT doctor with a new hash: 200');

$r = login('gp-one', $PASSWORD);
is($r->{status}, 200, 'the new hash is used');

###############################################################################
# SSO: the variable names the doctor, no password needed

$r = $t->http(POST => "$API/doctor/login", port => 'PORT2',
              headers => { 'X-SSO-User' => 'gp-one' });
is($r->{status}, 200, 'SSO: 200 without a password');
is($r->{json}{doctor}, 'gp-one', 'SSO: the doctor of the variable');
($kind, undef, $subject) = token_payload($r->{json}{token});
is("$kind $subject", '2 gp-one', 'SSO: a doctor token for gp-one');

$r = $t->http(POST => "$API/doctor/login", port => 'PORT2',
              headers => { 'X-SSO-User' => 'ghost' });
is($r->{status}, 401, 'SSO: a name not in the directory: 401');

$r = $t->http(POST => "$API/doctor/login", port => 'PORT2',
              body => { doctor => 'derm-one', password => $PASSWORD });
is($r->{status}, 200, 'SSO server, empty variable: the password counts');
is($r->{json}{doctor}, 'derm-one', 'SSO server, empty variable: doctor');

$r = $t->http(POST => "$API/doctor/login", port => 'PORT2',
              body => { doctor => 'derm-one', password => 'wrong' });
is($r->{status}, 401, 'SSO server, empty variable: wrong password 401');

$r = $t->http(POST => "$API/doctor/login", body => {},
              headers => { 'X-SSO-User' => 'gp-one' });
is($r->{status}, 422, 'no SSO variable here: the header means nothing');

# how the console learns which way to sign in: GET of the login route
for my $case ([ 'PORT2', 'gp-one', 'true', 'SSO names a doctor' ],
              [ 'PORT2', undef, 'false', 'SSO server, empty variable' ],
              [ 'PORT', 'gp-one', 'false', 'no SSO here, the header sent' ]) {
    my ($port, $user, $sso, $what) = @$case;
    $r = $t->http(GET => "$API/doctor/login", port => $port,
                  headers => { defined $user ? ('X-SSO-User' => $user) : () });
    is($r->{status}, 200, "GET login ($what): 200");
    is(Mojo::JSON::encode_json($r->{json}),
       qq({"password":true,"sso":$sso}), "GET login ($what): sso $sso");
}

###############################################################################
# the worker answers other requests while logins are being verified

{
    my $ua = Mojo::UserAgent->new;
    $ua->request_timeout(30);
    my @p;

    for my $n (1 .. 4) {
        push @p, $ua->post_p($t->url("$API/doctor/login"),
                             json => { doctor => 'derm-one',
                                       password => $PASSWORD });

        push @p, $ua->get_p($t->url("$API/departments")) for 1 .. 3;
    }

    my @status;
    Mojo::Promise->all(@p)->then(sub {
        @status = map { $_->[0]->res->code // 0 } @_;
    })->catch(sub { diag "concurrent requests: @_" })->wait;

    is(scalar @status, 16, 'concurrent: every request answered');
    is(scalar(grep { $_ == 200 } @status), 16,
       'concurrent: logins and departments all 200');
}

###############################################################################
# clients that go away while their login is verified

for my $n (1 .. 4) {
    my $body = encode_json({ doctor => 'derm-one', password => $PASSWORD });
    my $s = IO::Socket::IP->new(PeerAddr => '127.0.0.1',
                                PeerPort => $t->port) or die "connect: $!";
    print $s "POST $API/doctor/login HTTP/1.1\r\nHost: localhost\r\n"
             . "Content-Type: application/json\r\n"
             . "Content-Length: " . length($body) . "\r\n\r\n$body";
    close $s;
}

select(undef, undef, undef, 0.5);

$r = login('derm-one', $PASSWORD);
is($r->{status}, 200, 'after clients went away mid-login: 200');

###############################################################################
# 30 logins at once for one doctor, 29 wrong and the right one last: an
# attempt counts from before its KDF, so no more than 5 are checked and
# the right one is refused with the others

{
    my $checks = metric($t, 'teleclinic_doctor_login_checks_total');
    my $ua = Mojo::UserAgent->new;
    $ua->request_timeout(60);

    my (@codes, $right, $sent, $send_right);
    my $pending = 30;
    my $done = sub { Mojo::IOLoop->stop unless --$pending };

    # after the first answer (or 0.3 s): the wrong ones are all in by then
    $send_right = sub {
        return if $sent++;
        $ua->post($t->url("$API/doctor/login"),
                  json => { doctor => 'gp-three', password => $PASSWORD },
                  sub { $right = $_[1]->res; $done->() });
    };

    for my $n (1 .. 29) {
        $ua->post($t->url("$API/doctor/login"),
                  json => { doctor => 'gp-three', password => "guess $n" },
                  sub {
                      push @codes, $_[1]->res->code // 0;
                      $send_right->();
                      $done->();
                  });
    }

    my $timer = Mojo::IOLoop->timer(0.3 => $send_right);
    Mojo::IOLoop->start;
    Mojo::IOLoop->remove($timer);

    my $checked = grep { $_ == 401 } @codes;
    is(scalar @codes, 29, 'race: every wrong attempt answered');
    ok($checked <= 5, "race: at most 5 wrong ones checked ($checked)");
    is(scalar(grep { $_ == 429 } @codes), 29 - $checked,
       'race: the others refused with 429');
    is($right->code, 429, 'race: the right password, sent last, is refused');
    is(eval { $right->json->{error}{code} }, 'too_many_attempts',
       'race: too_many_attempts');
    ok(defined $checks
       && metric($t, 'teleclinic_doctor_login_checks_total') - $checks <= 5,
       'race: no more than 5 KDFs ran');
}

###############################################################################
# made-up ids cannot flush a doctor's count: 4 failures for gp-four, then
# 76 failures for made-up ids (70 ids, the first of them 7 times: never
# locked out, each with a KDF and the same answer as a wrong password),
# and gp-four's fifth failure still locks it

for my $n (1 .. 4) {
    $r = login('gp-four', "guess $n");
    is($r->{status}, 401, "gp-four: failure $n is 401");
}

{
    my $checks = metric($t, 'teleclinic_doctor_login_checks_total');
    my $ua = Mojo::UserAgent->new;
    $ua->request_timeout(60);

    my @ids = ((map { "made-up-$_" } 1 .. 70), ('made-up-1') x 6);
    my @bodies;

    Mojo::Promise->map({ concurrency => 4 }, sub {
        $ua->post_p($t->url("$API/doctor/login"),
                    json => { doctor => $_, password => 'guess' })
           ->then(sub { push @bodies, $_[0]->res->code . ' '
                                      . $_[0]->res->body });
    }, @ids)->catch(sub { diag "made-up ids: @_" })->wait;

    is(scalar @bodies, 76, 'made-up ids: 76 answers');
    is(scalar(grep { $_ eq "401 $wrong->{body}" } @bodies), 76,
       'made-up ids: each the 401 of a wrong password, never locked out');
    is(metric($t, 'teleclinic_doctor_login_checks_total') - ($checks // 0),
       76, 'made-up ids: each cost a KDF');
}

$r = login('gp-four', 'guess 5');
is($r->{status}, 401, 'gp-four: failure 5 is 401');

$r = login('gp-four', $PASSWORD);
is($r->{status}, 429, 'gp-four: locked out after 5, made-up ids or not');
is($r->{json}{error}{code}, 'too_many_attempts',
   'gp-four: too_many_attempts');

###############################################################################
# a flood of logins for made-up ids, on one worker with the journal's
# fsync on: past the worker's KDF queue they get 429 busy with
# Retry-After, and bookings made meanwhile are answered before the
# flood's logins are

my $SLOW = 'scrypt$16384$8$16$c2xvdy1kb2N0b3Itc2FsdA==$' . ('A' x 43) . '=';

my $f = Teleclinic::Test->new(workers => 1);

{
    my $d = directory(doctors => ['gp-one', 'gp-two', 'derm-one',
                                  doctor('slow-doc', 'gp')]);
    $_->{password} = $hash for @{ $d->{doctors} };
    # 16 times the usual work: a KDF that keeps the thread busy a while
    $d->{doctors}[3]{password} = $SLOW;
    write_directory($f, $d);

    $f->run(conf(server => "location = /metrics {\n"
                           . "    teleclinic_metrics;\n}\n"));
}

{
    my @slots = (free_slot_ids($f, 'gp-one'))[0 .. 4];
    my $busy = metric($f, 'teleclinic_doctor_login_refused_total'
                          . '{reason="busy"}');
    my $ua = Mojo::UserAgent->new;
    $ua->request_timeout(60);

    my $seq = 0;
    my $pending = 205;
    my (@logins, @bookings, $sent, $book, $booked);
    my $done = sub { Mojo::IOLoop->stop unless --$pending };

    # the bookings go once the flood is in: at its first answer (or 0.5 s)
    $book = sub {
        return if $sent++;
        $booked = $seq;

        for my $slot (@slots) {
            $ua->post($f->url("$API/appointments"),
                      json => { slot => $slot,
                                patient => { name => 'Flood Test',
                                             phone => '+4930123456' },
                                reason => 'during a login flood' },
                      sub {
                          push @bookings, [++$seq, $_[1]->res];
                          $done->();
                      });
        }
    };

    for my $n (1 .. 200) {
        $ua->post($f->url("$API/doctor/login"),
                  json => { doctor => "flood-$n", password => 'guess' },
                  sub {
                      push @logins, [++$seq, $_[1]->res];
                      $book->();
                      $done->();
                  });
    }

    my $timer = Mojo::IOLoop->timer(0.5 => $book);
    Mojo::IOLoop->start;
    Mojo::IOLoop->remove($timer);

    my @status = map { $_->[1]->code // 0 } @bookings;
    is("@status", '201 201 201 201 201', 'flood: every booking made');

    my @busy = grep { $_->[1]->code == 429 } @logins;
    my @checked = grep { $_->[1]->code == 401 } @logins;

    # the fsync of a booking does not wait for the KDFs queued before it
    my $last_booking = (sort { $b <=> $a } map { $_->[0] } @bookings)[0];
    my @after = grep { $_->[0] > $booked } @checked;
    my $before = grep { $_->[0] < ($last_booking // 0) } @after;
    ok(@after && $before <= 3,
       'flood: the bookings are answered before the logins still to check '
       . "($before of " . @after . ' first)');
    is(@busy + @checked, 200, 'flood: every login 401 or 429');
    ok(@busy > 0, 'flood: 429 past the worker\'s KDF queue (' . @busy
                  . ' of 200)');
    is(scalar(grep { (eval { $_->[1]->json->{error}{code} } // '') eq 'busy'
                     && ($_->[1]->headers->header('Retry-After') // '')
                        eq '1' } @busy),
       scalar @busy, 'flood: each 429 is busy, with Retry-After: 1');
    is(metric($f, 'teleclinic_doctor_login_refused_total{reason="busy"}')
       - ($busy // 0), scalar @busy, 'flood: the busy ones counted');
}

###############################################################################
# clients that go away before their login's KDF has started: the task is
# dropped and the KDF never runs (two close right after the request, one a
# moment later, behind a slow check that keeps the thread busy)

{
    my $checks = metric($f, 'teleclinic_doctor_login_checks_total');
    my $dropped = metric($f, 'teleclinic_doctor_login_dropped_total');
    my $ua = Mojo::UserAgent->new;
    $ua->request_timeout(60);

    my $slow;
    $ua->post($f->url("$API/doctor/login"),
              json => { doctor => 'slow-doc', password => 'guess' },
              sub { $slow = $_[1]->res; Mojo::IOLoop->stop });

    # until the slow one is in
    my $timer = Mojo::IOLoop->timer(0.2 => sub { Mojo::IOLoop->stop });
    Mojo::IOLoop->start;
    Mojo::IOLoop->remove($timer);

    my @s = map { raw_login($f, 'gp-one', $PASSWORD) } 1 .. 3;
    close $s[0];
    close $s[1];
    sleep 0.1;
    close $s[2];

    Mojo::IOLoop->start unless $slow;

    is($slow && $slow->code, 401, 'gone: the slow check is answered');
    is(metric($f, 'teleclinic_doctor_login_dropped_total') - ($dropped // 0),
       3, 'gone: the three logins whose clients left were dropped');
    is(metric($f, 'teleclinic_doctor_login_checks_total') - ($checks // 0),
       1, 'gone: only the slow one\'s KDF ran');

    $r = $f->http(POST => "$API/doctor/login",
                  body => { doctor => 'gp-one', password => $PASSWORD });
    is($r->{status}, 200, 'gone: the next login is checked: 200');
}

ok($f->stop, 'flood instance: no problems in the log');

###############################################################################
# teleclinic_doctor_login_queue: one at a time per worker

{
    my $q = Teleclinic::Test->new(workers => 1);
    my $d = directory(doctors => ['gp-one', doctor('slow-doc', 'gp')]);
    $d->{doctors}[0]{password} = $hash;
    $d->{doctors}[1]{password} = $SLOW;
    write_directory($q, $d);

    eval { $q->run(conf(http => 'teleclinic_doctor_login_queue 1;')) };
    is($@, '', 'teleclinic_doctor_login_queue 1: nginx starts');

    my $ua = Mojo::UserAgent->new;
    $ua->request_timeout(60);

    my ($slow, $next);
    $ua->post($q->url("$API/doctor/login"),
              json => { doctor => 'slow-doc', password => 'guess' },
              sub { $slow = $_[1]->res; Mojo::IOLoop->stop if $next });

    my $timer = Mojo::IOLoop->timer(0.2 => sub {
        $ua->post($q->url("$API/doctor/login"),
                  json => { doctor => 'gp-one', password => $PASSWORD },
                  sub { $next = $_[1]->res; Mojo::IOLoop->stop if $slow });
    });
    Mojo::IOLoop->start;

    is($next && $next->code, 429, 'queue 1: a second login meanwhile is 429');
    is(eval { $next->json->{error}{code} }, 'busy', 'queue 1: busy');
    is($slow && $slow->code, 401, 'queue 1: the first is checked');

    $r = $q->http(POST => "$API/doctor/login",
                  body => { doctor => 'gp-one', password => $PASSWORD });
    is($r->{status}, 200, 'queue 1: then the next one is checked');

    # a reload: the old worker answers its login before it goes
    undef $slow;
    $ua->post($q->url("$API/doctor/login"),
              json => { doctor => 'slow-doc', password => 'guess' },
              sub { $slow = $_[1]->res; Mojo::IOLoop->stop });

    $timer = Mojo::IOLoop->timer(0.2 => sub { Mojo::IOLoop->stop });
    Mojo::IOLoop->start;
    Mojo::IOLoop->remove($timer);

    eval { $q->reload };
    is($@, '', 'reload with a login being checked');

    Mojo::IOLoop->start unless $slow;
    is($slow && $slow->code, 401, 'reload: the login is still answered');

    $q->allow_log(qr/teleclinic_doctor_login_queue/) if $@;
    ok($q->stop, 'queue 1: no problems in the log');
}

###############################################################################
# a malformed hash in the directory file stops the start

{
    my $bad = Teleclinic::Test->new(workers => 1);
    my $d = directory();
    $d->{doctors}[0]{password} = 'md5$abc';
    write_directory($bad, $d);

    (my $c = $conf) =~ s/\n    # behind.*\n}\n/\n}\n/s;

    eval { $bad->run($c) };
    like($@, qr/\[emerg\].*password/, 'bad hash in the file: emerg');
    ok(!$bad->is_running, 'bad hash in the file: not running');

    $bad->allow_log(qr/password/);
    ok($bad->stop, 'bad hash in the file: nothing else in the log');
}

ok($t->stop, 'stop: no problems in the log');

done_testing;

###############################################################################

sub login {
    my ($doctor, $password) = @_;

    return $t->http(POST => "$API/doctor/login",
                    body => { doctor => $doctor, password => $password });
}

# the value of one sample of /metrics, undef without it
sub metric {
    my ($t, $name) = @_;

    my $body = $t->http(GET => '/metrics')->{body} // '';

    return $body =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

# a login on a socket of its own, for the caller to close
sub raw_login {
    my ($t, $doctor, $password) = @_;

    my $body = encode_json({ doctor => $doctor, password => $password });
    my $s = IO::Socket::IP->new(PeerAddr => '127.0.0.1',
                                PeerPort => $t->port) or die "connect: $!";

    print $s "POST $API/doctor/login HTTP/1.1\r\nHost: localhost\r\n"
             . "Content-Type: application/json\r\n"
             . "Content-Length: " . length($body) . "\r\n\r\n$body";

    return $s;
}

sub passwd {
    my ($t, $password) = @_;

    my $file = $t->write_file('password.txt', "$password\n");
    my $out = `@{[ $t->repo ]}/bin/teleclinic-passwd < $file` // '';
    chomp $out;

    return $out;
}

sub token_payload {
    my ($token) = @_;

    my ($payload) = split /\./, $token // '';
    return unpack 'C Q> a*', decode_base64url($payload // '');
}

sub token_valid {
    my ($token) = @_;

    my ($payload, $mac) = split /\./, $token;
    my $want = hmac_sha256("ngx_teleclinic token v1\0"
                           . decode_base64url($payload), $SECRET);

    return $want eq decode_base64url($mac) ? 1 : 0;
}
