
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_KDF_H_INCLUDED_
#define _NGX_TELECLINIC_KDF_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


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


#define NGX_TELECLINIC_KDF_IDLE      0
#define NGX_TELECLINIC_KDF_QUEUED    1
#define NGX_TELECLINIC_KDF_RUNNING   2
#define NGX_TELECLINIC_KDF_DONE      3   /* run, completion not yet called */
#define NGX_TELECLINIC_KDF_OVER      4   /* completed or cancelled */


typedef struct ngx_teleclinic_kdf_task_s  ngx_teleclinic_kdf_task_t;

typedef void (*ngx_teleclinic_kdf_pt)(ngx_teleclinic_kdf_task_t *task);

/*
 * A password check for the worker's own KDF thread.  The memory stays
 * the caller's and must live until the completion (done) is called or
 * ngx_teleclinic_kdf_cancel() has returned NGX_OK.
 */
struct ngx_teleclinic_kdf_task_s {
    ngx_teleclinic_kdf_task_t    *next;
    ngx_uint_t                    state;
    ngx_teleclinic_kdf_pt         run;      /* on the thread */
    ngx_teleclinic_kdf_pt         done;     /* on the event loop, after run */
    void                         *data;
};


#if (NGX_THREADS)

/* NGX_OK: queued; NGX_BUSY: max tasks are already queued or running */
ngx_int_t ngx_teleclinic_kdf_post(ngx_teleclinic_kdf_task_t *task,
    ngx_uint_t max, ngx_log_t *log);

/* NGX_OK: it had not started and never will; NGX_DECLINED: done follows */
ngx_int_t ngx_teleclinic_kdf_cancel(ngx_teleclinic_kdf_task_t *task);

/* tasks this worker has queued, running or not yet completed */
ngx_uint_t ngx_teleclinic_kdf_pending(void);

void ngx_teleclinic_kdf_exit_process(ngx_cycle_t *cycle);

#endif


#endif /* _NGX_TELECLINIC_KDF_H_INCLUDED_ */
