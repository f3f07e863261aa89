
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <openssl/rand.h>
#include "ngx_teleclinic_zone.h"
#include "ngx_teleclinic_journal.h"
#include "ngx_teleclinic_room.h"
#include "ngx_teleclinic_directory.h"
#include "ngx_teleclinic_request.h"
#include "ngx_teleclinic_message.h"
#include "ngx_teleclinic_stun.h"


/*
 * Every operation runs with the zone locked from its checks to its
 * changes, so two workers acting on one room at once see each other's
 * work in order.  What a connection must be told goes to its worker's
 * mailbox; the doorbells ring after the unlock.
 */


/* the doctor's queue message lists this many patients */
#define NGX_TELECLINIC_QUEUE_LIST    100

/* close code for a connection replaced by a newer one of the same user */
#define NGX_TELECLINIC_REPLACED      4409

#define NGX_TELECLINIC_TEXT_MAX      1024

/* a patient's "queue" message at its longest */
#define NGX_TELECLINIC_PATIENT_QUEUE_LEN                                     \
    (sizeof("{\"v\":1,\"type\":\"queue\",\"position\":,\"waiting\":,"       \
            "\"estimated_wait\":,\"doctor_busy\":false}") - 1                 \
     + 3 * NGX_INT_T_LEN)


static ngx_uint_t  ngx_teleclinic_visit_buckets[NGX_TELECLINIC_HISTOGRAM] = {
    60, 180, 300, 600, 900, 1200, 1800, 2700, 3600, (ngx_uint_t) -1
};

static ngx_uint_t  ngx_teleclinic_wait_buckets[NGX_TELECLINIC_HISTOGRAM] = {
    30, 60, 120, 300, 600, 900, 1200, 1800, 3600, (ngx_uint_t) -1
};


static ngx_teleclinic_room_t *ngx_teleclinic_room_find(
    ngx_teleclinic_zone_t *zone, u_char *doctor, size_t len);
static ngx_teleclinic_room_t *ngx_teleclinic_room_get(
    ngx_teleclinic_zone_t *zone, u_char *doctor, size_t len);
static ngx_teleclinic_wait_t *ngx_teleclinic_wait_find(
    ngx_teleclinic_zone_t *zone, uint64_t appt);
static void ngx_teleclinic_wait_place(ngx_teleclinic_room_t *room,
    ngx_teleclinic_wait_t *w);
static void ngx_teleclinic_wait_free(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_wait_t *w);
static void ngx_teleclinic_wait_back(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, ngx_teleclinic_wait_t *w);
static ngx_uint_t ngx_teleclinic_room_back(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, uint64_t appt);
static ngx_int_t ngx_teleclinic_room_status(ngx_teleclinic_actor_t *a,
    uint64_t appt, ngx_uint_t status);
static void ngx_teleclinic_room_sweep_locked(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room);
static void ngx_teleclinic_ring_stop(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, ngx_uint_t reason, const char *why);
static void ngx_teleclinic_call_end(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, const char *reason);
static ngx_int_t ngx_teleclinic_call_member(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t **roomp, ngx_uint_t doctor, uint64_t call);
static void ngx_teleclinic_call_announce(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, ngx_uint_t doctor, ngx_uint_t rejoin);
static ngx_int_t ngx_teleclinic_call_restore(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, ngx_teleclinic_wait_t *w);
static void ngx_teleclinic_post_peer(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, ngx_uint_t doctor, const char *state);
static void ngx_teleclinic_peer_take(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_peer_t *peer);
static void ngx_teleclinic_post(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_peer_t *peer, u_char *text, size_t len);
static void ngx_teleclinic_post_changed(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room);
static void ngx_teleclinic_post_call_state(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, const char *state);
static void ngx_teleclinic_post_ended(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, ngx_teleclinic_peer_t *peer,
    const char *reason);
static void ngx_teleclinic_unlock(ngx_teleclinic_actor_t *a);
static ngx_uint_t ngx_teleclinic_room_average(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room);
static void ngx_teleclinic_histogram(ngx_uint_t *counts,
    ngx_uint_t *buckets, ngx_uint_t *sum, ngx_uint_t *count,
    ngx_uint_t value);
static ngx_rbtree_key_t ngx_teleclinic_room_key(u_char *doctor, size_t len);
static u_char *ngx_teleclinic_console_entry(ngx_teleclinic_actor_t *a,
    u_char *p, u_char *last, ngx_teleclinic_wait_t *w, ngx_uint_t *listed);


/* a refused operation: NGX_ERROR when the zone is full, else NGX_DECLINED */

static ngx_int_t
ngx_teleclinic_room_refuse(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_error_e error)
{
    a->error = error;

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, a->log, 0,
                   "teleclinic room: refused, error %d", (int) error);

    return (error == NGX_TELECLINIC_ROOM_ZONE_FULL) ? NGX_ERROR
                                                    : NGX_DECLINED;
}


ngx_int_t
ngx_teleclinic_room_checkin(ngx_teleclinic_actor_t *a)
{
    time_t                  from, to;
    ngx_uint_t              restore;
    ngx_teleclinic_sh_t    *sh;
    ngx_teleclinic_room_t  *room;
    ngx_teleclinic_wait_t  *w;
    ngx_teleclinic_appt_t  *appt;
    ngx_teleclinic_date_t   date;

    sh = a->zone->sh;

    ngx_teleclinic_zone_lock(a->zone);

    appt = ngx_teleclinic_appt_lookup(a->zone, a->appt);

    /* the token was given before a cancellation or a reschedule */
    if (appt && appt->version != a->version) {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_UNAUTHORIZED);
    }

    if (appt == NULL
        || appt->status == NGX_TELECLINIC_CANCELLED
        || appt->status == NGX_TELECLINIC_FULFILLED
        || appt->status == NGX_TELECLINIC_NOSHOW)
    {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_VISIT_OVER);
    }

    a->start = appt->start;
    a->doctor.len = appt->doctor_len;
    a->doctor.data = a->doctor_buf;
    ngx_memcpy(a->doctor_buf, appt->doctor, appt->doctor_len);

    ngx_teleclinic_date_of(appt->start, &date);
    ngx_teleclinic_day_bounds(&date, &from, &to);

    if (a->now >= to) {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_VISIT_OVER);
    }

    if (a->now < appt->start - a->conf->checkin_open) {
        a->opens_at = appt->start - a->conf->checkin_open;
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_TOO_EARLY);
    }

    room = ngx_teleclinic_room_get(a->zone, appt->doctor, appt->doctor_len);
    if (room == NULL) {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_ZONE_FULL);
    }

    ngx_teleclinic_room_sweep_locked(a, room);

    w = ngx_teleclinic_wait_find(a->zone, a->appt);

    if (w) {
        /* back, on a new connection */
        ngx_teleclinic_peer_take(a, &w->peer);
        w->told_position = 0;

        a->status = appt->status;

        if (w->state == NGX_TELECLINIC_RINGING) {
            ngx_teleclinic_post_call_state(a, room, NULL);

        } else if (w->state == NGX_TELECLINIC_IN_CALL) {
            ngx_teleclinic_call_announce(a, room, 0, 1);
            ngx_teleclinic_call_announce(a, room, 1, 1);
            ngx_teleclinic_post_peer(a, room, 1, "joined");
        }

        ngx_teleclinic_post_changed(a, room);
        ngx_teleclinic_unlock(a);
        return NGX_OK;
    }

    w = ngx_slab_calloc_locked(a->zone->shpool,
                               sizeof(ngx_teleclinic_wait_t));
    if (w == NULL) {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_ZONE_FULL);
    }

    /*
     * The place is the appointment's: sent back, or gone from the queue
     * and come back, the patient is at its end; a queue made again after
     * a restart, or on another node after its room's node died, has the
     * order it had.
     */

    w->back = appt->back;

    /*
     * With several nodes, a call that was on when its room's node died
     * goes on here, on the node that has the room now: the room is made
     * again around it and both are given it back, as after a dropped
     * connection.  With one node, after a restart, a call in progress is
     * over.
     */

    restore = (appt->status == NGX_TELECLINIC_INCALL && sh->group
               && room->call == 0);

    /* arrived, once */

    if (appt->status != NGX_TELECLINIC_ARRIVED && !restore
        && ngx_teleclinic_room_status(a, a->appt, NGX_TELECLINIC_ARRIVED)
           != NGX_OK)
    {
        ngx_slab_free_locked(a->zone->shpool, w);
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_ZONE_FULL);
    }

    /* the lookup again: a full zone may have moved nothing, but be sure */
    appt = ngx_teleclinic_appt_lookup(a->zone, a->appt);

    w->node.key = (ngx_rbtree_key_t) a->appt;
    w->room = room;
    w->appt = a->appt;
    w->start = appt->start;
    w->arrived = appt->arrived ? appt->arrived : a->now;
    w->arrival = ++sh->rooms->arrivals;
    w->state = NGX_TELECLINIC_WAITING;
    w->peer.pid = ngx_pid;
    w->peer.serial = a->serial;

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, a->log, 0,
                   "teleclinic room: appointment %016xL waits", w->appt);

    ngx_rbtree_insert(&sh->rooms->waits, &w->node);
    ngx_teleclinic_wait_place(room, w);

    if (restore && ngx_teleclinic_call_restore(a, room, w) == NGX_OK) {
        a->status = NGX_TELECLINIC_INCALL;

    } else {
        room->nwaiting++;
        a->status = NGX_TELECLINIC_ARRIVED;
    }

    ngx_teleclinic_post_changed(a, room);
    ngx_teleclinic_unlock(a);

    return NGX_OK;
}


