
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_JOURNAL_H_INCLUDED_
#define _NGX_TELECLINIC_JOURNAL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif
#include "ngx_teleclinic.h"
#include "ngx_teleclinic_zone.h"
#include "ngx_teleclinic_crypt.h"


typedef void (*ngx_teleclinic_journal_handler_pt)(void *data, ngx_int_t rc);

/*
 * A second sink of the events, called with the zone locked and each
 * change made here (not another node's) as its journal line: the Redis
 * mirror copies the line and sends it after the unlock.
 */
typedef void (*ngx_teleclinic_journal_sink_pt)(void *data,
    ngx_teleclinic_event_t *ev, u_char *line, size_t len);


struct ngx_teleclinic_journal_s {
    ngx_str_t                           path;
    ngx_fd_t                            fd;
    ngx_flag_t                          fsync;
    ngx_teleclinic_keys_t              *keys;      /* NULL: plain text */
#if (NGX_THREADS)
    ngx_thread_pool_t                  *thread_pool;
#endif
    ngx_teleclinic_journal_sink_pt      sink;      /* per worker */
    void                               *sink_data;
};


/* the longest line: a directory of NGX_TELECLINIC_DIRECTORY_MAX, every
 * byte escaped */
#define NGX_TELECLINIC_RECORD_MAX   (6 * NGX_TELECLINIC_DIRECTORY_MAX + 4096)


/* one encoded event, a line of the journal; most fit in buf */
typedef struct {
    u_char                             *data;
    size_t                              len;
    u_char                              buf[8192];
} ngx_teleclinic_line_t;


/* a request waiting for its events to reach the disk */
typedef struct {
    ngx_queue_t                         queue;
    ngx_teleclinic_journal_handler_pt   handler;
    void                               *data;
    ngx_log_t                          *log;
    ngx_uint_t                          mark;      /* the mirror's */
} ngx_teleclinic_journal_waiter_t;


/* in the master: open (and, for a new zone, replay) the journal */
ngx_int_t ngx_teleclinic_journal_open(ngx_cycle_t *cycle,
    ngx_teleclinic_zone_t *zone, ngx_uint_t fresh);

/*
 * With the zone locked: applies the event (expiring past cancelled
 * appointments of a full zone, once) and appends its record, so the
 * journal's order is the order of the changes.  NGX_DECLINED when the
 * zone is full.
 */
ngx_int_t ngx_teleclinic_journal_commit(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev, ngx_log_t *log);

ngx_int_t ngx_teleclinic_journal_record(ngx_teleclinic_journal_t *journal,
    ngx_teleclinic_line_t *rec, ngx_teleclinic_event_t *ev, ngx_log_t *log);
void ngx_teleclinic_journal_record_free(ngx_teleclinic_line_t *rec);
/* writes the record, then frees it */
ngx_int_t ngx_teleclinic_journal_append(ngx_teleclinic_journal_t *journal,
    ngx_teleclinic_line_t *rec, ngx_log_t *log);

/* calls w->handler once every event appended so far is on disk */
void ngx_teleclinic_journal_sync(ngx_teleclinic_journal_t *journal,
    ngx_teleclinic_journal_waiter_t *w);
/* takes a waiter off the queue it is in, if any */
void ngx_teleclinic_journal_cancel(ngx_teleclinic_journal_waiter_t *w);

ngx_int_t ngx_teleclinic_journal_init_process(ngx_cycle_t *cycle,
    ngx_teleclinic_journal_t *journal);

/*
 * One record: "crc32 {json}\n"; NGX_DECLINED when it does not fit.  With
 * keys, the patient's fields are sealed with keys->keys[0]; decode opens
 * them with any of the keys, and returns NGX_ABORT when none has the
 * item's key id or the item is not what was sealed.
 */
ssize_t ngx_teleclinic_journal_encode(ngx_teleclinic_event_t *ev,
    ngx_teleclinic_keys_t *keys, u_char *buf, size_t size);
/*
 * With the zone locked: the events that make its state again, each
 * handed to put (compaction; the mirror's snapshot, outbox 0: without
 * the outbox's messages).
 */
ngx_int_t ngx_teleclinic_journal_state(ngx_teleclinic_zone_t *zone,
    ngx_uint_t outbox, ngx_teleclinic_snapshot_pt put, void *data);

/* NGX_OK for a Redis Stream entry's id */
ngx_int_t ngx_teleclinic_journal_rid(ngx_str_t *rid);
ngx_int_t ngx_teleclinic_journal_decode(u_char *line, size_t len,
    ngx_teleclinic_event_t *ev, ngx_teleclinic_keys_t *keys,
    ngx_pool_t *pool);


#endif /* _NGX_TELECLINIC_JOURNAL_H_INCLUDED_ */
