
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_teleclinic_relay.h"
#include "ngx_teleclinic_crypt.h"


/*
 * Each worker reads its own channel, "teleclinic:{zone}:w:NODE:PID",
 * where the texts for its relayed clients come; worker 0 also reads the
 * node's, "teleclinic:{zone}:n:NODE", where other nodes' clients come to
 * this node's rooms.  Pub/Sub keeps nothing: a message sent while a
 * subscriber is away is lost, so a lost subscription ends the relays it
 * carried, and their clients connect again, as after a reload.  With a
 * data key the messages are sealed like the journal's patient data:
 * a doctor's queue names the patients.
 */


/* a client of this node whose room is on another */
struct ngx_http_teleclinic_relay_s {
    ngx_rbtree_node_t                  node;      /* key: id */
    ngx_teleclinic_ws_t               *ws;
    ngx_teleclinic_node_t              home;
    ngx_uint_t                         version;   /* of the nodes alive */
    size_t                             doctor_len;
    u_char                             doctor[NGX_TELECLINIC_ID_MAX];
};


/* a client of another node, in one of this node's rooms */
typedef struct {
    ngx_rbtree_node_t                  node;      /* key: hash of from, id */
    ngx_teleclinic_ws_t                ws;        /* without a socket */
    ngx_pool_t                        *pool;
    ngx_event_t                        free;      /* after its close */
    ngx_str_t                          from;      /* its worker's channel */
    ngx_teleclinic_node_t              origin;
    uint64_t                           id;
} ngx_http_teleclinic_remote_t;


#define NGX_HTTP_TELECLINIC_RELAY_CHECK  1000    /* ms, the nodes alive */

#define NGX_HTTP_TELECLINIC_RELAY_MAX    (256 * 1024)
#define NGX_HTTP_TELECLINIC_CHANNEL_LEN  256


static void ngx_http_teleclinic_relay_state(ngx_teleclinic_redis_t *rd,
    ngx_uint_t up, void *data);
static void ngx_http_teleclinic_relay_out_state(ngx_teleclinic_redis_t *rd,
    ngx_uint_t up, void *data);
static void ngx_http_teleclinic_relay_receive(u_char *data, size_t len,
    void *ctx);
static void ngx_http_teleclinic_relay_to_client(json_t *o);
static void ngx_http_teleclinic_relay_to_room(json_t *o);
static void ngx_http_teleclinic_relay_channel(ngx_teleclinic_node_t *node,
    u_char *buf, ngx_str_t *channel);
static ngx_int_t ngx_http_teleclinic_relay_publish(ngx_str_t *channel,
    json_t *o);
static void ngx_http_teleclinic_relay_published(redisReply *reply,
    void *data);
static void ngx_http_teleclinic_relay_check(ngx_event_t *ev);
static void ngx_http_teleclinic_relay_end_all(void);
static ngx_http_teleclinic_remote_t *ngx_http_teleclinic_remote_find(
    ngx_str_t *from, uint64_t id);
static void ngx_http_teleclinic_remote_deliver(
    ngx_http_teleclinic_remote_t *rm, const char *text);
static void ngx_http_teleclinic_remote_send(ngx_teleclinic_ws_t *ws,
    u_char *text, size_t len);
static void ngx_http_teleclinic_remote_close(ngx_teleclinic_ws_t *ws,
    uint16_t code, const char *reason);
static void ngx_http_teleclinic_remote_end(ngx_http_teleclinic_remote_t *rm);
static void ngx_http_teleclinic_remote_free(ngx_event_t *ev);
static ngx_rbtree_key_t ngx_http_teleclinic_remote_key(ngx_str_t *from,
    uint64_t id);


static ngx_teleclinic_ws_remote_t  ngx_http_teleclinic_remote_ops = {
    ngx_http_teleclinic_remote_send,
    ngx_http_teleclinic_remote_close
};


