
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_teleclinic_mirror.h"
#include "ngx_teleclinic_request.h"


/*
 * Each worker sends the changes it makes, in the order of their sequence
 * numbers, on its own connection ("out"); worker 0 of each node also
 * reads the stream on a second one ("in"), since XREAD BLOCK holds its
 * connection.  A change's line stays in the worker until Redis has
 * answered its XADD, and is sent again after a lost connection: a
 * reader knows a line it has applied by its writer's mark.
 */


struct ngx_teleclinic_claim_s {
    ngx_teleclinic_mirror_claim_pt      handler;  /* NULL: cancelled */
    void                               *data;
    size_t                              key_len;
    size_t                              value_len;
    u_char                              key[256];
    u_char                              value[NGX_TELECLINIC_APPT_ID_LEN];
};


/*
 * A change of this worker on its way to the stream, with the claim of
 * the slot it frees: the claim goes back just before the line is added,
 * and again if the line is sent again, so that a cancellation made while
 * Redis was away frees its slot when Redis returns.
 */
typedef struct {
    ngx_queue_t                         queue;
    ngx_uint_t                          n;        /* in this worker */
    ngx_uint_t                          sent;     /* on this connection */
    ngx_uint_t                          added;    /* XADD answered */
    ngx_uint_t                          frees;    /* claim is set */
    ngx_teleclinic_claim_t              claim;
    size_t                              len;
    u_char                              data[1];
} ngx_teleclinic_mirror_line_t;


#define NGX_TELECLINIC_MIRROR_BATCH   256
/* a snapshot's mark: every worker of its node, up to its sequence */
#define NGX_TELECLINIC_MIRROR_ANY     NGX_MAX_INT32_VALUE
#define NGX_TELECLINIC_MIRROR_BLOCK   2000          /* ms */
/* what a worker holds for Redis while it cannot be reached */
#define NGX_TELECLINIC_MIRROR_BUFFER  (64 * 1024 * 1024)
/* a snapshot's record, bytes, about, encoded and as a copy of its event */
#define NGX_TELECLINIC_MIRROR_SNAP_RECORD  512
#define NGX_TELECLINIC_MIRROR_SNAP_COPY    (sizeof(ngx_teleclinic_event_t) + 96)
#define NGX_TELECLINIC_MIRROR_CHUNK        (16 * 1024 * 1024)


static void ngx_teleclinic_mirror_sink(void *data, ngx_teleclinic_event_t *ev,
    u_char *line, size_t len);
static void ngx_teleclinic_mirror_flush(ngx_event_t *ev);
static void ngx_teleclinic_mirror_added(redisReply *reply, void *data);
static void ngx_teleclinic_mirror_waited(redisReply *reply, void *data);
static void ngx_teleclinic_mirror_done(ngx_teleclinic_mirror_line_t *line);
static void ngx_teleclinic_mirror_wake(void);
static void ngx_teleclinic_mirror_out_state(ngx_teleclinic_redis_t *rd,
    ngx_uint_t up, void *data);
static void ngx_teleclinic_mirror_in_state(ngx_teleclinic_redis_t *rd,
    ngx_uint_t up, void *data);
static void ngx_teleclinic_mirror_based(redisReply *reply, void *data);
static void ngx_teleclinic_mirror_read(void);
static void ngx_teleclinic_mirror_entries(redisReply *reply, void *data);
static void ngx_teleclinic_mirror_entry(redisReply *entry, ngx_pool_t *pool);
static ngx_int_t ngx_teleclinic_mirror_rid_after(ngx_str_t *a, ngx_str_t *b);
static void ngx_teleclinic_mirror_heartbeat(ngx_event_t *ev);
static void ngx_teleclinic_mirror_snapshot(ngx_event_t *ev);
static ngx_int_t ngx_teleclinic_mirror_snapshot_put(ngx_teleclinic_event_t *ev,
    void *data);
static ngx_int_t ngx_teleclinic_mirror_snapshot_line(
    ngx_teleclinic_event_t *ev, u_char **buf, u_char **p, u_char **end);
static void ngx_teleclinic_mirror_load(void);
static void ngx_teleclinic_mirror_loaded(redisReply *reply, void *data);
static void ngx_teleclinic_mirror_answered(redisReply *reply, void *data);
static void ngx_teleclinic_mirror_alive(redisReply *reply, void *data);
static ngx_int_t ngx_teleclinic_mirror_pick(ngx_str_t *doctor,
    ngx_teleclinic_node_t *node, ngx_uint_t *version);
static ngx_int_t ngx_teleclinic_mirror_pick_locked(u_char *doctor,
    size_t len, ngx_teleclinic_node_t *node);
static ngx_int_t ngx_teleclinic_mirror_node_cmp(const void *one,
    const void *two);
static void ngx_teleclinic_mirror_claimed(redisReply *reply, void *data);
static void ngx_teleclinic_mirror_give_back(ngx_teleclinic_claim_t *claim);
static void ngx_teleclinic_mirror_released(redisReply *reply, void *data);
static void ngx_teleclinic_mirror_claim_key(ngx_teleclinic_claim_t *claim,
    ngx_str_t *doctor, time_t start, uint64_t id);


static ngx_teleclinic_mirror_conf_t  *ngx_teleclinic_mirror;
static ngx_teleclinic_zone_t         *ngx_teleclinic_mirror_zone;
static ngx_teleclinic_redis_t        *ngx_teleclinic_mirror_out;
static ngx_teleclinic_redis_t        *ngx_teleclinic_mirror_in;

static ngx_queue_t                    ngx_teleclinic_mirror_lines;
static ngx_queue_t                    ngx_teleclinic_mirror_waiters;
static ngx_uint_t                     ngx_teleclinic_mirror_queued;
static ngx_uint_t                     ngx_teleclinic_mirror_acked;
static size_t                         ngx_teleclinic_mirror_buffered;
static ngx_event_t                    ngx_teleclinic_mirror_flush_ev;

/* the reader's: where it is, and up to where its own lines are old */
static u_char      ngx_teleclinic_mirror_pos[NGX_TELECLINIC_RID_MAX];
static ngx_str_t   ngx_teleclinic_mirror_last;
static u_char      ngx_teleclinic_mirror_base_buf[NGX_TELECLINIC_RID_MAX];
static ngx_str_t   ngx_teleclinic_mirror_base;
static ngx_uint_t  ngx_teleclinic_mirror_loading;

/* worker 0's snapshot of the zone in Redis, for nodes that start empty */
static ngx_event_t  ngx_teleclinic_mirror_snap;
static u_char       ngx_teleclinic_mirror_snap_key[64 + 32];
static ngx_str_t    ngx_teleclinic_mirror_snap_name;

/* worker 0's heartbeat, and the nodes' set's key */
static ngx_event_t  ngx_teleclinic_mirror_beat;
static u_char       ngx_teleclinic_mirror_nodes_key[64 + 32];
static ngx_str_t    ngx_teleclinic_mirror_nodes_name;


