
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include "ngx_http_teleclinic_util.h"
#include "ngx_http_teleclinic_catalog.h"
#include "ngx_teleclinic_formulary.h"


static ngx_int_t ngx_http_teleclinic_catalog_auth(ngx_http_request_t *r,
    ngx_teleclinic_formulary_t **f, ngx_teleclinic_error_t *err);


/*
 * teleclinic_formulary file;
 *
 * Read here, into the cycle's pool: a reload reads it again into the new
 * cycle, and an invalid file refuses the configuration with the reason
 * while the old workers go on with the old one.  Nothing of it is shared:
 * each worker reads its own copy, without a lock.
 */

char *
ngx_http_teleclinic_formulary_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_teleclinic_main_conf_t *tmcf = conf;

    u_char                          *text;
    size_t                           len;
    ssize_t                          n;
    ngx_fd_t                         fd;
    ngx_str_t                       *value, name;
    ngx_file_info_t                  fi;
    ngx_teleclinic_formulary_t      *f;
    ngx_teleclinic_formulary_err_t   err;

    if (tmcf->formulary) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%s\" failed", name.data);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > NGX_TELECLINIC_FORMULARY_MAX)
    {
        ngx_close_file(fd);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the formulary \"%s\" is not a file of at most 4m",
                           name.data);
        return NGX_CONF_ERROR;
    }

    len = ngx_file_size(&fi);

    text = ngx_pnalloc(cf->temp_pool, len + 1);
    if (text == NULL) {
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    n = read(fd, text, len);
    ngx_close_file(fd);

    if (n != (ssize_t) len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "reading \"%s\" failed", name.data);
        return NGX_CONF_ERROR;
    }

    f = ngx_palloc(cf->pool, sizeof(ngx_teleclinic_formulary_t));
    if (f == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_teleclinic_formulary_parse(f, cf->pool, text, len, &err)
        != NGX_OK)
    {
        if (err.list) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid formulary \"%s\": %s[%ui]: %s",
                               name.data, err.list, err.item, err.message);

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid formulary \"%s\": %s",
                               name.data, err.message);
        }

        return NGX_CONF_ERROR;
    }

    tmcf->formulary = f;

    return NGX_CONF_OK;
}


/* a doctor or the admin; 404 when there is no teleclinic_formulary */

static ngx_int_t
ngx_http_teleclinic_catalog_auth(ngx_http_request_t *r,
    ngx_teleclinic_formulary_t **f, ngx_teleclinic_error_t *err)
{
    ngx_teleclinic_token_t            t;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    if (ngx_http_teleclinic_is_admin(r) != NGX_OK
        && ngx_http_teleclinic_doctor_auth(r, &t, err) != NGX_OK)
    {
        /* a 403 is for a valid token of another kind: a patient's */
        if (err->status == NGX_HTTP_FORBIDDEN) {
            ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);
            ngx_str_set(&ctx->actor, "patient");
        }

        return NGX_ERROR;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);

    if (tmcf->formulary == NULL) {
        return ngx_http_teleclinic_reject(err, NGX_HTTP_NOT_FOUND,
                                          "no_formulary",
                                          "no formulary is configured", NULL);
    }

    *f = tmcf->formulary;

    return NGX_OK;
}


ngx_int_t
ngx_http_teleclinic_formulary(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    u_char                       buf[NGX_TELECLINIC_QUERY_MAX];
    json_t                      *a;
    ngx_str_t                    q;
    ngx_uint_t                   i, n;
    ngx_teleclinic_drug_t       *hits[NGX_TELECLINIC_FORMULARY_HITS], *d;
    ngx_teleclinic_error_t       err;
    ngx_http_teleclinic_ctx_t   *ctx;
    ngx_teleclinic_formulary_t  *f;

    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);
    ngx_str_set(&ctx->action, "formulary");

    if (ngx_http_teleclinic_catalog_auth(r, &f, &err) != NGX_OK) {
        return ngx_http_teleclinic_fail(r, &err);
    }

    if (ngx_teleclinic_formulary_query(r->args.data, r->args.len, buf, &q,
                                       &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_fail(r, &err);
    }

    n = ngx_teleclinic_formulary_search(f, &q, hits,
                                        NGX_TELECLINIC_FORMULARY_HITS);

    /* the count only: what a doctor looks for is theirs */
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "teleclinic formulary: %ui drugs found", n);

    a = json_array();
    if (a == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < n; i++) {
        d = hits[i];

        if (json_array_append_new(a, json_pack("{s:s%, s:s%, s:s%, s:s%}",
                                               "id", d->id.data, d->id.len,
                                               "name", d->name.data,
                                               d->name.len,
                                               "form", d->form.data,
                                               d->form.len,
                                               "strength", d->strength.data,
                                               d->strength.len))
            != 0)
        {
            json_decref(a);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_teleclinic_send(r, NGX_HTTP_OK, a);
}


ngx_int_t
ngx_http_teleclinic_exams(ngx_http_request_t *r,
    ngx_http_teleclinic_call_t *call)
{
    json_t                      *a;
    ngx_uint_t                   i;
    ngx_teleclinic_exam_t       *e;
    ngx_teleclinic_error_t       err;
    ngx_http_teleclinic_ctx_t   *ctx;
    ngx_teleclinic_formulary_t  *f;

    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);
    ngx_str_set(&ctx->action, "exams");

    if (ngx_http_teleclinic_catalog_auth(r, &f, &err) != NGX_OK) {
        return ngx_http_teleclinic_fail(r, &err);
    }

    a = json_array();
    if (a == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < f->nexams; i++) {
        e = &f->exams[i];

        if (json_array_append_new(a, json_pack("{s:s%, s:s%}",
                                               "id", e->id.data, e->id.len,
                                               "name", e->name.data,
                                               e->name.len))
            != 0)
        {
            json_decref(a);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_teleclinic_send(r, NGX_HTTP_OK, a);
}
