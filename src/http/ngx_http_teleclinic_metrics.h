
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_HTTP_TELECLINIC_METRICS_H_INCLUDED_
#define _NGX_HTTP_TELECLINIC_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* "teleclinic_metrics;": the location answers in Prometheus' text format */
char *ngx_teleclinic_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_TELECLINIC_METRICS_H_INCLUDED_ */
