
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <sys/file.h>
#include <jansson.h>
#include <zlib.h>
#include "ngx_teleclinic_journal.h"
#include "ngx_teleclinic_request.h"
#include "ngx_teleclinic_crypt.h"


/* the largest patient field sealed, and its associated data */
#define NGX_TELECLINIC_PRIVATE_MAX  16384
#define NGX_TELECLINIC_AAD_LEN      (sizeof("reason:") + 16)
#define NGX_TELECLINIC_SEALED_MAX                                            \
    (NGX_TELECLINIC_PRIVATE_MAX + NGX_TELECLINIC_SEAL_OVERHEAD)

/* compaction writes many records at a time */
#define NGX_TELECLINIC_COMPACT_BUF  (1024 * 1024)


typedef struct {
    ngx_fd_t                     fd;
    ngx_err_t                    err;
} ngx_teleclinic_sync_ctx_t;


/* the compacted journal being written, a buffer at a time */
typedef struct {
    ngx_fd_t                     fd;
    ngx_uint_t                   seq;         /* of the snapshot */
    ngx_teleclinic_keys_t       *keys;        /* seal with keys[0] */
    ngx_log_t                   *log;
    u_char                      *buf;
    u_char                      *p;
    u_char                      *end;
    ngx_uint_t                   records;
} ngx_teleclinic_compact_t;


static ngx_int_t ngx_teleclinic_journal_replay(ngx_cycle_t *cycle,
    ngx_teleclinic_zone_t *zone, ngx_fd_t fd);
static ngx_int_t ngx_teleclinic_journal_compact(ngx_cycle_t *cycle,
    ngx_teleclinic_zone_t *zone);
static ngx_int_t ngx_teleclinic_compact_put(ngx_teleclinic_compact_t *w,
    ngx_teleclinic_event_t *ev);
static ngx_int_t ngx_teleclinic_compact_event(ngx_teleclinic_event_t *ev,
    void *data);
static u_char *ngx_teleclinic_journal_private(u_char *p, u_char *last,
    ngx_teleclinic_keys_t *keys, const char *key, ngx_str_t *value,
    uint64_t id);
static ngx_int_t ngx_teleclinic_journal_unseal(json_t *o, const char *key,
    ngx_str_t *s, uint64_t id, ngx_teleclinic_keys_t *keys,
    ngx_pool_t *pool);
static size_t ngx_teleclinic_journal_aad(u_char *aad, const char *key,
    uint64_t id);
static ngx_int_t ngx_teleclinic_journal_str(json_t *o, const char *key,
    ngx_str_t *s, ngx_pool_t *pool);
static ngx_int_t ngx_teleclinic_journal_uint(json_t *o, const char *key,
    ngx_uint_t max, ngx_uint_t *value);
static time_t ngx_teleclinic_journal_int(json_t *o, const char *key,
    time_t none);
static u_char *ngx_teleclinic_journal_put_record(u_char *p, u_char *last,
    ngx_teleclinic_keys_t *keys, ngx_teleclinic_event_t *ev);
static ngx_int_t ngx_teleclinic_journal_get_record(json_t *o,
    ngx_teleclinic_event_t *ev, ngx_teleclinic_keys_t *keys,
    ngx_pool_t *pool);
static ngx_uint_t ngx_teleclinic_journal_expire(ngx_teleclinic_zone_t *zone,
    time_t now, ngx_log_t *log);
static ngx_int_t ngx_teleclinic_journal_write(ngx_fd_t fd, u_char *buf,
    size_t len, ngx_log_t *log);
static ngx_int_t ngx_teleclinic_journal_lock(ngx_cycle_t *cycle,
    ngx_teleclinic_journal_t *journal);
static void ngx_teleclinic_journal_close(void *data);
static void ngx_teleclinic_journal_start(ngx_teleclinic_journal_t *journal);
static void ngx_teleclinic_journal_done(ngx_queue_t *queue, ngx_int_t rc);
#if (NGX_THREADS)
static void ngx_teleclinic_journal_sync_thread(void *data, ngx_log_t *log);
static void ngx_teleclinic_journal_sync_event(ngx_event_t *ev);
#endif


static const char  *ngx_teleclinic_ops[] = {
    NULL, "book", "cancel", "reschedule", "status", "directory", "sent",
    "appt", "msg", "expire", "room", "note", "item", "drop", "close",
    "rating", "forget", "consent", "mirror", "back"
};


/*
 * Per worker: requests whose records are written and that wait for an
 * fsync to start, and those covered by the fsync that is running.  Every
 * request that arrives while one fsync runs is acknowledged by the next
 * one: the group commit.
 */
static ngx_queue_t          ngx_teleclinic_waiting;
static ngx_queue_t          ngx_teleclinic_syncing;
static ngx_uint_t           ngx_teleclinic_sync_busy;
#if (NGX_THREADS)
static ngx_thread_task_t   *ngx_teleclinic_sync_task;
#endif

/*
 * A lock on "<journal>.lock", taken by the first master that opens the
 * journal and inherited by its workers: a second nginx on the same state,
 * or a new master while workers of a killed one still run, would replay
 * and compact a file that others append to.
 */
static ngx_fd_t             ngx_teleclinic_lock_fd = NGX_INVALID_FILE;


ngx_int_t
ngx_teleclinic_journal_open(ngx_cycle_t *cycle, ngx_teleclinic_zone_t *zone,
    ngx_uint_t fresh)
{
    ngx_fd_t                   fd;
    ngx_int_t                  rc;
    ngx_pool_cleanup_t        *cln;
    ngx_teleclinic_journal_t  *journal;

    journal = zone->journal;

    if (ngx_create_full_path(journal->path.data, 0700) != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "teleclinic: cannot create the directory of \"%s\"",
                      journal->path.data);
        return NGX_ERROR;
    }

    if (fresh && ngx_teleclinic_lock_fd != NGX_INVALID_FILE) {
        /*
         * a reload that made a new zone (its size changed): the old
         * workers go on with the old one, and two copies of the state
         * would part ways
         */
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "teleclinic: the zone \"%V\" cannot change its size "
                      "on reload, restart nginx instead",
                      &zone->shm_zone->shm.name);
        return NGX_ERROR;
    }

    if (ngx_teleclinic_journal_lock(cycle, journal) != NGX_OK) {
        return NGX_ERROR;
    }

    if (fresh) {
        fd = ngx_open_file(journal->path.data, NGX_FILE_RDWR,
                           NGX_FILE_CREATE_OR_OPEN, 0600);

        if (fd == NGX_INVALID_FILE) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          ngx_open_file_n " \"%s\" failed",
                          journal->path.data);
            return NGX_ERROR;
        }

        ngx_teleclinic_zone_lock(zone);
        rc = ngx_teleclinic_journal_replay(cycle, zone, fd);
        ngx_teleclinic_zone_unlock(zone);

        ngx_close_file(fd);

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        /*
         * Only at start, with no worker running, may the file be
         * replaced: old workers of a reload keep writing to the one
         * they have open.
         */
        /* an old data key given: everything is sealed with the new one */
        if ((zone->sh->journal_records
             > 2 * (zone->sh->nappts + zone->sh->nmsgs
                    + zone->sh->nrecord_events) + 1024
             || (journal->keys && journal->keys->nkeys > 1))
            && ngx_teleclinic_journal_compact(cycle, zone) != NGX_OK)
        {
            return NGX_ERROR;
        }

        zone->fresh = 0;
    }

    /*
     * Opened by the master and inherited by the workers, so that workers
     * running as an unprivileged user can append to it.  O_APPEND makes
     * each record one write at the end, whoever writes it.
     */
    fd = ngx_open_file(journal->path.data, NGX_FILE_APPEND,
                       NGX_FILE_CREATE_OR_OPEN, 0600);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      ngx_open_file_n " \"%s\" failed", journal->path.data);
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cycle->pool, 0);
    if (cln == NULL) {
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    journal->fd = fd;
    cln->handler = ngx_teleclinic_journal_close;
    cln->data = journal;

    return NGX_OK;
}


