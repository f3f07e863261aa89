
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <openssl/rand.h>
#include "ngx_teleclinic_stun.h"
#include "ngx_teleclinic_turn.h"


#define NGX_TELECLINIC_TURN_ZONE_SIZE        (1024 * 1024)

/*
 * EVEN-PORT with R: the port itself is left unbound (RFC 8656 14.9 lets
 * it be taken by chance); the token keeps it for 30 s
 */
#define NGX_TELECLINIC_TURN_RESERVATIONS     64
#define NGX_TELECLINIC_TURN_TOKEN_LIFETIME   30


typedef struct {
    u_char                          token[NGX_TELECLINIC_TURN_TOKEN_LEN];
    ngx_uint_t                      port;
    time_t                          expires;
} ngx_teleclinic_turn_reservation_t;


typedef struct {
    ngx_rbtree_t                    rbtree;
    ngx_rbtree_node_t               sentinel;
    ngx_teleclinic_turn_reservation_t  reservations[
                                        NGX_TELECLINIC_TURN_RESERVATIONS];
    ngx_atomic_t                    allocations;
    ngx_atomic_t                    counters[NGX_TELECLINIC_TURN_NCOUNTERS];

    /* the pid of the newest worker of each number, ready for handoffs */
    ngx_atomic_t                    workers[NGX_TELECLINIC_TURN_WORKERS];

    /* configurations so far: a worker told to quit sees a reload by it */
    ngx_atomic_t                    generation;
} ngx_teleclinic_turn_shctx_t;


/* a username's allocations; it starts at the rbtree node's color */
typedef struct {
    u_char                          color;
    u_char                          pad;
    u_short                         len;
    ngx_uint_t                      count;
    u_char                          data[1];
} ngx_teleclinic_turn_user_t;


static ngx_int_t ngx_teleclinic_turn_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_shm_zone_t *ngx_teleclinic_turn_zone(ngx_cycle_t *cycle);
static ngx_teleclinic_turn_user_t *ngx_teleclinic_turn_user_lookup(
    ngx_teleclinic_turn_shctx_t *sh, ngx_str_t *name, uint32_t hash,
    ngx_rbtree_node_t **found);
static void ngx_teleclinic_turn_user_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


static ngx_str_t  ngx_teleclinic_turn_zone_name =
    ngx_string("teleclinic_turn");

/* tells the zone from others: its address is the zone's tag */
static ngx_uint_t  ngx_teleclinic_turn_zone_tag;

static ngx_str_t  ngx_teleclinic_turn_reasons[] = {
    ngx_string("unauthenticated"),
    ngx_string("auth"),
    ngx_string("stale_nonce"),
    ngx_string("bad_request"),
    ngx_string("unknown_attribute"),
    ngx_string("allocation_mismatch"),
    ngx_string("wrong_credentials"),
    ngx_string("unsupported"),
    ngx_string("peer_denied"),
    ngx_string("quota"),
    ngx_string("capacity"),
    ngx_string("bandwidth"),
    ngx_string("no_permission"),
    ngx_string("too_large"),
    ngx_string("congestion")
};


ngx_atomic_uint_t                    ngx_teleclinic_turn_local[
                                         NGX_TELECLINIC_TURN_NCOUNTERS];

static ngx_teleclinic_turn_shctx_t  *ngx_teleclinic_turn_sh;
static ngx_shm_zone_t               *ngx_teleclinic_turn_shm;

/* the zone's generation when this worker started */
static ngx_atomic_uint_t             ngx_teleclinic_turn_generation;


/* zone and counters */

ngx_shm_zone_t *
ngx_teleclinic_turn_add_zone(ngx_conf_t *cf)
{
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, &ngx_teleclinic_turn_zone_name,
                                     NGX_TELECLINIC_TURN_ZONE_SIZE,
                                     &ngx_teleclinic_turn_zone_tag);
    if (shm_zone == NULL) {
        return NULL;
    }

    shm_zone->init = ngx_teleclinic_turn_init_zone;

    return shm_zone;
}


