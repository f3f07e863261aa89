package Teleclinic::Clinic;

# A small clinic for tests of the booking API: the nginx conf of a
# clinic, a directory whose doctors work every day of the week (no test
# depends on the weekday), the server's calendar dates, a free slot to
# book, and the requests a patient or the admin makes.
#
#   use FindBin; use lib "$FindBin::Bin/lib";
#   use Teleclinic::Test;
#   use Teleclinic::Clinic qw(:all);
#
#   my $t = Teleclinic::Test->new;
#   write_directory($t);                   # prefix/directory.json
#   $t->run(conf());                       # the standard clinic
#   my $date = day_ahead(1);               # tomorrow, YYYY-MM-DD
#   my $slot = free_slot($t, 'gp-one');    # {id,start,end,status}
#   my $r = book($t, $slot->{id});         # $t->http result, 201
#   $r = cancel($t, $r->{json}{id}, $r->{json}{token});
#
# conf(%opts) the conf text for $t->run: an http block with the zone
#   "tc", the journal state/journal and the directory directory.json in
#   the prefix, the token secret $TOKEN_SECRET and the admin key
#   $ADMIN_KEY, and one server on %%PORT%% whose location /api/v1/ is the
#   API.  opts (text is indented to its place; lines, not a whole block):
#     zone => '8m'       the zone's size
#     secret => text     the secret directive instead of
#                        "teleclinic_token_secret $TOKEN_SECRET;"
#     admin_key => undef no teleclinic_admin_key; a string: that key
#     main => text       before http {} (env TZ=...;)
#     http => text       in http {}, after the directives above
#     listen => text     parameters of the listen directive (reuseport)
#     api => text        in the API location, before teleclinic_api
#     server => text     in the server, after the API location
# directory(%opts) returns the directory as a Perl structure:
#   departments  gp (General Practice), derm (Dermatology)
#   doctors      gp-one, gp-two (gp, 30 min), derm-one (derm, 20 min),
#                all working 08:00-12:00 and 13:00-17:00 every day
#   departments => [...] these instead, each the id of one above or a
#                        {id, name}
#   doctors => [...]     these instead, each the id of one above or a
#                        doctor() entry
# doctor($id, $department, %opts) one doctor entry; opts: name,
#   slot_minutes (30), hours ([["08:00","12:00"],...] every day, or
#   { mon => [...], ... } per weekday; ALL_DAY is round the clock),
#   days_off ([]).
# write_directory($t [, $dir [, $name]]) writes $dir (default
#   directory()) as JSON into the prefix, returns the path.
# day_ahead($n) the server's local date $n days from now (the tests run
#   nginx with the test's TZ, so both agree).
# slots($t, $doctor [, $date]) the slot list, dies unless 200.
# free_slot($t, $doctor [, $date [, $skip]]) the first free slot of the
#   day (default tomorrow) after skipping $skip free ones; dies if none.
# free_slot_ids($t, $doctor [, $date]) the ids of the day's free slots.
# book($t, $slot_id, %opts) POST /api/v1/appointments with a made-up
#   patient; opts: name, phone, reason, body (replaces the whole body).
# appointment($t, $id [, $token]), cancel($t, $id [, $token]),
#   reschedule($t, $id, $token, $slot_id): the patient's requests, with
#   the token (or the admin key) as bearer; no token, no Authorization.
# admin_day($t, $doctor, $date) GET the doctor's day with the admin key.
# auth($token) the Authorization header of a bearer token, as a hash
#   ref for $t->http's headers; admin_auth() that of $ADMIN_KEY.
# group_node($name, $redis, %opts) a node of a group on Redis, started:
#   its own prefix, journal and 2 workers, the directory (opts{directory},
#   default directory()) and the data key every node of this test has;
#   $redis its teleclinic_redis directive(s), opts{http} more http{}
#   directives, opts{listen} conf()'s listen parameters.
# lengthen_journal($t, $n) appends $n "sent" records (of messages the
#   zone does not have) after the last sequence number of the stopped
#   nginx's journal, so that its next start compacts it; returns that
#   number (undef, and nothing written, when there is none).
# book_when_up($t, $slot_id, %opts) book(), tried again while it is 503
#   (a node that has not reached Redis yet) for opts{wait} seconds (10).
# race($slot, \@ports, %opts) truly concurrent POSTs for one slot: opts
#   clients (4) processes each open per_client (50) connections first,
#   client k to $ports[k % @ports], and all write at once.  Returns one
#   hash per request: name, status (0: no answer), error, body (the 201's
#   JSON), code and field (of an error).

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use POSIX qw(strftime);
use IO::Socket::IP;
use Mojo::JSON qw(encode_json decode_json);
use Compress::Zlib qw(crc32);
use Teleclinic::Test ();

