
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include "ngx_teleclinic_redis.h"


#define NGX_TELECLINIC_REDIS_BACKOFF_MIN  100
#define NGX_TELECLINIC_REDIS_BACKOFF_MAX  5000
#define NGX_TELECLINIC_REDIS_REASON_LEN   128
#define NGX_TELECLINIC_REDIS_PING         5000


typedef struct ngx_teleclinic_redis_cmd_s  ngx_teleclinic_redis_cmd_t;

/* one command in flight; kept on a free list when answered */
struct ngx_teleclinic_redis_cmd_s {
    ngx_teleclinic_redis_t        *rd;
    ngx_teleclinic_redis_reply_pt  handler;
    void                          *data;
    ngx_event_t                    timer;
    ngx_teleclinic_redis_cmd_t    *next;
};


struct ngx_teleclinic_redis_s {
    ngx_teleclinic_redis_conf_t   *conf;
    const char                    *name;
    ngx_log_t                     *log;
    ngx_pool_t                    *pool;
    ngx_teleclinic_redis_state_pt  state;
    void                          *data;

    redisAsyncContext             *ac;        /* to the server */
    redisAsyncContext             *sac;       /* to a sentinel, briefly */
    ngx_addr_t                    *addr;      /* the server's address */

    ngx_uint_t                     up;        /* AUTH and SELECT done */
    ngx_uint_t                     handshake; /* its answers awaited */
    ngx_uint_t                     sentinel;  /* the one to ask next */
    ngx_uint_t                     asked;     /* sentinels asked this round */
    ngx_uint_t                     destroyed;
    ngx_uint_t                     pending;   /* commands unanswered */
    ngx_uint_t                     subscribed; /* only Pub/Sub from now */
    ngx_msec_t                     backoff;

    ngx_event_t                    timer;     /* connect, handshake, ask */
    ngx_event_t                    retry;     /* the backoff */
    ngx_event_t                    ping;
    ngx_teleclinic_redis_cmd_t    *free;

    /* the master the sentinels named */
    ngx_addr_t                     master;
    ngx_sockaddr_t                 master_sockaddr;
    u_char                         master_name[NGX_SOCKADDR_STRLEN];

    /* the last failure logged, so that a repeated one goes to info */
    u_char                         reason[NGX_TELECLINIC_REDIS_REASON_LEN];
    size_t                         reason_len;
};


static void ngx_teleclinic_redis_attempt(ngx_teleclinic_redis_t *rd);
static void ngx_teleclinic_redis_connect(ngx_teleclinic_redis_t *rd,
    ngx_addr_t *addr);
static void ngx_teleclinic_redis_connected(const redisAsyncContext *ac,
    int status);
