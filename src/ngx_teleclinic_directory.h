
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_DIRECTORY_H_INCLUDED_
#define _NGX_TELECLINIC_DIRECTORY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_teleclinic.h"
#include "ngx_teleclinic_request.h"


#define NGX_TELECLINIC_SLOTS_MAX      (24 * 60 / 5)


typedef struct {
    ngx_str_t                     id;
    ngx_str_t                     name;
} ngx_teleclinic_department_t;


typedef struct {
    ngx_uint_t                    from;    /* minutes since midnight */
    ngx_uint_t                    to;
} ngx_teleclinic_hours_t;


/* FHIR Practitioner with its one Schedule */
typedef struct {
    ngx_str_t                     id;
    ngx_str_t                     name;
    ngx_str_t                     department;
    ngx_str_t                     password;  /* KDF hash, for the console */
    ngx_uint_t                    slot_minutes;
    ngx_array_t                   hours[7];  /* ngx_teleclinic_hours_t,
                                                Sunday first as in tm */
    ngx_array_t                   days_off;  /* ngx_uint_t yyyymmdd */
} ngx_teleclinic_doctor_t;


struct ngx_teleclinic_directory_s {
    ngx_pool_t                   *pool;
    ngx_uint_t                    version;
    ngx_array_t                   departments;
    ngx_array_t                   doctors;
};


typedef struct {
    time_t                        start;
    time_t                        end;
    ngx_uint_t                    minute;  /* of the day, for the id */
} ngx_teleclinic_slot_t;


/*
 * Parses and checks a directory document.  On error returns NGX_ERROR
 * with a static message in *err.
 */
ngx_int_t ngx_teleclinic_directory_parse(ngx_teleclinic_directory_t *dir,
    u_char *text, size_t len, const char **err);

/*
 * At start and reload, a changed directory file replaces the directory:
 * checked in init_zone (NGX_ERROR refuses the configuration), stored by
 * seed once the new cycle is accepted.
 */
ngx_int_t ngx_teleclinic_directory_check(ngx_cycle_t *cycle,
    ngx_teleclinic_zone_t *zone);
ngx_int_t ngx_teleclinic_directory_seed(ngx_cycle_t *cycle,
    ngx_teleclinic_zone_t *zone);

ngx_teleclinic_department_t *ngx_teleclinic_department_find(
    ngx_teleclinic_directory_t *dir, ngx_str_t *id);
ngx_teleclinic_doctor_t *ngx_teleclinic_doctor_find(
    ngx_teleclinic_directory_t *dir, ngx_str_t *id);

/* the doctor's slots on a day, up to NGX_TELECLINIC_SLOTS_MAX */
ngx_uint_t ngx_teleclinic_doctor_slots(ngx_teleclinic_doctor_t *doctor,
    ngx_teleclinic_date_t *date, ngx_teleclinic_slot_t *slots);

ngx_int_t ngx_teleclinic_doctor_slot(ngx_teleclinic_doctor_t *doctor,
    ngx_teleclinic_date_t *date, ngx_uint_t minute,
    ngx_teleclinic_slot_t *slot);

/* slot ids are "doctor.YYYYMMDD.HHMM" */
u_char *ngx_teleclinic_slot_id_print(u_char *p, ngx_str_t *doctor,
    ngx_teleclinic_date_t *date, ngx_uint_t minute);
void ngx_teleclinic_day_bounds(ngx_teleclinic_date_t *date, time_t *from,
    time_t *to);
void ngx_teleclinic_date_of(time_t t, ngx_teleclinic_date_t *date);


#endif /* _NGX_TELECLINIC_DIRECTORY_H_INCLUDED_ */
