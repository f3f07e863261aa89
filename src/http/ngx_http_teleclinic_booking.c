
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <jansson.h>
#include "ngx_http_teleclinic_booking.h"
#include "ngx_teleclinic_token.h"
#include "ngx_http_teleclinic_notify.h"
#include "ngx_http_teleclinic_doctor.h"


#define NGX_HTTP_TELECLINIC_SEGMENTS  6


typedef struct {
    ngx_str_t                     seg[NGX_HTTP_TELECLINIC_SEGMENTS];
    ngx_uint_t                    nseg;
    ngx_str_t                     body;
} ngx_http_teleclinic_call_t;


typedef ngx_int_t (*ngx_http_teleclinic_route_pt)(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);


typedef struct {
    ngx_uint_t                    method;
    const char                   *path[NGX_HTTP_TELECLINIC_SEGMENTS];
    ngx_http_teleclinic_route_pt  handler;
} ngx_http_teleclinic_route_t;


static ngx_int_t ngx_http_teleclinic_split(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
static ngx_http_teleclinic_route_t *ngx_http_teleclinic_route(
    ngx_http_request_t *r, ngx_http_teleclinic_call_t *call,
    ngx_uint_t *allowed);
static void ngx_http_teleclinic_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_teleclinic_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_teleclinic_dump(ngx_pool_t *pool, json_t *json,
    ngx_str_t *text);
static ngx_int_t ngx_http_teleclinic_send(ngx_http_request_t *r,
    ngx_uint_t status, json_t *json);
static ngx_int_t ngx_http_teleclinic_fail(ngx_http_request_t *r,
    ngx_teleclinic_error_t *err);
static ngx_int_t ngx_http_teleclinic_allow(ngx_http_request_t *r,
    ngx_uint_t allowed);
static ngx_http_teleclinic_ctx_t *ngx_http_teleclinic_ctx(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_teleclinic_bearer(ngx_http_request_t *r,
    ngx_str_t *token);
static ngx_int_t ngx_http_teleclinic_is_admin(ngx_http_request_t *r);
static ngx_int_t ngx_http_teleclinic_authorize(ngx_http_request_t *r,
    uint64_t id, int64_t *version);
static ngx_int_t ngx_http_teleclinic_current(int64_t version,
    ngx_teleclinic_appt_t *appt);
static ngx_int_t ngx_http_teleclinic_wait(ngx_http_request_t *r,
    ngx_teleclinic_zone_t *zone, ngx_uint_t status, ngx_str_t *response);
static u_char *ngx_http_teleclinic_base_url(ngx_http_request_t *r,
    ngx_str_t *base);
static ngx_int_t ngx_http_teleclinic_plain_host(ngx_str_t *host);
static ngx_int_t ngx_http_teleclinic_unavailable(ngx_http_request_t *r,
    ngx_int_t rc);
static void ngx_http_teleclinic_synced(void *data, ngx_int_t rc);
static void ngx_http_teleclinic_waiter_cleanup(void *data);
static u_char *ngx_http_teleclinic_appt_text(ngx_http_request_t *r,
    u_char *p, u_char *last, ngx_teleclinic_appt_t *appt, ngx_uint_t patient,
    ngx_uint_t access);
static size_t ngx_http_teleclinic_appt_size(ngx_http_request_t *r,
    ngx_teleclinic_appt_t *appt);
static ngx_int_t ngx_http_teleclinic_appt_answer(ngx_http_request_t *r,
    ngx_teleclinic_appt_t *appt, ngx_uint_t patient, ngx_uint_t access,
    ngx_str_t *text);
static ngx_int_t ngx_http_teleclinic_find_slot(ngx_http_request_t *r,
    ngx_str_t *slot_id, ngx_teleclinic_slot_t *slot, ngx_str_t *doctor,
    ngx_teleclinic_error_t *err);
static ngx_int_t ngx_http_teleclinic_reject(ngx_teleclinic_error_t *err,
    ngx_uint_t status, const char *code, const char *message,
    const char *field);

static ngx_int_t ngx_http_teleclinic_departments(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
static ngx_int_t ngx_http_teleclinic_doctors(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
static ngx_int_t ngx_http_teleclinic_slots(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
static ngx_int_t ngx_http_teleclinic_book(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
static ngx_int_t ngx_http_teleclinic_get(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
static ngx_int_t ngx_http_teleclinic_cancel(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
static ngx_int_t ngx_http_teleclinic_reschedule(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
static ngx_int_t ngx_http_teleclinic_admin_directory(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
static ngx_int_t ngx_http_teleclinic_admin_put(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
static ngx_int_t ngx_http_teleclinic_admin_entry(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
static ngx_int_t ngx_http_teleclinic_admin_day(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
static ngx_int_t ngx_http_teleclinic_login(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);


static ngx_http_teleclinic_route_t  ngx_http_teleclinic_routes[] = {

    { NGX_HTTP_GET, { "departments" },
      ngx_http_teleclinic_departments },

    { NGX_HTTP_GET, { "doctors" },
      ngx_http_teleclinic_doctors },

    { NGX_HTTP_GET, { "doctors", "*", "slots" },
      ngx_http_teleclinic_slots },

    { NGX_HTTP_POST, { "appointments" },
      ngx_http_teleclinic_book },

    { NGX_HTTP_GET, { "appointments", "*" },
      ngx_http_teleclinic_get },

    { NGX_HTTP_POST, { "appointments", "*", "cancel" },
      ngx_http_teleclinic_cancel },

    { NGX_HTTP_POST, { "appointments", "*", "reschedule" },
      ngx_http_teleclinic_reschedule },

    { NGX_HTTP_GET, { "admin", "directory" },
      ngx_http_teleclinic_admin_directory },

    { NGX_HTTP_PUT, { "admin", "directory" },
      ngx_http_teleclinic_admin_put },

    { NGX_HTTP_PUT, { "admin", "departments", "*" },
      ngx_http_teleclinic_admin_entry },

    { NGX_HTTP_DELETE, { "admin", "departments", "*" },
      ngx_http_teleclinic_admin_entry },

    { NGX_HTTP_PUT, { "admin", "doctors", "*" },
      ngx_http_teleclinic_admin_entry },

    { NGX_HTTP_DELETE, { "admin", "doctors", "*" },
      ngx_http_teleclinic_admin_entry },

    { NGX_HTTP_GET, { "admin", "doctors", "*", "appointments" },
      ngx_http_teleclinic_admin_day },

    { NGX_HTTP_POST, { "doctor", "login" },
      ngx_http_teleclinic_login },

    { 0, { NULL }, NULL }
};


static ngx_str_t  ngx_http_teleclinic_json_type =
    ngx_string("application/json");

static ngx_teleclinic_directory_t  *ngx_http_teleclinic_dir;


ngx_int_t
ngx_http_teleclinic_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_uint_t                        allowed;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_call_t       *call;
    ngx_http_teleclinic_route_t      *route;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    ctx = ngx_http_teleclinic_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    call = ngx_pcalloc(r->pool, sizeof(ngx_http_teleclinic_call_t));
    if (call == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    route = NULL;
    allowed = 0;

    if (ngx_http_teleclinic_split(r, call) == NGX_OK) {
        route = ngx_http_teleclinic_route(r, call, &allowed);
    }

    if (route == NULL) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (allowed) {
            if (ngx_http_teleclinic_allow(r, allowed) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_http_teleclinic_error(r, NGX_HTTP_NOT_ALLOWED,
                                   "method_not_allowed",
                                   "the method is not allowed on this "
                                   "resource", NULL);
        }

        return ngx_http_teleclinic_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                         "no such resource", NULL);
    }

    if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_PUT))) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return route->handler(r, call);
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    if (r->headers_in.content_length_n > (off_t) tmcf->body_max) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_teleclinic_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                         "body_too_large",
                                         "the request body is too large",
                                         NULL);
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_teleclinic_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_teleclinic_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_uint_t                    allowed;
    ngx_http_teleclinic_call_t    call;
    ngx_http_teleclinic_route_t  *route;

    ngx_memzero(&call, sizeof(ngx_http_teleclinic_call_t));

    if (ngx_http_teleclinic_split(r, &call) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    route = ngx_http_teleclinic_route(r, &call, &allowed);

    rc = ngx_http_teleclinic_body(r, &call.body);

    if (rc == NGX_OK) {
        rc = route->handler(r, &call);

    } else if (rc == NGX_DECLINED) {
        rc = ngx_http_teleclinic_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       "body_too_large",
                                       "the request body is too large",
                                       NULL);
    }

    ngx_http_finalize_request(r, rc);
}


/* the body as one piece of memory; NGX_DECLINED when it is over the limit */

static ngx_int_t
ngx_http_teleclinic_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char                           *p;
    off_t                             len;
    ssize_t                           n;
    ngx_buf_t                        *b;
    ngx_chain_t                      *cl;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > (off_t) tmcf->body_max) {
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


static ngx_int_t
ngx_http_teleclinic_split(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    u_char  *p, *last, *slash;

    static u_char  prefix[] = "/api/v1/";

    if (r->uri.len < sizeof(prefix) - 1
        || ngx_strncmp(r->uri.data, prefix, sizeof(prefix) - 1) != 0)
    {
        return NGX_DECLINED;
    }

    p = r->uri.data + sizeof(prefix) - 1;
    last = r->uri.data + r->uri.len;

    while (p < last) {
        if (call->nseg == NGX_HTTP_TELECLINIC_SEGMENTS) {
            return NGX_DECLINED;
        }

        slash = ngx_strlchr(p, last, '/');
        if (slash == NULL) {
            slash = last;
        }

        if (slash == p) {
            return NGX_DECLINED;
        }

        call->seg[call->nseg].data = p;
        call->seg[call->nseg].len = slash - p;
        call->nseg++;

        p = slash + 1;
    }

    return NGX_OK;
}


static ngx_http_teleclinic_route_t *
ngx_http_teleclinic_route(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call, ngx_uint_t *allowed)
{
    ngx_uint_t                    i, n;
    ngx_http_teleclinic_route_t  *route;

    *allowed = 0;

    for (route = ngx_http_teleclinic_routes; route->handler; route++) {

        for (n = 0; n < NGX_HTTP_TELECLINIC_SEGMENTS && route->path[n]; n++) {
            /* void */
        }

        if (n != call->nseg) {
            continue;
        }

        for (i = 0; i < n; i++) {
            if (route->path[i][0] == '*') {
                continue;
            }

            if (ngx_strlen(route->path[i]) != call->seg[i].len
                || ngx_strncmp(route->path[i], call->seg[i].data,
                               call->seg[i].len) != 0)
            {
                break;
            }
        }

        if (i != n) {
            continue;
        }

        if (r->method == route->method
            || (r->method == NGX_HTTP_HEAD && route->method == NGX_HTTP_GET))
        {
            return route;
        }

        *allowed |= route->method;
    }

    return NULL;
}


/* the methods of the resource, for a 405 */

static ngx_int_t
ngx_http_teleclinic_allow(ngx_http_request_t *r, ngx_uint_t allowed)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    p = ngx_pnalloc(r->pool, sizeof("GET, HEAD, POST, PUT, DELETE"));

    if (h == NULL || p == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = p;

    if (allowed & NGX_HTTP_GET) {
        p = ngx_cpymem(p, "GET, HEAD, ", 11);
    }

    if (allowed & NGX_HTTP_POST) {
        p = ngx_cpymem(p, "POST, ", 6);
    }

    if (allowed & NGX_HTTP_PUT) {
        p = ngx_cpymem(p, "PUT, ", 5);
    }

    if (allowed & NGX_HTTP_DELETE) {
        p = ngx_cpymem(p, "DELETE, ", 8);
    }

    h->value.len = p - h->value.data - 2;

    return NGX_OK;
}


static ngx_http_teleclinic_ctx_t *
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
        ngx_destroy_pool(pool);
        return ngx_http_teleclinic_dir;
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
        ngx_destroy_pool(pool);
        return ngx_http_teleclinic_dir;
    }

    if (ngx_http_teleclinic_dir) {
        ngx_destroy_pool(ngx_http_teleclinic_dir->pool);
    }

    ngx_http_teleclinic_dir = dir;

    return dir;
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


static ngx_int_t
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


static ngx_int_t
ngx_http_teleclinic_fail(ngx_http_request_t *r, ngx_teleclinic_error_t *err)
{
    return ngx_http_teleclinic_error(r, err->status, err->code, err->message,
                                     err->field);
}


static ngx_int_t
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


static ngx_int_t
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
 * NGX_OK, or the HTTP status that refuses the caller.  *version is the
 * version of the appointment the patient's token names, -1 for the admin.
 */

static ngx_int_t
ngx_http_teleclinic_authorize(ngx_http_request_t *r, uint64_t id,
    int64_t *version)
{
    uint32_t                          v;
    uint64_t                          subject;
    ngx_int_t                         rc;
    ngx_str_t                         token;
    ngx_teleclinic_token_t            t;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    *version = -1;

    if (ngx_http_teleclinic_is_admin(r) == NGX_OK) {
        return NGX_OK;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    if (ngx_http_teleclinic_bearer(r, &token) != NGX_OK) {
        return NGX_HTTP_UNAUTHORIZED;
    }

    rc = ngx_teleclinic_token_verify(&tmcf->token_secret, &token, ngx_time(),
                                     &t);

    if (rc != NGX_OK
        || ngx_teleclinic_token_appt(&t, &subject, &v) != NGX_OK)
    {
        return NGX_HTTP_UNAUTHORIZED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);
    ngx_str_set(&ctx->actor, "patient");

    if (subject != id) {
        return NGX_HTTP_FORBIDDEN;
    }

    *version = v;

    return NGX_OK;
}


/*
 * A patient's token opens the appointment as it was when the token was
 * given: a cancellation or a reschedule since makes it one more bad
 * token.  With the zone locked.
 */

static ngx_int_t
ngx_http_teleclinic_current(int64_t version, ngx_teleclinic_appt_t *appt)
{
    return version < 0 || (uint32_t) version == appt->version;
}


static ngx_int_t
ngx_http_teleclinic_refuse(ngx_teleclinic_error_t *err, ngx_int_t status)
{
    if (status == NGX_HTTP_UNAUTHORIZED) {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_UNAUTHORIZED,
                                          "unauthorized",
                                          "a valid, unexpired token is "
                                          "required", NULL);
    }

    return ngx_http_teleclinic_reject(err, NGX_HTTP_FORBIDDEN, "forbidden",
                                      "the token is not for this "
                                      "appointment", NULL);
}


/*
 * Checks done before a handler acts do not send their refusal: what
 * ngx_http_teleclinic_error() returns once it has sent one is NGX_OK,
 * which a caller would take for "go on".  They fill *err and return
 * NGX_ERROR; the handler sends it with ngx_http_teleclinic_fail().
 */

static ngx_int_t
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
 * The change is in the zone and written to the journal; the answer goes
 * out once the journal is on disk.
 */

static ngx_int_t
ngx_http_teleclinic_wait(ngx_http_request_t *r, ngx_teleclinic_zone_t *zone,
    ngx_uint_t status, ngx_str_t *response)
{
    ngx_pool_cleanup_t         *cln;
    ngx_http_teleclinic_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ctx->response = *response;

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

    ngx_teleclinic_journal_sync(zone->journal, &ctx->waiter);

    return NGX_DONE;
}


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


static void
ngx_http_teleclinic_synced(void *data, ngx_int_t rc)
{
    ngx_http_request_t *r = data;

    ngx_connection_t           *c;
    ngx_http_teleclinic_ctx_t  *ctx;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    if (rc == NGX_OK) {
        ngx_teleclinic_notify_kick();

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

    ngx_teleclinic_journal_cancel(w);
}


/*
 * The base of the links given to patients.  Without teleclinic_public_url
 * it is made from what nginx knows, never from the request's Host, which
 * the client writes: the first server_name of the server that took the
 * request when it is a plain host name, else the address the connection
 * came to; the port the connection came to, unless it is the scheme's.
 */

static u_char *
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


/*
 * An appointment as JSON text.  Written directly: it is on the path of
 * every booking; ids and times need no escaping, and jansson escapes the
 * patient's strings and the links.  "access" adds the patient's token and
 * links.  The zone is locked.
 */

static u_char *
ngx_http_teleclinic_appt_text(ngx_http_request_t *r, u_char *p, u_char *last,
    ngx_teleclinic_appt_t *appt, ngx_uint_t patient, ngx_uint_t access)
{
    u_char                            token[NGX_TELECLINIC_TOKEN_MAX], *t;
    u_char                            subj[NGX_TELECLINIC_APPT_SUBJECT];
    u_char                           *url, *u;
    ngx_tm_t                          tm;
    ngx_str_t                         doctor, subject, base, *status;
    ngx_teleclinic_date_t             date;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    if (p == NULL || last - p < 512) {
        return NULL;
    }

    doctor.data = appt->doctor;
    doctor.len = appt->doctor_len;
    status = &ngx_teleclinic_status_names[appt->status];

    p = ngx_cpymem(p, "{\"id\":\"", 7);
    p = ngx_teleclinic_appt_id_print(p, appt->id);
    p = ngx_sprintf(p, "\",\"status\":\"%V\",\"slot\":\"", status);

    ngx_libc_localtime(appt->start, &tm);
    ngx_teleclinic_date_of(appt->start, &date);
    p = ngx_teleclinic_slot_id_print(p, &doctor, &date,
                                     tm.tm_hour * 60 + tm.tm_min);

    p = ngx_sprintf(p, "\",\"doctor\":\"%V\",\"start\":\"", &doctor);
    p = ngx_teleclinic_time_print(p, appt->start);
    p = ngx_cpymem(p, "\",\"end\":\"", 9);
    p = ngx_teleclinic_time_print(p, appt->end);
    p = ngx_cpymem(p, "\",\"created\":\"", 13);
    p = ngx_teleclinic_time_print(p, appt->created);
    *p++ = '"';

    /* the visit as the waiting room saw it */

    if (appt->arrived) {
        p = ngx_cpymem(p, ",\"arrived\":\"", 12);
        p = ngx_teleclinic_time_print(p, appt->arrived);
        *p++ = '"';
    }

    if (appt->visit_start) {
        p = ngx_cpymem(p, ",\"visit_start\":\"", 16);
        p = ngx_teleclinic_time_print(p, appt->visit_start);
        *p++ = '"';
    }

    if (appt->visit_end) {
        p = ngx_cpymem(p, ",\"visit_end\":\"", 14);
        p = ngx_teleclinic_time_print(p, appt->visit_end);
        *p++ = '"';
    }

    if (patient) {
        p = ngx_cpymem(p, ",\"patient\":{\"name\":", 19);
        p = ngx_teleclinic_json_string(p, last, appt->name.data,
                                       appt->name.len);
        p = ngx_teleclinic_json_field(p, last, "phone", &appt->phone);

        if (p == NULL || last - p < 16) {
            return NULL;
        }

        *p++ = '}';
        p = ngx_teleclinic_json_field(p, last, "reason", &appt->reason);
    }

    if (access) {
        tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

        ngx_teleclinic_token_appt_subject(appt->id, appt->version, subj,
                                          &subject);

        t = ngx_teleclinic_token_issue(&tmcf->token_secret,
                                       NGX_TELECLINIC_TOKEN_PATIENT, &subject,
                                       appt->end + tmcf->token_ttl, token);

        if (p == NULL || t == NULL
            || ngx_http_teleclinic_base_url(r, &base) == NULL
            || last - p < 64 + (t - token))
        {
            return NULL;
        }

        url = ngx_pnalloc(r->pool, base.len + 64 + NGX_TELECLINIC_APPT_ID_LEN
                                   + (t - token));
        if (url == NULL) {
            return NULL;
        }

        p = ngx_cpymem(p, ",\"token\":\"", 10);
        p = ngx_cpymem(p, token, t - token);
        p = ngx_cpymem(p, "\",\"join_url\":", 13);

        u = ngx_http_teleclinic_join_url(tmcf, &base, url, appt->id, token,
                                         t - token);
        p = ngx_teleclinic_json_string(p, last, url, u - url);

        if (p == NULL || last - p < 16) {
            return NULL;
        }

        p = ngx_cpymem(p, ",\"guide_url\":", 13);

        u = ngx_sprintf(url, "%V/guide.html", &base);
        p = ngx_teleclinic_json_string(p, last, url, u - url);
    }

    if (p == NULL || p == last) {
        return NULL;
    }

    *p++ = '}';

    return p;
}


/* room for the text of an appointment: strings escaped at worst */

static size_t
ngx_http_teleclinic_appt_size(ngx_http_request_t *r,
    ngx_teleclinic_appt_t *appt)
{
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    return 1024 + 6 * (appt->name.len + appt->phone.len + appt->reason.len)
           + 12 * (tmcf->public_url.len + 256);
}


/* the answer about one appointment, made while the zone is locked */

static ngx_int_t
ngx_http_teleclinic_appt_answer(ngx_http_request_t *r,
    ngx_teleclinic_appt_t *appt, ngx_uint_t patient, ngx_uint_t access,
    ngx_str_t *text)
{
    u_char  *p, *last;
    size_t   size;

    size = ngx_http_teleclinic_appt_size(r, appt);

    text->data = ngx_pnalloc(r->pool, size);
    if (text->data == NULL) {
        return NGX_ERROR;
    }

    last = text->data + size - 1;

    p = ngx_http_teleclinic_appt_text(r, text->data, last, appt, patient,
                                      access);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *p++ = '\n';
    text->len = p - text->data;

    return NGX_OK;
}


/*
 * A slot id names a doctor, a day and a time; it is a slot when the
 * doctor's schedule has that time on that day.
 */

static ngx_int_t
ngx_http_teleclinic_find_slot(ngx_http_request_t *r, ngx_str_t *slot_id,
    ngx_teleclinic_slot_t *slot, ngx_str_t *doctor,
    ngx_teleclinic_error_t *err)
{
    ngx_uint_t                        minute;
    ngx_teleclinic_date_t             date;
    ngx_teleclinic_doctor_t          *doc;
    ngx_teleclinic_directory_t       *dir;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    if (ngx_teleclinic_slot_id_parse(slot_id->data, slot_id->len, doctor,
                                     &date, &minute)
        != NGX_OK)
    {
        return ngx_http_teleclinic_reject(err, 422, "invalid_slot",
                                          "slot is not a slot id", "slot");
    }

    dir = ngx_http_teleclinic_directory(tmcf, r->connection->log);
    doc = dir ? ngx_teleclinic_doctor_find(dir, doctor) : NULL;

    if (doc == NULL
        || ngx_teleclinic_doctor_slot(doc, &date, minute, slot) != NGX_OK)
    {
        return ngx_http_teleclinic_reject(err, 422, "unknown_slot",
                                          "there is no such slot", "slot");
    }

    if (slot->start <= ngx_time()) {
        return ngx_http_teleclinic_reject(err, 422, "slot_in_past",
                                          "the slot has already begun",
                                          "slot");
    }

    if (slot->start > ngx_time() + tmcf->horizon) {
        return ngx_http_teleclinic_reject(err, 422, "slot_too_far",
                                          "the slot is beyond the booking "
                                          "horizon", "slot");
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_teleclinic_departments(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    json_t                           *a;
    ngx_uint_t                        i;
    ngx_teleclinic_department_t      *dept;
    ngx_teleclinic_directory_t       *dir;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    dir = ngx_http_teleclinic_directory(tmcf, r->connection->log);
    if (dir == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    a = json_array();
    dept = dir->departments.elts;

    for (i = 0; i < dir->departments.nelts; i++) {
        json_array_append_new(a, json_pack("{s:s%, s:s%}",
                                           "id", dept[i].id.data,
                                           dept[i].id.len,
                                           "name", dept[i].name.data,
                                           dept[i].name.len));
    }

    return ngx_http_teleclinic_send(r, NGX_HTTP_OK, a);
}


static ngx_int_t
ngx_http_teleclinic_doctors(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    json_t                           *a;
    ngx_str_t                         dept;
    ngx_uint_t                        i;
    ngx_teleclinic_doctor_t          *doc;
    ngx_teleclinic_directory_t       *dir;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    dir = ngx_http_teleclinic_directory(tmcf, r->connection->log);
    if (dir == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_null(&dept);

    if (ngx_teleclinic_arg(r->args.data, r->args.len, "department", &dept)
        == NGX_OK
        && ngx_teleclinic_id_valid(dept.data, dept.len) != NGX_OK)
    {
        return ngx_http_teleclinic_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_department",
                                         "department is not a department id",
                                         "department");
    }

    a = json_array();
    doc = dir->doctors.elts;

    for (i = 0; i < dir->doctors.nelts; i++) {
        if (dept.len
            && (dept.len != doc[i].department.len
                || ngx_strncmp(dept.data, doc[i].department.data, dept.len)
                   != 0))
        {
            continue;
        }

        json_array_append_new(a, json_pack("{s:s%, s:s%, s:s%, s:i}",
                                           "id", doc[i].id.data,
                                           doc[i].id.len,
                                           "name", doc[i].name.data,
                                           doc[i].name.len,
                                           "department",
                                           doc[i].department.data,
                                           doc[i].department.len,
                                           "slot_minutes",
                                           (int) doc[i].slot_minutes));
    }

    return ngx_http_teleclinic_send(r, NGX_HTTP_OK, a);
}


static ngx_int_t
ngx_http_teleclinic_slots(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    u_char                           *buf, *p;
    time_t                            now;
    ngx_str_t                         arg;
    ngx_uint_t                        i, n, busy;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_date_t             date;
    u_char                            taken[NGX_TELECLINIC_SLOTS_MAX];
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_slot_t             slots[NGX_TELECLINIC_SLOTS_MAX];
    ngx_teleclinic_doctor_t          *doc;
    ngx_teleclinic_directory_t       *dir;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);

    if (ngx_teleclinic_arg(r->args.data, r->args.len, "date", &arg) != NGX_OK
        || ngx_teleclinic_date_parse(arg.data, arg.len, &date) != NGX_OK)
    {
        return ngx_http_teleclinic_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_date",
                                         "date must be a day as YYYY-MM-DD",
                                         "date");
    }

    dir = ngx_http_teleclinic_directory(tmcf, r->connection->log);
    doc = dir ? ngx_teleclinic_doctor_find(dir, &call->seg[1]) : NULL;

    if (doc == NULL) {
        return ngx_http_teleclinic_error(r, NGX_HTTP_NOT_FOUND,
                                         "unknown_doctor", "no such doctor",
                                         NULL);
    }

    n = ngx_teleclinic_doctor_slots(doc, &date, slots);
    now = ngx_time();

    if (n && slots[0].start > now + tmcf->horizon) {
        n = 0;
    }

    buf = ngx_pnalloc(r->pool, 2 + n * (2 * NGX_TELECLINIC_TIME_LEN
                                        + NGX_TELECLINIC_ID_MAX + 80));
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = buf;
    *p++ = '[';

    /* the taken ones: one walk over the doctor's day in the index */

    ngx_teleclinic_zone_lock(zone);

    appt = n ? ngx_teleclinic_slot_first(zone, &doc->id, slots[0].start)
             : NULL;

    for (i = 0; i < n; i++) {
        while (appt && appt->start < slots[i].start) {
            appt = ngx_teleclinic_slot_next(zone, appt);
        }

        taken[i] = (appt && appt->start == slots[i].start);
    }

    ngx_teleclinic_zone_unlock(zone);

    for (i = 0; i < n; i++) {
        busy = taken[i] || slots[i].start <= now;

        /* ids and times need no JSON escaping: written directly */

        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, "{\"id\":\"", 7);
        p = ngx_teleclinic_slot_id_print(p, &doc->id, &date, slots[i].minute);
        p = ngx_cpymem(p, "\",\"start\":\"", 11);
        p = ngx_teleclinic_time_print(p, slots[i].start);
        p = ngx_cpymem(p, "\",\"end\":\"", 9);
        p = ngx_teleclinic_time_print(p, slots[i].end);
        p = ngx_cpymem(p, "\",\"status\":\"", 12);
        p = ngx_cpymem(p, busy ? "busy\"}" : "free\"}", 6);
    }

    *p++ = ']';
    *p++ = '\n';

    return ngx_http_teleclinic_send_text(r, NGX_HTTP_OK, buf, p - buf);
}


static ngx_int_t
ngx_http_teleclinic_book(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    ngx_str_t                         text;
    ngx_int_t                         rc;
    ngx_str_t                         doctor;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_slot_t             slot;
    ngx_teleclinic_event_t            ev;
    ngx_teleclinic_error_t            err;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_teleclinic_booking_req_t      req;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ngx_str_set(&ctx->action, "book");

    if (ngx_teleclinic_request_booking(call->body.data, call->body.len, &req,
                                       &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (ngx_http_teleclinic_find_slot(r, &req.slot, &slot, &doctor, &err)
        != NGX_OK)
    {
        json_decref(req.root);
        return ngx_http_teleclinic_fail(r, &err);
    }

    ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
    ev.op = NGX_TELECLINIC_EV_BOOK;
    ev.at = ngx_time();
    ev.doctor = doctor;
    ev.start = slot.start;
    ev.end = slot.end;
    ev.name = req.name;
    ev.phone = req.phone;
    ev.reason = req.reason;

    /* drawn before the lock: the zone only checks it is unused */
    if (RAND_bytes((u_char *) &ev.id, sizeof(uint64_t)) != 1) {
        json_decref(req.root);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_teleclinic_zone_lock(zone);

    if (ngx_teleclinic_slot_lookup(zone, &doctor, slot.start) != NULL) {
        ngx_teleclinic_zone_unlock(zone);
        json_decref(req.root);

        return ngx_http_teleclinic_error(r, NGX_HTTP_CONFLICT, "slot_taken",
                                         "the slot is no longer free",
                                         "slot");
    }

    if (ngx_teleclinic_appt_new_id(zone, &ev.id) != NGX_OK) {
        ngx_teleclinic_zone_unlock(zone);
        json_decref(req.root);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->appt = ev.id;

    rc = ngx_teleclinic_journal_commit(zone, &ev, r->connection->log);

    json_decref(req.root);

    if (rc != NGX_OK) {
        ngx_teleclinic_zone_unlock(zone);
        return ngx_http_teleclinic_unavailable(r, rc);
    }

    rc = ngx_http_teleclinic_appt_answer(r,
                                     ngx_teleclinic_appt_lookup(zone, ev.id),
                                     0, 1, &text);

    ngx_teleclinic_zone_unlock(zone);

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_teleclinic_wait(r, zone, NGX_HTTP_CREATED, &text);
}


/* the appointment of /appointments/{id}, once the caller may see it */

static ngx_int_t
ngx_http_teleclinic_appt_id(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call, uint64_t *id, int64_t *version,
    ngx_teleclinic_error_t *err)
{
    ngx_int_t                         rc;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_appt_t            *appt;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    if (ngx_teleclinic_appt_id_parse(call->seg[1].data, call->seg[1].len, id)
        != NGX_OK)
    {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_NOT_FOUND,
                                          "unknown_appointment",
                                          "no such appointment", NULL);
    }

    ctx->appt = *id;

    rc = ngx_http_teleclinic_authorize(r, *id, version);

    if (rc != NGX_OK) {
        return ngx_http_teleclinic_refuse(err, rc);
    }

    /*
     * an outdated token is refused before the request's body is looked
     * at; the handlers check again with the zone locked for their change
     */

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);

    ngx_teleclinic_zone_lock(zone);

    appt = ngx_teleclinic_appt_lookup(zone, *id);
    rc = (appt == NULL || ngx_http_teleclinic_current(*version, appt))
         ? NGX_OK : NGX_HTTP_UNAUTHORIZED;

    ngx_teleclinic_zone_unlock(zone);

    if (rc != NGX_OK) {
        return ngx_http_teleclinic_refuse(err, rc);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_teleclinic_get(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    int64_t                           version;
    uint64_t                          id;
    ngx_int_t                         rc;
    ngx_str_t                         text;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_error_t            err;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ngx_str_set(&ctx->action, "read");

    if (ngx_http_teleclinic_appt_id(r, call, &id, &version, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    ngx_teleclinic_zone_lock(zone);

    appt = ngx_teleclinic_appt_lookup(zone, id);

    if (appt && !ngx_http_teleclinic_current(version, appt)) {
        ngx_teleclinic_zone_unlock(zone);
        (void) ngx_http_teleclinic_refuse(&err, NGX_HTTP_UNAUTHORIZED);
        return ngx_http_teleclinic_fail(r, &err);
    }

    rc = appt ? ngx_http_teleclinic_appt_answer(r, appt, 1, 0, &text)
              : NGX_DECLINED;

    ngx_teleclinic_zone_unlock(zone);

    if (rc == NGX_DECLINED) {
        return ngx_http_teleclinic_error(r, NGX_HTTP_NOT_FOUND,
                                         "unknown_appointment",
                                         "no such appointment", NULL);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_teleclinic_send_text(r, NGX_HTTP_OK, text.data,
                                         text.len);
}


static ngx_int_t
ngx_http_teleclinic_cancel(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    ngx_str_t                         text;
    int64_t                           version;
    uint64_t                          id;
    ngx_int_t                         rc;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_error_t            err;
    ngx_teleclinic_event_t            ev;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ngx_str_set(&ctx->action, "cancel");

    if (ngx_http_teleclinic_appt_id(r, call, &id, &version, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    ngx_teleclinic_zone_lock(zone);

    appt = ngx_teleclinic_appt_lookup(zone, id);

    if (appt == NULL) {
        ngx_teleclinic_zone_unlock(zone);
        return ngx_http_teleclinic_error(r, NGX_HTTP_NOT_FOUND,
                                         "unknown_appointment",
                                         "no such appointment", NULL);
    }

    if (!ngx_http_teleclinic_current(version, appt)) {
        ngx_teleclinic_zone_unlock(zone);
        (void) ngx_http_teleclinic_refuse(&err, NGX_HTTP_UNAUTHORIZED);
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (appt->status != NGX_TELECLINIC_BOOKED) {
        ngx_teleclinic_zone_unlock(zone);
        return ngx_http_teleclinic_error(r, NGX_HTTP_CONFLICT,
                                         "not_cancellable",
                                         "only a booked appointment can be "
                                         "cancelled", NULL);
    }

    ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
    ev.op = NGX_TELECLINIC_EV_CANCEL;
    ev.at = ngx_time();
    ev.id = id;

    rc = ngx_teleclinic_journal_commit(zone, &ev, r->connection->log);

    if (rc != NGX_OK) {
        ngx_teleclinic_zone_unlock(zone);
        return ngx_http_teleclinic_unavailable(r, rc);
    }

    rc = ngx_http_teleclinic_appt_answer(r, appt, 0, 0, &text);

    ngx_teleclinic_zone_unlock(zone);

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_teleclinic_wait(r, zone, NGX_HTTP_OK, &text);
}


static ngx_int_t
ngx_http_teleclinic_reschedule(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    json_t                           *root;
    ngx_str_t                         text;
    int64_t                           version;
    uint64_t                          id;
    ngx_int_t                         rc;
    ngx_str_t                         slot_id, doctor;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_slot_t             slot;
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_error_t            err;
    ngx_teleclinic_event_t            ev;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ngx_str_set(&ctx->action, "reschedule");

    if (ngx_http_teleclinic_appt_id(r, call, &id, &version, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (ngx_teleclinic_request_reschedule(call->body.data, call->body.len,
                                          &root, &slot_id, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (ngx_http_teleclinic_find_slot(r, &slot_id, &slot, &doctor, &err)
        != NGX_OK)
    {
        json_decref(root);
        return ngx_http_teleclinic_fail(r, &err);
    }

    ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
    ev.op = NGX_TELECLINIC_EV_RESCHEDULE;
    ev.at = ngx_time();
    ev.id = id;
    ev.doctor = doctor;
    ev.start = slot.start;
    ev.end = slot.end;

    ngx_teleclinic_zone_lock(zone);

    appt = ngx_teleclinic_appt_lookup(zone, id);

    if (appt == NULL) {
        ngx_teleclinic_zone_unlock(zone);
        json_decref(root);
        return ngx_http_teleclinic_error(r, NGX_HTTP_NOT_FOUND,
                                         "unknown_appointment",
                                         "no such appointment", NULL);
    }

    if (!ngx_http_teleclinic_current(version, appt)) {
        ngx_teleclinic_zone_unlock(zone);
        json_decref(root);
        (void) ngx_http_teleclinic_refuse(&err, NGX_HTTP_UNAUTHORIZED);
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (appt->status != NGX_TELECLINIC_BOOKED) {
        ngx_teleclinic_zone_unlock(zone);
        json_decref(root);
        return ngx_http_teleclinic_error(r, NGX_HTTP_CONFLICT,
                                         "not_reschedulable",
                                         "only a booked appointment can be "
                                         "rescheduled", NULL);
    }

    if (ngx_teleclinic_slot_lookup(zone, &doctor, slot.start) != NULL) {
        ngx_teleclinic_zone_unlock(zone);
        json_decref(root);
        return ngx_http_teleclinic_error(r, NGX_HTTP_CONFLICT, "slot_taken",
                                         "the slot is no longer free",
                                         "slot");
    }

    rc = ngx_teleclinic_journal_commit(zone, &ev, r->connection->log);

    json_decref(root);

    if (rc != NGX_OK) {
        ngx_teleclinic_zone_unlock(zone);
        return ngx_http_teleclinic_unavailable(r, rc);
    }

    /* a later visit needs a token that lasts until then */

    rc = ngx_http_teleclinic_appt_answer(r, appt, 0, 1, &text);

    ngx_teleclinic_zone_unlock(zone);

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_teleclinic_wait(r, zone, NGX_HTTP_OK, &text);
}


static ngx_int_t
ngx_http_teleclinic_admin_only(ngx_http_request_t *r,
    ngx_teleclinic_error_t *err)
{
    ngx_str_t  token;

    if (ngx_http_teleclinic_is_admin(r) == NGX_OK) {
        return NGX_OK;
    }

    if (ngx_http_teleclinic_bearer(r, &token) != NGX_OK) {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_UNAUTHORIZED,
                                          "unauthorized",
                                          "the admin key is required", NULL);
    }

    return ngx_http_teleclinic_reject(err, NGX_HTTP_FORBIDDEN, "forbidden",
                                      "the admin key is required", NULL);
}


static ngx_int_t
ngx_http_teleclinic_admin_directory(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    u_char                           *text;
    size_t                            len;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_error_t            err;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    if (ngx_http_teleclinic_admin_only(r, &err) != NGX_OK) {
        return ngx_http_teleclinic_fail(r, &err);
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);

    ngx_teleclinic_zone_lock(zone);

    len = zone->sh->directory_len;
    text = ngx_pnalloc(r->pool, len + 1);

    if (text) {
        ngx_memcpy(text, zone->sh->directory, len);
    }

    ngx_teleclinic_zone_unlock(zone);

    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (len == 0) {
        text = (u_char *) "{\"departments\":[],\"doctors\":[]}";
        len = ngx_strlen(text);
    }

    return ngx_http_teleclinic_send_text(r, NGX_HTTP_OK, text, len);
}


/* replaces the directory with a checked document; body is its text */

static ngx_int_t
ngx_http_teleclinic_directory_store(ngx_http_request_t *r, u_char *text,
    size_t len)
{
    ngx_int_t                         rc;
    ngx_str_t                         answer;
    const char                       *err;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_event_t            ev;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_teleclinic_directory_t        dir;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ngx_str_set(&ctx->action, "directory");

    if (len > NGX_TELECLINIC_DIRECTORY_MAX) {
        return ngx_http_teleclinic_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                         "directory_too_large",
                                         "a directory is at most 128k", NULL);
    }

    ngx_memzero(&dir, sizeof(ngx_teleclinic_directory_t));
    dir.pool = r->pool;

    if (ngx_teleclinic_directory_parse(&dir, text, len, &err) != NGX_OK) {
        return ngx_http_teleclinic_error(r, 422, "invalid_directory", err,
                                         NULL);
    }

    ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
    ev.op = NGX_TELECLINIC_EV_DIRECTORY;
    ev.at = ngx_time();
    ev.directory.data = text;
    ev.directory.len = len;

    ngx_teleclinic_zone_lock(zone);

    /* the file's hash stays: only a changed file replaces this */
    ngx_memcpy(ev.hash, zone->sh->directory_file_hash, 32);

    rc = ngx_teleclinic_journal_commit(zone, &ev, r->connection->log);

    ngx_teleclinic_zone_unlock(zone);

    if (rc != NGX_OK) {
        return ngx_http_teleclinic_unavailable(r, rc);
    }

    answer.data = ngx_pnalloc(r->pool, sizeof("{\"doctors\":}\n")
                                       + NGX_INT_T_LEN);
    if (answer.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    answer.len = ngx_sprintf(answer.data, "{\"doctors\":%ui}\n",
                             dir.doctors.nelts)
                 - answer.data;

    return ngx_http_teleclinic_wait(r, zone, NGX_HTTP_OK, &answer);
}


static ngx_int_t
ngx_http_teleclinic_admin_put(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    ngx_teleclinic_error_t  err;

    if (ngx_http_teleclinic_admin_only(r, &err) != NGX_OK) {
        return ngx_http_teleclinic_fail(r, &err);
    }

    return ngx_http_teleclinic_directory_store(r, call->body.data,
                                               call->body.len);
}


/*
 * PUT or DELETE of one department or doctor: the change is made to the
 * current directory document, which is then checked as a whole.
 */

static ngx_int_t
ngx_http_teleclinic_admin_entry(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    u_char                           *text;
    size_t                            i, len;
    json_t                           *doc, *list, *item, *entry, *v;
    json_error_t                      jerr;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_error_t            err;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    if (ngx_http_teleclinic_admin_only(r, &err) != NGX_OK) {
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (ngx_teleclinic_id_valid(call->seg[2].data, call->seg[2].len)
        != NGX_OK)
    {
        return ngx_http_teleclinic_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_id",
                                         "ids are 1 to 32 of a-z, 0-9, -",
                                         NULL);
    }

    entry = NULL;

    if (r->method == NGX_HTTP_PUT) {
        if (ngx_teleclinic_request_json(call->body.data, call->body.len,
                                        &entry, &err)
            != NGX_OK)
        {
            return ngx_http_teleclinic_fail(r, &err);
        }

        json_object_set_new(entry, "id",
                            json_stringn((char *) call->seg[2].data,
                                         call->seg[2].len));
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);

    ngx_teleclinic_zone_lock(zone);

    doc = zone->sh->directory_len
          ? json_loadb((char *) zone->sh->directory, zone->sh->directory_len,
                       0, &jerr)
          : json_pack("{s:[], s:[]}", "departments", "doctors");

    ngx_teleclinic_zone_unlock(zone);

    list = doc ? json_object_get(doc, call->seg[1].len == 7
                                      ? "doctors" : "departments")
               : NULL;

    if (!json_is_array(list)) {
        json_decref(doc);
        json_decref(entry);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_array_foreach(list, i, item) {
        v = json_object_get(item, "id");

        if (json_is_string(v)
            && json_string_length(v) == call->seg[2].len
            && ngx_strncmp(json_string_value(v), call->seg[2].data,
                           call->seg[2].len) == 0)
        {
            break;
        }
    }

    if (entry) {
        if (i < json_array_size(list)) {
            json_array_set(list, i, entry);

        } else {
            json_array_append(list, entry);
        }

    } else if (i < json_array_size(list)) {
        json_array_remove(list, i);

    } else {
        json_decref(doc);
        return ngx_http_teleclinic_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                         "no such entry", NULL);
    }

    json_decref(entry);

    len = json_dumpb(doc, NULL, 0, JSON_COMPACT);
    text = ngx_pnalloc(r->pool, len + 1);

    if (text == NULL) {
        json_decref(doc);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = json_dumpb(doc, (char *) text, len, JSON_COMPACT);
    json_decref(doc);

    /*
     * two admins changing the directory at once: the later write wins,
     * as with a PUT of the whole document
     */
    return ngx_http_teleclinic_directory_store(r, text, len);
}


/* a doctor's day: the appointments that hold one of the doctor's slots */

static ngx_int_t
ngx_http_teleclinic_admin_day(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    u_char                           *p;
    size_t                            len;
    time_t                            from, to;
    ngx_int_t                         rc;
    ngx_str_t                         arg, text, *item;
    ngx_uint_t                        n;
    ngx_array_t                       items;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_date_t             date;
    ngx_teleclinic_appt_t            *appt;
    ngx_teleclinic_error_t            err;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    if (ngx_http_teleclinic_admin_only(r, &err) != NGX_OK) {
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (ngx_teleclinic_arg(r->args.data, r->args.len, "date", &arg) != NGX_OK
        || ngx_teleclinic_date_parse(arg.data, arg.len, &date) != NGX_OK)
    {
        return ngx_http_teleclinic_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_date",
                                         "date must be a day as YYYY-MM-DD",
                                         "date");
    }

    ngx_teleclinic_day_bounds(&date, &from, &to);

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);

    if (ngx_array_init(&items, r->pool, 16, sizeof(ngx_str_t)) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("[]\n");
    rc = NGX_OK;

    ngx_teleclinic_zone_lock(zone);

    for (appt = ngx_teleclinic_slot_first(zone, &call->seg[2], from);
         appt && appt->start < to && rc == NGX_OK;
         appt = ngx_teleclinic_slot_next(zone, appt))
    {
        item = ngx_array_push(&items);

        rc = (item == NULL) ? NGX_ERROR
                            : ngx_http_teleclinic_appt_answer(r, appt, 1, 0,
                                                              item);
        if (rc == NGX_OK) {
            len += item->len;
        }
    }

    ngx_teleclinic_zone_unlock(zone);

    p = (rc == NGX_OK) ? ngx_pnalloc(r->pool, len) : NULL;

    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the items end in newlines, which become the commas */

    text.data = p;
    *p++ = '[';
    item = items.elts;

    for (n = 0; n < items.nelts; n++) {
        p = ngx_cpymem(p, item[n].data, item[n].len);
        p[-1] = ',';
    }

    if (items.nelts) {
        p--;
    }

    *p++ = ']';
    *p++ = '\n';

    return ngx_http_teleclinic_send_text(r, NGX_HTTP_OK, text.data,
                                         p - text.data);
}


/* the doctor console lives in ngx_teleclinic_doctor.c */

static ngx_int_t
ngx_http_teleclinic_login(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    return ngx_http_teleclinic_doctor_login(r, &call->body);
}