static void ngx_teleclinic_redis_handshake(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_teleclinic_redis_disconnected(const redisAsyncContext *ac,
    int status);
static void ngx_teleclinic_redis_gone(ngx_teleclinic_redis_t *rd,
    const redisAsyncContext *ac);
static void ngx_teleclinic_redis_drop(ngx_teleclinic_redis_t *rd,
    const char *reason, size_t len);
static void ngx_teleclinic_redis_failed(ngx_teleclinic_redis_t *rd,
    ngx_str_t *what, const char *reason, size_t len);
static void ngx_teleclinic_redis_ask(ngx_teleclinic_redis_t *rd);
static void ngx_teleclinic_redis_answer(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_teleclinic_redis_ask_failed(ngx_teleclinic_redis_t *rd,
    const char *reason, size_t len);
static ngx_int_t ngx_teleclinic_redis_master(ngx_teleclinic_redis_t *rd,
    redisReply *reply);
static void ngx_teleclinic_redis_timer(ngx_event_t *ev);
static void ngx_teleclinic_redis_retry(ngx_event_t *ev);
static void ngx_teleclinic_redis_ping(ngx_event_t *ev);
static void ngx_teleclinic_redis_pong(redisReply *reply, void *data);
static void ngx_teleclinic_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_teleclinic_redis_command_timeout(ngx_event_t *ev);
static redisAsyncContext *ngx_teleclinic_redis_open(
    ngx_teleclinic_redis_t *rd, ngx_addr_t *addr);
static void ngx_teleclinic_redis_add_read(void *privdata);
static void ngx_teleclinic_redis_del_read(void *privdata);
static void ngx_teleclinic_redis_add_write(void *privdata);
static void ngx_teleclinic_redis_del_write(void *privdata);
static void ngx_teleclinic_redis_cleanup(void *privdata);
static void ngx_teleclinic_redis_read_handler(ngx_event_t *rev);
static void ngx_teleclinic_redis_write_handler(ngx_event_t *wev);


char *
ngx_teleclinic_redis_parse_addr(ngx_conf_t *cf, ngx_str_t *text,
    ngx_addr_t **addr)
{
    ngx_url_t  u;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *text;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in redis address \"%V\"", u.err, text);
        }

        return NGX_CONF_ERROR;
    }

    if (u.family != AF_UNIX && u.no_port) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no port in redis address \"%V\"", text);
        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "redis address \"%V\" resolves to nothing", text);
        return NGX_CONF_ERROR;
    }

    /*
     * the first address the name resolves to: one server is one
     * address, and hiredis must be given a numeric one
     */

    *addr = ngx_palloc(cf->pool, sizeof(ngx_addr_t));
    if (*addr == NULL) {
        return NGX_CONF_ERROR;
    }

    **addr = u.addrs[0];

    return NGX_CONF_OK;
}


ngx_teleclinic_redis_t *
ngx_teleclinic_redis_create(ngx_cycle_t *cycle,
    ngx_teleclinic_redis_conf_t *conf, const char *name,
    ngx_teleclinic_redis_state_pt state, void *data)
{
    ngx_teleclinic_redis_t  *rd;

    rd = ngx_pcalloc(cycle->pool, sizeof(ngx_teleclinic_redis_t));
    if (rd == NULL) {
        return NULL;
    }

    rd->conf = conf;
    rd->name = name;
    rd->log = cycle->log;
    rd->pool = cycle->pool;
    rd->state = state;
    rd->data = data;
    rd->backoff = NGX_TELECLINIC_REDIS_BACKOFF_MIN;

    /* workers start at once: they should not all ask one sentinel first */
    if (conf->sentinels) {
        rd->sentinel = ngx_random() % conf->sentinels->nelts;
    }

    /* cancelable: a worker that shuts down does not wait for them */

    rd->timer.handler = ngx_teleclinic_redis_timer;
    rd->timer.data = rd;
    rd->timer.log = rd->log;
    rd->timer.cancelable = 1;

    rd->retry.handler = ngx_teleclinic_redis_retry;
    rd->retry.data = rd;
    rd->retry.log = rd->log;
    rd->retry.cancelable = 1;

    rd->ping.handler = ngx_teleclinic_redis_ping;
    rd->ping.data = rd;
    rd->ping.log = rd->log;
    rd->ping.cancelable = 1;

    ngx_teleclinic_redis_attempt(rd);

    return rd;
}


ngx_uint_t
ngx_teleclinic_redis_is_up(ngx_teleclinic_redis_t *rd)
{
    return rd->up;
}


