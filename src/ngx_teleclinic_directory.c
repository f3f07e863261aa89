
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <openssl/evp.h>
#include <jansson.h>
#include "ngx_teleclinic_directory.h"
#include "ngx_teleclinic_zone.h"
#include "ngx_teleclinic_journal.h"
#include "ngx_teleclinic_request.h"
#include "ngx_teleclinic_kdf.h"


static ngx_int_t ngx_teleclinic_directory_string(ngx_pool_t *pool,
    json_t *obj, const char *key, ngx_uint_t required, ngx_str_t *value);
static ngx_int_t ngx_teleclinic_doctor_parse(ngx_teleclinic_directory_t *dir,
    json_t *obj, ngx_teleclinic_doctor_t *doctor, const char **err);
static ngx_int_t ngx_teleclinic_schedule_parse(ngx_pool_t *pool,
    json_t *schedule, ngx_teleclinic_doctor_t *doctor, const char **err);
static ngx_int_t ngx_teleclinic_hhmm_parse(json_t *v, ngx_uint_t *minute);
static time_t ngx_teleclinic_local_time(ngx_teleclinic_date_t *date,
    ngx_uint_t minute, ngx_uint_t *wday);
static time_t ngx_teleclinic_days(ngx_teleclinic_date_t *date);
static u_char *ngx_teleclinic_date_print(u_char *p, ngx_tm_t *tm);
static u_char *ngx_teleclinic_clock_print(u_char *p, time_t sec);


static const char  *ngx_teleclinic_weekdays[] = {
    "sun", "mon", "tue", "wed", "thu", "fri", "sat"
};


ngx_int_t
ngx_teleclinic_directory_parse(ngx_teleclinic_directory_t *dir, u_char *text,
    size_t len, const char **err)
{
    size_t                        i, j;
    json_t                       *root, *list, *item;
    json_error_t                  jerr;
    ngx_teleclinic_doctor_t      *doctor;
    ngx_teleclinic_department_t  *dept, *depts;

    root = json_loadb((const char *) text, len, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL) {
        *err = "the directory is not valid JSON";
        return NGX_ERROR;
    }

    list = json_object_get(root, "departments");

    if (!json_is_array(list)) {
        *err = "\"departments\" must be an array";
        goto failed;
    }

    if (ngx_array_init(&dir->departments, dir->pool,
                       json_array_size(list) + 1,
                       sizeof(ngx_teleclinic_department_t))
        != NGX_OK)
    {
        *err = "out of memory";
        goto failed;
    }

    json_array_foreach(list, i, item) {
        dept = ngx_array_push(&dir->departments);
        if (dept == NULL) {
            *err = "out of memory";
            goto failed;
        }

        if (!json_is_object(item)
            || ngx_teleclinic_directory_string(dir->pool, item, "id", 1,
                                               &dept->id) != NGX_OK
            || ngx_teleclinic_directory_string(dir->pool, item, "name", 1,
                                               &dept->name) != NGX_OK
            || ngx_teleclinic_id_valid(dept->id.data, dept->id.len) != NGX_OK)
        {
            *err = "a department needs an \"id\" (a-z, 0-9, -) "
                   "and a \"name\"";
            goto failed;
        }

        depts = dir->departments.elts;

        for (j = 0; j < dir->departments.nelts - 1; j++) {
            if (depts[j].id.len == dept->id.len
                && ngx_strncmp(depts[j].id.data, dept->id.data,
                               dept->id.len) == 0)
            {
                *err = "two departments have the same id";
                goto failed;
            }
        }
    }

    list = json_object_get(root, "doctors");

    if (!json_is_array(list)) {
        *err = "\"doctors\" must be an array";
        goto failed;
    }

    if (ngx_array_init(&dir->doctors, dir->pool, json_array_size(list) + 1,
                       sizeof(ngx_teleclinic_doctor_t))
        != NGX_OK)
    {
        *err = "out of memory";
        goto failed;
    }

    json_array_foreach(list, i, item) {
        doctor = ngx_array_push(&dir->doctors);
        if (doctor == NULL) {
            *err = "out of memory";
            goto failed;
        }

        dir->doctors.nelts--;

        if (ngx_teleclinic_doctor_parse(dir, item, doctor, err) != NGX_OK) {
            goto failed;
        }

        if (ngx_teleclinic_doctor_find(dir, &doctor->id) != NULL) {
            *err = "two doctors have the same id";
            goto failed;
        }

        dir->doctors.nelts++;
    }

    json_decref(root);

    return NGX_OK;

failed:

    json_decref(root);

    return NGX_ERROR;
}