static ngx_int_t
ngx_teleclinic_turn_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t              *shpool;
    ngx_teleclinic_turn_shctx_t  *sh;

    /* a reload keeps the counts: the old workers' allocations go on */

    if (data) {
        shm_zone->data = data;
        ((ngx_teleclinic_turn_shctx_t *) data)->generation++;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    sh = ngx_slab_calloc(shpool, sizeof(ngx_teleclinic_turn_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel,
                    ngx_teleclinic_turn_user_insert);

    shpool->data = sh;
    shm_zone->data = sh;

    shpool->log_ctx = (u_char *) " in teleclinic_turn zone";
    shpool->log_nomem = 0;

    return NGX_OK;
}


static ngx_shm_zone_t *
ngx_teleclinic_turn_zone(ngx_cycle_t *cycle)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_shm_zone_t   *zone;

    part = &cycle->shared_memory.part;
    zone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            zone = part->elts;
            i = 0;
        }

        if (zone[i].tag == &ngx_teleclinic_turn_zone_tag) {
            return &zone[i];
        }
    }
}


ngx_int_t
ngx_teleclinic_turn_init_worker(ngx_cycle_t *cycle)
{
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_teleclinic_turn_zone(cycle);

    if (shm_zone == NULL) {
        return NGX_DECLINED;
    }

    ngx_teleclinic_turn_shm = shm_zone;
    ngx_teleclinic_turn_sh = shm_zone->data;
    ngx_teleclinic_turn_generation = ngx_teleclinic_turn_sh->generation;

    return NGX_OK;
}


ngx_shm_zone_t *
ngx_teleclinic_turn_worker_zone(void)
{
    return ngx_teleclinic_turn_shm;
}


void
ngx_teleclinic_turn_flush(void)
{
    ngx_uint_t  i;

    if (ngx_teleclinic_turn_sh == NULL) {
        return;
    }

    for (i = 0; i < NGX_TELECLINIC_TURN_NCOUNTERS; i++) {
        if (ngx_teleclinic_turn_local[i]) {
            (void) ngx_atomic_fetch_add(&ngx_teleclinic_turn_sh->counters[i],
                                        ngx_teleclinic_turn_local[i]);
            ngx_teleclinic_turn_local[i] = 0;
        }
    }
}


void
ngx_teleclinic_turn_count_refusal(ngx_uint_t code)
{
    if (code == NGX_TELECLINIC_STUN_ERR_UNKNOWN_ATTRIBUTE) {
        ngx_teleclinic_turn_refuse(NGX_TELECLINIC_TURN_R_UNKNOWN_ATTRIBUTE);

    } else {
        ngx_teleclinic_turn_refuse(NGX_TELECLINIC_TURN_R_BAD_REQUEST);
    }
}


