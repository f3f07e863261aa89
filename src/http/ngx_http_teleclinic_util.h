
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_HTTP_TELECLINIC_UTIL_H_INCLUDED_
#define _NGX_HTTP_TELECLINIC_UTIL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include "ngx_teleclinic.h"
#include "ngx_teleclinic_zone.h"
#include "ngx_teleclinic_journal.h"
#include "ngx_teleclinic_directory.h"
#include "ngx_teleclinic_request.h"
#include "ngx_teleclinic_room.h"
#include "ngx_teleclinic_mirror.h"
#include "ngx_teleclinic_token.h"
#include "ngx_teleclinic_formulary.h"
#include "ngx_teleclinic_redis.h"


typedef struct ngx_teleclinic_ws_handler_s  ngx_teleclinic_ws_handler_t;


/* the location's WebSocket settings, part of the module's loc conf */
typedef struct {
    ngx_teleclinic_ws_handler_t  *handler;      /* what the messages go to */
    ngx_flag_t                    enable;
    ngx_array_t                  *origins;      /* of ngx_str_t */
    ngx_msec_t                    ping;
    ngx_msec_t                    hello_timeout;
    size_t                        max_message;
    size_t                        send_buffer;
    ngx_uint_t                    rate;         /* messages per second */
    ngx_uint_t                    burst;
} ngx_teleclinic_ws_conf_t;


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
    size_t                        snapshot_max;
    time_t                        consent_timeout;  /* a granted one's */
    ngx_str_t                     snapshot_path;
    ngx_str_t                     public_url;
    time_t                        reminder_before;
    time_t                        horizon;
    ngx_url_t                    *notify_url;
    ngx_str_t                     notify_secret;
    ngx_url_t                    *records_url;  /* the EMR */
    time_t                        record_retention;
    ngx_str_t                     records_secret;
    ngx_msec_t                    notify_timeout;
    ngx_str_t                     thread_pool;
    time_t                        doctor_session;
    ngx_uint_t                    login_queue;  /* KDFs per worker */
    ngx_teleclinic_room_conf_t    room;
    ngx_teleclinic_formulary_t   *formulary;  /* teleclinic_formulary */
    ngx_teleclinic_mirror_conf_t  mirror;     /* several nodes */
    ngx_teleclinic_redis_conf_t  *redis;      /* NULL: no Redis */
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
    void                        (*durable)(void);

    /* with several nodes: a slot claimed in Redis, then the call again */
    uint64_t                      claimed;    /* for this appointment */
    ngx_str_t                     claim_doctor;
    time_t                        claim_start;
    struct ngx_http_teleclinic_call_s  *again;
    ngx_int_t                   (*handler)(ngx_http_request_t *r,
                                    struct ngx_http_teleclinic_call_s *call);
} ngx_http_teleclinic_ctx_t;


#define NGX_HTTP_TELECLINIC_SEGMENTS  6


/* an API request: the path's segments after /api/v1/, and its body */
typedef struct ngx_http_teleclinic_call_s {
    ngx_str_t                     seg[NGX_HTTP_TELECLINIC_SEGMENTS];
    ngx_uint_t                    nseg;
    ngx_str_t                     body;
} ngx_http_teleclinic_call_t;


typedef struct ngx_http_teleclinic_change_s  ngx_http_teleclinic_change_t;

/*
 * One change to the zone and its answer, for ngx_http_teleclinic_commit():
 * copy runs with the zone locked once the event is applied (it may be
 * NULL), format after the unlock, durable once the change is on disk and
 * before the answer goes out.  data is the handler's, for the copy.
 */
struct ngx_http_teleclinic_change_s {
    ngx_teleclinic_event_t       *event;
    ngx_uint_t                    status;
    ngx_int_t                   (*copy)(ngx_http_request_t *r,
                                        ngx_teleclinic_zone_t *zone,
                                        ngx_http_teleclinic_change_t *change);
    ngx_int_t                   (*format)(ngx_http_request_t *r,
                                          ngx_http_teleclinic_change_t *change,
                                          ngx_str_t *text);
    void                        (*durable)(void);
    void                         *data;
};


extern ngx_module_t  ngx_http_teleclinic_module;


/* the request's ctx, made on first use */
ngx_http_teleclinic_ctx_t *ngx_http_teleclinic_ctx(ngx_http_request_t *r);

ngx_teleclinic_zone_t *ngx_http_teleclinic_zone(
    ngx_http_teleclinic_main_conf_t *tmcf);
ngx_teleclinic_directory_t *ngx_http_teleclinic_directory(
    ngx_http_teleclinic_main_conf_t *tmcf, ngx_log_t *log);

/* the body as one piece of memory; NGX_DECLINED when it is over the limit */
ngx_int_t ngx_http_teleclinic_body(ngx_http_request_t *r, ngx_str_t *body,
    size_t max);

/* sends a document, which it frees, with the status */
ngx_int_t ngx_http_teleclinic_send(ngx_http_request_t *r, ngx_uint_t status,
    json_t *json);

/* sends a JSON text as it is, with the status */
ngx_int_t ngx_http_teleclinic_send_text(ngx_http_request_t *r,
    ngx_uint_t status, u_char *data, size_t len);

/* sends {"error": {"code", "message"[, "field"]}} with the status */
ngx_int_t ngx_http_teleclinic_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message, const char *field);

/* a refusal made by ngx_http_teleclinic_reject(), sent */
ngx_int_t ngx_http_teleclinic_fail(ngx_http_request_t *r,
    ngx_teleclinic_error_t *err);

/* fills *err and returns NGX_ERROR, for checks that do not send */
ngx_int_t ngx_http_teleclinic_reject(ngx_teleclinic_error_t *err,
    ngx_uint_t status, const char *code, const char *message,
    const char *field);

/* the token of "Authorization: Bearer" */
ngx_int_t ngx_http_teleclinic_bearer(ngx_http_request_t *r, ngx_str_t *token);

/* NGX_OK when the request carries the admin key */
ngx_int_t ngx_http_teleclinic_is_admin(ngx_http_request_t *r);
ngx_int_t ngx_http_teleclinic_doctor_auth(ngx_http_request_t *r,
    ngx_teleclinic_token_t *t, ngx_teleclinic_error_t *err);

/*
 * Commits change->event with the zone locked, unlocks it, and answers
 * once the journal is on disk (NGX_DONE) or at once with an error.
 */
ngx_int_t ngx_http_teleclinic_commit(ngx_http_request_t *r,
    ngx_teleclinic_zone_t *zone, ngx_http_teleclinic_change_t *change);

/* the base of the links given to patients */
u_char *ngx_http_teleclinic_base_url(ngx_http_request_t *r, ngx_str_t *base);

/* the patient's join link and guide link, from teleclinic_public_url */
u_char *ngx_http_teleclinic_join_url(ngx_http_teleclinic_main_conf_t *tmcf,
    ngx_str_t *base, u_char *p, uint64_t id, u_char *token, size_t len);


#endif /* _NGX_HTTP_TELECLINIC_UTIL_H_INCLUDED_ */
