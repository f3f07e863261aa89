
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_HTTP_TELECLINIC_RECORD_H_INCLUDED_
#define _NGX_HTTP_TELECLINIC_RECORD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_teleclinic_util.h"


/* the worker's sweep of records past teleclinic_record_retention */
ngx_int_t ngx_http_teleclinic_record_init_process(ngx_cycle_t *cycle,
    ngx_http_teleclinic_main_conf_t *tmcf);

/* /appointments/{id}/record... and /appointments/{id}/rating */
ngx_int_t ngx_http_teleclinic_record_get(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_record_note(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_record_add(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_record_drop(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_record_close(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_rating(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_record_snapshot(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_record_image(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);


#endif /* _NGX_HTTP_TELECLINIC_RECORD_H_INCLUDED_ */
