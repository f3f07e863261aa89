
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_MIRROR_H_INCLUDED_
#define _NGX_TELECLINIC_MIRROR_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_teleclinic.h"
#include "ngx_teleclinic_zone.h"
#include "ngx_teleclinic_journal.h"
#include "ngx_teleclinic_redis.h"


/*
 * The zone mirrored to Redis, for several nodes: the journal's second
 * sink.  Every change made on this node goes, as its journal line, to one
 * Redis Stream that every node reads and applies; a slot is claimed in
 * Redis before it is booked, so that two nodes cannot give it twice.
 */


typedef struct {
    ngx_teleclinic_redis_conf_t        *redis;     /* NULL: one node */
    ngx_str_t                           node;      /* teleclinic_node */
    ngx_str_t                           url;       /* its public URL */
    ngx_str_t                           stream;    /* the stream's key */
    ngx_str_t                           prefix;    /* the zone's name */
    ngx_uint_t                          maxlen;    /* the stream's, about */
} ngx_teleclinic_mirror_conf_t;


/* a claim's answer: NGX_OK, NGX_BUSY (taken), NGX_ERROR (no answer) */
typedef void (*ngx_teleclinic_mirror_claim_pt)(void *data, ngx_int_t rc);

typedef struct ngx_teleclinic_claim_s  ngx_teleclinic_claim_t;


/* with the configuration read: the stream's key from the zone's name */
ngx_int_t ngx_teleclinic_mirror_conf(ngx_conf_t *cf,
    ngx_teleclinic_mirror_conf_t *conf, ngx_str_t *zone_name);

ngx_int_t ngx_teleclinic_mirror_init_process(ngx_cycle_t *cycle,
    ngx_teleclinic_zone_t *zone, ngx_teleclinic_mirror_conf_t *conf);
void ngx_teleclinic_mirror_exit_process(ngx_cycle_t *cycle);

/* configured, and connected now */
ngx_uint_t ngx_teleclinic_mirror_on(void);
ngx_uint_t ngx_teleclinic_mirror_up(void);

/*
 * Calls w->handler once every change this worker made so far is in the
 * stream; at once when Redis cannot be reached, the changes then wait in
 * the worker until it can (local durability is the journal's).
 * ngx_teleclinic_journal_cancel() takes the waiter off.
 */
void ngx_teleclinic_mirror_sync(ngx_teleclinic_journal_waiter_t *w);

/*
 * Claims a doctor's slot for an appointment in Redis until the slot's
 * end.  NGX_DECLINED when Redis is not connected: nothing was sent.  The
 * claim is given back by ngx_teleclinic_mirror_release(); one whose
 * caller left (ngx_teleclinic_mirror_claim_cancel) is given back when it
 * is answered.
 */
ngx_int_t ngx_teleclinic_mirror_claim(ngx_str_t *doctor, time_t start,
    time_t end, uint64_t id, ngx_teleclinic_mirror_claim_pt handler,
    void *data, ngx_teleclinic_claim_t **claim);
void ngx_teleclinic_mirror_claim_cancel(ngx_teleclinic_claim_t *claim);

/*
 * Where a doctor's waiting room lives: NGX_OK here, NGX_DECLINED on the
 * node copied into node.  version is that of the list of nodes alive it
 * was chosen from, which ngx_teleclinic_mirror_nodes_version() tells.
 */
ngx_int_t ngx_teleclinic_mirror_home(ngx_str_t *doctor,
    ngx_teleclinic_node_t *node, ngx_uint_t *version);
/* while Redis is away: NGX_DECLINED when the room was on another node */
ngx_int_t ngx_teleclinic_mirror_last_home(ngx_str_t *doctor,
    ngx_teleclinic_node_t *node);
/* with the zone locked: the doctor's room is this node's */
ngx_uint_t ngx_teleclinic_mirror_here_locked(u_char *doctor, size_t len);
ngx_uint_t ngx_teleclinic_mirror_nodes_version(void);
ngx_uint_t ngx_teleclinic_mirror_alive_node(u_char *name, size_t len);
/* this node's name and public URL */
ngx_str_t *ngx_teleclinic_mirror_node(void);
ngx_str_t *ngx_teleclinic_mirror_url(void);

/* with the zone locked: the node owning a message (its hash) is alive */
ngx_uint_t ngx_teleclinic_mirror_owner_alive_locked(
    ngx_teleclinic_zone_t *zone, ngx_uint_t owner);

/*
 * The public URLs of the nodes alive, this node's first, for a client
 * to try when its node goes: at most n, into urls (each points into
 * buf, which holds n * NGX_TELECLINIC_URL_MAX bytes); returns how many.
 */
ngx_uint_t ngx_teleclinic_mirror_urls(ngx_str_t *urls, ngx_uint_t n,
    u_char *buf);
void ngx_teleclinic_mirror_release(ngx_str_t *doctor, time_t start,
    uint64_t id);


#endif /* _NGX_TELECLINIC_MIRROR_H_INCLUDED_ */
