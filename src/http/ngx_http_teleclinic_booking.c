
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/rand.h>
#include <jansson.h>
#include "ngx_http_teleclinic_util.h"
#include "ngx_http_teleclinic_booking.h"
#include "ngx_http_teleclinic_notify.h"
#include "ngx_teleclinic_token.h"


/* the answer of a change: the appointment as the change left it */
typedef struct {
    ngx_teleclinic_appt_t         appt;
    ngx_uint_t                    access;
} ngx_http_teleclinic_changed_t;


static ngx_int_t ngx_http_teleclinic_authorize(ngx_http_request_t *r,
    uint64_t id, int64_t *version);
static ngx_int_t ngx_http_teleclinic_current(int64_t version,
    ngx_teleclinic_appt_t *appt);
static u_char *ngx_http_teleclinic_appt_text(ngx_http_request_t *r,
    u_char *p, u_char *last, ngx_teleclinic_appt_t *appt, ngx_uint_t patient,
    ngx_uint_t access);
static size_t ngx_http_teleclinic_appt_size(ngx_http_request_t *r,
    ngx_teleclinic_appt_t *appt);
static ngx_int_t ngx_http_teleclinic_change_copy(ngx_http_request_t *r,
    ngx_teleclinic_zone_t *zone, ngx_http_teleclinic_change_t *change);
static ngx_int_t ngx_http_teleclinic_change_format(ngx_http_request_t *r,
    ngx_http_teleclinic_change_t *change, ngx_str_t *text);
static u_char *ngx_http_teleclinic_copy_str(u_char *p, ngx_str_t *dst,
    ngx_str_t *src);
static ngx_int_t ngx_http_teleclinic_claim(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call, ngx_teleclinic_event_t *ev,
    ngx_int_t (*handler)(ngx_http_request_t *r,
        ngx_http_teleclinic_call_t *call));
static void ngx_http_teleclinic_claimed(void *data, ngx_int_t rc);
static ngx_int_t ngx_http_teleclinic_no_redis(ngx_http_request_t *r);
static ngx_int_t ngx_http_teleclinic_find_slot(ngx_http_request_t *r,
    ngx_str_t *slot_id, ngx_teleclinic_slot_t *slot, ngx_str_t *doctor,
    ngx_teleclinic_error_t *err);


/*
 * NGX_OK, or the HTTP status that refuses the caller.  *version is the
 * version of the appointment the patient's token names, -1 for the admin.
 */

static ngx_int_t
ngx_http_teleclinic_authorize(ngx_http_request_t *r, uint64_t id,
    int64_t *version)
{
    uint32_t                          v;
    uint64_t                          subject;
    ngx_int_t                         rc;
    ngx_str_t                         token;
    ngx_teleclinic_token_t            t;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    *version = -1;

    if (ngx_http_teleclinic_is_admin(r) == NGX_OK) {
        return NGX_OK;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    if (ngx_http_teleclinic_bearer(r, &token) != NGX_OK) {
        return NGX_HTTP_UNAUTHORIZED;
    }

    rc = ngx_teleclinic_token_verify(&tmcf->token_secret, &token, ngx_time(),
                                     &t);

    if (rc != NGX_OK
        || ngx_teleclinic_token_appt(&t, &subject, &v) != NGX_OK)
    {
        return NGX_HTTP_UNAUTHORIZED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);
    ngx_str_set(&ctx->actor, "patient");

    if (subject != id) {
        return NGX_HTTP_FORBIDDEN;
    }

    *version = v;

    return NGX_OK;
}


/*
 * A patient's token opens the appointment as it was when the token was
 * given: a cancellation or a reschedule since makes it one more bad
 * token.  With the zone locked.
 */

static ngx_int_t
ngx_http_teleclinic_current(int64_t version, ngx_teleclinic_appt_t *appt)
{
    return version < 0 || (uint32_t) version == appt->version;
}


static ngx_int_t
ngx_http_teleclinic_refuse(ngx_teleclinic_error_t *err, ngx_int_t status)
{
    if (status == NGX_HTTP_UNAUTHORIZED) {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_UNAUTHORIZED,
                                          "unauthorized",
                                          "a valid, unexpired token is "
                                          "required", NULL);
    }

    return ngx_http_teleclinic_reject(err, NGX_HTTP_FORBIDDEN, "forbidden",
                                      "the token is not for this "
                                      "appointment", NULL);
}


