
/*
 * Copyright (C) ngx_teleclinic authors
 */


/*
 * libFuzzer target for the request parsers of ngx_teleclinic_request.c:
 * every input is tried as a booking body, a reschedule body, a date, a
 * slot id, an appointment id, a directory id and a query string.  What
 * a parser accepts is checked against what the API promises, so a parser
 * that lets through what it should refuse is a crash here, not only one
 * that reads out of bounds.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_teleclinic_request.h"


#define fuzz_assert(expr)                                                     \
    if (!(expr)) {                                                            \
        fprintf(stderr, "%s:%d: invariant failed: %s\n",                      \
                __FILE__, __LINE__, #expr);                                   \
        abort();                                                              \
    }


static size_t fuzz_utf8_chars(ngx_str_t *s);
static void fuzz_name(ngx_str_t *s);
static void fuzz_string(ngx_str_t *s, size_t min, size_t max);
static void fuzz_error(ngx_teleclinic_error_t *err);
static ngx_int_t fuzz_slot(u_char *p, size_t len);
static void fuzz_booking(u_char *data, size_t size);
static void fuzz_reschedule(u_char *data, size_t size);
static void fuzz_date(u_char *p, size_t len);
static void fuzz_appt_id(u_char *p, size_t len);
static void fuzz_id(u_char *p, size_t len);
static void fuzz_arg(u_char *args, size_t len, char *name);
static void fuzz_record(u_char *data, size_t size, ngx_uint_t kind);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char  *buf, *nul;
    char    *name;
    size_t   i;

    /* a copy of the exact size: the parsers take writable buffers */
    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        return 0;
    }

    ngx_memcpy(buf, data, size);

    fuzz_booking(buf, size);
    fuzz_reschedule(buf, size);

    for (i = NGX_TELECLINIC_BODY_NOTE; i <= NGX_TELECLINIC_BODY_RATING; i++) {
        fuzz_record(buf, size, i);
    }

    fuzz_date(buf, size);
    (void) fuzz_slot(buf, size);
    fuzz_appt_id(buf, size);
    fuzz_id(buf, size);

    /* the fixed-length parsers also see every window of their length */
    for (i = 0; i + 10 <= size && i < 64; i++) {
        fuzz_date(buf + i, 10);
    }

    for (i = 0; i + NGX_TELECLINIC_APPT_ID_LEN <= size && i < 64; i++) {
        fuzz_appt_id(buf + i, NGX_TELECLINIC_APPT_ID_LEN);
    }

    fuzz_arg(buf, size, "date");
    fuzz_arg(buf, size, "department");
    fuzz_arg(buf, size, "");

    /* "name\0args": a name chosen by the input */
    nul = memchr(buf, '\0', size);

    if (nul != NULL) {
        name = (char *) buf;
        fuzz_arg(nul + 1, buf + size - (nul + 1), name);
    }

    free(buf);

    return 0;
}


/* the visit record's bodies: what is accepted is within its limits */

static void
fuzz_record(u_char *data, size_t size, ngx_uint_t kind)
{
    size_t                        j, k;
    ngx_uint_t                    i;
    ngx_teleclinic_error_t        err;
    ngx_teleclinic_record_req_t   req;

    ngx_memzero(&err, sizeof(ngx_teleclinic_error_t));

    if (ngx_teleclinic_request_record(data, size, kind, &req, &err)
        != NGX_OK)
    {
        fuzz_assert(req.root == NULL);
        fuzz_error(&err);
        return;
    }

    fuzz_assert(json_is_object(req.root));

    for (i = 0; i < NGX_TELECLINIC_RECORD_TEXTS; i++) {
        /* at most 4000 characters of at most 4 bytes each */
        fuzz_assert(req.text[i].len <= 4 * NGX_TELECLINIC_NOTE_MAX);

        for (j = 0, k = 0; j < req.text[i].len; j++) {
            fuzz_assert(req.text[i].data[j] >= 0x20
                        || req.text[i].data[j] == '\n'
                        || req.text[i].data[j] == '\r'
                        || req.text[i].data[j] == '\t');
            k += ((req.text[i].data[j] & 0xc0) != 0x80);
        }

        fuzz_assert(k <= NGX_TELECLINIC_NOTE_MAX);
    }

    switch (kind) {

    case NGX_TELECLINIC_BODY_RX:
    case NGX_TELECLINIC_BODY_ORDER:
        fuzz_assert(ngx_teleclinic_id_valid(req.ref.data, req.ref.len)
                    == NGX_OK);
        break;

    case NGX_TELECLINIC_BODY_RATING:
        fuzz_assert(req.num[0] >= 1 && req.num[0] <= 5);
        break;
    }

    json_decref(req.root);
}


