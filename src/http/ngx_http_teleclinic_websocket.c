
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <wslay/wslay.h>
#include "ngx_http_teleclinic_util.h"
#include "ngx_http_teleclinic_websocket.h"
#include "ngx_teleclinic_message.h"


#define NGX_TELECLINIC_WS_GUID  "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* in the private range, after HTTP's 408 as 4409 is after 409 */
#define NGX_TELECLINIC_WS_HELLO_TIMEOUT  4408

/* a frame up to this size is built on the stack and sent in one call */
#define NGX_TELECLINIC_WS_FRAME  4096

/* the longest frame header, unmasked (RFC 6455, 5.2) */
#define NGX_TELECLINIC_WS_HEADER  10


static ngx_int_t ngx_teleclinic_ws_handler(ngx_http_request_t *r);
static ngx_int_t ngx_teleclinic_ws_refuse(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message);
static ngx_table_elt_t *ngx_teleclinic_ws_add_header(
    ngx_http_request_t *r, const char *key, const char *value);
static ngx_table_elt_t *ngx_teleclinic_ws_header(ngx_http_request_t *r,
    const char *name, size_t len);
static ngx_int_t ngx_teleclinic_ws_has_token(ngx_http_request_t *r,
    const char *name, size_t len, const char *token, size_t tlen);
static ngx_int_t ngx_teleclinic_ws_origin_ok(ngx_http_request_t *r,
    ngx_teleclinic_ws_conf_t *wcf);
static ngx_int_t ngx_teleclinic_ws_accept(ngx_http_request_t *r,
    ngx_str_t *key, ngx_str_t *accept);
static void ngx_teleclinic_ws_cleanup(void *data);
static ngx_teleclinic_ws_t *ngx_teleclinic_ws_from(ngx_http_request_t *r);
static void ngx_teleclinic_ws_event_handler(ngx_event_t *ev);
static void ngx_teleclinic_ws_read(ngx_teleclinic_ws_t *ws);
static void ngx_teleclinic_ws_timer_handler(ngx_event_t *ev);
static void ngx_teleclinic_ws_tick(ngx_teleclinic_ws_t *ws);
static void ngx_teleclinic_ws_arm(ngx_teleclinic_ws_t *ws);
static void ngx_teleclinic_ws_flush(ngx_teleclinic_ws_t *ws);
static void ngx_teleclinic_ws_finalize(ngx_teleclinic_ws_t *ws,
    ngx_int_t rc);
static void ngx_teleclinic_ws_fail(ngx_teleclinic_ws_t *ws, uint16_t code,
    const char *reason);
static ssize_t ngx_teleclinic_ws_recv(wslay_event_context_ptr ctx,
    uint8_t *buf, size_t len, int flags, void *user_data);
static ssize_t ngx_teleclinic_ws_send(wslay_event_context_ptr ctx,
    const uint8_t *data, size_t len, int flags, void *user_data);
static void ngx_teleclinic_ws_on_msg(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *arg, void *user_data);
static ngx_int_t ngx_teleclinic_ws_rate_ok(ngx_teleclinic_ws_t *ws);
static void ngx_teleclinic_ws_message(ngx_teleclinic_ws_t *ws,
    const u_char *msg, size_t len);
static ngx_int_t ngx_teleclinic_ws_utf8_valid(const u_char *p, size_t len);
static void ngx_teleclinic_ws_on_frame_start(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_start_arg *arg, void *user_data);
static void ngx_teleclinic_ws_on_frame_end(wslay_event_context_ptr ctx,
    void *user_data);
static ngx_int_t ngx_teleclinic_ws_wake(ngx_teleclinic_ws_t *ws);
static void ngx_teleclinic_ws_sleep(ngx_teleclinic_ws_t *ws);
static void ngx_teleclinic_ws_ping(ngx_teleclinic_ws_t *ws);
static size_t ngx_teleclinic_ws_frame_header(u_char *p, ngx_uint_t opcode,
    size_t len);
static ngx_int_t ngx_teleclinic_ws_output(ngx_teleclinic_ws_t *ws,
    const u_char *hdr, size_t hlen, const u_char *data, size_t len);
static ngx_int_t ngx_teleclinic_ws_pend(ngx_teleclinic_ws_t *ws,
    const u_char *hdr, size_t hlen, const u_char *data, size_t len);
static ngx_int_t ngx_teleclinic_ws_drain(ngx_teleclinic_ws_t *ws);
static size_t ngx_teleclinic_ws_pending(ngx_teleclinic_ws_t *ws);
static void ngx_teleclinic_ws_release_ssl(ngx_connection_t *c);


static struct wslay_event_callbacks  ngx_teleclinic_ws_callbacks = {
    ngx_teleclinic_ws_recv,
    ngx_teleclinic_ws_send,
    NULL,
    ngx_teleclinic_ws_on_frame_start,
    NULL,
    ngx_teleclinic_ws_on_frame_end,
    ngx_teleclinic_ws_on_msg
};


/*
 * The header of the frame wslay is sending: it comes alone, flagged
 * WSLAY_MSG_MORE, and its payload follows in the same wslay_event_send()
 * (wslay_frame_send() goes on to the payload when the header is taken
 * whole, as it always is here), so one buffer serves the worker.
 */
static u_char  ngx_teleclinic_ws_more[NGX_TELECLINIC_WS_HEADER + 4];
static size_t  ngx_teleclinic_ws_more_len;


void
ngx_teleclinic_ws_conf_init(ngx_teleclinic_ws_conf_t *conf)
{
    conf->enable = NGX_CONF_UNSET;
    conf->origins = NGX_CONF_UNSET_PTR;
    conf->ping = NGX_CONF_UNSET_MSEC;
    conf->hello_timeout = NGX_CONF_UNSET_MSEC;
    conf->max_message = NGX_CONF_UNSET_SIZE;
    conf->send_buffer = NGX_CONF_UNSET_SIZE;
    conf->rate = NGX_CONF_UNSET_UINT;
    conf->burst = NGX_CONF_UNSET_UINT;
}