static ngx_int_t
ngx_teleclinic_doctor_parse(ngx_teleclinic_directory_t *dir, json_t *obj,
    ngx_teleclinic_doctor_t *doctor, const char **err)
{
    ngx_memzero(doctor, sizeof(ngx_teleclinic_doctor_t));

    if (!json_is_object(obj)
        || ngx_teleclinic_directory_string(dir->pool, obj, "id", 1,
                                           &doctor->id) != NGX_OK
        || ngx_teleclinic_directory_string(dir->pool, obj, "name", 1,
                                           &doctor->name) != NGX_OK
        || ngx_teleclinic_directory_string(dir->pool, obj, "department", 1,
                                           &doctor->department) != NGX_OK
        || ngx_teleclinic_directory_string(dir->pool, obj, "password", 0,
                                           &doctor->password) != NGX_OK
        || ngx_teleclinic_id_valid(doctor->id.data, doctor->id.len) != NGX_OK)
    {
        *err = "a doctor needs an \"id\" (a-z, 0-9, -), a \"name\" "
               "and a \"department\"";
        return NGX_ERROR;
    }

    if (ngx_teleclinic_department_find(dir, &doctor->department) == NULL) {
        *err = "a doctor's department is not in \"departments\"";
        return NGX_ERROR;
    }

    if (doctor->password.len
        && ngx_teleclinic_password_parse(&doctor->password, NULL) != NGX_OK)
    {
        *err = "a doctor's \"password\" must be a hash "
               "\"scrypt$N$r$p$salt$hash\" (bin/teleclinic-passwd)";
        return NGX_ERROR;
    }

    return ngx_teleclinic_schedule_parse(dir->pool,
                                         json_object_get(obj, "schedule"),
                                         doctor, err);
}


/*
 * "schedule": {"slot_minutes": 20,
 *              "hours": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]]},
 *              "days_off": ["2026-12-24"]}
 */

