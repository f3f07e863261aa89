
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_TOKEN_H_INCLUDED_
#define _NGX_TELECLINIC_TOKEN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_teleclinic.h"


/* what a token lets its holder do */
#define NGX_TELECLINIC_TOKEN_PATIENT   1
#define NGX_TELECLINIC_TOKEN_DOCTOR    2

#define NGX_TELECLINIC_SUBJECT_MAX     NGX_TELECLINIC_ID_MAX
#define NGX_TELECLINIC_TOKEN_MAX                                              \
    (ngx_base64_encoded_length(1 + 8 + NGX_TELECLINIC_SUBJECT_MAX) + 1        \
     + ngx_base64_encoded_length(32))


typedef struct {
    ngx_uint_t                    kind;
    time_t                        expires;
    ngx_str_t                     subject;  /* points into the caller's buf */
    u_char                        buf[NGX_TELECLINIC_SUBJECT_MAX];
} ngx_teleclinic_token_t;


/* returns the end of the token written at out, NULL if OpenSSL fails */
u_char *ngx_teleclinic_token_issue(ngx_str_t *secret, ngx_uint_t kind,
    ngx_str_t *subject, time_t expires, u_char *out);

/*
 * NGX_OK for a valid token, NGX_DECLINED for one that was valid and has
 * expired, NGX_ERROR for anything else (altered, malformed, other key)
 */
ngx_int_t ngx_teleclinic_token_verify(ngx_str_t *secret, ngx_str_t *token,
    time_t now, ngx_teleclinic_token_t *t);

/*
 * A patient's token names the appointment and its version: the id as 8
 * bytes, then the version as 4 when it is not 0, so that a token of an
 * appointment never changed has the form it had before versions.  buf
 * holds NGX_TELECLINIC_APPT_SUBJECT bytes.
 */
#define NGX_TELECLINIC_APPT_SUBJECT    12

void ngx_teleclinic_token_appt_subject(uint64_t id, uint32_t version,
    u_char *buf, ngx_str_t *subject);
ngx_int_t ngx_teleclinic_token_appt(ngx_teleclinic_token_t *t, uint64_t *id,
    uint32_t *version);

/*
 * A secret kept in a file, for the *_secret_file directives: read at
 * start and reload, its trailing line break and spaces left out; an
 * empty or oversized file is an error.
 */
char *ngx_teleclinic_secret_file(ngx_conf_t *cf, ngx_str_t *path,
    ngx_str_t *secret);

/* HMAC-SHA256 of data, for the notification signature */
void ngx_teleclinic_hmac_sha256(ngx_str_t *key, u_char *data, size_t len,
    u_char *md);


#endif /* _NGX_TELECLINIC_TOKEN_H_INCLUDED_ */
