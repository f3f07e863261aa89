
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_stream_teleclinic.h"


/*
 * Whom an allocation may reach: the peer policy, and the permissions
 * and channels that the client asked for, each with its expiry (their
 * lookups are inline in ngx_stream_teleclinic.h, for the relay's
 * hot path); the allocation's bandwidth bucket.  Nothing here does I/O.
 */


/* RFC 8656: the lifetime of a permission, in seconds */
#define NGX_STREAM_TELECLINIC_PERM_LIFETIME  300


static ngx_uint_t ngx_stream_teleclinic_peer_self(
    ngx_stream_teleclinic_session_t *ts, struct sockaddr *sa,
    socklen_t socklen);


ngx_uint_t
ngx_stream_teleclinic_peer_check(ngx_stream_teleclinic_session_t *ts,
    ngx_teleclinic_stun_addr_t *peer, ngx_uint_t *reason)
{
    struct sockaddr                   *sa;
    ngx_stream_teleclinic_srv_conf_t  *conf;

    conf = ts->conf;
    sa = &peer->sockaddr.sockaddr;

    if (sa->sa_family != ts->alloc->relayed.sockaddr.sa_family) {
        *reason = NGX_TELECLINIC_TURN_R_UNSUPPORTED;
        return NGX_TELECLINIC_STUN_ERR_PEER_FAMILY_MISMATCH;
    }

    /* before teleclinic_turn_allow_peer: it never opens the relay's host */

    if (ngx_stream_teleclinic_peer_self(ts, sa, peer->socklen)) {
        ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                      "turn: peer is the relay's own address outside "
                      "the relay ports");

        *reason = NGX_TELECLINIC_TURN_R_PEER_DENIED;
        return NGX_TELECLINIC_STUN_ERR_FORBIDDEN;
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
        return NGX_TELECLINIC_STUN_ERR_FORBIDDEN;
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
ngx_stream_teleclinic_peer_self(ngx_stream_teleclinic_session_t *ts,
    struct sockaddr *sa, socklen_t socklen)
{
    uint32_t                            v4;
    in_port_t                           port;
    ngx_uint_t                          i;
    ngx_listening_t                    *ls;
    struct sockaddr_in                  sin;
    ngx_connection_t                   *c;
    ngx_stream_teleclinic_srv_conf_t  **servers, *conf;

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


ngx_int_t
ngx_stream_teleclinic_perm_add(ngx_stream_teleclinic_alloc_t *a,
    struct sockaddr *sa, socklen_t socklen, ngx_msec_t now)
{
    ngx_uint_t                     i;
    ngx_stream_teleclinic_perm_t  *perm;

    perm = ngx_stream_teleclinic_perm_find(a, sa, socklen, now);

    if (perm == NULL) {

        for (i = 0; i < a->nperms; i++) {
            if (a->perms[i].expires <= now) {
                perm = &a->perms[i];
                break;
            }
        }

        if (perm == NULL) {
            if (a->nperms == NGX_STREAM_TELECLINIC_PERMISSIONS) {
                return NGX_DECLINED;
            }

            perm = &a->perms[a->nperms++];
        }

        ngx_memcpy(&perm->sockaddr, sa, socklen);
        perm->socklen = socklen;
    }

    perm->expires = now + NGX_STREAM_TELECLINIC_PERM_LIFETIME * 1000;

    return NGX_OK;
}


ngx_uint_t
ngx_stream_teleclinic_bandwidth(ngx_stream_teleclinic_alloc_t *a, size_t len,
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
