#!/usr/bin/perl

# Durability with the local journal (no Redis): what was acknowledged
# survives kill -9 of master and workers, with requests in flight too; a
# torn tail of the journal is discarded; a reload keeps the state; a
# restart compacts a journal full of book+cancel cycles without changing
# what the clinic sees.

use strict;
use warnings;

use Test::More;
use POSIX ();
use IO::Handle;
use Mojo::IOLoop;
use Mojo::Server::Daemon;
use Mojo::UserAgent;
use Time::HiRes qw(sleep time);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all !book);

###############################################################################

my @DOCTORS = ('dur-one', 'dur-two');
my @DATES = map { day_ahead($_) } 1 .. 3;
my $DIRECTORY = directory(
    departments => ['gp'],
    doctors     => [ map { doctor($_, 'gp', slot_minutes => 10,
                                  hours => ALL_DAY) } @DOCTORS ],
);

# package variables: the helpers below use them, and part (e) points them
# at a second nginx with local
our $t = Teleclinic::Test->new(workers => 2);

write_directory($t, $DIRECTORY);
$t->run(conf());

my $journal = $t->prefix . '/state/journal';
our %known;           # id => { slot, status, name, token }: what was acked

###############################################################################

# (a) acknowledged bookings, cancellations and reschedules survive kill -9