static ngx_int_t
ngx_teleclinic_schedule_parse(ngx_pool_t *pool, json_t *schedule,
    ngx_teleclinic_doctor_t *doctor, const char **err)
{
    size_t                   i, n;
    json_t                  *v, *hours, *list, *range;
    ngx_uint_t               d, *day;
    json_int_t               minutes;
    ngx_teleclinic_date_t    date;
    ngx_teleclinic_hours_t  *h;

    if (!json_is_object(schedule)) {
        *err = "a doctor needs a \"schedule\" object";
        return NGX_ERROR;
    }

    v = json_object_get(schedule, "slot_minutes");
    minutes = json_is_integer(v) ? json_integer_value(v) : 0;

    if (minutes < 5 || minutes > 240 || 24 * 60 % minutes) {
        *err = "\"slot_minutes\" must divide a day, from 5 to 240";
        return NGX_ERROR;
    }

    doctor->slot_minutes = (ngx_uint_t) minutes;

    hours = json_object_get(schedule, "hours");

    if (!json_is_object(hours)) {
        *err = "a schedule needs \"hours\" by weekday";
        return NGX_ERROR;
    }

    for (d = 0; d < 7; d++) {
        if (ngx_array_init(&doctor->hours[d], pool, 2,
                           sizeof(ngx_teleclinic_hours_t))
            != NGX_OK)
        {
            *err = "out of memory";
            return NGX_ERROR;
        }

        list = json_object_get(hours, ngx_teleclinic_weekdays[d]);

        if (list == NULL) {
            continue;
        }

        if (!json_is_array(list)) {
            *err = "the hours of a weekday must be an array of ranges";
            return NGX_ERROR;
        }

        json_array_foreach(list, i, range) {
            h = ngx_array_push(&doctor->hours[d]);
            if (h == NULL) {
                *err = "out of memory";
                return NGX_ERROR;
            }

            if (!json_is_array(range) || json_array_size(range) != 2
                || ngx_teleclinic_hhmm_parse(json_array_get(range, 0),
                                             &h->from) != NGX_OK
                || ngx_teleclinic_hhmm_parse(json_array_get(range, 1),
                                             &h->to) != NGX_OK
                || h->from >= h->to
                || (i > 0 && h->from < h[-1].to))
            {
                *err = "working hours must be ordered [\"HH:MM\", \"HH:MM\"] "
                       "ranges";
                return NGX_ERROR;
            }
        }
    }

    list = json_object_get(schedule, "days_off");
    n = json_is_array(list) ? json_array_size(list) : 0;

    if (list != NULL && !json_is_array(list)) {
        *err = "\"days_off\" must be an array of dates";
        return NGX_ERROR;
    }

    if (ngx_array_init(&doctor->days_off, pool, n + 1, sizeof(ngx_uint_t))
        != NGX_OK)
    {
        *err = "out of memory";
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        v = json_array_get(list, i);

        if (!json_is_string(v)
            || ngx_teleclinic_date_parse((u_char *) json_string_value(v),
                                         json_string_length(v), &date)
               != NGX_OK)
        {
            *err = "\"days_off\" must hold dates as YYYY-MM-DD";
            return NGX_ERROR;
        }

        day = ngx_array_push(&doctor->days_off);
        if (day == NULL) {
            *err = "out of memory";
            return NGX_ERROR;
        }

        *day = date.year * 10000 + date.month * 100 + date.day;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_teleclinic_hhmm_parse(json_t *v, ngx_uint_t *minute)
{
    const char  *p;

    if (!json_is_string(v) || json_string_length(v) != 5) {
        return NGX_ERROR;
    }

    p = json_string_value(v);

    if (p[2] != ':'
        || p[0] < '0' || p[0] > '2' || p[1] < '0' || p[1] > '9'
        || p[3] < '0' || p[3] > '5' || p[4] < '0' || p[4] > '9')
    {
        return NGX_ERROR;
    }

    *minute = ((p[0] - '0') * 10 + (p[1] - '0')) * 60
              + (p[3] - '0') * 10 + (p[4] - '0');

    /* "24:00" ends a day that is worked until midnight */
    return *minute <= 24 * 60 ? NGX_OK : NGX_ERROR;
}


static ngx_int_t
ngx_teleclinic_directory_string(ngx_pool_t *pool, json_t *obj,
    const char *key, ngx_uint_t required, ngx_str_t *value)
{
    size_t   len;
    json_t  *v;

    v = json_object_get(obj, key);

    if (v == NULL) {
        ngx_str_null(value);
        return required ? NGX_ERROR : NGX_OK;
    }

    len = json_string_length(v);

    if (!json_is_string(v) || len == 0 || len > 512) {
        return NGX_ERROR;
    }

    value->data = ngx_pnalloc(pool, len);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(value->data, json_string_value(v), len);
    value->len = len;

    return NGX_OK;
}


ngx_teleclinic_department_t *
ngx_teleclinic_department_find(ngx_teleclinic_directory_t *dir,
    ngx_str_t *id)
{
    ngx_uint_t                    i;
    ngx_teleclinic_department_t  *dept;

    dept = dir->departments.elts;

    for (i = 0; i < dir->departments.nelts; i++) {
        if (dept[i].id.len == id->len
            && ngx_strncmp(dept[i].id.data, id->data, id->len) == 0)
        {
            return &dept[i];
        }
    }

    return NULL;
}


ngx_teleclinic_doctor_t *
ngx_teleclinic_doctor_find(ngx_teleclinic_directory_t *dir, ngx_str_t *id)
{
    ngx_uint_t                i;
    ngx_teleclinic_doctor_t  *doctor;

    doctor = dir->doctors.elts;

    for (i = 0; i < dir->doctors.nelts; i++) {
        if (doctor[i].id.len == id->len
            && ngx_strncmp(doctor[i].id.data, id->data, id->len) == 0)
        {
            return &doctor[i];
        }
    }

    return NULL;
}


/*
 * Slots follow the local wall clock of the server (nginx keeps TZ, and
 * "env TZ=...;" sets it), so a day with a DST change has the slots its
 * working hours say, each with the offset in force at its start.
 */

ngx_uint_t
ngx_teleclinic_doctor_slots(ngx_teleclinic_doctor_t *doctor,
    ngx_teleclinic_date_t *date, ngx_teleclinic_slot_t *slots)
{
    time_t                   midnight, next, start;
    ngx_uint_t               i, n, m, wday, ymd, regular, *off;
    ngx_teleclinic_hours_t  *h;

    ymd = date->year * 10000 + date->month * 100 + date->day;
    off = doctor->days_off.elts;

    for (i = 0; i < doctor->days_off.nelts; i++) {
        if (off[i] == ymd) {
            return 0;
        }
    }

    midnight = ngx_teleclinic_local_time(date, 0, &wday);
    next = ngx_teleclinic_local_time(date, 24 * 60, NULL);

    /* on a day without a clock change, every slot follows from midnight */
    regular = (midnight != (time_t) -1 && next - midnight == 86400);

    h = doctor->hours[wday].elts;
    n = 0;

    for (i = 0; i < doctor->hours[wday].nelts; i++) {
        for (m = h[i].from;
             m + doctor->slot_minutes <= h[i].to
             && n < NGX_TELECLINIC_SLOTS_MAX;
             m += doctor->slot_minutes)
        {
            start = regular ? midnight + (time_t) m * 60
                            : ngx_teleclinic_local_time(date, m, NULL);

            if (start == (time_t) -1) {
                /* the hour skipped when clocks go forward */
                continue;
            }

            slots[n].start = start;
            slots[n].end = start + doctor->slot_minutes * 60;
            slots[n].minute = m;
            n++;
        }
    }

    return n;
}


/* one slot by its time of day, for a booking: NGX_DECLINED if none */

ngx_int_t
ngx_teleclinic_doctor_slot(ngx_teleclinic_doctor_t *doctor,
    ngx_teleclinic_date_t *date, ngx_uint_t minute,
    ngx_teleclinic_slot_t *slot)
{
    time_t                   start;
    ngx_uint_t               i, wday, ymd, *off;
    ngx_teleclinic_hours_t  *h;

    ymd = date->year * 10000 + date->month * 100 + date->day;
    off = doctor->days_off.elts;

    for (i = 0; i < doctor->days_off.nelts; i++) {
        if (off[i] == ymd) {
            return NGX_DECLINED;
        }
    }

    start = ngx_teleclinic_local_time(date, minute, &wday);

    if (start == (time_t) -1) {
        return NGX_DECLINED;
    }

    h = doctor->hours[wday].elts;

    for (i = 0; i < doctor->hours[wday].nelts; i++) {
        if (minute >= h[i].from
            && minute + doctor->slot_minutes <= h[i].to
            && (minute - h[i].from) % doctor->slot_minutes == 0)
        {
            slot->start = start;
            slot->end = slot->start + doctor->slot_minutes * 60;
            slot->minute = minute;

            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* the first and the last moment of a local day, 23 to 25 hours apart */

void
ngx_teleclinic_day_bounds(ngx_teleclinic_date_t *date, time_t *from,
    time_t *to)
{
    *to = ngx_teleclinic_local_time(date, 24 * 60, NULL);
    *from = ngx_teleclinic_local_time(date, 0, NULL);

    if (*from == (time_t) -1) {
        /* clocks went forward at midnight: the day began an hour later */
        *from = *to - 23 * 3600;
    }
}


/*
 * The moment a local wall-clock time happens, or -1 when it does not (the
 * hour skipped when clocks go forward).  mktime() would do, but glibc's
 * reads the time zone file's status on every call; localtime_r() does not.
 */

static time_t
ngx_teleclinic_local_time(ngx_teleclinic_date_t *date, ngx_uint_t minute,
    ngx_uint_t *wday)
{
    time_t    t, wall, days;
    ngx_tm_t  tm;

    days = ngx_teleclinic_days(date);

    if (wday) {
        /* 1970-01-01 was a Thursday; Sunday first, as in struct tm */
        *wday = (days + 4) % 7;
    }

    /* the wall time read as UTC, less the offset in force then */

    wall = days * 86400 + (time_t) minute * 60;

    ngx_libc_localtime(wall, &tm);
    t = wall - tm.tm_gmtoff;

    ngx_libc_localtime(t, &tm);

    if (wall - tm.tm_gmtoff != t) {
        t = wall - tm.tm_gmtoff;
        ngx_libc_localtime(t, &tm);
    }

    if (minute < 24 * 60
        && (ngx_uint_t) (tm.tm_hour * 60 + tm.tm_min) != minute)
    {
        return -1;
    }

    return t;
}


/* days since 1970-01-01 of a date of the Gregorian calendar */

static time_t
ngx_teleclinic_days(ngx_teleclinic_date_t *date)
{
    time_t      y, era, yoe, doy, doe;
    ngx_uint_t  m;

    y = date->year - (date->month <= 2);
    m = date->month;

    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + date->day - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


void
ngx_teleclinic_date_of(time_t t, ngx_teleclinic_date_t *date)
{
    ngx_tm_t  tm;

    ngx_libc_localtime(t, &tm);

    date->year = tm.tm_year + 1900;
    date->month = tm.tm_mon + 1;
    date->day = tm.tm_mday;
}


/* n as exactly "width" decimal digits; ngx_sprintf() is slow for this */

static u_char *
ngx_teleclinic_digits(u_char *p, ngx_uint_t n, ngx_uint_t width)
{
    u_char  *q;

    /* two digits at a time: a slot listing prints thousands of them */
    static u_char  pairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233"
        "34353637383940414243444546474849505152535455565758596061626364656667"
        "68697071727374757677787980818283848586878889909192939495969798"
        "99";

    q = p + width;

    while (q - p >= 2) {
        q -= 2;
        q[0] = pairs[n % 100 * 2];
        q[1] = pairs[n % 100 * 2 + 1];
        n /= 100;
    }

    if (q > p) {
        *--q = (u_char) ('0' + n % 10);
    }

    return p + width;
}


u_char *
ngx_teleclinic_slot_id_print(u_char *p, ngx_str_t *doctor,
    ngx_teleclinic_date_t *date, ngx_uint_t minute)
{
    p = ngx_cpymem(p, doctor->data, doctor->len);
    *p++ = '.';
    p = ngx_teleclinic_digits(p, date->year, 4);
    p = ngx_teleclinic_digits(p, date->month, 2);
    p = ngx_teleclinic_digits(p, date->day, 2);
    *p++ = '.';
    p = ngx_teleclinic_digits(p, minute / 60, 2);
    return ngx_teleclinic_digits(p, minute % 60, 2);
}


u_char *
ngx_teleclinic_time_print(u_char *p, time_t t)
{
    time_t      sec;
    ngx_tm_t    tm, last;
    ngx_int_t   off;
    ngx_uint_t  sign;

    /*
     * localtime_r() costs more than the rest of a slot's JSON; the times
     * of one answer fall on a day or two, and within a day whose offset
     * does not change, the date and the offset are the same text
     */
    static time_t  day_start = 1, day_end = 0;
    static u_char  date[sizeof("YYYY-MM-DDT") - 1];
    static u_char  zone[sizeof("+HH:MM") - 1];

    if (t < day_start || t >= day_end) {
        ngx_libc_localtime(t, &tm);

        sec = tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
        ngx_libc_localtime(t - sec + 86399, &last);

        off = tm.tm_gmtoff / 60;
        sign = '+';

        if (off < 0) {
            sign = '-';
            off = -off;
        }

        if (last.tm_mday != tm.tm_mday || last.tm_gmtoff != tm.tm_gmtoff
            || last.tm_hour != 23 || last.tm_min != 59 || last.tm_sec != 59)
        {
            /* a day with a clock change: no shortcut */
            p = ngx_teleclinic_date_print(p, &tm);
            p = ngx_teleclinic_clock_print(p, sec);
            *p++ = (u_char) sign;
            p = ngx_teleclinic_digits(p, off / 60, 2);
            *p++ = ':';
            return ngx_teleclinic_digits(p, off % 60, 2);
        }

        ngx_teleclinic_date_print(date, &tm);

        zone[0] = (u_char) sign;
        ngx_teleclinic_digits(&zone[1], off / 60, 2);
        zone[3] = ':';
        ngx_teleclinic_digits(&zone[4], off % 60, 2);

        day_start = t - sec;
        day_end = day_start + 86400;
    }

    p = ngx_cpymem(p, date, sizeof(date));
    p = ngx_teleclinic_clock_print(p, t - day_start);

    return ngx_cpymem(p, zone, sizeof(zone));
}


/* "YYYY-MM-DDT" */

static u_char *
ngx_teleclinic_date_print(u_char *p, ngx_tm_t *tm)
{
    p = ngx_teleclinic_digits(p, tm->tm_year + 1900, 4);
    *p++ = '-';
    p = ngx_teleclinic_digits(p, tm->tm_mon + 1, 2);
    *p++ = '-';
    p = ngx_teleclinic_digits(p, tm->tm_mday, 2);
    *p++ = 'T';

    return p;
}


/* "HH:MM:SS" of a second of the day */

static u_char *
ngx_teleclinic_clock_print(u_char *p, time_t sec)
{
    p = ngx_teleclinic_digits(p, sec / 3600, 2);
    *p++ = ':';
    p = ngx_teleclinic_digits(p, sec / 60 % 60, 2);
    *p++ = ':';

    return ngx_teleclinic_digits(p, sec % 60, 2);
}


/*
 * The directory file is one more writer of the directory: at start and
 * on reload, a file whose content changed since it was last applied
 * replaces the directory; changes made through the admin API stay until
 * then.
 */

ngx_int_t
ngx_teleclinic_directory_check(ngx_cycle_t *cycle, ngx_teleclinic_zone_t *zone)
{
    u_char                      *text, hash[32];
    size_t                       len;
    ssize_t                      n;
    ngx_fd_t                     fd;
    ngx_int_t                    rc;
    ngx_file_info_t              fi;
    const char                  *err;
    ngx_teleclinic_directory_t   dir;

    zone->directory = NULL;

    if (zone->directory_file.len == 0) {
        return NGX_OK;
    }

    fd = ngx_open_file(zone->directory_file.data, NGX_FILE_RDONLY,
                       NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      ngx_open_file_n " \"%s\" failed",
                      zone->directory_file.data);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > NGX_TELECLINIC_DIRECTORY_MAX)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "teleclinic: the directory \"%s\" is not a file of "
                      "at most 128k", zone->directory_file.data);
        goto failed;
    }

    len = ngx_file_size(&fi);

    text = ngx_pnalloc(cycle->pool, len + 1);
    if (text == NULL) {
        goto failed;
    }

    n = read(fd, text, len);

    if (n != (ssize_t) len) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "teleclinic: reading \"%s\" failed",
                      zone->directory_file.data);
        goto failed;
    }

    ngx_close_file(fd);

    EVP_Digest(text, len, hash, NULL, EVP_sha256(), NULL);

    if (zone->sh->directory
        && ngx_memcmp(hash, zone->sh->directory_file_hash, 32) == 0)
    {
        return NGX_OK;
    }

    dir.pool = ngx_create_pool(4096, cycle->log);
    if (dir.pool == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_teleclinic_directory_parse(&dir, text, len, &err);

    ngx_destroy_pool(dir.pool);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "teleclinic: invalid directory \"%s\": %s",
                      zone->directory_file.data, err);
        return NGX_ERROR;
    }

    zone->directory = text;
    zone->directory_len = len;
    ngx_memcpy(zone->directory_hash, hash, 32);

    return NGX_OK;

failed:

    ngx_close_file(fd);

    return NGX_ERROR;
}


