
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_BUS_H_INCLUDED_
#define _NGX_TELECLINIC_BUS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_teleclinic.h"


/*
 * Messages between the workers of one nginx: each worker has a mailbox
 * in the zone and a doorbell, a datagram socket with an abstract name.
 * Old and new workers overlap on a reload; each finds the others through
 * the zone.
 */

#define NGX_TELECLINIC_WORKERS        64

/* what a mail asks of the receiving worker */
#define NGX_TELECLINIC_MAIL_SEND      1   /* text to a connection */
#define NGX_TELECLINIC_MAIL_CLOSE     2   /* close a connection */
#define NGX_TELECLINIC_MAIL_ROOM      3   /* a doctor's queue changed */

/*
 * A worker that does not read its mailbox does not fill the zone: a box
 * holds so many mails, and all the mail at most a share of the zone
 * (1/NGX_TELECLINIC_MAIL_SHARE), so that bookings always find room.
 */
#define NGX_TELECLINIC_MAIL_MAX       65536
#define NGX_TELECLINIC_MAIL_SHARE     8


typedef struct {
    ngx_pid_t                     pid;        /* 0: a free box */
    ngx_queue_t                   mail;
    ngx_uint_t                    count;
} ngx_teleclinic_mailbox_t;


/* in the zone, made by ngx_teleclinic_bus_init_zone() */
struct ngx_teleclinic_bus_sh_s {
    u_char                        instance[16];  /* hex, in the names */
    size_t                        bytes;         /* of all mail */
    size_t                        max;           /* its share of the zone */
    ngx_teleclinic_mailbox_t      boxes[NGX_TELECLINIC_WORKERS];
};


typedef struct {
    ngx_queue_t                   queue;
    ngx_uint_t                    kind;
    ngx_uint_t                    serial;    /* of the connection */
    size_t                        len;
    u_char                        data[1];
} ngx_teleclinic_mail_t;


/* what the receiving side does with its mail */
typedef void (*ngx_teleclinic_bus_handler_pt)(ngx_teleclinic_mail_t *mail);

/* with the zone locked: a worker died, and its connections with it */
typedef void (*ngx_teleclinic_bus_gone_pt)(ngx_teleclinic_zone_t *zone,
    ngx_pid_t pid);


/* a new zone: the mailboxes */
ngx_int_t ngx_teleclinic_bus_init_zone(ngx_teleclinic_zone_t *zone);

ngx_int_t ngx_teleclinic_bus_init_process(ngx_cycle_t *cycle,
    ngx_teleclinic_zone_t *zone, ngx_teleclinic_bus_handler_pt handler,
    ngx_teleclinic_bus_gone_pt gone);
void ngx_teleclinic_bus_exit_process(ngx_cycle_t *cycle);

/*
 * With the zone locked: puts a mail in the box of the worker pid (0: of
 * every worker).  NGX_DECLINED when that worker is gone, NGX_ERROR when
 * the zone is full.  The doorbells ring on ngx_teleclinic_bus_ring().
 */
ngx_int_t ngx_teleclinic_bus_post_locked(ngx_teleclinic_zone_t *zone,
    ngx_pid_t pid, ngx_uint_t kind, ngx_uint_t serial, u_char *data,
    size_t len);

/* after the zone is unlocked: wakes the workers that got mail */
void ngx_teleclinic_bus_ring(ngx_teleclinic_zone_t *zone);


#endif /* _NGX_TELECLINIC_BUS_H_INCLUDED_ */
