
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_ROOM_H_INCLUDED_
#define _NGX_TELECLINIC_ROOM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_teleclinic.h"
#include "ngx_teleclinic_zone.h"
#include "ngx_teleclinic_bus.h"


/*
 * The waiting rooms: one per doctor, in the zone.  A room holds the
 * doctor's queue of checked-in patients, the doctor's console connection
 * and the one call the doctor is in or ringing.  Connections are named
 * by their worker's pid and a serial number that worker gave them.
 */

/* a patient in the queue */
#define NGX_TELECLINIC_WAITING       0
#define NGX_TELECLINIC_RINGING       1
#define NGX_TELECLINIC_IN_CALL       2

/* why a call failed, for the metrics */
#define NGX_TELECLINIC_FAIL_DECLINED   0
#define NGX_TELECLINIC_FAIL_TIMEOUT    1
#define NGX_TELECLINIC_FAIL_CANCELLED  2
#define NGX_TELECLINIC_FAIL_DROPPED    3
#define NGX_TELECLINIC_FAIL_MEDIA      4
#define NGX_TELECLINIC_NFAIL           5

#define NGX_TELECLINIC_HISTOGRAM     10


typedef struct {
    ngx_pid_t                     pid;        /* 0: not connected */
    ngx_uint_t                    serial;
    time_t                        left;       /* when it dropped */
} ngx_teleclinic_peer_t;


typedef struct ngx_teleclinic_room_s  ngx_teleclinic_room_t;

typedef struct {
    ngx_rbtree_node_t             node;      /* key: appointment id */
    ngx_queue_t                   queue;     /* the room's, in order */
    ngx_teleclinic_room_t        *room;
    uint64_t                      appt;
    time_t                        start;
    time_t                        arrived;
    ngx_uint_t                    back;      /* 0, or when sent back, ms */
    ngx_uint_t                    arrival;   /* order of check-in */
    ngx_uint_t                    state;
    ngx_teleclinic_peer_t         peer;

    /* what the patient's worker last told them */
    ngx_uint_t                    told_position;  /* 0: nothing yet */
    ngx_uint_t                    told_wait;
    ngx_uint_t                    told_busy;
} ngx_teleclinic_wait_t;


struct ngx_teleclinic_room_s {
    ngx_rbtree_node_t             node;      /* key: hash of the doctor */
    size_t                        doctor_len;
    u_char                        doctor[NGX_TELECLINIC_ID_MAX];
    ngx_queue_t                   queue;
    ngx_uint_t                    nwaiting;  /* not in the call */
    ngx_uint_t                    backs;     /* the last one sent back */
    ngx_uint_t                    average;   /* seconds; 0: no visit yet */
    ngx_uint_t                    visits;
    ngx_teleclinic_peer_t         console;

    /* the call */
    uint64_t                      call;      /* 0: none */
    ngx_teleclinic_wait_t        *callee;
    time_t                        rung;
    time_t                        deadline;  /* of the ring */
    time_t                        answered;  /* 0 while it rings */
    unsigned                      media:1;

    /* the doctor's snapshot request the patient has not answered yet */
    ngx_uint_t                    request;
    uint64_t                      request_call;
    time_t                        asked;
};


/* for Prometheus; counters since the zone was made */
typedef struct {
    ngx_uint_t                    started;
    ngx_uint_t                    answered;
    ngx_uint_t                    connected;
    ngx_uint_t                    failed[NGX_TELECLINIC_NFAIL];
    ngx_uint_t                    visit[NGX_TELECLINIC_HISTOGRAM];
    ngx_uint_t                    visit_sum;
    ngx_uint_t                    visit_count;
    ngx_uint_t                    wait[NGX_TELECLINIC_HISTOGRAM];
    ngx_uint_t                    wait_sum;
    ngx_uint_t                    wait_count;
    ngx_atomic_t                  sockets[3];  /* by role */
} ngx_teleclinic_metrics_t;