void
ngx_teleclinic_ws_conf_merge(ngx_teleclinic_ws_conf_t *conf,
    ngx_teleclinic_ws_conf_t *prev)
{
    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_ptr_value(conf->origins, prev->origins, NULL);
    ngx_conf_merge_msec_value(conf->ping, prev->ping, 30000);
    ngx_conf_merge_msec_value(conf->hello_timeout, prev->hello_timeout,
                              10000);
    ngx_conf_merge_size_value(conf->max_message, prev->max_message,
                              64 * 1024);
    ngx_conf_merge_size_value(conf->send_buffer, prev->send_buffer,
                              256 * 1024);
    ngx_conf_merge_uint_value(conf->rate, prev->rate, 20);
    ngx_conf_merge_uint_value(conf->burst, prev->burst, 40);
}


char *
ngx_teleclinic_ws_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_teleclinic_loc_conf_t *tlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (tlcf->ws.enable != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    tlcf->ws.enable = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_teleclinic_ws_handler;

    return NGX_CONF_OK;
}


/* teleclinic_websocket_origins origin ...; */

char *
ngx_teleclinic_ws_origins_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_teleclinic_loc_conf_t *tlcf = conf;

    ngx_str_t   *value, *s;
    ngx_uint_t   i;

    if (tlcf->ws.origins != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    tlcf->ws.origins = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                        sizeof(ngx_str_t));
    if (tlcf->ws.origins == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '/')
            == NULL)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid origin \"%V\", it looks like "
                               "\"https://host[:port]\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(tlcf->ws.origins);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


/* teleclinic_websocket_rate 20r/s [burst=40]; */

char *
ngx_teleclinic_ws_rate_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_teleclinic_loc_conf_t *tlcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (tlcf->ws.rate != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len < 4
        || ngx_strcmp(value[1].data + value[1].len - 3, "r/s") != 0
        || (n = ngx_atoi(value[1].data, value[1].len - 3)) <= 0
        || n > 100000)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid rate \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    tlcf->ws.rate = n;
    tlcf->ws.burst = 2 * n;

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "burst=", 6) != 0
            || (n = ngx_atoi(value[2].data + 6, value[2].len - 6)) <= 0
            || n > 100000)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        tlcf->ws.burst = n;
    }

    return NGX_CONF_OK;
}


/* the handshake (RFC 6455, 4.2) */

static ngx_int_t
ngx_teleclinic_ws_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_str_t                        key, accept;
    ngx_connection_t                *c;
    ngx_table_elt_t                 *h;
    ngx_pool_cleanup_t              *cln;
    ngx_teleclinic_ws_t             *ws;
    ngx_http_core_loc_conf_t        *clcf;
    ngx_teleclinic_ws_conf_t        *wcf;
    ngx_http_teleclinic_loc_conf_t  *tlcf;

    c = r->connection;
    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_teleclinic_module);
    wcf = &tlcf->ws;

    if (r != r->main) {
        return NGX_HTTP_NOT_FOUND;
    }

    if (r->method != NGX_HTTP_GET) {
        return ngx_teleclinic_ws_refuse(r, NGX_HTTP_NOT_ALLOWED,
                                        "method_not_allowed",
                                        "a WebSocket handshake is a GET");
    }

    h = r->headers_in.upgrade;

    if (h == NULL
        || h->value.len != sizeof("websocket") - 1
        || ngx_strncasecmp(h->value.data, (u_char *) "websocket",
                           h->value.len) != 0)
    {
        return ngx_teleclinic_ws_refuse(r, 426, "upgrade_required",
                                        "this is a WebSocket endpoint");
    }

    if (r->http_version < NGX_HTTP_VERSION_11
#if (NGX_HTTP_V2)
        || r->stream
#endif
        || r->headers_in.content_length_n > 0
        || r->headers_in.chunked
        || !ngx_teleclinic_ws_has_token(r, "Connection",
                                        sizeof("Connection") - 1,
                                        "upgrade", sizeof("upgrade") - 1))
    {
        return ngx_teleclinic_ws_refuse(r, NGX_HTTP_BAD_REQUEST,
                                        "bad_handshake",
                                        "not a WebSocket handshake");
    }

    h = ngx_teleclinic_ws_header(r, "Sec-WebSocket-Version",
                                 sizeof("Sec-WebSocket-Version") - 1);

    if (h == NULL || h->value.len != 2
        || ngx_strncmp(h->value.data, "13", 2) != 0)
    {
        return ngx_teleclinic_ws_refuse(r, 426, "unsupported_version",
                                        "Sec-WebSocket-Version must be 13");
    }

    h = ngx_teleclinic_ws_header(r, "Sec-WebSocket-Key",
                                 sizeof("Sec-WebSocket-Key") - 1);

    if (h == NULL) {
        return ngx_teleclinic_ws_refuse(r, NGX_HTTP_BAD_REQUEST,
                                        "bad_handshake",
                                        "no Sec-WebSocket-Key");
    }

    key = h->value;

    if (ngx_teleclinic_ws_accept(r, &key, &accept) != NGX_OK) {
        return ngx_teleclinic_ws_refuse(r, NGX_HTTP_BAD_REQUEST,
                                        "bad_handshake",
                                        "Sec-WebSocket-Key is not 16 "
                                        "bytes in base64");
    }

    if (ngx_teleclinic_ws_origin_ok(r, wcf) != NGX_OK) {
        return ngx_teleclinic_ws_refuse(r, NGX_HTTP_FORBIDDEN,
                                        "origin_not_allowed",
                                        "this origin may not connect");
    }

    if (ngx_exiting || ngx_terminate) {
        return ngx_teleclinic_ws_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "shutting_down",
                                        "the server is restarting");
    }

    /* the connection */

    ws = ngx_pcalloc(r->pool, sizeof(ngx_teleclinic_ws_t));
    if (ws == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ws->request = r;
    ws->conf = wcf;
    ws->pool = r->pool;
    ws->log = c->log;

    if (ngx_teleclinic_ws_wake(ws) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_teleclinic_ws_cleanup;
    cln->data = ws;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    ws->linger = clcf->lingering_timeout;
    ws->hello_by = ngx_current_msec + wcf->hello_timeout;
    ws->last = ngx_current_msec;
    ws->tokens = wcf->burst * 1000;

    ws->timer.handler = ngx_teleclinic_ws_timer_handler;
    ws->timer.data = ws;
    ws->timer.log = c->log;

    if (wcf->handler->open(ws) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the response: 101, "Connection: upgrade" comes from the header filter */

    r->keepalive = 0;
    r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
    ngx_str_set(&r->headers_out.status_line, "101 Switching Protocols");

    if (ngx_teleclinic_ws_add_header(r, "Upgrade", "websocket") == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = ngx_teleclinic_ws_add_header(r, "Sec-WebSocket-Accept", "");
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->value = accept;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    if (ngx_http_send_special(r, NGX_HTTP_FLUSH) == NGX_ERROR) {
        return NGX_ERROR;
    }

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        /* what SSL_write() did not take is written again from ws->out */
        SSL_set_mode(c->ssl->connection,
                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
#endif

    ngx_teleclinic_ws_release_ssl(c);

    /*
     * from here on the connection is ours, as an upgraded one is the
     * upstream module's: the request stays open until the WebSocket ends
     */

    c->log->action = "serving WebSocket";

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0, "teleclinic ws: upgraded");

    if (clcf->tcp_nodelay && ngx_tcp_nodelay(c) != NGX_OK) {
        return NGX_ERROR;
    }

    r->main->count++;

    c->read->handler = ngx_teleclinic_ws_event_handler;
    c->write->handler = ngx_teleclinic_ws_event_handler;

    /* a graceful shutdown calls the read handler with c->close set */
    c->idle = 1;

    ngx_teleclinic_ws_arm(ws);

    /*
     * frames that came with the handshake wait in r->header_in; posted, not
     * called: the request may end there, and the caller finalizes it too
     */
    ngx_post_event(c->read, &ngx_posted_events);

    return NGX_DONE;
}


static ngx_int_t
ngx_teleclinic_ws_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (status == NGX_HTTP_NOT_ALLOWED
        && ngx_teleclinic_ws_add_header(r, "Allow", "GET") == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (status == 426) {
        ngx_str_set(&r->headers_out.status_line, "426 Upgrade Required");

        if (ngx_teleclinic_ws_add_header(r, "Upgrade", "websocket") == NULL
            || ngx_teleclinic_ws_add_header(r, "Sec-WebSocket-Version", "13")
               == NULL)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_teleclinic_error(r, status, code, message, NULL);
}


/* a response header of static strings; the caller may set another value */

static ngx_table_elt_t *
ngx_teleclinic_ws_add_header(ngx_http_request_t *r, const char *key,
    const char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);

    return h;
}


static ngx_table_elt_t *
ngx_teleclinic_ws_header(ngx_http_request_t *r, const char *name, size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


/* a token in a comma-separated header, in any of its lines */

static ngx_int_t
ngx_teleclinic_ws_has_token(ngx_http_request_t *r, const char *name,
    size_t len, const char *token, size_t tlen)
{
    u_char           *p, *last, *start, *end;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return 0;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != len
            || ngx_strncasecmp(h[i].key.data, (u_char *) name, len) != 0)
        {
            continue;
        }

        p = h[i].value.data;
        last = p + h[i].value.len;

        while (p < last) {
            while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
                p++;
            }

            start = p;

            while (p < last && *p != ',') {
                p++;
            }

            end = p;

            while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
                end--;
            }

            if ((size_t) (end - start) == tlen
                && ngx_strncasecmp(start, (u_char *) token, tlen) == 0)
            {
                return 1;
            }
        }
    }
}


