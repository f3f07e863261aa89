
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>
#include <jansson.h>
#include "ngx_http_teleclinic_notify.h"
#include "ngx_teleclinic_token.h"
#include "ngx_teleclinic_record.h"
#include "ngx_teleclinic_snapshot.h"
#include "ngx_teleclinic_fhir.h"


/*
 * The outbox lives in the zone, ordered by the time of the next attempt.
 * Every worker delivers: it takes due messages under a lease, so that a
 * message is sent by one worker at a time, and a worker that dies while
 * sending only delays it until the lease runs out.  Delivery is at least
 * once; the gateway deduplicates on the message id.
 */

#define NGX_TELECLINIC_NOTIFY_PARALLEL   4
#define NGX_TELECLINIC_NOTIFY_SWEEP      30000
#define NGX_TELECLINIC_NOTIFY_BACKOFF    300


typedef struct {
    ngx_pool_t                       *pool;
    ngx_peer_connection_t             peer;
    ngx_url_t                        *url;      /* the gateway or the EMR */
    ngx_buf_t                        *request;
    ngx_buf_t                        *response;
    ngx_uint_t                        msg;
    ngx_uint_t                        kind;
    ngx_teleclinic_fhir_visit_t      *visit;    /* the EMR's, copied */
} ngx_teleclinic_delivery_t;


static void ngx_teleclinic_notify_sweep(ngx_event_t *ev);
static ngx_int_t ngx_teleclinic_notify_message(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_directory_t *dir, ngx_teleclinic_msg_t *msg,
    ngx_pool_t *pool, ngx_buf_t **request);
static ngx_int_t ngx_teleclinic_notify_visit(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_directory_t *dir, ngx_teleclinic_msg_t *msg,
    ngx_pool_t *pool, ngx_teleclinic_fhir_visit_t **visit);
static ngx_int_t ngx_teleclinic_notify_bundle(ngx_teleclinic_delivery_t *d);
static ngx_int_t ngx_teleclinic_notify_request(ngx_pool_t *pool,
    ngx_url_t *u, ngx_str_t *secret, ngx_uint_t id, json_t *o,
    ngx_buf_t **request);
static ngx_int_t ngx_teleclinic_notify_str(ngx_pool_t *pool, ngx_str_t *dst,
    u_char *data, size_t len);
static void ngx_teleclinic_notify_start(ngx_teleclinic_delivery_t *d);
static void ngx_teleclinic_notify_write(ngx_event_t *wev);
static void ngx_teleclinic_notify_read(ngx_event_t *rev);
static void ngx_teleclinic_notify_finish(ngx_teleclinic_delivery_t *d,
    ngx_uint_t delivered);
static void ngx_teleclinic_notify_sent(ngx_teleclinic_zone_t *zone,
    ngx_uint_t id, ngx_log_t *log);
static void ngx_teleclinic_notify_sent_locked(ngx_teleclinic_zone_t *zone,
    ngx_uint_t id, ngx_log_t *log);


static ngx_http_teleclinic_main_conf_t  *ngx_teleclinic_notify_conf;
static ngx_event_t                       ngx_teleclinic_notify_event;
static ngx_uint_t                        ngx_teleclinic_notify_busy;


ngx_int_t
ngx_teleclinic_notify_init_process(ngx_cycle_t *cycle,
    ngx_http_teleclinic_main_conf_t *tmcf)
{
    if (tmcf->notify_url == NULL && tmcf->records_url == NULL) {
        return NGX_OK;
    }

    ngx_teleclinic_notify_conf = tmcf;
    ngx_teleclinic_notify_busy = 0;

    ngx_teleclinic_notify_event.handler = ngx_teleclinic_notify_sweep;
    ngx_teleclinic_notify_event.log = cycle->log;
    ngx_teleclinic_notify_event.data = tmcf;
    ngx_teleclinic_notify_event.cancelable = 1;

    /* messages left from before the start are due now */
    ngx_add_timer(&ngx_teleclinic_notify_event, 100);

    return NGX_OK;
}


void
ngx_teleclinic_notify_exit_process(ngx_cycle_t *cycle)
{
    ngx_teleclinic_notify_conf = NULL;
}


