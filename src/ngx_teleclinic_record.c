
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_teleclinic_journal.h"
#include "ngx_teleclinic_record.h"


static ngx_teleclinic_record_t *ngx_teleclinic_record_get(
    ngx_teleclinic_zone_t *zone, ngx_teleclinic_event_t *ev);
static ngx_int_t ngx_teleclinic_record_texts(ngx_teleclinic_zone_t *zone,
    ngx_str_t *dst, ngx_str_t *src, ngx_uint_t n);
static void ngx_teleclinic_record_free_texts(ngx_teleclinic_zone_t *zone,
    ngx_str_t *s, ngx_uint_t n);
static ngx_int_t ngx_teleclinic_record_item(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_record_t *rec, ngx_teleclinic_event_t *ev);
static ngx_int_t ngx_teleclinic_record_consent(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_record_t *rec, ngx_teleclinic_event_t *ev);
static ngx_int_t ngx_teleclinic_copy_str(ngx_str_t *dst, ngx_str_t *src,
    ngx_pool_t *pool);
static void ngx_teleclinic_record_free(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_record_t *rec);
static ngx_int_t ngx_teleclinic_record_change(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_record_t *rec, ngx_teleclinic_event_t *ev);


ngx_str_t  ngx_teleclinic_note_fields[] = {
    ngx_string("complaint"),
    ngx_string("history"),
    ngx_string("findings"),
    ngx_string("diagnosis"),
    ngx_string("advice")
};


ngx_str_t  ngx_teleclinic_followup_kinds[] = {
    ngx_string("payment"),
    ngx_string("pharmacy"),
    ngx_string("exam"),
    ngx_string("revisit"),
    ngx_null_string
};


ngx_teleclinic_record_t *
ngx_teleclinic_record_lookup(ngx_teleclinic_zone_t *zone, uint64_t appt)
{
    ngx_rbtree_key_t          key;
    ngx_rbtree_node_t        *node, *sentinel;
    ngx_teleclinic_record_t  *rec;

    if (zone->sh->records == NULL) {
        return NULL;
    }

    /* the ids are random: their low bits make a good key */
    key = (ngx_rbtree_key_t) appt;

    node = zone->sh->records->tree.root;
    sentinel = zone->sh->records->tree.sentinel;

    while (node != sentinel) {

        if (key != node->key) {
            node = (key < node->key) ? node->left : node->right;
            continue;
        }

        rec = (ngx_teleclinic_record_t *) node;

        if (rec->appt == appt) {
            return rec;
        }

        node = (appt < rec->appt) ? node->left : node->right;
    }

    return NULL;
}


ngx_teleclinic_item_t *
ngx_teleclinic_item_lookup(ngx_teleclinic_record_t *rec, ngx_uint_t id)
{
    ngx_queue_t            *q;
    ngx_teleclinic_item_t  *item;

    for (q = ngx_queue_head(&rec->items);
         q != ngx_queue_sentinel(&rec->items);
         q = ngx_queue_next(q))
    {
        item = ngx_queue_data(q, ngx_teleclinic_item_t, queue);

        if (item->id == id) {
            return item;
        }
    }

    return NULL;
}


ngx_teleclinic_consent_t *
ngx_teleclinic_consent_lookup(ngx_teleclinic_record_t *rec,
    ngx_uint_t request)
{
    ngx_queue_t               *q;
    ngx_teleclinic_consent_t  *consent;

    for (q = ngx_queue_head(&rec->consents);
         q != ngx_queue_sentinel(&rec->consents);
         q = ngx_queue_next(q))
    {
        consent = ngx_queue_data(q, ngx_teleclinic_consent_t, queue);

        if (consent->request == request) {
            return consent;
        }
    }

    return NULL;
}


