
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_HTTP_TELECLINIC_BOOKING_H_INCLUDED_
#define _NGX_HTTP_TELECLINIC_BOOKING_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_teleclinic_util.h"


/* a copy of an appointment to answer from, taken with the zone locked */
ngx_int_t ngx_http_teleclinic_appt_copy(ngx_pool_t *pool,
    ngx_teleclinic_appt_t *appt, ngx_teleclinic_appt_t *copy);

/* the answer about one appointment, from a copy of it */
ngx_int_t ngx_http_teleclinic_appt_answer(ngx_http_request_t *r,
    ngx_teleclinic_appt_t *appt, ngx_uint_t patient, ngx_uint_t access,
    ngx_str_t *text);

/* the patients' routes of the API, with the request body read */
ngx_int_t ngx_http_teleclinic_departments(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_doctors(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_slots(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_book(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_get(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_cancel(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_reschedule(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);


#endif /* _NGX_HTTP_TELECLINIC_BOOKING_H_INCLUDED_ */