/*
 * The call of a room whose node died, made again on this one: a new id
 * (and TURN credentials), answered, the doctor given the grace period to
 * come back; both sides make a new peer connection (rejoin).
 */

static ngx_int_t
ngx_teleclinic_call_restore(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, ngx_teleclinic_wait_t *w)
{
    uint64_t  id;

    if (RAND_bytes((u_char *) &id, sizeof(uint64_t)) != 1 || id == 0) {
        return NGX_ERROR;
    }

    room->call = id;
    room->callee = w;
    room->rung = a->now;
    room->deadline = a->now;
    room->answered = a->now;
    room->media = 0;

    w->state = NGX_TELECLINIC_IN_CALL;

    if (room->console.pid == 0) {
        room->console.left = a->now;
    }

    a->timer = a->now + a->conf->grace;

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, a->log, 0,
                   "teleclinic room: call %016xL of appointment %016xL "
                   "made again", id, w->appt);

    ngx_teleclinic_call_announce(a, room, 0, 1);
    ngx_teleclinic_call_announce(a, room, 1, 1);
    ngx_teleclinic_post_peer(a, room, 1, "joined");

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_room_console(ngx_teleclinic_actor_t *a)
{
    ngx_teleclinic_room_t  *room;

    ngx_teleclinic_zone_lock(a->zone);

    room = ngx_teleclinic_room_get(a->zone, a->doctor.data, a->doctor.len);
    if (room == NULL) {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_ZONE_FULL);
    }

    ngx_teleclinic_peer_take(a, &room->console);

    ngx_teleclinic_room_sweep_locked(a, room);

    if (room->call && room->answered) {
        ngx_teleclinic_call_announce(a, room, 1, 1);
        ngx_teleclinic_call_announce(a, room, 0, 1);
        ngx_teleclinic_post_peer(a, room, 0, "joined");

    } else if (room->call) {
        ngx_teleclinic_post_call_state(a, room, "ringing");
    }

    a->average = ngx_teleclinic_room_average(a, room);

    ngx_teleclinic_post_changed(a, room);
    ngx_teleclinic_unlock(a);

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_room_leave(ngx_teleclinic_actor_t *a)
{
    ngx_teleclinic_room_t  *room;
    ngx_teleclinic_wait_t  *w;

    ngx_teleclinic_zone_lock(a->zone);

    w = ngx_teleclinic_wait_find(a->zone, a->appt);

    if (w == NULL || w->peer.pid != ngx_pid || w->peer.serial != a->serial) {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_NOT_IN_QUEUE);
    }

    room = w->room;

    /* come back, at the end: a declined ring sends the patient there */

    if (w->state == NGX_TELECLINIC_RINGING) {
        ngx_teleclinic_ring_stop(a, room, NGX_TELECLINIC_FAIL_DECLINED,
                                 "declined");

    } else if (w->state == NGX_TELECLINIC_IN_CALL) {
        ngx_teleclinic_call_end(a, room, "hangup");
        ngx_teleclinic_post_changed(a, room);
        ngx_teleclinic_unlock(a);
        return NGX_OK;

    } else {
        (void) ngx_teleclinic_room_back(a, room, w->appt);
    }

    ngx_teleclinic_wait_free(a->zone, w);

    ngx_teleclinic_post_changed(a, room);
    ngx_teleclinic_unlock(a);

    return NGX_OK;
}


/* a connection ended: its place is kept for the grace period */

void
ngx_teleclinic_room_dropped(ngx_teleclinic_actor_t *a, ngx_uint_t doctor)
{
    ngx_teleclinic_peer_t  *peer, *other;
    ngx_teleclinic_room_t  *room;
    ngx_teleclinic_wait_t  *w;

    ngx_teleclinic_zone_lock(a->zone);

    if (doctor) {
        room = ngx_teleclinic_room_find(a->zone, a->doctor.data,
                                        a->doctor.len);
        if (room == NULL) {
            ngx_teleclinic_unlock(a);
            return;
        }

        peer = &room->console;
        other = room->callee ? &room->callee->peer : NULL;

    } else {
        w = ngx_teleclinic_wait_find(a->zone, a->appt);
        if (w == NULL) {
            ngx_teleclinic_unlock(a);
            return;
        }

        room = w->room;
        peer = &w->peer;
        other = (room->callee == w) ? &room->console : NULL;
    }

    if (peer->pid != ngx_pid || peer->serial != a->serial) {
        /* replaced by a newer connection already */
        ngx_teleclinic_unlock(a);
        return;
    }

    peer->pid = 0;
    peer->left = a->now;

    a->timer = a->now + a->conf->grace;

    if (room->call && room->answered && other) {
        ngx_teleclinic_post_peer(a, room, !doctor, "left");

    } else if (room->call && doctor) {
        /* nobody to answer to: the ring stops, the patient keeps place */
        ngx_teleclinic_ring_stop(a, room, NGX_TELECLINIC_FAIL_CANCELLED,
                                 "cancelled");
    }

    ngx_teleclinic_post_changed(a, room);
    ngx_teleclinic_unlock(a);
}