/*
 * Browsers always send Origin with a WebSocket handshake, and a page of
 * another site may open one with the user's cookies; other clients send
 * none and could forge it anyway.  So a handshake without Origin passes,
 * one with Origin must match the list, or without a list come from this
 * same host: "scheme://host[:port]" whose host[:port] equals Host.
 */

static ngx_int_t
ngx_teleclinic_ws_origin_ok(ngx_http_request_t *r,
    ngx_teleclinic_ws_conf_t *wcf)
{
    u_char           *p;
    size_t            len;
    ngx_str_t        *origin;
    ngx_uint_t        i;
    ngx_table_elt_t  *h, *host;

    h = ngx_teleclinic_ws_header(r, "Origin", sizeof("Origin") - 1);

    if (h == NULL) {
        return NGX_OK;
    }

    if (wcf->origins) {
        origin = wcf->origins->elts;

        for (i = 0; i < wcf->origins->nelts; i++) {
            if (origin[i].len == h->value.len
                && ngx_strncasecmp(origin[i].data, h->value.data,
                                   h->value.len) == 0)
            {
                return NGX_OK;
            }
        }

        return NGX_DECLINED;
    }

    host = r->headers_in.host;

    if (host == NULL) {
        return NGX_DECLINED;
    }

    p = ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                         (u_char *) "://", 3 - 1);

    if (p == NULL) {
        return NGX_DECLINED;
    }

    p += 3;
    len = h->value.data + h->value.len - p;

    if (len == host->value.len
        && ngx_strncasecmp(p, host->value.data, len) == 0)
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/* Sec-WebSocket-Accept for a key, or NGX_DECLINED for an invalid key */

static ngx_int_t
ngx_teleclinic_ws_accept(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *accept)
{
    u_char        buf[24 + sizeof(NGX_TELECLINIC_WS_GUID) - 1];
    u_char        raw[18], md[EVP_MAX_MD_SIZE];
    ngx_str_t     src, dst;
    unsigned int  mdlen;

    /* 16 bytes in base64: 22 characters and "==" */

    if (key->len != 24 || key->data[22] != '=' || key->data[23] != '=') {
        return NGX_DECLINED;
    }

    src.data = key->data;
    src.len = 22;
    dst.data = raw;

    if (ngx_decode_base64(&dst, &src) != NGX_OK || dst.len != 16) {
        return NGX_DECLINED;
    }

    ngx_memcpy(buf, key->data, 24);
    ngx_memcpy(buf + 24, NGX_TELECLINIC_WS_GUID,
               sizeof(NGX_TELECLINIC_WS_GUID) - 1);

    if (EVP_Digest(buf, sizeof(buf), md, &mdlen, EVP_sha1(), NULL) != 1) {
        return NGX_ERROR;
    }

    accept->data = ngx_pnalloc(r->pool, ngx_base64_encoded_length(mdlen));
    if (accept->data == NULL) {
        return NGX_ERROR;
    }

    src.data = md;
    src.len = mdlen;

    ngx_encode_base64(accept, &src);

    return NGX_OK;
}