use constant ALL_DAY => [['00:00', '24:00']];

our $ADMIN_KEY = 'test-admin-key-0123456789';
our $TOKEN_SECRET = 'test-secret-0123456789';

our @EXPORT_OK = qw(conf directory doctor write_directory day_ahead slots
                    free_slot free_slot_ids book appointment cancel
                    reschedule admin_day auth admin_auth race book_when_up
                    group_node lengthen_journal ALL_DAY
                    $ADMIN_KEY $TOKEN_SECRET);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

my $API = '/api/v1';
my @WEEK = qw(mon tue wed thu fri sat sun);


sub conf {
    my (%opts) = @_;

    my $secret = $opts{secret} // "teleclinic_token_secret $TOKEN_SECRET;";
    my $key = exists $opts{admin_key} ? $opts{admin_key} : $ADMIN_KEY;
    my $listen = defined $opts{listen} ? " $opts{listen}" : '';

    return (defined $opts{main} ? indent($opts{main}, 0) . "\n" : '')
           . "http {\n"
           . "    %%TEMP_PATHS%%\n\n"
           . '    teleclinic_zone tc ' . ($opts{zone} // '8m') . ";\n"
           . "    teleclinic_journal %%PREFIX%%/state/journal;\n"
           . "    teleclinic_directory %%PREFIX%%/directory.json;\n"
           . indent($secret, 4)
           . (defined $key ? "    teleclinic_admin_key $key;\n" : '')
           . indent($opts{http}, 4)
           . "\n"
           . "    server {\n"
           . "        listen 127.0.0.1:%%PORT%%$listen;\n\n"
           . "        location $API/ {\n"
           . indent($opts{api}, 12)
           . "            teleclinic_api;\n"
           . "        }\n"
           . (defined $opts{server} ? "\n" . indent($opts{server}, 8) : '')
           . "    }\n"
           . "}\n";
}

# the lines of $text, each moved $n columns to the right
sub indent {
    my ($text, $n) = @_;

    return '' unless defined $text && length $text;

    my $pad = ' ' x $n;
    $text =~ s/^(?=.)/$pad/mg;

    return $text =~ /\n\z/ ? $text : "$text\n";
}

sub doctor {
    my ($id, $department, %opts) = @_;

    my $hours = $opts{hours} // [['08:00', '12:00'], ['13:00', '17:00']];

    return {
        id         => $id,
        name       => $opts{name} // "Dr. \u$id",
        department => $department,
        schedule   => {
            slot_minutes => $opts{slot_minutes} // 30,
            hours        => ref $hours eq 'HASH'
                            ? $hours : { map { $_ => $hours } @WEEK },
            days_off     => $opts{days_off} // [],
        },
    };
}

sub directory {
    my (%opts) = @_;

    my @departments = (
        { id => 'gp', name => 'General Practice' },
        { id => 'derm', name => 'Dermatology' },
    );

    my @doctors = (
        doctor('gp-one', 'gp', name => 'Dr. Gina One'),
        doctor('gp-two', 'gp', name => 'Dr. Gus Two'),
        doctor('derm-one', 'derm', name => 'Dr. Dora One',
               slot_minutes => 20),
    );

    @departments = pick(\@departments, $opts{departments})
        if $opts{departments};
    @doctors = pick(\@doctors, $opts{doctors}) if $opts{doctors};

    return { departments => \@departments, doctors => \@doctors };
}

# entries named by id from @$known, or given whole
sub pick {
    my ($known, $want) = @_;

    my %by_id = map { $_->{id} => $_ } @$known;

    return map { ref $_ ? $_ : $by_id{$_} // croak "unknown id $_" } @$want;
}

sub write_directory {
    my ($t, $dir, $name) = @_;

    return $t->write_file($name // 'directory.json',
                          encode_json($dir // directory()));
}

sub day_ahead {
    my ($n) = @_;

    # noon today plus whole days: a DST change cannot skip or repeat a day
    my @now = localtime;
    my $noon = time - ($now[2] - 12) * 3600 - $now[1] * 60 - $now[0];

    return strftime('%Y-%m-%d', localtime($noon + ($n // 1) * 86400));
}

sub slots {
    my ($t, $doctor, $date) = @_;

    $date //= day_ahead(1);

    my $r = $t->http(GET => "$API/doctors/$doctor/slots?date=$date");

    croak "slots of $doctor on $date: " . ($r->{status} // $r->{error})
        unless ($r->{status} // 0) == 200 && ref $r->{json} eq 'ARRAY';

    return $r->{json};
}

sub free_slot_ids {
    my ($t, $doctor, $date) = @_;

    return map { $_->{id} } grep { $_->{status} eq 'free' }
           @{ slots($t, $doctor, $date) };
}

sub free_slot {
    my ($t, $doctor, $date, $skip) = @_;

    my @free = grep { $_->{status} eq 'free' } @{ slots($t, $doctor, $date) };
    my $slot = $free[$skip // 0];

    croak "no free slot of $doctor" unless $slot;

    return $slot;
}

sub book {
    my ($t, $slot, %opts) = @_;

    my $body = $opts{body} // {
        slot    => $slot,
        patient => {
            name  => $opts{name} // 'Test Patient',
            phone => $opts{phone} // '+49 30 1234567',
        },
        reason  => $opts{reason} // 'test visit',
    };

    return $t->http(POST => "$API/appointments", body => $body);
}

# one data key for all the nodes of a test
my $GROUP_KEY = join '', map { sprintf '%02x', int rand 256 } 1 .. 32;

sub group_node {
    my ($name, $redis, %opts) = @_;

    my $t = Teleclinic::Test->new(workers => 2);

    write_directory($t, $opts{directory});
    $t->write_file('data.key', $GROUP_KEY);

    $t->run(conf(defined $opts{listen} ? (listen => $opts{listen}) : (),
                 http => join "\n", $redis, "teleclinic_node $name;",
                         'teleclinic_data_key_file %%PREFIX%%/data.key;',
                         $opts{http} // ()));

    return $t;
}

sub lengthen_journal {
    my ($t, $n) = @_;

    my $journal = $t->prefix . '/state/journal';
    my ($seq) = ($t->read_file($journal) =~ /.*"seq":(\d+)/s);

    return undef unless $seq;

    open my $fh, '>>', $journal or croak "open $journal: $!";

    for my $i (1 .. $n) {
        my $json = sprintf '{"seq":%d,"op":"sent","at":%d,"msg":%d}',
                           $seq + $i, time, 4 * ($seq + $i);
        printf $fh "%08x %s\n", crc32($json), $json;
    }

    close $fh or croak "close $journal: $!";

    return $seq;
}

sub book_when_up {
    my ($t, $slot, %opts) = @_;

    my $until = time + (delete $opts{wait} // 10);
    my $r;

    do {
        $r = book($t, $slot, %opts);
        select undef, undef, undef, 0.1 if $r->{status} == 503;
    } while ($r->{status} == 503 && time < $until);

    return $r;
}

sub appointment {
    my ($t, $id, $token) = @_;

    return $t->http(GET => "$API/appointments/$id", headers => auth($token));
}

sub cancel {
    my ($t, $id, $token) = @_;

    return $t->http(POST => "$API/appointments/$id/cancel",
                    headers => auth($token));
}

sub reschedule {
    my ($t, $id, $token, $slot) = @_;

    return $t->http(POST => "$API/appointments/$id/reschedule",
                    headers => auth($token), body => { slot => $slot });
}

sub admin_day {
    my ($t, $doctor, $date) = @_;

    return $t->http(GET => "$API/admin/doctors/$doctor/appointments"
                           . "?date=$date", headers => admin_auth());
}

sub auth {
    my ($token) = @_;

    return defined $token ? { Authorization => "Bearer $token" } : {};
}

sub admin_auth {
    return auth($ADMIN_KEY);
}

sub race {
    my ($slot, $ports, %opts) = @_;

    my $clients = $opts{clients} // 4;
    my $per_client = $opts{per_client} // 50;

    pipe(my $go_r, my $go_w) or die "pipe: $!";

    my @kids;

    for my $k (1 .. $clients) {
        pipe(my $res_r, my $res_w) or die "pipe: $!";

        my $pid = fork // die "fork: $!";

        if ($pid == 0) {
            close $go_w;
            close $res_r;
            race_client($ports->[$k % @$ports], $slot, $k, $per_client,
                        $go_r, $res_w);
            POSIX::_exit(0);
        }

        close $res_w;
        push @kids, [$pid, $res_r];
    }

    close $go_r;

    # let every client set up, then release them all at once
    select undef, undef, undef, 0.3;
    close $go_w;

    my @res;

    for my $kid (@kids) {
        my ($pid, $fh) = @$kid;

        local $/;
        my $out = <$fh> // '';
        close $fh;
        waitpid $pid, 0;

        push @res, @{ decode_json($out || '[]') };
    }

    return @res;
}

sub race_client {
    my ($port, $slot, $k, $n, $go, $out) = @_;

    my @res;

    # a client that hangs must not hang the test
    alarm 30;

    # connections are made first, so that the requests themselves reach
    # the workers as one burst
    my @conns = map {
        my $name = "Patient $k-$_";
        my $body = encode_json({
            slot    => $slot,
            patient => { name  => $name,
                         phone => sprintf('+49 30 %d%06d', $k, $_) },
            reason  => 'race',
        });

        my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1',
                                    PeerPort => $port, Proto => 'tcp')
            or die "connect: $@";

        { sock => $s, name => $name,
          req => "POST $API/appointments HTTP/1.1\r\n"
                 . "Host: 127.0.0.1\r\nConnection: close\r\n"
                 . "Content-Type: application/json\r\n"
                 . 'Content-Length: ' . length($body) . "\r\n\r\n$body" };
    } 1 .. $n;

    # blocks until the parent closes its end
    my $dummy = <$go>;

    for my $c (@conns) {
        $c->{sock}->syswrite($c->{req}) == length $c->{req}
            or die "write: $!";
    }

    for my $c (@conns) {
        my $raw = '';
        1 while $c->{sock}->sysread($raw, 65536, length $raw);
        close $c->{sock};

        my ($head, $body) = split /\r\n\r\n/, $raw, 2;
        my ($status) = ($head // '') =~ m{^HTTP/1\.1 (\d{3})};
        my $json = eval { decode_json($body // '') };

        push @res, {
            name   => $c->{name},
            status => $status // 0,
            error  => $status ? undef : 'no response',
            body   => ($status // 0) == 201 ? $json : undef,
            code   => ref $json eq 'HASH' ? $json->{error}{code} : undef,
            field  => ref $json eq 'HASH' ? $json->{error}{field} : undef,
        };
    }

    print $out encode_json(\@res);
    close $out;
}

1;