ngx_int_t
ngx_teleclinic_room_call(ngx_teleclinic_actor_t *a, uint64_t appt)
{
    u_char                  text[NGX_TELECLINIC_TEXT_MAX], *p;
    uint64_t                id;
    ngx_queue_t            *q;
    ngx_teleclinic_room_t  *room;
    ngx_teleclinic_wait_t  *w;

    ngx_teleclinic_zone_lock(a->zone);

    room = ngx_teleclinic_room_find(a->zone, a->doctor.data, a->doctor.len);

    if (room == NULL
        || room->console.pid != ngx_pid
        || room->console.serial != a->serial)
    {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_NOT_IN_QUEUE);
    }

    ngx_teleclinic_room_sweep_locked(a, room);

    if (room->call) {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_BUSY);
    }

    w = NULL;

    if (appt == 0) {
        for (q = ngx_queue_head(&room->queue);
             q != ngx_queue_sentinel(&room->queue);
             q = ngx_queue_next(q))
        {
            w = ngx_queue_data(q, ngx_teleclinic_wait_t, queue);

            if (w->state == NGX_TELECLINIC_WAITING && w->peer.pid) {
                break;
            }

            w = NULL;
        }

        if (w == NULL) {
            ngx_teleclinic_unlock(a);
            return ngx_teleclinic_room_refuse(a,
                                              NGX_TELECLINIC_ROOM_QUEUE_EMPTY);
        }

    } else {
        w = ngx_teleclinic_wait_find(a->zone, appt);

        if (w == NULL || w->room != room) {
            ngx_teleclinic_unlock(a);
            return ngx_teleclinic_room_refuse(a,
                                              NGX_TELECLINIC_ROOM_NOT_IN_QUEUE);
        }

        if (w->peer.pid == 0) {
            ngx_teleclinic_unlock(a);
            return ngx_teleclinic_room_refuse(a,
                                             NGX_TELECLINIC_ROOM_NOT_CONNECTED);
        }
    }

    if (RAND_bytes((u_char *) &id, sizeof(uint64_t)) != 1 || id == 0) {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_ZONE_FULL);
    }

    room->call = id;
    room->callee = w;
    room->rung = a->now;
    room->deadline = a->now + a->conf->ring_timeout;
    room->answered = 0;
    room->media = 0;

    w->state = NGX_TELECLINIC_RINGING;

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, a->log, 0,
                   "teleclinic room: call %016xL rings appointment %016xL",
                   id, w->appt);

    a->zone->sh->rooms->metrics.started++;
    a->timer = room->deadline;

    p = ngx_snprintf(text, sizeof(text),
                     "{\"v\":1,\"type\":\"ring\",\"call\":\"%016uxL\","
                     "\"timeout\":%T}", id, a->conf->ring_timeout);
    ngx_teleclinic_post(a, &w->peer, text, p - text);

    ngx_teleclinic_post_call_state(a, room, "ringing");
    ngx_teleclinic_post_changed(a, room);
    ngx_teleclinic_unlock(a);

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_room_skip(ngx_teleclinic_actor_t *a, uint64_t appt)
{
    ngx_teleclinic_room_t  *room;
    ngx_teleclinic_wait_t  *w;

    ngx_teleclinic_zone_lock(a->zone);

    room = ngx_teleclinic_room_find(a->zone, a->doctor.data, a->doctor.len);
    w = ngx_teleclinic_wait_find(a->zone, appt);

    if (room == NULL || w == NULL || w->room != room
        || room->console.pid != ngx_pid
        || room->console.serial != a->serial)
    {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_NOT_IN_QUEUE);
    }

    if (w->state != NGX_TELECLINIC_WAITING) {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_BUSY);
    }

    ngx_teleclinic_wait_back(a, room, w);

    ngx_teleclinic_post_changed(a, room);
    ngx_teleclinic_unlock(a);

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_room_noshow(ngx_teleclinic_actor_t *a, uint64_t appt)
{
    u_char                  text[NGX_TELECLINIC_TEXT_MAX], *p;
    time_t                  from, to;
    ngx_teleclinic_peer_t   peer;
    ngx_teleclinic_room_t  *room;
    ngx_teleclinic_wait_t  *w;
    ngx_teleclinic_appt_t  *ap;
    ngx_teleclinic_date_t   date;

    ngx_teleclinic_zone_lock(a->zone);

    room = ngx_teleclinic_room_find(a->zone, a->doctor.data, a->doctor.len);

    if (room == NULL
        || room->console.pid != ngx_pid
        || room->console.serial != a->serial)
    {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_NOT_IN_QUEUE);
    }

    ap = ngx_teleclinic_appt_lookup(a->zone, appt);

    if (ap == NULL
        || ap->doctor_len != a->doctor.len
        || ngx_memcmp(ap->doctor, a->doctor.data, a->doctor.len) != 0)
    {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_NOT_IN_QUEUE);
    }

    w = ngx_teleclinic_wait_find(a->zone, appt);

    if (w == NULL) {
        /* not checked in: a booking of today that nobody came to */

        ngx_teleclinic_date_of(a->now, &date);
        ngx_teleclinic_day_bounds(&date, &from, &to);

        if ((ap->status != NGX_TELECLINIC_BOOKED
             && ap->status != NGX_TELECLINIC_ARRIVED)
            || ap->start < from || ap->start >= to)
        {
            ngx_teleclinic_unlock(a);
            return ngx_teleclinic_room_refuse(a,
                                              NGX_TELECLINIC_ROOM_NOT_IN_QUEUE);
        }

        if (ngx_teleclinic_room_status(a, appt, NGX_TELECLINIC_NOSHOW)
            != NGX_OK)
        {
            ngx_teleclinic_unlock(a);
            return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_ZONE_FULL);
        }

        ngx_teleclinic_post_changed(a, room);
        ngx_teleclinic_unlock(a);
        return NGX_OK;
    }

    if (w->room != room || w->state != NGX_TELECLINIC_WAITING) {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, w->room != room
                                             ? NGX_TELECLINIC_ROOM_NOT_IN_QUEUE
                                             : NGX_TELECLINIC_ROOM_BUSY);
    }

    if (ngx_teleclinic_room_status(a, appt, NGX_TELECLINIC_NOSHOW)
        != NGX_OK)
    {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_ZONE_FULL);
    }

    peer = w->peer;
    ngx_teleclinic_wait_free(a->zone, w);

    p = ngx_snprintf(text, sizeof(text),
                     "{\"v\":1,\"type\":\"visit\",\"status\":\"noshow\"}");
    ngx_teleclinic_post(a, &peer, text, p - text);

    ngx_teleclinic_post_changed(a, room);
    ngx_teleclinic_unlock(a);

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_room_answer(ngx_teleclinic_actor_t *a, uint64_t call,
    ngx_uint_t accept)
{
    ngx_teleclinic_room_t  *room;
    ngx_teleclinic_wait_t  *w;

    ngx_teleclinic_zone_lock(a->zone);

    w = ngx_teleclinic_wait_find(a->zone, a->appt);

    if (w == NULL
        || w->peer.pid != ngx_pid || w->peer.serial != a->serial)
    {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_NOT_IN_CALL);
    }

    room = w->room;

    ngx_teleclinic_room_sweep_locked(a, room);

    if (room->call != call || room->callee != w || room->answered) {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_NOT_IN_CALL);
    }

    if (!accept) {
        ngx_teleclinic_ring_stop(a, room, NGX_TELECLINIC_FAIL_DECLINED,
                                 "declined");
        ngx_teleclinic_post_changed(a, room);
        ngx_teleclinic_unlock(a);
        return NGX_OK;
    }

    if (ngx_teleclinic_room_status(a, w->appt, NGX_TELECLINIC_INCALL)
        != NGX_OK)
    {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_ZONE_FULL);
    }

    room->answered = a->now;
    w->state = NGX_TELECLINIC_IN_CALL;

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, a->log, 0,
                   "teleclinic room: call %016xL answered", room->call);
    room->nwaiting--;

    a->zone->sh->rooms->metrics.answered++;
    ngx_teleclinic_histogram(a->zone->sh->rooms->metrics.wait,
                             ngx_teleclinic_wait_buckets,
                             &a->zone->sh->rooms->metrics.wait_sum,
                             &a->zone->sh->rooms->metrics.wait_count,
                             a->now - w->arrived);

    ngx_teleclinic_call_announce(a, room, 1, 0);
    ngx_teleclinic_call_announce(a, room, 0, 0);

    ngx_teleclinic_post_changed(a, room);
    ngx_teleclinic_unlock(a);

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_room_signal(ngx_teleclinic_actor_t *a, ngx_uint_t doctor,
    uint64_t call, u_char *text, size_t len)
{
    ngx_teleclinic_room_t  *room;

    ngx_teleclinic_zone_lock(a->zone);

    if (ngx_teleclinic_call_member(a, &room, doctor, call) != NGX_OK
        || !room->answered)
    {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_NOT_IN_CALL);
    }

    /* while the other side is away, it gets an ICE restart instead */
    ngx_teleclinic_post(a, doctor ? &room->callee->peer : &room->console,
                        text, len);

    ngx_teleclinic_unlock(a);

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_room_snapshot_request(ngx_teleclinic_actor_t *a, uint64_t call)
{
    u_char                  text[NGX_TELECLINIC_TEXT_MAX], *p;
    uint64_t                id;
    ngx_teleclinic_room_t  *room;

    ngx_teleclinic_zone_lock(a->zone);

    if (ngx_teleclinic_call_member(a, &room, 1, call) != NGX_OK
        || !room->answered)
    {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_NOT_IN_CALL);
    }

    /* nobody to ask: the doctor asks again once the patient is back */

    if (room->callee->peer.pid == 0) {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a,
                                          NGX_TELECLINIC_ROOM_NOT_CONNECTED);
    }

    /* random, so that no one can name a request they were not sent */

    if (RAND_bytes((u_char *) &id, sizeof(uint64_t)) != 1) {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_ZONE_FULL);
    }

    id &= NGX_TELECLINIC_REQUEST_MAX;

    if (id == 0) {
        id = 1;
    }

    room->request = (ngx_uint_t) id;
    room->request_call = room->call;
    room->asked = a->now;

    p = ngx_snprintf(text, sizeof(text),
                     "{\"v\":1,\"type\":\"snapshot_request\","
                     "\"call\":\"%016uxL\",\"request\":%ui}",
                     room->call, room->request);
    ngx_teleclinic_post(a, &room->callee->peer, text, p - text);

    ngx_teleclinic_unlock(a);

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_room_snapshot_consent(ngx_teleclinic_actor_t *a,
    uint64_t call, ngx_uint_t request, ngx_uint_t granted)
{
    u_char                   text[NGX_TELECLINIC_TEXT_MAX], *p;
    ngx_teleclinic_room_t   *room;
    ngx_teleclinic_event_t   ev;

    ngx_teleclinic_zone_lock(a->zone);

    if (ngx_teleclinic_call_member(a, &room, 0, call) != NGX_OK
        || !room->answered)
    {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_NOT_IN_CALL);
    }

    if (room->request == 0
        || room->request != request
        || room->request_call != room->call)
    {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a,
                                        NGX_TELECLINIC_ROOM_UNKNOWN_REQUEST);
    }

    /* the decision is the patient's, on their appointment's record */

    ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
    ev.op = NGX_TELECLINIC_EV_CONSENT;
    ev.at = a->now;
    ev.created = room->asked;
    ev.id = room->callee->appt;
    ev.request = request;
    ev.num[0] = granted ? 1 : 0;

    if (ngx_teleclinic_journal_commit(a->zone, &ev, a->log) != NGX_OK) {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_ZONE_FULL);
    }

    a->committed = 1;
    room->request = 0;

    /* not the decision: it is the patient's, sealed in the journal */
    ngx_log_debug2(NGX_LOG_DEBUG_CORE, a->log, 0,
                   "teleclinic room: call %016xL snapshot request %ui answered",
                   room->call, request);

    p = ngx_snprintf(text, sizeof(text),
                     "{\"v\":1,\"type\":\"snapshot_consent\","
                     "\"call\":\"%016uxL\",\"request\":%ui,"
                     "\"granted\":%s}",
                     room->call, request, granted ? "true" : "false");
    ngx_teleclinic_post(a, &room->console, text, p - text);

    ngx_teleclinic_unlock(a);

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_room_media(ngx_teleclinic_actor_t *a, ngx_uint_t doctor,
    uint64_t call, ngx_uint_t state)
{
    ngx_teleclinic_room_t  *room;

    ngx_teleclinic_zone_lock(a->zone);

    if (ngx_teleclinic_call_member(a, &room, doctor, call) != NGX_OK
        || !room->answered)
    {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_NOT_IN_CALL);
    }

    /*
     * "failed" changes nothing: a call that never connected counts as
     * failed, no_media, when it ends
     */

    if (state == NGX_TELECLINIC_MEDIA_CONNECTED && !room->media) {
        room->media = 1;
        a->zone->sh->rooms->metrics.connected++;

        ngx_log_debug1(NGX_LOG_DEBUG_CORE, a->log, 0,
                       "teleclinic room: call %016xL media connected",
                       room->call);
    }

    ngx_teleclinic_unlock(a);

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_room_hangup(ngx_teleclinic_actor_t *a, ngx_uint_t doctor,
    uint64_t call)
{
    ngx_teleclinic_room_t  *room;

    ngx_teleclinic_zone_lock(a->zone);

    if (ngx_teleclinic_call_member(a, &room, doctor, call) != NGX_OK) {
        ngx_teleclinic_unlock(a);
        return ngx_teleclinic_room_refuse(a, NGX_TELECLINIC_ROOM_NOT_IN_CALL);
    }

    if (!room->answered) {
        if (doctor) {
            ngx_teleclinic_ring_stop(a, room, NGX_TELECLINIC_FAIL_CANCELLED,
                                     "cancelled");
        } else {
            ngx_teleclinic_ring_stop(a, room, NGX_TELECLINIC_FAIL_DECLINED,
                                     "declined");
        }

    } else {
        ngx_teleclinic_call_end(a, room, "hangup");
    }

    ngx_teleclinic_post_changed(a, room);
    ngx_teleclinic_unlock(a);

    return NGX_OK;
}


