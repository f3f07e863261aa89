#!/usr/bin/perl

# Several nodes on one Redis: a booking made on one node is seen on the
# other (its appointment, its token, its busy slot), a cancellation and a
# move too; 200 concurrent attempts at one slot spread over two nodes
# give exactly one 201; Redis holds no patient data in clear; with Redis
# away bookings get 503 redis_unavailable while the rest goes on, and
# what was buffered arrives when it returns; a node that was down catches
# up, and a node that starts empty loads everything from the stream.
# Real redis-server and nginx processes, stopped by pid.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);
use Teleclinic::Redis;

###############################################################################

plan(skip_all => 'redis-server is not installed (Debian: redis-server)')
    unless Teleclinic::Redis::available();

# persistent, so that a restart of Redis keeps the stream
my $redis = Teleclinic::Redis->new(args => ['--appendonly', 'yes',
                                            '--appendfsync', 'always']);

my $STREAM = 'teleclinic:{tc}:log';
my $RACER = 'race-one';

my %nodes;

# a node: its own prefix, journal and workers; the same directory, token
# secret and data key as the others
sub node {
    my ($name) = @_;

    return $nodes{$name} = group_node($name,
        'teleclinic_redis 127.0.0.1:' . $redis->port . ' snapshot=1s;',
        listen => 'reuseport',
        directory => directory(
            doctors => ['gp-one', 'gp-two',
                        doctor($RACER, 'gp', name => 'Dr. Race',
                               hours => ALL_DAY)]));
}

