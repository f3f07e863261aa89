package Teleclinic::Room;

# Set-up shared by the waiting-room and call tests: a clinic whose two
# doctors work round the clock in 5-minute slots (so there are slots
# starting in the next minutes, whatever the hour), with passwords, a
# WebSocket location, a metrics location and short room timers; the
# appointments a test books for "now"; patient and doctor connections.
#
#   use FindBin; use lib "$FindBin::Bin/lib";
#   use Teleclinic::Room qw(:all);
#
#   my $t = room(grace => '2s', ring => '3s');     # nginx is running
#   my @a = book_soon($t, 'doc-a', 3);             # [{id,token,start,...}]
#   my ($ws, $welcome) = patient($t, $a[0]);        # hello sent, answered
#   my ($doc, $hi) = doctor_console($t, 'doc-a');   # logged in, hello
#   my $ws2 = connect_ws($t, not_on => $ws->worker_pid($t->worker_pids));
#
# The tests run at a made-up fixed UTC offset under which it is about
# noon now (set in TZ for the test and nginx), so that "today" does not
# end in the middle of a test and slots of today lie ahead.
#
# room(%opts) starts nginx (2 workers, reuseport) and returns the
#   Teleclinic::Test object.  opts: grace (2s), ring (3s), checkin (2h),
#   ttl (1h), http (more http{} directives), server (more server{}
#   lines), workers (2), zone (16m), ws_rate (the /ws location's
#   teleclinic_websocket_rate, "200r/s burst=400").
# book_soon($t, $doctor, $n, %opts) books the next $n free slots of the
#   doctor starting from now on (skipping opts{skip} free ones); names
#   "Patient 1".. or opts{names}; returns the 201 answers' JSON.
# book_at($t, $doctor, $seconds) books the first free slot starting at
#   least $seconds from now.
# login($t, $doctor) a doctor token (dies unless 200).
# connect_ws($t, on => $pid | not_on => $pid) a WebSocket to /ws, held
#   by that worker (or not by it): reconnects until it is.
# patient($t, $appt, %connect_opts) a connection that said hello with the
#   appointment's token: ($ws, the welcome or error answer).
# doctor_console($t, $doctor, %connect_opts) the same with a doctor token.
# start_call($doc, $ws, $appt) the doctor calls that patient, who
#   accepts at once: (the call's id, '' when no ring came; true when both
#   got their call message).
# worker_of($t, $ws) the pid of the worker holding $ws.
# epoch($rfc3339) Unix seconds of an RFC 3339 time.
# turn_credential($username) base64(HMAC-SHA1($TURN_SECRET, $username)).
# room_nodes($redis, %room_opts) two nodes "a" and "b" of one group on
#   that Teleclinic::Redis, each a room() with teleclinic_redis, its
#   public URL and a data key (in the Redis directory); waits until both
#   see both alive: { a => $t, b => $t }.
# home_of($doctor, @names) the node of those names that has the doctor's
#   room, as the module chooses it (rendezvous hashing by CRC-32).
# metrics($t) GET /metrics: { 'name{labels}' => value }, and the text.
# expect_queue($ws, {position => 2, ...}, $name) waits for the patient's
#   queue message with these figures, dropping the ones before it (they
#   were states on the way); a test result; returns the message.  A
#   wanted field missing from the message fails a test of its own (and
#   does not keep the message from matching on the others).
# expect_doctor_queue($ws, [appointment ids], $name) the same for the
#   doctor's queue message listing exactly these, in this order.
# expect_error($ws, $code, $name) the next error message has this code;
#   returns it.

use strict;
use warnings;

use Carp qw(croak);
use Compress::Zlib qw(crc32);
use Digest::SHA qw(hmac_sha1);
use Exporter qw(import);
use MIME::Base64 qw(encode_base64);
use POSIX ();
use Test::More ();
use Time::HiRes ();
use Time::Local qw(timegm);

use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);
use Teleclinic::WS;

