
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <jansson.h>
#include "ngx_teleclinic_booking.h"
#include "ngx_teleclinic_token.h"
#include "ngx_teleclinic_doctor.h"


/* the lockout: so many failures of one doctor id within the window */
#define NGX_TELECLINIC_LOGIN_FAILURES  5
#define NGX_TELECLINIC_LOGIN_WINDOW    300
#define NGX_TELECLINIC_LOGIN_LOCK      300

#define NGX_TELECLINIC_PASSWORD_MAX    1024

/* costs a hash may ask for: 128 * N * r bytes of memory per login */
#define NGX_TELECLINIC_SCRYPT_N_MAX    (1 << 20)
#define NGX_TELECLINIC_SCRYPT_NR_MAX   (1 << 19)
#define NGX_TELECLINIC_SCRYPT_P_MAX    16


typedef struct {
    ngx_http_request_t           *request;
    ngx_str_t                     doctor;
    ngx_str_t                     password;
    ngx_teleclinic_password_t     pw;
    ngx_uint_t                    known;
    ngx_uint_t                    ok;
} ngx_http_teleclinic_login_ctx_t;


static ngx_int_t ngx_teleclinic_password_number(ngx_str_t *s, uint64_t min,
    uint64_t max, uint64_t *v);
static ngx_int_t ngx_teleclinic_password_base64(ngx_str_t *s, u_char *dst,
    size_t min, size_t max, size_t *len);
static void ngx_http_teleclinic_kdf(void *data, ngx_log_t *log);
#if (NGX_THREADS)
static void ngx_http_teleclinic_login_done(ngx_event_t *ev);
#endif
static ngx_int_t ngx_http_teleclinic_login_answer(ngx_http_request_t *r,
    ngx_str_t *doctor);
static ngx_int_t ngx_http_teleclinic_bad_credentials(ngx_http_request_t *r);
static ngx_int_t ngx_http_teleclinic_login_locked(ngx_http_request_t *r,
    ngx_str_t *doctor);
static void ngx_http_teleclinic_login_count(ngx_http_request_t *r,
    ngx_str_t *doctor, ngx_uint_t ok);
static ngx_teleclinic_login_t *ngx_http_teleclinic_login_find(
    ngx_teleclinic_sh_t *sh, ngx_str_t *doctor, time_t now,
    ngx_uint_t create);


/*
 * Verified for a doctor id that is not in the directory (or has no
 * password), so that such a login takes as long as a wrong password.
 */
static ngx_str_t  ngx_http_teleclinic_dummy_hash = ngx_string(
    "scrypt$16384$8$1$iAuoYimbj4Pb2xG7op8OQA==$"
    "e16G5bXB4w8ntS+MCKsEmNtYpR6pY/XL6GzvM0e/ogM=");


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


/*
 * POST /api/v1/doctor/login {"doctor": ID, "password": "..."}: the KDF
 * runs on the thread pool, and the answer goes out from its completion.
 */