ngx_int_t
ngx_teleclinic_redis_command(ngx_teleclinic_redis_t *rd,
    ngx_msec_t timeout, ngx_teleclinic_redis_reply_pt handler, void *data,
    const char *format, ...)
{
    int                          rc;
    va_list                      args;
    ngx_teleclinic_redis_cmd_t  *cmd;

    if (!rd->up) {
        return NGX_DECLINED;
    }

    cmd = rd->free;

    if (cmd) {
        rd->free = cmd->next;

    } else {
        cmd = ngx_palloc(rd->pool, sizeof(ngx_teleclinic_redis_cmd_t));
        if (cmd == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_memzero(cmd, sizeof(ngx_teleclinic_redis_cmd_t));

    cmd->rd = rd;
    cmd->handler = handler;
    cmd->data = data;

    cmd->timer.handler = ngx_teleclinic_redis_command_timeout;
    cmd->timer.data = cmd;
    cmd->timer.log = rd->log;
    cmd->timer.cancelable = 1;

    va_start(args, format);
    rc = redisvAsyncCommand(rd->ac, ngx_teleclinic_redis_reply, cmd, format,
                            args);
    va_end(args);

    if (rc != REDIS_OK) {
        cmd->next = rd->free;
        rd->free = cmd;
        return NGX_ERROR;
    }

    ngx_add_timer(&cmd->timer, timeout ? timeout : rd->conf->timeout);

    rd->pending++;

    return NGX_OK;
}


void
ngx_teleclinic_redis_destroy(ngx_teleclinic_redis_t *rd)
{
    redisAsyncContext  *ac;

    rd->destroyed = 1;
    rd->up = 0;

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    if (rd->retry.timer_set) {
        ngx_del_timer(&rd->retry);
    }

    if (rd->ping.timer_set) {
        ngx_del_timer(&rd->ping);
    }

    if (rd->sac) {
        ac = rd->sac;
        rd->sac = NULL;
        redisAsyncFree(ac);
    }

    if (rd->ac) {
        /* hiredis answers every pending command with NULL and closes */
        ac = rd->ac;
        rd->ac = NULL;
        redisAsyncFree(ac);
    }
}


/* a connection is due: to the address, or to what the sentinels name */

static void
ngx_teleclinic_redis_attempt(ngx_teleclinic_redis_t *rd)
{
    if (rd->conf->sentinels) {
        rd->asked = 0;
        ngx_teleclinic_redis_ask(rd);
        return;
    }

    ngx_teleclinic_redis_connect(rd, rd->conf->addr);
}


static void
ngx_teleclinic_redis_connect(ngx_teleclinic_redis_t *rd, ngx_addr_t *addr)
{
    redisAsyncContext  *ac;

    rd->addr = addr;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, rd->log, 0,
                   "teleclinic: redis \"%s\": connecting to %V",
                   rd->name, &addr->name);

    ac = ngx_teleclinic_redis_open(rd, addr);
    if (ac == NULL) {
        return;
    }

    /* after the hooks are set: this adds the write event that says when */
    redisAsyncSetConnectCallback(ac, ngx_teleclinic_redis_connected);
    redisAsyncSetDisconnectCallback(ac, ngx_teleclinic_redis_disconnected);

    rd->ac = ac;
    rd->handshake = 0;

    /* hiredis sends them once connected, before anything else */

    if (rd->conf->password.len) {
        if (redisAsyncCommand(ac, ngx_teleclinic_redis_handshake, rd,
                              "AUTH %b", rd->conf->password.data,
                              rd->conf->password.len)
            != REDIS_OK)
        {
            goto failed;
        }

        rd->handshake++;
    }

    if (rd->conf->database) {
        if (redisAsyncCommand(ac, ngx_teleclinic_redis_handshake, rd,
                              "SELECT %lu",
                              (unsigned long) rd->conf->database)
            != REDIS_OK)
        {
            goto failed;
        }

        rd->handshake++;
    }

    /* a sentinel's answer may be stale during a failover */

    if (redisAsyncCommand(ac, ngx_teleclinic_redis_handshake, rd,
                          rd->conf->sentinels ? "ROLE" : "PING")
        != REDIS_OK)
    {
        goto failed;
    }

    rd->handshake++;

    ngx_add_timer(&rd->timer, rd->conf->connect_timeout);

    return;

failed:

    ngx_teleclinic_redis_drop(rd, "cannot queue the handshake", 26);
}


static void
ngx_teleclinic_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_teleclinic_redis_t  *rd = ac->data;

    if (status == REDIS_OK) {
        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, rd->log, 0,
                       "teleclinic: redis \"%s\": tcp connected to %V",
                       rd->name, &rd->addr->name);

        /* the rest of connect_timeout is the handshake's */
        return;
    }

    /* hiredis frees the context after this: it must not be freed here */

    if (rd->ac == ac) {
        rd->ac = NULL;

        if (rd->timer.timer_set) {
            ngx_del_timer(&rd->timer);
        }

        ngx_teleclinic_redis_failed(rd, &rd->addr->name, ac->errstr,
                                    ngx_strlen(ac->errstr));
    }
}


