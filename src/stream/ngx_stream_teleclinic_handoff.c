
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <poll.h>
#include "ngx_stream_teleclinic.h"


/*
 * The reload handoff of UDP allocations from an old worker to the new
 * worker of the same number, and the worker's own life: its start, its
 * exit, and the timer that flushes its counters into the zone.
 */


/* how often a worker adds its counters to the zone's */
#define NGX_STREAM_TELECLINIC_FLUSH          1000

/*
 * Reload: a UDP allocation goes from the old worker to the new worker
 * of the same number, which reads the same reuseport socket; the new
 * worker may not be up yet when the old one is told to quit
 */
#define NGX_STREAM_TELECLINIC_HANDOFF_RETRY  10
#define NGX_STREAM_TELECLINIC_HANDOFF_TIME   2000
#define NGX_STREAM_TELECLINIC_USERNAME_MAX   513

/* a new worker waits this long (ms) at most for the old one's answer */
#define NGX_STREAM_TELECLINIC_WAIT           50
#define NGX_STREAM_TELECLINIC_WAIT_ROUNDS    4096


/* an allocation as it goes to the new worker, with its relay socket */

typedef struct {
    ngx_sockaddr_t                   client;
    ngx_sockaddr_t                   local;
    ngx_sockaddr_t                   listen;
    ngx_sockaddr_t                   relayed;
    socklen_t                        client_len;
    socklen_t                        local_len;
    socklen_t                        listen_len;
    socklen_t                        relayed_len;

    u_char                           tid[NGX_TELECLINIC_STUN_TID_LEN];
    u_char                           token[NGX_TELECLINIC_TURN_TOKEN_LEN];

    ngx_msec_t                       expires;
    ngx_msec_t                       bw_last;
    size_t                           bw_tokens;

    ngx_uint_t                       user_counted;
    ngx_uint_t                       has_token;

    ngx_uint_t                       nperms;
    ngx_uint_t                       nchannels;
    ngx_stream_teleclinic_perm_t     perms[NGX_STREAM_TELECLINIC_PERMISSIONS];
    ngx_stream_teleclinic_channel_t  channels[NGX_STREAM_TELECLINIC_CHANNELS];

    size_t                           username_len;
    u_char                           username[
                                         NGX_STREAM_TELECLINIC_USERNAME_MAX];
} ngx_stream_teleclinic_handoff_t;


static void ngx_stream_teleclinic_flush_handler(ngx_event_t *ev);
static ngx_int_t ngx_stream_teleclinic_inbox_open(ngx_cycle_t *cycle);
static void ngx_stream_teleclinic_handoff_handler(ngx_event_t *ev);
static ngx_int_t ngx_stream_teleclinic_handoff_send(
    ngx_stream_teleclinic_alloc_t *a, ngx_pid_t pid);
static void ngx_stream_teleclinic_inbox_handler(ngx_event_t *rev);
static ngx_int_t ngx_stream_teleclinic_inbox_read(ngx_connection_t *c);
static void ngx_stream_teleclinic_handoff_adopt(
    ngx_stream_teleclinic_handoff_t *h, ngx_socket_t fd);
static void ngx_stream_teleclinic_handoff_done(
    ngx_stream_teleclinic_alloc_t *a);
static void ngx_stream_teleclinic_orphan_free(
    ngx_stream_teleclinic_alloc_t *a);
static ngx_int_t ngx_stream_teleclinic_handoff_detach(
    ngx_stream_teleclinic_session_t *ts,
    ngx_stream_teleclinic_alloc_t *a);
static void ngx_stream_teleclinic_handoff_early_handler(ngx_event_t *ev);
static ngx_int_t ngx_stream_teleclinic_handoff_early(ngx_pid_t pid);
static ngx_int_t ngx_stream_teleclinic_inbox_send(ngx_pid_t pid, void *data,
    size_t len);


static ngx_event_t         ngx_stream_teleclinic_flush_event;

/*
 * reload: allocations on their way to the new worker, and those adopted
 * from the old one that no session has claimed yet; the inbox is the
 * worker's AF_UNIX socket for both ways
 */
