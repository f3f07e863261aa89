
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_teleclinic_snapshot.h"
#include "ngx_teleclinic_request.h"
#include "ngx_teleclinic_record.h"


#define NGX_TELECLINIC_SNAPSHOT_AAD_LEN                                      \
    (sizeof("snapshot:") - 1 + NGX_TELECLINIC_SNAPSHOT_NAME_LEN)


static u_char *ngx_teleclinic_snapshot_name(u_char *p, uint64_t appt,
    ngx_uint_t id);
static size_t ngx_teleclinic_snapshot_aad(u_char *aad, uint64_t appt,
    ngx_uint_t id);
static ngx_int_t ngx_teleclinic_snapshot_named(ngx_teleclinic_zone_t *zone,
    u_char *name, size_t len);
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


ngx_int_t
ngx_teleclinic_snapshot_write(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_keys_t *keys,
    uint64_t appt, ngx_uint_t id, u_char *data, size_t len,
    ngx_pool_t *pool, ngx_log_t *log)
{
    int        fd, dirfd;
    u_char     name[NGX_TELECLINIC_SNAPSHOT_NAME_LEN + 1];
    u_char     aad[NGX_TELECLINIC_SNAPSHOT_AAD_LEN];
    u_char    *out;
    size_t     n;
    ssize_t    written;
    ngx_int_t  rc;

    dirfd = zone->snapshot_dir;

    if (dirfd == NGX_INVALID_FILE) {
        return NGX_ERROR;
    }

    *ngx_teleclinic_snapshot_name(name, appt, id) = '\0';

    out = data;

    if (keys && keys->nkeys) {
        out = ngx_pnalloc(pool, len + NGX_TELECLINIC_SEAL_OVERHEAD);
        if (out == NULL) {
            return NGX_ERROR;
        }

        if (ngx_teleclinic_seal(keys, aad,
                                ngx_teleclinic_snapshot_aad(aad, appt, id),
                                data, len, out)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, log, 0,
                          "teleclinic: cannot seal snapshot \"%s\"", name);
            return NGX_ERROR;
        }

        len += NGX_TELECLINIC_SEAL_OVERHEAD;
    }

    fd = openat(dirfd, (char *) name, O_WRONLY|O_CREAT|O_TRUNC, 0600);

    if (fd == -1) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      "teleclinic: openat(\"%s\") failed", name);
        return NGX_ERROR;
    }

    rc = NGX_OK;

    for (n = 0; n < len; n += written) {
        written = write(fd, out + n, len - n);

        if (written == -1) {
            if (ngx_errno == NGX_EINTR) {
                written = 0;
                continue;
            }

            ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                          "teleclinic: write(\"%s\") failed", name);
            rc = NGX_ERROR;
            break;
        }
    }

    /* the bytes, then the name in the directory, before the event */

    if (rc == NGX_OK && fsync(fd) == -1) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      "teleclinic: fsync(\"%s\") failed", name);
        rc = NGX_ERROR;
    }

    if (close(fd) == -1) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "teleclinic: close(\"%s\") failed", name);
    }

    if (rc == NGX_OK && fsync(dirfd) == -1) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      "teleclinic: fsync() of the snapshot directory failed");
        rc = NGX_ERROR;
    }

    if (rc != NGX_OK) {
        (void) unlinkat(dirfd, (char *) name, 0);
    }

    return rc;
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
    ngx_fd_t             fd;
    ngx_core_conf_t     *ccf;
    ngx_pool_cleanup_t  *cln;

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

    (void) ngx_teleclinic_snapshot_sweep(zone, 0, cycle->log);

    return NGX_OK;
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
 * Files of other names are not ours and are left alone.  The directory
 * is read through a descriptor of its own, opened from the master's.
 */

ngx_uint_t
ngx_teleclinic_snapshot_sweep(ngx_teleclinic_zone_t *zone, time_t older,
    ngx_log_t *log)
{
    int            fd;
    DIR           *dir;
    u_char        *name;
    size_t         len;
    time_t         now;
    ngx_uint_t     removed;
    struct stat    st;
    struct dirent *de;

    if (zone->snapshot_dir == NGX_INVALID_FILE) {
        return 0;
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

        return 0;
    }

    now = ngx_time();
    removed = 0;

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

        if (ngx_teleclinic_snapshot_named(zone, name, len) != NGX_DECLINED)
        {
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

        removed++;

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "teleclinic: removed the orphan snapshot \"%s\"",
                      name);
    }

    if (closedir(dir) == -1) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "teleclinic: closedir() of \"%V\" failed",
                      &zone->snapshot_path);
    }

    if (removed && fsync(zone->snapshot_dir) == -1) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      "teleclinic: fsync() of the snapshot directory failed");
    }

    return removed;
}


/*
 * NGX_OK: a snapshot of a record; NGX_DECLINED: named like one, of no
 * record; NGX_ERROR: not a snapshot's name.
 */

static ngx_int_t
ngx_teleclinic_snapshot_named(ngx_teleclinic_zone_t *zone, u_char *name,
    size_t len)
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