our $TURN_SECRET = 'turn-secret-0123456789';
our $PASSWORD = 'room test password';
our $SLOT_MINUTES = 5;

our @DOCTORS = (
    ['doc-a', 'Dr. Ada Room'],
    ['doc-b', 'Dr. Ben Room'],
);

our @EXPORT_OK = qw(room room_nodes home_of book_soon book_at login
                    connect_ws patient start_call
                    doctor_console worker_of epoch turn_credential metrics
                    expect_queue expect_doctor_queue expect_error
                    $TURN_SECRET $SLOT_MINUTES);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

my $API = '/api/v1';


###############################################################################

# a fixed offset under which it is about 12:00 now: "RTZ+11" is UTC-11
sub noon_tz {
    my $hour = (gmtime)[2];
    my $off = 12 - $hour;

    $ENV{TZ} = sprintf('RTZ%+d', -$off);
    POSIX::tzset();

    return $ENV{TZ};
}

sub password_hash {
    my ($t) = @_;

    my $file = $t->write_file('password.txt', "$PASSWORD\n");
    my $out = `@{[ $t->repo ]}/bin/teleclinic-passwd < $file` // '';
    chomp $out;

    croak "teleclinic-passwd failed" unless $out =~ /^scrypt\$/;

    return $out;
}