/* the answers to AUTH, SELECT and ROLE (or PING) */

static void
ngx_teleclinic_redis_handshake(redisAsyncContext *ac, void *r,
    void *privdata)
{
    ngx_teleclinic_redis_t *rd = privdata;

    u_char      *p, buf[NGX_TELECLINIC_REDIS_REASON_LEN];
    redisReply  *reply = r;

    if (rd->ac != ac) {
        /* dropped already */
        return;
    }

    if (reply == NULL) {
        ngx_teleclinic_redis_gone(rd, ac);
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        p = ngx_snprintf(buf, sizeof(buf), "refused: %*s",
                         (size_t) reply->len, reply->str);
        ngx_teleclinic_redis_drop(rd, (char *) buf, p - buf);
        return;
    }

    if (reply->type == REDIS_REPLY_ARRAY
        && (reply->elements == 0
            || reply->element[0]->type != REDIS_REPLY_STRING
            || reply->element[0]->len != 6
            || ngx_strncmp(reply->element[0]->str, "master", 6) != 0))
    {
        ngx_teleclinic_redis_drop(rd, "not a master", 12);
        return;
    }

    if (--rd->handshake) {
        return;
    }

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    rd->up = 1;
    rd->subscribed = 0;
    rd->backoff = NGX_TELECLINIC_REDIS_BACKOFF_MIN;
    rd->reason_len = 0;

    ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                  "teleclinic: redis \"%s\": connected to %V",
                  rd->name, &rd->addr->name);

    ngx_add_timer(&rd->ping, NGX_TELECLINIC_REDIS_PING);

    if (rd->state) {
        rd->state(rd, 1, rd->data);
    }
}


static void
ngx_teleclinic_redis_disconnected(const redisAsyncContext *ac, int status)
{
    ngx_teleclinic_redis_t  *rd = ac->data;

    if (rd->ac == ac) {
        ngx_teleclinic_redis_gone(rd, ac);
    }
}


/*
 * hiredis found the connection broken and frees the context itself:
 * from a command's NULL answer or the disconnect callback, whichever
 * comes first
 */

static void
ngx_teleclinic_redis_gone(ngx_teleclinic_redis_t *rd,
    const redisAsyncContext *ac)
{
    const char  *reason;

    reason = ac->err ? ac->errstr : "connection closed";

    rd->ac = NULL;

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    ngx_teleclinic_redis_failed(rd, &rd->addr->name, reason,
                                ngx_strlen(reason));
}


/* we end the connection: it timed out or refused the handshake */

static void
ngx_teleclinic_redis_drop(ngx_teleclinic_redis_t *rd, const char *reason,
    size_t len)
{
    redisAsyncContext  *ac;

    ac = rd->ac;
    rd->ac = NULL;

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    /* down first: a handler answered NULL may send again, and must not */
    ngx_teleclinic_redis_failed(rd, &rd->addr->name, reason, len);

    /*
     * pending commands are answered NULL (after the current callback,
     * when called from one); the disconnect callback sees rd->ac changed
     */

    if (ac) {
        redisAsyncFree(ac);
    }
}


/*
 * A connection or an attempt ended: logged at notice when it was up or
 * the reason is new, at info when it only failed again the same way;
 * the next attempt after the backoff.
 */