static ngx_teleclinic_ws_handler_t   *ngx_http_teleclinic_relay_handler;
static ngx_teleclinic_keys_t         *ngx_http_teleclinic_relay_keys;
static ngx_teleclinic_redis_t        *ngx_http_teleclinic_relay_sub;
static ngx_teleclinic_redis_t        *ngx_http_teleclinic_relay_pub;
static ngx_str_t                      ngx_http_teleclinic_relay_prefix;
static ngx_str_t                      ngx_http_teleclinic_relay_mine;
static ngx_str_t                      ngx_http_teleclinic_relay_node_channel;
static ngx_uint_t                     ngx_http_teleclinic_relay_ids;
static ngx_uint_t                     ngx_http_teleclinic_relay_version;
static ngx_event_t                    ngx_http_teleclinic_relay_timer;

static ngx_rbtree_t                   ngx_http_teleclinic_relays;
static ngx_rbtree_node_t              ngx_http_teleclinic_relays_sentinel;
static ngx_rbtree_t                   ngx_http_teleclinic_remotes;
static ngx_rbtree_node_t              ngx_http_teleclinic_remotes_sentinel;


ngx_int_t
ngx_http_teleclinic_relay_init_process(ngx_cycle_t *cycle,
    ngx_http_teleclinic_main_conf_t *tmcf,
    ngx_teleclinic_ws_handler_t *handler)
{
    u_char     *p;
    ngx_str_t  *node;

    ngx_rbtree_init(&ngx_http_teleclinic_relays,
                    &ngx_http_teleclinic_relays_sentinel,
                    ngx_rbtree_insert_value);
    ngx_rbtree_init(&ngx_http_teleclinic_remotes,
                    &ngx_http_teleclinic_remotes_sentinel,
                    ngx_rbtree_insert_value);

    if (tmcf->redis == NULL || tmcf->shm_zone == NULL
        || (ngx_process != NGX_PROCESS_WORKER
            && ngx_process != NGX_PROCESS_SINGLE))
    {
        return NGX_OK;
    }

    node = &tmcf->mirror.node;

    ngx_http_teleclinic_relay_handler = handler;
    ngx_http_teleclinic_relay_keys = tmcf->journal.keys;
    ngx_http_teleclinic_relay_prefix = tmcf->mirror.prefix;

    p = ngx_pnalloc(cycle->pool, 2 * (sizeof("teleclinic:{}:w::") - 1
                                      + tmcf->mirror.prefix.len + node->len
                                      + NGX_INT64_LEN));
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_http_teleclinic_relay_mine.data = p;
    p = ngx_sprintf(p, "teleclinic:{%V}:w:%V:%P", &tmcf->mirror.prefix, node,
                    ngx_pid);
    ngx_http_teleclinic_relay_mine.len =
                                  p - ngx_http_teleclinic_relay_mine.data;

    ngx_http_teleclinic_relay_node_channel.data = p;
    p = ngx_sprintf(p, "teleclinic:{%V}:n:%V", &tmcf->mirror.prefix, node);
    ngx_http_teleclinic_relay_node_channel.len =
                              p - ngx_http_teleclinic_relay_node_channel.data;

    ngx_http_teleclinic_relay_pub = ngx_teleclinic_redis_create(cycle,
                                        tmcf->redis, "relay",
                                        ngx_http_teleclinic_relay_out_state,
                                        NULL);
    ngx_http_teleclinic_relay_sub = ngx_teleclinic_redis_create(cycle,
                                        tmcf->redis, "relay subscriber",
                                        ngx_http_teleclinic_relay_state,
                                        NULL);

    if (ngx_http_teleclinic_relay_pub == NULL
        || ngx_http_teleclinic_relay_sub == NULL)
    {
        return NGX_ERROR;
    }

    ngx_http_teleclinic_relay_timer.handler = ngx_http_teleclinic_relay_check;
    ngx_http_teleclinic_relay_timer.log = cycle->log;
    ngx_http_teleclinic_relay_timer.cancelable = 1;

    ngx_add_timer(&ngx_http_teleclinic_relay_timer,
                  NGX_HTTP_TELECLINIC_RELAY_CHECK);

    return NGX_OK;
}


void
ngx_http_teleclinic_relay_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_teleclinic_relay_sub == NULL) {
        return;
    }

    ngx_http_teleclinic_relay_end_all();

    ngx_teleclinic_redis_destroy(ngx_http_teleclinic_relay_sub);
    ngx_teleclinic_redis_destroy(ngx_http_teleclinic_relay_pub);
    ngx_http_teleclinic_relay_sub = NULL;
    ngx_http_teleclinic_relay_pub = NULL;
}