static void
fuzz_booking(u_char *data, size_t size)
{
    ngx_teleclinic_error_t        err;
    ngx_teleclinic_booking_req_t  req;

    ngx_memzero(&err, sizeof(ngx_teleclinic_error_t));

    if (ngx_teleclinic_request_booking(data, size, &req, &err) != NGX_OK) {
        fuzz_assert(req.root == NULL);
        fuzz_error(&err);
        return;
    }

    fuzz_assert(json_is_object(req.root));

    fuzz_string(&req.slot, 1, 64);
    fuzz_assert(fuzz_slot(req.slot.data, req.slot.len) == NGX_OK);

    fuzz_string(&req.name, 1, NGX_TELECLINIC_NAME_MAX);
    fuzz_name(&req.name);
    fuzz_string(&req.phone, 1, NGX_TELECLINIC_PHONE_MAX);
    fuzz_assert(req.phone.data[0] == '+');

    if (req.reason.data != NULL) {
        fuzz_string(&req.reason, 0, NGX_TELECLINIC_REASON_MAX);

    } else {
        fuzz_assert(json_object_get(req.root, "reason") == NULL);
    }

    json_decref(req.root);
}


static void
fuzz_reschedule(u_char *data, size_t size)
{
    json_t                  *root;
    ngx_str_t                slot;
    ngx_teleclinic_error_t   err;

    root = NULL;
    ngx_memzero(&err, sizeof(ngx_teleclinic_error_t));

    if (ngx_teleclinic_request_reschedule(data, size, &root, &slot, &err)
        != NGX_OK)
    {
        fuzz_assert(root == NULL);
        fuzz_error(&err);
        return;
    }

    fuzz_assert(json_is_object(root));
    fuzz_string(&slot, 1, 64);
    fuzz_assert(fuzz_slot(slot.data, slot.len) == NGX_OK);

    json_decref(root);
}


/* what the client is told must be one of the documented answers */

static void
fuzz_error(ngx_teleclinic_error_t *err)
{
    fuzz_assert(err->status == 400 || err->status == 422);
    fuzz_assert(err->code != NULL && err->code[0] != '\0');
    fuzz_assert(err->message != NULL && err->message[0] != '\0');

    if (err->status == 400) {
        fuzz_assert(strcmp(err->code, "malformed_json") == 0);
        fuzz_assert(err->field == NULL);

    } else if (strcmp(err->code, "invalid_body") != 0) {
        /* a 422 names the culprit */
        fuzz_assert(err->field != NULL && err->field[0] != '\0');
    }
}


/* an accepted string: within its limits in characters, no controls */

static void
fuzz_string(ngx_str_t *s, size_t min, size_t max)
{
    size_t  i, n;

    fuzz_assert(s->data != NULL);

    n = fuzz_utf8_chars(s);
    fuzz_assert(n >= min && n <= max);

    /* at most 4 bytes per character */
    fuzz_assert(s->len <= 4 * max);

    for (i = 0; i < s->len; i++) {
        fuzz_assert(s->data[i] >= 0x20 && s->data[i] != 0x7f);

        /* nor C1, U+0080 to U+009F */
        fuzz_assert(!(s->data[i] == 0xc2 && i + 1 < s->len
                      && s->data[i + 1] >= 0x80 && s->data[i + 1] <= 0x9f));
    }
}


/* an accepted name: no direction controls, not only spaces */

static void
fuzz_name(ngx_str_t *s)
{
    u_char  *p, *last;
    size_t   spaces;

    last = s->data + s->len;
    spaces = 0;

    for (p = s->data; p < last; p++) {
        if (*p == ' ') {
            spaces++;
        }

        if (p + 2 < last && p[0] == 0xe2
            && ((p[1] == 0x80 && ((p[2] >= 0xaa && p[2] <= 0xae)
                                  || p[2] == 0x8e || p[2] == 0x8f))
                || (p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9)))
        {
            fuzz_assert(0);
        }

        fuzz_assert(!(p + 1 < last && p[0] == 0xd8 && p[1] == 0x9c));
    }

    fuzz_assert(spaces < s->len);
}


static size_t
fuzz_utf8_chars(ngx_str_t *s)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < s->len; i++) {
        if ((s->data[i] & 0xc0) != 0x80) {
            n++;
        }
    }

    return n;
}


/*
 * An accepted slot id is in its one canonical form: printing what was
 * parsed gives back the same bytes, and that parses again.
 */

