
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <openssl/rand.h>
#include "ngx_teleclinic_zone.h"


#define ngx_teleclinic_slot_appt(n)                                           \
    ((ngx_teleclinic_appt_t *) ((u_char *) (n)                                \
                                - offsetof(ngx_teleclinic_appt_t, slot)))
#define ngx_teleclinic_id_msg(n)                                              \
    ((ngx_teleclinic_msg_t *) ((u_char *) (n)                                 \
                               - offsetof(ngx_teleclinic_msg_t, id)))


static ngx_int_t ngx_teleclinic_zone_init(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_teleclinic_zone_open(ngx_teleclinic_zone_t *zone);
static ngx_teleclinic_appt_t *ngx_teleclinic_slot_match(
    ngx_teleclinic_zone_t *zone, ngx_rbtree_node_t *node, u_char *doctor,
    size_t len);
static ngx_rbtree_key_t ngx_teleclinic_slot_key(u_char *doctor, size_t len,
    time_t start);
static void ngx_teleclinic_slot_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_teleclinic_apply_messages(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev, ngx_uint_t kind, ngx_teleclinic_msg_t **msg,
    ngx_teleclinic_msg_t **reminder);
static ngx_int_t ngx_teleclinic_apply_change(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev, ngx_teleclinic_appt_t *appt);
static ngx_int_t ngx_teleclinic_apply_appt(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev);
static void ngx_teleclinic_appt_delete(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_appt_t *appt);
static ngx_int_t ngx_teleclinic_apply_directory(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev);
static void ngx_teleclinic_slot_add(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_appt_t *appt);
static void ngx_teleclinic_slot_delete(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_appt_t *appt);
static void ngx_teleclinic_status_set(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_appt_t *appt, ngx_uint_t status);
static ngx_teleclinic_msg_t *ngx_teleclinic_msg_add(
    ngx_teleclinic_zone_t *zone, ngx_uint_t id, uint64_t appt,
    ngx_uint_t kind, ngx_uint_t item, time_t due);
static ngx_teleclinic_msg_t *ngx_teleclinic_msg_of(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev, ngx_uint_t kind, ngx_uint_t item,
    time_t due, ngx_uint_t *owner);
static void ngx_teleclinic_msg_delete(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_msg_t *msg);


ngx_str_t  ngx_teleclinic_status_names[] = {
    ngx_string("booked"),
    ngx_string("arrived"),
    ngx_string("fulfilled"),
    ngx_string("cancelled"),
    ngx_string("noshow"),
    ngx_string("in-call")
};


ngx_str_t  ngx_teleclinic_msg_kinds[] = {
    ngx_string("confirmation"),
    ngx_string("cancellation"),
    ngx_string("reschedule"),
    ngx_string("reminder"),
    ngx_string("followup"),
    ngx_string("record"),
    ngx_string("rating")
};


ngx_shm_zone_t *
ngx_teleclinic_zone_add(ngx_conf_t *cf, ngx_str_t *name, size_t size,
    void *tag)
{
    ngx_shm_zone_t         *shm_zone;
    ngx_teleclinic_zone_t  *zone;

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_teleclinic_zone_t));
    if (zone == NULL) {
        return NULL;
    }

    shm_zone = ngx_shared_memory_add(cf, name, size, tag);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "teleclinic zone \"%V\" is already defined", name);
        return NULL;
    }

    zone->cycle = cf->cycle;
    zone->shm_zone = shm_zone;
    zone->reminder_before = NGX_CONF_UNSET;

    shm_zone->init = ngx_teleclinic_zone_init;
    shm_zone->data = zone;

    return shm_zone;
}