static void
ngx_http_teleclinic_relay_state(ngx_teleclinic_redis_t *rd, ngx_uint_t up,
    void *data)
{
    if (!up) {
        /* what was sent meanwhile is lost: the relays end */
        ngx_http_teleclinic_relay_end_all();
        return;
    }

    (void) ngx_teleclinic_redis_subscribe(rd, &ngx_http_teleclinic_relay_mine,
                                          ngx_http_teleclinic_relay_receive,
                                          NULL);

    if (ngx_worker == 0) {
        (void) ngx_teleclinic_redis_subscribe(rd,
                                      &ngx_http_teleclinic_relay_node_channel,
                                      ngx_http_teleclinic_relay_receive,
                                      NULL);
    }
}


static void
ngx_http_teleclinic_relay_out_state(ngx_teleclinic_redis_t *rd,
    ngx_uint_t up, void *data)
{
    if (!up) {
        ngx_http_teleclinic_relay_end_all();
    }
}


/*
 * The client's side: from now on what the client says goes to the room's
 * node, the hello first.
 */

ngx_int_t
ngx_http_teleclinic_relay_open(ngx_teleclinic_ws_t *ws, ngx_str_t *doctor,
    json_t *hello, ngx_http_teleclinic_relay_t **relayp)
{
    u_char                        channel[NGX_HTTP_TELECLINIC_CHANNEL_LEN];
    json_t                       *o;
    ngx_str_t                     ch, *mine;
    ngx_uint_t                    version;
    ngx_teleclinic_node_t         home;
    ngx_http_teleclinic_relay_t  *relay;

    if (ngx_http_teleclinic_relay_pub == NULL
        || !ngx_teleclinic_redis_is_up(ngx_http_teleclinic_relay_pub)
        || !ngx_teleclinic_redis_is_up(ngx_http_teleclinic_relay_sub)
        || ngx_teleclinic_mirror_home(doctor, &home, &version) == NGX_OK)
    {
        return NGX_DECLINED;
    }

    relay = ngx_pcalloc(ws->pool, sizeof(ngx_http_teleclinic_relay_t));
    if (relay == NULL) {
        return NGX_ERROR;
    }

    relay->ws = ws;
    relay->home = home;
    relay->version = version;
    relay->doctor_len = doctor->len;
    ngx_memcpy(relay->doctor, doctor->data, doctor->len);
    relay->node.key = ++ngx_http_teleclinic_relay_ids;

    mine = ngx_teleclinic_mirror_node();

    ngx_http_teleclinic_relay_channel(&home, channel, &ch);

    o = json_pack("{s:s, s:s%, s:s%, s:I, s:O}", "op", "open",
                  "from", ngx_http_teleclinic_relay_mine.data,
                  ngx_http_teleclinic_relay_mine.len,
                  "node", mine->data, mine->len,
                  "id", (json_int_t) relay->node.key, "msg", hello);

    if (ngx_http_teleclinic_relay_publish(&ch, o) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_rbtree_insert(&ngx_http_teleclinic_relays, &relay->node);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ws->log, 0,
                   "teleclinic relay: #%ui to node \"%V\"",
                   relay->node.key, &ch);

    *relayp = relay;

    return NGX_OK;
}


void
ngx_http_teleclinic_relay_message(ngx_http_teleclinic_relay_t *relay,
    json_t *root)
{
    u_char     channel[NGX_HTTP_TELECLINIC_CHANNEL_LEN];
    json_t    *o;
    ngx_str_t  ch;

    ngx_http_teleclinic_relay_channel(&relay->home, channel, &ch);

    o = json_pack("{s:s, s:s%, s:I, s:O}", "op", "text",
                  "from", ngx_http_teleclinic_relay_mine.data,
                  ngx_http_teleclinic_relay_mine.len,
                  "id", (json_int_t) relay->node.key, "msg", root);

    if (ngx_http_teleclinic_relay_publish(&ch, o) != NGX_OK) {
        ngx_teleclinic_ws_close(relay->ws, NGX_HTTP_TELECLINIC_WS_AWAY,
                                "the room is out of reach");
    }
}


/* the client's connection ended (from its session's close) */