ngx_int_t
ngx_teleclinic_mirror_conf(ngx_conf_t *cf, ngx_teleclinic_mirror_conf_t *conf,
    ngx_str_t *zone_name)
{
    u_char  *p;

    if (conf->redis == NULL) {
        return NGX_OK;
    }

    if (conf->node.len == 0) {

        /* the host's name without its domain, when it can be one */

        conf->node.data = cf->cycle->hostname.data;
        conf->node.len = cf->cycle->hostname.len;

        p = ngx_strlchr(conf->node.data, conf->node.data + conf->node.len,
                        '.');
        if (p) {
            conf->node.len = p - conf->node.data;
        }

        if (conf->node.len == 0 || conf->node.len > NGX_TELECLINIC_NODE_MAX
            || ngx_teleclinic_id_valid(conf->node.data, conf->node.len)
               != NGX_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "teleclinic_redis needs teleclinic_node: "
                               "the host name cannot be a node's name");
            return NGX_ERROR;
        }
    }

    /* the keys and channels are named by the zone, and have room for 64 */

    if (zone_name->len > 64) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "teleclinic_redis needs a teleclinic_zone name "
                           "of up to 64 characters");
        return NGX_ERROR;
    }

    /* the hash tag keeps a hospital's stream on one Redis Cluster slot */

    conf->stream.len = sizeof("teleclinic:{}:log") - 1 + zone_name->len;
    conf->stream.data = ngx_pnalloc(cf->pool, conf->stream.len);
    if (conf->stream.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(conf->stream.data, "teleclinic:{%V}:log", zone_name);
    conf->stream.len = p - conf->stream.data;

    conf->prefix = *zone_name;

    if (conf->url.len > NGX_TELECLINIC_URL_MAX
        || ngx_strlchr(conf->url.data, conf->url.data + conf->url.len, ' '))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "teleclinic_public_url is too long for the "
                           "nodes' list (up to %d characters, no spaces)",
                           NGX_TELECLINIC_URL_MAX);
        return NGX_ERROR;
    }

    if (conf->maxlen == 0) {
        conf->maxlen = 1000000;
    }

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_mirror_init_process(ngx_cycle_t *cycle,
    ngx_teleclinic_zone_t *zone, ngx_teleclinic_mirror_conf_t *conf)
{
    ngx_teleclinic_group_t  *group;

    ngx_queue_init(&ngx_teleclinic_mirror_lines);
    ngx_queue_init(&ngx_teleclinic_mirror_waiters);

    /* not in the cache manager and loader, which serve no requests */
    if (conf->redis == NULL
        || (ngx_process != NGX_PROCESS_WORKER
            && ngx_process != NGX_PROCESS_SINGLE))
    {
        return NGX_OK;
    }

    /* what the zone keeps of the other nodes, for every worker */

    ngx_teleclinic_zone_lock(zone);
    group = ngx_teleclinic_group(zone);
    ngx_teleclinic_zone_unlock(zone);

    if (group == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "teleclinic mirror: the zone is full");
        return NGX_ERROR;
    }

    ngx_teleclinic_mirror = conf;
    ngx_teleclinic_mirror_zone = zone;

    ngx_teleclinic_mirror_flush_ev.handler = ngx_teleclinic_mirror_flush;
    ngx_teleclinic_mirror_flush_ev.log = cycle->log;
    ngx_teleclinic_mirror_flush_ev.data = zone;
    ngx_teleclinic_mirror_flush_ev.cancelable = 1;

    zone->journal->sink = ngx_teleclinic_mirror_sink;
    zone->journal->sink_data = zone;

    ngx_teleclinic_mirror_out = ngx_teleclinic_redis_create(cycle,
                                    conf->redis, "main",
                                    ngx_teleclinic_mirror_out_state, NULL);
    if (ngx_teleclinic_mirror_out == NULL) {
        return NGX_ERROR;
    }

    if (ngx_worker != 0) {
        return NGX_OK;
    }

    /* the reader starts where the zone's last applied entry was */

    ngx_teleclinic_zone_lock(zone);

    ngx_teleclinic_mirror_last.data = ngx_teleclinic_mirror_pos;
    ngx_teleclinic_mirror_last.len = group->mirror_len;
    ngx_memcpy(ngx_teleclinic_mirror_pos, group->mirror, group->mirror_len);

    /*
     * A zone that starts empty takes its own node's earlier changes from
     * the stream too (this node lost its disk): those up to the stream's
     * end as it is now.
     */
    ngx_teleclinic_mirror_loading = zone->fresh && group->mirror_len == 0;

    ngx_teleclinic_zone_unlock(zone);

    ngx_teleclinic_mirror_base.data = ngx_teleclinic_mirror_base_buf;
    ngx_teleclinic_mirror_base.len = 0;

    ngx_teleclinic_mirror_in = ngx_teleclinic_redis_create(cycle,
                                    conf->redis, "reader",
                                    ngx_teleclinic_mirror_in_state, NULL);
    if (ngx_teleclinic_mirror_in == NULL) {
        return NGX_ERROR;
    }

    ngx_teleclinic_mirror_nodes_name.data = ngx_teleclinic_mirror_nodes_key;
    ngx_teleclinic_mirror_nodes_name.len =
        ngx_snprintf(ngx_teleclinic_mirror_nodes_key,
                     sizeof(ngx_teleclinic_mirror_nodes_key),
                     "teleclinic:{%V}:nodes", &conf->prefix)
        - ngx_teleclinic_mirror_nodes_key;

    ngx_teleclinic_mirror_snap_name.data = ngx_teleclinic_mirror_snap_key;
    ngx_teleclinic_mirror_snap_name.len =
        ngx_snprintf(ngx_teleclinic_mirror_snap_key,
                     sizeof(ngx_teleclinic_mirror_snap_key),
                     "teleclinic:{%V}:snapshot", &conf->prefix)
        - ngx_teleclinic_mirror_snap_key;

    ngx_teleclinic_mirror_snap.handler = ngx_teleclinic_mirror_snapshot;
    ngx_teleclinic_mirror_snap.log = cycle->log;
    ngx_teleclinic_mirror_snap.data = zone;
    ngx_teleclinic_mirror_snap.cancelable = 1;

    ngx_add_timer(&ngx_teleclinic_mirror_snap, conf->redis->snapshot);

    ngx_teleclinic_mirror_beat.handler = ngx_teleclinic_mirror_heartbeat;
    ngx_teleclinic_mirror_beat.log = cycle->log;
    ngx_teleclinic_mirror_beat.data = zone;
    ngx_teleclinic_mirror_beat.cancelable = 1;

    ngx_add_timer(&ngx_teleclinic_mirror_beat, 1);

    return NGX_OK;
}


void
ngx_teleclinic_mirror_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t                   *q;
    ngx_teleclinic_mirror_line_t  *line;

    if (ngx_teleclinic_mirror == NULL) {
        return;
    }

    if (ngx_teleclinic_mirror_in) {
        ngx_teleclinic_redis_destroy(ngx_teleclinic_mirror_in);
        ngx_teleclinic_mirror_in = NULL;
    }

    if (ngx_teleclinic_mirror_out) {
        ngx_teleclinic_redis_destroy(ngx_teleclinic_mirror_out);
        ngx_teleclinic_mirror_out = NULL;
    }

    if (!ngx_queue_empty(&ngx_teleclinic_mirror_lines)) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "teleclinic mirror: %ui changes of this worker did "
                      "not reach Redis; they are in the journal",
                      ngx_teleclinic_mirror_queued
                      - ngx_teleclinic_mirror_acked);
    }

    while (!ngx_queue_empty(&ngx_teleclinic_mirror_lines)) {
        q = ngx_queue_head(&ngx_teleclinic_mirror_lines);
        ngx_queue_remove(q);
        line = ngx_queue_data(q, ngx_teleclinic_mirror_line_t, queue);
        ngx_free(line);
    }

    ngx_teleclinic_mirror = NULL;
}


ngx_uint_t
ngx_teleclinic_mirror_on(void)
{
    return ngx_teleclinic_mirror != NULL;
}


ngx_uint_t
ngx_teleclinic_mirror_up(void)
{
    return ngx_teleclinic_mirror_out
           && ngx_teleclinic_redis_is_up(ngx_teleclinic_mirror_out);
}


/*
 * The journal's second sink, with the zone locked: the line is copied
 * and sent from a posted event, after the unlock.
 */

