#!/usr/bin/perl

# The links given to patients (join_url, guide_url) without
# teleclinic_public_url: they are made from what nginx knows, never from
# the Host header the client sent.  A server without a usable
# server_name links to the address and port the connection came to; a
# server with a plain first server_name links to that name and the port.
# Hostile Host headers (user info, paths, backslashes, spaces, very long,
# other hosts) never move the link.

use strict;
use warnings;

use Test::More;
use IO::Socket::IP;
use Mojo::JSON qw(encode_json decode_json);
use Mojo::URL;

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Test;
use Teleclinic::Clinic qw(:all);

###############################################################################

my @HOSTS = (
    '127.0.0.1:1@evil.example',
    'a@evil',
    'a@evil.example:80',
    'evil.example/x',
    'evil.example',
    'evil.example:8080',
    'x\@y',
    'x\\y',
    'evil.example x',
    'evil .example',
    'evil.example%2f@x',
    '[::1]@evil.example',
    'user:pass@evil.example',
    'a' x 4000 . '.example',
    'evil.example#',
    'evil.example?x=',
    '',
);

for my $case (
    [ 'no server_name',          undef,                         undef ],
    [ 'server_name _',           'server_name _;',              undef ],
    [ 'a wildcard first',        'server_name *.clinic.test;',  undef ],
    [ 'a plain server_name',     'server_name Clinic.Test *.clinic.test;',
      'clinic.test' ],
)
{
    my ($what, $server, $name) = @$case;

    my $t = Teleclinic::Test->new(workers => 1);
    write_directory($t);
    $t->run(conf(server => $server));

    my $port = $t->port;
    my $want = ($name // '127.0.0.1') . ":$port";
    my $booked = 0;

    for my $host (@HOSTS) {
        my $slot = free_slot($t, 'gp-one', day_ahead(1))->{id};
        my ($status, $json) = raw_book($port, $host, $slot);
        my $label = "$what, Host '" . (length $host > 40
                                       ? substr($host, 0, 40) . '...'
                                       : $host) . "'";

        # nginx refuses some of these itself: then there is no link at all
        if ($status != 201) {
            cmp_ok($status, '>=', 400, "$label: refused ($status)");
            ok(!defined $json || !exists $json->{join_url},
               "$label: no link");
            next;
        }

        $booked++;

        for my $link ('join_url', 'guide_url') {
            my $url = Mojo::URL->new($json->{$link} // '');

            is($url->scheme, 'http', "$label: $link is http");
            is($url->host_port, $want, "$label: $link points at $want");
            ok(!defined $url->userinfo, "$label: $link has no user info");
            like($json->{$link}, qr{^http://\Q$want\E/[a-z]+\.html},
                 "$label: $link is this server's page");
        }

        like($json->{join_url}, qr/#token=\Q$json->{token}\E$/,
             "$label: the token in the fragment");
    }

    cmp_ok($booked, '>=', 8, "$what: most of the bookings were made");

    ok($t->stop, "$what: stopped cleanly");
}

done_testing;

###############################################################################

# a booking with exactly this Host header (none when empty); the status
# and the JSON answer
sub raw_book {
    my ($port, $host, $slot) = @_;

    my $body = encode_json({ slot => $slot,
                             patient => { name => 'Link Patient',
                                          phone => '+49 30 1234567' } });

    my $s = IO::Socket::IP->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                Timeout => 10)
        or die "connect: $!";

    print $s "POST /api/v1/appointments HTTP/1.0\r\n"
             . (length $host ? "Host: $host\r\n" : '')
             . "Content-Type: application/json\r\n"
             . 'Content-Length: ' . length($body) . "\r\n\r\n$body";

    local $/;
    my $res = <$s> // '';
    close $s;

    my ($status) = $res =~ m{^HTTP/1\.[01] (\d{3})};
    my ($json) = $res =~ /\r\n\r\n(.*)\z/s;

    return ($status // 0, eval { decode_json($json // '') });
}