void
ngx_http_teleclinic_relay_close(ngx_http_teleclinic_relay_t *relay)
{
    u_char     channel[NGX_HTTP_TELECLINIC_CHANNEL_LEN];
    json_t    *o;
    ngx_str_t  ch;

    if (relay->ws == NULL) {
        return;
    }

    ngx_rbtree_delete(&ngx_http_teleclinic_relays, &relay->node);
    relay->ws = NULL;

    ngx_http_teleclinic_relay_channel(&relay->home, channel, &ch);

    o = json_pack("{s:s, s:s%, s:I}", "op", "close",
                  "from", ngx_http_teleclinic_relay_mine.data,
                  ngx_http_teleclinic_relay_mine.len,
                  "id", (json_int_t) relay->node.key);

    (void) ngx_http_teleclinic_relay_publish(&ch, o);
}


/* a node's channel, where its worker 0 takes other nodes' clients */

static void
ngx_http_teleclinic_relay_channel(ngx_teleclinic_node_t *node, u_char *buf,
    ngx_str_t *channel)
{
    channel->data = buf;
    channel->len = ngx_snprintf(buf, NGX_HTTP_TELECLINIC_CHANNEL_LEN,
                                "teleclinic:{%V}:n:%*s",
                                &ngx_http_teleclinic_relay_prefix, node->len,
                                node->name)
                   - buf;
}


static ngx_int_t
ngx_http_teleclinic_relay_publish(ngx_str_t *channel, json_t *o)
{
    char        *text;
    u_char      *sealed, *msg;
    size_t       len, size;
    ngx_int_t    rc;

    if (o == NULL) {
        return NGX_ERROR;
    }

    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);

    if (text == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(text);
    sealed = NULL;

    msg = (u_char *) text;
    size = len;

    if (ngx_http_teleclinic_relay_keys) {
        sealed = ngx_alloc(len + NGX_TELECLINIC_SEAL_OVERHEAD, ngx_cycle->log);

        if (sealed == NULL
            || ngx_teleclinic_seal(ngx_http_teleclinic_relay_keys,
                                   (u_char *) "relay", 5, (u_char *) text,
                                   len, sealed)
               != NGX_OK)
        {
            free(text);
            ngx_free(sealed);
            return NGX_ERROR;
        }

        msg = sealed;
        size = len + NGX_TELECLINIC_SEAL_OVERHEAD;
    }

    rc = ngx_teleclinic_redis_command(ngx_http_teleclinic_relay_pub, 0,
                                      ngx_http_teleclinic_relay_published,
                                      NULL, "PUBLISH %b %b", channel->data,
                                      channel->len, msg, size);

    free(text);

    if (sealed) {
        ngx_free(sealed);
    }

    return rc;
}


static void
ngx_http_teleclinic_relay_published(redisReply *reply, void *data)
{
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "teleclinic relay: a message was not published");
    }
}


static void
ngx_http_teleclinic_relay_receive(u_char *data, size_t len, void *ctx)
{
    u_char        *text;
    json_t        *o, *op;
    json_error_t   err;

    if (len == 0 || len > NGX_HTTP_TELECLINIC_RELAY_MAX) {
        return;
    }

    text = data;

    if (ngx_http_teleclinic_relay_keys) {
        if (len < NGX_TELECLINIC_SEAL_OVERHEAD) {
            return;
        }

        text = ngx_alloc(len, ngx_cycle->log);
        if (text == NULL) {
            return;
        }

        if (ngx_teleclinic_unseal(ngx_http_teleclinic_relay_keys,
                                  (u_char *) "relay", 5, data, len, text)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "teleclinic relay: a message cannot be opened "
                          "with this node's data keys");
            ngx_free(text);
            return;
        }

        len -= NGX_TELECLINIC_SEAL_OVERHEAD;
    }

    o = json_loadb((char *) text, len, 0, &err);

    if (text != data) {
        ngx_free(text);
    }

    op = o ? json_object_get(o, "op") : NULL;

    if (!json_is_string(op)) {
        json_decref(o);
        return;
    }

    if (json_object_get(o, "from")) {
        ngx_http_teleclinic_relay_to_room(o);

    } else {
        ngx_http_teleclinic_relay_to_client(o);
    }

    json_decref(o);
}


/* on the client's node: what its room's node sends it */