static void
ngx_teleclinic_mirror_sink(void *data, ngx_teleclinic_event_t *ev,
    u_char *text, size_t len)
{
    ngx_teleclinic_mirror_line_t  *line;

    switch (ev->op) {

    /*
     * a node's own bookkeeping, its memory; a message sent goes to the
     * others, whose copies of it leave their outboxes
     */
    case NGX_TELECLINIC_EV_EXPIRE:
    case NGX_TELECLINIC_EV_FORGET:
        return;
    }

    if (ngx_teleclinic_mirror_buffered + len > NGX_TELECLINIC_MIRROR_BUFFER) {
        ngx_log_error(NGX_LOG_CRIT, ngx_cycle->log, 0,
                      "teleclinic mirror: the buffer for Redis is full, "
                      "change %ui stays in this node's journal only",
                      ev->seq);
        return;
    }

    line = ngx_alloc(sizeof(ngx_teleclinic_mirror_line_t) + len,
                     ngx_cycle->log);
    if (line == NULL) {
        return;
    }

    line->n = ++ngx_teleclinic_mirror_queued;
    line->sent = 0;
    line->frees = (ev->freed_doctor.len != 0);

    if (line->frees) {
        ngx_teleclinic_mirror_claim_key(&line->claim, &ev->freed_doctor,
                                        ev->freed_start, ev->id);
    }

    line->len = len - 1;                 /* without the newline */
    ngx_memcpy(line->data, text, len);

    ngx_queue_insert_tail(&ngx_teleclinic_mirror_lines, &line->queue);
    ngx_teleclinic_mirror_buffered += len;

    if (!ngx_teleclinic_mirror_flush_ev.posted) {
        ngx_post_event(&ngx_teleclinic_mirror_flush_ev, &ngx_posted_events);
    }
}


static void
ngx_teleclinic_mirror_flush(ngx_event_t *ev)
{
    ngx_queue_t                   *q;
    ngx_teleclinic_mirror_line_t  *line;

    if (!ngx_teleclinic_mirror_up()) {
        ngx_teleclinic_mirror_wake();
        return;
    }

    for (q = ngx_queue_head(&ngx_teleclinic_mirror_lines);
         q != ngx_queue_sentinel(&ngx_teleclinic_mirror_lines);
         q = ngx_queue_next(q))
    {
        line = ngx_queue_data(q, ngx_teleclinic_mirror_line_t, queue);

        if (line->sent) {
            continue;
        }

        /*
         * another node that books the slot before this line reaches it
         * finds it still taken in its zone, answers 409 and gives the
         * claim back
         */
        if (line->frees) {
            ngx_teleclinic_mirror_give_back(&line->claim);
        }

        if (ngx_teleclinic_redis_command(ngx_teleclinic_mirror_out, 0,
                ngx_teleclinic_mirror_added, line,
                "XADD %b MAXLEN ~ %lu * node %b w %lu line %b",
                ngx_teleclinic_mirror->stream.data,
                ngx_teleclinic_mirror->stream.len,
                (unsigned long) ngx_teleclinic_mirror->maxlen,
                ngx_teleclinic_mirror->node.data,
                ngx_teleclinic_mirror->node.len,
                (unsigned long) ngx_worker, line->data, line->len)
            != NGX_OK)
        {
            break;
        }

        line->sent = 1;
        line->added = 0;

        /*
         * with replicas=N the change counts once N replicas have it too,
         * so that the Sentinel's failover to one of them keeps it; WAIT's
         * own timeout is half the command's
         */
        if (ngx_teleclinic_mirror->redis->replicas
            && ngx_teleclinic_redis_command(ngx_teleclinic_mirror_out,
                   2 * ngx_teleclinic_mirror->redis->timeout,
                   ngx_teleclinic_mirror_waited, line, "WAIT %lu %lu",
                   (unsigned long) ngx_teleclinic_mirror->redis->replicas,
                   (unsigned long) ngx_teleclinic_mirror->redis->timeout)
               != NGX_OK)
        {
            line->sent = 0;
            break;
        }
    }
}


static void
ngx_teleclinic_mirror_added(redisReply *reply, void *data)
{
    ngx_teleclinic_mirror_line_t  *line = data;

    if (reply == NULL) {
        /* lost with the connection: sent again on the next one */
        line->sent = 0;
        ngx_teleclinic_mirror_wake();
        return;
    }

    if (reply->type != REDIS_REPLY_STRING) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "teleclinic mirror: XADD failed: %*s",
                      reply->type == REDIS_REPLY_ERROR ? reply->len : 0,
                      reply->type == REDIS_REPLY_ERROR ? reply->str : "");

        /* tried again with the next change or connection */
        line->sent = 0;
        return;
    }

    if (ngx_teleclinic_mirror->redis->replicas) {
        line->added = 1;                 /* its WAIT's answer follows */
        return;
    }

    ngx_teleclinic_mirror_done(line);
}


/* the answer to a change's WAIT: how many replicas have it */

static void
ngx_teleclinic_mirror_waited(redisReply *reply, void *data)
{
    ngx_teleclinic_mirror_line_t  *line = data;

    if (reply == NULL) {
        line->sent = 0;                  /* sent again, as above */
        ngx_teleclinic_mirror_wake();
        return;
    }

    if (!line->added) {
        return;                          /* its XADD failed: sent again */
    }

    if (reply->type != REDIS_REPLY_INTEGER
        || reply->integer < (long long) ngx_teleclinic_mirror->redis->replicas)
    {
        /*
         * the master has it, fewer replicas than asked did in time: it
         * counts, or a replica that is away would stop every change;
         * only the master's crash now, before the replicas catch up,
         * could lose it
         */
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "teleclinic mirror: a change reached %L of %ui "
                      "replicas in time",
                      reply->type == REDIS_REPLY_INTEGER ? reply->integer
                                                         : (long long) 0,
                      ngx_teleclinic_mirror->redis->replicas);
    }

    ngx_teleclinic_mirror_done(line);
}


/* the answers come in the order of the commands */

static void
ngx_teleclinic_mirror_done(ngx_teleclinic_mirror_line_t *line)
{
    ngx_queue_remove(&line->queue);
    ngx_teleclinic_mirror_buffered -= line->len + 1;

    if (line->n > ngx_teleclinic_mirror_acked) {
        ngx_teleclinic_mirror_acked = line->n;
    }

    ngx_free(line);

    ngx_teleclinic_mirror_wake();
}


/*
 * Waiters go when Redis has every change up to theirs, or at once when
 * it cannot be reached: the journal has made the change durable here.
 */

static void
ngx_teleclinic_mirror_wake(void)
{
    ngx_uint_t                        up;
    ngx_queue_t                      *q, *next;
    ngx_teleclinic_journal_waiter_t  *w;

    up = ngx_teleclinic_mirror_up();

    for (q = ngx_queue_head(&ngx_teleclinic_mirror_waiters);
         q != ngx_queue_sentinel(&ngx_teleclinic_mirror_waiters);
         q = next)
    {
        next = ngx_queue_next(q);
        w = ngx_queue_data(q, ngx_teleclinic_journal_waiter_t, queue);

        if (up && w->mark > ngx_teleclinic_mirror_acked) {
            continue;
        }

        ngx_queue_remove(q);
        w->queue.prev = NULL;
        w->handler(w->data, NGX_OK);
    }
}


void
ngx_teleclinic_mirror_sync(ngx_teleclinic_journal_waiter_t *w)
{
    if (!ngx_teleclinic_mirror_up()
        || ngx_teleclinic_mirror_acked >= ngx_teleclinic_mirror_queued)
    {
        w->queue.prev = NULL;
        w->handler(w->data, NGX_OK);
        return;
    }

    w->mark = ngx_teleclinic_mirror_queued;
    ngx_queue_insert_tail(&ngx_teleclinic_mirror_waiters, &w->queue);
}