static ngx_queue_t         ngx_stream_teleclinic_leaving;
static ngx_queue_t         ngx_stream_teleclinic_orphans;
static ngx_queue_t         ngx_stream_teleclinic_active;
static ngx_event_t         ngx_stream_teleclinic_handoff_event;
static ngx_connection_t   *ngx_stream_teleclinic_inbox;
static ngx_msec_t          ngx_stream_teleclinic_handoff_until;
static ngx_event_t         ngx_stream_teleclinic_early_event;
static ngx_pid_t           ngx_stream_teleclinic_early_pid;
static ngx_uint_t          ngx_stream_teleclinic_early_tries;
static ngx_stream_teleclinic_find_conf_pt
                           ngx_stream_teleclinic_handoff_find_conf;
static ngx_stream_teleclinic_handoff_t     ngx_stream_teleclinic_msg;


ngx_int_t
ngx_stream_teleclinic_handoff_init_worker(ngx_cycle_t *cycle,
    ngx_stream_teleclinic_find_conf_pt find_conf)
{
    ngx_uint_t      i;
    ngx_pid_t       prev;
    ngx_event_t    *ev;
    struct pollfd   pfd;

    ngx_queue_init(&ngx_stream_teleclinic_leaving);
    ngx_queue_init(&ngx_stream_teleclinic_orphans);
    ngx_queue_init(&ngx_stream_teleclinic_active);

    if (ngx_teleclinic_turn_init_worker(cycle) != NGX_OK) {
        return NGX_OK;
    }

    ngx_stream_teleclinic_handoff_find_conf = find_conf;

    ngx_stream_teleclinic_relay_init_worker();

    ev = &ngx_stream_teleclinic_flush_event;

    ev->handler = ngx_stream_teleclinic_flush_handler;
    ev->log = cycle->log;
    ev->data = cycle;

    /* a worker that shuts down need not wait for it */
    ev->cancelable = 1;

    ngx_add_timer(ev, NGX_STREAM_TELECLINIC_FLUSH);

    ev = &ngx_stream_teleclinic_early_event;

    ev->handler = ngx_stream_teleclinic_handoff_early_handler;
    ev->log = cycle->log;
    ev->data = cycle;
    ev->cancelable = 1;

    ev = &ngx_stream_teleclinic_handoff_event;

    ev->handler = ngx_stream_teleclinic_handoff_handler;
    ev->log = cycle->log;
    ev->data = cycle;

    /* without a socket, a reload ends the allocations, as it did before */

    if (ngx_stream_teleclinic_inbox_open(cycle) != NGX_OK) {
        return NGX_OK;
    }

    if (ngx_worker < NGX_TELECLINIC_TURN_WORKERS) {
        prev = ngx_teleclinic_turn_register(ngx_worker, ngx_pid);

        /*
         * a reload: the old worker of this number hands its allocations
         * over now, not when it is told to quit (the master waits 100 ms
         * between the two, while both workers read the socket); one
         * byte says so
         */

        if (prev && prev != ngx_pid
            && ngx_stream_teleclinic_inbox_send(prev, "h", 1) == NGX_OK)
        {
            /*
             * this worker reads the clients only after it has their
             * allocations: a datagram read before would be dropped
             */

            pfd.fd = ngx_stream_teleclinic_inbox->fd;
            pfd.events = POLLIN;

            for (i = 0; i < NGX_STREAM_TELECLINIC_WAIT_ROUNDS; i++) {
                pfd.revents = 0;

                if (poll(&pfd, 1, NGX_STREAM_TELECLINIC_WAIT) <= 0
                    || ngx_stream_teleclinic_inbox_read(
                                               ngx_stream_teleclinic_inbox)
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
ngx_stream_teleclinic_handoff_exit_worker(ngx_cycle_t *cycle)
{
    ngx_queue_t                    *q;
    ngx_stream_teleclinic_alloc_t  *a;

    /* a stop, or the end of the handoff time: the allocations end */

    while (!ngx_queue_empty(&ngx_stream_teleclinic_leaving)) {
        q = ngx_queue_head(&ngx_stream_teleclinic_leaving);
        a = ngx_queue_data(q, ngx_stream_teleclinic_alloc_t, queue);
        ngx_stream_teleclinic_orphan_free(a);
    }

    while (!ngx_queue_empty(&ngx_stream_teleclinic_orphans)) {
        q = ngx_queue_head(&ngx_stream_teleclinic_orphans);
        a = ngx_queue_data(q, ngx_stream_teleclinic_alloc_t, queue);
        ngx_stream_teleclinic_orphan_free(a);
    }

    if (ngx_stream_teleclinic_inbox) {
        ngx_close_connection(ngx_stream_teleclinic_inbox);
        ngx_stream_teleclinic_inbox = NULL;
    }

    ngx_teleclinic_turn_flush();
}


static void
ngx_stream_teleclinic_flush_handler(ngx_event_t *ev)
{
    ngx_queue_t                    *q, *next;
    ngx_stream_teleclinic_alloc_t  *a;

    ngx_teleclinic_turn_flush();

    /* adopted allocations that no client came back for */

    for (q = ngx_queue_head(&ngx_stream_teleclinic_orphans);
         q != ngx_queue_sentinel(&ngx_stream_teleclinic_orphans);
         q = next)
    {
        next = ngx_queue_next(q);
        a = ngx_queue_data(q, ngx_stream_teleclinic_alloc_t, queue);

        if ((ngx_msec_int_t) (a->expires - ngx_current_msec) <= 0) {
            ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                          "turn: adopted allocation expired");
            ngx_stream_teleclinic_orphan_free(a);
        }
    }

    if (!ngx_exiting) {
        ngx_add_timer(ev, NGX_STREAM_TELECLINIC_FLUSH);
    }
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
ngx_stream_teleclinic_inbox_open(ngx_cycle_t *cycle)
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
    c->read->handler = ngx_stream_teleclinic_inbox_handler;
    c->read->log = cycle->log;
    c->write->log = cycle->log;
    c->write->ready = 1;

    /* worker shutdown calls the read handler with c->close: the hook */
    c->idle = 1;

    if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_close_connection(c);
        return NGX_ERROR;
    }

    ngx_stream_teleclinic_inbox = c;

    return NGX_OK;

failed:

    if (ngx_close_socket(s) == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_socket_errno,
                      ngx_close_socket_n " failed");
    }

    return NGX_ERROR;
}


/* the allocation stops relaying and waits for the new worker */

ngx_int_t
ngx_stream_teleclinic_handoff_leave(ngx_stream_teleclinic_session_t *ts,
    ngx_stream_teleclinic_alloc_t *a)
{
    if (ngx_stream_teleclinic_handoff_detach(ts, a) != NGX_OK) {
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

    ngx_queue_insert_tail(&ngx_stream_teleclinic_leaving, &a->queue);

    /*
     * a timer, not a posted event: a worker that shuts down exits as
     * soon as no timer holds it, before it runs posted events
     */

    if (!ngx_stream_teleclinic_handoff_event.timer_set) {
        ngx_stream_teleclinic_handoff_until = ngx_current_msec
                                        + NGX_STREAM_TELECLINIC_HANDOFF_TIME;
        ngx_add_timer(&ngx_stream_teleclinic_handoff_event, 1);
    }

    return NGX_OK;
}


static void
ngx_stream_teleclinic_handoff_handler(ngx_event_t *ev)
{
    ngx_int_t                       rc;
    ngx_pid_t                       pid;
    ngx_queue_t                    *q;
    ngx_stream_teleclinic_alloc_t  *a;

    pid = ngx_teleclinic_turn_worker_pid(ngx_worker);

    while (!ngx_queue_empty(&ngx_stream_teleclinic_leaving)) {

        if ((ngx_msec_int_t) (ngx_stream_teleclinic_handoff_until
                              - ngx_current_msec) <= 0)
        {
            ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                          "turn: no new worker %ui took the allocations",
                          ngx_worker);
            ngx_stream_teleclinic_handoff_exit_worker(
                                                 (ngx_cycle_t *) ngx_cycle);
            return;
        }

        /* the new worker is not up yet */

        if (pid == 0 || pid == ngx_pid) {
            break;
        }

        q = ngx_queue_head(&ngx_stream_teleclinic_leaving);
        a = ngx_queue_data(q, ngx_stream_teleclinic_alloc_t, queue);

        rc = ngx_stream_teleclinic_handoff_send(a, pid);

        if (rc == NGX_AGAIN) {
            break;
        }

        if (rc == NGX_ERROR) {
            ngx_stream_teleclinic_orphan_free(a);
            continue;
        }

        ngx_stream_teleclinic_handoff_done(a);
    }

    if (!ngx_queue_empty(&ngx_stream_teleclinic_leaving)) {
        ngx_add_timer(ev, NGX_STREAM_TELECLINIC_HANDOFF_RETRY);
    }
}


static ngx_int_t
ngx_stream_teleclinic_handoff_send(ngx_stream_teleclinic_alloc_t *a,
    ngx_pid_t pid)
{
    ssize_t                           n;
    ngx_err_t                         err;
    socklen_t                         len;
    struct iovec                      iov;
    struct msghdr                     msg;
    struct cmsghdr                   *cmsg;
    struct sockaddr_un                sun;
    ngx_stream_teleclinic_handoff_t  *h;

    union {
        struct cmsghdr              cm;
        char                        space[CMSG_SPACE(sizeof(int))];
    } cmsgbuf;

    h = &ngx_stream_teleclinic_msg;

    ngx_memzero(h, sizeof(ngx_stream_teleclinic_handoff_t));

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
    iov.iov_len = sizeof(ngx_stream_teleclinic_handoff_t);

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

    n = sendmsg(ngx_stream_teleclinic_inbox->fd, &msg, 0);

    if (n == (ssize_t) sizeof(ngx_stream_teleclinic_handoff_t)) {
        ngx_log_debug2(NGX_LOG_DEBUG_STREAM, ngx_cycle->log, 0,
                       "turn: allocation handed to worker %P, relay fd:%d",
                       pid, a->relay->fd);
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
ngx_stream_teleclinic_inbox_handler(ngx_event_t *rev)
{
    ngx_queue_t                    *q;
    ngx_connection_t               *c;
    ngx_stream_teleclinic_alloc_t  *a;

    c = rev->data;

    if (c->close) {

        /*
         * this worker shuts down: what it adopted and no client claimed
         * goes on to the next worker; the socket stays for sending
         */

        c->close = 0;
        c->idle = 0;

        if (ngx_del_event(rev, NGX_READ_EVENT, 0) != NGX_OK
            || !ngx_teleclinic_turn_reloaded())
        {
            /* a stop: exit_worker ends them */
            return;
        }

        while (!ngx_queue_empty(&ngx_stream_teleclinic_orphans)) {
            q = ngx_queue_head(&ngx_stream_teleclinic_orphans);
            a = ngx_queue_data(q, ngx_stream_teleclinic_alloc_t, queue);
            ngx_queue_remove(q);

            if (ngx_worker >= NGX_TELECLINIC_TURN_WORKERS
                || (a->relay->read->active
                    && ngx_del_event(a->relay->read, NGX_READ_EVENT, 0)
                       != NGX_OK))
            {
                ngx_queue_insert_tail(&ngx_stream_teleclinic_orphans, q);
                ngx_stream_teleclinic_orphan_free(a);
                continue;
            }

            ngx_queue_insert_tail(&ngx_stream_teleclinic_leaving, q);
        }

        if (!ngx_queue_empty(&ngx_stream_teleclinic_leaving)
            && !ngx_stream_teleclinic_handoff_event.timer_set)
        {
            ngx_stream_teleclinic_handoff_until = ngx_current_msec
                                        + NGX_STREAM_TELECLINIC_HANDOFF_TIME;
            ngx_add_timer(&ngx_stream_teleclinic_handoff_event, 1);
        }

        return;
    }

    (void) ngx_stream_teleclinic_inbox_read(c);
}


/*
 * Reads what waits in the inbox: allocations, the new worker's one
 * byte "h", the old worker's "d" after its allocations (NGX_DONE)
 */

static ngx_int_t
ngx_stream_teleclinic_inbox_read(ngx_connection_t *c)
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
        iov.iov_base = &ngx_stream_teleclinic_msg;
        iov.iov_len = sizeof(ngx_stream_teleclinic_handoff_t);

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

            if (*(u_char *) &ngx_stream_teleclinic_msg == 'd') {
                return NGX_DONE;
            }

            /* the new worker of this number is up, and waits */

            pid = ngx_teleclinic_turn_worker_pid(ngx_worker);

            if (pid != ngx_pid) {
                ngx_stream_teleclinic_early_pid = pid;
                ngx_stream_teleclinic_early_tries = 0;
                ngx_stream_teleclinic_handoff_early_handler(
                                          &ngx_stream_teleclinic_early_event);
            }

            continue;
        }

        if (n != (ssize_t) sizeof(ngx_stream_teleclinic_handoff_t)
            || (msg.msg_flags & (MSG_TRUNC|MSG_CTRUNC)))
        {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "turn: a handed over allocation is malformed");
            (void) ngx_close_socket(fd);
            continue;
        }

        ngx_stream_teleclinic_handoff_adopt(&ngx_stream_teleclinic_msg, fd);
    }
}


