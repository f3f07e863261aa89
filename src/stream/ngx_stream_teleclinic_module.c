
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include <openssl/rand.h>
#include "ngx_teleclinic_stun.h"
#include "ngx_teleclinic_token.h"
#include "ngx_teleclinic_turn.h"
#include "ngx_stream_teleclinic.h"


/*
 * The stream side of the module: "teleclinic_turn" makes a server a
 * STUN/TURN endpoint over UDP, TCP and TLS.  It is built into the same
 * .so as the http side, which shares its TURN secret.
 *
 * It answers STUN Binding requests (RFC 8489) with the client's address
 * and hands the TURN requests, Send indications and ChannelData to the
 * relay (ngx_stream_teleclinic_turn.c and the files below it, see
 * ngx_stream_teleclinic.h); other answers and indications are
 * dropped.  Bytes that are neither STUN nor ChannelData are dropped
 * (UDP) or close the connection (TCP, TLS).
 *
 * A session without an allocation waits 30 s for its client; with one,
 * until the allocation expires.  UDP sessions and TCP connections are
 * always idle for nginx: a worker that shuts down (reload, stop) closes
 * them.  On a reload a UDP allocation goes on at the new worker of the
 * same number, and the session that the client's next datagram opens
 * there claims it; a TCP or TLS allocation ends with its connection
 * (see README, "TURN and reload").
 */


/* how long a session without an allocation waits for its client */
#define NGX_STREAM_TELECLINIC_TIMEOUT      30000

/* a TCP connection's buffer holds a whole message */
#define NGX_STREAM_TELECLINIC_TCP_BUFFER   8192

/* TCP and TLS: answers and relayed data on their way to the client */
#define NGX_STREAM_TELECLINIC_TCP_OUT      32768

/* room for any answer this module builds */
#define NGX_STREAM_TELECLINIC_ANSWER_MAX   2048

/*
 * The quotas when none is set.  One username is one participant of one
 * call: a browser allocates once per TURN URL and network interface,
 * and again on an ICE restart before the old ones are deleted, well
 * under 10.  In all, 1000 allocations is 500 relayed calls; each takes a
 * relay port, a descriptor and one of its worker's connections, which
 * HTTP and WebSocket clients need too; no more than the relay ports.
 */
#define NGX_STREAM_TELECLINIC_USER_QUOTA   10
#define NGX_STREAM_TELECLINIC_TOTAL_QUOTA  1000


typedef struct {
    ngx_shm_zone_t                 *zone;
    u_char                          nonce_key[
                                        NGX_TELECLINIC_STUN_NONCE_KEY_LEN];

    /* of ngx_stream_teleclinic_srv_conf_t *: the teleclinic_turn servers */
    ngx_array_t                     servers;
} ngx_stream_teleclinic_main_conf_t;


typedef struct {
    ngx_stream_teleclinic_session_t   turn;
    ngx_buf_t                        *in;     /* TCP: unprocessed bytes */
} ngx_stream_teleclinic_ctx_t;


static void ngx_stream_teleclinic_handler(ngx_stream_session_t *s);
static void ngx_stream_teleclinic_cleanup(void *data);
static void ngx_stream_teleclinic_set_timer(ngx_stream_session_t *s);
static void ngx_stream_teleclinic_udp_handler(ngx_event_t *rev);
static ngx_int_t ngx_stream_teleclinic_udp_message(ngx_stream_session_t *s,
    u_char *p, size_t len);
static void ngx_stream_teleclinic_tcp_handler(ngx_event_t *ev);
static void ngx_stream_teleclinic_tcp_process(ngx_stream_session_t *s);
static ngx_int_t ngx_stream_teleclinic_answer(ngx_stream_session_t *s,
    u_char *p, size_t len, ngx_buf_t *b);
static void ngx_stream_teleclinic_empty_handler(ngx_event_t *ev);
static ngx_int_t ngx_stream_teleclinic_init_process(ngx_cycle_t *cycle);
static ngx_stream_teleclinic_srv_conf_t *ngx_stream_teleclinic_find_conf(
    ngx_listening_t *ls, struct sockaddr *local);
