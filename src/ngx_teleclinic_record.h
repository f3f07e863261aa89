
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_RECORD_H_INCLUDED_
#define _NGX_TELECLINIC_RECORD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_teleclinic.h"
#include "ngx_teleclinic_zone.h"


/*
 * The visit record: what the doctor writes of one appointment (the note,
 * prescriptions, orders, follow-ups, addenda) and the patient's rating.
 * One per appointment, made by its first change, in the zone; every
 * change is an event (NGX_TELECLINIC_EV_NOTE ... _CONSENT) applied by
 * ngx_teleclinic_record_apply_locked() live and at replay alike.
 */

#define NGX_TELECLINIC_RECORD_OPEN     0
#define NGX_TELECLINIC_RECORD_FINAL    1

/* the note's fields, in the order of ev->text[] */
#define NGX_TELECLINIC_NOTE_COMPLAINT  0
#define NGX_TELECLINIC_NOTE_HISTORY    1
#define NGX_TELECLINIC_NOTE_FINDINGS   2
#define NGX_TELECLINIC_NOTE_DIAGNOSIS  3
#define NGX_TELECLINIC_NOTE_ADVICE     4
#define NGX_TELECLINIC_NOTE_FIELDS     5

/* items; an item's texts in ev->text[], its numbers in ev->num[] */
#define NGX_TELECLINIC_ITEM_RX         1   /* dose, frequency, note;
                                              days, quantity */
#define NGX_TELECLINIC_ITEM_ORDER      2   /* note */
#define NGX_TELECLINIC_ITEM_FOLLOWUP   3   /* note; due (ev->due) */
#define NGX_TELECLINIC_ITEM_ADDENDUM   4   /* text */
#define NGX_TELECLINIC_ITEM_SNAPSHOT   5   /* content type (ref); size;
                                              the consent (request) */
#define NGX_TELECLINIC_ITEM_KINDS      5

#define NGX_TELECLINIC_ITEM_TEXTS      3

/* a record holds so many items, and so many consent decisions */
#define NGX_TELECLINIC_RECORD_ITEMS    200
#define NGX_TELECLINIC_RECORD_CONSENTS 200


typedef struct {
    ngx_queue_t                   queue;     /* the record's, in order */
    ngx_uint_t                    id;
    ngx_uint_t                    kind;
    time_t                        at;
    time_t                        due;
    ngx_uint_t                    num[2];
    ngx_uint_t                    request;   /* a snapshot's consent */
    ngx_str_t                     ref;
    ngx_str_t                     text[NGX_TELECLINIC_ITEM_TEXTS];
} ngx_teleclinic_item_t;


/* the patient's answer to one snapshot request of the doctor's */
typedef struct {
    ngx_queue_t                   queue;     /* the record's, in order */
    ngx_uint_t                    request;
    time_t                        asked;
    time_t                        answered;
    unsigned                      granted:1;
    unsigned                      used:1;    /* a snapshot was taken */
} ngx_teleclinic_consent_t;


typedef struct {
    ngx_rbtree_node_t             node;      /* key: the appointment id */
    uint64_t                      appt;
    ngx_uint_t                    status;
    time_t                        created;
    time_t                        updated;   /* of the note */
    time_t                        closed;
    ngx_str_t                     note[NGX_TELECLINIC_NOTE_FIELDS];
    ngx_queue_t                   items;
    ngx_uint_t                    nitems;    /* not deleted */
    ngx_uint_t                    last_item; /* the highest id given */
    ngx_queue_t                   consents;
    ngx_uint_t                    nconsents;
    ngx_uint_t                    score;     /* 0: not rated */
    time_t                        rated;
    ngx_str_t                     comment;
} ngx_teleclinic_record_t;


/* in the zone, made by the first record */
struct ngx_teleclinic_records_s {
    ngx_rbtree_t                  tree;
    ngx_rbtree_node_t             sentinel;
    ngx_uint_t                    nrecords;
    /* for /metrics, since the zone was made: not counted again at replay */
    ngx_uint_t                    closed;
    ngx_uint_t                    ratings[5];  /* by score */
};


/* with the zone locked */
ngx_teleclinic_record_t *ngx_teleclinic_record_lookup(
    ngx_teleclinic_zone_t *zone, uint64_t appt);
ngx_teleclinic_item_t *ngx_teleclinic_item_lookup(
    ngx_teleclinic_record_t *rec, ngx_uint_t id);
ngx_teleclinic_consent_t *ngx_teleclinic_consent_lookup(
    ngx_teleclinic_record_t *rec, ngx_uint_t request);

/*
 * A consent a snapshot may be taken under now: granted, not used yet,
 * answered at most timeout seconds ago (teleclinic_snapshot_consent_timeout).
 */
ngx_int_t ngx_teleclinic_consent_usable(ngx_teleclinic_consent_t *consent,
    time_t now, time_t timeout);

/* the zone's handlers for the record's events and for compaction */
ngx_int_t ngx_teleclinic_record_apply_locked(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev);
ngx_int_t ngx_teleclinic_record_snapshot_locked(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_snapshot_pt write, void *data);

/*
 * Records whose visit ended retention seconds before now are forgotten
 * through the journal, at most max of them; takes the zone's lock.
 */
ngx_uint_t ngx_teleclinic_record_expire(ngx_teleclinic_zone_t *zone,
    time_t retention, time_t now, ngx_uint_t max, ngx_log_t *log);

/*
 * A copy of the record in pool memory, for an answer formatted after the
 * unlock: the same structures, texts, items and consents copied, their
 * queues made again in the copy.
 */
ngx_teleclinic_record_t *ngx_teleclinic_record_copy(
    ngx_teleclinic_record_t *rec, ngx_pool_t *pool);

extern ngx_str_t  ngx_teleclinic_note_fields[];
extern ngx_str_t  ngx_teleclinic_followup_kinds[];


#endif /* _NGX_TELECLINIC_RECORD_H_INCLUDED_ */
