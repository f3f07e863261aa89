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


def book(conn, doctor, count, days_from):
    day = datetime.date.today() + datetime.timedelta(days=days_from)
    minute = 0
    booked = skipped = 0
    first_error = None

    while booked < count:
        if minute >= 24 * 60:
            day += datetime.timedelta(days=1)
            minute = 0

        slot = '%s.%s.%02d%02d' % (doctor, day.strftime('%Y%m%d'),
                                   minute // 60, minute % 60)
        minute += 5

        status, a = request(conn, 'POST', '/api/v1/appointments', {
            'slot': slot,
            'patient': {'name': 'Bench Patient %d' % booked,
                        'phone': '+4930%08d' % booked},
            'reason': 'bench'})

        if status == 201:
            print(a['token'])
            booked += 1
            continue

        skipped += 1
        first_error = first_error or '%d %s (%s)' % (status, a, slot)

        if skipped > 100 + count // 10:
            break

    print('setup: booked %d appointments of %s from %s on, %d slots skipped'
          % (booked, doctor, datetime.date.today()
             + datetime.timedelta(days=days_from), skipped), file=sys.stderr)

    if first_error:
        print('setup: first refusal: %s' % first_error, file=sys.stderr)

    return booked == count


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
    elif what == 'login':
        done = login(conn, sys.argv[3], sys.argv[4:])
    else:
        sys.exit('setup.py: unknown command %s' % what)

    sys.stdout.flush()
    sys.exit(0 if done else 1)


main()
