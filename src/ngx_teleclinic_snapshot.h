
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_SNAPSHOT_H_INCLUDED_
#define _NGX_TELECLINIC_SNAPSHOT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
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
 * Writes the image, sealed with keys[0] when there are keys, and fsyncs
 * the file and the directory: once it returns NGX_OK the file survives a
 * crash.  Synchronous: an image of a few megabytes is written in a few
 * milliseconds, and the answer waits for it anyway.
 */
ngx_int_t ngx_teleclinic_snapshot_write(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_keys_t *keys, uint64_t appt, ngx_uint_t id,
    u_char *data, size_t len, ngx_pool_t *pool, ngx_log_t *log);

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
 * replayed, the files no record names are removed.
 */
ngx_int_t ngx_teleclinic_snapshot_open(ngx_cycle_t *cycle,
    ngx_teleclinic_zone_t *zone, ngx_uint_t sweep);


#endif /* _NGX_TELECLINIC_SNAPSHOT_H_INCLUDED_ */