void
ngx_teleclinic_room_sweep(ngx_teleclinic_actor_t *a)
{
    ngx_teleclinic_room_t  *room;

    ngx_teleclinic_zone_lock(a->zone);

    room = ngx_teleclinic_room_find(a->zone, a->doctor.data, a->doctor.len);

    if (room) {
        ngx_teleclinic_room_sweep_locked(a, room);
    }

    ngx_teleclinic_unlock(a);
}


/*
 * A text for one connection of this worker, kept until the unlock; a
 * patient's is made from its figures only then, into one buffer for all.
 */
typedef struct {
    ngx_uint_t                    serial;
    u_char                       *text;      /* NULL: a patient's */
    size_t                        len;
    ngx_uint_t                    position;
    ngx_uint_t                    wait;
} ngx_teleclinic_outgoing_t;


void
ngx_teleclinic_room_update(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_send_pt send, ngx_teleclinic_room_ahead_pt ahead)
{
    u_char                     *p, *last;
    u_char                      text[NGX_TELECLINIC_PATIENT_QUEUE_LEN];
    size_t                      size;
    time_t                      remaining;
    ngx_uint_t                  i, k, position, average, wait, busy,
                                listed, max, nwaiting;
    ngx_pool_t                 *pool;
    ngx_array_t                 out;
    ngx_queue_t                *q;
    ngx_teleclinic_room_t      *room;
    ngx_teleclinic_wait_t      *w;
    ngx_teleclinic_outgoing_t  *o;

    pool = ngx_create_pool(16384, a->log);
    if (pool == NULL) {
        return;
    }

    if (ngx_array_init(&out, pool, 16, sizeof(ngx_teleclinic_outgoing_t))
        != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return;
    }

    busy = 0;
    nwaiting = 0;

    ngx_teleclinic_zone_lock(a->zone);

    room = ngx_teleclinic_room_find(a->zone, a->doctor.data, a->doctor.len);

    if (room == NULL) {
        goto done;
    }

    ngx_teleclinic_room_sweep_locked(a, room);

    average = ngx_teleclinic_room_average(a, room);

    remaining = 0;

    if (room->call && room->answered) {
        remaining = (time_t) average - (a->now - room->answered);

        if (remaining < 0) {
            remaining = 0;
        }
    }

    /*
     * ringing someone is not busy yet: a ring would otherwise message
     * every patient in the queue, and the answer again
     */
    busy = (room->call && room->answered) ? 1 : 0;
    nwaiting = room->nwaiting;
    position = 0;

    /* the patients of this worker whose figures changed */

    for (q = ngx_queue_head(&room->queue);
         q != ngx_queue_sentinel(&room->queue);
         q = ngx_queue_next(q))
    {
        w = ngx_queue_data(q, ngx_teleclinic_wait_t, queue);

        if (w->state == NGX_TELECLINIC_IN_CALL) {
            continue;
        }

        position++;

        if (w->peer.pid != ngx_pid) {
            continue;
        }

        wait = remaining + (position - 1) * average;
        wait = (wait + 59) / 60 * 60;

        if (w->told_position == position && w->told_wait == wait
            && w->told_busy == busy)
        {
            continue;
        }

        o = ngx_array_push(&out);
        if (o == NULL) {
            break;
        }

        w->told_position = position;
        w->told_wait = wait;
        w->told_busy = busy;

        o->serial = w->peer.serial;
        o->text = NULL;
        o->position = position;
        o->wait = wait;
    }

    /* the doctor's console, if it is here */

    if (room->console.pid != ngx_pid) {
        goto done;
    }

    o = ngx_array_push(&out);
    if (o == NULL) {
        goto done;
    }

    /*
     * the patient in the call and up to QUEUE_LIST of those waiting; a
     * name escaped takes at most 6 bytes a byte ("\u00XX")
     */
    size = 128 + (ngx_min(room->nwaiting, NGX_TELECLINIC_QUEUE_LIST) + 1)
                 * (128 + 2 * NGX_TELECLINIC_TIME_LEN
                    + 6 * NGX_TELECLINIC_NAME_MAX);

    o->serial = room->console.serial;
    o->text = ngx_pnalloc(pool, size);

    if (o->text == NULL) {
        out.nelts--;
        goto done;
    }

    last = o->text + size;

    p = ngx_sprintf(o->text, "{\"v\":1,\"type\":\"queue\",\"waiting\":%ui,"
                    "\"average\":%ui,\"patients\":[",
                    room->nwaiting, average);
    listed = 0;

    /*
     * The patient in the call first: no longer waiting, not counted in
     * "waiting", and where the queue's order puts them (the doctor may
     * have called anyone by name) they could be past the list's end.
     * Those waiting follow in queue order, so that each one's place in
     * the list is the position they are told.
     */

    w = room->callee;

    if (w && w->state == NGX_TELECLINIC_IN_CALL) {
        p = ngx_teleclinic_console_entry(a, p, last, w, &listed);

        if (p == NULL) {
            out.nelts--;
            goto done;
        }
    }

    max = listed + NGX_TELECLINIC_QUEUE_LIST;

    for (q = ngx_queue_head(&room->queue);
         q != ngx_queue_sentinel(&room->queue) && listed < max;
         q = ngx_queue_next(q))
    {
        w = ngx_queue_data(q, ngx_teleclinic_wait_t, queue);

        if (w->state == NGX_TELECLINIC_IN_CALL) {
            continue;
        }

        p = ngx_teleclinic_console_entry(a, p, last, w, &listed);

        if (p == NULL) {
            out.nelts--;
            goto done;
        }
    }

    p = ngx_cpymem(p, "]}", 2);
    o->len = p - o->text;

done:

    ngx_teleclinic_unlock(a);

    o = out.elts;

    for (i = 0; i < out.nelts; i++) {

        for (k = 1; ahead && k <= NGX_TELECLINIC_AHEAD; k++) {
            if (i + k < out.nelts) {
                ahead(o[i + k].serial, k);
            }
        }

        if (o[i].text) {
            send(o[i].serial, o[i].text, o[i].len);
            continue;
        }

        /* "waiting" comes along but changes of it alone tell nobody */
        p = ngx_snprintf(text, sizeof(text),
                         "{\"v\":1,\"type\":\"queue\",\"position\":%ui,"
                         "\"waiting\":%ui,\"estimated_wait\":%ui,"
                         "\"doctor_busy\":%s}",
                         o[i].position, nwaiting, o[i].wait,
                         busy ? "true" : "false");

        send(o[i].serial, text, p - text);
    }

    ngx_destroy_pool(pool);
}


