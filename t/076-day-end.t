#!/usr/bin/perl

# The day is over: appointments of past days that nobody came to, or
# whose patient checked in and was not seen, become no-shows (journaled,
# once); today's, fulfilled and cancelled ones stay as they are.

use strict;
use warnings;

use Test::More;
use POSIX qw(strftime);
use Time::HiRes qw(sleep);
use Compress::Raw::Zlib ();
use Mojo::JSON qw(encode_json);

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);

###############################################################################

my $DOCTOR = 'day-one';

my $t = Teleclinic::Test->new(workers => 2);

write_directory($t, directory(
    departments => ['gp'],
    doctors     => [ doctor($DOCTOR, 'gp', name => 'Dr. Day',
                            slot_minutes => 5, hours => ALL_DAY) ],
));

# two days back, so that "yesterday" holds whatever the time of day
my $past = int(time / 300) * 300 - 2 * 86400;
my $soon = int(time / 300) * 300 + 86400;

my %appt = (
    booked    => [ 0xd1, $past, 0 ],
    arrived   => [ 0xd2, $past + 300, 1 ],
    fulfilled => [ 0xd3, $past + 600, 2 ],
    cancelled => [ 0xd4, $past + 900, 3 ],
    tomorrow  => [ 0xd5, $soon, 0 ],
);

my $journal = '';
my $seq = 0;

for my $k (sort keys %appt) {
    my ($id, $start, $status) = @{ $appt{$k} };

    my $text = encode_json({
        seq => ++$seq, op => 'appt', at => $start - 7200,
        created => $start - 7200, id => sprintf('%016x', $id),
        status => $status, doctor => $DOCTOR, start => $start,
        end => $start + 300, name => "Patient \u$k",
        phone => '+49 30 1234567', reason => 'check-up',
    });

    $journal .= sprintf("%08x %s\n", Compress::Raw::Zlib::crc32($text),
                        $text);
}

$t->write_file('state/journal', $journal);
$t->run(conf());

# the doctor's day as the admin sees it
sub status {
    my ($k) = @_;
    my ($id, $start) = @{ $appt{$k} };
    my $r = admin_day($t, $DOCTOR, strftime('%Y-%m-%d', localtime $start));

    my $list = ref $r->{json} eq 'ARRAY' ? $r->{json} : [];

    for my $a (@$list) {
        return $a->{status} if $a->{id} eq sprintf('%016x', $id);
    }

    return "HTTP $r->{status}, not listed";
}

# the workers look a second after they start
my $deadline = time + 20;
sleep 0.2 while status('booked') ne 'noshow' && time < $deadline;

is(status('booked'), 'noshow', 'booked two days ago: noshow');
is(status('arrived'), 'noshow', 'arrived, not seen, two days ago: noshow');
is(status('fulfilled'), 'fulfilled', 'a fulfilled visit stays fulfilled');
# cancelled ones leave the doctor's day: read it with the admin key
my $c = appointment($t, sprintf('%016x', $appt{cancelled}[0]), $ADMIN_KEY);
is($c->{json} && $c->{json}{status}, 'cancelled',
   'a cancelled one stays cancelled');
is(status('tomorrow'), 'booked', 'tomorrow\'s stays booked');

like($t->read_file('logs/error.log'),
     qr/2 appointments of past days became no-shows/,
     'one notice, from the worker that did it');

# journaled: the same after a restart, and not done twice
$t->stop;
$t->run(conf());
sleep 1.5;

is(status('booked'), 'noshow', 'after a restart: still noshow');
is(status('tomorrow'), 'booked', 'after a restart: tomorrow still booked');

my @notices = $t->read_file('logs/error.log')
              =~ /appointments of past days became no-shows/g;
is(scalar(@notices), 1, 'nothing left to do after the restart');

$t->stop;

done_testing;
