
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_teleclinic_kdf.h"
#if (__GLIBC__)
#include <malloc.h>
#endif


/*
 * The doctor login's password KDF runs on a thread of its own, one per
 * worker, with its own queue: never on nginx's thread pools, where the
 * journal's fsync would wait behind it, and never more than the caller's
 * limit at once.  The thread tells the event loop through a pipe; nginx's
 * ngx_notify() is not used, as it holds one handler for the whole
 * process and nginx's thread pools already own it.
 */


/* costs a hash may ask for: 128 * N * r bytes of memory per login */
#define NGX_TELECLINIC_SCRYPT_N_MAX    (1 << 20)
#define NGX_TELECLINIC_SCRYPT_NR_MAX   (1 << 19)
#define NGX_TELECLINIC_SCRYPT_P_MAX    16


static ngx_int_t ngx_teleclinic_password_number(ngx_str_t *s, uint64_t min,
    uint64_t max, uint64_t *v);
static ngx_int_t ngx_teleclinic_password_base64(ngx_str_t *s, u_char *dst,
    size_t min, size_t max, size_t *len);

ngx_int_t
ngx_teleclinic_password_parse(ngx_str_t *text, ngx_teleclinic_password_t *pw)
{
    u_char                     *p, *last, *dollar;
    size_t                      len;
    ngx_str_t                   f[6];
    ngx_uint_t                  i;
    ngx_teleclinic_password_t   tmp;

    if (pw == NULL) {
        pw = &tmp;
    }

    p = text->data;
    last = text->data + text->len;

    for (i = 0; i < 6; i++) {
        dollar = ngx_strlchr(p, last, '$');

        if (i < 5 && dollar == NULL) {
            return NGX_ERROR;
        }

        if (i == 5) {
            if (dollar != NULL) {
                return NGX_ERROR;
            }

            dollar = last;
        }

        f[i].data = p;
        f[i].len = dollar - p;
        p = dollar + 1;
    }

    if (f[0].len != sizeof("scrypt") - 1
        || ngx_strncmp(f[0].data, "scrypt", sizeof("scrypt") - 1) != 0
        || ngx_teleclinic_password_number(&f[1], 2,
                                          NGX_TELECLINIC_SCRYPT_N_MAX,
                                          &pw->n) != NGX_OK
        || (pw->n & (pw->n - 1)) != 0
        || ngx_teleclinic_password_number(&f[2], 1, 32, &pw->r) != NGX_OK
        || ngx_teleclinic_password_number(&f[3], 1,
                                          NGX_TELECLINIC_SCRYPT_P_MAX,
                                          &pw->p) != NGX_OK
        || pw->n * pw->r > NGX_TELECLINIC_SCRYPT_NR_MAX
        || ngx_teleclinic_password_base64(&f[4], pw->salt, 1,
                                          NGX_TELECLINIC_SALT_MAX,
                                          &pw->salt_len) != NGX_OK
        || ngx_teleclinic_password_base64(&f[5], pw->hash,
                                          NGX_TELECLINIC_KDF_LEN,
                                          NGX_TELECLINIC_KDF_LEN, &len)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_teleclinic_password_number(ngx_str_t *s, uint64_t min, uint64_t max,
    uint64_t *v)
{
    ngx_int_t  n;

    if (s->len == 0 || s->len > 8 || s->data[0] == '0') {
        return NGX_ERROR;
    }

    n = ngx_atoi(s->data, s->len);

    if (n == NGX_ERROR || (uint64_t) n < min || (uint64_t) n > max) {
        return NGX_ERROR;
    }

    *v = (uint64_t) n;

    return NGX_OK;
}


/* standard base64, padded or not, decoding to min..max bytes */

static ngx_int_t
ngx_teleclinic_password_base64(ngx_str_t *s, u_char *dst, size_t min,
    size_t max, size_t *len)
{
    u_char     buf[ngx_base64_decoded_length(ngx_base64_encoded_length(
                   NGX_TELECLINIC_SALT_MAX))];
    size_t     n, pad;
    ngx_str_t  src, out;

    for (n = s->len, pad = 0; n && s->data[n - 1] == '=' && pad < 2; n--) {
        pad++;
    }

    if (n == 0
        || (pad && (s->len % 4) != 0)
        || ngx_base64_decoded_length(n) > sizeof(buf))
    {
        return NGX_ERROR;
    }

    src.data = s->data;
    src.len = n;
    out.data = buf;

    /* it refuses '=' and any other character outside the alphabet */
    if (ngx_decode_base64(&out, &src) != NGX_OK
        || out.len < min || out.len > max)
    {
        return NGX_ERROR;
    }

    ngx_memcpy(dst, buf, out.len);
    *len = out.len;

    return NGX_OK;
}


#if (NGX_THREADS)


#define NGX_TELECLINIC_KDF_MMAP   (1024 * 1024)

/*
 * While tasks are pending, a timer on the pipe's connection: a worker
 * that shuts down gracefully waits for timers, so its logins are still
 * answered (and their lockout attempts released).
 */
#define NGX_TELECLINIC_KDF_TIMER  1000


typedef struct {
    ngx_thread_mutex_t            mtx;
    ngx_thread_cond_t             cond;
    ngx_teleclinic_kdf_task_t    *queue;       /* the next to run first */
    ngx_teleclinic_kdf_task_t   **last;
    ngx_teleclinic_kdf_task_t    *done;        /* run, to be completed */
    ngx_teleclinic_kdf_task_t   **done_last;
    ngx_uint_t                    stop;
    ngx_fd_t                      bell;        /* the pipe's write end */
    ngx_log_t                    *log;
} ngx_teleclinic_kdf_pool_t;


static ngx_int_t ngx_teleclinic_kdf_start(ngx_log_t *log);
static void *ngx_teleclinic_kdf_thread(void *data);
static void ngx_teleclinic_kdf_read(ngx_event_t *rev);
static void ngx_teleclinic_kdf_timer(void);


static ngx_teleclinic_kdf_pool_t   ngx_teleclinic_kdf_pool;
static ngx_uint_t                  ngx_teleclinic_kdf_started;
static ngx_uint_t                  ngx_teleclinic_kdf_npending;
static pthread_t                   ngx_teleclinic_kdf_tid;
static ngx_connection_t           *ngx_teleclinic_kdf_conn;


ngx_int_t
ngx_teleclinic_kdf_post(ngx_teleclinic_kdf_task_t *task, ngx_uint_t max,
    ngx_log_t *log)
{
    ngx_teleclinic_kdf_pool_t  *tp;

    if (ngx_teleclinic_kdf_npending >= max) {
        return NGX_BUSY;
    }

    /* started at the first login, so that no other process has a thread */
    if (!ngx_teleclinic_kdf_started && ngx_teleclinic_kdf_start(log) != NGX_OK)
    {
        return NGX_ERROR;
    }

    tp = &ngx_teleclinic_kdf_pool;

    if (ngx_thread_mutex_lock(&tp->mtx, log) != NGX_OK) {
        return NGX_ERROR;
    }

    task->next = NULL;
    task->state = NGX_TELECLINIC_KDF_QUEUED;

    *tp->last = task;
    tp->last = &task->next;

    (void) ngx_thread_cond_signal(&tp->cond, log);
    (void) ngx_thread_mutex_unlock(&tp->mtx, log);

    ngx_teleclinic_kdf_npending++;
    ngx_teleclinic_kdf_timer();

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_kdf_cancel(ngx_teleclinic_kdf_task_t *task)
{
    ngx_int_t                    rc;
    ngx_teleclinic_kdf_task_t  **tpp;
    ngx_teleclinic_kdf_pool_t   *tp;

    if (!ngx_teleclinic_kdf_started) {
        return NGX_DECLINED;
    }

    tp = &ngx_teleclinic_kdf_pool;
    rc = NGX_DECLINED;

    if (ngx_thread_mutex_lock(&tp->mtx, tp->log) != NGX_OK) {
        return NGX_DECLINED;
    }

    /* the thread moves a task on only under the mutex */

    if (task->state == NGX_TELECLINIC_KDF_QUEUED) {

        for (tpp = &tp->queue; *tpp; tpp = &(*tpp)->next) {
            if (*tpp != task) {
                continue;
            }

            *tpp = task->next;

            if (tp->last == &task->next) {
                tp->last = tpp;
            }

            break;
        }

        task->state = NGX_TELECLINIC_KDF_OVER;
        rc = NGX_OK;
    }

    (void) ngx_thread_mutex_unlock(&tp->mtx, tp->log);

    if (rc == NGX_OK) {
        ngx_teleclinic_kdf_npending--;
        ngx_teleclinic_kdf_timer();
    }

    return rc;
}


ngx_uint_t
ngx_teleclinic_kdf_pending(void)
{
    return ngx_teleclinic_kdf_npending;
}


static ngx_int_t
ngx_teleclinic_kdf_start(ngx_log_t *log)
{
    int                         fds[2], err;
    pthread_attr_t              attr;
    ngx_connection_t           *c;
    ngx_teleclinic_kdf_pool_t  *tp;

    tp = &ngx_teleclinic_kdf_pool;

#if (__GLIBC__)
    /*
     * scrypt's buffer (16 MiB with teleclinic-passwd's costs) is malloc'ed
     * by OpenSSL on the thread; glibc would keep it in the thread's arena
     * after the first free, raising its mmap threshold to that size.  A
     * fixed threshold (which stops the raising for the whole worker) has
     * such buffers mmap'ed and given back at free.
     */
    (void) mallopt(M_MMAP_THRESHOLD, NGX_TELECLINIC_KDF_MMAP);
#endif

    if (pipe2(fds, O_NONBLOCK|O_CLOEXEC) == -1) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "teleclinic: pipe2() for the KDF thread failed");
        return NGX_ERROR;
    }

    c = ngx_get_connection(fds[0], ngx_cycle->log);
    if (c == NULL) {
        close(fds[0]);
        close(fds[1]);
        return NGX_ERROR;
    }

    c->read->handler = ngx_teleclinic_kdf_read;
    c->read->log = ngx_cycle->log;
    c->write->log = ngx_cycle->log;

    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_close_connection(c);
        close(fds[1]);
        return NGX_ERROR;
    }

    tp->queue = NULL;
    tp->last = &tp->queue;
    tp->done = NULL;
    tp->done_last = &tp->done;
    tp->stop = 0;
    tp->bell = fds[1];
    tp->log = ngx_cycle->log;

    if (ngx_thread_mutex_create(&tp->mtx, log) != NGX_OK) {
        goto failed;
    }

    if (ngx_thread_cond_create(&tp->cond, log) != NGX_OK) {
        (void) ngx_thread_mutex_destroy(&tp->mtx, log);
        goto failed;
    }

    err = pthread_attr_init(&attr);

    if (err == 0) {
        err = pthread_create(&ngx_teleclinic_kdf_tid, &attr,
                             ngx_teleclinic_kdf_thread, tp);
        (void) pthread_attr_destroy(&attr);
    }

    if (err) {
        ngx_log_error(NGX_LOG_ALERT, log, err,
                      "teleclinic: pthread_create() of the KDF thread "
                      "failed");
        (void) ngx_thread_cond_destroy(&tp->cond, log);
        (void) ngx_thread_mutex_destroy(&tp->mtx, log);
        goto failed;
    }

    ngx_teleclinic_kdf_conn = c;
    ngx_teleclinic_kdf_started = 1;

    return NGX_OK;

failed:

    ngx_close_connection(c);
    close(fds[1]);

    return NGX_ERROR;
}


