
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_BOOKING_H_INCLUDED_
#define _NGX_TELECLINIC_BOOKING_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_teleclinic.h"
#include "ngx_teleclinic_zone.h"
#include "ngx_teleclinic_journal.h"
#include "ngx_teleclinic_directory.h"
#include "ngx_teleclinic_request.h"
#include "ngx_http_teleclinic_websocket.h"
#include "ngx_teleclinic_room.h"


typedef struct {
    ngx_shm_zone_t               *shm_zone;
    ngx_teleclinic_journal_t      journal;
    ngx_teleclinic_keys_t         keys;       /* patient data at rest */
    ngx_str_t                     directory_file;
    ngx_str_t                     token_secret;
    ngx_str_t                     token_secret_file;
    time_t                        token_ttl;
    ngx_str_t                     admin_key;
    size_t                        body_max;
    ngx_str_t                     public_url;
    time_t                        reminder_before;
    time_t                        horizon;
    ngx_url_t                    *notify_url;
    ngx_str_t                     notify_secret;
    ngx_msec_t                    notify_timeout;
    ngx_str_t                     thread_pool;
    time_t                        doctor_session;
    ngx_uint_t                    login_queue;  /* KDFs per worker */
    ngx_teleclinic_room_conf_t    room;
} ngx_http_teleclinic_main_conf_t;


typedef struct {
    ngx_flag_t                    api;
    ngx_http_complex_value_t     *doctor_identity;
    ngx_teleclinic_ws_conf_t      ws;
} ngx_http_teleclinic_loc_conf_t;


/* what the embedded variables show of a request */
typedef struct {
    uint64_t                      appt;
    ngx_str_t                     actor;
    ngx_str_t                     action;
    ngx_uint_t                    status;
    ngx_str_t                     response;
    ngx_teleclinic_journal_waiter_t  waiter;
} ngx_http_teleclinic_ctx_t;


extern ngx_module_t  ngx_http_teleclinic_module;


ngx_int_t ngx_http_teleclinic_api_handler(ngx_http_request_t *r);

/* sends {"error": {"code", "message"[, "field"]}} with the status */
ngx_int_t ngx_http_teleclinic_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message, const char *field);

/* sends a JSON text as it is, with the status */
ngx_int_t ngx_http_teleclinic_send_text(ngx_http_request_t *r,
    ngx_uint_t status, u_char *data, size_t len);

ngx_teleclinic_directory_t *ngx_http_teleclinic_directory(
    ngx_http_teleclinic_main_conf_t *tmcf, ngx_log_t *log);
ngx_teleclinic_zone_t *ngx_http_teleclinic_zone(
    ngx_http_teleclinic_main_conf_t *tmcf);

/* the patient's join link and guide link, from teleclinic_public_url */
u_char *ngx_http_teleclinic_join_url(ngx_http_teleclinic_main_conf_t *tmcf,
    ngx_str_t *base, u_char *p, uint64_t id, u_char *token, size_t len);


#endif /* _NGX_TELECLINIC_BOOKING_H_INCLUDED_ */
