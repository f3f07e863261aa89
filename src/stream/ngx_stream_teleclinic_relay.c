
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_stream_teleclinic.h"


/*
 * Relay sockets: each allocation's UDP socket, bound to a port of
 * teleclinic_turn_relay_ports, and what comes in on it from peers, on
 * its way to the client over UDP, TCP or TLS.
 */


/* random ports tried before a relay socket is given up */
#define NGX_STREAM_TELECLINIC_BIND_TRIES     64

/*
 * The relay socket is read in batches of datagrams (recvmmsg) into
 * slots that leave room before the data for the header that goes to
 * the client, and after it for the padding over TCP.  Media datagrams
 * are far smaller than a slot; a larger datagram is dropped and counted.
 */
#define NGX_STREAM_TELECLINIC_BATCH          16
#define NGX_STREAM_TELECLINIC_SLOT           4096
#define NGX_STREAM_TELECLINIC_HEADROOM       64
#define NGX_STREAM_TELECLINIC_DATA_MAX                                        \
    (NGX_STREAM_TELECLINIC_SLOT - NGX_STREAM_TELECLINIC_HEADROOM - 4)

/* full batches read at once before other connections get their turn */
#define NGX_STREAM_TELECLINIC_ROUNDS         8


#define ngx_stream_teleclinic_relay_set16(p, v)                               \
    (p)[0] = (u_char) ((v) >> 8); (p)[1] = (u_char) (v)


static void ngx_stream_teleclinic_relay_to_client(
    ngx_stream_teleclinic_session_t *ts, struct mmsghdr *out,
    ngx_uint_t n);
static void ngx_stream_teleclinic_relay_to_orphan(
    ngx_stream_teleclinic_alloc_t *a, struct mmsghdr *out, ngx_uint_t n);
static ngx_uint_t ngx_stream_teleclinic_relay_port_free(
    ngx_sockaddr_t *local, socklen_t socklen, ngx_uint_t port);


/* the relay's batches: one worker, one handler at a time */
static struct mmsghdr      ngx_stream_teleclinic_relay_in[
                               NGX_STREAM_TELECLINIC_BATCH];
static struct iovec        ngx_stream_teleclinic_relay_in_iov[
                               NGX_STREAM_TELECLINIC_BATCH];
static ngx_sockaddr_t      ngx_stream_teleclinic_relay_in_addr[
                               NGX_STREAM_TELECLINIC_BATCH];
static struct mmsghdr      ngx_stream_teleclinic_relay_out[
                               NGX_STREAM_TELECLINIC_BATCH];
static struct iovec        ngx_stream_teleclinic_relay_out_iov[
                               NGX_STREAM_TELECLINIC_BATCH];
static size_t              ngx_stream_teleclinic_relay_out_len[
                               NGX_STREAM_TELECLINIC_BATCH];
static u_char              ngx_stream_teleclinic_relay_slots[
                               NGX_STREAM_TELECLINIC_BATCH]
                               [NGX_STREAM_TELECLINIC_SLOT];

/* Data indications need a transaction id; it need not be secret */
static uint32_t            ngx_stream_teleclinic_relay_tid[3];


void
ngx_stream_teleclinic_relay_init_worker(void)
{
    ngx_stream_teleclinic_relay_tid[0] = (uint32_t) ngx_random();
    ngx_stream_teleclinic_relay_tid[1] = (uint32_t) ngx_random();
    ngx_stream_teleclinic_relay_tid[2] = (uint32_t) ngx_pid;
}


