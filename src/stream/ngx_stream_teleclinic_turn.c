
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_stream_teleclinic.h"


/*
 * TURN requests (RFC 8656) and the allocations they make: the long-term
 * credential check, Allocate, Refresh, CreatePermission, ChannelBind,
 * an allocation's expiry and its end, and the client's data to peers
 * (Send indications and ChannelData).
 */


/* RFC 8656: lifetimes in seconds */
#define NGX_STREAM_TELECLINIC_LIFETIME          600
#define NGX_STREAM_TELECLINIC_CHANNEL_LIFETIME  600


static ngx_int_t ngx_stream_teleclinic_turn_answer(
    ngx_stream_teleclinic_session_t *ts, ngx_teleclinic_stun_msg_t *msg,
    ngx_buf_t *b, ngx_uint_t code, ngx_uint_t reason, u_char *key);
static ngx_int_t ngx_stream_teleclinic_turn_finish(
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b, u_char *key);
static ngx_int_t ngx_stream_teleclinic_turn_allocate(
    ngx_stream_teleclinic_session_t *ts, ngx_teleclinic_stun_msg_t *msg,
    ngx_buf_t *b, u_char *key);
static ngx_int_t ngx_stream_teleclinic_turn_allocate_answer(
    ngx_stream_teleclinic_session_t *ts, ngx_teleclinic_stun_msg_t *msg,
    ngx_buf_t *b, u_char *key);
static ngx_int_t ngx_stream_teleclinic_turn_refresh(
    ngx_stream_teleclinic_session_t *ts, ngx_teleclinic_stun_msg_t *msg,
    ngx_buf_t *b, u_char *key);
static ngx_int_t ngx_stream_teleclinic_turn_permission(
    ngx_stream_teleclinic_session_t *ts, ngx_teleclinic_stun_msg_t *msg,
    ngx_buf_t *b, u_char *key);
static ngx_int_t ngx_stream_teleclinic_turn_channel_bind(
    ngx_stream_teleclinic_session_t *ts, ngx_teleclinic_stun_msg_t *msg,
    ngx_buf_t *b, u_char *key);
static time_t ngx_stream_teleclinic_turn_lifetime(
    ngx_stream_teleclinic_srv_conf_t *conf, ngx_teleclinic_stun_msg_t *msg);

#if (NGX_DEBUG)
static void ngx_stream_teleclinic_turn_debug_peer(ngx_log_t *log,
    const char *fmt, struct sockaddr *sa, socklen_t socklen, ngx_uint_t n);
#else
#define ngx_stream_teleclinic_turn_debug_peer(log, fmt, sa, socklen, n)
#endif


