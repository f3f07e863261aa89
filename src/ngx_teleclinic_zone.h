
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_ZONE_H_INCLUDED_
#define _NGX_TELECLINIC_ZONE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_teleclinic.h"


/* FHIR R4 Appointment.status values that the service uses */
#define NGX_TELECLINIC_BOOKED        0
#define NGX_TELECLINIC_ARRIVED       1
#define NGX_TELECLINIC_FULFILLED     2
#define NGX_TELECLINIC_CANCELLED     3
#define NGX_TELECLINIC_NOSHOW        4
/* Encounter.status in-progress: the video call is on */
#define NGX_TELECLINIC_INCALL        5
#define NGX_TELECLINIC_NSTATUS       6

/* kinds of outbox messages for the hospital's messaging gateway */
#define NGX_TELECLINIC_MSG_CONFIRMATION  0
#define NGX_TELECLINIC_MSG_CANCELLATION  1
#define NGX_TELECLINIC_MSG_RESCHEDULE    2
#define NGX_TELECLINIC_MSG_REMINDER      3
/* of the visit record: a follow-up to the gateway; the EMR's Bundles */
#define NGX_TELECLINIC_MSG_FOLLOWUP      4
#define NGX_TELECLINIC_MSG_RECORD        5
#define NGX_TELECLINIC_MSG_RATING        6
#define NGX_TELECLINIC_MSG_LAST          NGX_TELECLINIC_MSG_RATING

#define ngx_teleclinic_msg_emr(kind)                                         \
    ((kind) == NGX_TELECLINIC_MSG_RECORD || (kind) == NGX_TELECLINIC_MSG_RATING)

/* events: every change of the zone is one of these, journaled */
#define NGX_TELECLINIC_EV_BOOK        1
#define NGX_TELECLINIC_EV_CANCEL      2
#define NGX_TELECLINIC_EV_RESCHEDULE  3
#define NGX_TELECLINIC_EV_STATUS      4
#define NGX_TELECLINIC_EV_DIRECTORY   5
#define NGX_TELECLINIC_EV_SENT        6
/* snapshot records written by journal compaction */
#define NGX_TELECLINIC_EV_APPT        7
#define NGX_TELECLINIC_EV_MSG         8
/* a past cancelled appointment leaves a full zone */
#define NGX_TELECLINIC_EV_EXPIRE      9
/* snapshot: a doctor's running average, which the visits made */
#define NGX_TELECLINIC_EV_ROOM        10
/* the visit record (ngx_teleclinic_record.c); compaction writes them too */
#define NGX_TELECLINIC_EV_NOTE        11
#define NGX_TELECLINIC_EV_ITEM        12
#define NGX_TELECLINIC_EV_DROP        13
#define NGX_TELECLINIC_EV_CLOSE       14
#define NGX_TELECLINIC_EV_RATING      15
/* a record past its retention leaves the zone */
#define NGX_TELECLINIC_EV_FORGET      16
/* the patient's answer to a snapshot request: ids and times, no text */
#define NGX_TELECLINIC_EV_CONSENT     17
/* compaction's: how far the other nodes' events (Redis) are applied */
#define NGX_TELECLINIC_EV_MIRROR      18
/* a patient to the end of the queue: the waiting room's order */
#define NGX_TELECLINIC_EV_BACK        19
#define NGX_TELECLINIC_EV_LAST        NGX_TELECLINIC_EV_BACK

/* a node's name (teleclinic_node) and a Redis Stream entry's id */
#define NGX_TELECLINIC_NODE_MAX       32
#define NGX_TELECLINIC_RID_MAX        48
/* the writers (a node's workers) whose events a zone has applied */
#define NGX_TELECLINIC_MARKS          256
/* the nodes of a group that a zone knows alive */
#define NGX_TELECLINIC_NODES          64

/* snapshot request ids: numbers that JavaScript holds exactly */
#define NGX_TELECLINIC_REQUEST_MAX    ((((ngx_uint_t) 1) << 53) - 1)

/* the texts an event of the record carries: the note has the most */
#define NGX_TELECLINIC_TEXTS          5


typedef struct {
    ngx_rbtree_node_t             node;      /* key: id */
    ngx_rbtree_node_t             slot;      /* key: doctor's hash, start */
    ngx_queue_t                   cancelled; /* while cancelled */
    uint64_t                      id;
    time_t                        start;
    time_t                        end;
    time_t                        created;
    time_t                        updated;
    time_t                        arrived;   /* first check-in */
    time_t                        visit_start;
    time_t                        visit_end;
    ngx_uint_t                    back;      /* 0, or when sent back, ms */
    ngx_uint_t                    status;
    uint32_t                      version;   /* of its patient's token */
    struct ngx_teleclinic_msg_s  *reminder;
    size_t                        doctor_len;
    u_char                        doctor[NGX_TELECLINIC_ID_MAX];
    ngx_str_t                     name;      /* these three share the */
    ngx_str_t                     phone;     /* slab chunk of the node */
    ngx_str_t                     reason;
    unsigned                      in_slot:1;
} ngx_teleclinic_appt_t;