static void
ngx_teleclinic_ws_cleanup(void *data)
{
    ngx_teleclinic_ws_t  *ws = data;

    if (ws->timer.timer_set) {
        ngx_del_timer(&ws->timer);
    }

    ws->conf->handler->close(ws);

    if (ws->ctx) {
        wslay_event_context_free(ws->ctx);
        ws->ctx = NULL;
    }

    if (ws->out) {
        ngx_free(ws->out);
        ws->out = NULL;
    }
}


/*
 * The request's module context belongs to the API's variables; the
 * connection's state is found through its pool cleanup instead.
 */

static ngx_teleclinic_ws_t *
ngx_teleclinic_ws_from(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_teleclinic_ws_cleanup) {
            return cln->data;
        }
    }

    return NULL;
}


/* both events of the connection: read and answer, or send what waits */

static void
ngx_teleclinic_ws_event_handler(ngx_event_t *ev)
{
    ngx_connection_t     *c;
    ngx_http_request_t   *r;
    ngx_teleclinic_ws_t  *ws;

    c = ev->data;
    r = c->data;
    ws = ngx_teleclinic_ws_from(r);

    if (ws == NULL || ws->done) {
        return;
    }

    ngx_http_set_log_request(c->log, r);

    /* wslay is for reading: the output needs no context */
    if (!ev->write && ngx_teleclinic_ws_wake(ws) != NGX_OK) {
        ngx_teleclinic_ws_finalize(ws, NGX_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }

    if (ev->write) {
        ngx_teleclinic_ws_flush(ws);

    } else {
        ngx_teleclinic_ws_read(ws);
    }

    /* a finalized request may be posted to be terminated */
    ngx_http_run_posted_requests(c);
}


static void
ngx_teleclinic_ws_read(ngx_teleclinic_ws_t *ws)
{
    ngx_connection_t  *c;

    c = ws->request->connection;

    if (c->close) {
        c->close = 0;
        c->idle = 0;

        if (c->error) {
            /* worker_shutdown_timeout ran out */
            ngx_teleclinic_ws_finalize(ws, NGX_ERROR);
            return;
        }

        /* the worker is shutting down gracefully */
        ngx_teleclinic_ws_fail(ws, WSLAY_CODE_GOING_AWAY,
                               "server restarting");
        ngx_teleclinic_ws_flush(ws);
        return;
    }

    /*
     * With edge-triggered events nothing calls us again until new bytes
     * arrive, so the socket must be read until recv() says EAGAIN; wslay's
     * error field is shared with the send side, and a WOULDBLOCK left there
     * by a send must not look like the end of the input.
     */

    ws->again = 0;

    while (!ws->again && !ws->overflow && wslay_event_want_read(ws->ctx)) {

        ws->reads = 0;
        wslay_event_set_error(ws->ctx, 0);

        if (wslay_event_recv(ws->ctx) != 0) {
            if (ws->eof && !ws->io_error) {
                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "client closed WebSocket without a close "
                              "frame");
            }

            ngx_teleclinic_ws_finalize(ws, NGX_ERROR);
            return;
        }

        if (ws->reads == 0) {
            break;
        }
    }

    ngx_teleclinic_ws_flush(ws);
}


static void
ngx_teleclinic_ws_timer_handler(ngx_event_t *ev)
{
    ngx_teleclinic_ws_t  *ws = ev->data;

    ngx_connection_t  *c;

    c = ws->request->connection;

    ngx_http_set_log_request(c->log, ws->request);

    ngx_teleclinic_ws_tick(ws);

    ngx_http_run_posted_requests(c);
}


static void
ngx_teleclinic_ws_tick(ngx_teleclinic_ws_t *ws)
{
    ngx_connection_t  *c;

    c = ws->request->connection;

    if (ws->closing) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "WebSocket peer did not answer the close in time");
        ngx_teleclinic_ws_finalize(ws, NGX_ERROR);
        return;
    }

    if (!ws->joined
        && (ngx_msec_int_t) (ngx_current_msec - ws->hello_by) >= 0)
    {
        /*
         * a connection nobody has been welcomed on holds a worker
         * connection for anyone who can open a socket
         */
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "WebSocket peer said no hello in time, closed");

        if (ngx_teleclinic_ws_wake(ws) != NGX_OK) {
            ngx_teleclinic_ws_finalize(ws, NGX_ERROR);
            return;
        }

        ngx_teleclinic_ws_fail(ws, NGX_TELECLINIC_WS_HELLO_TIMEOUT,
                               "hello timeout");
        ngx_teleclinic_ws_flush(ws);
        return;
    }

    if (ws->ping_sent) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "WebSocket peer did not answer a ping, dropped");
        ngx_teleclinic_ws_finalize(ws, NGX_ERROR);
        return;
    }

    /* written here: an idle connection makes no wslay context for it */
    ngx_teleclinic_ws_ping(ws);

    ngx_teleclinic_ws_arm(ws);

    ngx_teleclinic_ws_flush(ws);
}


/* the next ping, or the hello deadline if it comes first */

static void
ngx_teleclinic_ws_arm(ngx_teleclinic_ws_t *ws)
{
    ngx_msec_t      timer;
    ngx_msec_int_t  left;

    timer = ws->conf->ping;

    if (!ws->joined) {
        left = (ngx_msec_int_t) (ws->hello_by - ngx_current_msec);

        if (left < 0) {
            left = 0;
        }

        if ((ngx_msec_t) left < timer) {
            timer = (ngx_msec_t) left;
        }
    }

    ngx_add_timer(&ws->timer, timer);
}


void
ngx_teleclinic_ws_joined(ngx_teleclinic_ws_t *ws)
{
    if (ws->joined) {
        return;
    }

    ws->joined = 1;

    if (ws->remote) {
        return;                          /* its node keeps the pings */
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ws->request->connection->log, 0,
                   "teleclinic ws: hello welcomed");

    if (ws->done || ws->closing) {
        return;
    }

    /* the timer may stand at the deadline: the pings' interval from now */
    ngx_add_timer(&ws->timer, ws->conf->ping);
}


/* sends what is queued, and ends the connection when it is over */