static ngx_int_t
ngx_teleclinic_journal_lock(ngx_cycle_t *cycle,
    ngx_teleclinic_journal_t *journal)
{
    u_char    *name;
    ngx_fd_t   fd;

    if (ngx_teleclinic_lock_fd != NGX_INVALID_FILE) {
        /* a reload: this master holds it already */
        return NGX_OK;
    }

    name = ngx_pnalloc(cycle->pool, journal->path.len + sizeof(".lock"));
    if (name == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(name, "%V.lock%Z", &journal->path);

    fd = ngx_open_file(name, NGX_FILE_RDWR, NGX_FILE_CREATE_OR_OPEN, 0600);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      ngx_open_file_n " \"%s\" failed", name);
        return NGX_ERROR;
    }

    if (flock(fd, LOCK_EX|LOCK_NB) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "teleclinic: the journal \"%V\" is in use by another "
                      "nginx (or by workers of one that was killed)",
                      &journal->path);
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    ngx_teleclinic_lock_fd = fd;

    return NGX_OK;
}


static void
ngx_teleclinic_journal_close(void *data)
{
    ngx_teleclinic_journal_t  *journal = data;

    if (journal->fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(journal->fd);
        journal->fd = NGX_INVALID_FILE;
    }
}


static ngx_int_t
ngx_teleclinic_journal_replay(ngx_cycle_t *cycle, ngx_teleclinic_zone_t *zone,
    ngx_fd_t fd)
{
    u_char                  *buf, *p, *last, *nl;
    off_t                    size, good;
    ssize_t                  n;
    ngx_int_t                rc;
    ngx_uint_t               records;
    ngx_pool_t              *pool;
    ngx_file_info_t          fi;
    ngx_teleclinic_event_t   ev;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      ngx_fd_info_n " \"%s\" failed",
                      zone->journal->path.data);
        return NGX_ERROR;
    }

    size = ngx_file_size(&fi);

    if (size == 0) {
        return NGX_OK;
    }

    buf = ngx_alloc(size, cycle->log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    pool = ngx_create_pool(4096, cycle->log);
    if (pool == NULL) {
        ngx_free(buf);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    for (p = buf, last = buf + size; p < last; p += n) {
        n = read(fd, p, last - p);

        if (n <= 0) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "teleclinic: reading \"%s\" failed",
                          zone->journal->path.data);
            goto done;
        }
    }

    records = 0;
    good = 0;
    zone->replay = 1;

    for (p = buf; p < last; p = nl + 1) {
        nl = ngx_strlchr(p, last, '\n');

        if (nl == NULL) {
            break;
        }

        rc = ngx_teleclinic_journal_decode(p, nl - p, &ev,
                                           zone->journal->keys, pool);

        if (rc == NGX_ABORT) {
            /* not damage: cutting it off would lose acknowledged data */
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "teleclinic: record %ui of \"%s\" is sealed with "
                          "a data key that teleclinic_data_key_file does not "
                          "give, or was changed", records + 1,
                          zone->journal->path.data);
            rc = NGX_ERROR;
            goto done;
        }

        if (rc != NGX_OK) {
            break;
        }

        rc = ngx_teleclinic_zone_apply(zone, &ev, cycle->log);

        if (rc == NGX_DECLINED) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "teleclinic: the zone \"%V\" is too small for the "
                          "journal \"%s\"", &zone->shm_zone->shm.name,
                          zone->journal->path.data);
            rc = NGX_ERROR;
            goto done;
        }

        ngx_reset_pool(pool);
        records++;
        good = nl + 1 - buf;
    }

    /*
     * A record is acknowledged only after an fsync that covers it and
     * every record before it; so the first damaged record and all after
     * it were never acknowledged: a write cut short by a crash.
     */
    if (good < size) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "teleclinic: discarding %O bytes of unacknowledged "
                      "records at the end of \"%s\"", size - good,
                      zone->journal->path.data);

        if (ftruncate(fd, good) == -1 || fdatasync(fd) == -1) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "teleclinic: truncating \"%s\" failed",
                          zone->journal->path.data);
            rc = NGX_ERROR;
            goto done;
        }
    }

    zone->sh->journal_records = records;

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "teleclinic: replayed %ui records, %ui appointments",
                  records, zone->sh->nappts);

    rc = NGX_OK;

done:

    zone->replay = 0;

    ngx_destroy_pool(pool);
    ngx_free(buf);

    return rc;
}


static ngx_uint_t
ngx_teleclinic_compact_skip(ngx_teleclinic_appt_t *appt)
{
    return appt->status == NGX_TELECLINIC_CANCELLED && appt->end < ngx_time();
}


/* the state as one record per live object, then an atomic rename */

static ngx_int_t
ngx_teleclinic_journal_compact(ngx_cycle_t *cycle,
    ngx_teleclinic_zone_t *zone)
{
    ngx_fd_t                  fd;
    ngx_int_t                 rc;
    ngx_str_t                 tmp;
    ngx_teleclinic_sh_t      *sh;
    ngx_teleclinic_compact_t  w;

    sh = zone->sh;

    tmp.len = zone->journal->path.len + sizeof(".compact") - 1;
    tmp.data = ngx_pnalloc(cycle->pool, tmp.len + 1);
    if (tmp.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(tmp.data, "%V.compact%Z", &zone->journal->path);

    fd = ngx_open_file(tmp.data, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE, 0600);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      ngx_open_file_n " \"%s\" failed", tmp.data);
        return NGX_ERROR;
    }

    w.fd = fd;
    w.seq = sh->seq;
    w.keys = zone->journal->keys;
    w.log = cycle->log;
    w.records = 0;
    w.buf = ngx_alloc(NGX_TELECLINIC_COMPACT_BUF, cycle->log);
    if (w.buf == NULL) {
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    w.p = w.buf;
    w.end = w.buf + NGX_TELECLINIC_COMPACT_BUF;
    rc = NGX_ERROR;

    if (ngx_teleclinic_journal_state(zone, 1, ngx_teleclinic_compact_event,
                                     &w)
        != NGX_OK)
    {
        goto failed;
    }

    if (ngx_teleclinic_journal_write(fd, w.buf, w.p - w.buf, cycle->log)
        != NGX_OK
        || fdatasync(fd) == -1)
    {
        goto failed;
    }

    if (ngx_rename_file(tmp.data, zone->journal->path.data) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      ngx_rename_file_n " \"%s\" failed", tmp.data);
        goto failed;
    }

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "teleclinic: compacted \"%s\" from %ui to %ui records",
                  zone->journal->path.data, sh->journal_records, w.records);

    sh->journal_records = w.records;
    rc = NGX_OK;