static void
ngx_http_teleclinic_relay_to_client(json_t *o)
{
    json_int_t                    id, code;
    const char                   *op, *text, *reason;
    ngx_rbtree_node_t            *node, *sentinel;
    ngx_http_teleclinic_relay_t  *relay;

    op = json_string_value(json_object_get(o, "op"));
    id = json_integer_value(json_object_get(o, "id"));

    node = ngx_http_teleclinic_relays.root;
    sentinel = ngx_http_teleclinic_relays.sentinel;

    while (node != sentinel && node->key != (ngx_rbtree_key_t) id) {
        node = ((ngx_rbtree_key_t) id < node->key) ? node->left : node->right;
    }

    if (node == sentinel) {
        return;                          /* gone meanwhile */
    }

    relay = (ngx_http_teleclinic_relay_t *) node;

    if (ngx_strcmp(op, "text") == 0) {
        text = json_string_value(json_object_get(o, "text"));

        if (text == NULL) {
            return;
        }

        /*
         * the room's node welcomed the hello: the deadline for one ends
         * here, where the socket is
         */
        if (!relay->ws->joined
            && ngx_strstr(text, "\"type\":\"welcome\"") != NULL)
        {
            ngx_teleclinic_ws_joined(relay->ws);
        }

        ngx_teleclinic_ws_send_text(relay->ws, (u_char *) text,
                                    ngx_strlen(text));
        return;
    }

    if (ngx_strcmp(op, "close") == 0) {
        code = json_integer_value(json_object_get(o, "code"));
        reason = json_string_value(json_object_get(o, "reason"));

        ngx_teleclinic_ws_close(relay->ws,
                                (code >= 1000 && code < 5000)
                                ? (uint16_t) code : WSLAY_CODE_NORMAL_CLOSURE,
                                reason ? reason : "");
    }
}


/* on the room's node: what another node's client says */

static void
ngx_http_teleclinic_relay_to_room(json_t *o)
{
    char                          *text;
    json_t                        *msg;
    uint64_t                       id;
    ngx_str_t                      from, node;
    const char                    *op;
    ngx_pool_t                    *pool;
    ngx_http_teleclinic_remote_t  *rm;

    op = json_string_value(json_object_get(o, "op"));
    id = (uint64_t) json_integer_value(json_object_get(o, "id"));

    from.data = (u_char *) json_string_value(json_object_get(o, "from"));
    if (from.data == NULL) {
        return;
    }

    from.len = ngx_strlen(from.data);

    rm = ngx_http_teleclinic_remote_find(&from, id);

    if (ngx_strcmp(op, "open") == 0) {
        node.data = (u_char *) json_string_value(json_object_get(o, "node"));
        node.len = node.data ? ngx_strlen(node.data) : 0;

        if (rm || node.len == 0 || node.len > NGX_TELECLINIC_NODE_MAX
            || from.len > 256)
        {
            return;
        }

        pool = ngx_create_pool(1024, ngx_cycle->log);
        if (pool == NULL) {
            return;
        }

        rm = ngx_pcalloc(pool, sizeof(ngx_http_teleclinic_remote_t));
        if (rm == NULL) {
            ngx_destroy_pool(pool);
            return;
        }

        rm->pool = pool;
        rm->id = id;
        rm->from.len = from.len;
        rm->from.data = ngx_pstrdup(pool, &from);
        rm->origin.len = node.len;
        ngx_memcpy(rm->origin.name, node.data, node.len);

        if (rm->from.data == NULL) {
            ngx_destroy_pool(pool);
            return;
        }

        rm->ws.pool = pool;
        rm->ws.log = ngx_cycle->log;
        rm->ws.remote = &ngx_http_teleclinic_remote_ops;

        rm->free.handler = ngx_http_teleclinic_remote_free;
        rm->free.data = rm;
        rm->free.log = ngx_cycle->log;

        rm->node.key = ngx_http_teleclinic_remote_key(&rm->from, id);
        ngx_rbtree_insert(&ngx_http_teleclinic_remotes, &rm->node);

        if (ngx_http_teleclinic_relay_handler->open(&rm->ws) != NGX_OK) {
            ngx_http_teleclinic_remote_close(&rm->ws,
                                           WSLAY_CODE_INTERNAL_SERVER_ERROR,
                                           "out of memory");
            return;
        }

        op = "text";
    }

    if (rm == NULL) {
        return;
    }

    if (ngx_strcmp(op, "close") == 0) {
        rm->ws.done = 1;
        ngx_http_teleclinic_remote_end(rm);
        return;
    }

    if (ngx_strcmp(op, "text") == 0 && !rm->ws.done) {
        msg = json_object_get(o, "msg");
        text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;

        if (text) {
            ngx_http_teleclinic_remote_deliver(rm, text);
            free(text);
        }
    }
}