typedef struct ngx_teleclinic_msg_s {
    ngx_rbtree_node_t             node;      /* key: next attempt time */
    ngx_rbtree_node_t             id;        /* key: message id */
    uint64_t                      appt;
    ngx_uint_t                    kind;
    time_t                        due;
    time_t                        lease;     /* a worker is sending it */
    ngx_uint_t                    attempts;
    ngx_uint_t                    item;      /* a follow-up's, in the record */
    ngx_uint_t                    owner;     /* another node's, by its hash;
                                                0: this node's */
} ngx_teleclinic_msg_t;


/*
 * Doctor logins of one doctor id in the directory, for the lockout (see
 * ngx_teleclinic_doctor.c): one node per id with attempts in the window,
 * in the slab, so that no id can push another out.
 */
typedef struct {
    ngx_str_node_t                sn;        /* key: crc32 of the id */
    ngx_queue_t                   queue;     /* most recently used first */
    ngx_uint_t                    failures;
    ngx_uint_t                    inflight;  /* KDFs queued or running */
    time_t                        started;   /* the last one queued */
    time_t                        since;     /* first attempt counted */
    time_t                        locked;    /* refused until then */
    u_char                        id[1];
} ngx_teleclinic_login_t;


typedef struct {
    ngx_rbtree_t                  tree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   lru;
    /* for /metrics */
    ngx_atomic_t                  checks;    /* KDFs run */
    ngx_atomic_t                  locked;    /* 429 too_many_attempts */
    ngx_atomic_t                  busy;      /* 429 busy */
    ngx_atomic_t                  dropped;   /* client gone before its KDF */
} ngx_teleclinic_logins_t;


/*
 * How far one writer's events are applied here: a worker of another node
 * sends its events in the order of their sequence numbers, so a number
 * not above its mark is an event seen before (sent again after a lost
 * answer, or read again after a restart).
 */
typedef struct {
    size_t                        len;
    u_char                        node[NGX_TELECLINIC_NODE_MAX];
    ngx_uint_t                    worker;
    ngx_uint_t                    seq;
} ngx_teleclinic_mark_t;


/* a node's public base URL, as it tells the others */
#define NGX_TELECLINIC_URL_MAX        128

typedef struct {
    size_t                        len;
    u_char                        name[NGX_TELECLINIC_NODE_MAX];
    size_t                        url_len;
    u_char                        url[NGX_TELECLINIC_URL_MAX];
} ngx_teleclinic_node_t;


/* what a zone of a group of nodes keeps of the others (25 KiB) */
typedef struct {
    /* the last entry of the Redis Stream read here, "" before any */
    size_t                        mirror_len;
    u_char                        mirror[NGX_TELECLINIC_RID_MAX];
    ngx_uint_t                    nmarks;
    ngx_teleclinic_mark_t         marks[NGX_TELECLINIC_MARKS];

    /* the nodes alive, by name, as Redis last said; not journaled */
    ngx_uint_t                    nodes_version;
    ngx_uint_t                    nnodes;
    ngx_teleclinic_node_t         nodes[NGX_TELECLINIC_NODES];
} ngx_teleclinic_group_t;


typedef struct {
    ngx_rbtree_t                  appts;
    ngx_rbtree_node_t             appts_sentinel;
    ngx_rbtree_t                  slots;
    ngx_rbtree_node_t             slots_sentinel;
    ngx_rbtree_t                  outbox;
    ngx_rbtree_node_t             outbox_sentinel;
    ngx_rbtree_t                  msgs;
    ngx_rbtree_node_t             msgs_sentinel;
    ngx_queue_t                   cancelled;  /* in order of cancelling */

    ngx_uint_t                    seq;        /* of the last event */
    ngx_uint_t                    nappts;
    ngx_uint_t                    nmsgs;
    ngx_uint_t                    nstatus[NGX_TELECLINIC_NSTATUS];

    /* the directory as its JSON text; workers parse it per version */
    u_char                       *directory;
    size_t                        directory_len;
    ngx_uint_t                    directory_version;
    u_char                        directory_file_hash[32];

    ngx_uint_t                    journal_records;
    ngx_uint_t                    nrecord_events;  /* a compaction's */

    /* several nodes: made when first needed (ngx_teleclinic_group()) */
    ngx_teleclinic_group_t       *group;

    ngx_teleclinic_logins_t       logins;

    /*
     * the waiting rooms and the workers' mailboxes: made by the layers
     * above, through the zone's init handler, when the zone is new
     */
    ngx_teleclinic_rooms_t       *rooms;
    ngx_teleclinic_bus_sh_t      *bus;
    ngx_teleclinic_records_t     *records;
} ngx_teleclinic_sh_t;