/*
 * An appointment as JSON text.  Written directly: it is on the path of
 * every booking; ids and times need no escaping, and jansson escapes the
 * patient's strings and the links.  "access" adds the patient's token and
 * links.  It is made from a copy (ngx_http_teleclinic_appt_copy()), after
 * the zone is unlocked: the token's HMAC and the escaping are the slow
 * part of a booking.
 */

static u_char *
ngx_http_teleclinic_appt_text(ngx_http_request_t *r, u_char *p, u_char *last,
    ngx_teleclinic_appt_t *appt, ngx_uint_t patient, ngx_uint_t access)
{
    u_char                            token[NGX_TELECLINIC_TOKEN_MAX], *t;
    u_char                            subj[NGX_TELECLINIC_APPT_SUBJECT];
    u_char                           *url, *u;
    ngx_tm_t                          tm;
    ngx_str_t                         doctor, subject, base, *status;
    ngx_teleclinic_date_t             date;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    if (p == NULL || last - p < 512) {
        return NULL;
    }

    doctor.data = appt->doctor;
    doctor.len = appt->doctor_len;
    status = &ngx_teleclinic_status_names[appt->status];

    p = ngx_cpymem(p, "{\"id\":\"", 7);
    p = ngx_teleclinic_appt_id_print(p, appt->id);
    p = ngx_sprintf(p, "\",\"status\":\"%V\",\"slot\":\"", status);

    ngx_libc_localtime(appt->start, &tm);
    ngx_teleclinic_date_of(appt->start, &date);
    p = ngx_teleclinic_slot_id_print(p, &doctor, &date,
                                     tm.tm_hour * 60 + tm.tm_min);

    p = ngx_sprintf(p, "\",\"doctor\":\"%V\",\"start\":\"", &doctor);
    p = ngx_teleclinic_time_print(p, appt->start);
    p = ngx_cpymem(p, "\",\"end\":\"", 9);
    p = ngx_teleclinic_time_print(p, appt->end);
    p = ngx_cpymem(p, "\",\"created\":\"", 13);
    p = ngx_teleclinic_time_print(p, appt->created);
    *p++ = '"';

    /* the visit as the waiting room saw it */

    if (appt->arrived) {
        p = ngx_cpymem(p, ",\"arrived\":\"", 12);
        p = ngx_teleclinic_time_print(p, appt->arrived);
        *p++ = '"';
    }

    if (appt->visit_start) {
        p = ngx_cpymem(p, ",\"visit_start\":\"", 16);
        p = ngx_teleclinic_time_print(p, appt->visit_start);
        *p++ = '"';
    }

    if (appt->visit_end) {
        p = ngx_cpymem(p, ",\"visit_end\":\"", 14);
        p = ngx_teleclinic_time_print(p, appt->visit_end);
        *p++ = '"';
    }

    if (patient) {
        p = ngx_cpymem(p, ",\"patient\":{\"name\":", 19);
        p = ngx_teleclinic_json_string(p, last, appt->name.data,
                                       appt->name.len);
        p = ngx_teleclinic_json_field(p, last, "phone", &appt->phone);

        if (p == NULL || last - p < 16) {
            return NULL;
        }

        *p++ = '}';
        p = ngx_teleclinic_json_field(p, last, "reason", &appt->reason);
    }

    if (access) {
        tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

        ngx_teleclinic_token_appt_subject(appt->id, appt->version, subj,
                                          &subject);

        t = ngx_teleclinic_token_issue(&tmcf->token_secret,
                                       NGX_TELECLINIC_TOKEN_PATIENT, &subject,
                                       appt->end + tmcf->token_ttl, token);

        if (p == NULL || t == NULL
            || ngx_http_teleclinic_base_url(r, &base) == NULL
            || last - p < 64 + (t - token))
        {
            return NULL;
        }

        url = ngx_pnalloc(r->pool, base.len + 64 + NGX_TELECLINIC_APPT_ID_LEN
                                   + (t - token));
        if (url == NULL) {
            return NULL;
        }

        p = ngx_cpymem(p, ",\"token\":\"", 10);
        p = ngx_cpymem(p, token, t - token);
        p = ngx_cpymem(p, "\",\"join_url\":", 13);

        u = ngx_http_teleclinic_join_url(tmcf, &base, url, appt->id, token,
                                         t - token);
        p = ngx_teleclinic_json_string(p, last, url, u - url);

        if (p == NULL || last - p < 16) {
            return NULL;
        }

        p = ngx_cpymem(p, ",\"guide_url\":", 13);

        u = ngx_sprintf(url, "%V/guide.html", &base);
        p = ngx_teleclinic_json_string(p, last, url, u - url);
    }

    if (p == NULL || p == last) {
        return NULL;
    }

    *p++ = '}';

    return p;
}


