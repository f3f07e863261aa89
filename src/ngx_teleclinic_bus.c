
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <sys/un.h>
#include <openssl/rand.h>
#include "ngx_teleclinic_zone.h"
#include "ngx_teleclinic_bus.h"


/*
 * Why a mailbox and a doorbell rather than the message in the datagram:
 * a datagram socket's queue holds only net.unix.max_dgram_qlen datagrams
 * (10 by default), so a burst would be refused; a doorbell that finds
 * the queue full is not needed, since the worker has not yet read the
 * ones before it and will empty the whole mailbox when it does.
 */


static void ngx_teleclinic_bus_name(ngx_teleclinic_zone_t *zone,
    ngx_pid_t pid, struct sockaddr_un *sun, socklen_t *len);
static void ngx_teleclinic_bus_read(ngx_event_t *rev);
static void ngx_teleclinic_bus_empty_locked(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_mailbox_t *box);
static void ngx_teleclinic_bus_free_locked(ngx_teleclinic_zone_t *zone,
    ngx_queue_t *q);
static void ngx_teleclinic_bus_gone_locked(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_mailbox_t *box);


static ngx_teleclinic_zone_t          *ngx_teleclinic_bus_zone;
static ngx_connection_t               *ngx_teleclinic_bus_conn;
static ngx_teleclinic_mailbox_t       *ngx_teleclinic_bus_box;
static ngx_teleclinic_bus_handler_pt   ngx_teleclinic_bus_handler;
static ngx_teleclinic_bus_gone_pt      ngx_teleclinic_bus_gone;

/* the boxes this process put mail in since it last rang */
static u_char  ngx_teleclinic_bus_rings[NGX_TELECLINIC_WORKERS];


ngx_int_t
ngx_teleclinic_bus_init_zone(ngx_teleclinic_zone_t *zone)
{
    ngx_teleclinic_bus_sh_t  *bus;

    bus = ngx_slab_calloc(zone->shpool, sizeof(ngx_teleclinic_bus_sh_t));
    if (bus == NULL) {
        return NGX_ERROR;
    }

    bus->max = zone->shm_zone->shm.size / NGX_TELECLINIC_MAIL_SHARE;

    zone->sh->bus = bus;

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_bus_init_process(ngx_cycle_t *cycle,
    ngx_teleclinic_zone_t *zone, ngx_teleclinic_bus_handler_pt handler,
    ngx_teleclinic_bus_gone_pt gone)
{
    int                        fd, size;
    u_char                     rnd[8];
    socklen_t                  len;
    ngx_uint_t                 i;
    ngx_connection_t          *c;
    struct sockaddr_un         sun;
    ngx_teleclinic_sh_t       *sh;
    ngx_teleclinic_mailbox_t  *box;

    sh = zone->sh;
    ngx_teleclinic_bus_gone = gone;

    ngx_teleclinic_zone_lock(zone);

    if (sh->bus->instance[0] == '\0') {
        /* names of this nginx's doorbells differ from other nginxes' */
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            ngx_teleclinic_zone_unlock(zone);
            return NGX_ERROR;
        }

        ngx_hex_dump(sh->bus->instance, rnd, sizeof(rnd));
    }

    box = NULL;

    for (i = 0; i < NGX_TELECLINIC_WORKERS; i++) {

        if (sh->bus->boxes[i].pid
            && sh->bus->boxes[i].pid != ngx_pid
            && kill(sh->bus->boxes[i].pid, 0) == -1 && ngx_errno == ESRCH)
        {
            /* a worker that died without exiting */
            ngx_teleclinic_bus_gone_locked(zone, &sh->bus->boxes[i]);
        }

        if (box == NULL
            && (sh->bus->boxes[i].pid == 0
                || sh->bus->boxes[i].pid == ngx_pid))
        {
            box = &sh->bus->boxes[i];
        }
    }

    if (box == NULL) {
        ngx_teleclinic_zone_unlock(zone);
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "teleclinic: more than %d workers share the zone",
                      NGX_TELECLINIC_WORKERS);
        return NGX_ERROR;
    }

    ngx_teleclinic_bus_empty_locked(zone, box);
    box->pid = ngx_pid;

    ngx_teleclinic_zone_unlock(zone);

    ngx_teleclinic_bus_zone = zone;
    ngx_teleclinic_bus_box = box;
    ngx_teleclinic_bus_handler = handler;

    fd = socket(AF_UNIX, SOCK_DGRAM|SOCK_NONBLOCK|SOCK_CLOEXEC, 0);
    if (fd == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "teleclinic: socket() of the doorbell failed");
        return NGX_ERROR;
    }

    /* doorbells carry one byte: a small buffer holds plenty of them */
    size = 65536;
    (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(int));

    ngx_teleclinic_bus_name(zone, ngx_pid, &sun, &len);

    if (bind(fd, (struct sockaddr *) &sun, len) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "teleclinic: bind() of the doorbell failed");
        close(fd);
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, cycle->log);
    if (c == NULL) {
        close(fd);
        return NGX_ERROR;
    }

    c->type = SOCK_DGRAM;
    c->read->handler = ngx_teleclinic_bus_read;
    c->read->log = cycle->log;
    c->write->log = cycle->log;
    c->data = zone;

    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_close_connection(c);
        return NGX_ERROR;
    }

    ngx_teleclinic_bus_conn = c;

    return NGX_OK;
}


