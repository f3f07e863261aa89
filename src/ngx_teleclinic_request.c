
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_teleclinic_request.h"


static ngx_int_t ngx_teleclinic_request_string(json_t *obj, const char *key,
    size_t min, size_t max, ngx_uint_t flags, ngx_str_t *value,
    ngx_teleclinic_error_t *err);
static size_t ngx_teleclinic_string_chars(ngx_str_t *s, ngx_uint_t text,
    ngx_uint_t *control);
static ngx_int_t ngx_teleclinic_request_number(json_t *obj, const char *key,
    ngx_uint_t min, ngx_uint_t max, ngx_uint_t required, ngx_uint_t *value,
    ngx_teleclinic_error_t *err);
static ngx_int_t ngx_teleclinic_name_valid(ngx_str_t *s);
static uint32_t ngx_teleclinic_utf8_next(u_char **p, u_char *last);
static ngx_int_t ngx_teleclinic_phone_valid(ngx_str_t *s);
static ngx_int_t ngx_teleclinic_digits(u_char *p, size_t n, ngx_uint_t *v);


#define NGX_TELECLINIC_TEXT  1


#define ngx_teleclinic_error(e, st, c, m, f)                                  \
    (e)->status = st; (e)->code = c; (e)->message = m; (e)->field = f