u_char *
ngx_teleclinic_turn_metrics(ngx_cycle_t *cycle, u_char *p, u_char *last)
{
    ngx_uint_t                    i;
    ngx_shm_zone_t               *shm_zone;
    ngx_atomic_uint_t            *c;
    ngx_teleclinic_turn_shctx_t  *sh;

    shm_zone = ngx_teleclinic_turn_zone(cycle);

    if (shm_zone == NULL) {
        return p;
    }

    sh = shm_zone->data;

    /* what this worker counted since its last flush is shown too */
    ngx_teleclinic_turn_flush();

    c = (ngx_atomic_uint_t *) sh->counters;

    p = ngx_slprintf(p, last,
        "# HELP teleclinic_turn_allocations TURN allocations now.\n"
        "# TYPE teleclinic_turn_allocations gauge\n"
        "teleclinic_turn_allocations %uA\n"
        "# HELP teleclinic_turn_allocations_total TURN allocations made.\n"
        "# TYPE teleclinic_turn_allocations_total counter\n"
        "teleclinic_turn_allocations_total %uA\n"
        "# HELP teleclinic_turn_relayed_packets_total Datagrams relayed.\n"
        "# TYPE teleclinic_turn_relayed_packets_total counter\n"
        "teleclinic_turn_relayed_packets_total{direction=\"to_peer\"} %uA\n"
        "teleclinic_turn_relayed_packets_total{direction=\"to_client\"} %uA\n"
        "# HELP teleclinic_turn_relayed_bytes_total "
        "Application data bytes relayed.\n"
        "# TYPE teleclinic_turn_relayed_bytes_total counter\n"
        "teleclinic_turn_relayed_bytes_total{direction=\"to_peer\"} %uA\n"
        "teleclinic_turn_relayed_bytes_total{direction=\"to_client\"} %uA\n"
        "# HELP teleclinic_turn_refusals_total "
        "Requests refused and datagrams dropped, by reason.\n"
        "# TYPE teleclinic_turn_refusals_total counter\n",
        (ngx_atomic_uint_t) sh->allocations,
        c[NGX_TELECLINIC_TURN_ALLOCATIONS_TOTAL],
        c[NGX_TELECLINIC_TURN_PACKETS_TO_PEER],
        c[NGX_TELECLINIC_TURN_PACKETS_TO_CLIENT],
        c[NGX_TELECLINIC_TURN_BYTES_TO_PEER],
        c[NGX_TELECLINIC_TURN_BYTES_TO_CLIENT]);

    for (i = 0; i < NGX_TELECLINIC_TURN_NREASONS; i++) {
        p = ngx_slprintf(p, last,
                         "teleclinic_turn_refusals_total{reason=\"%V\"} %uA\n",
                         &ngx_teleclinic_turn_reasons[i],
                         c[NGX_TELECLINIC_TURN_REFUSALS + i]);
    }

    return p;
}


/* the reload handoff's registry of workers */

ngx_pid_t
ngx_teleclinic_turn_register(ngx_uint_t worker, ngx_pid_t pid)
{
    ngx_pid_t  prev;

    prev = (ngx_pid_t) ngx_teleclinic_turn_sh->workers[worker];
    ngx_teleclinic_turn_sh->workers[worker] = (ngx_atomic_uint_t) pid;

    return prev;
}


ngx_pid_t
ngx_teleclinic_turn_worker_pid(ngx_uint_t worker)
{
    return (ngx_pid_t) ngx_teleclinic_turn_sh->workers[worker];
}


ngx_uint_t
ngx_teleclinic_turn_reloaded(void)
{
    return ngx_teleclinic_turn_sh->generation
           != ngx_teleclinic_turn_generation;
}


/* reservations */