static void
ngx_teleclinic_mirror_out_state(ngx_teleclinic_redis_t *rd, ngx_uint_t up,
    void *data)
{
    ngx_queue_t                   *q;
    ngx_teleclinic_mirror_line_t  *line;

    if (up) {
        for (q = ngx_queue_head(&ngx_teleclinic_mirror_lines);
             q != ngx_queue_sentinel(&ngx_teleclinic_mirror_lines);
             q = ngx_queue_next(q))
        {
            line = ngx_queue_data(q, ngx_teleclinic_mirror_line_t, queue);
            line->sent = 0;
        }

        ngx_teleclinic_mirror_flush(&ngx_teleclinic_mirror_flush_ev);
        return;
    }

    ngx_teleclinic_mirror_wake();
}


/* the reader: worker 0 */

static void
ngx_teleclinic_mirror_in_state(ngx_teleclinic_redis_t *rd, ngx_uint_t up,
    void *data)
{
    if (!up) {
        return;
    }

    if (ngx_teleclinic_mirror_last.len) {
        ngx_teleclinic_mirror_read();
        return;
    }

    if (!ngx_teleclinic_mirror_loading) {
        /* nothing read yet: a snapshot, if there is one, then the stream */
        ngx_teleclinic_mirror_load();
        return;
    }

    /* an empty zone: where the stream ends before this node writes */

    (void) ngx_teleclinic_redis_command(ngx_teleclinic_mirror_in, 0,
                                        ngx_teleclinic_mirror_based, NULL,
                                        "XREVRANGE %b + - COUNT 1",
                                        ngx_teleclinic_mirror->stream.data,
                                        ngx_teleclinic_mirror->stream.len);
}


static void
ngx_teleclinic_mirror_based(redisReply *reply, void *data)
{
    redisReply  *id;

    if (reply == NULL) {
        return;                          /* asked again on reconnecting */
    }

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1
        && reply->element[0]->type == REDIS_REPLY_ARRAY
        && reply->element[0]->elements == 2)
    {
        id = reply->element[0]->element[0];

        if (id->type == REDIS_REPLY_STRING
            && id->len <= NGX_TELECLINIC_RID_MAX)
        {
            ngx_memcpy(ngx_teleclinic_mirror_base_buf, id->str, id->len);
            ngx_teleclinic_mirror_base.len = id->len;
        }
    }

    if (ngx_teleclinic_mirror_base.len == 0) {
        /* an empty stream: nothing of this node's is old */
        ngx_teleclinic_mirror_loading = 0;
    }

    ngx_teleclinic_mirror_load();
}


/* the snapshot first, if a node wrote one, then the stream after it */

static void
ngx_teleclinic_mirror_load(void)
{
    if (ngx_teleclinic_redis_command(ngx_teleclinic_mirror_in,
                                     10 * ngx_teleclinic_mirror->redis->timeout,
                                     ngx_teleclinic_mirror_loaded, NULL,
                                     "GET %b",
                                     ngx_teleclinic_mirror_snap_name.data,
                                     ngx_teleclinic_mirror_snap_name.len)
        != NGX_OK)
    {
        ngx_teleclinic_mirror_read();
    }
}


/*
 * "RID NODE\n" then journal lines: the state of the zone of NODE when it
 * had applied the stream up to RID.  Each line is applied as that node's
 * (it sends no message), marks and position with them; the stream is
 * read on from RID.
 */

static void
ngx_teleclinic_mirror_loaded(redisReply *reply, void *data)
{
    u_char                  *p, *last, *nl, *sp;
    ngx_int_t                rc;
    ngx_str_t                rid, node;
    ngx_uint_t               n;
    ngx_pool_t              *pool;
    ngx_teleclinic_zone_t   *zone;
    ngx_teleclinic_event_t   ev;

    if (reply == NULL) {
        return;                          /* asked again on reconnecting */
    }

    zone = ngx_teleclinic_mirror_zone;

    if (reply->type != REDIS_REPLY_STRING || ngx_teleclinic_mirror_last.len) {
        ngx_teleclinic_mirror_read();
        return;
    }

    p = (u_char *) reply->str;
    last = p + reply->len;

    nl = ngx_strlchr(p, last, '\n');
    sp = nl ? ngx_strlchr(p, nl, ' ') : NULL;

    rid.data = p;
    rid.len = sp ? (size_t) (sp - p) : 0;
    node.data = sp ? sp + 1 : NULL;
    node.len = sp ? (size_t) (nl - sp - 1) : 0;

    if (sp == NULL || ngx_teleclinic_journal_rid(&rid) != NGX_OK
        || node.len == 0 || node.len > NGX_TELECLINIC_NODE_MAX
        || ngx_teleclinic_id_valid(node.data, node.len) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "teleclinic mirror: the snapshot in Redis is not one, "
                      "left out");
        ngx_teleclinic_mirror_read();
        return;
    }

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    n = 0;

    for (p = nl + 1; p < last; p = nl + 1) {
        nl = ngx_strlchr(p, last, '\n');
        if (nl == NULL) {
            break;
        }

        rc = ngx_teleclinic_journal_decode(p, nl - p, &ev,
                                           zone->journal->keys, pool);
        if (rc != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "teleclinic mirror: a line of the snapshot cannot "
                          "be read%s, left out",
                          rc == NGX_ABORT ? " with this node's data keys"
                                          : "");
            ngx_reset_pool(pool);
            continue;
        }

        if (ev.node.len == 0) {
            ev.node = node;
            ev.worker = NGX_TELECLINIC_MIRROR_ANY;
            ev.oseq = 0;
        }

        ngx_teleclinic_zone_lock(zone);
        rc = ngx_teleclinic_journal_commit(zone, &ev, ngx_cycle->log);
        ngx_teleclinic_zone_unlock(zone);

        if (rc != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "teleclinic mirror: a line of the snapshot could "
                          "not be applied");
        }

        n++;
        ngx_reset_pool(pool);
    }

    ngx_destroy_pool(pool);

    ngx_memcpy(ngx_teleclinic_mirror_pos, rid.data, rid.len);
    ngx_teleclinic_mirror_last.len = rid.len;

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "teleclinic mirror: loaded %ui records of node \"%V\"'s "
                  "snapshot, reading on from %V", n, &node, &rid);

    ngx_teleclinic_mirror_read();
}


/*
 * Every so often worker 0 puts the state of its zone in Redis, as
 * compaction writes it (without the outbox, which is each node's own),
 * so that a node that starts empty does not need the whole stream: the
 * stream is trimmed.  The zone is locked only while its events are
 * copied (a memcpy each, into memory made ready before the lock); they
 * are sealed and encoded after it, as they take ten times as long and
 * every worker waits for the lock meanwhile.
 */

typedef struct ngx_teleclinic_mirror_chunk_s  ngx_teleclinic_mirror_chunk_t;

struct ngx_teleclinic_mirror_chunk_s {
    ngx_teleclinic_mirror_chunk_t  *next;
    u_char                         *p;
    u_char                         *end;
};

typedef struct {
    ngx_teleclinic_mirror_chunk_t  *first;
    ngx_teleclinic_mirror_chunk_t  *last;
    ngx_uint_t                      records;
    ngx_uint_t                      failed;
} ngx_teleclinic_mirror_snap_t;


static ngx_teleclinic_mirror_chunk_t *ngx_teleclinic_mirror_chunk(
    ngx_teleclinic_mirror_snap_t *w, size_t size);


