
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <openssl/crypto.h>
#include "ngx_teleclinic_snapshot.h"
#include "ngx_teleclinic_request.h"
#include "ngx_teleclinic_record.h"
#include "ngx_teleclinic_journal.h"


#define NGX_TELECLINIC_SNAPSHOT_AAD_LEN                                      \
    (sizeof("snapshot:") - 1 + NGX_TELECLINIC_SNAPSHOT_NAME_LEN)

/* a file sealed anew is written under its name and this, then renamed */
#define NGX_TELECLINIC_SNAPSHOT_NEW      ".new"
#define NGX_TELECLINIC_SNAPSHOT_NEW_LEN                                      \
    (sizeof(NGX_TELECLINIC_SNAPSHOT_NEW) - 1)


static u_char *ngx_teleclinic_snapshot_name(u_char *p, uint64_t appt,
    ngx_uint_t id);
static size_t ngx_teleclinic_snapshot_aad(u_char *aad, uint64_t appt,
    ngx_uint_t id);
static void ngx_teleclinic_snapshot_store(ngx_teleclinic_snapshot_file_t *f,
    u_char *tmp);
static ngx_err_t ngx_teleclinic_snapshot_put(int dirfd, char *name,
    u_char *data, size_t len, const char **failed);
#if (NGX_THREADS)
static void ngx_teleclinic_snapshot_thread(void *data, ngx_log_t *log);
#endif
static ngx_int_t ngx_teleclinic_snapshot_pass(ngx_teleclinic_zone_t *zone,
    time_t older, ngx_teleclinic_keys_t *reseal, ngx_uint_t *removed,
    ngx_log_t *log);
static ngx_int_t ngx_teleclinic_snapshot_reseal(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_keys_t *keys, u_char *name, size_t size, ngx_log_t *log);
static ngx_int_t ngx_teleclinic_snapshot_named(ngx_teleclinic_zone_t *zone,
    u_char *name, size_t len, size_t *size);
static void ngx_teleclinic_snapshot_close(void *data);


const char *
ngx_teleclinic_snapshot_type(u_char *data, size_t len)
{
    static u_char  jpeg[] = { 0xff, 0xd8, 0xff };
    static u_char  png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

    if (len > sizeof(jpeg) && ngx_memcmp(data, jpeg, sizeof(jpeg)) == 0) {
        return "image/jpeg";
    }

    if (len > sizeof(png) && ngx_memcmp(data, png, sizeof(png)) == 0) {
        return "image/png";
    }

    return NULL;
}


ngx_teleclinic_snapshot_file_t *
ngx_teleclinic_snapshot_file(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_keys_t *keys, uint64_t appt, ngx_uint_t id, u_char *data,
    size_t len, ngx_pool_t *pool)
{
    ngx_teleclinic_snapshot_file_t  *f;

    f = ngx_pcalloc(pool, sizeof(ngx_teleclinic_snapshot_file_t));
    if (f == NULL) {
        return NULL;
    }

    f->zone = zone;
    f->appt = appt;
    f->id = id;
    f->data = data;
    f->len = len;

    /* allocated here: a thread must not touch the request's pool */

    if (keys && keys->nkeys) {
        f->keys = keys;
        f->out = ngx_pnalloc(pool, len + NGX_TELECLINIC_SEAL_OVERHEAD);
        if (f->out == NULL) {
            return NULL;
        }
    }

    return f;
}


ngx_int_t
ngx_teleclinic_snapshot_write(ngx_teleclinic_snapshot_file_t *f,
    ngx_log_t *log)
{
    ngx_teleclinic_snapshot_store(f, NULL);

    return ngx_teleclinic_snapshot_written(f, log);
}


#if (NGX_THREADS)

ngx_int_t
ngx_teleclinic_snapshot_post(ngx_teleclinic_snapshot_file_t *f,
    ngx_thread_pool_t *tp, ngx_event_handler_pt handler, void *data,
    ngx_pool_t *pool, ngx_log_t *log)
{
    ngx_thread_task_t  *task;

    task = ngx_thread_task_alloc(pool, 0);
    if (task == NULL) {
        return NGX_ERROR;
    }

    task->ctx = f;
    task->handler = ngx_teleclinic_snapshot_thread;
    task->event.handler = handler;
    task->event.data = data;
    task->event.log = log;

    return ngx_thread_task_post(tp, task);
}