ngx_int_t
ngx_stream_teleclinic_turn_request(ngx_stream_teleclinic_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b)
{
    time_t                             expiry;
    ngx_int_t                          rc;
    ngx_connection_t                  *c;
    ngx_stream_teleclinic_srv_conf_t  *conf;
    u_char                             key[NGX_TELECLINIC_STUN_KEY_LEN];

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
            return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                           NGX_TELECLINIC_STUN_ERR_BAD_REQUEST,
                                           NGX_TELECLINIC_TURN_R_BAD_REQUEST,
                                           NULL);
        }

        return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                   NGX_TELECLINIC_STUN_ERR_ALLOCATION_MISMATCH,
                                   NGX_TELECLINIC_TURN_R_MISMATCH, NULL);
    }

    /* the long-term credential mechanism, RFC 8489 9.2.4 */

    if (msg->integrity == NULL && msg->integrity_sha256 == NULL) {
        return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                       NGX_TELECLINIC_STUN_ERR_UNAUTHENTICATED,
                                       NGX_TELECLINIC_TURN_R_UNAUTHENTICATED,
                                       NULL);
    }

    if (msg->username.len == 0 || msg->realm.data == NULL
        || msg->nonce.data == NULL)
    {
        return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                           NGX_TELECLINIC_STUN_ERR_BAD_REQUEST,
                                           NGX_TELECLINIC_TURN_R_BAD_REQUEST,
                                           NULL);
    }

    rc = ngx_teleclinic_stun_nonce_check(conf->nonce_key, &msg->nonce,
                                         c->sockaddr, ngx_time());
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                           NGX_TELECLINIC_STUN_ERR_STALE_NONCE,
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

        return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                       NGX_TELECLINIC_STUN_ERR_UNAUTHENTICATED,
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

        return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                       NGX_TELECLINIC_STUN_ERR_UNAUTHENTICATED,
                                       NGX_TELECLINIC_TURN_R_AUTH, NULL);
    }

    /* authenticated: every answer from here on carries the integrity */

    if (msg->nunknown) {
        return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                     NGX_TELECLINIC_STUN_ERR_UNKNOWN_ATTRIBUTE,
                                     NGX_TELECLINIC_TURN_R_UNKNOWN_ATTRIBUTE,
                                     key);
    }

    if (msg->method != NGX_TELECLINIC_STUN_ALLOCATE) {

        if (ts->alloc == NULL || ngx_stream_teleclinic_turn_expires(ts) == 0) {
            return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                   NGX_TELECLINIC_STUN_ERR_ALLOCATION_MISMATCH,
                                   NGX_TELECLINIC_TURN_R_MISMATCH, key);
        }

        if (ts->alloc->username.len != msg->username.len
            || ngx_memcmp(ts->alloc->username.data, msg->username.data,
                          msg->username.len)
               != 0)
        {
            return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                     NGX_TELECLINIC_STUN_ERR_WRONG_CREDENTIALS,
                                     NGX_TELECLINIC_TURN_R_WRONG_CREDENTIALS,
                                     key);
        }
    }

    switch (msg->method) {

    case NGX_TELECLINIC_STUN_ALLOCATE:
        return ngx_stream_teleclinic_turn_allocate(ts, msg, b, key);

    case NGX_TELECLINIC_STUN_REFRESH:
        return ngx_stream_teleclinic_turn_refresh(ts, msg, b, key);

    case NGX_TELECLINIC_STUN_CREATE_PERMISSION:
        return ngx_stream_teleclinic_turn_permission(ts, msg, b, key);

    default: /* NGX_TELECLINIC_STUN_CHANNEL_BIND */
        return ngx_stream_teleclinic_turn_channel_bind(ts, msg, b, key);
    }
}


/*
 * An answer to msg: success when code is 0, an error otherwise; 401 and
 * 438 carry the realm and a fresh nonce, 420 the unknown attributes.
 */

