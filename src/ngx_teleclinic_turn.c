
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <poll.h>
#include <openssl/rand.h>
#include "ngx_teleclinic_turn.h"


#define NGX_TELECLINIC_TURN_SOFTWARE         "ngx_teleclinic"

/* RFC 8656: lifetimes in seconds */
#define NGX_TELECLINIC_TURN_LIFETIME         600
#define NGX_TELECLINIC_TURN_PERM_LIFETIME    300
#define NGX_TELECLINIC_TURN_CHANNEL_LIFETIME 600

/* per allocation; a browser uses a few of each */
#define NGX_TELECLINIC_TURN_PERMISSIONS      32
#define NGX_TELECLINIC_TURN_CHANNELS         32

/* random ports tried before a relay socket is given up */
#define NGX_TELECLINIC_TURN_BIND_TRIES       64

#define NGX_TELECLINIC_TURN_ZONE_SIZE        (1024 * 1024)

/*
 * EVEN-PORT with R: the next port is kept for a RESERVATION-TOKEN, which
 * may come to another worker, so the reservation is in the zone; the
 * port itself is left unbound (RFC 8656 14.9 lets it be taken by chance)
 */
#define NGX_TELECLINIC_TURN_RESERVATIONS     64
#define NGX_TELECLINIC_TURN_TOKEN_LEN        8
#define NGX_TELECLINIC_TURN_TOKEN_LIFETIME   30

/*
 * The relay socket is read in batches of datagrams (recvmmsg) into
 * slots that leave room before the data for the header that goes to
 * the client, and after it for the padding over TCP.  Media datagrams
 * are far smaller than a slot; a larger datagram is dropped and counted.
 */
#define NGX_TELECLINIC_TURN_BATCH            16
#define NGX_TELECLINIC_TURN_SLOT             4096
#define NGX_TELECLINIC_TURN_HEADROOM         64
#define NGX_TELECLINIC_TURN_DATA_MAX                                          \
    (NGX_TELECLINIC_TURN_SLOT - NGX_TELECLINIC_TURN_HEADROOM - 4)

/* full batches read at once before other connections get their turn */
#define NGX_TELECLINIC_TURN_ROUNDS           8

/* how often a worker adds its counters to the zone's */
#define NGX_TELECLINIC_TURN_FLUSH            1000

/*
 * Reload: a UDP allocation goes from the old worker to the new worker
 * of the same number, which reads the same reuseport socket; the new
 * worker may not be up yet when the old one is told to quit
 */
#define NGX_TELECLINIC_TURN_WORKERS          64
#define NGX_TELECLINIC_TURN_HANDOFF_RETRY    10
#define NGX_TELECLINIC_TURN_HANDOFF_TIME     2000
#define NGX_TELECLINIC_TURN_USERNAME_MAX     513

/* a new worker waits this long (ms) at most for the old one's answer */
#define NGX_TELECLINIC_TURN_WAIT             50
#define NGX_TELECLINIC_TURN_WAIT_ROUNDS      4096


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


typedef struct {
    ngx_sockaddr_t                  sockaddr;
    socklen_t                       socklen;
    ngx_msec_t                      expires;
} ngx_teleclinic_turn_perm_t;


typedef struct {
    ngx_uint_t                      number;
    ngx_sockaddr_t                  sockaddr;
    socklen_t                       socklen;
    ngx_msec_t                      expires;
} ngx_teleclinic_turn_channel_t;


struct ngx_teleclinic_turn_alloc_s {
    ngx_pool_t                     *pool;
    ngx_teleclinic_turn_session_t  *session;
    ngx_teleclinic_turn_conf_t     *conf;
    ngx_connection_t               *relay;

    /*
     * reload: an allocation without a session, on its way to the new
     * worker or adopted from the old one, is in a queue and keeps the
     * addresses of its client's 5-tuple
     */
    ngx_queue_t                     queue;
    ngx_sockaddr_t                  client;
    socklen_t                       client_len;
    ngx_sockaddr_t                  local;
    socklen_t                       local_len;
    ngx_sockaddr_t                  listen;
    socklen_t                       listen_len;
    ngx_socket_t                    listen_fd;     /* -1: unknown */

    /* a UDP allocation with a session, in the worker's list of them */
    ngx_queue_t                     active;

    /* the address in XOR-RELAYED-ADDRESS */
    ngx_sockaddr_t                  relayed;
    socklen_t                       relayed_len;

    ngx_str_t                       username;
    u_char                          tid[NGX_TELECLINIC_STUN_TID_LEN];
    u_char                          token[NGX_TELECLINIC_TURN_TOKEN_LEN];

    ngx_msec_t                      expires;

    /* the token bucket of teleclinic_turn_bandwidth, in bytes */
    ngx_msec_t                      bw_last;
    size_t                          bw_tokens;

    ngx_uint_t                      nperms;
    ngx_uint_t                      nchannels;
    ngx_teleclinic_turn_perm_t      perms[NGX_TELECLINIC_TURN_PERMISSIONS];
    ngx_teleclinic_turn_channel_t   channels[NGX_TELECLINIC_TURN_CHANNELS];

    unsigned                        user_counted:1;
    unsigned                        has_token:1;
    unsigned                        in_active:1;

    /*
     * handed over early, while this worker still reads the client:
     * the relay socket only sends, requests wait for the new worker
     */
    unsigned                        handed:1;
};


/* an allocation as it goes to the new worker, with its relay socket */

typedef struct {
    ngx_sockaddr_t                  client;
    ngx_sockaddr_t                  local;
    ngx_sockaddr_t                  listen;
    ngx_sockaddr_t                  relayed;
    socklen_t                       client_len;
    socklen_t                       local_len;
    socklen_t                       listen_len;
    socklen_t                       relayed_len;

    u_char                          tid[NGX_TELECLINIC_STUN_TID_LEN];
    u_char                          token[NGX_TELECLINIC_TURN_TOKEN_LEN];

    ngx_msec_t                      expires;
    ngx_msec_t                      bw_last;
    size_t                          bw_tokens;

    ngx_uint_t                      user_counted;
    ngx_uint_t                      has_token;

    ngx_uint_t                      nperms;
    ngx_uint_t                      nchannels;
    ngx_teleclinic_turn_perm_t      perms[NGX_TELECLINIC_TURN_PERMISSIONS];
    ngx_teleclinic_turn_channel_t   channels[NGX_TELECLINIC_TURN_CHANNELS];

    size_t                          username_len;
    u_char                          username[
                                        NGX_TELECLINIC_TURN_USERNAME_MAX];
} ngx_teleclinic_turn_handoff_t;


typedef struct {
    u_char                          token[NGX_TELECLINIC_TURN_TOKEN_LEN];
    ngx_uint_t                      port;
    time_t                          expires;
} ngx_teleclinic_turn_reservation_t;


typedef struct {
    ngx_rbtree_t                    rbtree;
    ngx_rbtree_node_t               sentinel;
    ngx_teleclinic_turn_reservation_t  reservations[
                                        NGX_TELECLINIC_TURN_RESERVATIONS];
    ngx_atomic_t                    allocations;
    ngx_atomic_t                    counters[NGX_TELECLINIC_TURN_NCOUNTERS];

    /* the pid of the newest worker of each number, ready for handoffs */
    ngx_atomic_t                    workers[NGX_TELECLINIC_TURN_WORKERS];

    /* configurations so far: a worker told to quit sees a reload by it */
    ngx_atomic_t                    generation;
} ngx_teleclinic_turn_shctx_t;


/* a username's allocations; it starts at the rbtree node's color */
typedef struct {
    u_char                          color;
    u_char                          pad;
    u_short                         len;
    ngx_uint_t                      count;
    u_char                          data[1];
} ngx_teleclinic_turn_user_t;


static ngx_int_t ngx_teleclinic_turn_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_shm_zone_t *ngx_teleclinic_turn_zone(ngx_cycle_t *cycle);
static void ngx_teleclinic_turn_flush_handler(ngx_event_t *ev);
static void ngx_teleclinic_turn_flush(void);
static ngx_int_t ngx_teleclinic_turn_answer(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b, ngx_uint_t code,
    ngx_uint_t reason, u_char *key);
static ngx_int_t ngx_teleclinic_turn_finish(ngx_teleclinic_stun_msg_t *msg,
    ngx_buf_t *b, u_char *key);
static ngx_int_t ngx_teleclinic_turn_allocate(
    ngx_teleclinic_turn_session_t *ts, ngx_teleclinic_stun_msg_t *msg,
    ngx_buf_t *b, u_char *key);
static ngx_int_t ngx_teleclinic_turn_allocate_answer(
    ngx_teleclinic_turn_session_t *ts, ngx_teleclinic_stun_msg_t *msg,
    ngx_buf_t *b, u_char *key);
static ngx_int_t ngx_teleclinic_turn_refresh(
    ngx_teleclinic_turn_session_t *ts, ngx_teleclinic_stun_msg_t *msg,
    ngx_buf_t *b, u_char *key);
static ngx_int_t ngx_teleclinic_turn_permission(
    ngx_teleclinic_turn_session_t *ts, ngx_teleclinic_stun_msg_t *msg,
    ngx_buf_t *b, u_char *key);
static ngx_int_t ngx_teleclinic_turn_channel_bind(
    ngx_teleclinic_turn_session_t *ts, ngx_teleclinic_stun_msg_t *msg,
    ngx_buf_t *b, u_char *key);
static ngx_uint_t ngx_teleclinic_turn_peer_code(
    ngx_teleclinic_turn_session_t *ts, ngx_teleclinic_stun_addr_t *peer,
    ngx_uint_t *reason);
static ngx_uint_t ngx_teleclinic_turn_peer_self(
    ngx_teleclinic_turn_session_t *ts, struct sockaddr *sa,
    socklen_t socklen);
static ngx_int_t ngx_teleclinic_turn_permit(ngx_teleclinic_turn_alloc_t *a,
    struct sockaddr *sa, socklen_t socklen, ngx_msec_t now);
static ngx_teleclinic_turn_perm_t *ngx_teleclinic_turn_find_perm(
    ngx_teleclinic_turn_alloc_t *a, struct sockaddr *sa, socklen_t socklen,
    ngx_msec_t now);
static ngx_teleclinic_turn_channel_t *ngx_teleclinic_turn_find_channel(
    ngx_teleclinic_turn_alloc_t *a, struct sockaddr *sa, socklen_t socklen,
    ngx_msec_t now);
static ngx_uint_t ngx_teleclinic_turn_bandwidth(
    ngx_teleclinic_turn_alloc_t *a, size_t len, ngx_msec_t now);
static time_t ngx_teleclinic_turn_lifetime(ngx_teleclinic_turn_conf_t *conf,
    ngx_teleclinic_stun_msg_t *msg);
static ngx_int_t ngx_teleclinic_turn_relay_open(
    ngx_teleclinic_turn_session_t *ts, ngx_teleclinic_turn_alloc_t *a,
    ngx_teleclinic_stun_msg_t *msg, ngx_uint_t want);
static ngx_uint_t ngx_teleclinic_turn_port_free(ngx_sockaddr_t *local,
    socklen_t socklen, ngx_uint_t port);
static ngx_int_t ngx_teleclinic_turn_reserve(ngx_teleclinic_turn_conf_t *conf,
    ngx_teleclinic_turn_alloc_t *a, ngx_uint_t port);
static ngx_uint_t ngx_teleclinic_turn_reservation(
    ngx_teleclinic_turn_conf_t *conf, u_char *token);
static void ngx_teleclinic_turn_relay_handler(ngx_event_t *rev);
static void ngx_teleclinic_turn_to_client(ngx_teleclinic_turn_session_t *ts,
    struct mmsghdr *out, ngx_uint_t n);
static ngx_uint_t ngx_teleclinic_turn_quota_take(
    ngx_teleclinic_turn_conf_t *conf, ngx_teleclinic_turn_alloc_t *a,
    ngx_log_t *log);
static void ngx_teleclinic_turn_quota_release(ngx_shm_zone_t *shm_zone,
    ngx_teleclinic_turn_alloc_t *a);
static ngx_teleclinic_turn_user_t *ngx_teleclinic_turn_user_lookup(
    ngx_teleclinic_turn_shctx_t *sh, ngx_str_t *name, uint32_t hash,
    ngx_rbtree_node_t **found);
static void ngx_teleclinic_turn_user_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_teleclinic_turn_inbox_open(ngx_cycle_t *cycle);
static ngx_int_t ngx_teleclinic_turn_leave(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_turn_alloc_t *a);
static void ngx_teleclinic_turn_handoff_handler(ngx_event_t *ev);
static ngx_int_t ngx_teleclinic_turn_handoff(ngx_teleclinic_turn_alloc_t *a,
    ngx_pid_t pid);
static void ngx_teleclinic_turn_inbox_handler(ngx_event_t *rev);
static void ngx_teleclinic_turn_adopt(ngx_teleclinic_turn_handoff_t *h,
    ngx_socket_t fd);
static void ngx_teleclinic_turn_orphan_free(ngx_teleclinic_turn_alloc_t *a);
static ngx_int_t ngx_teleclinic_turn_detach(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_turn_alloc_t *a);
static ngx_int_t ngx_teleclinic_turn_hand_early(ngx_pid_t pid);
static void ngx_teleclinic_turn_early_handler(ngx_event_t *ev);
static ngx_int_t ngx_teleclinic_turn_inbox_send(ngx_pid_t pid, void *data,
    size_t len);
static ngx_int_t ngx_teleclinic_turn_inbox_read(ngx_connection_t *c);
static void ngx_teleclinic_turn_to_orphan(ngx_teleclinic_turn_alloc_t *a,
    struct mmsghdr *out, ngx_uint_t n);


