
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <jansson.h>
#include "ngx_http_teleclinic_util.h"
#include "ngx_teleclinic_token.h"
#include "ngx_http_teleclinic_doctor.h"
#include "ngx_teleclinic_kdf.h"


/*
 * The lockout: so many attempts of one doctor id, failed or with their
 * KDF still to come, within the window
 */
#define NGX_TELECLINIC_LOGIN_FAILURES  5
#define NGX_TELECLINIC_LOGIN_WINDOW    300
#define NGX_TELECLINIC_LOGIN_LOCK      300

#define NGX_TELECLINIC_PASSWORD_MAX    1024

/* how an attempt counted in the lockout ends */
#define NGX_TELECLINIC_LOGIN_UNUSED    0    /* refused before its KDF */
#define NGX_TELECLINIC_LOGIN_DROPPED   1    /* its client went away first */
#define NGX_TELECLINIC_LOGIN_CHECKED   2    /* its KDF ran */


typedef struct {
    ngx_teleclinic_kdf_task_t     task;
    ngx_http_request_t           *request;
    ngx_str_t                     doctor;
    ngx_str_t                     password;
    ngx_teleclinic_password_t     pw;
    ngx_uint_t                    known;     /* the hash is the doctor's */
    ngx_uint_t                    counted;   /* in the doctor's lockout */
    ngx_uint_t                    ok;
} ngx_http_teleclinic_login_ctx_t;


static void ngx_http_teleclinic_kdf(ngx_teleclinic_kdf_task_t *task);
#if (NGX_THREADS)
static void ngx_http_teleclinic_login_done(ngx_teleclinic_kdf_task_t *task);
static void ngx_http_teleclinic_login_cleanup(void *data);
#endif
static ngx_int_t ngx_http_teleclinic_login_answer(ngx_http_request_t *r,
    ngx_str_t *doctor);
static ngx_int_t ngx_http_teleclinic_bad_credentials(ngx_http_request_t *r);
static ngx_int_t ngx_http_teleclinic_login_refused(ngx_http_request_t *r,
    ngx_int_t rc);
static ngx_int_t ngx_http_teleclinic_login_begin(ngx_http_request_t *r,
    ngx_http_teleclinic_login_ctx_t *lctx);
static void ngx_http_teleclinic_login_end(ngx_http_request_t *r,
    ngx_http_teleclinic_login_ctx_t *lctx, ngx_uint_t how);
static ngx_teleclinic_login_t *ngx_http_teleclinic_login_find(
    ngx_teleclinic_zone_t *zone, ngx_str_t *doctor, time_t now,
    ngx_uint_t create);
static ngx_uint_t ngx_http_teleclinic_login_idle(ngx_teleclinic_login_t *e,
    time_t now);
static void ngx_http_teleclinic_login_free(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_login_t *e);
static void ngx_http_teleclinic_login_expire(ngx_teleclinic_zone_t *zone,
    time_t now, ngx_uint_t n);


/*
 * Verified for a doctor id that is not in the directory (or has no
 * password), so that such a login takes as long as a wrong password.
 */
static ngx_str_t  ngx_http_teleclinic_dummy_hash = ngx_string(
    "scrypt$16384$8$1$iAuoYimbj4Pb2xG7op8OQA==$"
    "e16G5bXB4w8ntS+MCKsEmNtYpR6pY/XL6GzvM0e/ogM=");


/*
 * POST /api/v1/doctor/login {"doctor": ID, "password": "..."}: the KDF
 * runs on the worker's KDF thread, and the answer goes out from its
 * completion.
 */

