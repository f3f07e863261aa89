
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_TURN_H_INCLUDED_
#define _NGX_TELECLINIC_TURN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_teleclinic_stun.h"


/*
 * The TURN relay (RFC 8656) of a "teleclinic_turn" stream server:
 * allocations with their UDP relay sockets, permissions and channels,
 * REST-style long-term credentials, the peer policy, the quotas and the
 * counters.  The stream module frames the client's messages (UDP, TCP,
 * TLS) and hands them here; each allocation belongs to the worker that
 * holds its client's session, and its relay socket is a connection of
 * that worker's event loop.
 */


typedef struct ngx_teleclinic_turn_alloc_s  ngx_teleclinic_turn_alloc_t;


typedef struct {
    ngx_flag_t                      enable;        /* teleclinic_turn */

    ngx_str_t                       secret;
    ngx_str_t                       realm;

    ngx_addr_t                     *relay_addr;    /* NULL: the client's */
    ngx_addr_t                     *public_addr;   /* NULL: relay_addr */

    ngx_uint_t                      port_min;
    ngx_uint_t                      port_max;

    ngx_array_t                    *allow_peers;   /* of ngx_cidr_t */

    ngx_uint_t                      user_quota;
    ngx_uint_t                      total_quota;
    size_t                          bandwidth;     /* bytes per second */

    time_t                          max_lifetime;
    time_t                          nonce_lifetime;

    ngx_shm_zone_t                 *zone;
    u_char                         *nonce_key;

    /*
     * of ngx_teleclinic_turn_conf_t *: every server with teleclinic_turn,
     * whose relay addresses and ports a peer is checked against
     */
    ngx_array_t                    *servers;
} ngx_teleclinic_turn_conf_t;


/* a client's session, over any transport */

typedef struct {
    ngx_connection_t               *connection;
    ngx_teleclinic_turn_conf_t     *conf;
    ngx_teleclinic_turn_alloc_t    *alloc;

    /* TCP and TLS: what waits to be sent to the client, answers and data */
    ngx_buf_t                      *out;

    unsigned                        stream:1;
} ngx_teleclinic_turn_session_t;


/* the zone of counters and per-username allocation counts */
ngx_shm_zone_t *ngx_teleclinic_turn_add_zone(ngx_conf_t *cf);

/*
 * The configuration of the server that a UDP listening socket and a
 * local address lead to, NULL if none has teleclinic_turn: an
 * allocation adopted from the old worker of a reload needs it.
 */
typedef ngx_teleclinic_turn_conf_t *(*ngx_teleclinic_turn_find_conf_pt)(
    ngx_listening_t *ls, struct sockaddr *local);

/*
 * A worker's periodic flush of its counters into the zone, and its
 * socket for the UDP allocations that a reload hands to the new worker.
 */
ngx_int_t ngx_teleclinic_turn_init_worker(ngx_cycle_t *cycle,
    ngx_teleclinic_turn_find_conf_pt find_conf);
void ngx_teleclinic_turn_exit_worker(ngx_cycle_t *cycle);

/*
 * UDP: gives a session without an allocation the one that the old
 * worker of a reload handed over for its client's 5-tuple, if any.
 */
void ngx_teleclinic_turn_claim(ngx_teleclinic_turn_session_t *ts);

/*
 * Answers an Allocate, Refresh, CreatePermission or ChannelBind request
 * into b: NGX_OK with an answer, NGX_ERROR when none could be built.
 */
ngx_int_t ngx_teleclinic_turn_request(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b);

/* a Send indication and a ChannelData message from the client */
void ngx_teleclinic_turn_send_indication(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg);
void ngx_teleclinic_turn_channel_data(ngx_teleclinic_turn_session_t *ts,
    u_char *p, size_t len);

/*
 * The milliseconds until the session's allocation expires, 0 when it
 * has none; an allocation found expired is deleted first.
 */
ngx_msec_t ngx_teleclinic_turn_expires(ngx_teleclinic_turn_session_t *ts);

/* deletes the session's allocation, if any */
void ngx_teleclinic_turn_free(ngx_teleclinic_turn_session_t *ts);

/*
 * TCP and TLS: sends what ts->out holds; NGX_OK when all is sent,
 * NGX_AGAIN when the rest waits for the socket, NGX_ERROR.
 */
ngx_int_t ngx_teleclinic_turn_write(ngx_teleclinic_turn_session_t *ts);

/* counts a request refused before it reached the relay (400, 420) */
void ngx_teleclinic_turn_count_refusal(ngx_uint_t code);

/*
 * Prometheus text exposition of the TURN counters, written at p up to
 * last; returns the new end.  Writes nothing when no stream server has
 * teleclinic_turn.
 */
u_char *ngx_teleclinic_turn_metrics(ngx_cycle_t *cycle, u_char *p,
    u_char *last);


#endif /* _NGX_TELECLINIC_TURN_H_INCLUDED_ */