static void
ngx_teleclinic_redis_failed(ngx_teleclinic_redis_t *rd, ngx_str_t *what,
    const char *reason, size_t len)
{
    ngx_uint_t  was_up, level;
    ngx_msec_t  delay;

    was_up = rd->up;
    rd->up = 0;

    if (rd->ping.timer_set) {
        ngx_del_timer(&rd->ping);
    }

    if (rd->destroyed) {
        return;
    }

    len = ngx_min(len, NGX_TELECLINIC_REDIS_REASON_LEN);

    if (was_up) {
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "teleclinic: redis \"%s\": lost %V: %*s",
                      rd->name, what, len, reason);

    } else {
        level = (len == rd->reason_len
                 && ngx_strncmp(rd->reason, reason, len) == 0)
                ? NGX_LOG_INFO : NGX_LOG_NOTICE;

        ngx_log_error(level, rd->log, 0,
                      "teleclinic: redis \"%s\": cannot connect to %V: %*s",
                      rd->name, what, len, reason);
    }

    ngx_memcpy(rd->reason, reason, len);
    rd->reason_len = len;

    /* half the backoff and a random part of the other half */
    delay = rd->backoff / 2 + ngx_random() % (rd->backoff / 2 + 1);

    rd->backoff = ngx_min(rd->backoff * 2, NGX_TELECLINIC_REDIS_BACKOFF_MAX);

    if (rd->retry.timer_set) {
        ngx_del_timer(&rd->retry);
    }

    ngx_add_timer(&rd->retry, delay);

    if (was_up && rd->state) {
        rd->state(rd, 0, rd->data);
    }
}


/* SENTINEL get-master-addr-by-name on a short connection to one sentinel */

static void
ngx_teleclinic_redis_ask(ngx_teleclinic_redis_t *rd)
{
    ngx_addr_t         *sentinel;
    redisAsyncContext  *ac;

    sentinel = rd->conf->sentinels->elts;
    sentinel += rd->sentinel;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, rd->log, 0,
                   "teleclinic: redis \"%s\": asking sentinel %V",
                   rd->name, &sentinel->name);

    ac = ngx_teleclinic_redis_open(rd, sentinel);
    if (ac == NULL) {
        return;
    }

    rd->sac = ac;

    if (redisAsyncCommand(ac, ngx_teleclinic_redis_answer, rd,
                          "SENTINEL get-master-addr-by-name %b",
                          rd->conf->master.data, rd->conf->master.len)
        != REDIS_OK)
    {
        ngx_teleclinic_redis_ask_failed(rd, "cannot queue the question", 25);
        return;
    }

    ngx_add_timer(&rd->timer, rd->conf->connect_timeout + rd->conf->timeout);
}


static void
ngx_teleclinic_redis_answer(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_teleclinic_redis_t *rd = privdata;

    const char  *reason;
    redisReply  *reply = r;

    if (rd->sac != ac) {
        return;
    }

    if (reply == NULL) {
        /* hiredis frees the context itself */
        rd->sac = NULL;
        reason = ac->err ? ac->errstr : "connection closed";
        ngx_teleclinic_redis_ask_failed(rd, reason, ngx_strlen(reason));
        return;
    }

    if (reply->type == REDIS_REPLY_NIL) {
        ngx_teleclinic_redis_ask_failed(rd, "does not know the master", 24);
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_teleclinic_redis_ask_failed(rd, reply->str, reply->len);
        return;
    }

    if (ngx_teleclinic_redis_master(rd, reply) != NGX_OK) {
        ngx_teleclinic_redis_ask_failed(rd, "answered no numeric address",
                                        27);
        return;
    }

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    /* freed once this callback returns */
    rd->sac = NULL;
    redisAsyncFree(ac);

    ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                  "teleclinic: redis \"%s\": the sentinels name %V",
                  rd->name, &rd->master.name);

    ngx_teleclinic_redis_connect(rd, &rd->master);
}


/* the next sentinel, or the backoff when each was asked this round */

static void
ngx_teleclinic_redis_ask_failed(ngx_teleclinic_redis_t *rd,
    const char *reason, size_t len)
{
    ngx_addr_t         *sentinel;
    redisAsyncContext  *ac;

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    if (rd->sac) {
        ac = rd->sac;
        rd->sac = NULL;
        redisAsyncFree(ac);
    }

    sentinel = rd->conf->sentinels->elts;
    sentinel += rd->sentinel;

    ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                  "teleclinic: redis \"%s\": sentinel %V: %*s",
                  rd->name, &sentinel->name, len, reason);

    rd->sentinel = (rd->sentinel + 1) % rd->conf->sentinels->nelts;

    if (++rd->asked < rd->conf->sentinels->nelts) {
        ngx_teleclinic_redis_ask(rd);
        return;
    }

    rd->addr = &rd->master;

    if (rd->master.name.len == 0) {
        ngx_str_set(&rd->master.name, "the master");
    }

    ngx_teleclinic_redis_failed(rd, &rd->master.name,
                                "no sentinel named the master", 28);
}