static ngx_str_t  ngx_teleclinic_turn_zone_name =
    ngx_string("teleclinic_turn");

/* tells the zone from others: its address is the zone's tag */
static ngx_uint_t  ngx_teleclinic_turn_zone_tag;

static ngx_str_t  ngx_teleclinic_turn_reasons[] = {
    ngx_string("unauthenticated"),
    ngx_string("auth"),
    ngx_string("stale_nonce"),
    ngx_string("bad_request"),
    ngx_string("unknown_attribute"),
    ngx_string("allocation_mismatch"),
    ngx_string("wrong_credentials"),
    ngx_string("unsupported"),
    ngx_string("peer_denied"),
    ngx_string("quota"),
    ngx_string("capacity"),
    ngx_string("bandwidth"),
    ngx_string("no_permission"),
    ngx_string("too_large"),
    ngx_string("congestion")
};


/* this worker's counts, added to the zone's every second */
static ngx_atomic_uint_t   ngx_teleclinic_turn_local[
                               NGX_TELECLINIC_TURN_NCOUNTERS];
static ngx_teleclinic_turn_shctx_t  *ngx_teleclinic_turn_sh;
static ngx_shm_zone_t     *ngx_teleclinic_turn_shm;
static ngx_event_t         ngx_teleclinic_turn_flush_event;

/*
 * reload: allocations on their way to the new worker, and those adopted
 * from the old one that no session has claimed yet; the inbox is the
 * worker's AF_UNIX socket for both ways
 */
static ngx_queue_t         ngx_teleclinic_turn_leaving;
static ngx_queue_t         ngx_teleclinic_turn_orphans;
static ngx_queue_t         ngx_teleclinic_turn_active;
static ngx_event_t         ngx_teleclinic_turn_handoff_event;
static ngx_connection_t   *ngx_teleclinic_turn_inbox;
static ngx_msec_t          ngx_teleclinic_turn_handoff_until;
static ngx_atomic_uint_t   ngx_teleclinic_turn_generation;
static ngx_event_t         ngx_teleclinic_turn_early_event;
static ngx_pid_t           ngx_teleclinic_turn_early_pid;
static ngx_uint_t          ngx_teleclinic_turn_early_tries;
static ngx_teleclinic_turn_find_conf_pt  ngx_teleclinic_turn_find_conf;
static ngx_teleclinic_turn_handoff_t     ngx_teleclinic_turn_msg;

/* the relay's batches: one worker, one handler at a time */
static struct mmsghdr      ngx_teleclinic_turn_in[NGX_TELECLINIC_TURN_BATCH];
static struct iovec        ngx_teleclinic_turn_in_iov[
                               NGX_TELECLINIC_TURN_BATCH];
static ngx_sockaddr_t      ngx_teleclinic_turn_in_addr[
                               NGX_TELECLINIC_TURN_BATCH];
static struct mmsghdr      ngx_teleclinic_turn_out[NGX_TELECLINIC_TURN_BATCH];
static struct iovec        ngx_teleclinic_turn_out_iov[
                               NGX_TELECLINIC_TURN_BATCH];
static size_t              ngx_teleclinic_turn_out_len[
                               NGX_TELECLINIC_TURN_BATCH];
static u_char              ngx_teleclinic_turn_slots[
                               NGX_TELECLINIC_TURN_BATCH]
                               [NGX_TELECLINIC_TURN_SLOT];

/* Data indications need a transaction id; it need not be secret */
static uint32_t            ngx_teleclinic_turn_tid[3];


#define ngx_teleclinic_turn_count(i, n)  ngx_teleclinic_turn_local[i] += (n)

#define ngx_teleclinic_turn_refuse(r)                                         \
    ngx_teleclinic_turn_local[NGX_TELECLINIC_TURN_REFUSALS + (r)]++

#define ngx_teleclinic_turn_set16(p, v)                                       \
    (p)[0] = (u_char) ((v) >> 8); (p)[1] = (u_char) (v)


/* zone and counters */

ngx_shm_zone_t *
ngx_teleclinic_turn_add_zone(ngx_conf_t *cf)
{
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, &ngx_teleclinic_turn_zone_name,
                                     NGX_TELECLINIC_TURN_ZONE_SIZE,
                                     &ngx_teleclinic_turn_zone_tag);
    if (shm_zone == NULL) {
        return NULL;
    }

    shm_zone->init = ngx_teleclinic_turn_init_zone;

    return shm_zone;
}


static ngx_int_t
ngx_teleclinic_turn_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t              *shpool;
    ngx_teleclinic_turn_shctx_t  *sh;

    /* a reload keeps the counts: the old workers' allocations go on */

    if (data) {
        shm_zone->data = data;
        ((ngx_teleclinic_turn_shctx_t *) data)->generation++;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    sh = ngx_slab_calloc(shpool, sizeof(ngx_teleclinic_turn_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel,
                    ngx_teleclinic_turn_user_insert);

    shpool->data = sh;
    shm_zone->data = sh;

    shpool->log_ctx = (u_char *) " in teleclinic_turn zone";
    shpool->log_nomem = 0;

    return NGX_OK;
}


static ngx_shm_zone_t *
ngx_teleclinic_turn_zone(ngx_cycle_t *cycle)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_shm_zone_t   *zone;

    part = &cycle->shared_memory.part;
    zone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            zone = part->elts;
            i = 0;
        }

        if (zone[i].tag == &ngx_teleclinic_turn_zone_tag) {
            return &zone[i];
        }
    }
}


ngx_int_t
ngx_teleclinic_turn_init_worker(ngx_cycle_t *cycle,
    ngx_teleclinic_turn_find_conf_pt find_conf)
{
    ngx_uint_t       i;
    ngx_pid_t        prev;
    ngx_event_t     *ev;
    ngx_shm_zone_t  *shm_zone;
    struct pollfd    pfd;

    ngx_queue_init(&ngx_teleclinic_turn_leaving);
    ngx_queue_init(&ngx_teleclinic_turn_orphans);
    ngx_queue_init(&ngx_teleclinic_turn_active);

    shm_zone = ngx_teleclinic_turn_zone(cycle);

    if (shm_zone == NULL) {
        return NGX_OK;
    }

    ngx_teleclinic_turn_shm = shm_zone;
    ngx_teleclinic_turn_sh = shm_zone->data;
    ngx_teleclinic_turn_find_conf = find_conf;
    ngx_teleclinic_turn_generation = ngx_teleclinic_turn_sh->generation;

    ngx_teleclinic_turn_tid[0] = (uint32_t) ngx_random();
    ngx_teleclinic_turn_tid[1] = (uint32_t) ngx_random();
    ngx_teleclinic_turn_tid[2] = (uint32_t) ngx_pid;

    ev = &ngx_teleclinic_turn_flush_event;

    ev->handler = ngx_teleclinic_turn_flush_handler;
    ev->log = cycle->log;
    ev->data = cycle;

    /* a worker that shuts down need not wait for it */
    ev->cancelable = 1;

    ngx_add_timer(ev, NGX_TELECLINIC_TURN_FLUSH);

    ev = &ngx_teleclinic_turn_early_event;

    ev->handler = ngx_teleclinic_turn_early_handler;
    ev->log = cycle->log;
    ev->data = cycle;
    ev->cancelable = 1;

    ev = &ngx_teleclinic_turn_handoff_event;

    ev->handler = ngx_teleclinic_turn_handoff_handler;
    ev->log = cycle->log;
    ev->data = cycle;

    /* without a socket, a reload ends the allocations, as it did before */

    if (ngx_teleclinic_turn_inbox_open(cycle) != NGX_OK) {
        return NGX_OK;
    }

    if (ngx_worker < NGX_TELECLINIC_TURN_WORKERS) {
        prev = (ngx_pid_t) ngx_teleclinic_turn_sh->workers[ngx_worker];
        ngx_teleclinic_turn_sh->workers[ngx_worker] =
                                               (ngx_atomic_uint_t) ngx_pid;

        /*
         * a reload: the old worker of this number hands its allocations
         * over now, not when it is told to quit (the master waits 100 ms
         * between the two, while both workers read the socket); one
         * byte says so
         */

        if (prev && prev != ngx_pid
            && ngx_teleclinic_turn_inbox_send(prev, "h", 1) == NGX_OK)
        {
            /*
             * this worker reads the clients only after it has their
             * allocations: a datagram read before would be dropped
             */

            pfd.fd = ngx_teleclinic_turn_inbox->fd;
            pfd.events = POLLIN;

            for (i = 0; i < NGX_TELECLINIC_TURN_WAIT_ROUNDS; i++) {
                pfd.revents = 0;

                if (poll(&pfd, 1, NGX_TELECLINIC_TURN_WAIT) <= 0
                    || ngx_teleclinic_turn_inbox_read(
                                               ngx_teleclinic_turn_inbox)
                       == NGX_DONE)
                {
                    break;
                }
            }
        }
    }

    return NGX_OK;
}


void
ngx_teleclinic_turn_exit_worker(ngx_cycle_t *cycle)
{
    ngx_queue_t                  *q;
    ngx_teleclinic_turn_alloc_t  *a;

    /* a stop, or the end of the handoff time: the allocations end */

    while (!ngx_queue_empty(&ngx_teleclinic_turn_leaving)) {
        q = ngx_queue_head(&ngx_teleclinic_turn_leaving);
        a = ngx_queue_data(q, ngx_teleclinic_turn_alloc_t, queue);
        ngx_teleclinic_turn_orphan_free(a);
    }

    while (!ngx_queue_empty(&ngx_teleclinic_turn_orphans)) {
        q = ngx_queue_head(&ngx_teleclinic_turn_orphans);
        a = ngx_queue_data(q, ngx_teleclinic_turn_alloc_t, queue);
        ngx_teleclinic_turn_orphan_free(a);
    }

    if (ngx_teleclinic_turn_inbox) {
        ngx_close_connection(ngx_teleclinic_turn_inbox);
        ngx_teleclinic_turn_inbox = NULL;
    }

    ngx_teleclinic_turn_flush();
}


static void
ngx_teleclinic_turn_flush_handler(ngx_event_t *ev)
{
    ngx_queue_t                  *q, *next;
    ngx_teleclinic_turn_alloc_t  *a;

    ngx_teleclinic_turn_flush();

    /* adopted allocations that no client came back for */

    for (q = ngx_queue_head(&ngx_teleclinic_turn_orphans);
         q != ngx_queue_sentinel(&ngx_teleclinic_turn_orphans);
         q = next)
    {
        next = ngx_queue_next(q);
        a = ngx_queue_data(q, ngx_teleclinic_turn_alloc_t, queue);

        if ((ngx_msec_int_t) (a->expires - ngx_current_msec) <= 0) {
            ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                          "turn: adopted allocation expired");
            ngx_teleclinic_turn_orphan_free(a);
        }
    }

    if (!ngx_exiting) {
        ngx_add_timer(ev, NGX_TELECLINIC_TURN_FLUSH);
    }
}


static void
ngx_teleclinic_turn_flush(void)
{
    ngx_uint_t  i;

    if (ngx_teleclinic_turn_sh == NULL) {
        return;
    }

    for (i = 0; i < NGX_TELECLINIC_TURN_NCOUNTERS; i++) {
        if (ngx_teleclinic_turn_local[i]) {
            (void) ngx_atomic_fetch_add(&ngx_teleclinic_turn_sh->counters[i],
                                        ngx_teleclinic_turn_local[i]);
            ngx_teleclinic_turn_local[i] = 0;
        }
    }
}


void
ngx_teleclinic_turn_count_refusal(ngx_uint_t code)
{
    ngx_teleclinic_turn_refuse(code == 420
                               ? NGX_TELECLINIC_TURN_R_UNKNOWN_ATTRIBUTE
                               : NGX_TELECLINIC_TURN_R_BAD_REQUEST);
}


u_char *
ngx_teleclinic_turn_metrics(ngx_cycle_t *cycle, u_char *p, u_char *last)
{
    ngx_uint_t                    i;
    ngx_shm_zone_t               *shm_zone;
    ngx_atomic_uint_t            *c;
    ngx_teleclinic_turn_shctx_t  *sh;

    shm_zone = ngx_teleclinic_turn_zone(cycle);

    if (shm_zone == NULL) {
        return p;
    }

    sh = shm_zone->data;

    /* what this worker counted since its last flush is shown too */
    ngx_teleclinic_turn_flush();

    c = (ngx_atomic_uint_t *) sh->counters;

    p = ngx_slprintf(p, last,
        "# HELP teleclinic_turn_allocations TURN allocations now.\n"
        "# TYPE teleclinic_turn_allocations gauge\n"
        "teleclinic_turn_allocations %uA\n"
        "# HELP teleclinic_turn_allocations_total TURN allocations made.\n"
        "# TYPE teleclinic_turn_allocations_total counter\n"
        "teleclinic_turn_allocations_total %uA\n"
        "# HELP teleclinic_turn_relayed_packets_total Datagrams relayed.\n"
        "# TYPE teleclinic_turn_relayed_packets_total counter\n"
        "teleclinic_turn_relayed_packets_total{direction=\"to_peer\"} %uA\n"
        "teleclinic_turn_relayed_packets_total{direction=\"to_client\"} %uA\n"
        "# HELP teleclinic_turn_relayed_bytes_total "
        "Application data bytes relayed.\n"
        "# TYPE teleclinic_turn_relayed_bytes_total counter\n"
        "teleclinic_turn_relayed_bytes_total{direction=\"to_peer\"} %uA\n"
        "teleclinic_turn_relayed_bytes_total{direction=\"to_client\"} %uA\n"
        "# HELP teleclinic_turn_refusals_total "
        "Requests refused and datagrams dropped, by reason.\n"
        "# TYPE teleclinic_turn_refusals_total counter\n",
        (ngx_atomic_uint_t) sh->allocations,
        c[NGX_TELECLINIC_TURN_ALLOCATIONS_TOTAL],
        c[NGX_TELECLINIC_TURN_PACKETS_TO_PEER],
        c[NGX_TELECLINIC_TURN_PACKETS_TO_CLIENT],
        c[NGX_TELECLINIC_TURN_BYTES_TO_PEER],
        c[NGX_TELECLINIC_TURN_BYTES_TO_CLIENT]);

    for (i = 0; i < NGX_TELECLINIC_TURN_NREASONS; i++) {
        p = ngx_slprintf(p, last,
                         "teleclinic_turn_refusals_total{reason=\"%V\"} %uA\n",
                         &ngx_teleclinic_turn_reasons[i],
                         c[NGX_TELECLINIC_TURN_REFUSALS + i]);
    }

    return p;
}