/* room for the text of an appointment: strings escaped at worst */

static size_t
ngx_http_teleclinic_appt_size(ngx_http_request_t *r,
    ngx_teleclinic_appt_t *appt)
{
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    return 1024 + 6 * (appt->name.len + appt->phone.len + appt->reason.len)
           + 12 * (tmcf->public_url.len + 256);
}


/* the answer about one appointment, from a copy of it */

ngx_int_t
ngx_http_teleclinic_appt_answer(ngx_http_request_t *r,
    ngx_teleclinic_appt_t *appt, ngx_uint_t patient, ngx_uint_t access,
    ngx_str_t *text)
{
    u_char  *p, *last;
    size_t   size;

    size = ngx_http_teleclinic_appt_size(r, appt);

    text->data = ngx_pnalloc(r->pool, size);
    if (text->data == NULL) {
        return NGX_ERROR;
    }

    last = text->data + size - 1;

    p = ngx_http_teleclinic_appt_text(r, text->data, last, appt, patient,
                                      access);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *p++ = '\n';
    text->len = p - text->data;

    return NGX_OK;
}


/*
 * A copy of an appointment to answer from once the zone is unlocked: its
 * fields and its strings.  Its tree links and its reminder stay the
 * zone's and are not to be followed.  With the zone locked.
 */

