
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_TURN_H_INCLUDED_
#define _NGX_TELECLINIC_TURN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * What the TURN relay keeps in the "teleclinic_turn" shared zone, the
 * part of it that both halves of the module see: the counters (bumped by
 * the stream side, shown by the http side's teleclinic_metrics), the
 * quotas' counts of allocations, the EVEN-PORT reservations, and the
 * pids of the workers that a reload hands allocations to.  Nothing here
 * knows of stream sessions or HTTP requests; the relay itself is in
 * src/stream/.
 */


/*
 * EVEN-PORT with R: the next port is kept for a RESERVATION-TOKEN, which
 * may come to another worker, so the reservation is in the zone
 */
#define NGX_TELECLINIC_TURN_TOKEN_LEN        8

/* the worker numbers whose pids the zone keeps for the reload handoff */
#define NGX_TELECLINIC_TURN_WORKERS          64


/* the zone's counters */
enum {
    NGX_TELECLINIC_TURN_ALLOCATIONS_TOTAL = 0,
    NGX_TELECLINIC_TURN_PACKETS_TO_PEER,
    NGX_TELECLINIC_TURN_BYTES_TO_PEER,
    NGX_TELECLINIC_TURN_PACKETS_TO_CLIENT,
    NGX_TELECLINIC_TURN_BYTES_TO_CLIENT,
    NGX_TELECLINIC_TURN_REFUSALS
};

/* refusals, by reason; their names are in ngx_teleclinic_turn_reasons */
enum {
    NGX_TELECLINIC_TURN_R_UNAUTHENTICATED = 0,
    NGX_TELECLINIC_TURN_R_AUTH,
    NGX_TELECLINIC_TURN_R_STALE_NONCE,
    NGX_TELECLINIC_TURN_R_BAD_REQUEST,
    NGX_TELECLINIC_TURN_R_UNKNOWN_ATTRIBUTE,
    NGX_TELECLINIC_TURN_R_MISMATCH,
    NGX_TELECLINIC_TURN_R_WRONG_CREDENTIALS,
    NGX_TELECLINIC_TURN_R_UNSUPPORTED,
    NGX_TELECLINIC_TURN_R_PEER_DENIED,
    NGX_TELECLINIC_TURN_R_QUOTA,
    NGX_TELECLINIC_TURN_R_CAPACITY,
    NGX_TELECLINIC_TURN_R_BANDWIDTH,
    NGX_TELECLINIC_TURN_R_NO_PERMISSION,
    NGX_TELECLINIC_TURN_R_TOO_LARGE,
    NGX_TELECLINIC_TURN_R_CONGESTION,
    NGX_TELECLINIC_TURN_NREASONS
};

#define NGX_TELECLINIC_TURN_NCOUNTERS                                         \
    (NGX_TELECLINIC_TURN_REFUSALS + NGX_TELECLINIC_TURN_NREASONS)


/*
 * This worker's counts, added to the zone's every second: the relay's
 * hot path counts in its own memory, without atomics.
 */
extern ngx_atomic_uint_t  ngx_teleclinic_turn_local[];

#define ngx_teleclinic_turn_count(i, n)  ngx_teleclinic_turn_local[i] += (n)

#define ngx_teleclinic_turn_refuse(r)                                         \
    ngx_teleclinic_turn_local[NGX_TELECLINIC_TURN_REFUSALS + (r)]++


/* the zone of counters and per-username allocation counts */
ngx_shm_zone_t *ngx_teleclinic_turn_add_zone(ngx_conf_t *cf);

/*
 * A worker finds the zone of its cycle: NGX_OK, or NGX_DECLINED when no
 * stream server has teleclinic_turn.
 */
ngx_int_t ngx_teleclinic_turn_init_worker(ngx_cycle_t *cycle);

/* the zone that ngx_teleclinic_turn_init_worker() found, or NULL */
ngx_shm_zone_t *ngx_teleclinic_turn_worker_zone(void);

/* adds this worker's counts to the zone's */
void ngx_teleclinic_turn_flush(void);

/* counts a request refused before it reached the relay (400, 420) */
void ngx_teleclinic_turn_count_refusal(ngx_uint_t code);

/*
 * Prometheus text exposition of the TURN counters, written at p up to
 * last; returns the new end.  Writes nothing when no stream server has
 * teleclinic_turn.
 */
u_char *ngx_teleclinic_turn_metrics(ngx_cycle_t *cycle, u_char *p,
    u_char *last);

/*
 * The reload handoff's registry: this worker's pid under its number,
 * returning the pid that was there (the old worker of a reload, 0 for
 * none); the pid under a number now; and whether a configuration newer
 * than this worker's has been loaded since it started (a reload, not a
 * stop, tells it to quit).
 */
ngx_pid_t ngx_teleclinic_turn_register(ngx_uint_t worker, ngx_pid_t pid);
ngx_pid_t ngx_teleclinic_turn_worker_pid(ngx_uint_t worker);
ngx_uint_t ngx_teleclinic_turn_reloaded(void);

/*
 * EVEN-PORT with R: keeps port for a new random token written at token
 * (NGX_OK), NGX_ERROR when all reservations are taken; and the port
 * that a token kept, 0 for a token unknown or expired, used once.
 */
ngx_int_t ngx_teleclinic_turn_reserve(ngx_shm_zone_t *shm_zone,
    u_char *token, ngx_uint_t port);
ngx_uint_t ngx_teleclinic_turn_reservation(ngx_shm_zone_t *shm_zone,
    u_char *token);

/*
 * The quotas: counts an allocation for username, 0 when it fits, the
 * STUN error code when it does not (486 over user_quota, 508 over
 * total_quota or in a full zone); *user_counted tells the release that
 * the username was counted.  A quota of 0 is none.
 */
ngx_uint_t ngx_teleclinic_turn_quota_take(ngx_shm_zone_t *shm_zone,
    ngx_str_t *username, ngx_uint_t user_quota, ngx_uint_t total_quota,
    ngx_uint_t *user_counted, ngx_log_t *log);
void ngx_teleclinic_turn_quota_release(ngx_shm_zone_t *shm_zone,
    ngx_str_t *username, ngx_uint_t user_counted);


#endif /* _NGX_TELECLINIC_TURN_H_INCLUDED_ */
