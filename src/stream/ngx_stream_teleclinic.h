
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_STREAM_TELECLINIC_H_INCLUDED_
#define _NGX_STREAM_TELECLINIC_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_teleclinic_stun.h"
#include "ngx_teleclinic_turn.h"


/*
 * The TURN relay (RFC 8656) of a "teleclinic_turn" stream server, as the
 * stream side's files share it.  From the bottom up, each file calls only
 * those below it and the shared src/ files (the codec, the zone):
 *
 *   ngx_stream_teleclinic_perm.c     the peer policy, permissions,
 *                                    channels, the bandwidth bucket
 *   ngx_stream_teleclinic_relay.c    relay sockets: bind, the peers'
 *                                    datagrams to the client, the
 *                                    TCP/TLS output buffer
 *   ngx_stream_teleclinic_handoff.c  the reload handoff of UDP
 *                                    allocations, the worker's timers
 *   ngx_stream_teleclinic_turn.c     requests and the allocations' life,
 *                                    the client's data to peers
 *   ngx_stream_teleclinic_module.c   directives, framing, handlers
 *
 * Each allocation belongs to the worker that holds its client's
 * session, and its relay socket is a connection of that worker's event
 * loop.
 */


#define NGX_STREAM_TELECLINIC_SOFTWARE       "ngx_teleclinic"

/* per allocation; a browser uses a few of each */
#define NGX_STREAM_TELECLINIC_PERMISSIONS    32
#define NGX_STREAM_TELECLINIC_CHANNELS       32


typedef struct ngx_stream_teleclinic_alloc_s  ngx_stream_teleclinic_alloc_t;


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
     * of ngx_stream_teleclinic_srv_conf_t *: every server with
     * teleclinic_turn, whose relay addresses and ports a peer is checked
     * against
     */
    ngx_array_t                    *servers;
} ngx_stream_teleclinic_srv_conf_t;


/* a client's session, over any transport */

typedef struct {
    ngx_connection_t                  *connection;
    ngx_stream_teleclinic_srv_conf_t  *conf;
    ngx_stream_teleclinic_alloc_t     *alloc;

    /* TCP and TLS: what waits to be sent to the client, answers and data */
    ngx_buf_t                         *out;

    unsigned                           stream:1;
} ngx_stream_teleclinic_session_t;


typedef struct {
    ngx_sockaddr_t                  sockaddr;
    socklen_t                       socklen;
    ngx_msec_t                      expires;
} ngx_stream_teleclinic_perm_t;


typedef struct {
    ngx_uint_t                      number;
    ngx_sockaddr_t                  sockaddr;
    socklen_t                       socklen;
    ngx_msec_t                      expires;
} ngx_stream_teleclinic_channel_t;


struct ngx_stream_teleclinic_alloc_s {
    ngx_pool_t                        *pool;
    ngx_stream_teleclinic_session_t   *session;
    ngx_stream_teleclinic_srv_conf_t  *conf;
    ngx_connection_t                  *relay;

    /*
     * reload: an allocation without a session, on its way to the new
     * worker or adopted from the old one, is in a queue and keeps the
     * addresses of its client's 5-tuple
     */
    ngx_queue_t                        queue;
    ngx_sockaddr_t                     client;
    socklen_t                          client_len;
    ngx_sockaddr_t                     local;
    socklen_t                          local_len;
    ngx_sockaddr_t                     listen;
    socklen_t                          listen_len;
    ngx_socket_t                       listen_fd;     /* -1: unknown */

    /* a UDP allocation with a session, in the worker's list of them */
    ngx_queue_t                        active;

    /* the address in XOR-RELAYED-ADDRESS */
    ngx_sockaddr_t                     relayed;
    socklen_t                          relayed_len;

    ngx_str_t                          username;
    u_char                             tid[NGX_TELECLINIC_STUN_TID_LEN];
    u_char                             token[NGX_TELECLINIC_TURN_TOKEN_LEN];

    ngx_msec_t                         expires;

    /* the token bucket of teleclinic_turn_bandwidth, in bytes */
    ngx_msec_t                         bw_last;
    size_t                             bw_tokens;

    ngx_uint_t                         nperms;
    ngx_uint_t                         nchannels;
    ngx_stream_teleclinic_perm_t       perms[
                                           NGX_STREAM_TELECLINIC_PERMISSIONS];
    ngx_stream_teleclinic_channel_t    channels[
                                           NGX_STREAM_TELECLINIC_CHANNELS];

    unsigned                           user_counted:1;
    unsigned                           has_token:1;
    unsigned                           in_active:1;

    /*
     * handed over early, while this worker still reads the client:
     * the relay socket only sends, requests wait for the new worker
     */
    unsigned                           handed:1;
};




/*
 * The configuration of the server that a UDP listening socket and a
 * local address lead to, NULL if none has teleclinic_turn: an
 * allocation adopted from the old worker of a reload needs it.  The
 * module installs it; the handoff calls it.
 */
typedef ngx_stream_teleclinic_srv_conf_t *(
    *ngx_stream_teleclinic_find_conf_pt)(ngx_listening_t *ls,
    struct sockaddr *local);


/* ngx_stream_teleclinic_perm.c */

/*
 * 0 when the relay may reach the peer, or the STUN error code that
 * refuses it, with the reason for the counters
 */
ngx_uint_t ngx_stream_teleclinic_peer_check(
    ngx_stream_teleclinic_session_t *ts,
    ngx_teleclinic_stun_addr_t *peer, ngx_uint_t *reason);