static void
ngx_teleclinic_mirror_snapshot(ngx_event_t *ev)
{
    u_char                         *buf, *p, *end;
    u_char                          rid_buf[NGX_TELECLINIC_RID_MAX];
    size_t                          size;
    ngx_str_t                       rid;
    ngx_int_t                       rc;
    ngx_msec_t                      start, held;
    ngx_teleclinic_sh_t            *sh;
    ngx_teleclinic_zone_t          *zone;
    ngx_teleclinic_event_t          floor, *e;
    ngx_teleclinic_group_t         *group;
    ngx_teleclinic_mirror_snap_t    w;
    ngx_teleclinic_mirror_chunk_t  *c, *next;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(ev, ngx_teleclinic_mirror->redis->snapshot);

    zone = ngx_teleclinic_mirror_zone;

    if (!ngx_teleclinic_mirror_up() || ngx_teleclinic_mirror_loading
        || ngx_teleclinic_mirror_last.len == 0)
    {
        return;
    }

    /* the counts, read without the lock, are near enough */

    size = (zone->sh->nappts + zone->sh->nmsgs + zone->sh->nrecord_events
            + 1024) * NGX_TELECLINIC_MIRROR_SNAP_COPY;

    ngx_memzero(&w, sizeof(ngx_teleclinic_mirror_snap_t));

    while (size) {
        c = ngx_teleclinic_mirror_chunk(&w, ngx_min(size,
                                               NGX_TELECLINIC_MIRROR_CHUNK));
        if (c == NULL) {
            goto done;
        }

        size -= c->end - c->p;
    }

    w.last = w.first;

    ngx_teleclinic_zone_lock(zone);

    ngx_time_update();
    start = ngx_current_msec;

    sh = zone->sh;
    group = sh->group;

    /* where the reading of the stream goes on */

    rid.len = ngx_min(group->mirror_len, NGX_TELECLINIC_RID_MAX);
    rid.data = ngx_cpymem(rid_buf, group->mirror, rid.len) - rid.len;

    /* this node's own changes up to now are in it */

    ngx_memzero(&floor, sizeof(ngx_teleclinic_event_t));
    floor.op = NGX_TELECLINIC_EV_MIRROR;
    floor.node = ngx_teleclinic_mirror->node;
    floor.worker = NGX_TELECLINIC_MIRROR_ANY;
    floor.oseq = sh->seq;

    rc = ngx_teleclinic_journal_state(zone, 0,
                                      ngx_teleclinic_mirror_snapshot_put, &w);

    if (rc == NGX_OK) {
        rc = ngx_teleclinic_mirror_snapshot_put(&floor, &w);
    }

    ngx_time_update();
    held = ngx_current_msec - start;

    ngx_teleclinic_zone_unlock(zone);

    if (rc != NGX_OK || w.failed) {
        goto done;
    }

    /* sealed and encoded, a chunk at a time, each freed when done */

    size = w.records * NGX_TELECLINIC_MIRROR_SNAP_RECORD + 64 * 1024;

    buf = ngx_alloc(size, ngx_cycle->log);
    if (buf == NULL) {
        goto done;
    }

    end = buf + size;
    p = ngx_snprintf(buf, end - buf, "%V %V\n", &rid,
                     &ngx_teleclinic_mirror->node);

    for (c = w.first; c; c = next) {
        next = c->next;

        for (e = (ngx_teleclinic_event_t *) (c + 1);
             (u_char *) e < c->p;
             e = (ngx_teleclinic_event_t *)
                 ((u_char *) e + ngx_teleclinic_event_size(e)))
        {
            if (ngx_teleclinic_mirror_snapshot_line(e, &buf, &p, &end)
                != NGX_OK)
            {
                ngx_free(buf);
                goto done;
            }
        }

        ngx_free(c);
        w.first = next;
    }

    /* what every worker may have waited for the lock, for the operators */

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "teleclinic mirror: snapshot of %ui records, %uz bytes, "
                  "the zone locked for %M ms", w.records,
                  (size_t) (p - buf), held);

    (void) ngx_teleclinic_redis_command(ngx_teleclinic_mirror_out,
                                    10 * ngx_teleclinic_mirror->redis->timeout,
                                    ngx_teleclinic_mirror_answered, "SET",
                                    "SET %b %b",
                                    ngx_teleclinic_mirror_snap_name.data,
                                    ngx_teleclinic_mirror_snap_name.len,
                                    buf, (size_t) (p - buf));

    ngx_free(buf);

done:

    for (c = w.first; c; c = next) {
        next = c->next;
        ngx_free(c);
    }
}


/*
 * A chunk for the copies, its pages touched so that the copying under
 * the lock takes no page faults; appended to the list
 */

static ngx_teleclinic_mirror_chunk_t *
ngx_teleclinic_mirror_chunk(ngx_teleclinic_mirror_snap_t *w, size_t size)
{
    ngx_teleclinic_mirror_chunk_t  *c;

    c = ngx_alloc(sizeof(ngx_teleclinic_mirror_chunk_t) + size,
                  ngx_cycle->log);
    if (c == NULL) {
        return NULL;
    }

    ngx_memzero(c + 1, size);

    c->next = NULL;
    c->p = (u_char *) (c + 1);
    c->end = c->p + size;

    if (w->first == NULL) {
        w->first = c;

    } else {
        w->last->next = c;
    }

    w->last = c;

    return c;
}


/* under the lock: the event copied, in a new chunk if it must */

static ngx_int_t
ngx_teleclinic_mirror_snapshot_put(ngx_teleclinic_event_t *ev, void *data)
{
    ngx_teleclinic_mirror_snap_t *w = data;

    size_t                          size;
    ngx_teleclinic_mirror_chunk_t  *c;

    size = ngx_teleclinic_event_size(ev);
    c = w->last;

    while ((size_t) (c->end - c->p) < size) {
        if (c->next) {
            c = c->next;
            w->last = c;
            continue;
        }

        /* the estimate fell short */
        c = ngx_teleclinic_mirror_chunk(w, ngx_max(size,
                                                NGX_TELECLINIC_MIRROR_CHUNK));
        if (c == NULL) {
            w->failed = 1;
            return NGX_ERROR;
        }
    }

    w->last = c;

    (void) ngx_teleclinic_event_copy(ev, c->p);
    c->p += size;
    w->records++;

    return NGX_OK;
}


/* after the lock: one copied event sealed and encoded, the buffer grown */

static ngx_int_t
ngx_teleclinic_mirror_snapshot_line(ngx_teleclinic_event_t *ev,
    u_char **buf, u_char **p, u_char **end)
{
    u_char   *nbuf;
    size_t    size;
    ssize_t   n;

    if ((size_t) (*end - *p) < NGX_TELECLINIC_RECORD_MAX) {
        size = 2 * (*end - *buf);

        nbuf = ngx_alloc(size, ngx_cycle->log);
        if (nbuf == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(nbuf, *buf, *p - *buf);
        *p = nbuf + (*p - *buf);
        *end = nbuf + size;
        ngx_free(*buf);
        *buf = nbuf;
    }

    n = ngx_teleclinic_journal_encode(ev,
                                      ngx_teleclinic_mirror_zone->journal->keys,
                                      *p, *end - *p);
    if (n < 0) {
        return NGX_ERROR;
    }

    *p += n;

    return NGX_OK;
}


static void
ngx_teleclinic_mirror_read(void)
{
    ngx_str_t  *from;

    static ngx_str_t  start = ngx_string("0-0");

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    from = ngx_teleclinic_mirror_last.len ? &ngx_teleclinic_mirror_last
                                          : &start;

    (void) ngx_teleclinic_redis_command(ngx_teleclinic_mirror_in,
                NGX_TELECLINIC_MIRROR_BLOCK
                + ngx_teleclinic_mirror->redis->timeout,
                ngx_teleclinic_mirror_entries, NULL,
                "XREAD COUNT %lu BLOCK %lu STREAMS %b %b",
                (unsigned long) NGX_TELECLINIC_MIRROR_BATCH,
                (unsigned long) NGX_TELECLINIC_MIRROR_BLOCK,
                ngx_teleclinic_mirror->stream.data,
                ngx_teleclinic_mirror->stream.len, from->data, from->len);
}


/* [[stream, [[id, [field, value, ...]], ...]]], or nil when none came */

static void
ngx_teleclinic_mirror_entries(redisReply *reply, void *data)
{
    size_t       i;
    redisReply  *entries;
    ngx_pool_t  *pool;

    if (reply == NULL) {
        return;                          /* read again on reconnecting */
    }

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1
        && reply->element[0]->type == REDIS_REPLY_ARRAY
        && reply->element[0]->elements == 2
        && reply->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
    {
        entries = reply->element[0]->element[1];

        pool = ngx_create_pool(4096, ngx_cycle->log);
        if (pool == NULL) {
            return;
        }

        for (i = 0; i < entries->elements; i++) {
            ngx_teleclinic_mirror_entry(entries->element[i], pool);
            ngx_reset_pool(pool);
        }

        ngx_destroy_pool(pool);

    } else if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "teleclinic mirror: XREAD failed: %*s",
                      reply->len, reply->str);
    }

    ngx_teleclinic_mirror_read();
}