static void
ngx_stream_teleclinic_handoff_adopt(ngx_stream_teleclinic_handoff_t *h,
    ngx_socket_t fd)
{
    ngx_uint_t                         i;
    ngx_pool_t                        *pool;
    ngx_listening_t                   *ls;
    ngx_connection_t                  *rc;
    ngx_stream_teleclinic_srv_conf_t  *conf;
    ngx_stream_teleclinic_alloc_t     *a, tmp;

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

        conf = ngx_stream_teleclinic_handoff_find_conf(&ls[i],
                                                       &h->local.sockaddr);
        break;
    }

    pool = NULL;

    if (conf == NULL || h->username_len > NGX_STREAM_TELECLINIC_USERNAME_MAX) {
        goto failed;
    }

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        goto failed;
    }

    a = ngx_pcalloc(pool, sizeof(ngx_stream_teleclinic_alloc_t));
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

    a->nperms = ngx_min(h->nperms, NGX_STREAM_TELECLINIC_PERMISSIONS);
    a->nchannels = ngx_min(h->nchannels, NGX_STREAM_TELECLINIC_CHANNELS);
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

    rc->read->handler = ngx_stream_teleclinic_relay_handler;
    rc->read->log = ngx_cycle->log;
    rc->write->log = ngx_cycle->log;
    rc->write->ready = 1;

    if (ngx_add_event(rc->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_close_connection(rc);
        ngx_destroy_pool(pool);
        return;
    }

    a->relay = rc;

    ngx_queue_insert_tail(&ngx_stream_teleclinic_orphans, &a->queue);

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, ngx_cycle->log, 0,
                   "turn: adopted an allocation, relay fd:%d", fd);

    return;

