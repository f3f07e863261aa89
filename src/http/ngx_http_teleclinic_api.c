
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_teleclinic_util.h"
#include "ngx_http_teleclinic_api.h"
#include "ngx_http_teleclinic_booking.h"
#include "ngx_http_teleclinic_admin.h"
#include "ngx_http_teleclinic_doctor.h"
#include "ngx_http_teleclinic_record.h"
#include "ngx_http_teleclinic_catalog.h"


typedef ngx_int_t (*ngx_http_teleclinic_route_pt)(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);


typedef struct {
    ngx_uint_t                    method;
    const char                   *path[NGX_HTTP_TELECLINIC_SEGMENTS];
    ngx_http_teleclinic_route_pt  handler;
} ngx_http_teleclinic_route_t;


static void ngx_http_teleclinic_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_teleclinic_split(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
static ngx_http_teleclinic_route_t *ngx_http_teleclinic_route(
    ngx_http_request_t *r, ngx_http_teleclinic_call_t *call,
    ngx_uint_t *allowed);
static ngx_int_t ngx_http_teleclinic_allow(ngx_http_request_t *r,
    ngx_uint_t allowed);
static ngx_int_t ngx_http_teleclinic_login_ways(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
static ngx_int_t ngx_http_teleclinic_login(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call);
static size_t ngx_http_teleclinic_body_max(ngx_http_request_t *r,
    ngx_http_teleclinic_route_t *route);


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

    { NGX_HTTP_GET, { "appointments", "*", "record" },
      ngx_http_teleclinic_record_get },

    { NGX_HTTP_PUT, { "appointments", "*", "record", "note" },
      ngx_http_teleclinic_record_note },

    { NGX_HTTP_POST, { "appointments", "*", "record", "close" },
      ngx_http_teleclinic_record_close },

    { NGX_HTTP_POST, { "appointments", "*", "record", "prescriptions" },
      ngx_http_teleclinic_record_add },

    { NGX_HTTP_DELETE,
      { "appointments", "*", "record", "prescriptions", "*" },
      ngx_http_teleclinic_record_drop },

    { NGX_HTTP_POST, { "appointments", "*", "record", "orders" },
      ngx_http_teleclinic_record_add },

    { NGX_HTTP_DELETE, { "appointments", "*", "record", "orders", "*" },
      ngx_http_teleclinic_record_drop },

    { NGX_HTTP_POST, { "appointments", "*", "record", "followups" },
      ngx_http_teleclinic_record_add },

    { NGX_HTTP_POST, { "appointments", "*", "record", "addenda" },
      ngx_http_teleclinic_record_add },

    { NGX_HTTP_POST, { "appointments", "*", "record", "snapshots" },
      ngx_http_teleclinic_record_snapshot },

    { NGX_HTTP_GET,
      { "appointments", "*", "record", "snapshots", "*" },
      ngx_http_teleclinic_record_image },

    { NGX_HTTP_POST, { "appointments", "*", "rating" },
      ngx_http_teleclinic_rating },

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

    { NGX_HTTP_GET, { "doctor", "login" },
      ngx_http_teleclinic_login_ways },

    { NGX_HTTP_POST, { "doctor", "login" },
      ngx_http_teleclinic_login },

    { NGX_HTTP_GET, { "doctor", "appointments" },
      ngx_http_teleclinic_doctor_day },

    { NGX_HTTP_GET, { "formulary" },
      ngx_http_teleclinic_formulary },

    { NGX_HTTP_GET, { "exams" },
      ngx_http_teleclinic_exams },

    { 0, { NULL }, NULL }
};


ngx_int_t
ngx_http_teleclinic_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_uint_t                        allowed;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_call_t       *call;
    ngx_http_teleclinic_route_t      *route;

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

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "teleclinic api: %V \"%V\" %s", &r->method_name, &r->uri,
                   route ? "routed" : "not routed");

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

    if (r->headers_in.content_length_n
        > (off_t) ngx_http_teleclinic_body_max(r, route))
    {
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

    rc = ngx_http_teleclinic_body(r, &call.body,
                                  ngx_http_teleclinic_body_max(r, route));

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "teleclinic api: body read: %i, %uz bytes",
                   rc, call.body.len);

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


/* a snapshot's image has a limit of its own, larger than any JSON's */

static size_t
ngx_http_teleclinic_body_max(ngx_http_request_t *r,
    ngx_http_teleclinic_route_t *route)
{
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    return (route->handler == ngx_http_teleclinic_record_snapshot)
           ? tmcf->snapshot_max : tmcf->body_max;
}


/* the doctor console lives in ngx_http_teleclinic_doctor.c */

static ngx_int_t
ngx_http_teleclinic_login(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    return ngx_http_teleclinic_doctor_login(r, &call->body);
}


static ngx_int_t
ngx_http_teleclinic_login_ways(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    return ngx_http_teleclinic_doctor_login_ways(r);
}