static void *
ngx_teleclinic_kdf_thread(void *data)
{
    ngx_teleclinic_kdf_pool_t *tp = data;

    u_char                      bell;
    sigset_t                    set;
    ngx_teleclinic_kdf_task_t  *task;

    /* the worker's signals are for the event loop, as in nginx's pools */
    sigfillset(&set);
    sigdelset(&set, SIGILL);
    sigdelset(&set, SIGFPE);
    sigdelset(&set, SIGSEGV);
    sigdelset(&set, SIGBUS);

    (void) pthread_sigmask(SIG_BLOCK, &set, NULL);

    bell = 1;

    for ( ;; ) {
        if (ngx_thread_mutex_lock(&tp->mtx, tp->log) != NGX_OK) {
            return NULL;
        }

        while (tp->queue == NULL && !tp->stop) {
            if (ngx_thread_cond_wait(&tp->cond, &tp->mtx, tp->log) != NGX_OK)
            {
                (void) ngx_thread_mutex_unlock(&tp->mtx, tp->log);
                return NULL;
            }
        }

        if (tp->stop) {
            (void) ngx_thread_mutex_unlock(&tp->mtx, tp->log);
            return NULL;
        }

        task = tp->queue;
        tp->queue = task->next;

        if (tp->queue == NULL) {
            tp->last = &tp->queue;
        }

        task->state = NGX_TELECLINIC_KDF_RUNNING;

        (void) ngx_thread_mutex_unlock(&tp->mtx, tp->log);

        task->run(task);

        if (ngx_thread_mutex_lock(&tp->mtx, tp->log) != NGX_OK) {
            return NULL;
        }

        task->next = NULL;
        task->state = NGX_TELECLINIC_KDF_DONE;

        *tp->done_last = task;
        tp->done_last = &task->next;

        (void) ngx_thread_mutex_unlock(&tp->mtx, tp->log);

        /* a full pipe already has a byte for the event loop to read */
        if (write(tp->bell, &bell, 1) == -1) {
            continue;
        }
    }
}