void
ngx_teleclinic_bus_exit_process(ngx_cycle_t *cycle)
{
    ngx_teleclinic_zone_t  *zone;

    zone = ngx_teleclinic_bus_zone;

    if (zone == NULL) {
        return;
    }

    ngx_teleclinic_zone_lock(zone);

    if (ngx_teleclinic_bus_box->pid == ngx_pid) {
        ngx_teleclinic_bus_empty_locked(zone, ngx_teleclinic_bus_box);
        ngx_teleclinic_bus_box->pid = 0;
    }

    ngx_teleclinic_zone_unlock(zone);

    if (ngx_teleclinic_bus_conn) {
        ngx_close_connection(ngx_teleclinic_bus_conn);
        ngx_teleclinic_bus_conn = NULL;
    }

    ngx_teleclinic_bus_zone = NULL;
}


ngx_int_t
ngx_teleclinic_bus_post_locked(ngx_teleclinic_zone_t *zone, ngx_pid_t pid,
    ngx_uint_t kind, ngx_uint_t serial, u_char *data, size_t len)
{
    size_t                     size;
    ngx_int_t                  rc;
    ngx_uint_t                 i;
    ngx_teleclinic_mail_t     *mail;
    ngx_teleclinic_mailbox_t  *box;

    rc = NGX_DECLINED;

    for (i = 0; i < NGX_TELECLINIC_WORKERS; i++) {
        box = &zone->sh->bus->boxes[i];

        if (box->pid == 0 || (pid && box->pid != pid)) {
            continue;
        }

        size = offsetof(ngx_teleclinic_mail_t, data) + len;

        if (box->count >= NGX_TELECLINIC_MAIL_MAX
            || zone->sh->bus->bytes + size > zone->sh->bus->max)
        {
            rc = NGX_ERROR;
            continue;
        }

        mail = ngx_slab_alloc_locked(zone->shpool, size);
        if (mail == NULL) {
            rc = NGX_ERROR;
            continue;
        }

        zone->sh->bus->bytes += size;

        mail->kind = kind;
        mail->serial = serial;
        mail->len = len;
        ngx_memcpy(mail->data, data, len);

        ngx_queue_insert_tail(&box->mail, &mail->queue);
        box->count++;

        ngx_teleclinic_bus_rings[i] = 1;

        if (rc != NGX_ERROR) {
            rc = NGX_OK;
        }
    }

    return rc;
}


void
ngx_teleclinic_bus_ring(ngx_teleclinic_zone_t *zone)
{
    u_char                     bell;
    socklen_t                  len;
    ngx_err_t                  err;
    ngx_pid_t                  pid;
    ngx_uint_t                 i, round;
    struct sockaddr_un         sun;
    ngx_teleclinic_mailbox_t  *box;

    if (ngx_teleclinic_bus_conn == NULL) {
        /* this worker is past its exit: the next doorbell brings these */
        return;
    }

    bell = 1;

    /* a gone worker's connections are dropped, which posts mail again */

    for (round = 0; round < 2; round++) {

        for (i = 0; i < NGX_TELECLINIC_WORKERS; i++) {

            if (!ngx_teleclinic_bus_rings[i]) {
                continue;
            }

            ngx_teleclinic_bus_rings[i] = 0;

            box = &zone->sh->bus->boxes[i];
            pid = box->pid;

            if (pid == 0) {
                continue;
            }

            ngx_teleclinic_bus_name(zone, pid, &sun, &len);

            if (sendto(ngx_teleclinic_bus_conn->fd, &bell, 1, MSG_DONTWAIT,
                       (struct sockaddr *) &sun, len)
                != -1)
            {
                continue;
            }

            err = ngx_socket_errno;

            if (err == NGX_EAGAIN || err == ENOBUFS) {
                /* its queue is full of doorbells: it will read the box */
                continue;
            }

            if (err == NGX_ECONNREFUSED || err == NGX_ENOENT) {
                ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                              "teleclinic: worker %P is gone", pid);

                ngx_teleclinic_zone_lock(zone);

                if (box->pid == pid) {
                    ngx_teleclinic_bus_gone_locked(zone, box);
                }

                ngx_teleclinic_zone_unlock(zone);
                continue;
            }

            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, err,
                          "teleclinic: sendto() of a doorbell failed");
        }
    }
}


