
/*
 * Copyright (C) ngx_teleclinic authors
 */


/*
 * The one nginx function that the fuzz targets need and do not compile
 * from nginx's sources: ngx_log.c would bring in the cycle, the cached
 * time and syslog.  The targets' log has log_level 0, so ngx_log_error()
 * never calls this: the call is only there to link.
 */


#include <ngx_config.h>
#include <ngx_core.h>


void
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
    fprintf(stderr, "ngx_log_error_core() called: %s\n", fmt);
    abort();
}
