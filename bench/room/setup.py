#!/usr/bin/python3
# Makes the state bench/room.sh needs, through the module's HTTP API, over
# one keep-alive connection (the journal runs with fsync=off for the bench,
# so this takes seconds).
#
#   setup.py PORT book DOCTOR COUNT [DAYS_FROM]   tokens, one a line
#       books COUNT consecutive 5-minute slots of DOCTOR (who works round
#       the clock) from DAYS_FROM days ahead (default 1, tomorrow) at
#       00:00 on; a slot the server does not have (a clock-change day)
#       is skipped
#   setup.py PORT spread COUNT DOCTOR...          tokens, one a line
#       books COUNT appointments spread evenly over the DOCTORs (who work
#       round the clock), each doctor's in consecutive 5-minute slots from
#       tomorrow 00:00 on, over as many days as they need; booked in turn,
#       one per doctor, so the tokens come interleaved as arrivals of many
#       clinics would
#   setup.py PORT login PASSWORD DOCTOR...        doctor tokens, one a line
#
# Prints the tokens to stdout and a summary to stderr; exits 1 when fewer
# than COUNT bookings or logins succeeded.

import datetime
import http.client
import json
import sys


def request(conn, method, path, body):
    data = json.dumps(body).encode()
    conn.request(method, path, body=data,
                 headers={'Content-Type': 'application/json'})
    r = conn.getresponse()
    answer = r.read()
    try:
        return r.status, json.loads(answer)
    except ValueError:
        return r.status, {'raw': answer.decode(errors='replace')}


class Booker:
    """Books one doctor's consecutive slots, one call at a time."""

    def __init__(self, conn, doctor, days_from):
        self.conn = conn
        self.doctor = doctor
        self.day = datetime.date.today() + datetime.timedelta(days=days_from)
        self.minute = 0
        self.booked = 0
        self.skipped = 0
        self.first_error = None

    def one(self, count):
        """The next appointment's token, or None after too many refusals"""

        while True:
            if self.minute >= 24 * 60:
                self.day += datetime.timedelta(days=1)
                self.minute = 0

            slot = '%s.%s.%02d%02d' % (self.doctor,
                                       self.day.strftime('%Y%m%d'),
                                       self.minute // 60, self.minute % 60)
            self.minute += 5

            status, a = request(self.conn, 'POST', '/api/v1/appointments', {
                'slot': slot,
                'patient': {'name': 'Bench Patient %d' % self.booked,
                            'phone': '+4930%08d' % self.booked},
                'reason': 'bench'})

            if status == 201:
                self.booked += 1
                return a['token']

            self.skipped += 1
            self.first_error = self.first_error or '%d %s (%s)' % (status, a,
                                                                   slot)

            if self.skipped > 100 + count // 10:
                return None


def book(conn, doctor, count, days_from):
    b = Booker(conn, doctor, days_from)

    while b.booked < count:
        token = b.one(count)
        if token is None:
            break
        print(token)

    print('setup: booked %d appointments of %s from %s on, %d slots skipped'
          % (b.booked, doctor, datetime.date.today()
             + datetime.timedelta(days=days_from), b.skipped),
          file=sys.stderr)

    if b.first_error:
        print('setup: first refusal: %s' % b.first_error, file=sys.stderr)

    return b.booked == count


def spread(conn, count, doctors):
    # the first count % len(doctors) doctors have one more
    share = [count // len(doctors) + (i < count % len(doctors))
             for i in range(len(doctors))]
    bookers = [Booker(conn, d, 1) for d in doctors]
    done = True

    for k in range(max(share)):
        for i, b in enumerate(bookers):
            if k >= share[i] or b.booked < k:
                continue
            token = b.one(share[i])
            if token is None:
                done = False
                continue
            print(token)

    booked = sum(b.booked for b in bookers)

    print('setup: booked %d appointments over %d doctors (%d to %d each) '
          'from %s on, %d slots skipped'
          % (booked, len(doctors), min(share), max(share),
             datetime.date.today() + datetime.timedelta(days=1),
             sum(b.skipped for b in bookers)), file=sys.stderr)

    for b in bookers:
        if b.first_error:
            print('setup: first refusal: %s' % b.first_error,
                  file=sys.stderr)
            break

    return done and booked == count


def login(conn, password, doctors):
    ok = 0

    for d in doctors:
        status, a = request(conn, 'POST', '/api/v1/doctor/login',
                            {'doctor': d, 'password': password})
        if status != 200:
            print('setup: login of %s: %d %s' % (d, status, a),
                  file=sys.stderr)
            continue
        print(a['token'])
        ok += 1

    return ok == len(doctors)


def main():
    port, what = int(sys.argv[1]), sys.argv[2]
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=60)

    if what == 'book':
        done = book(conn, sys.argv[3], int(sys.argv[4]),
                    int(sys.argv[5]) if len(sys.argv) > 5 else 1)
    elif what == 'spread':
        done = spread(conn, int(sys.argv[3]), sys.argv[4:])
    elif what == 'login':
        done = login(conn, sys.argv[3], sys.argv[4:])
    else:
        sys.exit('setup.py: unknown command %s' % what)

    sys.stdout.flush()
    sys.exit(0 if done else 1)


main()
