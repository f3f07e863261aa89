
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_HTTP_TELECLINIC_WEBSOCKET_H_INCLUDED_
#define _NGX_HTTP_TELECLINIC_WEBSOCKET_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include <wslay/wslay.h>
#include "ngx_http_teleclinic_util.h"
#include "ngx_teleclinic_message.h"


typedef struct ngx_teleclinic_ws_s  ngx_teleclinic_ws_t;


/*
 * A connection whose socket is on another node (the relay,
 * ngx_http_teleclinic_relay.c): what is sent to it and its close go
 * through these instead of a socket.
 */
typedef struct {
    void                        (*send)(ngx_teleclinic_ws_t *ws,
                                        u_char *text, size_t len);
    void                        (*close)(ngx_teleclinic_ws_t *ws,
                                         uint16_t code, const char *reason);
} ngx_teleclinic_ws_remote_t;


/*
 * What the transport hands to the layer above it, as nginx's upstream
 * calls its module: the module fills a table in at configuration, so the
 * transport names no function of the waiting room.  open is called once
 * the handshake is checked, before the 101 goes out (an error refuses the
 * upgrade with a 500); message for every well-formed message but "echo",
 * which the transport answers itself; close once, from the request's pool
 * cleanup, whatever ended the connection, even one that open failed.
 */
struct ngx_teleclinic_ws_handler_s {
    ngx_int_t                   (*open)(ngx_teleclinic_ws_t *ws);
    void                        (*message)(ngx_teleclinic_ws_t *ws,
                                           ngx_teleclinic_ws_msg_t *msg);
    void                        (*close)(ngx_teleclinic_ws_t *ws);
};


/*
 * One upgraded connection.  It lives in the request's pool: the request
 * stays open (its count holds it) until the WebSocket ends, and the pool
 * cleanup frees wslay's context, the output and the timer on every way
 * out.  ctx is NULL while the connection is idle (ngx_teleclinic_ws_sleep())
 * and out while the socket has taken everything.
 */
struct ngx_teleclinic_ws_s {
    ngx_http_request_t           *request;   /* NULL: a remote one */
    ngx_teleclinic_ws_conf_t     *conf;
    ngx_pool_t                   *pool;      /* the request's, or its own */
    ngx_log_t                    *log;
    ngx_teleclinic_ws_remote_t   *remote;
    wslay_event_context_ptr       ctx;

    /*
     * pings and the hello deadline; once a close is under way, the wait
     * for the peer's close
     */
    ngx_event_t                   timer;
    ngx_msec_t                    linger;
    ngx_msec_t                    hello_by;

    /* the message rate: tokens in thousandths of a message */
    ngx_msec_t                    last;
    ngx_uint_t                    tokens;
    ngx_uint_t                    strikes;

    /* the waiting room's side of it (ngx_teleclinic_session.c) */
    void                         *session;

    /* frames the socket did not take yet, in order */
    ngx_buf_t                    *out;

    /* calls of the recv callback in one wslay_event_recv() */
    ngx_uint_t                    reads;

    /* bytes given to wslay, and those of the frames it started */
    uint64_t                      fed;
    uint64_t                      framed;

    /* our close frame, queued once the answers before it are sent */
    uint16_t                      close_code;
    const char                   *close_reason;

    unsigned                      ping_sent:1;
    unsigned                      joined:1;
    unsigned                      closing:1;
    unsigned                      overflow:1;
    unsigned                      again:1;
    unsigned                      eof:1;
    unsigned                      io_error:1;
    unsigned                      in_frame:1;
    unsigned                      fragmented:1;
    unsigned                      done:1;
};


void ngx_teleclinic_ws_conf_init(ngx_teleclinic_ws_conf_t *conf);
void ngx_teleclinic_ws_conf_merge(ngx_teleclinic_ws_conf_t *conf,
    ngx_teleclinic_ws_conf_t *prev);

/* the directives' handlers; conf is the module's loc conf */
char *ngx_teleclinic_ws_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_teleclinic_ws_origins_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_teleclinic_ws_rate_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/*
 * Sending from anywhere in the worker: the frame goes to the socket at
 * once, or what it does not take waits in ws->out for the write event.
 * A failed socket is finalized from a posted event, never in the caller's
 * loop.  send_json takes the reference.
 */
void ngx_teleclinic_ws_send_text(ngx_teleclinic_ws_t *ws, u_char *text,
    size_t len);
void ngx_teleclinic_ws_send_json(ngx_teleclinic_ws_t *ws, json_t *json);
void ngx_teleclinic_ws_send_error(ngx_teleclinic_ws_t *ws, json_t *id,
    const char *code, const char *message);
void ngx_teleclinic_ws_close(ngx_teleclinic_ws_t *ws, uint16_t code,
    const char *reason);

/* the connection said a hello that was welcomed: no deadline any more */
void ngx_teleclinic_ws_joined(ngx_teleclinic_ws_t *ws);


#endif /* _NGX_HTTP_TELECLINIC_WEBSOCKET_H_INCLUDED_ */