/* requests */

ngx_int_t
ngx_teleclinic_turn_request(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b)
{
    time_t                       expiry;
    ngx_int_t                    rc;
    ngx_connection_t            *c;
    ngx_teleclinic_turn_conf_t  *conf;
    u_char                       key[NGX_TELECLINIC_STUN_KEY_LEN];

    conf = ts->conf;
    c = ts->connection;

    /* handed over to the new worker: the retransmission will find it */

    if (ts->alloc && ts->alloc->handed) {
        return NGX_DECLINED;
    }

    if (conf->secret.len == 0) {

        /*
         * a server without a secret serves STUN only: it never
         * allocates, so there is nothing to refresh or bind on
         */

        if (msg->method == NGX_TELECLINIC_STUN_ALLOCATE) {
            return ngx_teleclinic_turn_answer(ts, msg, b, 400,
                                       NGX_TELECLINIC_TURN_R_BAD_REQUEST,
                                       NULL);
        }

        return ngx_teleclinic_turn_answer(ts, msg, b, 437,
                                          NGX_TELECLINIC_TURN_R_MISMATCH,
                                          NULL);
    }

    /* the long-term credential mechanism, RFC 8489 9.2.4 */

    if (msg->integrity == NULL && msg->integrity_sha256 == NULL) {
        return ngx_teleclinic_turn_answer(ts, msg, b, 401,
                                   NGX_TELECLINIC_TURN_R_UNAUTHENTICATED,
                                   NULL);
    }

    if (msg->username.len == 0 || msg->realm.data == NULL
        || msg->nonce.data == NULL)
    {
        return ngx_teleclinic_turn_answer(ts, msg, b, 400,
                                          NGX_TELECLINIC_TURN_R_BAD_REQUEST,
                                          NULL);
    }

    rc = ngx_teleclinic_stun_nonce_check(conf->nonce_key, &msg->nonce,
                                         c->sockaddr, ngx_time());
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_teleclinic_turn_answer(ts, msg, b, 438,
                                          NGX_TELECLINIC_TURN_R_STALE_NONCE,
                                          NULL);
    }

    if (msg->realm.len != conf->realm.len
        || ngx_strncmp(msg->realm.data, conf->realm.data, conf->realm.len)
           != 0
        || ngx_teleclinic_stun_rest_expiry(&msg->username, &expiry)
           != NGX_OK
        || expiry < ngx_time())
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "turn: unknown realm, or a username not valid now");

        return ngx_teleclinic_turn_answer(ts, msg, b, 401,
                                          NGX_TELECLINIC_TURN_R_AUTH, NULL);
    }

    if (ngx_teleclinic_stun_rest_key(&conf->secret, &msg->username,
                                     &conf->realm, key)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_teleclinic_stun_verify_integrity(msg, key,
                                              NGX_TELECLINIC_STUN_KEY_LEN);
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "turn: MESSAGE-INTEGRITY does not match");

        return ngx_teleclinic_turn_answer(ts, msg, b, 401,
                                          NGX_TELECLINIC_TURN_R_AUTH, NULL);
    }

    /* authenticated: every answer from here on carries the integrity */

    if (msg->nunknown) {
        return ngx_teleclinic_turn_answer(ts, msg, b, 420,
                                   NGX_TELECLINIC_TURN_R_UNKNOWN_ATTRIBUTE,
                                   key);
    }

    if (msg->method != NGX_TELECLINIC_STUN_ALLOCATE) {

        if (ts->alloc == NULL || ngx_teleclinic_turn_expires(ts) == 0) {
            return ngx_teleclinic_turn_answer(ts, msg, b, 437,
                                              NGX_TELECLINIC_TURN_R_MISMATCH,
                                              key);
        }

        if (ts->alloc->username.len != msg->username.len
            || ngx_memcmp(ts->alloc->username.data, msg->username.data,
                          msg->username.len)
               != 0)
        {
            return ngx_teleclinic_turn_answer(ts, msg, b, 441,
                                     NGX_TELECLINIC_TURN_R_WRONG_CREDENTIALS,
                                     key);
        }
    }

    switch (msg->method) {

    case NGX_TELECLINIC_STUN_ALLOCATE:
        return ngx_teleclinic_turn_allocate(ts, msg, b, key);

    case NGX_TELECLINIC_STUN_REFRESH:
        return ngx_teleclinic_turn_refresh(ts, msg, b, key);

    case NGX_TELECLINIC_STUN_CREATE_PERMISSION:
        return ngx_teleclinic_turn_permission(ts, msg, b, key);

    default: /* NGX_TELECLINIC_STUN_CHANNEL_BIND */
        return ngx_teleclinic_turn_channel_bind(ts, msg, b, key);
    }
}


/*
 * An answer to msg: success when code is 0, an error otherwise; 401 and
 * 438 carry the realm and a fresh nonce, 420 the unknown attributes.
 */