ngx_int_t
ngx_teleclinic_consent_usable(ngx_teleclinic_consent_t *consent, time_t now,
    time_t timeout)
{
    if (consent == NULL
        || !consent->granted
        || consent->used
        || now - consent->answered > timeout)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * Every allocation comes before anything changes, so that a full zone
 * (NGX_DECLINED) leaves the record as it was.
 */

ngx_int_t
ngx_teleclinic_record_apply_locked(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev)
{
    ngx_int_t                 rc;
    ngx_uint_t                made;
    ngx_teleclinic_record_t  *rec;

    if (ev->op == NGX_TELECLINIC_EV_FORGET) {
        rec = ngx_teleclinic_record_lookup(zone, ev->id);

        if (rec) {
            ngx_teleclinic_record_free(zone, rec);
        }

        return NGX_OK;
    }

    /* a record made for a change that then fails goes again */
    made = (ngx_teleclinic_record_lookup(zone, ev->id) == NULL);

    rec = ngx_teleclinic_record_get(zone, ev);
    if (rec == NULL) {
        return NGX_DECLINED;
    }

    rc = ngx_teleclinic_record_change(zone, rec, ev);

    if (rc != NGX_OK && made) {
        ngx_teleclinic_record_free(zone, rec);
    }

    return rc;
}


static ngx_int_t
ngx_teleclinic_record_change(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_record_t *rec, ngx_teleclinic_event_t *ev)
{
    ngx_str_t                  note[NGX_TELECLINIC_NOTE_FIELDS];
    ngx_teleclinic_item_t     *item;
    ngx_teleclinic_records_t  *records;

    records = zone->sh->records;

    switch (ev->op) {

    case NGX_TELECLINIC_EV_NOTE:
        if (ngx_teleclinic_record_texts(zone, note, ev->text,
                                        NGX_TELECLINIC_NOTE_FIELDS)
            != NGX_OK)
        {
            return NGX_DECLINED;
        }

        ngx_teleclinic_record_free_texts(zone, rec->note,
                                         NGX_TELECLINIC_NOTE_FIELDS);
        ngx_memcpy(rec->note, note, sizeof(note));
        rec->updated = ev->at;

        /* compaction's: the ids given before, dropped items' included */
        if (ev->item > rec->last_item) {
            rec->last_item = ev->item;
        }

        return NGX_OK;

    case NGX_TELECLINIC_EV_ITEM:
        return ngx_teleclinic_record_item(zone, rec, ev);

    case NGX_TELECLINIC_EV_CONSENT:
        return ngx_teleclinic_record_consent(zone, rec, ev);

    case NGX_TELECLINIC_EV_DROP:
        item = ngx_teleclinic_item_lookup(rec, ev->item);

        if (item) {
            ngx_queue_remove(&item->queue);
            ngx_teleclinic_record_free_texts(zone, item->text,
                                             NGX_TELECLINIC_ITEM_TEXTS);
            ngx_teleclinic_record_free_texts(zone, &item->ref, 1);
            ngx_slab_free_locked(zone->shpool, item);
            rec->nitems--;
            zone->sh->nrecord_events--;
        }

        return NGX_OK;

    case NGX_TELECLINIC_EV_CLOSE:
        if (rec->status != NGX_TELECLINIC_RECORD_FINAL) {

            /* the EMR gets the record (and compaction's again nothing) */
            if (ngx_teleclinic_outbox_add(zone, ev, NGX_TELECLINIC_MSG_RECORD,
                                          ev->at)
                != NGX_OK)
            {
                return NGX_DECLINED;
            }

            rec->status = NGX_TELECLINIC_RECORD_FINAL;
            rec->closed = ev->at;

            if (!zone->replay && ev->node.len == 0) {
                records->closed++;
            }
        }

        return NGX_OK;

    case NGX_TELECLINIC_EV_RATING:
        if (ev->num[0] < 1 || ev->num[0] > 5) {
            return NGX_ERROR;
        }

        if (ngx_teleclinic_record_texts(zone, note, ev->text, 1) != NGX_OK) {
            return NGX_DECLINED;
        }

        if (ngx_teleclinic_outbox_add(zone, ev, NGX_TELECLINIC_MSG_RATING,
                                      ev->at)
            != NGX_OK)
        {
            ngx_teleclinic_record_free_texts(zone, note, 1);
            return NGX_DECLINED;
        }

        ngx_teleclinic_record_free_texts(zone, &rec->comment, 1);
        rec->comment = note[0];
        rec->score = ev->num[0];
        rec->rated = ev->at;

        if (!zone->replay && ev->node.len == 0) {
            records->ratings[rec->score - 1]++;
        }

        return NGX_OK;
    }

    return NGX_ERROR;
}


ngx_int_t
ngx_teleclinic_record_snapshot_locked(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_snapshot_pt write, void *data)
{
    ngx_queue_t               *q;
    ngx_rbtree_node_t         *node, *root, *sentinel;
    ngx_teleclinic_item_t     *item;
    ngx_teleclinic_event_t     ev;
    ngx_teleclinic_record_t   *rec;
    ngx_teleclinic_consent_t  *consent;

    if (zone->sh->records == NULL) {
        return NGX_OK;
    }

    root = zone->sh->records->tree.root;
    sentinel = zone->sh->records->tree.sentinel;

    if (root == sentinel) {
        return NGX_OK;
    }

    for (node = ngx_rbtree_min(root, sentinel);
         node;
         node = ngx_rbtree_next(&zone->sh->records->tree, node))
    {
        rec = (ngx_teleclinic_record_t *) node;

        /* the note first: it makes the record, with its creation time */
        ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
        ev.op = NGX_TELECLINIC_EV_NOTE;
        ev.quiet = 1;
        ev.id = rec->appt;
        ev.at = rec->updated ? rec->updated : rec->created;
        ev.created = rec->created;
        ev.item = rec->last_item;
        ngx_memcpy(ev.text, rec->note, sizeof(rec->note));

        if (write(&ev, data) != NGX_OK) {
            return NGX_ERROR;
        }

        /* before the snapshots, which mark their consents used again */

        for (q = ngx_queue_head(&rec->consents);
             q != ngx_queue_sentinel(&rec->consents);
             q = ngx_queue_next(q))
        {
            consent = ngx_queue_data(q, ngx_teleclinic_consent_t, queue);

            ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
            ev.op = NGX_TELECLINIC_EV_CONSENT;
            ev.quiet = 1;
            ev.id = rec->appt;
            ev.at = consent->answered;
            ev.created = consent->asked;
            ev.request = consent->request;
            ev.num[0] = consent->granted;

            if (write(&ev, data) != NGX_OK) {
                return NGX_ERROR;
            }
        }

        for (q = ngx_queue_head(&rec->items);
             q != ngx_queue_sentinel(&rec->items);
             q = ngx_queue_next(q))
        {
            item = ngx_queue_data(q, ngx_teleclinic_item_t, queue);

            ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
            ev.op = NGX_TELECLINIC_EV_ITEM;
            ev.quiet = 1;
            ev.id = rec->appt;
            ev.at = item->at;
            ev.item = item->id;
            ev.item_kind = item->kind;
            ev.due = item->due;
            ev.ref = item->ref;
            ev.num[0] = item->num[0];
            ev.num[1] = item->num[1];
            ev.request = item->request;
            ngx_memcpy(ev.text, item->text, sizeof(item->text));

            if (write(&ev, data) != NGX_OK) {
                return NGX_ERROR;
            }
        }

        if (rec->score) {
            ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
            ev.op = NGX_TELECLINIC_EV_RATING;
            ev.quiet = 1;
            ev.id = rec->appt;
            ev.at = rec->rated;
            ev.num[0] = rec->score;
            ev.text[0] = rec->comment;

            if (write(&ev, data) != NGX_OK) {
                return NGX_ERROR;
            }
        }

        if (rec->status == NGX_TELECLINIC_RECORD_FINAL) {
            ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
            ev.op = NGX_TELECLINIC_EV_CLOSE;
            ev.quiet = 1;
            ev.id = rec->appt;
            ev.at = rec->closed;

            if (write(&ev, data) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


/*
 * Records whose visit ended more than retention ago leave the zone, each
 * through a "forget" event, so that a replay forgets them too; one whose
 * Bundle the EMR has not yet taken stays until it has.  At most max in
 * one call, to bound the time the zone is locked.  Returns how many.
 */

ngx_uint_t
ngx_teleclinic_record_expire(ngx_teleclinic_zone_t *zone, time_t retention,
    time_t now, ngx_uint_t max, ngx_log_t *log)
{
    time_t                    ended;
    ngx_uint_t                n;
    ngx_rbtree_node_t        *node, *next, *root, *sentinel;
    ngx_teleclinic_appt_t    *appt;
    ngx_teleclinic_event_t    ev;
    ngx_teleclinic_record_t  *rec;

    n = 0;

    ngx_teleclinic_zone_lock(zone);

    if (zone->sh->records == NULL) {
        ngx_teleclinic_zone_unlock(zone);
        return 0;
    }

    root = zone->sh->records->tree.root;
    sentinel = zone->sh->records->tree.sentinel;

    node = (root != sentinel) ? ngx_rbtree_min(root, sentinel) : NULL;

    for ( /* void */ ; node && n < max; node = next) {

        next = ngx_rbtree_next(&zone->sh->records->tree, node);
        rec = (ngx_teleclinic_record_t *) node;

        appt = ngx_teleclinic_appt_lookup(zone, rec->appt);

        ended = appt ? (appt->visit_end ? appt->visit_end : appt->end)
                     : rec->created;

        if (ended + retention > now
            || ngx_teleclinic_outbox_emr_pending(zone, rec->appt))
        {
            continue;
        }

        ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
        ev.op = NGX_TELECLINIC_EV_FORGET;
        ev.at = now;
        ev.id = rec->appt;

        if (ngx_teleclinic_journal_commit(zone, &ev, log) != NGX_OK) {
            break;
        }

        n++;
    }

    ngx_teleclinic_zone_unlock(zone);

    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "teleclinic: %ui visit records past their retention "
                      "expired", n);
    }

    return n;
}


ngx_teleclinic_record_t *
ngx_teleclinic_record_copy(ngx_teleclinic_record_t *rec, ngx_pool_t *pool)
{
    ngx_uint_t                 i;
    ngx_queue_t               *q;
    ngx_teleclinic_item_t     *item, *copy;
    ngx_teleclinic_record_t   *r;
    ngx_teleclinic_consent_t  *consent, *cc;

    r = ngx_pcalloc(pool, sizeof(ngx_teleclinic_record_t));
    if (r == NULL) {
        return NULL;
    }

    r->appt = rec->appt;
    r->status = rec->status;
    r->created = rec->created;
    r->updated = rec->updated;
    r->closed = rec->closed;
    r->nitems = rec->nitems;
    r->last_item = rec->last_item;
    r->score = rec->score;
    r->rated = rec->rated;
    r->nconsents = rec->nconsents;

    ngx_queue_init(&r->items);
    ngx_queue_init(&r->consents);

    for (q = ngx_queue_head(&rec->consents);
         q != ngx_queue_sentinel(&rec->consents);
         q = ngx_queue_next(q))
    {
        consent = ngx_queue_data(q, ngx_teleclinic_consent_t, queue);

        cc = ngx_palloc(pool, sizeof(ngx_teleclinic_consent_t));
        if (cc == NULL) {
            return NULL;
        }

        *cc = *consent;
        ngx_queue_insert_tail(&r->consents, &cc->queue);
    }

    for (i = 0; i < NGX_TELECLINIC_NOTE_FIELDS; i++) {
        if (ngx_teleclinic_copy_str(&r->note[i], &rec->note[i], pool)
            != NGX_OK)
        {
            return NULL;
        }
    }

    if (ngx_teleclinic_copy_str(&r->comment, &rec->comment, pool) != NGX_OK) {
        return NULL;
    }

    for (q = ngx_queue_head(&rec->items);
         q != ngx_queue_sentinel(&rec->items);
         q = ngx_queue_next(q))
    {
        item = ngx_queue_data(q, ngx_teleclinic_item_t, queue);

        copy = ngx_palloc(pool, sizeof(ngx_teleclinic_item_t));
        if (copy == NULL) {
            return NULL;
        }

        *copy = *item;

        if (ngx_teleclinic_copy_str(&copy->ref, &item->ref, pool) != NGX_OK) {
            return NULL;
        }

        for (i = 0; i < NGX_TELECLINIC_ITEM_TEXTS; i++) {
            if (ngx_teleclinic_copy_str(&copy->text[i], &item->text[i], pool)
                != NGX_OK)
            {
                return NULL;
            }
        }

        ngx_queue_insert_tail(&r->items, &copy->queue);
    }

    return r;
}


static void
ngx_teleclinic_record_free(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_record_t *rec)
{
    ngx_queue_t               *q;
    ngx_teleclinic_item_t     *item;
    ngx_teleclinic_consent_t  *consent;

    while (!ngx_queue_empty(&rec->consents)) {
        q = ngx_queue_head(&rec->consents);
        ngx_queue_remove(q);

        consent = ngx_queue_data(q, ngx_teleclinic_consent_t, queue);
        ngx_slab_free_locked(zone->shpool, consent);
        zone->sh->nrecord_events--;
    }

    while (!ngx_queue_empty(&rec->items)) {
        q = ngx_queue_head(&rec->items);
        ngx_queue_remove(q);

        item = ngx_queue_data(q, ngx_teleclinic_item_t, queue);

        ngx_teleclinic_record_free_texts(zone, item->text,
                                         NGX_TELECLINIC_ITEM_TEXTS);
        ngx_teleclinic_record_free_texts(zone, &item->ref, 1);
        ngx_slab_free_locked(zone->shpool, item);
        zone->sh->nrecord_events--;
    }

    ngx_teleclinic_record_free_texts(zone, rec->note,
                                     NGX_TELECLINIC_NOTE_FIELDS);
    ngx_teleclinic_record_free_texts(zone, &rec->comment, 1);

    ngx_rbtree_delete(&zone->sh->records->tree, &rec->node);
    zone->sh->records->nrecords--;
    zone->sh->nrecord_events -= 2;

    ngx_slab_free_locked(zone->shpool, rec);
}


/* the appointment's record, made by its first change */

static ngx_teleclinic_record_t *
ngx_teleclinic_record_get(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev)
{
    uint64_t                   appt;
    ngx_teleclinic_record_t   *rec;
    ngx_teleclinic_records_t  *records;

    appt = ev->id;

    rec = ngx_teleclinic_record_lookup(zone, appt);
    if (rec) {
        return rec;
    }

    /* made by the first record: a zone of bookings only pays nothing */

    if (zone->sh->records == NULL) {
        records = ngx_slab_calloc_locked(zone->shpool,
                                         sizeof(ngx_teleclinic_records_t));
        if (records == NULL) {
            return NULL;
        }

        ngx_rbtree_init(&records->tree, &records->sentinel,
                        ngx_rbtree_insert_value);

        zone->sh->records = records;
    }

    rec = ngx_slab_calloc_locked(zone->shpool,
                                 sizeof(ngx_teleclinic_record_t));
    if (rec == NULL) {
        return NULL;
    }

    rec->node.key = (ngx_rbtree_key_t) appt;
    rec->appt = appt;
    rec->created = ev->created ? ev->created : ev->at;
    ngx_queue_init(&rec->items);
    ngx_queue_init(&rec->consents);

    ngx_rbtree_insert(&zone->sh->records->tree, &rec->node);
    zone->sh->records->nrecords++;

    /* its note and its close */
    zone->sh->nrecord_events += 2;

    return rec;
}


/* all n copied into the slab, or none */

static ngx_int_t
ngx_teleclinic_record_texts(ngx_teleclinic_zone_t *zone, ngx_str_t *dst,
    ngx_str_t *src, ngx_uint_t n)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        dst[i].len = src[i].len;
        dst[i].data = NULL;

        if (src[i].len == 0) {
            continue;
        }

        dst[i].data = ngx_slab_alloc_locked(zone->shpool, src[i].len);

        if (dst[i].data == NULL) {
            ngx_teleclinic_record_free_texts(zone, dst, i);
            return NGX_ERROR;
        }

        ngx_memcpy(dst[i].data, src[i].data, src[i].len);
    }

    return NGX_OK;
}


static void
ngx_teleclinic_record_free_texts(ngx_teleclinic_zone_t *zone, ngx_str_t *s,
    ngx_uint_t n)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        if (s[i].data) {
            ngx_slab_free_locked(zone->shpool, s[i].data);
            s[i].data = NULL;
        }

        s[i].len = 0;
    }
}