void
ngx_teleclinic_notify_kick(void)
{
    if (ngx_teleclinic_notify_conf == NULL || ngx_exiting) {
        return;
    }

    if (ngx_teleclinic_notify_event.timer_set) {
        ngx_del_timer(&ngx_teleclinic_notify_event);
    }

    if (!ngx_teleclinic_notify_event.posted) {
        ngx_post_event(&ngx_teleclinic_notify_event, &ngx_posted_events);
    }
}


static void
ngx_teleclinic_notify_sweep(ngx_event_t *ev)
{
    time_t                            now, next;
    ngx_msec_t                        delay;
    ngx_pool_t                       *pool;
    ngx_buf_t                        *request;
    ngx_int_t                         rc;
    ngx_uint_t                        n, id;
    ngx_teleclinic_msg_t             *msg, *following;
    ngx_teleclinic_fhir_visit_t      *visit;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_directory_t       *dir;
    ngx_teleclinic_delivery_t        *d[NGX_TELECLINIC_NOTIFY_PARALLEL];
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_teleclinic_notify_conf;

    if (tmcf == NULL || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    zone = ngx_http_teleclinic_zone(tmcf);

    /*
     * the worker's copy of the directory, for the doctor's name; taken
     * before the zone is locked, as a new version is read under the lock
     */
    dir = ngx_http_teleclinic_directory(tmcf, ev->log);

    now = ngx_time();

    /*
     * in a group of nodes other nodes' messages come without a kick
     * here: each second, then, to send those of a node that died
     */
    next = now + (tmcf->redis ? 1 : NGX_TELECLINIC_NOTIFY_SWEEP / 1000);
    n = 0;

    ngx_teleclinic_zone_lock(zone);

    for (msg = ngx_teleclinic_outbox_first(zone); msg; msg = following) {

        following = ngx_teleclinic_outbox_next(zone, msg);

        if ((time_t) msg->node.key > now) {
            next = ngx_min(next, (time_t) msg->node.key);
            break;
        }

        if (msg->lease > now) {
            next = ngx_min(next, msg->lease);
            continue;
        }

        /* another node's, while it is alive to send it */
        if (msg->owner
            && ngx_teleclinic_mirror_owner_alive_locked(zone, msg->owner))
        {
            continue;
        }

        if (ngx_teleclinic_notify_busy + n
            == NGX_TELECLINIC_NOTIFY_PARALLEL)
        {
            next = now;
            break;
        }

        pool = ngx_create_pool(4096, ev->log);
        if (pool == NULL) {
            break;
        }

        id = msg->id.key;
        visit = NULL;
        request = NULL;

        /*
         * the EMR's Bundles can be large: the visit is copied here and
         * the Bundle made after the unlock
         */
        rc = ngx_teleclinic_msg_emr(msg->kind)
             ? ngx_teleclinic_notify_visit(zone, dir, msg, pool, &visit)
             : ngx_teleclinic_notify_message(zone, dir, msg, pool, &request);

        switch (rc) {

        case NGX_OK:
            break;

        case NGX_DECLINED:
            /* nothing to tell any more: a reminder after its visit */
            ngx_destroy_pool(pool);
            ngx_teleclinic_notify_sent_locked(zone, id, ev->log);
            continue;

        default:
            ngx_destroy_pool(pool);
            goto done;
        }

        d[n] = ngx_pcalloc(pool, sizeof(ngx_teleclinic_delivery_t));
        if (d[n] == NULL) {
            ngx_destroy_pool(pool);
            break;
        }

        d[n]->pool = pool;
        d[n]->request = request;
        d[n]->visit = visit;
        d[n]->msg = id;
        d[n]->kind = msg->kind;
        d[n]->url = ngx_teleclinic_msg_emr(msg->kind) ? tmcf->records_url
                                                       : tmcf->notify_url;

        msg->lease = now + tmcf->notify_timeout / 1000 + 2;
        msg->attempts++;
        n++;
    }

done:

    ngx_teleclinic_zone_unlock(zone);

    while (n) {
        n--;

        if (d[n]->visit && ngx_teleclinic_notify_bundle(d[n]) != NGX_OK) {
            ngx_teleclinic_notify_busy++;
            ngx_teleclinic_notify_finish(d[n], 0);
            continue;
        }

        ngx_teleclinic_notify_start(d[n]);
    }

    delay = (next > now) ? (ngx_msec_t) (next - now) * 1000 : 1000;

    if (!ngx_teleclinic_notify_event.timer_set
        && !ngx_teleclinic_notify_event.posted)
    {
        ngx_add_timer(&ngx_teleclinic_notify_event, delay);
    }
}


/* the request for one message; the zone is locked */

static ngx_int_t
ngx_teleclinic_notify_message(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_directory_t *dir, ngx_teleclinic_msg_t *msg,
    ngx_pool_t *pool, ngx_buf_t **request)
{
    u_char                            id[NGX_TELECLINIC_APPT_ID_LEN];
    u_char                            token[NGX_TELECLINIC_TOKEN_MAX], *t;
    u_char                            time[NGX_TELECLINIC_TIME_LEN];
    u_char                            subj[NGX_TELECLINIC_APPT_SUBJECT];
    u_char                            due[sizeof("2026-01-01")];
    u_char                           *url, *p;
    json_t                           *o;
    ngx_str_t                         subject, doctor, name;
    ngx_url_t                        *u;
    ngx_teleclinic_item_t            *item;
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_date_t             date;
    ngx_teleclinic_doctor_t          *doc;
    ngx_teleclinic_record_t          *rec;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_teleclinic_notify_conf;
    u = tmcf->notify_url;

    if (u == NULL) {
        /* the gateway left the configuration on a reload */
        return NGX_DECLINED;
    }

    appt = ngx_teleclinic_appt_lookup(zone, msg->appt);

    /*
     * a reminder after the visit began says nothing; a confirmation of a
     * visit cancelled since is followed by its cancellation anyway
     */
    if (appt == NULL
        || (msg->kind == NGX_TELECLINIC_MSG_REMINDER
            && appt->start <= ngx_time())
        || (msg->kind != NGX_TELECLINIC_MSG_CANCELLATION
            && appt->status == NGX_TELECLINIC_CANCELLED))
    {
        return NGX_DECLINED;
    }

    doctor.data = appt->doctor;
    doctor.len = appt->doctor_len;
    name = doctor;

    doc = dir ? ngx_teleclinic_doctor_find(dir, &doctor) : NULL;

    if (doc) {
        name = doc->name;
    }

    ngx_teleclinic_appt_id_print(id, appt->id);
    ngx_teleclinic_time_print(time, appt->start);

    ngx_teleclinic_token_appt_subject(appt->id, appt->version, subj,
                                      &subject);
    t = ngx_teleclinic_token_issue(&tmcf->token_secret,
                                   NGX_TELECLINIC_TOKEN_PATIENT, &subject,
                                   appt->end + tmcf->token_ttl, token);
    if (t == NULL) {
        return NGX_ERROR;
    }

    url = ngx_pnalloc(pool, tmcf->public_url.len + 64
                            + NGX_TELECLINIC_APPT_ID_LEN + (t - token));
    if (url == NULL) {
        return NGX_ERROR;
    }

    p = ngx_http_teleclinic_join_url(tmcf, &tmcf->public_url, url, appt->id,
                                     token, t - token);

    o = json_pack("{s:I, s:s%, s:s%, s:{s:s%, s:s%}, s:{s:s%, s:s%},"
                  " s:s%, s:s%, s:s%}",
                  "id", (json_int_t) msg->id.key,
                  "type", ngx_teleclinic_msg_kinds[msg->kind].data,
                  ngx_teleclinic_msg_kinds[msg->kind].len,
                  "appointment", id, sizeof(id),
                  "patient",
                  "name", appt->name.data, appt->name.len,
                  "phone", appt->phone.data, appt->phone.len,
                  "doctor",
                  "id", doctor.data, doctor.len,
                  "name", name.data, name.len,
                  "start", time, sizeof(time),
                  "status", ngx_teleclinic_status_names[appt->status].data,
                  ngx_teleclinic_status_names[appt->status].len,
                  "join_url", url, p - url);
    if (o == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(url, "%V/guide.html", &tmcf->public_url);
    json_object_set_new(o, "guide_url", json_stringn((char *) url, p - url));

    if (msg->kind == NGX_TELECLINIC_MSG_FOLLOWUP) {
        rec = ngx_teleclinic_record_lookup(zone, msg->appt);
        item = rec ? ngx_teleclinic_item_lookup(rec, msg->item) : NULL;

        if (item == NULL) {
            json_decref(o);
            return NGX_DECLINED;
        }

        ngx_teleclinic_date_of(item->due, &date);

        json_object_set_new(o, "followup",
            json_pack("{s:s%, s:s%, s:o}",
                      "kind", item->ref.len ? (char *) item->ref.data : "",
                      item->ref.len,
                      "note", item->text[0].len ? (char *) item->text[0].data
                                                : "",
                      item->text[0].len,
                      "due", item->due
                             ? json_stringn((char *) due,
                                   ngx_sprintf(due, "%04ui-%02ui-%02ui",
                                               date.year, date.month,
                                               date.day) - due)
                             : json_null()));
    }

    return ngx_teleclinic_notify_request(pool, u, &tmcf->notify_secret,
                                         msg->id.key, o, request);
}


/*
 * A message's request: the JSON body, signed with the secret over
 * "timestamp." and the body, as X-Teleclinic-Signature: t=...,sha256=...
 */

static ngx_int_t
ngx_teleclinic_notify_request(ngx_pool_t *pool, ngx_url_t *u,
    ngx_str_t *secret, ngx_uint_t id, json_t *o, ngx_buf_t **request)
{
    u_char      md[32], hex[64], *p, *body;
    u_char      port[sizeof(":65535")];
    size_t      len;
    ngx_buf_t  *b;

    len = json_dumpb(o, NULL, 0, JSON_COMPACT);

    b = ngx_create_temp_buf(pool, len + 512 + u->uri.len + u->host.len);
    if (b == NULL) {
        json_decref(o);
        return NGX_ERROR;
    }

    /* the body goes first in the buffer's tail; the headers sign it */
    body = b->end - len;
    json_dumpb(o, (char *) body, len, JSON_COMPACT);
    json_decref(o);

    p = ngx_sprintf(b->start, "%T.", ngx_time());
    ngx_memmove(p, body, len);

    ngx_teleclinic_hmac_sha256(secret, b->start, (p - b->start) + len, md);
    ngx_hex_dump(hex, md, 32);

    ngx_memmove(body, p, len);

    /* the Host header names the port unless it is http's own */
    port[0] = '\0';

    if (u->port != 80) {
        ngx_sprintf(port, ":%d%Z", (int) u->port);
    }

    b->last = ngx_sprintf(b->start,
                          "POST %V HTTP/1.1\r\n"
                          "Host: %V%s\r\n"
                          "Content-Type: application/json\r\n"
                          "Content-Length: %uz\r\n"
                          "X-Teleclinic-Message-Id: %ui\r\n"
                          "X-Teleclinic-Signature: t=%T,sha256=%*s\r\n"
                          "Connection: close\r\n\r\n",
                          &u->uri, &u->host, port, len, id,
                          ngx_time(), (size_t) 64, hex);

    b->last = ngx_movemem(b->last, body, len);

    *request = b;

    return NGX_OK;
}


/*
 * The zone is locked: what the EMR's Bundle shows of the visit, copied
 * into the delivery's pool (the formulary's names are the cycle's).
 */

static ngx_int_t
ngx_teleclinic_notify_visit(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_directory_t *dir, ngx_teleclinic_msg_t *msg,
    ngx_pool_t *pool, ngx_teleclinic_fhir_visit_t **visit)
{
    ngx_uint_t                        i;
    ngx_str_t                         doctor, *note[NGX_TELECLINIC_NOTE_FIELDS];
    ngx_queue_t                      *q;
    ngx_teleclinic_item_t            *item;
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_drug_t            *drug;
    ngx_teleclinic_exam_t            *exam;
    ngx_teleclinic_doctor_t          *doc;
    ngx_teleclinic_record_t          *rec;
    ngx_teleclinic_fhir_rx_t         *rx;
    ngx_teleclinic_fhir_visit_t      *v;
    ngx_teleclinic_fhir_order_t      *order;
    ngx_teleclinic_department_t      *dept;
    ngx_teleclinic_fhir_addendum_t   *add;
    ngx_teleclinic_fhir_followup_t   *fu;
    ngx_teleclinic_fhir_snapshot_t   *snap;
    ngx_teleclinic_fhir_consent_t    *fc;
    ngx_teleclinic_consent_t         *consent;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_teleclinic_notify_conf;

    if (tmcf->records_url == NULL) {
        /* the EMR left the configuration on a reload */
        return NGX_DECLINED;
    }

    appt = ngx_teleclinic_appt_lookup(zone, msg->appt);
    rec = ngx_teleclinic_record_lookup(zone, msg->appt);

    if (appt == NULL || rec == NULL
        || (msg->kind == NGX_TELECLINIC_MSG_RATING && rec->score == 0))
    {
        return NGX_DECLINED;
    }

    v = ngx_pcalloc(pool, sizeof(ngx_teleclinic_fhir_visit_t));
    if (v == NULL) {
        return NGX_ERROR;
    }

    v->appt = appt->id;
    v->base = tmcf->public_url;
    v->start = appt->start;
    v->end = appt->end;
    v->visit_start = appt->visit_start;
    v->visit_end = appt->visit_end;
    v->closed = rec->closed;
    v->score = rec->score;
    v->rated = rec->rated;

    doctor.data = appt->doctor;
    doctor.len = appt->doctor_len;

    doc = dir ? ngx_teleclinic_doctor_find(dir, &doctor) : NULL;
    dept = doc ? ngx_teleclinic_department_find(dir, &doc->department)
               : NULL;

    if (ngx_teleclinic_notify_str(pool, &v->patient_name, appt->name.data,
                                  appt->name.len) != NGX_OK
        || ngx_teleclinic_notify_str(pool, &v->patient_phone,
                                     appt->phone.data, appt->phone.len)
           != NGX_OK
        || ngx_teleclinic_notify_str(pool, &v->reason, appt->reason.data,
                                     appt->reason.len) != NGX_OK
        || ngx_teleclinic_notify_str(pool, &v->doctor, doctor.data,
                                     doctor.len) != NGX_OK
        || ngx_teleclinic_notify_str(pool, &v->comment, rec->comment.data,
                                     rec->comment.len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    note[0] = &v->complaint;
    note[1] = &v->history;
    note[2] = &v->findings;
    note[3] = &v->diagnosis;
    note[4] = &v->advice;

    for (i = 0; i < NGX_TELECLINIC_NOTE_FIELDS; i++) {
        if (ngx_teleclinic_notify_str(pool, note[i], rec->note[i].data,
                                      rec->note[i].len)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (doc) {
        v->doctor_name = doc->name;
    }

    if (dept) {
        v->department = dept->name;
    }

    /* room for every item in each list: a record holds at most 200 */
    i = rec->nitems ? rec->nitems : 1;

    v->rx = ngx_pcalloc(pool, i * sizeof(ngx_teleclinic_fhir_rx_t));
    v->orders = ngx_pcalloc(pool, i * sizeof(ngx_teleclinic_fhir_order_t));
    v->followups = ngx_pcalloc(pool,
                               i * sizeof(ngx_teleclinic_fhir_followup_t));
    v->addenda = ngx_pcalloc(pool,
                             i * sizeof(ngx_teleclinic_fhir_addendum_t));

    v->snapshots = ngx_pcalloc(pool,
                               i * sizeof(ngx_teleclinic_fhir_snapshot_t));
    v->consents = ngx_pcalloc(pool, (rec->nconsents ? rec->nconsents : 1)
                                    * sizeof(ngx_teleclinic_fhir_consent_t));

    if (v->rx == NULL || v->orders == NULL || v->followups == NULL
        || v->addenda == NULL || v->snapshots == NULL || v->consents == NULL)
    {
        return NGX_ERROR;
    }

    for (q = ngx_queue_head(&rec->consents);
         q != ngx_queue_sentinel(&rec->consents);
         q = ngx_queue_next(q))
    {
        consent = ngx_queue_data(q, ngx_teleclinic_consent_t, queue);

        fc = &v->consents[v->nconsents++];
        fc->request = consent->request;
        fc->asked = consent->asked;
        fc->answered = consent->answered;
        fc->granted = consent->granted;
    }

    for (q = ngx_queue_head(&rec->items);
         q != ngx_queue_sentinel(&rec->items);
         q = ngx_queue_next(q))
    {
        item = ngx_queue_data(q, ngx_teleclinic_item_t, queue);

        switch (item->kind) {

        case NGX_TELECLINIC_ITEM_RX:
            rx = &v->rx[v->nrx++];
            rx->id = item->id;
            rx->at = item->at;
            rx->days = item->num[0];
            rx->quantity = item->num[1];

            if (ngx_teleclinic_notify_str(pool, &rx->drug, item->ref.data,
                                          item->ref.len) != NGX_OK
                || ngx_teleclinic_notify_str(pool, &rx->dose,
                                             item->text[0].data,
                                             item->text[0].len) != NGX_OK
                || ngx_teleclinic_notify_str(pool, &rx->frequency,
                                             item->text[1].data,
                                             item->text[1].len) != NGX_OK
                || ngx_teleclinic_notify_str(pool, &rx->note,
                                             item->text[2].data,
                                             item->text[2].len) != NGX_OK)
            {
                return NGX_ERROR;
            }

            drug = tmcf->formulary
                   ? ngx_teleclinic_drug_find(tmcf->formulary, &rx->drug)
                   : NULL;
            if (drug) {
                rx->name = drug->name;
                rx->code = drug->code;
                rx->system = drug->system;
            }

            break;

        case NGX_TELECLINIC_ITEM_ORDER:
            order = &v->orders[v->norders++];
            order->id = item->id;
            order->at = item->at;

            if (ngx_teleclinic_notify_str(pool, &order->exam, item->ref.data,
                                          item->ref.len) != NGX_OK
                || ngx_teleclinic_notify_str(pool, &order->note,
                                             item->text[0].data,
                                             item->text[0].len) != NGX_OK)
            {
                return NGX_ERROR;
            }

            exam = tmcf->formulary
                   ? ngx_teleclinic_exam_find(tmcf->formulary, &order->exam)
                   : NULL;
            if (exam) {
                order->name = exam->name;
                order->code = exam->code;
                order->system = exam->system;
            }

            break;

        case NGX_TELECLINIC_ITEM_FOLLOWUP:
            fu = &v->followups[v->nfollowups++];
            fu->id = item->id;
            fu->at = item->at;
            fu->due = item->due;

            if (ngx_teleclinic_notify_str(pool, &fu->kind, item->ref.data,
                                          item->ref.len) != NGX_OK
                || ngx_teleclinic_notify_str(pool, &fu->note,
                                             item->text[0].data,
                                             item->text[0].len) != NGX_OK)
            {
                return NGX_ERROR;
            }

            break;

        case NGX_TELECLINIC_ITEM_SNAPSHOT:

            /*
             * the file is read after the unlock, by its name (the
             * appointment and the id); data.len is the image's size
             */

            if (msg->kind != NGX_TELECLINIC_MSG_RECORD) {
                break;
            }

            snap = &v->snapshots[v->nsnapshots++];
            snap->id = item->id;
            snap->taken = item->at;
            snap->data.len = item->num[0];

            if (ngx_teleclinic_notify_str(pool, &snap->content_type,
                                          item->ref.data, item->ref.len)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            break;

        case NGX_TELECLINIC_ITEM_ADDENDUM:
            add = &v->addenda[v->naddenda++];
            add->id = item->id;
            add->at = item->at;

            if (ngx_teleclinic_notify_str(pool, &add->text,
                                          item->text[0].data,
                                          item->text[0].len) != NGX_OK)
            {
                return NGX_ERROR;
            }

            break;
        }
    }

    *visit = v;

    return NGX_OK;
}


/* after the unlock: the EMR's Bundle and its request */

static ngx_int_t
ngx_teleclinic_notify_bundle(ngx_teleclinic_delivery_t *d)
{
    json_t                           *o;
    ngx_int_t                         rc;
    ngx_uint_t                        i, n;
    ngx_teleclinic_fhir_visit_t      *v;
    ngx_teleclinic_fhir_snapshot_t   *snap;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_teleclinic_notify_conf;
    v = d->visit;

    /*
     * the images, read here, without the zone's lock; one whose file is
     * gone is left out (and logged) rather than hold the record back
     * forever; one that cannot be read now is tried again with the
     * Bundle
     */

    n = 0;

    for (i = 0; i < v->nsnapshots; i++) {
        snap = &v->snapshots[i];

        rc = ngx_teleclinic_snapshot_read(
                 ngx_http_teleclinic_zone(tmcf), &tmcf->keys, v->appt,
                 snap->id, snap->data.len, &snap->data, d->pool,
                 ngx_cycle->log);

        if (rc == NGX_DECLINED) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "teleclinic: the EMR's Bundle of %016xL goes "
                          "without snapshot %ui: its file is missing",
                          v->appt, snap->id);
            continue;
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        v->snapshots[n++] = *snap;
    }

    v->nsnapshots = n;

    o = (d->kind == NGX_TELECLINIC_MSG_RATING)
        ? ngx_teleclinic_fhir_rating(v)
        : ngx_teleclinic_fhir_record(v);

    if (o == NULL) {
        return NGX_ERROR;
    }

    return ngx_teleclinic_notify_request(d->pool, tmcf->records_url,
                                         &tmcf->records_secret, d->msg, o,
                                         &d->request);
}


static ngx_int_t
ngx_teleclinic_notify_str(ngx_pool_t *pool, ngx_str_t *dst, u_char *data,
    size_t len)
{
    dst->len = len;
    dst->data = NULL;

    if (len == 0) {
        return NGX_OK;
    }

    dst->data = ngx_pnalloc(pool, len);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, data, len);

    return NGX_OK;
}


static void
ngx_teleclinic_notify_start(ngx_teleclinic_delivery_t *d)
{
    ngx_int_t                         rc;
    ngx_connection_t                 *c;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_teleclinic_notify_conf;

    ngx_teleclinic_notify_busy++;

    d->peer.sockaddr = d->url->addrs[0].sockaddr;
    d->peer.socklen = d->url->addrs[0].socklen;
    d->peer.name = &d->url->addrs[0].name;
    d->peer.get = ngx_event_get_peer;
    d->peer.log = ngx_cycle->log;
    d->peer.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&d->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "teleclinic: cannot connect to the gateway %V, "
                      "message %ui will be retried", d->peer.name, d->msg);
        ngx_teleclinic_notify_finish(d, 0);
        return;
    }

    c = d->peer.connection;
    c->data = d;
    c->pool = d->pool;
    c->log->action = "delivering a notification";

    c->write->handler = ngx_teleclinic_notify_write;
    c->read->handler = ngx_teleclinic_notify_read;

    ngx_add_timer(c->write, tmcf->notify_timeout);
    ngx_add_timer(c->read, tmcf->notify_timeout);

    if (rc == NGX_OK) {
        ngx_teleclinic_notify_write(c->write);
    }
}


static void
ngx_teleclinic_notify_write(ngx_event_t *wev)
{
    ssize_t                     n;
    ngx_buf_t                  *b;
    ngx_connection_t           *c;
    ngx_teleclinic_delivery_t  *d;

    c = wev->data;
    d = c->data;
    b = d->request;

    if (wev->timedout) {
        ngx_teleclinic_notify_finish(d, 0);
        return;
    }

    while (b->pos < b->last) {
        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_teleclinic_notify_finish(d, 0);
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_teleclinic_notify_finish(d, 0);
            return;
        }

        b->pos += n;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }
}


static void
ngx_teleclinic_notify_read(ngx_event_t *rev)
{
    u_char                     *p;
    ssize_t                     n;
    ngx_buf_t                  *b;
    ngx_uint_t                  status;
    ngx_connection_t           *c;
    ngx_teleclinic_delivery_t  *d;

    c = rev->data;
    d = c->data;

    if (rev->timedout) {
        ngx_log_error(NGX_LOG_WARN, c->log, NGX_ETIMEDOUT,
                      "teleclinic: the gateway timed out, message %ui will "
                      "be retried", d->msg);
        ngx_teleclinic_notify_finish(d, 0);
        return;
    }

    if (d->response == NULL) {
        d->response = ngx_create_temp_buf(d->pool, 256);
        if (d->response == NULL) {
            ngx_teleclinic_notify_finish(d, 0);
            return;
        }
    }

    b = d->response;

    for ( ;; ) {
        n = c->recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_teleclinic_notify_finish(d, 0);
            }

            return;
        }

        if (n == NGX_ERROR || n == 0) {
            break;
        }

        b->last += n;

        /* the status line is all that decides */
        if (ngx_strlchr(b->pos, b->last, '\n') || b->last == b->end) {
            break;
        }
    }

    p = b->pos;
    status = 0;

    if (b->last - p >= 12 && ngx_strncmp(p, "HTTP/1.", 7) == 0
        && p[8] == ' ')
    {
        status = ngx_atoi(p + 9, 3);
    }

    if (status >= 200 && status < 300) {
        ngx_teleclinic_notify_finish(d, 1);
        return;
    }

    if (status == 0) {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "teleclinic: no answer from the gateway, message %ui "
                      "will be retried", d->msg);

    } else {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "teleclinic: the gateway answered %ui, message %ui "
                      "will be retried", status, d->msg);
    }

    ngx_teleclinic_notify_finish(d, 0);
}