static ngx_int_t
ngx_teleclinic_turn_answer(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b, ngx_uint_t code,
    ngx_uint_t reason, u_char *key)
{
    ngx_uint_t                   cls;
    ngx_teleclinic_turn_conf_t  *conf;
    u_char                       nonce[NGX_TELECLINIC_STUN_NONCE_LEN];

    conf = ts->conf;

    cls = code ? NGX_TELECLINIC_STUN_ERROR : NGX_TELECLINIC_STUN_SUCCESS;

    if (ngx_teleclinic_stun_init(b, ngx_teleclinic_stun_type(msg->method,
                                                             cls),
                                 msg->tid)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (code == 0) {
        return ngx_teleclinic_turn_finish(msg, b, key);
    }

    ngx_teleclinic_turn_refuse(reason);

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, ts->connection->log, 0,
                   "turn: method:%ui refused with %ui", msg->method, code);

    if (ngx_teleclinic_stun_add_error_code(b, code, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    if (code == 401 || code == 438) {
        if (ngx_teleclinic_stun_nonce(conf->nonce_key,
                                      ngx_time() + conf->nonce_lifetime,
                                      ts->connection->sockaddr, nonce)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_teleclinic_stun_add_attr(b, NGX_TELECLINIC_STUN_ATTR_REALM,
                                         conf->realm.data, conf->realm.len)
            != NGX_OK
            || ngx_teleclinic_stun_add_attr(b, NGX_TELECLINIC_STUN_ATTR_NONCE,
                                            nonce, sizeof(nonce))
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (code == 420
        && ngx_teleclinic_stun_add_unknown(b, msg->unknown, msg->nunknown)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_teleclinic_turn_finish(msg, b, key);
}


/* SOFTWARE, the integrity in the client's kind, FINGERPRINT if it had one */

static ngx_int_t
ngx_teleclinic_turn_finish(ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b,
    u_char *key)
{
    ngx_int_t  rc;

    if (ngx_teleclinic_stun_add_attr(b, NGX_TELECLINIC_STUN_ATTR_SOFTWARE,
                                (u_char *) NGX_TELECLINIC_TURN_SOFTWARE,
                                sizeof(NGX_TELECLINIC_TURN_SOFTWARE) - 1)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (key) {
        if (msg->integrity_sha256) {
            rc = ngx_teleclinic_stun_add_integrity_sha256(b, key,
                                                  NGX_TELECLINIC_STUN_KEY_LEN);
        } else {
            rc = ngx_teleclinic_stun_add_integrity(b, key,
                                                  NGX_TELECLINIC_STUN_KEY_LEN);
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (msg->fingerprint && ngx_teleclinic_stun_add_fingerprint(b) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_teleclinic_turn_allocate(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b, u_char *key)
{
    int                           family;
    ngx_uint_t                    code, want;
    ngx_pool_t                   *pool;
    ngx_connection_t             *c;
    ngx_teleclinic_turn_conf_t   *conf;
    ngx_teleclinic_turn_alloc_t  *a;

    conf = ts->conf;
    c = ts->connection;

    if (ts->alloc && ngx_teleclinic_turn_expires(ts)) {

        /* a retransmission gets the same answer, another request 437 */

        if (ngx_memcmp(ts->alloc->tid, msg->tid, NGX_TELECLINIC_STUN_TID_LEN)
            == 0)
        {
            return ngx_teleclinic_turn_allocate_answer(ts, msg, b, key);
        }

        return ngx_teleclinic_turn_answer(ts, msg, b, 437,
                                          NGX_TELECLINIC_TURN_R_MISMATCH,
                                          key);
    }

    if (!msg->has_requested_transport) {
        return ngx_teleclinic_turn_answer(ts, msg, b, 400,
                                          NGX_TELECLINIC_TURN_R_BAD_REQUEST,
                                          key);
    }

    /* UDP relays only */

    if (msg->requested_transport != 17) {
        return ngx_teleclinic_turn_answer(ts, msg, b, 442,
                                          NGX_TELECLINIC_TURN_R_UNSUPPORTED,
                                          key);
    }

    if (conf->relay_addr) {
        family = conf->relay_addr->sockaddr->sa_family;

    } else {
        if (ngx_connection_local_sockaddr(c, NULL, 0) != NGX_OK) {
            return NGX_ERROR;
        }

        family = c->local_sockaddr->sa_family;
    }

    if (msg->has_requested_family
        && !((msg->requested_family == 0x01 && family == AF_INET)
             || (msg->requested_family == 0x02 && family == AF_INET6)))
    {
        return ngx_teleclinic_turn_answer(ts, msg, b, 440,
                                          NGX_TELECLINIC_TURN_R_UNSUPPORTED,
                                          key);
    }

    /* a reserved port comes with its token alone (RFC 8656 7.2) */

    want = 0;

    if (msg->reservation_token.data) {

        if (msg->has_even_port || msg->has_requested_family) {
            return ngx_teleclinic_turn_answer(ts, msg, b, 400,
                                          NGX_TELECLINIC_TURN_R_BAD_REQUEST,
                                          key);
        }

        want = ngx_teleclinic_turn_reservation(conf,
                                               msg->reservation_token.data);

        if (want == 0) {
            return ngx_teleclinic_turn_answer(ts, msg, b, 508,
                                              NGX_TELECLINIC_TURN_R_CAPACITY,
                                              key);
        }
    }

    pool = ngx_create_pool(1024, c->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    a = ngx_pcalloc(pool, sizeof(ngx_teleclinic_turn_alloc_t));
    if (a == NULL) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    a->pool = pool;
    a->session = ts;
    a->conf = conf;
    a->listen_fd = (ngx_socket_t) -1;

    a->username.len = msg->username.len;
    a->username.data = ngx_pstrdup(pool, &msg->username);
    if (a->username.data == NULL) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    code = ngx_teleclinic_turn_quota_take(conf, a, c->log);

    if (code) {
        ngx_destroy_pool(pool);

        return ngx_teleclinic_turn_answer(ts, msg, b, code,
                                          code == 486
                                          ? NGX_TELECLINIC_TURN_R_QUOTA
                                          : NGX_TELECLINIC_TURN_R_CAPACITY,
                                          key);
    }

    if (ngx_teleclinic_turn_relay_open(ts, a, msg, want) != NGX_OK) {
        ngx_teleclinic_turn_quota_release(conf->zone, a);
        ngx_destroy_pool(pool);

        return ngx_teleclinic_turn_answer(ts, msg, b, 508,
                                          NGX_TELECLINIC_TURN_R_CAPACITY,
                                          key);
    }

    ngx_memcpy(a->tid, msg->tid, NGX_TELECLINIC_STUN_TID_LEN);

    a->expires = ngx_current_msec
                 + ngx_teleclinic_turn_lifetime(conf, msg) * 1000;
    a->bw_last = ngx_current_msec;
    a->bw_tokens = conf->bandwidth;

    ts->alloc = a;

    if (!ts->stream) {
        ngx_queue_insert_tail(&ngx_teleclinic_turn_active, &a->active);
        a->in_active = 1;
    }

    ngx_teleclinic_turn_count(NGX_TELECLINIC_TURN_ALLOCATIONS_TOTAL, 1);

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "turn: allocated, relay fd:%d", a->relay->fd);

    return ngx_teleclinic_turn_allocate_answer(ts, msg, b, key);
}


static ngx_int_t
ngx_teleclinic_turn_allocate_answer(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b, u_char *key)
{
    ngx_msec_t                    left;
    ngx_teleclinic_turn_alloc_t  *a;

    a = ts->alloc;

    left = ngx_teleclinic_turn_expires(ts);

    if (ngx_teleclinic_stun_init(b, ngx_teleclinic_stun_type(msg->method,
                                              NGX_TELECLINIC_STUN_SUCCESS),
                                 msg->tid)
        != NGX_OK
        || ngx_teleclinic_stun_add_xor_address(b,
                                 NGX_TELECLINIC_STUN_ATTR_XOR_RELAYED_ADDRESS,
                                 &a->relayed.sockaddr)
           != NGX_OK
        || ngx_teleclinic_stun_add_uint32(b, NGX_TELECLINIC_STUN_ATTR_LIFETIME,
                                          (uint32_t) ((left + 999) / 1000))
           != NGX_OK
        || ngx_teleclinic_stun_add_xor_address(b,
                                 NGX_TELECLINIC_STUN_ATTR_XOR_MAPPED_ADDRESS,
                                 ts->connection->sockaddr)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (a->has_token
        && ngx_teleclinic_stun_add_attr(b,
                                   NGX_TELECLINIC_STUN_ATTR_RESERVATION_TOKEN,
                                   a->token, NGX_TELECLINIC_TURN_TOKEN_LEN)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_teleclinic_turn_finish(msg, b, key);
}


static ngx_int_t
ngx_teleclinic_turn_refresh(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b, u_char *key)
{
    int                           family;
    time_t                        lifetime;
    ngx_teleclinic_turn_alloc_t  *a;

    a = ts->alloc;
    family = a->relayed.sockaddr.sa_family;

    if (msg->has_requested_family
        && !((msg->requested_family == 0x01 && family == AF_INET)
             || (msg->requested_family == 0x02 && family == AF_INET6)))
    {
        return ngx_teleclinic_turn_answer(ts, msg, b, 443,
                                          NGX_TELECLINIC_TURN_R_UNSUPPORTED,
                                          key);
    }

    if (msg->has_lifetime && msg->lifetime == 0) {
        ngx_teleclinic_turn_free(ts);
        lifetime = 0;

    } else {
        lifetime = ngx_teleclinic_turn_lifetime(ts->conf, msg);
        a->expires = ngx_current_msec + lifetime * 1000;
    }

    if (ngx_teleclinic_stun_init(b, ngx_teleclinic_stun_type(msg->method,
                                              NGX_TELECLINIC_STUN_SUCCESS),
                                 msg->tid)
        != NGX_OK
        || ngx_teleclinic_stun_add_uint32(b, NGX_TELECLINIC_STUN_ATTR_LIFETIME,
                                          (uint32_t) lifetime)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_teleclinic_turn_finish(msg, b, key);
}


static ngx_int_t
ngx_teleclinic_turn_permission(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b, u_char *key)
{
    ngx_uint_t                    i, code, reason;
    ngx_teleclinic_turn_alloc_t  *a;

    a = ts->alloc;

    if (msg->npeers == 0 || msg->peers_overflow) {
        return ngx_teleclinic_turn_answer(ts, msg, b, 400,
                                          NGX_TELECLINIC_TURN_R_BAD_REQUEST,
                                          key);
    }

    /* all of them or none */

    for (i = 0; i < msg->npeers; i++) {
        code = ngx_teleclinic_turn_peer_code(ts, &msg->peers[i], &reason);

        if (code) {
            return ngx_teleclinic_turn_answer(ts, msg, b, code, reason, key);
        }
    }

    for (i = 0; i < msg->npeers; i++) {
        if (ngx_teleclinic_turn_permit(a, &msg->peers[i].sockaddr.sockaddr,
                                       msg->peers[i].socklen,
                                       ngx_current_msec)
            != NGX_OK)
        {
            return ngx_teleclinic_turn_answer(ts, msg, b, 508,
                                              NGX_TELECLINIC_TURN_R_CAPACITY,
                                              key);
        }
    }

    return ngx_teleclinic_turn_answer(ts, msg, b, 0, 0, key);
}


static ngx_int_t
ngx_teleclinic_turn_channel_bind(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b, u_char *key)
{
    ngx_uint_t                      i, code, reason;
    ngx_msec_t                      now;
    struct sockaddr                *sa;
    ngx_teleclinic_turn_alloc_t    *a;
    ngx_teleclinic_turn_channel_t  *ch, *free;

    a = ts->alloc;
    now = ngx_current_msec;

    if (!msg->has_channel || msg->npeers != 1
        || msg->channel < NGX_TELECLINIC_STUN_CHANNEL_MIN
        || msg->channel > NGX_TELECLINIC_STUN_CHANNEL_MAX)
    {
        return ngx_teleclinic_turn_answer(ts, msg, b, 400,
                                          NGX_TELECLINIC_TURN_R_BAD_REQUEST,
                                          key);
    }

    code = ngx_teleclinic_turn_peer_code(ts, &msg->peers[0], &reason);

    if (code) {
        return ngx_teleclinic_turn_answer(ts, msg, b, code, reason, key);
    }

    sa = &msg->peers[0].sockaddr.sockaddr;

    /* a channel is bound to one peer, a peer to one channel */

    free = NULL;
    ch = NULL;

    for (i = 0; i < a->nchannels; i++) {

        if (a->channels[i].expires <= now) {
            if (free == NULL) {
                free = &a->channels[i];
            }

            continue;
        }

        if (a->channels[i].number == msg->channel) {
            if (ngx_cmp_sockaddr(&a->channels[i].sockaddr.sockaddr,
                                 a->channels[i].socklen, sa,
                                 msg->peers[0].socklen, 1)
                != NGX_OK)
            {
                return ngx_teleclinic_turn_answer(ts, msg, b, 400,
                                         NGX_TELECLINIC_TURN_R_BAD_REQUEST,
                                         key);
            }

            ch = &a->channels[i];
            continue;
        }

        if (ngx_cmp_sockaddr(&a->channels[i].sockaddr.sockaddr,
                             a->channels[i].socklen, sa,
                             msg->peers[0].socklen, 1)
            == NGX_OK)
        {
            return ngx_teleclinic_turn_answer(ts, msg, b, 400,
                                              NGX_TELECLINIC_TURN_R_BAD_REQUEST,
                                              key);
        }
    }

    if (ch == NULL) {
        if (free) {
            ch = free;

        } else if (a->nchannels < NGX_TELECLINIC_TURN_CHANNELS) {
            ch = &a->channels[a->nchannels++];

        } else {
            return ngx_teleclinic_turn_answer(ts, msg, b, 508,
                                              NGX_TELECLINIC_TURN_R_CAPACITY,
                                              key);
        }
    }

    if (ngx_teleclinic_turn_permit(a, sa, msg->peers[0].socklen, now)
        != NGX_OK)
    {
        return ngx_teleclinic_turn_answer(ts, msg, b, 508,
                                          NGX_TELECLINIC_TURN_R_CAPACITY,
                                          key);
    }

    ch->number = msg->channel;
    ngx_memcpy(&ch->sockaddr, sa, msg->peers[0].socklen);
    ch->socklen = msg->peers[0].socklen;
    ch->expires = now + NGX_TELECLINIC_TURN_CHANNEL_LIFETIME * 1000;

    return ngx_teleclinic_turn_answer(ts, msg, b, 0, 0, key);
}


/* 0 when the relay may reach the peer, or the error code that refuses it */

static ngx_uint_t
ngx_teleclinic_turn_peer_code(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_stun_addr_t *peer, ngx_uint_t *reason)
{
    struct sockaddr             *sa;
    ngx_teleclinic_turn_conf_t  *conf;

    conf = ts->conf;
    sa = &peer->sockaddr.sockaddr;

    if (sa->sa_family != ts->alloc->relayed.sockaddr.sa_family) {
        *reason = NGX_TELECLINIC_TURN_R_UNSUPPORTED;
        return 443;
    }

    /* before teleclinic_turn_allow_peer: it never opens the relay's host */

    if (ngx_teleclinic_turn_peer_self(ts, sa, peer->socklen)) {
        ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                      "turn: peer is the relay's own address outside "
                      "the relay ports");

        *reason = NGX_TELECLINIC_TURN_R_PEER_DENIED;
        return 403;
    }

    if (conf->allow_peers
        && ngx_cidr_match(sa, conf->allow_peers) == NGX_OK)
    {
        return 0;
    }

    if (ngx_teleclinic_stun_peer_reserved(sa)) {
        ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                      "turn: peer address denied by policy");

        *reason = NGX_TELECLINIC_TURN_R_PEER_DENIED;
        return 403;
    }

    return 0;
}


/*
 * 1 when the peer is the relay's own host outside the relay ports: an
 * address of this session's server or of any teleclinic_turn server's
 * relays (bound or public), at a port no relay range has, or one that
 * nginx listens on for UDP.  Two relayed clients of this nginx reach
 * each other at relay ports, so those are peers; any other port there is
 * a loop into the TURN port or the host's own UDP services.
 */

static ngx_uint_t
ngx_teleclinic_turn_peer_self(ngx_teleclinic_turn_session_t *ts,
    struct sockaddr *sa, socklen_t socklen)
{
    uint32_t                      v4;
    in_port_t                     port;
    ngx_uint_t                    i;
    ngx_listening_t              *ls;
    struct sockaddr_in            sin;
    ngx_connection_t             *c;
    ngx_teleclinic_turn_conf_t  **servers, *conf;

    c = ts->connection;
    servers = ts->conf->servers->elts;

    /* the IPv4 host that a mapped or NAT64 form reaches */

    if (ngx_teleclinic_stun_peer_ipv4(sa, &v4)) {
        ngx_memzero(&sin, sizeof(struct sockaddr_in));
        sin.sin_family = AF_INET;
        sin.sin_port = htons(ngx_inet_get_port(sa));
        sin.sin_addr.s_addr = htonl(v4);

        sa = (struct sockaddr *) &sin;
        socklen = sizeof(struct sockaddr_in);
    }

    if (ngx_cmp_sockaddr(sa, socklen, &ts->alloc->relayed.sockaddr,
                         ts->alloc->relayed_len, 0)
        == NGX_OK)
    {
        goto self;
    }

    if (ngx_connection_local_sockaddr(c, NULL, 0) == NGX_OK
        && ngx_cmp_sockaddr(sa, socklen, c->local_sockaddr,
                            c->local_socklen, 0)
           == NGX_OK)
    {
        goto self;
    }

    for (i = 0; i < ts->conf->servers->nelts; i++) {
        conf = servers[i];

        if ((conf->relay_addr
             && ngx_cmp_sockaddr(sa, socklen, conf->relay_addr->sockaddr,
                                 conf->relay_addr->socklen, 0)
                == NGX_OK)
            || (conf->public_addr
                && ngx_cmp_sockaddr(sa, socklen, conf->public_addr->sockaddr,
                                    conf->public_addr->socklen, 0)
                   == NGX_OK))
        {
            goto self;
        }
    }

    return 0;

self:

    port = ngx_inet_get_port(sa);

    ls = ngx_cycle->listening.elts;

    for (i = 0; i < ngx_cycle->listening.nelts; i++) {
        if (ls[i].type == SOCK_DGRAM
            && ngx_inet_get_port(ls[i].sockaddr) == port)
        {
            return 1;
        }
    }

    for (i = 0; i < ts->conf->servers->nelts; i++) {
        if (port >= servers[i]->port_min && port <= servers[i]->port_max) {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_teleclinic_turn_permit(ngx_teleclinic_turn_alloc_t *a,
    struct sockaddr *sa, socklen_t socklen, ngx_msec_t now)
{
    ngx_uint_t                   i;
    ngx_teleclinic_turn_perm_t  *perm;

    perm = ngx_teleclinic_turn_find_perm(a, sa, socklen, now);

    if (perm == NULL) {

        for (i = 0; i < a->nperms; i++) {
            if (a->perms[i].expires <= now) {
                perm = &a->perms[i];
                break;
            }
        }

        if (perm == NULL) {
            if (a->nperms == NGX_TELECLINIC_TURN_PERMISSIONS) {
                return NGX_DECLINED;
            }

            perm = &a->perms[a->nperms++];
        }

        ngx_memcpy(&perm->sockaddr, sa, socklen);
        perm->socklen = socklen;
    }

    perm->expires = now + NGX_TELECLINIC_TURN_PERM_LIFETIME * 1000;

    return NGX_OK;
}


/* permissions are by IP address alone, RFC 8656 9 */

static ngx_teleclinic_turn_perm_t *
ngx_teleclinic_turn_find_perm(ngx_teleclinic_turn_alloc_t *a,
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


static ngx_teleclinic_turn_channel_t *
ngx_teleclinic_turn_find_channel(ngx_teleclinic_turn_alloc_t *a,
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


/* 1 when len bytes fit the allocation's bandwidth, counted as sent */

static ngx_uint_t
ngx_teleclinic_turn_bandwidth(ngx_teleclinic_turn_alloc_t *a, size_t len,
    ngx_msec_t now)
{
    size_t                       rate;
    ngx_msec_t                   elapsed;

    rate = a->conf->bandwidth;

    if (rate == 0) {
        return 1;
    }

    elapsed = now - a->bw_last;

    if (elapsed) {
        a->bw_last = now;

        /* a second's worth at most: the burst that a bucket allows */

        if (elapsed >= 1000 || a->bw_tokens + rate * elapsed / 1000 > rate) {
            a->bw_tokens = rate;

        } else {
            a->bw_tokens += rate * elapsed / 1000;
        }
    }

    if (a->bw_tokens < len) {
        ngx_teleclinic_turn_refuse(NGX_TELECLINIC_TURN_R_BANDWIDTH);
        return 0;
    }

    a->bw_tokens -= len;

    return 1;
}


static time_t
ngx_teleclinic_turn_lifetime(ngx_teleclinic_turn_conf_t *conf,
    ngx_teleclinic_stun_msg_t *msg)
{
    time_t  lifetime, dflt;

    /* RFC 8656 7.2: never less than the default, never more than the max */

    dflt = ngx_min(NGX_TELECLINIC_TURN_LIFETIME, conf->max_lifetime);

    if (!msg->has_lifetime) {
        return dflt;
    }

    lifetime = ngx_min((time_t) msg->lifetime, conf->max_lifetime);

    return ngx_max(lifetime, dflt);
}


ngx_msec_t
ngx_teleclinic_turn_expires(ngx_teleclinic_turn_session_t *ts)
{
    ngx_msec_int_t  left;

    if (ts->alloc == NULL) {
        return 0;
    }

    left = (ngx_msec_int_t) (ts->alloc->expires - ngx_current_msec);

    if (left <= 0) {
        ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                      "turn: allocation expired");

        ngx_teleclinic_turn_free(ts);
        return 0;
    }

    return (ngx_msec_t) left;
}


void
ngx_teleclinic_turn_free(ngx_teleclinic_turn_session_t *ts)
{
    ngx_teleclinic_turn_alloc_t  *a;

    a = ts->alloc;

    if (a == NULL) {
        return;
    }

    ts->alloc = NULL;

    if (a->in_active) {
        ngx_queue_remove(&a->active);
        a->in_active = 0;
    }

    /* the new worker holds the socket and the counts already */

    if (a->handed) {
        ngx_close_connection(a->relay);
        ngx_destroy_pool(a->pool);
        return;
    }

    /* a reload: the new worker of this number goes on with it */

    if (ngx_exiting
        && !ts->stream
        && a->relay
        && (ngx_msec_int_t) (a->expires - ngx_current_msec) > 0
        && ngx_teleclinic_turn_leave(ts, a) == NGX_OK)
    {
        return;
    }

    if (a->relay) {
        ngx_close_connection(a->relay);
    }

    ngx_teleclinic_turn_quota_release(ts->conf->zone, a);

    ngx_destroy_pool(a->pool);
}


/* the client's messages to peers */

void
ngx_teleclinic_turn_send_indication(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg)
{
    ssize_t                       n;
    ngx_uint_t                    reason;
    struct sockaddr              *sa;
    ngx_teleclinic_turn_alloc_t  *a;

    if (ts->alloc == NULL || ngx_teleclinic_turn_expires(ts) == 0
        || msg->npeers == 0 || !msg->has_data)
    {
        return;
    }

    a = ts->alloc;
    sa = &msg->peers[0].sockaddr.sockaddr;

    if (ngx_teleclinic_turn_peer_code(ts, &msg->peers[0], &reason)) {
        ngx_teleclinic_turn_refuse(reason);
        return;
    }

    if (ngx_teleclinic_turn_find_perm(a, sa, msg->peers[0].socklen,
                                      ngx_current_msec)
        == NULL)
    {
        ngx_teleclinic_turn_refuse(NGX_TELECLINIC_TURN_R_NO_PERMISSION);
        return;
    }

    if (!ngx_teleclinic_turn_bandwidth(a, msg->data.len, ngx_current_msec)) {
        return;
    }

    n = sendto(a->relay->fd, msg->data.data, msg->data.len, 0, sa,
               msg->peers[0].socklen);

    if (n == -1) {
        ngx_teleclinic_turn_refuse(NGX_TELECLINIC_TURN_R_CONGESTION);
        return;
    }

    ngx_teleclinic_turn_count(NGX_TELECLINIC_TURN_PACKETS_TO_PEER, 1);
    ngx_teleclinic_turn_count(NGX_TELECLINIC_TURN_BYTES_TO_PEER, n);
}


void
ngx_teleclinic_turn_channel_data(ngx_teleclinic_turn_session_t *ts,
    u_char *p, size_t len)
{
    size_t                          n;
    ssize_t                         sent;
    ngx_uint_t                      i, number;
    ngx_teleclinic_turn_alloc_t    *a;
    ngx_teleclinic_turn_channel_t  *ch;

    a = ts->alloc;

    if (a == NULL || len < NGX_TELECLINIC_STUN_CHANNEL_HEADER) {
        return;
    }

    number = (p[0] << 8) | p[1];
    n = (p[2] << 8) | p[3];

    if (n > len - NGX_TELECLINIC_STUN_CHANNEL_HEADER) {
        ngx_teleclinic_turn_refuse(NGX_TELECLINIC_TURN_R_BAD_REQUEST);
        return;
    }

    ch = NULL;

    for (i = 0; i < a->nchannels; i++) {
        if (a->channels[i].number == number) {
            ch = &a->channels[i];
            break;
        }
    }

    /* an expired allocation or channel drops the data */

    if (ch == NULL || ch->expires <= ngx_current_msec
        || a->expires <= ngx_current_msec)
    {
        ngx_teleclinic_turn_refuse(NGX_TELECLINIC_TURN_R_NO_PERMISSION);
        return;
    }

    if (!ngx_teleclinic_turn_bandwidth(a, n, ngx_current_msec)) {
        return;
    }

    sent = sendto(a->relay->fd, p + NGX_TELECLINIC_STUN_CHANNEL_HEADER, n, 0,
                  &ch->sockaddr.sockaddr, ch->socklen);

    if (sent == -1) {
        ngx_teleclinic_turn_refuse(NGX_TELECLINIC_TURN_R_CONGESTION);
        return;
    }

    ngx_teleclinic_turn_count(NGX_TELECLINIC_TURN_PACKETS_TO_PEER, 1);
    ngx_teleclinic_turn_count(NGX_TELECLINIC_TURN_BYTES_TO_PEER, n);
}


/* relay sockets */

static ngx_int_t
ngx_teleclinic_turn_relay_open(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_turn_alloc_t *a, ngx_teleclinic_stun_msg_t *msg,
    ngx_uint_t want)
{
    int                          value;
    socklen_t                    socklen;
    ngx_uint_t                   i, port, range;
    ngx_err_t                    err;
    ngx_event_t                 *rev;
    ngx_socket_t                 s;
    ngx_sockaddr_t               local;
    ngx_connection_t            *c, *rc;
    ngx_teleclinic_turn_conf_t  *conf;

    conf = ts->conf;
    c = ts->connection;

    if (conf->relay_addr) {
        socklen = conf->relay_addr->socklen;
        ngx_memcpy(&local, conf->relay_addr->sockaddr, socklen);

    } else {
        socklen = c->local_socklen;
        ngx_memcpy(&local, c->local_sockaddr, socklen);
    }

    s = ngx_socket(local.sockaddr.sa_family, SOCK_DGRAM, 0);

    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ALERT, c->log, ngx_socket_errno,
                      ngx_socket_n " failed");
        return NGX_ERROR;
    }

    /*
     * random ports from the range: the workers of this nginx, and of
     * the one before a reload, bind from the same range
     */

    range = conf->port_max - conf->port_min + 1;

    for (i = 0; i < NGX_TELECLINIC_TURN_BIND_TRIES; i++) {
        port = conf->port_min + (ngx_uint_t) ngx_random() % range;

        if (want) {
            /* the port a RESERVATION-TOKEN kept, or nothing */
            port = want;
            i = NGX_TELECLINIC_TURN_BIND_TRIES - 1;

        } else if (msg->has_even_port) {
            port &= ~((ngx_uint_t) 1);

            if (port < conf->port_min
                || (msg->even_port_reserve
                    && (port + 1 > conf->port_max
                        || !ngx_teleclinic_turn_port_free(&local, socklen,
                                                          port + 1))))
            {
                continue;
            }
        }

        ngx_inet_set_port(&local.sockaddr, (in_port_t) port);

        if (bind(s, &local.sockaddr, socklen) == 0) {
            break;
        }

        err = ngx_socket_errno;

        if (err != NGX_EADDRINUSE && err != NGX_EACCES) {
            ngx_log_error(NGX_LOG_ERR, c->log, err,
                          "turn: bind() of a relay socket failed");
            goto failed;
        }
    }

    if (i == NGX_TELECLINIC_TURN_BIND_TRIES) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "turn: no free relay port in %ui-%ui",
                      conf->port_min, conf->port_max);
        goto failed;
    }

    if (msg->even_port_reserve
        && ngx_teleclinic_turn_reserve(conf, a, port + 1) != NGX_OK)
    {
        goto failed;
    }

    if (ngx_nonblocking(s) == -1) {
        ngx_log_error(NGX_LOG_ALERT, c->log, ngx_socket_errno,
                      ngx_nonblocking_n " failed");
        goto failed;
    }

    if (msg->dont_fragment) {
        value = (local.sockaddr.sa_family == AF_INET6) ? IPV6_PMTUDISC_DO
                                                        : IP_PMTUDISC_DO;

        if ((local.sockaddr.sa_family == AF_INET6
             ? setsockopt(s, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &value,
                          sizeof(int))
             : setsockopt(s, IPPROTO_IP, IP_MTU_DISCOVER, &value,
                          sizeof(int)))
            == -1)
        {
            ngx_log_error(NGX_LOG_ERR, c->log, ngx_socket_errno,
                          "turn: setsockopt(IP_MTU_DISCOVER) failed");
        }
    }

    rc = ngx_get_connection(s, c->log);

    if (rc == NULL) {
        goto failed;
    }

    rc->data = a;
    rc->type = SOCK_DGRAM;
    rc->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    rc->start_time = ngx_current_msec;

    rev = rc->read;
    rev->handler = ngx_teleclinic_turn_relay_handler;
    rev->log = c->log;
    rc->write->log = c->log;

    /* UDP sockets are always ready to write */
    rc->write->ready = 1;

    /*
     * level-triggered: a batch shorter than asked for ends the reading
     * without a last recvmmsg() to see EAGAIN, and what is left makes
     * epoll report the socket again
     */

    if (ngx_add_event(rev, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK)
    {
        ngx_close_connection(rc);
        return NGX_ERROR;
    }

    a->relay = rc;

    if (conf->public_addr) {
        a->relayed_len = conf->public_addr->socklen;
        ngx_memcpy(&a->relayed, conf->public_addr->sockaddr, a->relayed_len);

    } else {
        a->relayed_len = socklen;
        ngx_memcpy(&a->relayed, &local, socklen);
    }

    ngx_inet_set_port(&a->relayed.sockaddr, (in_port_t) port);

    return NGX_OK;

failed:

    if (ngx_close_socket(s) == -1) {
        ngx_log_error(NGX_LOG_ALERT, c->log, ngx_socket_errno,
                      ngx_close_socket_n " failed");
    }

    return NGX_ERROR;
}


/*
 * Datagrams from peers: each one from a permitted peer goes to the
 * client in ChannelData when the peer has a channel, in a Data
 * indication otherwise; the header is written in the room before the
 * data, so that a batch is one recvmmsg() and, over UDP, one sendmmsg().
 */

static void
ngx_teleclinic_turn_relay_handler(ngx_event_t *rev)
{
    int                              n;
    u_char                          *p, *data;
    size_t                           len, total, hlen;
    ngx_buf_t                        b;
    ngx_err_t                        err;
    ngx_uint_t                       i, k, round, stream;
    ngx_msec_t                       now;
    struct sockaddr                 *sa;
    ngx_connection_t                *c;
    struct mmsghdr                  *in, *out;
    ngx_teleclinic_turn_alloc_t     *a;
    ngx_teleclinic_turn_channel_t   *ch;
    ngx_teleclinic_turn_session_t   *ts;

    c = rev->data;
    a = c->data;
    ts = a->session;
    stream = ts ? ts->stream : 0;

    in = ngx_teleclinic_turn_in;
    out = ngx_teleclinic_turn_out;

    for (round = 0; round < NGX_TELECLINIC_TURN_ROUNDS; round++) {

        for (i = 0; i < NGX_TELECLINIC_TURN_BATCH; i++) {
            ngx_teleclinic_turn_in_iov[i].iov_base =
                             ngx_teleclinic_turn_slots[i]
                             + NGX_TELECLINIC_TURN_HEADROOM;
            ngx_teleclinic_turn_in_iov[i].iov_len =
                             NGX_TELECLINIC_TURN_DATA_MAX;

            in[i].msg_hdr.msg_name = &ngx_teleclinic_turn_in_addr[i];
            in[i].msg_hdr.msg_namelen = sizeof(ngx_sockaddr_t);
            in[i].msg_hdr.msg_iov = &ngx_teleclinic_turn_in_iov[i];
            in[i].msg_hdr.msg_iovlen = 1;
            in[i].msg_hdr.msg_control = NULL;
            in[i].msg_hdr.msg_controllen = 0;
            in[i].msg_hdr.msg_flags = 0;
        }

        n = recvmmsg(c->fd, in, NGX_TELECLINIC_TURN_BATCH, 0, NULL);

        if (n == -1) {
            err = ngx_socket_errno;

            if (err == NGX_EAGAIN) {
                rev->ready = 0;
                goto done;
            }

            if (err == NGX_EINTR) {
                continue;
            }

            /* an ICMP error from a peer, say: the next datagram is fine */
            ngx_log_error(NGX_LOG_INFO, c->log, err,
                          "turn: recvmmsg() on a relay socket failed");
            continue;
        }

        now = ngx_current_msec;
        k = 0;

        for (i = 0; i < (ngx_uint_t) n; i++) {
            len = in[i].msg_len;
            sa = (struct sockaddr *) &ngx_teleclinic_turn_in_addr[i];
            data = ngx_teleclinic_turn_slots[i] + NGX_TELECLINIC_TURN_HEADROOM;

            if (in[i].msg_hdr.msg_flags & MSG_TRUNC) {
                ngx_teleclinic_turn_refuse(NGX_TELECLINIC_TURN_R_TOO_LARGE);
                continue;
            }

            if (ngx_teleclinic_turn_find_perm(a, sa,
                                              in[i].msg_hdr.msg_namelen, now)
                == NULL)
            {
                ngx_teleclinic_turn_refuse(
                                       NGX_TELECLINIC_TURN_R_NO_PERMISSION);
                continue;
            }

            if (!ngx_teleclinic_turn_bandwidth(a, len, now)) {
                continue;
            }

            ch = ngx_teleclinic_turn_find_channel(a, sa,
                                                  in[i].msg_hdr.msg_namelen,
                                                  now);

            if (ch) {
                p = data - NGX_TELECLINIC_STUN_CHANNEL_HEADER;
                ngx_teleclinic_turn_set16(p, ch->number);
                ngx_teleclinic_turn_set16(p + 2, len);
                total = NGX_TELECLINIC_STUN_CHANNEL_HEADER + len;

            } else {
                hlen = NGX_TELECLINIC_STUN_HEADER_LEN + 4
                       + (sa->sa_family == AF_INET6 ? 20 : 8) + 4;
                p = data - hlen;

                ngx_memzero(&b, sizeof(ngx_buf_t));
                b.start = p;
                b.pos = p;
                b.last = p;
                b.end = ngx_teleclinic_turn_slots[i]
                        + NGX_TELECLINIC_TURN_SLOT;

                ngx_teleclinic_turn_tid[0]++;

                if (ngx_teleclinic_stun_init(&b, ngx_teleclinic_stun_type(
                                             NGX_TELECLINIC_STUN_DATA,
                                             NGX_TELECLINIC_STUN_INDICATION),
                                             (u_char *) ngx_teleclinic_turn_tid)
                    != NGX_OK
                    || ngx_teleclinic_stun_add_xor_address(&b,
                                   NGX_TELECLINIC_STUN_ATTR_XOR_PEER_ADDRESS,
                                   sa)
                       != NGX_OK)
                {
                    continue;
                }

                /* the DATA attribute's header, its value already there */
                ngx_teleclinic_turn_set16(b.last,
                                          NGX_TELECLINIC_STUN_ATTR_DATA);
                ngx_teleclinic_turn_set16(b.last + 2, len);

                total = hlen + ((len + 3) & ~((size_t) 3));
                ngx_memzero(data + len, total - hlen - len);
                ngx_teleclinic_turn_set16(p + 2,
                                      total - NGX_TELECLINIC_STUN_HEADER_LEN);
            }

            if (stream) {
                while (total & 3) {
                    p[total++] = 0;
                }
            }

            ngx_teleclinic_turn_out_iov[k].iov_base = p;
            ngx_teleclinic_turn_out_iov[k].iov_len = total;

            ngx_teleclinic_turn_out_len[k] = len;
            k++;
        }

        if (k && ts) {
            ngx_teleclinic_turn_to_client(ts, out, k);

        } else if (k) {
            ngx_teleclinic_turn_to_orphan(a, out, k);
        }

        if (n < NGX_TELECLINIC_TURN_BATCH) {
            break;
        }
    }

    /* more may wait: epoll reports it after the others have had a turn */

done:

    if (stream && ts->out->pos != ts->out->last) {
        switch (ngx_teleclinic_turn_write(ts)) {

        case NGX_ERROR:
            ts->connection->error = 1;
            ngx_post_event(ts->connection->write, &ngx_posted_events);
            break;

        case NGX_AGAIN:
            if (ngx_handle_write_event(ts->connection->write, 0) != NGX_OK) {
                ts->connection->error = 1;
                ngx_post_event(ts->connection->write, &ngx_posted_events);
            }
            break;
        }
    }
}


/*
 * The batch goes to the client: over UDP from the listening socket the
 * client writes to, over TCP and TLS into the session's buffer (a full
 * buffer drops datagrams, as a full network would).  The lengths of
 * application data are kept apart, for the counters.
 */

static void
ngx_teleclinic_turn_to_client(ngx_teleclinic_turn_session_t *ts,
    struct mmsghdr *out, ngx_uint_t n)
{
    int                i, sent;
    size_t             bytes, len;
    ssize_t            m;
    ngx_buf_t         *b, buf;
    ngx_chain_t        cl;
    ngx_connection_t  *c;

    c = ts->connection;
    bytes = 0;
    sent = 0;

    if (ts->stream) {
        b = ts->out;

        for (i = 0; i < (int) n; i++) {
            len = ngx_teleclinic_turn_out_iov[i].iov_len;

            /*
             * over TLS each message goes in a record of its own while
             * the connection keeps up: clients that read a record at a
             * time (coturn's) count a message per record
             */

            if (c->ssl && b->pos == b->last && !c->error) {
                m = c->send(c, ngx_teleclinic_turn_out_iov[i].iov_base, len);

                if (m == (ssize_t) len) {
                    bytes += ngx_teleclinic_turn_out_len[i];
                    sent++;
                    continue;
                }

                if (m == NGX_ERROR) {
                    c->error = 1;
                    ngx_post_event(c->write, &ngx_posted_events);
                    break;
                }

                /* NGX_AGAIN: it waits in the buffer */
            }

            if ((size_t) (b->end - b->last) < len
                && b->pos == b->last)
            {
                b->pos = b->start;
                b->last = b->start;
            }

            if ((size_t) (b->end - b->last) < len && b->pos != b->start)
            {
                b->last = ngx_movemem(b->start, b->pos, b->last - b->pos);
                b->pos = b->start;
            }

            if ((size_t) (b->end - b->last) < len) {
                ngx_teleclinic_turn_refuse(NGX_TELECLINIC_TURN_R_CONGESTION);
                continue;
            }

            b->last = ngx_cpymem(b->last,
                                 ngx_teleclinic_turn_out_iov[i].iov_base,
                                 len);
            bytes += ngx_teleclinic_turn_out_len[i];
            sent++;
        }

    } else if (c->listening && c->listening->wildcard) {

        /* the answer must leave from the address the client wrote to */

        for (i = 0; i < (int) n; i++) {
            ngx_memzero(&buf, sizeof(ngx_buf_t));
            buf.pos = ngx_teleclinic_turn_out_iov[i].iov_base;
            buf.last = buf.pos + ngx_teleclinic_turn_out_iov[i].iov_len;
            buf.memory = 1;

            cl.buf = &buf;
            cl.next = NULL;

            if (c->send_chain(c, &cl, 0) == NGX_CHAIN_ERROR) {
                ngx_teleclinic_turn_refuse(NGX_TELECLINIC_TURN_R_CONGESTION);
                continue;
            }

            bytes += ngx_teleclinic_turn_out_len[i];
            sent++;
        }

    } else {
        for (i = 0; i < (int) n; i++) {
            out[i].msg_hdr.msg_name = c->sockaddr;
            out[i].msg_hdr.msg_namelen = c->socklen;
            out[i].msg_hdr.msg_iov = &ngx_teleclinic_turn_out_iov[i];
            out[i].msg_hdr.msg_iovlen = 1;
            out[i].msg_hdr.msg_control = NULL;
            out[i].msg_hdr.msg_controllen = 0;
            out[i].msg_hdr.msg_flags = 0;
        }

        sent = sendmmsg(c->fd, out, n, 0);

        if (sent == -1) {
            sent = 0;
        }

        for (i = 0; i < sent; i++) {
            bytes += ngx_teleclinic_turn_out_len[i];
        }

        /* what the socket did not take is lost, as on the way */

        for (i = sent; i < (int) n; i++) {
            ngx_teleclinic_turn_refuse(NGX_TELECLINIC_TURN_R_CONGESTION);
        }
    }

    ngx_teleclinic_turn_count(NGX_TELECLINIC_TURN_PACKETS_TO_CLIENT, sent);
    ngx_teleclinic_turn_count(NGX_TELECLINIC_TURN_BYTES_TO_CLIENT, bytes);
}


ngx_int_t
ngx_teleclinic_turn_write(ngx_teleclinic_turn_session_t *ts)
{
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    c = ts->connection;
    b = ts->out;

    while (b->pos < b->last) {
        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (n == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        b->pos += n;
    }

    b->pos = b->start;
    b->last = b->start;

    return NGX_OK;
}


/* the next port is free when a socket can bind it now */

static ngx_uint_t
ngx_teleclinic_turn_port_free(ngx_sockaddr_t *local, socklen_t socklen,
    ngx_uint_t port)
{
    ngx_uint_t      ok;
    ngx_socket_t    s;
    ngx_sockaddr_t  sa;

    s = ngx_socket(local->sockaddr.sa_family, SOCK_DGRAM, 0);
    if (s == (ngx_socket_t) -1) {
        return 0;
    }

    ngx_memcpy(&sa, local, socklen);
    ngx_inet_set_port(&sa.sockaddr, (in_port_t) port);

    ok = (bind(s, &sa.sockaddr, socklen) == 0);

    (void) ngx_close_socket(s);

    return ok;
}


static ngx_int_t
ngx_teleclinic_turn_reserve(ngx_teleclinic_turn_conf_t *conf,
    ngx_teleclinic_turn_alloc_t *a, ngx_uint_t port)
{
    time_t                              now;
    ngx_uint_t                          i;
    ngx_slab_pool_t                    *shpool;
    ngx_teleclinic_turn_shctx_t        *sh;
    ngx_teleclinic_turn_reservation_t  *r;

    shpool = (ngx_slab_pool_t *) conf->zone->shm.addr;
    sh = conf->zone->data;
    now = ngx_time();

    if (RAND_bytes(a->token, NGX_TELECLINIC_TURN_TOKEN_LEN) != 1) {
        return NGX_ERROR;
    }

    r = NULL;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < NGX_TELECLINIC_TURN_RESERVATIONS; i++) {
        if (sh->reservations[i].expires < now) {
            r = &sh->reservations[i];
            ngx_memcpy(r->token, a->token, NGX_TELECLINIC_TURN_TOKEN_LEN);
            r->port = port;
            r->expires = now + NGX_TELECLINIC_TURN_TOKEN_LIFETIME;
            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (r == NULL) {
        return NGX_ERROR;
    }

    a->has_token = 1;

    return NGX_OK;
}


/* the port a token kept, 0 for a token unknown or expired; used once */

static ngx_uint_t
ngx_teleclinic_turn_reservation(ngx_teleclinic_turn_conf_t *conf,
    u_char *token)
{
    time_t                              now;
    ngx_uint_t                          i, port;
    ngx_slab_pool_t                    *shpool;
    ngx_teleclinic_turn_shctx_t        *sh;
    ngx_teleclinic_turn_reservation_t  *r;

    shpool = (ngx_slab_pool_t *) conf->zone->shm.addr;
    sh = conf->zone->data;
    now = ngx_time();
    port = 0;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < NGX_TELECLINIC_TURN_RESERVATIONS; i++) {
        r = &sh->reservations[i];

        if (r->expires >= now
            && ngx_memcmp(r->token, token, NGX_TELECLINIC_TURN_TOKEN_LEN)
               == 0)
        {
            port = r->port;
            r->expires = 0;
            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return port;
}


/* quotas */

static ngx_uint_t
ngx_teleclinic_turn_quota_take(ngx_teleclinic_turn_conf_t *conf,
    ngx_teleclinic_turn_alloc_t *a, ngx_log_t *log)
{
    size_t                        n;
    uint32_t                      hash;
    ngx_uint_t                    code;
    ngx_slab_pool_t              *shpool;
    ngx_rbtree_node_t            *node;
    ngx_teleclinic_turn_user_t   *user;
    ngx_teleclinic_turn_shctx_t  *sh;

    shpool = (ngx_slab_pool_t *) conf->zone->shm.addr;
    sh = conf->zone->data;

    code = 0;

    ngx_shmtx_lock(&shpool->mutex);

    if (conf->total_quota && sh->allocations >= conf->total_quota) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "turn: teleclinic_turn_total_quota %ui reached",
                      conf->total_quota);
        code = 508;
        goto done;
    }

    if (conf->user_quota) {
        hash = ngx_crc32_short(a->username.data, a->username.len);
        user = ngx_teleclinic_turn_user_lookup(sh, &a->username, hash, &node);

        if (user == NULL) {
            n = offsetof(ngx_rbtree_node_t, color)
                + offsetof(ngx_teleclinic_turn_user_t, data)
                + a->username.len;

            node = ngx_slab_alloc_locked(shpool, n);

            if (node == NULL) {
                ngx_log_error(NGX_LOG_ERR, log, 0,
                              "turn: the teleclinic_turn zone is full");
                code = 508;
                goto done;
            }

            user = (ngx_teleclinic_turn_user_t *) &node->color;

            node->key = hash;
            user->len = (u_short) a->username.len;
            user->count = 0;
            ngx_memcpy(user->data, a->username.data, a->username.len);

            ngx_rbtree_insert(&sh->rbtree, node);
        }

        if (user->count >= conf->user_quota) {
            code = 486;
            goto done;
        }

        user->count++;
        a->user_counted = 1;
    }

    sh->allocations++;

done:

    ngx_shmtx_unlock(&shpool->mutex);

    return code;
}


static void
ngx_teleclinic_turn_quota_release(ngx_shm_zone_t *shm_zone,
    ngx_teleclinic_turn_alloc_t *a)
{
    uint32_t                      hash;
    ngx_slab_pool_t              *shpool;
    ngx_rbtree_node_t            *node;
    ngx_teleclinic_turn_user_t   *user;
    ngx_teleclinic_turn_shctx_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shm_zone->data;

    ngx_shmtx_lock(&shpool->mutex);

    if (a->user_counted) {
        hash = ngx_crc32_short(a->username.data, a->username.len);
        user = ngx_teleclinic_turn_user_lookup(sh, &a->username, hash, &node);

        if (user && --user->count == 0) {
            ngx_rbtree_delete(&sh->rbtree, node);
            ngx_slab_free_locked(shpool, node);
        }

        a->user_counted = 0;
    }

    if (sh->allocations) {
        sh->allocations--;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


static ngx_teleclinic_turn_user_t *
ngx_teleclinic_turn_user_lookup(ngx_teleclinic_turn_shctx_t *sh,
    ngx_str_t *name, uint32_t hash, ngx_rbtree_node_t **found)
{
    ngx_int_t                    rc;
    ngx_rbtree_node_t           *node, *sentinel;
    ngx_teleclinic_turn_user_t  *user;

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        user = (ngx_teleclinic_turn_user_t *) &node->color;

        rc = ngx_memn2cmp(name->data, user->data, name->len,
                          (size_t) user->len);

        if (rc == 0) {
            *found = node;
            return user;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    *found = NULL;

    return NULL;
}


static void
ngx_teleclinic_turn_user_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t          **p;
    ngx_teleclinic_turn_user_t  *u, *ut;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            u = (ngx_teleclinic_turn_user_t *) &node->color;
            ut = (ngx_teleclinic_turn_user_t *) &temp->color;

            p = (ngx_memn2cmp(u->data, ut->data, u->len, ut->len) < 0)
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


/*
 * Reload.  With "listen ... udp reuseport" the new worker number k reads
 * the very socket that the old worker k read (nginx matches the cloned
 * listening sockets of the two cycles in order, and the master keeps
 * them open), so the kernel goes on sending a client's datagrams to
 * slot k.  The old worker hands each UDP allocation over to the new
 * worker k: the relay socket with SCM_RIGHTS, its state in the same
 * datagram, to the new worker's inbox, an abstract AF_UNIX name with
 * its pid, which the zone lists by worker number.  Until the new worker
 * is up, the old one tries again every few milliseconds, for 2 s; what
 * it cannot hand over ends as before a reload could carry it.
 */

static ngx_int_t
ngx_teleclinic_turn_inbox_open(ngx_cycle_t *cycle)
{
    socklen_t            len;
    ngx_socket_t         s;
    ngx_connection_t    *c;
    struct sockaddr_un   sun;

    s = ngx_socket(AF_UNIX, SOCK_DGRAM, 0);

    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, ngx_socket_errno,
                      "turn: inbox socket() failed");
        return NGX_ERROR;
    }

    ngx_memzero(&sun, sizeof(struct sockaddr_un));
    sun.sun_family = AF_UNIX;

    len = offsetof(struct sockaddr_un, sun_path) + 1
          + (ngx_sprintf((u_char *) sun.sun_path + 1, "teleclinic_turn:%P",
                         ngx_pid)
             - (u_char *) sun.sun_path - 1);

    if (bind(s, (struct sockaddr *) &sun, len) == -1) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, ngx_socket_errno,
                      "turn: inbox bind() failed");
        goto failed;
    }

    if (ngx_nonblocking(s) == -1) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, ngx_socket_errno,
                      ngx_nonblocking_n " failed");
        goto failed;
    }

    c = ngx_get_connection(s, cycle->log);

    if (c == NULL) {
        goto failed;
    }

    c->type = SOCK_DGRAM;
    c->read->handler = ngx_teleclinic_turn_inbox_handler;
    c->read->log = cycle->log;
    c->write->log = cycle->log;
    c->write->ready = 1;

    /* worker shutdown calls the read handler with c->close: the hook */
    c->idle = 1;

    if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_close_connection(c);
        return NGX_ERROR;
    }

    ngx_teleclinic_turn_inbox = c;

    return NGX_OK;

failed:

    if (ngx_close_socket(s) == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_socket_errno,
                      ngx_close_socket_n " failed");
    }

    return NGX_ERROR;
}


/* the allocation stops relaying and waits for the new worker */

static ngx_int_t
ngx_teleclinic_turn_leave(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_turn_alloc_t *a)
{
    if (ngx_teleclinic_turn_detach(ts, a) != NGX_OK) {
        return NGX_DECLINED;
    }

    a->session = NULL;
    a->pool->log = ngx_cycle->log;

    /*
     * what peers send waits in the relay socket for the new worker;
     * the event is deleted from epoll here, for the socket outlives
     * this worker's descriptor
     */

    if (a->relay->read->active
        && ngx_del_event(a->relay->read, NGX_READ_EVENT, 0) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    a->relay->log = ngx_cycle->log;
    a->relay->read->log = ngx_cycle->log;
    a->relay->write->log = ngx_cycle->log;

    ngx_queue_insert_tail(&ngx_teleclinic_turn_leaving, &a->queue);

    /*
     * a timer, not a posted event: a worker that shuts down exits as
     * soon as no timer holds it, before it runs posted events
     */

    if (!ngx_teleclinic_turn_handoff_event.timer_set) {
        ngx_teleclinic_turn_handoff_until = ngx_current_msec
                                        + NGX_TELECLINIC_TURN_HANDOFF_TIME;
        ngx_add_timer(&ngx_teleclinic_turn_handoff_event, 1);
    }

    return NGX_OK;
}


static void
ngx_teleclinic_turn_handoff_handler(ngx_event_t *ev)
{
    ngx_int_t                     rc;
    ngx_pid_t                     pid;
    ngx_queue_t                  *q;
    ngx_teleclinic_turn_alloc_t  *a;

    pid = (ngx_pid_t) ngx_teleclinic_turn_sh->workers[ngx_worker];

    while (!ngx_queue_empty(&ngx_teleclinic_turn_leaving)) {

        if ((ngx_msec_int_t) (ngx_teleclinic_turn_handoff_until
                              - ngx_current_msec) <= 0)
        {
            ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                          "turn: no new worker %ui took the allocations",
                          ngx_worker);
            ngx_teleclinic_turn_exit_worker((ngx_cycle_t *) ngx_cycle);
            return;
        }

        /* the new worker is not up yet */

        if (pid == 0 || pid == ngx_pid) {
            break;
        }

        q = ngx_queue_head(&ngx_teleclinic_turn_leaving);
        a = ngx_queue_data(q, ngx_teleclinic_turn_alloc_t, queue);

        rc = ngx_teleclinic_turn_handoff(a, pid);

        if (rc == NGX_AGAIN) {
            break;
        }

        if (rc == NGX_ERROR) {
            ngx_teleclinic_turn_orphan_free(a);
            continue;
        }

        /* the new worker holds the socket and the counts now */

        ngx_queue_remove(&a->queue);
        ngx_close_connection(a->relay);
        ngx_destroy_pool(a->pool);
    }

    if (!ngx_queue_empty(&ngx_teleclinic_turn_leaving)) {
        ngx_add_timer(ev, NGX_TELECLINIC_TURN_HANDOFF_RETRY);
    }
}


static ngx_int_t
ngx_teleclinic_turn_handoff(ngx_teleclinic_turn_alloc_t *a, ngx_pid_t pid)
{
    ssize_t                         n;
    ngx_err_t                       err;
    socklen_t                       len;
    struct iovec                    iov;
    struct msghdr                   msg;
    struct cmsghdr                 *cmsg;
    struct sockaddr_un              sun;
    ngx_teleclinic_turn_handoff_t  *h;

    union {
        struct cmsghdr              cm;
        char                        space[CMSG_SPACE(sizeof(int))];
    } cmsgbuf;

    h = &ngx_teleclinic_turn_msg;

    ngx_memzero(h, sizeof(ngx_teleclinic_turn_handoff_t));

    ngx_memcpy(&h->client, &a->client, a->client_len);
    ngx_memcpy(&h->local, &a->local, a->local_len);
    ngx_memcpy(&h->listen, &a->listen, a->listen_len);
    ngx_memcpy(&h->relayed, &a->relayed, a->relayed_len);
    h->client_len = a->client_len;
    h->local_len = a->local_len;
    h->listen_len = a->listen_len;
    h->relayed_len = a->relayed_len;

    ngx_memcpy(h->tid, a->tid, NGX_TELECLINIC_STUN_TID_LEN);
    ngx_memcpy(h->token, a->token, NGX_TELECLINIC_TURN_TOKEN_LEN);

    h->expires = a->expires;
    h->bw_last = a->bw_last;
    h->bw_tokens = a->bw_tokens;
    h->user_counted = a->user_counted;
    h->has_token = a->has_token;

    h->nperms = a->nperms;
    h->nchannels = a->nchannels;
    ngx_memcpy(h->perms, a->perms, sizeof(a->perms));
    ngx_memcpy(h->channels, a->channels, sizeof(a->channels));

    h->username_len = a->username.len;
    ngx_memcpy(h->username, a->username.data, a->username.len);

    ngx_memzero(&sun, sizeof(struct sockaddr_un));
    sun.sun_family = AF_UNIX;

    len = offsetof(struct sockaddr_un, sun_path) + 1
          + (ngx_sprintf((u_char *) sun.sun_path + 1, "teleclinic_turn:%P",
                         pid)
             - (u_char *) sun.sun_path - 1);

    iov.iov_base = h;
    iov.iov_len = sizeof(ngx_teleclinic_turn_handoff_t);

    ngx_memzero(&cmsgbuf, sizeof(cmsgbuf));
    ngx_memzero(&msg, sizeof(struct msghdr));

    msg.msg_name = &sun;
    msg.msg_namelen = len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = &cmsgbuf;
    msg.msg_controllen = sizeof(cmsgbuf);

    cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    ngx_memcpy(CMSG_DATA(cmsg), &a->relay->fd, sizeof(int));

    n = sendmsg(ngx_teleclinic_turn_inbox->fd, &msg, 0);

    if (n == (ssize_t) sizeof(ngx_teleclinic_turn_handoff_t)) {
        return NGX_OK;
    }

    err = ngx_socket_errno;

    /* a full inbox, or a new worker that is gone: the next may come */

    if (n == -1
        && (err == NGX_EAGAIN || err == ENOBUFS || err == NGX_ECONNREFUSED
            || err == NGX_ENOENT))
    {
        return NGX_AGAIN;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, err,
                  "turn: sendmsg() of an allocation to worker %P failed",
                  pid);

    return NGX_ERROR;
}


static void
ngx_teleclinic_turn_inbox_handler(ngx_event_t *rev)
{
    ngx_queue_t                  *q;
    ngx_connection_t             *c;
    ngx_teleclinic_turn_alloc_t  *a;

    c = rev->data;

    if (c->close) {

        /*
         * this worker shuts down: what it adopted and no client claimed
         * goes on to the next worker; the socket stays for sending
         */

        c->close = 0;
        c->idle = 0;

        if (ngx_del_event(rev, NGX_READ_EVENT, 0) != NGX_OK
            || ngx_teleclinic_turn_sh->generation
               == ngx_teleclinic_turn_generation)
        {
            /* a stop: exit_worker ends them */
            return;
        }

        while (!ngx_queue_empty(&ngx_teleclinic_turn_orphans)) {
            q = ngx_queue_head(&ngx_teleclinic_turn_orphans);
            a = ngx_queue_data(q, ngx_teleclinic_turn_alloc_t, queue);
            ngx_queue_remove(q);

            if (ngx_worker >= NGX_TELECLINIC_TURN_WORKERS
                || (a->relay->read->active
                    && ngx_del_event(a->relay->read, NGX_READ_EVENT, 0)
                       != NGX_OK))
            {
                ngx_queue_insert_tail(&ngx_teleclinic_turn_orphans, q);
                ngx_teleclinic_turn_orphan_free(a);
                continue;
            }

            ngx_queue_insert_tail(&ngx_teleclinic_turn_leaving, q);
        }

        if (!ngx_queue_empty(&ngx_teleclinic_turn_leaving)
            && !ngx_teleclinic_turn_handoff_event.timer_set)
        {
            ngx_teleclinic_turn_handoff_until = ngx_current_msec
                                        + NGX_TELECLINIC_TURN_HANDOFF_TIME;
            ngx_add_timer(&ngx_teleclinic_turn_handoff_event, 1);
        }

        return;
    }

    (void) ngx_teleclinic_turn_inbox_read(c);
}


/*
 * Reads what waits in the inbox: allocations, the new worker's one
 * byte "h", the old worker's "d" after its allocations (NGX_DONE)
 */

static ngx_int_t
ngx_teleclinic_turn_inbox_read(ngx_connection_t *c)
{
    int                   fd;
    ssize_t               n;
    ngx_pid_t             pid;
    struct iovec          iov;
    struct msghdr         msg;
    struct cmsghdr       *cmsg;

    union {
        struct cmsghdr    cm;
        char              space[CMSG_SPACE(sizeof(int))];
    } cmsgbuf;

    for ( ;; ) {
        iov.iov_base = &ngx_teleclinic_turn_msg;
        iov.iov_len = sizeof(ngx_teleclinic_turn_handoff_t);

        ngx_memzero(&msg, sizeof(struct msghdr));
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = &cmsgbuf;
        msg.msg_controllen = sizeof(cmsgbuf);

        n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC);

        if (n == -1) {
            if (ngx_socket_errno == NGX_EINTR) {
                continue;
            }

            if (ngx_socket_errno != NGX_EAGAIN) {
                ngx_log_error(NGX_LOG_ERR, c->log, ngx_socket_errno,
                              "turn: inbox recvmsg() failed");
            }

            return NGX_OK;
        }

        fd = -1;

        for (cmsg = CMSG_FIRSTHDR(&msg);
             cmsg;
             cmsg = CMSG_NXTHDR(&msg, cmsg))
        {
            if (cmsg->cmsg_level == SOL_SOCKET
                && cmsg->cmsg_type == SCM_RIGHTS
                && cmsg->cmsg_len == CMSG_LEN(sizeof(int)))
            {
                ngx_memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
            }
        }

        if (fd == -1) {

            if (n != 1 || ngx_worker >= NGX_TELECLINIC_TURN_WORKERS) {
                continue;
            }

            if (*(u_char *) &ngx_teleclinic_turn_msg == 'd') {
                return NGX_DONE;
            }

            /* the new worker of this number is up, and waits */

            pid = (ngx_pid_t) ngx_teleclinic_turn_sh->workers[ngx_worker];

            if (pid != ngx_pid) {
                ngx_teleclinic_turn_early_pid = pid;
                ngx_teleclinic_turn_early_tries = 0;
                ngx_teleclinic_turn_early_handler(
                                            &ngx_teleclinic_turn_early_event);
            }

            continue;
        }

        if (n != (ssize_t) sizeof(ngx_teleclinic_turn_handoff_t)
            || (msg.msg_flags & (MSG_TRUNC|MSG_CTRUNC)))
        {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "turn: a handed over allocation is malformed");
            (void) ngx_close_socket(fd);
            continue;
        }

        ngx_teleclinic_turn_adopt(&ngx_teleclinic_turn_msg, fd);
    }
}


static void
ngx_teleclinic_turn_adopt(ngx_teleclinic_turn_handoff_t *h, ngx_socket_t fd)
{
    ngx_uint_t                    i;
    ngx_pool_t                   *pool;
    ngx_listening_t              *ls;
    ngx_connection_t             *rc;
    ngx_teleclinic_turn_conf_t   *conf;
    ngx_teleclinic_turn_alloc_t  *a, tmp;

    /* this worker's copy of the listening socket the client writes to */

    ls = ngx_cycle->listening.elts;
    conf = NULL;

    for (i = 0; i < ngx_cycle->listening.nelts; i++) {

        if (ls[i].type != SOCK_DGRAM
            || (ls[i].reuseport && ls[i].worker != ngx_worker)
            || ls[i].fd == (ngx_socket_t) -1
            || ngx_cmp_sockaddr(ls[i].sockaddr, ls[i].socklen,
                                &h->listen.sockaddr, h->listen_len, 1)
               != NGX_OK)
        {
            continue;
        }

        conf = ngx_teleclinic_turn_find_conf(&ls[i], &h->local.sockaddr);
        break;
    }

    pool = NULL;

    if (conf == NULL || h->username_len > NGX_TELECLINIC_TURN_USERNAME_MAX) {
        goto failed;
    }

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        goto failed;
    }

    a = ngx_pcalloc(pool, sizeof(ngx_teleclinic_turn_alloc_t));
    if (a == NULL) {
        goto failed;
    }

    a->pool = pool;
    a->conf = conf;
    a->listen_fd = ls[i].wildcard ? (ngx_socket_t) -1 : ls[i].fd;

    ngx_memcpy(&a->client, &h->client, h->client_len);
    ngx_memcpy(&a->local, &h->local, h->local_len);
    ngx_memcpy(&a->listen, &h->listen, h->listen_len);
    ngx_memcpy(&a->relayed, &h->relayed, h->relayed_len);
    a->client_len = h->client_len;
    a->local_len = h->local_len;
    a->listen_len = h->listen_len;
    a->relayed_len = h->relayed_len;

    ngx_memcpy(a->tid, h->tid, NGX_TELECLINIC_STUN_TID_LEN);
    ngx_memcpy(a->token, h->token, NGX_TELECLINIC_TURN_TOKEN_LEN);

    a->expires = h->expires;
    a->bw_last = h->bw_last;
    a->bw_tokens = h->bw_tokens;
    a->user_counted = h->user_counted ? 1 : 0;
    a->has_token = h->has_token ? 1 : 0;

    a->nperms = ngx_min(h->nperms, NGX_TELECLINIC_TURN_PERMISSIONS);
    a->nchannels = ngx_min(h->nchannels, NGX_TELECLINIC_TURN_CHANNELS);
    ngx_memcpy(a->perms, h->perms, sizeof(a->perms));
    ngx_memcpy(a->channels, h->channels, sizeof(a->channels));

    a->username.len = h->username_len;
    a->username.data = ngx_pnalloc(pool, h->username_len + 1);
    if (a->username.data == NULL) {
        goto failed;
    }

    ngx_memcpy(a->username.data, h->username, h->username_len);

    rc = ngx_get_connection(fd, ngx_cycle->log);
    if (rc == NULL) {
        goto failed;
    }

    rc->data = a;
    rc->type = SOCK_DGRAM;
    rc->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    rc->start_time = ngx_current_msec;

    rc->read->handler = ngx_teleclinic_turn_relay_handler;
    rc->read->log = ngx_cycle->log;
    rc->write->log = ngx_cycle->log;
    rc->write->ready = 1;

    if (ngx_add_event(rc->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_close_connection(rc);
        ngx_destroy_pool(pool);
        return;
    }

    a->relay = rc;

    ngx_queue_insert_tail(&ngx_teleclinic_turn_orphans, &a->queue);

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, ngx_cycle->log, 0,
                   "turn: adopted an allocation, relay fd:%d", fd);

    return;

failed:

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "turn: a handed over allocation cannot be adopted");

    (void) ngx_close_socket(fd);

    /* its counts go */

    ngx_memzero(&tmp, sizeof(ngx_teleclinic_turn_alloc_t));
    tmp.user_counted = h->user_counted ? 1 : 0;
    tmp.username.len = ngx_min(h->username_len,
                               NGX_TELECLINIC_TURN_USERNAME_MAX);
    tmp.username.data = h->username;

    ngx_teleclinic_turn_quota_release(ngx_teleclinic_turn_shm, &tmp);

    if (pool) {
        ngx_destroy_pool(pool);
    }
}


/* an allocation without a session ends */

static void
ngx_teleclinic_turn_orphan_free(ngx_teleclinic_turn_alloc_t *a)
{
    ngx_queue_remove(&a->queue);

    if (a->relay) {
        ngx_close_connection(a->relay);
    }

    ngx_teleclinic_turn_quota_release(ngx_teleclinic_turn_shm, a);

    ngx_destroy_pool(a->pool);
}


void
ngx_teleclinic_turn_claim(ngx_teleclinic_turn_session_t *ts)
{
    ngx_queue_t                  *q;
    ngx_connection_t             *c;
    ngx_teleclinic_turn_alloc_t  *a;

    if (ngx_queue_empty(&ngx_teleclinic_turn_orphans)) {
        return;
    }

    c = ts->connection;

    if (ngx_connection_local_sockaddr(c, NULL, 0) != NGX_OK) {
        return;
    }

    for (q = ngx_queue_head(&ngx_teleclinic_turn_orphans);
         q != ngx_queue_sentinel(&ngx_teleclinic_turn_orphans);
         q = ngx_queue_next(q))
    {
        a = ngx_queue_data(q, ngx_teleclinic_turn_alloc_t, queue);

        if (ngx_cmp_sockaddr(c->sockaddr, c->socklen,
                             &a->client.sockaddr, a->client_len, 1)
            != NGX_OK
            || ngx_cmp_sockaddr(c->local_sockaddr, c->local_socklen,
                                &a->local.sockaddr, a->local_len, 1)
               != NGX_OK)
        {
            continue;
        }

        ngx_queue_remove(q);

        a->session = ts;
        a->conf = ts->conf;
        ts->alloc = a;

        ngx_queue_insert_tail(&ngx_teleclinic_turn_active, &a->active);
        a->in_active = 1;

        ngx_log_debug0(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "turn: adopted allocation claimed");
        return;
    }
}


/*
 * Datagrams from peers for an adopted allocation whose client has not
 * written to this worker yet: they leave from this worker's listening
 * socket.  On a wildcard address the source address could be wrong, so
 * they wait for the client's session there.
 */

static void
ngx_teleclinic_turn_to_orphan(ngx_teleclinic_turn_alloc_t *a,
    struct mmsghdr *out, ngx_uint_t n)
{
    int         i, sent;
    size_t      bytes;

    if (a->listen_fd == (ngx_socket_t) -1) {
        return;
    }

    for (i = 0; i < (int) n; i++) {
        out[i].msg_hdr.msg_name = &a->client;
        out[i].msg_hdr.msg_namelen = a->client_len;
        out[i].msg_hdr.msg_iov = &ngx_teleclinic_turn_out_iov[i];
        out[i].msg_hdr.msg_iovlen = 1;
        out[i].msg_hdr.msg_control = NULL;
        out[i].msg_hdr.msg_controllen = 0;
        out[i].msg_hdr.msg_flags = 0;
    }

    sent = sendmmsg(a->listen_fd, out, n, 0);

    if (sent == -1) {
        sent = 0;
    }

    bytes = 0;

    for (i = 0; i < sent; i++) {
        bytes += ngx_teleclinic_turn_out_len[i];
    }

    ngx_teleclinic_turn_count(NGX_TELECLINIC_TURN_PACKETS_TO_CLIENT, sent);
    ngx_teleclinic_turn_count(NGX_TELECLINIC_TURN_BYTES_TO_CLIENT, bytes);
}


/* the addresses of the client's 5-tuple, kept for the new worker */

static ngx_int_t
ngx_teleclinic_turn_detach(ngx_teleclinic_turn_session_t *ts,
    ngx_teleclinic_turn_alloc_t *a)
{
    ngx_connection_t  *c;

    c = ts->connection;

    /* a stop, not a reload: no new worker comes */

    if (ngx_teleclinic_turn_inbox == NULL
        || ngx_teleclinic_turn_sh->generation == ngx_teleclinic_turn_generation
        || ngx_worker >= NGX_TELECLINIC_TURN_WORKERS
        || a->username.len > NGX_TELECLINIC_TURN_USERNAME_MAX
        || c->listening == NULL
        || ngx_connection_local_sockaddr(c, NULL, 0) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    a->client_len = c->socklen;
    ngx_memcpy(&a->client, c->sockaddr, c->socklen);
    a->local_len = c->local_socklen;
    ngx_memcpy(&a->local, c->local_sockaddr, c->local_socklen);
    a->listen_len = c->listening->socklen;
    ngx_memcpy(&a->listen, c->listening->sockaddr, c->listening->socklen);

    return NGX_OK;
}


/*
 * The new worker is up while this one still reads the client: each UDP
 * allocation goes over now.  This worker keeps its descriptor to send
 * what the client relays; the new worker reads the peers and answers
 * the requests (this one drops them: the client sends them again).
 */

static void
ngx_teleclinic_turn_early_handler(ngx_event_t *ev)
{
    ngx_pid_t  pid;

    pid = ngx_teleclinic_turn_early_pid;

    /*
     * the new worker's inbox holds a few datagrams (net.unix.
     * max_dgram_qlen) until it reads them: the rest go a moment later;
     * "d" tells it that all went
     */

    if ((ngx_teleclinic_turn_hand_early(pid) == NGX_AGAIN
         || ngx_teleclinic_turn_inbox_send(pid, "d", 1) != NGX_OK)
        && ngx_teleclinic_turn_early_tries++ < 1000
        && !ngx_exiting)
    {
        ngx_add_timer(ev, 1);
    }
}


static ngx_int_t
ngx_teleclinic_turn_hand_early(ngx_pid_t pid)
{
    ngx_int_t                     rc;
    ngx_uint_t                    n;
    ngx_queue_t                  *q;
    ngx_teleclinic_turn_alloc_t  *a;

    if (pid == 0 || pid == ngx_pid) {
        return NGX_OK;
    }

    n = 0;

    for (q = ngx_queue_head(&ngx_teleclinic_turn_active);
         q != ngx_queue_sentinel(&ngx_teleclinic_turn_active);
         q = ngx_queue_next(q))
    {
        a = ngx_queue_data(q, ngx_teleclinic_turn_alloc_t, active);

        if (a->handed
            || (ngx_msec_int_t) (a->expires - ngx_current_msec) <= 0
            || ngx_teleclinic_turn_detach(a->session, a) != NGX_OK)
        {
            continue;
        }

        /* what does not go now goes when this worker quits */

        rc = ngx_teleclinic_turn_handoff(a, pid);

        if (rc == NGX_AGAIN) {
            break;
        }

        if (rc != NGX_OK) {
            continue;
        }

        /* both may read a datagram or two meanwhile: either relays it */

        if (a->relay->read->active
            && ngx_del_event(a->relay->read, NGX_READ_EVENT, 0) != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "turn: relay socket event not deleted");
        }

        a->handed = 1;
        n++;
    }

    rc = (q == ngx_queue_sentinel(&ngx_teleclinic_turn_active))
         ? NGX_OK : NGX_AGAIN;

    /* those adopted at the last reload that no client claimed go whole */

    while (rc == NGX_OK && !ngx_queue_empty(&ngx_teleclinic_turn_orphans)) {
        q = ngx_queue_head(&ngx_teleclinic_turn_orphans);
        a = ngx_queue_data(q, ngx_teleclinic_turn_alloc_t, queue);

        rc = ngx_teleclinic_turn_handoff(a, pid);

        if (rc == NGX_AGAIN) {
            break;
        }

        if (rc == NGX_OK) {
            if (a->relay->read->active) {
                (void) ngx_del_event(a->relay->read, NGX_READ_EVENT, 0);
            }

            ngx_queue_remove(q);
            ngx_close_connection(a->relay);
            ngx_destroy_pool(a->pool);
            n++;
            continue;
        }

        /* it stays, for the handoff when this worker quits */

        ngx_queue_remove(q);
        ngx_queue_insert_tail(&ngx_teleclinic_turn_orphans, q);
        rc = NGX_OK;
        break;
    }

    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "turn: %ui allocations handed to worker %P", n, pid);
    }

    return rc;
}


static ngx_int_t
ngx_teleclinic_turn_inbox_send(ngx_pid_t pid, void *data, size_t len)
{
    socklen_t           slen;
    struct sockaddr_un  sun;

    ngx_memzero(&sun, sizeof(struct sockaddr_un));
    sun.sun_family = AF_UNIX;

    slen = offsetof(struct sockaddr_un, sun_path) + 1
           + (ngx_sprintf((u_char *) sun.sun_path + 1, "teleclinic_turn:%P",
                          pid)
              - (u_char *) sun.sun_path - 1);

    /* a worker that is gone, or busy: the handoff at its exit remains */

    if (sendto(ngx_teleclinic_turn_inbox->fd, data, len, 0,
               (struct sockaddr *) &sun, slen)
        != (ssize_t) len)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}
