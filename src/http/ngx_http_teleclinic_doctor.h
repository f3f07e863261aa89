
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_DOCTOR_H_INCLUDED_
#define _NGX_TELECLINIC_DOCTOR_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_teleclinic.h"


#define NGX_TELECLINIC_SALT_MAX      64
#define NGX_TELECLINIC_KDF_LEN       32


/* a doctor's password hash: "scrypt$N$r$p$<base64 salt>$<base64 hash>" */
typedef struct {
    uint64_t                      n;
    uint64_t                      r;
    uint64_t                      p;
    size_t                        salt_len;
    u_char                        salt[NGX_TELECLINIC_SALT_MAX];
    u_char                        hash[NGX_TELECLINIC_KDF_LEN];
} ngx_teleclinic_password_t;


/* NGX_OK for a well-formed hash with sane costs; pw may be NULL */
ngx_int_t ngx_teleclinic_password_parse(ngx_str_t *text,
    ngx_teleclinic_password_t *pw);


/* POST /api/v1/doctor/login, with the request body read */
ngx_int_t ngx_http_teleclinic_doctor_login(ngx_http_request_t *r,
    ngx_str_t *body);


#endif /* _NGX_TELECLINIC_DOCTOR_H_INCLUDED_ */