static void ngx_stream_teleclinic_exit_process(ngx_cycle_t *cycle);
static void *ngx_stream_teleclinic_create_main_conf(ngx_conf_t *cf);
static void *ngx_stream_teleclinic_create_srv_conf(ngx_conf_t *cf);
static char *ngx_stream_teleclinic_merge_srv_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_stream_teleclinic_turn(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_teleclinic_secret_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_stream_teleclinic_relay_address(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_uint_t ngx_stream_teleclinic_wildcard(struct sockaddr *sa);
static char *ngx_stream_teleclinic_relay_ports(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_stream_teleclinic_allow_peer(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);


static ngx_command_t  ngx_stream_teleclinic_commands[] = {

    { ngx_string("teleclinic_turn"),
      NGX_STREAM_SRV_CONF|NGX_CONF_NOARGS,
      ngx_stream_teleclinic_turn,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("teleclinic_turn_secret"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_teleclinic_srv_conf_t, secret),
      NULL },

    { ngx_string("teleclinic_turn_secret_file"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_teleclinic_secret_file,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("teleclinic_turn_realm"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_teleclinic_srv_conf_t, realm),
      NULL },

    { ngx_string("teleclinic_turn_relay_address"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE12,
      ngx_stream_teleclinic_relay_address,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("teleclinic_turn_relay_ports"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_teleclinic_relay_ports,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("teleclinic_turn_allow_peer"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_teleclinic_allow_peer,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("teleclinic_turn_user_quota"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_teleclinic_srv_conf_t, user_quota),
      NULL },

    { ngx_string("teleclinic_turn_total_quota"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_teleclinic_srv_conf_t, total_quota),
      NULL },

    { ngx_string("teleclinic_turn_bandwidth"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_teleclinic_srv_conf_t, bandwidth),
      NULL },

    { ngx_string("teleclinic_turn_max_lifetime"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_teleclinic_srv_conf_t, max_lifetime),
      NULL },

    { ngx_string("teleclinic_turn_nonce_lifetime"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_teleclinic_srv_conf_t, nonce_lifetime),
      NULL },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_teleclinic_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_stream_teleclinic_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_stream_teleclinic_create_srv_conf, /* create server configuration */
    ngx_stream_teleclinic_merge_srv_conf   /* merge server configuration */
};


ngx_module_t  ngx_stream_teleclinic_module = {
    NGX_MODULE_V1,
    &ngx_stream_teleclinic_module_ctx,     /* module context */
    ngx_stream_teleclinic_commands,        /* module directives */
    NGX_STREAM_MODULE,                     /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_stream_teleclinic_init_process,    /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_stream_teleclinic_exit_process,    /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};



static void
ngx_stream_teleclinic_handler(ngx_stream_session_t *s)
{
    u_char                       *p;
    size_t                        size;
    ngx_connection_t             *c;
    ngx_pool_cleanup_t           *cln;
    ngx_stream_teleclinic_ctx_t  *ctx;

    c = s->connection;

    c->log->action = "serving STUN/TURN";

    ctx = ngx_pcalloc(c->pool, sizeof(ngx_stream_teleclinic_ctx_t));
    if (ctx == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->turn.connection = c;
    ctx->turn.conf = ngx_stream_get_module_srv_conf(s,
                                                 ngx_stream_teleclinic_module);

    ngx_stream_set_ctx(s, ctx, ngx_stream_teleclinic_module);

    /* the allocation, and its relay socket, end with the session */

    cln = ngx_pool_cleanup_add(c->pool, 0);
    if (cln == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    cln->handler = ngx_stream_teleclinic_cleanup;
    cln->data = &ctx->turn;

    /* a session between messages is idle: worker shutdown closes it */
    c->idle = 1;

    if (c->type == SOCK_DGRAM) {
        c->read->handler = ngx_stream_teleclinic_udp_handler;
        c->write->handler = ngx_stream_teleclinic_empty_handler;

        /* the session's first datagram was read with it */

        if (c->buffer && c->buffer->pos < c->buffer->last) {
            p = c->buffer->pos;
            size = c->buffer->last - p;
            c->buffer->pos = c->buffer->last;

            if (ngx_stream_teleclinic_udp_message(s, p, size) == NGX_DONE) {
                return;
            }
        }

        ngx_stream_teleclinic_set_timer(s);

        return;
    }

    ctx->turn.stream = 1;

#if (NGX_STREAM_SSL)

    /*
     * what waits for a TLS connection moves in its buffer, and a write
     * may be retried from there (ngx_stream_teleclinic_relay_write)
     */

    if (c->ssl) {
        SSL_set_mode(c->ssl->connection, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }

#endif

    ctx->in = ngx_create_temp_buf(c->pool, NGX_STREAM_TELECLINIC_TCP_BUFFER);
    ctx->turn.out = ngx_create_temp_buf(c->pool,
                                        NGX_STREAM_TELECLINIC_TCP_OUT);

    if (ctx->in == NULL || ctx->turn.out == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    /* bytes that a preread phase has read already */

    if (c->buffer && c->buffer->pos < c->buffer->last) {
        size = c->buffer->last - c->buffer->pos;

        if (size > NGX_STREAM_TELECLINIC_TCP_BUFFER) {
            ngx_stream_finalize_session(s, NGX_STREAM_BAD_REQUEST);
            return;
        }

        ctx->in->last = ngx_cpymem(ctx->in->last, c->buffer->pos, size);
        c->buffer->pos = c->buffer->last;
    }

    c->read->handler = ngx_stream_teleclinic_tcp_handler;
    c->write->handler = ngx_stream_teleclinic_tcp_handler;

    ngx_stream_teleclinic_tcp_process(s);
}


static void
ngx_stream_teleclinic_cleanup(void *data)
{
    ngx_stream_teleclinic_session_t  *ts = data;

    ngx_stream_teleclinic_turn_free(ts);
}


/* a session waits for its allocation's expiry, or for its client */

static void
ngx_stream_teleclinic_set_timer(ngx_stream_session_t *s)
{
    ngx_msec_t                    timer;
    ngx_stream_teleclinic_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_teleclinic_module);

    timer = ngx_stream_teleclinic_turn_expires(&ctx->turn);

    ngx_add_timer(s->connection->read,
                  timer ? timer : NGX_STREAM_TELECLINIC_TIMEOUT);
}


static void
ngx_stream_teleclinic_udp_handler(ngx_event_t *rev)
{
    ssize_t                       n;
    ngx_connection_t             *c;
    ngx_stream_session_t         *s;
    ngx_stream_teleclinic_ctx_t  *ctx;

    /* the datagram is copied out of nginx's buffer, and used at once */
    static u_char                 buf[NGX_TELECLINIC_STUN_MAX_LEN];

    c = rev->data;
    s = c->data;

    if (c->close) {
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
        return;
    }

    if (rev->timedout) {
        rev->timedout = 0;

        ctx = ngx_stream_get_module_ctx(s, ngx_stream_teleclinic_module);

        /* a Refresh may have moved the expiry on meanwhile */

        if (ngx_stream_teleclinic_turn_expires(&ctx->turn) == 0) {
            ngx_stream_finalize_session(s, NGX_STREAM_OK);
            return;
        }
    }

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_stream_finalize_session(s, NGX_STREAM_OK);
            return;
        }

        if (ngx_stream_teleclinic_udp_message(s, buf, n) == NGX_DONE) {
            return;
        }
    }

    ngx_stream_teleclinic_set_timer(s);
}


/* NGX_DONE when the session is over */

static ngx_int_t
ngx_stream_teleclinic_udp_message(ngx_stream_session_t *s, u_char *p,
    size_t len)
{
    ngx_buf_t                     b;
    ngx_chain_t                   out, *cl;
    ngx_connection_t             *c;
    ngx_stream_teleclinic_ctx_t  *ctx;
    u_char                        answer[NGX_STREAM_TELECLINIC_ANSWER_MAX];

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_teleclinic_module);

    /* after a reload, the allocation the old worker handed over */

    if (ctx->turn.alloc == NULL) {
        ngx_stream_teleclinic_handoff_claim(&ctx->turn);
    }

    /* ChannelData: the relay's hot path */

    if (len && ngx_teleclinic_stun_is_channel_data(p)) {

        if (ngx_teleclinic_stun_channel_len(p, len, 0) > 0) {
            ngx_stream_teleclinic_turn_channel_data(&ctx->turn, p, len);
        }

        return NGX_OK;
    }

    ngx_memzero(&b, sizeof(ngx_buf_t));

    b.start = answer;
    b.pos = answer;
    b.last = answer;
    b.end = answer + sizeof(answer);

    if (ngx_stream_teleclinic_answer(s, p, len, &b) != NGX_OK) {
        /* not STUN, or nothing to answer: dropped */
        return NGX_OK;
    }

    b.memory = 1;
    b.flush = 1;

    out.buf = &b;
    out.next = NULL;

    /*
     * a datagram that the socket cannot take now is lost, as it could
     * have been on the way: the client retransmits its request
     */

    cl = c->send_chain(c, &out, 0);

    if (cl == NGX_CHAIN_ERROR) {
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
        return NGX_DONE;
    }

    return NGX_OK;
}


static void
ngx_stream_teleclinic_tcp_handler(ngx_event_t *ev)
{
    ngx_connection_t             *c;
    ngx_stream_session_t         *s;
    ngx_stream_teleclinic_ctx_t  *ctx;

    c = ev->data;
    s = c->data;

    if (c->close || c->error) {
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
        return;
    }

    if (ev->timedout) {
        ev->timedout = 0;

        ctx = ngx_stream_get_module_ctx(s, ngx_stream_teleclinic_module);

        if (ngx_stream_teleclinic_turn_expires(&ctx->turn) == 0) {
            ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                          "client timed out");
            ngx_stream_finalize_session(s, NGX_STREAM_OK);
            return;
        }
    }

    ngx_stream_teleclinic_tcp_process(s);
}


/*
 * Over TCP and TLS the messages are framed by their own length, STUN
 * messages and ChannelData (padded to 4 bytes) alike.  Answers and
 * relayed data share one buffer to the client, in order; when it has
 * no room for an answer, reading waits until it is sent.
 */

static void
ngx_stream_teleclinic_tcp_process(ngx_stream_session_t *s)
{
    size_t                        size;
    ssize_t                       n, len;
    ngx_int_t                     rc;
    ngx_buf_t                    *in, *out, b;
    ngx_connection_t             *c;
    ngx_stream_teleclinic_ctx_t  *ctx;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_teleclinic_module);

    in = ctx->in;
    out = ctx->turn.out;

    for ( ;; ) {

        if (out->pos != out->last && c->write->ready) {
            if (ngx_stream_teleclinic_relay_write(&ctx->turn) == NGX_ERROR) {
                ngx_stream_finalize_session(s, NGX_STREAM_OK);
                return;
            }
        }

        size = in->last - in->pos;

        if (size && ngx_teleclinic_stun_is_channel_data(in->pos)) {
            len = ngx_teleclinic_stun_channel_len(in->pos, size, 1);

        } else {
            len = ngx_teleclinic_stun_frame_len(in->pos, size);
        }

        if (len == 0 || len > NGX_STREAM_TELECLINIC_TCP_BUFFER) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "client sent invalid STUN framing");
            ngx_stream_finalize_session(s, NGX_STREAM_BAD_REQUEST);
            return;
        }

        if (len > 0 && (size_t) len <= size) {

            if (ngx_teleclinic_stun_is_channel_data(in->pos)) {
                ngx_stream_teleclinic_turn_channel_data(&ctx->turn, in->pos,
                                                        len);
                in->pos += len;
                continue;
            }

            if (out->pos == out->last) {
                out->pos = out->start;
                out->last = out->start;
            }

            if (out->end - out->last < NGX_STREAM_TELECLINIC_ANSWER_MAX) {
                /* the answer waits for the client to read */
                break;
            }

            ngx_memzero(&b, sizeof(ngx_buf_t));
            b.start = out->last;
            b.pos = out->last;
            b.last = out->last;
            b.end = out->end;

            rc = ngx_stream_teleclinic_answer(s, in->pos, len, &b);

            in->pos += len;

            if (rc == NGX_ERROR) {
                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "client sent invalid STUN message");
                ngx_stream_finalize_session(s, NGX_STREAM_BAD_REQUEST);
                return;
            }

            if (rc == NGX_OK) {
                out->last = b.last;
            }

            continue;
        }

        /* the rest of a message is still to come */

        if (in->pos == in->last) {
            in->pos = in->start;
            in->last = in->start;

        } else if (in->pos != in->start) {
            in->last = ngx_movemem(in->start, in->pos, size);
            in->pos = in->start;
        }

        n = c->recv(c, in->last, in->end - in->last);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_stream_finalize_session(s, NGX_STREAM_OK);
            return;
        }

        in->last += n;
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK
        || ngx_handle_write_event(c->write, 0) != NGX_OK)
    {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_stream_teleclinic_set_timer(s);
}


/*
 * Builds into b the answer to the message at p: NGX_OK when there is
 * one, NGX_DECLINED when there is none (indications, answers), NGX_ERROR
 * when the bytes are not a STUN message.
 */

static ngx_int_t
ngx_stream_teleclinic_answer(ngx_stream_session_t *s, u_char *p, size_t len,
    ngx_buf_t *b)
{
    ngx_int_t                     rc;
    ngx_str_t                     software;
    ngx_uint_t                    code, cls;
    ngx_connection_t             *c;
    ngx_teleclinic_stun_msg_t     msg;
    ngx_stream_teleclinic_ctx_t  *ctx;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_teleclinic_module);

    rc = ngx_teleclinic_stun_parse(p, len, &msg);

    if (rc == NGX_ERROR) {
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "stun: %uz bytes are not a STUN message", len);
        return NGX_ERROR;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "stun: method:%ui class:%ui attrs unknown:%ui",
                   msg.method, msg.class, msg.nunknown);

    if (msg.class == NGX_TELECLINIC_STUN_INDICATION
        && msg.method == NGX_TELECLINIC_STUN_SEND
        && rc == NGX_OK)
    {
        ngx_stream_teleclinic_turn_send_indication(&ctx->turn, &msg);
        return NGX_DECLINED;
    }

    if (msg.class != NGX_TELECLINIC_STUN_REQUEST) {
        return NGX_DECLINED;
    }

    if (rc == NGX_DECLINED) {
        code = NGX_TELECLINIC_STUN_ERR_BAD_REQUEST;

    } else {

        switch (msg.method) {

        case NGX_TELECLINIC_STUN_BINDING:
            code = msg.nunknown ? NGX_TELECLINIC_STUN_ERR_UNKNOWN_ATTRIBUTE
                                : 0;
            break;

        /* checked after authentication, as RFC 8489 orders it */
        case NGX_TELECLINIC_STUN_ALLOCATE:
        case NGX_TELECLINIC_STUN_REFRESH:
        case NGX_TELECLINIC_STUN_CREATE_PERMISSION:
        case NGX_TELECLINIC_STUN_CHANNEL_BIND:
            return ngx_stream_teleclinic_turn_request(&ctx->turn, &msg, b);

        default:
            code = NGX_TELECLINIC_STUN_ERR_BAD_REQUEST;
            break;
        }
    }

    cls = code ? NGX_TELECLINIC_STUN_ERROR : NGX_TELECLINIC_STUN_SUCCESS;

    if (ngx_teleclinic_stun_init(b, ngx_teleclinic_stun_type(msg.method, cls),
                                 msg.tid)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (code == 0) {
        rc = ngx_teleclinic_stun_add_xor_address(b,
                                 NGX_TELECLINIC_STUN_ATTR_XOR_MAPPED_ADDRESS,
                                 c->sockaddr);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

    } else {
        ngx_teleclinic_turn_count_refusal(code);

        if (ngx_teleclinic_stun_add_error_code(b, code, NULL) != NGX_OK) {
            return NGX_ERROR;
        }

        if (code == NGX_TELECLINIC_STUN_ERR_UNKNOWN_ATTRIBUTE
            && ngx_teleclinic_stun_add_unknown(b, msg.unknown, msg.nunknown)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    ngx_str_set(&software, NGX_STREAM_TELECLINIC_SOFTWARE);

    if (ngx_teleclinic_stun_add_attr(b, NGX_TELECLINIC_STUN_ATTR_SOFTWARE,
                                     software.data, software.len)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (msg.fingerprint
        && ngx_teleclinic_stun_add_fingerprint(b) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_stream_teleclinic_empty_handler(ngx_event_t *ev)
{
    ngx_log_debug0(NGX_LOG_DEBUG_STREAM, ev->log, 0,
                   "stream teleclinic empty handler");
}


static ngx_int_t
ngx_stream_teleclinic_init_process(ngx_cycle_t *cycle)
{
    return ngx_stream_teleclinic_handoff_init_worker(cycle,
                                           ngx_stream_teleclinic_find_conf);
}


/*
 * The server of a UDP listening socket and a local address, found as
 * ngx_stream_init_connection() finds it: for an allocation that the
 * old worker of a reload handed over before its client wrote again.
 */

static ngx_stream_teleclinic_srv_conf_t *
ngx_stream_teleclinic_find_conf(ngx_listening_t *ls, struct sockaddr *local)
{
    ngx_uint_t                         i;
    struct sockaddr_in                *sin;
    ngx_stream_port_t                 *port;
    ngx_stream_in_addr_t              *addr;
    ngx_stream_addr_conf_t            *addr_conf;
    ngx_stream_teleclinic_srv_conf_t  *conf;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6               *sin6;
    ngx_stream_in6_addr_t             *addr6;
#endif

    port = ls->servers;

    if (port == NULL || ls->handler != ngx_stream_init_connection) {
        return NULL;
    }

    switch (local->sa_family) {

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) local;
        addr6 = port->addrs;

        for (i = 0; i < port->naddrs - 1; i++) {
            if (ngx_memcmp(&addr6[i].addr6, &sin6->sin6_addr, 16) == 0) {
                break;
            }
        }

        addr_conf = &addr6[i].conf;
        break;
#endif

    case AF_INET:
        sin = (struct sockaddr_in *) local;
        addr = port->addrs;

        for (i = 0; i < port->naddrs - 1; i++) {
            if (addr[i].addr == sin->sin_addr.s_addr) {
                break;
            }
        }

        addr_conf = &addr[i].conf;
        break;

    default:
        return NULL;
    }

    conf = addr_conf->ctx->srv_conf[ngx_stream_teleclinic_module.ctx_index];

    return conf->enable == 1 ? conf : NULL;
}


static void
ngx_stream_teleclinic_exit_process(ngx_cycle_t *cycle)
{
    ngx_stream_teleclinic_handoff_exit_worker(cycle);
}


static void *
ngx_stream_teleclinic_create_main_conf(ngx_conf_t *cf)
{
    ngx_stream_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_teleclinic_main_conf_t));
    if (tmcf == NULL) {
        return NULL;
    }

    /*
     * the key of the nonces: new at each start and reload, shared by the
     * workers, which inherit it; a reload makes the old nonces stale
     */

    if (RAND_bytes(tmcf->nonce_key, NGX_TELECLINIC_STUN_NONCE_KEY_LEN) != 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "RAND_bytes() failed");
        return NULL;
    }

    if (ngx_array_init(&tmcf->servers, cf->pool, 4,
                       sizeof(ngx_stream_teleclinic_srv_conf_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return tmcf;
}


static void *
ngx_stream_teleclinic_create_srv_conf(ngx_conf_t *cf)
{
    ngx_stream_teleclinic_srv_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_teleclinic_srv_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->enable = 0;
     *     conf->secret = { 0, NULL };
     *     conf->realm = { 0, NULL };
     *     conf->relay_addr = NULL;
     *     conf->public_addr = NULL;
     *     conf->allow_peers = NULL;
     *     conf->zone = NULL;
     *     conf->servers = NULL;
     */

    conf->port_min = NGX_CONF_UNSET_UINT;
    conf->port_max = NGX_CONF_UNSET_UINT;
    conf->user_quota = NGX_CONF_UNSET_UINT;
    conf->total_quota = NGX_CONF_UNSET_UINT;
    conf->bandwidth = NGX_CONF_UNSET_SIZE;
    conf->max_lifetime = NGX_CONF_UNSET;
    conf->nonce_lifetime = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_stream_teleclinic_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_stream_teleclinic_srv_conf_t *prev = parent;
    ngx_stream_teleclinic_srv_conf_t *conf = child;

    ngx_uint_t                          ports;
    ngx_stream_teleclinic_srv_conf_t  **server;
    ngx_stream_teleclinic_main_conf_t  *tmcf;

    ngx_conf_merge_str_value(conf->secret, prev->secret, "");
    ngx_conf_merge_str_value(conf->realm, prev->realm, "teleclinic");

    if (conf->relay_addr == NULL) {
        conf->relay_addr = prev->relay_addr;
        conf->public_addr = prev->public_addr;
    }

    if (conf->port_min == NGX_CONF_UNSET_UINT) {
        conf->port_min = (prev->port_min == NGX_CONF_UNSET_UINT)
                         ? 49152 : prev->port_min;
        conf->port_max = (prev->port_max == NGX_CONF_UNSET_UINT)
                         ? 65535 : prev->port_max;
    }

    if (conf->allow_peers == NULL) {
        conf->allow_peers = prev->allow_peers;
    }

    ngx_conf_merge_uint_value(conf->user_quota, prev->user_quota,
                              NGX_STREAM_TELECLINIC_USER_QUOTA);

    if (conf->total_quota == NGX_CONF_UNSET_UINT) {
        conf->total_quota = prev->total_quota;
    }

    if (conf->total_quota == NGX_CONF_UNSET_UINT) {
        ports = conf->port_max - conf->port_min + 1;
        conf->total_quota = ngx_min(ports, NGX_STREAM_TELECLINIC_TOTAL_QUOTA);
    }
    ngx_conf_merge_size_value(conf->bandwidth, prev->bandwidth, 0);
    ngx_conf_merge_sec_value(conf->max_lifetime, prev->max_lifetime, 3600);
    ngx_conf_merge_sec_value(conf->nonce_lifetime, prev->nonce_lifetime,
                             600);

    if (conf->max_lifetime < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "teleclinic_turn_max_lifetime must be at least 1s");
        return NGX_CONF_ERROR;
    }

    if (conf->nonce_lifetime < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "teleclinic_turn_nonce_lifetime must be at least 1s");
        return NGX_CONF_ERROR;
    }

    if (conf->realm.len > 127) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "teleclinic_turn_realm \"%V\" is too long",
                           &conf->realm);
        return NGX_CONF_ERROR;
    }

    tmcf = ngx_stream_conf_get_module_main_conf(cf,
                                                ngx_stream_teleclinic_module);

    conf->zone = tmcf->zone;
    conf->nonce_key = tmcf->nonce_key;
    conf->servers = &tmcf->servers;

    if (conf->enable) {
        server = ngx_array_push(&tmcf->servers);
        if (server == NULL) {
            return NGX_CONF_ERROR;
        }

        *server = conf;
    }

    return NGX_CONF_OK;
}


static char *
ngx_stream_teleclinic_turn(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_teleclinic_srv_conf_t *tscf = conf;

    ngx_stream_core_srv_conf_t         *cscf;
    ngx_stream_teleclinic_main_conf_t  *tmcf;

    if (tscf->enable) {
        return "is duplicate";
    }

    tscf->enable = 1;

    tmcf = ngx_stream_conf_get_module_main_conf(cf,
                                                ngx_stream_teleclinic_module);

    if (tmcf->zone == NULL) {
        tmcf->zone = ngx_teleclinic_turn_add_zone(cf);
        if (tmcf->zone == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    cscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module);
    cscf->handler = ngx_stream_teleclinic_handler;

    return NGX_CONF_OK;
}


static char *
ngx_stream_teleclinic_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_teleclinic_srv_conf_t *tscf = conf;

    ngx_str_t  *value;

    if (tscf->secret.data) {
        return "is duplicate, or follows \"teleclinic_turn_secret\"";
    }

    value = cf->args->elts;

    return ngx_teleclinic_secret_file(cf, &value[1], &tscf->secret);
}


static char *
ngx_stream_teleclinic_relay_address(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_teleclinic_srv_conf_t *tscf = conf;

    ngx_int_t    rc;
    ngx_str_t   *value;
    ngx_uint_t   i;
    ngx_addr_t  *addr[2];

    if (tscf->relay_addr) {
        return "is duplicate";
    }

    value = cf->args->elts;
    addr[0] = NULL;
    addr[1] = NULL;

    for (i = 1; i < cf->args->nelts; i++) {
        addr[i - 1] = ngx_pcalloc(cf->pool, sizeof(ngx_addr_t));
        if (addr[i - 1] == NULL) {
            return NGX_CONF_ERROR;
        }

        rc = ngx_parse_addr(cf->pool, addr[i - 1], value[i].data,
                            value[i].len);

        if (rc != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid address \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        /*
         * the relay refuses its own addresses as peers (but at relay
         * ports), so it must know them: a wildcard would be every
         * address of the host
         */

        if (ngx_stream_teleclinic_wildcard(addr[i - 1]->sockaddr)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "address \"%V\" is a wildcard, the relay "
                               "needs the host's address", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    tscf->relay_addr = addr[0];

    if (cf->args->nelts == 3) {
        if (addr[1]->sockaddr->sa_family != addr[0]->sockaddr->sa_family) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "public address \"%V\" is not of the relay "
                               "address's family", &value[2]);
            return NGX_CONF_ERROR;
        }

        tscf->public_addr = addr[1];
    }

    return NGX_CONF_OK;
}


static ngx_uint_t
ngx_stream_teleclinic_wildcard(struct sockaddr *sa)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    switch (sa->sa_family) {

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;
        return IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
#endif

    case AF_INET:
        sin = (struct sockaddr_in *) sa;
        return sin->sin_addr.s_addr == INADDR_ANY;

    default:
        return 0;
    }
}


static char *
ngx_stream_teleclinic_relay_ports(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_teleclinic_srv_conf_t *tscf = conf;

    u_char     *dash;
    ngx_int_t   min, max;
    ngx_str_t  *value;

    if (tscf->port_min != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    dash = ngx_strlchr(value[1].data, value[1].data + value[1].len, '-');

    if (dash == NULL) {
        goto invalid;
    }

    min = ngx_atoi(value[1].data, dash - value[1].data);
    max = ngx_atoi(dash + 1, value[1].data + value[1].len - dash - 1);

    if (min < 1 || max > 65535 || min > max) {
        goto invalid;
    }

    tscf->port_min = min;
    tscf->port_max = max;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid port range \"%V\", MIN-MAX expected",
                       &value[1]);

    return NGX_CONF_ERROR;
}


static char *
ngx_stream_teleclinic_allow_peer(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_teleclinic_srv_conf_t *tscf = conf;

    ngx_int_t    rc;
    ngx_str_t   *value;
    ngx_cidr_t  *cidr;

    value = cf->args->elts;

    if (tscf->allow_peers == NULL) {
        tscf->allow_peers = ngx_array_create(cf->pool, 4, sizeof(ngx_cidr_t));
        if (tscf->allow_peers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    cidr = ngx_array_push(tscf->allow_peers);
    if (cidr == NULL) {
        return NGX_CONF_ERROR;
    }

    rc = ngx_ptocidr(&value[1], cidr);

    if (rc == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid network \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (rc == NGX_DONE) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "low address bits of %V are meaningless",
                           &value[1]);
    }

    return NGX_CONF_OK;
}