static ngx_int_t
ngx_stream_teleclinic_turn_answer(ngx_stream_teleclinic_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b, ngx_uint_t code,
    ngx_uint_t reason, u_char *key)
{
    ngx_uint_t                         cls;
    ngx_stream_teleclinic_srv_conf_t  *conf;
    u_char                             nonce[NGX_TELECLINIC_STUN_NONCE_LEN];

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
        return ngx_stream_teleclinic_turn_finish(msg, b, key);
    }

    ngx_teleclinic_turn_refuse(reason);

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, ts->connection->log, 0,
                   "turn: method:%ui refused with %ui", msg->method, code);

    if (ngx_teleclinic_stun_add_error_code(b, code, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    if (code == NGX_TELECLINIC_STUN_ERR_UNAUTHENTICATED
        || code == NGX_TELECLINIC_STUN_ERR_STALE_NONCE)
    {
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

    if (code == NGX_TELECLINIC_STUN_ERR_UNKNOWN_ATTRIBUTE
        && ngx_teleclinic_stun_add_unknown(b, msg->unknown, msg->nunknown)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_stream_teleclinic_turn_finish(msg, b, key);
}


/* SOFTWARE, the integrity in the client's kind, FINGERPRINT if it had one */

static ngx_int_t
ngx_stream_teleclinic_turn_finish(ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b,
    u_char *key)
{
    ngx_int_t  rc;

    if (ngx_teleclinic_stun_add_attr(b, NGX_TELECLINIC_STUN_ATTR_SOFTWARE,
                                (u_char *) NGX_STREAM_TELECLINIC_SOFTWARE,
                                sizeof(NGX_STREAM_TELECLINIC_SOFTWARE) - 1)
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
ngx_stream_teleclinic_turn_allocate(ngx_stream_teleclinic_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b, u_char *key)
{
    int                                family;
    ngx_uint_t                         code, reason, want, counted;
    ngx_pool_t                        *pool;
    ngx_connection_t                  *c;
    ngx_stream_teleclinic_alloc_t     *a;
    ngx_stream_teleclinic_srv_conf_t  *conf;

    conf = ts->conf;
    c = ts->connection;

    if (ts->alloc && ngx_stream_teleclinic_turn_expires(ts)) {

        /* a retransmission gets the same answer, another request 437 */

        if (ngx_memcmp(ts->alloc->tid, msg->tid, NGX_TELECLINIC_STUN_TID_LEN)
            == 0)
        {
            return ngx_stream_teleclinic_turn_allocate_answer(ts, msg, b, key);
        }

        return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                   NGX_TELECLINIC_STUN_ERR_ALLOCATION_MISMATCH,
                                   NGX_TELECLINIC_TURN_R_MISMATCH, key);
    }

    if (!msg->has_requested_transport) {
        return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                           NGX_TELECLINIC_STUN_ERR_BAD_REQUEST,
                                           NGX_TELECLINIC_TURN_R_BAD_REQUEST,
                                           key);
    }

    /* UDP relays only */

    if (msg->requested_transport != NGX_TELECLINIC_STUN_TRANSPORT_UDP) {
        return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                 NGX_TELECLINIC_STUN_ERR_UNSUPPORTED_TRANSPORT,
                                 NGX_TELECLINIC_TURN_R_UNSUPPORTED, key);
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
        && !((msg->requested_family == NGX_TELECLINIC_STUN_FAMILY_IPV4
              && family == AF_INET)
             || (msg->requested_family == NGX_TELECLINIC_STUN_FAMILY_IPV6
                 && family == AF_INET6)))
    {
        return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                        NGX_TELECLINIC_STUN_ERR_ADDRESS_FAMILY,
                                        NGX_TELECLINIC_TURN_R_UNSUPPORTED,
                                        key);
    }

    /* a reserved port comes with its token alone (RFC 8656 7.2) */

    want = 0;

    if (msg->reservation_token.data) {

        if (msg->has_even_port || msg->has_requested_family) {
            return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                           NGX_TELECLINIC_STUN_ERR_BAD_REQUEST,
                                           NGX_TELECLINIC_TURN_R_BAD_REQUEST,
                                           key);
        }

        want = ngx_teleclinic_turn_reservation(conf->zone,
                                               msg->reservation_token.data);

        if (want == 0) {
            return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                 NGX_TELECLINIC_STUN_ERR_INSUFFICIENT_CAPACITY,
                                 NGX_TELECLINIC_TURN_R_CAPACITY, key);
        }
    }

    pool = ngx_create_pool(1024, c->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    a = ngx_pcalloc(pool, sizeof(ngx_stream_teleclinic_alloc_t));
    if (a == NULL) {
        goto failed;
    }

    a->pool = pool;
    a->session = ts;
    a->conf = conf;
    a->listen_fd = (ngx_socket_t) -1;

    a->username.len = msg->username.len;
    a->username.data = ngx_pstrdup(pool, &msg->username);
    if (a->username.data == NULL) {
        goto failed;
    }

    code = ngx_teleclinic_turn_quota_take(conf->zone, &a->username,
                                          conf->user_quota, conf->total_quota,
                                          &counted, c->log);

    if (code) {
        reason = (code == NGX_TELECLINIC_STUN_ERR_ALLOCATION_QUOTA)
                 ? NGX_TELECLINIC_TURN_R_QUOTA
                 : NGX_TELECLINIC_TURN_R_CAPACITY;
        goto refused;
    }

    a->user_counted = counted;

    if (ngx_stream_teleclinic_relay_open(ts, a, msg, want) != NGX_OK) {
        ngx_teleclinic_turn_quota_release(conf->zone, &a->username,
                                          a->user_counted);

        code = NGX_TELECLINIC_STUN_ERR_INSUFFICIENT_CAPACITY;
        reason = NGX_TELECLINIC_TURN_R_CAPACITY;
        goto refused;
    }

    ngx_memcpy(a->tid, msg->tid, NGX_TELECLINIC_STUN_TID_LEN);

    a->expires = ngx_current_msec
                 + ngx_stream_teleclinic_turn_lifetime(conf, msg) * 1000;
    a->bw_last = ngx_current_msec;
    a->bw_tokens = conf->bandwidth;

    ts->alloc = a;

    if (!ts->stream) {
        ngx_stream_teleclinic_handoff_track(a);
    }

    ngx_teleclinic_turn_count(NGX_TELECLINIC_TURN_ALLOCATIONS_TOTAL, 1);

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "turn: allocated, relay fd:%d port:%d lifetime:%M",
                   a->relay->fd, ngx_inet_get_port(&a->relayed.sockaddr),
                   a->expires - ngx_current_msec);

    return ngx_stream_teleclinic_turn_allocate_answer(ts, msg, b, key);

