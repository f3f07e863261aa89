
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/crypto.h>
#include <jansson.h>
#include "ngx_http_teleclinic_util.h"


static ngx_int_t ngx_http_teleclinic_dump(ngx_pool_t *pool, json_t *json,
    ngx_str_t *text);
static ngx_int_t ngx_http_teleclinic_unavailable(ngx_http_request_t *r,
    ngx_int_t rc);
static ngx_int_t ngx_http_teleclinic_wait(ngx_http_request_t *r,
    ngx_teleclinic_zone_t *zone, ngx_uint_t status, ngx_str_t *response,
    void (*durable)(void));
static void ngx_http_teleclinic_synced(void *data, ngx_int_t rc);
static void ngx_http_teleclinic_mirrored(void *data, ngx_int_t rc);
static void ngx_http_teleclinic_waiter_cleanup(void *data);
static ngx_int_t ngx_http_teleclinic_plain_host(ngx_str_t *host);


static ngx_str_t  ngx_http_teleclinic_json_type =
    ngx_string("application/json");

static ngx_teleclinic_directory_t  *ngx_http_teleclinic_dir;


ngx_http_teleclinic_ctx_t *
ngx_http_teleclinic_ctx(ngx_http_request_t *r)
{
    ngx_http_teleclinic_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_teleclinic_ctx_t));
        if (ctx == NULL) {
            return NULL;
        }

        ngx_str_set(&ctx->actor, "anonymous");
        ngx_http_set_ctx(r, ctx, ngx_http_teleclinic_module);
    }

    return ctx;
}


ngx_teleclinic_zone_t *
ngx_http_teleclinic_zone(ngx_http_teleclinic_main_conf_t *tmcf)
{
    return tmcf->shm_zone->data;
}


/*
 * Each worker keeps its own parsed copy of the directory and parses the
 * text in the zone again when its version changes.
 */

ngx_teleclinic_directory_t *
ngx_http_teleclinic_directory(ngx_http_teleclinic_main_conf_t *tmcf,
    ngx_log_t *log)
{
    u_char                      *text;
    size_t                       len;
    ngx_uint_t                   version;
    ngx_pool_t                  *pool;
    const char                  *err;
    ngx_teleclinic_zone_t       *zone;
    ngx_teleclinic_directory_t  *dir;

    zone = ngx_http_teleclinic_zone(tmcf);
    dir = ngx_http_teleclinic_dir;

    if (dir && dir->version == zone->sh->directory_version) {
        return dir;
    }

    pool = ngx_create_pool(16384, log);
    if (pool == NULL) {
        return dir;
    }

    ngx_teleclinic_zone_lock(zone);

    version = zone->sh->directory_version;
    len = zone->sh->directory_len;
    text = ngx_pnalloc(pool, len + 1);

    if (text) {
        ngx_memcpy(text, zone->sh->directory, len);
    }

    ngx_teleclinic_zone_unlock(zone);

    dir = ngx_pcalloc(pool, sizeof(ngx_teleclinic_directory_t));

    if (text == NULL || dir == NULL) {
        goto failed;
    }

    dir->pool = pool;
    dir->version = version;

    if (len == 0) {
        text = (u_char *) "{\"departments\": [], \"doctors\": []}";
        len = ngx_strlen(text);
    }

    if (ngx_teleclinic_directory_parse(dir, text, len, &err) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "teleclinic: stored directory is invalid: %s", err);
        goto failed;
    }

    if (ngx_http_teleclinic_dir) {
        ngx_destroy_pool(ngx_http_teleclinic_dir->pool);
    }

    ngx_http_teleclinic_dir = dir;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                   "teleclinic: directory version %ui parsed", version);

    return dir;

failed:

    /* the worker goes on with the copy it had */

    ngx_destroy_pool(pool);

    return ngx_http_teleclinic_dir;
}


/* the body as one piece of memory; NGX_DECLINED when it is over the limit */

ngx_int_t
ngx_http_teleclinic_body(ngx_http_request_t *r, ngx_str_t *body, size_t max)
{
    u_char       *p;
    off_t         len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > (off_t) max) {
        return NGX_DECLINED;
    }

    body->data = ngx_pnalloc(r->pool, len + 1);
    if (body->data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = body->data;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                              b->file_pos);
            if (n != b->file_last - b->file_pos) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            p += n;
            continue;
        }

        p = ngx_cpymem(p, b->pos, b->last - b->pos);
    }

    body->len = p - body->data;

    return NGX_OK;
}


/* the JSON text of a document, which it frees; one pass when it is small */