/* the sentinel's [ip, port]: numeric, since nothing may resolve here */

static ngx_int_t
ngx_teleclinic_redis_master(ngx_teleclinic_redis_t *rd, redisReply *reply)
{
    in_addr_t             inaddr;
    ngx_int_t             port;
    redisReply           *host, *service;
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    u_char                inaddr6[16];
    struct sockaddr_in6  *sin6;
#endif

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        return NGX_ERROR;
    }

    host = reply->element[0];
    service = reply->element[1];

    if (host->type != REDIS_REPLY_STRING
        || service->type != REDIS_REPLY_STRING)
    {
        return NGX_ERROR;
    }

    port = ngx_atoi((u_char *) service->str, service->len);

    if (port < 1 || port > 65535) {
        return NGX_ERROR;
    }

    ngx_memzero(&rd->master_sockaddr, sizeof(ngx_sockaddr_t));

    inaddr = ngx_inet_addr((u_char *) host->str, host->len);

    if (inaddr != INADDR_NONE) {
        sin = &rd->master_sockaddr.sockaddr_in;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = inaddr;
        rd->master.socklen = sizeof(struct sockaddr_in);

#if (NGX_HAVE_INET6)
    } else if (ngx_inet6_addr((u_char *) host->str, host->len, inaddr6)
               == NGX_OK)
    {
        sin6 = &rd->master_sockaddr.sockaddr_in6;
        sin6->sin6_family = AF_INET6;
        ngx_memcpy(sin6->sin6_addr.s6_addr, inaddr6, 16);
        rd->master.socklen = sizeof(struct sockaddr_in6);
#endif

    } else {
        return NGX_ERROR;
    }

    rd->master.sockaddr = &rd->master_sockaddr.sockaddr;
    ngx_inet_set_port(rd->master.sockaddr, (in_port_t) port);

    rd->master.name.data = rd->master_name;
    rd->master.name.len = ngx_sock_ntop(rd->master.sockaddr,
                                        rd->master.socklen, rd->master_name,
                                        NGX_SOCKADDR_STRLEN, 1);

    return NGX_OK;
}


/* connect_timeout, the handshake's or the sentinel's answer ran out */

static void
ngx_teleclinic_redis_timer(ngx_event_t *ev)
{
    ngx_teleclinic_redis_t  *rd = ev->data;

    if (rd->sac) {
        ngx_teleclinic_redis_ask_failed(rd, "timed out", 9);
        return;
    }

    if (rd->ac) {
        ngx_teleclinic_redis_drop(rd, "timed out", 9);
    }
}


static void
ngx_teleclinic_redis_retry(ngx_event_t *ev)
{
    ngx_teleclinic_redis_t  *rd = ev->data;

    if (rd->ac == NULL && rd->sac == NULL && !rd->destroyed) {
        ngx_teleclinic_redis_attempt(rd);
    }
}


/*
 * A server that stops answering (stopped, or a network that drops
 * packets) keeps an idle socket open: a PING now and then finds it
 * within the timeout.  A connection with a command pending is not idle:
 * that command's timer watches it, and a PING queued behind a blocking
 * command (XREAD BLOCK) would time out before it.
 */

static void
ngx_teleclinic_redis_ping(ngx_event_t *ev)
{
    ngx_teleclinic_redis_t  *rd = ev->data;

    if (rd->subscribed) {
        /*
         * a PING's answer on a subscribed connection is no reply hiredis
         * 0.14 gives to a callback: the server's death is the socket's
         */
        return;
    }

    if (rd->pending) {
        ngx_add_timer(&rd->ping, NGX_TELECLINIC_REDIS_PING);
        return;
    }

    if (ngx_teleclinic_redis_command(rd, 0, ngx_teleclinic_redis_pong, rd,
                                     "PING")
        == NGX_ERROR)
    {
        ngx_teleclinic_redis_drop(rd, "cannot queue PING", 17);
    }
}


