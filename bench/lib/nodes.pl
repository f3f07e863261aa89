#!/usr/bin/perl
# The cross-node parts of bench/nodes.sh: two nodes on one Redis (the
# tests' harness: t/lib/Teleclinic/Room.pm's room() with teleclinic_redis
# and teleclinic_node, Teleclinic::Redis, Teleclinic::WS), and one node
# alone for the baseline.  Prints "NAME key=value ..." lines that
# nodes.sh turns into its table; what goes wrong dies.
#
#   perl bench/lib/nodes.pl BOOKINGS PATIENTS ON_ROOM_NODE ROUNDS \
#                           [ROOMLOAD C_PATIENTS]
#
# 1. fan-out of a booking: BOOKINGS bookings, one at a time, on the node
#    that is not the doctor's room's (A); from each 201 until node B
#    answers GET /api/v1/appointments/{id} with its token 200 (B polled
#    back to back, about 1 ms a poll).
# 2. fan-out of call_next: PATIENTS patients of one doctor waiting, all
#    but ON_ROOM_NODE of them on A (relayed), those on B, the doctor's
#    console on B; ROUNDS rounds of call_next (the rung patient accepts
#    at once, the doctor hangs up after): from the send until each other
#    waiting patient has a queue message with its new position.  The
#    same with every client on one node without Redis, 2 workers.
# 3. failover: A killed (SIGKILL to master and workers) under its
#    relayed patients; each reconnects to B at once (retrying an error
#    answer after 50 ms): from the kill until the first and the last is
#    welcomed and has its queue position.  A started again (empty, it
#    loads the stream); the patients go back to A, relayed to B; B killed:
#    from the kill until A closes them (1012, the room moved: A saw B
#    leave) and until, reconnecting to A, each is welcomed there with its
#    position.  And the client's own cost: the same reconnects with
#    nothing killed.
#
# The clients are one Perl process on Mojo's event loop: a time includes
# the client's own processing of the messages before it (tens of
# microseconds a message), the same for every line.

use strict;
use warnings;

use Compress::Zlib qw(crc32);
use FindBin;
use IPC::Open2 qw(open2);
use List::Util qw(max min);
use Time::HiRes qw(sleep time);

use lib "$FindBin::Bin/../../t/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);
use Teleclinic::Room qw(:all);
use Teleclinic::Redis;
use Teleclinic::WS qw(pump pump_until);

my ($BOOKINGS, $PATIENTS, $ON_ROOM, $ROUNDS, $ROOMLOAD, $C_PATIENTS) = @ARGV;
$BOOKINGS //= 200;
$PATIENTS //= 60;
$ON_ROOM //= 10;
$ROUNDS //= 5;
$C_PATIENTS //= 250;

# the harness reports through Test::More: to stderr, and no plan
Test::More->builder->output(\*STDERR);
Test::More->builder->no_ending(1);

$SIG{TERM} = $SIG{INT} = sub { exit 130 };

my $redis = Teleclinic::Redis->new(args => ['--appendonly', 'yes',
                                            '--appendfsync', 'everysec']);
my %node;

sub start_node {
    my ($name) = @_;

    return $node{$name} = room(checkin => '24h', grace => '30s',
                               zone => '64m', http => join "\n",
        'teleclinic_redis 127.0.0.1:' . $redis->port . ';',
        "teleclinic_data_key_file $FindBin::Bin/../../conf/data.key;",
        "teleclinic_node $name;");
}

# the node of a doctor's room, as the module chooses it (t/123)
sub home {
    my ($doctor) = @_;
    my ($best) = sort { crc32("$doctor/$b") <=> crc32("$doctor/$a") }
                 keys %node;
    return $best;
}

sub wait_alive {
    my ($t, $n) = @_;
    Teleclinic::Redis::wait_for(sub {
        my @seen = $t->error_log =~ /(\d+) nodes? alive/g;
        @seen && $seen[-1] == $n;
    }, "$n nodes alive", 20);
}