static ngx_int_t
ngx_teleclinic_record_item(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_record_t *rec, ngx_teleclinic_event_t *ev)
{
    ngx_teleclinic_item_t     *item;
    ngx_teleclinic_consent_t  *consent;

    if (ev->item_kind < 1 || ev->item_kind > NGX_TELECLINIC_ITEM_KINDS
        || ev->item == 0)
    {
        return NGX_ERROR;
    }

    item = ngx_slab_calloc_locked(zone->shpool,
                                  sizeof(ngx_teleclinic_item_t));
    if (item == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_teleclinic_record_texts(zone, item->text, ev->text,
                                    NGX_TELECLINIC_ITEM_TEXTS)
        != NGX_OK)
    {
        ngx_slab_free_locked(zone->shpool, item);
        return NGX_DECLINED;
    }

    if (ngx_teleclinic_record_texts(zone, &item->ref, &ev->ref, 1)
        != NGX_OK)
    {
        ngx_teleclinic_record_free_texts(zone, item->text,
                                         NGX_TELECLINIC_ITEM_TEXTS);
        ngx_slab_free_locked(zone->shpool, item);
        return NGX_DECLINED;
    }

    /* a follow-up is also a message to the hospital's gateway */
    if (ev->item_kind == NGX_TELECLINIC_ITEM_FOLLOWUP
        && ngx_teleclinic_outbox_add(zone, ev, NGX_TELECLINIC_MSG_FOLLOWUP,
                                     ev->at)
           != NGX_OK)
    {
        ngx_teleclinic_record_free_texts(zone, &item->ref, 1);
        ngx_teleclinic_record_free_texts(zone, item->text,
                                         NGX_TELECLINIC_ITEM_TEXTS);
        ngx_slab_free_locked(zone->shpool, item);
        return NGX_DECLINED;
    }

    item->id = ev->item;
    item->kind = ev->item_kind;
    item->at = ev->at;
    item->due = ev->due;
    item->num[0] = ev->num[0];
    item->num[1] = ev->num[1];
    item->request = ev->request;

    ngx_queue_insert_tail(&rec->items, &item->queue);
    rec->nitems++;
    zone->sh->nrecord_events++;

    if (ev->item > rec->last_item) {
        rec->last_item = ev->item;
    }

    /* a consent allows one snapshot */

    if (ev->item_kind == NGX_TELECLINIC_ITEM_SNAPSHOT && ev->request) {
        consent = ngx_teleclinic_consent_lookup(rec, ev->request);

        if (consent) {
            consent->used = 1;
        }
    }

    return NGX_OK;
}