/* one patient of the console's list; NULL: the buffer is too short */

static u_char *
ngx_teleclinic_console_entry(ngx_teleclinic_actor_t *a, u_char *p,
    u_char *last, ngx_teleclinic_wait_t *w, ngx_uint_t *listed)
{
    ngx_teleclinic_appt_t  *ap;

    static const char  *states[] = { "waiting", "ringing", "in-call" };

    ap = ngx_teleclinic_appt_lookup(a->zone, w->appt);

    if (ap == NULL) {
        return p;
    }

    if ((*listed)++) {
        *p++ = ',';
    }

    p = ngx_sprintf(p, "{\"appointment\":\"%016uxL\",\"name\":", w->appt);
    p = ngx_teleclinic_json_string(p, last, ap->name.data, ap->name.len);

    if (p == NULL) {
        return NULL;
    }

    p = ngx_cpymem(p, ",\"start\":\"", 10);
    p = ngx_teleclinic_time_print(p, w->start);
    p = ngx_cpymem(p, "\",\"arrived\":\"", 13);
    p = ngx_teleclinic_time_print(p, w->arrived);

    return ngx_sprintf(p, "\",\"connected\":%s,\"state\":\"%s\"}",
                       w->peer.pid ? "true" : "false", states[w->state]);
}


/*
 * The day is over: its appointments nobody came to, or whose patient
 * waited without being seen, become no-shows.  Every worker runs it at
 * midnight and at start; under the lock, the first one does the work.
 */

void
ngx_teleclinic_room_day_end(ngx_teleclinic_actor_t *a)
{
    time_t                  from, to;
    ngx_uint_t              n;
    ngx_rbtree_node_t      *node, *next, *root, *sentinel;
    ngx_teleclinic_appt_t  *appt;
    ngx_teleclinic_wait_t  *w;
    ngx_teleclinic_room_t  *room;
    ngx_teleclinic_date_t   date;

    ngx_teleclinic_date_of(a->now, &date);
    ngx_teleclinic_day_bounds(&date, &from, &to);

    n = 0;

    ngx_teleclinic_zone_lock(a->zone);

    root = a->zone->sh->appts.root;
    sentinel = a->zone->sh->appts.sentinel;

    for (node = (root == sentinel) ? NULL : ngx_rbtree_min(root, sentinel);
         node;
         node = next)
    {
        next = ngx_rbtree_next(&a->zone->sh->appts, node);
        appt = (ngx_teleclinic_appt_t *) node;

        if ((appt->status != NGX_TELECLINIC_BOOKED
             && appt->status != NGX_TELECLINIC_ARRIVED)
            || appt->start >= from)
        {
            continue;
        }

        w = ngx_teleclinic_wait_find(a->zone, appt->id);

        if (w && w->state != NGX_TELECLINIC_WAITING) {
            /* rung or in a call across midnight: theirs to finish */
            continue;
        }

        if (ngx_teleclinic_room_status(a, appt->id, NGX_TELECLINIC_NOSHOW)
            != NGX_OK)
        {
            break;
        }

        if (w) {
            room = w->room;
            ngx_teleclinic_wait_free(a->zone, w);
            ngx_teleclinic_post_changed(a, room);
        }

        n++;
    }

    ngx_teleclinic_unlock(a);

    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, a->log, 0,
                      "teleclinic: %ui appointments of past days became "
                      "no-shows", n);
    }

    a->timer = to;
}


ngx_int_t
ngx_teleclinic_room_init_zone(ngx_teleclinic_zone_t *zone)
{
    ngx_teleclinic_rooms_t  *rooms;

    rooms = ngx_slab_calloc(zone->shpool, sizeof(ngx_teleclinic_rooms_t));
    if (rooms == NULL) {
        return NGX_ERROR;
    }

    ngx_rbtree_init(&rooms->rooms, &rooms->rooms_sentinel,
                    ngx_rbtree_insert_value);
    ngx_rbtree_init(&rooms->waits, &rooms->waits_sentinel,
                    ngx_rbtree_insert_value);

    zone->sh->rooms = rooms;

    return NGX_OK;
}