sub pct {
    my ($p, @v) = @_;
    @v = sort { $a <=> $b } @v;
    return 0 unless @v;
    return $v[min($#v, int($p / 100 * @v))];
}

sub ms { sprintf '%.2f', $_[0] * 1000 }

sub line {
    my ($name, %f) = @_;
    print join(' ', $name, map { "$_=$f{$_}" } sort keys %f), "\n";
}

sub stats {
    my ($name, @v) = @_;
    line($name, n => scalar @v, p50 => ms(pct(50, @v)),
         p99 => ms(pct(99, @v)), max => ms(max(@v) // 0));
}

start_node('a');
start_node('b');
wait_alive($node{$_}, 2) for qw(a b);

# the room doctor's home is "B" of the output, whatever its name
my ($doctor) = grep { home($_) eq 'b' } qw(doc-a doc-b);
$doctor //= 'doc-a';
my ($other_doctor) = grep { $_ ne $doctor } qw(doc-a doc-b);
my $B = $node{ home($doctor) };
my ($a_name) = grep { $_ ne home($doctor) } sort keys %node;
my $A = $node{$a_name};


# 1. a booking on A until B has it

# (the days after tomorrow: the next 24 hours' slots, within check-in,
# are 2c's)
my @free = grep { $_->{status} eq 'free' }
           map { @{ slots($A, $other_doctor, day_ahead($_)) } } 2, 3;
die "fewer than $BOOKINGS free slots of $other_doctor\n"
    if @free < $BOOKINGS;

my (@seen, $polls);

for my $i (0 .. $BOOKINGS - 1) {
    my $r = book($A, $free[$i]{id}, name => "Fanout $i");
    my $t0 = time;
    die "booking on A: " . ($r->{status} // $r->{error}) . "\n"
        unless ($r->{status} // 0) == 201;

    my ($id, $token) = ($r->{json}{id}, $r->{json}{token});

    until ((appointment($B, $id, $token)->{status} // 0) == 200) {
        $polls++;
        die "node B never saw $id\n" if time - $t0 > 10;
    }

    push @seen, time - $t0;
}

stats('booking_a_to_b', @seen);
line('booking_polls', polls => $polls // 0, n => $BOOKINGS);


# 2. call_next, patients relayed from A and on B, the console on B

# patients in connection order: [ws, appointment, where]
sub connect_patients {
    my ($on, $appts) = @_;
    my @p;

    for my $i (0 .. $#$appts) {
        my $t = $on->($i);
        my ($ws, $w) = patient($t, $appts->[$i]);
        die "patient $i: $w->{type} " . ($w->{code} // '') . "\n"
            unless $w->{type} eq 'welcome';
        push @p, { ws => $ws, appt => $appts->[$i] };
    }

    return @p;
}

# the latest position each connected patient was told
sub settle {
    my (@p) = @_;

    pump(0.3);

    for my $p (@p) {
        for my $m ($p->{ws}->take(type => 'queue')) {
            $p->{pos} = $m->{position} if defined $m->{position};
        }
    }
}

sub rounds {
    my ($doc, $plist, $rounds) = @_;

    my (@each, @last);

    for (1 .. $rounds) {
        my @p = grep { !$_->{gone} } @$plist;
        settle(@p);

        my $t0 = time;
        $doc->send_json({ type => 'call_next' });

        my $rung;
        pump_until(sub {
            ($rung) = grep { $_->{ws}->pending(type => 'ring') } @p;
            $rung;
        }, 10) or die "nobody rung\n";

        my $ring = $rung->{ws}->recv_json(type => 'ring');
        $rung->{ws}->send_json({ type => 'accept', call => $ring->{call} });

        my @wait = grep { $_ != $rung && defined $_->{pos}
                          && $_->{pos} > $rung->{pos} } @p;
        my %at;

        pump_until(sub {
            for my $p (@wait) {
                next if $at{$p};
                for my $m (@{ $p->{ws}{queue} }) {
                    next unless ($m->{type} // '') eq 'queue'
                                && defined $m->{position}
                                && $m->{position} < $p->{pos};
                    $at{$p} = time - $t0;
                    last;
                }
            }
            keys %at == @wait;
        }, 10) or die "only " . (keys %at) . " of " . @wait
                      . " patients moved up\n";

        push @each, values %at;
        push @last, max(values %at);

        $doc->send_json({ type => 'hangup', call => $ring->{call} });
        $rung->{ws}->recv_json(type => 'ended');
        $rung->{ws}->close(1000);
        $rung->{gone} = 1;
    }

    return (\@each, \@last);
}

# 2c. the same with roomload (C, bench/room/roomload.c) as the client:
# the other doctor's C_PATIENTS patients, 4 in 5 of them on the node
# that is not the room's (relayed), the console on the room's node; and
# below on one node.  The client's own cost is then a few microseconds.

sub roomload_rounds {
    my ($name, $room, $away, $who, $n) = @_;

    return unless $ROOMLOAD;

    my @booked = book_soon($room, $who, $n);
    my $last = $booked[-1];

    if ($away) {
        Teleclinic::Redis::wait_for(sub {
            (appointment($away, $last->{id}, $last->{token})->{status} // 0)
            == 200 }, 'the other node has the appointments');
    }

    my $file = $room->prefix . "/tokens-$name";
    open my $fh, '>', $file or die "$file: $!";
    print $fh map { "$_->{token}\n" } @booked;
    close $fh;

    my @argv = ($ROOMLOAD, 'room', '-p', $room->port, '-t', $file,
                '-D', login($room, $who), '-R', $ROUNDS);
    push @argv, '-q', $away->port, '-a', int($n * 4 / 5) if $away;

    my $pid = open2(my $out, my $in, @argv);
    my %f;

    while (my $l = <$out>) {
        print STDERR "roomload $name: $l" if $ENV{VERBOSE};

        if ($l =~ /^READY/) {
            print $in "\n";
            $in->flush;

        } elsif ($l =~ /^FANOUT (.*)/) {
            %f = map { split /=/, $_, 2 } split ' ', $1;
            close $in;
        }
    }

    waitpid($pid, 0);
    die "roomload $name: no FANOUT line\n" unless %f;

    line("callnext_c_$name", patients => $f{patients},
         last => $f{last_median_ms}, last_worst => $f{last_worst_ms},
         p50 => $f{p50_median_ms});
}

{
    my $room = $node{ home($other_doctor) };
    my ($away) = grep { $_ != $room } values %node;
    roomload_rounds('nodes', $room, $away, $other_doctor, $C_PATIENTS);
}

my @appts = book_soon($B, $doctor, $PATIENTS);
Teleclinic::Redis::wait_for(sub {
    (appointment($A, $appts[-1]{id}, $appts[-1]{token})->{status} // 0)
    == 200 }, 'node A has the appointments');

my @pat = connect_patients(sub { $_[0] < $PATIENTS - $ON_ROOM ? $A : $B },
                           \@appts);
my ($doc) = doctor_console($B, $doctor);

my ($each, $last) = rounds($doc, \@pat, $ROUNDS);
stats('callnext_nodes_each', @$each);
stats('callnext_nodes_last', @$last);


# 3. failover: A dies under its relayed patients; they go to B

my @relayed = grep { !$_->{gone} } @pat[0 .. $PATIENTS - $ON_ROOM - 1];

# reconnect(node, patients, t0): each at once to that node until
# welcomed (an error answer: again after 50 ms) and told its position;
# the times from t0
sub reconnect {
    my ($t, $plist, $t0) = @_;

    my (@welcome, @queue, $errors);

    for my $p (@$plist) {
        $p->{ws}->close(1000) unless $p->{ws}->closed;
    }

    for my $p (@$plist) {
        for (;;) {
            my ($ws, $w) = eval { patient($t, $p->{appt}) };
            if ($ws && $w && $w->{type} eq 'welcome') {
                $p->{ws} = $ws;
                push @welcome, time - $t0;
                last;
            }
            $errors++;
            die "no welcome within 20 s\n" if time - $t0 > 20;
            sleep 0.05;
        }
    }

    for my $p (@$plist) {
        $p->{ws}->recv_json(type => 'queue', timeout => 10,
                            match => sub { defined $_[0]{position} })
            or die "no queue position after a reconnect\n";
        push @queue, time - $t0;
    }

    return (\@welcome, \@queue, $errors // 0);
}

sub failover_lines {
    my ($name, $w, $q, $errors) = @_;
    line($name, n => scalar @$w, first_welcome => ms(min(@$w)),
         last_welcome => ms(max(@$w)), last_position => ms(max(@$q)),
         errors => $errors);
}

# the client's own cost: the same reconnects to B, nothing killed
failover_lines('reconnect_alive_to_b',
               reconnect($B, \@relayed, time));
# and back to A, relayed again
reconnect($A, \@relayed, time);
settle(@relayed);

my $t0 = time;
$A->kill9;
pump_until(sub { !grep { !$_->{ws}->closed } @relayed }, 10);
line('kill_a_closed', ms => ms(time - $t0));
failover_lines('kill_a_to_b', reconnect($B, \@relayed, $t0));

# A again (empty: it loads the stream), the patients back on A
delete $node{$a_name};
$A = start_node($a_name);
wait_alive($_, 2) for $A, $B;
Teleclinic::Redis::wait_for(sub {
    (appointment($A, $appts[-1]{id}, $appts[-1]{token})->{status} // 0)
    == 200 }, 'the new node A has the appointments', 30);
reconnect($A, \@relayed, time);
settle(@relayed);

# the room's node dies: A sees it leave (heartbeat 1 s, alive 3 s),
# closes its relayed clients (1012), who reconnect to A, now the room's
$t0 = time;
$B->kill9;

my %closed;
pump_until(sub {
    for my $p (@relayed) {
        $closed{$p} //= time - $t0 if $p->{ws}->closed;
    }
    keys %closed == @relayed;
}, 20) or die "A did not let its relayed clients go\n";

my @codes = map { $_->{ws}->closed } @relayed;
line('kill_b_closed', first => ms(min(values %closed)),
     last => ms(max(values %closed)),
     codes => join(',', sort { $a <=> $b } keys %{{ map { $_ => 1 } @codes }}));
failover_lines('kill_b_to_a', reconnect($A, \@relayed, $t0));

$_->{ws}->close(1000) for @relayed;
$A->stop;
$redis->stop;


# 2'. the same call_next on one node, between its 2 workers

%node = ();
my $one = room(checkin => '24h', grace => '30s', zone => '64m');
my @appts1 = book_soon($one, 'doc-a', $PATIENTS);
my @pat1 = connect_patients(sub { $one }, \@appts1);
my ($doc1) = doctor_console($one, 'doc-a');

($each, $last) = rounds($doc1, \@pat1, $ROUNDS);
stats('callnext_one_each', @$each);
stats('callnext_one_last', @$last);

$_->{ws}->close(1000) for grep { !$_->{gone} } @pat1;
$doc1->close(1000);

roomload_rounds('one', $one, undef, 'doc-b', $C_PATIENTS);

$one->stop;