static void
ngx_teleclinic_snapshot_thread(void *data, ngx_log_t *log)
{
    ngx_teleclinic_snapshot_store(data, NULL);
}

#endif


ngx_int_t
ngx_teleclinic_snapshot_written(ngx_teleclinic_snapshot_file_t *f,
    ngx_log_t *log)
{
    u_char  name[NGX_TELECLINIC_SNAPSHOT_NAME_LEN + 1];

    if (f->failed == NULL) {
        return NGX_OK;
    }

    *ngx_teleclinic_snapshot_name(name, f->appt, f->id) = '\0';

    if (f->err == 0) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "teleclinic: cannot seal snapshot \"%s\"", name);
        return NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_CRIT, log, f->err,
                  "teleclinic: %s failed for snapshot \"%s\"",
                  f->failed, name);

    return NGX_ERROR;
}


/*
 * The write itself, in the event loop or on a thread: it neither logs
 * nor allocates, and seals with a cipher context of its own.  In place
 * (tmp NULL) the directory is fsync'd after the file, so that its name
 * too is there before the event; a file sealed anew at start is written
 * under tmp and renamed over the old one, and the caller fsyncs the
 * directory once for all of them.
 */

static void
ngx_teleclinic_snapshot_store(ngx_teleclinic_snapshot_file_t *f, u_char *tmp)
{
    int      dirfd;
    u_char   name[NGX_TELECLINIC_SNAPSHOT_NAME_LEN + 1];
    u_char   aad[NGX_TELECLINIC_SNAPSHOT_AAD_LEN];
    u_char  *out, *target;
    size_t   len;

    f->failed = NULL;
    f->err = 0;

    dirfd = f->zone->snapshot_dir;

    if (dirfd == NGX_INVALID_FILE) {
        f->failed = "opening the snapshot directory";
        f->err = NGX_EBADF;
        return;
    }

    *ngx_teleclinic_snapshot_name(name, f->appt, f->id) = '\0';

    out = f->data;
    len = f->len;

    if (f->out) {
        if (ngx_teleclinic_seal_reentrant(f->keys, aad,
                                   ngx_teleclinic_snapshot_aad(aad, f->appt,
                                                               f->id),
                                   f->data, f->len, f->out)
            != NGX_OK)
        {
            f->failed = "sealing";
            return;
        }

        out = f->out;
        len += NGX_TELECLINIC_SEAL_OVERHEAD;
    }

    target = tmp ? tmp : name;

    f->err = ngx_teleclinic_snapshot_put(dirfd, (char *) target, out, len,
                                         &f->failed);

    if (f->err == 0 && tmp
        && renameat(dirfd, (char *) tmp, dirfd, (char *) name) == -1)
    {
        f->failed = "renameat()";
        f->err = ngx_errno;
    }

    /* the bytes, then the name in the directory, before the event */

    if (f->err == 0 && tmp == NULL && fsync(dirfd) == -1) {
        f->failed = "fsync() of the directory";
        f->err = ngx_errno;
    }

    if (f->err) {
        (void) unlinkat(dirfd, (char *) target, 0);
    }
}


/* 0, or the error and what failed: nothing logged, safe on a thread */

static ngx_err_t
ngx_teleclinic_snapshot_put(int dirfd, char *name, u_char *data, size_t len,
    const char **failed)
{
    int        fd;
    size_t     n;
    ssize_t    written;
    ngx_err_t  err;

    fd = openat(dirfd, name, O_WRONLY|O_CREAT|O_TRUNC, 0600);

    if (fd == -1) {
        *failed = "openat()";
        return ngx_errno;
    }

    err = 0;

    for (n = 0; n < len; n += written) {
        written = write(fd, data + n, len - n);

        if (written == -1) {
            if (ngx_errno == NGX_EINTR) {
                written = 0;
                continue;
            }

            *failed = "write()";
            err = ngx_errno;
            break;
        }
    }

    if (err == 0 && fsync(fd) == -1) {
        *failed = "fsync()";
        err = ngx_errno;
    }

    /* a network file system may tell of a lost write only here */

    if (close(fd) == -1 && err == 0) {
        *failed = "close()";
        err = ngx_errno;
    }

    return err;
}