static void
ngx_teleclinic_bus_name(ngx_teleclinic_zone_t *zone, ngx_pid_t pid,
    struct sockaddr_un *sun, socklen_t *len)
{
    u_char  *p;

    ngx_memzero(sun, sizeof(struct sockaddr_un));
    sun->sun_family = AF_UNIX;

    /* an abstract name: nothing in the file system to clean up */
    p = (u_char *) sun->sun_path + 1;
    p = ngx_sprintf(p, "ngx_teleclinic.%*s.%P",
                    (size_t) 16, zone->sh->bus->instance, pid);

    *len = (socklen_t) (p - (u_char *) sun);
}


static void
ngx_teleclinic_bus_read(ngx_event_t *rev)
{
    u_char                    buf[64];
    ssize_t                   n;
    ngx_err_t                 err;
    ngx_queue_t               mail, *q;
    ngx_connection_t         *c;
    ngx_teleclinic_zone_t    *zone;
    ngx_teleclinic_mail_t    *m;

    c = rev->data;
    zone = c->data;

    /* every doorbell first: mail posted before one is then in the box */

    for ( ;; ) {
        n = recv(c->fd, buf, sizeof(buf), 0);

        if (n >= 0) {
            continue;
        }

        err = ngx_socket_errno;

        if (err == NGX_EINTR) {
            continue;
        }

        if (err != NGX_EAGAIN) {
            ngx_log_error(NGX_LOG_ALERT, rev->log, err,
                          "teleclinic: recv() of a doorbell failed");
        }

        break;
    }

    ngx_queue_init(&mail);

    ngx_teleclinic_zone_lock(zone);

    if (!ngx_queue_empty(&ngx_teleclinic_bus_box->mail)) {
        /* the whole list moves to the local head */
        mail = ngx_teleclinic_bus_box->mail;
        mail.next->prev = &mail;
        mail.prev->next = &mail;
        ngx_queue_init(&ngx_teleclinic_bus_box->mail);
        ngx_teleclinic_bus_box->count = 0;
    }

    ngx_teleclinic_zone_unlock(zone);

    if (ngx_queue_empty(&mail)) {
        return;
    }

    /* only this worker frees its mail: it is read without the lock */

    for (q = ngx_queue_head(&mail);
         q != ngx_queue_sentinel(&mail);
         q = ngx_queue_next(q))
    {
        m = ngx_queue_data(q, ngx_teleclinic_mail_t, queue);
        ngx_teleclinic_bus_handler(m);
    }

    /* the handler's closing of a room's queue comes as one last call */
    ngx_teleclinic_bus_handler(NULL);

    ngx_teleclinic_zone_lock(zone);

    while (!ngx_queue_empty(&mail)) {
        q = ngx_queue_head(&mail);
        ngx_queue_remove(q);
        ngx_teleclinic_bus_free_locked(zone, q);
    }

    ngx_teleclinic_zone_unlock(zone);
}


static void
ngx_teleclinic_bus_empty_locked(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_mailbox_t *box)
{
    ngx_queue_t  *q;

    if (box->pid == 0) {
        ngx_queue_init(&box->mail);
        box->count = 0;
        return;
    }

    while (!ngx_queue_empty(&box->mail)) {
        q = ngx_queue_head(&box->mail);
        ngx_queue_remove(q);
        ngx_teleclinic_bus_free_locked(zone, q);
    }

    box->count = 0;
}


static void
ngx_teleclinic_bus_gone_locked(ngx_teleclinic_zone_t *zone,
    ngx_teleclinic_mailbox_t *box)
{
    ngx_pid_t  pid;

    pid = box->pid;

    ngx_teleclinic_bus_empty_locked(zone, box);
    box->pid = 0;

    /* its connections are gone with it */
    ngx_teleclinic_bus_gone(zone, pid);
}


static void
ngx_teleclinic_bus_free_locked(ngx_teleclinic_zone_t *zone, ngx_queue_t *q)
{
    ngx_teleclinic_mail_t  *m;

    m = ngx_queue_data(q, ngx_teleclinic_mail_t, queue);

    zone->sh->bus->bytes -= offsetof(ngx_teleclinic_mail_t, data) + m->len;

    ngx_slab_free_locked(zone->shpool, m);
}
