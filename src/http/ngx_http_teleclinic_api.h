
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_HTTP_TELECLINIC_API_H_INCLUDED_
#define _NGX_HTTP_TELECLINIC_API_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_teleclinic_util.h"


/* the content handler of a "teleclinic_api" location */
ngx_int_t ngx_http_teleclinic_api_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_TELECLINIC_API_H_INCLUDED_ */