failed:

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "turn: a handed over allocation cannot be adopted");

    (void) ngx_close_socket(fd);

    /* its counts go */

    ngx_memzero(&tmp, sizeof(ngx_stream_teleclinic_alloc_t));
    tmp.user_counted = h->user_counted ? 1 : 0;
    tmp.username.len = ngx_min(h->username_len,
                               NGX_STREAM_TELECLINIC_USERNAME_MAX);
    tmp.username.data = h->username;

    ngx_teleclinic_turn_quota_release(ngx_teleclinic_turn_worker_zone(),
                                      &tmp.username, tmp.user_counted);

    if (pool) {
        ngx_destroy_pool(pool);
    }
}


/* the new worker holds the socket and the counts now */

static void
ngx_stream_teleclinic_handoff_done(ngx_stream_teleclinic_alloc_t *a)
{
    ngx_queue_remove(&a->queue);
    ngx_close_connection(a->relay);
    ngx_destroy_pool(a->pool);
}


/* an allocation without a session ends */

static void
ngx_stream_teleclinic_orphan_free(ngx_stream_teleclinic_alloc_t *a)
{
    ngx_log_debug0(NGX_LOG_DEBUG_STREAM, ngx_cycle->log, 0,
                   "turn: allocation without a session freed");

    ngx_queue_remove(&a->queue);

    if (a->relay) {
        ngx_close_connection(a->relay);
    }

    ngx_teleclinic_turn_quota_release(ngx_teleclinic_turn_worker_zone(),
                                      &a->username, a->user_counted);

    ngx_destroy_pool(a->pool);
}