/*
 * A consent decision; one answer per request: a second one (a replay of
 * an older journal next to a compaction's, say) changes nothing.
 */

static ngx_int_t
ngx_teleclinic_record_consent(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_record_t *rec, ngx_teleclinic_event_t *ev)
{
    ngx_teleclinic_consent_t  *consent;

    if (ev->request == 0 || ev->num[0] > 1) {
        return NGX_ERROR;
    }

    if (ngx_teleclinic_consent_lookup(rec, ev->request)) {
        return NGX_OK;
    }

    if (rec->nconsents >= NGX_TELECLINIC_RECORD_CONSENTS) {
        return NGX_DECLINED;
    }

    consent = ngx_slab_calloc_locked(zone->shpool,
                                     sizeof(ngx_teleclinic_consent_t));
    if (consent == NULL) {
        return NGX_DECLINED;
    }

    consent->request = ev->request;
    consent->asked = ev->created ? ev->created : ev->at;
    consent->answered = ev->at;
    consent->granted = ev->num[0];

    ngx_queue_insert_tail(&rec->consents, &consent->queue);
    rec->nconsents++;
    zone->sh->nrecord_events++;

    return NGX_OK;
}


static ngx_int_t
ngx_teleclinic_copy_str(ngx_str_t *dst, ngx_str_t *src, ngx_pool_t *pool)
{
    dst->len = src->len;
    dst->data = NULL;

    if (src->len == 0) {
        return NGX_OK;
    }

    dst->data = ngx_pnalloc(pool, src->len);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src->data, src->len);

    return NGX_OK;
}
