
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_HTTP_TELECLINIC_ADMIN_H_INCLUDED_
#define _NGX_HTTP_TELECLINIC_ADMIN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_teleclinic_util.h"


/* the admin key's routes of the API, with the request body read */
ngx_int_t ngx_http_teleclinic_admin_directory(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_admin_put(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_admin_entry(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_admin_day(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_doctor_day(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);


#endif /* _NGX_HTTP_TELECLINIC_ADMIN_H_INCLUDED_ */