static void
ngx_teleclinic_redis_pong(redisReply *reply, void *data)
{
    ngx_teleclinic_redis_t  *rd = data;

    if (reply && rd->up && !rd->ping.timer_set) {
        ngx_add_timer(&rd->ping, NGX_TELECLINIC_REDIS_PING);
    }
}


static void
ngx_teleclinic_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_teleclinic_redis_cmd_t *cmd = privdata;

    void                           *data;
    redisReply                     *reply = r;
    ngx_teleclinic_redis_t         *rd;
    ngx_teleclinic_redis_reply_pt   handler;

    rd = cmd->rd;
    handler = cmd->handler;
    data = cmd->data;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }

    cmd->next = rd->free;
    rd->free = cmd;

    rd->pending--;

    /* down before the handler runs, so that it sends nothing more here */
    if (reply == NULL && rd->ac == ac) {
        ngx_teleclinic_redis_gone(rd, ac);
    }

    /*
     * a master demoted under Sentinel that kept its clients: the
     * sentinels are asked again (the handler has its answer first)
     */

    if (reply
        && reply->type == REDIS_REPLY_ERROR
        && reply->len >= 8
        && ngx_strncmp(reply->str, "READONLY", 8) == 0
        && rd->conf->sentinels
        && rd->ac == ac)
    {
        handler(r, data);

        if (rd->ac == ac) {
            ngx_teleclinic_redis_drop(rd, "no longer the master", 20);
        }

        return;
    }

    handler(r, data);
}


static void
ngx_teleclinic_redis_command_timeout(ngx_event_t *ev)
{
    ngx_teleclinic_redis_cmd_t *cmd = ev->data;

    /* the answers come in order: every later one is stuck behind it */
    ngx_teleclinic_redis_drop(cmd->rd, "timed out", 9);
}


/*
 * A hiredis context whose socket is an nginx connection.  hiredis reads
 * once per call, so the events are level-triggered: data left over after
 * one read calls the handler again.  NULL when it failed (reported).
 */

static redisAsyncContext *
ngx_teleclinic_redis_open(ngx_teleclinic_redis_t *rd, ngx_addr_t *addr)
{
    u_char              text[NGX_SOCKADDR_STRLEN + 1];
    u_char              err[NGX_TELECLINIC_REDIS_REASON_LEN];
    size_t              len;
    const char         *reason;
    ngx_connection_t   *c;
    redisAsyncContext  *ac;
#if (NGX_HAVE_UNIX_DOMAIN)
    struct sockaddr_un *saun;
#endif

    switch (addr->sockaddr->sa_family) {

#if (NGX_HAVE_UNIX_DOMAIN)
    case AF_UNIX:
        saun = (struct sockaddr_un *) addr->sockaddr;
        ac = redisAsyncConnectUnix(saun->sun_path);
        break;
#endif

    default:
        /* numeric: hiredis's getaddrinfo() does no lookup */
        len = ngx_sock_ntop(addr->sockaddr, addr->socklen, text,
                            NGX_SOCKADDR_STRLEN, 0);
        text[len] = '\0';

        ac = redisAsyncConnect((char *) text,
                               ngx_inet_get_port(addr->sockaddr));
        break;
    }

    if (ac == NULL) {
        reason = "out of memory";
        goto failed;
    }

    if (ac->err) {
        reason = ac->errstr;
        goto failed;
    }

    c = ngx_get_connection(ac->c.fd, rd->log);
    if (c == NULL) {
        reason = "no free connection";
        goto failed;
    }

    c->data = ac;
    c->read->handler = ngx_teleclinic_redis_read_handler;
    c->write->handler = ngx_teleclinic_redis_write_handler;
    c->read->log = rd->log;
    c->write->log = rd->log;

    ac->data = rd;
    ac->ev.data = c;
    ac->ev.addRead = ngx_teleclinic_redis_add_read;
    ac->ev.delRead = ngx_teleclinic_redis_del_read;
    ac->ev.addWrite = ngx_teleclinic_redis_add_write;
    ac->ev.delWrite = ngx_teleclinic_redis_del_write;
    ac->ev.cleanup = ngx_teleclinic_redis_cleanup;

    return ac;

failed:

    /* hiredis owns errstr: the reason is copied before the free */

    len = ngx_min(ngx_strlen(reason), NGX_TELECLINIC_REDIS_REASON_LEN);
    ngx_memcpy(err, reason, len);

    if (ac) {
        redisAsyncFree(ac);
    }

    if (rd->conf->sentinels && addr != &rd->master) {
        ngx_teleclinic_redis_ask_failed(rd, (char *) err, len);

    } else {
        ngx_teleclinic_redis_failed(rd, &addr->name, (char *) err, len);
    }

    return NULL;
}