ngx_int_t
ngx_teleclinic_snapshot_read(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_keys_t *keys,
    uint64_t appt, ngx_uint_t id, size_t size, ngx_str_t *image,
    ngx_pool_t *pool, ngx_log_t *log)
{
    int              fd, dirfd;
    u_char           name[NGX_TELECLINIC_SNAPSHOT_NAME_LEN + 1];
    u_char           aad[NGX_TELECLINIC_SNAPSHOT_AAD_LEN];
    u_char          *buf;
    size_t           len, n;
    ssize_t          got;
    ngx_int_t        rc;
    ngx_file_info_t  fi;

    dirfd = zone->snapshot_dir;

    if (dirfd == NGX_INVALID_FILE) {
        return NGX_ERROR;
    }

    *ngx_teleclinic_snapshot_name(name, appt, id) = '\0';

    fd = openat(dirfd, (char *) name, O_RDONLY);

    if (fd == -1) {
        if (ngx_errno == NGX_ENOENT) {
            return NGX_DECLINED;
        }

        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      "teleclinic: openat(\"%s\") failed", name);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;
    buf = NULL;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      "teleclinic: fstat(\"%s\") failed", name);
        goto done;
    }

    /* sealed or not: the size tells, a key added later reads both */

    len = ngx_file_size(&fi);

    if (len != size && len != size + NGX_TELECLINIC_SEAL_OVERHEAD) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "teleclinic: snapshot \"%s\" has %uz bytes, "
                      "not %uz", name, len, size);
        goto done;
    }

    buf = ngx_pnalloc(pool, len ? len : 1);
    if (buf == NULL) {
        goto done;
    }

    for (n = 0; n < len; n += got) {
        got = read(fd, buf + n, len - n);

        if (got == -1 && ngx_errno == NGX_EINTR) {
            got = 0;
            continue;
        }

        if (got <= 0) {
            ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                          "teleclinic: read(\"%s\") failed", name);
            goto done;
        }
    }

    if (len == size) {
        image->data = buf;
        image->len = len;
        rc = NGX_OK;
        goto done;
    }

    image->data = ngx_pnalloc(pool, size ? size : 1);
    if (image->data == NULL) {
        goto done;
    }

    if (keys == NULL
        || ngx_teleclinic_unseal(keys, aad,
                                 ngx_teleclinic_snapshot_aad(aad, appt, id),
                                 buf, len, image->data)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "teleclinic: snapshot \"%s\" cannot be opened with "
                      "the data keys", name);
        goto done;
    }

    image->len = size;
    rc = NGX_OK;

done:

    if (close(fd) == -1) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "teleclinic: close(\"%s\") failed", name);
    }

    return rc;
}


