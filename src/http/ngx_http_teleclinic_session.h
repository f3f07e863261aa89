
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_HTTP_TELECLINIC_SESSION_H_INCLUDED_
#define _NGX_HTTP_TELECLINIC_SESSION_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_teleclinic_websocket.h"
#include "ngx_http_teleclinic_relay.h"
#include "ngx_teleclinic_message.h"


/* who is on a WebSocket connection */
#define NGX_TELECLINIC_ROLE_NONE      0
#define NGX_TELECLINIC_ROLE_PATIENT   1
#define NGX_TELECLINIC_ROLE_DOCTOR    2


/* the waiting room's side of a WebSocket connection */
ngx_int_t ngx_teleclinic_session_open(ngx_teleclinic_ws_t *ws);
void ngx_teleclinic_session_message(ngx_teleclinic_ws_t *ws,
    ngx_teleclinic_ws_msg_t *msg);
void ngx_teleclinic_session_close(ngx_teleclinic_ws_t *ws);

ngx_int_t ngx_teleclinic_session_init_process(ngx_cycle_t *cycle);
void ngx_teleclinic_session_exit_process(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_TELECLINIC_SESSION_H_INCLUDED_ */
