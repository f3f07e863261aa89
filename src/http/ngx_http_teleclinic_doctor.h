
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_HTTP_TELECLINIC_DOCTOR_H_INCLUDED_
#define _NGX_HTTP_TELECLINIC_DOCTOR_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_teleclinic.h"


/* POST /api/v1/doctor/login, with the request body read */
ngx_int_t ngx_http_teleclinic_doctor_login(ngx_http_request_t *r,
    ngx_str_t *body);

/* GET /api/v1/doctor/login: how a doctor signs in here */
ngx_int_t ngx_http_teleclinic_doctor_login_ways(ngx_http_request_t *r);


#endif /* _NGX_HTTP_TELECLINIC_DOCTOR_H_INCLUDED_ */