static ngx_int_t
fuzz_slot(u_char *p, size_t len)
{
    u_char                 *buf;
    size_t                  n;
    ngx_str_t               doctor, doctor2;
    ngx_uint_t              minute, minute2;
    ngx_teleclinic_date_t   date, date2;

    if (ngx_teleclinic_slot_id_parse(p, len, &doctor, &date, &minute)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    fuzz_assert(doctor.data == p);
    fuzz_assert(doctor.len >= 1 && doctor.len <= NGX_TELECLINIC_ID_MAX);
    fuzz_assert(ngx_teleclinic_id_valid(doctor.data, doctor.len) == NGX_OK);
    fuzz_assert(minute < 24 * 60);
    fuzz_assert(date.year >= 2000 && date.year <= 2199);
    fuzz_assert(date.month >= 1 && date.month <= 12);
    fuzz_assert(date.day >= 1 && date.day <= 31);

    n = doctor.len + sizeof(".YYYYMMDD.HHMM");
    buf = malloc(n);
    fuzz_assert(buf != NULL);

    n = snprintf((char *) buf, n, "%.*s.%04u%02u%02u.%02u%02u",
                 (int) doctor.len, doctor.data, (unsigned) date.year,
                 (unsigned) date.month, (unsigned) date.day,
                 (unsigned) (minute / 60), (unsigned) (minute % 60));

    fuzz_assert(n == len && ngx_memcmp(buf, p, len) == 0);

    fuzz_assert(ngx_teleclinic_slot_id_parse(buf, n, &doctor2, &date2,
                                             &minute2)
                == NGX_OK);
    fuzz_assert(doctor2.len == doctor.len && minute2 == minute
                && date2.year == date.year && date2.month == date.month
                && date2.day == date.day);

    free(buf);

    return NGX_OK;
}


static void
fuzz_date(u_char *p, size_t len)
{
    u_char                 buf[sizeof("YYYY-MM-DD")];
    ngx_teleclinic_date_t  date;

    if (ngx_teleclinic_date_parse(p, len, &date) != NGX_OK) {
        return;
    }

    fuzz_assert(len == 10);
    fuzz_assert(date.year >= 2000 && date.year <= 2199);
    fuzz_assert(date.month >= 1 && date.month <= 12);
    fuzz_assert(date.day >= 1 && date.day <= 31);

    /* February 29th only in a leap year, the 31st only in long months */
    if (date.month == 2) {
        fuzz_assert(date.day <= 28
                    || (date.day == 29 && date.year % 4 == 0
                        && (date.year % 100 != 0 || date.year % 400 == 0)));

    } else if (date.month == 4 || date.month == 6 || date.month == 9
               || date.month == 11)
    {
        fuzz_assert(date.day <= 30);
    }

    snprintf((char *) buf, sizeof(buf), "%04u-%02u-%02u",
             (unsigned) date.year, (unsigned) date.month,
             (unsigned) date.day);

    fuzz_assert(ngx_memcmp(buf, p, 10) == 0);
}


static void
fuzz_appt_id(u_char *p, size_t len)
{
    u_char    buf[NGX_TELECLINIC_APPT_ID_LEN + 1], *end;
    uint64_t  id;

    /* a guard byte: the printer writes exactly the id's length */
    buf[NGX_TELECLINIC_APPT_ID_LEN] = 0xa5;

    if (ngx_teleclinic_appt_id_parse(p, len, &id) != NGX_OK) {
        return;
    }

    fuzz_assert(len == NGX_TELECLINIC_APPT_ID_LEN);

    end = ngx_teleclinic_appt_id_print(buf, id);

    fuzz_assert(end == buf + NGX_TELECLINIC_APPT_ID_LEN);
    fuzz_assert(buf[NGX_TELECLINIC_APPT_ID_LEN] == 0xa5);
    fuzz_assert(ngx_memcmp(buf, p, len) == 0);
}


static void
fuzz_id(u_char *p, size_t len)
{
    size_t  i;

    if (ngx_teleclinic_id_valid(p, len) != NGX_OK) {
        return;
    }

    fuzz_assert(len >= 1 && len <= NGX_TELECLINIC_ID_MAX);
    fuzz_assert(p[0] != '-' && p[len - 1] != '-');

    for (i = 0; i < len; i++) {
        fuzz_assert((p[i] >= 'a' && p[i] <= 'z')
                    || (p[i] >= '0' && p[i] <= '9') || p[i] == '-');
    }
}


static void
fuzz_arg(u_char *args, size_t len, char *name)
{
    size_t     n;
    ngx_str_t  value;

    if (ngx_teleclinic_arg(args, len, name, &value) != NGX_OK) {
        return;
    }

    n = strlen(name);

    /* the value lies inside args, right after "name=", up to a '&' */
    fuzz_assert(value.data >= args + n + 1);
    fuzz_assert(value.data + value.len <= args + len);
    fuzz_assert(value.data[-1] == '=');
    fuzz_assert(ngx_memcmp(value.data - n - 1, name, n) == 0);
    fuzz_assert(value.data - n - 1 == args || *(value.data - n - 2) == '&');
    fuzz_assert(memchr(value.data, '&', value.len) == NULL);
    fuzz_assert(value.data + value.len == args + len
                || value.data[value.len] == '&');
}