/*
 * One change of state.  The same structure is applied to the zone on a
 * live request and when the journal is replayed, so both paths produce
 * the same state.  A new string in it goes into the list of strings in
 * ngx_teleclinic_zone.c too, which ngx_teleclinic_event_copy() follows.
 */
typedef struct {
    ngx_uint_t                    op;
    time_t                        at;
    uint64_t                      id;          /* appointment */
    ngx_str_t                     doctor;
    time_t                        start;
    time_t                        end;
    time_t                        created;
    ngx_uint_t                    status;
    time_t                        arrived;     /* snapshots keep the */
    time_t                        visit_start; /* visit's times */
    time_t                        visit_end;
    ngx_uint_t                    back;        /* to the queue's end, ms */
    uint32_t                      version;     /* snapshots: the token's */
    ngx_str_t                     name;
    ngx_str_t                     phone;
    ngx_str_t                     reason;
    ngx_uint_t                    seq;         /* of this event */
    ngx_uint_t                    msg;         /* message id */
    ngx_uint_t                    kind;        /* message kind */
    time_t                        due;
    ngx_uint_t                    visits;      /* of the doctor, and */
    ngx_uint_t                    average;     /* their average visit */
    ngx_str_t                     directory;   /* JSON text */
    u_char                        hash[32];    /* of the directory file */

    /* the record's: an item's id and kind, what it names, its texts */
    ngx_uint_t                    item;
    ngx_uint_t                    item_kind;
    ngx_str_t                     ref;         /* drug, exam, follow-up */
    ngx_str_t                     text[NGX_TELECLINIC_TEXTS];
    ngx_uint_t                    num[2];      /* days, quantity; score */
    ngx_uint_t                    request;     /* a snapshot's consent */
    ngx_uint_t                    quiet;       /* compaction's: it sends
                                                  nothing again */

    /*
     * another node's event, from the Redis Stream: that node's name and
     * the stream entry's id.  Such an event sends no message: the node
     * that made it owns its outbox.
     */
    ngx_str_t                     node;
    ngx_uint_t                    worker;      /* of that node */
    ngx_uint_t                    oseq;        /* its sequence number */
    ngx_str_t                     rid;
    ngx_uint_t                    owner;       /* a message's, snapshots */

    /* the slot a cancel or a move frees, for its claim (not journaled) */
    ngx_str_t                     freed_doctor;
    time_t                        freed_start;
} ngx_teleclinic_event_t;


/* a snapshot record for each piece of state of the layers above */
typedef ngx_int_t (*ngx_teleclinic_snapshot_pt)(ngx_teleclinic_event_t *ev,
    void *data);


/*
 * The files above the zone that keep state in it are reached through
 * these handlers, which the module sets, never by name: the zone is at
 * the bottom of the data layer.  All but open run with the zone locked.
 */
typedef struct {
    /* a new zone: the state of the rooms and the bus */
    ngx_int_t                   (*init)(ngx_teleclinic_zone_t *zone);
    /* init_zone, at start and on a reload: the journal, the directory */
    ngx_int_t                   (*open)(ngx_teleclinic_zone_t *zone);
    /* a visit ended: the doctor's average; the metrics unless replayed */
    void                        (*visit)(ngx_teleclinic_zone_t *zone,
                                    u_char *doctor, size_t len,
                                    time_t duration, ngx_uint_t metrics);
    /* a "room" record: NGX_DECLINED when the zone is full */
    ngx_int_t                   (*average)(ngx_teleclinic_zone_t *zone,
                                    u_char *doctor, size_t len,
                                    ngx_uint_t visits, ngx_uint_t average);
    /* compaction: the "room" records of the doctors' averages */
    ngx_int_t                   (*snapshot)(ngx_teleclinic_zone_t *zone,
                                    ngx_teleclinic_snapshot_pt write,
                                    void *data);
    /* an event of a visit record: NGX_DECLINED when the zone is full */
    ngx_int_t                   (*record)(ngx_teleclinic_zone_t *zone,
                                    ngx_teleclinic_event_t *ev);
    /* compaction: the events that make each record again */
    ngx_int_t                   (*records)(ngx_teleclinic_zone_t *zone,
                                    ngx_teleclinic_snapshot_pt write,
                                    void *data);
} ngx_teleclinic_zone_handlers_t;


