
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_WEBSOCKET_H_INCLUDED_
#define _NGX_TELECLINIC_WEBSOCKET_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* the location's WebSocket settings, part of the module's loc conf */
typedef struct {
    ngx_flag_t                    enable;
    ngx_array_t                  *origins;      /* of ngx_str_t */
    ngx_msec_t                    ping;
    size_t                        max_message;
    size_t                        send_buffer;
    ngx_uint_t                    rate;         /* messages per second */
    ngx_uint_t                    burst;
} ngx_teleclinic_ws_conf_t;


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


#endif /* _NGX_TELECLINIC_WEBSOCKET_H_INCLUDED_ */
