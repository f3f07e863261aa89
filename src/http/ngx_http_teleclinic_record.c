
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include "ngx_http_teleclinic_util.h"
#include "ngx_http_teleclinic_record.h"
#include "ngx_http_teleclinic_notify.h"
#include "ngx_teleclinic_record.h"
#include "ngx_teleclinic_snapshot.h"
#include "ngx_teleclinic_token.h"


#define NGX_HTTP_TELECLINIC_ADMIN      1
#define NGX_HTTP_TELECLINIC_DOCTOR     2
#define NGX_HTTP_TELECLINIC_PATIENT    3

/* what a change answers with */
#define NGX_HTTP_TELECLINIC_RECORD     0   /* the whole record */
#define NGX_HTTP_TELECLINIC_CREATED    1   /* {"id"} of the new item */
#define NGX_HTTP_TELECLINIC_RATED      2   /* the rating */


/* who asks, from the request's credentials */
typedef struct {
    ngx_uint_t                    who;
    uint64_t                      appt;
    int64_t                       version;   /* a patient's token's */
    ngx_teleclinic_token_t        token;     /* a doctor's */
} ngx_http_teleclinic_caller_t;


/* an upload between its file's write and its event */
typedef struct {
    ngx_http_request_t               *request;
    ngx_http_teleclinic_caller_t      caller;
    ngx_uint_t                        consent;   /* its request id */
    const char                       *type;
    ngx_teleclinic_snapshot_file_t   *file;
} ngx_http_teleclinic_upload_t;


/* the record as the answer shows it, copied under the zone's lock */
typedef struct {
    uint64_t                      appt;
    ngx_teleclinic_record_t      *rec;       /* NULL: none yet */
    ngx_uint_t                    answer;
    ngx_uint_t                    item;
} ngx_http_teleclinic_shown_t;


static ngx_int_t ngx_http_teleclinic_caller(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call, const char *action,
    ngx_http_teleclinic_caller_t *c, ngx_teleclinic_error_t *err);
static ngx_int_t ngx_http_teleclinic_may(ngx_http_teleclinic_caller_t *c,
    ngx_teleclinic_appt_t *appt, ngx_teleclinic_error_t *err);
static ngx_int_t ngx_http_teleclinic_writable(ngx_http_teleclinic_caller_t *c,
    ngx_teleclinic_appt_t *appt, ngx_teleclinic_record_t *rec,
    ngx_teleclinic_error_t *err);
static ngx_int_t ngx_http_teleclinic_record_change(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call, ngx_uint_t kind, const char *action);
static ngx_int_t ngx_http_teleclinic_record_commit(ngx_http_request_t *r,
    ngx_teleclinic_zone_t *zone, ngx_teleclinic_event_t *ev,
    ngx_uint_t status, ngx_uint_t answer);
static ngx_int_t ngx_http_teleclinic_record_copy(ngx_http_request_t *r,
    ngx_teleclinic_zone_t *zone, ngx_http_teleclinic_change_t *change);
static ngx_int_t ngx_http_teleclinic_record_format(ngx_http_request_t *r,
    ngx_http_teleclinic_change_t *change, ngx_str_t *text);
static ngx_int_t ngx_http_teleclinic_record_text(ngx_http_request_t *r,
    ngx_teleclinic_record_t *rec, uint64_t appt, ngx_str_t *text);
static u_char *ngx_http_teleclinic_rating_text(u_char *p, u_char *last,
    ngx_teleclinic_record_t *rec);
static u_char *ngx_http_teleclinic_json_text(u_char *p, u_char *last,
    ngx_str_t *s);
static u_char *ngx_http_teleclinic_json_field(u_char *p, u_char *last,
    const char *key, ngx_str_t *s);
static size_t ngx_http_teleclinic_ref_size(ngx_teleclinic_formulary_t *f,
    ngx_teleclinic_item_t *it);
static u_char *ngx_http_teleclinic_ref_text(u_char *p, u_char *last,
    ngx_teleclinic_formulary_t *f, ngx_teleclinic_item_t *it);
static u_char *ngx_http_teleclinic_time_text(u_char *p, time_t t);
static u_char *ngx_http_teleclinic_date_text(u_char *p, time_t t);
static u_char *ngx_http_teleclinic_number_text(u_char *p, const char *key,
    ngx_uint_t n);
static ngx_uint_t ngx_http_teleclinic_item_kind(ngx_str_t *seg,
    ngx_uint_t *body, const char **action);
static ngx_int_t ngx_http_teleclinic_snapshot_check(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call, ngx_uint_t *request,
    const char **type, ngx_teleclinic_error_t *err);
#if (NGX_THREADS)
static void ngx_http_teleclinic_snapshot_written(ngx_event_t *ev);
#endif
static ngx_int_t ngx_http_teleclinic_snapshot_commit(ngx_http_request_t *r,
    ngx_http_teleclinic_upload_t *up, ngx_int_t written);
static void ngx_http_teleclinic_snapshot_release(ngx_teleclinic_zone_t *zone,
    uint64_t appt, ngx_uint_t request);
static ngx_int_t ngx_http_teleclinic_image_send(ngx_http_request_t *r,
    ngx_str_t *type, ngx_str_t *image);
static void ngx_http_teleclinic_record_sweep(ngx_event_t *ev);


/* records go a second after the start, then hourly; more at once after */
#define NGX_HTTP_TELECLINIC_SWEEP_FIRST   1000
#define NGX_HTTP_TELECLINIC_SWEEP_EVERY   3600000
#define NGX_HTTP_TELECLINIC_SWEEP_MAX     256


static ngx_event_t  ngx_http_teleclinic_record_event;


ngx_int_t
ngx_http_teleclinic_record_init_process(ngx_cycle_t *cycle,
    ngx_http_teleclinic_main_conf_t *tmcf)
{
    ngx_event_t  *ev;

    ev = &ngx_http_teleclinic_record_event;

    ev->handler = ngx_http_teleclinic_record_sweep;
    ev->data = tmcf;
    ev->log = cycle->log;
    ev->cancelable = 1;

    ngx_add_timer(ev, NGX_HTTP_TELECLINIC_SWEEP_FIRST);

    return NGX_OK;
}


static void
ngx_http_teleclinic_record_sweep(ngx_event_t *ev)
{
    ngx_uint_t                        n;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    n = ngx_teleclinic_record_expire(ngx_http_teleclinic_zone(tmcf),
                                     tmcf->record_retention, ngx_time(),
                                     NGX_HTTP_TELECLINIC_SWEEP_MAX, ev->log);

    /*
     * the forgotten records' images; an hour's margin spares a file
     * another worker has written and not yet journaled
     */
    if (n) {
        (void) ngx_teleclinic_snapshot_sweep(ngx_http_teleclinic_zone(tmcf),
                                             3600, ev->log);
    }

    ngx_add_timer(ev, n == NGX_HTTP_TELECLINIC_SWEEP_MAX
                      ? NGX_HTTP_TELECLINIC_SWEEP_FIRST
                      : NGX_HTTP_TELECLINIC_SWEEP_EVERY);
}