void
ngx_teleclinic_room_visit_locked(ngx_teleclinic_zone_t *zone, u_char *doctor,
    size_t len, time_t duration, ngx_uint_t metrics)
{
    ngx_teleclinic_room_t     *room;
    ngx_teleclinic_metrics_t  *m;

    if (duration < 0) {
        return;
    }

    room = ngx_teleclinic_room_get(zone, doctor, len);
    if (room == NULL) {
        return;
    }

    /* a running average: recent visits count, old ones fade */

    if (room->visits++ == 0) {
        room->average = duration;

    } else {
        room->average = (ngx_int_t) room->average
                        + ((ngx_int_t) duration - (ngx_int_t) room->average)
                          / 10;
    }

    if (metrics) {
        m = &zone->sh->rooms->metrics;
        ngx_teleclinic_histogram(m->visit, ngx_teleclinic_visit_buckets,
                                 &m->visit_sum, &m->visit_count, duration);
    }
}


/* NGX_DECLINED when the zone has no room for the doctor's room */

ngx_int_t
ngx_teleclinic_room_average_locked(ngx_teleclinic_zone_t *zone,
    u_char *doctor, size_t len, ngx_uint_t visits, ngx_uint_t average)
{
    ngx_teleclinic_room_t  *room;

    room = ngx_teleclinic_room_get(zone, doctor, len);
    if (room == NULL) {
        return NGX_DECLINED;
    }

    room->visits = visits;
    room->average = average;

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_room_snapshot_locked(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_snapshot_pt write, void *data)
{
    ngx_rbtree_node_t       *node, *root, *sentinel;
    ngx_teleclinic_room_t   *room;
    ngx_teleclinic_event_t   ev;

    root = zone->sh->rooms->rooms.root;
    sentinel = zone->sh->rooms->rooms.sentinel;

    if (root == sentinel) {
        return NGX_OK;
    }

    for (node = ngx_rbtree_min(root, sentinel);
         node;
         node = ngx_rbtree_next(&zone->sh->rooms->rooms, node))
    {
        room = (ngx_teleclinic_room_t *) node;

        if (room->visits == 0) {
            continue;
        }

        ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
        ev.op = NGX_TELECLINIC_EV_ROOM;
        ev.at = ngx_time();
        ev.doctor.data = room->doctor;
        ev.doctor.len = room->doctor_len;
        ev.visits = room->visits;
        ev.average = room->average;

        if (write(&ev, data) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * With several nodes, the rooms whose home is another node now (one came
 * back or joined: here() says which are this node's).  Their live state
 * here goes without a trace in the journal: the home makes each room
 * again from the appointments, as after a node's death (the patients'
 * places, a call in progress given back), and nothing here may end that
 * call or send a patient to the queue's end when grace periods run out.
 */

void
ngx_teleclinic_room_release_locked(ngx_teleclinic_zone_t *zone,
    ngx_uint_t (*here)(u_char *doctor, size_t len))
{
    ngx_queue_t            *q;
    ngx_rbtree_node_t      *node, *root, *sentinel;
    ngx_teleclinic_room_t  *room;
    ngx_teleclinic_wait_t  *w;

    root = zone->sh->rooms->rooms.root;
    sentinel = zone->sh->rooms->rooms.sentinel;

    if (root == sentinel) {
        return;
    }

    for (node = ngx_rbtree_min(root, sentinel);
         node;
         node = ngx_rbtree_next(&zone->sh->rooms->rooms, node))
    {
        room = (ngx_teleclinic_room_t *) node;

        if ((ngx_queue_empty(&room->queue) && room->call == 0
             && room->console.pid == 0)
            || here(room->doctor, room->doctor_len))
        {
            continue;
        }

        while (!ngx_queue_empty(&room->queue)) {
            q = ngx_queue_head(&room->queue);
            w = ngx_queue_data(q, ngx_teleclinic_wait_t, queue);
            ngx_teleclinic_wait_free(zone, w);
        }

        room->call = 0;
        room->callee = NULL;
        room->nwaiting = 0;
        ngx_memzero(&room->console, sizeof(ngx_teleclinic_peer_t));

        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "teleclinic room: the room of \"%*s\" lives on "
                      "another node now", room->doctor_len, room->doctor);
    }
}


void
ngx_teleclinic_room_worker_gone_locked(ngx_teleclinic_zone_t *zone,
    ngx_pid_t pid)
{
    ngx_rbtree_node_t      *node, *root, *sentinel;
    ngx_teleclinic_room_t  *room;
    ngx_queue_t            *q;
    ngx_teleclinic_wait_t  *w;

    root = zone->sh->rooms->rooms.root;
    sentinel = zone->sh->rooms->rooms.sentinel;

    if (root == sentinel) {
        return;
    }

    for (node = ngx_rbtree_min(root, sentinel);
         node;
         node = ngx_rbtree_next(&zone->sh->rooms->rooms, node))
    {
        room = (ngx_teleclinic_room_t *) node;

        if (room->console.pid == pid) {
            room->console.pid = 0;
            room->console.left = ngx_time();
        }

        for (q = ngx_queue_head(&room->queue);
             q != ngx_queue_sentinel(&room->queue);
             q = ngx_queue_next(q))
        {
            w = ngx_queue_data(q, ngx_teleclinic_wait_t, queue);

            if (w->peer.pid == pid) {
                w->peer.pid = 0;
                w->peer.left = ngx_time();
            }
        }

        (void) ngx_teleclinic_bus_post_locked(zone, 0,
                                              NGX_TELECLINIC_MAIL_ROOM, 0,
                                              room->doctor, room->doctor_len);
    }
}


ngx_int_t
ngx_teleclinic_turn_credentials(ngx_str_t *secret, time_t expires,
    uint64_t call, const char *role, ngx_str_t *username,
    ngx_str_t *password, ngx_pool_t *pool)
{
    username->data = ngx_pnalloc(pool, NGX_TIME_T_LEN + 1 + 16 + 1 + 16);
    password->data = ngx_pnalloc(pool,
                                 NGX_TELECLINIC_STUN_REST_PASSWORD_LEN);

    if (username->data == NULL || password->data == NULL) {
        return NGX_ERROR;
    }

    username->len = ngx_sprintf(username->data, "%T:%016uxL:%s", expires,
                                call, role)
                    - username->data;

    /* what the stream side checks them with */
    return ngx_teleclinic_stun_rest_password(secret, username, password);
}


/* the room of a doctor */

static ngx_teleclinic_room_t *
ngx_teleclinic_room_find(ngx_teleclinic_zone_t *zone, u_char *doctor,
    size_t len)
{
    ngx_rbtree_key_t        key;
    ngx_rbtree_node_t      *node, *sentinel;
    ngx_teleclinic_room_t  *room;

    key = ngx_teleclinic_room_key(doctor, len);

    node = zone->sh->rooms->rooms.root;
    sentinel = zone->sh->rooms->rooms.sentinel;

    while (node != sentinel) {

        if (key != node->key) {
            node = (key < node->key) ? node->left : node->right;
            continue;
        }

        room = (ngx_teleclinic_room_t *) node;

        if (room->doctor_len == len
            && ngx_memcmp(room->doctor, doctor, len) == 0)
        {
            return room;
        }

        /* the same hash: equal keys go right on insertion */
        node = node->right;
    }

    return NULL;
}


static ngx_teleclinic_room_t *
ngx_teleclinic_room_get(ngx_teleclinic_zone_t *zone, u_char *doctor,
    size_t len)
{
    ngx_teleclinic_room_t  *room;

    if (len > NGX_TELECLINIC_ID_MAX) {
        return NULL;
    }

    room = ngx_teleclinic_room_find(zone, doctor, len);
    if (room) {
        return room;
    }

    room = ngx_slab_calloc_locked(zone->shpool,
                                  sizeof(ngx_teleclinic_room_t));
    if (room == NULL) {
        return NULL;
    }

    room->node.key = ngx_teleclinic_room_key(doctor, len);
    room->doctor_len = len;
    ngx_memcpy(room->doctor, doctor, len);
    ngx_queue_init(&room->queue);

    ngx_rbtree_insert(&zone->sh->rooms->rooms, &room->node);

    return room;
}


static ngx_teleclinic_wait_t *
ngx_teleclinic_wait_find(ngx_teleclinic_zone_t *zone, uint64_t appt)
{
    ngx_rbtree_key_t    key;
    ngx_rbtree_node_t  *node, *sentinel;

    key = (ngx_rbtree_key_t) appt;

    node = zone->sh->rooms->waits.root;
    sentinel = zone->sh->rooms->waits.sentinel;

    while (node != sentinel) {

        if (key == node->key) {
            return (ngx_teleclinic_wait_t *) node;
        }

        node = (key < node->key) ? node->left : node->right;
    }

    return NULL;
}


/* the queue's order: sent back last, then appointment time, then arrival */

static void
ngx_teleclinic_wait_place(ngx_teleclinic_room_t *room,
    ngx_teleclinic_wait_t *w)
{
    ngx_queue_t            *q;
    ngx_teleclinic_wait_t  *o;

    for (q = ngx_queue_last(&room->queue);
         q != ngx_queue_sentinel(&room->queue);
         q = ngx_queue_prev(q))
    {
        o = ngx_queue_data(q, ngx_teleclinic_wait_t, queue);

        if (o->back < w->back
            || (o->back == w->back
                && (o->start < w->start
                    || (o->start == w->start && o->arrival < w->arrival))))
        {
            break;
        }
    }

    /* after q, which is the sentinel when w goes first */
    ngx_queue_insert_after(q, &w->queue);
}


static void
ngx_teleclinic_wait_back(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, ngx_teleclinic_wait_t *w)
{
    ngx_queue_remove(&w->queue);
    w->back = ngx_teleclinic_room_back(a, room, w->appt);
    ngx_teleclinic_wait_place(room, w);
}


/*
 * When a patient went to the queue's end, journaled with the appointment:
 * the room may be made again after a restart or on another node.  The
 * clock's milliseconds, so any node's are comparable, and never less
 * than the room's last, so the order holds when the clock steps back.
 * A failed journal write leaves the place to this room alone.
 */

static ngx_uint_t
ngx_teleclinic_room_back(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, uint64_t appt)
{
    ngx_uint_t               back;
    ngx_time_t              *tp;
    ngx_teleclinic_event_t   ev;

    tp = ngx_timeofday();
    back = (ngx_uint_t) tp->sec * 1000 + tp->msec;

    if (back <= room->backs) {
        back = room->backs + 1;
    }

    room->backs = back;

    ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));

    ev.op = NGX_TELECLINIC_EV_BACK;
    ev.at = a->now;
    ev.id = appt;
    ev.back = back;

    if (ngx_teleclinic_journal_commit(a->zone, &ev, a->log) == NGX_OK) {
        a->committed = 1;
    }

    return back;
}


static void
ngx_teleclinic_wait_free(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_wait_t *w)
{
    if (w->state != NGX_TELECLINIC_IN_CALL) {
        w->room->nwaiting--;
    }

    if (w->room->callee == w) {
        w->room->callee = NULL;
        w->room->call = 0;
    }

    ngx_queue_remove(&w->queue);
    ngx_rbtree_delete(&zone->sh->rooms->waits, &w->node);
    ngx_slab_free_locked(zone->shpool, w);
}


/* a journaled change of the appointment's status, at the actor's now */

static ngx_int_t
ngx_teleclinic_room_status(ngx_teleclinic_actor_t *a, uint64_t appt,
    ngx_uint_t status)
{
    ngx_teleclinic_event_t  ev;

    ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));

    ev.op = NGX_TELECLINIC_EV_STATUS;
    ev.at = a->now;
    ev.id = appt;
    ev.status = status;

    if (ngx_teleclinic_journal_commit(a->zone, &ev, a->log) != NGX_OK) {
        return NGX_ERROR;
    }

    a->committed = 1;

    return NGX_OK;
}