void
ngx_stream_teleclinic_handoff_claim(ngx_stream_teleclinic_session_t *ts)
{
    ngx_queue_t                    *q;
    ngx_connection_t               *c;
    ngx_stream_teleclinic_alloc_t  *a;

    if (ngx_queue_empty(&ngx_stream_teleclinic_orphans)) {
        return;
    }

    c = ts->connection;

    if (ngx_connection_local_sockaddr(c, NULL, 0) != NGX_OK) {
        return;
    }

    for (q = ngx_queue_head(&ngx_stream_teleclinic_orphans);
         q != ngx_queue_sentinel(&ngx_stream_teleclinic_orphans);
         q = ngx_queue_next(q))
    {
        a = ngx_queue_data(q, ngx_stream_teleclinic_alloc_t, queue);

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

        ngx_stream_teleclinic_handoff_track(a);

        ngx_log_debug0(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "turn: adopted allocation claimed");
        return;
    }
}


void
ngx_stream_teleclinic_handoff_track(ngx_stream_teleclinic_alloc_t *a)
{
    ngx_queue_insert_tail(&ngx_stream_teleclinic_active, &a->active);
    a->in_active = 1;
}


void
ngx_stream_teleclinic_handoff_untrack(ngx_stream_teleclinic_alloc_t *a)
{
    if (a->in_active) {
        ngx_queue_remove(&a->active);
        a->in_active = 0;
    }
}