ngx_int_t
ngx_http_teleclinic_record_get(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    ngx_int_t                         rc;
    ngx_str_t                         text;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_error_t            err;
    ngx_teleclinic_record_t          *rec, *copy;
    ngx_http_teleclinic_caller_t      c;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);

    if (ngx_http_teleclinic_caller(r, call, "record_read", &c, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    copy = NULL;
    rc = NGX_OK;

    ngx_teleclinic_zone_lock(zone);

    appt = ngx_teleclinic_appt_lookup(zone, c.appt);

    if (ngx_http_teleclinic_may(&c, appt, &err) != NGX_OK) {
        ngx_teleclinic_zone_unlock(zone);
        return ngx_http_teleclinic_fail(r, &err);
    }

    rec = ngx_teleclinic_record_lookup(zone, c.appt);

    /* the patient sees the record once the doctor has signed it */

    if (c.who == NGX_HTTP_TELECLINIC_PATIENT
        && (rec == NULL || rec->status != NGX_TELECLINIC_RECORD_FINAL))
    {
        rc = NGX_DECLINED;

    } else if (rec) {
        copy = ngx_teleclinic_record_copy(rec, r->pool);
        rc = copy ? NGX_OK : NGX_ERROR;
    }

    ngx_teleclinic_zone_unlock(zone);

    if (rc == NGX_DECLINED) {
        return ngx_http_teleclinic_error(r, NGX_HTTP_NOT_FOUND, "no_record",
                                         "the visit's record is not final "
                                         "yet", NULL);
    }

    if (rc != NGX_OK
        || ngx_http_teleclinic_record_text(r, copy, c.appt, &text) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_teleclinic_send_text(r, NGX_HTTP_OK, text.data, text.len);
}


ngx_int_t
ngx_http_teleclinic_record_note(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    return ngx_http_teleclinic_record_change(r, call,
                                             NGX_TELECLINIC_BODY_NOTE,
                                             "note");
}


ngx_int_t
ngx_http_teleclinic_record_add(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    ngx_uint_t   body;
    const char  *action;

    if (ngx_http_teleclinic_item_kind(&call->seg[3], &body, &action) == 0) {
        return ngx_http_teleclinic_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                         "no such resource", NULL);
    }

    return ngx_http_teleclinic_record_change(r, call, body, action);
}


ngx_int_t
ngx_http_teleclinic_record_drop(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    ngx_int_t                         n;
    ngx_uint_t                        kind, body;
    const char                       *action;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_item_t            *item;
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_error_t            err;
    ngx_teleclinic_event_t            ev;
    ngx_teleclinic_record_t          *rec;
    ngx_http_teleclinic_caller_t      c;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);

    kind = ngx_http_teleclinic_item_kind(&call->seg[3], &body, &action);

    if (kind != NGX_TELECLINIC_ITEM_RX && kind != NGX_TELECLINIC_ITEM_ORDER) {
        return ngx_http_teleclinic_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                         "no such resource", NULL);
    }

    if (ngx_http_teleclinic_caller(r, call, action, &c, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    n = (call->seg[4].len <= 9) ? ngx_atoi(call->seg[4].data,
                                           call->seg[4].len)
                                : NGX_ERROR;

    ngx_teleclinic_zone_lock(zone);

    appt = ngx_teleclinic_appt_lookup(zone, c.appt);
    rec = ngx_teleclinic_record_lookup(zone, c.appt);

    if (ngx_http_teleclinic_writable(&c, appt, rec, &err) != NGX_OK) {
        goto failed;
    }

    item = (rec && n > 0) ? ngx_teleclinic_item_lookup(rec, n) : NULL;

    if (item == NULL || item->kind != kind) {
        (void) ngx_http_teleclinic_reject(&err, NGX_HTTP_NOT_FOUND,
                                          "not_found",
                                          "no such item in the record",
                                          NULL);
        goto failed;
    }

    ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
    ev.op = NGX_TELECLINIC_EV_DROP;
    ev.at = ngx_time();
    ev.id = c.appt;
    ev.item = n;

    return ngx_http_teleclinic_record_commit(r, zone, &ev, NGX_HTTP_OK,
                                             NGX_HTTP_TELECLINIC_RECORD);

failed:

    ngx_teleclinic_zone_unlock(zone);

    return ngx_http_teleclinic_fail(r, &err);
}


ngx_int_t
ngx_http_teleclinic_record_close(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_error_t            err;
    ngx_teleclinic_event_t            ev;
    ngx_teleclinic_record_t          *rec;
    ngx_http_teleclinic_caller_t      c;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);

    if (ngx_http_teleclinic_caller(r, call, "close", &c, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    ngx_teleclinic_zone_lock(zone);

    appt = ngx_teleclinic_appt_lookup(zone, c.appt);
    rec = ngx_teleclinic_record_lookup(zone, c.appt);

    if (ngx_http_teleclinic_writable(&c, appt, rec, &err) != NGX_OK) {
        goto failed;
    }

    /* a visit whose call ended; one that never took place has no record */

    if (appt->visit_start == 0 || appt->status != NGX_TELECLINIC_FULFILLED) {
        (void) ngx_http_teleclinic_reject(&err, NGX_HTTP_CONFLICT,
                                          "visit_not_held",
                                          "the visit's call has not taken "
                                          "place", NULL);
        goto failed;
    }

    ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
    ev.op = NGX_TELECLINIC_EV_CLOSE;
    ev.at = ngx_time();
    ev.id = c.appt;

    return ngx_http_teleclinic_record_commit(r, zone, &ev, NGX_HTTP_OK,
                                             NGX_HTTP_TELECLINIC_RECORD);

failed:

    ngx_teleclinic_zone_unlock(zone);

    return ngx_http_teleclinic_fail(r, &err);
}


ngx_int_t
ngx_http_teleclinic_rating(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    ngx_int_t                         rc;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_error_t            err;
    ngx_teleclinic_event_t            ev;
    ngx_teleclinic_record_t          *rec;
    ngx_teleclinic_record_req_t       req;
    ngx_http_teleclinic_caller_t      c;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);

    if (ngx_http_teleclinic_caller(r, call, "rating", &c, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (c.who != NGX_HTTP_TELECLINIC_PATIENT) {
        (void) ngx_http_teleclinic_reject(&err, NGX_HTTP_FORBIDDEN,
                                          "forbidden",
                                          "only the patient rates the visit",
                                          NULL);
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (ngx_teleclinic_request_record(call->body.data, call->body.len,
                                      NGX_TELECLINIC_BODY_RATING, &req, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    ngx_teleclinic_zone_lock(zone);

    appt = ngx_teleclinic_appt_lookup(zone, c.appt);

    if (ngx_http_teleclinic_may(&c, appt, &err) != NGX_OK) {
        goto failed;
    }

    if (appt->visit_start == 0 || appt->status != NGX_TELECLINIC_FULFILLED) {
        (void) ngx_http_teleclinic_reject(&err, NGX_HTTP_CONFLICT,
                                          "visit_not_held",
                                          "the visit has not taken place",
                                          NULL);
        goto failed;
    }

    rec = ngx_teleclinic_record_lookup(zone, c.appt);

    if (rec && rec->score) {
        (void) ngx_http_teleclinic_reject(&err, NGX_HTTP_CONFLICT,
                                          "already_rated",
                                          "the visit is rated already",
                                          NULL);
        goto failed;
    }

    ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
    ev.op = NGX_TELECLINIC_EV_RATING;
    ev.at = ngx_time();
    ev.id = c.appt;
    ev.num[0] = req.num[0];
    ev.text[0] = req.text[0];

    /* the event's strings are the request's document until the commit */
    rc = ngx_http_teleclinic_record_commit(r, zone, &ev, NGX_HTTP_CREATED,
                                           NGX_HTTP_TELECLINIC_RATED);
    json_decref(req.root);

    return rc;

failed:

    ngx_teleclinic_zone_unlock(zone);
    json_decref(req.root);

    return ngx_http_teleclinic_fail(r, &err);
}


/*
 * POST .../record/snapshots?request=R: the doctor, on an open record,
 * under a consent the patient granted in the call and that allows one
 * snapshot.  The consent is taken and an id reserved with the zone
 * locked; the image is sealed, written and fsync'd without the lock, on
 * the journal's thread pool, while the request waits as for the
 * journal's fsync; only then, back in the event loop, is its item
 * journaled, so that a crash leaves at most an orphan file, which the
 * next start removes.
 */

ngx_int_t
ngx_http_teleclinic_record_snapshot(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    ngx_int_t                         rc;
    ngx_uint_t                        request, id;
    const char                       *type;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_error_t            err;
    ngx_teleclinic_record_t          *rec;
    ngx_teleclinic_consent_t         *consent;
    ngx_http_teleclinic_caller_t      c;
    ngx_http_teleclinic_upload_t     *up;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);

    if (ngx_http_teleclinic_caller(r, call, "snapshot", &c, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (c.who != NGX_HTTP_TELECLINIC_DOCTOR) {
        (void) ngx_http_teleclinic_reject(&err, NGX_HTTP_FORBIDDEN,
                                          "forbidden",
                                          "only the appointment's doctor "
                                          "writes its record", NULL);
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (ngx_http_teleclinic_snapshot_check(r, call, &request, &type, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    ngx_teleclinic_zone_lock(zone);

    appt = ngx_teleclinic_appt_lookup(zone, c.appt);
    rec = ngx_teleclinic_record_lookup(zone, c.appt);

    if (ngx_http_teleclinic_writable(&c, appt, rec, &err) != NGX_OK) {
        goto failed;
    }

    consent = (rec && request) ? ngx_teleclinic_consent_lookup(rec, request)
                               : NULL;

    if (ngx_teleclinic_consent_usable(consent, ngx_time(),
                                      tmcf->consent_timeout)
        != NGX_OK)
    {
        (void) ngx_http_teleclinic_reject(&err, NGX_HTTP_FORBIDDEN,
                                          "no_consent",
                                          "no granted, unused, unexpired "
                                          "consent of the patient's has "
                                          "this request id", "request");
        goto failed;
    }

    if (rec->nitems >= NGX_TELECLINIC_RECORD_ITEMS) {
        (void) ngx_http_teleclinic_reject(&err, NGX_HTTP_CONFLICT,
                                          "record_full",
                                          "the record holds as many items "
                                          "as it can", NULL);
        goto failed;
    }

    /* taken now, so that a second upload under it is refused meanwhile */
    consent->used = 1;
    id = ++rec->last_item;

    ngx_teleclinic_zone_unlock(zone);

    up = ngx_palloc(r->pool, sizeof(ngx_http_teleclinic_upload_t));

    if (up) {
        up->request = r;

        /*
         * the caller outlives this frame: its token's subject points into
         * the token itself, so into the copy now, not the stack
         */
        up->caller = c;
        up->caller.token.subject.data = up->caller.token.buf;
        up->consent = request;
        up->type = type;
        up->file = ngx_teleclinic_snapshot_file(zone, &tmcf->keys, c.appt,
                                                id, call->body.data,
                                                call->body.len, r->pool);
    }

    if (up == NULL || up->file == NULL) {
        ngx_http_teleclinic_snapshot_release(zone, c.appt, request);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

#if (NGX_THREADS)

    /*
     * blocked, as for nginx's own thread tasks: a client that goes away
     * meanwhile does not free the request, whose memory the thread reads
     */

    if (tmcf->journal.thread_pool
        && ngx_teleclinic_snapshot_post(up->file, tmcf->journal.thread_pool,
                                        ngx_http_teleclinic_snapshot_written,
                                        up, r->pool, r->connection->log)
           == NGX_OK)
    {
        r->main->blocked++;
        r->aio = 1;
        r->main->count++;

        return NGX_DONE;
    }

#endif

    /* no thread pool (fsync=off), or its queue is full: as the journal */

    rc = ngx_teleclinic_snapshot_write(up->file, r->connection->log);

    return ngx_http_teleclinic_snapshot_commit(r, up, rc);

failed:

    ngx_teleclinic_zone_unlock(zone);

    return ngx_http_teleclinic_fail(r, &err);
}


#if (NGX_THREADS)

static void
ngx_http_teleclinic_snapshot_written(ngx_event_t *ev)
{
    ngx_int_t                      rc;
    ngx_connection_t              *c;
    ngx_http_request_t            *r;
    ngx_teleclinic_zone_t         *zone;
    ngx_http_teleclinic_upload_t  *up;

    up = ev->data;
    r = up->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    r->main->blocked--;
    r->aio = 0;

    rc = ngx_teleclinic_snapshot_written(up->file, c->log);

    if (c->error) {
        /* the doctor went away: no answer tells of the image, it goes */

        zone = up->file->zone;

        if (rc == NGX_OK) {
            (void) ngx_teleclinic_snapshot_remove(zone, up->file->appt,
                                                  up->file->id, c->log);
        }

        ngx_http_teleclinic_snapshot_release(zone, up->file->appt,
                                             up->consent);

        ngx_http_finalize_request(r, NGX_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }

    rc = ngx_http_teleclinic_snapshot_commit(r, up, rc);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}

#endif


/* the file is durable (written NGX_OK) or gone: its item is journaled */

static ngx_int_t
ngx_http_teleclinic_snapshot_commit(ngx_http_request_t *r,
    ngx_http_teleclinic_upload_t *up, ngx_int_t written)
{
    ngx_teleclinic_zone_t           *zone;
    ngx_teleclinic_appt_t           *appt;
    ngx_teleclinic_error_t           err;
    ngx_teleclinic_event_t          *ev;
    ngx_teleclinic_record_t         *rec;
    ngx_teleclinic_snapshot_file_t  *f;

    f = up->file;
    zone = f->zone;

    if (written != NGX_OK) {
        ngx_http_teleclinic_snapshot_release(zone, f->appt, up->consent);
        return ngx_http_teleclinic_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "storage_unavailable",
                                         "the change could not be stored",
                                         NULL);
    }

    /* the commit's answer is formatted after this returns */
    ev = ngx_pcalloc(r->pool, sizeof(ngx_teleclinic_event_t));
    if (ev == NULL) {
        ngx_http_teleclinic_snapshot_release(zone, f->appt, up->consent);
        (void) ngx_teleclinic_snapshot_remove(zone, f->appt, f->id,
                                              r->connection->log);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ev->op = NGX_TELECLINIC_EV_ITEM;
    ev->at = ngx_time();
    ev->id = f->appt;
    ev->item = f->id;
    ev->item_kind = NGX_TELECLINIC_ITEM_SNAPSHOT;
    ev->ref.data = (u_char *) up->type;
    ev->ref.len = ngx_strlen(up->type);
    ev->num[0] = f->len;
    ev->request = up->consent;

    ngx_teleclinic_zone_lock(zone);

    /* closed meanwhile: the file is nobody's */

    appt = ngx_teleclinic_appt_lookup(zone, f->appt);
    rec = ngx_teleclinic_record_lookup(zone, f->appt);

    if (ngx_http_teleclinic_writable(&up->caller, appt, rec, &err)
        != NGX_OK)
    {
        ngx_teleclinic_zone_unlock(zone);
        ngx_http_teleclinic_snapshot_release(zone, f->appt, up->consent);
        (void) ngx_teleclinic_snapshot_remove(zone, f->appt, f->id,
                                              r->connection->log);
        return ngx_http_teleclinic_fail(r, &err);
    }

    return ngx_http_teleclinic_record_commit(r, zone, ev, NGX_HTTP_CREATED,
                                             NGX_HTTP_TELECLINIC_CREATED);
}


/*
 * GET .../record/snapshots/{sid}: the image, to the doctor and the admin
 * key, and to the patient once the record is final
 */

ngx_int_t
ngx_http_teleclinic_record_image(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    size_t                            size;
    ngx_int_t                         rc, sid;
    ngx_str_t                         type, image;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_item_t            *item;
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_error_t            err;
    ngx_teleclinic_record_t          *rec;
    ngx_http_teleclinic_caller_t      c;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);

    if (ngx_http_teleclinic_caller(r, call, "record_read", &c, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    sid = (call->seg[4].len <= 9) ? ngx_atoi(call->seg[4].data,
                                             call->seg[4].len)
                                  : NGX_ERROR;

    ngx_str_null(&type);
    size = 0;

    ngx_teleclinic_zone_lock(zone);

    appt = ngx_teleclinic_appt_lookup(zone, c.appt);

    if (ngx_http_teleclinic_may(&c, appt, &err) != NGX_OK) {
        ngx_teleclinic_zone_unlock(zone);
        return ngx_http_teleclinic_fail(r, &err);
    }

    rec = ngx_teleclinic_record_lookup(zone, c.appt);

    item = (rec && sid > 0) ? ngx_teleclinic_item_lookup(rec, sid) : NULL;

    if (item && item->kind == NGX_TELECLINIC_ITEM_SNAPSHOT
        && (c.who != NGX_HTTP_TELECLINIC_PATIENT
            || rec->status == NGX_TELECLINIC_RECORD_FINAL))
    {
        type.len = item->ref.len;
        type.data = ngx_pnalloc(r->pool, type.len);

        if (type.data) {
            ngx_memcpy(type.data, item->ref.data, type.len);
        }

        size = item->num[0];
    }

    ngx_teleclinic_zone_unlock(zone);

    if (type.len == 0) {
        return ngx_http_teleclinic_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                         "no such snapshot in the record",
                                         NULL);
    }

    if (type.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_teleclinic_snapshot_read(zone, &tmcf->keys, c.appt, sid, size,
                                      &image, r->pool, r->connection->log);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "teleclinic: the file of snapshot %i is missing", sid);
        return ngx_http_teleclinic_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                         "no such snapshot in the record",
                                         NULL);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_teleclinic_image_send(r, &type, &image);
}


/*
 * PUT .../record/note and POST .../record/{prescriptions, orders,
 * followups, addenda}: the appointment's doctor, on an open record
 * (addenda: on a final one too)
 */

static ngx_int_t
ngx_http_teleclinic_record_change(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call, ngx_uint_t kind, const char *action)
{
    time_t                            from, to;
    ngx_int_t                         rc;
    ngx_uint_t                        i;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_error_t            err;
    ngx_teleclinic_event_t            ev;
    ngx_teleclinic_record_t          *rec;
    ngx_teleclinic_record_req_t       req;
    ngx_http_teleclinic_caller_t      c;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    static ngx_uint_t  items[] = {
        0, NGX_TELECLINIC_ITEM_RX, NGX_TELECLINIC_ITEM_ORDER,
        NGX_TELECLINIC_ITEM_FOLLOWUP, NGX_TELECLINIC_ITEM_ADDENDUM
    };

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);

    if (ngx_http_teleclinic_caller(r, call, action, &c, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (c.who != NGX_HTTP_TELECLINIC_DOCTOR) {
        (void) ngx_http_teleclinic_reject(&err, NGX_HTTP_FORBIDDEN,
                                          "forbidden",
                                          "only the appointment's doctor "
                                          "writes its record", NULL);
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (ngx_teleclinic_request_record(call->body.data, call->body.len, kind,
                                      &req, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    /* with a formulary, what it does not list cannot be prescribed */

    if (tmcf->formulary
        && ((kind == NGX_TELECLINIC_BODY_RX
             && ngx_teleclinic_drug_find(tmcf->formulary, &req.ref) == NULL)
            || (kind == NGX_TELECLINIC_BODY_ORDER
                && ngx_teleclinic_exam_find(tmcf->formulary, &req.ref)
                   == NULL)))
    {
        json_decref(req.root);

        if (kind == NGX_TELECLINIC_BODY_RX) {
            return ngx_http_teleclinic_error(r, 422, "unknown_drug",
                                             "drug is not in the formulary",
                                             "drug");
        }

        return ngx_http_teleclinic_error(r, 422, "unknown_exam",
                                         "exam is not in the catalogue",
                                         "exam");
    }

    ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
    ev.at = ngx_time();
    ev.id = c.appt;

    for (i = 0; i < NGX_TELECLINIC_RECORD_TEXTS; i++) {
        ev.text[i] = req.text[i];
    }

    ev.ref = req.ref;
    ev.num[0] = req.num[0];
    ev.num[1] = req.num[1];

    if (req.has_due) {
        ngx_teleclinic_day_bounds(&req.due, &from, &to);
        ev.due = from;
    }

    ngx_teleclinic_zone_lock(zone);

    appt = ngx_teleclinic_appt_lookup(zone, c.appt);
    rec = ngx_teleclinic_record_lookup(zone, c.appt);

    if (kind == NGX_TELECLINIC_BODY_ADDENDUM) {
        /* a signed record is never edited, only amended */
        rc = ngx_http_teleclinic_may(&c, appt, &err);

    } else {
        rc = ngx_http_teleclinic_writable(&c, appt, rec, &err);
    }

    if (rc != NGX_OK) {
        goto failed;
    }

    if (kind == NGX_TELECLINIC_BODY_NOTE) {
        ev.op = NGX_TELECLINIC_EV_NOTE;

        rc = ngx_http_teleclinic_record_commit(r, zone, &ev, NGX_HTTP_OK,
                                               NGX_HTTP_TELECLINIC_RECORD);
        json_decref(req.root);
        return rc;
    }

    if (rec && rec->nitems >= NGX_TELECLINIC_RECORD_ITEMS) {
        (void) ngx_http_teleclinic_reject(&err, NGX_HTTP_CONFLICT,
                                          "record_full",
                                          "the record holds as many items "
                                          "as it can", NULL);
        goto failed;
    }

    ev.op = NGX_TELECLINIC_EV_ITEM;
    ev.item = (rec ? rec->last_item : 0) + 1;
    ev.item_kind = items[kind];

    rc = ngx_http_teleclinic_record_commit(r, zone, &ev, NGX_HTTP_CREATED,
                                           NGX_HTTP_TELECLINIC_CREATED);
    json_decref(req.root);

    return rc;

failed:

    ngx_teleclinic_zone_unlock(zone);
    json_decref(req.root);

    return ngx_http_teleclinic_fail(r, &err);
}


/* with the zone locked; it is unlocked on return */

static ngx_int_t
ngx_http_teleclinic_record_commit(ngx_http_request_t *r,
    ngx_teleclinic_zone_t *zone, ngx_teleclinic_event_t *ev,
    ngx_uint_t status, ngx_uint_t answer)
{
    ngx_http_teleclinic_shown_t   *shown;
    ngx_http_teleclinic_change_t   change;

    shown = ngx_pcalloc(r->pool, sizeof(ngx_http_teleclinic_shown_t));
    if (shown == NULL) {
        ngx_teleclinic_zone_unlock(zone);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    shown->appt = ev->id;
    shown->answer = answer;
    shown->item = ev->item;

    ngx_memzero(&change, sizeof(ngx_http_teleclinic_change_t));
    change.event = ev;
    change.status = status;
    change.copy = ngx_http_teleclinic_record_copy;
    change.format = ngx_http_teleclinic_record_format;
    change.data = shown;

    /* a follow-up, a closing and a rating have messages to send */
    change.durable = ngx_teleclinic_notify_kick;

    return ngx_http_teleclinic_commit(r, zone, &change);
}


static ngx_int_t
ngx_http_teleclinic_record_copy(ngx_http_request_t *r,
    ngx_teleclinic_zone_t *zone, ngx_http_teleclinic_change_t *change)
{
    ngx_teleclinic_record_t      *rec;
    ngx_http_teleclinic_shown_t  *shown;

    shown = change->data;

    rec = ngx_teleclinic_record_lookup(zone, shown->appt);
    if (rec == NULL) {
        return NGX_ERROR;
    }

    shown->rec = ngx_teleclinic_record_copy(rec, r->pool);

    return shown->rec ? NGX_OK : NGX_ERROR;
}


static ngx_int_t
ngx_http_teleclinic_record_format(ngx_http_request_t *r,
    ngx_http_teleclinic_change_t *change, ngx_str_t *text)
{
    u_char                       *p;
    ngx_http_teleclinic_shown_t  *shown;

    shown = change->data;

    switch (shown->answer) {

    case NGX_HTTP_TELECLINIC_CREATED:
        text->data = ngx_pnalloc(r->pool, sizeof("{\"id\":}") + NGX_INT_T_LEN);
        if (text->data == NULL) {
            return NGX_ERROR;
        }

        text->len = ngx_sprintf(text->data, "{\"id\":%ui}", shown->item)
                    - text->data;
        return NGX_OK;

    case NGX_HTTP_TELECLINIC_RATED:
        p = ngx_pnalloc(r->pool, 256 + 6 * shown->rec->comment.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        text->data = p;
        p = ngx_http_teleclinic_rating_text(p, p + 256
                                               + 6 * shown->rec->comment.len,
                                            shown->rec);
        if (p == NULL) {
            return NGX_ERROR;
        }

        text->len = p - text->data;
        return NGX_OK;
    }

    return ngx_http_teleclinic_record_text(r, shown->rec, shown->appt, text);
}


/*
 * The admin key, the appointment's doctor or its patient; which of them
 * may do what is for each handler, which names its action.  The
 * appointment is checked with the zone locked (ngx_http_teleclinic_may()).
 */

static ngx_int_t
ngx_http_teleclinic_caller(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call, const char *action,
    ngx_http_teleclinic_caller_t *c, ngx_teleclinic_error_t *err)
{
    uint32_t                          version;
    uint64_t                          subject;
    ngx_str_t                         token;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    ngx_memzero(c, sizeof(ngx_http_teleclinic_caller_t));

    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);
    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    /* $teleclinic_action, for the audit log, even of a refusal */
    ctx->action.data = (u_char *) action;
    ctx->action.len = ngx_strlen(action);

    if (ngx_teleclinic_appt_id_parse(call->seg[1].data, call->seg[1].len,
                                     &c->appt)
        != NGX_OK)
    {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_NOT_FOUND,
                                          "unknown_appointment",
                                          "no such appointment", NULL);
    }

    ctx->appt = c->appt;

    if (ngx_http_teleclinic_is_admin(r) == NGX_OK) {
        c->who = NGX_HTTP_TELECLINIC_ADMIN;
        return NGX_OK;
    }

    if (ngx_http_teleclinic_bearer(r, &token) != NGX_OK
        || ngx_teleclinic_token_verify(&tmcf->token_secret, &token,
                                       ngx_time(), &c->token)
           != NGX_OK)
    {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_UNAUTHORIZED,
                                          "unauthorized",
                                          "a valid, unexpired token is "
                                          "required", NULL);
    }

    if (c->token.kind == NGX_TELECLINIC_TOKEN_DOCTOR) {
        c->who = NGX_HTTP_TELECLINIC_DOCTOR;
        ngx_str_set(&ctx->actor, "doctor");
        return NGX_OK;
    }

    if (ngx_teleclinic_token_appt(&c->token, &subject, &version) != NGX_OK) {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_UNAUTHORIZED,
                                          "unauthorized",
                                          "a valid, unexpired token is "
                                          "required", NULL);
    }

    ngx_str_set(&ctx->actor, "patient");

    if (subject != c->appt) {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_FORBIDDEN,
                                          "forbidden",
                                          "the token is not for this "
                                          "appointment", NULL);
    }

    c->who = NGX_HTTP_TELECLINIC_PATIENT;
    c->version = version;

    return NGX_OK;
}


/* with the zone locked: the appointment exists and the caller is its own */

static ngx_int_t
ngx_http_teleclinic_may(ngx_http_teleclinic_caller_t *c,
    ngx_teleclinic_appt_t *appt, ngx_teleclinic_error_t *err)
{
    if (appt == NULL) {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_NOT_FOUND,
                                          "unknown_appointment",
                                          "no such appointment", NULL);
    }

    switch (c->who) {

    case NGX_HTTP_TELECLINIC_DOCTOR:
        if (c->token.subject.len != appt->doctor_len
            || ngx_strncmp(c->token.subject.data, appt->doctor,
                           appt->doctor_len) != 0)
        {
            return ngx_http_teleclinic_reject(err, NGX_HTTP_FORBIDDEN,
                                              "forbidden",
                                              "the appointment is another "
                                              "doctor's", NULL);
        }

        break;

    case NGX_HTTP_TELECLINIC_PATIENT:
        /* a token given before a reschedule or a cancellation */
        if (c->version != (int64_t) appt->version) {
            return ngx_http_teleclinic_reject(err, NGX_HTTP_UNAUTHORIZED,
                                              "unauthorized",
                                              "a valid, unexpired token is "
                                              "required", NULL);
        }

        break;
    }

    return NGX_OK;
}


/* with the zone locked: the doctor's, of an open record */

static ngx_int_t
ngx_http_teleclinic_writable(ngx_http_teleclinic_caller_t *c,
    ngx_teleclinic_appt_t *appt, ngx_teleclinic_record_t *rec,
    ngx_teleclinic_error_t *err)
{
    if (c->who != NGX_HTTP_TELECLINIC_DOCTOR) {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_FORBIDDEN,
                                          "forbidden",
                                          "only the appointment's doctor "
                                          "writes its record", NULL);
    }

    if (ngx_http_teleclinic_may(c, appt, err) != NGX_OK) {
        return NGX_ERROR;
    }

    if (appt->status == NGX_TELECLINIC_CANCELLED) {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_CONFLICT,
                                          "appointment_cancelled",
                                          "the appointment was cancelled",
                                          NULL);
    }

    if (rec && rec->status == NGX_TELECLINIC_RECORD_FINAL) {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_CONFLICT,
                                          "record_final",
                                          "the record is signed: add an "
                                          "addendum instead", NULL);
    }

    return NGX_OK;
}


/*
 * The record's answer, written directly as booking's answers are: it is on
 * the path of every read and write of a record, and a jansson tree of it
 * cost twice a whole "return 200".  jansson still escapes each text.  rec
 * NULL: nothing written yet, an empty open record.
 */

static ngx_int_t
ngx_http_teleclinic_record_text(ngx_http_request_t *r,
    ngx_teleclinic_record_t *rec, uint64_t appt, ngx_str_t *text)
{
    u_char                           *p, *last;
    size_t                            size;
    ngx_uint_t                        i, k, n;
    ngx_queue_t                      *q;
    ngx_teleclinic_item_t            *it;
    ngx_teleclinic_formulary_t       *f;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    static ngx_str_t  empty = ngx_null_string;

    static struct {
        ngx_uint_t   kind;
        const char  *list;
        const char  *time;
    } lists[] = {
        { NGX_TELECLINIC_ITEM_RX, "prescriptions", "at" },
        { NGX_TELECLINIC_ITEM_ORDER, "orders", "at" },
        { NGX_TELECLINIC_ITEM_FOLLOWUP, "followups", "at" },
        { NGX_TELECLINIC_ITEM_SNAPSHOT, "snapshots", "taken" },
        { NGX_TELECLINIC_ITEM_ADDENDUM, "addenda", "at" },
    };

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    f = tmcf->formulary;

    /* JSON escapes a byte in at most 6 ("\u001f") */

    size = 1024;

    if (rec) {
        for (i = 0; i < NGX_TELECLINIC_NOTE_FIELDS; i++) {
            size += 6 * rec->note[i].len;
        }

        size += 6 * rec->comment.len;

        for (q = ngx_queue_head(&rec->items);
             q != ngx_queue_sentinel(&rec->items);
             q = ngx_queue_next(q))
        {
            it = ngx_queue_data(q, ngx_teleclinic_item_t, queue);

            size += 256 + 6 * it->ref.len
                    + ngx_http_teleclinic_ref_size(f, it);

            for (k = 0; k < NGX_TELECLINIC_ITEM_TEXTS; k++) {
                size += 6 * it->text[k].len;
            }
        }
    }

    p = ngx_pnalloc(r->pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    text->data = p;
    last = p + size;

    p = ngx_cpymem(p, "{\"appointment\":\"", 16);
    p = ngx_teleclinic_appt_id_print(p, appt);
    p = ngx_sprintf(p, "\",\"status\":\"%s\",\"closed\":",
                    rec && rec->status == NGX_TELECLINIC_RECORD_FINAL
                    ? "final" : "open");
    p = ngx_http_teleclinic_time_text(p, rec ? rec->closed : 0);
    p = ngx_cpymem(p, ",\"note\":{", 9);

    for (i = 0; p && i < NGX_TELECLINIC_NOTE_FIELDS; i++) {
        p = ngx_sprintf(p, "%s\"%V\":", i ? "," : "",
                        &ngx_teleclinic_note_fields[i]);
        p = ngx_http_teleclinic_json_text(p, last,
                                          rec ? &rec->note[i] : &empty);
    }

    if (p == NULL) {
        return NGX_ERROR;
    }

    *p++ = '}';

    for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        p = ngx_sprintf(p, ",\"%s\":[", lists[i].list);
        n = 0;

        for (q = rec ? ngx_queue_head(&rec->items) : NULL;
             p && q && q != ngx_queue_sentinel(&rec->items);
             q = ngx_queue_next(q))
        {
            it = ngx_queue_data(q, ngx_teleclinic_item_t, queue);

            if (it->kind != lists[i].kind) {
                continue;
            }

            p = ngx_sprintf(p, "%s{\"id\":%ui,\"%s\":", n++ ? "," : "",
                            it->id, lists[i].time);
            p = ngx_http_teleclinic_time_text(p, it->at);

            switch (it->kind) {

            case NGX_TELECLINIC_ITEM_RX:
                p = ngx_http_teleclinic_json_field(p, last, "drug", &it->ref);
                p = ngx_http_teleclinic_ref_text(p, last, f, it);
                p = ngx_http_teleclinic_json_field(p, last, "dose",
                                                   &it->text[0]);
                p = ngx_http_teleclinic_json_field(p, last, "frequency",
                                                   &it->text[1]);
                if (p) {
                    p = ngx_http_teleclinic_number_text(p, "days",
                                                        it->num[0]);
                    p = ngx_http_teleclinic_number_text(p, "quantity",
                                                        it->num[1]);
                }
                p = ngx_http_teleclinic_json_field(p, last, "note",
                                                   &it->text[2]);
                break;

            case NGX_TELECLINIC_ITEM_ORDER:
                p = ngx_http_teleclinic_json_field(p, last, "exam", &it->ref);
                p = ngx_http_teleclinic_ref_text(p, last, f, it);
                p = ngx_http_teleclinic_json_field(p, last, "note",
                                                   &it->text[0]);
                break;

            case NGX_TELECLINIC_ITEM_FOLLOWUP:
                p = ngx_http_teleclinic_json_field(p, last, "kind", &it->ref);
                p = ngx_http_teleclinic_json_field(p, last, "note",
                                                   &it->text[0]);
                if (p) {
                    p = ngx_cpymem(p, ",\"due\":", 7);
                    p = ngx_http_teleclinic_date_text(p, it->due);
                }
                break;

            case NGX_TELECLINIC_ITEM_ADDENDUM:
                p = ngx_http_teleclinic_json_field(p, last, "text",
                                                   &it->text[0]);
                break;
            }

            if (p) {
                *p++ = '}';
            }
        }

        if (p == NULL) {
            return NGX_ERROR;
        }

        *p++ = ']';
    }

    p = ngx_cpymem(p, ",\"rating\":", 10);
    p = ngx_http_teleclinic_rating_text(p, last, rec);

    if (p == NULL || p >= last) {
        return NGX_ERROR;
    }

    *p++ = '}';
    text->len = p - text->data;

    return NGX_OK;
}


static u_char *
ngx_http_teleclinic_rating_text(u_char *p, u_char *last,
    ngx_teleclinic_record_t *rec)
{
    if (p == NULL) {
        return NULL;
    }

    if (rec == NULL || rec->score == 0) {
        return ngx_cpymem(p, "null", 4);
    }

    p = ngx_sprintf(p, "{\"score\":%ui", rec->score);
    p = ngx_http_teleclinic_json_field(p, last, "comment", &rec->comment);

    if (p == NULL) {
        return NULL;
    }

    p = ngx_cpymem(p, ",\"at\":", 6);
    p = ngx_http_teleclinic_time_text(p, rec->rated);
    *p++ = '}';

    return p;
}


/*
 * A text in quotes, escaped by nginx's own JSON escaper: the texts were
 * checked as UTF-8 when they came in.  The caller's size is 6 bytes a
 * byte, the most an escape takes.
 */

static u_char *
ngx_http_teleclinic_json_text(u_char *p, u_char *last, ngx_str_t *s)
{
    if (p == NULL || (size_t) (last - p) < 6 * s->len + 2) {
        return NULL;
    }

    *p++ = '"';
    p = (u_char *) ngx_escape_json(p, s->data, s->len);
    *p++ = '"';

    return p;
}


/* ,"key":"text" */

static u_char *
ngx_http_teleclinic_json_field(u_char *p, u_char *last, const char *key,
    ngx_str_t *s)
{
    if (p == NULL || (size_t) (last - p) < ngx_strlen(key) + 4) {
        return NULL;
    }

    p = ngx_sprintf(p, ",\"%s\":", key);

    return ngx_http_teleclinic_json_text(p, last, s);
}


/*
 * What the formulary says of a prescribed drug or an ordered exam, so
 * that the patient's summary and the doctor's panel show names and not
 * ids: "name", the translations as "names" {"zh": ...}, and a drug's
 * "form" and "strength".  The formulary of now: an entry taken out of
 * the file since shows its id only.
 */

static size_t
ngx_http_teleclinic_ref_size(ngx_teleclinic_formulary_t *f,
    ngx_teleclinic_item_t *it)
{
    size_t                  size;
    ngx_uint_t              i, n;
    ngx_teleclinic_name_t  *names;
    ngx_teleclinic_drug_t  *drug;
    ngx_teleclinic_exam_t  *exam;

    if (f == NULL) {
        return 0;
    }

    if (it->kind == NGX_TELECLINIC_ITEM_RX) {
        drug = ngx_teleclinic_drug_find(f, &it->ref);
        if (drug == NULL) {
            return 0;
        }

        size = 6 * (drug->name.len + drug->form.len + drug->strength.len);
        names = drug->names;
        n = drug->nnames;

    } else if (it->kind == NGX_TELECLINIC_ITEM_ORDER) {
        exam = ngx_teleclinic_exam_find(f, &it->ref);
        if (exam == NULL) {
            return 0;
        }

        size = 6 * exam->name.len;
        names = exam->names;
        n = exam->nnames;

    } else {
        return 0;
    }

    for (i = 0; i < n; i++) {
        size += 16 + 6 * (names[i].lang.len + names[i].text.len);
    }

    return size + 64;
}


static u_char *
ngx_http_teleclinic_ref_text(u_char *p, u_char *last,
    ngx_teleclinic_formulary_t *f, ngx_teleclinic_item_t *it)
{
    ngx_uint_t              i, n, k;
    ngx_str_t              *name;
    ngx_teleclinic_name_t  *names;
    ngx_teleclinic_drug_t  *drug;
    ngx_teleclinic_exam_t  *exam;

    if (p == NULL || f == NULL) {
        return p;
    }

    drug = NULL;

    if (it->kind == NGX_TELECLINIC_ITEM_RX) {
        drug = ngx_teleclinic_drug_find(f, &it->ref);
        if (drug == NULL) {
            return p;
        }

        name = &drug->name;
        names = drug->names;
        n = drug->nnames;

    } else {
        exam = ngx_teleclinic_exam_find(f, &it->ref);
        if (exam == NULL) {
            return p;
        }

        name = &exam->name;
        names = exam->names;
        n = exam->nnames;
    }

    p = ngx_http_teleclinic_json_field(p, last, "name", name);

    if (drug) {
        p = ngx_http_teleclinic_json_field(p, last, "form", &drug->form);
        p = ngx_http_teleclinic_json_field(p, last, "strength",
                                           &drug->strength);
    }

    if (p == NULL || last - p < 16) {
        return NULL;
    }

    p = ngx_cpymem(p, ",\"names\":{", 10);

    /* the name itself has no language; the rest are its translations */

    for (i = 0, k = 0; p && i < n; i++) {
        if (names[i].lang.len == 0) {
            continue;
        }

        if (last - p < 4) {
            return NULL;
        }

        if (k++) {
            *p++ = ',';
        }

        p = ngx_http_teleclinic_json_text(p, last, &names[i].lang);

        if (p == NULL || last - p < 2) {
            return NULL;
        }

        *p++ = ':';
        p = ngx_http_teleclinic_json_text(p, last, &names[i].text);
    }

    if (p == NULL || last - p < 2) {
        return NULL;
    }

    *p++ = '}';

    return p;
}


/* an RFC 3339 time in quotes, or null for 0 */

static u_char *
ngx_http_teleclinic_time_text(u_char *p, time_t t)
{
    if (t == 0) {
        return ngx_cpymem(p, "null", 4);
    }

    *p++ = '"';
    p = ngx_teleclinic_time_print(p, t);
    *p++ = '"';

    return p;
}


/* the local date of a time, "YYYY-MM-DD", or null for 0 */

static u_char *
ngx_http_teleclinic_date_text(u_char *p, time_t t)
{
    ngx_teleclinic_date_t  date;

    if (t == 0) {
        return ngx_cpymem(p, "null", 4);
    }

    ngx_teleclinic_date_of(t, &date);

    return ngx_sprintf(p, "\"%04ui-%02ui-%02ui\"", date.year, date.month,
                       date.day);
}


/* ,"key":n, or null for 0 (not given) */

static u_char *
ngx_http_teleclinic_number_text(u_char *p, const char *key, ngx_uint_t n)
{
    if (n == 0) {
        return ngx_sprintf(p, ",\"%s\":null", key);
    }

    return ngx_sprintf(p, ",\"%s\":%ui", key, n);
}


/* prescriptions, orders, followups, addenda: the item kind, 0 for none */

static ngx_uint_t
ngx_http_teleclinic_item_kind(ngx_str_t *seg, ngx_uint_t *body,
    const char **action)
{
    ngx_uint_t  i;

    static struct {
        ngx_str_t    name;
        ngx_uint_t   kind;
        ngx_uint_t   body;
        const char  *action;
    } kinds[] = {
        { ngx_string("prescriptions"), NGX_TELECLINIC_ITEM_RX,
          NGX_TELECLINIC_BODY_RX, "prescribe" },
        { ngx_string("orders"), NGX_TELECLINIC_ITEM_ORDER,
          NGX_TELECLINIC_BODY_ORDER, "order" },
        { ngx_string("followups"), NGX_TELECLINIC_ITEM_FOLLOWUP,
          NGX_TELECLINIC_BODY_FOLLOWUP, "followup" },
        { ngx_string("addenda"), NGX_TELECLINIC_ITEM_ADDENDUM,
          NGX_TELECLINIC_BODY_ADDENDUM, "addendum" },
    };

    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (seg->len == kinds[i].name.len
            && ngx_strncmp(seg->data, kinds[i].name.data, seg->len) == 0)
        {
            *body = kinds[i].body;
            *action = kinds[i].action;
            return kinds[i].kind;
        }
    }

    return 0;
}


/*
 * A snapshot's request: the consent it is taken under, and an image by
 * both its Content-Type and its first bytes
 */

static ngx_int_t
ngx_http_teleclinic_snapshot_check(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call, ngx_uint_t *request,
    const char **type, ngx_teleclinic_error_t *err)
{
    off_t       n;
    ngx_str_t   value, ct;
    ngx_uint_t  i;

    *request = 0;

    if (ngx_http_arg(r, (u_char *) "request", 7, &value) == NGX_OK
        && value.len > 0 && value.len <= 16)
    {
        n = 0;

        for (i = 0; i < value.len; i++) {
            if (value.data[i] < '0' || value.data[i] > '9') {
                n = 0;
                break;
            }

            n = n * 10 + (value.data[i] - '0');
        }

        if (n > 0 && (uint64_t) n <= NGX_TELECLINIC_REQUEST_MAX) {
            *request = (ngx_uint_t) n;
        }
    }

    *type = ngx_teleclinic_snapshot_type(call->body.data, call->body.len);

    ngx_str_null(&ct);

    if (r->headers_in.content_type) {
        ct = r->headers_in.content_type->value;

        /* parameters, if any, say nothing of an image */
        for (i = 0; i < ct.len; i++) {
            if (ct.data[i] == ';' || ct.data[i] == ' ') {
                ct.len = i;
                break;
            }
        }
    }

    if (*type == NULL
        || ct.len != ngx_strlen(*type)
        || ngx_strncasecmp(ct.data, (u_char *) *type, ct.len) != 0)
    {
        return ngx_http_teleclinic_reject(err,
                                          NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                          "unsupported_media_type",
                                          "a snapshot is a JPEG or PNG "
                                          "image, sent as image/jpeg or "
                                          "image/png", NULL);
    }

    return NGX_OK;
}


/* its file was not written, or is not wanted: the consent may be used */

static void
ngx_http_teleclinic_snapshot_release(ngx_teleclinic_zone_t *zone,
    uint64_t appt, ngx_uint_t request)
{
    ngx_teleclinic_record_t   *rec;
    ngx_teleclinic_consent_t  *consent;

    ngx_teleclinic_zone_lock(zone);

    rec = ngx_teleclinic_record_lookup(zone, appt);
    consent = rec ? ngx_teleclinic_consent_lookup(rec, request) : NULL;

    if (consent) {
        consent->used = 0;
    }

    ngx_teleclinic_zone_unlock(zone);
}


static ngx_int_t
ngx_http_teleclinic_image_send(ngx_http_request_t *r, ngx_str_t *type,
    ngx_str_t *image)
{
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_length_n = image->len;

    /* a patient's image: never kept by a cache on the way */
    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = image->data;
    b->last = image->data + image->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
