
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include "ngx_teleclinic_stun.h"


/*
 * The stream side of the module: "teleclinic_turn" makes a server a
 * STUN/TURN endpoint over UDP and TCP.  It is built into the same .so as
 * the http side so that both share one zone and one TURN secret.
 *
 * It answers STUN Binding requests (RFC 8489) with the client's address;
 * the other requests get an error answer, indications and answers are
 * dropped.  Bytes that are not STUN are dropped (UDP) or close the
 * connection (TCP).
 */


/* how long a session waits for its client's next message */
#define NGX_STREAM_TELECLINIC_TIMEOUT      30000

/* a TCP connection's buffer holds a whole message */
#define NGX_STREAM_TELECLINIC_TCP_BUFFER   8192

/* room for any answer this module builds */
#define NGX_STREAM_TELECLINIC_ANSWER_MAX   512

#define NGX_STREAM_TELECLINIC_SOFTWARE     "ngx_teleclinic"


typedef struct {
    ngx_flag_t                  turn;
} ngx_stream_teleclinic_srv_conf_t;


typedef struct {
    ngx_buf_t                  *in;       /* TCP: unprocessed bytes */
    ngx_buf_t                  *out;      /* TCP: the answer being sent */
} ngx_stream_teleclinic_ctx_t;


static void ngx_stream_teleclinic_handler(ngx_stream_session_t *s);
static void ngx_stream_teleclinic_udp_handler(ngx_event_t *rev);
static ngx_int_t ngx_stream_teleclinic_udp_message(ngx_stream_session_t *s,
    u_char *p, size_t len);
static void ngx_stream_teleclinic_tcp_handler(ngx_event_t *ev);
static void ngx_stream_teleclinic_tcp_process(ngx_stream_session_t *s);
static ngx_int_t ngx_stream_teleclinic_answer(ngx_stream_session_t *s,
    u_char *p, size_t len, ngx_buf_t *b);