sub room {
    my (%opts) = @_;

    my $tz = noon_tz();
    my $t = Teleclinic::Test->new(workers => $opts{workers} // 2);
    my $hash = password_hash($t);

    my @doctors = map {
        my $d = doctor($_->[0], 'gp', name => $_->[1], hours => ALL_DAY,
                       slot_minutes => $SLOT_MINUTES);
        $d->{password} = $hash;
        $d;
    } @DOCTORS;

    write_directory($t, directory(departments => ['gp'],
                                  doctors => \@doctors));

    my $http = join "\n",
        'teleclinic_checkin_open ' . ($opts{checkin} // '2h') . ';',
        'teleclinic_grace ' . ($opts{grace} // '2s') . ';',
        'teleclinic_ring_timeout ' . ($opts{ring} // '3s') . ';',
        'teleclinic_ice_servers stun:127.0.0.1:3478',
        '                       turn:127.0.0.1:3478?transport=udp',
        '                       turns:127.0.0.1:5349?transport=tcp;',
        "teleclinic_turn_secret $TURN_SECRET;",
        'teleclinic_turn_ttl ' . ($opts{ttl} // '1h') . ';',
        $opts{http} // '';

    my $server = "location = /ws {\n"
                 . "    teleclinic_websocket;\n"
                 . "    teleclinic_websocket_rate "
                 . ($opts{ws_rate} // '200r/s burst=400') . ";\n"
                 . "}\n\n"
                 . "location = /metrics {\n"
                 . "    teleclinic_metrics;\n"
                 . "}\n"
                 . ($opts{server} // '');

    $t->run(conf(main => "env TZ=$tz;", zone => $opts{zone} // '16m',
                 listen => 'reuseport',
                 http => $http, server => $server));

    return $t;
}


sub room_nodes {
    my ($redis, %opts) = @_;

    my $key_file = $redis->dir . '/data.key';

    unless (-e $key_file) {
        open my $fh, '>', $key_file or croak "$key_file: $!";
        print $fh join('', map { sprintf '%02x', int rand 256 } 1 .. 32), "\n";
        close $fh;
    }

    my %node;

    for my $name (qw(a b)) {
        $node{$name} = room(%opts, http => join "\n",
            'teleclinic_redis 127.0.0.1:' . $redis->port . ';',
            'teleclinic_public_url http://127.0.0.1:%%PORT%%;',
            "teleclinic_data_key_file $key_file;",
            "teleclinic_node $name;",
            $opts{http} // '');
    }

    for my $name (sort keys %node) {
        my $until = Time::HiRes::time() + 15;
        Time::HiRes::sleep(0.1)
            until $node{$name}->error_log =~ /2 nodes alive/
                  || Time::HiRes::time() > $until;
        croak "node $name does not see both nodes alive"
            unless $node{$name}->error_log =~ /2 nodes alive/;
    }

    return \%node;
}

sub home_of {
    my ($doctor, @names) = @_;

    my ($best) = sort { crc32("$doctor/$b") <=> crc32("$doctor/$a") } @names;
    return $best;
}


###############################################################################

sub epoch {
    my ($s) = @_;

    my ($y, $mo, $d, $h, $mi, $sec, $z) = ($s // '') =~
        /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?
          (Z|[+-]\d\d:\d\d)$/x
        or return undef;

    my $t = timegm($sec, $mi, $h, $d, $mo - 1, $y);

    if ($z ne 'Z') {
        my ($sign, $oh, $om) = $z =~ /([+-])(\d\d):(\d\d)/;
        $t -= ($sign eq '-' ? -1 : 1) * ($oh * 3600 + $om * 60);
    }

    return $t;
}

# today's and tomorrow's free slots of $doctor starting $min seconds or
# more from now, in time order
sub upcoming {
    my ($t, $doctor, $min) = @_;

    my $now = time;

    return grep { epoch($_->{start}) >= $now + $min }
           grep { $_->{status} eq 'free' }
           map { @{ slots($t, $doctor, day_ahead($_)) } } 0, 1;
}

sub book_soon {
    my ($t, $doctor, $n, %opts) = @_;

    # a slot about to start could be past by the time it is booked
    my @free = upcoming($t, $doctor, 15);
    splice @free, 0, $opts{skip} // 0;

    croak "fewer than $n free slots of $doctor" if @free < $n;

    my @booked;

    for my $i (0 .. $n - 1) {
        my $name = $opts{names} ? $opts{names}[$i] : 'Patient ' . ($i + 1);
        my $r = book($t, $free[$i]{id}, name => $name);

        croak "booking $free[$i]{id}: " . ($r->{status} // $r->{error})
            unless ($r->{status} // 0) == 201;

        push @booked, { %{ $r->{json} }, name => $name };
    }

    return @booked;
}

sub book_at {
    my ($t, $doctor, $seconds, %opts) = @_;

    my ($slot) = upcoming($t, $doctor, $seconds);
    croak "no free slot of $doctor $seconds s ahead" unless $slot;

    my $name = $opts{name} // 'Late Patient';
    my $r = book($t, $slot->{id}, name => $name);

    croak "booking $slot->{id}: " . ($r->{status} // $r->{error})
        unless ($r->{status} // 0) == 201;

    return { %{ $r->{json} }, name => $name };
}

sub login {
    my ($t, $doctor) = @_;

    my $r = $t->http(POST => "$API/doctor/login",
                     body => { doctor => $doctor, password => $PASSWORD });

    croak "login $doctor: " . ($r->{status} // $r->{error})
        unless ($r->{status} // 0) == 200 && $r->{json}{token};

    return $r->{json}{token};
}


###############################################################################

sub worker_of {
    my ($t, $ws) = @_;
    return $ws->worker_pid($t->worker_pids);
}

sub connect_ws {
    my ($t, %opts) = @_;

    for (1 .. 64) {
        my $ws = Teleclinic::WS->connect($t->url('/ws'));

        return $ws unless defined $opts{on} || defined $opts{not_on};

        my $pid = worker_of($t, $ws) // -1;

        return $ws if defined $opts{on} && $pid == $opts{on};
        return $ws if defined $opts{not_on} && $pid != -1
                      && $pid != $opts{not_on};

        $ws->close(1000);
    }

    croak 'no connection on the wanted worker in 64 tries';
}

sub patient {
    my ($t, $appt, %opts) = @_;

    my $ws = connect_ws($t, %opts);
    my $m = $ws->hello($appt->{token});

    return wantarray ? ($ws, $m) : $ws;
}

sub start_call {
    my ($doc, $ws, $appt) = @_;

    $doc->send_json({ type => 'call', appointment => $appt->{id} });

    my $ring = $ws->recv_json(type => 'ring');
    my $call = $ring ? $ring->{call} : '';

    $ws->send_json({ type => 'accept', call => $call });

    my $both = $ws->recv_json(type => 'call') && $doc->recv_json(type => 'call');

    return ($call, $both);
}

sub doctor_console {
    my ($t, $doctor, %opts) = @_;

    my $token = login($t, $doctor);
    my $ws = connect_ws($t, %opts);
    my $m = $ws->hello($token);

    return wantarray ? ($ws, $m, $token) : $ws;
}


###############################################################################

sub turn_credential {
    my ($username) = @_;
    return encode_base64(hmac_sha1($username, $TURN_SECRET), '');
}

sub metrics {
    my ($t) = @_;

    my $r = $t->http(GET => '/metrics');
    my %m;

    for my $line (split /\n/, $r->{body} // '') {
        next if $line =~ /^\s*(#|$)/;
        my ($key, $value) = $line =~ /^(\S+(?:\{.*\})?)\s+(\S+)/ or next;
        $m{$key} = $value;
    }

    return wantarray ? (\%m, $r) : \%m;
}


###############################################################################

sub figures {
    my ($m) = @_;

    return join ' ', map { "$_=" . ($m->{$_} // 'undef') }
           grep { $_ ne 'v' } sort keys %$m;
}

# queue messages in arrival order until one matches, within $timeout
sub wait_queue {
    my ($ws, $match, $timeout) = @_;

    my $deadline = Time::HiRes::time() + ($timeout // 10);
    my @seen;

    while ((my $left = $deadline - Time::HiRes::time()) > 0) {
        my $m = $ws->recv_json(type => 'queue', timeout => $left) or last;
        push @seen, $m;
        return ($m, @seen) if $match->($m);
    }

    return (undef, @seen);
}

sub expect_queue {
    my ($ws, $want, $name, %opts) = @_;

    # a field the server leaves out cannot pick the message: it is
    # reported on its own below, and the others still pick
    my ($m, @seen) = wait_queue($ws, sub {
        my ($m) = @_;
        for my $k (keys %$want) {
            next unless exists $m->{$k};
            return 0 unless defined $m->{$k} && "$m->{$k}" eq "$want->{$k}";
        }
        return 1;
    }, $opts{timeout});

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    Test::More::ok($m, $name)
        or Test::More::diag('wanted ' . figures($want) . '; got: '
                            . (join('; ', map { figures($_) } @seen)
                               || 'no queue message')
                            . ($ws->closed ? '; closed ' . $ws->closed : ''));

    for my $k (sort keys %$want) {
        next if !$m || exists $m->{$k};
        Test::More::ok(0, "$name: the queue message has \"$k\"");
    }

    return $m;
}

sub expect_doctor_queue {
    my ($ws, $ids, $name, %opts) = @_;

    my $want = join ',', @$ids;

    my ($m, @seen) = wait_queue($ws, sub {
        my ($m) = @_;
        return 0 unless ref $m->{patients} eq 'ARRAY';
        return $want eq join ',', map { $_->{appointment} // '' }
                                  @{ $m->{patients} };
    }, $opts{timeout});

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    Test::More::ok($m, $name)
        or Test::More::diag("wanted [$want]; got: "
                            . (join('; ', map {
                                   '[' . join(',', map {
                                       $_->{appointment} // '?'
                                   } @{ $_->{patients} // [] }) . ']'
                               } @seen) || 'no queue message'));

    return $m;
}

sub expect_error {
    my ($ws, $code, $name, %opts) = @_;

    my $m = $ws->recv_json(type => 'error', timeout => $opts{timeout});

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    Test::More::is($m ? $m->{code} : 'no error message', $code, $name);

    return $m;
}

1;