ngx_int_t
ngx_teleclinic_snapshot_remove(ngx_teleclinic_zone_t *zone, uint64_t appt,
    ngx_uint_t id, ngx_log_t *log)
{
    u_char  name[NGX_TELECLINIC_SNAPSHOT_NAME_LEN + 1];

    *ngx_teleclinic_snapshot_name(name, appt, id) = '\0';

    if (unlinkat(zone->snapshot_dir, (char *) name, 0) == -1) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      "teleclinic: unlinkat(\"%s\") failed", name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_snapshot_open(ngx_cycle_t *cycle, ngx_teleclinic_zone_t *zone,
    ngx_uint_t sweep)
{
    ngx_fd_t                fd;
    ngx_uint_t              removed;
    ngx_core_conf_t        *ccf;
    ngx_pool_cleanup_t     *cln;
    ngx_teleclinic_keys_t  *keys;

    if (ngx_create_full_path(zone->snapshot_path.data, 0700) != 0
        || (ngx_create_dir(zone->snapshot_path.data, 0700) == NGX_FILE_ERROR
            && ngx_errno != NGX_EEXIST))
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "teleclinic: cannot create the snapshot directory "
                      "\"%s\"", zone->snapshot_path.data);
        return NGX_ERROR;
    }

    /*
     * the workers write in it through the descriptor opened here, so
     * that only this directory, not the path to it, must be theirs
     */

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (geteuid() == 0
        && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT
        && chown((char *) zone->snapshot_path.data, ccf->user, -1) == -1)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "chown(\"%s\", %d) failed",
                      zone->snapshot_path.data, ccf->user);
        return NGX_ERROR;
    }

    fd = open((char *) zone->snapshot_path.data, O_RDONLY|O_DIRECTORY);

    if (fd == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "teleclinic: open(\"%s\") failed",
                      zone->snapshot_path.data);
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cycle->pool, 0);
    if (cln == NULL) {
        (void) close(fd);
        return NGX_ERROR;
    }

    zone->snapshot_dir = fd;
    cln->handler = ngx_teleclinic_snapshot_close;
    cln->data = zone;

    if (!sweep) {
        return NGX_OK;
    }

    /*
     * an old data key given: as the journal's compaction does, every
     * file is sealed with the new one, so that the old key may go
     */

    keys = zone->journal->keys;

    if (keys && keys->nkeys < 2) {
        keys = NULL;
    }

    removed = 0;

    return ngx_teleclinic_snapshot_pass(zone, 0, keys, &removed, cycle->log);
}


/* "<appointment>-<id>" */

static u_char *
ngx_teleclinic_snapshot_name(u_char *p, uint64_t appt, ngx_uint_t id)
{
    p = ngx_teleclinic_appt_id_print(p, appt);

    return ngx_sprintf(p, "-%ui", id);
}


/* the sealed file is bound to its appointment and id */

static size_t
ngx_teleclinic_snapshot_aad(u_char *aad, uint64_t appt, ngx_uint_t id)
{
    u_char  *p;

    p = ngx_cpymem(aad, "snapshot:", sizeof("snapshot:") - 1);

    return ngx_teleclinic_snapshot_name(p, appt, id) - aad;
}


/*
 * A crash after a file's fsync and before its event leaves a file that
 * no record names, and so does a record forgotten after its retention:
 * such files are removed.  At start (older 0) the journal is replayed by
 * now and no worker runs; later only files older than "older" seconds
 * go, as a worker may be between a new file's fsync and its event.
 * Files of other names are not ours and are left alone.
 */

ngx_uint_t
ngx_teleclinic_snapshot_sweep(ngx_teleclinic_zone_t *zone, time_t older,
    ngx_log_t *log)
{
    ngx_uint_t  removed;

    removed = 0;

    (void) ngx_teleclinic_snapshot_pass(zone, older, NULL, &removed, log);

    return removed;
}


/*
 * One pass over the directory, read through a descriptor of its own,
 * opened from the master's: orphans are removed and, with reseal (at
 * start only), the files of records sealed with reseal's first key.  At
 * start a re-seal's file left by a crash before its rename goes too.
 * NGX_ERROR: a file could not be sealed anew, and the old key is still
 * needed.
 */

