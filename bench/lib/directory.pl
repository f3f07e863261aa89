#!/usr/bin/perl
# Writes a benchmark directory to stdout: DOCTORS doctors "d000".. that work
# round the clock every day in 5-minute slots (288 slots a day, so that a
# booking run finds enough distinct free slots), then OFFICE doctors "o00"..
# with office hours (08-12, 13-17, 20-minute slots) for a typical day.
#
#   perl bench/lib/directory.pl DOCTORS OFFICE > directory.json

use strict;
use warnings;

use JSON::PP;

my ($doctors, $office) = @ARGV;
$doctors //= 100;
$office //= 10;

my @days = qw(mon tue wed thu fri sat sun);
my (@d, %h24, %h9);

@h24{@days} = map { [['00:00', '24:00']] } @days;
@h9{@days} = map { [['08:00', '12:00'], ['13:00', '17:00']] } @days;

for my $i (0 .. $doctors - 1) {
    push @d, { id => sprintf('d%03d', $i), name => "Dr. Bench $i",
               department => 'bench',
               schedule => { slot_minutes => 5, hours => \%h24,
                             days_off => [] } };
}

for my $i (0 .. $office - 1) {
    push @d, { id => sprintf('o%02d', $i), name => "Dr. Office $i",
               department => 'office',
               schedule => { slot_minutes => 20, hours => \%h9,
                             days_off => [] } };
}

print JSON::PP->new->canonical->encode({
    departments => [ { id => 'bench', name => 'Round the clock' },
                     { id => 'office', name => 'Office hours' } ],
    doctors => \@d,
}), "\n";