/* the addresses of the client's 5-tuple, kept for the new worker */

static ngx_int_t
ngx_stream_teleclinic_handoff_detach(ngx_stream_teleclinic_session_t *ts,
    ngx_stream_teleclinic_alloc_t *a)
{
    ngx_connection_t  *c;

    c = ts->connection;

    /* a stop, not a reload: no new worker comes */

    if (ngx_stream_teleclinic_inbox == NULL
        || !ngx_teleclinic_turn_reloaded()
        || ngx_worker >= NGX_TELECLINIC_TURN_WORKERS
        || a->username.len > NGX_STREAM_TELECLINIC_USERNAME_MAX
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
ngx_stream_teleclinic_handoff_early_handler(ngx_event_t *ev)
{
    ngx_pid_t  pid;

    pid = ngx_stream_teleclinic_early_pid;

    /*
     * the new worker's inbox holds a few datagrams (net.unix.
     * max_dgram_qlen) until it reads them: the rest go a moment later;
     * "d" tells it that all went
     */

    if ((ngx_stream_teleclinic_handoff_early(pid) == NGX_AGAIN
         || ngx_stream_teleclinic_inbox_send(pid, "d", 1) != NGX_OK)
        && ngx_stream_teleclinic_early_tries++ < 1000
        && !ngx_exiting)
    {
        ngx_add_timer(ev, 1);
    }
}


static ngx_int_t
ngx_stream_teleclinic_handoff_early(ngx_pid_t pid)
{
    ngx_int_t                       rc;
    ngx_uint_t                      n;
    ngx_queue_t                    *q;
    ngx_stream_teleclinic_alloc_t  *a;

    if (pid == 0 || pid == ngx_pid) {
        return NGX_OK;
    }

    n = 0;

    for (q = ngx_queue_head(&ngx_stream_teleclinic_active);
         q != ngx_queue_sentinel(&ngx_stream_teleclinic_active);
         q = ngx_queue_next(q))
    {
        a = ngx_queue_data(q, ngx_stream_teleclinic_alloc_t, active);

        if (a->handed
            || (ngx_msec_int_t) (a->expires - ngx_current_msec) <= 0
            || ngx_stream_teleclinic_handoff_detach(a->session, a) != NGX_OK)
        {
            continue;
        }

        /* what does not go now goes when this worker quits */

        rc = ngx_stream_teleclinic_handoff_send(a, pid);

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

    rc = (q == ngx_queue_sentinel(&ngx_stream_teleclinic_active))
         ? NGX_OK : NGX_AGAIN;

    /* those adopted at the last reload that no client claimed go whole */

    while (rc == NGX_OK && !ngx_queue_empty(&ngx_stream_teleclinic_orphans)) {
        q = ngx_queue_head(&ngx_stream_teleclinic_orphans);
        a = ngx_queue_data(q, ngx_stream_teleclinic_alloc_t, queue);

        rc = ngx_stream_teleclinic_handoff_send(a, pid);

        if (rc == NGX_AGAIN) {
            break;
        }

        if (rc == NGX_OK) {
            if (a->relay->read->active) {
                (void) ngx_del_event(a->relay->read, NGX_READ_EVENT, 0);
            }

            ngx_stream_teleclinic_handoff_done(a);
            n++;
            continue;
        }

        /* it stays, for the handoff when this worker quits */

        ngx_queue_remove(q);
        ngx_queue_insert_tail(&ngx_stream_teleclinic_orphans, q);
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
ngx_stream_teleclinic_inbox_send(ngx_pid_t pid, void *data, size_t len)
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

    if (sendto(ngx_stream_teleclinic_inbox->fd, data, len, 0,
               (struct sockaddr *) &sun, slen)
        != (ssize_t) len)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}