failed:

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "teleclinic: compacting \"%s\" failed", tmp.data);
        (void) ngx_delete_file(tmp.data);
    }

    ngx_close_file(fd);
    ngx_free(w.buf);

    return rc;
}


/*
 * The events that make the zone's state again, each handed to put:
 * compaction's, and the mirror's snapshot in Redis (without the outbox,
 * which is each node's own).  Left out is what expiry would remove.
 */

ngx_int_t
ngx_teleclinic_journal_state(ngx_teleclinic_zone_t *zone, ngx_uint_t outbox,
    ngx_teleclinic_snapshot_pt put, void *data)
{
    ngx_uint_t               i;
    ngx_rbtree_node_t       *node, *root, *sentinel;
    ngx_teleclinic_sh_t     *sh;
    ngx_teleclinic_msg_t    *msg;
    ngx_teleclinic_appt_t   *appt;
    ngx_teleclinic_event_t   ev;
    ngx_teleclinic_group_t  *group;

    sh = zone->sh;

    if (sh->directory) {
        ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
        ev.op = NGX_TELECLINIC_EV_DIRECTORY;
        ev.seq = sh->seq;
        ev.directory.data = sh->directory;
        ev.directory.len = sh->directory_len;
        ngx_memcpy(ev.hash, sh->directory_file_hash, 32);

        if (put(&ev, data) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    root = sh->appts.root;
    sentinel = sh->appts.sentinel;

    if (root != sentinel) {
        for (node = ngx_rbtree_min(root, sentinel);
             node;
             node = ngx_rbtree_next(&sh->appts, node))
        {
            appt = (ngx_teleclinic_appt_t *) node;

            /* what a full zone would expire is left out */
            if (ngx_teleclinic_compact_skip(appt)) {
                continue;
            }

            ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
            ev.op = NGX_TELECLINIC_EV_APPT;
            ev.seq = sh->seq;
            ev.at = appt->updated;
            ev.created = appt->created;
            ev.id = appt->id;
            ev.status = appt->status;
            ev.doctor.data = appt->doctor;
            ev.doctor.len = appt->doctor_len;
            ev.start = appt->start;
            ev.end = appt->end;
            ev.name = appt->name;
            ev.phone = appt->phone;
            ev.reason = appt->reason;
            ev.arrived = appt->arrived;
            ev.visit_start = appt->visit_start;
            ev.visit_end = appt->visit_end;
            ev.back = appt->back;
            ev.version = appt->version;

            if (put(&ev, data) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    /* where the reading of the other nodes' events goes on */

    group = sh->group;

    for (i = 0; group && i < group->nmarks; i++) {
        ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
        ev.op = NGX_TELECLINIC_EV_MIRROR;
        ev.seq = sh->seq;
        ev.node.data = group->marks[i].node;
        ev.node.len = group->marks[i].len;
        ev.worker = group->marks[i].worker;
        ev.oseq = group->marks[i].seq;

        if (put(&ev, data) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (group && group->mirror_len) {
        ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
        ev.op = NGX_TELECLINIC_EV_MIRROR;
        ev.seq = sh->seq;
        ev.rid.data = group->mirror;
        ev.rid.len = group->mirror_len;

        if (put(&ev, data) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    /* the doctors' running averages, which the visits' events made */

    if (zone->handlers->snapshot(zone, put, data)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the visit records, as the events that make them */

    if (zone->handlers->records(zone, put, data)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    root = sh->msgs.root;
    sentinel = sh->msgs.sentinel;

    if (outbox && root != sentinel) {
        for (node = ngx_rbtree_min(root, sentinel);
             node;
             node = ngx_rbtree_next(&sh->msgs, node))
        {
            msg = (ngx_teleclinic_msg_t *)
                      ((u_char *) node - offsetof(ngx_teleclinic_msg_t, id));

            appt = ngx_teleclinic_appt_lookup(zone, msg->appt);

            if (appt == NULL || ngx_teleclinic_compact_skip(appt)) {
                continue;
            }

            ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
            ev.op = NGX_TELECLINIC_EV_MSG;
            ev.seq = sh->seq;
            ev.msg = node->key;
            ev.id = msg->appt;
            ev.kind = msg->kind;
            ev.item = msg->item;
            ev.due = msg->due;
            ev.owner = msg->owner;

            if (put(&ev, data) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }


    return NGX_OK;
}


/* one record into the compacted journal, the buffer written out first
 * when a record might not fit */

static ngx_int_t
ngx_teleclinic_compact_put(ngx_teleclinic_compact_t *w,
    ngx_teleclinic_event_t *ev)
{
    ssize_t  n;

    if ((size_t) (w->end - w->p) < NGX_TELECLINIC_RECORD_MAX) {
        if (ngx_teleclinic_journal_write(w->fd, w->buf, w->p - w->buf, w->log)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        w->p = w->buf;
    }

    n = ngx_teleclinic_journal_encode(ev, w->keys, w->p, w->end - w->p);
    if (n < 0) {
        return NGX_ERROR;
    }

    w->p += n;
    w->records++;

    return NGX_OK;
}


/* a snapshot record of the layers above: the snapshot's sequence number */

static ngx_int_t
ngx_teleclinic_compact_event(ngx_teleclinic_event_t *ev, void *data)
{
    ngx_teleclinic_compact_t  *w = data;

    ev->seq = w->seq;

    return ngx_teleclinic_compact_put(w, ev);
}


static ngx_int_t
ngx_teleclinic_journal_write(ngx_fd_t fd, u_char *buf, size_t len,
    ngx_log_t *log)
{
    ssize_t  n;

    while (len) {
        n = write(fd, buf, len);

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                continue;
            }

            ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                          "teleclinic: writing the journal failed");
            return NGX_ERROR;
        }

        buf += n;
        len -= n;
    }

    return NGX_OK;
}


/*
 * The record is made before the change is applied, so that a record that
 * cannot be made (too large) leaves the zone untouched.
 */

ngx_int_t
ngx_teleclinic_journal_commit(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_event_t *ev, ngx_log_t *log)
{
    ngx_int_t                rc;
    ngx_teleclinic_line_t  rec;

    ev->seq = zone->sh->seq + 1;

    if (ngx_teleclinic_journal_record(zone->journal, &rec, ev, log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_teleclinic_zone_apply(zone, ev, log);

    if (rc == NGX_DECLINED
        && ngx_teleclinic_journal_expire(zone, ev->at, log))
    {

        /* the expiry took sequence numbers: the record is made anew */

        ngx_teleclinic_journal_record_free(&rec);
        ev->seq = zone->sh->seq + 1;

        if (ngx_teleclinic_journal_record(zone->journal, &rec, ev, log)
        != NGX_OK)
    {
            return NGX_ERROR;
        }

        rc = ngx_teleclinic_zone_apply(zone, ev, log);
    }

    if (rc != NGX_OK) {
        ngx_teleclinic_journal_record_free(&rec);

        if (rc == NGX_DECLINED) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "teleclinic zone \"%V\" is full",
                          &zone->shm_zone->shm.name);
        }

        return rc;
    }

    /*
     * the record is written while the zone is locked, so the order of
     * the journal is the order in which the changes were applied
     */
    /* the second sink: the Redis Stream that the other nodes read */

    if (zone->journal->sink && ev->node.len == 0) {
        zone->journal->sink(zone->journal->sink_data, ev, rec.data, rec.len);
    }

    if (ngx_teleclinic_journal_append(zone->journal, &rec, log) != NGX_OK) {
        return NGX_ERROR;
    }

    zone->sh->journal_records++;

    return NGX_OK;
}


/*
 * Makes room in a full zone: cancelled appointments whose time has passed
 * hold nothing anyone needs.  Each goes through the journal, so a replay
 * frees the same memory.  Returns how many went.
 */

static ngx_uint_t
ngx_teleclinic_journal_expire(ngx_teleclinic_zone_t *zone, time_t now,
    ngx_log_t *log)
{
    ngx_uint_t               n, tries;
    ngx_queue_t             *q, *next;
    ngx_teleclinic_appt_t   *appt;
    ngx_teleclinic_event_t   ev;
    ngx_teleclinic_line_t  rec;

    n = 0;
    tries = 0;

    for (q = ngx_queue_head(&zone->sh->cancelled);
         q != ngx_queue_sentinel(&zone->sh->cancelled) && tries < 256;
         q = next, tries++)
    {
        next = ngx_queue_next(q);
        appt = ngx_queue_data(q, ngx_teleclinic_appt_t, cancelled);

        if (appt->end >= now) {
            continue;
        }

        ngx_memzero(&ev, sizeof(ngx_teleclinic_event_t));
        ev.op = NGX_TELECLINIC_EV_EXPIRE;
        ev.seq = zone->sh->seq + 1;
        ev.at = now;
        ev.id = appt->id;

        if (ngx_teleclinic_journal_record(zone->journal, &rec, &ev, log)
            != NGX_OK)
        {
            break;
        }

        (void) ngx_teleclinic_zone_apply(zone, &ev, log);

        if (ngx_teleclinic_journal_append(zone->journal, &rec, log)
            != NGX_OK)
        {
            break;
        }

        zone->sh->journal_records++;
        n++;
    }

    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "teleclinic zone \"%V\": %ui past cancelled "
                      "appointments expired", &zone->shm_zone->shm.name, n);
    }

    return n;
}


ngx_int_t
ngx_teleclinic_journal_record(ngx_teleclinic_journal_t *journal,
    ngx_teleclinic_line_t *rec, ngx_teleclinic_event_t *ev, ngx_log_t *log)
{
    ssize_t  n;

    rec->data = rec->buf;

    n = ngx_teleclinic_journal_encode(ev, journal->keys, rec->buf,
                                      sizeof(rec->buf));

    if (n < 0) {
        /* a directory is larger than a booking */

        rec->data = ngx_alloc(NGX_TELECLINIC_RECORD_MAX, log);
        if (rec->data == NULL) {
            return NGX_ERROR;
        }

        n = ngx_teleclinic_journal_encode(ev, journal->keys, rec->data,
                                          NGX_TELECLINIC_RECORD_MAX);
        if (n < 0) {
            ngx_teleclinic_journal_record_free(rec);
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "teleclinic: a journal record is too large");
            return NGX_ERROR;
        }
    }

    rec->len = n;

    return NGX_OK;
}


void
ngx_teleclinic_journal_record_free(ngx_teleclinic_line_t *rec)
{
    if (rec->data != rec->buf) {
        ngx_free(rec->data);
        rec->data = rec->buf;
    }
}


ngx_int_t
ngx_teleclinic_journal_append(ngx_teleclinic_journal_t *journal,
    ngx_teleclinic_line_t *rec, ngx_log_t *log)
{
    ngx_int_t  rc;

    rc = ngx_teleclinic_journal_write(journal->fd, rec->data, rec->len, log);

    ngx_teleclinic_journal_record_free(rec);

    return rc;
}


/*
 * Written directly rather than as a jansson object: this runs for every
 * change, under the zone lock.  jansson still escapes the strings.
 */

ssize_t
ngx_teleclinic_journal_encode(ngx_teleclinic_event_t *ev,
    ngx_teleclinic_keys_t *keys, u_char *buf, size_t size)
{
    u_char    *p, *last;
    uint32_t   crc;

    if (size < 64 || ev->op == 0 || ev->op > NGX_TELECLINIC_EV_LAST) {
        return NGX_ERROR;
    }

    /* "crc32hex " first, the newline last */
    p = buf + 9;
    last = buf + size - 1;

    p = ngx_slprintf(p, last, "{\"seq\":%ui,\"op\":\"%s\",\"at\":%T",
                     ev->seq, ngx_teleclinic_ops[ev->op], ev->at);

    switch (ev->op) {

    case NGX_TELECLINIC_EV_BOOK:
    case NGX_TELECLINIC_EV_APPT:
        p = ngx_teleclinic_journal_private(p, last, keys, "name", &ev->name,
                                           ev->id);
        p = ngx_teleclinic_journal_private(p, last, keys, "phone",
                                           &ev->phone, ev->id);
        p = ngx_teleclinic_journal_private(p, last, keys, "reason",
                                           &ev->reason, ev->id);

        if (p && ev->op == NGX_TELECLINIC_EV_APPT) {
            p = ngx_slprintf(p, last, ",\"status\":%ui,\"created\":%T",
                             ev->status, ev->created);

            /* each time on its own: any of them may be unset (0) */

            if (p && ev->arrived) {
                p = ngx_slprintf(p, last, ",\"arrived\":%T", ev->arrived);
            }

            if (p && ev->visit_start) {
                p = ngx_slprintf(p, last, ",\"vstart\":%T",
                                 ev->visit_start);
            }

            if (p && ev->visit_end) {
                p = ngx_slprintf(p, last, ",\"vend\":%T", ev->visit_end);
            }

            if (p && ev->version) {
                p = ngx_slprintf(p, last, ",\"ver\":%uD", ev->version);
            }

            if (p && ev->back) {
                p = ngx_slprintf(p, last, ",\"back\":%ui", ev->back);
            }
        }

        /* fall through */

    case NGX_TELECLINIC_EV_RESCHEDULE:
        p = ngx_teleclinic_json_field(p, last, "doctor", &ev->doctor);

        if (p) {
            p = ngx_slprintf(p, last, ",\"start\":%T,\"end\":%T",
                             ev->start, ev->end);
        }

        /* fall through */

    case NGX_TELECLINIC_EV_CANCEL:
    case NGX_TELECLINIC_EV_STATUS:
    case NGX_TELECLINIC_EV_EXPIRE:
    case NGX_TELECLINIC_EV_MSG:
    case NGX_TELECLINIC_EV_BACK:
        if (p == NULL || last - p < 32) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(p, ",\"id\":\"", 7);
        p = ngx_teleclinic_appt_id_print(p, ev->id);
        *p++ = '"';

        if (ev->op == NGX_TELECLINIC_EV_STATUS) {
            p = ngx_slprintf(p, last, ",\"status\":%ui", ev->status);

        } else if (ev->op == NGX_TELECLINIC_EV_BACK) {
            p = ngx_slprintf(p, last, ",\"back\":%ui", ev->back);

        } else if (ev->op == NGX_TELECLINIC_EV_MSG) {
            p = ngx_slprintf(p, last, ",\"kind\":%ui,\"due\":%T,\"msg\":%ui",
                             ev->kind, ev->due, ev->msg);

            if (p && ev->item) {
                p = ngx_slprintf(p, last, ",\"item\":%ui", ev->item);
            }

            if (p && ev->owner) {
                p = ngx_slprintf(p, last, ",\"own\":%ui", ev->owner);
            }
        }

        break;

    case NGX_TELECLINIC_EV_DIRECTORY:
        p = ngx_teleclinic_json_field(p, last, "directory",
                                         &ev->directory);
        if (p == NULL || last - p < 64 + 16) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(p, ",\"hash\":\"", 9);
        p = ngx_hex_dump(p, ev->hash, 32);
        *p++ = '"';
        break;

    case NGX_TELECLINIC_EV_SENT:
        p = ngx_slprintf(p, last, ",\"msg\":%ui", ev->msg);
        break;

    case NGX_TELECLINIC_EV_ROOM:
        p = ngx_teleclinic_json_field(p, last, "doctor", &ev->doctor);

        if (p) {
            p = ngx_slprintf(p, last, ",\"visits\":%ui,\"average\":%ui",
                             ev->visits, ev->average);
        }

        break;

    case NGX_TELECLINIC_EV_NOTE:
    case NGX_TELECLINIC_EV_ITEM:
    case NGX_TELECLINIC_EV_DROP:
    case NGX_TELECLINIC_EV_CLOSE:
    case NGX_TELECLINIC_EV_RATING:
    case NGX_TELECLINIC_EV_FORGET:
    case NGX_TELECLINIC_EV_CONSENT:
        p = ngx_teleclinic_journal_put_record(p, last, keys, ev);
        break;
    }

    /* another node's event: who made it, where the stream had it */

    if (p && ev->node.len) {
        p = ngx_teleclinic_json_field(p, last, "node", &ev->node);

        if (p) {
            p = ngx_slprintf(p, last, ",\"w\":%ui,\"oseq\":%ui",
                             ev->worker, ev->oseq);
        }
    }

    if (p && ev->rid.len) {
        p = ngx_teleclinic_json_field(p, last, "rid", &ev->rid);
    }

    if (p == NULL || p >= last) {
        return NGX_ERROR;
    }

    *p++ = '}';

    /*
     * the CRC-32 of ngx_crc32_update(), by zlib, which reads words rather
     * than bytes: on a note's line a fifth of the cost
     */
    crc = (uint32_t) crc32(0, buf + 9, p - (buf + 9));

    (void) ngx_sprintf(buf, "%08xD", crc);
    buf[8] = ' ';
    *p++ = '\n';

    return p - buf;
}


/*
 * The fields of a record's event; its texts are the patient's as much as
 * the name is, and sealed like it, and so is a consent's decision.
 * Numbers and texts only while set.
 */

static u_char *
ngx_teleclinic_journal_put_record(u_char *p, u_char *last,
    ngx_teleclinic_keys_t *keys, ngx_teleclinic_event_t *ev)
{
    ngx_str_t    decision;
    ngx_uint_t   i;

    static const char  *texts[] = { "t0", "t1", "t2", "t3", "t4" };

    if (last - p < 128) {
        return NULL;
    }

    p = ngx_cpymem(p, ",\"id\":\"", 7);
    p = ngx_teleclinic_appt_id_print(p, ev->id);
    *p++ = '"';

    if (ev->item) {
        p = ngx_slprintf(p, last, ",\"item\":%ui", ev->item);
    }

    if (ev->item_kind) {
        p = ngx_slprintf(p, last, ",\"ikind\":%ui", ev->item_kind);
    }

    if (ev->created) {
        p = ngx_slprintf(p, last, ",\"created\":%T", ev->created);
    }

    if (ev->due) {
        p = ngx_slprintf(p, last, ",\"due\":%T", ev->due);
    }

    if (ev->quiet) {
        p = ngx_slprintf(p, last, ",\"quiet\":1");
    }

    for (i = 0; ev->op != NGX_TELECLINIC_EV_CONSENT && i < 2; i++) {
        if (ev->num[i]) {
            p = ngx_slprintf(p, last, ",\"n%ui\":%ui", i, ev->num[i]);
        }
    }

    /*
     * a consent's decision, granted or not, as "g": one byte either way,
     * so that the sealed item's length does not tell which
     */
    if (ev->op == NGX_TELECLINIC_EV_CONSENT) {
        decision.data = (u_char *) (ev->num[0] ? "1" : "0");
        decision.len = 1;

        p = ngx_teleclinic_journal_private(p, last, keys, "g", &decision,
                                           ev->id);
    }

    /* a consent and the snapshot taken under it: the request's id */
    if (ev->request) {
        p = ngx_slprintf(p, last, ",\"req\":%ui", ev->request);
    }

    if (ev->ref.len) {
        p = ngx_teleclinic_json_field(p, last, "ref", &ev->ref);
    }

    for (i = 0; p && i < NGX_TELECLINIC_TEXTS; i++) {
        if (ev->text[i].len) {
            p = ngx_teleclinic_journal_private(p, last, keys, texts[i],
                                               &ev->text[i], ev->id);
        }
    }

    return p;
}


/* what ngx_teleclinic_journal_put_record() wrote */

static ngx_int_t
ngx_teleclinic_journal_get_record(json_t *o, ngx_teleclinic_event_t *ev,
    ngx_teleclinic_keys_t *keys, ngx_pool_t *pool)
{
    u_char      name[8];
    ngx_int_t   rc;
    ngx_str_t   s;
    ngx_uint_t  i;

    static const char  *texts[] = { "t0", "t1", "t2", "t3", "t4" };

    if (ngx_teleclinic_journal_str(o, "id", &s, pool) != NGX_OK
        || ngx_teleclinic_appt_id_parse(s.data, s.len, &ev->id) != NGX_OK
        || ngx_teleclinic_journal_uint(o, "item", NGX_MAX_INT32_VALUE,
                                       &ev->item) != NGX_OK
        || ngx_teleclinic_journal_uint(o, "ikind", 255, &ev->item_kind)
           != NGX_OK
        || ngx_teleclinic_journal_uint(o, "n0", NGX_MAX_INT32_VALUE,
                                       &ev->num[0]) != NGX_OK
        || ngx_teleclinic_journal_uint(o, "n1", NGX_MAX_INT32_VALUE,
                                       &ev->num[1]) != NGX_OK
        || ngx_teleclinic_journal_uint(o, "quiet", 1, &ev->quiet) != NGX_OK
        || ngx_teleclinic_journal_uint(o, "req", NGX_TELECLINIC_REQUEST_MAX,
                                       &ev->request) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ev->created = ngx_teleclinic_journal_int(o, "created", 0);
    ev->due = ngx_teleclinic_journal_int(o, "due", 0);

    if (json_object_get(o, "ref")
        && ngx_teleclinic_journal_str(o, "ref", &ev->ref, pool) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * a consent's decision is a flag, as "g"; journals written before it
     * was sealed have it as "n0", set when granted
     */
    if (ev->op == NGX_TELECLINIC_EV_CONSENT) {
        ev->num[0] = (ev->num[0] != 0);
        ev->num[1] = 0;

        if (json_object_get(o, "g") || json_object_get(o, "eg")) {
            rc = ngx_teleclinic_journal_unseal(o, "g", &s, ev->id, keys,
                                               pool);
            if (rc != NGX_OK) {
                return rc;
            }

            if (s.len != 1 || (s.data[0] != '0' && s.data[0] != '1')) {
                return NGX_ERROR;
            }

            ev->num[0] = s.data[0] - '0';
        }
    }

    for (i = 0; i < NGX_TELECLINIC_TEXTS; i++) {
        ngx_sprintf(name, "e%s%Z", texts[i]);

        if (json_object_get(o, texts[i]) == NULL
            && json_object_get(o, (char *) name) == NULL)
        {
            continue;
        }

        rc = ngx_teleclinic_journal_unseal(o, texts[i], &ev->text[i], ev->id,
                                           keys, pool);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return NGX_OK;
}


/*
 * A patient's field: as "e<key>", sealed and in base64url, when a data
 * key is configured, else as "<key>".  The associated data bind it to its
 * field and its appointment.
 */

static u_char *
ngx_teleclinic_journal_private(u_char *p, u_char *last,
    ngx_teleclinic_keys_t *keys, const char *key, ngx_str_t *value,
    uint64_t id)
{
    u_char     aad[NGX_TELECLINIC_AAD_LEN];
    u_char     sealed[NGX_TELECLINIC_SEALED_MAX];
    size_t     aad_len;
    ngx_str_t  src, dst;

    if (keys == NULL || keys->nkeys == 0) {
        return ngx_teleclinic_json_field(p, last, key, value);
    }

    if (p == NULL || value->len > NGX_TELECLINIC_PRIVATE_MAX) {
        return NULL;
    }

    aad_len = ngx_teleclinic_journal_aad(aad, key, id);

    if (ngx_teleclinic_seal(keys, aad, aad_len, value->data, value->len,
                            sealed)
        != NGX_OK)
    {
        return NULL;
    }

    src.data = sealed;
    src.len = value->len + NGX_TELECLINIC_SEAL_OVERHEAD;

    if ((size_t) (last - p) < ngx_strlen(key) + 6
                              + ngx_base64_encoded_length(src.len))
    {
        return NULL;
    }

    p = ngx_sprintf(p, ",\"e%s\":\"", key);

    dst.data = p;
    ngx_encode_base64url(&dst, &src);
    p += dst.len;
    *p++ = '"';

    return p;
}


/* NGX_ABORT: sealed with a key not configured, or not what was sealed */

static ngx_int_t
ngx_teleclinic_journal_unseal(json_t *o, const char *key, ngx_str_t *s,
    uint64_t id, ngx_teleclinic_keys_t *keys, ngx_pool_t *pool)
{
    u_char      aad[NGX_TELECLINIC_AAD_LEN], name[16];
    size_t      aad_len;
    json_t     *v;
    ngx_int_t   rc;
    ngx_str_t   src, sealed;

    ngx_sprintf(name, "e%s%Z", key);

    v = json_object_get(o, (char *) name);

    if (v == NULL) {
        return ngx_teleclinic_journal_str(o, key, s, pool);
    }

    if (!json_is_string(v)) {
        return NGX_ERROR;
    }

    src.data = (u_char *) json_string_value(v);
    src.len = json_string_length(v);

    sealed.data = ngx_pnalloc(pool, ngx_base64_decoded_length(src.len) + 1);
    if (sealed.data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_decode_base64url(&sealed, &src) != NGX_OK
        || sealed.len < NGX_TELECLINIC_SEAL_OVERHEAD)
    {
        return NGX_ERROR;
    }

    s->len = sealed.len - NGX_TELECLINIC_SEAL_OVERHEAD;
    s->data = ngx_pnalloc(pool, s->len + 1);
    if (s->data == NULL) {
        return NGX_ERROR;
    }

    aad_len = ngx_teleclinic_journal_aad(aad, key, id);

    rc = ngx_teleclinic_unseal(keys, aad, aad_len, sealed.data, sealed.len,
                               s->data);

    return (rc == NGX_OK) ? NGX_OK : NGX_ABORT;
}


/* "field:appointment id" */

static size_t
ngx_teleclinic_journal_aad(u_char *aad, const char *key, uint64_t id)
{
    u_char  *p;

    p = ngx_sprintf(aad, "%s:", key);
    p = ngx_teleclinic_appt_id_print(p, id);

    return p - aad;
}


static ngx_int_t
ngx_teleclinic_journal_str(json_t *o, const char *key, ngx_str_t *s,
    ngx_pool_t *pool)
{
    json_t  *v;

    v = json_object_get(o, key);

    if (!json_is_string(v)) {
        return NGX_ERROR;
    }

    s->len = json_string_length(v);
    s->data = ngx_pnalloc(pool, s->len + 1);
    if (s->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(s->data, json_string_value(v), s->len);

    return NGX_OK;
}


/* a Redis Stream entry's id: "milliseconds-sequence" */

ngx_int_t
ngx_teleclinic_journal_rid(ngx_str_t *rid)
{
    u_char      *p, *last;
    ngx_uint_t   dash;

    if (rid->len < 3 || rid->len > NGX_TELECLINIC_RID_MAX) {
        return NGX_ERROR;
    }

    dash = 0;
    last = rid->data + rid->len;

    for (p = rid->data; p < last; p++) {
        if (*p == '-' && !dash && p != rid->data && p + 1 != last) {
            dash = 1;
            continue;
        }

        if (*p < '0' || *p > '9') {
            return NGX_ERROR;
        }
    }

    return dash ? NGX_OK : NGX_ERROR;
}


static ngx_int_t
ngx_teleclinic_journal_hex(u_char *dst, u_char *src, size_t n)
{
    ngx_int_t  hi, lo;

    while (n--) {
        hi = ngx_hextoi(src, 1);
        lo = ngx_hextoi(src + 1, 1);

        if (hi == NGX_ERROR || lo == NGX_ERROR) {
            return NGX_ERROR;
        }

        *dst++ = (u_char) (hi << 4 | lo);
        src += 2;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_teleclinic_journal_uint(json_t *o, const char *key, ngx_uint_t max,
    ngx_uint_t *value)
{
    json_t      *v;
    json_int_t   n;

    v = json_object_get(o, key);

    if (v == NULL) {
        *value = 0;
        return NGX_OK;
    }

    if (!json_is_integer(v)) {
        return NGX_ERROR;
    }

    n = json_integer_value(v);

    if (n < 0 || (ngx_uint_t) n > max) {
        return NGX_ERROR;
    }

    *value = (ngx_uint_t) n;

    return NGX_OK;
}


static time_t
ngx_teleclinic_journal_int(json_t *o, const char *key, time_t none)
{
    json_t  *v;

    v = json_object_get(o, key);

    return json_is_integer(v) ? (time_t) json_integer_value(v) : none;
}


ngx_int_t
ngx_teleclinic_journal_decode(u_char *line, size_t len,
    ngx_teleclinic_event_t *ev, ngx_teleclinic_keys_t *keys,
    ngx_pool_t *pool)
{
    u_char        *p;
    json_t        *o, *v;
    uint32_t       crc, want;
    ngx_int_t      rc;
    ngx_str_t      s;
    ngx_uint_t     i, version, private;
    json_error_t   jerr;

    private = 0;

    if (len < 11 || line[8] != ' ') {
        return NGX_ERROR;
    }

    want = 0;

    for (i = 0; i < 8; i++) {
        p = &line[i];

        if (*p >= '0' && *p <= '9') {
            want = (want << 4) | (*p - '0');

        } else if (*p >= 'a' && *p <= 'f') {
            want = (want << 4) | (*p - 'a' + 10);

        } else {
            return NGX_ERROR;
        }
    }

    crc = (uint32_t) crc32(0, line + 9, len - 9);

    if (crc != want) {
        return NGX_ERROR;
    }

    o = json_loadb((char *) line + 9, len - 9, 0, &jerr);
    if (o == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(ev, sizeof(ngx_teleclinic_event_t));

    rc = NGX_ERROR;

    v = json_object_get(o, "op");
    if (!json_is_string(v)) {
        goto done;
    }

    for (i = 1; i < sizeof(ngx_teleclinic_ops) / sizeof(char *); i++) {
        if (ngx_strcmp(json_string_value(v), ngx_teleclinic_ops[i]) == 0) {
            ev->op = i;
            break;
        }
    }

    if (ev->op == 0) {
        goto done;
    }

    ev->at = ngx_teleclinic_journal_int(o, "at", -1);
    ev->start = ngx_teleclinic_journal_int(o, "start", -1);
    ev->end = ngx_teleclinic_journal_int(o, "end", -1);
    ev->created = ngx_teleclinic_journal_int(o, "created", -1);
    ev->due = ngx_teleclinic_journal_int(o, "due", -1);

    /*
     * The visit's times are left out of a record while they are unset,
     * and unset is 0 in the zone: the appointment's answer shows only
     * the times that are set.
     */
    ev->arrived = ngx_teleclinic_journal_int(o, "arrived", 0);
    ev->visit_start = ngx_teleclinic_journal_int(o, "vstart", 0);
    ev->visit_end = ngx_teleclinic_journal_int(o, "vend", 0);

    /* counters and codes are checked: they index arrays and trees */

    if (ngx_teleclinic_journal_uint(o, "seq", NGX_MAX_INT_T_VALUE, &ev->seq)
        != NGX_OK
        || ngx_teleclinic_journal_uint(o, "msg", NGX_MAX_INT_T_VALUE,
                                       &ev->msg) != NGX_OK
        || ngx_teleclinic_journal_uint(o, "item", NGX_MAX_INT32_VALUE,
                                       &ev->item) != NGX_OK
        || ngx_teleclinic_journal_uint(o, "status",
                                       NGX_TELECLINIC_NSTATUS - 1,
                                       &ev->status) != NGX_OK
        || ngx_teleclinic_journal_uint(o, "kind",
                                       NGX_TELECLINIC_MSG_LAST,
                                       &ev->kind) != NGX_OK
        || ngx_teleclinic_journal_uint(o, "visits", NGX_MAX_INT_T_VALUE,
                                       &ev->visits) != NGX_OK
        || ngx_teleclinic_journal_uint(o, "average", NGX_MAX_INT32_VALUE,
                                       &ev->average) != NGX_OK
        || ngx_teleclinic_journal_uint(o, "ver", NGX_MAX_UINT32_VALUE,
                                       &version) != NGX_OK
        || ngx_teleclinic_journal_uint(o, "w", NGX_MAX_INT32_VALUE,
                                       &ev->worker) != NGX_OK
        || ngx_teleclinic_journal_uint(o, "oseq", NGX_MAX_INT_T_VALUE,
                                       &ev->oseq) != NGX_OK
        || ngx_teleclinic_journal_uint(o, "own", 0x1ffff, &ev->owner)
           != NGX_OK
        || ngx_teleclinic_journal_uint(o, "back", NGX_MAX_INT_T_VALUE,
                                       &ev->back) != NGX_OK)
    {
        goto done;
    }

    ev->version = (uint32_t) version;

    switch (ev->op) {

    case NGX_TELECLINIC_EV_BOOK:
    case NGX_TELECLINIC_EV_APPT:
        /* the patient's fields, once the id they are bound to is known */
        private = 1;

        /* fall through */

    case NGX_TELECLINIC_EV_RESCHEDULE:
        if (ngx_teleclinic_journal_str(o, "doctor", &ev->doctor, pool)
            != NGX_OK)
        {
            goto done;
        }

        /* fall through */

    case NGX_TELECLINIC_EV_CANCEL:
    case NGX_TELECLINIC_EV_STATUS:
    case NGX_TELECLINIC_EV_EXPIRE:
    case NGX_TELECLINIC_EV_MSG:
    case NGX_TELECLINIC_EV_BACK:
        if (ngx_teleclinic_journal_str(o, "id", &s, pool) != NGX_OK
            || ngx_teleclinic_appt_id_parse(s.data, s.len, &ev->id) != NGX_OK)
        {
            goto done;
        }

        break;

    case NGX_TELECLINIC_EV_DIRECTORY:
        if (ngx_teleclinic_journal_str(o, "directory", &ev->directory, pool)
            != NGX_OK
            || ngx_teleclinic_journal_str(o, "hash", &s, pool) != NGX_OK
            || s.len != 64
            || ngx_teleclinic_journal_hex(ev->hash, s.data, 32) != NGX_OK)
        {
            goto done;
        }

        break;

    case NGX_TELECLINIC_EV_ROOM:
        if (ngx_teleclinic_journal_str(o, "doctor", &ev->doctor, pool)
            != NGX_OK
            || ngx_teleclinic_id_valid(ev->doctor.data, ev->doctor.len)
               != NGX_OK)
        {
            goto done;
        }

        break;

    case NGX_TELECLINIC_EV_NOTE:
    case NGX_TELECLINIC_EV_ITEM:
    case NGX_TELECLINIC_EV_DROP:
    case NGX_TELECLINIC_EV_CLOSE:
    case NGX_TELECLINIC_EV_RATING:
    case NGX_TELECLINIC_EV_FORGET:
    case NGX_TELECLINIC_EV_CONSENT:
        rc = ngx_teleclinic_journal_get_record(o, ev, keys, pool);
        if (rc != NGX_OK) {
            goto done;
        }

        break;
    }

    if ((json_object_get(o, "node")
         && (ngx_teleclinic_journal_str(o, "node", &ev->node, pool) != NGX_OK
             || ev->node.len > NGX_TELECLINIC_NODE_MAX
             || ngx_teleclinic_id_valid(ev->node.data, ev->node.len)
                != NGX_OK))
        || (json_object_get(o, "rid")
            && (ngx_teleclinic_journal_str(o, "rid", &ev->rid, pool)
                != NGX_OK
                || ngx_teleclinic_journal_rid(&ev->rid) != NGX_OK)))
    {
        goto done;
    }

    if (private) {
        rc = ngx_teleclinic_journal_unseal(o, "name", &ev->name, ev->id,
                                           keys, pool);
        if (rc == NGX_OK) {
            rc = ngx_teleclinic_journal_unseal(o, "phone", &ev->phone, ev->id,
                                               keys, pool);
        }

        if (rc == NGX_OK) {
            rc = ngx_teleclinic_journal_unseal(o, "reason", &ev->reason,
                                               ev->id, keys, pool);
        }

        if (rc != NGX_OK) {
            goto done;
        }
    }

    rc = NGX_OK;

done:

    json_decref(o);

    return rc;
}


ngx_int_t
ngx_teleclinic_journal_init_process(ngx_cycle_t *cycle,
    ngx_teleclinic_journal_t *journal)
{
    ngx_queue_init(&ngx_teleclinic_waiting);
    ngx_queue_init(&ngx_teleclinic_syncing);
    ngx_teleclinic_sync_busy = 0;

#if (NGX_THREADS)
    if (journal->thread_pool) {
        ngx_teleclinic_sync_task = ngx_thread_task_alloc(cycle->pool,
                                          sizeof(ngx_teleclinic_sync_ctx_t));
        if (ngx_teleclinic_sync_task == NULL) {
            return NGX_ERROR;
        }

        ngx_teleclinic_sync_task->handler =
                                       ngx_teleclinic_journal_sync_thread;
        ngx_teleclinic_sync_task->event.handler =
                                       ngx_teleclinic_journal_sync_event;
        ngx_teleclinic_sync_task->event.data = journal;
        ngx_teleclinic_sync_task->event.log = cycle->log;
    }
#endif

    return NGX_OK;
}


void
ngx_teleclinic_journal_sync(ngx_teleclinic_journal_t *journal,
    ngx_teleclinic_journal_waiter_t *w)
{
    ngx_queue_insert_tail(&ngx_teleclinic_waiting, &w->queue);

    if (!ngx_teleclinic_sync_busy) {
        ngx_teleclinic_journal_start(journal);
    }
}


void
ngx_teleclinic_journal_cancel(ngx_teleclinic_journal_waiter_t *w)
{
    if (w->queue.prev) {
        ngx_queue_remove(&w->queue);
        w->queue.prev = NULL;
    }
}


static void
ngx_teleclinic_journal_start(ngx_teleclinic_journal_t *journal)
{
    ngx_int_t                   rc;
    ngx_queue_t                 done;
#if (NGX_THREADS)
    ngx_teleclinic_sync_ctx_t  *ctx;
#endif

    if (ngx_queue_empty(&ngx_teleclinic_waiting)) {
        return;
    }

    /* everything written so far is covered by the fsync that starts now */

    ngx_queue_add(&ngx_teleclinic_syncing, &ngx_teleclinic_waiting);
    ngx_queue_init(&ngx_teleclinic_waiting);

#if (NGX_THREADS)
    if (journal->fsync && journal->thread_pool) {
        ctx = ngx_teleclinic_sync_task->ctx;
        ctx->fd = journal->fd;
        ctx->err = 0;

        if (ngx_thread_task_post(journal->thread_pool,
                                 ngx_teleclinic_sync_task)
            == NGX_OK)
        {
            ngx_teleclinic_sync_busy = 1;
            return;
        }
    }
#endif

    rc = NGX_OK;

    if (journal->fsync && fdatasync(journal->fd) == -1) {
        ngx_log_error(NGX_LOG_CRIT, ngx_cycle->log, ngx_errno,
                      "teleclinic: fdatasync() of the journal failed");
        rc = NGX_ERROR;
    }

    ngx_queue_init(&done);
    ngx_queue_add(&done, &ngx_teleclinic_syncing);
    ngx_queue_init(&ngx_teleclinic_syncing);

    ngx_teleclinic_journal_done(&done, rc);
}


static void
ngx_teleclinic_journal_done(ngx_queue_t *queue, ngx_int_t rc)
{
    ngx_queue_t                      *q;
    ngx_teleclinic_journal_waiter_t  *w;

    while (!ngx_queue_empty(queue)) {
        q = ngx_queue_head(queue);
        ngx_queue_remove(q);

        w = ngx_queue_data(q, ngx_teleclinic_journal_waiter_t, queue);
        w->queue.prev = NULL;

        w->handler(w->data, rc);
    }
}


#if (NGX_THREADS)

static void
ngx_teleclinic_journal_sync_thread(void *data, ngx_log_t *log)
{
    ngx_teleclinic_sync_ctx_t  *ctx = data;

    if (fdatasync(ctx->fd) == -1) {
        ctx->err = ngx_errno;
    }
}


static void
ngx_teleclinic_journal_sync_event(ngx_event_t *ev)
{
    ngx_teleclinic_journal_t  *journal = ev->data;

    ngx_int_t                   rc;
    ngx_queue_t                 done;
    ngx_teleclinic_sync_ctx_t  *ctx;

    ctx = ngx_teleclinic_sync_task->ctx;
    rc = NGX_OK;

    if (ctx->err) {
        ngx_log_error(NGX_LOG_CRIT, ev->log, ctx->err,
                      "teleclinic: fdatasync() of the journal failed");
        rc = NGX_ERROR;
    }

    ngx_teleclinic_sync_busy = 0;

    ngx_queue_init(&done);
    ngx_queue_add(&done, &ngx_teleclinic_syncing);
    ngx_queue_init(&ngx_teleclinic_syncing);

    /* those who came meanwhile go with the next fsync */
    ngx_teleclinic_journal_start(journal);

    ngx_teleclinic_journal_done(&done, rc);
}

#endif
