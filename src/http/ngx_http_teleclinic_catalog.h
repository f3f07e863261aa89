
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_HTTP_TELECLINIC_CATALOG_H_INCLUDED_
#define _NGX_HTTP_TELECLINIC_CATALOG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_teleclinic_util.h"


/* teleclinic_formulary file; read and checked here, at start and reload */
char *ngx_http_teleclinic_formulary_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);

/* the doctors' catalogue routes of the API: drugs and exams */
ngx_int_t ngx_http_teleclinic_formulary(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
ngx_int_t ngx_http_teleclinic_exams(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);


#endif /* _NGX_HTTP_TELECLINIC_CATALOG_H_INCLUDED_ */