static ngx_int_t
ngx_http_teleclinic_dump(ngx_pool_t *pool, json_t *json, ngx_str_t *text)
{
    size_t   len, size;
    u_char  *p;

    if (json == NULL) {
        return NGX_ERROR;
    }

    size = 1024;

    for ( ;; ) {
        p = ngx_pnalloc(pool, size);
        if (p == NULL) {
            json_decref(json);
            return NGX_ERROR;
        }

        len = json_dumpb(json, (char *) p, size - 1, JSON_COMPACT);

        if (len < size) {
            break;
        }

        size = len + 1;
    }

    json_decref(json);

    p[len++] = '\n';

    text->data = p;
    text->len = len;

    return NGX_OK;
}


ngx_int_t
ngx_http_teleclinic_send(ngx_http_request_t *r, ngx_uint_t status,
    json_t *json)
{
    ngx_str_t  text;

    if (ngx_http_teleclinic_dump(r->pool, json, &text) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_teleclinic_send_text(r, status, text.data, text.len);
}


ngx_int_t
ngx_http_teleclinic_send_text(ngx_http_request_t *r, ngx_uint_t status,
    u_char *data, size_t len)
{
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "teleclinic: answering %ui, %uz bytes", status, len);

    r->headers_out.status = status;
    r->headers_out.content_type = ngx_http_teleclinic_json_type;
    r->headers_out.content_type_len = ngx_http_teleclinic_json_type.len;
    r->headers_out.content_length_n = len;

    /* health data: never kept by a cache on the way */
    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = data;
    b->last = data + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_teleclinic_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message, const char *field)
{
    json_t  *e;

    e = json_pack("{s:s, s:s}", "code", code, "message", message);
    if (e == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (field) {
        json_object_set_new(e, "field", json_string(field));
    }

    return ngx_http_teleclinic_send(r, status, json_pack("{s:o}", "error", e));
}


ngx_int_t
ngx_http_teleclinic_fail(ngx_http_request_t *r, ngx_teleclinic_error_t *err)
{
    return ngx_http_teleclinic_error(r, err->status, err->code, err->message,
                                     err->field);
}


ngx_int_t
ngx_http_teleclinic_bearer(ngx_http_request_t *r, ngx_str_t *token)
{
    ngx_str_t  *h;

    if (r->headers_in.authorization == NULL) {
        return NGX_DECLINED;
    }

    h = &r->headers_in.authorization->value;

    if (h->len <= sizeof("Bearer ") - 1
        || ngx_strncasecmp(h->data, (u_char *) "Bearer ",
                           sizeof("Bearer ") - 1) != 0)
    {
        return NGX_DECLINED;
    }

    token->data = h->data + sizeof("Bearer ") - 1;
    token->len = h->len - (sizeof("Bearer ") - 1);

    return NGX_OK;
}


ngx_int_t
ngx_http_teleclinic_is_admin(ngx_http_request_t *r)
{
    ngx_str_t                         token;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    if (tmcf->admin_key.len == 0
        || ngx_http_teleclinic_bearer(r, &token) != NGX_OK
        || token.len != tmcf->admin_key.len
        || CRYPTO_memcmp(token.data, tmcf->admin_key.data, token.len) != 0)
    {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);
    ngx_str_set(&ctx->actor, "admin");

    return NGX_OK;
}


/*
 * A doctor's bearer token (from POST /api/v1/doctor/login): NGX_OK with
 * the doctor's id in t->subject, who must still be in the directory;
 * else NGX_ERROR with the 401 (no or a bad token) or 403 (a patient's
 * token) in *err.
 */

ngx_int_t
ngx_http_teleclinic_doctor_auth(ngx_http_request_t *r,
    ngx_teleclinic_token_t *t, ngx_teleclinic_error_t *err)
{
    ngx_str_t                         token;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_teleclinic_directory_t       *dir;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    if (ngx_http_teleclinic_bearer(r, &token) != NGX_OK
        || ngx_teleclinic_token_verify(&tmcf->token_secret, &token,
                                       ngx_time(), t)
           != NGX_OK)
    {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_UNAUTHORIZED,
                                          "unauthorized",
                                          "a doctor's token is required",
                                          NULL);
    }

    if (t->kind != NGX_TELECLINIC_TOKEN_DOCTOR) {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_FORBIDDEN,
                                          "forbidden",
                                          "only doctors may do this", NULL);
    }

    dir = ngx_http_teleclinic_directory(tmcf, r->connection->log);

    /* a doctor taken out of the directory has no more say */
    if (dir == NULL || ngx_teleclinic_doctor_find(dir, &t->subject) == NULL) {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_UNAUTHORIZED,
                                          "unauthorized",
                                          "a doctor's token is required",
                                          NULL);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);
    ngx_str_set(&ctx->actor, "doctor");

    return NGX_OK;
}