ngx_int_t
ngx_http_teleclinic_doctor_login(ngx_http_request_t *r, ngx_str_t *body)
{
    json_t                           *root, *v;
    ngx_int_t                         rc;
    ngx_str_t                         id;
    ngx_teleclinic_error_t            err;
    ngx_teleclinic_doctor_t          *doctor;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_teleclinic_directory_t       *dir;
    ngx_http_teleclinic_loc_conf_t   *tlcf;
    ngx_http_teleclinic_main_conf_t  *tmcf;
    ngx_http_teleclinic_login_ctx_t  *lctx;
#if (NGX_THREADS)
    ngx_http_cleanup_t               *cln;
#endif

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_teleclinic_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ngx_str_set(&ctx->action, "doctor_login");

    dir = ngx_http_teleclinic_directory(tmcf, r->connection->log);

    /* the hospital's single sign-on in front has named the doctor */

    if (tlcf->doctor_identity) {
        if (ngx_http_complex_value(r, tlcf->doctor_identity, &id) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (id.len) {
            doctor = dir ? ngx_teleclinic_doctor_find(dir, &id) : NULL;

            if (doctor == NULL) {
                return ngx_http_teleclinic_bad_credentials(r);
            }

            return ngx_http_teleclinic_login_answer(r, &doctor->id);
        }
    }

    if (ngx_teleclinic_request_json(body->data, body->len, &root, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_error(r, err.status, err.code,
                                         err.message, err.field);
    }

    lctx = ngx_pcalloc(r->pool, sizeof(ngx_http_teleclinic_login_ctx_t));
    if (lctx == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto failed;
    }

    v = json_object_get(root, "doctor");

    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > NGX_TELECLINIC_ID_MAX)
    {
        rc = ngx_http_teleclinic_error(r, 422, v ? "invalid_field"
                                                 : "missing_field",
                                       "\"doctor\" must be a doctor's id",
                                       "doctor");
        goto failed;
    }

    lctx->doctor.len = json_string_length(v);
    lctx->doctor.data = ngx_pnalloc(r->pool, lctx->doctor.len);
    if (lctx->doctor.data == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto failed;
    }

    ngx_memcpy(lctx->doctor.data, json_string_value(v), lctx->doctor.len);

    v = json_object_get(root, "password");

    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > NGX_TELECLINIC_PASSWORD_MAX)
    {
        rc = ngx_http_teleclinic_error(r, 422, v ? "invalid_field"
                                                 : "missing_field",
                                       "\"password\" must be a non-empty "
                                       "string", "password");
        goto failed;
    }

    lctx->password.len = json_string_length(v);
    lctx->password.data = ngx_pnalloc(r->pool, lctx->password.len);
    if (lctx->password.data == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto failed;
    }

    ngx_memcpy(lctx->password.data, json_string_value(v),
               lctx->password.len);

    json_decref(root);

    lctx->request = r;

    /*
     * Only ids in the directory are counted, so that made-up ones cannot
     * crowd out a doctor's count; that they are never locked out tells
     * nothing, as doctor ids are public (GET /api/v1/doctors).  An
     * unknown doctor costs the same KDF as a known one.
     */

    doctor = dir ? ngx_teleclinic_doctor_find(dir, &lctx->doctor) : NULL;

    if (doctor) {
        lctx->counted = 1;
    }

    if (doctor && doctor->password.len
        && ngx_teleclinic_password_parse(&doctor->password, &lctx->pw)
           == NGX_OK)
    {
        lctx->known = 1;

    } else {
        (void) ngx_teleclinic_password_parse(&ngx_http_teleclinic_dummy_hash,
                                             &lctx->pw);
    }

    lctx->task.run = ngx_http_teleclinic_kdf;
    lctx->task.data = lctx;

    rc = ngx_http_teleclinic_login_begin(r, lctx);

    if (rc != NGX_OK) {
        ngx_explicit_memzero(lctx->password.data, lctx->password.len);
        return ngx_http_teleclinic_login_refused(r, rc);
    }

#if (NGX_THREADS)

    /* made before the task is queued, so that nothing fails after it */
    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        ngx_http_teleclinic_login_end(r, lctx, NGX_TELECLINIC_LOGIN_UNUSED);
        ngx_explicit_memzero(lctx->password.data, lctx->password.len);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    lctx->task.done = ngx_http_teleclinic_login_done;

    rc = ngx_teleclinic_kdf_post(&lctx->task, tmcf->login_queue,
                                 r->connection->log);

    if (rc != NGX_OK) {
        ngx_http_teleclinic_login_end(r, lctx, NGX_TELECLINIC_LOGIN_UNUSED);
        ngx_explicit_memzero(lctx->password.data, lctx->password.len);

        return (rc == NGX_BUSY)
               ? ngx_http_teleclinic_login_refused(r, NGX_AGAIN)
               : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_teleclinic_login_cleanup;
    cln->data = lctx;

    /*
     * The count keeps the request (and its pool, which holds the task)
     * until the completion finalizes it; "blocked" keeps a termination
     * (a timeout, the client gone) from freeing it under a running
     * task.  The cleanup drops a task that has not started yet.
     */
    r->main->count++;
    r->main->blocked++;

    /*
     * Notice a client that goes away meanwhile; the event is posted once
     * for a close that came in with the request itself.
     */
    r->read_event_handler = ngx_http_test_reading;
    ngx_post_event(r->connection->read, &ngx_posted_events);

    return NGX_DONE;

#else

    /* without threads the worker waits for the KDF */
    ngx_http_teleclinic_kdf(&lctx->task);
    ngx_http_teleclinic_login_end(r, lctx, NGX_TELECLINIC_LOGIN_CHECKED);

    return lctx->ok ? ngx_http_teleclinic_login_answer(r, &lctx->doctor)
                    : ngx_http_teleclinic_bad_credentials(r);
#endif

failed:

    json_decref(root);

    return rc;
}


/* on the KDF thread: only the context, never the request */

static void
ngx_http_teleclinic_kdf(ngx_teleclinic_kdf_task_t *task)
{
    ngx_http_teleclinic_login_ctx_t  *lctx = task->data;

    u_char                      md[NGX_TELECLINIC_KDF_LEN];
    uint64_t                    maxmem;
    ngx_teleclinic_password_t  *pw;

    pw = &lctx->pw;

    maxmem = 128 * pw->r * (pw->n + pw->p + 2) + 65536;

    lctx->ok = EVP_PBE_scrypt((const char *) lctx->password.data,
                              lctx->password.len, pw->salt, pw->salt_len,
                              pw->n, pw->r, pw->p, maxmem,
                              md, NGX_TELECLINIC_KDF_LEN) == 1
               && CRYPTO_memcmp(md, pw->hash, NGX_TELECLINIC_KDF_LEN) == 0
               && lctx->known;

    ngx_explicit_memzero(lctx->password.data, lctx->password.len);
    ngx_explicit_memzero(md, sizeof(md));
}


#if (NGX_THREADS)

static void
ngx_http_teleclinic_login_done(ngx_teleclinic_kdf_task_t *task)
{
    ngx_http_teleclinic_login_ctx_t  *lctx = task->data;

    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = lctx->request;
    c = r->connection;

    r->main->blocked--;

    ngx_http_teleclinic_login_end(r, lctx, NGX_TELECLINIC_LOGIN_CHECKED);

    if (c->error) {
        /* the client went away while its KDF ran */
        rc = NGX_ERROR;

    } else if (lctx->ok) {
        rc = ngx_http_teleclinic_login_answer(r, &lctx->doctor);

    } else {
        rc = ngx_http_teleclinic_bad_credentials(r);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * When the request ends before the completion (the client went away):
 * a task still queued is taken out, and its KDF never runs.
 */

static void
ngx_http_teleclinic_login_cleanup(void *data)
{
    ngx_http_teleclinic_login_ctx_t  *lctx = data;

    ngx_http_request_t  *r;

    if (ngx_teleclinic_kdf_cancel(&lctx->task) != NGX_OK) {
        return;
    }

    r = lctx->request;

    ngx_explicit_memzero(lctx->password.data, lctx->password.len);
    ngx_http_teleclinic_login_end(r, lctx, NGX_TELECLINIC_LOGIN_DROPPED);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "teleclinic: login dropped before its KDF");

    r->main->blocked--;
}

#endif


/*
 * {"password": true, "sso": true|false}: whether the hospital's single
 * sign-on in front has named a doctor for this request, so that the
 * console signs in with an empty POST instead of showing the password
 * form (and a probing POST does not fail on every visit without SSO)
 */

ngx_int_t
ngx_http_teleclinic_doctor_login_ways(ngx_http_request_t *r)
{
    ngx_str_t                        id;
    ngx_uint_t                       sso;
    ngx_http_teleclinic_ctx_t       *ctx;
    ngx_http_teleclinic_loc_conf_t  *tlcf;

    static u_char  with[] = "{\"password\":true,\"sso\":true}\n";
    static u_char  without[] = "{\"password\":true,\"sso\":false}\n";

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_teleclinic_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ngx_str_set(&ctx->action, "doctor_login");

    sso = 0;

    if (tlcf->doctor_identity) {
        if (ngx_http_complex_value(r, tlcf->doctor_identity, &id) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        sso = (id.len != 0);
    }

    return sso ? ngx_http_teleclinic_send_text(r, NGX_HTTP_OK, with,
                                               sizeof(with) - 1)
               : ngx_http_teleclinic_send_text(r, NGX_HTTP_OK, without,
                                               sizeof(without) - 1);
}


/* {"token", "doctor", "expires"}: a doctor's token for the console */

static ngx_int_t
ngx_http_teleclinic_login_answer(ngx_http_request_t *r, ngx_str_t *doctor)
{
    u_char                           *p, *text;
    time_t                            expires;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ngx_str_set(&ctx->actor, "doctor");

    text = ngx_pnalloc(r->pool, sizeof("{\"token\":\"\",\"doctor\":\"\","
                                       "\"expires\":\"\"}\n")
                                + NGX_TELECLINIC_TOKEN_MAX
                                + NGX_TELECLINIC_ID_MAX
                                + NGX_TELECLINIC_TIME_LEN);
    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    expires = ngx_time() + tmcf->doctor_session;

    /* ids are a-z 0-9 - and tokens base64url: nothing to escape */

    p = ngx_cpymem(text, "{\"token\":\"", sizeof("{\"token\":\"") - 1);

    p = ngx_teleclinic_token_issue(&tmcf->token_secret,
                                   NGX_TELECLINIC_TOKEN_DOCTOR, doctor,
                                   expires, p);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(p, "\",\"doctor\":\"%V\",\"expires\":\"", doctor);
    p = ngx_teleclinic_time_print(p, expires);
    p = ngx_cpymem(p, "\"}\n", 3);

    return ngx_http_teleclinic_send_text(r, NGX_HTTP_OK, text, p - text);
}


static ngx_int_t
ngx_http_teleclinic_bad_credentials(ngx_http_request_t *r)
{
    return ngx_http_teleclinic_error(r, NGX_HTTP_UNAUTHORIZED,
                                     "bad_credentials",
                                     "unknown doctor or wrong password",
                                     NULL);
}


/*
 * NGX_BUSY: the lockout, too_many_attempts; NGX_AGAIN: the worker's KDF
 * queue is full, busy, to be tried again in a second; NGX_DECLINED: the
 * zone is full.  None of them has run a KDF.
 */

static ngx_int_t
ngx_http_teleclinic_login_refused(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_table_elt_t                  *h;
    ngx_teleclinic_zone_t            *zone;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);

    if (rc == NGX_DECLINED) {
        return ngx_http_teleclinic_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "zone_full",
                                         "the service is out of memory for "
                                         "new records", NULL);
    }

    if (rc == NGX_BUSY) {
        (void) ngx_atomic_fetch_add(&zone->sh->logins.locked, 1);

        return ngx_http_teleclinic_error(r, NGX_HTTP_TOO_MANY_REQUESTS,
                                         "too_many_attempts",
                                         "too many failed logins; try "
                                         "again later", NULL);
    }

    (void) ngx_atomic_fetch_add(&zone->sh->logins.busy, 1);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    ngx_str_set(&h->value, "1");

    return ngx_http_teleclinic_error(r, NGX_HTTP_TOO_MANY_REQUESTS, "busy",
                                     "too many logins are being checked; "
                                     "try again in a moment", NULL);
}


/*
 * The lockout is in the shared zone, so that all workers count the
 * attempts of one doctor id together.  An attempt counts from before its
 * KDF is queued: so many at once cannot all be checked before the first
 * failure is known.  NGX_OK: go on (or an id not counted); NGX_BUSY: the
 * id is locked out; NGX_DECLINED: the zone is full.
 */

static ngx_int_t
ngx_http_teleclinic_login_begin(ngx_http_request_t *r,
    ngx_http_teleclinic_login_ctx_t *lctx)
{
    time_t                            now;
    ngx_int_t                         rc;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_login_t           *e;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    if (!lctx->counted) {
        return NGX_OK;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);
    now = ngx_time();

    ngx_teleclinic_zone_lock(zone);

    e = ngx_http_teleclinic_login_find(zone, &lctx->doctor, now, 1);

    if (e == NULL) {
        rc = NGX_DECLINED;

    } else if (e->locked
               || e->failures + e->inflight >= NGX_TELECLINIC_LOGIN_FAILURES)
    {
        rc = NGX_BUSY;

    } else {
        e->inflight++;
        e->started = now;
        rc = NGX_OK;
    }

    ngx_teleclinic_zone_unlock(zone);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "teleclinic zone \"%V\" is full",
                      &zone->shm_zone->shm.name);
    }

    if (rc != NGX_OK) {
        lctx->counted = 0;
    }

    return rc;
}