ngx_int_t
ngx_stream_teleclinic_relay_open(ngx_stream_teleclinic_session_t *ts,
    ngx_stream_teleclinic_alloc_t *a, ngx_teleclinic_stun_msg_t *msg,
    ngx_uint_t want)
{
    int                                value;
    socklen_t                          socklen;
    ngx_uint_t                         i, port, range;
    ngx_err_t                          err;
    ngx_event_t                       *rev;
    ngx_socket_t                       s;
    ngx_sockaddr_t                     local;
    ngx_connection_t                  *c, *rc;
    ngx_stream_teleclinic_srv_conf_t  *conf;

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

    for (i = 0; i < NGX_STREAM_TELECLINIC_BIND_TRIES; i++) {
        port = conf->port_min + (ngx_uint_t) ngx_random() % range;

        if (want) {
            /* the port a RESERVATION-TOKEN kept, or nothing */
            port = want;
            i = NGX_STREAM_TELECLINIC_BIND_TRIES - 1;

        } else if (msg->has_even_port) {
            port &= ~((ngx_uint_t) 1);

            if (port < conf->port_min
                || (msg->even_port_reserve
                    && (port + 1 > conf->port_max
                        || !ngx_stream_teleclinic_relay_port_free(&local,
                                                       socklen, port + 1))))
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

    if (i == NGX_STREAM_TELECLINIC_BIND_TRIES) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "turn: no free relay port in %ui-%ui",
                      conf->port_min, conf->port_max);
        goto failed;
    }

    if (msg->even_port_reserve) {
        if (ngx_teleclinic_turn_reserve(conf->zone, a->token, port + 1)
            != NGX_OK)
        {
            goto failed;
        }

        a->has_token = 1;
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
    rev->handler = ngx_stream_teleclinic_relay_handler;
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

void
ngx_stream_teleclinic_relay_handler(ngx_event_t *rev)
{
    int                               n;
    u_char                           *p, *data;
    size_t                            len, total, hlen;
    ngx_buf_t                         b;
    ngx_err_t                         err;
    ngx_uint_t                        i, k, round, stream;
    ngx_msec_t                        now;
    struct sockaddr                  *sa;
    ngx_connection_t                 *c;
    struct mmsghdr                   *in, *out;
    ngx_stream_teleclinic_alloc_t    *a;
    ngx_stream_teleclinic_channel_t  *ch;
    ngx_stream_teleclinic_session_t  *ts;

    c = rev->data;
    a = c->data;
    ts = a->session;
    stream = ts ? ts->stream : 0;

    in = ngx_stream_teleclinic_relay_in;
    out = ngx_stream_teleclinic_relay_out;

    for (round = 0; round < NGX_STREAM_TELECLINIC_ROUNDS; round++) {

        for (i = 0; i < NGX_STREAM_TELECLINIC_BATCH; i++) {
            ngx_stream_teleclinic_relay_in_iov[i].iov_base =
                             ngx_stream_teleclinic_relay_slots[i]
                             + NGX_STREAM_TELECLINIC_HEADROOM;
            ngx_stream_teleclinic_relay_in_iov[i].iov_len =
                             NGX_STREAM_TELECLINIC_DATA_MAX;

            in[i].msg_hdr.msg_name = &ngx_stream_teleclinic_relay_in_addr[i];
            in[i].msg_hdr.msg_namelen = sizeof(ngx_sockaddr_t);
            in[i].msg_hdr.msg_iov = &ngx_stream_teleclinic_relay_in_iov[i];
            in[i].msg_hdr.msg_iovlen = 1;
            in[i].msg_hdr.msg_control = NULL;
            in[i].msg_hdr.msg_controllen = 0;
            in[i].msg_hdr.msg_flags = 0;
        }

        n = recvmmsg(c->fd, in, NGX_STREAM_TELECLINIC_BATCH, 0, NULL);

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
            sa = (struct sockaddr *) &ngx_stream_teleclinic_relay_in_addr[i];
            data = ngx_stream_teleclinic_relay_slots[i]
                   + NGX_STREAM_TELECLINIC_HEADROOM;

            if (in[i].msg_hdr.msg_flags & MSG_TRUNC) {
                ngx_teleclinic_turn_refuse(NGX_TELECLINIC_TURN_R_TOO_LARGE);
                continue;
            }

            if (ngx_stream_teleclinic_perm_find(a, sa,
                                              in[i].msg_hdr.msg_namelen, now)
                == NULL)
            {
                ngx_teleclinic_turn_refuse(
                                       NGX_TELECLINIC_TURN_R_NO_PERMISSION);
                continue;
            }

            if (!ngx_stream_teleclinic_bandwidth(a, len, now)) {
                continue;
            }

            ch = ngx_stream_teleclinic_channel_find(a, sa,
                                                  in[i].msg_hdr.msg_namelen,
                                                  now);

            if (ch) {
                p = data - NGX_TELECLINIC_STUN_CHANNEL_HEADER;
                ngx_stream_teleclinic_relay_set16(p, ch->number);
                ngx_stream_teleclinic_relay_set16(p + 2, len);
                total = NGX_TELECLINIC_STUN_CHANNEL_HEADER + len;

            } else {
                hlen = NGX_TELECLINIC_STUN_HEADER_LEN + 4
                       + (sa->sa_family == AF_INET6 ? 20 : 8) + 4;
                p = data - hlen;

                ngx_memzero(&b, sizeof(ngx_buf_t));
                b.start = p;
                b.pos = p;
                b.last = p;
                b.end = ngx_stream_teleclinic_relay_slots[i]
                        + NGX_STREAM_TELECLINIC_SLOT;

                ngx_stream_teleclinic_relay_tid[0]++;

                if (ngx_teleclinic_stun_init(&b, ngx_teleclinic_stun_type(
                                    NGX_TELECLINIC_STUN_DATA,
                                    NGX_TELECLINIC_STUN_INDICATION),
                                    (u_char *) ngx_stream_teleclinic_relay_tid)
                    != NGX_OK
                    || ngx_teleclinic_stun_add_xor_address(&b,
                                   NGX_TELECLINIC_STUN_ATTR_XOR_PEER_ADDRESS,
                                   sa)
                       != NGX_OK)
                {
                    continue;
                }

                /* the DATA attribute's header, its value already there */
                ngx_stream_teleclinic_relay_set16(b.last,
                                              NGX_TELECLINIC_STUN_ATTR_DATA);
                ngx_stream_teleclinic_relay_set16(b.last + 2, len);

                total = hlen + ((len + 3) & ~((size_t) 3));
                ngx_memzero(data + len, total - hlen - len);
                ngx_stream_teleclinic_relay_set16(p + 2,
                                      total - NGX_TELECLINIC_STUN_HEADER_LEN);
            }

            if (stream) {
                while (total & 3) {
                    p[total++] = 0;
                }
            }

            ngx_stream_teleclinic_relay_out_iov[k].iov_base = p;
            ngx_stream_teleclinic_relay_out_iov[k].iov_len = total;

            ngx_stream_teleclinic_relay_out_len[k] = len;
            k++;
        }

        if (k && ts) {
            ngx_stream_teleclinic_relay_to_client(ts, out, k);

        } else if (k) {
            ngx_stream_teleclinic_relay_to_orphan(a, out, k);
        }

        if (n < NGX_STREAM_TELECLINIC_BATCH) {
            break;
        }
    }

    /* more may wait: epoll reports it after the others have had a turn */

done:

    if (stream && ts->out->pos != ts->out->last) {
        switch (ngx_stream_teleclinic_relay_write(ts)) {

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
ngx_stream_teleclinic_relay_to_client(
    ngx_stream_teleclinic_session_t *ts, struct mmsghdr *out,
    ngx_uint_t n)
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
            len = ngx_stream_teleclinic_relay_out_iov[i].iov_len;

            /*
             * over TLS each message goes in a record of its own while
             * the connection keeps up: clients that read a record at a
             * time (coturn's) count a message per record
             */

            if (c->ssl && b->pos == b->last && !c->error) {
                m = c->send(c,
                            ngx_stream_teleclinic_relay_out_iov[i].iov_base,
                            len);

                if (m == (ssize_t) len) {
                    bytes += ngx_stream_teleclinic_relay_out_len[i];
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
                               ngx_stream_teleclinic_relay_out_iov[i].iov_base,
                               len);
            bytes += ngx_stream_teleclinic_relay_out_len[i];
            sent++;
        }

    } else if (c->listening && c->listening->wildcard) {

        /* the answer must leave from the address the client wrote to */

        for (i = 0; i < (int) n; i++) {
            ngx_memzero(&buf, sizeof(ngx_buf_t));
            buf.pos = ngx_stream_teleclinic_relay_out_iov[i].iov_base;
            buf.last = buf.pos
                       + ngx_stream_teleclinic_relay_out_iov[i].iov_len;
            buf.memory = 1;

            cl.buf = &buf;
            cl.next = NULL;

            if (c->send_chain(c, &cl, 0) == NGX_CHAIN_ERROR) {
                ngx_teleclinic_turn_refuse(NGX_TELECLINIC_TURN_R_CONGESTION);
                continue;
            }

            bytes += ngx_stream_teleclinic_relay_out_len[i];
            sent++;
        }

    } else {
        for (i = 0; i < (int) n; i++) {
            out[i].msg_hdr.msg_name = c->sockaddr;
            out[i].msg_hdr.msg_namelen = c->socklen;
            out[i].msg_hdr.msg_iov = &ngx_stream_teleclinic_relay_out_iov[i];
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
            bytes += ngx_stream_teleclinic_relay_out_len[i];
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
ngx_stream_teleclinic_relay_write(ngx_stream_teleclinic_session_t *ts)
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
ngx_stream_teleclinic_relay_port_free(ngx_sockaddr_t *local,
    socklen_t socklen, ngx_uint_t port)
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


/*
 * Datagrams from peers for an adopted allocation whose client has not
 * written to this worker yet: they leave from this worker's listening
 * socket.  On a wildcard address the source address could be wrong, so
 * they wait for the client's session there.
 */

static void
ngx_stream_teleclinic_relay_to_orphan(ngx_stream_teleclinic_alloc_t *a,
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
        out[i].msg_hdr.msg_iov = &ngx_stream_teleclinic_relay_out_iov[i];
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
        bytes += ngx_stream_teleclinic_relay_out_len[i];
    }

    ngx_teleclinic_turn_count(NGX_TELECLINIC_TURN_PACKETS_TO_CLIENT, sent);
    ngx_teleclinic_turn_count(NGX_TELECLINIC_TURN_BYTES_TO_CLIENT, bytes);
}