/* in the zone, made by ngx_teleclinic_room_init_zone() */
struct ngx_teleclinic_rooms_s {
    ngx_rbtree_t                  rooms;
    ngx_rbtree_node_t             rooms_sentinel;
    ngx_rbtree_t                  waits;
    ngx_rbtree_node_t             waits_sentinel;
    ngx_uint_t                    arrivals;
    ngx_teleclinic_metrics_t      metrics;
};


/* the settings a room works by, from the http{} level */
typedef struct {
    time_t                        checkin_open;
    time_t                        grace;
    time_t                        ring_timeout;
    ngx_array_t                  *ice_servers;   /* of ngx_str_t */
    ngx_str_t                     turn_secret;
    ngx_str_t                     turn_secret_file;
    time_t                        turn_ttl;
} ngx_teleclinic_room_conf_t;


/*
 * Why an operation was refused; the http side names them on the wire
 * (docs/protocol.md's error codes).
 */
typedef enum {
    NGX_TELECLINIC_ROOM_NONE = 0,
    NGX_TELECLINIC_ROOM_BUSY,
    NGX_TELECLINIC_ROOM_NOT_CONNECTED,
    NGX_TELECLINIC_ROOM_NOT_IN_CALL,
    NGX_TELECLINIC_ROOM_NOT_IN_QUEUE,
    NGX_TELECLINIC_ROOM_QUEUE_EMPTY,
    NGX_TELECLINIC_ROOM_TOO_EARLY,
    NGX_TELECLINIC_ROOM_UNAUTHORIZED,
    NGX_TELECLINIC_ROOM_VISIT_OVER,
    NGX_TELECLINIC_ROOM_ZONE_FULL,
    NGX_TELECLINIC_ROOM_UNKNOWN_REQUEST
} ngx_teleclinic_room_error_e;


/* who asks: a connection of this worker; the results come back here */
typedef struct {
    ngx_teleclinic_zone_t        *zone;
    ngx_teleclinic_room_conf_t   *conf;
    ngx_log_t                    *log;
    ngx_uint_t                    serial;
    time_t                        now;
    ngx_uint_t                    slot_seconds;  /* the doctor's slots */
    ngx_str_t                     doctor;        /* in doctor_buf */
    u_char                        doctor_buf[NGX_TELECLINIC_ID_MAX];
    uint64_t                      appt;          /* a patient's */
    uint32_t                      version;       /* named by their token */

    time_t                        start;         /* of the appointment */
    ngx_uint_t                    status;
    time_t                        opens_at;      /* too_early */
    ngx_uint_t                    average;
    ngx_uint_t                    committed;     /* the journal grew */
    time_t                        timer;         /* sweep then, or 0 */
    ngx_teleclinic_room_error_e   error;         /* of a refusal */
} ngx_teleclinic_actor_t;


/*
 * The operations.  Each locks the zone, changes the room, posts what the
 * connections concerned must be told, unlocks and rings the doorbells.
 * They return NGX_OK; NGX_DECLINED when refused, NGX_ERROR when the zone
 * is full, with a->error saying why.
 */
ngx_int_t ngx_teleclinic_room_checkin(ngx_teleclinic_actor_t *a);
ngx_int_t ngx_teleclinic_room_console(ngx_teleclinic_actor_t *a);
ngx_int_t ngx_teleclinic_room_leave(ngx_teleclinic_actor_t *a);
void ngx_teleclinic_room_dropped(ngx_teleclinic_actor_t *a,
    ngx_uint_t doctor);
ngx_int_t ngx_teleclinic_room_call(ngx_teleclinic_actor_t *a,
    uint64_t appt);
ngx_int_t ngx_teleclinic_room_skip(ngx_teleclinic_actor_t *a,
    uint64_t appt);
ngx_int_t ngx_teleclinic_room_noshow(ngx_teleclinic_actor_t *a,
    uint64_t appt);