static void
ngx_http_teleclinic_login_end(ngx_http_request_t *r,
    ngx_http_teleclinic_login_ctx_t *lctx, ngx_uint_t how)
{
    time_t                            now;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_login_t           *e;
    ngx_teleclinic_logins_t          *logins;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);
    logins = &zone->sh->logins;
    now = ngx_time();

    if (how == NGX_TELECLINIC_LOGIN_CHECKED) {
        (void) ngx_atomic_fetch_add(&logins->checks, 1);

    } else if (how == NGX_TELECLINIC_LOGIN_DROPPED) {
        (void) ngx_atomic_fetch_add(&logins->dropped, 1);
    }

    if (!lctx->counted) {
        return;
    }

    lctx->counted = 0;

    ngx_teleclinic_zone_lock(zone);

    e = ngx_http_teleclinic_login_find(zone, &lctx->doctor, now, 0);

    if (e == NULL) {
        ngx_teleclinic_zone_unlock(zone);
        return;
    }

    if (e->inflight) {
        e->inflight--;
    }

    if (how == NGX_TELECLINIC_LOGIN_CHECKED && lctx->ok) {
        /* attempts still in flight go on counting */
        e->failures = 0;
        e->locked = 0;
        e->since = now;

    } else if (how == NGX_TELECLINIC_LOGIN_CHECKED
               && ++e->failures >= NGX_TELECLINIC_LOGIN_FAILURES
               && e->locked == 0)
    {
        e->locked = now + NGX_TELECLINIC_LOGIN_LOCK;

        /* a directory id: never a client's made-up string */
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "teleclinic: doctor \"%V\" locked out after "
                      "%ui failed logins", &lctx->doctor, e->failures);
    }

    if (ngx_http_teleclinic_login_idle(e, now)) {
        ngx_http_teleclinic_login_free(zone, e);
    }

    ngx_teleclinic_zone_unlock(zone);
}