refused:

    ngx_destroy_pool(pool);

    return ngx_stream_teleclinic_turn_answer(ts, msg, b, code, reason, key);

failed:

    ngx_destroy_pool(pool);

    return NGX_ERROR;
}


static ngx_int_t
ngx_stream_teleclinic_turn_allocate_answer(ngx_stream_teleclinic_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b, u_char *key)
{
    ngx_msec_t                      left;
    ngx_stream_teleclinic_alloc_t  *a;

    a = ts->alloc;

    left = ngx_stream_teleclinic_turn_expires(ts);

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

    return ngx_stream_teleclinic_turn_finish(msg, b, key);
}


static ngx_int_t
ngx_stream_teleclinic_turn_refresh(ngx_stream_teleclinic_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b, u_char *key)
{
    int                             family;
    time_t                          lifetime;
    ngx_stream_teleclinic_alloc_t  *a;

    a = ts->alloc;
    family = a->relayed.sockaddr.sa_family;

    if (msg->has_requested_family
        && !((msg->requested_family == NGX_TELECLINIC_STUN_FAMILY_IPV4
              && family == AF_INET)
             || (msg->requested_family == NGX_TELECLINIC_STUN_FAMILY_IPV6
                 && family == AF_INET6)))
    {
        return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                  NGX_TELECLINIC_STUN_ERR_PEER_FAMILY_MISMATCH,
                                  NGX_TELECLINIC_TURN_R_UNSUPPORTED, key);
    }

    if (msg->has_lifetime && msg->lifetime == 0) {
        ngx_log_debug0(NGX_LOG_DEBUG_STREAM, ts->connection->log, 0,
                       "turn: allocation deleted by a Refresh");

        ngx_stream_teleclinic_turn_free(ts);
        lifetime = 0;

    } else {
        lifetime = ngx_stream_teleclinic_turn_lifetime(ts->conf, msg);
        a->expires = ngx_current_msec + lifetime * 1000;

        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, ts->connection->log, 0,
                       "turn: allocation refreshed, lifetime:%T", lifetime);
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

    return ngx_stream_teleclinic_turn_finish(msg, b, key);
}


static ngx_int_t
ngx_stream_teleclinic_turn_permission(ngx_stream_teleclinic_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b, u_char *key)
{
    ngx_uint_t                      i, code, reason;
    ngx_stream_teleclinic_alloc_t  *a;

    a = ts->alloc;

    if (msg->npeers == 0 || msg->peers_overflow) {
        return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                           NGX_TELECLINIC_STUN_ERR_BAD_REQUEST,
                                           NGX_TELECLINIC_TURN_R_BAD_REQUEST,
                                           key);
    }

    /* all of them or none */

    for (i = 0; i < msg->npeers; i++) {
        code = ngx_stream_teleclinic_peer_check(ts, &msg->peers[i], &reason);

        if (code) {
            return ngx_stream_teleclinic_turn_answer(ts, msg, b, code,
                                                                 reason, key);
        }
    }

    for (i = 0; i < msg->npeers; i++) {
        if (ngx_stream_teleclinic_perm_add(a,
                                           &msg->peers[i].sockaddr.sockaddr,
                                           msg->peers[i].socklen,
                                           ngx_current_msec)
            != NGX_OK)
        {
            return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                 NGX_TELECLINIC_STUN_ERR_INSUFFICIENT_CAPACITY,
                                 NGX_TELECLINIC_TURN_R_CAPACITY, key);
        }

        ngx_stream_teleclinic_turn_debug_peer(ts->connection->log,
                                              "turn: permission added for %V",
                                              &msg->peers[i].sockaddr.sockaddr,
                                              msg->peers[i].socklen, 0);
    }

    return ngx_stream_teleclinic_turn_answer(ts, msg, b, 0, 0, key);
}