static ngx_int_t
ngx_teleclinic_snapshot_pass(ngx_teleclinic_zone_t *zone, time_t older,
    ngx_teleclinic_keys_t *reseal, ngx_uint_t *removed, ngx_log_t *log)
{
    int            fd;
    DIR           *dir;
    u_char        *name;
    size_t         len, size;
    time_t         now;
    ngx_int_t      rc, named;
    ngx_uint_t     sealed;
    struct stat    st;
    struct dirent *de;

    if (zone->snapshot_dir == NGX_INVALID_FILE) {
        return NGX_OK;
    }

    fd = openat(zone->snapshot_dir, ".", O_RDONLY|O_DIRECTORY);
    dir = (fd == -1) ? NULL : fdopendir(fd);

    if (dir == NULL) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      "teleclinic: cannot read the snapshot directory "
                      "\"%V\"", &zone->snapshot_path);
        if (fd != -1) {
            (void) close(fd);
        }

        return reseal ? NGX_ERROR : NGX_OK;
    }

    now = ngx_time();
    sealed = 0;
    rc = NGX_OK;

    for ( ;; ) {
        ngx_set_errno(0);

        de = readdir(dir);

        if (de == NULL) {
            if (ngx_errno != 0) {
                ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                              "teleclinic: readdir() of \"%V\" failed",
                              &zone->snapshot_path);
            }

            break;
        }

        name = (u_char *) de->d_name;
        len = ngx_strlen(name);

        named = ngx_teleclinic_snapshot_named(zone, name, len, &size);

        if (named == NGX_ERROR
            && older == 0
            && len > NGX_TELECLINIC_SNAPSHOT_NEW_LEN
            && ngx_strcmp(name + len - NGX_TELECLINIC_SNAPSHOT_NEW_LEN,
                          NGX_TELECLINIC_SNAPSHOT_NEW)
               == 0
            && ngx_teleclinic_snapshot_named(zone, name,
                                      len - NGX_TELECLINIC_SNAPSHOT_NEW_LEN,
                                      &size)
               != NGX_ERROR)
        {
            /* gone already when it is this pass's own, renamed */
            if (unlinkat(zone->snapshot_dir, (char *) name, 0) == -1
                && ngx_errno != NGX_ENOENT)
            {
                ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                              "teleclinic: cannot remove \"%s\"", name);
            }

            continue;
        }

        if (named == NGX_OK && reseal) {
            rc = ngx_teleclinic_snapshot_reseal(zone, reseal, name, size,
                                                log);
            if (rc == NGX_ERROR) {
                break;
            }

            if (rc == NGX_OK) {
                sealed++;
            }

            rc = NGX_OK;
            continue;
        }

        if (named != NGX_DECLINED) {
            continue;
        }

        if (older
            && (fstatat(zone->snapshot_dir, (char *) name, &st, 0) == -1
                || st.st_mtime > now - older))
        {
            continue;
        }

        if (unlinkat(zone->snapshot_dir, (char *) name, 0) == -1) {
            ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                          "teleclinic: cannot remove the orphan snapshot "
                          "\"%s\"", name);
            continue;
        }

        (*removed)++;

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "teleclinic: removed the orphan snapshot \"%s\"",
                      name);
    }

    if (closedir(dir) == -1) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "teleclinic: closedir() of \"%V\" failed",
                      &zone->snapshot_path);
    }

    /* the renames too: until then a crash leaves the old key's files */

    if ((*removed || sealed) && fsync(zone->snapshot_dir) == -1) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      "teleclinic: fsync() of the snapshot directory failed");
        rc = reseal ? NGX_ERROR : NGX_OK;
    }

    if (sealed && rc == NGX_OK) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "teleclinic: sealed %ui snapshots anew with the first "
                      "data key", sealed);
    }

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "teleclinic: the snapshots in \"%V\" could not all "
                      "be sealed with the first data key",
                      &zone->snapshot_path);
    }

    return rc;
}


/*
 * A record's file not sealed with keys[0] (sealed with an old key, or
 * written before there was a key) is read, sealed with keys[0] into
 * "<name>.new", fsync'd and renamed over the old one.  NGX_OK: sealed
 * anew; NGX_DECLINED: sealed with keys[0] already, or a file no key
 * opens, which is logged and left as it is; NGX_ERROR: the disk failed.
 */