ngx_int_t
ngx_teleclinic_turn_reserve(ngx_shm_zone_t *shm_zone, u_char *token,
    ngx_uint_t port)
{
    time_t                              now;
    ngx_uint_t                          i;
    ngx_slab_pool_t                    *shpool;
    ngx_teleclinic_turn_shctx_t        *sh;
    ngx_teleclinic_turn_reservation_t  *r;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shm_zone->data;
    now = ngx_time();

    if (RAND_bytes(token, NGX_TELECLINIC_TURN_TOKEN_LEN) != 1) {
        return NGX_ERROR;
    }

    r = NULL;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < NGX_TELECLINIC_TURN_RESERVATIONS; i++) {
        if (sh->reservations[i].expires < now) {
            r = &sh->reservations[i];
            ngx_memcpy(r->token, token, NGX_TELECLINIC_TURN_TOKEN_LEN);
            r->port = port;
            r->expires = now + NGX_TELECLINIC_TURN_TOKEN_LIFETIME;
            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (r == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_uint_t
ngx_teleclinic_turn_reservation(ngx_shm_zone_t *shm_zone, u_char *token)
{
    time_t                              now;
    ngx_uint_t                          i, port;
    ngx_slab_pool_t                    *shpool;
    ngx_teleclinic_turn_shctx_t        *sh;
    ngx_teleclinic_turn_reservation_t  *r;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shm_zone->data;
    now = ngx_time();
    port = 0;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < NGX_TELECLINIC_TURN_RESERVATIONS; i++) {
        r = &sh->reservations[i];

        if (r->expires >= now
            && ngx_memcmp(r->token, token, NGX_TELECLINIC_TURN_TOKEN_LEN)
               == 0)
        {
            port = r->port;
            r->expires = 0;
            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return port;
}


/* quotas */

ngx_uint_t
ngx_teleclinic_turn_quota_take(ngx_shm_zone_t *shm_zone, ngx_str_t *username,
    ngx_uint_t user_quota, ngx_uint_t total_quota, ngx_uint_t *user_counted,
    ngx_log_t *log)
{
    size_t                        n;
    uint32_t                      hash;
    ngx_uint_t                    code;
    ngx_slab_pool_t              *shpool;
    ngx_rbtree_node_t            *node;
    ngx_teleclinic_turn_user_t   *user;
    ngx_teleclinic_turn_shctx_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shm_zone->data;

    code = 0;
    *user_counted = 0;

    ngx_shmtx_lock(&shpool->mutex);

    if (total_quota && sh->allocations >= total_quota) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "turn: teleclinic_turn_total_quota %ui reached",
                      total_quota);
        code = NGX_TELECLINIC_STUN_ERR_INSUFFICIENT_CAPACITY;
        goto done;
    }

    if (user_quota) {
        hash = ngx_crc32_short(username->data, username->len);
        user = ngx_teleclinic_turn_user_lookup(sh, username, hash, &node);

        if (user == NULL) {
            n = offsetof(ngx_rbtree_node_t, color)
                + offsetof(ngx_teleclinic_turn_user_t, data)
                + username->len;

            node = ngx_slab_alloc_locked(shpool, n);

            if (node == NULL) {
                ngx_log_error(NGX_LOG_ERR, log, 0,
                              "turn: the teleclinic_turn zone is full");
                code = NGX_TELECLINIC_STUN_ERR_INSUFFICIENT_CAPACITY;
                goto done;
            }

            user = (ngx_teleclinic_turn_user_t *) &node->color;

            node->key = hash;
            user->len = (u_short) username->len;
            user->count = 0;
            ngx_memcpy(user->data, username->data, username->len);

            ngx_rbtree_insert(&sh->rbtree, node);
        }

        if (user->count >= user_quota) {
            code = NGX_TELECLINIC_STUN_ERR_ALLOCATION_QUOTA;
            goto done;
        }

        user->count++;
        *user_counted = 1;
    }

    sh->allocations++;

done:

    ngx_shmtx_unlock(&shpool->mutex);

    return code;
}


void
ngx_teleclinic_turn_quota_release(ngx_shm_zone_t *shm_zone,
    ngx_str_t *username, ngx_uint_t user_counted)
{
    uint32_t                      hash;
    ngx_slab_pool_t              *shpool;
    ngx_rbtree_node_t            *node;
    ngx_teleclinic_turn_user_t   *user;
    ngx_teleclinic_turn_shctx_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shm_zone->data;

    ngx_shmtx_lock(&shpool->mutex);

    if (user_counted) {
        hash = ngx_crc32_short(username->data, username->len);
        user = ngx_teleclinic_turn_user_lookup(sh, username, hash, &node);

        if (user && --user->count == 0) {
            ngx_rbtree_delete(&sh->rbtree, node);
            ngx_slab_free_locked(shpool, node);
        }

    }

    if (sh->allocations) {
        sh->allocations--;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


static ngx_teleclinic_turn_user_t *
ngx_teleclinic_turn_user_lookup(ngx_teleclinic_turn_shctx_t *sh,
    ngx_str_t *name, uint32_t hash, ngx_rbtree_node_t **found)
{
    ngx_int_t                    rc;
    ngx_rbtree_node_t           *node, *sentinel;
    ngx_teleclinic_turn_user_t  *user;

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        user = (ngx_teleclinic_turn_user_t *) &node->color;

        rc = ngx_memn2cmp(name->data, user->data, name->len,
                          (size_t) user->len);

        if (rc == 0) {
            *found = node;
            return user;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    *found = NULL;

    return NULL;
}


static void
ngx_teleclinic_turn_user_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t          **p;
    ngx_teleclinic_turn_user_t  *u, *ut;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            u = (ngx_teleclinic_turn_user_t *) &node->color;
            ut = (ngx_teleclinic_turn_user_t *) &temp->color;

            p = (ngx_memn2cmp(u->data, ut->data, u->len, ut->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}