static void
ngx_teleclinic_ws_flush(ngx_teleclinic_ws_t *ws)
{
    size_t               pending;
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ws->request;
    c = r->connection;

    /* the rest of the 101 response, if the socket was full */

    if (c->buffered & NGX_HTTP_WRITE_BUFFERED) {
        rc = ngx_http_output_filter(r, NULL);

        if (rc == NGX_ERROR) {
            ngx_teleclinic_ws_finalize(ws, NGX_ERROR);
            return;
        }

        ngx_teleclinic_ws_release_ssl(c);
    }

    /*
     * wslay's own frames (pongs, the answer to a close) join the output;
     * the send callback takes them whole, so wslay never holds half a
     * frame between two calls
     */

    if (ws->ctx && wslay_event_want_write(ws->ctx)) {
        wslay_event_set_error(ws->ctx, 0);

        if (wslay_event_send(ws->ctx) != 0) {
            ngx_teleclinic_ws_finalize(ws, NGX_ERROR);
            return;
        }
    }

    if (ws->close_code && ws->ctx && wslay_event_get_close_sent(ws->ctx)) {
        /* the peer closed first and wslay answered it */
        ws->close_code = 0;
    }

    if (ws->close_code) {
        /* the messages before it are in the output already, ahead of it */

        if (ngx_teleclinic_ws_wake(ws) != NGX_OK) {
            ngx_teleclinic_ws_finalize(ws, NGX_ERROR);
            return;
        }

        (void) wslay_event_queue_close(ws->ctx, ws->close_code,
                                       (const uint8_t *) ws->close_reason,
                                       ngx_strlen(ws->close_reason));
        ws->close_code = 0;

        if (wslay_event_send(ws->ctx) != 0) {
            ngx_teleclinic_ws_finalize(ws, NGX_ERROR);
            return;
        }
    }

    if (ws->io_error || ngx_teleclinic_ws_drain(ws) != NGX_OK) {
        ngx_teleclinic_ws_finalize(ws, NGX_ERROR);
        return;
    }

    /*
     * a peer that sends and does not read: its answers would pile up in
     * this worker without end
     */

    pending = ngx_teleclinic_ws_pending(ws);

    if (pending > ws->conf->send_buffer) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "WebSocket peer does not read, %uz bytes queued, "
                      "dropped", pending);
        ngx_teleclinic_ws_finalize(ws, NGX_ERROR);
        return;
    }

    if (ws->overflow) {
        /* drained below the limit: read again */
        ws->overflow = 0;
        ngx_post_event(c->read, &ngx_posted_events);
    }

    if (ws->ctx
        && !wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx)
        && ws->close_code == 0 && pending == 0
        && !(c->buffered & NGX_HTTP_WRITE_BUFFERED))
    {
        ngx_teleclinic_ws_finalize(ws, NGX_DONE);
        return;
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK
        || ngx_handle_read_event(c->read, 0) != NGX_OK)
    {
        ngx_teleclinic_ws_finalize(ws, NGX_ERROR);
        return;
    }

    ngx_teleclinic_ws_sleep(ws);
}


/*
 * NGX_DONE: the close handshake is over, or our close is sent; without the
 * peer's close frame nginx's lingering close reads what it still sends.
 * NGX_ERROR: the connection is dropped.
 */

static void
ngx_teleclinic_ws_finalize(ngx_teleclinic_ws_t *ws, ngx_int_t rc)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ws->request;
    c = r->connection;

    c->idle = 0;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "teleclinic ws: closed: %i, peer's code %ui", rc,
                   (ngx_uint_t) (ws->ctx
                        ? wslay_event_get_status_code_received(ws->ctx) : 0));

    if (ws->timer.timer_set) {
        ngx_del_timer(&ws->timer);
    }

    /* asleep, it has received nothing, a close frame neither */
    if (rc == NGX_DONE
        && (ws->ctx == NULL || !wslay_event_get_close_received(ws->ctx)))
    {
        r->lingering_close = 1;
    }

    if (ws->ctx) {
        wslay_event_context_free(ws->ctx);
        ws->ctx = NULL;
    }

    if (ws->out) {
        ngx_free(ws->out);
        ws->out = NULL;
    }

    ws->done = 1;

    ngx_http_finalize_request(r, rc);
}


/*
 * Our close frame, queued in wslay by ngx_teleclinic_ws_flush(): the
 * answers before it are in ws->out already, ahead of it, and nothing is
 * sent after it.  What else the peer sends is read and dropped.
 */

static void
ngx_teleclinic_ws_fail(ngx_teleclinic_ws_t *ws, uint16_t code,
    const char *reason)
{
    if (ws->closing) {
        return;
    }

    ws->closing = 1;
    ws->close_code = code;
    ws->close_reason = reason;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ws->request->connection->log, 0,
                   "teleclinic ws: closing with %ui", (ngx_uint_t) code);

    if (ws->timer.timer_set) {
        ngx_del_timer(&ws->timer);
    }

    ngx_add_timer(&ws->timer, ws->linger);
}


static ssize_t
ngx_teleclinic_ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
    int flags, void *user_data)
{
    ngx_teleclinic_ws_t  *ws = user_data;

    ssize_t              n;
    ngx_buf_t           *b;
    ngx_connection_t    *c;

    ws->reads++;

    /* answers pile up: stop reading until they are sent */
    if (ws->overflow) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }

    b = ws->request->header_in;

    if (b->pos < b->last) {
        n = ngx_min((size_t) (b->last - b->pos), len);
        ngx_memcpy(buf, b->pos, n);
        b->pos += n;
        ws->fed += n;
        return n;
    }

    c = ws->request->connection;

    n = c->recv(c, buf, len);

    if (n == NGX_AGAIN) {
        ws->again = 1;
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }

    if (n == 0) {
        ws->eof = 1;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }

    if (n == NGX_ERROR) {
        ws->io_error = 1;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }

    ws->fed += n;

    return n;
}


static ssize_t
ngx_teleclinic_ws_send(wslay_event_context_ptr ctx, const uint8_t *data,
    size_t len, int flags, void *user_data)
{
    ngx_teleclinic_ws_t  *ws = user_data;

    ngx_int_t  rc;

    if (flags & WSLAY_MSG_MORE) {
        /* a header: it waits for its payload, to go out with it */

        if (len > sizeof(ngx_teleclinic_ws_more) - ngx_teleclinic_ws_more_len)
        {
            ngx_teleclinic_ws_more_len = 0;
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
            return -1;
        }

        ngx_memcpy(ngx_teleclinic_ws_more + ngx_teleclinic_ws_more_len,
                   data, len);
        ngx_teleclinic_ws_more_len += len;

        return len;
    }

    rc = ngx_teleclinic_ws_output(ws, ngx_teleclinic_ws_more,
                                  ngx_teleclinic_ws_more_len, data, len);
    ngx_teleclinic_ws_more_len = 0;

    if (rc != NGX_OK) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }

    return len;
}