struct ngx_teleclinic_zone_s {
    ngx_cycle_t                  *cycle;      /* the one being configured */
    ngx_teleclinic_sh_t          *sh;
    ngx_slab_pool_t              *shpool;
    ngx_shm_zone_t               *shm_zone;
    ngx_teleclinic_journal_t     *journal;
    ngx_str_t                     directory_file;
    ngx_str_t                     snapshot_path;  /* the images' files */
    ngx_fd_t                      snapshot_dir;   /* opened by the master */
    time_t                        reminder_before;
    ngx_uint_t                    fresh;      /* no state before start */
    ngx_uint_t                    made;       /* by this cycle, not reused */
    ngx_uint_t                    replay;     /* the journal is replayed */
    ngx_uint_t                    notify;     /* a gateway is configured */
    ngx_uint_t                    emr;        /* and an EMR */
    ngx_uint_t                    self;       /* of a group of nodes: the
                                                 hash of this one's name */
    ngx_teleclinic_zone_handlers_t  *handlers;
    u_char                       *directory;  /* changed, to be stored */
    size_t                        directory_len;
    u_char                        directory_hash[32];
};


/*
 * A message's id: the creating event's sequence number and its kind; the
 * record's kinds, added later, count apart (bit 62), so that the ids of
 * journals written before them stay what they were.
 */
#define ngx_teleclinic_msg_id(seq, kind)                                     \
    ((kind) < 4 ? (seq) * 4 + (kind)                                         \
                : ((seq) * 4 + (kind) - 4) | ((ngx_uint_t) 1 << 62))

/*
 * In a group of nodes a message's id also names the node whose change
 * made it (its name's hash, bits 44 to 60, the sequence number being
 * that node's), so that every node's copy of it has the same id: the
 * node that sends it tells the others with its "sent" event.
 */
#define NGX_TELECLINIC_NODE_HASH_SHIFT  44

ngx_uint_t ngx_teleclinic_node_hash(u_char *name, size_t len);


ngx_shm_zone_t *ngx_teleclinic_zone_add(ngx_conf_t *cf, ngx_str_t *name,
    size_t size, void *tag);

void ngx_teleclinic_zone_lock(ngx_teleclinic_zone_t *zone);
void ngx_teleclinic_zone_unlock(ngx_teleclinic_zone_t *zone);

/* called with the zone locked; NGX_DECLINED when the zone is full */
ngx_int_t ngx_teleclinic_zone_apply(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev, ngx_log_t *log);

/* an event with copies of its strings, e.g. to encode it after the lock */
size_t ngx_teleclinic_event_size(ngx_teleclinic_event_t *ev);
ngx_teleclinic_event_t *ngx_teleclinic_event_copy(ngx_teleclinic_event_t *ev,
    u_char *buf);

/*
 * With the zone locked: the group's part, made by the first call; NULL
 * when the zone is full.  A zone of one node never has it.
 */
ngx_teleclinic_group_t *ngx_teleclinic_group(ngx_teleclinic_zone_t *zone);

/* the writer's mark, NULL when the table is full */
ngx_teleclinic_mark_t *ngx_teleclinic_mark(ngx_teleclinic_zone_t *zone,
    ngx_str_t *node, ngx_uint_t worker);

ngx_teleclinic_appt_t *ngx_teleclinic_appt_lookup(ngx_teleclinic_zone_t *zone,
    uint64_t id);
ngx_teleclinic_appt_t *ngx_teleclinic_slot_lookup(ngx_teleclinic_zone_t *zone,
    ngx_str_t *doctor, time_t start);
ngx_teleclinic_appt_t *ngx_teleclinic_slot_first(ngx_teleclinic_zone_t *zone,
    ngx_str_t *doctor, time_t from);
ngx_teleclinic_appt_t *ngx_teleclinic_slot_next(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_appt_t *appt);
ngx_int_t ngx_teleclinic_appt_new_id(ngx_teleclinic_zone_t *zone,
    uint64_t *id);

ngx_teleclinic_msg_t *ngx_teleclinic_outbox_first(ngx_teleclinic_zone_t *zone);
ngx_teleclinic_msg_t *ngx_teleclinic_outbox_next(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_msg_t *msg);
ngx_teleclinic_msg_t *ngx_teleclinic_msg_lookup(ngx_teleclinic_zone_t *zone,
    ngx_uint_t id);
void ngx_teleclinic_outbox_retry(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_msg_t *msg, time_t next);

/*
 * With the zone locked, from an event's apply: a message of the kind for
 * the appointment, if its destination is configured.  NGX_DECLINED when
 * the zone is full.
 */
ngx_int_t ngx_teleclinic_outbox_add(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev, ngx_uint_t kind, time_t due);

/* with the zone locked: a message for the EMR about the appointment waits */
ngx_uint_t ngx_teleclinic_outbox_emr_pending(ngx_teleclinic_zone_t *zone,
    uint64_t appt);

extern ngx_str_t  ngx_teleclinic_status_names[];
extern ngx_str_t  ngx_teleclinic_msg_kinds[];


#endif /* _NGX_TELECLINIC_ZONE_H_INCLUDED_ */