ngx_int_t
ngx_http_teleclinic_doctor_login(ngx_http_request_t *r, ngx_str_t *body)
{
    json_t                           *root, *v;
    ngx_str_t                         id;
    ngx_teleclinic_error_t            err;
    ngx_teleclinic_doctor_t          *doctor;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_teleclinic_directory_t       *dir;
    ngx_http_teleclinic_loc_conf_t   *tlcf;
    ngx_http_teleclinic_main_conf_t  *tmcf;
    ngx_http_teleclinic_login_ctx_t  *lctx;
#if (NGX_THREADS)
    ngx_thread_task_t                *task;
#endif

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_teleclinic_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ngx_str_set(&ctx->action, "doctor_login");

    dir = ngx_http_teleclinic_directory(tmcf, r->connection->log);

    /* the hospital's single sign-on in front has named the doctor */

    if (tlcf->doctor_identity) {
        if (ngx_http_complex_value(r, tlcf->doctor_identity, &id) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (id.len) {
            doctor = dir ? ngx_teleclinic_doctor_find(dir, &id) : NULL;

            if (doctor == NULL) {
                return ngx_http_teleclinic_bad_credentials(r);
            }

            return ngx_http_teleclinic_login_answer(r, &doctor->id);
        }
    }

    if (ngx_teleclinic_request_json(body->data, body->len, &root, &err)
        != NGX_OK)
    {
        return ngx_http_teleclinic_error(r, err.status, err.code,
                                         err.message, err.field);
    }

    lctx = NULL;

#if (NGX_THREADS)
    task = ngx_thread_task_alloc(r->pool,
                                 sizeof(ngx_http_teleclinic_login_ctx_t));
    if (task == NULL) {
        json_decref(root);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    lctx = task->ctx;
#else
    lctx = ngx_pcalloc(r->pool, sizeof(ngx_http_teleclinic_login_ctx_t));
    if (lctx == NULL) {
        json_decref(root);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
#endif

    v = json_object_get(root, "doctor");

    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > NGX_TELECLINIC_ID_MAX)
    {
        json_decref(root);
        return ngx_http_teleclinic_error(r, 422, v ? "invalid_field"
                                                   : "missing_field",
                                         "\"doctor\" must be a doctor's id",
                                         "doctor");
    }

    lctx->doctor.len = json_string_length(v);
    lctx->doctor.data = ngx_pnalloc(r->pool, lctx->doctor.len);
    if (lctx->doctor.data == NULL) {
        json_decref(root);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(lctx->doctor.data, json_string_value(v), lctx->doctor.len);

    v = json_object_get(root, "password");

    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > NGX_TELECLINIC_PASSWORD_MAX)
    {
        json_decref(root);
        return ngx_http_teleclinic_error(r, 422, v ? "invalid_field"
                                                   : "missing_field",
                                         "\"password\" must be a non-empty "
                                         "string", "password");
    }

    lctx->password.len = json_string_length(v);
    lctx->password.data = ngx_pnalloc(r->pool, lctx->password.len);
    if (lctx->password.data == NULL) {
        json_decref(root);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(lctx->password.data, json_string_value(v),
               lctx->password.len);

    json_decref(root);

    if (ngx_http_teleclinic_login_locked(r, &lctx->doctor)) {
        ngx_explicit_memzero(lctx->password.data, lctx->password.len);

        return ngx_http_teleclinic_error(r, NGX_HTTP_TOO_MANY_REQUESTS,
                                         "too_many_attempts",
                                         "too many failed logins; try "
                                         "again later", NULL);
    }

    /* an unknown doctor costs the same KDF as a known one */

    doctor = dir ? ngx_teleclinic_doctor_find(dir, &lctx->doctor) : NULL;

    if (doctor && doctor->password.len
        && ngx_teleclinic_password_parse(&doctor->password, &lctx->pw)
           == NGX_OK)
    {
        lctx->known = 1;

    } else {
        (void) ngx_teleclinic_password_parse(&ngx_http_teleclinic_dummy_hash,
                                             &lctx->pw);
    }

    lctx->request = r;

#if (NGX_THREADS)
    task->handler = ngx_http_teleclinic_kdf;
    task->event.handler = ngx_http_teleclinic_login_done;
    task->event.data = lctx;

    if (ngx_thread_task_post(tmcf->login_pool, task) != NGX_OK) {
        ngx_explicit_memzero(lctx->password.data, lctx->password.len);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * The count keeps the request until the completion finalizes it;
     * "blocked" keeps a termination (a timeout, the client gone) from
     * freeing it under the running task.
     */
    r->main->count++;
    r->main->blocked++;

    return NGX_DONE;
#else
    /* without threads the worker waits for the KDF */
    ngx_http_teleclinic_kdf(lctx, r->connection->log);
    ngx_http_teleclinic_login_count(r, &lctx->doctor, lctx->ok);

    return lctx->ok ? ngx_http_teleclinic_login_answer(r, &lctx->doctor)
                    : ngx_http_teleclinic_bad_credentials(r);
#endif
}


/* on a thread of the pool: only the context, never the request */

static void
ngx_http_teleclinic_kdf(void *data, ngx_log_t *log)
{
    ngx_http_teleclinic_login_ctx_t  *lctx = data;

    u_char                      md[NGX_TELECLINIC_KDF_LEN];
    uint64_t                    maxmem;
    ngx_teleclinic_password_t  *pw;

    pw = &lctx->pw;

    maxmem = 128 * pw->r * (pw->n + pw->p + 2) + 65536;

    lctx->ok = EVP_PBE_scrypt((const char *) lctx->password.data,
                              lctx->password.len, pw->salt, pw->salt_len,
                              pw->n, pw->r, pw->p, maxmem,
                              md, NGX_TELECLINIC_KDF_LEN) == 1
               && CRYPTO_memcmp(md, pw->hash, NGX_TELECLINIC_KDF_LEN) == 0
               && lctx->known;

    ngx_explicit_memzero(lctx->password.data, lctx->password.len);
    ngx_explicit_memzero(md, sizeof(md));
}


#if (NGX_THREADS)

static void
ngx_http_teleclinic_login_done(ngx_event_t *ev)
{
    ngx_http_teleclinic_login_ctx_t  *lctx = ev->data;

    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = lctx->request;
    c = r->connection;

    r->main->blocked--;

    ngx_http_teleclinic_login_count(r, &lctx->doctor, lctx->ok);

    if (lctx->ok) {
        rc = ngx_http_teleclinic_login_answer(r, &lctx->doctor);

    } else {
        rc = ngx_http_teleclinic_bad_credentials(r);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}

#endif


/* {"token", "doctor", "expires"}: a doctor's token for the console */

static ngx_int_t
ngx_http_teleclinic_login_answer(ngx_http_request_t *r, ngx_str_t *doctor)
{
    u_char                           *p, *text;
    time_t                            expires;
    ngx_http_teleclinic_ctx_t        *ctx;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_teleclinic_module);

    ngx_str_set(&ctx->actor, "doctor");

    text = ngx_pnalloc(r->pool, sizeof("{\"token\":\"\",\"doctor\":\"\","
                                       "\"expires\":\"\"}\n")
                                + NGX_TELECLINIC_TOKEN_MAX
                                + NGX_TELECLINIC_ID_MAX
                                + NGX_TELECLINIC_TIME_LEN);
    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    expires = ngx_time() + tmcf->doctor_session;

    /* ids are a-z 0-9 - and tokens base64url: nothing to escape */

    p = ngx_cpymem(text, "{\"token\":\"", sizeof("{\"token\":\"") - 1);

    p = ngx_teleclinic_token_issue(&tmcf->token_secret,
                                   NGX_TELECLINIC_TOKEN_DOCTOR, doctor,
                                   expires, p);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(p, "\",\"doctor\":\"%V\",\"expires\":\"", doctor);
    p = ngx_teleclinic_time_print(p, expires);
    p = ngx_cpymem(p, "\"}\n", 3);

    return ngx_http_teleclinic_send_text(r, NGX_HTTP_OK, text, p - text);
}


static ngx_int_t
ngx_http_teleclinic_bad_credentials(ngx_http_request_t *r)
{
    return ngx_http_teleclinic_error(r, NGX_HTTP_UNAUTHORIZED,
                                     "bad_credentials",
                                     "unknown doctor or wrong password",
                                     NULL);
}


/*
 * The lockout table is in the shared zone, so that all workers count the
 * failures of one doctor id together.
 */

static ngx_int_t
ngx_http_teleclinic_login_locked(ngx_http_request_t *r, ngx_str_t *doctor)
{
    time_t                            now;
    ngx_int_t                         locked;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_login_t           *e;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);
    now = ngx_time();

    ngx_teleclinic_zone_lock(zone);

    e = ngx_http_teleclinic_login_find(zone->sh, doctor, now, 0);
    locked = (e && e->locked > now);

    ngx_teleclinic_zone_unlock(zone);

    return locked;
}


static void
ngx_http_teleclinic_login_count(ngx_http_request_t *r, ngx_str_t *doctor,
    ngx_uint_t ok)
{
    time_t                            now;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_login_t           *e;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);
    now = ngx_time();

    ngx_teleclinic_zone_lock(zone);

    e = ngx_http_teleclinic_login_find(zone->sh, doctor, now, !ok);

    if (e && ok) {
        ngx_memzero(e, sizeof(ngx_teleclinic_login_t));

    } else if (e) {
        if (e->failures++ == 0) {
            e->since = now;
        }

        if (e->failures >= NGX_TELECLINIC_LOGIN_FAILURES) {
            e->locked = now + NGX_TELECLINIC_LOGIN_LOCK;

            /* the id comes from the client: logged only when it is one */
            if (ngx_teleclinic_id_valid(doctor->data, doctor->len) == NGX_OK) {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "teleclinic: doctor \"%V\" locked out after "
                              "%ui failed logins", doctor, e->failures);
            }
        }
    }

    ngx_teleclinic_zone_unlock(zone);
}


/*
 * With the zone locked.  An entry whose window or lock is over starts
 * again from nothing.  When the table is full, the entry with the oldest
 * first failure that is not locked makes room; if every entry is locked,
 * the failure is not counted.
 */

static ngx_teleclinic_login_t *
ngx_http_teleclinic_login_find(ngx_teleclinic_sh_t *sh, ngx_str_t *doctor,
    time_t now, ngx_uint_t create)
{
    ngx_uint_t               i;
    ngx_teleclinic_login_t  *e, *room;

    room = NULL;

    for (i = 0; i < NGX_TELECLINIC_LOGINS; i++) {
        e = &sh->logins[i];

        if (e->id_len
            && (e->locked ? e->locked <= now
                          : now - e->since >= NGX_TELECLINIC_LOGIN_WINDOW))
        {
            ngx_memzero(e, sizeof(ngx_teleclinic_login_t));
        }

        if (e->id_len == 0) {
            if (room == NULL || room->id_len) {
                room = e;
            }

            continue;
        }

        if (e->id_len == doctor->len
            && ngx_memcmp(e->id, doctor->data, doctor->len) == 0)
        {
            return e;
        }

        if (e->locked == 0 && (room == NULL
                               || (room->id_len && e->since < room->since)))
        {
            room = e;
        }
    }

    if (!create || room == NULL || doctor->len > NGX_TELECLINIC_ID_MAX) {
        return NULL;
    }

    ngx_memzero(room, sizeof(ngx_teleclinic_login_t));
    room->id_len = doctor->len;
    ngx_memcpy(room->id, doctor->data, doctor->len);

    return room;
}