static void
ngx_teleclinic_ws_on_msg(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *arg, void *user_data)
{
    ngx_teleclinic_ws_t  *ws = user_data;

    if (wslay_is_ctrl_frame(arg->opcode)) {
        if (arg->opcode == WSLAY_PONG) {
            ws->ping_sent = 0;
        }

        /*
         * wslay answers pings and close frames itself; a ping costs a
         * pong as a message costs an answer, so pings and pongs count
         * toward the rate as messages do
         */
        if (arg->opcode != WSLAY_CONNECTION_CLOSE && !ws->closing) {
            (void) ngx_teleclinic_ws_rate_ok(ws);
        }

        return;
    }

    if (ws->closing) {
        return;
    }

    if (ngx_teleclinic_ws_rate_ok(ws) != NGX_OK) {
        return;
    }

    if (arg->opcode != WSLAY_TEXT_FRAME) {
        ngx_teleclinic_ws_fail(ws, WSLAY_CODE_UNSUPPORTED_DATA,
                               "binary messages are not supported");
        return;
    }

    /* wslay leaves UTF-8 to us (RFC 6455, 8.1) */
    if (!ngx_teleclinic_ws_utf8_valid(arg->msg, arg->msg_length)) {
        ngx_teleclinic_ws_fail(ws, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA,
                               "text message is not UTF-8");
        return;
    }

    ngx_teleclinic_ws_message(ws, arg->msg, arg->msg_length);

    if (ngx_teleclinic_ws_pending(ws) > ws->conf->send_buffer) {
        ws->overflow = 1;
    }
}


/*
 * A token bucket: rate messages a second, burst at once; pings and
 * pongs count as messages.  The first message over the limit gets an
 * error; a peer that goes on sending while the bucket is empty for
 * another burst is closed with 1008.
 */

static ngx_int_t
ngx_teleclinic_ws_rate_ok(ngx_teleclinic_ws_t *ws)
{
    ngx_msec_int_t  ms;
    ngx_uint_t      max;

    ms = (ngx_msec_int_t) (ngx_current_msec - ws->last);
    ws->last = ngx_current_msec;

    max = ws->conf->burst * 1000;

    if (ms > 0) {
        ws->tokens += ngx_min((ngx_uint_t) ms, max) * ws->conf->rate;

        if (ws->tokens > max) {
            ws->tokens = max;
        }
    }

    if (ws->tokens >= 1000) {
        ws->tokens -= 1000;
        ws->strikes = 0;
        return NGX_OK;
    }

    if (ws->strikes++ == 0) {
        ngx_teleclinic_ws_send_error(ws, NULL, "rate_limited",
                                "too many messages, slow down");
        return NGX_DECLINED;
    }

    if (ws->strikes > ws->conf->burst) {
        ngx_log_error(NGX_LOG_INFO, ws->request->connection->log, 0,
                      "WebSocket peer floods, closed");
        ngx_teleclinic_ws_fail(ws, WSLAY_CODE_POLICY_VIOLATION,
                               "too many messages");

        /*
         * nothing more of it is read: wslay would answer every ping
         * still to come with a pong, until the peer's close
         */
        wslay_event_shutdown_read(ws->ctx);
    }

    return NGX_DECLINED;
}


/* the versioned protocol: {"v":1,"type":...} */

static void
ngx_teleclinic_ws_message(ngx_teleclinic_ws_t *ws, const u_char *text,
    size_t len)
{
    json_t                   *reply;
    ngx_teleclinic_ws_msg_t   msg;

    /*
     * a known type with bad fields goes on: who may send it is answered
     * first (not_joined, unknown_type), then what is wrong with it
     */

    if (ngx_teleclinic_ws_msg_parse(text, len, &msg) != NGX_OK
        && (msg.type == 0 || msg.type == NGX_TELECLINIC_WS_ECHO))
    {
        ngx_teleclinic_ws_send_error(ws, msg.id, msg.code, msg.message);
        ngx_teleclinic_ws_msg_free(&msg);
        return;
    }

    if (msg.type == NGX_TELECLINIC_WS_ECHO) {
        reply = json_pack("{s:i, s:s, s:O}", "v", 1, "type", "echo",
                          "data", msg.data ? msg.data : json_null());

        if (reply && msg.id) {
            json_object_set(reply, "id", msg.id);
        }

        ngx_teleclinic_ws_send_json(ws, reply);

    } else {
        ws->conf->handler->message(ws, &msg);
    }

    ngx_teleclinic_ws_msg_free(&msg);
}


void
ngx_teleclinic_ws_send_error(ngx_teleclinic_ws_t *ws, json_t *id,
    const char *code, const char *message)
{
    json_t  *reply;

    reply = json_pack("{s:i, s:s, s:s, s:s}", "v", 1, "type", "error",
                      "code", code, "message", message);

    if (reply && id) {
        json_object_set(reply, "id", id);
    }

    ngx_teleclinic_ws_send_json(ws, reply);
}


void
ngx_teleclinic_ws_send_json(ngx_teleclinic_ws_t *ws, json_t *json)
{
    char  *text;

    if (json == NULL) {
        ngx_teleclinic_ws_close(ws, WSLAY_CODE_INTERNAL_SERVER_ERROR,
                                "out of memory");
        return;
    }

    text = json_dumps(json, JSON_COMPACT);
    json_decref(json);

    if (text == NULL) {
        ngx_teleclinic_ws_close(ws, WSLAY_CODE_INTERNAL_SERVER_ERROR,
                                "out of memory");
        return;
    }

    ngx_teleclinic_ws_send_text(ws, (u_char *) text, ngx_strlen(text));

    free(text);
}