static void ngx_stream_teleclinic_empty_handler(ngx_event_t *ev);
static void *ngx_stream_teleclinic_create_srv_conf(ngx_conf_t *cf);
static char *ngx_stream_teleclinic_turn(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_command_t  ngx_stream_teleclinic_commands[] = {

    { ngx_string("teleclinic_turn"),
      NGX_STREAM_SRV_CONF|NGX_CONF_NOARGS,
      ngx_stream_teleclinic_turn,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_teleclinic_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_stream_teleclinic_create_srv_conf, /* create server configuration */
    NULL                                   /* merge server configuration */
};


ngx_module_t  ngx_stream_teleclinic_module = {
    NGX_MODULE_V1,
    &ngx_stream_teleclinic_module_ctx,     /* module context */
    ngx_stream_teleclinic_commands,        /* module directives */
    NGX_STREAM_MODULE,                     /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void
ngx_stream_teleclinic_handler(ngx_stream_session_t *s)
{
    u_char                       *p;
    size_t                        size;
    ngx_connection_t             *c;
    ngx_stream_teleclinic_ctx_t  *ctx;

    c = s->connection;

    c->log->action = "serving STUN";

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

        /* a session between datagrams is idle: worker shutdown closes it */
        c->idle = 1;
        ngx_add_timer(c->read, NGX_STREAM_TELECLINIC_TIMEOUT);

        return;
    }

    ctx = ngx_pcalloc(c->pool, sizeof(ngx_stream_teleclinic_ctx_t));
    if (ctx == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_stream_set_ctx(s, ctx, ngx_stream_teleclinic_module);

    ctx->in = ngx_create_temp_buf(c->pool, NGX_STREAM_TELECLINIC_TCP_BUFFER);
    ctx->out = ngx_create_temp_buf(c->pool, NGX_STREAM_TELECLINIC_ANSWER_MAX);

    if (ctx->in == NULL || ctx->out == NULL) {
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
ngx_stream_teleclinic_udp_handler(ngx_event_t *rev)
{
    ssize_t                n;
    ngx_connection_t      *c;
    ngx_stream_session_t  *s;

    /* the datagram is copied out of nginx's buffer, and used at once */
    static u_char          buf[NGX_TELECLINIC_STUN_MAX_LEN];

    c = rev->data;
    s = c->data;

    if (rev->timedout || c->close) {
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
        return;
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

    ngx_add_timer(rev, NGX_STREAM_TELECLINIC_TIMEOUT);
}


/* NGX_DONE when the session is over */

static ngx_int_t
ngx_stream_teleclinic_udp_message(ngx_stream_session_t *s, u_char *p,
    size_t len)
{
    ngx_buf_t          b;
    ngx_chain_t        out, *cl;
    ngx_connection_t  *c;
    u_char             answer[NGX_STREAM_TELECLINIC_ANSWER_MAX];

    c = s->connection;

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
    ngx_connection_t      *c;
    ngx_stream_session_t  *s;

    c = ev->data;
    s = c->data;

    if (ev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out");
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
        return;
    }

    if (c->close) {
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
        return;
    }

    ngx_stream_teleclinic_tcp_process(s);
}


/*
 * Over TCP the messages are framed by their own length: each whole one
 * is answered, one answer in flight at a time, and what follows waits
 * until the answer is sent.
 */

static void
ngx_stream_teleclinic_tcp_process(ngx_stream_session_t *s)
{
    size_t                        size;
    ssize_t                       n, len;
    ngx_int_t                     rc;
    ngx_buf_t                    *in, *out;
    ngx_chain_t                   cl;
    ngx_connection_t             *c;
    ngx_stream_teleclinic_ctx_t  *ctx;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_teleclinic_module);

    in = ctx->in;
    out = ctx->out;

    c->idle = 0;

    for ( ;; ) {

        if (c->buffered) {
            if (ngx_stream_top_filter(s, NULL, 1) == NGX_ERROR) {
                ngx_stream_finalize_session(s, NGX_STREAM_OK);
                return;
            }

            if (c->buffered) {
                break;
            }
        }

        size = in->last - in->pos;
        len = ngx_teleclinic_stun_frame_len(in->pos, size);

        if (len == 0 || len > NGX_STREAM_TELECLINIC_TCP_BUFFER) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "client sent invalid STUN framing");
            ngx_stream_finalize_session(s, NGX_STREAM_BAD_REQUEST);
            return;
        }

        if (len > 0 && (size_t) len <= size) {

            out->pos = out->start;
            out->last = out->start;

            rc = ngx_stream_teleclinic_answer(s, in->pos, len, out);

            in->pos += len;

            if (rc == NGX_ERROR) {
                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "client sent invalid STUN message");
                ngx_stream_finalize_session(s, NGX_STREAM_BAD_REQUEST);
                return;
            }

            if (rc == NGX_OK) {
                out->flush = 1;

                cl.buf = out;
                cl.next = NULL;

                if (ngx_stream_top_filter(s, &cl, 1) == NGX_ERROR) {
                    ngx_stream_finalize_session(s, NGX_STREAM_OK);
                    return;
                }
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

    /* between messages, worker shutdown may close the connection */
    c->idle = (in->pos == in->last && !c->buffered);

    ngx_add_timer(c->read, NGX_STREAM_TELECLINIC_TIMEOUT);
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
    ngx_int_t                   rc;
    ngx_str_t                   software;
    ngx_uint_t                  code, cls;
    ngx_connection_t           *c;
    ngx_teleclinic_stun_msg_t   msg;

    c = s->connection;

    rc = ngx_teleclinic_stun_parse(p, len, &msg);

    if (rc == NGX_ERROR) {
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "stun: %uz bytes are not a STUN message", len);
        return NGX_ERROR;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "stun: method:%ui class:%ui attrs unknown:%ui",
                   msg.method, msg.class, msg.nunknown);

    if (msg.class != NGX_TELECLINIC_STUN_REQUEST) {
        return NGX_DECLINED;
    }

    if (rc == NGX_DECLINED) {
        code = 400;

    } else if (msg.nunknown) {
        code = 420;

    } else {

        switch (msg.method) {

        case NGX_TELECLINIC_STUN_BINDING:
            code = 0;
            break;

        /* there is no allocation to refresh, to permit or to bind on */
        case NGX_TELECLINIC_STUN_REFRESH:
        case NGX_TELECLINIC_STUN_CREATE_PERMISSION:
        case NGX_TELECLINIC_STUN_CHANNEL_BIND:
            code = 437;
            break;

        default:
            code = 400;
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
        if (ngx_teleclinic_stun_add_error_code(b, code, NULL) != NGX_OK) {
            return NGX_ERROR;
        }

        if (code == 420
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


static void *
ngx_stream_teleclinic_create_srv_conf(ngx_conf_t *cf)
{
    ngx_stream_teleclinic_srv_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_teleclinic_srv_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    return conf;
}


static char *
ngx_stream_teleclinic_turn(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_teleclinic_srv_conf_t *tscf = conf;

    ngx_stream_core_srv_conf_t  *cscf;

    if (tscf->turn) {
        return "is duplicate";
    }

    tscf->turn = 1;

    cscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module);
    cscf->handler = ngx_stream_teleclinic_handler;

    return NGX_CONF_OK;
}