/*
 * With the zone locked.  A window or a lock that is over starts the count
 * again; attempts in flight stay counted, unless the last of them was
 * queued a whole window ago: their worker died before it could tell.  A
 * new node first expires a few idle ones, and all of them when the zone
 * is full.
 */

static ngx_teleclinic_login_t *
ngx_http_teleclinic_login_find(ngx_teleclinic_zone_t *zone, ngx_str_t *doctor,
    time_t now, ngx_uint_t create)
{
    size_t                    size;
    uint32_t                  hash;
    ngx_str_node_t           *sn;
    ngx_teleclinic_login_t   *e;
    ngx_teleclinic_logins_t  *logins;

    logins = &zone->sh->logins;
    hash = ngx_crc32_short(doctor->data, doctor->len);

    sn = ngx_str_rbtree_lookup(&logins->tree, doctor, hash);

    if (sn) {
        e = (ngx_teleclinic_login_t *) sn;

        if (e->inflight && now - e->started >= NGX_TELECLINIC_LOGIN_WINDOW) {
            e->inflight = 0;
        }

        if (e->locked ? e->locked <= now
                      : now - e->since >= NGX_TELECLINIC_LOGIN_WINDOW)
        {
            e->failures = 0;
            e->locked = 0;
            e->since = now;
        }

        ngx_queue_remove(&e->queue);
        ngx_queue_insert_head(&logins->lru, &e->queue);

        return e;
    }

    if (!create) {
        return NULL;
    }

    ngx_http_teleclinic_login_expire(zone, now, 2);

    size = offsetof(ngx_teleclinic_login_t, id) + doctor->len;

    e = ngx_slab_alloc_locked(zone->shpool, size);

    if (e == NULL) {
        ngx_http_teleclinic_login_expire(zone, now, 0);

        e = ngx_slab_alloc_locked(zone->shpool, size);
        if (e == NULL) {
            return NULL;
        }
    }

    ngx_memcpy(e->id, doctor->data, doctor->len);

    e->sn.node.key = hash;
    e->sn.str.len = doctor->len;
    e->sn.str.data = e->id;
    e->failures = 0;
    e->inflight = 0;
    e->started = now;
    e->since = now;
    e->locked = 0;

    ngx_rbtree_insert(&logins->tree, &e->sn.node);
    ngx_queue_insert_head(&logins->lru, &e->queue);

    return e;
}