static ngx_int_t
ngx_stream_teleclinic_turn_channel_bind(ngx_stream_teleclinic_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg, ngx_buf_t *b, u_char *key)
{
    ngx_uint_t                        i, code, reason;
    ngx_msec_t                        now;
    struct sockaddr                  *sa;
    ngx_stream_teleclinic_alloc_t    *a;
    ngx_stream_teleclinic_channel_t  *ch, *free;

    a = ts->alloc;
    now = ngx_current_msec;

    if (!msg->has_channel || msg->npeers != 1
        || msg->channel < NGX_TELECLINIC_STUN_CHANNEL_MIN
        || msg->channel > NGX_TELECLINIC_STUN_CHANNEL_MAX)
    {
        return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                           NGX_TELECLINIC_STUN_ERR_BAD_REQUEST,
                                           NGX_TELECLINIC_TURN_R_BAD_REQUEST,
                                           key);
    }

    code = ngx_stream_teleclinic_peer_check(ts, &msg->peers[0], &reason);

    if (code) {
        return ngx_stream_teleclinic_turn_answer(ts, msg, b, code,
                                                             reason, key);
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
                return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                           NGX_TELECLINIC_STUN_ERR_BAD_REQUEST,
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
            return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                           NGX_TELECLINIC_STUN_ERR_BAD_REQUEST,
                                           NGX_TELECLINIC_TURN_R_BAD_REQUEST,
                                           key);
        }
    }

    if (ch == NULL) {
        if (free) {
            ch = free;

        } else if (a->nchannels < NGX_STREAM_TELECLINIC_CHANNELS) {
            ch = &a->channels[a->nchannels++];

        } else {
            return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                 NGX_TELECLINIC_STUN_ERR_INSUFFICIENT_CAPACITY,
                                 NGX_TELECLINIC_TURN_R_CAPACITY, key);
        }
    }

    if (ngx_stream_teleclinic_perm_add(a, sa, msg->peers[0].socklen, now)
        != NGX_OK)
    {
        return ngx_stream_teleclinic_turn_answer(ts, msg, b,
                                 NGX_TELECLINIC_STUN_ERR_INSUFFICIENT_CAPACITY,
                                 NGX_TELECLINIC_TURN_R_CAPACITY, key);
    }

    ch->number = msg->channel;
    ngx_memcpy(&ch->sockaddr, sa, msg->peers[0].socklen);
    ch->socklen = msg->peers[0].socklen;
    ch->expires = now + NGX_STREAM_TELECLINIC_CHANNEL_LIFETIME * 1000;

    ngx_stream_teleclinic_turn_debug_peer(ts->connection->log,
                                          "turn: channel bound to %V, "
                                          "number:0x%xi",
                                          sa, ch->socklen, ch->number);

    return ngx_stream_teleclinic_turn_answer(ts, msg, b, 0, 0, key);
}


static time_t
ngx_stream_teleclinic_turn_lifetime(ngx_stream_teleclinic_srv_conf_t *conf,
    ngx_teleclinic_stun_msg_t *msg)
{
    time_t  lifetime, dflt;

    /* RFC 8656 7.2: never less than the default, never more than the max */

    dflt = ngx_min(NGX_STREAM_TELECLINIC_LIFETIME, conf->max_lifetime);

    if (!msg->has_lifetime) {
        return dflt;
    }

    lifetime = ngx_min((time_t) msg->lifetime, conf->max_lifetime);

    return ngx_max(lifetime, dflt);
}