/*
 * Checks done before a handler acts do not send their refusal: what
 * ngx_http_teleclinic_error() returns once it has sent one is NGX_OK,
 * which a caller would take for "go on".  They fill *err and return
 * NGX_ERROR; the handler sends it with ngx_http_teleclinic_fail().
 */

ngx_int_t
ngx_http_teleclinic_reject(ngx_teleclinic_error_t *err, ngx_uint_t status,
    const char *code, const char *message, const char *field)
{
    err->status = status;
    err->code = code;
    err->message = message;
    err->field = field;

    return NGX_ERROR;
}


/*
 * The tail of every change to the zone, entered with the zone locked: the
 * event is applied and journaled, change->copy takes what the answer
 * shows while the zone is still locked, and the answer is formatted from
 * that copy after the unlock, so no HMAC or JSON escaping holds the zone
 * mutex.  The answer goes out once the journal is on disk.
 */

ngx_int_t
ngx_http_teleclinic_commit(ngx_http_request_t *r, ngx_teleclinic_zone_t *zone,
    ngx_http_teleclinic_change_t *change)
{
    ngx_int_t  rc;
    ngx_str_t  text;

    rc = ngx_teleclinic_journal_commit(zone, change->event, r->connection->log);

    if (rc != NGX_OK) {
        ngx_teleclinic_zone_unlock(zone);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "teleclinic: event %ui not committed: %i",
                       change->event->op, rc);

        return ngx_http_teleclinic_unavailable(r, rc);
    }

    if (change->copy) {
        rc = change->copy(r, zone, change);
    }

    ngx_teleclinic_zone_unlock(zone);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "teleclinic: event %ui committed, seq:%ui",
                   change->event->op, change->event->seq);

    if (rc != NGX_OK
        || change->format(r, change, &text) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_teleclinic_wait(r, zone, change->status, &text,
                                    change->durable);
}


/*
 * The change is in the zone and written to the journal; the answer goes
 * out once the journal is on disk.
 */

static ngx_int_t
ngx_http_teleclinic_wait(ngx_http_request_t *r, ngx_teleclinic_zone_t *zone,
    ngx_uint_t status, ngx_str_t *response, void (*durable)(void))
{
    ngx_pool_cleanup_t         *cln;
    ngx_http_teleclinic_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ctx->response = *response;
    ctx->durable = durable;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->status = status;

    ctx->waiter.handler = ngx_http_teleclinic_synced;
    ctx->waiter.data = r;
    ctx->waiter.log = r->connection->log;

    cln->handler = ngx_http_teleclinic_waiter_cleanup;
    cln->data = &ctx->waiter;

    r->main->count++;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "teleclinic: waiting for the journal's sync");

    ngx_teleclinic_journal_sync(zone->journal, &ctx->waiter);

    return NGX_DONE;
}


/* a 503 for what ngx_teleclinic_journal_commit() returned */

static ngx_int_t
ngx_http_teleclinic_unavailable(ngx_http_request_t *r, ngx_int_t rc)
{
    if (rc == NGX_DECLINED) {
        return ngx_http_teleclinic_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "zone_full",
                                         "the service is out of memory for "
                                         "new records", NULL);
    }

    return ngx_http_teleclinic_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "storage_unavailable",
                                     "the change could not be stored", NULL);
}


/*
 * With several nodes the answer waits for Redis too, so that a change
 * acknowledged here is one the other nodes can read when this one dies.
 * The same waiter goes on to the mirror's queue.
 */

static void
ngx_http_teleclinic_synced(void *data, ngx_int_t rc)
{
    ngx_http_request_t *r = data;

    ngx_http_teleclinic_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    if (rc == NGX_OK && ngx_teleclinic_mirror_on()) {
        ctx->waiter.handler = ngx_http_teleclinic_mirrored;
        ngx_teleclinic_mirror_sync(&ctx->waiter);
        return;
    }

    ngx_http_teleclinic_mirrored(r, rc);
}


