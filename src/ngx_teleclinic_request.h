
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_REQUEST_H_INCLUDED_
#define _NGX_TELECLINIC_REQUEST_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_teleclinic.h"


#define NGX_TELECLINIC_NAME_MAX     200
#define NGX_TELECLINIC_PHONE_MAX    32
#define NGX_TELECLINIC_REASON_MAX   1000


/* a date as the patient and the schedule see it: local calendar day */
typedef struct {
    ngx_uint_t                    year;
    ngx_uint_t                    month;
    ngx_uint_t                    day;
} ngx_teleclinic_date_t;


/*
 * What is wrong with a request, as the client is told: the HTTP status,
 * a stable code, a human message and, where one field is at fault, its
 * name.  All strings are static.
 */
typedef struct {
    ngx_uint_t                    status;
    const char                   *code;
    const char                   *message;
    const char                   *field;
} ngx_teleclinic_error_t;


/* POST /appointments; strings point into root, valid until it is freed */
typedef struct {
    json_t                       *root;
    ngx_str_t                     slot;
    ngx_str_t                     name;
    ngx_str_t                     phone;
    ngx_str_t                     reason;
} ngx_teleclinic_booking_req_t;


/* the bodies of the visit record's requests */
#define NGX_TELECLINIC_BODY_NOTE       0
#define NGX_TELECLINIC_BODY_RX         1
#define NGX_TELECLINIC_BODY_ORDER      2
#define NGX_TELECLINIC_BODY_FOLLOWUP   3
#define NGX_TELECLINIC_BODY_ADDENDUM   4
#define NGX_TELECLINIC_BODY_RATING     5

#define NGX_TELECLINIC_RECORD_TEXTS    5
#define NGX_TELECLINIC_NOTE_MAX        4000    /* characters */
#define NGX_TELECLINIC_ITEM_NOTE_MAX   1000
#define NGX_TELECLINIC_DOSE_MAX        200


/*
 * A record's request, by kind: the note's five texts (complaint,
 * history, findings, diagnosis, advice); a prescription's dose,
 * frequency and note, drug in ref, days and quantity in num; an order's
 * note, exam in ref; a follow-up's note, kind in ref, due; an addendum's
 * text; a rating's comment, score in num[0].  Strings point into root.
 */
typedef struct {
    json_t                       *root;
    ngx_str_t                     text[NGX_TELECLINIC_RECORD_TEXTS];
    ngx_str_t                     ref;
    ngx_uint_t                    num[2];
    ngx_uint_t                    has_due;
    ngx_teleclinic_date_t         due;
} ngx_teleclinic_record_req_t;


/*
 * The parsers below take untrusted bytes and never use nginx's runtime,
 * so the fuzz targets link them alone.  They return NGX_OK, or NGX_ERROR
 * with *err filled.
 */
ngx_int_t ngx_teleclinic_request_json(u_char *body, size_t len,
    json_t **root, ngx_teleclinic_error_t *err);
ngx_int_t ngx_teleclinic_request_booking(u_char *body, size_t len,
    ngx_teleclinic_booking_req_t *req, ngx_teleclinic_error_t *err);
ngx_int_t ngx_teleclinic_request_reschedule(u_char *body, size_t len,
    json_t **root, ngx_str_t *slot, ngx_teleclinic_error_t *err);

ngx_int_t ngx_teleclinic_request_record(u_char *body, size_t len,
    ngx_uint_t kind, ngx_teleclinic_record_req_t *req,
    ngx_teleclinic_error_t *err);
ngx_int_t ngx_teleclinic_id_valid(u_char *p, size_t len);
ngx_int_t ngx_teleclinic_date_parse(u_char *p, size_t len,
    ngx_teleclinic_date_t *date);
ngx_int_t ngx_teleclinic_slot_id_parse(u_char *p, size_t len,
    ngx_str_t *doctor, ngx_teleclinic_date_t *date, ngx_uint_t *minute);
ngx_int_t ngx_teleclinic_appt_id_parse(u_char *p, size_t len,
    uint64_t *id);
u_char *ngx_teleclinic_appt_id_print(u_char *p, uint64_t id);

u_char *ngx_teleclinic_json_string(u_char *p, u_char *last, u_char *data,
    size_t len);
u_char *ngx_teleclinic_json_field(u_char *p, u_char *last, const char *key,
    ngx_str_t *value);

/* the value of one query argument, without nginx's request structure */
ngx_int_t ngx_teleclinic_arg(u_char *args, size_t len, char *name,
    ngx_str_t *value);


#endif /* _NGX_TELECLINIC_REQUEST_H_INCLUDED_ */