/*
 * What time has decided: a ring not answered, a call or a place whose
 * connection did not come back within the grace period.  Timers of the
 * workers bring this about on time; every operation also does it first,
 * so a worker that exited with its timers changes nothing.
 */

static void
ngx_teleclinic_room_sweep_locked(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room)
{
    time_t                  grace;
    ngx_uint_t              changed;
    ngx_queue_t            *q, *next;
    ngx_teleclinic_wait_t  *w;

    grace = a->conf->grace;
    changed = 0;

    if (room->call && !room->answered) {

        if (a->now >= room->deadline) {
            ngx_teleclinic_ring_stop(a, room, NGX_TELECLINIC_FAIL_TIMEOUT,
                                     "timeout");
            changed = 1;

        } else if (room->console.pid == 0) {
            ngx_teleclinic_ring_stop(a, room, NGX_TELECLINIC_FAIL_CANCELLED,
                                     "cancelled");
            changed = 1;
        }
    }

    if (room->call && room->answered
        && ((room->console.pid == 0 && a->now >= room->console.left + grace)
            || (room->callee->peer.pid == 0
                && a->now >= room->callee->peer.left + grace)))
    {
        ngx_teleclinic_call_end(a, room, "dropped");
        changed = 1;
    }

    for (q = ngx_queue_head(&room->queue);
         q != ngx_queue_sentinel(&room->queue);
         q = next)
    {
        next = ngx_queue_next(q);
        w = ngx_queue_data(q, ngx_teleclinic_wait_t, queue);

        if (w->peer.pid == 0 && w->state == NGX_TELECLINIC_WAITING
            && a->now >= w->peer.left + grace)
        {
            (void) ngx_teleclinic_room_back(a, room, w->appt);
            ngx_teleclinic_wait_free(a->zone, w);
            changed = 1;
        }
    }

    if (changed) {
        ngx_teleclinic_post_changed(a, room);
    }
}


/* the ring ends unanswered: the patient goes back to the queue */

static void
ngx_teleclinic_ring_stop(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, ngx_uint_t reason, const char *why)
{
    ngx_teleclinic_wait_t  *w;

    w = room->callee;

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, a->log, 0,
                   "teleclinic room: call %016xL stops ringing: %s",
                   room->call, why);

    a->zone->sh->rooms->metrics.failed[reason]++;

    ngx_teleclinic_post_call_state(a, room, why);

    if (reason != NGX_TELECLINIC_FAIL_DECLINED) {
        ngx_teleclinic_post_ended(a, room, &w->peer, why);
    }

    room->call = 0;
    room->callee = NULL;

    w->state = NGX_TELECLINIC_WAITING;

    if (reason != NGX_TELECLINIC_FAIL_CANCELLED) {
        ngx_teleclinic_wait_back(a, room, w);
    }
}


static void
ngx_teleclinic_call_end(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, const char *reason)
{
    ngx_teleclinic_wait_t  *w;
    ngx_teleclinic_peer_t   peer;

    static u_char  fulfilled[] =
        "{\"v\":1,\"type\":\"visit\",\"status\":\"fulfilled\"}";

    w = room->callee;

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, a->log, 0,
                   "teleclinic room: call %016xL ended: %s",
                   room->call, reason);

    ngx_teleclinic_post_ended(a, room, &room->console, reason);
    ngx_teleclinic_post_ended(a, room, &w->peer, reason);

    if (ngx_strcmp(reason, "dropped") == 0) {
        a->zone->sh->rooms->metrics.failed[NGX_TELECLINIC_FAIL_DROPPED]++;

    } else if (!room->media) {
        a->zone->sh->rooms->metrics.failed[NGX_TELECLINIC_FAIL_MEDIA]++;
    }

    /* the visit took place: fulfilled, its length joins the average */
    (void) ngx_teleclinic_room_status(a, w->appt, NGX_TELECLINIC_FULFILLED);

    peer = w->peer;
    ngx_teleclinic_wait_free(a->zone, w);

    ngx_teleclinic_post(a, &peer, fulfilled, sizeof(fulfilled) - 1);
}


/* the caller's connection takes part in the call: NGX_OK */