void
ngx_teleclinic_ws_send_text(ngx_teleclinic_ws_t *ws, u_char *text,
    size_t len)
{
    u_char             hdr[NGX_TELECLINIC_WS_HEADER];
    size_t             hlen;
    ngx_connection_t  *c;

    if (ws->done || ws->closing || ws->io_error) {
        return;
    }

    if (ws->remote) {
        ws->remote->send(ws, text, len);
        return;
    }

    c = ws->request->connection;

    if (ws->ctx) {
        /* what wslay queued before (a pong) goes first, as it read it */

        if (wslay_event_want_write(ws->ctx)) {
            wslay_event_set_error(ws->ctx, 0);

            if (wslay_event_send(ws->ctx) != 0) {
                ws->io_error = 1;
                goto failed;
            }
        }

        /* the peer closed and wslay answered: nothing goes after a close */
        if (wslay_event_get_close_sent(ws->ctx)) {
            return;
        }
    }

    /*
     * Server frames are unmasked and the module sends each message in one
     * frame, so the frame is made here, not queued in wslay: no context
     * for it on an idle connection, and no copy when the socket takes it.
     */

    hlen = ngx_teleclinic_ws_frame_header(hdr, WSLAY_TEXT_FRAME, len);

    if (ngx_teleclinic_ws_output(ws, hdr, hlen, text, len) == NGX_OK
        && ngx_teleclinic_ws_pending(ws) <= ws->conf->send_buffer)
    {
        return;
    }

failed:

    /* the socket failed or the peer does not read: flush() ends it */

    if (!c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


void
ngx_teleclinic_ws_close(ngx_teleclinic_ws_t *ws, uint16_t code,
    const char *reason)
{
    ngx_connection_t  *c;

    if (ws->done) {
        return;
    }

    if (ws->remote) {
        ws->done = 1;
        ws->remote->close(ws, code, reason);
        return;
    }

    ngx_teleclinic_ws_fail(ws, code, reason);

    c = ws->request->connection;

    if (!c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


/*
 * wslay's context is 9 KiB (a 4 KiB buffer each way): most of what a
 * waiting patient's connection would cost, though it sits idle between
 * a ping every half minute and a queue update now and then.  So an idle
 * connection gives it back and makes a new one when something comes or
 * goes.  Idle means wslay holds nothing: every byte it read belongs to a
 * frame that ended, no message is half received (fragments), nothing
 * waits to be sent, and no close is under way.
 */

static ngx_int_t
ngx_teleclinic_ws_wake(ngx_teleclinic_ws_t *ws)
{
    if (ws->ctx) {
        return NGX_OK;
    }

    if (wslay_event_context_server_init(&ws->ctx,
                                        &ngx_teleclinic_ws_callbacks, ws)
        != 0)
    {
        ws->ctx = NULL;
        return NGX_ERROR;
    }

    wslay_event_config_set_max_recv_msg_length(ws->ctx,
                                               ws->conf->max_message);

    return NGX_OK;
}


static void
ngx_teleclinic_ws_sleep(ngx_teleclinic_ws_t *ws)
{
    ngx_connection_t  *c;

    c = ws->request->connection;

    /* frames waiting in ws->out are not wslay's: they keep no context */

    if (ws->ctx == NULL
        || ws->closing || ws->close_code || ws->overflow
        || ws->in_frame || ws->fragmented || ws->fed != ws->framed
        || (c->buffered & NGX_HTTP_WRITE_BUFFERED)
        || wslay_event_want_write(ws->ctx)
        || wslay_event_get_queued_msg_count(ws->ctx)
        || wslay_event_get_close_received(ws->ctx)
        || wslay_event_get_close_sent(ws->ctx))
    {
        return;
    }

    wslay_event_context_free(ws->ctx);
    ws->ctx = NULL;
    ws->fed = 0;
    ws->framed = 0;
}


/*
 * The output.  A frame goes to the socket in one send, its header and
 * payload together: two sends would be two TCP segments (nodelay) or two
 * TLS records, and on loopback each send costs the receiver's work too.
 * What the socket does not take waits in ws->out, a buffer of its own
 * that is freed when it drains, so an idle connection holds none.  It is
 * from ngx_alloc(), not the request's pool: a pool keeps what it gives
 * until the connection ends, and a slow reader's output comes and goes.
 */

static ngx_int_t
ngx_teleclinic_ws_output(ngx_teleclinic_ws_t *ws, const u_char *hdr,
    size_t hlen, const u_char *data, size_t len)
{
    u_char             frame[NGX_TELECLINIC_WS_FRAME], *p;
    size_t             size;
    ssize_t            n;
    ngx_connection_t  *c;

    if (ws->io_error) {
        return NGX_ERROR;
    }

    c = ws->request->connection;
    size = hlen + len;

    if (ws->out == NULL && size <= NGX_TELECLINIC_WS_FRAME
        && c->write->ready && !(c->buffered & NGX_HTTP_WRITE_BUFFERED))
    {
        p = ngx_cpymem(frame, hdr, hlen);

        if (len) {
            ngx_memcpy(p, data, len);
        }

        n = c->send(c, frame, size);

        if (n == NGX_ERROR) {
            ws->io_error = 1;
            return NGX_ERROR;
        }

        if (n == NGX_AGAIN) {
            n = 0;
        }

        if ((size_t) n == size) {
            return NGX_OK;
        }

        return ngx_teleclinic_ws_pend(ws, frame + n, size - n, NULL, 0);
    }

    if (ngx_teleclinic_ws_pend(ws, hdr, hlen, data, len) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_teleclinic_ws_drain(ws);
}


/* bytes after those waiting in ws->out, which grows (doubling) to hold them */

static ngx_int_t
ngx_teleclinic_ws_pend(ngx_teleclinic_ws_t *ws, const u_char *hdr,
    size_t hlen, const u_char *data, size_t len)
{
    size_t      have, need, size;
    ngx_buf_t  *b;

    b = ws->out;
    have = b ? (size_t) (b->last - b->pos) : 0;
    need = have + hlen + len;

    if (b && (size_t) (b->end - b->last) < hlen + len
        && (size_t) (b->end - b->start) >= need)
    {
        /* room enough once what was sent is dropped */
        b->last = ngx_movemem(b->start, b->pos, have);
        b->pos = b->start;

    } else if (b == NULL || (size_t) (b->end - b->last) < hlen + len) {
        size = b ? 2 * (size_t) (b->end - b->start) : 0;
        size = ngx_max(size, ngx_max(need, 1024));

        b = ngx_alloc(sizeof(ngx_buf_t) + size, ws->request->connection->log);

        if (b == NULL) {
            /* a frame may be half sent: the stream cannot go on */
            ws->io_error = 1;
            return NGX_ERROR;
        }

        ngx_memzero(b, sizeof(ngx_buf_t));

        b->temporary = 1;
        b->start = (u_char *) (b + 1);
        b->end = b->start + size;
        b->pos = b->start;
        b->last = b->start;

        if (ws->out) {
            b->last = ngx_cpymem(b->start, ws->out->pos, have);
            ngx_free(ws->out);
        }

        ws->out = b;
    }

    b->last = ngx_cpymem(b->last, hdr, hlen);

    if (len) {
        b->last = ngx_cpymem(b->last, data, len);
    }

    return NGX_OK;
}


/* what waits, as far as the socket takes it */

static ngx_int_t
ngx_teleclinic_ws_drain(ngx_teleclinic_ws_t *ws)
{
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    c = ws->request->connection;

    while (ws->out && c->write->ready
           && !(c->buffered & NGX_HTTP_WRITE_BUFFERED))
    {
        b = ws->out;

        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_ERROR) {
            ws->io_error = 1;
            return NGX_ERROR;
        }

        if (n == NGX_AGAIN || n == 0) {
            break;
        }

        b->pos += n;

        if (b->pos == b->last) {
            ngx_free(b);
            ws->out = NULL;
        }
    }

    return NGX_OK;
}


static size_t
ngx_teleclinic_ws_pending(ngx_teleclinic_ws_t *ws)
{
    return ws->out ? (size_t) (ws->out->last - ws->out->pos) : 0;
}


/* an unmasked frame's header, FIN set; its length */

static size_t
ngx_teleclinic_ws_frame_header(u_char *p, ngx_uint_t opcode, size_t len)
{
    ngx_uint_t  i;

    p[0] = (u_char) (0x80 | opcode);

    if (len < 126) {
        p[1] = (u_char) len;
        return 2;
    }

    if (len < 65536) {
        p[1] = 126;
        p[2] = (u_char) (len >> 8);
        p[3] = (u_char) len;
        return 4;
    }

    p[1] = 127;

    for (i = 0; i < 8; i++) {
        p[2 + i] = (u_char) ((uint64_t) len >> (56 - 8 * i));
    }

    return 10;
}


/*
 * A ping, made here like a message; it counts as sent once a close is out
 * too (nothing goes after it), so a peer that takes neither is dropped at
 * the next tick.
 */

static void
ngx_teleclinic_ws_ping(ngx_teleclinic_ws_t *ws)
{
    u_char  hdr[2];
    size_t  hlen;

    ws->ping_sent = 1;

    if (ws->ctx && wslay_event_get_close_sent(ws->ctx)) {
        return;
    }

    hlen = ngx_teleclinic_ws_frame_header(hdr, WSLAY_PING, 0);

    (void) ngx_teleclinic_ws_output(ws, hdr, hlen, NULL, 0);
}


/*
 * nginx's TLS layer keeps a 16 KiB buffer (ssl_buffer_size) for what
 * goes through ngx_ssl_send_chain(): only the 101 response does here,
 * and an idle keep-alive connection frees it too
 */

static void
ngx_teleclinic_ws_release_ssl(ngx_connection_t *c)
{
#if (NGX_HTTP_SSL)
    if (c->ssl && !(c->buffered & NGX_HTTP_WRITE_BUFFERED)) {
        ngx_ssl_free_buffer(c);
    }
#endif
}


/* what a frame's header took: the rest of the bytes wslay read are its */

static void
ngx_teleclinic_ws_on_frame_start(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_start_arg *arg, void *user_data)
{
    ngx_teleclinic_ws_t  *ws = user_data;

    /*
     * RFC 6455, 5.5.1: a close frame's body is empty or begins with a
     * 2-byte code.  wslay would answer one of 1 byte with an empty close;
     * our 1002 queued first, it queues none of its own.
     */
    if (arg->opcode == WSLAY_CONNECTION_CLOSE && arg->payload_length == 1) {
        ngx_teleclinic_ws_fail(ws, WSLAY_CODE_PROTOCOL_ERROR,
                               "invalid close frame");
        (void) wslay_event_queue_close(ctx, WSLAY_CODE_PROTOCOL_ERROR,
                                       (const uint8_t *) "invalid close frame",
                                       sizeof("invalid close frame") - 1);
    }

    /* a client's frame is masked; the length in its shortest form */
    ws->framed += 2 + 4 + arg->payload_length
                  + (arg->payload_length < 126 ? 0
                     : arg->payload_length < 65536 ? 2 : 8);

    ws->in_frame = 1;

    if (!wslay_is_ctrl_frame(arg->opcode)) {
        /* a data frame without fin leaves a message half received */
        ws->fragmented = !arg->fin;
    }
}


static void
ngx_teleclinic_ws_on_frame_end(wslay_event_context_ptr ctx, void *user_data)
{
    ngx_teleclinic_ws_t  *ws = user_data;

    ws->in_frame = 0;
}


/* strict UTF-8 (RFC 3629): no overlong forms, surrogates or > U+10FFFF */

static ngx_int_t
ngx_teleclinic_ws_utf8_valid(const u_char *p, size_t len)
{
    u_char         c;
    uint32_t       u, min;
    ngx_uint_t     n;
    const u_char  *last;

    last = p + len;

    while (p < last) {
        c = *p++;

        if (c < 0x80) {
            continue;
        }

        if ((c & 0xe0) == 0xc0) {
            u = c & 0x1f;
            n = 1;
            min = 0x80;

        } else if ((c & 0xf0) == 0xe0) {
            u = c & 0x0f;
            n = 2;
            min = 0x800;

        } else if ((c & 0xf8) == 0xf0) {
            u = c & 0x07;
            n = 3;
            min = 0x10000;

        } else {
            return 0;
        }

        if ((size_t) (last - p) < n) {
            return 0;
        }

        while (n--) {
            c = *p++;

            if ((c & 0xc0) != 0x80) {
                return 0;
            }

            u = (u << 6) | (c & 0x3f);
        }

        if (u < min || u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
            return 0;
        }
    }

    return 1;
}