/* a message of the client, parsed here as the transport parses one */

static void
ngx_http_teleclinic_remote_deliver(ngx_http_teleclinic_remote_t *rm,
    const char *text)
{
    ngx_teleclinic_ws_msg_t  msg;

    if (ngx_teleclinic_ws_msg_parse((u_char *) text, ngx_strlen(text), &msg)
        != NGX_OK
        && msg.type == 0)
    {
        ngx_teleclinic_ws_send_error(&rm->ws, msg.id, msg.code,
                                     msg.message);
        ngx_teleclinic_ws_msg_free(&msg);
        return;
    }

    ngx_http_teleclinic_relay_handler->message(&rm->ws, &msg);

    ngx_teleclinic_ws_msg_free(&msg);
}


static void
ngx_http_teleclinic_remote_send(ngx_teleclinic_ws_t *ws, u_char *text,
    size_t len)
{
    ngx_http_teleclinic_remote_t *rm = (ngx_http_teleclinic_remote_t *)
        ((u_char *) ws - offsetof(ngx_http_teleclinic_remote_t, ws));

    json_t  *o;

    o = json_pack("{s:s, s:I, s:s%}", "op", "text",
                  "id", (json_int_t) rm->id, "text", text, len);

    if (ngx_http_teleclinic_relay_publish(&rm->from, o) != NGX_OK) {
        ngx_http_teleclinic_remote_close(ws, NGX_HTTP_TELECLINIC_WS_AWAY,
                                       "the client is out of reach");
    }
}


/* the room ends the client's connection: its node closes the socket */

static void
ngx_http_teleclinic_remote_close(ngx_teleclinic_ws_t *ws, uint16_t code,
    const char *reason)
{
    ngx_http_teleclinic_remote_t *rm = (ngx_http_teleclinic_remote_t *)
        ((u_char *) ws - offsetof(ngx_http_teleclinic_remote_t, ws));

    json_t  *o;

    ws->done = 1;

    o = json_pack("{s:s, s:I, s:i, s:s}", "op", "close",
                  "id", (json_int_t) rm->id, "code", (int) code,
                  "reason", reason ? reason : "");

    (void) ngx_http_teleclinic_relay_publish(&rm->from, o);

    /* the session may be in the middle of its work on it */
    if (!rm->free.posted) {
        ngx_post_event(&rm->free, &ngx_posted_events);
    }
}


static void
ngx_http_teleclinic_remote_free(ngx_event_t *ev)
{
    ngx_http_teleclinic_remote_end(ev->data);
}


/* its session's close, once, then the memory */

static void
ngx_http_teleclinic_remote_end(ngx_http_teleclinic_remote_t *rm)
{
    if (rm->free.posted) {
        ngx_delete_posted_event(&rm->free);
    }

    ngx_rbtree_delete(&ngx_http_teleclinic_remotes, &rm->node);

    ngx_http_teleclinic_relay_handler->close(&rm->ws);

    ngx_destroy_pool(rm->pool);
}


static ngx_http_teleclinic_remote_t *
ngx_http_teleclinic_remote_find(ngx_str_t *from, uint64_t id)
{
    ngx_rbtree_key_t               key;
    ngx_rbtree_node_t             *node, *sentinel;
    ngx_http_teleclinic_remote_t  *rm;

    key = ngx_http_teleclinic_remote_key(from, id);

    node = ngx_http_teleclinic_remotes.root;
    sentinel = ngx_http_teleclinic_remotes.sentinel;

    while (node != sentinel) {
        if (key != node->key) {
            node = (key < node->key) ? node->left : node->right;
            continue;
        }

        rm = (ngx_http_teleclinic_remote_t *) node;

        if (rm->id == id && rm->from.len == from->len
            && ngx_memcmp(rm->from.data, from->data, from->len) == 0)
        {
            return rm;
        }

        /* equal keys go right on insertion */
        node = node->right;
    }

    return NULL;
}


