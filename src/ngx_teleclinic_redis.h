
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_REDIS_H_INCLUDED_
#define _NGX_TELECLINIC_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <hiredis/hiredis.h>


/*
 * hiredis's asynchronous API on nginx's event loop.  One connection is
 * one ngx_teleclinic_redis_t in one worker: its socket is an nginx
 * connection whose read and write events drive hiredis, so nothing
 * blocks the worker.  Addresses are resolved when the configuration is
 * read (hiredis would resolve with a blocking call); the timeouts are
 * nginx timers, since hiredis 0.14 has none for asynchronous commands.
 */


typedef struct ngx_teleclinic_redis_s  ngx_teleclinic_redis_t;

/*
 * The answer to one command: reply is NULL when it failed (the
 * connection was lost or timed out, or the worker exits).  Called
 * exactly once per command that ngx_teleclinic_redis_command() took.
 * The reply is hiredis's and freed when the handler returns.
 */
typedef void (*ngx_teleclinic_redis_reply_pt)(redisReply *reply, void *data);

/*
 * called after each connect (AUTH and SELECT done) and each loss of a
 * connection that was up, not at ngx_teleclinic_redis_destroy(); may be
 * NULL
 */
typedef void (*ngx_teleclinic_redis_state_pt)(ngx_teleclinic_redis_t *rd,
    ngx_uint_t up, void *data);


typedef struct {
    ngx_addr_t                         *addr;       /* NULL with sentinels */
    ngx_array_t                        *sentinels;  /* of ngx_addr_t */
    ngx_str_t                           master;     /* its Sentinel name */
    ngx_str_t                           password;
    ngx_uint_t                          database;
    ngx_uint_t                          replicas;   /* a change's WAIT */
    ngx_msec_t                          snapshot;   /* the mirror's, every */
    ngx_msec_t                          connect_timeout;
    ngx_msec_t                          timeout;    /* for an answer */
} ngx_teleclinic_redis_conf_t;


/*
 * teleclinic_redis and teleclinic_redis_sentinel parse into conf:
 * "host:port" or "unix:/path", resolved now.
 */
char *ngx_teleclinic_redis_parse_addr(ngx_conf_t *cf, ngx_str_t *text,
    ngx_addr_t **addr);

/*
 * In a worker: a connection that connects now and, whenever it is lost,
 * again after a backoff with jitter (to the master the sentinels name,
 * when they are configured).  name is for the log.
 */
ngx_teleclinic_redis_t *ngx_teleclinic_redis_create(ngx_cycle_t *cycle,
    ngx_teleclinic_redis_conf_t *conf, const char *name,
    ngx_teleclinic_redis_state_pt state, void *data);

ngx_uint_t ngx_teleclinic_redis_is_up(ngx_teleclinic_redis_t *rd);

/*
 * Sends one command, formatted by hiredis (redisvAsyncCommand: each
 * space-separated word an argument, %b a binary one from a pointer and a
 * size_t, %s a C string, %lu an unsigned long).
 * timeout 0 is the configured one; a command that blocks on the server
 * (XREAD BLOCK) passes its block time plus that.  A command not answered
 * in time drops the connection, which fails every command on it.
 * NGX_DECLINED when the connection is not up: nothing was sent and the
 * handler will not be called.
 */
ngx_int_t ngx_teleclinic_redis_command(ngx_teleclinic_redis_t *rd,
    ngx_msec_t timeout, ngx_teleclinic_redis_reply_pt handler, void *data,
    const char *format, ...);

/*
 * SUBSCRIBE to a channel: handler is given each message's payload, for
 * as long as the connection lasts (subscribe again when it is up once
 * more).  A subscribed connection takes no other commands.
 */
typedef void (*ngx_teleclinic_redis_message_pt)(u_char *data, size_t len,
    void *ctx);

ngx_int_t ngx_teleclinic_redis_subscribe(ngx_teleclinic_redis_t *rd,
    ngx_str_t *channel, ngx_teleclinic_redis_message_pt handler, void *data);

/* at worker exit: closes the socket once; pending handlers get NULL */
void ngx_teleclinic_redis_destroy(ngx_teleclinic_redis_t *rd);


#endif /* _NGX_TELECLINIC_REDIS_H_INCLUDED_ */
