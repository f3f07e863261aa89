
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_HTTP_TELECLINIC_RELAY_H_INCLUDED_
#define _NGX_HTTP_TELECLINIC_RELAY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_http_teleclinic_util.h"
#include "ngx_http_teleclinic_websocket.h"


/* close codes registered for servers: connect again, now or later */
#define NGX_HTTP_TELECLINIC_WS_MOVED     1012
#define NGX_HTTP_TELECLINIC_WS_AWAY      1013


/*
 * With several nodes, a doctor's waiting room lives on one of them
 * (ngx_teleclinic_mirror_home()).  A WebSocket connection that comes to
 * another node for that room is relayed: its messages go to the room's
 * node through Redis Pub/Sub, where a connection without a socket stands
 * for it in the waiting room, and what that one is sent comes back to
 * the client the same way.
 */

typedef struct ngx_http_teleclinic_relay_s  ngx_http_teleclinic_relay_t;


ngx_int_t ngx_http_teleclinic_relay_init_process(ngx_cycle_t *cycle,
    ngx_http_teleclinic_main_conf_t *tmcf,
    ngx_teleclinic_ws_handler_t *handler);
void ngx_http_teleclinic_relay_exit_process(ngx_cycle_t *cycle);

/*
 * A hello for the doctor's room: NGX_DECLINED when the room is here;
 * NGX_OK when the connection is relayed from now on, the hello first.
 */
ngx_int_t ngx_http_teleclinic_relay_open(ngx_teleclinic_ws_t *ws,
    ngx_str_t *doctor, json_t *hello, ngx_http_teleclinic_relay_t **relay);
void ngx_http_teleclinic_relay_message(ngx_http_teleclinic_relay_t *relay,
    json_t *root);
void ngx_http_teleclinic_relay_close(ngx_http_teleclinic_relay_t *relay);


#endif /* _NGX_HTTP_TELECLINIC_RELAY_H_INCLUDED_ */