static ngx_rbtree_key_t
ngx_http_teleclinic_remote_key(ngx_str_t *from, uint64_t id)
{
    return (ngx_rbtree_key_t) (ngx_crc32_long(from->data, from->len)
                               ^ (id * 0x9e3779b97f4a7c15ULL));
}


/*
 * The nodes alive changed: a client whose room's node is gone or is no
 * longer its home connects again (1012, as on a restart) and finds the
 * room where it is now; a room's client whose node is gone leaves it,
 * as a dropped connection does.
 */

static void
ngx_http_teleclinic_relay_check(ngx_event_t *ev)
{
    ngx_str_t                      doctor;
    ngx_uint_t                     version;
    ngx_rbtree_node_t             *node, *next, *root, *sentinel;
    ngx_teleclinic_node_t          home;
    ngx_http_teleclinic_relay_t   *relay;
    ngx_http_teleclinic_remote_t  *rm;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(ev, NGX_HTTP_TELECLINIC_RELAY_CHECK);

    version = ngx_teleclinic_mirror_nodes_version();

    if (version == ngx_http_teleclinic_relay_version) {
        return;
    }

    ngx_http_teleclinic_relay_version = version;

    sentinel = ngx_http_teleclinic_relays.sentinel;
    root = ngx_http_teleclinic_relays.root;

    for (node = (root == sentinel) ? NULL : ngx_rbtree_min(root, sentinel);
         node;
         node = next)
    {
        next = ngx_rbtree_next(&ngx_http_teleclinic_relays, node);
        relay = (ngx_http_teleclinic_relay_t *) node;

        doctor.data = relay->doctor;
        doctor.len = relay->doctor_len;

        if (ngx_teleclinic_mirror_home(&doctor, &home, &version) == NGX_OK
            || home.len != relay->home.len
            || ngx_memcmp(home.name, relay->home.name, home.len) != 0)
        {
            ngx_teleclinic_ws_close(relay->ws, NGX_HTTP_TELECLINIC_WS_MOVED,
                                    "the room moved");
        }
    }

    sentinel = ngx_http_teleclinic_remotes.sentinel;
    root = ngx_http_teleclinic_remotes.root;

    for (node = (root == sentinel) ? NULL : ngx_rbtree_min(root, sentinel);
         node;
         node = next)
    {
        next = ngx_rbtree_next(&ngx_http_teleclinic_remotes, node);
        rm = (ngx_http_teleclinic_remote_t *) node;

        if (!rm->ws.done
            && !ngx_teleclinic_mirror_alive_node(rm->origin.name,
                                                 rm->origin.len))
        {
            rm->ws.done = 1;
            ngx_http_teleclinic_remote_end(rm);
        }
    }
}


/* a subscription or the publishing connection was lost */

static void
ngx_http_teleclinic_relay_end_all(void)
{
    ngx_rbtree_node_t             *node, *next, *root, *sentinel;
    ngx_http_teleclinic_relay_t   *relay;
    ngx_http_teleclinic_remote_t  *rm;

    sentinel = ngx_http_teleclinic_relays.sentinel;
    root = ngx_http_teleclinic_relays.root;

    for (node = (root == sentinel) ? NULL : ngx_rbtree_min(root, sentinel);
         node;
         node = next)
    {
        next = ngx_rbtree_next(&ngx_http_teleclinic_relays, node);
        relay = (ngx_http_teleclinic_relay_t *) node;

        ngx_teleclinic_ws_close(relay->ws, NGX_HTTP_TELECLINIC_WS_AWAY,
                                "the room is out of reach");
    }

    sentinel = ngx_http_teleclinic_remotes.sentinel;

    while (ngx_http_teleclinic_remotes.root != sentinel) {
        rm = (ngx_http_teleclinic_remote_t *)
             ngx_rbtree_min(ngx_http_teleclinic_remotes.root, sentinel);
        rm->ws.done = 1;
        ngx_http_teleclinic_remote_end(rm);
    }
}