/* NGX_OK, NGX_DECLINED when the allocation has no room for another */
ngx_int_t ngx_stream_teleclinic_perm_add(ngx_stream_teleclinic_alloc_t *a,
    struct sockaddr *sa, socklen_t socklen, ngx_msec_t now);

/* 1 when len bytes fit the allocation's bandwidth, counted as sent */
ngx_uint_t ngx_stream_teleclinic_bandwidth(ngx_stream_teleclinic_alloc_t *a,
    size_t len, ngx_msec_t now);

/*
 * A peer's permission (by IP address alone, RFC 8656 9) and channel,
 * NULL when it has none in time; inline: the relay looks them up for
 * every datagram.
 */

static ngx_inline ngx_stream_teleclinic_perm_t *
ngx_stream_teleclinic_perm_find(ngx_stream_teleclinic_alloc_t *a,
    struct sockaddr *sa, socklen_t socklen, ngx_msec_t now)
{
    ngx_uint_t  i;

    for (i = 0; i < a->nperms; i++) {
        if (a->perms[i].expires > now
            && ngx_cmp_sockaddr(&a->perms[i].sockaddr.sockaddr,
                                a->perms[i].socklen, sa, socklen, 0)
               == NGX_OK)
        {
            return &a->perms[i];
        }
    }

    return NULL;
}


static ngx_inline ngx_stream_teleclinic_channel_t *
ngx_stream_teleclinic_channel_find(ngx_stream_teleclinic_alloc_t *a,
    struct sockaddr *sa, socklen_t socklen, ngx_msec_t now)
{
    ngx_uint_t  i;

    for (i = 0; i < a->nchannels; i++) {
        if (a->channels[i].expires > now
            && ngx_cmp_sockaddr(&a->channels[i].sockaddr.sockaddr,
                                a->channels[i].socklen, sa, socklen, 1)
               == NGX_OK)
        {
            return &a->channels[i];
        }
    }

    return NULL;
}


/* ngx_stream_teleclinic_relay.c */

void ngx_stream_teleclinic_relay_init_worker(void);

/*
 * Binds the allocation's relay socket: a random port of the range, or
 * the port "want" that a RESERVATION-TOKEN kept, and adds it to the
 * event loop; NGX_ERROR when none could be had.
 */
ngx_int_t ngx_stream_teleclinic_relay_open(
    ngx_stream_teleclinic_session_t *ts,
    ngx_stream_teleclinic_alloc_t *a, ngx_teleclinic_stun_msg_t *msg,
    ngx_uint_t want);

/* the relay socket's read handler: datagrams from peers */
void ngx_stream_teleclinic_relay_handler(ngx_event_t *rev);

/*
 * TCP and TLS: sends what ts->out holds; NGX_OK when all is sent,
 * NGX_AGAIN when the rest waits for the socket, NGX_ERROR.
 */
ngx_int_t ngx_stream_teleclinic_relay_write(
    ngx_stream_teleclinic_session_t *ts);


/* ngx_stream_teleclinic_handoff.c */

/*
 * A worker's periodic flush of its counters into the zone, and its
 * socket for the UDP allocations that a reload hands to the new worker.
 */
ngx_int_t ngx_stream_teleclinic_handoff_init_worker(ngx_cycle_t *cycle,
    ngx_stream_teleclinic_find_conf_pt find_conf);
void ngx_stream_teleclinic_handoff_exit_worker(ngx_cycle_t *cycle);

/* a UDP allocation with a session joins and leaves the worker's list */
void ngx_stream_teleclinic_handoff_track(ngx_stream_teleclinic_alloc_t *a);
void ngx_stream_teleclinic_handoff_untrack(ngx_stream_teleclinic_alloc_t *a);

/*
 * A worker that quits on a reload: the allocation stops relaying and
 * waits for the new worker (NGX_OK), or NGX_DECLINED when it cannot go.
 */
ngx_int_t ngx_stream_teleclinic_handoff_leave(
    ngx_stream_teleclinic_session_t *ts,
    ngx_stream_teleclinic_alloc_t *a);

/*
 * UDP: gives a session without an allocation the one that the old
 * worker of a reload handed over for its client's 5-tuple, if any.
 */
void ngx_stream_teleclinic_handoff_claim(
    ngx_stream_teleclinic_session_t *ts);


/* ngx_stream_teleclinic_turn.c */

/*
 * Answers an Allocate, Refresh, CreatePermission or ChannelBind request
 * into b: NGX_OK with an answer, NGX_ERROR when none could be built,
 * NGX_DECLINED when the request waits for the new worker of a reload.
 */
ngx_int_t ngx_stream_teleclinic_turn_request(
    ngx_stream_teleclinic_session_t *ts, ngx_teleclinic_stun_msg_t *msg,
    ngx_buf_t *b);

/* a Send indication and a ChannelData message from the client */
void ngx_stream_teleclinic_turn_send_indication(
    ngx_stream_teleclinic_session_t *ts, ngx_teleclinic_stun_msg_t *msg);
void ngx_stream_teleclinic_turn_channel_data(
    ngx_stream_teleclinic_session_t *ts, u_char *p, size_t len);

/*
 * The milliseconds until the session's allocation expires, 0 when it
 * has none; an allocation found expired is deleted first.
 */
ngx_msec_t ngx_stream_teleclinic_turn_expires(
    ngx_stream_teleclinic_session_t *ts);

/* deletes the session's allocation, if any */
void ngx_stream_teleclinic_turn_free(ngx_stream_teleclinic_session_t *ts);


#endif /* _NGX_STREAM_TELECLINIC_H_INCLUDED_ */