/* nothing in flight, and nothing counted that still matters */

static ngx_uint_t
ngx_http_teleclinic_login_idle(ngx_teleclinic_login_t *e, time_t now)
{
    if (e->inflight && now - e->started < NGX_TELECLINIC_LOGIN_WINDOW) {
        return 0;
    }

    if (e->locked) {
        return e->locked <= now;
    }

    return e->failures == 0 || now - e->since >= NGX_TELECLINIC_LOGIN_WINDOW;
}


static void
ngx_http_teleclinic_login_free(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_login_t *e)
{
    ngx_queue_remove(&e->queue);
    ngx_rbtree_delete(&zone->sh->logins.tree, &e->sn.node);
    ngx_slab_free_locked(zone->shpool, e);
}


/*
 * Idle nodes from the least recently used end: up to n of the first 8 * n
 * looked at, or with n 0 all of them.
 */

static void
ngx_http_teleclinic_login_expire(ngx_teleclinic_zone_t *zone, time_t now,
    ngx_uint_t n)
{
    ngx_uint_t               freed, seen;
    ngx_queue_t             *q, *prev, *lru;
    ngx_teleclinic_login_t  *e;

    lru = &zone->sh->logins.lru;
    freed = 0;
    seen = 0;

    for (q = ngx_queue_last(lru);
         q != ngx_queue_sentinel(lru) && (n == 0 || seen++ < 8 * n);
         q = prev)
    {
        prev = ngx_queue_prev(q);
        e = ngx_queue_data(q, ngx_teleclinic_login_t, queue);

        if (!ngx_http_teleclinic_login_idle(e, now)) {
            continue;
        }

        ngx_http_teleclinic_login_free(zone, e);

        if (++freed == n) {
            return;
        }
    }
}