static void
ngx_teleclinic_kdf_read(ngx_event_t *rev)
{
    u_char                      buf[64];
    ssize_t                     n;
    ngx_connection_t           *c;
    ngx_teleclinic_kdf_pool_t  *tp;
    ngx_teleclinic_kdf_task_t  *task, *next;

    c = rev->data;
    tp = &ngx_teleclinic_kdf_pool;

    /* a timeout only keeps the timer going (see above) */
    rev->timedout = 0;

    do {
        n = read(c->fd, buf, sizeof(buf));
    } while (n > 0);

    if (ngx_thread_mutex_lock(&tp->mtx, tp->log) != NGX_OK) {
        return;
    }

    task = tp->done;
    tp->done = NULL;
    tp->done_last = &tp->done;

    (void) ngx_thread_mutex_unlock(&tp->mtx, tp->log);

    /* a completion may free its task (with its request's pool) */

    for ( /* void */ ; task; task = next) {
        next = task->next;

        task->state = NGX_TELECLINIC_KDF_OVER;
        ngx_teleclinic_kdf_npending--;

        task->done(task);
    }

    ngx_teleclinic_kdf_timer();
}


static void
ngx_teleclinic_kdf_timer(void)
{
    ngx_event_t  *rev;

    rev = ngx_teleclinic_kdf_conn->read;

    if (ngx_teleclinic_kdf_npending) {
        if (!rev->timer_set) {
            ngx_add_timer(rev, NGX_TELECLINIC_KDF_TIMER);
        }

    } else if (rev->timer_set) {
        ngx_del_timer(rev);
    }
}


void
ngx_teleclinic_kdf_exit_process(ngx_cycle_t *cycle)
{
    ngx_teleclinic_kdf_pool_t  *tp;

    if (!ngx_teleclinic_kdf_started) {
        return;
    }

    tp = &ngx_teleclinic_kdf_pool;

    /* a KDF that runs is waited for; queued ones are left */

    if (ngx_thread_mutex_lock(&tp->mtx, cycle->log) == NGX_OK) {
        tp->stop = 1;
        (void) ngx_thread_cond_signal(&tp->cond, cycle->log);
        (void) ngx_thread_mutex_unlock(&tp->mtx, cycle->log);

        (void) pthread_join(ngx_teleclinic_kdf_tid, NULL);
    }

    /* closing the connection deletes its timer */
    ngx_close_connection(ngx_teleclinic_kdf_conn);
    close(tp->bell);

    ngx_teleclinic_kdf_conn = NULL;
    ngx_teleclinic_kdf_started = 0;
}


#endif