static void
ngx_teleclinic_mirror_entry(redisReply *entry, ngx_pool_t *pool)
{
    size_t                   i;
    ngx_int_t                rc, n;
    ngx_str_t                rid, node, line, worker, field;
    ngx_uint_t               own;
    redisReply              *fields, *f, *v;
    ngx_teleclinic_zone_t   *zone;
    ngx_teleclinic_mark_t   *mark, *floor;
    ngx_teleclinic_event_t   ev;

    zone = ngx_teleclinic_mirror_zone;

    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2
        || entry->element[0]->type != REDIS_REPLY_STRING
        || entry->element[1]->type != REDIS_REPLY_ARRAY)
    {
        return;
    }

    rid.data = (u_char *) entry->element[0]->str;
    rid.len = entry->element[0]->len;

    if (ngx_teleclinic_journal_rid(&rid) != NGX_OK) {
        return;
    }

    /* read on from here whatever this entry holds */

    ngx_memcpy(ngx_teleclinic_mirror_pos, rid.data, rid.len);
    ngx_teleclinic_mirror_last.len = rid.len;

    ngx_str_null(&node);
    ngx_str_null(&line);
    ngx_str_null(&worker);

    fields = entry->element[1];

    for (i = 0; i + 1 < fields->elements; i += 2) {
        f = fields->element[i];
        v = fields->element[i + 1];

        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            continue;
        }

        field.data = (u_char *) f->str;
        field.len = f->len;

        if (field.len == 4 && ngx_strncmp(field.data, "node", 4) == 0) {
            node.data = (u_char *) v->str;
            node.len = v->len;

        } else if (field.len == 4 && ngx_strncmp(field.data, "line", 4) == 0) {
            line.data = (u_char *) v->str;
            line.len = v->len;

        } else if (field.len == 1 && field.data[0] == 'w') {
            worker.data = (u_char *) v->str;
            worker.len = v->len;
        }
    }

    n = worker.len ? ngx_atoi(worker.data, worker.len) : NGX_ERROR;

    if (node.len == 0 || node.len > NGX_TELECLINIC_NODE_MAX
        || ngx_teleclinic_id_valid(node.data, node.len) != NGX_OK
        || line.len == 0 || n == NGX_ERROR)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "teleclinic mirror: entry %V is not a change, "
                      "left out", &rid);
        return;
    }

    own = node.len == ngx_teleclinic_mirror->node.len
          && ngx_strncmp(node.data, ngx_teleclinic_mirror->node.data,
                         node.len) == 0;

    if (own) {
        /* this node's change is in its zone, unless the zone was lost */

        if (!ngx_teleclinic_mirror_loading) {
            return;
        }

        if (ngx_teleclinic_mirror_rid_after(&rid,
                                            &ngx_teleclinic_mirror_base))
        {
            ngx_teleclinic_mirror_loading = 0;
            return;
        }
    }

    rc = ngx_teleclinic_journal_decode(line.data, line.len, &ev,
                                       zone->journal->keys, pool);
    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "teleclinic mirror: entry %V of node \"%V\" cannot "
                      "be read%s, left out", &rid, &node,
                      rc == NGX_ABORT ? " with this node's data keys" : "");
        return;
    }

    ev.oseq = ev.seq;
    ev.node = node;
    ev.worker = n;
    ev.rid = rid;

    ngx_teleclinic_zone_lock(zone);

    mark = ngx_teleclinic_mark(zone, &node, n);
    floor = ngx_teleclinic_mark(zone, &node, NGX_TELECLINIC_MIRROR_ANY);

    if ((mark && ev.oseq <= mark->seq) || (floor && ev.oseq <= floor->seq)) {
        /* seen before: an XADD whose answer was lost, sent again */
        ngx_teleclinic_zone_unlock(zone);
        return;
    }

    if (own && ev.oseq > zone->sh->seq) {
        /* this node's sequence goes on after its earlier changes */
        zone->sh->seq = ev.oseq;
    }

    rc = ngx_teleclinic_journal_commit(zone, &ev, ngx_cycle->log);

    ngx_teleclinic_zone_unlock(zone);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "teleclinic mirror: entry %V of node \"%V\" could not "
                      "be applied", &rid, &node);
    }
}


/* a > b, both "ms-seq" */

static ngx_int_t
ngx_teleclinic_mirror_rid_after(ngx_str_t *a, ngx_str_t *b)
{
    u_char     *da, *db;
    size_t      la, lb;

    da = ngx_strlchr(a->data, a->data + a->len, '-');
    db = ngx_strlchr(b->data, b->data + b->len, '-');

    if (da == NULL || db == NULL) {
        return 0;
    }

    la = da - a->data;
    lb = db - b->data;

    if (la != lb) {
        return la > lb;
    }

    if (ngx_memcmp(a->data, b->data, la) != 0) {
        return ngx_memcmp(a->data, b->data, la) > 0;
    }

    la = a->len - la;
    lb = b->len - lb;

    if (la != lb) {
        return la > lb;
    }

    return ngx_memcmp(da, db, la) > 0;
}


/*
 * Which nodes are alive: worker 0 of each puts its name in a sorted set
 * with the time as its score every second, and reads back the names
 * seen in the last NGX_TELECLINIC_MIRROR_ALIVE ms.  The list goes to the
 * zone for every worker of the node: the rooms' homes are chosen from it.
 */

#define NGX_TELECLINIC_MIRROR_BEAT    1000
#define NGX_TELECLINIC_MIRROR_ALIVE   3000

static void
ngx_teleclinic_mirror_heartbeat(ngx_event_t *ev)
{
    u_char      *p;
    u_char       member[NGX_TELECLINIC_NODE_MAX + 1 + NGX_TELECLINIC_URL_MAX];
    ngx_str_t   *key;
    ngx_time_t  *tp;
    unsigned long long  ms;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(ev, NGX_TELECLINIC_MIRROR_BEAT);

    if (!ngx_teleclinic_mirror_up()) {
        return;                          /* the list stays as it was */
    }

    tp = ngx_timeofday();
    ms = (unsigned long long) tp->sec * 1000 + tp->msec;

    key = &ngx_teleclinic_mirror_nodes_name;

    /* the member is the name, then the public URL the clients use */
    p = ngx_snprintf(member, sizeof(member), "%V%s%V",
                     &ngx_teleclinic_mirror->node,
                     ngx_teleclinic_mirror->url.len ? " " : "",
                     &ngx_teleclinic_mirror->url);

    (void) ngx_teleclinic_redis_command(ngx_teleclinic_mirror_out, 0,
                                        ngx_teleclinic_mirror_answered, "ZADD",
                                        "ZADD %b %llu %b", key->data, key->len,
                                        ms, member, (size_t) (p - member));

    /* those gone for a minute leave the set */

    (void) ngx_teleclinic_redis_command(ngx_teleclinic_mirror_out, 0,
                                        ngx_teleclinic_mirror_answered,
                                        "ZREMRANGEBYSCORE",
                                        "ZREMRANGEBYSCORE %b -inf (%llu",
                                        key->data, key->len, ms - 60000);

    (void) ngx_teleclinic_redis_command(ngx_teleclinic_mirror_out, 0,
                                        ngx_teleclinic_mirror_alive, NULL,
                                        "ZRANGEBYSCORE %b (%llu +inf",
                                        key->data, key->len,
                                        ms - NGX_TELECLINIC_MIRROR_ALIVE);
}


