
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_H_INCLUDED_
#define _NGX_TELECLINIC_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* identifiers of the directory: lowercase letters, digits, '-' */
#define NGX_TELECLINIC_ID_MAX        32

/* the directory's JSON text */
#define NGX_TELECLINIC_DIRECTORY_MAX  (128 * 1024)

/* an appointment id is a random 64-bit number shown as 16 hex digits */
#define NGX_TELECLINIC_APPT_ID_LEN   16


typedef struct ngx_teleclinic_zone_s       ngx_teleclinic_zone_t;
typedef struct ngx_teleclinic_journal_s    ngx_teleclinic_journal_t;
typedef struct ngx_teleclinic_directory_s  ngx_teleclinic_directory_t;
typedef struct ngx_teleclinic_rooms_s      ngx_teleclinic_rooms_t;
typedef struct ngx_teleclinic_bus_sh_s     ngx_teleclinic_bus_sh_t;
typedef struct ngx_teleclinic_records_s    ngx_teleclinic_records_t;


/* RFC 3339 in the server's local time, with its offset */
#define NGX_TELECLINIC_TIME_LEN  (sizeof("2026-01-01T00:00:00+00:00") - 1)

u_char *ngx_teleclinic_time_print(u_char *p, time_t t);


#endif /* _NGX_TELECLINIC_H_INCLUDED_ */