ngx_int_t
ngx_http_teleclinic_appt_copy(ngx_pool_t *pool, ngx_teleclinic_appt_t *appt,
    ngx_teleclinic_appt_t *copy)
{
    u_char  *p;

    *copy = *appt;

    p = ngx_pnalloc(pool, appt->name.len + appt->phone.len
                          + appt->reason.len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    p = ngx_http_teleclinic_copy_str(p, &copy->name, &appt->name);
    p = ngx_http_teleclinic_copy_str(p, &copy->phone, &appt->phone);
    (void) ngx_http_teleclinic_copy_str(p, &copy->reason, &appt->reason);

    return NGX_OK;
}


static u_char *
ngx_http_teleclinic_copy_str(u_char *p, ngx_str_t *dst, ngx_str_t *src)
{
    dst->data = p;
    dst->len = src->len;

    return src->len ? ngx_cpymem(p, src->data, src->len) : p;
}


/* ngx_http_teleclinic_commit()'s copy: the appointment the event changed */

static ngx_int_t
ngx_http_teleclinic_change_copy(ngx_http_request_t *r,
    ngx_teleclinic_zone_t *zone, ngx_http_teleclinic_change_t *change)
{
    ngx_teleclinic_appt_t          *appt;
    ngx_http_teleclinic_changed_t  *changed;

    changed = change->data;

    appt = ngx_teleclinic_appt_lookup(zone, change->event->id);
    if (appt == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_teleclinic_appt_copy(r->pool, appt, &changed->appt);
}


static ngx_int_t
ngx_http_teleclinic_change_format(ngx_http_request_t *r,
    ngx_http_teleclinic_change_t *change, ngx_str_t *text)
{
    ngx_http_teleclinic_changed_t  *changed;

    changed = change->data;

    return ngx_http_teleclinic_appt_answer(r, &changed->appt, 0,
                                           changed->access, text);
}


/*
 * A slot id names a doctor, a day and a time; it is a slot when the
 * doctor's schedule has that time on that day.
 */

static ngx_int_t
ngx_http_teleclinic_find_slot(ngx_http_request_t *r, ngx_str_t *slot_id,
    ngx_teleclinic_slot_t *slot, ngx_str_t *doctor,
    ngx_teleclinic_error_t *err)
{
    ngx_uint_t                        minute;
    ngx_teleclinic_date_t             date;
    ngx_teleclinic_doctor_t          *doc;
    ngx_teleclinic_directory_t       *dir;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    if (ngx_teleclinic_slot_id_parse(slot_id->data, slot_id->len, doctor,
                                     &date, &minute)
        != NGX_OK)
    {
        return ngx_http_teleclinic_reject(err, 422, "invalid_slot",
                                          "slot is not a slot id", "slot");
    }

    dir = ngx_http_teleclinic_directory(tmcf, r->connection->log);
    doc = dir ? ngx_teleclinic_doctor_find(dir, doctor) : NULL;

    if (doc == NULL
        || ngx_teleclinic_doctor_slot(doc, &date, minute, slot) != NGX_OK)
    {
        return ngx_http_teleclinic_reject(err, 422, "unknown_slot",
                                          "there is no such slot", "slot");
    }

    if (slot->start <= ngx_time()) {
        return ngx_http_teleclinic_reject(err, 422, "slot_in_past",
                                          "the slot has already begun",
                                          "slot");
    }

    if (slot->start > ngx_time() + tmcf->horizon) {
        return ngx_http_teleclinic_reject(err, 422, "slot_too_far",
                                          "the slot is beyond the booking "
                                          "horizon", "slot");
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_teleclinic_departments(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    json_t                           *a;
    ngx_uint_t                        i;
    ngx_teleclinic_department_t      *dept;
    ngx_teleclinic_directory_t       *dir;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    dir = ngx_http_teleclinic_directory(tmcf, r->connection->log);
    if (dir == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    a = json_array();
    dept = dir->departments.elts;

    for (i = 0; i < dir->departments.nelts; i++) {
        json_array_append_new(a, json_pack("{s:s%, s:s%}",
                                           "id", dept[i].id.data,
                                           dept[i].id.len,
                                           "name", dept[i].name.data,
                                           dept[i].name.len));
    }

    return ngx_http_teleclinic_send(r, NGX_HTTP_OK, a);
}


ngx_int_t
ngx_http_teleclinic_doctors(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    json_t                           *a;
    ngx_str_t                         dept;
    ngx_uint_t                        i;
    ngx_teleclinic_doctor_t          *doc;
    ngx_teleclinic_directory_t       *dir;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    dir = ngx_http_teleclinic_directory(tmcf, r->connection->log);
    if (dir == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_null(&dept);

    if (ngx_teleclinic_arg(r->args.data, r->args.len, "department", &dept)
        == NGX_OK
        && ngx_teleclinic_id_valid(dept.data, dept.len) != NGX_OK)
    {
        return ngx_http_teleclinic_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_department",
                                         "department is not a department id",
                                         "department");
    }

    a = json_array();
    doc = dir->doctors.elts;

    for (i = 0; i < dir->doctors.nelts; i++) {
        if (dept.len
            && (dept.len != doc[i].department.len
                || ngx_strncmp(dept.data, doc[i].department.data, dept.len)
                   != 0))
        {
            continue;
        }

        json_array_append_new(a, json_pack("{s:s%, s:s%, s:s%, s:i}",
                                           "id", doc[i].id.data,
                                           doc[i].id.len,
                                           "name", doc[i].name.data,
                                           doc[i].name.len,
                                           "department",
                                           doc[i].department.data,
                                           doc[i].department.len,
                                           "slot_minutes",
                                           (int) doc[i].slot_minutes));
    }

    return ngx_http_teleclinic_send(r, NGX_HTTP_OK, a);
}


ngx_int_t
ngx_http_teleclinic_slots(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    u_char                           *buf, *p;
    time_t                            now;
    ngx_str_t                         arg;
    ngx_uint_t                        i, n, busy;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_date_t             date;
    u_char                            taken[NGX_TELECLINIC_SLOTS_MAX];
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_slot_t             slots[NGX_TELECLINIC_SLOTS_MAX];
    ngx_teleclinic_doctor_t          *doc;
    ngx_teleclinic_directory_t       *dir;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);

    if (ngx_teleclinic_arg(r->args.data, r->args.len, "date", &arg) != NGX_OK
        || ngx_teleclinic_date_parse(arg.data, arg.len, &date) != NGX_OK)
    {
        return ngx_http_teleclinic_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_date",
                                         "date must be a day as YYYY-MM-DD",
                                         "date");
    }

    dir = ngx_http_teleclinic_directory(tmcf, r->connection->log);
    doc = dir ? ngx_teleclinic_doctor_find(dir, &call->seg[1]) : NULL;

    if (doc == NULL) {
        return ngx_http_teleclinic_error(r, NGX_HTTP_NOT_FOUND,
                                         "unknown_doctor", "no such doctor",
                                         NULL);
    }

    n = ngx_teleclinic_doctor_slots(doc, &date, slots);
    now = ngx_time();

    if (n && slots[0].start > now + tmcf->horizon) {
        n = 0;
    }

    buf = ngx_pnalloc(r->pool, 2 + n * (2 * NGX_TELECLINIC_TIME_LEN
                                        + NGX_TELECLINIC_ID_MAX + 80));
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = buf;
    *p++ = '[';

    /* the taken ones: one walk over the doctor's day in the index */

    ngx_teleclinic_zone_lock(zone);

    appt = n ? ngx_teleclinic_slot_first(zone, &doc->id, slots[0].start)
             : NULL;

    for (i = 0; i < n; i++) {
        while (appt && appt->start < slots[i].start) {
            appt = ngx_teleclinic_slot_next(zone, appt);
        }

        taken[i] = (appt && appt->start == slots[i].start);
    }

    ngx_teleclinic_zone_unlock(zone);

    for (i = 0; i < n; i++) {
        busy = taken[i] || slots[i].start <= now;

        /* ids and times need no JSON escaping: written directly */

        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, "{\"id\":\"", 7);
        p = ngx_teleclinic_slot_id_print(p, &doc->id, &date, slots[i].minute);
        p = ngx_cpymem(p, "\",\"start\":\"", 11);
        p = ngx_teleclinic_time_print(p, slots[i].start);
        p = ngx_cpymem(p, "\",\"end\":\"", 9);
        p = ngx_teleclinic_time_print(p, slots[i].end);
        p = ngx_cpymem(p, "\",\"status\":\"", 12);
        p = ngx_cpymem(p, busy ? "busy\"}" : "free\"}", 6);
    }

    *p++ = ']';
    *p++ = '\n';

    return ngx_http_teleclinic_send_text(r, NGX_HTTP_OK, buf, p - buf);
}


/*
 * With several nodes, a slot is claimed in Redis before this node books
 * it (ngx_teleclinic_mirror_claim).  The handler stops there and, once
 * Redis has given the claim, runs again from the start with the claim in
 * ctx->claimed: what it checked is checked again after the wait.
 */

static ngx_int_t
ngx_http_teleclinic_claim(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call, ngx_teleclinic_event_t *ev,
    ngx_int_t (*handler)(ngx_http_request_t *r,
        ngx_http_teleclinic_call_t *call))
{
    ngx_int_t                   rc;
    ngx_teleclinic_claim_t     *claim;
    ngx_http_teleclinic_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    if (ctx->again == NULL) {
        /* the caller's call may be on its stack */

        ctx->again = ngx_palloc(r->pool, sizeof(ngx_http_teleclinic_call_t));
        if (ctx->again == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        *ctx->again = *call;
    }

    ctx->handler = handler;
    ctx->claimed = ev->id;
    ctx->claim_start = ev->start;

    /* the event's doctor is in the request's JSON, gone after this run */
    ctx->claim_doctor.len = ev->doctor.len;
    ctx->claim_doctor.data = ngx_pstrdup(r->pool, &ev->doctor);
    if (ctx->claim_doctor.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_teleclinic_mirror_claim(&ctx->claim_doctor, ev->start, ev->end,
                                     ev->id, ngx_http_teleclinic_claimed, r,
                                     &claim);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ctx->claimed = 0;
        return ngx_http_teleclinic_no_redis(r);
    }

    /* the request lives until the claim is answered, which always comes */
    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_teleclinic_claimed(void *data, ngx_int_t rc)
{
    ngx_http_request_t *r = data;

    ngx_connection_t           *c;
    ngx_http_teleclinic_ctx_t  *ctx;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "teleclinic: slot claimed: %i", rc);

    if (rc == NGX_OK) {
        rc = ctx->handler(r, ctx->again);

        if (ctx->claimed) {
            /* the second run did not book: the claim goes back */
            ngx_teleclinic_mirror_release(&ctx->claim_doctor,
                                          ctx->claim_start, ctx->claimed);
            ctx->claimed = 0;
        }

    } else if (rc == NGX_BUSY) {
        ctx->claimed = 0;
        rc = ngx_http_teleclinic_error(r, NGX_HTTP_CONFLICT, "slot_taken",
                                       "the slot is no longer free", "slot");

    } else {
        ctx->claimed = 0;
        rc = ngx_http_teleclinic_no_redis(r);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_teleclinic_no_redis(ngx_http_request_t *r)
{
    return ngx_http_teleclinic_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "redis_unavailable",
                                     "bookings wait until this node reaches "
                                     "Redis again", NULL);
}


ngx_int_t
ngx_http_teleclinic_book(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    ngx_int_t                         rc;
    ngx_str_t                         doctor;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_slot_t             slot;
    ngx_teleclinic_event_t            ev;
    ngx_teleclinic_error_t            err;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_teleclinic_booking_req_t      req;
    ngx_http_teleclinic_change_t      change;
    ngx_http_teleclinic_changed_t     changed;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ngx_str_set(&ctx->action, "book");

    if (ngx_teleclinic_request_booking(call->body.data, call->body.len, &req,
                                       &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (ngx_http_teleclinic_find_slot(r, &req.slot, &slot, &doctor, &err)
        != NGX_OK)
    {
        rc = ngx_http_teleclinic_fail(r, &err);
        goto failed;
    }

    ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
    ev.op = NGX_TELECLINIC_EV_BOOK;
    ev.at = ngx_time();
    ev.doctor = doctor;
    ev.start = slot.start;
    ev.end = slot.end;
    ev.name = req.name;
    ev.phone = req.phone;
    ev.reason = req.reason;

    /*
     * drawn before the lock: the zone only checks it is unused; on the
     * second run, after the claim, the id the slot was claimed for
     */
    if (ctx->claimed) {
        ev.id = ctx->claimed;

    } else if (RAND_bytes((u_char *) &ev.id, sizeof(uint64_t)) != 1) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto failed;
    }

    ngx_teleclinic_zone_lock(zone);

    if (ngx_teleclinic_slot_lookup(zone, &doctor, slot.start) != NULL) {
        ngx_teleclinic_zone_unlock(zone);

        rc = ngx_http_teleclinic_error(r, NGX_HTTP_CONFLICT, "slot_taken",
                                       "the slot is no longer free", "slot");
        goto failed;
    }

    if (ngx_teleclinic_appt_new_id(zone, &ev.id) != NGX_OK) {
        ngx_teleclinic_zone_unlock(zone);
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto failed;
    }

    ctx->appt = ev.id;

    if (ngx_teleclinic_mirror_on() && ctx->claimed != ev.id) {
        ngx_teleclinic_zone_unlock(zone);
        rc = ngx_http_teleclinic_claim(r, call, &ev, ngx_http_teleclinic_book);
        goto failed;
    }

    changed.access = 1;

    change.event = &ev;
    change.status = NGX_HTTP_CREATED;
    change.copy = ngx_http_teleclinic_change_copy;
    change.format = ngx_http_teleclinic_change_format;
    change.durable = ngx_teleclinic_notify_kick;
    change.data = &changed;

    rc = ngx_http_teleclinic_commit(r, zone, &change);

    if (rc == NGX_DONE) {
        ctx->claimed = 0;                /* booked: the claim is used */
    }

    /* the event's strings are the request's document */
    json_decref(req.root);

    return rc;

failed:

    json_decref(req.root);

    return rc;
}


/* the appointment of /appointments/{id}, once the caller may see it */

static ngx_int_t
ngx_http_teleclinic_appt_id(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call, uint64_t *id, int64_t *version,
    ngx_teleclinic_error_t *err)
{
    ngx_int_t                         rc;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_appt_t            *appt;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    if (ngx_teleclinic_appt_id_parse(call->seg[1].data, call->seg[1].len, id)
        != NGX_OK)
    {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_NOT_FOUND,
                                          "unknown_appointment",
                                          "no such appointment", NULL);
    }

    ctx->appt = *id;

    rc = ngx_http_teleclinic_authorize(r, *id, version);

    if (rc != NGX_OK) {
        return ngx_http_teleclinic_refuse(err, rc);
    }

    /*
     * an outdated token is refused before the request's body is looked
     * at; the handlers check again with the zone locked for their change
     */

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);

    ngx_teleclinic_zone_lock(zone);

    appt = ngx_teleclinic_appt_lookup(zone, *id);
    rc = (appt == NULL || ngx_http_teleclinic_current(*version, appt))
         ? NGX_OK : NGX_HTTP_UNAUTHORIZED;

    ngx_teleclinic_zone_unlock(zone);

    if (rc != NGX_OK) {
        return ngx_http_teleclinic_refuse(err, rc);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_teleclinic_get(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    int64_t                           version;
    uint64_t                          id;
    ngx_int_t                         rc;
    ngx_str_t                         text;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_appt_t            *appt, copy;
    ngx_teleclinic_error_t            err;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ngx_str_set(&ctx->action, "read");

    if (ngx_http_teleclinic_appt_id(r, call, &id, &version, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    ngx_teleclinic_zone_lock(zone);

    appt = ngx_teleclinic_appt_lookup(zone, id);

    if (appt && !ngx_http_teleclinic_current(version, appt)) {
        ngx_teleclinic_zone_unlock(zone);
        (void) ngx_http_teleclinic_refuse(&err, NGX_HTTP_UNAUTHORIZED);
        return ngx_http_teleclinic_fail(r, &err);
    }

    rc = appt ? ngx_http_teleclinic_appt_copy(r->pool, appt, &copy)
              : NGX_DECLINED;

    ngx_teleclinic_zone_unlock(zone);

    if (rc == NGX_DECLINED) {
        return ngx_http_teleclinic_error(r, NGX_HTTP_NOT_FOUND,
                                         "unknown_appointment",
                                         "no such appointment", NULL);
    }

    if (rc != NGX_OK
        || ngx_http_teleclinic_appt_answer(r, &copy, 1, 0, &text) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_teleclinic_send_text(r, NGX_HTTP_OK, text.data,
                                         text.len);
}


ngx_int_t
ngx_http_teleclinic_cancel(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    int64_t                           version;
    uint64_t                          id;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_error_t            err;
    ngx_teleclinic_event_t            ev;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_change_t      change;
    ngx_http_teleclinic_changed_t     changed;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ngx_str_set(&ctx->action, "cancel");

    if (ngx_http_teleclinic_appt_id(r, call, &id, &version, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    ngx_teleclinic_zone_lock(zone);

    appt = ngx_teleclinic_appt_lookup(zone, id);

    if (appt == NULL) {
        (void) ngx_http_teleclinic_reject(&err, NGX_HTTP_NOT_FOUND,
                                          "unknown_appointment",
                                          "no such appointment", NULL);
        goto failed;
    }

    if (!ngx_http_teleclinic_current(version, appt)) {
        (void) ngx_http_teleclinic_refuse(&err, NGX_HTTP_UNAUTHORIZED);
        goto failed;
    }

    if (appt->status != NGX_TELECLINIC_BOOKED) {
        (void) ngx_http_teleclinic_reject(&err, NGX_HTTP_CONFLICT,
                                          "not_cancellable",
                                          "only a booked appointment can "
                                          "be cancelled", NULL);
        goto failed;
    }

    ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
    ev.op = NGX_TELECLINIC_EV_CANCEL;
    ev.at = ngx_time();
    ev.id = id;
    ev.freed_doctor.data = appt->doctor;
    ev.freed_doctor.len = appt->doctor_len;
    ev.freed_start = appt->start;

    changed.access = 0;

    change.event = &ev;
    change.status = NGX_HTTP_OK;
    change.copy = ngx_http_teleclinic_change_copy;
    change.format = ngx_http_teleclinic_change_format;
    change.durable = ngx_teleclinic_notify_kick;
    change.data = &changed;

    return ngx_http_teleclinic_commit(r, zone, &change);

failed:

    ngx_teleclinic_zone_unlock(zone);

    return ngx_http_teleclinic_fail(r, &err);
}


ngx_int_t
ngx_http_teleclinic_reschedule(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    json_t                           *root;
    int64_t                           version;
    uint64_t                          id;
    ngx_int_t                         rc;
    ngx_str_t                         slot_id, doctor;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_slot_t             slot;
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_error_t            err;
    ngx_teleclinic_event_t            ev;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_change_t      change;
    ngx_http_teleclinic_changed_t     changed;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ngx_str_set(&ctx->action, "reschedule");

    if (ngx_http_teleclinic_appt_id(r, call, &id, &version, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (ngx_teleclinic_request_reschedule(call->body.data, call->body.len,
                                          &root, &slot_id, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (ngx_http_teleclinic_find_slot(r, &slot_id, &slot, &doctor, &err)
        != NGX_OK)
    {
        goto refused;
    }

    ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
    ev.op = NGX_TELECLINIC_EV_RESCHEDULE;
    ev.at = ngx_time();
    ev.id = id;
    ev.doctor = doctor;
    ev.start = slot.start;
    ev.end = slot.end;

    ngx_teleclinic_zone_lock(zone);

    appt = ngx_teleclinic_appt_lookup(zone, id);

    if (appt == NULL) {
        (void) ngx_http_teleclinic_reject(&err, NGX_HTTP_NOT_FOUND,
                                          "unknown_appointment",
                                          "no such appointment", NULL);
        goto failed;
    }

    if (!ngx_http_teleclinic_current(version, appt)) {
        (void) ngx_http_teleclinic_refuse(&err, NGX_HTTP_UNAUTHORIZED);
        goto failed;
    }

    if (appt->status != NGX_TELECLINIC_BOOKED) {
        (void) ngx_http_teleclinic_reject(&err, NGX_HTTP_CONFLICT,
                                          "not_reschedulable",
                                          "only a booked appointment can "
                                          "be rescheduled", NULL);
        goto failed;
    }

    if (ngx_teleclinic_slot_lookup(zone, &doctor, slot.start) != NULL) {
        (void) ngx_http_teleclinic_reject(&err, NGX_HTTP_CONFLICT,
                                          "slot_taken",
                                          "the slot is no longer free",
                                          "slot");
        goto failed;
    }

    if (ngx_teleclinic_mirror_on() && ctx->claimed != id) {
        ngx_teleclinic_zone_unlock(zone);
        rc = ngx_http_teleclinic_claim(r, call, &ev,
                                       ngx_http_teleclinic_reschedule);
        json_decref(root);
        return rc;
    }

    if (ngx_teleclinic_mirror_on()) {
        /* the slot it leaves, copied before the move changes it */

        ev.freed_doctor.len = appt->doctor_len;
        ev.freed_doctor.data = ngx_pnalloc(r->pool, appt->doctor_len);
        if (ev.freed_doctor.data == NULL) {
            ngx_teleclinic_zone_unlock(zone);
            json_decref(root);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(ev.freed_doctor.data, appt->doctor, appt->doctor_len);
        ev.freed_start = appt->start;
    }

    /* a later visit needs a token that lasts until then */
    changed.access = 1;

    change.event = &ev;
    change.status = NGX_HTTP_OK;
    change.copy = ngx_http_teleclinic_change_copy;
    change.format = ngx_http_teleclinic_change_format;
    change.durable = ngx_teleclinic_notify_kick;
    change.data = &changed;

    rc = ngx_http_teleclinic_commit(r, zone, &change);

    if (rc == NGX_DONE) {
        ctx->claimed = 0;
    }

    json_decref(root);

    return rc;

failed:

    ngx_teleclinic_zone_unlock(zone);

refused:

    json_decref(root);

    return ngx_http_teleclinic_fail(r, &err);
}