static void
ngx_teleclinic_mirror_answered(redisReply *reply, void *data)
{
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "teleclinic mirror: %s failed: %*s", data,
                      reply->len, reply->str);
    }
}


static void
ngx_teleclinic_mirror_alive(redisReply *reply, void *data)
{
    u_char                  *name, *end, *url;
    size_t                   i, len;
    ngx_uint_t               n, k, changed;
    redisReply              *e;
    ngx_teleclinic_group_t  *sh;
    ngx_teleclinic_node_t    nodes[NGX_TELECLINIC_NODES];

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return;
    }

    n = 0;

    /* oldest first: a node seen twice (its URL changed) keeps the last */

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        name = (u_char *) e->str;
        end = name + e->len;
        url = ngx_strlchr(name, end, ' ');
        len = (url ? url : end) - name;

        if (len == 0 || len > NGX_TELECLINIC_NODE_MAX
            || ngx_teleclinic_id_valid(name, len) != NGX_OK
            || (url && (size_t) (end - url - 1) > NGX_TELECLINIC_URL_MAX))
        {
            continue;
        }

        for (k = 0; k < n; k++) {
            if (nodes[k].len == len
                && ngx_memcmp(nodes[k].name, name, len) == 0)
            {
                break;
            }
        }

        if (k == NGX_TELECLINIC_NODES) {
            continue;
        }

        if (k == n) {
            n++;
        }

        nodes[k].len = len;
        ngx_memcpy(nodes[k].name, name, len);
        nodes[k].url_len = url ? (size_t) (end - url - 1) : 0;

        if (url) {
            ngx_memcpy(nodes[k].url, url + 1, nodes[k].url_len);
        }
    }

    /* in the order of their names, so that a list compares as equal */
    ngx_sort(nodes, n, sizeof(ngx_teleclinic_node_t),
             ngx_teleclinic_mirror_node_cmp);

    ngx_teleclinic_zone_lock(ngx_teleclinic_mirror_zone);

    sh = ngx_teleclinic_mirror_zone->sh->group;

    changed = (n != sh->nnodes);

    for (i = 0; !changed && i < n; i++) {
        changed = nodes[i].len != sh->nodes[i].len
                  || ngx_memcmp(nodes[i].name, sh->nodes[i].name,
                                nodes[i].len) != 0
                  || nodes[i].url_len != sh->nodes[i].url_len
                  || ngx_memcmp(nodes[i].url, sh->nodes[i].url,
                                nodes[i].url_len) != 0;
    }

    if (changed) {
        ngx_memcpy(sh->nodes, nodes, n * sizeof(ngx_teleclinic_node_t));
        sh->nnodes = n;
        sh->nodes_version++;
    }

    ngx_teleclinic_zone_unlock(ngx_teleclinic_mirror_zone);

    if (changed) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "teleclinic mirror: %ui nodes alive", n);
    }
}


/*
 * The node a doctor's waiting room lives on: of the nodes alive, the one
 * whose hash with the doctor is highest (rendezvous hashing), so that
 * every node names the same one without asking, and a node's death moves
 * only its own rooms.  NGX_OK: this node (also with one node, or while
 * Redis is away: no connection can be relayed then); NGX_DECLINED:
 * another, copied into node.
 */

ngx_int_t
ngx_teleclinic_mirror_home(ngx_str_t *doctor, ngx_teleclinic_node_t *node,
    ngx_uint_t *version)
{
    *version = 0;

    if (!ngx_teleclinic_mirror_up()) {
        return NGX_OK;
    }

    return ngx_teleclinic_mirror_pick(doctor, node, version);
}


/*
 * While Redis is away: the node the room was on when the nodes alive
 * were last heard of (they stay as they were), NGX_DECLINED when it is
 * another that has a public URL, for the client to go to.
 */

ngx_int_t
ngx_teleclinic_mirror_last_home(ngx_str_t *doctor,
    ngx_teleclinic_node_t *node)
{
    ngx_uint_t  version;

    if (ngx_teleclinic_mirror == NULL || ngx_teleclinic_mirror_up()
        || ngx_teleclinic_mirror_pick(doctor, node, &version) == NGX_OK
        || node->url_len == 0)
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_teleclinic_mirror_pick(ngx_str_t *doctor, ngx_teleclinic_node_t *node,
    ngx_uint_t *version)
{
    ngx_int_t  rc;

    ngx_teleclinic_zone_lock(ngx_teleclinic_mirror_zone);

    *version = ngx_teleclinic_mirror_zone->sh->group->nodes_version;
    rc = ngx_teleclinic_mirror_pick_locked(doctor->data, doctor->len, node);

    ngx_teleclinic_zone_unlock(ngx_teleclinic_mirror_zone);

    return rc;
}


/*
 * With the zone locked, for the rooms' walk: whether a doctor's room is
 * this node's (also with one node, or while Redis is away).
 */

ngx_uint_t
ngx_teleclinic_mirror_here_locked(u_char *doctor, size_t len)
{
    ngx_teleclinic_node_t  node;

    return ngx_teleclinic_mirror == NULL || !ngx_teleclinic_mirror_up()
           || ngx_teleclinic_mirror_pick_locked(doctor, len, &node) == NGX_OK;
}


static ngx_int_t
ngx_teleclinic_mirror_pick_locked(u_char *doctor, size_t len,
    ngx_teleclinic_node_t *node)
{
    uint32_t                 best, h;
    ngx_uint_t               i, found;
    ngx_teleclinic_node_t   *n;
    ngx_teleclinic_group_t  *sh;

    sh = ngx_teleclinic_mirror_zone->sh->group;
    best = 0;
    found = 0;

    for (i = 0; i < sh->nnodes; i++) {
        n = &sh->nodes[i];

        ngx_crc32_init(h);
        ngx_crc32_update(&h, doctor, len);
        ngx_crc32_update(&h, (u_char *) "/", 1);
        ngx_crc32_update(&h, n->name, n->len);
        ngx_crc32_final(h);

        if (!found || h > best) {
            best = h;
            *node = *n;
            found = 1;
        }
    }

    if (!found
        || (node->len == ngx_teleclinic_mirror->node.len
            && ngx_memcmp(node->name, ngx_teleclinic_mirror->node.data,
                          node->len) == 0))
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/* a node's name is among those alive */

ngx_uint_t
ngx_teleclinic_mirror_alive_node(u_char *name, size_t len)
{
    ngx_uint_t               i, alive;
    ngx_teleclinic_group_t  *sh;

    sh = ngx_teleclinic_mirror_zone->sh->group;
    alive = 0;

    ngx_teleclinic_zone_lock(ngx_teleclinic_mirror_zone);

    for (i = 0; i < sh->nnodes && !alive; i++) {
        alive = sh->nodes[i].len == len
                && ngx_memcmp(sh->nodes[i].name, name, len) == 0;
    }

    ngx_teleclinic_zone_unlock(ngx_teleclinic_mirror_zone);

    return alive;
}


ngx_uint_t
ngx_teleclinic_mirror_nodes_version(void)
{
    return ngx_teleclinic_mirror_zone
           ? ngx_teleclinic_mirror_zone->sh->group->nodes_version : 0;
}


/*
 * A slot's claim: SET NX, one conditional write.  Of any number of
 * attempts at once, on any nodes, Redis lets exactly one set the key, in
 * one round trip and with nothing to retry (a WATCH/MULTI would make the
 * losers try again; a function would need loading on every server).  The
 * claim lasts a day past the slot, so that one whose booking never came
 * (its node died in between) does not hold the slot for ever.
 */

ngx_int_t
ngx_teleclinic_mirror_claim(ngx_str_t *doctor, time_t start, time_t end,
    uint64_t id, ngx_teleclinic_mirror_claim_pt handler, void *data,
    ngx_teleclinic_claim_t **claimp)
{
    ngx_teleclinic_claim_t  *claim;

    if (!ngx_teleclinic_mirror_up()) {
        return NGX_DECLINED;
    }

    claim = ngx_alloc(sizeof(ngx_teleclinic_claim_t), ngx_cycle->log);
    if (claim == NULL) {
        return NGX_ERROR;
    }

    claim->handler = handler;
    claim->data = data;

    ngx_teleclinic_mirror_claim_key(claim, doctor, start, id);

    if (ngx_teleclinic_redis_command(ngx_teleclinic_mirror_out, 0,
                                     ngx_teleclinic_mirror_claimed, claim,
                                     "SET %b %b NX PXAT %lld", claim->key,
                                     claim->key_len, claim->value,
                                     claim->value_len,
                                     (long long) (end + 86400) * 1000)
        != NGX_OK)
    {
        ngx_free(claim);
        return NGX_DECLINED;
    }

    *claimp = claim;

    return NGX_OK;
}


void
ngx_teleclinic_mirror_claim_cancel(ngx_teleclinic_claim_t *claim)
{
    claim->handler = NULL;
}


static void
ngx_teleclinic_mirror_claimed(redisReply *reply, void *data)
{
    ngx_teleclinic_claim_t *claim = data;

    ngx_int_t  rc;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        rc = NGX_ERROR;

    } else if (reply->type == REDIS_REPLY_STATUS) {
        rc = NGX_OK;

    } else {
        rc = NGX_BUSY;                   /* nil: another has the key */
    }

    if (claim->handler) {
        claim->handler(claim->data, rc);

    } else if (rc == NGX_OK) {
        /* the client left before its claim was answered */
        ngx_teleclinic_mirror_give_back(claim);
    }

    ngx_free(claim);
}


/* a cancelled or moved appointment gives its slot back */

void
ngx_teleclinic_mirror_release(ngx_str_t *doctor, time_t start, uint64_t id)
{
    ngx_teleclinic_claim_t  claim;

    if (!ngx_teleclinic_mirror_up()) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "teleclinic mirror: a slot's claim cannot be given "
                      "back while Redis is away; it lapses a day after "
                      "the slot");
        return;
    }

    ngx_teleclinic_mirror_claim_key(&claim, doctor, start, id);
    ngx_teleclinic_mirror_give_back(&claim);
}