static void
ngx_teleclinic_redis_add_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (!c->read->active
        && ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "teleclinic: redis: cannot add a read event");
    }
}


static void
ngx_teleclinic_redis_del_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_teleclinic_redis_add_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (!c->write->active
        && ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "teleclinic: redis: cannot add a write event");
    }
}


static void
ngx_teleclinic_redis_del_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


/*
 * hiredis frees the context and closes the socket after this: the nginx
 * connection is given back without closing, and its fd marked unused so
 * that an event already returned for it is taken for stale
 */

static void
ngx_teleclinic_redis_cleanup(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_teleclinic_redis_del_read(c);
    ngx_teleclinic_redis_del_write(c);

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);

    c->fd = (ngx_socket_t) -1;
}


static void
ngx_teleclinic_redis_read_handler(ngx_event_t *rev)
{
    ngx_connection_t  *c = rev->data;

    /* may free c */
    redisAsyncHandleRead(c->data);
}


static void
ngx_teleclinic_redis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t  *c = wev->data;

    redisAsyncHandleWrite(c->data);
}


/*
 * Pub/Sub: hiredis keeps the callback of a channel and calls it with
 * each message, and once with NULL when the connection goes; no timer
 * runs for it.  The caller subscribes again when the connection is up.
 */

typedef struct {
    ngx_teleclinic_redis_message_pt    handler;
    void                              *data;
} ngx_teleclinic_redis_sub_t;


static void ngx_teleclinic_redis_message(redisAsyncContext *ac, void *r,
    void *privdata);


ngx_int_t
ngx_teleclinic_redis_subscribe(ngx_teleclinic_redis_t *rd,
    ngx_str_t *channel, ngx_teleclinic_redis_message_pt handler, void *data)
{
    ngx_teleclinic_redis_sub_t  *sub;

    if (!rd->up) {
        return NGX_DECLINED;
    }

    sub = ngx_alloc(sizeof(ngx_teleclinic_redis_sub_t), rd->log);
    if (sub == NULL) {
        return NGX_ERROR;
    }

    sub->handler = handler;
    sub->data = data;

    if (redisAsyncCommand(rd->ac, ngx_teleclinic_redis_message, sub,
                          "SUBSCRIBE %b", channel->data, channel->len)
        != REDIS_OK)
    {
        ngx_free(sub);
        return NGX_ERROR;
    }

    rd->subscribed = 1;

    if (rd->ping.timer_set) {
        ngx_del_timer(&rd->ping);
    }

    return NGX_OK;
}


static void
ngx_teleclinic_redis_message(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                  *reply = r;
    ngx_teleclinic_redis_sub_t  *sub = privdata;

    if (reply == NULL) {
        /* the connection went: its subscriptions with it */
        ngx_free(sub);
        return;
    }

    /* ["message", channel, payload]; "subscribe" confirms */

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3
        && reply->element[0]->type == REDIS_REPLY_STRING
        && reply->element[0]->len == 7
        && ngx_strncmp(reply->element[0]->str, "message", 7) == 0
        && reply->element[2]->type == REDIS_REPLY_STRING)
    {
        sub->handler((u_char *) reply->element[2]->str,
                     reply->element[2]->len, sub->data);
    }
}
