package Teleclinic::Clinic;

# A small clinic for tests of the booking API: a directory whose doctors
# work every day of the week (no test depends on the weekday), the
# server's calendar dates, and a free slot to book.
#
#   use lib 't/lib';
#   use Teleclinic::Test;
#   use Teleclinic::Clinic qw(:all);
#
#   my $t = Teleclinic::Test->new;
#   write_directory($t);                   # prefix/directory.json
#   $t->run(...teleclinic_directory %%PREFIX%%/directory.json;...);
#   my $date = day_ahead(1);               # tomorrow, YYYY-MM-DD
#   my $slot = free_slot($t, 'gp-one');    # {id,start,end,status}
#   my $r = book($t, $slot->{id});         # $t->http result, 201
#
# directory(%opts) returns the directory as a Perl structure:
#   departments  gp (General Practice), derm (Dermatology)
#   doctors      gp-one, gp-two (gp, 30 min), derm-one (derm, 20 min),
#                all working 08:00-12:00 and 13:00-17:00 every day
#   doctors => [ids]     only these of the doctors above
# doctor($id, $department, %opts) one doctor entry working every day;
#   opts: name, slot_minutes (30), hours ([["08:00","12:00"],...]),
#   days_off ([]).
# write_directory($t [, $dir [, $name]]) writes $dir (default
#   directory()) as JSON into the prefix, returns the path.
# day_ahead($n) the server's local date $n days from now (the tests run
#   nginx with the test's TZ, so both agree).
# slots($t, $doctor [, $date]) the slot list, dies unless 200.
# free_slot($t, $doctor [, $date [, $skip]]) the first free slot of the
#   day (default tomorrow) after skipping $skip free ones; dies if none.
# book($t, $slot_id, %opts) POST /api/v1/appointments with a made-up
#   patient; opts: name, phone, reason, body (replaces the whole body).

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use POSIX qw(strftime);
use Mojo::JSON qw(encode_json);

our @EXPORT_OK = qw(directory doctor write_directory day_ahead slots
                    free_slot book);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

my @WEEK = qw(mon tue wed thu fri sat sun);


sub doctor {
    my ($id, $department, %opts) = @_;

    my $hours = $opts{hours} // [['08:00', '12:00'], ['13:00', '17:00']];

    return {
        id         => $id,
        name       => $opts{name} // "Dr. \u$id",
        department => $department,
        schedule   => {
            slot_minutes => $opts{slot_minutes} // 30,
            hours        => { map { $_ => $hours } @WEEK },
            days_off     => $opts{days_off} // [],
        },
    };
}

sub directory {
    my (%opts) = @_;

    my @doctors = (
        doctor('gp-one', 'gp', name => 'Dr. Gina One'),
        doctor('gp-two', 'gp', name => 'Dr. Gus Two'),
        doctor('derm-one', 'derm', name => 'Dr. Dora One',
               slot_minutes => 20),
    );

    if (my $only = $opts{doctors}) {
        my %want = map { $_ => 1 } @$only;
        @doctors = grep { $want{ $_->{id} } } @doctors;
    }

    return {
        departments => [
            { id => 'gp', name => 'General Practice' },
            { id => 'derm', name => 'Dermatology' },
        ],
        doctors => \@doctors,
    };
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

    my $r = $t->http(GET => "/api/v1/doctors/$doctor/slots?date=$date");

    croak "slots of $doctor on $date: " . ($r->{status} // $r->{error})
        unless ($r->{status} // 0) == 200 && ref $r->{json} eq 'ARRAY';

    return $r->{json};
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

    return $t->http(POST => '/api/v1/appointments', body => $body);
}

1;