/* compare and delete, in one script: only the claim's own value goes */

static void
ngx_teleclinic_mirror_give_back(ngx_teleclinic_claim_t *claim)
{
    static const char  script[] =
        "if redis.call('get', KEYS[1]) == ARGV[1] then "
        "return redis.call('del', KEYS[1]) end return 0";

    (void) ngx_teleclinic_redis_command(ngx_teleclinic_mirror_out, 0,
                                        ngx_teleclinic_mirror_released, NULL,
                                        "EVAL %s 1 %b %b", script, claim->key,
                                        claim->key_len, claim->value,
                                        claim->value_len);
}


static void
ngx_teleclinic_mirror_released(redisReply *reply, void *data)
{
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "teleclinic mirror: a slot's claim was not given "
                      "back; it lapses a day after the slot");
    }
}


/*
 * The key's hash tag is the hospital's zone and the doctor, so that Redis
 * Cluster keeps a doctor's claims together; the value is the
 * appointment's id, so that only its own claim is given back, by
 * whichever node cancels or moves it.
 */

static void
ngx_teleclinic_mirror_claim_key(ngx_teleclinic_claim_t *claim,
    ngx_str_t *doctor, time_t start, uint64_t id)
{
    u_char  *p;

    p = ngx_snprintf(claim->key, sizeof(claim->key),
                     "teleclinic:{%V.%V}:slot:%T",
                     &ngx_teleclinic_mirror->prefix, doctor, start);
    claim->key_len = p - claim->key;

    p = ngx_teleclinic_appt_id_print(claim->value, id);
    claim->value_len = p - claim->value;
}


ngx_str_t *
ngx_teleclinic_mirror_node(void)
{
    return ngx_teleclinic_mirror ? &ngx_teleclinic_mirror->node : NULL;
}


ngx_str_t *
ngx_teleclinic_mirror_url(void)
{
    return ngx_teleclinic_mirror ? &ngx_teleclinic_mirror->url : NULL;
}


static ngx_int_t
ngx_teleclinic_mirror_node_cmp(const void *one, const void *two)
{
    const ngx_teleclinic_node_t  *a = one, *b = two;

    return ngx_memn2cmp((u_char *) a->name, (u_char *) b->name, a->len,
                        b->len);
}


ngx_uint_t
ngx_teleclinic_mirror_urls(ngx_str_t *urls, ngx_uint_t n, u_char *buf)
{
    ngx_uint_t               i, k;
    ngx_teleclinic_node_t   *node;
    ngx_teleclinic_group_t  *sh;

    if (ngx_teleclinic_mirror == NULL || n == 0) {
        return 0;
    }

    k = 0;

    if (ngx_teleclinic_mirror->url.len) {
        urls[k].data = buf;
        urls[k].len = ngx_teleclinic_mirror->url.len;
        ngx_memcpy(buf, ngx_teleclinic_mirror->url.data, urls[k].len);
        buf += NGX_TELECLINIC_URL_MAX;
        k++;
    }

    sh = ngx_teleclinic_mirror_zone->sh->group;

    ngx_teleclinic_zone_lock(ngx_teleclinic_mirror_zone);

    for (i = 0; i < sh->nnodes && k < n; i++) {
        node = &sh->nodes[i];

        if (node->url_len == 0
            || (node->len == ngx_teleclinic_mirror->node.len
                && ngx_memcmp(node->name, ngx_teleclinic_mirror->node.data,
                              node->len) == 0))
        {
            continue;
        }

        urls[k].data = buf;
        urls[k].len = node->url_len;
        ngx_memcpy(buf, node->url, node->url_len);
        buf += NGX_TELECLINIC_URL_MAX;
        k++;
    }

    ngx_teleclinic_zone_unlock(ngx_teleclinic_mirror_zone);

    return k;
}


/*
 * With the zone locked: whether the node that owns a message is alive,
 * so that this one leaves it to that one; a dead node's messages are
 * sent by the others (at least once, as the outbox always does).
 */

ngx_uint_t
ngx_teleclinic_mirror_owner_alive_locked(ngx_teleclinic_zone_t *zone,
    ngx_uint_t owner)
{
    ngx_uint_t               i;
    ngx_teleclinic_group_t  *group;

    group = zone->sh->group;

    if (group == NULL || ngx_teleclinic_mirror == NULL
        || !ngx_teleclinic_mirror_up())
    {
        /* nothing known of the others: they are taken for alive */
        return 1;
    }

    for (i = 0; i < group->nnodes; i++) {
        if (ngx_teleclinic_node_hash(group->nodes[i].name,
                                     group->nodes[i].len)
            == owner)
        {
            return 1;
        }
    }

    return 0;
}
