
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_teleclinic_util.h"
#include "ngx_teleclinic_record.h"
#include "ngx_teleclinic_snapshot.h"
#include "ngx_http_teleclinic_record.h"
#include "ngx_http_teleclinic_api.h"
#include "ngx_http_teleclinic_catalog.h"
#include "ngx_http_teleclinic_notify.h"
#include "ngx_http_teleclinic_session.h"
#include "ngx_teleclinic_token.h"
#include "ngx_http_teleclinic_metrics.h"
#include "ngx_teleclinic_kdf.h"


static ngx_int_t ngx_http_teleclinic_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_teleclinic_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static void *ngx_http_teleclinic_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_teleclinic_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_teleclinic_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_teleclinic_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_teleclinic_zone_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_teleclinic_journal_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_teleclinic_notify_url(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_teleclinic_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_teleclinic_ice_servers(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_teleclinic_data_key_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_teleclinic_redis_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_teleclinic_redis_sentinel(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_teleclinic_redis_conf_t *ngx_http_teleclinic_redis_conf(
    ngx_conf_t *cf, ngx_http_teleclinic_main_conf_t *tmcf);
static char *ngx_http_teleclinic_read_secret(ngx_conf_t *cf, ngx_str_t *file,
    ngx_str_t *secret, const char *directive);
static ngx_int_t ngx_http_teleclinic_zone_init(ngx_teleclinic_zone_t *zone);
static ngx_int_t ngx_http_teleclinic_zone_open(ngx_teleclinic_zone_t *zone);
static ngx_int_t ngx_http_teleclinic_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_teleclinic_init_process(ngx_cycle_t *cycle);
static void ngx_http_teleclinic_exit_process(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_http_teleclinic_body_bounds = {
    ngx_conf_check_num_bounds, 256, 1024 * 1024
};

/* an image is held in memory while it is checked, sealed and written */
static ngx_conf_num_bounds_t  ngx_http_teleclinic_snapshot_bounds = {
    ngx_conf_check_num_bounds, 1024, 64 * 1024 * 1024
};

static ngx_conf_num_bounds_t  ngx_http_teleclinic_login_queue_bounds = {
    ngx_conf_check_num_bounds, 1, 1024
};


/* the zone reaches the journal, the directory and the rooms through these */
static ngx_teleclinic_zone_handlers_t  ngx_http_teleclinic_zone_handlers = {
    ngx_http_teleclinic_zone_init,
    ngx_http_teleclinic_zone_open,
    ngx_teleclinic_room_visit_locked,
    ngx_teleclinic_room_average_locked,
    ngx_teleclinic_room_snapshot_locked,
    ngx_teleclinic_record_apply_locked,
    ngx_teleclinic_record_snapshot_locked
};


/* the WebSocket transport hands its connections to the waiting room */
static ngx_teleclinic_ws_handler_t  ngx_http_teleclinic_ws_session = {
    ngx_teleclinic_session_open,
    ngx_teleclinic_session_message,
    ngx_teleclinic_session_close
};


static ngx_command_t  ngx_http_teleclinic_commands[] = {

    { ngx_string("teleclinic_directory"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, directory_file),
      NULL },

    { ngx_string("teleclinic_formulary"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_teleclinic_formulary_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("teleclinic_token_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, token_secret),
      NULL },

    { ngx_string("teleclinic_data_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_teleclinic_data_key_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("teleclinic_token_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, token_secret_file),
      NULL },

    { ngx_string("teleclinic_token_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, token_ttl),
      NULL },

    { ngx_string("teleclinic_admin_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, admin_key),
      NULL },

    { ngx_string("teleclinic_body_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, body_max),
      &ngx_http_teleclinic_body_bounds },

    { ngx_string("teleclinic_snapshot_consent_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, consent_timeout),
      NULL },

    { ngx_string("teleclinic_snapshot_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, snapshot_max),
      &ngx_http_teleclinic_snapshot_bounds },

    { ngx_string("teleclinic_snapshot_path"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, snapshot_path),
      NULL },

    { ngx_string("teleclinic_public_url"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, public_url),
      NULL },

    { ngx_string("teleclinic_reminder_before"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, reminder_before),
      NULL },

    { ngx_string("teleclinic_booking_horizon"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, horizon),
      NULL },

    { ngx_string("teleclinic_notify_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, notify_secret),
      NULL },

    { ngx_string("teleclinic_notify_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, notify_timeout),
      NULL },

    { ngx_string("teleclinic_doctor_session"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, doctor_session),
      NULL },

    { ngx_string("teleclinic_doctor_login_queue"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, login_queue),
      &ngx_http_teleclinic_login_queue_bounds },

    { ngx_string("teleclinic_doctor_identity"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_loc_conf_t, doctor_identity),
      NULL },

    { ngx_string("teleclinic_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_teleclinic_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("teleclinic_node"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, mirror.node),
      NULL },

    { ngx_string("teleclinic_journal"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_teleclinic_journal_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("teleclinic_notify_url"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_teleclinic_notify_url,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, notify_url),
      NULL },

    { ngx_string("teleclinic_records_url"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_teleclinic_notify_url,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, records_url),
      NULL },

    { ngx_string("teleclinic_record_retention"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, record_retention),
      NULL },

    { ngx_string("teleclinic_records_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, records_secret),
      NULL },

    { ngx_string("teleclinic_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_teleclinic_redis_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("teleclinic_redis_sentinel"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_teleclinic_redis_sentinel,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("teleclinic_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_teleclinic_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("teleclinic_websocket"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_teleclinic_ws_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("teleclinic_websocket_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_teleclinic_ws_origins_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("teleclinic_websocket_ping"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_loc_conf_t, ws.ping),
      NULL },

    { ngx_string("teleclinic_websocket_hello_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_loc_conf_t, ws.hello_timeout),
      NULL },

    { ngx_string("teleclinic_websocket_max_message"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_loc_conf_t, ws.max_message),
      NULL },

    { ngx_string("teleclinic_websocket_send_buffer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_loc_conf_t, ws.send_buffer),
      NULL },

    { ngx_string("teleclinic_websocket_rate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_teleclinic_ws_rate_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("teleclinic_checkin_open"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, room.checkin_open),
      NULL },

    { ngx_string("teleclinic_grace"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, room.grace),
      NULL },

    { ngx_string("teleclinic_ring_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, room.ring_timeout),
      NULL },

    { ngx_string("teleclinic_ice_servers"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_teleclinic_ice_servers,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("teleclinic_turn_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, room.turn_secret),
      NULL },

    { ngx_string("teleclinic_turn_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, room.turn_secret_file),
      NULL },

    { ngx_string("teleclinic_turn_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_teleclinic_main_conf_t, room.turn_ttl),
      NULL },

    { ngx_string("teleclinic_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_teleclinic_metrics_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_teleclinic_module_ctx = {
    ngx_http_teleclinic_add_variables,     /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_teleclinic_create_main_conf,  /* create main configuration */
    ngx_http_teleclinic_init_main_conf,    /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_teleclinic_create_loc_conf,   /* create location configuration */
    ngx_http_teleclinic_merge_loc_conf     /* merge location configuration */
};


ngx_module_t  ngx_http_teleclinic_module = {
    NGX_MODULE_V1,
    &ngx_http_teleclinic_module_ctx,       /* module context */
    ngx_http_teleclinic_commands,          /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_teleclinic_init_module,       /* init module */
    ngx_http_teleclinic_init_process,      /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_teleclinic_exit_process,      /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_teleclinic_vars[] = {

    { ngx_string("teleclinic_appointment"), NULL,
      ngx_http_teleclinic_variable,
      offsetof(ngx_http_teleclinic_ctx_t, appt), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("teleclinic_actor"), NULL,
      ngx_http_teleclinic_variable,
      offsetof(ngx_http_teleclinic_ctx_t, actor), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("teleclinic_action"), NULL,
      ngx_http_teleclinic_variable,
      offsetof(ngx_http_teleclinic_ctx_t, action),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_teleclinic_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_teleclinic_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_teleclinic_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                     *p;
    ngx_str_t                  *s;
    ngx_http_teleclinic_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (data == offsetof(ngx_http_teleclinic_ctx_t, appt)) {
        if (ctx->appt == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        p = ngx_pnalloc(r->pool, NGX_TELECLINIC_APPT_ID_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_teleclinic_appt_id_print(p, ctx->appt);

        v->data = p;
        v->len = NGX_TELECLINIC_APPT_ID_LEN;

    } else {
        s = (ngx_str_t *) ((u_char *) ctx + data);

        if (s->len == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->data = s->data;
        v->len = s->len;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static void *
ngx_http_teleclinic_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_teleclinic_main_conf_t));
    if (tmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     tmcf->shm_zone = NULL;
     *     tmcf->journal.path = { 0, NULL };
     *     tmcf->notify_url = NULL;
     *     ...
     */

    tmcf->journal.fd = NGX_INVALID_FILE;
    tmcf->journal.fsync = NGX_CONF_UNSET;
    tmcf->token_ttl = NGX_CONF_UNSET;
    tmcf->body_max = NGX_CONF_UNSET_SIZE;
    tmcf->snapshot_max = NGX_CONF_UNSET_SIZE;
    tmcf->consent_timeout = NGX_CONF_UNSET;
    tmcf->reminder_before = NGX_CONF_UNSET;
    tmcf->horizon = NGX_CONF_UNSET;
    tmcf->notify_timeout = NGX_CONF_UNSET_MSEC;
    tmcf->record_retention = NGX_CONF_UNSET;
    tmcf->doctor_session = NGX_CONF_UNSET;
    tmcf->login_queue = NGX_CONF_UNSET_UINT;
    tmcf->room.checkin_open = NGX_CONF_UNSET;
    tmcf->room.grace = NGX_CONF_UNSET;
    tmcf->room.ring_timeout = NGX_CONF_UNSET;
    tmcf->room.ice_servers = NGX_CONF_UNSET_PTR;
    tmcf->room.turn_ttl = NGX_CONF_UNSET;

    return tmcf;
}


static char *
ngx_http_teleclinic_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_teleclinic_main_conf_t *tmcf = conf;

    ngx_teleclinic_zone_t        *zone;
    ngx_teleclinic_redis_conf_t  *rc;

    ngx_conf_init_value(tmcf->token_ttl, 7 * 86400);
    ngx_conf_init_size_value(tmcf->body_max, 16 * 1024);
    ngx_conf_init_size_value(tmcf->snapshot_max, 2 * 1024 * 1024);
    ngx_conf_init_value(tmcf->consent_timeout, 120);
    ngx_conf_init_value(tmcf->reminder_before, 3600);
    ngx_conf_init_value(tmcf->horizon, 60 * 86400);
    ngx_conf_init_msec_value(tmcf->notify_timeout, 5000);
    ngx_conf_init_value(tmcf->record_retention, 30 * 86400);
    ngx_conf_init_value(tmcf->journal.fsync, 1);
    ngx_conf_init_value(tmcf->doctor_session, 12 * 3600);
    ngx_conf_init_uint_value(tmcf->login_queue, 8);
    ngx_conf_init_value(tmcf->room.checkin_open, 15 * 60);
    ngx_conf_init_value(tmcf->room.grace, 60);
    ngx_conf_init_value(tmcf->room.ring_timeout, 30);
    ngx_conf_init_ptr_value(tmcf->room.ice_servers, NULL);
    ngx_conf_init_value(tmcf->room.turn_ttl, 3600);

    if (tmcf->redis) {
        rc = tmcf->redis;

        if (rc->addr == NULL && rc->sentinels == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"teleclinic_redis sentinel\" needs "
                               "\"teleclinic_redis_sentinel\"");
            return NGX_CONF_ERROR;
        }

        if (rc->addr && rc->sentinels) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"teleclinic_redis\" with sentinels takes "
                               "\"sentinel\" instead of an address");
            return NGX_CONF_ERROR;
        }

        ngx_conf_init_uint_value(rc->database, 0);
        ngx_conf_init_msec_value(rc->connect_timeout, 1000);
        ngx_conf_init_msec_value(rc->timeout, 1000);
        ngx_conf_init_msec_value(rc->snapshot, 600000);
    }

    if (tmcf->shm_zone == NULL) {
        return NGX_CONF_OK;
    }

    /* durable by default: a journal under the prefix unless configured */

    if (tmcf->journal.path.data == NULL) {
        ngx_str_set(&tmcf->journal.path, "teleclinic/journal");
    }

    if (ngx_conf_full_name(cf->cycle, &tmcf->journal.path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* the snapshots' images, beside it */

    if (tmcf->snapshot_path.data == NULL) {
        ngx_str_set(&tmcf->snapshot_path, "teleclinic/snapshots");
    }

    if (ngx_conf_full_name(cf->cycle, &tmcf->snapshot_path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

#if (NGX_THREADS)
    if (tmcf->journal.fsync) {
        tmcf->journal.thread_pool = ngx_thread_pool_add(cf,
                                          tmcf->thread_pool.len
                                          ? &tmcf->thread_pool : NULL);
        if (tmcf->journal.thread_pool == NULL) {
            return NGX_CONF_ERROR;
        }
    }
#endif

    if (tmcf->directory_file.len
        && ngx_conf_full_name(cf->cycle, &tmcf->directory_file, 1) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    zone = tmcf->shm_zone->data;
    zone->handlers = &ngx_http_teleclinic_zone_handlers;
    zone->journal = &tmcf->journal;
    zone->directory_file = tmcf->directory_file;
    zone->snapshot_path = tmcf->snapshot_path;
    zone->snapshot_dir = NGX_INVALID_FILE;
    zone->reminder_before = tmcf->reminder_before;
    zone->notify = (tmcf->notify_url != NULL);
    zone->emr = (tmcf->records_url != NULL);

    if (ngx_http_teleclinic_read_secret(cf, &tmcf->token_secret_file,
                                        &tmcf->token_secret,
                                        "teleclinic_token_secret")
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_teleclinic_read_secret(cf, &tmcf->room.turn_secret_file,
                                        &tmcf->room.turn_secret,
                                        "teleclinic_turn_secret")
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (tmcf->room.turn_secret.len && tmcf->room.turn_secret.len < 16) {
        return "needs a \"teleclinic_turn_secret\" of at least 16 "
               "characters";
    }

    if (tmcf->token_secret.len < 16) {
        return "needs \"teleclinic_token_secret\" or "
               "\"teleclinic_token_secret_file\" of at least 16 characters";
    }

    if (tmcf->admin_key.len && tmcf->admin_key.len < 16) {
        return "needs a \"teleclinic_admin_key\" of at least 16 characters";
    }

    if (tmcf->mirror.node.len
        && (tmcf->mirror.node.len > NGX_TELECLINIC_NODE_MAX
            || ngx_teleclinic_id_valid(tmcf->mirror.node.data,
                                       tmcf->mirror.node.len)
               != NGX_OK))
    {
        return "needs a \"teleclinic_node\" of lowercase letters, digits "
               "and inner dashes, up to 32";
    }

    tmcf->mirror.redis = tmcf->redis;
    tmcf->mirror.url = tmcf->public_url;

    if (ngx_teleclinic_mirror_conf(cf, &tmcf->mirror,
                                   &tmcf->shm_zone->shm.name)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* what goes to Redis is the journal's lines: sealed, never clear */
    if (tmcf->redis && tmcf->journal.keys == NULL) {
        return "needs \"teleclinic_data_key_file\" with "
               "\"teleclinic_redis\": patient data leaves the node sealed";
    }

    /* a group's message ids name their node */
    zone->self = tmcf->redis
                 ? ngx_teleclinic_node_hash(tmcf->mirror.node.data,
                                            tmcf->mirror.node.len)
                 : 0;

    if (tmcf->notify_url && tmcf->public_url.len == 0) {
        return "needs \"teleclinic_public_url\" for the links in "
               "notifications";
    }

    if (tmcf->notify_url && tmcf->notify_secret.len < 16) {
        return "needs a \"teleclinic_notify_secret\" of at least 16 "
               "characters to sign notifications";
    }

    /* the EMR's identifiers are made under the public URL */
    if (tmcf->records_url && tmcf->public_url.len == 0) {
        return "needs \"teleclinic_public_url\" for \"teleclinic_records_url\"";
    }

    if (tmcf->records_url && tmcf->records_secret.len < 16) {
        return "needs a \"teleclinic_records_secret\" of at least 16 "
               "characters to sign the records";
    }

    while (tmcf->public_url.len
           && tmcf->public_url.data[tmcf->public_url.len - 1] == '/')
    {
        tmcf->public_url.len--;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_teleclinic_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_teleclinic_loc_conf_t  *tlcf;

    tlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_teleclinic_loc_conf_t));
    if (tlcf == NULL) {
        return NULL;
    }

    tlcf->api = NGX_CONF_UNSET;
    tlcf->doctor_identity = NGX_CONF_UNSET_PTR;
    ngx_teleclinic_ws_conf_init(&tlcf->ws);
    tlcf->ws.handler = &ngx_http_teleclinic_ws_session;

    return tlcf;
}


static char *
ngx_http_teleclinic_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_teleclinic_loc_conf_t *prev = parent;
    ngx_http_teleclinic_loc_conf_t *conf = child;

    ngx_conf_merge_value(conf->api, prev->api, 0);
    ngx_conf_merge_ptr_value(conf->doctor_identity, prev->doctor_identity,
                             NULL);
    ngx_teleclinic_ws_conf_merge(&conf->ws, &prev->ws);

    return NGX_CONF_OK;
}


/* teleclinic_zone name size; */

static char *
ngx_http_teleclinic_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_teleclinic_main_conf_t *tmcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    value = cf->args->elts;

    if (tmcf->shm_zone) {
        return "is duplicate";
    }

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    tmcf->shm_zone = ngx_teleclinic_zone_add(cf, &value[1], size,
                                             &ngx_http_teleclinic_module);
    if (tmcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* teleclinic_journal path [fsync=on|off] [thread_pool=name]; */

static char *
ngx_http_teleclinic_journal_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_teleclinic_main_conf_t *tmcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    value = cf->args->elts;

    if (tmcf->journal.path.data) {
        return "is duplicate";
    }

    tmcf->journal.path = value[1];

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "fsync=on") == 0) {
            tmcf->journal.fsync = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "fsync=off") == 0) {
            tmcf->journal.fsync = 0;
            continue;
        }

        if (ngx_strncmp(value[i].data, "thread_pool=", 12) == 0) {
            tmcf->thread_pool.data = value[i].data + 12;
            tmcf->thread_pool.len = value[i].len - 12;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_teleclinic_notify_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    ngx_str_t   *value;
    ngx_url_t   *u, **field;

    value = cf->args->elts;
    field = (ngx_url_t **) (p + cmd->offset);

    if (*field) {
        return "is duplicate";
    }

    if (ngx_strncmp(value[1].data, "http://", 7) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the URL \"%V\" must start with http://",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    u = ngx_pcalloc(cf->pool, sizeof(ngx_url_t));
    if (u == NULL) {
        return NGX_CONF_ERROR;
    }

    u->url.data = value[1].data + 7;
    u->url.len = value[1].len - 7;
    u->default_port = 80;
    u->uri_part = 1;

    /* resolved once here: a worker must not block on DNS */
    if (ngx_parse_url(cf->pool, u) != NGX_OK) {
        if (u->err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"%V\"", u->err, &value[1]);
        }

        return NGX_CONF_ERROR;
    }

    if (u->uri.len == 0) {
        ngx_str_set(&u->uri, "/");
    }

    *field = u;

    return NGX_CONF_OK;
}


static char *
ngx_http_teleclinic_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_teleclinic_loc_conf_t *tlcf = conf;

    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    if (tlcf->api != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_teleclinic_module);

    if (tmcf->shm_zone == NULL) {
        return "needs a \"teleclinic_zone\" before it";
    }

    tlcf->api = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_teleclinic_api_handler;

    return NGX_CONF_OK;
}


/* a secret given directly or in its file, not both */

static char *
ngx_http_teleclinic_read_secret(ngx_conf_t *cf, ngx_str_t *file,
    ngx_str_t *secret, const char *directive)
{
    if (file->len == 0) {
        return NGX_CONF_OK;
    }

    if (secret->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "both \"%s\" and \"%s_file\" are set",
                           directive, directive);
        return NGX_CONF_ERROR;
    }

    return ngx_teleclinic_secret_file(cf, file, secret);
}


/*
 * teleclinic_data_key_file file [old_file ...]; the first seals, the
 * others only open what they sealed, during a rotation
 */

static char *
ngx_http_teleclinic_data_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_teleclinic_main_conf_t *tmcf = conf;

    ngx_str_t              *value, text;
    ngx_uint_t              i, j;
    const char             *err;
    ngx_pool_cleanup_t     *cln;
    ngx_teleclinic_key_t   *key;

    if (tmcf->journal.keys) {
        return "is duplicate";
    }

    if (cf->args->nelts - 1 > NGX_TELECLINIC_KEYS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "at most %d key files", NGX_TELECLINIC_KEYS_MAX);
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_teleclinic_secret_file(cf, &value[i], &text) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }

        key = &tmcf->keys.keys[i - 1];

        if (ngx_teleclinic_key_parse(text.data, text.len, key, &err)
            != NGX_OK)
        {
            ngx_explicit_memzero(text.data, text.len);
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the data key \"%V\" is %s", &value[i], err);
            return NGX_CONF_ERROR;
        }

        ngx_explicit_memzero(text.data, text.len);

        for (j = 0; j < i - 1; j++) {
            if (ngx_memcmp(tmcf->keys.keys[j].kid, key->kid,
                           NGX_TELECLINIC_KID_LEN)
                == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "the data key \"%V\" is given twice",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }
        }
    }

    tmcf->keys.nkeys = cf->args->nelts - 1;
    tmcf->journal.keys = &tmcf->keys;

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_teleclinic_keys_cleanup;
    cln->data = &tmcf->keys;

    return NGX_CONF_OK;
}


static char *
ngx_http_teleclinic_ice_servers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_teleclinic_main_conf_t *tmcf = conf;

    ngx_str_t   *value, *url;
    ngx_uint_t   i;

    if (tmcf->room.ice_servers != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    tmcf->room.ice_servers = ngx_array_create(cf->pool, cf->args->nelts,
                                              sizeof(ngx_str_t));
    if (tmcf->room.ice_servers == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "stun:", 5) != 0
            && ngx_strncmp(value[i].data, "turn:", 5) != 0
            && ngx_strncmp(value[i].data, "turns:", 6) != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" is not a stun:, turn: or turns: URL",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        url = ngx_array_push(tmcf->room.ice_servers);
        if (url == NULL) {
            return NGX_CONF_ERROR;
        }

        *url = value[i];
    }

    return NGX_CONF_OK;
}


/*
 * teleclinic_redis address|sentinel [password=text] [db=number]
 *     [connect_timeout=time] [timeout=time];
 */

static char *
ngx_http_teleclinic_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_teleclinic_main_conf_t *tmcf = conf;

    u_char                       *eq;
    size_t                        len;
    ngx_int_t                     n;
    ngx_str_t                    *value, s;
    ngx_uint_t                    i;
    ngx_msec_t                   *ms;
    ngx_teleclinic_redis_conf_t  *rc;

    rc = ngx_http_teleclinic_redis_conf(cf, tmcf);
    if (rc == NULL) {
        return NGX_CONF_ERROR;
    }

    /* teleclinic_redis_sentinel alone leaves them unset */
    if (rc->timeout != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    rc->database = 0;
    rc->connect_timeout = 1000;
    rc->timeout = 1000;
    rc->snapshot = 600000;

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "sentinel") != 0
        && ngx_teleclinic_redis_parse_addr(cf, &value[1], &rc->addr)
           != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            rc->password.data = value[i].data + 9;
            rc->password.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            rc->database = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "replicas=", 9) == 0) {
            n = ngx_atoi(value[i].data + 9, value[i].len - 9);
            if (n == NGX_ERROR || n > 16) {
                goto invalid;
            }

            rc->replicas = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            s.data = value[i].data + 16;
            s.len = value[i].len - 16;
            ms = &rc->connect_timeout;

        } else if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;
            ms = &rc->timeout;

        } else if (ngx_strncmp(value[i].data, "snapshot=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;
            ms = &rc->snapshot;

        } else {
            goto invalid;
        }

        *ms = ngx_parse_time(&s, 0);
        if (*ms == (ngx_msec_t) NGX_ERROR || *ms == 0) {
            goto invalid;
        }
    }

    return NGX_CONF_OK;

invalid:

    /* the name only: the value may be the password */
    eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');
    len = eq ? (size_t) (eq - value[i].data + 1) : value[i].len;

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%*s\"",
                       len, value[i].data);
    return NGX_CONF_ERROR;
}


/* teleclinic_redis_sentinel address ... master=name; */

static char *
ngx_http_teleclinic_redis_sentinel(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_teleclinic_main_conf_t *tmcf = conf;

    ngx_str_t                    *value;
    ngx_uint_t                    i;
    ngx_addr_t                   *addr, *parsed;
    ngx_teleclinic_redis_conf_t  *rc;

    rc = ngx_http_teleclinic_redis_conf(cf, tmcf);
    if (rc == NULL) {
        return NGX_CONF_ERROR;
    }

    if (rc->sentinels) {
        return "is duplicate";
    }

    rc->sentinels = ngx_array_create(cf->pool, cf->args->nelts,
                                     sizeof(ngx_addr_t));
    if (rc->sentinels == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "master=", 7) == 0) {
            rc->master.data = value[i].data + 7;
            rc->master.len = value[i].len - 7;
            continue;
        }

        if (ngx_teleclinic_redis_parse_addr(cf, &value[i], &parsed)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }

        addr = ngx_array_push(rc->sentinels);
        if (addr == NULL) {
            return NGX_CONF_ERROR;
        }

        *addr = *parsed;
    }

    if (rc->master.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"teleclinic_redis_sentinel\" needs master=");
        return NGX_CONF_ERROR;
    }

    if (rc->sentinels->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"teleclinic_redis_sentinel\" needs an address");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_teleclinic_redis_conf_t *
ngx_http_teleclinic_redis_conf(ngx_conf_t *cf,
    ngx_http_teleclinic_main_conf_t *tmcf)
{
    ngx_teleclinic_redis_conf_t  *rc;

    if (tmcf->redis) {
        return tmcf->redis;
    }

    rc = ngx_pcalloc(cf->pool, sizeof(ngx_teleclinic_redis_conf_t));
    if (rc == NULL) {
        return NULL;
    }

    rc->database = NGX_CONF_UNSET_UINT;
    rc->connect_timeout = NGX_CONF_UNSET_MSEC;
    rc->timeout = NGX_CONF_UNSET_MSEC;
    rc->snapshot = NGX_CONF_UNSET_MSEC;

    tmcf->redis = rc;

    return rc;
}


/* a new zone, in init_zone: the state of the rooms and of the bus */

static ngx_int_t
ngx_http_teleclinic_zone_init(ngx_teleclinic_zone_t *zone)
{
    if (ngx_teleclinic_room_init_zone(zone) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_teleclinic_bus_init_zone(zone);
}


/*
 * In init_zone, at start and on a reload, so that a failure refuses the
 * configuration and the old one goes on: the journal is opened (and, in
 * a new zone, replayed), the snapshot directory opened (and, once the
 * journal is replayed, swept of files no record names: only at start,
 * when no worker is between an image's fsync and its event) and a
 * changed directory file checked.
 */

static ngx_int_t
ngx_http_teleclinic_zone_open(ngx_teleclinic_zone_t *zone)
{
    ngx_uint_t  fresh;

    /* the replay clears it */
    fresh = zone->fresh;

    if (ngx_teleclinic_journal_open(zone->cycle, zone, zone->fresh)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_teleclinic_snapshot_open(zone->cycle, zone, fresh) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_teleclinic_directory_check(zone->cycle, zone);
}


/* the new cycle is accepted: what init_zone checked is applied */

static ngx_int_t
ngx_http_teleclinic_init_module(ngx_cycle_t *cycle)
{
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_teleclinic_module);

    if (tmcf == NULL || tmcf->shm_zone == NULL || ngx_test_config) {
        return NGX_OK;
    }

    return ngx_teleclinic_directory_seed(cycle, tmcf->shm_zone->data);
}


static ngx_int_t
ngx_http_teleclinic_init_process(ngx_cycle_t *cycle)
{
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_teleclinic_module);

    if (tmcf == NULL) {
        return NGX_OK;
    }

    if (tmcf->shm_zone == NULL) {
        return NGX_OK;
    }

    /*
     * slots follow local time: "env TZ=...;" sets it for the workers, and
     * localtime_r() reads TZ only when told to
     */
    tzset();

    if (ngx_teleclinic_journal_init_process(cycle, &tmcf->journal)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_teleclinic_mirror_init_process(cycle, tmcf->shm_zone->data,
                                           &tmcf->mirror)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_teleclinic_relay_init_process(cycle, tmcf,
                                               &ngx_http_teleclinic_ws_session)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_teleclinic_session_init_process(cycle) != NGX_OK
        || ngx_http_teleclinic_record_init_process(cycle, tmcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_teleclinic_notify_init_process(cycle, tmcf);
}


static void
ngx_http_teleclinic_exit_process(ngx_cycle_t *cycle)
{
#if (NGX_THREADS)
    ngx_teleclinic_kdf_exit_process(cycle);
#endif
    ngx_teleclinic_session_exit_process(cycle);
    ngx_teleclinic_notify_exit_process(cycle);
    ngx_http_teleclinic_relay_exit_process(cycle);
    ngx_teleclinic_mirror_exit_process(cycle);
}