# polls $cond (10 s) and reports
sub eventually {
    my ($cond, $what, $seconds) = @_;

    my $until = time + ($seconds // 10);
    my $ok;

    until ($ok = $cond->()) {
        last if time > $until;
        sleep 0.05;
    }

    return ok($ok, $what);
}

sub slot_status {
    my ($t, $doctor, $slot) = @_;

    my $r = $t->http(GET => "/api/v1/doctors/$doctor/slots?date="
                            . (split /\./, $slot)[1] =~ s/(\d{4})(\d\d)/$1-$2-/r);
    my ($s) = grep { $_->{id} eq $slot } @{ $r->{json} // [] };

    return $s ? $s->{status} : '';
}

my $a = node('a');
my $b = node('b');

my $date = day_ahead(1);
my @free = free_slot_ids($a, 'gp-one', $date);

# a booking on a is one on b

my %patient = (name => 'Walburga Ostendorff', phone => '+49 30 555 0199',
               reason => 'itching rash on both forearms');

my $r = book_when_up($a, $free[0], %patient);
is($r->{status}, 201, 'booked on node a') or diag explain $r;

my ($id, $token) = ($r->{json}{id}, $r->{json}{token});

eventually(sub { appointment($b, $id, $token)->{status} == 200 },
           'node b has the appointment, and takes its token');

$r = appointment($b, $id, $token);
is($r->{json}{slot}, $free[0], 'node b: its slot');
is($r->{json}{patient}{name}, $patient{name}, 'node b: its patient');
is(slot_status($b, 'gp-one', $free[0]), 'busy', 'node b: the slot is busy');

$r = book($b, $free[0]);
is($r->{status}, 409, 'node b: the slot cannot be booked again');
is($r->{json}{error}{code}, 'slot_taken', 'slot_taken');

# a cancellation on b frees the slot on a, and in Redis

$r = cancel($b, $id, $token);
is($r->{status}, 200, 'cancelled on node b');

eventually(sub { (appointment($a, $id, $ADMIN_KEY)->{json}{status} // '')
                 eq 'cancelled' }, 'node a sees the cancellation')
    or diag explain appointment($a, $id, $ADMIN_KEY);
is(slot_status($a, 'gp-one', $free[0]), 'free', 'node a: the slot is free');

$r = book_when_up($a, $free[0], name => 'Second Patient');
is($r->{status}, 201, 'node a books the freed slot again: its claim went back')
    or diag explain $r;

# a move on a

my ($id2, $token2) = ($r->{json}{id}, $r->{json}{token});

$r = reschedule($a, $id2, $token2, $free[1]);
is($r->{status}, 200, 'moved on node a') or diag explain $r;
$token2 = $r->{json}{token} // $token2;

eventually(sub { slot_status($b, 'gp-one', $free[1]) eq 'busy'
                 && slot_status($b, 'gp-one', $free[0]) eq 'free' },
           'node b sees the move');

$r = book_when_up($b, $free[0], name => 'Third Patient');
is($r->{status}, 201, 'node b books the slot the move left') or diag explain $r;

# 200 at once over two nodes: one slot, one 201

my $slot = (free_slot_ids($a, $RACER, $date))[3];
my @res = race($slot, [$a->port, $b->port], clients => 4, per_client => 50);

is(scalar @res, 200, 'every attempt answered');

my @won = grep { $_->{status} == 201 } @res;
my @lost = grep { $_->{status} == 409 && ($_->{code} // '') eq 'slot_taken' }
           @res;

is(scalar @won, 1, 'exactly one 201 over two nodes');
is(scalar @lost, 199, 'all others 409 slot_taken')
    or diag explain [ map { "$_->{status} " . ($_->{code} // '') }
                      grep { $_->{status} != 201 } @res ];

my $winner = $won[0] ? $won[0]{body}{id} : '';

for my $n (qw(a b)) {
    eventually(sub {
        my $day = admin_day($nodes{$n}, $RACER, $date)->{json} // [];
        @$day == 1 && $day->[0]{id} eq $winner;
    }, "node $n: the raced slot is held by the winner alone");
}

# Redis never holds the patient's data in clear

my $entries = $redis->command('XRANGE', $STREAM, '-', '+');
my $text = join "\n", map { @{ $_->[1] } } @{ $entries // [] };

cmp_ok(scalar @{ $entries // [] }, '>=', 6, 'the changes are in the stream')
    or diag explain $entries;

for my $secret ($patient{name}, $patient{phone}, $patient{reason},
                'Second Patient')
{
    unlike($text, qr/\Q$secret\E/, "the stream has no \"$secret\"");
}

like($text, qr/"ename":"/, 'the names are sealed');

# Redis away: bookings wait, the rest goes on, and the buffer arrives

$redis->stop;

eventually(sub { book($a, $free[2])->{status} == 503 },
           'with Redis away node a refuses bookings');

$r = book($a, $free[2]);
is($r->{json}{error}{code}, 'redis_unavailable', '503 redis_unavailable');

is(slots($a, 'gp-one', $date) ? 200 : 0, 200, 'slots are still shown');

$r = appointment($b, $id2, $token2);
$r = cancel($a, $id2, $token2);
is($r->{status}, 200, 'a cancellation is taken with Redis away');

$redis->start;

eventually(sub { (appointment($b, $id2, $ADMIN_KEY)->{json}{status} // '')
                 eq 'cancelled' },
           'when Redis is back, node b gets the buffered cancellation', 20);

$r = book_when_up($b, $free[1], name => 'After The Outage');
is($r->{status}, 201, 'and its slot, freed while Redis was away, is free '
                      . 'in Redis too') or diag explain $r->{json};

# a node that was down catches up

ok($b->stop, 'node b stopped');

$r = book_when_up($a, $free[3], name => 'While B Was Away');
is($r->{status}, 201, 'booked on node a while b is down');
my ($id3, $token3) = ($r->{json}{id}, $r->{json}{token});

$b->start;    # its journal, then the stream from where it was

eventually(sub { appointment($b, $id3, $token3)->{status} == 200 },
           'node b, started again, has what was booked meanwhile');

# a node that starts empty loads the state from the snapshot a node put
# in Redis, then the stream after it: the stream's older entries trimmed

Teleclinic::Redis::wait_for(sub {
    ($redis->command('GET', 'teleclinic:{tc}:snapshot') // '') =~ /\n/
}, 'a node put its snapshot in Redis', 10);

my $snapshot = $redis->command('GET', 'teleclinic:{tc}:snapshot');
unlike($snapshot, qr/\Q$patient{name}\E|\Q$patient{phone}\E/,
       'the snapshot holds no patient data in clear');

sleep 1.5;                    # a snapshot taken after the last booking
$redis->command('XTRIM', $STREAM, 'MAXLEN', '0');
is($redis->command('XLEN', $STREAM), 0, 'the stream trimmed to nothing');

$r = book_when_up($a, $free[4], name => 'After The Trim');
is($r->{status}, 201, 'booked on node a after the trim');
my ($id4, $token4) = ($r->{json}{id}, $r->{json}{token});

my $c = node('c');

eventually(sub { appointment($c, $id4, $token4)->{status} == 200 },
           'node c has the booking made after the trim, from the stream');
like($c->error_log, qr/loaded \d+ records of node "[ab]"'s snapshot/,
     'node c loaded the snapshot');

eventually(sub { appointment($c, $id3, $token3)->{status} == 200
                 && (appointment($c, $id, $ADMIN_KEY)->{json}{status} // '')
                    eq 'cancelled' },
           'an empty node c has every earlier appointment, from the snapshot');

eventually(sub {
    my $day = admin_day($c, $RACER, $date)->{json} // [];
    @$day == 1 && $day->[0]{id} eq $winner;
}, 'node c: the raced slot held by the winner');

for my $n (sort keys %nodes) {
    ok($nodes{$n}->stop, "node $n stopped cleanly");
}

$redis->stop;

done_testing;