ngx_int_t
ngx_teleclinic_request_json(u_char *body, size_t len, json_t **root,
    ngx_teleclinic_error_t *err)
{
    json_t        *json;
    json_error_t   jerr;

    /*
     * jansson checks UTF-8 and rejects integers that do not fit; depth
     * is bounded by its own limit.  Any JSON value and NUL in strings
     * parse, so that a body that is valid JSON gets 422 with the field
     * at fault (the string checks refuse NUL as a control character)
     * rather than 400.
     */
    json = json_loadb((const char *) body, len,
                      JSON_REJECT_DUPLICATES|JSON_DECODE_ANY|JSON_ALLOW_NUL,
                      &jerr);

    if (json == NULL) {
        ngx_teleclinic_error(err, 400, "malformed_json",
                             "the request body is not valid JSON", NULL);
        return NGX_ERROR;
    }

    if (!json_is_object(json)) {
        json_decref(json);
        ngx_teleclinic_error(err, 422, "invalid_body",
                             "the request body must be a JSON object", NULL);
        return NGX_ERROR;
    }

    *root = json;

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_request_booking(u_char *body, size_t len,
    ngx_teleclinic_booking_req_t *req, ngx_teleclinic_error_t *err)
{
    json_t                 *patient;
    ngx_str_t               doctor;
    ngx_uint_t              minute;
    ngx_teleclinic_date_t   date;

    ngx_memzero(req, sizeof(ngx_teleclinic_booking_req_t));

    if (ngx_teleclinic_request_json(body, len, &req->root, err) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_teleclinic_request_string(req->root, "slot", 1, 64, 0, &req->slot,
                                      err)
        != NGX_OK)
    {
        goto failed;
    }

    if (ngx_teleclinic_slot_id_parse(req->slot.data, req->slot.len, &doctor,
                                     &date, &minute)
        != NGX_OK)
    {
        ngx_teleclinic_error(err, 422, "invalid_slot",
                             "slot is not a slot id", "slot");
        goto failed;
    }

    patient = json_object_get(req->root, "patient");

    if (patient == NULL) {
        ngx_teleclinic_error(err, 422, "missing_field",
                             "patient is required", "patient");
        goto failed;
    }

    if (!json_is_object(patient)) {
        ngx_teleclinic_error(err, 422, "invalid_type",
                             "patient must be an object", "patient");
        goto failed;
    }

    if (ngx_teleclinic_request_string(patient, "name", 1,
                                      NGX_TELECLINIC_NAME_MAX, 0, &req->name,
                                      err)
        != NGX_OK)
    {
        err->field = "patient.name";
        goto failed;
    }

    if (ngx_teleclinic_name_valid(&req->name) != NGX_OK) {
        ngx_teleclinic_error(err, 422, "invalid_characters",
                             "the name has direction controls or no visible "
                             "character", "patient.name");
        goto failed;
    }

    if (ngx_teleclinic_request_string(patient, "phone", 1,
                                      NGX_TELECLINIC_PHONE_MAX, 0, &req->phone,
                                      err)
        != NGX_OK)
    {
        err->field = "patient.phone";
        goto failed;
    }

    if (ngx_teleclinic_phone_valid(&req->phone) != NGX_OK) {
        ngx_teleclinic_error(err, 422, "invalid_phone",
                             "phone must be an international number such as "
                             "+49 30 1234567", "patient.phone");
        goto failed;
    }

    if (json_object_get(req->root, "reason") != NULL) {
        if (ngx_teleclinic_request_string(req->root, "reason", 0,
                                          NGX_TELECLINIC_REASON_MAX, 0,
                                          &req->reason, err)
            != NGX_OK)
        {
            goto failed;
        }
    }

    return NGX_OK;

failed:

    json_decref(req->root);
    req->root = NULL;

    return NGX_ERROR;
}


ngx_int_t
ngx_teleclinic_request_reschedule(u_char *body, size_t len, json_t **root,
    ngx_str_t *slot, ngx_teleclinic_error_t *err)
{
    ngx_str_t               doctor;
    ngx_uint_t              minute;
    ngx_teleclinic_date_t   date;

    if (ngx_teleclinic_request_json(body, len, root, err) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_teleclinic_request_string(*root, "slot", 1, 64, 0, slot, err)
        != NGX_OK)
    {
        goto failed;
    }

    if (ngx_teleclinic_slot_id_parse(slot->data, slot->len, &doctor, &date,
                                     &minute)
        != NGX_OK)
    {
        ngx_teleclinic_error(err, 422, "invalid_slot",
                             "slot is not a slot id", "slot");
        goto failed;
    }

    return NGX_OK;

failed:

    json_decref(*root);
    *root = NULL;

    return NGX_ERROR;
}


ngx_int_t
ngx_teleclinic_request_record(u_char *body, size_t len, ngx_uint_t kind,
    ngx_teleclinic_record_req_t *req, ngx_teleclinic_error_t *err)
{
    ngx_str_t    s;
    ngx_uint_t   i;

    static const char  *note[] = {
        "complaint", "history", "findings", "diagnosis", "advice"
    };

    static const char  *followups[] = {
        "payment", "pharmacy", "exam", "revisit", NULL
    };

    ngx_memzero(req, sizeof(ngx_teleclinic_record_req_t));

    if (ngx_teleclinic_request_json(body, len, &req->root, err) != NGX_OK) {
        return NGX_ERROR;
    }

    switch (kind) {

    case NGX_TELECLINIC_BODY_NOTE:
        for (i = 0; i < NGX_TELECLINIC_RECORD_TEXTS; i++) {
            if (ngx_teleclinic_request_string(req->root, note[i], 0,
                                              NGX_TELECLINIC_NOTE_MAX,
                                              NGX_TELECLINIC_TEXT,
                                              &req->text[i], err)
                != NGX_OK)
            {
                goto failed;
            }
        }

        break;

    case NGX_TELECLINIC_BODY_RX:
        if (ngx_teleclinic_request_string(req->root, "drug", 1,
                                          NGX_TELECLINIC_ID_MAX, 0, &req->ref,
                                          err)
            != NGX_OK)
        {
            goto failed;
        }

        if (ngx_teleclinic_id_valid(req->ref.data, req->ref.len) != NGX_OK) {
            ngx_teleclinic_error(err, 422, "unknown_drug",
                                 "drug is not in the formulary", "drug");
            goto failed;
        }

        if (ngx_teleclinic_request_string(req->root, "dose", 1,
                                          NGX_TELECLINIC_DOSE_MAX,
                                          NGX_TELECLINIC_TEXT, &req->text[0],
                                          err)
               != NGX_OK
            || ngx_teleclinic_request_string(req->root, "frequency", 1,
                                             NGX_TELECLINIC_DOSE_MAX,
                                             NGX_TELECLINIC_TEXT,
                                             &req->text[1], err)
               != NGX_OK
            || ngx_teleclinic_request_string(req->root, "note", 0,
                                             NGX_TELECLINIC_ITEM_NOTE_MAX,
                                             NGX_TELECLINIC_TEXT,
                                             &req->text[2], err)
               != NGX_OK
            || ngx_teleclinic_request_number(req->root, "days", 1, 366, 0,
                                             &req->num[0], err)
               != NGX_OK
            || ngx_teleclinic_request_number(req->root, "quantity", 1, 10000,
                                             0, &req->num[1], err)
               != NGX_OK)
        {
            goto failed;
        }

        break;

    case NGX_TELECLINIC_BODY_ORDER:
        if (ngx_teleclinic_request_string(req->root, "exam", 1,
                                          NGX_TELECLINIC_ID_MAX, 0, &req->ref,
                                          err)
            != NGX_OK)
        {
            goto failed;
        }

        if (ngx_teleclinic_id_valid(req->ref.data, req->ref.len) != NGX_OK) {
            ngx_teleclinic_error(err, 422, "unknown_exam",
                                 "exam is not in the catalogue", "exam");
            goto failed;
        }

        if (ngx_teleclinic_request_string(req->root, "note", 0,
                                          NGX_TELECLINIC_ITEM_NOTE_MAX,
                                          NGX_TELECLINIC_TEXT, &req->text[0],
                                          err)
            != NGX_OK)
        {
            goto failed;
        }

        break;

    case NGX_TELECLINIC_BODY_FOLLOWUP:
        if (ngx_teleclinic_request_string(req->root, "kind", 1, 16, 0,
                                          &req->ref, err)
            != NGX_OK)
        {
            goto failed;
        }

        for (i = 0; followups[i]; i++) {
            if (req->ref.len == ngx_strlen(followups[i])
                && ngx_strncmp(req->ref.data, followups[i], req->ref.len) == 0)
            {
                break;
            }
        }

        if (followups[i] == NULL) {
            ngx_teleclinic_error(err, 422, "invalid_field",
                                 "kind must be payment, pharmacy, exam or "
                                 "revisit", "kind");
            goto failed;
        }

        if (ngx_teleclinic_request_string(req->root, "note", 0,
                                          NGX_TELECLINIC_ITEM_NOTE_MAX,
                                          NGX_TELECLINIC_TEXT, &req->text[0],
                                          err)
            != NGX_OK)
        {
            goto failed;
        }

        if (json_object_get(req->root, "due") != NULL) {
            if (ngx_teleclinic_request_string(req->root, "due", 10, 10, 0, &s,
                                              err)
                != NGX_OK)
            {
                goto failed;
            }

            if (ngx_teleclinic_date_parse(s.data, s.len, &req->due)
                != NGX_OK)
            {
                ngx_teleclinic_error(err, 422, "invalid_field",
                                     "due must be a date, YYYY-MM-DD", "due");
                goto failed;
            }

            req->has_due = 1;
        }

        break;

    case NGX_TELECLINIC_BODY_ADDENDUM:
        if (ngx_teleclinic_request_string(req->root, "text", 1,
                                          NGX_TELECLINIC_NOTE_MAX,
                                          NGX_TELECLINIC_TEXT, &req->text[0],
                                          err)
            != NGX_OK)
        {
            goto failed;
        }

        break;

    case NGX_TELECLINIC_BODY_RATING:
        if (ngx_teleclinic_request_number(req->root, "score", 1, 5, 1,
                                          &req->num[0], err)
               != NGX_OK
            || ngx_teleclinic_request_string(req->root, "comment", 0,
                                             NGX_TELECLINIC_ITEM_NOTE_MAX,
                                             NGX_TELECLINIC_TEXT,
                                             &req->text[0], err)
               != NGX_OK)
        {
            goto failed;
        }

        break;

    default:
        ngx_teleclinic_error(err, 422, "invalid_body", "unknown request",
                             NULL);
        goto failed;
    }

    return NGX_OK;

failed:

    json_decref(req->root);
    req->root = NULL;

    return NGX_ERROR;
}


static ngx_int_t
ngx_teleclinic_request_number(json_t *obj, const char *key, ngx_uint_t min,
    ngx_uint_t max, ngx_uint_t required, ngx_uint_t *value,
    ngx_teleclinic_error_t *err)
{
    json_t      *v;
    json_int_t   n;

    *value = 0;

    v = json_object_get(obj, key);

    if (v == NULL || json_is_null(v)) {
        if (required) {
            ngx_teleclinic_error(err, 422, "missing_field",
                                 "a required field is missing", key);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (!json_is_integer(v)) {
        ngx_teleclinic_error(err, 422, "invalid_type",
                             "the field must be an integer", key);
        return NGX_ERROR;
    }

    n = json_integer_value(v);

    if (n < (json_int_t) min || n > (json_int_t) max) {
        ngx_teleclinic_error(err, 422, "invalid_field",
                             "the number is out of range", key);
        return NGX_ERROR;
    }

    *value = (ngx_uint_t) n;

    return NGX_OK;
}


/*
 * A string field of min to max characters, without control characters.
 * NGX_TELECLINIC_TEXT marks a text a doctor or a patient writes: absent
 * or null, it is empty, which only a min of 0 accepts; and its line
 * breaks and tabs are not control characters.  Any other field is
 * required (the caller checks first when it is not) and must not be null.
 */

static ngx_int_t
ngx_teleclinic_request_string(json_t *obj, const char *key, size_t min,
    size_t max, ngx_uint_t flags, ngx_str_t *value,
    ngx_teleclinic_error_t *err)
{
    size_t       n;
    json_t      *v;
    ngx_uint_t   control;

    value->len = 0;
    value->data = NULL;

    v = json_object_get(obj, key);

    if (v == NULL
        || ((flags & NGX_TELECLINIC_TEXT) && json_is_null(v)))
    {
        if (min > 0 || !(flags & NGX_TELECLINIC_TEXT)) {
            ngx_teleclinic_error(err, 422, "missing_field",
                                 "a required field is missing", key);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (!json_is_string(v)) {
        ngx_teleclinic_error(err, 422, "invalid_type",
                             "the field must be a string", key);
        return NGX_ERROR;
    }

    value->data = (u_char *) json_string_value(v);
    value->len = json_string_length(v);

    n = ngx_teleclinic_string_chars(value, flags & NGX_TELECLINIC_TEXT,
                                    &control);

    if (n < min || n > max) {
        ngx_teleclinic_error(err, 422, "invalid_length",
                             "the field is empty or too long", key);
        return NGX_ERROR;
    }

    if (control) {
        ngx_teleclinic_error(err, 422, "invalid_characters",
                             "the field contains control characters", key);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The characters of a string (jansson has checked UTF-8; limits count
 * characters, not bytes), and in *control whether it holds a control
 * character (NUL included): C0, DEL, and C1 (U+0080 to U+009F, which
 * UTF-8 spells 0xc2 0x80-0x9f); line breaks and tabs only unless text.
 * One pass: a note's five texts are most of its PUT's body.
 */

static size_t
ngx_teleclinic_string_chars(ngx_str_t *s, ngx_uint_t text,
    ngx_uint_t *control)
{
    u_char  *p, *last, c;
    size_t   n;

    n = 0;
    *control = 0;

    p = s->data;
    last = p + s->len;

    while (p < last) {
        c = *p++;

        if (c >= 0x20 && c < 0x7f) {
            n++;
            continue;
        }

        if ((c & 0xc0) != 0x80) {
            n++;
        }

        if (c < 0x20) {
            if (!text || (c != '\n' && c != '\r' && c != '\t')) {
                *control = 1;
            }

        } else if (c == 0x7f
                   || (c == 0xc2 && p < last && *p >= 0x80 && *p <= 0x9f))
        {
            *control = 1;
        }
    }

    return n;
}


/*
 * A name is shown to the doctor, in lists and in messages: it may not
 * turn the direction of the text around it (the embeddings, overrides
 * and isolates, and the invisible marks, which a name shown in its own
 * element does not need), and it must show at least one character that
 * is not a space or an invisible format character.  Joiners stay allowed
 * within a name (Persian and Indic names need them).
 */

static ngx_int_t
ngx_teleclinic_name_valid(ngx_str_t *s)
{
    u_char      *p, *last;
    uint32_t     c;
    ngx_uint_t   visible;

    p = s->data;
    last = s->data + s->len;
    visible = 0;

    while (p < last) {
        c = ngx_teleclinic_utf8_next(&p, last);

        if ((c >= 0x202a && c <= 0x202e)         /* LRE RLE PDF LRO RLO */
            || (c >= 0x2066 && c <= 0x2069)      /* LRI RLI FSI PDI */
            || c == 0x200e || c == 0x200f        /* LRM RLM */
            || c == 0x061c                       /* ALM */
            || (c >= 0x80 && c <= 0x9f)          /* C1 */
            || c == 0xffffffff)
        {
            return NGX_ERROR;
        }

        if (c == 0x20 || c == 0xa0 || c == 0x1680      /* spaces */
            || (c >= 0x2000 && c <= 0x200a)
            || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f
            || c == 0x3000
            || c == 0xad || c == 0x34f                 /* invisible */
            || c == 0x115f || c == 0x1160 || c == 0x3164 || c == 0xffa0
            || c == 0x17b4 || c == 0x17b5
            || (c >= 0x180b && c <= 0x180f)
            || (c >= 0x200b && c <= 0x200d)
            || (c >= 0x2060 && c <= 0x2064)
            || (c >= 0x206a && c <= 0x206f)
            || (c >= 0xfe00 && c <= 0xfe0f)
            || c == 0xfeff
            || (c >= 0xfff9 && c <= 0xfffb)
            || (c >= 0x1bca0 && c <= 0x1bca3)
            || (c >= 0x1d173 && c <= 0x1d17a)
            || (c >= 0xe0000 && c <= 0xe0fff))         /* tags, VS */
        {
            continue;
        }

        visible = 1;
    }

    return visible ? NGX_OK : NGX_ERROR;
}


/* the next code point of valid UTF-8; 0xffffffff for a broken sequence */

static uint32_t
ngx_teleclinic_utf8_next(u_char **p, u_char *last)
{
    u_char     *s;
    size_t      n, i;
    uint32_t    c;

    s = *p;
    c = *s++;

    if (c < 0x80) {
        *p = s;
        return c;
    }

    if (c >= 0xf0) {
        n = 3;
        c &= 0x07;

    } else if (c >= 0xe0) {
        n = 2;
        c &= 0x0f;

    } else if (c >= 0xc0) {
        n = 1;
        c &= 0x1f;

    } else {
        *p = s;
        return 0xffffffff;
    }

    for (i = 0; i < n; i++) {
        if (s == last || (*s & 0xc0) != 0x80) {
            *p = s;
            return 0xffffffff;
        }

        c = (c << 6) | (*s++ & 0x3f);
    }

    *p = s;

    return c;
}


/* "+", then 7 to 15 digits, with spaces, dashes, dots or parentheses */

static ngx_int_t
ngx_teleclinic_phone_valid(ngx_str_t *s)
{
    size_t      i;
    ngx_uint_t  digits;

    if (s->len == 0 || s->data[0] != '+') {
        return NGX_ERROR;
    }

    digits = 0;

    for (i = 1; i < s->len; i++) {
        if (s->data[i] >= '0' && s->data[i] <= '9') {
            digits++;
            continue;
        }

        if (s->data[i] != ' ' && s->data[i] != '-' && s->data[i] != '.'
            && s->data[i] != '(' && s->data[i] != ')')
        {
            return NGX_ERROR;
        }
    }

    return (digits >= 7 && digits <= 15) ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_teleclinic_id_valid(u_char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > NGX_TELECLINIC_ID_MAX) {
        return NGX_ERROR;
    }

    for (i = 0; i < len; i++) {
        if ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9')
            || (p[i] == '-' && i > 0 && i < len - 1))
        {
            continue;
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_teleclinic_digits(u_char *p, size_t n, ngx_uint_t *v)
{
    size_t  i;

    *v = 0;

    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return NGX_ERROR;
        }

        *v = *v * 10 + (p[i] - '0');
    }

    return NGX_OK;
}


static ngx_int_t
ngx_teleclinic_date_valid(ngx_teleclinic_date_t *date)
{
    ngx_uint_t  days;

    static ngx_uint_t  mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
                                   30, 31 };

    if (date->year < 2000 || date->year > 2199
        || date->month < 1 || date->month > 12 || date->day < 1)
    {
        return NGX_ERROR;
    }

    days = mdays[date->month - 1];

    if (date->month == 2
        && date->year % 4 == 0
        && (date->year % 100 != 0 || date->year % 400 == 0))
    {
        days = 29;
    }

    return date->day <= days ? NGX_OK : NGX_ERROR;
}


/* YYYY-MM-DD */

ngx_int_t
ngx_teleclinic_date_parse(u_char *p, size_t len, ngx_teleclinic_date_t *date)
{
    if (len != 10 || p[4] != '-' || p[7] != '-') {
        return NGX_ERROR;
    }

    if (ngx_teleclinic_digits(p, 4, &date->year) != NGX_OK
        || ngx_teleclinic_digits(p + 5, 2, &date->month) != NGX_OK
        || ngx_teleclinic_digits(p + 8, 2, &date->day) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_teleclinic_date_valid(date);
}


/* doctor.YYYYMMDD.HHMM */

ngx_int_t
ngx_teleclinic_slot_id_parse(u_char *p, size_t len, ngx_str_t *doctor,
    ngx_teleclinic_date_t *date, ngx_uint_t *minute)
{
    ngx_uint_t  h, m;

    if (len < sizeof("x.YYYYMMDD.HHMM") - 1) {
        return NGX_ERROR;
    }

    doctor->data = p;
    doctor->len = len - (sizeof(".YYYYMMDD.HHMM") - 1);

    p += doctor->len;

    if (p[0] != '.' || p[9] != '.') {
        return NGX_ERROR;
    }

    if (ngx_teleclinic_id_valid(doctor->data, doctor->len) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_teleclinic_digits(p + 1, 4, &date->year) != NGX_OK
        || ngx_teleclinic_digits(p + 5, 2, &date->month) != NGX_OK
        || ngx_teleclinic_digits(p + 7, 2, &date->day) != NGX_OK
        || ngx_teleclinic_digits(p + 10, 2, &h) != NGX_OK
        || ngx_teleclinic_digits(p + 12, 2, &m) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (h > 23 || m > 59) {
        return NGX_ERROR;
    }

    *minute = h * 60 + m;

    return ngx_teleclinic_date_valid(date);
}


ngx_int_t
ngx_teleclinic_appt_id_parse(u_char *p, size_t len, uint64_t *id)
{
    size_t    i;
    u_char    c;
    uint64_t  v;

    if (len != NGX_TELECLINIC_APPT_ID_LEN) {
        return NGX_ERROR;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            v = (v << 4) | (c - '0');

        } else if (c >= 'a' && c <= 'f') {
            v = (v << 4) | (c - 'a' + 10);

        } else {
            return NGX_ERROR;
        }
    }

    *id = v;

    return NGX_OK;
}


u_char *
ngx_teleclinic_appt_id_print(u_char *p, uint64_t id)
{
    ngx_int_t  i;

    static u_char  hex[] = "0123456789abcdef";

    for (i = NGX_TELECLINIC_APPT_ID_LEN - 1; i >= 0; i--) {
        p[i] = hex[id & 0xf];
        id >>= 4;
    }

    return p + NGX_TELECLINIC_APPT_ID_LEN;
}


/*
 * A string as JSON text, quotes included, escaped by jansson; NULL when
 * it does not fit before "last" or is not UTF-8.
 */

u_char *
ngx_teleclinic_json_string(u_char *p, u_char *last, u_char *data, size_t len)
{
    size_t   n;
    json_t  *s;

    if (p == NULL) {
        return NULL;
    }

    s = json_stringn(len ? (const char *) data : "", len);
    if (s == NULL) {
        return NULL;
    }

    n = json_dumpb(s, (char *) p, last - p, JSON_ENCODE_ANY);
    json_decref(s);

    if (n == 0 || n > (size_t) (last - p)) {
        return NULL;
    }

    return p + n;
}


/* ,"key":"escaped value"; NULL when it does not fit */

u_char *
ngx_teleclinic_json_field(u_char *p, u_char *last, const char *key,
    ngx_str_t *value)
{
    size_t  n;

    if (p == NULL) {
        return NULL;
    }

    n = ngx_strlen(key);

    if ((size_t) (last - p) < n + 4) {
        return NULL;
    }

    *p++ = ',';
    *p++ = '"';
    p = ngx_cpymem(p, key, n);
    *p++ = '"';
    *p++ = ':';

    return ngx_teleclinic_json_string(p, last, value->data, value->len);
}


ngx_int_t
ngx_teleclinic_arg(u_char *args, size_t len, char *name, ngx_str_t *value)
{
    u_char  *p, *last, *end;
    size_t   n;

    n = ngx_strlen(name);
    p = args;
    last = args + len;

    while (p < last) {
        end = ngx_strlchr(p, last, '&');

        if (end == NULL) {
            end = last;
        }

        if ((size_t) (end - p) > n && p[n] == '='
            && ngx_strncmp(p, name, n) == 0)
        {
            value->data = p + n + 1;
            value->len = end - value->data;
            return NGX_OK;
        }

        p = end + 1;
    }

    return NGX_DECLINED;
}