static ngx_int_t
ngx_teleclinic_snapshot_reseal(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_keys_t *keys, u_char *name, size_t size, ngx_log_t *log)
{
    int                              fd;
    u_char                           kid[NGX_TELECLINIC_KID_LEN];
    u_char                           tmp[NGX_TELECLINIC_SNAPSHOT_NAME_LEN
                                         + NGX_TELECLINIC_SNAPSHOT_NEW_LEN
                                         + 1];
    uint64_t                         appt;
    ngx_int_t                        rc, id;
    ngx_str_t                        image;
    ngx_pool_t                      *pool;
    ngx_file_info_t                  fi;
    ngx_teleclinic_snapshot_file_t  *f;

    /* the name is checked by now */
    (void) ngx_teleclinic_appt_id_parse(name, NGX_TELECLINIC_APPT_ID_LEN,
                                        &appt);
    id = ngx_atoi(name + NGX_TELECLINIC_APPT_ID_LEN + 1,
                  ngx_strlen(name) - NGX_TELECLINIC_APPT_ID_LEN - 1);

    fd = openat(zone->snapshot_dir, (char *) name, O_RDONLY);

    if (fd == -1) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      "teleclinic: openat(\"%s\") failed", name);
        return NGX_ERROR;
    }

    rc = NGX_OK;

    if (ngx_fd_info(fd, &fi) != NGX_FILE_ERROR
        && (size_t) ngx_file_size(&fi) == size + NGX_TELECLINIC_SEAL_OVERHEAD
        && pread(fd, kid, NGX_TELECLINIC_KID_LEN, 0) == NGX_TELECLINIC_KID_LEN
        && ngx_memcmp(kid, keys->keys[0].kid, NGX_TELECLINIC_KID_LEN) == 0)
    {
        rc = NGX_DECLINED;
    }

    (void) close(fd);

    if (rc == NGX_DECLINED) {
        return NGX_DECLINED;
    }

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    /* what cannot be read is logged, and stays as it is */

    if (ngx_teleclinic_snapshot_read(zone, keys, appt, id, size, &image, pool,
                                     log)
        != NGX_OK)
    {
        rc = NGX_DECLINED;
        goto done;
    }

    f = ngx_teleclinic_snapshot_file(zone, keys, appt, id, image.data,
                                     image.len, pool);
    if (f == NULL) {
        rc = NGX_ERROR;
        goto done;
    }

    ngx_sprintf(tmp, "%s" NGX_TELECLINIC_SNAPSHOT_NEW "%Z", name);

    ngx_teleclinic_snapshot_store(f, tmp);

    rc = ngx_teleclinic_snapshot_written(f, log);

    /* the image in clear goes with the pool: no copy is left behind */
    OPENSSL_cleanse(image.data, image.len);

done:

    ngx_destroy_pool(pool);

    return rc;
}


/*
 * NGX_OK: a snapshot of a record, *size its image's; NGX_DECLINED: named
 * like one, of no record; NGX_ERROR: not a snapshot's name.
 */

static ngx_int_t
ngx_teleclinic_snapshot_named(ngx_teleclinic_zone_t *zone, u_char *name,
    size_t len, size_t *size)
{
    uint64_t                  appt;
    ngx_int_t                 id, rc;
    ngx_teleclinic_item_t    *item;
    ngx_teleclinic_record_t  *rec;

    if (len < NGX_TELECLINIC_APPT_ID_LEN + 2
        || len > NGX_TELECLINIC_SNAPSHOT_NAME_LEN
        || name[NGX_TELECLINIC_APPT_ID_LEN] != '-'
        || ngx_teleclinic_appt_id_parse(name, NGX_TELECLINIC_APPT_ID_LEN,
                                        &appt)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    id = ngx_atoi(name + NGX_TELECLINIC_APPT_ID_LEN + 1,
                  len - NGX_TELECLINIC_APPT_ID_LEN - 1);
    if (id <= 0) {
        return NGX_ERROR;
    }

    rc = NGX_DECLINED;

    ngx_teleclinic_zone_lock(zone);

    rec = ngx_teleclinic_record_lookup(zone, appt);
    item = rec ? ngx_teleclinic_item_lookup(rec, id) : NULL;

    if (item && item->kind == NGX_TELECLINIC_ITEM_SNAPSHOT) {
        *size = item->num[0];
        rc = NGX_OK;
    }

    ngx_teleclinic_zone_unlock(zone);

    return rc;
}


static void
ngx_teleclinic_snapshot_close(void *data)
{
    ngx_teleclinic_zone_t  *zone = data;

    if (close(zone->snapshot_dir) == -1) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                      "teleclinic: close() of the snapshot directory failed");
    }

    zone->snapshot_dir = NGX_INVALID_FILE;
}