ngx_msec_t
ngx_stream_teleclinic_turn_expires(ngx_stream_teleclinic_session_t *ts)
{
    ngx_msec_int_t  left;

    if (ts->alloc == NULL) {
        return 0;
    }

    left = (ngx_msec_int_t) (ts->alloc->expires - ngx_current_msec);

    if (left <= 0) {
        ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                      "turn: allocation expired");

        ngx_stream_teleclinic_turn_free(ts);
        return 0;
    }

    return (ngx_msec_t) left;
}


void
ngx_stream_teleclinic_turn_free(ngx_stream_teleclinic_session_t *ts)
{
    ngx_stream_teleclinic_alloc_t  *a;

    a = ts->alloc;

    if (a == NULL) {
        return;
    }

    ts->alloc = NULL;

    ngx_stream_teleclinic_handoff_untrack(a);

    /* the new worker holds the socket and the counts already */

    if (a->handed) {
        ngx_log_debug0(NGX_LOG_DEBUG_STREAM, ts->connection->log, 0,
                       "turn: allocation freed, handed over before");

        ngx_close_connection(a->relay);
        ngx_destroy_pool(a->pool);
        return;
    }

    /* a reload: the new worker of this number goes on with it */

    if (ngx_exiting
        && !ts->stream
        && a->relay
        && (ngx_msec_int_t) (a->expires - ngx_current_msec) > 0
        && ngx_stream_teleclinic_handoff_leave(ts, a) == NGX_OK)
    {
        ngx_log_debug0(NGX_LOG_DEBUG_STREAM, ts->connection->log, 0,
                       "turn: allocation waits for the new worker");
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_STREAM, ts->connection->log, 0,
                   "turn: allocation freed");

    if (a->relay) {
        ngx_close_connection(a->relay);
    }

    ngx_teleclinic_turn_quota_release(ts->conf->zone, &a->username,
                                      a->user_counted);

    ngx_destroy_pool(a->pool);
}


/* the client's messages to peers */

void
ngx_stream_teleclinic_turn_send_indication(ngx_stream_teleclinic_session_t *ts,
    ngx_teleclinic_stun_msg_t *msg)
{
    ssize_t                         n;
    ngx_uint_t                      reason;
    struct sockaddr                *sa;
    ngx_stream_teleclinic_alloc_t  *a;

    if (ts->alloc == NULL || ngx_stream_teleclinic_turn_expires(ts) == 0
        || msg->npeers == 0 || !msg->has_data)
    {
        return;
    }

    a = ts->alloc;
    sa = &msg->peers[0].sockaddr.sockaddr;

    if (ngx_stream_teleclinic_peer_check(ts, &msg->peers[0], &reason)) {
        ngx_teleclinic_turn_refuse(reason);
        return;
    }

    if (ngx_stream_teleclinic_perm_find(a, sa, msg->peers[0].socklen,
                                      ngx_current_msec)
        == NULL)
    {
        ngx_teleclinic_turn_refuse(NGX_TELECLINIC_TURN_R_NO_PERMISSION);
        return;
    }

    if (!ngx_stream_teleclinic_bandwidth(a, msg->data.len, ngx_current_msec)) {
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
ngx_stream_teleclinic_turn_channel_data(ngx_stream_teleclinic_session_t *ts,
    u_char *p, size_t len)
{
    size_t                            n;
    ssize_t                           sent;
    ngx_uint_t                        i, number;
    ngx_stream_teleclinic_alloc_t    *a;
    ngx_stream_teleclinic_channel_t  *ch;

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

    if (!ngx_stream_teleclinic_bandwidth(a, n, ngx_current_msec)) {
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


#if (NGX_DEBUG)

static void
ngx_stream_teleclinic_turn_debug_peer(ngx_log_t *log, const char *fmt,
    struct sockaddr *sa, socklen_t socklen, ngx_uint_t n)
{
    ngx_str_t  addr;
    u_char     text[NGX_SOCKADDR_STRLEN];

    /* the address is formatted only for a log that shows it */

    if (!(log->log_level & NGX_LOG_DEBUG_STREAM)) {
        return;
    }

    addr.data = text;
    addr.len = ngx_sock_ntop(sa, socklen, text, NGX_SOCKADDR_STRLEN, 1);

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, log, 0, fmt, &addr, n);
}

#endif