static void
ngx_http_teleclinic_mirrored(void *data, ngx_int_t rc)
{
    ngx_http_request_t *r = data;

    ngx_connection_t           *c;
    ngx_http_teleclinic_ctx_t  *ctx;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "teleclinic: journal synced: %i, answering %ui",
                   rc, rc == NGX_OK ? ctx->status
                                    : NGX_HTTP_SERVICE_UNAVAILABLE);

    if (rc == NGX_OK) {
        if (ctx->durable) {
            ctx->durable();
        }

        rc = ngx_http_teleclinic_send_text(r, ctx->status, ctx->response.data,
                                           ctx->response.len);

    } else {
        rc = ngx_http_teleclinic_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "storage_unavailable",
                                       "the change could not be stored",
                                       NULL);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_teleclinic_waiter_cleanup(void *data)
{
    ngx_teleclinic_journal_waiter_t  *w = data;

    /* off the journal's queue or the mirror's, wherever it waits */
    ngx_teleclinic_journal_cancel(w);
}


/*
 * The base of the links given to patients.  Without teleclinic_public_url
 * it is made from what nginx knows, never from the request's Host, which
 * the client writes: the first server_name of the server that took the
 * request when it is a plain host name, else the address the connection
 * came to; the port the connection came to, unless it is the scheme's.
 */

u_char *
ngx_http_teleclinic_base_url(ngx_http_request_t *r, ngx_str_t *base)
{
    u_char                           *p;
    u_char                            addr[NGX_SOCKADDR_STRLEN];
    ngx_str_t                         host;
    ngx_uint_t                        port, ssl, ipv6;
    ngx_connection_t                 *c;
    ngx_http_core_srv_conf_t         *cscf;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    if (tmcf->public_url.len) {
        *base = tmcf->public_url;
        return base->data;
    }

    c = r->connection;
    cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);

    ssl = 0;
#if (NGX_HTTP_SSL)
    ssl = (c->ssl != NULL);
#endif

    ipv6 = 0;
    host = cscf->server_name;

    if (ngx_http_teleclinic_plain_host(&host) != NGX_OK) {

        if (c->local_sockaddr == NULL
            || c->local_sockaddr->sa_family == AF_UNIX)
        {
            ngx_str_set(&host, "localhost");

        } else {
            host.len = NGX_SOCKADDR_STRLEN;
            host.data = addr;

            if (ngx_connection_local_sockaddr(c, &host, 0) != NGX_OK) {
                return NULL;
            }

            ipv6 = (c->local_sockaddr->sa_family == AF_INET6);
        }
    }

    port = 0;

    if (c->local_sockaddr && c->local_sockaddr->sa_family != AF_UNIX) {
        port = ngx_inet_get_port(c->local_sockaddr);

        if (port == (ssl ? 443 : 80)) {
            port = 0;
        }
    }

    base->data = ngx_pnalloc(r->pool, sizeof("https://[]:65535") + host.len);
    if (base->data == NULL) {
        return NULL;
    }

    p = ngx_sprintf(base->data, "%s://%s%V%s", ssl ? "https" : "http",
                    ipv6 ? "[" : "", &host, ipv6 ? "]" : "");

    if (port) {
        p = ngx_sprintf(p, ":%ui", port);
    }

    base->len = p - base->data;

    return base->data;
}


/* a DNS name: labels of letters, digits and dashes, split by dots */

static ngx_int_t
ngx_http_teleclinic_plain_host(ngx_str_t *host)
{
    u_char  c, prev;
    size_t  i;

    if (host->len == 0 || host->len > 253) {
        return NGX_DECLINED;
    }

    prev = '.';

    for (i = 0; i < host->len; i++) {
        c = host->data[i];

        if (c == '.') {
            if (prev == '.' || prev == '-') {
                return NGX_DECLINED;
            }

        } else if (c == '-') {
            if (prev == '.') {
                return NGX_DECLINED;
            }

        } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                     || (c >= '0' && c <= '9')))
        {
            return NGX_DECLINED;
        }

        prev = c;
    }

    return (prev == '.' || prev == '-') ? NGX_DECLINED : NGX_OK;
}


u_char *
ngx_http_teleclinic_join_url(ngx_http_teleclinic_main_conf_t *tmcf,
    ngx_str_t *base, u_char *p, uint64_t id, u_char *token, size_t len)
{
    u_char  idbuf[NGX_TELECLINIC_APPT_ID_LEN];

    ngx_teleclinic_appt_id_print(idbuf, id);

    /* the token rides in the fragment: browsers never send it on */
    return ngx_sprintf(p, "%V/visit.html?appointment=%*s#token=%*s", base,
                       (size_t) NGX_TELECLINIC_APPT_ID_LEN, idbuf, len, token);
}
