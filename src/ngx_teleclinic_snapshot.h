
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_SNAPSHOT_H_INCLUDED_
#define _NGX_TELECLINIC_SNAPSHOT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_thread_pool.h>
#include "ngx_teleclinic.h"
#include "ngx_teleclinic_zone.h"
#include "ngx_teleclinic_crypt.h"


/*
 * The consented snapshots' images: one file each, named by the
 * appointment and the snapshot's id ("<16 hex digits>-<id>"), in the
 * directory of teleclinic_snapshot_path.  With a data key the file holds
 * the image sealed, bound to its appointment and id; without one, the
 * image itself.  The record's item keeps the image's size, which tells
 * the two apart when a key is added later.
 */

#define NGX_TELECLINIC_SNAPSHOT_NAME_LEN                                     \
    (NGX_TELECLINIC_APPT_ID_LEN + 1 + NGX_INT64_LEN)


/* "image/jpeg" or "image/png" by the first bytes, or NULL */
const char *ngx_teleclinic_snapshot_type(u_char *data, size_t len);

/*
 * An image to write: the upload's bytes, the room for their sealed copy,
 * and what the write found.  It is written either in the event loop or
 * on a thread of nginx's pools; in both the write neither logs nor
 * allocates, and the event loop logs what failed afterwards.
 */
typedef struct {
    ngx_teleclinic_zone_t        *zone;
    ngx_teleclinic_keys_t        *keys;      /* none: the image in clear */
    uint64_t                      appt;
    ngx_uint_t                    id;
    u_char                       *data;
    size_t                        len;
    u_char                       *out;       /* the sealed copy */
    const char                   *failed;    /* the call that failed */
    ngx_err_t                     err;
} ngx_teleclinic_snapshot_file_t;


/* the image of an upload, and the room to seal it, from the pool */
ngx_teleclinic_snapshot_file_t *ngx_teleclinic_snapshot_file(
    ngx_teleclinic_zone_t *zone, ngx_teleclinic_keys_t *keys, uint64_t appt,
    ngx_uint_t id, u_char *data, size_t len, ngx_pool_t *pool);

/*
 * Writes the image, sealed with keys[0] when there are keys, and fsyncs
 * the file and the directory: once it returns NGX_OK the file survives a
 * crash.  A failed write leaves no file.  In the event loop, which waits
 * for the disk: for a journal with no thread pool.
 */
ngx_int_t ngx_teleclinic_snapshot_write(ngx_teleclinic_snapshot_file_t *f,
    ngx_log_t *log);

#if (NGX_THREADS)
/*
 * The same write on a thread of the pool: once it is done, the event
 * loop runs handler with ev->data set to data, and the handler learns
 * from ngx_teleclinic_snapshot_written() how it went.  f and the image
 * stay until then.  NGX_ERROR: not posted (the pool's queue is full).
 */
ngx_int_t ngx_teleclinic_snapshot_post(ngx_teleclinic_snapshot_file_t *f,
    ngx_thread_pool_t *tp, ngx_event_handler_pt handler, void *data,
    ngx_pool_t *pool, ngx_log_t *log);
#endif

/* after the thread: logs its failure, if any; NGX_OK: the file is durable */
ngx_int_t ngx_teleclinic_snapshot_written(ngx_teleclinic_snapshot_file_t *f,
    ngx_log_t *log);

/*
 * Reads the image of size bytes back into pool memory, unsealed.
 * NGX_DECLINED: no such file; NGX_ERROR: unreadable, or not what was
 * written for this appointment and id.
 */
ngx_int_t ngx_teleclinic_snapshot_read(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_keys_t *keys, uint64_t appt, ngx_uint_t id, size_t size,
    ngx_str_t *image, ngx_pool_t *pool, ngx_log_t *log);

/* a file written for an event that was not journaled after all */
ngx_int_t ngx_teleclinic_snapshot_remove(ngx_teleclinic_zone_t *zone,
    uint64_t appt, ngx_uint_t id, ngx_log_t *log);

/*
 * Removes the files no record names (a crash between a file's fsync and
 * its event, a record forgotten after its retention) that are older than
 * "older" seconds (0: all, at start).  Returns how many went.
 */
ngx_uint_t ngx_teleclinic_snapshot_sweep(ngx_teleclinic_zone_t *zone,
    time_t older, ngx_log_t *log);

/*
 * In the master, at start and on a reload: the directory is made (owned
 * by the workers' user) and opened; at start (sweep), once the journal is
 * replayed, the files no record names are removed, and with an old data
 * key given every file not sealed with the first key is sealed anew.
 */
ngx_int_t ngx_teleclinic_snapshot_open(ngx_cycle_t *cycle,
    ngx_teleclinic_zone_t *zone, ngx_uint_t sweep);


#endif /* _NGX_TELECLINIC_SNAPSHOT_H_INCLUDED_ */
