
/*
 * Copyright (C) ngx_teleclinic authors
 */


/*
 * What the fuzz targets need of nginx and do not compile from its
 * sources: ngx_log_error_core(), as ngx_log.c would bring in the cycle,
 * the cached time and syslog (the targets' log has log_level 0, so
 * ngx_log_error() never calls it: the call is only there to link); and
 * ngx_pid, which ngx_process.c sets in nginx (the sealing's nonces are
 * per process: the targets are one).
 */


#include <ngx_config.h>
#include <ngx_core.h>


ngx_pid_t  ngx_pid;


void
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
    fprintf(stderr, "ngx_log_error_core() called: %s\n", fmt);
    abort();
}