ngx_int_t ngx_teleclinic_room_answer(ngx_teleclinic_actor_t *a,
    uint64_t call, ngx_uint_t accept);
ngx_int_t ngx_teleclinic_room_signal(ngx_teleclinic_actor_t *a,
    ngx_uint_t doctor, uint64_t call, u_char *text, size_t len);
ngx_int_t ngx_teleclinic_room_media(ngx_teleclinic_actor_t *a,
    ngx_uint_t doctor, uint64_t call, ngx_uint_t state);
ngx_int_t ngx_teleclinic_room_hangup(ngx_teleclinic_actor_t *a,
    ngx_uint_t doctor, uint64_t call);

/*
 * A snapshot's consent: the doctor asks (the patient is sent a request
 * id; a new request replaces one not answered), the patient answers that
 * request, and the answer is journaled (NGX_TELECLINIC_EV_CONSENT) before
 * the doctor is told.
 */
ngx_int_t ngx_teleclinic_room_snapshot_request(ngx_teleclinic_actor_t *a,
    uint64_t call);
ngx_int_t ngx_teleclinic_room_snapshot_consent(ngx_teleclinic_actor_t *a,
    uint64_t call, ngx_uint_t request, ngx_uint_t granted);

/* timers of this worker: a ring's timeout, a grace period's end */
void ngx_teleclinic_room_sweep(ngx_teleclinic_actor_t *a);

/*
 * At midnight: what nobody came to on past days is a no-show; a->timer
 * is set to the next midnight.
 */
void ngx_teleclinic_room_day_end(ngx_teleclinic_actor_t *a);

/*
 * A room's queue changed: the texts for this worker's connections in it
 * (a patient's "queue" when their figures changed, the doctor's "queue"),
 * handed to send() one by one after the zone is unlocked.  Before each,
 * ahead() is told the serials of the next NGX_TELECLINIC_AHEAD ones and
 * how far off each is, so that their connections are fetched into the
 * caches while the socket takes this one; ahead may be NULL.
 */
#define NGX_TELECLINIC_AHEAD  5

typedef void (*ngx_teleclinic_room_send_pt)(ngx_uint_t serial, u_char *text,
    size_t len);
typedef void (*ngx_teleclinic_room_ahead_pt)(ngx_uint_t serial,
    ngx_uint_t distance);

void ngx_teleclinic_room_update(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_room_send_pt send, ngx_teleclinic_room_ahead_pt ahead);

/* a new zone: the rooms' state, with the zone locked or not yet shared */
ngx_int_t ngx_teleclinic_room_init_zone(ngx_teleclinic_zone_t *zone);

/*
 * The zone's handlers, with the zone locked, from the journal's events
 * and from the bus.  A visit moves the doctor's average, and the metrics
 * when "metrics" is set (not in a replay); a "room" record sets the
 * average, and compaction writes one for each doctor with visits.
 */
ngx_int_t ngx_teleclinic_room_snapshot_locked(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_snapshot_pt write, void *data);
void ngx_teleclinic_room_visit_locked(ngx_teleclinic_zone_t *zone,
    u_char *doctor, size_t len, time_t duration, ngx_uint_t metrics);
ngx_int_t ngx_teleclinic_room_average_locked(ngx_teleclinic_zone_t *zone,
    u_char *doctor, size_t len, ngx_uint_t visits, ngx_uint_t average);
void ngx_teleclinic_room_release_locked(ngx_teleclinic_zone_t *zone,
    ngx_uint_t (*here)(u_char *doctor, size_t len));
void ngx_teleclinic_room_worker_gone_locked(ngx_teleclinic_zone_t *zone,
    ngx_pid_t pid);

/* the TURN credentials of a call participant */
ngx_int_t ngx_teleclinic_turn_credentials(ngx_str_t *secret,
    time_t expires, uint64_t call, const char *role, ngx_str_t *username,
    ngx_str_t *password, ngx_pool_t *pool);


#endif /* _NGX_TELECLINIC_ROOM_H_INCLUDED_ */