/*
 * From init_module, once the new cycle cannot fail any more: a reload
 * whose configuration is then refused leaves the directory as it was.
 */

ngx_int_t
ngx_teleclinic_directory_seed(ngx_cycle_t *cycle, ngx_teleclinic_zone_t *zone)
{
    ngx_int_t                rc;
    ngx_teleclinic_event_t   ev;

    if (zone->directory == NULL) {
        return NGX_OK;
    }

    ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
    ev.op = NGX_TELECLINIC_EV_DIRECTORY;
    ev.at = ngx_time();
    ev.directory.data = zone->directory;
    ev.directory.len = zone->directory_len;
    ngx_memcpy(ev.hash, zone->directory_hash, 32);

    ngx_teleclinic_zone_lock(zone);
    rc = ngx_teleclinic_journal_commit(zone, &ev, cycle->log);
    ngx_teleclinic_zone_unlock(zone);

    zone->directory = NULL;

    if (rc != NGX_OK
        || (zone->journal->fsync && fdatasync(zone->journal->fd) == -1))
    {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "teleclinic: storing the directory \"%s\" failed",
                      zone->directory_file.data);

        /* on a reload nginx goes on: the workers keep the directory */
        return zone->made ? NGX_ERROR : NGX_OK;
    }

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "teleclinic: directory loaded from \"%s\"",
                  zone->directory_file.data);

    return NGX_OK;
}