{
    my @free = free_slots($DATES[0]);

    for my $i (0 .. 29) {
        my $slot = shift @free;
        my $name = "Acked Patient $i";
        my $r = book($t, $slot, $name);

        is($r->{status}, 201, "(a) booking $i acknowledged") or next;

        $known{ $r->{json}{id} } = { slot => $slot, status => 'booked',
                                     name => $name,
                                     token => $r->{json}{token} };
    }

    my @ids = sort keys %known;

    for my $id (@ids[grep { $_ % 3 == 0 } 0 .. $#ids]) {
        my $r = cancel($t, $id, $known{$id}{token});

        is($r->{status}, 200, '(a) cancellation acknowledged')
            and $known{$id}{status} = 'cancelled';
    }

    for my $id (@ids[grep { $_ % 3 == 1 } 0 .. 8]) {
        my $slot = shift @free;
        my $r = reschedule($t, $id, $known{$id}{token}, $slot);

        is($r->{status}, 200, '(a) reschedule acknowledged') or next;

        $known{$id}{slot} = $slot;
        $known{$id}{token} = $r->{json}{token};
    }

    $t->kill9;
    $t->start;

    check_known('(a) after kill -9');
    is_deeply(listed(), live(), '(a) the days list exactly the acked '
                                . 'bookings');

    my %busy = map { $_->{id} => $_->{status} }
               @{ slots($t, $DOCTORS[0], $DATES[0]) };
    my @cancelled = grep { $known{$_}{status} eq 'cancelled'
                           && $known{$_}{slot} =~ /^\Q$DOCTORS[0]\E\./ }
                    keys %known;

    ok(@cancelled, '(a) some cancelled slots to look at');
    is(scalar(grep { ($busy{ $known{$_}{slot} } // '') eq 'free' }
              @cancelled),
       scalar @cancelled, '(a) cancelled slots are free again');

    # the journal takes new records after the restart
    my $slot = $known{ $cancelled[0] }{slot};
    my $r = book($t, $slot, 'Rebooked Patient');

    is($r->{status}, 201, '(a) a cancelled slot can be booked again');
    remember($r, $slot, 'Rebooked Patient');
}

###############################################################################

# (b) kill -9 with bookings in flight: every 201 is there afterwards, and
# anything else that is there was asked for (no phantom, no double slot)

{
    my %asked;        # slot => name of the patient who asked for it
    my @jobs;

    for my $date (@DATES[1, 2]) {
        for my $slot (free_slots($date)) {
            my $name = 'Storm Patient ' . scalar @jobs;
            $asked{$slot} = $name;
            push @jobs, { slot => $slot, name => $name };
        }
    }

    my $before = listed();
    my @results = storm(\@jobs, 3, 8, 120);

    my @acked = grep { $_->{status} == 201 } @results;
    my @unanswered = grep { $_->{status} == 0 } @results;
    my @other = grep { $_->{status} != 201 && $_->{status} != 0 } @results;

    cmp_ok(scalar @acked, '>=', 120, '(b) bookings acked before the kill');
    is(scalar @other, 0, '(b) no answer other than 201 or none')
        or diag(join ', ', map { $_->{status} } @other[0 .. 4]);

    diag(scalar(@unanswered) . ' of ' . scalar(@jobs)
         . ' bookings were not answered');

    $t->start;

    for my $a (@acked) {
        remember({ json => { id => $a->{id}, token => $a->{token} } },
                 $a->{slot}, $asked{ $a->{slot} });
    }

    check_known('(b) after kill -9 in flight');

    my $after = listed();
    my %new = map { $_ => $after->{$_} } grep { !$before->{$_} } keys %$after;
    my %old = map { $_ => $after->{$_} } grep { $before->{$_} } keys %$after;

    is_deeply(\%old, $before, '(b) earlier bookings unchanged');

    my @phantom = grep {
        my ($slot, $status, $name) = split /\|/, $new{$_};
        !defined $asked{$slot} || $asked{$slot} ne $name
        || $status ne 'booked'
    } keys %new;

    is(scalar @phantom, 0, '(b) every new appointment was asked for '
                           . 'by its patient');

    my %slots;
    $slots{ (split /\|/, $_)[0] }++ for values %$after;
    is(scalar(grep { $_ > 1 } values %slots), 0, '(b) no slot held twice');

    diag(scalar(keys %new) - scalar(@acked)
         . ' unacknowledged bookings were kept');

    # the ones kept without an answer are real appointments from now on
    for my $id (keys %new) {
        next if $known{$id};
        my ($slot, $status, $name) = split /\|/, $new{$id};
        $known{$id} = { slot => $slot, status => $status, name => $name };
    }
}

###############################################################################

# (c) a torn tail: a record cut short, then a damaged record and zeroes;
# nginx starts, warns, keeps everything before and appends after it

for my $torn (
    sub { my ($last) = @_; substr($last, 0, length($last) / 2) },
    sub { my ($last) = @_; my $bad = $last;
          substr($bad, 0, 8) = $bad =~ /^0/ ? 'ffffffff' : '00000000';
          $bad . ("\0" x 100) },
)
{
    my $before = snapshot();

    ok($t->stop, '(c) stopped');

    my $good = -s $journal;
    my ($last) = read_journal() =~ /([^\n]*\n)\z/;

    ok($last, '(c) the journal ends in a whole record');

    append_journal($torn->($last));
    cmp_ok(-s $journal, '>', $good, '(c) garbage appended');

    my $from = length $t->error_log;

    $t->start;

    like(substr($t->error_log, $from),
         qr/\[warn\].*discarding \d+ bytes .* at the end of/,
         '(c) warns about the discarded tail');
    is(-s $journal, $good, '(c) the tail is cut off');
    is_deeply(snapshot(), $before, '(c) everything before is there');

    my $slot = (free_slots($DATES[0]))[0];
    my $r = book($t, $slot, 'After Torn Tail');

    is($r->{status}, 201, '(c) booking after the torn tail');
    remember($r, $slot, 'After Torn Tail');

    $before = snapshot();
    $from = length $t->error_log;

    $t->kill9;
    $t->start;

    is_deeply(snapshot(), $before, '(c) the new booking is kept');
    unlike(substr($t->error_log, $from), qr/discarding/,
           '(c) nothing discarded any more');
}

###############################################################################

# (d) nginx -s reload keeps every appointment, and new workers journal

{
    my $before = snapshot();

    $t->reload;

    is_deeply(snapshot(), $before, '(d) all there after reload');

    my $slot = (free_slots($DATES[0]))[0];
    my $r = book($t, $slot, 'After Reload');

    is($r->{status}, 201, '(d) booking after reload');
    remember($r, $slot, 'After Reload');

    my ($id) = grep { $known{$_}{status} eq 'booked'
                      && $known{$_}{token} } sort keys %known;
    $r = cancel($t, $id, $known{$id}{token});

    is($r->{status}, 200, '(d) cancellation after reload')
        and $known{$id}{status} = 'cancelled';

    $before = snapshot();

    $t->kill9;
    $t->start;

    is_deeply(snapshot(), $before, '(d) changes after reload kept');
    check_known('(d) after reload and kill -9');
}

ok($t->stop, 'nginx stopped cleanly');

###############################################################################

# (e) a journal of book+cancel cycles, whose notifications were all
# delivered, is compacted at start; the state stays the same

{
    my $sink_port = free_port();
    my $sink_log = $t->prefix . '/sink.log';
    my $sink = sink($sink_port, $sink_log);

    my $c = Teleclinic::Test->new(workers => 2);

    write_directory($c, $DIRECTORY);
    $c->run(conf(http => <<~"EOF"));
        teleclinic_public_url http://127.0.0.1:%%PORT%%;
        teleclinic_notify_url http://127.0.0.1:$sink_port/notify;
        teleclinic_notify_secret test-notify-secret-0123456789;
        EOF

    local $t = $c;
    local %known;

    my $cjournal = $c->prefix . '/state/journal';
    my @free = free_slots($DATES[0]);
    my $cycles = 700;
    my $failed = 0;

    for my $i (1 .. 10) {
        my $slot = shift @free;
        my $r = book($c, $slot, "Kept Patient $i");
        $failed++ unless $r->{status} == 201;
        remember($r, $slot, "Kept Patient $i");
    }

    for my $i (1 .. $cycles) {
        my $slot = $free[$i % 5];
        my $r = book($c, $slot, 'Cycle Patient');
        $failed++ unless $r->{status} == 201;

        my $x = cancel($c, $r->{json}{id}, $r->{json}{token});
        $failed++ unless $x->{status} == 200;

        # a few of the cancelled ones are looked at later
        if ($i % 100 == 0) {
            remember($r, $slot, 'Cycle Patient');
            $known{ $r->{json}{id} }{status} = 'cancelled';
        }
    }

    is($failed, 0, "(e) $cycles book+cancel cycles acknowledged");

    # each cancellation reaches the gateway, and so does the confirmation
    # of each kept booking (that of a booking cancelled meanwhile may not)
    my @kept = grep { $known{$_}{name} =~ /^Kept/ } keys %known;
    my $deadline = time + 30;
    my $got;

    for (;;) {
        $got = delivered($sink_log);

        last if keys %{ $got->{cancellation} // {} } >= $cycles
                && !grep { !$got->{confirmation}{$_} } @kept;
        last if time > $deadline;

        sleep 0.1;
    }

    is(scalar keys %{ $got->{cancellation} // {} }, $cycles,
       '(e) every cancellation delivered');
    is(scalar(grep { $got->{confirmation}{$_} } @kept), scalar @kept,
       '(e) every kept booking confirmed');

    # the "sent" records follow the deliveries
    my $size = -1;

    $deadline = time + 10;

    while (-s $cjournal != $size && time < $deadline) {
        $size = -s $cjournal;
        sleep 0.3;
    }

    my $before = snapshot();

    ok($c->stop, '(e) stopped');

    my $from = length $c->error_log;

    $c->start;

    like(substr($c->error_log, $from),
         qr/\[notice\].*compacted "\Q$cjournal\E" from \d+ to \d+ records/,
         '(e) the journal is compacted at start');
    cmp_ok(-s $cjournal, '<', $size, '(e) the journal shrank');
    is_deeply(snapshot(), $before, '(e) same state after compaction');
    check_known('(e) after compaction');

    my $slot = $free[0];
    my $r = book($c, $slot, 'After Compaction');

    is($r->{status}, 201, '(e) booking after compaction');
    remember($r, $slot, 'After Compaction');

    $before = snapshot();
    $from = length $c->error_log;

    $c->kill9;
    $c->start;

    is_deeply(snapshot(), $before, '(e) same state after a second restart');
    unlike(substr($c->error_log, $from), qr/discarding/,
           '(e) the compacted journal is whole');

    ok($c->stop, '(e) nginx stopped cleanly');

    kill 'KILL', $sink;
    waitpid $sink, 0;
}

done_testing;

###############################################################################

sub phone {
    my ($name) = @_;

    # a made-up number that follows from the name
    return sprintf '+49 30 %07d', unpack('%32C*', $name) * 7919 % 10000000;
}

# a booking whose phone number follows from the name
sub book {
    my ($n, $slot, $name) = @_;

    return Teleclinic::Clinic::book($n, $slot, name => $name,
                                    phone => phone($name),
                                    reason => 'durability');
}

sub remember {
    my ($r, $slot, $name) = @_;

    my $id = $r->{json}{id} or return;

    $known{$id} = { slot => $slot, status => 'booked', name => $name,
                    token => $r->{json}{token} };
}

# the free slots of both doctors on a day
sub free_slots {
    my ($date) = @_;

    return map { free_slot_ids($t, $_, $date) } @DOCTORS;
}

# what the admin sees: id => "slot|status|name|phone" over all days
sub listed {
    my %day;

    for my $doctor (@DOCTORS) {
        for my $date (@DATES) {
            my $r = admin_day($t, $doctor, $date);
            die "listing of $doctor on $date: $r->{status}\n"
                unless ($r->{status} // 0) == 200;

            for my $a (@{ $r->{json} }) {
                $day{ $a->{id} } = join '|', $a->{slot}, $a->{status},
                                   $a->{patient}{name}, $a->{patient}{phone};
            }
        }
    }

    return \%day;
}

# what the acks say the listing must be
sub live {
    return { map { $_ => join '|', $known{$_}{slot}, 'booked',
                               $known{$_}{name}, phone($known{$_}{name}) }
             grep { $known{$_}{status} eq 'booked' } keys %known };
}

# the listing and every known appointment as the admin reads it
sub snapshot {
    my %all;

    for my $id (keys %known) {
        my $r = appointment($t, $id, $ADMIN_KEY);
        $all{$id} = ($r->{status} // 0) == 200
                    ? join('|', map { $r->{json}{$_} // '' }
                                qw(status slot doctor start end created))
                    : "HTTP $r->{status}";
    }

    return { listed => listed(), appointments => \%all };
}

# each acked appointment, read by its patient with the token; the token
# of a cancelled one was outdated by the cancel (401), the admin reads it
sub check_known {
    my ($what) = @_;

    my @bad;

    for my $id (sort keys %known) {
        my $k = $known{$id};
        next unless $k->{token};

        my $r = appointment($t, $id, $k->{token});

        if ($k->{status} eq 'cancelled') {
            push(@bad, $id), next unless ($r->{status} // 0) == 401;
            $r = appointment($t, $id, $ADMIN_KEY);
        }

        push @bad, $id
            unless ($r->{status} // 0) == 200
                   && $r->{json}{status} eq $k->{status}
                   && $r->{json}{slot} eq $k->{slot}
                   && $r->{json}{patient}{name} eq $k->{name};
    }

    is(scalar @bad, 0, "$what: every acked appointment as acked")
        or diag("differ: @bad[0 .. ($#bad < 4 ? $#bad : 4)]");
}

sub read_journal {
    return $t->read_file($journal);
}

sub append_journal {
    my ($bytes) = @_;

    open my $fh, '>>', $journal or die "open $journal: $!";
    binmode $fh;
    print $fh $bytes;
    close $fh or die "close $journal: $!";
}

# $procs clients with $conc requests each in flight book the jobs; once
# $acks are acked, master and workers are killed; returns what each
# client saw: { slot, status (0: no answer), id, token }
sub storm {
    my ($jobs, $procs, $conc, $acks) = @_;

    my $url = $t->url('/api/v1/appointments');
    my @files = map { $t->prefix . "/storm.$_" } 1 .. $procs;
    my @kids;

    for my $k (0 .. $procs - 1) {
        my @mine = @$jobs[grep { $_ % $procs == $k } 0 .. $#$jobs];
        my $pid = fork // die "fork: $!";

        if ($pid == 0) {
            storm_client($url, \@mine, $files[$k], $conc);
            POSIX::_exit(0);
        }

        push @kids, $pid;
    }

    my $deadline = time + 20;

    while (time < $deadline) {
        my $n = 0;

        for my $file (@files) {
            $n += () = $t->read_file($file) =~ /\t201\t/g;
        }

        last if $n >= $acks;
        sleep 0.002;
    }

    $t->kill9;

    waitpid $_, 0 for @kids;

    my @res;

    for my $file (@files) {
        for my $line (split /\n/, $t->read_file($file)) {
            my ($slot, $status, $id, $token) = split /\t/, $line;
            push @res, { slot => $slot, status => $status, id => $id,
                         token => $token };
        }
    }

    is(scalar @res, scalar @$jobs, '(b) every client request ended');

    return @res;
}

sub storm_client {
    my ($url, $jobs, $file, $conc) = @_;

    open my $fh, '>>', $file or die "open $file: $!";
    $fh->autoflush(1);

    alarm 30;

    my $ua = Mojo::UserAgent->new(inactivity_timeout => 10,
                                  request_timeout => 10,
                                  connect_timeout => 5);
    my @queue = @$jobs;
    my $active = 0;
    my $next;

    $next = sub {
        while ($active < $conc && @queue) {
            my $job = shift @queue;
            $active++;

            $ua->post($url => json => {
                slot    => $job->{slot},
                patient => { name => $job->{name},
                             phone => phone($job->{name}) },
                reason  => 'durability',
            } => sub {
                my ($ua, $tx) = @_;

                my $code = $tx->res->code // 0;
                my $json = $code == 201 ? $tx->res->json : {};

                print $fh join("\t", $job->{slot}, $code,
                               $json->{id} // '-', $json->{token} // '-'),
                          "\n";

                $active--;

                if (@queue) {
                    $next->();

                } elsif ($active == 0) {
                    Mojo::IOLoop->stop;
                }
            });
        }
    };

    $next->();
    Mojo::IOLoop->start;

    close $fh;
}

# a messaging gateway that takes every notification; logs each one's type
# and appointment
sub sink {
    my ($port, $log) = @_;

    my $pid = fork // die "fork: $!";
    return $pid if $pid;

    $SIG{TERM} = $SIG{INT} = sub { POSIX::_exit(0) };

    open my $fh, '>>', $log or die "open $log: $!";
    $fh->autoflush(1);

    my $daemon = Mojo::Server::Daemon->new(
        listen => ["http://127.0.0.1:$port"],
        silent => 1,
    );

    $daemon->unsubscribe('request')->on(request => sub {
        my ($d, $tx) = @_;

        my $json = $tx->req->json // {};

        print $fh join(' ', map { $_ // '-' }
                            $json->{type}, $json->{appointment}), "\n";

        $tx->res->code(200);
        $tx->res->body('');
        $tx->resume;
    });

    $daemon->start;
    Mojo::IOLoop->start;

    POSIX::_exit(0);
}

# what the sink took: type => { appointment id => times }
sub delivered {
    my ($log) = @_;

    my %got;

    for (split /\n/, $t->read_file($log)) {
        my ($type, $appt) = split ' ';
        $got{$type}{$appt}++;
    }

    return \%got;
}

###############################################################################
