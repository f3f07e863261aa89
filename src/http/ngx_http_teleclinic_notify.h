
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_HTTP_TELECLINIC_NOTIFY_H_INCLUDED_
#define _NGX_HTTP_TELECLINIC_NOTIFY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_teleclinic_util.h"


ngx_int_t ngx_teleclinic_notify_init_process(ngx_cycle_t *cycle,
    ngx_http_teleclinic_main_conf_t *tmcf);
void ngx_teleclinic_notify_exit_process(ngx_cycle_t *cycle);

/* a change created messages: deliver them now rather than at the sweep */
void ngx_teleclinic_notify_kick(void);


#endif /* _NGX_HTTP_TELECLINIC_NOTIFY_H_INCLUDED_ */
