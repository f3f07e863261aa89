
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include "ngx_http_teleclinic_util.h"
#include "ngx_http_teleclinic_booking.h"
#include "ngx_http_teleclinic_admin.h"
#include "ngx_http_teleclinic_notify.h"


static ngx_int_t ngx_http_teleclinic_directory_answer(ngx_http_request_t *r,
    ngx_http_teleclinic_change_t *change, ngx_str_t *text);
static ngx_int_t ngx_http_teleclinic_day(ngx_http_request_t *r,
    ngx_str_t *doctor, ngx_uint_t today);


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


ngx_int_t
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
    const char                       *err;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_event_t            ev;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_teleclinic_directory_t        dir;
    ngx_http_teleclinic_change_t      change;
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

    /* the answer counts the doctors of the document: nothing to copy */

    change.event = &ev;
    change.status = NGX_HTTP_OK;
    change.copy = NULL;
    change.format = ngx_http_teleclinic_directory_answer;
    change.durable = ngx_teleclinic_notify_kick;
    change.data = &dir;

    ngx_teleclinic_zone_lock(zone);

    /* the file's hash stays: only a changed file replaces this */
    ngx_memcpy(ev.hash, zone->sh->directory_file_hash, 32);

    return ngx_http_teleclinic_commit(r, zone, &change);
}


static ngx_int_t
ngx_http_teleclinic_directory_answer(ngx_http_request_t *r,
    ngx_http_teleclinic_change_t *change, ngx_str_t *text)
{
    ngx_teleclinic_directory_t  *dir;

    dir = change->data;

    text->data = ngx_pnalloc(r->pool, sizeof("{\"doctors\":}\n")
                                      + NGX_INT_T_LEN);
    if (text->data == NULL) {
        return NGX_ERROR;
    }

    text->len = ngx_sprintf(text->data, "{\"doctors\":%ui}\n",
                            dir->doctors.nelts)
                - text->data;

    return NGX_OK;
}


ngx_int_t
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

ngx_int_t
ngx_http_teleclinic_admin_entry(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    u_char                           *text;
    size_t                            i, len;
    json_t                           *doc, *list, *item, *entry, *v;
    ngx_int_t                         rc;
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

    /* the text is copied under the lock and parsed after it */

    ngx_teleclinic_zone_lock(zone);

    len = zone->sh->directory_len;
    text = ngx_pnalloc(r->pool, len + 1);

    if (text) {
        ngx_memcpy(text, zone->sh->directory, len);
    }

    ngx_teleclinic_zone_unlock(zone);

    doc = NULL;
    rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

    if (text == NULL) {
        goto failed;
    }

    doc = len ? json_loadb((char *) text, len, 0, &jerr)
              : json_pack("{s:[], s:[]}", "departments", "doctors");

    list = doc ? json_object_get(doc, call->seg[1].len == 7
                                      ? "doctors" : "departments")
               : NULL;

    if (!json_is_array(list)) {
        goto failed;
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
        rc = ngx_http_teleclinic_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                       "no such entry", NULL);
        goto failed;
    }

    json_decref(entry);
    entry = NULL;

    len = json_dumpb(doc, NULL, 0, JSON_COMPACT);
    text = ngx_pnalloc(r->pool, len + 1);

    if (text == NULL) {
        goto failed;
    }

    len = json_dumpb(doc, (char *) text, len, JSON_COMPACT);
    json_decref(doc);

    /*
     * two admins changing the directory at once: the later write wins,
     * as with a PUT of the whole document
     */
    return ngx_http_teleclinic_directory_store(r, text, len);

failed:

    json_decref(doc);
    json_decref(entry);

    return rc;
}


/* a doctor's day, as the admin sees it: ?date= is required */

ngx_int_t
ngx_http_teleclinic_admin_day(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    ngx_teleclinic_error_t  err;

    if (ngx_http_teleclinic_admin_only(r, &err) != NGX_OK) {
        return ngx_http_teleclinic_fail(r, &err);
    }

    return ngx_http_teleclinic_day(r, &call->seg[2], 0);
}


/*
 * the signed-in doctor's own day, for the console's list of today's
 * appointments: without ?date= the server's today, so that a browser
 * in another time zone still gets the clinic's day
 */

ngx_int_t
ngx_http_teleclinic_doctor_day(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    ngx_teleclinic_token_t  t;
    ngx_teleclinic_error_t  err;

    if (ngx_http_teleclinic_doctor_auth(r, &t, &err) != NGX_OK) {
        return ngx_http_teleclinic_fail(r, &err);
    }

    return ngx_http_teleclinic_day(r, &t.subject, 1);
}


/* the appointments that hold one of the doctor's slots on the day asked */

static ngx_int_t
ngx_http_teleclinic_day(ngx_http_request_t *r, ngx_str_t *doctor,
    ngx_uint_t today)
{
    u_char                           *p;
    size_t                            len;
    time_t                            from, to;
    ngx_int_t                         rc;
    ngx_str_t                         arg, text, *item;
    ngx_uint_t                        n;
    ngx_array_t                       appts, items;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_date_t             date;
    ngx_teleclinic_appt_t            *appt, *copy;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    /* the day lists patients' names and phones: the audit log says who */
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);
    ngx_str_set(&ctx->action, "day");

    rc = ngx_teleclinic_arg(r->args.data, r->args.len, "date", &arg);

    if (rc != NGX_OK && today) {
        ngx_teleclinic_date_of(ngx_time(), &date);

    } else if (rc != NGX_OK
               || ngx_teleclinic_date_parse(arg.data, arg.len, &date)
                  != NGX_OK)
    {
        return ngx_http_teleclinic_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_date",
                                         "date must be a day as YYYY-MM-DD",
                                         "date");
    }

    ngx_teleclinic_day_bounds(&date, &from, &to);

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);

    if (ngx_array_init(&appts, r->pool, 16, sizeof(ngx_teleclinic_appt_t))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = NGX_OK;

    /* copies under the lock, the answers made after it */

    ngx_teleclinic_zone_lock(zone);

    for (appt = ngx_teleclinic_slot_first(zone, doctor, from);
         appt && appt->start < to && rc == NGX_OK;
         appt = ngx_teleclinic_slot_next(zone, appt))
    {
        copy = ngx_array_push(&appts);

        rc = (copy == NULL) ? NGX_ERROR
                            : ngx_http_teleclinic_appt_copy(r->pool, appt,
                                                            copy);
    }

    ngx_teleclinic_zone_unlock(zone);

    if (rc != NGX_OK
        || ngx_array_init(&items, r->pool, appts.nelts + 1,
                          sizeof(ngx_str_t))
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("[]\n");
    copy = appts.elts;

    for (n = 0; n < appts.nelts && rc == NGX_OK; n++) {
        item = ngx_array_push(&items);

        rc = (item == NULL) ? NGX_ERROR
                            : ngx_http_teleclinic_appt_answer(r, &copy[n], 1,
                                                              0, item);
        if (rc == NGX_OK) {
            len += item->len;
        }
    }

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