static void
ngx_teleclinic_notify_finish(ngx_teleclinic_delivery_t *d,
    ngx_uint_t delivered)
{
    time_t                            next;
    ngx_uint_t                        backoff;
    ngx_teleclinic_msg_t             *msg;
    ngx_teleclinic_zone_t            *zone;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_teleclinic_notify_conf;

    if (d->peer.connection) {
        ngx_close_connection(d->peer.connection);
        d->peer.connection = NULL;
    }

    ngx_teleclinic_notify_busy--;

    if (tmcf == NULL) {
        ngx_destroy_pool(d->pool);
        return;
    }

    zone = ngx_http_teleclinic_zone(tmcf);

    if (delivered) {
        ngx_teleclinic_notify_sent(zone, d->msg, ngx_cycle->log);

    } else {
        ngx_teleclinic_zone_lock(zone);

        msg = ngx_teleclinic_msg_lookup(zone, d->msg);

        if (msg) {
            /* 2 s, 4 s, 8 s, ... up to 5 minutes between attempts */
            backoff = msg->attempts < 8 ? (ngx_uint_t) 1 << msg->attempts
                                        : NGX_TELECLINIC_NOTIFY_BACKOFF;
            backoff = ngx_min(backoff, NGX_TELECLINIC_NOTIFY_BACKOFF);

            next = ngx_time() + backoff;
            msg->lease = 0;
            ngx_teleclinic_outbox_retry(zone, msg, next);
        }

        ngx_teleclinic_zone_unlock(zone);
    }

    ngx_destroy_pool(d->pool);

    ngx_teleclinic_notify_kick();
}


/* a delivered message leaves the outbox through the journal */

static void
ngx_teleclinic_notify_sent(ngx_teleclinic_zone_t *zone, ngx_uint_t id,
    ngx_log_t *log)
{
    ngx_teleclinic_zone_lock(zone);
    ngx_teleclinic_notify_sent_locked(zone, id, log);
    ngx_teleclinic_zone_unlock(zone);
}


/* the same for the sweep, which holds the lock: the mutex is not recursive */

static void
ngx_teleclinic_notify_sent_locked(ngx_teleclinic_zone_t *zone, ngx_uint_t id,
    ngx_log_t *log)
{
    ngx_teleclinic_event_t  ev;

    ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
    ev.op = NGX_TELECLINIC_EV_SENT;
    ev.at = ngx_time();
    ev.msg = id;

    (void) ngx_teleclinic_journal_commit(zone, &ev, log);
}