static ngx_int_t
ngx_teleclinic_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_teleclinic_zone_t  *ozone = data;

    size_t                  len;
    ngx_teleclinic_zone_t  *zone;

    zone = shm_zone->data;

    if (ozone) {
        /* a reload: the state lives on in the same memory */
        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;
        return ngx_teleclinic_zone_open(zone);
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    zone->sh = ngx_slab_alloc(zone->shpool, sizeof(ngx_teleclinic_sh_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(zone->sh, sizeof(ngx_teleclinic_sh_t));

    zone->shpool->data = zone->sh;

    ngx_rbtree_init(&zone->sh->appts, &zone->sh->appts_sentinel,
                    ngx_rbtree_insert_value);
    ngx_rbtree_init(&zone->sh->slots, &zone->sh->slots_sentinel,
                    ngx_teleclinic_slot_insert_value);
    ngx_rbtree_init(&zone->sh->outbox, &zone->sh->outbox_sentinel,
                    ngx_rbtree_insert_value);
    ngx_rbtree_init(&zone->sh->msgs, &zone->sh->msgs_sentinel,
                    ngx_rbtree_insert_value);
    ngx_queue_init(&zone->sh->cancelled);
    ngx_rbtree_init(&zone->sh->logins.tree, &zone->sh->logins.sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&zone->sh->logins.lru);

    len = sizeof(" in teleclinic zone \"\"") + shm_zone->shm.name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in teleclinic zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is reported by the caller, as a 503 and one line */
    zone->shpool->log_nomem = 0;

    zone->fresh = 1;
    zone->made = 1;

    if (zone->handlers->init(zone) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_teleclinic_zone_open(zone);
}


/*
 * Here, rather than in init_module, so that a failure rejects a reload
 * and the old configuration goes on.
 */

static ngx_int_t
ngx_teleclinic_zone_open(ngx_teleclinic_zone_t *zone)
{
    if (ngx_test_config) {
        /* "nginx -t" must leave the state of a running nginx alone */
        return NGX_OK;
    }

    return zone->handlers->open(zone);
}


void
ngx_teleclinic_zone_lock(ngx_teleclinic_zone_t *zone)
{
    ngx_shmtx_lock(&zone->shpool->mutex);
}


void
ngx_teleclinic_zone_unlock(ngx_teleclinic_zone_t *zone)
{
    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/* NGX_DECLINED when the zone is full; nothing has changed then */

ngx_int_t
ngx_teleclinic_zone_apply(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev, ngx_log_t *log)
{
    ngx_int_t               rc;
    ngx_teleclinic_msg_t   *msg;
    ngx_teleclinic_appt_t  *appt;
    ngx_teleclinic_mark_t  *mark;
    ngx_teleclinic_group_t *group;

    switch (ev->op) {

    case NGX_TELECLINIC_EV_BOOK:
    case NGX_TELECLINIC_EV_APPT:
        rc = ngx_teleclinic_apply_appt(zone, ev);
        break;

    case NGX_TELECLINIC_EV_DIRECTORY:
        rc = ngx_teleclinic_apply_directory(zone, ev);
        break;

    case NGX_TELECLINIC_EV_CANCEL:
    case NGX_TELECLINIC_EV_RESCHEDULE:
    case NGX_TELECLINIC_EV_STATUS:
    case NGX_TELECLINIC_EV_EXPIRE:
    case NGX_TELECLINIC_EV_BACK:

        appt = ngx_teleclinic_appt_lookup(zone, ev->id);

        if (appt == NULL) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "teleclinic event %ui for an unknown appointment",
                          ev->seq);
            rc = NGX_OK;
            break;
        }

        rc = ngx_teleclinic_apply_change(zone, ev, appt);
        break;

    case NGX_TELECLINIC_EV_SENT:
        msg = ngx_teleclinic_msg_lookup(zone, ev->msg);

        if (msg) {
            appt = ngx_teleclinic_appt_lookup(zone, msg->appt);

            if (appt && appt->reminder == msg) {
                appt->reminder = NULL;
            }

            ngx_teleclinic_msg_delete(zone, msg);
        }

        rc = NGX_OK;
        break;

    case NGX_TELECLINIC_EV_ROOM:
        rc = zone->handlers->average(zone, ev->doctor.data, ev->doctor.len,
                                     ev->visits, ev->average);
        break;

    case NGX_TELECLINIC_EV_NOTE:
    case NGX_TELECLINIC_EV_ITEM:
    case NGX_TELECLINIC_EV_DROP:
    case NGX_TELECLINIC_EV_CLOSE:
    case NGX_TELECLINIC_EV_RATING:
    case NGX_TELECLINIC_EV_FORGET:
    case NGX_TELECLINIC_EV_CONSENT:
        rc = zone->handlers->record(zone, ev);
        break;

    case NGX_TELECLINIC_EV_MSG:
        rc = NGX_OK;

        if (ngx_teleclinic_msg_emr(ev->kind) ? !zone->emr : !zone->notify) {
            break;
        }

        msg = ngx_teleclinic_msg_add(zone, ev->msg, ev->id, ev->kind,
                                     ev->item, ev->due);
        if (msg == NULL) {
            rc = NGX_DECLINED;
            break;
        }

        msg->owner = ev->owner;

        appt = ngx_teleclinic_appt_lookup(zone, ev->id);

        if (appt && ev->kind == NGX_TELECLINIC_MSG_REMINDER) {
            appt->reminder = msg;
        }

        break;

    case NGX_TELECLINIC_EV_MIRROR:
        rc = NGX_OK;
        break;

    default:
        rc = NGX_ERROR;
    }

    if (rc != NGX_OK) {
        return rc;
    }

    if (ev->seq > zone->sh->seq) {
        zone->sh->seq = ev->seq;
    }

    if (ev->node.len) {
        mark = ngx_teleclinic_mark(zone, &ev->node, ev->worker);

        if (mark && ev->oseq > mark->seq) {
            mark->seq = ev->oseq;
        }
    }

    if (ev->rid.len && ev->rid.len <= NGX_TELECLINIC_RID_MAX) {
        group = ngx_teleclinic_group(zone);

        if (group) {
            group->mirror_len = ev->rid.len;
            ngx_memcpy(group->mirror, ev->rid.data, ev->rid.len);
        }
    }

    return rc;
}


ngx_teleclinic_group_t *
ngx_teleclinic_group(ngx_teleclinic_zone_t *zone)
{
    if (zone->sh->group == NULL) {
        zone->sh->group = ngx_slab_calloc_locked(zone->shpool,
                                              sizeof(ngx_teleclinic_group_t));
    }

    return zone->sh->group;
}


ngx_teleclinic_mark_t *
ngx_teleclinic_mark(ngx_teleclinic_zone_t *zone, ngx_str_t *node,
    ngx_uint_t worker)
{
    ngx_uint_t               i;
    ngx_teleclinic_mark_t   *mark;
    ngx_teleclinic_group_t  *sh;

    if (node->len == 0 || node->len > NGX_TELECLINIC_NODE_MAX) {
        return NULL;
    }

    sh = ngx_teleclinic_group(zone);
    if (sh == NULL) {
        return NULL;
    }

    for (i = 0; i < sh->nmarks; i++) {
        mark = &sh->marks[i];

        if (mark->worker == worker && mark->len == node->len
            && ngx_memcmp(mark->node, node->data, node->len) == 0)
        {
            return mark;
        }
    }

    if (sh->nmarks == NGX_TELECLINIC_MARKS) {
        return NULL;
    }

    mark = &sh->marks[sh->nmarks++];
    mark->len = node->len;
    ngx_memcpy(mark->node, node->data, node->len);
    mark->worker = worker;
    mark->seq = 0;

    return mark;
}


/*
 * The messages of a change.  Without a gateway configured there are none:
 * an outbox that nobody empties would only fill the zone.
 */

static ngx_int_t
ngx_teleclinic_apply_messages(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev, ngx_uint_t kind, ngx_teleclinic_msg_t **msg,
    ngx_teleclinic_msg_t **reminder)
{
    ngx_uint_t  owner;

    *msg = NULL;
    *reminder = NULL;

    if (!zone->notify) {
        return NGX_OK;
    }

    *msg = ngx_teleclinic_msg_of(zone, ev, kind, 0, ev->at, &owner);
    if (*msg == NULL) {
        return owner ? NGX_DECLINED : NGX_OK;
    }

    if (kind != NGX_TELECLINIC_MSG_CANCELLATION
        && ev->start - zone->reminder_before > ev->at)
    {
        *reminder = ngx_teleclinic_msg_of(zone, ev,
                                          NGX_TELECLINIC_MSG_REMINDER, 0,
                                          ev->start - zone->reminder_before,
                                          &owner);

        if (*reminder == NULL) {
            ngx_teleclinic_msg_delete(zone, *msg);
            *msg = NULL;
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_teleclinic_apply_change(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev, ngx_teleclinic_appt_t *appt)
{
    ngx_uint_t             kind;
    ngx_teleclinic_msg_t  *msg, *reminder;

    if (ev->op == NGX_TELECLINIC_EV_STATUS) {
        ngx_teleclinic_status_set(zone, appt, ev->status);
        appt->updated = ev->at;

        /* the visit's times, from the waiting room */

        switch (appt->status) {

        case NGX_TELECLINIC_ARRIVED:
            if (appt->arrived == 0) {
                appt->arrived = ev->at;
            }
            break;

        case NGX_TELECLINIC_INCALL:
            appt->visit_start = ev->at;
            break;

        case NGX_TELECLINIC_FULFILLED:
            if (appt->visit_start) {
                appt->visit_end = ev->at;

                /*
                 * the doctor's average is state, made again by a
                 * replay and on every node; the metrics count what
                 * this node saw since its start
                 */
                zone->handlers->visit(zone, appt->doctor, appt->doctor_len,
                                      ev->at - appt->visit_start,
                                      !zone->replay && ev->node.len == 0);
            }
            break;
        }

        return NGX_OK;
    }

    if (ev->op == NGX_TELECLINIC_EV_EXPIRE) {
        ngx_teleclinic_appt_delete(zone, appt);
        return NGX_OK;
    }

    if (ev->op == NGX_TELECLINIC_EV_BACK) {
        appt->back = ev->back;
        return NGX_OK;
    }

    /* every allocation comes before anything changes */

    kind = (ev->op == NGX_TELECLINIC_EV_CANCEL)
           ? NGX_TELECLINIC_MSG_CANCELLATION : NGX_TELECLINIC_MSG_RESCHEDULE;

    if (ngx_teleclinic_apply_messages(zone, ev, kind, &msg, &reminder)
        == NGX_DECLINED)
    {
        if (kind != NGX_TELECLINIC_MSG_CANCELLATION || !appt->reminder) {
            return NGX_DECLINED;
        }

        /*
         * a cancellation must work in a full zone: the reminder goes
         * anyway, and the chunk it frees is of the very size needed
         */
        ngx_teleclinic_msg_delete(zone, appt->reminder);
        appt->reminder = NULL;

        if (ngx_teleclinic_apply_messages(zone, ev, kind, &msg, &reminder)
            == NGX_DECLINED)
        {
            return NGX_DECLINED;
        }
    }

    if (appt->reminder) {
        ngx_teleclinic_msg_delete(zone, appt->reminder);
    }

    appt->reminder = reminder;
    appt->updated = ev->at;

    /*
     * the patient's token names the version: after a cancellation or a
     * reschedule the tokens given out before open nothing
     */
    appt->version++;

    if (ev->op == NGX_TELECLINIC_EV_CANCEL) {
        ngx_teleclinic_status_set(zone, appt, NGX_TELECLINIC_CANCELLED);
        return NGX_OK;
    }

    ngx_teleclinic_slot_delete(zone, appt);

    /* another time, another queue */
    appt->back = 0;

    appt->doctor_len = ngx_min(ev->doctor.len, NGX_TELECLINIC_ID_MAX);
    ngx_memcpy(appt->doctor, ev->doctor.data, appt->doctor_len);
    appt->start = ev->start;
    appt->end = ev->end;

    ngx_teleclinic_slot_add(zone, appt);

    return NGX_OK;
}


static ngx_int_t
ngx_teleclinic_apply_appt(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev)
{
    u_char                 *p;
    size_t                  size;
    ngx_teleclinic_msg_t   *confirm, *reminder;
    ngx_teleclinic_appt_t  *appt;

    if (ngx_teleclinic_appt_lookup(zone, ev->id) != NULL) {
        /* a replayed duplicate changes nothing */
        return NGX_OK;
    }

    size = sizeof(ngx_teleclinic_appt_t)
           + ev->name.len + ev->phone.len + ev->reason.len;

    appt = ngx_slab_alloc_locked(zone->shpool, size);
    if (appt == NULL) {
        return NGX_DECLINED;
    }

    confirm = NULL;
    reminder = NULL;

    /* a snapshot record has its messages in records of their own */

    if (ev->op == NGX_TELECLINIC_EV_BOOK
        && ngx_teleclinic_apply_messages(zone, ev,
                                         NGX_TELECLINIC_MSG_CONFIRMATION,
                                         &confirm, &reminder)
           == NGX_DECLINED)
    {
        ngx_slab_free_locked(zone->shpool, appt);
        return NGX_DECLINED;
    }

    ngx_memzero(appt, sizeof(ngx_teleclinic_appt_t));

    appt->id = ev->id;
    appt->node.key = (ngx_rbtree_key_t) ev->id;
    appt->start = ev->start;
    appt->end = ev->end;
    appt->created = ev->op == NGX_TELECLINIC_EV_BOOK ? ev->at : ev->created;
    appt->updated = ev->at;
    appt->status = NGX_TELECLINIC_NSTATUS;
    appt->arrived = ev->arrived;
    appt->visit_start = ev->visit_start;
    appt->visit_end = ev->visit_end;
    appt->back = ev->back;
    appt->version = ev->version;
    appt->reminder = reminder;
    appt->doctor_len = ngx_min(ev->doctor.len, NGX_TELECLINIC_ID_MAX);
    ngx_memcpy(appt->doctor, ev->doctor.data, appt->doctor_len);

    p = (u_char *) appt + sizeof(ngx_teleclinic_appt_t);

    appt->name.data = p;
    appt->name.len = ev->name.len;
    p = ngx_cpymem(p, ev->name.data, ev->name.len);

    appt->phone.data = p;
    appt->phone.len = ev->phone.len;
    p = ngx_cpymem(p, ev->phone.data, ev->phone.len);

    appt->reason.data = p;
    appt->reason.len = ev->reason.len;
    ngx_memcpy(p, ev->reason.data, ev->reason.len);

    ngx_rbtree_insert(&zone->sh->appts, &appt->node);
    zone->sh->nappts++;

    ngx_teleclinic_status_set(zone, appt,
                              ev->op == NGX_TELECLINIC_EV_BOOK
                              ? NGX_TELECLINIC_BOOKED : ev->status);

    return NGX_OK;
}


static void
ngx_teleclinic_appt_delete(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_appt_t *appt)
{
    if (appt->reminder) {
        ngx_teleclinic_msg_delete(zone, appt->reminder);
    }

    ngx_teleclinic_slot_delete(zone, appt);

    if (appt->status == NGX_TELECLINIC_CANCELLED) {
        ngx_queue_remove(&appt->cancelled);
    }

    zone->sh->nstatus[appt->status]--;
    zone->sh->nappts--;

    ngx_rbtree_delete(&zone->sh->appts, &appt->node);
    ngx_slab_free_locked(zone->shpool, appt);
}


static ngx_int_t
ngx_teleclinic_apply_directory(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev)
{
    u_char  *text;

    text = ngx_slab_alloc_locked(zone->shpool, ev->directory.len);
    if (text == NULL) {
        return NGX_DECLINED;
    }

    ngx_memcpy(text, ev->directory.data, ev->directory.len);

    if (zone->sh->directory) {
        ngx_slab_free_locked(zone->shpool, zone->sh->directory);
    }

    zone->sh->directory = text;
    zone->sh->directory_len = ev->directory.len;
    zone->sh->directory_version++;
    ngx_memcpy(zone->sh->directory_file_hash, ev->hash, 32);

    return NGX_OK;
}


/* only appointments that hold their slot are in the slot index */

static void
ngx_teleclinic_status_set(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_appt_t *appt, ngx_uint_t status)
{
    if (status >= NGX_TELECLINIC_NSTATUS) {
        status = NGX_TELECLINIC_BOOKED;
    }

    if (appt->status < NGX_TELECLINIC_NSTATUS) {
        zone->sh->nstatus[appt->status]--;
    }

    if (appt->status == NGX_TELECLINIC_CANCELLED) {
        ngx_queue_remove(&appt->cancelled);
    }

    appt->status = status;
    zone->sh->nstatus[status]++;

    if (status == NGX_TELECLINIC_CANCELLED) {
        ngx_teleclinic_slot_delete(zone, appt);
        ngx_queue_insert_tail(&zone->sh->cancelled, &appt->cancelled);

    } else {
        ngx_teleclinic_slot_add(zone, appt);
    }
}


static void
ngx_teleclinic_slot_add(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_appt_t *appt)
{
    if (appt->in_slot) {
        return;
    }

    appt->slot.key = ngx_teleclinic_slot_key(appt->doctor, appt->doctor_len,
                                             appt->start);
    ngx_rbtree_insert(&zone->sh->slots, &appt->slot);
    appt->in_slot = 1;
}


static void
ngx_teleclinic_slot_delete(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_appt_t *appt)
{
    if (!appt->in_slot) {
        return;
    }

    ngx_rbtree_delete(&zone->sh->slots, &appt->slot);
    appt->in_slot = 0;
}


static ngx_int_t
ngx_teleclinic_slot_cmp(ngx_teleclinic_appt_t *a, u_char *doctor, size_t len)
{
    ngx_int_t  rc;

    rc = ngx_memn2cmp(a->doctor, doctor, a->doctor_len, len);

    return rc;
}


static void
ngx_teleclinic_slot_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t     **p;
    ngx_teleclinic_appt_t  *a, *t;

    a = ngx_teleclinic_slot_appt(node);

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            t = ngx_teleclinic_slot_appt(temp);
            p = (ngx_teleclinic_slot_cmp(t, a->doctor, a->doctor_len) > 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


ngx_teleclinic_appt_t *
ngx_teleclinic_appt_lookup(ngx_teleclinic_zone_t *zone, uint64_t id)
{
    ngx_rbtree_key_t    key;
    ngx_rbtree_node_t  *node, *sentinel;

    key = (ngx_rbtree_key_t) id;
    node = zone->sh->appts.root;
    sentinel = zone->sh->appts.sentinel;

    while (node != sentinel) {

        if (key != node->key) {
            node = (key < node->key) ? node->left : node->right;
            continue;
        }

        return (ngx_teleclinic_appt_t *) node;
    }

    return NULL;
}


ngx_teleclinic_appt_t *
ngx_teleclinic_slot_lookup(ngx_teleclinic_zone_t *zone, ngx_str_t *doctor,
    time_t start)
{
    ngx_int_t               rc;
    ngx_rbtree_key_t        key;
    ngx_rbtree_node_t      *node, *sentinel;
    ngx_teleclinic_appt_t  *appt;

    key = ngx_teleclinic_slot_key(doctor->data, doctor->len, start);
    node = zone->sh->slots.root;
    sentinel = zone->sh->slots.sentinel;

    while (node != sentinel) {

        if (key != node->key) {
            node = (key < node->key) ? node->left : node->right;
            continue;
        }

        appt = ngx_teleclinic_slot_appt(node);
        rc = ngx_teleclinic_slot_cmp(appt, doctor->data, doctor->len);

        if (rc == 0) {
            return appt;
        }

        node = (rc > 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * A doctor's appointments from "from" on, in time order: the index is
 * ordered by the doctor's hash, then time, so this is one descent and
 * then a walk.  Another doctor with the same hash is stepped over.
 */

ngx_teleclinic_appt_t *
ngx_teleclinic_slot_first(ngx_teleclinic_zone_t *zone, ngx_str_t *doctor,
    time_t from)
{
    ngx_rbtree_key_t    key;
    ngx_rbtree_node_t  *node, *sentinel, *found;

    key = ngx_teleclinic_slot_key(doctor->data, doctor->len, from);
    node = zone->sh->slots.root;
    sentinel = zone->sh->slots.sentinel;
    found = NULL;

    while (node != sentinel) {
        if (node->key >= key) {
            found = node;
            node = node->left;

        } else {
            node = node->right;
        }
    }

    return ngx_teleclinic_slot_match(zone, found, doctor->data, doctor->len);
}


ngx_teleclinic_appt_t *
ngx_teleclinic_slot_next(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_appt_t *appt)
{
    return ngx_teleclinic_slot_match(zone,
                                     ngx_rbtree_next(&zone->sh->slots,
                                                     &appt->slot),
                                     appt->doctor, appt->doctor_len);
}


static ngx_teleclinic_appt_t *
ngx_teleclinic_slot_match(ngx_teleclinic_zone_t *zone,
    ngx_rbtree_node_t *node, u_char *doctor, size_t len)
{
    ngx_rbtree_key_t        hash;
    ngx_teleclinic_appt_t  *appt;

    hash = ngx_teleclinic_slot_key(doctor, len, 0);

    for ( /* void */ ; node; node = ngx_rbtree_next(&zone->sh->slots, node))
    {
        if ((node->key & ~(ngx_rbtree_key_t) 0xffffffff) != hash) {
            return NULL;
        }

        appt = ngx_teleclinic_slot_appt(node);

        if (ngx_teleclinic_slot_cmp(appt, doctor, len) == 0) {
            return appt;
        }
    }

    return NULL;
}


/* the doctor's hash in the high half, the start in the low half */

static ngx_rbtree_key_t
ngx_teleclinic_slot_key(u_char *doctor, size_t len, time_t start)
{
    return ((ngx_rbtree_key_t) ngx_murmur_hash2(doctor, len) << 32)
           | (uint32_t) start;
}


/*
 * Ids are random so that one cannot be guessed from another.  The caller
 * draws *id before taking the lock; this keeps it unless it is taken.
 */

ngx_int_t
ngx_teleclinic_appt_new_id(ngx_teleclinic_zone_t *zone, uint64_t *id)
{
    ngx_uint_t  i;

    for (i = 0; i < 8; i++) {
        if (*id != 0 && ngx_teleclinic_appt_lookup(zone, *id) == NULL) {
            return NGX_OK;
        }

        if (RAND_bytes((u_char *) id, sizeof(uint64_t)) != 1) {
            return NGX_ERROR;
        }
    }

    return NGX_ERROR;
}


static ngx_teleclinic_msg_t *
ngx_teleclinic_msg_add(ngx_teleclinic_zone_t *zone, ngx_uint_t id,
    uint64_t appt, ngx_uint_t kind, ngx_uint_t item, time_t due)
{
    ngx_teleclinic_msg_t  *msg;

    msg = ngx_teleclinic_msg_lookup(zone, id);
    if (msg) {
        return msg;
    }

    msg = ngx_slab_alloc_locked(zone->shpool, sizeof(ngx_teleclinic_msg_t));
    if (msg == NULL) {
        return NULL;
    }

    ngx_memzero(msg, sizeof(ngx_teleclinic_msg_t));

    msg->appt = appt;
    msg->kind = kind;
    msg->item = item;
    msg->due = due;
    msg->node.key = (ngx_rbtree_key_t) due;
    msg->id.key = id;

    ngx_rbtree_insert(&zone->sh->outbox, &msg->node);
    ngx_rbtree_insert(&zone->sh->msgs, &msg->id);
    zone->sh->nmsgs++;

    return msg;
}


static void
ngx_teleclinic_msg_delete(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_msg_t *msg)
{
    ngx_rbtree_delete(&zone->sh->outbox, &msg->node);
    ngx_rbtree_delete(&zone->sh->msgs, &msg->id);
    ngx_slab_free_locked(zone->shpool, msg);
    zone->sh->nmsgs--;
}


ngx_int_t
ngx_teleclinic_outbox_add(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev, ngx_uint_t kind, time_t due)
{
    ngx_uint_t  owner;

    if (ev->quiet
        || (ngx_teleclinic_msg_emr(kind) ? !zone->emr : !zone->notify))
    {
        return NGX_OK;
    }

    if (ngx_teleclinic_msg_of(zone, ev, kind, ev->item, due, &owner)
        == NULL)
    {
        return owner ? NGX_DECLINED : NGX_OK;
    }

    return NGX_OK;
}


/*
 * The message a change makes, with its id: of this node's change from
 * its sequence number, of another node's (a group's) from that node's,
 * owned by it.  NULL with *owner 1 when the zone is full; NULL with
 * *owner 0 when there is none (another node's change replayed by a zone
 * no longer in a group).
 */

static ngx_teleclinic_msg_t *
ngx_teleclinic_msg_of(ngx_teleclinic_zone_t *zone, ngx_teleclinic_event_t *ev,
    ngx_uint_t kind, ngx_uint_t item, time_t due, ngx_uint_t *owner)
{
    ngx_uint_t             id, hash;
    ngx_teleclinic_msg_t  *msg;

    *owner = 0;

    if (ev->node.len) {
        if (zone->self == 0) {
            return NULL;
        }

        hash = ngx_teleclinic_node_hash(ev->node.data, ev->node.len);
        id = ngx_teleclinic_msg_id(ev->oseq, kind);

    } else {
        hash = zone->self;
        id = ngx_teleclinic_msg_id(ev->seq, kind);
    }

    id |= hash << NGX_TELECLINIC_NODE_HASH_SHIFT;

    *owner = 1;

    msg = ngx_teleclinic_msg_add(zone, id, ev->id, kind, item, due);

    if (msg && ev->node.len) {
        msg->owner = hash;
    }

    return msg;
}


/*
 * The strings an event points to, which a copy of it must take along:
 * these, then its texts
 */

static size_t  ngx_teleclinic_event_strings[] = {
    offsetof(ngx_teleclinic_event_t, doctor),
    offsetof(ngx_teleclinic_event_t, name),
    offsetof(ngx_teleclinic_event_t, phone),
    offsetof(ngx_teleclinic_event_t, reason),
    offsetof(ngx_teleclinic_event_t, directory),
    offsetof(ngx_teleclinic_event_t, ref),
    offsetof(ngx_teleclinic_event_t, node),
    offsetof(ngx_teleclinic_event_t, rid),
    offsetof(ngx_teleclinic_event_t, freed_doctor)
};

#define NGX_TELECLINIC_EVENT_NAMED                                           \
    (sizeof(ngx_teleclinic_event_strings) / sizeof(size_t))
#define NGX_TELECLINIC_EVENT_STRINGS                                         \
    (NGX_TELECLINIC_EVENT_NAMED + NGX_TELECLINIC_TEXTS)


static ngx_str_t *
ngx_teleclinic_event_string(ngx_teleclinic_event_t *ev, ngx_uint_t i)
{
    if (i < NGX_TELECLINIC_EVENT_NAMED) {
        return (ngx_str_t *) ((u_char *) ev + ngx_teleclinic_event_strings[i]);
    }

    return &ev->text[i - NGX_TELECLINIC_EVENT_NAMED];
}


/* what ngx_teleclinic_event_copy() takes: aligned, so copies follow */

size_t
ngx_teleclinic_event_size(ngx_teleclinic_event_t *ev)
{
    size_t      size;
    ngx_uint_t  i;

    size = sizeof(ngx_teleclinic_event_t);

    for (i = 0; i < NGX_TELECLINIC_EVENT_STRINGS; i++) {
        size += ngx_teleclinic_event_string(ev, i)->len;
    }

    return ngx_align(size, NGX_ALIGNMENT);
}


/*
 * An event and its strings copied to buf, whose size is at least
 * ngx_teleclinic_event_size(): a copy that outlives the zone's lock.
 */

ngx_teleclinic_event_t *
ngx_teleclinic_event_copy(ngx_teleclinic_event_t *ev, u_char *buf)
{
    u_char                  *p;
    ngx_uint_t               i;
    ngx_str_t               *s;
    ngx_teleclinic_event_t  *copy;

    copy = (ngx_teleclinic_event_t *) buf;
    *copy = *ev;

    p = buf + sizeof(ngx_teleclinic_event_t);

    for (i = 0; i < NGX_TELECLINIC_EVENT_STRINGS; i++) {
        s = ngx_teleclinic_event_string(copy, i);

        if (s->len) {
            ngx_memcpy(p, s->data, s->len);
            s->data = p;
            p += s->len;
        }
    }

    return copy;
}


ngx_uint_t
ngx_teleclinic_node_hash(u_char *name, size_t len)
{
    /* 17 bits, never 0: 0 is "this node's" */
    return (ngx_crc32_long(name, len) & 0xffff) | 0x10000;
}


ngx_uint_t
ngx_teleclinic_outbox_emr_pending(ngx_teleclinic_zone_t *zone, uint64_t appt)
{
    ngx_rbtree_node_t     *node, *root, *sentinel;
    ngx_teleclinic_msg_t  *msg;

    root = zone->sh->msgs.root;
    sentinel = zone->sh->msgs.sentinel;

    if (root == sentinel) {
        return 0;
    }

    for (node = ngx_rbtree_min(root, sentinel);
         node;
         node = ngx_rbtree_next(&zone->sh->msgs, node))
    {
        msg = ngx_teleclinic_id_msg(node);

        if (msg->appt == appt && ngx_teleclinic_msg_emr(msg->kind)) {
            return 1;
        }
    }

    return 0;
}


ngx_teleclinic_msg_t *
ngx_teleclinic_msg_lookup(ngx_teleclinic_zone_t *zone, ngx_uint_t id)
{
    ngx_rbtree_key_t    key;
    ngx_rbtree_node_t  *node, *sentinel;

    key = (ngx_rbtree_key_t) id;
    node = zone->sh->msgs.root;
    sentinel = zone->sh->msgs.sentinel;

    while (node != sentinel) {

        if (key != node->key) {
            node = (key < node->key) ? node->left : node->right;
            continue;
        }

        return ngx_teleclinic_id_msg(node);
    }

    return NULL;
}


ngx_teleclinic_msg_t *
ngx_teleclinic_outbox_first(ngx_teleclinic_zone_t *zone)
{
    ngx_rbtree_node_t  *node;

    if (zone->sh->outbox.root == zone->sh->outbox.sentinel) {
        return NULL;
    }

    node = ngx_rbtree_min(zone->sh->outbox.root, zone->sh->outbox.sentinel);

    return (ngx_teleclinic_msg_t *) node;
}


ngx_teleclinic_msg_t *
ngx_teleclinic_outbox_next(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_msg_t *msg)
{
    return (ngx_teleclinic_msg_t *) ngx_rbtree_next(&zone->sh->outbox,
                                                    &msg->node);
}


/* a failed delivery waits; the next attempt time is its place in line */

void
ngx_teleclinic_outbox_retry(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_msg_t *msg, time_t next)
{
    ngx_rbtree_delete(&zone->sh->outbox, &msg->node);
    msg->node.key = (ngx_rbtree_key_t) next;
    ngx_rbtree_insert(&zone->sh->outbox, &msg->node);
}