static ngx_int_t
ngx_teleclinic_call_member(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t **roomp, ngx_uint_t doctor, uint64_t call)
{
    ngx_teleclinic_room_t  *room;
    ngx_teleclinic_wait_t  *w;

    if (doctor) {
        room = ngx_teleclinic_room_find(a->zone, a->doctor.data,
                                        a->doctor.len);
        if (room == NULL
            || room->console.pid != ngx_pid
            || room->console.serial != a->serial)
        {
            return NGX_DECLINED;
        }

    } else {
        w = ngx_teleclinic_wait_find(a->zone, a->appt);

        if (w == NULL
            || w->peer.pid != ngx_pid || w->peer.serial != a->serial)
        {
            return NGX_DECLINED;
        }

        room = w->room;

        if (room->callee != w) {
            return NGX_DECLINED;
        }
    }

    ngx_teleclinic_room_sweep_locked(a, room);

    if (room->call == 0 || room->call != call) {
        return NGX_DECLINED;
    }

    *roomp = room;

    return NGX_OK;
}


/* "call" to one side, with its ICE servers and TURN credentials */

static void
ngx_teleclinic_call_announce(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, ngx_uint_t doctor, ngx_uint_t rejoin)
{
    u_char                 *text, *p, *last;
    size_t                  size;
    ngx_str_t              *url, user, pass;
    ngx_uint_t              i, n, turn, groups, listed;
    ngx_pool_t             *pool;
    const char             *role;
    ngx_teleclinic_peer_t  *peer;

    peer = doctor ? &room->console : &room->callee->peer;
    role = doctor ? "doctor" : "patient";

    if (peer->pid == 0) {
        return;
    }

    pool = ngx_create_pool(1024, a->log);
    if (pool == NULL) {
        return;
    }

    size = 512;
    n = a->conf->ice_servers ? a->conf->ice_servers->nelts : 0;
    url = n ? a->conf->ice_servers->elts : NULL;

    for (i = 0; i < n; i++) {
        size += 2 * url[i].len + 8;
    }

    text = ngx_pnalloc(pool, size);
    if (text == NULL) {
        goto done;
    }

    last = text + size;

    p = ngx_sprintf(text, "{\"v\":1,\"type\":\"call\",\"call\":\"%016uxL\","
                    "\"role\":\"%s\",\"appointment\":\"%016uxL\","
                    "\"offerer\":%s,\"rejoin\":%s,\"ice_servers\":[",
                    room->call, role, room->callee->appt,
                    doctor ? "true" : "false", rejoin ? "true" : "false");

    /* the STUN URLs in one entry, the TURN ones with credentials in another */

    groups = 0;

    for (turn = 0; turn < 2; turn++) {

        if (turn && a->conf->turn_secret.len == 0) {
            break;
        }

        listed = 0;

        for (i = 0; i < n; i++) {
            if ((ngx_strncmp(url[i].data, "turn", 4) == 0) != turn) {
                continue;
            }

            if (listed == 0) {
                p = ngx_cpymem(p, groups ? ",{\"urls\":[" : "{\"urls\":[",
                               groups ? 10 : 9);
            } else {
                *p++ = ',';
            }

            p = ngx_teleclinic_json_string(p, last, url[i].data, url[i].len);
            if (p == NULL) {
                goto done;
            }

            listed++;
        }

        if (listed == 0) {
            continue;
        }

        *p++ = ']';

        if (turn) {
            if (ngx_teleclinic_turn_credentials(&a->conf->turn_secret,
                                                a->now + a->conf->turn_ttl,
                                                room->call, role,
                                                &user, &pass, pool)
                != NGX_OK)
            {
                goto done;
            }

            p = ngx_sprintf(p, ",\"username\":\"%V\",\"credential\":\"%V\"",
                            &user, &pass);
        }

        *p++ = '}';
        groups++;
    }

    p = ngx_cpymem(p, "]}", 2);

    ngx_teleclinic_post(a, peer, text, p - text);

done:

    ngx_destroy_pool(pool);
}


/* "peer" to one side of the call: the other left or came back */

static void
ngx_teleclinic_post_peer(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, ngx_uint_t doctor, const char *state)
{
    u_char  text[NGX_TELECLINIC_TEXT_MAX], *p;

    p = ngx_snprintf(text, sizeof(text),
                     "{\"v\":1,\"type\":\"peer\",\"call\":\"%016uxL\","
                     "\"state\":\"%s\"}", room->call, state);
    ngx_teleclinic_post(a, doctor ? &room->console : &room->callee->peer,
                        text, p - text);
}


/* the actor's connection becomes the peer; the one before gives way */

static void
ngx_teleclinic_peer_take(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_peer_t *peer)
{
    if (peer->pid && (peer->pid != ngx_pid || peer->serial != a->serial)) {
        (void) ngx_teleclinic_bus_post_locked(a->zone, peer->pid,
                                              NGX_TELECLINIC_MAIL_CLOSE,
                                              peer->serial, NULL, 0);
    }

    peer->pid = ngx_pid;
    peer->serial = a->serial;
    peer->left = 0;
}


static void
ngx_teleclinic_post(ngx_teleclinic_actor_t *a, ngx_teleclinic_peer_t *peer,
    u_char *text, size_t len)
{
    if (peer->pid == 0) {
        return;
    }

    (void) ngx_teleclinic_bus_post_locked(a->zone, peer->pid,
                                          NGX_TELECLINIC_MAIL_SEND,
                                          peer->serial, text, len);
}


/* every worker looks at the room again, for its own connections in it */

static void
ngx_teleclinic_post_changed(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room)
{
    (void) ngx_teleclinic_bus_post_locked(a->zone, 0,
                                          NGX_TELECLINIC_MAIL_ROOM, 0,
                                          room->doctor, room->doctor_len);
}


/* to the doctor: where the ring stands; to the patient: the ring again */

static void
ngx_teleclinic_post_call_state(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, const char *state)
{
    u_char  text[NGX_TELECLINIC_TEXT_MAX], *p;

    if (state == NULL) {
        p = ngx_snprintf(text, sizeof(text),
                         "{\"v\":1,\"type\":\"ring\",\"call\":\"%016uxL\","
                         "\"timeout\":%T}", room->call,
                         room->deadline > a->now
                         ? room->deadline - a->now : 0);
        ngx_teleclinic_post(a, &room->callee->peer, text, p - text);
        return;
    }

    p = ngx_snprintf(text, sizeof(text),
                     "{\"v\":1,\"type\":\"call_state\",\"call\":\"%016uxL\","
                     "\"appointment\":\"%016uxL\",\"state\":\"%s\"}",
                     room->call, room->callee->appt, state);
    ngx_teleclinic_post(a, &room->console, text, p - text);
}


static void
ngx_teleclinic_post_ended(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room, ngx_teleclinic_peer_t *peer,
    const char *reason)
{
    u_char  text[NGX_TELECLINIC_TEXT_MAX], *p;

    p = ngx_snprintf(text, sizeof(text),
                     "{\"v\":1,\"type\":\"ended\",\"call\":\"%016uxL\","
                     "\"reason\":\"%s\"}", room->call, reason);
    ngx_teleclinic_post(a, peer, text, p - text);
}


static void
ngx_teleclinic_unlock(ngx_teleclinic_actor_t *a)
{
    ngx_teleclinic_zone_unlock(a->zone);
    ngx_teleclinic_bus_ring(a->zone);
}


static ngx_uint_t
ngx_teleclinic_room_average(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_t *room)
{
    return room->visits ? room->average : a->slot_seconds;
}


static void
ngx_teleclinic_histogram(ngx_uint_t *counts, ngx_uint_t *buckets,
    ngx_uint_t *sum, ngx_uint_t *count, ngx_uint_t value)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_TELECLINIC_HISTOGRAM; i++) {
        if (value <= buckets[i]) {
            counts[i]++;
            break;
        }
    }

    *sum += value;
    (*count)++;
}


static ngx_rbtree_key_t
ngx_teleclinic_room_key(u_char *doctor, size_t len)
{
    return (ngx_rbtree_key_t) ngx_murmur_hash2(doctor, len);
}
